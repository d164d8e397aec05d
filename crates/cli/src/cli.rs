//! Command-line definitions (clap).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

use phyvae_data::patches::Levelling;
use phyvae_run::config::{DecoderBackend, PhysicsKind, PhysicsMode};

use crate::settings::{ModelArg, PresetArg};

/// Finds phases, domains and boundaries in atomic-resolution microscopy images.
#[derive(Debug, Parser)]
#[command(name = "phyvae", version, about, propagate_version = true)]
pub struct Cli {
    /// No progress output on stderr (results still go to stdout and files).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a shift-invariant VAE (sh-VAE) or phy-VAE on the patches of one
    /// image; write the model, latent maps, segmentations, history and metrics.
    Train(Box<TrainArgs>),
    /// Encode an image with a trained model: latent maps and segmentations.
    Encode(EncodeArgs),
    /// HTML report of a run folder (RUN/report.html and RUN/figures/*.png),
    /// or of several runs side by side.
    Report(ReportArgs),
    /// Image filters (output NPY has the input's float type: f64 stays f64).
    #[command(subcommand)]
    Filter(FilterCommand),
    /// Threshold values of an image, as JSON {"thresholds": [...]}.
    #[command(subcommand)]
    Threshold(ThresholdCommand),
    /// The paper's visualisation pipeline on one map: denoise, Otsu, multi-Otsu, Chan-Vese.
    Segment(SegmentArgs),
    /// Physics loss of a batch of latent means (B x C, B a perfect square), as JSON {"psi": ...}.
    Physics(PhysicsArgs),
    /// Synthetic image with a known per-pixel truth map.
    Synth(SynthArgs),
    /// Patch grid of an image, as JSON.
    Patches(PatchesArgs),
    /// Scores of a label map against a truth map, as JSON.
    Score(ScoreArgs),
    /// What a file holds, as JSON: format, images with shape, element type and
    /// pixel size, and which one commands use by default.
    Info(InfoArgs),
    /// Writes one image of a file as a float32 NPY.
    Convert(ConvertArgs),
}

/// Arguments of `phyvae report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run folders written by `phyvae train` or `phyvae encode`; several are
    /// shown side by side.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output HTML file (default: RUN/report.html for one run,
    /// ./comparison.html for several).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Arguments of `phyvae info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Any supported image file.
    pub file: PathBuf,
}

/// Arguments of `phyvae convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The image (default: the first usable one of the file, see `phyvae info`).
    #[command(flatten)]
    pub input: InputArgs,
    /// Output .npy (float32, the image's raw values).
    pub out: PathBuf,
}

/// `phyvae filter ...`
#[derive(Debug, Subcommand)]
pub enum FilterCommand {
    /// Bilateral denoising.
    Bilateral(BilateralArgs),
    /// Scharr edge magnitude (scikit-image `filters.scharr` conventions).
    Scharr(InOut),
}

/// An input and an output file.
#[derive(Debug, Args)]
pub struct InOut {
    /// Input image.
    pub input: PathBuf,
    /// Output .npy.
    pub output: PathBuf,
}

/// Arguments of `phyvae filter bilateral`.
#[derive(Debug, Args)]
pub struct BilateralArgs {
    /// Input image.
    pub input: PathBuf,
    /// Output .npy.
    pub output: PathBuf,
    /// Colour (range) sigma, or `std` for the image's standard deviation.
    #[arg(long, default_value = "std", allow_hyphen_values = true)]
    pub sigma_color: String,
    /// Spatial sigma in px.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub sigma_spatial: f64,
    /// `skimage`: exactly scikit-image's denoise_bilateral; `gaussian`: the textbook filter.
    #[arg(long, value_enum, default_value_t = BilateralModeArg::Skimage)]
    pub mode: BilateralModeArg,
}

/// Bilateral modes.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BilateralModeArg {
    /// scikit-image compatible (quantised colour weights, its spatial kernel, zero padding).
    Skimage,
    /// Textbook Gaussian bilateral filter.
    Gaussian,
}

/// `phyvae threshold ...`
#[derive(Debug, Subcommand)]
pub enum ThresholdCommand {
    /// Otsu's threshold (256-bin histogram).
    Otsu {
        /// Input image.
        input: PathBuf,
    },
    /// Multi-Otsu thresholds (256-bin histogram).
    Multiotsu {
        /// Input image.
        input: PathBuf,
        /// Number of classes (2 to 5).
        #[arg(long, default_value_t = 3)]
        classes: usize,
    },
}

/// Arguments of `phyvae segment`.
#[derive(Debug, Args)]
pub struct SegmentArgs {
    /// The map to segment (e.g. one latent map).
    pub map: PathBuf,
    /// Output folder (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Colour sigma of the bilateral denoising.
    #[arg(
        long,
        default_value_t = phyvae_imaging::pipeline::DEFAULT_SIGMA_COLOR,
        allow_negative_numbers = true
    )]
    pub sigma_color: f64,
    /// Standard deviation, in map cells, of a Gaussian low-pass applied
    /// before the pipeline (0: none, the paper's pipeline).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub lowpass: f64,
}

