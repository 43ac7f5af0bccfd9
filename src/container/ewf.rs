//! EnCase / FTK / libewf Expert Witness images (`.E01`, `.E02`, …): segment files of sections, the
//! media stored as fixed-size chunks, each zlib-compressed or stored with an Adler-32. This module
//! finds every chunk of a segment set and decodes one chunk on demand; it knows nothing of what the
//! media holds.
//!
//! Layout (EWF-E01 as EnCase 2-7, FTK Imager and libewf write it): a 13-byte file header
//! (`EVF\x09\x0d\x0a\xff\x00`, 0x01, segment number u16, 0x0000), then 76-byte section headers (type
//! string[16], next section offset u64 from the start of the file, section size u64, checksum at
//! 72) chained by their next offset. `volume`/`disk`/`data`: chunk count u32 @4, sectors per chunk
//! u32 @8, bytes per sector u32 @12, sector count u64 @16. `table`: entry count u32 @0, base offset
//! u64 @8 (EnCase 6+), entries from @24, each u32 whose top bit says "zlib-compressed" and whose
//! low 31 bits are the chunk's offset from the base; `table2` mirrors it. `hash`: MD5 @0;
//! `digest`: MD5 @0, SHA-1 @16. `next` ends every segment but the last, `done` the last one.
use crate::bytes::{array_at, ReadBytes};
use crate::container::{
    Backing, BlockDecoder, BlockError, BlockStore, ContainerFacts, PhysicalSpace, Run,
};
use crate::error::{Cause, Error, Result};
use std::path::{Path, PathBuf};

const SIGNATURE: &[u8; 8] = b"EVF\x09\x0d\x0a\xff\x00";
const FILE_HEADER: u64 = 13;
const SECTION_HEADER: u64 = 76;
/// EnCase writes at most 32,768 sectors of 512 bytes per chunk.
const MAX_CHUNK_SIZE: u64 = 16 << 20;
/// A set's segment count is bounded by its naming (E01..E99, EAA..ZZZ).
const MAX_SEGMENTS: u32 = 99 + 22 * 26 * 26;
/// Sections chained in one segment before the chain is taken for a loop.
const MAX_SECTIONS: usize = 1 << 20;

pub fn detect(head: &[u8]) -> bool {
    head.starts_with(SIGNATURE)
}

/// EnCase 7's `Ex01`/`Lx01` (EWF2): another layout, recognised so it is refused rather than
/// read as a raw image.
pub fn is_version2(head: &[u8]) -> bool {
    head.starts_with(b"EVF2\r\n\x81\x00") || head.starts_with(b"LEF2\r\n\x81\x00")
}

/// One chunk of media: where its stored bytes are and how they are stored.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Chunk {
    /// Index into [`EwfSet::segments`].
    pub segment: u32,
    pub offset: u64,
    /// Stored bytes (zlib stream, or data followed by its Adler-32).
    pub stored: u32,
    pub compressed: bool,
}

/// One segment file, mapped read-only.
struct Segment {
    pub bytes: Backing,
}

/// A whole segment set.
struct EwfSet {
    pub segments: Vec<Segment>,
    /// Chunk `i` holds media bytes `i * chunk_size ..`; `None` where its table could not be read.
    pub chunks: Vec<Option<Chunk>>,
    pub chunk_size: u64,
    pub media_size: u64,
    pub md5: Option<[u8; 16]>,
    pub sha1: Option<[u8; 20]>,
    /// Missing segments, unreadable tables, chunk counts that disagree.
    pub warnings: Vec<String>,
}

/// Why one chunk could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
enum ChunkError {
    #[error("chunk {0} is in no readable table")]
    Missing(u64),
    #[error("chunk {index}: zlib stream does not decode ({why})")]
    Inflate { index: u64, why: InflateError },
    #[error("chunk {index}: {actual} bytes decoded where {expected} were expected")]
    SizeMismatch {
        index: u64,
        expected: u64,
        actual: u64,
    },
    #[error("chunk {index}: {stored} bytes stored, too few for its checksum")]
    NoChecksum { index: u64, stored: usize },
    #[error("chunk {index}: stored checksum {stored:#010x}, data checksum {actual:#010x}")]
    Checksum {
        index: u64,
        stored: u32,
        actual: u32,
    },
}

