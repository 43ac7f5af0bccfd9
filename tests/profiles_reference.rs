//! Holds every built-in profile against the reference tables (endpoint-layouts.json,
//! nt-offsets.json): every number must equal what its declared source says, unless the field is
//! `inferred`; every alternative must be some source's value; the structural promises hold.
mod support;

use netcarve::profile::{builtin, Arch, Confidence, Field, Profile};
use serde_json::Value;
use std::collections::BTreeSet;
use support::{read_json, reference_dir};

struct Refs {
    layouts: Value,
    nt: Value,
}

fn hex(v: &Value) -> Option<u64> {
    let s = v.as_str()?;
    let tok = s.split_whitespace().next()?;
    u64::from_str_radix(tok.strip_prefix("0x")?, 16).ok()
}

/// What a source marker `(reference: FILE PATH)` in a source description points at.
fn marker(p: &Profile, key: &str) -> Option<String> {
    let text = p.sources.get(key)?;
    let start = text.find("(reference: ")? + "(reference: ".len();
    let end = text[start..].find(')')? + start;
    Some(text[start..end].to_string())
}

/// (json path in the profile, struct, field) of the nt fields in nt-offsets.json terms.
const NT_FIELDS: &[(&str, &str, &str)] = &[
    ("eprocess.dispatcher_type", "_DISPATCHER_HEADER", "Type"),
    (
        "eprocess.directory_table_base",
        "_KPROCESS",
        "DirectoryTableBase",
    ),
    ("eprocess.unique_process_id", "_EPROCESS", "UniqueProcessId"),
    (
        "eprocess.active_process_links",
        "_EPROCESS",
        "ActiveProcessLinks",
    ),
    ("eprocess.create_time", "_EPROCESS", "CreateTime"),
    ("eprocess.exit_time", "_EPROCESS", "ExitTime"),
    ("eprocess.image_file_name", "_EPROCESS", "ImageFileName"),
    (
        "eprocess.inherited_from_unique_process_id",
        "_EPROCESS",
        "InheritedFromUniqueProcessId",
    ),
    ("object_header.body", "_OBJECT_HEADER", "Body"),
    ("object_header.type_index", "_OBJECT_HEADER", "TypeIndex"),
    (
        "kuser_shared_data.interrupt_time",
        "_KUSER_SHARED_DATA",
        "InterruptTime",
    ),
    (
        "kuser_shared_data.system_time",
        "_KUSER_SHARED_DATA",
        "SystemTime",
    ),
    (
        "kuser_shared_data.time_zone_bias",
        "_KUSER_SHARED_DATA",
        "TimeZoneBias",
    ),
    (
        "kuser_shared_data.nt_build_number",
        "_KUSER_SHARED_DATA",
        "NtBuildNumber",
    ),
    (
        "kuser_shared_data.nt_product_type",
        "_KUSER_SHARED_DATA",
        "NtProductType",
    ),
    (
        "kuser_shared_data.nt_major_version",
        "_KUSER_SHARED_DATA",
        "NtMajorVersion",
    ),
    (
        "kuser_shared_data.nt_minor_version",
        "_KUSER_SHARED_DATA",
        "NtMinorVersion",
    ),
];

