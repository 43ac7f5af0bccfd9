//! `netcarve info` end to end (the built binary) on every container and paging mode, and every
//! bad input the foundation must refuse with exit code 2 and a one-line error naming the file.
mod support;

use netcarve::synth::builder::lime_range_header;
use std::path::Path;
use support::containers::{bitmap_dump, elf_core, full_dump, header, lime, vmware};
use support::machine::{windows, Mode, Truth};
use support::{scratch, write};

const MIB: u64 = 1 << 20;

/// The identity facts that must agree whatever the container.
fn identity(v: &serde_json::Value) -> (String, String, String, u64, String, String) {
    (
        v["dtb"].as_str().unwrap().to_string(),
        v["kernel_base"].as_str().unwrap_or("none").to_string(),
        v["kernel_pdb"]["guid"]
            .as_str()
            .unwrap_or("none")
            .to_string(),
        v["nt"]["build"].as_u64().unwrap(),
        v["arch"].as_str().unwrap().to_string(),
        v["paging"].as_str().unwrap().to_string(),
    )
}

fn expect(t: &Truth, arch: &str, paging: &str) -> (String, String, String, u64, String, String) {
    (
        format!("{:#x}", t.dtb),
        format!("{:#x}", t.kernel_base),
        t.guid.clone(),
        t.build as u64,
        arch.to_string(),
        paging.to_string(),
    )
}

#[test]
fn x64_same_machine_in_every_container() {
    let dir = scratch("info_x64");
    let (m, t) = windows(Mode::X64, 4 * MIB, 10, 0, 19041);
    let want = expect(&t, "x64", "x64");
    let raw = write(&dir, "mem.raw", &m.mem);
    let full = write(
        &dir,
        "full.dmp",
        &full_dump(&m.mem, true, t.dtb, t.build, false, t.kdbg_va),
    );
    let bitmap = write(
        &dir,
        "bitmap.dmp",
        &bitmap_dump(&m.mem, true, t.dtb, t.build, t.kdbg_va),
    );
    let elf = write(&dir, "qemu.elf", &elf_core(&m.mem));
    let lime_img = write(&dir, "mem.lime", &lime(&m.mem));
    let (vmem, vmss) = vmware(&m.mem);
    let vmem_path = write(&dir, "vm.vmem", &vmem);
    write(&dir, "vm.vmss", &vmss);

    let cases = [
        (&raw, "raw", "self-map-scan", 1u64),
        (&full, "crashdump-full", "crashdump-header", 2),
        (&bitmap, "crashdump-bitmap", "crashdump-header", 0),
        (&elf, "elf", "self-map-scan", 2),
        (&lime_img, "lime", "self-map-scan", 2),
        (&vmem_path, "vmware", "self-map-scan", 2),
    ];
    for (path, container, dtb_source, ranges) in cases {
        let v = support::info_json(path, &[]);
        assert_eq!(identity(&v), want, "{container}");
        assert_eq!(v["container"], container);
        assert_eq!(v["dtb_source"], dtb_source, "{container}");
        assert_eq!(v["kernel_pdb"]["name"], "ntkrnlmp.pdb");
        assert_eq!(v["kernel_pdb"]["age"], 3);
        assert_eq!(
            v["kernel_pdb"]["symbol_path"],
            format!("ntkrnlmp.pdb/{}3/ntkrnlmp.pdb", t.guid)
        );
        assert_eq!(v["nt"]["major"], 10);
        assert_eq!(v["system_time_raw"], t.system_time);
        assert_eq!(v["system_time"], "2024-05-01T12:34:56.7890123Z");
        assert_eq!(v["boot_time_raw"], t.system_time - t.interrupt_time);
        assert_eq!(v["timezone_bias_minutes"], t.bias_minutes);
        if ranges > 0 {
            assert_eq!(v["physical"]["ranges"], ranges, "{container}");
        }
        assert_eq!(v["profile"]["name"], "win10-19041-x64", "{container}");
    }
    // Dumps, ELF, LiME and VMware leave the hole out: present size = memory minus page 0 and the hole.
    let v = support::info_json(&full, &["--hash"]);
    assert_eq!(v["physical"]["size"], 4 * MIB - 0x1000 - 0x60000);
    assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
    // --dtb overrides and says so.
    let v = support::info_json(&raw, &["--dtb", &format!("{:#x}", t.dtb)]);
    assert_eq!(v["dtb_source"], "user");
    assert_eq!(identity(&v), want);
}

