//! The run report: every picture of the paper for one run folder, written as
//! PNGs into `RUN_DIR/figures/` and assembled into one self-contained HTML
//! page (images embedded as data URIs, no external resource), or several runs
//! side by side.
//!
//! Sections (ids in brackets): the run's settings and the command that
//! reproduces it (`run`); the input image with the patch grid and sample
//! patches (`input`, paper figure 4a); every latent map with a colour bar
//! (`latents`); for each content map its denoised map and Otsu, multi-Otsu
//! (3, 4) and Chan-Vese segmentations, on their own and over the input
//! (`segmentation`); the learned manifold and the encoded distribution
//! (`manifold`, paper's `manifold2d`); loss curves (`losses`); segmentations
//! at the snapshot epochs (`evolution`, paper figure 6); and with a truth map
//! the scores and the truth beside the best segmentation (`scores`).

use std::path::Path;

use ndarray::{Array2, ArrayView2, Axis, Slice};
use phyvae_imaging::pipeline::{VisualizeParams, segment_map};

use crate::ReportError;
use crate::figure::{self, Extent, Figure};
use crate::render::Result;
use crate::run::{METHODS, RunData, read_2d, read_labels};
use phyvae_data::atomic::write_bytes_atomic;
use phyvae_run::config::PhysicsKind;
use phyvae_run::files::{self, RunDir};
use phyvae_run::history::EpochRecord;

/// Sample patches shown on the patch sheet (a 4 x 4 spread over the grid).
const SAMPLE_SIDE: usize = 4;
/// Most and fewest bins per axis of the encoded-distribution density (about
/// `sqrt(patches) / 4` in between, so a bin holds a few patches on average).
const DENSITY_BINS: (usize, usize) = (16, 64);
/// Most points drawn over the density.
const DENSITY_POINTS: usize = 4000;
/// Most frames in a boundary-evolution strip.
const MAX_FRAMES: usize = 8;

/// One element of a section.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A figure with its caption.
    Figure(Figure, String),
    /// A two-column table of names and values.
    Facts(Vec<(String, String)>),
    /// A table with a header row.
    Table(Vec<String>, Vec<Vec<String>>),
    /// Preformatted text (a command line).
    Code(String),
    /// A paragraph.
    Text(String),
    /// A warning box nobody can miss: a title and its lines (a failed run).
    Alert(String, Vec<String>),
    /// A short positive verdict (the run's checks passed).
    Verdict(String),
}

impl Item {
    /// Key that aligns the same item across runs in a comparison.
    pub(crate) fn key(&self, k: usize) -> String {
        match self {
            Self::Figure(f, _) => f.name.clone(),
            _ => format!("#{k}"),
        }
    }
}

/// A section of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// HTML id (see the module documentation).
    pub id: &'static str,
    /// Heading.
    pub title: &'static str,
    /// Items in order.
    pub items: Vec<Item>,
}

/// The report of one run: its label and sections.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// Short name of the run (its folder name).
    pub label: String,
    /// Sections in order.
    pub sections: Vec<Section>,
}

impl RunReport {
    /// Every figure of the report.
    pub fn figures(&self) -> impl Iterator<Item = &Figure> {
        self.sections.iter().flat_map(|s| {
            s.items.iter().filter_map(|i| match i {
                Item::Figure(f, _) => Some(f),
                _ => None,
            })
        })
    }
}

fn fmt_num(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e9 {
        format!("{x:.0}")
    } else if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.4}")
    }
}

/// Grid geometry of a run in display units.
struct Geometry {
    gh: usize,
    gw: usize,
    rows: usize,
    cols: usize,
    window: f64,
    step: f64,
    sx: f64,
    sy: f64,
    unit: String,
}

impl Geometry {
    fn new(run: &RunData) -> Self {
        let (gh, gw, _) = run.latents.dim();
        let (rows, cols) = match (&run.input, run.metrics.image_shape) {
            (Some(img), _) => img.dim(),
            (None, [r, c]) if r > 0 && c > 0 => (r, c),
            _ => (
                (gh - 1) * run.step + run.window,
                (gw - 1) * run.step + run.window,
            ),
        };
        let (sx, sy, unit) = match &run.calibration {
            Some(c) => (c.x, c.y, c.unit.clone()),
            None => (1.0, 1.0, "px".into()),
        };
        Self {
            gh,
            gw,
            rows,
            cols,
            window: run.window as f64,
            step: run.step as f64,
            sx,
            sy,
            unit,
        }
    }

    /// Left/top edge of the grid cells in px: the first patch centre minus half a step.
    fn grid_origin(&self) -> f64 {
        self.window / 2.0 - self.step / 2.0
    }

    /// Extent of a grid map: each cell is a step x step square around its patch centre.
    fn grid_extent(&self) -> Extent {
        let o = self.grid_origin();
        Extent {
            left: o * self.sx,
            right: (o + self.gw as f64 * self.step) * self.sx,
            top: o * self.sy,
            bottom: (o + self.gh as f64 * self.step) * self.sy,
            x_label: format!("x ({})", self.unit),
            y_label: format!("y ({})", self.unit),
        }
    }

    fn image_extent(&self) -> Extent {
        Extent {
            left: 0.0,
            right: self.cols as f64 * self.sx,
            top: 0.0,
            bottom: self.rows as f64 * self.sy,
            x_label: format!("x ({})", self.unit),
            y_label: format!("y ({})", self.unit),
        }
    }

