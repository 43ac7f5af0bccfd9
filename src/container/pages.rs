//! Present pages looked up in a bitmap crash dump's own bitmap, without listing its runs.
//!
//! A bitmap dump (DumpType 5/6) stores its present pages in page-number order from `FirstPage`, so
//! a page's place in the file is the number of set bits below its own. A running total of set bits
//! every `BLOCK_BITS` pages (8 bytes per 2 MiB of physical memory) answers that with at most eight
//! popcounts. Listing the runs instead took a run every nine pages on Windows-like content: 2.7 MB
//! and 2.6 ms to build for a 4 GiB dump, growing with the image.
use super::Run;

const PAGE: u64 = 0x1000;
/// Pages per running total.
const BLOCK_BITS: u64 = 512;

/// The page bitmap of a dump; every method takes the dump's bytes, which hold the bitmap.
#[derive(Clone, Debug)]
pub struct PageBitmap {
    /// Where the bitmap starts in the file and how many bits (pages) it describes; the bytes are
    /// inside the file (checked by [`PageBitmap::new`]'s caller).
    bitmap_offset: usize,
    bitmap_len: usize,
    bits: u64,
    /// File offset of the first stored page.
    first_page: u64,
    /// Set bits below each block of `BLOCK_BITS` bits.
    set_before_block: Vec<u64>,
    present_pages: u64,
    /// Stretches of set bits (what a run list would hold).
    runs: u64,
    /// One past the highest set bit (0 when none is set).
    end_page: u64,
}

impl PageBitmap {
    /// Indexes the `bits`-bit bitmap at `file[bitmap_offset..]` (its `bits.div_ceil(8)` bytes must
    /// be inside `file`) for pages stored from `first_page`.
    pub fn new(file: &[u8], bitmap_offset: usize, bits: u64, first_page: u64) -> PageBitmap {
        let bitmap_len = usize::try_from(bits.div_ceil(8)).unwrap_or(usize::MAX);
        let mut index = PageBitmap {
            bitmap_offset,
            bitmap_len,
            bits,
            first_page,
            set_before_block: Vec::with_capacity(bits.div_ceil(BLOCK_BITS) as usize),
            present_pages: 0,
            runs: 0,
            end_page: 0,
        };
        let bitmap = index.bitmap(file);
        let mut below = 0u64; // the previous word's top bit
        for (first_bit, word) in bitmap_words(bitmap, bits, 0, bits) {
            if first_bit % BLOCK_BITS == 0 {
                index.set_before_block.push(index.present_pages);
            }
            index.present_pages += u64::from(word.count_ones());
            index.runs += run_starts(word, below);
            below = word >> 63;
            if word != 0 {
                index.end_page = first_bit + 64 - u64::from(word.leading_zeros());
            }
        }
        index
    }

