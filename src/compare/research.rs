//! The research summary: the zero (1601) timestamps tabulated against what the kernel objects
//! hold, and the verdict on the hypothesis.
use crate::capture::Precision;
use crate::record::{flag, CaptureRow, EndpointRecord, Proto};
use serde::Serialize;
use std::collections::BTreeMap;

/// The hypothesis the research summary tests.
pub const HYPOTHESIS: &str =
    "zero API timestamps are exactly the TCP connections whose kernel object has no time field";

/// One cell of the zero-timestamp tabulation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ZeroTally {
    /// `memory` or `capture`.
    pub side: &'static str,
    /// `null` when the image's build is unknown.
    pub build: Option<u32>,
    pub proto: Proto,
    /// The pool tag (for capture rows: of the paired memory object, if any).
    pub tag: Option<String>,
    pub state: Option<String>,
    /// `zero_time`, `no_time_field` (memory) or `api_zero` (capture raw 0).
    pub kind: &'static str,
    pub count: usize,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ResearchCounts {
    /// Capture rows (from formats with times) whose creation time is 0.
    pub api_zero_rows: usize,
    pub api_zero_unpaired: usize,
    pub api_zero_on_no_time_field: usize,
    pub api_zero_on_kernel_time_zero: usize,
    pub api_zero_on_kernel_time: usize,
    /// Memory objects without a time field paired with a timed capture row.
    pub no_time_field_paired: usize,
    pub no_time_field_api_zero: usize,
    pub no_time_field_api_nonzero: usize,
    /// Zero API rows on objects that are not TCP connections (listeners, UDP), leaving out those
    /// whose kernel time is zero too.
    pub api_zero_not_tcp_connection: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Research {
    pub hypothesis: &'static str,
    pub builds: Vec<u32>,
    pub table: Vec<ZeroTally>,
    pub counts: ResearchCounts,
    /// `supported`, `refuted` or `inconclusive`.
    pub verdict: &'static str,
    pub reasoning: String,
    /// The scan's time-slot census, per kind it ran for: whether memory holds a creation time
    /// where the profile says there is none (or none where it says there is one).
    pub census: Vec<String>,
}

/// The verdict on [`HYPOTHESIS`] from the counts: `refuted` by any counter-example (a zero API
/// time on an object whose kernel time is not zero, on a listener or UDP endpoint, or a non-zero
/// API time on an object without a time field), else `supported` when a zero API time sits on an
/// object without a time field, else `inconclusive`. `netcarve research` applies it per group.
pub fn verdict(c: &ResearchCounts) -> &'static str {
    if c.api_zero_on_kernel_time + c.no_time_field_api_nonzero + c.api_zero_not_tcp_connection > 0 {
        "refuted"
    } else if c.api_zero_on_no_time_field > 0 {
        "supported"
    } else {
        "inconclusive"
    }
}

