//! The fused CPU kernel of the spatial decoder: [`DecoderWorkspace`], every
//! buffer of a forward and backward pass, and the passes themselves (the
//! elementwise layer passes, the per-patch layer stack over row blocks, the
//! per-patch sums). Layout, FLOP count and allocations are described in the
//! [decoder module](super) documentation.

use multiversion::multiversion;
use ndarray::{Array1, Array2, ArrayView2, Axis, Slice};
use rayon::prelude::*;

use super::matmul::{Gemm, MatRef};
use super::{DecoderGrads, DecoderParams, ROW_BLOCK, check_shape, shape_err, tanh_f32};
use crate::{ModelError, Result};

/// Every buffer the forward and backward passes need for batches of up to
/// `B` (the capacity) patches of a fixed `(window, n, H)`, allocated once by
/// [`DecoderWorkspace::new`].
///
/// [`forward`](Self::forward) and [`backward`](Self::backward) never allocate:
/// they only make views of the first `b` patches' worth of these buffers. One
/// workspace is reused across batches of any size `b <= B`; results do not
/// depend on what an earlier call left in it.
#[derive(Debug, Clone)]
pub struct DecoderWorkspace {
    capacity: usize,
    window: usize,
    n_latent: usize,
    hidden: usize,
    /// Coordinate inputs `d` per pixel (2: pyroVED's decoder).
    inputs: usize,
    /// Patches `b` of the last forward pass (0: no valid forward pass).
    batch: usize,
    /// Number of forward passes started on this workspace.
    generation: u64,
    /// Copy of the content latents of the last forward, `B x n` (first `b` rows used).
    z: Array2<f32>,
    /// Copy of the coordinates of the last forward, `(B*N) x d`.
    coords: Array2<f32>,
    /// Layer activations, each `(B*N) x H` row-major.
    h0: Vec<f32>,
    h1: Vec<f32>,
    h2: Vec<f32>,
    /// Per-patch delta buffers for one row block, `B x (2 x ROW_BLOCK' x H)`
    /// (`ROW_BLOCK' = min(N, ROW_BLOCK)`; ping-pong in backward).
    scratch: Vec<f32>,
    /// Per-patch partial weight gradients, `B x [dW1 (H x H) | dW2 (H x H)]`.
    patch_w: Vec<f32>,
    /// Logits, `B x N`.
    logits: Array2<f32>,
    /// Per-patch `H`-vectors `bc + Wz z_b` of the forward pass, `B x H`.
    patch_c: Vec<f32>,
    /// Per-patch sums of the backward pass, `B x ((4 + d)H + 1)`, laid out as
    /// [`Acc`] describes.
    patch_acc: Vec<f32>,
    /// Columns of `Wc`, one after the other: `d x H`.
    wct: Vec<f32>,
    /// `dL/dz`, `B x n`.
    dz: Array2<f32>,
    /// `dL/dcoords`, `(B*N) x d`.
    dcoords: Array2<f32>,
}

/// Number of independent partial sums in [`dot`] (one SIMD register of f32 lanes
/// on AVX; lets the compiler vectorise a reduction it may not reassociate).
const DOT_LANES: usize = 8;

/// `sum_j a[j] b[j]` with [`DOT_LANES`] interleaved partial sums.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; DOT_LANES];
    let (ac, bc) = (a.chunks_exact(DOT_LANES), b.chunks_exact(DOT_LANES));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(&x, &y)| x * y)
        .sum();
    for (ca, cb) in ac.zip(bc) {
        for ((s, &x), &y) in acc.iter_mut().zip(ca).zip(cb) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

// The elementwise passes below are compiled for the baseline target and, via
// `multiversion`, for AVX2+FMA and AVX-512, chosen once at run time. They use
// no fused multiply-add and no reassociation, so every version gives
// bit-identical results; only the vector width changes.

/// Layer 0 for one patch: `row[j] = tanh(sum_k wct[k][j] p[k] + c[j])` for
/// every `H`-row of `chunk`, with `p` the row's `d` coordinate inputs in `xy`
/// and `wct` the `d` columns of `Wc` one after the other (summed in order `k =
/// 0, 1, ...`, then `c[j]` added).
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn layer0_tanh(chunk: &mut [f32], c: &[f32], xy: &[f32], wct: &[f32]) {
    let h = c.len();
    let d = wct.len() / h;
    let (first, rest) = wct.split_at(h);
    for (row, p) in chunk.chunks_exact_mut(h).zip(xy.chunks_exact(d)) {
        for (v, &a) in row.iter_mut().zip(first) {
            *v = a * p[0];
        }
        for (col, &pk) in rest.chunks_exact(h).zip(&p[1..]) {
            for (v, &a) in row.iter_mut().zip(col) {
                *v += a * pk;
            }
        }
        for (v, &cj) in row.iter_mut().zip(c) {
            *v = tanh_f32(*v + cj);
        }
    }
}

/// `row[j] = tanh(row[j] + bias[j])` for every `H`-row of `chunk`.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn bias_tanh(chunk: &mut [f32], bias: &[f32]) {
    for row in chunk.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = tanh_f32(*v + b);
        }
    }
}

