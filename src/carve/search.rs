//! The tag search: one parallel pass over the file's windows finds every header slot whose tag is an
//! endpoint tag, checks its pool header and hands each hit to the caller while it is in cache.
use crate::arch::Arch;
use crate::bytes::ReadBytes;
use crate::carve::pool::{check_header, Candidate, PoolHeader, PAGE_SIZE};
use crate::carve::slots::{search_slots, SlotFilter};
use crate::container::{BlockStore, PageBitmap, PhysicalSpace, Run};
use crate::profile::{ObjectKind, Profile};
use rayon::prelude::*;
use std::borrow::Cow;

/// Bytes per parallel work unit: large enough to amortise scheduling, small enough to balance.
pub const CHUNK_SIZE: u64 = 8 << 20;

/// The tags to look for, with the object kind and body size each needs.
#[derive(Debug)]
pub struct TagSet {
    entries: Vec<(u32, ObjectKind, u64)>,
    /// Tags of blocks that are not endpoints but are collected on the way (tcpip's table blocks
    /// for the pool-tag route), and where their allocated headers were found.
    structures: Vec<u32>,
    structure_hits: std::sync::Mutex<Vec<(u64, [u8; 4])>>,
    /// The hot loop's tests on the tag bytes.
    filter: SlotFilter,
}

/// Structure blocks kept at most: tcpip has a few per partition, garbage must not grow the heap.
pub const MAX_STRUCTURE_HITS: usize = 1 << 16;

impl TagSet {
    pub fn from_profile(profile: &Profile) -> TagSet {
        TagSet::from_profiles(&[profile])
    }

    /// Every profile's tags; a tag several profiles share needs the smallest of their sizes (each
    /// profile's decoding checks its own).
    pub fn from_profiles(profiles: &[&Profile]) -> TagSet {
        let mut entries: Vec<(u32, ObjectKind, u64)> = vec![];
        let mut add = |tags: &[String], kind: ObjectKind, needed: u64| {
            for tag in tags {
                let Ok(bytes) = <[u8; 4]>::try_from(tag.as_bytes()) else {
                    continue;
                };
                let tag = u32::from_le_bytes(bytes);
                match entries.iter_mut().find(|(t, k, _)| *t == tag && *k == kind) {
                    Some(entry) => entry.2 = entry.2.min(needed),
                    None => entries.push((tag, kind, needed)),
                }
            }
        };
        for profile in profiles {
            for kind in ObjectKind::ALL {
                if let Some(f) = crate::profile::kind_fields(profile, kind) {
                    add(f.tags, kind, f.min_size + f.body_offset);
                }
            }
        }
        let filter = SlotFilter::new(entries.iter().map(|(tag, _, _)| *tag));
        TagSet {
            entries,
            structures: vec![],
            structure_hits: Default::default(),
            filter,
        }
    }

    /// Also collects allocated blocks tagged with one of `tags` (see [`TagSet::structure_hits`]).
    /// The tags chosen share the endpoint tags' first two bytes, so the hot loop's tests pass no
    /// more slots than before.
    pub fn with_structures(mut self, tags: &[[u8; 4]]) -> TagSet {
        self.structures = tags.iter().map(|t| u32::from_le_bytes(*t)).collect();
        let all = self
            .entries
            .iter()
            .map(|(t, _, _)| *t)
            .chain(self.structures.iter().copied());
        self.filter = SlotFilter::new(all.collect::<Vec<_>>().into_iter());
        self
    }

    /// The structure blocks found: (physical address of the pool header, tag), sorted.
    pub fn structure_hits(&self) -> Vec<(u64, [u8; 4])> {
        let mut hits = self
            .structure_hits
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        hits.sort_unstable();
        hits
    }