    /// Grid cell under the image fractions `(fx, fy)`, if any.
    fn cell_at(&self, fx: f64, fy: f64) -> Option<(usize, usize)> {
        let (x, y) = (fx * self.cols as f64, fy * self.rows as f64);
        let o = self.grid_origin();
        let (j, i) = ((x - o) / self.step, (y - o) / self.step);
        if i < 0.0 || j < 0.0 {
            return None;
        }
        let (i, j) = (i as usize, j as usize);
        (i < self.gh && j < self.gw).then_some((i, j))
    }
}

fn run_facts(run: &RunData, g: &Geometry) -> Vec<(String, String)> {
    let m = &run.metrics;
    let mut f: Vec<(String, String)> = Vec::new();
    let mut add = |k: &str, v: String| f.push((k.to_owned(), v));
    add("input file", m.input.display().to_string());
    add("image size", format!("{} x {} px", g.rows, g.cols));
    add(
        "pixel size",
        run.calibration.as_ref().map_or_else(
            || "not recorded in the file".into(),
            |c| format!("{} x {} {}", c.y, c.x, c.unit),
        ),
    );
    add(
        "patch grid",
        format!(
            "{} x {} patches ({} in all), window {} px, step {} px",
            g.gh,
            g.gw,
            g.gh * g.gw,
            run.window,
            run.step
        ),
    );
    let wall = format!("{:.1} s", m.seconds);
    if m.is_fft() {
        add(
            "model",
            "classical baseline: |FFT| of each Hann-windowed patch, PCA to 4 components (pc1..pc4), no training".into(),
        );
        add("wall time", wall);
        add("phyvae version", m.phyvae_version.clone());
        return f;
    }
    let Some(c) = &run.config else {
        add("settings", "- (no config.toml)".into());
        add("wall time", wall);
        add("phyvae version", m.phyvae_version.clone());
        return f;
    };
    add(
        "model",
        format!(
            "{} ({} content latents)",
            c.model.kind.name(),
            c.model.n_latent
        ),
    );
    let p = &c.train.physics;
    // Without a physics term its mode, weight and latents are unused defaults.
    let physics = if p.kind == PhysicsKind::None {
        "none (ELBO only)".to_owned()
    } else {
        format!(
            "{}, mode {}, weight w {}, latents {}",
            p.kind.name(),
            as_toml(&p.mode),
            as_toml(&p.weight),
            as_toml(&p.latents)
        )
    };
    add("physics loss", physics);
    add("KL scale (beta)", as_toml(&c.train.beta));
    add(
        "optimisation",
        format!(
            "{} epochs, batch {}, Adam lr {}",
            c.train.epochs, c.train.batch_size, c.train.lr
        ),
    );
    add("seed", c.train.seed.to_string());
    add("wall time", wall);
    add(
        "training throughput",
        m.patches_per_second.map_or_else(
            || "-".into(),
            |p| format!("{p:.1} patches/s on {}", m.device.as_deref().unwrap_or("-")),
        ),
    );
    add("phyvae version", m.phyvae_version.clone());
    f
}

/// A setting as `config.toml` writes it (strings without quotes).
fn as_toml<T: serde::Serialize>(v: &T) -> String {
    match toml::Value::try_from(v) {
        Ok(toml::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "-".into(),
    }
}

/// The command lines that shaped the run (`metrics.json`'s `commands`: the
/// one that started it, then each `--resume`), each with the program named
/// `phyvae` and arguments holding spaces or quotes quoted.
fn original_commands(run: &RunData) -> Vec<String> {
    run.metrics
        .commands
        .iter()
        .filter(|args| !args.is_empty())
        .map(|args| quoted(args))
        .collect()
}

/// One command line for a shell, the program named `phyvae`.
fn quoted(args: &[String]) -> String {
    let mut out = vec!["phyvae".to_owned()];
    for a in args.iter().skip(1) {
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
            out.push(format!("'{}'", a.replace('\'', r"'\''")));
        } else {
            out.push(a.to_owned());
        }
    }
    out.join(" ")
}

fn reproduce_command(run: &RunData) -> String {
    let input = run.metrics.input.display();
    let dir = run.dir.display();
    format!("phyvae train {input} --out {dir}-again --config {dir}/config.toml")
}

/// Evenly spread indices `0..n`, at most `k` of them, first and last included.
fn spread(n: usize, k: usize) -> Vec<usize> {
    if n <= k {
        return (0..n).collect();
    }
    let mut v: Vec<usize> = (0..k)
        .map(|i| (i * (n - 1) + (k - 1) / 2) / (k - 1))
        .collect();
    v.dedup();
    v
}

