//! The plan of one image, step by step: kernel and page tables, processes, endpoint specs,
//! planting, decoys, captures, discrepancies and truth; then the output files.
use super::captures::{ApiRow, CaptureSet, FILES};
use super::containers::{self, runs_of, DumpFacts, Runs};
use super::isf::EprocessExtras;
use super::kernel::*;
use super::objects::{Kind, Proc, Spec, World};
use super::phys::{PhysMem, PAGE};
use super::rng::{mix, Rng};
use super::scenario::{
    Clock, Scenario, Start, CHROME, MINUTE, PROCESSES, SECOND, SVCHOST_NETSVC, SVCHOST_RPCSS,
    UPDATER,
};
use super::vmap::{Mode, Vmap};
use super::{Container, Discrepancy, SynthOptions, TimeFieldPlant, Truth};
use crate::error::{io_error, Error, Result};
use crate::filetime::to_iso;
use crate::profile::{Arch, Profile};
use crate::record::{
    flag, EndpointRecord, Family, FoundBy, Hex, ImageFacts, NtVersion, PdbId, PhysicalSummary,
    Proto, TcpState,
};
use std::collections::BTreeMap;

/// Everything decided in memory, before the files are written.
pub struct Built<'a> {
    world: World<'a>,
    truth: Truth,
    captures: CaptureSet,
    dump: DumpFacts,
    isf: serde_json::Value,
    pdb: PdbId,
    /// tcpip.sys's symbol file (Volatility's `tcpip.pdb/<GUID>-<age>.json`), with its id.
    tcpip_isf: Option<(PdbId, serde_json::Value)>,
}

pub fn build(o: &SynthOptions, size: u64) -> Result<Built<'_>> {
    let p = &o.profile;
    let mut rng = Rng::new(o.seed);
    let mut mem = physical_memory(o, size, &mut rng);
    let version = kernel_version(o, &mut rng);
    let (mut vm, space) = page_tables(p, o.pae, version.build, &mut mem, &mut rng)?;
    let kernel = write_kernel(p, &space, &version, &mut mem, &mut vm, &mut rng);
    let clock = Clock::draw(&mut rng);
    write_kuser_shared_data(
        p,
        &space,
        &clock,
        version.reported_build(),
        &mut mem,
        &mut vm,
        &mut rng,
    );
    write_low_stub(&space, vm.dtb, &mut mem);

    let dtb = vm.dtb;
    let mut world = World::new(p, mem, vm, rng.fork(1), space.pool_va);
    world.large_va = space.large_va;
    world.setup_inetaf();
    let mut rng = rng.fork(2);
    let extras = eprocess_extras(p);
    let procs = spawn_processes(&mut world, &mut rng, &clock, kernel.head_va, dtb, &extras);

    let mut sc = Scenario::new(rng, clock);
    let (mut specs, roles) = endpoint_specs(&mut sc, o);
    zero_time_field(&mut specs, o.time_field);

    let mut planted = plant(&mut world, &specs, &procs, o.time_field, &clock);
    let tcpip = o.profile.tcpip.tables.as_ref().map(|t| {
        plant_tcpip(
            &mut world,
            o,
            t,
            &space,
            &kernel,
            &version,
            &specs,
            &roles,
            &mut planted,
        )
    });
    let decoys = plant_decoys(&mut world, &specs, &procs);
    let api = take_captures(&mut sc, &specs, &planted, &procs, &roles);
    let discrepancies = discrepancies(&specs, &planted, &procs, &roles, &api);
    let captures = CaptureSet {
        host: format!("WIN-{:08X}", mix(o.seed) as u32),
        collected: clock.capture,
        utc_offset_minutes: clock.utc_offset_minutes,
        rows: api.rows,
    };
    planted.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));

    let dump = dump_facts(&space, &kernel, version.build, &clock, dtb);
    let isf = super::isf::build(
        p,
        kernel.pdb_name,
        &kernel.pdb.guid,
        kernel.pdb.age,
        version.build,
        &extras,
    );
    let tcpip_isf = tcpip
        .as_ref()
        .map(|t| (t.pdb.clone(), super::isf::tcpip(p, &t.pdb, &t.globals)));
    let mut truth = truth(
        o,
        &space,
        &kernel,
        &version,
        &clock,
        dtb,
        planted,
        decoys,
        discrepancies,
    );
    truth.tcpip = tcpip;
    Ok(Built {
        world,
        truth,
        captures,
        dump,
        isf,
        pdb: kernel.pdb,
        tcpip_isf,
    })
}

