//! The trainer: batches of patches, the sh-VAE / phy-VAE loss, Adam, per-epoch
//! history, events, checkpoints with resume, divergence detection.
//!
//! Batching (docs/METHOD.md section 5):
//! - no physics term, or [`PhysicsMode::Faithful`]: the patches in a seeded
//!   random order, cut into batches of `batch_size` (the last one may be
//!   smaller: pyroVED's loader keeps it). In faithful mode Psi is computed on
//!   the batch's encoder means reshaped to `d x d` with no gradient and the
//!   loss is `L_sh (w + Psi)`; a last batch that is not `d^2` gets Psi = 0, as
//!   in the authors' code.
//! - `TrainConfig::batches_per_epoch` caps an epoch at its first batches
//!   (a fresh random subset of the patches every epoch, from the same order).
//! - [`PhysicsMode::Gradient`]: the same shuffled batches for `L_sh`, and
//!   with each batch one `d x d` tile of the patch grid (`d^2 = batch_size`)
//!   at a random origin, encoded alongside it: Psi is computed on the tile's
//!   encoder means, a real piece of the full latent map, inside the autodiff
//!   graph (so its gradient reaches the encoder). The tile costs one encoder
//!   pass over `d^2` patches, no decoding. Training on the tiles themselves
//!   (every batch one contiguous region) gives strongly correlated batches: on
//!   the synthetic two-phase image the phases then no longer separate even
//!   with a zero physics weight (bench/learning_table.sh).
//!
//! Reproducibility: the model is initialised from stream 0 of a ChaCha8
//! generator seeded with `seed`; epoch `e` (0-based) draws its batch order and
//! reparameterisation noise from stream `e + 1`. An epoch therefore depends
//! only on the parameters and optimiser state at its start, which the
//! checkpoint holds, so a resumed run is bit-identical to an uninterrupted one.
//!
//! Checkpoints: after every epoch, one safetensors file holding the
//! parameters, the Adam moments and the trainer state (JSON, as a byte tensor),
//! written to a temporary file and renamed, so a killed run leaves the last
//! complete checkpoint.
//!
//! Divergence: a non-finite loss or gradient stops training
//! ([`ModelError::Diverged`]), and so does a run that runs away while its
//! values are finite ([`ModelError::RanAway`], the rule of
//! [`RunawayWatch`]). Either way the epoch in which it happened writes no
//! checkpoint, and the error says which checkpoint is left, if any.
//!
//! Changes on resume: [`Trainer::set_epochs`] (more epochs) and
//! [`Trainer::set_learning_rate`] (a new rate from the next epoch on, kept in
//! `TrainConfig::lr_changes`). Each epoch sets Adam's rate to
//! `TrainConfig::lr_at`, so a fresh run from the changed configuration trains
//! the same bits as the resumed one. A beta ramp keeps its length when epochs
//! are added: the added epochs train at the ramp's end value.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor};
use ndarray::Array2;
use phyvae_data::patches::PatchSet;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::batch::patches_to_tensor;
use crate::decoder::FusedDecoder;
use crate::error::FrameworkContext;
use crate::infer::{LatentMaps, encode_patches};
use crate::optim::Adam;
use crate::params::{load_tensors, save_tensors_atomic};
use crate::physics::{PsiGraph, batch_maps, combine, psi_faithful};
use crate::vae::{LossTerms, Vae, standard_normal};
use crate::{ModelError, Result};
use phyvae_run::config::{
    LrChange, ModelConfig, PhysicsKind, PhysicsMode, TrainConfig, exact_sqrt,
};
use phyvae_run::diagnose::{RunawayWatch, Saturation};
use phyvae_run::history::EpochRecord;

/// Name of the byte tensor holding the trainer state inside a checkpoint.
const STATE_TENSOR: &str = "trainer.state_json";
/// Format version of the checkpoint.
const CHECKPOINT_VERSION: u32 = 1;

