//! The memory a `train` or `encode` run will need, estimated from its settings
//! and patch grid before anything large is allocated, and what the machine has
//! available.
//!
//! Convention: an **upper bound** on the bytes the run holds at its peak, on
//! the CPU, every value an `f32` (4 bytes). It is the sum of the parts below,
//! although they are not all alive at once (training ends before the encode
//! pass starts), plus a fixed allowance for the program itself. With `B` the
//! batch (clamped to the patch count), `N = window^2` pixels per patch, `H`
//! the hidden width, `n` the content latents, `L` all latents, `P` the
//! parameter count, `Np` the patches and `R x C` the image:
//!
//! | part | floats counted |
//! |---|---|
//! | parameters | `5 P`: weights, gradients, Adam's two moments, one copy while a checkpoint is written |
//! | decoder | fused CPU kernel: its workspace, `B (3 N H + 2 min(N, 256) H + 2 H^2 + 5 N + 7 H + 2 n + 1) + 2 H` (the `h0`, `h1`, `h2` activations, the row-block deltas, per-patch weight gradients, logits, coordinates and their gradients, per-patch sums); plain candle decoder: `12 B N H` (six `B N H` activations kept for the backward pass and as many gradients); vanilla decoder: `4 B (2 H + N)` |
//! | batch graph | `24 B N + 8 B H + 16 B L` (the patch buffer and tensor, coordinates, logits and loss terms, encoder activations, each with its gradient); in gradient mode with a physics term, the Psi tile of `batch` patches again |
//! | image | `4 R C`: the image, its scaled copy, an `f64` working copy for levelling |
//! | encode | `2 E N + 4 E H + 4 E L` with `E = min(256, Np)`: the encode pass after training, batches of 256 |
//! | maps | `18 Np L`: latent means and standard deviations, and the segmentation's working arrays for every map |
//! | manifold | `4 x 8 N H + 288 N`: the 12 x 12 manifold decoded 8 patches at a time by the plain decoder (four `8 N H` activations), and its image |
//! | runtime | 64 MB: the program, its libraries and threads |

use phyvae_run::config::{
    DecoderBackend, ModelConfig, ModelKind, PhysicsKind, PhysicsMode, TrainConfig,
};

use crate::ModelError;
use crate::decoder::ROW_BLOCK;

/// Bytes of one `f32`.
const F32: u64 = 4;
/// Patches per batch of the encode pass after training (the CLI's batch).
pub const ENCODE_BATCH: usize = 256;
/// Patches the manifold decodes at a time ([`crate::infer::manifold2d`]).
const MANIFOLD_CHUNK: u64 = crate::infer::MANIFOLD_CHUNK as u64;
/// Patches of the 12 x 12 manifold grid.
const MANIFOLD_PATCHES: u64 = 144;
/// Allowance for the program itself: code, libraries, thread stacks, allocator.
pub const RUNTIME_BYTES: u64 = 64_000_000;

/// The estimated peak memory of a run, in bytes, by part (see the [module
/// docs](self) for what each part counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Weights, gradients, Adam moments and the checkpoint copy.
    pub parameters: u64,
    /// The decoder's per-batch buffers.
    pub decoder: u64,
    /// The rest of one training step's graph (encoder, coordinates, loss, Psi tile).
    pub batch_graph: u64,
    /// The image and its copies.
    pub image: u64,
    /// The encode pass over every patch.
    pub encode: u64,
    /// The latent maps and their segmentations.
    pub maps: u64,
    /// The manifold figure's decoding.
    pub manifold: u64,
    /// The program itself ([`RUNTIME_BYTES`]).
    pub runtime: u64,
    /// Patches per batch the estimate assumed (after clamping to the patch
    /// count; 0 for an encode-only run).
    pub batch: usize,
    /// Patch window in px.
    pub window: usize,
    /// Hidden width.
    pub hidden: usize,
}

/// `a * b` on `u64`, saturating (an estimate of absurd settings must not overflow).
fn mul(factors: &[u64]) -> u64 {
    factors.iter().fold(1_u64, |acc, &f| acc.saturating_mul(f))
}

