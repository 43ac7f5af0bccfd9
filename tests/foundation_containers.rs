//! Containers and kernel identification through the library: runs, absent gaps, header hints,
//! overlaps, RDMP, VMware region tables, and the kernel search without shortcuts.
mod support;

use netcarve::bytes::ReadBytes;
use netcarve::container::PhysicalSpace;
use netcarve::error::Cause;
use netcarve::kernel::identify;
use netcarve::paging::PagingMode;
use netcarve::profile::Arch;
use netcarve::synth::builder::{le32, le64, lime_range_header};
use std::path::Path;
use support::containers::{bitmap_dump, elf_core, full_dump, header, lime, ranges, vmware};
use support::machine::{windows, Mode, PAGE};
use support::scratch;

const MIB: u64 = 1 << 20;

fn open(bytes: Vec<u8>) -> PhysicalSpace {
    PhysicalSpace::from_bytes(bytes, Path::new("test.img")).unwrap()
}

/// Every present page reads back as in the machine's memory; the hole and page 0 are absent.
fn same_memory(space: &PhysicalSpace, mem: &[u8]) {
    for r in space.runs() {
        let bytes = space.run_bytes(r);
        assert_eq!(bytes, &mem[r.phys as usize..(r.phys + r.len) as usize]);
    }
    assert!(space.slice(0xA0000, 1).is_none());
    assert!(space.slice(0, 1).is_none());
    let mut buf = [0u8; 16];
    assert!(
        !space.read_into(0x9FFF8, &mut buf),
        "a read across the hole must fail"
    );
    let last = space.runs().last().unwrap();
    assert!(space.read_into(last.phys_end() - 16, &mut buf));
}

#[test]
fn full_dump_runs_and_hints() {
    let (m, t) = windows(Mode::X64, 4 * MIB, 10, 0, 19041);
    let space = open(full_dump(&m.mem, true, t.dtb, t.build, false, t.kdbg_va));
    assert_eq!(space.kind, "crashdump-full");
    assert_eq!(space.runs().len(), 2);
    same_memory(&space, &m.mem);
    assert_eq!(space.hints.arch, Some(Arch::X64));
    assert_eq!(space.hints.dtb, Some(t.dtb));
    assert_eq!(space.hints.nt_build, Some(19041));
    assert_eq!(space.hints.kd_debugger_data_block, Some(t.kdbg_va));
    assert_eq!(space.hints.system_time, Some(133_590_404_967_890_000));
    // Unset header fields hold the `PAGE` filler, which is not a value.
    assert_eq!(space.hints.ps_active_process_head, None);
    assert!(space.warnings.is_empty(), "{:?}", space.warnings);
    // NumberOfPages (u64 at 0x90) disagreeing with the runs: the runs win, with a warning.
    let mut dump = full_dump(&m.mem, true, t.dtb, t.build, false, t.kdbg_va);
    le64(&mut dump, 0x90, 5);
    let space = open(dump);
    assert_eq!(space.runs().len(), 2);
    assert!(space
        .warnings
        .iter()
        .any(|w| w.contains("declares 5 pages")));

    let (m, t) = windows(Mode::Pae, 4 * MIB, 6, 1, 7601);
    let space = open(full_dump(&m.mem, false, t.dtb, 7601, true, 0));
    assert_eq!(space.hints.arch, Some(Arch::X86));
    assert_eq!(space.hints.pae, Some(true));
    same_memory(&space, &m.mem);
}

#[test]
fn bitmap_dump_packs_present_pages_in_pfn_order() {
    let (m, t) = windows(Mode::X64, 4 * MIB, 10, 0, 19041);
    let space = open(bitmap_dump(&m.mem, true, t.dtb, t.build, 0));
    assert_eq!(space.kind, "crashdump-bitmap");
    same_memory(&space, &m.mem);
    // Runs are maximal: no two runs continue each other physically.
    for w in space.runs().windows(2) {
        assert!(w[0].phys_end() < w[1].phys);
    }
    let pages: u64 = space.runs().iter().map(|r| r.len / PAGE).sum();
    let expected = (0..m.mem.len() as u64 / PAGE)
        .filter(|p| {
            let pa = p * PAGE;
            *p != 0
                && !(0xA0000..0x100000).contains(&pa)
                && (p % 5 == 0
                    || m.mem[pa as usize..(pa + PAGE) as usize]
                        .iter()
                        .any(|&b| b != 0))
        })
        .count() as u64;
    assert_eq!(pages, expected);
    assert!(space.runs().len() > 10, "a sparse bitmap gives many runs");
    // Many runs: pages are looked up in the bitmap itself, and the counts agree with the runs.
    assert!(space.page_storage().is_some());
    assert_eq!(space.run_count(), space.runs().len() as u64);
    assert_eq!(space.present_size(), pages * PAGE);

    // Every page but page 0 and the legacy hole present: two runs over 32 MiB. Running totals
    // for the bitmap would take more memory than the two runs, so the run list is kept.
    let (mut m, t) = windows(Mode::X64, 32 * MIB, 10, 0, 19041);
    for page in m.mem.chunks_mut(PAGE as usize) {
        page[PAGE as usize - 1] |= 1;
    }
    let space = open(bitmap_dump(&m.mem, true, t.dtb, t.build, 0));
    assert_eq!(space.kind, "crashdump-bitmap");
    assert!(space.page_storage().is_none());
    assert_eq!(space.runs().len(), 2);
    same_memory(&space, &m.mem);
}

