//! The constant operators of the gradient-mode graphs, built in `f64` on the
//! host: the Scharr derivatives (SL1), the 2-D DFT as one real matrix and the
//! central window of the shifted spectrum (SL2).

use candle_core::{DType, Device, Tensor};
use ndarray::Array2;
use phyvae_imaging::filters::SCHARR_SMOOTH;

use crate::Result;
use crate::error::FrameworkContext;

/// A constant `f64` matrix on `device` in `dtype`.
pub(super) fn constant(
    data: Vec<f64>,
    shape: (usize, usize),
    device: &Device,
    dtype: DType,
) -> Result<Tensor> {
    Tensor::from_vec(data, shape, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .and_then(|t| t.to_device(device))
        .ctx("Psi constant matrix")
}

/// The Scharr derivative operators `(Sx, Sy)` on a `d x d` map (row-major
/// vectors of length `n = d^2`), border mode `reflect` (a radius-1 kernel
/// repeats the edge pixel), as scikit-image's `scharr_h` / `scharr_v`:
/// `(Sx v)[r, c] = sum_j SMOOTH[j] (v[r+1, c+j-1] - v[r-1, c+j-1])` and
/// `(Sy v)[r, c] = sum_i SMOOTH[i] (v[r+i-1, c+1] - v[r+i-1, c-1])`, indices
/// clamped to `0 .. d - 1`.
pub(super) fn scharr_operators(d: usize) -> (Array2<f64>, Array2<f64>) {
    let n = d * d;
    let clamp = |i: usize, offset: isize| i.saturating_add_signed(offset).min(d - 1);
    let (mut sx, mut sy) = (Array2::zeros((n, n)), Array2::zeros((n, n)));
    for r in 0..d {
        for c in 0..d {
            let p = r * d + c;
            for (j, &s) in SCHARR_SMOOTH.iter().enumerate() {
                #[allow(clippy::cast_possible_wrap)]
                let off = j as isize - 1;
                let cc = clamp(c, off);
                sx[[p, clamp(r, 1) * d + cc]] += s;
                sx[[p, clamp(r, -1) * d + cc]] -= s;
                let rr = clamp(r, off);
                sy[[p, rr * d + clamp(c, 1)]] += s;
                sy[[p, rr * d + clamp(c, -1)]] -= s;
            }
        }
    }
    (sx, sy)
}

/// Row-major `C[k, m] = cos(2 pi k m / d)` and `S[k, m] = sin(2 pi k m / d)`
/// (`k m` reduced mod `d`, so that the argument stays in `[0, 2 pi)`).
fn dft_matrices(d: usize) -> (Array2<f64>, Array2<f64>) {
    let angle = |k: usize, m: usize| {
        #[allow(clippy::cast_precision_loss)]
        let a = std::f64::consts::TAU * ((k * m) % d) as f64 / d as f64;
        a
    };
    (
        Array2::from_shape_fn((d, d), |(k, m)| angle(k, m).cos()),
        Array2::from_shape_fn((d, d), |(k, m)| angle(k, m).sin()),
    )
}

/// The 2-D DFT of a row-major `d x d` map as one real `(n, 2n)` matrix,
/// `n = d^2`, for a row vector `vec Z`: `vec Z . M = [vec Re F | -vec Im F]`.
///
/// `Re F = C Z C - S Z S` and `-Im F = C Z S + S Z C` (`C`, `S` symmetric,
/// from [`dft_matrices`]); entry by entry, `Re F[k, l] = sum_{m, j} (C[k, m]
/// C[l, j] - S[k, m] S[l, j]) Z[m, j]`, i.e. `vec Re F = (C (x) C - S (x) S)
/// vec Z` with the Kronecker product `(x)` in row-major order, and likewise
/// `-vec Im F = (C (x) S + S (x) C) vec Z`. `M` stacks the transposes of the two
/// `n x n` operators side by side, so the whole transform is one matmul.
pub(super) fn dft_operator_t(d: usize) -> Vec<f64> {
    let (c, s) = dft_matrices(d);
    let n = d * d;
    let mut m = vec![0.0_f64; n * 2 * n];
    for k in 0..d {
        for l in 0..d {
            let out = k * d + l;
            for a in 0..d {
                for b in 0..d {
                    let inp = a * d + b;
                    m[inp * 2 * n + out] = c[[k, a]] * c[[l, b]] - s[[k, a]] * s[[l, b]];
                    m[inp * 2 * n + n + out] = c[[k, a]] * s[[l, b]] + s[[k, a]] * c[[l, b]];
                }
            }
        }
    }
    m
}

/// The SL2 window of the shifted spectrum, rows / columns
/// `d/2 - alpha .. d/2 + alpha` after `fftshift` (`shifted[j] =
/// F[(j - d/2) mod d]`, as [`phyvae_imaging::fft::fftshift`]), as a row-major
/// 0/1 mask on the unshifted frequencies: those `k` with `(k + d/2) mod d` in
/// the window, i.e. `k` in `-alpha .. alpha - 1` (mod `d`). Needs `2 alpha <= d`.
pub(super) fn window_mask(d: usize, alpha: usize) -> Vec<f64> {
    let in_window = |k: usize| {
        let shifted = (k + d / 2) % d;
        (d / 2 - alpha..d / 2 + alpha).contains(&shifted)
    };
    let mut mask = Vec::with_capacity(d * d);
    for k in 0..d {
        for l in 0..d {
            mask.push(if in_window(k) && in_window(l) {
                1.0
            } else {
                0.0
            });
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array1;
    use phyvae_imaging::filters::{scharr_h, scharr_v};

    fn map(d: usize) -> Array2<f64> {
        Array2::from_shape_fn((d, d), |(r, c)| {
            ((r * 7 + c * 3 + r * c) % 11) as f64 / 10.0
        })
    }

    #[test]
    fn scharr_operators_match_imaging_scharr() {
        for d in [1, 2, 3, 8] {
            let m = map(d);
            let (sx, sy) = scharr_operators(d);
            let v = Array1::from_iter(m.iter().copied());
            let (gx, gy) = (sx.dot(&v), sy.dot(&v));
            let (h, w) = (scharr_h(m.view()).unwrap(), scharr_v(m.view()).unwrap());
            for (a, b) in gx.iter().zip(h.iter()).chain(gy.iter().zip(w.iter())) {
                assert!((a - b).abs() < 1e-14, "d = {d}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn scharr_operator_hand_computed_row() {
        // d = 3, pixel (0, 0): rows r-1 and c-1 reflect to 0.
        // Sx: + SMOOTH . v[1, (0, 0, 1)] - SMOOTH . v[0, (0, 0, 1)]:
        //   columns of row 1: v[1,0] gets 3/16 + 10/16, v[1,1] gets 3/16; row 0 negated.
        let (sx, _) = scharr_operators(3);
        let want = [-13.0, -3.0, 0.0, 13.0, 3.0, 0.0, 0.0, 0.0, 0.0].map(|v: f64| v / 16.0);
        for (q, w) in want.iter().enumerate() {
            assert!((sx[[0, q]] - w).abs() < 1e-15, "column {q}");
        }
    }

    #[test]
    fn dft_operator_gives_the_dft() {
        // F[k, l] = sum_{m, j} x[m, j] e^{-2 pi i (k m + l j) / d}, written out.
        let d = 5;
        let n = d * d;
        let x = map(d);
        let m = Array2::from_shape_vec((n, 2 * n), dft_operator_t(d)).unwrap();
        let f = Array1::from_iter(x.iter().copied()).dot(&m); // [Re F | -Im F]
        for k in 0..d {
            for l in 0..d {
                let (mut fr, mut fi) = (0.0, 0.0);
                for a in 0..d {
                    for b in 0..d {
                        let t = -std::f64::consts::TAU * ((k * a + l * b) as f64) / d as f64;
                        fr += x[[a, b]] * t.cos();
                        fi += x[[a, b]] * t.sin();
                    }
                }
                let out = k * d + l;
                assert!((f[out] - fr).abs() < 1e-12, "Re F[{k}, {l}]");
                assert!((f[n + out] + fi).abs() < 1e-12, "Im F[{k}, {l}]");
            }
        }
        // The separable form of the module documentation gives the same numbers.
        let (c, s) = dft_matrices(d);
        let re = c.dot(&x).dot(&c) - s.dot(&x).dot(&s);
        let im = -(c.dot(&x).dot(&s) + s.dot(&x).dot(&c));
        for ((k, l), &v) in re.indexed_iter() {
            assert!((f[k * d + l] - v).abs() < 1e-12);
            assert!((f[n + k * d + l] + im[[k, l]]).abs() < 1e-12);
        }
    }

    #[test]
    fn window_mask_even_and_odd() {
        // d = 4, alpha = 1: shifted rows 1..3 = unshifted (j - 2) mod 4 = {3, 0}.
        let m = window_mask(4, 1);
        let ones: Vec<usize> = (0..16).filter(|&i| m[i] == 1.0).collect();
        assert_eq!(ones, vec![0, 3, 12, 15]);
        // d = 5, alpha = 1: shifted 1..3 = unshifted (j - 2) mod 5 = {4, 0}.
        let m = window_mask(5, 1);
        let ones: Vec<usize> = (0..25).filter(|&i| m[i] == 1.0).collect();
        assert_eq!(ones, vec![0, 4, 20, 24]);
        // d = 7, alpha = 2: shifted 1..5 = unshifted {5, 6, 0, 1}: 16 entries.
        assert_eq!(window_mask(7, 2).iter().sum::<f64>(), 16.0);
    }
}
