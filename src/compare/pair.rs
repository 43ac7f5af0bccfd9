//! Pairing: which capture row is which memory object. Keys, the compatibility rules (PID, process
//! name, dual stack), and the indexed pairing itself.
use crate::record::{CaptureRow, EndpointRecord, Family, PoolStatus, Proto};
use std::collections::HashMap;

/// Matching key: everything but PID. Remote is `None` for UDP.
pub(super) fn key_of_memory(
    m: &EndpointRecord,
) -> (Proto, Family, &str, u16, Option<&str>, Option<u16>) {
    (
        m.proto,
        m.family,
        m.local_addr.as_str(),
        m.local_port,
        m.remote_addr.as_deref().filter(|_| m.proto == Proto::Tcp),
        m.remote_port.filter(|_| m.proto == Proto::Tcp),
    )
}

pub(super) fn key_of_capture(
    c: &CaptureRow,
) -> (Proto, Family, &str, u16, Option<&str>, Option<u16>) {
    (
        c.proto,
        c.family,
        c.local_addr.as_str(),
        c.local_port,
        c.remote_addr.as_deref().filter(|_| c.proto == Proto::Tcp),
        c.remote_port.filter(|_| c.proto == Proto::Tcp),
    )
}

pub(super) fn is_wildcard(addr: Option<&str>) -> bool {
    matches!(addr, None | Some("0.0.0.0") | Some("::"))
}

/// A dual-stack memory object (`::` with `dual_stack`) also serves the API's `0.0.0.0` row.
pub(super) fn dual_stack_matches(m: &EndpointRecord, c: &CaptureRow) -> bool {
    m.dual_stack
        && m.proto == c.proto
        && m.local_port == c.local_port
        && c.family == Family::Ipv4
        && c.local_addr == "0.0.0.0"
        && (m.proto == Proto::Udp
            || (is_wildcard(m.remote_addr.as_deref())
                && is_wildcard(c.remote_addr.as_deref())
                && m.remote_port.unwrap_or(0) == c.remote_port.unwrap_or(0)))
}

/// PIDs agree, or one side cannot know: TIME_WAIT rows and exited owners show PID 0 in the API,
/// and objects without a valid owner have no PID in memory.
pub(super) fn pids_compatible(m: &EndpointRecord, c: &CaptureRow) -> bool {
    match (m.pid, c.pid) {
        (Some(mp), Some(cp)) => mp == cp || cp == 0,
        _ => true,
    }
}

/// `chrome`, `chrome.exe` and `CHROME.EXE` are one process; memory truncates names to 15 bytes.
pub(super) fn same_process(memory_name: &str, capture_name: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim().to_ascii_lowercase();
        s.strip_suffix(".exe").map(str::to_string).unwrap_or(s)
    };
    let (m, c) = (norm(memory_name), norm(capture_name));
    if m == c {
        return true;
    }
    let m_raw = memory_name.trim().to_ascii_lowercase();
    let c_raw = capture_name.trim().to_ascii_lowercase();
    // Memory keeps 14-15 bytes of a one-byte code page: count characters, not UTF-8 bytes.
    m_raw.chars().count() >= 14
        && (c_raw.starts_with(&m_raw) || format!("{c}.exe").starts_with(&m_raw))
}

/// Process names agree, or one side has none.
pub(super) fn names_agree(m: &EndpointRecord, c: &CaptureRow) -> bool {
    match (&m.process, &c.process) {
        (Some(a), Some(b)) => same_process(a, b),
        _ => true,
    }
}

/// Pairs one capture's rows with memory records: exact key and compatible PID first, then the
/// dual-stack `0.0.0.0` rows, then exact key with another PID, then dual stack with another PID.
/// Among candidates: allocated before freed, then the closest create time, then physical offset.
pub(super) fn pair_rows(
    memory: &[EndpointRecord],
    rows: &[CaptureRow],
) -> (Vec<Option<(usize, bool)>>, Vec<bool>) {
    let mut pair_of_row: Vec<Option<(usize, bool)>> = vec![None; rows.len()];
    let mut memory_used = vec![false; memory.len()];
    // Indexes keep pairing linear in practice: benchmark images hold thousands of endpoints.
    let mut by_key: HashMap<_, Vec<usize>> = HashMap::new();
    let mut dual_by_port: HashMap<(Proto, u16), Vec<usize>> = HashMap::new();
    for (mi, m) in memory.iter().enumerate() {
        by_key.entry(key_of_memory(m)).or_default().push(mi);
        if m.dual_stack {
            dual_by_port
                .entry((m.proto, m.local_port))
                .or_default()
                .push(mi);
        }
    }
    for (dual, need_pid) in [(false, true), (true, true), (false, false), (true, false)] {
        for (ri, row) in rows.iter().enumerate() {
            if pair_of_row.get(ri).copied().flatten().is_some() {
                continue;
            }
            let candidates = if dual {
                dual_by_port.get(&(row.proto, row.local_port))
            } else {
                by_key.get(&key_of_capture(row))
            };
            let best = candidates
                .into_iter()
                .flatten()
                .filter_map(|&mi| memory.get(mi).map(|m| (mi, m)))
                .inspect(|_| count_weighed())
                .filter(|(mi, m)| {
                    // A dual-stack object may serve both the `::` and the `0.0.0.0` row.
                    let available = if dual {
                        dual_stack_matches(m, row)
                    } else {
                        !memory_used.get(*mi).copied().unwrap_or(true)
                    };
                    available && (!need_pid || pids_compatible(m, row))
                })
                .min_by_key(|(_, m)| {
                    let time_gap = match (m.create_time_raw, row.create_time_raw) {
                        (Some(a), Some(b)) => a.abs_diff(b),
                        _ => u64::MAX,
                    };
                    (
                        m.pool_status == PoolStatus::Freed,
                        !pids_compatible(m, row),
                        !names_agree(m, row),
                        time_gap,
                        m.physical_offset.0,
                    )
                })
                .map(|(mi, _)| mi);
            if let Some(mi) = best {
                if let Some(slot) = pair_of_row.get_mut(ri) {
                    *slot = Some((mi, dual));
                }
                if let Some(used) = memory_used.get_mut(mi) {
                    *used = true;
                }
            }
        }
    }
    (pair_of_row, memory_used)
}

// Test builds count the memory records pairing weighs, so a test can hold pairing to linear work:
// wall time cannot tell, since a quadratic pairing of 20,000 rows also ends in seconds in release.
#[cfg(test)]
thread_local!(pub(super) static WEIGHED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) });

#[inline]
pub(super) fn count_weighed() {
    #[cfg(test)]
    WEIGHED.with(|w| w.set(w.get() + 1));
}
