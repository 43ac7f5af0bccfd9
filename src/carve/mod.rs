//! The carve: pool-tag search → header checks → decoding → calibration → records, one way.
//!
//! Steps, bottom to top: [`pool`] (pool headers and candidates), [`slots`] and [`search`] (the tag
//! search over the file's windows), [`decode`] (candidate → record), [`calibrate`] (offsets found
//! from the objects themselves), [`scoring`] (candidate profiles scored by what each decodes);
//! this file runs them over one image. Each step imports only the
//! steps below it.
use crate::carve::calibrate::Tally;
use crate::carve::decode::{DecodeEnv, Decoded, FieldChoice, Overrides, OwnerCache};
use crate::carve::pool::{Candidate, PAGE_SIZE};
use crate::carve::search::{find_tags_with, TagHit, TagSet};
use crate::container::PhysicalSpace;
use crate::filetime::TimeWindow;
use crate::paging::{AddressSpace, PagingMode, VirtualMemory};
use crate::profile::Profile;
use crate::record::{EndpointRecord, Hex};
use rayon::prelude::*;

pub mod calibrate;
pub mod decode;
pub mod health;
pub mod linked;
pub mod pool;
pub mod scoring;
pub mod search;
mod slots;

/// `--include-corrupt` shows at most this many corrupt candidates, the first by (physical offset,
/// tag), and counts the rest: a flood of junk headers would otherwise hold a record for every 16
/// bytes of the image.
pub const MAX_CORRUPT_ROWS: usize = 10_000;

/// What carving produced before image facts are attached.
#[derive(Clone, Debug, Default)]
pub struct Carved {
    pub endpoints: Vec<EndpointRecord>,
    /// The first [`MAX_CORRUPT_ROWS`] corrupt candidates (`--include-corrupt`).
    pub corrupt: Vec<EndpointRecord>,
    /// Corrupt candidates found beyond those.
    pub corrupt_omitted: u64,
    pub calibration: Vec<serde_json::Value>,
    /// Per object kind, the checks candidates passed and the time-slot census.
    pub health: Vec<health::KindHealth>,
    /// How the records met tcpip's tables.
    pub tables: linked::MergeCounts,
    /// tcpip's table blocks found by the search: (physical address of the header, tag).
    pub table_blocks: Vec<(u64, [u8; 4])>,
    /// The offsets the records were decoded with (calibration's), for objects decoded later.
    pub overrides: Overrides,
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
    /// Also collect the allocated blocks with these tags (tcpip's table blocks, for the pool-tag
    /// route); empty for none.
    pub block_tags: &'a [[u8; 4]],
}

