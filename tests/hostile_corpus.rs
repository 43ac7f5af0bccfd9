//! Malformed images and captures, run through the real binary: evidence arrives damaged
//! (truncated copies, overwritten headers, wrong files), and the tool must then fail cleanly or
//! say what it could not read, never crash, hang or report garbage as endpoints.
//!
//! Every case expects one of two outcomes, and never a panic or a hang:
//! - `Error`: exit code 2 and exactly one stderr line that names the file;
//! - `Partial`: exit code 0 (or 1 for `compare`, which reports discrepancies) with output, and
//!   the problem visible as a warning.
//!
//! `Either` is used where both are honest answers (e.g. a header field that can be read around).
//! Images are built by hand (`tests/support`) or by mutating what `netcarve synth` writes. Library-
//! level mutation tests live in `foundation_hostile.rs` and `compare_capture.rs`; fuzz findings in
//! `hostile_fuzz_replay.rs`.
mod support;

use netcarve::synth::builder::{le32, le64, lime_range_header, PoolHeader};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use support::containers::{bitmap_dump, elf_core, full_dump, lime};
use support::machine::{windows, Machine, Mode, Truth};
use support::{read_json, watch as run, Rng, Watched as Outcome};

#[derive(Copy, Clone, Debug, PartialEq)]
enum Expect {
    Error,
    Partial,
    Either,
}

/// The corpus folder, made once and shared by the cases (each writes files of its own names).
fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| support::scratch("hostile_corpus"))
}

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    support::write(dir(), name, bytes)
}

/// Checks one outcome against the expectation; `what` names the case in failures.
fn check(what: &str, path: &Path, o: &Outcome, expect: Expect, ok_codes: &[i32]) {
    assert!(
        !o.stderr.contains("panicked"),
        "{what}: panicked\n{}",
        o.stderr
    );
    let is_error = o.code == 2;
    match expect {
        Expect::Error => assert!(is_error, "{what}: expected exit 2, got {}", o.code),
        Expect::Partial => assert!(
            ok_codes.contains(&o.code),
            "{what}: expected a result, got exit {}: {}",
            o.code,
            o.stderr
        ),
        Expect::Either => assert!(
            is_error || ok_codes.contains(&o.code),
            "{what}: exit {}",
            o.code
        ),
    }
    if is_error {
        let lines: Vec<&str> = o.stderr.trim().lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{what}: error is not one line: {}",
            o.stderr
        );
        // The image, or the file beside it that is at fault (a VMware `.vmss` has the same stem).
        let name = format!("{}.", path.file_stem().unwrap().to_string_lossy());
        assert!(
            lines[0].contains(&name),
            "{what}: error does not name {name}: {}",
            lines[0]
        );
    } else {
        assert!(
            !o.stdout.is_empty(),
            "{what}: exit {} but no output",
            o.code
        );
    }
}

/// `info` and `scan` (JSON) on one image; returns the scan JSON when there was one.
fn image_case(what: &str, path: &Path, expect: Expect, extra: &[&str]) -> Option<Value> {
    let p = path.to_str().unwrap();
    let mut info = vec!["info", p, "--format", "json"];
    info.extend_from_slice(extra);
    let o = run(&info);
    check(&format!("{what} (info)"), path, &o, expect, &[0]);
    let mut scan = vec!["scan", p, "--format", "json", "--quiet"];
    scan.extend_from_slice(extra);
    let o = run(&scan);
    check(&format!("{what} (scan)"), path, &o, expect, &[0]);
    (o.code == 0).then(|| serde_json::from_str(&o.stdout).expect("scan JSON"))
}

fn warnings(scan: &Value) -> Vec<String> {
    scan["image"]["warnings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|w| w.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A small hand-built x64 Windows machine (KUSER, kernel PE, KDBG) past the legacy hole.
fn machine() -> &'static (Machine, Truth) {
    static M: OnceLock<(Machine, Truth)> = OnceLock::new();
    M.get_or_init(|| windows(Mode::X64, 0x14_0000, 10, 0, 19041))
}

/// A `netcarve synth` win7-x64 raw image (default size) with its truth, written once.
fn synth_raw() -> &'static (PathBuf, Value) {
    static S: OnceLock<(PathBuf, Value)> = OnceLock::new();
    S.get_or_init(|| {
        let out = dir().join("synth");
        let image = support::synth(&out, &["--profile", "win7-x64", "--seed", "7"]);
        (image, read_json(&out.join("truth.json")))
    })
}

