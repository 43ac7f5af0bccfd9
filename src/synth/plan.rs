//! The plan of one image: kernel, processes, endpoints, decoys, captures and discrepancies, then
//! the output files.
use super::captures::{ApiRow, CaptureSet, FILES};
use super::containers::{self, runs_of, DumpFacts, Runs};
use super::isf::EprocessExtras;
use super::kernel::*;
use super::objects::{family_of, v4, v6, Kind, Proc, Spec, World};
use super::phys::{PhysMem, PAGE};
use super::rng::{mix, Rng};
use super::vmap::{Mode, Vmap};
use super::{Container, Discrepancy, SynthOptions, TimeFieldPlant, Truth};
use crate::error::{io_error, Error, Result};
use crate::filetime::{to_iso, TICKS_PER_SECOND, UNIX_EPOCH_TICKS};
use crate::profile::Arch;
use crate::record::{
    flag, EndpointRecord, Family, Hex, ImageFacts, NtVersion, PdbId, PhysicalSummary, Proto,
    TcpState,
};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Everything decided in memory, before the files are written.
pub struct Built<'a> {
    world: World<'a>,
    truth: Truth,
    captures: CaptureSet,
    dump: DumpFacts,
    isf: serde_json::Value,
    pdb: PdbId,
}

const SECOND: u64 = TICKS_PER_SECOND as u64;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

fn parse_dotted(v: &str) -> Option<[u16; 4]> {
    let parts: Vec<u16> = v
        .split('.')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    (parts.len() == 4).then(|| [parts[0], parts[1], parts[2], parts[3]])
}

