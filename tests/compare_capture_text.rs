//! Captures as real hosts write them outside JSON (testdata/captures, see make_fixtures.py):
//! localized `netstat -ano` in OEM code pages, PowerShell Export-Csv and Format-List in several
//! cultures, Velociraptor NetstatEnriched. Each compares against the Windows 7 fixture with the
//! same verdicts as the JSON captures of the same moment; bad input is a warning or one line.
mod support;

use netcarve::capture::{read_capture_with, CaptureFormat, CaptureOptions, TimeContext};
use netcarve::record::{Proto, TcpState};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use support::fixtures::{expected, ports_by_class};
use support::{netcarve, scratch, write};

fn fixture(name: &str) -> PathBuf {
    support::testdata("captures").join(name)
}

fn compare(live: &Path, extra: &[&str]) -> (i32, Value, String) {
    let memory = fixture("memory-win7.json");
    let mut args: Vec<String> = vec!["compare".into(), memory.display().to_string()];
    args.extend(["--live".into(), live.display().to_string()]);
    args.extend(["--format".to_string(), "json".to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = netcarve(&refs);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

#[test]
fn every_text_fixture_gives_the_planted_verdicts() {
    for (file, extra, format, encoding, culture, timed, warnings) in [
        (
            "netstat-es-cp850.txt",
            &[][..],
            "netstat",
            "cp850",
            None,
            false,
            0,
        ),
        (
            "netstat-de-cp850.txt",
            &[],
            "netstat",
            "cp850",
            None,
            false,
            0,
        ),
        (
            "netstat-ja-cp932.txt",
            &[],
            "netstat",
            "cp932",
            None,
            false,
            0,
        ),
        (
            "pscsv-en-US.csv",
            &["--capture-culture", "en-US"],
            "pscsv",
            "utf-8",
            Some("en-US"),
            true,
            1,
        ),
        (
            "pscsv-de-DE.csv",
            &[],
            "pscsv",
            "utf-8",
            Some("d.M.yyyy H:mm:ss"),
            true,
            1,
        ),
        (
            "pscsv-ko-KR.csv",
            &[],
            "pscsv",
            "utf-8",
            Some("yyyy-M-d tt h:mm:ss"),
            true,
            1,
        ),
        (
            "pslist-ja-JP.txt",
            &[],
            "pslist",
            "utf-8",
            Some("yyyy/M/d H:mm:ss"),
            true,
            1,
        ),
        (
            "velociraptor-enriched.jsonl",
            &[],
            "velociraptor",
            "utf-8",
            None,
            true,
            0,
        ),
    ] {
        let (code, report, stderr) = compare(&fixture(file), extra);
        assert_eq!(code, 1, "{file}: {stderr}");
        assert_eq!(ports_by_class(&report), expected(timed), "{file}");
        let c = &report["captures"][0];
        assert_eq!(c["format"], format, "{file}");
        assert_eq!(c["encoding"], encoding, "{file}");
        assert_eq!(c["culture"].as_str(), culture, "{file}");
        assert_eq!(c["rows"], 11, "{file}");
        // The one warning of the PowerShell tables says which rows are the 1/1/1601 zero.
        let w = c["warnings"].as_array().unwrap();
        assert_eq!(w.len(), warnings, "{file}: {w:?}");
        if warnings == 1 {
            let w = w[0].as_str().unwrap();
            assert!(w.contains("1/1/1601 is FILETIME 0"), "{file}: {w}");
        }
        for row in report["rows"].as_array().unwrap() {
            if row["class"] == "api_zero_time" {
                assert_eq!(row["capture"]["create_time_raw"], 0, "{file}");
            }
        }
        let verdict = report["research"]["verdict"].as_str().unwrap();
        let want = if timed { "supported" } else { "inconclusive" };
        assert_eq!(verdict, want, "{file}");
    }
}

fn read(path: &Path, opts: &CaptureOptions) -> netcarve::capture::Capture {
    let tz = TimeContext {
        capture_tz_minutes: None,
        image_offset_minutes: Some(60),
    };
    read_capture_with(path, opts, &tz).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn translated_states_and_protocol_coverage() {
    let de = read(&fixture("netstat-de-cp850.txt"), &CaptureOptions::default());
    let states: BTreeSet<_> = de.rows.iter().filter_map(|r| r.state).collect();
    assert_eq!(
        states,
        BTreeSet::from([
            TcpState::Listening,
            TcpState::Established,
            TcpState::TimeWait,
            TcpState::CloseWait
        ])
    );
    assert_eq!(de.protocols, None, "netstat lists both");
    let csv = read(&fixture("pscsv-de-DE.csv"), &CaptureOptions::default());
    assert_eq!(
        csv.protocols,
        Some(BTreeSet::from([Proto::Tcp, Proto::Udp]))
    );
    // Get-NetTCPConnection alone covers TCP only, and the capture says so.
    let dir = scratch("capture_text_tcp_only");
    let tcp_only = write(
        &dir,
        "tcp.csv",
        b"\"State\",\"OwningProcess\",\"CreationTime\",\"LocalAddress\",\"LocalPort\",\"RemoteAddress\",\"RemotePort\"\r\n\
          \"Listen\",\"4\",\"14.01.2026 07:17:53\",\"0.0.0.0\",\"445\",\"0.0.0.0\",\"0\"\r\n",
    );
    let c = read(&tcp_only, &CaptureOptions::default());
    assert_eq!(c.protocols, Some(BTreeSet::from([Proto::Tcp])));
    assert_eq!(c.format, CaptureFormat::PsCsv);
    // 14.01.2026 07:17:53 at UTC+1.
    assert_eq!(
        c.rows[0].create_time.as_deref(),
        Some("2026-01-14T06:17:53.0000000Z")
    );
}

#[test]
fn culture_dates_in_every_form() {
    let dir = scratch("capture_text_cultures");
    let header = "\"State\",\"OwningProcess\",\"CreationTime\",\"LocalAddress\",\"LocalPort\",\"RemoteAddress\",\"RemotePort\"\r\n";
    for (date, want) in [
        ("1/14/2026 7:17:53 AM", "2026-01-14T06:17:53.0000000Z"),
        ("1/14/2026 7:17:53 PM", "2026-01-14T18:17:53.0000000Z"),
        ("14/1/2026 19:17:53", "2026-01-14T18:17:53.0000000Z"),
        ("14.01.2026 07:17:53", "2026-01-14T06:17:53.0000000Z"),
        ("2022/3/9 10:31:36", "2022-03-09T09:31:36.0000000Z"),
        ("2020-08-28 오후 12:52:04", "2020-08-28T11:52:04.0000000Z"),
        ("2020-08-28 오전 12:52:04", "2020-08-27T23:52:04.0000000Z"),
        ("1/1/1601 2:00:00 AM", "1601-01-01T00:00:00.0000000Z"),
        ("1/1/1601 11:00:00 PM", "1601-01-01T00:00:00.0000000Z"),
    ] {
        let text = format!(
            "{header}\"Listen\",\"4\",\"{date}\",\"0.0.0.0\",\"445\",\"0.0.0.0\",\"0\"\r\n"
        );
        let c = read(
            &write(&dir, "d.csv", text.as_bytes()),
            &CaptureOptions::default(),
        );
        assert_eq!(c.rows[0].create_time.as_deref(), Some(want), "{date}");
        assert_eq!(c.rows[0].precision, "s", "{date}");
    }
}

#[test]
fn bad_text_captures_are_warnings_or_one_line_errors() {
    let dir = scratch("capture_text_bad");
    let one_line_error = |name: &str, bytes: &[u8], extra: &[&str], needle: &str| {
        let path = write(&dir, name, bytes);
        let (code, _, stderr) = compare(&path, extra);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(&path.display().to_string()), "{stderr}");
        assert!(stderr.contains(needle), "{name}: {stderr}");
    };
    // Every date reads both ways: refused, naming the rows and the flag.
    let en = std::fs::read(fixture("pscsv-en-US.csv")).unwrap();
    one_line_error(
        "ambiguous.csv",
        &en,
        &[],
        "no day above 12); --capture-culture NAME",
    );
    // Day-first and month-first dates in one file.
    let header = "\"State\",\"OwningProcess\",\"CreationTime\",\"LocalAddress\",\"LocalPort\",\"RemoteAddress\",\"RemotePort\"\r\n";
    let row = |date: &str, port: u32| {
        format!("\"Listen\",\"4\",\"{date}\",\"0.0.0.0\",\"{port}\",\"0.0.0.0\",\"0\"\r\n")
    };
    let disagree = format!(
        "{header}{}{}",
        row("13/1/2026 1:00:00", 1),
        row("1/13/2026 1:00:00", 2)
    );
    one_line_error(
        "disagree.csv",
        disagree.as_bytes(),
        &[],
        "line 2 read only day first, line 3 only month first",
    );
    // A code page no netstat word tells, in a row.
    one_line_error(
        "undecided.txt",
        b"  TCP    0.0.0.0:135   0.0.0.0:0   \xa2\xa3   780\r\n",
        &[],
        "--capture-encoding NAME",
    );
    // An encoding no one has: a usage error naming the flag.
    let any = write(
        &dir,
        "any.txt",
        b"  TCP    0.0.0.0:135   0.0.0.0:0   LISTENING   780\r\n",
    );
    let (code, _, stderr) = compare(&any, &["--capture-encoding", "klingon"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.starts_with("error: invalid value 'klingon' for '--capture-encoding")
            && stderr.contains("unknown encoding \"klingon\" (auto, utf-8"),
        "{stderr}"
    );
    let (code, _, stderr) = compare(&any, &["--capture-culture", "12"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("'--capture-culture <CAPTURE_CULTURE>': \"12\" is not a culture name"),
        "{stderr}"
    );

    let tz = CaptureOptions::default();
    // A culture string with no date: the row is kept without its time, with a warning.
    let no_date = format!(
        "{header}{}{}",
        row("7:17:53 AM", 1),
        row("14.01.2026 07:17:53", 2)
    );
    let c = read(&write(&dir, "nodate.csv", no_date.as_bytes()), &tz);
    assert_eq!(c.rows.len(), 1);
    assert_eq!(c.unreadable.len(), 1);
    let partial = c.unreadable[0].partial.as_ref().unwrap();
    assert_eq!(
        (partial.0.local_port, partial.1.as_str()),
        (1, "CreationTime")
    );
    assert!(
        c.warnings[0].starts_with("line 2: no date in \"7:17:53 AM\""),
        "{:?}",
        c.warnings
    );
    // Quoted delimiters and a value over two lines do not shift the columns.
    let quoted = format!(
        "{header}\"Listen\",\"4\",\"14.01.2026 07:17:53\",\"0.0.0.0\",\"1\",\"0.0.0.0\",\"0\"\r\n\"Listen\",\"8\",\"14.01.2026 07:17:53\",\"0.0.0.0\",\"2\",\"0.0.0.0\",\"0\",\"a, \"\"b\"\"\r\nc\"\r\n\"Listen\",\"12\",\"14.01.2026 07:17:53\",\"0.0.0.0\",\"3\",\"0.0.0.0\",\"0\"\r\n"
    );
    let c = read(&write(&dir, "quoted.csv", quoted.as_bytes()), &tz);
    let got: Vec<(u16, Option<u32>, u64)> = c
        .rows
        .iter()
        .map(|r| (r.local_port, r.pid, r.line))
        .collect();
    assert_eq!(got, [(1, Some(4), 2), (3, Some(12), 5)]);
    assert!(
        c.warnings[0].starts_with("line 3: 8 fields under 7 column names"),
        "{:?}",
        c.warnings
    );
    // A netstat table cut by other text keeps going.
    let cut = b"  Proto  Local Address  Foreign Address  State  PID\r\n  TCP    0.0.0.0:135   0.0.0.0:0   LISTENING   780\r\n    ...\r\nTCP Statistics for IPv4\r\n  TCP    0.0.0.0:445   0.0.0.0:0   LISTENING   4\r\n";
    let c = read(&write(&dir, "cut.txt", cut), &tz);
    assert_eq!(c.rows.len(), 2);
    assert_eq!(
        c.warnings,
        ["lines 3, 4 between rows: not rows, skipped; the rows after them are read"]
    );
    // UTF-8 and CP850 lines in one file: each read in its own, and said.
    let mut mixed = "  Proto  Dirección local\r\n".as_bytes().to_vec();
    mixed.extend(
        b"  Proto  Direcci\xa2n local\r\n  TCP    0.0.0.0:135   0.0.0.0:0   LISTENING   780\r\n",
    );
    let c = read(&write(&dir, "mixed.txt", &mixed), &tz);
    assert_eq!(c.encoding, "utf-8+cp850");
    assert!(c.warnings[0].starts_with("mixed encodings: line 1 UTF-8, line 2 cp850"));
    // Forced: the same bytes as cp437 read alike.
    let forced = CaptureOptions {
        encoding: netcarve::capture::TextEncoding::from_name("cp437"),
        ..Default::default()
    };
    let c = read(&fixture("netstat-es-cp850.txt"), &forced);
    assert_eq!((c.encoding.as_str(), c.rows.len()), ("cp437", 11));
}

#[test]
fn the_text_report_names_encoding_and_culture() {
    let memory = fixture("memory-win7.json");
    for (file, want) in [
        ("netstat-es-cp850.txt", "(netstat in cp850, 11 rows,"),
        (
            "pscsv-de-DE.csv",
            "(pscsv in utf-8, dates d.M.yyyy H:mm:ss, 11 rows,",
        ),
    ] {
        let live = fixture(file);
        let out = netcarve(&[
            "compare",
            memory.to_str().unwrap(),
            "--live",
            live.to_str().unwrap(),
            "--format",
            "table",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.starts_with("capture: "))
            .unwrap_or_else(|| panic!("{file}: no capture line in {text}"));
        assert!(line.contains(want), "{file}: {line}");
    }
}
