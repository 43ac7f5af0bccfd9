use crate::cli::InfoArgs;
use crate::error::{Error, Result};

pub fn run(_args: &InfoArgs) -> Result<u8> {
    Err(Error::usage("`info` is being written"))
}