fn hex(v: &Value) -> u64 {
    match v {
        Value::String(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap(),
        Value::Number(n) => n.as_u64().unwrap(),
        _ => panic!("not a number: {v}"),
    }
}

// ---- containers -------------------------------------------------------------------------------

#[test]
fn c01_empty_file() {
    image_case("empty", &file("empty.raw", b""), Expect::Error, &[]);
}

#[test]
fn c02_directory() {
    let d = dir().join("a_directory.raw");
    std::fs::create_dir_all(&d).unwrap();
    image_case("directory", &d, Expect::Error, &[]);
}

#[test]
fn c02b_named_pipe_and_device() {
    // A FIFO with no writer must not block the tool, and a device is not an image file.
    let fifo = dir().join("a_fifo.raw");
    let _ = std::fs::remove_file(&fifo);
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: plain syscall with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    image_case("named pipe", &fifo, Expect::Error, &[]);
    let o = run(&["info", "/dev/null"]);
    assert_eq!(o.code, 2, "/dev/null: {}", o.stderr);
    assert_eq!(
        o.stderr.trim(),
        "netcarve: /dev/null: is a character device, not a regular file: copy the memory image to a file first"
    );
}

#[test]
fn c03_one_byte() {
    image_case("1 byte", &file("one.raw", b"\x00"), Expect::Error, &[]);
}

#[test]
fn c04_unknown_magic_small() {
    image_case(
        "unknown magic",
        &file("magic.bin", b"XYZW not a memory image at all\n"),
        Expect::Error,
        &[],
    );
}

#[test]
fn c05_truncated_crash_header() {
    let (m, t) = machine();
    let full = full_dump(&m.mem, true, t.dtb, t.build, false, t.kdbg_va);
    for len in [4usize, 8, 0x90, 0xFFF, 0x1FFF] {
        image_case(
            &format!("crash header cut at {len:#x}"),
            &file(&format!("trunc{len}.dmp"), &full[..len]),
            Expect::Error,
            &[],
        );
    }
}

#[test]
fn c06_number_of_runs_all_ones() {
    let (m, t) = machine();
    let mut full = full_dump(&m.mem, true, t.dtb, t.build, false, t.kdbg_va);
    le32(&mut full, 0x88, 0xFFFF_FFFF);
    image_case(
        "NumberOfRuns 0xFFFFFFFF",
        &file("runs_ffffffff.dmp", &full),
        Expect::Either,
        &[],
    );
}

#[test]
fn c07_runs_past_end_of_file() {
    let (m, t) = machine();
    let mut full = full_dump(&m.mem, true, t.dtb, t.build, false, t.kdbg_va);
    // Second run: 2^40 pages.
    le64(&mut full, 0x98 + 16 + 8, 1 << 40);
    image_case(
        "run past EOF",
        &file("run_past_eof.dmp", &full),
        Expect::Error,
        &[],
    );
    let mut cut = full_dump(&m.mem, true, t.dtb, t.build, false, t.kdbg_va);
    cut.truncate(cut.len() - 0x3000);
    image_case(
        "file cut inside the last run",
        &file("cut_last_run.dmp", &cut),
        Expect::Either,
        &[],
    );
}

#[test]
fn c08_overlapping_runs() {
    let (m, t) = machine();
    let mut full = full_dump(&m.mem, true, t.dtb, t.build, false, t.kdbg_va);
    // Second run starts inside the first (base page 0x10 instead of 0x100).
    le64(&mut full, 0x98 + 16, 0x10);
    let scan = image_case(
        "overlapping runs",
        &file("overlap.dmp", &full),
        Expect::Either,
        &[],
    );
    if let Some(scan) = scan {
        assert!(
            warnings(&scan).iter().any(|w| w.contains("overlap")),
            "no overlap warning: {:?}",
            warnings(&scan)
        );
    }
}

#[test]
fn c09_bitmap_longer_than_file() {
    let (m, t) = machine();
    let mut dump = bitmap_dump(&m.mem, true, t.dtb, t.build, t.kdbg_va);
    // Pages (bitmap bits) at SDMP+0x30: claim 2^40 pages, a bitmap of 128 GiB.
    le64(&mut dump, 0x2000 + 0x30, 1 << 40);
    image_case(
        "bitmap longer than file",
        &file("bitmap_long.dmp", &dump),
        Expect::Error,
        &[],
    );
}

#[test]
fn c10_bitmap_claims_more_pages_than_present() {
    let (m, t) = machine();
    let mut dump = bitmap_dump(&m.mem, true, t.dtb, t.build, t.kdbg_va);
    let bitmap = 0x2000 + 0x38;
    let pages = (m.mem.len() / 0x1000) / 8;
    // Every bit set: more present pages than the file holds.
    for b in &mut dump[bitmap..bitmap + pages] {
        *b = 0xFF;
    }
    image_case(
        "bitmap claims more pages than present",
        &file("bitmap_more.dmp", &dump),
        Expect::Either,
        &[],
    );
}

#[test]
fn c11_elf_overlapping_pt_loads() {
    let (m, _) = machine();
    let mut elf = elf_core(&m.mem);
    // Second PT_LOAD (header 2) starts at physical 0x2000, inside the first.
    le64(&mut elf, 64 + 56 * 2 + 24, 0x2000);
    image_case(
        "ELF overlapping PT_LOADs",
        &file("overlap.elf", &elf),
        Expect::Either,
        &[],
    );
}

#[test]
fn c12_elf_truncated_pt_load() {
    let (m, _) = machine();
    let mut elf = elf_core(&m.mem);
    elf.truncate(elf.len() - 0x5000);
    image_case(
        "ELF truncated PT_LOAD",
        &file("trunc_load.elf", &elf),
        Expect::Either,
        &[],
    );
    let mut elf = elf_core(&m.mem);
    // 0xFFFF program headers: the table runs far past the end of the file.
    elf[56] = 0xFF;
    elf[57] = 0xFF;
    image_case(
        "ELF program header table past EOF",
        &file("phnum.elf", &elf),
        Expect::Either,
        &[],
    );
    let elf = elf_core(&m.mem);
    image_case(
        "ELF cut inside its headers",
        &file("trunc_hdr.elf", &elf[..100]),
        Expect::Error,
        &[],
    );
}

#[test]
fn c13_lime_end_before_start() {
    let mut image = lime_range_header(0x10_0000, 0x0F_FFFF - 0x1000);
    image.extend(vec![0u8; 0x2000]);
    image_case(
        "LiME end < start",
        &file("backwards.lime", &image),
        Expect::Error,
        &[],
    );
}

#[test]
fn c14_lime_range_past_end_of_file() {
    let (m, _) = machine();
    let mut image = lime(&m.mem);
    image.truncate(image.len() - 0x1800);
    image_case(
        "LiME last range cut",
        &file("cut.lime", &image),
        Expect::Either,
        &[],
    );
}

#[test]
fn c29_vmware_metadata_damaged() {
    let (m, _) = machine();
    let (vmem, vmss) = support::containers::vmware(&m.mem);
    for (i, meta) in [
        vmss[..vmss.len() / 2].to_vec(),
        vmss[..12].to_vec(),
        {
            // Group count 0xFFFFFFFF: a group table far past the end of the file.
            let mut v = vmss.clone();
            le32(&mut v, 8, 0xFFFF_FFFF);
            v
        },
        b"not a vmss".to_vec(),
    ]
    .into_iter()
    .enumerate()
    {
        let vmem_path = file(&format!("vm{i}.vmem"), &vmem);
        file(&format!("vm{i}.vmss"), &meta);
        image_case(
            &format!("vmem with damaged .vmss #{i}"),
            &vmem_path,
            Expect::Either,
            &[],
        );
    }
}

#[test]
fn c30_x86_crash_dump_with_hostile_runs() {
    let (m, t) = windows(Mode::Pae, 0x14_0000, 6, 1, 7601);
    let mut full = full_dump(&m.mem, false, t.dtb, t.build, true, t.kdbg_va);
    // 32-bit header: NumberOfRuns at 0x64, NumberOfPages at 0x68.
    le32(&mut full, 0x64, 0xFFFF_FFFF);
    le32(&mut full, 0x68, 0xFFFF_FFFF);
    image_case(
        "x86 dump, NumberOfRuns and NumberOfPages 0xFFFFFFFF",
        &file("runs32.dmp", &full),
        Expect::Either,
        &[],
    );
}

// ---- page tables ------------------------------------------------------------------------------

/// x64 tables where every entry of every level points back at the one table (PML4 = PDPT = PD =
/// PT): a walk that follows entries blindly never ends.
#[test]
fn c15_page_tables_loop_at_every_level() {
    let mut mem = vec![0u8; 0x40_0000];
    let table = 0x1000u64;
    for i in 0..512 {
        le64(&mut mem, (table + i * 8) as usize, table | 0x63);
    }
    let path = file("loop.raw", &mem);
    let o = run(&["info", path.to_str().unwrap(), "--dtb", "0x1000"]);
    check(
        "looping tables (info --dtb)",
        &path,
        &o,
        Expect::Either,
        &[0],
    );
    image_case(
        "looping tables",
        &path,
        Expect::Either,
        &["--dtb", "0x1000"],
    );
    image_case("looping tables (discovery)", &path, Expect::Either, &[]);
}

#[test]
fn c16_entries_point_beyond_physical_memory() {
    let (m, t) = machine();
    let mut mem = m.mem.clone();
    let pml4 = t.dtb as usize;
    // Every kernel-half PML4 entry except the self-map points at 1 TiB.
    for i in 256..512 {
        if i != 0x1ED {
            le64(&mut mem, pml4 + i * 8, (1u64 << 40) | 0x63);
        }
    }
    image_case(
        "entries beyond physical memory",
        &file("beyond.raw", &mem),
        Expect::Either,
        &[],
    );
}

#[test]
fn c17_pointer_chains_into_unmapped_memory() {
    let (raw, truth) = synth_raw();
    let mut mem = std::fs::read(raw).unwrap();
    // The owner pointer and the first pointer of the local-address chain of each kind, as the
    // profile the scan uses places them; both now lead to an unmapped kernel address.
    // `_INETAF` stays readable, so the family (and with it the object) can still be decoded.
    let p = netcarve::profile::by_name("win7-x64").unwrap();
    let t = &p.tcpip;
    let tw = t.time_wait.as_ref().unwrap();
    let at = |f: &netcarve::profile::Field, base: u64| (base + f.off().unwrap()) as usize;
    let pointers = |tag: &str| -> Vec<usize> {
        match tag {
            "TcpE" => vec![
                at(&t.tcp_endpoint.owner, 0),
                at(&t.tcp_endpoint.addr_info, 0),
            ],
            "TcpL" => vec![
                at(&t.tcp_listener.owner, 0),
                at(&t.tcp_listener.local_addr, 0),
            ],
            "UdpA" => vec![
                at(&t.udp_endpoint.owner, 0),
                at(&t.udp_endpoint.local_addr, 0),
            ],
            "TcTW" => vec![at(&tw.local_addr, tw.body_offset.get())],
            _ => vec![],
        }
    };
    let header = p.arch.pool_header_size() as usize;
    let mut patched = 0;
    for e in truth["endpoints"].as_array().unwrap() {
        let body = hex(&e["physical_offset"]) as usize + header;
        for off in pointers(e["tag"].as_str().unwrap()) {
            le64(&mut mem, body + off, 0xFFFF_FA80_DEAD_0000);
            patched += 1;
        }
    }
    assert!(patched > 0);
    let scan = image_case(
        "pointers into unmapped memory",
        &file("unmapped.raw", &mem),
        Expect::Partial,
        &["--profile", "win7-x64"],
    )
    .unwrap();
    // Partial records, not silence: the objects are still reported, without owners and with
    // their unreadable addresses flagged.
    let endpoints = scan["endpoints"].as_array().unwrap();
    assert!(!endpoints.is_empty(), "every object lost");
    assert!(endpoints.iter().all(|e| e["pid"].is_null()));
    let flagged = |flag: &str| {
        endpoints
            .iter()
            .filter(|e| e["flags"].as_array().unwrap().iter().any(|f| f == flag))
            .count()
    };
    assert!(flagged("no_owner") > 0);
    assert!(flagged("local_addr_unreadable") > 0);
}

#[test]
fn c18_objects_at_the_very_end_of_the_image() {
    let (raw, truth) = synth_raw();
    let mem = std::fs::read(raw).unwrap();
    // Cut the image right after the header of the last planted object, then 16 and 64 bytes in.
    let last = truth["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| hex(&e["physical_offset"]) as usize)
        .max()
        .unwrap();
    for extra in [8usize, 16, 64] {
        let cut = &mem[..(last + extra).min(mem.len())];
        image_case(
            &format!("object cut {extra} bytes in"),
            &file(&format!("end{extra}.raw"), cut),
            Expect::Partial,
            &["--profile", "win7-x64"],
        );
    }
    // And a header in the last 16 bytes of an otherwise intact image.
    let mut tail = mem.clone();
    let n = tail.len();
    tail[n - 16..n].copy_from_slice(&flood_header());
    image_case(
        "pool header in the last 16 bytes",
        &file("end_header.raw", &tail),
        Expect::Partial,
        &["--profile", "win7-x64"],
    );
}

/// An x64 pool header that passes every header check: an allocated non-paged `TcpE` block of
/// 0x300 bytes.
fn flood_header() -> Vec<u8> {
    PoolHeader::new(*b"TcpE", 0x30).encode(netcarve::profile::Arch::X64)
}

/// `TcpE` with a plausible non-paged pool header every 16 bytes of every free page: hundreds of
/// thousands of candidates; the scan must stay fast and must not report them as endpoints.
#[test]
fn c19_tcpe_every_16_bytes() {
    let (raw, truth) = synth_raw();
    let mut mem = std::fs::read(raw).unwrap();
    let header = flood_header();
    let mut flooded = 0;
    for page in mem.chunks_exact_mut(0x1000) {
        if page.iter().all(|&b| b == 0) {
            for slot in page.chunks_exact_mut(16) {
                slot.copy_from_slice(&header);
            }
            flooded += 1;
        }
    }
    assert!(flooded > 100, "only {flooded} free pages");
    let path = file("flood.raw", &mem);
    let o = run(&[
        "scan",
        path.to_str().unwrap(),
        "--format",
        "json",
        "--quiet",
    ]);
    check("TcpE flood", &path, &o, Expect::Partial, &[0]);
    assert!(
        o.elapsed < Duration::from_secs(60),
        "flood took {:?}",
        o.elapsed
    );
    // Every flooded header passes the header checks, so a scan that kept its candidates until
    // decoding would need about one byte of heap per image byte; decoding each as it is found and
    // dropping the invalid ones keeps the heap independent of the image.
    let image_kib = mem.len() as u64 / 1024;
    assert!(
        o.peak_anon_kib < 16 * 1024,
        "flood: heap peaked at {} KiB for a {image_kib} KiB image",
        o.peak_anon_kib
    );
    eprintln!(
        "flood: {} KiB image, heap peak {} KiB, {:?}",
        image_kib, o.peak_anon_kib, o.elapsed
    );
    let scan: Value = serde_json::from_str(&o.stdout).unwrap();
    let planted = truth["endpoints"].as_array().unwrap().len();
    let found = scan["endpoints"].as_array().unwrap().len();
    assert!(
        found <= planted + 8,
        "{found} rows from a flood (planted {planted}): garbage reported as endpoints"
    );
    // A flood with no kernel at all: a clean error, quickly.
    let pure: Vec<u8> = header.iter().copied().cycle().take(4 << 20).collect();
    let o = run(&[
        "scan",
        file("pure_flood.raw", &pure).to_str().unwrap(),
        "--format",
        "json",
    ]);
    check(
        "pure flood",
        &dir().join("pure_flood.raw"),
        &o,
        Expect::Either,
        &[0],
    );
    assert!(o.elapsed < Duration::from_secs(60));
}

#[test]
fn c20_random_noise_of_several_sizes() {
    let mut rng = Rng::new(7);
    for (i, size) in [0x1000usize, 0x1001, 0x10_0000, 0x40_0000 + 7]
        .into_iter()
        .enumerate()
    {
        let mut noise = vec![0u8; size];
        rng.fill(&mut noise);
        image_case(
            &format!("noise {size:#x}"),
            &file(&format!("noise{i}.raw"), &noise),
            Expect::Either,
            &[],
        );
        // The same noise read as a VMware .vmem without metadata, and with a forced profile.
        image_case(
            &format!("noise {size:#x} as vmem"),
            &file(&format!("noise{i}.vmem"), &noise),
            Expect::Either,
            &["--dtb", "0x1000"],
        );
    }
}

#[test]
fn c21_crash_dump_with_a_bad_dtb() {
    let (m, t) = machine();
    let full = full_dump(&m.mem, true, 0xFFFF_FFFF_F000, t.build, false, t.kdbg_va);
    let scan = image_case(
        "crash dump DTB outside memory",
        &file("bad_dtb.dmp", &full),
        Expect::Either,
        &[],
    );
    if let Some(scan) = scan {
        assert!(
            !warnings(&scan).is_empty(),
            "bad header DTB without warning"
        );
    }
}

// ---- captures (compare with a scan JSON memory side) ------------------------------------------

/// A scan JSON of the synth image: the memory side of every capture case.
fn scan_json() -> &'static PathBuf {
    static J: OnceLock<PathBuf> = OnceLock::new();
    J.get_or_init(|| {
        let (raw, _) = synth_raw();
        let out = dir().join("scan.json");
        let o = run(&[
            "scan",
            raw.to_str().unwrap(),
            "--format",
            "json",
            "--quiet",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        out
    })
}

fn capture_case(what: &str, name: &str, bytes: &[u8], expect: Expect) {
    let path = file(name, bytes);
    let o = run(&[
        "compare",
        "--allow-mismatch",
        scan_json().to_str().unwrap(),
        "--live",
        path.to_str().unwrap(),
        "--format",
        "json",
    ]);
    check(what, &path, &o, expect, &[0, 1]);
}

fn netcarve_capture(tcp: &str) -> String {
    format!(
        r#"{{"format": "netcarve-capture", "version": 1, "host": "H", "collected_raw": 133590404967890000,
        "collected": "2024-05-01T12:34:56.7890000Z", "utc_offset_minutes": 0, "tcp": [{tcp}], "udp": []}}"#
    )
}

const GOOD_ROW: &str = r#"{"family": "ipv4", "state": 5, "local_addr": "10.0.0.5", "local_port": 49723,
    "remote_addr": "93.184.216.34", "remote_port": 443, "pid": 1236, "process": "evil.exe",
    "create_time_raw": 133590404967890000}"#;

