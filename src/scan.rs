//! Pool scanning: one parallel pass over the present physical ranges looking for endpoint pool tags,
//! then the pool-header checks of docs/internals.md, then decoding (`endpoint`) and, when the profile
//! cannot be trusted, self-calibration (`calibrate`).
use crate::calibrate::{self, Overrides};
use crate::container::{PageBitmap, PhysicalSpace, Run};
use crate::endpoint::{self, DecodeEnv, Decoded, FieldChoice, ObjectKind, OwnerCache};
use crate::error::{Error, Result};
use crate::paging::{AddressSpace, PagingMode, VirtualMemory};
use crate::profile::{Arch, Profile};
use crate::record::{EndpointRecord, Hex, ImageFacts};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::path::Path;

mod slots;
use slots::{search_slots, SlotFilter};

/// Options of one scan (the library form of `netcarve scan`'s flags).
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    pub dtb: Option<u64>,
    /// `--profile NAME|FILE`.
    pub profile: Option<String>,
    pub include_corrupt: bool,
    /// Worker threads; `None` = all cores.
    pub threads: Option<usize>,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
    /// Compute the image's SHA-256.
    pub hash: bool,
}

/// Which profile was used and why (`profile` in scan JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileUse {
    pub name: String,
    pub reason: String,
    /// Offsets found by self-calibration, with the evidence; empty when none were needed.
    #[serde(default)]
    pub calibration: Vec<serde_json::Value>,
}

/// The result of a scan (`netcarve scan --format json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanOutput {
    pub image: ImageFacts,
    pub profile: ProfileUse,
    pub endpoints: Vec<EndpointRecord>,
    /// `--include-corrupt`: rejected candidates with their `reason`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub corrupt: Vec<EndpointRecord>,
}

/// Bytes per parallel work unit: large enough to amortise scheduling, small enough to balance.
pub const CHUNK_SIZE: u64 = 8 << 20;
const PAGE_SIZE: u64 = 0x1000;

/// A decoded `_POOL_HEADER` (sizes in bytes).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct PoolHeader {
    pub previous_size: u64,
    pub pool_index: u16,
    /// BlockSize × block unit, header included.
    pub block_size: u64,
    pub pool_type: u16,
    pub tag: [u8; 4],
}

impl PoolHeader {
    /// Parses the first `arch.pool_header_size()` bytes of `bytes`.
    pub fn parse(bytes: &[u8], arch: Arch) -> Option<PoolHeader> {
        let tag: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
        match arch {
            Arch::X64 => Some(PoolHeader {
                previous_size: u64::from(*bytes.first()?) * 16,
                pool_index: u16::from(*bytes.get(1)?),
                block_size: u64::from(*bytes.get(2)?) * 16,
                pool_type: u16::from(*bytes.get(3)?),
                tag,
            }),
            Arch::X86 => {
                let w0 = u16::from_le_bytes(bytes.get(0..2)?.try_into().ok()?);
                let w1 = u16::from_le_bytes(bytes.get(2..4)?.try_into().ok()?);
                Some(PoolHeader {
                    previous_size: u64::from(w0 & 0x1ff) * 8,
                    pool_index: w0 >> 9,
                    block_size: u64::from(w1 & 0x1ff) * 8,
                    pool_type: w1 >> 9,
                    tag,
                })
            }
        }
    }

    /// Freed blocks keep their contents until reused; they are decoded like live ones.
    pub fn is_freed(&self) -> bool {
        self.pool_type == 0
    }
}

/// The pool-header rules of docs/internals.md. `Err` names the first rule the header breaks.
pub fn check_header(
    header: &PoolHeader,
    header_offset: u64,
    arch: Arch,
    needed_body: u64,
) -> std::result::Result<(), &'static str> {
    let unit = arch.pool_header_size();
    if !header_offset.is_multiple_of(unit) {
        return Err("pool header not aligned");
    }
    if header.pool_type % 2 == 1 {
        return Err("paged pool (odd PoolType)");
    }
    if header.pool_index >= 16 {
        return Err("PoolIndex out of range");
    }
    if header.block_size < unit + needed_body {
        return Err("pool block too small for the object");
    }
    if header_offset % PAGE_SIZE + header.block_size > PAGE_SIZE {
        return Err("pool block runs past its page");
    }
    Ok(())
}

/// A pool block whose tag is one of the endpoint tags and whose header passes the checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// Physical address of the pool header.
    pub offset: u64,
    pub kind: ObjectKind,
    pub header: PoolHeader,
    /// The block after the pool header (to the end of the block): borrowed from the image, copied
    /// only when the block straddles two stored runs. Borrowing keeps memory flat however many
    /// candidates a (possibly hostile) image holds.
    pub body: Cow<'a, [u8]>,
}

impl Candidate<'_> {
    pub fn tag_text(&self) -> String {
        String::from_utf8_lossy(&self.header.tag).into_owned()
    }
}

