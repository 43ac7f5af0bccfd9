//! Every scan output format renders parseable output with the records' values.
mod support;

use netcarve::output::{render, Format};
use netcarve::record::{EndpointRecord, Family};
use netcarve::scan::{ProfileUse, ScanOutput};
use support::world::*;

fn sample() -> ScanOutput {
    let mut w = World::new(
        netcarve::profile::by_name("win10-19041-x64")
            .unwrap()
            .clone(),
        1 << 20,
    );
    w.plant(0x3000, &Spec::tcp("10.0.0.5", 49723, "93.184.216.34", 443));
    w.plant(0x4000, &Spec::listener(Family::Ipv6, None, 445));
    w.plant(
        0x5000,
        &Spec {
            owner: Some((2104, "a|b,\"c\"")),
            ..Spec::udp(Family::Ipv4, Some("127.0.0.1"), 1900)
        },
    );
    w.plant(
        0x6000,
        &Spec {
            create_time: 0,
            ..Spec::udp(Family::Ipv6, Some("::1"), 500)
        },
    );
    // A bad state, for the corrupt rows.
    w.plant(
        0x7000,
        &Spec {
            state: 11,
            ..Spec::tcp("10.0.0.5", 1, "10.0.0.6", 2)
        },
    );
    let carved = w.carve(true);
    assert_eq!(carved.endpoints.len(), 4);
    assert_eq!(carved.corrupt.len(), 1);
    ScanOutput {
        image: Default::default(),
        profile: ProfileUse {
            name: "win10-19041-x64".into(),
            reason: "test".into(),
            ..Default::default()
        },
        tables: Default::default(),
        endpoints: carved.endpoints,
        corrupt: carved.corrupt,
        corrupt_omitted: 0,
    }
}

fn rendered(out: &ScanOutput, f: Format) -> String {
    let mut buf = vec![];
    render(out, f, &mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

#[test]
fn json_round_trips() {
    let out = sample();
    let text = rendered(&out, Format::Json);
    let back: ScanOutput = serde_json::from_str(&text).unwrap();
    assert_eq!(back, out);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for key in ["image", "profile", "endpoints", "corrupt"] {
        assert!(v.get(key).is_some(), "{key}");
    }
    assert!(v["endpoints"][0]["create_time_raw"].is_u64());
    assert_eq!(
        v["endpoints"][0]["virtual_address"],
        serde_json::Value::Null
    );
}

#[test]
fn jsonl_one_record_per_line() {
    let out = sample();
    let text = rendered(&out, Format::Jsonl);
    let back: Vec<EndpointRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want: Vec<EndpointRecord> = out
        .endpoints
        .iter()
        .chain(out.corrupt.iter())
        .cloned()
        .collect();
    assert_eq!(back, want);
}

#[test]
fn csv_parses_back() {
    let out = sample();
    let text = rendered(&out, Format::Csv);
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let headers: Vec<String> = rd.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(headers, netcarve::output::csv::COLUMNS);
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), out.endpoints.len() + out.corrupt.len());
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    for (row, rec) in rows.iter().zip(out.endpoints.iter()) {
        assert_eq!(&row[col("local_addr")], rec.local_addr);
        assert_eq!(
            row[col("local_port")].parse::<u16>().unwrap(),
            rec.local_port
        );
        assert_eq!(row[col("process")], rec.process.clone().unwrap_or_default());
        assert_eq!(
            row[col("create_time_raw")],
            rec.create_time_raw
                .map(|t| t.to_string())
                .unwrap_or_default()
        );
        assert_eq!(row[col("flags")], rec.flags.join(";"));
        assert_eq!(row[col("physical_offset")], rec.physical_offset.to_string());
    }
    assert!(!rows.last().unwrap()[col("reason")].is_empty());
}

#[test]
fn bodyfile_is_mactime_3() {
    let out = sample();
    let text = rendered(&out, Format::Bodyfile);
    let lines: Vec<&str> = text.lines().collect();
    // The zero-time endpoint has no event; the three others do.
    assert_eq!(lines.len(), 3);
    for l in &lines {
        let f: Vec<&str> = l.split('|').collect();
        assert_eq!(f.len(), 11, "{l}");
        let crtime: i64 = f[10].parse().unwrap();
        // 2024-05-01T12:34:56Z, floored to the second.
        assert!(
            crtime == 1_714_566_896 || crtime == 1_714_566_896 - 1,
            "{l}"
        );
        assert!(f[1].contains("2024-05-01T12:34:5"), "{l}");
    }
    // `|` is bodyfile's separator: escaped, reversibly, like control characters.
    assert!(lines.iter().any(|l| l.contains("a\\x7cb,\"c\"")));
}

#[test]
fn timesketch_lines_have_the_required_fields() {
    let out = sample();
    let text = rendered(&out, Format::Timesketch);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for v in &lines {
        assert!(v["message"].as_str().unwrap().contains(':'));
        assert_eq!(v["timestamp_desc"], "Endpoint Created");
        let dt = v["datetime"].as_str().unwrap();
        assert_eq!(
            netcarve::filetime::from_iso(dt),
            v["create_time_raw"].as_u64()
        );
        assert!(v["timestamp"].is_i64());
        assert!(v["tag"].is_string() && v["physical_offset"].is_string());
    }
}

#[test]
fn table_has_aligned_columns() {
    let out = sample();
    let text = rendered(&out, Format::Table);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 5);
    assert!(lines[0].starts_with("Proto"));
    let created = lines[0].find("Created").unwrap();
    for l in &lines[1..] {
        let cell = &l[created..];
        assert!(
            cell.starts_with("2024-05-01T12:34:5")
                && cell[..30].contains(".")
                && cell.as_bytes()[27] == b'Z'
                || cell.starts_with("1601-01-01T00:00:00.0000000Z")
                || cell.starts_with('-'),
            "{l}"
        );
    }
    assert!(text.contains("[::]:445"));
    assert!(text.contains("dual_stack"));
    assert!(text.contains("corrupt"));
}