/// The path of segment `n` (1-based) beside `first`: `.E01`..`.E99`, then `.EAA`..`.ZZZ` (SMART's
/// `.s01` sets the same from `s`), in the case of the first segment's extension.
fn segment_path(first: &Path, n: u32) -> Option<PathBuf> {
    let ext = first.extension()?.to_str()?;
    let first_letter = ext.chars().next()?;
    let lower = first_letter.is_ascii_lowercase();
    // `.E01` sets go on `.EAA`; SMART's `.s01` sets on `.sAA`.
    let lead = u8::try_from(first_letter.to_ascii_uppercase())
        .ok()
        .filter(|c| c.is_ascii_uppercase())?;
    let name = if n == 0 || n > MAX_SEGMENTS {
        return None;
    } else if n <= 99 {
        format!("{}{n:02}", char::from(lead))
    } else {
        let k = n - 100;
        let high = u32::from(lead) + k / 676;
        if high > u32::from(b'Z') {
            return None;
        }
        let letter = |v: u32| char::from(b'A' + (v % 26) as u8);
        format!("{}{}{}", char::from(high as u8), letter(k / 26), letter(k))
    };
    let name = if lower {
        name.to_ascii_lowercase()
    } else {
        name
    };
    Some(first.with_extension(name))
}

struct Volume {
    chunk_count: u64,
    chunk_size: u64,
    media_size: u64,
}

fn volume(data: &[u8]) -> Option<Volume> {
    let chunk_count = u64::from(data.read_u32(4)?);
    let sectors_per_chunk = u64::from(data.read_u32(8)?);
    let bytes_per_sector = u64::from(data.read_u32(12)?);
    let sectors = data.read_u64(16)?;
    Some(Volume {
        chunk_count,
        chunk_size: sectors_per_chunk.checked_mul(bytes_per_sector)?,
        media_size: sectors.checked_mul(bytes_per_sector)?,
    })
}

/// What walking one segment's sections found.
#[derive(Default)]
struct SegmentFacts {
    volume: Option<Volume>,
    /// Chunks in table order; a table section is read, its `table2` mirror only when the table
    /// is damaged.
    chunks: Vec<Chunk>,
    md5: Option<[u8; 16]>,
    sha1: Option<[u8; 20]>,
    done: bool,
    warnings: Vec<String>,
}

fn section_data(bytes: &[u8], at: u64, size: u64) -> &[u8] {
    let from = at.saturating_add(SECTION_HEADER);
    let to = at.saturating_add(size).min(bytes.len() as u64);
    usize::try_from(from)
        .ok()
        .zip(usize::try_from(to).ok())
        .and_then(|(f, t)| bytes.get(f..t))
        .unwrap_or(&[])
}

/// Why a `table`/`table2` section cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
enum TableError {
    #[error("table header truncated")]
    HeaderTruncated,
    #[error("table claims {count} entries, its section holds {holds}")]
    TooManyEntries { count: usize, holds: usize },
    #[error("chunk entry {entry} points at {start:#x}..{end:#x}")]
    BadChunk { entry: usize, start: u64, end: u64 },
}

/// The chunks one table lists. `sectors_end` is the end of the sectors section before it: the
/// last chunk runs up to there.
fn table_chunks(
    data: &[u8],
    segment: u32,
    sectors_end: u64,
    file_len: u64,
) -> std::result::Result<Vec<Chunk>, TableError> {
    let count = data.read_u32(0).ok_or(TableError::HeaderTruncated)? as usize;
    let base = data.read_u64(8).ok_or(TableError::HeaderTruncated)?;
    let entries = data.get(24..).unwrap_or(&[]);
    if count > entries.len() / 4 {
        return Err(TableError::TooManyEntries {
            count,
            holds: entries.len() / 4,
        });
    }
    // `count` entries fit, checked above.
    let starts: Vec<(u64, bool)> = (0..count)
        .filter_map(|i| entries.read_u32((i * 4) as u64))
        .map(|v| (base + u64::from(v & 0x7FFF_FFFF), v & 0x8000_0000 != 0))
        .collect();
    let mut chunks = Vec::with_capacity(count);
    for (i, &(offset, compressed)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(sectors_end, |next| next.0);
        let stored = end
            .checked_sub(offset)
            .filter(|&n| n > 0 && n <= MAX_CHUNK_SIZE + 4 && end <= file_len)
            .ok_or(TableError::BadChunk {
                entry: i,
                start: offset,
                end,
            })?;
        chunks.push(Chunk {
            segment,
            offset,
            stored: stored as u32,
            compressed,
        });
    }
    Ok(chunks)
}

