//! The fused decoder kernel ([`DecoderWorkspace`]) as a candle custom op
//! (`candle_core::CustomOp3`) with an explicit backward pass.
//!
//! The op maps `(z (b, n), coords (b, N, d), packed (P,))` to logits `(b, N)`.
//! `packed` is the nine decoder tensors flattened row-major and concatenated
//! in the order `Wc (H x d), bc (H), Wz (H x n), W1 (H x H), b1 (H),
//! W2 (H x H), b2 (H), w3 (H), b3 (1)` (the fields of [`DecoderParams`];
//! [`SpatialDecoder::pack_params`](super::SpatialDecoder::pack_params) builds
//! it with `Tensor::cat`, whose backward splits the packed gradient back to
//! each parameter), so `P = 2H^2 + (d + n + 4) H + 1` (33 793 for `d = 2`,
//! `n = 2`, `H = 128`).
//!
//! Costs beyond the kernel: each forward copies the `P` packed floats into the
//! kernel's [`DecoderParams`] (about 135 kB at `H = 128`) and the `b*N` logits
//! out; each backward copies `dL/dlogits` in and `dL/dz`, `dL/dcoords` and the
//! `P` parameter gradients out. That is `O(b N + H^2)` memory traffic against
//! `O(b N H^2)` arithmetic (about 30 GFLOP per training batch), i.e.
//! negligible. Inputs with a non-contiguous layout are copied once
//! (`Tensor::contiguous`, which does nothing for contiguous tensors).
//!
//! Reference for the custom-op mechanism: candle-core 0.11 `custom_op.rs`
//! (`CustomOp3::cpu_fwd` and `CustomOp3::bwd`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use ndarray::{Array1, Array2, ArrayView2, ArrayViewD, ArrayViewMutD};

use super::{DecoderGrads, DecoderParams, DecoderWorkspace, check_shape};
use crate::error::FrameworkContext;
use crate::{ModelError, Result};

/// Name of the custom op in candle's error messages.
const OP_NAME: &str = "phyvae-fused-spatial-decoder";

/// Length `P` of the packed parameter vector for `n` latents, width `h` and
/// `d` coordinate inputs.
#[must_use]
fn packed_len(n_latent: usize, hidden: usize, inputs: usize) -> usize {
    2 * hidden * hidden + (inputs + n_latent + 4) * hidden + 1
}

/// The arrays of `p` in packing order (see the module docs), `b3` aside.
fn arrays(p: &DecoderParams) -> [ArrayViewD<'_, f32>; 8] {
    [
        p.wc.view().into_dyn(),
        p.bc.view().into_dyn(),
        p.wz.view().into_dyn(),
        p.w1.view().into_dyn(),
        p.b1.view().into_dyn(),
        p.w2.view().into_dyn(),
        p.b2.view().into_dyn(),
        p.w3.view().into_dyn(),
    ]
}

/// The arrays of `p` in packing order, mutably, `b3` aside.
fn arrays_mut(p: &mut DecoderParams) -> [ArrayViewMutD<'_, f32>; 8] {
    [
        p.wc.view_mut().into_dyn(),
        p.bc.view_mut().into_dyn(),
        p.wz.view_mut().into_dyn(),
        p.w1.view_mut().into_dyn(),
        p.b1.view_mut().into_dyn(),
        p.w2.view_mut().into_dyn(),
        p.b2.view_mut().into_dyn(),
        p.w3.view_mut().into_dyn(),
    ]
}

/// Copies a packed parameter vector into `p` (same `n`, `H`, `d`), an array
/// at a time (a plain copy where the array is in standard layout, as those
/// the crate builds are).
fn unpack(packed: &[f32], p: &mut DecoderParams) -> Result<()> {
    let len = packed_len(p.n_latent(), p.hidden(), p.inputs());
    check_shape("packed decoder parameters", &[len], &[packed.len()])?;
    let mut rest = packed;
    for mut dst in arrays_mut(p) {
        let (head, tail) = rest.split_at(dst.len());
        let src =
            ArrayViewD::from_shape(dst.raw_dim(), head).map_err(|_| ModelError::ShapeMismatch {
                what: "packed decoder parameters",
                expected: dst.shape().to_vec(),
                found: vec![head.len()],
            })?;
        dst.assign(&src);
        rest = tail;
    }
    p.b3 = rest[0];
    Ok(())
}

