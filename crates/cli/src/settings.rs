//! The settings layer of `phyvae train`: command-line flags, then `--config`
//! (or the preset: measured on the image, or the paper's), then the library
//! defaults, merged in one place into one checked [`RunConfig`].

use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use phyvae_data::patches::PatchGrid;
use phyvae_run::auto::{self, ImageFacts};
use phyvae_run::config::{
    BetaSchedule, Combine, InputRecord, Method, ModelKind, PhysicsKind, RunConfig,
};

use crate::cli::TrainArgs;

/// Latent snapshots recorded during a run by default (for the report's
/// boundary-evolution strip): one every `epochs / SNAPSHOTS` epochs.
const SNAPSHOTS: usize = 5;

/// `--model`: a VAE architecture ([`ModelKind`], by its name), or `fft`,
/// the classical baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelArg {
    /// A VAE of this architecture.
    Vae(ModelKind),
    /// The classical baseline: sliding-window FFT magnitude, PCA, clustering; no training.
    Fft,
}

/// Every `--model` value: the architectures, then the baseline.
static MODEL_ARGS: std::sync::LazyLock<Vec<ModelArg>> = std::sync::LazyLock::new(|| {
    ModelKind::ALL
        .into_iter()
        .map(ModelArg::Vae)
        .chain([ModelArg::Fft])
        .collect()
});

impl ValueEnum for ModelArg {
    fn value_variants<'a>() -> &'a [Self] {
        &MODEL_ARGS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(match self {
            ModelArg::Vae(k) => clap::builder::PossibleValue::new(k.name()),
            ModelArg::Fft => clap::builder::PossibleValue::new("fft"),
        })
    }
}

impl ModelArg {
    /// The method and, for a VAE, its architecture.
    fn split(self) -> (Method, Option<ModelKind>) {
        match self {
            ModelArg::Vae(k) => (Method::Vae, Some(k)),
            ModelArg::Fft => (Method::Fft, None),
        }
    }
}

/// `--preset`: where the settings that the command line leaves unset come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// Measured on the image.
    Auto,
    /// The paper's settings.
    Paper,
}

/// `--coords`: what the spatial decoder's first layer sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CoordsArg {
    /// The patch grid's coordinates (pyroVED's decoder).
    Raw,
    /// Also Fourier features at the image's lattice wavevectors.
    Lattice,
}

/// A bad option value: an invalid-parameter error (exit code 4).
fn bad(name: &'static str, value: &str, rule: &'static str) -> anyhow::Error {
    phyvae_run::RunError::InvalidParameter {
        name,
        value: value.to_string(),
        rule,
    }
    .into()
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

/// Reads a run configuration written as `config.toml`.
///
/// # Errors
/// When the file cannot be read or is not a run configuration.
pub fn read_config(path: &std::path::Path) -> Result<RunConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    toml::from_str::<RunConfig>(&text)
        .with_context(|| format!("{} is not a phyvae run configuration", path.display()))
}

/// The base of a run: `--config`, or the preset (`auto`: measured on
/// `img`; `paper`); with the settings chosen from the image when measured.
fn base(a: &TrainArgs, img: &phyvae_data::Image) -> Result<RunConfig> {
    if let Some(p) = &a.config {
        return read_config(p);
    }
    if a.preset == Some(PresetArg::Paper) {
        return Ok(RunConfig::paper());
    }
    let facts = ImageFacts::measure(img.pixels.view())?;
    let method = if a.model == Some(ModelArg::Fft) {
        Method::Fft
    } else {
        Method::Vae
    };
    let s = auto::choose(&facts, a.window, method);
    let mut c = RunConfig::default();
    c.set_window(s.window);
    c.data.step = s.step;
    c.model.translation_prior = s.shift_prior;
    c.train.beta = BetaSchedule::Constant { beta: s.beta };
    c.train.batch_size = s.batch;
    c.train.lr = s.lr;
    c.lowpass_px = s.lowpass_px;
    c.retries = s.retries;
    c.data.level = s.level;
    // |FFT| does not change with the patch's position in the cell: the
    // baseline needs no registration, and it has no decoder.
    if a.model != Some(ModelArg::Fft) {
        c.data.register.clone_from(&s.register);
        c.data.dedrift = s.dedrift;
        c.model.coord_frequencies.clone_from(&s.coord_frequencies);
    }
    c.auto = Some(s);
    Ok(c)
}

/// The effective, checked configuration of `phyvae train`: flags, then
/// `--config` or the preset, then the defaults.
///
/// # Errors
/// When `--config` cannot be read, the image cannot be measured, or a
/// setting breaks a rule ([`RunConfig::validate`]).
pub fn resolve(a: &TrainArgs, img: &phyvae_data::Image) -> Result<RunConfig> {
    let c = base(a, img)?;
    let fresh = a.config.is_none();
    let measured = c.auto.as_ref().filter(|_| fresh).map(|s| s.steps);
    let mut c = apply_flags(c, a, img, measured, fresh, false)?;
    c.input = Some(input_record(a, img));
    Ok(c)
}

