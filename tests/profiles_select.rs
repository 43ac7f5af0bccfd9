//! Selection for every build in the coverage list, the 9600/19935 and 18362/18363 splits, and
//! builds no profile covers.
mod support;

use netcarve::profile::select::{select, Query};
use netcarve::profile::Arch;

fn pick(arch: Arch, nt: (u32, u32), build: u32, tcpip: Option<&str>) -> (String, String) {
    let s = select(&Query {
        arch,
        nt_major: nt.0,
        nt_minor: nt.1,
        build: Some(build),
        tcpip_version: tcpip.map(str::to_string),
    })
    .unwrap_or_else(|e| panic!("{arch:?} {nt:?} {build}: {e}"));
    let chosen = s
        .decided()
        .unwrap_or_else(|| panic!("{arch:?} {nt:?} {build}: undecided: {}", s.reason));
    (chosen.name.clone(), s.reason)
}

#[test]
fn every_covered_x64_build_selects_its_profile() {
    let cases: &[((u32, u32), u32, &str)] = &[
        ((6, 0), 6000, "vista-x64"),
        ((6, 0), 6001, "vista-sp12-x64"),
        ((6, 0), 6002, "vista-sp12-x64"),
        ((6, 0), 6003, "vista-sp12-x64"),
        ((6, 1), 7600, "win7-x64"),
        ((6, 1), 7601, "win7-x64"),
        ((6, 1), 8400, "win7-x64"),
        ((6, 2), 9200, "win8-x64"),
        ((10, 0), 10240, "win10-10240-x64"),
        ((10, 0), 10586, "win10-10586-x64"),
        ((10, 0), 14393, "win10-14393-x64"),
        ((10, 0), 15063, "win10-15063-x64"),
        ((10, 0), 16299, "win10-16299-x64"),
        ((10, 0), 17134, "win10-17134-x64"),
        ((10, 0), 17763, "win10-17763-x64"),
        ((10, 0), 18362, "win10-18362-x64"),
        ((10, 0), 18363, "win10-18363-x64"),
        ((10, 0), 19041, "win10-19041-x64"),
        ((10, 0), 19042, "win10-19041-x64"),
        ((10, 0), 19043, "win10-19041-x64"),
        ((10, 0), 19044, "win10-19041-x64"),
        ((10, 0), 19045, "win10-19041-x64"),
        ((10, 0), 20348, "win10-20348-x64"),
        ((10, 0), 22000, "win11-22000-x64"),
        ((10, 0), 22621, "win11-22621-x64"),
        ((10, 0), 22631, "win11-22621-x64"),
        ((10, 0), 26100, "win11-26100-x64"),
    ];
    for &(nt, build, want) in cases {
        let (got, reason) = pick(Arch::X64, nt, build, None);
        assert_eq!(got, want, "x64 {build}: {reason}");
        assert!(reason.contains("is within"), "{build}: {reason}");
    }
}

#[test]
fn every_covered_x86_build_selects_its_profile() {
    let cases: &[((u32, u32), u32, &str)] = &[
        ((6, 0), 6000, "vista-x86"),
        ((6, 0), 6002, "vista-x86"),
        ((6, 1), 7600, "win7-x86"),
        ((6, 1), 7601, "win7-x86"),
        ((6, 2), 9200, "win8-x86"),
        ((6, 3), 9600, "win81-x86"),
        ((10, 0), 10240, "win10-10240-x86"),
        ((10, 0), 10586, "win10-10586-x86"),
        ((10, 0), 14393, "win10-14393-x86"),
        ((10, 0), 15063, "win10-15063-x86"),
        ((10, 0), 16299, "win10-15063-x86"),
        ((10, 0), 17134, "win10-17134-x86"),
        ((10, 0), 17763, "win10-17134-x86"),
        ((10, 0), 18362, "win10-18362-x86"),
        ((10, 0), 18363, "win10-18362-x86"),
        ((10, 0), 19041, "win10-18362-x86"),
        ((10, 0), 19045, "win10-18362-x86"),
    ];
    for &(nt, build, want) in cases {
        let (got, reason) = pick(Arch::X86, nt, build, None);
        assert_eq!(got, want, "x86 {build}: {reason}");
    }
    // x86 9600 has no tcpip.sys split: a version changes nothing.
    assert_eq!(
        pick(Arch::X86, (6, 3), 9600, Some("6.3.9600.20000")).0,
        "win81-x86"
    );
}

#[test]
fn tcpip_19935_split_on_x64_9600() {
    for (v, want) in [
        ("6.3.9600.16384", "win81-x64"),
        ("6.3.9600.19934", "win81-x64"),
        ("6.3.9600.19935", "win81-19935-x64"),
        ("6.3.9600.21620", "win81-19935-x64"),
    ] {
        let (got, reason) = pick(Arch::X64, (6, 3), 9600, Some(v));
        assert_eq!(got, want, "tcpip {v}: {reason}");
        assert!(reason.contains(v), "{reason}");
    }
    // No version to go by: both stay candidates for the image's objects to decide.
    for v in [None, Some("garbage")] {
        let s = select(&Query {
            arch: Arch::X64,
            nt_major: 6,
            nt_minor: 3,
            build: Some(9600),
            tcpip_version: v.map(str::to_string),
        })
        .unwrap();
        let names: Vec<&str> = s.candidates.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["win81-19935-x64", "win81-x64"], "{v:?}");
        assert!(
            s.reason.contains("unknown") || s.reason.contains("unparsable"),
            "{}",
            s.reason
        );
    }
}

