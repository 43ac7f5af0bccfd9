//! Microsoft Xpress decompression, both variants ([MS-XCA], revision 2024-04-23): plain LZ77
//! (§2.3 compression, §2.4 decompression; Windows 7 hibernation `\x81\x81xpress` blocks, Win8+
//! hiberfil compression sets) and LZ77+Huffman (§2.1, §2.2.4; the §3.1/§3.2 examples are the unit
//! tests' vectors). A codec only: it knows nothing of the hibernation file around the blocks.
//!
//! Evidence is hostile, so both decoders write only into the caller's `out` (never past it, never
//! allocating more than one 64 KiB decoding table), stop after at most `out.len()` bytes of output
//! or one pass over the input, and report the input offset of whatever is wrong.
//!
//! Where the streams end:
//! - Plain: a set flag with no input left ends the stream (§2.4; the encoder pads the last flag
//!   word with ones). An element that would write past `out` is an error: the flags say where a
//!   stream ends, so output beyond the caller's size means the size or the stream is wrong.
//! - Huffman: decoding stops when `out` is full, because the end-of-stream symbol is only a SHOULD
//!   (§2.1.4.3) and callers know the page count; the caller's size is the stream's size. Symbol 256
//!   read when the whole input has been read ends a shorter stream (§2.2.4), as does the input
//!   ending at a block boundary.
//! - Tables: §2.2.4 builds the 2^15-entry table and rejects any that does not fill it exactly, so
//!   an over-subscribed, incomplete or empty set of code lengths is refused.
//! - Lengths: plain streams may carry the 32-bit length form (`0xFF`, `0x0000`, u32) of the current
//!   §2.4; Huffman lengths stop at 16 bits, and a 16-bit length below 15 is refused, as §2.2.4 says.
use crate::bytes::ReadBytes;

/// Why a Huffman block's 256-byte table of code lengths is refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TableFault {
    /// Every code length is zero.
    Empty,
    /// More codes than 15-bit patterns (Kraft sum above one).
    OverSubscribed,
    /// Some 15-bit patterns decode to no symbol (Kraft sum below one).
    Incomplete,
}

impl std::fmt::Display for TableFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TableFault::Empty => "empty (every code length is zero)",
            TableFault::OverSubscribed => "over-subscribed",
            TableFault::Incomplete => "incomplete",
        })
    }
}

/// What is wrong with a compressed stream, and where (`at` is an offset into the input).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XpressError {
    #[error("input ends inside the element at offset {at:#x}")]
    TruncatedInput { at: usize },
    #[error("element at input offset {at:#x} writes past the {limit}-byte output")]
    OutputOverflow { at: usize, limit: usize },
    #[error(
        "match at input offset {at:#x} reaches {distance} bytes back from output position {position:#x}"
    )]
    BadOffset {
        at: usize,
        distance: usize,
        position: usize,
    },
    #[error("match at input offset {at:#x}: extended length {value} is below its minimum")]
    BadLength { at: usize, value: u32 },
    #[error("Huffman table at input offset {at:#x} is {fault}")]
    InvalidTable { at: usize, fault: TableFault },
}

fn byte_at(input: &[u8], at: usize) -> Result<u8, XpressError> {
    input
        .get(at)
        .copied()
        .ok_or(XpressError::TruncatedInput { at })
}

fn u16_at(input: &[u8], at: usize) -> Result<u16, XpressError> {
    input
        .read_u16(at as u64)
        .ok_or(XpressError::TruncatedInput { at })
}

fn u32_at(input: &[u8], at: usize) -> Result<u32, XpressError> {
    input
        .read_u32(at as u64)
        .ok_or(XpressError::TruncatedInput { at })
}

/// Appends `length` bytes copied from `distance` back. The checks are the callers'; this only
/// needs `distance <= *pos` and room for `length`. Overlapping matches repeat the last `distance`
/// bytes, so the copy doubles its source instead of going byte by byte.
fn copy_match(out: &mut [u8], pos: usize, distance: usize, length: usize) {
    let src = pos - distance;
    if distance == 1 {
        let b = out[src];
        out[pos..pos + length].fill(b);
        return;
    }
    let mut done = 0;
    while done < length {
        let n = (pos + done - src).min(length - done);
        out.copy_within(src..src + n, pos + done);
        done += n;
    }
}

