//! The hot loop: finding the pool-header slots whose tag may be one of those looked for.
//!
//! Every byte of the image passes through here once, so at the host's memory speed (30 GB/s per
//! core and more) the loop itself can be the limit: a scalar test of each slot's first tag byte
//! ran at 25-26 GB/s on one core where `memchr::memmem` ran at 28-30, and the vector test below at
//! 29-31. Only slots that pass the cheap tests reach the caller, who checks the full tag.

/// Bytes tested per step of either loop: one cache line.
const BLOCK: usize = 64;

/// At most this many distinct first tag bytes are tested in vector registers (more fall back to
/// the table test); every built-in profile has two (`T`, `U`).
const VECTOR_FIRST_BYTES: usize = 4;

/// Cheap tests that a slot's tag (bytes 4..8 of a pool header) may be one of the tags looked for.
#[derive(Clone, Debug)]
pub(super) struct SlotFilter {
    /// Whether some tag starts with this byte: the first test.
    first_byte: [bool; 256],
    /// Bit `p` is set when some tag starts with the two bytes `p` (little-endian): the second
    /// test, on the few blocks that pass the first. For uniformly random bytes and the five x64
    /// tags (first bytes `T`, `U`; prefixes `Tc`, `TT`, `Ud`), a four-slot block passes the first
    /// test about once in 32 and the second about once in 5,500.
    prefixes: Box<[u64; 1024]>,
    /// The distinct first bytes (the first repeated to fill the array) when there are few enough
    /// for the vector test and the CPU can run it.
    vector_first_bytes: Option<[u8; VECTOR_FIRST_BYTES]>,
}

impl SlotFilter {
    pub(super) fn new(tags: impl Iterator<Item = u32>) -> SlotFilter {
        let mut filter = SlotFilter {
            first_byte: [false; 256],
            prefixes: Box::new([0; 1024]),
            vector_first_bytes: None,
        };
        for tag in tags {
            filter.first_byte[(tag & 0xff) as usize] = true;
            let prefix = (tag & 0xffff) as usize;
            filter.prefixes[prefix / 64] |= 1 << (prefix % 64);
        }
        if vector_test_available() {
            filter.vector_first_bytes = filter.distinct_first_bytes();
        }
        filter
    }

    /// The first bytes, each once and then the first repeated, if there are 1 to
    /// `VECTOR_FIRST_BYTES` of them.
    fn distinct_first_bytes(&self) -> Option<[u8; VECTOR_FIRST_BYTES]> {
        let bytes: Vec<u8> = (0..=255u8)
            .filter(|&b| self.first_byte[usize::from(b)])
            .collect();
        let first = *bytes.first()?;
        if bytes.len() > VECTOR_FIRST_BYTES {
            return None;
        }
        let mut out = [first; VECTOR_FIRST_BYTES];
        out[..bytes.len()].copy_from_slice(&bytes);
        Some(out)
    }

    #[inline(always)]
    fn prefix_marked(&self, slot: &[u8]) -> bool {
        let prefix = usize::from(u16::from_le_bytes([slot[4], slot[5]]));
        self.prefixes[prefix / 64] >> (prefix % 64) & 1 != 0
    }

    /// Whether any of the `BLOCK / STEP` slots of a block has a marked prefix.
    #[inline(always)]
    fn block_prefix_marked<const STEP: usize>(&self, block: &[u8; BLOCK]) -> bool {
        let mut any = false;
        for slot in 0..BLOCK / STEP {
            any |= self.prefix_marked(&block[slot * STEP..]);
        }
        any
    }
}

#[cfg(target_arch = "x86_64")]
fn vector_test_available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

#[cfg(not(target_arch = "x86_64"))]
fn vector_test_available() -> bool {
    false
}

/// Calls `found(offset, tag)` for each `align`-byte slot (the pool-header size: 8 or 16) of `bytes`
/// whose tag passes `filter`, and returns how many bytes of whole slots it covered.
pub(super) fn search_slots(
    bytes: &[u8],
    align: u64,
    filter: &SlotFilter,
    found: &mut dyn FnMut(usize, u32),
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if let Some(first_bytes) = filter.vector_first_bytes {
        // SAFETY: `vector_first_bytes` is set only when the CPU reported AVX2.
        return unsafe {
            match align {
                8 => vector_slots::<8>(bytes, filter, first_bytes, found),
                _ => vector_slots::<16>(bytes, filter, first_bytes, found),
            }
        };
    }
    table_search_slots(bytes, align, filter, found)
}

