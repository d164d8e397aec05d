//! Bilateral denoising: scikit-image-exact and textbook Gaussian variants.
//!
//! Reference: scikit-image 0.26 `skimage.restoration.denoise_bilateral`
//! (Python driver `restoration/_denoise.py`, loop `restoration/_denoise_cy.pyx`);
//! C. Tomasi and R. Manduchi, "Bilateral filtering for gray and color images",
//! ICCV 1998; Biswas et al. 2023, *Mach. Learn.: Sci. Technol.* 4 045004, eq. 4
//! (the SL1 loss denoises latent maps with `sigma_color=None, sigma_spatial=5`).
//!
//! This module holds the public API: the parameters and their builder,
//! [`denoise_bilateral`] and [`bilateral_operator`]. The computations sit
//! beside it, one file each, with their tests:
//! - `skimage.rs`: the kernel of [`BilateralMode::Skimage`] (scikit-image's
//!   colour table, spatial table as its loop reads it, and zero-padded loop);
//! - `gaussian.rs`: the kernel of [`BilateralMode::Gaussian`];
//! - `operator.rs`: [`bilateral_operator`], the filter with its weights frozen
//!   at an image as a dense matrix.

mod gaussian;
mod operator;
mod skimage;

pub use operator::bilateral_operator;

use crate::error::check_finite;
use crate::numeric::{min_max, numpy_std};
use crate::{ImagingError, Real, Result};
use gaussian::gaussian_bilateral;
use ndarray::{Array2, ArrayView2};
use skimage::skimage_bilateral;

/// scikit-image's default `sigma_spatial` of `denoise_bilateral` (pixels).
pub const DEFAULT_SIGMA_SPATIAL: f64 = 1.0;

/// The `sigma_spatial` of the phy-VAE paper (Biswas et al. 2023, eq. 4 and the
/// visualisation pipeline): 5 pixels, hence a 31 x 31 window.
pub const PAPER_SIGMA_SPATIAL: f64 = 5.0;

/// scikit-image's default number of colour-distance bins of `denoise_bilateral`.
pub const DEFAULT_BINS: usize = 10_000;

/// Smallest automatic window side, scikit-image's `max(5, ...)`.
const MIN_AUTO_WIN_SIZE: usize = 5;

/// The colour (range) standard deviation of a bilateral filter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SigmaColor {
    /// The population standard deviation of the input image, computed as NumPy's
    /// `image.std()` (scikit-image's `sigma_color=None`).
    ImageStd,
    /// A fixed value in the units of the image (must be finite and > 0).
    Value(f64),
}

/// Which bilateral filter [`denoise_bilateral`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BilateralMode {
    /// Exactly scikit-image 0.26 `denoise_bilateral` on a 2-D grayscale image,
    /// quirks included (this is what the phy-VAE authors' losses computed):
    /// - **zero padding counts**: out-of-image neighbours have the value
    ///   `cval = 0` and contribute weight (`mode='constant'`), which pulls
    ///   border pixels toward 0; for an 8 x 8 map under a 31 x 31 window most of
    ///   the window is padding. Images with a negative minimum are shifted to
    ///   start at 0 first, but the padding value is not shifted;
    /// - **scrambled spatial kernel**: the spatial table is built on
    ///   `np.arange(-win//2, win//2 + 1)`, i.e. `(win + 1) x (win + 1)` points,
    ///   but read as `table[kr * win + kc]`. The weight of window position
    ///   `(kr, kc)` is therefore the Gaussian of the grid point
    ///   `(f / (win + 1), f % (win + 1))` with `f = kr * win + kc`, a sheared
    ///   and asymmetric kernel: in a 31 x 31 window the centre pixel gets
    ///   `exp(-(1 + 256) / 50)` ~ 0.006, less than 80 % of the window, and the
    ///   weight 1 sits at offset (+2, -14);
    /// - **quantised colour weight**: `|centre - v|` is mapped to bin
    ///   `min(floor(|centre - v| * bins / max), bins - 1)` of a table of
    ///   `exp(-x^2 / (2 sigma_color^2))` on `linspace(0, max, bins, endpoint=False)`,
    ///   where the table uses the unshifted maximum and the bin scale the
    ///   shifted one;
    /// - sums in the element type, in scikit-image's row-major window order
    ///   (`f64` output is bit-identical to scikit-image up to the last-place
    ///   differences between NumPy's vectorised `exp` and the C library's);
    /// - a constant image is returned unchanged.
    #[default]
    Skimage,
    /// The textbook bilateral filter (Tomasi & Manduchi 1998): weight
    /// `exp(-(dr^2 + dc^2) / (2 sigma_spatial^2)) * exp(-(centre - v)^2 / (2 sigma_color^2))`
    /// over the same square window, with the exact (unquantised) colour
    /// Gaussian and a symmetric spatial kernel. At the border the sum runs over
    /// the neighbours inside the image only and is renormalised by their total
    /// weight. This was chosen over `reflect` padding because it invents no
    /// data, weights every real pixel once (reflection counts pixels near the
    /// border twice and is ill-defined when the window is larger than the image,
    /// as for 8 x 8 latent maps under a 31 x 31 window), and keeps the output a
    /// convex combination of input pixels. Consequences: a constant image is
    /// returned unchanged; transposing the input transposes the output (up to
    /// rounding of the summation order); the output lies in `[min, max]` of the
    /// input (it is clamped there to absorb last-place rounding). `bins` is
    /// not used. Computed in the element type.
    Gaussian,
}

