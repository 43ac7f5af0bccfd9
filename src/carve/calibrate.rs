//! Self-calibration: finding owner and create-time offsets from the data when the profile cannot be
//! trusted (confidence `inferred`, or most owners of a kind fail to validate). Owner and CreateTime
//! drift with the tcpip.sys patch level inside one build, and no source covers every build, so the
//! slot that most often points at a valid `_EPROCESS`, and the slot that most often holds a FILETIME
//! between boot and acquisition, are better evidence than a table.
use crate::bytes::ReadBytes;
use crate::carve::decode::{DecodeEnv, FieldChoice, ObjectBytes, Overrides};
use crate::carve::health::Census;
use crate::carve::pool::Candidate;
use crate::filetime::TimeWindow;
use crate::profile::{kind_fields, Confidence, ObjectKind};
use crate::record::EndpointRecord;
use rayon::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Slots past this are not searched: every known owner/time offset is below it.
const SEARCH_LIMIT: u64 = 0x400;

/// The best slot of a search and its evidence.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct SlotVote {
    pub offset: u64,
    pub hits: usize,
}

/// What calibration's decisions rest on, per object kind, counted over the structurally valid
/// records. The scan keeps it as it decodes, while each record is in cache: a profile whose offsets
/// hold (the usual case) is then confirmed without walking thousands of records again.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally([KindTally; ObjectKind::ALL.len()]);

/// [`Tally`] for one object kind.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct KindTally {
    /// Valid records of the kind.
    pub total: usize,
    /// ... whose owner resolved to a process.
    pub owned: usize,
    /// ... with a non-zero create time.
    pub timed: usize,
    /// ... with a create time between boot and acquisition (zero when either is unknown).
    pub in_window: usize,
}

impl Tally {
    /// Counts one valid record of `kind`.
    pub fn add(&mut self, kind: ObjectKind, record: &EndpointRecord, times: &TimeWindow) {
        let k = &mut self.0[kind as usize];
        k.total += 1;
        k.owned += usize::from(record.pid.is_some());
        if let Some(t) = record.create_time_raw.filter(|&t| t != 0) {
            k.timed += 1;
            k.in_window += usize::from(in_window(times, t));
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        for (k, o) in self.0.iter_mut().zip(&other.0) {
            k.total += o.total;
            k.owned += o.owned;
            k.timed += o.timed;
            k.in_window += o.in_window;
        }
    }

    pub fn kind(&self, kind: ObjectKind) -> KindTally {
        self.0[kind as usize]
    }

    /// The kinds with at least one valid record.
    fn kinds(&self) -> impl Iterator<Item = (ObjectKind, KindTally)> + '_ {
        ObjectKind::ALL
            .into_iter()
            .map(|kind| (kind, self.kind(kind)))
            .filter(|(_, k)| k.total > 0)
    }
}

/// A non-zero FILETIME that both known bounds place between boot and acquisition: evidence of a
/// time field.
fn in_window(times: &TimeWindow, t: u64) -> bool {
    t != 0 && times.contains(t) == Some(true)
}

/// The owner slot is searched when the profile is inferred or fewer than half the owners resolve.
fn owner_vote_needed(k: KindTally, inferred: bool) -> bool {
    inferred || k.owned * 2 < k.total
}

/// The time slot is searched when the profile is inferred, the owner slot moved (the time slot is
/// found relative to it), or fewer than half the non-zero times fall between boot and acquisition.
fn time_vote_needed(k: KindTally, inferred: bool, owner_moved: bool) -> bool {
    inferred || owner_moved || k.in_window * 2 < k.timed
}

/// The census of time slots runs when the profile's slot holds no time in the window for most
/// objects (zero or out of range count against it, unlike the time vote), and for layouts without
/// a time field, whose absence it confirms or refutes from memory.
fn census_needed(k: KindTally, has_time_field: bool) -> bool {
    !has_time_field || k.in_window * 2 < k.total
}

