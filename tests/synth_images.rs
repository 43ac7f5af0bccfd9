//! `synth` output checked by small parsers written here (not netcarve's reader): every container's
//! structure, the page tables (own walker), pool headers, kernel image, KUSER_SHARED_DATA, and
//! truth.json in the shared record types. Also determinism and every profile x every container.
mod support;

use netcarve::profile::{builtin, Arch, Profile};
use netcarve::record::{flag, FoundBy, PoolStatus};
use netcarve::synth::{synthesize, Container, SynthOptions, Truth};
use std::path::{Path, PathBuf};

fn work(name: &str) -> PathBuf {
    support::scratch(&format!("synth_images/{name}"))
}

fn synth(p: &Profile, c: Container, seed: u64, pae: bool, out: &Path) -> Truth {
    synthesize(&SynthOptions {
        pae,
        extra_endpoints: 2,
        isf_dir: Some(out.join("isf")),
        ..support::synth_options(p, c, seed, out)
    })
    .unwrap_or_else(|e| panic!("{} {:?}: {e}", p.name, c))
}

fn u16le(b: &[u8], o: usize) -> u64 {
    u16::from_le_bytes([b[o], b[o + 1]]) as u64
}
fn u32le(b: &[u8], o: usize) -> u64 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as u64
}
fn u64le(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// Physical memory as (phys, len, file offset) ranges over the file bytes.
struct Phys {
    data: Vec<u8>,
    runs: Vec<(u64, u64, u64)>,
}

impl Phys {
    fn read(&self, pa: u64, n: usize) -> Option<&[u8]> {
        let r = self
            .runs
            .iter()
            .find(|r| pa >= r.0 && pa + n as u64 <= r.0 + r.1)?;
        let o = (r.2 + pa - r.0) as usize;
        self.data.get(o..o + n)
    }
    fn q(&self, pa: u64) -> Option<u64> {
        self.read(pa, 8).map(|b| u64le(b, 0))
    }
    fn d(&self, pa: u64) -> Option<u64> {
        self.read(pa, 4).map(|b| u32le(b, 0))
    }
    fn present(&self) -> u64 {
        self.runs.iter().map(|r| r.1).sum()
    }
}

/// Independent container parsers.
fn parse(dir: &Path, c: Container, truth: &Truth) -> Phys {
    let data = std::fs::read(dir.join(c.file_name())).unwrap();
    let x64 = truth.image.arch == "x64";
    let runs = match c {
        Container::Raw => vec![(0, data.len() as u64, 0)],
        // Compressed: not in Container::ALL; tests/container_hiberfil.rs checks it through the
        // Xpress decoders, which dissect.util checks in turn.
        Container::Hiberfil => panic!("hiberfil.sys has no flat page runs to parse here"),
        Container::Crashdump | Container::Bitmap => {
            assert_eq!(&data[0..4], b"PAGE");
            assert_eq!(&data[4..8], if x64 { b"DU64" } else { b"DUMP" });
            assert_eq!(
                u32le(&data, 0xC),
                truth.image.nt.build.unwrap() as u64,
                "MinorVersion = build"
            );
            let (dtb, dump_type, hsize, stime) = if x64 {
                (
                    u64le(&data, 0x10),
                    u32le(&data, 0xF98),
                    0x2000u64,
                    u64le(&data, 0xFA8),
                )
            } else {
                (
                    u32le(&data, 0x10),
                    u32le(&data, 0xF88),
                    0x1000u64,
                    u64le(&data, 0xFC0),
                )
            };
            assert_eq!(dtb, truth.image.dtb.0);
            assert_eq!(Some(stime), truth.image.system_time_raw);
            if !x64 {
                assert_eq!(data[0x5C] == 1, truth.image.paging == "pae", "PaeEnabled");
            }
            if c == Container::Crashdump {
                assert_eq!(dump_type, 1);
                let (n, base) = if x64 {
                    (u32le(&data, 0x88), 0x98usize)
                } else {
                    (u32le(&data, 0x64), 0x6Cusize)
                };
                let mut off = hsize;
                let mut runs = vec![];
                for i in 0..n as usize {
                    let (bp, pc) = if x64 {
                        (u64le(&data, base + i * 16), u64le(&data, base + i * 16 + 8))
                    } else {
                        (u32le(&data, base + i * 8), u32le(&data, base + i * 8 + 4))
                    };
                    runs.push((bp * 0x1000, pc * 0x1000, off));
                    off += pc * 0x1000;
                }
                assert_eq!(off, data.len() as u64, "runs cover the file");
                runs
            } else {
                assert_eq!(dump_type, 5);
                let s = hsize as usize;
                assert_eq!(&data[s..s + 4], b"FDMP");
                let first = u64le(&data, s + 0x20);
                let total = u64le(&data, s + 0x28);
                let bits = u64le(&data, s + 0x30);
                let mut runs = vec![];
                let mut off = first;
                for pfn in 0..bits {
                    if data[s + 0x38 + (pfn / 8) as usize] >> (pfn % 8) & 1 == 1 {
                        runs.push((pfn * 0x1000, 0x1000, off));
                        off += 0x1000;
                    }
                }
                assert_eq!(runs.len() as u64, total);
                assert_eq!(off, data.len() as u64);
                runs
            }
        }
        Container::Elf => {
            assert_eq!(&data[0..4], b"\x7fELF");
            assert_eq!(u16le(&data, 16), 4, "ET_CORE");
            let phoff = u64le(&data, 32) as usize;
            let phnum = u16le(&data, 56) as usize;
            (0..phnum)
                .filter(|i| u32le(&data, phoff + i * 56) == 1)
                .map(|i| {
                    let p = phoff + i * 56;
                    assert_eq!(
                        u64le(&data, p + 32),
                        u64le(&data, p + 40),
                        "filesz == memsz"
                    );
                    (
                        u64le(&data, p + 24),
                        u64le(&data, p + 32),
                        u64le(&data, p + 8),
                    )
                })
                .collect()
        }
        Container::Lime => {
            let mut runs = vec![];
            let mut o = 0usize;
            while o < data.len() {
                assert_eq!(u32le(&data, o), 0x4C69_4D45, "LiME magic at {o:#x}");
                let s = u64le(&data, o + 8);
                let e = u64le(&data, o + 16);
                runs.push((s, e - s + 1, o as u64 + 32));
                o += 32 + (e - s + 1) as usize;
            }
            runs
        }
        Container::Vmware => {
            let m = std::fs::read(dir.join("memory.vmss")).unwrap();
            assert_eq!(u32le(&m, 0), 0xBED2_BED2);
            assert_eq!(&m[12..18], b"memory");
            let mut o = u64le(&m, 12 + 64) as usize;
            let mut tags = std::collections::BTreeMap::new();
            loop {
                let (flags, nlen) = (m[o], m[o + 1] as usize);
                if flags == 0 && nlen == 0 {
                    break;
                }
                let name = String::from_utf8(m[o + 2..o + 2 + nlen].to_vec()).unwrap();
                let nidx = (flags >> 6) as usize;
                let idx: Vec<u64> = (0..nidx).map(|i| u32le(&m, o + 2 + nlen + i * 4)).collect();
                let val = u32le(&m, o + 2 + nlen + nidx * 4);
                tags.insert((name, idx), val);
                o += 2 + nlen + nidx * 4 + (flags & 0x3F) as usize;
            }
            let n = tags[&("regionsCount".to_string(), vec![])];
            (0..n)
                .map(|i| {
                    let g = |k: &str| tags[&(k.to_string(), vec![i])] * 0x1000;
                    (g("regionPPN"), g("regionSize"), g("regionPageNum"))
                })
                .collect()
        }
    };
    Phys { data, runs }
}

/// Own page walker: x64, PAE and non-PAE, large pages and transition PTEs.
fn translate(m: &Phys, paging: &str, dtb: u64, va: u64) -> Option<u64> {
    let valid = |e: u64| e & 1 == 1 || (e & 0x800 != 0 && e & 0x400 == 0);
    let mask = 0x000F_FFFF_FFFF_F000u64;
    match paging {
        "x64" => {
            let mut table = dtb;
            for (level, shift) in [39u64, 30, 21, 12].iter().enumerate() {
                let e = m.q(table + ((va >> shift) & 0x1FF) * 8)?;
                if level < 3 && e & 1 == 0 {
                    return None;
                }
                if level == 3 && !valid(e) {
                    return None;
                }
                if (level == 1 || level == 2) && e & 0x80 != 0 {
                    let size = 1u64 << shift;
                    return Some((e & mask & !(size - 1)) | (va & (size - 1)));
                }
                table = e & mask;
            }
            Some(table | (va & 0xFFF))
        }
        "pae" => {
            let pdpte = m.q(dtb + ((va >> 30) & 3) * 8)?;
            let pde = m.q((pdpte & mask) + ((va >> 21) & 0x1FF) * 8)?;
            if pde & 1 == 0 {
                return None;
            }
            if pde & 0x80 != 0 {
                return Some((pde & mask & !0x1F_FFFF) | (va & 0x1F_FFFF));
            }
            let pte = m.q((pde & mask) + ((va >> 12) & 0x1FF) * 8)?;
            valid(pte).then_some((pte & mask) | (va & 0xFFF))
        }
        _ => {
            let pde = m.d(dtb + ((va >> 22) & 0x3FF) * 4)?;
            if pde & 1 == 0 {
                return None;
            }
            if pde & 0x80 != 0 {
                return Some((pde & 0xFFC0_0000) | (va & 0x3F_FFFF));
            }
            let pte = m.d((pde & 0xFFFF_F000) + ((va >> 12) & 0x3FF) * 4)?;
            valid(pte).then_some((pte & 0xFFFF_F000) | (va & 0xFFF))
        }
    }
}

fn check_image(p: &Profile, c: Container, dir: &Path, truth: &Truth) {
    let m = parse(dir, c, truth);
    assert_eq!(
        m.present(),
        truth.image.physical.size,
        "{} {:?}: present bytes",
        p.name,
        c
    );
    let paging = truth.image.paging.as_str();
    let dtb = truth.image.dtb.0;
    // Kernel image: MZ, PE, and a CodeView record naming the PDB in truth.
    let kb = truth.image.kernel_base.unwrap().0;
    let kpa = translate(&m, paging, dtb, kb).expect("kernel base maps");
    let head = m.read(kpa, 0x1000).expect("kernel header page present");
    assert_eq!(&head[0..2], b"MZ");
    let lfanew = u32le(head, 0x3C) as usize;
    assert_eq!(&head[lfanew..lfanew + 4], b"PE\0\0");
    let rdata = m
        .read(translate(&m, paging, dtb, kb + 0x2000).unwrap(), 0x1000)
        .unwrap();
    let rsds = rdata.windows(4).position(|w| w == b"RSDS").expect("RSDS");
    let pdb = truth.image.kernel_pdb.as_ref().unwrap();
    assert!(rdata[rsds + 24..].starts_with(pdb.name.as_bytes()));
    // KUSER_SHARED_DATA.
    let kuser = if p.arch == Arch::X64 {
        0xFFFF_F780_0000_0000
    } else {
        0xFFDF_0000
    };
    let kupa = translate(&m, paging, dtb, kuser).expect("KUSER maps");
    let major_off = p.nt.kuser_shared_data.nt_major_version.off().unwrap();
    assert_eq!(m.d(kupa + major_off), Some(p.matches.nt_major as u64));
    let st_off = p.nt.kuser_shared_data.system_time.off().unwrap();
    assert_eq!(
        m.q(kupa + st_off).map(|v| v & 0xFFFF_FFFF),
        truth.image.system_time_raw.map(|v| v & 0xFFFF_FFFF)
    );
    // Endpoints: header where truth says, VA translates to it, header rules hold.
    let unit = if p.arch == Arch::X64 { 16 } else { 8 };
    for e in &truth.endpoints {
        let pa = e.physical_offset.0;
        let h = m
            .read(pa, unit as usize)
            .unwrap_or_else(|| panic!("{} {:?}: header at {pa:#x} absent", p.name, c));
        // The tag-overwritten object (tcpip's tables hold it) carries another allocation's tag.
        if e.has_flag(flag::NO_POOL_TAG) {
            assert_ne!(&h[4..8], e.tag.as_bytes());
        } else {
            assert_eq!(&h[4..8], e.tag.as_bytes());
        }
        assert_eq!(pa % unit, 0);
        let (block, pool_type) = if unit == 16 {
            (h[2] as u64 * 16, h[3] as u64)
        } else {
            ((u16le(h, 2) & 0x1FF) * 8, u16le(h, 2) >> 9)
        };
        assert!((pa & 0xFFF) + block <= 0x1000, "block crosses its page");
        match e.pool_status {
            PoolStatus::Freed => assert_eq!(pool_type, 0),
            PoolStatus::Allocated => assert!(pool_type > 0 && pool_type % 2 == 0),
        }
        if let Some(va) = e.virtual_address {
            assert_eq!(
                translate(&m, paging, dtb, va.0),
                Some(pa),
                "{} {:?}: VA {va} -> PA",
                p.name,
                c
            );
        }
    }
    for d in &truth.decoys {
        assert!(d.reason.is_some());
        let h = m.read(d.physical_offset.0, 8).expect("decoy present");
        assert_eq!(&h[4..8], d.tag.as_bytes());
    }
}

#[test]
fn every_profile_in_every_container() {
    let mut n = 0;
    for p in builtin() {
        for c in Container::ALL {
            let dir = work(&format!("all-{}-{}", p.name, c.kind()));
            let truth = synth(p, c, 3, true, &dir);
            // truth.json round-trips through the shared record types.
            let text = std::fs::read_to_string(dir.join("truth.json")).unwrap();
            let parsed: Truth = serde_json::from_str(&text).unwrap();
            assert_eq!(parsed, truth);
            assert!(truth.endpoints.len() >= 30 && truth.decoys.len() >= 8);
            check_image(p, c, &dir, &truth);
            for file in truth.captures.values() {
                assert!(dir.join(file).exists(), "capture {file}");
            }
            let _ = std::fs::remove_dir_all(&dir);
            n += 1;
        }
        if p.arch == Arch::X86 {
            let dir = work(&format!("nonpae-{}", p.name));
            let truth = synth(p, Container::Raw, 3, false, &dir);
            assert_eq!(truth.image.paging, "nonpae");
            check_image(p, Container::Raw, &dir, &truth);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    assert!(n >= 12, "only {n} images");
}

#[test]
fn same_arguments_same_bytes() {
    for (name, c, pae) in [
        ("win10-19041-x64", Container::Bitmap, true),
        ("win7-x86", Container::Lime, false),
    ] {
        let Some(p) = netcarve::profile::by_name(name) else {
            continue;
        };
        let a = work(&format!("det-a-{name}"));
        let b = work(&format!("det-b-{name}"));
        synth(p, c, 11, pae, &a);
        synth(p, c, 11, pae, &b);
        let mut files: Vec<_> = std::fs::read_dir(&a)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        files.sort();
        assert!(files.len() >= 9);
        for f in files {
            let (x, y) = (a.join(&f), b.join(&f));
            if x.is_dir() {
                continue;
            }
            assert!(
                std::fs::read(&x).unwrap() == std::fs::read(&y).unwrap(),
                "{f:?} differs"
            );
        }
        let c2 = work(&format!("det-c-{name}"));
        synth(p, c, 12, pae, &c2);
        assert_ne!(
            std::fs::read(a.join("truth.json")).unwrap(),
            std::fs::read(c2.join("truth.json")).unwrap()
        );
    }
}

#[test]
fn captures_have_the_producers_shapes() {
    let p = netcarve::profile::by_name("win7-x64")
        .or_else(|| builtin().first())
        .unwrap();
    let dir = work("captures");
    let truth = synth(p, Container::Bitmap, 5, true, &dir);
    let ps51 = std::fs::read(dir.join(&truth.captures["ps51"])).unwrap();
    assert_eq!(&ps51[..2], &[0xFF, 0xFE], "UTF-16LE BOM");
    let text: String = String::from_utf16(
        &ps51[2..]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(text.contains("\"Timestamp\":  \"\\/Date("), "5.1 date form");
    let ps7 = std::fs::read_to_string(dir.join(&truth.captures["ps7"])).unwrap();
    let v: serde_json::Value = serde_json::from_str(&ps7).unwrap();
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["Timestamp"].as_str().unwrap().contains('T')));
    let velo = std::fs::read_to_string(dir.join(&truth.captures["velociraptor"])).unwrap();
    for line in velo.lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(r["Laddr.IP"].is_string() && r["Timestamp"].as_str().unwrap().ends_with('Z'));
    }
    let netstat = std::fs::read_to_string(dir.join(&truth.captures["netstat"])).unwrap();
    assert!(netstat.contains("  Proto  Local Address"));
    let classes: Vec<&str> = truth
        .discrepancies
        .iter()
        .map(|d| d.class.as_str())
        .collect();
    for c in [
        "hidden_from_api",
        "not_in_memory",
        "pid_mismatch",
        "time_mismatch",
    ] {
        assert!(classes.contains(&c), "{c} planted");
    }
    // Windows 7: TcpE has no time field, so API connection rows carry zero (the 1601 behaviour).
    if p.tcpip.tcp_endpoint.create_time.off().is_none() {
        assert!(classes.contains(&"api_zero_time"));
        let nc: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(&truth.captures["netcarve"])).unwrap(),
        )
        .unwrap();
        let tcp = nc["tcp"].as_array().unwrap();
        assert!(tcp
            .iter()
            .any(|r| r["state"] == 5 && r["create_time_raw"] == 0));
        assert!(tcp
            .iter()
            .any(|r| r["state"] == 2 && r["create_time_raw"].as_u64().unwrap() > 0));
        // UDP rows carry real times, but for the one whose kernel time is zero as well.
        let zero_udp = nc["udp"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["create_time_raw"].as_u64().unwrap() == 0)
            .count();
        assert_eq!(zero_udp, 1);
    }
    // The flags scan raises on live objects are planted, each on an allocated endpoint, and the
    // zero kernel time is an `api_zero_time` discrepancy with cause `kernel_time_zero`.
    for f in ["no_owner", "zero_time", "time_out_of_range"] {
        let with: Vec<_> = truth
            .endpoints
            .iter()
            .filter(|e| e.has_flag(f) && e.pool_status == PoolStatus::Allocated)
            .collect();
        assert_eq!(with.len(), 1, "{f} planted once");
        if f == "no_owner" {
            assert!(with[0].pid.is_none() && with[0].process.is_none());
        }
    }
    assert!(truth
        .discrepancies
        .iter()
        .any(|d| d.class == "api_zero_time"
            && d.cause.as_deref() == Some("kernel_time_zero")
            && d.memory.as_ref().is_some_and(|m| m.has_flag("zero_time"))));
}

