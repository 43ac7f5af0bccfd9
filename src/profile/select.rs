//! Choosing a built-in profile for an image: by architecture, NT version, build and (where it
//! matters) tcpip.sys version, to the exact or the nearest lower known build, never silently
//! "the latest".
//!
//! Rules, in order (the reason string names the one that applied):
//! 1. Same architecture and NT major.minor; no such profile is an error (`--profile` overrides).
//! 2. A profile whose build range holds the build. Else the profiles with the nearest lower
//!    `build_max` (the reason says the build is unknown and self-calibration must confirm it).
//!    A build below every known range is an error, never a guess upwards.
//! 3. Where several candidates remain (x64 9600: `win81-x64` / `win81-19935-x64`), the tcpip.sys
//!    FileVersion decides.
//! 4. Where the facts leave several (an unknown build whose NT version has profiles for different
//!    builds, such as 6.0's `vista-x64` / `vista-sp12-x64` or 10.0; an unknown or unparsable
//!    tcpip.sys version), every one of them is a candidate: the image's own objects decide
//!    between them (`carve::scoring`), never a silent default.
//!
//! 18362 vs 18363: both releases run a 10.0.18362.x kernel, and no kernel fact tells them apart
//! reliably (Volatility 3's `_KQOS_GROUPING_SETS` test follows the kernel patch level instead).
//! netcarve selects by the build number the image reports (`win10-18363-x64` only for 18363) and
//! relies on each profile carrying the other's UdpA Port/LocalAddr offsets as alternatives (D3),
//! which the decoder tries per object.
use super::{builtin, Arch, Profile};
use crate::error::{Error, Result};

/// What the selection is based on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub arch: Arch,
    pub nt_major: u32,
    pub nt_minor: u32,
    /// `None`: no source in the image gave it.
    pub build: Option<u32>,
    /// tcpip.sys file version (dotted), when known.
    pub tcpip_version: Option<String>,
}

/// The profiles the image's facts leave, and why, in words `info` and `scan` can show.
#[derive(Clone, Debug)]
pub struct Selection {
    /// Never empty; several when the facts cannot tell them apart (rule 4), in built-in order.
    pub candidates: Vec<&'static Profile>,
    pub reason: String,
}

impl Selection {
    /// The profile, when the facts alone chose one.
    pub fn decided(&self) -> Option<&'static Profile> {
        match self.candidates[..] {
            [only] => Some(only),
            _ => None,
        }
    }
}

/// The built-in profiles that fit `q` (see the module rules).
pub fn select(q: &Query) -> Result<Selection> {
    let (candidates, reason) = select_from(builtin(), q)?;
    Ok(Selection { candidates, reason })
}