    /// The bitmap's bytes (bits past the file's end read as clear).
    fn bitmap<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        let end = self
            .bitmap_offset
            .saturating_add(self.bitmap_len)
            .min(file.len());
        file.get(self.bitmap_offset..end).unwrap_or(&[])
    }

    pub fn present_pages(&self) -> u64 {
        self.present_pages
    }

    pub fn run_count(&self) -> u64 {
        self.runs
    }

    /// One past the highest present physical address.
    pub fn end(&self) -> u64 {
        self.end_page * PAGE
    }

    /// File offset of the first stored page.
    pub fn first_page(&self) -> u64 {
        self.first_page
    }

    /// File offset one past the last stored page.
    pub fn stored_end(&self) -> u64 {
        self.first_page + self.present_pages * PAGE
    }

    /// Set bits below bit `n` (`n <= bits`).
    fn rank(&self, bitmap: &[u8], n: u64) -> u64 {
        let block = n / BLOCK_BITS;
        let Some(&before) = self.set_before_block.get(block as usize) else {
            return self.present_pages;
        };
        let mut set = before;
        for (first_bit, word) in bitmap_words(bitmap, self.bits, block * BLOCK_BITS, n) {
            let word = if n - first_bit < 64 {
                word & ((1u64 << (n - first_bit)) - 1)
            } else {
                word
            };
            set += u64::from(word.count_ones());
        }
        set
    }

    /// The bit number of the set bit with `rank` set bits below it (`rank < present_pages`).
    fn select(&self, bitmap: &[u8], rank: u64) -> Option<u64> {
        if rank >= self.present_pages {
            return None;
        }
        let block = self
            .set_before_block
            .partition_point(|&before| before <= rank)
            .checked_sub(1)?;
        let mut left = rank - self.set_before_block[block];
        let from = block as u64 * BLOCK_BITS;
        for (first_bit, mut word) in bitmap_words(bitmap, self.bits, from, self.bits) {
            let ones = u64::from(word.count_ones());
            if left < ones {
                for _ in 0..left {
                    word &= word - 1;
                }
                return Some(first_bit + u64::from(word.trailing_zeros()));
            }
            left -= ones;
        }
        None
    }

    /// File offset of physical page `pfn`, if it is present.
    pub fn page_offset(&self, file: &[u8], pfn: u64) -> Option<u64> {
        if pfn >= self.bits {
            return None;
        }
        let bitmap = self.bitmap(file);
        let word = word_at(bitmap, self.bits, pfn / 64 * 64);
        if word >> (pfn % 64) & 1 == 0 {
            return None;
        }
        Some(self.first_page + self.rank(bitmap, pfn) * PAGE)
    }

    /// Calls `f` with each stretch of present pages inside the physical range `[lo, hi)`, clipped
    /// to it, in order.
    pub fn for_each_run_between(&self, file: &[u8], lo: u64, hi: u64, mut f: impl FnMut(Run)) {
        let bitmap = self.bitmap(file);
        let first = lo / PAGE;
        let last = hi.div_ceil(PAGE).min(self.bits);
        if first >= last {
            return;
        }
        let mut stored = self.first_page + self.rank(bitmap, first) * PAGE;
        for_each_run(bitmap, first, last, |start, end| {
            let run = Run {
                phys: start * PAGE,
                len: (end - start) * PAGE,
                file_offset: stored,
            };
            stored += run.len;
            if let Some(part) = run.clip_phys(lo, hi) {
                f(part);
            }
        });
    }

    /// The present pages stored in the file bytes `[start, start + len)`, as runs cut at the
    /// range's ends, in file order (which is physical order).
    pub fn pieces(&self, file: &[u8], start: u64, len: u64) -> Vec<Run> {
        let end = start.saturating_add(len).min(self.stored_end());
        let start = start.max(self.first_page);
        if start >= end {
            return vec![];
        }
        let bitmap = self.bitmap(file);
        let first_rank = (start - self.first_page) / PAGE;
        let last_rank = (end - self.first_page - 1) / PAGE;
        let (Some(first), Some(last)) = (
            self.select(bitmap, first_rank),
            self.select(bitmap, last_rank),
        ) else {
            return vec![];
        };
        let mut pieces = vec![];
        self.for_each_run_between(file, first * PAGE, (last + 1) * PAGE, |run| {
            pieces.extend(run.clip_file(start, end));
        });
        pieces
    }

    /// Every run, listed (for whole-image passes that want them).
    pub fn runs(&self, file: &[u8]) -> Vec<Run> {
        let mut runs = Vec::with_capacity(usize::try_from(self.runs).unwrap_or(0));
        self.for_each_run_between(file, 0, self.end(), |run| runs.push(run));
        runs
    }
}

/// Bits `first_bit..` of `bitmap` (`first_bit` a multiple of 64) as one word; bit `n` is bit
/// `n % 8` of byte `n / 8`, and bits past the bitmap's bytes or past `bits` are clear.
fn word_at(bitmap: &[u8], bits: u64, first_bit: u64) -> u64 {
    if bits <= first_bit {
        return 0;
    }
    let at = usize::try_from(first_bit / 8).unwrap_or(usize::MAX);
    let stored = bitmap.get(at..).unwrap_or(&[]);
    let mut word = match stored.first_chunk::<8>() {
        Some(full) => u64::from_le_bytes(*full),
        None => {
            // Fewer than 8 bytes left (else `first_chunk` would have given them).
            let mut padded = [0u8; 8];
            padded[..stored.len()].copy_from_slice(stored);
            u64::from_le_bytes(padded)
        }
    };
    if bits - first_bit < 64 {
        word &= (1u64 << (bits - first_bit)) - 1;
    }
    word
}

