//! Evidence integrity and determinism, which a forensic tool owes its users: the commands never
//! change the image or write beside it, `--hash` reports the image's SHA-256, output does not
//! depend on the thread count, and scanning keeps its heap independent of the image size (the
//! image is mapped, not read).
mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use support::{assert_success, netcarve, scratch, sha256_file, watch};

/// `netcarve synth` into `dir`; returns the image path.
fn synth(dir: &Path, profile: &str, container: &str, size: Option<&str>) -> PathBuf {
    let mut args = vec![
        "--profile",
        profile,
        "--container",
        container,
        "--seed",
        "11",
    ];
    if let Some(size) = size {
        args.extend(["--size", size]);
    }
    support::synth(dir, &args)
}

fn listing(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect()
}

/// Sets the modification time to a fixed past moment, so that any write would visibly move it.
fn age(path: &Path) -> SystemTime {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    file.set_modified(past).unwrap();
    drop(file);
    std::fs::metadata(path).unwrap().modified().unwrap()
}

#[test]
fn scan_info_and_compare_leave_the_evidence_untouched() {
    for container in ["raw", "crashdump", "elf", "lime", "vmware"] {
        let dir = scratch(&format!("integrity_{container}"));
        let image = synth(&dir, "win7-x64", container, None);
        let capture = dir.join("capture-netcarve.json");
        // Captures are evidence too: check them the same way.
        let evidence = [image.clone(), capture.clone()];
        let mtimes: Vec<SystemTime> = evidence.iter().map(|p| age(p)).collect();
        let hashes: Vec<String> = evidence.iter().map(|p| sha256_file(p)).collect();
        let before = listing(&dir);
        let img = image.to_str().unwrap();
        let runs: [Vec<&str>; 5] = [
            vec!["info", img, "--format", "json", "--hash"],
            vec!["info", img],
            vec!["scan", img, "--format", "json", "--hash", "--quiet"],
            vec!["scan", img, "--format", "csv", "--quiet"],
            vec![
                "compare",
                img,
                "--live",
                capture.to_str().unwrap(),
                "--format",
                "json",
                "--quiet",
            ],
        ];
        for args in &runs {
            let o = netcarve(args);
            assert!(
                matches!(o.status.code(), Some(0 | 1)),
                "{container} {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            for (i, path) in evidence.iter().enumerate() {
                assert_eq!(
                    sha256_file(path),
                    hashes[i],
                    "{args:?} changed {}",
                    path.display()
                );
                assert_eq!(
                    std::fs::metadata(path).unwrap().modified().unwrap(),
                    mtimes[i],
                    "{args:?} moved the mtime of {}",
                    path.display()
                );
            }
            assert_eq!(
                listing(&dir),
                before,
                "{args:?} created a file beside the image"
            );
        }
    }
}

fn find_key<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    match v {
        Value::Object(map) => map
            .get(key)
            .or_else(|| map.values().find_map(|c| find_key(c, key))),
        Value::Array(items) => items.iter().find_map(|c| find_key(c, key)),
        _ => None,
    }
}

#[test]
fn hash_reports_the_sha256_of_the_image() {
    let dir = scratch("integrity_hash");
    for container in ["raw", "crashdump"] {
        let image = synth(&dir.join(container), "win10-19041-x64", container, None);
        let expected = sha256_file(&image);
        let img = image.to_str().unwrap();
        let scan = netcarve(&["scan", img, "--format", "json", "--hash", "--quiet"]);
        assert!(scan.status.success());
        let scan: Value = serde_json::from_slice(&scan.stdout).unwrap();
        assert_eq!(scan["image"]["sha256"], Value::String(expected.clone()));
        let info = netcarve(&["info", img, "--format", "json", "--hash"]);
        assert!(info.status.success());
        let info: Value = serde_json::from_slice(&info.stdout).unwrap();
        assert_eq!(
            find_key(&info, "sha256"),
            Some(&Value::String(expected.clone())),
            "info --hash: {info}"
        );
        // Without --hash nothing is claimed.
        let plain = netcarve(&["scan", img, "--format", "json", "--quiet"]);
        let plain: Value = serde_json::from_slice(&plain.stdout).unwrap();
        assert!(find_key(&plain, "sha256").is_none());
    }
}

#[test]
fn output_is_identical_with_one_thread_and_the_default() {
    let dir = scratch("integrity_threads");
    // More than one 8 MiB scan chunk, and many endpoints, so that threads really split the work.
    let img = support::synth(
        &dir,
        &[
            "--profile",
            "win10-19041-x64",
            "--size",
            "40M",
            "--endpoints",
            "400",
            "--seed",
            "5",
        ],
    );
    let img = img.to_str().unwrap();
    for format in ["table", "json", "jsonl", "csv", "bodyfile", "timesketch"] {
        let mut outputs = vec![];
        for threads in [Some("1"), None, Some("3")] {
            let mut args = vec!["scan", img, "--format", format, "--quiet", "--hash"];
            if format != "json" {
                args.pop();
            }
            if let Some(n) = threads {
                args.extend(["--threads", n]);
            }
            let o = netcarve(&args);
            assert_success(&o, format);
            assert!(!o.stdout.is_empty(), "{format}: empty output");
            outputs.push(o.stdout);
        }
        assert_eq!(
            outputs[0], outputs[1],
            "{format}: --threads 1 differs from the default"
        );
        assert_eq!(
            outputs[0], outputs[2],
            "{format}: --threads 1 differs from --threads 3"
        );
    }
    // Same for compare, whose memory side is a scan.
    let capture = dir.join("capture-netcarve.json");
    let mut outputs = vec![];
    for threads in [Some("1"), None] {
        let mut args = vec![
            "compare",
            img,
            "--live",
            capture.to_str().unwrap(),
            "--format",
            "json",
            "--quiet",
        ];
        if let Some(n) = threads {
            args.extend(["--threads", n]);
        }
        outputs.push(netcarve(&args).stdout);
    }
    assert_eq!(
        outputs[0], outputs[1],
        "compare: --threads 1 differs from the default"
    );
}

#[test]
fn scanning_a_256_mib_image_keeps_the_heap_small() {
    if !Path::new("/proc/self/status").exists() {
        eprintln!("no /proc: heap bound not measured on this platform");
        return;
    }
    let dir = scratch("integrity_rss");
    let image = synth(&dir, "win10-19041-x64", "raw", Some("256M"));
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 256 << 20);
    const LIMIT_KIB: u64 = 64 * 1024;
    for (command, extra) in [
        ("scan", vec!["--format", "json", "--hash", "--quiet"]),
        ("info", vec!["--format", "json", "--hash"]),
    ] {
        let mut args = vec![command, image.to_str().unwrap()];
        args.extend(&extra);
        let w = watch(&args);
        let (peak, samples) = (w.peak_anon_kib, w.samples);
        assert_eq!(w.code, 0, "{command} failed: {}", w.stderr);
        assert!(
            samples > 0 && peak > 0,
            "{command}: no RssAnon sample taken"
        );
        assert!(
            peak < LIMIT_KIB,
            "{command} of a 256 MiB image: RssAnon peaked at {peak} KiB (limit {LIMIT_KIB} KiB): \
             the image is being read into memory"
        );
        eprintln!("{command}: RssAnon peak {peak} KiB over {samples} samples");
    }
}
