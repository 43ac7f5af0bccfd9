//! hiberfil.sys written by netcarve's synthesizer in the layout of each profile's release (Windows
//! 8+ restoration sets with raw, plain-Xpress and Huffman compression sets; Windows 7/Vista
//! memory-range tables and Xpress blocks): the scan must report exactly the planted endpoints, the
//! same as the raw image of the same seed, `info` must say what the header says, and damaged or
//! emptied files must give partial results with a warning or one line and exit 2.
mod support;

use std::path::{Path, PathBuf};
use support::*;

fn hiberfil(dir: &Path, profile: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "--profile",
        profile,
        "--container",
        "hiberfil",
        "--size",
        "16M",
    ];
    args.extend(extra);
    synth(dir, &args)
}

const PROFILES: [&str; 30] = [
    "vista-x86",
    "win7-x86",
    "win8-x86",
    "win81-x86",
    "win10-10240-x86",
    "win10-10586-x86",
    "win10-14393-x86",
    "win10-15063-x86",
    "win10-17134-x86",
    "win10-18362-x86",
    "vista-x64",
    "vista-sp12-x64",
    "win7-x64",
    "win8-x64",
    "win81-x64",
    "win81-19935-x64",
    "win10-10240-x64",
    "win10-10586-x64",
    "win10-14393-x64",
    "win10-15063-x64",
    "win10-16299-x64",
    "win10-17134-x64",
    "win10-17763-x64",
    "win10-18362-x64",
    "win10-18363-x64",
    "win10-19041-x64",
    "win10-20348-x64",
    "win11-22000-x64",
    "win11-22621-x64",
    "win11-26100-x64",
];