/// `p` packed into one vector (see the module docs).
fn pack(p: &DecoderParams) -> Vec<f32> {
    let mut out = Vec::with_capacity(packed_len(p.n_latent(), p.hidden(), p.inputs()));
    for a in arrays(p) {
        out.extend(a.iter());
    }
    out.push(p.b3);
    out
}

/// Zero-filled parameters with `n` latents, width `h` and `d` coordinate inputs.
fn zero_params(n: usize, h: usize, d: usize) -> Result<DecoderParams> {
    DecoderParams::new(
        Array2::zeros((h, d)),
        Array1::zeros(h),
        Array2::zeros((h, n)),
        Array2::zeros((h, h)),
        Array1::zeros(h),
        Array2::zeros((h, h)),
        Array1::zeros(h),
        Array1::zeros(h),
        0.0,
    )
}

/// What the op's forward and backward share: the workspace and the kernel's
/// copies of the parameters (of the last forward) and of their gradients.
#[derive(Debug)]
struct FusedState {
    workspace: DecoderWorkspace,
    params: DecoderParams,
    grads: DecoderGrads,
}

/// The fused CPU decoder kernel as a differentiable candle op.
///
/// One workspace per `FusedDecoder`: it holds the activations of the **last**
/// forward pass only, so one decode per backward. A graph that decodes twice
/// (two latent samples, two decoders) needs one `FusedDecoder` per decode.
/// Calling `backward` on a graph whose fused forward is no longer the last one
/// run on its workspace is an error (a generation counter is compared), never
/// wrong gradients. Repeating the backward of the last forward is fine (the
/// activations are kept).
///
/// Each forward copies the `P` packed parameters (`P = 2H^2 + (d + n + 4) H + 1`,
/// about 135 kB at `H = 128`) into the kernel's [`DecoderParams`] and the
/// logits out; each backward copies `dL/dlogits` in and the gradients out:
/// `O(b N + H^2)` copies against `O(b N H^2)` arithmetic.
///
/// CPU and `f32` only; [`SpatialDecoder::forward_reference`](super::SpatialDecoder::forward_reference)
/// is the same decoder in plain candle ops for other devices.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use phyvae_model::decoder::{FusedDecoder, SpatialDecoder};
/// use phyvae_model::params::ParamStore;
/// use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let mut store = ParamStore::new(&Device::Cpu);
/// let dec = SpatialDecoder::init(&mut store, "dec", 2, 8, &mut rng).unwrap();
/// let op = FusedDecoder::new(4, 3, 2, 8).unwrap();
/// let z = Tensor::zeros((2, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
/// let coords = Tensor::zeros((2, 9, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
/// let logits = dec.forward_fused(&op, &z, &coords).unwrap(); // (2, 9)
/// let grads = logits.sum_all().unwrap().backward().unwrap();
/// let (_, w1) = store.vars().find(|(name, _)| *name == "dec.fc1.weight").unwrap();
/// assert_eq!(grads.get(w1.as_tensor()).unwrap().dims(), &[8, 8]);
/// ```
#[derive(Debug)]
pub struct FusedDecoder {
    state: Arc<Mutex<FusedState>>,
    capacity: usize,
    window: usize,
    n_latent: usize,
    hidden: usize,
    inputs: usize,
}