/// The tags to look for, with the object kind and body size each needs.
#[derive(Clone, Debug)]
pub struct TagSet {
    entries: Vec<(u32, ObjectKind, u64)>,
    /// The hot loop's tests on the tag bytes.
    filter: SlotFilter,
}

impl TagSet {
    pub fn from_profile(profile: &Profile) -> TagSet {
        let t = &profile.tcpip;
        let mut entries = vec![];
        let mut add = |tags: &[String], kind: ObjectKind, needed: u64| {
            for tag in tags {
                if let Ok(bytes) = <[u8; 4]>::try_from(tag.as_bytes()) {
                    entries.push((u32::from_le_bytes(bytes), kind, needed));
                }
            }
        };
        add(
            &t.tcp_endpoint.tags,
            ObjectKind::TcpEndpoint,
            t.tcp_endpoint.min_size.get(),
        );
        add(
            &t.tcp_listener.tags,
            ObjectKind::TcpListener,
            t.tcp_listener.min_size.get(),
        );
        add(
            &t.udp_endpoint.tags,
            ObjectKind::UdpEndpoint,
            t.udp_endpoint.min_size.get(),
        );
        if let Some(tw) = &t.time_wait {
            add(
                &tw.tags,
                ObjectKind::TimeWait,
                tw.min_size.get() + tw.body_offset.get(),
            );
        }
        let filter = SlotFilter::new(entries.iter().map(|(tag, _, _)| *tag));
        TagSet { entries, filter }
    }

    #[inline]
    fn lookup(&self, tag: u32) -> Option<(ObjectKind, u64)> {
        self.entries
            .iter()
            .find(|(t, _, _)| *t == tag)
            .map(|(_, k, n)| (*k, *n))
    }
}

/// A header position whose tag matched, with the verdict of the header checks.
#[derive(Clone, Debug)]
pub struct TagHit<'a> {
    pub candidate: Candidate<'a>,
    /// `Some(reason)` when the header failed a check.
    pub rejected: Option<&'static str>,
}

/// Searches every present byte for endpoint pool tags. Work is split into `chunk_size` windows of
/// the file, and each header position is examined in exactly one of them; reads that run past a
/// window go through the physical space. The result is in physical order whatever the thread count.
pub fn find_tags<'a>(
    phys: &'a PhysicalSpace,
    arch: Arch,
    tags: &TagSet,
    chunk_size: u64,
    keep_rejected: bool,
    progress: Option<&indicatif::ProgressBar>,
) -> Vec<TagHit<'a>> {
    let mut hits: Vec<TagHit> = find_tags_with(
        phys,
        arch,
        tags,
        chunk_size,
        keep_rejected,
        progress,
        &Some,
        &|hits| hits,
    )
    .into_iter()
    .flatten()
    .collect();
    // File order is physical order unless the container stores runs out of order.
    hits.sort_by_key(|h| h.candidate.offset);
    hits
}

/// Turns each hit into what the caller keeps (or nothing), inside the scan, so that hits the
/// caller would drop are never held: on a flood of tag-bearing garbage the heap stays flat.
pub type HitFilter<'a, 'f, T> = dyn Fn(TagHit<'a>) -> Option<T> + Sync + 'f;

/// [`find_tags`] with a per-hit filter applied as each hit is found, and `finish` applied to each
/// work unit's kept hits (in file order: physical order unless the container stores runs out of
/// order) by the worker that found them, right after the unit, while they are still in its cache
/// (after the whole search they are not: it streams the image through every cache level).
#[allow(clippy::too_many_arguments)]
pub fn find_tags_with<'a, T: Send, U: Send>(
    phys: &'a PhysicalSpace,
    arch: Arch,
    tags: &TagSet,
    chunk_size: u64,
    keep_rejected: bool,
    progress: Option<&indicatif::ProgressBar>,
    filter: &HitFilter<'a, '_, T>,
    finish: &(dyn Fn(Vec<T>) -> U + Sync),
) -> Vec<U> {
    let align = arch.pool_header_size();
    let chunk_size = chunk_size.max(PAGE_SIZE) / PAGE_SIZE * PAGE_SIZE;
    // A work unit is one `chunk_size` window of the file: the pieces of the runs stored in it, so
    // that the memory-map hints below cover whole, aligned windows (releasing part of a huge-page
    // mapping would make the kernel split it), and a dump of many small runs (bitmap dumps omit
    // free pages) is not split into as many tiny tasks. Each worker cuts its own windows' pieces:
    // listing them all first took 2 ms on one thread for a bitmap dump's hundred thousand runs.
    let file_order = FileOrder::of(phys);
    let windows = phys.file_bytes().len().div_ceil(chunk_size as usize);
    let window_start = |window: usize| window as u64 * chunk_size;
    let cached = phys.looks_cached();
    (0..windows)
        .into_par_iter()
        // One unit per task: rayon's default split leaves a quarter of the image as one
        // unsplittable task on two threads, so one thread would finish the scan alone.
        .with_max_len(1)
        .map(|window| {
            // Each worker walks its share of units in order: ask for the next one now, so that
            // on a cold cache the disk reads it while this one is scanned (a file that looks
            // wholly cached skips these hints and their checks).
            if window + 1 < windows && !cached {
                if let Some((offset, len)) =
                    file_order.stored_span(window_start(window + 1), chunk_size)
                {
                    phys.prefetch(offset, len);
                }
            }
            let pieces = file_order.pieces(window_start(window), chunk_size);
            let my_spans = file_spans(&pieces);
            if !cached {
                for &(offset, len) in &my_spans {
                    phys.populate(offset, len);
                }
            }
            let mut hits = vec![];
            let mut visit = |pos: u64, tag: u32| {
                if let Some((kind, needed)) = tags.lookup(tag) {
                    if let Some(hit) = examine(phys, arch, pos, kind, needed) {
                        if keep_rejected || hit.rejected.is_none() {
                            hits.extend(filter(hit));
                        }
                    }
                }
            };
            for run_of_pieces in contiguous_in_file(&pieces) {
                scan_stored(phys, &tags.filter, align, run_of_pieces, &mut visit);
                if let Some(bar) = progress {
                    bar.inc(run_of_pieces.iter().map(|p| p.len).sum());
                }
            }
            for (offset, len) in my_spans {
                phys.release(offset, len);
            }
            finish(hits)
        })
        .collect()
}