#[test]
fn c22_capture_wrong_json_types() {
    capture_case(
        "tcp is a string",
        "types1.json",
        netcarve_capture("")
            .replace("\"tcp\": []", "\"tcp\": \"x\"")
            .as_bytes(),
        Expect::Either,
    );
    let bad = GOOD_ROW.replace("49723", "\"port\"").replace("1236", "[1]");
    capture_case(
        "port and pid of the wrong type",
        "types2.json",
        netcarve_capture(&format!("{bad},{GOOD_ROW}")).as_bytes(),
        Expect::Partial,
    );
    capture_case("top-level number", "types3.json", b"42", Expect::Error);
    capture_case(
        "ps7 array of numbers",
        "types4.json",
        b"[1, 2, 3]",
        Expect::Error,
    );
}

#[test]
fn c23_capture_truncated_json() {
    let full = netcarve_capture(GOOD_ROW);
    for cut in [1usize, 10, full.len() / 2, full.len() - 1] {
        capture_case(
            &format!("JSON cut at {cut}"),
            &format!("trunc{cut}.json"),
            &full.as_bytes()[..cut],
            Expect::Error,
        );
    }
}

#[test]
fn c24_capture_bad_dates() {
    for (i, date) in [
        "\"2024-13-45T99:99:99Z\"",
        "\"yesterday\"",
        "\"/Date(-99999999999999999)/\"",
        "\"\"",
        "\"9999-12-31T23:59:59.9999999Z\"",
    ]
    .iter()
    .enumerate()
    {
        let ps7 = format!(
            r#"[{{"LocalAddress": "10.0.0.5", "LocalPort": 49723, "RemoteAddress": "93.184.216.34",
            "RemotePort": 443, "State": "Established", "OwningProcess": 1236, "CreationTime": {date}}}]"#
        );
        capture_case(
            &format!("ps7 date {date}"),
            &format!("date{i}.json"),
            ps7.as_bytes(),
            Expect::Either,
        );
    }
    capture_case(
        "netcarve collected date garbage",
        "date_collected.json",
        netcarve_capture(GOOD_ROW)
            .replace("2024-05-01T12:34:56.7890000Z", "not a date")
            .as_bytes(),
        Expect::Either,
    );
}

