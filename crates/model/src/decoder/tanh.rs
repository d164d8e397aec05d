//! A branch-free, auto-vectorising `f32` hyperbolic tangent.
//!
//! Method: `tanh(x) = sign(x) * (1 - 2 / (exp(2|x|) + 1))`, with `exp` computed
//! by Cody–Waite range reduction `y = n ln2 + r`, `|r| <= ln2 / 2`, a degree-7
//! Taylor polynomial for `exp(r)` (coefficients `1/k!`, derived from the series
//! itself; truncation error `|r|^8 / 8! <= 0.347^8 / 40320 ≈ 5.3e-9` relative)
//! and `2^n` built directly in the exponent bits with `f32::from_bits`.
//! Rounding `n = round(y / ln2)` uses the `1.5 * 2^23` "magic number" addition,
//! whose bit pattern also carries `n` as an integer, so the whole function is
//! straight-line integer/float arithmetic plus one division: LLVM vectorises it
//! over slices (see [`tanh_slice`]).
//!
//! Accuracy: the result is within about 2 ulp of 1.0 (`<= 2e-7`) in absolute
//! terms over the whole real line (measured against `f64::tanh` in the tests).
//! Relative accuracy near zero is limited by the cancellation in `1 - 2/(e+1)`,
//! which is harmless for a network activation. `|x| >= 10` gives exactly `±1`
//! (`2 / (exp(20) + 1) ≈ 4e-9` is far below half an ulp of 1). NaN input gives ±1
//! (the clamp absorbs it); callers never pass NaN.
//!
//! Reference: W. J. Cody and W. Waite, *Software Manual for the Elementary
//! Functions* (1980), chapter 6 (exp) and chapter 13 (tanh).

/// `ln 2` split into a high part exact in `f32` (few mantissa bits, so `n * LN2_HI`
/// is exact for `|n| < 2^12`) and the low remainder.
const LN2_HI: f32 = 0.693_145_75;
/// `ln 2 - LN2_HI`.
const LN2_LO: f32 = 1.428_606_8e-6;
/// `1 / ln 2`.
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// `1.5 * 2^23`: adding it rounds a float in `[0, 2^22)` to the nearest integer.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// Bit pattern of [`ROUND_MAGIC`]; `bits(t + ROUND_MAGIC) - this` is `round(t)`.
const ROUND_MAGIC_BITS: i32 = 0x4B40_0000;
/// `2|x|` is clamped here: `tanh(x)` rounds to `1.0f32` once `2 e^{-2x} < 2^-25`
/// (half an ulp below 1), i.e. for `x > 13 ln 2 ≈ 9.01`; at the clamp
/// `2 / (e^20 + 1) ≈ 4e-9` and the result is exactly 1.
const MAX_2X: f32 = 20.0;
/// Taylor coefficients `1/k!` for `k = 2..=7` of `exp(r)`.
const EXP_C2: f32 = 1.0 / 2.0;
const EXP_C3: f32 = 1.0 / 6.0;
const EXP_C4: f32 = 1.0 / 24.0;
const EXP_C5: f32 = 1.0 / 120.0;
const EXP_C6: f32 = 1.0 / 720.0;
const EXP_C7: f32 = 1.0 / 5040.0;

/// `exp(y)` for `y` in `[0, MAX_2X]` (no range checks: callers clamp).
#[inline(always)]
fn exp_nonneg(y: f32) -> f32 {
    let shifted = y * LOG2_E + ROUND_MAGIC;
    let n_int = shifted.to_bits() as i32 - ROUND_MAGIC_BITS;
    let n = shifted - ROUND_MAGIC;
    let r = (y - n * LN2_HI) - n * LN2_LO;
    let p = EXP_C6 + r * EXP_C7;
    let p = EXP_C5 + r * p;
    let p = EXP_C4 + r * p;
    let p = EXP_C3 + r * p;
    let p = EXP_C2 + r * p;
    let p = 1.0 + r * p;
    let p = 1.0 + r * p;
    // n_int is in [0, 29], so the biased exponent is in [127, 156]: a normal float.
    let two_n = f32::from_bits(((n_int + 127) as u32) << 23);
    p * two_n
}

/// Branch-free `f32` hyperbolic tangent (see the module docs for accuracy).
///
/// ```
/// use phyvae_model::decoder::tanh_f32;
/// assert_eq!(tanh_f32(0.0), 0.0);
/// assert_eq!(tanh_f32(12.0), 1.0);
/// assert!((tanh_f32(0.5) - 0.5f32.tanh()).abs() < 2e-7);
/// ```
#[must_use]
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let ax = x.abs();
    let y = (2.0 * ax).min(MAX_2X);
    let e = exp_nonneg(y);
    let t = 1.0 - 2.0 / (e + 1.0);
    t.copysign(x)
}

/// Applies [`tanh_f32`] in place to every element of `values` (vectorised loop).
pub fn tanh_slice(values: &mut [f32]) {
    for v in values.iter_mut() {
        *v = tanh_f32(*v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_odd_symmetry() {
        assert_eq!(tanh_f32(0.0), 0.0);
        assert!(tanh_f32(-0.0).is_sign_negative());
        let mut x = -12.0f32;
        while x <= 12.0 {
            assert_eq!(tanh_f32(-x), -tanh_f32(x), "x = {x}");
            x += 0.0137;
        }
    }

    #[test]
    fn saturates_beyond_ten() {
        for x in [10.0f32, 10.5, 20.0, 88.0, 1e10, f32::MAX, f32::INFINITY] {
            assert_eq!(tanh_f32(x), 1.0, "x = {x}");
            assert_eq!(tanh_f32(-x), -1.0, "x = {x}");
        }
    }

    /// Dense grid over [-12, 12] (step 2^-12, 98 305 points) plus a log grid of
    /// small inputs: max absolute error against `f64::tanh` <= 2e-7 (about
    /// 1.7 ulp of 1.0; f32 rounding of the result alone costs up to 0.5 ulp,
    /// the rest is the rounding in `1 - 2/(e+1)` and the polynomial).
    #[test]
    fn max_abs_error_dense_grid() {
        let mut max_err = 0.0f64;
        let steps = 12 * 4096;
        for i in -steps..=steps {
            let x = i as f32 / 4096.0;
            let err = (f64::from(tanh_f32(x)) - f64::from(x).tanh()).abs();
            max_err = max_err.max(err);
        }
        let mut x = 1e-30f32;
        while x < 1.0 {
            let err = (f64::from(tanh_f32(x)) - f64::from(x).tanh()).abs();
            max_err = max_err.max(err);
            x *= 1.01;
        }
        assert!(max_err <= 2e-7, "max abs error {max_err}");
        // Not trivially exact either: the approximation is visibly an approximation.
        assert!(max_err > 0.0);
    }

    #[test]
    fn slice_matches_scalar() {
        let mut v: Vec<f32> = (0..37).map(|i| i as f32 * 0.3 - 5.0).collect();
        let expected: Vec<f32> = v.iter().map(|&x| tanh_f32(x)).collect();
        tanh_slice(&mut v);
        assert_eq!(v, expected);
    }
}
