//! The fused decoder op (`SpatialDecoder::forward_fused`, explicit backward)
//! against the plain candle decoder (`SpatialDecoder::forward_reference`,
//! candle's autograd): logits and every gradient (the nine parameters, z,
//! coords) of scalar losses agree within 1e-4 relative (max abs difference /
//! max abs value). Plus the op's contract: batches below capacity, typed
//! errors for capacity overflow and wrong inputs, refusal of a stale backward.

#![allow(clippy::unwrap_used, clippy::panic)]

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use phyvae_model::ModelError;
use phyvae_model::decoder::{FusedDecoder, SpatialDecoder};
use phyvae_model::params::ParamStore;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Tolerance on max |fused - reference| / max |reference|.
const REL_TOL: f32 = 1e-4;

struct Setup {
    dec: SpatialDecoder,
    z: Var,      // (B, n)
    coords: Var, // (B, N, d)
    /// Random weights in [-1, 1) of the weighted-sum loss, (B, N).
    r: Tensor,
    /// Random Bernoulli targets in {0, 1} of the BCE loss, (B, N).
    y: Tensor,
}

/// Decoder initialised from `seed`; z ~ U(-2, 2); coordinates U(-1.3, 1.3)
/// (the grid's range plus shifts).
fn setup(seed: u64, batch: usize, window: usize, n: usize, h: usize) -> Setup {
    setup_inputs(seed, batch, window, n, h, 2)
}

/// [`setup`] with `d` coordinate inputs per pixel (all drawn in U(-1.3, 1.3)).
fn setup_inputs(seed: u64, batch: usize, window: usize, n: usize, h: usize, d: usize) -> Setup {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut store = ParamStore::new(&dev);
    let dec = SpatialDecoder::init_with_inputs(&mut store, "dec", d, n, h, &mut rng).unwrap();
    let npix = window * window;
    let mut draw = |count: usize, lo: f32, hi: f32| -> Vec<f32> {
        (0..count).map(|_| rng.random_range(lo..hi)).collect()
    };
    let z = Tensor::from_vec(draw(batch * n, -2.0, 2.0), (batch, n), &dev).unwrap();
    let coords = Tensor::from_vec(draw(batch * npix * d, -1.3, 1.3), (batch, npix, d), &dev);
    let r = Tensor::from_vec(draw(batch * npix, -1.0, 1.0), (batch, npix), &dev).unwrap();
    let y: Vec<f32> = draw(batch * npix, 0.0, 1.0)
        .into_iter()
        .map(|u| if u < 0.5 { 0.0 } else { 1.0 })
        .collect();
    let y = Tensor::from_vec(y, (batch, npix), &dev).unwrap();
    Setup {
        dec,
        z: Var::from_tensor(&z).unwrap(),
        coords: Var::from_tensor(&coords.unwrap()).unwrap(),
        r,
        y,
    }
}

#[derive(Clone, Copy, Debug)]
enum Loss {
    /// sum(logits * r)
    Weighted,
    /// mean of max(l, 0) - l y + log(1 + exp(-|l|)) (BCE with logits)
    Bce,
}

fn loss(kind: Loss, logits: &Tensor, s: &Setup) -> Tensor {
    match kind {
        Loss::Weighted => (logits * &s.r).unwrap().sum_all().unwrap(),
        Loss::Bce => {
            let softplus = ((logits.abs().unwrap().neg().unwrap().exp().unwrap() + 1.0).unwrap())
                .log()
                .unwrap();
            let per_pixel =
                ((logits.relu().unwrap() - (logits * &s.y).unwrap()).unwrap() + softplus).unwrap();
            per_pixel.mean_all().unwrap()
        }
    }
}

/// max |got - want| / max |want| (want must not be identically zero).
fn rel_diff(name: &str, got: &Tensor, want: &Tensor) -> f32 {
    assert_eq!(got.dims(), want.dims(), "{name}: shape");
    let diff: f32 = (got - want)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap();
    let scale: f32 = want
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(scale > 0.0, "{name}: reference is identically zero");
    diff / scale
}

