//! Every capture parser on the fixtures (testdata/captures) and on hostile input: no panic, a
//! one-line error naming the file and line, or the bad row skipped with a warning.
mod support;

use netcarve::capture::{parse_text, read_capture, CaptureFormat, TimeContext};
use netcarve::record::{Family, Proto, TcpState};
use std::path::{Path, PathBuf};
use support::{scratch, write, Rng};

fn fixture(name: &str) -> PathBuf {
    support::testdata("captures").join(name)
}

/// The image's zone (UTC+1) as the nettcpip fixture's naive local times need it.
fn image_tz() -> TimeContext {
    TimeContext {
        capture_tz_minutes: None,
        image_offset_minutes: Some(60),
    }
}

const T: u64 = 133_590_404_967_890_000;

#[test]
fn fixtures_detect_and_normalise() {
    for (file, format) in [
        ("netcarve.json", CaptureFormat::Netcarve),
        ("ps51.json", CaptureFormat::Ps51),
        ("ps7.json", CaptureFormat::Ps7),
        ("nettcpip.json", CaptureFormat::NetTcpIp),
        ("velociraptor.jsonl", CaptureFormat::Velociraptor),
        ("osquery.json", CaptureFormat::Osquery),
        ("netstat.txt", CaptureFormat::Netstat),
    ] {
        let auto = read_capture(&fixture(file), None, &image_tz()).unwrap();
        assert_eq!(auto.format, format, "{file}");
        assert_eq!(auto.rows.len(), 11, "{file}");
        assert!(auto.warnings.is_empty(), "{file}: {:?}", auto.warnings);
        let forced = read_capture(&fixture(file), Some(format), &image_tz()).unwrap();
        assert_eq!(forced.rows, auto.rows, "{file}");
        for row in &auto.rows {
            assert_eq!(row.source, format.name());
        }

        // Row 1: the Windows 7 ESTABLISHED connection, with a zero (1601) API time where timed.
        let first = auto
            .rows
            .iter()
            .find(|r| r.line == 1 || r.local_port == 49723)
            .unwrap();
        assert_eq!(first.proto, Proto::Tcp);
        assert_eq!(first.family, Family::Ipv4);
        assert_eq!(first.local_addr, "10.0.0.5");
        assert_eq!(first.remote_addr.as_deref(), Some("93.184.216.34"));
        assert_eq!(first.remote_port, Some(443));
        assert_eq!(first.state, Some(TcpState::Established));
        assert_eq!(first.pid, Some(1236));
        let timed = !matches!(format, CaptureFormat::Osquery | CaptureFormat::Netstat);
        if timed {
            assert_eq!(first.create_time_raw, Some(0), "{file}");
            assert_eq!(
                first.create_time.as_deref(),
                Some("1601-01-01T00:00:00.0000000Z")
            );
            let zeros = auto
                .rows
                .iter()
                .filter(|r| r.create_time_raw == Some(0))
                .count();
            assert_eq!(zeros, 3, "{file}");
        } else {
            assert_eq!(first.create_time_raw, None);
            assert_eq!(first.precision, "none");
        }

        // IPv6 listener, UDP without remote side, TIME_WAIT with PID 0.
        let v6 = auto
            .rows
            .iter()
            .find(|r| r.local_port == 135 && r.family == Family::Ipv6)
            .unwrap();
        assert_eq!(v6.local_addr, "::");
        assert_eq!(v6.remote_addr.as_deref(), Some("::"));
        assert_eq!(v6.state, Some(TcpState::Listening));
        let udp = auto.rows.iter().find(|r| r.local_port == 5353).unwrap();
        assert_eq!(
            (udp.proto, udp.remote_addr.as_deref(), udp.state),
            (Proto::Udp, None, None)
        );
        let tw = auto.rows.iter().find(|r| r.local_port == 49700).unwrap();
        assert_eq!((tw.state, tw.pid), (Some(TcpState::TimeWait), Some(0)));
    }
}

#[test]
fn time_precision_per_format() {
    // t135 = T - 1 h + 0.1234567 s, in each producer's precision.
    let t135 = T - 36_000_000_000 + 1_234_567;
    for (file, expect) in [
        ("netcarve.json", t135),
        ("ps7.json", t135),
        ("nettcpip.json", t135),
        ("ps51.json", t135 - t135 % 10_000),
        ("velociraptor.jsonl", t135 - (t135 % 10_000_000)),
    ] {
        let c = read_capture(&fixture(file), None, &image_tz()).unwrap();
        let row = c
            .rows
            .iter()
            .find(|r| r.local_port == 135 && r.family == Family::Ipv4)
            .unwrap();
        assert_eq!(row.create_time_raw, Some(expect), "{file}");
    }
    let nc = read_capture(&fixture("netcarve.json"), None, &image_tz()).unwrap();
    assert_eq!(nc.collected_raw, Some(T));
    assert_eq!(nc.utc_offset_minutes, Some(60));
    assert_eq!(nc.host.as_deref(), Some("WIN7-PC"));
    let ps7 = read_capture(&fixture("ps7.json"), None, &image_tz()).unwrap();
    assert_eq!(ps7.tz_source, "offset_in_file");
    let ps51 = read_capture(&fixture("ps51.json"), None, &image_tz()).unwrap();
    assert_eq!(ps51.tz_source, "utc");
}