/// Sum on `u64`, saturating.
fn sum(terms: &[u64]) -> u64 {
    terms.iter().fold(0_u64, |acc, &t| acc.saturating_add(t))
}

/// `usize` as `u64` (lossless on every supported target).
fn u(x: usize) -> u64 {
    x as u64
}

/// Parameter count `P` of a model.
#[must_use]
pub fn parameter_count(model: &ModelConfig) -> u64 {
    let (n_pix, h, n, l) = (
        u(model.n_pixels()),
        u(model.hidden),
        u(model.n_latent),
        u(model.n_total()),
    );
    // fc1 (H x N + H), fc2 (H x H + H), mean and std heads (L x H + L each).
    let encoder = sum(&[mul(&[h, n_pix]), h, mul(&[h, h]), h, mul(&[2, l, h]), 2 * l]);
    let decoder = if model.kind == ModelKind::Vanilla {
        // fc1 (H x n + H), fc2 (H x H + H), out (N x H + N).
        sum(&[mul(&[h, n]), h, mul(&[h, h]), h, mul(&[n_pix, h]), n_pix])
    } else {
        // Wc (H x d), bc, Wz (H x n), W1, b1, W2, b2, w3, b3.
        let d = u(model.n_decoder_inputs());
        sum(&[mul(&[2, h, h]), mul(&[h, d + n + 4]), 1])
    };
    sum(&[encoder, decoder])
}

/// Bytes of the parts every run has: the image, the encode pass, the maps,
/// the manifold and the runtime.
fn common_parts(model: &ModelConfig, image: (usize, usize), patches: usize) -> [u64; 5] {
    let (n_pix, h, l) = (u(model.n_pixels()), u(model.hidden), u(model.n_total()));
    let np = u(patches);
    let e = np.min(u(ENCODE_BATCH));
    let image = mul(&[4, u(image.0), u(image.1), F32]);
    let encode = mul(&[
        sum(&[mul(&[2, e, n_pix]), mul(&[4, e, h]), mul(&[4, e, l])]),
        F32,
    ]);
    let maps = mul(&[18, np, l, F32]);
    let decode_layers = if model.kind == ModelKind::Vanilla {
        mul(&[4, MANIFOLD_CHUNK, sum(&[2 * h, n_pix])])
    } else {
        mul(&[4, MANIFOLD_CHUNK, n_pix, h])
    };
    let manifold = mul(&[
        sum(&[decode_layers, mul(&[2, MANIFOLD_PATCHES, n_pix])]),
        F32,
    ]);
    [image, encode, maps, manifold, RUNTIME_BYTES]
}

impl MemoryEstimate {
    /// The estimate for `phyvae train` on the CPU: `model` and `train` as
    /// resolved, an image of `image = (rows, cols)` px cut into `patches`
    /// patches. The decoder part follows `train.decoder` (`auto` is the fused
    /// kernel on the CPU).
    #[must_use]
    pub fn train(
        model: &ModelConfig,
        train: &TrainConfig,
        image: (usize, usize),
        patches: usize,
    ) -> Self {
        let b = u(train.batch_size.min(patches).max(1));
        let (n_pix, h, n, l) = (
            u(model.n_pixels()),
            u(model.hidden),
            u(model.n_latent),
            u(model.n_total()),
        );
        let decoder_floats = if model.kind == ModelKind::Vanilla {
            mul(&[4, b, sum(&[2 * h, n_pix])])
        } else if train.decoder == DecoderBackend::Reference {
            mul(&[12, b, n_pix, h])
        } else {
            let block = n_pix.min(u(ROW_BLOCK));
            let d = u(model.n_decoder_inputs());
            let per_patch = sum(&[
                mul(&[3, n_pix, h]),
                mul(&[2, block, h]),
                mul(&[2, h, h]),
                mul(&[2 * d + 1, n_pix]),
                (5 + d) * h,
                2 * n,
                1,
            ]);
            sum(&[mul(&[b, per_patch]), d * h])
        };
        let step = |rows: u64| {
            sum(&[
                mul(&[24, rows, n_pix]),
                mul(&[8, rows, h]),
                mul(&[16, rows, l]),
            ])
        };
        let p = &train.physics;
        let tile = if p.kind != PhysicsKind::None && p.mode == PhysicsMode::Gradient {
            step(u(train.batch_size))
        } else {
            0
        };
        let [image, encode, maps, manifold, runtime] = common_parts(model, image, patches);
        Self {
            parameters: mul(&[5, parameter_count(model), F32]),
            decoder: mul(&[decoder_floats, F32]),
            batch_graph: mul(&[sum(&[step(b), tile]), F32]),
            image,
            encode,
            maps,
            manifold,
            runtime,
            batch: train.batch_size.min(patches).max(1),
            window: model.window,
            hidden: model.hidden,
        }
    }