/// Gradients of the 9 parameters, z and coords, with their names.
fn gradients(grads: &GradStore, s: &Setup) -> Vec<(String, Tensor)> {
    let names = [
        "coord.weight",
        "coord.bias",
        "latent.weight",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
        "out.weight",
        "out.bias",
    ];
    let mut out: Vec<(String, Tensor)> = s
        .dec
        .parameters()
        .iter()
        .zip(names)
        .map(|(t, name)| (name.to_string(), grads.get(t).unwrap().clone()))
        .collect();
    out.push(("z".into(), grads.get(s.z.as_tensor()).unwrap().clone()));
    out.push((
        "coords".into(),
        grads.get(s.coords.as_tensor()).unwrap().clone(),
    ));
    out
}

/// Logits and gradients of `kind` through the reference decoder.
fn reference(s: &Setup, kind: Loss) -> (Tensor, Vec<(String, Tensor)>) {
    let logits = s
        .dec
        .forward_reference(s.z.as_tensor(), s.coords.as_tensor())
        .unwrap();
    let grads = loss(kind, &logits, s).backward().unwrap();
    (logits, gradients(&grads, s))
}

/// Logits and gradients of `kind` through the fused op.
fn fused(s: &Setup, op: &FusedDecoder, kind: Loss) -> (Tensor, Vec<(String, Tensor)>) {
    let logits = s
        .dec
        .forward_fused(op, s.z.as_tensor(), s.coords.as_tensor())
        .unwrap();
    let grads = loss(kind, &logits, s).backward().unwrap();
    (logits, gradients(&grads, s))
}

fn assert_agree(
    (l_ref, g_ref): &(Tensor, Vec<(String, Tensor)>),
    (l_fus, g_fus): &(Tensor, Vec<(String, Tensor)>),
    what: &str,
) {
    let d = rel_diff("logits", l_fus, l_ref);
    assert!(d <= REL_TOL, "{what}: logits differ by {d} relative");
    assert_eq!(g_ref.len(), 11);
    for ((name, want), (_, got)) in g_ref.iter().zip(g_fus) {
        let d = rel_diff(name, got, want);
        assert!(d <= REL_TOL, "{what}: d/d{name} differs by {d} relative");
    }
}

fn check_agreement(seed: u64, batch: usize, window: usize, n: usize, h: usize) {
    check_agreement_inputs(seed, batch, window, n, h, 2);
}

fn check_agreement_inputs(seed: u64, batch: usize, window: usize, n: usize, h: usize, d: usize) {
    let s = setup_inputs(seed, batch, window, n, h, d);
    let op = FusedDecoder::with_inputs(batch, window, n, h, d).unwrap();
    for kind in [Loss::Weighted, Loss::Bce] {
        let want = reference(&s, kind);
        let got = fused(&s, &op, kind);
        assert_agree(
            &want,
            &got,
            &format!("{kind:?} B={batch} w={window} H={h} d={d}"),
        );
    }
}

#[test]
fn fused_equals_reference_small() {
    check_agreement(1, 3, 5, 2, 16);
}

#[test]
fn fused_equals_reference_h128_window12() {
    check_agreement(2, 3, 12, 2, 128);
}

/// 17 x 17 = 289 rows per patch: the kernel's row blocks of 256 and 33.
#[test]
fn fused_equals_reference_window17_two_row_blocks() {
    check_agreement(6, 2, 17, 2, 16);
}

#[test]
fn fused_equals_reference_three_latents() {
    check_agreement(3, 2, 4, 3, 8);
}

/// Six coordinate inputs (two Fourier features), over two row blocks.
#[test]
fn fused_equals_reference_six_inputs() {
    check_agreement_inputs(7, 2, 17, 2, 16, 6);
}

/// One coordinate input: the kernel's first column and no others.
#[test]
fn fused_equals_reference_one_input() {
    check_agreement_inputs(8, 2, 5, 2, 8, 1);
}

/// An op made for 2 inputs refuses a decoder with 6.
#[test]
fn inputs_must_match_the_op() {
    let s = setup_inputs(9, 2, 4, 2, 8, 6);
    let op = FusedDecoder::new(2, 4, 2, 8).unwrap();
    assert!(matches!(
        s.dec
            .forward_fused(&op, s.z.as_tensor(), s.coords.as_tensor()),
        Err(ModelError::ShapeMismatch { .. })
    ));
}

