//! Checked parameters of the synthetic images.

use super::FILM_SPACING_PX;
use super::scan::{ScanParams, invalid};
use crate::Result;

/// Smallest accepted image side, px.
pub const MIN_SIZE_PX: usize = 64;
/// Largest accepted image side, px (a 32768^2 image already needs 8 GiB).
pub const MAX_SIZE_PX: usize = 32_768;
/// Default image side, px (the reference generator's).
pub const DEFAULT_SIZE_PX: usize = 512;
/// Largest accepted `|angle|` of a straight boundary or of the domain walls, degrees.
pub const MAX_ANGLE_DEG: f64 = 90.0;

pub(crate) fn check_size(size: usize) -> Result<()> {
    if (MIN_SIZE_PX..=MAX_SIZE_PX).contains(&size) {
        Ok(())
    } else {
        Err(invalid("size", size, "must be between 64 and 32768 px"))
    }
}

fn check_angle(name: &'static str, angle_deg: f64) -> Result<()> {
    if angle_deg.abs() <= MAX_ANGLE_DEG {
        Ok(())
    } else {
        Err(invalid(name, angle_deg, "must be within [-90, 90] degrees"))
    }
}

/// Shape of the phase boundary of [`super::two_phase`], in specimen
/// coordinates `(u, v)` (see [`ScanParams`]) of a `W x H` image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Boundary {
    /// A straight line through the image centre `(W/2, H/2)`, tilted by
    /// `angle_deg` from the vertical: phase 1 where
    /// `(u - W/2) cos(angle) - (v - H/2) sin(angle) > 0` (the right side for
    /// angle 0). Rule: `|angle_deg| <= 90`.
    Straight {
        /// Tilt from the vertical, degrees.
        angle_deg: f64,
    },
    /// The reference generator's curved boundary
    /// `x_b(v) = W/2 + amplitude_px * sin(2 pi v / H + 0.3)`: phase 1 where
    /// `u > x_b(v)`. Rule: `0 <= amplitude_px <= size / 4`.
    Curved {
        /// Amplitude of the sine, px.
        amplitude_px: f64,
    },
}

impl Boundary {
    /// The default boundary for an image of `size` px: curved with amplitude
    /// `40 * size / 512` (the reference generator's 40 px at 512 px).
    #[must_use]
    pub fn default_for(size: usize) -> Self {
        Self::Curved {
            amplitude_px: 40.0 * size as f64 / 512.0,
        }
    }

    fn validate(&self, size: usize) -> Result<()> {
        match *self {
            Self::Straight { angle_deg } => check_angle("angle_deg", angle_deg),
            Self::Curved { amplitude_px } => {
                if amplitude_px >= 0.0 && amplitude_px <= size as f64 / 4.0 {
                    Ok(())
                } else {
                    Err(invalid(
                        "amplitude_px",
                        amplitude_px,
                        "must be within [0, size / 4]",
                    ))
                }
            }
        }
    }
}

/// Parameters of [`super::two_phase`]; build with [`TwoPhaseParams::new`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwoPhaseParams {
    size: usize,
    seed: u64,
    boundary: Boundary,
    scan: ScanParams,
}

impl Default for TwoPhaseParams {
    /// 512 px, seed 0, the reference's curved boundary and scan model.
    fn default() -> Self {
        Self {
            size: DEFAULT_SIZE_PX,
            seed: 0,
            boundary: Boundary::default_for(DEFAULT_SIZE_PX),
            scan: ScanParams::default(),
        }
    }
}

impl TwoPhaseParams {
    /// A builder starting from the defaults (size 512, seed 0,
    /// [`Boundary::default_for`] the size, [`ScanParams::default`]).
    #[allow(
        clippy::new_ret_no_self,
        reason = "parameters are only made through their checked builder"
    )]
    #[must_use]
    pub fn new() -> TwoPhaseParamsBuilder {
        TwoPhaseParamsBuilder::default()
    }

    /// Image side, px.
    #[must_use]
    pub fn size(&self) -> usize {
        self.size
    }

    /// Seed of the noise generator.
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Phase boundary.
    #[must_use]
    pub fn boundary(&self) -> Boundary {
        self.boundary
    }

    /// Scan and noise model.
    #[must_use]
    pub fn scan(&self) -> &ScanParams {
        &self.scan
    }
}

/// Builder of [`TwoPhaseParams`]; every rule is checked by [`Self::build`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwoPhaseParamsBuilder {
    size: usize,
    seed: u64,
    boundary: Option<Boundary>,
    scan: ScanParams,
}

impl Default for TwoPhaseParamsBuilder {
    fn default() -> Self {
        Self {
            size: DEFAULT_SIZE_PX,
            seed: 0,
            boundary: None,
            scan: ScanParams::default(),
        }
    }
}

