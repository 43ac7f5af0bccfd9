//! Raw images (dd, .raw, .mem, a .vmem without metadata): file offset = physical address.
use super::{Backing, PhysicalSpace, Run};
use crate::error::Result;
use std::path::Path;

pub fn open(backing: Backing, path: &Path) -> Result<PhysicalSpace> {
    let len = backing.bytes().len() as u64;
    PhysicalSpace::new(
        backing,
        vec![Run {
            phys: 0,
            len,
            file_offset: 0,
        }],
        "raw",
        path,
    )
}
