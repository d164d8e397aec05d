//! After training: latent maps of a whole image, the learned manifold, the
//! encoded distribution, and saving / loading a trained model
//! (docs/METHOD.md section 4).

use std::path::Path;

use candle_core::{Device, Tensor};
use ndarray::{Array2, Array3};
use phyvae_data::atomic::write_bytes_atomic;
use phyvae_data::patches::PatchSet;
use phyvae_run::config::DecoderBackend;

use crate::batch::patches_to_tensor;
use crate::error::FrameworkContext;
use crate::params::ParamStore;
use crate::vae::Vae;
use crate::{ModelError, Result};
use phyvae_run::config::{DataConfig, ModelDescription};
use phyvae_run::files::{MODEL as MODEL_FILE, MODEL_JSON};

/// Encoder means and standard deviations of every patch, on the patch grid.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentMaps {
    /// Means, `(gh, gw, L)`: channel `c` is latent `c` (special latents first).
    pub mean: Array3<f32>,
    /// Standard deviations, `(gh, gw, L)`.
    pub sd: Array3<f32>,
}

/// Encodes every patch of `patches` (in grid order, `batch` at a time) and
/// arranges the encoder's means and standard deviations on the patch grid.
///
/// # Errors
/// [`ModelError::ShapeMismatch`] when the patch window differs from the
/// model's; [`ModelError::Framework`] on a tensor error.
pub fn encode_patches(model: &Vae, patches: &PatchSet, batch: usize) -> Result<LatentMaps> {
    encode_patches_with_progress(model, patches, batch, &mut |_, _| {})
}

/// [`encode_patches`], calling `progress(done, total)` after each batch
/// (patches encoded so far, patches in all).
///
/// # Errors
/// As [`encode_patches`].
pub fn encode_patches_with_progress(
    model: &Vae,
    patches: &PatchSet,
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<LatentMaps> {
    let cfg = model.config();
    let np = cfg.n_pixels();
    if patches.patch_len() != np {
        return Err(ModelError::ShapeMismatch {
            what: "patch size vs model window",
            expected: vec![cfg.window, cfg.window],
            found: vec![patches.grid().window(), patches.grid().window()],
        });
    }
    // Never a buffer for more patches than there are.
    let batch = batch.clamp(1, patches.len().max(1));
    let l = cfg.n_total();
    let (gh, gw) = (patches.grid().gh(), patches.grid().gw());
    let mut mean = Array3::<f32>::zeros((gh, gw, l));
    let mut sd = Array3::<f32>::zeros((gh, gw, l));
    let mut buf = vec![0.0f32; batch * np];
    let total = patches.len();
    let mut start = 0;
    while start < total {
        let b = batch.min(total - start);
        let x = patches_to_tensor(
            patches,
            start..start + b,
            &mut buf,
            model.device(),
            "patches",
        )?; // (b, N)
        let (mu, s) = model.encode(&x)?; // (b, L) each
        let mu: Vec<f32> = mu
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .ctx("latent means")?;
        let s: Vec<f32> = s
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .ctx("latent std")?;
        for k in 0..b {
            let (r, c) = patches.grid().position(start + k);
            for j in 0..l {
                mean[[r, c, j]] = mu[k * l + j];
                sd[[r, c, j]] = s[k * l + j];
            }
        }
        start += b;
        progress(start, total);
        phyvae_data::fault::point("encode.batch");
    }
    Ok(LatentMaps { mean, sd })
}

/// [`encode_patches_with_progress`] with each cell's codes interpolated
/// between the lattice points around its grid origin: the patches are
/// encoded at every corner of [`PatchSet::lattice_corners`] and the means and
/// standard deviations averaged with the corners' bilinear weights. Without a
/// registration, the plain encoding. `progress(done, total)` counts the
/// patches of all corners.
///
/// A registered patch sits on the lattice point nearest its grid origin, so
/// plain maps hold one value per lattice point, a staircase a cell wide that
/// moves a boundary by up to half a cell, the same way along a whole straight
/// boundary. On 154 stored suite runs this encoding raised the result's
/// adjusted Rand index by 0.0035 on average, in 58 runs by more than 0.005
/// and lowered it in 18 (BENCHMARKS.md, "Maps between lattice points").
///
/// # Errors
/// As [`encode_patches`].
pub fn encode_between_lattice_points(
    model: &Vae,
    patches: &PatchSet,
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<LatentMaps> {
    let corners = patches.lattice_corners();
    if corners.is_empty() {
        return encode_patches_with_progress(model, patches, batch, progress);
    }
    let total = corners.len() * patches.len();
    let grid = patches.grid();
    let dim = (grid.gh(), grid.gw(), model.config().n_total());
    let mut acc = LatentMaps {
        mean: Array3::zeros(dim),
        sd: Array3::zeros(dim),
    };
    // One copy of the set, moved to each corner in turn.
    let mut set = patches.clone();
    for (ci, corner) in corners.iter().enumerate() {
        set.set_offsets(&corner.offsets)?;
        let done = ci * patches.len();
        let m = encode_patches_with_progress(model, &set, batch, &mut |d, _| {
            progress(done + d, total);
        })?;
        for (index, &wgt) in corner.weights.iter().enumerate() {
            if wgt == 0.0 {
                continue;
            }
            let (r, c) = grid.position(index);
            for j in 0..dim.2 {
                acc.mean[[r, c, j]] += wgt * m.mean[[r, c, j]];
                acc.sd[[r, c, j]] += wgt * m.sd[[r, c, j]];
            }
        }
    }
    Ok(acc)
}

/// Inverse of the standard normal CDF (Acklam's rational approximation,
/// relative error below 1.2e-9, refined by one Halley step on `erfc`-free
/// terms is not needed at that accuracy for plotting grids). Written here
/// because none of the crates phyvae depends on provides it.
///
/// `p` must lie in `(0, 1)`; 0 and 1 give -inf and +inf.
#[must_use]
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const DD: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.024_25;
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((DD[0] * q + DD[1]) * q + DD[2]) * q + DD[3]) * q + 1.0)
    };
    if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - P_LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// Manifold patches decoded at once.
