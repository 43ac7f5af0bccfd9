//! Corrupted images never panic or hang: deterministic byte mutations of every container's
//! headers and of the page tables, each opened and identified.
mod support;

use netcarve::bytes::ReadBytes;
use netcarve::container::PhysicalSpace;
use netcarve::kernel::{identify, image_facts};
use netcarve::paging::AddressSpace;
use std::path::Path;
use support::containers::{bitmap_dump, elf_core, full_dump, lime};
use support::machine::{windows, Mode};
// A fixed sequence, so that a failure reproduces.
use support::Rng;

fn mutate_and_open(
    name: &str,
    image: &[u8],
    hot: std::ops::Range<usize>,
    rounds: usize,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let mut opened = 0;
    for _ in 0..rounds {
        let mut bytes = image.to_vec();
        for _ in 0..1 + rng.next_u64() % 8 {
            let at = if rng.next_u64().is_multiple_of(4) {
                (rng.next_u64() % bytes.len() as u64) as usize
            } else {
                hot.start + (rng.next_u64() % (hot.end - hot.start) as u64) as usize
            };
            bytes[at] = match rng.next_u64() % 4 {
                0 => 0,
                1 => 0xFF,
                _ => rng.next_u64() as u8,
            };
        }
        if rng.next_u64().is_multiple_of(16) {
            bytes.truncate((rng.next_u64() % bytes.len() as u64) as usize);
        }
        let origin = Path::new(name);
        let Ok(space) = PhysicalSpace::from_bytes(bytes, origin) else {
            continue;
        };
        opened += 1;
        if let Ok(k) = identify(&space, None) {
            let facts = image_facts(&space, &k);
            assert!(!facts.container.is_empty());
            let a = AddressSpace::new(&space, k.dtb, k.mode);
            let mut buf = [0u8; 64];
            let _ = a.read_into(k.kernel_base.unwrap_or(0), &mut buf);
            a.kernel_mappings(|_, _, _| {});
        }
    }
    assert!(
        opened > 0,
        "{name}: no mutation opened at all; the test would prove nothing"
    );
}

#[test]
fn mutated_containers_and_tables_do_not_panic() {
    let (m, t) = windows(Mode::X64, 2 << 20, 10, 0, 19041);
    let full = full_dump(&m.mem, true, t.dtb, t.build, false, t.kdbg_va);
    mutate_and_open("full64.dmp", &full, 0..0x2000, 150, 1);
    let bitmap = bitmap_dump(&m.mem, true, t.dtb, t.build, t.kdbg_va);
    mutate_and_open("bitmap64.dmp", &bitmap, 0x2000..0x2100, 150, 2);
    mutate_and_open("core.elf", &elf_core(&m.mem), 0..0x100, 150, 3);
    mutate_and_open("mem.lime", &lime(&m.mem), 0..0x20, 150, 4);
    // Page tables: mutate the PML4 page.
    let dtb = t.dtb as usize;
    mutate_and_open("mem.raw", &m.mem, dtb..dtb + 0x1000, 150, 5);

    let (m, t) = windows(Mode::Pae, 2 << 20, 6, 1, 7601);
    let full = full_dump(&m.mem, false, t.dtb, 7601, true, 0);
    mutate_and_open("full32.dmp", &full, 0..0x1000, 150, 6);
    let pdpt = t.dtb as usize & !0xFFF;
    mutate_and_open("pae.raw", &m.mem, pdpt..pdpt + 0x1000, 150, 7);
    let (m, t) = windows(Mode::NonPae, 2 << 20, 6, 0, 6002);
    let pd = t.dtb as usize;
    mutate_and_open("nonpae.raw", &m.mem, pd..pd + 0x1000, 150, 8);
}

#[test]
fn kernel_candidate_at_the_top_of_the_address_space() {
    // A KDBG KernBase and an MZ page at the last page of the VA space: RVAs added to the base
    // would overflow. The real kernel is still found.
    let (mut m, t) = windows(Mode::X64, 2 << 20, 10, 0, 19041);
    let top = 0xFFFF_FFFF_FFFF_F000u64;
    m.map_fresh(top, support::machine::PAGE);
    let header = support::machine::tiny_kernel_pe(
        true,
        "ntkrnlmp.pdb",
        &support::machine::GUID_BYTES,
        1,
        (10, 0, 1, 1),
    );
    m.write_virt(top, &header[..support::machine::PAGE as usize]);
    m.write_virt(t.kdbg_va + 0x18, &top.to_le_bytes());
    let space = PhysicalSpace::from_bytes(m.mem, Path::new("top.raw")).unwrap();
    let k = identify(&space, None).unwrap();
    assert_eq!(k.kernel_base, Some(t.kernel_base));
}
