//! Container writers: raw, Windows crash dump (full and bitmap), ELF core, LiME, VMware
//! .vmem + .vmss. Each streams pages in large batches (generated in parallel), so memory use does
//! not grow with the image.
use super::kernel::{le16, le32, le64};
use super::phys::{PhysMem, PAGE};
use crate::error::{io_error, Result};
use rayon::prelude::*;
use std::io::Write;
use std::path::Path;

/// What the crash-dump header records about the machine.
pub struct DumpFacts {
    pub x64: bool,
    pub pae: bool,
    pub dtb: u64,
    pub build: u32,
    pub ps_active_process_head: u64,
    pub ps_loaded_module_list: u64,
    pub kdbg: u64,
    pub system_time: u64,
    pub uptime: u64,
}

/// Present physical ranges as (first page, page count), ascending.
pub type Runs = Vec<(u64, u64)>;

/// Runs of a set of page numbers (sorted, deduplicated).
pub fn runs_of(pfns: &[u64]) -> Runs {
    let mut runs: Runs = vec![];
    for &p in pfns {
        match runs.last_mut() {
            Some((s, n)) if *s + *n == p => *n += 1,
            _ => runs.push((p, 1)),
        }
    }
    runs
}

const BATCH: u64 = 2048;

/// Writes the pages of `runs` in order.
fn write_runs(w: &mut impl Write, mem: &PhysMem, runs: &Runs, path: &Path) -> Result<()> {
    let mut buf = vec![0u8; (BATCH * PAGE) as usize];
    for &(start, count) in runs {
        let mut done = 0;
        while done < count {
            let n = (count - done).min(BATCH);
            let chunk = &mut buf[..(n * PAGE) as usize];
            chunk
                .par_chunks_mut(PAGE as usize)
                .enumerate()
                .for_each(|(i, page)| mem.page_into(start + done + i as u64, page));
            w.write_all(chunk).map_err(|e| io_error(path, &e))?;
            done += n;
        }
    }
    Ok(())
}

fn create(path: &Path) -> Result<std::io::BufWriter<std::fs::File>> {
    let f = std::fs::File::create(path).map_err(|e| io_error(path, &e))?;
    Ok(std::io::BufWriter::with_capacity(8 << 20, f))
}

fn finish(mut w: std::io::BufWriter<std::fs::File>, path: &Path) -> Result<()> {
    w.flush().map_err(|e| io_error(path, &e))
}

pub fn write_raw(path: &Path, mem: &PhysMem, runs: &Runs) -> Result<()> {
    let mut w = create(path)?;
    write_runs(&mut w, mem, runs, path)?;
    finish(w, path)
}

/// The DUMP_HEADER32/64 with the run list (at most the 42 or 86 runs the header holds);
/// `required` is RequiredDumpSpace. The rest of the header keeps the `PAGE` filler.
pub fn dump_header(f: &DumpFacts, runs: &Runs, dump_type: u32, required: u64) -> Vec<u8> {
    let size = if f.x64 { 0x2000 } else { 0x1000 };
    let mut h: Vec<u8> = b"PAGE".iter().copied().cycle().take(size).collect();
    let total: u64 = runs.iter().map(|r| r.1).sum();
    h[0..4].copy_from_slice(b"PAGE");
    le32(&mut h, 8, 0xF);
    le32(&mut h, 0xC, f.build);
    if f.x64 {
        h[4..8].copy_from_slice(b"DU64");
        le64(&mut h, 0x10, f.dtb);
        le64(&mut h, 0x18, 0);
        le64(&mut h, 0x20, f.ps_loaded_module_list);
        le64(&mut h, 0x28, f.ps_active_process_head);
        le32(&mut h, 0x30, 0x8664);
        le32(&mut h, 0x34, 1);
        le64(&mut h, 0x38, 0xE2); // MANUALLY_INITIATED_CRASH
        for i in 0..4 {
            le64(&mut h, 0x40 + i * 8, 0);
        }
        h[0x60..0x80].fill(0);
        le64(&mut h, 0x80, f.kdbg);
        le32(&mut h, 0x88, runs.len() as u32);
        le32(&mut h, 0x8C, 0);
        le64(&mut h, 0x90, total);
        h[0x98..0x98 + 42 * 16].fill(0);
        for (i, (s, n)) in runs.iter().take(42).enumerate() {
            le64(&mut h, 0x98 + i * 16, *s);
            le64(&mut h, 0xA0 + i * 16, *n);
        }
        le32(&mut h, 0xF98, dump_type);
        le32(&mut h, 0xF9C, 0);
        le64(&mut h, 0xFA0, required);
        le64(&mut h, 0xFA8, f.system_time);
        le64(&mut h, 0x1030, f.uptime);
        le32(&mut h, 0x1040, 1);
        le32(&mut h, 0x1044, 0x100);
    } else {
        h[4..8].copy_from_slice(b"DUMP");
        le32(&mut h, 0x10, f.dtb as u32);
        le32(&mut h, 0x14, 0);
        le32(&mut h, 0x18, f.ps_loaded_module_list as u32);
        le32(&mut h, 0x1C, f.ps_active_process_head as u32);
        le32(&mut h, 0x20, 0x14C);
        le32(&mut h, 0x24, 1);
        le32(&mut h, 0x28, 0xE2);
        h[0x2C..0x5C].fill(0);
        h[0x5C] = u8::from(f.pae);
        h[0x5D] = 0;
        le16(&mut h, 0x5E, 0);
        le32(&mut h, 0x60, f.kdbg as u32);
        le32(&mut h, 0x64, runs.len() as u32);
        le32(&mut h, 0x68, total as u32);
        h[0x6C..0x6C + 86 * 8].fill(0);
        for (i, (s, n)) in runs.iter().take(86).enumerate() {
            le32(&mut h, 0x6C + i * 8, *s as u32);
            le32(&mut h, 0x70 + i * 8, *n as u32);
        }
        le32(&mut h, 0xF88, dump_type);
        le32(&mut h, 0xF94, 1);
        le64(&mut h, 0xFA0, required);
        le64(&mut h, 0xFB8, f.uptime);
        le64(&mut h, 0xFC0, f.system_time);
    }
    h
}

