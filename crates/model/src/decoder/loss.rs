//! Bernoulli negative log-likelihood from logits and its gradient.
//!
//! Per pixel with logit `l` and target `x` in `[0, 1]`:
//! `-[x log σ(l) + (1-x) log(1-σ(l))] = max(l, 0) - l x + log1p(exp(-|l|))`
//! (the numerically stable form, as PyTorch `binary_cross_entropy_with_logits`),
//! and `d/dl = σ(l) - x`.

use ndarray::{ArrayView2, ArrayViewMut2, Zip};

use crate::{ModelError, Result};

/// Stable logistic sigmoid `1 / (1 + exp(-l))`, evaluated without overflow.
#[must_use]
#[inline]
pub fn sigmoid(l: f32) -> f32 {
    let e = (-l.abs()).exp();
    let s = 1.0 / (1.0 + e);
    if l >= 0.0 { s } else { 1.0 - s }
}

fn check_same(what: &'static str, a: &[usize], b: &[usize]) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(ModelError::ShapeMismatch {
            what,
            expected: a.to_vec(),
            found: b.to_vec(),
        })
    }
}

/// Sum over all elements of the Bernoulli negative log-likelihood
/// `max(l,0) - l x + log1p(exp(-|l|))` (PyTorch `binary_cross_entropy_with_logits`
/// with `reduction='sum'`). Accumulated in `f64`.
///
/// # Errors
/// [`ModelError::ShapeMismatch`] when `logits` and `target` differ in shape.
///
/// ```
/// use ndarray::array;
/// use phyvae_model::decoder::bce_with_logits;
/// // l = 0: log 2 whatever the target.
/// let v = bce_with_logits(array![[0.0f32, 0.0]].view(), array![[0.0f32, 1.0]].view()).unwrap();
/// assert!((v - 2.0 * std::f64::consts::LN_2).abs() < 1e-6);
/// ```
pub fn bce_with_logits(logits: ArrayView2<'_, f32>, target: ArrayView2<'_, f32>) -> Result<f64> {
    check_same("bce target", logits.shape(), target.shape())?;
    let mut sum = 0.0f64;
    Zip::from(&logits).and(&target).for_each(|&l, &x| {
        let l = f64::from(l);
        let x = f64::from(x);
        sum += l.max(0.0) - l * x + (-l.abs()).exp().ln_1p();
    });
    Ok(sum)
}

/// Writes `dL/dlogit = σ(l) - x` of [`bce_with_logits`] into `grad` (no allocation).
///
/// # Errors
/// [`ModelError::ShapeMismatch`] when the three arrays differ in shape.
pub fn bce_with_logits_grad(
    logits: ArrayView2<'_, f32>,
    target: ArrayView2<'_, f32>,
    mut grad: ArrayViewMut2<'_, f32>,
) -> Result<()> {
    check_same("bce target", logits.shape(), target.shape())?;
    check_same("bce gradient", logits.shape(), grad.shape())?;
    Zip::from(&mut grad)
        .and(&logits)
        .and(&target)
        .for_each(|g, &l, &x| *g = sigmoid(l) - x);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    #[test]
    fn hand_values() {
        // l = 2, x = 1: log1p(exp(-2)) = ln(1.1353352832) = 0.1269280110.
        // l = -3, x = 0: 0 + 0 + log1p(exp(-3)) = 0.0485873516.
        let v =
            bce_with_logits(array![[2.0f32, -3.0]].view(), array![[1.0f32, 0.0]].view()).unwrap();
        assert!((v - (0.126_928_011 + 0.048_587_351_6)).abs() < 1e-6, "{v}");
    }

    #[test]
    fn large_logits_are_finite() {
        // l = 100, x = 0: 100 + log1p(e^-100) = 100; l = -100, x = 1: 100.
        let v = bce_with_logits(
            array![[100.0f32, -100.0]].view(),
            array![[0.0f32, 1.0]].view(),
        )
        .unwrap();
        assert!((v - 200.0).abs() < 1e-9);
    }

    #[test]
    fn gradient_matches_finite_difference() {
        let l = array![[0.3f32, -1.7, 4.0]];
        let x = array![[0.2f32, 1.0, 0.0]];
        let mut g = Array2::zeros((1, 3));
        bce_with_logits_grad(l.view(), x.view(), g.view_mut()).unwrap();
        for j in 0..3 {
            let h = 1e-3f32;
            let mut lp = l.clone();
            lp[[0, j]] += h;
            let mut lm = l.clone();
            lm[[0, j]] -= h;
            let fd = (bce_with_logits(lp.view(), x.view()).unwrap()
                - bce_with_logits(lm.view(), x.view()).unwrap())
                / (2.0 * f64::from(h));
            assert!(
                (fd - f64::from(g[[0, j]])).abs() < 1e-3,
                "{j}: {fd} vs {}",
                g[[0, j]]
            );
        }
    }

    #[test]
    fn shape_mismatch() {
        let r = bce_with_logits(Array2::zeros((2, 3)).view(), Array2::zeros((3, 2)).view());
        assert!(matches!(r, Err(ModelError::ShapeMismatch { .. })));
    }
}
