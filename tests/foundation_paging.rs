//! Address translation on hand-built page tables: every paging mode, large pages, Windows
//! invalid-PTE states, reads across discontiguous frames, the kernel-mapping walk and PA → VA.
mod support;

use netcarve::bytes::ReadBytes;
use netcarve::container::PhysicalSpace;
use netcarve::paging::{AddressSpace, PagingMode};
use netcarve::synth::builder::le64;
use std::path::Path;
use support::machine::{Machine, Mode, PAGE};

const MIB: u64 = 1 << 20;

fn space_of(m: &Machine) -> PhysicalSpace {
    PhysicalSpace::from_bytes(m.mem.clone(), Path::new("test.raw")).unwrap()
}

fn mode_of(m: Mode) -> PagingMode {
    match m {
        Mode::X64 => PagingMode::X64,
        Mode::Pae => PagingMode::Pae,
        Mode::NonPae => PagingMode::NonPae,
    }
}

/// 4 KiB mappings in the kernel half; a value written through the test's tables reads back,
/// across a page boundary onto two frames that are not adjacent.
fn small_pages_and_cross_page_reads(mode: Mode, va: u64) {
    let mut m = Machine::new(mode, 4 * MIB, 0x1ED);
    let frames = m.map_fresh(va, 2 * PAGE);
    assert_ne!(frames[0] + PAGE, frames[1], "frames must be scattered");
    let text = b"0123456789abcdef";
    m.write_virt(va + PAGE - 8, text);
    let phys = space_of(&m);
    let a = AddressSpace::new(&phys, m.dtb, mode_of(mode));
    assert_eq!(a.translate(va + 0x123), Some(frames[0] + 0x123));
    assert_eq!(a.translate(va + PAGE + 5), Some(frames[1] + 5));
    let mut buf = [0u8; 16];
    assert!(a.read_into(va + PAGE - 8, &mut buf));
    assert_eq!(&buf, text);
    // The page after the mapping is not present, so a read spilling into it fails.
    assert_eq!(a.translate(va + 2 * PAGE), None);
    let mut spill = [0u8; 16];
    assert!(!a.read_into(va + 2 * PAGE - 8, &mut spill));
}

#[test]
fn x64_small_pages() {
    small_pages_and_cross_page_reads(Mode::X64, 0xFFFF_F800_0040_0000);
}

#[test]
fn pae_small_pages() {
    small_pages_and_cross_page_reads(Mode::Pae, 0x8100_0000);
}

#[test]
fn nonpae_small_pages() {
    small_pages_and_cross_page_reads(Mode::NonPae, 0x8100_0000);
}

#[test]
fn large_pages_in_every_mode() {
    // x64 2 MiB and 1 GiB pages; the 1 GiB page covers the whole 4 MiB image from PA 0.
    let mut m = Machine::new(Mode::X64, 8 * MIB, 0x1ED);
    m.reserve(2 * MIB, 2 * MIB);
    m.map_large(0xFFFF_F800_0100_0000 & !0x1F_FFFF, 2 * MIB, false);
    m.map_large(0xFFFF_F880_4000_0000, 0, true);
    let phys = space_of(&m);
    let a = AddressSpace::new(&phys, m.dtb, PagingMode::X64);
    assert_eq!(
        a.translate(0xFFFF_F800_0100_0000 + 0x1_2345),
        Some(2 * MIB + 0x1_2345)
    );
    assert_eq!(
        a.translate(0xFFFF_F880_4000_0000 + 0x7F_F123),
        Some(0x7F_F123)
    );
    // Inside the 1 GiB page but beyond the image: not present.
    assert_eq!(a.translate(0xFFFF_F880_4000_0000 + 0x1000_0000), None);

    let mut m = Machine::new(Mode::Pae, 8 * MIB, 0);
    m.reserve(4 * MIB, 2 * MIB);
    m.map_large(0x8060_0000, 4 * MIB, false);
    let phys = space_of(&m);
    let a = AddressSpace::new(&phys, m.dtb, PagingMode::Pae);
    assert_eq!(
        a.translate(0x8060_0000 + 0x1F_FFFF),
        Some(4 * MIB + 0x1F_FFFF)
    );

    let mut m = Machine::new(Mode::NonPae, 8 * MIB, 0);
    m.reserve(4 * MIB, 4 * MIB);
    m.map_large(0x8040_0000, 4 * MIB, false);
    let phys = space_of(&m);
    let a = AddressSpace::new(&phys, m.dtb, PagingMode::NonPae);
    assert_eq!(
        a.translate(0x8040_0000 + 0x3F_F000),
        Some(4 * MIB + 0x3F_F000)
    );
    assert_eq!(a.translate(0x8080_0000), None);
}

