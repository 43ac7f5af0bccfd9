//! Classification end to end through [`compare`], on hand-made records and rows.
use super::pair::{same_process, WEIGHED};
use super::*;
use crate::capture::{CaptureFormat, Precision};
use crate::record::{flag, Family, Hex, PoolStatus, TcpState};

const T: u64 = 133_590_404_967_890_000;

fn mem(
    offset: u64,
    tag: &str,
    local: (&str, u16),
    remote: Option<(&str, u16)>,
    pid: Option<u32>,
) -> EndpointRecord {
    let proto = if tag == "UdpA" {
        Proto::Udp
    } else {
        Proto::Tcp
    };
    let family = if local.0.contains(':') {
        Family::Ipv6
    } else {
        Family::Ipv4
    };
    EndpointRecord {
        proto,
        family,
        local_addr: local.0.into(),
        local_port: local.1,
        remote_addr: remote.map(|r| r.0.to_string()),
        remote_port: remote.map(|r| r.1),
        state: match tag {
            "TcpE" => Some(TcpState::Established),
            "TcpL" => Some(TcpState::Listening),
            "TcTW" => Some(TcpState::TimeWait),
            _ => None,
        },
        dual_stack: false,
        pid,
        process: pid.map(|_| "svchost.exe".to_string()),
        process_raw: None,
        process_exit_time: None,
        process_exit_time_raw: None,
        create_time: filetime::to_iso(T - 1000),
        create_time_raw: Some(T - 1000),
        tag: tag.into(),
        pool_status: PoolStatus::Allocated,
        physical_offset: Hex(offset),
        virtual_address: None,
        found_by: vec![crate::record::FoundBy::Pool],
        linked: None,
        flags: vec![],
        reason: None,
    }
}

fn cap(m: &EndpointRecord, line: u64) -> CaptureRow {
    CaptureRow {
        proto: m.proto,
        family: m.family,
        local_addr: m.local_addr.clone(),
        local_port: m.local_port,
        remote_addr: m.remote_addr.clone(),
        remote_port: m.remote_port,
        state: m.state,
        pid: m.pid.or(Some(0)),
        process: Some("svchost".into()),
        create_time: m.create_time.clone(),
        create_time_raw: m.create_time_raw,
        source: "netcarve".into(),
        line,
        precision: "100ns".into(),
    }
}

fn run(memory: Vec<EndpointRecord>, rows: Vec<CaptureRow>, tol: Option<u64>) -> Report {
    let side = MemorySide {
        image: ImageFacts {
            system_time_raw: Some(T),
            ..Default::default()
        },
        endpoints: memory,
        source: "scan-json".into(),
        ..Default::default()
    };
    let capture = Capture {
        file: "c.json".into(),
        format: CaptureFormat::Netcarve,
        rows,
        precision: Precision::Tick,
        collected_raw: None,
        host: None,
        utc_offset_minutes: None,
        tz_source: "utc".into(),
        encoding: "utf-8".into(),
        culture: None,
        protocols: None,
        warnings: vec![],
        unreadable: vec![],
    };
    compare(
        &side,
        &[capture],
        &CompareOptions {
            tolerance_ticks: tol,
            capture_time: None,
        },
    )
}

fn classes(r: &Report) -> Vec<&'static str> {
    r.rows.iter().map(|r| r.class.name()).collect()
}

