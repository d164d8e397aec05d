//! The spatial decoder as candle tensors registered in a [`ParamStore`]: a
//! plain candle forward (any device, differentiated by candle) and the fused
//! CPU op ([`FusedDecoder`]) on the same parameters.
//!
//! See [`SpatialDecoder`] for the parameter names.

use candle_core::Tensor;
use ndarray::{Array1, Array2};
use rand::Rng;

use super::{DecoderParams, FusedDecoder, check_shape};
use crate::error::FrameworkContext;
use crate::params::ParamStore;
use crate::{ModelError, Result};

/// Number of parameter tensors of the decoder.
const N_TENSORS: usize = 9;

/// `(name suffix, shape, fan_in)` of every tensor, in packing and drawing
/// order, for `n` latents, width `h` and `d` coordinate inputs.
fn layout(n: usize, h: usize, d: usize) -> [(&'static str, Vec<usize>, usize); N_TENSORS] {
    [
        ("coord.weight", vec![h, d], d),
        ("coord.bias", vec![h], d),
        ("latent.weight", vec![h, n], n),
        ("fc1.weight", vec![h, h], h),
        ("fc1.bias", vec![h], h),
        ("fc2.weight", vec![h, h], h),
        ("fc2.bias", vec![h], h),
        ("out.weight", vec![1, h], h),
        ("out.bias", vec![1], h),
    ]
}

fn check_sizes(n_latent: usize, hidden: usize, inputs: usize) -> Result<()> {
    for (name, v) in [
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
    Ok(())
}

/// The spatial decoder `(z, coords) -> logits` (equations in [the module
/// docs](super)).
///
/// Parameter names under a prefix `p` (pyroVED `sDecoderNet`: `coord_latent`
/// holds two `nn.Linear` layers, `fc_coord` and `fc_latent`, the latter
/// without bias; then two hidden `nn.Linear(H, H)` and the output
/// `nn.Linear(H, 1)`), PyTorch `(out, in)` layout:
///
/// | name              | shape    | kernel field |
/// |-------------------|----------|--------------|
/// | `p.coord.weight`  | `(H, d)` | `Wc`         |
/// | `p.coord.bias`    | `(H)`    | `bc`         |
/// | `p.latent.weight` | `(H, n)` | `Wz`         |
/// | `p.fc1.weight`    | `(H, H)` | `W1`         |
/// | `p.fc1.bias`      | `(H)`    | `b1`         |
/// | `p.fc2.weight`    | `(H, H)` | `W2`         |
/// | `p.fc2.bias`      | `(H)`    | `b2`         |
/// | `p.out.weight`    | `(1, H)` | `w3`         |
/// | `p.out.bias`      | `(1)`    | `b3`         |
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use phyvae_model::decoder::SpatialDecoder;
/// use phyvae_model::params::ParamStore;
/// use rand::SeedableRng;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let mut store = ParamStore::new(&Device::Cpu);
/// let dec = SpatialDecoder::init(&mut store, "dec", 2, 16, &mut rng).unwrap();
/// assert_eq!(store.num_params(), 2 * 16 * 16 + (2 + 6) * 16 + 1);
/// let z = Tensor::zeros((3, 2), DType::F32, &Device::Cpu).unwrap(); // (B, n)
/// let coords = Tensor::zeros((3, 25, 2), DType::F32, &Device::Cpu).unwrap(); // (B, N, 2)
/// let logits = dec.forward_reference(&z, &coords).unwrap();
/// assert_eq!(logits.dims(), &[3, 25]);
/// // the same parameters, loaded by name
/// let again = SpatialDecoder::from_store(&store, "dec", 2, 16).unwrap();
/// let l2 = again.forward_reference(&z, &coords).unwrap();
/// assert_eq!(logits.to_vec2::<f32>().unwrap(), l2.to_vec2::<f32>().unwrap());
/// ```
#[derive(Debug, Clone)]
pub struct SpatialDecoder {
    n_latent: usize,
    hidden: usize,
    /// Coordinate inputs `d` (2, or [`ModelConfig::n_decoder_inputs`](phyvae_run::config::ModelConfig::n_decoder_inputs)).
    inputs: usize,
    /// The nine tensors in [`layout`] order.
    tensors: [Tensor; N_TENSORS],
}

impl SpatialDecoder {
    /// Registers the nine decoder tensors as `{prefix}.{name}` in `store`, with
    /// PyTorch's default `nn.Linear` initialisation: weight and bias of a layer
    /// with `fan_in` inputs uniform in `[-1/sqrt(fan_in), 1/sqrt(fan_in))`
    /// (fan-in 2 for the coordinate layer, `n` for the latent layer, `H` for
    /// the others). Draw order as in the table above, each tensor
    /// row-major: the same draws as [`DecoderParams::init`], so a seed gives the
    /// same decoder either way.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when a size is 0 or a name is taken;
    /// [`ModelError::Framework`] if candle fails.
    pub fn init<R: Rng + ?Sized>(
        store: &mut ParamStore,
        prefix: &str,
        n_latent: usize,
        hidden: usize,
        rng: &mut R,
    ) -> Result<Self> {
        Self::init_with_inputs(store, prefix, 2, n_latent, hidden, rng)
    }

    /// [`init`](Self::init) with `inputs` coordinate inputs per pixel (`d`;
    /// `Wc` is `H x d`, fan-in `d`): the same draws as
    /// [`DecoderParams::init_with_inputs`].
    ///
    /// # Errors
    /// As [`init`](Self::init).
    pub fn init_with_inputs<R: Rng + ?Sized>(
        store: &mut ParamStore,
        prefix: &str,
        inputs: usize,
        n_latent: usize,
        hidden: usize,
        rng: &mut R,
    ) -> Result<Self> {
        check_sizes(n_latent, hidden, inputs)?;
        let mut tensors = Vec::with_capacity(N_TENSORS);
        for (name, shape, fan_in) in layout(n_latent, hidden, inputs) {
            let bound = 1.0 / (fan_in as f32).sqrt();
            tensors.push(store.uniform(&format!("{prefix}.{name}"), &shape, bound, rng)?);
        }
        Self::from_tensors(n_latent, hidden, inputs, tensors)
    }

    /// The decoder whose tensors are already in `store` under `prefix` (e.g.
    /// after loading a model file), with their shapes checked.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when a size is 0 or a tensor is missing;
    /// [`ModelError::ShapeMismatch`] when a tensor has the wrong shape.
    pub fn from_store(
        store: &ParamStore,
        prefix: &str,
        n_latent: usize,
        hidden: usize,
    ) -> Result<Self> {
        Self::from_store_with_inputs(store, prefix, 2, n_latent, hidden)
    }

    /// [`from_store`](Self::from_store) with `inputs` coordinate inputs per pixel.
    ///
    /// # Errors
    /// As [`from_store`](Self::from_store).
    pub fn from_store_with_inputs(
        store: &ParamStore,
        prefix: &str,
        inputs: usize,
        n_latent: usize,
        hidden: usize,
    ) -> Result<Self> {
        check_sizes(n_latent, hidden, inputs)?;
        let mut tensors = Vec::with_capacity(N_TENSORS);
        for (name, shape, _) in layout(n_latent, hidden, inputs) {
            tensors.push(store.get(&format!("{prefix}.{name}"), &shape)?);
        }
        Self::from_tensors(n_latent, hidden, inputs, tensors)
    }

    fn from_tensors(
        n_latent: usize,
        hidden: usize,
        inputs: usize,
        tensors: Vec<Tensor>,
    ) -> Result<Self> {
        let found = tensors.len();
        let tensors: [Tensor; N_TENSORS] =
            tensors.try_into().map_err(|_| ModelError::ShapeMismatch {
                what: "decoder tensor count",
                expected: vec![N_TENSORS],
                found: vec![found],
            })?;
        Ok(Self {
            n_latent,
            hidden,
            inputs,
            tensors,
        })
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

    /// The nine parameter tensors in the order of the table above.
    #[must_use]
    pub fn parameters(&self) -> [&Tensor; N_TENSORS] {
        self.tensors.each_ref()
    }

    /// The parameters flattened and concatenated in table order, `(P,)` with
    /// `P = 2H^2 + (d + n + 4) H + 1`: the packed input of [`FusedDecoder`].
    /// Differentiable: `Tensor::cat`'s backward splits a packed gradient back
    /// to each parameter.
    ///
    /// # Errors
    /// [`ModelError::Framework`] if candle fails.
    pub fn pack_params(&self) -> Result<Tensor> {
        let flat = self
            .tensors
            .iter()
            .map(Tensor::flatten_all)
            .collect::<candle_core::Result<Vec<_>>>()
            .ctx("flattening decoder parameters")?;
        Tensor::cat(&flat, 0).ctx("packing decoder parameters") // (P)
    }

    /// A copy of the current values as the kernel's [`DecoderParams`].
    ///
    /// # Errors
    /// [`ModelError::Framework`] if candle fails to read a tensor.
    pub fn to_params(&self) -> Result<DecoderParams> {
        let (n, h, d) = (self.n_latent, self.hidden, self.inputs);
        let mut values = Vec::with_capacity(N_TENSORS);
        for t in &self.tensors {
            let v: Vec<f32> = t
                .flatten_all()
                .and_then(|f| f.to_dtype(candle_core::DType::F32))
                .and_then(|f| f.to_vec1())
                .ctx("reading a decoder parameter")?;
            values.push(v);
        }
        let mut it = values.into_iter();
        let mut next = || it.next().unwrap_or_default();
        let mat = |v: Vec<f32>, rows: usize, cols: usize| {
            let len = v.len();
            Array2::from_shape_vec((rows, cols), v).map_err(|_| ModelError::ShapeMismatch {
                what: "decoder parameter",
                expected: vec![rows, cols],
                found: vec![len],
            })
        };
        let wc = mat(next(), h, d)?;
        let bc = Array1::from(next());
        let wz = mat(next(), h, n)?;
        let w1 = mat(next(), h, h)?;
        let b1 = Array1::from(next());
        let w2 = mat(next(), h, h)?;
        let b2 = Array1::from(next());
        let w3 = Array1::from(next());
        let b3 = next();
        check_shape("decoder out.bias", &[1], &[b3.len()])?;
        DecoderParams::new(wc, bc, wz, w1, b1, w2, b2, w3, b3.iter().sum())
    }

    /// Checks `z` `(B, n)` and `coords` `(B, N, d)`; returns `(B, N)`.
    fn check_inputs(&self, z: &Tensor, coords: &Tensor) -> Result<(usize, usize)> {
        let bsz = z.dims().first().copied().unwrap_or(0);
        check_shape("content latents z (B, n)", &[bsz, self.n_latent], z.dims())?;
        let n_pix = coords.dims().get(1).copied().unwrap_or(0);
        check_shape(
            "coordinates (B, N, d)",
            &[bsz, n_pix, self.inputs],
            coords.dims(),
        )?;
        Ok((bsz, n_pix))
    }

    /// Logits `(B, N)` for content latents `z` `(B, n)` and per-pixel
    /// coordinate inputs `coords` `(B, N, d)`, in plain candle ops: runs on any
    /// device and is differentiated by candle's autograd. The reference the
    /// fused op is tested against.
    ///
    /// # Errors
    /// [`ModelError::ShapeMismatch`] for wrong input shapes;
    /// [`ModelError::Framework`] if candle fails (e.g. a dtype or device
    /// mismatch).
    pub fn forward_reference(&self, z: &Tensor, coords: &Tensor) -> Result<Tensor> {
        let (bsz, n_pix) = self.check_inputs(z, coords)?;
        let h = self.hidden;
        let [wc, bc, wz, w1, b1, w2, b2, w3, b3] = self.parameters();
        let ctx = "spatial decoder forward (reference)";
        let layer = |x: &Tensor, w: &Tensor, b: &Tensor| -> candle_core::Result<Tensor> {
            x.matmul(&w.t()?)?.broadcast_add(b) // (B*N, out)
        };
        let c = coords.reshape((bsz * n_pix, self.inputs)).ctx(ctx)?; // (B*N, d)
        let a0 = layer(&c, wc, bc).ctx(ctx)?; // (B*N, H)
        let zc = z.matmul(&wz.t().ctx(ctx)?).ctx(ctx)?; // (B, H)
        let a0 = a0
            .reshape((bsz, n_pix, h))
            .and_then(|a| a.broadcast_add(&zc.unsqueeze(1)?)) // (B, N, H)
            .ctx(ctx)?;
        let h0 = a0
            .tanh()
            .and_then(|a| a.reshape((bsz * n_pix, h)))
            .ctx(ctx)?; // (B*N, H)
        let h1 = layer(&h0, w1, b1).and_then(|a| a.tanh()).ctx(ctx)?; // (B*N, H)
        let h2 = layer(&h1, w2, b2).and_then(|a| a.tanh()).ctx(ctx)?; // (B*N, H)
        let logits = layer(&h2, w3, b3).ctx(ctx)?; // (B*N, 1)
        logits.reshape((bsz, n_pix)).ctx(ctx) // (B, N)
    }

    /// The same logits `(B, N)` through the fused CPU op `op` (its backward is
    /// the kernel's explicit backward; gradients reach every parameter, `z`
    /// and `coords`). See [`FusedDecoder`] for the one-decode-per-backward rule.
    ///
    /// # Errors
    /// [`ModelError::ShapeMismatch`] when `op` was made for another `(n, H)`
    /// or an input has the wrong shape; [`ModelError::InvalidParameter`] for a
    /// non-CPU device, a non-`f32` tensor or a batch above the op's capacity;
    /// [`ModelError::Framework`] if candle fails.
    pub fn forward_fused(&self, op: &FusedDecoder, z: &Tensor, coords: &Tensor) -> Result<Tensor> {
        check_shape(
            "fused decoder (n, H, d) vs decoder",
            &[self.n_latent, self.hidden, self.inputs],
            &[op.n_latent(), op.hidden(), op.inputs()],
        )?;
        self.check_inputs(z, coords)?;
        let packed = self.pack_params()?; // (P)
        op.forward(z, coords, &packed) // (B, N)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use rand::SeedableRng;

    /// H = 1, n = 1 (the hand-computed case of the kernel tests): Wc = [0.5, 0.25],
    /// bc = 0.1, Wz = [2], W1 = W2 = [1], b1 = b2 = 0, w3 = 3, b3 = -1.
    fn tiny_store() -> ParamStore {
        let dev = Device::Cpu;
        let mut store = ParamStore::new(&dev);
        let values: [(&str, Vec<f32>, &[usize]); N_TENSORS] = [
            ("coord.weight", vec![0.5, 0.25], &[1, 2]),
            ("coord.bias", vec![0.1], &[1]),
            ("latent.weight", vec![2.0], &[1, 1]),
            ("fc1.weight", vec![1.0], &[1, 1]),
            ("fc1.bias", vec![0.0], &[1]),
            ("fc2.weight", vec![1.0], &[1, 1]),
            ("fc2.bias", vec![0.0], &[1]),
            ("out.weight", vec![3.0], &[1, 1]),
            ("out.bias", vec![-1.0], &[1]),
        ];
        for (name, v, shape) in values {
            let t = Tensor::from_vec(v, shape, &dev).unwrap();
            store.insert(&format!("d.{name}"), t).unwrap();
        }
        store
    }

    /// coordinate (-0.5, 0), z = 0.2: a0 = -0.25 + 0 + 0.1 + 0.4 = 0.25,
    /// logit = 3 tanh(tanh(tanh(0.25))) - 1; the second pixel (1, 1):
    /// a0 = 0.5 + 0.25 + 0.1 + 0.4 = 1.25.
    #[test]
    fn reference_forward_hand_computed() {
        let dec = SpatialDecoder::from_store(&tiny_store(), "d", 1, 1).unwrap();
        let dev = Device::Cpu;
        let z = Tensor::new(&[[0.2f32]], &dev).unwrap();
        let coords = Tensor::new(&[[[-0.5f32, 0.0], [1.0, 1.0]]], &dev).unwrap();
        let got = dec.forward_reference(&z, &coords).unwrap();
        let got: Vec<Vec<f32>> = got.to_vec2().unwrap();
        for (g, a0) in got[0].iter().zip([0.25f64, 1.25]) {
            let want = 3.0 * a0.tanh().tanh().tanh() - 1.0;
            assert!((f64::from(*g) - want).abs() < 1e-6, "{g} vs {want}");
        }
        let p = dec.to_params().unwrap();
        assert_eq!(p.wc, ndarray::array![[0.5f32, 0.25]]);
        assert_eq!(p.b3, -1.0);
    }

    #[test]
    fn init_names_bounds_and_draws() {
        let dev = Device::Cpu;
        let mut store = ParamStore::new(&dev);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let dec = SpatialDecoder::init(&mut store, "x", 3, 16, &mut rng).unwrap();
        let names: Vec<&str> = store.vars().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "x.coord.bias",
                "x.coord.weight",
                "x.fc1.bias",
                "x.fc1.weight",
                "x.fc2.bias",
                "x.fc2.weight",
                "x.latent.weight",
                "x.out.bias",
                "x.out.weight",
            ]
        );
        let p = dec.to_params().unwrap();
        let inv_sqrt2 = 1.0 / 2f32.sqrt();
        assert!(p.wc.iter().chain(p.bc.iter()).all(|w| w.abs() <= inv_sqrt2));
        assert!(p.wz.iter().all(|w| w.abs() <= 1.0 / 3f32.sqrt()));
        assert!(p.w1.iter().chain(p.w3.iter()).all(|w| w.abs() <= 0.25));
        // The coordinate layer uses its own fan-in (2), not H: values beyond 1/sqrt(H).
        assert!(p.wc.iter().any(|w| w.abs() > 0.25));
        let mut rng2 = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        assert_eq!(p, DecoderParams::init(3, 16, &mut rng2).unwrap());
        // A second decoder under the same prefix is refused; sizes must be >= 1.
        assert!(matches!(
            SpatialDecoder::init(&mut store, "x", 3, 16, &mut rng),
            Err(ModelError::InvalidParameter { .. })
        ));
        assert!(matches!(
            SpatialDecoder::init(&mut store, "y", 3, 0, &mut rng),
            Err(ModelError::InvalidParameter { name: "hidden", .. })
        ));
    }

    #[test]
    fn from_store_checks_shapes_and_presence() {
        let store = tiny_store();
        assert!(matches!(
            SpatialDecoder::from_store(&store, "d", 2, 1),
            Err(ModelError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            SpatialDecoder::from_store(&store, "e", 1, 1),
            Err(ModelError::InvalidParameter { .. })
        ));
        let dec = SpatialDecoder::from_store(&store, "d", 1, 1).unwrap();
        let z = Tensor::zeros((2, 1), DType::F32, &Device::Cpu).unwrap();
        let coords = Tensor::zeros((3, 4, 2), DType::F32, &Device::Cpu).unwrap();
        assert!(matches!(
            dec.forward_reference(&z, &coords),
            Err(ModelError::ShapeMismatch { .. })
        ));
        let packed = dec.pack_params().unwrap();
        let packed: Vec<f32> = packed.to_vec1().unwrap();
        assert_eq!(packed, [0.5, 0.25, 0.1, 2.0, 1.0, 0.0, 1.0, 0.0, 3.0, -1.0]);
    }
}
