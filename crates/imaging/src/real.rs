//! The floating-point element types the image-processing functions accept.

use num_traits::{Float, FloatConst, FromPrimitive, NumAssign, ToPrimitive};
use std::fmt::{Debug, Display};
use std::iter::Sum;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A floating-point pixel type: `f32` or `f64`.
///
/// Functions generic over `Real` compute in the element type they are given,
/// as scikit-image does (a `float32` image is processed in `float32`). This is
/// what makes `f32` results match scikit-image's `float32` outputs to within a
/// few units in the last place.
pub trait Real:
    Float
    + FloatConst
    + FromPrimitive
    + ToPrimitive
    + NumAssign
    + Sum
    + Debug
    + Display
    + Default
    + Send
    + Sync
    + rustfft::FftNum
    + sealed::Sealed
    + 'static
{
    /// Converts an `f64` constant to this type (rounding to nearest for `f32`).
    #[must_use]
    fn c(v: f64) -> Self;
    /// Converts to `f64` exactly.
    #[must_use]
    fn f64(self) -> f64;
}

impl Real for f32 {
    #[allow(clippy::cast_possible_truncation)]
    fn c(v: f64) -> Self {
        v as f32
    }
    fn f64(self) -> f64 {
        f64::from(self)
    }
}

impl Real for f64 {
    fn c(v: f64) -> Self {
        v
    }
    fn f64(self) -> f64 {
        self
    }
}
