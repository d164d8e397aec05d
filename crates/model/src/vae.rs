//! The variational autoencoders: vanilla VAE and the invariant VAEs (shift,
//! rotation, scale and their combinations), with their loss
//! (docs/METHOD.md section 2, equations (1) and (2)).
//!
//! Latent vector per patch: `z = (special..., z_1 .. z_n)` with the special
//! latents of [`ModelKind::special_names`] first (pyroVED's order). The
//! invariant decoders evaluate the spatial decoder at transformed coordinates
//! of the pyroVED grid ([`coord_grid`]):
//!
//! ```text
//! g'  = R(phi) g              rotation:    x' = x cos phi - y sin phi,  y' = x sin phi + y cos phi
//! g'' = exp(s_prior z_s) g'   scale
//! g'''= g'' + k (dx, dy)      translation  (k: translation prior, pyroVED dx_prior)
//! ```
//!
//! (pyroVED `transform_coordinates`: `coord @ [[cos, sin], [-sin, cos]]`, then `+ dx`.)
//!
//! Loss of one batch (`L_sh` of equation (2), per patch, averaged over the batch):
//! `-log p(x | z) + beta KL(q(z|x) || N(0, I))`, with one reparameterised sample
//! `z = mu + sigma eps` and the KL in closed form
//! `0.5 sum_l (mu_l^2 + sigma_l^2 - 1 - 2 log sigma_l)` (pyroVED estimates it by
//! one Monte-Carlo sample; same expectation, lower variance). pyroVED sums over
//! the batch instead of averaging; under Adam the two give the same updates up
//! to Adam's epsilon.

use candle_core::{D, DType, Device, Tensor};
use candle_nn::{Linear, Module};
use rand::Rng;

use crate::decoder::{FusedDecoder, SpatialDecoder, coord_grid};
use crate::encoder::{Encoder, get_linear, init_linear};
use crate::error::FrameworkContext;
use crate::params::ParamStore;
use crate::{ModelError, Result};
use phyvae_run::config::{DecoderBackend, Likelihood, ModelConfig, ModelKind};

/// Below this `|logit|` the continuous-Bernoulli normaliser uses its series
/// `log C = log 2 + l^2 / 12` (the closed form is 0/0 at `l = 0`).
const CB_SERIES_BELOW: f64 = 1e-2;

/// The fully connected decoder of the vanilla VAE (pyroVED `fcDecoderNet`):
/// Linear(n, H) -> tanh -> Linear(H, H) -> tanh -> Linear(H, N) (logits).
#[derive(Debug, Clone)]
struct FcDecoder {
    fc1: Linear,
    fc2: Linear,
    out: Linear,
}

impl FcDecoder {
    fn layers(n: usize, h: usize, pixels: usize) -> [(&'static str, usize, usize); 3] {
        [
            ("decoder.fc1", h, n),
            ("decoder.fc2", h, h),
            ("decoder.out", pixels, h),
        ]
    }

    fn init<R: Rng + ?Sized>(
        store: &mut ParamStore,
        n: usize,
        h: usize,
        pixels: usize,
        rng: &mut R,
    ) -> Result<Self> {
        let [a, b, c] = Self::layers(n, h, pixels);
        Ok(Self {
            fc1: init_linear(store, a.0, a.1, a.2, true, rng)?,
            fc2: init_linear(store, b.0, b.1, b.2, true, rng)?,
            out: init_linear(store, c.0, c.1, c.2, true, rng)?,
        })
    }

    fn from_store(store: &ParamStore, n: usize, h: usize, pixels: usize) -> Result<Self> {
        let [a, b, c] = Self::layers(n, h, pixels);
        Ok(Self {
            fc1: get_linear(store, a.0, a.1, a.2, true)?,
            fc2: get_linear(store, b.0, b.1, b.2, true)?,
            out: get_linear(store, c.0, c.1, c.2, true)?,
        })
    }

    fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let h = self
            .fc1
            .forward(z)
            .ctx("decoder layer 1")?
            .tanh()
            .ctx("tanh")?; // (B, H)
        let h = self
            .fc2
            .forward(&h)
            .ctx("decoder layer 2")?
            .tanh()
            .ctx("tanh")?; // (B, H)
        self.out.forward(&h).ctx("decoder output") // (B, N)
    }
}

