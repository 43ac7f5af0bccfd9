//! A kernel header that lies about its debug directory (60 MiB where a kernel's is a few entries):
//! identification must still find the kernel through its CodeView record, reading a bounded
//! number of entries and bytes per candidate, not the 60 MiB the header claims (a hostile image
//! offers thousands of such candidates; each used to cost a 60 MiB buffer and its reads).
mod support;

use support::*;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

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
