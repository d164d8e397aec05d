//! Edge-preserving denoising and edge detection on 2-D images.
//!
//! - [`denoise_bilateral`]: the bilateral filter, either exactly as
//!   scikit-image 0.26 `skimage.restoration.denoise_bilateral` computes it
//!   ([`BilateralMode::Skimage`], the default, used by the phy-VAE loss SL1 of
//!   Biswas et al. 2023, *Mach. Learn.: Sci. Technol.* 4 045004, eq. 4) or as
//!   the textbook filter of Tomasi & Manduchi (1998) ([`BilateralMode::Gaussian`]);
//! - [`bilateral_operator`]: the same filter with its weights frozen at an
//!   image, as a dense linear operator (to differentiate SL1 with constant
//!   weights);
//! - [`gaussian`]: the Gaussian low-pass filter, as scipy's
//!   `ndimage.gaussian_filter(mode='nearest')` (which scikit-image's
//!   `filters.gaussian` calls);
//! - [`scharr`], [`scharr_h`], [`scharr_v`]: the Scharr edge operator exactly as
//!   scikit-image 0.26 `skimage.filters.scharr` / `scharr_h` / `scharr_v`.
//!
//! All functions take an [`ndarray::ArrayView2`] of `f32` or `f64` and compute
//! in that type, as scikit-image does for floating-point input.
//!
//! ```
//! use ndarray::array;
//! use phyvae_imaging::filters::{BilateralParams, denoise_bilateral, scharr};
//!
//! let img = array![[0.0_f32, 0.1, 0.9], [0.1, 0.0, 1.0], [0.0, 0.2, 0.9]];
//! let den = denoise_bilateral(img.view(), &BilateralParams::paper())?;
//! let edges = scharr(den.view())?;
//! assert_eq!(edges.dim(), (3, 3));
//! # Ok::<(), phyvae_imaging::ImagingError>(())
//! ```

mod bilateral;
mod gaussian;
mod scharr;

pub(crate) use crate::numeric::{image_sum, min_max};

pub use bilateral::{
    BilateralMode, BilateralParams, BilateralParamsBuilder, DEFAULT_BINS, DEFAULT_SIGMA_SPATIAL,
    PAPER_SIGMA_SPATIAL, SigmaColor, bilateral_operator, denoise_bilateral,
};
pub use gaussian::{GAUSSIAN_TRUNCATE, gaussian};
pub use scharr::{
    SCHARR_EDGE, SCHARR_H_WEIGHTS, SCHARR_SMOOTH, SCHARR_V_WEIGHTS, scharr, scharr_h, scharr_v,
};