#[test]
fn split_18362_18363_keeps_the_other_udp_offsets_as_alternatives() {
    let a = netcarve::profile::by_name("win10-18362-x64").unwrap();
    let b = netcarve::profile::by_name("win10-18363-x64").unwrap();
    let (ua, ub) = (&a.tcpip.udp_endpoint, &b.tcpip.udp_endpoint);
    assert_eq!(
        (ua.port.off(), ua.local_addr.off()),
        (Some(0x78), Some(0x80))
    );
    assert_eq!(
        (ub.port.off(), ub.local_addr.off()),
        (Some(0x80), Some(0x88))
    );
    assert!(ua.port.candidates().any(|o| o == 0x80));
    assert!(ub.port.candidates().any(|o| o == 0x78));
    assert!(ua.local_addr.candidates().any(|o| o == 0x88));
    assert!(ub.local_addr.candidates().any(|o| o == 0x80));
}

#[test]
fn unknown_builds_take_the_nearest_lower_and_say_so() {
    for (build, want) in [
        (10241, "win10-10240-x64"),
        (19046, "win10-19041-x64"),
        (20349, "win10-20348-x64"),
        (22100, "win11-22000-x64"),
        (22635, "win11-22621-x64"),
        (26200, "win11-26100-x64"),
        (27000, "win11-26100-x64"),
    ] {
        let (got, reason) = pick(Arch::X64, (10, 0), build, None);
        assert_eq!(got, want, "{build}");
        assert!(reason.contains("nearest lower known build"), "{reason}");
    }
    let (got, _) = pick(Arch::X86, (10, 0), 19999, None);
    assert_eq!(got, "win10-18362-x86");
}

#[test]
fn no_guess_below_known_builds_or_for_unknown_nt_versions() {
    let q = |arch, major, minor, build| Query {
        arch,
        nt_major: major,
        nt_minor: minor,
        build: Some(build),
        tcpip_version: None,
    };
    assert!(select(&q(Arch::X64, 10, 0, 9999)).is_err());
    assert!(select(&q(Arch::X64, 6, 0, 5999)).is_err());
    assert!(select(&q(Arch::X64, 5, 2, 3790)).is_err());
    assert!(select(&q(Arch::X64, 6, 4, 9841)).is_err());
}

/// A raw Windows 7 image whose build no source gives (its version resource, KdVersionBlock,
/// NtBuildNumber and NtBuildLab gone, as on real images where those pages are paged out):
/// scanned with the one NT 6.1 profile, the reason saying the build is unknown, every planted
/// endpoint found.
#[test]
fn a_raw_image_without_a_build_is_scanned_by_its_nt_version() {
    let dir = support::scratch("select-unknown-build");
    let raw = support::synth(&dir, &["--profile", "win7-x86", "--size", "16M"]);
    let build = support::read_json(&dir.join("truth.json"))["image"]["nt"]["build"]
        .as_u64()
        .unwrap() as u16;
    let mut bytes = std::fs::read(&raw).unwrap();
    let b = build.to_le_bytes();
    let lab = format!("{build}.");
    let sources: [(&str, Vec<u8>); 4] = [
        ("version resource", 0xFEEF_04BDu32.to_le_bytes().to_vec()),
        ("KdVersionBlock", vec![0x0F, 0x00, b[0], b[1]]),
        ("NtBuildNumber", vec![b[0], b[1], 0x00, 0xF0]),
        ("NtBuildLab", lab.into_bytes()),
    ];
    for (what, pattern) in sources {
        let mut erased = 0;
        while let Some(at) = bytes.windows(pattern.len()).position(|w| w == pattern) {
            bytes[at..at + pattern.len()].fill(0);
            erased += 1;
        }
        assert!(erased > 0, "no {what} to erase");
    }
    let image = dir.join("nobuild.raw");
    std::fs::write(&image, &bytes).unwrap();
    let o = support::command()
        .args(["scan", "--quiet", "--format", "json"])
        .arg(&image)
        .output()
        .unwrap();
    support::assert_success(&o, "scan of an image without a build");
    let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let truth = support::read_json(&dir.join("truth.json"));
    // Unknown stays unknown: null in JSON, "unknown" in text, never 0.
    assert!(
        got["image"]["nt"]["build"].is_null(),
        "{}",
        got["image"]["nt"]
    );
    assert_eq!(got["profile"]["name"], "win7-x86");
    let reason = got["profile"]["reason"].as_str().unwrap();
    assert!(reason.contains("build unknown"), "{reason}");
    assert_eq!(got["endpoints"], truth["endpoints"]);
    let info = support::command().arg("info").arg(&image).output().unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("6.1 build unknown"), "{text}");
    assert!(!text.contains("build 0"), "{text}");
}

