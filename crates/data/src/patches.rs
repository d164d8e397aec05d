//! The square patch grid of the phy-VAE method (docs/METHOD.md section 1).
//!
//! A `rows x cols` image cut with a `window x window` px window every `step` px
//! gives `gh = (rows - window) / step + 1` by `gw = (cols - window) / step + 1`
//! patches, numbered row-major: patch `i` sits at grid position
//! `(i / gw, i % gw)` with its top-left pixel at `(step * (i / gw), step * (i % gw))`.
//! Leftover rows/columns at the bottom/right that do not fill a window are not
//! used (as in the authors' code and pyroVED).
//!
//! [`PatchSet`] holds one scaled copy of the image and hands out patches as
//! views or copies into a caller's buffer, so that the `N x window x window`
//! stack (2 GB for the 233 289 patches of a 3904 px image) is never built.
//! [`labels_at_patch_centres`] samples a per-pixel truth map on the grid.
//!
//! **Lattice registration** ([`PatchSet::register`], a deviation from the
//! paper, off unless asked): on a crystal, the regular grid's step is not a
//! multiple of the lattice period, so neighbouring patches of one phase show
//! the lattice at different positions within the unit cell, and a model must
//! learn that translation before it can see anything else. Registration moves
//! each patch's origin by less than one cell, to the nearest pixel where the
//! lattice of the given wavevectors has the phase it has at the image origin
//! (the phase of the patch's Fourier coefficient at each wavevector, as in
//! geometric phase analysis: Hytch, Snoeck & Kilaas, *Ultramicroscopy* 74
//! (1998) 131). Patches of one phase then look alike up to a sub-pixel shift,
//! which the shift latents absorb; the latent maps stay on the regular grid.

use crate::{DataError, Image, Result};
use ndarray::{Array2, ArrayView2, Axis, Slice};
use phyvae_imaging::background::{level_lines, level_plane};

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

/// How patch values are scaled to `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Scaling {
    /// The authors' choice: `(img - min) / (max - min)` over the whole image,
    /// computed in `f64` and stored as `f32` (phyvae_ref `extract_patches`).
    #[default]
    GlobalMinMax,
    /// Global scaling, then each patch min-max scaled on its own,
    /// `(p - p.min) / (p.max - p.min)` in `f64`; a constant patch becomes zeros
    /// (phyvae_ref `extract_patches(per_patch_norm=True)`).
    PerPatch,
}

/// Background levelling applied to the image before scaling
/// ([`phyvae_imaging::background`]).
///
/// Named in settings and on the command line `none`, `plane`, `plane-lines`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Levelling {
    /// The image as read.
    #[default]
    None,
    /// Subtract the least-squares plane ([`phyvae_imaging::background::level_plane`]).
    Plane,
    /// Plane, then each scan line's median
    /// ([`phyvae_imaging::background::level_lines`]): for STM/AFM topographs.
    #[serde(rename = "plane-lines")]
    #[cfg_attr(feature = "clap", value(name = "plane-lines"))]
    PlanePlusLines,
}

/// The patches of one image on a [`PatchGrid`], without the patch stack.
///
/// Holds a single `f32` copy of the image, levelled and globally min-max
/// scaled, plus the grid: memory is one image (`rows * cols` floats, see
/// [`PatchSet::stored_values`]) whatever the number of patches. Patches are
/// numbered row-major as in [`PatchGrid`]; patch `i` is the window at
/// `grid.origin(grid.position(i))`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchSet {
    scaled: Array2<f32>,
    grid: PatchGrid,
    scaling: Scaling,
    min: f64,
    max: f64,
    /// Per-patch origin offsets `(rows, cols)` of [`PatchSet::register`];
    /// empty: the regular grid.
    offsets: Vec<(i32, i32)>,
    /// The wavevectors of [`PatchSet::register`] (empty: none).
    wavevectors: Vec<[f64; 2]>,
}

/// One corner of the lattice cell around each patch's grid origin
/// ([`PatchSet::lattice_corners`]): the origin offsets that put every patch on
/// that corner, and each patch's bilinear weight for it.
#[derive(Debug, Clone, PartialEq)]
pub struct LatticeCorner {
    /// Origin offset `(rows, cols)` of each patch at this corner.
    pub offsets: Vec<(i32, i32)>,
    /// Each patch's weight for this corner; a patch's weights over all
    /// corners sum to 1.
    pub weights: Vec<f32>,
}