/// Progress of a run, for progress bars and reports.
#[derive(Debug)]
pub enum TrainEvent<'a> {
    /// An epoch begins.
    EpochStarted {
        /// Epoch, 1-based.
        epoch: usize,
        /// Total epochs of the run.
        epochs: usize,
        /// Batches in this epoch.
        batches: usize,
    },
    /// A batch was trained on.
    BatchDone {
        /// Epoch, 1-based.
        epoch: usize,
        /// Batch, 0-based.
        batch: usize,
        /// Its total loss.
        loss: f32,
    },
    /// An epoch ended.
    EpochFinished(&'a EpochRecord),
    /// The full latent maps after an epoch (when snapshots are on).
    Snapshot {
        /// Epoch, 1-based.
        epoch: usize,
        /// The maps.
        maps: &'a LatentMaps,
    },
    /// The checkpoint was written.
    CheckpointWritten {
        /// Epoch, 1-based.
        epoch: usize,
        /// The file.
        path: &'a Path,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    version: u32,
    model: ModelConfig,
    train: TrainConfig,
    epochs_done: usize,
    adam_steps: u64,
    history: Vec<EpochRecord>,
    grid: (usize, usize),
    /// The command lines that shaped the run (empty in checkpoints written
    /// before they were recorded).
    #[serde(default)]
    commands: Vec<Vec<String>>,
}

/// Trains a [`Vae`] on the patches of one image.
#[derive(Debug)]
pub struct Trainer<'p> {
    model: Vae,
    adam: Adam,
    train: TrainConfig,
    patches: &'p PatchSet,
    history: Vec<EpochRecord>,
    epochs_done: usize,
    checkpoint_dir: Option<PathBuf>,
    /// Whether `checkpoint_dir` holds a checkpoint (of `epochs_done`).
    checkpoint_written: bool,
    /// The command lines that shaped the run, kept in the checkpoint.
    commands: Vec<Vec<String>>,
    /// The runaway rule, fed every finished epoch.
    watch: RunawayWatch,
    /// Set from outside (e.g. on Ctrl-C) to stop after the current batch.
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    fused: Option<FusedDecoder>,
    psi_graph: Option<PsiGraph>,
    /// Batch input buffer, `batch_size x N`, reused every step.
    x_buf: Vec<f32>,
    /// Gradient mode: the Psi tile's patches, `d^2 x N` (empty otherwise).
    tile_buf: Vec<f32>,
    /// Batches in a row, up to the latest, over which every latent's mean
    /// was the same for every patch.
    flat_batches: usize,
    /// When training stopped early because the encoder saturated.
    saturated: Option<Saturation>,
}

/// Variance over a batch below which a latent's encoder mean counts as the
/// same for every patch (latent units, whose prior has variance 1). A
/// learning encoder spreads its shift latents alone over hundredths to
/// tenths; one whose first-layer units have all saturated gives every patch
/// the same code to within rounding (variances of 1e-17 to 1e-11 over the
/// whole image on a collapsed start of the bundled Au image).
pub const FLAT_BATCH_VARIANCE: f64 = 1e-10;

/// Batches in a row with every latent flat ([`FLAT_BATCH_VARIANCE`]) after
/// which an attempt stops at the end of its epoch. Patches lie in `[0, 1]`,
/// so the gradient of a first-layer weight row of the encoder has one sign
/// along the row, and Adam's early steps can push every tanh unit into
/// saturation for every patch; there its derivative is 0 in `f32`, no
/// gradient reaches the first layer again, and the encoder codes every patch
/// alike for good. Training on would cost the rest of the step budget for
/// nothing.
pub const SATURATED_BATCHES: usize = 100;

fn stream_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

impl<'p> Trainer<'p> {
    /// A trainer with a freshly initialised model (seeded by `train.seed`).
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when a configuration rule is broken or
    /// the patches do not match the model window (or, in gradient mode, the
    /// patch grid is smaller than a `d x d` tile).
    pub fn new(
        model: &ModelConfig,
        train: &TrainConfig,
        patches: &'p PatchSet,
        device: &Device,
    ) -> Result<Self> {
        model.validate()?;
        train.validate(model)?;
        let vae = Vae::new(model, device, &mut stream_rng(train.seed, 0))?;
        Self::assemble(vae, train.clone(), patches, Vec::new(), 0, None)
    }

