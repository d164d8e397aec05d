//! `phyvae train` and `phyvae encode`: training a model on one image and
//! encoding images with a trained model. The run folder's files are listed in
//! [`phyvae_run::files`]; the settings come from [`crate::settings`].

use std::time::Instant;

use anyhow::{Context, Result};
use ndarray::Array2;
use phyvae_data::patches::PatchSet;
use phyvae_imaging::pipeline::VisualizeParams;
use phyvae_model::Device;
use phyvae_model::infer::{LatentMaps, encode_between_lattice_points, load_model, save_model};
use phyvae_model::memory::{self, MemoryEstimate};
use phyvae_model::refine::{BoundaryRefiner, template_period};
use phyvae_model::train::Trainer;
use phyvae_model::vae::Vae;
use phyvae_run::auto;
use phyvae_run::config::{DataConfig, Method, RunConfig, TrainConfig};
use phyvae_run::diagnose::{Diagnosis, FindingKind, RunFacts, diagnose};
use phyvae_run::files::{self, RunDir, latent_names};
use phyvae_run::history::EpochRecord;
use phyvae_run::metrics::{Attempt, Metrics, ResultMetrics};

use crate::cli::{EncodeArgs, TrainArgs};
use crate::commands::classical;
use crate::commands::output::{
    base_metrics, create_dir, finish_run, open_run, warn_diagnosis, write_config, write_history,
    write_input, write_maps, write_metrics, write_model_figures,
};
use crate::commands::result::{self, CandidateSplits, informative};
use crate::device::{device_name, pick_device};
use crate::input::{patches_for, read_input, read_truth};
use crate::interrupt;
use crate::progress::Progress;
use crate::settings;

/// Patches encoded per batch after training (the memory estimate assumes it).
const ENCODE_BATCH: usize = memory::ENCODE_BATCH;

/// Refuses a run whose estimated memory exceeds what the machine has
/// available; skipped on a GPU (whose memory this does not see) and where
/// the available memory cannot be read.
fn check_memory(estimate: &MemoryEstimate, device: &Device) -> Result<()> {
    if device.is_cpu()
        && let Some(available) = memory::available_bytes()
    {
        estimate.check(available)?;
    }
    Ok(())
}

/// The training settings of the attempt after `tried`: the next seed and
/// half the learning rate (see `RunConfig::retries`); after a posterior
/// collapse (`collapsed`) also half the KL scale, whose pressure switches the
/// content latents off.
fn retry_config(tried: &TrainConfig, collapsed: bool) -> TrainConfig {
    TrainConfig {
        seed: tried.seed.wrapping_add(1) % (phyvae_run::config::MAX_SEED + 1),
        lr: tried.lr / 2.0,
        beta: if collapsed {
            tried.beta.scaled(0.5)
        } else {
            tried.beta
        },
        ..tried.clone()
    }
}

/// A trained attempt: its model, its maps, its history and what was found.
struct Trained {
    model: Vae,
    maps: LatentMaps,
    history: Vec<EpochRecord>,
    attempt: Attempt,
}

/// Whether an attempt whose result agrees with the classical baseline at
/// `a` agrees more than one at `b` (an agreement not measured counts as
/// none; a tie is not more, so the earlier attempt stays).
fn agrees_more(a: Option<f64>, b: Option<f64>) -> bool {
    a.unwrap_or(f64::NEG_INFINITY) > b.unwrap_or(f64::NEG_INFINITY)
}

/// Moves the checkpoint at `from` to `to`, when there is one: an attempt's
/// set aside while the next attempt trains ([`files::HELD_CHECKPOINT`]), or
/// put back when that attempt is kept.
fn move_checkpoint(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    if from.is_file() {
        std::fs::rename(from, to).with_context(|| {
            format!(
                "moving the checkpoint {} to {}",
                from.display(),
                to.display()
            )
        })?;
    }
    Ok(())
}

/// Removes a held checkpoint whose attempt was thrown away.
fn remove_held(held: &std::path::Path) -> Result<()> {
    if held.is_file() {
        std::fs::remove_file(held)
            .with_context(|| format!("removing the checkpoint {}", held.display()))?;
    }
    Ok(())
}