    /// The estimate for `phyvae encode`: a trained `model` (its weights once,
    /// no training state) on an image of `image = (rows, cols)` px cut into
    /// `patches` patches.
    #[must_use]
    pub fn encode(model: &ModelConfig, image: (usize, usize), patches: usize) -> Self {
        let [image, encode, maps, manifold, runtime] = common_parts(model, image, patches);
        Self {
            parameters: mul(&[parameter_count(model), F32]),
            decoder: 0,
            batch_graph: 0,
            image,
            encode,
            maps,
            manifold,
            runtime,
            batch: 0,
            window: model.window,
            hidden: model.hidden,
        }
    }

    /// The whole estimate in bytes.
    #[must_use]
    pub fn total(&self) -> u64 {
        sum(&[
            self.parameters,
            self.decoder,
            self.batch_graph,
            self.image,
            self.encode,
            self.maps,
            self.manifold,
            self.runtime,
        ])
    }

    /// Refuses the run when the estimate exceeds `available` bytes.
    ///
    /// # Errors
    /// [`ModelError::OutOfMemory`] stating both figures and the settings
    /// that drive the estimate.
    pub fn check(&self, available: u64) -> Result<(), ModelError> {
        let need = self.total();
        if need <= available {
            return Ok(());
        }
        let drivers = if self.batch > 0 {
            format!(
                "the decoder's buffers grow as batch x window^2 x hidden (batch {} patches, \
                 window {} px, hidden {}: {}); lower --batch, --window or --hidden",
                self.batch,
                self.window,
                self.hidden,
                human_bytes(self.decoder)
            )
        } else {
            format!(
                "it grows as window^2 x hidden (window {} px, hidden {}) and with the patch count",
                self.window, self.hidden
            )
        };
        Err(ModelError::OutOfMemory {
            needed: human_bytes(need),
            available: human_bytes(available),
            drivers,
        })
    }
}

/// A byte count in decimal units: `"512 kB"`, `"3.2 GB"`, `"6.5 PB"`.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Memory available to a new allocation, in bytes: `MemAvailable` of
/// `/proc/meminfo` (Linux). `None` where it cannot be read (another system,
/// no `/proc`): callers then skip the check.
#[must_use]
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

