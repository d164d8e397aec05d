//! The gradient-mode `Psi` as a candle graph: [`PsiGraph`] (its constant
//! operators, min-max normalisation, SL1 and SL2) and the bilateral weights it
//! holds constant per step, [`FrozenWeights`].

use candle_core::{DType, Device, Tensor, WithDType};
use ndarray::Array2;
use phyvae_imaging::Real;
use phyvae_imaging::filters::{BilateralParams, bilateral_operator};
use phyvae_run::config::{PhysicsKind, RANGE_EPS, check_range_floor};

use super::operators::{constant, dft_operator_t, scharr_operators, window_mask};
use super::{MAGNITUDE_EPS, SPECTRUM_EPS};
use crate::error::FrameworkContext;
use crate::{ModelError, Result};

/// The bilateral weights of one call of an SL1 [`PsiGraph`], computed from the
/// detached normalised maps ([`PsiGraph::freeze`]); `None` for the other kinds.
#[derive(Debug, Clone)]
pub struct FrozenWeights(Option<Tensor>);

impl FrozenWeights {
    /// The `(C, d^2, d^2)` operators `W` (row = output pixel, row-major), if
    /// the graph is SL1.
    #[must_use]
    pub fn operators(&self) -> Option<&Tensor> {
        self.0.as_ref()
    }
}

/// The constant tensors of each kind of graph.
#[derive(Debug, Clone)]
enum Constants {
    None,
    Sl1 {
        /// `[Sx^T | Sy^T]`, `(n, 2n)`: `u (C, n) -> [gx | gy] (C, 2n)`.
        scharr_t: Tensor,
        /// The paper's bilateral settings.
        bilateral: BilateralParams,
    },
    Sl2 {
        /// `[(C (x) C - S (x) S)^T | (C (x) S + S (x) C)^T]`, `(n, 2n)`:
        /// `vec Z (C, n) -> [Re F | -Im F] (C, 2n)`.
        dft_t: Tensor,
        /// 1 on the central window (unshifted frequencies), else 0, `(1, n)`.
        window: Tensor,
    },
}

/// The gradient-mode `Psi` (see the [module documentation](super)) for a fixed kind, map
/// side `d` and number of maps `C`, holding its constant matrices on one device
/// in one dtype (`f32` or `f64`).
#[derive(Debug, Clone)]
pub struct PsiGraph {
    kind: PhysicsKind,
    range_floor: f64,
    d: usize,
    n_maps: usize,
    device: Device,
    dtype: DType,
    constants: Constants,
}

