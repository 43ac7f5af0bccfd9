//! Identification time bombs: images built so that finding the kernel would cost without bound.
//! Identification must stay bounded in work and memory and still find what is there.
mod support;

use std::time::Duration;
use support::machine::{tiny_kernel_pe, windows, Mode, GUID_BYTES, PAGE};
use support::*;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// A kernel header that lies about its debug directory (60 MiB where a kernel's is a few
/// entries): the kernel is still found through its CodeView record, reading a bounded number of
/// entries and bytes per candidate, not the 60 MiB the header claims (a hostile image offers
/// thousands of such candidates, and a buffer of the claimed size for each would cost gigabytes).
#[test]
fn a_huge_debug_directory_costs_a_bounded_read() {
    let dir = scratch("hostile-debug-directory");
    let raw = synth(&dir, &["--profile", "win10-19041-x64", "--size", "32M"]);
    let mut bytes = std::fs::read(&raw).unwrap();
    // The kernel's header page: MZ, a PE32+ header, a debug directory.
    let mut patched = 0;
    for page in (0..bytes.len()).step_by(0x1000) {
        if &bytes[page..page + 2] != b"MZ" {
            continue;
        }
        let pe = page + u32_at(&bytes, page + 0x3c) as usize;
        if pe + 0x200 > page + 0x1000 || &bytes[pe..pe + 4] != b"PE\0\0" {
            continue;
        }
        let opt = pe + 24;
        if u16::from_le_bytes([bytes[opt], bytes[opt + 1]]) != 0x20b {
            continue;
        }
        let debug = opt + 112 + 6 * 8;
        let rva = u32_at(&bytes, debug);
        if rva == 0 || rva > 0x40_0000 {
            continue;
        }
        bytes[debug + 4..debug + 8].copy_from_slice(&(60u32 << 20).to_le_bytes());
        patched += 1;
    }
    assert!(patched >= 1, "no kernel header found to patch");
    let image = dir.join("lying.raw");
    std::fs::write(&image, &bytes).unwrap();
    let w = watch(&["info", "--format", "json", image.to_str().unwrap()]);
    assert_eq!(w.code, 0, "{}", w.stderr);
    let info: serde_json::Value = serde_json::from_str(&w.stdout).unwrap();
    let truth = read_json(&dir.join("truth.json"));
    assert_eq!(info["kernel_pdb"], truth["image"]["kernel_pdb"]);
    assert!(
        w.peak_anon_kib < 32 * 1024,
        "identification held {} KiB: the claimed directory was read",
        w.peak_anon_kib
    );
}

/// 252 kernel-half top-level slots, each a table of 512 one-GiB large pages over the same
/// physical memory, and the kernel's MZ erased: the walk for kernel candidates meets 129,024
/// large mappings of one frame. Each frame is looked at once, so `info` ends at once (this took
/// 14 s on 32 MiB) and says the kernel was not found.
#[test]
fn a_quarter_million_large_pages_of_one_frame_end_quickly() {
    let (mut m, t) = windows(Mode::X64, 32 << 20, 10, 0, 19041);
    let base = m.pa_of(t.kernel_base) as usize;
    m.mem[base..base + 2].copy_from_slice(b"\0\0");
    let mut slots = 0;
    for slot in 256u64..512 {
        if slots == 252 || m.entry(m.dtb, slot) != 0 {
            continue;
        }
        for j in 0..512u64 {
            let va = 0xFFFF_0000_0000_0000 | (slot << 39) | (j << 30);
            m.map_large(va, 0, true);
        }
        slots += 1;
    }
    assert_eq!(slots, 252);
    let dir = scratch("hostile-large-pages");
    let image = write(&dir, "bomb.raw", &m.mem);
    let w = watch(&["info", "--format", "json", image.to_str().unwrap()]);
    assert!(w.code == 0 || w.code == 2, "{}", w.stderr);
    assert!(
        w.elapsed < Duration::from_secs(10),
        "info took {:?} on 32 MiB",
        w.elapsed
    );
}

/// The kernel header page of a hostile copy: `MZ`, a PE32+ header claiming a 64 MiB debug
/// directory, and at 0x800 sixteen CodeView entries (the most a candidate reads) whose 1 KiB
/// records are not `RSDS`: the costliest page a candidate can be.
fn hostile_header_page() -> Vec<u8> {
    use netcarve::synth::builder::{le16, le32};
    let mut b = vec![0u8; PAGE as usize];
    b[0..2].copy_from_slice(b"MZ");
    let pe = 0x80usize;
    le32(&mut b, 0x3C, pe as u32);
    b[pe..pe + 4].copy_from_slice(b"PE\0\0");
    let coff = pe + 4;
    le16(&mut b, coff, 0x8664);
    le16(&mut b, coff + 16, 0xF0);
    le16(&mut b, coff + 18, 0x22);
    let opt = coff + 20;
    le16(&mut b, opt, 0x20B);
    le32(&mut b, opt + 32, 0x1000);
    le32(&mut b, opt + 36, 0x200);
    le32(&mut b, opt + 56, 64 << 20);
    le32(&mut b, opt + 60, 0x400);
    le32(&mut b, opt + 108, 16);
    le32(&mut b, opt + 112 + 6 * 8, 0x800);
    le32(&mut b, opt + 112 + 6 * 8 + 4, 64 << 20);
    for e in 0..16 {
        let at = 0x800 + e * 28;
        le32(&mut b, at + 12, 2);
        le32(&mut b, at + 16, 0x400);
        le32(&mut b, at + 20, 0xC00);
    }
    b[0xC00..0xC04].copy_from_slice(b"XXXX");
    b
}

