//! End-to-end training on small synthetic images: the loss falls, the phases
//! separate, runs are reproducible, a resumed run is bit-identical (also
//! with more epochs and a lower rate), and a diverging or runaway run stops
//! with a typed error that names the checkpoint it leaves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use candle_core::Device;
use ndarray::{Array2, Axis};
use phyvae_data::Image;
use phyvae_data::patches::{Levelling, PatchGrid, PatchSet, Scaling, labels_at_patch_centres};
use phyvae_imaging::metrics::adjusted_rand_index;
use phyvae_imaging::threshold::otsu;
use phyvae_model::ModelError;
use phyvae_model::infer::encode_patches;
use phyvae_model::train::Trainer;
use phyvae_run::config::{
    BetaSchedule, LrChange, ModelConfig, PhysicsKind, PhysicsMode, TrainConfig,
};
use phyvae_run::files::CHECKPOINT as CHECKPOINT_FILE;
use phyvae_run::history::EpochRecord;

const SIZE: usize = 72;
const WINDOW: usize = 12;
const STEP: usize = 3;

/// Two lattices of Gaussian atom columns (spacing 12 px, one column per patch) left and right of a
/// vertical boundary: bright columns on the left (phase 0), dim ones on the
/// right (phase 1), with a little deterministic texture.
fn two_lattices() -> (Image, Array2<i32>) {
    let mut px = Array2::<f32>::zeros((SIZE, SIZE));
    let mut truth = Array2::<i32>::zeros((SIZE, SIZE));
    for r in 0..SIZE {
        for c in 0..SIZE {
            let right = c >= SIZE / 2;
            let (fy, fx) = ((r % 12) as f32 - 6.0, (c % 12) as f32 - 6.0);
            let atom = (-(fx * fx + fy * fy) / 8.0).exp();
            let amp = if right { 0.35 } else { 1.0 };
            let texture = 0.02 * (((r * 7 + c * 13) % 11) as f32 / 11.0);
            px[[r, c]] = 0.1 + amp * atom + texture;
            truth[[r, c]] = i32::from(right);
        }
    }
    (Image::new(px), truth)
}

fn patches(img: &Image) -> PatchSet {
    let grid = PatchGrid::new(SIZE, SIZE, WINDOW, STEP).unwrap();
    PatchSet::from_image(img, grid, Scaling::GlobalMinMax, Levelling::None).unwrap()
}

fn entropy_floor(ps: &PatchSet) -> f64 {
    let mut buf = vec![0.0f32; ps.patch_len()];
    let mut total = 0.0f64;
    for i in 0..ps.len() {
        ps.copy_patch_into(i, &mut buf).unwrap();
        for &x in &buf {
            let x = f64::from(x);
            if x > 0.0 && x < 1.0 {
                total -= x * x.ln() + (1.0 - x) * (1.0 - x).ln();
            }
        }
    }
    total / ps.len() as f64
}

fn model() -> ModelConfig {
    ModelConfig {
        window: WINDOW,
        hidden: 32,
        ..ModelConfig::default()
    }
}

fn train(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        lr: 5e-3,
        seed: 3,
        beta: BetaSchedule::Ramp {
            start: 0.05,
            end: 1.0,
            ramp_epochs: epochs,
        },
        ..TrainConfig::default()
    }
}

