use crate::cli::CompareArgs;
use crate::error::{Error, Result};

pub fn run(_args: &CompareArgs) -> Result<u8> {
    Err(Error::usage("`compare` is being written"))
}
