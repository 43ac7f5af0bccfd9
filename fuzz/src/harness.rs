//! The bodies of the fuzz targets, one function per target. They use only netcarve's public API.
//!
//! This file is compiled twice: by the cargo-fuzz crate (`fuzz/`, one libFuzzer binary per target)
//! and, through `#[path]`, by the ordinary test `tests/hostile_fuzz_replay.rs`, which replays every
//! committed seed and crash input through exactly the code the fuzzer ran. Each function returns
//! normally for every input; a panic is the finding.
#![allow(dead_code)]

use netcarve::bytes::ReadBytes;
use netcarve::capture::{self, CaptureFormat, TimeContext};
use netcarve::carve::pool::{self, PoolHeader};
use netcarve::carve::{self, search, CarveParams};
use netcarve::container::xpress::{decompress_huffman, decompress_plain, XpressError};
use netcarve::container::{vmware, PhysicalSpace};
use netcarve::filetime::TimeWindow;
use netcarve::kernel::{identify, identify_within, image_facts, SearchLimits};
use netcarve::paging::{AddressSpace, PagingMode, VirtualMemory};
use netcarve::profile::{self, Arch, Profile};
use netcarve::synth::xpress::{compress_huffman, compress_plain};
use std::path::Path;

/// Inputs larger than this are cut: the targets look for logic bugs, not for the cost of big copies.
pub const MAX_INPUT: usize = 1 << 20;

