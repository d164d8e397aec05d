//! Figures: PNG plots with axes, labels and colour bars, drawn with
//! [plotters](https://docs.rs/plotters) (axes, ticks, text, curves) and
//! filled pixel by pixel where a picture is an image (maps, label maps,
//! densities), so every map cell keeps its exact colour.
//!
//! Conventions:
//! - a picture's [`Extent`] gives the data coordinates of its left, right,
//!   top and bottom edges; image row 0 is at the top (matplotlib's
//!   `imshow(origin="upper")`), so `top < bottom` for images in pixels and
//!   `top > bottom` for a latent plane drawn with its y axis pointing up;
//! - scalar maps use [`viridis`] scaled to the finite minimum and maximum
//!   (with a colour bar), label maps matplotlib's tab10 colours (with a
//!   legend), NaN cells [`NAN_GREY`];
//! - text uses DejaVu Sans, bundled with the crate (`assets/`, Bitstream Vera
//!   licence), so figures look the same on every machine.
//!
//! ```
//! use ndarray::Array2;
//! use phyvae_report::figure::{Extent, heatmap};
//!
//! let map = Array2::from_shape_fn((20, 30), |(i, j)| (i + j) as f32);
//! let extent = Extent::pixels(30.0, 20.0, "px");
//! let fig = heatmap("map", "A ramp", map.view(), &extent, "value").unwrap();
//! assert!(fig.width > 100 && fig.height > 100);
//! assert_eq!(&fig.png[1..4], b"PNG");
//! ```

use std::ops::Range;
use std::sync::Once;

use ndarray::ArrayView2;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::ReportError;
use crate::colormap::{NAN_GREY, label_colour, viridis};
use crate::render::{Result, encode_rgb};

/// The bundled font (DejaVu Sans 2.37, Bitstream Vera licence: `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// Font family name the figures ask plotters for.
const FAMILY: &str = "sans-serif";
/// Title font size in px.
const TITLE_PX: u32 = 15;
/// Axis label font size in px.
const LABEL_PX: u32 = 13;
/// Tick label font size in px.
const TICK_PX: u32 = 11;
/// Width in px of the plotting area of a map figure.
const MAP_PLOT_W: u32 = 360;
/// Smallest and largest height in px of the plotting area of a map figure.
const MAP_PLOT_H: (u32, u32) = (140, 520);
/// Width in px reserved right of a map for its colour bar or legend.
const BAR_W: u32 = 100;
/// Margin in px around a chart.
const MARGIN: u32 = 8;
/// Height in px of the caption line above a chart.
const CAPTION_H: u32 = 26;
/// Height in px of the x-axis label area.
const X_AREA: u32 = 40;
/// Width in px of the y-axis label area.
const Y_AREA: u32 = 56;
/// Opacity of label colours drawn over the input image.
const OVERLAY_ALPHA: f32 = 0.45;

static FONT_ONCE: Once = Once::new();

/// Registers the bundled font with plotters (once per process).
fn ensure_font() {
    FONT_ONCE.call_once(|| {
        // The bundled font is a valid TrueType file (checked by a test); if it
        // were not, plotters would fail to draw text and report that error.
        let _ = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT);
    });
}

/// A finished figure: its PNG and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// File stem, unique within a run (e.g. `latent_z1`): `figures/<name>.png`.
    pub name: String,
    /// Title shown above the picture.
    pub title: String,
    /// Width in px.
    pub width: u32,
    /// Height in px.
    pub height: u32,
    /// The PNG file's bytes.
    pub png: Vec<u8>,
}

/// The data coordinates of a picture's edges, and their unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Extent {
    /// x at the left edge.
    pub left: f64,
    /// x at the right edge.
    pub right: f64,
    /// y at the top edge.
    pub top: f64,
    /// y at the bottom edge.
    pub bottom: f64,
    /// Label of the x axis.
    pub x_label: String,
    /// Label of the y axis.
    pub y_label: String,
}

impl Extent {
    /// An image of `width x height` in `unit` (e.g. px or nm), origin at the
    /// top-left corner, axes labelled `x (unit)` and `y (unit)`.
    #[must_use]
    pub fn pixels(width: f64, height: f64, unit: &str) -> Self {
        Self {
            left: 0.0,
            right: width,
            top: 0.0,
            bottom: height,
            x_label: format!("x ({unit})"),
            y_label: format!("y ({unit})"),
        }
    }

