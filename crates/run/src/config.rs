//! Checked configuration of a model and of a training run.
//!
//! Every rule is checked once, in [`ModelConfig::validate`] and
//! [`TrainConfig::validate`] (called by the constructors of the model and the
//! trainer), with one [`RunError::InvalidParameter`] per rule. Both structs
//! are plain serde data, so a run's configuration can be written beside its
//! outputs and read back to reproduce it.
//!
//! Defaults follow pyroVED and the paper (docs/METHOD.md sections 2 and 3):
//! window 48, two content latents, hidden width 128, translation prior 0.1,
//! Bernoulli likelihood, Adam with learning rate 1e-3 (pyroVED's default; the
//! paper quotes 0.3), batch 64, KL scale 1.

use serde::{Deserialize, Serialize};

use phyvae_data::patches::{Levelling, Scaling};
use phyvae_imaging::physics::PAPER_ALPHA;
use phyvae_imaging::pipeline::DEFAULT_SIGMA_COLOR;

use crate::{Result, RunError};

/// Which invariances the decoder builds in (pyroVED `iVAE(invariances=...)`).
///
/// Each invariance adds "special" latents in front of the content latents,
/// in pyroVED's order: rotation (1 latent, an angle in radians), translation
/// (2 latents, `dx, dy`, scaled by the translation prior), scale (1 latent,
/// the grid is multiplied by `exp(scale_prior * z_s)`).
/// [`ModelKind::Vanilla`] has none and a fully connected decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Plain VAE: fully connected decoder, no special latents.
    Vanilla,
    /// Shift-invariant VAE (sh-VAE), the paper's model.
    Shift,
    /// Rotation-invariant VAE.
    Rotation,
    /// Scale-invariant VAE.
    Scale,
    /// Shift and rotation.
    ShiftRotation,
    /// Shift and scale.
    ShiftScale,
    /// Rotation and scale.
    RotationScale,
    /// Shift, rotation and scale.
    ShiftRotationScale,
}

impl ModelKind {
    /// Every kind, for listings and tests.
    pub const ALL: [ModelKind; 8] = [
        ModelKind::Vanilla,
        ModelKind::Shift,
        ModelKind::Rotation,
        ModelKind::Scale,
        ModelKind::ShiftRotation,
        ModelKind::ShiftScale,
        ModelKind::RotationScale,
        ModelKind::ShiftRotationScale,
    ];

    /// Whether the decoder rotates its coordinate grid.
    #[must_use]
    pub fn rotation(self) -> bool {
        matches!(
            self,
            ModelKind::Rotation
                | ModelKind::ShiftRotation
                | ModelKind::RotationScale
                | ModelKind::ShiftRotationScale
        )
    }

    /// Whether the decoder shifts its coordinate grid.
    #[must_use]
    pub fn translation(self) -> bool {
        matches!(
            self,
            ModelKind::Shift
                | ModelKind::ShiftRotation
                | ModelKind::ShiftScale
                | ModelKind::ShiftRotationScale
        )
    }

    /// Whether the decoder scales its coordinate grid.
    #[must_use]
    pub fn scale(self) -> bool {
        matches!(
            self,
            ModelKind::Scale
                | ModelKind::ShiftScale
                | ModelKind::RotationScale
                | ModelKind::ShiftRotationScale
        )
    }

    /// Number of special latents in front of the content latents.
    #[must_use]
    pub fn n_special(self) -> usize {
        usize::from(self.rotation())
            + 2 * usize::from(self.translation())
            + usize::from(self.scale())
    }

    /// Names of the special latents, in order (`angle`, `dx`, `dy`, `scale`).
    #[must_use]
    pub fn special_names(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.rotation() {
            v.push("angle");
        }
        if self.translation() {
            v.extend(["dx", "dy"]);
        }
        if self.scale() {
            v.push("scale");
        }
        v
    }

    /// The command-line name (`shift-rotation`, ...).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Vanilla => "vanilla",
            ModelKind::Shift => "shift",
            ModelKind::Rotation => "rotation",
            ModelKind::Scale => "scale",
            ModelKind::ShiftRotation => "shift-rotation",
            ModelKind::ShiftScale => "shift-scale",
            ModelKind::RotationScale => "rotation-scale",
            ModelKind::ShiftRotationScale => "shift-rotation-scale",
        }
    }
}

/// The decoder's likelihood `p(x | z)` (pyroVED `sampler_d` / `decoder_sig`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum Likelihood {
    /// Bernoulli with probabilities `sigmoid(logit)` (pyroVED default); data in `[0, 1]`.
    Bernoulli,
    /// Continuous Bernoulli (Loaiza-Ganem & Cunningham 2019): the Bernoulli
    /// term plus its normalising constant.
    ContinuousBernoulli,
    /// Gaussian with mean `sigmoid(logit)` and a fixed standard deviation.
    Gaussian {
        /// Fixed standard deviation (pyroVED `decoder_sig`, default 0.5).
        sigma: f32,
    },
}

/// Model architecture: what the model crate's `Vae` builds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Invariances of the decoder.
    pub kind: ModelKind,
    /// Patch side in pixels (paper: 48).
    pub window: usize,
    /// Number of content latents `n` (paper: 2).
    pub n_latent: usize,
    /// Width of the hidden layers of encoder and decoder (pyroVED: 128).
    pub hidden: usize,
    /// Translation prior `k` (pyroVED `dx_prior`): the shift latents move the grid by `k * (dx, dy)`.
    pub translation_prior: f32,
    /// Scale prior: the scale latent multiplies the grid by `exp(scale_prior * z_s)`.
    pub scale_prior: f32,
    /// Likelihood of the decoder.
    pub likelihood: Likelihood,
    /// Frequencies of the spatial decoder's Fourier features, in cycles per
    /// unit of the coordinate grid (which spans `[-1, 1]` over the window),
    /// each `[fx, fy]` along the grid's two columns (empty: pyroVED's decoder
    /// of the raw coordinates). The decoder's first layer sees `(x, y)` and,
    /// for each frequency `f`, `sin 2 pi f.(x, y)` and `cos 2 pi f.(x, y)` of
    /// the transformed coordinates ([`ModelConfig::n_decoder_inputs`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coord_frequencies: Vec<[f32; 2]>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            kind: ModelKind::Shift,
            window: 48,
            n_latent: 2,
            hidden: 128,
            translation_prior: 0.1,
            scale_prior: 0.1,
            likelihood: Likelihood::Bernoulli,
            coord_frequencies: Vec::new(),
        }
    }
}

fn invalid(name: &'static str, value: impl ToString, rule: &'static str) -> RunError {
    RunError::InvalidParameter {
        name,
        value: value.to_string(),
        rule,
    }
}

/// Most Fourier-feature frequencies a spatial decoder may have.
pub const MAX_FREQUENCIES: usize = 4;

/// Most content latents a model may have: each one becomes a map that is
/// segmented and drawn.
pub const MAX_LATENTS: usize = 16;

/// Widest hidden layer: 4096 units already give the encoder of a 48 px window
/// 9.4 million weights.
pub const MAX_HIDDEN: usize = 4096;

/// Largest seed: `config.toml` stores integers as signed 64-bit values.
pub const MAX_SEED: u64 = i64::MAX as u64;