/// Arguments of `phyvae physics`.
#[derive(Debug, Args)]
pub struct PhysicsArgs {
    /// Which loss (`none` gives 0).
    #[arg(value_enum)]
    pub loss: PhysicsKind,
    /// Latent means, B x C float .npy.
    pub z_mean: PathBuf,
    /// Half-width of the excluded central Fourier window (SL2 only; this wins
    /// over the default alpha of `sl2`).
    #[arg(long, default_value_t = 1)]
    pub alpha: usize,
    /// Columns holding the content latents (the authors: 2 and 3).
    #[arg(long, value_delimiter = ',', default_values_t = [2usize, 3])]
    pub columns: Vec<usize>,
}

/// Arguments of `phyvae synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Which image.
    #[arg(value_enum)]
    pub kind: SynthKind,
    /// Side of the square image in px.
    #[arg(long, default_value_t = 512)]
    pub size: usize,
    /// Seed of the random generator.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// With `suite`: the image family (period, motif, grain-boundary,
    /// precipitate, three-phase, domains-180, domains-90, antiphase).
    #[arg(long)]
    pub family: Option<String>,
    /// Output folder (created): image.npy (f32), truth.npy (i32), image.png,
    /// truth.png; with `suite` also params.json (the parameters drawn).
    #[arg(long)]
    pub out: PathBuf,
}

/// Synthetic image kinds.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SynthKind {
    /// Two phases with different lattices and a curved boundary.
    TwoPhase,
    /// Substrate plus a film with two slightly different domain variants.
    Domains,
    /// An image of the benchmark suite: `--family` and `--seed` draw its parameters.
    Suite,
}

/// Arguments of `phyvae patches`.
#[derive(Debug, Args)]
pub struct PatchesArgs {
    /// The image.
    #[command(flatten)]
    pub input: InputArgs,
    /// Patch window in px.
    #[arg(long, default_value_t = 48)]
    pub window: usize,
    /// Patch step in px.
    #[arg(long, default_value_t = 8)]
    pub step: usize,
}

/// Arguments of `phyvae score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Predicted labels (integer .npy).
    pub labels: PathBuf,
    /// Truth labels, same shape.
    pub truth: PathBuf,
    /// Boundary tolerance in grid cells.
    #[arg(long, default_value_t = 1)]
    pub tolerance: usize,
}

/// The image a command reads: a file, and which image in it.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Input image: NPY, TIFF, PNG, SPIEPy .dat, Digital Micrograph .dm3/.dm4,
    /// TIA .ser, Velox or Berkeley EMD, hyperspy .hspy (see `phyvae info`).
    pub image: PathBuf,
    /// Frame or page of a multi-image file (0-based).
    #[arg(long)]
    pub frame: Option<usize>,
    /// Entry of an HDF5 file (Velox or Berkeley EMD, hyperspy) to read, as
    /// `phyvae info` lists it, e.g. `/Data/Image/<id>`.
    #[arg(long)]
    pub dataset: Option<String>,
}

/// Where a run goes and what it runs on, shared by `train` and `encode`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Output folder (created).
    #[arg(long)]
    pub out: PathBuf,
    /// Compute device: `auto` (the first CUDA GPU when this build has CUDA and
    /// one is present, else the CPU), `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Truth map (per pixel of the image, integer labels) to score the segmentations against.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Replace the run already in the output folder (only the files a run
    /// writes are removed).
    #[arg(long)]
    pub overwrite: bool,
}

