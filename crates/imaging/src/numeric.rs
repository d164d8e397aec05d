//! Floating-point reductions in NumPy's order, shared by the modules that must
//! reproduce scikit-image to the last bit (sums, means, standard deviation,
//! extrema). Written here because no crate sums in NumPy's pairwise order.

use crate::Real;
use ndarray::ArrayView2;

/// Number of elements below which NumPy's pairwise summation adds sequentially.
const PAIRWISE_UNROLL: usize = 8;
/// Block size of NumPy's pairwise summation (`PW_BLOCKSIZE`).
const PAIRWISE_BLOCK: usize = 128;
/// Length from which the two halves of a pairwise sum run on two threads.
const PARALLEL_MIN_LEN: usize = 1 << 15;

/// Sum of `values` in the order NumPy's `np.add.reduce` uses for a contiguous
/// floating-point array (pairwise summation with eight accumulators and blocks
/// of 128, `numpy/_core/src/umath/loops_utils.h.src`), computed in `T`.
///
/// Matching NumPy's order makes `f32` sums (image standard deviation, SL1
/// edge sums) agree with NumPy bit for bit; it is also more accurate than a
/// sequential sum (error `O(log n)` instead of `O(n)` units in the last place).
pub(crate) fn pairwise_sum<T: Real>(values: &[T]) -> T {
    let n = values.len();
    if n < PAIRWISE_UNROLL {
        values.iter().fold(T::zero(), |acc, &v| acc + v)
    } else if n <= PAIRWISE_BLOCK {
        let mut r = [T::zero(); PAIRWISE_UNROLL];
        r.copy_from_slice(&values[..PAIRWISE_UNROLL]);
        let full = n - n % PAIRWISE_UNROLL;
        for chunk in values[PAIRWISE_UNROLL..full].chunks_exact(PAIRWISE_UNROLL) {
            for (acc, &v) in r.iter_mut().zip(chunk) {
                *acc += v;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &values[full..] {
            res += v;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % PAIRWISE_UNROLL;
        let (a, b) = values.split_at(half);
        if n >= PARALLEL_MIN_LEN {
            // The two halves are independent sums: computing them on two
            // threads changes nothing in the result.
            let (sa, sb) = rayon::join(|| pairwise_sum(a), || pairwise_sum(b));
            sa + sb
        } else {
            pairwise_sum(a) + pairwise_sum(b)
        }
    }
}

/// Sum of all pixels of `img` in row-major order with NumPy's pairwise
/// summation (see [`pairwise_sum`]); `np.sum(img)` for a C-ordered array.
pub(crate) fn image_sum<T: Real>(img: ArrayView2<'_, T>) -> T {
    match img.as_slice() {
        Some(s) => pairwise_sum(s),
        None => {
            let v: Vec<T> = img.iter().copied().collect();
            pairwise_sum(&v)
        }
    }
}

/// Population standard deviation of `img` exactly as NumPy's `img.std()`
/// computes it for a C-ordered array: mean by pairwise sum divided by `n`,
/// squared deviations summed pairwise, divided by `n`, square root; all in `T`
/// except the divisions by the count, which NumPy performs in `f64` and rounds
/// back to `T`.
pub(crate) fn numpy_std<T: Real>(img: ArrayView2<'_, T>) -> T {
    let values: Vec<T> = img.iter().copied().collect();
    #[allow(clippy::cast_precision_loss)]
    let n = values.len() as f64;
    let mean = T::c(pairwise_sum(&values).f64() / n);
    let squares: Vec<T> = values
        .iter()
        .map(|&v| {
            let d = v - mean;
            d * d
        })
        .collect();
    T::c(pairwise_sum(&squares).f64() / n).sqrt()
}

/// Smallest and largest pixel of a non-empty image, as NumPy's `min()` / `max()`.
pub(crate) fn min_max<T: Real>(img: ArrayView2<'_, T>) -> (T, T) {
    img.iter()
        .fold((T::infinity(), T::neg_infinity()), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// NumPy's `mean` of the values: pairwise sum in `T`, divided by the count in `f64`,
/// rounded back to `T`.
pub(crate) fn numpy_mean<T: Real>(v: &[T]) -> T {
    #[allow(clippy::cast_precision_loss)]
    let n = v.len() as f64;
    T::c(pairwise_sum(v).f64() / n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn pairwise_sum_short_is_sequential() {
        assert_eq!(pairwise_sum(&[1.0_f64, 2.0, 3.0]), 6.0);
        assert_eq!(pairwise_sum::<f32>(&[]), 0.0);
    }

    #[test]
    fn pairwise_sum_uses_eight_accumulators() {
        // a = [1e8, 0.75 x 15] in f32 (ulp(1e8) = 8). Sequentially every +0.75 is
        // lost. Pairwise: r = a[0..8] + a[8..16] = [1e8 (0.75 lost), 1.5 x 7];
        // (r0 + r1) = 1e8, (r2 + r3) = 3, their sum rounds to 1e8; (r4 + r5) + (r6 + r7)
        // = 6; 1e8 + 6 rounds to 1e8 + 8 (6 is past the half-ulp 4).
        let mut a = [0.75_f32; 16];
        a[0] = 1e8;
        let seq = a.iter().fold(0.0_f32, |s, &v| s + v);
        assert_eq!(seq, 1e8);
        assert_eq!(pairwise_sum(&a), 1e8 + 8.0);
    }

    #[test]
    fn std_is_population_std() {
        // values 1, 2, 3, 4: mean 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5,
        // variance 5 / 4 = 1.25.
        let img = array![[1.0_f64, 2.0], [3.0, 4.0]];
        assert!((numpy_std(img.view()) - 1.25_f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn min_max_of_image() {
        let img = array![[1.0_f32, -2.0], [3.0, 0.5]];
        assert_eq!(min_max(img.view()), (-2.0, 3.0));
    }

    /// NumPy's recursion written out on one thread, to compare the threaded sum against.
    fn pairwise_reference(v: &[f32]) -> f32 {
        let n = v.len();
        if n <= PAIRWISE_BLOCK {
            pairwise_sum(v)
        } else {
            let half = n / 2 - (n / 2) % PAIRWISE_UNROLL;
            pairwise_reference(&v[..half]) + pairwise_reference(&v[half..])
        }
    }

    #[test]
    fn threaded_pairwise_sum_equals_the_sequential_recursion() {
        // Values of very different magnitudes, so that any change of order shows.
        let v: Vec<f32> = (0..200_003_u32)
            .map(|i| {
                ((i.wrapping_mul(2_654_435_761) >> 7) % 10_007) as f32 * 1.37e-3
                    + if i % 97 == 0 { 1e4 } else { 0.0 }
            })
            .collect();
        assert!(v.len() >= PARALLEL_MIN_LEN);
        assert_eq!(pairwise_sum(&v).to_bits(), pairwise_reference(&v).to_bits());
    }
}
