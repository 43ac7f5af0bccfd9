//! Windows hibernation files (`hiberfil.sys`): the memory Windows wrote at its last hibernation or
//! fast-startup shutdown, compressed.
//!
//! Two layouts, told apart by the header's `LengthSelf` (the size of `PO_MEMORY_IMAGE`, which each
//! release changed):
//! - **Windows 8 and later**: two restoration sets (boot loader pages, then kernel pages), each a
//!   chain of compression sets. A set is a u32 (descriptor count in bits 0–7, compressed size in
//!   bits 8–29, the method in bits 30–31: 0–1 plain Xpress, 2–3 Xpress Huffman), its page
//!   descriptors (pointer-sized: page count − 1 in bits 0–3, first PFN above), then the data; a
//!   set whose size is its pages × 4096 is stored raw.
//! - **Windows 7 and Vista**: a chain of memory-range tables (one page each: a link with the next
//!   table's page and the entry count, then start/end PFN ranges) followed by `\x81\x81xpress`
//!   blocks of 16 pages each, plain Xpress, a 0x10000-byte block stored raw.
//!
//! Facts from the structure definitions of each release's `PO_MEMORY_IMAGE` and
//! `PO_MEMORY_RANGE_ARRAY` (public symbol dumps), LeechCore's per-release offset table, Volatility 2's
//! hibernation address space and Sylve's paper; the compressed sets are decoded by `xpress`. Each
//! compression set or Xpress block is one block of a [`BlockStore`], so the scan decodes them in
//! parallel on demand and a damaged one costs only its own pages.
use super::blocks::{BlockDecoder, BlockError, BlockStore};
use super::xpress;
use super::{Backing, ContainerFacts, PhysicalSpace, Run};
use crate::bytes::ReadBytes;
use crate::error::{Cause, Error, Result};
use std::path::Path;

const PAGE: u64 = 0x1000;
/// Pages one compression set or Xpress block holds at most, and so the decoded block size.
const SET_PAGES: u64 = 16;
const BLOCK: u64 = SET_PAGES * PAGE;
const XPRESS_MAGIC: &[u8; 8] = b"\x81\x81xpress";
/// Sets, blocks and tables followed before the file is declared to lie (a 1 TiB machine has 16M
/// sets of 16 pages).
const MAX_SETS: usize = 1 << 26;
const MAX_TABLES: usize = 1 << 22;
/// Bytes searched past a Windows 7 block for the next block's magic (tables and padding sit
/// between blocks).
const BLOCK_SEARCH: u64 = 0x4000;

/// What the header says about the hibernation (shown by `info`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hibernation {
    /// `windows8+` or `windows7/vista`.
    pub format: &'static str,
    /// `HIBR`, `WAKE`, `RSTR` (Windows 8+), `hibr`, `wake` (Windows 7 and earlier).
    pub signature: String,
    /// `PO_MEMORY_IMAGE.LengthSelf`: the header version.
    pub header_size: u32,
    /// FILETIME of the hibernation (`PO_MEMORY_IMAGE.SystemTime`).
    pub system_time: u64,
    /// Windows 8+: written by a fast-startup shutdown (`Hiberboot`), not a hibernation.
    pub hiberboot: Option<bool>,
    /// Pages the file holds (that could be located).
    pub pages: u64,
    /// Compression sets (Windows 8+) or Xpress blocks (Windows 7/Vista).
    pub blocks: u64,
}

/// Where one Windows 8+ release keeps the header fields netcarve reads.
struct Layout8 {
    length_self: u32,
    x86: bool,
    loader_pages: usize,
    first_boot_page: usize,
    first_kernel_page: usize,
    kernel_pages: usize,
    highest_pfn: usize,
}

