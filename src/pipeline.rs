//! Open → identify → choose a profile: the steps `info`, `scan` and `compare` share, so that every
//! command reads an image the same way and picks the same profile for it.
use crate::container::PhysicalSpace;
use crate::error::Result;
use crate::kernel::KernelInfo;
use crate::profile::select::{select, Query};
use crate::profile::Profile;
use std::path::Path;

/// An image opened and its kernel identified.
pub struct Opened {
    pub phys: PhysicalSpace,
    pub kernel: KernelInfo,
}

/// Opens `path` read-only and identifies its kernel (`dtb` overrides DTB discovery).
pub fn open(path: &Path, dtb: Option<u64>) -> Result<Opened> {
    let phys = PhysicalSpace::open(path)?;
    crate::timings::mark("container opened");
    let kernel = crate::kernel::identify(&phys, dtb).map_err(|e| e.in_file(path))?;
    Ok(Opened { phys, kernel })
}

/// The profile to decode with and how it was chosen.
pub struct ProfileChoice {
    pub profile: Profile,
    pub how: ChosenBy,
}

pub enum ChosenBy {
    /// `--profile NAME|FILE`, as given.
    Flag(String),
    /// Selection from the built-in set by the identified kernel; the rule that applied.
    Selection(String),
}

/// `--profile` when given (a bad one is the user's error), else the built-in profile for the
/// kernel. `Err` from selection says why none fits; callers decide whether that stops them.
pub fn choose_profile(kernel: &KernelInfo, wanted: Option<&str>) -> Result<ProfileChoice> {
    if let Some(name) = wanted {
        return Ok(ProfileChoice {
            profile: crate::profile::resolve(name)?,
            how: ChosenBy::Flag(name.to_string()),
        });
    }
    let sel = select(&Query {
        arch: kernel.arch,
        nt_major: kernel.nt.major,
        nt_minor: kernel.nt.minor,
        build: kernel.nt.build,
        tcpip_version: kernel.tcpip_version.clone(),
    })?;
    Ok(ProfileChoice {
        profile: sel.profile.clone(),
        how: ChosenBy::Selection(sel.reason),
    })
}

/// The image file's SHA-256, as lowercase hex (`--hash`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
