//! LiME: a 32-byte header before each range (magic `EMiL`, version 1, start, inclusive end).
use super::{Backing, PhysicalSpace, Run};
use crate::bytes::{array_at, ReadBytes};
use crate::error::{Cause, Error, Result};
use std::path::Path;

const MAGIC: u32 = 0x4C69_4D45;
const HEADER: u64 = 32;
/// Most ranges a LiME file may have. LiME writes one per region of System RAM (tens on real
/// machines); millions of tiny ranges are a hostile file whose run list would cost gigabytes.
pub const MAX_RANGES: usize = 1 << 20;

pub fn detect(bytes: &[u8]) -> bool {
    bytes.read_u32(0) == Some(MAGIC)
}

/// `lime_mem_range_header`: magic, version, start and inclusive end (the reserved tail unread).
struct RangeHeader {
    magic: u32,
    version: u32,
    start: u64,
    end: u64,
}

impl RangeHeader {
    /// `None` when the fields run past the end of `bytes`.
    fn parse(bytes: &[u8], at: u64) -> Option<RangeHeader> {
        let h: &[u8] = &array_at::<24>(bytes, at)?;
        Some(RangeHeader {
            magic: h.read_u32(0)?,
            version: h.read_u32(4)?,
            start: h.read_u64(8)?,
            end: h.read_u64(16)?,
        })
    }
}

pub fn open(backing: Backing, path: &Path) -> Result<PhysicalSpace> {
    let bytes = backing.bytes();
    let file_len = bytes.len() as u64;
    let mut runs = vec![];
    let mut at = 0u64;
    while at < file_len {
        if runs.len() == MAX_RANGES {
            return Err(Error::cause(path, Cause::Malformed(format!(
                    "LiME: more than {MAX_RANGES} ranges (the next at file offset {at:#x}): not a memory image LiME writes"
                ))));
        }
        let Some(RangeHeader {
            magic,
            version,
            start,
            end,
        }) = RangeHeader::parse(bytes, at)
        else {
            return Err(Error::cause(
                path,
                Cause::Malformed(format!(
                    "LiME: truncated range header at file offset {at:#x}"
                )),
            ));
        };
        if magic != MAGIC {
            return Err(Error::cause(
                path,
                Cause::Malformed(format!(
                    "LiME: bad range header magic at file offset {at:#x}"
                )),
            ));
        }
        if version != 1 {
            return Err(Error::cause(
                path,
                Cause::Unsupported(format!(
                    "LiME: unsupported version {version} at file offset {at:#x}"
                )),
            ));
        }
        if end < start {
            return Err(Error::cause(
                path,
                Cause::Malformed(format!(
                    "LiME: range end {end:#x} is below its start {start:#x}"
                )),
            ));
        }
        let len = (end - start).checked_add(1).ok_or_else(|| {
            Error::cause(
                path,
                Cause::Malformed("LiME: range covers the whole address space".into()),
            )
        })?;
        let data = at + HEADER;
        if !matches!(data.checked_add(len), Some(e) if e <= file_len) {
            return Err(Error::cause(path, Cause::Malformed(format!(
                    "LiME: range {start:#x}-{end:#x} points past the end of the file (truncated image)"
                ))));
        }
        runs.push(Run {
            phys: start,
            len,
            file_offset: data,
        });
        at = data + len;
    }
    PhysicalSpace::new(backing, runs, "lime", path)
}
