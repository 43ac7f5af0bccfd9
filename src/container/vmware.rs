//! VMware `.vmem` (raw guest memory) with its `.vmss`/`.vmsn` beside it. The snapshot's group
//! "memory" holds a region table (regionsCount, regionPPN[i], regionPageNum[i], regionSize[i]) that
//! maps guest page numbers to .vmem file pages, needed above the PCI hole. Without the snapshot file
//! the .vmem is read 1:1 and a warning says so.
use super::{raw, Backing, PhysicalSpace, Run};
use crate::bytes::ReadBytes;
use crate::error::{Cause, Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const PAGE: u64 = 0x1000;
/// Snapshot magics; the two older ones store long-tag sizes as u32, the newer as u64.
const MAGICS_OLD: [u32; 2] = [0xbed2_bed0, 0xbad1_bad1];
const MAGICS_NEW: [u32; 2] = [0xbed2_bed2, 0xbed3_bed3];
const GROUP_ENTRY: usize = 80;
/// A bound on tags read from one group, so a corrupt table cannot make us loop for long.
const MAX_TAGS: usize = 1 << 20;
/// Most bytes of a `.vmss`/`.vmsn` read to find the region table. The header, the group table
/// and the memory group's small tags are all that is needed; the snapshot's long blocks (which can
/// hold gigabytes of memory and device state) are skipped without being read.
const MAX_METADATA_READ: u64 = 16 << 20;
/// Bytes read at a time from the snapshot file.
const WINDOW: usize = 64 << 10;

/// The snapshot's bytes, as the parser asks for them: `n` bytes at `at`, `None` past the end.
trait Source {
    fn bytes(&mut self, at: u64, n: usize) -> Option<&[u8]>;
}

impl Source for &[u8] {
    fn bytes(&mut self, at: u64, n: usize) -> Option<&[u8]> {
        let at = usize::try_from(at).ok()?;
        self.get(at..at.checked_add(n)?)
    }
}

/// A snapshot file read a window at a time, within [`MAX_METADATA_READ`].
struct FileSource {
    file: std::fs::File,
    window_at: u64,
    window: Vec<u8>,
    read: u64,
    over_budget: bool,
}

impl Source for FileSource {
    fn bytes(&mut self, at: u64, n: usize) -> Option<&[u8]> {
        use std::io::{Read, Seek, SeekFrom};
        let inside = at >= self.window_at
            && at.checked_add(n as u64)? <= self.window_at + self.window.len() as u64;
        if !inside {
            let want = n.max(WINDOW);
            if self.read.saturating_add(want as u64) > MAX_METADATA_READ {
                self.over_budget = true;
                return None;
            }
            self.file.seek(SeekFrom::Start(at)).ok()?;
            self.window.clear();
            (&mut self.file)
                .take(want as u64)
                .read_to_end(&mut self.window)
                .ok()?;
            self.read += self.window.len() as u64;
            self.window_at = at;
        }
        let from = usize::try_from(at - self.window_at).ok()?;
        self.window.get(from..from.checked_add(n)?)
    }
}

fn u16_of(src: &mut impl Source, at: u64) -> Option<u64> {
    src.bytes(at, 2).and_then(|b| b.read_u16(0)).map(u64::from)
}
fn u32_of(src: &mut impl Source, at: u64) -> Option<u64> {
    src.bytes(at, 4).and_then(|b| b.read_u32(0)).map(u64::from)
}
fn u64_of(src: &mut impl Source, at: u64) -> Option<u64> {
    src.bytes(at, 8).and_then(|b| b.read_u64(0))
}

/// The `.vmss`/`.vmsn` next to `path` (same stem), if any.
pub fn sibling_metadata(path: &Path) -> Option<PathBuf> {
    ["vmss", "vmsn", "VMSS", "VMSN"]
        .iter()
        .map(|ext| path.with_extension(ext))
        .find(|p| p != path && p.is_file())
}

/// True when the file name says `.vmem`: only used to warn that a metadata file is missing, never
/// to choose a format.
pub fn looks_like_vmem(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("vmem"))
}

pub fn open_with_metadata(
    backing: Backing,
    path: &Path,
    meta_path: &Path,
) -> Result<PhysicalSpace> {
    let file = crate::evidence::open_input(meta_path, "VMware snapshot file")?;
    let mut source = FileSource {
        file,
        window_at: 0,
        window: Vec::new(),
        read: 0,
        over_budget: false,
    };
    let regions = parse_from(&mut source).map_err(|cause| {
        let cause = if source.over_budget {
            Cause::Malformed(format!(
                "read {} MiB of VMware snapshot metadata without finding the region table (the cap): {cause}",
                MAX_METADATA_READ >> 20
            ))
        } else {
            cause
        };
        Error::cause(meta_path, cause)
    })?;
    let runs: Vec<Run> = regions
        .iter()
        .map(|&(ppn, file_page, pages)| {
            let overflow = || {
                Error::cause(
                    meta_path,
                    Cause::Malformed("VMware region table entry out of range".into()),
                )
            };
            Ok(Run {
                phys: ppn.checked_mul(PAGE).ok_or_else(overflow)?,
                len: pages.checked_mul(PAGE).ok_or_else(overflow)?,
                file_offset: file_page.checked_mul(PAGE).ok_or_else(overflow)?,
            })
        })
        .collect::<Result<_>>()?;
    PhysicalSpace::new(backing, runs, "vmware", path)
}

