//! A minimal Volatility 3 symbol file (ISF 6.2.0) of the synthetic kernel: the symbols and types
//! Volatility's stacker, `windows.info`, `pslist` and `netscan` need (see vol3-oracle.md), with the
//! offsets the image was laid out with.
use super::kernel::*;
use crate::profile::{Arch, Profile};
use serde_json::{json, Map, Value};

/// Where the ISF-only `_EPROCESS` members live (past the profile's fields).
pub struct EprocessExtras {
    pub size: u64,
    pub thread_list_head: u64,
    pub active_threads: u64,
    pub object_table: u64,
    pub session: u64,
    pub peb: u64,
}

fn base(name: &str) -> Value {
    json!({"kind": "base", "name": name})
}
fn st(name: &str) -> Value {
    json!({"kind": "struct", "name": name})
}
fn ptr(sub: Value) -> Value {
    json!({"kind": "pointer", "subtype": sub})
}
fn field(off: u64, ty: Value) -> Value {
    json!({"offset": off, "type": ty})
}

fn structure(size: u64, fields: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in fields {
        m.insert(k.to_string(), v);
    }
    json!({"kind": "struct", "size": size, "fields": m})
}

#[allow(clippy::too_many_arguments)]
pub fn build(
    p: &Profile,
    pdb_name: &str,
    guid: &str,
    age: u32,
    build: u32,
    extras: &EprocessExtras,
) -> Value {
    let x64 = p.arch == Arch::X64;
    let ps: u64 = if x64 { 8 } else { 4 };
    let ptr_int = if x64 {
        "unsigned long long"
    } else {
        "unsigned long"
    };
    let e = &p.nt.eprocess;
    let off = |f: &crate::profile::Field| f.off().unwrap_or(0);
    let void = base("void");
    let k = &p.nt.kuser_shared_data;
    let mut user_types = Map::new();
    let mut put = |name: &str, v: Value| {
        user_types.insert(name.to_string(), v);
    };
    put(
        "_LIST_ENTRY",
        structure(
            2 * ps,
            vec![
                ("Flink", field(0, ptr(st("_LIST_ENTRY")))),
                ("Blink", field(ps, ptr(st("_LIST_ENTRY")))),
            ],
        ),
    );
    put(
        "_LARGE_INTEGER",
        structure(
            8,
            vec![
                ("LowPart", field(0, base("unsigned long"))),
                ("HighPart", field(4, base("long"))),
                ("QuadPart", field(0, base("long long"))),
            ],
        ),
    );
    put(
        "_UNICODE_STRING",
        structure(
            2 * ps,
            vec![
                ("Length", field(0, base("unsigned short"))),
                ("MaximumLength", field(2, base("unsigned short"))),
                ("Buffer", field(ps, ptr(base("wchar")))),
            ],
        ),
    );
    put(
        "_KSYSTEM_TIME",
        structure(
            12,
            vec![
                ("LowPart", field(0, base("unsigned long"))),
                ("High1Time", field(4, base("long"))),
                ("High2Time", field(8, base("long"))),
            ],
        ),
    );
    let mut kuser = vec![
        (
            "InterruptTime",
            field(off(&k.interrupt_time), st("_KSYSTEM_TIME")),
        ),
        (
            "SystemTime",
            field(off(&k.system_time), st("_KSYSTEM_TIME")),
        ),
        (
            "TimeZoneBias",
            field(off(&k.time_zone_bias), st("_KSYSTEM_TIME")),
        ),
        (
            "NtProductType",
            field(off(&k.nt_product_type), base("unsigned long")),
        ),
        (
            "NtMajorVersion",
            field(off(&k.nt_major_version), base("unsigned long")),
        ),
        (
            "NtMinorVersion",
            field(off(&k.nt_minor_version), base("unsigned long")),
        ),
    ];
    if let Some(o) = k.nt_build_number.off() {
        kuser.push(("NtBuildNumber", field(o, base("unsigned long"))));
    }
    put("_KUSER_SHARED_DATA", structure(0x720, kuser));
    put(
        "_DBGKD_GET_VERSION64",
        structure(
            0x28,
            vec![
                ("MajorVersion", field(0, base("unsigned short"))),
                ("MinorVersion", field(2, base("unsigned short"))),
                ("ProtocolVersion", field(4, base("unsigned char"))),
                ("KdSecondaryVersion", field(5, base("unsigned char"))),
                ("Flags", field(6, base("unsigned short"))),
                ("MachineType", field(8, base("unsigned short"))),
                ("KernBase", field(0x10, base("unsigned long long"))),
                (
                    "PsLoadedModuleList",
                    field(0x18, base("unsigned long long")),
                ),
                ("DebuggerDataList", field(0x20, base("unsigned long long"))),
            ],
        ),
    );
    let dtb_off = off(&e.directory_table_base);
    put(
        "_DISPATCHER_HEADER",
        structure(
            0x18,
            vec![
                ("Type", field(0, base("unsigned char"))),
                ("Size", field(2, base("unsigned char"))),
            ],
        ),
    );
    put(
        "_KPROCESS",
        structure(
            dtb_off + ps,
            vec![
                ("Header", field(0, st("_DISPATCHER_HEADER"))),
                ("DirectoryTableBase", field(dtb_off, base(ptr_int))),
            ],
        ),
    );
    put(
        "_EPROCESS",
        structure(
            extras.size,
            vec![
                ("Pcb", field(0, st("_KPROCESS"))),
                (
                    "UniqueProcessId",
                    field(off(&e.unique_process_id), ptr(void.clone())),
                ),
                (
                    "ActiveProcessLinks",
                    field(off(&e.active_process_links), st("_LIST_ENTRY")),
                ),
                (
                    "CreateTime",
                    field(off(&e.create_time), st("_LARGE_INTEGER")),
                ),
                ("ExitTime", field(off(&e.exit_time), st("_LARGE_INTEGER"))),
                (
                    "ImageFileName",
                    field(
                        off(&e.image_file_name),
                        json!({"kind": "array", "count": 15, "subtype": base("unsigned char")}),
                    ),
                ),
                (
                    "InheritedFromUniqueProcessId",
                    field(off(&e.inherited_from_unique_process_id), ptr(void.clone())),
                ),
                (
                    "ThreadListHead",
                    field(extras.thread_list_head, st("_LIST_ENTRY")),
                ),
                (
                    "ActiveThreads",
                    field(extras.active_threads, base("unsigned long")),
                ),
                (
                    "ObjectTable",
                    field(extras.object_table, ptr(st("_HANDLE_TABLE"))),
                ),
                ("Session", field(extras.session, ptr(void.clone()))),
                ("Peb", field(extras.peb, ptr(void.clone()))),
            ],
        ),
    );
    let body =
        p.nt.object_header
            .body
            .off()
            .unwrap_or(if x64 { 0x30 } else { 0x18 });
    put(
        "_OBJECT_HEADER",
        structure(
            body + ps,
            vec![
                (
                    "PointerCount",
                    field(0, base(if x64 { "long long" } else { "long" })),
                ),
                (
                    "TypeIndex",
                    field(off(&p.nt.object_header.type_index), base("unsigned char")),
                ),
                (
                    "InfoMask",
                    field(
                        off(&p.nt.object_header.type_index) + 2,
                        base("unsigned char"),
                    ),
                ),
                ("Body", field(body, st("_QUAD"))),
            ],
        ),
    );
    put(
        "_QUAD",
        structure(8, vec![("UseThisFieldToCopy", field(0, base("long long")))]),
    );
    put(
        "_OBJECT_TYPE",
        structure(
            0x40 + 2 * ps,
            vec![
                ("TypeList", field(0, st("_LIST_ENTRY"))),
                ("Name", field(2 * ps, st("_UNICODE_STRING"))),
                ("Index", field(4 * ps + 8, base("unsigned char"))),
            ],
        ),
    );
    put(
        "_POOL_TRACKER_BIG_PAGES",
        structure(
            if x64 { 0x18 } else { 0x10 },
            vec![
                ("Va", field(0, base(ptr_int))),
                ("Key", field(ps, base("unsigned long"))),
                ("PoolType", field(ps + 4, base("unsigned long"))),
                ("NumberOfBytes", field(ps + 8, base(ptr_int))),
            ],
        ),
    );
    let pool_header = if x64 {
        structure(
            0x10,
            vec![
                ("PreviousSize", field(0, base("unsigned char"))),
                ("PoolIndex", field(1, base("unsigned char"))),
                ("BlockSize", field(2, base("unsigned char"))),
                ("PoolType", field(3, base("unsigned char"))),
                ("PoolTag", field(4, base("unsigned long"))),
            ],
        )
    } else {
        let bits = |pos: u64, len: u64| json!({"kind": "bitfield", "bit_position": pos, "bit_length": len, "type": base("unsigned short")});
        structure(
            0x8,
            vec![
                ("PreviousSize", field(0, bits(0, 9))),
                ("PoolIndex", field(0, bits(9, 7))),
                ("BlockSize", field(2, bits(0, 9))),
                ("PoolType", field(2, bits(9, 7))),
                ("PoolTag", field(4, base("unsigned long"))),
            ],
        )
    };
    put("_POOL_HEADER", pool_header);
    let tables = p.tcpip.tables.is_some();
    if tables {
        // What windows.modules and windows.netstat read of the kernel's types (the fixed
        // layouts of docs/internals.md, "tcpip's tables").
        put(
            "_RTL_DYNAMIC_HASH_TABLE",
            structure(
                0x20 + ps,
                vec![
                    ("Flags", field(0, base("unsigned long"))),
                    ("Shift", field(4, base("unsigned long"))),
                    ("TableSize", field(8, base("unsigned long"))),
                    ("Pivot", field(0xc, base("unsigned long"))),
                    ("DivisorMask", field(0x10, base("unsigned long"))),
                    ("NumEntries", field(0x14, base("unsigned long"))),
                    ("NonEmptyBuckets", field(0x18, base("unsigned long"))),
                    ("NumEnumerators", field(0x1c, base("unsigned long"))),
                    ("Directory", field(0x20, ptr(void.clone()))),
                ],
            ),
        );
        put(
            "_RTL_BITMAP",
            structure(
                2 * ps,
                vec![
                    ("SizeOfBitMap", field(0, base("unsigned long"))),
                    ("Buffer", field(ps, ptr(base("unsigned long")))),
                ],
            ),
        );
        let (dll_base, size_of_image, full, base_name, entry_size) = if x64 {
            (0x30, 0x40, 0x48, 0x58, 0xA0)
        } else {
            (0x18, 0x20, 0x24, 0x2C, 0x58)
        };
        let ldr = || {
            structure(
                entry_size,
                vec![
                    ("InLoadOrderLinks", field(0, st("_LIST_ENTRY"))),
                    ("DllBase", field(dll_base, ptr(void.clone()))),
                    ("EntryPoint", field(dll_base + ps, ptr(void.clone()))),
                    ("SizeOfImage", field(size_of_image, base("unsigned long"))),
                    ("FullDllName", field(full, st("_UNICODE_STRING"))),
                    ("BaseDllName", field(base_name, st("_UNICODE_STRING"))),
                ],
            )
        };
        put("_LDR_DATA_TABLE_ENTRY", ldr());
        // Windows 10 kernels name the kernel-mode entry apart (Volatility prefers it there).
        if p.matches.nt_major >= 10 {
            put("_KLDR_DATA_TABLE_ENTRY", ldr());
        }
    }
    for name in [
        "_ETHREAD",
        "_KTHREAD",
        "_ERESOURCE",
        "_EX_FAST_REF",
        "_TOKEN",
        "_FILE_OBJECT",
        "_DEVICE_OBJECT",
        "_CM_KEY_BODY",
        "_CMHIVE",
        "_CM_KEY_NODE",
        "_CM_KEY_VALUE",
        "_HMAP_ENTRY",
        "_MMVAD_SHORT",
        "_MMVAD",
        "_KMUTANT",
        "_DRIVER_OBJECT",
        "_OBJECT_SYMBOLIC_LINK",
        "_CONTROL_AREA",
        "_SHARED_CACHE_MAP",
        "_VACB",
        "_IMAGE_DOS_HEADER",
        "_KTIMER",
        "_LDR_DATA_TABLE_ENTRY",
        "_HANDLE_TABLE",
    ] {
        if !(tables && name == "_LDR_DATA_TABLE_ENTRY") {
            put(name, structure(8, vec![]));
        }
    }
    let base_types = base_types(ps);
    let sym = |rva: u64| json!({"address": rva});
    json!({
        "metadata": {
            "format": "6.2.0",
            "producer": {"name": "netcarve-synth", "version": env!("CARGO_PKG_VERSION")},
            "windows": {
                "pdb": {
                    "GUID": guid,
                    "age": age,
                    "database": pdb_name,
                    "machine_type": if x64 { 34404 } else { 332 }
                },
                "pe": {
                    "major": p.matches.nt_major,
                    "minor": p.matches.nt_minor,
                    "revision": 1,
                    "build": build
                }
            }
        },
        "base_types": base_types,
        "user_types": user_types,
        "enums": {},
        "symbols": {
            "KdVersionBlock": sym(RVA_KD_VERSION_BLOCK),
            "PsActiveProcessHead": sym(RVA_PS_ACTIVE_PROCESS_HEAD),
            "PsLoadedModuleList": sym(RVA_PS_LOADED_MODULE_LIST),
            "ObTypeIndexTable": sym(RVA_OB_TYPE_INDEX_TABLE),
            "ObHeaderCookie": sym(RVA_OB_HEADER_COOKIE),
            "KdDebuggerDataBlock": sym(RVA_KDBG),
        }
    })
}