#[test]
fn x64_randomised_self_map_slot_and_low_stub() {
    let dir = scratch("info_x64_slot");
    let (mut m, t) = windows(Mode::X64, 4 * MIB, 10, 0, 22000);
    // Move the self-reference from 0x1ED to a randomised slot, as on Windows 10 1607+.
    m.set_entry(t.dtb, 0x1ED, 0);
    m.set_entry(t.dtb, 0x1A3, t.dtb | 0x63);
    let raw = write(&dir, "slot.raw", &m.mem);
    let v = support::info_json(&raw, &[]);
    assert_eq!(v["dtb"], format!("{:#x}", t.dtb));
    assert_eq!(v["dtb_source"], "self-map-scan");
    // A PROCESSOR_START_BLOCK in low memory names the DTB first.
    let stub = 0x5000usize;
    m.mem[stub..stub + 8].copy_from_slice(&0x0000_0001_0006_10E9u64.to_le_bytes());
    m.mem[stub + 0x70..stub + 0x78].copy_from_slice(&0xFFFF_F800_1220_1000u64.to_le_bytes());
    m.mem[stub + 0xA0..stub + 0xA8].copy_from_slice(&t.dtb.to_le_bytes());
    let raw = write(&dir, "stub.raw", &m.mem);
    let v = support::info_json(&raw, &[]);
    assert_eq!(v["dtb_source"], "low-stub");
    assert_eq!(v["nt"]["build"], 22000);
}

#[test]
fn crash_dump_with_a_wrong_header_dtb_falls_back_to_scanning() {
    let dir = scratch("info_bad_header_dtb");
    let (m, t) = windows(Mode::X64, 4 * MIB, 10, 0, 19041);
    let p = write(
        &dir,
        "wrong.dmp",
        &full_dump(&m.mem, true, 0x7000, t.build, false, 0),
    );
    let v = support::info_json(&p, &[]);
    assert_eq!(v["dtb"], format!("{:#x}", t.dtb));
    assert_eq!(v["dtb_source"], "self-map-scan");
    assert!(v["warnings"]
        .to_string()
        .contains("does not map KUSER_SHARED_DATA"));
    assert_eq!(v["kernel_base"], format!("{:#x}", t.kernel_base));
}

#[test]
fn x86_pae_in_raw_and_32bit_dumps() {
    let dir = scratch("info_pae");
    // Windows 7 SP1: no NtBuildNumber in KUSER; the build comes from the dump header or the
    // kernel's version resource.
    let (m, t) = windows(Mode::Pae, 4 * MIB, 6, 1, 7601);
    let want = expect(&t, "x86", "pae");
    let raw = write(&dir, "pae.raw", &m.mem);
    let full = write(
        &dir,
        "pae.dmp",
        &full_dump(&m.mem, false, t.dtb, 7601, true, t.kdbg_va),
    );
    let bitmap = write(
        &dir,
        "pae_bitmap.dmp",
        &bitmap_dump(&m.mem, false, t.dtb, 7601, t.kdbg_va),
    );
    for (p, container) in [
        (&raw, "raw"),
        (&full, "crashdump-full"),
        (&bitmap, "crashdump-bitmap"),
    ] {
        let v = support::info_json(p, &[]);
        assert_eq!(identity(&v), want, "{container}");
        assert_eq!(v["kernel_pdb"]["name"], "ntkrpamp.pdb");
        assert_eq!(v["nt"]["minor"], 1);
        // Either a profile with its reason, or null with the reason there is none.
        if v["profile"].is_null() {
            assert!(v["profile_reason"]
                .as_str()
                .is_some_and(|r| r.contains("7601")));
        } else {
            assert!(v["profile"]["reason"]
                .as_str()
                .is_some_and(|r| !r.is_empty()));
        }
    }
}

#[test]
fn x86_non_pae_raw_and_dump() {
    let dir = scratch("info_nonpae");
    let (m, t) = windows(Mode::NonPae, 4 * MIB, 6, 0, 6002);
    let want = expect(&t, "x86", "nonpae");
    let raw = write(&dir, "nonpae.raw", &m.mem);
    let full = write(
        &dir,
        "nonpae.dmp",
        &full_dump(&m.mem, false, t.dtb, 6002, false, 0),
    );
    for p in [&raw, &full] {
        let v = support::info_json(p, &[]);
        assert_eq!(identity(&v), want);
    }
}

#[test]
fn vmem_without_snapshot_is_read_raw_with_a_warning() {
    let dir = scratch("info_vmem_alone");
    let (m, t) = windows(Mode::X64, 4 * MIB, 10, 0, 19041);
    // A .vmem of a small VM has no hole to skip: the file is the memory 1:1.
    let p = write(&dir, "alone.vmem", &m.mem);
    let v = support::info_json(&p, &[]);
    assert_eq!(v["container"], "vmware");
    assert_eq!(v["dtb"], format!("{:#x}", t.dtb));
    assert!(v["warnings"].to_string().contains("no .vmss/.vmsn"));
}

#[test]
fn table_output_names_every_fact() {
    let dir = scratch("info_table");
    let (m, t) = windows(Mode::X64, 4 * MIB, 10, 0, 19041);
    let raw = write(&dir, "mem.raw", &m.mem);
    let out = support::command().arg("info").arg(&raw).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "raw",
        "x64 (x64 paging)",
        &format!("{:#x} (self-map-scan)", t.dtb),
        &format!("{:#x}", t.kernel_base),
        &format!("ntkrnlmp.pdb/{}3/ntkrnlmp.pdb", t.guid),
        "10.0 build 19041",
        "2024-05-01T12:34:56.7890123Z",
        "-120 minutes",
        "win10-19041-x64",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

/// Runs info on `path`, expecting exit code 2 and one stderr line naming the file and `what`.
fn refused(path: &Path, what: &str) {
    refused_naming(path, path, what)
}

/// As `refused`, where the error is in a companion file (`named`) of the image.
fn refused_naming(path: &Path, named: &Path, what: &str) {
    let out = support::command().arg("info").arg(path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}: {stderr}", path.display());
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains(&named.display().to_string()),
        "does not name the file: {stderr}"
    );
    assert!(
        stderr.to_lowercase().contains(&what.to_lowercase()),
        "expected {what:?} in {stderr}"
    );
}