#[test]
fn utf16_without_bom_and_big_endian() {
    let text = std::fs::read_to_string(fixture("ps7.json")).unwrap();
    let le: Vec<u8> = text.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    let mut be = vec![0xFE, 0xFF];
    be.extend(text.encode_utf16().flat_map(|u| u.to_be_bytes()));
    let reference = read_capture(&fixture("ps7.json"), None, &image_tz()).unwrap();
    let dir = scratch("compare_capture_utf16");
    for (name, bytes) in [("le-nobom.json", le), ("be-bom.json", be)] {
        let c = read_capture(&write(&dir, name, &bytes), None, &image_tz()).unwrap();
        assert_eq!(c.rows, reference.rows, "{name}");
    }
}

#[test]
fn zero_timestamps_in_every_spelling() {
    let tz = TimeContext::default();
    let p = Path::new("z.json");
    for (format, json) in [
        (
            "ps51",
            r#"{"ProcessId":4,"LocalAddress":"0.0.0.0","LocalPort":1,"Protocol":"UDP","Timestamp":"\/Date(-11644473600000)\/"}"#,
        ),
        (
            "ps51",
            r#"{"ProcessId":4,"LocalAddress":"0.0.0.0","LocalPort":1,"Protocol":"UDP","Timestamp":{"value":"\/Date(-11644473600000)\/","DisplayHint":2}}"#,
        ),
        (
            "ps7",
            r#"{"ProcessId":4,"LocalAddress":"0.0.0.0","LocalPort":1,"Protocol":"UDP","Timestamp":"1600-12-31T19:00:00-05:00"}"#,
        ),
        (
            "ps7",
            r#"{"ProcessId":4,"LocalAddress":"0.0.0.0","LocalPort":1,"Protocol":"UDP","Timestamp":"1601-01-01T01:00:00+01:00"}"#,
        ),
        (
            "nettcpip",
            r#"{"OwningProcess":4,"LocalAddress":"::","LocalPort":1,"CreationTime":"\/Date(-11644473600000)\/"}"#,
        ),
        (
            "nettcpip",
            r#"{"OwningProcess":4,"LocalAddress":"::","LocalPort":1,"CreationTime":"1601-01-01T00:00:00"}"#,
        ),
        (
            "velociraptor",
            r#"{"Pid":4,"Type":"UDP","Family":"IPv4","Laddr.IP":"0.0.0.0","Laddr.Port":1,"Timestamp":"1601-01-01T00:00:00Z"}"#,
        ),
        (
            "netcarve",
            r#"{"format":"netcarve-capture","version":1,"udp":[{"local_addr":"::","local_port":1,"pid":4,"create_time_raw":0}]}"#,
        ),
    ] {
        let c = parse_text(p, json, None, &tz).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(c.format.name(), format, "{json}");
        assert_eq!(c.rows.len(), 1, "{json}");
        assert_eq!(c.rows[0].create_time_raw, Some(0), "{json}");
    }
}

#[test]
fn nettcpip_states_as_numbers_and_names() {
    let tz = TimeContext::default();
    let json = r#"[
      {"LocalAddress":"10.0.0.5","LocalPort":80,"RemoteAddress":"1.2.3.4","RemotePort":5,"State":11,"OwningProcess":0},
      {"LocalAddress":"10.0.0.5","LocalPort":81,"RemoteAddress":"0.0.0.0","RemotePort":0,"State":"Bound","OwningProcess":8},
      {"LocalAddress":"10.0.0.5","LocalPort":82,"RemoteAddress":"0.0.0.0","RemotePort":0,"State":100,"OwningProcess":8},
      {"LocalAddress":"10.0.0.5","LocalPort":83,"RemoteAddress":"1.2.3.4","RemotePort":5,"State":"SynReceived","OwningProcess":8},
      {"LocalAddress":"fe80::1%12","LocalPort":84,"OwningProcess":8}
    ]"#;
    let c = parse_text(Path::new("n.json"), json, None, &tz).unwrap();
    let states: Vec<_> = c.rows.iter().map(|r| r.state).collect();
    assert_eq!(
        states,
        [
            Some(TcpState::TimeWait),
            Some(TcpState::Closed),
            Some(TcpState::Closed),
            Some(TcpState::SynRcvd),
            None
        ]
    );
    assert_eq!(c.rows[4].proto, Proto::Udp);
    assert_eq!(c.rows[4].local_addr, "fe80::1");
    assert_eq!(c.precision.name(), "none");
}