    fn assemble(
        model: Vae,
        train: TrainConfig,
        patches: &'p PatchSet,
        history: Vec<EpochRecord>,
        epochs_done: usize,
        adam: Option<Adam>,
    ) -> Result<Self> {
        let cfg = model.config().clone();
        if patches.grid().window() != cfg.window {
            return Err(ModelError::InvalidParameter {
                name: "window",
                value: format!(
                    "{} (patches) vs {} (model)",
                    patches.grid().window(),
                    cfg.window
                ),
                rule: "the patches must have the model's window",
            });
        }
        let p = &train.physics;
        let mut psi_graph = None;
        if p.kind != PhysicsKind::None {
            let d = exact_sqrt(train.batch_size).unwrap_or(0);
            if p.mode == PhysicsMode::Gradient {
                let g = patches.grid();
                if g.gh() < d || g.gw() < d {
                    return Err(ModelError::InvalidParameter {
                        name: "batch_size",
                        value: train.batch_size.to_string(),
                        rule: "gradient mode needs a patch grid of at least d x d patches (d^2 = batch size)",
                    });
                }
                psi_graph = Some(
                    PsiGraph::new(
                        train.physics.kind,
                        d,
                        p.latents.len(),
                        model.device(),
                        DType::F32,
                    )?
                    .with_range_floor(p.range_floor)?,
                );
            }
        }
        let adam = match adam {
            Some(a) => a,
            None => Adam::new(model.store(), train.lr)?,
        };
        // A batch never holds more patches than there are: the buffers are
        // sized for that, whatever the batch size asked for.
        let rows = train.batch_size.min(patches.len()).max(1);
        let fused = model.fused_workspace(train.decoder, rows)?;
        let x_buf = vec![0.0f32; rows * cfg.n_pixels()];
        let watch = RunawayWatch::new(cfg.n_pixels(), &history);
        let tile_buf = if psi_graph.is_some() {
            vec![0.0f32; train.batch_size * cfg.n_pixels()]
        } else {
            Vec::new()
        };
        Ok(Self {
            model,
            adam,
            train,
            patches,
            history,
            epochs_done,
            checkpoint_dir: None,
            checkpoint_written: false,
            commands: Vec::new(),
            watch,
            stop: None,
            fused,
            psi_graph,
            x_buf,
            tile_buf,
            flat_batches: 0,
            saturated: None,
        })
    }

    /// Writes a checkpoint into `dir` after every epoch (the directory is created).
    ///
    /// # Errors
    /// [`ModelError::Io`] when the directory cannot be created.
    pub fn with_checkpoints(mut self, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
            action: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
        self.checkpoint_dir = Some(dir.to_path_buf());
        Ok(self)
    }