    fn note_structure(&self, phys: &PhysicalSpace, arch: Arch, pos: u64, tag: u32) {
        if !self.structures.contains(&tag) {
            return;
        }
        let mut raw = [0u8; 16];
        let Some(raw) = raw.get_mut(..arch.pool_header_size() as usize) else {
            return;
        };
        let allocated = phys.read_into(pos, raw)
            && PoolHeader::parse(raw, arch)
                .is_some_and(|h| h.pool_type != 0 && h.pool_type % 2 == 0);
        if allocated {
            let mut hits = self
                .structure_hits
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if hits.len() < MAX_STRUCTURE_HITS {
                hits.push((pos, tag.to_le_bytes()));
            }
        }
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

/// Turns each hit into what the caller keeps (or nothing), inside the scan, so that hits the
/// caller would drop are never held: on a flood of tag-bearing garbage the heap stays flat. The
/// counter is the caller's, one per work unit, starting at 0 (the carve counts corrupt candidates
/// in it, to keep only the first of a unit); `finish` gets its final value.
type HitFilter<'a, 'f, T> = dyn Fn(TagHit<'a>, &mut u64) -> Option<T> + Sync + 'f;

/// Searches every present byte for endpoint pool tags. Work is split into `chunk_size` windows of
/// the file, and each header position is examined in exactly one of them; reads that run past a
/// window go through the physical space. `filter` is applied to each hit as it is found, and
/// `finish` to each work unit's kept hits (in file order: physical order unless the container
/// stores runs out of order) by the worker that found them, right after the unit, while they are
/// still in its cache (after the whole search they are not: it streams the image through every
/// cache level).
#[allow(clippy::too_many_arguments)]
pub fn find_tags_with<'a, T: Send, U: Send>(
    phys: &'a PhysicalSpace,
    arch: Arch,
    tags: &TagSet,
    chunk_size: u64,
    keep_rejected: bool,
    progress: Option<&indicatif::ProgressBar>,
    filter: &HitFilter<'a, '_, T>,
    finish: &(dyn Fn(Vec<T>, u64) -> U + Sync),
) -> Vec<U> {
    let align = arch.pool_header_size();
    let chunk_size = chunk_size.max(PAGE_SIZE) / PAGE_SIZE * PAGE_SIZE;
    // A work unit is one `chunk_size` window of the file: the pieces of the runs stored in it, so
    // that the memory-map hints below cover whole, aligned windows (releasing part of a huge-page
    // mapping would make the kernel split it), and a dump of many small runs (bitmap dumps omit
    // free pages) is not split into as many tiny tasks. Each worker cuts its own windows' pieces, so
    // that a bitmap dump's hundred thousand runs are not listed on one thread first (2 ms).
    let file_order = FileOrder::of(phys);
    // Compressed containers are searched in their decoded space, block by block.
    let stored_len = match phys.blocks() {
        Some(store) => store.decoded_size(),
        None => phys.file_bytes().len() as u64,
    };
    let windows = usize::try_from(stored_len.div_ceil(chunk_size)).unwrap_or(0);
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
            let mut counter = 0u64;
            let mut visit = |pos: u64, tag: u32| {
                if let Some((kind, needed)) = tags.lookup(tag) {
                    if let Some(hit) = examine(phys, arch, pos, kind, needed) {
                        if keep_rejected || hit.rejected.is_none() {
                            hits.extend(filter(hit, &mut counter));
                        }
                    }
                } else if !tags.structures.is_empty() {
                    tags.note_structure(phys, arch, pos, tag);
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
            finish(hits, counter)
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
            // A sparse file's holes are left out: zeros hold no tag.
            None => FileOrder::Listed(ListedOrder::new(phys.pass_runs())),
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
    /// bitmap dump's window into its ~250 pieces twice costs 1-2% of a scan's CPU time).
    fn stored_span(&self, start: u64, len: u64) -> Option<(u64, u64)> {
        match self {
            FileOrder::Listed(listed) => listed.stored_span(start, len),
            FileOrder::Pages(pages, _) => {
                let from = start.max(pages.first_page());
                let to = start.saturating_add(len).min(pages.stored_end());
                (from < to).then(|| (from, to - from))
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
        (from < to).then(|| (from, to - from))
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
    if let Some(store) = phys.blocks() {
        for piece in pieces {
            scan_decoded(store, filter, align, piece, visit);
        }
        return;
    }
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

/// [`scan_stored`] for one piece of a compressed container: each block the piece covers is decoded
/// (into this thread's cache, where the header checks and decoding then find it) and searched.
fn scan_decoded(
    store: &BlockStore,
    filter: &SlotFilter,
    align: u64,
    piece: &Run,
    visit: &mut dyn FnMut(u64, u32),
) {
    let block_size = store.block_size();
    if block_size == 0 {
        return;
    }
    let end = piece.file_offset.saturating_add(piece.len);
    let mut pos = piece.file_offset;
    while pos < end {
        let block = pos / block_size;
        let part_end = end.min((block + 1).saturating_mul(block_size));
        let phys = piece.phys + (pos - piece.file_offset);
        let skip = (align - phys % align) % align;
        let (from, to) = (
            pos - block * block_size + skip,
            part_end - block * block_size,
        );
        store.with_block(block, |bytes| {
            let Some(part) = usize::try_from(from)
                .ok()
                .zip(usize::try_from(to).ok())
                .and_then(|(f, t)| bytes.get(f..t.min(bytes.len())))
            else {
                return;
            };
            let first = phys + skip;
            search_slots(part, align, filter, &mut |at, tag| {
                visit(first + at as u64, tag)
            });
        });
        pos = part_end;
    }
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
    if !phys.read_into(offset, raw) {
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
            if !phys.read_into(body_start, &mut copy) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