impl TwoPhaseParamsBuilder {
    /// Image side in px (the image is `size x size`). Rule: `64 <= size <= 32768`.
    #[must_use]
    pub fn size(mut self, size: usize) -> Self {
        self.size = size;
        self
    }

    /// Seed of the noise generator (any value).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Phase boundary (default: [`Boundary::default_for`] the final size).
    #[must_use]
    pub fn boundary(mut self, boundary: Boundary) -> Self {
        self.boundary = Some(boundary);
        self
    }

    /// The whole scan and noise model (replaces earlier `dose`/`read_noise`/`noise` calls).
    #[must_use]
    pub fn scan(mut self, scan: ScanParams) -> Self {
        self.scan = scan;
        self
    }

    /// Dose, counts per unit intensity (see [`ScanParams::dose`]).
    #[must_use]
    pub fn dose(mut self, dose: f64) -> Self {
        self.scan.dose = dose;
        self
    }

    /// Read-noise standard deviation (see [`ScanParams::read_noise`]).
    #[must_use]
    pub fn read_noise(mut self, read_noise: f64) -> Self {
        self.scan.read_noise = read_noise;
        self
    }

    /// Whether to add noise (false: the clean image).
    #[must_use]
    pub fn noise(mut self, noise: bool) -> Self {
        self.scan.noise = noise;
        self
    }

    /// Checks every rule and returns the parameters.
    ///
    /// # Errors
    /// [`crate::DataError::InvalidParameter`] naming the first parameter that
    /// breaks its rule (`size`, `angle_deg`, `amplitude_px`, or one of
    /// [`ScanParams`]).
    pub fn build(self) -> Result<TwoPhaseParams> {
        check_size(self.size)?;
        let boundary = self
            .boundary
            .unwrap_or_else(|| Boundary::default_for(self.size));
        boundary.validate(self.size)?;
        self.scan.validate()?;
        Ok(TwoPhaseParams {
            size: self.size,
            seed: self.seed,
            boundary,
            scan: self.scan,
        })
    }
}

/// Default thickness of the substrate band, as a fraction of the image side.
pub const DEFAULT_SUBSTRATE_FRACTION: f64 = 0.25;
/// Default inclination of the domain walls, degrees from the x axis.
pub const DEFAULT_WALL_ANGLE_DEG: f64 = 45.0;
/// Default displacement of the B column of the film, px.
pub const DEFAULT_POLAR_SHIFT_PX: f64 = 0.6;
/// Smallest accepted domain period: two film cells, px.
pub const MIN_PERIOD_PX: f64 = 2.0 * FILM_SPACING_PX;
/// Largest accepted B-column displacement: a quarter of a film cell, px.
pub const MAX_POLAR_SHIFT_PX: f64 = FILM_SPACING_PX / 4.0;

/// Parameters of [`super::domains`]; build with [`DomainsParams::new`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DomainsParams {
    size: usize,
    seed: u64,
    substrate_fraction: f64,
    wall_angle_deg: f64,
    period_px: f64,
    polar_shift_px: f64,
    scan: ScanParams,
}

/// Default domain period for an image side: `max(size / 3, 28 px)`.
fn default_period(size: usize) -> f64 {
    (size as f64 / 3.0).max(MIN_PERIOD_PX)
}

impl Default for DomainsParams {
    /// 512 px, seed 0, substrate a quarter of the height, walls at 45 degrees
    /// every 512 / 3 px, B shift 0.6 px, the reference scan model.
    fn default() -> Self {
        Self {
            size: DEFAULT_SIZE_PX,
            seed: 0,
            substrate_fraction: DEFAULT_SUBSTRATE_FRACTION,
            wall_angle_deg: DEFAULT_WALL_ANGLE_DEG,
            period_px: default_period(DEFAULT_SIZE_PX),
            polar_shift_px: DEFAULT_POLAR_SHIFT_PX,
            scan: ScanParams::default(),
        }
    }
}

impl DomainsParams {
    /// A builder starting from the defaults (see [`DomainsParams::default`];
    /// the period defaults to `max(size / 3, 28)` px of the final size).
    #[allow(
        clippy::new_ret_no_self,
        reason = "parameters are only made through their checked builder"
    )]
    #[must_use]
    pub fn new() -> DomainsParamsBuilder {
        DomainsParamsBuilder::default()
    }

    /// Image side, px.
    #[must_use]
    pub fn size(&self) -> usize {
        self.size
    }

    /// Seed of the noise generator.
    #[must_use]
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Substrate thickness as a fraction of the image height.
    #[must_use]
    pub fn substrate_fraction(&self) -> f64 {
        self.substrate_fraction
    }

    /// Domain-wall inclination, degrees counter-clockwise from the x axis as
    /// seen on screen (rows growing downward).
    #[must_use]
    pub fn wall_angle_deg(&self) -> f64 {
        self.wall_angle_deg
    }

    /// Domain period (one stripe of each variant) measured across the walls, px.
    #[must_use]
    pub fn period_px(&self) -> f64 {
        self.period_px
    }

    /// B-column displacement along x: `+polar_shift_px` in variant 1,
    /// `-polar_shift_px` in variant 2.
    #[must_use]
    pub fn polar_shift_px(&self) -> f64 {
        self.polar_shift_px
    }

    /// Scan and noise model.
    #[must_use]
    pub fn scan(&self) -> &ScanParams {
        &self.scan
    }
}

