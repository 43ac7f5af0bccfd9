//! EnCase E01 images written by an independent writer (libewf's `ewfacquire`, Debian's ewf-tools)
//! from synthesized raw images: netcarve must read them to exactly the raw image's records
//! (physical offsets included), one segment or many, compressed or stored, check the hashes the
//! writer stored, and degrade to partial results with a warning when a segment or a chunk is bad.
mod support;

use netcarve::bytes::ReadBytes;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

/// `ewfacquire`, or `None` with a note (a failure under CI, which installs it).
fn ewfacquire() -> Option<PathBuf> {
    let found = ["/usr/bin/ewfacquire", "/usr/local/bin/ewfacquire"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "ewfacquire is missing: .ci/run installs ewf-tools"
        );
        eprintln!("skipped: ewfacquire not installed (apt-get install ewf-tools)");
    }
    found
}

/// Writes `raw` as an E01 set `dir/name.E01…` with `ewfacquire`'s options `extra`.
fn acquire(tool: &Path, raw: &Path, dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let target = dir.join(name);
    let out = Command::new(tool)
        .args(["-u", "-t"])
        .arg(&target)
        .args(["-d", "sha1"])
        .args(extra)
        .arg(raw)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ewfacquire: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each format names its first segment its own way: `.E01`, `.e01` (original EWF), `.s01`.
    ["E01", "e01", "s01"]
        .iter()
        .map(|ext| target.with_extension(ext))
        .find(|p| p.exists())
        .expect("ewfacquire wrote no first segment")
}

fn segments(first: &Path) -> Vec<PathBuf> {
    let dir = first.parent().unwrap();
    let stem = first.file_stem().unwrap().to_owned();
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_stem() == Some(&stem)
                && p.extension().is_some_and(|e| {
                    let e = e.to_string_lossy();
                    e.len() == 3 && e != "raw"
                })
        })
        .collect();
    found.sort();
    found
}

#[test]
fn e01_sets_scan_to_the_raw_images_records() {
    let Some(tool) = ewfacquire() else { return };
    for (profile, args) in [
        ("win7-x64", &[][..]),
        ("win10-19041-x64", &[][..]),
        ("win7-x86", &[][..]),
        ("win81-x86", &["--no-pae"][..]),
    ] {
        let dir = scratch(&format!("ewf-{profile}"));
        let mut synth_args = vec!["--profile", profile, "--container", "raw", "--size", "16M"];
        synth_args.extend(args);
        let raw = synth(&dir, &synth_args);
        let (code, want, stderr) = scan_json(&raw, &[]);
        assert_eq!(code, 0, "{profile} raw: {stderr}");
        for (variant, extra) in [
            ("one", &["-f", "encase6", "-c", "deflate:fast"][..]),
            (
                "many",
                &["-f", "encase6", "-c", "deflate:best", "-S", "2MiB"][..],
            ),
            ("stored", &["-f", "encase6", "-c", "none", "-S", "4MiB"][..]),
        ] {
            let e01 = acquire(&tool, &raw, &dir, variant, extra);
            if variant != "one" {
                assert!(segments(&e01).len() > 1, "{variant}: one segment only");
            }
            let (code, got, stderr) = scan_json(&e01, &["--hash"]);
            assert_eq!(code, 0, "{profile} {variant}: {stderr}");
            assert_eq!(got["image"]["container"], "ewf");
            assert_eq!(
                got["endpoints"], want["endpoints"],
                "{profile} {variant}: records differ from the raw image's"
            );
            assert_eq!(got["image"]["kernel_pdb"], want["image"]["kernel_pdb"]);
            assert_eq!(
                got["image"]["sha256"],
                sha256_file(&raw),
                "{profile} {variant}"
            );
            let stored = &got["image"]["stored_hashes"];
            assert_eq!(stored["check"], "verified", "{profile} {variant}: {stored}");
            assert_eq!(stored["md5"].as_str().map(str::len), Some(32));
            assert_eq!(stored["sha1"].as_str().map(str::len), Some(40));
            assert_eq!(got["image"]["warnings"], serde_json::json!([]));
        }
    }
}

/// Every format `ewfacquire` writes: EnCase 2 to 7, FTK, linen, the original EWF and SMART
/// (whose chunks sit inside their table sections, `.e01`/`.s01` named), EWFX.
#[test]
fn every_writer_format_reads_the_same_media() {
    let Some(tool) = ewfacquire() else { return };
    let dir = scratch("ewf-formats");
    let raw = synth(&dir, &["--profile", "win10-19041-x64", "--size", "16M"]);
    let (_, want, _) = scan_json(&raw, &[]);
    for format in [
        "ewf", "smart", "ftk", "encase2", "encase4", "encase5", "encase7", "linen5", "linen7",
        "ewfx",
    ] {
        for (variant, extra) in [("one", &[][..]), ("many", &["-S", "2MiB"][..])] {
            let mut args = vec!["-f", format, "-c", "deflate:fast"];
            args.extend(extra);
            let first = acquire(&tool, &raw, &dir, &format!("{format}-{variant}"), &args);
            let (code, got, stderr) = scan_json(&first, &["--hash"]);
            assert_eq!(code, 0, "{format} {variant}: {stderr}");
            assert_eq!(
                got["endpoints"], want["endpoints"],
                "{format} {variant}: records differ"
            );
            assert_eq!(
                got["image"]["sha256"],
                sha256_file(&raw),
                "{format} {variant}"
            );
            assert_eq!(got["image"]["stored_hashes"]["check"], "verified");
            assert_eq!(got["image"]["warnings"], serde_json::json!([]));
        }
    }
}

