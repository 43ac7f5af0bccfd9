//! The synthesizer's Xpress encoders against the reader's decoders, on the inputs a hibernation
//! file holds: every input comes back exactly, whatever the size of the caller's buffer says is
//! handled as documented, compression actually happens, and damaged streams fail without a panic.
//! `cargo test --release --test xpress_roundtrip -- --ignored --nocapture decode_speed` prints
//! the decoders' speed.
mod support;

use netcarve::container::xpress::{decompress_huffman, decompress_plain, XpressError};
use netcarve::synth::xpress::{compress_huffman, compress_plain};
use support::xpress::{inputs, page_like};
use support::Rng;

type Decoder = fn(&[u8], &mut [u8]) -> Result<usize, XpressError>;

fn decode(decoder: Decoder, stream: &[u8], size: usize) -> Result<Vec<u8>, XpressError> {
    let mut out = vec![0xA5u8; size];
    let n = decoder(stream, &mut out)?;
    assert!(n <= size);
    out.truncate(n);
    Ok(out)
}

#[test]
fn every_input_comes_back_through_both_codecs() {
    for (name, input) in inputs() {
        for (codec, stream, decoder) in [
            ("plain", compress_plain(&input), decompress_plain as Decoder),
            (
                "huffman",
                compress_huffman(&input),
                decompress_huffman as Decoder,
            ),
        ] {
            let n = input.len();
            let what = format!("{codec} {name} ({} -> {} bytes)", n, stream.len());
            assert_eq!(
                decode(decoder, &stream, n).unwrap(),
                input,
                "{what}: exact buffer"
            );
            // A bigger buffer: the stream's own end (flags, or symbol 256) stops the decoder.
            assert_eq!(
                decode(decoder, &stream, n + 4096).unwrap(),
                input,
                "{what}: bigger buffer"
            );
            if n == 0 {
                continue;
            }
            let short = decode(decoder, &stream, n - 1);
            if codec == "plain" {
                // Plain streams say where they end: more output than the caller allows is an error.
                assert!(
                    matches!(short, Err(XpressError::OutputOverflow { limit, .. }) if limit == n - 1),
                    "{what}: short buffer gave {short:?}"
                );
            } else {
                // Huffman decoding stops when the caller's buffer is full, or fails if a match
                // would cross its end.
                match short {
                    Ok(out) => assert_eq!(out, input[..n - 1], "{what}: short buffer"),
                    Err(e) => assert!(
                        matches!(e, XpressError::OutputOverflow { limit, .. } if limit == n - 1),
                        "{what}: short buffer gave {e:?}"
                    ),
                }
            }
        }
    }
}

#[test]
fn compression_happens() {
    let zeros = vec![0u8; 65536 * 3 + 17];
    let pages = page_like(65536 * 3 + 17, 11);
    for (codec, compress) in [
        ("plain", compress_plain as fn(&[u8]) -> Vec<u8>),
        ("huffman", compress_huffman),
    ] {
        let z = compress(&zeros).len();
        assert!(z * 100 < zeros.len(), "{codec}: zeros to {z} bytes");
        let p = compress(&pages).len();
        assert!(
            p * 10 < pages.len() * 7,
            "{codec}: page-like data to {p} of {} bytes",
            pages.len()
        );
        // Random data grows by the format's overhead only (flags, or the 256-byte tables).
        let random = support::xpress::random(65536, 3);
        let r = compress(&random).len();
        assert!(
            r < random.len() + random.len() / 7 + 600,
            "{codec}: random data to {r} bytes"
        );
    }
    // Huffman codes beat plain bytes on skewed literals.
    let text: Vec<u8> = (0..65536u32)
        .map(|i| b"etaoinshrdlu"[(i * 7 % 13 % 12) as usize])
        .collect();
    let mut rng = Rng::new(5);
    let noisy: Vec<u8> = text
        .iter()
        .map(|&b| {
            if rng.chance(3) {
                b"etaoin"[rng.below(6) as usize]
            } else {
                b
            }
        })
        .collect();
    assert!(compress_huffman(&noisy).len() < compress_plain(&noisy).len());
}

/// Damaged streams: every truncation of a small stream and random byte changes of larger ones.
/// Decoding must return (an error or at most the buffer), never panic or run away.
#[test]
fn damaged_streams_fail_cleanly() {
    let mut rng = Rng::new(99);
    let input = page_like(3 * 4096 + 100, 21);
    for (stream, decoder) in [
        (compress_plain(&input), decompress_plain as Decoder),
        (compress_huffman(&input), decompress_huffman as Decoder),
    ] {
        let mut errors = 0;
        for cut in (0..stream.len()).step_by(7) {
            if decode(decoder, &stream[..cut], input.len()).is_err() {
                errors += 1;
            }
        }
        assert!(errors > 0, "no truncation was noticed");
        for _ in 0..400 {
            let mut bad = stream.clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(bad.len() as u64) as usize;
                bad[at] ^= 1 << rng.below(8);
            }
            let size = rng.range(0, 2 * input.len() as u64) as usize;
            let _ = decode(decoder, &bad, size);
        }
    }
}

/// Decoder speed in MB/s of output, release build, on 8 MiB of page-like data (informational).
#[test]
#[ignore]
fn decode_speed() {
    let input = page_like(8 << 20, 1);
    let mut out = vec![0u8; input.len()];
    for (codec, stream, decoder) in [
        ("plain", compress_plain(&input), decompress_plain as Decoder),
        (
            "huffman",
            compress_huffman(&input),
            decompress_huffman as Decoder,
        ),
    ] {
        // Per 64 KiB, as hiberfil blocks are decoded.
        let chunks: Vec<Vec<u8>> = input
            .chunks(65536)
            .map(|c| {
                if codec == "plain" {
                    compress_plain(c)
                } else {
                    compress_huffman(c)
                }
            })
            .collect();
        let start = std::time::Instant::now();
        let rounds = 5;
        for _ in 0..rounds {
            for (c, chunk) in chunks.iter().enumerate() {
                let n = decoder(chunk, &mut out[c * 65536..(c + 1) * 65536]).unwrap();
                assert_eq!(n, 65536);
            }
        }
        let per_block = (rounds * input.len()) as f64 / start.elapsed().as_secs_f64() / 1e6;
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            decoder(&stream, &mut out).unwrap();
        }
        let whole = (rounds * input.len()) as f64 / start.elapsed().as_secs_f64() / 1e6;
        assert_eq!(out, input);
        println!(
            "{codec}: {per_block:.0} MB/s per 64 KiB block, {whole:.0} MB/s as one stream (ratio {:.2})",
            stream.len() as f64 / input.len() as f64
        );
    }
}
