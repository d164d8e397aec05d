//! The native module of the `phyvae` Python package (`phyvae._native`).
//!
//! A thin layer: training and encoding run the `phyvae` command's own code
//! (`phyvae_cli`), from a command line built of the Python keywords and parsed
//! by the same definitions (one source of truth for names, defaults and
//! checks); the other functions call the library crates as the commands do.
//! Errors map to Python exceptions by the command's exit codes
//! ([`phyvae_cli::exit_code`]): 3 an unreadable input file (`FormatError`, an
//! `OSError`; `FileNotFoundError`/`PermissionError` when the system said so),
//! 4 an invalid setting or input (`ValueError`), 5 an output not written
//! (`OSError`), 130 interrupted (`KeyboardInterrupt`), else `RuntimeError`.
//! The GIL is released while the library works.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyArray3, PyReadonlyArray2};
use phyvae_cli::cli::{Cli, Command};
use phyvae_cli::progress::{Hooks, Progress};
use phyvae_data::{Image, PixelSize};
use phyvae_model::train::TrainEvent;
use pyo3::create_exception;
use pyo3::exceptions::{
    PyFileNotFoundError, PyKeyboardInterrupt, PyOSError, PyPermissionError, PyRuntimeError,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

create_exception!(
    _native,
    FormatError,
    PyOSError,
    "A file cannot be read as an image: an unknown or malformed format, or an \
     image of a kind phyvae refuses (a spectrum, complex data). A subclass of \
     OSError (the `phyvae` command's exit code 3)."
);

/// The Python exception of a library error (see the module documentation).
fn to_py(err: &anyhow::Error) -> PyErr {
    let text = phyvae_cli::message(err);
    match phyvae_cli::exit_code(err) {
        3 => {
            for cause in err.chain() {
                if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                    match io.kind() {
                        std::io::ErrorKind::NotFound => return PyFileNotFoundError::new_err(text),
                        std::io::ErrorKind::PermissionDenied => {
                            return PyPermissionError::new_err(text);
                        }
                        _ => {}
                    }
                }
            }
            FormatError::new_err(text)
        }
        4 => PyValueError::new_err(text),
        5 => PyOSError::new_err(text),
        130 => PyKeyboardInterrupt::new_err(text),
        _ => PyRuntimeError::new_err(text),
    }
}

/// `to_py` for any library error type.
fn py_err<E: Into<anyhow::Error>>(e: E) -> PyErr {
    to_py(&e.into())
}

/// Parses a `phyvae` command line; a malformed one is a `ValueError` with
/// clap's message (its usage lines left out).
fn parse(argv: &[String]) -> PyResult<Cli> {
    Cli::try_parse_from(argv).map_err(|e| {
        let text = e.render().to_string();
        let first = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid settings")
            .trim_start_matches("error: ")
            .to_owned();
        PyValueError::new_err(first)
    })
}

/// An image from Python: its pixels (a float32 array, or a float64 one
/// rounded to float32 as the readers do, refusing a value beyond the float32
/// range) and calibration; `name` stands for the file in messages.
fn image_of(
    pixels: Option<&Bound<'_, PyAny>>,
    pixel_size: Option<(f64, f64, String)>,
    name: &str,
) -> PyResult<Option<Image>> {
    let Some(obj) = pixels else {
        return Ok(None);
    };
    let pixels = if let Ok(a) = obj.extract::<PyReadonlyArray2<'_, f32>>() {
        a.as_array().to_owned()
    } else {
        let a: PyReadonlyArray2<'_, f64> = obj.extract()?;
        let v = a.as_array();
        let narrow = phyvae_data::io::narrow_pixels(Path::new(name), v.iter().copied(), v.ncols())
            .map_err(py_err)?;
        Array2::from_shape_vec(v.dim(), narrow).map_err(|e| PyValueError::new_err(e.to_string()))?
    };
    Ok(Some(Image {
        pixels,
        pixel_size: pixel_size.map(|(x, y, unit)| PixelSize { x, y, unit }),
        source: None,
    }))
}