fn input_section(run: &RunData, g: &Geometry) -> Result<Vec<Item>> {
    let Some(img) = &run.input else {
        return Ok(vec![Item::Text(
            "The input image was not saved with this run (input.png).".into(),
        )]);
    };
    let mut picks = Vec::new();
    for &i in &spread(g.gh, SAMPLE_SIDE) {
        for &j in &spread(g.gw, SAMPLE_SIDE) {
            picks.push((i, j));
        }
    }
    let boxes: Vec<(f64, f64, f64, f64)> = picks
        .iter()
        .map(|&(i, j)| {
            let (x, y) = (j as f64 * g.step, i as f64 * g.step);
            (
                x * g.sx,
                y * g.sy,
                (x + g.window) * g.sx,
                (y + g.window) * g.sy,
            )
        })
        .collect();
    let grid_fig = figure::grey_image(
        "input_grid",
        "Input image with sampled patch windows",
        img.view(),
        &g.image_extent(),
        None,
        &boxes,
    )?;
    let w = run.window;
    let patches: Vec<(String, ArrayView2<'_, f32>)> = picks
        .iter()
        .filter_map(|&(i, j)| {
            let (r, c) = (i * run.step, j * run.step);
            (r + w <= img.nrows() && c + w <= img.ncols()).then(|| {
                (
                    format!("({i}, {j})"),
                    img.view()
                        .slice_axis_move(Axis(0), Slice::from(r..r + w))
                        .slice_axis_move(Axis(1), Slice::from(c..c + w)),
                )
            })
        })
        .collect();
    let mut items = vec![Item::Figure(
        grid_fig,
        format!(
            "The image as the model saw it; red squares: the {} sampled {w} x {w} px windows below. Patches are cut every {} px.",
            boxes.len(),
            run.step
        ),
    )];
    if !patches.is_empty() {
        items.push(Item::Figure(
            figure::patch_sheet(
                "patches",
                "Sample patches (grid row, column)",
                &patches,
                SAMPLE_SIDE,
            )?,
            "Patches at evenly spread grid positions, each scaled to its own range.".into(),
        ));
    }
    Ok(items)
}

fn latents_section(run: &RunData, g: &Geometry) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    for (c, name) in run.names.iter().enumerate() {
        let map = run.latents.index_axis(Axis(2), c);
        let kind = if name.starts_with('z') {
            "content"
        } else {
            "transformation"
        };
        let fig = figure::heatmap(
            &format!("latent_{name}"),
            &format!("Latent map {name}"),
            map,
            &g.grid_extent(),
            name,
        )?;
        items.push(Item::Figure(
            fig,
            format!("Encoder mean of the {kind} latent {name} at each patch centre."),
        ));
    }
    Ok(items)
}

fn overlay_fn<'a>(
    g: &'a Geometry,
    labels: &'a Array2<i32>,
) -> impl Fn(f64, f64) -> Option<i32> + 'a {
    move |fx, fy| g.cell_at(fx, fy).map(|(i, j)| labels[[i, j]])
}

fn score_of(run: &RunData, name: &str, method: &str) -> Option<(f64, f64, f64)> {
    let s = run.metrics.maps.get(name)?.scores.as_ref()?.get(method)?;
    Some((s.ari, s.accuracy, s.boundary_f1))
}

fn segmentation_section(run: &RunData, g: &Geometry) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    for c in run.content() {
        let name = &run.names[c];
        if !run.is_active(name) {
            items.push(Item::Text(format!(
                "{name} carries no information (its encoder mean hardly varies across the image): it is not segmented, since any split of it would be noise."
            )));
            continue;
        }
        let dir = run.dir.join("segmentation").join(name);
        let dpath = dir.join("denoised.npy");
        if dpath.exists() {
            let den = read_2d(&dpath)?;
            let fig = figure::heatmap(
                &format!("seg_{name}_denoised"),
                &format!("{name}: normalised, bilateral-denoised"),
                den.view(),
                &g.grid_extent(),
                name,
            )?;
            items.push(Item::Figure(
                fig,
                format!(
                    "The map {name} scaled to [0, 1] and denoised: the input of every segmentation."
                ),
            ));
        }
        for (stem, human) in METHODS {
            let p = dir.join(format!("{stem}.npy"));
            if !p.exists() {
                if let Some(why) = run
                    .metrics
                    .maps
                    .get(name.as_str())
                    .and_then(|m| m.skipped.get(stem))
                {
                    items.push(Item::Text(format!(
                        "{human} segmentation of {name}: skipped ({why})."
                    )));
                }
                continue;
            }
            let labels = read_labels(&p)?;
            let score = score_of(run, name, stem)
                .map(|(a, acc, f1)| {
                    format!(
                        " Against the truth: ARI {a:.3}, accuracy {acc:.3}, boundary F1 {f1:.3}."
                    )
                })
                .unwrap_or_default();
            let own = figure::label_map(
                &format!("seg_{name}_{stem}"),
                &format!("{name}: {human}"),
                labels.view(),
                &g.grid_extent(),
            )?;
            items.push(Item::Figure(
                own,
                format!("{human} segmentation of {name}.{score}"),
            ));
            if let Some(img) = &run.input {
                let f = overlay_fn(g, &labels);
                let over = figure::grey_image(
                    &format!("overlay_{name}_{stem}"),
                    &format!("{name}: {human} over the input"),
                    img.view(),
                    &g.image_extent(),
                    Some(&f),
                    &[],
                )?;
                items.push(Item::Figure(
                    over,
                    "The same labels over the input image (each label on its patch-centre cell)."
                        .to_owned(),
                ));
            }
        }
    }
    if items.is_empty() {
        items.push(Item::Text(
            "No content map was segmented in this run.".into(),
        ));
    }
    Ok(items)
}