fn capped(data: &[u8]) -> &[u8] {
    data.get(..MAX_INPUT).unwrap_or(data)
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, slot) in b.iter_mut().enumerate() {
        *slot = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

/// Container detection and header parsing of every container, then reads through the runs.
/// The first byte picks the file name, because a `.vmem` name switches to the VMware reader;
/// for VMware the metadata parser (`.vmss`/`.vmsn` tag tree) gets the input as well.
pub fn container(data: &[u8]) {
    let data = capped(data);
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let name = match selector % 4 {
        0 => "fuzz.raw",
        1 => "fuzz.dmp",
        2 => "fuzz.vmem",
        _ => "fuzz.lime",
    };
    if selector % 4 == 2 {
        if let Ok(regions) = vmware::parse_regions(body) {
            for (phys, file_offset, len) in regions {
                let _ = phys.checked_add(len);
                let _ = file_offset.checked_add(len);
            }
        }
    }
    let Ok(space) = PhysicalSpace::from_bytes(body.to_vec(), Path::new(name)) else {
        return;
    };
    let runs = space.runs().to_vec();
    let mut previous_end = 0u64;
    for run in &runs {
        // Runs are documented as sorted and non-overlapping; each maps to bytes inside the file.
        assert!(run.phys >= previous_end, "runs overlap or are unsorted");
        previous_end = run.phys_end();
        let bytes = space.run_bytes(run);
        // A compressed container's run is empty where its block cannot be decoded, and then
        // the space says which block and why.
        if bytes.is_empty() && space.blocks().is_some() {
            assert!(
                !space.decode_warnings().is_empty(),
                "an undecodable block without a warning"
            );
        } else {
            assert_eq!(
                bytes.len() as u64,
                run.len,
                "run bytes shorter than the run"
            );
        }
        let mut probe = [0u8; 16];
        let _ = space.read_into(run.phys, &mut probe);
        let _ = space.read_into(run.phys_end().saturating_sub(8), &mut probe);
        let _ = space.read_u64(run.phys_end().saturating_sub(4));
    }
    let _ = space.present_size();
    let _ = space.slice(space.end().saturating_sub(1), 2);
    let _ = space.read_u32(u64::MAX - 2);
}

/// Control bytes in front of the paging target's memory.
pub const PAGING_HEADER: usize = 40;

/// Page-table walking: bytes 0..8 choose the paging mode (byte 0) and the DTB (bytes 1..8), bytes
/// 8..40 are four virtual addresses to translate and read, and the rest is physical memory (raw).
pub fn paging(data: &[u8]) {
    let data = capped(data);
    let Some(memory) = data.get(PAGING_HEADER..) else {
        return;
    };
    let control = u64_at(data, 0);
    let mode = match (control & 0xFF) % 3 {
        0 => PagingMode::X64,
        1 => PagingMode::Pae,
        _ => PagingMode::NonPae,
    };
    // The DTB mostly points into the memory (where tables can be), sometimes anywhere at all.
    let dtb = if control & 0x80 != 0 {
        control >> 8 << 12
    } else {
        (control >> 8) % (memory.len() as u64).max(1)
    };
    let mut memory = memory.to_vec();
    // Raw images need a page; pad so that short inputs still reach the walker.
    if memory.len() < 0x1000 {
        memory.resize(0x1000, 0);
    }
    // Keep the container raw: magic bytes at the start would pick another reader.
    if let Some(first) = memory.first_mut() {
        *first = 0;
    }
    let Ok(space) = PhysicalSpace::from_bytes(memory, Path::new("fuzz.raw")) else {
        return;
    };
    let walker = AddressSpace::new(&space, dtb, mode);
    for i in 0..4 {
        let va = u64_at(data, 8 + i * 8);
        let _ = walker.translate(va);
        let mut buf = [0u8; 64];
        let _ = walker.read_into(va, &mut buf);
        let _ = walker.read_ptr(va.wrapping_add(0xFFC));
    }
    let mut mapped = 0u64;
    walker.kernel_mappings(|_, _, size| mapped = mapped.saturating_add(size));
}

/// Kernel identification (DTB discovery, kernel image, KUSER_SHARED_DATA) on arbitrary bytes, in
/// whatever container they parse as; the first byte can supply a DTB override (bit 0, the DTB
/// from bits 4-7) and pick tight search budgets (bit 1: a few pages, candidates and bytes, so
/// that small inputs reach the code that gives up). Bit 2: the input's all-zero pages are also
/// taken as a sparse file's holes, and identification must then find exactly the same kernel.
pub fn kernel(data: &[u8]) {
    let data = capped(data);
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let Ok(space) = PhysicalSpace::from_bytes(body.to_vec(), Path::new("fuzz.img")) else {
        return;
    };
    let dtb = (selector & 1 == 1).then(|| u64::from(selector & 0xF0) << 8);
    let limits = if selector & 2 != 0 {
        tight_limits()
    } else {
        SearchLimits::default()
    };
    let found = identify_within(&space, dtb, &limits);
    if let Ok(info) = &found {
        let facts = image_facts(&space, info);
        let _ = serde_json::to_string(&facts);
        let _ = info.boot_time();
    }
    if selector & 4 != 0 {
        let mut sparse = PhysicalSpace::from_bytes(body.to_vec(), Path::new("fuzz.img")).unwrap();
        sparse.set_data_extents(nonzero_pages(body));
        let again = identify_within(&sparse, dtb, &limits);
        let key = |r: &netcarve::error::Result<netcarve::kernel::KernelInfo>| {
            r.as_ref()
                .map(|k| {
                    (
                        k.dtb,
                        k.mode,
                        k.kernel_base,
                        k.pdb.clone(),
                        k.nt.clone(),
                        k.tcpip_version.clone(),
                    )
                })
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            key(&found),
            key(&again),
            "holes changed what was identified"
        );
    }
}

/// The kernel target's tight search budgets (selector bit 1).
pub fn tight_limits() -> SearchLimits {
    SearchLimits {
        mz_pages: 16,
        candidate_bytes: 0x6000,
        time_check_after: 4,
        // Zero: the search stops at the fourth candidate on every machine (deterministic).
        time_budget: std::time::Duration::ZERO,
    }
}

/// The file ranges of `bytes` holding a non-zero byte, page by page: what `SEEK_DATA` could say
/// of a sparse copy of them.
pub fn nonzero_pages(bytes: &[u8]) -> Vec<(u64, u64)> {
    let mut extents: Vec<(u64, u64)> = vec![];
    for (i, page) in bytes.chunks(0x1000).enumerate() {
        if page.iter().all(|&b| b == 0) {
            continue;
        }
        let (start, end) = (i as u64 * 0x1000, (i as u64 * 0x1000) + page.len() as u64);
        match extents.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => extents.push((start, end)),
        }
    }
    extents
}

