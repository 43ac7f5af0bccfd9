use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    netcarve::timings::start();
    let cli = match netcarve::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors are exit code 2 (clap's own default).
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match netcarve::commands::run(cli) {
        Ok(code) => {
            netcarve::timings::mark("done");
            ExitCode::from(code)
        }
        Err(e) => {
            // Errors quote file names and evidence: escaped, they stay one visible line.
            eprintln!(
                "netcarve: {}",
                netcarve::output::text::escape(&e.to_string())
            );
            ExitCode::from(2)
        }
    }
}
