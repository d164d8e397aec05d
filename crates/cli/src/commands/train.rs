//! `phyvae train` and `phyvae encode`: training a model on one image and
//! encoding images with a trained model.
//!
//! Output folder of `train`:
//! - `config.toml`: the effective settings (`--config` reproduces the run);
//! - `model.safetensors`, `model.json`: the trained model and how it cuts patches;
//! - `latents.npy` (`gh x gw x L`, f32 encoder means, special latents first),
//!   `latents_sd.npy` (standard deviations);
//! - `history.csv`: one line per epoch;
//! - `metrics.json`: timing, throughput, final losses, full-map SL1/SL2 of each
//!   content map, and with `--truth` the scores of each segmentation;
//! - `segmentation/<latent>/`: the visualisation pipeline on each latent map;
//! - `manifold.npy`/`.png` (the learned 2-D manifold), `latent_hist.npy`;
//! - `checkpoint/`: the last epoch's checkpoint (`--resume` continues from it);
//! - `snapshots/latents_epoch_NNNN.npy` with `--snapshot-every`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use ndarray::{Array2, Axis};
use phyvae_data::io;
use phyvae_data::patches::{Levelling, PatchGrid, PatchSet, Scaling, labels_at_patch_centres};
use phyvae_imaging::physics::{sl1_map, sl2_map};
use phyvae_imaging::pipeline::{Segmentations, VisualizeParams};
use phyvae_model::Device;
use phyvae_model::auto::{self, AutoSettings, ImageFacts};
use phyvae_model::config::{
    BetaSchedule, Combine, DecoderBackend, ModelConfig, ModelKind, PhysicsKind, PhysicsMode,
    TrainConfig,
};
use phyvae_model::diagnose::{Diagnosis, RunFacts, diagnose};
use phyvae_model::infer::{
    LatentMaps, encode_patches_with_progress, latent_histogram, load_model, manifold2d, save_model,
};
use phyvae_model::train::{EpochRecord, TrainEvent, Trainer};
use phyvae_report::render;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::cli::{EncodeArgs, PresetArg, TrainArgs};
use crate::commands::{
    OutputError, classical, create_dir, print_json,
    report::write_report,
    result::{self, MapResult},
    segment::segment_grid_map,
};
use crate::input;
use crate::progress::Progress;

/// Patches encoded per batch after training.
const ENCODE_BATCH: usize = 256;
/// Side of the manifold grid (pyroVED `manifold2d` default d = 12).
const MANIFOLD_D: usize = 12;
/// Bins per axis of the latent histogram.
const HIST_BINS: usize = 64;
/// Latent snapshots recorded during a run by default (for the report's
/// boundary-evolution strip): one every `epochs / SNAPSHOTS` epochs.
const SNAPSHOTS: usize = 5;

/// How patches are cut from the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Patch window in px.
    pub window: usize,
    /// Patch step in px.
    pub step: usize,
    /// Min-max scale each patch on its own.
    pub per_patch_norm: bool,
    /// Background levelling: none, plane, plane-lines.
    pub level: String,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            window: 48,
            step: 8,
            per_patch_norm: false,
            level: "none".into(),
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

/// How the result segmentation is made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResultConfig {
    /// Classes of the result segmentation (`None`: chosen by the silhouette, 2 to 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
}

/// Everything that defines a run (written as `config.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
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
    /// The result segmentation.
    #[serde(default)]
    pub result: ResultConfig,
    /// What was measured on the image and chosen from it, with reasons (for
    /// the record: `--config` uses the values above, not these).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoSettings>,
}