#[derive(Debug, Clone)]
enum Decoder {
    Fc(FcDecoder),
    Spatial(SpatialDecoder),
}

/// A VAE of any [`ModelKind`], its parameters in a [`ParamStore`].
#[derive(Debug, Clone)]
pub struct Vae {
    config: ModelConfig,
    store: ParamStore,
    encoder: Encoder,
    decoder: Decoder,
    /// Columns of the coordinate grid, each `(1, N)`.
    grid_x: Tensor,
    grid_y: Tensor,
    /// `2 pi` times the Fourier-feature frequencies as columns, `(2, m)`
    /// (`None`: no Fourier features).
    angular: Option<Tensor>,
}

/// The terms of one batch's loss.
#[derive(Debug, Clone)]
pub struct LossTerms {
    /// `L_sh`: mean over the batch of `-log p(x|z) + beta KL` (scalar).
    pub sh: Tensor,
    /// Mean reconstruction term `-log p(x|z)` (scalar).
    pub recon: Tensor,
    /// Mean KL term, before the `beta` scale (scalar).
    pub kl: Tensor,
    /// Encoder means `(B, L)`.
    pub z_mean: Tensor,
    /// Encoder standard deviations `(B, L)`.
    pub z_sd: Tensor,
}

impl Vae {
    /// A freshly initialised model (PyTorch `nn.Linear` initialisation, values
    /// drawn from `rng`) on `device`.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when the configuration breaks a rule.
    pub fn new<R: Rng + ?Sized>(
        config: &ModelConfig,
        device: &Device,
        rng: &mut R,
    ) -> Result<Self> {
        config.validate()?;
        let mut store = ParamStore::new(device);
        let (np, h, l, n) = (
            config.n_pixels(),
            config.hidden,
            config.n_total(),
            config.n_latent,
        );
        let encoder = Encoder::init(&mut store, np, h, l, rng)?;
        let decoder = if config.kind == ModelKind::Vanilla {
            Decoder::Fc(FcDecoder::init(&mut store, n, h, np, rng)?)
        } else {
            Decoder::Spatial(SpatialDecoder::init_with_inputs(
                &mut store,
                "decoder",
                config.n_decoder_inputs(),
                n,
                h,
                rng,
            )?)
        };
        Self::assemble(config.clone(), store, encoder, decoder)
    }

    /// The model whose parameters are in `store` (a loaded model).
    ///
    /// # Errors
    /// [`ModelError`] when the configuration is invalid or a parameter is
    /// missing or mis-shaped.
    pub fn from_store(config: &ModelConfig, store: ParamStore) -> Result<Self> {
        config.validate()?;
        let (np, h, l, n) = (
            config.n_pixels(),
            config.hidden,
            config.n_total(),
            config.n_latent,
        );
        let encoder = Encoder::from_store(&store, np, h, l)?;
        let decoder = if config.kind == ModelKind::Vanilla {
            Decoder::Fc(FcDecoder::from_store(&store, n, h, np)?)
        } else {
            Decoder::Spatial(SpatialDecoder::from_store_with_inputs(
                &store,
                "decoder",
                config.n_decoder_inputs(),
                n,
                h,
            )?)
        };
        Self::assemble(config.clone(), store, encoder, decoder)
    }

    fn assemble(
        config: ModelConfig,
        store: ParamStore,
        encoder: Encoder,
        decoder: Decoder,
    ) -> Result<Self> {
        let grid = coord_grid(config.window)?; // (N, 2)
        let np = config.n_pixels();
        let col = |c: usize| -> Result<Tensor> {
            let v: Vec<f32> = grid.column(c).to_vec();
            Tensor::from_vec(v, (1, np), store.device()).ctx("coordinate grid")
        };
        let (grid_x, grid_y) = (col(0)?, col(1)?);
        let m = config.coord_frequencies.len();
        let angular = if m == 0 {
            None
        } else {
            let tau = std::f32::consts::TAU;
            let v: Vec<f32> = (0..2)
                .flat_map(|axis| config.coord_frequencies.iter().map(move |f| tau * f[axis]))
                .collect();
            Some(Tensor::from_vec(v, (2, m), store.device()).ctx("Fourier frequencies")?)
        };
        Ok(Self {
            config,
            store,
            encoder,
            decoder,
            grid_x,
            grid_y,
            angular,
        })
    }