impl PatchSet {
    /// Levels (optionally) and scales `pixels` once, for patch access on `grid`.
    ///
    /// Order of operations: check every pixel is finite, apply `levelling`, then
    /// global min-max scaling to `[0, 1]` (`(v - min) / (max - min)` in `f64`,
    /// stored as `f32`). [`Scaling::PerPatch`] is applied per patch in
    /// [`PatchSet::copy_patch_into`].
    ///
    /// # Errors
    /// [`DataError::ShapeMismatch`] if `pixels` is not the grid's image shape;
    /// [`DataError::NonFinitePixel`] for the first NaN/infinite pixel (row-major);
    /// [`DataError::ConstantImage`] if every (levelled) pixel is equal;
    /// [`DataError::Imaging`] if levelling fails.
    ///
    /// # Example
    /// ```
    /// use ndarray::Array2;
    /// use phyvae_data::patches::{Levelling, PatchGrid, PatchSet, Scaling};
    /// // A 4 x 5 ramp 0..19, 3 x 3 windows every 2 px -> a 1 x 2 grid.
    /// let img = Array2::from_shape_fn((4, 5), |(r, c)| (5 * r + c) as f32);
    /// let grid = PatchGrid::new(4, 5, 3, 2).unwrap();
    /// let set = PatchSet::new(img.view(), grid, Scaling::GlobalMinMax, Levelling::None).unwrap();
    /// assert_eq!(set.len(), 2);
    /// let mut buf = vec![0.0_f32; 9];
    /// set.copy_patch_into(1, &mut buf).unwrap();
    /// // Patch 1 starts at (0, 2): raw 2, scaled 2 / 19.
    /// assert_eq!(buf[0], (2.0_f64 / 19.0) as f32);
    /// assert_eq!(set.stored_values(), 20);
    /// ```
    pub fn new(
        pixels: ArrayView2<'_, f32>,
        grid: PatchGrid,
        scaling: Scaling,
        levelling: Levelling,
    ) -> Result<Self> {
        let (rows, cols) = grid.image_shape();
        if pixels.dim() != (rows, cols) {
            return Err(DataError::ShapeMismatch {
                what: "image vs patch grid",
                expected: vec![rows, cols],
                found: vec![pixels.nrows(), pixels.ncols()],
            });
        }
        if let Some(((row, col), &value)) = pixels.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(DataError::NonFinitePixel { row, col, value });
        }
        let mut work = match levelling {
            Levelling::None => pixels.to_owned(),
            Levelling::Plane => level_plane(pixels)?,
            Levelling::PlanePlusLines => level_lines(level_plane(pixels)?.view())?,
        };
        let (min, max) = work
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                let v = f64::from(v);
                (lo.min(v), hi.max(v))
            });
        if min >= max {
            #[allow(clippy::cast_possible_truncation)]
            return Err(DataError::ConstantImage { value: min as f32 });
        }
        let range = max - min;
        #[allow(clippy::cast_possible_truncation)]
        work.mapv_inplace(|v| ((f64::from(v) - min) / range) as f32);
        Ok(Self {
            scaled: work,
            grid,
            scaling,
            min,
            max,
            offsets: Vec::new(),
            wavevectors: Vec::new(),
        })
    }

    /// [`PatchSet::new`] on an [`Image`]'s pixels.
    ///
    /// # Errors
    /// As [`PatchSet::new`].
    pub fn from_image(
        image: &Image,
        grid: PatchGrid,
        scaling: Scaling,
        levelling: Levelling,
    ) -> Result<Self> {
        Self::new(image.pixels.view(), grid, scaling, levelling)
    }

    /// Number of patches, `grid().len()`.
    #[must_use]
    pub fn len(&self) -> usize {
        self.grid.len()
    }

    /// Always `false`: a grid holds at least one patch.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The patch grid.
    #[must_use]
    pub fn grid(&self) -> &PatchGrid {
        &self.grid
    }

    /// The scaling chosen at construction.
    #[must_use]
    pub fn scaling(&self) -> Scaling {
        self.scaling
    }

    /// Number of values in one patch, `window * window`.
    #[must_use]
    pub fn patch_len(&self) -> usize {
        self.grid.window() * self.grid.window()
    }

    /// `(min, max)` of the levelled image before scaling.
    #[must_use]
    pub fn value_range(&self) -> (f64, f64) {
        (self.min, self.max)
    }

    /// The whole levelled, globally scaled image.
    #[must_use]
    pub fn scaled_image(&self) -> ArrayView2<'_, f32> {
        self.scaled.view()
    }

    /// Number of `f32` values this set owns: one image, `rows * cols`.
    #[must_use]
    pub fn stored_values(&self) -> usize {
        self.scaled.len()
    }

    /// Top-left pixel `(row, col)` of patch `index`.
    ///
    /// # Errors
    /// [`DataError::PatchIndexOutOfRange`] if `index >= len()`.
    pub fn origin(&self, index: usize) -> Result<(usize, usize)> {
        self.check_index(index)?;
        let (gr, gc) = self.grid.position(index);
        let (r, c) = self.grid.origin(gr, gc);
        Ok(match self.offsets.get(index) {
            // register() keeps every moved window inside the image.
            Some(&(dr, dc)) => (
                r.saturating_add_signed(dr as isize),
                c.saturating_add_signed(dc as isize),
            ),
            None => (r, c),
        })
    }

    /// The origin offsets of [`PatchSet::register`], `(rows, cols)` per patch
    /// (empty before it).
    #[must_use]
    pub fn offsets(&self) -> &[(i32, i32)] {
        &self.offsets
    }

    /// Registers every patch to the lattice of `wavevectors` (one or two,
    /// `[ky, kx]` in cycles per px, not parallel; module documentation):
    /// patch `i`'s origin `o` moves by the integer offset nearest to the
    /// smallest `d` with `k . (o + d) = -theta_k / 2 pi` (mod 1) for each
    /// wavevector `k`, where `theta_k` is the phase of
    /// `sum_x (p(x) - mean p) exp(-2 pi i k . x)` over the patch at absolute
    /// pixel positions `x`. Among the solutions that differ by a lattice
    /// vector, the shortest whose window stays inside the image is taken; a
    /// patch with none (at the image's edge) moves to the nearest position
    /// inside it. An empty slice removes the registration.
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] (`register`) for more than two
    /// wavevectors, a non-finite one, one of length 0 or beyond 0.5 cycles per
    /// px, or two that are (nearly) parallel.
    pub fn register(&mut self, wavevectors: &[[f64; 2]]) -> Result<()> {
        check_wavevectors(wavevectors)?;
        if wavevectors.is_empty() {
            self.offsets.clear();
            self.wavevectors.clear();
            return Ok(());
        }
        let w = self.grid.window();
        let (rows, cols) = self.scaled.dim();
        let (max_r, max_c) = ((rows - w) as f64, (cols - w) as f64);
        let mut offsets = Vec::with_capacity(self.len());
        let mut er = vec![(0.0_f64, 0.0_f64); w];
        let mut ec = vec![(0.0_f64, 0.0_f64); w];
        for index in 0..self.len() {
            let (gr, gc) = self.grid.position(index);
            let (r0, c0) = self.grid.origin(gr, gc);
            let patch = self.scaled.slice(ndarray::s![r0..r0 + w, c0..c0 + w]);
            #[allow(clippy::cast_precision_loss)]
            let mean = patch.iter().map(|&v| f64::from(v)).sum::<f64>() / (w * w) as f64;
            // f_k: the fraction of a cycle by which to move along k.
            let mut frac = [0.0_f64; 2];
            for (f, k) in frac.iter_mut().zip(wavevectors) {
                for (y, e) in er.iter_mut().enumerate() {
                    #[allow(clippy::cast_precision_loss)]
                    let a = -std::f64::consts::TAU * k[0] * (r0 + y) as f64;
                    *e = (a.cos(), a.sin());
                }
                for (x, e) in ec.iter_mut().enumerate() {
                    #[allow(clippy::cast_precision_loss)]
                    let a = -std::f64::consts::TAU * k[1] * (c0 + x) as f64;
                    *e = (a.cos(), a.sin());
                }
                let (mut re, mut im) = (0.0, 0.0);
                for (row, &(cy, sy)) in patch.outer_iter().zip(&er) {
                    let (mut rr, mut ri) = (0.0, 0.0);
                    for (&v, &(cx, sx)) in row.iter().zip(&ec) {
                        let v = f64::from(v) - mean;
                        rr += v * cx;
                        ri += v * sx;
                    }
                    re += rr * cy - ri * sy;
                    im += rr * sy + ri * cy;
                }
                let theta = im.atan2(re) / std::f64::consts::TAU;
                #[allow(clippy::cast_precision_loss)]
                let t = -theta - (k[0] * r0 as f64 + k[1] * c0 as f64);
                *f = t - t.round();
            }
            #[allow(clippy::cast_precision_loss)]
            let at = (r0 as f64, c0 as f64);
            offsets.push(nearest_registered(wavevectors, frac, at, (max_r, max_c)));
        }
        self.offsets = offsets;
        self.wavevectors = wavevectors.to_vec();
        Ok(())
    }

    /// The corners of the lattice cell around each patch's grid origin, for
    /// latent maps interpolated between lattice points; empty before
    /// [`PatchSet::register`].
    ///
    /// Registration moves a patch from its grid origin `o` to the nearest
    /// lattice point `p = o + d`, so neighbouring patches of one phase that
    /// move to the same point encode alike, and a map holds one value per
    /// lattice point where the grid is finer than the lattice: a staircase
    /// whose steps are a cell wide. The cell around `o` has the corners
    /// `p + i s1 a1 + j s2 a2` (`i, j` in `{0, 1}`; one wavevector: `p + i s1
    /// a1`), where `a1, a2` are the real-space basis of the wavevectors
    /// (`k_m . a_n = delta_mn`), `u_m = k_m . (o - p)` are `o`'s coordinates in
    /// it and `s_m = sign(u_m)`; corner `(i, j)` weighs
    /// `|u1|^i (1 - |u1|)^(1 - i)` times the same in `u2` (bilinear, with `u`
    /// clamped to `[-1, 1]`). Corner 0 is the registration itself. Offsets are
    /// rounded to whole pixels; a corner whose window would leave the image
    /// gets weight 0 and the registration's offset, and the weights of each
    /// patch are scaled to sum to 1.
    #[must_use]
    pub fn lattice_corners(&self) -> Vec<LatticeCorner> {
        let k = &self.wavevectors;
        if self.offsets.is_empty() || k.is_empty() {
            return Vec::new();
        }
        let basis: Vec<[f64; 2]> = match k.as_slice() {
            [a] => {
                let n2 = a[0] * a[0] + a[1] * a[1];
                vec![[a[0] / n2, a[1] / n2]]
            }
            [a, b] => {
                // The columns of [a; b]^-1.
                let det = a[0] * b[1] - a[1] * b[0];
                vec![[b[1] / det, -b[0] / det], [-a[1] / det, a[0] / det]]
            }
            _ => return Vec::new(),
        };
        let corners: Vec<[usize; 2]> = if basis.len() == 1 {
            vec![[0, 0], [1, 0]]
        } else {
            vec![[0, 0], [1, 0], [0, 1], [1, 1]]
        };
        let w = self.grid.window();
        let (rows, cols) = self.scaled.dim();
        #[allow(clippy::cast_possible_wrap)]
        let (max_r, max_c) = ((rows - w) as i64, (cols - w) as i64);
        let mut out: Vec<LatticeCorner> = corners
            .iter()
            .map(|_| LatticeCorner {
                offsets: Vec::with_capacity(self.len()),
                weights: Vec::with_capacity(self.len()),
            })
            .collect();
        for (index, &(dr, dc)) in self.offsets.iter().enumerate() {
            let (gr, gc) = self.grid.position(index);
            let (r0, c0) = self.grid.origin(gr, gc);
            let d = (f64::from(dr), f64::from(dc));
            // o - p = -d in lattice coordinates.
            let u: Vec<f64> = k
                .iter()
                .map(|km| (-(km[0] * d.0 + km[1] * d.1)).clamp(-1.0, 1.0))
                .collect();
            let mut weights = Vec::with_capacity(corners.len());
            let mut offsets = Vec::with_capacity(corners.len());
            for corner in &corners {
                let (mut er, mut ec) = d;
                let mut weight = 1.0_f64;
                for (m, (&on, a)) in corner.iter().zip(&basis).enumerate() {
                    if on == 1 {
                        er += u[m].signum() * a[0];
                        ec += u[m].signum() * a[1];
                        weight *= u[m].abs();
                    } else {
                        weight *= 1.0 - u[m].abs();
                    }
                }
                #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
                let (r, c) = (r0 as i64 + er.round() as i64, c0 as i64 + ec.round() as i64);
                if (0..=max_r).contains(&r) && (0..=max_c).contains(&c) {
                    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
                    offsets.push(((r - r0 as i64) as i32, (c - c0 as i64) as i32));
                    weights.push(weight);
                } else {
                    offsets.push((dr, dc));
                    weights.push(0.0);
                }
            }
            let total: f64 = weights.iter().sum();
            if total <= 0.0 {
                // Every weight is 0: the registration alone.
                weights[0] = 1.0;
            } else {
                weights.iter_mut().for_each(|v| *v /= total);
            }
            for ((corner, o), wgt) in out.iter_mut().zip(offsets).zip(weights) {
                corner.offsets.push(o);
                #[allow(clippy::cast_possible_truncation)]
                corner.weights.push(wgt as f32);
            }
        }
        out
    }

    /// Moves every patch to origin `offsets` (one per patch, as
    /// [`PatchSet::offsets`]), e.g. a [`LatticeCorner`]'s; the wavevectors
    /// stay those of [`PatchSet::register`].
    ///
    /// # Errors
    /// [`DataError::InvalidParameter`] (`offsets`) when there is not one per
    /// patch or a window would leave the image; the set is then unchanged.
    pub fn set_offsets(&mut self, offsets: &[(i32, i32)]) -> Result<()> {
        if offsets.len() != self.len() {
            return Err(DataError::InvalidParameter {
                name: "offsets",
                value: offsets.len().to_string(),
                rule: "one origin offset per patch",
            });
        }
        let w = self.grid.window();
        let (rows, cols) = self.scaled.dim();
        for (index, &(dr, dc)) in offsets.iter().enumerate() {
            let (gr, gc) = self.grid.position(index);
            let (r0, c0) = self.grid.origin(gr, gc);
            let r = r0.checked_add_signed(dr as isize);
            let c = c0.checked_add_signed(dc as isize);
            if !matches!((r, c), (Some(r), Some(c)) if r + w <= rows && c + w <= cols) {
                return Err(DataError::InvalidParameter {
                    name: "offsets",
                    value: format!("patch {index}: ({dr}, {dc})"),
                    rule: "every moved window must lie inside the image",
                });
            }
        }
        self.offsets.clear();
        self.offsets.extend_from_slice(offsets);
        Ok(())
    }

    /// Patch `index` as a view into the globally scaled image (no copy).
    ///
    /// This is the [`Scaling::GlobalMinMax`] patch whatever the set's scaling;
    /// use [`PatchSet::copy_patch_into`] to get [`Scaling::PerPatch`] values.
    ///
    /// # Errors
    /// [`DataError::PatchIndexOutOfRange`] if `index >= len()`.
    pub fn patch(&self, index: usize) -> Result<ArrayView2<'_, f32>> {
        let (r, c) = self.origin(index)?;
        let w = self.grid.window();
        Ok(self
            .scaled
            .view()
            .slice_axis_move(Axis(0), Slice::from(r..r + w))
            .slice_axis_move(Axis(1), Slice::from(c..c + w)))
    }

    /// Writes patch `index` into `out` (`window * window` values, row-major),
    /// scaled as chosen at construction; allocates nothing (for batch loaders).
    ///
    /// # Errors
    /// [`DataError::PatchIndexOutOfRange`] if `index >= len()`;
    /// [`DataError::ShapeMismatch`] if `out.len() != window * window`.
    pub fn copy_patch_into(&self, index: usize, out: &mut [f32]) -> Result<()> {
        let (r0, c0) = self.origin(index)?;
        let w = self.grid.window();
        if out.len() != w * w {
            return Err(DataError::ShapeMismatch {
                what: "patch output buffer",
                expected: vec![w * w],
                found: vec![out.len()],
            });
        }
        let cols = self.scaled.ncols();
        let Some(data) = self.scaled.as_slice() else {
            // `scaled` is built by `mapv_inplace` on an owned standard-layout
            // array; fall back to the strided view should that ever change.
            for (dst, &v) in out.iter_mut().zip(self.patch(index)?.iter()) {
                *dst = v;
            }
            return self.rescale_patch(out);
        };
        for (r, dst) in out.chunks_exact_mut(w).enumerate() {
            let start = (r0 + r) * cols + c0;
            dst.copy_from_slice(&data[start..start + w]);
        }
        self.rescale_patch(out)
    }

    /// Applies [`Scaling::PerPatch`] to a copied patch (no-op for global scaling).
    fn rescale_patch(&self, out: &mut [f32]) -> Result<()> {
        if self.scaling == Scaling::PerPatch {
            let (lo, hi) = out
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            if hi > lo {
                let (lo, range) = (f64::from(lo), f64::from(hi) - f64::from(lo));
                for v in out.iter_mut() {
                    #[allow(clippy::cast_possible_truncation)]
                    let scaled = ((f64::from(*v) - lo) / range) as f32;
                    *v = scaled;
                }
            } else {
                out.fill(0.0);
            }
        }
        Ok(())
    }

    fn check_index(&self, index: usize) -> Result<()> {
        if index < self.len() {
            Ok(())
        } else {
            Err(DataError::PatchIndexOutOfRange {
                index,
                len: self.len(),
            })
        }
    }
}