/// (profile path, vol3 struct, vol3 field, MemProcFS kind, MemProcFS field).
const TCPIP_FIELDS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "tcp_endpoint.inet_af",
        "_TCP_ENDPOINT",
        "InetAF",
        "TcpE",
        "InetAF",
    ),
    (
        "tcp_endpoint.addr_info",
        "_TCP_ENDPOINT",
        "AddrInfo",
        "TcpE",
        "AddrInfo",
    ),
    (
        "tcp_endpoint.state",
        "_TCP_ENDPOINT",
        "State",
        "TcpE",
        "State",
    ),
    (
        "tcp_endpoint.local_port",
        "_TCP_ENDPOINT",
        "LocalPort",
        "TcpE",
        "LocalPort",
    ),
    (
        "tcp_endpoint.remote_port",
        "_TCP_ENDPOINT",
        "RemotePort",
        "TcpE",
        "RemotePort",
    ),
    (
        "tcp_endpoint.owner",
        "_TCP_ENDPOINT",
        "Owner",
        "TcpE",
        "Owner",
    ),
    (
        "tcp_endpoint.create_time",
        "_TCP_ENDPOINT",
        "CreateTime",
        "TcpE",
        "CreateTime",
    ),
    (
        "tcp_listener.inet_af",
        "_TCP_LISTENER",
        "InetAF",
        "TcpL",
        "InetAF",
    ),
    (
        "tcp_listener.owner",
        "_TCP_LISTENER",
        "Owner",
        "TcpL",
        "Owner",
    ),
    (
        "tcp_listener.create_time",
        "_TCP_LISTENER",
        "CreateTime",
        "TcpL",
        "CreateTime",
    ),
    (
        "tcp_listener.local_addr",
        "_TCP_LISTENER",
        "LocalAddr",
        "TcpL",
        "LocalAddr",
    ),
    (
        "tcp_listener.port",
        "_TCP_LISTENER",
        "Port",
        "TcpL",
        "LocalPort",
    ),
    (
        "udp_endpoint.inet_af",
        "_UDP_ENDPOINT",
        "InetAF",
        "UdpA",
        "InetAF",
    ),
    (
        "udp_endpoint.owner",
        "_UDP_ENDPOINT",
        "Owner",
        "UdpA",
        "Owner",
    ),
    (
        "udp_endpoint.create_time",
        "_UDP_ENDPOINT",
        "CreateTime",
        "UdpA",
        "CreateTime",
    ),
    (
        "udp_endpoint.local_addr",
        "_UDP_ENDPOINT",
        "LocalAddr",
        "UdpA",
        "LocalAddr",
    ),
    (
        "udp_endpoint.port",
        "_UDP_ENDPOINT",
        "Port",
        "UdpA",
        "LocalPort",
    ),
    (
        "time_wait.inet_af",
        "_TCP_TIMEWAIT_ENDPOINT",
        "InetAF",
        "TcTW",
        "InetAF",
    ),
    (
        "time_wait.local_port",
        "_TCP_TIMEWAIT_ENDPOINT",
        "LocalPort",
        "TcTW",
        "LocalPort",
    ),
    (
        "time_wait.remote_port",
        "_TCP_TIMEWAIT_ENDPOINT",
        "RemotePort",
        "TcTW",
        "RemotePort",
    ),
    (
        "time_wait.local_addr",
        "_TCP_TIMEWAIT_ENDPOINT",
        "LocalAddr",
        "TcTW",
        "AddrInfo",
    ),
    (
        "time_wait.remote_addr",
        "_TCP_TIMEWAIT_ENDPOINT",
        "RemoteAddress",
        "TcTW",
        "RemoteAddr",
    ),
    (
        "time_wait.create_time",
        "_TCP_TIMEWAIT_ENDPOINT",
        "CreateTime",
        "TcTW",
        "CreateTime",
    ),
    (
        "inetaf_address_family",
        "_INETAF",
        "AddressFamily",
        "helper",
        "AF",
    ),
    ("addrinfo_local", "_ADDRINFO", "Local", "helper", "Local"),
    ("addrinfo_remote", "_ADDRINFO", "Remote", "helper", "Remote"),
    (
        "local_address_p_data",
        "_LOCAL_ADDRESS",
        "pData",
        "helper",
        "pData",
    ),
    (
        "win10_udp_p_data",
        "_LOCAL_ADDRESS_WIN10_UDP",
        "pData",
        "helper",
        "Win10Udp",
    ),
];

fn field_at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn as_field(v: &Value) -> Option<Field> {
    serde_json::from_value(v.clone()).ok()
}

/// A vol3 table field: Some(Some(off)), Some(None) = absent, None = the table lacks it.
fn vol3_value(refs: &Refs, table: &str, st: &str, name: &str) -> Option<Option<u64>> {
    let t = refs.layouts.get("vol3_tables")?.get(table)?;
    let s = t
        .get("structs")
        .and_then(|s| s.get(st))
        .or_else(|| t.get("unused_structs").and_then(|s| s.get(st)))?;
    let f = s.get("fields")?.get(name)?;
    if f.get("absent").and_then(Value::as_bool) == Some(true) {
        return Some(None);
    }
    Some(hex(f.get("off")?))
}

