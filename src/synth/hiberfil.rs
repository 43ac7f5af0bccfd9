//! hiberfil.sys writer: the present pages as Windows would hibernate them, in the layout of the
//! release the image claims (Windows 8+ restoration sets of compression sets, or Windows 7/Vista
//! memory-range tables and `\x81\x81xpress` blocks). Kept apart from the reader: its facts are
//! restated here as the writer needs them, so one cannot quietly agree with the other's mistake.
//!
//! Compression rotates through the stored forms so that every image exercises each: Windows 8+
//! sets go raw, plain Xpress and Xpress Huffman in turn (raw whenever compressing does not shrink
//! the set, as Windows does); Windows 7 blocks are plain Xpress, raw when a full block does not
//! shrink.
use super::containers::Runs;
use super::kernel::{le32, le64};
use super::phys::{PhysMem, PAGE};
use super::xpress::{compress_huffman, compress_plain};
use crate::error::{io_error, Result};
use rayon::prelude::*;
use std::io::Write;
use std::path::Path;

const SET_PAGES: u64 = 16;
/// Loader pages in the boot restoration set (the rest go to the kernel set).
const BOOT_PAGES: u64 = 96;
/// Page of the first restoration set or memory-range table (the pages before it hold the free
/// map and processor state in real files).
const FIRST_DATA_PAGE: u64 = 6;
/// Windows 7: physical ranges are split to at most this many pages, so tables fill up and chain
/// and blocks end short at table ends, as in a fragmented machine's file.
const RANGE_PAGES: u64 = 8;

/// What the writer produced, for truth.json.
pub struct Written {
    pub windows8: bool,
    pub signature: &'static str,
    pub header_size: u32,
    pub fast_startup: Option<bool>,
    pub pages: u64,
    pub sets: u64,
}

/// Header fields by release: (LengthSelf, x64, FirstBootRestorePage offset, KernelPagesProcessed
/// offset, HighestPhysicalPage offset), first build of each.
fn windows8_header(x64: bool, build: u32) -> (u32, usize, usize, usize) {
    let rows: &[(u32, u32, usize, usize, usize)] = if x64 {
        &[
            (26100, 0x4d8, 0x68, 0x238, 0x498),
            (20348, 0x448, 0x68, 0x230, 0x400),
            (17763, 0x3e0, 0x68, 0x230, 0x398),
            (15063, 0x3d8, 0x68, 0x230, 0x398),
            (14393, 0x3c8, 0x68, 0x220, 0x388),
            (10240, 0x3b0, 0x68, 0x218, 0x380),
            (0, 0x360, 0x60, 0x1c8, 0x330),
        ]
    } else {
        &[
            (17763, 0x340, 0x50, 0x210, 0x310),
            (15063, 0x338, 0x50, 0x210, 0x310),
            (14393, 0x328, 0x50, 0x200, 0x300),
            (10240, 0x310, 0x50, 0x1f8, 0x2f8),
            (0, 0x2c8, 0x50, 0x1b0, 0x2b0),
        ]
    };
    let &(_, length, boot, kernel, highest) = rows
        .iter()
        .find(|r| build >= r.0)
        .expect("a row for build 0");
    (length, boot, kernel, highest)
}

fn put_ptr(h: &mut [u8], at: usize, v: u64, x64: bool) {
    if x64 {
        le64(h, at, v);
    } else {
        le32(h, at, v as u32);
    }
}

/// Present pages in physical order, grouped as Windows 8 sets them: at most 16 pages a set, one
/// descriptor per contiguous piece.
fn sets_of(runs: &Runs) -> Vec<Vec<(u64, u64)>> {
    let mut sets: Vec<Vec<(u64, u64)>> = vec![];
    let mut in_set = SET_PAGES;
    for &(start, count) in runs {
        let mut pfn = start;
        while pfn < start + count {
            if in_set == SET_PAGES {
                sets.push(vec![]);
                in_set = 0;
            }
            let n = (start + count - pfn).min(SET_PAGES - in_set);
            sets.last_mut().expect("a set").push((pfn, n));
            in_set += n;
            pfn += n;
        }
    }
    sets
}

fn pages_of(mem: &PhysMem, pieces: &[(u64, u64)]) -> Vec<u8> {
    let total: u64 = pieces.iter().map(|p| p.1).sum();
    let mut out = vec![0u8; (total * PAGE) as usize];
    let mut at = 0usize;
    for &(pfn, n) in pieces {
        for k in 0..n {
            mem.page_into(pfn + k, &mut out[at..at + PAGE as usize]);
            at += PAGE as usize;
        }
    }
    out
}