fn walk_segment(bytes: &[u8], segment: u32, path: &Path) -> SegmentFacts {
    let mut facts = SegmentFacts::default();
    let file_len = bytes.len() as u64;
    let mut at = FILE_HEADER;
    // EnCase-style segments keep chunks in a `sectors` section before their `table` (and its
    // `table2` mirror); SMART and the original EWF keep them inside the `table` section after its
    // entries. Either way a table's last chunk ends where that area ends.
    let mut sectors_end: Option<u64> = None;
    // A table that failed, waiting for its mirror: (why, where its chunks end).
    let mut failed_table: Option<(TableError, u64)> = None;
    let name = path.display();
    let mut sections = 0;
    loop {
        if sections == MAX_SECTIONS {
            facts
                .warnings
                .push(format!("{name}: more than {MAX_SECTIONS} sections"));
            break;
        }
        sections += 1;
        let header = usize::try_from(at)
            .ok()
            .and_then(|a| bytes.get(a..a + SECTION_HEADER as usize));
        let Some(header) = header else {
            facts.warnings.push(format!(
                "{name}: section chain ends past the file at {at:#x}"
            ));
            break;
        };
        let kind: Vec<u8> = header[..16]
            .iter()
            .copied()
            .take_while(|&b| b != 0)
            .collect();
        // `header` is a whole section header.
        let (Some(next), Some(size)) = (header.read_u64(16), header.read_u64(24)) else {
            break;
        };
        let data = section_data(bytes, at, size);
        if kind != b"table2" {
            if let Some((why, _)) = failed_table.take() {
                facts.warnings.push(format!(
                    "{name}: a table is unreadable ({why}) and has no mirror"
                ));
            }
        }
        match kind.as_slice() {
            b"volume" | b"disk" | b"data" if facts.volume.is_none() => facts.volume = volume(data),
            b"sectors" => sectors_end = Some(at.saturating_add(size)),
            b"table" => {
                let end = sectors_end.take().unwrap_or(at.saturating_add(size));
                match table_chunks(data, segment, end, file_len) {
                    Ok(chunks) => facts.chunks.extend(chunks),
                    Err(why) => failed_table = Some((why, end)),
                }
            }
            b"table2" => {
                if let Some((why, end)) = failed_table.take() {
                    match table_chunks(data, segment, end, file_len) {
                        Ok(chunks) => facts.chunks.extend(chunks),
                        Err(mirror) => facts.warnings.push(format!(
                            "{name}: table and its mirror unreadable ({why}; {mirror})"
                        )),
                    }
                }
            }
            b"hash" => {
                facts.md5 = array_at(data, 0);
            }
            b"digest" => {
                facts.md5 = array_at(data, 0);
                facts.sha1 = array_at(data, 16);
            }
            b"done" => {
                facts.done = true;
                break;
            }
            b"next" => break,
            _ => {}
        }
        if next <= at || next >= file_len {
            facts.warnings.push(format!(
                "{name}: section at {at:#x} points to {next:#x}: the chain stops there"
            ));
            break;
        }
        at = next;
    }
    if let Some((why, _)) = failed_table {
        facts.warnings.push(format!(
            "{name}: a table is unreadable ({why}) and has no mirror"
        ));
    }
    facts
}

fn map_segment(path: &Path) -> Result<Backing> {
    let file = crate::evidence::open_input(path, "EWF segment")?;
    crate::evidence::EvidenceMap::new(file, path).map(Backing::Map)
}