/// Where a training stands, shared between the training thread and the
/// Python thread that shows it.
#[derive(Default)]
struct Shared {
    epoch: AtomicUsize,
    epochs: AtomicUsize,
    batch: AtomicUsize,
    batches: AtomicUsize,
    loss: AtomicU32,
    trained: AtomicBool,
    finished_epochs: AtomicU64,
}

impl Shared {
    fn on_event(&self, e: &TrainEvent<'_>) {
        match e {
            TrainEvent::EpochStarted {
                epoch,
                epochs,
                batches,
            } => {
                self.epoch.store(*epoch, Ordering::Relaxed);
                self.epochs.store(*epochs, Ordering::Relaxed);
                self.batches.store(*batches, Ordering::Relaxed);
                self.batch.store(0, Ordering::Relaxed);
            }
            TrainEvent::BatchDone { batch, loss, .. } => {
                self.batch.store(batch + 1, Ordering::Relaxed);
                self.loss.store(loss.to_bits(), Ordering::Relaxed);
            }
            TrainEvent::EpochFinished(r) => {
                self.finished_epochs
                    .store(r.epoch as u64, Ordering::Relaxed);
                if r.epoch >= self.epochs.load(Ordering::Relaxed) {
                    self.trained.store(true, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }
}

/// Runs `work` on a thread of its own while this thread, without the GIL
/// except every 100 ms, calls `on_progress(epoch, epochs, batch, batches,
/// loss, trained)` and checks for signals. On Ctrl-C (or any exception of a
/// signal handler, or of `on_progress`) it sets `stop`, waits for the work
/// to stop (training stops after the current batch and keeps the last
/// checkpoint) and raises that exception, with the library's explanation
/// added to a KeyboardInterrupt.
fn drive<F>(
    py: Python<'_>,
    stop: &Arc<AtomicBool>,
    shared: &Arc<Shared>,
    on_progress: Option<&Bound<'_, PyAny>>,
    work: F,
) -> PyResult<()>
where
    F: FnOnce() -> anyhow::Result<()> + Send + 'static,
{
    let handle = std::thread::Builder::new()
        .name("phyvae-run".into())
        .spawn(work)
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the run's thread: {e}")))?;
    let mut raised: Option<PyErr> = None;
    loop {
        let done = py.detach(|| {
            let until = Instant::now() + Duration::from_millis(100);
            while Instant::now() < until {
                if handle.is_finished() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            handle.is_finished()
        });
        if raised.is_none() {
            if let Err(e) = py.check_signals() {
                stop.store(true, Ordering::SeqCst);
                raised = Some(e);
            } else if let Some(cb) = on_progress {
                let s = shared.as_ref();
                let args = (
                    s.epoch.load(Ordering::Relaxed),
                    s.epochs.load(Ordering::Relaxed),
                    s.batch.load(Ordering::Relaxed),
                    s.batches.load(Ordering::Relaxed),
                    f32::from_bits(s.loss.load(Ordering::Relaxed)),
                    s.trained.load(Ordering::Relaxed) || done,
                );
                if let Err(e) = cb.call1(args) {
                    stop.store(true, Ordering::SeqCst);
                    raised = Some(e);
                }
            }
        }
        if done {
            break;
        }
    }
    let outcome = py
        .detach(|| handle.join())
        .map_err(|_| PyRuntimeError::new_err("the run's thread panicked"))?;
    match (raised, outcome) {
        (Some(e), Err(err)) if e.is_instance_of::<PyKeyboardInterrupt>(py) => {
            let text = phyvae_cli::message(&err);
            Err(PyKeyboardInterrupt::new_err(text))
        }
        (Some(e), _) => Err(e),
        (None, Err(err)) => Err(to_py(&err)),
        (None, Ok(())) => Ok(()),
    }
}

/// Trains as `phyvae train` does. `argv`: the full command line
/// (`phyvae train IMAGE --out DIR ...`), recorded in the run; `pixels`: the
/// image when it comes from Python (the command line's IMAGE then only names
/// it); `on_progress`: called about every 100 ms (see `drive`).
#[pyfunction]
#[pyo3(signature = (argv, pixels=None, pixel_size=None, on_progress=None))]
fn train(
    py: Python<'_>,
    argv: Vec<String>,
    pixels: Option<Bound<'_, PyAny>>,
    pixel_size: Option<(f64, f64, String)>,
    on_progress: Option<Bound<'_, PyAny>>,
) -> PyResult<()> {
    let cli = parse(&argv)?;
    let Command::Train(args) = cli.command else {
        return Err(PyValueError::new_err("not a `phyvae train` command line"));
    };
    let name = args.input.image.display().to_string();
    let img = image_of(pixels.as_ref(), pixel_size, &name)?;
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared::default());
    let (stop2, shared2) = (Arc::clone(&stop), Arc::clone(&shared));
    drive(py, &stop, &shared, on_progress.as_ref(), move || {
        let t0 = Instant::now();
        let hooks = Hooks {
            stop: stop2,
            command: argv,
            on_event: Box::new(move |e| shared2.on_event(e)),
        };
        let progress = Progress::with_hooks(true, &hooks);
        let img = match img {
            Some(i) => i,
            None => phyvae_cli::input::read_input(&args.input, progress)?,
        };
        phyvae_cli::commands::train::train_image(&args, img, t0, progress)
    })
}

/// Encodes as `phyvae encode` does (`argv`: `phyvae encode IMAGE --model
/// DIR --out DIR2`).
#[pyfunction]
#[pyo3(signature = (argv, pixels=None, pixel_size=None))]
fn encode(
    py: Python<'_>,
    argv: Vec<String>,
    pixels: Option<Bound<'_, PyAny>>,
    pixel_size: Option<(f64, f64, String)>,
) -> PyResult<()> {
    let cli = parse(&argv)?;
    let Command::Encode(args) = cli.command else {
        return Err(PyValueError::new_err("not a `phyvae encode` command line"));
    };
    let name = args.input.image.display().to_string();
    let img = image_of(pixels.as_ref(), pixel_size, &name)?;
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(Shared::default());
    let stop2 = Arc::clone(&stop);
    drive(py, &stop, &shared, None, move || {
        let t0 = Instant::now();
        let hooks = Hooks {
            stop: stop2,
            command: argv,
            on_event: Box::new(|_| {}),
        };
        let progress = Progress::with_hooks(true, &hooks);
        let img = match img {
            Some(i) => i,
            None => phyvae_cli::input::read_input(&args.input, progress)?,
        };
        phyvae_cli::commands::train::encode_image(&args, img, t0, progress)
    })
}

/// Writes the HTML report of one run folder, or of several side by side to
/// `out`; returns the page's path.
#[pyfunction]
#[pyo3(signature = (runs, out=None))]
fn report(py: Python<'_>, runs: Vec<PathBuf>, out: Option<PathBuf>) -> PyResult<PathBuf> {
    py.detach(|| {
        phyvae_cli::commands::report::write_report(&runs, out.as_deref(), Progress::new(true))
    })
    .map_err(|e| to_py(&e))
}

/// One setting of `phyvae train`: `(name, help, default, is_flag, choices)`.
type Setting = (String, String, Option<String>, bool, Vec<String>);

/// Every setting of `phyvae train`, from the command's definitions;
/// `default` is None where the preset (or `config`) decides.
#[pyfunction]
fn train_settings() -> Vec<Setting> {
    let cmd = Cli::command();
    let Some(train) = cmd.find_subcommand("train") else {
        return Vec::new();
    };
    train
        .get_arguments()
        .filter(|a| !a.is_positional() && a.get_id() != "help")
        .map(|a| {
            let help = a
                .get_long_help()
                .or_else(|| a.get_help())
                .map(ToString::to_string)
                .unwrap_or_default();
            let default = a
                .get_default_values()
                .first()
                .map(|v| v.to_string_lossy().into_owned());
            let is_flag = !a.get_action().takes_values();
            let choices = a
                .get_possible_values()
                .iter()
                .filter(|_| !is_flag)
                .map(|v| v.get_name().to_owned())
                .collect();
            (a.get_id().to_string(), help, default, is_flag, choices)
        })
        .collect()
}

/// Reads an image as the commands do: `(pixels, pixel_size, source)`, with
/// `pixel_size` `(x, y, unit)` when the file records one.
#[pyfunction]
#[pyo3(signature = (path, frame=None, dataset=None))]
#[allow(clippy::type_complexity)]
fn load<'py>(
    py: Python<'py>,
    path: PathBuf,
    frame: Option<usize>,
    dataset: Option<String>,
) -> PyResult<(Bound<'py, PyArray2<f32>>, Option<(f64, f64, String)>)> {
    let img = py
        .detach(|| phyvae_cli::input::image_in(&path, frame, dataset.as_deref()))
        .map_err(|e| to_py(&e))?;
    let ps = img.pixel_size.map(|p| (p.x, p.y, p.unit));
    Ok((img.pixels.into_pyarray(py), ps))
}

/// What `phyvae info FILE` prints, as JSON text.
#[pyfunction]
fn info(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    let v = py
        .detach(|| phyvae_cli::commands::simple::info_value(&path))
        .map_err(|e| to_py(&e))?;
    Ok(v.to_string())
}

/// A run folder's `config.toml` as JSON text.
#[pyfunction]
fn read_config(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    let c = py
        .detach(|| phyvae_cli::settings::read_config(&path))
        .map_err(|e| to_py(&e))?;
    serde_json::to_string(&c).map_err(py_err)
}

/// The file names of a run folder (`phyvae_run::files`).
#[pyfunction]
fn run_files(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    use phyvae_run::files as f;
    let d = PyDict::new(py);
    for (k, v) in [
        ("config", f::CONFIG),
        ("metrics", f::METRICS),
        ("history", f::HISTORY),
        ("latents", f::LATENTS),
        ("latents_sd", f::LATENTS_SD),
        ("manifold", f::MANIFOLD),
        ("manifold_png", f::MANIFOLD_PNG),
        ("input_png", f::INPUT_PNG),
        ("segmentation_dir", f::SEGMENTATION_DIR),
        ("denoised", f::DENOISED),
        ("result_dir", f::RESULT_DIR),
        ("result_labels", f::RESULT_LABELS),
        ("checkpoint_dir", f::CHECKPOINT_DIR),
        ("report", f::REPORT),
        ("figures_dir", f::FIGURES_DIR),
        ("model", f::MODEL),
    ] {
        d.set_item(k, v)?;
    }
    Ok(d)
}

/// Loads the model of a run folder (on the CPU).
fn model_of(dir: &Path) -> anyhow::Result<phyvae_model::vae::Vae> {
    let (model, _) = phyvae_model::infer::load_model(dir, &phyvae_model::Device::Cpu)?;
    Ok(model)
}

/// The manifold of a run's model: an `n x n` grid of the first two content
/// latents at normal quantiles, decoded and tiled (`manifold.npy`).
#[pyfunction]
fn manifold(py: Python<'_>, run: PathBuf, n: usize) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let m = py
        .detach(|| -> anyhow::Result<Array2<f32>> {
            Ok(phyvae_model::infer::manifold2d(&model_of(&run)?, n)?)
        })
        .map_err(|e| to_py(&e))?;
    Ok(m.into_pyarray(py))
}

/// Decodes latents `z` `(B, L)` with a run's model: patches `(B, w, w)`.
#[pyfunction]
fn decode<'py>(
    py: Python<'py>,
    run: PathBuf,
    z: PyReadonlyArray2<'py, f32>,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let z = z.as_array();
    let p = py
        .detach(|| -> anyhow::Result<_> {
            Ok(phyvae_model::infer::decode_latents(&model_of(&run)?, z)?)
        })
        .map_err(|e| to_py(&e))?;
    Ok(p.into_pyarray(py))
}

/// The paper's segmentation pipeline on one map (computed in f32, as
/// `phyvae segment`; `lowpass`: the Gaussian low-pass in cells, 0 for none):
/// a dict with `denoised`, every label map by name, `flat` and `skipped`.
#[pyfunction]
#[pyo3(signature = (map, sigma_color=phyvae_imaging::pipeline::DEFAULT_SIGMA_COLOR, lowpass=0.0))]
fn segment<'py>(
    py: Python<'py>,
    map: PyReadonlyArray2<'py, f32>,
    sigma_color: f64,
    lowpass: f64,
) -> PyResult<Bound<'py, PyDict>> {
    use phyvae_imaging::pipeline::{VisualizeParams, segment_map};
    let params = VisualizeParams::new()
        .sigma_color(sigma_color)
        .lowpass_sigma(lowpass)
        .build()
        .map_err(py_err)?;
    let m = map.as_array();
    let seg = py.detach(|| segment_map(m, &params)).map_err(py_err)?;
    let d = PyDict::new(py);
    d.set_item("denoised", seg.denoised.clone().into_pyarray(py))?;
    for (name, labels) in seg.named_labels() {
        d.set_item(name, labels.clone().into_pyarray(py))?;
    }
    d.set_item("flat", seg.flat)?;
    let skipped = PyDict::new(py);
    for (k, why) in &seg.skipped {
        skipped.set_item(format!("multiotsu{k}"), why)?;
    }
    d.set_item("skipped", skipped)?;
    Ok(d)
}

