//! `netcarve compare` end to end on the fixtures in testdata/captures (see make_fixtures.py): every
//! planted discrepancy gets its class, nothing else is flagged, and the exit codes are 0/1/2.
mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use support::fixtures::{expected, ports_by_class};
use support::{netcarve, scratch, write};

fn fixture(name: &str) -> PathBuf {
    support::testdata("captures").join(name)
}

fn compare_json(live: &[&Path], extra: &[&str]) -> (i32, Value) {
    let memory = fixture("memory-win7.json");
    let mut args: Vec<String> = vec!["compare".into(), memory.display().to_string()];
    for l in live {
        args.push("--live".into());
        args.push(l.display().to_string());
    }
    args.extend(["--format".to_string(), "json".to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = netcarve(&refs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}); stderr: {stderr}"));
    (out.status.code().unwrap_or(-1), json)
}

#[test]
fn every_format_reports_exactly_the_planted_discrepancies() {
    for (file, format, timed, precision) in [
        ("netcarve.json", "netcarve", true, "100ns"),
        ("ps51.json", "ps51", true, "ms"),
        ("ps7.json", "ps7", true, "100ns"),
        ("nettcpip.json", "nettcpip", true, "100ns"),
        ("velociraptor.jsonl", "velociraptor", true, "s"),
        ("osquery.json", "osquery", false, "none"),
        ("netstat.txt", "netstat", false, "none"),
    ] {
        let (code, report) = compare_json(&[&fixture(file)], &[]);
        assert_eq!(code, 1, "{file}: discrepancies → exit 1");
        assert_eq!(ports_by_class(&report), expected(timed), "{file}");
        let capture = &report["captures"][0];
        assert_eq!(capture["format"], format, "{file}");
        assert_eq!(capture["rows"], 11, "{file}");
        assert_eq!(capture["precision"], precision, "{file}");
        assert_eq!(
            capture["warnings"].as_array().unwrap().len(),
            0,
            "{file}: {capture}"
        );
        let discrepancies = if timed { 7 } else { 4 };
        assert_eq!(report["summary"]["discrepancies"], discrepancies, "{file}");
        // Hidden connections come first.
        assert_eq!(report["rows"][0]["class"], "hidden_from_api", "{file}");
        for row in report["rows"].as_array().unwrap() {
            if row["class"] == "api_zero_time" {
                assert_eq!(row["cause"], "no_time_field", "{file}: {row}");
                assert_eq!(row["capture"]["create_time_raw"], 0, "{file}");
            }
        }
        let verdict = report["research"]["verdict"].as_str().unwrap();
        assert_eq!(
            verdict,
            if timed { "supported" } else { "inconclusive" },
            "{file}"
        );
        let expected_collected = if format == "netcarve" {
            "capture"
        } else {
            "assumed_acquisition_time"
        };
        assert_eq!(capture["collected_source"], expected_collected, "{file}");
    }
}

#[test]
fn research_counts_on_windows7_fixture() {
    let (_, report) = compare_json(&[&fixture("ps7.json")], &[]);
    let counts = &report["research"]["counts"];
    assert_eq!(counts["api_zero_rows"], 3);
    assert_eq!(counts["api_zero_on_no_time_field"], 3);
    assert_eq!(counts["api_zero_on_kernel_time"], 0);
    assert_eq!(counts["no_time_field_api_nonzero"], 0);
    let table = report["research"]["table"].as_array().unwrap();
    let memory_no_field: u64 = table
        .iter()
        .filter(|t| t["side"] == "memory" && t["kind"] == "no_time_field")
        .map(|t| t["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        memory_no_field, 4,
        "three TcpE and one TcTW without a time field"
    );
    assert!(table.iter().all(|t| t["build"] == 7601));
}

#[test]
fn local_times_follow_capture_tz_then_image_bias() {
    let (_, by_bias) = compare_json(&[&fixture("nettcpip.json")], &[]);
    assert_eq!(by_bias["captures"][0]["tz_source"], "image_bias");
    // Claiming the naive times were UTC moves every timed match one hour off.
    let (code, as_utc) = compare_json(&[&fixture("nettcpip.json")], &["--capture-tz", "+00:00"]);
    assert_eq!(code, 1);
    assert_eq!(as_utc["captures"][0]["tz_source"], "capture_tz");
    let classes = ports_by_class(&as_utc);
    assert_eq!(classes.get("match"), None, "{classes:?}");
    assert_eq!(
        classes["time_mismatch"],
        vec![135, 135, 137, 5353, 5985, 5985]
    );
    let delta = as_utc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["class"] == "time_mismatch" && r["memory"]["local_port"] == 5353)
        .unwrap()["delta_seconds"]
        .as_f64()
        .unwrap();
    assert!((delta + 3600.0).abs() < 1e-6, "{delta}");
}

#[test]
fn tolerance_override() {
    let (_, strict) = compare_json(&[&fixture("ps51.json")], &["--tolerance", "0"]);
    // At 0 tolerance the millisecond truncation of PowerShell 5.1 is a mismatch for every timed pair.
    assert_eq!(strict["summary"]["by_class"]["match"], 0);
    let (_, relaxed) = compare_json(&[&fixture("ps51.json")], &["--tolerance", "3s"]);
    assert_eq!(relaxed["summary"]["by_class"]["time_mismatch"], 0);
    assert_eq!(relaxed["captures"][0]["tolerance_seconds"], 3.0);
}

#[test]
fn several_captures_are_compared_separately() {
    let a = fixture("netcarve.json");
    let b = fixture("netstat.txt");
    let (code, report) = compare_json(&[&a, &b], &[]);
    assert_eq!(code, 1);
    assert_eq!(report["captures"].as_array().unwrap().len(), 2);
    let per = report["summary"]["by_capture"].as_object().unwrap();
    assert_eq!(per[&a.display().to_string()]["api_zero_time"], 3);
    assert_eq!(per[&b.display().to_string()]["state_changed"], 1);
    assert_eq!(report["summary"]["by_class"]["hidden_from_api"], 2);
    assert_eq!(report["summary"]["discrepancies"], 7 + 4);
    for row in report["rows"].as_array().unwrap() {
        let file = row["capture_file"].as_str().unwrap();
        assert!(file == a.display().to_string() || file == b.display().to_string());
    }
}

#[test]
fn agreement_exits_zero_and_table_and_csv_render() {
    let memory = std::fs::read_to_string(fixture("memory-win7.json")).unwrap();
    let mut memory: Value = serde_json::from_str(&memory).unwrap();
    // Keep only the endpoints the netstat capture lists unchanged.
    let keep = [135u64, 5353, 5985, 49723, 49700, 137];
    memory["endpoints"]
        .as_array_mut()
        .unwrap()
        .retain(|e| keep.contains(&e["local_port"].as_u64().unwrap()));
    let dir = scratch("compare_cli_agree");
    let memory_path = write(
        &dir,
        "agree-memory.json",
        &serde_json::to_vec(&memory).unwrap(),
    );
    let netstat = std::fs::read_to_string(fixture("netstat.txt")).unwrap();
    let filtered: String = netstat
        .lines()
        .filter(|l| !(l.contains(":445") || l.contains(":49750") || l.contains(":49900")))
        .map(|l| format!("{l}\n"))
        .collect();
    let capture_path = write(&dir, "agree-netstat.txt", filtered.as_bytes());
    let m = memory_path.to_str().unwrap();
    let c = capture_path.to_str().unwrap();
    let out = netcarve(&["compare", m, "--live", c]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("summary: 0 discrepancies"), "{table}");
    assert!(!table.contains("HIDDEN"), "{table}");

    let csv_path = dir.join("agree.csv");
    let out = netcarve(&[
        "compare",
        m,
        "--live",
        c,
        "--format",
        "csv",
        "-o",
        csv_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty());
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert!(csv.starts_with("class,cause,capture_file,"));
    assert_eq!(csv.lines().count(), 1 + 8, "{csv}");
}

#[test]
fn hidden_connection_is_loud_in_the_table() {
    let memory = fixture("memory-win7.json");
    let live = fixture("ps51.json");
    let out = netcarve(&[
        "compare",
        memory.to_str().unwrap(),
        "--live",
        live.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let banner = text.find("!!! HIDDEN FROM API: 1 ").expect("banner");
    let evil = text
        .find("203.0.113.66:4444")
        .expect("hidden connection listed");
    assert!(banner < evil);
    assert!(text.contains("verdict: supported"), "{text}");
}

#[test]
fn errors_exit_two_with_one_line_naming_the_file() {
    let memory = fixture("memory-win7.json");
    let m = memory.to_str().unwrap();
    let dir = scratch("compare_cli_errors");
    let truncated = write(
        &dir,
        "truncated.json",
        b"[{\"ProcessId\": 4,\n \"LocalAddress\": \"0.0",
    );
    let empty = write(&dir, "empty.json", b"");
    let garbage = write(&dir, "garbage.bin", &[0x80u8, 0x81, 0xfe, 0x00, 0x41]);
    let no_endpoints = write(&dir, "no-endpoints.json", b"{\"image\": {}}");
    let full = std::fs::read(&memory).unwrap();
    let memory_truncated = write(&dir, "memory-truncated.json", &full[..full.len() / 2]);
    let memory_wrong = write(
        &dir,
        "memory-wrong.json",
        b"{\"image\": {}, \"endpoints\": 5}",
    );
    let live = fixture("ps7.json");
    let l = live.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["compare", m, "--live", "/nonexistent/capture.json"],
            "/nonexistent/capture.json: no such file",
        ),
        (
            vec!["compare", m, "--live", truncated.to_str().unwrap()],
            "line 2 column",
        ),
        (
            vec!["compare", m, "--live", empty.to_str().unwrap()],
            "empty capture",
        ),
        (
            vec!["compare", m, "--live", garbage.to_str().unwrap()],
            "garbage.bin: ",
        ),
        (
            vec!["compare", no_endpoints.to_str().unwrap(), "--live", l],
            "no-endpoints.json: JSON without",
        ),
        (
            vec!["compare", memory_truncated.to_str().unwrap(), "--live", l],
            "memory-truncated.json: line ",
        ),
        (
            vec!["compare", memory_wrong.to_str().unwrap(), "--live", l],
            "memory-wrong.json: not a scan output",
        ),
        (
            vec!["compare", m, "--live", l, "--capture-format", "netstat"],
            "ps7.json: JSON, not",
        ),
    ];
    for (args, needle) in cases {
        let out = netcarve(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // Bad option values are clap's errors: exit 2, the option and the value named, the output empty.
    let bad_values: [(&[&str], &str); 4] = [
        (&["--tolerance", "soon"], "'soon' for '--tolerance"),
        (&["--capture-tz", "+99"], "'+99' for '--capture-tz"),
        (
            &["--capture-format", "pcap"],
            "'pcap' for '--capture-format",
        ),
        (&["--capture-time", "noon"], "'noon' for '--capture-time"),
    ];
    for (extra, needle) in bad_values {
        let mut args = vec!["compare", m, "--live", l];
        args.extend(extra);
        let out = netcarve(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error: invalid value "), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// A capture of another host (another seed: other addresses, only the standard wildcard
/// listeners in common) stops compare with one line and the evidence; `--allow-mismatch` goes on
/// and says so in the report; the right host's capture still reports its hidden connection.
#[test]
fn a_capture_of_another_host_is_refused_with_the_evidence() {
    let dir = support::scratch("compare-wrong-host");
    let image = support::synth(
        &dir.join("a"),
        &[
            "--profile",
            "win10-19041-x64",
            "--size",
            "16M",
            "--seed",
            "1",
        ],
    );
    support::synth(
        &dir.join("b"),
        &[
            "--profile",
            "win10-19041-x64",
            "--size",
            "16M",
            "--seed",
            "2",
        ],
    );
    let other = dir.join("b").join("capture-netcarve.json");
    let (code, _, stderr) = support::run(&[
        "compare",
        image.to_str().unwrap(),
        "--live",
        other.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("does not belong to")
            && stderr.contains("0 of")
            && stderr.contains("--allow-mismatch"),
        "{stderr}"
    );
    let (code, stdout, stderr) = support::run(&[
        "compare",
        image.to_str().unwrap(),
        "--live",
        other.to_str().unwrap(),
        "--allow-mismatch",
        "--format",
        "json",
    ]);
    assert_eq!(code, 1, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["captures"][0]["host_check"]["verdict"], "mismatch");
    assert!(report["captures"][0]["warnings"]
        .to_string()
        .contains("--allow-mismatch"));
    // Three rows are enough: a host's own address is on every connection it makes.
    let mut few: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&other).unwrap()).unwrap();
    let specific: Vec<serde_json::Value> = few["tcp"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["local_addr"] != "0.0.0.0" && r["local_addr"] != "::")
        .take(3)
        .cloned()
        .collect();
    assert_eq!(specific.len(), 3);
    few["tcp"] = serde_json::Value::Array(specific);
    few["udp"] = serde_json::json!([]);
    let few_path = support::write(&dir, "few.json", few.to_string().as_bytes());
    let (code, _, stderr) = support::run(&[
        "compare",
        image.to_str().unwrap(),
        "--live",
        few_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("0 of 3 capture rows"), "{stderr}");
    let own = dir.join("a").join("capture-netcarve.json");
    let (code, stdout, stderr) = support::run(&[
        "compare",
        image.to_str().unwrap(),
        "--live",
        own.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 1, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["captures"][0]["host_check"]["verdict"], "same_host");
    assert!(report["summary"]["by_class"]["hidden_from_api"].as_u64() >= Some(1));
}
