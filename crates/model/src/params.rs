//! Named, trainable parameters: a deterministic store of candle [`Var`]s that
//! every model part registers into, that the optimiser walks in name order, and
//! that is saved to and loaded from safetensors.
//!
//! candle-nn's `VarMap` is not used because its initialisers draw from an
//! unseeded generator; here every initial value comes from the caller's seeded
//! generator, so the same seed gives the same model.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use phyvae_data::atomic::write_atomic_with;
use rand::{Rng, RngExt};

use crate::error::FrameworkContext;
use crate::{ModelError, Result};

/// Trainable parameters by name (sorted), all `f32` on one device.
#[derive(Debug, Clone)]
pub struct ParamStore {
    vars: BTreeMap<String, Var>,
    device: Device,
}

impl ParamStore {
    /// An empty store on `device`.
    #[must_use]
    pub fn new(device: &Device) -> Self {
        Self {
            vars: BTreeMap::new(),
            device: device.clone(),
        }
    }

    /// The device every parameter lives on.
    #[must_use]
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Registers `name` with values drawn uniformly from `[-bound, bound)` by
    /// `rng` (PyTorch `nn.Linear` uses `bound = 1/sqrt(fan_in)` for weight and
    /// bias) and returns it. Draws are made in row-major order.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] if `name` is taken or `bound` is not a
    /// positive finite number; [`ModelError::Framework`] if the tensor cannot be made.
    pub fn uniform<R: Rng + ?Sized>(
        &mut self,
        name: &str,
        shape: &[usize],
        bound: f32,
        rng: &mut R,
    ) -> Result<Tensor> {
        if !(bound.is_finite() && bound > 0.0) {
            return Err(ModelError::InvalidParameter {
                name: "bound",
                value: bound.to_string(),
                rule: "initialisation bound must be positive and finite",
            });
        }
        let count: usize = shape.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let t = Tensor::from_vec(values, shape, &self.device).ctx("creating a parameter")?;
        self.insert(name, t)
    }

    /// Registers `name` with the given values (copied into a new [`Var`]).
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] if `name` is already registered.
    pub fn insert(&mut self, name: &str, values: Tensor) -> Result<Tensor> {
        if self.vars.contains_key(name) {
            return Err(ModelError::InvalidParameter {
                name: "parameter name",
                value: name.to_string(),
                rule: "each parameter is registered once",
            });
        }
        let values = values
            .to_dtype(DType::F32)
            .and_then(|v| v.to_device(&self.device))
            .ctx("moving a parameter to the device")?;
        let var = Var::from_tensor(&values).ctx("creating a parameter")?;
        let t = var.as_tensor().clone();
        self.vars.insert(name.to_string(), var);
        Ok(t)
    }

    /// The parameter `name`, checked to have `shape`.
    ///
    /// # Errors
    /// [`ModelError::BadFile`]-free lookups: [`ModelError::InvalidParameter`] when
    /// missing, [`ModelError::ShapeMismatch`] when its shape differs.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let var = self
            .vars
            .get(name)
            .ok_or_else(|| ModelError::InvalidParameter {
                name: "parameter name",
                value: name.to_string(),
                rule: "no such parameter in the model",
            })?;
        if var.dims() != shape {
            return Err(ModelError::ShapeMismatch {
                what: "stored parameter",
                expected: shape.to_vec(),
                found: var.dims().to_vec(),
            });
        }
        Ok(var.as_tensor().clone())
    }

    /// The parameter variables in name order (the order the optimiser uses).
    pub fn vars(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Total number of scalar parameters.
    #[must_use]
    pub fn num_params(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// Current values by name (shares storage with the variables).
    #[must_use]
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect()
    }

    /// Overwrites every parameter with the same-named tensor of `values`
    /// (shapes must match; extra entries are ignored).
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when a parameter is missing from
    /// `values`, [`ModelError::ShapeMismatch`] when a shape differs.
    pub fn assign_from(&self, values: &HashMap<String, Tensor>) -> Result<()> {
        for (name, var) in &self.vars {
            let t = values
                .get(name)
                .ok_or_else(|| ModelError::InvalidParameter {
                    name: "parameter name",
                    value: name.clone(),
                    rule: "missing from the file being loaded",
                })?;
            if t.dims() != var.dims() {
                return Err(ModelError::ShapeMismatch {
                    what: "loaded parameter",
                    expected: var.dims().to_vec(),
                    found: t.dims().to_vec(),
                });
            }
            let t = t
                .to_dtype(DType::F32)
                .and_then(|t| t.to_device(&self.device))
                .ctx("moving a loaded parameter to the device")?;
            var.set(&t).ctx("assigning a loaded parameter")?;
        }
        Ok(())
    }

    /// Saves every parameter to a safetensors file, atomically (a temporary
    /// file beside `path`, then a rename).
    ///
    /// # Errors
    /// [`ModelError::Io`] or [`ModelError::Framework`] when writing fails.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_tensors_atomic(&self.tensors(), path)
    }
}

