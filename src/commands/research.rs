//! `netcarve research`: corpus → pairs researched in parallel (resumable parts under `--out`) →
//! rows.jsonl + aggregate.json → the aggregated table; exit 1 when a pair was skipped.
use crate::cli::ResearchArgs;
use crate::error::{io_error, Error, Result};
use crate::output::text::escape;
use crate::output::{Format, Sink};
use crate::research::{
    aggregate, load_corpus, part_name, research_pair, Aggregate, Corpus, ObjectRow, PairOptions,
};
use crate::scan::{threads_warning, with_threads};
use rayon::prelude::*;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

pub fn run(args: &ResearchArgs) -> Result<u8> {
    if let Some(warning) = threads_warning(args.threads).filter(|_| !args.quiet) {
        eprintln!("netcarve: warning: {warning}");
    }
    let corpus = load_corpus(&args.input, &args.capture_glob)?;
    guard_out(&args.out, &args.input, &corpus)?;
    let parts = args.out.join("parts");
    std::fs::create_dir_all(&parts).map_err(|e| io_error(&parts, &e))?;

    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(corpus.pairs.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "researching {bar:40} {pos}/{len} pairs ({eta})",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let opts = PairOptions {
        profile: args.profile.clone(),
        allow_mismatch: args.allow_mismatch,
    };
    let warnings = std::sync::Mutex::new(Vec::<String>::new());
    let per_pair: Vec<Vec<ObjectRow>> = with_threads(args.threads, || {
        Ok(corpus
            .pairs
            .par_iter()
            .map(|pair| {
                let part = parts.join(part_name(&pair.id));
                let done = (!args.force).then(|| read_part(&part)).flatten();
                let rows = done.unwrap_or_else(|| {
                    let rows = research_pair(pair, &opts);
                    // Only finished pairs are kept: a missing file may turn up by the next run.
                    if rows.iter().all(|r| r.status == "ok") {
                        if let Err(e) = write_part(&part, &rows) {
                            let mut w = warnings.lock().unwrap_or_else(|e| e.into_inner());
                            w.push(e.to_string());
                        }
                    }
                    rows
                });
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
                rows
            })
            .collect())
    })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    let mut rows: Vec<ObjectRow> = per_pair.into_iter().flatten().collect();
    rows.extend(
        corpus
            .rejected
            .iter()
            .map(|r| ObjectRow::failed(&r.id, r.status, r.error.clone())),
    );
    // Stable: a pair's rows keep compare's order.
    rows.sort_by(|a, b| a.pair_id.cmp(&b.pair_id));
    let agg = aggregate(&rows);

    write_file(&args.out.join("rows.jsonl"), |w| {
        for r in &rows {
            serde_json::to_writer(&mut *w, r).map_err(crate::output::json_io)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })?;
    write_file(&args.out.join("aggregate.json"), |w| {
        serde_json::to_writer_pretty(&mut *w, &agg).map_err(crate::output::json_io)?;
        w.write_all(b"\n")
    })?;

    // With nothing read, the one error line below names the first failure instead.
    if !args.quiet && agg.pairs_ok > 0 {
        let w = warnings.into_inner().unwrap_or_else(|e| e.into_inner());
        for f in &agg.failed {
            eprintln!(
                "netcarve: warning: {}",
                escape(&format!("pair {} {}: {}", f.pair_id, f.status, f.error))
            );
        }
        for line in w {
            eprintln!("netcarve: warning: {}", escape(&line));
        }
    }
    if agg.pairs_ok == 0 {
        let first = agg
            .failed
            .first()
            .map(|f| format!(": pair {} {}: {}", f.pair_id, f.status, f.error))
            .unwrap_or_default();
        return Err(Error::file(
            &args.input,
            format!(
                "no pair could be read ({} pairs, see rows.jsonl){first}",
                agg.pairs
            ),
        ));
    }
    let mut sink = Sink::open(None)?;
    let out = sink.writer();
    let written = match args.format {
        Format::Json => serde_json::to_writer_pretty(&mut *out, &agg)
            .map_err(crate::output::json_io)
            .and_then(|()| out.write_all(b"\n")),
        _ => table(&agg, out),
    };
    sink.finish(written, u8::from(!agg.failed.is_empty()))
}

/// A part already written by an earlier run; `None` (research it again) when absent or unreadable.
fn read_part(path: &Path) -> Option<Vec<ObjectRow>> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Written beside and renamed over: an interrupted run leaves no half part that looks done.
fn write_part(path: &Path, rows: &[ObjectRow]) -> Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    write_file(&tmp, |w| {
        for r in rows {
            serde_json::to_writer(&mut *w, r).map_err(crate::output::json_io)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })?;
    std::fs::rename(&tmp, path).map_err(|e| io_error(path, &e))
}

fn write_file(path: &Path, body: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<()> {
    let file = crate::evidence::open_output(path)?;
    let mut w = std::io::BufWriter::new(file);
    body(&mut w)
        .and_then(|()| w.flush())
        .map_err(|e| io_error(path, &e))
}

/// `--out` must not be an input, nor lie inside a folder holding evidence (the corpus folder,
/// any image's or capture's folder): results are never written next to evidence.
fn guard_out(out: &Path, input: &Path, corpus: &Corpus) -> Result<()> {
    let out_c = resolve(out);
    let mut files: Vec<&Path> = vec![input];
    let mut dirs: Vec<PathBuf> = corpus.root.iter().cloned().collect();
    for p in &corpus.pairs {
        for f in std::iter::once(&p.image).chain(&p.captures) {
            files.push(f);
            if let Some(d) = f.parent() {
                dirs.push(if d.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    d.to_path_buf()
                });
            }
        }
    }
    for f in files {
        let Ok(f_c) = f.canonicalize() else { continue };
        if f_c == out_c || same_file(out, f) {
            return Err(Error::file(
                out,
                format!("--out names an input ({})", f.display()),
            ));
        }
    }
    for d in dirs {
        let Ok(d_c) = d.canonicalize() else { continue };
        if out_c.starts_with(&d_c) {
            return Err(Error::file(
                out,
                format!(
                    "--out lies inside {}, which holds evidence: choose a folder outside it",
                    d.display()
                ),
            ));
        }
    }
    if out.exists() && !out.is_dir() {
        return Err(Error::file(out, "--out is not a folder"));
    }
    Ok(())
}

/// The canonical path, through the nearest ancestor that exists (`--out` may not exist yet).
fn resolve(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut rest = vec![];
    let mut cur = abs.as_path();
    loop {
        if let Ok(c) = cur.canonicalize() {
            return rest.iter().rev().fold(c, |acc, part| acc.join(part));
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                cur = parent;
            }
            _ => return abs,
        }
    }
}

/// Device and inode equal: the same file under another name (a hard link).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    let _ = (a, b);
    false
}