/// Builder of [`DomainsParams`]; every rule is checked by [`Self::build`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DomainsParamsBuilder {
    size: usize,
    seed: u64,
    substrate_fraction: f64,
    wall_angle_deg: f64,
    period_px: Option<f64>,
    polar_shift_px: f64,
    scan: ScanParams,
}

impl Default for DomainsParamsBuilder {
    fn default() -> Self {
        Self {
            size: DEFAULT_SIZE_PX,
            seed: 0,
            substrate_fraction: DEFAULT_SUBSTRATE_FRACTION,
            wall_angle_deg: DEFAULT_WALL_ANGLE_DEG,
            period_px: None,
            polar_shift_px: DEFAULT_POLAR_SHIFT_PX,
            scan: ScanParams::default(),
        }
    }
}

impl DomainsParamsBuilder {
    /// Image side in px. Rule: `64 <= size <= 32768`.
    #[must_use]
    pub fn size(mut self, size: usize) -> Self {
        self.size = size;
        self
    }

    /// Seed of the noise generator (any value).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Substrate thickness as a fraction of the height. Rule: within `[0.1, 0.5]`.
    #[must_use]
    pub fn substrate_fraction(mut self, fraction: f64) -> Self {
        self.substrate_fraction = fraction;
        self
    }

    /// Domain-wall inclination in degrees (see [`DomainsParams::wall_angle_deg`]).
    /// Rule: `|angle| <= 90`.
    #[must_use]
    pub fn wall_angle_deg(mut self, angle_deg: f64) -> Self {
        self.wall_angle_deg = angle_deg;
        self
    }

    /// Domain period in px. Rule: finite and `>= 28` (two film cells).
    #[must_use]
    pub fn period_px(mut self, period_px: f64) -> Self {
        self.period_px = Some(period_px);
        self
    }

    /// B-column displacement in px. Rule: within `[0, 3.5]` (a quarter cell).
    #[must_use]
    pub fn polar_shift_px(mut self, shift_px: f64) -> Self {
        self.polar_shift_px = shift_px;
        self
    }

    /// The whole scan and noise model (replaces earlier `dose`/`read_noise`/`noise` calls).
    #[must_use]
    pub fn scan(mut self, scan: ScanParams) -> Self {
        self.scan = scan;
        self
    }

    /// Dose, counts per unit intensity (see [`ScanParams::dose`]).
    #[must_use]
    pub fn dose(mut self, dose: f64) -> Self {
        self.scan.dose = dose;
        self
    }

    /// Read-noise standard deviation (see [`ScanParams::read_noise`]).
    #[must_use]
    pub fn read_noise(mut self, read_noise: f64) -> Self {
        self.scan.read_noise = read_noise;
        self
    }

    /// Whether to add noise (false: the clean image).
    #[must_use]
    pub fn noise(mut self, noise: bool) -> Self {
        self.scan.noise = noise;
        self
    }

