//! Bilateral denoising: scikit-image-exact and textbook Gaussian variants.
//!
//! Reference: scikit-image 0.26 `skimage.restoration.denoise_bilateral`
//! (Python driver `restoration/_denoise.py`, loop `restoration/_denoise_cy.pyx`);
//! C. Tomasi and R. Manduchi, "Bilateral filtering for gray and color images",
//! ICCV 1998; Biswas et al. 2023, *Mach. Learn.: Sci. Technol.* 4 045004, eq. 4
//! (the SL1 loss denoises latent maps with `sigma_color=None, sigma_spatial=5`).

use crate::error::check_finite;
use crate::numeric::{min_max, numpy_std};
use crate::{ImagingError, Real, Result};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// scikit-image's default `sigma_spatial` of `denoise_bilateral` (pixels).
pub const DEFAULT_SIGMA_SPATIAL: f64 = 1.0;

/// The `sigma_spatial` of the phy-VAE paper (Biswas et al. 2023, eq. 4 and the
/// visualisation pipeline): 5 pixels, hence a 31 x 31 window.
pub const PAPER_SIGMA_SPATIAL: f64 = 5.0;

/// scikit-image's default number of colour-distance bins of `denoise_bilateral`.
pub const DEFAULT_BINS: usize = 10_000;

/// Smallest automatic window side, scikit-image's `max(5, ...)`.
const MIN_AUTO_WIN_SIZE: usize = 5;

/// Number of neighbouring output pixels filtered together in scikit-image
/// mode; their accumulators are independent, which lets the processor overlap
/// them while each pixel keeps scikit-image's summation order.
const LANES: usize = 4;

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

/// The bilateral filter of `image`, with its weights frozen at `image`, as a
/// dense linear operator: the `n x n` matrix `W` (`n = h * w`; row `p` is output
/// pixel `p`, column `q` input pixel `q`, both row-major) with
/// `W . vec(image) = vec(denoise_bilateral(image, params))` (to rounding).
///
/// Row `p` holds the normalised weights `w_pq / S_p` of the in-image
/// neighbours `q` of `p`, where `S_p` sums the weights of every window position
/// (the same weights as the filter; the sums in another order, so the result
/// agrees with [`denoise_bilateral`] to rounding, not bit for bit):
/// - [`BilateralMode::Skimage`]: `S_p` includes the zero-padding neighbours
///   (scikit-image's `mode='constant', cval=0`), so a row sums to less than 1
///   where the window leaves the image; the padding contributes weight but no
///   value. All padding positions have the value 0, hence one colour weight;
///   their spatial weights are summed in `f64` from a summed-area table, so
///   the cost is `O(n^2 + win^2)` rather than `O(n win^2)`. If the image has a negative minimum `lo`, scikit-image shifts the
///   image to start at 0 and shifts the output back, which is the affine map
///   `out_p = sum_q (w_pq / S_p) v_q + lo * P_p / S_p` (`P_p`: the padding
///   weight of `p`). Since `lo` is itself the value of a pixel (the first
///   minimum in row-major order), `P_p / S_p` is added to that pixel's column,
///   so that the identity above holds exactly at `image`;
/// - [`BilateralMode::Gaussian`]: the in-image neighbours only; rows sum to 1.
///
/// A constant image gives the identity (both modes return it unchanged).
///
/// This is the linearisation used to differentiate the phy-VAE SL1 loss
/// (Biswas et al. 2023, eq. 4) with the bilateral weights held constant: for a
/// nearby image `v`, `W . vec(v)` filters `v` with the weights of `image`. The
/// matrix has `n^2` entries (4096 for an 8 x 8 latent map): meant for small maps.
///
/// ```
/// use ndarray::{Array1, Array2};
/// use phyvae_imaging::filters::{BilateralParams, bilateral_operator, denoise_bilateral};
///
/// let img = Array2::from_shape_fn((4, 4), |(r, c)| ((r * 3 + c * 5) % 7) as f64 / 6.0);
/// let w = bilateral_operator(img.view(), &BilateralParams::paper())?;
/// let flat = Array1::from_iter(img.iter().copied());
/// let filtered = denoise_bilateral(img.view(), &BilateralParams::paper())?;
/// for (a, b) in w.dot(&flat).iter().zip(filtered.iter()) {
///     assert!((a - b).abs() < 1e-12);
/// }
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
///
/// # Errors
/// As [`denoise_bilateral`], and [`ImagingError::InvalidParameter`] on `image`
/// if `n^2` overflows `usize`.
#[must_use = "the operator is returned; the input is not modified"]
pub fn bilateral_operator<T: Real>(
    image: ArrayView2<'_, T>,
    params: &BilateralParams,
) -> Result<Array2<T>> {
    check_finite(image)?;
    let (h, w) = image.dim();
    let n = h * w;
    if n.checked_mul(n).is_none() {
        return Err(ImagingError::InvalidParameter {
            name: "image",
            value: format!("{h} x {w}"),
            rule: "too large for a dense (h w) x (h w) operator",
        });
    }
    let (lo, hi) = min_max(image);
    if lo == hi {
        return Ok(Array2::eye(n));
    }
    let sigma_color_sq = colour_variance(image, params)?;
    match params.mode {
        BilateralMode::Skimage => skimage_operator(image, params, (lo, hi), sigma_color_sq),
        BilateralMode::Gaussian => Ok(gaussian_operator(image, params, sigma_color_sq)),
    }
}

