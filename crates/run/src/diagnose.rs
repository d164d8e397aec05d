//! Whether a run learned anything: the checks behind `metrics.json`'s
//! `"diagnosis"` and the warning box at the top of the report.
//!
//! A VAE can finish without error and still be useless:
//! - **posterior collapse**: the KL term switches the content latents off, so
//!   every patch is encoded to (nearly) the prior and the content maps are
//!   flat noise (Bowman et al. 2016, "Generating sentences from a continuous
//!   space", CoNLL; Lucas et al. 2019, "Don't blame the ELBO!", NeurIPS);
//! - **flattened by Psi**: the content latents were active before the physics
//!   term was switched on (or at some epoch after it) and are not at the end:
//!   the smoothness term won over the reconstruction;
//! - **divergence**: the loss became non-finite (the trainer stops with
//!   the model crate's `ModelError::Diverged`) or **ran away** while staying finite:
//!   encoder means far outside the prior's range, or a reconstruction term
//!   that ends well above its best value.
//!
//! Activity follows Burda, Grosse and Salakhutdinov (2016, "Importance
//! weighted autoencoders", ICLR, section 5.2): latent `j` is *active* when the
//! variance over patches of its encoder mean exceeds [`ACTIVE_VARIANCE`]
//! (0.01, their threshold). A map whose range is at most
//! [`FLAT_RANGE`] (1e-3, the visualisation pipeline's flat-map guard) is flat
//! whatever its variance.

use ndarray::{ArrayView3, Axis};
use serde::{Deserialize, Serialize};

use crate::history::EpochRecord;

/// Variance of a latent's encoder mean over the patches above which the
/// latent is active (Burda et al. 2016).
pub const ACTIVE_VARIANCE: f64 = 0.01;
/// Range (max - min) of a map at or below which it is flat (the paper's
/// visualisation code sets such a map to its mean).
pub const FLAT_RANGE: f64 = 1e-3;
/// Largest plausible `|encoder mean|` under a standard-normal prior; beyond
/// this the latents have run away (a N(0, 1) draw exceeds 20 with probability
/// about 1e-88).
pub const RUNAWAY_LATENT: f64 = 20.0;
/// The reconstruction term ran away when its last value exceeds its best
/// value by more than this fraction of the best value's distance to the first
/// epoch's (and the last value is above the first epoch's).
pub const RUNAWAY_RECON_FRACTION: f64 = 0.5;

/// The advice for a run that diverged or ran away.
const LOWER_LR: &str = "lower the learning rate (--lr), e.g. by a factor of 10";

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// No content latent carries information (posterior collapse).
    Collapsed,
    /// The content latents were active, and the physics term flattened them.
    FlattenedByPsi,
    /// The loss became non-finite and training stopped.
    Diverged,
    /// The loss or the latents ran away while staying finite.
    RanAway,
}

impl FindingKind {
    /// Short human title.
    #[must_use]
    pub fn title(self) -> &'static str {
        match self {
            Self::Collapsed => "the content latents learned nothing (posterior collapse)",
            Self::FlattenedByPsi => "the physics term flattened the content maps",
            Self::Diverged => "training diverged",
            Self::RanAway => "training ran away",
        }
    }
}

/// One problem found, with what to try.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Which problem.
    pub kind: FindingKind,
    /// What was measured, in words.
    pub message: String,
    /// What to try.
    pub advice: String,
}

/// Per-latent facts at the end of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentFacts {
    /// Latent name (`dx`, `z1`, ...).
    pub name: String,
    /// Whether it is a content latent (Psi and the segmentation see these).
    pub content: bool,
    /// Mean KL in nats over the last epoch's patches (`None` without history).
    pub kl: Option<f64>,
    /// Variance over the patches of the final encoder mean (NaN, written as
    /// `null`, when a value is not finite).
    #[serde(deserialize_with = "null_as_nan")]
    pub variance: f64,
    /// Range (max - min) of the final map (NaN as for `variance`).
    #[serde(deserialize_with = "null_as_nan")]
    pub range: f64,
    /// `variance > ACTIVE_VARIANCE` and `range > FLAT_RANGE`.
    pub active: bool,
}

/// The verdict on a run. The default is a run with nothing found and no
/// latent facts (the classical baseline, which has no latents to diagnose).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Diagnosis {
    /// True when nothing was found.
    pub ok: bool,
    /// The problems found (empty when `ok`).
    pub findings: Vec<Finding>,
    /// Every latent's facts, in latent order.
    pub latents: Vec<LatentFacts>,
}

impl Default for Diagnosis {
    fn default() -> Self {
        Self {
            ok: true,
            findings: Vec::new(),
            latents: Vec::new(),
        }
    }
}

/// JSON writes a NaN as `null`; this reads it back as NaN.
fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// What the diagnosis needs to know about the run.
#[derive(Debug, Clone, Copy)]
pub struct RunFacts<'a> {
    /// Latent names, special latents first.
    pub names: &'a [String],
    /// How many leading latents are special (shift, rotation, scale).
    pub n_special: usize,
    /// Per-epoch records (may be empty, e.g. for `encode`).
    pub history: &'a [EpochRecord],
    /// Whether a physics term was used, and from which epoch (0-based) on.
    pub physics_from_epoch: Option<usize>,
}