/// Output layer and layer 2 of the backward pass for one row block: with
/// `g = dL/dlogit` of each pixel, `d[j] = g w3[j] (1 - h2[j]^2)` for every
/// `H`-row; adds the column sums of `d` to `acc_db2` and of `g h2` to
/// `acc_dw3`; returns the sum of `g` (the block's share of `dL/db3`).
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn output_backward(
    d: &mut [f32],
    act: &[f32],
    dl: &[f32],
    w3: &[f32],
    acc_db2: &mut [f32],
    acc_dw3: &mut [f32],
) -> f32 {
    let h = w3.len();
    let mut sg = 0.0f32;
    for ((drow, hrow), &g) in d.chunks_exact_mut(h).zip(act.chunks_exact(h)).zip(dl) {
        sg += g;
        for ((((dv, &hv), &w), a2), a3) in drow
            .iter_mut()
            .zip(hrow)
            .zip(w3)
            .zip(acc_db2.iter_mut())
            .zip(acc_dw3.iter_mut())
        {
            let v = g * w * (1.0 - hv * hv);
            *dv = v;
            *a2 += v;
            *a3 += g * hv;
        }
    }
    sg
}

/// Layer 0 of the backward pass for one row block: `d[j] *= 1 - h0[j]^2` for
/// every `H`-row; adds the column sums of the result to `acc` (`dL/dbc`) and of
/// the result times the row's input `p[k]` to part `k` of `accg` (`d x H`,
/// `dL/dWc` by columns); writes `dL/dcoords` of the row (`d . wct[k]` for each
/// `k`) into `dxy`.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn layer0_backward(
    d: &mut [f32],
    act: &[f32],
    acc: &mut [f32],
    accg: &mut [f32],
    xy: &[f32],
    dxy: &mut [f32],
    wct: &[f32],
) {
    let h = acc.len();
    let inputs = wct.len() / h;
    for (((drow, hrow), p), dp) in d
        .chunks_exact_mut(h)
        .zip(act.chunks_exact(h))
        .zip(xy.chunks_exact(inputs))
        .zip(dxy.chunks_exact_mut(inputs))
    {
        for ((dv, &hv), a) in drow.iter_mut().zip(hrow).zip(acc.iter_mut()) {
            let v = *dv * (1.0 - hv * hv);
            *dv = v;
            *a += v;
        }
        // The row is still in L1: one pass and one vectorised dot product per input.
        for (((g, &pk), col), o) in accg
            .chunks_exact_mut(h)
            .zip(p)
            .zip(wct.chunks_exact(h))
            .zip(dp.iter_mut())
        {
            for (gj, &v) in g.iter_mut().zip(drow.iter()) {
                *gj += v * pk;
            }
            *o = dot(drow, col);
        }
    }
}

/// `d[j] *= 1 - h[j]^2` for a row block, adding the column sums of the result to `acc`.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn tanh_backward(d: &mut [f32], h: &[f32], acc: &mut [f32]) {
    let width = acc.len();
    for (drow, hrow) in d.chunks_exact_mut(width).zip(h.chunks_exact(width)) {
        for ((dv, &hv), a) in drow.iter_mut().zip(hrow).zip(acc.iter_mut()) {
            *dv *= 1.0 - hv * hv;
            *a += *dv;
        }
    }
}

/// The contiguous row-major data of an array created by this module.
fn flat<'a>(a: &'a Array2<f32>, what: &'static str) -> Result<&'a [f32]> {
    a.as_slice().ok_or_else(|| shape_err(what, a.shape(), &[]))
}

/// Mutable counterpart of [`flat`].
fn flat_mut<'a>(a: &'a mut Array2<f32>, what: &'static str) -> Result<&'a mut [f32]> {
    let shape = [a.nrows(), a.ncols()];
    a.as_slice_mut().ok_or_else(|| shape_err(what, &shape, &[]))
}

/// The decoder's parameters as contiguous slices, for the per-patch kernels.
struct Layers<'a> {
    h: usize,
    /// Coordinate inputs `d`.
    d: usize,
    /// The `d` columns of `Wc`, `d x H`.
    wct: &'a [f32],
    /// `W1`, `H x H` row-major, `(out, in)`.
    w1: &'a [f32],
    b1: &'a [f32],
    /// `W2`, `H x H` row-major, `(out, in)`.
    w2: &'a [f32],
    b2: &'a [f32],
    w3: &'a [f32],
    b3: f32,
}