impl EwfSet {
    /// Opens the set whose first segment is `first` (already read by the caller); the next
    /// segments are found beside `path`.
    pub(crate) fn open(first: Backing, path: &Path) -> Result<EwfSet> {
        let mut set = EwfSet {
            segments: vec![],
            chunks: vec![],
            chunk_size: 0,
            media_size: 0,
            md5: None,
            sha1: None,
            warnings: vec![],
        };
        let mut volume_found: Option<Volume> = None;
        let mut chunks: Vec<Chunk> = vec![];
        // Bytes handed over in memory (tests, the fuzzer) have no files beside them to follow.
        let on_disk = matches!(first, Backing::Map(_));
        let mut bytes = first;
        let mut seg_path = path.to_path_buf();
        for n in 1..=MAX_SEGMENTS {
            let number = bytes.bytes().read_u16(9);
            if !detect(bytes.bytes()) || number != Some(n as u16) {
                let msg = format!(
                    "{}: not segment {n} of this set (segment number {:?})",
                    seg_path.display(),
                    number
                );
                if n == 1 {
                    return Err(Error::cause(
                        path,
                        Cause::Malformed("EWF: bad segment file header".into()),
                    ));
                }
                set.warnings.push(msg);
                break;
            }
            let facts = walk_segment(bytes.bytes(), n - 1, &seg_path);
            set.warnings.extend(facts.warnings);
            if volume_found.is_none() {
                volume_found = facts.volume;
            }
            chunks.extend(facts.chunks);
            set.md5 = facts.md5.or(set.md5);
            set.sha1 = facts.sha1.or(set.sha1);
            set.segments.push(Segment { bytes });
            if facts.done || !on_disk {
                break;
            }
            let Some(next_path) = segment_path(path, n + 1) else {
                break;
            };
            match map_segment(&next_path) {
                Ok(m) => {
                    bytes = m;
                    seg_path = next_path;
                }
                Err(e) => {
                    // A segment that is there but cannot be read (a pipe, no permission) says why.
                    let why = match std::fs::symlink_metadata(&next_path) {
                        Ok(_) => e.to_string(),
                        Err(_) => format!("segment file {} is missing", next_path.display()),
                    };
                    set.warnings
                        .push(format!("{why}: the media after segment {n} is absent"));
                    break;
                }
            }
        }
        let Some(v) = volume_found else {
            return Err(Error::cause(
                path,
                Cause::Malformed("EWF: no volume section".into()),
            ));
        };
        if v.chunk_size == 0 || v.chunk_size > MAX_CHUNK_SIZE || v.chunk_size % 512 != 0 {
            return Err(Error::cause(
                path,
                Cause::Malformed(format!(
                    "EWF: chunk size {} bytes is not plausible",
                    v.chunk_size
                )),
            ));
        }
        let needed = v.media_size.div_ceil(v.chunk_size);
        if v.chunk_count != needed {
            set.warnings.push(format!(
                "volume says {} chunks, the media size needs {needed}",
                v.chunk_count
            ));
        }
        if chunks.len() as u64 != needed {
            set.warnings.push(format!(
                "tables list {} chunks, the media size needs {needed}",
                chunks.len()
            ));
        }
        let needed = usize::try_from(needed)
            .map_err(|_| Error::cause(path, Cause::Unsupported("EWF: media too large".into())))?;
        set.chunks = chunks.into_iter().map(Some).collect();
        set.chunks.resize(needed, None);
        set.chunks.truncate(needed);
        set.chunk_size = v.chunk_size;
        set.media_size = v.media_size;
        Ok(set)
    }

    /// Media bytes chunk `index` holds (the last one may be short).
    fn chunk_len(&self, index: u64) -> u64 {
        self.media_size
            .saturating_sub(index.saturating_mul(self.chunk_size))
            .min(self.chunk_size)
    }

