//! Layout health: per object kind, how many candidates passed each check (decoding's structure
//! checks, a valid owner, a create time between boot and acquisition), and the time-slot census.
//! A layout wrong for this image shows here at once, instead of being taken on trust.
use crate::profile::{kind_fields, ObjectKind, Profile};
use crate::record::{flag, EndpointRecord};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Below this many objects of a kind neither a warning nor a census decision is worth making.
const MIN_OBJECTS: usize = 8;

/// Why decoding rejected a candidate whose pool header passed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Rejection {
    Family,
    State,
    Other,
}

impl Rejection {
    fn of(reason: &str) -> Rejection {
        if reason.starts_with("address family") {
            Rejection::Family
        } else if reason.starts_with("TCP state") || reason.starts_with("state ") {
            Rejection::State
        } else {
            Rejection::Other
        }
    }
}

/// Rejected candidates per kind and reason, counted by the workers as they decode (rejected
/// candidates are dropped there, unless `--include-corrupt`).
#[derive(Default)]
pub struct RejectCounts([[AtomicUsize; 3]; ObjectKind::ALL.len()]);

impl RejectCounts {
    pub fn add(&self, kind: ObjectKind, reason: &str) {
        let slot = match Rejection::of(reason) {
            Rejection::Family => 0,
            Rejection::State => 1,
            Rejection::Other => 2,
        };
        self.0[kind as usize][slot].fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self, kind: ObjectKind, slot: usize) -> usize {
        self.0[kind as usize][slot].load(Ordering::Relaxed)
    }
}

/// What the time-slot census found for one kind: over every 8-aligned slot of the decoded span,
/// how many objects hold a FILETIME between boot and acquisition there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Census {
    pub objects: usize,
    /// The profile's CreateTime offset (`null`: the layout has no time field) and its hits.
    pub profile_slot: Option<String>,
    pub profile_hits: usize,
    pub best_slot: Option<String>,
    pub best_hits: usize,
    /// Hits of the runner-up slot: a decisive best is far ahead of it.
    pub next_hits: usize,
    /// Over 80% of at least [`MIN_OBJECTS`] objects, and at least twice the runner-up.
    pub decisive: bool,
    /// Whether the best slot was used to decode (flag `calibrated`).
    pub used: bool,
    /// The finding in one sentence, as the compare research summary quotes it.
    pub finding: String,
}

impl Census {
    pub fn decide(
        kind_tags: &str,
        objects: usize,
        profile_slot: Option<u64>,
        profile_hits: usize,
        best: Option<(u64, usize)>,
        next_hits: usize,
    ) -> Census {
        let (best_slot, best_hits) = best.unwrap_or((0, 0));
        let decisive =
            objects >= MIN_OBJECTS && best_hits * 10 > objects * 8 && best_hits >= 2 * next_hits;
        let used = decisive && profile_slot.is_some() && profile_slot != Some(best_slot);
        let pct = |hits: usize| percent(hits, objects);
        let head = format!("{kind_tags} ({objects} objects)");
        let nowhere = if best_hits == 0 {
            "in any of them".to_string()
        } else {
            format!("in more than {}% of them", percent_up(best_hits, objects))
        };
        let finding = match (profile_slot, decisive) {
            _ if objects < MIN_OBJECTS => {
                format!("{head}: too few objects for the census to tell")
            }
            (None, false) => format!(
                "{head}: no slot holds a time between boot and acquisition {nowhere}: \
                 consistent with no time field"
            ),
            (None, true) => format!(
                "{head}: slot {best_slot:#x} holds a time between boot and acquisition in {}%: a \
                 time field the profile does not have",
                pct(best_hits)
            ),
            (Some(p), true) if used => format!(
                "{head}: the profile's slot {p:#x} holds a time in {}%, slot {best_slot:#x} in {}%: \
                 decoded with {best_slot:#x}",
                pct(profile_hits),
                pct(best_hits)
            ),
            (Some(p), true) => format!(
                "{head}: the profile's slot {p:#x} holds a time in {}%: confirmed",
                pct(profile_hits)
            ),
            (Some(p), false) => format!(
                "{head}: the profile's slot {p:#x} holds a time in {}%, and no slot holds one \
                 decisively ({nowhere}): times left as read",
                pct(profile_hits)
            ),
        };
        Census {
            objects,
            profile_slot: profile_slot.map(|o| format!("{o:#x}")),
            profile_hits,
            best_slot: best.map(|(o, _)| format!("{o:#x}")),
            best_hits,
            next_hits,
            decisive,
            used,
            finding,
        }
    }
}