/// Whether [`calibrate_decoded`] would search any slot for records counted in `tally`; when not,
/// it returns no overrides and no report, and the records need not be walked.
pub fn votes_needed(tally: &Tally, env: &DecodeEnv) -> bool {
    let inferred = env.profile.confidence == Confidence::Inferred;
    let times_known = env.times.boot.is_some() && env.times.acquisition.is_some();
    tally.kinds().any(|(kind, k)| {
        let Some(fields) = kind_fields(env.profile, kind) else {
            return false;
        };
        let has_time_field = fields.create_time.off().is_some();
        inferred
            || (fields.owner.is_some() && owner_vote_needed(k, false))
            || (times_known && has_time_field && time_vote_needed(k, false, false))
            || (times_known && census_needed(k, has_time_field))
    })
}

/// What calibration found: the offsets to decode with, the report entries, and the time-slot
/// census of each kind it ran for.
#[derive(Debug, Default)]
pub struct Calibration {
    pub overrides: Overrides,
    pub report: Vec<Value>,
    pub census: BTreeMap<ObjectKind, Census>,
}

/// Runs calibration on the structurally valid candidates, each beside its record decoded with
/// `env` (so that the scan decodes every object once when no offset moves). Returns the overrides
/// to decode with and one report entry per calibrated field (`ProfileUse::calibration`). Only valid
/// objects vote: decoys and garbage would dilute the evidence.
pub fn calibrate_decoded(valid: &[(&Candidate, &EndpointRecord)], env: &DecodeEnv) -> Calibration {
    let mut overrides = Overrides::default();
    let mut report = vec![];
    let mut censuses = BTreeMap::new();
    let inferred = env.profile.confidence == Confidence::Inferred;
    // One pass sorts them by kind (the records are many and no longer in cache).
    let mut by_kind: BTreeMap<ObjectKind, Vec<(&Candidate, &EndpointRecord)>> = BTreeMap::new();
    let mut tally = Tally::default();
    for &(c, r) in valid {
        tally.add(c.kind, r, &env.times);
        by_kind.entry(c.kind).or_default().push((c, r));
    }
    for (kind, decoded) in by_kind {
        let Some(fields) = kind_fields(env.profile, kind) else {
            continue;
        };
        let counts = tally.kind(kind);
        let total = counts.total;
        let objects: Vec<ObjectBytes> = decoded
            .iter()
            .map(|(c, _)| ObjectBytes {
                bytes: usize::try_from(fields.body_offset)
                    .ok()
                    .and_then(|o| c.body.get(o..))
                    .unwrap_or(&[]),
                pointer_size: env.profile.pointer_size(),
            })
            .collect();
        // A kind has one or two tags (TcpE, TTcb).
        let mut tags: Vec<&str> = vec![];
        for (_, r) in &decoded {
            if !tags.contains(&r.tag.as_str()) {
                tags.push(&r.tag);
            }
        }
        tags.sort_unstable();

        let mut owner_offset = fields.owner.and_then(|f| f.off());
        let mut owner_moved = false;
        if let Some(owner_field) = fields.owner {
            let owned = counts.owned;
            if owner_vote_needed(counts, inferred) {
                if let Some(vote) = best_owner_slot(&objects, env, owner_field.off()) {
                    let moved = Some(vote.offset) != owner_field.off() && vote.hits > owned;
                    if moved {
                        overrides.owner.insert(kind, vote.offset);
                        owner_offset = Some(vote.offset);
                        owner_moved = true;
                    }
                    if moved || inferred {
                        report.push(entry(
                            kind,
                            &tags,
                            "owner",
                            owner_field.off(),
                            vote,
                            owned,
                            total,
                            moved,
                        ));
                    }
                }
            }
        }

        let time_field = fields.create_time;
        let (Some(_), Some(_)) = (env.times.boot, env.times.acquisition) else {
            continue;
        };
        let in_window = |v: u64| in_window(&env.times, v);
        // Judged on the decoded records, so a profile alternative that works counts as working.
        let good = counts.in_window;
        let mut census_used = false;
        if census_needed(counts, time_field.off().is_some()) {
            let (best, next_hits) = census_votes(&objects, &in_window);
            let census = Census::decide(
                &tags.join("/"),
                total,
                time_field.off(),
                good,
                best,
                next_hits,
            );
            if let (true, Some((offset, hits))) = (census.used, best) {
                overrides.create_time.insert(kind, offset);
                census_used = true;
                let mut e = entry(
                    kind,
                    &tags,
                    "create_time",
                    time_field.off(),
                    SlotVote { offset, hits },
                    good,
                    total,
                    true,
                );
                e["method"] = "time-slot census".into();
                report.push(e);
            }
            censuses.insert(kind, census);
        }
        // A layout without a time field (Vista to 8.1 TcpE) has nothing to calibrate.
        let Some(profile_time) = time_field.off() else {
            continue;
        };
        if !census_used && time_vote_needed(counts, inferred, owner_moved) {
            if let Some(vote) = best_time_slot(&objects, &in_window, owner_offset, profile_time) {
                let moved = vote.offset != profile_time && vote.hits > good;
                if moved {
                    overrides.create_time.insert(kind, vote.offset);
                }
                if moved || inferred {
                    report.push(entry(
                        kind,
                        &tags,
                        "create_time",
                        Some(profile_time),
                        vote,
                        good,
                        total,
                        moved,
                    ));
                }
            }
        }
    }
    Calibration {
        overrides,
        report,
        census: censuses,
    }
}

