//! Writer and reader meet only in the contracts: netcarve's own scan of a synthesized image must
//! report exactly the planted endpoints of truth.json, field by field, on every built-in profile.
mod support;

use netcarve::profile::builtin;
use netcarve::scan::{scan_image, ScanOptions};
use netcarve::synth::{synthesize, Container, SynthOptions};

#[test]
fn scan_reports_exactly_the_truth() {
    let mut failures = vec![];
    for (i, p) in builtin().iter().enumerate() {
        // Rotate the container so every container is exercised without 180 images.
        let container = Container::ALL[i % Container::ALL.len()];
        let dir = support::scratch(&format!("synth_roundtrip/{}", p.name));
        let truth = synthesize(&SynthOptions {
            extra_endpoints: 3,
            ..support::synth_options(p, container, 21, &dir)
        })
        .unwrap();
        let scan = scan_image(&dir.join(container.file_name()), &ScanOptions::default());
        match scan {
            Err(e) => failures.push(format!("{} {}: scan failed: {e}", p.name, container.kind())),
            Ok(s) if s.endpoints != truth.endpoints => {
                let missing = truth
                    .endpoints
                    .iter()
                    .filter(|e| !s.endpoints.contains(e))
                    .count();
                let extra = s
                    .endpoints
                    .iter()
                    .filter(|e| !truth.endpoints.contains(e))
                    .count();
                failures.push(format!(
                    "{} {}: {missing} planted endpoints not reported as planted, {extra} reported rows not in truth",
                    p.name,
                    container.kind()
                ));
            }
            Ok(_) => {}
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