/// [`select`] over any profile set (the candidates and the reason they were chosen).
fn select_from<'a>(profiles: &'a [Profile], q: &Query) -> Result<(Vec<&'a Profile>, String)> {
    let os = format!(
        "{} NT {}.{} build {}",
        q.arch.name(),
        q.nt_major,
        q.nt_minor,
        q.build.map_or("unknown".to_string(), |b| b.to_string())
    );
    let same_os: Vec<&Profile> = profiles
        .iter()
        .filter(|p| {
            p.arch == q.arch && p.matches.nt_major == q.nt_major && p.matches.nt_minor == q.nt_minor
        })
        .collect();
    if same_os.is_empty() {
        return Err(Error::usage(format!(
            "no built-in profile for {} NT {}.{}; pass --profile NAME|FILE",
            q.arch.name(),
            q.nt_major,
            q.nt_minor
        )));
    }
    let exact: Vec<&Profile> = same_os
        .iter()
        .copied()
        .filter(|p| {
            q.build
                .is_some_and(|b| p.matches.build_min <= b && b <= p.matches.build_max)
        })
        .collect();
    // An unknown build (no source gave it): where the profiles for this NT version all cover the
    // same builds (one release, perhaps told apart by tcpip.sys) it is one of them; where they
    // cover different builds, each is a candidate for the evidence to decide.
    let unknown_build = q.build.is_none();
    let mut ranges: Vec<(u32, u32)> = same_os
        .iter()
        .map(|p| (p.matches.build_min, p.matches.build_max))
        .collect();
    ranges.sort_unstable();
    ranges.dedup();
    let (candidates, build_reason) = if unknown_build && ranges.len() == 1 {
        let names: Vec<&str> = same_os.iter().map(|p| p.name.as_str()).collect();
        (
            same_os.clone(),
            format!(
                "build unknown (no source in the image gave it); every profile for {} NT {}.{} ({}) covers builds {}..={}",
                q.arch.name(),
                q.nt_major,
                q.nt_minor,
                names.join(", "),
                ranges[0].0,
                ranges[0].1
            ),
        )
    } else if unknown_build {
        let names: Vec<&str> = same_os.iter().map(|p| p.name.as_str()).collect();
        (
            same_os.clone(),
            format!(
                "build unknown (no source in the image gave it) and the profiles for {} NT {}.{} \
                 cover different builds ({})",
                q.arch.name(),
                q.nt_major,
                q.nt_minor,
                names.join(", ")
            ),
        )
    } else if !exact.is_empty() {
        let r = &exact[0].matches;
        (
            exact.clone(),
            format!("{os} is within {}..={}", r.build_min, r.build_max),
        )
    } else {
        let nearest = same_os
            .iter()
            .filter(|p| q.build.is_some_and(|b| p.matches.build_max < b))
            .map(|p| p.matches.build_max)
            .max();
        let Some(nearest) = nearest else {
            return Err(Error::usage(format!(
                "no built-in profile covers {os} or a lower build; pass --profile NAME|FILE"
            )));
        };
        (
            same_os
                .iter()
                .copied()
                .filter(|p| p.matches.build_max == nearest)
                .collect(),
            format!(
                "no profile covers {os}; using the nearest lower known build {nearest} \
                 (unknown build: self-calibration must confirm the offsets)"
            ),
        )
    };
    let (left, tcpip_reason) = pick_by_tcpip(&candidates, q.tcpip_version.as_deref());
    let reason = match tcpip_reason {
        Some(t) => format!("{build_reason}; {t}"),
        None => build_reason,
    };
    Ok((left, reason))
}

/// Among profiles for the same build, the one whose tcpip.sys version rule admits `version`; all
/// of them when no rule does (or none has a rule). `candidates` is never empty.
fn pick_by_tcpip<'a>(
    candidates: &[&'a Profile],
    version: Option<&str>,
) -> (Vec<&'a Profile>, Option<String>) {
    if candidates.iter().all(|p| p.matches.tcpip_version.is_none()) {
        return (candidates.to_vec(), None);
    }
    let parsed = version.and_then(parse_version);
    if let Some(v) = parsed {
        for p in candidates {
            let Some(rule) = &p.matches.tcpip_version else {
                continue;
            };
            let above_min = rule
                .min
                .as_deref()
                .and_then(parse_version)
                .is_none_or(|m| v >= m);
            let below_max = rule
                .max
                .as_deref()
                .and_then(parse_version)
                .is_none_or(|m| v < m);
            if above_min && below_max {
                return (
                    vec![p],
                    Some(format!(
                        "tcpip.sys {} matches {}",
                        version.unwrap_or(""),
                        describe(p)
                    )),
                );
            }
        }
    }
    // Unknown version (or none that fits): the image's objects decide, said out loud.
    let why = match version {
        None => "tcpip.sys version unknown".to_string(),
        Some(v) if parsed.is_none() => format!("tcpip.sys version {v:?} unparsable"),
        Some(v) => format!("tcpip.sys {v} matches no version rule"),
    };
    let names: Vec<String> = candidates.iter().map(|p| describe(p)).collect();
    (
        candidates.to_vec(),
        Some(format!("{why}: candidates {}", names.join(", "))),
    )
}

