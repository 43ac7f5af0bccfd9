//! Classification: the class of every pair (the most serious difference) and of every single (an
//! unpaired object is accused only when alive and created before the capture).
use super::pair::{dual_stack_matches, same_process};
use crate::capture::{Capture, Precision};
use crate::filetime;
use crate::record::{flag, CaptureRow, EndpointRecord, PoolStatus, Proto, TcpState};
use serde::Serialize;

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    HiddenFromApi,
    /// Would be `hidden_from_api` or `unlinked`, but a capture row that could not be read may list it.
    Uncertain,
    /// Alive by its own fields, absent from tcpip's tables (walked completely) and from the API:
    /// unlinked from the kernel's lists (DKOM), or a teardown caught mid-way.
    Unlinked,
    NotInMemory,
    PidMismatch,
    TimeMismatch,
    ApiZeroTime,
    StateChanged,
    CreatedAfterCapture,
    /// Allocated but not alive (ended, or its owner has): a past connection, not an alarm.
    Stale,
    FreedOnly,
    Match,
}

impl Class {
    pub const ALL: [Class; 12] = [
        Class::HiddenFromApi,
        Class::Uncertain,
        Class::Unlinked,
        Class::NotInMemory,
        Class::PidMismatch,
        Class::TimeMismatch,
        Class::ApiZeroTime,
        Class::StateChanged,
        Class::CreatedAfterCapture,
        Class::Stale,
        Class::FreedOnly,
        Class::Match,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Class::HiddenFromApi => "hidden_from_api",
            Class::Uncertain => "uncertain",
            Class::Unlinked => "unlinked",
            Class::NotInMemory => "not_in_memory",
            Class::PidMismatch => "pid_mismatch",
            Class::TimeMismatch => "time_mismatch",
            Class::ApiZeroTime => "api_zero_time",
            Class::StateChanged => "state_changed",
            Class::CreatedAfterCapture => "created_after_capture",
            Class::Stale => "stale",
            Class::FreedOnly => "freed_only",
            Class::Match => "match",
        }
    }
    /// Whether the class means memory and capture disagree (exit code 1).
    pub fn is_discrepancy(self) -> bool {
        !matches!(
            self,
            Class::Match | Class::FreedOnly | Class::CreatedAfterCapture | Class::Stale
        )
    }
}

/// Why the API showed a zero (1601) time, from the memory side.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    NoTimeField,
    KernelTimeZero,
    KernelHasTime,
}