/// `hits` of `total` as a whole percentage, rounded down.
fn percent(hits: usize, total: usize) -> usize {
    (hits * 100).checked_div(total).unwrap_or(0)
}

/// Rounded up, so that "no slot ... in more than N%" stays true.
fn percent_up(hits: usize, total: usize) -> usize {
    (hits * 100).div_ceil(total.max(1))
}

/// The checks of one object kind (`profile.health` in scan JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindHealth {
    /// The profile's layout name (`tcp_endpoint`, ...) and its pool tags.
    pub kind: String,
    pub tags: Vec<String>,
    /// Candidates decoding accepted, and those it rejected by the check they failed.
    pub valid: usize,
    pub rejected_family: usize,
    pub rejected_state: usize,
    pub rejected_other: usize,
    /// Valid records whose owner is a valid process (`null`: the layout has no owner field).
    pub owner_valid: Option<usize>,
    pub owner_exited: usize,
    /// The profile's CreateTime offset (`null`: no time field), and what valid records hold there.
    pub time_slot: Option<String>,
    pub time_in_window: usize,
    pub time_zero: usize,
    pub time_out_of_range: usize,
    pub local_addr_unreadable: usize,
    pub remote_addr_unreadable: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub census: Option<Census>,
}

impl KindHealth {
    /// The checks that fail for most of at least [`MIN_OBJECTS`] objects, as warnings.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = vec![];
        let name = self.tags.join("/");
        let candidates = self.valid + self.rejected_family + self.rejected_state;
        let rejected = self.rejected_family + self.rejected_state;
        if candidates >= MIN_OBJECTS && rejected * 2 > candidates {
            out.push(format!(
                "layout health: {name}: {rejected} of {candidates} candidates fail the family or \
                 state check: is the profile right for this image?"
            ));
        }
        let n = self.valid;
        if n < MIN_OBJECTS {
            return out;
        }
        if let Some(owned) = self.owner_valid {
            if owned * 2 < n {
                out.push(format!(
                    "layout health: {name}: the owner of {} of {n} objects is not a valid process",
                    n - owned
                ));
            }
        }
        if let Some(slot) = &self.time_slot {
            let bad = self.time_zero + self.time_out_of_range;
            if bad * 2 > n {
                out.push(format!(
                    "layout health: {name}: the create time at {slot} is zero in {} and out of \
                     range in {} of {n} objects{}",
                    self.time_zero,
                    self.time_out_of_range,
                    match &self.census {
                        Some(c) if c.used => " (census: decoded with a better slot)".to_string(),
                        Some(_) => " (census: no better slot)".to_string(),
                        None => String::new(),
                    }
                ));
            }
        }
        out
    }
}

/// Health of every kind the profile has a layout for and the image holds candidates of.
pub fn health(
    profile: &Profile,
    endpoints: &[EndpointRecord],
    rejected: &RejectCounts,
    census: &std::collections::BTreeMap<ObjectKind, Census>,
) -> Vec<KindHealth> {
    let t = &profile.tcpip;
    let mut out = vec![];
    for kind in ObjectKind::ALL {
        let Some(fields) = kind_fields(profile, kind) else {
            continue;
        };
        let tags: Vec<String> = match kind {
            ObjectKind::TcpEndpoint => t.tcp_endpoint.tags.clone(),
            ObjectKind::TcpListener => t.tcp_listener.tags.clone(),
            ObjectKind::UdpEndpoint => t.udp_endpoint.tags.clone(),
            ObjectKind::TimeWait => t
                .time_wait
                .as_ref()
                .map(|l| l.tags.clone())
                .unwrap_or_default(),
        };
        let records: Vec<&EndpointRecord> =
            endpoints.iter().filter(|r| tags.contains(&r.tag)).collect();
        let has = |r: &&EndpointRecord, f: &str| r.has_flag(f);
        let count = |f: &str| records.iter().filter(|r| has(r, f)).count();
        let h = KindHealth {
            kind: kind.name().to_string(),
            tags: tags.clone(),
            valid: records.len(),
            rejected_family: rejected.get(kind, 0),
            rejected_state: rejected.get(kind, 1),
            rejected_other: rejected.get(kind, 2),
            owner_valid: fields
                .owner
                .map(|_| records.iter().filter(|r| r.pid.is_some()).count()),
            owner_exited: count(flag::OWNER_EXITED),
            time_slot: fields.create_time.off().map(|o| format!("{o:#x}")),
            time_in_window: records
                .iter()
                .filter(|r| {
                    r.create_time_raw.is_some_and(|t| t != 0) && !has(r, flag::TIME_OUT_OF_RANGE)
                })
                .count(),
            time_zero: count(flag::ZERO_TIME),
            time_out_of_range: count(flag::TIME_OUT_OF_RANGE),
            local_addr_unreadable: count(super::decode::FLAG_LOCAL_ADDR_UNREADABLE),
            remote_addr_unreadable: count(super::decode::FLAG_REMOTE_ADDR_UNREADABLE),
            census: census.get(&kind).cloned(),
        };
        if h.valid + h.rejected_family + h.rejected_state + h.rejected_other > 0 {
            out.push(h);
        }
    }
    out
}