#[test]
fn bad_inputs_exit_2_with_one_line_naming_the_file() {
    let dir = scratch("info_bad");
    let (m, t) = windows(Mode::X64, 4 * MIB, 10, 0, 19041);
    refused(&dir.join("missing.raw"), "no such file");
    refused(&dir, "directory");
    refused(&write(&dir, "empty.raw", &[]), "empty");
    refused(&write(&dir, "tiny.bin", b"hello"), "unknown format");
    refused(
        &write(&dir, "trunc64.dmp", &b"PAGEDU64".repeat(10)),
        "truncated",
    );
    refused(&write(&dir, "trunc32.dmp", b"PAGEDUMP\0\0"), "truncated");
    refused(&write(&dir, "trunc_sig.dmp", b"PAGE"), "truncated");

    let full = full_dump(&m.mem, true, t.dtb, t.build, false, 0);
    refused(
        &write(&dir, "cut.dmp", &full[..full.len() - 0x3000]),
        "truncated",
    );
    let mut no_runs = full.clone();
    no_runs[0x88..0x8C].copy_from_slice(&u32::MAX.to_le_bytes());
    refused(
        &write(&dir, "noruns.dmp", &no_runs),
        "NumberOfRuns 0xffffffff",
    );
    let mut filler_runs = full.clone();
    filler_runs[0x88..0x8C].copy_from_slice(b"PAGE");
    refused(
        &write(&dir, "fillerruns.dmp", &filler_runs),
        "no usable run list",
    );
    let mut huge_run = full.clone();
    huge_run[0xA0..0xA8].copy_from_slice(&u64::MAX.to_le_bytes());
    refused(&write(&dir, "hugerun.dmp", &huge_run), "range");
    let mut arm = full.clone();
    arm[0x30..0x34].copy_from_slice(&0xAA64u32.to_le_bytes());
    refused(&write(&dir, "arm64.dmp", &arm), "unsupported architecture");
    let mut triage = header(true, t.dtb, t.build, false, 0, 4);
    triage.extend(vec![0u8; 0x4000]);
    refused(&write(&dir, "triage.dmp", &triage), "triage");
    let mut rdmp_missing = header(true, t.dtb, t.build, false, 0, 0xA);
    rdmp_missing.extend(vec![0u8; 0x1000]);
    refused(&write(&dir, "rdmp.dmp", &rdmp_missing), "RDMP");

    let bitmap = bitmap_dump(&m.mem, true, t.dtb, t.build, 0);
    refused(
        &write(&dir, "bitmap_cut.dmp", &bitmap[..bitmap.len() - 0x2000]),
        "truncated",
    );
    let mut bitmap_huge = bitmap.clone();
    bitmap_huge[0x2030..0x2038].copy_from_slice(&(1u64 << 40).to_le_bytes());
    refused(
        &write(&dir, "bitmap_huge.dmp", &bitmap_huge),
        "past the end",
    );
    let mut no_sdmp = bitmap.clone();
    no_sdmp[0x2000..0x2004].copy_from_slice(b"XXXX");
    refused(&write(&dir, "bitmap_nosig.dmp", &no_sdmp), "SDMP");

    let mut lime_bad = lime_range_header(0x2000, 0x1000);
    lime_bad.extend(vec![0u8; 0x1000]);
    refused(&write(&dir, "backwards.lime", &lime_bad), "below its start");
    let lime_img = lime(&m.mem);
    refused(
        &write(&dir, "cut.lime", &lime_img[..lime_img.len() - 10]),
        "past the end",
    );
    let mut lime_trailer = lime_img.clone();
    lime_trailer.extend([0x45, 0x4D, 0x69, 0x4C, 1, 0]);
    refused(&write(&dir, "trailer.lime", &lime_trailer), "truncated");

    let elf = elf_core(&m.mem);
    refused(
        &write(&dir, "cut.elf", &elf[..elf.len() - 0x1000]),
        "past the end",
    );
    refused(&write(&dir, "hdr.elf", &elf[..40]), "truncated ELF header");

    let (vmem, mut vmss) = vmware(&m.mem);
    let vmem_path = write(&dir, "broken.vmem", &vmem);
    vmss.truncate(100);
    let vmss_path = write(&dir, "broken.vmss", &vmss);
    refused_naming(&vmem_path, &vmss_path, "past the end");

    // Memory that holds no Windows kernel at all.
    refused(
        &write(&dir, "zeros.raw", &vec![0u8; MIB as usize]),
        "directory table base",
    );
}