    /// Decodes chunk `index` into `out` (at least `chunk_size` bytes); returns the bytes written.
    pub(crate) fn decode(
        &self,
        index: u64,
        out: &mut [u8],
        inflater: &mut Inflater,
    ) -> std::result::Result<usize, ChunkError> {
        let chunk = usize::try_from(index)
            .ok()
            .and_then(|i| self.chunks.get(i).copied().flatten())
            .ok_or(ChunkError::Missing(index))?;
        let expected = self.chunk_len(index);
        let stored = self
            .segments
            .get(chunk.segment as usize)
            .and_then(|s| {
                let from = usize::try_from(chunk.offset).ok()?;
                s.bytes
                    .bytes()
                    .get(from..from.checked_add(chunk.stored as usize)?)
            })
            .ok_or(ChunkError::Missing(index))?;
        let room = out.len() as u64;
        let out = out
            .get_mut(..expected as usize)
            .ok_or(ChunkError::SizeMismatch {
                index,
                expected,
                actual: room,
            })?;
        let written = if chunk.compressed {
            inflater
                .zlib(stored, out)
                .map_err(|why| ChunkError::Inflate { index, why })?
        } else {
            let (data, sum) = stored.split_at(stored.len().saturating_sub(4));
            let stored_sum = sum.read_u32(0).ok_or(ChunkError::NoChecksum {
                index,
                stored: stored.len(),
            })?;
            let actual = adler32(data);
            if stored_sum != actual {
                return Err(ChunkError::Checksum {
                    index,
                    stored: stored_sum,
                    actual,
                });
            }
            let n = data.len().min(out.len());
            out[..n].copy_from_slice(&data[..n]);
            n
        };
        if written as u64 != expected {
            return Err(ChunkError::SizeMismatch {
                index,
                expected,
                actual: written as u64,
            });
        }
        Ok(written)
    }
}

thread_local! {
    static INFLATER: std::cell::RefCell<Inflater> = std::cell::RefCell::new(Inflater::default());
}

impl BlockDecoder for EwfSet {
    fn block_count(&self) -> u64 {
        self.chunks.len() as u64
    }
    fn block_size(&self) -> u64 {
        self.chunk_size
    }
    fn decode(&self, index: u64, out: &mut [u8]) -> std::result::Result<usize, BlockError> {
        INFLATER
            .with(|inflater| EwfSet::decode(self, index, out, &mut inflater.borrow_mut()))
            .map_err(BlockError::from)
    }
}

/// Opens an EWF set whose first segment is `backing` (detected by the caller) as physical memory:
/// the media is a raw image of it (what WinEn and memory acquisition tools put in E01 files).
pub fn open(backing: Backing, path: &Path) -> Result<PhysicalSpace> {
    let mut set = EwfSet::open(backing, path)?;
    if set.media_size == 0 {
        return Err(Error::cause(
            path,
            Cause::Malformed("EWF: the media is empty".into()),
        ));
    }
    let runs: Vec<Run> = (0..set.chunks.len() as u64)
        .filter(|&i| set.chunks[i as usize].is_some())
        .map(|i| Run {
            phys: i * set.chunk_size,
            len: set.chunk_len(i),
            file_offset: i * set.chunk_size,
        })
        .collect();
    let mut warnings = std::mem::take(&mut set.warnings);
    let facts = ContainerFacts {
        md5: set.md5,
        sha1: set.sha1,
        segments: set.segments.len(),
        hibernation: None,
    };
    let store = BlockStore::new(Box::new(set));
    // A crash dump or another container kept inside the E01 would be read as raw memory here.
    let mut head = [0u8; 8];
    if store.read(0, &mut head) && (head.starts_with(b"PAGEDU") || head.starts_with(b"\x7fELF")) {
        warnings.push(
            "the EWF media starts with a crash-dump or ELF header: netcarve reads EWF media as raw memory".into(),
        );
    }
    let mut space = PhysicalSpace::from_blocks(store, runs, "ewf", path)?;
    space.warnings.extend(warnings);
    space.container_facts = Some(facts);
    Ok(space)
}

/// Why a zlib stream does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
enum InflateError {
    #[error("more output than one chunk")]
    MoreOutput,
    /// miniz_oxide's status, by its name.
    #[error("{0}")]
    Status(String),
}

/// A reusable zlib decoder (its state is 11 KB; one per thread).
#[derive(Default)]
struct Inflater(Option<Box<miniz_oxide::inflate::core::DecompressorOxide>>);

