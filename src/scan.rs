//! A whole scan: [`pipeline`](crate::pipeline) opens and identifies the image and chooses the
//! profile, [`carve`](crate::carve) finds and decodes the endpoint objects; the result is what
//! `netcarve scan` renders and `compare` reads.
use crate::carve::search::CHUNK_SIZE;
use crate::carve::{carve, CarveParams};
use crate::error::{Cause, Error, Result};
use crate::filetime::TimeWindow;
use crate::paging::AddressSpace;
use crate::pipeline::{choose_profile, ChosenBy};
use crate::record::{EndpointRecord, ImageFacts};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Options of one scan (the library form of `netcarve scan`'s flags).
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    pub dtb: Option<u64>,
    /// `--profile NAME|FILE`.
    pub profile: Option<String>,
    pub include_corrupt: bool,
    /// `--no-tables`: skip the walk of tcpip's tables.
    pub no_tables: bool,
    /// Worker threads; `None` = all cores.
    pub threads: Option<usize>,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
    /// Compute the image's SHA-256.
    pub hash: bool,
}

/// Which profile was used and why (`profile` in scan JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileUse {
    pub name: String,
    pub reason: String,
    /// Where the image's facts left several candidate profiles: what each read from the image's
    /// endpoint objects (the best was chosen). Empty when the facts chose alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selection: Vec<crate::carve::scoring::ProfileScore>,
    /// Offsets found by self-calibration, with the evidence; empty when none were needed.
    #[serde(default)]
    pub calibration: Vec<serde_json::Value>,
    /// Per object kind, the checks candidates passed and the time-slot census: a layout wrong for
    /// this image shows here.
    #[serde(default)]
    pub health: Vec<crate::carve::health::KindHealth>,
}

/// The result of a scan (`netcarve scan --format json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanOutput {
    pub image: ImageFacts,
    pub profile: ProfileUse,
    /// How tcpip's own tables were walked, and what they held.
    #[serde(default)]
    pub tables: crate::tables::TablesReport,
    pub endpoints: Vec<EndpointRecord>,
    /// `--include-corrupt`: rejected candidates with their `reason` (the first
    /// [`MAX_CORRUPT_ROWS`](crate::carve::MAX_CORRUPT_ROWS) by physical offset).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub corrupt: Vec<EndpointRecord>,
    /// `--include-corrupt`: how many more corrupt candidates were found than `corrupt` lists.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub corrupt_omitted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Scans an image end to end.
pub fn scan_image(path: &Path, opts: &ScanOptions) -> Result<ScanOutput> {
    with_threads(opts.threads, || scan_image_in_pool(path, opts))
}

/// The most workers a scan starts: 4 per core, at most 256. More only cost their start-up (4,000
/// took 12 s) and, by the ten thousand, fail to start.
fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.saturating_mul(4).min(256)
}

/// The warning for a `--threads` above [`max_threads`], which [`with_threads`] lowers to it.
pub fn threads_warning(threads: Option<usize>) -> Option<String> {
    let max = max_threads();
    threads.filter(|&n| n > max).map(|n| {
        format!(
            "--threads {n} is more than this machine uses (4 per core, at most 256): using {max}"
        )
    })
}

/// Runs `work` with `threads` workers (at most [`max_threads`]) for its parallel parts (`None`:
/// one per core).
pub fn with_threads<T: Send>(
    threads: Option<usize>,
    work: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    match threads {
        Some(n) => {
            if n == 0 {
                return Err(Error::usage("--threads must be at least 1"));
            }
            let n = n.min(max_threads());
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| Error::usage(format!("cannot start {n} threads: {e}")))?;
            pool.install(work)
        }
        None => work(),
    }
}