    /// Resumes from the checkpoint in `dir` (written by a run with
    /// [`with_checkpoints`](Self::with_checkpoints)) on the same patches; the
    /// configurations come from the checkpoint. Further checkpoints go to `dir`.
    ///
    /// # Errors
    /// [`ModelError::BadFile`] when the checkpoint is missing, unreadable or
    /// was made on a different patch grid.
    pub fn resume(dir: &Path, patches: &'p PatchSet, device: &Device) -> Result<Self> {
        let path = dir.join(phyvae_run::files::CHECKPOINT);
        if !path.is_file() {
            return Err(ModelError::BadFile {
                path,
                reason: "no checkpoint to resume from".into(),
            });
        }
        let tensors = load_tensors(&path, device)?;
        let bad = |reason: String| ModelError::BadFile {
            path: path.clone(),
            reason,
        };
        let bytes: Vec<u8> = tensors
            .get(STATE_TENSOR)
            .ok_or_else(|| bad("not a phyvae checkpoint (no trainer state)".into()))?
            .to_vec1()
            .map_err(|e| bad(format!("trainer state: {e}")))?;
        let state: TrainerState =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("trainer state: {e}")))?;
        if state.version != CHECKPOINT_VERSION {
            return Err(bad(format!(
                "checkpoint format {} is not supported",
                state.version
            )));
        }
        let g = patches.grid();
        if state.grid != (g.gh(), g.gw()) {
            return Err(bad(format!(
                "made on a {}x{} patch grid, this image gives {}x{}",
                state.grid.0,
                state.grid.1,
                g.gh(),
                g.gw()
            )));
        }
        let params: std::collections::HashMap<String, Tensor> = tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("model.").map(|n| (n.to_string(), v.clone())))
            .collect();
        // Same architecture as the saved run; every value is then overwritten.
        let fresh = Vae::new(&state.model, device, &mut stream_rng(state.train.seed, 0))?;
        fresh.store().assign_from(&params)?;
        let mut adam = Adam::new(fresh.store(), state.train.lr)?;
        adam.restore(fresh.store(), &tensors, state.adam_steps)?;
        let mut history = state.history;
        // Checkpoints written before the rate was recorded: the rate the
        // configuration gave each epoch.
        for r in history.iter_mut().filter(|r| r.lr == 0.0) {
            r.lr = state.train.lr_at(r.epoch.saturating_sub(1));
        }
        let mut t = Self::assemble(
            fresh,
            state.train,
            patches,
            history,
            state.epochs_done,
            Some(adam),
        )?;
        t.checkpoint_dir = Some(dir.to_path_buf());
        t.checkpoint_written = true;
        t.commands = state.commands;
        Ok(t)
    }

    /// The model being trained.
    #[must_use]
    pub fn model(&self) -> &Vae {
        &self.model
    }

    /// The trained model.
    #[must_use]
    pub fn into_model(self) -> Vae {
        self.model
    }

    /// Per-epoch records so far.
    #[must_use]
    pub fn history(&self) -> &[EpochRecord] {
        &self.history
    }

    /// Epochs completed so far.
    #[must_use]
    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// The training configuration (with the changes made on resume).
    #[must_use]
    pub fn train_config(&self) -> &TrainConfig {
        &self.train
    }

    /// The command lines that shaped the run, as set by
    /// [`set_commands`](Self::set_commands) and kept in the checkpoint
    /// (empty for a checkpoint written before they were recorded).
    #[must_use]
    pub fn commands(&self) -> &[Vec<String>] {
        &self.commands
    }

    /// Sets the command lines that shaped the run (the first that started
    /// it, then each resume); the next checkpoint keeps them.
    pub fn set_commands(&mut self, commands: Vec<Vec<String>>) {
        self.commands = commands;
    }

    /// Sets the run's total number of epochs, e.g. more epochs for a
    /// resumed run. A beta ramp keeps its length (added epochs train at its
    /// end value). A physics warm-up that follows the epoch count (gradient
    /// mode without `warmup_epochs`) is pinned at its current length
    /// (`warmup_epochs` set), so that the epochs already trained and a fresh
    /// run from the changed configuration agree.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when `epochs` is below the epochs
    /// already done, or the configuration with it breaks a rule.
    pub fn set_epochs(&mut self, epochs: usize) -> Result<()> {
        if epochs < self.epochs_done {
            return Err(ModelError::InvalidParameter {
                name: "epochs",
                value: format!("{epochs} ({} already done)", self.epochs_done),
                rule: "a resumed run can add epochs, not take back those it has done",
            });
        }
        let mut train = self.train.clone();
        if train.physics.kind != PhysicsKind::None && epochs != train.epochs {
            train.physics.warmup_epochs = Some(train.physics_warmup());
        }
        train.epochs = epochs;
        train.validate(self.model.config())?;
        self.train = train;
        Ok(())
    }

    /// Trains from the next epoch (`epochs_done + 1`) on at learning rate
    /// `lr`, recorded in `TrainConfig::lr_changes` (replacing any change
    /// recorded for that epoch or later).
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when `lr` is not positive and finite.
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        let epoch = self.epochs_done + 1;
        let mut train = self.train.clone();
        train.lr_changes.retain(|c| c.epoch < epoch);
        train.lr_changes.push(LrChange { epoch, lr });
        train.validate(self.model.config())?;
        self.train = train;
        Ok(())
    }

    /// Writes the checkpoint now (parameters, optimiser state, the
    /// configuration with its changes, the commands), when the trainer has
    /// a checkpoint folder; a no-op otherwise. A resume that changed the
    /// run calls it so that its checkpoint and its config.toml agree before
    /// the next epoch ends.
    ///
    /// # Errors
    /// [`ModelError::Io`] or [`ModelError::BadFile`] when it cannot be written.
    pub fn save_checkpoint(&mut self) -> Result<()> {
        if let Some(dir) = self.checkpoint_dir.clone() {
            self.write_checkpoint(&dir.join(phyvae_run::files::CHECKPOINT))?;
            self.checkpoint_written = true;
        }
        Ok(())
    }

    /// Trains until the configured number of epochs is done, or until the
    /// end of the epoch in which the encoder is found saturated
    /// ([`Trainer::saturated`]).
    ///
    /// # Errors
    /// [`ModelError::Diverged`] on a non-finite loss or gradient (parameters
    /// are left as they were before that batch), [`ModelError::RanAway`]
    /// when the run ran away while finite; either way the checkpoint of the
    /// last complete epoch, if one was written, stays on disk as it was.
    /// Other [`ModelError`]s on failures.
    pub fn run(&mut self, on_event: &mut dyn FnMut(TrainEvent<'_>)) -> Result<()> {
        let left = self.train.epochs.saturating_sub(self.epochs_done);
        self.run_epochs(left, on_event)
    }

    /// Trains at most `n` more epochs (never past the configured number),
    /// stopping at the end of an epoch once every latent has been flat over
    /// [`SATURATED_BATCHES`] batches in a row.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn run_epochs(&mut self, n: usize, on_event: &mut dyn FnMut(TrainEvent<'_>)) -> Result<()> {
        let end = (self.epochs_done + n).min(self.train.epochs);
        while self.epochs_done < end {
            let record = self.epoch(self.epochs_done, on_event)?;
            self.watch.epoch_done(record.recon);
            self.history.push(record);
            self.epochs_done += 1;
            let epoch = self.epochs_done;
            phyvae_data::fault::point("train.epoch");
            if let Some(r) = self.history.last() {
                on_event(TrainEvent::EpochFinished(r));
            }
            if self.train.snapshot_every > 0 && epoch.is_multiple_of(self.train.snapshot_every) {
                let maps =
                    encode_patches(&self.model, self.patches, self.train.batch_size.max(64))?;
                on_event(TrainEvent::Snapshot { epoch, maps: &maps });
            }
            if let Some(dir) = self.checkpoint_dir.clone() {
                let path = dir.join(phyvae_run::files::CHECKPOINT);
                self.write_checkpoint(&path)?;
                self.checkpoint_written = true;
                on_event(TrainEvent::CheckpointWritten { epoch, path: &path });
            }
            if self.flat_batches >= SATURATED_BATCHES {
                self.saturated = Some(Saturation {
                    epoch,
                    epochs: self.train.epochs,
                    flat_batches: self.flat_batches,
                });
                break;
            }
        }
        Ok(())
    }

    /// `Some` when training stopped before its last epoch because every
    /// latent's mean had been the same for every patch over
    /// [`SATURATED_BATCHES`] batches in a row: the encoder's units saturated
    /// and it codes every patch alike for good. The run's maps are then
    /// constant, which the diagnosis calls a collapse.
    #[must_use]
    pub fn saturated(&self) -> Option<Saturation> {
        self.saturated
    }

    /// Stops training after the batch during which `flag` becomes true, with
    /// [`ModelError::Interrupted`]. The epoch in progress is dropped: the
    /// checkpoint of the last whole epoch stays as it was, and a resume from
    /// it gives the same bits as a run never interrupted. The trainer is not
    /// to be used after an interruption.
    #[must_use]
    pub fn with_stop(mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.stop = Some(flag);
        self
    }

    fn write_checkpoint(&self, path: &Path) -> Result<()> {
        let g = self.patches.grid();
        let state = TrainerState {
            version: CHECKPOINT_VERSION,
            model: self.model.config().clone(),
            train: self.train.clone(),
            epochs_done: self.epochs_done,
            adam_steps: self.adam.steps(),
            history: self.history.clone(),
            grid: (g.gh(), g.gw()),
            commands: self.commands.clone(),
        };
        let json = serde_json::to_vec(&state).map_err(|e| ModelError::BadFile {
            path: path.to_path_buf(),
            reason: format!("cannot serialise the trainer state: {e}"),
        })?;
        let mut tensors = self.adam.state(self.model.store())?;
        for (k, v) in self.model.store().tensors() {
            tensors.insert(format!("model.{k}"), v);
        }
        let n = json.len();
        let t = Tensor::from_vec(json, n, &Device::Cpu).ctx("trainer state")?;
        tensors.insert(STATE_TENSOR.to_string(), t);
        save_tensors_atomic(&tensors, path)
    }

    /// The batches of epoch `e` (patch indices), in training order: the
    /// first `batches_per_epoch` of them when the configuration caps them.
    fn batches(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..self.patches.len()).collect();
        order.shuffle(rng);
        order
            .chunks(self.train.batch_size)
            .take(self.train.batches_per_epoch.unwrap_or(usize::MAX))
            .map(<[usize]>::to_vec)
            .collect()
    }

    /// Gradient mode: copies a `d x d` tile of the patch grid at a random
    /// origin into `tile_buf` and returns its `(d^2, N)` tensor (row-major
    /// over the tile, as [`batch_maps`] expects).
    fn random_tile(&mut self, d: usize, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        let g = self.patches.grid();
        let (gh, gw) = (g.gh(), g.gw());
        let r0 = rng.random_range(0..=gh - d);
        let c0 = rng.random_range(0..=gw - d);
        let tile = (0..d).flat_map(move |r| (0..d).map(move |c| (r0 + r) * gw + c0 + c));
        patches_to_tensor(
            self.patches,
            tile,
            &mut self.tile_buf,
            self.model.device(),
            "Psi tile",
        ) // (d^2, N)
    }

    /// Epoch `e` (0-based): its batch order, one optimiser step per batch,
    /// and its record.
    fn epoch(&mut self, e: usize, on_event: &mut dyn FnMut(TrainEvent<'_>)) -> Result<EpochRecord> {
        let start = Instant::now();
        let mut rng = stream_rng(self.train.seed, e as u64 + 1);
        let batches = self.batches(&mut rng);
        let beta = self.train.beta.at(e);
        let lr = self.train.lr_at(e);
        self.adam.set_lr(lr)?;
        on_event(TrainEvent::EpochStarted {
            epoch: e + 1,
            epochs: self.train.epochs,
            batches: batches.len(),
        });
        let plan = self.plan(e, beta)?;
        let mut sums = EpochSums::new(self.model.config().n_total());
        for (bi, idx) in batches.iter().enumerate() {
            let step = self.train_batch(&plan, bi, idx, &mut rng)?;
            let (rms, flat) = sums.add(idx.len(), &step.terms, step.psi, step.loss)?;
            match flat {
                Some(true) => self.flat_batches += 1,
                Some(false) => self.flat_batches = 0,
                None => {}
            }
            if let Some(what) = self.watch.check(sums.recon_mean(), rms) {
                return Err(ModelError::RanAway {
                    epoch: e + 1,
                    batch: bi,
                    what,
                    epochs_done: self.epochs_done,
                    checkpoint: self.kept_checkpoint(),
                });
            }
            on_event(TrainEvent::BatchDone {
                epoch: e + 1,
                batch: bi,
                loss: step.loss,
            });
            phyvae_data::fault::point("train.batch");
            if self
                .stop
                .as_ref()
                .is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed))
            {
                return Err(ModelError::Interrupted {
                    epochs_done: self.epochs_done,
                });
            }
        }
        Ok(sums.record(e, beta, lr, start.elapsed().as_secs_f64()))
    }

    /// The checkpoint file a stopped run leaves, when one was written.
    fn kept_checkpoint(&self) -> Option<PathBuf> {
        self.checkpoint_dir
            .as_ref()
            .filter(|_| self.checkpoint_written)
            .map(|d| d.join(phyvae_run::files::CHECKPOINT))
    }

    /// What stays the same over the batches of epoch `e`.
    fn plan(&self, e: usize, beta: f32) -> Result<EpochPlan> {
        let columns = self.train.physics_columns(self.model.config());
        let column_index = Tensor::new(
            columns.iter().map(|&c| c as u32).collect::<Vec<_>>(),
            self.model.device(),
        )
        .ctx("latent columns")?; // (C)
        let kind = if e < self.train.physics_warmup() {
            PhysicsKind::None
        } else {
            self.train.physics.kind
        };
        Ok(EpochPlan {
            e,
            beta,
            kind,
            columns,
            column_index,
            d: exact_sqrt(self.train.batch_size).unwrap_or(0),
        })
    }

    /// One optimiser step on the patches `idx`, batch `bi` of the epoch: the
    /// loss in the epoch's physics mode, the divergence checks, Adam.
    fn train_batch(
        &mut self,
        plan: &EpochPlan,
        bi: usize,
        idx: &[usize],
        rng: &mut ChaCha8Rng,
    ) -> Result<BatchStep> {
        let b = idx.len();
        let x = patches_to_tensor(
            self.patches,
            idx.iter().copied(),
            &mut self.x_buf,
            self.model.device(),
            "batch",
        )?; // (B, N)
        let eps = standard_normal(b, self.model.config().n_total(), rng, self.model.device())?; // (B, L)
        let terms = self
            .model
            .loss(&x, &eps, f64::from(plan.beta), self.fused.as_ref())?;
        let (loss, psi) = match (plan.kind, self.train.physics.mode) {
            (PhysicsKind::None, _) => (terms.sh.clone(), 0.0f32),
            (_, PhysicsMode::Faithful) => self.faithful_loss(plan, &terms, b)?,
            (_, PhysicsMode::Gradient) => self.gradient_loss(plan, &terms, rng)?,
        };
        let loss = self.step(&loss, plan.e, bi)?;
        Ok(BatchStep { terms, psi, loss })
    }

    /// Faithful mode: `L_sh (w + Psi)` with Psi computed on the batch's
    /// encoder means, without gradient (0 for a batch that is not `d^2`).
    /// Returns the loss and Psi.
    fn faithful_loss(
        &self,
        plan: &EpochPlan,
        terms: &LossTerms,
        b: usize,
    ) -> Result<(Tensor, f32)> {
        let l = self.model.config().n_total();
        let psi = if b == plan.d * plan.d {
            let z: Vec<f32> = terms
                .z_mean
                .flatten_all()
                .and_then(|t| t.to_vec1())
                .ctx("reading the batch latents")?;
            let z = Array2::from_shape_vec((b, l), z).map_err(|_| ModelError::ShapeMismatch {
                what: "batch latents",
                expected: vec![b, l],
                found: vec![],
            })?;
            psi_faithful(self.train.physics.kind, z.view(), &plan.columns)?
        } else {
            0.0
        };
        let factor = f64::from(self.train.physics.weight) + f64::from(psi);
        Ok(((&terms.sh * factor).ctx("physics loss")?, psi))
    }

    /// Gradient mode: Psi of a random `d x d` tile of the patch grid, inside
    /// the autodiff graph, each map scaled by its latent's (detached) range
    /// over the batch, combined with `L_sh`. Returns the loss and Psi.
    fn gradient_loss(
        &mut self,
        plan: &EpochPlan,
        terms: &LossTerms,
        rng: &mut ChaCha8Rng,
    ) -> Result<(Tensor, f32)> {
        let tile = self.random_tile(plan.d, rng)?; // (d^2, N)
        let graph = self
            .psi_graph
            .as_ref()
            .ok_or(ModelError::InvalidParameter {
                name: "physics",
                value: "gradient".into(),
                rule: "no Psi graph was built",
            })?;
        let (tile_mean, _) = self.model.encode(&tile)?; // (d^2, L)
        let maps = batch_maps(&tile_mean, &plan.columns, plan.d)?; // (C, d, d)
        let batch_cols = terms
            .z_mean
            .index_select(&plan.column_index, 1) // (B, C)
            .ctx("batch latents")?;
        let range = batch_cols
            .max_keepdim(0) // (1, C)
            .and_then(|hi| hi - batch_cols.min_keepdim(0)?) // (1, C)
            .and_then(|r| r.t()) // (C, 1)
            .ctx("batch latent ranges")?
            .detach();
        let psi = graph.psi_scaled(&maps, &range)?; // scalar
        let psi_value: f32 = psi.to_scalar().ctx("Psi")?;
        let p = &self.train.physics;
        let loss = combine(p.combine, &terms.sh, &psi, f64::from(p.weight))?;
        Ok((loss, psi_value))
    }

    /// Backpropagates `loss` and takes one Adam step, unless the loss or a
    /// gradient is not finite ([`ModelError::Diverged`], parameters left as
    /// they were). Returns the loss value.
    fn step(&mut self, loss: &Tensor, e: usize, bi: usize) -> Result<f32> {
        let diverged = |what: &str| ModelError::Diverged {
            epoch: e + 1,
            batch: bi,
            what: what.to_string(),
            epochs_done: self.epochs_done,
            checkpoint: self.kept_checkpoint(),
        };
        let loss_value: f32 = loss.to_scalar().ctx("loss")?;
        if !loss_value.is_finite() {
            return Err(diverged("loss"));
        }
        let grads = loss.backward().ctx("backward pass")?;
        if let Some(what) = self.non_finite_gradient(&grads)? {
            return Err(diverged(&what));
        }
        self.adam.step(self.model.store(), &grads)?;
        Ok(loss_value)
    }

    /// `None` when every gradient is finite, else what is not: the first
    /// parameter with a non-finite gradient, or the gradient as a whole.
    fn non_finite_gradient(&self, grads: &GradStore) -> Result<Option<String>> {
        // One device read for all gradients; the per-parameter pass runs
        // only to name the culprit.
        let mut names = Vec::new();
        let mut sq = Vec::new();
        for (name, var) in self.model.store().vars() {
            if let Some(g) = grads.get(var.as_tensor()) {
                names.push(name);
                sq.push(g.sqr().and_then(|t| t.sum_all()).ctx("gradient check")?);
            }
        }
        let total: f32 = Tensor::stack(&sq, 0)
            .and_then(|t| t.sum_all())
            .and_then(|t| t.to_scalar())
            .ctx("gradient check")?;
        if total.is_finite() {
            return Ok(None);
        }
        for (name, s) in names.iter().zip(&sq) {
            let v: f32 = s.to_scalar().ctx("gradient check")?;
            if !v.is_finite() {
                return Ok(Some(format!("gradient of {name}")));
            }
        }
        Ok(Some("gradient".to_string()))
    }
}