fn params_of(t: &Trainer<'_>) -> Vec<(String, Vec<f32>)> {
    t.model()
        .store()
        .vars()
        .map(|(n, v)| (n.to_string(), v.flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

fn without_time(h: &[EpochRecord]) -> Vec<EpochRecord> {
    h.iter()
        .map(|r| EpochRecord {
            seconds: 0.0,
            ..r.clone()
        })
        .collect()
}

#[test]
fn loss_falls_and_the_two_phases_separate() {
    let (img, truth) = two_lattices();
    let ps = patches(&img);
    let mut tc = train(8);
    tc.lr = 1e-2;
    let mut t = Trainer::new(&model(), &tc, &ps, &Device::Cpu).unwrap();
    t.run(&mut |_| {}).unwrap();
    let h = t.history();
    assert_eq!(h.len(), 8);
    assert_eq!(t.saturated(), None);
    let maps = encode_patches(t.model(), &ps, 128).unwrap();
    let truth = labels_at_patch_centres(truth.view(), ps.grid()).unwrap();
    // Best content latent, thresholded at its Otsu level.
    let mut best = f64::MIN;
    for c in 2..4 {
        let m = maps.mean.index_axis(Axis(2), c).to_owned();
        let th = otsu(m.view()).unwrap();
        let labels = m.mapv(|v| i32::from(v > th));
        best = best.max(adjusted_rand_index(labels.view(), truth.view()).unwrap());
    }
    // The Bernoulli term cannot go below the entropy of the data,
    // sum_i H(x_i), averaged over patches: measure the fall above that floor.
    let floor = entropy_floor(&ps);
    let excess: Vec<f64> = h.iter().map(|r| r.recon - floor).collect();
    assert!(
        excess.iter().all(|&e| e > -1e-3),
        "below the entropy floor: {excess:?}"
    );
    assert!(
        excess[7] < 0.65 * excess[0],
        "reconstruction term did not fall: {excess:?} above the floor {floor}"
    );
    assert!(
        best > 0.75,
        "content latents do not separate the phases: ARI {best}"
    );
}

/// An encoder whose first-layer units all saturate (every pre-activation at
/// least 50 on inputs in [0, 1], where tanh is 1 in `f32` and its derivative
/// 0) gives every patch the same code and gets no gradient: training stops
/// at the end of the epoch in which `SATURATED_BATCHES` flat batches in a row
/// are reached, and says so.
#[test]
fn a_saturated_encoder_stops_training_at_the_end_of_its_epoch() {
    let (img, _) = two_lattices();
    let ps = patches(&img);
    // 441 patches in batches of 2: 220 flat batches per epoch and one of a
    // single patch, which cannot tell.
    let tc = TrainConfig {
        batch_size: 2,
        ..train(3)
    };
    assert_eq!(ps.len(), 441);
    const { assert!(220 > phyvae_model::train::SATURATED_BATCHES) };
    let mut t = Trainer::new(&model(), &tc, &ps, &Device::Cpu).unwrap();
    for (name, var) in t.model().store().vars() {
        if name.starts_with("encoder.fc1.") {
            let big = candle_core::Tensor::full(50.0f32, var.dims(), &Device::Cpu).unwrap();
            var.set(&big).unwrap();
        }
    }
    t.run(&mut |_| {}).unwrap();
    assert_eq!(t.history().len(), 1);
    let sat = t.saturated().unwrap();
    assert_eq!((sat.epoch, sat.epochs), (1, 3));
    assert_eq!(sat.flat_batches, 220);
    // every patch has the same code, to within rounding
    let maps = encode_patches(t.model(), &ps, 128).unwrap();
    for c in 0..4 {
        let m = maps.mean.index_axis(Axis(2), c);
        let (lo, hi) = m
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        assert!(hi - lo < 1e-5, "latent {c}: {lo} to {hi}");
    }
}

#[test]
fn same_seed_same_latents_and_resume_is_bit_identical() {
    let (img, _) = two_lattices();
    let ps = patches(&img);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = train(3);
    cfg.physics.kind = PhysicsKind::Sl1;
    cfg.physics.mode = PhysicsMode::Faithful;

    let mut full = Trainer::new(&model(), &cfg, &ps, &Device::Cpu).unwrap();
    full.run(&mut |_| {}).unwrap();

    // A run that stops after its first checkpoint (as if killed), then resumes.
    let mut first = Trainer::new(&model(), &cfg, &ps, &Device::Cpu)
        .unwrap()
        .with_checkpoints(dir.path())
        .unwrap();
    first.run_epochs(1, &mut |_| {}).unwrap();
    assert!(dir.path().join(CHECKPOINT_FILE).is_file());
    drop(first);
    let mut resumed = Trainer::resume(dir.path(), &ps, &Device::Cpu).unwrap();
    assert_eq!(resumed.epochs_done(), 1);
    resumed.run(&mut |_| {}).unwrap();

    assert_eq!(params_of(&full), params_of(&resumed));
    assert_eq!(
        without_time(full.history()),
        without_time(resumed.history())
    );

    // Same seed from scratch: same latents.
    let mut again = Trainer::new(&model(), &cfg, &ps, &Device::Cpu).unwrap();
    again.run(&mut |_| {}).unwrap();
    let a = encode_patches(full.model(), &ps, 64).unwrap();
    let b = encode_patches(again.model(), &ps, 64).unwrap();
    assert_eq!(a, b);
    // A different seed gives a different model.
    cfg.seed = 4;
    let mut other = Trainer::new(&model(), &cfg, &ps, &Device::Cpu).unwrap();
    other.run_epochs(1, &mut |_| {}).unwrap();
    assert_ne!(params_of(&other), params_of(&full));
}

#[test]
fn divergence_stops_with_a_typed_error_and_keeps_the_checkpoint() {
    let (img, _) = two_lattices();
    let ps = patches(&img);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = train(3);
    cfg.lr = 1e30; // Adam moves every parameter by ~lr per step: the std head overflows f32.
    let mut t = Trainer::new(&model(), &cfg, &ps, &Device::Cpu)
        .unwrap()
        .with_checkpoints(dir.path())
        .unwrap();
    let err = t.run(&mut |_| {}).unwrap_err();
    assert!(matches!(err, ModelError::Diverged { .. }), "{err}");
    // Every parameter is still finite: the bad update was not applied.
    for (name, v) in params_of(&t) {
        assert!(v.iter().all(|x| x.is_finite()), "{name}");
    }
}

#[test]
fn a_run_that_runs_away_in_its_first_epoch_says_no_checkpoint_exists() {
    let (img, _) = two_lattices();
    let ps = patches(&img);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = train(3);
    cfg.lr = 10.0; // Finite but far too large: the encoder means run away.
    let mut t = Trainer::new(&model(), &cfg, &ps, &Device::Cpu)
        .unwrap()
        .with_checkpoints(dir.path())
        .unwrap();
    let err = t.run(&mut |_| {}).unwrap_err();
    let ModelError::RanAway {
        epoch,
        epochs_done,
        checkpoint,
        ..
    } = &err
    else {
        panic!("not a runaway: {err}");
    };
    assert_eq!((*epoch, *epochs_done, checkpoint), (1, 0, &None), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("no checkpoint was written; start again with a lower --lr"),
        "{text}"
    );
    assert!(!text.contains("is kept"), "{text}");
    assert!(!dir.path().join(CHECKPOINT_FILE).exists());
}

#[test]
fn a_run_that_runs_away_later_keeps_the_last_good_checkpoint_and_names_it() {
    let (img, _) = two_lattices();
    let ps = patches(&img);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = train(4);
    // Two healthy epochs, then a rate that throws the model off.
    cfg.lr_changes = vec![LrChange { epoch: 3, lr: 10.0 }];
    let mut t = Trainer::new(&model(), &cfg, &ps, &Device::Cpu)
        .unwrap()
        .with_checkpoints(dir.path())
        .unwrap();
    let err = t.run(&mut |_| {}).unwrap_err();
    let path = dir.path().join(CHECKPOINT_FILE);
    let ModelError::RanAway {
        epoch,
        epochs_done,
        checkpoint,
        ..
    } = &err
    else {
        panic!("not a runaway: {err}");
    };
    assert_eq!(
        (*epoch, *epochs_done, checkpoint.as_deref()),
        (3, 2, Some(path.as_path())),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "the checkpoint of epoch 2, the last good one, is kept in {}",
            path.display()
        )),
        "{text}"
    );
    // The epoch that ran away wrote no checkpoint: it holds epoch 2, with
    // the healthy history.
    let back = Trainer::resume(dir.path(), &ps, &Device::Cpu).unwrap();
    assert_eq!(back.epochs_done(), 2);
    assert_eq!(back.history().len(), 2);
    assert!(
        back.history().iter().all(|r| r.lr == cfg.lr),
        "{:?}",
        back.history()
    );
}

#[test]
fn more_epochs_and_a_lower_rate_on_resume_equal_a_run_with_that_change() {
    let (img, _) = two_lattices();
    let ps = patches(&img);
    let lower = 1e-3;
    // One run of 4 epochs whose rate drops at epoch 3.
    let mut cfg = train(4);
    cfg.beta = BetaSchedule::Ramp {
        start: 0.05,
        end: 1.0,
        ramp_epochs: 2,
    };
    let mut planned = cfg.clone();
    planned.lr_changes = vec![LrChange {
        epoch: 3,
        lr: lower,
    }];
    let mut full = Trainer::new(&model(), &planned, &ps, &Device::Cpu).unwrap();
    full.run(&mut |_| {}).unwrap();
    let lrs: Vec<f64> = full.history().iter().map(|r| r.lr).collect();
    assert_eq!(lrs, vec![cfg.lr, cfg.lr, lower, lower]);

    // A 2-epoch run, resumed with 2 more epochs at the lower rate.
    let dir = tempfile::tempdir().unwrap();
    let mut short = cfg.clone();
    short.epochs = 2;
    let mut first = Trainer::new(&model(), &short, &ps, &Device::Cpu)
        .unwrap()
        .with_checkpoints(dir.path())
        .unwrap();
    first.run(&mut |_| {}).unwrap();
    drop(first);
    let mut resumed = Trainer::resume(dir.path(), &ps, &Device::Cpu).unwrap();
    // Fewer epochs than done is refused, and changes nothing.
    assert!(matches!(
        resumed.set_epochs(1),
        Err(ModelError::InvalidParameter { name: "epochs", .. })
    ));
    assert_eq!(resumed.train_config().epochs, 2);
    resumed.set_epochs(4).unwrap();
    resumed.set_learning_rate(lower).unwrap();
    assert_eq!(resumed.train_config(), &planned);
    resumed.run(&mut |_| {}).unwrap();
    assert_eq!(params_of(&full), params_of(&resumed));
    assert_eq!(
        without_time(full.history()),
        without_time(resumed.history())
    );
    // The added epochs hold the ramp's end value.
    assert_eq!(resumed.history()[3].beta, 1.0);
}

#[test]
fn resume_refuses_another_grid_and_a_missing_checkpoint() {
    let (img, _) = two_lattices();
    let ps = patches(&img);
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Trainer::resume(dir.path(), &ps, &Device::Cpu),
        Err(ModelError::BadFile { .. })
    ));
    let mut t = Trainer::new(&model(), &train(1), &ps, &Device::Cpu)
        .unwrap()
        .with_checkpoints(dir.path())
        .unwrap();
    t.run(&mut |_| {}).unwrap();
    let grid = PatchGrid::new(SIZE, SIZE, WINDOW, 2 * STEP).unwrap();
    let other = PatchSet::from_image(&img, grid, Scaling::GlobalMinMax, Levelling::None).unwrap();
    assert!(matches!(
        Trainer::resume(dir.path(), &other, &Device::Cpu),
        Err(ModelError::BadFile { .. })
    ));
}