impl ModelConfig {
    /// Total latent size: special latents plus content latents.
    #[must_use]
    pub fn n_total(&self) -> usize {
        self.kind.n_special() + self.n_latent
    }

    /// Pixels per patch, `window^2`.
    #[must_use]
    pub fn n_pixels(&self) -> usize {
        self.window * self.window
    }

    /// Inputs `d` per pixel of the spatial decoder's first layer: the two
    /// coordinates, then `m` sines and `m` cosines for the `m` Fourier-feature
    /// frequencies, `d = 2 + 2m`.
    ///
    /// A Fourier feature at frequency `f` (cycles per unit of the coordinate
    /// grid) is the pair `sin 2 pi f.(x, y)`, `cos 2 pi f.(x, y)` of the
    /// transformed coordinates. At the image's lattice frequencies the decoder
    /// can draw many unit cells with one weight per feature, where a tanh
    /// network of the raw coordinates draws low frequencies first (spectral
    /// bias: Rahaman et al., ICML 2019; Fourier features: Tancik et al.,
    /// NeurIPS 2020). A shift of the coordinates is a phase change of every
    /// feature, so shift invariance is kept. `m = 0` is pyroVED's decoder.
    ///
    /// ```
    /// use phyvae_run::config::ModelConfig;
    /// let mut m = ModelConfig::default();
    /// assert_eq!(m.n_decoder_inputs(), 2);
    /// m.coord_frequencies = vec![[1.0, 0.0], [0.0, 1.0]];
    /// assert_eq!(m.n_decoder_inputs(), 6);
    /// ```
    #[must_use]
    pub fn n_decoder_inputs(&self) -> usize {
        2 + 2 * self.coord_frequencies.len()
    }

    /// Checks every rule.
    ///
    /// # Errors
    /// [`RunError::InvalidParameter`] naming the first broken rule.
    pub fn validate(&self) -> Result<()> {
        if self.window < 2 {
            return Err(invalid("window", self.window, "must be at least 2"));
        }
        if !(1..=MAX_LATENTS).contains(&self.n_latent) {
            return Err(invalid("n_latent", self.n_latent, "must be 1 to 16"));
        }
        if !(1..=MAX_HIDDEN).contains(&self.hidden) {
            return Err(invalid("hidden", self.hidden, "must be 1 to 4096"));
        }
        if !(self.translation_prior > 0.0 && self.translation_prior <= 1.0) {
            return Err(invalid(
                "translation_prior",
                self.translation_prior,
                "must be in (0, 1]",
            ));
        }
        if !(self.scale_prior > 0.0 && self.scale_prior <= 1.0) {
            return Err(invalid(
                "scale_prior",
                self.scale_prior,
                "must be in (0, 1]",
            ));
        }
        if let Likelihood::Gaussian { sigma } = self.likelihood
            && !(sigma.is_finite() && sigma > 0.0)
        {
            return Err(invalid(
                "sigma",
                sigma,
                "Gaussian sigma must be positive and finite",
            ));
        }
        self.validate_frequencies()
    }

    /// The rules of `coord_frequencies`.
    fn validate_frequencies(&self) -> Result<()> {
        let f = &self.coord_frequencies;
        let shown = || format!("{f:?}");
        if f.is_empty() {
            return Ok(());
        }
        if self.kind == ModelKind::Vanilla {
            return Err(invalid(
                "coord_frequencies",
                shown(),
                "only a spatial decoder (not the vanilla VAE) takes Fourier features",
            ));
        }
        if f.len() > MAX_FREQUENCIES {
            return Err(invalid("coord_frequencies", shown(), "at most 4"));
        }
        // The grid's spacing is 2 / (window - 1): its Nyquist frequency is
        // (window - 1) / 4 cycles per unit.
        let nyquist = (self.window as f32 - 1.0) / 4.0;
        for v in f {
            let norm = v[0].hypot(v[1]);
            if !(norm.is_finite() && norm > 0.0 && norm <= nyquist) {
                return Err(invalid(
                    "coord_frequencies",
                    shown(),
                    "each must be finite, non-zero and at most the window's Nyquist frequency, (window - 1) / 4 cycles per unit",
                ));
            }
        }
        Ok(())
    }
}

/// KL scale `beta(epoch)` (pyroVED `kl_scale`; the paper's three settings:
/// `0.05:1` over 50 epochs, `0.1:1` over 50, `0.01:0.5` over 150 then 50 held).
///
/// A ramp runs linearly from `start` to `end` over `ramp_epochs` epochs
/// (`beta_i = start + (end - start) i / (ramp_epochs - 1)`, as
/// `torch.linspace(start, end, ramp_epochs)`), then holds `end`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum BetaSchedule {
    /// The same scale every epoch.
    Constant {
        /// The scale.
        beta: f32,
    },
    /// Linear ramp, then hold.
    Ramp {
        /// Scale at epoch 0.
        start: f32,
        /// Scale at the end of the ramp and after.
        end: f32,
        /// Epochs the ramp takes (at least 1).
        ramp_epochs: usize,
    },
}

impl BetaSchedule {
    /// The schedule with every scale multiplied by `factor` (the same ramp
    /// length): a weaker KL term, as a retry after a posterior collapse uses.
    #[must_use]
    pub fn scaled(&self, factor: f32) -> Self {
        match *self {
            BetaSchedule::Constant { beta } => BetaSchedule::Constant {
                beta: beta * factor,
            },
            BetaSchedule::Ramp {
                start,
                end,
                ramp_epochs,
            } => BetaSchedule::Ramp {
                start: start * factor,
                end: end * factor,
                ramp_epochs,
            },
        }
    }

    /// The scale for `epoch` (0-based).
    #[must_use]
    pub fn at(&self, epoch: usize) -> f32 {
        match *self {
            BetaSchedule::Constant { beta } => beta,
            BetaSchedule::Ramp {
                start,
                end,
                ramp_epochs,
            } => {
                if epoch + 1 >= ramp_epochs {
                    if ramp_epochs <= 1 && epoch == 0 {
                        return start;
                    }
                    end
                } else {
                    let t = epoch as f64 / (ramp_epochs - 1) as f64;
                    (f64::from(start) + (f64::from(end) - f64::from(start)) * t) as f32
                }
            }
        }
    }

    /// Parses the command-line form `B` (constant), `A:B` (ramp over all
    /// `epochs`) or `A:B:HOLD` (ramp over `epochs - HOLD`, then `HOLD` epochs at `B`).
    ///
    /// # Errors
    /// [`RunError::InvalidParameter`] (`beta`) on a malformed string or
    /// `HOLD >= epochs`.
    pub fn parse(text: &str, epochs: usize) -> Result<Self> {
        let bad = || invalid("beta", text, "expected B, A:B or A:B:HOLD (numbers)");
        let parts: Vec<&str> = text.split(':').collect();
        let num = |s: &str| s.trim().parse::<f32>().map_err(|_| bad());
        match parts.as_slice() {
            [b] => Ok(BetaSchedule::Constant { beta: num(b)? }),
            [a, b] => Ok(BetaSchedule::Ramp {
                start: num(a)?,
                end: num(b)?,
                ramp_epochs: epochs.max(1),
            }),
            [a, b, hold] => {
                let hold: usize = hold.trim().parse().map_err(|_| bad())?;
                if hold >= epochs {
                    return Err(invalid(
                        "beta",
                        text,
                        "HOLD must be smaller than the number of epochs",
                    ));
                }
                Ok(BetaSchedule::Ramp {
                    start: num(a)?,
                    end: num(b)?,
                    ramp_epochs: epochs - hold,
                })
            }
            _ => Err(bad()),
        }
    }

