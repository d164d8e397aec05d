//! Adam (Kingma & Ba 2015) in PyTorch's formulation, with its state exposed
//! so that a checkpoint can hold it and a resumed run continues bit-identically.
//! (candle-nn's `AdamW` keeps its moments private, so it cannot be checkpointed.)
//!
//! ```text
//! m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
//! p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//! ```
//! with `b1 = 0.9`, `b2 = 0.999`, `eps = 1e-8` (PyTorch `torch.optim.Adam` defaults).
//!
//! On the CPU the update runs in place, one pass over each of `v`, `m` and
//! the parameter (candle's `InplaceOp1`), instead of a dozen tensor
//! operations that each allocate their result; it rounds exactly as the
//! tensor formulation does (same `f32` operations in the same order), which
//! other devices run, so a run gives the same bits either way. Written by
//! hand because candle-nn's optimisers neither expose their state nor update
//! in place.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp1, Layout, Storage, Tensor};
use multiversion::multiversion;

use crate::error::FrameworkContext;
use crate::params::ParamStore;
use crate::{ModelError, Result};

/// First-moment decay `b1`.
pub const BETA1: f64 = 0.9;
/// Second-moment decay `b2`.
pub const BETA2: f64 = 0.999;
/// Denominator guard `eps`.
pub const EPS: f64 = 1e-8;

/// Adam state for every parameter of a [`ParamStore`], in name order.
#[derive(Debug, Clone)]
pub struct Adam {
    lr: f64,
    step: u64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    /// Zero moments for every parameter of `store`.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when `lr` is not positive and finite.
    pub fn new(store: &ParamStore, lr: f64) -> Result<Self> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(ModelError::InvalidParameter {
                name: "lr",
                value: lr.to_string(),
                rule: "must be positive and finite",
            });
        }
        let zeros = |v: &candle_core::Var| v.as_tensor().zeros_like().ctx("Adam state");
        let m = store
            .vars()
            .map(|(_, v)| zeros(v))
            .collect::<Result<Vec<_>>>()?;
        let v = store
            .vars()
            .map(|(_, v)| zeros(v))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { lr, step: 0, m, v })
    }

    /// The learning rate of the next updates.
    #[must_use]
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Sets the learning rate of the next updates; the moments and the step
    /// count are kept (a rate that changes between epochs, as
    /// `TrainConfig::lr_changes` records).
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when `lr` is not positive and finite.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        if !(lr.is_finite() && lr > 0.0) {
            return Err(ModelError::InvalidParameter {
                name: "lr",
                value: lr.to_string(),
                rule: "must be positive and finite",
            });
        }
        self.lr = lr;
        Ok(())
    }

    /// Number of updates made so far (`t`).
    #[must_use]
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update of every parameter of `store` that has a gradient in `grads`.
    ///
    /// # Errors
    /// [`ModelError::Framework`] on a tensor error.
    pub fn step(&mut self, store: &ParamStore, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - BETA1.powi(t);
        let bc2 = 1.0 - BETA2.powi(t);
        let step_size = self.lr / bc1;
        let sqrt_bc2 = bc2.sqrt();
        for (i, (_, var)) in store.vars().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let p = var.as_tensor();
            if host_f32(p) && host_f32(g) {
                host_step(p, g, &self.m[i], &self.v[i], step_size, sqrt_bc2)?;
                continue;
            }
            let (new, m, v) = tensor_step(p, g, &self.m[i], &self.v[i], step_size, sqrt_bc2)?;
            var.set(&new).ctx("Adam update")?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The moments as named tensors (`adam.m.<param>`, `adam.v.<param>`):
    /// copies, which later steps leave as they are.
    ///
    /// # Errors
    /// [`ModelError::Framework`] when a moment cannot be copied.
    pub fn state(&self, store: &ParamStore) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (i, (name, _)) in store.vars().enumerate() {
            out.insert(
                format!("adam.m.{name}"),
                self.m[i].copy().ctx("Adam state")?,
            );
            out.insert(
                format!("adam.v.{name}"),
                self.v[i].copy().ctx("Adam state")?,
            );
        }
        Ok(out)
    }

    /// Restores moments saved by [`state`](Self::state) and the step count.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when a moment is missing,
    /// [`ModelError::ShapeMismatch`] when its shape differs.
    pub fn restore(
        &mut self,
        store: &ParamStore,
        tensors: &HashMap<String, Tensor>,
        steps: u64,
    ) -> Result<()> {
        for (i, (name, var)) in store.vars().enumerate() {
            for (which, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let key = format!("adam.{which}.{name}");
                let t = tensors.get(&key).ok_or(ModelError::InvalidParameter {
                    name: "checkpoint",
                    value: key.clone(),
                    rule: "optimizer state is missing a moment",
                })?;
                if t.dims() != var.dims() {
                    return Err(ModelError::ShapeMismatch {
                        what: "optimizer moment",
                        expected: var.dims().to_vec(),
                        found: t.dims().to_vec(),
                    });
                }
                // A copy: the steps update the moments in place, and `t` is
                // the caller's.
                *slot = t
                    .to_device(store.device())
                    .and_then(|t| t.copy())
                    .ctx("Adam state")?;
            }
        }
        self.step = steps;
        Ok(())
    }
}