/// Validated parameters of [`denoise_bilateral`]; obtain them from
/// [`BilateralParams::new`] (a [`BilateralParamsBuilder`]) or
/// [`BilateralParams::paper`].
#[derive(Debug, Clone, PartialEq)]
pub struct BilateralParams {
    sigma_color: SigmaColor,
    sigma_spatial: f64,
    win_size: Option<usize>,
    bins: usize,
    mode: BilateralMode,
}

impl BilateralParams {
    /// A builder with scikit-image's defaults: `sigma_color` = image standard
    /// deviation, `sigma_spatial` = 1, automatic window, 10 000 bins,
    /// [`BilateralMode::Skimage`].
    #[allow(
        clippy::new_ret_no_self,
        reason = "parameters are only obtained validated, through the builder"
    )]
    #[must_use]
    pub fn new() -> BilateralParamsBuilder {
        BilateralParamsBuilder::default()
    }

    /// The settings of the phy-VAE SL1 loss (Biswas et al. 2023, eq. 4):
    /// `sigma_color` = image standard deviation (the authors' `None`),
    /// `sigma_spatial` = [`PAPER_SIGMA_SPATIAL`], automatic window (31),
    /// 10 000 bins, [`BilateralMode::Skimage`].
    #[must_use]
    pub fn paper() -> Self {
        Self {
            sigma_color: SigmaColor::ImageStd,
            sigma_spatial: PAPER_SIGMA_SPATIAL,
            win_size: None,
            bins: DEFAULT_BINS,
            mode: BilateralMode::Skimage,
        }
    }

    /// The colour standard deviation.
    #[must_use]
    pub fn sigma_color(&self) -> SigmaColor {
        self.sigma_color
    }

    /// The spatial standard deviation, in pixels.
    #[must_use]
    pub fn sigma_spatial(&self) -> f64 {
        self.sigma_spatial
    }

    /// The window side given explicitly, if any.
    #[must_use]
    pub fn win_size(&self) -> Option<usize> {
        self.win_size
    }

    /// The number of colour-distance bins (used by [`BilateralMode::Skimage`]).
    #[must_use]
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// The filter variant.
    #[must_use]
    pub fn mode(&self) -> BilateralMode {
        self.mode
    }

    /// The window side actually used: `win_size` if given, otherwise
    /// scikit-image's `max(5, 2 * ceil(3 * sigma_spatial) + 1)` (31 for
    /// `sigma_spatial = 5`). Always odd; saturates for absurdly large sigmas.
    #[must_use]
    pub fn window(&self) -> usize {
        self.win_size.unwrap_or_else(|| {
            let half = (3.0 * self.sigma_spatial).ceil();
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let half = half.min((usize::MAX / 4) as f64) as usize;
            (2 * half + 1).max(MIN_AUTO_WIN_SIZE)
        })
    }
}

/// Builder of [`BilateralParams`]; [`build`](Self::build) checks each rule once.
#[derive(Debug, Clone, PartialEq)]
pub struct BilateralParamsBuilder {
    sigma_color: SigmaColor,
    sigma_spatial: f64,
    win_size: Option<usize>,
    bins: usize,
    mode: BilateralMode,
}

