//! `netcarve compare`: memory side (scan JSON or image) + captures → report; exit 1 on discrepancies.
use crate::capture::{read_capture_with, CaptureOptions, TimeContext};
use crate::cli::CompareArgs;
use crate::compare::{compare, load_memory_json, CompareOptions, MemorySide};
use crate::error::{Error, Result};
use crate::output::{Format, Sink};
use crate::scan::{scan_image, threads_warning, ScanOptions};
use std::io::IsTerminal;
use std::path::Path;

pub fn run(args: &CompareArgs) -> Result<u8> {
    let capture_opts = CaptureOptions {
        format: args.capture_format.0,
        encoding: args.capture_encoding.0,
        culture: args.capture_culture.0.clone(),
    };

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
                profile: crate::compare::MemoryProfile {
                    health: scanned.profile.health,
                },
                source: "image".to_string(),
            }
        }
    };
    let time = TimeContext {
        capture_tz_minutes: args.capture_tz,
        // KUSER TimeZoneBias: UTC = local + bias, so the offset east of UTC is −bias.
        image_offset_minutes: memory.image.timezone_bias_minutes.map(|b| -b),
    };
    let captures = args
        .live
        .iter()
        .map(|path| read_capture_with(path, &capture_opts, &time))
        .collect::<Result<Vec<_>>>()?;
    let mut report = compare(
        &memory,
        &captures,
        &CompareOptions {
            tolerance_ticks: args.tolerance,
            capture_time: args.capture_time,
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
    if args.format == Format::Csv && !args.quiet {
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
        Format::Json => crate::output::compare::json(&report, out),
        Format::Csv => crate::output::compare::csv(&report, out),
        // The parser admits table, json and csv only.
        _ => crate::output::compare::table(&report, out),
    };
    sink.finish(written, report.exit_code())
}

fn memory_name(report: &crate::compare::Report) -> String {
    report.image.file.clone().unwrap_or_else(|| "memory".into())
}
