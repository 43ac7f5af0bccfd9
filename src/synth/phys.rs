//! Synthetic physical memory: a few structured pages held in memory, every other page generated on
//! demand from (seed, page number) as realistic noise, so that memory use does not grow with the
//! image size. Also the frame allocator (scattered frames, never an identity map) and the hole.
use super::rng::{mix, Rng};
use std::collections::{BTreeMap, BTreeSet};

pub const PAGE: u64 = 0x1000;

/// Pool tags that must never appear in noise: only planted objects and decoys may carry them.
const SCRUBBED_TAGS: [&[u8; 4]; 6] = [b"TcpE", b"TTcb", b"TcpL", b"UdpA", b"TcTW", b"Proc"];

const WORDS: [&str; 24] = [
    "the ",
    "system ",
    "error ",
    "config ",
    "C:\\Windows\\System32\\",
    "svchost ",
    "http://",
    "update ",
    "session ",
    "<div class=\"row\">",
    "user ",
    "token ",
    "registry ",
    "service ",
    "Microsoft ",
    "network ",
    "0x00000000 ",
    "GET /index.html HTTP/1.1\r\n",
    "{\"id\":",
    "cache ",
    "font ",
    "kernel32.dll ",
    "\r\n",
    "SOFTWARE\\Policies\\ ",
];

pub struct PhysMem {
    pub pages: u64,
    seed: u64,
    /// Absent physical pages `[start, end)` (a firmware hole), when the container can express one.
    pub hole: Option<(u64, u64)>,
    structured: BTreeMap<u64, Box<[u8]>>,
    used: BTreeSet<u64>,
}

impl PhysMem {
    pub fn new(size: u64, seed: u64, hole: Option<(u64, u64)>) -> PhysMem {
        let mut used = BTreeSet::new();
        // Real page 0 and the first frames hold firmware data; keep them as noise.
        used.insert(0);
        PhysMem {
            pages: size / PAGE,
            seed,
            hole,
            structured: BTreeMap::new(),
            used,
        }
    }

    pub fn in_hole(&self, pfn: u64) -> bool {
        self.hole.is_some_and(|(s, e)| pfn >= s && pfn < e)
    }

