//! One row per epoch: what training did ([`EpochRecord`]), kept in the
//! trainer's checkpoints, written as `history.csv` and read back by the
//! report.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Result, RunError};

/// What one epoch did (averages over its batches, per patch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// KL scale used.
    pub beta: f32,
    /// Adam learning rate used (0 when unknown: checkpoints and
    /// `history.csv` files written before it was recorded).
    #[serde(default)]
    pub lr: f64,
    /// Mean reconstruction term `-log p(x|z)`.
    pub recon: f64,
    /// Mean KL term (before `beta`).
    pub kl: f64,
    /// Mean `L_sh = recon + beta KL` (the ELBO part).
    pub elbo: f64,
    /// Mean Psi (0 without a physics term).
    pub psi: f64,
    /// Mean total loss that was minimised.
    pub total: f64,
    /// Wall-clock seconds of the epoch (training only).
    pub seconds: f64,
    /// Mean KL of each latent in nats, `KL(N(mu_j, sd_j^2) || N(0, 1))`
    /// averaged over the epoch's patches, special latents first: the
    /// information each latent carries (Burgess et al. 2018, "Understanding
    /// disentangling in beta-VAE", arXiv:1804.03599). Empty in checkpoints
    /// written before it was recorded.
    #[serde(default)]
    pub kl_latent: Vec<f64>,
    /// Variance over the epoch's patches of each latent's encoder mean: a
    /// latent is *active* when this exceeds 0.01 (Burda, Grosse and
    /// Salakhutdinov 2016, "Importance weighted autoencoders", section 5.2).
    #[serde(default)]
    pub mean_var: Vec<f64>,
}

/// The columns of `history.csv`, in order.
pub const CSV_COLUMNS: [&str; 9] = [
    "epoch", "beta", "lr", "recon", "kl", "elbo", "psi", "total", "seconds",
];

/// The columns [`parse_csv`] may find missing: `lr`, absent from files
/// written before it was recorded.
const OPTIONAL_COLUMNS: [&str; 1] = ["lr"];

/// `history.csv`: a header line of [`CSV_COLUMNS`], then one line per epoch
/// (the per-latent columns stay in `metrics.json` and the checkpoints).
#[must_use]
pub fn to_csv(history: &[EpochRecord]) -> String {
    let mut s = CSV_COLUMNS.join(",");
    s.push('\n');
    for r in history {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{}",
            r.epoch, r.beta, r.lr, r.recon, r.kl, r.elbo, r.psi, r.total, r.seconds
        );
    }
    s
}

/// Parses `history.csv` text (columns found by name, in any order; extra
/// columns ignored; blank lines skipped; a missing `lr` column, as in files
/// written before it was recorded, reads as 0). `path` only names the file
/// in errors. The per-latent fields come back empty.
///
/// # Errors
/// [`RunError::BadFile`] when a column is missing or a field is not a number.
pub fn parse_csv(path: &Path, text: &str) -> Result<Vec<EpochRecord>> {
    let bad = |reason: String| RunError::BadFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let mut idx = [None; CSV_COLUMNS.len()];
    for (slot, name) in idx.iter_mut().zip(CSV_COLUMNS) {
        *slot = header.iter().position(|h| h.trim() == name);
        if slot.is_none() && !OPTIONAL_COLUMNS.contains(&name) {
            return Err(bad(format!("no column `{name}`")));
        }
    }
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let mut v = [0.0_f64; CSV_COLUMNS.len()];
        for (slot, i) in v.iter_mut().zip(&idx) {
            let Some(i) = *i else { continue };
            *slot = fields
                .get(i)
                .and_then(|f| f.trim().parse::<f64>().ok())
                .ok_or_else(|| bad(format!("line {}: not a number in column {i}", n + 2)))?;
        }
        if v[0] < 0.0 || v[0].fract() != 0.0 {
            return Err(bad(format!(
                "line {}: epoch {} is not a whole number",
                n + 2,
                v[0]
            )));
        }
        rows.push(EpochRecord {
            epoch: v[0] as usize,
            beta: v[1] as f32,
            lr: v[2],
            recon: v[3],
            kl: v[4],
            elbo: v[5],
            psi: v[6],
            total: v[7],
            seconds: v[8],
            kl_latent: Vec::new(),
            mean_var: Vec::new(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize) -> EpochRecord {
        EpochRecord {
            epoch,
            beta: 0.05,
            lr: 0.0025,
            recon: 100.5,
            kl: 3.25,
            elbo: 100.6625,
            psi: 0.0,
            total: 100.6625,
            seconds: 1.5,
            kl_latent: vec![1.0, 2.25],
            mean_var: vec![0.5, 0.125],
        }
    }

    #[test]
    fn csv_round_trip_keeps_every_column() {
        let h = [row(1), row(2)];
        let text = to_csv(&h);
        assert_eq!(
            text.lines().next(),
            Some("epoch,beta,lr,recon,kl,elbo,psi,total,seconds")
        );
        assert_eq!(
            text.lines().nth(1),
            Some("1,0.05,0.0025,100.5,3.25,100.6625,0,100.6625,1.5")
        );
        let back = parse_csv(Path::new("h.csv"), &text).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].epoch, 2);
        assert_eq!(back[1].beta, 0.05);
        assert_eq!(back[1].elbo, 100.6625);
        assert_eq!(back[1].lr, 0.0025);
        assert!(back[1].kl_latent.is_empty());
    }

    #[test]
    fn a_file_written_before_the_lr_column_reads_with_lr_zero() {
        let text = "epoch,beta,recon,kl,elbo,psi,total,seconds\n1,0.05,100.5,3.25,100.6625,0,100.6625,1.5\n";
        let rows = parse_csv(Path::new("h.csv"), text).unwrap();
        assert_eq!(
            (rows[0].lr, rows[0].recon, rows[0].seconds),
            (0.0, 100.5, 1.5)
        );
        // An lr column that is there must hold numbers.
        let text = "epoch,beta,lr,recon,kl,elbo,psi,total,seconds\n1,0.05,x,100.5,3.25,100.6625,0,100.6625,1.5\n";
        let e = parse_csv(Path::new("h.csv"), text).unwrap_err();
        assert!(e.to_string().contains("column 2"), "{e}");
    }

    #[test]
    fn columns_are_found_by_name() {
        let text =
            "seconds,total,psi,elbo,kl,recon,lr,beta,epoch,extra\n2,7,6,5,4,3,0.01,0.5,3,x\n\n";
        let rows = parse_csv(Path::new("h.csv"), text).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].epoch, rows[0].recon, rows[0].seconds, rows[0].lr),
            (3, 3.0, 2.0, 0.01)
        );
    }

    #[test]
    fn missing_column_and_bad_number_name_the_problem() {
        let e = parse_csv(Path::new("h.csv"), "epoch,beta\n1,0\n").unwrap_err();
        assert!(e.to_string().contains("no column `recon`"), "{e}");
        let text = format!("{}\n1,0,0.1,x,0,0,0,0,0\n", CSV_COLUMNS.join(","));
        let e = parse_csv(Path::new("h.csv"), &text).unwrap_err();
        assert!(
            e.to_string().contains("line 2: not a number in column 3"),
            "{e}"
        );
    }
}