    /// Fractions of the extent from its left and top edges at the data
    /// point `(x, y)` (inside the picture for values in `[0, 1)`).
    fn fractions(&self, x: f64, y: f64) -> (f64, f64) {
        (
            (x - self.left) / (self.right - self.left),
            (y - self.top) / (self.bottom - self.top),
        )
    }

    fn x_range(&self) -> Range<f64> {
        self.left..self.right
    }

    fn y_range(&self) -> Range<f64> {
        self.bottom..self.top
    }
}

fn plot_err(figure: &str) -> impl Fn(String) -> ReportError + '_ {
    move |reason| ReportError::Plot {
        figure: figure.to_owned(),
        reason,
    }
}

/// An RGB canvas, white at the start.
struct Canvas {
    w: u32,
    h: u32,
    rgb: Vec<u8>,
}

impl Canvas {
    fn new(w: u32, h: u32) -> Self {
        Self {
            w,
            h,
            rgb: vec![255; 3 * w as usize * h as usize],
        }
    }

    /// Fills the pixel rectangle `(xs, ys)` with `paint(fx, fy)`, where
    /// `fx, fy` in `[0, 1)` are the pixel centre's fractions of the rectangle
    /// from its left and top edges.
    fn fill(&mut self, (xs, ys): (Range<i32>, Range<i32>), paint: &dyn Fn(f64, f64) -> [u8; 3]) {
        let (w, h) = (f64::from(xs.end - xs.start), f64::from(ys.end - ys.start));
        for py in ys.clone() {
            if py < 0 || py >= self.h as i32 {
                continue;
            }
            let fy = (f64::from(py - ys.start) + 0.5) / h;
            for px in xs.clone() {
                if px < 0 || px >= self.w as i32 {
                    continue;
                }
                let fx = (f64::from(px - xs.start) + 0.5) / w;
                let k = 3 * (py as usize * self.w as usize + px as usize);
                self.rgb[k..k + 3].copy_from_slice(&paint(fx, fy));
            }
        }
    }

    fn set(&mut self, x: i32, y: i32, c: [u8; 3]) {
        if x >= 0 && y >= 0 && x < self.w as i32 && y < self.h as i32 {
            let k = 3 * (y as usize * self.w as usize + x as usize);
            self.rgb[k..k + 3].copy_from_slice(&c);
        }
    }

    /// Outline of the pixel rectangle `[x0, x1] x [y0, y1]`, `t` px thick.
    fn outline(&mut self, (x0, y0, x1, y1): (i32, i32, i32, i32), t: i32, c: [u8; 3]) {
        for d in 0..t {
            for x in x0..=x1 {
                self.set(x, y0 + d, c);
                self.set(x, y1 - d, c);
            }
            for y in y0..=y1 {
                self.set(x0 + d, y, c);
                self.set(x1 - d, y, c);
            }
        }
    }

    fn into_figure(self, name: &str, title: &str) -> Result<Figure> {
        let png = encode_rgb(self.w, self.h, self.rgb)?;
        Ok(Figure {
            name: name.to_owned(),
            title: title.to_owned(),
            width: self.w,
            height: self.h,
            png,
        })
    }
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Draws axes (ticks, labels, caption) for `extent` on `area` and returns the
/// pixel rectangle of the plotting area, to be filled afterwards.
fn axes(
    area: &Area<'_>,
    caption: &str,
    extent: &Extent,
) -> std::result::Result<(Range<i32>, Range<i32>), String> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, TITLE_PX))
        .margin(MARGIN)
        .x_label_area_size(X_AREA)
        .y_label_area_size(Y_AREA)
        .build_cartesian_2d(extent.x_range(), extent.y_range())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(extent.x_label.as_str())
        .y_desc(extent.y_label.as_str())
        .label_style((FAMILY, TICK_PX))
        .axis_desc_style((FAMILY, LABEL_PX))
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|v| tick(*v, extent.right - extent.left))
        .y_label_formatter(&|v| tick(*v, extent.bottom - extent.top))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart.plotting_area().get_pixel_range())
}