/// `MemAvailable` of a `/proc/meminfo` text (in kB there) in bytes.
fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?;
    let mut parts = line.split_whitespace();
    let kb: u64 = parts.next()?.parse().ok()?;
    (parts.next() == Some("kB")).then(|| kb.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shift VAE (2 special latents), window 4 (N = 16), hidden 8, 2 content latents.
    fn small_model() -> ModelConfig {
        ModelConfig {
            kind: ModelKind::Shift,
            window: 4,
            n_latent: 2,
            hidden: 8,
            ..ModelConfig::default()
        }
    }

    #[test]
    fn parameter_count_by_hand() {
        // Encoder: fc1 8 x 16 + 8 = 136, fc2 64 + 8 = 72, heads 2 (4 x 8 + 4) = 72: 280.
        // Decoder: Wc 16, bc 8, Wz 16, W1 64, b1 8, W2 64, b2 8, w3 8, b3 1: 193.
        assert_eq!(parameter_count(&small_model()), 473);
        // Two Fourier features: Wc 8 x 6 = 48 instead of 16.
        let fourier = ModelConfig {
            coord_frequencies: vec![[1.0, 0.0], [0.0, 1.0]],
            ..small_model()
        };
        assert_eq!(parameter_count(&fourier), 473 + 32);
    }

    #[test]
    fn parameter_count_matches_the_models_built() {
        for kind in [
            ModelKind::Shift,
            ModelKind::Vanilla,
            ModelKind::ShiftRotation,
        ] {
            let model = ModelConfig {
                kind,
                ..small_model()
            };
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
            let vae = crate::vae::Vae::new(&model, &crate::Device::Cpu, &mut rng).unwrap();
            assert_eq!(
                parameter_count(&model),
                vae.store().num_params() as u64,
                "{kind:?}"
            );
        }
        let model = ModelConfig {
            coord_frequencies: vec![[0.5, 0.25]],
            ..small_model()
        };
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
        let vae = crate::vae::Vae::new(&model, &crate::Device::Cpu, &mut rng).unwrap();
        assert_eq!(parameter_count(&model), vae.store().num_params() as u64);
    }

    #[test]
    fn train_estimate_of_a_small_case_by_hand() {
        let model = small_model();
        let train = TrainConfig {
            batch_size: 64, // more than the 9 patches: clamped to B = 9
            ..TrainConfig::default()
        };
        let e = MemoryEstimate::train(&model, &train, (10, 10), 9);
        // 5 x 473 floats.
        assert_eq!(e.parameters, 5 * 473 * 4);
        // Per patch: 3 N H = 384, 2 min(N, 256) H = 256, 2 H^2 = 128, 5 N = 80,
        // 7 H = 56, 2 n = 4, 1: 909; 9 x 909 + 2 H = 8197 floats.
        assert_eq!(e.decoder, 8197 * 4);
        // 24 B N = 3456, 8 B H = 576, 16 B L = 576: 4608 floats (no physics term).
        assert_eq!(e.batch_graph, 4608 * 4);
        // 4 x 10 x 10.
        assert_eq!(e.image, 400 * 4);
        // E = 9: 2 E N = 288, 4 E H = 288, 4 E L = 144: 720 floats.
        assert_eq!(e.encode, 720 * 4);
        // 18 x 9 x 4.
        assert_eq!(e.maps, 648 * 4);
        // 4 x 8 x 16 x 8 = 4096, 2 x 144 x 16 = 4608: 8704 floats.
        assert_eq!(e.manifold, 8704 * 4);
        assert_eq!(e.batch, 9);
        let floats = 2365 + 8197 + 4608 + 400 + 720 + 648 + 8704;
        assert_eq!(e.total(), floats * 4 + RUNTIME_BYTES);
    }

    #[test]
    fn absurd_settings_saturate_instead_of_overflowing() {
        let model = ModelConfig {
            window: 1 << 20,
            hidden: 4096,
            ..small_model()
        };
        let train = TrainConfig {
            batch_size: usize::MAX,
            ..TrainConfig::default()
        };
        let e = MemoryEstimate::train(&model, &train, (1 << 30, 1 << 30), usize::MAX);
        assert_eq!(e.total(), u64::MAX);
    }

    #[test]
    fn check_states_both_figures_and_the_drivers() {
        let e = MemoryEstimate::train(&small_model(), &TrainConfig::default(), (10, 10), 9);
        assert!(e.check(e.total()).is_ok());
        // 25 642 floats (the case above) + 64 MB = 64 102 568 bytes.
        assert_eq!(e.total(), 64_102_568);
        let err = e.check(64_000_000).unwrap_err().to_string();
        assert!(err.contains("64.1 MB") && err.contains("64.0 MB"), "{err}");
        assert!(
            err.contains("batch 9 patches") && err.contains("hidden 8"),
            "{err}"
        );
    }

    #[test]
    fn human_bytes_in_decimal_units() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(human_bytes(6_500_000_000_000_000), "6.5 PB");
    }

    #[test]
    fn mem_available_is_read_in_kb() {
        let text = "MemTotal:       16303252 kB\nMemFree:  1 kB\nMemAvailable:   12000000 kB\n";
        assert_eq!(parse_mem_available(text), Some(12_000_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 5 kB\n"), None);
    }
}
