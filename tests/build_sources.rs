//! The NT build from every source, each alone: a machine written by the tests' own writer
//! (tests/support/machine.rs, not synth) whose kernel holds exactly one source of the build, and
//! `info` must find that one, name it, and report the others as tried and empty.
mod support;

use support::containers::full_dump;
use support::machine::{windows, Machine, Mode, Truth};
use support::{scratch, write};

const MIB: u64 = 1 << 20;
const SOURCES: [&str; 6] = [
    "kuser-shared-data",
    "crashdump-header",
    "kd-version-block",
    "export-NtBuildNumber",
    "version-resource",
    "kdbg-NtBuildLab",
];

/// The 64-bit debugger-structure form of a kernel pointer (x86 ones are sign-extended).
fn debugger_ptr(m: &Machine, va: u64) -> [u8; 8] {
    let v = if m.is_x64() {
        va
    } else {
        va as u32 as i32 as i64 as u64
    };
    v.to_le_bytes()
}

/// A machine whose kernel has no version resource (its VS_FIXEDFILEINFO page content erased, as
/// when that page is paged out): only what a test adds gives the build.
fn machine_without_sources(mode: Mode, major: u32, minor: u32, build: u32) -> (Machine, Truth) {
    let (mut m, t) = windows(mode, 4 * MIB, major, minor, build);
    m.write_virt(t.kernel_base + 0x2028, &[0; 4]);
    (m, t)
}

fn add_version_resource_back(m: &mut Machine, t: &Truth) {
    m.write_virt(t.kernel_base + 0x2028, &0xFEEF_04BDu32.to_le_bytes());
}

fn add_kd_version_block(m: &mut Machine, t: &Truth, build: u16) {
    let mut b = vec![0u8; 0x28];
    b[0..2].copy_from_slice(&0xFu16.to_le_bytes());
    b[2..4].copy_from_slice(&build.to_le_bytes());
    b[4] = 6;
    let machine: u16 = if m.is_x64() { 0x8664 } else { 0x14C };
    b[8..10].copy_from_slice(&machine.to_le_bytes());
    b[0x10..0x18].copy_from_slice(&debugger_ptr(m, t.kernel_base));
    m.write_virt(t.kernel_base + 0x3800, &b);
}

/// An export directory naming `KeBugCheck` and `NtBuildNumber` (0xF000_0000 | build).
fn add_export(m: &mut Machine, t: &Truth, build: u32) {
    let base = t.kernel_base;
    let data_directories = if m.is_x64() { 0x108 } else { 0xF8 };
    let mut dd = [0u8; 8];
    dd[0..4].copy_from_slice(&0x3600u32.to_le_bytes());
    dd[4..8].copy_from_slice(&0x100u32.to_le_bytes());
    m.write_virt(base + data_directories, &dd);
    let mut dir = vec![0u8; 0x100];
    let put = |d: &mut [u8], at: usize, v: u32| d[at..at + 4].copy_from_slice(&v.to_le_bytes());
    put(&mut dir, 0x14, 2); // NumberOfFunctions
    put(&mut dir, 0x18, 2); // NumberOfNames
    put(&mut dir, 0x1C, 0x3640); // AddressOfFunctions
    put(&mut dir, 0x20, 0x3650); // AddressOfNames
    put(&mut dir, 0x24, 0x3660); // AddressOfNameOrdinals
    put(&mut dir, 0x40, 0x1010); // KeBugCheck: code
    put(&mut dir, 0x44, 0x36C0); // NtBuildNumber: data
    put(&mut dir, 0x50, 0x3680);
    put(&mut dir, 0x54, 0x3690);
    dir[0x60..0x64].copy_from_slice(&[0, 0, 1, 0]); // ordinals 0, 1
    dir[0x80..0x8B].copy_from_slice(b"KeBugCheck\0");
    dir[0x90..0x9E].copy_from_slice(b"NtBuildNumber\0");
    put(&mut dir, 0xC0, 0xF000_0000 | build);
    m.write_virt(base + 0x3600, &dir);
}

/// KDBG.NtBuildLab (+0x208) pointing to a build-lab string inside the kernel image.
fn add_build_lab(m: &mut Machine, t: &Truth, lab: &str) {
    let string_va = t.kernel_base + 0x3A00;
    let ptr = debugger_ptr(m, string_va);
    m.write_virt(t.kdbg_va + 0x208, &ptr);
    let mut s = lab.as_bytes().to_vec();
    s.push(0);
    m.write_virt(string_va, &s);
}