/// A batch of 2 on a workspace of capacity 5 that has just decoded 5 patches.
#[test]
fn batch_below_capacity() {
    let op = FusedDecoder::new(5, 5, 2, 16).unwrap();
    let big = setup(4, 5, 5, 2, 16);
    fused(&big, &op, Loss::Weighted);
    let s = setup(5, 2, 5, 2, 16);
    for kind in [Loss::Weighted, Loss::Bce] {
        let got = fused(&s, &op, kind);
        assert_eq!(got.0.dims(), &[2, 25]);
        assert_agree(&reference(&s, kind), &got, "batch 2 of capacity 5");
    }
}

#[test]
fn capacity_overflow_and_bad_inputs_are_typed_errors() {
    let s = setup(6, 3, 4, 2, 8);
    let (z, c) = (s.z.as_tensor(), s.coords.as_tensor());
    let small = FusedDecoder::new(2, 4, 2, 8).unwrap();
    assert!(matches!(
        s.dec.forward_fused(&small, z, c),
        Err(ModelError::InvalidParameter { name: "batch", .. })
    ));
    // an op for another width or window
    let wide = FusedDecoder::new(3, 4, 2, 16).unwrap();
    assert!(matches!(
        s.dec.forward_fused(&wide, z, c),
        Err(ModelError::ShapeMismatch { .. })
    ));
    let other_window = FusedDecoder::new(3, 5, 2, 8).unwrap();
    assert!(matches!(
        s.dec.forward_fused(&other_window, z, c),
        Err(ModelError::ShapeMismatch { .. })
    ));
    // coordinates of 2 patches for 3 latents
    let op = FusedDecoder::new(3, 4, 2, 8).unwrap();
    let c2 = c.narrow(0, 0, 2).unwrap();
    assert!(matches!(
        s.dec.forward_fused(&op, z, &c2),
        Err(ModelError::ShapeMismatch { .. })
    ));
    // f64 inputs
    let z64 = z.to_dtype(DType::F64).unwrap();
    let c64 = c.to_dtype(DType::F64).unwrap();
    assert!(matches!(
        s.dec.forward_fused(&op, &z64, &c64),
        Err(ModelError::InvalidParameter { name: "dtype", .. })
    ));
    // a packed vector of the wrong length, straight to the op
    let packed = s.dec.pack_params().unwrap();
    assert_eq!(packed.dims(), &[op.packed_len()]);
    let short = packed.narrow(0, 1, op.packed_len() - 1).unwrap();
    assert!(matches!(
        op.forward(z, c, &short),
        Err(ModelError::ShapeMismatch { .. })
    ));
    // and the right one works
    assert_eq!(op.forward(z, c, &packed).unwrap().dims(), &[3, 16]);
}

/// Forward A, forward B on the same op, then backward of A: refused (the
/// workspace holds B's activations). B's backward still works, repeatedly.
#[test]
fn stale_backward_is_an_error() {
    let a = setup(7, 2, 4, 2, 8);
    let mut b = setup(8, 2, 4, 2, 8);
    // same decoder parameters for both, different inputs
    b.dec = a.dec.clone();
    let op = FusedDecoder::new(2, 4, 2, 8).unwrap();
    let la = a
        .dec
        .forward_fused(&op, a.z.as_tensor(), a.coords.as_tensor())
        .unwrap();
    let lb = b
        .dec
        .forward_fused(&op, b.z.as_tensor(), b.coords.as_tensor())
        .unwrap();
    let err = loss(Loss::Weighted, &la, &a).backward().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("stale backward"), "unexpected error: {msg}");
    let want = reference(&b, Loss::Weighted);
    let lossb = loss(Loss::Weighted, &lb, &b);
    for _ in 0..2 {
        let got = (lb.clone(), gradients(&lossb.backward().unwrap(), &b));
        assert_agree(&want, &got, "backward of the last forward");
    }
}