/// One Windows 8 compression set, encoded: header, descriptors, data.
fn encode_set(mem: &PhysMem, pieces: &[(u64, u64)], index: usize, x64: bool) -> Vec<u8> {
    let raw = pages_of(mem, pieces);
    let (method, packed) = match index % 3 {
        1 => (0u32, compress_plain(&raw)),
        2 => (2u32, compress_huffman(&raw)),
        _ => (0u32, raw.clone()),
    };
    let (method, data) = if packed.len() < raw.len() {
        (method, packed)
    } else {
        (0, raw)
    };
    let mut out = vec![];
    let header = pieces.len() as u32 | ((data.len() as u32) << 8) | (method << 30);
    out.extend_from_slice(&header.to_le_bytes());
    for &(pfn, n) in pieces {
        let d = (pfn << 4) | (n - 1);
        if x64 {
            out.extend_from_slice(&d.to_le_bytes());
        } else {
            out.extend_from_slice(&(d as u32).to_le_bytes());
        }
    }
    out.extend_from_slice(&data);
    out
}

fn pad_to_page(w: &mut impl Write, written: &mut u64, path: &Path) -> Result<()> {
    let pad = written.next_multiple_of(PAGE) - *written;
    w.write_all(&vec![0u8; pad as usize])
        .map_err(|e| io_error(path, &e))?;
    *written += pad;
    Ok(())
}

/// Writes `hiberfil.sys` for a machine of `build` (x64 or x86) holding `runs` of `mem`,
/// hibernated at `system_time`.
pub fn write(
    path: &Path,
    mem: &PhysMem,
    runs: &Runs,
    x64: bool,
    build: u32,
    system_time: u64,
) -> Result<Written> {
    if build >= 9200 {
        write_windows8(path, mem, runs, x64, build, system_time)
    } else {
        write_windows7(path, mem, runs, x64, build, system_time)
    }
}

