//! `netcarve scan`: arguments → `scan::scan_image_in_pool` → filters → renderer.
use crate::cli::{ProtoFilter, ScanArgs};
use crate::error::Result;
use crate::output::{self, Format, Sink};
use crate::record::{EndpointRecord, Proto, TcpState};
use crate::scan::{scan_image_in_pool, threads_warning, with_threads, ScanOptions};
use std::io::IsTerminal;

pub fn run(args: &ScanArgs) -> Result<u8> {
    let filter = Filter::from_args(args);
    let opts = ScanOptions {
        dtb: args.image.dtb,
        profile: args.image.profile.clone(),
        include_corrupt: args.include_corrupt,
        no_tables: args.no_tables,
        threads: args.threads,
        progress: !args.quiet,
        hash: args.hash,
    };
    if let Some(warning) = threads_warning(opts.threads).filter(|_| !args.quiet) {
        eprintln!("netcarve: warning: {warning}");
    }
    // Rendering runs on the same workers as the scan: `--threads` bounds both.
    with_threads(opts.threads, || scan_and_render(args, &opts, &filter))
}

fn scan_and_render(args: &ScanArgs, opts: &ScanOptions, filter: &Filter) -> Result<u8> {
    let mut out = scan_image_in_pool(&args.image.image, opts)?;
    if !args.quiet {
        for warning in &out.image.warnings {
            eprintln!(
                "netcarve: warning: {}",
                output::text::escape(&format!("{}: {warning}", args.image.image.display()))
            );
        }
    }
    out.endpoints.retain(|r| filter.keeps(r));
    out.corrupt.retain(|r| filter.keeps(r));

    // A terminal gets a table; a pipe or a file gets JSON, which tools can read.
    let format = match args.format {
        Some(f) => f,
        None if args.output.is_none() && std::io::stdout().is_terminal() => Format::Table,
        None => Format::Json,
    };
    let mut sink = Sink::open(args.output.as_deref())?;
    let written = output::render(&out, format, sink.writer());
    let code = sink.finish(written, 0)?;
    crate::timings::mark("output written");
    Ok(code)
}

/// `--pid`, `--proto`, `--state`: a record is kept when it passes every given filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Filter {
    pub pids: Vec<u32>,
    pub proto: Option<Proto>,
    pub states: Vec<TcpState>,
}

impl Filter {
    fn from_args(args: &ScanArgs) -> Filter {
        Filter {
            pids: args.pid.clone(),
            proto: args.proto.map(|p| match p {
                ProtoFilter::Tcp => Proto::Tcp,
                ProtoFilter::Udp => Proto::Udp,
            }),
            states: args.state.clone(),
        }
    }

    pub(crate) fn keeps(&self, r: &EndpointRecord) -> bool {
        (self.pids.is_empty() || r.pid.is_some_and(|p| self.pids.contains(&p)))
            && self.proto.is_none_or(|p| r.proto == p)
            && (self.states.is_empty() || r.state.is_some_and(|s| self.states.contains(&s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(proto: Proto, pid: Option<u32>, state: Option<TcpState>) -> EndpointRecord {
        EndpointRecord {
            proto,
            pid,
            state,
            ..EndpointRecord::sample()
        }
    }

    #[test]
    fn filters_combine() {
        let f = Filter {
            pids: vec![4, 1236],
            proto: Some(Proto::Tcp),
            states: vec![TcpState::Established, TcpState::Listening],
        };
        assert!(f.keeps(&rec(Proto::Tcp, Some(4), Some(TcpState::Listening))));
        assert!(!f.keeps(&rec(Proto::Tcp, Some(8), Some(TcpState::Listening))));
        assert!(!f.keeps(&rec(Proto::Tcp, None, Some(TcpState::Listening))));
        assert!(!f.keeps(&rec(Proto::Udp, Some(4), None)));
        assert!(!f.keeps(&rec(Proto::Tcp, Some(4), Some(TcpState::TimeWait))));
        assert!(Filter::default().keeps(&rec(Proto::Udp, None, None)));
    }
}