/// The paper's settings (Biswas et al. 2023): window 48, step 8, k 0.1,
/// hidden 128, 2 content latents, beta 0.1 to 1 over 50 epochs.
fn paper_config() -> RunConfig {
    let mut c = RunConfig {
        sigma_color: 0.3,
        ..RunConfig::default()
    };
    c.data.window = 48;
    c.data.step = 8;
    c.model.window = 48;
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

/// A bad option value: an invalid-parameter error (exit code 4).
fn bad(name: &'static str, value: &str, rule: &'static str) -> anyhow::Error {
    phyvae_model::ModelError::InvalidParameter {
        name,
        value: value.to_string(),
        rule,
    }
    .into()
}

fn levelling(name: &str) -> Result<Levelling> {
    Ok(match name {
        "none" => Levelling::None,
        "plane" => Levelling::Plane,
        "plane-lines" => Levelling::PlanePlusLines,
        other => return Err(bad("level", other, "one of none, plane, plane-lines")),
    })
}

fn parse_kind(name: &str) -> Result<ModelKind> {
    ModelKind::ALL
        .into_iter()
        .find(|k| k.name() == name)
        .ok_or_else(|| {
            bad(
                "model",
                name,
                "unknown model: vanilla, shift, rotation, scale, shift-rotation, shift-scale, \
                 rotation-scale or shift-rotation-scale",
            )
        })
}

fn parse_latents(text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|t| {
            let t = t.trim();
            t.strip_prefix('z')
                .unwrap_or(t)
                .parse::<usize>()
                .map_err(|_| bad("latents", t, "content latents are named z1, z2, ..."))
        })
        .collect()
}

/// The effective configuration: the preset (`auto`: measured on `img`;
/// `paper`), or `--config`, then explicit flags.
fn effective_config(a: &TrainArgs, img: &phyvae_data::Image) -> Result<RunConfig> {
    let preset = a.preset.unwrap_or(PresetArg::Auto);
    let mut auto_settings = None;
    let mut c = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading config {}", p.display()))?;
            toml::from_str::<RunConfig>(&text)
                .with_context(|| format!("{} is not a phyvae run configuration", p.display()))?
        }
        None if preset == PresetArg::Paper => paper_config(),
        None => {
            let facts = ImageFacts::measure(img.pixels.view())?;
            let cap = if a.model.as_deref() == Some("fft") {
                auto::MAX_WINDOW_FFT
            } else {
                auto::MAX_WINDOW
            };
            let s = auto::choose(&facts, a.window, cap);
            let mut c = RunConfig {
                sigma_color: 0.3,
                ..RunConfig::default()
            };
            c.data.window = s.window;
            c.data.step = s.step;
            c.model.translation_prior = s.shift_prior;
            c.train.beta = BetaSchedule::Constant { beta: s.beta };
            c.train.batch_size = s.batch;
            c.train.lr = s.lr;
            auto_settings = Some(s);
            c
        }
    };
    if let Some(v) = &a.model {
        if v == "fft" {
            c.method = Method::Fft;
        } else {
            c.method = Method::Vae;
            c.model.kind = parse_kind(v)?;
        }
    }
    if let Some(v) = a.n_latent {
        c.model.n_latent = v;
    }
    if let Some(v) = a.hidden {
        c.model.hidden = v;
    }
    if let Some(v) = a.shift_prior {
        c.model.translation_prior = v;
    }
    if let Some(v) = a.window {
        c.data.window = v;
    }
    c.model.window = c.data.window;
    if let Some(v) = a.step {
        c.data.step = v;
    }
    if let Some(v) = a.classes {
        c.result.classes = Some(v);
    }
    if a.per_patch_norm {
        c.data.per_patch_norm = true;
    }
    if let Some(v) = &a.level {
        levelling(v)?;
        c.data.level.clone_from(v);
    }
    if let Some(v) = a.batch {
        c.train.batch_size = v;
    }
    // The length: --epochs, else --steps (or the automatic steps) as whole epochs.
    let steps = a.steps.or_else(|| auto_settings.as_ref().map(|s| s.steps));
    let epochs = match (a.epochs, steps) {
        (Some(e), _) => Some(e),
        (None, Some(steps)) => {
            let grid = PatchGrid::new(img.rows(), img.cols(), c.data.window, c.data.step)?;
            Some(auto::epochs_for_steps(
                steps,
                grid.len(),
                c.train.batch_size,
            ))
        }
        (None, None) => None,
    };
    if let Some(v) = epochs {
        c.train.epochs = v;
        // A ramp over "all epochs" follows the new epoch count.
        if a.beta.is_none()
            && let BetaSchedule::Ramp { ramp_epochs, .. } = &mut c.train.beta
        {
            *ramp_epochs = (*ramp_epochs).min(v).max(1);
        }
    }
    if let Some(v) = a.lr {
        c.train.lr = v;
    }
    if let Some(v) = a.seed {
        c.train.seed = v;
    }
    if let Some(v) = &a.beta {
        c.train.beta = BetaSchedule::parse(v, c.train.epochs)?;
    }
    if let Some(v) = &a.physics {
        c.train.physics.kind = match v.as_str() {
            "none" => PhysicsKind::None,
            "sl1" => PhysicsKind::Sl1,
            "sl2" => PhysicsKind::Sl2,
            other => return Err(bad("physics", other, "one of none, sl1, sl2")),
        };
    }
    if let Some(v) = &a.mode {
        c.train.physics.mode = match v.as_str() {
            "faithful" => PhysicsMode::Faithful,
            "gradient" => PhysicsMode::Gradient,
            other => return Err(bad("mode", other, "one of faithful, gradient")),
        };
    }
    if let Some(v) = a.weight {
        c.train.physics.weight = v;
    }
    if a.multiply {
        c.train.physics.combine = Combine::Multiply;
    }
    if let Some(v) = a.add_lambda {
        c.train.physics.combine = Combine::Add { lambda: v };
    }
    if let Some(v) = a.range_floor {
        c.train.physics.range_floor = v;
    }
    if let Some(v) = a.physics_warmup {
        c.train.physics.warmup_epochs = Some(v);
    }
    if let Some(v) = &a.latents {
        c.train.physics.latents = parse_latents(v)?;
    }
    if a.config.is_none() {
        c.train.snapshot_every = (c.train.epochs / SNAPSHOTS).max(1);
    }
    if let Some(v) = a.snapshot_every {
        c.train.snapshot_every = v;
    }
    if let Some(v) = &a.decoder {
        c.train.decoder = match v.as_str() {
            "auto" => DecoderBackend::Auto,
            "reference" => DecoderBackend::Reference,
            "fused" => DecoderBackend::Fused,
            other => return Err(bad("decoder", other, "one of auto, reference, fused")),
        };
    }
    c.model.validate()?;
    c.train.validate(&c.model)?;
    if let Some(k) = c.result.classes
        && !(2..=16).contains(&k)
    {
        return Err(bad("classes", &k.to_string(), "between 2 and 16"));
    }
    // A run made from --config keeps the record of what its settings came from.
    if auto_settings.is_some() {
        c.auto = auto_settings;
    }
    Ok(c)
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| {
        OutputError {
            path: path.to_path_buf(),
            source,
        }
        .into()
    })
}