/// The physical memory, with a hole where the container stores none (all but raw).
fn physical_memory(o: &SynthOptions, size: u64, rng: &mut Rng) -> PhysMem {
    let pages = size / PAGE;
    let hole = (o.container != Container::Raw).then(|| {
        let start = pages * 3 / 4;
        (start, start + (pages / 16).max(1))
    });
    PhysMem::new(size, rng.next_u64(), hole)
}

/// What the kernel says it is: NT version, build and a drawn revision.
struct KernelVersion {
    major: u32,
    minor: u32,
    build: u32,
    revision: u16,
    /// `--hide-build`: no source in the image gives the build.
    hidden: bool,
}

impl KernelVersion {
    /// The build the kernel's variables and headers show: 0 under `--hide-build`.
    fn reported_build(&self) -> u32 {
        if self.hidden {
            0
        } else {
            self.build
        }
    }

    fn file_version(&self) -> [u16; 4] {
        [
            self.major as u16,
            self.minor as u16,
            self.build as u16,
            self.revision,
        ]
    }
}

fn kernel_version(o: &SynthOptions, rng: &mut Rng) -> KernelVersion {
    let m = &o.profile.matches;
    KernelVersion {
        major: m.nt_major,
        minor: m.nt_minor,
        build: o.build.unwrap_or_else(|| representative_build(&o.profile)),
        revision: rng.range(100, 5000) as u16,
        hidden: o.hide_build,
    }
}

/// The kernel's virtual layout.
struct AddressSpace {
    mode: Mode,
    kernel_va: u64,
    pool_va: u64,
    kuser_va: u64,
    /// A large page (nonpaged pool mapped with PS=1) holds the INETAF structures: referenced
    /// data a reader only reaches through a large-page translation.
    large_va: u64,
}

