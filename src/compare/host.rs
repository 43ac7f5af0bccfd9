//! The wrong-host guard: whether a capture belongs to the image's host, from what they have in
//! common.
use super::pair::is_wildcard;
use crate::record::{CaptureRow, EndpointRecord};
use serde::Serialize;

/// What a capture and the memory have in common: a capture of another host pairs with nothing and
/// shares no local address, and comparing it would accuse every endpoint in memory.
#[derive(Clone, Debug, Serialize)]
pub struct HostCheck {
    /// `same_host`, `weak` (six or more rows, under a tenth pairing) or `mismatch` (none pairing
    /// and none of the capture's local addresses among memory's); counted over the rows on a
    /// specific local address (not a wildcard or loopback one).
    pub verdict: &'static str,
    pub capture_rows: usize,
    pub paired_rows: usize,
    /// The capture's specific local addresses (not wildcard or loopback), and how many of them
    /// memory's endpoints also hold.
    pub local_addresses: usize,
    pub local_addresses_in_memory: usize,
    /// A few of the capture's local addresses, for the message.
    pub sample_addresses: Vec<String>,
}

/// Rows a capture must have before "few pair" is worth a warning.
pub(super) const HOST_CHECK_MIN_ROWS: usize = 6;

/// `paired[i]`: whether capture row `i` paired with an endpoint in memory. Only rows on a specific
/// local address count: every Windows host listens on 0.0.0.0:135 and :445 with the same PIDs, so
/// wildcard listeners pair across hosts.
pub(super) fn host_check(
    memory: &[EndpointRecord],
    rows: &[CaptureRow],
    paired: &[bool],
) -> HostCheck {
    let specific = |a: &str| !is_wildcard(Some(a)) && !a.starts_with("127.") && a != "::1";
    let specific_rows = rows.iter().filter(|r| specific(&r.local_addr)).count();
    let paired = rows
        .iter()
        .zip(paired)
        .filter(|(r, &p)| p && specific(&r.local_addr))
        .count();
    let mut capture_addrs: Vec<&str> = rows
        .iter()
        .map(|r| r.local_addr.as_str())
        .filter(|a| specific(a))
        .collect();
    capture_addrs.sort_unstable();
    capture_addrs.dedup();
    let memory_addrs: std::collections::BTreeSet<&str> =
        memory.iter().map(|m| m.local_addr.as_str()).collect();
    let memory_has_specific = memory_addrs.iter().any(|a| specific(a));
    let in_memory = capture_addrs
        .iter()
        .filter(|a| memory_addrs.contains(*a))
        .count();
    // A host's own address is on every connection it makes: when memory holds specific local
    // addresses and the capture's are none of them, and nothing pairs, it is another host, however
    // few its rows (a changed DHCP lease is what --allow-mismatch is for).
    let verdict = if capture_addrs.is_empty() {
        "same_host"
    } else if paired == 0 && in_memory == 0 && memory_has_specific {
        "mismatch"
    } else if specific_rows >= HOST_CHECK_MIN_ROWS && paired * 10 < specific_rows {
        "weak"
    } else {
        "same_host"
    };
    HostCheck {
        verdict,
        capture_rows: specific_rows,
        paired_rows: paired,
        local_addresses: capture_addrs.len(),
        local_addresses_in_memory: in_memory,
        sample_addresses: capture_addrs
            .iter()
            .take(3)
            .map(|a| a.to_string())
            .collect(),
    }
}

impl HostCheck {
    /// The evidence in words: "0 of 97 capture rows pair with memory; its local addresses
    /// (172.16.50.130) never appear in memory".
    pub fn evidence(&self) -> String {
        let addresses = if self.local_addresses == 0 {
            "it lists no specific local address".to_string()
        } else {
            format!(
                "{} of its {} local addresses ({}{}) appear in memory",
                self.local_addresses_in_memory,
                self.local_addresses,
                self.sample_addresses.join(", "),
                if self.local_addresses > self.sample_addresses.len() {
                    ", ..."
                } else {
                    ""
                }
            )
        };
        format!(
            "{} of {} capture rows on a specific local address pair with an endpoint in memory; {addresses}",
            self.paired_rows, self.capture_rows
        )
    }
}