/// When training stopped because it diverged or ran away, says so on stderr
/// and in metrics.json, with no result: no map is drawn from such a model.
fn record_stop(
    outcome: &phyvae_model::Result<()>,
    metrics: &mut Metrics,
    dir: &RunDir,
    progress: Progress,
) -> Result<()> {
    let (diagnosis, reason) = match outcome {
        Err(phyvae_model::ModelError::Diverged {
            epoch, batch, what, ..
        }) => (
            Diagnosis::diverged(*epoch, *batch, what),
            "training diverged",
        ),
        Err(phyvae_model::ModelError::RanAway {
            epoch, batch, what, ..
        }) => (
            Diagnosis::ran_away(*epoch, *batch, what),
            "training ran away",
        ),
        _ => return Ok(()),
    };
    warn_diagnosis(&diagnosis, progress);
    metrics.diagnosis = Some(diagnosis);
    metrics.result = Some(ResultMetrics::none(reason));
    write_metrics(dir, metrics)?;
    Ok(())
}

/// Encodes every patch with a progress bar, registered patches between the
/// lattice points around their grid origins
/// ([`phyvae_model::infer::encode_between_lattice_points`]).
fn encode_all(
    model: &phyvae_model::vae::Vae,
    patches: &PatchSet,
    progress: Progress,
) -> Result<LatentMaps> {
    let st = progress.bar("encoding", patches.len() as u64);
    let maps = encode_between_lattice_points(model, patches, ENCODE_BATCH, &mut |done, total| {
        st.bar().set_length(total as u64);
        st.bar().set_position(done as u64);
    })?;
    st.done();
    Ok(maps)
}

/// What re-assigns a VAE result's boundary cells ([`phyvae_model::refine`]):
/// the model, the scaled image and grid of `patches`, the latent means of
/// `maps`, and the lattice period of the registration in `data` (half the
/// window without one).
fn boundary_refiner<'a>(
    model: &'a phyvae_model::vae::Vae,
    patches: &'a PatchSet,
    maps: &'a LatentMaps,
    data: &DataConfig,
) -> BoundaryRefiner<'a> {
    BoundaryRefiner {
        model,
        image: patches.scaled_image(),
        grid: patches.grid(),
        maps: maps.mean.view(),
        period_px: template_period(&data.register, data.window),
    }
}

/// The classical baseline of a run's image, made when first asked for and
/// then kept: the run loop and the result are held against the same one.
struct SecondOpinion<'a> {
    patches: &'a PatchSet,
    /// The baseline's window ([`baseline_window`]).
    window: usize,
    params: &'a VisualizeParams,
    classes: Option<usize>,
    seed: u64,
    made: Option<Option<classical::Baseline>>,
}

impl<'a> SecondOpinion<'a> {
    fn new(
        patches: &'a PatchSet,
        window: usize,
        params: &'a VisualizeParams,
        classes: Option<usize>,
        seed: u64,
    ) -> Self {
        Self {
            patches,
            window,
            params,
            classes,
            seed,
            made: None,
        }
    }

    /// The baseline (`None` when all its component maps are flat).
    fn get(&mut self, progress: Progress) -> Result<Option<&classical::Baseline>> {
        if self.made.is_none() {
            let st = progress.step("the classical baseline, as a second opinion");
            let b = classical::second_opinion(
                self.patches.scaled_image(),
                self.patches.grid(),
                self.window,
                self.params,
                self.classes,
                self.seed,
            )?;
            st.done();
            self.made = Some(b);
        }
        Ok(self.made.as_ref().and_then(Option::as_ref))
    }

    /// How far `labels` (a result on the run's grid; `None`: no result)
    /// agree with the baseline (adjusted Rand index); `None` without a
    /// result or a baseline.
    fn agreement(
        &mut self,
        labels: Option<Array2<i32>>,
        progress: Progress,
    ) -> Result<Option<f64>> {
        let Some(labels) = labels else {
            return Ok(None);
        };
        self.get(progress)?
            .map(|b| Ok(b.check(labels.view())?.agreement))
            .transpose()
    }

    /// The separability of the baseline's clearest component map; NaN when
    /// it was not made or all its maps are flat.
    fn separability(&self) -> f64 {
        self.made
            .as_ref()
            .and_then(Option::as_ref)
            .map_or(f64::NAN, |b| b.separability)
    }
}