/// Where the facts leave several profiles (NT 6.0's two x64 layouts, 6.3 x64 without a tcpip.sys
/// version, 10.0 without a build), the image's own objects decide: each synth image, written with
/// every build and version source hidden, is scanned with the profile it was written with, every
/// candidate's score reported and the winner's the highest; `info` agrees.
#[test]
fn candidates_the_facts_cannot_tell_apart_are_decided_by_the_objects() {
    for (profile, candidates) in [
        ("vista-x64", 2),
        ("vista-sp12-x64", 2),
        ("win81-x64", 2),
        ("win81-19935-x64", 2),
        ("win10-19041-x64", 14),
        ("win10-14393-x86", 6),
    ] {
        let dir = support::scratch(&format!("select-by-evidence-{profile}"));
        let image = support::synth(&dir, &["--profile", profile, "--hide-build"]);
        let truth = support::read_json(&dir.join("truth.json"));
        let (code, got, stderr) = support::scan_json(&image, &[]);
        assert_eq!(code, 0, "{profile}: {stderr}");
        assert!(got["image"]["nt"]["build"].is_null(), "{profile}");
        assert!(
            got["image"]["build_sources"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["build"].is_null()),
            "{profile}: {}",
            got["image"]["build_sources"]
        );
        assert_eq!(got["profile"]["name"], profile, "{}", got["profile"]);
        let reason = got["profile"]["reason"].as_str().unwrap();
        assert!(reason.contains("chosen by the image's objects"), "{reason}");
        let scores = got["profile"]["selection"].as_array().unwrap();
        assert_eq!(scores.len(), candidates, "{profile}: {scores:?}");
        let score_of = |name: &str| {
            scores
                .iter()
                .find(|s| s["profile"] == name)
                .and_then(|s| s["score"].as_u64())
                .unwrap()
        };
        let won = score_of(profile);
        for s in scores.iter().filter(|s| s["profile"] != profile) {
            assert!(s["score"].as_u64().unwrap() < won, "{profile}: {scores:?}");
        }
        for s in scores {
            let part = |k: &str| s[k].as_u64().unwrap();
            assert_eq!(
                part("score"),
                part("valid") + part("owner_valid") + part("time_in_window")
            );
        }
        assert_eq!(got["endpoints"], truth["endpoints"], "{profile}");
        let info = support::info_json(&image, &[]);
        assert_eq!(info["profile"]["name"], profile);
        assert_eq!(info["profile"]["selection"], got["profile"]["selection"]);
    }
}

/// Thin evidence is said out loud, none is no choice. With only the two TIME_WAIT objects left
/// (which both NT 6.0 layouts read alike) the tie is a warning; with every endpoint tag erased
/// scan stops with exit 2 naming the file and the candidates tried, and info shows no profile.
#[test]
fn a_tie_is_a_warning_and_no_evidence_is_no_choice() {
    let dir = support::scratch("select-no-evidence");
    let raw = support::synth(&dir, &["--profile", "vista-x64", "--hide-build"]);
    let mut bytes = std::fs::read(&raw).unwrap();
    let erase = |bytes: &mut Vec<u8>, tag: &[u8; 4]| {
        while let Some(at) = bytes.windows(4).position(|w| w == tag) {
            bytes[at..at + 4].copy_from_slice(b"Frag");
        }
    };
    for tag in [b"TcpE", b"TcpL", b"UdpA"] {
        erase(&mut bytes, tag);
    }
    let image = support::write(&dir, "time-wait-only.raw", &bytes);
    let (code, got, stderr) = support::scan_json(&image, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(got["profile"]["name"], "vista-sp12-x64");
    let warnings = got["image"]["warnings"].to_string();
    assert!(
        warnings.contains("read this image's endpoint objects equally well (vista-x64, score 2)"),
        "{warnings}"
    );
    erase(&mut bytes, b"TcTW");
    let image = support::write(&dir, "untagged.raw", &bytes);
    let (code, _, stderr) = support::scan_json(&image, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("untagged.raw"), "{stderr}");
    assert!(
        stderr.contains("no candidate profile reads an endpoint object")
            && stderr.contains("tried: vista-sp12-x64, vista-x64"),
        "{stderr}"
    );
    let info = support::info_json(&image, &[]);
    assert!(info["profile"].is_null(), "{}", info["profile"]);
    let why = info["profile_reason"].as_str().unwrap();
    assert!(why.contains("tried: vista-sp12-x64, vista-x64"), "{why}");
}

/// A dump header records the build: hiding it there would be an image no real system writes.
#[test]
fn hide_build_refuses_containers_whose_header_records_the_build() {
    let dir = support::scratch("select-hide-build-crashdump");
    for container in ["crashdump", "hiberfil"] {
        let (code, _, stderr) = support::run(&[
            "synth",
            "--profile",
            "win7-x64",
            "--container",
            container,
            "--hide-build",
            "--out",
            &dir.display().to_string(),
        ]);
        assert_eq!(code, 2, "{container}: {stderr}");
        assert!(stderr.contains("--hide-build"), "{stderr}");
    }
}