/// [`search_slots`] without the vector test.
fn table_search_slots(
    bytes: &[u8],
    align: u64,
    filter: &SlotFilter,
    found: &mut dyn FnMut(usize, u32),
) -> usize {
    match align {
        8 => table_slots::<8>(bytes, filter, found),
        _ => table_slots::<16>(bytes, filter, found),
    }
}

/// The portable loop. It tests the first tag byte of each slot of a block through a table with one
/// branch per block; the slot size is a constant so that every offset is an immediate and the loop
/// stays in registers. The few blocks that pass get the two-byte test inline, and only a block
/// that passes that too leaves the loop.
fn table_slots<const STEP: usize>(
    bytes: &[u8],
    filter: &SlotFilter,
    found: &mut dyn FnMut(usize, u32),
) -> usize {
    let first_byte = &filter.first_byte;
    let (blocks, rest) = bytes.as_chunks::<BLOCK>();
    for (b, block) in blocks.iter().enumerate() {
        let mut any = false;
        for slot in 0..BLOCK / STEP {
            any |= first_byte[usize::from(block[slot * STEP + 4])];
        }
        if any && filter.block_prefix_marked::<STEP>(block) {
            each_slot::<STEP>(block, b * BLOCK, filter, found);
        }
    }
    let done = blocks.len() * BLOCK;
    done + each_slot::<STEP>(rest, done, filter, found)
}

/// The AVX2 loop: each block is compared with every first byte in two registers, and one mask
/// test picks the tag positions (byte 4 of each slot). Same results as [`table_slots`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn vector_slots<const STEP: usize>(
    bytes: &[u8],
    filter: &SlotFilter,
    first_bytes: [u8; VECTOR_FIRST_BYTES],
    found: &mut dyn FnMut(usize, u32),
) -> usize {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set1_epi8, _mm256_setzero_si256,
    };
    // Bit i of the mask is byte i of either 32-byte half: keep each slot's first tag byte.
    let mut tag_positions = 0u32;
    for slot in 0..32 / STEP {
        tag_positions |= 1 << (slot * STEP + 4);
    }
    let wanted = first_bytes.map(|b| _mm256_set1_epi8(b as i8));
    let (blocks, rest) = bytes.as_chunks::<BLOCK>();
    for (b, block) in blocks.iter().enumerate() {
        let (low, high) = block.split_at(32);
        // SAFETY: each half is 32 readable bytes, and these loads need no alignment.
        let (low, high) = unsafe {
            (
                _mm256_loadu_si256(low.as_ptr().cast::<__m256i>()),
                _mm256_loadu_si256(high.as_ptr().cast::<__m256i>()),
            )
        };
        let mut equal = _mm256_setzero_si256();
        for w in wanted {
            equal = _mm256_or_si256(
                equal,
                _mm256_or_si256(_mm256_cmpeq_epi8(low, w), _mm256_cmpeq_epi8(high, w)),
            );
        }
        if (_mm256_movemask_epi8(equal) as u32) & tag_positions != 0
            && filter.block_prefix_marked::<STEP>(block)
        {
            each_slot::<STEP>(block, b * BLOCK, filter, found);
        }
    }
    let done = blocks.len() * BLOCK;
    done + each_slot::<STEP>(rest, done, filter, found)
}

/// Calls `found` with the offset (from `base`) and tag of every whole slot whose tag prefix is
/// marked; returns the bytes of whole slots covered.
#[cold]
#[inline(never)]
fn each_slot<const STEP: usize>(
    bytes: &[u8],
    base: usize,
    filter: &SlotFilter,
    found: &mut dyn FnMut(usize, u32),
) -> usize {
    let (slots, _) = bytes.as_chunks::<STEP>();
    for (i, slot) in slots.iter().enumerate() {
        if filter.prefix_marked(slot) {
            found(
                base + i * STEP,
                u32::from_le_bytes([slot[4], slot[5], slot[6], slot[7]]),
            );
        }
    }
    slots.len() * STEP
}

#[cfg(test)]
mod tests {
    use super::*;