/// A colour bar for values `lo..hi` on `area`; returns its pixel rectangle.
fn colour_bar(
    area: &Area<'_>,
    label: &str,
    lo: f64,
    hi: f64,
) -> std::result::Result<(Range<i32>, Range<i32>), String> {
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, lo + 0.5)
    };
    let mut chart = ChartBuilder::on(area)
        .margin_top(MARGIN + CAPTION_H)
        .margin_bottom(MARGIN + X_AREA)
        .margin_right(MARGIN)
        .y_label_area_size(0)
        .right_y_label_area_size(58)
        .build_cartesian_2d(0.0..1.0, lo..hi)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_desc(label)
        .label_style((FAMILY, TICK_PX))
        .axis_desc_style((FAMILY, LABEL_PX))
        .y_labels(5)
        .y_label_formatter(&|v| tick(*v, hi - lo))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart.plotting_area().get_pixel_range())
}

/// A tick label with as many decimals as an axis spanning `span` needs
/// (none from a span of 10 up, one for spans from 1 to 10, ...).
fn tick(v: f64, span: f64) -> String {
    let span = span.abs().max(f64::MIN_POSITIVE);
    let decimals = (1.0 - span.log10().floor()).clamp(0.0, 6.0) as usize;
    format!("{v:.decimals$}")
}

/// Height of a map's plotting area for a `rows x cols` picture.
fn plot_height(rows: usize, cols: usize) -> u32 {
    let h = f64::from(MAP_PLOT_W) * rows as f64 / cols.max(1) as f64;
    (h.round() as u32).clamp(MAP_PLOT_H.0, MAP_PLOT_H.1)
}

fn map_canvas(rows: usize, cols: usize, right: u32) -> Canvas {
    let w = MAP_PLOT_W + Y_AREA + 2 * MARGIN + right;
    let h = plot_height(rows, cols) + CAPTION_H + X_AREA + 2 * MARGIN;
    Canvas::new(w, h)
}

fn check_map<T>(map: &ArrayView2<'_, T>) -> Result<()> {
    if map.is_empty() {
        return Err(ReportError::EmptyMap {
            rows: map.nrows(),
            cols: map.ncols(),
        });
    }
    Ok(())
}

/// Minimum and maximum of the finite values (`(0, 0)` when there are none).
#[must_use]
pub fn finite_range(map: ArrayView2<'_, f32>) -> (f32, f32) {
    let (lo, hi) = map
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if lo <= hi { (lo, hi) } else { (0.0, 0.0) }
}

/// Cell of a `rows x cols` map under the fractions `(fx, fy)` of its extent.
fn cell(rows: usize, cols: usize, fx: f64, fy: f64) -> (usize, usize) {
    let r = ((fy * rows as f64) as usize).min(rows - 1);
    let c = ((fx * cols as f64) as usize).min(cols - 1);
    (r, c)
}

fn scalar_colour(v: f32, lo: f32, hi: f32) -> [u8; 3] {
    if v.is_nan() {
        NAN_GREY
    } else if hi > lo {
        viridis((v - lo) / (hi - lo))
    } else {
        viridis(0.0)
    }
}

/// Pixel rectangles of a plot and its colour bar.
type PlotAndBar = ((Range<i32>, Range<i32>), (Range<i32>, Range<i32>));

/// Draws the axes of a map figure and the frame of its colour bar (values
/// `range`) on `canvas`, and returns both pixel rectangles, to be filled.
fn axes_and_bar(
    canvas: &mut Canvas,
    name: &str,
    title: &str,
    extent: &Extent,
    bar_label: &str,
    range: (f64, f64),
) -> Result<PlotAndBar> {
    let root =
        BitMapBackend::with_buffer(&mut canvas.rgb, (canvas.w, canvas.h)).into_drawing_area();
    let (left, right) = root.split_horizontally(canvas.w - BAR_W);
    let plot = axes(&left, title, extent).map_err(plot_err(name))?;
    let bar = colour_bar(&right, bar_label, range.0, range.1).map_err(plot_err(name))?;
    root.present().map_err(|e| plot_err(name)(e.to_string()))?;
    Ok((plot, bar))
}

