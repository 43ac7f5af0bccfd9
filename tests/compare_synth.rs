//! End to end on synthesized images: `netcarve synth` writes an image, truth.json and the captures in
//! every format; `netcarve compare` must report exactly truth.json's planted discrepancies (class,
//! cause and endpoint identity) and flag nothing else. Formats that do not record their collection
//! time get it with `--capture-time` (from the image's netcarve capture), as a responder would give
//! it; formats without create times cannot show time differences, so `time_mismatch` and
//! `api_zero_time` are not expected from them. Without `--capture-time` such a format reports the
//! endpoint opened after the capture as `hidden_from_api`, saying the capture time was assumed.
mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::read_json;

/// Synthesizes `profile` into a directory of its own per test (`purpose`): tests run in parallel.
fn synth(profile: &str, purpose: &str) -> PathBuf {
    let dir = support::scratch(&format!("compare_synth/{profile}-{purpose}"));
    support::synth(&dir, &["--profile", profile, "--seed", "7"]);
    dir
}

/// (class, cause, endpoint identity) of a discrepancy or report row. The identity is the memory
/// object (tag and physical offset) when there is one, else the capture row's connection.
type Key = (String, String, String);

fn key(class: &Value, cause: &Value, memory: &Value, capture: &Value) -> Key {
    let identity = if memory.is_null() {
        format!(
            "capture {} {} {}:{} -> {}:{}",
            capture["proto"].as_str().unwrap(),
            capture["family"].as_str().unwrap(),
            capture["local_addr"].as_str().unwrap(),
            capture["local_port"],
            capture["remote_addr"],
            capture["remote_port"]
        )
    } else {
        format!(
            "memory {} @{} {} :{}",
            memory["tag"].as_str().unwrap(),
            memory["physical_offset"].as_str().unwrap(),
            memory["proto"].as_str().unwrap(),
            memory["local_port"]
        )
    };
    (
        class.as_str().unwrap().to_string(),
        cause.as_str().unwrap_or("").to_string(),
        identity,
    )
}

fn compare(memory: &Path, capture: &Path, capture_time: Option<&str>) -> (i32, Value) {
    let mut cmd = support::command();
    cmd.arg("compare")
        .arg(memory)
        .arg("--live")
        .arg(capture)
        .args(["--format", "json", "--quiet"]);
    if let Some(t) = capture_time {
        cmd.args(["--capture-time", t]);
    }
    let out = cmd.output().unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), report)
}

/// Every discrepancy row of a report, counted by key.
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

fn planted(truth: &Value) -> BTreeMap<Key, usize> {
    let mut out = BTreeMap::new();
    for d in truth["discrepancies"].as_array().unwrap() {
        let cause = d.get("cause").cloned().unwrap_or(Value::Null);
        *out.entry(key(&d["class"], &cause, &d["memory"], &d["capture"]))
            .or_insert(0) += 1;
    }
    out
}

/// The netcarve capture's collection time, as ISO text for `--capture-time`.
fn collected(dir: &Path) -> String {
    read_json(&dir.join("capture-netcarve.json"))["collected"]
        .as_str()
        .unwrap()
        .to_string()
}