impl Default for BilateralParamsBuilder {
    fn default() -> Self {
        Self {
            sigma_color: SigmaColor::ImageStd,
            sigma_spatial: DEFAULT_SIGMA_SPATIAL,
            win_size: None,
            bins: DEFAULT_BINS,
            mode: BilateralMode::Skimage,
        }
    }
}

impl BilateralParamsBuilder {
    /// Sets the colour standard deviation (`Value` must be finite and > 0).
    #[must_use]
    pub fn sigma_color(mut self, sigma_color: SigmaColor) -> Self {
        self.sigma_color = sigma_color;
        self
    }

    /// Sets the spatial standard deviation in pixels (finite and > 0).
    #[must_use]
    pub fn sigma_spatial(mut self, sigma_spatial: f64) -> Self {
        self.sigma_spatial = sigma_spatial;
        self
    }

    /// Sets the window side explicitly (`None`: derived from `sigma_spatial`;
    /// `Some` must be odd and >= 1).
    #[must_use]
    pub fn win_size(mut self, win_size: Option<usize>) -> Self {
        self.win_size = win_size;
        self
    }

    /// Sets the number of colour-distance bins (>= 1).
    #[must_use]
    pub fn bins(mut self, bins: usize) -> Self {
        self.bins = bins;
        self
    }

    /// Sets the filter variant.
    #[must_use]
    pub fn mode(mut self, mode: BilateralMode) -> Self {
        self.mode = mode;
        self
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`ImagingError::InvalidParameter`] naming the first broken rule:
    /// `sigma_color` (a `Value` must be finite and > 0), `sigma_spatial`
    /// (finite and > 0), `win_size` (odd and >= 1), `bins` (>= 1).
    pub fn build(self) -> Result<BilateralParams> {
        if let SigmaColor::Value(v) = self.sigma_color
            && !(v.is_finite() && v > 0.0)
        {
            return Err(ImagingError::InvalidParameter {
                name: "sigma_color",
                value: v.to_string(),
                rule: "must be finite and > 0",
            });
        }
        if !(self.sigma_spatial.is_finite() && self.sigma_spatial > 0.0) {
            return Err(ImagingError::InvalidParameter {
                name: "sigma_spatial",
                value: self.sigma_spatial.to_string(),
                rule: "must be finite and > 0",
            });
        }
        if let Some(w) = self.win_size
            && w % 2 == 0
        {
            return Err(ImagingError::InvalidParameter {
                name: "win_size",
                value: w.to_string(),
                rule: "must be odd and >= 1",
            });
        }
        if self.bins == 0 {
            return Err(ImagingError::InvalidParameter {
                name: "bins",
                value: self.bins.to_string(),
                rule: "must be >= 1",
            });
        }
        Ok(BilateralParams {
            sigma_color: self.sigma_color,
            sigma_spatial: self.sigma_spatial,
            win_size: self.win_size,
            bins: self.bins,
            mode: self.mode,
        })
    }
}

/// Bilateral denoising of a 2-D grayscale image, computed in `T`.
///
/// [`BilateralMode::Skimage`] reproduces scikit-image 0.26
/// `skimage.restoration.denoise_bilateral(img, win_size, sigma_color,
/// sigma_spatial, bins, mode='constant', cval=0)` (see the variant for its
/// quirks); [`BilateralMode::Gaussian`] is the textbook filter with
/// renormalised borders. Both return a constant image unchanged.
///
/// ```
/// use ndarray::array;
/// use phyvae_imaging::filters::{BilateralMode, BilateralParams, SigmaColor, denoise_bilateral};
///
/// let img = array![[0.0_f64, 1.0]];
/// let p = BilateralParams::new()
///     .sigma_color(SigmaColor::Value(1.0))
///     .win_size(Some(3))
///     .mode(BilateralMode::Gaussian)
///     .build()?;
/// let out = denoise_bilateral(img.view(), &p)?;
/// // Left pixel: (0 * 1 + 1 * e^-1/2 * e^-1/2) / (1 + e^-1).
/// let e = (-1.0_f64).exp();
/// assert!((out[[0, 0]] - e / (1.0 + e)).abs() < 1e-15);
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
///
/// # Errors
/// [`ImagingError::EmptyImage`] / [`ImagingError::NonFinite`] for an empty
/// image or a NaN / infinite pixel; [`ImagingError::InvalidParameter`] on
/// `win_size` if the window is too large to pad the image in memory, and on
/// `sigma_color` if its square (of the value given, or of the image's standard
/// deviation) underflows to 0 in `T`, e.g. `1e-30` for `f32`; scikit-image
/// divides by that 0 and returns NaN.
#[must_use = "the denoised image is returned; the input is not modified"]
pub fn denoise_bilateral<T: Real>(
    img: ArrayView2<'_, T>,
    params: &BilateralParams,
) -> Result<Array2<T>> {
    check_finite(img)?;
    let (lo, hi) = min_max(img);
    if lo == hi {
        return Ok(img.to_owned());
    }
    let sigma_color_sq = colour_variance(img, params)?;
    match params.mode {
        BilateralMode::Skimage => skimage_bilateral(img, params, (lo, hi), sigma_color_sq),
        BilateralMode::Gaussian => gaussian_bilateral(img, params, (lo, hi), sigma_color_sq),
    }
}