/// Physical pages of the synthetic x64 page tables built by [`pe_codeview`].
const PE_PML4: u64 = 0x1000;
const PE_PDPT: u64 = 0x2000;
const PE_PD: u64 = 0x3000;
const PE_PT: u64 = 0x4000;
const PE_DATA: u64 = 0x10000;
/// Where kernels are loaded (inside the reader's preferred, 2 MiB-aligned window).
pub const PE_KERNEL_VA: u64 = 0xFFFF_F800_0000_0000;
const PE_MAX_PAGES: usize = 32;

/// PE/CodeView parsing of the kernel module: the input is mapped page by page at a kernel-space
/// address by hand-written x64 page tables, and `identify` is asked to find the kernel there
/// (it parses the PE headers, the debug directory and the CodeView record).
pub fn pe_codeview(data: &[u8]) {
    let data = data.get(..PE_MAX_PAGES * 0x1000).unwrap_or(data);
    let image = pe_image(data);
    let Ok(space) = PhysicalSpace::from_bytes(image, Path::new("fuzz.raw")) else {
        return;
    };
    if let Ok(info) = identify(&space, Some(PE_PML4)) {
        if let Some(pdb) = &info.pdb {
            let _ = serde_json::to_string(pdb);
        }
    }
}

/// A raw x64 image whose page tables map `pe` at [`PE_KERNEL_VA`] (used by the PE target and its
/// seed test).
pub fn pe_image(pe: &[u8]) -> Vec<u8> {
    const PRESENT_RW: u64 = 0x3;
    let pages = pe.len().div_ceil(0x1000).max(1);
    let mut memory = vec![0u8; PE_DATA as usize + pages * 0x1000];
    let mut put = |at: u64, value: u64| {
        if let Some(slot) = memory.get_mut(at as usize..at as usize + 8) {
            slot.copy_from_slice(&value.to_le_bytes());
        }
    };
    let pml4_index = (PE_KERNEL_VA >> 39) & 0x1FF;
    put(PE_PML4 + pml4_index * 8, PE_PDPT | PRESENT_RW);
    // Self-reference entry, as real kernels have, so the walker's self-map skip is exercised too.
    put(PE_PML4 + 0x1ED * 8, PE_PML4 | PRESENT_RW);
    put(PE_PDPT, PE_PD | PRESENT_RW);
    put(PE_PD, PE_PT | PRESENT_RW);
    for page in 0..pages as u64 {
        put(PE_PT + page * 8, (PE_DATA + page * 0x1000) | PRESENT_RW);
    }
    if let Some(slot) = memory.get_mut(PE_DATA as usize..PE_DATA as usize + pe.len()) {
        slot.copy_from_slice(pe);
    }
    memory
}

/// Reads kernel virtual memory as physical memory (identity map), so that pointers in the
/// input lead back into the input and the decoder's pointer chains get exercised.
struct IdentityMemory<'a> {
    phys: &'a PhysicalSpace,
    pointer_size: u64,
}

impl ReadBytes for IdentityMemory<'_> {
    fn read_into(&self, va: u64, buf: &mut [u8]) -> bool {
        self.phys.read_into(va, buf)
    }
}

impl VirtualMemory for IdentityMemory<'_> {
    fn pointer_size(&self) -> u64 {
        self.pointer_size
    }
}