    type Search = fn(&[u8], u64, &SlotFilter, &mut dyn FnMut(usize, u32)) -> usize;

    fn tag(t: &[u8; 4]) -> u32 {
        u32::from_le_bytes(*t)
    }

    /// Every whole slot whose first two tag bytes are some tag's: what both loops must report.
    fn reference(bytes: &[u8], step: usize, tags: &[u32]) -> Vec<(usize, u32)> {
        bytes
            .chunks_exact(step)
            .enumerate()
            .map(|(i, s)| (i * step, u32::from_le_bytes([s[4], s[5], s[6], s[7]])))
            .filter(|(_, t)| tags.iter().any(|w| w & 0xffff == t & 0xffff))
            .collect()
    }

    fn run(search: Search, bytes: &[u8], step: u64, f: &SlotFilter) -> (Vec<(usize, u32)>, usize) {
        let mut hits = vec![];
        let covered = search(bytes, step, f, &mut |at, t| hits.push((at, t)));
        (hits, covered)
    }

    /// Random bytes with whole tags and lone first bytes planted at and off slot positions,
    /// across block ends; both slot sizes; lengths that end in partial blocks and partial slots.
    #[test]
    fn vector_and_table_loops_find_the_same_slots() {
        let tag_sets: [&[u32]; 3] = [
            &[
                tag(b"TcpE"),
                tag(b"TTcb"),
                tag(b"TcpL"),
                tag(b"UdpA"),
                tag(b"TcTW"),
            ],
            &[tag(b"TcpE"), tag(b"Abcd"), tag(b"Bcde"), tag(b"Cdef")],
            // Five distinct first bytes: more than the vector test takes.
            &[
                tag(b"Aaaa"),
                tag(b"Bbbb"),
                tag(b"Cccc"),
                tag(b"Dddd"),
                tag(b"Eeee"),
            ],
        ];
        let mut rng = crate::synth::rng::Rng::new(0x2545_f491_4f6c_dd1d);
        let mut next = move || rng.next_u64();
        let mut planted_hits = 0;
        for tags in tag_sets {
            let filter = SlotFilter::new(tags.iter().copied());
            if vector_test_available() {
                let distinct: std::collections::BTreeSet<u32> =
                    tags.iter().map(|t| t & 0xff).collect();
                let few = distinct.len() <= VECTOR_FIRST_BYTES;
                assert_eq!(filter.vector_first_bytes.is_some(), few, "{tags:x?}");
            }
            for len in [0usize, 7, 63, 64, 200, 4096, 4096 + 40, 65_536 + 13] {
                let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                for _ in 0..len / 48 {
                    let mut at = (next() as usize) % len;
                    if next() % 2 == 0 {
                        // A tag position for both slot sizes.
                        at = at / 16 * 16 + 4;
                    }
                    let t = tags[(next() as usize) % tags.len()].to_le_bytes();
                    let copy = if next() % 3 == 0 { &t[..1] } else { &t[..] };
                    let end = (at + copy.len()).min(len);
                    bytes[at..end].copy_from_slice(&copy[..end - at]);
                }
                for step in [8u64, 16] {
                    let want = reference(&bytes, step as usize, tags);
                    planted_hits += want.len();
                    let whole = len / step as usize * step as usize;
                    let table = run(table_search_slots, &bytes, step, &filter);
                    assert_eq!(table, (want.clone(), whole), "table, len {len} step {step}");
                    let chosen = run(search_slots, &bytes, step, &filter);
                    assert_eq!(chosen, (want, whole), "chosen, len {len} step {step}");
                }
            }
        }
        assert!(planted_hits > 1000, "only {planted_hits} slots to find");
    }

    #[test]
    fn first_bytes_padded_by_repeating() {
        let filter = SlotFilter::new([tag(b"UdpA"), tag(b"TcpE"), tag(b"TTcb")].into_iter());
        assert_eq!(
            filter.distinct_first_bytes(),
            Some([b'T', b'U', b'T', b'T'])
        );
        let five = [b"Aaaa", b"Bbbb", b"Cccc", b"Dddd", b"Eeee"].map(tag);
        assert_eq!(
            SlotFilter::new(five.into_iter()).distinct_first_bytes(),
            None
        );
        assert_eq!(
            SlotFilter::new(std::iter::empty()).distinct_first_bytes(),
            None
        );
    }
}