pub(crate) const MANIFOLD_CHUNK: usize = 8;

/// The learned 2-D manifold (pyroVED `manifold2d`): decodes a `d x d` grid of
/// the first two content latents at standard-normal quantiles (rows:
/// `linspace(0.95, 0.05, d)`, columns: `linspace(0.05, 0.95, d)`; other
/// latents, special ones included, at 0) and tiles the decoded patches
/// (`sigmoid(logit)`) into one `(d w) x (d w)` image. With one content latent
/// the grid varies it along the columns only.
///
/// # Errors
/// [`ModelError::InvalidParameter`] when `d < 2`; [`ModelError::Framework`] on a
/// tensor error.
pub fn manifold2d(model: &Vae, d: usize) -> Result<Array2<f32>> {
    if d < 2 {
        return Err(ModelError::InvalidParameter {
            name: "d",
            value: d.to_string(),
            rule: "the manifold grid needs at least 2 x 2 points",
        });
    }
    let cfg = model.config();
    let (l, s, w) = (cfg.n_total(), cfg.kind.n_special(), cfg.window);
    let lin = |a: f64, b: f64, i: usize| a + (b - a) * i as f64 / (d - 1) as f64;
    let mut z = vec![0.0f32; d * d * l];
    for i in 0..d {
        for j in 0..d {
            let row = &mut z[(i * d + j) * l..(i * d + j + 1) * l];
            let zy = normal_quantile(lin(0.05, 0.95, j)) as f32;
            if cfg.n_latent >= 2 {
                row[s] = normal_quantile(lin(0.95, 0.05, i)) as f32;
                row[s + 1] = zy;
            } else {
                row[s] = zy;
            }
        }
    }
    let z = ndarray::ArrayView2::from_shape((d * d, l), &z).map_err(|e| {
        ModelError::InvalidParameter {
            name: "d",
            value: e.to_string(),
            rule: "the manifold grid holds d * d rows of L latents",
        }
    })?;
    let patches = decode_latents(model, z)?; // (d*d, w, w)
    let mut img = Array2::<f32>::zeros((d * w, d * w));
    for (k, patch) in patches.outer_iter().enumerate() {
        let (i, j) = (k / d, k % d);
        img.slice_mut(ndarray::s![i * w..(i + 1) * w, j * w..(j + 1) * w])
            .assign(&patch);
    }
    Ok(img)
}