#[test]
fn bad_rows_are_skipped_with_a_warning_naming_the_row() {
    let tz = TimeContext::default();
    let json = r#"[
      {"family":"2","local_address":"0.0.0.0","local_port":"135","pid":"928","protocol":"6","remote_address":"0.0.0.0","remote_port":"0","state":"LISTEN"},
      {"family":"2","local_address":"0.0.0.0","local_port":"99999999","pid":"928","protocol":"6"},
      {"family":"2","local_address":"0.0.0.0","local_port":"1","pid":"99999999999999999999","protocol":"6"},
      {"family":"2","local_address":["x"],"local_port":"1","pid":"1","protocol":"6"},
      {"family":"2","local_address":"not-an-ip","local_port":"1","pid":"1","protocol":"6"},
      {"family":"7","local_address":"0.0.0.0","local_port":"1","pid":"1","protocol":"6"},
      {"family":"2","local_address":"0.0.0.0","local_port":"1","pid":"1","protocol":"1"},
      42
    ]"#;
    let c = parse_text(Path::new("o.json"), json, None, &tz).unwrap();
    assert_eq!(c.rows.len(), 1);
    assert_eq!(c.warnings.len(), 7, "{:?}", c.warnings);
    for (w, row) in c.warnings.iter().zip(2..) {
        assert!(w.starts_with(&format!("row {row}: ")), "{w}");
        assert!(!w.contains('\n'));
    }
    // The same bad rows alone: nothing usable is an error naming the file and the first bad row.
    let only_bad = r#"[{"family":"2","local_address":"0.0.0.0","local_port":"99999999","pid":"1","protocol":"6"}]"#;
    let err = parse_text(Path::new("o.json"), only_bad, None, &tz)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("o.json: row 1: port 99999999 out of range"),
        "{err}"
    );
}

#[test]
fn hostile_files_are_one_line_errors() {
    let tz = TimeContext::default();
    let cases: Vec<(&str, &[u8], &str)> = vec![
        ("empty.json", b"", "empty capture"),
        ("spaces.json", b" \r\n\t ", "empty capture"),
        ("bom-only.json", b"\xff\xfe", "empty capture"),
        ("truncated.json", b"[{\"Pid\": 4,\n\"Laddr.IP\": \"0.0", "line 2 column"),
        ("number.json", b"42", "no TCP/UDP rows"),
        ("string.json", b"\"hello\"", "no TCP/UDP rows"),
        ("unknown.json", b"[{\"foo\": 1}]", "unrecognised JSON capture (keys: foo)"),
        ("no-objects.json", b"[1, 2]", "no JSON object rows"),
        ("other-format.json", b"{\"format\": \"pcap\"}", "unknown capture format"),
        ("prose.txt", b"hello world\nnothing here\n", "no TCP/UDP rows"),
        ("binary.bin", b"\x80\x81\x82\x83", "not UTF-8 or UTF-16"),
        ("tcp-not-array.json", b"{\"format\":\"netcarve-capture\",\"tcp\":5}", "\"tcp\" is a number"),
        ("version.json", b"{\"format\":\"netcarve-capture\",\"version\":2,\"tcp\":[]}", "version 2"),
        ("huge-date.json", b"[{\"ProcessId\":4,\"LocalAddress\":\"0.0.0.0\",\"LocalPort\":1,\"Protocol\":\"TCP\",\"Timestamp\":\"\\/Date(999999999999999999)\\/\"}]", "row 1: date out of range"),
        ("netstat-bad.txt", b"  TCP    0.0.0.0:135   0.0.0.0:0   LISTENING   pid\n", "line 1: bad PID"),
    ];
    let dir = scratch("compare_capture_hostile");
    for (name, bytes, needle) in cases {
        let path = write(&dir, name, bytes);
        let err = read_capture(&path, None, &tz)
            .err()
            .unwrap_or_else(|| panic!("{name} parsed"));
        let text = err.to_string();
        assert!(
            text.starts_with(&path.display().to_string()),
            "{name}: {text}"
        );
        assert!(text.contains(needle), "{name}: {text}");
        assert_eq!(text.lines().count(), 1, "{name}: {text}");
    }
    let missing = read_capture(Path::new("/nonexistent/x.json"), None, &tz).unwrap_err();
    assert_eq!(missing.to_string(), "/nonexistent/x.json: no such file");
}

