//! Image processing for phyvae, on 2-D `f32`/`f64` arrays ([`ndarray::Array2`]).
//!
//! Every function here is a free function on a concrete 2-D image view. Where a
//! function mirrors a scikit-image routine it follows scikit-image's conventions
//! (border mode, normalisation, histogram bins) and says so; deviations are
//! documented on the item. Nothing here depends on a deep-learning framework.
//!
//! Modules, one concept each:
//! - [`filters`]: bilateral denoising (scikit-image-compatible and textbook Gaussian), Scharr edges;
//! - [`threshold`]: Otsu, multi-Otsu and digitising into labels;
//! - [`chan_vese`]: Chan-Vese active contours without edges;
//! - [`fft`]: 2-D FFT, fftshift and log-magnitude spectra;
//! - [`physics`]: the phy-VAE physics losses SL1 (edge length) and SL2 (Fourier peak);
//! - [`pipeline`]: the paper's segmentation pipeline for one latent map (denoise, Otsu,
//!   multi-Otsu, Chan-Vese);
//! - [`metrics`]: scores of a label map against a truth map (ARI, accuracy, boundary F1);
//! - [`background`]: plane levelling of topographs;
//! - [`lattice`]: lattice periods and directions from the averaged power spectrum, noise level;
//! - [`fft_features`]: sliding-window Fourier descriptors of patches (classical baseline);
//! - [`cluster`]: PCA, k-means and Gaussian mixtures with BIC, for the classical baseline;
//! - [`pick`]: the unsupervised pick of a result (Otsu separability, clustering of maps);
//! - [`scan`]: the drift of a raster scan along its rows, measured on the lattice and removed.

pub mod background;
pub mod chan_vese;
pub mod cluster;
mod error;
pub mod fft;
pub mod fft_features;
pub mod filters;
pub mod lattice;
pub mod metrics;
mod numeric;
pub mod physics;
pub mod pick;
pub mod pipeline;
mod real;
pub mod scan;
pub mod threshold;

pub use error::ImagingError;
pub use real::Real;

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, ImagingError>;