fn utf16le(text: &str, bom: bool) -> Vec<u8> {
    let mut v = if bom { vec![0xFF, 0xFE] } else { vec![] };
    for unit in text.encode_utf16() {
        v.extend(unit.to_le_bytes());
    }
    v
}

#[test]
fn c25_capture_utf16_with_and_without_bom() {
    let text = netcarve_capture(GOOD_ROW);
    capture_case(
        "UTF-16LE with BOM",
        "u16bom.json",
        &utf16le(&text, true),
        Expect::Partial,
    );
    capture_case(
        "UTF-16LE without BOM",
        "u16.json",
        &utf16le(&text, false),
        Expect::Partial,
    );
    let mut odd = utf16le(&text, true);
    odd.push(0x41);
    capture_case(
        "UTF-16LE with an odd byte count",
        "u16odd.json",
        &odd,
        Expect::Either,
    );
    let mut be = vec![0xFE, 0xFF];
    for unit in text.encode_utf16() {
        be.extend(unit.to_be_bytes());
    }
    capture_case("UTF-16BE with BOM", "u16be.json", &be, Expect::Partial);
}

#[test]
fn c26_capture_huge_numbers() {
    let row = GOOD_ROW
        .replace("49723", "99999999999999999999999")
        .replace("1236", "1e300")
        .replace("133590404967890000", "18446744073709551616");
    capture_case(
        "huge numbers",
        "huge.json",
        netcarve_capture(&format!("{row},{GOOD_ROW}")).as_bytes(),
        Expect::Either,
    );
    capture_case(
        "huge collected_raw",
        "huge_collected.json",
        netcarve_capture(GOOD_ROW)
            .replace("133590404967890000,\n", "18446744073709551615,\n")
            .as_bytes(),
        Expect::Either,
    );
    let netstat =
        "  TCP    10.0.0.5:99999999999    93.184.216.34:443    ESTABLISHED    99999999999999\n";
    capture_case(
        "netstat huge numbers",
        "huge.txt",
        netstat.as_bytes(),
        Expect::Either,
    );
}

#[test]
fn c27_capture_empty_files() {
    capture_case("empty capture", "empty.json", b"", Expect::Error);
    capture_case("BOM only", "bom.json", b"\xEF\xBB\xBF", Expect::Error);
    capture_case("whitespace only", "ws.txt", b" \r\n\t\n", Expect::Error);
    capture_case("UTF-16 BOM only", "bom16.json", b"\xFF\xFE", Expect::Error);
}

#[test]
fn c28_memory_side_malformed() {
    let good = std::fs::read_to_string(scan_json()).unwrap();
    let capture = file("ok_capture.json", netcarve_capture(GOOD_ROW).as_bytes());
    for (name, text) in [
        ("scan_trunc.json", &good[..good.len() / 2]),
        ("scan_types.json", "{\"image\": 5, \"endpoints\": \"no\"}"),
    ] {
        let path = file(name, text.as_bytes());
        let o = run(&[
            "compare",
            "--allow-mismatch",
            path.to_str().unwrap(),
            "--live",
            capture.to_str().unwrap(),
        ]);
        check(name, &path, &o, Expect::Error, &[0, 1]);
    }
}

// ---- evidence is only read; no input hangs or floods --------------------------------------------

/// A refusal to write `-o out` over an input: exit 2, one line naming `out`, and `input` (the
/// file at risk) byte for byte as it was.
fn refused(what: &str, o: &Outcome, out: &Path, input: &Path, before: &str) {
    assert_eq!(
        o.code, 2,
        "{what}: expected exit 2, got {}: {}",
        o.code, o.stderr
    );
    let lines: Vec<&str> = o.stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "{what}: not one line: {}", o.stderr);
    assert!(
        lines[0].contains(&out.display().to_string())
            && lines[0].contains("never writes over its input"),
        "{what}: {}",
        lines[0]
    );
    assert_eq!(
        support::sha256_file(input),
        before,
        "{what}: {} changed",
        input.display()
    );
}

fn copy_of(src: &Path, name: &str) -> PathBuf {
    let to = dir().join(name);
    std::fs::copy(src, &to).unwrap();
    to
}