    /// The architecture.
    #[must_use]
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The parameters.
    #[must_use]
    pub fn store(&self) -> &ParamStore {
        &self.store
    }

    /// The device the model lives on.
    #[must_use]
    pub fn device(&self) -> &Device {
        self.store.device()
    }

    /// Whether the decoder is the spatial one (coordinates in, one pixel
    /// out), which draws a patch at any shift of its grid.
    #[must_use]
    pub fn has_spatial_decoder(&self) -> bool {
        matches!(self.decoder, Decoder::Spatial(_))
    }

    /// Whether this model would use the fused kernel under `backend`.
    #[must_use]
    pub fn uses_fused(&self, backend: DecoderBackend) -> bool {
        matches!(self.decoder, Decoder::Spatial(_))
            && match backend {
                DecoderBackend::Auto => self.device().is_cpu(),
                DecoderBackend::Reference => false,
                DecoderBackend::Fused => true,
            }
    }

    /// A fused-decoder workspace for batches of up to `capacity` patches, when
    /// `backend` calls for one (else `None`).
    ///
    /// # Errors
    /// [`ModelError`] when the fused kernel is asked for on a GPU or cannot be built.
    pub fn fused_workspace(
        &self,
        backend: DecoderBackend,
        capacity: usize,
    ) -> Result<Option<FusedDecoder>> {
        if !self.uses_fused(backend) {
            return Ok(None);
        }
        if !self.device().is_cpu() {
            return Err(ModelError::InvalidParameter {
                name: "decoder",
                value: "fused".into(),
                rule: "the fused decoder kernel runs on the CPU only; use `auto` or `reference` on a GPU",
            });
        }
        let c = &self.config;
        FusedDecoder::with_inputs(
            capacity,
            c.window,
            c.n_latent,
            c.hidden,
            c.n_decoder_inputs(),
        )
        .map(Some)
    }

    /// Mean and standard deviation of `q(z|x)` for patches `x` `(B, N)`, both `(B, L)`.
    ///
    /// # Errors
    /// [`ModelError::Framework`] on a tensor error (e.g. wrong patch size).
    pub fn encode(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        self.encoder.forward(x)
    }

    /// Transformed decoder coordinates `(B, N, 2)` for the special latents
    /// `special` `(B, S)` (see the module documentation).
    ///
    /// # Errors
    /// [`ModelError::Framework`] on a tensor error.
    pub fn coordinates(&self, special: &Tensor) -> Result<Tensor> {
        let kind = self.config.kind;
        let b = special.dim(0).ctx("special latents")?;
        let mut x = self
            .grid_x
            .broadcast_as((b, self.config.n_pixels()))
            .ctx("grid")?; // (B, N)
        let mut y = self
            .grid_y
            .broadcast_as((b, self.config.n_pixels()))
            .ctx("grid")?; // (B, N)
        let mut col = 0;
        if kind.rotation() {
            let phi = special.narrow(1, col, 1).ctx("angle latent")?; // (B, 1)
            let (c, s) = (phi.cos().ctx("cos")?, phi.sin().ctx("sin")?);
            let nx = (x.broadcast_mul(&c).ctx("rotate")? - y.broadcast_mul(&s).ctx("rotate")?)
                .ctx("rotate")?;
            let ny = (x.broadcast_mul(&s).ctx("rotate")? + y.broadcast_mul(&c).ctx("rotate")?)
                .ctx("rotate")?;
            (x, y) = (nx, ny);
            col += 1;
        }
        let shift = if kind.translation() {
            let s = (special.narrow(1, col, 2).ctx("shift latents")?
                * f64::from(self.config.translation_prior))
            .ctx("shift")?; // (B, 2)
            col += 2;
            Some(s)
        } else {
            None
        };
        if kind.scale() {
            let f = (special.narrow(1, col, 1).ctx("scale latent")?
                * f64::from(self.config.scale_prior))
            .ctx("scale")?
            .exp()
            .ctx("scale")?; // (B, 1)
            x = x.broadcast_mul(&f).ctx("scale")?;
            y = y.broadcast_mul(&f).ctx("scale")?;
        }
        if let Some(s) = shift {
            x = x
                .broadcast_add(&s.narrow(1, 0, 1).ctx("dx")?)
                .ctx("shift")?;
            y = y
                .broadcast_add(&s.narrow(1, 1, 1).ctx("dy")?)
                .ctx("shift")?;
        }
        Tensor::stack(&[x, y], 2).ctx("coordinates") // (B, N, 2)
    }

