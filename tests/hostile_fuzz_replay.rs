//! Replays every committed fuzz input (`fuzz/corpus/<target>/`: seeds, minimised corpus and the
//! inputs of every crash found, named `crash-*`) through the very harness the fuzzer runs
//! (`fuzz/src/harness.rs`), so the ordinary test suite holds every finding as a regression test
//! without needing a nightly toolchain or libFuzzer.
//!
//! `cargo test --test hostile_fuzz_replay -- --ignored write_fuzz_seeds` rewrites the seeds.
mod support;

#[path = "../fuzz/src/harness.rs"]
mod harness;

use netcarve::synth::xpress::{compress_huffman, compress_plain};
use std::path::{Path, PathBuf};
use support::containers::{bitmap_dump, elf_core, full_dump, lime, vmware};
use support::machine::{tiny_kernel_pe, windows, Mode, GUID_BYTES};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

#[test]
fn every_committed_fuzz_input_replays_without_panic() {
    for (target, run) in harness::TARGETS {
        let dir = corpus_dir(target);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(
            files.iter().any(|f| f
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))),
            "{target}: no seed committed"
        );
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| run(&bytes));
            assert!(
                outcome.is_ok(),
                "{target}: {} panicked (see the message above)",
                file.display()
            );
        }
    }
}

/// The seeds must reach deep code, or the fuzzer starts from nothing: the PE seed must be found
/// as a kernel, the paging seed must translate, the scan seed must carve endpoints.
#[test]
fn seeds_reach_the_code_they_are_for() {
    use netcarve::container::PhysicalSpace;
    use netcarve::kernel::identify;
    let pe = std::fs::read(corpus_dir("pe_codeview").join("seed-x64-kernel")).unwrap();
    let space =
        PhysicalSpace::from_bytes(harness::pe_image(&pe), Path::new("pe.raw")).expect("raw image");
    let info = identify(&space, Some(0x1000)).expect("identify");
    assert_eq!(info.kernel_base, Some(harness::PE_KERNEL_VA));
    assert!(info.pdb.is_some(), "CodeView record not parsed");

    let paging = std::fs::read(corpus_dir("paging").join("seed-x64")).unwrap();
    let memory = paging[harness::PAGING_HEADER..].to_vec();
    let dtb = u64::from_le_bytes(paging[0..8].try_into().unwrap()) >> 8;
    let space = PhysicalSpace::from_bytes(memory, Path::new("p.raw")).unwrap();
    let walker =
        netcarve::paging::AddressSpace::new(&space, dtb, netcarve::paging::PagingMode::X64);
    let va = u64::from_le_bytes(paging[8..16].try_into().unwrap());
    assert!(walker.translate(va).is_some(), "paging seed maps nothing");

    // The tables seed is one partition with two chained TcpE and a TCP port pool with a listener.
    let tables = std::fs::read(corpus_dir("tables").join("seed-walk")).unwrap();
    assert_eq!(tables, harness::tables_seed(), "regenerate the seeds");
    let p = netcarve::profile::by_name("win7-x64").unwrap();
    let syms = netcarve::tables::symbols::TcpipSymbols {
        partition_table: Some(0x10),
        partition_count: Some(0x18),
        tcp_port_pool: Some(0x20),
        ..Default::default()
    };
    let walked = netcarve::tables::walk::walk(
        &harness::FlatMemory(&tables[harness::TABLES_HEADER..]),
        netcarve::paging::PagingMode::X64,
        p,
        p.tcpip.tables.as_ref().unwrap(),
        harness::TABLES_VA,
        &syms,
    );
    let kinds: Vec<_> = walked
        .entries
        .iter()
        .map(|e| (e.kind.name(), e.tagged))
        .collect();
    assert_eq!(
        kinds,
        [
            ("tcp_endpoint", true),
            ("tcp_endpoint", true),
            ("tcp_listener", true)
        ],
        "tables seed walks nothing: {:?}",
        walked.warnings
    );

    // The budget seed exhausts the tight budgets (and still finds KUSER_SHARED_DATA); the sparse
    // seed finds its kernel.
    use netcarve::kernel::identify_within;
    let bomb = std::fs::read(corpus_dir("kernel").join("seed-budgets")).unwrap();
    let space = PhysicalSpace::from_bytes(bomb[1..].to_vec(), Path::new("b.raw")).unwrap();
    let info = identify_within(&space, None, &harness::tight_limits()).expect("identify");
    let warnings = info.warnings.join("\n");
    assert!(
        warnings.contains("stopped after 16 mapped pages"),
        "{warnings}"
    );
    assert!(
        warnings.contains("gave up at its read budget"),
        "{warnings}"
    );
    let sparse = std::fs::read(corpus_dir("kernel").join("seed-raw64-sparse")).unwrap();
    assert_eq!(sparse[0] & 4, 4);
    let mut space = PhysicalSpace::from_bytes(sparse[1..].to_vec(), Path::new("s.raw")).unwrap();
    space.set_data_extents(harness::nonzero_pages(&sparse[1..]));
    assert!(
        space.pass_size() < space.present_size(),
        "the sparse seed has no holes"
    );
    assert!(identify(&space, None).unwrap().pdb.is_some());

    // The xpress seeds are whole streams that decode to the size their header asks for.
    use netcarve::container::xpress::{decompress_huffman, decompress_plain};
    for (seed, decoder) in [
        (
            "seed-plain-pages",
            decompress_plain as fn(&[u8], &mut [u8]) -> _,
        ),
        ("seed-huffman-pages", decompress_huffman),
        ("seed-huffman-two-blocks", decompress_huffman),
    ] {
        let bytes = std::fs::read(corpus_dir("xpress").join(seed)).unwrap();
        let (head, stream) = bytes.split_at(harness::XPRESS_HEADER);
        let size = u32::from_le_bytes([head[0], head[1], head[2], 0]) as usize;
        let mut out = vec![0u8; size];
        assert_eq!(
            decoder(stream, &mut out),
            Ok(size),
            "{seed} does not decode"
        );
    }
}