/// The diagnosis box: a failed run says so before anything else. Failed
/// attempts that were trained again are listed after it.
fn diagnosis_items(run: &RunData) -> Vec<Item> {
    let mut items = verdict_items(run);
    let attempts = &run.metrics.attempts;
    if !attempts.is_empty() {
        let tried: Vec<String> = attempts
            .iter()
            .map(|t| {
                let what = match (t.diagnosis.findings.first(), t.agreement) {
                    (Some(f), _) => f.kind.title().to_owned(),
                    (None, Some(agreement)) => format!(
                        "its result agreed with the classical baseline at an adjusted Rand index of {agreement:.2}, less than the kept attempt's"
                    ),
                    (None, None) => "failed".to_owned(),
                };
                format!(
                    "seed {}, learning rate {}: {what}, after {} epochs",
                    t.seed, t.lr, t.epochs
                )
            })
            .collect();
        items.push(Item::Text(format!(
            "This run trained {} times from scratch and kept one attempt; the maps are the kept attempt's. Thrown away: {}.",
            attempts.len() + 1,
            tried.join("; ")
        )));
    }
    items
}

fn verdict_items(run: &RunData) -> Vec<Item> {
    let Some(d) = &run.metrics.diagnosis else {
        return vec![Item::Text(
            "This run was made before runs were diagnosed: nobody checked whether its latents learned anything.".into(),
        )];
    };
    if d.findings.is_empty() && !d.cautions.is_empty() {
        let lines = d
            .cautions
            .iter()
            .map(|f| format!("{}: {}. Try: {}.", f.kind.title(), f.message, f.advice))
            .collect();
        return vec![Item::Alert(
            "Check this result: the training checks passed, but the result may be wrong.".into(),
            lines,
        )];
    }
    if d.findings.is_empty() {
        let active: Vec<String> = d
            .latents
            .iter()
            .filter(|l| l.content && l.active)
            .map(|l| match l.kl {
                Some(kl) => format!("{} ({kl:.2} nats)", l.name),
                None => l.name.clone(),
            })
            .collect();
        let text = if active.is_empty() {
            "Checks passed.".to_owned()
        } else {
            format!(
                "Checks passed: the content latents {} carry information; no collapse, flattening or divergence was found.",
                active.join(", ")
            )
        };
        return vec![Item::Verdict(text)];
    }
    let lines = d
        .findings
        .iter()
        .map(|f| format!("{}: {}. Try: {}.", as_toml(&f.kind), f.message, f.advice))
        .collect();
    vec![Item::Alert(
        "This run failed: its maps are not a result.".into(),
        lines,
    )]
}