/// Segments every map (named `names`), reports the run's `diagnosis`,
/// picks the result; fills those fields of `metrics` and writes the run's
/// maps.
#[allow(clippy::too_many_arguments)]
fn maps_and_result(
    dir: &RunDir,
    metrics: &mut Metrics,
    maps: &LatentMaps,
    names: &[String],
    mut diagnosis: Diagnosis,
    truth: Option<&Array2<i32>>,
    opinion: &mut SecondOpinion<'_>,
    reason: &str,
    refiner: Option<&BoundaryRefiner<'_>>,
    progress: Progress,
) -> Result<()> {
    let (params, classes, seed) = (opinion.params, opinion.classes, opinion.seed);
    let (per_map, segs) = write_maps(
        dir,
        names,
        maps.mean.view(),
        Some(maps.sd.view()),
        truth,
        params,
        progress,
    )?;
    metrics.maps = per_map.into_iter().collect();
    let candidates = informative(&diagnosis, names, &segs);
    // Half a window in grid cells: a patch whose origin is that far from
    // another class does not straddle the boundary.
    let interior_radius = metrics.window.div_ceil(2 * metrics.step.max(1));
    let (mut picked, labels) = result::pick(
        dir,
        &candidates,
        result::Clustering::VAE,
        classes,
        interior_radius,
        seed,
        truth,
        &metrics.maps,
        reason,
        refiner,
    )?;
    if let Some(sep) = &picked.separability {
        diagnosis.check_separation(sep);
    }
    // A second opinion, on a result that did not fail: the classical
    // baseline's segmentation of the same image.
    if let Some(labels) = labels.filter(|_| diagnosis.findings.is_empty()) {
        picked.baseline = opinion
            .get(progress)?
            .map(|b| b.check(labels.view()))
            .transpose()?;
        if let Some(b) = &picked.baseline {
            diagnosis.check_agreement(b.agreement, b.separability);
        }
    }
    warn_diagnosis(&diagnosis, progress);
    metrics.result = Some(picked);
    metrics.diagnosis = Some(diagnosis);
    Ok(())
}

/// The window of the classical baseline's second opinion: its own automatic
/// choice for the image `cfg` was measured on (two cells), else the run's
/// `window`.
fn baseline_window(cfg: Option<&RunConfig>, window: usize) -> usize {
    cfg.and_then(|c| c.auto.as_ref())
        .map_or(window, |s| auto::choose(&s.facts, None, Method::Fft).window)
}

/// `phyvae train IMAGE --out DIR ...`.
pub fn train(a: &TrainArgs, progress: Progress) -> Result<()> {
    let t0 = Instant::now();
    let img = read_input(&a.input, progress)?;
    train_image(a, img, t0, progress)
}

