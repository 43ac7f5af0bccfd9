//! End to end on synthesized images: `netcarve synth` writes an image, truth.json and the captures in
//! every format; `netcarve compare` must report every planted discrepancy with its class (and cause)
//! and flag nothing else. The one exception is documented and checked exactly: an allocated object
//! opened after the capture but before acquisition can only be told apart from a hidden one when
//! both its create time (absent from Vista-8.1 TcpE) and the capture's collection time (only the
//! netcarve format records it) are known; otherwise compare reports it as `hidden_from_api`.
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_netcarve")
}

/// Synthesizes `profile` into a directory of its own per test (`purpose`): tests run in parallel.
fn synth(profile: &str, purpose: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("netcarve-compare-synth-{}", std::process::id()))
        .join(format!("{profile}-{purpose}"));
    let out = Command::new(bin())
        .args(["synth", "--profile", profile, "--seed", "7", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "synth {profile}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// (class, cause, proto, local port) of a discrepancy or report row.
type Key = (String, String, String, u64);

fn key(class: &Value, cause: &Value, memory: &Value, capture: &Value) -> Key {
    let side = if memory.is_null() { capture } else { memory };
    (
        class.as_str().unwrap().to_string(),
        cause.as_str().unwrap_or("").to_string(),
        side["proto"].as_str().unwrap().to_string(),
        side["local_port"].as_u64().unwrap(),
    )
}

fn compare(memory: &Path, capture: &Path) -> (i32, Value) {
    let out = Command::new(bin())
        .arg("compare")
        .arg(memory)
        .arg("--live")
        .arg(capture)
        .args(["--format", "json", "--quiet"])
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), report)
}

fn flagged(report: &Value) -> BTreeMap<Key, usize> {
    let mut map = BTreeMap::new();
    for row in report["rows"].as_array().unwrap() {
        let class = row["class"].as_str().unwrap();
        if matches!(class, "match" | "freed_only" | "created_after_capture") {
            continue;
        }
        *map.entry(key(
            &row["class"],
            &row["cause"],
            &row["memory"],
            &row["capture"],
        ))
        .or_insert(0) += 1;
    }
    map
}

fn check_profile(profile: &str) {
    let dir = synth(profile, "truth");
    let truth = read_json(&dir.join("truth.json"));
    let collected = read_json(&dir.join("capture-netcarve.json"))["collected_raw"]
        .as_u64()
        .unwrap();
    let mut planted: BTreeMap<Key, usize> = BTreeMap::new();
    for d in truth["discrepancies"].as_array().unwrap() {
        let cause = d.get("cause").cloned().unwrap_or(Value::Null);
        *planted
            .entry(key(&d["class"], &cause, &d["memory"], &d["capture"]))
            .or_insert(0) += 1;
    }
    assert!(
        planted.keys().any(|k| k.0 == "hidden_from_api"),
        "{profile}: nothing hidden planted"
    );
    // Allocated endpoints the API did not list and truth does not call hidden: opened after the
    // capture (truth has them as informational `created_after_capture`).
    let netcarve_capture = read_json(&dir.join("capture-netcarve.json"));
    let listed: Vec<(String, u64)> = ["tcp", "udp"]
        .iter()
        .flat_map(|proto| {
            netcarve_capture[*proto]
                .as_array()
                .unwrap()
                .iter()
                .map(move |r| (proto.to_string(), r["local_port"].as_u64().unwrap()))
        })
        .collect();
    let after_capture: Vec<&Value> = truth["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["pool_status"] == "allocated")
        .filter(|e| {
            let id = (
                e["proto"].as_str().unwrap().to_string(),
                e["local_port"].as_u64().unwrap(),
            );
            !listed.contains(&id)
                && !planted.contains_key(&key(
                    &"hidden_from_api".into(),
                    &Value::Null,
                    e,
                    &Value::Null,
                ))
        })
        .collect();
    assert!(
        !after_capture.is_empty(),
        "{profile}: no endpoint opened after the capture"
    );

    for (format, file) in truth["captures"].as_object().unwrap() {
        let capture = dir.join(file.as_str().unwrap());
        let (code, report) = compare(&dir.join("truth.json"), &capture);
        assert_eq!(code, 1, "{profile} {format}");
        let timed = report["captures"][0]["precision"] != "none";
        let mut want: BTreeMap<Key, usize> = planted
            .iter()
            .filter(|(k, _)| timed || !matches!(k.0.as_str(), "time_mismatch" | "api_zero_time"))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let got = flagged(&report);
        // The documented ambiguity: which extra hidden_from_api rows are allowed, exactly.
        for row in report["rows"].as_array().unwrap() {
            if row["class"] != "hidden_from_api"
                || want.contains_key(&key(
                    &row["class"],
                    &row["cause"],
                    &row["memory"],
                    &row["capture"],
                ))
            {
                continue;
            }
            let m = &row["memory"];
            let no_field = m["flags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "no_time_field");
            let after = m["create_time_raw"].as_u64().is_some_and(|t| t > collected);
            let known_after = after_capture
                .iter()
                .any(|e| e["physical_offset"] == m["physical_offset"]);
            assert!(
                known_after && (no_field || (after && format != "netcarve")),
                "{profile} {format}: unexpected hidden_from_api {m}"
            );
            *want
                .entry(key(&row["class"], &row["cause"], m, &row["capture"]))
                .or_insert(0) += 1;
        }
        assert_eq!(got, want, "{profile} {format}");
        for row in report["rows"].as_array().unwrap() {
            if row["class"] == "created_after_capture" {
                assert_eq!(
                    format, "netcarve",
                    "{profile}: only netcarve captures carry a collection time"
                );
            }
        }
        if timed && planted.keys().any(|k| k.0 == "api_zero_time") {
            assert_eq!(
                report["research"]["verdict"], "supported",
                "{profile} {format}"
            );
        }
    }
    // Images are 16 MiB each: keep the temporary directory small once a profile passed.
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn windows7_x64_every_capture_format() {
    check_profile("win7-x64");
}

#[test]
fn windows7_x86_pae() {
    check_profile("win7-x86");
}

#[test]
fn windows81_and_10_and_11() {
    for profile in ["win81-x64", "win10-19041-x64", "win11-22000-x64"] {
        check_profile(profile);
    }
}

/// The image itself, scanned by compare, gives the same report as its truth.json.
#[test]
fn scanning_the_image_agrees_with_truth() {
    for profile in ["win7-x64", "win10-19041-x64"] {
        let dir = synth(profile, "image");
        let capture = dir.join("capture-netcarve.json");
        let (code_truth, by_truth) = compare(&dir.join("truth.json"), &capture);
        let (code_image, by_image) = compare(&dir.join("memory.raw"), &capture);
        assert_eq!(code_image, code_truth, "{profile}");
        assert_eq!(by_image["memory_source"], "image");
        assert_eq!(
            by_image["summary"]["by_class"], by_truth["summary"]["by_class"],
            "{profile}"
        );
        assert_eq!(flagged(&by_image), flagged(&by_truth), "{profile}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