/// [`scan_image`] on the current thread pool (see [`with_threads`]).
pub fn scan_image_in_pool(path: &Path, opts: &ScanOptions) -> Result<ScanOutput> {
    let opened = crate::pipeline::open(path, opts.dtb)?;
    // A bad --profile is the user's error; no fitting profile is a fact about this image.
    let choice =
        choose_profile(&opened, opts.profile.as_deref()).map_err(|e| match opts.profile {
            Some(_) => e,
            None => e.in_file(path),
        })?;
    let crate::pipeline::Opened { phys, kernel } = opened;
    let choice_warning = choice.warning;
    let (profile, reason, selection) = match choice.how {
        ChosenBy::Flag(name) => (choice.profile, format!("--profile {name}"), vec![]),
        ChosenBy::Selection { reason, scores } => (choice.profile, reason, scores),
    };
    if profile.arch != kernel.arch {
        return Err(Error::cause(
            path,
            Cause::Profile(format!(
                "profile {} is {} but the image's kernel is {}",
                profile.name,
                profile.arch.name(),
                kernel.arch.name()
            )),
        ));
    }
    crate::timings::mark("kernel identified, profile chosen");
    let space = AddressSpace::new(&phys, kernel.dtb, kernel.mode);
    let mut image = crate::kernel::image_facts(&phys, &kernel);
    image.warnings.extend(choice_warning);
    image
        .warnings
        .extend(profile.kernel_mismatch(kernel.pdb.as_ref()));
    let times = TimeWindow {
        boot: kernel.boot_time(),
        acquisition: kernel.system_time,
    };
    let progress =
        (opts.progress && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
            let bar = indicatif::ProgressBar::new(phys.pass_size());
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "scanning {bar:40} {bytes}/{total_bytes} ({eta})",
            ) {
                bar.set_style(style);
            }
            bar
        });
    let prepared = (!opts.no_tables).then(|| crate::tables::prepare(&space, &kernel, &profile));
    let params = CarveParams {
        profile: &profile,
        mem: &space,
        mode: kernel.mode,
        times,
        include_corrupt: opts.include_corrupt,
        chunk_size: CHUNK_SIZE,
        progress: progress.as_ref(),
        kernel_space: Some(&space),
        block_tags: prepared.as_ref().map_or(&[], |p| p.block_tags()),
    };
    // With symbols the walk needs nothing from the carve: it runs beside it (its cost is reads
    // through the page tables, not memory bandwidth); the pool-tag route waits for the blocks the
    // search collects.
    let (early, late) = match prepared {
        Some(p) if p.block_tags().is_empty() => (Some(p), None),
        other => (None, other),
    };
    // Hashing reads the same file; running it beside the scan hides most of its cost.
    let ((mut carved, sha), early_walk) = rayon::join(
        || {
            rayon::join(
                || carve(&phys, &params),
                || opts.hash.then(|| crate::pipeline::image_hash(&phys)),
            )
        },
        || early.map(|p| crate::tables::walk_tables(&space, &kernel, p, &[])),
    );
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    let (mut tables, finds, table_warnings) = match (early_walk, late) {
        (Some(walked), _) => walked,
        (None, Some(prepared)) => {
            crate::tables::walk_tables(&space, &kernel, prepared, &carved.table_blocks)
        }
        (None, None) => (
            crate::tables::TablesReport::skipped("--no-tables"),
            None,
            vec![],
        ),
    };
    image.warnings.extend(table_warnings);
    crate::carve::merge_tables(&mut carved, finds.as_ref(), &params);
    crate::timings::mark("tcpip tables walked");
    if let Some(hash) = sha {
        hash.apply(&mut image);
    }
    image.warnings.extend(phys.decode_warnings());
    if carved.corrupt_omitted > 0 {
        image.warnings.push(format!(
            "--include-corrupt: {} corrupt candidates found; the first {} by physical offset are \
             listed, {} more are only counted (corrupt_omitted)",
            carved.corrupt.len() as u64 + carved.corrupt_omitted,
            carved.corrupt.len(),
            carved.corrupt_omitted
        ));
    }
    image
        .warnings
        .extend(carved.health.iter().flat_map(|h| h.warnings()));
    tables.only_in_tables = carved.tables.only_in_tables;
    tables.undecodable = carved.tables.undecodable;
    Ok(ScanOutput {
        image,
        tables,
        profile: ProfileUse {
            name: profile.name.clone(),
            reason,
            selection,
            calibration: carved.calibration,
            health: carved.health,
        },
        endpoints: carved.endpoints,
        corrupt: carved.corrupt,
        corrupt_omitted: carved.corrupt_omitted,
    })
}