/// `sigma_color^2` in `T` for a finite, non-constant image.
///
/// # Errors
/// [`ImagingError::InvalidParameter`] on `sigma_color` if it underflows to 0.
fn colour_variance<T: Real>(img: ArrayView2<'_, T>, params: &BilateralParams) -> Result<T> {
    let sigma_color_sq = match params.sigma_color {
        SigmaColor::ImageStd => {
            let s = numpy_std(img);
            s * s
        }
        // Python float `sigma_color**2`, cast to the image type when divided into it.
        SigmaColor::Value(v) => T::c(v * v),
    };
    if sigma_color_sq == T::zero() {
        return Err(ImagingError::InvalidParameter {
            name: "sigma_color",
            value: format!("{:?}", params.sigma_color),
            rule: "its square underflows to 0 in the image type (scikit-image would return NaN)",
        });
    }
    Ok(sigma_color_sq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    /// Parameters of the hand-computed cases: sigmas 1, window 3, 10 bins.
    pub(super) fn params(mode: BilateralMode) -> BilateralParams {
        BilateralParams::new()
            .sigma_color(SigmaColor::Value(1.0))
            .sigma_spatial(1.0)
            .win_size(Some(3))
            .bins(10)
            .mode(mode)
            .build()
            .unwrap()
    }

    pub(super) fn invalid_name(r: Result<BilateralParams>) -> &'static str {
        match r {
            Err(ImagingError::InvalidParameter { name, .. }) => name,
            other => panic!("expected InvalidParameter, got {other:?}"),
        }
    }

    /// Spatial weights of win 3, sigma 1, in window order: grid np.arange(-2, 2),
    /// flat k -> (k / 4 - 2, k % 4 - 2), squared distances [8, 5, 4, 5, 5, 2, 1, 2, 4].
    pub(super) fn win3_weights() -> [f64; 9] {
        [8.0, 5.0, 4.0, 5.0, 5.0, 2.0, 1.0, 2.0, 4.0].map(|d2: f64| (-d2 / 2.0).exp())
    }

    #[test]
    fn defaults_are_scikit_image_defaults() {
        let p = BilateralParams::new().build().unwrap();
        assert_eq!(p.sigma_color(), SigmaColor::ImageStd);
        assert_eq!(p.sigma_spatial(), 1.0);
        assert_eq!(p.win_size(), None);
        assert_eq!(p.bins(), 10_000);
        assert_eq!(p.mode(), BilateralMode::Skimage);
        let paper = BilateralParams::paper();
        assert_eq!(paper.sigma_spatial(), 5.0);
        assert_eq!(paper.window(), 31);
    }

    #[test]
    fn rule_sigma_color_positive_finite() {
        for v in [0.0, -0.1, f64::NAN, f64::INFINITY] {
            let r = BilateralParams::new()
                .sigma_color(SigmaColor::Value(v))
                .build();
            assert_eq!(invalid_name(r), "sigma_color");
        }
        assert!(
            BilateralParams::new()
                .sigma_color(SigmaColor::Value(1e-9))
                .build()
                .is_ok()
        );
    }

    #[test]
    fn rule_sigma_spatial_positive_finite() {
        for v in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(
                invalid_name(BilateralParams::new().sigma_spatial(v).build()),
                "sigma_spatial"
            );
        }
    }

    #[test]
    fn rule_win_size_odd_at_least_one() {
        for w in [0, 2, 30] {
            assert_eq!(
                invalid_name(BilateralParams::new().win_size(Some(w)).build()),
                "win_size"
            );
        }
        assert!(BilateralParams::new().win_size(Some(1)).build().is_ok());
    }

    #[test]
    fn rule_bins_at_least_one() {
        assert_eq!(invalid_name(BilateralParams::new().bins(0).build()), "bins");
        assert!(BilateralParams::new().bins(1).build().is_ok());
    }

    #[test]
    fn automatic_window_is_scikit_image_formula() {
        // max(5, 2 * ceil(3 * s) + 1)
        for (s, w) in [(5.0, 31), (1.0, 7), (0.5, 5), (0.1, 5), (1.01, 9)] {
            let p = BilateralParams::new().sigma_spatial(s).build().unwrap();
            assert_eq!(p.window(), w, "sigma_spatial {s}");
        }
        let p = BilateralParams::new()
            .win_size(Some(3))
            .sigma_spatial(5.0)
            .build()
            .unwrap();
        assert_eq!(p.window(), 3);
    }

    #[test]
    fn constant_image_unchanged_in_both_modes() {
        let img = Array2::from_elem((4, 5), 0.3_f32);
        for mode in [BilateralMode::Skimage, BilateralMode::Gaussian] {
            let out = denoise_bilateral(
                img.view(),
                &BilateralParams::new().mode(mode).build().unwrap(),
            )
            .unwrap();
            assert_eq!(out, img);
        }
    }

    #[test]
    fn modes_differ_on_small_image() {
        // An 8 x 8 map with values k / 6, k = (3 r + 5 c) mod 7 (mean 0.49, std 0.33)
        // under the paper's 31 x 31 window: in Skimage mode the zero padding is
        // within a few colour sigmas of every pixel and pulls the whole map toward 0;
        // the Gaussian mode only averages real pixels and keeps the mean.
        let img = Array2::from_shape_fn((8, 8), |(r, c)| ((r * 3 + c * 5) % 7) as f64 / 6.0);
        let p = BilateralParams::new().sigma_spatial(PAPER_SIGMA_SPATIAL);
        let a = denoise_bilateral(img.view(), &p.clone().build().unwrap()).unwrap();
        let b = denoise_bilateral(
            img.view(),
            &p.mode(BilateralMode::Gaussian).build().unwrap(),
        )
        .unwrap();
        let mean = |x: &Array2<f64>| x.sum() / 64.0;
        assert!(mean(&a) < 0.25, "Skimage mode mean {}", mean(&a));
        assert!(
            (mean(&b) - mean(&img)).abs() < 0.1,
            "Gaussian mode mean {}",
            mean(&b)
        );
        assert!(b.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }

    #[test]
    fn rejects_colour_sigma_that_underflows() {
        // (1e-30)^2 = 1e-60 is 0 in f32 (smallest subnormal ~1.4e-45).
        let img = array![[0.0_f32, 1.0]];
        let p = BilateralParams::new()
            .sigma_color(SigmaColor::Value(1e-30))
            .build()
            .unwrap();
        assert_eq!(
            invalid_name(denoise_bilateral(img.view(), &p).map(|_| p.clone())),
            "sigma_color"
        );
        // Image std 5e-26: its square 2.5e-51 is 0 in f32 as well; fine in f64.
        let tiny = array![[0.0_f32, 1e-25]];
        let p = BilateralParams::paper();
        assert_eq!(
            invalid_name(denoise_bilateral(tiny.view(), &p).map(|_| p.clone())),
            "sigma_color"
        );
        assert!(denoise_bilateral(tiny.mapv(f64::from).view(), &p).is_ok());
        // A subnormal square (1e-20^2 = 1e-40 in f32) still works in Gaussian mode:
        // the two pixels are far apart in colour, so each keeps its own value.
        let p = BilateralParams::new()
            .sigma_color(SigmaColor::Value(1e-20))
            .mode(BilateralMode::Gaussian)
            .build()
            .unwrap();
        assert_eq!(denoise_bilateral(img.view(), &p).unwrap(), img);
    }

    #[test]
    fn rejects_empty_and_non_finite() {
        let p = BilateralParams::paper();
        let empty = Array2::<f64>::zeros((0, 3));
        assert!(matches!(
            denoise_bilateral(empty.view(), &p),
            Err(ImagingError::EmptyImage { .. })
        ));
        let bad = array![[0.0_f32, f32::NAN]];
        assert!(matches!(
            denoise_bilateral(bad.view(), &p),
            Err(ImagingError::NonFinite { row: 0, col: 1, .. })
        ));
    }
}
