//! Inputs for the Xpress codec tests: the sizes and kinds of data a hibernation file compresses
//! (zero pages, kernel-like pages of pointers, strings and small counters, incompressible pages).
use super::Rng;

/// The sizes every kind is tried at: empty, one byte, a page, one Huffman block, and three blocks
/// and a bit (a block boundary crossed twice, a short last block).
pub const SIZES: [usize; 5] = [0, 1, 4096, 65536, 65536 * 3 + 17];

/// Page-like memory: per 4 KiB page one of zeros, 8-byte kernel pointers with shared high bits,
/// UTF-16 and ASCII strings, small little-endian counters, or random bytes.
pub fn page_like(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 4096);
    while out.len() < len {
        let mut page = vec![0u8; 4096];
        match rng.below(5) {
            0 => {}
            1 => {
                for slot in page.chunks_mut(8) {
                    let p = 0xFFFF_F800_0000_0000u64 | (rng.below(1 << 20) << 4);
                    slot.copy_from_slice(&p.to_le_bytes());
                }
            }
            2 => {
                let words: [&str; 6] = [
                    "svchost.exe",
                    "\\Device\\Tcp",
                    "lsass",
                    "TcpE",
                    "Proc",
                    "C:\\Windows\\System32",
                ];
                let mut at = 0;
                while at < 4000 {
                    let w = rng.pick(&words).as_bytes();
                    for (i, &b) in w.iter().enumerate() {
                        if rng.chance(2) {
                            page[at + i * 2] = b;
                        } else {
                            page[at + i] = b;
                        }
                    }
                    at += w.len() * 2 + rng.below(16) as usize;
                }
            }
            3 => {
                for (i, slot) in page.chunks_mut(4).enumerate() {
                    slot.copy_from_slice(&((i as u32 / 3) + rng.below(4) as u32).to_le_bytes());
                }
            }
            _ => rng.fill(&mut page),
        }
        out.extend_from_slice(&page);
    }
    out.truncate(len);
    out
}

pub fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng::new(seed).fill(&mut v);
    v
}

/// Every (name, input) the codec tests run on.
pub fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut all = Vec::new();
    for &len in &SIZES {
        all.push((format!("zeros-{len}"), vec![0u8; len]));
        all.push((format!("random-{len}"), random(len, len as u64 + 1)));
        all.push((format!("pages-{len}"), page_like(len, len as u64 + 7)));
    }
    // A byte repeated with a period the match finder must reach back for, and runs of every
    // length class (short, nibble, byte, 16-bit).
    all.push(("period-7".into(), b"netcarv".repeat(3000)));
    let mut runs = Vec::new();
    for (i, len) in [3usize, 9, 10, 24, 25, 279, 280, 5000, 70_000]
        .iter()
        .enumerate()
    {
        runs.extend(std::iter::repeat_n(i as u8 + 1, *len));
        runs.push(0xEE);
    }
    all.push(("runs".into(), runs));
    all
}