#[test]
fn every_class() {
    let established = mem(
        0x1000,
        "TcpE",
        ("10.0.0.5", 49723),
        Some(("93.184.216.34", 443)),
        Some(1236),
    );
    let hidden = mem(
        0x2000,
        "TcpE",
        ("10.0.0.5", 49724),
        Some(("6.6.6.6", 443)),
        Some(666),
    );
    let mut freed = mem(
        0x3000,
        "TcpE",
        ("10.0.0.5", 49725),
        Some(("1.1.1.1", 80)),
        Some(4),
    );
    freed.pool_status = PoolStatus::Freed;
    let mut later = mem(0x4000, "UdpA", ("0.0.0.0", 5353), None, Some(2104));
    later.create_time_raw = Some(T + 50_000_000);
    let pid_moved = mem(
        0x5000,
        "TcpL",
        ("0.0.0.0", 135),
        Some(("0.0.0.0", 0)),
        Some(928),
    );
    let time_moved = mem(
        0x6000,
        "TcpE",
        ("10.0.0.5", 50000),
        Some(("8.8.8.8", 53)),
        Some(900),
    );
    let mut no_field = mem(
        0x7000,
        "TcpE",
        ("10.0.0.5", 50001),
        Some(("8.8.4.4", 443)),
        Some(900),
    );
    no_field.create_time_raw = None;
    no_field.flags = vec![flag::NO_TIME_FIELD.into()];
    let state_moved = mem(
        0x8000,
        "TcpE",
        ("10.0.0.5", 50002),
        Some(("9.9.9.9", 443)),
        Some(900),
    );

    let mut rows = vec![cap(&established, 1)];
    let mut r = cap(&pid_moved, 2);
    r.pid = Some(1000);
    rows.push(r);
    let mut r = cap(&time_moved, 3);
    r.create_time_raw = Some(T - 1001);
    rows.push(r);
    let mut r = cap(&no_field, 4);
    r.create_time_raw = Some(0);
    rows.push(r);
    let mut r = cap(&state_moved, 5);
    r.state = Some(TcpState::CloseWait);
    rows.push(r);
    let ghost = mem(0, "TcpE", ("10.0.0.5", 1), Some(("2.2.2.2", 2)), Some(5));
    rows.push(cap(&ghost, 6));
    // A UDP row, so that the capture covers UDP and `later` is compared.
    let udp_seen = mem(0x9000, "UdpA", ("0.0.0.0", 123), None, Some(2104));
    rows.push(cap(&udp_seen, 7));
    let mut closed = mem(
        0xa000,
        "TcpE",
        ("10.0.0.5", 50003),
        Some(("7.7.7.7", 443)),
        Some(900),
    );
    closed.state = Some(TcpState::Closed);
    let mut exited = mem(
        0xb000,
        "TcpE",
        ("10.0.0.5", 50004),
        Some(("7.7.7.8", 443)),
        Some(901),
    );
    exited.flags = vec![flag::OWNER_EXITED.into()];
    exited.process_exit_time_raw = Some(T - 10);

    let memory = vec![
        established,
        hidden,
        freed,
        later,
        pid_moved,
        time_moved,
        no_field,
        state_moved,
        udp_seen,
        closed,
        exited,
    ];
    let report = run(memory.clone(), rows.clone(), None);
    assert_eq!(
        classes(&report),
        [
            "hidden_from_api",
            "not_in_memory",
            "pid_mismatch",
            "time_mismatch",
            "api_zero_time",
            "state_changed",
            "created_after_capture",
            "stale",
            "stale",
            "freed_only",
            "match",
            "match"
        ]
    );
    assert_eq!(report.rows[4].cause, Some(Cause::NoTimeField));
    assert_eq!(report.rows[3].delta_seconds, Some(1e-7));
    assert_eq!(report.summary.discrepancies, 6);
    assert_eq!(report.exit_code(), 1);
    // A 1-tick difference is inside a 500 ms tolerance.
    let relaxed = run(memory, rows, Some(5_000_000));
    assert_eq!(relaxed.summary.by_class["time_mismatch"], 0);
    assert_eq!(relaxed.research.verdict, "supported");
}