/// Checks a match and copies it; `at` is the match's input offset for the error.
fn put_match(
    out: &mut [u8],
    pos: usize,
    distance: usize,
    length: u64,
    at: usize,
) -> Result<usize, XpressError> {
    if distance > pos {
        return Err(XpressError::BadOffset {
            at,
            distance,
            position: pos,
        });
    }
    let room = (out.len() - pos) as u64;
    if length > room {
        return Err(XpressError::OutputOverflow {
            at,
            limit: out.len(),
        });
    }
    let length = length as usize;
    copy_match(out, pos, distance, length);
    Ok(pos + length)
}

/// Plain LZ77 Xpress ([MS-XCA] §2.4) into `out`; returns the number of bytes written.
pub fn decompress_plain(input: &[u8], out: &mut [u8]) -> Result<usize, XpressError> {
    let mut ip = 0usize;
    let mut op = 0usize;
    let mut flags = 0u32;
    let mut flag_count = 0u32;
    // The byte whose high nibble the next nibble-length match uses (§2.4 LastLengthHalfByte).
    let mut half_byte: Option<usize> = None;
    loop {
        if flag_count == 0 {
            // Lenient: a stream that ends where a flag word would start has ended (the spec's
            // encoder always writes one more, all-ones word).
            if ip == input.len() {
                return Ok(op);
            }
            flags = u32_at(input, ip)?;
            ip += 4;
            flag_count = 32;
        }
        flag_count -= 1;
        if flags & (1 << flag_count) == 0 {
            let b = byte_at(input, ip)?;
            let Some(slot) = out.get_mut(op) else {
                return Err(XpressError::OutputOverflow {
                    at: ip,
                    limit: out.len(),
                });
            };
            *slot = b;
            ip += 1;
            op += 1;
            continue;
        }
        if ip == input.len() {
            return Ok(op);
        }
        let at = ip;
        let word = u16_at(input, ip)?;
        ip += 2;
        let distance = usize::from(word >> 3) + 1;
        let mut length = u64::from(word & 7);
        if length == 7 {
            length = match half_byte.take() {
                None => {
                    let b = byte_at(input, ip)?;
                    half_byte = Some(ip);
                    ip += 1;
                    u64::from(b & 0x0F)
                }
                Some(h) => u64::from(byte_at(input, h)? >> 4),
            };
            if length == 15 {
                let b = byte_at(input, ip)?;
                ip += 1;
                length = if b == 255 {
                    let mut value = u32::from(u16_at(input, ip)?);
                    ip += 2;
                    if value == 0 {
                        value = u32_at(input, ip)?;
                        ip += 4;
                    }
                    if value < 15 + 7 {
                        return Err(XpressError::BadLength { at, value });
                    }
                    u64::from(value) - (15 + 7)
                } else {
                    u64::from(b)
                };
                length += 15;
            }
            length += 7;
        }
        length += 3;
        op = put_match(out, op, distance, length, at)?;
    }
}

/// Output bytes one Huffman block decodes (§2.2.4 BlockEnd).
const BLOCK: usize = 1 << 16;
/// Bytes of packed code lengths in front of each block.
const TABLE_BYTES: usize = 256;
const SYMBOLS: usize = 512;
const MAX_BITS: u32 = 15;
/// Symbol 256 doubles as the end-of-stream marker.
const EOF_SYMBOL: u16 = 256;

