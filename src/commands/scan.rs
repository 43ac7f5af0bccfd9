use crate::cli::ScanArgs;
use crate::error::{Error, Result};

pub fn run(_args: &ScanArgs) -> Result<u8> {
    Err(Error::usage("`scan` is being written"))
}