/// Unpaired allocated objects: only a live one (a state that is not CLOSED or DELETE_TCB, an
/// owner that has not exited, or TIME_WAIT, which needs none) is accused, and each note
/// names the evidence that decided.
#[test]
fn stale_objects_are_not_accused_and_the_note_says_why() {
    let seen = mem(
        0x100,
        "TcpE",
        ("10.0.0.5", 1000),
        Some(("1.1.1.1", 1)),
        Some(8),
    );
    let at = |off: u64, port: u16| {
        mem(
            off,
            "TcpE",
            ("10.0.0.5", port),
            Some(("6.6.6.6", 443)),
            Some(666),
        )
    };
    let mut closed = at(0x1000, 1001);
    closed.state = Some(TcpState::Closed);
    let mut delete = at(0x2000, 1002);
    delete.state = Some(TcpState::DeleteTcb);
    let mut exited = at(0x3000, 1003);
    exited.flags = vec![flag::OWNER_EXITED.into()];
    exited.process_exit_time = Some("2024-05-01T12:00:00.0000000Z".into());
    let mut orphan = at(0x4000, 1004);
    orphan.pid = None;
    orphan.process = None;
    orphan.flags = vec![flag::NO_OWNER.into()];
    let mut time_wait = at(0x5000, 1005);
    time_wait.state = Some(TcpState::TimeWait);
    time_wait.pid = None;
    time_wait.process = None;
    time_wait.flags = vec![flag::NO_OWNER.into()];
    let live = at(0x6000, 1006);
    let rows = vec![cap(&seen, 1)];
    let report = run(
        vec![seen, closed, delete, exited, orphan, time_wait, live],
        rows,
        None,
    );
    let got: Vec<(&str, u16, &str)> = report
        .rows
        .iter()
        .filter(|r| r.class != Class::Match)
        .map(|r| {
            let m = r.memory.as_ref().unwrap();
            (r.class.name(), m.local_port, r.note.as_str())
        })
        .collect();
    let class_of = |port| got.iter().find(|g| g.1 == port).unwrap();
    for (port, want) in [(1001, "state CLOSED"), (1002, "state DELETE_TCB")] {
        assert_eq!(class_of(port).0, "stale");
        assert!(class_of(port).2.starts_with(want), "{got:?}");
    }
    assert_eq!(class_of(1003).0, "stale");
    assert!(class_of(1003).2.contains("exited at 2024-05-01T12:00:00"));
    assert_eq!(class_of(1004).0, "stale");
    assert!(class_of(1004).2.contains("no process owns it"));
    assert_eq!(class_of(1005).0, "hidden_from_api");
    assert!(class_of(1005).2.contains("TIME_WAIT needs no owner"));
    assert_eq!(class_of(1006).0, "hidden_from_api");
    assert!(class_of(1006)
        .2
        .contains("state ESTABLISHED, owner svchost.exe (PID 666) has not exited"));
    assert_eq!(report.summary.by_class["stale"], 4);
    assert_eq!(
        report.summary.discrepancies, 2,
        "stale is not a discrepancy"
    );
}