fn describe(p: &Profile) -> String {
    match &p.matches.tcpip_version {
        Some(r) => format!(
            "{} (tcpip.sys {}{})",
            p.name,
            r.min
                .as_deref()
                .map(|m| format!(">= {m}"))
                .unwrap_or_default(),
            r.max
                .as_deref()
                .map(|m| format!("{}< {m}", if r.min.is_some() { ", " } else { "" }))
                .unwrap_or_default()
        ),
        None => p.name.clone(),
    }
}

/// `6.3.9600.19935` → [6, 3, 9600, 19935]; missing parts count as 0.
fn parse_version(text: &str) -> Option<[u32; 4]> {
    let mut out = [0u32; 4];
    let mut parts = text.trim().split('.');
    for slot in out.iter_mut() {
        match parts.next() {
            Some(p) => *slot = p.trim().parse().ok()?,
            None => break,
        }
    }
    if parts.next().is_some() {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build 0 here stands for "unknown".
    fn q(arch: Arch, major: u32, minor: u32, build: u32, tcpip: Option<&str>) -> Query {
        Query {
            arch,
            nt_major: major,
            nt_minor: minor,
            build: (build != 0).then_some(build),
            tcpip_version: tcpip.map(str::to_string),
        }
    }

    #[test]
    fn version_parsing() {
        assert_eq!(parse_version("6.3.9600.19935"), Some([6, 3, 9600, 19935]));
        assert_eq!(parse_version("10.0"), Some([10, 0, 0, 0]));
        assert_eq!(parse_version("6.3.x.1"), None);
        assert_eq!(parse_version("1.2.3.4.5"), None);
    }

    fn one(q: &Query) -> (String, String) {
        let s = select(q).unwrap();
        let p = s
            .decided()
            .unwrap_or_else(|| panic!("undecided: {}", s.reason));
        (p.name.clone(), s.reason)
    }

    fn names(s: &Selection) -> Vec<&str> {
        s.candidates.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn split_9600_by_tcpip_version() {
        let x64 = |v| q(Arch::X64, 6, 3, 9600, v);
        assert_eq!(one(&x64(Some("6.3.9600.19935"))).0, "win81-19935-x64");
        assert_eq!(one(&x64(Some("6.3.9600.19934"))).0, "win81-x64");
        // Unknown: both stay candidates, not the older one by default.
        let s = select(&x64(None)).unwrap();
        assert_eq!(names(&s), ["win81-19935-x64", "win81-x64"]);
        assert!(
            s.reason.contains("tcpip.sys version unknown"),
            "{}",
            s.reason
        );
    }

    /// Build 0 is unknown: chosen by NT version where its profiles cover one release; where they
    /// do not, every profile of the NT version is a candidate.
    #[test]
    fn an_unknown_build_is_not_build_zero() {
        for arch in [Arch::X64, Arch::X86] {
            let (name, reason) = one(&q(arch, 6, 1, 0, None));
            assert!(name.starts_with("win7-"), "{name}");
            assert!(reason.contains("build unknown"), "{reason}");
        }
        assert_eq!(
            one(&q(Arch::X64, 6, 3, 0, Some("6.3.9600.19935"))).0,
            "win81-19935-x64"
        );
        let s = select(&q(Arch::X64, 10, 0, 0, None)).unwrap();
        assert!(s.candidates.len() > 10, "{:?}", names(&s));
        assert!(names(&s).contains(&"win10-19041-x64"));
        assert!(s.candidates.iter().all(|p| p.arch == Arch::X64));
        assert!(s.reason.contains("cover different builds"), "{}", s.reason);
        assert!(!s.reason.contains("build 0"), "{}", s.reason);
        let s = select(&q(Arch::X64, 6, 0, 0, None)).unwrap();
        assert_eq!(names(&s), ["vista-sp12-x64", "vista-x64"]);
    }
}