/// Decodes chosen latents: `z` is `(B, L)`, one row per patch with every
/// latent (special ones first, as in `latents.npy`); returns the decoded
/// patches `sigmoid(logit)`, `(B, window, window)`, decoded
/// [`MANIFOLD_CHUNK`] at a time ([`manifold2d`] decodes its grid with it).
///
/// # Errors
/// [`ModelError::ShapeMismatch`] when `z` does not have the model's `L`
/// columns; [`ModelError::Framework`] on a tensor error.
pub fn decode_latents(model: &Vae, z: ndarray::ArrayView2<'_, f32>) -> Result<Array3<f32>> {
    let cfg = model.config();
    let (l, w) = (cfg.n_total(), cfg.window);
    if z.ncols() != l {
        return Err(ModelError::ShapeMismatch {
            what: "latents to decode (columns)",
            expected: vec![l],
            found: vec![z.ncols()],
        });
    }
    let flat: Vec<f32> = z.iter().copied().collect();
    // Decoded a few patches at a time: a decoder holds several (patches x
    // pixels x hidden) activations, 1.5 GB for all 144 patches of a 48 px
    // window at hidden width 128. On the CPU the fused kernel does it (its
    // workspace is sized for one chunk), elsewhere the reference decoder.
    let fused = model.fused_workspace(DecoderBackend::Auto, MANIFOLD_CHUNK)?;
    let mut p: Vec<f32> = Vec::with_capacity(z.nrows() * w * w);
    for rows in flat.chunks(MANIFOLD_CHUNK * l) {
        let zt = Tensor::from_slice(rows, (rows.len() / l, l), model.device())
            .ctx("latents to decode")?;
        let logits = model.decode(&zt, fused.as_ref())?;
        let probs = candle_nn::ops::sigmoid(&logits).ctx("sigmoid")?;
        p.extend(
            probs
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .ctx("decoded patches")?,
        );
    }
    Array3::from_shape_vec((z.nrows(), w, w), p).map_err(|e| ModelError::InvalidParameter {
        name: "z",
        value: e.to_string(),
        rule: "decoded patches must fill (B, window, window)",
    })
}

/// A 2-D histogram of two latent maps: the encoded distribution.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram2d {
    /// Counts, `(bins, bins)`: row = bin of the first latent, column = bin of the second.
    pub counts: Array2<u32>,
    /// Range `(lo, hi)` of the first latent.
    pub range_a: (f32, f32),
    /// Range `(lo, hi)` of the second latent.
    pub range_b: (f32, f32),
}

/// Histogram of latent channels `a` and `b` of `maps.mean` over `bins x bins`
/// equal bins spanning each channel's min..max (the maximum falls in the last
/// bin, as `numpy.histogram2d`).
///
/// # Errors
/// [`ModelError::InvalidParameter`] when `bins == 0` or a channel is out of range.
pub fn latent_histogram(maps: &LatentMaps, a: usize, b: usize, bins: usize) -> Result<Histogram2d> {
    let l = maps.mean.dim().2;
    if bins == 0 {
        return Err(ModelError::InvalidParameter {
            name: "bins",
            value: "0".into(),
            rule: "must be at least 1",
        });
    }
    if a >= l || b >= l {
        return Err(ModelError::InvalidParameter {
            name: "latent",
            value: format!("{a}, {b}"),
            rule: "latent channel out of range",
        });
    }
    let range = |c: usize| {
        maps.mean
            .index_axis(ndarray::Axis(2), c)
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    };
    let (ra, rb) = (range(a), range(b));
    let bin = |v: f32, (lo, hi): (f32, f32)| -> usize {
        if hi <= lo {
            return 0;
        }
        (((v - lo) / (hi - lo) * bins as f32) as usize).min(bins - 1)
    };
    let mut counts = Array2::<u32>::zeros((bins, bins));
    let ma = maps.mean.index_axis(ndarray::Axis(2), a);
    let mb = maps.mean.index_axis(ndarray::Axis(2), b);
    for (&va, &vb) in ma.iter().zip(mb.iter()) {
        counts[[bin(va, ra), bin(vb, rb)]] += 1;
    }
    Ok(Histogram2d {
        counts,
        range_a: ra,
        range_b: rb,
    })
}