impl FusedDecoder {
    /// Allocates the workspace for batches of up to `capacity_batch` patches of
    /// `window x window` pixels, `n_latent` content latents and width `hidden`,
    /// with the two coordinates as inputs (pyroVED's decoder).
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when a size is 0.
    pub fn new(
        capacity_batch: usize,
        window: usize,
        n_latent: usize,
        hidden: usize,
    ) -> Result<Self> {
        Self::with_inputs(capacity_batch, window, n_latent, hidden, 2)
    }

    /// [`new`](Self::new) with `inputs` coordinate inputs per pixel (`d`).
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when a size is 0.
    pub fn with_inputs(
        capacity_batch: usize,
        window: usize,
        n_latent: usize,
        hidden: usize,
        inputs: usize,
    ) -> Result<Self> {
        let workspace =
            DecoderWorkspace::with_inputs(capacity_batch, window, n_latent, hidden, inputs)?;
        let params = zero_params(n_latent, hidden, inputs)?;
        let grads = zero_params(n_latent, hidden, inputs)?;
        Ok(Self {
            state: Arc::new(Mutex::new(FusedState {
                workspace,
                params,
                grads,
            })),
            capacity: capacity_batch,
            window,
            n_latent,
            hidden,
            inputs,
        })
    }

    /// Largest batch `B` one call may decode.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Patch side in pixels.
    #[must_use]
    pub fn window(&self) -> usize {
        self.window
    }

    /// Pixels per patch `N = window^2`.
    #[must_use]
    pub fn n_pixels(&self) -> usize {
        self.window * self.window
    }

    /// Number of content latents `n`.
    #[must_use]
    pub fn n_latent(&self) -> usize {
        self.n_latent
    }

    /// Hidden width `H`.
    #[must_use]
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Coordinate inputs `d` per pixel.
    #[must_use]
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Length `P = 2H^2 + (d + n + 4) H + 1` of the packed parameter vector.
    #[must_use]
    pub fn packed_len(&self) -> usize {
        packed_len(self.n_latent, self.hidden, self.inputs)
    }

    /// Logits `(b, N)` of the decoder for content latents `z` (`(b, n)`, any
    /// `1 <= b <= B`, `B` the [`capacity`](Self::capacity)), per-pixel coordinates
    /// `coords` (`(b, N, d)`) and the packed parameters `packed` (`(P,)`, as
    /// built by [`SpatialDecoder::pack_params`](super::SpatialDecoder::pack_params)), recorded for candle's backward pass (gradients flow
    /// to all three inputs).
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] for a tensor not on the CPU (`device`),
    /// not `f32` (`dtype`), or a batch outside `1..=capacity` (`batch`);
    /// [`ModelError::ShapeMismatch`] for a wrong shape;
    /// [`ModelError::Framework`] if candle fails.
    pub fn forward(&self, z: &Tensor, coords: &Tensor, packed: &Tensor) -> Result<Tensor> {
        for t in [z, coords, packed] {
            if !t.device().is_cpu() {
                return Err(ModelError::InvalidParameter {
                    name: "device",
                    value: format!("{:?}", t.device().location()),
                    rule: "the fused decoder runs on the CPU; use forward_reference on other devices",
                });
            }
            if t.dtype() != DType::F32 {
                return Err(ModelError::InvalidParameter {
                    name: "dtype",
                    value: format!("{:?}", t.dtype()),
                    rule: "the fused decoder takes f32 tensors",
                });
            }
        }
        let bsz = z.dims().first().copied().unwrap_or(0);
        check_shape("content latents z (b, n)", &[bsz, self.n_latent], z.dims())?;
        if bsz == 0 || bsz > self.capacity {
            return Err(ModelError::InvalidParameter {
                name: "batch",
                value: format!("{bsz} (fused decoder capacity {})", self.capacity),
                rule: "a decoded batch must hold between 1 and the workspace capacity patches",
            });
        }
        check_shape(
            "coordinates (b, N, d)",
            &[bsz, self.n_pixels(), self.inputs],
            coords.dims(),
        )?;
        check_shape(
            "packed decoder parameters (P)",
            &[self.packed_len()],
            packed.dims(),
        )?;
        let z = z.contiguous().ctx("copying z to a contiguous layout")?; // (b, n)
        let coords = coords
            .contiguous()
            .ctx("copying coordinates to a contiguous layout")?; // (b, N, d)
        let packed = packed
            .contiguous()
            .ctx("copying packed parameters to a contiguous layout")?; // (P)
        let op = DecodeOp {
            state: Arc::clone(&self.state),
            generation: AtomicU64::new(0),
        };
        z.apply_op3_arc(&coords, &packed, Arc::new(Box::new(op)))
            .ctx("fused decoder forward") // (b, N)
    }
}