    /// The spatial decoder's per-pixel inputs `(B, N, d)` for transformed
    /// coordinates `coords` `(B, N, 2)`: the coordinates themselves, then with
    /// Fourier features (`ModelConfig::coord_frequencies`, `m` of them) the `m`
    /// sines and the `m` cosines of `2 pi f.(x, y)`, `d = 2 + 2m`
    /// ([`ModelConfig::n_decoder_inputs`](phyvae_run::config::ModelConfig::n_decoder_inputs)). Differentiable, so gradients reach the
    /// special latents through the features.
    ///
    /// # Errors
    /// [`ModelError::Framework`] on a tensor error.
    pub fn decoder_inputs(&self, coords: &Tensor) -> Result<Tensor> {
        let Some(angular) = &self.angular else {
            return Ok(coords.clone());
        };
        let phase = coords.broadcast_matmul(angular).ctx("Fourier phases")?; // (B, N, m)
        let (sin, cos) = (phase.sin().ctx("sin")?, phase.cos().ctx("cos")?);
        Tensor::cat(&[coords, &sin, &cos], 2).ctx("Fourier features") // (B, N, d)
    }

    /// Decoder logits `(B, N)` for latents `z` `(B, L)`; the fused kernel is
    /// used when `fused` is given (spatial decoders only).
    ///
    /// # Errors
    /// [`ModelError::Framework`] on a tensor error.
    pub fn decode(&self, z: &Tensor, fused: Option<&FusedDecoder>) -> Result<Tensor> {
        let s = self.config.kind.n_special();
        let content = z
            .narrow(1, s, self.config.n_latent)
            .ctx("content latents")?; // (B, n)
        match &self.decoder {
            Decoder::Fc(fc) => fc.forward(&content),
            Decoder::Spatial(dec) => {
                let special = z.narrow(1, 0, s).ctx("special latents")?; // (B, S)
                let coords = self.decoder_inputs(&self.coordinates(&special)?)?; // (B, N, d)
                match fused {
                    Some(op) => dec.forward_fused(op, &content.contiguous().ctx("z")?, &coords),
                    None => dec.forward_reference(&content, &coords),
                }
            }
        }
    }

    /// The loss terms of a batch `x` `(B, N)` with standard-normal draws `eps`
    /// `(B, L)` (drawn by the caller's seeded generator) and KL scale `beta`.
    ///
    /// # Errors
    /// [`ModelError::Framework`] on a tensor error.
    pub fn loss(
        &self,
        x: &Tensor,
        eps: &Tensor,
        beta: f64,
        fused: Option<&FusedDecoder>,
    ) -> Result<LossTerms> {
        let (mu, sd) = self.encode(x)?; // (B, L) each
        let z = (&mu + (&sd * eps).ctx("reparameterise")?).ctx("reparameterise")?; // (B, L)
        let logits = self.decode(&z, fused)?; // (B, N)
        let nll = nll_per_patch(self.config.likelihood, x, &logits)?; // (B)
        let kl = kl_per_patch(&mu, &sd)?; // (B)
        let recon = nll.mean_all().ctx("mean")?;
        let kl = kl.mean_all().ctx("mean")?;
        let sh = (&recon + (&kl * beta).ctx("beta")?).ctx("loss")?;
        Ok(LossTerms {
            sh,
            recon,
            kl,
            z_mean: mu,
            z_sd: sd,
        })
    }
}

