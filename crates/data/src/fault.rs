//! Fault points: the places where a test may end the process at once, as
//! `kill -9` would, to check that a killed run resumes to the same bits and
//! leaves no stray file. Off unless the environment asks for it:
//!
//! - `PHYVAE_FAULT_AT=N`: the `N`-th point the process reaches (counting from
//!   1) prints `phyvae-fault-abort N LABEL [PATH]` on stderr and ends the
//!   process with [`std::process::abort`]: no destructor runs, no buffer is
//!   flushed, no temporary file is removed, and the operating system releases
//!   the run folder's lock, as after SIGKILL. (`abort` rather than an exit
//!   code: an exit would flush and run handlers a real kill never runs.)
//! - `PHYVAE_FAULT_TRACE=1`: every point prints `phyvae-fault-point N LABEL
//!   [PATH]` on stderr, so a test learns how many points a run has and where
//!   they are.
//!
//! The environment is read once, at the first point; unset, a point costs one
//! atomic load.

use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the point that ends the process.
pub const AT_VAR: &str = "PHYVAE_FAULT_AT";
/// The environment variable that makes every point print itself.
pub const TRACE_VAR: &str = "PHYVAE_FAULT_TRACE";

/// What the points of this process do: the counter and when it fires.
#[derive(Debug, Default)]
struct Plan {
    /// The point that ends the process (1-based), if any.
    at: Option<u64>,
    /// Whether every point prints itself.
    trace: bool,
    /// Points reached so far.
    count: AtomicU64,
}

/// What one point does, as [`Plan::hit`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hit {
    /// Nothing: the hook is off.
    Off,
    /// The `n`-th point, passed.
    Pass(u64),
    /// The `n`-th point, the one that ends the process.
    Fire(u64),
}

impl Plan {
    /// The plan of the variables' values (`at` a positive integer, `trace`
    /// `1`); anything else leaves that part off.
    fn parse(at: Option<&str>, trace: Option<&str>) -> Self {
        Self {
            at: at
                .and_then(|s| s.trim().parse::<u64>().ok())
                .filter(|&n| n > 0),
            trace: trace.is_some_and(|s| s.trim() == "1"),
            count: AtomicU64::new(0),
        }
    }

    /// The plan of this process's environment.
    fn from_env() -> Self {
        let var = |name| std::env::var(name).ok();
        Self::parse(var(AT_VAR).as_deref(), var(TRACE_VAR).as_deref())
    }

    /// Counts one point.
    fn hit(&self) -> Hit {
        if self.at.is_none() && !self.trace {
            return Hit::Off;
        }
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if self.at == Some(n) {
            Hit::Fire(n)
        } else {
            Hit::Pass(n)
        }
    }
}

/// This process's plan, read from the environment once.
fn plan() -> &'static Plan {
    static PLAN: OnceLock<Plan> = OnceLock::new();
    PLAN.get_or_init(Plan::from_env)
}

/// A fault point named `label` (see the [module docs](self)).
#[doc(hidden)]
pub fn point(label: &str) {
    reach(label, None);
}

/// A fault point named `label` about the file `path` (see the [module
/// docs](self)).
#[doc(hidden)]
pub fn point_file(label: &str, path: &Path) {
    reach(label, Some(path));
}

fn reach(label: &str, path: Option<&Path>) {
    let plan = plan();
    let (n, fire) = match plan.hit() {
        Hit::Off => return,
        Hit::Pass(n) => (n, false),
        Hit::Fire(n) => (n, true),
    };
    let path = path
        .map(|p| format!(" {}", p.display()))
        .unwrap_or_default();
    if fire {
        eprintln!("phyvae-fault-abort {n} {label}{path}");
        std::process::abort();
    }
    if plan.trace {
        eprintln!("phyvae-fault-point {n} {label}{path}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nth_point_fires_once_and_the_others_pass() {
        let p = Plan::parse(Some("3"), None);
        let hits: Vec<Hit> = (0..5).map(|_| p.hit()).collect();
        assert_eq!(
            hits,
            [
                Hit::Pass(1),
                Hit::Pass(2),
                Hit::Fire(3),
                Hit::Pass(4),
                Hit::Pass(5)
            ]
        );
        let traced = Plan::parse(None, Some("1"));
        assert_eq!((traced.hit(), traced.hit()), (Hit::Pass(1), Hit::Pass(2)));
    }

    #[test]
    fn without_a_valid_setting_no_point_is_counted() {
        for (at, trace) in [(None, None), (Some("0"), None), (Some("x"), Some("0"))] {
            let off = Plan::parse(at, trace);
            assert_eq!(off.hit(), Hit::Off, "{at:?} {trace:?}");
            assert_eq!(off.count.load(Ordering::Relaxed), 0);
        }
    }
}
