//! Single-threaded `f32` matrix products on row blocks that stay in cache, over
//! the `gemm` crate (the same crate candle's CPU backend uses; AVX-512, AVX2+FMA
//! or SSE kernels chosen at run time).
//!
//! The decoder runs its GEMMs per block of at most [`ROW_BLOCK`] rows, one
//! patch per rayon task, so every product here is called with
//! `Parallelism::None`: the parallelism is over patches, which also makes the
//! results independent of the number of threads.
//!
//! This is the crate's only `unsafe` code: `gemm::gemm` takes raw pointers and
//! strides. [`Gemm::run`] checks, before the call, that every element the
//! product reads or writes lies inside the slices it was given (the slices'
//! borrows already rule out aliasing between the output and the inputs).
#![allow(unsafe_code)]

use crate::{ModelError, Result};

/// Rows of a decoder block: `ROW_BLOCK x H` activations (128 KiB at `H = 128`)
/// stay in the L2 cache between the layers that use them.
pub const ROW_BLOCK: usize = 256;

/// A strided read-only `rows x cols` matrix inside a slice: element `(i, j)` is
/// `data[i * rs + j * cs]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows x cols` matrix (`rs = cols`, `cs = 1`).
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose, as a view of the same data.
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Whether every element lies inside `data` (empty matrices always do).
    fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1)
            .checked_mul(self.rs)
            .and_then(|a| (self.cols - 1).checked_mul(self.cs).map(|b| (a, b)))
            .and_then(|(a, b)| a.checked_add(b));
        matches!(last, Some(l) if l < self.data.len())
    }
}

/// How the product is stored into the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gemm {
    /// `c = a b`.
    Overwrite,
    /// `c += a b`.
    Accumulate,
}

/// `isize` stride from a checked in-bounds `usize` stride.
fn stride(s: usize) -> Result<isize> {
    isize::try_from(s).map_err(|_| ModelError::ShapeMismatch {
        what: "matrix stride (fits isize)",
        expected: vec![isize::MAX as usize],
        found: vec![s],
    })
}

impl Gemm {
    /// `c (m x n, row-major, contiguous) (+)= a (m x k) b (k x n)`, one thread.
    ///
    /// # Errors
    /// [`ModelError::ShapeMismatch`] when the inner or outer dimensions
    /// disagree, or a matrix reaches past the end of its slice.
    pub fn run(self, a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32], n: usize) -> Result<()> {
        let (m, k) = (a.rows, a.cols);
        if b.rows != k || b.cols != n {
            return Err(ModelError::ShapeMismatch {
                what: "gemm right operand (k x n)",
                expected: vec![k, n],
                found: vec![b.rows, b.cols],
            });
        }
        if m.checked_mul(n).is_none_or(|len| len > c.len()) {
            return Err(ModelError::ShapeMismatch {
                what: "gemm output (m x n)",
                expected: vec![m, n],
                found: vec![c.len()],
            });
        }
        for (what, x) in [("gemm left operand", &a), ("gemm right operand", &b)] {
            if !x.in_bounds() {
                return Err(ModelError::ShapeMismatch {
                    what,
                    expected: vec![x.rows, x.cols, x.rs, x.cs],
                    found: vec![x.data.len()],
                });
            }
        }
        if m == 0 || n == 0 {
            return Ok(());
        }
        if k == 0 {
            if self == Gemm::Overwrite {
                c[..m * n].fill(0.0);
            }
            return Ok(());
        }
        let (a_rs, a_cs, b_rs, b_cs, c_rs) = (
            stride(a.rs)?,
            stride(a.cs)?,
            stride(b.rs)?,
            stride(b.cs)?,
            stride(n)?,
        );
        // SAFETY: the checks above guarantee that every index the product
        // touches, `i * rs + j * cs` for `i < rows`, `j < cols`, lies inside the
        // corresponding slice (`c` is row-major `m x n` with `m * n <= c.len()`).
        // `c` is borrowed mutably and `a`, `b` immutably, so the output does not
        // alias the inputs. `T = f32` is one of the types `gemm` supports.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                c_rs,
                self == Gemm::Accumulate,
                a.data.as_ptr(),
                a_cs,
                a_rs,
                b.data.as_ptr(),
                b_cs,
                b_rs,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain triple loop in f64.
    fn naive(a: MatRef<'_>, b: MatRef<'_>) -> Vec<f64> {
        let mut c = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                for l in 0..a.cols {
                    c[i * b.cols + j] += f64::from(a.data[i * a.rs + l * a.cs])
                        * f64::from(b.data[l * b.rs + j * b.cs]);
                }
            }
        }
        c
    }

    #[test]
    fn two_by_two_by_hand() {
        // [1 2; 3 4] [5 6; 7 8] = [19 22; 43 50]
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0, 7.0, 8.0];
        let mut c = [0.0; 4];
        Gemm::Overwrite
            .run(
                MatRef::row_major(&a, 2, 2),
                MatRef::row_major(&b, 2, 2),
                &mut c,
                2,
            )
            .unwrap();
        assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
        // accumulate: + [1 2; 3 4]^T [5 6; 7 8] = [26 30; 38 44]
        Gemm::Accumulate
            .run(
                MatRef::row_major(&a, 2, 2).t(),
                MatRef::row_major(&b, 2, 2),
                &mut c,
                2,
            )
            .unwrap();
        assert_eq!(c, [45.0, 52.0, 81.0, 94.0]);
    }

    #[test]
    fn transposed_operands_match_a_triple_loop() {
        let (m, k, n) = (37, 19, 23);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let b: Vec<f32> = (0..n * k).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
        // b is stored n x k; use its transpose (k x n)
        let (ar, br) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, n, k).t());
        let mut c = vec![f32::NAN; m * n];
        Gemm::Overwrite.run(ar, br, &mut c, n).unwrap();
        // small integers: exact in f32
        for (x, y) in c.iter().zip(naive(ar, br)) {
            assert_eq!(f64::from(*x), y);
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let a = [0.0; 6];
        let mut c = [0.0; 4];
        // inner dimensions 3 vs 2
        let e = Gemm::Overwrite.run(
            MatRef::row_major(&a, 2, 3),
            MatRef::row_major(&a, 2, 3),
            &mut c,
            3,
        );
        assert!(matches!(e, Err(ModelError::ShapeMismatch { .. })));
        // output too small for 2 x 2... of a 2 x 3 by 3 x 2: c holds 4, fine; 3 x 3 is not
        let e = Gemm::Overwrite.run(
            MatRef::row_major(&a, 3, 2),
            MatRef::row_major(&a, 2, 3),
            &mut c,
            3,
        );
        assert!(matches!(e, Err(ModelError::ShapeMismatch { .. })));
        // a stride that reaches past the slice
        let wide = MatRef {
            data: &a,
            rows: 2,
            cols: 2,
            rs: 5,
            cs: 1,
        };
        let e = Gemm::Overwrite.run(wide, MatRef::row_major(&a[..4], 2, 2), &mut c, 2);
        assert!(matches!(e, Err(ModelError::ShapeMismatch { .. })));
    }
}