impl<'a> Layers<'a> {
    fn new(params: &'a DecoderParams, wct: &'a [f32]) -> Result<Self> {
        let h = params.hidden();
        let vec =
            |a: &'a Array1<f32>, what| a.as_slice().ok_or_else(|| shape_err(what, &[h], a.shape()));
        let mat = |a: &'a Array2<f32>, what| {
            a.as_slice()
                .ok_or_else(|| shape_err(what, &[h, h], a.shape()))
        };
        Ok(Self {
            h,
            d: params.inputs(),
            wct,
            w1: mat(&params.w1, "W1 (contiguous)")?,
            b1: vec(&params.b1, "b1 (contiguous)")?,
            w2: mat(&params.w2, "W2 (contiguous)")?,
            b2: vec(&params.b2, "b2 (contiguous)")?,
            w3: vec(&params.w3, "w3 (contiguous)")?,
            b3: params.b3,
        })
    }

    /// Forward pass of one patch (`N` rows), [`ROW_BLOCK`] rows at a time so
    /// that each block's activations are still in cache for the next layer:
    /// `act = [h0, h1, h2]` (each `N x H`), `out` the `N` logits, `c` the
    /// patch's `bc + Wz z_b`, `xy` its `N x d` coordinate inputs.
    fn forward_patch(
        &self,
        c: &[f32],
        xy: &[f32],
        act: [&mut [f32]; 3],
        out: &mut [f32],
    ) -> Result<()> {
        let (h, d) = (self.h, self.d);
        let [h0, h1, h2] = act;
        let (w1t, w2t) = (
            MatRef::row_major(self.w1, h, h).t(),
            MatRef::row_major(self.w2, h, h).t(),
        );
        for ((((a0, a1), a2), xyb), ob) in h0
            .chunks_mut(ROW_BLOCK * h)
            .zip(h1.chunks_mut(ROW_BLOCK * h))
            .zip(h2.chunks_mut(ROW_BLOCK * h))
            .zip(xy.chunks(ROW_BLOCK * d))
            .zip(out.chunks_mut(ROW_BLOCK))
        {
            let rows = ob.len();
            // h0 (rows x H) = tanh(Wc xy + c)
            layer0_tanh(a0, c, xyb, self.wct);
            // h1 (rows x H) = tanh(h0 (rows x H) . W1^T (H x H) + b1)
            Gemm::Overwrite.run(MatRef::row_major(a0, rows, h), w1t, a1, h)?;
            bias_tanh(a1, self.b1);
            // h2 (rows x H) = tanh(h1 (rows x H) . W2^T (H x H) + b2)
            Gemm::Overwrite.run(MatRef::row_major(a1, rows, h), w2t, a2, h)?;
            bias_tanh(a2, self.b2);
            // logits (rows) = h2 (rows x H) . w3 (H) + b3
            for (o, row) in ob.iter_mut().zip(a2.chunks_exact(h)) {
                *o = dot(row, self.w3) + self.b3;
            }
        }
        Ok(())
    }

    /// Backward pass of one patch, [`ROW_BLOCK`] rows at a time; the deltas of
    /// a block never leave the patch's `2 x ROW_BLOCK x H` scratch.
    fn backward_patch(&self, p: PatchBackward<'_>) -> Result<()> {
        let (h, d) = (self.h, self.d);
        let [h0, h1, h2] = p.act;
        p.acc.fill(0.0);
        let a = Acc::split_mut(p.acc, h, d);
        let half = p.scratch.len() / 2;
        let (sa, sb) = p.scratch.split_at_mut(half);
        let (dw1, dw2) = p.dw.split_at_mut(h * h);
        let (w1, w2) = (
            MatRef::row_major(self.w1, h, h),
            MatRef::row_major(self.w2, h, h),
        );
        let blocks = h0
            .chunks(ROW_BLOCK * h)
            .zip(h1.chunks(ROW_BLOCK * h))
            .zip(h2.chunks(ROW_BLOCK * h))
            .zip(p.dlogits.chunks(ROW_BLOCK))
            .zip(p.xy.chunks(ROW_BLOCK * d))
            .zip(p.dxy.chunks_mut(ROW_BLOCK * d));
        for (i, (((((a0, a1), a2), g), xyb), dxyb)) in blocks.enumerate() {
            let rows = g.len();
            let len = rows * h;
            let mode = if i == 0 {
                Gemm::Overwrite
            } else {
                Gemm::Accumulate
            };
            // delta2 (rows x H) = g w3 (1 - h2^2); sums into db2, dw3, db3
            let d2 = &mut sa[..len];
            *a.db3 += output_backward(d2, a2, g, self.w3, a.db2, a.dw3);
            // dW2 (H x H) (+)= delta2^T (H x rows) . h1 (rows x H)
            let d2 = MatRef::row_major(&sa[..len], rows, h);
            mode.run(d2.t(), MatRef::row_major(a1, rows, h), dw2, h)?;
            // delta1 (rows x H) = (delta2 (rows x H) . W2 (H x H)) (1 - h1^2); sums into db1
            let d1 = &mut sb[..len];
            Gemm::Overwrite.run(d2, w2, d1, h)?;
            tanh_backward(d1, a1, a.db1);
            // dW1 (H x H) (+)= delta1^T (H x rows) . h0 (rows x H)
            let d1 = MatRef::row_major(&sb[..len], rows, h);
            mode.run(d1.t(), MatRef::row_major(a0, rows, h), dw1, h)?;
            // delta0 (rows x H) = (delta1 (rows x H) . W1 (H x H)) (1 - h0^2);
            // sums into s0, p; dL/dcoords per row
            let d0 = &mut sa[..len];
            Gemm::Overwrite.run(d1, w1, d0, h)?;
            layer0_backward(d0, a0, a.s0, a.p, xyb, dxyb, self.wct);
        }
        Ok(())
    }
}