/// The update of one parameter as tensor operations (any device): the new
/// parameter and moments `(p, m, v)`.
fn tensor_step(
    p: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    step_size: f64,
    sqrt_bc2: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    let m = ((m * BETA1).ctx("Adam m")? + (g * (1.0 - BETA1)).ctx("Adam m")?).ctx("Adam m")?;
    let v = ((v * BETA2).ctx("Adam v")?
        + (g.sqr().ctx("Adam v")? * (1.0 - BETA2)).ctx("Adam v")?)
    .ctx("Adam v")?;
    let denom = ((v.sqrt().ctx("Adam")? / sqrt_bc2).ctx("Adam")? + EPS).ctx("Adam")?;
    let update = ((&m / &denom).ctx("Adam")? * step_size).ctx("Adam")?;
    let new = (p - update).ctx("Adam update")?;
    Ok((new, m, v))
}

/// Whether `t` lives in CPU memory as contiguous `f32`, which the in-place
/// step needs.
fn host_f32(t: &Tensor) -> bool {
    let (storage, layout) = t.storage_and_layout();
    matches!(&*storage, Storage::Cpu(CpuStorage::F32(_))) && layout.is_contiguous()
}

/// The `f32` scalars of one step, rounded from `f64` as candle rounds the
/// scalars of `Tensor::affine`.
#[derive(Debug, Clone, Copy)]
struct Scalars {
    b1: f32,
    one_minus_b1: f32,
    b2: f32,
    one_minus_b2: f32,
    inv_sqrt_bc2: f32,
    eps: f32,
    step_size: f32,
}

/// What each in-place pass does to the storage it is given.
#[derive(Debug, Clone, Copy)]
enum Pass<'a> {
    /// `v <- (v b2 + 0) + ((g g) (1 - b2) + 0)`.
    SecondMoment { g: &'a [f32] },
    /// `m <- (m b1 + 0) + (g (1 - b1) + 0)`.
    FirstMoment { g: &'a [f32] },
    /// `p <- p - ((m / ((sqrt(v) / sqrt(bc2) + 0) 1 + eps)) step + 0)`.
    Parameter { m: &'a [f32], v: &'a [f32] },
}

/// One in-place pass of the host step. The `+ 0.0` terms are those of
/// `Tensor::affine(mul, 0)`: kept so that a `-0.0` rounds as on the tensor
/// path.
#[derive(Debug, Clone, Copy)]
struct HostPass<'a> {
    pass: Pass<'a>,
    k: Scalars,
}

impl InplaceOp1 for HostPass<'_> {
    fn name(&self) -> &'static str {
        "phyvae-adam-step"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let (CpuStorage::F32(data), Some((a, b))) = (storage, layout.contiguous_offsets()) else {
            return Err(candle_core::Error::Msg(
                "the in-place Adam step needs contiguous f32 storage".into(),
            ));
        };
        let x = &mut data[a..b];
        let k = self.k;
        let len_ok = match self.pass {
            Pass::SecondMoment { g } | Pass::FirstMoment { g } => g.len() == x.len(),
            Pass::Parameter { m, v } => m.len() == x.len() && v.len() == x.len(),
        };
        if !len_ok {
            return Err(candle_core::Error::Msg(
                "the in-place Adam step got tensors of different lengths".into(),
            ));
        }
        match self.pass {
            Pass::SecondMoment { g } => second_moment(x, g, k),
            Pass::FirstMoment { g } => first_moment(x, g, k),
            Pass::Parameter { m, v } => parameter(x, m, v, k),
        }
        Ok(())
    }
}

/// `v <- (v b2 + 0) + ((g g) (1 - b2) + 0)` (no fused multiply-add: the
/// wider targets round as the tensor path does).
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn second_moment(v: &mut [f32], g: &[f32], k: Scalars) {
    for (v, &g) in v.iter_mut().zip(g) {
        *v = (*v * k.b2 + 0.0) + ((g * g) * k.one_minus_b2 + 0.0);
    }
}