/// One application of the fused decoder: remembers which forward of the
/// shared workspace it ran, so that its backward can refuse stale activations.
struct DecodeOp {
    state: Arc<Mutex<FusedState>>,
    /// Workspace generation after this op's forward (0: forward not run).
    generation: AtomicU64,
}

/// A [`ModelError`] as a candle error (inside the custom-op callbacks).
fn to_candle(e: ModelError) -> candle_core::Error {
    candle_core::Error::wrap(e)
}

/// The `f32` elements of a contiguous CPU tensor.
fn f32_data<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &'static str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else {
        return Err(to_candle(ModelError::InvalidParameter {
            name: "dtype",
            value: what.to_string(),
            rule: "the fused decoder takes f32 tensors",
        }));
    };
    layout
        .contiguous_offsets()
        .and_then(|(start, end)| values.get(start..end))
        .ok_or_else(|| {
            to_candle(ModelError::InvalidParameter {
                name: "layout",
                value: what.to_string(),
                rule: "the fused decoder op takes contiguous tensors (FusedDecoder::forward copies)",
            })
        })
}

impl DecodeOp {
    fn lock(&self) -> candle_core::Result<std::sync::MutexGuard<'_, FusedState>> {
        self.state
            .lock()
            .map_err(|_| candle_core::Error::msg("fused decoder workspace: lock poisoned"))
    }
}