/// What `--resume` changes in the recorded run: the only changes it takes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResumeChanges {
    /// A new total of epochs (`--epochs`, or `--steps` as whole epochs),
    /// when it differs from the recorded one; the trainer refuses fewer
    /// than it has done.
    pub epochs: Option<usize>,
    /// A learning rate lower than the run's current one, for the epochs
    /// from the next on.
    pub lr: Option<f64>,
}

/// The recorded configuration of the run in `--out`, for `--resume`, and
/// the changes asked for: the image must be the one the run was trained on,
/// and no flag may contradict the recorded settings, except a new length
/// (`--epochs` or `--steps`) and a lower `--lr`.
///
/// # Errors
/// When config.toml cannot be read, the image differs, flags contradict the
/// run (each conflict named, with both values), or `--lr` is higher than
/// the run's current rate.
pub fn resume(
    a: &TrainArgs,
    img: &phyvae_data::Image,
    path: &Path,
) -> Result<(RunConfig, ResumeChanges)> {
    let recorded = read_config(path).with_context(|| {
        format!(
            "--resume needs the config.toml of the interrupted run ({}); \
             without it, start the run again without --resume",
            path.display()
        )
    })?;
    let now = input_record(a, img);
    if let Some(was) = &recorded.input
        && (was.fingerprint != now.fingerprint || was.shape != now.shape)
    {
        bail!(
            "--resume: {} is not the image this run was trained on ({}, {} x {} px, \
             fingerprint {}; given: {} x {} px, fingerprint {})",
            a.input.image.display(),
            was.file.display(),
            was.shape[0],
            was.shape[1],
            was.fingerprint,
            now.shape[0],
            now.shape[1],
            now.fingerprint
        );
    }
    let wanted = apply_flags(recorded.clone(), a, img, None, false, true)?;
    let conflicts = differences(&recorded, &wanted);
    if !conflicts.is_empty() {
        bail!(
            "--resume continues the recorded run, and these options contradict it: {}. \
             Drop them, or start a new run in another folder (only more --epochs or \
             --steps and a lower --lr may be given)",
            conflicts.join(", ")
        );
    }
    let t = &recorded.train;
    // More steps continue in epochs of the recorded length.
    let epochs = match (a.epochs, a.steps) {
        (Some(e), _) => Some(e),
        (None, Some(steps)) => {
            let grid = PatchGrid::new(
                img.rows(),
                img.cols(),
                recorded.data.window,
                recorded.data.step,
            )?;
            let per_epoch = auto::batches_per_epoch(grid.len(), t.batch_size, t.batches_per_epoch);
            Some(steps.div_ceil(per_epoch).max(1))
        }
        (None, None) => None,
    }
    .filter(|&e| e != t.epochs);
    let current = t.lr_changes.last().map_or(t.lr, |c| c.lr);
    let lr = match a.lr {
        Some(v) if v > current => {
            return Err(phyvae_run::RunError::InvalidParameter {
                name: "lr",
                value: format!("{v} (the run's current rate is {current})"),
                rule: "--resume takes only a lower learning rate: a higher one can throw the \
                       trained model out of the minimum it has found; start a new run for it",
            }
            .into());
        }
        Some(v) if v < current => Some(v),
        _ => None,
    };
    Ok((recorded, ResumeChanges { epochs, lr }))
}

/// The length the command line asks for, `(epochs, batches_per_epoch)`:
/// `--epochs` (with `c`'s cap on the batches of an epoch), else `--steps`
/// (or the `measured` steps) on `c`'s patch grid and batch size
/// ([`auto::length_for_steps`]); `None` when neither is given.
fn epochs_asked(
    a: &TrainArgs,
    img: &phyvae_data::Image,
    c: &RunConfig,
    measured: Option<usize>,
) -> Result<Option<(usize, Option<usize>)>> {
    Ok(match (a.epochs, a.steps.or(measured)) {
        (Some(e), _) => Some((e, c.train.batches_per_epoch)),
        (None, Some(steps)) => {
            let grid = PatchGrid::new(img.rows(), img.cols(), c.data.window, c.data.step)?;
            Some(auto::length_for_steps(
                steps,
                grid.len(),
                c.train.batch_size,
            ))
        }
        (None, None) => None,
    })
}

