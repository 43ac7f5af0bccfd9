//! Memory versus live response: pairs carved endpoints with capture rows, classifies every pair and
//! single, and tabulates the zero (1601) timestamps for the research question. One way: `memory`
//! (the memory side), `pair` (which row is which object), `host` (the wrong-host guard),
//! `classify` (classes), `research` (the summary); this file runs them per capture.
use crate::capture::Capture;
use crate::filetime;
use crate::record::{CaptureRow, EndpointRecord, ImageFacts, Proto};
use serde::Serialize;
use std::collections::BTreeMap;

mod classify;
mod host;
mod memory;
mod pair;
mod research;

use classify::{
    classify_pair, classify_single, covered_protocols, uncovered_names, unreadable_cover,
};
pub use classify::{Cause, Class, CompareOptions};
use host::host_check;
pub use host::HostCheck;
pub use memory::{load_memory_json, MemoryProfile, MemorySide, MAX_MEMORY_JSON_BYTES};
use pair::pair_rows;
use research::ResearchAccumulator;
pub use research::{verdict, Research, ResearchCounts, ZeroTally, HYPOTHESIS};

#[derive(Clone, Debug, Serialize)]
pub struct CompareRow {
    pub class: Class,
    /// The capture file this row belongs to (each `--live` file is compared separately).
    pub capture_file: String,
    pub memory: Option<EndpointRecord>,
    pub capture: Option<CaptureRow>,
    /// memory − capture creation time, when both have a non-zero time.
    pub delta_seconds: Option<f64>,
    pub cause: Option<Cause>,
    pub note: String,
}

/// A capture's facts as the report shows them.
#[derive(Clone, Debug, Serialize)]
pub struct CaptureInfo {
    pub file: String,
    pub format: String,
    pub rows: usize,
    pub host: Option<String>,
    pub precision: String,
    /// The time tolerance applied, in seconds (`null`: the format has no times).
    pub tolerance_seconds: Option<f64>,
    pub collected: Option<String>,
    pub collected_raw: Option<u64>,
    /// `capture` (the file says when), `option` (`--capture-time`), `assumed_acquisition_time`, or `unknown`.
    pub collected_source: String,
    pub utc_offset_minutes: Option<i64>,
    pub tz_source: String,
    /// The text encoding the capture was read in (`utf-8`, `cp850`, ...).
    pub encoding: String,
    /// How culture-formatted dates were read (`--capture-culture`, or the pattern found).
    pub culture: Option<String>,
    /// Whether the capture belongs to the image's host, from what the two have in common.
    pub host_check: HostCheck,
    /// The protocols the capture lists (a TCP-only tool says nothing of UDP endpoints).
    pub protocols: Vec<Proto>,
    /// Memory endpoints of a protocol the capture does not cover: not compared, not accused.
    pub not_compared: usize,
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub discrepancies: usize,
    pub by_class: BTreeMap<&'static str, usize>,
    /// Per capture file, the same counts.
    pub by_capture: BTreeMap<String, BTreeMap<&'static str, usize>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub image: ImageFacts,
    /// `scan-json` or `image`.
    pub memory_source: String,
    pub captures: Vec<CaptureInfo>,
    pub rows: Vec<CompareRow>,
    pub summary: Summary,
    pub research: Research,
}

impl Report {
    /// 0 when memory and every capture agree, 1 when something disagrees.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.summary.discrepancies > 0)
    }
}