/// A win10 x64 machine with `frames` extra 2 MiB frames, each page of them a hostile kernel
/// header, mapped by large pages over the start of the range where kernels are loaded; the real
/// kernel moved to a 4 KiB-aligned base above them, so that every copy comes first in the
/// search order (2 MiB-aligned bases first, then by address) and the KDBG block's base is
/// erased. Returns the image and the real kernel's base.
fn header_copies_on_distinct_frames(frames: u64) -> (Vec<u8>, u64, support::machine::Truth) {
    let (mut m, t) = windows(Mode::X64, 16 << 20, 10, 0, 19041);
    let old_base = m.pa_of(t.kernel_base) as usize;
    m.mem[old_base..old_base + 2].copy_from_slice(b"\0\0");
    let start = m.mem.len() as u64;
    m.mem.resize((start + frames * (2 << 20)) as usize, 0);
    m.reserve(start, frames * (2 << 20));
    let page = hostile_header_page();
    for p in (start as usize..m.mem.len()).step_by(PAGE as usize) {
        m.mem[p..p + PAGE as usize].copy_from_slice(&page);
    }
    for i in 0..frames {
        // Every other 2 MiB slot: no two mappings continue each other, so each is a mapping
        // of its own, on a frame of its own.
        let va = 0xFFFF_F800_0000_0000 + i * (4 << 20);
        m.map_large(va, start + i * (2 << 20), false);
    }
    let base = 0xFFFF_F807_F000_1000u64;
    let image = tiny_kernel_pe(true, t.pdb_name, &GUID_BYTES, t.age, (10, 0, 19041, 1234));
    m.map_fresh(base, image.len() as u64);
    m.write_virt(base, &image);
    (m.mem, base, t)
}

/// Tens of thousands of hostile kernel headers on distinct large frames (so that looking at each
/// frame once does not help), each claiming a 64 MiB debug directory, all before the real kernel
/// in the search order: `info` still finds the real kernel, in bounded time (this took 7.5 s with
/// 4 such pages, 109 s with 16, when every candidate read its whole claimed directory).
#[test]
fn thousands_of_hostile_headers_on_distinct_frames_end_quickly() {
    // 130 frames: 66,560 copies, more than the 65,536 candidates the search used to keep (the
    // real kernel, listed after them, was then dropped without a word).
    let frames = 130;
    let (mem, base, t) = header_copies_on_distinct_frames(frames);
    let dir = scratch("hostile-header-copies");
    let image = write(&dir, "copies.raw", &mem);
    let w = watch(&["info", "--format", "json", image.to_str().unwrap()]);
    assert_eq!(w.code, 0, "{}", w.stderr);
    let info: serde_json::Value = serde_json::from_str(&w.stdout).unwrap();
    eprintln!(
        "{} hostile headers on {frames} frames: info took {:?}",
        frames * 512,
        w.elapsed
    );
    assert_eq!(info["kernel_base"], format!("{base:#x}"));
    assert_eq!(info["kernel_pdb"]["guid"], t.guid);
    assert!(
        w.elapsed < Duration::from_secs(10),
        "info took {:?}",
        w.elapsed
    );
}