/// `phyvae train` on an image already in memory (`a.input` names it in the
/// run's records); `t0`: when the command started.
///
/// # Errors
/// As `phyvae train`: bad settings, an unusable image or run folder,
/// training stopped (diverged, ran away, interrupted), an output not written.
pub fn train_image(
    a: &TrainArgs,
    img: phyvae_data::Image,
    t0: Instant,
    progress: Progress,
) -> Result<()> {
    let dir = RunDir::new(&a.run.out);
    let ckpt = dir.file(files::CHECKPOINT_DIR);
    let device = pick_device(&a.run.device)?;
    let (mut cfg, changes) = if a.resume {
        settings::resume(a, &img, &dir.file(files::CONFIG))?
    } else {
        (
            settings::resolve(a, &img)?,
            settings::ResumeChanges::default(),
        )
    };
    let (patches, drift) = patches_for(&img, &cfg.data, progress)?;
    let truth = read_truth(a.run.truth.as_ref(), patches.grid())?;
    if cfg.method != Method::Fft {
        let need = MemoryEstimate::train(&cfg.model, &cfg.train, img.pixels.dim(), patches.len());
        check_memory(&need, &device)?;
    }
    let _lock = open_run(&dir, &a.run, a.resume)?;
    // config.toml first: a folder without it holds no run, and a run killed
    // before it was written starts again without --resume.
    if !a.resume {
        write_config(&dir, &cfg)?;
    }
    write_input(&dir, &patches)?;
    if cfg.method == Method::Fft {
        return classical::run(a, &img, &cfg, &patches, truth.as_ref(), t0, progress);
    }
    // A run killed before its first checkpoint resumes from the start, with
    // the recorded settings (and the changes asked for).
    let trainer = if a.resume {
        let mut t = if ckpt.join(files::CHECKPOINT).is_file() {
            Trainer::resume(&ckpt, &patches, &device)?
        } else {
            Trainer::new(&cfg.model, &cfg.train, &patches, &device)?.with_checkpoints(&ckpt)?
        };
        resume_changes(&mut t, &changes, &dir, progress.command())?;
        // config.toml reproduces the run with its changes.
        cfg.train = t.train_config().clone();
        write_config(&dir, &cfg)?;
        t
    } else {
        let mut t =
            Trainer::new(&cfg.model, &cfg.train, &patches, &device)?.with_checkpoints(&ckpt)?;
        t.set_commands(vec![progress.command()]);
        t
    };
    let mut trainer = trainer.with_stop(progress.stop_flag());
    if cfg.train.snapshot_every > 0 {
        create_dir(&dir.file(files::SNAPSHOTS_DIR))?;
    }
    let names = latent_names(&cfg.model.kind.special_names(), cfg.model.n_latent);
    let n_special = cfg.model.kind.n_special();
    let content = names[n_special..].to_vec();
    let mut metrics = base_metrics(
        &a.input, &img, &cfg.data, &patches, &names, &content, progress,
    );
    metrics.scan_drift = drift;
    let train_start = Instant::now();
    let mut epochs_run = 0;
    // An attempt whose content latents collapsed, or whose maps show no
    // regions, trains again from scratch (cfg.retries), unless this command
    // resumes one. So does one whose result a clear classical baseline
    // agrees with only in part; the run then keeps the attempt that agrees
    // more with it (`train_again_for_agreement`).
    let params = cfg.visualize_params()?;
    let mut opinion = SecondOpinion::new(
        &patches,
        baseline_window(Some(&cfg), cfg.data.window),
        &params,
        cfg.result.classes,
        cfg.train.seed,
    );
    let interior_radius = cfg.data.window.div_ceil(2 * cfg.data.step.max(1));
    let held_path = ckpt.join(files::HELD_CHECKPOINT);
    let mut held: Option<Trained> = None;
    let kept = loop {
        let done_before = trainer.epochs_done();
        let outcome = progress.train(&mut trainer, &dir);
        metrics.commands = trainer.commands().to_vec();
        record_stop(&outcome, &mut metrics, &dir, progress)?;
        if let Err(e @ phyvae_model::ModelError::Interrupted { epochs_done }) = outcome {
            return Err(interrupt::explain(
                e,
                epochs_done,
                &a.input.image,
                dir.root(),
            ));
        }
        outcome?;
        phyvae_data::fault::point("run.trained");
        epochs_run += trainer.epochs_done() - done_before;
        let history = trainer.history().to_vec();
        let tried = trainer.train_config().clone();
        let saturated = trainer.saturated();
        let model = trainer.into_model();
        let maps = encode_all(&model, &patches, progress)?;
        let facts = RunFacts {
            names: &names,
            n_special,
            history: &history,
            physics_from_epoch: cfg.physics_from(),
            saturated,
        };
        let mut diagnosis = diagnose(maps.mean.view(), &facts);
        let splits = CandidateSplits::new(&diagnosis, maps.mean.view(), &params)?;
        diagnosis.check_separation(&splits.separabilities()?);
        let retry_left =
            !a.resume && metrics.attempts.len() + usize::from(held.is_some()) < cfg.retries;
        let failed = [FindingKind::Collapsed, FindingKind::NoRegions]
            .into_iter()
            .find(|&k| diagnosis.has(k));
        let mut this = Trained {
            model,
            maps,
            attempt: Attempt {
                seed: tried.seed,
                lr: tried.lr,
                epochs: history.len(),
                diagnosis,
                agreement: None,
            },
            history,
        };
        let next = retry_config(&tried, failed == Some(FindingKind::Collapsed));
        if let Some(failed) = failed {
            if retry_left {
                if progress.prints_results() {
                    let kl = if failed == FindingKind::Collapsed {
                        ", and half the KL scale"
                    } else {
                        ""
                    };
                    let stopped = saturated.map_or(String::new(), |s| {
                        format!(
                            "; the encoder saturated and the attempt stopped after epoch {} of {}",
                            s.epoch, s.epochs
                        )
                    });
                    eprintln!(
                        "warning: {}{stopped} (seed {}, learning rate {}); training again from scratch with seed {} and learning rate {}{kl}",
                        failed.title(),
                        tried.seed,
                        tried.lr,
                        next.seed,
                        next.lr
                    );
                }
                metrics.attempts.push(this.attempt);
            } else if let Some(h) = held.take() {
                // The last attempt failed: the one held against it stays.
                move_checkpoint(&held_path, &ckpt.join(files::CHECKPOINT))?;
                metrics.attempts.push(this.attempt);
                break h;
            } else {
                break this;
            }
        } else {
            // How far the attempt's result agrees with the baseline, when
            // that can still change which attempt the run keeps.
            if retry_left || held.is_some() {
                let refiner = boundary_refiner(&this.model, &patches, &this.maps, &cfg.data);
                let labels = splits.vae_labels(
                    cfg.result.classes,
                    interior_radius,
                    cfg.train.seed,
                    Some(&refiner),
                )?;
                this.attempt.agreement = opinion.agreement(labels, progress)?;
            }
            // Of this attempt and the one held against it, the one that
            // agrees more (the earlier on a tie).
            let best = match held.take() {
                Some(h) if !agrees_more(this.attempt.agreement, h.attempt.agreement) => {
                    move_checkpoint(&held_path, &ckpt.join(files::CHECKPOINT))?;
                    metrics.attempts.push(this.attempt);
                    h
                }
                Some(h) => {
                    remove_held(&held_path)?;
                    metrics.attempts.push(h.attempt);
                    this
                }
                None => this,
            };
            let separability = opinion.separability();
            let agreement = best.attempt.agreement.unwrap_or(f64::NAN);
            if !(retry_left
                && phyvae_run::diagnose::train_again_for_agreement(agreement, separability))
            {
                break best;
            }
            if progress.prints_results() {
                eprintln!(
                    "warning: the result (seed {}, learning rate {}) agrees with the classical baseline's segmentation at an adjusted Rand index of {agreement:.2} (below {}), and the baseline's maps are clear (separability {separability:.3}); training again from scratch with seed {} and learning rate {}, and keeping the attempt that agrees more",
                    best.attempt.seed,
                    best.attempt.lr,
                    phyvae_run::diagnose::RETRY_AGREEMENT,
                    next.seed,
                    next.lr
                );
            }
            move_checkpoint(&ckpt.join(files::CHECKPOINT), &held_path)?;
            held = Some(best);
        }
        trainer = Trainer::new(&cfg.model, &next, &patches, &device)?
            .with_checkpoints(&ckpt)?
            .with_stop(progress.stop_flag());
        trainer.set_commands(metrics.commands.clone());
    };
    let Trained {
        model,
        maps,
        history,
        attempt: Attempt { diagnosis, .. },
    } = kept;
    let train_secs = train_start.elapsed().as_secs_f64();
    write_history(&dir, &history)?;
    save_model(&model, dir.root(), &cfg.data)?;
    phyvae_data::fault::point("run.encoded");
    write_model_figures(&dir, &model, &maps)?;
    let reason = "no content latent carries information (see the diagnosis)";
    maps_and_result(
        &dir,
        &mut metrics,
        &maps,
        &names,
        diagnosis,
        truth.as_ref(),
        &mut opinion,
        reason,
        Some(&boundary_refiner(&model, &patches, &maps, &cfg.data)),
        progress,
    )?;
    let batches = auto::batches_per_epoch(
        patches.len(),
        cfg.train.batch_size,
        cfg.train.batches_per_epoch,
    );
    let patches_seen = epochs_run * patches.len().min(batches * cfg.train.batch_size);
    metrics.parameters = Some(model.store().num_params());
    metrics.epochs = Some(history.len());
    metrics.steps = Some(history.len() * batches);
    metrics.last_epoch = history.last().cloned();
    metrics.training_seconds = Some(train_secs);
    metrics.patches_per_second = Some(if train_secs > 0.0 {
        patches_seen as f64 / train_secs
    } else {
        0.0
    });
    metrics.settings = cfg.auto.clone();
    metrics.device = Some(device_name(&device).to_owned());
    finish_run(&dir, metrics, t0, progress)
}