impl Cause {
    pub fn name(self) -> &'static str {
        match self {
            Cause::NoTimeField => "no_time_field",
            Cause::KernelTimeZero => "kernel_time_zero",
            Cause::KernelHasTime => "kernel_has_time",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct CompareOptions {
    /// `--tolerance` in 100 ns ticks, overriding each format's default.
    pub tolerance_ticks: Option<u64>,
    /// `--capture-time`: when the captures were taken (FILETIME), for formats that do not say.
    pub capture_time: Option<u64>,
}

pub(super) fn tolerance_for(row: &CaptureRow, opts: &CompareOptions) -> Option<u64> {
    let default = Precision::from_name(&row.precision).default_tolerance_ticks()?;
    Some(opts.tolerance_ticks.unwrap_or(default))
}

/// Classifies one memory/capture pair; the most serious difference names the class, the note
/// lists every difference.
pub(super) fn classify_pair(
    m: &EndpointRecord,
    c: &CaptureRow,
    opts: &CompareOptions,
    via_dual_stack: bool,
) -> (Class, Option<Cause>, Option<f64>, String) {
    let mut notes: Vec<String> = Vec::new();
    let mut class = Class::Match;
    let mut cause = None;
    let mut delta = None;
    let raise = |class: &mut Class, new: Class| {
        if new < *class {
            *class = new;
        }
    };
    if via_dual_stack {
        notes.push("dual-stack object also listed by the API as 0.0.0.0".into());
    }
    if m.pool_status == PoolStatus::Freed {
        notes.push("memory object is freed".into());
    }
    if let (Some(mp), Some(cp)) = (m.pid, c.pid) {
        if mp != cp && cp != 0 {
            raise(&mut class, Class::PidMismatch);
            notes.push(format!("PID {mp} in memory, {cp} in the API"));
        }
    }
    if let (Some(mn), Some(cn)) = (&m.process, &c.process) {
        if !same_process(mn, cn) {
            // Raw names: text renderings escape them, JSON keeps them exact.
            notes.push(format!("process \"{mn}\" in memory, \"{cn}\" in the API"));
        }
    }
    let memory_time = if m.has_flag(flag::NO_TIME_FIELD) {
        None
    } else {
        m.create_time_raw
    };
    if let (Some(ct), Some(tolerance)) = (c.create_time_raw, tolerance_for(c, opts)) {
        if ct == 0 {
            raise(&mut class, Class::ApiZeroTime);
            let why = match memory_time {
                None => Cause::NoTimeField,
                Some(0) => Cause::KernelTimeZero,
                Some(_) => Cause::KernelHasTime,
            };
            cause = Some(why);
            notes.push(match why {
                Cause::NoTimeField => {
                    "API time is 1601 (zero); the kernel object has no time field".into()
                }
                Cause::KernelTimeZero => {
                    "API time is 1601 (zero); the kernel object's time is zero too".into()
                }
                Cause::KernelHasTime => format!(
                    "API time is 1601 (zero) but the kernel holds {}",
                    memory_time.and_then(filetime::to_iso).unwrap_or_default()
                ),
            });
        } else if let Some(mt) = memory_time {
            let d = filetime::delta_seconds(mt, ct);
            delta = (mt != 0).then_some(d);
            if mt == 0 {
                raise(&mut class, Class::TimeMismatch);
                notes.push("kernel time is zero (1601) but the API shows a time".into());
            } else if mt.abs_diff(ct) > tolerance {
                raise(&mut class, Class::TimeMismatch);
                notes.push(format!(
                    "create time differs by {d:+.7} s (tolerance {} s)",
                    tolerance as f64 / 1e7
                ));
            }
        } else {
            notes.push("kernel object has no time field; API time not checked".into());
        }
    }
    if let (Some(ms), Some(cs)) = (m.state, c.state) {
        if ms != cs {
            raise(&mut class, Class::StateChanged);
            notes.push(format!("state {ms} in memory, {cs} in the API"));
        }
    }
    (class, cause, delta, notes.join("; "))
}

/// The protocols a capture covers: those of its rows, readable or not (a row of which not even
/// the protocol was read may be of either).
pub(super) fn covered_protocols(capture: &Capture) -> Vec<Proto> {
    let mut covered: Vec<Proto> = match &capture.protocols {
        // What the format says was asked (Get-NetTCPConnection: TCP only).
        Some(asked) => asked.iter().copied().collect(),
        None => capture.rows.iter().map(|r| r.proto).collect(),
    };
    for u in &capture.unreadable {
        match u.proto {
            Some(p) => covered.push(p),
            None => covered.extend([Proto::Tcp, Proto::Udp]),
        }
    }
    covered.sort_unstable();
    covered.dedup();
    covered
}

/// "UDP", "TCP or UDP": the protocols a capture leaves out.
pub(super) fn uncovered_names(covered: &[Proto]) -> &'static str {
    match (covered.contains(&Proto::Tcp), covered.contains(&Proto::Udp)) {
        (true, false) => "UDP",
        (false, true) => "TCP",
        _ => "TCP or UDP",
    }
}

/// Why `m`, absent from the capture's readable rows, is not accused: a row that could not be read
/// may list it. A partial row covers the endpoints its readable fields agree with (fields named
/// like the one left out are not compared); a row of which nothing was read covers every endpoint
/// of its protocol (every endpoint, when even that is unknown).
pub(super) fn unreadable_cover(m: &EndpointRecord, capture: &Capture) -> Option<String> {
    let covers = |u: &crate::capture::Unreadable| -> bool {
        if u.proto.is_some_and(|p| p != m.proto) {
            return false;
        }
        let Some((row, field)) = &u.partial else {
            return true;
        };
        let field = field.to_ascii_lowercase();
        let local_unknown = field.contains("local") || field.starts_with("laddr");
        let remote_unknown = field.contains("remote") || field.starts_with("raddr");
        let local = local_unknown
            || (row.local_port == m.local_port
                && (row.local_addr == m.local_addr || dual_stack_matches(m, row)));
        let remote = remote_unknown
            || m.proto == Proto::Udp
            || (row.remote_addr == m.remote_addr && row.remote_port == m.remote_port);
        local && remote
    };
    let u = capture
        .unreadable
        .iter()
        .find(|u| u.partial.is_some() && covers(u))
        .or_else(|| capture.unreadable.iter().find(|u| covers(u)))?;
    Some(match &u.partial {
        Some((_, field)) => format!(
            "not accused: capture row {} unreadable ({}), and its other fields match this \
             endpoint ({field:?} left out)",
            u.line, u.reason
        ),
        None => format!(
            "not accused: capture row {} unreadable ({}), nothing in it readable; it may list \
             this endpoint",
            u.line, u.reason
        ),
    })
}

/// An allocated object the capture does not list. Where tcpip's tables were walked, they decide:
/// linked → `hidden_from_api` (the kernel holds it live, the API did not show it); in no table →
/// `unlinked` when its own fields say it is alive, else `stale`. Where they could not be walked,
/// alive rests on the object itself: a state that is not CLOSED or DELETE_TCB, and an owner that
/// is a process which has not exited (TIME_WAIT needs none). Without a create time (field absent,
/// or no capture time) opening after the capture cannot be ruled out, and the note says so rather
/// than hiding a rootkit candidate.
pub(super) fn classify_single(
    m: &EndpointRecord,
    collected: Option<u64>,
    collected_known: bool,
) -> (Class, String) {
    if m.pool_status == PoolStatus::Freed {
        return (
            Class::FreedOnly,
            "freed object with no counterpart in the API".into(),
        );
    }
    let alive = match (m.linked, liveness(m)) {
        (Some(true), Liveness::Alive(own)) => format!("linked in tcpip's tables; {own}"),
        (Some(true), Liveness::Stale(own)) => {
            format!("linked in tcpip's tables, though {own}")
        }
        (Some(false), Liveness::Alive(own)) => {
            return (
                Class::Unlinked,
                format!(
                    "alive by its own fields ({own}) but in none of tcpip's tables, which were walked \
                     completely, and not listed by the API: unlinked from the kernel's lists (DKOM) \
                     or a teardown caught mid-way"
                ),
            )
        }
        (Some(false), Liveness::Stale(why)) => {
            return (Class::Stale, format!("{why}; in none of tcpip's tables"))
        }
        (None, Liveness::Alive(own)) => format!("{own} (tcpip's tables do not say: not walked, or not known to be walked completely)"),
        (None, Liveness::Stale(why)) => return (Class::Stale, why),
    };
    let created = if m.has_flag(flag::NO_TIME_FIELD) {
        None
    } else {
        m.create_time_raw.filter(|t| *t != 0)
    };
    let (class, note) = match (created, collected) {
        (Some(t), Some(c)) if t > c => {
            return (
                Class::CreatedAfterCapture,
                format!(
                    "created {:.3} s after the capture; absent from it as expected",
                    filetime::delta_seconds(t, c)
                ),
            )
        }
        (Some(_), Some(_)) if collected_known => (
            Class::HiddenFromApi,
            "allocated in memory, created before the capture, not listed by the API",
        ),
        (Some(_), Some(_)) => (
            Class::HiddenFromApi,
            "allocated in memory, created before the acquisition, not listed by the API (the capture \
             has no collection time; if it was taken earlier, check whether this was opened in between)",
        ),
        _ => (
            Class::HiddenFromApi,
            "allocated in memory, not listed by the API (this object has no create time, so opening \
             after the capture cannot be ruled out)",
        ),
    };
    (class, format!("{note}; alive: {alive}"))
}

/// Whether an allocated object is alive, with the evidence either way.
pub(super) enum Liveness {
    Alive(String),
    Stale(String),
}

/// The evidence that `m` is alive, or why it is stale. The object's own fields decide,
/// since a connection that ended or whose process exited stays in pool until its last reference
/// goes (real Windows 7 images show most carved TCP objects CLOSED).
pub(super) fn liveness(m: &EndpointRecord) -> Liveness {
    if let Some(state @ (TcpState::Closed | TcpState::DeleteTcb)) = m.state {
        return Liveness::Stale(format!(
            "state {}: the connection has ended and its object is not yet freed",
            state.name()
        ));
    }
    let owner = || {
        format!(
            "{} (PID {})",
            m.process.as_deref().unwrap_or("?"),
            m.pid.map_or("?".to_string(), |p| p.to_string())
        )
    };
    if m.has_flag(flag::OWNER_EXITED) {
        return Liveness::Stale(format!(
            "its owner {} exited at {}: its endpoints closed with it",
            owner(),
            m.process_exit_time.as_deref().unwrap_or("?")
        ));
    }
    let time_wait = m.state == Some(TcpState::TimeWait);
    if m.has_flag(flag::NO_OWNER) && !time_wait {
        return Liveness::Stale(
            "no process owns it (its owner pointer leads to no _EPROCESS): what opened it is gone"
                .into(),
        );
    }
    let state = match (m.state, m.proto) {
        (Some(s), _) => format!("state {}", s.name()),
        (None, Proto::Udp) => "a bound UDP endpoint".to_string(),
        (None, Proto::Tcp) => "no state field".to_string(),
    };
    let owner = match (m.pid, time_wait) {
        (Some(_), _) => format!("owner {} has not exited", owner()),
        (None, true) => "a TIME_WAIT needs no owner".to_string(),
        (None, false) => "its layout has no owner field".to_string(),
    };
    Liveness::Alive(format!("{state}, {owner}"))
}