/// The kernel reports the profile's representative release unless `--build` names another one
/// inside the range; a build outside it is refused with exit code 2.
#[test]
fn representative_and_chosen_builds() {
    use netcarve::synth::plan::representative_build;
    let rep = |name: &str| representative_build(&netcarve::profile::resolve(name).unwrap());
    assert_eq!(rep("win7-x64"), 7601);
    assert_eq!(rep("win7-x86"), 7601);
    assert_eq!(rep("vista-sp12-x64"), 6002);
    assert_eq!(rep("vista-x64"), 6000);
    assert_eq!(rep("win10-19041-x64"), 19041);
    assert_eq!(rep("win81-x64"), 9600);

    let dir = work("build-option");
    let args = |build| ["--profile", "win7-x64", "--size", "16M", "--build", build];
    support::synth(&dir, &args("7600"));
    let truth: Truth = serde_json::from_value(support::read_json(&dir.join("truth.json"))).unwrap();
    assert_eq!(truth.image.nt.build, Some(7600));
    let d = dir.to_str().unwrap();
    let mut bad = vec!["synth"];
    bad.extend(args("9200"));
    bad.extend(["--out", d]);
    let bad = support::netcarve(&bad);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--build 9200") && err.contains("7600-8400"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The tables as the image holds them, walked here from the globals (own walker, per
/// docs/internals.md "tcpip's tables"): each table's chains as physical offsets of the records'
/// pool headers, in truth's order and naming.
fn walk_tables(p: &Profile, m: &Phys, truth: &Truth) -> Vec<(String, Vec<Vec<u64>>)> {
    let t = p.tcpip.tables.as_ref().expect("tables");
    let tcpip = truth.tcpip.as_ref().expect("truth.tcpip");
    let x64 = p.arch == Arch::X64;
    let (ps, unit) = if x64 { (8, 16) } else { (4, 8) };
    let (paging, dtb) = (truth.image.paging.as_str(), truth.image.dtb.0);
    let at = |va: u64| translate(m, paging, dtb, va).unwrap_or_else(|| panic!("{va:#x} maps"));
    let ptr = |va: u64| {
        let pa = at(va);
        if x64 {
            m.q(pa).unwrap()
        } else {
            m.d(pa).unwrap()
        }
    };
    let u32_at = |va: u64| m.d(at(va)).unwrap();
    let header_pa = |body: u64| at(body - unit);
    let off = |f: &netcarve::profile::Field| f.off().unwrap();
    let base = tcpip.base.0;
    let g = |name: &str| base + tcpip.globals[name].0;
    let mut out = vec![];
    let parts = ptr(g("PartitionTable"));
    for i in 0..u32_at(g("PartitionCount")) {
        let part = parts + i * t.partition_size.get();
        for (field, link, name) in [
            (
                &t.partition_endpoints,
                off(&t.tcp_endpoint_link),
                "endpoints",
            ),
            (
                &t.partition_second_table,
                t.time_wait_link.as_ref().map_or(0, off),
                "second",
            ),
        ] {
            let table = ptr(part + off(field));
            assert_eq!(u32_at(table + 8), 128, "TableSize");
            let dir = ptr(table + 0x20);
            let mut chains = vec![];
            for b in 0..128 {
                let head = dir + b * 2 * ps;
                let mut chain = vec![];
                let mut e = ptr(head);
                while e != head {
                    assert_eq!(ptr(ptr(e) + ps), e, "Blink of the next entry");
                    chain.push(header_pa(e - link));
                    e = ptr(e);
                    assert!(chain.len() < 100, "chain loops");
                }
                if !chain.is_empty() {
                    chains.push(chain);
                }
            }
            let entries: usize = chains.iter().map(Vec::len).sum();
            assert_eq!(u32_at(table + 0x14) as usize, entries, "NumEntries");
            out.push((format!("partition {i} {name}"), chains));
        }
    }
    for (proto, next) in [
        ("tcp", off(&t.tcp_listener_next)),
        ("udp", off(&t.udp_endpoint_next)),
    ] {
        let pool = match tcpip.globals.get(&format!("{}PortPool", proto_name(proto))) {
            Some(_) => ptr(g(&format!("{}PortPool", proto_name(proto)))),
            None => {
                let set = ptr(g(&format!("{}CompartmentSet", proto_name(proto))));
                let compartment = ptr(set + off(&t.compartment_set_compartment));
                let protocol = ptr(compartment + off(&t.compartment_protocol));
                ptr(protocol + off(&t.protocol_port_pool))
            }
        };
        let bitmap = pool + off(&t.port_pool_bitmap);
        assert_eq!(u32_at(bitmap), 0x1_0000, "SizeOfBitMap");
        let buffer = ptr(bitmap + ps);
        let mut chains = vec![];
        for port in 0..0x1_0000u64 {
            let byte = m.read(at(buffer + port / 8), 1).unwrap()[0];
            if byte & (1 << (port % 8)) == 0 {
                continue;
            }
            let inpa = ptr(pool + off(&t.port_pool_assignments) + (port >> 8) * ps);
            let list = ptr(inpa + off(&t.port_assignment_list));
            let entry = list + (port & 0xFF) * t.port_entry_size.get() + off(&t.port_entry_pointer);
            let mut e = ptr(entry) & !3;
            let mut chain = vec![];
            while e != 0 {
                chain.push(header_pa(e - next));
                e = ptr(e) & !3;
                assert!(chain.len() < 100, "port chain loops");
            }
            chains.push(chain);
        }
        out.push((format!("{proto} port pool"), chains));
    }
    out
}

fn proto_name(p: &str) -> &'static str {
    if p == "tcp" {
        "Tcp"
    } else {
        "Udp"
    }
}

