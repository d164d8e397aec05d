//! Pictures for phyvae: perceptual colormaps and PNG rendering of scalar maps
//! and label images.

pub mod colormap;
mod error;
pub mod figure;
pub mod html;
pub mod render;
pub mod report;
pub mod run;

pub use error::ReportError;
