//! Choosing a built-in profile for an image: by architecture, NT version, build and (where it
//! matters) tcpip.sys version, to the exact or the nearest lower known build, never silently
//! "the latest".
use super::{builtin, Arch, Profile};
use crate::error::{Error, Result};

/// What the selection is based on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub arch: Arch,
    pub nt_major: u32,
    pub nt_minor: u32,
    pub build: u32,
    /// tcpip.sys file version (dotted), when known.
    pub tcpip_version: Option<String>,
}

/// The chosen profile and why, in words `info` and `scan` can show.
#[derive(Clone, Debug)]
pub struct Selection {
    pub profile: &'static Profile,
    pub reason: String,
}

/// Picks the built-in profile for `q`: a profile whose build range holds the build, else the one
/// with the nearest lower `build_max` of the same arch and NT version (and says so).
pub fn select(q: &Query) -> Result<Selection> {
    let same_os: Vec<&'static Profile> = builtin()
        .iter()
        .filter(|p| {
            p.arch == q.arch && p.matches.nt_major == q.nt_major && p.matches.nt_minor == q.nt_minor
        })
        .collect();
    let exact: Vec<&&'static Profile> = same_os
        .iter()
        .filter(|p| p.matches.build_min <= q.build && q.build <= p.matches.build_max)
        .collect();
    if let Some(p) = exact.first() {
        return Ok(Selection {
            profile: p,
            reason: format!(
                "{} NT {}.{} build {} is within {}..={}",
                q.arch.name(),
                q.nt_major,
                q.nt_minor,
                q.build,
                p.matches.build_min,
                p.matches.build_max
            ),
        });
    }
    let lower = same_os
        .iter()
        .filter(|p| p.matches.build_max < q.build)
        .max_by_key(|p| p.matches.build_max);
    match lower {
        Some(p) => Ok(Selection {
            profile: p,
            reason: format!(
                "no profile covers {} NT {}.{} build {}; nearest lower known build {} (confirm with self-calibration)",
                q.arch.name(),
                q.nt_major,
                q.nt_minor,
                q.build,
                p.matches.build_max
            ),
        }),
        None => Err(Error::usage(format!(
            "no built-in profile for {} NT {}.{} build {}; pass --profile NAME|FILE",
            q.arch.name(),
            q.nt_major,
            q.nt_minor,
            q.build
        ))),
    }
}
