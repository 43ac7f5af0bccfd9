//! Container writers for the tests: each wraps one flat physical memory buffer.
use super::machine::{HOLE, PAGE};
use netcarve::synth::builder::{le32, le64};

/// Present physical ranges of the test machines: everything but page 0 and the legacy hole.
pub fn ranges(mem_len: u64) -> Vec<(u64, u64)> {
    vec![(PAGE, HOLE.start), (HOLE.end, mem_len)]
}

/// Windows crash dump, DumpType 1 (full), with the run list of `ranges`.
pub fn full_dump(mem: &[u8], x64: bool, dtb: u64, build: u32, pae: bool, kdbg: u64) -> Vec<u8> {
    let hsize = if x64 { 0x2000 } else { 0x1000 };
    let mut h = header(x64, dtb, build, pae, kdbg, 1);
    let runs = ranges(mem.len() as u64);
    let pages: u64 = runs.iter().map(|(s, e)| (e - s) / PAGE).sum();
    if x64 {
        le32(&mut h, 0x88, runs.len() as u32);
        le32(&mut h, 0x8C, 0);
        le64(&mut h, 0x90, pages);
        for (i, (s, e)) in runs.iter().enumerate() {
            le64(&mut h, 0x98 + i * 16, s / PAGE);
            le64(&mut h, 0x98 + i * 16 + 8, (e - s) / PAGE);
        }
    } else {
        le32(&mut h, 0x64, runs.len() as u32);
        le32(&mut h, 0x68, pages as u32);
        for (i, (s, e)) in runs.iter().enumerate() {
            le32(&mut h, 0x6C + i * 8, (s / PAGE) as u32);
            le32(&mut h, 0x6C + i * 8 + 4, ((e - s) / PAGE) as u32);
        }
    }
    assert_eq!(h.len(), hsize);
    for (s, e) in runs {
        h.extend_from_slice(&mem[s as usize..e as usize]);
    }
    h
}

/// Crash dump header with `PAGE` filler, the given DumpType and the common fields.
pub fn header(x64: bool, dtb: u64, build: u32, pae: bool, kdbg: u64, dump_type: u32) -> Vec<u8> {
    let hsize = if x64 { 0x2000 } else { 0x1000 };
    let mut h: Vec<u8> = b"PAGE".iter().copied().cycle().take(hsize).collect();
    h[4..8].copy_from_slice(if x64 { b"DU64" } else { b"DUMP" });
    le32(&mut h, 8, 0xF);
    le32(&mut h, 0xC, build);
    if x64 {
        le64(&mut h, 0x10, dtb);
        le32(&mut h, 0x30, 0x8664);
        le64(&mut h, 0x80, kdbg);
        le32(&mut h, 0xF98, dump_type);
        le64(&mut h, 0xFA8, 133_590_404_967_890_000);
    } else {
        le32(&mut h, 0x10, dtb as u32);
        le32(&mut h, 0x20, 0x14C);
        h[0x5C] = pae as u8;
        le32(&mut h, 0x60, kdbg as u32);
        le32(&mut h, 0xF88, dump_type);
        le64(&mut h, 0xFC0, 133_590_404_967_890_000);
    }
    h
}

/// DumpType 5 bitmap dump (`SDMP`): present = non-zero pages plus every fifth page, minus page 0 and the hole.
pub fn bitmap_dump(mem: &[u8], x64: bool, dtb: u64, build: u32, kdbg: u64) -> Vec<u8> {
    let mut h = header(x64, dtb, build, true, kdbg, 5);
    let hdr = h.len();
    let pages = mem.len() as u64 / PAGE;
    let bitmap_len = pages.div_ceil(8) as usize;
    let first_page = ((hdr + 0x38 + bitmap_len) as u64).div_ceil(PAGE) * PAGE;
    let mut sd = vec![0u8; (first_page as usize) - hdr];
    sd[0..4].copy_from_slice(b"SDMP");
    sd[4..8].copy_from_slice(b"DUMP");
    le64(&mut sd, 0x20, first_page);
    le64(&mut sd, 0x30, pages);
    let mut data = vec![];
    let mut present = 0u64;
    for pfn in 0..pages {
        let pa = pfn * PAGE;
        let page = &mem[pa as usize..(pa + PAGE) as usize];
        let keep =
            pfn != 0 && !HOLE.contains(&pa) && (pfn % 5 == 0 || page.iter().any(|&b| b != 0));
        if keep {
            sd[0x38 + (pfn / 8) as usize] |= 1 << (pfn % 8);
            data.extend_from_slice(page);
            present += 1;
        }
    }
    le64(&mut sd, 0x28, present);
    h.extend_from_slice(&sd);
    h.extend_from_slice(&data);
    h
}

