//! Open → identify → choose a profile: the steps `info`, `scan` and `compare` share, so that every
//! command reads an image the same way and picks the same profile for it.
use crate::bytes::ReadBytes;
use crate::carve::scoring::{best, score_profiles, ProfileScore, ScoringParams};
use crate::carve::search::CHUNK_SIZE;
use crate::container::PhysicalSpace;
use crate::error::{Error, Result};
use crate::filetime::TimeWindow;
use crate::kernel::KernelInfo;
use crate::paging::AddressSpace;
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
    /// What the user should check about the choice (candidates the image's objects could not
    /// tell apart).
    pub warning: Option<String>,
}

pub enum ChosenBy {
    /// `--profile NAME|FILE`, as given.
    Flag(String),
    /// Selection from the built-in set by the identified kernel: the rule that applied and, where
    /// the facts left several candidates, what each read from the image (empty otherwise).
    Selection {
        reason: String,
        scores: Vec<ProfileScore>,
    },
}

/// `--profile` when given (a bad one is the user's error), else the built-in profile for the
/// kernel; where the kernel's facts leave several, the one that reads the image's endpoint
/// objects best. `Err` from selection says why none fits; callers decide whether that stops them.
pub fn choose_profile(opened: &Opened, wanted: Option<&str>) -> Result<ProfileChoice> {
    let kernel = &opened.kernel;
    if let Some(name) = wanted {
        return Ok(ProfileChoice {
            profile: crate::profile::resolve(name)?,
            how: ChosenBy::Flag(name.to_string()),
            warning: None,
        });
    }
    let sel = select(&Query {
        arch: kernel.arch,
        nt_major: kernel.nt.major,
        nt_minor: kernel.nt.minor,
        build: kernel.nt.build,
        tcpip_version: kernel.tcpip_version.clone(),
    })?;
    if let Some(profile) = sel.decided() {
        return Ok(ProfileChoice {
            profile: profile.clone(),
            how: ChosenBy::Selection {
                reason: sel.reason,
                scores: vec![],
            },
            warning: None,
        });
    }
    let space = AddressSpace::new(&opened.phys, kernel.dtb, kernel.mode);
    let scores = score_profiles(
        &opened.phys,
        &sel.candidates,
        &ScoringParams {
            mem: &space,
            mode: kernel.mode,
            times: TimeWindow {
                boot: kernel.boot_time(),
                acquisition: kernel.system_time,
            },
            chunk_size: CHUNK_SIZE,
        },
    );
    crate::timings::mark("candidate profiles scored");
    let Some((chosen, tied)) = best(&scores) else {
        let tried: Vec<&str> = scores.iter().map(|s| s.profile.as_str()).collect();
        return Err(Error::usage(format!(
            "{}; no candidate profile reads an endpoint object from the image (tried: {}); \
             pass --profile NAME|FILE",
            sel.reason,
            tried.join(", ")
        )));
    };
    let won = &scores[chosen];
    let mut reason = format!(
        "{}; chosen by the image's objects: {} reads {} endpoints, {} with a valid owner, {} with \
         a create time between boot and acquisition (score {})",
        sel.reason, won.profile, won.valid, won.owner_valid, won.time_in_window, won.score
    );
    let mut warning = None;
    if !tied.is_empty() {
        let equals: Vec<&str> = tied.iter().map(|&i| scores[i].profile.as_str()).collect();
        reason.push_str(&format!(
            "; {} read the image as well: the first in built-in order is used",
            equals.join(", ")
        ));
        warning = Some(format!(
            "profile {} was chosen from candidates that read this image's endpoint objects \
             equally well ({}, score {}): where their layouts differ the records may be misread; \
             confirm with --profile",
            won.profile,
            equals.join(", "),
            won.score
        ));
    } else if let Some(next) = scores
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != chosen)
        .map(|(_, s)| s)
        // The first of equals, as for the winner.
        .rev()
        .max_by_key(|s| s.score)
    {
        reason.push_str(&format!("; next best {} {}", next.profile, next.score));
    }
    Ok(ProfileChoice {
        profile: sel.candidates[chosen].clone(),
        how: ChosenBy::Selection { reason, scores },
        warning,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What `--hash` found: the SHA-256 of the image file (of the decoded media for compressed
/// containers), and whether the hashes a container stores of its media still hold.
pub struct ImageHash {
    pub sha256: String,
    /// `verified`, `mismatch` or `incomplete`; `None` when the container stores no hashes.
    pub stored_check: Option<&'static str>,
}

impl ImageHash {
    /// Puts the hash and the check of the stored hashes into the image's facts.
    pub fn apply(self, facts: &mut crate::record::ImageFacts) {
        facts.sha256 = Some(self.sha256);
        if let (Some(stored), Some(check)) = (&mut facts.stored_hashes, self.stored_check) {
            stored.check = Some(check.to_string());
        }
    }
}

/// Hashes the image for `--hash`.
pub fn image_hash(phys: &PhysicalSpace) -> ImageHash {
    use sha2::{Digest, Sha256};
    if phys.blocks().is_none() {
        let file = phys.file_bytes();
        let sha256 = match phys.data_extents() {
            None => Sha256::digest(file),
            Some(extents) => {
                // Every byte, holes included, but a hole's zeros come from a buffer: reading them
                // from the map would fault each into the page cache.
                let zeros = vec![0u8; 1 << 20];
                let mut sha = Sha256::new();
                let mut at = 0usize;
                let ends = extents.iter().map(|&(start, end)| {
                    let clip = |v: u64| usize::try_from(v).unwrap_or(usize::MAX).min(file.len());
                    (clip(start), clip(end))
                });
                for (start, end) in ends.chain([(file.len(), file.len())]) {
                    while at < start {
                        let n = (start - at).min(zeros.len());
                        sha.update(&zeros[..n]);
                        at += n;
                    }
                    if let Some(data) = file.get(at.max(start)..end) {
                        sha.update(data);
                        at = end;
                    }
                }
                sha.finalize()
            }
        };
        return ImageHash {
            sha256: hex(&sha256),
            stored_check: None,
        };
    }
    // The media in order, as the acquisition tool hashed it; an absent chunk makes every hash
    // unverifiable.
    let (mut sha256, mut md5, mut sha1) = (Sha256::new(), md5::Md5::new(), sha1::Sha1::new());
    let mut complete = true;
    let mut at = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for run in phys.runs() {
        complete &= run.phys == at;
        let mut pos = run.phys;
        while pos < run.phys_end() {
            let n = (run.phys_end() - pos).min(buf.len() as u64) as usize;
            if !phys.read_into(pos, &mut buf[..n]) {
                complete = false;
            }
            sha256.update(&buf[..n]);
            md5.update(&buf[..n]);
            sha1.update(&buf[..n]);
            pos += n as u64;
        }
        at = run.phys_end();
    }
    let stored = phys.container_facts.as_ref();
    let stored_check = stored
        .filter(|f| f.md5.is_some() || f.sha1.is_some())
        .map(|f| {
            let md5_ok = f.md5.is_none_or(|h| h[..] == md5.finalize()[..]);
            let sha1_ok = f.sha1.is_none_or(|h| h[..] == sha1.finalize()[..]);
            match (complete, md5_ok && sha1_ok) {
                (false, _) => "incomplete",
                (true, true) => "verified",
                (true, false) => "mismatch",
            }
        });
    ImageHash {
        sha256: hex(&sha256.finalize()),
        stored_check,
    }
}