/// A 512 KiB x64 machine with forty hostile kernel headers (each claiming 16 CodeView records) at
/// 2 MiB-aligned addresses before the real kernel: the kernel target's tight budgets give up.
fn budget_bomb() -> Vec<u8> {
    use netcarve::synth::builder::le32;
    let (mut m, _) = windows(Mode::X64, 0x8_0000, 10, 0, 19041);
    let mut page = tiny_kernel_pe(true, "ntkrnlmp.pdb", &GUID_BYTES, 3, (10, 0, 19041, 1));
    page.truncate(0x1000);
    // The debug directory (data directory 6 of the PE32+ header at 0x80) moved into this page:
    // sixteen CodeView entries whose records are not RSDS.
    le32(&mut page, 0x80 + 24 + 112 + 6 * 8, 0x800);
    le32(&mut page, 0x80 + 24 + 112 + 6 * 8 + 4, 64 << 20);
    for e in 0..16 {
        let at = 0x800 + e * 28;
        le32(&mut page, at + 12, 2);
        le32(&mut page, at + 16, 0x400);
        le32(&mut page, at + 20, 0xC00);
    }
    for i in 0..40u64 {
        let va = 0xFFFF_F800_0000_0000 + i * (2 << 20);
        m.map_fresh(va, 0x1000);
        m.write_virt(va, &page);
    }
    m.mem
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn with_selector(selector: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![selector];
    v.extend_from_slice(body);
    v
}

/// Writes the seed corpora from the test image builders, the built-in profiles and the capture
/// fixtures. Small on purpose: 256 KiB machines, except for the containers, whose test writers
/// need memory past the legacy hole (1 MiB); those images are mostly zeros.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    write("tables", "walk", &harness::tables_seed());
    let (m64, t64) = windows(Mode::X64, 0x4_0000, 10, 0, 19041);
    let (m86, t86) = windows(Mode::Pae, 0x4_0000, 6, 1, 7601);
    let (big64, big_t64) = windows(Mode::X64, 0x11_0000, 10, 0, 19041);
    let (big86, big_t86) = windows(Mode::Pae, 0x11_0000, 6, 1, 7601);
    let full = full_dump(
        &big64.mem,
        true,
        big_t64.dtb,
        big_t64.build,
        false,
        big_t64.kdbg_va,
    );
    let full86 = full_dump(
        &big86.mem,
        false,
        big_t86.dtb,
        big_t86.build,
        true,
        big_t86.kdbg_va,
    );
    let bitmap = bitmap_dump(
        &big64.mem,
        true,
        big_t64.dtb,
        big_t64.build,
        big_t64.kdbg_va,
    );
    let elf = elf_core(&big64.mem);
    let lime_image = lime(&big64.mem);
    let (_vmem, vmss) = vmware(&big64.mem);

    // Selector % 4: 0 raw name, 1 .dmp, 2 .vmem (+ metadata parser), 3 .lime.
    write("container", "raw", &with_selector(0, &m64.mem));
    write("container", "full64", &with_selector(1, &full));
    write("container", "full32", &with_selector(1, &full86));
    write("container", "bitmap64", &with_selector(1, &bitmap));
    write("container", "elf", &with_selector(0, &elf));
    write("container", "lime", &with_selector(3, &lime_image));
    write("container", "vmss", &with_selector(2, &vmss));

    write("kernel", "raw64", &with_selector(0, &m64.mem));
    write("kernel", "raw-pae", &with_selector(0, &m86.mem));
    write("kernel", "bitmap64", &with_selector(0, &bitmap));
    // Bit 2: zero pages as holes (the same kernel must be found); bit 1: tight budgets, which
    // forty hostile headers before the kernel exhaust.
    write("kernel", "raw64-sparse", &with_selector(4, &m64.mem));
    write("kernel", "budgets", &with_selector(6, &budget_bomb()));
    // Bit 6: zero pages as holes, the same endpoints must be carved. The profile is the selector
    // modulo the built-in count, so the selector keeps its residue and bit 7.
    let profiles = netcarve::profile::builtin().len();
    for name in ["win7-x64-pages", "win7-x64-pages-corrupt"] {
        let mut seed =
            std::fs::read(corpus_dir("scan_endpoint").join(format!("seed-{name}"))).unwrap();
        let old = seed[0];
        let Some(new) = (0..=255u8).find(|&s| {
            usize::from(s) % profiles == usize::from(old) % profiles
                && s & 0x40 != 0
                && s & 0x80 == old & 0x80
        }) else {
            continue;
        };
        seed[0] = new;
        write("scan_endpoint", &format!("{name}-sparse"), &seed);
    }

    let mut paging = Vec::new();
    paging.extend_from_slice(&(t64.dtb << 8).to_le_bytes());
    for va in [
        t64.kernel_base,
        support::machine::KUSER_X64,
        t64.kdbg_va,
        0xFFFF_F6FB_7DBE_D000,
    ] {
        paging.extend_from_slice(&va.to_le_bytes());
    }
    paging.extend_from_slice(&m64.mem);
    write("paging", "x64", &paging);
    let mut paging = Vec::new();
    paging.extend_from_slice(&((t86.dtb << 8) | 1).to_le_bytes());
    for va in [
        t86.kernel_base,
        support::machine::KUSER_X86,
        t86.kdbg_va,
        0xC060_0000,
    ] {
        paging.extend_from_slice(&va.to_le_bytes());
    }
    paging.extend_from_slice(&m86.mem);
    write("paging", "pae", &paging);

    let pe64 = tiny_kernel_pe(true, "ntkrnlmp.pdb", &GUID_BYTES, 3, (10, 0, 19041, 1));
    write("pe_codeview", "x64-kernel", &pe64);
    let pe86 = tiny_kernel_pe(false, "ntkrpamp.pdb", &GUID_BYTES, 1, (6, 1, 7601, 1));
    write("pe_codeview", "x86-kernel", &pe86);

    // Size header, then a stream; the round trip compresses the stream's own bytes.
    let xpress_seed = |size: usize, stream: &[u8]| {
        let mut v = (size as u32).to_le_bytes()[..harness::XPRESS_HEADER].to_vec();
        v.extend_from_slice(stream);
        v
    };
    let pages = support::xpress::page_like(4 * 4096 + 100, 31);
    let two_blocks = support::xpress::page_like(65536 + 4096, 32);
    write(
        "xpress",
        "plain-pages",
        &xpress_seed(pages.len(), &compress_plain(&pages)),
    );
    write(
        "xpress",
        "huffman-pages",
        &xpress_seed(pages.len(), &compress_huffman(&pages)),
    );
    write(
        "xpress",
        "huffman-two-blocks",
        &xpress_seed(two_blocks.len(), &compress_huffman(&two_blocks)),
    );
    let abc = b"abc".repeat(100);
    write(
        "xpress",
        "plain-abc",
        &xpress_seed(abc.len(), &compress_plain(&abc)),
    );
    write(
        "xpress",
        "huffman-abc",
        &xpress_seed(abc.len(), &compress_huffman(&abc)),
    );

    for name in ["win7-x64", "win10-19041-x64", "win7-x86"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("profiles")
            .join(format!("{name}.json"));
        write("profile_json", name, &std::fs::read(path).unwrap());
    }
}