/// Compares the memory side with every capture (each separately).
pub fn compare(memory: &MemorySide, captures: &[Capture], opts: &CompareOptions) -> Report {
    let acquisition = memory.image.system_time_raw;
    let build = memory.image.nt.build;
    let mut rows = Vec::new();
    let mut infos = Vec::new();
    let mut research = ResearchAccumulator::default();
    research.tally_memory(&memory.endpoints, build);
    for capture in captures {
        let (collected_raw, collected_source) = match (capture.collected_raw, acquisition) {
            (Some(t), _) => (Some(t), "capture"),
            (None, _) if opts.capture_time.is_some() => (opts.capture_time, "option"),
            (None, Some(t)) => (Some(t), "assumed_acquisition_time"),
            (None, None) => (None, "unknown"),
        };
        let (pairs, memory_used) = pair_rows(&memory.endpoints, &capture.rows);
        let paired: Vec<bool> = (0..capture.rows.len())
            .map(|i| pairs.get(i).copied().flatten().is_some())
            .collect();
        let host = host_check(&memory.endpoints, &capture.rows, &paired);
        let mut warnings = capture.warnings.clone();
        if host.verdict == "weak" {
            warnings.push(format!(
                "is this capture from this host? {}",
                host.evidence()
            ));
        }
        let protocols = covered_protocols(capture);
        let not_compared = memory
            .endpoints
            .iter()
            .filter(|m| !protocols.contains(&m.proto))
            .count();
        if not_compared > 0 {
            warnings.push(format!(
                "lists no {} endpoint: {not_compared} {} endpoint(s) in memory not compared with it",
                uncovered_names(&protocols),
                uncovered_names(&protocols)
            ));
        }
        let default_tolerance = capture.precision.default_tolerance_ticks();
        infos.push(CaptureInfo {
            file: capture.file.clone(),
            format: capture.format.name().to_string(),
            rows: capture.rows.len(),
            host: capture.host.clone(),
            precision: capture.precision.name().to_string(),
            tolerance_seconds: default_tolerance
                .map(|d| opts.tolerance_ticks.unwrap_or(d) as f64 / 1e7),
            collected: collected_raw.and_then(filetime::to_iso),
            collected_raw,
            collected_source: collected_source.to_string(),
            utc_offset_minutes: capture.utc_offset_minutes,
            tz_source: capture.tz_source.clone(),
            encoding: capture.encoding.clone(),
            culture: capture.culture.clone(),
            host_check: host,
            protocols: protocols.clone(),
            not_compared,
            warnings,
        });
        for (ri, row) in capture.rows.iter().enumerate() {
            let pair = pairs.get(ri).copied().flatten();
            let paired_memory = pair.and_then(|(mi, _)| memory.endpoints.get(mi));
            research.tally_capture(row, paired_memory, build);
            let out = match (pair, paired_memory) {
                (Some((_, dual)), Some(m)) => {
                    let (class, cause, delta, note) = classify_pair(m, row, opts, dual);
                    CompareRow {
                        class,
                        capture_file: capture.file.clone(),
                        memory: Some(m.clone()),
                        capture: Some(row.clone()),
                        delta_seconds: delta,
                        cause,
                        note,
                    }
                }
                _ => CompareRow {
                    class: Class::NotInMemory,
                    capture_file: capture.file.clone(),
                    memory: None,
                    capture: Some(row.clone()),
                    delta_seconds: None,
                    cause: None,
                    note: "listed by the API, not carved from memory (closed before acquisition, or smear)"
                        .into(),
                },
            };
            rows.push(out);
        }
        for (mi, m) in memory.endpoints.iter().enumerate() {
            if memory_used.get(mi).copied().unwrap_or(false) || !protocols.contains(&m.proto) {
                continue;
            }
            let (mut class, mut note) = classify_single(
                m,
                collected_raw,
                collected_source != "assumed_acquisition_time",
            );
            if matches!(class, Class::HiddenFromApi | Class::Unlinked) {
                if let Some(why) = unreadable_cover(m, capture) {
                    class = Class::Uncertain;
                    note = why;
                }
            }
            rows.push(CompareRow {
                class,
                capture_file: capture.file.clone(),
                memory: Some(m.clone()),
                capture: None,
                delta_seconds: None,
                cause: None,
                note,
            });
        }
    }
    rows.sort_by_key(row_order);
    let summary = summarise(&rows, &infos);
    Report {
        image: memory.image.clone(),
        memory_source: memory.source.clone(),
        captures: infos,
        rows,
        summary,
        research: Research {
            census: memory
                .profile
                .health
                .iter()
                .filter_map(|h| h.census.as_ref().map(|c| c.finding.clone()))
                .collect(),
            ..research.finish()
        },
    }
}

/// Discrepancies first (`hidden_from_api` first), then capture, then memory offset, then line.
fn row_order(r: &CompareRow) -> (Class, String, u64, String, u64) {
    (
        r.class,
        r.capture_file.clone(),
        r.memory
            .as_ref()
            .map(|m| m.physical_offset.0)
            .unwrap_or(u64::MAX),
        r.memory.as_ref().map(|m| m.tag.clone()).unwrap_or_default(),
        r.capture.as_ref().map(|c| c.line).unwrap_or(0),
    )
}

fn summarise(rows: &[CompareRow], captures: &[CaptureInfo]) -> Summary {
    let zeroed = || {
        Class::ALL
            .iter()
            .map(|c| (c.name(), 0usize))
            .collect::<BTreeMap<_, _>>()
    };
    let mut summary = Summary {
        discrepancies: 0,
        by_class: zeroed(),
        by_capture: captures
            .iter()
            .map(|c| (c.file.clone(), zeroed()))
            .collect(),
    };
    for r in rows {
        if r.class.is_discrepancy() {
            summary.discrepancies += 1;
        }
        *summary.by_class.entry(r.class.name()).or_default() += 1;
        if let Some(per) = summary.by_capture.get_mut(&r.capture_file) {
            *per.entry(r.class.name()).or_default() += 1;
        }
    }
    summary
}

#[cfg(test)]
mod tests;