/// Pool-candidate validation and endpoint decoding: the input is raw physical memory scanned with
/// a built-in profile picked by the first byte; pool headers are also checked one by one.
pub fn scan_endpoint(data: &[u8]) {
    let data = capped(data);
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let profiles = profile::builtin();
    let Some(profile) = profiles.get(usize::from(selector) % profiles.len().max(1)) else {
        return;
    };
    for (i, chunk) in body.chunks(16).take(256).enumerate() {
        if let Some(header) = PoolHeader::parse(chunk, profile.arch) {
            let _ = pool::check_header(&header, i as u64 * 16, profile.arch, 0x40);
            let _ = header.is_freed();
        }
    }
    let mut memory = body.to_vec();
    if memory.len() < 0x1000 {
        memory.resize(0x1000, 0);
    }
    if let Some(first) = memory.first_mut() {
        *first = 0;
    }
    let Ok(space) = PhysicalSpace::from_bytes(memory, Path::new("fuzz.raw")) else {
        return;
    };
    let mem = IdentityMemory {
        phys: &space,
        pointer_size: profile.arch.pointer_size(),
    };
    let mode = match profile.arch {
        Arch::X64 => PagingMode::X64,
        Arch::X86 => PagingMode::Pae,
    };
    let params = CarveParams {
        profile,
        mem: &mem,
        mode,
        // 2020-01-01 .. 2030-01-01: a plausible boot/acquisition window.
        times: TimeWindow {
            boot: Some(132_223_104_000_000_000),
            acquisition: Some(135_379_296_000_000_000),
        },
        include_corrupt: selector & 0x80 != 0,
        chunk_size: 0x1000,
        progress: None,
        kernel_space: None,
        block_tags: &[],
    };
    let carved = carve::carve(&space, &params);
    for record in carved.endpoints.iter().chain(&carved.corrupt) {
        let _ = serde_json::to_string(record);
    }
    // Bit 6: the all-zero pages taken as a sparse file's holes must change nothing the carve finds.
    if selector & 0x40 != 0 {
        let extents = nonzero_pages(space.file_bytes());
        let mut sparse =
            PhysicalSpace::from_bytes(space.file_bytes().to_vec(), Path::new("fuzz.raw")).unwrap();
        sparse.set_data_extents(extents);
        let mem = IdentityMemory {
            phys: &sparse,
            pointer_size: profile.arch.pointer_size(),
        };
        let again = carve::carve(
            &sparse,
            &CarveParams {
                mem: &mem,
                ..params
            },
        );
        let json =
            |records: &[netcarve::record::EndpointRecord]| serde_json::to_string(records).ok();
        assert_eq!(
            json(&carved.endpoints),
            json(&again.endpoints),
            "holes changed the carve"
        );
        assert_eq!(
            json(&carved.corrupt),
            json(&again.corrupt),
            "holes changed the carve"
        );
    }
}

/// Each capture-format parser: the first byte forces a format (or auto-detection), the rest is
/// the file's bytes, decoded (UTF-8/UTF-16) as `compare` decodes them.
pub fn capture(data: &[u8]) {
    let data = capped(data);
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let forced = CaptureFormat::ALL
        .get(usize::from(selector) % (CaptureFormat::ALL.len() + 1))
        .copied();
    let Ok(text) = capture::decode_text(body) else {
        return;
    };
    let time = TimeContext {
        capture_tz_minutes: (selector & 0x80 != 0).then_some(-300),
        image_offset_minutes: Some(60),
    };
    if let Ok(parsed) = capture::parse_text(Path::new("fuzz.capture"), &text, forced, &time) {
        for row in &parsed.rows {
            let _ = serde_json::to_string(row);
        }
    }
}

