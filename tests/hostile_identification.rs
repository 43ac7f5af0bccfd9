//! Identification time bombs: images built so that finding the kernel would cost without bound.
//! Identification must stay bounded in work and memory and still find what is there.
mod support;

use std::time::Duration;
use support::machine::{windows, Mode};
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