impl Inflater {
    /// Decodes one whole zlib stream (header, data, Adler-32 checked) into `out`.
    fn zlib(&mut self, input: &[u8], out: &mut [u8]) -> std::result::Result<usize, InflateError> {
        use miniz_oxide::inflate::core::{decompress, inflate_flags};
        use miniz_oxide::inflate::TINFLStatus;
        let state = self.0.get_or_insert_with(Default::default);
        state.init();
        let flags = inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER
            | inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF
            | inflate_flags::TINFL_FLAG_COMPUTE_ADLER32;
        let (status, _, written) = decompress(state, input, out, 0, flags);
        match status {
            TINFLStatus::Done => Ok(written),
            TINFLStatus::HasMoreOutput => Err(InflateError::MoreOutput),
            other => Err(InflateError::Status(format!("{other:?}"))),
        }
    }
}

fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 bytes is the longest run before `b` could overflow a u32.
    for block in data.chunks(5552) {
        for &byte in block {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_follow_encase() {
        let first = Path::new("/cases/mem.E01");
        let name = |n| segment_path(first, n).map(|p| p.display().to_string());
        assert_eq!(name(2).as_deref(), Some("/cases/mem.E02"));
        assert_eq!(name(99).as_deref(), Some("/cases/mem.E99"));
        assert_eq!(name(100).as_deref(), Some("/cases/mem.EAA"));
        assert_eq!(name(101).as_deref(), Some("/cases/mem.EAB"));
        assert_eq!(name(126).as_deref(), Some("/cases/mem.EBA"));
        assert_eq!(name(100 + 676).as_deref(), Some("/cases/mem.FAA"));
        assert_eq!(name(MAX_SEGMENTS).as_deref(), Some("/cases/mem.ZZZ"));
        assert_eq!(name(MAX_SEGMENTS + 1), None);
        assert_eq!(name(0), None);
        let lower = segment_path(Path::new("m.e01"), 3).unwrap();
        assert_eq!(lower, Path::new("m.e03"));
        let smart = |n| segment_path(Path::new("m.s01"), n).map(|p| p.display().to_string());
        assert_eq!(smart(2).as_deref(), Some("m.s02"));
        assert_eq!(smart(100).as_deref(), Some("m.saa"));
        assert_eq!(smart(100 + 7 * 676 + 675).as_deref(), Some("m.zzz"));
        assert_eq!(smart(100 + 8 * 676), None);
    }

    #[test]
    fn adler32_matches_known_values() {
        assert_eq!(adler32(b""), 1);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        // Long enough to need the modulo inside the loop.
        let long = vec![0xFFu8; 100_000];
        let (mut a, mut b) = (1u64, 0u64);
        for &x in &long {
            a = (a + u64::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!(adler32(&long), ((b << 16) | a) as u32);
    }

    #[test]
    fn tables_that_lie_are_refused() {
        let mut data = vec![0u8; 24 + 8];
        data[0..4].copy_from_slice(&3u32.to_le_bytes());
        assert!(
            table_chunks(&data, 0, 0x1000, 0x2000).is_err(),
            "3 entries in 2 slots"
        );
        data[0..4].copy_from_slice(&2u32.to_le_bytes());
        data[24..28].copy_from_slice(&(0x8000_0100u32).to_le_bytes());
        data[28..32].copy_from_slice(&(0x8000_0080u32).to_le_bytes());
        assert!(
            table_chunks(&data, 0, 0x1000, 0x2000).is_err(),
            "offsets go backwards"
        );
        data[28..32].copy_from_slice(&(0x0000_0200u32).to_le_bytes());
        let chunks = table_chunks(&data, 0, 0x1000, 0x2000).unwrap();
        assert_eq!(
            chunks,
            vec![
                Chunk {
                    segment: 0,
                    offset: 0x100,
                    stored: 0x100,
                    compressed: true
                },
                Chunk {
                    segment: 0,
                    offset: 0x200,
                    stored: 0xE00,
                    compressed: false
                },
            ]
        );
        assert!(
            table_chunks(&data, 0, 0x3000, 0x2000).is_err(),
            "past the file"
        );
    }
}
