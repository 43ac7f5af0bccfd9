//! `NETCARVE_TIMINGS=1`: prints on stderr when each phase of a scan ended, in milliseconds since the
//! process started (for performance work: docs/performance.md). Off, a mark costs one load.
use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Option<Instant>> = OnceLock::new();

/// Starts the clock when timings are asked for; call first thing in `main`.
pub fn start() {
    START.get_or_init(|| std::env::var_os("NETCARVE_TIMINGS").map(|_| Instant::now()));
}

/// Prints `phase` with the time since [`start`], when timings are on.
pub fn mark(phase: &str) {
    if let Some(Some(start)) = START.get() {
        eprintln!(
            "netcarve: timing: {:9.3} ms  {phase}",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
}