    /// Checks every rule and returns the parameters.
    ///
    /// # Errors
    /// [`crate::DataError::InvalidParameter`] naming the first parameter that
    /// breaks its rule (`size`, `substrate_fraction`, `wall_angle_deg`,
    /// `period_px`, `polar_shift_px`, or one of [`ScanParams`]).
    pub fn build(self) -> Result<DomainsParams> {
        check_size(self.size)?;
        if !(0.1..=0.5).contains(&self.substrate_fraction) {
            return Err(invalid(
                "substrate_fraction",
                self.substrate_fraction,
                "must be within [0.1, 0.5]",
            ));
        }
        check_angle("wall_angle_deg", self.wall_angle_deg)?;
        let period_px = self.period_px.unwrap_or_else(|| default_period(self.size));
        if !(period_px.is_finite() && period_px >= MIN_PERIOD_PX) {
            return Err(invalid(
                "period_px",
                period_px,
                "must be finite and >= 28 px",
            ));
        }
        if !(0.0..=MAX_POLAR_SHIFT_PX).contains(&self.polar_shift_px) {
            return Err(invalid(
                "polar_shift_px",
                self.polar_shift_px,
                "must be within [0, 3.5] px",
            ));
        }
        self.scan.validate()?;
        Ok(DomainsParams {
            size: self.size,
            seed: self.seed,
            substrate_fraction: self.substrate_fraction,
            wall_angle_deg: self.wall_angle_deg,
            period_px,
            polar_shift_px: self.polar_shift_px,
            scan: self.scan,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataError;

    fn name_of<T: std::fmt::Debug>(r: Result<T>) -> &'static str {
        match r {
            Err(DataError::InvalidParameter { name, .. }) => name,
            other => panic!("expected InvalidParameter, got {other:?}"),
        }
    }

    #[test]
    fn defaults_build_and_equal_default() {
        assert_eq!(
            TwoPhaseParams::new().build().unwrap(),
            TwoPhaseParams::default()
        );
        assert_eq!(
            DomainsParams::new().build().unwrap(),
            DomainsParams::default()
        );
        // The reference generator's values at 512 px.
        let p = TwoPhaseParams::default();
        assert_eq!(p.boundary(), Boundary::Curved { amplitude_px: 40.0 });
        assert_eq!(p.scan().dose, 40.0);
        assert!((DomainsParams::default().period_px() - 512.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn size_outside_64_to_32768_is_an_error() {
        assert_eq!(name_of(TwoPhaseParams::new().size(63).build()), "size");
        assert_eq!(name_of(TwoPhaseParams::new().size(40_000).build()), "size");
        assert_eq!(name_of(DomainsParams::new().size(0).build()), "size");
        assert!(TwoPhaseParams::new().size(64).build().is_ok());
        assert!(DomainsParams::new().size(64).build().is_ok());
    }

    #[test]
    fn straight_boundary_angle_beyond_90_is_an_error() {
        for a in [90.5, -100.0, f64::NAN] {
            let b = TwoPhaseParams::new().boundary(Boundary::Straight { angle_deg: a });
            assert_eq!(name_of(b.build()), "angle_deg");
        }
        let b = TwoPhaseParams::new().boundary(Boundary::Straight { angle_deg: -90.0 });
        assert!(b.build().is_ok());
    }

    #[test]
    fn curved_boundary_amplitude_outside_quarter_size_is_an_error() {
        for a in [-1.0, 129.0, f64::NAN] {
            let b = TwoPhaseParams::new().boundary(Boundary::Curved { amplitude_px: a });
            assert_eq!(name_of(b.build()), "amplitude_px");
        }
        // The default amplitude scales with the size and is valid at 64 px (5 px).
        let p = TwoPhaseParams::new().size(64).build().unwrap();
        assert_eq!(p.boundary(), Boundary::Curved { amplitude_px: 5.0 });
    }

    #[test]
    fn substrate_fraction_outside_range_is_an_error() {
        for f in [0.05, 0.6, f64::NAN] {
            assert_eq!(
                name_of(DomainsParams::new().substrate_fraction(f).build()),
                "substrate_fraction"
            );
        }
    }

    #[test]
    fn wall_angle_beyond_90_is_an_error() {
        assert_eq!(
            name_of(DomainsParams::new().wall_angle_deg(135.0).build()),
            "wall_angle_deg"
        );
    }

    #[test]
    fn period_below_two_cells_is_an_error() {
        for p in [27.9, f64::INFINITY, f64::NAN] {
            assert_eq!(
                name_of(DomainsParams::new().period_px(p).build()),
                "period_px"
            );
        }
        // The default never breaks the rule: max(64 / 3, 28) = 28 at 64 px.
        assert_eq!(
            DomainsParams::new().size(64).build().unwrap().period_px(),
            28.0
        );
    }

    #[test]
    fn polar_shift_outside_range_is_an_error() {
        for s in [-0.1, 3.6, f64::NAN] {
            assert_eq!(
                name_of(DomainsParams::new().polar_shift_px(s).build()),
                "polar_shift_px"
            );
        }
    }

    #[test]
    fn scan_rules_are_checked_by_both_builders() {
        assert_eq!(name_of(TwoPhaseParams::new().dose(0.0).build()), "dose");
        assert_eq!(name_of(DomainsParams::new().dose(-1.0).build()), "dose");
        assert_eq!(
            name_of(TwoPhaseParams::new().read_noise(-0.1).build()),
            "read_noise"
        );
        assert_eq!(
            name_of(DomainsParams::new().read_noise(f64::NAN).build()),
            "read_noise"
        );
        let bad = ScanParams {
            shear: 1.0,
            ..ScanParams::default()
        };
        assert_eq!(name_of(TwoPhaseParams::new().scan(bad).build()), "shear");
        assert_eq!(name_of(DomainsParams::new().scan(bad).build()), "shear");
    }
}