/// A scalar map drawn with viridis over `extent`, with axes and a colour bar
/// labelled `bar_label` (scaled to the finite minimum and maximum).
///
/// # Errors
/// [`ReportError::EmptyMap`] for an empty map; [`ReportError::Plot`] if
/// plotters fails; [`ReportError::Png`] if encoding fails.
pub fn heatmap(
    name: &str,
    title: &str,
    map: ArrayView2<'_, f32>,
    extent: &Extent,
    bar_label: &str,
) -> Result<Figure> {
    check_map(&map)?;
    ensure_font();
    let (rows, cols) = map.dim();
    let (lo, hi) = finite_range(map);
    let mut canvas = map_canvas(rows, cols, BAR_W);
    let (plot, bar) = axes_and_bar(
        &mut canvas,
        name,
        title,
        extent,
        bar_label,
        (f64::from(lo), f64::from(hi)),
    )?;
    canvas.fill(plot, &|fx, fy| {
        let (r, c) = cell(rows, cols, fx, fy);
        scalar_colour(map[[r, c]], lo, hi)
    });
    canvas.fill(bar, &|_, fy| viridis((1.0 - fy) as f32));
    canvas.into_figure(name, title)
}

/// A grey image (min-max scaled) over `extent`, with axes, optionally with
/// label colours blended over it (`overlay(fx, fy)` gives the label under the
/// fractions `fx, fy` of the extent, `None` where there is none) and outlined
/// rectangles in data coordinates (`(left, top, right, bottom)`, drawn red).
///
/// # Errors
/// As [`heatmap`].
pub fn grey_image(
    name: &str,
    title: &str,
    img: ArrayView2<'_, f32>,
    extent: &Extent,
    overlay: Option<&dyn Fn(f64, f64) -> Option<i32>>,
    boxes: &[(f64, f64, f64, f64)],
) -> Result<Figure> {
    check_map(&img)?;
    ensure_font();
    let (rows, cols) = img.dim();
    let (lo, hi) = finite_range(img);
    let legend_w = if overlay.is_some() { BAR_W } else { 0 };
    let mut canvas = map_canvas(rows, cols, legend_w);
    let mut labels_seen = std::collections::BTreeSet::new();
    if let Some(f) = overlay {
        for i in 0..64 {
            for j in 0..64 {
                if let Some(l) = f((f64::from(j) + 0.5) / 64.0, (f64::from(i) + 0.5) / 64.0) {
                    labels_seen.insert(l);
                }
            }
        }
    }
    let plot = {
        let root =
            BitMapBackend::with_buffer(&mut canvas.rgb, (canvas.w, canvas.h)).into_drawing_area();
        let (left, right) = root.split_horizontally(canvas.w - legend_w);
        let plot = axes(&left, title, extent).map_err(plot_err(name))?;
        if overlay.is_some() {
            draw_legend(&right, &labels_seen).map_err(plot_err(name))?;
        }
        root.present().map_err(|e| plot_err(name)(e.to_string()))?;
        plot
    };
    let grey = |v: f32| -> f32 {
        if v.is_finite() && hi > lo {
            (v - lo) / (hi - lo)
        } else {
            0.0
        }
    };
    canvas.fill(plot.clone(), &|fx, fy| {
        let (r, c) = cell(rows, cols, fx, fy);
        let g = grey(img[[r, c]]) * 255.0;
        match overlay.and_then(|f| f(fx, fy)) {
            Some(l) => {
                let lc = label_colour(l);
                let mix = |k: usize| {
                    (OVERLAY_ALPHA * f32::from(lc[k]) + (1.0 - OVERLAY_ALPHA) * g).round() as u8
                };
                [mix(0), mix(1), mix(2)]
            }
            None => {
                let g = g.round() as u8;
                [g, g, g]
            }
        }
    });
    let (xs, ys) = plot;
    let to_px = |x: f64, y: f64| -> (i32, i32) {
        let (fx, fy) = extent.fractions(x, y);
        (
            xs.start + (fx * f64::from(xs.end - xs.start)).round() as i32,
            ys.start + (fy * f64::from(ys.end - ys.start)).round() as i32,
        )
    };
    for &(l, t, r, b) in boxes {
        let (x0, y0) = to_px(l, t);
        let (x1, y1) = to_px(r, b);
        canvas.outline((x0, y0, x1, y1), 2, [228, 26, 28]);
    }
    canvas.into_figure(name, title)
}

/// A legend of label colours on `area`.
fn draw_legend(
    area: &Area<'_>,
    labels: &std::collections::BTreeSet<i32>,
) -> std::result::Result<(), String> {
    let font = (FAMILY, LABEL_PX).into_font();
    let mut y = (MARGIN + CAPTION_H + 4) as i32;
    for &l in labels.iter().take(12) {
        let c = label_colour(l);
        area.draw(&Rectangle::new(
            [(6, y), (20, y + 14)],
            RGBColor(c[0], c[1], c[2]).filled(),
        ))
        .map_err(|e| e.to_string())?;
        area.draw(&Text::new(
            format!("label {l}"),
            (26, y),
            font.clone().color(&BLACK),
        ))
        .map_err(|e| e.to_string())?;
        y += 20;
    }
    Ok(())
}

