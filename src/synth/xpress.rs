//! Xpress compressors for the synthesizer's hibernation files ([MS-XCA] revision 2024-04-23):
//! plain LZ77 as §2.3 lays it out, LZ77+Huffman as §2.1.4 does (canonical codes of at most 15
//! bits built per 64 KiB block from the block's symbol counts, the bit stream in 16-bit words
//! with two words reserved ahead, extra length bytes where the decoder reads them).
//!
//! Written apart from the reader's decoders (`container/xpress.rs`) so that a misreading of the
//! format cannot hide in both directions; tests and the dissect.util cross-check hold them together.
//!
//! Choices a reader may rely on: plain matches reach at most 8192 bytes back and are at most 65538
//! long (the 16-bit length form, which every decoder reads); Huffman matches stay inside their
//! 64 KiB block and reach at most 65535 bytes back; the last Huffman block ends with symbol 256
//! (§2.1.4.3 SHOULD), and when the input fills its last block (or is empty) that symbol gets a
//! block of its own; a real match of distance 1 and length 3 (also symbol 256) is written as a
//! literal instead, so symbol 256 is only ever the end.

/// Hash table size for large inputs; small ones get a smaller table (cheap to clear).
const MAX_HASH_BITS: u32 = 16;
/// Candidates tried per position: enough for page-like data, cheap on runs.
const CHAIN_DEPTH: usize = 24;
/// A match this long is taken without looking further.
const NICE_LENGTH: usize = 258;
const MIN_MATCH: usize = 3;
/// The longest match whose length - 3 fits the 16-bit length form.
const MAX_MATCH: usize = 65535 + 3;
const PLAIN_MAX_DISTANCE: usize = 8192;
const HUFFMAN_MAX_DISTANCE: usize = 65535;
const BLOCK: usize = 1 << 16;
const SYMBOLS: usize = 512;
const MAX_BITS: u8 = 15;
const EOF_SYMBOL: usize = 256;

/// Hash-chain match finder over the whole input.
struct Matcher<'a> {
    data: &'a [u8],
    /// Last position + 1 with each hash (0: none).
    head: Vec<u32>,
    hash_bits: u32,
    /// Previous position + 1 with the same hash as position i.
    prev: Vec<u32>,
    max_distance: usize,
}

impl<'a> Matcher<'a> {
    fn new(data: &'a [u8], max_distance: usize) -> Self {
        let hash_bits = (usize::BITS - data.len().leading_zeros()).clamp(8, MAX_HASH_BITS);
        Matcher {
            data,
            head: vec![0; 1 << hash_bits],
            hash_bits,
            prev: vec![0; data.len()],
            max_distance,
        }
    }

    fn hash(&self, i: usize) -> Option<usize> {
        let b = self.data.get(i..i + MIN_MATCH)?;
        let v = u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
        Some((v.wrapping_mul(0x9E37_79B1) >> (32 - self.hash_bits)) as usize)
    }

    fn insert(&mut self, i: usize) {
        if let Some(h) = self.hash(i) {
            self.prev[i] = self.head[h];
            self.head[h] = i as u32 + 1;
        }
    }

    /// The longest match (length, distance) for position `i`, at most `max_len` long; call before
    /// `insert(i)`.
    fn find(&self, i: usize, max_len: usize) -> (usize, usize) {
        let Some(h) = self.hash(i) else {
            return (0, 0);
        };
        if max_len < MIN_MATCH {
            return (0, 0);
        }
        let here = &self.data[i..i + max_len];
        let mut best = (0, 0);
        let mut candidate = self.head[h];
        for _ in 0..CHAIN_DEPTH {
            if candidate == 0 {
                break;
            }
            let j = candidate as usize - 1;
            let distance = i - j;
            if distance > self.max_distance {
                break;
            }
            // Bytes past `i` may be part of the match (overlap), as the decoders copy forwards.
            let len = here
                .iter()
                .zip(&self.data[j..])
                .take_while(|(a, b)| a == b)
                .count();
            if len > best.0 {
                best = (len, distance);
                if len >= NICE_LENGTH.min(max_len) {
                    break;
                }
            }
            candidate = self.prev[j];
        }
        best
    }
}