fn cut_patches(img: &phyvae_data::Image, d: &DataConfig) -> Result<PatchSet> {
    let grid = PatchGrid::new(img.rows(), img.cols(), d.window, d.step)?;
    let scaling = if d.per_patch_norm {
        Scaling::PerPatch
    } else {
        Scaling::GlobalMinMax
    };
    Ok(PatchSet::from_image(
        img,
        grid,
        scaling,
        levelling(&d.level)?,
    )?)
}

fn history_csv(h: &[EpochRecord]) -> String {
    let mut s = String::from("epoch,beta,recon,kl,elbo,psi,total,seconds\n");
    for r in h {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{}",
            r.epoch, r.beta, r.recon, r.kl, r.elbo, r.psi, r.total, r.seconds
        );
    }
    s
}

/// Names of the latent channels: special ones, then z1..zn.
fn latent_names(m: &ModelConfig) -> Vec<String> {
    let mut v: Vec<String> = m
        .kind
        .special_names()
        .iter()
        .map(|s| (*s).to_string())
        .collect();
    v.extend((1..=m.n_latent).map(|i| format!("z{i}")));
    v
}

/// Writes the latent maps (`latents.npy`, `latents_sd.npy`) and the
/// segmentation pipeline's outputs on every map; returns the per-map metrics
/// and each map's segmentations.
pub(crate) fn write_maps(
    out: &Path,
    names: &[String],
    mean: ndarray::ArrayView3<'_, f32>,
    sd: Option<ndarray::ArrayView3<'_, f32>>,
    truth: Option<&Array2<i32>>,
    sigma_color: f64,
    progress: Progress,
) -> Result<(Value, Vec<Segmentations>)> {
    io::write_npy_f32_3d(&out.join("latents.npy"), mean)?;
    if let Some(t) = truth {
        io::write_npy_i32(&out.join("truth_grid.npy"), t.view())?;
    }
    if let Some(sd) = sd {
        io::write_npy_f32_3d(&out.join("latents_sd.npy"), sd)?;
    }
    let params = VisualizeParams::new().sigma_color(sigma_color).build()?;
    let mut per_map = serde_json::Map::new();
    let mut segs = Vec::with_capacity(names.len());
    let step = progress.bar("segmenting", names.len() as u64);
    for (c, name) in names.iter().enumerate() {
        step.message(name.clone());
        let map: Array2<f32> = mean.index_axis(Axis(2), c).to_owned();
        let dir = out.join("segmentation").join(name);
        let (mut entry, seg) = segment_grid_map(map.view(), &params, &dir, truth, 1)?;
        entry["sl1"] = json!(sl1_map(map.view()).ok());
        entry["sl2"] = json!(sl2_map(map.view(), 1).ok());
        per_map.insert(name.clone(), entry);
        segs.push(seg);
        step.bar().inc(1);
    }
    step.done();
    Ok((Value::Object(per_map), segs))
}