/// Profile JSON loading (`--profile FILE`), then the lookups scanning does with a profile.
pub fn profile_json(data: &[u8]) {
    let data = capped(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(profile) = Profile::from_json("fuzz.json", text) else {
        return;
    };
    let _ = profile.pointer_size();
    let _ = search::TagSet::from_profile(&profile);
    let _ = serde_json::to_string(&profile);
}

/// The xpress target's largest output buffer, and its largest stream: four Huffman blocks.
pub const XPRESS_MAX: usize = 4 << 16;
/// Bytes in front of the xpress target's stream: the output buffer size, little-endian.
pub const XPRESS_HEADER: usize = 3;

type XpressDecoder = fn(&[u8], &mut [u8]) -> Result<usize, XpressError>;

/// Both Xpress decoders on the same stream (bytes 0..3: the output buffer size, modulo
/// [`XPRESS_MAX`] + 1), then both encoders on the stream's bytes, whose output the decoders must
/// turn back into exactly those bytes.
pub fn xpress(data: &[u8]) {
    let data = data.get(..XPRESS_HEADER + XPRESS_MAX).unwrap_or(data);
    let Some((head, body)) = data.split_at_checked(XPRESS_HEADER) else {
        return;
    };
    let size = (u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize) % (XPRESS_MAX + 1);
    let mut out = vec![0u8; size];
    for decoder in [decompress_plain as XpressDecoder, decompress_huffman] {
        if let Ok(n) = decoder(body, &mut out) {
            assert!(n <= size, "decoded {n} bytes into a {size}-byte buffer");
        }
    }
    for (compress, decoder) in [
        (
            compress_plain as fn(&[u8]) -> Vec<u8>,
            decompress_plain as XpressDecoder,
        ),
        (compress_huffman, decompress_huffman),
    ] {
        let stream = compress(body);
        let mut back = vec![0u8; body.len()];
        assert_eq!(decoder(&stream, &mut back), Ok(body.len()), "round trip");
        assert!(back == body, "round trip changed the bytes");
    }
}

/// Where the `tables` target's input sits in kernel space, and its header size.
pub const TABLES_VA: u64 = 0xFFFF_A000_0000_0000;
pub const TABLES_HEADER: usize = 8;

/// Kernel memory that is one flat region at [`TABLES_VA`] (the `tables` target's input).
pub struct FlatMemory<'a>(pub &'a [u8]);

impl ReadBytes for FlatMemory<'_> {
    fn read_into(&self, at: u64, buf: &mut [u8]) -> bool {
        let Some(off) = at.checked_sub(TABLES_VA) else {
            return false;
        };
        let Some(src) = usize::try_from(off)
            .ok()
            .and_then(|o| self.0.get(o..o.checked_add(buf.len())?))
        else {
            return false;
        };
        buf.copy_from_slice(src);
        true
    }
}

impl VirtualMemory for FlatMemory<'_> {
    fn pointer_size(&self) -> u64 {
        8
    }
}

/// The walk of tcpip's tables on arbitrary kernel memory: the input after an 8-byte header is
/// mapped at [`TABLES_VA`]; the header's u16s are the RVAs (from that address) of PartitionTable,
/// PartitionCount, TcpPortPool and UdpCompartmentSet. Both the symbol walk and the pool-tag walk
/// (every 16-aligned offset of the first KiB as a hash table, the pools as port pools) run with
/// win7-x64's layout; entries they return must lie in kernel space.
pub fn tables(data: &[u8]) {
    use netcarve::profile::ObjectKind;
    use netcarve::tables::symbols::TcpipSymbols;
    use netcarve::tables::walk::{walk, walk_found};
    let data = capped(data);
    let Some((head, memory)) = data.split_at_checked(TABLES_HEADER) else {
        return;
    };
    let rva = |i: usize| u64::from(u16::from_le_bytes([head[2 * i], head[2 * i + 1]]));
    let Some(profile) = profile::by_name("win7-x64") else {
        return;
    };
    let Some(layout) = profile.tcpip.tables.as_ref() else {
        return;
    };
    let mem = FlatMemory(memory);
    let syms = TcpipSymbols {
        partition_table: Some(rva(0)),
        partition_count: Some(rva(1)),
        tcp_port_pool: Some(rva(2)),
        udp_port_pool: None,
        tcp_compartment_set: None,
        udp_compartment_set: Some(rva(3)),
    };
    let walked = walk(&mem, PagingMode::X64, profile, layout, TABLES_VA, &syms);
    let tables: Vec<u64> = (0..memory.len().min(1024) as u64)
        .step_by(16)
        .map(|o| TABLES_VA + o)
        .collect();
    let pools = [
        (TABLES_VA + rva(2), Some(ObjectKind::TcpListener)),
        (TABLES_VA + rva(3), None),
    ];
    let found = walk_found(&mem, PagingMode::X64, profile, layout, &tables, &pools);
    for e in walked.entries.iter().chain(&found.entries) {
        assert!(
            e.body >= 0xFFFF_8000_0000_0000,
            "entry outside kernel space"
        );
    }
    assert!(
        found.complete.is_empty(),
        "the pool-tag route never claims completeness"
    );
}