impl CustomOp3 for DecodeOp {
    fn name(&self) -> &'static str {
        OP_NAME
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let z = f32_data(s1, l1, "z")?; // (b, n)
        let coords = f32_data(s2, l2, "coordinates")?; // (b, N, d)
        let packed = f32_data(s3, l3, "packed parameters")?; // (P)
        let (bsz, n) = l1.shape().dims2()?;
        let (_, n_pix, d) = l2.shape().dims3()?;
        let z = ArrayView2::from_shape((bsz, n), z).map_err(candle_core::Error::wrap)?;
        let coords =
            ArrayView2::from_shape((bsz * n_pix, d), coords).map_err(candle_core::Error::wrap)?;
        let mut guard = self.lock()?;
        let state = &mut *guard;
        unpack(packed, &mut state.params).map_err(to_candle)?;
        let logits = state
            .workspace
            .forward(&state.params, z, coords)
            .map_err(to_candle)?; // (b, N)
        let out: Vec<f32> = logits.iter().copied().collect();
        self.generation
            .store(state.workspace.generation(), Ordering::SeqCst);
        Ok((CpuStorage::F32(out), Shape::from((bsz, n_pix))))
    }

    fn bwd(
        &self,
        z: &Tensor,
        coords: &Tensor,
        packed: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dlogits: Vec<f32> = grad_res.flatten_all()?.to_vec1()?; // (b*N)
        let mine = self.generation.load(Ordering::SeqCst);
        let mut guard = self.lock()?;
        let state = &mut *guard;
        let current = state.workspace.generation();
        if mine == 0 || mine != current {
            return Err(to_candle(ModelError::InvalidParameter {
                name: "fused decoder backward",
                value: format!(
                    "activations of forward {mine} wanted, the workspace holds forward {current}"
                ),
                rule: "stale backward: one decode per backward on a FusedDecoder's workspace \
                       (use one FusedDecoder per decode)",
            }));
        }
        let (bsz, n_pix) = (state.workspace.batch(), state.workspace.n_pixels());
        let dlogits =
            ArrayView2::from_shape((bsz, n_pix), &dlogits[..]).map_err(candle_core::Error::wrap)?;
        state
            .workspace
            .backward(&state.params, dlogits, &mut state.grads)
            .map_err(to_candle)?;
        let dev = z.device();
        let dz: Vec<f32> = state.workspace.grad_z().iter().copied().collect();
        let dz = Tensor::from_vec(dz, z.shape(), dev)?; // (b, n)
        let dc: Vec<f32> = state.workspace.grad_coords().iter().copied().collect();
        let dc = Tensor::from_vec(dc, coords.shape(), dev)?; // (b, N, d)
        let dp = pack(&state.grads);
        let dp = Tensor::from_vec(dp, packed.shape(), dev)?; // (P)
        Ok((Some(dz), Some(dc), Some(dp)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Every scalar of `p` in packing order, element by element (the
    /// definition the module docs give).
    fn packed_order(p: &DecoderParams) -> impl Iterator<Item = f32> + '_ {
        p.wc.iter()
            .chain(p.bc.iter())
            .chain(p.wz.iter())
            .chain(p.w1.iter())
            .chain(p.b1.iter())
            .chain(p.w2.iter())
            .chain(p.b2.iter())
            .chain(p.w3.iter())
            .chain(std::iter::once(&p.b3))
            .copied()
    }

    #[test]
    fn packed_len_counts_every_tensor() {
        // n = 2, H = 128: Wc 256 + bc 128 + Wz 256 + W1 16384 + b1 128
        // + W2 16384 + b2 128 + w3 128 + b3 1 = 33 793
        assert_eq!(packed_len(2, 128, 2), 33_793);
        // n = 1, H = 1: 2 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 = 10
        assert_eq!(packed_len(1, 1, 2), 10);
        // d = 6 (two Fourier features): Wc grows by 4 H = 512
        assert_eq!(packed_len(2, 128, 6), 33_793 + 512);
    }

    #[test]
    fn unpack_inverts_pack_and_checks_length() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let p = DecoderParams::init(3, 5, &mut rng).unwrap();
        let packed: Vec<f32> = packed_order(&p).collect();
        assert_eq!(packed.len(), packed_len(3, 5, 2));
        // Wc first, row-major: element (0, 1) is second; b3 last.
        assert_eq!(packed[1], p.wc[[0, 1]]);
        assert_eq!(packed[packed.len() - 1], p.b3);
        // Wz starts after Wc (10) and bc (5): element (1, 2) at 15 + 1 * 3 + 2.
        assert_eq!(packed[20], p.wz[[1, 2]]);
        let mut q = zero_params(3, 5, 2).unwrap();
        unpack(&packed, &mut q).unwrap();
        assert_eq!(q, p);
        assert!(matches!(
            unpack(&packed[1..], &mut q),
            Err(ModelError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn slice_copies_agree_with_the_element_order_in_any_layout() {
        use ndarray::ShapeBuilder;
        let column_major = |a: &Array2<f32>| {
            let mut c = Array2::zeros(a.raw_dim().f());
            c.assign(a);
            c
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let p = DecoderParams::init(2, 4, &mut rng).unwrap();
        let want: Vec<f32> = packed_order(&p).collect();
        assert!(p.wc.is_standard_layout() && p.w1.is_standard_layout());
        assert_eq!(pack(&p), want);
        // Wc and W1 stored column-major: the same packing order.
        let mut t = p.clone();
        t.wc = column_major(&p.wc);
        t.w1 = column_major(&p.w1);
        assert!(!t.wc.is_standard_layout() && !t.w1.is_standard_layout());
        assert_eq!(pack(&t), want);
        let mut q = zero_params(2, 4, 2).unwrap();
        q.w1 = column_major(&q.w1);
        unpack(&want, &mut q).unwrap();
        assert_eq!(q, p);
    }
}