/// Two decodes in one graph need two ops (one workspace each); then the sum of
/// both losses differentiates like the reference.
#[test]
fn two_ops_in_one_graph() {
    let a = setup(9, 2, 4, 2, 8);
    let mut b = setup(10, 2, 4, 2, 8);
    b.dec = a.dec.clone();
    let (op_a, op_b) = (
        FusedDecoder::new(2, 4, 2, 8).unwrap(),
        FusedDecoder::new(2, 4, 2, 8).unwrap(),
    );
    let total = |fwd: &dyn Fn(&Setup, usize) -> Tensor| {
        let la = fwd(&a, 0);
        let lb = fwd(&b, 1);
        (loss(Loss::Weighted, &la, &a) + loss(Loss::Bce, &lb, &b)).unwrap()
    };
    let ref_total = total(&|s, _| {
        s.dec
            .forward_reference(s.z.as_tensor(), s.coords.as_tensor())
            .unwrap()
    });
    let fused_total = total(&|s, i| {
        let op = if i == 0 { &op_a } else { &op_b };
        s.dec
            .forward_fused(op, s.z.as_tensor(), s.coords.as_tensor())
            .unwrap()
    });
    let gr = ref_total.backward().unwrap();
    let gf = fused_total.backward().unwrap();
    for s in [&a, &b] {
        for ((name, want), (_, got)) in gradients(&gr, s).iter().zip(gradients(&gf, s)) {
            let d = rel_diff(name, &got, want);
            assert!(d <= REL_TOL, "d/d{name} differs by {d} relative");
        }
    }
}

/// Inputs with non-contiguous layouts (a transposed z, coordinates narrowed out
/// of a wider tensor) give the same logits and gradients as the reference.
#[test]
fn non_contiguous_inputs() {
    let s = setup(11, 3, 4, 2, 8);
    let dev = Device::Cpu;
    // z stored as (n, B) and transposed: (B, n) with strides (1, B)
    let zt = Var::from_tensor(&s.z.as_tensor().t().unwrap().contiguous().unwrap()).unwrap();
    let z_view = zt.as_tensor().t().unwrap();
    assert!(!z_view.is_contiguous());
    // coords inside a (B, N, 3) tensor, last column padding
    let pad = Tensor::zeros((3, 16, 1), DType::F32, &dev).unwrap();
    let wide = Var::from_tensor(&Tensor::cat(&[s.coords.as_tensor(), &pad], 2).unwrap()).unwrap();
    let c_view = wide.as_tensor().narrow(2, 0, 2).unwrap();
    assert!(!c_view.is_contiguous());
    let op = FusedDecoder::new(3, 4, 2, 8).unwrap();
    let lf = s.dec.forward_fused(&op, &z_view, &c_view).unwrap();
    let gf = loss(Loss::Weighted, &lf, &s).backward().unwrap();
    let (lr, want) = reference(&s, Loss::Weighted);
    assert!(rel_diff("logits", &lf, &lr) <= REL_TOL);
    // gradient w.r.t. the stored (n, B) tensor is the transpose of dL/dz
    let dz_t = gf.get(zt.as_tensor()).unwrap().t().unwrap();
    assert!(rel_diff("z", &dz_t, &want[9].1) <= REL_TOL);
    let dc = gf.get(wide.as_tensor()).unwrap();
    let dc_pad = dc.narrow(2, 2, 1).unwrap();
    let pad_max: f32 = dc_pad
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_eq!(pad_max, 0.0);
    assert!(rel_diff("coords", &dc.narrow(2, 0, 2).unwrap(), &want[10].1) <= REL_TOL);
}

/// The fused op refuses tensors that are not on the CPU (only testable with a
/// GPU build).
#[cfg(feature = "cuda")]
#[test]
fn non_cpu_device_is_an_error() {
    let Ok(gpu) = Device::new_cuda(0) else {
        return;
    };
    let s = setup(12, 2, 4, 2, 8);
    let op = FusedDecoder::new(2, 4, 2, 8).unwrap();
    let z = s.z.as_tensor().to_device(&gpu).unwrap();
    let c = s.coords.as_tensor().to_device(&gpu).unwrap();
    let packed = s.dec.pack_params().unwrap().to_device(&gpu).unwrap();
    assert!(matches!(
        op.forward(&z, &c, &packed),
        Err(ModelError::InvalidParameter { name: "device", .. })
    ));
}