/// Bilateral parameters as `phyvae filter bilateral` takes them.
fn bilateral_params(
    sigma_color: Option<f64>,
    sigma_spatial: f64,
    mode: &str,
) -> PyResult<phyvae_imaging::filters::BilateralParams> {
    use phyvae_imaging::filters::{BilateralMode, BilateralParams, SigmaColor};
    let mode = match mode {
        "skimage" => BilateralMode::Skimage,
        "gaussian" => BilateralMode::Gaussian,
        other => {
            return Err(PyValueError::new_err(format!(
                "mode must be `skimage` or `gaussian`, got `{other}`"
            )));
        }
    };
    BilateralParams::new()
        .sigma_color(sigma_color.map_or(SigmaColor::ImageStd, SigmaColor::Value))
        .sigma_spatial(sigma_spatial)
        .mode(mode)
        .build()
        .map_err(py_err)
}

/// Bilateral denoising of a float32 image.
#[pyfunction]
fn bilateral_f32<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f32>,
    sigma_color: Option<f64>,
    sigma_spatial: f64,
    mode: &str,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let p = bilateral_params(sigma_color, sigma_spatial, mode)?;
    let v = x.as_array();
    let out = py
        .detach(|| phyvae_imaging::filters::denoise_bilateral(v, &p))
        .map_err(py_err)?;
    Ok(out.into_pyarray(py))
}

