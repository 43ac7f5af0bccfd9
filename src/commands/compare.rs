//! `netcarve compare`: memory side (scan JSON or image) + captures → report; exit 1 on discrepancies.
use crate::capture::{
    culture_order, read_capture_with, CaptureFormat, CaptureOptions, TextEncoding, TimeContext,
};
use crate::cli::{CompareArgs, CompareFormat};
use crate::compare::{
    compare, load_memory_json, parse_tolerance, parse_utc_offset, CompareOptions, MemorySide,
};
use crate::error::{Error, Result};
use crate::output::Sink;
use crate::scan::{scan_image, threads_warning, ScanOptions};
use std::io::IsTerminal;
use std::path::Path;

pub fn run(args: &CompareArgs) -> Result<u8> {
    let forced = match args.capture_format.trim() {
        "auto" | "" => None,
        name => Some(CaptureFormat::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = CaptureFormat::ALL.iter().map(|f| f.name()).collect();
            Error::usage(format!(
                "--capture-format: unknown format {name:?} (auto, {})",
                names.join(", ")
            ))
        })?),
    };
    let encoding = match args.capture_encoding.trim() {
        "auto" | "" => None,
        name => Some(TextEncoding::from_name(name).ok_or_else(|| {
            Error::usage(format!(
                "--capture-encoding: unknown encoding {name:?} (auto, {})",
                TextEncoding::names().join(", ")
            ))
        })?),
    };
    let culture = match args.capture_culture.trim() {
        "auto" | "" => None,
        name => Some((
            name.to_string(),
            culture_order(name).ok_or_else(|| {
                Error::usage(format!(
                    "--capture-culture: {name:?} is not a culture name (auto, en-US, en-GB, de-DE, ja-JP, ...)"
                ))
            })?,
        )),
    };
    let capture_opts = CaptureOptions {
        format: forced,
        encoding,
        culture,
    };
    let tolerance_ticks = args
        .tolerance
        .as_deref()
        .map(parse_tolerance)
        .transpose()
        .map_err(|m| Error::usage(format!("--tolerance: {m}")))?;
    let capture_tz_minutes = args
        .capture_tz
        .as_deref()
        .map(parse_utc_offset)
        .transpose()
        .map_err(|m| Error::usage(format!("--capture-tz: {m}")))?;

    let memory = match load_memory_json(&args.input)? {
        Some(side) => side,
        None => {
            if let Some(warning) = threads_warning(args.threads).filter(|_| !args.quiet) {
                eprintln!("netcarve: warning: {warning}");
            }
            let opts = ScanOptions {
                dtb: args.dtb,
                profile: args.profile.clone(),
                threads: args.threads,
                progress: !args.quiet && std::io::stderr().is_terminal(),
                ..Default::default()
            };
            let scanned = scan_image(&args.input, &opts)?;
            MemorySide {
                image: scanned.image,
                endpoints: scanned.endpoints,
                source: "image".to_string(),
            }
        }
    };
    let time = TimeContext {
        capture_tz_minutes,
        // KUSER TimeZoneBias: UTC = local + bias, so the offset east of UTC is −bias.
        image_offset_minutes: memory.image.timezone_bias_minutes.map(|b| -b),
    };
    let captures = args
        .live
        .iter()
        .map(|path| read_capture_with(path, &capture_opts, &time))
        .collect::<Result<Vec<_>>>()?;
    let capture_time = match &args.capture_time {
        Some(text) => Some(crate::filetime::from_iso(text).ok_or_else(|| {
            Error::usage(format!(
                "--capture-time: not an ISO-8601 time with Z or an offset: {text:?}"
            ))
        })?),
        None => None,
    };
    let mut report = compare(
        &memory,
        &captures,
        &CompareOptions {
            tolerance_ticks,
            capture_time,
        },
    );
    // A capture of another host would accuse every endpoint in memory: refuse unless asked.
    for info in &mut report.captures {
        if info.host_check.verdict != "mismatch" {
            continue;
        }
        let evidence = info.host_check.evidence();
        if !args.allow_mismatch {
            return Err(Error::file(
                Path::new(&info.file),
                format!(
                    "does not belong to {}: {evidence}; --allow-mismatch compares anyway",
                    args.input.display()
                ),
            ));
        }
        info.warnings.push(format!(
            "compared with --allow-mismatch although it looks like another host's capture: {evidence}"
        ));
    }

    // CSV has no place for warnings (the table and JSON carry them): they go to stderr.
    if matches!(args.format, CompareFormat::Csv) && !args.quiet {
        let memory_warnings = report
            .image
            .warnings
            .iter()
            .map(|w| (memory_name(&report), w));
        let capture_warnings = report
            .captures
            .iter()
            .flat_map(|c| c.warnings.iter().map(move |w| (c.file.clone(), w)));
        for (file, w) in memory_warnings.chain(capture_warnings) {
            eprintln!(
                "netcarve: warning: {}",
                crate::output::text::escape(&format!("{file}: {w}"))
            );
        }
    }
    let mut sink = Sink::open(args.output.as_deref())?;
    let out = sink.writer();
    let written = match args.format {
        CompareFormat::Table => crate::output::compare::table(&report, out),
        CompareFormat::Json => crate::output::compare::json(&report, out),
        CompareFormat::Csv => crate::output::compare::csv(&report, out),
    };
    sink.finish(written, report.exit_code())
}

fn memory_name(report: &crate::compare::Report) -> String {
    report.image.file.clone().unwrap_or_else(|| "memory".into())
}