/// What [`Layers::backward_patch`] reads and writes for one patch.
struct PatchBackward<'a> {
    /// `[h0, h1, h2]` of the forward pass, each `N x H`.
    act: [&'a [f32]; 3],
    /// `dL/dlogit`, `N`.
    dlogits: &'a [f32],
    /// Coordinate inputs, `N x d`.
    xy: &'a [f32],
    /// `dL/dcoords` (output), `N x d`.
    dxy: &'a mut [f32],
    /// `2 x min(N, ROW_BLOCK) x H` delta buffers.
    scratch: &'a mut [f32],
    /// `[dW1 | dW2]` of this patch (output), `2 x H x H`.
    dw: &'a mut [f32],
    /// This patch's sums (output), [`Acc::len`].
    acc: &'a mut [f32],
}

/// Layout of one patch's backward sums, `(4 + d)H + 1` values:
/// `[db2 | dw3 | db1 | s0 | p | db3]`, each `H` long but `p` (`d x H`) and
/// `db3` (one value); `s0 = sum_i delta0_i` (`dL/dbc`, and `dL/dWz`, `dL/dz`
/// through `z_b`), `p[k] = sum_i delta0_i c_ik` (column `k` of `dL/dWc`).
struct Acc<'a> {
    db2: &'a [f32],
    dw3: &'a [f32],
    db1: &'a [f32],
    s0: &'a [f32],
    p: &'a [f32],
    db3: f32,
}

/// Mutable view of an [`Acc`] layout.
struct AccMut<'a> {
    db2: &'a mut [f32],
    dw3: &'a mut [f32],
    db1: &'a mut [f32],
    s0: &'a mut [f32],
    p: &'a mut [f32],
    db3: &'a mut f32,
}

impl<'a> Acc<'a> {
    /// Values per patch for width `h` and `d` coordinate inputs.
    const fn len(h: usize, d: usize) -> usize {
        (4 + d) * h + 1
    }

    /// Splits one patch's sums.
    fn split(a: &'a [f32], h: usize, d: usize) -> Self {
        Self {
            db2: &a[..h],
            dw3: &a[h..2 * h],
            db1: &a[2 * h..3 * h],
            s0: &a[3 * h..4 * h],
            p: &a[4 * h..(4 + d) * h],
            db3: a[(4 + d) * h],
        }
    }

    /// Splits one patch's sums for writing.
    fn split_mut(a: &'a mut [f32], h: usize, d: usize) -> AccMut<'a> {
        let (db2, rest) = a.split_at_mut(h);
        let (dw3, rest) = rest.split_at_mut(h);
        let (db1, rest) = rest.split_at_mut(h);
        let (s0, rest) = rest.split_at_mut(h);
        let (p, rest) = rest.split_at_mut(d * h);
        AccMut {
            db2,
            dw3,
            db1,
            s0,
            p,
            db3: &mut rest[0],
        }
    }
}

impl DecoderWorkspace {
    /// Allocates every buffer for batches of up to `capacity` patches of
    /// `window x window` pixels, `n_latent` content latents and width `hidden`,
    /// with the two coordinates as the first layer's inputs (pyroVED's decoder).
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when a size is 0.
    pub fn new(capacity: usize, window: usize, n_latent: usize, hidden: usize) -> Result<Self> {
        Self::with_inputs(capacity, window, n_latent, hidden, 2)
    }