/// Windows 8 and later, by `LengthSelf` (LeechCore's table, checked against the structure
/// definitions). Windows 8 keeps `FirstBootRestorePage` at 0x60, not at 0x68 as Volatility's pull
/// request reads it: `FirstSecureRestorePage` (0x60) only arrived with Windows 10.
const LAYOUTS_8: [Layout8; 12] = {
    const fn x64(length_self: u32, boot: usize, kernel_pages: usize, highest: usize) -> Layout8 {
        Layout8 {
            length_self,
            x86: false,
            loader_pages: 0x58,
            first_boot_page: boot,
            first_kernel_page: boot + 8,
            kernel_pages,
            highest_pfn: highest,
        }
    }
    const fn x86(length_self: u32, kernel_pages: usize, highest: usize) -> Layout8 {
        Layout8 {
            length_self,
            x86: true,
            loader_pages: 0x48,
            first_boot_page: 0x50,
            first_kernel_page: 0x54,
            kernel_pages,
            highest_pfn: highest,
        }
    }
    [
        x64(0x360, 0x60, 0x1c8, 0x330), // 8, 8.1
        x64(0x3b0, 0x68, 0x218, 0x380), // 10 1507, 1511
        x64(0x3c8, 0x68, 0x220, 0x388), // 1607
        x64(0x3d8, 0x68, 0x230, 0x398), // 1703-1803
        x64(0x3e0, 0x68, 0x230, 0x398), // 1809-2004 and later 10
        x64(0x448, 0x68, 0x230, 0x400), // Server 2022, 11 21H2-23H2
        x64(0x4d8, 0x68, 0x238, 0x498), // 11 24H2
        x86(0x2c8, 0x1b0, 0x2b0),       // 8, 8.1
        x86(0x310, 0x1f8, 0x2f8),       // 10 1507, 1511
        x86(0x328, 0x200, 0x300),       // 1607
        x86(0x338, 0x210, 0x310),       // 1703-1803
        x86(0x340, 0x210, 0x310),       // 1809 and later
    ]
};

/// `Hiberboot` sits 0x34 bytes before `HighestPhysicalPage` in every definition checked (Windows 8
/// x64, 10 1507 x86, 10 2004 x64): the hypervisor fields between them kept their size.
const HIBERBOOT_BEFORE_HIGHEST: usize = 0x34;

/// Windows 7 and Vista: where `FirstTablePage` is, and the memory-range table's shape.
struct Layout7 {
    length_self: u32,
    x86: bool,
    first_table_page: usize,
    /// Bytes per table element (element 0 is the link).
    element: usize,
    /// In the link element: the next table's page, the entry count.
    next_table: usize,
    entry_count: usize,
    /// In a range element: start and end PFN (end exclusive).
    start: usize,
    end: usize,
    /// Offset of the first range element.
    first_range: usize,
}

const LAYOUTS_7: [Layout7; 4] = [
    // Windows 7 x64: link {u64 NextTable, u32 EntryCount}, ranges {u64 Start, u64 End}.
    Layout7 {
        length_self: 0x128,
        x86: false,
        first_table_page: 0x60,
        element: 16,
        next_table: 0,
        entry_count: 8,
        start: 0,
        end: 8,
        first_range: 16,
    },
    // Windows 7 x86: link {u32 NextTable, u32 EntryCount}, ranges {u32 Start, u32 End}.
    Layout7 {
        length_self: 0xe0,
        x86: true,
        first_table_page: 0x4c,
        element: 8,
        next_table: 0,
        entry_count: 4,
        start: 0,
        end: 4,
        first_range: 8,
    },
    // Vista x64: elements of 0x20, link {Next, NextTable, CheckSum, EntryCount}, ranges
    // {PageNo, StartPage, EndPage, CheckSum}.
    Layout7 {
        length_self: 0x138,
        x86: false,
        first_table_page: 0x68,
        element: 0x20,
        next_table: 8,
        entry_count: 0x14,
        start: 8,
        end: 0x10,
        first_range: 0x20,
    },
    // Vista x86: the same with 32-bit fields, elements of 0x10.
    Layout7 {
        length_self: 0xf0,
        x86: true,
        first_table_page: 0x50,
        element: 0x10,
        next_table: 4,
        entry_count: 0xc,
        start: 4,
        end: 8,
        first_range: 0x10,
    },
];