    fn validate(&self) -> Result<()> {
        let ok = |b: f32| b.is_finite() && b >= 0.0;
        match *self {
            BetaSchedule::Constant { beta } if !ok(beta) => {
                Err(invalid("beta", beta, "KL scale must be finite and >= 0"))
            }
            BetaSchedule::Ramp { start, end, .. } if !ok(start) || !ok(end) => Err(invalid(
                "beta",
                format!("{start}:{end}"),
                "KL scale must be finite and >= 0",
            )),
            BetaSchedule::Ramp { ramp_epochs: 0, .. } => Err(invalid(
                "beta",
                "ramp over 0 epochs",
                "a ramp takes at least 1 epoch",
            )),
            _ => Ok(()),
        }
    }
}

/// Default half-width of the SL2 central window: the authors' 2 x 2 block
/// (`alpha = 1`, [`PAPER_ALPHA`]).
pub const DEFAULT_ALPHA: usize = PAPER_ALPHA;

/// Lower bound of the min-max range in gradient mode: a constant map
/// normalises to 0 instead of `0 / 0` (the faithful mode also gives 0).
pub const RANGE_EPS: f64 = 1e-6;

fn default_alpha() -> usize {
    DEFAULT_ALPHA
}

/// Which physics loss `Psi` to use (Biswas et al. 2023, eqs. 4 and 5;
/// docs/METHOD.md section 3).
///
/// Serialised on its own in lower case: `"none"`, `"sl1"`,
/// `{"sl2": {"alpha": 1}}` (`alpha` defaults to [`DEFAULT_ALPHA`]). Inside
/// [`PhysicsConfig`] (`config.toml`) it is written as `kind` and `alpha`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhysicsKind {
    /// No physics loss (`Psi = 0`; plain sh-VAE).
    #[default]
    None,
    /// SL1, the edge length of the min-max normalised, bilateral-denoised
    /// latent maps (eq. 4, Algorithm 1).
    Sl1,
    /// SL2, the Fourier-peak ratio of the latent maps (eq. 5, Algorithm 2).
    Sl2 {
        /// Half-width of the central window of the shifted spectrum (the
        /// window is `2 alpha x 2 alpha`); `1 <= alpha`, `2 alpha < d`.
        #[serde(default = "default_alpha")]
        alpha: usize,
    },
}

impl PhysicsKind {
    /// Every kind (SL2 with [`DEFAULT_ALPHA`]), in the order of their names.
    pub const ALL: [PhysicsKind; 3] = [
        PhysicsKind::None,
        PhysicsKind::Sl1,
        PhysicsKind::Sl2 {
            alpha: DEFAULT_ALPHA,
        },
    ];

    /// `"none"`, `"sl1"` or `"sl2"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            PhysicsKind::None => "none",
            PhysicsKind::Sl1 => "sl1",
            PhysicsKind::Sl2 { .. } => "sl2",
        }
    }

    /// The kind named `name` ([`PhysicsKind::name`]), SL2 with `alpha`.
    #[must_use]
    pub fn from_name(name: &str, alpha: usize) -> Option<Self> {
        Some(match name {
            "none" => PhysicsKind::None,
            "sl1" => PhysicsKind::Sl1,
            "sl2" => PhysicsKind::Sl2 { alpha },
            _ => return None,
        })
    }
}

#[cfg(feature = "clap")]
impl clap::ValueEnum for PhysicsKind {
    /// `none`, `sl1`, `sl2` (SL2 with [`DEFAULT_ALPHA`]).
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let help = match self {
            PhysicsKind::None => "No physics term (sh-VAE)",
            PhysicsKind::Sl1 => "SL1, the edge length of the latent maps",
            PhysicsKind::Sl2 { .. } => "SL2, the Fourier-peak ratio of the latent maps",
        };
        Some(clap::builder::PossibleValue::new(self.name()).help(help))
    }
}

/// How `Psi` enters training (docs/METHOD.md sections 3 and 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum PhysicsMode {
    /// The authors' detached value: a constant factor of the loss, computed
    /// on the shuffled training batch.
    Faithful,
    /// A differentiable Psi on a spatially coherent batch (bilateral weights
    /// held constant per step): the default.
    #[default]
    Gradient,
}

/// How `Psi` is combined with the sh-VAE loss `L_sh` (docs/METHOD.md section 3).
///
/// Serialised in lower case: `"multiply"`, `{"add": {"lambda": 0.1}}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Combine {
    /// The paper's eq. 3: `L_phy = L_sh (w + Psi)` with the slack `w`.
    Multiply,
    /// The additive alternative `L_sh + lambda Psi` (the paper's figure S4
    /// compares it; the slack is not used).
    Add {
        /// Weight of `Psi`.
        lambda: f32,
    },
}

impl Default for Combine {
    /// `Add { lambda: DEFAULT_LAMBDA }`, see [`DEFAULT_LAMBDA`].
    fn default() -> Self {
        Combine::Add {
            lambda: DEFAULT_LAMBDA,
        }
    }
}

/// The rule of a range floor: finite and at least [`RANGE_EPS`].
///
/// # Errors
/// [`RunError::InvalidParameter`] (`range_floor`) otherwise.
pub fn check_range_floor(floor: f64) -> Result<()> {
    if floor.is_finite() && floor >= RANGE_EPS {
        Ok(())
    } else {
        Err(invalid("range_floor", floor, "must be finite and >= 1e-6"))
    }
}

/// Configuration of the physics term.
///
/// Written in `config.toml` as `kind` (`"none"`, `"sl1"`, `"sl2"`) with a
/// separate `alpha`, the half-width of the SL2 window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PhysicsToml", into = "PhysicsToml")]
pub struct PhysicsConfig {
    /// Which Psi (SL2 with its window half-width `alpha`, authors: 1).
    pub kind: PhysicsKind,
    /// Faithful or gradient.
    pub mode: PhysicsMode,
    /// Slack `w` of `L_sh (w + Psi)`, in `[0, 0.5]` (paper).
    pub weight: f32,
    /// Content latents Psi sees, 1-based (`[1, 2]` = z1 and z2; the paper's
    /// NiO-LSMO run used `[2]`).
    pub latents: Vec<usize>,
    /// How a gradient-mode Psi enters the loss (faithful mode always multiplies).
    pub combine: Combine,
    /// Gradient-mode SL1 only: the min-max range of a batch latent map is
    /// clamped below by this many latent units
    /// (the model crate's `PsiGraph::with_range_floor`); `1e-6` is the
    /// authors' plain min-max. Default 1 (the prior's standard deviation).
    pub range_floor: f64,
    /// Epochs trained as plain sh-VAE before Psi enters the loss (both modes).
    /// `None` (default): none in faithful mode (the authors' setting), a third
    /// of the epochs (rounded down) in gradient mode, where a gradient-carrying
    /// Psi from the first step flattens the content latents before they carry
    /// any information (see [`TrainConfig::physics_warmup`]).
    pub warmup_epochs: Option<usize>,
}