/// Checks the wavevectors of [`PatchSet::register`] (its rules, listed there).
///
/// # Errors
/// [`DataError::InvalidParameter`] (`register`) naming the broken rule.
pub fn check_wavevectors(k: &[[f64; 2]]) -> Result<()> {
    let bad = |value: String, rule: &'static str| {
        Err(DataError::InvalidParameter {
            name: "register",
            value,
            rule,
        })
    };
    if k.len() > 2 {
        return bad(
            format!("{} wavevectors", k.len()),
            "at most two wavevectors",
        );
    }
    for v in k {
        let len = v[0].hypot(v[1]);
        if !(v[0].is_finite() && v[1].is_finite() && len > 0.0 && len <= 0.5) {
            return bad(
                format!("[{}, {}]", v[0], v[1]),
                "a wavevector is finite, non-zero and at most 0.5 cycles per px long",
            );
        }
    }
    if let [a, b] = k {
        let sin = (a[0] * b[1] - a[1] * b[0]).abs() / (a[0].hypot(a[1]) * b[0].hypot(b[1]));
        if sin < 0.1 {
            return bad(
                format!("[{}, {}] and [{}, {}]", a[0], a[1], b[0], b[1]),
                "two wavevectors must not be parallel (more than about 6 degrees apart)",
            );
        }
    }
    Ok(())
}

