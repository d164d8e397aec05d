//! Adam (Kingma & Ba 2015) in PyTorch's formulation, with its state exposed
//! so that a checkpoint can hold it and a resumed run continues bit-identically.
//! (candle-nn's `AdamW` keeps its moments private, so it cannot be checkpointed.)
//!
//! ```text
//! m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
//! p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//! ```
//! with `b1 = 0.9`, `b2 = 0.999`, `eps = 1e-8` (PyTorch `torch.optim.Adam` defaults).

use std::collections::HashMap;

use candle_core::Tensor;
use candle_core::backprop::GradStore;

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
            let m = ((&self.m[i] * BETA1).ctx("Adam m")? + (g * (1.0 - BETA1)).ctx("Adam m")?)
                .ctx("Adam m")?;
            let v = ((&self.v[i] * BETA2).ctx("Adam v")?
                + (g.sqr().ctx("Adam v")? * (1.0 - BETA2)).ctx("Adam v")?)
            .ctx("Adam v")?;
            let denom = ((v.sqrt().ctx("Adam")? / sqrt_bc2).ctx("Adam")? + EPS).ctx("Adam")?;
            let update = ((&m / &denom).ctx("Adam")? * step_size).ctx("Adam")?;
            let new = (var.as_tensor() - update).ctx("Adam update")?;
            var.set(&new).ctx("Adam update")?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// The moments as named tensors (`adam.m.<param>`, `adam.v.<param>`).
    #[must_use]
    pub fn state(&self, store: &ParamStore) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in store.vars().enumerate() {
            out.insert(format!("adam.m.{name}"), self.m[i].clone());
            out.insert(format!("adam.v.{name}"), self.v[i].clone());
        }
        out
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
                *slot = t.to_device(store.device()).ctx("Adam state")?;
            }
        }
        self.step = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

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
        let s = adam.state(&store);
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