#[test]
fn elf_lime_vmware_map_the_same_memory() {
    let (m, _) = windows(Mode::X64, 4 * MIB, 10, 0, 19041);
    let elf = open(elf_core(&m.mem));
    assert_eq!(elf.kind, "elf");
    same_memory(&elf, &m.mem);
    let lime_space = open(lime(&m.mem));
    assert_eq!(lime_space.kind, "lime");
    same_memory(&lime_space, &m.mem);

    let dir = scratch("containers_vmware");
    let (vmem, vmss) = vmware(&m.mem);
    std::fs::write(dir.join("guest.vmem"), &vmem).unwrap();
    std::fs::write(dir.join("guest.vmsn"), &vmss).unwrap();
    let vm = PhysicalSpace::open(&dir.join("guest.vmem")).unwrap();
    assert_eq!(vm.kind, "vmware");
    assert!(vm.warnings.is_empty(), "{:?}", vm.warnings);
    // Region 0 starts at guest page 0 (page 0 present here), region 1 at 0x100000.
    assert_eq!(vm.runs().len(), 2);
    assert_eq!(vm.runs()[1].phys, 0x100000);
    assert_eq!(vm.runs()[1].file_offset, 0xA0000);
    for r in vm.runs() {
        assert_eq!(
            vm.run_bytes(r),
            &m.mem[r.phys as usize..(r.phys + r.len) as usize]
        );
    }
}

#[test]
fn vmware_old_magic_uses_32_bit_block_sizes() {
    let (m, _) = windows(Mode::X64, 4 * MIB, 10, 0, 19041);
    let (vmem, vmss) = vmware(&m.mem);
    // Rewrite the long "Memory" tag with u32 sizes under the old magic.
    let mut old = vmss.clone();
    old[0..4].copy_from_slice(&0xbed2_bed0u32.to_le_bytes());
    let pos = old.windows(6).position(|w| w == b"Memory").unwrap() + 6;
    let mut long = vec![];
    long.extend(4u32.to_le_bytes());
    long.extend(4u32.to_le_bytes());
    old.splice(pos..pos + 16, long);
    let regions = netcarve::container::vmware::parse_regions(&old).unwrap();
    assert_eq!(regions, vec![(0, 0, 0xA0), (0x100, 0xA0, 0x400 - 0x100)]);
    assert!(netcarve::container::vmware::parse_regions(&vmss).is_ok());
    assert!(matches!(
        netcarve::container::vmware::parse_regions(b"nope"),
        Err(Cause::Unsupported(_))
    ));
    let _ = vmem;
}

#[test]
fn overlapping_ranges_keep_the_first_and_warn() {
    let mem: Vec<u8> = (0..0x4000u32).map(|i| (i / 0x1000) as u8 + 1).collect();
    let mut f = lime_range_header(0, 0x1FFF);
    f.extend(&mem[..0x2000]);
    f.extend(lime_range_header(0x1000, 0x2FFF));
    f.extend(vec![0xEE; 0x2000]);
    let space = open(f);
    assert_eq!(space.runs().len(), 1);
    assert_eq!(space.end(), 0x2000);
    assert_eq!(space.read_u32(0x1000), Some(0x02020202));
    assert!(space.warnings.iter().any(|w| w.contains("overlapping")));

    // ELF: the second PT_LOAD overlaps the first.
    let mut elf = elf_core(&vec![1u8; 2 * MIB as usize]);
    let ph2 = 64 + 56 * 2;
    le64(&mut elf, ph2 + 24, 0x2000);
    let space = open(elf);
    assert!(space.warnings.iter().any(|w| w.contains("overlapping")));
    assert_eq!(space.runs()[0].phys, PAGE);
}