/// How an image's present ranges lie in its file, to cut windows of the file into pieces.
enum FileOrder<'a> {
    /// A run list, in file order.
    Listed(ListedOrder<'a>),
    /// A bitmap dump's pages: stored in page order, cut from the bitmap itself.
    Pages(&'a PageBitmap, &'a [u8]),
}

impl<'a> FileOrder<'a> {
    fn of(phys: &'a PhysicalSpace) -> FileOrder<'a> {
        match phys.page_storage() {
            Some((pages, file)) => FileOrder::Pages(pages, file),
            None => FileOrder::Listed(ListedOrder::new(phys.runs())),
        }
    }

    /// The parts of the present ranges stored in the file bytes `[start, start + len)`, each a
    /// zero-copy slice that never spans runs, in file order.
    fn pieces(&self, start: u64, len: u64) -> Vec<Run> {
        match self {
            FileOrder::Listed(listed) => listed.pieces(start, len),
            FileOrder::Pages(pages, file) => pages.pieces(file, start, len),
        }
    }

    /// The file bytes from the first to the last byte of `[start, start + len)` that hold present
    /// memory, without cutting the pieces (for the read-ahead hint of the next window: cutting a
    /// bitmap dump's window into its ~250 pieces twice was 1-2% of a scan's CPU time).
    fn stored_span(&self, start: u64, len: u64) -> Option<(u64, u64)> {
        match self {
            FileOrder::Listed(listed) => listed.stored_span(start, len),
            FileOrder::Pages(pages, _) => {
                let from = start.max(pages.first_page());
                let to = start.saturating_add(len).min(pages.stored_end());
                (from < to).then_some((from, to - from))
            }
        }
    }
}

/// A run list in file order.
struct ListedOrder<'a> {
    runs: Cow<'a, [Run]>,
    /// For each run, the furthest file byte it or any run before it reaches; `None` when that is
    /// always the run's own end (runs stored one after another, the usual case).
    reach: Option<Vec<u64>>,
}