fn build_in(range: &str, build: u32) -> bool {
    let r = range.trim();
    if let Some(x) = r.strip_prefix(">=") {
        return x.trim().parse::<u32>().is_ok_and(|x| build >= x);
    }
    if let Some(x) = r.strip_prefix('<') {
        let n = x.split_whitespace().next().unwrap_or("");
        return n.parse::<u32>().is_ok_and(|x| build < x);
    }
    if r == "all" {
        return true;
    }
    let mut it = r.split('-').map(|x| x.trim().parse::<u32>());
    matches!((it.next(), it.next()), (Some(Ok(lo)), Some(Ok(hi))) if lo <= build && build <= hi)
}

/// nt-offsets.json builds of the profile's architecture inside its build range that give
/// `st`.`name`: (key, value).
fn nt_builds_giving(refs: &Refs, p: &Profile, st: &str, name: &str) -> Vec<(String, u64)> {
    let arch = match p.arch {
        Arch::X64 => "x64",
        Arch::X86 => "x86",
    };
    let Some(builds) = refs.nt["builds"][arch].as_object() else {
        return vec![];
    };
    let (lo, hi) = (p.matches.build_min, p.matches.build_max);
    builds
        .iter()
        .filter(|(key, _)| {
            let mut it = key.split('-').map(|x| x.trim().parse::<u32>().ok());
            let first = it.next().flatten();
            let last = it.next().flatten().or(first);
            matches!((first, last), (Some(a), Some(b)) if a <= hi && lo <= b)
        })
        .filter_map(|(key, rec)| {
            let v = rec.get(st).and_then(|s| s.get(name)).and_then(hex)?;
            Some((format!("builds.{arch}.{key}"), v))
        })
        .collect()
}

/// The values MemProcFS's rules allow for a field on `build` (x64 only); empty = none.
fn memprocfs_values(refs: &Refs, p: &Profile, kind: &str, name: &str) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    if p.arch != Arch::X64 {
        return out;
    }
    let build = p.matches.build_min;
    let so = &refs.layouts["memprocfs"]["static_offsets"];
    match kind {
        "TcpL" | "UdpA" => {
            for row in so[kind].as_array().into_iter().flatten() {
                if build_in(row["builds"].as_str().unwrap_or(""), build) {
                    if let Some(v) = row.get(name).and_then(hex) {
                        out.insert(v);
                    }
                }
            }
        }
        "TcTW" => {
            if let Some(v) = so["TcTW"].get(name).and_then(hex) {
                out.insert(v);
            }
        }
        "TcpE" => {
            // Fuzzed at run time; the rules of endpoint-layouts.json memprocfs.tcpe_ttcb.
            let owner = p.tcpip.tcp_endpoint.owner.off();
            let states: Vec<u64> = if build >= 22000 {
                vec![0x68, 0x6c, 0x70]
            } else {
                vec![0x68, 0x6c]
            };
            match name {
                "CreateTime" => out.extend(owner.map(|o| o + 0x10)),
                "InetAF" => out.extend([0x10, 0x18]),
                "AddrInfo" => out.extend([0x18, 0x20]),
                "State" => out.extend(states),
                "LocalPort" => out.extend(states.iter().map(|s| s + 4)),
                "RemotePort" => out.extend(states.iter().map(|s| s + 6)),
                _ => {}
            }
        }
        "helper" => match name {
            "AF" => {
                out.insert(if build < 9200 { 0x14 } else { 0x18 });
            }
            "Local" => {
                out.insert(0);
            }
            "Remote" | "pData" => {
                out.insert(0x10);
            }
            _ => {}
        },
        _ => {}
    }
    out
}

/// Hex numbers quoted in the disagreements (D-ids) the profile's notes cite.
fn cited_disagreement_values(refs: &Refs, p: &Profile) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for d in refs.layouts["disagreements"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let id = d["id"].as_str().unwrap_or("");
        let cited = p.notes.iter().any(|n| {
            n.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|w| w == id)
        });
        if !cited {
            continue;
        }
        let text = d.to_string();
        for w in text.split(|c: char| !c.is_ascii_hexdigit() && c != 'x') {
            if let Some(h) = w.strip_prefix("0x") {
                if let Ok(v) = u64::from_str_radix(h, 16) {
                    out.insert(v);
                }
            }
        }
    }
    out
}