#[test]
fn windows_invalid_pte_states() {
    for mode in [Mode::X64, Mode::Pae, Mode::NonPae] {
        let mut m = Machine::new(mode, 4 * MIB, 0x1ED);
        let va = if mode == Mode::X64 {
            0xFFFF_F800_0040_0000
        } else {
            0x8100_0000
        };
        let frames = m.map_fresh(va, 4 * PAGE);
        let (pt, i) = m.slot(va, 0);
        // Transition: P=0, bit 11 set, bit 10 clear -> still in RAM.
        m.set_entry(pt, i, frames[0] | 0x800);
        // Prototype: bit 10 set -> not present.
        m.set_entry(pt, i + 1, frames[1] | 0x400 | 0x800);
        // Page file: P=0, PageFileHigh non-zero -> not present.
        let pagefile = if mode == Mode::NonPae {
            0x1234_5000
        } else {
            0x1234_0000_0000
        };
        m.set_entry(pt, i + 2, pagefile | 0x2);
        // An entry pointing beyond the image -> not present.
        m.set_entry(pt, i + 3, 0x7F00_0000 | 1);
        let phys = space_of(&m);
        let a = AddressSpace::new(&phys, m.dtb, mode_of(mode));
        assert_eq!(
            a.translate(va + 8),
            Some(frames[0] + 8),
            "{mode:?} transition"
        );
        assert_eq!(a.translate(va + PAGE), None, "{mode:?} prototype");
        assert_eq!(a.translate(va + 2 * PAGE), None, "{mode:?} pagefile");
        assert_eq!(a.translate(va + 3 * PAGE), None, "{mode:?} beyond image");
    }
}

#[test]
fn x64_rejects_non_canonical_and_ignores_pte_software_bits() {
    let mut m = Machine::new(Mode::X64, 4 * MIB, 0x1ED);
    let va = 0xFFFF_F800_0040_0000u64;
    let frames = m.map_fresh(va, PAGE);
    let (pt, i) = m.slot(va, 0);
    // Bits above 44 of a Windows x64 PTE carry software flags and NX: not part of the frame.
    m.set_entry(
        pt,
        i,
        frames[0] | 0x63 | (1 << 63) | (0x7F << 52) | (1 << 47),
    );
    let phys = space_of(&m);
    let a = AddressSpace::new(&phys, m.dtb, PagingMode::X64);
    assert_eq!(a.translate(va), Some(frames[0]));
    assert_eq!(a.translate(va & 0x0000_FFFF_FFFF_FFFF), None);
    assert_eq!(a.translate(0x8000_0000_0000_0000), None);
}

#[test]
fn kernel_mappings_ascend_skip_the_self_map_and_merge() {
    for mode in [Mode::X64, Mode::Pae, Mode::NonPae] {
        let mut m = Machine::new(mode, 4 * MIB, 0x1ED);
        let (lo, hi) = if mode == Mode::X64 {
            (0xFFFF_F800_0040_0000u64, 0xFFFF_F900_0000_0000u64)
        } else {
            (0x8100_0000u64, 0xF000_0000u64)
        };
        // User-half mapping: never reported.
        m.map_fresh(0x10000, PAGE);
        let hi_frames = m.map_fresh(hi, PAGE);
        let lo_frames = m.map_fresh(lo, 3 * PAGE);
        // Two pages contiguous in VA and PA: reported as one mapping.
        let a_pa = 0x300000u64;
        m.reserve(a_pa, 2 * PAGE);
        m.map(lo + 0x10_0000, a_pa);
        m.map(lo + 0x10_1000, a_pa + PAGE);
        let phys = space_of(&m);
        let a = AddressSpace::new(&phys, m.dtb, mode_of(mode));
        let mut seen = vec![];
        a.kernel_mappings(|va, pa, size| seen.push((va, pa, size)));
        let vas: Vec<u64> = seen.iter().map(|s| s.0).collect();
        let mut sorted = vas.clone();
        sorted.sort();
        assert_eq!(vas, sorted, "{mode:?} ascending");
        let mut expected = vec![
            (lo, lo_frames[0], PAGE),
            (lo + PAGE, lo_frames[1], PAGE),
            (lo + 2 * PAGE, lo_frames[2], PAGE),
            (lo + 0x10_0000, a_pa, 2 * PAGE),
            (hi, hi_frames[0], PAGE),
        ];
        // Frames map_fresh happened to place consecutively merge too: compare page by page.
        let pages = |list: &[(u64, u64, u64)]| -> Vec<(u64, u64)> {
            list.iter()
                .flat_map(|&(va, pa, size)| {
                    (0..size / PAGE).map(move |k| (va + k * PAGE, pa + k * PAGE))
                })
                .collect()
        };
        expected.sort();
        assert_eq!(pages(&seen), pages(&expected), "{mode:?}");
        assert!(seen.iter().any(|s| s.2 == 2 * PAGE), "{mode:?} merged");
        // PA -> lowest VA: map a_pa a second time at a higher VA; the lower VA wins.
        let mut m2 = m;
        m2.map(hi + 0x8000, a_pa);
        let phys = space_of(&m2);
        let a = AddressSpace::new(&phys, m2.dtb, mode_of(mode));
        let mut want = vec![a_pa >> 12, (a_pa >> 12) + 1, hi_frames[0] >> 12, 0x3F0];
        want.sort_unstable();
        want.dedup();
        let got = a.phys_to_virt(&want);
        let va_of = |pfn: u64| got[want.iter().position(|&p| p == pfn).unwrap()];
        assert_eq!(va_of(a_pa >> 12), Some(lo + 0x10_0000), "{mode:?}");
        assert_eq!(va_of((a_pa >> 12) + 1), Some(lo + 0x10_1000));
        assert_eq!(va_of(hi_frames[0] >> 12), Some(hi));
        assert_eq!(va_of(0x3F0), None, "unmapped page has no VA");
    }
}