/// A capture with rows of one protocol only (Get-NetTCPConnection without Get-NetUDPEndpoint)
/// says nothing of the other: its memory endpoints are counted, not compared, never hidden.
#[test]
fn a_protocol_the_capture_lacks_is_not_compared() {
    let tcp = mem(
        0x100,
        "TcpE",
        ("10.0.0.5", 1000),
        Some(("1.1.1.1", 1)),
        Some(8),
    );
    let udp = mem(0x200, "UdpA", ("0.0.0.0", 5353), None, Some(8));
    let udp6 = mem(0x300, "UdpA", ("::", 5355), None, Some(8));
    let report = run(vec![tcp.clone(), udp, udp6], vec![cap(&tcp, 1)], None);
    assert_eq!(classes(&report), ["match"]);
    let info = &report.captures[0];
    assert_eq!(info.protocols, [Proto::Tcp]);
    assert_eq!(info.not_compared, 2);
    assert!(
        info.warnings
            .iter()
            .any(|w| w.contains("lists no UDP endpoint: 2 UDP")),
        "{:?}",
        info.warnings
    );
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn dual_stack_time_wait_and_zero_causes() {
    let mut listener = mem(0x1000, "TcpL", ("::", 445), Some(("::", 0)), Some(4));
    listener.dual_stack = true;
    let tw = mem(
        0x2000,
        "TcTW",
        ("10.0.0.5", 50010),
        Some(("1.2.3.4", 80)),
        None,
    );
    let mut zero = mem(
        0x3000,
        "TcpE",
        ("10.0.0.5", 50011),
        Some(("1.2.3.5", 80)),
        Some(8),
    );
    zero.create_time_raw = Some(0);
    zero.flags = vec![flag::ZERO_TIME.into()];
    let has_time = mem(
        0x4000,
        "TcpE",
        ("10.0.0.5", 50012),
        Some(("1.2.3.6", 80)),
        Some(8),
    );

    let mut v4 = cap(&listener, 1);
    v4.family = Family::Ipv4;
    v4.local_addr = "0.0.0.0".into();
    v4.remote_addr = Some("0.0.0.0".into());
    let v6 = cap(&listener, 2);
    let tw_row = cap(&tw, 3);
    assert_eq!(tw_row.pid, Some(0));
    let mut z = cap(&zero, 4);
    z.create_time_raw = Some(0);
    let mut h = cap(&has_time, 5);
    h.create_time_raw = Some(0);
    let report = run(
        vec![listener, tw, zero, has_time],
        vec![v4, v6, tw_row, z, h],
        None,
    );
    let causes: Vec<_> = report.rows.iter().filter_map(|r| r.cause).collect();
    assert_eq!(causes, [Cause::KernelTimeZero, Cause::KernelHasTime]);
    assert_eq!(report.summary.by_class["match"], 3);
    assert_eq!(report.summary.discrepancies, 2);
    assert_eq!(report.research.verdict, "refuted");
}

/// A zero the kernel holds itself is counted apart: it neither supports nor refutes the
/// hypothesis about missing fields, and the verdict stays what the other rows say.
#[test]
fn kernel_zero_times_do_not_decide_the_verdict() {
    let no_field = |offset: u64, port: u16| {
        let mut m = mem(
            offset,
            "TcpE",
            ("10.0.0.5", port),
            Some(("1.2.3.4", 443)),
            Some(8),
        );
        m.create_time = None;
        m.create_time_raw = None;
        m.flags = vec![flag::NO_TIME_FIELD.into()];
        m
    };
    let mut udp_zero = mem(0x9000, "UdpA", ("10.0.0.5", 5000), None, Some(8));
    udp_zero.create_time_raw = Some(0);
    udp_zero.flags = vec![flag::ZERO_TIME.into()];
    let connections = [no_field(0x1000, 50001), no_field(0x2000, 50002)];
    let zero_rows = |ms: &[EndpointRecord]| -> Vec<CaptureRow> {
        ms.iter()
            .enumerate()
            .map(|(i, m)| {
                let mut c = cap(m, i as u64 + 1);
                c.create_time_raw = Some(0);
                c
            })
            .collect()
    };
    let mut memory = connections.to_vec();
    memory.push(udp_zero.clone());
    let report = run(memory.clone(), zero_rows(&memory), None);
    let r = &report.research;
    assert_eq!(r.verdict, "supported", "{}", r.reasoning);
    assert_eq!(r.counts.api_zero_rows, 3);
    assert_eq!(r.counts.api_zero_on_no_time_field, 2);
    assert_eq!(r.counts.api_zero_on_kernel_time_zero, 1);
    assert_eq!(r.counts.api_zero_not_tcp_connection, 0);
    assert_eq!(
        r.reasoning,
        "2 of 3 zero-time API rows are TCP connections whose kernel object has no time \
         field; all 2 timed API rows of such objects show zero; 1 zero-time API row reports \
         the kernel's own zero time (not evidence either way)"
    );

    // Only kernel zeros: nothing to say about missing fields.
    let report = run(vec![udp_zero.clone()], zero_rows(&[udp_zero.clone()]), None);
    assert_eq!(report.research.verdict, "inconclusive");
    assert!(report
        .research
        .reasoning
        .contains("1 zero-time API row reports the kernel's own zero time"));

    // A zero API time on a UDP endpoint whose kernel holds a time still refutes it.
    let udp_timed = mem(0xA000, "UdpA", ("10.0.0.5", 5001), None, Some(8));
    let mut memory = connections.to_vec();
    memory.push(udp_timed);
    let report = run(memory.clone(), zero_rows(&memory), None);
    assert_eq!(report.research.verdict, "refuted");
    assert!(
        report.research.reasoning.starts_with(
            "1 API row shows zero although the kernel object holds a time; 1 zero-time API \
             row is not a TCP connection"
        ),
        "{}",
        report.research.reasoning
    );
}

#[test]
fn agreement_exits_zero() {
    let a = mem(0x1000, "UdpA", ("::", 53), None, Some(1));
    let report = run(vec![a.clone()], vec![cap(&a, 1)], None);
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.research.verdict, "inconclusive");
}

/// `n` connections on distinct 4-tuples, and their capture rows in reverse order.
fn distinct_connections(n: u32) -> (Vec<EndpointRecord>, Vec<CaptureRow>) {
    let memory: Vec<EndpointRecord> = (0..n)
        .map(|i| {
            let port = (i % 60_000) as u16 + 1;
            let remote = format!("10.{}.{}.1", i / 256 % 256, i % 256);
            mem(
                0x1000 + u64::from(i) * 0x100,
                "TcpE",
                ("10.0.0.5", port),
                Some((&remote, 443)),
                Some(4 * (i + 1)),
            )
        })
        .collect();
    let rows: Vec<CaptureRow> = memory
        .iter()
        .rev()
        .enumerate()
        .map(|(i, m)| cap(m, i as u64 + 1))
        .collect();
    (memory, rows)
}

