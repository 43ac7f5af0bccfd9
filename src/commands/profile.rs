use crate::cli::ProfileArgs;
use crate::error::{Error, Result};

pub fn run(_args: &ProfileArgs) -> Result<u8> {
    Err(Error::usage("`profile` is being written"))
}