/// ELF64 core with one PT_LOAD per range (plus a PT_NOTE that must be ignored).
pub fn elf_core(mem: &[u8]) -> Vec<u8> {
    let runs = ranges(mem.len() as u64);
    let phnum = runs.len() + 1;
    let data_start = (64 + 56 * phnum as u64).div_ceil(PAGE) * PAGE;
    let mut f = vec![0u8; data_start as usize];
    f[0..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16] = 4; // ET_CORE
    f[18] = 62; // x86-64
    le64(&mut f, 32, 64);
    f[52] = 64;
    f[54] = 56;
    f[56] = phnum as u8;
    // PT_NOTE first.
    le32(&mut f, 64, 4);
    let mut off = data_start;
    for (i, (s, e)) in runs.iter().enumerate() {
        let ph = 64 + 56 * (i + 1);
        le32(&mut f, ph, 1);
        le64(&mut f, ph + 8, off);
        le64(&mut f, ph + 24, *s);
        le64(&mut f, ph + 32, e - s);
        le64(&mut f, ph + 40, e - s);
        off += e - s;
    }
    for (s, e) in runs {
        f.extend_from_slice(&mem[s as usize..e as usize]);
    }
    f
}

/// One LiME range header (inclusive end).
pub fn lime_header(start: u64, end_inclusive: u64) -> Vec<u8> {
    let mut h = vec![0u8; 32];
    le32(&mut h, 0, 0x4C69_4D45);
    le32(&mut h, 4, 1);
    le64(&mut h, 8, start);
    le64(&mut h, 16, end_inclusive);
    h
}

pub fn lime(mem: &[u8]) -> Vec<u8> {
    let mut f = vec![];
    for (s, e) in ranges(mem.len() as u64) {
        f.extend(lime_header(s, e - 1));
        f.extend_from_slice(&mem[s as usize..e as usize]);
    }
    f
}

/// A `.vmem` whose pages are packed (no hole) plus the `.vmss` region table that places them:
/// region 0 = guest pages 0..0xA0 at file page 0, region 1 = guest 0x100.. at file page 0xA0.
pub fn vmware(mem: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let pages = mem.len() as u64 / PAGE;
    let regions = [(0u64, 0u64, 0xA0u64), (0x100, 0xA0, pages - 0x100)];
    let mut vmem = vec![];
    vmem.extend_from_slice(&mem[..HOLE.start as usize]);
    vmem.extend_from_slice(&mem[HOLE.end as usize..]);
    // Header: magic, unknown, group count; groups of 80 bytes (64-byte name, tag offset, unknown).
    let mut vmss = vec![];
    vmss.extend(0xbed2_bed2u32.to_le_bytes());
    vmss.extend(0u32.to_le_bytes());
    vmss.extend(2u32.to_le_bytes());
    let groups_end = 12 + 2 * 80;
    let cpu_tags = groups_end as u64;
    let mut tags = vec![];
    // Group "cpu": one tag, then the terminator.
    tag(&mut tags, "CR64", &[0], &7u64.to_le_bytes());
    tags.push(0);
    let memory_tags = cpu_tags + tags.len() as u64;
    // A long block tag (flags size 62) that must be skipped: sizes, padding length, padding, data.
    let mut long = vec![0x3E, 6];
    long.extend(b"Memory");
    long.extend(4u64.to_le_bytes());
    long.extend(4u64.to_le_bytes());
    long.extend(2u16.to_le_bytes());
    long.extend([0, 0]);
    long.extend([1, 2, 3, 4]);
    tags.extend(long);
    tag(
        &mut tags,
        "regionsCount",
        &[],
        &(regions.len() as u32).to_le_bytes(),
    );
    for (i, (ppn, file_page, count)) in regions.iter().enumerate() {
        tag(
            &mut tags,
            "regionPPN",
            &[i as u32],
            &(*ppn as u32).to_le_bytes(),
        );
        tag(
            &mut tags,
            "regionPageNum",
            &[i as u32],
            &(*file_page as u32).to_le_bytes(),
        );
        tag(
            &mut tags,
            "regionSize",
            &[i as u32],
            &(*count as u32).to_le_bytes(),
        );
    }
    tags.push(0);
    for (name, at) in [("cpu", cpu_tags), ("memory", memory_tags)] {
        let mut g = vec![0u8; 80];
        g[..name.len()].copy_from_slice(name.as_bytes());
        le64(&mut g, 64, at);
        vmss.extend(g);
    }
    vmss.extend(tags);
    (vmem, vmss)
}

fn tag(out: &mut Vec<u8>, name: &str, indices: &[u32], data: &[u8]) {
    out.push(((indices.len() as u8) << 6) | data.len() as u8);
    out.push(name.len() as u8);
    out.extend(name.as_bytes());
    for i in indices {
        out.extend(i.to_le_bytes());
    }
    out.extend(data);
}