/// Writes the manifold and the latent histogram of a trained model.
fn write_model_figures(
    out: &Path,
    model: &phyvae_model::vae::Vae,
    maps: &LatentMaps,
) -> Result<()> {
    let cfg = model.config();
    let manifold = manifold2d(model, MANIFOLD_D)?;
    io::write_npy_f32(&out.join("manifold.npy"), manifold.view())?;
    render::write_grey_png(&out.join("manifold.png"), manifold.view())?;
    let s = cfg.kind.n_special();
    if cfg.n_latent >= 2 {
        let h = latent_histogram(maps, s, s + 1, HIST_BINS)?;
        let counts = h.counts.mapv(|v| v as f32);
        io::write_npy_f32(&out.join("latent_hist.npy"), counts.view())?;
    }
    Ok(())
}

/// Says on stderr what the diagnosis found (always, even with `--quiet`:
/// a failed run must not pass unnoticed).
pub(crate) fn warn_diagnosis(d: &Diagnosis) {
    for f in &d.findings {
        eprintln!(
            "warning: {}: {}. Try: {}.",
            f.kind.title(),
            f.message,
            f.advice
        );
    }
}

fn read_truth(path: Option<&PathBuf>, grid: &PatchGrid) -> Result<Option<Array2<i32>>> {
    match path {
        Some(p) => {
            let t = input::labels(p)?;
            Ok(Some(
                labels_at_patch_centres(t.view(), grid)
                    .context("truth map does not match the image")?,
            ))
        }
        None => Ok(None),
    }
}

/// The candle device of `--device`: `cpu`, `cuda` (= `cuda:0`), `cuda:N`, or
/// `auto` (CUDA device 0 when this build has CUDA and a device is present,
/// else the CPU).
fn pick_device(spec: &str) -> Result<Device> {
    let cuda = |ordinal: usize| {
        Device::new_cuda(ordinal).with_context(|| {
            format!(
                "--device {spec}: no CUDA device {ordinal} (CUDA needs a build with \
                 --features phyvae-model/cuda and an NVIDIA GPU)"
            )
        })
    };
    match spec {
        "auto" => Device::cuda_if_available(0).context("--device auto"),
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => cuda(n),
            _ => bail!("--device {other}: expected auto, cpu, cuda or cuda:N"),
        },
    }
}

/// `cpu` or `cuda` for metrics.json.
fn device_name(device: &Device) -> &'static str {
    if device.is_cuda() {
        "cuda"
    } else if device.is_metal() {
        "metal"
    } else {
        "cpu"
    }
}

