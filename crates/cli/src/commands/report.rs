//! `phyvae report RUN_DIR [RUN_DIR ...]`: the HTML report of one run, or of
//! several runs side by side.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use phyvae_report::html::{comparison_page, single_page};
use phyvae_report::report::{build_run_report, write_html};
use serde_json::json;

use crate::cli::ReportArgs;
use crate::commands::output::print_json;
use crate::progress::Progress;

/// File name of a comparison page written without `--out`.
const COMPARISON_FILE: &str = "comparison.html";

/// Builds the report of `runs` and writes it to `out`, or by default to
/// `RUN/report.html` (one run) or `comparison.html` in the current folder
/// (several runs). Every figure is also written to `RUN/figures/`. Returns the
/// page's path.
pub fn write_report(runs: &[PathBuf], out: Option<&Path>, progress: Progress) -> Result<PathBuf> {
    let step = progress.bar("report", runs.len() as u64);
    let mut reports = Vec::with_capacity(runs.len());
    for dir in runs {
        let r = build_run_report(dir, &mut |what| step.message(what.to_owned()))
            .with_context(|| format!("report of the run in {}", dir.display()))?;
        reports.push(r);
        step.bar().inc(1);
    }
    let (path, page) = match reports.as_slice() {
        [one] => (
            out.map_or_else(|| runs[0].join("report.html"), Path::to_path_buf),
            single_page(one),
        ),
        many => (
            out.map_or_else(|| PathBuf::from(COMPARISON_FILE), Path::to_path_buf),
            comparison_page(many),
        ),
    };
    write_html(&path, &page)?;
    step.done();
    Ok(path)
}

/// `phyvae report RUN_DIR ... [--out FILE]`.
pub fn run(a: &ReportArgs, progress: Progress) -> Result<()> {
    let path = write_report(&a.runs, a.out.as_deref(), progress)?;
    print_json(&json!({ "report": path, "runs": a.runs }))
}
