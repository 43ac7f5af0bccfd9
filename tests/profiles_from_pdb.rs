//! `profile from-pdb` on PDBs written by a real toolchain (clang + lld-link, see
//! testdata/pdb/make.sh): the offsets read back must equal the ones the C file declares.
mod support;

use netcarve::profile::from_pdb::from_pdb;
use netcarve::profile::{resolve, Confidence, Profile};
use std::path::PathBuf;
use support::{scratch, Rng};

fn fixture(name: &str) -> PathBuf {
    support::testdata("pdb").join(name)
}

fn derived() -> Profile {
    from_pdb(
        &fixture("ntkrnl_fixture.pdb"),
        Some(&fixture("tcpip_fixture.pdb")),
        Some("win10-19041-x64"),
    )
    .expect("from-pdb on the fixture")
}

#[test]
fn nt_offsets_equal_the_declared_ones() {
    let p = derived();
    let e = &p.nt.eprocess;
    // Declared in testdata/pdb/ntkrnl_fixture.c (and asserted there with _Static_assert).
    let want = [
        ("Pcb.Header.Type", e.dispatcher_type.off(), 0x0),
        ("Pcb.DirectoryTableBase", e.directory_table_base.off(), 0x28),
        ("UniqueProcessId", e.unique_process_id.off(), 0x440),
        ("ActiveProcessLinks", e.active_process_links.off(), 0x448),
        ("CreateTime", e.create_time.off(), 0x468),
        ("ExitTime", e.exit_time.off(), 0x840),
        ("ImageFileName", e.image_file_name.off(), 0x5a8),
        (
            "InheritedFromUniqueProcessId",
            e.inherited_from_unique_process_id.off(),
            0x540,
        ),
        ("_OBJECT_HEADER.Body", p.nt.object_header.body.off(), 0x30),
        (
            "_OBJECT_HEADER.TypeIndex",
            p.nt.object_header.type_index.off(),
            0x18,
        ),
    ];
    for (name, got, want) in want {
        assert_eq!(got, Some(want), "{name}");
    }
    assert_eq!(e.size.map(|s| s.get()), Some(0xa40));
    let k = &p.nt.kuser_shared_data;
    assert_eq!(k.interrupt_time.off(), Some(0x8));
    assert_eq!(k.system_time.off(), Some(0x14));
    assert_eq!(k.time_zone_bias.off(), Some(0x20));
    assert_eq!(k.nt_build_number.off(), Some(0x260));
    assert_eq!(k.nt_product_type.off(), Some(0x264));
    assert_eq!(k.nt_major_version.off(), Some(0x26c));
    assert_eq!(k.nt_minor_version.off(), Some(0x270));
    assert_eq!(e.unique_process_id.confidence, Confidence::Pdb);
}

#[test]
fn symbols_guid_and_provenance() {
    let p = derived();
    // GUID as llvm-pdbutil prints it: {D0A4C7E5-8BAB-E17B-4C4C-44205044422E}, age 1.
    let id = p.kernel_pdb.as_ref().expect("kernel_pdb");
    assert_eq!(id.guid, "D0A4C7E58BABE17B4C4C44205044422E");
    assert_eq!(id.age, 1);
    let src = "pdb:D0A4C7E58BABE17B4C4C44205044422E-1";
    assert_eq!(p.nt.eprocess.unique_process_id.source, src);
    assert!(p.sources.contains_key(src));
    // RVAs: the linker placed .data at 0x3000 (llvm-pdbutil: PsActiveProcessHead 0003:0000,
    // KdVersionBlock 0003:0016, PsLoadedModuleList 0003:0056).
    let rva = |n: &str| p.symbols.get(n).and_then(|f| f.off());
    assert_eq!(rva("PsActiveProcessHead"), Some(0x3000));
    assert_eq!(rva("KdVersionBlock"), Some(0x3010));
    assert_eq!(rva("PsLoadedModuleList"), Some(0x3038));
    for s in [
        "tcpip!PartitionTable",
        "tcpip!PartitionCount",
        "tcpip!TcpCompartmentSet",
        "tcpip!UdpCompartmentSet",
    ] {
        let f = p.symbols.get(s).unwrap_or_else(|| panic!("{s} missing"));
        assert!(
            f.source.starts_with("pdb:") && f.source != src,
            "{s}: {}",
            f.source
        );
        assert!(p.sources.contains_key(&f.source));
    }
    assert!(!p.symbols.contains_key("tcpip!TcpPortPool"));
    // tcpip layouts come from the base, so the profile is no stronger than the base's tables.
    let base = netcarve::profile::by_name("win10-19041-x64").unwrap();
    assert_eq!(p.tcpip, base.tcpip);
    assert_eq!(p.confidence, Confidence::Reference);
}