/// Arguments of `phyvae train`. Unset options come from `--config` (when
/// given) or the defaults; the effective settings are written to
/// `OUT/config.toml`, which `--config` accepts to reproduce the run.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The image.
    #[command(flatten)]
    pub input: InputArgs,
    /// Output, device and truth.
    #[command(flatten)]
    pub run: RunArgs,
    /// A run configuration (TOML, as written to OUT/config.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model: vanilla, shift, rotation, scale or a combination (shift-rotation,
    /// ...), or `fft`: the classical baseline (sliding-window FFT magnitude,
    /// PCA, clustering), no training (default: shift, the paper's sh-VAE).
    #[arg(long, value_enum)]
    pub model: Option<ModelArg>,
    /// Where unset settings come from: `auto` (measured on the image: window,
    /// step, shift prior from its lattice; beta, batch, rate, length fixed) or
    /// `paper` (the paper's settings exactly: window 48, step 8, k 0.1, hidden
    /// 128, 2 content latents, beta 0.1:1, 50 epochs) (default: auto).
    #[arg(long, value_enum)]
    pub preset: Option<PresetArg>,
    /// Length of the run in optimiser steps (trained as the whole epochs that
    /// cover them); `--epochs` wins when both are given (default: 2000).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Classes of the result segmentation (default: chosen from the data, 2 to 4).
    #[arg(long)]
    pub classes: Option<usize>,
    /// Physics term (default: none).
    #[arg(long, value_enum)]
    pub physics: Option<PhysicsKind>,
    /// Physics mode (default: gradient).
    #[arg(long, value_enum)]
    pub mode: Option<PhysicsMode>,
    /// Slack w of L_sh (w + Psi), in [0, 0.5] (default: 0.1).
    #[arg(long)]
    pub weight: Option<f32>,
    /// Gradient mode: the loss is L_sh + LAMBDA * Psi (the default, LAMBDA 1).
    #[arg(long, conflicts_with = "multiply")]
    pub add_lambda: Option<f32>,
    /// Gradient mode: use the paper's product L_sh (w + Psi) instead of the sum.
    #[arg(long)]
    pub multiply: bool,
    /// Gradient-mode SL1: lower bound of a batch latent map's min-max range, in
    /// latent units (1e-6: the authors' plain min-max; default 1).
    #[arg(long)]
    pub range_floor: Option<f64>,
    /// Epochs trained without the physics term before it is switched on
    /// (default: 0 in faithful mode, a third of the epochs in gradient mode).
    #[arg(long)]
    pub physics_warmup: Option<usize>,
    /// Content latents Psi sees, e.g. `z1,z2` or `z2` (default: z1,z2).
    #[arg(long)]
    pub latents: Option<String>,
    /// Number of content latents (default: 2).
    #[arg(long)]
    pub n_latent: Option<usize>,
    /// Epochs (default: the whole epochs that cover `--steps`).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Batch size (a perfect square with a physics term) (default: 16).
    #[arg(long)]
    pub batch: Option<usize>,
    /// KL scale: B, A:B (ramp over all epochs) or A:B:HOLD (default: 0.05).
    #[arg(long)]
    pub beta: Option<String>,
    /// Adam learning rate (default: 5e-3).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Hidden width of encoder and decoder (default: 128).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Translation prior k: a shift latent of 1 moves the decoder's grid by k
    /// (coordinates span [-1, 1] over the window). Give it about half a lattice
    /// spacing over half the window, e.g. 0.6 for a 12 px lattice in a 16 px window
    /// (default: measured, the lattice cell over the window).
    #[arg(long)]
    pub shift_prior: Option<f32>,
    /// Patch window in px (default: measured, a cell and a half on one lattice, else two cells).
    #[arg(long)]
    pub window: Option<usize>,
    /// Patch step in px (default: a quarter of the window).
    #[arg(long)]
    pub step: Option<usize>,
    /// Standard deviation in px of the Gaussian low-pass of every map before
    /// segmentation (0: none, the paper's pipeline; measured: half a unit cell).
    #[arg(long, allow_negative_numbers = true)]
    pub lowpass: Option<f64>,
    /// Cut the patches on the regular grid (the paper's) instead of moving
    /// each onto the measured lattice (see `data.register` in config.toml).
    #[arg(long)]
    pub no_register: bool,
    /// Cut the patches from the image as recorded instead of first removing
    /// the scan drift along its rows, measured on its lattice (see
    /// `data.dedrift` in config.toml).
    #[arg(long)]
    pub no_dedrift: bool,
    /// Min-max scale each patch on its own (default: the whole image).
    #[arg(long)]
    pub per_patch_norm: bool,
    /// Background levelling (default: none).
    #[arg(long, value_enum)]
    pub level: Option<Levelling>,
    /// Seed of every random draw (default: 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Times to train again from scratch, with the next seed and half the
    /// learning rate (after a collapse also half the KL scale), when the
    /// content latents collapse, their maps show no regions, or a clear
    /// classical baseline agrees with the result only in part (then the
    /// attempt that agrees more is kept) (0 to 3; default 1, the paper's
    /// preset 0).
    #[arg(long)]
    pub retries: Option<usize>,
    /// Write the full latent maps every N epochs to OUT/snapshots (default:
    /// a fifth of the epochs; 0: never).
    #[arg(long)]
    pub snapshot_every: Option<usize>,
    /// Decoder implementation (default: auto).
    #[arg(long, value_enum)]
    pub decoder: Option<DecoderBackend>,
    /// Coordinates the spatial decoder sees: `raw`, the patch grid's (x, y)
    /// (pyroVED's decoder), or `lattice`, also a sine and a cosine at each of
    /// the image's lattice wavevectors (Fourier features) (default: raw)
    #[arg(long, value_enum)]
    pub coords: Option<crate::settings::CoordsArg>,
    /// Continue the run in OUT from its last checkpoint. Its recorded
    /// settings hold; only more epochs (`--epochs`, `--steps`) and a lower
    /// `--lr` (from the next epoch on) may be given, and config.toml,
    /// history.csv and metrics.json record them.
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
}

/// Arguments of `phyvae encode`.
#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// The image.
    #[command(flatten)]
    pub input: InputArgs,
    /// Folder of a trained model (the OUT of `phyvae train`).
    #[arg(long)]
    pub model: PathBuf,
    /// Output, device and truth.
    #[command(flatten)]
    pub run: RunArgs,
}