#[test]
fn every_release_layout_scans_to_the_truth() {
    let mut failures = vec![];
    for profile in PROFILES {
        let dir = scratch(&format!("hiberfil/{profile}"));
        let image = hiberfil(&dir, profile, &[]);
        let truth = read_json(&dir.join("truth.json"));
        let (code, got, stderr) = scan_json(&image, &[]);
        if code != 0 {
            failures.push(format!("{profile}: exit {code}: {stderr}"));
            continue;
        }
        if got["endpoints"] != truth["endpoints"] {
            failures.push(format!("{profile}: endpoints differ from truth.json"));
        }
        if got["image"]["warnings"] != serde_json::json!([]) {
            failures.push(format!("{profile}: warnings {}", got["image"]["warnings"]));
        }
        let (code, info, stderr) = run(&["info", image.to_str().unwrap(), "--format", "json"]);
        let info: serde_json::Value = serde_json::from_str(&info).unwrap_or_default();
        if code != 0 || info["hibernation"] != truth["image"]["hibernation"] {
            failures.push(format!(
                "{profile}: info says {} where the writer wrote {} ({stderr})",
                info["hibernation"], truth["image"]["hibernation"]
            ));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same machine as a full crash dump and as a hibernation file: the same records, byte for
/// byte. (A crash dump, not a raw image: synth gives every container but raw a PCI hole, which
/// moves where things are; a dump and a hiberfil of one seed hold the same physical memory.)
#[test]
fn a_hiberfil_holds_the_crash_dumps_records() {
    for profile in ["win7-x64", "win10-19041-x64", "win81-x86", "vista-x86"] {
        let dir = scratch(&format!("hiberfil-dump/{profile}"));
        let dump = synth(
            &dir.join("dump"),
            &[
                "--profile",
                profile,
                "--container",
                "crashdump",
                "--size",
                "16M",
            ],
        );
        let image = hiberfil(&dir.join("hiber"), profile, &[]);
        let (_, want, _) = scan_json(&dump, &[]);
        let (code, got, stderr) = scan_json(&image, &[]);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            got["endpoints"] == want["endpoints"],
            "{profile}: {} records from the hiberfil, {} from the dump, not the same",
            got["endpoints"].as_array().map_or(0, Vec::len),
            want["endpoints"].as_array().map_or(0, Vec::len)
        );
        assert_eq!(got["image"]["kernel_pdb"], want["image"]["kernel_pdb"]);
        assert_eq!(got["image"]["system_time"], want["image"]["system_time"]);
        assert_eq!(got["image"]["physical"], want["image"]["physical"]);
        assert_eq!(got["image"]["container"], "hiberfil");
    }
}

#[test]
fn info_says_what_the_header_says() {
    let dir = scratch("hiberfil-info");
    let image = hiberfil(&dir, "win10-19041-x64", &[]);
    let (code, stdout, stderr) = run(&["info", image.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("Container         hiberfil"), "{stdout}");
    assert!(stdout.contains("windows8+ header 0x3e0 (HIBR)"), "{stdout}");
    assert!(stdout.contains("Hibernated (UTC)"), "{stdout}");
    assert!(stdout.contains("Fast startup      yes"), "{stdout}");
    let dir = scratch("hiberfil-info7");
    let image = hiberfil(&dir, "win7-x86", &[]);
    let (code, stdout, stderr) = run(&["info", image.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("windows7/vista header 0xe0 (hibr)"),
        "{stdout}"
    );
    assert!(!stdout.contains("Fast startup"), "{stdout}");
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Damage that costs one compression set, one table, or everything, each said.
#[test]
fn damaged_files_give_partial_results_and_say_why() {
    let dir = scratch("hiberfil-damaged");
    let image = hiberfil(&dir, "win10-19041-x64", &[]);
    let truth = read_json(&dir.join("truth.json"));
    let original = std::fs::read(&image).unwrap();

    // A compressed set's data overwritten: that set is skipped and named, the rest is read.
    // Sets start at page 6: walk the chain to the second set (plain Xpress when it shrinks).
    let first = 6 * 0x1000;
    let header = le32(&original, first);
    let next = first + 4 + (header & 0xff) as usize * 8 + ((header >> 8) & 0x3f_ffff) as usize;
    let second = le32(&original, next);
    let data = next + 4 + (second & 0xff) as usize * 8;
    let mut bad = original.clone();
    for b in &mut bad[data..data + 64] {
        *b = 0xFF;
    }
    std::fs::write(&image, &bad).unwrap();
    let (code, got, stderr) = scan_json(&image, &["--include-corrupt"]);
    assert_eq!(code, 0, "{stderr}");
    let warnings = got["image"]["warnings"].to_string();
    if second >> 8 & 0x3f_ffff != 16 * 4096 {
        assert!(warnings.contains("compression set 1"), "{warnings}");
    }
    let want = truth["endpoints"].as_array().unwrap();
    let found = got["endpoints"].as_array().unwrap();
    assert!(
        found.iter().all(|r| want.contains(r)),
        "a record truth does not have"
    );
    assert!(
        found.len() * 2 > want.len(),
        "most endpoints survive one set"
    );

    // A Huffman set's table of code lengths destroyed: the decoder refuses the table, the set is
    // skipped and named. (Sets rotate raw, plain, Huffman: find the first Huffman one.)
    let mut at = first;
    let mut index = 0;
    let huffman = loop {
        let h = le32(&original, at);
        let stored = ((h >> 8) & 0x3f_ffff) as usize;
        let data = at + 4 + (h & 0xff) as usize * 8;
        if h >> 30 >= 2 {
            break Some((index, data));
        }
        if index > 200 || h == 0 {
            break None;
        }
        at = data + stored;
        index += 1;
    };
    let (index, data) = huffman.expect("a Huffman set among the first 200");
    let mut bad = original.clone();
    // All 512 code lengths 15: far too few codes for the 15-bit table (incomplete).
    bad[data..data + 256].fill(0xFF);
    std::fs::write(&image, &bad).unwrap();
    let (code, got, stderr) = scan_json(&image, &[]);
    assert_eq!(code, 0, "{stderr}");
    let warnings = got["image"]["warnings"].to_string();
    assert!(
        warnings.contains(&format!("compression set {index} "))
            && warnings.contains("Huffman table"),
        "{warnings}"
    );

    // A descriptor naming a PFN above HighestPhysicalPage: that set is skipped and said.
    let mut bad = original.clone();
    let descriptor = (0x7fff_ffffu64 << 4) | 3;
    bad[next + 4..next + 12].copy_from_slice(&descriptor.to_le_bytes());
    std::fs::write(&image, &bad).unwrap();
    let (code, got, stderr) = scan_json(&image, &[]);
    assert_eq!(code, 0, "{stderr}");
    let warnings = got["image"]["warnings"].to_string();
    assert!(warnings.contains("above HighestPhysicalPage"), "{warnings}");

    // A set claiming more bytes than the file holds: the chain stops there, with a warning.
    let mut bad = original.clone();
    let lie = (header & 0xc000_00ff) | (0x3f_ffff << 8);
    bad[next..next + 4].copy_from_slice(&lie.to_le_bytes());
    bad.truncate(next + 0x20_0000);
    std::fs::write(&image, &bad).unwrap();
    let (code, got, stderr) = scan_json(&image, &[]);
    assert!(code == 0 || code == 2, "{stderr}");
    if code == 0 {
        assert!(got["image"]["warnings"]
            .to_string()
            .contains("past the end"));
    }

    // An unknown header version: one line naming it, exit 2.
    let mut bad = original.clone();
    bad[0xc..0x10].copy_from_slice(&0x777u32.to_le_bytes());
    std::fs::write(&image, &bad).unwrap();
    let (code, _, stderr) = run(&["info", image.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("LengthSelf 0x777"), "{stderr}");

    // Resumed from: WAKE, the sets cleared. One line, exit 2.
    let mut bad = original.clone();
    bad[..4].copy_from_slice(b"WAKE");
    for b in &mut bad[0x1000..] {
        *b = 0;
    }
    std::fs::write(&image, &bad).unwrap();
    let (code, _, stderr) = run(&["info", image.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("WAKE") && stderr.contains("hiberfil.sys"),
        "{stderr}"
    );

    // All zeros: named as a hibernation file with nothing in it, not read as raw memory.
    std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
    let (code, _, stderr) = run(&["info", image.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("all zeros"), "{stderr}");
}