/// Saves a trained model to `dir`: [`MODEL_FILE`] (parameters, safetensors)
/// and [`MODEL_JSON`] ([`ModelDescription`]: its [`ModelConfig`](phyvae_run::config::ModelConfig) plus the
/// patch settings `data`, so that another image is cut the same way).
/// Both files are written atomically.
///
/// # Errors
/// [`ModelError::Io`] / [`ModelError::Framework`] when writing fails.
pub fn save_model(model: &Vae, dir: &Path, data: &DataConfig) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
        action: "creating",
        path: dir.to_path_buf(),
        source,
    })?;
    model.store().save(&dir.join(MODEL_FILE))?;
    // The `ModelDescription` fields, with the patch settings' keys in sorted
    // order (as model.json has always had them).
    #[derive(serde::Serialize)]
    struct Written<'a> {
        model: &'a phyvae_run::config::ModelConfig,
        data: serde_json::Value,
        weights_sha256: String,
    }
    let bad = |e: serde_json::Error| ModelError::BadFile {
        path: dir.join(MODEL_JSON),
        reason: e.to_string(),
    };
    let weights = dir.join(MODEL_FILE);
    let bytes = std::fs::read(&weights).map_err(|source| ModelError::Io {
        action: "reading",
        path: weights.clone(),
        source,
    })?;
    let desc = Written {
        model: model.config(),
        data: serde_json::to_value(data).map_err(bad)?,
        weights_sha256: sha256_hex(&bytes),
    };
    let json = serde_json::to_vec_pretty(&desc).map_err(|e| ModelError::BadFile {
        path: dir.join(MODEL_JSON),
        reason: e.to_string(),
    })?;
    Ok(write_bytes_atomic(&dir.join(MODEL_JSON), &json)?)
}