fn readings(v: &serde_json::Value) -> Vec<(String, Option<u64>)> {
    v["build_sources"]
        .as_array()
        .expect("build_sources")
        .iter()
        .map(|r| {
            (
                r["source"].as_str().unwrap().to_string(),
                r["build"].as_u64(),
            )
        })
        .collect()
}

/// Every source tried (KUSER only on NT 10.0+), exactly `only` gave `build`.
fn assert_only(v: &serde_json::Value, text: &str, only: &str, build: u64, what: &str) {
    assert_eq!(v["nt"]["build"], build, "{what}: {}", v["nt"]);
    let got = readings(v);
    let names: Vec<&str> = got.iter().map(|(s, _)| s.as_str()).collect();
    let expected: Vec<&str> = SOURCES
        .iter()
        .copied()
        .filter(|s| *s != "kuser-shared-data" || v["nt"]["major"] == 10)
        .collect();
    assert_eq!(names, expected, "{what}: every source tried, in order");
    for (source, b) in &got {
        let want = (source == only).then_some(build);
        assert_eq!(*b, want, "{what}: {source}");
    }
    let row = text
        .lines()
        .find(|l| l.starts_with("Build sources"))
        .unwrap_or_else(|| panic!("{what}: no Build sources row in\n{text}"));
    assert!(
        row.contains(&format!("{only} {build} (used)")),
        "{what}: {row}"
    );
}

#[test]
fn each_build_source_alone_gives_the_build_and_is_named() {
    let dir = scratch("build-sources");
    for (mode, arch) in [(Mode::X64, "x64"), (Mode::Pae, "x86")] {
        let x64 = mode == Mode::X64;
        // None: unknown, and every source says so.
        let (m, _) = machine_without_sources(mode, 6, 1, 7601);
        let image = write(&dir, &format!("{arch}-none.raw"), &m.mem);
        let (v, text) = support::info_json_and_text(&image);
        assert!(v["nt"]["build"].is_null(), "{arch}: {}", v["nt"]);
        assert!(readings(&v).iter().all(|(_, b)| b.is_none()), "{arch}");
        assert!(text.contains("6.1 build unknown"), "{text}");
        assert!(text.contains("kdbg-NtBuildLab none"), "{text}");

        let (m, _) = machine_without_sources(mode, 10, 0, 19041);
        let image = write(&dir, &format!("{arch}-kuser.raw"), &m.mem);
        let (v, text) = support::info_json_and_text(&image);
        assert_only(&v, &text, "kuser-shared-data", 19041, arch);

        let (m, t) = machine_without_sources(mode, 6, 1, 7601);
        let dump = full_dump(&m.mem, x64, t.dtb, 7601, !x64, t.kdbg_va);
        let image = write(&dir, &format!("{arch}-header.dmp"), &dump);
        let (v, text) = support::info_json_and_text(&image);
        assert_only(&v, &text, "crashdump-header", 7601, arch);

        let (mut m, t) = machine_without_sources(mode, 6, 1, 7601);
        add_kd_version_block(&mut m, &t, 7601);
        let image = write(&dir, &format!("{arch}-kdversion.raw"), &m.mem);
        let (v, text) = support::info_json_and_text(&image);
        assert_only(&v, &text, "kd-version-block", 7601, arch);

        let (mut m, t) = machine_without_sources(mode, 6, 1, 7601);
        add_export(&mut m, &t, 7601);
        let image = write(&dir, &format!("{arch}-export.raw"), &m.mem);
        let (v, text) = support::info_json_and_text(&image);
        assert_only(&v, &text, "export-NtBuildNumber", 7601, arch);

        let (mut m, t) = machine_without_sources(mode, 6, 1, 7601);
        add_version_resource_back(&mut m, &t);
        let image = write(&dir, &format!("{arch}-resource.raw"), &m.mem);
        let (v, text) = support::info_json_and_text(&image);
        assert_only(&v, &text, "version-resource", 7601, arch);

        let (mut m, t) = machine_without_sources(mode, 6, 1, 7601);
        add_build_lab(
            &mut m,
            &t,
            "7601.24214.amd64fre.win7sp1_ldr_escrow.180801-1700",
        );
        let image = write(&dir, &format!("{arch}-buildlab.raw"), &m.mem);
        let (v, text) = support::info_json_and_text(&image);
        assert_only(&v, &text, "kdbg-NtBuildLab", 7601, arch);
        // The Windows 7 profile is chosen by the build, not by NT version alone.
        let reason = v["profile"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("build 7601 is within"), "{arch}: {reason}");
    }
}