/// [`bilateral_operator`] in [`BilateralMode::Skimage`] for a finite,
/// non-constant image: the weights of [`skimage_bilateral`], from the same
/// tables; the zero-padding positions of a pixel are summed at once.
fn skimage_operator<T: Real>(
    img: ArrayView2<'_, T>,
    params: &BilateralParams,
    (lo, hi): (T, T),
    sigma_color_sq: T,
) -> Result<Array2<T>> {
    let (h, w) = img.dim();
    let n = h * w;
    let win = params.window();
    let ext = (win - 1) / 2;
    win.checked_mul(win)
        .ok_or_else(|| ImagingError::InvalidParameter {
            name: "win_size",
            value: win.to_string(),
            rule: "window too large to pad the image",
        })?;
    let spatial = skimage_spatial_weights::<T>(win, params.sigma_spatial);
    let shift = lo < T::zero();
    let max_value = if shift { hi - lo } else { hi };
    #[allow(clippy::cast_precision_loss)]
    let dist_scale = T::c(params.bins as f64) / max_value;
    let shifted: Vec<T> = img
        .iter()
        .map(|&v| if shift { v - lo } else { v })
        .collect();
    let color = color_lut_for(&shifted, params.bins, sigma_color_sq, hi, dist_scale);
    let max_bin = params.bins - 1;
    // The first minimum, row-major: the pixel whose value scikit-image shifts by.
    let argmin = img.iter().position(|&v| v == lo).unwrap_or(0);
    // Summed-area table of the spatial weights (in f64): the padding positions
    // of a pixel are the window minus a rectangle, and all have the value 0, so
    // they share one colour weight and their spatial weights can be summed at once.
    let side = win + 1;
    let mut area = vec![0.0_f64; side * side];
    for kr in 0..win {
        for kc in 0..win {
            area[(kr + 1) * side + kc + 1] = spatial[kr * win + kc].f64()
                + area[kr * side + kc + 1]
                + area[(kr + 1) * side + kc]
                - area[kr * side + kc];
        }
    }
    let rect = |(r0, r1): (usize, usize), (c0, c1): (usize, usize)| {
        area[r1 * side + c1] - area[r0 * side + c1] - area[r1 * side + c0] + area[r0 * side + c0]
    };

    let mut op = Array2::zeros((n, n));
    for (p, mut row) in op.outer_iter_mut().enumerate() {
        let (r, c) = (p / w, p % w);
        let centre = shifted[p];
        // Window rows kr (and columns kc) whose neighbour r + kr - ext lies in the image.
        let rows = (ext.saturating_sub(r), (ext + h - r).min(win));
        let cols = (ext.saturating_sub(c), (ext + w - c).min(win));
        let mut total = T::zero();
        for kr in rows.0..rows.1 {
            let rr = r + kr - ext;
            for kc in cols.0..cols.1 {
                let q = rr * w + c + kc - ext;
                let weight = spatial[kr * win + kc]
                    * color[color_bin(centre - shifted[q], dist_scale, max_bin)];
                row[q] = weight;
                total += weight;
            }
        }
        let padding_spatial = rect((0, win), (0, win)) - rect(rows, cols);
        let padding = T::c(padding_spatial) * color[color_bin(centre, dist_scale, max_bin)];
        total += padding;
        row.mapv_inplace(|v| v / total);
        if shift {
            row[argmin] += padding / total;
        }
    }
    Ok(op)
}

/// [`bilateral_operator`] in [`BilateralMode::Gaussian`] for a finite,
/// non-constant image: the weights of [`gaussian_bilateral`].
fn gaussian_operator<T: Real>(
    img: ArrayView2<'_, T>,
    params: &BilateralParams,
    sigma_color_sq: T,
) -> Array2<T> {
    let (h, w) = img.dim();
    let n = h * w;
    let ext = (params.window() - 1) / 2;
    let (er, ec) = (ext.min(h - 1), ext.min(w - 1));
    let sigma_sq = params.sigma_spatial * params.sigma_spatial;
    let colour_factor = (T::c(-0.5) / sigma_color_sq).max(T::min_value());
    let data: Vec<T> = img.iter().copied().collect();
    let mut op = Array2::zeros((n, n));
    for (p, mut row) in op.outer_iter_mut().enumerate() {
        let (r, c) = (p / w, p % w);
        let centre = data[p];
        let mut total = T::zero();
        for rr in r.saturating_sub(er)..(r + er + 1).min(h) {
            for cc in c.saturating_sub(ec)..(c + ec + 1).min(w) {
                #[allow(clippy::cast_precision_loss)]
                let (dr, dc) = (rr as f64 - r as f64, cc as f64 - c as f64);
                let s = T::c((-(dr * dr + dc * dc) / (2.0 * sigma_sq)).exp());
                let d = centre - data[rr * w + cc];
                let weight = s * (d * d * colour_factor).exp();
                row[rr * w + cc] = weight;
                total += weight;
            }
        }
        row.mapv_inplace(|v| v / total);
    }
    op
}