/// The §2.2.4 decoding table: entry = symbol << 4 | code length, indexed by the next 15 bits.
fn build_table(lengths: &[u8], table: &mut [u16]) -> Result<(), TableFault> {
    let mut len = [0u8; SYMBOLS];
    for (pair, b) in len.chunks_exact_mut(2).zip(lengths) {
        pair[0] = b & 0x0F;
        pair[1] = b >> 4;
    }
    let mut count = [0u32; MAX_BITS as usize + 1];
    for &l in &len {
        count[usize::from(l)] += 1;
    }
    let kraft: u32 = (1..=MAX_BITS)
        .map(|l| count[l as usize] << (MAX_BITS - l))
        .sum();
    match kraft {
        0 => return Err(TableFault::Empty),
        k if k > 1 << MAX_BITS => return Err(TableFault::OverSubscribed),
        k if k < 1 << MAX_BITS => return Err(TableFault::Incomplete),
        _ => {}
    }
    // Canonical order: by length, then by symbol; each code fills 2^(15 - length) entries, so
    // the codes of one length start where the shorter ones end.
    let mut start = [0usize; MAX_BITS as usize + 1];
    for l in 1..MAX_BITS as usize {
        start[l + 1] = start[l] + ((count[l] as usize) << (MAX_BITS as usize - l));
    }
    for (symbol, &l) in len.iter().enumerate() {
        if l > 0 {
            let n = 1usize << (MAX_BITS - u32::from(l));
            let at = start[usize::from(l)];
            table[at..at + n].fill((symbol as u16) << 4 | u16::from(l));
            start[usize::from(l)] += n;
        }
    }
    Ok(())
}

/// The §2.2.4 bit register: `bits` holds the next bits MSB first, `16 + extra` of them valid.
/// Words beyond the input are read as zeros (`phantom` counts those bits) so that a stream may end
/// with its 32-bit lookahead, but consuming one of them is truncation.
struct BitReader<'a> {
    input: &'a [u8],
    pos: usize,
    bits: u32,
    extra: i32,
    phantom: i32,
}

impl<'a> BitReader<'a> {
    fn new(input: &'a [u8], pos: usize) -> Self {
        let mut r = BitReader {
            input,
            pos,
            bits: 0,
            extra: 16,
            phantom: 0,
        };
        r.bits = u32::from(r.next_word()) << 16;
        r.bits |= u32::from(r.next_word());
        r
    }

    fn next_word(&mut self) -> u16 {
        match u16_at(self.input, self.pos) {
            Ok(w) => {
                self.pos += 2;
                w
            }
            Err(_) => {
                self.phantom += 16;
                0
            }
        }
    }

    fn peek(&self, n: u32) -> u32 {
        if n == 0 {
            0
        } else {
            self.bits >> (32 - n)
        }
    }

    /// Drops `n` (at most 15) bits and refills to at least 16 valid bits.
    fn consume(&mut self, n: u32) -> Result<(), XpressError> {
        self.bits <<= n;
        self.extra -= n as i32;
        if 16 + self.extra < self.phantom {
            return Err(XpressError::TruncatedInput { at: self.pos });
        }
        if self.extra < 0 {
            let w = u32::from(self.next_word());
            self.bits |= w << (-self.extra) as u32;
            self.extra += 16;
        }
        Ok(())
    }

    fn byte(&mut self) -> Result<u8, XpressError> {
        let b = byte_at(self.input, self.pos)?;
        self.pos += 1;
        Ok(b)
    }

    fn word(&mut self) -> Result<u16, XpressError> {
        let w = u16_at(self.input, self.pos)?;
        self.pos += 2;
        Ok(w)
    }
}