#[test]
fn gradient_mode_warms_up_then_adds_psi_and_resumes_bit_identically() {
    let (img, _) = two_lattices();
    let ps = patches(&img);
    let mut cfg = train(3);
    cfg.physics.kind = PhysicsKind::Sl1;
    cfg.physics.mode = PhysicsMode::Gradient;
    // Defaults: L_sh + 1 * Psi, Psi from epoch epochs / 3 + 1 = 2 on.
    assert_eq!(cfg.physics_warmup(), 1);
    let mut full = Trainer::new(&model(), &cfg, &ps, &Device::Cpu).unwrap();
    full.run(&mut |_| {}).unwrap();
    let h = full.history();
    // Warm-up epoch: plain sh-VAE, the total is the ELBO part.
    assert_eq!(h[0].psi, 0.0);
    assert_eq!(h[0].total, h[0].elbo);
    // Afterwards every batch adds lambda * Psi (lambda = 1): the epoch means
    // add up the same way.
    for r in &h[1..] {
        assert!(r.psi > 0.0, "{r:?}");
        let sum = r.elbo + r.psi;
        assert!((r.total - sum).abs() < 1e-5 * sum, "{r:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let mut first = Trainer::new(&model(), &cfg, &ps, &Device::Cpu)
        .unwrap()
        .with_checkpoints(dir.path())
        .unwrap();
    first.run_epochs(2, &mut |_| {}).unwrap();
    drop(first);
    let mut resumed = Trainer::resume(dir.path(), &ps, &Device::Cpu).unwrap();
    resumed.run(&mut |_| {}).unwrap();
    assert_eq!(params_of(&full), params_of(&resumed));
    assert_eq!(
        without_time(full.history()),
        without_time(resumed.history())
    );
}

/// A cap on the batches of an epoch trains that many batches, each epoch
/// its own draw, and is resumed like any run.
#[test]
fn an_epoch_cap_trains_that_many_batches_of_a_fresh_draw() {
    let (img, _) = two_lattices();
    let ps = patches(&img);
    let all = ps.len().div_ceil(16);
    assert!(all > 3, "the test needs more than 3 batches, has {all}");
    let mut tc = train(2);
    tc.batches_per_epoch = Some(3);
    let mut seen = Vec::new();
    let mut t = Trainer::new(&model(), &tc, &ps, &Device::Cpu).unwrap();
    t.run(&mut |e| {
        if let phyvae_model::train::TrainEvent::EpochStarted { batches, .. } = e {
            seen.push(batches);
        }
    })
    .unwrap();
    assert_eq!(seen, vec![3, 3]);
    // Without the cap, every patch once.
    let mut seen = Vec::new();
    let mut t = Trainer::new(&model(), &train(1), &ps, &Device::Cpu).unwrap();
    t.run(&mut |e| {
        if let phyvae_model::train::TrainEvent::EpochStarted { batches, .. } = e {
            seen.push(batches);
        }
    })
    .unwrap();
    assert_eq!(seen, vec![all]);
}