fn table(agg: &Aggregate, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<7} {:<18} {:>5} {:>7} {:>7} {:>8} {:>10} {:>9} {:>9} {:>9} {:>10} {:>9}  Verdict",
        "Build",
        "tcpip.sys",
        "Pairs",
        "Objects",
        "NoTime",
        "APIzero",
        "on-NoTime",
        "on-Kzero",
        "on-Ktime",
        "unpaired",
        "NoTime!=0",
        "not-conn"
    )?;
    for g in &agg.groups {
        let tcpip = g.tcpip_version.as_deref().map_or("-".into(), escape);
        writeln!(
            out,
            "{:<7} {:<18} {:>5} {:>7} {:>7} {:>8} {:>10} {:>9} {:>9} {:>9} {:>10} {:>9}  {}",
            g.build.map_or("unknown".to_string(), |b| b.to_string()),
            crate::output::text::cut(&tcpip, 18),
            g.pairs,
            g.objects,
            g.no_time_field,
            g.api_zero_rows,
            g.api_zero_on_no_time_field,
            g.api_zero_on_kernel_time_zero,
            g.api_zero_on_kernel_time,
            g.api_zero_unpaired,
            g.no_time_field_api_nonzero,
            g.api_zero_not_tcp_connection,
            g.verdict
        )?;
    }
    writeln!(
        out,
        "{} pairs ({} read, {} skipped), {} rows",
        agg.pairs,
        agg.pairs_ok,
        agg.failed.len(),
        agg.rows
    )
}