    /// [`new`](Self::new) for `inputs` coordinate inputs per pixel (`d`, e.g.
    /// [`ModelConfig::n_decoder_inputs`](phyvae_run::config::ModelConfig::n_decoder_inputs)).
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when a size is 0.
    pub fn with_inputs(
        capacity: usize,
        window: usize,
        n_latent: usize,
        hidden: usize,
        inputs: usize,
    ) -> Result<Self> {
        for (name, v) in [
            ("batch", capacity),
            ("window", window),
            ("n_latent", n_latent),
            ("hidden", hidden),
            ("inputs", inputs),
        ] {
            if v == 0 {
                return Err(ModelError::InvalidParameter {
                    name,
                    value: "0".into(),
                    rule: "must be at least 1",
                });
            }
        }
        let n_pix = window * window;
        let act = capacity * n_pix * hidden;
        let block = n_pix.min(ROW_BLOCK);
        Ok(Self {
            capacity,
            window,
            n_latent,
            hidden,
            inputs,
            batch: 0,
            generation: 0,
            z: Array2::zeros((capacity, n_latent)),
            coords: Array2::zeros((capacity * n_pix, inputs)),
            h0: vec![0.0; act],
            h1: vec![0.0; act],
            h2: vec![0.0; act],
            scratch: vec![0.0; capacity * 2 * block * hidden],
            patch_w: vec![0.0; capacity * 2 * hidden * hidden],
            logits: Array2::zeros((capacity, n_pix)),
            patch_c: vec![0.0; capacity * hidden],
            patch_acc: vec![0.0; capacity * Acc::len(hidden, inputs)],
            wct: vec![0.0; inputs * hidden],
            dz: Array2::zeros((capacity, n_latent)),
            dcoords: Array2::zeros((capacity * n_pix, inputs)),
        })
    }

    /// Largest batch `B` the buffers hold.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Patches `b` of the last forward pass (0 before the first successful one).
    #[must_use]
    pub fn batch(&self) -> usize {
        self.batch
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

    /// Number of forward passes started on this workspace (valid or not). A
    /// backward pass uses the activations of the latest one; callers that may
    /// interleave decodes compare this counter to detect a stale backward.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Logits of the last forward pass, `b x N`.
    #[must_use]
    pub fn logits(&self) -> ArrayView2<'_, f32> {
        self.logits.slice_axis(Axis(0), Slice::from(..self.batch))
    }

    /// `dL/dz` of the last backward pass, `b x n`.
    #[must_use]
    pub fn grad_z(&self) -> ArrayView2<'_, f32> {
        self.dz.slice_axis(Axis(0), Slice::from(..self.batch))
    }