/// Bilateral denoising of a float64 image.
#[pyfunction]
fn bilateral_f64<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    sigma_color: Option<f64>,
    sigma_spatial: f64,
    mode: &str,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let p = bilateral_params(sigma_color, sigma_spatial, mode)?;
    let v = x.as_array();
    let out = py
        .detach(|| phyvae_imaging::filters::denoise_bilateral(v, &p))
        .map_err(py_err)?;
    Ok(out.into_pyarray(py))
}

/// Scharr edge magnitude of a float32 image.
#[pyfunction]
fn scharr_f32<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f32>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let v = x.as_array();
    let out = py
        .detach(|| phyvae_imaging::filters::scharr(v))
        .map_err(py_err)?;
    Ok(out.into_pyarray(py))
}

/// Scharr edge magnitude of a float64 image.
#[pyfunction]
fn scharr_f64<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let v = x.as_array();
    let out = py
        .detach(|| phyvae_imaging::filters::scharr(v))
        .map_err(py_err)?;
    Ok(out.into_pyarray(py))
}

/// Otsu's threshold of a float32 image.
#[pyfunction]
fn otsu_f32(x: PyReadonlyArray2<'_, f32>) -> PyResult<f64> {
    Ok(f64::from(
        phyvae_imaging::threshold::otsu(x.as_array()).map_err(py_err)?,
    ))
}