#[test]
fn rdmp_complete_memory_dump() {
    let (m, t) = windows(Mode::X64, 4 * MIB, 10, 0, 19041);
    let runs = ranges(m.mem.len() as u64);
    let mut f = header(true, t.dtb, t.build, false, 0, 0xA);
    let first_page = 0x3000u64;
    let mut r = vec![0u8; (first_page - 0x2000) as usize];
    le32(&mut r, 0, 0x40);
    r[4..8].copy_from_slice(b"RDMP");
    r[8..12].copy_from_slice(b"DUMP");
    le64(&mut r, 0x10, first_page - 0x2040 + 0x20);
    le64(&mut r, 0x18, first_page);
    le32(&mut r, 0x20, runs.len() as u32);
    let total: u64 = runs.iter().map(|(s, e)| (e - s) / PAGE).sum();
    le64(&mut r, 0x28, total);
    for (i, (s, e)) in runs.iter().enumerate() {
        le64(&mut r, 0x40 + i * 16, s / PAGE);
        le64(&mut r, 0x48 + i * 16, (e - s) / PAGE);
    }
    f.extend(r);
    for (s, e) in &runs {
        f.extend_from_slice(&m.mem[*s as usize..*e as usize]);
    }
    let space = open(f);
    assert_eq!(space.kind, "crashdump-rdmp");
    same_memory(&space, &m.mem);
    let k = identify(&space, None).unwrap();
    assert_eq!(k.dtb, t.dtb);
}

#[test]
fn kernel_found_by_mz_scan_without_kdbg() {
    let (mut m, t) = windows(Mode::X64, 4 * MIB, 10, 0, 19041);
    // Erase the KDBG block: the kernel must be found among the MZ pages, past the decoy driver.
    let kdbg_pa = m.pa_of(t.kdbg_va) as usize;
    m.mem[kdbg_pa..kdbg_pa + 0x40].fill(0);
    let space = open(m.mem.clone());
    let k = identify(&space, None).unwrap();
    assert_eq!(k.kernel_base, Some(t.kernel_base));
    let pdb = k.pdb.clone().unwrap();
    assert_eq!(pdb.guid, t.guid);
    assert_eq!(pdb.age, 3);
    assert_eq!(k.mode, PagingMode::X64);
    assert_eq!(k.boot_time(), Some(t.system_time - t.interrupt_time));
    assert_eq!(k.timezone_bias_minutes, Some(-120));
}

#[test]
fn nt63_build_from_version_resource_and_tcpip_version() {
    let (mut m, t) = windows(Mode::X64, 4 * MIB, 6, 3, 9600);
    let res = support::machine::tcpip_version_resource((6, 3, 9600, 19935));
    let (a, b) = (m.alloc() as usize, m.alloc() as usize);
    let (decoy_pa, pa) = (a.min(b), a.max(b));
    m.mem[pa + 0x400..pa + 0x400 + res.len()].copy_from_slice(&res);
    // Earlier in memory: another module's version info followed by a path naming tcpip.sys.
    let mut decoy = support::machine::tcpip_version_resource((6, 3, 9600, 1));
    let path: Vec<u8> = "\\drivers\\tcpip.sys\0"
        .encode_utf16()
        .flat_map(|c| c.to_le_bytes())
        .collect();
    decoy[0x100..0x100 + path.len()].copy_from_slice(&path);
    decoy[0x100 + path.len()..].fill(0);
    m.mem[decoy_pa..decoy_pa + decoy.len()].copy_from_slice(&decoy);
    let space = open(m.mem.clone());
    let k = identify(&space, None).unwrap();
    assert_eq!(k.nt.build, Some(9600), "from the kernel's VS_FIXEDFILEINFO");
    assert_eq!(k.tcpip_version.as_deref(), Some("6.3.9600.19935"));
    assert_eq!(k.dtb, t.dtb);
    // Other NT versions do not look for it.
    let (m, _) = windows(Mode::X64, 4 * MIB, 6, 1, 7601);
    let k = identify(&open(m.mem), None).unwrap();
    assert_eq!(k.tcpip_version, None);
    assert_eq!(k.nt.build, Some(7601));
}

