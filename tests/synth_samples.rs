//! The committed samples under `testdata/` are exactly what `synth` writes now. Regenerate them
//! with `NETCARVE_BLESS=1 cargo test --test synth_samples` (or `tools/regen-samples.sh`).
mod support;

use netcarve::synth::{synthesize, Container, SynthOptions};
use std::path::{Path, PathBuf};

/// (folder, profile): bitmap dumps, seed 1, default size, with the ISF for Volatility.
const SAMPLES: [(&str, &str); 2] = [
    ("win7-x64", "win7-x64"),
    ("win10-19041-x64", "win10-19041-x64"),
];

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn committed_samples_match_synth() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bless = std::env::var_os("NETCARVE_BLESS").is_some();
    for (folder, profile) in SAMPLES {
        let Some(p) = netcarve::profile::by_name(profile) else {
            panic!("built-in profile {profile} missing");
        };
        let committed = root.join("testdata").join(folder);
        let fresh = support::scratch(&format!("synth_samples/{folder}"));
        let out = if bless {
            let _ = std::fs::remove_dir_all(&committed);
            committed.clone()
        } else {
            fresh.clone()
        };
        synthesize(&SynthOptions {
            size: None,
            isf_dir: Some(out.join("isf")),
            ..support::synth_options(p, Container::Bitmap, 1, &out)
        })
        .unwrap();
        let image = std::fs::metadata(committed.join("memory.dmp"))
            .unwrap()
            .len();
        assert!(
            image < 2 << 20,
            "{folder}: sample image is {image} bytes, over 2 MiB"
        );
        if bless {
            continue;
        }
        let want = files(&fresh);
        let have = files(&committed);
        let rel = |v: &[PathBuf], base: &Path| -> Vec<PathBuf> {
            v.iter()
                .map(|p| p.strip_prefix(base).unwrap().to_path_buf())
                .collect()
        };
        assert_eq!(
            rel(&have, &committed),
            rel(&want, &fresh),
            "{folder}: file list differs"
        );
        for f in &want {
            let r = f.strip_prefix(&fresh).unwrap();
            assert!(
                std::fs::read(f).unwrap() == std::fs::read(committed.join(r)).unwrap(),
                "{folder}/{}: committed bytes differ from synth's output; regenerate with NETCARVE_BLESS=1 cargo test --test synth_samples",
                r.display()
            );
        }
    }
}