/// The integer offset of [`PatchSet::register`] for a patch at `at` whose
/// lattice must move by `frac` cycles along each wavevector; the moved origin
/// stays in `[0, max]`.
fn nearest_registered(
    k: &[[f64; 2]],
    frac: [f64; 2],
    at: (f64, f64),
    max: (f64, f64),
) -> (i32, i32) {
    // Real displacements d with k_j . d = frac_j + n_j, for n_j in -2..=2.
    let mut candidates: Vec<(f64, f64)> = Vec::with_capacity(25);
    match k {
        [a] => {
            let n2 = a[0] * a[0] + a[1] * a[1];
            for n in -2..=2 {
                let t = (frac[0] + f64::from(n)) / n2;
                candidates.push((t * a[0], t * a[1]));
            }
        }
        [a, b] => {
            let det = a[0] * b[1] - a[1] * b[0];
            for n in -2..=2 {
                for m in -2..=2 {
                    let (u, v) = (frac[0] + f64::from(n), frac[1] + f64::from(m));
                    // Solve [a; b] d = (u, v) by Cramer's rule.
                    candidates.push(((u * b[1] - a[1] * v) / det, (a[0] * v - u * b[0]) / det));
                }
            }
        }
        _ => return (0, 0),
    }
    candidates.sort_by(|p, q| p.0.hypot(p.1).total_cmp(&q.0.hypot(q.1)));
    let inside = |d: &(f64, f64)| {
        let (r, c) = (at.0 + d.0.round(), at.1 + d.1.round());
        (0.0..=max.0).contains(&r) && (0.0..=max.1).contains(&c)
    };
    let d = candidates
        .iter()
        .find(|d| inside(d))
        .copied()
        .unwrap_or(candidates[0]);
    let r = (at.0 + d.0.round()).clamp(0.0, max.0) - at.0;
    let c = (at.1 + d.1.round()).clamp(0.0, max.1) - at.1;
    #[allow(clippy::cast_possible_truncation)]
    (r as i32, c as i32)
}