#[test]
fn bad_user_dtb_is_used_with_a_warning() {
    let (m, _) = windows(Mode::X64, 4 * MIB, 10, 0, 19041);
    let k = identify(&open(m.mem), Some(0x5000)).unwrap();
    assert_eq!(k.dtb, 0x5000);
    assert_eq!(k.dtb_source, "user");
    assert!(k.warnings.iter().any(|w| w.contains("--dtb")));
    assert_eq!(k.system_time, None);
    // In a crash dump, the header's SystemTime stands in for the unreadable KUSER one.
    let (m, t) = windows(Mode::X64, 4 * MIB, 10, 0, 19041);
    let space = open(full_dump(&m.mem, true, t.dtb, t.build, false, 0));
    let k = identify(&space, Some(0x5000)).unwrap();
    assert_eq!(k.system_time, Some(133_590_404_967_890_000));
    assert_eq!(k.nt.build, Some(19041), "from the dump header");
}

#[test]
fn header_dtb_without_the_kernel_gives_way_to_the_scanned_one() {
    let (mut m, t) = windows(Mode::X64, 4 * MIB, 10, 0, 19041);
    // A KVA-shadow-like table: maps KUSER_SHARED_DATA only, no self-reference.
    let kuser_pa = m.pa_of(support::machine::KUSER_X64) & !0xFFF;
    let kernel_dtb = m.dtb;
    let shadow = m.alloc();
    m.dtb = shadow;
    m.map(support::machine::KUSER_X64, kuser_pa);
    m.dtb = kernel_dtb;
    let space = open(full_dump(&m.mem, true, shadow, t.build, false, 0));
    let k = identify(&space, None).unwrap();
    assert_eq!(k.dtb, t.dtb);
    assert_eq!(k.kernel_base, Some(t.kernel_base));
    assert!(k
        .warnings
        .iter()
        .any(|w| w.contains("does not map the kernel image")));
}

/// A file just written is in the page cache, and the scan may skip its per-window checks; once
/// part of it is evicted (where the filesystem honours `POSIX_FADV_DONTNEED`), it may not.
#[cfg(target_os = "linux")]
#[test]
fn looks_cached_follows_the_page_cache() {
    use std::os::fd::AsRawFd;
    let path = scratch("looks_cached").join("memory.raw");
    let bytes: Vec<u8> = (0..32 << 20).map(|i: u32| (i % 251) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    let space = PhysicalSpace::open(&path).unwrap();
    assert!(space.looks_cached(), "a file just written is cached");

    let file = std::fs::File::open(&path).unwrap();
    file.sync_all().unwrap();
    // SAFETY: a plain advice call on an open descriptor.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    // Whether a sampled page in the middle of the file (far from the header pages that opening
    // mapped, which stay cached) left the cache, asked of the kernel directly: tmpfs, for one,
    // keeps every page.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let page = 4096usize;
    let sample = (bytes.len() / 32 * 16 + bytes.len() / 32 / 2) / page * page;
    let mut resident = 0u8;
    // SAFETY: a page-aligned address inside the live map, and room for one page's answer.
    let ok = unsafe {
        libc::mincore(
            map.as_ptr().add(sample) as *mut libc::c_void,
            1,
            &mut resident,
        )
    } == 0;
    if ok && resident & 1 == 0 {
        assert!(!space.looks_cached(), "an evicted page was not noticed");
    }
}

fn cause_of(bytes: Vec<u8>) -> Cause {
    match PhysicalSpace::from_bytes(bytes, Path::new("bad.img")) {
        Ok(_) => panic!("opened a malformed image"),
        Err(e) => e
            .file_cause()
            .cloned()
            .unwrap_or_else(|| panic!("no file cause: {e}")),
    }
}

/// Malformed headers fail with the cause that says what is wrong, and the numbers behind it.
#[test]
fn malformed_headers_have_typed_causes() {
    assert_eq!(cause_of(vec![]), Cause::Empty);
    assert_eq!(
        cause_of(b"PAGE".to_vec()),
        Cause::Truncated("crash dump header")
    );
    let mut dump = b"PAGEDU64".to_vec();
    dump.resize(0x1800, 0);
    assert_eq!(
        cause_of(dump.clone()),
        Cause::HeaderSize {
            what: "64-bit crash dump header",
            expected: 0x2000,
            actual: 0x1800
        }
    );
    dump.resize(0x2000, 0);
    dump[0x30..0x34].copy_from_slice(&0xAA64u32.to_le_bytes());
    assert!(matches!(cause_of(dump), Cause::UnsupportedArch(_)));
    let mut elf = b"\x7fELF".to_vec();
    elf.resize(63, 0);
    assert_eq!(cause_of(elf), Cause::Truncated("ELF header"));
    assert_eq!(cause_of(vec![1; 100]), Cause::UnknownFormat { len: 100 });
    let mut lime = lime_range_header(0, 0xFFF);
    lime.resize(32 + 0x800, 0);
    assert!(matches!(cause_of(lime), Cause::Malformed(_)));
}