pub fn build(o: &SynthOptions, size: u64) -> Result<Built<'_>> {
    let p = &o.profile;
    let mut rng = Rng::new(o.seed);
    let pages = size / PAGE;
    let hole = (o.container != Container::Raw).then(|| {
        let start = pages * 3 / 4;
        (start, start + (pages / 16).max(1))
    });
    let mut mem = PhysMem::new(size, rng.next_u64(), hole);
    let mode = match (p.arch, o.pae) {
        (Arch::X64, _) => Mode::X64,
        (Arch::X86, true) => Mode::Pae,
        (Arch::X86, false) => Mode::NonPae,
    };
    let build = o.build.unwrap_or_else(|| representative_build(p));
    let revision = rng.range(100, 5000) as u16;
    let nt_major = p.matches.nt_major;
    let nt_minor = p.matches.nt_minor;

    // Virtual layout: randomised kernel base, pool region, KUSER_SHARED_DATA.
    let large = mode.large();
    let (kernel_va, pool_va, kuser_va) = match mode {
        Mode::X64 => {
            let k = 0xFFFF_F800_0000_0000 + rng.range(0x10, 0x200) * large;
            let pool = if nt_major >= 10 {
                0xFFFF_B000_0000_0000 + rng.range(0, 0x4000) * large
            } else {
                0xFFFF_FA80_0000_0000 + rng.range(0, 0x400) * large
            };
            (k, pool, 0xFFFF_F780_0000_0000)
        }
        Mode::Pae => (
            0x8000_0000 + rng.range(0x10, 0x30) * large,
            0x8800_0000 + rng.range(0, 0x100) * large,
            0xFFDF_0000,
        ),
        Mode::NonPae => (
            0x8000_0000 + rng.range(4, 12) * large,
            0x8800_0000 + rng.range(0, 0x80) * 0x40_0000,
            0xFFDF_0000,
        ),
    };
    // A large page (nonpaged pool mapped with PS=1) holds the INETAF structures: referenced data
    // a reader only reaches through a large-page translation.
    let large_frames = large / PAGE;
    let large_pfn = mem
        .alloc_aligned(&mut rng, large_frames, large_frames)
        .ok_or_else(|| Error::usage("--size too small for a large page"))?;
    let large_va = match mode {
        Mode::X64 => pool_va + 0x4000_0000,
        _ => 0xB000_0000,
    };
    let selfref = if mode == Mode::X64 {
        if build < 14393 {
            0x1ED
        } else {
            let used = [
                (kernel_va >> 39) & 0x1FF,
                (pool_va >> 39) & 0x1FF,
                (large_va >> 39) & 0x1FF,
                (kuser_va >> 39) & 0x1FF,
            ];
            loop {
                let i = rng.range(0x100, 0x1FF);
                if !used.contains(&i) {
                    break i;
                }
            }
        }
    } else {
        0
    };
    let mut vm = Vmap::new(mode, &mut mem, &mut rng, selfref);
    vm.map_large(&mut mem, &mut rng, large_va, large_pfn * PAGE);
    // The kernel image on scattered 4 KiB frames.
    let mut prev = None;
    for i in 0..IMAGE_SIZE / PAGE {
        let f = mem.alloc_frame(&mut rng, prev);
        vm.map_4k(&mut mem, &mut rng, kernel_va + i * PAGE, f * PAGE);
        prev = Some(f);
    }

    // Kernel image.
    let mut guid = [0u8; 16];
    rng.fill(&mut guid);
    let age = rng.range(1, 3) as u32;
    let pdb_name = match mode {
        Mode::Pae => "ntkrpamp.pdb",
        _ => "ntkrnlmp.pdb",
    };
    let guid_s = guid_text(&guid);
    let pdb = PdbId::new(pdb_name, &guid_s, age);
    let mut text = vec![0u8; 0x1000];
    rng.fill(&mut text);
    let version = [nt_major as u16, nt_minor as u16, build as u16, revision];
    let pe = build_pe(
        &PeSpec {
            arch: p.arch,
            image_base: kernel_va,
            pdb_name: Some(pdb_name),
            guid,
            age,
            file_version: version,
            original_filename: if mode == Mode::Pae {
                "ntkrpamp.exe"
            } else {
                "ntkrnlmp.exe"
            },
            timestamp: rng.next_u32(),
        },
        &text,
    );
    vm.write(&mut mem, kernel_va, &pe);
    let head_va = kernel_va + RVA_PS_ACTIVE_PROCESS_HEAD;
    let modules_va = kernel_va + RVA_PS_LOADED_MODULE_LIST;
    let kdbg_va = kernel_va + RVA_KDBG;
    vm.write(
        &mut mem,
        kernel_va + RVA_KD_VERSION_BLOCK,
        &kd_version_block(p.arch, build, kernel_va, modules_va),
    );
    vm.write_ptr(&mut mem, modules_va, modules_va);
    vm.write_ptr(&mut mem, modules_va + mode.ptr(), modules_va);
    vm.write(
        &mut mem,
        kernel_va + RVA_OB_HEADER_COOKIE,
        &[rng.next_u32() as u8 | 1],
    );
    vm.write(
        &mut mem,
        kdbg_va,
        &kdbg(p.arch, kernel_va, modules_va, head_va),
    );

    // tcpip.sys where the profile is chosen by its version (NT 6.3).
    if let Some(rule) = &p.matches.tcpip_version {
        let v = match (&rule.min, &rule.max) {
            (Some(min), _) => parse_dotted(min),
            (None, Some(max)) => parse_dotted(max).map(|mut v| {
                v[3] = v[3].saturating_sub(1 + rng.below(500) as u16);
                v
            }),
            _ => None,
        }
        .unwrap_or([nt_major as u16, nt_minor as u16, build as u16, revision]);
        let tcpip = build_pe(
            &PeSpec {
                arch: p.arch,
                image_base: kernel_va + 0x40_0000,
                pdb_name: Some("tcpip.pdb"),
                guid,
                age: 1,
                file_version: v,
                original_filename: "tcpip.sys",
                timestamp: rng.next_u32(),
            },
            &text,
        );
        let first = mem.alloc_contiguous(&mut rng, IMAGE_SIZE / PAGE);
        mem.write(first * PAGE, &tcpip);
    }

    // Times: acquisition, boot, capture, time zone.
    let base_2023 = (1_672_531_200i128 * i128::from(SECOND as u32) + UNIX_EPOCH_TICKS) as u64;
    let acq = base_2023 + rng.below(3 * 365 * 24 * HOUR);
    let uptime = rng.range(3 * HOUR, 20 * 24 * HOUR);
    let boot = acq - uptime;
    let capture = acq - rng.range(20 * SECOND, 60 * SECOND);
    let offsets = [-480i64, -300, -240, 0, 60, 120, 330, 540];
    let utc_offset = *rng.pick(&offsets);
    let bias_100ns = -utc_offset * 60 * SECOND as i64;

    // KUSER_SHARED_DATA.
    let kuser_pfn = mem.alloc_frame(&mut rng, None);
    vm.map_4k(&mut mem, &mut rng, kuser_va, kuser_pfn * PAGE);
    mem.write(
        kuser_pfn * PAGE,
        &kuser_page(p, uptime, acq, bias_100ns, build),
    );

    // x64 low stub (PROCESSOR_START_BLOCK) at PA 0x1000, as firmware boots leave it.
    if mode == Mode::X64 {
        let mut stub = vec![0u8; 0x100];
        le64(&mut stub, 0, 0x0000_0001_0006_00E9);
        le64(&mut stub, 0x70, kernel_va + RVA_TEXT + 0x10);
        le64(&mut stub, 0xA0, vm.dtb);
        mem.page_mut(1, false);
        mem.write(PAGE, &stub);
    }

    let kernel_dtb = vm.dtb;
    let mut world = World::new(p, mem, vm, rng.fork(1), pool_va);
    world.large_va = large_va;
    world.setup_inetaf();
    let mut rng = rng.fork(2);

    // Processes.
    let ptr = p.arch.pointer_size();
    let e = &p.nt.eprocess;
    let field_end = [
        &e.directory_table_base,
        &e.unique_process_id,
        &e.active_process_links,
        &e.create_time,
        &e.exit_time,
        &e.image_file_name,
        &e.inherited_from_unique_process_id,
    ]
    .iter()
    .filter_map(|f| f.off())
    .max()
    .unwrap_or(0)
        + 0x20;
    let eproc_size = e.size.map(|s| s.get()).unwrap_or(0).max(field_end);
    let eproc_size = eproc_size.div_ceil(8) * 8;
    let extras = EprocessExtras {
        size: eproc_size + 0x40,
        thread_list_head: eproc_size,
        active_threads: eproc_size + 2 * ptr,
        object_table: eproc_size + 2 * ptr + 8,
        session: eproc_size + 3 * ptr + 8,
        peb: eproc_size + 4 * ptr + 8,
    };
    let names = [
        "System",
        "smss.exe",
        "csrss.exe",
        "wininit.exe",
        "services.exe",
        "lsass.exe",
        "svchost.exe",
        "svchost.exe",
        "svchost.exe",
        "spoolsv.exe",
        "explorer.exe",
        "chrome.exe",
        "evil.exe",
        "OneDrive.exe",
        "updater.exe",
    ];
    // A process that ran and exited before the capture; its EPROCESS lingers while referenced.
    let exited = names.len() - 1;
    let mut pids = vec![4u32];
    while pids.len() < names.len() {
        let pid = (rng.range(60, 2500) * 4) as u32;
        if !pids.contains(&pid) {
            pids.push(pid);
        }
    }
    let early = uptime / 20;
    let mut plist: Vec<(u32, &str, u64, u64)> = vec![];
    for (i, name) in names.iter().enumerate() {
        let t = match i {
            0 => boot + rng.range(SECOND / 10, 2 * SECOND),
            1..=9 => boot + rng.range(2 * SECOND, 3 * MINUTE),
            _ => boot + rng.range(3 * MINUTE, early),
        };
        let exit = if i == exited {
            t + rng.range(MINUTE, (capture - t).saturating_sub(MINUTE).max(2 * MINUTE))
        } else {
            0
        };
        plist.push((pids[i], name, t, exit));
    }
    let procs = world.processes(&plist, head_va, kernel_dtb, &extras);

    // Endpoints.
    let t_after = |rng: &mut Rng, lo: u64| {
        lo + rng.range(
            SECOND,
            (capture - lo).saturating_sub(2 * SECOND).max(2 * SECOND),
        )
    };
    let host4 = v4(
        10,
        rng.range(0, 250) as u8,
        rng.range(0, 250) as u8,
        rng.range(2, 250) as u8,
    );
    let host6 = v6([
        0x2001,
        0xdb8,
        rng.below(0xffff) as u16,
        0x10,
        rng.below(0xffff) as u16,
        rng.below(0xffff) as u16,
        rng.below(0xffff) as u16,
        0x5,
    ]);
    let link6 = v6([
        0xfe80,
        0,
        0,
        0,
        rng.below(0xffff) as u16,
        rng.below(0xffff) as u16,
        rng.below(0xffff) as u16,
        rng.below(0xffff) as u16,
    ]);
    let any6 = v6([0; 8]);
    let remotes4 = [
        v4(93, 184, 216, 34),
        v4(142, 250, 185, 78),
        v4(52, 96, 165, 12),
        v4(185, 199, 108, 153),
        v4(20, 190, 151, 9),
    ];
    let remotes6 = [
        v6([0x2606, 0x4700, 0, 0, 0, 0, 0x6810, 0x85e5]),
        v6([0x2a00, 0x1450, 0x4001, 0x82b, 0, 0, 0, 0x200e]),
    ];
    let c2 = v4(45, 137, rng.range(1, 250) as u8, rng.range(1, 250) as u8);
    let listen_t = boot + early;
    let mut specs: Vec<Spec> = vec![];
    let mut eph = rng.range(49700, 60000) as u16;
    let mut next_port = |rng: &mut Rng| {
        eph = eph.wrapping_add(1 + rng.below(40) as u16);
        if eph < 49152 {
            eph = 49152;
        }
        eph
    };
    let listener = |fam: Family, local: Option<IpAddr>, port: u16, owner: usize, t: u64| Spec {
        kind: Kind::TcpL,
        family: fam,
        local,
        lport: port,
        remote: None,
        state: None,
        owner: Some(owner),
        create: t,
        freed: false,
    };
    let v4f = Family::Ipv4;
    let v6f = Family::Ipv6;
    for (fam, local, port, owner) in [
        (v4f, None, 135, 6),
        (v6f, None, 135, 6),
        (v4f, Some(host4), 139, 0),
        (v4f, None, 445, 0),
        (v6f, None, 445, 0),
        (v4f, None, 49664, 3),
        (v6f, None, 49664, 3),
        (v4f, None, 49665, 5),
        (v6f, Some(any6), 49665, 5),
        (v6f, Some(host6), 49666, 9),
        (v4f, None, 4444, 12),
    ] {
        let t = if owner == 12 {
            t_after(&mut rng, listen_t)
        } else {
            listen_t + rng.range(SECOND, 10 * MINUTE)
        };
        specs.push(listener(fam, local, port, owner, t));
    }
    for (fam, local, port, owner) in [
        (v4f, None, 5353, 7),
        (v6f, None, 5353, 7),
        (v4f, Some(host4), 137, 0),
        (v4f, Some(host4), 138, 0),
        (v6f, Some(link6), 546, 8),
        (v4f, None, 123, 7),
        (v6f, None, 5353, 11),
        (v4f, None, 53, 12),
    ] {
        let t = if owner >= 11 {
            t_after(&mut rng, listen_t)
        } else {
            listen_t + rng.range(SECOND, 20 * MINUTE)
        };
        specs.push(Spec {
            kind: Kind::UdpA,
            family: fam,
            local,
            lport: port,
            remote: None,
            state: None,
            owner: Some(owner),
            create: t,
            freed: false,
        });
    }
    let states = [
        TcpState::Closed,
        TcpState::SynSent,
        TcpState::SynRcvd,
        TcpState::Established,
        TcpState::FinWait1,
        TcpState::FinWait2,
        TcpState::CloseWait,
        TcpState::Closing,
        TcpState::LastAck,
        TcpState::TimeWait,
        TcpState::DeleteTcb,
        TcpState::Established,
        TcpState::Established,
        TcpState::Established,
    ];
    let owners = [11usize, 6, 10, 13, 11, 7, 11, 13];
    for (i, st) in states.iter().enumerate() {
        let ipv6 = i % 4 == 3;
        let (local, remote) = if ipv6 {
            (host6, *rng.pick(&remotes6))
        } else {
            (host4, *rng.pick(&remotes4))
        };
        let port = next_port(&mut rng);
        specs.push(Spec {
            kind: Kind::TcpE,
            family: family_of(&local),
            local: Some(local),
            lport: port,
            remote: Some((remote, if i % 5 == 4 { 80 } else { 443 })),
            state: Some(*st),
            owner: Some(owners[i % owners.len()]),
            create: t_after(&mut rng, listen_t),
            freed: false,
        });
    }
    for _ in 0..o.extra_endpoints {
        let port = next_port(&mut rng);
        specs.push(Spec {
            kind: Kind::TcpE,
            family: Family::Ipv4,
            local: Some(host4),
            lport: port,
            remote: Some((*rng.pick(&remotes4), 443)),
            state: Some(TcpState::Established),
            owner: Some(*rng.pick(&[6usize, 7, 10, 11, 13])),
            create: t_after(&mut rng, listen_t),
            freed: false,
        });
    }
    // The planted differences with the captures.
    let hidden = specs.len();
    let evil_port = next_port(&mut rng);
    specs.push(Spec {
        kind: Kind::TcpE,
        family: Family::Ipv4,
        local: Some(host4),
        lport: evil_port,
        remote: Some((c2, 443)),
        state: Some(TcpState::Established),
        owner: Some(12),
        create: t_after(&mut rng, listen_t),
        freed: false,
    });
    // Stale: a connection whose owner has exited (the CLOSED and DELETE_TCB objects above are the
    // other kind); the API no longer lists it, and compare must not call it hidden.
    let port = next_port(&mut rng);
    specs.push(Spec {
        kind: Kind::TcpE,
        family: Family::Ipv4,
        local: Some(host4),
        lport: port,
        remote: Some((remotes4[2], 443)),
        state: Some(TcpState::Established),
        owner: Some(exited),
        create: t_after(&mut rng, listen_t),
        freed: false,
    });
    // Created between capture and acquisition: informational for compare, which can only tell
    // when the object carries a time (a UDP endpoint where TcpE has no time field).
    let port = next_port(&mut rng);
    let late_kind = if p.tcpip.tcp_endpoint.create_time.off().is_some() {
        Kind::TcpE
    } else {
        Kind::UdpA
    };
    specs.push(Spec {
        kind: late_kind,
        family: Family::Ipv4,
        local: Some(host4),
        lport: port,
        remote: (late_kind == Kind::TcpE).then_some((remotes4[0], 443)),
        state: (late_kind == Kind::TcpE).then_some(TcpState::Established),
        owner: Some(11),
        create: capture
            + rng.range(
                SECOND,
                (acq - capture).saturating_sub(SECOND).max(2 * SECOND),
            ),
        freed: false,
    });
    if p.tcpip.time_wait.is_some() {
        for (local, remote) in [(host4, remotes4[1]), (host6, remotes6[0])] {
            let port = next_port(&mut rng);
            specs.push(Spec {
                kind: Kind::TcTW,
                family: family_of(&local),
                local: Some(local),
                lport: port,
                remote: Some((remote, 443)),
                state: Some(TcpState::TimeWait),
                owner: None,
                create: t_after(&mut rng, listen_t),
                freed: false,
            });
        }
    }
    // The record flags scan raises on live objects: an owner pointer that leads to no process
    // (`no_owner`), a creation time of zero (`zero_time`: its API row shows zero too, the
    // `kernel_time_zero` cause), and one before boot (`time_out_of_range`: a clock set back).
    let port = next_port(&mut rng);
    specs.push(Spec {
        kind: Kind::TcpE,
        family: Family::Ipv4,
        local: Some(host4),
        lport: port,
        remote: Some((remotes4[4], 443)),
        state: Some(TcpState::CloseWait),
        owner: None,
        create: t_after(&mut rng, listen_t),
        freed: false,
    });
    let port = next_port(&mut rng);
    specs.push(Spec {
        kind: Kind::UdpA,
        family: Family::Ipv4,
        local: Some(host4),
        lport: port,
        remote: None,
        state: None,
        owner: Some(9),
        create: 0,
        freed: false,
    });
    specs.push(listener(
        Family::Ipv4,
        None,
        5985,
        5,
        boot.saturating_sub(rng.range(2 * 24 * HOUR, 40 * 24 * HOUR)),
    ));
    for kind in [Kind::TcpE, Kind::UdpA] {
        let port = next_port(&mut rng);
        specs.push(Spec {
            kind,
            family: Family::Ipv4,
            local: Some(host4),
            lport: port,
            remote: (kind == Kind::TcpE).then_some((remotes4[2], 443)),
            state: (kind == Kind::TcpE).then_some(TcpState::Established),
            owner: Some(if kind == Kind::TcpE { 11 } else { 7 }),
            create: t_after(&mut rng, listen_t),
            freed: true,
        });
    }

    if let TimeFieldPlant::Zero(kind) = o.time_field {
        for s in specs.iter_mut().filter(|s| s.kind == Kind::of(kind)) {
            s.create = 0;
        }
    }
    // Plant: the first IPv4 connection's address bytes sit on a transition-PTE page.
    let transition_at = specs
        .iter()
        .position(|s| s.kind == Kind::TcpE && s.family == Family::Ipv4);
    let mut planted: Vec<EndpointRecord> = vec![];
    for (i, s) in specs.iter().enumerate() {
        let mut rec = world.plant(s, &procs, Some(i) == transition_at);
        // The reader's window: boot (SystemTime − InterruptTime) to acquisition, inclusive.
        if rec
            .create_time_raw
            .is_some_and(|t| t != 0 && (t < boot || t > acq))
        {
            rec.flags.push(flag::TIME_OUT_OF_RANGE.to_string());
            rec.flags.sort();
        }
        // The scan finds a moved time field by its census and flags what it decodes with it.
        if matches!(o.time_field, TimeFieldPlant::Moved(k) if Kind::of(k) == s.kind) {
            rec.flags.push(flag::CALIBRATED.to_string());
            rec.flags.sort();
        }
        planted.push(rec);
    }
    let sample = specs
        .iter()
        .find(|s| s.kind == Kind::TcpE && !s.freed)
        .cloned()
        .unwrap_or_else(|| specs[0].clone());
    let sample_listener = specs[0].clone();
    let mut decoys = world.decoys(&procs, &sample, &sample_listener);
    decoys.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));

    // Captures as taken at `capture`.
    let mut rows: Vec<(usize, ApiRow)> = vec![];
    let stale = |s: &Spec| {
        matches!(s.state, Some(TcpState::Closed | TcpState::DeleteTcb)) || s.owner == Some(exited)
    };
    for (i, s) in specs.iter().enumerate() {
        if s.freed || i == hidden || s.create > capture || stale(s) {
            continue;
        }
        rows.push((i, api_row(s, &planted[i], &procs)));
    }
    let closed_port = next_port(&mut rng);
    let closed = ApiRow {
        proto: Proto::Tcp,
        family: Family::Ipv4,
        local: host4.to_string(),
        lport: closed_port,
        remote: Some((remotes4[3].to_string(), 443)),
        state: Some(TcpState::Established),
        pid: procs[11].pid,
        process: Some(procs[11].name.clone()),
        time: t_after(&mut rng, listen_t),
    };
    let mut discrepancies = vec![];
    // PID mismatch on the first listener; time off by a few seconds on the UDP :123 row.
    let pid_row = rows.iter().position(|(i, _)| *i == 0);
    if let Some(r) = pid_row {
        rows[r].1.pid = procs[7].pid;
        rows[r].1.process = Some(procs[7].name.clone());
    }
    let time_idx = specs
        .iter()
        .position(|s| s.kind == Kind::UdpA && s.lport == 123);
    let time_row = rows.iter().position(|(i, _)| Some(*i) == time_idx);
    let skew = 3 * SECOND + rng.range(1, SECOND);
    if let Some(r) = time_row {
        rows[r].1.time += skew;
    }
    let mut all_rows: Vec<ApiRow> = rows.iter().map(|(_, r)| r.clone()).collect();
    all_rows.push(closed.clone());
    discrepancies.push(Discrepancy {
        class: "hidden_from_api".into(),
        memory: Some(planted[hidden].clone()),
        capture: None,
        note: "evil.exe connection present in memory, created before the capture, absent from every capture".into(),
        cause: None,
    });
    for (i, s) in specs.iter().enumerate() {
        if stale(s) && !s.freed {
            discrepancies.push(Discrepancy {
                class: "stale".into(),
                memory: Some(planted[i].clone()),
                capture: None,
                note: if s.owner == Some(exited) {
                    "connection of a process that has exited: stale, absent from the API".into()
                } else {
                    "connection that has ended (CLOSED or DELETE_TCB): stale, absent from the API"
                        .into()
                },
                cause: None,
            });
        }
    }
    discrepancies.push(Discrepancy {
        class: "not_in_memory".into(),
        memory: None,
        capture: Some(closed.capture_row(all_rows.len() as u64)),
        note: "connection closed between capture and acquisition: in the captures, not in memory"
            .into(),
        cause: None,
    });
    if let Some(r) = pid_row {
        discrepancies.push(Discrepancy {
            class: "pid_mismatch".into(),
            memory: Some(planted[0].clone()),
            capture: Some(all_rows[r].capture_row(r as u64 + 1)),
            note: format!(
                "captures name PID {} where memory has {}",
                procs[7].pid, procs[6].pid
            ),
            cause: None,
        });
    }
    if let (Some(r), Some(i)) = (time_row, time_idx) {
        discrepancies.push(Discrepancy {
            class: "time_mismatch".into(),
            memory: Some(planted[i].clone()),
            capture: Some(all_rows[r].capture_row(r as u64 + 1)),
            note: format!(
                "capture time {:.7} s after the kernel's",
                skew as f64 / SECOND as f64
            ),
            cause: None,
        });
    }
    // Every zero API time is a discrepancy; its cause is what the kernel object holds.
    for (k, (i, row)) in rows.iter().enumerate() {
        if row.time != 0 {
            continue;
        }
        let (cause, note) = if planted[*i].has_flag(flag::NO_TIME_FIELD) {
            (
                "no_time_field",
                "the API reports 1601-01-01 for an object whose kernel layout has no creation time",
            )
        } else {
            (
                "kernel_time_zero",
                "the API reports 1601-01-01, faithfully: the kernel object's creation time is zero",
            )
        };
        discrepancies.push(Discrepancy {
            class: "api_zero_time".into(),
            memory: Some(planted[*i].clone()),
            capture: Some(row.capture_row(k as u64 + 1)),
            note: note.into(),
            cause: Some(cause.into()),
        });
    }

    let captures = CaptureSet {
        host: format!("WIN-{:08X}", mix(o.seed) as u32),
        collected: capture,
        utc_offset_minutes: utc_offset,
        rows: all_rows,
    };
    planted.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));

    let dump = DumpFacts {
        x64: mode == Mode::X64,
        pae: mode == Mode::Pae,
        dtb: kernel_dtb,
        build,
        ps_active_process_head: head_va,
        ps_loaded_module_list: modules_va,
        kdbg: kdbg_va,
        system_time: acq,
        uptime,
    };
    let isf = super::isf::build(p, pdb_name, &guid_s, age, build, &extras);
    let image = ImageFacts {
        file: Some(o.container.file_name().to_string()),
        container: o.container.kind().to_string(),
        arch: p.arch.name().to_string(),
        paging: mode.name().to_string(),
        dtb: Hex(kernel_dtb),
        dtb_source: "truth".into(),
        kernel_base: Some(Hex(kernel_va)),
        kernel_pdb: Some(pdb.clone()),
        nt: NtVersion {
            major: nt_major,
            minor: nt_minor,
            build,
        },
        system_time: to_iso(acq),
        system_time_raw: Some(acq),
        boot_time: to_iso(boot),
        boot_time_raw: Some(boot),
        timezone_bias_minutes: Some(-utc_offset),
        physical: PhysicalSummary::default(),
        sha256: None,
        stored_hashes: None,
        hibernation: None,
        warnings: vec![],
    };
    let mut capture_files = BTreeMap::new();
    for (fmt, file) in FILES {
        capture_files.insert(fmt.to_string(), file.to_string());
    }
    let truth = Truth {
        image,
        profile: p.name.clone(),
        endpoints: planted,
        decoys,
        discrepancies,
        captures: capture_files,
    };
    Ok(Built {
        world,
        truth,
        captures,
        dump,
        isf,
        pdb,
    })
}