/// The census over every 8-aligned slot: the best slot with its hits (ties to the lower offset,
/// so the answer does not depend on order; `None` when no slot holds a time anywhere) and the
/// runner-up's hits.
fn census_votes(
    objects: &[ObjectBytes],
    in_window: &(dyn Fn(u64) -> bool + Sync),
) -> (Option<(u64, usize)>, usize) {
    let mut votes: Vec<(u64, usize)> = time_slot_hits(objects, in_window)
        .into_iter()
        .map(|v| (v.offset, v.hits))
        .collect();
    votes.sort_by_key(|&(offset, hits)| (std::cmp::Reverse(hits), offset));
    (
        votes.first().copied(),
        votes.get(1).map_or(0, |&(_, hits)| hits),
    )
}

/// Every 8-aligned slot of the objects that holds a FILETIME in the window in at least one of
/// them, with how many: what both the time vote and the census rank.
fn time_slot_hits(
    objects: &[ObjectBytes],
    in_window: &(dyn Fn(u64) -> bool + Sync),
) -> Vec<SlotVote> {
    let slots: Vec<u64> = (0..slot_limit(objects)).step_by(8).collect();
    slots
        .par_iter()
        .map(|&offset| SlotVote {
            offset,
            hits: objects
                .iter()
                .filter(|o| o.bytes.read_u64(offset).is_some_and(in_window))
                .count(),
        })
        .filter(|v| v.hits > 0)
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn entry(
    kind: ObjectKind,
    tags: &[&str],
    field: &str,
    profile_offset: Option<u64>,
    vote: SlotVote,
    profile_hits: usize,
    total: usize,
    used: bool,
) -> Value {
    json!({
        "kind": kind.name(),
        "tags": tags,
        "field": field,
        "method": "self-calibration",
        "profile_offset": profile_offset.map(|o| format!("{o:#x}")),
        "calibrated_offset": format!("{:#x}", vote.offset),
        "hits": vote.hits,
        "profile_hits": profile_hits,
        "total": total,
        "used": used,
    })
}

fn slot_limit(objects: &[ObjectBytes]) -> u64 {
    let longest = objects.iter().map(|o| o.bytes.len()).max().unwrap_or(0) as u64;
    longest.min(SEARCH_LIMIT)
}

/// The pointer-aligned slot that most often points at a valid `_EPROCESS`. Ties go to the slot
/// nearest the profile's offset, then the lower one, so the answer does not depend on order.
fn best_owner_slot(
    objects: &[ObjectBytes],
    env: &DecodeEnv,
    profile_offset: Option<u64>,
) -> Option<SlotVote> {
    let step = env.profile.pointer_size();
    let slots: Vec<u64> = (0..slot_limit(objects)).step_by(step as usize).collect();
    let votes: Vec<SlotVote> = slots
        .par_iter()
        .map(|&offset| SlotVote {
            offset,
            hits: objects
                .iter()
                .filter(|o| o.ptr(offset).is_some_and(|va| env.owner(va).is_some()))
                .count(),
        })
        .collect();
    let anchor = profile_offset.unwrap_or(0);
    votes.into_iter().filter(|v| v.hits > 0).min_by_key(|v| {
        (
            std::cmp::Reverse(v.hits),
            v.offset.abs_diff(anchor),
            v.offset,
        )
    })
}

/// The 8-aligned slot that most often holds a FILETIME in the window. Ties go to the slot nearest
/// Owner+0x10/+0x18 (where the sources put CreateTime on Windows 10), then the profile's offset.
fn best_time_slot(
    objects: &[ObjectBytes],
    in_window: &(dyn Fn(u64) -> bool + Sync),
    owner_offset: Option<u64>,
    profile_offset: u64,
) -> Option<SlotVote> {
    let votes = time_slot_hits(objects, in_window);
    let near_owner = |off: u64| match owner_offset {
        Some(o) => off
            .abs_diff(o.saturating_add(0x10))
            .min(off.abs_diff(o.saturating_add(0x18))),
        None => 0,
    };
    votes.into_iter().min_by_key(|v| {
        (
            std::cmp::Reverse(v.hits),
            near_owner(v.offset),
            v.offset.abs_diff(profile_offset),
            v.offset,
        )
    })
}

/// Report entries for fields decoded through a profile `alternatives` offset instead of the
/// primary one: which offset, for how many records of the kind.
pub fn alternatives_used<'d>(
    choices: impl IntoIterator<Item = &'d FieldChoice>,
    env: &DecodeEnv,
) -> Vec<Value> {
    // (kind, field, used offset) → records; kind → records of that kind.
    let mut used: BTreeMap<(ObjectKind, &'static str, u64), usize> = BTreeMap::new();
    let mut totals: BTreeMap<ObjectKind, usize> = BTreeMap::new();
    for choice in choices {
        *totals.entry(choice.kind).or_default() += 1;
        let Some(fields) = kind_fields(env.profile, choice.kind) else {
            continue;
        };
        if !env.overrides.owner.contains_key(&choice.kind) {
            if let (Some(f), Some(off)) = (fields.owner, choice.owner_offset) {
                if f.off() != Some(off) {
                    *used.entry((choice.kind, "owner", off)).or_default() += 1;
                }
            }
        }
        if !env.overrides.create_time.contains_key(&choice.kind) {
            if let Some(off) = choice.time_offset {
                if fields.create_time.off() != Some(off) {
                    *used.entry((choice.kind, "create_time", off)).or_default() += 1;
                }
            }
        }
    }
    used.into_iter()
        .map(|((kind, field, off), records)| {
            let primary = kind_fields(env.profile, kind).and_then(|f| match field {
                "owner" => f.owner.and_then(|o| o.off()),
                _ => f.create_time.off(),
            });
            json!({
                "kind": kind.name(),
                "field": field,
                "method": "profile-alternative",
                "profile_offset": primary.map(|o| format!("{o:#x}")),
                "calibrated_offset": format!("{off:#x}"),
                "hits": records,
                "total": totals.get(&kind).copied().unwrap_or(0),
                "used": true,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::ReadBytes;
    use crate::carve::decode::OwnerCache;
    use crate::paging::VirtualMemory;

    struct NoMemory;
    impl ReadBytes for NoMemory {
        fn read_into(&self, _: u64, _: &mut [u8]) -> bool {
            false
        }
    }

    impl VirtualMemory for NoMemory {
        fn pointer_size(&self) -> u64 {
            8
        }
    }

    fn record(pid: Option<u32>, create_time_raw: Option<u64>) -> EndpointRecord {
        EndpointRecord {
            pid,
            create_time_raw,
            ..EndpointRecord::sample()
        }
    }

    const BOOT: u64 = 1_000;
    const ACQUIRED: u64 = 2_000;

    /// `(pid, time)` records of one kind, counted; `times_known` sets the boot/acquisition window.
    fn tally_of(records: &[(Option<u32>, Option<u64>)], times_known: bool) -> (Tally, TimeWindow) {
        let times = match times_known {
            true => TimeWindow {
                boot: Some(BOOT),
                acquisition: Some(ACQUIRED),
            },
            false => TimeWindow::default(),
        };
        let mut tally = Tally::default();
        for &(pid, t) in records {
            tally.add(ObjectKind::TcpListener, &record(pid, t), &times);
        }
        (tally, times)
    }

    fn needed(profile: &str, tally: &Tally, times: TimeWindow) -> bool {
        let owners = OwnerCache::default();
        let env = DecodeEnv {
            profile: crate::profile::by_name(profile).unwrap(),
            mem: &NoMemory,
            times,
            dtb_align: 0x1000,
            overrides: Overrides::default(),
            owners: &owners,
        };
        votes_needed(tally, &env)
    }

    #[test]
    fn tally_counts_owners_and_times_in_the_window() {
        let (tally, _) = tally_of(
            &[
                (Some(4), Some(BOOT)),
                (None, Some(ACQUIRED)),
                (Some(8), Some(ACQUIRED + 1)),
                (Some(8), Some(0)),
                (None, None),
            ],
            true,
        );
        let want = KindTally {
            total: 5,
            owned: 3,
            timed: 3,
            in_window: 2,
        };
        assert_eq!(tally.kind(ObjectKind::TcpListener), want);
        assert_eq!(tally.kind(ObjectKind::UdpEndpoint), KindTally::default());
        let mut twice = tally;
        twice.merge(&tally);
        assert_eq!(twice.kind(ObjectKind::TcpListener).total, 10);
        assert_eq!(twice.kind(ObjectKind::TcpListener).in_window, 4);
        // Without a known window no time counts as inside it.
        let (unknown, _) = tally_of(&[(Some(4), Some(BOOT + 1))], false);
        assert_eq!(unknown.kind(ObjectKind::TcpListener).in_window, 0);
    }

    /// The walk over the records is skipped exactly when no slot would be searched: a trusted
    /// profile whose owners and times mostly hold.
    #[test]
    fn votes_are_needed_when_owners_or_times_mostly_fail_or_the_profile_is_inferred() {
        let trusted = "win10-19041-x64";
        let good = Some(BOOT + 1);
        let bad = Some(ACQUIRED + 1);
        let case = |records: &[(Option<u32>, Option<u64>)], times_known: bool| {
            let (tally, times) = tally_of(records, times_known);
            needed(trusted, &tally, times)
        };
        assert!(!case(&[(Some(4), good), (Some(4), good)], true));
        // Half the owners resolve: enough. Fewer: search.
        assert!(!case(&[(Some(4), good), (None, good)], true));
        assert!(case(&[(Some(4), good), (None, good), (None, good)], true));
        // Half the times in the window: enough; fewer: search, whether the others are out of
        // range or zero (a slot that holds zero in most objects is the census's case).
        assert!(!case(&[(Some(4), good), (Some(4), bad)], true));
        assert!(!case(&[(Some(4), good), (Some(4), Some(0))], true));
        assert!(case(
            &[(Some(4), good), (Some(4), bad), (Some(4), bad)],
            true
        ));
        assert!(case(
            &[(Some(4), good), (Some(4), Some(0)), (Some(4), Some(0))],
            true
        ));
        // Times are judged only against a known window.
        assert!(!case(&[(Some(4), bad), (Some(4), bad)], false));
        // An inferred profile always searches; an empty tally never does.
        let inferred = crate::profile::builtin()
            .iter()
            .find(|p| p.confidence == Confidence::Inferred)
            .expect("an inferred built-in profile");
        let (tally, times) = tally_of(&[(Some(4), good)], true);
        assert!(needed(&inferred.name, &tally, times));
        assert!(!needed(trusted, &Tally::default(), times));
    }
}