/// LZ77+Huffman Xpress ([MS-XCA] §2.2.4) into `out`; returns the number of bytes written.
pub fn decompress_huffman(input: &[u8], out: &mut [u8]) -> Result<usize, XpressError> {
    // Allocated at the first table; a complete code rewrites every entry, so it is reused as is.
    let mut table = Vec::new();
    let mut ip = 0usize;
    let mut op = 0usize;
    loop {
        if op == out.len() || ip == input.len() {
            return Ok(op);
        }
        let Some(lengths) = input.get(ip..ip + TABLE_BYTES) else {
            return Err(XpressError::TruncatedInput { at: ip });
        };
        if table.is_empty() {
            table = vec![0u16; 1 << MAX_BITS];
        }
        build_table(lengths, &mut table)
            .map_err(|fault| XpressError::InvalidTable { at: ip, fault })?;
        let mut r = BitReader::new(input, ip + TABLE_BYTES);
        let block_end = op.saturating_add(BLOCK);
        while op < block_end {
            if op == out.len() {
                return Ok(op);
            }
            let entry = table[(r.bits >> (32 - MAX_BITS)) as usize];
            let symbol = entry >> 4;
            r.consume(u32::from(entry & 0x0F))?;
            if symbol < 256 {
                out[op] = symbol as u8;
                op += 1;
                continue;
            }
            if symbol == EOF_SYMBOL && r.pos >= input.len() {
                return Ok(op);
            }
            let at = r.pos;
            let code = symbol - 256;
            let mut length = u64::from(code & 0x0F);
            let offset_bits = u32::from(code >> 4);
            if length == 15 {
                let b = r.byte()?;
                length = if b == 255 {
                    let value = r.word()?;
                    if value < 15 {
                        return Err(XpressError::BadLength {
                            at,
                            value: u32::from(value),
                        });
                    }
                    u64::from(value) - 15
                } else {
                    u64::from(b)
                };
                length += 15;
            }
            length += 3;
            let distance = (r.peek(offset_bits) + (1 << offset_bits)) as usize;
            r.consume(offset_bits)?;
            op = put_match(out, op, distance, length, at)?;
        }
        ip = r.pos;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn abc300() -> Vec<u8> {
        b"abc".repeat(100)
    }

    fn plain(input: &[u8], size: usize) -> Result<Vec<u8>, XpressError> {
        let mut out = vec![0u8; size];
        let n = decompress_plain(input, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    fn huffman(input: &[u8], size: usize) -> Result<Vec<u8>, XpressError> {
        let mut out = vec![0u8; size];
        let n = decompress_huffman(input, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// §3.1: 26 literals under a flag word whose 6 spare flags are ones.
    #[test]
    fn plain_spec_example_alphabet() {
        let mut stream = hex("3f 00 00 00");
        stream.extend_from_slice(b"abcdefghijklmnopqrstuvwxyz");
        assert_eq!(plain(&stream, 4096).unwrap(), b"abcdefghijklmnopqrstuvwxyz");
        // Exactly the right size works too; one byte short is an overflow at the last literal.
        assert_eq!(plain(&stream, 26).unwrap().len(), 26);
        assert_eq!(
            plain(&stream, 25),
            Err(XpressError::OutputOverflow { at: 29, limit: 25 })
        );
    }

    /// §3.1: "abc" then a match of distance 3, length 297 (nibble 15, byte 255, u16 0x0126).
    #[test]
    fn plain_spec_example_abc() {
        let stream = hex("ff ff ff 1f 61 62 63 17 00 0f ff 26 01");
        assert_eq!(plain(&stream, 300).unwrap(), abc300());
        assert_eq!(plain(&stream, 1 << 16).unwrap(), abc300());
        assert_eq!(
            plain(&stream, 299),
            Err(XpressError::OutputOverflow { at: 7, limit: 299 })
        );
    }

    /// Two nibble-length matches share one byte: the first takes its low nibble, the second its
    /// high nibble, and the byte sits after the first match's word.
    #[test]
    fn plain_nibble_sharing() {
        // Flags: literal, match, match, then ones. Literal 'x'; match distance 1, length 7+3+2
        // (low nibble 2); match distance 1, length 7+3+5 (high nibble 5).
        let mut stream = 0x7FFF_FFFFu32.to_le_bytes().to_vec();
        stream.extend_from_slice(&[b'x', 0x07, 0x00, 0x52, 0x07, 0x00]);
        let out = plain(&stream, 100).unwrap();
        assert_eq!(out, vec![b'x'; 1 + 12 + 15]);
    }

    /// The 32-bit length form: byte 255, u16 0, then u32 (length - 3).
    #[test]
    fn plain_u32_length() {
        let mut stream = 0x7FFF_FFFFu32.to_le_bytes().to_vec();
        stream.extend_from_slice(&[b'z', 0x07, 0x00, 0x0F, 0xFF, 0x00, 0x00]);
        stream.extend_from_slice(&70_000u32.to_le_bytes());
        let out = plain(&stream, 80_000).unwrap();
        assert_eq!(out, vec![b'z'; 70_004]);
        // A 16-bit or 32-bit length below 22 cannot be written by an encoder.
        let mut bad = 0x7FFF_FFFFu32.to_le_bytes().to_vec();
        bad.extend_from_slice(&[b'z', 0x07, 0x00, 0x0F, 0xFF, 21, 0x00]);
        assert_eq!(
            plain(&bad, 100),
            Err(XpressError::BadLength { at: 5, value: 21 })
        );
    }

    #[test]
    fn plain_rejects_a_match_before_the_output_start() {
        // Flags: match first. Distance (0x10 >> 3) + 1 = 3 with nothing written yet.
        let mut stream = 0xFFFF_FFFFu32.to_le_bytes().to_vec();
        stream.extend_from_slice(&[0x10, 0x00]);
        assert_eq!(
            plain(&stream, 100),
            Err(XpressError::BadOffset {
                at: 4,
                distance: 3,
                position: 0
            })
        );
    }

    #[test]
    fn plain_truncations_are_errors() {
        let stream = hex("ff ff ff 1f 61 62 63 17 00 0f ff 26 01");
        // Cut inside the flag word, a literal, the match word, the nibble byte, the u16 length.
        for (cut, at) in [(2, 0), (5, 5), (8, 7), (9, 9), (12, 11)] {
            assert_eq!(
                plain(&stream[..cut], 300),
                Err(XpressError::TruncatedInput { at }),
                "cut at {cut}"
            );
        }
        // Cut after a whole element: a set flag with no input left is the end of the stream.
        assert_eq!(plain(&stream[..7], 300).unwrap(), b"abc");
        assert_eq!(plain(&[], 300).unwrap(), b"");
    }

    /// §3.2: 26 literals and the EOF symbol; 22 codes of 5 bits and 5 of 4 bits fill the table.
    #[test]
    fn huffman_spec_example_alphabet() {
        let mut stream = vec![0u8; 256];
        stream[48] = 0x50;
        stream[49..59].fill(0x55);
        stream[59..62].copy_from_slice(&[0x45, 0x44, 0x04]);
        stream[128] = 0x04;
        stream.extend(hex(
            "d8 52 3e d7 94 11 5b e9 19 5f f9 d6 7c df 8d 04 00 00 00 00",
        ));
        let alphabet = b"abcdefghijklmnopqrstuvwxyz";
        // Bigger output: the EOF symbol, read with the whole input read, ends the stream.
        assert_eq!(huffman(&stream, 4096).unwrap(), alphabet);
        assert_eq!(huffman(&stream, 26).unwrap(), alphabet);
        // Smaller output: decoding stops when the caller's size is reached.
        assert_eq!(huffman(&stream, 10).unwrap(), &alphabet[..10]);
    }

    /// §3.2: "abc", a match of distance 3 and length 297 (symbol 287, extra bytes ff 26 01 after
    /// the two words of bits), EOF.
    #[test]
    fn huffman_spec_example_abc() {
        let mut stream = vec![0u8; 256];
        stream[48] = 0x30;
        stream[49] = 0x23;
        stream[128] = 0x02;
        stream[143] = 0x20;
        stream.extend(hex("a8 dc 00 00 ff 26 01"));
        assert_eq!(huffman(&stream, 300).unwrap(), abc300());
        assert_eq!(huffman(&stream, 1000).unwrap(), abc300());
        // The match does not fit: an overflow at the match's extra bytes.
        assert_eq!(
            huffman(&stream, 299),
            Err(XpressError::OutputOverflow {
                at: 260,
                limit: 299
            })
        );
        // Without its extra length bytes the match is truncated.
        assert_eq!(
            huffman(&stream[..261], 1000),
            Err(XpressError::TruncatedInput { at: 261 })
        );
    }

    #[test]
    fn huffman_rejects_bad_tables() {
        let mut stream = vec![0u8; 260];
        assert_eq!(
            huffman(&stream, 10),
            Err(XpressError::InvalidTable {
                at: 0,
                fault: TableFault::Empty
            })
        );
        // Three 1-bit codes.
        stream[0] = 0x11;
        stream[1] = 0x01;
        assert_eq!(
            huffman(&stream, 10),
            Err(XpressError::InvalidTable {
                at: 0,
                fault: TableFault::OverSubscribed
            })
        );
        // One 1-bit code: half the patterns decode to nothing.
        stream[0] = 0x01;
        stream[1] = 0;
        assert_eq!(
            huffman(&stream, 10),
            Err(XpressError::InvalidTable {
                at: 0,
                fault: TableFault::Incomplete
            })
        );
        // Fewer than 256 bytes where a table should start.
        assert_eq!(
            huffman(&stream[..100], 10),
            Err(XpressError::TruncatedInput { at: 0 })
        );
    }

    /// A hand-built block: 'q' (code 0) and symbol 256 + (1 << 4) (code 1: distance 2 or 3,
    /// length 3). "q", then a match of distance 2 before two bytes exist.
    #[test]
    fn huffman_rejects_a_match_before_the_output_start() {
        let mut stream = vec![0u8; 256];
        stream[b'q' as usize / 2] = 0x01 << 4; // 'q' = 113, odd: high nibble
        stream[(256 + 16) / 2] = 0x01;
        // Bits: 0 (q), 1 (match), 0 (offset bit: distance 2).
        stream.extend_from_slice(&0x4000u16.to_le_bytes());
        stream.extend_from_slice(&[0, 0]);
        assert_eq!(
            huffman(&stream, 100),
            Err(XpressError::BadOffset {
                at: 260,
                distance: 2,
                position: 1
            })
        );
    }

    /// Bits past the end of the input are zeros for the lookahead only: decoding one is truncation.
    #[test]
    fn huffman_consuming_past_the_input_is_truncation() {
        // 'q' with code 0 and 'r' with code 1: every bit is a literal, so the 32 bits of two
        // words give 32 literals; asking for more needs bits that are not there.
        let mut stream = vec![0u8; 256];
        stream[b'q' as usize / 2] |= 0x01 << 4;
        stream[b'r' as usize / 2] |= 0x01;
        stream.extend_from_slice(&[0xFF, 0x00, 0x00, 0x00]);
        let out = huffman(&stream, 32).unwrap();
        assert_eq!(&out[..8], b"qqqqqqqq");
        assert_eq!(&out[8..16], b"rrrrrrrr");
        assert!(out[16..].iter().all(|&b| b == b'q'));
        assert_eq!(
            huffman(&stream, 33),
            Err(XpressError::TruncatedInput { at: 260 })
        );
    }

    #[test]
    fn errors_say_where() {
        let e = XpressError::InvalidTable {
            at: 0x1234,
            fault: TableFault::OverSubscribed,
        };
        assert_eq!(
            e.to_string(),
            "Huffman table at input offset 0x1234 is over-subscribed"
        );
        let e = XpressError::BadOffset {
            at: 4,
            distance: 3,
            position: 0,
        };
        assert_eq!(
            e.to_string(),
            "match at input offset 0x4 reaches 3 bytes back from output position 0x0"
        );
    }

    #[test]
    fn overlapping_copies_repeat_the_period() {
        let mut out = vec![0u8; 40];
        out[..3].copy_from_slice(b"xyz");
        copy_match(&mut out, 3, 3, 37);
        assert_eq!(out, b"xyz".repeat(14)[..40]);
        let mut out = *b"ab______";
        copy_match(&mut out, 2, 1, 6);
        assert_eq!(&out, b"abbbbbbb");
    }
}