fn write_windows8(
    path: &Path,
    mem: &PhysMem,
    runs: &Runs,
    x64: bool,
    build: u32,
    system_time: u64,
) -> Result<Written> {
    let (length, boot_at, kernel_pages_at, highest_at) = windows8_header(x64, build);
    let sets = sets_of(runs);
    let total: u64 = runs.iter().map(|r| r.1).sum();
    // The boot set ends on a set boundary; the kernel set holds the rest.
    let boot_sets = (BOOT_PAGES / SET_PAGES) as usize;
    let boot_sets = boot_sets.min(sets.len());
    let boot_pages: u64 = sets[..boot_sets].iter().flatten().map(|p| p.1).sum();
    let encoded: Vec<Vec<u8>> = sets
        .par_iter()
        .enumerate()
        .map(|(i, pieces)| encode_set(mem, pieces, i, x64))
        .collect();
    let boot_bytes: u64 = encoded[..boot_sets].iter().map(|e| e.len() as u64).sum();
    let kernel_page = FIRST_DATA_PAGE + boot_bytes.div_ceil(PAGE);
    let fast_startup = build >= 10240;
    let highest = runs.last().map_or(0, |r| r.0 + r.1 - 1);

    let mut h = vec![0u8; PAGE as usize];
    h[..4].copy_from_slice(b"HIBR");
    le32(&mut h, 0xc, length);
    let (page_size_at, time_at, loader_at) = if x64 {
        (0x18, 0x20, 0x58)
    } else {
        (0x14, 0x18, 0x48)
    };
    le32(&mut h, page_size_at, PAGE as u32);
    le64(&mut h, time_at, system_time);
    le64(&mut h, loader_at, boot_pages);
    put_ptr(&mut h, boot_at, FIRST_DATA_PAGE, x64);
    put_ptr(&mut h, boot_at + if x64 { 8 } else { 4 }, kernel_page, x64);
    le64(&mut h, kernel_pages_at, total - boot_pages);
    put_ptr(&mut h, highest_at, highest, x64);
    h[highest_at - 0x34] = u8::from(fast_startup);

    let file = std::fs::File::create(path).map_err(|e| io_error(path, &e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut written = 0u64;
    let emit = |w: &mut std::io::BufWriter<std::fs::File>, b: &[u8], written: &mut u64| {
        *written += b.len() as u64;
        w.write_all(b).map_err(|e| io_error(path, &e))
    };
    emit(&mut w, &h, &mut written)?;
    emit(
        &mut w,
        &vec![0u8; ((FIRST_DATA_PAGE - 1) * PAGE) as usize],
        &mut written,
    )?;
    for e in &encoded[..boot_sets] {
        emit(&mut w, e, &mut written)?;
    }
    pad_to_page(&mut w, &mut written, path)?;
    debug_assert_eq!(written, kernel_page * PAGE);
    for e in &encoded[boot_sets..] {
        emit(&mut w, e, &mut written)?;
    }
    pad_to_page(&mut w, &mut written, path)?;
    w.flush().map_err(|e| io_error(path, &e))?;
    Ok(Written {
        windows8: true,
        signature: "HIBR",
        header_size: length,
        fast_startup: Some(fast_startup),
        pages: total,
        sets: sets.len() as u64,
    })
}

/// Windows 7 / Vista table shapes: (LengthSelf, FirstTablePage offset, element size, NextTable
/// offset, EntryCount offset, range start offset, range end offset).
fn windows7_layout(x64: bool, vista: bool) -> (u32, usize, usize, usize, usize, usize, usize) {
    match (x64, vista) {
        (true, false) => (0x128, 0x60, 16, 0, 8, 0, 8),
        (false, false) => (0xe0, 0x4c, 8, 0, 4, 0, 4),
        (true, true) => (0x138, 0x68, 0x20, 8, 0x14, 8, 0x10),
        (false, true) => (0xf0, 0x50, 0x10, 4, 0xc, 4, 8),
    }
}

/// One Xpress block of `pages` pages: 32-byte header, data padded to 8 bytes.
fn encode_block(mem: &PhysMem, pieces: &[(u64, u64)]) -> Vec<u8> {
    let raw = pages_of(mem, pieces);
    let pages = raw.len() as u64 / PAGE;
    let packed = compress_plain(&raw);
    let data = if pages == SET_PAGES && packed.len() >= raw.len() {
        raw
    } else {
        packed
    };
    let mut out = vec![0u8; 0x20];
    out[..8].copy_from_slice(b"\x81\x81xpress");
    let word = ((data.len() as u32 - 1) << 10) | (pages as u32 - 1);
    le32(&mut out, 8, word);
    out.extend_from_slice(&data);
    out.resize(out.len().next_multiple_of(8), 0);
    out
}

fn write_windows7(
    path: &Path,
    mem: &PhysMem,
    runs: &Runs,
    x64: bool,
    build: u32,
    system_time: u64,
) -> Result<Written> {
    let vista = build < 7600;
    let (length, first_table_at, element, next_at, count_at, start_at, end_at) =
        windows7_layout(x64, vista);
    // Ranges, split small; each table holds as many as fit after its link element.
    let ranges: Vec<(u64, u64)> = runs
        .iter()
        .flat_map(|&(s, n)| {
            (0..n.div_ceil(RANGE_PAGES)).map(move |k| {
                let from = s + k * RANGE_PAGES;
                (from, (s + n).min(from + RANGE_PAGES))
            })
        })
        .collect();
    let per_table = (PAGE as usize - element) / element;
    let tables: Vec<&[(u64, u64)]> = ranges.chunks(per_table).collect();
    let total: u64 = runs.iter().map(|r| r.1).sum();

    let mut h = vec![0u8; PAGE as usize];
    h[..4].copy_from_slice(b"hibr");
    le32(&mut h, 0xc, length);
    let (page_size_at, time_at) = if x64 { (0x18, 0x20) } else { (0x14, 0x18) };
    le32(&mut h, page_size_at, PAGE as u32);
    le64(&mut h, time_at, system_time);
    put_ptr(&mut h, first_table_at, FIRST_DATA_PAGE, x64);

    let file = std::fs::File::create(path).map_err(|e| io_error(path, &e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let io = |e: std::io::Error| io_error(path, &e);
    w.write_all(&h).map_err(io)?;
    w.write_all(&vec![0u8; ((FIRST_DATA_PAGE - 1) * PAGE) as usize])
        .map_err(io)?;
    let mut page = FIRST_DATA_PAGE;
    let mut blocks = 0u64;
    for (t, ranges) in tables.iter().enumerate() {
        // The table's pages in 16-page blocks, a short one at the end.
        let mut groups: Vec<Vec<(u64, u64)>> = vec![];
        let mut in_group = SET_PAGES;
        for &(s, e) in ranges.iter() {
            let mut pfn = s;
            while pfn < e {
                if in_group == SET_PAGES {
                    groups.push(vec![]);
                    in_group = 0;
                }
                let n = (e - pfn).min(SET_PAGES - in_group);
                groups.last_mut().expect("a group").push((pfn, n));
                in_group += n;
                pfn += n;
            }
        }
        let encoded: Vec<Vec<u8>> = groups.par_iter().map(|g| encode_block(mem, g)).collect();
        blocks += encoded.len() as u64;
        let bytes: u64 = encoded.iter().map(|e| e.len() as u64).sum();
        let next = if t + 1 < tables.len() {
            page + 1 + bytes.div_ceil(PAGE)
        } else {
            0
        };
        let mut table = vec![0u8; PAGE as usize];
        put_ptr(&mut table, next_at, next, x64);
        le32(&mut table, count_at, ranges.len() as u32);
        for (i, &(s, e)) in ranges.iter().enumerate() {
            let at = element * (i + 1);
            put_ptr(&mut table, at + start_at, s, x64);
            put_ptr(&mut table, at + end_at, e, x64);
        }
        w.write_all(&table).map_err(io)?;
        for e in &encoded {
            w.write_all(e).map_err(io)?;
        }
        let pad = bytes.next_multiple_of(PAGE) - bytes;
        w.write_all(&vec![0u8; pad as usize]).map_err(io)?;
        page += 1 + bytes.div_ceil(PAGE);
    }
    w.flush().map_err(io)?;
    Ok(Written {
        windows8: false,
        signature: "hibr",
        header_size: length,
        fast_startup: None,
        pages: total,
        sets: blocks,
    })
}
