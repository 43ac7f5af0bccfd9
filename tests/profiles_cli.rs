//! `netcarve profile list | show` output contracts.
mod support;

use support::run;

#[test]
fn list_json_has_the_documented_keys_for_every_profile() {
    let (code, out, err) = run(&["profile", "list", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(&out).unwrap();
    assert_eq!(v.len(), netcarve::profile::builtin().len());
    let keys = [
        "name",
        "arch",
        "nt_major",
        "nt_minor",
        "build_min",
        "build_max",
        "tcpip_version",
        "confidence",
    ];
    for e in &v {
        let mut got: Vec<&str> = e.keys().map(String::as_str).collect();
        got.sort();
        let mut want = keys.to_vec();
        want.sort();
        assert_eq!(got, want);
    }
    let w81: Vec<_> = v
        .iter()
        .filter(|e| e["name"].as_str().is_some_and(|n| n.starts_with("win81-")))
        .map(|e| (e["name"].as_str().unwrap(), e["tcpip_version"].clone()))
        .collect();
    assert!(w81.contains(&("win81-19935-x64", serde_json::json!(">= 6.3.9600.19935"))));
    assert!(w81.contains(&("win81-x64", serde_json::json!("< 6.3.9600.19935"))));
    assert!(w81.contains(&("win81-x86", serde_json::Value::Null)));
    // Deterministic.
    assert_eq!(run(&["profile", "list", "--format", "json"]).1, out);
}

#[test]
fn show_json_is_the_whole_profile_and_table_names_every_field() {
    let (code, out, err) = run(&["profile", "show", "win10-15063-x64", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let p: netcarve::profile::Profile = serde_json::from_str(&out).unwrap();
    assert_eq!(&p, netcarve::profile::by_name("win10-15063-x64").unwrap());

    let (code, out, _) = run(&["profile", "show", "win10-15063-x64"]);
    assert_eq!(code, 0);
    let line = out
        .lines()
        .find(|l| l.starts_with("tcpip.tcp_endpoint.create_time "))
        .expect("create_time line");
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cols,
        [
            "tcpip.tcp_endpoint.create_time",
            "0x280",
            "0x268",
            "memprocfs",
            "reference"
        ]
    );
    let absent = run(&["profile", "show", "win7-x64"]).1;
    assert!(absent
        .lines()
        .any(|l| l.starts_with("tcpip.tcp_endpoint.create_time ") && l.contains("absent")));
}

#[test]
fn unknown_profile_is_exit_2_with_one_line() {
    let (code, out, err) = run(&["profile", "show", "win99-x64"]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("win99-x64"));
}
