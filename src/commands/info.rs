//! `netcarve info`: what the image is and which kernel it holds.
use crate::cli::InfoArgs;
use crate::error::{Error, Result};
use crate::kernel::{image_facts, KernelInfo};
use crate::output::{Format, Sink};
use crate::pipeline::{choose_profile, ChosenBy, Opened};
use crate::record::ImageFacts;
use crate::tables::TcpipModule;

/// The profile `info` would use, or why there is none.
struct ProfileChoice {
    name: Option<String>,
    reason: String,
    warning: Option<String>,
    /// What each candidate read, where the facts left several.
    scores: Vec<crate::carve::scoring::ProfileScore>,
}

pub fn run(args: &InfoArgs) -> Result<u8> {
    let path = &args.image.image;
    let opened = crate::pipeline::open(path, args.image.dtb)?;
    let choice = profile_for_info(&opened, args.image.profile.as_deref())?;
    let Opened { phys, kernel } = opened;
    let mut facts = image_facts(&phys, &kernel);
    facts.warnings.extend(choice.warning.clone());
    if args.hash {
        crate::pipeline::image_hash(&phys).apply(&mut facts);
    }
    let space = crate::paging::AddressSpace::new(&phys, kernel.dtb, kernel.mode);
    let tcpip = crate::tables::module::find_tcpip(&space, &kernel);
    facts.warnings.extend(phys.decode_warnings());
    let text = match args.format {
        Format::Json => render_json(&facts, &kernel, tcpip.as_ref(), &choice)?,
        // The parser admits table and json only.
        _ => render_table(&facts, &kernel, tcpip.as_ref(), &choice),
    };
    let mut sink = Sink::open(None)?;
    let written = sink.writer().write_all(text.as_bytes());
    sink.finish(written, 0)
}

/// The profile the other commands would use; no fitting profile is a fact to show, not an error.
fn profile_for_info(opened: &Opened, wanted: Option<&str>) -> Result<ProfileChoice> {
    let k = &opened.kernel;
    let chosen = match choose_profile(opened, wanted) {
        Ok(chosen) => chosen,
        // A bad --profile is the user's error, not a fact about the image.
        Err(e) if wanted.is_some() => return Err(e),
        Err(e) => {
            return Ok(ProfileChoice {
                name: None,
                reason: e.to_string(),
                warning: None,
                scores: vec![],
            })
        }
    };
    let (reason, scores) = match chosen.how {
        ChosenBy::Flag(_) => match chosen.profile.kernel_mismatch(k.pdb.as_ref()) {
            Some(warning) => (format!("chosen with --profile; warning: {warning}"), vec![]),
            None => ("chosen with --profile".to_string(), vec![]),
        },
        ChosenBy::Selection { reason, scores } => (reason, scores),
    };
    Ok(ProfileChoice {
        name: Some(chosen.profile.name),
        reason,
        warning: chosen.warning,
        scores,
    })
}

/// `info --format json`: the ImageFacts keys in their declared order, then the profile.
#[derive(serde::Serialize)]
struct InfoJson<'a> {
    #[serde(flatten)]
    image: &'a ImageFacts,
    tcpip_version: Option<&'a str>,
    /// tcpip.sys as found in memory (the module list, else an image naming tcpip.pdb).
    tcpip: Option<&'a TcpipModule>,
    profile: Option<ProfileJson<'a>>,
    /// Why no profile was chosen (only when `profile` is null).
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_reason: Option<&'a str>,
}

#[derive(serde::Serialize)]
struct ProfileJson<'a> {
    name: &'a str,
    reason: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    selection: &'a [crate::carve::scoring::ProfileScore],
}

fn render_json(
    facts: &ImageFacts,
    k: &KernelInfo,
    tcpip: Option<&TcpipModule>,
    choice: &ProfileChoice,
) -> Result<String> {
    let doc = InfoJson {
        image: facts,
        tcpip_version: k.tcpip_version.as_deref(),
        tcpip,
        profile: choice.name.as_deref().map(|name| ProfileJson {
            name,
            reason: &choice.reason,
            selection: &choice.scores,
        }),
        profile_reason: choice.name.is_none().then_some(choice.reason.as_str()),
    };
    let mut text = serde_json::to_string_pretty(&doc)
        .map_err(|e| Error::usage(format!("cannot render image facts: {e}")))?;
    text.push('\n');
    Ok(text)
}

