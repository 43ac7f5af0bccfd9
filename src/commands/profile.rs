//! `netcarve profile list | show NAME | from-pdb`.
use crate::cli::{ProfileArgs, ProfileCommand};
use crate::error::{io_error, Error, Result};
use crate::output::{Format, Sink};
use crate::profile::{builtin, by_name, Field, Profile};
use serde::Serialize;
use std::io::Write;

pub fn run(args: &ProfileArgs) -> Result<u8> {
    match &args.command {
        ProfileCommand::List { format } => {
            let mut sink = Sink::open(None)?;
            let written = write_list(sink.writer(), builtin(), *format);
            return sink.finish(written, 0);
        }
        ProfileCommand::Show { name, format } => {
            let p = by_name(name).ok_or_else(|| {
                Error::usage(format!(
                    "unknown profile {name:?}; see `netcarve profile list`"
                ))
            })?;
            let mut sink = Sink::open(None)?;
            let written = write_show(sink.writer(), p, *format);
            return sink.finish(written, 0);
        }
        ProfileCommand::FromPdb {
            nt,
            tcpip,
            base,
            output,
        } => {
            let p = crate::profile::from_pdb::from_pdb(nt, tcpip.as_deref(), base.as_deref())?;
            let mut text = serde_json::to_string_pretty(&p)
                .map_err(|e| Error::file(output, format!("cannot serialise: {e}")))?;
            text.push('\n');
            let mut file = crate::evidence::open_output(output)?;
            file.write_all(text.as_bytes())
                .map_err(|e| io_error(output, &e))?;
            eprintln!(
                "wrote {} ({}; confidence {})",
                output.display(),
                p.name,
                confidence_name(&p)
            );
        }
    }
    Ok(0)
}

/// One row of `profile list --format json`.
#[derive(Serialize)]
struct ListEntry<'a> {
    pub name: &'a str,
    pub arch: &'a str,
    pub nt_major: u32,
    pub nt_minor: u32,
    pub build_min: u32,
    pub build_max: u32,
    /// The tcpip.sys version rule as text (`>= 6.3.9600.19935`, `< 6.3.9600.19935`), or null.
    pub tcpip_version: Option<String>,
    pub confidence: &'a str,
}

fn tcpip_rule(p: &Profile) -> Option<String> {
    p.matches.tcpip_version.as_ref().map(|r| {
        let mut parts = vec![];
        if let Some(m) = &r.min {
            parts.push(format!(">= {m}"));
        }
        if let Some(m) = &r.max {
            parts.push(format!("< {m}"));
        }
        parts.join(", ")
    })
}

fn confidence_name(p: &Profile) -> &'static str {
    match p.confidence {
        crate::profile::Confidence::Inferred => "inferred",
        crate::profile::Confidence::Reference => "reference",
        crate::profile::Confidence::Pdb => "pdb",
    }
}

fn entry(p: &Profile) -> ListEntry<'_> {
    ListEntry {
        name: &p.name,
        arch: p.arch.name(),
        nt_major: p.matches.nt_major,
        nt_minor: p.matches.nt_minor,
        build_min: p.matches.build_min,
        build_max: p.matches.build_max,
        tcpip_version: tcpip_rule(p),
        confidence: confidence_name(p),
    }
}

/// Writes the list sorted by (arch, NT version, build) so related builds sit together.
fn write_list(out: &mut dyn Write, profiles: &[Profile], format: Format) -> std::io::Result<()> {
    let mut sorted: Vec<&Profile> = profiles.iter().collect();
    sorted.sort_by_key(|p| {
        (
            p.arch,
            p.matches.nt_major,
            p.matches.nt_minor,
            p.matches.build_min,
            p.matches
                .tcpip_version
                .as_ref()
                .and_then(|r| r.min.clone())
                .unwrap_or_default(),
        )
    });
    match format {
        Format::Json => {
            let list: Vec<ListEntry> = sorted.iter().map(|p| entry(p)).collect();
            serde_json::to_writer_pretty(&mut *out, &list)?;
            writeln!(out)
        }
        // The parser admits table and json only.
        _ => {
            writeln!(
                out,
                "{:<18} {:<4} {:<5} {:<13} {:<26} CONFIDENCE",
                "NAME", "ARCH", "NT", "BUILDS", "TCPIP.SYS"
            )?;
            for p in sorted {
                let e = entry(p);
                let builds = if e.build_min == e.build_max {
                    e.build_min.to_string()
                } else {
                    format!("{}-{}", e.build_min, e.build_max)
                };
                writeln!(
                    out,
                    "{:<18} {:<4} {:<5} {:<13} {:<26} {}",
                    e.name,
                    e.arch,
                    format!("{}.{}", e.nt_major, e.nt_minor),
                    builds,
                    e.tcpip_version.as_deref().unwrap_or("-"),
                    e.confidence
                )?;
            }
            Ok(())
        }
    }
}

