//! The table walk end to end from the CLI: on synthesized images of every profile with walk
//! layouts, the pool tag of a linked connection, listener and UDP endpoint is overwritten in the
//! image file (four bytes at `physical_offset + 4`, the tag of its pool header), and each must
//! still be reported, found by the walk alone (`found_by: ["table"]`, `no_pool_tag`), with the
//! fields it had.
mod support;

use netcarve::profile::builtin;
use serde_json::Value;
use std::io::{Seek, SeekFrom, Write};

fn endpoints(v: &Value) -> &Vec<Value> {
    v["endpoints"].as_array().expect("endpoints")
}

fn offset(r: &Value) -> u64 {
    let s = r["physical_offset"].as_str().expect("hex");
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// The victims: the first object of the fullest connection table and of each port pool (a table
/// with other, tagged objects: the pool-tag route types an untagged entry by its neighbours).
fn victims(truth: &Value) -> Vec<u64> {
    let tables = truth["tcpip"]["tables"].as_array().expect("tcpip tables");
    let chains = |t: &Value| -> Vec<u64> {
        t["chains"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| {
                c.as_array().unwrap().iter().map(|h| {
                    u64::from_str_radix(h.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
                })
            })
            .collect()
    };
    let mut out = vec![];
    let fullest = tables
        .iter()
        .filter(|t| t["table"].as_str().unwrap().ends_with("endpoints"))
        .max_by_key(|t| chains(t).len())
        .expect("a connection table");
    out.push(chains(fullest)[0]);
    for pool in ["tcp port pool", "udp port pool"] {
        let t = tables.iter().find(|t| t["table"] == pool).expect(pool);
        out.push(chains(t)[0]);
    }
    out
}

#[test]
fn an_overwritten_pool_tag_leaves_a_linked_object_reported_by_the_walk() {
    let profiles: Vec<_> = builtin()
        .iter()
        .filter(|p| p.tcpip.tables.is_some())
        .collect();
    assert!(profiles.len() >= 16, "profiles with walk layouts");
    for p in profiles {
        let dir = support::scratch(&format!("tables-e2e-{}", p.name));
        let image = support::synth(&dir, &["--profile", &p.name, "--container", "raw"]);
        let truth = support::read_json(&dir.join("truth.json"));
        let victims = victims(&truth);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(&image)
            .unwrap();
        for &at in &victims {
            file.seek(SeekFrom::Start(at + 4)).unwrap();
            file.write_all(b"Zzzz").unwrap();
        }
        drop(file);
        let (code, scanned, stderr) = support::scan_json(&image, &[]);
        assert_eq!(code, 0, "{}: {stderr}", p.name);
        let route = scanned["tables"]["route"].as_str().unwrap();
        for &at in &victims {
            let want = endpoints(&truth)
                .iter()
                .find(|r| offset(r) == at)
                .unwrap_or_else(|| panic!("{}: {at:#x} in truth", p.name));
            let got = endpoints(&scanned)
                .iter()
                .find(|r| offset(r) == at)
                .unwrap_or_else(|| panic!("{} ({route}): {at:#x} not reported", p.name));
            assert_eq!(
                got["found_by"],
                serde_json::json!(["table"]),
                "{} {got}",
                p.name
            );
            assert_eq!(got["linked"], true, "{}", p.name);
            assert!(
                got["flags"]
                    .as_array()
                    .unwrap()
                    .contains(&"no_pool_tag".into()),
                "{} {got}",
                p.name
            );
            for field in [
                "tag",
                "proto",
                "family",
                "local_addr",
                "local_port",
                "remote_addr",
                "remote_port",
                "state",
                "pid",
                "process",
                "create_time_raw",
                "pool_status",
                "virtual_address",
            ] {
                assert_eq!(got[field], want[field], "{} {at:#x}: {field}", p.name);
            }
        }
        // The layout health counts every decoded object, the walk-only ones too.
        let counted: u64 = scanned["profile"]["health"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["valid"].as_u64().unwrap())
            .sum();
        assert_eq!(counted as usize, endpoints(&scanned).len(), "{}", p.name);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `--no-tables` is the carve alone: every record `["pool"]` and `linked: null`, the route says why.
#[test]
fn no_tables_is_the_carve_alone() {
    let image = support::testdata("win10-19041-x64/memory.dmp");
    let (code, scanned, stderr) = support::scan_json(&image, &["--no-tables"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(scanned["tables"]["route"], "none");
    assert!(scanned["tables"]["reason"]
        .as_str()
        .unwrap()
        .contains("--no-tables"));
    assert!(endpoints(&scanned)
        .iter()
        .all(|r| r["found_by"] == serde_json::json!(["pool"]) && r["linked"].is_null()));
    let (_, walked, _) = support::scan_json(&image, &[]);
    assert_eq!(walked["tables"]["route"], "builtin-symbols");
    assert!(endpoints(&walked).iter().any(|r| r["linked"] == true));
}

/// `info` reports tcpip.sys as planted (base, size, PDB id, FileVersion) in text and JSON, found
/// through the loaded-module list; with the KDBG block gone (no list head), by the image scan.
#[test]
fn info_reports_tcpip_sys_by_either_route() {
    let dir = support::scratch("tables-info-tcpip");
    let image = support::synth(
        &dir,
        &["--profile", "win10-19041-x64", "--container", "raw"],
    );
    let truth = support::read_json(&dir.join("truth.json"));
    let want = &truth["tcpip"];
    let info = support::info_json_and_text;
    let check = |v: &Value, text: &str, route: &str| {
        let got = &v["tcpip"];
        assert_eq!(got["base"], want["base"], "{route}");
        assert_eq!(got["size"], want["size"], "{route}");
        assert_eq!(got["pdb"]["guid"], want["pdb"]["guid"], "{route}");
        assert_eq!(got["pdb"]["age"], want["pdb"]["age"], "{route}");
        assert_eq!(got["file_version"], want["file_version"], "{route}");
        assert_eq!(got["found_by"], route);
        let row = text
            .lines()
            .find(|l| l.starts_with("tcpip.sys"))
            .unwrap_or_else(|| panic!("no tcpip.sys row in\n{text}"));
        for part in [
            format!("base {}", want["base"].as_str().unwrap()),
            format!("size {}", want["size"].as_str().unwrap()),
            format!(
                "tcpip.pdb {} age {}",
                want["pdb"]["guid"].as_str().unwrap(),
                want["pdb"]["age"]
            ),
            format!("FileVersion {}", want["file_version"].as_str().unwrap()),
            format!("(found by {route})"),
        ] {
            assert!(row.contains(&part), "{route}: {part:?} not in {row}");
        }
    };
    let (v, text) = info(&image);
    check(&v, &text, "module-list");

    let mut bytes = std::fs::read(&image).unwrap();
    let mut erased = 0;
    while let Some(at) = bytes.windows(4).position(|w| w == b"KDBG") {
        bytes[at..at + 4].fill(0);
        erased += 1;
    }
    assert!(erased > 0, "no KDBG block to erase");
    let no_list = dir.join("no-kdbg.raw");
    std::fs::write(&no_list, &bytes).unwrap();
    let (v, text) = info(&no_list);
    check(&v, &text, "image-scan");
}
