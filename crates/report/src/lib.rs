//! Pictures for phyvae: perceptual colormaps and PNG rendering of scalar maps
//! and label images.

pub mod colormap;
mod error;
pub mod render;

pub use error::ReportError;