/// Sources that disagree: the most trusted one wins and a warning names every one.
#[test]
fn disagreeing_build_sources_are_reported() {
    let dir = scratch("build-sources-disagree");
    let (mut m, t) = machine_without_sources(Mode::X64, 6, 1, 7601);
    add_version_resource_back(&mut m, &t);
    add_kd_version_block(&mut m, &t, 7600);
    let image = write(&dir, "disagree.raw", &m.mem);
    let (v, _) = support::info_json_and_text(&image);
    assert_eq!(v["nt"]["build"], 7600);
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("NT build sources disagree: kd-version-block says 7600")
            && warnings.contains("version-resource says 7601"),
        "{warnings}"
    );
}

/// Values that only look like sources are not read as builds: a KdVersionBlock for the wrong
/// machine type, a build-lab pointer outside the kernel, a build-lab string without digits.
#[test]
fn lookalike_sources_give_no_build() {
    let dir = scratch("build-sources-lookalike");
    let (mut m, t) = machine_without_sources(Mode::X64, 6, 1, 7601);
    add_kd_version_block(&mut m, &t, 7601);
    m.write_virt(t.kernel_base + 0x3808, &0x14Cu16.to_le_bytes());
    add_build_lab(&mut m, &t, "win7sp1_rtm.101119-1850");
    let image = write(&dir, "lookalike.raw", &m.mem);
    let (v, _) = support::info_json_and_text(&image);
    assert!(v["nt"]["build"].is_null(), "{}", v["nt"]);
    assert!(readings(&v).iter().all(|(_, b)| b.is_none()));
}

/// A kernel whose header page is smeared (`MZ` survives, the PE headers do not parse) is still
/// found, by the CodeView record in its first pages; `info` says the header was damaged, the
/// size is unknown, and the build still comes from the image (its version resource).
#[test]
fn a_kernel_with_a_damaged_header_is_found_by_its_codeview_record() {
    let dir = scratch("build-sources-damaged-header");
    for (mode, arch, pdb) in [
        (Mode::X64, "x64", "ntkrnlmp.pdb"),
        (Mode::Pae, "x86", "ntkrpamp.pdb"),
    ] {
        let (mut m, t) = windows(mode, 4 * MIB, 6, 1, 7601);
        m.write_virt(t.kernel_base + 0x3C, &[0xCC; 0x3C4]);
        let image = write(&dir, &format!("{arch}-smeared.raw"), &m.mem);
        let (v, text) = support::info_json_and_text(&image);
        assert_eq!(v["kernel_base"], format!("{:#x}", t.kernel_base), "{arch}");
        assert_eq!(v["kernel_pdb"]["name"], pdb, "{arch}");
        assert_eq!(v["kernel_pdb"]["guid"], t.guid, "{arch}");
        assert_eq!(v["nt"]["build"], 7601, "{arch}");
        let warnings = v["warnings"].to_string();
        assert!(warnings.contains("damaged PE header"), "{arch}: {warnings}");
        assert!(text.contains("damaged PE header"), "{arch}: {text}");
        // The header intact: no such warning.
        let (m, _) = windows(mode, 4 * MIB, 6, 1, 7601);
        let image = write(&dir, &format!("{arch}-intact.raw"), &m.mem);
        let (v, _) = support::info_json_and_text(&image);
        assert!(!v["warnings"].to_string().contains("damaged"), "{arch}");
    }
    // `MZ` and a smeared header but no kernel CodeView record: no kernel, said plainly.
    let (mut m, t) = windows(Mode::X64, 4 * MIB, 6, 1, 7601);
    m.write_virt(t.kernel_base + 0x3C, &[0xCC; 0x3C4]);
    m.write_virt(t.kernel_base + 0x1100, b"XXXX");
    let image = write(&dir, "no-codeview.raw", &m.mem);
    let (v, _) = support::info_json_and_text(&image);
    assert!(v["kernel_base"].is_null(), "{}", v["kernel_base"]);
    assert!(
        v["warnings"].to_string().contains("kernel image"),
        "{}",
        v["warnings"]
    );
}