impl<'a> ListedOrder<'a> {
    fn new(runs: &'a [Run]) -> ListedOrder<'a> {
        let file_end = |r: &Run| r.file_offset + r.len;
        let apart = runs.windows(2).all(|w| file_end(&w[0]) <= w[1].file_offset);
        if apart {
            return ListedOrder {
                runs: Cow::Borrowed(runs),
                reach: None,
            };
        }
        // Stored out of order, or sharing file bytes (a hostile header can say so).
        let mut sorted = runs.to_vec();
        sorted.sort_by_key(|r| (r.file_offset, r.phys));
        let reach = sorted
            .iter()
            .scan(0, |furthest, r| {
                *furthest = file_end(r).max(*furthest);
                Some(*furthest)
            })
            .collect();
        ListedOrder {
            runs: Cow::Owned(sorted),
            reach: Some(reach),
        }
    }

    /// See [`FileOrder::stored_span`].
    fn stored_span(&self, start: u64, len: u64) -> Option<(u64, u64)> {
        let end = start.saturating_add(len);
        let file_end = |r: &Run| r.file_offset + r.len;
        if self.reach.is_some() {
            let pieces = self.pieces(start, len);
            let from = pieces.iter().map(|p| p.file_offset).min()?;
            let to = pieces.iter().map(file_end).max()?;
            return Some((from, to - from));
        }
        let first = self.runs.partition_point(|r| file_end(r) <= start);
        let past = self.runs.partition_point(|r| r.file_offset < end);
        let (first, last) = (self.runs.get(first)?, self.runs.get(past.checked_sub(1)?)?);
        let from = first.file_offset.max(start);
        let to = file_end(last).min(end);
        (from < to).then_some((from, to - from))
    }

    /// See [`FileOrder::pieces`].
    fn pieces(&self, start: u64, len: u64) -> Vec<Run> {
        let end = start.saturating_add(len);
        let first = match &self.reach {
            None => self
                .runs
                .partition_point(|r| r.file_offset + r.len <= start),
            Some(reach) => reach.partition_point(|&furthest| furthest <= start),
        };
        let mut pieces = vec![];
        for r in self.runs.get(first..).unwrap_or(&[]) {
            if r.file_offset >= end {
                break;
            }
            pieces.extend(r.clip_file(start, end));
        }
        pieces
    }
}

/// The file ranges holding `pieces`, merged where they continue each other, for the memory-map
/// hints.
fn file_spans(pieces: &[Run]) -> Vec<(u64, u64)> {
    contiguous_in_file(pieces)
        .map(|stored| (stored[0].file_offset, stored.iter().map(|p| p.len).sum()))
        .collect()
}

/// Splits `pieces` where the next piece does not continue the previous one in the file.
fn contiguous_in_file(pieces: &[Run]) -> impl Iterator<Item = &[Run]> {
    pieces.chunk_by(|a, b| a.file_offset + a.len == b.file_offset)
}

/// Calls `visit(physical address, tag)` for every header slot of `pieces` (stored back to back in
/// the file) whose tag passes `filter`.
///
/// When every piece keeps the slot alignment in both spaces (pages of a raw image or a crash dump),
/// the stored bytes are searched in one pass, whatever the number of pieces: a bitmap dump stores
/// a run every few pages. Otherwise each piece is searched on its own.
fn scan_stored(
    phys: &PhysicalSpace,
    filter: &SlotFilter,
    align: u64,
    pieces: &[Run],
    visit: &mut dyn FnMut(u64, u32),
) {
    let aligned = |p: &Run| {
        p.phys.is_multiple_of(align)
            && p.file_offset.is_multiple_of(align)
            && p.len.is_multiple_of(align)
    };
    let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else {
        return;
    };
    let stored = usize::try_from(first.file_offset)
        .ok()
        .zip(usize::try_from(last.file_offset + last.len).ok())
        .and_then(|(from, to)| phys.file_bytes().get(from..to));
    let (Some(bytes), true) = (stored, pieces.iter().all(aligned)) else {
        for piece in pieces {
            scan_piece(phys, filter, align, piece.phys, piece.phys_end(), visit);
        }
        return;
    };
    // Slots are found in file order, so the piece holding each is found by walking forward.
    let mut current = 0;
    let mut found = |at: usize, tag: u32| {
        let offset = first.file_offset + at as u64;
        while pieces[current].file_offset + pieces[current].len <= offset {
            current += 1;
        }
        let piece = &pieces[current];
        visit(piece.phys + (offset - piece.file_offset), tag);
    };
    search_slots(bytes, align, filter, &mut found);
}

/// Calls `visit(physical address, tag)` for every header slot in the present range `start..end`
/// (one run) whose tag passes `filter`, including a last slot that continues past `end`.
fn scan_piece(
    phys: &PhysicalSpace,
    filter: &SlotFilter,
    align: u64,
    start: u64,
    end: u64,
    visit: &mut dyn FnMut(u64, u32),
) {
    let first = start.div_ceil(align) * align;
    if first >= end {
        return;
    }
    // Pieces never span runs, so the whole piece is one zero-copy slice.
    let Some(bytes) = phys.slice(first, (end - first) as usize) else {
        return;
    };
    let mut found = |at: usize, tag: u32| visit(first + at as u64, tag);
    let covered = search_slots(bytes, align, filter, &mut found);
    let tail_start = first + covered as u64;
    // A last slot shorter than a header: its tag may continue in the next run.
    if tail_start < end {
        if let Some(tag) = phys.read_u32(tail_start + 4) {
            visit(tail_start, tag);
        }
    }
}

fn examine(
    phys: &PhysicalSpace,
    arch: Arch,
    offset: u64,
    kind: ObjectKind,
    needed: u64,
) -> Option<TagHit<'_>> {
    let header_size = arch.pool_header_size();
    let mut raw = [0u8; 16];
    let raw = raw.get_mut(..header_size as usize)?;
    if !phys.read(offset, raw) {
        return None;
    }
    let header = PoolHeader::parse(raw, arch)?;
    let rejected = check_header(&header, offset, arch, needed).err();
    // The body is read to the end of the block (bounded by the page), so calibration can look at
    // slots the profile does not name. A rejected header still gets the bytes it claims, for
    // --include-corrupt.
    let body_len = header
        .block_size
        .saturating_sub(header_size)
        .min(PAGE_SIZE - (offset + header_size) % PAGE_SIZE);
    let body_start = offset + header_size;
    let body = match phys.slice(body_start, body_len as usize) {
        Some(b) => Cow::Borrowed(b),
        None => {
            let mut copy = vec![0u8; body_len as usize];
            if !phys.read(body_start, &mut copy) {
                copy.clear();
            }
            Cow::Owned(copy)
        }
    };
    Some(TagHit {
        candidate: Candidate {
            offset,
            kind,
            header,
            body,
        },
        rejected,
    })
}