/// The native base types of an ISF (pointer size `ps`).
fn base_types(ps: u64) -> Value {
    let base_type = |size: u64, signed: bool, kind: &str| json!({"size": size, "signed": signed, "kind": kind, "endian": "little"});
    json!({
        "pointer": base_type(ps, false, "int"),
        "void": base_type(0, false, "void"),
        "bool": base_type(1, false, "bool"),
        "char": base_type(1, true, "char"),
        "wchar": base_type(2, false, "char"),
        "unsigned char": base_type(1, false, "int"),
        "short": base_type(2, true, "int"),
        "unsigned short": base_type(2, false, "int"),
        "int": base_type(4, true, "int"),
        "unsigned int": base_type(4, false, "int"),
        "long": base_type(4, true, "int"),
        "unsigned long": base_type(4, false, "int"),
        "long long": base_type(8, true, "int"),
        "unsigned long long": base_type(8, false, "int"),
    })
}

/// tcpip.sys's symbol file: its PDB id and the globals windows.netstat reads (RVAs); public
/// symbols only, as Microsoft's tcpip.pdb has no types.
pub fn tcpip(
    p: &Profile,
    pdb: &crate::record::PdbId,
    globals: &std::collections::BTreeMap<String, crate::record::Hex>,
) -> Value {
    let x64 = p.arch == Arch::X64;
    let symbols: Map<String, Value> = globals
        .iter()
        .map(|(k, v)| (k.clone(), json!({"address": v.0})))
        .collect();
    json!({
        "metadata": {
            "format": "6.2.0",
            "producer": {"name": "netcarve-synth", "version": env!("CARGO_PKG_VERSION")},
            "windows": {
                "pdb": {
                    "GUID": pdb.guid,
                    "age": pdb.age,
                    "database": pdb.name,
                    "machine_type": if x64 { 34404 } else { 332 }
                }
            }
        },
        "base_types": base_types(if x64 { 8 } else { 4 }),
        "user_types": {},
        "enums": {},
        "symbols": symbols,
    })
}
