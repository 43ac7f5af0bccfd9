//! End to end: `netcarve synth` writes an image with known ground truth, `netcarve scan` must report
//! every planted endpoint with every field equal to `truth.json`, freed ones freed, and no decoy; for
//! every built-in profile in every container, with several seeds. And self-calibration must recover a
//! layout shifted from every built-in profile, and say so.
mod support;

use netcarve::record::{flag, EndpointRecord};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::{assert_success, read_json, scratch};

const CONTAINERS: [&str; 6] = ["raw", "crashdump", "bitmap", "elf", "lime", "vmware"];
const SIZE: &str = "16M";

fn work_dir(name: &str) -> PathBuf {
    scratch(&format!("scan_e2e/{name}"))
}

/// `netcarve synth` of a small image into `out`; returns the image.
fn synth(profile: &str, container: &str, seed: u64, extra: &[&str], out: &Path) -> PathBuf {
    let seed = seed.to_string();
    let mut args = vec!["--profile", profile, "--container", container];
    args.extend(["--seed", &seed, "--size", SIZE]);
    args.extend(extra);
    support::synth(out, &args)
}

fn scan(image: &Path, extra: &[&str]) -> serde_json::Value {
    let o = support::command()
        .args(["scan", "--quiet", "--format", "json"])
        .args(extra)
        .arg(image)
        .output()
        .unwrap();
    assert_success(&o, &format!("scan {}", image.display()));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn records(v: &serde_json::Value) -> Vec<EndpointRecord> {
    serde_json::from_value(v.clone()).unwrap()
}

fn by_offset(v: Vec<EndpointRecord>) -> BTreeMap<(u64, String), EndpointRecord> {
    v.into_iter()
        .map(|r| ((r.physical_offset.0, r.tag.clone()), r))
        .collect()
}

/// Compares a scan with its truth; `ignore_calibrated` drops the `calibrated` flag from the scan.
fn check(
    label: &str,
    truth: &serde_json::Value,
    scanned: &serde_json::Value,
    ignore_calibrated: bool,
) {
    let want = by_offset(records(&truth["endpoints"]));
    let mut got = by_offset(records(&scanned["endpoints"]));
    if ignore_calibrated {
        for r in got.values_mut() {
            r.flags.retain(|f| f != flag::CALIBRATED);
        }
    }
    assert!(!want.is_empty(), "{label}: truth has no endpoints");
    for (k, w) in &want {
        match got.get(k) {
            Some(g) => assert_eq!(g, w, "{label}: endpoint at {:#x}", k.0),
            None => panic!("{label}: planted {} at {:#x} not reported", w.tag, k.0),
        }
    }
    let decoys = by_offset(records(&truth["decoys"]));
    for k in got.keys() {
        assert!(
            !decoys.contains_key(k),
            "{label}: decoy at {:#x} reported ({:?})",
            k.0,
            decoys[k].reason
        );
        assert!(
            want.contains_key(k),
            "{label}: unplanted object at {:#x} reported",
            k.0
        );
    }
    let sorted = records(&scanned["endpoints"]);
    assert!(sorted
        .windows(2)
        .all(|w| w[0].sort_key() <= w[1].sort_key()));
}

/// Every built-in profile in every container. Seeds rotate over containers and profiles (three
/// seeds per profile, each container sees several seeds across profiles), plus a second raw image;
/// x86 alternates PAE and non-PAE paging. Small images keep this CI-fast.
#[test]
fn every_builtin_profile_in_every_container() {
    use rayon::prelude::*;
    let mut cases: Vec<(String, &str, u64, bool)> = vec![];
    for (pi, profile) in netcarve::profile::builtin().iter().enumerate() {
        let x86 = profile.arch == netcarve::profile::Arch::X86;
        for (ci, container) in CONTAINERS.iter().enumerate() {
            let seed = 1 + ((pi + ci) % 3) as u64;
            cases.push((profile.name.clone(), container, seed, x86 && ci % 2 == 1));
        }
        cases.push((profile.name.clone(), "raw", 11 + pi as u64, false));
    }
    // Each case runs to the end even when another fails, so one run lists every failure.
    let results: Vec<Result<(), String>> = cases
        .par_iter()
        .map(|(name, container, seed, no_pae)| {
            let label = format!(
                "{name} {container} seed {seed}{}",
                if *no_pae { " no-pae" } else { "" }
            );
            std::panic::catch_unwind(|| {
                let extra: &[&str] = if *no_pae { &["--no-pae"] } else { &[] };
                let dir = work_dir(&label.replace(' ', "_"));
                let image = synth(name, container, *seed, extra, &dir);
                let truth = read_json(&dir.join("truth.json"));
                let scanned = scan(&image, &[]);
                assert_eq!(scanned["profile"]["name"], name.as_str(), "{label}");
                check(&label, &truth, &scanned, false);
                let _ = std::fs::remove_dir_all(&dir);
            })
            .map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| format!("{label}: panicked"))
            })
        })
        .collect();
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        results.len(),
        failures
            .iter()
            .map(|f| f.lines().take(3).collect::<Vec<_>>().join(" / "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn thread_count_does_not_change_output() {
    let dir = work_dir("threads");
    let image = synth("win10-19041-x64", "bitmap", 3, &[], &dir);
    let one = scan(&image, &["--threads", "1"]);
    let many = scan(&image, &["--threads", "3"]);
    assert_eq!(one, many);
}

/// Shifts the owner and create-time offsets (and the sizes) of TcpE/TTcb, TcpL and UdpA by `by`.
fn shifted_profile_json(name: &str, by: u32) -> String {
    let p = netcarve::profile::by_name(name).unwrap();
    let mut v = serde_json::to_value(p).unwrap();
    let shift = |f: &mut serde_json::Value| {
        if let Some(s) = f.as_str() {
            let n = u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
            *f = format!("{:#x}", n + by).into();
        }
    };
    for kind in ["tcp_endpoint", "tcp_listener", "udp_endpoint"] {
        let k = &mut v["tcpip"][kind];
        shift(&mut k["owner"]["offset"]);
        shift(&mut k["create_time"]["offset"]);
        shift(&mut k["min_size"]);
    }
    // The table facts belong to the real layout, not to this hypothetical one.
    v["tcpip"]["tables"] = serde_json::Value::Null;
    v["name"] = format!("{name}-shifted").into();
    serde_json::to_string_pretty(&v).unwrap()
}

#[test]
fn self_calibration_recovers_a_shifted_layout() {
    for (name, container) in [
        ("win10-19041-x64", "raw"),
        ("win7-x86", "crashdump"),
        ("win11-22621-x64", "bitmap"),
    ] {
        let dir = work_dir(&format!("calibration-{name}"));
        let profile_file = dir.join("shifted.json");
        std::fs::write(&profile_file, shifted_profile_json(name, 0x28)).unwrap();
        let out = dir.join("out");
        let image = synth(profile_file.to_str().unwrap(), container, 5, &[], &out);
        let truth = read_json(&out.join("truth.json"));
        let scanned = scan(&image, &[]);
        assert_eq!(
            scanned["profile"]["name"], name,
            "the built-in profile is selected"
        );
        check(&format!("calibration {name}"), &truth, &scanned, true);
        let calibration = scanned["profile"]["calibration"].as_array().unwrap();
        let used: Vec<(&str, &str)> = calibration
            .iter()
            .filter(|e| e["used"] == true)
            .map(|e| (e["kind"].as_str().unwrap(), e["field"].as_str().unwrap()))
            .collect();
        let p = netcarve::profile::by_name(name).unwrap();
        let t = &p.tcpip;
        for (kind, field, exists) in [
            ("tcp_endpoint", "owner", true),
            (
                "tcp_endpoint",
                "create_time",
                t.tcp_endpoint.create_time.offset.is_some(),
            ),
            ("tcp_listener", "owner", true),
            (
                "tcp_listener",
                "create_time",
                t.tcp_listener.create_time.offset.is_some(),
            ),
            ("udp_endpoint", "owner", true),
            (
                "udp_endpoint",
                "create_time",
                t.udp_endpoint.create_time.offset.is_some(),
            ),
        ] {
            assert_eq!(
                used.contains(&(kind, field)),
                exists,
                "{name}: {kind} {field}: {used:?}"
            );
        }
        let endpoints = records(&scanned["endpoints"]);
        assert!(endpoints
            .iter()
            .filter(|r| r.tag != "TcTW")
            .all(|r| r.has_flag(flag::CALIBRATED)));
    }
}

/// The command line: filters, formats, `-o`, JSON when stdout is not a terminal, one-line errors.
#[test]
fn command_line_filters_formats_and_errors() {
    let dir = work_dir("cli");
    let image = synth("win10-19041-x64", "raw", 4, &[], &dir);
    let all = records(&scan(&image, &[])["endpoints"]);
    let pid = all.iter().find_map(|r| r.pid).unwrap();
    let by_pid = records(&scan(&image, &["--pid", &pid.to_string()])["endpoints"]);
    assert!(!by_pid.is_empty() && by_pid.iter().all(|r| r.pid == Some(pid)));
    let udp = records(&scan(&image, &["--proto", "udp"])["endpoints"]);
    assert_eq!(
        udp.len(),
        all.iter()
            .filter(|r| r.proto == netcarve::record::Proto::Udp)
            .count()
    );
    let listening = records(&scan(&image, &["--state", "LISTEN,established"])["endpoints"]);
    assert!(!listening.is_empty());
    assert!(listening.iter().all(|r| matches!(
        r.state,
        Some(netcarve::record::TcpState::Listening | netcarve::record::TcpState::Established)
    )));

    // No --format and stdout a pipe: JSON. `-o FILE` with csv.
    let csv_file = dir.join("out.csv");
    let o = support::command()
        .args(["scan", "--quiet", "--format", "csv", "-o"])
        .arg(&csv_file)
        .arg(&image)
        .output()
        .unwrap();
    assert!(o.status.success() && o.stdout.is_empty());
    let text = std::fs::read_to_string(&csv_file).unwrap();
    assert_eq!(text.lines().count(), all.len() + 1);

    let o = support::command()
        .args(["scan", "--state", "NOPE"])
        .arg(&image)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let missing = dir.join("no-such.raw");
    let o = support::command()
        .args(["scan", "--quiet"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no-such.raw"), "{err}");
}

/// `NETCARVE_TIMINGS=1` reports each phase on stderr, in order and in increasing time, and leaves
/// the output unchanged; without it nothing is printed.
#[test]
fn timings_on_request_only() {
    let image = support::testdata("win7-x64/memory.dmp");
    let run = |timings: bool| {
        let mut c = support::command();
        c.args(["scan", "--quiet", "--format", "json"]).arg(&image);
        if timings {
            c.env("NETCARVE_TIMINGS", "1");
        } else {
            c.env_remove("NETCARVE_TIMINGS");
        }
        let o = c.output().unwrap();
        assert!(o.status.success());
        (o.stdout, String::from_utf8(o.stderr).unwrap())
    };
    let (quiet_out, quiet_err) = run(false);
    let (timed_out, timed_err) = run(true);
    assert_eq!(quiet_err, "");
    assert_eq!(quiet_out, timed_out);
    let marks: Vec<(f64, &str)> = timed_err
        .lines()
        .map(|l| {
            let rest = l.strip_prefix("netcarve: timing:").expect(l).trim_start();
            let (ms, phase) = rest.split_once(" ms  ").expect(l);
            (ms.trim().parse().unwrap(), phase)
        })
        .collect();
    let phases: Vec<&str> = marks.iter().map(|m| m.1).collect();
    assert_eq!(
        phases,
        [
            "container opened",
            "kernel identified, profile chosen",
            "searched and decoded",
            "calibrated",
            "records gathered",
            "virtual addresses attached",
            "tcpip tables walked",
            "output written",
            "done"
        ]
    );
    assert!(marks.windows(2).all(|w| w[0].0 <= w[1].0), "{timed_err}");
}