/// The result segmentation in words: the maps clustered, the classes, and
/// how their number was reached.
fn segmentation_fact(r: &phyvae_run::metrics::ResultMetrics) -> String {
    let how = if r.classes_chosen == Some(true) {
        // "; 3 and 4 set aside: why", or nothing without such counts.
        let aside = |counts: Option<&[usize]>, why: &str| match counts {
            Some(ks) if !ks.is_empty() => format!(
                "; {} set aside: {why}",
                ks.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            _ => String::new(),
        };
        let set_aside = aside(
            r.classes_without_interior.as_deref(),
            "a class without an interior half a window from the others (a tenth of its cells at least) is a band along a boundary, not a phase",
        );
        let gradual = aside(
            r.classes_gradual.as_deref(),
            "two of their classes meet along a gradient, not at a step (a map drifting across a phase, cut into bands)",
        );
        format!(
            "chosen by the mean silhouette, {:.2}{set_aside}{gradual}",
            r.silhouette.unwrap_or(0.0)
        )
    } else {
        "given".to_owned()
    };
    format!(
        "k-means on the low-passed maps {} into {} classes ({how})",
        r.maps_clustered.as_deref().unwrap_or_default().join(", "),
        r.classes.map_or_else(|| "-".to_owned(), |k| k.to_string()),
    )
}

/// What the boundary refinement of a VAE's result did, in words: its own
/// reason, and the share of each class's sampled interior cells that its
/// decoded template recognised.
fn refinement_text(b: &phyvae_run::metrics::BoundaryRefinement) -> String {
    if b.interior_accuracy.is_empty() {
        return format!("{}.", b.reason);
    }
    let acc: Vec<String> = b
        .interior_accuracy
        .iter()
        .enumerate()
        .map(|(k, a)| format!("class {k} {:.0} %", 100.0 * a))
        .collect();
    format!(
        "{} (interiors recognised by their own template: {}).",
        b.reason,
        acc.join(", ")
    )
}

/// The result the run picked without the truth.
fn result_section(run: &RunData, g: &Geometry) -> Result<Vec<Item>> {
    let Some(r) = &run.metrics.result else {
        return Ok(vec![Item::Text(
            "This run names no result (it was made before results were picked).".into(),
        )]);
    };
    let Some(map) = r.map.as_deref() else {
        return Ok(vec![Item::Alert(
            "No result".into(),
            vec![format!("{}.", r.reason.as_deref().unwrap_or("-"))],
        )]);
    };
    let mut items = Vec::new();
    if let Some(d) = &run.metrics.diagnosis
        && !d.findings.is_empty()
    {
        items.push(Item::Alert(
            "Not a result".into(),
            vec![format!(
                "The diagnosis found this run failed ({}); the map and segmentation below are shown to inspect the failure, not as phases of the image.",
                d.findings
                    .iter()
                    .map(|f| f.kind.title())
                    .collect::<Vec<_>>()
                    .join("; ")
            )],
        ));
    }
    let mut facts = vec![
        ("result map".to_owned(), map.to_owned()),
        ("segmentation".to_owned(), segmentation_fact(r)),
        (
            "criterion".to_owned(),
            r.criterion.clone().unwrap_or_else(|| "-".into()),
        ),
    ];
    if let Some(sep) = &r.separability {
        let v: Vec<String> = sep.iter().map(|(k, e)| format!("{k} {e:.3}")).collect();
        facts.push(("Otsu separability".to_owned(), v.join(", ")));
    }
    if let Some(b) = &r.boundary_refinement {
        facts.push(("boundary cells".to_owned(), refinement_text(b)));
    }
    if let Some(b) = &r.baseline {
        facts.push((
            "classical baseline".to_owned(),
            format!(
                "|FFT| of {} px windows at a {} px step, {} classes (separability {:.3}): agrees with the result at ARI {:.3}",
                b.window, b.step, b.classes, b.separability, b.agreement
            ),
        ));
    }
    if let Some(score) = &r.score {
        let (o_ari, o_map, o_seg) = r.oracle.as_ref().map_or((0.0, "-", "-"), |o| {
            (o.score.ari, o.map.as_str(), o.segmentation.as_str())
        });
        facts.push((
            "against the truth".to_owned(),
            format!(
                "ARI {:.3}, accuracy {:.3}, boundary F1 {:.3}; the best of any map and segmentation (oracle): ARI {o_ari:.3} ({o_map} {o_seg})",
                score.ari, score.accuracy, score.boundary_f1,
            ),
        ));
    }
    items.push(Item::Facts(facts));
    let files = RunDir::new(&run.dir);
    let den = files.segmentation(map).join(files::DENOISED);
    if den.exists() {
        let d = read_2d(&den)?;
        let fig = figure::heatmap(
            "result_map",
            &format!("Result map: {map}"),
            d.view(),
            &g.grid_extent(),
            map,
        )?;
        items.push(Item::Figure(
            fig,
            format!("The map {map}, normalised and denoised: the one that splits most clearly."),
        ));
    }
    let lpath = files.result_labels();
    if lpath.exists() {
        let labels = read_labels(&lpath)?;
        let fig = figure::label_map(
            "result_labels",
            "Result segmentation",
            labels.view(),
            &g.grid_extent(),
        )?;
        items.push(Item::Figure(fig, "The result segmentation.".into()));
        if let Some(img) = &run.input {
            let f = overlay_fn(g, &labels);
            let over = figure::grey_image(
                "result_overlay",
                "Result over the input",
                img.view(),
                &g.image_extent(),
                Some(&f),
                &[],
            )?;
            items.push(Item::Figure(
                over,
                "The result labels over the input image.".into(),
            ));
        }
    }
    Ok(items)
}

/// The settings measured on the image, with their reasons.
fn settings_items(run: &RunData) -> Vec<Item> {
    let Some(s) = &run.metrics.settings else {
        return Vec::new();
    };
    let fft = run.metrics.is_fft();
    let rows = s
        .choices
        .iter()
        // The baseline uses only the patch grid.
        .filter(|c| !fft || c.name.starts_with("data."))
        .map(|c| vec![c.name.clone(), c.value.clone(), c.reason.clone()])
        .collect();
    let mut items = vec![
        Item::Text(
            "Settings taken from the image (a flag on the command line wins over any of them):"
                .into(),
        ),
        Item::Table(
            ["setting", "value", "reason"].map(String::from).to_vec(),
            rows,
        ),
    ];
    if let Some(d) = &run.metrics.scan_drift {
        items.push(Item::Text(drift_text(d)));
    }
    items
}

/// The scan drift a run removed, in words.
fn drift_text(d: &phyvae_run::metrics::ScanDrift) -> String {
    format!(
        "Scan drift removed before the patches were cut: rows moved by {:.2} px root mean square, {:.2} px at most, {:.3} px per row at the steepest.",
        d.rms_px, d.max_px, d.max_shear
    )
}

/// Normal quantiles of the manifold grid's ends (pyroVED `manifold2d`: 0.05 and 0.95).
const Q95: f64 = 1.644_853_626_951_472_2;

fn manifold_section(run: &RunData) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let content = run.content();
    if let Some(m) = &run.manifold {
        let (x_label, y_label) = match content.as_slice() {
            [a, b, ..] => (run.names[*b].clone(), run.names[*a].clone()),
            [a] => (run.names[*a].clone(), String::new()),
            [] => (String::new(), String::new()),
        };
        let extent = Extent {
            left: -Q95,
            right: Q95,
            top: Q95,
            bottom: -Q95,
            x_label: format!("{x_label} (standard-normal quantiles 0.05 to 0.95)"),
            y_label,
        };
        let fig = figure::heatmap(
            "manifold",
            "Learned manifold (decoded latent grid)",
            m.view(),
            &extent,
            "decoded intensity",
        )?;
        items.push(Item::Figure(
            fig,
            "Patches decoded from a grid of content latents at standard-normal quantiles (transformation latents at 0), as pyroVED's manifold2d.".into(),
        ));
    }
    if let [a, b, ..] = content.as_slice() {
        let ya = run.latents.index_axis(Axis(2), *a);
        let xb = run.latents.index_axis(Axis(2), *b);
        let (ylo, yhi) = figure::finite_range(ya);
        let (xlo, xhi) = figure::finite_range(xb);
        let pad = |lo: f32, hi: f32| {
            let p = 0.05 * f64::from((hi - lo).max(1e-6));
            (f64::from(lo) - p, f64::from(hi) + p)
        };
        let (ylo, yhi) = pad(ylo, yhi);
        let (xlo, xhi) = pad(xlo, xhi);
        let n = ya.len();
        let bins = ((n as f64).sqrt() / 4.0)
            .round()
            .clamp(DENSITY_BINS.0 as f64, DENSITY_BINS.1 as f64) as usize;
        let mut counts = Array2::<f32>::zeros((bins, bins));
        let mut points = Vec::new();
        let every = n.div_ceil(DENSITY_POINTS).max(1);
        for (k, (&y, &x)) in ya.iter().zip(xb.iter()).enumerate() {
            if !(x.is_finite() && y.is_finite()) {
                continue;
            }
            let (x, y) = (f64::from(x), f64::from(y));
            let c = (((x - xlo) / (xhi - xlo)) * bins as f64) as usize;
            let r = (((yhi - y) / (yhi - ylo)) * bins as f64) as usize;
            counts[[r.min(bins - 1), c.min(bins - 1)]] += 1.0;
            if k % every == 0 {
                points.push((x, y));
            }
        }
        let extent = Extent {
            left: xlo,
            right: xhi,
            top: yhi,
            bottom: ylo,
            x_label: run.names[*b].clone(),
            y_label: run.names[*a].clone(),
        };
        let fig = figure::density(
            "latent_density",
            "Encoded distribution of the content latents",
            counts.view(),
            &extent,
            &points,
        )?;
        items.push(Item::Figure(
            fig,
            format!("2-D histogram ({bins} x {bins} bins) of the encoder means of all {n} patches, with {} of them as red dots.", points.len()),
        ));
    }
    if items.is_empty() {
        items.push(Item::Text(
            "No manifold: the model has fewer than one content latent.".into(),
        ));
    }
    Ok(items)
}