#[test]
fn c31_output_over_an_input_is_refused() {
    let (raw, _) = synth_raw();
    let image = copy_of(raw, "evidence.raw");
    let image_s = image.to_str().unwrap();
    let sum = support::sha256_file(&image);
    let hard = dir().join("evidence-hardlink.raw");
    let soft = dir().join("evidence-symlink.raw");
    let _ = std::fs::remove_file(&hard);
    let _ = std::fs::remove_file(&soft);
    std::fs::hard_link(&image, &hard).unwrap();
    std::os::unix::fs::symlink(&image, &soft).unwrap();
    for out in [&image, &hard, &soft] {
        let o = run(&["scan", image_s, "--quiet", "-o", out.to_str().unwrap()]);
        refused(&format!("scan -o {}", out.display()), &o, out, &image, &sum);
    }
    // The same file named through another directory.
    let dotted = dir().join(".").join("evidence.raw");
    let o = run(&["info", image_s]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = run(&["scan", image_s, "--quiet", "-o", dotted.to_str().unwrap()]);
    refused("scan -o ./IMAGE", &o, &dotted, &image, &sum);

    // compare: neither a capture nor the memory side (image or scan JSON) may be overwritten.
    let capture = file(
        "evidence-capture.json",
        netcarve_capture(GOOD_ROW).as_bytes(),
    );
    let cap_sum = support::sha256_file(&capture);
    let cap_s = capture.to_str().unwrap();
    let o = run(&[
        "compare",
        "--allow-mismatch",
        image_s,
        "--live",
        cap_s,
        "-o",
        cap_s,
    ]);
    refused("compare -o CAPTURE", &o, &capture, &capture, &cap_sum);
    let json = copy_of(scan_json(), "evidence-scan.json");
    let json_sum = support::sha256_file(&json);
    let json_s = json.to_str().unwrap();
    let o = run(&[
        "compare",
        "--allow-mismatch",
        json_s,
        "--live",
        cap_s,
        "-o",
        json_s,
    ]);
    refused("compare -o SCAN.json", &o, &json, &json, &json_sum);
    let o = run(&[
        "compare",
        "--allow-mismatch",
        image_s,
        "--live",
        cap_s,
        "-o",
        image_s,
    ]);
    refused("compare -o IMAGE", &o, &image, &image, &sum);

    // --profile FILE is an input too.
    let profile = dir().join("evidence-profile.json");
    let o = run(&["profile", "show", "win7-x64", "--format", "json"]);
    std::fs::write(&profile, &o.stdout).unwrap();
    let prof_sum = support::sha256_file(&profile);
    let prof_s = profile.to_str().unwrap();
    let o = run(&[
        "scan",
        image_s,
        "--quiet",
        "--profile",
        prof_s,
        "-o",
        prof_s,
    ]);
    refused(
        "scan --profile FILE -o FILE",
        &o,
        &profile,
        &profile,
        &prof_sum,
    );

    // profile from-pdb: neither PDB (copies: the committed ones are never at risk here).
    let nt = copy_of(
        &support::testdata("pdb/ntkrnl_fixture.pdb"),
        "evidence-nt.pdb",
    );
    let tcpip = copy_of(
        &support::testdata("pdb/tcpip_fixture.pdb"),
        "evidence-tcpip.pdb",
    );
    for pdb in [&nt, &tcpip] {
        let sum = support::sha256_file(pdb);
        let o = run(&[
            "profile",
            "from-pdb",
            "--nt",
            nt.to_str().unwrap(),
            "--tcpip",
            tcpip.to_str().unwrap(),
            "--base",
            "win10-19041-x64",
            "-o",
            pdb.to_str().unwrap(),
        ]);
        refused("profile from-pdb -o PDB", &o, pdb, pdb, &sum);
    }

    // The snapshot file a .vmem is read with.
    let vm = dir().join("evidence-vmware");
    let vmem = support::synth(&vm, &["--profile", "win7-x64", "--container", "vmware"]);
    let vmss = vmem.with_extension("vmss");
    let vmss_sum = support::sha256_file(&vmss);
    let o = run(&[
        "scan",
        vmem.to_str().unwrap(),
        "--quiet",
        "-o",
        vmss.to_str().unwrap(),
    ]);
    refused("scan X.vmem -o X.vmss", &o, &vmss, &vmss, &vmss_sum);

    // Any segment of an E01 set.
    let tool = ["/usr/bin/ewfacquire", "/usr/local/bin/ewfacquire"]
        .map(Path::new)
        .into_iter()
        .find(|p| p.exists());
    if let Some(tool) = tool {
        let target = dir().join("evidence-ewf");
        let acquired = std::process::Command::new(tool)
            .args(["-u", "-t"])
            .arg(&target)
            .args(["-f", "encase6", "-c", "deflate:fast", "-S", "2MiB"])
            .arg(raw)
            .output()
            .unwrap();
        assert!(acquired.status.success(), "ewfacquire: {acquired:?}");
        let e01 = target.with_extension("E01");
        let e03 = target.with_extension("E03");
        let e03_sum = support::sha256_file(&e03);
        let o = run(&[
            "scan",
            e01.to_str().unwrap(),
            "--quiet",
            "-o",
            e03.to_str().unwrap(),
        ]);
        refused("scan X.E01 -o X.E03", &o, &e03, &e03, &e03_sum);
    } else {
        assert!(std::env::var_os("CI").is_none(), "ewfacquire is missing");
        eprintln!("skipped the E01 case: ewfacquire not installed (apt-get install ewf-tools)");
    }

    // Any other file is written as before, and an existing one truncated.
    let out = file("evidence-out.json", &vec![b'x'; 1 << 20]);
    let o = run(&["scan", image_s, "--quiet", "-o", out.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let written: Value = read_json(&out);
    assert!(written["endpoints"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
}

/// Runs netcarve, failing as a hang when it outlives `limit` (well under `support::DEADLINE`:
/// these cases must end at once).
fn run_within(args: &[&str], limit: Duration) -> Outcome {
    let o = run(args);
    assert!(o.elapsed < limit, "{args:?} took {:?}", o.elapsed);
    o
}

#[test]
fn c32_pipes_and_devices_as_inputs_do_not_hang() {
    let fifo = dir().join("input_fifo.json");
    let _ = std::fs::remove_file(&fifo);
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: plain syscall with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let fifo_s = fifo.to_str().unwrap();
    let json = scan_json().to_str().unwrap();
    let capture = file("pipe_capture.json", netcarve_capture(GOOD_ROW).as_bytes());
    let limit = Duration::from_secs(20);
    // A pipe in place of an E01 set's last segment: the set reads as far as it can, and says why.
    if let Some(tool) = ["/usr/bin/ewfacquire", "/usr/local/bin/ewfacquire"]
        .map(Path::new)
        .into_iter()
        .find(|p| p.exists())
    {
        let target = dir().join("piped-ewf");
        let acquired = std::process::Command::new(tool)
            .args(["-u", "-t"])
            .arg(&target)
            .args(["-f", "encase6", "-c", "deflate:fast", "-S", "2MiB"])
            .arg(&synth_raw().0)
            .output()
            .unwrap();
        assert!(acquired.status.success(), "ewfacquire: {acquired:?}");
        let last = (2..100)
            .map(|n| target.with_extension(format!("E{n:02}")))
            .take_while(|p| p.exists())
            .last()
            .expect("ewfacquire wrote one segment only");
        std::fs::remove_file(&last).unwrap();
        let c = std::ffi::CString::new(last.to_str().unwrap()).unwrap();
        // SAFETY: plain syscall with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
        let e01 = target.with_extension("E01");
        let o = run_within(&["scan", e01.to_str().unwrap(), "--format", "json"], limit);
        assert_eq!(o.code, 0, "last segment a FIFO: {}", o.stderr);
        let why = format!("{}: is a named pipe, not a regular file", last.display());
        assert!(o.stderr.contains(&why), "{}", o.stderr);
    }
    for (what, args, named) in [
        (
            "--live FIFO",
            vec!["compare", "--allow-mismatch", json, "--live", fifo_s],
            fifo_s,
        ),
        (
            "memory side FIFO",
            vec![
                "compare",
                "--allow-mismatch",
                fifo_s,
                "--live",
                capture.to_str().unwrap(),
            ],
            fifo_s,
        ),
        (
            "--live /dev/zero",
            vec!["compare", "--allow-mismatch", json, "--live", "/dev/zero"],
            "/dev/zero",
        ),
        (
            "--profile FIFO",
            vec!["scan", synth_raw().0.to_str().unwrap(), "--profile", fifo_s],
            fifo_s,
        ),
    ] {
        let o = run_within(&args, limit);
        assert_eq!(o.code, 2, "{what}: exit {}: {}", o.code, o.stderr);
        let lines: Vec<&str> = o.stderr.trim().lines().collect();
        assert_eq!(lines.len(), 1, "{what}: {}", o.stderr);
        assert!(
            lines[0].contains(named) && lines[0].contains("not a regular file"),
            "{what}: {}",
            lines[0]
        );
    }
}

#[test]
fn c33_image_truncated_while_scanned() {
    // A sparse 1 GiB image (the synth image, then zeros): one thread takes about a second over
    // it cold, so cutting it down 200 ms after it is mapped lands mid-scan. Each attempt uses a
    // fresh copy; a scan that ends first is tried again, never counted as a pass.
    let (raw, _) = synth_raw();
    let image = dir().join("shrinking.raw");
    let expected = format!(
        "netcarve: {}: changed size while being read",
        image.display()
    );
    let mut pause = Duration::from_millis(200);
    for attempt in 1..=5 {
        std::fs::copy(raw, &image).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&image)
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        let mut child = support::command()
            .args(["scan", image.to_str().unwrap(), "--threads", "1", "--quiet"])
            .args(["--format", "jsonl"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let maps = format!("/proc/{}/maps", child.id());
        let started = std::time::Instant::now();
        let name = image.to_str().unwrap().to_string();
        while !std::fs::read_to_string(&maps).is_ok_and(|m| m.contains(&name)) {
            if child.try_wait().unwrap().is_some() || started.elapsed() > support::DEADLINE {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        // Past identification, into the carve; less each time a scan ended first, and at the
        // last attempt none (the map is made, so the cut still lands while the image is read).
        std::thread::sleep(pause);
        pause /= 2;
        if attempt == 4 {
            pause = Duration::ZERO;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(&image)
            .unwrap()
            .set_len(0x1000)
            .unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > support::DEADLINE {
                child.kill().ok();
                panic!("attempt {attempt}: the scan of a truncated image hangs");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert!(
            status.code().is_some(),
            "attempt {attempt}: killed by {status:?} (SIGBUS is 7), stderr: {stderr}"
        );
        if status.code() == Some(0) {
            eprintln!("attempt {attempt}: the scan ended before the cut; again");
            continue;
        }
        assert_eq!(status.code(), Some(2), "attempt {attempt}: {stderr}");
        if stderr.trim() == expected {
            return;
        }
        // Cut before the map was made (the image then looks like a 4 KiB file): try again.
        eprintln!("attempt {attempt}: {}", stderr.trim());
    }
    panic!("no attempt cut the image while it was being scanned");
}

#[test]
fn c34_threads_are_bounded() {
    let (raw, _) = synth_raw();
    let raw = raw.to_str().unwrap();
    let one = run(&["scan", raw, "--format", "json", "--threads", "1", "--quiet"]);
    assert_eq!(one.code, 0, "{}", one.stderr);
    let o = run_within(
        &["scan", raw, "--format", "json", "--threads", "20000"],
        Duration::from_secs(30),
    );
    assert_eq!(o.code, 0, "--threads 20000: {}", o.stderr);
    let lines: Vec<&str> = o.stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "{}", o.stderr);
    assert!(
        lines[0].starts_with("netcarve: warning: --threads 20000 ") && lines[0].contains("using"),
        "{}",
        lines[0]
    );
    let few: Value = serde_json::from_str(&one.stdout).unwrap();
    let many: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(few["endpoints"], many["endpoints"]);
    let o = run_within(
        &[
            "compare",
            "--allow-mismatch",
            raw,
            "--live",
            file(
                "threads_capture.json",
                netcarve_capture(GOOD_ROW).as_bytes(),
            )
            .to_str()
            .unwrap(),
            "--threads",
            "4000",
            "--format",
            "json",
        ],
        Duration::from_secs(30),
    );
    assert!(
        o.code == 0 || o.code == 1,
        "compare --threads 4000: {}",
        o.stderr
    );
    assert!(o.stderr.contains("--threads 4000 "), "{}", o.stderr);
}

#[test]
fn c35_a_warning_flood_is_one_line() {
    // An ELF core whose 65,535 program headers repeat its PT_LOADs: each repeat overlaps.
    let (m, _) = machine();
    let mut elf = elf_core(&m.mem);
    let phnum = usize::from(u16::from_le_bytes([elf[56], elf[57]]));
    let headers: Vec<u8> = elf[64..64 + 56 * phnum].to_vec();
    let table = elf.len();
    for i in 0..usize::from(u16::MAX) {
        let ph = &headers[56 * (i % phnum)..56 * (i % phnum + 1)];
        elf.extend_from_slice(ph);
    }
    le64(&mut elf, 32, table as u64);
    elf[56..58].copy_from_slice(&u16::MAX.to_le_bytes());
    let path = file("flood.elf", &elf);
    let o = run(&["scan", path.to_str().unwrap(), "--format", "json"]);
    check("65,535 PT_LOADs", &path, &o, Expect::Partial, &[0]);
    let lines: Vec<&str> = o.stderr.trim().lines().collect();
    assert!(
        lines.len() <= 3,
        "{} warning lines: {:?}",
        lines.len(),
        &lines[..5]
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("overlapping physical range") && l.ends_with("more like it")),
        "{lines:?}"
    );
    let scan: Value = serde_json::from_str(&o.stdout).unwrap();
    assert!(warnings(&scan).len() <= 3, "{:?}", warnings(&scan));
}

// ---- evidence text, bounds, unreadable capture rows --------------------------------------------

/// `compare` of the scan JSON with `capture` in `format`; (exit code, stdout, stderr).
fn compare_as(memory: &Path, capture: &Path, format: &str) -> Outcome {
    run(&[
        "compare",
        "--allow-mismatch",
        memory.to_str().unwrap(),
        "--live",
        capture.to_str().unwrap(),
        "--format",
        format,
    ])
}

/// Text a terminal or a report reader would act on: ESC, CR, BEL, and bidi overrides/isolates.
fn assert_no_raw_controls(what: &str, text: &str) {
    for (i, c) in text.chars().enumerate() {
        let bad = (c.is_control() && c != '\n')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}');
        assert!(!bad, "{what}: raw {c:?} at char {i}");
    }
}

const HOSTILE_NAMES: [&str; 4] = [
    "a\u{1b}]0;owned\u{7}\u{1b}[2Jb.exe",
    "x.exe\r\n!!! HIDDEN FROM API: 0 forged",
    "\u{202e}exe.gpj",
    "=HYPERLINK(\"http://x\",\"y\")|p",
];

#[test]
fn c36_evidence_text_is_escaped_in_text_renderings_and_exact_in_json() {
    // Capture side: four rows of the memory's own endpoints would pair and show the capture's
    // names in the table; rows not in memory show them as not_in_memory.
    let rows: Vec<String> = HOSTILE_NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| {
            GOOD_ROW
                .replace("49723", &(40000 + i).to_string())
                .replace("\"evil.exe\"", &serde_json::to_string(name).unwrap())
        })
        .collect();
    let capture = file("names.json", netcarve_capture(&rows.join(",")).as_bytes());
    // Memory side: the same names in a scan JSON's process field, on TCP endpoints (the capture
    // lists TCP only, so its UDP endpoints are not compared and not shown).
    let mut scan: Value = read_json(scan_json());
    for (r, name) in scan["endpoints"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .filter(|r| r["proto"] == "tcp")
        .zip(HOSTILE_NAMES)
    {
        r["process"] = Value::from(name);
    }
    let memory = file("names_scan.json", scan.to_string().as_bytes());
    let table = compare_as(&memory, &capture, "table");
    check(
        "hostile names (table)",
        &capture,
        &table,
        Expect::Partial,
        &[1],
    );
    assert_no_raw_controls("compare table", &table.stdout);
    assert!(
        table.stdout.contains("a\\x1b]0;owned\\x07\\x1b[2Jb.exe")
            && table.stdout.contains("\\u{202e}exe.gpj")
            && table.stdout.contains("x.exe\\x0d\\x0a!!! HIDDEN"),
        "escapes not shown:\n{}",
        table.stdout
    );
    // No forged line: the only `!!!` lines are the real banner's.
    // (The name may show, escaped, inside a real banner line.)
    for line in table.stdout.lines().filter(|l| l.starts_with("!!!")) {
        assert!(
            !line.starts_with("!!! HIDDEN FROM API: 0 forged"),
            "forged line: {line}"
        );
    }
    let csv = compare_as(&memory, &capture, "csv");
    check("hostile names (csv)", &capture, &csv, Expect::Partial, &[1]);
    assert_no_raw_controls("compare csv", &csv.stdout);
    let mut reader = csv::Reader::from_reader(csv.stdout.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (mp, cp) = (col("memory_process"), col("capture_process"));
    let mut formula_cells = 0;
    for record in reader.records() {
        let record = record.unwrap();
        for cell in record.iter() {
            assert!(
                !cell.starts_with(['=', '+', '@']) && !cell.starts_with("-1"),
                "formula cell {cell:?}"
            );
        }
        for i in [mp, cp] {
            if record.get(i).unwrap().starts_with("'=HYPERLINK") {
                formula_cells += 1;
            }
        }
    }
    assert!(
        formula_cells >= 2,
        "the formula name was not shown neutralised"
    );
    let json = compare_as(&memory, &capture, "json");
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    let names: Vec<&str> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| [&r["memory"]["process"], &r["capture"]["process"]])
        .filter_map(Value::as_str)
        .collect();
    for name in HOSTILE_NAMES {
        assert!(names.contains(&name), "JSON lost the exact name {name:?}");
    }

    // Scan side: a `|` in an ImageFileName must not split a bodyfile line; a name with a
    // backslash stays reversible.
    let (raw, truth) = synth_raw();
    let mut mem = std::fs::read(raw).unwrap();
    let name = truth["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["create_time_raw"].as_u64().unwrap_or(0) != 0)
        .find_map(|r| r["process"].as_str().filter(|n| n.len() >= 4))
        .unwrap()
        .to_string();
    let mut needle = name.as_bytes().to_vec();
    needle.push(0);
    let mut forged = needle.clone();
    forged[1] = b'|';
    forged[2] = b'\\';
    let mut replaced = 0;
    for at in 0..mem.len() - needle.len() {
        if mem[at..].starts_with(&needle) {
            mem[at..at + needle.len()].copy_from_slice(&forged);
            replaced += 1;
        }
    }
    assert!(replaced > 0, "{name} not found in the image");
    let path = file("pipe_name.raw", &mem);
    let o = run(&[
        "scan",
        path.to_str().unwrap(),
        "--format",
        "bodyfile",
        "--quiet",
    ]);
    check(
        "| in a process name (bodyfile)",
        &path,
        &o,
        Expect::Partial,
        &[0],
    );
    let shown = format!("{}\\x7c\\\\{}", &name[..1], &name[3..]);
    assert!(o.stdout.contains(&shown), "{shown} not in\n{}", o.stdout);
    for line in o.stdout.lines() {
        assert_eq!(line.split('|').count(), 11, "bodyfile line split: {line}");
    }
}

#[test]
fn c37_huge_names_are_cut_not_panics() {
    let long = "A".repeat(65_536);
    let row = GOOD_ROW.replace("evil.exe", &long);
    let capture = file("long_name.json", netcarve_capture(&row).as_bytes());
    let o = compare_as(scan_json(), &capture, "table");
    check(
        "65,536-char capture name",
        &capture,
        &o,
        Expect::Partial,
        &[1],
    );
    assert!(
        o.stdout
            .contains("warning: tcp row 1: process name of 65536 characters cut to 1024")
            || o.stdout
                .contains("warning: row 1: process name of 65536 characters cut to 1024"),
        "{}",
        &o.stdout[..o.stdout.len().min(2000)]
    );
    let widest = o.stdout.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest < 1200, "a table line of {widest} characters");
    assert!(o.stdout.contains("AAA…"), "no cut marker");
    let json = compare_as(scan_json(), &capture, "json");
    let report: Value = serde_json::from_str(&json.stdout).unwrap();
    let kept = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|r| {
            r["capture"]["process"]
                .as_str()
                .filter(|p| p.starts_with("AAA"))
        })
        .unwrap();
    assert_eq!(kept.chars().count(), 1024);

    let mut scan: Value = read_json(scan_json());
    scan["endpoints"][0]["process"] = Value::from("B".repeat(70_000));
    let memory = file("long_scan.json", scan.to_string().as_bytes());
    let good = file(
        "long_ok_capture.json",
        netcarve_capture(GOOD_ROW).as_bytes(),
    );
    for format in ["table", "csv", "json"] {
        let o = compare_as(&memory, &good, format);
        check(
            &format!("70,000-char name in the scan JSON ({format})"),
            &memory,
            &o,
            Expect::Partial,
            &[1],
        );
        assert!(
            o.stdout.contains("process of 70000 characters cut to 1024")
                || o.stderr.contains("process of 70000 characters cut to 1024"),
            "{format}: no warning"
        );
    }
}

#[test]
fn c38_reads_are_capped() {
    // `/dev/zero` as a capture: refused once 256 MiB are read (or at open), never read to OOM.
    let o = run(&[
        "compare",
        "--allow-mismatch",
        scan_json().to_str().unwrap(),
        "--live",
        "/dev/zero",
    ]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(!o.stderr.contains("panicked"));
    assert_eq!(o.stderr.trim().lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.contains("/dev/zero"), "{}", o.stderr);
    assert!(
        o.peak_anon_kib < 400 * 1024,
        "/dev/zero: heap peaked at {} KiB",
        o.peak_anon_kib
    );
    // Sparse files past the cap: a capture, and a memory-side JSON of 3 GiB.
    let big = dir().join("big_capture.json");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(300 << 20).unwrap();
    let o = compare_as(scan_json(), &big, "json");
    check("300 MiB capture", &big, &o, Expect::Error, &[]);
    assert!(o.stderr.contains("256 MiB"), "{}", o.stderr);
    let big_scan = dir().join("big_scan.json");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&big_scan).unwrap();
        // JSON-looking for longer than the sniffed head, then 3 GiB of holes.
        f.write_all(b"{\"endpoints\": [").unwrap();
        f.write_all(&[b' '; 200]).unwrap();
        f.set_len(3 << 30).unwrap();
    }
    let good = file("big_ok_capture.json", netcarve_capture(GOOD_ROW).as_bytes());
    let o = compare_as(&big_scan, &good, "json");
    check("3 GiB scan JSON", &big_scan, &o, Expect::Error, &[]);
    assert!(o.stderr.contains("256 MiB"), "{}", o.stderr);
    assert!(o.peak_anon_kib < 400 * 1024, "{} KiB", o.peak_anon_kib);
    std::fs::remove_file(&big_scan).ok();
    std::fs::remove_file(&big).ok();

    // LiME with more ranges than any machine has.
    let ranges = netcarve::container::lime::MAX_RANGES + 1;
    let mut lime_file = Vec::with_capacity(ranges * 33);
    for i in 0..ranges as u64 {
        lime_file.extend(lime_range_header(i * 0x1000, i * 0x1000));
        lime_file.push(0);
    }
    let path = file("many_ranges.lime", &lime_file);
    drop(lime_file);
    let o = run(&["info", path.to_str().unwrap()]);
    check("LiME with 1M+1 ranges", &path, &o, Expect::Error, &[]);
    assert!(o.stderr.contains("ranges"), "{}", o.stderr);
    std::fs::remove_file(&path).ok();
}

#[test]
fn c39_include_corrupt_is_bounded_and_deterministic() {
    let (raw, _) = synth_raw();
    let mut mem = std::fs::read(raw).unwrap();
    let header = flood_header();
    for page in mem.chunks_exact_mut(0x1000) {
        if page.iter().all(|&b| b == 0) {
            for slot in page.chunks_exact_mut(16) {
                slot.copy_from_slice(&header);
            }
        }
    }
    let flooded_pages: Vec<u64> = mem
        .chunks_exact(0x1000)
        .enumerate()
        .filter(|(_, page)| page.starts_with(&header) && page.ends_with(&header))
        .map(|(i, _)| i as u64)
        .collect();
    let path = file("flood_corrupt.raw", &mem);
    drop(mem);
    let mut outputs = vec![];
    for threads in ["1", "2"] {
        let o = run(&[
            "scan",
            path.to_str().unwrap(),
            "--format",
            "json",
            "--include-corrupt",
            "--threads",
            threads,
        ]);
        check("flood --include-corrupt", &path, &o, Expect::Partial, &[0]);
        assert!(
            o.peak_anon_kib < 256 * 1024,
            "--include-corrupt on a flood: heap peaked at {} KiB",
            o.peak_anon_kib
        );
        assert!(o.stderr.contains("--include-corrupt:"), "{}", o.stderr);
        outputs.push(o.stdout);
    }
    assert_eq!(outputs[0], outputs[1], "output depends on the thread count");
    let scan: Value = serde_json::from_str(&outputs[0]).unwrap();
    let corrupt = scan["corrupt"].as_array().unwrap();
    assert_eq!(corrupt.len(), 10_000);
    let omitted = scan["corrupt_omitted"].as_u64().unwrap();
    assert!(omitted > 100_000, "{omitted} omitted");
    // The first by offset: nothing omitted lies before the last one listed.
    let offsets: Vec<u64> = corrupt.iter().map(|r| hex(&r["physical_offset"])).collect();
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
    // At least 10,000 corrupt rows lie at or before the 10,000th flooded slot (a raw image:
    // physical offset = file offset), so the last one listed cannot lie after it.
    let tenth_thousand = flooded_pages[10_000 / 256] * 0x1000 + (10_000 % 256) as u64 * 16;
    assert!(
        offsets[9_999] <= tenth_thousand,
        "not the first ones: {:#x} listed last, the 10,000th flooded slot is at {tenth_thousand:#x}",
        offsets[9_999]
    );
}

/// One synth capture with one row's creation time replaced by a display string.
#[test]
fn c40_unreadable_capture_row_is_not_an_accusation() {
    let (raw, _) = synth_raw();
    let ps7_path = raw.parent().unwrap().join("capture-ps7.json");
    let rows: Vec<Value> = serde_json::from_str(
        std::fs::read_to_string(&ps7_path)
            .unwrap()
            .trim_start_matches('\u{feff}'),
    )
    .unwrap();
    let o = compare_as(scan_json(), &ps7_path, "json");
    let before: Value = serde_json::from_str(&o.stdout).unwrap();
    // A row that matched, with a time.
    let matched = before["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["class"] == "match" && r["capture"]["create_time_raw"].as_u64() > Some(0))
        .expect("a matching timed row");
    let line = matched["capture"]["line"].as_u64().unwrap();
    let offset = matched["memory"]["physical_offset"].clone();
    let mut broken = rows.clone();
    let row = broken[line as usize - 1].as_object_mut().unwrap();
    let key = row
        .keys()
        .find(|k| k.eq_ignore_ascii_case("Timestamp") || k.eq_ignore_ascii_case("CreationTime"))
        .unwrap()
        .clone();
    row.insert(key, Value::from("10/18/2025 6:15:22 AM"));
    let path = file(
        "display_time.json",
        serde_json::to_string(&broken).unwrap().as_bytes(),
    );
    let o = compare_as(scan_json(), &path, "json");
    check("display-string time", &path, &o, Expect::Partial, &[1]);
    let after: Value = serde_json::from_str(&o.stdout).unwrap();
    let of_object: Vec<&Value> = after["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["memory"]["physical_offset"] == offset)
        .collect();
    assert_eq!(of_object.len(), 1);
    assert_eq!(of_object[0]["class"], "uncertain", "{}", of_object[0]);
    let note = of_object[0]["note"].as_str().unwrap();
    assert!(
        note.starts_with(&format!("not accused: capture row {line} unreadable")),
        "{note}"
    );
    let warnings = after["captures"][0]["warnings"].to_string();
    assert!(
        warnings.contains(&format!("row {line}: bad date")),
        "{warnings}"
    );
    assert_eq!(
        after["summary"]["by_class"]["hidden_from_api"],
        before["summary"]["by_class"]["hidden_from_api"],
        "the unreadable row added an accusation"
    );
    // The table says it too, and does not list the endpoint as hidden.
    let table = compare_as(scan_json(), &path, "table");
    assert!(table.stdout.contains("not accused: capture row"));

    // Nothing readable in a netcarve `tcp` row: every TCP accusation becomes uncertain, the UDP
    // ones stand.
    let netcarve_path = raw.parent().unwrap().join("capture-netcarve.json");
    let o = compare_as(scan_json(), &netcarve_path, "json");
    let clean: Value = serde_json::from_str(&o.stdout).unwrap();
    let hidden = |report: &Value, proto: &str| {
        report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["class"] == "hidden_from_api" && r["memory"]["proto"] == proto)
            .count()
    };
    let (tcp_hidden, udp_hidden) = (hidden(&clean, "tcp"), hidden(&clean, "udp"));
    assert!(tcp_hidden > 0, "the synth capture hides no TCP connection");
    let mut capture: Value = read_json(&netcarve_path);
    capture["tcp"]
        .as_array_mut()
        .unwrap()
        .push(Value::from("garbage"));
    let path = file("garbage_tcp_row.json", capture.to_string().as_bytes());
    let o = compare_as(scan_json(), &path, "json");
    check("garbage tcp row", &path, &o, Expect::Partial, &[1]);
    let report: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(hidden(&report, "tcp"), 0);
    assert_eq!(hidden(&report, "udp"), udp_hidden);
    assert_eq!(
        report["summary"]["by_class"]["uncertain"].as_u64(),
        Some(tcp_hidden as u64)
    );
}

#[test]
fn c41_latin1_image_file_name_keeps_its_owner() {
    let (raw, truth) = synth_raw();
    let mut mem = std::fs::read(raw).unwrap();
    let owned = |name: &str| {
        truth["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["process"] == name)
            .count()
    };
    let name = truth["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["process"].as_str())
        .find(|n| n.len() >= 4 && owned(n) > 0)
        .unwrap()
        .to_string();
    let mut needle = name.as_bytes().to_vec();
    needle.push(0);
    let mut latin = needle.clone();
    latin[0] = 0xE9;
    let mut replaced = 0;
    for at in 0..mem.len() - needle.len() {
        if mem[at..].starts_with(&needle) {
            mem[at..at + needle.len()].copy_from_slice(&latin);
            replaced += 1;
        }
    }
    assert!(replaced > 0);
    let path = file("latin1_name.raw", &mem);
    let scan = image_case("ImageFileName above 0x7F", &path, Expect::Partial, &[]).unwrap();
    let shown = format!("é{}", &name[1..]);
    let raw_hex: String = latin[..latin.len() - 1]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let endpoints = scan["endpoints"].as_array().unwrap();
    let with_name: Vec<&Value> = endpoints
        .iter()
        .filter(|r| r["process"] == shown.as_str())
        .collect();
    assert_eq!(with_name.len(), owned(&name), "owners lost");
    for r in &with_name {
        assert_eq!(r["process_raw"], raw_hex.as_str());
        assert!(r["pid"].as_u64().is_some());
    }
    // ASCII names carry no process_raw.
    assert!(endpoints
        .iter()
        .filter(|r| r["process"] != shown.as_str())
        .all(|r| r.get("process_raw").is_none()));
}

#[test]
fn c42_duplicate_rows_and_contradictions_are_warned() {
    let capture = file(
        "dup_rows.json",
        netcarve_capture(&[GOOD_ROW, GOOD_ROW, GOOD_ROW].join(",")).as_bytes(),
    );
    let o = compare_as(scan_json(), &capture, "json");
    check("duplicate rows", &capture, &o, Expect::Partial, &[1]);
    let report: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(report["summary"]["by_class"]["not_in_memory"], 1);
    let warnings = report["captures"][0]["warnings"].to_string();
    assert!(
        warnings.contains("row 1 is listed again (rows 2, 3): counted once"),
        "{warnings}"
    );

    let v6 = GOOD_ROW.replace("\"ipv4\"", "\"ipv6\"");
    let text =
        netcarve_capture(&v6).replace("\"utc_offset_minutes\": 0", "\"utc_offset_minutes\": 2000");
    let capture = file("contradictions.json", text.as_bytes());
    let o = compare_as(scan_json(), &capture, "json");
    check(
        "family and offset contradictions",
        &capture,
        &o,
        Expect::Partial,
        &[1],
    );
    let report: Value = serde_json::from_str(&o.stdout).unwrap();
    let warnings = report["captures"][0]["warnings"].to_string();
    assert!(
        warnings.contains("row 1: family ipv6 contradicts local address 10.0.0.5"),
        "{warnings}"
    );
    assert!(
        warnings.contains("utc_offset_minutes 2000 is beyond"),
        "{warnings}"
    );
}

/// A `.vmss` whose memory group holds a 3 GiB long block before the region table (a snapshot
/// that carries the guest's memory itself): the block is skipped, not read.
#[test]
fn c43_vmss_long_block_is_skipped_not_read() {
    use std::io::{Seek, SeekFrom, Write};
    let (m, _) = machine();
    let (vmem, vmss) = support::containers::vmware(&m.mem);
    let at = vmss
        .windows(8)
        .position(|w| w == b"\x3e\x06Memory")
        .expect("the long block");
    // flags, name length, name, stored size (u64), memory size (u64), padding length, padding.
    let stored_at = at + 8;
    let data_at = stored_at + 16 + 2 + 2;
    let block = 3u64 << 30;
    let mut head = vmss[..data_at].to_vec();
    head[stored_at..stored_at + 8].copy_from_slice(&block.to_le_bytes());
    let tail = &vmss[data_at + 4..];
    let vmem_path = file("bigmeta.vmem", &vmem);
    let meta_path = dir().join("bigmeta.vmss");
    let mut f = std::fs::File::create(&meta_path).unwrap();
    f.write_all(&head).unwrap();
    f.seek(SeekFrom::Start(data_at as u64 + block)).unwrap();
    f.write_all(tail).unwrap();
    drop(f);
    let o = run(&["info", vmem_path.to_str().unwrap(), "--format", "json"]);
    check("3 GiB .vmss", &vmem_path, &o, Expect::Partial, &[0]);
    let info: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(info["container"], "vmware", "{info}");
    assert!(
        o.peak_anon_kib < 64 * 1024,
        ".vmss of 3 GiB: heap peaked at {} KiB",
        o.peak_anon_kib
    );
    std::fs::remove_file(&meta_path).ok();
}
