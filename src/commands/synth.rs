use crate::cli::SynthArgs;
use crate::error::{Error, Result};

pub fn run(_args: &SynthArgs) -> Result<u8> {
    Err(Error::usage("`synth` is being written"))
}