/// The release a profile's range is best known by: the service pack that most machines ran
/// (Windows 7 SP1 = 7601, Vista SP2 = 6002) where the range holds one, else its first build.
pub fn representative_build(p: &crate::profile::Profile) -> u32 {
    let m = &p.matches;
    let service_pack = match (m.nt_major, m.nt_minor) {
        (6, 1) => Some(7601),
        (6, 0) => Some(6002),
        _ => None,
    };
    service_pack
        .filter(|b| (m.build_min..=m.build_max).contains(b))
        .unwrap_or(m.build_min)
}

/// The API's view of one planted endpoint.
fn api_row(s: &Spec, rec: &EndpointRecord, procs: &[Proc]) -> ApiRow {
    let time_wait = rec.state == Some(TcpState::TimeWait);
    let owner = if time_wait {
        None
    } else {
        s.owner.map(|i| &procs[i])
    };
    let remote = match s.kind {
        Kind::TcpL => Some((s.family.wildcard().to_string(), 0)),
        Kind::UdpA => None,
        _ => s.remote.map(|(a, p)| (a.to_string(), p)),
    };
    // Connections whose kernel object has no creation time come back as zero (the 1601 rows).
    let time = rec.create_time_raw.unwrap_or(0);
    ApiRow {
        proto: rec.proto,
        family: rec.family,
        local: rec.local_addr.clone(),
        lport: rec.local_port,
        remote,
        state: rec.state,
        pid: owner.map_or(0, |p| p.pid),
        process: owner.map(|p| p.name.clone()),
        time,
    }
}