/// DumpType 1: header, then every run's pages back to back.
pub fn write_crashdump(path: &Path, mem: &PhysMem, runs: &Runs, f: &DumpFacts) -> Result<()> {
    let total: u64 = runs.iter().map(|r| r.1).sum();
    let hsize = if f.x64 { 0x2000 } else { 0x1000 };
    let h = dump_header(f, runs, 1, hsize + total * PAGE);
    let mut w = create(path)?;
    w.write_all(&h).map_err(|e| io_error(path, &e))?;
    write_runs(&mut w, mem, runs, path)?;
    finish(w, path)
}

/// DumpType 5 (`FDMP`): header, summary header with the page bitmap, then the present pages.
pub fn write_bitmap(
    path: &Path,
    mem: &PhysMem,
    full_runs: &Runs,
    present: &Runs,
    f: &DumpFacts,
) -> Result<()> {
    let hsize: u64 = if f.x64 { 0x2000 } else { 0x1000 };
    let bits = mem.pages;
    let bitmap_len = bits.div_ceil(32) * 4;
    let first_page = (hsize + 0x38 + bitmap_len).div_ceil(PAGE) * PAGE;
    let total: u64 = present.iter().map(|r| r.1).sum();
    let mut out = dump_header(f, full_runs, 5, first_page + total * PAGE);
    let mut summary = vec![0u8; (first_page - hsize) as usize];
    summary[0..4].copy_from_slice(b"FDMP");
    summary[4..8].copy_from_slice(b"DUMP");
    le64(&mut summary, 0x20, first_page);
    le64(&mut summary, 0x28, total);
    le64(&mut summary, 0x30, bits);
    for &(s, n) in present {
        for p in s..s + n {
            summary[0x38 + (p / 8) as usize] |= 1 << (p % 8);
        }
    }
    out.extend_from_slice(&summary);
    let mut w = create(path)?;
    w.write_all(&out).map_err(|e| io_error(path, &e))?;
    write_runs(&mut w, mem, present, path)?;
    finish(w, path)
}