/// Every run of consecutive frames among 24 hostile 2 MiB frames mapped again as a mapping of its
/// own (a large page per frame, an unmapped slot after each run): 300 distinct (frame, size)
/// mappings over 48 MiB, 1.3 million mapped pages, each a hostile kernel header. The search stops
/// at its page budget (2^20 pages) and its candidate read budget, says so, and ends quickly; the
/// real kernel, mapped after them all, is what it gave up.
#[test]
fn the_page_and_candidate_budgets_stop_the_kernel_search_with_warnings() {
    let frames = 24u64;
    let (mut m, t) = windows(Mode::X64, 16 << 20, 10, 0, 19041);
    let old_base = m.pa_of(t.kernel_base) as usize;
    m.mem[old_base..old_base + 2].copy_from_slice(b"\0\0");
    let start = m.mem.len() as u64;
    m.mem.resize((start + frames * (2 << 20)) as usize, 0);
    m.reserve(start, frames * (2 << 20));
    let page = hostile_header_page();
    for p in (start as usize..m.mem.len()).step_by(PAGE as usize) {
        m.mem[p..p + PAGE as usize].copy_from_slice(&page);
    }
    let mut slot = 0u64;
    let mut pages = 0u64;
    for first in 0..frames {
        for len in 1..=frames - first {
            for f in first..first + len {
                let va = 0xFFFF_F800_0000_0000 + slot * (2 << 20);
                m.map_large(va, start + f * (2 << 20), false);
                slot += 1;
            }
            slot += 1;
            pages += len * 512;
        }
    }
    assert!(pages > 1 << 20, "{pages} pages");
    let base = 0xFFFF_F807_F000_1000u64;
    let image = tiny_kernel_pe(true, t.pdb_name, &GUID_BYTES, t.age, (10, 0, 19041, 1234));
    m.map_fresh(base, image.len() as u64);
    m.write_virt(base, &image);
    let dir = scratch("hostile-search-budgets");
    let image = write(&dir, "budgets.raw", &m.mem);
    let w = watch(&["info", "--format", "json", image.to_str().unwrap()]);
    assert_eq!(w.code, 0, "{}", w.stderr);
    eprintln!("{pages} mapped hostile headers: info took {:?}", w.elapsed);
    let info: serde_json::Value = serde_json::from_str(&w.stdout).unwrap();
    let warnings = info["warnings"].to_string();
    assert!(
        warnings.contains("stopped after 1048576 mapped pages"),
        "{warnings}"
    );
    assert!(
        warnings.contains("gave up at its read budget"),
        "{warnings}"
    );
    assert!(info["kernel_pdb"].is_null(), "{}", w.stdout);
    assert!(
        w.elapsed < Duration::from_secs(10),
        "info took {:?}",
        w.elapsed
    );
    assert!(
        w.peak_anon_kib < 64 * 1024,
        "identification held {} KiB",
        w.peak_anon_kib
    );
}

/// A 1 TiB sparse raw file whose first 32 MiB are a synthesized image: whole-image passes skip
/// its holes (SEEK_DATA/SEEK_HOLE), so `info` and `scan` end in seconds (a plain pass took over
/// 300 s) with the endpoints the plain image has, while the holes still read as zeros.
#[test]
fn a_sparse_terabyte_raw_file_is_scanned_in_seconds() {
    let dir = scratch("hostile-sparse-terabyte");
    let plain = synth(&dir, &["--profile", "win10-19041-x64", "--size", "32M"]);
    let sparse = dir.join("sparse.raw");
    std::fs::copy(&plain, &sparse).unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&sparse)
        .unwrap();
    if let Err(e) = file.set_len(1 << 40) {
        return skip_or_fail(&format!("this file system holds no 1 TiB sparse file: {e}"));
    }
    drop(file);
    let w = watch(&["info", "--format", "json", sparse.to_str().unwrap()]);
    assert_eq!(w.code, 0, "{}", w.stderr);
    let info: serde_json::Value = serde_json::from_str(&w.stdout).unwrap();
    let truth = read_json(&dir.join("truth.json"));
    assert_eq!(info["kernel_pdb"], truth["image"]["kernel_pdb"]);
    assert_eq!(info["physical"]["size"], 1u64 << 40);
    let started = std::time::Instant::now();
    let (code, scanned, err) = scan_json(&sparse, &[]);
    let took = started.elapsed();
    eprintln!("1 TiB sparse: info {:?}, scan {took:?}", w.elapsed);
    assert_eq!(code, 0, "{err}");
    let (_, expected, _) = scan_json(&plain, &[]);
    assert_eq!(scanned["endpoints"], expected["endpoints"]);
    assert!(
        took < Duration::from_secs(20),
        "scan of the sparse file took {took:?}"
    );
}

/// `--hash` still hashes every byte of a sparse file, its holes as zeros.
#[test]
fn a_sparse_file_hashes_as_its_bytes() {
    let dir = scratch("hostile-sparse-hash");
    let plain = synth(&dir, &["--profile", "win7-x64", "--size", "16M"]);
    let sparse = dir.join("sparse.raw");
    std::fs::copy(&plain, &sparse).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&sparse)
        .unwrap();
    file.set_len(96 << 20).unwrap();
    // Data after a hole, and the file ending in one.
    use std::io::{Seek, SeekFrom, Write};
    file.seek(SeekFrom::Start(40 << 20)).unwrap();
    file.write_all(&[0x5Au8; 0x3000]).unwrap();
    drop(file);
    let w = watch(&[
        "info",
        "--hash",
        "--format",
        "json",
        sparse.to_str().unwrap(),
    ]);
    assert_eq!(w.code, 0, "{}", w.stderr);
    let info: serde_json::Value = serde_json::from_str(&w.stdout).unwrap();
    assert_eq!(info["sha256"], sha256_file(&sparse));
}