/// scikit-image's colour table: `np.exp(-0.5 * (values**2 / sigma_sq), dtype=T)`
/// with `values = np.linspace(0, max_value, bins, endpoint=False)` in `T`
/// (`step = max_value / bins`, `values[b] = b * step`; NumPy's zero-step branch
/// `b / bins * max_value` when the step underflows to 0).
struct ColorTable<T> {
    bins: T,
    step: T,
    max_value: T,
    sigma_sq: T,
}

impl<T: Real> ColorTable<T> {
    fn new(bins: usize, sigma_sq: T, max_value: T) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let bins = T::c(bins as f64);
        Self {
            bins,
            step: max_value / bins,
            max_value,
            sigma_sq,
        }
    }

    /// Entry `b` of the table.
    fn entry(&self, b: usize) -> T {
        #[allow(clippy::cast_precision_loss)]
        let bt = T::c(b as f64);
        let v = if self.step == T::zero() {
            bt / self.bins * self.max_value
        } else {
            bt * self.step
        };
        (T::c(-0.5) * (v * v / self.sigma_sq)).exp()
    }
}

/// The whole colour table.
fn skimage_color_lut<T: Real>(bins: usize, sigma_sq: T, max_value: T) -> Vec<T> {
    let table = ColorTable::new(bins, sigma_sq, max_value);
    (0..bins).map(|b| table.entry(b)).collect()
}

/// scikit-image's colour bin of a pixel difference `t`:
/// `min(<Py_ssize_t>(sqrt(t * t) * dist_scale), bins - 1)`.
fn color_bin<T: Real>(t: T, dist_scale: T, max_bin: usize) -> usize {
    ((t * t).sqrt() * dist_scale)
        .to_usize()
        .map_or(max_bin, |b| b.min(max_bin))
}

/// The colour table as the filter reads it. For a small image, whose
/// `n (n + 1)` (centre, neighbour-or-padding) value pairs are fewer than the
/// bins, only the entries some pair falls into are evaluated (the others stay
/// 0 and are never read); each evaluated entry is the same number as in the
/// full table.
fn color_lut_for<T: Real>(
    pixels: &[T],
    bins: usize,
    sigma_sq: T,
    max_value: T,
    dist_scale: T,
) -> Vec<T> {
    let n = pixels.len();
    if n.saturating_mul(n + 1) >= bins {
        return skimage_color_lut(bins, sigma_sq, max_value);
    }
    let table = ColorTable::new(bins, sigma_sq, max_value);
    let mut lut = vec![T::zero(); bins];
    let mut done = vec![false; bins];
    for &c in pixels {
        for &v in pixels.iter().chain(std::iter::once(&T::zero())) {
            let b = color_bin(c - v, dist_scale, bins - 1);
            if !done[b] {
                done[b] = true;
                lut[b] = table.entry(b);
            }
        }
    }
    lut
}

/// scikit-image's spatial weights as its loop reads them: entry `kr * win + kc`
/// of the `(win + 1)^2` table `exp(-0.5 * (hypot(i, j)**2 / sigma^2))` over
/// `i, j` in `np.arange(-win//2, win//2 + 1)`; argument in `f64`, exponential
/// in `T` (NumPy's `np.exp(..., dtype=T)`).
fn skimage_spatial_weights<T: Real>(win: usize, sigma_spatial: f64) -> Vec<T> {
    let side = win + 1;
    // -win // 2 in Python (floor division) for odd win.
    #[allow(clippy::cast_precision_loss)]
    let first = -(side as f64 / 2.0);
    let sigma_sq = sigma_spatial * sigma_spatial;
    (0..win * win)
        .map(|flat| {
            #[allow(clippy::cast_precision_loss)]
            let (i, j) = ((flat / side) as f64 + first, (flat % side) as f64 + first);
            let d = i.hypot(j);
            T::c(-0.5 * (d * d / sigma_sq)).exp()
        })
        .collect()
}

/// The padded image and tables of scikit-image mode.
struct SkimageKernel<'a, T> {
    /// Shifted image surrounded by `(win - 1) / 2` pixels of `cval = 0`, row-major.
    padded: &'a [T],
    /// Row length of `padded`.
    stride: usize,
    /// Window side.
    win: usize,
    /// `win * win` spatial weights in window order.
    spatial: &'a [T],
    /// Colour weights by bin.
    color: &'a [T],
    /// `bins - 1`.
    max_bin: usize,
    /// `bins / max` (shifted maximum), in `T`.
    dist_scale: T,
}