fn losses_section(history: &[EpochRecord]) -> Result<Vec<Item>> {
    if history.is_empty() {
        return Ok(vec![Item::Text(
            "No training history in this folder.".into(),
        )]);
    }
    let pts = |f: fn(&EpochRecord) -> f64| -> Vec<(f64, f64)> {
        history.iter().map(|r| (r.epoch as f64, f(r))).collect()
    };
    let (total, elbo, recon, kl, psi) = (
        pts(|r| r.total),
        pts(|r| r.elbo),
        pts(|r| r.recon),
        pts(|r| r.kl),
        pts(|r| r.psi),
    );
    let mut panels = vec![(
        "nats per patch",
        true,
        vec![
            ("total", total.as_slice()),
            ("ELBO part L_sh", elbo.as_slice()),
            ("reconstruction", recon.as_slice()),
            ("KL", kl.as_slice()),
        ],
    )];
    let has_psi = psi.iter().any(|(_, p)| *p != 0.0);
    if has_psi {
        panels.push(("Psi", false, vec![("Psi", psi.as_slice())]));
    }
    let fig = figure::curves("loss_curves", "Loss per epoch", "epoch", &panels)?;
    let last = &history[history.len() - 1];
    let rows = history
        .iter()
        .map(|r| {
            vec![
                fmt_num(r.epoch as f64),
                fmt_num(f64::from(r.beta)),
                fmt_num(r.elbo),
                fmt_num(r.psi),
                fmt_num(r.total),
                format!("{:.2}", r.seconds),
            ]
        })
        .collect();
    Ok(vec![
        Item::Figure(
            fig,
            format!(
                "Mean per-patch losses of each epoch (log scale){}. Final epoch: ELBO part {:.2}, Psi {:.4}, total {:.2}.",
                if has_psi {
                    "; below, the physics term Psi"
                } else {
                    "; Psi was 0 throughout (no physics term, or still in warm-up)"
                },
                last.elbo,
                last.psi,
                last.total
            ),
        ),
        Item::Table(
            ["epoch", "beta", "ELBO part", "Psi", "total", "seconds"]
                .map(String::from)
                .to_vec(),
            rows,
        ),
    ])
}