/// Applies what `--resume` changes to the resumed trainer (more epochs, a
/// lower rate from the next epoch on), adds this command line to the run's
/// commands (those of a checkpoint written before they were recorded are
/// read from metrics.json when it is there), and writes the checkpoint again
/// so that it agrees with config.toml if the run stops before its next epoch
/// ends.
///
/// # Errors
/// When a change is refused (fewer epochs than done) or the checkpoint
/// cannot be written.
fn resume_changes(
    t: &mut Trainer<'_>,
    changes: &settings::ResumeChanges,
    dir: &RunDir,
    command: Vec<String>,
) -> Result<()> {
    if let Some(e) = changes.epochs {
        t.set_epochs(e)?;
    }
    if let Some(lr) = changes.lr {
        t.set_learning_rate(lr)?;
    }
    let mut commands = t.commands().to_vec();
    if commands.is_empty() {
        commands = Metrics::read(&dir.file(files::METRICS))
            .map(|m| m.commands)
            .unwrap_or_default();
    }
    commands.push(command);
    t.set_commands(commands);
    t.save_checkpoint()?;
    Ok(())
}

/// `phyvae encode --model DIR IMAGE --out DIR2`.
pub fn encode(a: &EncodeArgs, progress: Progress) -> Result<()> {
    let t0 = Instant::now();
    let img = read_input(&a.input, progress)?;
    encode_image(a, img, t0, progress)
}