#[test]
fn written_profile_loads_with_profile_file() {
    let p = derived();
    let dir = scratch("profiles_from_pdb_written");
    let out = dir.join("derived.json");
    let status = support::command()
        .args(["profile", "from-pdb", "--nt"])
        .arg(fixture("ntkrnl_fixture.pdb"))
        .arg("--tcpip")
        .arg(fixture("tcpip_fixture.pdb"))
        .args(["--base", "win10-19041-x64", "-o"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let loaded = resolve(out.to_str().unwrap()).expect("--profile FILE accepts it");
    assert_eq!(loaded, p);
}

#[test]
fn without_base_the_ambiguous_layout_asks_for_one() {
    let err = from_pdb(&fixture("ntkrnl_fixture.pdb"), None, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--base"), "{err}");
    assert!(err.contains("win10-19041-x64"), "{err}");
    assert!(err.contains("ntkrnl_fixture.pdb"), "{err}");
}

#[test]
fn bad_inputs_are_one_line_errors_naming_the_file() {
    // The tcpip PDB has no kernel types.
    let err = from_pdb(&fixture("tcpip_fixture.pdb"), None, Some("win10-19041-x64"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tcpip_fixture.pdb") && err.contains("_EPROCESS"),
        "{err}"
    );
    // The kernel PDB given as tcpip.pdb has none of the tcpip symbols.
    let err = from_pdb(
        &fixture("ntkrnl_fixture.pdb"),
        Some(&fixture("ntkrnl_fixture.pdb")),
        Some("win10-19041-x64"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("PartitionTable"), "{err}");
    // Arch mismatch with the base.
    let err = from_pdb(&fixture("ntkrnl_fixture.pdb"), None, Some("win7-x86"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("x64") && err.contains("win7-x86"), "{err}");
    // Not a PDB, truncated PDBs, missing file: errors, never panics.
    let bytes = std::fs::read(fixture("ntkrnl_fixture.pdb")).unwrap();
    let dir = scratch("profiles_from_pdb_bad");
    for (i, len) in [0usize, 100, 4096, 20000, 50000].into_iter().enumerate() {
        let f = dir.join(format!("cut{i}.pdb"));
        std::fs::write(&f, &bytes[..len.min(bytes.len())]).unwrap();
        let r = from_pdb(&f, None, Some("win10-19041-x64"));
        let e = r.expect_err("truncated PDB must fail").to_string();
        assert!(
            e.contains(&format!("cut{i}.pdb")) && !e.contains('\n'),
            "{e}"
        );
    }
    let e = from_pdb(&dir.join("missing.pdb"), None, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing.pdb") && e.contains("no such file"),
        "{e}"
    );
}

#[test]
fn corrupted_pdbs_never_panic() {
    let bytes = std::fs::read(fixture("ntkrnl_fixture.pdb")).unwrap();
    let dir = scratch("profiles_from_pdb_mutated");
    let f = dir.join("mutated.pdb");
    let mut rng = Rng::new(1);
    for _ in 0..150 {
        let mut m = bytes.clone();
        for _ in 0..8 {
            let at = rng.below(m.len() as u64) as usize;
            m[at] = rng.next_u64() as u8;
        }
        std::fs::write(&f, &m).unwrap();
        // Ok (a flip in padding) or a one-line error naming the file; a panic fails the test.
        if let Err(e) = from_pdb(&f, None, Some("win10-19041-x64")) {
            let e = e.to_string();
            assert!(e.contains("mutated.pdb") && !e.contains('\n'), "{e}");
        }
    }
}
