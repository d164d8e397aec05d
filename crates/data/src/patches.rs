//! The square patch grid of the phy-VAE method (METHOD.md section 1).
//!
//! A `rows x cols` image cut with a `window x window` px window every `step` px
//! gives `gh = (rows - window) / step + 1` by `gw = (cols - window) / step + 1`
//! patches, numbered row-major: patch `i` sits at grid position
//! `(i / gw, i % gw)` with its top-left pixel at `(step * (i / gw), step * (i % gw))`.
//! Leftover rows/columns at the bottom/right that do not fill a window are not
//! used (as in the authors' code and pyroVED).

use crate::{DataError, Result};

/// Geometry of a patch grid over one image: no pixels, only positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PatchGrid {
    image_rows: usize,
    image_cols: usize,
    window: usize,
    step: usize,
    gh: usize,
    gw: usize,
}

impl PatchGrid {
    /// Lays a grid of `window x window` patches every `step` px over an image of
    /// `image_rows x image_cols` px.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] if `window` or `step` is 0;
    /// [`DataError::ImageSmallerThanWindow`] if the image cannot hold one window.
    pub fn new(image_rows: usize, image_cols: usize, window: usize, step: usize) -> Result<Self> {
        if window == 0 {
            return Err(DataError::InvalidParameter {
                name: "window",
                value: window.to_string(),
                rule: "must be at least 1 px",
            });
        }
        if step == 0 {
            return Err(DataError::InvalidParameter {
                name: "step",
                value: step.to_string(),
                rule: "must be at least 1 px",
            });
        }
        if image_rows < window || image_cols < window {
            return Err(DataError::ImageSmallerThanWindow {
                rows: image_rows,
                cols: image_cols,
                window,
            });
        }
        Ok(Self {
            image_rows,
            image_cols,
            window,
            step,
            gh: (image_rows - window) / step + 1,
            gw: (image_cols - window) / step + 1,
        })
    }

    /// Window (patch side) in px.
    #[must_use]
    pub fn window(&self) -> usize {
        self.window
    }

    /// Step between neighbouring patches in px.
    #[must_use]
    pub fn step(&self) -> usize {
        self.step
    }

    /// Number of grid rows `gh`.
    #[must_use]
    pub fn gh(&self) -> usize {
        self.gh
    }

    /// Number of grid columns `gw`.
    #[must_use]
    pub fn gw(&self) -> usize {
        self.gw
    }

    /// Shape of the image the grid was laid on, `(rows, cols)`.
    #[must_use]
    pub fn image_shape(&self) -> (usize, usize) {
        (self.image_rows, self.image_cols)
    }

    /// Number of patches, `gh * gw`.
    #[must_use]
    pub fn len(&self) -> usize {
        self.gh * self.gw
    }

    /// Always `false`: a grid holds at least one patch.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Grid position `(grid_row, grid_col)` of patch `index` (row-major).
    #[must_use]
    pub fn position(&self, index: usize) -> (usize, usize) {
        (index / self.gw, index % self.gw)
    }

    /// Top-left pixel `(row, col)` of the patch at grid position `(grid_row, grid_col)`.
    #[must_use]
    pub fn origin(&self, grid_row: usize, grid_col: usize) -> (usize, usize) {
        (grid_row * self.step, grid_col * self.step)
    }

    /// Centre pixel `(row, col)` of the patch at `(grid_row, grid_col)`:
    /// top-left + `window / 2` (for an even window, the lower-right of the four
    /// central pixels).
    #[must_use]
    pub fn centre(&self, grid_row: usize, grid_col: usize) -> (usize, usize) {
        let (r, c) = self.origin(grid_row, grid_col);
        (r + self.window / 2, c + self.window / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_grid_sizes() {
        // METHOD.md section 1: 15 129 = 123^2 patches for a 1024^2 NiO-LSMO image
        // (window 48, step 8): (1024 - 48) / 8 + 1 = 123.
        let g = PatchGrid::new(1024, 1024, 48, 8).unwrap();
        assert_eq!((g.gh(), g.gw(), g.len()), (123, 123, 15_129));
        // BiFeO3: 483^2 = 233 289 patches from (483 - 1) * 8 + 48 = 3904 px.
        let g = PatchGrid::new(3904, 3904, 48, 8).unwrap();
        assert_eq!(g.len(), 233_289);
    }

    #[test]
    fn golden_grid_64x72_is_3x4() {
        // testdata/golden README: patch_img_64x72 gives grid (3, 4).
        let g = PatchGrid::new(64, 72, 48, 8).unwrap();
        assert_eq!((g.gh(), g.gw()), (3, 4));
        assert_eq!(g.position(5), (1, 1));
        assert_eq!(g.origin(1, 1), (8, 8));
        assert_eq!(g.centre(2, 3), (16 + 24, 24 + 24));
    }

    #[test]
    fn zero_window_is_an_error() {
        assert!(matches!(
            PatchGrid::new(64, 64, 0, 8),
            Err(DataError::InvalidParameter { name: "window", .. })
        ));
    }

    #[test]
    fn zero_step_is_an_error() {
        assert!(matches!(
            PatchGrid::new(64, 64, 48, 0),
            Err(DataError::InvalidParameter { name: "step", .. })
        ));
    }

    #[test]
    fn image_smaller_than_window_is_an_error() {
        assert!(matches!(
            PatchGrid::new(40, 64, 48, 8),
            Err(DataError::ImageSmallerThanWindow { rows: 40, cols: 64, window: 48 })
        ));
    }
}