/// The ELF64 core's file header, program headers and note, padded to the page where the first
/// run's pages start (the runs follow back to back).
pub fn elf_header(runs: &Runs, x64: bool) -> Vec<u8> {
    let phnum = 1 + runs.len();
    let note_off = 64 + 56 * phnum as u64;
    let mut note = vec![0u8; 12];
    le32(&mut note, 0, 5);
    le32(&mut note, 4, 336);
    le32(&mut note, 8, 1); // NT_PRSTATUS
    note.extend_from_slice(b"CORE\0\0\0\0");
    note.extend(std::iter::repeat_n(0u8, 336));
    let data_start = (note_off + note.len() as u64).div_ceil(PAGE) * PAGE;
    let mut h = vec![0u8; 64];
    h[0..4].copy_from_slice(b"\x7fELF");
    h[4] = 2;
    h[5] = 1;
    h[6] = 1;
    le16(&mut h, 16, 4); // ET_CORE
    le16(&mut h, 18, if x64 { 62 } else { 3 });
    le32(&mut h, 20, 1);
    le64(&mut h, 32, 64);
    le16(&mut h, 52, 64);
    le16(&mut h, 54, 56);
    le16(&mut h, 56, phnum as u16);
    le16(&mut h, 58, 64);
    let mut ph = vec![0u8; 56];
    le32(&mut ph, 0, 4); // PT_NOTE
    le64(&mut ph, 8, note_off);
    le64(&mut ph, 32, note.len() as u64);
    le64(&mut ph, 40, note.len() as u64);
    le64(&mut ph, 48, 1);
    h.extend_from_slice(&ph);
    let mut off = data_start;
    for &(s, n) in runs {
        let mut ph = vec![0u8; 56];
        le32(&mut ph, 0, 1); // PT_LOAD
        le32(&mut ph, 4, 7);
        le64(&mut ph, 8, off);
        le64(&mut ph, 16, 0);
        le64(&mut ph, 24, s * PAGE);
        le64(&mut ph, 32, n * PAGE);
        le64(&mut ph, 40, n * PAGE);
        le64(&mut ph, 48, 0);
        h.extend_from_slice(&ph);
        off += n * PAGE;
    }
    h.extend_from_slice(&note);
    h.resize(data_start as usize, 0);
    h
}

/// ELF64 core (QEMU `dump-guest-memory` style): a PT_NOTE with one NT_PRSTATUS, then one PT_LOAD
/// per present range with p_paddr = guest physical address.
pub fn write_elf(path: &Path, mem: &PhysMem, runs: &Runs, x64: bool) -> Result<()> {
    let h = elf_header(runs, x64);
    let mut w = create(path)?;
    w.write_all(&h).map_err(|e| io_error(path, &e))?;
    write_runs(&mut w, mem, runs, path)?;
    finish(w, path)
}

/// LiME: a 32-byte header before each range (end address inclusive).
pub fn write_lime(path: &Path, mem: &PhysMem, runs: &Runs) -> Result<()> {
    let mut w = create(path)?;
    for &(s, n) in runs {
        let h = lime_range_header(s * PAGE, (s + n) * PAGE - 1);
        w.write_all(&h).map_err(|e| io_error(path, &e))?;
        write_runs(&mut w, mem, &vec![(s, n)], path)?;
    }
    finish(w, path)
}

/// A LiME range header: magic, version 1, start and inclusive end address.
pub fn lime_range_header(start: u64, end_inclusive: u64) -> Vec<u8> {
    let mut h = vec![0u8; 32];
    le32(&mut h, 0, 0x4C69_4D45);
    le32(&mut h, 4, 1);
    le64(&mut h, 8, start);
    le64(&mut h, 16, end_inclusive);
    h
}

/// VMware: `.vmem` holds the present ranges back to back; the `.vmss` "memory" group maps them
/// (regionPPN / regionPageNum / regionSize per region).
pub fn write_vmware(vmem: &Path, vmss: &Path, mem: &PhysMem, runs: &Runs) -> Result<()> {
    let mut w = create(vmem)?;
    write_runs(&mut w, mem, runs, vmem)?;
    finish(w, vmem)?;
    let mut m = vec![];
    m.extend_from_slice(&0xBED2_BED2u32.to_le_bytes());
    m.extend_from_slice(&8u32.to_le_bytes());
    m.extend_from_slice(&1u32.to_le_bytes());
    let mut name = [0u8; 64];
    name[..6].copy_from_slice(b"memory");
    m.extend_from_slice(&name);
    m.extend_from_slice(&(12u64 + 80).to_le_bytes());
    m.extend_from_slice(&0u64.to_le_bytes());
    let tag = |m: &mut Vec<u8>, name: &str, index: Option<u32>, value: u32| {
        let idx = u8::from(index.is_some());
        m.push((idx << 6) | 4);
        m.push(name.len() as u8);
        m.extend_from_slice(name.as_bytes());
        if let Some(i) = index {
            m.extend_from_slice(&i.to_le_bytes());
        }
        m.extend_from_slice(&value.to_le_bytes());
    };
    tag(&mut m, "regionsCount", None, runs.len() as u32);
    let mut file_page = 0u64;
    for (i, &(s, n)) in runs.iter().enumerate() {
        tag(&mut m, "regionPPN", Some(i as u32), s as u32);
        tag(&mut m, "regionPageNum", Some(i as u32), file_page as u32);
        tag(&mut m, "regionSize", Some(i as u32), n as u32);
        file_page += n;
    }
    m.extend_from_slice(&[0, 0]);
    std::fs::write(vmss, &m).map_err(|e| io_error(vmss, &e))
}