impl<T: Real> SkimageKernel<'_, T> {
    /// Filters the `L` pixels `(r, c) .. (r, c + L)` of the unpadded image.
    /// Each accumulates in scikit-image's order (window rows, then columns);
    /// the `L` independent sums run interleaved.
    ///
    /// scikit-image computes the colour distance as `sqrt(t * t)`; with
    /// `SQRT = false` it is taken as `|t|`, which is the same number whenever
    /// `t * t` neither underflows nor overflows (IEEE binary arithmetic,
    /// round-to-nearest). [`Self::exact_with_abs`] says when that holds for
    /// every bin that matters.
    #[inline(always)]
    fn pixels<const L: usize, const SQRT: bool>(&self, r: usize, c: usize) -> [T; L] {
        let ext = (self.win - 1) / 2;
        let mut centre = [T::zero(); L];
        let start = (r + ext) * self.stride + c + ext;
        centre.copy_from_slice(&self.padded[start..start + L]);
        let mut values = [T::zero(); L];
        let mut weights = [T::zero(); L];
        // Length max_bin + 1, so that indexing with a bin <= max_bin needs no check.
        let color = &self.color[..=self.max_bin];
        for (kr, spatial_row) in self.spatial.chunks_exact(self.win).enumerate() {
            let start = (r + kr) * self.stride + c;
            let row = &self.padded[start..start + self.win + L - 1];
            for (&s, v) in spatial_row.iter().zip(row.windows(L)) {
                for j in 0..L {
                    let value = v[j];
                    let t = centre[j] - value;
                    let bin = if SQRT {
                        color_bin(t, self.dist_scale, self.max_bin)
                    } else {
                        // 32-bit conversion (one instruction); values beyond
                        // i32::MAX exceed max_bin (see exact_with_abs).
                        (t.abs() * self.dist_scale)
                            .to_i32()
                            .map_or(self.max_bin, |b| (b as usize).min(self.max_bin))
                    };
                    let weight = s * color[bin];
                    values[j] += value * weight;
                    weights[j] += weight;
                }
            }
        }
        let mut out = [T::zero(); L];
        for j in 0..L {
            out[j] = values[j] / weights[j];
        }
        out
    }

    /// Whether the fast bin computation gives scikit-image's bins: `|t|` equals
    /// `sqrt(t * t)` because `t * t` cannot overflow (`|t| <= max_value <=
    /// sqrt(MAX) / 2`), and where it underflows (`|t| < sqrt(MIN_POSITIVE)`) both
    /// distances fall in bin 0; and `max_bin` fits the 32-bit conversion.
    fn exact_with_abs(&self, max_value: T) -> bool {
        let tiny = T::min_positive_value().sqrt();
        tiny * self.dist_scale < T::c(0.25)
            && max_value <= T::max_value().sqrt() * T::c(0.5)
            && i32::try_from(self.max_bin).is_ok()
    }

    /// Filters every pixel into `out`, the row-major `h x w` unpadded image.
    /// Rows are independent, so they run in parallel (rayon); each pixel's sum
    /// is computed by one thread in a fixed order, so the result does not
    /// depend on the number of threads.
    fn filter<const SQRT: bool>(&self, out: &mut [T], w: usize) {
        out.par_chunks_mut(w).enumerate().for_each(|(r, line)| {
            let mut chunks = line.chunks_exact_mut(LANES);
            for (k, chunk) in chunks.by_ref().enumerate() {
                chunk.copy_from_slice(&self.pixels::<LANES, SQRT>(r, k * LANES));
            }
            let rest = chunks.into_remainder();
            let first = w - rest.len();
            for (k, o) in rest.iter_mut().enumerate() {
                *o = self.pixels::<1, SQRT>(r, first + k)[0];
            }
        });
    }
}

/// [`BilateralMode::Skimage`] on a finite, non-constant image.
fn skimage_bilateral<T: Real>(
    img: ArrayView2<'_, T>,
    params: &BilateralParams,
    (lo, hi): (T, T),
    sigma_color_sq: T,
) -> Result<Array2<T>> {
    let (h, w) = img.dim();
    let win = params.window();
    let ext = (win - 1) / 2;
    let too_large = || ImagingError::InvalidParameter {
        name: "win_size",
        value: win.to_string(),
        rule: "window too large to pad the image",
    };
    let stride = w.checked_add(2 * ext).ok_or_else(too_large)?;
    let padded_len = h
        .checked_add(2 * ext)
        .and_then(|ph| ph.checked_mul(stride))
        .ok_or_else(too_large)?;
    win.checked_mul(win).ok_or_else(too_large)?;

    let spatial = skimage_spatial_weights::<T>(win, params.sigma_spatial);
    let shift = lo < T::zero();
    let max_value = if shift { hi - lo } else { hi };
    #[allow(clippy::cast_precision_loss)]
    let dist_scale = T::c(params.bins as f64) / max_value;
    let shifted: Vec<T> = img
        .iter()
        .map(|&v| if shift { v - lo } else { v })
        .collect();
    // The colour table uses the unshifted maximum; the bin scale the shifted one.
    let color = color_lut_for(&shifted, params.bins, sigma_color_sq, hi, dist_scale);

    // cval = 0 is not shifted.
    let mut padded = vec![T::zero(); padded_len];
    for (r, row) in shifted.chunks_exact(w).enumerate() {
        let start = (r + ext) * stride + ext;
        padded[start..start + w].copy_from_slice(row);
    }
    let kernel = SkimageKernel {
        padded: &padded,
        stride,
        win,
        spatial: &spatial,
        color: &color,
        max_bin: params.bins - 1,
        dist_scale,
    };

    let mut out = vec![T::zero(); h * w];
    if kernel.exact_with_abs(max_value) {
        kernel.filter::<false>(&mut out, w);
    } else {
        kernel.filter::<true>(&mut out, w);
    }
    if shift {
        for v in &mut out {
            *v += lo;
        }
    }
    Array2::from_shape_vec((h, w), out).map_err(|_| too_large())
}