const SIGNATURES: [&[u8; 4]; 5] = [b"HIBR", b"WAKE", b"RSTR", b"hibr", b"wake"];

/// A hibernation header: a known signature. (The layout is checked by [`open`], so a file that
/// only starts like one gets an error naming what is wrong rather than being read as raw memory.)
pub fn detect(head: &[u8]) -> bool {
    head.len() >= 16 && SIGNATURES.iter().any(|s| head.starts_with(&s[..]))
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Storage {
    Raw,
    Plain,
    Huffman,
}

/// One compression set or Xpress block: stored bytes at `offset`, decoding to `pages` pages.
#[derive(Copy, Clone, Debug)]
struct Set {
    offset: u64,
    stored: u32,
    storage: Storage,
    pages: u8,
}

struct HiberFile {
    bytes: Backing,
    sets: Vec<Set>,
}

impl BlockDecoder for HiberFile {
    fn block_count(&self) -> u64 {
        self.sets.len() as u64
    }

    fn block_size(&self) -> u64 {
        BLOCK
    }

    fn decode(&self, index: u64, out: &mut [u8]) -> std::result::Result<usize, BlockError> {
        let set = usize::try_from(index)
            .ok()
            .and_then(|i| self.sets.get(i))
            .ok_or(SetError::Missing { index })?;
        let failed = |why| SetError::Set {
            index,
            offset: set.offset,
            why,
        };
        let from = usize::try_from(set.offset).map_err(|_| failed(SetFailure::Unreadable))?;
        let input = from
            .checked_add(set.stored as usize)
            .and_then(|to| self.bytes.bytes().get(from..to))
            .ok_or(failed(SetFailure::PastEnd))?;
        let want = usize::from(set.pages) * PAGE as usize;
        let out = out
            .get_mut(..want)
            .ok_or(failed(SetFailure::TooManyPages))?;
        let got =
            match set.storage {
                Storage::Raw => {
                    out.copy_from_slice(input.get(..want).ok_or(failed(SetFailure::Unreadable))?);
                    want
                }
                Storage::Plain => xpress::decompress_plain(input, out)
                    .map_err(|e| failed(SetFailure::Xpress(e)))?,
                Storage::Huffman => xpress::decompress_huffman(input, out)
                    .map_err(|e| failed(SetFailure::Xpress(e)))?,
            };
        if got != want {
            return Err(failed(SetFailure::Size { got, want }).into());
        }
        Ok(want)
    }
}

/// Why a compression set (or Xpress block) cannot be read.
#[derive(Debug, thiserror::Error)]
enum SetError {
    #[error("compression set {index} does not exist")]
    Missing { index: u64 },
    #[error("compression set {index} at file offset {offset:#x}{why}")]
    Set {
        index: u64,
        offset: u64,
        why: SetFailure,
    },
}

/// What is wrong with a compression set; shown after its name.
#[derive(Debug, thiserror::Error)]
enum SetFailure {
    /// Its stored bytes cannot be addressed or are shorter than its raw pages.
    #[error("")]
    Unreadable,
    #[error(": runs past the end of the file")]
    PastEnd,
    #[error(": more pages than a block holds")]
    TooManyPages,
    #[error(": {0}")]
    Xpress(xpress::XpressError),
    #[error(": decodes to {got:#x} bytes, its pages need {want:#x}")]
    Size { got: usize, want: usize },
}

/// What parsing found: the sets, the runs into their decoded space, and what went wrong.
#[derive(Default)]
struct Parsed {
    sets: Vec<Set>,
    runs: Vec<Run>,
    pages: u64,
    warnings: Vec<String>,
}

impl Parsed {
    /// Records that the next set holds `pfns` (first PFN, page count) in that order.
    fn push_set(&mut self, set: Set, pfns: &[(u64, u64)]) {
        let base = self.sets.len() as u64 * BLOCK;
        let mut page = 0u64;
        for &(pfn, count) in pfns {
            self.runs.push(Run {
                phys: pfn * PAGE,
                len: count * PAGE,
                file_offset: base + page * PAGE,
            });
            page += count;
        }
        self.pages += page;
        self.sets.push(set);
    }
}

fn ptr_at(bytes: &[u8], at: usize, x86: bool) -> Option<u64> {
    if x86 {
        bytes.read_u32(at as u64).map(u64::from)
    } else {
        bytes.read_u64(at as u64)
    }
}

fn bad(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::cause(path, Cause::Malformed(format!("hibernation file: {what}")))
}

/// Opens a hibernation file (detected by the caller) as physical memory.
pub fn open(backing: Backing, path: &Path) -> Result<PhysicalSpace> {
    let bytes = backing.bytes();
    let signature = String::from_utf8_lossy(&bytes[..4]).into_owned();
    // `detect` saw 16 bytes.
    let length_self = bytes.read_u32(0xc).unwrap_or_default();
    let (mut hibernation, parsed) =
        if let Some(l) = LAYOUTS_8.iter().find(|l| l.length_self == length_self) {
            parse_8(bytes, l, path)?
        } else if let Some(l) = LAYOUTS_7.iter().find(|l| l.length_self == length_self) {
            parse_7(bytes, l, path)?
        } else {
            return Err(bad(
                path,
                format!(
                "signature {signature} but an unknown header version (LengthSelf {length_self:#x})"
            ),
            ));
        };
    hibernation.signature = signature.clone();
    hibernation.header_size = length_self;
    hibernation.pages = parsed.pages;
    hibernation.blocks = parsed.sets.len() as u64;
    if parsed.pages == 0 {
        let why = if signature.eq_ignore_ascii_case("WAKE") {
            "signature WAKE and no memory pages: Windows resumed from it and cleared its contents"
        } else {
            "no memory pages could be located"
        };
        let mut message = why.to_string();
        if let Some(first) = parsed.warnings.first() {
            message.push_str(&format!(" ({first})"));
        }
        return Err(bad(path, message));
    }
    let Parsed {
        sets,
        runs,
        warnings: mut parse_warnings,
        ..
    } = parsed;
    let store = BlockStore::new(Box::new(HiberFile {
        bytes: backing,
        sets,
    }));
    let mut space = PhysicalSpace::from_blocks(store, runs, "hiberfil", path)?;
    // What parsing found comes before what the space's construction found.
    let mut warnings = super::warnings::Warnings::default();
    warnings.extend(std::mem::take(&mut parse_warnings));
    warnings.extend(space.warnings.lines());
    space.warnings = warnings;
    space.container_facts = Some(ContainerFacts {
        hibernation: Some(hibernation),
        ..ContainerFacts::default()
    });
    Ok(space)
}

fn parse_8(bytes: &[u8], l: &Layout8, path: &Path) -> Result<(Hibernation, Parsed)> {
    let page_size_at = if l.x86 { 0x14 } else { 0x18 };
    let time_at = if l.x86 { 0x18 } else { 0x20 };
    let trunc = || bad(path, "header truncated");
    let field = |at| ptr_at(bytes, at, l.x86).ok_or_else(trunc);
    let page_size = bytes.read_u32(page_size_at).ok_or_else(trunc)?;
    if u64::from(page_size) != PAGE {
        return Err(bad(path, format!("page size {page_size:#x}, not 0x1000")));
    }
    let highest = field(l.highest_pfn)?;
    let hiberboot = bytes
        .get(l.highest_pfn - HIBERBOOT_BEFORE_HIGHEST)
        .and_then(|&b| match b {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        });
    let hibernation = Hibernation {
        format: "windows8+",
        system_time: bytes.read_u64(time_at).ok_or_else(trunc)?,
        hiberboot,
        ..Hibernation::default()
    };
    let mut parsed = Parsed::default();
    for (name, first_page, pages) in [
        (
            "boot",
            field(l.first_boot_page)?,
            bytes.read_u64(l.loader_pages as u64).ok_or_else(trunc)?,
        ),
        (
            "kernel",
            field(l.first_kernel_page)?,
            bytes.read_u64(l.kernel_pages as u64).ok_or_else(trunc)?,
        ),
    ] {
        restoration_set(bytes, name, first_page, pages, highest, l.x86, &mut parsed);
    }
    Ok((hibernation, parsed))
}

/// Walks one restoration set of Windows 8+: compression sets back to back from `first_page` until
/// `pages` pages are located.
fn restoration_set(
    bytes: &[u8],
    name: &str,
    first_page: u64,
    pages: u64,
    highest_pfn: u64,
    x86: bool,
    parsed: &mut Parsed,
) {
    let file_len = bytes.len() as u64;
    let descriptor = if x86 { 4 } else { 8 };
    let mut at = first_page.saturating_mul(PAGE);
    let mut left = pages;
    while left > 0 {
        if parsed.sets.len() >= MAX_SETS {
            parsed
                .warnings
                .push(format!("{name} restoration set: more than {MAX_SETS} sets"));
            return;
        }
        let stop = |parsed: &mut Parsed, why: String| {
            parsed.warnings.push(format!(
                "{name} restoration set: {why}; {left} of its {pages} pages are not located"
            ));
        };
        let Some(header) = bytes.read_u32(at) else {
            return stop(
                parsed,
                format!("set header at {at:#x} is past the end of the file"),
            );
        };
        let count = u64::from(header & 0xff);
        let stored = u64::from((header >> 8) & 0x3f_ffff);
        if count == 0 || stored == 0 {
            return stop(parsed, format!("empty set header at {at:#x}"));
        }
        let data = at + 4 + count * descriptor;
        let end = data + stored;
        if end > file_len {
            return stop(
                parsed,
                format!("set at {at:#x} claims {stored:#x} bytes, past the end of the file"),
            );
        }
        let mut pfns = Vec::with_capacity(count as usize);
        let mut set_pages = 0u64;
        let mut lies = None;
        for i in 0..count {
            let d_at = (at + 4 + i * descriptor) as usize;
            let Some(d) = ptr_at(bytes, d_at, x86) else {
                lies = Some("descriptor truncated".to_string());
                break;
            };
            let n = 1 + (d & 0xf);
            let pfn = d >> 4;
            if pfn.checked_add(n).is_none_or(|e| e - 1 > highest_pfn) {
                lies = Some(format!(
                    "PFN {pfn:#x}+{n} above HighestPhysicalPage {highest_pfn:#x}"
                ));
            }
            pfns.push((pfn, n));
            set_pages += n;
        }
        if set_pages > SET_PAGES {
            lies = Some(format!("{set_pages} pages, more than {SET_PAGES}"));
        }
        let storage = if stored == set_pages * PAGE {
            Storage::Raw
        } else if header >> 30 >= 2 {
            Storage::Huffman
        } else {
            Storage::Plain
        };
        match lies {
            Some(why) => parsed.warnings.push(format!(
                "{name} restoration set: compression set at {at:#x} skipped ({why})"
            )),
            None => parsed.push_set(
                Set {
                    offset: data,
                    stored: stored as u32,
                    storage,
                    pages: set_pages as u8,
                },
                &pfns,
            ),
        }
        left = left.saturating_sub(set_pages.max(1));
        at = end;
    }
}

fn parse_7(bytes: &[u8], l: &Layout7, path: &Path) -> Result<(Hibernation, Parsed)> {
    let time_at = if l.x86 { 0x18 } else { 0x20 };
    let trunc = || bad(path, "header truncated");
    let first_table = ptr_at(bytes, l.first_table_page, l.x86).ok_or_else(trunc)?;
    let hibernation = Hibernation {
        format: "windows7/vista",
        system_time: bytes.read_u64(time_at).ok_or_else(trunc)?,
        hiberboot: None,
        ..Hibernation::default()
    };
    let mut parsed = Parsed::default();
    let file_len = bytes.len() as u64;
    let mut table = first_table;
    let mut seen = std::collections::HashSet::new();
    // The first block follows the first table's page; later ones follow the previous block.
    let mut block_at = first_table.saturating_add(1).saturating_mul(PAGE);
    while table != 0 && seen.insert(table) {
        if seen.len() > MAX_TABLES {
            parsed
                .warnings
                .push(format!("more than {MAX_TABLES} memory-range tables"));
            break;
        }
        // A whole page, so its header fields are there.
        let Some((page, next, entries)) = usize::try_from(table.saturating_mul(PAGE))
            .ok()
            .and_then(|a| bytes.get(a..a + PAGE as usize))
            .and_then(|page| {
                let next = ptr_at(page, l.next_table, l.x86)?;
                Some((page, next, page.read_u32(l.entry_count as u64)?))
            })
        else {
            parsed.warnings.push(format!(
                "memory-range table at page {table:#x} is past the end of the file"
            ));
            break;
        };
        let entries = u64::from(entries);
        let room = ((PAGE as usize - l.first_range) / l.element) as u64;
        if entries > room {
            parsed.warnings.push(format!(
                "memory-range table at page {table:#x} claims {entries} ranges, a page holds {room}: its pages are not located"
            ));
            break;
        }
        // A table's ranges, page by page, in 16-page blocks.
        let mut pending: Vec<(u64, u64)> = vec![];
        let mut pending_pages = 0u64;
        let mut table_ok = true;
        let mut flush = |pending: &mut Vec<(u64, u64)>,
                         pending_pages: &mut u64,
                         parsed: &mut Parsed|
         -> bool {
            if *pending_pages == 0 {
                return true;
            }
            let Some((header_at, stored)) = find_block(bytes, block_at) else {
                parsed.warnings.push(format!(
                        "no Xpress block near file offset {block_at:#x}: the remaining pages are not located"
                    ));
                return false;
            };
            let storage = if stored == BLOCK && *pending_pages == SET_PAGES {
                Storage::Raw
            } else {
                Storage::Plain
            };
            let data = header_at + 0x20;
            if data + stored > file_len {
                parsed.warnings.push(format!(
                    "Xpress block at {header_at:#x} runs past the end of the file"
                ));
                return false;
            }
            parsed.push_set(
                Set {
                    offset: data,
                    stored: stored as u32,
                    storage,
                    pages: *pending_pages as u8,
                },
                pending,
            );
            block_at = data + stored.next_multiple_of(8);
            pending.clear();
            *pending_pages = 0;
            true
        };
        for i in 0..entries as usize {
            let e = l.first_range + i * l.element;
            let (Some(start), Some(end)) = (
                ptr_at(page, e + l.start, l.x86),
                ptr_at(page, e + l.end, l.x86),
            ) else {
                break;
            };
            if end < start || end - start > (1 << 28) {
                parsed.warnings.push(format!(
                    "memory-range table at page {table:#x}: range {i} ({start:#x}..{end:#x}) skipped"
                ));
                continue;
            }
            let mut pfn = start;
            while pfn < end {
                let n = (end - pfn).min(SET_PAGES - pending_pages);
                pending.push((pfn, n));
                pending_pages += n;
                pfn += n;
                if pending_pages == SET_PAGES
                    && !flush(&mut pending, &mut pending_pages, &mut parsed)
                {
                    table_ok = false;
                    break;
                }
            }
            if !table_ok {
                break;
            }
        }
        if !table_ok || !flush(&mut pending, &mut pending_pages, &mut parsed) {
            break;
        }
        if next != 0 {
            block_at = block_at.max(next.saturating_add(1).saturating_mul(PAGE).min(file_len));
        }
        table = next;
    }
    Ok((hibernation, parsed))
}

/// The Xpress block header at `at` or shortly after it: (header offset, compressed bytes). The
/// block occupies that rounded up to 8 bytes.
fn find_block(bytes: &[u8], at: u64) -> Option<(u64, u64)> {
    let from = usize::try_from(at).ok()?;
    let window = bytes.get(from..bytes.len().min(from + BLOCK_SEARCH as usize))?;
    let found = memchr::memmem::find(window, XPRESS_MAGIC)?;
    let header_at = from + found;
    let word = bytes.read_u32((header_at + 8) as u64)?;
    // Bits 10-31 hold the compressed size - 1 (a plain stream ends where its input does, so the
    // padding to 8 bytes must not reach the decoder).
    let stored = u64::from(word >> 10) + 1;
    (stored <= BLOCK).then_some((header_at as u64, stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Windows 7 x64 header whose first table is page 1, and `pages` more zero pages.
    fn windows7(pages: usize) -> Vec<u8> {
        let mut f = vec![0u8; (pages + 2) * PAGE as usize];
        f[..4].copy_from_slice(b"hibr");
        f[0xc..0x10].copy_from_slice(&0x128u32.to_le_bytes());
        f[0x60..0x68].copy_from_slice(&1u64.to_le_bytes());
        f
    }

    fn block(f: &mut [u8], at: usize, pages: u32) {
        f[at..at + 8].copy_from_slice(XPRESS_MAGIC);
        let word = ((BLOCK as u32 - 1) << 10) | (pages - 1);
        f[at + 8..at + 12].copy_from_slice(&word.to_le_bytes());
    }

    #[test]
    fn a_table_chain_that_loops_ends() {
        let mut f = windows7(20);
        let t = PAGE as usize;
        f[t..t + 8].copy_from_slice(&1u64.to_le_bytes()); // NextTable: itself
        f[t + 8..t + 12].copy_from_slice(&1u32.to_le_bytes());
        f[t + 16..t + 24].copy_from_slice(&0x100u64.to_le_bytes());
        f[t + 24..t + 32].copy_from_slice(&0x110u64.to_le_bytes());
        block(&mut f, 2 * PAGE as usize, 16);
        let space = PhysicalSpace::from_bytes(f, Path::new("hiberfil.sys")).unwrap();
        assert_eq!(space.present_size(), 16 * PAGE);
        assert!(space.is_present(0x100 * PAGE));
        let mut page = [1u8; 16];
        assert!(space.read_into(0x10f * PAGE, &mut page));
        assert_eq!(page, [0u8; 16]);
    }

    #[test]
    fn tables_that_lie_are_said_and_cost_their_pages() {
        let mut f = windows7(20);
        let t = PAGE as usize;
        f[t + 8..t + 12].copy_from_slice(&5000u32.to_le_bytes());
        let err = PhysicalSpace::from_bytes(f.clone(), Path::new("hiberfil.sys"))
            .err()
            .expect("no pages at all");
        assert!(err.to_string().contains("claims 5000 ranges"), "{err}");
        // A range running backwards is skipped; the next one is read.
        f[t + 8..t + 12].copy_from_slice(&2u32.to_le_bytes());
        f[t + 16..t + 24].copy_from_slice(&0x200u64.to_le_bytes());
        f[t + 24..t + 32].copy_from_slice(&0x100u64.to_le_bytes());
        f[t + 32..t + 40].copy_from_slice(&0x300u64.to_le_bytes());
        f[t + 40..t + 48].copy_from_slice(&0x310u64.to_le_bytes());
        block(&mut f, 2 * PAGE as usize, 16);
        let space = PhysicalSpace::from_bytes(f, Path::new("hiberfil.sys")).unwrap();
        assert_eq!(space.present_size(), 16 * PAGE);
        assert!(
            space.warnings.iter().any(|w| w.contains("range 0")),
            "{:?}",
            space.warnings
        );
    }

    #[test]
    fn layouts_are_unique_and_inside_their_headers() {
        for l in &LAYOUTS_8 {
            assert_eq!(
                LAYOUTS_8
                    .iter()
                    .filter(|o| o.length_self == l.length_self)
                    .count(),
                1
            );
            let width = if l.x86 { 4 } else { 8 };
            assert!(l.highest_pfn + width <= l.length_self as usize);
            assert!(l.kernel_pages + 8 <= l.length_self as usize);
        }
        for l in &LAYOUTS_7 {
            assert!(LAYOUTS_8.iter().all(|o| o.length_self != l.length_self));
            assert_eq!(l.first_range % l.element, 0);
        }
    }
}