/// Adds the checks of `records` (found by tcpip's tables only: the carve's search never saw them)
/// to `health`, so that every decoded object is counted; a kind the search found nothing of gets
/// its entry here.
pub fn add_walk_only(health: &mut Vec<KindHealth>, profile: &Profile, records: &[EndpointRecord]) {
    let more = self::health(
        profile,
        records,
        &RejectCounts::default(),
        &Default::default(),
    );
    for m in more {
        match health.iter_mut().find(|h| h.kind == m.kind) {
            Some(h) => {
                h.valid += m.valid;
                h.owner_valid = match (h.owner_valid, m.owner_valid) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
                h.owner_exited += m.owner_exited;
                h.time_in_window += m.time_in_window;
                h.time_zero += m.time_zero;
                h.time_out_of_range += m.time_out_of_range;
                h.local_addr_unreadable += m.local_addr_unreadable;
                h.remote_addr_unreadable += m.remote_addr_unreadable;
            }
            None => health.push(m),
        }
    }
    let order = |h: &KindHealth| ObjectKind::ALL.iter().position(|k| k.name() == h.kind);
    health.sort_by_key(order);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn census_decides_only_on_decisive_evidence() {
        // No time field, no slot near decisive: consistent with none.
        let c = Census::decide("TcpE", 58, None, 0, Some((0x98, 2)), 1);
        assert!(!c.decisive && !c.used);
        assert!(c.finding.contains("no slot holds a time"), "{}", c.finding);
        assert!(c.finding.contains("more than 4% of them"), "{}", c.finding);
        let c = Census::decide("TcTW", 2, None, 0, None, 0);
        assert!(c.finding.contains("too few objects"), "{}", c.finding);
        // A moved slot, 9 of 10 objects there: used.
        let c = Census::decide("TcpL", 10, Some(0x20), 0, Some((0x30, 9)), 0);
        assert!(c.decisive && c.used, "{c:?}");
        // 80% exactly is not over 80%; too few objects; a close runner-up.
        assert!(!Census::decide("TcpL", 10, Some(0x20), 0, Some((0x30, 8)), 0).decisive);
        assert!(!Census::decide("TcpL", 7, Some(0x20), 0, Some((0x30, 7)), 0).decisive);
        assert!(!Census::decide("TcpL", 10, Some(0x20), 0, Some((0x30, 10)), 6).decisive);
        // The profile's own slot decisive: confirmed, not "used".
        let c = Census::decide("UdpA", 10, Some(0x30), 10, Some((0x30, 10)), 0);
        assert!(c.decisive && !c.used);
        // Nothing anywhere: never invents a slot.
        let c = Census::decide("TcpL", 27, Some(0x20), 0, None, 0);
        assert!(!c.decisive && !c.used && c.best_slot.is_none());
    }

    #[test]
    fn rejections_are_sorted_by_the_check_that_failed() {
        assert_eq!(
            Rejection::of("address family unreadable (InetAF)"),
            Rejection::Family
        );
        assert_eq!(
            Rejection::of("state 11 is not a kernel TCP state"),
            Rejection::State
        );
        assert_eq!(Rejection::of("TCP state unreadable"), Rejection::State);
        assert_eq!(Rejection::of("profile has no x layout"), Rejection::Other);
    }
}