/// Default `lambda` of [`Combine::Add`], the default combination in gradient
/// mode. `L_sh (w + Psi)` with a gradient-carrying Psi acts like an additive
/// term with `lambda = L_sh` (about 10^2 nats for a 16 x 16 patch), which on
/// the synthetic images drove the encoder to flat maps with exploding means;
/// `lambda = 1` kept the phase separation and smoothed the maps.
pub const DEFAULT_LAMBDA: f32 = 1.0;

/// Default [`PhysicsConfig::range_floor`].
pub const DEFAULT_RANGE_FLOOR: f64 = 1.0;

fn default_range_floor() -> f64 {
    DEFAULT_RANGE_FLOOR
}

impl Default for PhysicsConfig {
    fn default() -> Self {
        Self {
            kind: PhysicsKind::None,
            mode: PhysicsMode::Gradient,
            weight: 0.1,
            latents: vec![1, 2],
            combine: Combine::default(),
            range_floor: DEFAULT_RANGE_FLOOR,
            warmup_epochs: None,
        }
    }
}

/// [`PhysicsConfig`] as `config.toml` holds it: the kind's name and `alpha`
/// as two keys.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhysicsToml {
    kind: String,
    mode: PhysicsMode,
    weight: f32,
    latents: Vec<usize>,
    alpha: usize,
    combine: Combine,
    #[serde(default = "default_range_floor")]
    range_floor: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    warmup_epochs: Option<usize>,
}

impl TryFrom<PhysicsToml> for PhysicsConfig {
    type Error = String;

    fn try_from(t: PhysicsToml) -> std::result::Result<Self, String> {
        let kind = PhysicsKind::from_name(&t.kind, t.alpha).ok_or_else(|| {
            format!(
                "unknown physics kind `{}`: expected one of none, sl1, sl2",
                t.kind
            )
        })?;
        Ok(Self {
            kind,
            mode: t.mode,
            weight: t.weight,
            latents: t.latents,
            combine: t.combine,
            range_floor: t.range_floor,
            warmup_epochs: t.warmup_epochs,
        })
    }
}

impl From<PhysicsConfig> for PhysicsToml {
    fn from(c: PhysicsConfig) -> Self {
        let alpha = match c.kind {
            PhysicsKind::Sl2 { alpha } => alpha,
            PhysicsKind::None | PhysicsKind::Sl1 => DEFAULT_ALPHA,
        };
        Self {
            kind: c.kind.name().to_owned(),
            mode: c.mode,
            weight: c.weight,
            latents: c.latents,
            alpha,
            combine: c.combine,
            range_floor: c.range_floor,
            warmup_epochs: c.warmup_epochs,
        }
    }
}

/// Which implementation of the spatial decoder training uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum DecoderBackend {
    /// The fused CPU kernel on a CPU device, plain candle ops elsewhere.
    Auto,
    /// Always plain candle ops (the reference implementation).
    Reference,
    /// Always the fused CPU kernel (an error on a GPU device).
    Fused,
}

/// Training run settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Number of epochs.
    pub epochs: usize,
    /// Patches per batch (a perfect square `d^2` when a physics term is on).
    pub batch_size: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed of every random draw (initialisation, batch order, sampling).
    pub seed: u64,
    /// KL scale schedule.
    pub beta: BetaSchedule,
    /// Physics term.
    pub physics: PhysicsConfig,
    /// Decoder implementation.
    pub decoder: DecoderBackend,
    /// Encode the full latent maps after every `n`-th epoch (0: never).
    pub snapshot_every: usize,
    /// At most this many batches per epoch: each epoch trains on the first
    /// `batches_per_epoch * batch_size` patches of its own random order, a
    /// fresh subset every epoch. `None` (the default, and the paper's): every
    /// patch once per epoch. The automatic settings set it on an image whose
    /// every patch would make an epoch longer than a quarter of the run's
    /// step budget ([`crate::auto::length_for_steps`]), so that a large image still
    /// trains for the budget with a loss curve, a diagnosis and checkpoints
    /// per epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batches_per_epoch: Option<usize>,
    /// Learning rates that replace [`lr`](Self::lr) from a given epoch on,
    /// in epoch order (written as `[[train.lr_changes]]`; `phyvae train
    /// --resume --lr` records one). Empty: `lr` for every epoch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lr_changes: Vec<LrChange>,
}

/// A learning rate that holds from one epoch on (until the next change).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrChange {
    /// The first epoch (1-based) trained at this rate.
    pub epoch: usize,
    /// The Adam learning rate.
    pub lr: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 64,
            lr: 1e-3,
            seed: 0,
            beta: BetaSchedule::Constant { beta: 1.0 },
            physics: PhysicsConfig::default(),
            decoder: DecoderBackend::Auto,
            snapshot_every: 0,
            batches_per_epoch: None,
            lr_changes: Vec::new(),
        }
    }
}

/// `Some(d)` when `n = d^2`.
#[must_use]
pub fn exact_sqrt(n: usize) -> Option<usize> {
    let d = (n as f64).sqrt().round() as usize;
    (d * d == n).then_some(d)
}