/// The whole profile: JSON as stored, or readable field/offset/source/confidence lines.
fn write_show(out: &mut dyn Write, p: &Profile, format: Format) -> std::io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, p)?;
            writeln!(out)
        }
        // The parser admits table and json only.
        _ => {
            let e = entry(p);
            writeln!(out, "{}: {}", p.name, p.description)?;
            writeln!(
                out,
                "match: {} NT {}.{} builds {}-{}{}",
                e.arch,
                e.nt_major,
                e.nt_minor,
                e.build_min,
                e.build_max,
                e.tcpip_version
                    .map(|t| format!(", tcpip.sys {t}"))
                    .unwrap_or_default()
            )?;
            writeln!(out, "confidence: {}", e.confidence)?;
            if let Some(k) = &p.kernel_pdb {
                writeln!(out, "kernel PDB: {} {} age {}", k.name, k.guid, k.age)?;
            }
            writeln!(out, "sources:")?;
            for (k, v) in &p.sources {
                writeln!(out, "  {k}: {v}")?;
            }
            if !p.notes.is_empty() {
                writeln!(out, "notes:")?;
                for n in &p.notes {
                    writeln!(out, "  - {n}")?;
                }
            }
            writeln!(
                out,
                "{:<44} {:<8} {:<16} {:<20} CONFIDENCE",
                "FIELD", "OFFSET", "ALTERNATIVES", "SOURCE"
            )?;
            let v = serde_json::to_value(p).map_err(std::io::Error::other)?;
            for section in ["symbols", "nt", "tcpip"] {
                if let Some(sv) = v.get(section) {
                    write_fields(out, section, sv)?;
                }
            }
            Ok(())
        }
    }
}

/// Walks the JSON form so that every field (present in the schema now or later) is printed.
fn write_fields(out: &mut dyn Write, path: &str, v: &serde_json::Value) -> std::io::Result<()> {
    let serde_json::Value::Object(m) = v else {
        return Ok(());
    };
    if m.contains_key("source") && m.contains_key("confidence") {
        if let Ok(f) = serde_json::from_value::<Field>(v.clone()) {
            let alts: Vec<String> = f.alternatives.iter().map(|o| o.to_string()).collect();
            let conf = serde_json::to_value(f.confidence)
                .ok()
                .and_then(|c| c.as_str().map(str::to_string))
                .unwrap_or_default();
            return writeln!(
                out,
                "{:<44} {:<8} {:<16} {:<20} {}",
                path,
                f.offset
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| "absent".into()),
                if alts.is_empty() {
                    "-".into()
                } else {
                    alts.join(",")
                },
                f.source,
                conf
            );
        }
    }
    for (k, child) in m {
        match child {
            serde_json::Value::Object(_) => write_fields(out, &format!("{path}.{k}"), child)?,
            serde_json::Value::String(s)
                if k == "min_size" || k == "body_offset" || k == "size" =>
            {
                writeln!(out, "{:<44} {s}", format!("{path}.{k}"))?
            }
            serde_json::Value::String(s) if k.ends_with("_chain") => {
                writeln!(out, "{:<44} {s}", format!("{path}.{k}"))?
            }
            serde_json::Value::Array(a) if k == "tags" => {
                let tags: Vec<&str> = a.iter().filter_map(|t| t.as_str()).collect();
                writeln!(out, "{:<44} {}", format!("{path}.{k}"), tags.join(","))?
            }
            _ => {}
        }
    }
    Ok(())
}