/// Physical ranges the container stores.
fn present_runs(c: Container, mem: &PhysMem, seed: u64) -> Runs {
    match (c, mem.hole) {
        (Container::Raw, _) | (_, None) => vec![(0, mem.pages)],
        (Container::Bitmap, _) => {
            // A bitmap dump keeps the pages that matter plus a sample of the rest.
            let mut pfns: Vec<u64> = mem.structured_pfns().collect();
            pfns.extend((0..mem.pages).filter(|&p| mix(seed ^ p.wrapping_mul(0x9E37)) & 31 == 0));
            pfns.retain(|&p| !mem.in_hole(p));
            pfns.sort_unstable();
            pfns.dedup();
            runs_of(&pfns)
        }
        (_, Some((s, e))) => vec![(0, s), (e, mem.pages - e)],
    }
}

pub fn write_outputs(o: &SynthOptions, b: Built) -> Result<Truth> {
    let Built {
        world,
        mut truth,
        captures,
        dump,
        isf,
        pdb,
    } = b;
    let mem = &world.mem;
    let runs = present_runs(o.container, mem, o.seed);
    let img = o.out.join(o.container.file_name());
    match o.container {
        Container::Raw => containers::write_raw(&img, mem, &runs)?,
        Container::Crashdump => containers::write_crashdump(&img, mem, &runs, &dump)?,
        Container::Bitmap => {
            let full = present_runs(Container::Crashdump, mem, o.seed);
            containers::write_bitmap(&img, mem, &full, &runs, &dump)?
        }
        Container::Elf => containers::write_elf(&img, mem, &runs, dump.x64)?,
        Container::Lime => containers::write_lime(&img, mem, &runs)?,
        Container::Vmware => {
            containers::write_vmware(&img, &o.out.join("memory.vmss"), mem, &runs)?
        }
        Container::Hiberfil => {
            let w =
                super::hiberfil::write(&img, mem, &runs, dump.x64, dump.build, dump.system_time)?;
            truth.image.hibernation = Some(crate::record::HibernationFacts {
                format: if w.windows8 {
                    "windows8+"
                } else {
                    "windows7/vista"
                }
                .to_string(),
                signature: w.signature.to_string(),
                header_size: crate::record::Hex(u64::from(w.header_size)),
                hibernated: crate::filetime::to_iso(dump.system_time),
                hibernated_raw: dump.system_time,
                fast_startup: w.fast_startup,
                pages: w.pages,
                compression_sets: w.sets,
            });
        }
    }
    truth.image.physical = PhysicalSummary {
        size: runs.iter().map(|r| r.1 * PAGE).sum(),
        ranges: runs.len() as u64,
        end: runs.last().map_or(0, |r| (r.0 + r.1) * PAGE),
    };
    for (name, bytes) in captures.render() {
        let path = o.out.join(name);
        std::fs::write(&path, bytes).map_err(|e| io_error(&path, &e))?;
    }
    let path = o.out.join("truth.json");
    let mut text =
        serde_json::to_string_pretty(&truth).map_err(|e| Error::file(&path, e.to_string()))?;
    text.push('\n');
    std::fs::write(&path, text).map_err(|e| io_error(&path, &e))?;
    if let Some(dir) = &o.isf_dir {
        let d = dir.join("windows").join(&pdb.name);
        std::fs::create_dir_all(&d).map_err(|e| io_error(&d, &e))?;
        let path = d.join(format!("{}.json", pdb.guid_age()));
        let text = serde_json::to_string(&isf).map_err(|e| Error::file(&path, e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| io_error(&path, &e))?;
    }
    Ok(truth)
}
