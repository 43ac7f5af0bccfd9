//! Self-calibration: finding owner and create-time offsets from the data when the profile cannot be
//! trusted (confidence `inferred`, or most owners of a kind fail to validate). Owner and CreateTime
//! drift with the tcpip.sys patch level inside one build, and no source covers every build, so the
//! slot that most often points at a valid `_EPROCESS`, and the slot that most often holds a FILETIME
//! between boot and acquisition, are better evidence than a table.
use crate::endpoint::{
    self, kind_fields, DecodeEnv, Decoded, FieldChoice, ObjectBytes, ObjectKind,
};
use crate::profile::Confidence;
use crate::scan::Candidate;
use rayon::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Slots past this are not searched: every known owner/time offset is below it.
pub const SEARCH_LIMIT: u64 = 0x400;

/// Calibrated offsets, per object kind; they replace the profile's offsets for that kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub owner: BTreeMap<ObjectKind, u64>,
    pub create_time: BTreeMap<ObjectKind, u64>,
}

/// The best slot of a search and its evidence.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SlotVote {
    pub offset: u64,
    pub hits: usize,
}

/// Runs calibration on the candidates that passed the header checks. Returns the overrides to
/// decode with and one report entry per calibrated field (`ProfileUse::calibration`).
pub fn calibrate(candidates: &[Candidate], env: &DecodeEnv) -> (Overrides, Vec<Value>) {
    let decoded: Vec<Decoded> = candidates
        .par_iter()
        .map(|c| endpoint::decode(c, env))
        .collect();
    let pairs: Vec<(&Candidate, &Decoded)> = candidates.iter().zip(&decoded).collect();
    calibrate_decoded(&pairs, env)
}

/// `calibrate` with candidates already decoded with `env` (each beside its decode; corrupt ones
/// may be left out, they do not vote), so that the scan decodes every object once when no offset
/// moves.
pub fn calibrate_decoded(
    decoded: &[(&Candidate, &Decoded)],
    env: &DecodeEnv,
) -> (Overrides, Vec<Value>) {
    let mut overrides = Overrides::default();
    let mut report = vec![];
    let inferred = env.profile.confidence == Confidence::Inferred;
    // Only structurally valid objects vote: decoys and garbage would dilute the evidence. One pass
    // sorts them by kind (the records are many and no longer in cache).
    let mut by_kind: BTreeMap<ObjectKind, Vec<(&Candidate, &crate::record::EndpointRecord)>> =
        BTreeMap::new();
    for &(c, d) in decoded {
        if let Decoded::Valid(r, _) = d {
            by_kind.entry(c.kind).or_default().push((c, r));
        }
    }
    for (kind, decoded) in by_kind {
        let Some(fields) = kind_fields(env.profile, kind) else {
            continue;
        };
        let total = decoded.len();
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
            let owned = decoded.iter().filter(|(_, r)| r.pid.is_some()).count();
            if inferred || owned * 2 < total {
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
        let (Some(boot), Some(acquisition)) = (env.times.boot, env.times.acquisition) else {
            continue;
        };
        // A layout without a time field (Vista to 8.1 TcpE) has nothing to calibrate.
        let Some(profile_time) = time_field.off() else {
            continue;
        };
        let in_window = |v: u64| v != 0 && v >= boot && v <= acquisition;
        // Judged on the decoded records, so a profile alternative that works counts as working.
        let times: Vec<u64> = decoded
            .iter()
            .filter_map(|(_, r)| r.create_time_raw)
            .collect();
        let nonzero = times.iter().filter(|&&v| v != 0).count();
        let good = times.iter().filter(|&&v| in_window(v)).count();
        if inferred || owner_moved || good * 2 < nonzero {
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
    (overrides, report)
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
pub fn best_owner_slot(
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
pub fn best_time_slot(
    objects: &[ObjectBytes],
    in_window: &(dyn Fn(u64) -> bool + Sync),
    owner_offset: Option<u64>,
    profile_offset: u64,
) -> Option<SlotVote> {
    let slots: Vec<u64> = (0..slot_limit(objects)).step_by(8).collect();
    let votes: Vec<SlotVote> = slots
        .par_iter()
        .map(|&offset| SlotVote {
            offset,
            hits: objects
                .iter()
                .filter(|o| o.u64(offset).is_some_and(in_window))
                .count(),
        })
        .collect();
    let near_owner = |off: u64| match owner_offset {
        Some(o) => off
            .abs_diff(o.saturating_add(0x10))
            .min(off.abs_diff(o.saturating_add(0x18))),
        None => 0,
    };
    votes.into_iter().filter(|v| v.hits > 0).min_by_key(|v| {
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