/// `phyvae encode` on an image already in memory (`a.input` names it in the
/// run's records); `t0`: when the command started.
///
/// # Errors
/// As `phyvae encode`: an unusable model, image or run folder, an output
/// not written.
pub fn encode_image(
    a: &EncodeArgs,
    img: phyvae_data::Image,
    t0: Instant,
    progress: Progress,
) -> Result<()> {
    let device = pick_device(&a.run.device)?;
    let (model, data) = load_model(&a.model, &device)?;
    let trained: Option<RunConfig> =
        settings::read_config(&RunDir::new(&a.model).file(files::CONFIG)).ok();
    // The trained run's segmentation settings; the low-pass is in px, so it
    // follows this encoding's step.
    let params = match &trained {
        Some(c) => c.visualize_params()?,
        None => VisualizeParams::default(),
    };
    let (classes, seed) = trained
        .as_ref()
        .map_or((None, 0), |c| (c.result.classes, c.train.seed));
    let dir = RunDir::new(&a.run.out);
    let (patches, drift) = patches_for(&img, &data, progress)?;
    let truth = read_truth(a.run.truth.as_ref(), patches.grid())?;
    let need = MemoryEstimate::encode(model.config(), img.pixels.dim(), patches.len());
    check_memory(&need, &device)?;
    let _lock = open_run(&dir, &a.run, false)?;
    write_input(&dir, &patches)?;
    let maps = encode_all(&model, &patches, progress)?;
    let kind = model.config().kind;
    let names = latent_names(&kind.special_names(), model.config().n_latent);
    let n_special = kind.n_special();
    let content = names[n_special..].to_vec();
    write_model_figures(&dir, &model, &maps)?;
    let mut metrics = base_metrics(&a.input, &img, &data, &patches, &names, &content, progress);
    metrics.scan_drift = drift;
    let diagnosis = diagnose(
        maps.mean.view(),
        &RunFacts {
            names: &names,
            n_special,
            history: &[],
            physics_from_epoch: None,
            saturated: None,
        },
    );
    let reason = "no content latent varies across this image (see the diagnosis)";
    maps_and_result(
        &dir,
        &mut metrics,
        &maps,
        &names,
        diagnosis,
        truth.as_ref(),
        &mut SecondOpinion::new(
            &patches,
            baseline_window(trained.as_ref(), data.window),
            &params,
            classes,
            seed,
        ),
        reason,
        Some(&boundary_refiner(&model, &patches, &maps, &data)),
        progress,
    )?;
    metrics.model = Some(a.model.clone());
    finish_run(&dir, metrics, t0, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attempt_that_agrees_more_wins_and_a_tie_keeps_the_earlier() {
        assert!(agrees_more(Some(0.9), Some(0.8)));
        assert!(!agrees_more(Some(0.8), Some(0.9)));
        // a tie: the later attempt does not win
        assert!(!agrees_more(Some(0.8), Some(0.8)));
        // not measured counts as none
        assert!(agrees_more(Some(0.1), None));
        assert!(!agrees_more(None, Some(0.1)));
        assert!(!agrees_more(None, None));
    }

    #[test]
    fn a_retry_takes_the_next_seed_half_the_rate_and_after_a_collapse_half_beta() {
        let tried = TrainConfig {
            seed: 4,
            lr: 0.004,
            beta: phyvae_run::config::BetaSchedule::Constant { beta: 0.05 },
            ..TrainConfig::default()
        };
        let next = retry_config(&tried, false);
        assert_eq!((next.seed, next.lr, next.beta), (5, 0.002, tried.beta));
        let next = retry_config(&tried, true);
        assert_eq!(
            next.beta,
            phyvae_run::config::BetaSchedule::Constant { beta: 0.025 }
        );
    }
}
