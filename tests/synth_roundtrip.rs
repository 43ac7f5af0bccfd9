//! Writer and reader meet only in the contracts: netcarve's own scan of a synthesized image must
//! report exactly the planted endpoints of truth.json, field by field, on every built-in profile.
use netcarve::profile::builtin;
use netcarve::scan::{scan_image, ScanOptions};
use netcarve::synth::{synthesize, Container, SynthOptions};
use std::path::Path;

#[test]
fn scan_reports_exactly_the_truth() {
    let mut failures = vec![];
    for (i, p) in builtin().iter().enumerate() {
        // Rotate the container so every container is exercised without 180 images.
        let container = Container::ALL[i % Container::ALL.len()];
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join("synth-roundtrip")
            .join(&p.name);
        let _ = std::fs::remove_dir_all(&dir);
        let truth = synthesize(&SynthOptions {
            profile: p.clone(),
            container,
            seed: 21,
            size: Some(16 << 20),
            pae: true,
            build: None,
            extra_endpoints: 3,
            isf_dir: None,
            out: dir.clone(),
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