/// Pairing weighs only the records that share a row's key, so the work per row stays
/// constant as the image grows: one record per row here, at n and at 4n. A pairing that
/// scanned every record for every row would weigh about n²/2 and fail at either size.
#[test]
fn thousands_of_endpoints_pair_by_index() {
    for n in [5_000u32, 20_000] {
        let (memory, rows) = distinct_connections(n);
        WEIGHED.with(|w| w.set(0));
        let report = run(memory, rows, None);
        let weighed = WEIGHED.with(|w| w.get());
        assert_eq!(report.summary.by_class["match"], n as usize);
        let n = u64::from(n);
        assert!(
            (n..=2 * n).contains(&weighed),
            "pairing {n} rows weighed {weighed} memory records (linear work is {n})"
        );
    }
}

#[test]
fn duplicate_keys_pair_by_pid_then_name() {
    // Two objects on one 4-tuple (a PID-reused socket, one owner unresolved).
    let mut a = mem(0x1000, "TcpE", ("10.0.0.5", 1), Some(("1.1.1.1", 2)), None);
    a.process = Some("other.exe".into());
    let mut b = mem(0x2000, "TcpE", ("10.0.0.5", 1), Some(("1.1.1.1", 2)), None);
    b.process = Some("Chrome.exe".into());
    let mut row = cap(&b, 1);
    row.pid = Some(77);
    row.process = Some("chrome".into());
    let report = run(vec![a, b], vec![row], None);
    let matched = report
        .rows
        .iter()
        .find(|r| r.class == Class::Match)
        .unwrap();
    assert_eq!(
        matched.memory.as_ref().unwrap().physical_offset,
        Hex(0x2000)
    );
    assert_eq!(report.summary.by_class["hidden_from_api"], 1);
}

#[test]
fn process_names() {
    assert!(same_process("chrome.exe", "chrome"));
    assert!(same_process("CHROME.EXE", "chrome.exe"));
    assert!(same_process("MsMpEngCP.exe", "msmpengcp"));
    assert!(same_process("SearchProtocolH", "SearchProtocolHost.exe"));
    assert!(!same_process("evil.exe", "chrome"));
}

/// Where tcpip's tables were walked they decide: a linked object the API lacks is hidden (even
/// one whose own fields look ended), an unlinked one that looks alive is `unlinked` (a
/// discrepancy), an unlinked one that does not is stale; `linked: null` keeps the object's own
/// evidence, and every note says which decided.
#[test]
fn the_tables_decide_hidden_unlinked_and_stale() {
    let seen = mem(
        0x100,
        "TcpE",
        ("10.0.0.5", 1000),
        Some(("1.1.1.1", 1)),
        Some(8),
    );
    let at = |off: u64, port: u16, linked: Option<bool>| {
        let mut m = mem(
            off,
            "TcpE",
            ("10.0.0.5", port),
            Some(("6.6.6.6", 443)),
            Some(666),
        );
        m.linked = linked;
        m
    };
    let linked_live = at(0x1000, 2001, Some(true));
    let mut linked_closed = at(0x2000, 2002, Some(true));
    linked_closed.state = Some(TcpState::Closed);
    let unlinked_live = at(0x3000, 2003, Some(false));
    let mut unlinked_closed = at(0x4000, 2004, Some(false));
    unlinked_closed.state = Some(TcpState::Closed);
    let unknown_live = at(0x5000, 2005, None);
    let rows = vec![cap(&seen, 1)];
    let report = run(
        vec![
            seen,
            linked_live,
            linked_closed,
            unlinked_live,
            unlinked_closed,
            unknown_live,
        ],
        rows,
        None,
    );
    let row = |port: u16| {
        report
            .rows
            .iter()
            .find(|r| r.memory.as_ref().is_some_and(|m| m.local_port == port))
            .unwrap()
    };
    assert_eq!(row(2001).class, Class::HiddenFromApi);
    assert!(
        row(2001).note.contains("linked in tcpip's tables"),
        "{}",
        row(2001).note
    );
    assert_eq!(row(2002).class, Class::HiddenFromApi);
    assert!(row(2002)
        .note
        .contains("linked in tcpip's tables, though state CLOSED"));
    assert_eq!(row(2003).class, Class::Unlinked);
    assert!(
        row(2003).note.contains("in none of tcpip's tables"),
        "{}",
        row(2003).note
    );
    assert!(Class::Unlinked.is_discrepancy());
    assert_eq!(row(2004).class, Class::Stale);
    assert!(row(2004).note.ends_with("in none of tcpip's tables"));
    assert_eq!(row(2005).class, Class::HiddenFromApi);
    assert!(row(2005).note.contains("(tcpip's tables do not say"));
    assert_eq!(report.summary.by_class["unlinked"], 1);
    assert_eq!(report.exit_code(), 1);
}