fn evolution_section(run: &RunData, progress: &mut dyn FnMut(&str)) -> Result<Vec<Item>> {
    if run.snapshots.is_empty() {
        return Ok(vec![Item::Text(
            "No snapshots in this run (train with --snapshot-every N to record the latent maps during training).".into(),
        )]);
    }
    // The run's own segmentation settings (colour sigma, low-pass).
    let params = match &run.config {
        Some(c) => c.visualize_params()?,
        None => VisualizeParams::default(),
    };
    let mut frames_all: Vec<(usize, &ndarray::Array3<f32>)> =
        run.snapshots.iter().map(|(e, l)| (*e, l)).collect();
    let last_epoch = run.history.last().map_or(0, |r| r.epoch);
    if frames_all.last().is_none_or(|(e, _)| *e != last_epoch) && last_epoch > 0 {
        frames_all.push((last_epoch, &run.latents));
    }
    let picks = spread(frames_all.len(), MAX_FRAMES);
    let mut items = Vec::new();
    for c in run.content() {
        let name = &run.names[c];
        progress(&format!("evolution of {name}"));
        let mut frames = Vec::new();
        for &k in &picks {
            let (epoch, lat) = frames_all[k];
            let map = lat.index_axis(Axis(2), c);
            let seg = segment_map(map, &params)?;
            frames.push((format!("epoch {epoch}"), seg.otsu));
        }
        let views: Vec<(String, ArrayView2<'_, i32>)> =
            frames.iter().map(|(t, l)| (t.clone(), l.view())).collect();
        let fig = figure::label_strip(
            &format!("evolution_{name}"),
            &format!("{name}: Otsu segmentation during training"),
            &views,
        )?;
        items.push(Item::Figure(
            fig,
            format!("Otsu segmentation of the denoised map {name} at {} epochs: boundaries forming and sharpening.", views.len()),
        ));
    }
    Ok(items)
}

fn scores_section(run: &RunData) -> Result<Vec<Item>> {
    let Some(truth) = &run.truth else {
        return Ok(vec![Item::Text(
            "No truth map was given (train with --truth TRUTH.npy to score the segmentations)."
                .into(),
        )]);
    };
    let mut rows = Vec::new();
    let mut best: Option<(f64, String, String)> = None;
    for c in run.content() {
        let name = &run.names[c];
        for (stem, human) in METHODS {
            if let Some((ari, acc, f1)) = score_of(run, name, stem) {
                rows.push(vec![
                    name.clone(),
                    human.to_owned(),
                    format!("{ari:.3}"),
                    format!("{acc:.3}"),
                    format!("{f1:.3}"),
                ]);
                if best.as_ref().is_none_or(|(b, _, _)| ari > *b) {
                    best = Some((ari, name.clone(), stem.to_owned()));
                }
            }
        }
    }
    let mut items = vec![Item::Table(
        ["map", "segmentation", "ARI", "accuracy", "boundary F1"]
            .map(String::from)
            .to_vec(),
        rows,
    )];
    if let Some((ari, name, stem)) = best {
        let labels = read_labels(
            &run.dir
                .join("segmentation")
                .join(&name)
                .join(format!("{stem}.npy")),
        )?;
        if labels.dim() == truth.dim() {
            let frames = vec![
                ("truth".to_owned(), truth.view()),
                (format!("{name} {stem} (ARI {ari:.3})"), labels.view()),
            ];
            let fig = figure::label_strip(
                "truth_vs_best",
                "Truth beside the best segmentation",
                &frames,
            )?;
            items.push(Item::Figure(fig, format!("The truth labels at the patch centres and the segmentation with the highest ARI ({name}, {stem}).")));
        }
    }
    Ok(items)
}

/// Builds every figure and table of the run in `dir`, writes each figure to
/// `dir/figures/<name>.png`, and returns the report; `progress` is called with
/// a short description before each step.
///
/// # Errors
/// [`ReportError`] when the run folder cannot be read (see
/// [`RunData::load`]), a map cannot be segmented or drawn, or a figure cannot
/// be written.
pub fn build_run_report(dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<RunReport> {
    progress("reading the run");
    let run = RunData::load(dir)?;
    let g = Geometry::new(&run);
    let mut sections = Vec::new();
    sections.push(Section {
        id: "diagnosis",
        title: "Did it learn?",
        items: diagnosis_items(&run),
    });
    progress("result");
    sections.push(Section {
        id: "result",
        title: "Result",
        items: result_section(&run, &g)?,
    });
    sections.push(Section {
        id: "run",
        title: "The run",
        items: {
            let mut items = vec![Item::Facts(run_facts(&run, &g))];
            items.extend(settings_items(&run));
            let commands = original_commands(&run);
            match commands.len() {
                0 => {}
                1 => items.push(Item::Text("Command that made this run:".into())),
                _ => items.push(Item::Text(
                    "Commands that made this run (the first started it, each later one resumed it):"
                        .into(),
                )),
            }
            items.extend(commands.into_iter().map(Item::Code));
            items.push(Item::Text(
                "The same run again, from its recorded settings (bit-identical results on the same machine):".into(),
            ));
            items.push(Item::Code(reproduce_command(&run)));
            items
        },
    });
    progress("input image and patches");
    sections.push(Section {
        id: "input",
        title: "Input image and patches",
        items: input_section(&run, &g)?,
    });
    progress("latent maps");
    sections.push(Section {
        id: "latents",
        title: "Latent maps",
        items: latents_section(&run, &g)?,
    });
    progress("segmentations");
    sections.push(Section {
        id: "segmentation",
        title: "Segmentations of the content maps",
        items: segmentation_section(&run, &g)?,
    });
    progress("manifold and latent distribution");
    sections.push(Section {
        id: "manifold",
        title: "Learned manifold and latent distribution",
        items: manifold_section(&run)?,
    });
    progress("loss curves");
    sections.push(Section {
        id: "losses",
        title: "Loss curves",
        items: losses_section(&run.history)?,
    });
    sections.push(Section {
        id: "evolution",
        title: "Boundary evolution",
        items: evolution_section(&run, progress)?,
    });
    progress("scores");
    sections.push(Section {
        id: "scores",
        title: "Scores against the truth",
        items: scores_section(&run)?,
    });
    let report = RunReport {
        label: run.label(),
        sections,
    };
    let fdir = dir.join("figures");
    std::fs::create_dir_all(&fdir).map_err(|source| ReportError::Io {
        path: fdir.clone(),
        source,
    })?;
    progress("writing figures");
    for f in report.figures() {
        phyvae_data::fault::point("report.figure");
        write_bytes_atomic(&fdir.join(format!("{}.png", f.name)), &f.png)?;
    }
    Ok(report)
}

/// Writes `html` to `path` atomically.
///
/// # Errors
/// [`ReportError::Io`] with `path`.
pub fn write_html(path: &Path, html: &str) -> Result<()> {
    phyvae_data::fault::point("report.page");
    Ok(write_bytes_atomic(path, html.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_keeps_both_ends_and_at_most_k() {
        assert_eq!(spread(3, 4), vec![0, 1, 2]);
        assert_eq!(spread(10, 4), vec![0, 3, 6, 9]);
        assert_eq!(spread(61, 4), vec![0, 20, 40, 60]);
    }

    /// A run of one 1 x 1 latent map with `metrics`, and nothing else.
    fn bare_run(metrics: phyvae_run::metrics::Metrics) -> RunData {
        RunData {
            dir: "r".into(),
            metrics,
            config: None,
            history: Vec::new(),
            latents: ndarray::Array3::zeros((1, 1, 1)),
            names: vec!["z1".into()],
            window: 8,
            step: 8,
            input: None,
            calibration: None,
            manifold: None,
            snapshots: Vec::new(),
            truth: None,
        }
    }

    #[test]
    fn the_original_commands_are_quoted_for_a_shell() {
        let run = bare_run(phyvae_run::metrics::Metrics {
            commands: vec![
                ["/x/phyvae", "train", "my image.png", "--out", "r"]
                    .map(String::from)
                    .to_vec(),
                [
                    "/x/phyvae",
                    "train",
                    "my image.png",
                    "--out",
                    "r",
                    "--resume",
                ]
                .map(String::from)
                .to_vec(),
            ],
            ..phyvae_run::metrics::Metrics::default()
        });
        assert_eq!(
            original_commands(&run),
            vec![
                "phyvae train 'my image.png' --out r",
                "phyvae train 'my image.png' --out r --resume"
            ]
        );
    }

    #[test]
    fn a_caution_is_shown_as_a_check_not_as_a_failure() {
        let mut diagnosis = phyvae_run::diagnose::Diagnosis::default();
        diagnosis.check_agreement(0.2, 0.95);
        let run = bare_run(phyvae_run::metrics::Metrics {
            diagnosis: Some(diagnosis),
            ..phyvae_run::metrics::Metrics::default()
        });
        let items = verdict_items(&run);
        let [Item::Alert(title, lines)] = items.as_slice() else {
            panic!("one alert expected: {items:?}");
        };
        assert!(title.starts_with("Check this result"), "{title}");
        assert!(!title.contains("failed"), "{title}");
        assert!(
            lines[0].contains("classical baseline") && lines[0].contains("0.20"),
            "{lines:?}"
        );
    }

    #[test]
    fn the_segmentation_says_which_class_counts_were_set_aside() {
        let mut r = phyvae_run::metrics::ResultMetrics {
            maps_clustered: Some(vec!["z1".into(), "z2".into()]),
            classes: Some(2),
            classes_chosen: Some(true),
            silhouette: Some(0.804),
            classes_without_interior: Some(vec![3, 4]),
            ..phyvae_run::metrics::ResultMetrics::default()
        };
        assert_eq!(
            segmentation_fact(&r),
            "k-means on the low-passed maps z1, z2 into 2 classes (chosen by the mean silhouette, 0.80; 3 and 4 set aside: a class without an interior half a window from the others (a tenth of its cells at least) is a band along a boundary, not a phase)"
        );
        r.classes_gradual = Some(vec![4]);
        assert!(
            segmentation_fact(&r).ends_with("not a phase; 4 set aside: two of their classes meet along a gradient, not at a step (a map drifting across a phase, cut into bands))"),
            "{}",
            segmentation_fact(&r)
        );
        r.classes_gradual = Some(Vec::new());
        r.classes_without_interior = Some(Vec::new());
        assert_eq!(
            segmentation_fact(&r),
            "k-means on the low-passed maps z1, z2 into 2 classes (chosen by the mean silhouette, 0.80)"
        );
        r.classes_chosen = Some(false);
        assert!(segmentation_fact(&r).ends_with("(given)"));
    }

    #[test]
    fn the_boundary_refinement_is_stated_with_its_interior_check() {
        let b = phyvae_run::metrics::BoundaryRefinement {
            applied: false,
            band_cells: 40,
            moved: 0,
            interior_accuracy: vec![1.0, 0.5],
            reason: "not applied: reason".into(),
        };
        assert_eq!(
            refinement_text(&b),
            "not applied: reason (interiors recognised by their own template: class 0 100 %, class 1 50 %)."
        );
        let none = phyvae_run::metrics::BoundaryRefinement {
            interior_accuracy: Vec::new(),
            reason: "not applied: no shift latents".into(),
            ..b
        };
        assert_eq!(refinement_text(&none), "not applied: no shift latents.");
    }

    #[test]
    fn the_drift_removed_is_stated() {
        let d = phyvae_run::metrics::ScanDrift {
            rms_px: 1.234,
            max_px: 2.5,
            max_shear: 0.0456,
        };
        assert_eq!(
            drift_text(&d),
            "Scan drift removed before the patches were cut: rows moved by 1.23 px root mean square, 2.50 px at most, 0.046 px per row at the steepest."
        );
    }

    #[test]
    fn numbers_are_formatted_for_reading() {
        assert_eq!(fmt_num(30.0), "30");
        assert_eq!(fmt_num(0.123_456), "0.1235");
        assert_eq!(fmt_num(1234.56), "1234.6");
    }
}