/// Writes named tensors to a safetensors file atomically
/// ([`phyvae_data::atomic`]: a fresh temporary file beside `path`, synced,
/// then renamed over `path`), so a reader (or a run killed mid-write) sees
/// either the old file or the new one; on error no temporary file is left.
///
/// # Errors
/// [`ModelError::Io`] (naming `path`) when writing, syncing or renaming fails
/// (a full disk, a file-size limit, no permission), including a write that
/// fails inside the serialiser; [`ModelError::Framework`] when serialising
/// fails for another reason.
pub fn save_tensors_atomic(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let mut framework = None;
    let written = write_atomic_with(path, |tmp| {
        candle_core::safetensors::save(tensors, tmp).map_err(|e| {
            io_cause(&e).unwrap_or_else(|| {
                let io = std::io::Error::other(e.to_string());
                framework = Some(e);
                io
            })
        })
    });
    match (framework, written) {
        (Some(source), _) => Err(ModelError::Framework {
            context: "writing safetensors",
            source,
        }),
        (None, written) => Ok(written?),
    }
}

/// The operating-system error behind a framework error, if there is one
/// (candle reports a failed write as its `Io` variant, or as a safetensors
/// error whose source is the I/O error), with its kind and message.
fn io_cause(e: &candle_core::Error) -> Option<std::io::Error> {
    if let candle_core::Error::Io(io) = e {
        return Some(std::io::Error::new(io.kind(), io.to_string()));
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(std::io::Error::new(io.kind(), io.to_string()));
        }
        cause = c.source();
    }
    None
}

/// Reads every tensor of a safetensors file onto `device`.
///
/// # Errors
/// [`ModelError::BadFile`] when the file cannot be read or parsed.
pub fn load_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, device).map_err(|e| ModelError::BadFile {
        path: path.to_path_buf(),
        reason: format!("not a readable safetensors file: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn same_seed_same_parameters_and_bounds_hold() {
        let dev = Device::Cpu;
        let mut a = ParamStore::new(&dev);
        let mut b = ParamStore::new(&dev);
        let mut ra = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut rb = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let ta = a.uniform("w", &[3, 4], 0.5, &mut ra).unwrap();
        let tb = b.uniform("w", &[3, 4], 0.5, &mut rb).unwrap();
        let va: Vec<f32> = ta.flatten_all().unwrap().to_vec1().unwrap();
        let vb: Vec<f32> = tb.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(va, vb);
        assert!(va.iter().all(|v| v.abs() <= 0.5));
        assert_eq!(a.num_params(), 12);
    }

    #[test]
    fn duplicate_name_and_bad_bound_are_rejected() {
        let dev = Device::Cpu;
        let mut s = ParamStore::new(&dev);
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        s.uniform("w", &[2], 1.0, &mut r).unwrap();
        assert!(matches!(
            s.uniform("w", &[2], 1.0, &mut r),
            Err(ModelError::InvalidParameter {
                name: "parameter name",
                ..
            })
        ));
        assert!(matches!(
            s.uniform("v", &[2], 0.0, &mut r),
            Err(ModelError::InvalidParameter { name: "bound", .. })
        ));
    }

    #[test]
    fn save_load_round_trip_and_shape_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.safetensors");
        let dev = Device::Cpu;
        let mut s = ParamStore::new(&dev);
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let w = s.uniform("w", &[2, 3], 1.0, &mut r).unwrap();
        s.save(&path).unwrap();
        // Saved again over itself: only the target is left, no temporary file.
        s.save(&path).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["p.safetensors"]);
        let mut t = ParamStore::new(&dev);
        t.insert("w", Tensor::zeros((2, 3), DType::F32, &dev).unwrap())
            .unwrap();
        t.assign_from(&load_tensors(&path, &dev).unwrap()).unwrap();
        let got: Vec<f32> = t
            .get("w", &[2, 3])
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got, want);
        assert!(matches!(
            t.get("w", &[3, 2]),
            Err(ModelError::ShapeMismatch { .. })
        ));
        let mut u = ParamStore::new(&dev);
        u.insert("w", Tensor::zeros((3, 2), DType::F32, &dev).unwrap())
            .unwrap();
        assert!(matches!(
            u.assign_from(&load_tensors(&path, &dev).unwrap()),
            Err(ModelError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            load_tensors(&dir.path().join("missing"), &dev),
            Err(ModelError::BadFile { .. })
        ));
    }
}