/// The truth label at each patch centre: a `gh x gw` map with
/// `out[[i, j]] = truth[grid.centre(i, j)]` (centre = top-left + `window / 2`).
///
/// # Errors
/// [`DataError::ShapeMismatch`] if `truth` is not the grid's image shape.
///
/// # Example
/// ```
/// use ndarray::Array2;
/// use phyvae_data::patches::{PatchGrid, labels_at_patch_centres};
/// let truth = Array2::from_shape_fn((6, 6), |(r, _)| i32::from(r >= 3));
/// let grid = PatchGrid::new(6, 6, 2, 2).unwrap(); // centres at rows 1, 3, 5
/// let labels = labels_at_patch_centres(truth.view(), &grid).unwrap();
/// assert_eq!(labels.column(0).to_vec(), vec![0, 1, 1]);
/// ```
pub fn labels_at_patch_centres(
    truth: ArrayView2<'_, i32>,
    grid: &PatchGrid,
) -> Result<Array2<i32>> {
    let (rows, cols) = grid.image_shape();
    if truth.dim() != (rows, cols) {
        return Err(DataError::ShapeMismatch {
            what: "truth map vs patch grid",
            expected: vec![rows, cols],
            found: vec![truth.nrows(), truth.ncols()],
        });
    }
    Ok(Array2::from_shape_fn((grid.gh(), grid.gw()), |(i, j)| {
        truth[grid.centre(i, j)]
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_grid_sizes() {
        // docs/METHOD.md section 1: 15 129 = 123^2 patches for a 1024^2 NiO-LSMO image
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
            Err(DataError::ImageSmallerThanWindow {
                rows: 40,
                cols: 64,
                window: 48
            })
        ));
    }

    use ndarray::array;

    fn ramp(rows: usize, cols: usize) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |(r, c)| (r * cols + c) as f32)
    }

    #[test]
    fn bifeo3_sized_grid_stores_one_image() {
        // 3904 x 3904 px, window 48, step 8: 483^2 = 233 289 patches, which as a
        // stack would be 233 289 * 48 * 48 * 4 B = 2.15 GB; the set holds one
        // image of 3904^2 = 15 241 216 floats (61 MB).
        let img = ramp(3904, 3904);
        let grid = PatchGrid::new(3904, 3904, 48, 8).unwrap();
        let set = PatchSet::new(img.view(), grid, Scaling::GlobalMinMax, Levelling::None).unwrap();
        assert_eq!(set.len(), 233_289);
        assert_eq!(set.stored_values(), 3904 * 3904);
        // Last patch starts at (482 * 8, 482 * 8) = (3856, 3856).
        assert_eq!(set.origin(233_288).unwrap(), (3856, 3856));
        let mut buf = vec![0.0_f32; 48 * 48];
        set.copy_patch_into(233_288, &mut buf).unwrap();
        // Bottom-right pixel of the image is the maximum -> 1.
        assert_eq!(buf[48 * 48 - 1], 1.0);
    }

    #[test]
    fn global_scaling_by_hand() {
        // Values 0..=11 on 3 x 4; min 0, max 11; window 2, step 2 -> 1 x 2 grid.
        let img = ramp(3, 4);
        let grid = PatchGrid::new(3, 4, 2, 2).unwrap();
        let set = PatchSet::new(img.view(), grid, Scaling::GlobalMinMax, Levelling::None).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(set.value_range(), (0.0, 11.0));
        // Patch 1 = rows 0..2, cols 2..4 = [[2, 3], [6, 7]] / 11.
        let expect = [2.0, 3.0, 6.0, 7.0].map(|v: f64| (v / 11.0) as f32);
        let mut buf = [0.0_f32; 4];
        set.copy_patch_into(1, &mut buf).unwrap();
        assert_eq!(buf, expect);
        let view = set.patch(1).unwrap();
        assert_eq!(view.iter().copied().collect::<Vec<_>>(), expect.to_vec());
    }

    #[test]
    fn per_patch_scaling_by_hand() {
        // Patch 1 = [[2, 3], [6, 7]]: per patch (v - 2) / 5 -> [0, 0.2, 0.8, 1].
        let img = ramp(3, 4);
        let grid = PatchGrid::new(3, 4, 2, 2).unwrap();
        let set = PatchSet::new(img.view(), grid, Scaling::PerPatch, Levelling::None).unwrap();
        let mut buf = [0.0_f32; 4];
        set.copy_patch_into(1, &mut buf).unwrap();
        for (b, e) in buf.iter().zip([0.0_f32, 0.2, 0.8, 1.0]) {
            assert!((b - e).abs() < 1e-6, "{buf:?}");
        }
    }

    #[test]
    fn constant_patch_becomes_zeros_per_patch() {
        // Left 2 x 2 block constant 5, right block varies.
        let img = array![[5.0_f32, 5.0, 1.0, 2.0], [5.0, 5.0, 3.0, 9.0]];
        let grid = PatchGrid::new(2, 4, 2, 2).unwrap();
        let set = PatchSet::new(img.view(), grid, Scaling::PerPatch, Levelling::None).unwrap();
        let mut buf = [7.0_f32; 4];
        set.copy_patch_into(0, &mut buf).unwrap();
        assert_eq!(buf, [0.0; 4]);
    }

    #[test]
    fn plane_levelling_removes_a_tilt_before_scaling() {
        // Tilt + a checkerboard of +-1: after levelling only the checkerboard
        // remains, so scaled values are exactly 0 or 1 (to rounding).
        let img = Array2::from_shape_fn((8, 8), |(r, c)| {
            100.0 + 3.0 * r as f32 - 2.0 * c as f32 + if (r + c) % 2 == 0 { 1.0 } else { -1.0 }
        });
        let grid = PatchGrid::new(8, 8, 4, 4).unwrap();
        let set = PatchSet::new(img.view(), grid, Scaling::GlobalMinMax, Levelling::Plane).unwrap();
        for (i, v) in set.scaled_image().iter().enumerate() {
            let (r, c) = (i / 8, i % 8);
            let expect = if (r + c) % 2 == 0 { 1.0 } else { 0.0 };
            assert!((v - expect).abs() < 1e-4, "({r}, {c}) = {v}");
        }
        let lines = PatchSet::new(
            img.view(),
            grid,
            Scaling::GlobalMinMax,
            Levelling::PlanePlusLines,
        );
        assert!(lines.is_ok());
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        let img = ramp(10, 10);
        let grid = PatchGrid::new(10, 12, 4, 2).unwrap();
        assert!(matches!(
            PatchSet::new(img.view(), grid, Scaling::GlobalMinMax, Levelling::None),
            Err(DataError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn non_finite_pixel_is_reported_with_position() {
        let mut img = ramp(6, 6);
        img[[4, 1]] = f32::INFINITY;
        img[[5, 0]] = f32::NAN;
        let grid = PatchGrid::new(6, 6, 4, 2).unwrap();
        assert!(matches!(
            PatchSet::new(img.view(), grid, Scaling::GlobalMinMax, Levelling::None),
            Err(DataError::NonFinitePixel { row: 4, col: 1, .. })
        ));
    }

    #[test]
    fn constant_image_is_an_error() {
        let img = Array2::from_elem((6, 6), 2.5_f32);
        let grid = PatchGrid::new(6, 6, 4, 2).unwrap();
        assert!(matches!(
            PatchSet::new(img.view(), grid, Scaling::GlobalMinMax, Levelling::None),
            Err(DataError::ConstantImage { value }) if value == 2.5
        ));
    }

    #[test]
    fn bad_index_and_buffer_are_errors() {
        let img = ramp(6, 6);
        let grid = PatchGrid::new(6, 6, 4, 2).unwrap(); // 2 x 2 = 4 patches
        let set = PatchSet::new(img.view(), grid, Scaling::GlobalMinMax, Levelling::None).unwrap();
        let mut buf = vec![0.0_f32; 16];
        assert!(matches!(
            set.copy_patch_into(4, &mut buf),
            Err(DataError::PatchIndexOutOfRange { index: 4, len: 4 })
        ));
        assert!(matches!(
            set.patch(4),
            Err(DataError::PatchIndexOutOfRange { index: 4, len: 4 })
        ));
        let mut short = vec![0.0_f32; 15];
        assert!(matches!(
            set.copy_patch_into(0, &mut short),
            Err(DataError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn labels_at_centres_by_hand() {
        // 64 x 72 image, window 48 step 8 -> 3 x 4 grid; centres at rows 24, 32, 40
        // and cols 24, 32, 40, 48. truth = 1000 * row + col.
        let truth = Array2::from_shape_fn((64, 72), |(r, c)| (1000 * r + c) as i32);
        let grid = PatchGrid::new(64, 72, 48, 8).unwrap();
        let labels = labels_at_patch_centres(truth.view(), &grid).unwrap();
        assert_eq!(labels.dim(), (3, 4));
        assert_eq!(labels[[0, 0]], 24_024);
        assert_eq!(labels[[2, 3]], 40_048);
        assert_eq!(labels[[1, 2]], 32_040);
        let wrong = Array2::<i32>::zeros((64, 71));
        assert!(matches!(
            labels_at_patch_centres(wrong.view(), &grid),
            Err(DataError::ShapeMismatch { .. })
        ));
    }

    /// cos(2 pi x / 10) + cos(2 pi y / 10) on 64 x 64 px, 20 px windows
    /// every 3 px: maxima (phase 0) where both coordinates are multiples of
    /// 10; the step is not.
    fn fringes_every_10_px() -> PatchSet {
        let tau = std::f32::consts::TAU;
        let img = Array2::from_shape_fn((64, 64), |(r, c)| {
            (tau * c as f32 / 10.0).cos() + (tau * r as f32 / 10.0).cos()
        });
        let grid = PatchGrid::new(64, 64, 20, 3).unwrap();
        PatchSet::new(img.view(), grid, Scaling::GlobalMinMax, Levelling::None).unwrap()
    }

    #[test]
    fn registration_moves_every_origin_onto_the_lattice() {
        let mut set = fringes_every_10_px();
        assert!(set.offsets().is_empty());
        let before: Vec<_> = (0..set.len()).map(|i| set.origin(i).unwrap()).collect();
        assert!(before.iter().any(|&(r, c)| r % 10 != 0 || c % 10 != 0));
        set.register(&[[0.1, 0.0], [0.0, 0.1]]).unwrap();
        assert_eq!(set.offsets().len(), set.len());
        for (i, &(r0, c0)) in before.iter().enumerate() {
            let (r, c) = set.origin(i).unwrap();
            assert_eq!((r % 10, c % 10), (0, 0), "patch {i} at ({r}, {c})");
            // Less than one cell away from where the grid put it.
            assert!(r.abs_diff(r0) <= 5 && c.abs_diff(c0) <= 5);
            assert!(r + 20 <= 64 && c + 20 <= 64);
        }
        // So every patch is the same patch (up to the rounding of cos in f32).
        let first = set.patch(0).unwrap().to_owned();
        for i in 1..set.len() {
            let p = set.patch(i).unwrap();
            assert!(
                p.iter().zip(&first).all(|(a, b)| (a - b).abs() < 1e-5),
                "patch {i}"
            );
        }
        set.register(&[]).unwrap();
        assert!(set.offsets().is_empty());
        assert_eq!(set.origin(5).unwrap(), before[5]);
    }

    #[test]
    fn registration_along_one_wavevector_moves_along_it_only() {
        // Fringes along x with period 8, shifted by 3 px: maxima at c = 3 (mod 8).
        let tau = std::f32::consts::TAU;
        let img = Array2::from_shape_fn((40, 60), |(_, c)| (tau * (c as f32 - 3.0) / 8.0).cos());
        let grid = PatchGrid::new(40, 60, 16, 5).unwrap();
        let mut set =
            PatchSet::new(img.view(), grid, Scaling::GlobalMinMax, Levelling::None).unwrap();
        set.register(&[[0.0, 0.125]]).unwrap();
        for (i, &(dr, _)) in set.offsets().iter().enumerate() {
            assert_eq!(dr, 0);
            assert_eq!(set.origin(i).unwrap().1 % 8, 3);
        }
    }

    #[test]
    fn lattice_corners_interpolate_between_the_two_nearest_fringes() {
        // Fringes along x with period 4, maxima at c = 0 (mod 4); 8 px windows
        // every px along a row. By hand: a patch at c = 1 registers to c = 0
        // (offset -1) and lies a quarter period past it, so corner 0 (c = 0)
        // weighs 3/4 and corner 1 (c = 4, offset +3) 1/4; at c = 3 it
        // registers to c = 4 (offset +1), a quarter before it: 3/4 there and
        // 1/4 at c = 0 (offset -3); at c = 4 it stays, weight 1.
        let tau = std::f32::consts::TAU;
        let img = Array2::from_shape_fn((8, 24), |(_, c)| (tau * c as f32 / 4.0).cos());
        let grid = PatchGrid::new(8, 24, 8, 1).unwrap();
        let mut set =
            PatchSet::new(img.view(), grid, Scaling::GlobalMinMax, Levelling::None).unwrap();
        assert!(set.lattice_corners().is_empty());
        set.register(&[[0.0, 0.25]]).unwrap();
        let corners = set.lattice_corners();
        assert_eq!(corners.len(), 2);
        assert_eq!(corners[0].offsets, set.offsets());
        let at = |i: usize| {
            (
                corners[0].offsets[i].1,
                corners[0].weights[i],
                corners[1].offsets[i].1,
                corners[1].weights[i],
            )
        };
        assert_eq!(at(1), (-1, 0.75, 3, 0.25));
        assert_eq!(at(3), (1, 0.75, -3, 0.25));
        assert_eq!(at(4).0, 0);
        assert_eq!(at(4).1, 1.0);
        // Every corner's window is inside the image, and each patch's
        // weights sum to 1.
        for i in 0..set.len() {
            let (_, w0, _, w1) = at(i);
            assert!((w0 + w1 - 1.0).abs() < 1e-6, "patch {i}");
        }
        set.set_offsets(&corners[1].offsets).unwrap();
    }

    #[test]
    fn lattice_corners_on_two_wavevectors_are_bilinear() {
        let mut set = fringes_every_10_px();
        set.register(&[[0.1, 0.0], [0.0, 0.1]]).unwrap();
        let corners = set.lattice_corners();
        assert_eq!(corners.len(), 4);
        // Patch (1, 1) has its origin at (3, 3): registered to (0, 0), 0.3
        // of a cell along each axis, so (0, 0) 0.49, (10, 0) and (0, 10)
        // 0.21 each, (10, 10) 0.09.
        let i = set.grid().gw() + 1;
        let got: Vec<((i32, i32), f32)> = corners
            .iter()
            .map(|k| (k.offsets[i], k.weights[i]))
            .collect();
        let want = [
            ((-3, -3), 0.49),
            ((7, -3), 0.21),
            ((-3, 7), 0.21),
            ((7, 7), 0.09),
        ];
        for ((o, w), (wo, ww)) in got.iter().zip(want) {
            assert_eq!(*o, wo);
            assert!((w - ww).abs() < 1e-6, "{got:?}");
        }
        for k in &corners {
            set.set_offsets(&k.offsets).unwrap();
        }
    }

    #[test]
    fn offsets_that_do_not_fit_are_refused() {
        let img = Array2::from_shape_fn((16, 16), |(r, c)| (r * c) as f32);
        let grid = PatchGrid::new(16, 16, 8, 4).unwrap();
        let mut set =
            PatchSet::new(img.view(), grid, Scaling::GlobalMinMax, Levelling::None).unwrap();
        let n = set.len();
        let name = |e: DataError| match e {
            DataError::InvalidParameter { name, .. } => name,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            name(set.set_offsets(&vec![(0, 0); n - 1]).unwrap_err()),
            "offsets"
        );
        let mut out = vec![(0, 0); n];
        out[n - 1] = (1, 0);
        assert_eq!(name(set.set_offsets(&out).unwrap_err()), "offsets");
        out[n - 1] = (0, 0);
        out[0] = (0, -1);
        assert_eq!(name(set.set_offsets(&out).unwrap_err()), "offsets");
        set.set_offsets(&vec![(0, 0); n]).unwrap();
        assert_eq!(set.origin(0).unwrap(), (0, 0));
    }

    #[test]
    fn registration_rejects_bad_wavevectors() {
        let img = Array2::from_shape_fn((32, 32), |(r, c)| (r * c) as f32);
        let grid = PatchGrid::new(32, 32, 8, 4).unwrap();
        let mut set =
            PatchSet::new(img.view(), grid, Scaling::GlobalMinMax, Levelling::None).unwrap();
        for bad in [
            vec![[0.1, 0.0], [0.0, 0.1], [0.1, 0.1]],
            vec![[0.0, 0.0]],
            vec![[0.6, 0.0]],
            vec![[f64::NAN, 0.1]],
            vec![[0.1, 0.0], [0.2, 0.001]],
        ] {
            assert!(
                matches!(
                    set.register(&bad),
                    Err(DataError::InvalidParameter {
                        name: "register",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        assert!(set.offsets().is_empty());
    }
}
