//! Open → identify → choose a profile: the steps `info`, `scan` and `compare` share, so that every
//! command reads an image the same way and picks the same profile for it.
use crate::bytes::ReadBytes;
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