impl TrainConfig {
    /// Checks every rule, including those that involve the model.
    ///
    /// # Errors
    /// [`RunError::InvalidParameter`] naming the first broken rule.
    pub fn validate(&self, model: &ModelConfig) -> Result<()> {
        if self.epochs == 0 {
            return Err(invalid("epochs", self.epochs, "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(invalid("batch_size", self.batch_size, "must be at least 1"));
        }
        if self.batches_per_epoch == Some(0) {
            return Err(invalid("batches_per_epoch", 0, "must be at least 1"));
        }
        if self.seed > MAX_SEED {
            return Err(invalid(
                "seed",
                self.seed,
                "must be at most 2^63 - 1 (config.toml stores it as a signed 64-bit integer)",
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(invalid("lr", self.lr, "must be positive and finite"));
        }
        let mut after = 0;
        for c in &self.lr_changes {
            if c.epoch <= after {
                return Err(invalid(
                    "lr_changes",
                    c.epoch,
                    "the epochs of the learning-rate changes are 1-based and increasing",
                ));
            }
            if !(c.lr.is_finite() && c.lr > 0.0) {
                return Err(invalid("lr_changes", c.lr, "must be positive and finite"));
            }
            after = c.epoch;
        }
        self.beta.validate()?;
        let p = &self.physics;
        if p.kind != PhysicsKind::None {
            if exact_sqrt(self.batch_size).is_none_or(|d| d < 2) {
                return Err(invalid(
                    "batch_size",
                    self.batch_size,
                    "with a physics term the batch must be a perfect square d^2, d >= 2",
                ));
            }
            if !(0.0..=0.5).contains(&p.weight) {
                return Err(invalid(
                    "weight",
                    p.weight,
                    "physics slack w must be in [0, 0.5]",
                ));
            }
            if p.latents.is_empty() {
                return Err(invalid("latents", "[]", "name at least one content latent"));
            }
            if let Some(&bad) = p.latents.iter().find(|&&l| l == 0 || l > model.n_latent) {
                return Err(invalid(
                    "latents",
                    bad,
                    "content latents are numbered 1..=n_latent",
                ));
            }
            if let PhysicsKind::Sl2 { alpha } = p.kind {
                let d = exact_sqrt(self.batch_size).unwrap_or(0);
                if alpha == 0 || 2 * alpha >= d {
                    return Err(invalid("alpha", alpha, "SL2 window needs 1 <= alpha < d/2"));
                }
            }
            if let Combine::Add { lambda } = p.combine
                && !(lambda.is_finite() && lambda >= 0.0)
            {
                return Err(invalid("lambda", lambda, "must be finite and >= 0"));
            }
            if p.warmup_epochs.is_some_and(|w| w >= self.epochs) {
                return Err(invalid(
                    "warmup_epochs",
                    p.warmup_epochs.unwrap_or(0),
                    "the physics warm-up must end before the last epoch (warmup_epochs < epochs)",
                ));
            }
            check_range_floor(p.range_floor)?;
        }
        Ok(())
    }

    /// The learning rate of epoch `e` (0-based): the last of
    /// [`lr_changes`](Self::lr_changes) that starts at or before it, else
    /// [`lr`](Self::lr).
    #[must_use]
    pub fn lr_at(&self, e: usize) -> f64 {
        self.lr_changes
            .iter()
            .rev()
            .find(|c| c.epoch <= e + 1)
            .map_or(self.lr, |c| c.lr)
    }

    /// The number of epochs trained before Psi enters the loss:
    /// [`PhysicsConfig::warmup_epochs`] if set, else 0 in faithful mode and
    /// `epochs / 3` in gradient mode.
    #[must_use]
    pub fn physics_warmup(&self) -> usize {
        match (self.physics.warmup_epochs, self.physics.mode) {
            (Some(w), _) => w,
            (None, PhysicsMode::Faithful) => 0,
            (None, PhysicsMode::Gradient) => self.epochs / 3,
        }
    }

    /// The latent columns (0-based, special latents first) Psi sees.
    #[must_use]
    pub fn physics_columns(&self, model: &ModelConfig) -> Vec<usize> {
        let s = model.kind.n_special();
        self.physics.latents.iter().map(|l| s + l - 1).collect()
    }
}

/// How patches are cut from the image (`[data]` of `config.toml`; also kept
/// in `model.json`, so that `encode` cuts new images the same way).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Patch window in px (always equal to [`ModelConfig::window`]; set both
    /// with [`RunConfig::set_window`]).
    pub window: usize,
    /// Patch step in px.
    pub step: usize,
    /// Min-max scale each patch on its own.
    pub per_patch_norm: bool,
    /// Background levelling: `none`, `plane`, `plane-lines`.
    pub level: Levelling,
    /// Lattice registration of the patches: the wavevectors `[ky, kx]`
    /// (cycles per px, one or two) to which each patch's origin is moved
    /// ([`phyvae_data::patches::PatchSet::register`]); empty (the default,
    /// and the paper's): the regular grid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub register: Vec<[f64; 2]>,
    /// Remove the scan drift along the rows before the patches are cut: each
    /// row moves back by its displacement measured on the lattice of the two
    /// `register` wavevectors ([`phyvae_imaging::scan`]). False (the default,
    /// and the paper's): the image as recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dedrift: bool,
}

impl Default for DataConfig {
    /// The paper's patches: window 48, step 8, global min-max, no levelling.
    fn default() -> Self {
        Self {
            window: 48,
            step: 8,
            per_patch_norm: false,
            level: Levelling::None,
            register: Vec::new(),
            dedrift: false,
        }
    }
}

impl DataConfig {
    /// How patch values are scaled.
    #[must_use]
    pub fn scaling(&self) -> Scaling {
        if self.per_patch_norm {
            Scaling::PerPatch
        } else {
            Scaling::GlobalMinMax
        }
    }
}

/// How the maps of a run are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// A VAE (`[model]`, `[train]`).
    #[default]
    Vae,
    /// The classical baseline: sliding-window FFT magnitude, PCA, clustering.
    Fft,
}

/// `model.json`: a trained model's architecture and how it cuts patches
/// (read back by `phyvae encode`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDescription {
    /// The architecture.
    pub model: ModelConfig,
    /// The patch settings the model was trained with.
    pub data: DataConfig,
    /// SHA-256 of `model.safetensors` as written, in hex; loading checks it
    /// (absent in models saved before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_sha256: Option<String>,
}

/// Smallest and largest number of classes of the result segmentation.
pub const CLASSES: std::ops::RangeInclusive<usize> = 2..=16;

/// How the result segmentation is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResultConfig {
    /// Classes of the result segmentation (`None`: chosen by the silhouette, 2 to 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
}

/// Most retries of a failed run ([`RunConfig::retries`]).
pub const MAX_RETRIES: usize = 3;

/// Everything that defines a run (written as `config.toml`; `--config`
/// reads it back and reproduces the run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// VAE or the classical baseline.
    #[serde(default)]
    pub method: Method,
    /// Patch cutting.
    pub data: DataConfig,
    /// Architecture.
    pub model: ModelConfig,
    /// Training.
    pub train: TrainConfig,
    /// Colour sigma of the bilateral denoising before segmentation.
    pub sigma_color: f64,
    /// Standard deviation in image pixels of the Gaussian low-pass applied to
    /// every map before segmentation (converted to grid cells by dividing by
    /// `data.step`); 0: none, the paper's pipeline. See
    /// [`phyvae_imaging::pipeline`] and [`crate::auto`].
    #[serde(default)]
    pub lowpass_px: f64,
    /// The result segmentation.
    #[serde(default)]
    pub result: ResultConfig,
    /// How many times a VAE run trains again from scratch when the diagnosis
    /// finds its content latents collapsed (posterior collapse, see
    /// [`crate::diagnose`]) or its content maps showing no regions
    /// ([`crate::diagnose::FindingKind::NoRegions`]), or when a clear classical
    /// baseline agrees with its result only in part
    /// ([`crate::diagnose::train_again_for_agreement`]; the run then keeps the
    /// attempt that agrees more), each time with the next seed and half the
    /// learning rate (after a collapse also half the KL scale); at most
    /// [`MAX_RETRIES`]. 0: never (the library default
    /// and the paper's preset); the automatic settings choose
    /// [`crate::auto::RETRIES`]. The retries are deterministic, so this file
    /// reproduces the whole sequence. A resumed run finishes the attempt its
    /// checkpoint holds and is not retried.
    #[serde(default)]
    pub retries: usize,
    /// What was measured on the image and chosen from it, with reasons (for
    /// the record: `--config` uses the values above, not these).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<crate::auto::AutoSettings>,
    /// The image the run was trained on (for the record, and so that
    /// `--resume` refuses another image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputRecord>,
}

/// Which image a run was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRecord {
    /// The file as given.
    pub file: std::path::PathBuf,
    /// The frame read from it, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<usize>,
    /// The HDF5 entry read from it, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Rows and columns.
    pub shape: [usize; 2],
    /// [`fingerprint`] of the pixels.
    pub fingerprint: String,
}

impl InputRecord {
    /// The record of `pixels`, read from `file` (`frame`, `dataset`).
    #[must_use]
    pub fn new(
        file: std::path::PathBuf,
        frame: Option<usize>,
        dataset: Option<String>,
        pixels: ndarray::ArrayView2<'_, f32>,
    ) -> Self {
        Self {
            file,
            frame,
            dataset,
            shape: [pixels.nrows(), pixels.ncols()],
            fingerprint: fingerprint(pixels),
        }
    }
}

