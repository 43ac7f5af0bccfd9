//! One file per subcommand: parse nothing, call the library, render, return the exit code.
use crate::cli::{Cli, Command};
use crate::error::Result;

pub mod compare;
pub mod info;
pub mod profile;
pub mod research;
pub mod scan;
pub mod synth;

/// Runs a parsed command line; the `u8` is the process exit code (0 ok, 1 compare found
/// discrepancies). Errors become exit code 2 in `main`.
pub fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Info(a) => info::run(&a),
        Command::Scan(a) => scan::run(&a),
        Command::Compare(a) => compare::run(&a),
        Command::Synth(a) => synth::run(&a),
        Command::Profile(a) => profile::run(&a),
        Command::Research(a) => research::run(&a),
    }
}