/// vol3 tables of the same arch and NT version (18362/18363, the 20348 fallback, 9600 split).
fn sibling_tables(refs: &Refs, p: &Profile) -> Vec<String> {
    let nt = format!("{}.{}", p.matches.nt_major, p.matches.nt_minor);
    let mut out = vec![];
    if let Some(Value::Object(m)) = refs.layouts.get("vol3_tables") {
        for (name, t) in m {
            if t["arch"].as_str() != Some(p.arch.name()) || t["status"].as_str() != Some("ok") {
                continue;
            }
            let same_nt = t["selected_for"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["nt"].as_str() == Some(nt.as_str()));
            if same_nt {
                out.push(name.clone());
            }
        }
    }
    out
}

fn check_profile(refs: &Refs, p: &Profile, errors: &mut Vec<String>) {
    let v = serde_json::to_value(p).unwrap();
    let mut err = |m: String| errors.push(format!("{}: {m}", p.name));

    // nt fields
    for (path, st, name) in NT_FIELDS {
        let Some(f) = field_at(&v["nt"], path).and_then(as_field) else {
            err(format!("nt.{path} missing"));
            continue;
        };
        if f.confidence == Confidence::Inferred {
            // Inferred only where nothing confirms: no nt-offsets build inside the profile's
            // range may give this field (Windows 11 22621/26100 carry 22000's values for that
            // reason alone).
            for (key, want) in nt_builds_giving(refs, p, st, name) {
                err(format!(
                    "nt.{path} is inferred ({:?}) but nt-offsets {key} gives {want:#x}: use the source",
                    f.off()
                ));
            }
            continue;
        }
        let Some(m) = marker(p, &f.source) else {
            err(format!(
                "nt.{path}: source {} has no reference marker",
                f.source
            ));
            continue;
        };
        let Some(key) = m.strip_prefix("nt-offsets.json builds.") else {
            err(format!(
                "nt.{path}: source {} is not an nt-offsets build",
                f.source
            ));
            continue;
        };
        let (arch, build) = key.split_once('.').unwrap_or(("", ""));
        let rec = &refs.nt["builds"][arch][build];
        let want = rec.get(*st).and_then(|s| s.get(*name)).and_then(hex);
        if f.off() != want {
            err(format!(
                "nt.{path} = {:?}, nt-offsets {key} says {want:?}",
                f.off()
            ));
        }
        let want_conf = if rec["source"].as_str() == Some("jpcert-isf") {
            Confidence::Pdb
        } else {
            Confidence::Reference
        };
        if f.confidence != want_conf {
            err(format!(
                "nt.{path}: confidence {:?}, expected {want_conf:?}",
                f.confidence
            ));
        }
        if !f.alternatives.is_empty() {
            err(format!("nt.{path}: alternatives without a disagreement"));
        }
    }

    // tcpip fields
    let siblings = sibling_tables(refs, p);
    let cited = cited_disagreement_values(refs, p);
    for (path, st, name, kind, mname) in TCPIP_FIELDS {
        let Some(fv) = field_at(&v["tcpip"], path) else {
            err(format!("tcpip.{path} missing"));
            continue;
        };
        if fv.is_null() {
            continue; // win10_udp_p_data where the chain is not used
        }
        let Some(f) = as_field(fv) else {
            err(format!("tcpip.{path} is not a field"));
            continue;
        };
        let mpf = memprocfs_values(refs, p, kind, mname);
        if f.confidence != Confidence::Inferred {
            let m = marker(p, &f.source).unwrap_or_default();
            if let Some(table) = m.strip_prefix("endpoint-layouts.json vol3_tables.") {
                match vol3_value(refs, table, st, name) {
                    Some(want) if want == f.off() => {}
                    other => err(format!(
                        "tcpip.{path} = {:?}, vol3 {table} says {other:?}",
                        f.off()
                    )),
                }
            } else if m == "endpoint-layouts.json memprocfs" {
                if !f.off().is_some_and(|o| mpf.contains(&o)) {
                    err(format!(
                        "tcpip.{path} = {:?}, MemProcFS allows {mpf:x?}",
                        f.off()
                    ));
                }
            } else {
                err(format!(
                    "tcpip.{path}: source {} has no usable reference marker",
                    f.source
                ));
            }
            if f.confidence != Confidence::Reference {
                err(format!(
                    "tcpip.{path}: table source but confidence {:?}",
                    f.confidence
                ));
            }
        }
        for a in &f.alternatives {
            let a = a.get();
            let from_vol3 = siblings
                .iter()
                .any(|t| vol3_value(refs, t, st, name) == Some(Some(a)));
            if !(from_vol3 || mpf.contains(&a) || cited.contains(&a)) {
                err(format!(
                    "tcpip.{path}: alternative {a:#x} is no source's value"
                ));
            }
        }
    }

    // structural promises
    let weakest = {
        let mut w = Confidence::Pdb;
        walk_conf(&v, &mut w);
        w
    };
    if p.confidence != weakest {
        err(format!(
            "top-level confidence {:?}, weakest field {weakest:?}",
            p.confidence
        ));
    }
    let t = &p.tcpip;
    let build = p.matches.build_min;
    let pre_win10 = p.matches.nt_major < 10;
    if pre_win10 && p.name != "win81-19935-x64" && t.tcp_endpoint.create_time.offset.is_some() {
        err("TcpE CreateTime must be absent before Windows 10".into());
    }
    let ttcb = t.tcp_endpoint.tags.iter().any(|x| x == "TTcb");
    if ttcb != (p.arch == Arch::X64 && build >= 20348) {
        err(format!("TTcb tag {ttcb} on build {build}"));
    }
    let win10_udp = t.udp_endpoint.local_addr_chain == netcarve::profile::LocalAddrChain::Win10Udp;
    if win10_udp != (p.arch == Arch::X64 && p.matches.nt_major >= 10) {
        err("UdpA local_addr_chain win10_udp exactly on Windows 10+ x64".into());
    }
    if win10_udp && t.win10_udp_p_data.is_none() {
        err("win10_udp chain without win10_udp_p_data".into());
    }
    let ps = p.pointer_size();
    // (struct, declared min_size, (field, bytes read) pairs)
    type Span<'a> = (&'a str, u64, Vec<(&'a Field, u64)>);
    let spans: [Span; 3] = [
        (
            "tcp_endpoint",
            t.tcp_endpoint.min_size.get(),
            vec![
                (&t.tcp_endpoint.inet_af, ps),
                (&t.tcp_endpoint.addr_info, ps),
                (&t.tcp_endpoint.state, 4),
                (&t.tcp_endpoint.local_port, 2),
                (&t.tcp_endpoint.remote_port, 2),
                (&t.tcp_endpoint.owner, ps),
                (&t.tcp_endpoint.create_time, 8),
            ],
        ),
        (
            "tcp_listener",
            t.tcp_listener.min_size.get(),
            vec![
                (&t.tcp_listener.inet_af, ps),
                (&t.tcp_listener.owner, ps),
                (&t.tcp_listener.create_time, 8),
                (&t.tcp_listener.local_addr, ps),
                (&t.tcp_listener.port, 2),
            ],
        ),
        (
            "udp_endpoint",
            t.udp_endpoint.min_size.get(),
            vec![
                (&t.udp_endpoint.inet_af, ps),
                (&t.udp_endpoint.owner, ps),
                (&t.udp_endpoint.create_time, 8),
                (&t.udp_endpoint.local_addr, ps),
                (&t.udp_endpoint.port, 2),
            ],
        ),
    ];
    for (name, min, fields) in spans {
        let span = fields
            .iter()
            .flat_map(|(f, s)| f.candidates().map(move |o| o + s))
            .max()
            .unwrap_or(0);
        if span != min {
            err(format!(
                "{name}.min_size {min:#x}, span of its fields {span:#x}"
            ));
        }
    }
    if t.time_wait.is_none() {
        err("no TcTW layout".into());
    }
    // Every cited disagreement exists.
    let ids: BTreeSet<String> = refs.layouts["disagreements"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["id"].as_str().map(str::to_string))
        .collect();
    for n in &p.notes {
        for w in n.split(|c: char| !c.is_ascii_alphanumeric()) {
            if w.len() >= 2
                && w.starts_with('D')
                && w[1..].chars().all(|c| c.is_ascii_digit())
                && !ids.contains(w)
            {
                err(format!("note cites unknown disagreement {w}"));
            }
        }
    }
}

fn walk_conf(v: &Value, w: &mut Confidence) {
    match v {
        Value::Object(m) => {
            if let (Some(c), true) = (m.get("confidence"), m.contains_key("source")) {
                if let Ok(c) = serde_json::from_value::<Confidence>(c.clone()) {
                    *w = (*w).min(c);
                }
            }
            m.values().for_each(|x| walk_conf(x, w));
        }
        Value::Array(a) => a.iter().for_each(|x| walk_conf(x, w)),
        _ => {}
    }
}

fn load() -> Option<Refs> {
    let dir = reference_dir()?;
    Some(Refs {
        layouts: read_json(&dir.join("endpoint-layouts.json")),
        nt: read_json(&dir.join("nt-offsets.json")),
    })
}

#[test]
fn every_builtin_profile_matches_its_sources() {
    let Some(refs) = load() else { return };
    let mut errors = vec![];
    for p in builtin() {
        check_profile(&refs, p, &mut errors);
    }
    assert!(
        errors.is_empty(),
        "{} problems:\n{}",
        errors.len(),
        errors.join("\n")
    );
    assert_eq!(builtin().len(), 30);
}

#[test]
fn the_check_catches_an_unexplained_difference() {
    let Some(refs) = load() else { return };
    let base = netcarve::profile::by_name("win10-19041-x64").unwrap();
    // A vol3-sourced offset that differs from vol3's table.
    let mut p = base.clone();
    p.tcpip.tcp_endpoint.owner.offset = Some(netcarve::profile::Off(0x2e0));
    let mut errors = vec![];
    check_profile(&refs, &p, &mut errors);
    assert!(
        errors.iter().any(|e| e.contains("tcp_endpoint.owner")),
        "{errors:?}"
    );
    // An alternative no source gives.
    let mut p = base.clone();
    p.tcpip
        .udp_endpoint
        .port
        .alternatives
        .push(netcarve::profile::Off(0x1234));
    let mut errors = vec![];
    check_profile(&refs, &p, &mut errors);
    assert!(errors.iter().any(|e| e.contains("0x1234")), "{errors:?}");
    // A JPCERT-sourced nt offset that differs.
    let mut p = base.clone();
    p.nt.eprocess.unique_process_id.offset = Some(netcarve::profile::Off(0x2e8));
    let mut errors = vec![];
    check_profile(&refs, &p, &mut errors);
    assert!(
        errors.iter().any(|e| e.contains("unique_process_id")),
        "{errors:?}"
    );
    // A MemProcFS-sourced offset outside MemProcFS's row for the build (24H2 TcpL Port 0x7a).
    let mut p26 = netcarve::profile::by_name("win11-26100-x64")
        .unwrap()
        .clone();
    p26.tcpip.tcp_listener.port.offset = Some(netcarve::profile::Off(0x72));
    let mut errors = vec![];
    check_profile(&refs, &p26, &mut errors);
    assert!(
        errors.iter().any(|e| e.contains("tcp_listener.port")),
        "{errors:?}"
    );
    // The same change marked inferred is not exempt where a source covers the build: inferred
    // is kept only where nothing confirms a value.
    p.nt.eprocess.unique_process_id.confidence = Confidence::Inferred;
    p.confidence = Confidence::Inferred;
    let mut errors = vec![];
    check_profile(&refs, &p, &mut errors);
    assert!(
        errors.len() == 1
            && errors[0].contains("is inferred")
            && errors[0].contains("builds.x64.19041 gives 0x440"),
        "{errors:?}"
    );
    // On a build no source covers (Windows 11 22621), inferred values are exempt, whatever
    // they are.
    let mut p22 = netcarve::profile::by_name("win11-22621-x64")
        .unwrap()
        .clone();
    assert_eq!(
        p22.nt.eprocess.unique_process_id.confidence,
        Confidence::Inferred
    );
    p22.nt.eprocess.unique_process_id.offset = Some(netcarve::profile::Off(0x2e8));
    let mut errors = vec![];
    check_profile(&refs, &p22, &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
}