/// A valid `tables` input: one partition whose hash table chains two TcpE objects in one bucket,
/// and a TCP port pool with a listener on port 445 (the seed the fuzzer starts from).
pub fn tables_seed() -> Vec<u8> {
    let mut m = vec![0u8; 0x8000];
    let va = |off: usize| TABLES_VA + off as u64;
    let put =
        |m: &mut Vec<u8>, off: usize, v: u64| m[off..off + 8].copy_from_slice(&v.to_le_bytes());
    let (parts, ht, dir, obj0, obj1) = (0x100, 0x200, 0x400, 0x1010, 0x1410);
    let (pool, bitmap, assignment, list, listener) = (0x2000, 0x5000, 0x6000, 0x6100, 0x7010);
    put(&mut m, 0x10, va(parts)); // PartitionTable
    m[0x18] = 1; // PartitionCount
    put(&mut m, 0x20, va(pool)); // TcpPortPool
    put(&mut m, parts + 0x8, va(ht));
    m[ht + 0x8] = 128;
    m[ht + 0x14] = 2;
    put(&mut m, ht + 0x20, va(dir));
    for b in 0..128 {
        let head = dir + b * 16;
        put(&mut m, head, va(head));
        put(&mut m, head + 8, va(head));
    }
    // Bucket 5: head → obj0's link (0x28) → obj1's → head.
    let (head, l0, l1) = (dir + 5 * 16, obj0 + 0x28, obj1 + 0x28);
    put(&mut m, head, va(l0));
    put(&mut m, l0, va(l1));
    put(&mut m, l1, va(head));
    for obj in [obj0, obj1, listener] {
        m[obj - 0x10 + 2] = 0x30;
        m[obj - 0x10 + 3] = 2;
    }
    m[obj0 - 0xc..obj0 - 0x8].copy_from_slice(b"TcpE");
    m[obj1 - 0xc..obj1 - 0x8].copy_from_slice(b"TcpE");
    m[listener - 0xc..listener - 0x8].copy_from_slice(b"TcpL");
    m[pool + 0x90..pool + 0x94].copy_from_slice(&65536u32.to_le_bytes());
    put(&mut m, pool + 0x98, va(bitmap));
    m[bitmap + 445 / 8] |= 1 << (445 % 8);
    put(&mut m, pool + 0xa0 + 8, va(assignment));
    put(&mut m, assignment + 0x20, va(list));
    put(&mut m, list + (445 & 0xff) * 0x10 + 8, va(listener + 0x70));
    let mut input = vec![0u8; TABLES_HEADER];
    for (i, rva) in [0x10u16, 0x18, 0x20, 0x28].iter().enumerate() {
        input[2 * i..2 * i + 2].copy_from_slice(&rva.to_le_bytes());
    }
    input.extend_from_slice(&m);
    input
}

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target by name (the replay test walks them all).
pub const TARGETS: [(&str, Target); 9] = [
    ("container", container),
    ("paging", paging),
    ("kernel", kernel),
    ("pe_codeview", pe_codeview),
    ("scan_endpoint", scan_endpoint),
    ("capture", capture),
    ("profile_json", profile_json),
    ("xpress", xpress),
    ("tables", tables),
];