/// [`BilateralMode::Gaussian`] on a finite, non-constant image.
fn gaussian_bilateral<T: Real>(
    img: ArrayView2<'_, T>,
    params: &BilateralParams,
    (lo, hi): (T, T),
    sigma_color_sq: T,
) -> Result<Array2<T>> {
    let (h, w) = img.dim();
    let ext = (params.window() - 1) / 2;
    // Offsets beyond the image never meet a valid neighbour: clip the table.
    let (er, ec) = (ext.min(h - 1), ext.min(w - 1));
    let side = 2 * ec + 1;
    let sigma_sq = params.sigma_spatial * params.sigma_spatial;
    let spatial: Vec<T> = (0..(2 * er + 1) * side)
        .map(|k| {
            #[allow(clippy::cast_precision_loss)]
            let (dr, dc) = ((k / side) as f64 - er as f64, (k % side) as f64 - ec as f64);
            T::c((-(dr * dr + dc * dc) / (2.0 * sigma_sq)).exp())
        })
        .collect();
    // Finite even for a subnormal sigma_color^2, so that a zero difference gets weight 1.
    let colour_factor = (T::c(-0.5) / sigma_color_sq).max(T::min_value());
    let data: Vec<T> = img.iter().copied().collect();

    let mut out = vec![T::zero(); h * w];
    out.par_chunks_mut(w).enumerate().for_each(|(r, line)| {
        for (c, o) in line.iter_mut().enumerate() {
            let centre = data[r * w + c];
            let (r0, r1) = (r.saturating_sub(er), (r + er + 1).min(h));
            let (c0, c1) = (c.saturating_sub(ec), (c + ec + 1).min(w));
            let mut value = T::zero();
            let mut weight = T::zero();
            for rr in r0..r1 {
                let s0 = (rr + er - r) * side + (c0 + ec - c);
                let spatial_row = &spatial[s0..s0 + (c1 - c0)];
                let data_row = &data[rr * w + c0..rr * w + c1];
                for (&s, &v) in spatial_row.iter().zip(data_row) {
                    let d = centre - v;
                    let wgt = s * (d * d * colour_factor).exp();
                    value += v * wgt;
                    weight += wgt;
                }
            }
            *o = (value / weight).max(lo).min(hi);
        }
    });
    Array2::from_shape_vec((h, w), out).map_err(|_| ImagingError::ShapeMismatch {
        what: "bilateral output",
        expected: vec![h, w],
        found: vec![h * w],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};
    use proptest::prelude::*;

    fn params(mode: BilateralMode) -> BilateralParams {
        BilateralParams::new()
            .sigma_color(SigmaColor::Value(1.0))
            .sigma_spatial(1.0)
            .win_size(Some(3))
            .bins(10)
            .mode(mode)
            .build()
            .unwrap()
    }

    fn invalid_name(r: Result<BilateralParams>) -> &'static str {
        match r {
            Err(ImagingError::InvalidParameter { name, .. }) => name,
            other => panic!("expected InvalidParameter, got {other:?}"),
        }
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
    fn spatial_table_is_read_with_the_wrong_stride() {
        // win 31: grid np.arange(-16, 16); flat index kr * 31 + kc of a 32-wide table.
        // Centre (15, 15): 480 -> (15, 0) -> (-1, -16), weight exp(-(1 + 256) / 50).
        // (0, 0): 0 -> (-16, -16), weight exp(-512 / 50).
        // (0, 1): 1 -> (-16, -15); (1, 0): 31 -> (0, 31) -> (-16, 15): both 481 / 50.
        // (30, 30): 960 -> (30, 0) -> (14, -16), weight exp(-452 / 50).
        let w = skimage_spatial_weights::<f64>(31, 5.0);
        assert_eq!(w.len(), 31 * 31);
        let g = |d2: f64| (-d2 / 50.0).exp();
        for (k, d2) in [
            (15 * 31 + 15, 257.0),
            (0, 512.0),
            (1, 481.0),
            (31, 481.0),
            (960, 452.0),
        ] {
            assert!((w[k] - g(d2)).abs() <= 1e-14 * g(d2), "entry {k}");
        }
    }

    #[test]
    fn color_table_is_quantised_gaussian() {
        // linspace(0, 2, 4, endpoint=False) = [0, 0.5, 1, 1.5]; sigma^2 = 1.
        let lut = skimage_color_lut(4, 1.0_f64, 2.0);
        for (b, x) in [0.0_f64, 0.5, 1.0, 1.5].iter().enumerate() {
            assert!((lut[b] - (-0.5 * x * x).exp()).abs() < 1e-16);
        }
    }

    /// Spatial weights of win 3, sigma 1, in window order: grid np.arange(-2, 2),
    /// flat k -> (k / 4 - 2, k % 4 - 2), squared distances [8, 5, 4, 5, 5, 2, 1, 2, 4].
    fn win3_weights() -> [f64; 9] {
        [8.0, 5.0, 4.0, 5.0, 5.0, 2.0, 1.0, 2.0, 4.0].map(|d2: f64| (-d2 / 2.0).exp())
    }

    #[test]
    fn skimage_mode_hand_computed() {
        // [[0, 1]], sigma_color 1, sigma_spatial 1, win 3, bins 10; padding 0 counts.
        // Colour table on [0, 0.1, .., 0.9]; a distance of 1 maps to bin min(10, 9) = 9,
        // weight exp(-0.405); distance 0 to bin 0, weight 1.
        // (0,0): centre 0, the only non-zero neighbour is 1 at window (1, 2) (k = 5):
        //   out = e^-1 e^-0.405 / (sum_{k != 5} s_k + e^-1 e^-0.405).
        // (0,1): centre 1, all neighbours but itself (k = 4, s = e^-2.5) are at distance 1:
        //   out = e^-2.5 / (e^-2.5 + e^-0.405 sum_{k != 4} s_k).
        // scikit-image 0.26: denoise_bilateral(np.array([[0., 1.]]), win_size=3,
        //   sigma_color=1, sigma_spatial=1, bins=10) = [[0.13980883, 0.06414867]].
        let s = win3_weights();
        let total: f64 = s.iter().sum();
        let q = (-0.405_f64).exp();
        let left = s[5] * q / (total - s[5] + s[5] * q);
        let right = s[4] / (s[4] + q * (total - s[4]));
        let out = denoise_bilateral(
            array![[0.0_f64, 1.0]].view(),
            &params(BilateralMode::Skimage),
        )
        .unwrap();
        assert!((out[[0, 0]] - left).abs() < 1e-14, "{out}");
        assert!((out[[0, 1]] - right).abs() < 1e-14, "{out}");
        assert!((left - 0.139_808_83).abs() < 1e-8 && (right - 0.064_148_67).abs() < 1e-8);
    }

    #[test]
    fn skimage_mode_negative_image_shift_quirk() {
        // [[-1, 0]]: shifted to [0, 1], padding stays 0, colour table built on
        // linspace(0, max = 0, ...) = zeros, so every colour weight is 1:
        // out = sum(s_k v_k) / sum(s_k) - 1, i.e. e^-1 / S - 1 and e^-2.5 / S - 1.
        // scikit-image 0.26 gives [[-0.80406209, -0.95628034]].
        let s = win3_weights();
        let total: f64 = s.iter().sum();
        let out = denoise_bilateral(
            array![[-1.0_f64, 0.0]].view(),
            &params(BilateralMode::Skimage),
        )
        .unwrap();
        assert!((out[[0, 0]] - (s[5] / total - 1.0)).abs() < 1e-14, "{out}");
        assert!((out[[0, 1]] - (s[4] / total - 1.0)).abs() < 1e-14, "{out}");
        assert!((out[[0, 0]] + 0.804_062_09).abs() < 1e-8);
    }

    #[test]
    fn gaussian_mode_hand_computed() {
        // [[0, 1]], sigma 1 / 1, win 3, renormalised over the two pixels:
        // (0,0): (0 * 1 + 1 * e^-1/2 e^-1/2) / (1 + e^-1); (0,1): (1 * 1 + 0) / (1 + e^-1).
        let e = (-1.0_f64).exp();
        let out = denoise_bilateral(
            array![[0.0_f64, 1.0]].view(),
            &params(BilateralMode::Gaussian),
        )
        .unwrap();
        assert!((out[[0, 0]] - e / (1.0 + e)).abs() < 1e-15);
        assert!((out[[0, 1]] - 1.0 / (1.0 + e)).abs() < 1e-15);
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

    #[test]
    fn lanes_and_remainder_match_direct_evaluation() {
        // 1 x 6 image: columns 0..4 take the 4-lane path, 4..6 the single-lane path.
        // Both must equal a direct, unpadded evaluation of scikit-image's loop
        // (same summation order, so bit-identical).
        let img = array![[0.1_f64, 0.7, 0.3, 0.9, 0.2, 0.5]];
        let out = denoise_bilateral(img.view(), &params(BilateralMode::Skimage)).unwrap();
        let s = skimage_spatial_weights::<f64>(3, 1.0);
        let lut = skimage_color_lut(10, 1.0, 0.9);
        for c in 0..6_usize {
            let (mut tv, mut tw) = (0.0, 0.0);
            for kr in 0..3 {
                for kc in 0..3_usize {
                    let cc = (c + kc).checked_sub(1).filter(|&cc| cc < 6);
                    let v = match cc {
                        Some(cc) if kr == 1 => img[[0, cc]],
                        _ => 0.0,
                    };
                    let bin = (((img[[0, c]] - v).abs() * (10.0 / 0.9)) as usize).min(9);
                    let wgt = s[kr * 3 + kc] * lut[bin];
                    tv += v * wgt;
                    tw += wgt;
                }
            }
            assert_eq!(out[[0, c]], tv / tw, "column {c}");
        }
    }

    #[test]
    fn small_image_partial_color_table_matches_full_table() {
        // 3 x 3 image, 10 000 bins: 9 * 10 pairs < 10 000, so only the reached
        // entries are evaluated. Compare with a direct evaluation of scikit-image's
        // loop using the full table (zero padding of the 3 x 3 window, win 3).
        let img = array![[0.1_f64, 0.8, 0.35], [0.6, 0.05, 0.9], [0.3, 0.7, 0.2]];
        let p = BilateralParams::new().win_size(Some(3)).build().unwrap();
        let out = denoise_bilateral(img.view(), &p).unwrap();
        let std = numpy_std(img.view());
        let lut = skimage_color_lut(10_000, std * std, 0.9);
        let s = skimage_spatial_weights::<f64>(3, 1.0);
        for ((r, c), &got) in out.indexed_iter() {
            let (mut tv, mut tw) = (0.0, 0.0);
            for kr in 0..3_usize {
                for kc in 0..3_usize {
                    let rr = (r + kr).checked_sub(1).filter(|&x| x < 3);
                    let cc = (c + kc).checked_sub(1).filter(|&x| x < 3);
                    let v = match (rr, cc) {
                        (Some(rr), Some(cc)) => img[[rr, cc]],
                        _ => 0.0,
                    };
                    let bin = (((img[[r, c]] - v).abs() * (10_000.0 / 0.9)) as usize).min(9_999);
                    let wgt = s[kr * 3 + kc] * lut[bin];
                    tv += v * wgt;
                    tw += wgt;
                }
            }
            assert_eq!(got, tv / tw, "pixel ({r}, {c})");
        }
    }

    #[test]
    fn sqrt_and_abs_distance_paths_agree() {
        // The exact sqrt(t * t) path (used for images of extreme range) and the
        // |t| path give the same output on an ordinary image.
        let img = array![[0.1_f64, 0.7, 0.3], [0.9, 0.2, 0.5]];
        let (win, stride) = (5, 7);
        let mut padded = vec![0.0; 6 * stride];
        for ((r, c), &v) in img.indexed_iter() {
            padded[(r + 2) * stride + c + 2] = v;
        }
        let spatial = skimage_spatial_weights::<f64>(win, 1.0);
        let color = skimage_color_lut(100, 0.09, 0.9);
        let kernel = SkimageKernel {
            padded: &padded,
            stride,
            win,
            spatial: &spatial,
            color: &color,
            max_bin: 99,
            dist_scale: 100.0 / 0.9,
        };
        assert!(kernel.exact_with_abs(0.9));
        let (mut a, mut b) = (vec![0.0; 6], vec![0.0; 6]);
        kernel.filter::<true>(&mut a, 3);
        kernel.filter::<false>(&mut b, 3);
        assert_eq!(a, b);
        // A range of 1e-156 makes squared differences underflow: exact path.
        let tiny = SkimageKernel {
            dist_scale: 1e160,
            ..kernel
        };
        assert!(!tiny.exact_with_abs(1e-156));
        let huge = SkimageKernel {
            dist_scale: 1e-200,
            ..tiny
        };
        assert!(!huge.exact_with_abs(1e200));
    }

    #[test]
    fn operator_skimage_hand_computed() {
        // [[0, 1]] as in skimage_mode_hand_computed, window order k = kr * 3 + kc;
        // colour weight q = e^-0.405 at distance 1, 1 at distance 0.
        // Pixel 0 (centre 0): itself at k = 4 (weight s4), pixel 1 at k = 5 (s5 q);
        //   the other 7 positions are padding of value 0 (distance 0, weight s_k).
        // Pixel 1 (centre 1): itself at k = 4 (s4), pixel 0 at k = 3 (s3 q);
        //   padding at distance 1 (s_k q).
        let s = win3_weights();
        let total: f64 = s.iter().sum();
        let q = (-0.405_f64).exp();
        let d0 = total - s[5] + s[5] * q;
        let d1 = s[4] + q * (total - s[4]);
        let want = array![[s[4] / d0, s[5] * q / d0], [s[3] * q / d1, s[4] / d1]];
        let op = bilateral_operator(
            array![[0.0_f64, 1.0]].view(),
            &params(BilateralMode::Skimage),
        )
        .unwrap();
        for (g, w) in op.iter().zip(want.iter()) {
            assert!((g - w).abs() < 1e-15, "{op} vs {want}");
        }
    }

    #[test]
    fn operator_gaussian_hand_computed() {
        // [[0, 1]], sigma 1 / 1: w(0, 0) = 1, w(0, 1) = e^-1/2 e^-1/2 = e^-1, rows
        // normalised over the two pixels.
        let e = (-1.0_f64).exp();
        let op = bilateral_operator(
            array![[0.0_f64, 1.0]].view(),
            &params(BilateralMode::Gaussian),
        )
        .unwrap();
        let want = array![[1.0, e], [e, 1.0]] / (1.0 + e);
        for (g, w) in op.iter().zip(want.iter()) {
            assert!((g - w).abs() < 1e-15, "{op} vs {want}");
        }
    }

    #[test]
    fn operator_of_constant_image_is_identity() {
        let img = Array2::from_elem((3, 2), -0.7_f64);
        for mode in [BilateralMode::Skimage, BilateralMode::Gaussian] {
            let op = bilateral_operator(
                img.view(),
                &BilateralParams::new().mode(mode).build().unwrap(),
            )
            .unwrap();
            assert_eq!(op, Array2::eye(6));
        }
    }

    /// `W . vec(img)` as an image.
    fn apply<T: Real>(op: &Array2<T>, img: &Array2<T>) -> Array2<T> {
        let flat = ndarray::Array1::from_iter(img.iter().copied());
        op.dot(&flat).into_shape_with_order(img.dim()).unwrap()
    }

    #[test]
    fn operator_reproduces_filter_on_random_images() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let settings = [
            BilateralParams::paper(),
            params(BilateralMode::Skimage),
            BilateralParams::new()
                .sigma_spatial(2.0)
                .sigma_color(SigmaColor::Value(0.3))
                .bins(50)
                .build()
                .unwrap(),
            params(BilateralMode::Gaussian),
            BilateralParams::new()
                .sigma_spatial(PAPER_SIGMA_SPATIAL)
                .mode(BilateralMode::Gaussian)
                .build()
                .unwrap(),
        ];
        // Sizes below and above the window; values in [0, 1] and (shift quirk) in [-1, 1].
        for (h, w) in [(1, 5), (3, 4), (8, 8), (7, 10)] {
            for lo in [0.0, -1.0] {
                let img = Array2::from_shape_simple_fn((h, w), || rng.random_range(lo..1.0_f64));
                for p in &settings {
                    let op = bilateral_operator(img.view(), p).unwrap();
                    let want = denoise_bilateral(img.view(), p).unwrap();
                    let got = apply(&op, &img);
                    for (g, x) in got.iter().zip(want.iter()) {
                        assert!((g - x).abs() <= 1e-12, "{h}x{w} lo {lo} {p:?}: {g} vs {x}");
                    }
                    if p.mode() == BilateralMode::Gaussian {
                        for row in op.rows() {
                            assert!((row.sum() - 1.0).abs() < 1e-12);
                        }
                    }
                    // f32: same weights up to the rounding of f32 arithmetic.
                    let img32 = img.mapv(|v| v as f32);
                    let got = apply(&bilateral_operator(img32.view(), p).unwrap(), &img32);
                    let want = denoise_bilateral(img32.view(), p).unwrap();
                    for (g, x) in got.iter().zip(want.iter()) {
                        assert!((g - x).abs() <= 1e-5, "f32 {h}x{w}: {g} vs {x}");
                    }
                }
            }
        }
    }

    #[test]
    fn operator_rejects_what_the_filter_rejects() {
        let bad = array![[0.0_f32, f32::INFINITY]];
        assert!(matches!(
            bilateral_operator(bad.view(), &BilateralParams::paper()),
            Err(ImagingError::NonFinite { row: 0, col: 1, .. })
        ));
        let img = array![[0.0_f32, 1.0]];
        let p = BilateralParams::new()
            .sigma_color(SigmaColor::Value(1e-30))
            .build()
            .unwrap();
        assert_eq!(
            invalid_name(bilateral_operator(img.view(), &p).map(|_| p.clone())),
            "sigma_color"
        );
    }

    proptest! {
        #[test]
        fn gaussian_mode_textbook_properties(
            (h, w, data) in (1usize..7, 1usize..7).prop_flat_map(|(h, w)| {
                (Just(h), Just(w), proptest::collection::vec(-2.0f64..2.0, h * w))
            }),
            sigma_spatial in 0.5f64..3.0,
            sigma_color in 0.05f64..2.0,
        ) {
            let img = Array2::from_shape_vec((h, w), data).unwrap();
            let p = BilateralParams::new()
                .sigma_spatial(sigma_spatial)
                .sigma_color(SigmaColor::Value(sigma_color))
                .mode(BilateralMode::Gaussian)
                .build()
                .unwrap();
            let out = denoise_bilateral(img.view(), &p).unwrap();
            let (lo, hi) = min_max(img.view());
            prop_assert!(out.iter().all(|&v| lo <= v && v <= hi));
            let out_t = denoise_bilateral(img.t(), &p).unwrap();
            for ((r, c), &v) in out.indexed_iter() {
                prop_assert!((out_t[[c, r]] - v).abs() <= 1e-12);
            }
        }

        #[test]
        fn skimage_mode_stays_within_range_and_zero(
            data in proptest::collection::vec(-1.0f32..1.0, 12),
        ) {
            // A convex combination of (shifted) pixels and the zero padding.
            let img = Array2::from_shape_vec((3, 4), data).unwrap();
            let out = denoise_bilateral(img.view(), &BilateralParams::paper()).unwrap();
            let (lo, hi) = min_max(img.view());
            let tol = 1e-5;
            prop_assert!(out.iter().all(|&v| lo.min(0.0) - tol <= v && v <= hi + tol));
        }
    }
}