/// The words holding bits `from..to` of a `bits`-bit bitmap (`from` rounded down to a multiple
/// of 64): `(number of the word's first bit, word)`.
fn bitmap_words(
    bitmap: &[u8],
    bits: u64,
    from: u64,
    to: u64,
) -> impl Iterator<Item = (u64, u64)> + '_ {
    (from / 64 * 64..to)
        .step_by(64)
        .map(move |first_bit| (first_bit, word_at(bitmap, bits, first_bit)))
}

/// Set bits and stretches of set bits among the first `bits` bits of `bitmap`.
pub(super) fn census(bitmap: &[u8], bits: u64) -> (u64, u64) {
    let (mut set, mut runs) = (0u64, 0u64);
    let mut below = 0u64; // the previous word's top bit
    for (_, word) in bitmap_words(bitmap, bits, 0, bits) {
        set += u64::from(word.count_ones());
        runs += run_starts(word, below);
        below = word >> 63;
    }
    (set, runs)
}

/// Stretches of set bits that start in `word`, given `below`, the top bit of the word before: one
/// starts at each set bit whose lower neighbour is clear.
fn run_starts(word: u64, below: u64) -> u64 {
    u64::from((word & !((word << 1) | below)).count_ones())
}

/// Bytes of running totals a [`PageBitmap`] of `bits` bits keeps.
pub(super) fn index_bytes(bits: u64) -> u64 {
    bits.div_ceil(BLOCK_BITS) * 8
}