#[test]
fn netstat_variants() {
    let tz = TimeContext::default();
    let text = "Aktive Verbindungen\n\n  Proto  Lokale Adresse  Remoteadresse  Status  PID\n\
                \x20 TCP    0.0.0.0:135   0.0.0.0:0    ABHÖREN    928\n\
                \x20[svchost.exe]\n\
                \x20 TCP    [fe80::1%7]:49700   [fe80::2%7]:445   HERGESTELLT  1236\n\
                \x20 UDP    [::]:5353   *:*   2104\n\
                \x20 TCP    10.0.0.5:1   10.0.0.6:2   WAITING FOR GODOT   77\n";
    let c = parse_text(Path::new("netstat.txt"), text, None, &tz).unwrap();
    assert_eq!(c.rows.len(), 4);
    assert_eq!(c.rows[0].process.as_deref(), Some("svchost.exe"));
    assert_eq!(c.rows[0].state, Some(TcpState::Listening), "ABHÖREN");
    assert_eq!(c.rows[1].state, Some(TcpState::Established), "HERGESTELLT");
    assert_eq!(
        c.rows[3].state, None,
        "an unknown state word is no state, not an error"
    );
    assert_eq!(
        c.warnings,
        ["line 8: state word \"WAITING FOR GODOT\" is not one netcarve knows: kept with no state"]
    );
    assert_eq!(c.rows[1].local_addr, "fe80::1");
    assert_eq!(c.rows[1].remote_addr.as_deref(), Some("fe80::2"));
    assert_eq!(c.rows[2].family, Family::Ipv6);
    assert_eq!(c.rows[2].remote_addr, None);
    assert_eq!(c.rows[3].pid, Some(77));
    assert_eq!(c.rows[1].line, 6);
}

#[test]
fn velociraptor_array_and_nested_form() {
    let tz = TimeContext::default();
    let json = r#"[{"Pid":928,"Name":"svchost.exe","Family":"IPv4","Type":"TCP","Status":"SENT","Laddr":{"IP":"10.0.0.5","Port":1},"Raddr":{"IP":"10.0.0.6","Port":2},"Timestamp":"2023-11-07T16:32:23Z"},
                   {"Pid":4,"Name":"","Family":"IPv6","Type":"UDP","Status":"","Laddr.IP":"::","Laddr.Port":500,"Raddr.IP":"","Raddr.Port":0,"Timestamp":1699374743}]"#;
    let c = parse_text(Path::new("v.json"), json, None, &tz).unwrap();
    assert_eq!(c.format, CaptureFormat::Velociraptor);
    assert_eq!(c.rows[0].state, Some(TcpState::SynSent));
    assert_eq!(c.rows[0].create_time_raw, c.rows[1].create_time_raw);
    assert_eq!(c.rows[1].process, None);
    assert_eq!(c.precision.name(), "s");
}

/// Truncations and byte flips of every fixture: each parse ends in rows or an error, never a panic,
/// and every error is one line naming the file.
#[test]
fn mutated_fixtures_never_panic() {
    let tz = image_tz();
    let mut rng = Rng::new(1);
    for file in [
        "netcarve.json",
        "ps51.json",
        "ps7.json",
        "nettcpip.json",
        "velociraptor.jsonl",
        "osquery.json",
        "netstat.txt",
        "netstat-es-cp850.txt",
        "netstat-de-cp850.txt",
        "netstat-ja-cp932.txt",
        "pscsv-en-US.csv",
        "pscsv-de-DE.csv",
        "pscsv-ko-KR.csv",
        "pslist-ja-JP.txt",
        "velociraptor-enriched.jsonl",
    ] {
        let original = std::fs::read(fixture(file)).unwrap();
        let path = Path::new(file);
        let check = |bytes: &[u8]| {
            let Ok(decoded) = netcarve::capture::decode(bytes, None) else {
                return;
            };
            let text = decoded.text;
            for forced in [
                None,
                Some(CaptureFormat::Ps51),
                Some(CaptureFormat::Netstat),
                Some(CaptureFormat::PsCsv),
                Some(CaptureFormat::PsList),
            ] {
                if let Err(e) = parse_text(path, &text, forced, &tz) {
                    let e = e.to_string();
                    assert!(e.starts_with(file) && e.lines().count() == 1, "{e}");
                }
            }
        };
        for cut in (0..original.len()).step_by(7) {
            check(&original[..cut]);
        }
        for _ in 0..300 {
            let mut bytes = original.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len() as u64) as usize;
                let replacement = [b'"', b'{', b']', b':', b'9', b'-', 0, 0xFF, b'\n', b'x'];
                bytes[at] = *rng.pick(&replacement);
            }
            check(&bytes);
        }
    }
}