/// Otsu's threshold of a float64 image.
#[pyfunction]
fn otsu_f64(x: PyReadonlyArray2<'_, f64>) -> PyResult<f64> {
    phyvae_imaging::threshold::otsu(x.as_array()).map_err(py_err)
}

/// Multi-Otsu thresholds of a float32 image.
#[pyfunction]
fn multiotsu_f32(x: PyReadonlyArray2<'_, f32>, classes: usize) -> PyResult<Vec<f64>> {
    Ok(phyvae_imaging::threshold::multiotsu(x.as_array(), classes)
        .map_err(py_err)?
        .into_iter()
        .map(f64::from)
        .collect())
}

/// Multi-Otsu thresholds of a float64 image.
#[pyfunction]
fn multiotsu_f64(x: PyReadonlyArray2<'_, f64>, classes: usize) -> PyResult<Vec<f64>> {
    phyvae_imaging::threshold::multiotsu(x.as_array(), classes).map_err(py_err)
}

/// SL1 of a batch of latent means (B x C, B a perfect square).
#[pyfunction]
fn sl1(z: PyReadonlyArray2<'_, f32>, columns: Vec<usize>) -> PyResult<f32> {
    phyvae_imaging::physics::sl1_batch(z.as_array(), &columns).map_err(py_err)
}