/// SHA-256 of `bytes`, in lower-case hex.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            use std::fmt::Write;
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Loads a model saved by [`save_model`] onto `device`; returns it with the
/// patch settings it was saved with.
///
/// # Errors
/// [`ModelError::Io`] / [`ModelError::BadFile`] when a file is missing or
/// malformed, when `model.safetensors` does not match the SHA-256 recorded in
/// `model.json`, or when a weight is NaN or infinite; [`ModelError::ShapeMismatch`] when parameters do not fit the
/// configuration.
pub fn load_model(dir: &Path, device: &Device) -> Result<(Vae, DataConfig)> {
    let jpath = dir.join(MODEL_JSON);
    let text = std::fs::read(&jpath).map_err(|source| ModelError::Io {
        action: "reading",
        path: jpath.clone(),
        source,
    })?;
    let desc: ModelDescription =
        serde_json::from_slice(&text).map_err(|e| ModelError::BadFile {
            path: jpath.clone(),
            reason: format!("not a phyvae model description: {e}"),
        })?;
    let wpath = dir.join(MODEL_FILE);
    let bytes = std::fs::read(&wpath).map_err(|source| ModelError::Io {
        action: "reading",
        path: wpath.clone(),
        source,
    })?;
    let broken = |reason: String| ModelError::BadFile {
        path: wpath.clone(),
        reason,
    };
    if let Some(want) = &desc.weights_sha256
        && *want != sha256_hex(&bytes)
    {
        return Err(broken(format!(
            "does not match the SHA-256 recorded in {MODEL_JSON} ({want}): the file was \
             changed or damaged since the model was saved"
        )));
    }
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| broken(format!("not a readable safetensors file: {e}")))?;
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let mut store = ParamStore::new(device);
    for name in names {
        let t = &tensors[name];
        let finite = t
            .flatten_all()
            .and_then(|v| v.to_dtype(candle_core::DType::F32))
            .and_then(|v| v.to_vec1::<f32>())
            .ctx("model weights")?
            .iter()
            .all(|v| v.is_finite());
        if !finite {
            return Err(broken(format!(
                "weight `{name}` holds NaN or infinite values: the model is broken, train it again"
            )));
        }
        store.insert(name, t.clone())?;
    }
    let vae = Vae::from_store(&desc.model, store)?;
    Ok((vae, desc.data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use phyvae_run::config::{ModelConfig, ModelKind};
    use rand::SeedableRng;

    #[test]
    fn normal_quantile_known_values() {
        // Phi^-1(0.95) = 1.6448536269514722, Phi^-1(0.975) = 1.959963984540054,
        // Phi^-1(0.01) = -2.3263478740408408 (standard tables / scipy.stats.norm.ppf).
        assert!((normal_quantile(0.95) - 1.644_853_626_951_472_2).abs() < 1e-8);
        assert!((normal_quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-8);
        assert!((normal_quantile(0.01) + 2.326_347_874_040_840_8).abs() < 1e-8);
        assert_eq!(normal_quantile(0.5), 0.0);
        assert!((normal_quantile(0.05) + normal_quantile(0.95)).abs() < 1e-12);
    }

    #[test]
    fn histogram_counts_every_patch_once() {
        let mut mean = Array3::<f32>::zeros((2, 2, 2));
        // channel 0: 0, 1, 2, 3; channel 1: 3, 2, 1, 0
        for (k, v) in [0.0f32, 1.0, 2.0, 3.0].iter().enumerate() {
            mean[[k / 2, k % 2, 0]] = *v;
            mean[[k / 2, k % 2, 1]] = 3.0 - v;
        }
        let maps = LatentMaps {
            sd: mean.clone(),
            mean,
        };
        let h = latent_histogram(&maps, 0, 1, 2).unwrap();
        // bins [0, 1.5), [1.5, 3]: (0,3) -> (0,1), (1,2) -> (0,1), (2,1) -> (1,0), (3,0) -> (1,0)
        assert_eq!(h.counts, ndarray::arr2(&[[0, 2], [2, 0]]));
        assert_eq!(h.range_a, (0.0, 3.0));
        assert!(latent_histogram(&maps, 0, 2, 2).is_err());
        assert!(latent_histogram(&maps, 0, 1, 0).is_err());
    }

    #[test]
    fn codes_between_lattice_points_are_the_neighbours_codes_weighted() {
        use phyvae_data::patches::{Levelling, PatchGrid, Scaling};
        let (cfg, m) = tiny_model(8, 1);
        // Fringes of period 4 along x with a slow ramp, so that windows at
        // different lattice points differ; maxima at c = 0 (mod 4).
        let tau = std::f32::consts::TAU;
        let img = ndarray::Array2::from_shape_fn((8, 24), |(_, c)| {
            (tau * c as f32 / 4.0).cos() + 0.05 * c as f32
        });
        let grid = PatchGrid::new(8, 24, 8, 1).unwrap();
        let plain =
            PatchSet::new(img.view(), grid, Scaling::GlobalMinMax, Levelling::None).unwrap();
        // Unregistered: the plain encoding.
        let a = encode_patches(&m, &plain, 7).unwrap();
        let b = encode_between_lattice_points(&m, &plain, 7, &mut |_, _| {}).unwrap();
        assert_eq!(a, b);
        let mut set = plain.clone();
        set.register(&[[0.0, 0.25]]).unwrap();
        let between = encode_between_lattice_points(&m, &set, 7, &mut |_, _| {}).unwrap();
        // Patch 1 (c = 1) lies a quarter of the way from the window at c = 0
        // to the one at c = 4: the plain codes of patches 0 and 4.
        for j in 0..cfg.n_total() {
            let want = 0.75 * a.mean[[0, 0, j]] + 0.25 * a.mean[[0, 4, j]];
            assert!((between.mean[[0, 1, j]] - want).abs() < 1e-5, "latent {j}");
            // Patch 4 sits on a lattice point: its own code.
            assert!((between.mean[[0, 4, j]] - a.mean[[0, 4, j]]).abs() < 1e-6);
        }
    }

    /// An untrained sh-VAE of hidden width 8 on `window`-px patches,
    /// initialised from `seed`.
    fn tiny_model(window: usize, seed: u64) -> (ModelConfig, Vae) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let cfg = ModelConfig {
            kind: ModelKind::Shift,
            window,
            hidden: 8,
            ..ModelConfig::default()
        };
        let m = Vae::new(&cfg, &Device::Cpu, &mut rng).unwrap();
        (cfg, m)
    }

    #[test]
    fn manifold_has_d_by_d_patches_in_unit_range() {
        let (_, m) = tiny_model(4, 0);
        let img = manifold2d(&m, 3).unwrap();
        assert_eq!(img.dim(), (12, 12));
        assert!(img.iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert!(manifold2d(&m, 1).is_err());
    }

    /// A small sh-VAE drawn from `seed`, saved in a fresh folder.
    fn saved_model(seed: u64) -> (tempfile::TempDir, Vae, DataConfig) {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let cfg = ModelConfig {
            window: 4,
            hidden: 8,
            ..ModelConfig::default()
        };
        let m = Vae::new(&cfg, &Device::Cpu, &mut rng).unwrap();
        let data = DataConfig {
            window: 4,
            step: 2,
            ..DataConfig::default()
        };
        save_model(&m, dir.path(), &data).unwrap();
        (dir, m, data)
    }

    #[test]
    fn save_and_load_give_the_same_encoder() {
        let (dir, m, data) = saved_model(4);
        let (back, d2) = load_model(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(d2, data);
        assert_eq!(back.config(), m.config());
        let x = Tensor::full(0.3f32, (2, 16), &Device::Cpu).unwrap();
        let a: Vec<Vec<f32>> = m.encode(&x).unwrap().0.to_vec2().unwrap();
        let b: Vec<Vec<f32>> = back.encode(&x).unwrap().0.to_vec2().unwrap();
        assert_eq!(a, b);
        std::fs::write(dir.path().join(MODEL_JSON), b"{}").unwrap();
        assert!(matches!(
            load_model(dir.path(), &Device::Cpu),
            Err(ModelError::BadFile { .. })
        ));
    }

    #[test]
    fn damaged_or_non_finite_weights_are_refused_naming_the_file() {
        let (dir, _, _) = saved_model(5);
        let jtext = std::fs::read_to_string(dir.path().join(MODEL_JSON)).unwrap();
        let wpath = dir.path().join(MODEL_FILE);
        let good = std::fs::read(&wpath).unwrap();
        // The recorded checksum is the SHA-256 of the file as written.
        assert!(jtext.contains(&sha256_hex(&good)), "{jtext}");
        // One flipped byte in the last weight's data.
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x01;
        std::fs::write(&wpath, &bad).unwrap();
        let err = load_model(dir.path(), &Device::Cpu).unwrap_err();
        assert!(
            matches!(err, ModelError::BadFile { ref path, .. } if *path == wpath),
            "{err}"
        );
        assert!(err.to_string().contains("SHA-256"), "{err}");
        // Non-finite weights in a model saved without a checksum.
        let mut tensors = candle_core::safetensors::load_buffer(&good, &Device::Cpu).unwrap();
        let name = tensors.keys().min().unwrap().clone();
        let shape = tensors[&name].shape().clone();
        tensors.insert(
            name.clone(),
            Tensor::full(f32::NAN, shape, &Device::Cpu).unwrap(),
        );
        candle_core::safetensors::save(&tensors, &wpath).unwrap();
        let mut desc: serde_json::Value = serde_json::from_str(&jtext).unwrap();
        desc.as_object_mut().unwrap().remove("weights_sha256");
        std::fs::write(dir.path().join(MODEL_JSON), desc.to_string()).unwrap();
        let err = load_model(dir.path(), &Device::Cpu).unwrap_err();
        assert!(
            err.to_string().contains(&format!("`{name}` holds NaN")),
            "{err}"
        );
        assert!(err.to_string().contains("model.safetensors"), "{err}");
    }

    #[test]
    fn sha256_of_a_known_input() {
        // FIPS 180-2 test vector: SHA-256("abc").
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