fn check_profile(profile: &str) {
    let dir = synth(profile, "truth");
    let truth = read_json(&dir.join("truth.json"));
    let planted = planted(&truth);
    for class in ["hidden_from_api", "not_in_memory", "pid_mismatch"] {
        assert!(
            planted.keys().any(|k| k.0 == class),
            "{profile}: no {class} planted"
        );
    }
    assert!(
        planted
            .keys()
            .any(|k| k.0 == "api_zero_time" && k.1 == "kernel_time_zero"),
        "{profile}: no zero kernel time planted"
    );
    let capture_time = collected(&dir);
    let mut after_capture_seen = false;
    for (format, file) in truth["captures"].as_object().unwrap() {
        let capture = dir.join(file.as_str().unwrap());
        let (plain_code, plain) = compare(&dir.join("truth.json"), &capture, None);
        let records_time = plain["captures"][0]["collected_source"] == "capture";
        let (code, report) = if records_time {
            (plain_code, plain)
        } else {
            compare(&dir.join("truth.json"), &capture, Some(&capture_time))
        };
        assert_eq!(code, 1, "{profile} {format}");
        assert_eq!(
            report["captures"][0]["collected_source"],
            if records_time { "capture" } else { "option" },
            "{profile} {format}"
        );
        let timed = report["captures"][0]["precision"] != "none";
        let want: BTreeMap<Key, usize> = planted
            .iter()
            .filter(|(k, _)| timed || !matches!(k.0.as_str(), "time_mismatch" | "api_zero_time"))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        assert_eq!(flagged(&report), want, "{profile} {format}");
        let after: Vec<&Value> = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["class"] == "created_after_capture")
            .collect();
        assert_eq!(
            after.len(),
            1,
            "{profile} {format}: one endpoint opened after the capture"
        );
        after_capture_seen = true;
        if timed {
            assert_eq!(
                report["research"]["verdict"],
                if planted.keys().any(|k| k.1 == "no_time_field") {
                    "supported"
                } else {
                    "inconclusive"
                },
                "{profile} {format}: {}",
                report["research"]["reasoning"]
            );
        }
    }
    assert!(after_capture_seen);
    // Images are 32 MiB each: keep the temporary directory small once a profile passed.
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
fn windows10_x86() {
    check_profile("win10-18362-x86");
}

#[test]
fn windows81_and_10_and_11() {
    for profile in ["win81-x64", "win10-19041-x64", "win11-22000-x64"] {
        check_profile(profile);
    }
}

/// Without `--capture-time`, a format with no collection time is compared as if taken at
/// acquisition: the endpoint opened in between looks hidden, and the note says why.
#[test]
fn without_capture_time_the_acquisition_time_is_assumed() {
    let dir = synth("win10-19041-x64", "assumed");
    let truth = read_json(&dir.join("truth.json"));
    let planted = planted(&truth);
    let file = truth["captures"]["velociraptor"].as_str().unwrap();
    let (code, report) = compare(&dir.join("truth.json"), &dir.join(file), None);
    assert_eq!(code, 1);
    assert_eq!(
        report["captures"][0]["collected_source"],
        "assumed_acquisition_time"
    );
    let extra: Vec<&Value> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["class"] == "hidden_from_api"
                && !planted.contains_key(&key(
                    &r["class"],
                    &r["cause"],
                    &r["memory"],
                    &r["capture"],
                ))
        })
        .collect();
    assert_eq!(extra.len(), 1, "{extra:?}");
    let row = extra[0];
    assert!(
        row["note"].as_str().unwrap().contains("no collection time"),
        "{row}"
    );
    // It is the endpoint the same comparison with `--capture-time` calls created after the capture.
    let (_, with_time) = compare(
        &dir.join("truth.json"),
        &dir.join(file),
        Some(&collected(&dir)),
    );
    let after: Vec<&Value> = with_time["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["class"] == "created_after_capture")
        .collect();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["memory"], row["memory"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The image itself, scanned by compare, gives the same report as its truth.json.
#[test]
fn scanning_the_image_agrees_with_truth() {
    for profile in ["win7-x64", "win10-19041-x64"] {
        let dir = synth(profile, "image");
        let capture = dir.join("capture-netcarve.json");
        let (code_truth, by_truth) = compare(&dir.join("truth.json"), &capture, None);
        let (code_image, by_image) = compare(&dir.join("memory.raw"), &capture, None);
        assert_eq!(code_image, code_truth, "{profile}");
        assert_eq!(by_image["memory_source"], "image");
        assert_eq!(
            by_image["summary"]["by_class"], by_truth["summary"]["by_class"],
            "{profile}"
        );
        assert_eq!(flagged(&by_image), flagged(&by_truth), "{profile}");
        assert_eq!(
            flagged(&by_image),
            planted(&read_json(&dir.join("truth.json")))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