/// Boot and acquisition time (FILETIMEs), the window a create time must fall in.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeWindow {
    pub boot: Option<u64>,
    pub acquisition: Option<u64>,
}

/// What carving produced before image facts are attached.
#[derive(Clone, Debug, Default)]
pub struct Carved {
    pub endpoints: Vec<EndpointRecord>,
    pub corrupt: Vec<EndpointRecord>,
    pub calibration: Vec<serde_json::Value>,
}

/// Everything the carving pass needs besides the physical space.
pub struct CarveParams<'a> {
    pub profile: &'a Profile,
    pub mem: &'a dyn VirtualMemory,
    pub mode: PagingMode,
    pub times: TimeWindow,
    pub include_corrupt: bool,
    pub chunk_size: u64,
    pub progress: Option<&'a indicatif::ProgressBar>,
    /// The kernel's page tables, to give each record the virtual address of its object: a walk
    /// of every kernel mapping, run beside calibration. `None` leaves the addresses unset.
    pub kernel_space: Option<&'a AddressSpace<'a>>,
}

/// Tag search, header checks, calibration, decoding. Virtual addresses are filled in by the caller
/// (`scan_image`), which knows the page tables.
pub fn carve(phys: &PhysicalSpace, p: &CarveParams) -> Carved {
    let tags = TagSet::from_profile(p.profile);
    let owners = OwnerCache::default();
    let base_env = DecodeEnv {
        profile: p.profile,
        mem: p.mem,
        times: p.times,
        dtb_align: dtb_alignment(p.mode),
        overrides: Overrides::default(),
        owners: &owners,
    };
    // Each accepted candidate is decoded as soon as it is found, and dropped there when it is
    // structurally invalid (unless asked for): on a flood of tag-bearing garbage, holding every
    // candidate until a later pass would make the heap grow with the image. Validity does not
    // depend on the owner and time offsets that calibration may move, so nothing dropped here
    // could become valid on the second pass.
    let keep = |d: &Decoded| p.include_corrupt || matches!(d, Decoded::Valid(..));
    let mut units: Vec<UnitFinds> = find_tags_with(
        phys,
        p.profile.arch,
        &tags,
        p.chunk_size,
        p.include_corrupt,
        p.progress,
        &|h: TagHit| {
            if h.rejected.is_some() {
                return Some((h, None));
            }
            let d = endpoint::decode(&h.candidate, &base_env);
            keep(&d).then_some((h, Some(d)))
        },
        &|hits| UnitFinds::from_hits(hits, &p.times),
    );
    crate::timings::mark("searched and decoded");
    // The pages holding the hits, for the virtual-address walk beside the rest of the work.
    let walk = p.kernel_space.map(|space| {
        let pages: Vec<Vec<u64>> = units
            .iter_mut()
            .map(|u| std::mem::take(&mut u.pages))
            .collect();
        (space, pages)
    });
    let (mut carved, (pages, virtual_of_page)) = rayon::join(
        || settle(units, p, base_env, &keep),
        || {
            walk.map(|(space, pages)| {
                let mut pages = pages.concat();
                pages.sort_unstable();
                pages.dedup();
                let vas = space.phys_to_virt(&pages);
                (pages, vas)
            })
            .unwrap_or_default()
        },
    );
    attach_virtual(&mut carved.endpoints, &pages, &virtual_of_page);
    attach_virtual(&mut carved.corrupt, &pages, &virtual_of_page);
    crate::timings::mark("virtual addresses attached");
    carved
}

/// Gives each record the virtual address of its object, from the VA of each page (`vas[i]` is
/// `pages[i]`'s); both are in ascending physical order, so one forward pass pairs them.
fn attach_virtual(records: &mut [EndpointRecord], pages: &[u64], vas: &[Option<u64>]) {
    let mut at = 0;
    for r in records {
        let pa = r.physical_offset.0;
        let page = pa / PAGE_SIZE;
        while pages.get(at).is_some_and(|&p| p < page) {
            at += 1;
        }
        r.virtual_address = (pages.get(at) == Some(&page))
            .then(|| vas.get(at).copied().flatten())
            .flatten()
            .map(|va| Hex(va.wrapping_add(pa % PAGE_SIZE)));
    }
}