/// SL2 of a batch of latent means (B x C, B a perfect square).
#[pyfunction]
fn sl2(z: PyReadonlyArray2<'_, f32>, columns: Vec<usize>, alpha: usize) -> PyResult<f32> {
    phyvae_imaging::physics::sl2_batch(z.as_array(), &columns, alpha).map_err(py_err)
}

/// ARI, accuracy and boundary F1 of `labels` against `truth`.
#[pyfunction]
fn score(
    labels: PyReadonlyArray2<'_, i32>,
    truth: PyReadonlyArray2<'_, i32>,
    tolerance: usize,
) -> PyResult<(f64, f64, f64)> {
    let s = phyvae_imaging::metrics::score(labels.as_array(), truth.as_array(), tolerance)
        .map_err(py_err)?;
    Ok((s.ari, s.accuracy, s.boundary_f1))
}

/// A synthetic image and its truth: `kind` `two_phase` or `domains`.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn synth<'py>(
    py: Python<'py>,
    kind: &str,
    size: usize,
    seed: u64,
) -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<i32>>)> {
    use phyvae_data::synth::{self as s, DomainsParams, TwoPhaseParams};
    let out = match kind {
        "two_phase" => s::two_phase(
            &TwoPhaseParams::new()
                .size(size)
                .seed(seed)
                .build()
                .map_err(py_err)?,
        ),
        "domains" => s::domains(
            &DomainsParams::new()
                .size(size)
                .seed(seed)
                .build()
                .map_err(py_err)?,
        ),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown synthetic image `{other}`"
            )));
        }
    }
    .map_err(py_err)?;
    Ok((
        out.image.pixels.into_pyarray(py),
        out.truth.into_pyarray(py),
    ))
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("FormatError", m.py().get_type::<FormatError>())?;
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    m.add("SIGMA_COLOR", phyvae_imaging::pipeline::DEFAULT_SIGMA_COLOR)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(encode, m)?)?;
    m.add_function(wrap_pyfunction!(report, m)?)?;
    m.add_function(wrap_pyfunction!(train_settings, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(info, m)?)?;
    m.add_function(wrap_pyfunction!(read_config, m)?)?;
    m.add_function(wrap_pyfunction!(run_files, m)?)?;
    m.add_function(wrap_pyfunction!(manifold, m)?)?;
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add_function(wrap_pyfunction!(segment, m)?)?;
    m.add_function(wrap_pyfunction!(bilateral_f32, m)?)?;
    m.add_function(wrap_pyfunction!(bilateral_f64, m)?)?;
    m.add_function(wrap_pyfunction!(scharr_f32, m)?)?;
    m.add_function(wrap_pyfunction!(scharr_f64, m)?)?;
    m.add_function(wrap_pyfunction!(otsu_f32, m)?)?;
    m.add_function(wrap_pyfunction!(otsu_f64, m)?)?;
    m.add_function(wrap_pyfunction!(multiotsu_f32, m)?)?;
    m.add_function(wrap_pyfunction!(multiotsu_f64, m)?)?;
    m.add_function(wrap_pyfunction!(sl1, m)?)?;
    m.add_function(wrap_pyfunction!(sl2, m)?)?;
    m.add_function(wrap_pyfunction!(score, m)?)?;
    m.add_function(wrap_pyfunction!(synth, m)?)?;
    Ok(())
}