/// `1 API row shows`, `3 API rows show`: counts read as sentences.
pub(super) fn rows(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// (side, build, proto, tag, state, kind).
type TallyKey = (
    &'static str,
    Option<u32>,
    Proto,
    Option<String>,
    Option<String>,
    &'static str,
);

#[derive(Default)]
pub(super) struct ResearchAccumulator {
    builds: std::collections::BTreeSet<u32>,
    tally: BTreeMap<TallyKey, usize>,
    counts: ResearchCounts,
}

impl ResearchAccumulator {
    pub(super) fn tally_memory(&mut self, endpoints: &[EndpointRecord], build: Option<u32>) {
        self.builds.extend(build);
        for m in endpoints {
            let kind = if m.has_flag(flag::NO_TIME_FIELD) {
                "no_time_field"
            } else if m.create_time_raw == Some(0) || m.has_flag(flag::ZERO_TIME) {
                "zero_time"
            } else {
                continue;
            };
            let key = (
                "memory",
                build,
                m.proto,
                Some(m.tag.clone()),
                m.state.map(|s| s.name().to_string()),
                kind,
            );
            *self.tally.entry(key).or_default() += 1;
        }
    }

    pub(super) fn tally_capture(
        &mut self,
        c: &CaptureRow,
        m: Option<&EndpointRecord>,
        build: Option<u32>,
    ) {
        if Precision::from_name(&c.precision) == Precision::None {
            return;
        }
        let Some(ct) = c.create_time_raw else { return };
        let no_field = m.map(|m| m.has_flag(flag::NO_TIME_FIELD));
        if no_field == Some(true) {
            self.counts.no_time_field_paired += 1;
            if ct == 0 {
                self.counts.no_time_field_api_zero += 1;
            } else {
                self.counts.no_time_field_api_nonzero += 1;
            }
        }
        if ct != 0 {
            return;
        }
        self.counts.api_zero_rows += 1;
        match m {
            None => self.counts.api_zero_unpaired += 1,
            Some(m) => {
                if m.has_flag(flag::NO_TIME_FIELD) {
                    self.counts.api_zero_on_no_time_field += 1;
                } else if m.create_time_raw.unwrap_or(0) == 0 {
                    self.counts.api_zero_on_kernel_time_zero += 1;
                } else {
                    self.counts.api_zero_on_kernel_time += 1;
                }
                // TIME_WAIT objects (TcTW) are connections too; listeners and UDP endpoints are not.
                // A zero the kernel itself holds says nothing about missing fields, whatever the
                // object (counted in `api_zero_on_kernel_time_zero` alone).
                let connection = matches!(m.tag.as_str(), "TcpE" | "TTcb" | "TcTW");
                let kernel_zero =
                    !m.has_flag(flag::NO_TIME_FIELD) && m.create_time_raw.unwrap_or(0) == 0;
                if !connection && !kernel_zero {
                    self.counts.api_zero_not_tcp_connection += 1;
                }
            }
        }
        let key = (
            "capture",
            build,
            c.proto,
            m.map(|m| m.tag.clone()),
            c.state.map(|s| s.name().to_string()),
            "api_zero",
        );
        *self.tally.entry(key).or_default() += 1;
    }

    /// The verdict on [`HYPOTHESIS`]. Evidence against it: a zero API time on an object whose
    /// kernel time is not zero (the API lost a time the kernel holds), a zero API time on a listener
    /// or UDP endpoint without a time field, and an object without a time field whose API time is
    /// not zero. A zero API time whose kernel time is zero as well is the API reporting faithfully:
    /// it is neither for nor against a hypothesis about *missing fields*, so it is counted apart
    /// (`api_zero_on_kernel_time_zero`) and named in the reasoning, never in the verdict.
    pub(super) fn finish(self) -> Research {
        let c = &self.counts;
        let faithful = if c.api_zero_on_kernel_time_zero > 0 {
            format!(
                "; {} the kernel's own zero time (not evidence either way)",
                rows(
                    c.api_zero_on_kernel_time_zero,
                    "zero-time API row reports",
                    "zero-time API rows report"
                )
            )
        } else {
            String::new()
        };
        let verdict = verdict(c);
        let (verdict, reasoning) = if verdict == "refuted" {
            let mut against = vec![];
            if c.api_zero_on_kernel_time > 0 {
                against.push(format!(
                    "{} zero although the kernel object holds a time",
                    rows(c.api_zero_on_kernel_time, "API row shows", "API rows show")
                ));
            }
            if c.api_zero_not_tcp_connection > 0 {
                against.push(format!(
                    "{} not a TCP connection (listener or UDP)",
                    rows(
                        c.api_zero_not_tcp_connection,
                        "zero-time API row is",
                        "zero-time API rows are"
                    )
                ));
            }
            if c.no_time_field_api_nonzero > 0 {
                against.push(format!(
                    "{} a non-zero time for an object without a time field",
                    rows(
                        c.no_time_field_api_nonzero,
                        "API row shows",
                        "API rows show"
                    )
                ));
            }
            ("refuted", format!("{}{faithful}", against.join("; ")))
        } else if verdict == "supported" {
            ("supported", {
                let n = c.api_zero_on_no_time_field;
                let of = if n == c.api_zero_rows {
                    format!("all {n}")
                } else {
                    format!("{n} of {}", c.api_zero_rows)
                };
                let unpaired = if c.api_zero_unpaired > 0 {
                    format!(
                        "; {} no memory counterpart",
                        rows(
                            c.api_zero_unpaired,
                            "zero-time API row has",
                            "zero-time API rows have"
                        )
                    )
                } else {
                    String::new()
                };
                format!(
                    "{of} zero-time API {} TCP {} whose kernel object has no time field; all \
                         {} of such objects show zero{unpaired}{faithful}",
                    if c.api_zero_rows == 1 {
                        "row is a"
                    } else {
                        "rows are"
                    },
                    if n == 1 { "connection" } else { "connections" },
                    rows(c.no_time_field_paired, "timed API row", "timed API rows"),
                )
            })
        } else if c.no_time_field_paired == 0 && c.api_zero_unpaired == 0 {
            (
                "inconclusive",
                format!(
                    "no object without a time field was listed by a capture with times, and no \
                     zero-time API row points at one{faithful}"
                ),
            )
        } else {
            (
                "inconclusive",
                format!(
                    "{} no memory counterpart, and no zero-time API row pairs with an object \
                     without a time field{faithful}",
                    rows(
                        c.api_zero_unpaired,
                        "zero-time API row has",
                        "zero-time API rows have"
                    )
                ),
            )
        };
        Research {
            hypothesis: HYPOTHESIS,
            builds: self.builds.into_iter().collect(),
            table: self
                .tally
                .into_iter()
                .map(
                    |((side, build, proto, tag, state, kind), count)| ZeroTally {
                        side,
                        build,
                        proto,
                        tag,
                        state,
                        kind,
                        count,
                    },
                )
                .collect(),
            counts: self.counts,
            verdict,
            reasoning,
            census: vec![],
        }
    }
}
