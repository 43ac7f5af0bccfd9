//! `netstat -ano` (and `-anob`) text: no times; `[v6%scope]:port`; UDP `*:*` without a state.
//! Headers and state words may be localized, so rows are recognised by their `TCP`/`UDP` token.
use super::{split_host_port, Capture, ParseContext};
use crate::record::{Proto, TcpState};

pub fn parse(ctx: &mut ParseContext, text: &str, capture: &mut Capture) -> Result<(), String> {
    let mut candidates = 0usize;
    let mut first_error = None;
    for (index, raw_line) in text.lines().enumerate() {
        let line = index as u64 + 1;
        let trimmed = raw_line.trim();
        // `-b` puts the owner's image name on its own line after the row, in brackets.
        if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            if let Some(last) = capture.rows.last_mut() {
                if last.process.is_none() && !name.contains(':') {
                    last.process = Some(name.to_string());
                }
            }
            continue;
        }
        let tokens: Vec<&str> = trimmed.split_whitespace().collect();
        let proto = match tokens.first().map(|t| t.to_ascii_uppercase()) {
            Some(t) if t == "TCP" || t == "TCPV6" => Proto::Tcp,
            Some(t) if t == "UDP" || t == "UDPV6" => Proto::Udp,
            _ => continue,
        };
        candidates += 1;
        match parse_row(ctx, line, proto, &tokens) {
            Ok(row) => capture.rows.push(row),
            Err(m) => {
                let what = format!("line {line}");
                first_error.get_or_insert_with(|| format!("{what}: {m}"));
                // Text rows have no fields to leave out one by one: only the protocol is known.
                super::record_unreadable(capture, &what, line, Some(proto), &m, || None);
            }
        }
    }
    if candidates == 0 {
        return Err("no TCP/UDP rows: not `netstat -ano` output".into());
    }
    if capture.rows.is_empty() {
        return Err(first_error.unwrap_or_else(|| "no usable rows".into()));
    }
    Ok(())
}

fn parse_row(
    ctx: &mut ParseContext,
    line: u64,
    proto: Proto,
    tokens: &[&str],
) -> Result<crate::record::CaptureRow, String> {
    let local = tokens.get(1).ok_or("missing local address")?;
    let foreign = tokens.get(2).ok_or("missing foreign address")?;
    // The PID is always last; a TCP state (possibly localized, possibly several words) sits between.
    let pid_token = tokens.get(3..).and_then(|rest| rest.last());
    let state_words = match proto {
        Proto::Tcp => tokens.get(3..tokens.len().saturating_sub(1)).unwrap_or(&[]),
        Proto::Udp => &[],
    };
    let state = if state_words.is_empty() {
        None
    } else {
        Some(state_words.join(" "))
    };
    let pid: u64 = pid_token
        .ok_or("missing PID")?
        .parse()
        .map_err(|_| format!("bad PID {:?}", pid_token.copied().unwrap_or("")))?;
    // Localized state words are not an error: the row still matches on addresses and PID.
    let state = state.as_deref().and_then(TcpState::parse_any);
    let (local_host, local_port) =
        split_host_port(local).ok_or_else(|| format!("bad local address {local:?}"))?;
    let (remote_host, remote_port) =
        split_host_port(foreign).ok_or_else(|| format!("bad foreign address {foreign:?}"))?;
    ctx.row(
        line,
        proto,
        None,
        (local_host, local_port),
        Some((remote_host, remote_port)),
        state,
        Some(pid),
        None,
        None,
    )
}
