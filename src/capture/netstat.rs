//! `netstat -ano` (and `-anob`) text: no times; `[v6%scope]:port`; UDP `*:*` without a state.
//! Headers and state words are localized, so rows are recognised by their shape (protocol, an
//! endpoint, ...), never by English headers; state words are read in any language
//! [`super::words`] knows, and an unknown one keeps its row with no state.
use super::{split_host_port, words, Capture, ParseContext};
use crate::error::Fault;
use crate::record::{Proto, TcpState};
use std::collections::BTreeMap;

pub fn parse(ctx: &mut ParseContext, text: &str, capture: &mut Capture) -> Result<(), Fault> {
    let mut candidates = 0usize;
    let mut first_error = None;
    let mut unknown_states: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    // Lines of other text between rows (a table cut with `...`, a second command's output): the
    // rows after them are read all the same.
    let mut between: Vec<usize> = Vec::new();
    let mut pending_other: Vec<usize> = Vec::new();
    let mut owner_lines = false;
    for (index, raw_line) in text.lines().enumerate() {
        let line = index as u64 + 1;
        let trimmed = raw_line.trim();
        // `-b` puts the owner's image name on its own line after the row, in brackets.
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            owner_lines = true;
            if let Some(last) = capture.rows.last_mut() {
                if last.process.is_none() && !name.contains(':') {
                    last.process = Some(name.to_string());
                }
            }
            continue;
        }
        let tokens: Vec<&str> = trimmed.split_whitespace().collect();
        let proto = match tokens.first().map(|t| t.to_ascii_uppercase()) {
            Some(t) if t == "TCP" || t == "TCPV6" => Some(Proto::Tcp),
            Some(t) if t == "UDP" || t == "UDPV6" => Some(Proto::Udp),
            _ => None,
        };
        // A row's shape: the protocol, then an endpoint (`netstat -s` prints "TCP Statistics").
        let Some(proto) = proto.filter(|_| tokens.get(1).is_some_and(|t| t.contains(':'))) else {
            if !trimmed.is_empty() && candidates > 0 {
                pending_other.push(index + 1);
            }
            continue;
        };
        between.append(&mut pending_other);
        candidates += 1;
        match parse_row(ctx, line, proto, &tokens) {
            Ok((row, unknown)) => {
                if let Some(word) = unknown {
                    unknown_states.entry(word).or_default().push(index + 1);
                }
                capture.rows.push(row);
            }
            Err(m) => {
                let what = format!("line {line}");
                first_error.get_or_insert_with(|| m.clone().at(what.to_string()));
                // Text rows have no fields to leave out one by one: only the protocol is known.
                super::record_unreadable(capture, &what, line, Some(proto), &m, || None);
            }
        }
    }
    if candidates == 0 {
        return Err(fault!(
            Structure,
            "no TCP/UDP rows: not `netstat -ano` output"
        ));
    }
    if capture.rows.is_empty() {
        return Err(first_error.unwrap_or_else(|| fault!(Structure, "no usable rows")));
    }
    for (word, lines) in &unknown_states {
        ctx.warnings.push(format!(
            "{}: state word {word:?} is not one netcarve knows: kept with no state",
            super::text::line_list("line", lines)
        ));
    }
    // `-b` output puts component names and "cannot obtain ownership" lines between rows: normal.
    if !between.is_empty() && !owner_lines {
        ctx.warnings.push(format!(
            "{} between rows: not rows, skipped; the rows after them are read",
            super::text::line_list("line", &between)
        ));
    }
    Ok(())
}

/// A row, and its state word when no language known says what it means.
fn parse_row(
    ctx: &mut ParseContext,
    line: u64,
    proto: Proto,
    tokens: &[&str],
) -> Result<(crate::record::CaptureRow, Option<String>), Fault> {
    let local = tokens
        .get(1)
        .ok_or_else(|| Fault::missing("local address"))?;
    let foreign = tokens
        .get(2)
        .ok_or_else(|| Fault::missing("foreign address"))?;
    // The PID is always last; a TCP state (possibly localized, possibly several words) sits between.
    let pid_token = tokens.get(3..).and_then(|rest| rest.last());
    let state_words = match proto {
        Proto::Tcp => tokens.get(3..tokens.len().saturating_sub(1)).unwrap_or(&[]),
        Proto::Udp => &[],
    };
    let state_text = (!state_words.is_empty()).then(|| state_words.join(" "));
    let pid: u64 = pid_token
        .ok_or_else(|| Fault::missing("PID"))?
        .parse()
        .map_err(|_| fault!(Value, "bad PID {:?}", pid_token.copied().unwrap_or("")))?;
    // An unknown state word is not an error: the row still matches on addresses and PID.
    let state: Option<TcpState> = state_text.as_deref().and_then(words::state);
    let unknown = state_text.filter(|_| state.is_none());
    let (local_host, local_port) =
        split_host_port(local).ok_or_else(|| fault!(Value, "bad local address {local:?}"))?;
    let (remote_host, remote_port) =
        split_host_port(foreign).ok_or_else(|| fault!(Value, "bad foreign address {foreign:?}"))?;
    let row = ctx.row(
        line,
        proto,
        None,
        (local_host, local_port),
        Some((remote_host, remote_port)),
        state,
        Some(pid),
        None,
        None,
    )?;
    Ok((row, unknown))
}
