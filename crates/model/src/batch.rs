//! Batches of patches as tensors: the one copy of chosen patches of a
//! [`PatchSet`] into a caller-owned buffer and from there into a `(B, N)`
//! tensor, used by the trainer (its shuffled batches and the gradient-mode
//! `Psi` tile) and by [`encode_patches`](crate::infer::encode_patches).

use candle_core::{Device, Tensor};
use phyvae_data::patches::PatchSet;

use crate::error::FrameworkContext;
use crate::{ModelError, Result};

/// Copies the patches `indices` of `patches`, in that order, into the front of
/// `buf` (row `k` holds patch `indices[k]`, `N = patches.patch_len()` values,
/// scaled as the set was built) and returns those `B` rows as a `(B, N)` `f32`
/// tensor on `device`; `what` names the tensor in a framework error.
///
/// `buf` is the caller's buffer, reused across calls: this allocates nothing
/// but the tensor itself.
///
/// # Errors
/// [`ModelError::ShapeMismatch`] when `buf` has no room for every patch;
/// [`ModelError::Data`] on an index outside the set;
/// [`ModelError::Framework`] when the tensor cannot be made.
pub(crate) fn patches_to_tensor(
    patches: &PatchSet,
    indices: impl IntoIterator<Item = usize>,
    buf: &mut [f32],
    device: &Device,
    what: &'static str,
) -> Result<Tensor> {
    let np = patches.patch_len();
    let len = buf.len();
    let mut b = 0;
    for i in indices {
        let row = buf
            .get_mut(b * np..(b + 1) * np)
            .ok_or_else(|| ModelError::ShapeMismatch {
                what: "patch batch buffer",
                expected: vec![(b + 1) * np],
                found: vec![len],
            })?;
        patches.copy_patch_into(i, row)?;
        b += 1;
    }
    Tensor::from_slice(&buf[..b * np], (b, np), device).ctx(what) // (B, N)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use phyvae_data::patches::{Levelling, PatchGrid, Scaling};

    /// The four 2 x 2 patches of a 4 x 4 ramp.
    fn set() -> PatchSet {
        let img = Array2::from_shape_fn((4, 4), |(r, c)| (r * 4 + c) as f32);
        let grid = PatchGrid::new(4, 4, 2, 2).unwrap();
        PatchSet::new(img.view(), grid, Scaling::GlobalMinMax, Levelling::None).unwrap()
    }

    #[test]
    fn rows_are_the_patches_in_the_given_order() {
        let ps = set();
        let mut buf = vec![0.0f32; 3 * 4];
        let t = patches_to_tensor(&ps, [3, 0], &mut buf, &Device::Cpu, "test").unwrap();
        let mut want = vec![0.0f32; 8];
        ps.copy_patch_into(3, &mut want[..4]).unwrap();
        ps.copy_patch_into(0, &mut want[4..]).unwrap();
        assert_eq!(t.dims(), &[2, 4]);
        assert_eq!(t.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want);
    }

    #[test]
    fn a_short_buffer_is_an_error() {
        let ps = set();
        let mut buf = vec![0.0f32; 4];
        assert!(matches!(
            patches_to_tensor(&ps, [0, 1], &mut buf, &Device::Cpu, "test"),
            Err(ModelError::ShapeMismatch { .. })
        ));
    }
}