/// What stays the same over the batches of one epoch.
struct EpochPlan {
    /// The epoch, 0-based.
    e: usize,
    /// The KL scale.
    beta: f32,
    /// The physics term ([`PhysicsKind::None`] during the warm-up).
    kind: PhysicsKind,
    /// The latent columns of the physics maps.
    columns: Vec<usize>,
    /// The same columns as a `(C)` `u32` tensor on the model's device.
    column_index: Tensor,
    /// The map side `d` (`d^2` = batch size; 0 when it is not a square).
    d: usize,
}

/// What one batch's step leaves for the epoch's record.
struct BatchStep {
    /// The batch's loss terms.
    terms: LossTerms,
    /// Psi (0 without a physics term).
    psi: f32,
    /// The total loss.
    loss: f32,
}

/// An epoch's sums, each batch weighted by its number of patches, for its
/// [`EpochRecord`].
struct EpochSums {
    recon: f64,
    kl: f64,
    elbo: f64,
    psi: f64,
    total: f64,
    count: usize,
    latents: LatentStats,
}

impl EpochSums {
    fn new(n_latents: usize) -> Self {
        Self {
            recon: 0.0,
            kl: 0.0,
            elbo: 0.0,
            psi: 0.0,
            total: 0.0,
            count: 0,
            latents: LatentStats::new(n_latents),
        }
    }