/// An E01 handed over in memory (what the fuzzer does) reads as its media, one segment only.
#[test]
fn a_set_in_memory_reads_as_its_media() {
    let Some(tool) = ewfacquire() else { return };
    let dir = scratch("ewf-memory");
    let raw = synth(&dir, &["--profile", "win7-x64", "--size", "16M"]);
    let first = acquire(
        &tool,
        &raw,
        &dir,
        "mem",
        &["-f", "encase6", "-c", "deflate:fast"],
    );
    let bytes = std::fs::read(&first).unwrap();
    let space = netcarve::container::PhysicalSpace::from_bytes(bytes, &first).unwrap();
    assert_eq!(space.kind, "ewf");
    let media = std::fs::read(&raw).unwrap();
    let mut got = vec![0u8; media.len()];
    assert!(space.read_into(0, &mut got));
    assert!(got == media, "decoded media differs from the raw image");
}

#[test]
fn damaged_sets_give_partial_results_and_say_why() {
    let Some(tool) = ewfacquire() else { return };
    let dir = scratch("ewf-damaged");
    let raw = synth(&dir, &["--profile", "win10-19041-x64", "--size", "16M"]);
    let (_, want, _) = scan_json(&raw, &[]);
    let e01 = acquire(
        &tool,
        &raw,
        &dir,
        "set",
        &["-f", "encase6", "-c", "deflate:fast", "-S", "2MiB"],
    );
    let parts = segments(&e01);
    assert!(parts.len() >= 3);

    // The last segment missing: the media it held is absent, the rest is read. The objects are
    // all still found; those whose pointer chains lead into the lost media cannot be decoded and
    // are reported with their reason under --include-corrupt.
    let last = parts.last().unwrap().clone();
    let kept = dir.join("kept-last");
    std::fs::rename(&last, &kept).unwrap();
    let (code, got, stderr) = scan_json(&e01, &["--hash", "--include-corrupt"]);
    assert_eq!(code, 0, "{stderr}");
    let warnings = got["image"]["warnings"].to_string();
    assert!(warnings.contains("missing"), "{warnings}");
    assert_eq!(got["image"]["stored_hashes"], serde_json::Value::Null);
    let offsets = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|r| r["physical_offset"].as_str().unwrap().to_string())
            .collect()
    };
    let mut seen = offsets(&got["endpoints"]);
    seen.extend(offsets(&got["corrupt"]));
    for offset in offsets(&want["endpoints"]) {
        assert!(seen.contains(&offset), "{offset} not found: {warnings}");
    }
    for record in got["endpoints"].as_array().unwrap() {
        assert!(
            want["endpoints"].as_array().unwrap().contains(record),
            "a record the raw image does not have: {record}"
        );
    }
    std::fs::rename(&kept, &last).unwrap();

    // A chunk's compressed bytes overwritten: that chunk is skipped with a warning, the hash
    // check says the media no longer matches.
    let first = std::fs::read(&e01).unwrap();
    let sectors = first
        .windows(8)
        .position(|w| w == b"sectors\0")
        .expect("a sectors section");
    let mut bad = first.clone();
    for b in &mut bad[sectors + 76 + 4..sectors + 76 + 64] {
        *b = 0xA5;
    }
    std::fs::write(&e01, &bad).unwrap();
    let (code, got, stderr) = scan_json(&e01, &["--hash"]);
    assert_eq!(code, 0, "{stderr}");
    let warnings = got["image"]["warnings"].to_string();
    assert!(warnings.contains("chunk 0"), "{warnings}");
    assert_ne!(got["image"]["stored_hashes"]["check"], "verified");
    std::fs::write(&e01, &first).unwrap();

    // The first segment's header destroyed: nothing can be read, one line, exit 2.
    let mut broken = first.clone();
    broken[9] = 7;
    std::fs::write(&e01, &broken).unwrap();
    let (code, _, stderr) = run(&["info", e01.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("EWF"), "{stderr}");
}

#[test]
fn info_reports_what_the_set_stores() {
    let Some(tool) = ewfacquire() else { return };
    let dir = scratch("ewf-info");
    let raw = synth(&dir, &["--profile", "win7-x64", "--size", "16M"]);
    let e01 = acquire(
        &tool,
        &raw,
        &dir,
        "mem",
        &["-f", "encase7", "-c", "deflate:fast"],
    );
    let (code, stdout, stderr) = run(&["info", e01.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Container        ewf"), "{stdout}");
    assert!(stdout.contains("Stored MD5"), "{stdout}");
    assert!(stdout.contains("not checked"), "{stdout}");
    let (code, stdout, _) = run(&["info", e01.to_str().unwrap(), "--hash"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("(verified)"), "{stdout}");
    assert!(stdout.contains(&sha256_file(&raw)), "{stdout}");
}

/// EWF2 (EnCase 7's Ex01) is another format: refused in one line, never read as raw memory.
#[test]
fn ewf2_is_refused_by_name() {
    let dir = scratch("ewf2");
    let path = dir.join("mem.Ex01");
    let mut bytes = b"EVF2\r\n\x81\x00".to_vec();
    bytes.resize(1 << 16, 0);
    std::fs::write(&path, &bytes).unwrap();
    let (code, _, stderr) = run(&["info", path.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("Ex01") && stderr.contains("mem.Ex01"),
        "{stderr}"
    );
}