/// A 64-bit FNV-1a hash of an image's shape and pixel bits, as
/// `fnv1a64:<16 hex digits>`: it tells two images apart, not an attacker's
/// forgery. Written out here (a dozen lines) rather than adding a hashing
/// crate; the standard library's hasher is not stable across Rust releases.
#[must_use]
pub fn fingerprint(pixels: ndarray::ArrayView2<'_, f32>) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    eat(&(pixels.nrows() as u64).to_le_bytes());
    eat(&(pixels.ncols() as u64).to_le_bytes());
    for v in pixels.iter() {
        eat(&v.to_bits().to_le_bytes());
    }
    format!("fnv1a64:{h:016x}")
}

impl Default for RunConfig {
    /// The library defaults of every part, with the pipeline's
    /// [`DEFAULT_SIGMA_COLOR`].
    fn default() -> Self {
        Self {
            method: Method::default(),
            data: DataConfig::default(),
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            sigma_color: DEFAULT_SIGMA_COLOR,
            lowpass_px: 0.0,
            result: ResultConfig::default(),
            retries: 0,
            auto: None,
            input: None,
        }
    }
}

impl RunConfig {
    /// The paper's settings (Biswas et al. 2023): window 48, step 8, k 0.1,
    /// hidden 128, 2 content latents, beta 0.1 to 1 over 50 epochs, the
    /// paper's segmentation pipeline (no low-pass).
    #[must_use]
    pub fn paper() -> Self {
        let mut c = Self::default();
        c.set_window(48);
        c.data.step = 8;
        c.model.translation_prior = 0.1;
        c.model.hidden = 128;
        c.model.n_latent = 2;
        c.train.epochs = 50;
        c.train.beta = BetaSchedule::Ramp {
            start: 0.1,
            end: 1.0,
            ramp_epochs: 50,
        };
        c
    }

    /// Sets the patch window of the data and of the model (one value). The
    /// decoder's Fourier-feature frequencies, in cycles per unit of the
    /// coordinate grid, are rescaled by `(window - 1) / (old - 1)` so that
    /// they stay at the same frequencies in cycles per pixel.
    pub fn set_window(&mut self, window: usize) {
        let (old, new) = (self.model.window as f32 - 1.0, window as f32 - 1.0);
        if old > 0.0 && new > 0.0 {
            for f in &mut self.model.coord_frequencies {
                *f = [f[0] * new / old, f[1] * new / old];
            }
        }
        self.data.window = window;
        self.model.window = window;
    }

    /// Checks every rule of the model, of training and of the result, and
    /// that the data and the model agree on the window.
    ///
    /// # Errors
    /// [`RunError::InvalidParameter`] naming the first broken rule.
    pub fn validate(&self) -> Result<()> {
        if self.data.window != self.model.window {
            return Err(invalid(
                "window",
                format!(
                    "{} (data) and {} (model)",
                    self.data.window, self.model.window
                ),
                "data.window and model.window must be equal",
            ));
        }
        self.model.validate()?;
        self.train.validate(&self.model)?;
        if let Some(k) = self.result.classes
            && !CLASSES.contains(&k)
        {
            return Err(invalid("classes", k, "between 2 and 16"));
        }
        if let Err(e) = phyvae_data::patches::check_wavevectors(&self.data.register) {
            return Err(match e {
                phyvae_data::DataError::InvalidParameter { name, value, rule } => {
                    RunError::InvalidParameter { name, value, rule }
                }
                // check_wavevectors fails only with InvalidParameter.
                other => RunError::Write(other),
            });
        }
        if self.data.dedrift && self.data.register.len() != 2 {
            return Err(invalid(
                "dedrift",
                self.data.dedrift,
                "needs the two lattice wavevectors of data.register",
            ));
        }
        if !(self.lowpass_px.is_finite() && self.lowpass_px >= 0.0) {
            return Err(invalid("lowpass_px", self.lowpass_px, "finite and >= 0"));
        }
        if self.retries > MAX_RETRIES {
            return Err(invalid("retries", self.retries, "at most 3"));
        }
        if self.method == Method::Fft && !self.model.coord_frequencies.is_empty() {
            return Err(invalid(
                "coord_frequencies",
                format!("{:?}", self.model.coord_frequencies),
                "the FFT baseline has no decoder to give Fourier features",
            ));
        }
        self.visualize_params()?;
        Ok(())
    }

    /// The segmentation pipeline's parameters of this run: `sigma_color`, and
    /// the low-pass of `lowpass_px` pixels in grid cells (`lowpass_px / step`).
    ///
    /// # Errors
    /// [`RunError::Imaging`] when `sigma_color` breaks its rule (finite, > 0).
    pub fn visualize_params(&self) -> Result<phyvae_imaging::pipeline::VisualizeParams> {
        #[allow(clippy::cast_precision_loss)]
        let cells = self.lowpass_px / self.data.step.max(1) as f64;
        Ok(phyvae_imaging::pipeline::VisualizeParams::new()
            .sigma_color(self.sigma_color)
            .lowpass_sigma(cells)
            .build()?)
    }

    /// The first epoch (0-based) with the physics term on; `None` without one.
    #[must_use]
    pub fn physics_from(&self) -> Option<usize> {
        (self.train.physics.kind != PhysicsKind::None).then(|| self.train.physics_warmup())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physics_warmup_defaults_by_mode() {
        let mut c = TrainConfig {
            epochs: 30,
            ..TrainConfig::default()
        };
        c.physics.mode = PhysicsMode::Faithful;
        assert_eq!(c.physics_warmup(), 0);
        c.physics.mode = PhysicsMode::Gradient;
        assert_eq!(c.physics_warmup(), 10);
        c.epochs = 2;
        assert_eq!(c.physics_warmup(), 0); // 2 / 3 rounds down
        c.physics.warmup_epochs = Some(1);
        assert_eq!(c.physics_warmup(), 1);
        c.physics.mode = PhysicsMode::Faithful;
        assert_eq!(c.physics_warmup(), 1);
    }

    #[test]
    fn lr_changes_hold_from_their_epoch_and_round_trip_through_toml() {
        let mut c = TrainConfig {
            lr: 1e-3,
            ..TrainConfig::default()
        };
        assert_eq!((c.lr_at(0), c.lr_at(9)), (1e-3, 1e-3));
        c.lr_changes = vec![
            LrChange { epoch: 3, lr: 5e-4 },
            LrChange { epoch: 5, lr: 1e-4 },
        ];
        // Epochs 1 and 2 (0-based 0, 1) at lr, 3 and 4 at the first change,
        // 5 on at the second.
        let at: Vec<f64> = (0..6).map(|e| c.lr_at(e)).collect();
        assert_eq!(at, vec![1e-3, 1e-3, 5e-4, 5e-4, 1e-4, 1e-4]);
        let run = RunConfig {
            train: c.clone(),
            ..RunConfig::default()
        };
        let text = toml::to_string(&run).unwrap();
        assert!(text.contains("[[train.lr_changes]]"), "{text}");
        let back: RunConfig = toml::from_str(&text).unwrap();
        assert_eq!(back.train, c);
        // No change: nothing written, so older configurations read the same.
        assert!(
            !toml::to_string(&RunConfig::default())
                .unwrap()
                .contains("lr_changes")
        );
    }

    #[test]
    fn lr_changes_must_be_increasing_and_positive() {
        let m = ModelConfig::default();
        let with = |changes: Vec<LrChange>| {
            let c = TrainConfig {
                lr_changes: changes,
                ..TrainConfig::default()
            };
            c.validate(&m)
        };
        with(vec![LrChange { epoch: 2, lr: 1e-4 }]).unwrap();
        let e = with(vec![LrChange { epoch: 0, lr: 1e-4 }]).unwrap_err();
        assert!(e.to_string().contains("lr_changes"), "{e}");
        let e = with(vec![
            LrChange { epoch: 3, lr: 1e-4 },
            LrChange { epoch: 3, lr: 1e-5 },
        ])
        .unwrap_err();
        assert!(e.to_string().contains("increasing"), "{e}");
        let e = with(vec![LrChange { epoch: 2, lr: -1.0 }]).unwrap_err();
        assert!(e.to_string().contains("positive"), "{e}");
    }

    fn name_of(e: RunError) -> &'static str {
        match e {
            RunError::InvalidParameter { name, .. } => name,
            other => panic!("unexpected error {other}"),
        }
    }