/// Page tables with a randomised kernel base and pool, the large page, and the kernel image's
/// scattered 4 KiB frames.
fn page_tables(
    p: &Profile,
    pae: bool,
    build: u32,
    mem: &mut PhysMem,
    rng: &mut Rng,
) -> Result<(Vmap, AddressSpace)> {
    let mode = match (p.arch, pae) {
        (Arch::X64, _) => Mode::X64,
        (Arch::X86, true) => Mode::Pae,
        (Arch::X86, false) => Mode::NonPae,
    };
    let large = mode.large();
    let (kernel_va, pool_va, kuser_va) = match mode {
        Mode::X64 => {
            let k = 0xFFFF_F800_0000_0000 + rng.range(0x10, 0x200) * large;
            let pool = if p.matches.nt_major >= 10 {
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
    let large_frames = large / PAGE;
    let large_pfn = mem
        .alloc_aligned(rng, large_frames, large_frames)
        .ok_or_else(|| Error::usage("--size too small for a large page"))?;
    let large_va = match mode {
        Mode::X64 => pool_va + 0x4000_0000,
        _ => 0xB000_0000,
    };
    let space = AddressSpace {
        mode,
        kernel_va,
        pool_va,
        kuser_va,
        large_va,
    };
    let self_ref = self_ref_index(&space, build, rng);
    let mut vm = Vmap::new(mode, mem, rng, self_ref);
    vm.map_large(mem, rng, large_va, large_pfn * PAGE);
    let mut prev = None;
    for i in 0..IMAGE_SIZE / PAGE {
        let f = mem.alloc_frame(rng, prev);
        vm.map_4k(mem, rng, kernel_va + i * PAGE, f * PAGE);
        prev = Some(f);
    }
    Ok((vm, space))
}

/// The x64 PML4 self-reference slot: fixed before Windows 10 1607, random (clear of the slots in
/// use) since; x86 has none.
fn self_ref_index(space: &AddressSpace, build: u32, rng: &mut Rng) -> u64 {
    if space.mode != Mode::X64 {
        return 0;
    }
    if build < 14393 {
        return 0x1ED;
    }
    let used = [
        space.kernel_va,
        space.pool_va,
        space.large_va,
        space.kuser_va,
    ]
    .map(|va| (va >> 39) & 0x1FF);
    loop {
        let i = rng.range(0x100, 0x1FF);
        if !used.contains(&i) {
            return i;
        }
    }
}

/// Where the kernel image put the structures readers look up, and its PDB identity.
struct KernelImage {
    pdb_name: &'static str,
    pdb: PdbId,
    head_va: u64,
    modules_va: u64,
    kdbg_va: u64,
}

/// The kernel's PE image, KdVersionBlock, KDBG and module list; and tcpip.sys where the profile
/// is chosen by its version (NT 6.3).
fn write_kernel(
    p: &Profile,
    space: &AddressSpace,
    version: &KernelVersion,
    mem: &mut PhysMem,
    vm: &mut Vmap,
    rng: &mut Rng,
) -> KernelImage {
    let kernel_va = space.kernel_va;
    let mut guid = [0u8; 16];
    rng.fill(&mut guid);
    let age = rng.range(1, 3) as u32;
    let pae = space.mode == Mode::Pae;
    let pdb_name = if pae { "ntkrpamp.pdb" } else { "ntkrnlmp.pdb" };
    let pdb = PdbId::new(pdb_name, &guid_text(&guid), age);
    let mut text = vec![0u8; 0x1000];
    rng.fill(&mut text);
    let pe = build_pe(
        &PeSpec {
            arch: p.arch,
            image_base: kernel_va,
            pdb_name: Some(pdb_name),
            guid,
            age,
            file_version: version.file_version(),
            version_resource: !version.hidden,
            original_filename: if pae { "ntkrpamp.exe" } else { "ntkrnlmp.exe" },
            timestamp: rng.next_u32(),
            data_size: 0x1000,
            exports: &[
                ("NtBuildLab", RVA_NT_BUILD_LAB),
                ("NtBuildNumber", RVA_NT_BUILD_NUMBER),
            ],
        },
        &text,
    );
    vm.write(mem, kernel_va, &pe);
    vm.write(
        mem,
        kernel_va + RVA_NT_BUILD_NUMBER,
        &(0xF000_0000 | version.reported_build()).to_le_bytes(),
    );
    let lab_va = kernel_va + RVA_NT_BUILD_LAB;
    let lab = format!(
        "{}.{}.{}fre.synth_rtm.260101-0000\0",
        version.build,
        version.revision,
        if p.arch == Arch::X64 { "amd64" } else { "x86" }
    );
    if !version.hidden {
        vm.write(mem, lab_va, lab.as_bytes());
    }
    // Windows 8+ x64 encode the KDBG block; up to Windows 7 it points to the build lab in plaintext.
    let plaintext_lab = (version.major, version.minor) <= (6, 1);
    let head_va = kernel_va + RVA_PS_ACTIVE_PROCESS_HEAD;
    let modules_va = kernel_va + RVA_PS_LOADED_MODULE_LIST;
    let kdbg_va = kernel_va + RVA_KDBG;
    vm.write(
        mem,
        kernel_va + RVA_KD_VERSION_BLOCK,
        &kd_version_block(p.arch, version.reported_build(), kernel_va, modules_va),
    );
    vm.write_ptr(mem, modules_va, modules_va);
    vm.write_ptr(mem, modules_va + space.mode.ptr(), modules_va);
    vm.write(
        mem,
        kernel_va + RVA_OB_HEADER_COOKIE,
        &[rng.next_u32() as u8 | 1],
    );
    vm.write(
        mem,
        kdbg_va,
        &kdbg(
            p.arch,
            kernel_va,
            modules_va,
            head_va,
            plaintext_lab.then_some(lab_va),
        ),
    );

    // With tables, tcpip.sys is written mapped, beside them (`plant_tcpip`).
    if p.tcpip.tables.is_some() {
        return KernelImage {
            pdb_name,
            pdb,
            head_va,
            modules_va,
            kdbg_va,
        };
    }
    if let Some(v) = tcpip_version_rule(p, version, rng) {
        let tcpip = build_pe(
            &PeSpec {
                arch: p.arch,
                image_base: kernel_va + 0x40_0000,
                pdb_name: Some("tcpip.pdb"),
                guid,
                age: 1,
                file_version: v,
                version_resource: !version.hidden,
                original_filename: "tcpip.sys",
                timestamp: rng.next_u32(),
                data_size: 0x1000,
                exports: &[],
            },
            &text,
        );
        let first = mem.alloc_contiguous(rng, IMAGE_SIZE / PAGE);
        mem.write(first * PAGE, &tcpip);
    }
    KernelImage {
        pdb_name,
        pdb,
        head_va,
        modules_va,
        kdbg_va,
    }
}

/// The tcpip.sys FileVersion an NT 6.3 profile's version rule asks for (`None`: no rule).
fn tcpip_version_rule(p: &Profile, version: &KernelVersion, rng: &mut Rng) -> Option<[u16; 4]> {
    let rule = p.matches.tcpip_version.as_ref()?;
    let v = match (&rule.min, &rule.max) {
        (Some(min), _) => super::kernel::parse_dotted(min),
        (None, Some(max)) => super::kernel::parse_dotted(max).map(|mut v| {
            v[3] = v[3].saturating_sub(1 + rng.below(500) as u16);
            v
        }),
        _ => None,
    };
    Some(v.unwrap_or(version.file_version()))
}

/// tcpip.sys mapped with its globals, the loaded-module list, and the tables holding every live
/// endpoint; the records learn how each is found (`found_by`, `linked`), and the
/// tag-overwritten one loses its tag.
#[allow(clippy::too_many_arguments)]
fn plant_tcpip(
    world: &mut World,
    o: &SynthOptions,
    t: &crate::profile::TablesLayout,
    space: &AddressSpace,
    kernel: &KernelImage,
    version: &KernelVersion,
    specs: &[Spec],
    roles: &Roles,
    planted: &mut [EndpointRecord],
) -> super::TcpipTruth {
    use super::tcpip;
    let p = &o.profile;
    let mut rng = world.rng.fork(3);
    let rule = tcpip_version_rule(p, version, &mut rng);
    let mut id = tcpip::identity(p, version.build, o.tcpip_symbols, rule, &mut rng);
    id.version_resource = !version.hidden;
    let image = tcpip::write_image(world, space.kernel_va + tcpip::TCPIP_OFFSET, &id);
    tcpip::module_list(world, kernel.modules_va, space.kernel_va, &image);
    let mut linked = vec![];
    for (i, (s, rec)) in specs.iter().zip(planted.iter_mut()).enumerate() {
        let live = !s.freed && !is_stale(s) && Some(i) != roles.unlinked;
        // Only symbols prove the walk saw every table; the pool-tag route leaves absence unknown.
        rec.linked = if live || id.builtin { Some(live) } else { None };
        if live {
            rec.found_by = vec![FoundBy::Pool, FoundBy::Table];
            let hdr = rec.virtual_address.expect("planted objects are mapped").0;
            linked.push(tcpip::Linked {
                kind: s.kind,
                body: hdr + world.unit,
                lport: s.lport,
                pa: rec.physical_offset.0,
            });
        }
    }
    if let Some(i) = roles.tag_overwritten {
        // Another allocation's tag over the object's: the carve no longer sees it, the walk does.
        let hdr = planted[i].virtual_address.expect("mapped").0;
        let tag = *rng.pick(&[*b"File", *b"Irp ", *b"MmCa", *b"Toke"]);
        world.vm.write(&mut world.mem, hdr + 4, &tag);
        let rec = &mut planted[i];
        rec.found_by = vec![FoundBy::Table];
        rec.tag = String::from_utf8_lossy(&world.tag(specs[i].kind)).into_owned();
        rec.flags.push(flag::NO_POOL_TAG.to_string());
        rec.flags.sort();
    }
    let tables = tcpip::plant_tables(world, t, image.base, &id.globals, &linked);
    tcpip::truth(&image, &id, tables)
}

fn write_kuser_shared_data(
    p: &Profile,
    space: &AddressSpace,
    clock: &Clock,
    build: u32,
    mem: &mut PhysMem,
    vm: &mut Vmap,
    rng: &mut Rng,
) {
    let bias_100ns = -clock.utc_offset_minutes * 60 * SECOND as i64;
    let pfn = mem.alloc_frame(rng, None);
    vm.map_4k(mem, rng, space.kuser_va, pfn * PAGE);
    mem.write(
        pfn * PAGE,
        &kuser_page(p, clock.uptime, clock.acquired, bias_100ns, build),
    );
}

/// The x64 low stub (PROCESSOR_START_BLOCK) at PA 0x1000, as firmware boots leave it.
fn write_low_stub(space: &AddressSpace, dtb: u64, mem: &mut PhysMem) {
    if space.mode != Mode::X64 {
        return;
    }
    let mut stub = vec![0u8; 0x100];
    le64(&mut stub, 0, 0x0000_0001_0006_00E9);
    le64(&mut stub, 0x70, space.kernel_va + RVA_TEXT + 0x10);
    le64(&mut stub, 0xA0, dtb);
    mem.page_mut(1, false);
    mem.write(PAGE, &stub);
}

/// The `_EPROCESS` size the objects take (every written field fits, rounded to 8) and where the
/// ISF's extra fields go, past it.
fn eprocess_extras(p: &Profile) -> EprocessExtras {
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
    EprocessExtras {
        size: eproc_size + 0x40,
        thread_list_head: eproc_size,
        active_threads: eproc_size + 2 * ptr,
        object_table: eproc_size + 2 * ptr + 8,
        session: eproc_size + 3 * ptr + 8,
        peb: eproc_size + 4 * ptr + 8,
    }
}

/// `PROCESSES` with drawn PIDs (System is 4) and start (and exit) times, written and linked.
fn spawn_processes(
    world: &mut World,
    rng: &mut Rng,
    clock: &Clock,
    head_va: u64,
    dtb: u64,
    extras: &EprocessExtras,
) -> Vec<Proc> {
    let mut pids = vec![4u32];
    while pids.len() < PROCESSES.len() {
        let pid = (rng.range(60, 2500) * 4) as u32;
        if !pids.contains(&pid) {
            pids.push(pid);
        }
    }
    let (boot, capture) = (clock.boot, clock.capture);
    let mut list: Vec<(u32, &str, u64, u64)> = vec![];
    for (row, pid) in PROCESSES.iter().zip(pids) {
        let t = match row.start {
            Start::Kernel => boot + rng.range(SECOND / 10, 2 * SECOND),
            Start::Boot => boot + rng.range(2 * SECOND, 3 * MINUTE),
            Start::Logon => boot + rng.range(3 * MINUTE, clock.early()),
        };
        let exit = if row.exits {
            t + rng.range(MINUTE, (capture - t).saturating_sub(MINUTE).max(2 * MINUTE))
        } else {
            0
        };
        list.push((pid, row.name, t, exit));
    }
    world.processes(&list, head_va, dtb, extras)
}

/// Specs with a part in the discrepancies, by index.
struct Roles {
    /// The connection hidden from the API (linked where there are tables: a hooked API).
    hidden: usize,
    /// Profiles with tables: the live connection unlinked from them (DKOM).
    unlinked: Option<usize>,
    /// Profiles with tables: the linked object whose pool tag is overwritten.
    tag_overwritten: Option<usize>,
}

/// Every endpoint spec, group by group in the order of their draws; and the roles.
fn endpoint_specs(sc: &mut Scenario, o: &SynthOptions) -> (Vec<Spec>, Roles) {
    let mut specs = sc.listeners();
    specs.extend(sc.udp_endpoints());
    specs.extend(sc.connections(o.extra_endpoints));
    let hidden = specs.len();
    specs.push(sc.hidden_connection());
    specs.push(sc.stale_connection());
    specs.push(sc.late_endpoint(&o.profile));
    specs.extend(sc.time_wait(&o.profile));
    specs.extend(sc.flag_cases());
    specs.extend(sc.freed());
    let mut roles = Roles {
        hidden,
        unlinked: None,
        tag_overwritten: None,
    };
    // Drawn last, so that profiles without tables keep every earlier draw.
    if o.profile.tcpip.tables.is_some() {
        roles.unlinked = Some(specs.len());
        specs.push(sc.unlinked_connection());
        roles.tag_overwritten = Some(specs.len());
        specs.push(sc.tag_overwritten());
    }
    (specs, roles)
}

/// `--zero-time-field KIND`: every KIND object's creation time is zero.
fn zero_time_field(specs: &mut [Spec], plant: TimeFieldPlant) {
    if let TimeFieldPlant::Zero(kind) = plant {
        for s in specs.iter_mut().filter(|s| s.kind == Kind::of(kind)) {
            s.create = 0;
        }
    }
}

/// Writes every spec; returns the records a correct reader produces.
fn plant(
    world: &mut World,
    specs: &[Spec],
    procs: &[Proc],
    time_field: TimeFieldPlant,
    clock: &Clock,
) -> Vec<EndpointRecord> {
    // The first IPv4 connection's address bytes sit on a transition-PTE page.
    let transition_at = specs
        .iter()
        .position(|s| s.kind == Kind::TcpE && s.family == Family::Ipv4);
    let mut planted = vec![];
    for (i, s) in specs.iter().enumerate() {
        let mut rec = world.plant(s, procs, Some(i) == transition_at);
        // The reader's window: boot (SystemTime − InterruptTime) to acquisition, inclusive.
        if rec
            .create_time_raw
            .is_some_and(|t| t != 0 && (t < clock.boot || t > clock.acquired))
        {
            rec.flags.push(flag::TIME_OUT_OF_RANGE.to_string());
            rec.flags.sort();
        }
        // The scan finds a moved time field by its census and flags what it decodes with it.
        if matches!(time_field, TimeFieldPlant::Moved(k) if Kind::of(k) == s.kind) {
            rec.flags.push(flag::CALIBRATED.to_string());
            rec.flags.sort();
        }
        planted.push(rec);
    }
    planted
}

/// Decoys modelled on the first live connection and the first listener, sorted.
fn plant_decoys(world: &mut World, specs: &[Spec], procs: &[Proc]) -> Vec<EndpointRecord> {
    let sample = specs
        .iter()
        .find(|s| s.kind == Kind::TcpE && !s.freed)
        .cloned()
        .unwrap_or_else(|| specs[0].clone());
    let sample_listener = specs[0].clone();
    let mut decoys = world.decoys(procs, &sample, &sample_listener);
    decoys.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    decoys
}

/// The captures' rows, and where the differences with memory were planted in them.
struct ApiView {
    /// The rows of planted specs (by spec index), then the closed connection's.
    rows: Vec<ApiRow>,
    spec_of_row: Vec<usize>,
    /// The connection that closed between capture and acquisition.
    closed: ApiRow,
    /// The first listener's row, with another svchost's PID.
    pid_row: Option<usize>,
    /// The UDP :123 row (and its spec), `skew` ticks late.
    time_row: Option<(usize, usize)>,
    skew: u64,
}

/// Stale: ended (CLOSED, DELETE_TCB) or owned by the exited process; absent from the API.
fn is_stale(s: &Spec) -> bool {
    matches!(s.state, Some(TcpState::Closed | TcpState::DeleteTcb)) || s.owner == Some(UPDATER)
}

/// The captures as taken at the capture time: every live spec but the hidden connection, plus
/// one closed since, with a PID and a time mismatch planted.
fn take_captures(
    sc: &mut Scenario,
    specs: &[Spec],
    planted: &[EndpointRecord],
    procs: &[Proc],
    roles: &Roles,
) -> ApiView {
    let mut spec_of_row = vec![];
    let mut rows = vec![];
    for (i, s) in specs.iter().enumerate() {
        let unseen = i == roles.hidden || Some(i) == roles.unlinked;
        if s.freed || unseen || s.create > sc.clock.capture || is_stale(s) {
            continue;
        }
        spec_of_row.push(i);
        rows.push(api_row(s, &planted[i], procs));
    }
    let (lport, local, remote, time) = sc.closed_after_capture();
    let chrome = CHROME.of(procs);
    let closed = ApiRow {
        proto: Proto::Tcp,
        family: Family::Ipv4,
        local: local.to_string(),
        lport,
        remote: Some((remote.to_string(), 443)),
        state: Some(TcpState::Established),
        pid: chrome.pid,
        process: Some(chrome.name.clone()),
        time,
    };
    let pid_row = spec_of_row.iter().position(|&i| i == 0);
    if let Some(r) = pid_row {
        let other = SVCHOST_NETSVC.of(procs);
        rows[r].pid = other.pid;
        rows[r].process = Some(other.name.clone());
    }
    let time_spec = specs
        .iter()
        .position(|s| s.kind == Kind::UdpA && s.lport == 123);
    let time_row = time_spec.and_then(|i| Some((spec_of_row.iter().position(|&j| j == i)?, i)));
    let skew = 3 * SECOND + sc.rng.range(1, SECOND);
    if let Some((r, _)) = time_row {
        rows[r].time += skew;
    }
    rows.push(closed.clone());
    ApiView {
        rows,
        spec_of_row,
        closed,
        pid_row,
        time_row,
        skew,
    }
}

/// What compare must report, in truth.json's order.
fn discrepancies(
    specs: &[Spec],
    planted: &[EndpointRecord],
    procs: &[Proc],
    roles: &Roles,
    api: &ApiView,
) -> Vec<Discrepancy> {
    let found = |class: &str, memory: Option<&EndpointRecord>, capture, note: String| Discrepancy {
        class: class.into(),
        memory: memory.cloned(),
        capture,
        note,
        cause: None,
    };
    let mut out = vec![found(
        "hidden_from_api",
        Some(&planted[roles.hidden]),
        None,
        "evil.exe connection present in memory, created before the capture, absent from every capture".into(),
    )];
    if let Some(i) = roles.unlinked {
        // Without symbols the reader cannot prove it walked every table: the DKOM connection is
        // then just hidden from the API.
        let (class, note) = match planted[i].linked {
            Some(false) => ("unlinked", "evil.exe connection alive (ESTABLISHED, owner running) but in none of tcpip's tables and absent from every capture: DKOM candidate"),
            _ => ("hidden_from_api", "evil.exe connection alive (ESTABLISHED, owner running), in none of the tables the pool-tag route found, absent from every capture"),
        };
        out.push(found(class, Some(&planted[i]), None, note.into()));
    }
    for (i, s) in specs.iter().enumerate() {
        if is_stale(s) && !s.freed {
            let note = if s.owner == Some(UPDATER) {
                "connection of a process that has exited: stale, absent from the API"
            } else {
                "connection that has ended (CLOSED or DELETE_TCB): stale, absent from the API"
            };
            out.push(found("stale", Some(&planted[i]), None, note.into()));
        }
    }
    out.push(found(
        "not_in_memory",
        None,
        Some(api.closed.capture_row(api.rows.len() as u64)),
        "connection closed between capture and acquisition: in the captures, not in memory".into(),
    ));
    let row_of = |r: usize| Some(api.rows[r].capture_row(r as u64 + 1));
    if let Some(r) = api.pid_row {
        out.push(found(
            "pid_mismatch",
            Some(&planted[api.spec_of_row[r]]),
            row_of(r),
            format!(
                "captures name PID {} where memory has {}",
                SVCHOST_NETSVC.of(procs).pid,
                SVCHOST_RPCSS.of(procs).pid
            ),
        ));
    }
    if let Some((r, i)) = api.time_row {
        out.push(found(
            "time_mismatch",
            Some(&planted[i]),
            row_of(r),
            format!(
                "capture time {:.7} s after the kernel's",
                api.skew as f64 / SECOND as f64
            ),
        ));
    }
    // Every zero API time is a discrepancy; its cause is what the kernel object holds.
    let spec_rows = api.spec_of_row.iter().zip(&api.rows);
    for (k, (&i, row)) in spec_rows.enumerate() {
        if row.time != 0 {
            continue;
        }
        let (cause, note) = if planted[i].has_flag(flag::NO_TIME_FIELD) {
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
        out.push(Discrepancy {
            cause: Some(cause.into()),
            ..found("api_zero_time", Some(&planted[i]), row_of(k), note.into())
        });
    }
    out
}

/// What the crash-dump and hibernation headers record.
fn dump_facts(
    space: &AddressSpace,
    kernel: &KernelImage,
    build: u32,
    clock: &Clock,
    dtb: u64,
) -> DumpFacts {
    DumpFacts {
        x64: space.mode == Mode::X64,
        pae: space.mode == Mode::Pae,
        dtb,
        build,
        ps_active_process_head: kernel.head_va,
        ps_loaded_module_list: kernel.modules_va,
        kdbg: kernel.kdbg_va,
        system_time: clock.acquired,
        uptime: clock.uptime,
    }
}

#[allow(clippy::too_many_arguments)]
fn truth(
    o: &SynthOptions,
    space: &AddressSpace,
    kernel: &KernelImage,
    version: &KernelVersion,
    clock: &Clock,
    dtb: u64,
    endpoints: Vec<EndpointRecord>,
    decoys: Vec<EndpointRecord>,
    discrepancies: Vec<Discrepancy>,
) -> Truth {
    let image = ImageFacts {
        file: Some(o.container.file_name().to_string()),
        container: o.container.kind().to_string(),
        arch: o.profile.arch.name().to_string(),
        paging: space.mode.name().to_string(),
        dtb: Hex(dtb),
        dtb_source: "truth".into(),
        kernel_base: Some(Hex(space.kernel_va)),
        kernel_pdb: Some(kernel.pdb.clone()),
        nt: NtVersion {
            major: version.major,
            minor: version.minor,
            build: (!version.hidden).then_some(version.build),
        },
        build_sources: vec![],
        system_time: to_iso(clock.acquired),
        system_time_raw: Some(clock.acquired),
        boot_time: to_iso(clock.boot),
        boot_time_raw: Some(clock.boot),
        timezone_bias_minutes: Some(-clock.utc_offset_minutes),
        physical: PhysicalSummary::default(),
        sha256: None,
        stored_hashes: None,
        hibernation: None,
        warnings: vec![],
    };
    let captures = FILES
        .iter()
        .map(|(fmt, file)| (fmt.to_string(), file.to_string()))
        .collect::<BTreeMap<_, _>>();
    Truth {
        image,
        profile: o.profile.name.clone(),
        endpoints,
        decoys,
        discrepancies,
        captures,
        tcpip: None,
    }
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
        s.owner.map(|id| id.of(procs))
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
        tcpip_isf,
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
        if let Some((pdb, isf)) = &tcpip_isf {
            let d = dir.join("windows").join(&pdb.name);
            std::fs::create_dir_all(&d).map_err(|e| io_error(&d, &e))?;
            let path = d.join(format!("{}.json", pdb.guid_age()));
            let text = serde_json::to_string(isf).map_err(|e| Error::file(&path, e.to_string()))?;
            std::fs::write(&path, text).map_err(|e| io_error(&path, &e))?;
        }
    }
    Ok(truth)
}