/// "kd-version-block 7601 (used), export-NtBuildNumber 7601, version-resource none, …".
fn build_sources(readings: &[crate::record::BuildReading]) -> String {
    if readings.is_empty() {
        return "-".to_string();
    }
    let chosen = readings.iter().position(|r| r.build.is_some());
    readings
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let value = r.build.map_or("none".to_string(), |b| b.to_string());
            let used = if Some(i) == chosen { " (used)" } else { "" };
            format!("{} {value}{used}", r.source)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn render_table(
    facts: &ImageFacts,
    k: &KernelInfo,
    tcpip: Option<&TcpipModule>,
    choice: &ProfileChoice,
) -> String {
    let none = || "-".to_string();
    let mut rows: Vec<(&str, String)> = vec![
        ("File", facts.file.clone().unwrap_or_else(none)),
        ("Container", facts.container.clone()),
        (
            "Architecture",
            format!("{} ({} paging)", facts.arch, facts.paging),
        ),
        (
            "Physical memory",
            format!(
                "{} bytes ({:.1} MiB) in {} range(s), highest address {:#x}",
                facts.physical.size,
                facts.physical.size as f64 / (1024.0 * 1024.0),
                facts.physical.ranges,
                facts.physical.end
            ),
        ),
        ("DTB", format!("{} ({})", facts.dtb, facts.dtb_source)),
        (
            "Kernel base",
            facts.kernel_base.map_or_else(none, |b| b.to_string()),
        ),
        (
            "Kernel PDB",
            facts
                .kernel_pdb
                .as_ref()
                .map_or_else(none, |p| format!("{} {} age {}", p.name, p.guid, p.age)),
        ),
        (
            "Symbol path",
            facts
                .kernel_pdb
                .as_ref()
                .map_or_else(none, |p| p.symbol_path.clone()),
        ),
        (
            "NT version",
            format!(
                "{}.{} build {}",
                facts.nt.major,
                facts.nt.minor,
                facts
                    .nt
                    .build
                    .map_or("unknown".to_string(), |b| b.to_string())
            ),
        ),
        ("Build sources", build_sources(&facts.build_sources)),
        (
            "Acquired (UTC)",
            facts.system_time.clone().unwrap_or_else(none),
        ),
        ("Booted (UTC)", facts.boot_time.clone().unwrap_or_else(none)),
        (
            "Time-zone bias",
            facts
                .timezone_bias_minutes
                .map_or_else(none, |b| format!("{b} minutes (local = UTC {:+} min)", -b)),
        ),
    ];
    match (tcpip, &k.tcpip_version) {
        (Some(t), _) => rows.push((
            "tcpip.sys",
            format!(
                "base {}, size {}, {}, FileVersion {} (found by {})",
                t.base,
                t.size,
                t.pdb
                    .as_ref()
                    .map_or("PDB id unreadable".to_string(), |p| format!(
                        "{} {} age {}",
                        p.name, p.guid, p.age
                    )),
                t.file_version
                    .as_deref()
                    .or(k.tcpip_version.as_deref())
                    .unwrap_or("unknown"),
                t.found_by
            ),
        )),
        (None, Some(v)) => {
            rows.push(("tcpip.sys", format!("FileVersion {v} (module not located)")))
        }
        (None, None) => {}
    }
    rows.push((
        "Profile",
        match &choice.name {
            Some(n) => format!("{n} ({})", choice.reason),
            None => format!("none ({})", choice.reason),
        },
    ));
    if let Some(stored) = &facts.stored_hashes {
        let check = stored
            .check
            .as_deref()
            .unwrap_or("not checked (--hash checks it)");
        if let Some(md5) = &stored.md5 {
            rows.push(("Stored MD5", format!("{md5} ({check})")));
        }
        if let Some(sha1) = &stored.sha1 {
            rows.push(("Stored SHA-1", format!("{sha1} ({check})")));
        }
    }
    if let Some(h) = &facts.hibernation {
        rows.push((
            "Hibernation",
            format!(
                "{} header {} ({}), {} pages in {} compression sets",
                h.format, h.header_size, h.signature, h.pages, h.compression_sets
            ),
        ));
        rows.push((
            "Hibernated (UTC)",
            h.hibernated
                .clone()
                .unwrap_or_else(|| format!("not a valid time ({})", h.hibernated_raw)),
        ));
        if let Some(fast) = h.fast_startup {
            let kind = if fast {
                "yes (a fast-startup shutdown wrote it: the kernel session only)"
            } else {
                "no (a hibernation)"
            };
            rows.push(("Fast startup", kind.to_string()));
        }
    }
    if let Some(h) = &facts.sha256 {
        rows.push(("SHA-256", h.clone()));
    }
    for w in &facts.warnings {
        rows.push(("Warning", w.clone()));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {}\n", crate::output::text::escape(v)))
        .collect()
}