/// Plain LZ77 Xpress ([MS-XCA] §2.3) of `input`.
pub fn compress_plain(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 8 + 8);
    let mut flag_pos = 0usize;
    out.extend_from_slice(&[0; 4]);
    let mut flags = 0u32;
    let mut flag_count = 0u32;
    // The byte whose high nibble the next long-enough match fills (§2.3 LastLengthHalfByte).
    let mut half_byte: Option<usize> = None;
    let mut m = Matcher::new(input, PLAIN_MAX_DISTANCE);
    let mut i = 0;
    while i < input.len() {
        let (len, distance) = m.find(i, MAX_MATCH.min(input.len() - i));
        let is_match = len >= MIN_MATCH;
        if is_match {
            let word = ((distance - 1) << 3) as u16;
            let l = len - MIN_MATCH;
            if l < 7 {
                out.extend_from_slice(&(word | l as u16).to_le_bytes());
            } else {
                out.extend_from_slice(&(word | 7).to_le_bytes());
                let l = l - 7;
                let nibble = l.min(15) as u8;
                match half_byte.take() {
                    None => {
                        half_byte = Some(out.len());
                        out.push(nibble);
                    }
                    Some(at) => out[at] |= nibble << 4,
                }
                if l >= 15 {
                    let l = l - 15;
                    if l < 255 {
                        out.push(l as u8);
                    } else {
                        out.push(255);
                        // = len - 3, below 65536 by MAX_MATCH.
                        out.extend_from_slice(&((l + 15 + 7) as u16).to_le_bytes());
                    }
                }
            }
            for j in i..i + len {
                m.insert(j);
            }
            i += len;
        } else {
            out.push(input[i]);
            m.insert(i);
            i += 1;
        }
        flags = flags << 1 | u32::from(is_match);
        flag_count += 1;
        if flag_count == 32 {
            out[flag_pos..flag_pos + 4].copy_from_slice(&flags.to_le_bytes());
            flag_pos = out.len();
            out.extend_from_slice(&[0; 4]);
            flag_count = 0;
            flags = 0;
        }
    }
    // The unused flags are ones: a set flag with no input left ends the stream.
    let spare = 32 - flag_count;
    let last = ((u64::from(flags) << spare) | ((1u64 << spare) - 1)) as u32;
    out[flag_pos..flag_pos + 4].copy_from_slice(&last.to_le_bytes());
    out
}

/// Huffman code lengths (at most 15 bits, a complete code) for symbol counts. Counts are halved
/// until the Huffman tree is shallow enough: simple, and near optimal for 64 KiB blocks.
fn code_lengths(counts: &[u32; SYMBOLS]) -> [u8; SYMBOLS] {
    let mut lengths = [0u8; SYMBOLS];
    let used: Vec<usize> = (0..SYMBOLS).filter(|&s| counts[s] > 0).collect();
    if used.len() < 2 {
        // One symbol still needs a complete code: give it a 1-bit partner that never occurs.
        let only = used.first().copied().unwrap_or(0);
        lengths[only] = 1;
        lengths[if only == 0 { 1 } else { 0 }] = 1;
        return lengths;
    }
    let mut weights: Vec<u64> = used.iter().map(|&s| u64::from(counts[s])).collect();
    loop {
        let depths = tree_depths(&weights);
        if depths.iter().all(|&d| d <= MAX_BITS) {
            for (&s, &d) in used.iter().zip(&depths) {
                lengths[s] = d;
            }
            return lengths;
        }
        for w in &mut weights {
            *w = w.div_ceil(2);
        }
    }
}

/// Leaf depths of a Huffman tree over `weights` (at least two), by the two-queue method.
fn tree_depths(weights: &[u64]) -> Vec<u8> {
    let n = weights.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (weights[i], i));
    let mut weight: Vec<u64> = weights.to_vec();
    weight.resize(2 * n - 1, 0);
    let mut parent = vec![0usize; 2 * n - 1];
    let (mut leaf, mut internal) = (0usize, n);
    for next in n..2 * n - 1 {
        let mut pick = || {
            let take_leaf =
                leaf < n && (internal >= next || weight[order[leaf]] <= weight[internal]);
            if take_leaf {
                leaf += 1;
                order[leaf - 1]
            } else {
                internal += 1;
                internal - 1
            }
        };
        let a = pick();
        let b = pick();
        weight[next] = weight[a] + weight[b];
        parent[a] = next;
        parent[b] = next;
    }
    let mut depth = vec![0u8; 2 * n - 1];
    for node in (0..2 * n - 2).rev() {
        depth[node] = depth[parent[node]].saturating_add(1);
    }
    depth.truncate(n);
    depth
}

/// Canonical codes (§2.2.4 order: by length, then by symbol) for code lengths.
fn canonical_codes(lengths: &[u8; SYMBOLS]) -> [u16; SYMBOLS] {
    let mut codes = [0u16; SYMBOLS];
    let mut code = 0u32;
    let mut bits = 1u8;
    for len in 1..=MAX_BITS {
        for s in 0..SYMBOLS {
            if lengths[s] == len {
                code <<= len - bits;
                bits = len;
                codes[s] = code as u16;
                code += 1;
            }
        }
    }
    codes
}

