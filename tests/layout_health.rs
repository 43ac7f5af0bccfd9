//! Layout health and the time-slot census, end to end: synth writes a listener time where the
//! profile does not look (the census must find and use it) or zero everywhere (health must say so,
//! and nothing may be invented); a Windows 7 scan's census answers the research question.
mod support;

use serde_json::Value;
use std::path::Path;

fn health<'j>(scan: &'j Value, kind: &str) -> &'j Value {
    scan["profile"]["health"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in profile.health: {}", scan["profile"]))
}

fn sorted(records: &Value) -> Vec<Value> {
    let mut v = records.as_array().unwrap().clone();
    v.sort_by_key(|r| (r["physical_offset"].to_string(), r["tag"].to_string()));
    v
}

fn truth(dir: &Path) -> Value {
    support::read_json(&dir.join("truth.json"))
}

#[test]
fn a_moved_listener_time_is_found_by_the_census_and_used() {
    for profile in ["win10-19041-x64", "win81-x86"] {
        let dir = support::scratch(&format!("layout_health/moved-{profile}"));
        let image = support::synth(
            &dir,
            &["--profile", profile, "--move-time-field", "tcp-listener"],
        );
        let (code, scan, stderr) = support::scan_json(&image, &[]);
        assert_eq!(code, 0, "{stderr}");
        let h = health(&scan, "tcp_listener");
        let census = &h["census"];
        assert_eq!(census["decisive"], true, "{h}");
        assert_eq!(census["used"], true, "{h}");
        assert_ne!(census["best_slot"], census["profile_slot"]);
        assert!(
            census["finding"].as_str().unwrap().contains("decoded with"),
            "{census}"
        );
        // Every record, times and `calibrated` flags included, is what synth planted.
        assert_eq!(
            sorted(&scan["endpoints"]),
            sorted(&truth(&dir)["endpoints"])
        );
        let calibration = scan["profile"]["calibration"].as_array().unwrap();
        assert!(
            calibration
                .iter()
                .any(|c| c["method"] == "time-slot census" && c["kind"] == "tcp_listener"),
            "{calibration:?}"
        );
        // The other kinds' slots hold, so no census ran for them.
        assert!(health(&scan, "udp_endpoint").get("census").is_none());
    }
}

#[test]
fn an_all_zero_time_slot_is_reported_and_not_calibrated() {
    let dir = support::scratch("layout_health/zero");
    let image = support::synth(
        &dir,
        &[
            "--profile",
            "win10-19041-x64",
            "--zero-time-field",
            "tcp-listener",
        ],
    );
    let (code, scan, _) = support::scan_json(&image, &[]);
    assert_eq!(code, 0);
    let h = health(&scan, "tcp_listener");
    assert_eq!(h["time_zero"], h["valid"], "{h}");
    assert_eq!(h["census"]["decisive"], false, "{h}");
    assert_eq!(h["census"]["used"], false, "{h}");
    assert_eq!(
        sorted(&scan["endpoints"]),
        sorted(&truth(&dir)["endpoints"])
    );
    for r in scan["endpoints"].as_array().unwrap() {
        assert!(
            !r["flags"]
                .as_array()
                .unwrap()
                .contains(&Value::from("calibrated")),
            "a time was invented: {r}"
        );
    }
    // One warning line on stderr names the kind and the slot.
    let (_, _, stderr) = support::run(&[
        "scan".to_string(),
        image.display().to_string(),
        "--format".into(),
        "json".into(),
    ]);
    let warned: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("layout health: TcpL"))
        .collect();
    assert_eq!(warned.len(), 1, "{stderr}");
    assert!(warned[0].contains("is zero in 12"), "{stderr}");
}

#[test]
fn the_research_summary_quotes_the_census_on_windows_7() {
    let dir = support::scratch("layout_health/win7");
    let image = support::synth(&dir, &["--profile", "win7-x64"]);
    let out = support::command()
        .args(["compare"])
        .arg(&image)
        .arg("--live")
        .arg(dir.join("capture-netcarve.json"))
        .args(["--format", "json", "--quiet"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let census: Vec<&str> = report["research"]["census"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        census.iter().any(|c| c.starts_with("TcpE (")
            && c.contains("no slot holds a time between boot and acquisition in any of them")
            && c.ends_with("consistent with no time field")),
        "{census:?}"
    );
    // The same from the scan JSON as compare's memory side.
    let (_, scan, _) = support::scan_json(&image, &[]);
    let scan_file = dir.join("scan.json");
    std::fs::write(&scan_file, scan.to_string()).unwrap();
    let table = support::command()
        .args(["compare"])
        .arg(&scan_file)
        .arg("--live")
        .arg(dir.join("capture-netcarve.json"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("  census: TcpE ("), "{text}");
}

#[test]
fn moving_or_zeroing_a_field_the_layout_lacks_is_refused() {
    let dir = support::scratch("layout_health/refused");
    for flag in ["--move-time-field", "--zero-time-field"] {
        let out = support::command()
            .args([
                "synth",
                "--profile",
                "win7-x64",
                flag,
                "tcp-endpoint",
                "--out",
            ])
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("has no create-time field"), "{flag}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