impl Diagnosis {
    /// A diagnosis of a run that stopped on a non-finite value, before any
    /// map could be drawn.
    #[must_use]
    pub fn diverged(epoch: usize, batch: usize, what: &str) -> Self {
        Self {
            ok: false,
            findings: vec![Finding {
                kind: FindingKind::Diverged,
                message: format!(
                    "the {what} became non-finite in epoch {epoch}, batch {batch}; no latent map was drawn"
                ),
                advice: LOWER_LR.into(),
            }],
            latents: Vec::new(),
        }
    }

    /// The names of the active content latents.
    #[must_use]
    pub fn active_content(&self) -> Vec<&str> {
        self.latents
            .iter()
            .filter(|l| l.content && l.active)
            .map(|l| l.name.as_str())
            .collect()
    }

    /// Whether `kind` was found.
    #[must_use]
    pub fn has(&self, kind: FindingKind) -> bool {
        self.findings.iter().any(|f| f.kind == kind)
    }
}

/// Variance, range and largest `|value|` of a map; all NaN when a value is
/// not finite.
fn stats(map: ndarray::ArrayView2<'_, f32>) -> (f64, f64, f64) {
    if map.iter().any(|v| !v.is_finite()) {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let n = map.len().max(1) as f64;
    let (mut lo, mut hi, mut s, mut q) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0.0);
    for &v in map {
        let v = f64::from(v);
        lo = lo.min(v);
        hi = hi.max(v);
        s += v;
        q += v * v;
    }
    let mean = s / n;
    let var = (q / n - mean * mean).max(0.0);
    let range = if hi >= lo { hi - lo } else { 0.0 };
    (var, range, lo.abs().max(hi.abs()))
}