    #[test]
    fn special_latents_follow_pyroved_order() {
        assert_eq!(ModelKind::Vanilla.n_special(), 0);
        assert_eq!(ModelKind::Shift.special_names(), ["dx", "dy"]);
        assert_eq!(
            ModelKind::ShiftRotationScale.special_names(),
            ["angle", "dx", "dy", "scale"]
        );
        for k in ModelKind::ALL {
            assert_eq!(k.special_names().len(), k.n_special());
        }
    }

    #[test]
    fn model_rules() {
        let ok = ModelConfig::default();
        ok.validate().unwrap();
        let with = |f: &dyn Fn(&mut ModelConfig)| {
            let mut c = ok.clone();
            f(&mut c);
            name_of(c.validate().unwrap_err())
        };
        assert_eq!(with(&|c| c.window = 1), "window");
        assert_eq!(with(&|c| c.n_latent = 0), "n_latent");
        assert_eq!(with(&|c| c.n_latent = MAX_LATENTS + 1), "n_latent");
        assert_eq!(with(&|c| c.hidden = 0), "hidden");
        assert_eq!(with(&|c| c.hidden = MAX_HIDDEN + 1), "hidden");
        assert_eq!(with(&|c| c.translation_prior = 0.0), "translation_prior");
        assert_eq!(with(&|c| c.scale_prior = 2.0), "scale_prior");
        assert_eq!(
            with(&|c| c.likelihood = Likelihood::Gaussian { sigma: 0.0 }),
            "sigma"
        );
        // window 48: Nyquist (48 - 1) / 4 = 11.75 cycles per unit
        let fourier = |f: Vec<[f32; 2]>| {
            move |c: &mut ModelConfig| {
                c.coord_frequencies.clone_from(&f);
            }
        };
        let mut lattice = ok.clone();
        lattice.coord_frequencies = vec![[3.0, 1.0], [-1.0, 3.0]];
        lattice.validate().unwrap();
        assert_eq!(
            with(&|c| {
                fourier(vec![[3.0, 1.0]])(c);
                c.kind = ModelKind::Vanilla;
            }),
            "coord_frequencies"
        );
        assert_eq!(with(&fourier(vec![[1.0, 0.0]; 5])), "coord_frequencies");
        assert_eq!(with(&fourier(vec![[0.0, 0.0]])), "coord_frequencies");
        assert_eq!(with(&fourier(vec![[f32::NAN, 1.0]])), "coord_frequencies");
        assert_eq!(with(&fourier(vec![[11.0, 5.0]])), "coord_frequencies");
        let mut at_nyquist = ok.clone();
        at_nyquist.coord_frequencies = vec![[11.75, 0.0]];
        at_nyquist.validate().unwrap();
    }

    #[test]
    fn train_rules() {
        let m = ModelConfig::default();
        let mut ok = TrainConfig::default();
        ok.physics.kind = PhysicsKind::Sl2 { alpha: 1 };
        ok.validate(&m).unwrap();
        let with = |f: &dyn Fn(&mut TrainConfig)| {
            let mut c = ok.clone();
            f(&mut c);
            name_of(c.validate(&m).unwrap_err())
        };
        assert_eq!(with(&|c| c.epochs = 0), "epochs");
        assert_eq!(with(&|c| c.batch_size = 0), "batch_size");
        assert_eq!(with(&|c| c.batch_size = 50), "batch_size");
        assert_eq!(
            with(&|c| c.batches_per_epoch = Some(0)),
            "batches_per_epoch"
        );
        assert_eq!(with(&|c| c.lr = 0.0), "lr");
        assert_eq!(with(&|c| c.seed = MAX_SEED + 1), "seed");
        assert_eq!(
            with(&|c| c.beta = BetaSchedule::Constant { beta: -1.0 }),
            "beta"
        );
        assert_eq!(
            with(&|c| c.beta = BetaSchedule::Ramp {
                start: 0.1,
                end: 1.0,
                ramp_epochs: 0
            }),
            "beta"
        );
        assert_eq!(with(&|c| c.physics.weight = 0.6), "weight");
        assert_eq!(with(&|c| c.physics.latents = vec![]), "latents");
        assert_eq!(with(&|c| c.physics.latents = vec![3]), "latents");
        assert_eq!(
            with(&|c| c.physics.kind = PhysicsKind::Sl2 { alpha: 4 }),
            "alpha"
        );
        assert_eq!(
            with(&|c| c.physics.combine = Combine::Add { lambda: -1.0 }),
            "lambda"
        );
        assert_eq!(with(&|c| c.physics.range_floor = 0.0), "range_floor");
        assert_eq!(
            with(&|c| c.physics.warmup_epochs = Some(c.epochs)),
            "warmup_epochs"
        );
        assert_eq!(with(&|c| c.physics.range_floor = f64::NAN), "range_floor");
        // Without physics any batch size is fine.
        let mut c = TrainConfig {
            batch_size: 50,
            ..TrainConfig::default()
        };
        c.validate(&m).unwrap();
        c.physics.latents = vec![];
        c.validate(&m).unwrap();
    }

    #[test]
    fn beta_schedules() {
        // The paper's graphene setting: 0.01 -> 0.5 over 150 epochs, then 50 at 0.5.
        let s = BetaSchedule::parse("0.01:0.5:50", 200).unwrap();
        assert_eq!(s.at(0), 0.01);
        assert!((s.at(149) - 0.5).abs() < 1e-7);
        assert!((s.at(75) - (0.01 + 0.49 * 75.0 / 149.0)).abs() < 1e-6);
        assert_eq!(s.at(199), 0.5);
        // NiO-LSMO: 0.05 -> 1 over all 50 epochs (torch.linspace(0.05, 1, 50)).
        let s = BetaSchedule::parse("0.05:1", 50).unwrap();
        assert_eq!(s.at(0), 0.05);
        assert!((s.at(1) - (0.05 + 0.95 / 49.0)).abs() < 1e-7);
        assert_eq!(s.at(49), 1.0);
        assert_eq!(BetaSchedule::parse("0.5", 3).unwrap().at(2), 0.5);
        assert!(BetaSchedule::parse("a:b", 3).is_err());
        assert!(BetaSchedule::parse("0.1:1:3", 3).is_err());
        assert!(BetaSchedule::parse("1:2:3:4", 9).is_err());
    }

