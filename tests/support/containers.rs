//! Container writers for the tests: each wraps one flat physical memory buffer.
use super::machine::{HOLE, PAGE};
use netcarve::synth::builder::{dump_header, elf_header, le64, lime_range_header, DumpFacts, Runs};

/// Present physical ranges of the test machines: everything but page 0 and the legacy hole.
pub fn ranges(mem_len: u64) -> Vec<(u64, u64)> {
    vec![(PAGE, HOLE.start), (HOLE.end, mem_len)]
}

/// `ranges` as synth's runs: (first page, page count).
fn page_runs(mem_len: u64) -> Runs {
    ranges(mem_len)
        .into_iter()
        .map(|(s, e)| (s / PAGE, (e - s) / PAGE))
        .collect()
}

/// Windows crash dump, DumpType 1 (full), with the run list of `ranges`.
pub fn full_dump(mem: &[u8], x64: bool, dtb: u64, build: u32, pae: bool, kdbg: u64) -> Vec<u8> {
    let runs = page_runs(mem.len() as u64);
    let mut h = dump_header(&facts(x64, dtb, build, pae, kdbg), &runs, 1, 0);
    for (s, n) in runs {
        h.extend_from_slice(&mem[(s * PAGE) as usize..((s + n) * PAGE) as usize]);
    }
    h
}

fn facts(x64: bool, dtb: u64, build: u32, pae: bool, kdbg: u64) -> DumpFacts {
    DumpFacts {
        x64,
        pae,
        dtb,
        build,
        ps_active_process_head: 0,
        ps_loaded_module_list: 0,
        kdbg,
        system_time: 133_590_404_967_890_000,
        uptime: 0,
    }
}

/// Crash dump header (synth's) with the given DumpType and an empty run list.
pub fn header(x64: bool, dtb: u64, build: u32, pae: bool, kdbg: u64, dump_type: u32) -> Vec<u8> {
    dump_header(&facts(x64, dtb, build, pae, kdbg), &vec![], dump_type, 0)
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

/// ELF64 core (synth's headers) with one PT_LOAD per range, after a PT_NOTE that must be ignored.
pub fn elf_core(mem: &[u8]) -> Vec<u8> {
    let runs = page_runs(mem.len() as u64);
    let mut f = elf_header(&runs, true);
    for (s, n) in runs {
        f.extend_from_slice(&mem[(s * PAGE) as usize..((s + n) * PAGE) as usize]);
    }
    f
}

pub fn lime(mem: &[u8]) -> Vec<u8> {
    let mut f = vec![];
    for (s, e) in ranges(mem.len() as u64) {
        f.extend(lime_range_header(s, e - 1));
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