/// Calls `f(start, end)` for each stretch `start..end` of set bits among bits `from..to` of
/// `bitmap` (bits outside count as clear), in order.
///
/// A multi-GiB dump has millions of bits: they are read 64 at a time, and only the positions where
/// a bit differs from the one below it (a run's start or end) are visited.
pub(super) fn for_each_run(bitmap: &[u8], from: u64, to: u64, mut f: impl FnMut(u64, u64)) {
    let mut open: Option<u64> = None;
    let mut below = 0u64;
    // Bits from `to` on are masked as past the end.
    for (first_bit, word) in bitmap_words(bitmap, to, from, to) {
        let word = if first_bit < from {
            word & (u64::MAX << (from - first_bit))
        } else {
            word
        };
        let mut changes = word ^ ((word << 1) | below);
        below = word >> 63;
        while changes != 0 {
            let bit = changes.trailing_zeros();
            changes &= changes - 1;
            let n = first_bit + u64::from(bit);
            match open.take() {
                Some(start) => f(start, n),
                None => open = Some(n),
            }
        }
    }
    if let Some(start) = open {
        f(start, to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random bitmaps from empty to full, with lengths on and off word and block boundaries.
    fn bitmaps() -> Vec<(Vec<u8>, u64)> {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut out = vec![];
        for len in [0usize, 1, 7, 8, 9, 31, 64, 65, 200, 1000] {
            for density in [0u64, 1, 4, 7, 8] {
                let bitmap: Vec<u8> = (0..len)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        match density {
                            0 => 0,
                            8 => 0xFF,
                            d => (0..8)
                                .fold(0u8, |b, i| b | u8::from((seed >> (i * 7)) % 8 < d) << i),
                        }
                    })
                    .collect();
                // `bits` past the stored bytes as well as inside them, and on word boundaries.
                for bits in [
                    0,
                    1,
                    63,
                    64,
                    65,
                    len as u64 * 8,
                    (len as u64 * 8).saturating_sub(3),
                    len as u64 * 8 + 70,
                ] {
                    out.push((bitmap.clone(), bits));
                }
            }
        }
        out
    }

    /// The bit-at-a-time answer: stretches of set bits among the first `bits` bits.
    fn naive_runs(bitmap: &[u8], bits: u64) -> Vec<(u64, u64)> {
        let set = |n: u64| {
            bitmap
                .get((n / 8) as usize)
                .is_some_and(|b| b >> (n % 8) & 1 == 1)
        };
        let mut runs: Vec<(u64, u64)> = vec![];
        for n in (0..bits).filter(|&n| set(n)) {
            match runs.last_mut() {
                Some(last) if last.1 == n => last.1 = n + 1,
                _ => runs.push((n, n + 1)),
            }
        }
        runs
    }

    #[test]
    fn runs_and_census_agree_with_a_bit_by_bit_search() {
        for (bitmap, bits) in bitmaps() {
            let want = naive_runs(&bitmap, bits);
            let mut found = vec![];
            for_each_run(&bitmap, 0, bits, |start, end| found.push((start, end)));
            assert_eq!(found, want, "len {} bits {bits}", bitmap.len());
            let set: u64 = want.iter().map(|(s, e)| e - s).sum();
            assert_eq!(census(&bitmap, bits), (set, want.len() as u64));
            // A range of bits: the stretches clipped to it.
            for (from, to) in [(0, bits), (1, bits), (63, 130), (64, 64), (100, 700)] {
                let to = to.min(bits);
                let clipped: Vec<(u64, u64)> = want
                    .iter()
                    .map(|&(s, e)| (s.max(from), e.min(to)))
                    .filter(|(s, e)| s < e)
                    .collect();
                let mut found = vec![];
                for_each_run(&bitmap, from, to, |start, end| found.push((start, end)));
                assert_eq!(found, clipped, "bits {bits} range {from}..{to}");
            }
        }
    }

    /// Lookups, run lists, ranges and file windows of the index against the runs the bitmap
    /// describes, with the bitmap inside a file and the pages stored from an odd offset.
    #[test]
    fn index_answers_as_the_run_list_does() {
        const AT: usize = 24;
        let mut checked_pieces = 0;
        for (bitmap, bits) in bitmaps() {
            let runs = naive_runs(&bitmap, bits);
            let first_page = 0x1234u64;
            let mut file = vec![0u8; AT];
            file.extend(&bitmap);
            let index = PageBitmap::new(&file, AT, bits, first_page);
            let mut listed = vec![];
            let mut stored = first_page;
            for &(s, e) in &runs {
                listed.push(Run {
                    phys: s * PAGE,
                    len: (e - s) * PAGE,
                    file_offset: stored,
                });
                stored += (e - s) * PAGE;
            }
            assert_eq!(index.runs(&file), listed, "bits {bits}");
            assert_eq!(index.run_count(), listed.len() as u64);
            assert_eq!(index.stored_end(), stored);
            assert_eq!(index.end(), listed.last().map_or(0, |r| r.phys_end()));
            for pfn in 0..bits + 70 {
                let want = listed
                    .iter()
                    .find(|r| r.phys <= pfn * PAGE && pfn * PAGE < r.phys_end())
                    .map(|r| r.file_offset + (pfn * PAGE - r.phys));
                assert_eq!(index.page_offset(&file, pfn), want, "bits {bits} pfn {pfn}");
            }
            // The listed runs cut to `[lo, hi)` of physical addresses, or of file offsets.
            let clip = |lo: u64, hi: u64, in_file: bool| -> Vec<Run> {
                listed
                    .iter()
                    .filter_map(|r| {
                        let start = if in_file { r.file_offset } else { r.phys };
                        let from = start.max(lo);
                        let to = (start + r.len).min(hi);
                        (from < to).then(|| Run {
                            phys: r.phys + (from - start),
                            len: to - from,
                            file_offset: r.file_offset + (from - start),
                        })
                    })
                    .collect()
            };
            let end = bits * PAGE + 0x3000;
            for (lo, hi) in [(0, end), (0x800, end), (0x1000, 0x41_000), (0x7ff, 0x800)] {
                let mut found = vec![];
                index.for_each_run_between(&file, lo, hi, |r| found.push(r));
                assert_eq!(found, clip(lo, hi, false), "{lo:#x}..{hi:#x}");
            }
            let file_end = stored + 0x3000;
            for window in [0x1000u64, 0x2800, 0x10000] {
                for start in (0..file_end).step_by(window as usize) {
                    let want = clip(start, start + window, true);
                    checked_pieces += want.len();
                    assert_eq!(
                        index.pieces(&file, start, window),
                        want,
                        "bits {bits} window {start:#x}+{window:#x}"
                    );
                }
            }
        }
        assert!(checked_pieces > 10_000, "{checked_pieces}");
    }
}