/// Tag search, header checks, calibration, decoding. Virtual addresses are filled in by the caller
/// (`scan_image`), which knows the page tables.
pub fn carve(phys: &PhysicalSpace, p: &CarveParams) -> Carved {
    let mut tags = TagSet::from_profile(p.profile);
    if !p.block_tags.is_empty() {
        tags = tags.with_structures(p.block_tags);
    }
    let owners = OwnerCache::default();
    let base_env = decode_env(p, Overrides::default(), &owners);
    // Each accepted candidate is decoded as soon as it is found, and dropped there when it is
    // structurally invalid (unless asked for): on a flood of tag-bearing garbage, holding every
    // candidate until a later pass would make the heap grow with the image. Validity does not
    // depend on the owner and time offsets that calibration may move, so nothing dropped here
    // could become valid on the second pass.
    let keep = |d: &Decoded| p.include_corrupt || matches!(d, Decoded::Valid(..));
    // Corrupt candidates are counted per unit, and only a unit's first MAX_CORRUPT_ROWS are kept:
    // no more of them can be among the first of the image.
    let cut = CorruptCut::default();
    let rejected = health::RejectCounts::default();
    let mut units: Vec<UnitFinds> = find_tags_with(
        phys,
        p.profile.arch,
        &tags,
        p.chunk_size,
        p.include_corrupt,
        p.progress,
        &|h: TagHit, corrupt_seen: &mut u64| {
            let d = match h.rejected {
                Some(_) => None,
                None => Some(decode::decode(&h.candidate, &base_env)),
            };
            match &d {
                Some(Decoded::Valid(..)) => return Some((h, d)),
                Some(Decoded::Corrupt(r)) => {
                    rejected.add(h.candidate.kind, r.reason.as_deref().unwrap_or(""))
                }
                None => {}
            }
            if !d.as_ref().is_none_or(keep) {
                return None;
            }
            *corrupt_seen += 1;
            (*corrupt_seen <= MAX_CORRUPT_ROWS as u64).then_some((h, d))
        },
        &|hits, corrupt_seen| {
            let mut unit = UnitFinds::from_hits(hits, &p.times);
            unit.corrupt_seen = corrupt_seen;
            cut.trim(&mut unit);
            unit
        },
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
    let ((mut carved, overrides), (pages, virtual_of_page)) = rayon::join(
        || settle(units, base_env, &keep, &rejected),
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
    carved.overrides = overrides;
    carved.table_blocks = tags.structure_hits();
    carved
}

/// Marks the records with what tcpip's tables hold and adds the objects only the walk found,
/// decoded with the carve's final offsets and counted in the layout health.
pub fn merge_tables(carved: &mut Carved, finds: Option<&linked::TableFinds>, p: &CarveParams) {
    let owners = OwnerCache::default();
    let env = decode_env(p, carved.overrides.clone(), &owners);
    let corrupt = p.include_corrupt.then_some(&mut carved.corrupt);
    carved.tables = linked::merge(&mut carved.endpoints, corrupt, finds, &env);
    let walk_only: Vec<EndpointRecord> = carved
        .endpoints
        .iter()
        .filter(|r| r.found_by == [crate::record::FoundBy::Table])
        .cloned()
        .collect();
    health::add_walk_only(&mut carved.health, p.profile, &walk_only);
    // Walk-only rows that did not decode join the corrupt rows under the same cap.
    let excess = carved.corrupt.len().saturating_sub(MAX_CORRUPT_ROWS);
    carved.corrupt.truncate(MAX_CORRUPT_ROWS);
    carved.corrupt_omitted += excess as u64;
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
/// calibration, to move them into one vector) would be the longest serial step after the search.
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
    /// Headers that failed the checks (passed on only with `--include-corrupt`), and their rows.
    rejected: Vec<TagHit<'a>>,
    rejected_records: Vec<EndpointRecord>,
    /// Corrupt candidates (invalid records and rejected headers) the unit found, kept or not.
    corrupt_seen: u64,
    /// The valid records counted for calibration.
    tally: Tally,
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
        unit.rejected_records = unit
            .rejected
            .iter()
            .map(|h| decode::header_only_record(&h.candidate, h.rejected))
            .collect();
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

/// The sort keys of the first [`MAX_CORRUPT_ROWS`] corrupt records seen so far, across units: a
/// unit's corrupt records that sort after all of them can never be shown and are dropped as soon as
/// the unit is done. What is finally shown (the first by key of all) does not depend on the order
/// units finish in, so not on the thread count.
#[derive(Default)]
struct CorruptCut {
    first: std::sync::Mutex<std::collections::BTreeSet<(u64, String)>>,
}

impl CorruptCut {
    fn trim(&self, unit: &mut UnitFinds) {
        if unit.corrupt.is_empty() && unit.rejected_records.is_empty() {
            return;
        }
        let key = |r: &EndpointRecord| (r.physical_offset.0, r.tag.clone());
        let last = {
            // A poisoned lock only means another worker panicked; its set is still a valid bound.
            let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
            first.extend(unit.corrupt.iter().chain(&unit.rejected_records).map(key));
            while first.len() > MAX_CORRUPT_ROWS {
                first.pop_last();
            }
            if first.len() < MAX_CORRUPT_ROWS {
                return;
            }
            first.last().cloned()
        };
        let Some(last) = last else { return };
        let shown = |r: &EndpointRecord| key(r) <= last;
        let mut keep = unit
            .corrupt
            .iter()
            .map(shown)
            .collect::<Vec<_>>()
            .into_iter();
        unit.corrupt_candidates
            .retain(|_| keep.next().unwrap_or(false));
        unit.corrupt.retain(shown);
        let mut keep = unit
            .rejected_records
            .iter()
            .map(shown)
            .collect::<Vec<_>>()
            .into_iter();
        unit.rejected.retain(|_| keep.next().unwrap_or(false));
        unit.rejected_records.retain(shown);
    }
}

/// After the search: calibration, a second decoding if it moved an offset, and the records
/// gathered and sorted.
fn settle(
    mut units: Vec<UnitFinds>,
    base_env: DecodeEnv,
    keep: &(dyn Fn(&Decoded) -> bool + Sync),
    rejected: &health::RejectCounts,
) -> (Carved, Overrides) {
    let mut tally = Tally::default();
    for unit in &units {
        tally.merge(&unit.tally);
    }
    // The records are walked again only when some slot has to be searched.
    let calibration = if calibrate::votes_needed(&tally, &base_env) {
        let valid: Vec<(&Candidate, &EndpointRecord)> = units
            .iter()
            .flat_map(|u| u.valid_candidates.iter().zip(&u.valid))
            .collect();
        calibrate::calibrate_decoded(&valid, &base_env)
    } else {
        calibrate::Calibration::default()
    };
    let (overrides, census) = (calibration.overrides, calibration.census);
    crate::timings::mark("calibrated");
    let recalibrated = overrides != Overrides::default();
    let env = DecodeEnv {
        overrides,
        ..base_env
    };
    let mut carved = Carved {
        calibration: calibration.report,
        ..Carved::default()
    };
    let mut choices = vec![];
    if recalibrated {
        // Every object decoded the first time is decoded again with the calibrated offsets.
        let decoded: Vec<Decoded> = units
            .par_iter()
            .flat_map_iter(|u| u.valid_candidates.iter().chain(&u.corrupt_candidates))
            .map(|c| decode::decode(c, &env))
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
    let corrupt_seen: u64 = units.iter().map(|u| u.corrupt_seen).sum();
    for unit in &mut units {
        carved.corrupt.append(&mut unit.rejected_records);
    }
    crate::timings::mark("records gathered");
    carved
        .endpoints
        .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    carved
        .corrupt
        .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    carved.corrupt.truncate(MAX_CORRUPT_ROWS);
    carved.corrupt_omitted = corrupt_seen.saturating_sub(carved.corrupt.len() as u64);
    carved.health = health::health(env.profile, &carved.endpoints, rejected, &census);
    (carved, env.overrides)
}

/// What decoding needs of a carve's parameters, with `overrides`.
fn decode_env<'a>(
    p: &CarveParams<'a>,
    overrides: Overrides,
    owners: &'a OwnerCache,
) -> DecodeEnv<'a> {
    DecodeEnv {
        profile: p.profile,
        mem: p.mem,
        times: p.times,
        dtb_align: decode::dtb_alignment(p.mode),
        overrides,
        owners,
    }
}