/// `-log p(x | logits)` summed over the pixels of each patch: `(B, N)` -> `(B)`.
///
/// - Bernoulli: `softplus(l) - x l` (binary cross-entropy from logits);
/// - continuous Bernoulli: the Bernoulli term minus `log C(l)`,
///   `C = l / tanh(l/2)` (`= 2 artanh(1 - 2p) / (1 - 2p)` with `p = sigmoid(l)`);
/// - Gaussian: `(x - sigmoid(l))^2 / (2 sigma^2) + log(sigma sqrt(2 pi))`.
///
/// # Errors
/// [`ModelError::Framework`] on a tensor error.
pub fn nll_per_patch(likelihood: Likelihood, x: &Tensor, logits: &Tensor) -> Result<Tensor> {
    let bce = || -> Result<Tensor> {
        let sp = crate::encoder::softplus(logits)?;
        (sp - (x * logits).ctx("x l")?).ctx("bce")
    };
    let per_pixel = match likelihood {
        Likelihood::Bernoulli => bce()?,
        Likelihood::ContinuousBernoulli => {
            let small = logits.abs().ctx("cb")?.lt(CB_SERIES_BELOW).ctx("cb")?; // (B, N) mask
            let ones = logits.ones_like().ctx("cb")?;
            let safe = small.where_cond(&ones, logits).ctx("cb")?;
            let closed = (safe.abs().ctx("cb")?.log().ctx("cb")?
                - ((&safe * 0.5).ctx("cb")?.tanh().ctx("cb")?.abs().ctx("cb")?)
                    .log()
                    .ctx("cb")?)
            .ctx("cb")?;
            let series =
                ((logits.sqr().ctx("cb")? / 12.0).ctx("cb")? + std::f64::consts::LN_2).ctx("cb")?;
            let log_c = small.where_cond(&series, &closed).ctx("cb")?;
            (bce()? - log_c).ctx("cb")?
        }
        Likelihood::Gaussian { sigma } => {
            let sigma = f64::from(sigma);
            let p = candle_nn::ops::sigmoid(logits).ctx("sigmoid")?;
            let sq = (x - p).ctx("gauss")?.sqr().ctx("gauss")?;
            let c = (sigma * (2.0 * std::f64::consts::PI).sqrt()).ln();
            ((sq / (2.0 * sigma * sigma)).ctx("gauss")? + c).ctx("gauss")?
        }
    };
    per_pixel.sum(D::Minus1).ctx("sum over pixels")
}

/// `KL(N(mu, sd^2) || N(0, 1))` summed over latents: `(B, L)` -> `(B)`.
///
/// # Errors
/// [`ModelError::Framework`] on a tensor error.
pub fn kl_per_patch(mu: &Tensor, sd: &Tensor) -> Result<Tensor> {
    let t = ((mu.sqr().ctx("kl")? + sd.sqr().ctx("kl")?).ctx("kl")?
        - (sd.log().ctx("kl")? * 2.0).ctx("kl")?)
    .ctx("kl")?;
    ((t - 1.0).ctx("kl")?.sum(D::Minus1).ctx("kl")? * 0.5).ctx("kl")
}

/// A `(rows, cols)` tensor of standard-normal draws from `rng` (row-major).
///
/// # Errors
/// [`ModelError::Framework`] on a tensor error.
pub fn standard_normal<R: Rng + ?Sized>(
    rows: usize,
    cols: usize,
    rng: &mut R,
    device: &Device,
) -> Result<Tensor> {
    use rand_distr::{Distribution, StandardNormal};
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| StandardNormal.sample(rng))
        .collect();
    Tensor::from_vec(v, (rows, cols), device).ctx("normal draws")
}