/// The settings (dotted `config.toml` paths) in which `b` differs from `a`,
/// with both values; the records of the input and of the measured settings
/// are not settings.
fn differences(a: &RunConfig, b: &RunConfig) -> Vec<String> {
    fn walk(path: &str, a: &toml::Value, b: &toml::Value, out: &mut Vec<String>) {
        match (a, b) {
            (toml::Value::Table(ta), toml::Value::Table(tb)) => {
                let keys: std::collections::BTreeSet<&String> =
                    ta.keys().chain(tb.keys()).collect();
                for k in keys {
                    if path.is_empty() && (k == "input" || k == "auto") {
                        continue;
                    }
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match (ta.get(k), tb.get(k)) {
                        (Some(x), Some(y)) => walk(&p, x, y, out),
                        (x, y) => out.push(format!(
                            "{p} ({} -> {})",
                            x.map_or_else(|| "unset".into(), ToString::to_string),
                            y.map_or_else(|| "unset".into(), ToString::to_string)
                        )),
                    }
                }
            }
            (x, y) if x != y => out.push(format!("{path} ({x} -> {y})")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    match (toml::Value::try_from(a), toml::Value::try_from(b)) {
        (Ok(x), Ok(y)) => walk("", &x, &y, &mut out),
        _ => out.push("the settings (they cannot be compared)".into()),
    }
    out
}

/// Applies the command line's flags to `c` and checks the result. `measured`:
/// the optimiser steps chosen from the image (a fresh run without
/// `--epochs`); `fresh`: the snapshot interval follows the epoch count;
/// `resuming`: the length and the learning rate are left to [`resume`].
fn apply_flags(
    mut c: RunConfig,
    a: &TrainArgs,
    img: &phyvae_data::Image,
    measured: Option<usize>,
    fresh: bool,
    resuming: bool,
) -> Result<RunConfig> {
    if let Some(m) = a.model {
        let (method, kind) = m.split();
        c.method = method;
        if let Some(k) = kind {
            c.model.kind = k;
        }
    }
    set(&mut c.model.n_latent, a.n_latent);
    set(&mut c.model.hidden, a.hidden);
    set(&mut c.model.translation_prior, a.shift_prior);
    if let Some(w) = a.window {
        c.set_window(w);
    }
    set(&mut c.data.step, a.step);
    set(&mut c.lowpass_px, a.lowpass);
    set(&mut c.retries, a.retries);
    if a.no_register {
        c.data.register.clear();
        c.data.dedrift = false;
    }
    if a.no_dedrift {
        c.data.dedrift = false;
    }
    match a.coords {
        Some(CoordsArg::Raw) => c.model.coord_frequencies.clear(),
        Some(CoordsArg::Lattice) => {
            let measured = match &c.auto {
                Some(s) => s.register.clone(),
                None => ImageFacts::measure(img.pixels.view())?.wavevectors,
            };
            c.model.coord_frequencies = auto::lattice_frequencies(&measured, c.model.window);
            if c.model.coord_frequencies.is_empty() {
                return Err(bad(
                    "coords",
                    "lattice",
                    "the image's power spectrum shows no lattice peak to take the frequencies from",
                ));
            }
        }
        None => {}
    }
    if a.classes.is_some() {
        c.result.classes = a.classes;
    }
    if a.per_patch_norm {
        c.data.per_patch_norm = true;
    }
    set(&mut c.data.level, a.level);
    set(&mut c.train.batch_size, a.batch);
    // The length: --epochs, else --steps (or the measured steps) as epochs.
    let epochs = if resuming {
        None
    } else {
        epochs_asked(a, img, &c, measured)?
    };
    if let Some((v, cap)) = epochs {
        c.train.epochs = v;
        c.train.batches_per_epoch = cap;
        // A ramp over "all epochs" follows the new epoch count.
        if a.beta.is_none()
            && let BetaSchedule::Ramp { ramp_epochs, .. } = &mut c.train.beta
        {
            *ramp_epochs = (*ramp_epochs).min(v).max(1);
        }
    }
    if !resuming {
        set(&mut c.train.lr, a.lr);
    }
    set(&mut c.train.seed, a.seed);
    if let Some(v) = &a.beta {
        c.train.beta = BetaSchedule::parse(v, c.train.epochs)?;
    }
    let p = &mut c.train.physics;
    if let Some(k) = a.physics {
        // `--physics sl2` keeps the alpha of `--config`.
        p.kind = match (k, p.kind) {
            (PhysicsKind::Sl2 { .. }, PhysicsKind::Sl2 { alpha }) => PhysicsKind::Sl2 { alpha },
            (k, _) => k,
        };
    }
    set(&mut p.mode, a.mode);
    set(&mut p.weight, a.weight);
    if a.multiply {
        p.combine = Combine::Multiply;
    }
    if let Some(v) = a.add_lambda {
        p.combine = Combine::Add { lambda: v };
    }
    set(&mut p.range_floor, a.range_floor);
    if a.physics_warmup.is_some() {
        p.warmup_epochs = a.physics_warmup;
    }
    if let Some(v) = &a.latents {
        p.latents = parse_latents(v)?;
    }
    if fresh {
        c.train.snapshot_every = (c.train.epochs / SNAPSHOTS).max(1);
    }
    set(&mut c.train.snapshot_every, a.snapshot_every);
    set(&mut c.train.decoder, a.decoder);
    c.validate()?;
    Ok(c)
}

/// `*slot = v` when the flag was given.
fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

/// The record of the image `a` names.
fn input_record(a: &TrainArgs, img: &phyvae_data::Image) -> InputRecord {
    InputRecord::new(
        a.input.image.clone(),
        a.input.frame,
        a.input.dataset.clone(),
        img.pixels.view(),
    )
}