/// The §2.1.4.3 bit writer: 16-bit words, MSB first, the next two word slots reserved so that
/// extra length bytes land where the decoder, 32 bits ahead, reads them.
struct BitWriter {
    slot1: usize,
    slot2: usize,
    free: u32,
    word: u32,
}

impl BitWriter {
    fn new(out: &mut Vec<u8>) -> Self {
        let slot1 = out.len();
        out.extend_from_slice(&[0; 4]);
        BitWriter {
            slot1,
            slot2: slot1 + 2,
            free: 16,
            word: 0,
        }
    }

    fn put(out: &mut [u8], at: usize, word: u32) {
        out[at..at + 2].copy_from_slice(&(word as u16).to_le_bytes());
    }

    fn write(&mut self, out: &mut Vec<u8>, n: u32, bits: u32) {
        if n <= self.free {
            self.free -= n;
            self.word = self.word.checked_shl(n).unwrap_or(0) | bits;
        } else {
            let spill = n - self.free;
            self.word = self.word.checked_shl(self.free).unwrap_or(0) | bits >> spill;
            Self::put(out, self.slot1, self.word);
            self.slot1 = self.slot2;
            self.slot2 = out.len();
            out.extend_from_slice(&[0; 2]);
            self.free = 16 - spill;
            self.word = bits & ((1 << spill) - 1);
        }
    }

    /// The last partial word; the slot after it stays zero (the decoder's lookahead).
    fn flush(self, out: &mut [u8]) {
        Self::put(
            out,
            self.slot1,
            self.word.checked_shl(self.free).unwrap_or(0),
        );
    }
}

#[derive(Copy, Clone)]
enum Token {
    Literal(u8),
    Match { len: usize, distance: usize },
}

fn high_bit(v: usize) -> u32 {
    usize::BITS - 1 - v.leading_zeros()
}

fn match_symbol(len: usize, distance: usize) -> usize {
    256 + (len - MIN_MATCH).min(15) + 16 * high_bit(distance) as usize
}

/// One block: its tokens, the 256-byte table and the bit stream; `eof` appends symbol 256.
fn write_block(out: &mut Vec<u8>, tokens: &[Token], eof: bool) {
    let mut counts = [0u32; SYMBOLS];
    for t in tokens {
        match *t {
            Token::Literal(b) => counts[usize::from(b)] += 1,
            Token::Match { len, distance } => counts[match_symbol(len, distance)] += 1,
        }
    }
    if eof {
        counts[EOF_SYMBOL] += 1;
    }
    let lengths = code_lengths(&counts);
    let codes = canonical_codes(&lengths);
    for pair in lengths.chunks(2) {
        out.push(pair[0] | pair[1] << 4);
    }
    let mut bits = BitWriter::new(out);
    let symbol = |out: &mut Vec<u8>, bits: &mut BitWriter, s: usize| {
        bits.write(out, u32::from(lengths[s]), u32::from(codes[s]));
    };
    for t in tokens {
        match *t {
            Token::Literal(b) => symbol(out, &mut bits, usize::from(b)),
            Token::Match { len, distance } => {
                symbol(out, &mut bits, match_symbol(len, distance));
                let l = len - MIN_MATCH;
                if l >= 15 {
                    if l - 15 < 255 {
                        out.push((l - 15) as u8);
                    } else {
                        out.push(255);
                        out.extend_from_slice(&(l as u16).to_le_bytes());
                    }
                }
                let hb = high_bit(distance);
                bits.write(out, hb, (distance - (1 << hb)) as u32);
            }
        }
    }
    if eof {
        symbol(out, &mut bits, EOF_SYMBOL);
    }
    bits.flush(out);
}