/// The pixel size of an image for metrics.json (`null` when the file has none).
fn pixel_size_json(img: &phyvae_data::Image) -> Value {
    img.pixel_size.as_ref().map_or(
        Value::Null,
        |p| json!({ "x": p.x, "y": p.y, "unit": p.unit }),
    )
}

/// Reads the image with a progress line.
fn read_input(
    path: &Path,
    frame: Option<usize>,
    dataset: Option<&str>,
    progress: Progress,
) -> Result<phyvae_data::Image> {
    let st = progress.step("reading image");
    let img = input::image_in(path, frame, dataset)?;
    st.done();
    Ok(img)
}

/// Cuts the patches with a progress line, and saves the image the model sees
/// (after levelling and scaling) as `input.png` for the report.
fn patches_for(
    img: &phyvae_data::Image,
    d: &DataConfig,
    out: &Path,
    progress: Progress,
) -> Result<PatchSet> {
    let st = progress.step("cutting patches");
    let patches = cut_patches(img, d)?;
    render::write_grey_png(&out.join("input.png"), patches.scaled_image())?;
    st.done();
    Ok(patches)
}

/// Encodes every patch with a progress bar.
fn encode_all(
    model: &phyvae_model::vae::Vae,
    patches: &PatchSet,
    progress: Progress,
) -> Result<LatentMaps> {
    let st = progress.bar("encoding", patches.len() as u64);
    let maps = encode_patches_with_progress(model, patches, ENCODE_BATCH, &mut |done, _| {
        st.bar().set_position(done as u64);
    })?;
    st.done();
    Ok(maps)
}

/// The first epoch (0-based) with the physics term on, `None` without one.
fn physics_from(cfg: &RunConfig) -> Option<usize> {
    (cfg.train.physics.kind != PhysicsKind::None).then(|| cfg.train.physics_warmup())
}

/// Writes `metrics.json`, then the report, then `metrics.json` again with
/// the report's path; prints the metrics.
pub(crate) fn finish_run(
    out: &Path,
    mut metrics: Value,
    t0: Instant,
    progress: Progress,
) -> Result<()> {
    let mpath = out.join("metrics.json");
    metrics["seconds"] = json!(t0.elapsed().as_secs_f64());
    write_text(&mpath, &serde_json::to_string_pretty(&metrics)?)?;
    let report = write_report(&[out.to_path_buf()], None, progress)?;
    metrics["report"] = json!(report);
    metrics["seconds"] = json!(t0.elapsed().as_secs_f64());
    write_text(&mpath, &serde_json::to_string_pretty(&metrics)?)?;
    print_json(&metrics)
}

/// The candidates of the result pick: the content latents the diagnosis
/// found active, with their segmentations (`segs` in latent order).
fn informative<'a>(
    diagnosis: &Diagnosis,
    names: &'a [String],
    segs: &'a [Segmentations],
) -> Vec<MapResult<'a>> {
    diagnosis
        .latents
        .iter()
        .zip(names.iter().zip(segs))
        .filter(|(l, _)| l.content && l.active)
        .map(|(_, (name, seg))| MapResult { name, seg })
        .collect()
}

/// The run's common metrics.json fields.
pub(crate) fn base_metrics(
    a_image: &Path,
    img: &phyvae_data::Image,
    data: &DataConfig,
    patches: &PatchSet,
    names: &[String],
    content: &[String],
) -> Value {
    json!({
        "input": a_image,
        "command": std::env::args().collect::<Vec<_>>(),
        "image_shape": [img.rows(), img.cols()],
        "pixel_size": pixel_size_json(img),
        "window": data.window,
        "step": data.step,
        "grid": [patches.grid().gh(), patches.grid().gw()],
        "patches": patches.len(),
        "latents": names,
        "content_latents": content,
        "phyvae_version": env!("CARGO_PKG_VERSION"),
    })
}