/// `m <- (m b1 + 0) + (g (1 - b1) + 0)`.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn first_moment(m: &mut [f32], g: &[f32], k: Scalars) {
    for (m, &g) in m.iter_mut().zip(g) {
        *m = (*m * k.b1 + 0.0) + (g * k.one_minus_b1 + 0.0);
    }
}

/// `p <- p - ((m / ((sqrt(v) / sqrt(bc2) + 0) 1 + eps)) step + 0)`.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn parameter(p: &mut [f32], m: &[f32], v: &[f32], k: Scalars) {
    for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
        let denom = (v.sqrt() * k.inv_sqrt_bc2 + 0.0) * 1.0 + k.eps;
        *p -= (m / denom) * k.step_size + 0.0;
    }
}

/// The contiguous `f32` data of a tensor that [`host_f32`] accepted.
fn host_slice<'a>(storage: &'a Storage, layout: &Layout) -> Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(d)), Some((a, b))) => Ok(&d[a..b]),
        _ => Err(ModelError::InvalidParameter {
            name: "Adam state",
            value: format!("{:?}", layout.shape()),
            rule: "the in-place step needs contiguous f32 tensors in CPU memory",
        }),
    }
}

/// The update of one parameter `p` with gradient `g` and moments `m`, `v`,
/// in place: `v` first, then `m`, then `p` from both.
fn host_step(
    p: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    step_size: f64,
    sqrt_bc2: f64,
) -> Result<()> {
    let k = Scalars {
        b1: BETA1 as f32,
        one_minus_b1: (1.0 - BETA1) as f32,
        b2: BETA2 as f32,
        one_minus_b2: (1.0 - BETA2) as f32,
        inv_sqrt_bc2: (1.0 / sqrt_bc2) as f32,
        eps: EPS as f32,
        step_size: step_size as f32,
    };
    {
        let (gs, gl) = g.storage_and_layout();
        let g = host_slice(&gs, gl)?;
        let pass = |pass| HostPass { pass, k };
        v.inplace_op1(&pass(Pass::SecondMoment { g }))
            .ctx("Adam v")?;
        m.inplace_op1(&pass(Pass::FirstMoment { g }))
            .ctx("Adam m")?;
    }
    let (ms, ml) = m.storage_and_layout();
    let (vs, vl) = v.storage_and_layout();
    let pass = Pass::Parameter {
        m: host_slice(&ms, ml)?,
        v: host_slice(&vs, vl)?,
    };
    p.inplace_op1(&HostPass { pass, k }).ctx("Adam update")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::{RngExt, SeedableRng};

    #[test]
    fn first_step_moves_each_parameter_by_lr_against_the_gradient_sign() {
        // At t = 1, m/(1-b1) = g and sqrt(v/(1-b2)) = |g|, so the step is
        // lr * g / (|g| + eps) ~ lr * sign(g) (PyTorch gives the same).
        let dev = Device::Cpu;
        let mut store = ParamStore::new(&dev);
        let p = store
            .insert("p", Tensor::new(&[1.0f32, -2.0, 3.0], &dev).unwrap())
            .unwrap();
        let loss = (&p * &Tensor::new(&[2.0f32, -0.5, 0.0], &dev).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let mut adam = Adam::new(&store, 0.1).unwrap();
        adam.step(&store, &grads).unwrap();
        let v: Vec<f32> = store.get("p", &[3]).unwrap().to_vec1().unwrap();
        assert!((v[0] - 0.9).abs() < 1e-6);
        assert!((v[1] - (-1.9)).abs() < 1e-6);
        assert_eq!(v[2], 3.0);
        assert_eq!(adam.steps(), 1);
    }

    #[test]
    fn in_place_step_gives_the_bits_of_the_tensor_formulation() {
        // Gradients spanning many magnitudes, zeros and a -0.0 included.
        let dev = Device::Cpu;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let n = 1000;
        let draw = |rng: &mut rand_chacha::ChaCha8Rng| -> Vec<f32> {
            (0..n)
                .map(|i| match i % 50 {
                    0 => 0.0,
                    1 => -0.0,
                    _ => rng.random_range(-1.0f32..1.0) * 10f32.powi(rng.random_range(-8..3)),
                })
                .collect()
        };
        let p0 = draw(&mut rng);
        let (mut p_ref, mut m_ref, mut v_ref) = (
            Tensor::new(p0.as_slice(), &dev).unwrap(),
            Tensor::zeros(n, candle_core::DType::F32, &dev).unwrap(),
            Tensor::zeros(n, candle_core::DType::F32, &dev).unwrap(),
        );
        let p = Tensor::new(p0.as_slice(), &dev).unwrap();
        let m = Tensor::zeros(n, candle_core::DType::F32, &dev).unwrap();
        let v = Tensor::zeros(n, candle_core::DType::F32, &dev).unwrap();
        for t in 1..=5 {
            let g = Tensor::new(draw(&mut rng).as_slice(), &dev).unwrap();
            let bc1 = 1.0 - BETA1.powi(t);
            let step_size = 3e-3 / bc1;
            let sqrt_bc2 = (1.0 - BETA2.powi(t)).sqrt();
            (p_ref, m_ref, v_ref) =
                tensor_step(&p_ref, &g, &m_ref, &v_ref, step_size, sqrt_bc2).unwrap();
            host_step(&p, &g, &m, &v, step_size, sqrt_bc2).unwrap();
            for (a, b) in [(&p, &p_ref), (&m, &m_ref), (&v, &v_ref)] {
                let a: Vec<u32> = a
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect();
                let b: Vec<u32> = b
                    .to_vec1::<f32>()
                    .unwrap()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect();
                assert_eq!(a, b, "step {t}");
            }
        }
    }

    #[test]
    fn in_place_step_rejects_mismatched_lengths() {
        let dev = Device::Cpu;
        let p = Tensor::zeros(4, candle_core::DType::F32, &dev).unwrap();
        let g = Tensor::zeros(3, candle_core::DType::F32, &dev).unwrap();
        let m = Tensor::zeros(4, candle_core::DType::F32, &dev).unwrap();
        let v = Tensor::zeros(4, candle_core::DType::F32, &dev).unwrap();
        assert!(matches!(
            host_step(&p, &g, &m, &v, 1e-3, 1.0),
            Err(ModelError::Framework { .. })
        ));
    }

    #[test]
    fn state_is_a_snapshot_that_later_steps_leave_alone() {
        let dev = Device::Cpu;
        let mut store = ParamStore::new(&dev);
        let p = store
            .insert("p", Tensor::new(&[1.0f32, -2.0], &dev).unwrap())
            .unwrap();
        let mut adam = Adam::new(&store, 0.1).unwrap();
        let step = |adam: &mut Adam| {
            let loss = p.sqr().unwrap().sum_all().unwrap();
            adam.step(&store, &loss.backward().unwrap()).unwrap();
        };
        step(&mut adam);
        let s = adam.state(&store).unwrap();
        let before: Vec<f32> = s["adam.m.p"].to_vec1().unwrap();
        step(&mut adam);
        let after: Vec<f32> = s["adam.m.p"].to_vec1().unwrap();
        assert_eq!(before, after);
        // After one step from (1, -2) with g = 2p: m = 0.1 g = (0.2, -0.4).
        assert!((before[0] - 0.2).abs() < 1e-7 && (before[1] + 0.4).abs() < 1e-7);
    }

    #[test]
    fn minimises_a_quadratic() {
        let dev = Device::Cpu;
        let mut store = ParamStore::new(&dev);
        store
            .insert("x", Tensor::new(&[5.0f32], &dev).unwrap())
            .unwrap();
        let mut adam = Adam::new(&store, 0.1).unwrap();
        for _ in 0..500 {
            let x = store.get("x", &[1]).unwrap();
            let loss = ((x - 1.0).unwrap().sqr().unwrap()).sum_all().unwrap();
            let g = loss.backward().unwrap();
            adam.step(&store, &g).unwrap();
        }
        let x: Vec<f32> = store.get("x", &[1]).unwrap().to_vec1().unwrap();
        assert!((x[0] - 1.0).abs() < 1e-2, "{}", x[0]);
    }

    #[test]
    fn state_round_trip_and_checks() {
        let dev = Device::Cpu;
        let mut store = ParamStore::new(&dev);
        store
            .insert("a", Tensor::new(&[1.0f32, 2.0], &dev).unwrap())
            .unwrap();
        let mut adam = Adam::new(&store, 1e-3).unwrap();
        let s = adam.state(&store).unwrap();
        assert_eq!(s.len(), 2);
        adam.restore(&store, &s, 7).unwrap();
        assert_eq!(adam.steps(), 7);
        let mut bad = s.clone();
        bad.remove("adam.v.a");
        assert!(adam.restore(&store, &bad, 1).is_err());
        assert!(Adam::new(&store, 0.0).is_err());
        let _ = Var::new(&[0.0f32], &dev).unwrap();
    }
}