/// Diagnoses a finished run from its final latent means (`gh x gw x L`) and
/// its history.
#[must_use]
pub fn diagnose(means: ArrayView3<'_, f32>, run: &RunFacts<'_>) -> Diagnosis {
    let last = run.history.last();
    let mut latents = Vec::new();
    let mut largest = 0.0f64;
    let mut non_finite = false;
    for (c, map) in means.axis_iter(Axis(2)).enumerate() {
        let (variance, range, absmax) = stats(map);
        non_finite |= !variance.is_finite() || !range.is_finite();
        if absmax.is_finite() {
            largest = largest.max(absmax);
        }
        let name = run.names.get(c).cloned().unwrap_or_else(|| format!("#{c}"));
        latents.push(LatentFacts {
            name,
            content: c >= run.n_special,
            kl: last.and_then(|r| r.kl_latent.get(c).copied()),
            variance,
            range,
            active: variance > ACTIVE_VARIANCE && range > FLAT_RANGE,
        });
    }
    let mut findings = Vec::new();
    if non_finite {
        findings.push(Finding {
            kind: FindingKind::Diverged,
            message: "the final latent maps hold non-finite values".into(),
            advice: LOWER_LR.into(),
        });
    } else if largest > RUNAWAY_LATENT {
        findings.push(Finding {
            kind: FindingKind::RanAway,
            message: format!(
                "encoder means reach {largest:.3e}, far outside a standard-normal prior"
            ),
            advice: LOWER_LR.into(),
        });
    }
    if let (Some(first), Some(last)) = (run.history.first(), last) {
        let best = run
            .history
            .iter()
            .map(|r| r.recon)
            .fold(f64::INFINITY, f64::min);
        let gained = first.recon - best;
        if last.recon > first.recon && last.recon - best > RUNAWAY_RECON_FRACTION * gained.max(0.0)
        {
            findings.push(Finding {
                kind: FindingKind::RanAway,
                message: format!(
                    "the reconstruction term ended at {:.4} nats per patch, above its first epoch ({:.4}) and its best ({best:.4})",
                    last.recon, first.recon
                ),
                advice: LOWER_LR.into(),
            });
        }
    }
    let content: Vec<&LatentFacts> = latents.iter().filter(|l| l.content).collect();
    let any_active = content.iter().any(|l| l.active);
    // A run that ran away or diverged has flat maps for that reason alone.
    let broken = !findings.is_empty();
    if !content.is_empty() && !any_active && !broken {
        let kl: Vec<String> = content
            .iter()
            .map(|l| match l.kl {
                Some(k) => format!("{} KL {k:.3} nats, variance {:.2e}", l.name, l.variance),
                None => format!("{} variance {:.2e}", l.name, l.variance),
            })
            .collect();
        let was_active = run.physics_from_epoch.and_then(|from| {
            let n_special = run.n_special;
            run.history
                .iter()
                .enumerate()
                .filter(|(e, _)| e + 1 >= from)
                .find(|(_, r)| {
                    r.mean_var
                        .iter()
                        .skip(n_special)
                        .any(|&v| v > ACTIVE_VARIANCE)
                })
                .map(|(e, _)| e + 1)
        });
        match was_active {
            Some(epoch) => findings.push(Finding {
                kind: FindingKind::FlattenedByPsi,
                message: format!(
                    "the content latents were active at epoch {epoch} and are flat at the end ({})",
                    kl.join("; ")
                ),
                advice: "weaken the physics term (--add-lambda smaller, or --weight), switch it on later (--physics-warmup), or train without it (--physics none)".into(),
            }),
            None => findings.push(Finding {
                kind: FindingKind::Collapsed,
                message: format!(
                    "no content latent varies across the image ({})",
                    kl.join("; ")
                ),
                advice: "lower the learning rate (--lr 1e-3), weaken the KL term (--beta 0.02), or try a window of about two lattice periods (--window)".into(),
            }),
        }
    }
    findings.dedup_by(|a, b| a.kind == b.kind);
    Diagnosis {
        ok: findings.is_empty(),
        findings,
        latents,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    fn record(epoch: usize, recon: f64, mean_var: Vec<f64>) -> EpochRecord {
        EpochRecord {
            epoch,
            beta: 1.0,
            recon,
            kl: 0.0,
            elbo: recon,
            psi: 0.0,
            total: recon,
            seconds: 0.0,
            kl_latent: vec![0.0; mean_var.len()],
            mean_var,
        }
    }

    /// Diagnoses `m` as a shift model (`dx, dy, z1, z2`).
    fn check(
        m: ndarray::ArrayView3<'_, f32>,
        history: &[EpochRecord],
        physics: Option<usize>,
    ) -> Diagnosis {
        let names = ["dx", "dy", "z1", "z2"].map(String::from);
        diagnose(
            m,
            &RunFacts {
                names: &names,
                n_special: 2,
                history,
                physics_from_epoch: physics,
            },
        )
    }

    /// A 4 x 4 map stack: latent `c` is `amp[c]` times a left/right step.
    fn maps(amp: [f32; 4]) -> Array3<f32> {
        Array3::from_shape_fn((4, 4, 4), |(_, j, c)| if j < 2 { 0.0 } else { amp[c] })
    }

    #[test]
    fn an_active_content_latent_passes() {
        // Step of height 1: variance 0.25 > 0.01.
        let m = maps([1.0, 1.0, 1.0, 0.0]);
        let h = vec![record(1, 10.0, vec![0.3; 4]), record(2, 9.0, vec![0.3; 4])];
        let d = check(m.view(), &h, None);
        assert!(d.ok, "{d:?}");
        assert_eq!(d.active_content(), vec!["z1"]);
    }

    #[test]
    fn flat_content_latents_are_a_collapse() {
        // Step of height 0.1: variance 0.0025 < 0.01; shift latents active.
        let m = maps([1.0, 1.0, 0.1, 0.0]);
        let h = vec![record(1, 10.0, vec![0.0; 4]), record(2, 9.0, vec![0.0; 4])];
        let d = check(m.view(), &h, None);
        assert!(!d.ok);
        assert!(d.has(FindingKind::Collapsed), "{d:?}");
        assert!(!d.has(FindingKind::FlattenedByPsi));
    }

    #[test]
    fn active_before_psi_and_flat_after_is_flattened_by_psi() {
        let m = maps([1.0, 1.0, 0.0, 0.0]);
        let h = vec![
            record(1, 10.0, vec![0.2, 0.2, 0.5, 0.5]),
            record(2, 9.0, vec![0.2, 0.2, 0.5, 0.5]),
            record(3, 9.5, vec![0.2, 0.2, 0.0, 0.0]),
        ];
        let d = check(m.view(), &h, Some(2));
        assert!(d.has(FindingKind::FlattenedByPsi), "{d:?}");
        assert!(!d.has(FindingKind::Collapsed));
    }

    #[test]
    fn huge_latents_ran_away() {
        let m = maps([1.0, 1.0, 1e6, 0.0]);
        let d = check(m.view(), &[], None);
        assert!(d.has(FindingKind::RanAway), "{d:?}");
    }

    #[test]
    fn a_rising_reconstruction_ran_away() {
        // First 10, best 5, last 12: above the first, and 7 > 0.5 * 5 above the best.
        let m = maps([1.0, 1.0, 1.0, 1.0]);
        let h = vec![
            record(1, 10.0, vec![0.3; 4]),
            record(2, 5.0, vec![0.3; 4]),
            record(3, 12.0, vec![0.3; 4]),
        ];
        let d = check(m.view(), &h, None);
        assert!(d.has(FindingKind::RanAway), "{d:?}");
        // A reconstruction that only wobbles near its best does not.
        let h = vec![
            record(1, 10.0, vec![0.3; 4]),
            record(2, 5.0, vec![0.3; 4]),
            record(3, 5.5, vec![0.3; 4]),
        ];
        let d = check(m.view(), &h, None);
        assert!(d.ok, "{d:?}");
    }

    #[test]
    fn non_finite_maps_are_a_divergence() {
        let mut m = maps([1.0, 1.0, 1.0, 1.0]);
        m[[0, 0, 2]] = f32::NAN;
        let d = check(m.view(), &[], None);
        assert!(d.has(FindingKind::Diverged), "{d:?}");
    }
}