/// `phyvae train IMAGE --out DIR ...`.
pub fn train(a: &TrainArgs, progress: Progress) -> Result<()> {
    let t0 = Instant::now();
    let img = read_input(&a.image, a.frame, a.dataset.as_deref(), progress)?;
    let ckpt = a.out.join("checkpoint");
    let device = pick_device(&a.device)?;
    let cfg = if a.resume {
        let text = std::fs::read_to_string(a.out.join("config.toml"))
            .context("--resume needs the config.toml of the interrupted run")?;
        toml::from_str::<RunConfig>(&text).context("config.toml of the interrupted run")?
    } else {
        effective_config(a, &img)?
    };
    create_dir(&a.out)?;
    let patches = patches_for(&img, &cfg.data, &a.out, progress)?;
    let truth = read_truth(a.truth.as_ref(), patches.grid())?;
    if !a.resume {
        write_text(&a.out.join("config.toml"), &toml::to_string_pretty(&cfg)?)?;
    }
    if cfg.method == Method::Fft {
        return classical::run(a, &img, &cfg, &patches, truth.as_ref(), t0, progress);
    }
    let mut trainer = if a.resume {
        Trainer::resume(&ckpt, &patches, &device)?
    } else {
        Trainer::new(&cfg.model, &cfg.train, &patches, &device)?.with_checkpoints(&ckpt)?
    };
    let snap_dir = a.out.join("snapshots");
    if cfg.train.snapshot_every > 0 {
        create_dir(&snap_dir)?;
    }
    let mut bar: Option<crate::progress::Step> = None;
    let mut snap_err: Option<anyhow::Error> = None;
    let train_start = Instant::now();
    let done_before = trainer.epochs_done();
    let outcome = trainer.run(&mut |e| match e {
        TrainEvent::EpochStarted {
            epoch,
            epochs,
            batches,
        } => {
            bar = Some(progress.bar(&format!("epoch {epoch}/{epochs}"), batches as u64));
        }
        TrainEvent::BatchDone { loss, .. } => {
            if let Some(b) = &bar {
                b.bar().inc(1);
                b.message(format!("loss {loss:.2}"));
            }
        }
        TrainEvent::EpochFinished(r) => {
            if let Some(b) = bar.take() {
                b.bar().finish_and_clear();
            }
            progress.line(&format!(
                "epoch {:>3}: elbo {:.3} psi {:.4} total {:.3} ({:.1} s)",
                r.epoch, r.elbo, r.psi, r.total, r.seconds
            ));
        }
        TrainEvent::Snapshot { epoch, maps } => {
            let p = snap_dir.join(format!("latents_epoch_{epoch:04}.npy"));
            if let Err(err) = io::write_npy_f32_3d(&p, maps.mean.view()) {
                snap_err.get_or_insert(err.into());
            }
        }
        TrainEvent::CheckpointWritten { .. } => {}
    });
    if let Some(b) = bar.take() {
        b.bar().finish_and_clear();
    }
    let names = latent_names(&cfg.model);
    let content: Vec<String> = names[cfg.model.kind.n_special()..].to_vec();
    if let Err(phyvae_model::ModelError::Diverged { epoch, batch, what }) = &outcome {
        // Say so in metrics.json too; no map is drawn from a diverged model.
        let diagnosis = Diagnosis::diverged(*epoch, *batch, what);
        warn_diagnosis(&diagnosis);
        let mut metrics = base_metrics(&a.image, &img, &cfg.data, &patches, &names, &content);
        metrics["diagnosis"] = serde_json::to_value(&diagnosis)?;
        metrics["result"] = json!({ "map": null, "reason": "training diverged" });
        write_text(
            &a.out.join("metrics.json"),
            &serde_json::to_string_pretty(&metrics)?,
        )?;
    }
    outcome?;
    if let Some(e) = snap_err {
        return Err(e);
    }
    let train_secs = train_start.elapsed().as_secs_f64();
    let epochs_run = trainer.epochs_done() - done_before;
    let history = trainer.history().to_vec();
    write_text(&a.out.join("history.csv"), &history_csv(&history))?;
    let model = trainer.into_model();
    save_model(&model, &a.out, &serde_json::to_value(&cfg.data)?)?;
    let maps = encode_all(&model, &patches, progress)?;
    let (per_map, segs) = write_maps(
        &a.out,
        &names,
        maps.mean.view(),
        Some(maps.sd.view()),
        truth.as_ref(),
        cfg.sigma_color,
        progress,
    )?;
    write_model_figures(&a.out, &model, &maps)?;
    let diagnosis = diagnose(
        maps.mean.view(),
        &RunFacts {
            names: &names,
            n_special: cfg.model.kind.n_special(),
            history: &history,
            physics_from_epoch: physics_from(&cfg),
        },
    );
    warn_diagnosis(&diagnosis);
    let result = result::pick(
        &a.out,
        &informative(&diagnosis, &names, &segs),
        cfg.result.classes,
        cfg.train.seed,
        truth.as_ref(),
        &per_map,
        "no content latent carries information (see the diagnosis)",
    )?;
    let patches_seen = epochs_run * patches.len();
    let mut metrics = base_metrics(&a.image, &img, &cfg.data, &patches, &names, &content);
    metrics["parameters"] = json!(model.store().num_params());
    metrics["epochs"] = json!(history.len());
    metrics["steps"] = json!(history.len() * patches.len().div_ceil(cfg.train.batch_size));
    metrics["final"] = json!(history.last());
    metrics["training_seconds"] = json!(train_secs);
    metrics["patches_per_second"] = json!(if train_secs > 0.0 {
        patches_seen as f64 / train_secs
    } else {
        0.0
    });
    metrics["maps"] = per_map;
    metrics["diagnosis"] = serde_json::to_value(&diagnosis)?;
    metrics["result"] = result;
    metrics["settings"] = json!(cfg.auto);
    metrics["device"] = json!(device_name(&device));
    finish_run(&a.out, metrics, t0, progress)
}