#[test]
fn hostile_tables_terminate() {
    // Every PML4/PDPT/PD entry of the kernel half points at one table full of present entries
    // pointing at itself: the walk must finish quickly and translation must not loop.
    let mut mem = vec![0u8; 2 * MIB as usize];
    let table = 0x10000u64;
    for i in 0..512 {
        le64(&mut mem, (table + i * 8) as usize, table | 0x3);
    }
    let phys = PhysicalSpace::from_bytes(mem, Path::new("hostile.raw")).unwrap();
    let a = AddressSpace::new(&phys, table, PagingMode::X64);
    let mut count = 0u64;
    a.kernel_mappings(|_, _, size| count += size / PAGE);
    assert!(count <= 512 * 512, "walk visited {count} pages");
    assert_eq!(a.translate(0xFFFF_8000_0000_0000), Some(table));
    // DTB beyond the image.
    let a = AddressSpace::new(&phys, 0x7FFF_0000_0000, PagingMode::X64);
    assert_eq!(a.translate(0xFFFF_F780_0000_0000), None);
    a.kernel_mappings(|_, _, _| panic!("nothing is mapped"));
}

/// Spaces built one after another (often at the same stack address) or used in turn never see
/// each other's pages.
#[test]
fn address_spaces_stay_apart() {
    let va = 0xFFFF_F800_0040_0000;
    let images: Vec<(Machine, u64)> = (0..3u64)
        .map(|i| {
            let mut m = Machine::new(Mode::X64, 4 * MIB, 0x1ED);
            // A different number of pages before the mapping, so `va` lands on another frame.
            m.map_fresh(va - (i + 1) * PAGE, (i + 1) * PAGE);
            m.map_fresh(va, PAGE);
            m.write_virt(va + 8, &(0xA0 + i).to_le_bytes());
            let pa = m.pa_of(va);
            (m, pa)
        })
        .collect();
    let spaces: Vec<PhysicalSpace> = images.iter().map(|(m, _)| space_of(m)).collect();
    for round in 0..3 {
        for (i, ((m, pa), phys)) in images.iter().zip(&spaces).enumerate() {
            // A fresh space each time, dropped at the end of the iteration.
            let a = AddressSpace::new(phys, m.dtb, PagingMode::X64);
            assert_eq!(a.read_u64(va + 8), Some(0xA0 + i as u64), "round {round}");
            assert_eq!(a.translate(va), Some(*pa));
        }
    }
    // Two live spaces used in turn.
    let a = AddressSpace::new(&spaces[0], images[0].0.dtb, PagingMode::X64);
    let b = AddressSpace::new(&spaces[1], images[1].0.dtb, PagingMode::X64);
    for _ in 0..3 {
        assert_eq!(a.read_u64(va + 8), Some(0xA0));
        assert_eq!(b.read_u64(va + 8), Some(0xA1));
    }
}

/// Translations are remembered per thread: two spaces mapping the same virtual pages to different
/// frames, read in turn on one thread, each still read their own bytes; so does a space built at
/// the same place after the first is dropped (remembered translations name the space, not where
/// it lives).
#[test]
fn remembered_translations_stay_with_their_space() {
    let va = 0xFFFF_F800_0040_0000u64;
    let machine = |frames_before: u64, text: &[u8]| {
        let mut m = Machine::new(Mode::X64, 4 * MIB, 0x1ED);
        for _ in 0..frames_before {
            m.alloc();
        }
        let frames = m.map_fresh(va, 2 * PAGE);
        m.write_virt(va + 0x10, text);
        m.write_virt(va + PAGE + 0x10, text);
        (m, frames)
    };
    let ((m1, f1), (m2, f2)) = (machine(0, b"first"), machine(5, b"other"));
    assert!(
        f1.iter().all(|f| !f2.contains(f)),
        "the spaces must use other frames"
    );
    let (p1, p2) = (space_of(&m1), space_of(&m2));
    let read = |a: &AddressSpace, at: u64| {
        let mut buf = [0u8; 5];
        assert!(a.read_into(at, &mut buf));
        buf
    };
    for _ in 0..3 {
        let a1 = AddressSpace::new(&p1, m1.dtb, PagingMode::X64);
        let a2 = AddressSpace::new(&p2, m2.dtb, PagingMode::X64);
        for at in [va + 0x10, va + PAGE + 0x10] {
            assert_eq!(&read(&a1, at), b"first");
            assert_eq!(&read(&a2, at), b"other");
            assert_eq!(&read(&a1, at), b"first");
        }
        assert_eq!(
            a1.translate(va + 0x10),
            Some(a1.translate(va).unwrap() + 0x10)
        );
    }
}