/// One work unit's finds, sorted out by the worker that found them while they were in its cache:
/// after the search they are not, and walking thousands of records again (to count them for
/// calibration, to move them into one vector) was the longest serial step after the search.
#[derive(Default)]
struct UnitFinds<'a> {
    /// Structurally valid records, beside their candidates (calibration may read the objects
    /// again) and the offsets each was decoded with.
    valid: Vec<EndpointRecord>,
    valid_candidates: Vec<Candidate<'a>>,
    choices: Vec<FieldChoice>,
    /// Invalid records (kept only with `--include-corrupt`), beside their candidates.
    corrupt: Vec<EndpointRecord>,
    corrupt_candidates: Vec<Candidate<'a>>,
    /// Headers that failed the checks (passed on only with `--include-corrupt`).
    rejected: Vec<TagHit<'a>>,
    /// The valid records counted for calibration.
    tally: calibrate::Tally,
    /// The pages holding the kept candidates, ascending, each once.
    pages: Vec<u64>,
}

impl<'a> UnitFinds<'a> {
    fn from_hits(hits: Vec<(TagHit<'a>, Option<Decoded>)>, times: &TimeWindow) -> UnitFinds<'a> {
        let mut unit = UnitFinds::default();
        for (h, d) in hits {
            match d {
                Some(Decoded::Valid(record, choice)) => {
                    unit.tally.add(h.candidate.kind, &record, times);
                    unit.valid.push(record);
                    unit.valid_candidates.push(h.candidate);
                    unit.choices.push(choice);
                }
                Some(Decoded::Corrupt(record)) => {
                    unit.corrupt.push(record);
                    unit.corrupt_candidates.push(h.candidate);
                }
                None => unit.rejected.push(h),
            }
        }
        let mut pages: Vec<u64> = unit.candidates().map(|c| c.offset / PAGE_SIZE).collect();
        pages.sort_unstable();
        pages.dedup();
        unit.pages = pages;
        unit
    }

    /// Every candidate the unit kept.
    fn candidates(&self) -> impl Iterator<Item = &Candidate<'a>> {
        self.valid_candidates
            .iter()
            .chain(&self.corrupt_candidates)
            .chain(self.rejected.iter().map(|h| &h.candidate))
    }
}

/// After the search: calibration, a second decoding if it moved an offset, and the records
/// gathered and sorted.
fn settle(
    mut units: Vec<UnitFinds>,
    p: &CarveParams,
    base_env: DecodeEnv,
    keep: &(dyn Fn(&Decoded) -> bool + Sync),
) -> Carved {
    let mut tally = calibrate::Tally::default();
    for unit in &units {
        tally.merge(&unit.tally);
    }
    // The records are walked again only when some slot has to be searched.
    let (overrides, calibration) = if calibrate::votes_needed(&tally, &base_env) {
        let valid: Vec<(&Candidate, &EndpointRecord)> = units
            .iter()
            .flat_map(|u| u.valid_candidates.iter().zip(&u.valid))
            .collect();
        calibrate::calibrate_decoded(&valid, &base_env)
    } else {
        (Overrides::default(), vec![])
    };
    crate::timings::mark("calibrated");
    let recalibrated = overrides != Overrides::default();
    let env = DecodeEnv {
        overrides,
        ..base_env
    };
    let mut carved = Carved {
        calibration,
        ..Carved::default()
    };
    let mut choices = vec![];
    if recalibrated {
        // Every object decoded the first time is decoded again with the calibrated offsets.
        let decoded: Vec<Decoded> = units
            .par_iter()
            .flat_map_iter(|u| u.valid_candidates.iter().chain(&u.corrupt_candidates))
            .map(|c| endpoint::decode(c, &env))
            .filter(|d| keep(d))
            .collect();
        for d in decoded {
            match d {
                Decoded::Valid(record, choice) => {
                    carved.endpoints.push(record);
                    choices.push(choice);
                }
                Decoded::Corrupt(record) => carved.corrupt.push(record),
            }
        }
    } else {
        let valid = units.iter().map(|u| u.valid.len()).sum();
        carved.endpoints.reserve_exact(valid);
        choices.reserve_exact(valid);
        for unit in &mut units {
            carved.endpoints.append(&mut unit.valid);
            choices.append(&mut unit.choices);
            carved.corrupt.append(&mut unit.corrupt);
        }
    }
    carved
        .calibration
        .extend(calibrate::alternatives_used(&choices, &env));
    if p.include_corrupt {
        for h in units.iter().flat_map(|u| &u.rejected) {
            carved
                .corrupt
                .push(endpoint::header_only_record(&h.candidate, h.rejected));
        }
    }
    crate::timings::mark("records gathered");
    carved
        .endpoints
        .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    carved
        .corrupt
        .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    carved
}

/// Owner DTB alignment: page-aligned, except PAE's 32-byte-aligned PDPT.
pub fn dtb_alignment(mode: PagingMode) -> u64 {
    match mode {
        PagingMode::Pae => 0x20,
        _ => PAGE_SIZE,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Scans an image end to end.
pub fn scan_image(path: &Path, opts: &ScanOptions) -> Result<ScanOutput> {
    with_threads(opts.threads, || scan_image_in_pool(path, opts))
}

/// Runs `work` with `threads` workers for its parallel parts (`None`: one per core).
pub fn with_threads<T: Send>(
    threads: Option<usize>,
    work: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    match threads {
        Some(n) => {
            if n == 0 {
                return Err(Error::usage("--threads must be at least 1"));
            }
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| Error::usage(format!("cannot start {n} threads: {e}")))?;
            pool.install(work)
        }
        None => work(),
    }
}

/// [`scan_image`] on the current thread pool (see [`with_threads`]).
pub fn scan_image_in_pool(path: &Path, opts: &ScanOptions) -> Result<ScanOutput> {
    let phys = PhysicalSpace::open(path)?;
    crate::timings::mark("container opened");
    let kernel = crate::kernel::identify(&phys, opts.dtb).map_err(|e| e.in_file(path))?;
    let (profile, reason) = match &opts.profile {
        Some(name) => (crate::profile::resolve(name)?, format!("--profile {name}")),
        None => {
            let q = crate::profile::select::Query {
                arch: kernel.arch,
                nt_major: kernel.nt.major,
                nt_minor: kernel.nt.minor,
                build: kernel.nt.build,
                tcpip_version: kernel.tcpip_version.clone(),
            };
            let sel = crate::profile::select::select(&q).map_err(|e| e.in_file(path))?;
            (sel.profile.clone(), sel.reason)
        }
    };
    if profile.arch != kernel.arch {
        return Err(Error::file(
            path,
            format!(
                "profile {} is {} but the image's kernel is {}",
                profile.name,
                profile.arch.name(),
                kernel.arch.name()
            ),
        ));
    }
    crate::timings::mark("kernel identified, profile chosen");
    let space = AddressSpace::new(&phys, kernel.dtb, kernel.mode);
    let mut image = crate::kernel::image_facts(&phys, &kernel);
    image
        .warnings
        .extend(profile.kernel_mismatch(kernel.pdb.as_ref()));
    let times = TimeWindow {
        boot: kernel.boot_time(),
        acquisition: kernel.system_time,
    };
    let progress =
        (opts.progress && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
            let bar = indicatif::ProgressBar::new(phys.present_size());
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "scanning {bar:40} {bytes}/{total_bytes} ({eta})",
            ) {
                bar.set_style(style);
            }
            bar
        });
    let params = CarveParams {
        profile: &profile,
        mem: &space,
        mode: kernel.mode,
        times,
        include_corrupt: opts.include_corrupt,
        chunk_size: CHUNK_SIZE,
        progress: progress.as_ref(),
        kernel_space: Some(&space),
    };
    // Hashing reads the same file; running it beside the scan hides most of its cost.
    let (carved, sha) = rayon::join(
        || carve(&phys, &params),
        || opts.hash.then(|| sha256_hex(phys.file_bytes())),
    );
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    image.sha256 = sha;
    Ok(ScanOutput {
        image,
        profile: ProfileUse {
            name: profile.name.clone(),
            reason,
            calibration: carved.calibration,
        },
        endpoints: carved.endpoints,
        corrupt: carved.corrupt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x64_header(index: u8, blocks: u8, pool_type: u8, tag: &[u8; 4]) -> [u8; 16] {
        let mut h = [0u8; 16];
        h[1] = index;
        h[2] = blocks;
        h[3] = pool_type;
        h[4..8].copy_from_slice(tag);
        h
    }

    #[test]
    fn x64_header_rules() {
        let ok = PoolHeader::parse(&x64_header(1, 0x20, 2, b"TcpE"), Arch::X64).unwrap();
        assert_eq!(ok.block_size, 0x200);
        assert!(check_header(&ok, 0x1000, Arch::X64, 0x100).is_ok());
        assert!(
            check_header(&ok, 0x1008, Arch::X64, 0x100).is_err(),
            "unaligned"
        );
        assert!(
            check_header(&ok, 0x1f00, Arch::X64, 0x100).is_err(),
            "past page"
        );
        assert!(
            check_header(&ok, 0x1000, Arch::X64, 0x1f8).is_err(),
            "undersized"
        );
        let freed = PoolHeader::parse(&x64_header(0, 0x20, 0, b"TcpE"), Arch::X64).unwrap();
        assert!(freed.is_freed() && check_header(&freed, 0, Arch::X64, 0x100).is_ok());
        let paged = PoolHeader::parse(&x64_header(0, 0x20, 3, b"TcpE"), Arch::X64).unwrap();
        assert_eq!(
            check_header(&paged, 0, Arch::X64, 0x100),
            Err("paged pool (odd PoolType)")
        );
        let bad_index = PoolHeader::parse(&x64_header(16, 0x20, 2, b"TcpE"), Arch::X64).unwrap();
        assert!(check_header(&bad_index, 0, Arch::X64, 0x100).is_err());
    }

    #[test]
    fn x86_header_bitfields() {
        // PreviousSize 3, PoolIndex 2, BlockSize 0x30 (×8), PoolType 4 (non-paged).
        let w0: u16 = 3 | (2 << 9);
        let w1: u16 = 0x30 | (4 << 9);
        let mut h = [0u8; 8];
        h[0..2].copy_from_slice(&w0.to_le_bytes());
        h[2..4].copy_from_slice(&w1.to_le_bytes());
        h[4..8].copy_from_slice(b"UdpA");
        let p = PoolHeader::parse(&h, Arch::X86).unwrap();
        assert_eq!(
            (p.previous_size, p.pool_index, p.block_size, p.pool_type),
            (24, 2, 0x180, 4)
        );
        assert!(check_header(&p, 0x2008, Arch::X86, 0x100).is_ok());
        assert!(check_header(&p, 0x2004, Arch::X86, 0x100).is_err());
        assert!(PoolHeader::parse(&h[..6], Arch::X86).is_none());
    }

    /// Cutting the file into windows covers every byte of every run exactly once, with the
    /// mapping from file to physical address kept, whether the runs are stored in order, out of
    /// order, or sharing file bytes.
    #[test]
    fn windows_cover_every_run_once() {
        let run = |phys: u64, len: u64, file_offset: u64| Run {
            phys,
            len,
            file_offset,
        };
        let in_order = vec![
            run(0, 0x3000, 0x1000),
            run(0x8000, 0x1000, 0x4000),
            run(0x10000, 0x9000, 0x5000),
        ];
        let out_of_order = vec![
            run(0, 0x2000, 0x9000),
            run(0x4000, 0x5000, 0x1000),
            run(0x20000, 0x1000, 0x6000),
        ];
        let sharing = vec![
            run(0, 0x4000, 0x1000),
            run(0x10000, 0x2000, 0x2000),
            run(0x30000, 0x6000, 0),
        ];
        for runs in [in_order, out_of_order, sharing] {
            let order = FileOrder::Listed(ListedOrder::new(&runs));
            check_windows(&order, &runs);
        }
        // A bitmap dump's pages, stored from an offset that is not page-aligned so that windows
        // cut pages in two: pages 1-3, 8, 16-24, 100-101 and 199 of 200.
        let mut bitmap = vec![0u8; 25];
        for page in [1, 2, 3, 8, 100, 101, 199].into_iter().chain(16..=24) {
            bitmap[page / 8] |= 1 << (page % 8);
        }
        let first_page = 0x1010u64;
        let mut file = vec![0u8; 0x10];
        file.extend(&bitmap);
        file.resize(first_page as usize + 16 * 0x1000, 0xAA);
        let pages = PageBitmap::new(&file, 0x10, 200, first_page);
        let space = PhysicalSpace::from_storage(
            crate::container::Backing::Owned(file),
            crate::container::Storage::Pages(pages),
            "crashdump-bitmap",
            Path::new("t"),
        )
        .unwrap();
        let order = FileOrder::of(&space);
        assert!(matches!(order, FileOrder::Pages(..)));
        check_windows(&order, space.runs());
    }

    /// Windows of several sizes cut `order` into pieces inside each window, with the stored span
    /// of each window, that together cover every run once with its file mapping kept.
    fn check_windows(order: &FileOrder, runs: &[Run]) {
        for window in [0x1000u64, 0x3000, 0x8000, 0x100000] {
            let file_end = runs.iter().map(|r| r.file_offset + r.len).max().unwrap();
            let mut covered: Vec<Run> = vec![];
            for start in (0..file_end).step_by(window as usize) {
                let pieces = order.pieces(start, window);
                let span = pieces.iter().map(|p| p.file_offset).min().map(|from| {
                    let to = pieces.iter().map(|p| p.file_offset + p.len).max().unwrap();
                    (from, to - from)
                });
                assert_eq!(
                    order.stored_span(start, window),
                    span,
                    "{runs:?} {start:#x}"
                );
                for piece in pieces {
                    assert!(
                        piece.file_offset >= start
                            && piece.file_offset + piece.len <= start + window
                    );
                    covered.push(piece);
                }
            }
            for r in runs {
                let mut mine: Vec<&Run> = covered
                    .iter()
                    .filter(|p| p.phys >= r.phys && p.phys < r.phys_end())
                    .collect();
                mine.sort_by_key(|p| p.phys);
                let mut at = r.phys;
                for p in mine {
                    assert_eq!(p.phys, at, "{runs:?} window {window:#x}");
                    assert_eq!(p.file_offset, r.file_offset + (p.phys - r.phys));
                    at += p.len;
                }
                assert_eq!(at, r.phys_end(), "{runs:?} window {window:#x}");
            }
        }
    }
}