impl PsiGraph {
    /// Builds the constants: for SL1 the two Scharr operators, for SL2 the
    /// DFT operator (both `d^2 x 2 d^2`; `4 d^4` numbers, 32 KiB in `f32` for
    /// `d = 8`, 8 MiB for `d = 32`) and the window mask (`d^2`).
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] on `d` (>= 1), `n_maps` (>= 1), `dtype`
    /// (`F32` or `F64`), `alpha` (`1 <= alpha`, `2 alpha < d`);
    /// [`ModelError::Framework`] if the device cannot hold the constants.
    pub fn new(
        kind: PhysicsKind,
        d: usize,
        n_maps: usize,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let invalid =
            |name, value: String, rule| ModelError::InvalidParameter { name, value, rule };
        if d == 0 {
            return Err(invalid("d", d.to_string(), "must be >= 1"));
        }
        if n_maps == 0 {
            return Err(invalid("n_maps", n_maps.to_string(), "must be >= 1"));
        }
        if !matches!(dtype, DType::F32 | DType::F64) {
            return Err(invalid("dtype", format!("{dtype:?}"), "must be F32 or F64"));
        }
        let constants = match kind {
            PhysicsKind::None => Constants::None,
            PhysicsKind::Sl1 => {
                let n = d * d;
                let (sx, sy) = scharr_operators(d);
                // [Sx^T | Sy^T]: entry (q, p) = Sx[p, q], (q, n + p) = Sy[p, q].
                let mut data = vec![0.0_f64; n * 2 * n];
                for p in 0..n {
                    for q in 0..n {
                        data[q * 2 * n + p] = sx[[p, q]];
                        data[q * 2 * n + n + p] = sy[[p, q]];
                    }
                }
                Constants::Sl1 {
                    scharr_t: constant(data, (n, 2 * n), device, dtype)?,
                    bilateral: BilateralParams::paper(),
                }
            }
            PhysicsKind::Sl2 { alpha } => {
                if alpha == 0 || alpha.saturating_mul(2) >= d {
                    return Err(invalid(
                        "alpha",
                        alpha.to_string(),
                        "must satisfy 1 <= alpha and 2 * alpha < d",
                    ));
                }
                let n = d * d;
                Constants::Sl2 {
                    dft_t: constant(dft_operator_t(d), (n, 2 * n), device, dtype)?,
                    window: constant(window_mask(d, alpha), (1, n), device, dtype)?,
                }
            }
        };
        Ok(Self {
            kind,
            range_floor: RANGE_EPS,
            d,
            n_maps,
            device: device.clone(),
            dtype,
            constants,
        })
    }

    /// The same graph with the SL1 min-max range clamped below by `floor`
    /// (latent units; see the [module documentation](super), "Range floor") instead of
    /// [`RANGE_EPS`]. No effect on SL2.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] (`range_floor`) unless
    /// `RANGE_EPS <= floor` and `floor` is finite.
    ///
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use phyvae_model::physics::PsiGraph;
    /// use phyvae_run::config::PhysicsKind;
    ///
    /// // A 2 x 2 map with a step of 0.01: min-max stretches it to a full step,
    /// // the floor of 1 keeps it a step of 0.01.
    /// let map = Tensor::new(&[[[0.0f32, 0.01], [0.0, 0.01]]], &Device::Cpu)?;
    /// let plain = PsiGraph::new(PhysicsKind::Sl1, 2, 1, &Device::Cpu, DType::F32)?;
    /// let floored = plain.clone().with_range_floor(1.0)?;
    /// let a: f32 = plain.psi(&map)?.to_scalar()?;
    /// let b: f32 = floored.psi(&map)?.to_scalar()?;
    /// assert!(b < a / 50.0 && b > 0.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_range_floor(mut self, floor: f64) -> Result<Self> {
        check_range_floor(floor).map_err(ModelError::from)?;
        self.range_floor = floor;
        Ok(self)
    }

    /// The lower bound of the SL1 min-max range ([`RANGE_EPS`] unless set by
    /// [`PsiGraph::with_range_floor`]).
    #[must_use]
    pub fn range_floor(&self) -> f64 {
        self.range_floor
    }

    /// The kind of loss.
    #[must_use]
    pub fn kind(&self) -> PhysicsKind {
        self.kind
    }

    /// The map side `d`.
    #[must_use]
    pub fn side(&self) -> usize {
        self.d
    }

    /// The number of maps `C`.
    #[must_use]
    pub fn n_maps(&self) -> usize {
        self.n_maps
    }

    /// `Psi` of `maps` (`(C, d, d)`, this graph's dtype and device) as a
    /// differentiable scalar: `psi_frozen(maps, freeze(maps))`. For
    /// [`PhysicsKind::None`] a constant 0.
    ///
    /// # Errors
    /// As [`PsiGraph::freeze`] and [`PsiGraph::psi_frozen`].
    pub fn psi(&self, maps: &Tensor) -> Result<Tensor> {
        self.check_maps(maps)?;
        match &self.constants {
            Constants::Sl1 { bilateral, .. } => {
                let x = self.normalise(maps)?; // (C, n)
                let w = self.operators(&x.detach(), bilateral)?; // (C, n, n)
                self.sl1(&x, &w)
            }
            _ => self.psi_frozen(maps, &FrozenWeights(None)),
        }
    }

    /// `Psi` of `maps` (`(C, d, d)`) as [`PsiGraph::psi`], except that SL1
    /// divides each map by `range` (`(C, 1)`, clamped below by the range
    /// floor) instead of its own range: `x = (v - min v) / max(range, r0)`.
    /// The trainer passes the range of each latent over the shuffled batch, an
    /// estimate of the range of the full latent map, so that a `d x d` tile is
    /// measured in the full map's contrast (the authors' maps are the whole
    /// batch, so for them the two ranges coincide). `range` may carry a
    /// gradient: `Psi` is then invariant to a common scale of tile and range.
    /// SL2 does not normalise and ignores `range`.
    ///
    /// # Errors
    /// As [`PsiGraph::psi`]; [`ModelError::ShapeMismatch`] if `range` is not
    /// `(C, 1)`.
    ///
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use phyvae_model::physics::PsiGraph;
    /// use phyvae_run::config::PhysicsKind;
    ///
    /// let map = Tensor::new(&[[[0.0f32, 0.5], [0.0, 0.5]]], &Device::Cpu)?;
    /// let g = PsiGraph::new(PhysicsKind::Sl1, 2, 1, &Device::Cpu, DType::F32)?;
    /// let own: f32 = g.psi(&map)?.to_scalar()?;
    /// // Measured against a range of 1 the step of 0.5 is half a full step.
    /// let half: f32 = g.psi_scaled(&map, &Tensor::new(&[[1.0f32]], &Device::Cpu)?)?.to_scalar()?;
    /// assert!((half - own / 2.0).abs() < 1e-5 * own);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn psi_scaled(&self, maps: &Tensor, range: &Tensor) -> Result<Tensor> {
        self.check_maps(maps)?;
        if range.dims() != [self.n_maps, 1] {
            return Err(ModelError::ShapeMismatch {
                what: "latent ranges",
                expected: vec![self.n_maps, 1],
                found: range.dims().to_vec(),
            });
        }
        match &self.constants {
            Constants::Sl1 { bilateral, .. } => {
                let x = self.normalise_by(maps, Some(range))?; // (C, n)
                let w = self.operators(&x.detach(), bilateral)?; // (C, n, n)
                self.sl1(&x, &w)
            }
            _ => self.psi_frozen(maps, &FrozenWeights(None)),
        }
    }

    /// The bilateral weights of SL1 at `maps` (`(C, d, d)`): each map is
    /// min-max normalised (detached, the same operations as
    /// [`PsiGraph::psi_frozen`]), copied to the host and turned into its
    /// operator `W` by [`bilateral_operator`] with [`BilateralParams::paper`],
    /// in this graph's dtype. Empty for the other kinds.
    ///
    /// # Errors
    /// [`ModelError::ShapeMismatch`] / [`ModelError::InvalidParameter`] (dtype)
    /// for `maps`; [`ModelError::Imaging`] if a map is not finite.
    pub fn freeze(&self, maps: &Tensor) -> Result<FrozenWeights> {
        self.check_maps(maps)?;
        let Constants::Sl1 { bilateral, .. } = &self.constants else {
            return Ok(FrozenWeights(None));
        };
        let normalised = self.normalise(&maps.detach())?; // (C, n)
        Ok(FrozenWeights(Some(self.operators(&normalised, bilateral)?)))
    }

    /// `Psi` of `maps` (`(C, d, d)`) with the bilateral weights `frozen` held
    /// constant (from [`PsiGraph::freeze`], possibly of other maps), as a
    /// differentiable scalar.
    ///
    /// # Errors
    /// [`ModelError::ShapeMismatch`] if `maps` is not `(C, d, d)` or `frozen`
    /// does not hold `(C, d^2, d^2)` operators for SL1;
    /// [`ModelError::InvalidParameter`] on `dtype` if `maps` is not in this
    /// graph's dtype; [`ModelError::Framework`] on a device mismatch.
    pub fn psi_frozen(&self, maps: &Tensor, frozen: &FrozenWeights) -> Result<Tensor> {
        self.check_maps(maps)?;
        let (c, n) = (self.n_maps, self.d * self.d);
        match &self.constants {
            Constants::None => Tensor::zeros((), self.dtype, &self.device).ctx("Psi = 0"),
            Constants::Sl1 { .. } => {
                let w = frozen.0.as_ref().ok_or(ModelError::InvalidParameter {
                    name: "frozen",
                    value: "none".to_owned(),
                    rule: "SL1 needs the bilateral operators of PsiGraph::freeze",
                })?;
                if w.dims() != [c, n, n] {
                    return Err(ModelError::ShapeMismatch {
                        what: "frozen bilateral operators",
                        expected: vec![c, n, n],
                        found: w.dims().to_vec(),
                    });
                }
                self.sl1(&self.normalise(maps)?, w)
            }
            Constants::Sl2 { dft_t, window } => {
                let z = maps.reshape((c, n)).ctx("flatten maps")?; // (C, n)
                let f = z.matmul(dft_t).ctx("SL2 DFT")?; // (C, 2n): [Re F | -Im F]
                let l = f
                    .sqr() // (C, 2n)
                    .and_then(|t| t.reshape((c, 2, n))) // (C, 2, n)
                    .and_then(|t| t.sum(1)) // (C, n): Re^2 + Im^2
                    .and_then(|t| t.affine(1.0, SPECTRUM_EPS)) // (C, n)
                    .and_then(|t| t.sqrt()) // (C, n): |F|
                    .and_then(|t| t.affine(1.0, 1.0)) // (C, n)
                    .and_then(|t| t.log()) // (C, n): L = log(|F| + 1)
                    .ctx("SL2 log-magnitude spectrum")?;
                let total = l.sum_all().ctx("SL2 total")?; // ()
                let inside = l
                    .broadcast_mul(window) // (C, n)
                    .and_then(|t| t.sum_all()) // ()
                    .ctx("SL2 window sum")?;
                (total.clone() - inside)
                    .and_then(|outside| outside.div(&total)) // ()
                    .ctx("SL2 ratio")
            }
        }
    }

    /// SL1 of the normalised maps `x` (`(C, n)`) with the bilateral operators
    /// `w` (`(C, n, n)`): mean over maps of the summed Scharr magnitude of `W x`.
    fn sl1(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let Constants::Sl1 { scharr_t, .. } = &self.constants else {
            return Err(ModelError::InvalidParameter {
                name: "kind",
                value: format!("{:?}", self.kind),
                rule: "the edge length is computed by an SL1 graph only",
            });
        };
        let (c, n) = (self.n_maps, self.d * self.d);
        let u = w
            .matmul(&x.unsqueeze(2).ctx("SL1 column")?) // (C, n, 1)
            .and_then(|t| t.squeeze(2)) // (C, n)
            .ctx("SL1 bilateral W x")?;
        let g = u.matmul(scharr_t).ctx("SL1 Scharr")?; // (C, 2n): [gx | gy]
        let g2 = g
            .sqr() // (C, 2n)
            .and_then(|t| t.reshape((c, 2, n))) // (C, 2, n)
            .and_then(|t| t.sum(1)) // (C, n): gx^2 + gy^2
            .ctx("SL1 squared gradient")?;
        #[allow(clippy::cast_precision_loss)]
        let per_map = 1.0 / c as f64;
        g2.affine(0.5, MAGNITUDE_EPS) // (C, n)
            .and_then(|t| t.sqrt()) // (C, n): edge magnitude
            .and_then(|t| t.sum_all()) // ()
            .and_then(|t| t.affine(per_map, 0.0)) // (): mean over maps
            .ctx("SL1 edge length")
    }

    /// Checks that `maps` is `(C, d, d)` in this graph's dtype.
    fn check_maps(&self, maps: &Tensor) -> Result<()> {
        let expected = [self.n_maps, self.d, self.d];
        if maps.dims() != expected {
            return Err(ModelError::ShapeMismatch {
                what: "latent maps (C, d, d)",
                expected: expected.to_vec(),
                found: maps.dims().to_vec(),
            });
        }
        if maps.dtype() != self.dtype {
            return Err(ModelError::InvalidParameter {
                name: "dtype",
                value: format!("{:?}", maps.dtype()),
                rule: "latent maps must have the dtype of the PsiGraph",
            });
        }
        Ok(())
    }

    /// `(v - min) / max(max - min, range_floor)` per map, `(C, d, d) -> (C, n)`.
    fn normalise(&self, maps: &Tensor) -> Result<Tensor> {
        self.normalise_by(maps, None)
    }

    /// `(v - min) / max(range, range_floor)` per map with `range` given
    /// (`(C, 1)`) or the map's own `max - min`, `(C, d, d) -> (C, n)`.
    fn normalise_by(&self, maps: &Tensor, range: Option<&Tensor>) -> Result<Tensor> {
        let v = maps
            .reshape((self.n_maps, self.d * self.d))
            .ctx("flatten maps")?; // (C, n)
        let lo = v.min_keepdim(1).ctx("map minimum")?; // (C, 1)
        let range = match range {
            Some(r) => r.clone(), // (C, 1)
            None => v
                .max_keepdim(1) // (C, 1)
                .and_then(|hi| hi - &lo) // (C, 1)
                .ctx("map range")?,
        }
        .maximum(self.range_floor) // (C, 1)
        .ctx("map range")?;
        v.broadcast_sub(&lo) // (C, n)
            .and_then(|t| t.broadcast_div(&range)) // (C, n)
            .ctx("min-max normalisation")
    }

    /// The `(C, n, n)` bilateral operators of the detached normalised maps
    /// `(C, n)`, computed on the host in this graph's dtype.
    fn operators(&self, normalised: &Tensor, params: &BilateralParams) -> Result<Tensor> {
        match self.dtype {
            DType::F64 => self.operators_in::<f64>(normalised, params),
            _ => self.operators_in::<f32>(normalised, params),
        }
    }

    /// [`Self::operators`] in `T`.
    fn operators_in<T: Real + WithDType>(
        &self,
        normalised: &Tensor,
        params: &BilateralParams,
    ) -> Result<Tensor> {
        let rows: Vec<Vec<T>> = normalised.to_vec2::<T>().ctx("maps to host")?;
        let (d, n) = (self.d, self.d * self.d);
        let mut data = Vec::with_capacity(self.n_maps * n * n);
        for row in rows {
            let map =
                Array2::from_shape_vec((d, d), row).map_err(|_| ModelError::ShapeMismatch {
                    what: "normalised map",
                    expected: vec![d, d],
                    found: vec![n],
                })?;
            let w = bilateral_operator(map.view(), params)?; // (n, n)
            data.extend(w.iter().copied());
        }
        Tensor::from_vec(data, (self.n_maps, n, n), &self.device).ctx("bilateral operators")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::physics::psi_faithful;

    #[test]
    fn graph_rules() {
        let cpu = Device::Cpu;
        let name = |r: Result<PsiGraph>| match r {
            Err(ModelError::InvalidParameter { name, .. }) => name,
            other => panic!("expected InvalidParameter, got {other:?}"),
        };
        assert_eq!(
            name(PsiGraph::new(PhysicsKind::Sl1, 0, 2, &cpu, DType::F32)),
            "d"
        );
        assert_eq!(
            name(PsiGraph::new(PhysicsKind::Sl1, 8, 0, &cpu, DType::F32)),
            "n_maps"
        );
        assert_eq!(
            name(PsiGraph::new(PhysicsKind::Sl1, 8, 2, &cpu, DType::BF16)),
            "dtype"
        );
        for alpha in [0, 4] {
            assert_eq!(
                name(PsiGraph::new(
                    PhysicsKind::Sl2 { alpha },
                    8,
                    2,
                    &cpu,
                    DType::F32
                )),
                "alpha"
            );
        }
        assert!(PsiGraph::new(PhysicsKind::Sl2 { alpha: 3 }, 8, 2, &cpu, DType::F32).is_ok());
        let g = PsiGraph::new(PhysicsKind::Sl1, 4, 2, &cpu, DType::F32).unwrap();
        let wrong = Tensor::zeros((2, 4, 5), DType::F32, &cpu).unwrap();
        assert!(matches!(
            g.psi(&wrong),
            Err(ModelError::ShapeMismatch { .. })
        ));
        let f64_maps = Tensor::zeros((2, 4, 4), DType::F64, &cpu).unwrap();
        assert!(matches!(
            g.psi(&f64_maps),
            Err(ModelError::InvalidParameter { name: "dtype", .. })
        ));
        let maps = Tensor::zeros((2, 4, 4), DType::F32, &cpu).unwrap();
        assert!(matches!(
            g.psi_frozen(&maps, &FrozenWeights(None)),
            Err(ModelError::InvalidParameter { name: "frozen", .. })
        ));
    }

    #[test]
    fn none_kind_is_zero() {
        let cpu = Device::Cpu;
        let g = PsiGraph::new(PhysicsKind::None, 4, 1, &cpu, DType::F32).unwrap();
        let maps = Tensor::ones((1, 4, 4), DType::F32, &cpu).unwrap();
        assert_eq!(g.psi(&maps).unwrap().to_scalar::<f32>().unwrap(), 0.0);
        let z = Array2::<f32>::ones((16, 1));
        assert_eq!(
            psi_faithful(PhysicsKind::None, z.view(), &[0]).unwrap(),
            0.0
        );
    }

    #[test]
    fn sl2_impulse_hand_computed() {
        // An impulse has |F| = 1 everywhere: L = ln 2 (plus ~1e-12 from the guard);
        // d = 4, alpha = 1: 12 of 16 entries outside the window, Psi = 0.75.
        let cpu = Device::Cpu;
        let mut data = vec![0.0_f64; 16];
        data[6] = 1.0;
        let maps = Tensor::from_vec(data, (1, 4, 4), &cpu).unwrap();
        let g = PsiGraph::new(PhysicsKind::Sl2 { alpha: 1 }, 4, 1, &cpu, DType::F64).unwrap();
        let v = g.psi(&maps).unwrap().to_scalar::<f64>().unwrap();
        assert!((v - 0.75).abs() < 1e-12, "{v}");
    }

    #[test]
    fn sl1_single_pixel_hand_computed() {
        // A 1 x 1 map: Scharr of one pixel is 0, so Psi = sqrt(MAGNITUDE_EPS) = 1e-6.
        let cpu = Device::Cpu;
        let maps = Tensor::from_vec(vec![0.3_f64], (1, 1, 1), &cpu).unwrap();
        let g = PsiGraph::new(PhysicsKind::Sl1, 1, 1, &cpu, DType::F64).unwrap();
        let v = g.psi(&maps).unwrap().to_scalar::<f64>().unwrap();
        assert!((v - 1e-6).abs() < 1e-18, "{v}");
    }

    #[test]
    fn range_floor_rule() {
        let g = PsiGraph::new(PhysicsKind::Sl1, 4, 1, &Device::Cpu, DType::F64).unwrap();
        for bad in [0.0, 1e-7, f64::NAN, f64::INFINITY] {
            let e = g.clone().with_range_floor(bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    ModelError::InvalidParameter {
                        name: "range_floor",
                        ..
                    }
                ),
                "{bad}: {e}"
            );
        }
        assert_eq!(g.with_range_floor(0.5).unwrap().range_floor(), 0.5);
    }

    #[test]
    fn range_floor_scales_sl1_of_a_small_map_by_range_over_floor() {
        // Bilateral (sigma_color = the map's std), Scharr and the magnitude are
        // all homogeneous of degree 1 in the map, so dividing by the floor r0
        // instead of the range r multiplies SL1 by r / r0 (up to the 1e-6 guards).
        let cpu = Device::Cpu;
        let v: Vec<f64> = (0..36)
            .map(|i| 0.02 * (f64::from(i % 6) * 0.7 + f64::from(i / 6) * f64::from(i % 5)).sin())
            .collect();
        let range =
            v.iter().copied().fold(f64::MIN, f64::max) - v.iter().copied().fold(f64::MAX, f64::min);
        let maps = Tensor::from_vec(v, (1, 6, 6), &cpu).unwrap();
        let plain = PsiGraph::new(PhysicsKind::Sl1, 6, 1, &cpu, DType::F64).unwrap();
        let floored = plain.clone().with_range_floor(2.0).unwrap();
        let a = plain.psi(&maps).unwrap().to_scalar::<f64>().unwrap();
        let b = floored.psi(&maps).unwrap().to_scalar::<f64>().unwrap();
        assert!(a > 1.0, "{a}");
        let expected = a * range / 2.0;
        assert!((b - expected).abs() < 1e-4 * expected, "{b} vs {expected}");
        // A map whose range exceeds the floor is normalised as before.
        let big = (maps * 1000.0).unwrap();
        let c = floored.psi(&big).unwrap().to_scalar::<f64>().unwrap();
        assert!((c - a).abs() < 1e-9 * a, "{c} vs {a}");
    }

    #[test]
    fn psi_scaled_by_own_range_is_psi_and_scales_inversely() {
        let cpu = Device::Cpu;
        let v: Vec<f64> = (0..32)
            .map(|i| (f64::from(i % 4) * 0.9 + f64::from(i / 4) * 0.4).cos())
            .collect();
        let maps = Tensor::from_vec(v, (2, 4, 4), &cpu).unwrap();
        let g = PsiGraph::new(PhysicsKind::Sl1, 4, 2, &cpu, DType::F64).unwrap();
        let flat = maps.reshape((2, 16)).unwrap();
        let own = (flat.max_keepdim(1).unwrap() - flat.min_keepdim(1).unwrap()).unwrap();
        let a = g.psi(&maps).unwrap().to_scalar::<f64>().unwrap();
        let b = g
            .psi_scaled(&maps, &own)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!((a - b).abs() <= 1e-12 * a, "{a} vs {b}");
        // SL1 is homogeneous of degree 1 (see range_floor_scales_...): a range
        // three times larger gives a third of Psi.
        let c = g
            .psi_scaled(&maps, &(&own * 3.0).unwrap())
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!((c - a / 3.0).abs() < 1e-5 * a, "{c} vs {}", a / 3.0);
        // dPsi/drange_k: Psi = sum_k S_k / range_k / C, so the derivative is
        // -S_k / (C range_k^2); check against central differences.
        let r = candle_core::Var::from_tensor(&own).unwrap();
        let psi = g.psi_scaled(&maps, r.as_tensor()).unwrap();
        let grad = psi
            .backward()
            .unwrap()
            .get(r.as_tensor())
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        let own_v = own.to_vec2::<f64>().unwrap();
        for k in 0..2 {
            let h = 1e-6;
            let mut plus = own_v.clone();
            plus[k][0] += h;
            let mut minus = own_v.clone();
            minus[k][0] -= h;
            let at = |rv: Vec<Vec<f64>>| {
                let t = Tensor::new(rv, &cpu).unwrap();
                g.psi_scaled(&maps, &t).unwrap().to_scalar::<f64>().unwrap()
            };
            let fd = (at(plus) - at(minus)) / (2.0 * h);
            assert!(
                (grad[k][0] - fd).abs() < 1e-5 * fd.abs(),
                "{k}: {} vs {fd}",
                grad[k][0]
            );
            assert!(fd < 0.0);
        }
        let bad = Tensor::zeros((2,), DType::F64, &cpu).unwrap();
        assert!(matches!(
            g.psi_scaled(&maps, &bad),
            Err(ModelError::ShapeMismatch { .. })
        ));
    }
}