/// A `.vmem` without metadata: raw, with a warning.
pub fn open_without_metadata(backing: Backing, path: &Path) -> Result<PhysicalSpace> {
    let mut space = raw::open(backing, path)?;
    space.kind = "vmware";
    space.warnings.push(
        "no .vmss/.vmsn beside the .vmem: read 1:1 as raw memory (wrong above the PCI hole on VMs with more than about 3 GiB)"
            .to_string(),
    );
    Ok(space)
}

/// (guest page number, .vmem page number, page count) of each region.
pub fn parse_regions(mut meta: &[u8]) -> std::result::Result<Vec<(u64, u64, u64)>, Cause> {
    parse_from(&mut meta)
}

fn parse_from(meta: &mut impl Source) -> std::result::Result<Vec<(u64, u64, u64)>, Cause> {
    let magic = u32_of(meta, 0).ok_or(Cause::Truncated("VMware snapshot header"))? as u32;
    let wide = if MAGICS_NEW.contains(&magic) {
        true
    } else if MAGICS_OLD.contains(&magic) {
        false
    } else {
        return Err(Cause::Unsupported(format!(
            "not a VMware snapshot (magic {magic:#x})"
        )));
    };
    let group_count = u32_of(meta, 8).ok_or(Cause::Truncated("VMware snapshot header"))? as usize;
    let mut memory_tags = None;
    for g in 0..group_count.min(4096) {
        let at = (12 + g * GROUP_ENTRY) as u64;
        let name = meta.bytes(at, 64).ok_or(Cause::Malformed(
            "VMware snapshot group table runs past the end of the file".into(),
        ))?;
        let name = name.split(|&b| b == 0).next().unwrap_or(&[]);
        if name == b"memory" {
            memory_tags = u64_of(meta, at + 64);
        }
    }
    let start = memory_tags.ok_or(Cause::Malformed(
        "VMware snapshot has no \"memory\" group".into(),
    ))?;
    let tags = read_tags(meta, start, wide)?;
    let count = *tags
        .get(&("regionsCount".to_string(), vec![]))
        .ok_or(Cause::Malformed(
            "VMware snapshot has no regionsCount tag".into(),
        ))?;
    if count == 0 {
        return Err(Cause::Unsupported(
            "VMware snapshot memory is not split into regions (regionsCount 0)".into(),
        ));
    }
    let mut regions = vec![];
    for i in 0..count.min(4096) as u32 {
        let get = |name: &str| {
            tags.get(&(name.to_string(), vec![i]))
                .copied()
                .ok_or_else(|| Cause::Malformed(format!("VMware snapshot region {i} lacks {name}")))
        };
        regions.push((get("regionPPN")?, get("regionPageNum")?, get("regionSize")?));
    }
    Ok(regions)
}

/// Reads a group's tags: a flags byte (bits 7-6 index count, bits 5-0 data size; 62/63 mark a
/// long block with its own sizes), name length, name, u32 indices, data. Flags 0 ends the group.
/// Only values of 1, 2, 4 or 8 bytes are kept; long blocks are skipped.
fn read_tags(
    meta: &mut impl Source,
    start: u64,
    wide: bool,
) -> std::result::Result<HashMap<(String, Vec<u32>), u64>, Cause> {
    let trunc =
        || Cause::Malformed("VMware snapshot tag table runs past the end of the file".into());
    let mut tags = HashMap::new();
    let mut at = start;
    for _ in 0..MAX_TAGS {
        let flags = *meta
            .bytes(at, 1)
            .and_then(|b| b.first())
            .ok_or_else(trunc)?;
        at += 1;
        if flags == 0 {
            return Ok(tags);
        }
        let name_len = *meta
            .bytes(at, 1)
            .and_then(|b| b.first())
            .ok_or_else(trunc)? as usize;
        at += 1;
        let name = meta.bytes(at, name_len).ok_or_else(trunc)?;
        let name = String::from_utf8_lossy(name).into_owned();
        at += name_len as u64;
        let mut indices = vec![];
        for _ in 0..(flags >> 6) & 3 {
            indices.push(u32_of(meta, at).ok_or_else(trunc)? as u32);
            at += 4;
        }
        let size = (flags & 0x3F) as usize;
        if size == 62 || size == 63 {
            let width = if wide { 8 } else { 4 };
            let stored = if wide {
                u64_of(meta, at)
            } else {
                u32_of(meta, at)
            }
            .ok_or_else(trunc)?;
            // Skip the stored size, the in-memory size, then a u16 padding length and the padding
            // (a long block is never read: it may be the guest's memory).
            at += 2 * width;
            let pad = u16_of(meta, at).ok_or_else(trunc)?;
            at = at
                .checked_add(2 + pad)
                .and_then(|a| a.checked_add(stored))
                .ok_or_else(trunc)?;
            continue;
        }
        let data = meta.bytes(at, size).ok_or_else(trunc)?;
        at += size as u64;
        let value = match size {
            1 => data.read_u8(0).map(u64::from),
            2 => data.read_u16(0).map(u64::from),
            4 => data.read_u32(0).map(u64::from),
            8 => data.read_u64(0),
            _ => continue,
        }
        .ok_or_else(trunc)?;
        tags.insert((name, indices), value);
    }
    Err(Cause::Malformed(
        "VMware snapshot tag table does not end".into(),
    ))
}