    /// Adds a batch of `b` patches; returns the largest over the latents of
    /// the root mean square of their encoder means over the batch, and
    /// whether every latent was flat over the batch ([`LatentStats::add`]).
    fn add(
        &mut self,
        b: usize,
        terms: &LossTerms,
        psi: f32,
        loss: f32,
    ) -> Result<(f64, Option<bool>)> {
        let scalar =
            |t: &Tensor| -> Result<f64> { t.to_scalar::<f32>().map(f64::from).ctx("loss terms") };
        let (rms, flat) = self.latents.add(&terms.z_mean, &terms.z_sd)?;
        let w = b as f64;
        self.recon += w * scalar(&terms.recon)?;
        self.kl += w * scalar(&terms.kl)?;
        self.elbo += w * scalar(&terms.sh)?;
        self.psi += w * f64::from(psi);
        self.total += w * f64::from(loss);
        self.count += b;
        Ok((rms, flat))
    }

    /// The mean reconstruction term per patch of the batches so far.
    fn recon_mean(&self) -> f64 {
        self.recon / self.count.max(1) as f64
    }

    /// The record of epoch `e` (0-based), trained at `lr`: the per-patch means.
    fn record(self, e: usize, beta: f32, lr: f64, seconds: f64) -> EpochRecord {
        let n = self.count.max(1) as f64;
        EpochRecord {
            epoch: e + 1,
            beta,
            lr,
            recon: self.recon / n,
            kl: self.kl / n,
            elbo: self.elbo / n,
            psi: self.psi / n,
            total: self.total / n,
            seconds,
            kl_latent: self.latents.kl(),
            mean_var: self.latents.mean_var(),
        }
    }
}