/// `phyvae encode --model DIR IMAGE --out DIR2`.
pub fn encode(a: &EncodeArgs, progress: Progress) -> Result<()> {
    let t0 = Instant::now();
    let device = pick_device(&a.device)?;
    let (model, data) = load_model(&a.model, &device)?;
    let data: DataConfig = serde_json::from_value(data)
        .with_context(|| format!("{}: no patch settings in model.json", a.model.display()))?;
    let cfg: Option<RunConfig> = std::fs::read_to_string(a.model.join("config.toml"))
        .ok()
        .and_then(|t| toml::from_str(&t).ok());
    let sigma_color = cfg.as_ref().map_or(0.3, |c| c.sigma_color);
    let classes = cfg.as_ref().and_then(|c| c.result.classes);
    let seed = cfg.as_ref().map_or(0, |c| c.train.seed);
    let img = read_input(&a.image, a.frame, a.dataset.as_deref(), progress)?;
    create_dir(&a.out)?;
    let patches = patches_for(&img, &data, &a.out, progress)?;
    let truth = read_truth(a.truth.as_ref(), patches.grid())?;
    let maps = encode_all(&model, &patches, progress)?;
    let names = latent_names(model.config());
    let n_special = model.config().kind.n_special();
    let content: Vec<String> = names[n_special..].to_vec();
    let (per_map, segs) = write_maps(
        &a.out,
        &names,
        maps.mean.view(),
        Some(maps.sd.view()),
        truth.as_ref(),
        sigma_color,
        progress,
    )?;
    write_model_figures(&a.out, &model, &maps)?;
    let diagnosis = diagnose(
        maps.mean.view(),
        &RunFacts {
            names: &names,
            n_special,
            history: &[],
            physics_from_epoch: None,
        },
    );
    warn_diagnosis(&diagnosis);
    let result = result::pick(
        &a.out,
        &informative(&diagnosis, &names, &segs),
        classes,
        seed,
        truth.as_ref(),
        &per_map,
        "no content latent varies across this image (see the diagnosis)",
    )?;
    let mut metrics = base_metrics(&a.image, &img, &data, &patches, &names, &content);
    metrics["model"] = json!(a.model);
    metrics["maps"] = per_map;
    metrics["diagnosis"] = serde_json::to_value(&diagnosis)?;
    metrics["result"] = result;
    finish_run(&a.out, metrics, t0, progress)
}