/// A label map drawn with tab10 colours over `extent`, with axes and a legend.
///
/// # Errors
/// As [`heatmap`].
pub fn label_map(
    name: &str,
    title: &str,
    labels: ArrayView2<'_, i32>,
    extent: &Extent,
) -> Result<Figure> {
    check_map(&labels)?;
    ensure_font();
    let (rows, cols) = labels.dim();
    let seen: std::collections::BTreeSet<i32> = labels.iter().copied().collect();
    let mut canvas = map_canvas(rows, cols, BAR_W);
    let plot = {
        let root =
            BitMapBackend::with_buffer(&mut canvas.rgb, (canvas.w, canvas.h)).into_drawing_area();
        let (left, right) = root.split_horizontally(canvas.w - BAR_W);
        let plot = axes(&left, title, extent).map_err(plot_err(name))?;
        draw_legend(&right, &seen).map_err(plot_err(name))?;
        root.present().map_err(|e| plot_err(name)(e.to_string()))?;
        plot
    };
    canvas.fill(plot, &|fx, fy| {
        let (r, c) = cell(rows, cols, fx, fy);
        label_colour(labels[[r, c]])
    });
    canvas.into_figure(name, title)
}

/// Several label maps side by side (e.g. one segmentation at several epochs),
/// each with its own caption, sharing one legend; `frames` holds
/// `(caption, labels)`.
///
/// # Errors
/// [`ReportError::InvalidParameter`] for no frame; otherwise as [`heatmap`].
pub fn label_strip(
    name: &str,
    title: &str,
    frames: &[(String, ArrayView2<'_, i32>)],
) -> Result<Figure> {
    let Some((_, first)) = frames.first() else {
        return Err(ReportError::InvalidParameter {
            name: "frames",
            value: "0 frames".into(),
            rule: "a strip needs at least one frame",
        });
    };
    for (_, f) in frames {
        check_map(f)?;
    }
    ensure_font();
    let (rows, cols) = first.dim();
    let side: u32 = 150;
    let frame_h = ((f64::from(side) * rows as f64 / cols as f64).round() as u32).clamp(60, 300);
    let n = frames.len() as u32;
    let w = n * (side + 10) + 10;
    let h = frame_h + 2 * CAPTION_H + 20;
    let mut canvas = Canvas::new(w, h);
    {
        let root = BitMapBackend::with_buffer(&mut canvas.rgb, (w, h)).into_drawing_area();
        let tfont = (FAMILY, TITLE_PX).into_font();
        root.draw(&Text::new(title.to_owned(), (10, 6), tfont.color(&BLACK)))
            .map_err(|e| plot_err(name)(e.to_string()))?;
        let font = (FAMILY, LABEL_PX).into_font();
        for (k, (cap, _)) in frames.iter().enumerate() {
            let x = 10 + k as i32 * (side + 10) as i32;
            root.draw(&Text::new(
                cap.clone(),
                (x, (CAPTION_H + 4) as i32),
                font.clone().color(&BLACK),
            ))
            .map_err(|e| plot_err(name)(e.to_string()))?;
        }
        root.present().map_err(|e| plot_err(name)(e.to_string()))?;
    }
    let y0 = (2 * CAPTION_H + 8) as i32;
    for (k, (_, labels)) in frames.iter().enumerate() {
        let (fr, fc) = labels.dim();
        let x0 = 10 + k as i32 * (side + 10) as i32;
        canvas.fill(
            (x0..x0 + side as i32, y0..y0 + frame_h as i32),
            &|fx, fy| {
                let (r, c) = cell(fr, fc, fx, fy);
                label_colour(labels[[r, c]])
            },
        );
    }
    canvas.into_figure(name, title)
}

/// A 2-D density: counts on a `bins x bins` grid over `extent` (row 0 at the
/// top edge), drawn as `log(1 + count)` with viridis (empty bins white), with
/// up to the given points drawn over it as small dots.
///
/// # Errors
/// As [`heatmap`].
pub fn density(
    name: &str,
    title: &str,
    counts: ArrayView2<'_, f32>,
    extent: &Extent,
    points: &[(f64, f64)],
) -> Result<Figure> {
    check_map(&counts)?;
    ensure_font();
    let (rows, cols) = counts.dim();
    let logc = counts.mapv(|c| (1.0 + c.max(0.0)).ln());
    let (_, hi) = finite_range(logc.view());
    let mut canvas = map_canvas(rows, cols, BAR_W);
    let (plot, bar) = axes_and_bar(
        &mut canvas,
        name,
        title,
        extent,
        "ln(1 + count)",
        (0.0, f64::from(hi)),
    )?;
    canvas.fill(plot.clone(), &|fx, fy| {
        let (r, c) = cell(rows, cols, fx, fy);
        let v = logc[[r, c]];
        if v > 0.0 {
            scalar_colour(v, 0.0, hi)
        } else {
            [255, 255, 255]
        }
    });
    canvas.fill(bar, &|_, fy| viridis((1.0 - fy) as f32));
    let (xs, ys) = plot;
    for &(x, y) in points {
        let (fx, fy) = extent.fractions(x, y);
        if (0.0..1.0).contains(&fx) && (0.0..1.0).contains(&fy) {
            let px = xs.start + (fx * f64::from(xs.end - xs.start)) as i32;
            let py = ys.start + (fy * f64::from(ys.end - ys.start)) as i32;
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                canvas.set(px + dx, py + dy, [200, 20, 20]);
            }
        }
    }
    canvas.into_figure(name, title)
}

/// One curve of [`curves`]: a name and its `(x, y)` points.
pub type Series<'a> = (&'a str, &'a [(f64, f64)]);

/// Line plots in stacked panels sharing an x axis (`x_label`); each panel has
/// a y label, a log scale when `log` and all values are positive, and one or
/// more named series with a legend.
///
/// # Errors
/// [`ReportError::InvalidParameter`] for no panel; [`ReportError::Plot`] if
/// plotters fails; [`ReportError::Png`] if encoding fails.
pub fn curves(
    name: &str,
    title: &str,
    x_label: &str,
    panels: &[(&str, bool, Vec<Series<'_>>)],
) -> Result<Figure> {
    if panels.is_empty() {
        return Err(ReportError::InvalidParameter {
            name: "panels",
            value: "0 panels".into(),
            rule: "a plot needs at least one panel",
        });
    }
    ensure_font();
    let panel_h: u32 = 230;
    let (w, h) = (620, panel_h * panels.len() as u32);
    let mut canvas = Canvas::new(w, h);
    {
        let root = BitMapBackend::with_buffer(&mut canvas.rgb, (w, h)).into_drawing_area();
        let areas = root.split_evenly((panels.len(), 1));
        for (k, ((y_label, log, series), area)) in panels.iter().zip(&areas).enumerate() {
            let caption = if k == 0 { title } else { "" };
            draw_panel(area, caption, x_label, y_label, *log, series).map_err(plot_err(name))?;
        }
        root.present().map_err(|e| plot_err(name)(e.to_string()))?;
    }
    canvas.into_figure(name, title)
}

/// Colours of successive curves (tab10).
fn series_colour(k: usize) -> RGBColor {
    let c = label_colour(k as i32);
    RGBColor(c[0], c[1], c[2])
}

fn draw_panel(
    area: &Area<'_>,
    caption: &str,
    x_label: &str,
    y_label: &str,
    log: bool,
    series: &[Series<'_>],
) -> std::result::Result<(), String> {
    let pts = || {
        series
            .iter()
            .flat_map(|(_, p)| p.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in pts() {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let log = log && y0 > 0.0;
    if y1 <= y0 {
        let pad = if y0 == 0.0 { 1.0 } else { 0.1 * y0.abs() };
        (y0, y1) = (y0 - pad, y1 + pad);
    } else if !log {
        let pad = 0.05 * (y1 - y0);
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(MARGIN)
        .x_label_area_size(X_AREA)
        .y_label_area_size(Y_AREA + 14);
    if !caption.is_empty() {
        builder.caption(caption, (FAMILY, TITLE_PX));
    }
    macro_rules! draw_with {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(y_label)
                .label_style((FAMILY, TICK_PX))
                .axis_desc_style((FAMILY, LABEL_PX))
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(|e| e.to_string())?;
            for (k, (label, p)) in series.iter().enumerate() {
                let colour = series_colour(k);
                let keep: Vec<(f64, f64)> = p
                    .iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log || *y > 0.0))
                    .collect();
                chart
                    .draw_series(LineSeries::new(
                        keep.iter().copied(),
                        colour.stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?
                    .label(*label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                    });
                chart
                    .draw_series(
                        keep.iter()
                            .map(|&(x, y)| Circle::new((x, y), 2, colour.filled())),
                    )
                    .map_err(|e| e.to_string())?;
            }
            chart
                .configure_series_labels()
                .label_font((FAMILY, TICK_PX))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(|e| e.to_string())?;
        }};
    }
    if log {
        draw_with!(
            builder
                .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                .map_err(|e| e.to_string())?
        );
    } else {
        draw_with!(
            builder
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| e.to_string())?
        );
    }
    Ok(())
}

/// A sheet of grey patches (each min-max scaled on its own) in a grid of
/// `per_row` columns, with a caption per patch.
///
/// # Errors
/// [`ReportError::InvalidParameter`] for no patch or `per_row == 0`;
/// [`ReportError::EmptyMap`] for an empty patch; as [`heatmap`] otherwise.
pub fn patch_sheet(
    name: &str,
    title: &str,
    patches: &[(String, ArrayView2<'_, f32>)],
    per_row: usize,
) -> Result<Figure> {
    if patches.is_empty() || per_row == 0 {
        return Err(ReportError::InvalidParameter {
            name: "patches",
            value: format!("{} patches, {per_row} per row", patches.len()),
            rule: "a sheet needs at least one patch and one column",
        });
    }
    for (_, p) in patches {
        check_map(p)?;
    }
    ensure_font();
    let tile: u32 = 72;
    let gap: u32 = 18;
    let cols = per_row.min(patches.len()) as u32;
    let rows = patches.len().div_ceil(per_row) as u32;
    let (w, h) = (cols * (tile + 6) + 12, CAPTION_H + 6 + rows * (tile + gap));
    let mut canvas = Canvas::new(w, h);
    {
        let root = BitMapBackend::with_buffer(&mut canvas.rgb, (w, h)).into_drawing_area();
        root.draw(&Text::new(
            title.to_owned(),
            (8, 6),
            (FAMILY, TITLE_PX).into_font().color(&BLACK),
        ))
        .map_err(|e| plot_err(name)(e.to_string()))?;
        let font = (FAMILY, TICK_PX).into_font();
        for (k, (cap, _)) in patches.iter().enumerate() {
            let (i, j) = ((k / per_row) as u32, (k % per_row) as u32);
            let (x, y) = (
                8 + j * (tile + 6),
                CAPTION_H + 6 + i * (tile + gap) + tile + 2,
            );
            root.draw(&Text::new(
                cap.clone(),
                (x as i32, y as i32),
                font.clone().color(&BLACK),
            ))
            .map_err(|e| plot_err(name)(e.to_string()))?;
        }
        root.present().map_err(|e| plot_err(name)(e.to_string()))?;
    }
    for (k, (_, p)) in patches.iter().enumerate() {
        let (i, j) = ((k / per_row) as i32, (k % per_row) as i32);
        let (x, y) = (
            8 + j * (tile + 6) as i32,
            (CAPTION_H + 6) as i32 + i * (tile + gap) as i32,
        );
        let (lo, hi) = finite_range(*p);
        let (pr, pc) = p.dim();
        canvas.fill((x..x + tile as i32, y..y + tile as i32), &|fx, fy| {
            let (r, c) = cell(pr, pc, fx, fy);
            let v = p[[r, c]];
            let g = if v.is_finite() && hi > lo {
                ((v - lo) / (hi - lo) * 255.0).round() as u8
            } else {
                0
            };
            [g, g, g]
        });
    }
    canvas.into_figure(name, title)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn decode(png: &[u8]) -> (u32, u32, Vec<u8>) {
        let dec = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = dec.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn colour_count(rgb: &[u8]) -> usize {
        rgb.chunks(3)
            .map(|c| (c[0], c[1], c[2]))
            .collect::<std::collections::HashSet<_>>()
            .len()
    }

    #[test]
    fn bundled_font_parses() {
        assert!(plotters::style::register_font("test-sans", FontStyle::Normal, FONT).is_ok());
    }

    #[test]
    fn heatmap_size_follows_the_map_aspect_and_png_matches_the_declared_size() {
        let wide = Array2::from_shape_fn((10, 40), |(i, j)| (i * j) as f32);
        let tall = Array2::from_shape_fn((40, 20), |(i, j)| (i + j) as f32);
        let fw = heatmap(
            "w",
            "wide",
            wide.view(),
            &Extent::pixels(40.0, 10.0, "px"),
            "v",
        )
        .unwrap();
        let ft = heatmap(
            "t",
            "tall",
            tall.view(),
            &Extent::pixels(20.0, 40.0, "px"),
            "v",
        )
        .unwrap();
        assert_eq!(fw.width, ft.width);
        // Plot heights: 360 * 10 / 40 = 90 -> clamped to 140; 360 * 40 / 20 = 720 -> 520.
        assert_eq!(fw.height, 140 + CAPTION_H + X_AREA + 2 * MARGIN);
        assert_eq!(ft.height, 520 + CAPTION_H + X_AREA + 2 * MARGIN);
        let (w, h, _) = decode(&ft.png);
        assert_eq!((w, h), (ft.width, ft.height));
    }

    #[test]
    fn heatmap_draws_the_colormap_ends_and_text() {
        // A map with values 0 and 1 only: its cells take viridis' first and last colour.
        let map = Array2::from_shape_fn((8, 8), |(_, j)| if j < 4 { 0.0 } else { 1.0 });
        let fig = heatmap(
            "m",
            "two values",
            map.view(),
            &Extent::pixels(8.0, 8.0, "px"),
            "v",
        )
        .unwrap();
        let (_, _, rgb) = decode(&fig.png);
        let has = |c: [u8; 3]| rgb.chunks(3).any(|p| p == c);
        assert!(has(viridis(0.0)) && has(viridis(1.0)));
        // Axes and anti-aliased text add many grey levels beyond the map's colours.
        assert!(colour_count(&rgb) > 50, "{}", colour_count(&rgb));
    }

    #[test]
    fn label_strip_has_one_frame_per_entry() {
        let a = Array2::from_shape_fn((5, 5), |(i, _)| i32::from(i > 2));
        let frames: Vec<(String, ArrayView2<'_, i32>)> =
            (0..3).map(|k| (format!("epoch {k}"), a.view())).collect();
        let fig = label_strip("s", "strip", &frames).unwrap();
        assert_eq!(fig.width, 3 * 160 + 10);
        assert!(label_strip("s", "strip", &[]).is_err());
    }

    #[test]
    fn curves_accept_log_panels_and_reject_no_panel() {
        let a: Vec<(f64, f64)> = (1..=5)
            .map(|e| (f64::from(e), 100.0 / f64::from(e)))
            .collect();
        let b: Vec<(f64, f64)> = (1..=5).map(|e| (f64::from(e), 0.1)).collect();
        let fig = curves(
            "loss",
            "loss",
            "epoch",
            &[
                ("nats", true, vec![("elbo", &a)]),
                ("psi", false, vec![("psi", &b)]),
            ],
        )
        .unwrap();
        assert_eq!((fig.width, fig.height), (620, 460));
        assert!(curves("loss", "loss", "epoch", &[]).is_err());
    }

    #[test]
    fn overlay_blends_label_colours_over_grey() {
        let img = Array2::from_elem((10, 10), 0.0_f32);
        let f = |fx: f64, _fy: f64| if fx < 0.5 { Some(1) } else { None };
        let fig = grey_image(
            "o",
            "overlay",
            img.view(),
            &Extent::pixels(10.0, 10.0, "px"),
            Some(&f),
            &[],
        )
        .unwrap();
        let (_, _, rgb) = decode(&fig.png);
        // A constant image is drawn black (0); label 1 (orange, #ff7f0e) at 45 % over black.
        let c = label_colour(1).map(|v| (0.45 * f32::from(v)).round() as u8);
        assert!(rgb.chunks(3).any(|p| p == c));
    }

    #[test]
    fn ticks_have_the_decimals_their_axis_span_needs() {
        assert_eq!(tick(20.0, 128.0), "20");
        assert_eq!(tick(1.25, 3.3), "1.2");
        assert_eq!(tick(-0.15, 0.1), "-0.15");
    }

    #[test]
    fn empty_maps_are_errors() {
        let e = Array2::<f32>::zeros((0, 3));
        assert!(matches!(
            heatmap("e", "e", e.view(), &Extent::pixels(1.0, 1.0, "px"), "v"),
            Err(ReportError::EmptyMap { .. })
        ));
    }
}