    #[test]
    fn a_scaled_beta_schedule_keeps_its_ramp() {
        assert_eq!(
            BetaSchedule::Constant { beta: 0.05 }.scaled(0.5),
            BetaSchedule::Constant { beta: 0.025 }
        );
        // 0.1 -> 1 over 10 epochs, halved: 0.05 -> 0.5 over 10 epochs, so
        // epoch 9 (the ramp's end) is at 0.5 and epoch 0 at 0.05.
        let s = BetaSchedule::parse("0.1:1:10", 20).unwrap().scaled(0.5);
        assert_eq!(s.at(0), 0.05);
        assert_eq!(s.at(9), 0.5);
        assert_eq!(s.at(19), 0.5);
    }

    #[test]
    fn physics_columns_skip_special_latents() {
        let m = ModelConfig::default();
        let mut t = TrainConfig::default();
        t.physics.latents = vec![2];
        assert_eq!(t.physics_columns(&m), [3]);
        let v = ModelConfig {
            kind: ModelKind::Vanilla,
            ..m
        };
        assert_eq!(t.physics_columns(&v), [1]);
    }

    #[test]
    fn config_round_trips_through_json() {
        let t = TrainConfig::default();
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<TrainConfig>(&s).unwrap(), t);
        let m = ModelConfig::default();
        let s = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<ModelConfig>(&s).unwrap(), m);
    }

    #[test]
    fn run_rules() {
        let ok = RunConfig::default();
        ok.validate().unwrap();
        let with = |f: &dyn Fn(&mut RunConfig)| {
            let mut c = ok.clone();
            f(&mut c);
            name_of(c.validate().unwrap_err())
        };
        assert_eq!(with(&|c| c.data.window = 32), "window");
        assert_eq!(with(&|c| c.result.classes = Some(1)), "classes");
        assert_eq!(with(&|c| c.result.classes = Some(17)), "classes");
        assert_eq!(with(&|c| c.lowpass_px = -1.0), "lowpass_px");
        assert_eq!(with(&|c| c.retries = MAX_RETRIES + 1), "retries");
        assert_eq!(
            with(&|c| {
                c.method = Method::Fft;
                c.model.coord_frequencies = vec![[3.0, 1.0]];
            }),
            "coord_frequencies"
        );
        let mut three = ok.clone();
        three.retries = MAX_RETRIES;
        three.validate().unwrap();
        assert_eq!(
            with(&|c| c.data.register = vec![[0.1, 0.0], [0.2, 0.0]]),
            "register"
        );
        let mut parallel = ok.clone();
        parallel.data.register = vec![[0.1, 0.0]];
        parallel.validate().unwrap();
        assert_eq!(
            with(&|c| {
                c.data.register = vec![[0.1, 0.0]];
                c.data.dedrift = true;
            }),
            "dedrift"
        );
        let mut dedrift = ok.clone();
        dedrift.data.register = vec![[0.1, 0.0], [0.0, 0.1]];
        dedrift.data.dedrift = true;
        dedrift.validate().unwrap();
        assert_eq!(with(&|c| c.lowpass_px = f64::NAN), "lowpass_px");
        let mut bad = ok.clone();
        bad.sigma_color = 0.0;
        assert!(matches!(
            bad.validate(),
            Err(RunError::Imaging(
                phyvae_imaging::ImagingError::InvalidParameter {
                    name: "sigma_color",
                    ..
                }
            ))
        ));
        // 12 px at a step of 8 px is 1.5 grid cells.
        let mut low = ok.clone();
        low.lowpass_px = 12.0;
        low.data.step = 8;
        assert_eq!(low.visualize_params().unwrap().lowpass_sigma(), 1.5);
        assert_eq!(ok.visualize_params().unwrap().lowpass_sigma(), 0.0);
        let mut c = ok.clone();
        c.set_window(32);
        c.result.classes = Some(16);
        c.train.seed = MAX_SEED;
        c.validate().unwrap();
        // The largest seed round-trips through config.toml.
        let back: RunConfig = toml::from_str(&toml::to_string_pretty(&c).unwrap()).unwrap();
        assert_eq!(back.train.seed, MAX_SEED);
    }

    #[test]
    fn physics_is_written_as_kind_and_alpha() {
        let mut c = RunConfig::paper();
        c.train.physics.kind = PhysicsKind::Sl2 { alpha: 2 };
        let text = toml::to_string_pretty(&c).unwrap();
        assert!(text.contains("kind = \"sl2\""), "{text}");
        assert!(text.contains("alpha = 2"), "{text}");
        assert!(text.contains("level = \"none\""), "{text}");
        let back: RunConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
        c.train.physics.kind = PhysicsKind::Sl1;
        let back: RunConfig = toml::from_str(&toml::to_string_pretty(&c).unwrap()).unwrap();
        assert_eq!(back.train.physics.kind, PhysicsKind::Sl1);
        let bad = text.replace("kind = \"sl2\"", "kind = \"sl3\"");
        let e = toml::from_str::<RunConfig>(&bad).unwrap_err();
        assert!(e.to_string().contains("unknown physics kind `sl3`"), "{e}");
    }

    #[test]
    fn serde_names_are_lowercase() {
        let json = serde_json::to_string(&PhysicsKind::Sl2 { alpha: 2 }).unwrap();
        assert_eq!(json, r#"{"sl2":{"alpha":2}}"#);
        assert_eq!(
            serde_json::to_string(&PhysicsKind::Sl1).unwrap(),
            r#""sl1""#
        );
        assert_eq!(
            serde_json::to_string(&PhysicsMode::Gradient).unwrap(),
            r#""gradient""#
        );
        assert_eq!(
            serde_json::from_str::<PhysicsKind>(r#"{"sl2":{}}"#).unwrap(),
            PhysicsKind::Sl2 {
                alpha: DEFAULT_ALPHA
            }
        );
        assert_eq!(
            serde_json::from_str::<Combine>(r#"{"add":{"lambda":0.5}}"#).unwrap(),
            Combine::Add { lambda: 0.5 }
        );
        assert_eq!(
            serde_json::from_str::<Combine>(r#""multiply""#).unwrap(),
            Combine::Multiply
        );
    }

    #[test]
    fn fingerprints_match_fnv1a_and_tell_images_apart() {
        // FNV-1a 64 of the empty input is its offset basis; here the input is
        // the shape (0, 0) as two u64 zeros: 16 zero bytes.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for _ in 0..16 {
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let empty = ndarray::Array2::<f32>::zeros((0, 0));
        assert_eq!(fingerprint(empty.view()), format!("fnv1a64:{h:016x}"));
        let a = ndarray::array![[1.0_f32, 2.0], [3.0, 4.0]];
        let mut b = a.clone();
        b[[1, 1]] = 4.000_001;
        assert_ne!(fingerprint(a.view()), fingerprint(b.view()));
        let t = a.t().to_owned();
        assert_ne!(fingerprint(a.view()), fingerprint(t.view()));
        assert_eq!(fingerprint(a.view()), fingerprint(a.clone().view()));
    }
}