    /// `dL/dcoords` of the last backward pass, `(b*N) x d` (row `b*N + i`:
    /// `delta0 . Wc` of pixel `i` of patch `b`).
    #[must_use]
    pub fn grad_coords(&self) -> ArrayView2<'_, f32> {
        self.dcoords
            .slice_axis(Axis(0), Slice::from(..self.batch * self.n_pixels()))
    }

    fn check_params(&self, params: &DecoderParams) -> Result<()> {
        let (h, n) = params.check()?;
        check_shape(
            "decoder params (H, n, d) vs workspace",
            &[self.hidden, self.n_latent, self.inputs],
            &[h, n, params.inputs()],
        )
    }

    /// Forward pass: logits `b x N` for content latents `z` (`b x n`, any
    /// `1 <= b <= B`) and per-pixel coordinates `coords` (`(b*N) x d`, row
    /// `b*N + i` = the transformed coordinate of pixel `i` of patch `b`; columns
    /// as in [`coord_grid`](super::coord_grid)). Stores the activations for
    /// [`backward`](Self::backward). No allocation.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] (`batch`) when `b` is 0 or exceeds the
    /// capacity; [`ModelError::ShapeMismatch`] when `params`, `z` or `coords`
    /// do not match the workspace.
    ///
    /// ```
    /// use phyvae_model::decoder::{coord_grid, DecoderParams, DecoderWorkspace};
    /// use ndarray::{concatenate, Array2, Axis};
    /// use rand::SeedableRng;
    /// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    /// let p = DecoderParams::init(2, 16, &mut rng).unwrap();
    /// let mut ws = DecoderWorkspace::new(4, 6, 2, 16).unwrap();
    /// // 3 patches (below the capacity of 4), all on the untransformed grid
    /// let g = coord_grid(6).unwrap();
    /// let coords = concatenate(Axis(0), &[g.view(), g.view(), g.view()]).unwrap();
    /// let z = Array2::<f32>::zeros((3, 2));
    /// let logits = ws.forward(&p, z.view(), coords.view()).unwrap();
    /// assert_eq!(logits.dim(), (3, 36));
    /// // same latents, same coordinates: same logits
    /// assert_eq!(logits.row(0), logits.row(2));
    /// ```
    pub fn forward(
        &mut self,
        params: &DecoderParams,
        z: ArrayView2<'_, f32>,
        coords: ArrayView2<'_, f32>,
    ) -> Result<ArrayView2<'_, f32>> {
        self.check_params(params)?;
        let bsz = z.nrows();
        if bsz == 0 || bsz > self.capacity {
            return Err(ModelError::InvalidParameter {
                name: "batch",
                value: format!("{bsz} (workspace capacity {})", self.capacity),
                rule: "a decoded batch must hold between 1 and the workspace capacity patches",
            });
        }
        let (h, n_pix, n, d) = (self.hidden, self.n_pixels(), self.n_latent, self.inputs);
        let rows = bsz * n_pix;
        check_shape("content latents z", &[bsz, n], z.shape())?;
        check_shape("coordinates", &[rows, d], coords.shape())?;
        self.generation = self.generation.wrapping_add(1);
        self.batch = 0;
        self.z
            .slice_axis_mut(Axis(0), Slice::from(..bsz))
            .assign(&z);
        self.coords
            .slice_axis_mut(Axis(0), Slice::from(..rows))
            .assign(&coords);
        for (k, col) in self.wct.chunks_exact_mut(h).enumerate() {
            for (j, w) in col.iter_mut().enumerate() {
                *w = params.wc[[j, k]];
            }
        }
        // patch_c: b x H, c_b = bc + Wz z_b
        for (b, c) in self.patch_c[..bsz * h].chunks_exact_mut(h).enumerate() {
            for (j, cj) in c.iter_mut().enumerate() {
                let mut acc = params.bc[j];
                for l in 0..n {
                    acc += params.wz[[j, l]] * self.z[[b, l]];
                }
                *cj = acc;
            }
        }
        // One task per patch: layers 0-2 and the output, ROW_BLOCK rows at a time.
        let layers = Layers::new(params, &self.wct)?;
        let coords = &flat(&self.coords, "coordinates buffer")?[..rows * d];
        let logits = &mut flat_mut(&mut self.logits, "logits buffer")?[..rows];
        let act = n_pix * h;
        self.h0[..rows * h]
            .par_chunks_mut(act)
            .zip(self.h1[..rows * h].par_chunks_mut(act))
            .zip(self.h2[..rows * h].par_chunks_mut(act))
            .zip(self.patch_c[..bsz * h].par_chunks(h))
            .zip(coords.par_chunks(n_pix * d))
            .zip(logits.par_chunks_mut(n_pix))
            .try_for_each(|(((((h0, h1), h2), c), xy), out)| {
                layers.forward_patch(c, xy, [h0, h1, h2], out)
            })?;
        self.batch = bsz;
        Ok(self.logits())
    }

    /// Backward pass for the last [`forward`](Self::forward) (which must have used
    /// the same `params`): given `dL/dlogit` (`b x N`, `b` of that forward),
    /// writes every parameter gradient into `grads` (overwriting it) and
    /// `dL/dz`, `dL/dcoords` into the workspace ([`grad_z`](Self::grad_z),
    /// [`grad_coords`](Self::grad_coords)). The activations are left intact, so
    /// the backward may be repeated. No allocation.
    ///
    /// # Errors
    /// [`ModelError::ShapeMismatch`] on a shape that does not match the
    /// workspace or the last forward; [`ModelError::InvalidParameter`] when no
    /// successful forward pass preceded.
    pub fn backward(
        &mut self,
        params: &DecoderParams,
        dlogits: ArrayView2<'_, f32>,
        grads: &mut DecoderGrads,
    ) -> Result<()> {
        if self.batch == 0 {
            return Err(ModelError::InvalidParameter {
                name: "workspace",
                value: "no forward pass".into(),
                rule: "backward needs a preceding forward with the same parameters",
            });
        }
        self.check_params(params)?;
        let (gh, gn) = grads.check()?;
        check_shape(
            "decoder grads (H, n, d) vs workspace",
            &[self.hidden, self.n_latent, self.inputs],
            &[gh, gn, grads.inputs()],
        )?;
        let (bsz, h, n_pix, d) = (self.batch, self.hidden, self.n_pixels(), self.inputs);
        check_shape("dL/dlogits", &[bsz, n_pix], dlogits.shape())?;
        let rows = bsz * n_pix;
        let n_act = rows * h;
        // One task per patch, ROW_BLOCK rows at a time (see `backward_patch`);
        // then the per-patch sums are reduced in patch order, so the result
        // does not depend on the number of threads.
        let layers = Layers::new(params, &self.wct)?;
        let coords = &flat(&self.coords, "coordinates buffer")?[..rows * d];
        let dcoords = &mut flat_mut(&mut self.dcoords, "dcoords buffer")?[..rows * d];
        // A row-major copy only when the caller's view is not row-major.
        let dl = dlogits.as_standard_layout();
        let dl = dl
            .as_slice()
            .ok_or_else(|| shape_err("dL/dlogits (contiguous)", &[bsz, n_pix], &[]))?;
        let block = n_pix.min(ROW_BLOCK);
        let acc_len = Acc::len(h, d);
        self.h0[..n_act]
            .par_chunks(n_pix * h)
            .zip(self.h1[..n_act].par_chunks(n_pix * h))
            .zip(self.h2[..n_act].par_chunks(n_pix * h))
            .zip(dl.par_chunks(n_pix))
            .zip(coords.par_chunks(n_pix * d))
            .zip(dcoords.par_chunks_mut(n_pix * d))
            .zip(self.scratch[..bsz * 2 * block * h].par_chunks_mut(2 * block * h))
            .zip(self.patch_w[..bsz * 2 * h * h].par_chunks_mut(2 * h * h))
            .zip(self.patch_acc[..bsz * acc_len].par_chunks_mut(acc_len))
            .try_for_each(|((((((((h0, h1), h2), g), xy), dxy), scratch), pw), acc)| {
                layers.backward_patch(PatchBackward {
                    act: [h0, h1, h2],
                    dlogits: g,
                    xy,
                    dxy,
                    scratch,
                    dw: pw,
                    acc,
                })
            })?;

        // dW1, dW2: sums of the per-patch partials, in patch order, one row of
        // the H x H result per task.
        let pw = &self.patch_w[..bsz * 2 * h * h];
        for (layer, grad) in [&mut grads.w1, &mut grads.w2].into_iter().enumerate() {
            let g = grad
                .as_slice_mut()
                .ok_or_else(|| shape_err("weight gradient (contiguous)", &[h, h], &[]))?;
            g.par_chunks_mut(h).enumerate().for_each(|(j, row)| {
                row.fill(0.0);
                for patch in pw.chunks_exact(2 * h * h) {
                    let src = &patch[layer * h * h + j * h..layer * h * h + (j + 1) * h];
                    for (o, &v) in row.iter_mut().zip(src) {
                        *o += v;
                    }
                }
            });
        }

        // Vector gradients and dL/dz from the per-patch sums (b x H work, serial).
        let acc = &self.patch_acc[..bsz * acc_len];
        for a in [&mut grads.b2, &mut grads.w3, &mut grads.b1, &mut grads.bc] {
            a.fill(0.0);
        }
        grads.wc.fill(0.0);
        grads.wz.fill(0.0);
        grads.b3 = 0.0;
        for (b, pa) in acc.chunks_exact(acc_len).enumerate() {
            let a = Acc::split(pa, h, d);
            for j in 0..h {
                grads.b2[j] += a.db2[j];
                grads.w3[j] += a.dw3[j];
                grads.b1[j] += a.db1[j];
                grads.bc[j] += a.s0[j];
                for k in 0..d {
                    grads.wc[[j, k]] += a.p[k * h + j];
                }
                for l in 0..self.n_latent {
                    grads.wz[[j, l]] += a.s0[j] * self.z[[b, l]];
                }
            }
            grads.b3 += a.db3;
            for l in 0..self.n_latent {
                self.dz[[b, l]] = (0..h).map(|j| params.wz[[j, l]] * a.s0[j]).sum();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn dot_with_remainder() {
        // 1*1 + 2*2 + ... + 11*11 = 11 * 12 * 23 / 6 = 506 (8 lanes + 3 tail)
        let a: Vec<f32> = (1..=11).map(|i| i as f32).collect();
        assert_eq!(dot(&a, &a), 506.0);
    }

    #[test]
    fn workspace_rejects_bad_parameters() {
        assert!(matches!(
            DecoderWorkspace::new(0, 4, 2, 8),
            Err(ModelError::InvalidParameter { name: "batch", .. })
        ));
        assert!(matches!(
            DecoderWorkspace::new(1, 0, 2, 8),
            Err(ModelError::InvalidParameter { name: "window", .. })
        ));
        assert!(matches!(
            DecoderWorkspace::new(1, 4, 0, 8),
            Err(ModelError::InvalidParameter {
                name: "n_latent",
                ..
            })
        ));
        assert!(matches!(
            DecoderWorkspace::new(1, 4, 2, 0),
            Err(ModelError::InvalidParameter { name: "hidden", .. })
        ));
    }

    #[test]
    fn forward_rejects_mismatched_inputs_and_backward_needs_forward() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let p = DecoderParams::init(2, 8, &mut rng).unwrap();
        let mut ws = DecoderWorkspace::new(2, 3, 2, 8).unwrap();
        let mut g = DecoderGrads::zeros_like(&p);
        let dl = Array2::<f32>::zeros((2, 9));
        assert!(matches!(
            ws.backward(&p, dl.view(), &mut g),
            Err(ModelError::InvalidParameter {
                name: "workspace",
                ..
            })
        ));
        let coords = Array2::<f32>::zeros((18, 2));
        let z = Array2::<f32>::zeros((2, 3));
        assert!(matches!(
            ws.forward(&p, z.view(), coords.view()),
            Err(ModelError::ShapeMismatch {
                what: "content latents z",
                ..
            })
        ));
        let p16 = DecoderParams::init(2, 16, &mut rng).unwrap();
        let z = Array2::<f32>::zeros((2, 2));
        assert!(matches!(
            ws.forward(&p16, z.view(), coords.view()),
            Err(ModelError::ShapeMismatch { .. })
        ));
        // coordinates for 1 patch with latents for 2
        let c9 = Array2::<f32>::zeros((9, 2));
        assert!(matches!(
            ws.forward(&p, z.view(), c9.view()),
            Err(ModelError::ShapeMismatch {
                what: "coordinates",
                ..
            })
        ));
        // 3 patches in a workspace of capacity 2
        let z3 = Array2::<f32>::zeros((3, 2));
        let c27 = Array2::<f32>::zeros((27, 2));
        assert!(matches!(
            ws.forward(&p, z3.view(), c27.view()),
            Err(ModelError::InvalidParameter { name: "batch", .. })
        ));
        let z0 = Array2::<f32>::zeros((0, 2));
        let c0 = Array2::<f32>::zeros((0, 2));
        assert!(matches!(
            ws.forward(&p, z0.view(), c0.view()),
            Err(ModelError::InvalidParameter { name: "batch", .. })
        ));
        // a forward for 1 patch, then dL/dlogits for 2: rejected
        let z1 = Array2::<f32>::zeros((1, 2));
        ws.forward(&p, z1.view(), c9.view()).unwrap();
        assert_eq!(ws.batch(), 1);
        assert!(matches!(
            ws.backward(&p, dl.view(), &mut g),
            Err(ModelError::ShapeMismatch {
                what: "dL/dlogits",
                ..
            })
        ));
        // a forward rejected by its checks leaves the counter and the buffers untouched
        let before = ws.generation();
        assert!(ws.forward(&p16, z1.view(), c9.view()).is_err());
        assert_eq!(ws.generation(), before);
        ws.forward(&p, z.view(), c9.view()).unwrap_err();
        assert_eq!(ws.batch(), 1);
    }

    /// H = 1, n = 1, one pixel: weights chosen so the chain is easy to follow.
    fn tiny_params() -> DecoderParams {
        // Wc = [0.5, 0.25], bc = 0.1, Wz = [2], W1 = [1], b1 = 0, W2 = [1], b2 = 0, w3 = 3, b3 = -1
        DecoderParams::new(
            ndarray::array![[0.5, 0.25]],
            ndarray::array![0.1],
            ndarray::array![[2.0]],
            ndarray::array![[1.0]],
            ndarray::array![0.0],
            ndarray::array![[1.0]],
            ndarray::array![0.0],
            ndarray::array![3.0],
            -1.0,
        )
        .unwrap()
    }

    /// Hand-computed case: coordinate (-0.5, 0), z = 0.2:
    /// a0 = 0.5 * -0.5 + 0.25 * 0 + 0.1 + 2 * 0.2 = 0.25,
    /// logit = 3 * tanh(tanh(tanh(0.25))) - 1.
    #[test]
    fn tiny_hand_computed_forward() {
        let p = tiny_params();
        let mut ws = DecoderWorkspace::new(1, 1, 1, 1).unwrap();
        let out = ws
            .forward(
                &p,
                ndarray::array![[0.2f32]].view(),
                ndarray::array![[-0.5f32, 0.0]].view(),
            )
            .unwrap();
        let expected = 3.0 * 0.25f64.tanh().tanh().tanh() - 1.0;
        assert!((f64::from(out[[0, 0]]) - expected).abs() < 1e-6);
    }

    /// Same case, loss = logit: with t0 = tanh(0.25), t1 = tanh(t0), t2 = tanh(t1),
    /// delta0 = 3 (1 - t2^2) (1 - t1^2) (1 - t0^2) (W1 = W2 = 1), and by the chain rule
    /// dL/dcoords = delta0 * (0.5, 0.25), dL/dz = 2 delta0,
    /// dL/dWc = delta0 * (-0.5, 0), dL/dbc = delta0, dL/dw3 = t2, dL/db3 = 1.
    #[test]
    fn tiny_hand_computed_backward() {
        let p = tiny_params();
        let mut ws = DecoderWorkspace::new(2, 1, 1, 1).unwrap();
        ws.forward(
            &p,
            ndarray::array![[0.2f32]].view(),
            ndarray::array![[-0.5f32, 0.0]].view(),
        )
        .unwrap();
        let mut g = DecoderGrads::zeros_like(&p);
        ws.backward(&p, ndarray::array![[1.0f32]].view(), &mut g)
            .unwrap();
        let t0 = 0.25f64.tanh();
        let t1 = t0.tanh();
        let t2 = t1.tanh();
        let d0 = 3.0 * (1.0 - t2 * t2) * (1.0 - t1 * t1) * (1.0 - t0 * t0);
        let close = |got: f32, want: f64| (f64::from(got) - want).abs() < 1e-6;
        let dc = ws.grad_coords();
        assert_eq!(dc.dim(), (1, 2));
        assert!(close(dc[[0, 0]], 0.5 * d0) && close(dc[[0, 1]], 0.25 * d0));
        assert!(close(ws.grad_z()[[0, 0]], 2.0 * d0));
        assert!(close(g.wc[[0, 0]], -0.5 * d0) && close(g.wc[[0, 1]], 0.0));
        assert!(close(g.bc[0], d0));
        assert!(close(g.w3[0], t2));
        assert!(close(g.b3, 1.0));
    }
}
