//! LiME: a 32-byte header before each range (magic `EMiL`, version 1, start, inclusive end).
use super::le::{u32_at, u64_at};
use super::{Backing, PhysicalSpace, Run};
use crate::error::{Error, Result};
use std::path::Path;

const MAGIC: u32 = 0x4C69_4D45;
const HEADER: u64 = 32;
/// Most ranges a LiME file may have. LiME writes one per region of System RAM (tens on real
/// machines); millions of tiny ranges are a hostile file whose run list would cost gigabytes.
pub const MAX_RANGES: usize = 1 << 20;

pub fn detect(bytes: &[u8]) -> bool {
    u32_at(bytes, 0) == Some(MAGIC)
}

pub fn open(backing: Backing, path: &Path) -> Result<PhysicalSpace> {
    let bytes = backing.bytes();
    let file_len = bytes.len() as u64;
    let mut runs = vec![];
    let mut at = 0u64;
    while at < file_len {
        if runs.len() == MAX_RANGES {
            return Err(Error::file(
                path,
                format!(
                    "LiME: more than {MAX_RANGES} ranges (the next at file offset {at:#x}): not a memory image LiME writes"
                ),
            ));
        }
        let off = at as usize;
        let magic = u32_at(bytes, off);
        let (Some(version), Some(start), Some(end)) = (
            u32_at(bytes, off + 4),
            u64_at(bytes, off + 8),
            u64_at(bytes, off + 16),
        ) else {
            return Err(Error::file(
                path,
                format!("LiME: truncated range header at file offset {at:#x}"),
            ));
        };
        if magic != Some(MAGIC) {
            return Err(Error::file(
                path,
                format!("LiME: bad range header magic at file offset {at:#x}"),
            ));
        }
        if version != 1 {
            return Err(Error::file(
                path,
                format!("LiME: unsupported version {version} at file offset {at:#x}"),
            ));
        }
        if end < start {
            return Err(Error::file(
                path,
                format!("LiME: range end {end:#x} is below its start {start:#x}"),
            ));
        }
        let len = (end - start)
            .checked_add(1)
            .ok_or_else(|| Error::file(path, "LiME: range covers the whole address space"))?;
        let data = at + HEADER;
        if !matches!(data.checked_add(len), Some(e) if e <= file_len) {
            return Err(Error::file(
                path,
                format!(
                    "LiME: range {start:#x}-{end:#x} points past the end of the file (truncated image)"
                ),
            ));
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