/// Profiles with `tcpip.tables`: the tables in the image hold exactly truth's chains, and
/// those are exactly the endpoints truth calls linked; the DKOM connection and the
/// tag-overwritten one are where the contract puts them, in truth and in the captures.
#[test]
fn tables_hold_exactly_the_linked_objects() {
    let mut n = 0;
    for p in builtin() {
        let dir = work(&format!("tables-{}", p.name));
        let truth = synth(p, Container::Raw, 5, true, &dir);
        let Some(tcpip) = &truth.tcpip else {
            assert!(p.tcpip.tables.is_none(), "{}: no truth.tcpip", p.name);
            assert!(truth
                .endpoints
                .iter()
                .all(|e| e.linked.is_none() && e.found_by == [FoundBy::Pool]));
            let _ = std::fs::remove_dir_all(&dir);
            continue;
        };
        let m = parse(&dir, Container::Raw, &truth);
        let walked = walk_tables(p, &m, &truth);
        let planted: Vec<(String, Vec<Vec<u64>>)> = tcpip
            .tables
            .iter()
            .map(|t| {
                let chains = t.chains.iter().map(|c| c.iter().map(|h| h.0).collect());
                (t.table.clone(), chains.collect())
            })
            .collect();
        assert_eq!(
            walked, planted,
            "{}: the image's tables are truth's",
            p.name
        );
        let chained: std::collections::BTreeSet<u64> = planted
            .iter()
            .flat_map(|t| t.1.iter().flatten().copied())
            .collect();
        let mut chain_count = 0;
        for e in &truth.endpoints {
            let in_table = chained.contains(&e.physical_offset.0);
            // Only symbols let a reader prove it walked every table.
            let linked = match (in_table, tcpip.symbols.as_str()) {
                (true, _) => Some(true),
                (false, "builtin") => Some(false),
                (false, _) => None,
            };
            assert_eq!(e.linked, linked, "{} {e:?}", p.name);
            let found_by = match (in_table, e.has_flag(flag::NO_POOL_TAG)) {
                (true, true) => vec![FoundBy::Table],
                (true, false) => vec![FoundBy::Pool, FoundBy::Table],
                (false, _) => vec![FoundBy::Pool],
            };
            assert_eq!(e.found_by, found_by, "{} {e:?}", p.name);
            chain_count += usize::from(in_table);
        }
        assert_eq!(
            chain_count,
            chained.len(),
            "{}: each object in one chain",
            p.name
        );
        assert!(
            planted.iter().any(|t| t.1.iter().any(|c| c.len() > 1)),
            "{}: some bucket or port holds a chain",
            p.name
        );
        let tagless: Vec<_> = truth
            .endpoints
            .iter()
            .filter(|e| e.has_flag(flag::NO_POOL_TAG))
            .collect();
        assert_eq!(tagless.len(), 1, "{}", p.name);
        assert_eq!(
            tagless[0].state,
            Some(netcarve::record::TcpState::Established)
        );
        // The DKOM connection is `unlinked` where symbols prove the walk complete; without them
        // (the pool-tag route) it is only known to be hidden from the API.
        let builtin = tcpip.symbols == "builtin";
        let dkom_class = if builtin {
            "unlinked"
        } else {
            "hidden_from_api"
        };
        let unlinked: Vec<_> = truth
            .discrepancies
            .iter()
            .filter(|d| d.class == dkom_class && d.note.contains("DKOM") == builtin)
            .filter(|d| {
                d.memory
                    .as_ref()
                    .is_some_and(|m| m.found_by == [FoundBy::Pool] && m.linked != Some(true))
            })
            .collect();
        assert_eq!(unlinked.len(), 1, "{}", p.name);
        let u = unlinked[0].memory.as_ref().unwrap();
        assert_eq!(u.linked, builtin.then_some(false));
        assert_eq!(u.state, Some(netcarve::record::TcpState::Established));
        assert!(
            !u.has_flag(flag::OWNER_EXITED) && !u.has_flag(flag::NO_OWNER),
            "a live owner: {:?}",
            u.flags
        );
        // The API lists the tag-overwritten connection, never the unlinked one.
        let capture = std::fs::read_to_string(dir.join("capture-netcarve.json")).unwrap();
        assert!(!capture.contains(&format!("\"local_port\": {},", u.local_port)));
        assert!(capture.contains(&format!("\"local_port\": {},", tagless[0].local_port)));
        // The built-in symbols apply where they have the build, unless told not to.
        let builtin_build = ["win10-17763-x64", "win10-19041-x64", "win10-20348-x64"];
        let want = if builtin_build.contains(&p.name.as_str()) {
            "builtin"
        } else {
            "none"
        };
        assert_eq!(tcpip.symbols, want, "{}", p.name);
        assert_eq!(tcpip.pdb.name, "tcpip.pdb");
        if want == "builtin" {
            let table = std::fs::read_to_string("symbols/tcpip.json").unwrap();
            assert!(table.contains(&tcpip.pdb.guid_age()), "{}", p.name);
            let no = work(&format!("tables-nosym-{}", p.name));
            let t = synthesize(&SynthOptions {
                tcpip_symbols: false,
                hide_build: false,
                ..support::synth_options(p, Container::Raw, 5, &no)
            })
            .unwrap();
            let t = t.tcpip.unwrap();
            assert_eq!(t.symbols, "none");
            assert!(!table.contains(&t.pdb.guid_age()));
            let _ = std::fs::remove_dir_all(&no);
        }
        // Volatility finds tcpip's symbol file by the module's RSDS: `tcpip.pdb/<GUID>-<age>.json`.
        let isf = dir
            .join("isf/windows/tcpip.pdb")
            .join(format!("{}.json", tcpip.pdb.guid_age()));
        let isf: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(isf).unwrap()).unwrap();
        for (name, rva) in &tcpip.globals {
            assert_eq!(isf["symbols"][name]["address"], rva.0, "{}", p.name);
        }
        let _ = std::fs::remove_dir_all(&dir);
        n += 1;
    }
    assert_eq!(n, 16, "profiles with tables");
}