/// Per-latent sums over an epoch's patches: KL, and the first two moments of
/// the encoder mean (for [`EpochRecord::kl_latent`] and
/// [`EpochRecord::mean_var`]).
struct LatentStats {
    kl: Vec<f64>,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    /// Per latent, the sum of squared means of the latest batch (reused).
    batch_sq: Vec<f64>,
    /// Per latent, the sum of means of the latest batch (reused).
    batch_sum: Vec<f64>,
    count: usize,
}

impl LatentStats {
    fn new(n: usize) -> Self {
        Self {
            kl: vec![0.0; n],
            sum: vec![0.0; n],
            sum_sq: vec![0.0; n],
            batch_sq: vec![0.0; n],
            batch_sum: vec![0.0; n],
            count: 0,
        }
    }

    /// Adds a batch of encoder means and standard deviations, `(B, L)` each;
    /// returns the largest over the latents of the root mean square of their
    /// means over the batch (infinite when a mean is not finite), and
    /// whether every latent's mean was the same for every patch of the
    /// batch (a variance over the batch below [`FLAT_BATCH_VARIANCE`]; `None`
    /// for a batch of one patch, which cannot tell).
    fn add(&mut self, mean: &Tensor, sd: &Tensor) -> Result<(f64, Option<bool>)> {
        let l = self.kl.len();
        let mu: Vec<f32> = mean
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .ctx("latent statistics")?;
        let sd: Vec<f32> = sd
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .ctx("latent statistics")?;
        self.batch_sq.fill(0.0);
        self.batch_sum.fill(0.0);
        for (m_row, s_row) in mu.chunks_exact(l).zip(sd.chunks_exact(l)) {
            for j in 0..l {
                let m = f64::from(m_row[j]);
                self.batch_sq[j] += m * m;
                self.batch_sum[j] += m;
                let s = f64::from(s_row[j]);
                self.kl[j] += 0.5 * (m * m + s * s - 2.0 * s.ln() - 1.0);
                self.sum[j] += m;
                self.sum_sq[j] += m * m;
            }
            self.count += 1;
        }
        let rows = (mu.len() / l.max(1)).max(1) as f64;
        let rms = self
            .batch_sq
            .iter()
            .map(|q| {
                if q.is_finite() {
                    (q / rows).sqrt()
                } else {
                    f64::INFINITY
                }
            })
            .fold(0.0, f64::max);
        let flat = (rows > 1.0).then(|| {
            self.batch_sq
                .iter()
                .zip(&self.batch_sum)
                .all(|(q, s)| q / rows - (s / rows) * (s / rows) < FLAT_BATCH_VARIANCE)
        });
        Ok((rms, flat))
    }

    fn kl(&self) -> Vec<f64> {
        let n = self.count.max(1) as f64;
        self.kl.iter().map(|k| k / n).collect()
    }

    fn mean_var(&self) -> Vec<f64> {
        let n = self.count.max(1) as f64;
        self.sum
            .iter()
            .zip(&self.sum_sq)
            .map(|(s, q)| (q / n - (s / n) * (s / n)).max(0.0))
            .collect()
    }
}