/// LZ77+Huffman Xpress ([MS-XCA] §2.1) of `input`.
pub fn compress_huffman(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 2 + 512);
    let mut m = Matcher::new(input, HUFFMAN_MAX_DISTANCE);
    let mut tokens = Vec::new();
    let mut start = 0;
    while start < input.len() {
        let end = (start + BLOCK).min(input.len());
        tokens.clear();
        let mut i = start;
        while i < end {
            let (len, distance) = m.find(i, MAX_MATCH.min(end - i));
            // Distance 1, length 3 is symbol 256, which this encoder keeps for the end.
            if len >= MIN_MATCH && !(len == MIN_MATCH && distance == 1) {
                tokens.push(Token::Match { len, distance });
                for j in i..i + len {
                    m.insert(j);
                }
                i += len;
            } else {
                tokens.push(Token::Literal(input[i]));
                m.insert(i);
                i += 1;
            }
        }
        let eof = end - start < BLOCK;
        write_block(&mut out, &tokens, eof);
        start = end;
        if eof {
            return out;
        }
    }
    // Empty input, or a last block filled to 64 KiB: the end symbol gets a block of its own.
    write_block(&mut out, &[], true);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kraft(lengths: &[u8; SYMBOLS]) -> u64 {
        lengths
            .iter()
            .filter(|&&l| l > 0)
            .map(|&l| 1u64 << (MAX_BITS - l))
            .sum()
    }

    #[test]
    fn code_lengths_are_complete_and_limited() {
        let mut cases: Vec<[u32; SYMBOLS]> = Vec::new();
        // Fibonacci counts: an unlimited Huffman tree over them is 30+ levels deep.
        let mut fib = [0u32; SYMBOLS];
        let (mut a, mut b) = (1u32, 1u32);
        for slot in fib.iter_mut().take(40) {
            *slot = a;
            (a, b) = (b, a.saturating_add(b));
        }
        cases.push(fib);
        cases.push([1; SYMBOLS]);
        let mut two = [0u32; SYMBOLS];
        two[7] = 1000;
        two[300] = 1;
        cases.push(two);
        let mut one = [0u32; SYMBOLS];
        one[256] = 1;
        cases.push(one);
        let mut zero_only = [0u32; SYMBOLS];
        zero_only[0] = 65536;
        cases.push(zero_only);
        for counts in &cases {
            let lengths = code_lengths(counts);
            assert_eq!(kraft(&lengths), 1 << MAX_BITS, "not a complete code");
            assert!(lengths.iter().all(|&l| l <= MAX_BITS));
            for s in 0..SYMBOLS {
                assert!(counts[s] == 0 || lengths[s] > 0, "symbol {s} has no code");
            }
        }
        // Unlimited, the Fibonacci tree would give its rarest symbols more than 15 bits.
        let weights: Vec<u64> = fib[..40].iter().map(|&c| u64::from(c)).collect();
        assert!(tree_depths(&weights).iter().any(|&d| d > MAX_BITS));
    }

    #[test]
    fn canonical_codes_follow_the_spec_order() {
        // The §3.2 "abc" example: c, 256, 287 get 2 bits (00, 01, 10), a and b 3 bits (110, 111).
        let mut lengths = [0u8; SYMBOLS];
        for (s, l) in [(97, 3), (98, 3), (99, 2), (256, 2), (287, 2)] {
            lengths[s] = l;
        }
        let codes = canonical_codes(&lengths);
        assert_eq!(
            [codes[99], codes[256], codes[287], codes[97], codes[98]],
            [0b00, 0b01, 0b10, 0b110, 0b111]
        );
    }

    /// Both §3.2 streams come out byte for byte (same code lengths, same bit and byte layout).
    #[test]
    fn huffman_writes_the_spec_examples() {
        let abc = b"abc".repeat(100);
        let out = compress_huffman(&abc);
        let mut expected = vec![0u8; 256];
        expected[48] = 0x30;
        expected[49] = 0x23;
        expected[128] = 0x02;
        expected[143] = 0x20;
        expected.extend_from_slice(&[0xa8, 0xdc, 0x00, 0x00, 0xff, 0x26, 0x01]);
        assert_eq!(out, expected);

        let mut expected = vec![0u8; 256];
        expected[48] = 0x50;
        expected[49..59].fill(0x55);
        expected[59..62].copy_from_slice(&[0x45, 0x44, 0x04]);
        expected[128] = 0x04;
        expected.extend_from_slice(&[
            0xd8, 0x52, 0x3e, 0xd7, 0x94, 0x11, 0x5b, 0xe9, 0x19, 0x5f, 0xf9, 0xd6, 0x7c, 0xdf,
            0x8d, 0x04, 0x00, 0x00, 0x00, 0x00,
        ]);
        assert_eq!(compress_huffman(b"abcdefghijklmnopqrstuvwxyz"), expected);
    }

    #[test]
    fn plain_writes_the_spec_examples() {
        let mut alphabet = vec![0x3f, 0, 0, 0];
        alphabet.extend_from_slice(b"abcdefghijklmnopqrstuvwxyz");
        assert_eq!(compress_plain(b"abcdefghijklmnopqrstuvwxyz"), alphabet);
        assert_eq!(
            compress_plain(&b"abc".repeat(100)),
            [0xff, 0xff, 0xff, 0x1f, 0x61, 0x62, 0x63, 0x17, 0x00, 0x0f, 0xff, 0x26, 0x01]
        );
        // Empty input: one flag word of ones.
        assert_eq!(compress_plain(b""), [0xff; 4]);
    }
}