/// Zeros of the right shape for a deterministic pass (the encoder mean as `z`).
///
/// # Errors
/// [`ModelError::Framework`] on a tensor error.
pub fn zeros(rows: usize, cols: usize, device: &Device) -> Result<Tensor> {
    Tensor::zeros((rows, cols), DType::F32, device).ctx("zeros")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn cpu() -> Device {
        Device::Cpu
    }

    fn small(kind: ModelKind) -> ModelConfig {
        ModelConfig {
            kind,
            window: 4,
            n_latent: 2,
            hidden: 8,
            ..ModelConfig::default()
        }
    }

    #[test]
    fn bernoulli_nll_matches_hand_computation() {
        // x = 1, l = 0: -log(1/2) = ln 2; x = 0, l = 2: -log(1 - sigmoid(2)) = ln(1 + e^2) = 2.126928
        let x = Tensor::new(&[[1.0f32, 0.0]], &cpu()).unwrap();
        let l = Tensor::new(&[[0.0f32, 2.0]], &cpu()).unwrap();
        let v: Vec<f32> = nll_per_patch(Likelihood::Bernoulli, &x, &l)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!((v[0] - (std::f32::consts::LN_2 + 2.126_928)).abs() < 1e-5);
    }

    #[test]
    fn continuous_bernoulli_normaliser() {
        // log C(l) = log(l / tanh(l/2)): l = 2 -> log(2 / 0.7615942) = 0.9654; l -> 0: log 2.
        // NLL(x=0, l) = softplus(l) - log C(l).
        let x = Tensor::new(&[[0.0f32], [0.0]], &cpu()).unwrap();
        let l = Tensor::new(&[[2.0f32], [1e-4]], &cpu()).unwrap();
        let v: Vec<f32> = nll_per_patch(Likelihood::ContinuousBernoulli, &x, &l)
            .unwrap()
            .to_vec1()
            .unwrap();
        let want0 = 2.126_928f32 - (2.0f32 / 0.761_594_2).ln();
        let want1 = (1.0f32 + 1e-4f32.exp()).ln() - std::f32::consts::LN_2;
        assert!((v[0] - want0).abs() < 1e-5, "{} {}", v[0], want0);
        assert!((v[1] - want1).abs() < 1e-5, "{} {}", v[1], want1);
    }

    #[test]
    fn gaussian_nll() {
        // x = 1, l = 0 (mean 0.5), sigma = 0.5: 0.25 / 0.5 + ln(0.5 sqrt(2 pi)) = 0.5 + 0.225791
        let x = Tensor::new(&[[1.0f32]], &cpu()).unwrap();
        let l = Tensor::new(&[[0.0f32]], &cpu()).unwrap();
        let v: Vec<f32> = nll_per_patch(Likelihood::Gaussian { sigma: 0.5 }, &x, &l)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!((v[0] - 0.725_791).abs() < 1e-5);
    }

    #[test]
    fn kl_closed_form() {
        // mu = 1, sd = 1: 0.5; mu = 0, sd = e: 0.5 (e^2 - 1 - 2) = 2.1945280
        let mu = Tensor::new(&[[1.0f32, 0.0]], &cpu()).unwrap();
        let sd = Tensor::new(&[[1.0f32, std::f32::consts::E]], &cpu()).unwrap();
        let v: Vec<f32> = kl_per_patch(&mu, &sd).unwrap().to_vec1().unwrap();
        assert!((v[0] - 2.694_528).abs() < 1e-5, "{}", v[0]);
    }

    #[test]
    fn coordinates_follow_transforms() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        // Rotation by pi/2 maps (x, y) to (-y, x).
        let m = Vae::new(&small(ModelKind::Rotation), &cpu(), &mut rng).unwrap();
        let phi = Tensor::new(&[[std::f32::consts::FRAC_PI_2]], &cpu()).unwrap();
        let c: Vec<Vec<Vec<f32>>> = m.coordinates(&phi).unwrap().to_vec3().unwrap();
        let g = coord_grid(4).unwrap();
        for i in 0..16 {
            assert!((c[0][i][0] + g[[i, 1]]).abs() < 1e-6);
            assert!((c[0][i][1] - g[[i, 0]]).abs() < 1e-6);
        }
        // Shift by (dx, dy) = (1, -2) moves by k (1, -2), k = 0.1.
        let m = Vae::new(&small(ModelKind::Shift), &cpu(), &mut rng).unwrap();
        let s = Tensor::new(&[[1.0f32, -2.0]], &cpu()).unwrap();
        let c: Vec<Vec<Vec<f32>>> = m.coordinates(&s).unwrap().to_vec3().unwrap();
        for i in 0..16 {
            assert!((c[0][i][0] - g[[i, 0]] - 0.1).abs() < 1e-6);
            assert!((c[0][i][1] - g[[i, 1]] + 0.2).abs() < 1e-6);
        }
        // Scale latent ln(2)/0.1 doubles the grid.
        let m = Vae::new(&small(ModelKind::Scale), &cpu(), &mut rng).unwrap();
        let s = Tensor::new(&[[std::f32::consts::LN_2 / 0.1]], &cpu()).unwrap();
        let c: Vec<Vec<Vec<f32>>> = m.coordinates(&s).unwrap().to_vec3().unwrap();
        for i in 0..16 {
            assert!((c[0][i][0] - 2.0 * g[[i, 0]]).abs() < 1e-5);
        }
    }

    /// Hand-computed features: frequency (0.5, 0) on the 4 x 4 grid, whose
    /// `x` column runs -1, -1/3, 1/3, 1 down the rows: `sin(pi x)` there is
    /// `-0, -sqrt(3)/2, sqrt(3)/2, 0`.
    #[test]
    fn fourier_features_of_the_grid_and_of_a_shift() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let mut cfg = small(ModelKind::Shift);
        cfg.coord_frequencies = vec![[0.5, 0.0], [0.0, 0.25]];
        let m = Vae::new(&cfg, &cpu(), &mut rng).unwrap();
        let zero = Tensor::zeros((1, 2), DType::F32, &cpu()).unwrap();
        let coords = m.coordinates(&zero).unwrap();
        let f: Vec<Vec<Vec<f32>>> = m.decoder_inputs(&coords).unwrap().to_vec3().unwrap();
        assert_eq!(f[0][0].len(), 6); // x, y, 2 sines, 2 cosines
        let h = 3f32.sqrt() / 2.0;
        let sin_x = [0.0, -h, h, 0.0];
        for r in 0..4 {
            let row = &f[0][r * 4]; // column 0: y = 1
            assert!((row[2] - sin_x[r]).abs() < 1e-6, "row {r}: {}", row[2]);
            // sin(2 pi 0.25 * 1) = 1, cos(2 pi 0.25 * 1) = 0
            assert!((row[3] - 1.0).abs() < 1e-6 && row[5].abs() < 1e-6);
        }
        // A shift of the grid by k dx = 0.1 * 10 / 3 = 1/3 moves the row
        // x = -1/3 onto x = 0: sin = 0, cos = 1.
        let s = Tensor::new(&[[10.0f32 / 3.0, 0.0]], &cpu()).unwrap();
        let f: Vec<Vec<Vec<f32>>> = m
            .decoder_inputs(&m.coordinates(&s).unwrap())
            .unwrap()
            .to_vec3()
            .unwrap();
        assert!(f[0][4][2].abs() < 1e-6 && (f[0][4][4] - 1.0).abs() < 1e-6);
        // The loss is finite and the fused kernel agrees with the reference.
        let x = Tensor::full(0.5f32, (3, 16), &cpu()).unwrap();
        let eps = standard_normal(3, cfg.n_total(), &mut rng, &cpu()).unwrap();
        let op = m.fused_workspace(DecoderBackend::Fused, 3).unwrap();
        let a: f32 = m.loss(&x, &eps, 1.0, None).unwrap().sh.to_scalar().unwrap();
        let b: f32 = m
            .loss(&x, &eps, 1.0, op.as_ref())
            .unwrap()
            .sh
            .to_scalar()
            .unwrap();
        assert!(a.is_finite() && (a - b).abs() <= 1e-4 * a.abs(), "{a} {b}");
    }

    #[test]
    fn every_kind_gives_finite_loss_of_right_shape() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for kind in ModelKind::ALL {
            let cfg = small(kind);
            let m = Vae::new(&cfg, &cpu(), &mut rng).unwrap();
            let x = Tensor::full(0.5f32, (3, 16), &cpu()).unwrap();
            let eps = standard_normal(3, cfg.n_total(), &mut rng, &cpu()).unwrap();
            let t = m.loss(&x, &eps, 1.0, None).unwrap();
            let v: f32 = t.sh.to_scalar().unwrap();
            assert!(v.is_finite(), "{kind:?}");
            assert_eq!(t.z_mean.dims(), [3, cfg.n_total()]);
            // The reconstruction of 16 pixels at x = 0.5 costs at least 16 ln 2
            // (the Bernoulli entropy), whatever the decoder says.
            let r: f32 = t.recon.to_scalar().unwrap();
            assert!(r >= 16.0 * std::f32::consts::LN_2 - 1e-4, "{kind:?} {r}");
        }
    }
}
