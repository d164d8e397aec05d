//! Data for phyvae: getting an image in, cutting it into patches, and making
//! synthetic test images whose truth is known.
//!
//! - [`Image`]: one 2-D `f32` image with its pixel size when the file has one;
//! - [`io`]: readers of NPY, TIFF (and BigTIFF), PNG, SPIEPy raw `.dat`,
//!   Gatan DigitalMicrograph DM3/DM4, FEI/Thermo Fisher TIA `.ser`, and, in
//!   HDF5 containers, Velox EMD, Berkeley EMD and hyperspy `.hspy`/`.hdf5`
//!   (the `hdf5` feature, on by default); pixel sizes from the file or a JSON
//!   sidecar; NPY writers;
//! - [`atomic`]: the atomic file writer (temporary sibling, fsync, rename)
//!   every file phyvae writes goes through;
//! - [`patches`]: the square patch grid of the phy-VAE method, patches as views;
//! - [`synth`]: synthetic two-phase and domain images with a per-pixel truth map.

pub mod atomic;
mod error;
#[doc(hidden)]
pub mod fault;
mod image;
pub mod io;
pub mod patches;
pub mod synth;

pub use error::DataError;
pub use image::{Image, PixelSize};

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, DataError>;