    pub fn structured_pfns(&self) -> impl Iterator<Item = u64> + '_ {
        self.structured.keys().copied()
    }

    /// A free frame at a random place (never adjacent to `avoid_next_to`, so a two-page object
    /// crosses onto a discontiguous frame).
    pub fn alloc_frame(&mut self, rng: &mut Rng, avoid_next_to: Option<u64>) -> u64 {
        loop {
            let pfn = rng.range(0x20, self.pages);
            if self.used.contains(&pfn) || self.in_hole(pfn) {
                continue;
            }
            if let Some(a) = avoid_next_to {
                if pfn == a + 1 || pfn + 1 == a {
                    continue;
                }
            }
            self.used.insert(pfn);
            return pfn;
        }
    }

    /// Reserves `count` frames starting at a multiple of `align` frames (large pages); returns the
    /// first frame. Callers reserve large regions before scattering small frames.
    pub fn alloc_aligned(&mut self, rng: &mut Rng, count: u64, align: u64) -> Option<u64> {
        let slots = self.pages / align;
        for _ in 0..1000 {
            let start = rng.range(1, slots.max(2)) * align;
            if start + count > self.pages {
                continue;
            }
            if (start..start + count).any(|p| self.used.contains(&p) || self.in_hole(p)) {
                continue;
            }
            self.used.extend(start..start + count);
            return Some(start);
        }
        None
    }

    /// Reserves `count` physically contiguous frames anywhere.
    pub fn alloc_contiguous(&mut self, rng: &mut Rng, count: u64) -> u64 {
        self.alloc_contiguous_in(rng, count, 0x20, self.pages)
    }

    /// Reserves `count` contiguous frames starting in `lo..hi` (the top-level page tables, which
    /// Windows places low: Volatility only looks for them there).
    pub fn alloc_contiguous_in(&mut self, rng: &mut Rng, count: u64, lo: u64, hi: u64) -> u64 {
        loop {
            let start = rng.range(lo, hi.min(self.pages.saturating_sub(count)));
            if (start..start + count).any(|p| self.used.contains(&p) || self.in_hole(p)) {
                continue;
            }
            self.used.extend(start..start + count);
            return start;
        }
    }

    pub fn mark_used(&mut self, pfn: u64) {
        self.used.insert(pfn);
    }

    /// The writable bytes of a structured page; a page first touched here starts as zeros, or as
    /// noise with `noisy` (slack around objects looks like reused memory).
    pub fn page_mut(&mut self, pfn: u64, noisy: bool) -> &mut [u8] {
        let seed = self.seed;
        self.structured.entry(pfn).or_insert_with(|| {
            let mut b = vec![0u8; PAGE as usize].into_boxed_slice();
            if noisy {
                noise_page(seed, pfn, &mut b);
            }
            b
        })
    }

    /// Writes bytes at a physical address (may cross pages).
    pub fn write(&mut self, pa: u64, bytes: &[u8]) {
        let mut done = 0usize;
        while done < bytes.len() {
            let cur = pa + done as u64;
            let off = (cur % PAGE) as usize;
            let n = (PAGE as usize - off).min(bytes.len() - done);
            let page = self.page_mut(cur / PAGE, false);
            page[off..off + n].copy_from_slice(&bytes[done..done + n]);
            done += n;
        }
    }

    pub fn read(&self, pa: u64, buf: &mut [u8]) {
        let mut done = 0usize;
        while done < buf.len() {
            let cur = pa + done as u64;
            let off = (cur % PAGE) as usize;
            let n = (PAGE as usize - off).min(buf.len() - done);
            let mut tmp = [0u8; PAGE as usize];
            self.page_into(cur / PAGE, &mut tmp);
            buf[done..done + n].copy_from_slice(&tmp[off..off + n]);
            done += n;
        }
    }

    /// The bytes of any page: structured content, or its noise.
    pub fn page_into(&self, pfn: u64, out: &mut [u8]) {
        match self.structured.get(&pfn) {
            Some(p) => out.copy_from_slice(p),
            None => noise_page(self.seed, pfn, out),
        }
    }
}

/// Deterministic filler for one page: mostly random bytes, some zero pages, some text-like pages.
/// Pool tags are scrubbed so that noise never forges an endpoint.
fn noise_page(seed: u64, pfn: u64, out: &mut [u8]) {
    let h = mix(seed ^ mix(pfn.wrapping_add(0x5EED)));
    let mut rng = Rng::new(h);
    match h % 16 {
        0 | 1 => out.fill(0),
        2 | 3 => {
            let mut i = 0;
            while i < out.len() {
                let w = WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes();
                let n = w.len().min(out.len() - i);
                out[i..i + n].copy_from_slice(&w[..n]);
                i += n;
            }
        }
        4 => {
            // Sparse page: mostly zero with a few scattered qwords (freed kernel memory).
            out.fill(0);
            for _ in 0..32 {
                let at = (rng.below(out.len() as u64 / 8) * 8) as usize;
                out[at..at + 8].copy_from_slice(&rng.next_u64().to_le_bytes());
            }
        }
        _ => rng.fill(out),
    }
    scrub_tags(out);
}

fn scrub_tags(page: &mut [u8]) {
    for tag in SCRUBBED_TAGS {
        let mut start = 0;
        while let Some(i) = memchr::memmem::find(&page[start..], tag) {
            page[start + i] ^= 0x20; // `TcpE` -> `tcpE`: no longer a tag
            start += i + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn noise_is_deterministic_and_tag_free() {
        let mut a = vec![0u8; 4096];
        let mut b = vec![0u8; 4096];
        for pfn in 0..64 {
            noise_page(3, pfn, &mut a);
            noise_page(3, pfn, &mut b);
            assert_eq!(a, b);
            for t in SCRUBBED_TAGS {
                assert!(memchr::memmem::find(&a, t).is_none());
            }
        }
    }
}
