//! Profiles scored by what they read from the image: where the image's facts leave several
//! candidates (an unknown build, an unknown tcpip.sys version), one tag search decodes every
//! endpoint candidate with each profile. A layout that does not fit reads address families and
//! states that fail the structure checks, owners that are not processes and times outside
//! boot..acquisition; the one that fits reads all three.
use crate::carve::decode::{decode, dtb_alignment, DecodeEnv, Decoded, Overrides, OwnerCache};
use crate::carve::search::{find_tags_with, TagHit, TagSet};
use crate::container::PhysicalSpace;
use crate::filetime::TimeWindow;
use crate::paging::{PagingMode, VirtualMemory};
use crate::profile::Profile;
use serde::{Deserialize, Serialize};

/// What one candidate profile read from the image (`profile.selection` in scan JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileScore {
    pub profile: String,
    /// Candidates that decoded as endpoints (address family and state checks passed).
    pub valid: u64,
    /// Of those, the ones whose owner is a valid process.
    pub owner_valid: u64,
    /// Of those, the ones whose create time lies between boot and acquisition.
    pub time_in_window: u64,
    /// `valid + owner_valid + time_in_window`: each check a fitting layout passes counts once.
    pub score: u64,
}

/// Where the image is read from, as the carve reads it.
pub struct ScoringParams<'a> {
    pub mem: &'a dyn VirtualMemory,
    pub mode: PagingMode,
    pub times: TimeWindow,
    pub chunk_size: u64,
}

/// Scores every profile of `candidates` (same architecture) on the image's endpoint candidates,
/// in the order given.
pub fn score_profiles(
    phys: &PhysicalSpace,
    candidates: &[&Profile],
    p: &ScoringParams,
) -> Vec<ProfileScore> {
    let Some(first) = candidates.first() else {
        return vec![];
    };
    let tags = TagSet::from_profiles(candidates);
    // One owner cache per profile: owners are checked through each profile's _EPROCESS offsets.
    let caches: Vec<OwnerCache> = candidates.iter().map(|_| OwnerCache::default()).collect();
    let envs: Vec<DecodeEnv> = candidates
        .iter()
        .zip(&caches)
        .map(|(profile, owners)| DecodeEnv {
            profile,
            mem: p.mem,
            times: p.times,
            dtb_align: dtb_alignment(p.mode),
            overrides: Overrides::default(),
            owners,
        })
        .collect();
    let units = find_tags_with(
        phys,
        first.arch,
        &tags,
        p.chunk_size,
        false,
        None,
        &|h: TagHit, _: &mut u64| {
            let checks: Vec<[bool; 3]> = envs
                .iter()
                .map(|env| match decode(&h.candidate, env) {
                    Decoded::Valid(r, _) => [
                        true,
                        r.pid.is_some(),
                        r.create_time_raw
                            .is_some_and(|t| t != 0 && p.times.contains(t) == Some(true)),
                    ],
                    Decoded::Corrupt(_) => [false; 3],
                })
                .collect();
            checks.iter().any(|c| c[0]).then_some(checks)
        },
        &|hits, _| {
            let mut sums = vec![[0u64; 3]; envs.len()];
            for checks in hits {
                for (sum, c) in sums.iter_mut().zip(checks) {
                    for (s, passed) in sum.iter_mut().zip(c) {
                        *s += u64::from(passed);
                    }
                }
            }
            sums
        },
    );
    candidates
        .iter()
        .enumerate()
        .map(|(i, profile)| {
            let [valid, owner_valid, time_in_window] =
                units.iter().fold([0u64; 3], |mut acc, unit| {
                    for (a, s) in acc.iter_mut().zip(unit[i]) {
                        *a += s;
                    }
                    acc
                });
            ProfileScore {
                profile: profile.name.clone(),
                valid,
                owner_valid,
                time_in_window,
                score: valid + owner_valid + time_in_window,
            }
        })
        .collect()
}

/// The best-scoring profile (the first of equals, in the order given) and the others that scored
/// as well; `None` when no profile read any evidence.
pub fn best(scores: &[ProfileScore]) -> Option<(usize, Vec<usize>)> {
    let top = scores.iter().map(|s| s.score).max().filter(|&s| s > 0)?;
    let mut at_top = (0..scores.len()).filter(|&i| scores[i].score == top);
    let first = at_top.next()?;
    Some((first, at_top.collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(profile: &str, score: u64) -> ProfileScore {
        ProfileScore {
            profile: profile.into(),
            score,
            ..Default::default()
        }
    }

    #[test]
    fn the_best_wins_ties_are_named_and_nothing_is_no_choice() {
        assert_eq!(best(&[score("a", 3), score("b", 9)]), Some((1, vec![])));
        assert_eq!(
            best(&[score("a", 9), score("b", 2), score("c", 9)]),
            Some((0, vec![2]))
        );
        assert_eq!(best(&[score("a", 0), score("b", 0)]), None);
        assert_eq!(best(&[]), None);
    }
}
