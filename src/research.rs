//! `netcarve research`: the zero-timestamp question over a corpus of image + capture pairs.
//! A pair becomes per-object rows (one per compare row, with the facts the hypothesis needs);
//! the aggregate per (build, tcpip version) is a plain count over those rows, so that any SQL
//! engine reading the JSONL reproduces it exactly (docs/research.md gives the query).
use crate::capture::{read_bounded, read_capture_with, CaptureOptions, Precision, TimeContext};
use crate::compare::{
    compare, load_memory_json, CompareOptions, MemoryProfile, MemorySide, ResearchCounts,
};
use crate::error::{Error, Result};
use crate::record::flag;
use crate::scan::{scan_image_in_pool, ScanOptions};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Manifests are lists of paths: anything larger is not one.
const MAX_MANIFEST_BYTES: u64 = 64 << 20;

/// One image (or scan JSON) and the captures taken beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    pub id: String,
    pub image: PathBuf,
    pub captures: Vec<PathBuf>,
    pub capture_time: Option<u64>,
}

/// A manifest entry that could not become a pair (duplicate id, no capture): reported, skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub id: String,
    /// `missing` (no image or capture to pair) or `error` (a duplicate id).
    pub status: &'static str,
    pub error: String,
}

#[derive(Clone, Debug, Default)]
pub struct Corpus {
    pub pairs: Vec<Pair>,
    pub rejected: Vec<Rejected>,
    /// The corpus folder (folder convention): the output must not lie inside it.
    pub root: Option<PathBuf>,
}

/// A manifest (JSON Lines when its first non-blank byte is `{`, else CSV with a header) or a
/// folder whose subfolders each hold one pair. Relative paths are resolved against the
/// manifest's folder.
pub fn load_corpus(input: &Path, capture_glob: &str) -> Result<Corpus> {
    let meta = std::fs::metadata(input).map_err(|e| crate::error::io_error(input, &e))?;
    let mut corpus = if meta.is_dir() {
        from_folder(input, capture_glob)?
    } else {
        let bytes = read_bounded(input, MAX_MANIFEST_BYTES, "a manifest")?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|e| Error::file(input, format!("manifest is not UTF-8 ({e})")))?;
        let base = input.parent().unwrap_or(Path::new("."));
        let entries = if text.trim_start().starts_with('{') {
            parse_jsonl(text).map_err(|m| Error::file(input, m))?
        } else {
            parse_csv(text).map_err(|m| Error::file(input, m))?
        };
        let mut corpus = Corpus::default();
        for e in entries {
            let resolve = |p: &str| {
                let p = Path::new(p);
                if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    base.join(p)
                }
            };
            if e.captures.is_empty() {
                corpus.rejected.push(Rejected {
                    id: e.id,
                    status: "missing",
                    error: "manifest names no capture".into(),
                });
                continue;
            }
            corpus.pairs.push(Pair {
                image: resolve(&e.image),
                captures: e.captures.iter().map(|c| resolve(c)).collect(),
                capture_time: e.capture_time,
                id: e.id,
            });
        }
        corpus
    };
    // Ids name the part files: a second pair of the same id would overwrite the first's.
    let mut seen = BTreeSet::new();
    let mut pairs = vec![];
    for p in std::mem::take(&mut corpus.pairs) {
        if seen.insert(p.id.clone()) {
            pairs.push(p);
        } else {
            corpus.rejected.push(Rejected {
                id: p.id,
                status: "error",
                error: "duplicate pair id in the manifest (the first is used)".into(),
            });
        }
    }
    pairs.sort_by(|a, b| a.id.cmp(&b.id));
    corpus.pairs = pairs;
    Ok(corpus)
}

struct Entry {
    id: String,
    image: String,
    captures: Vec<String>,
    capture_time: Option<u64>,
}

fn parse_capture_time(s: &str) -> std::result::Result<u64, String> {
    crate::filetime::from_iso(s)
        .ok_or_else(|| format!("capture_time {s:?} is not ISO-8601 with Z or an offset"))
}

fn parse_jsonl(text: &str) -> std::result::Result<Vec<Entry>, String> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Line {
        id: String,
        image: String,
        capture: OneOrMany,
        #[serde(default)]
        capture_time: Option<String>,
    }
    let mut out = vec![];
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let l: Line =
            serde_json::from_str(line).map_err(|e| format!("manifest line {}: {e}", n + 1))?;
        let capture_time = l
            .capture_time
            .as_deref()
            .map(parse_capture_time)
            .transpose()
            .map_err(|e| format!("manifest line {}: {e}", n + 1))?;
        out.push(Entry {
            id: l.id,
            image: l.image,
            captures: match l.capture {
                OneOrMany::One(c) => vec![c],
                OneOrMany::Many(c) => c,
            },
            capture_time,
        });
    }
    Ok(out)
}

/// CSV with a header naming `id`, `image`, `capture` (several captures separated by `;`) and
/// optionally `capture_time`.
fn parse_csv(text: &str) -> std::result::Result<Vec<Entry>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| format!("manifest header: {e}"))?
        .clone();
    let col = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(id), Some(image), Some(capture)) = (col("id"), col("image"), col("capture")) else {
        return Err(
            "manifest is neither JSON Lines nor CSV with the columns id, image, capture".into(),
        );
    };
    let time = col("capture_time");
    let mut out = vec![];
    for (n, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| format!("manifest row {}: {e}", n + 2))?;
        let field = |i: usize| rec.get(i).unwrap_or("").to_string();
        let capture_time = match time.map(field).filter(|t| !t.is_empty()) {
            Some(t) => {
                Some(parse_capture_time(&t).map_err(|e| format!("manifest row {}: {e}", n + 2))?)
            }
            None => None,
        };
        out.push(Entry {
            id: field(id),
            image: field(image),
            captures: field(capture)
                .split(';')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect(),
            capture_time,
        });
    }
    Ok(out)
}

/// Each subfolder (sorted, hidden ones left out) is a pair named after it: its memory image
/// (`memory.*` but VMware's `.vmss`/`.vmsn`, `hiberfil.sys`, or a scan JSON `scan.json`) and
/// the captures matching `capture_glob`.
fn from_folder(root: &Path, capture_glob: &str) -> Result<Corpus> {
    let list = |dir: &Path| -> Result<Vec<PathBuf>> {
        let mut v = std::fs::read_dir(dir)
            .map_err(|e| crate::error::io_error(dir, &e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect::<Vec<_>>();
        v.sort();
        Ok(v)
    };
    let mut corpus = Corpus {
        root: Some(root.to_path_buf()),
        ..Default::default()
    };
    for dir in list(root)?.into_iter().filter(|p| p.is_dir()) {
        let Some(id) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if id.starts_with('.') {
            continue;
        }
        let files = list(&dir)?;
        let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        let images = files
            .iter()
            .filter(|p| {
                let n = name(p).unwrap_or_default();
                n == "hiberfil.sys"
                    || n == "scan.json"
                    || n.starts_with("memory.") && !n.ends_with(".vmss") && !n.ends_with(".vmsn")
            })
            .collect::<Vec<_>>();
        let captures = files
            .iter()
            .filter(|p| name(p).is_some_and(|n| glob_match(capture_glob, &n)))
            .cloned()
            .collect::<Vec<_>>();
        let problem = match (images.len(), captures.is_empty()) {
            (0, _) => Some("no memory image (memory.*, hiberfil.sys or scan.json)".to_string()),
            (1, true) => Some(format!("no capture matching {capture_glob:?}")),
            (1, false) => None,
            (n, _) => Some(format!("{n} memory images: one per folder")),
        };
        match problem {
            Some(error) => corpus.rejected.push(Rejected {
                id,
                status: "missing",
                error: format!("{}: {error}", dir.display()),
            }),
            None => corpus.pairs.push(Pair {
                id,
                image: images[0].clone(),
                captures,
                capture_time: None,
            }),
        }
    }
    Ok(corpus)
}

/// `*` any run of characters, `?` one; everything else literal.
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative with one backtrack point: linear enough for file names, no recursion.
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// One JSONL row: a compare row of one pair (a memory object, a capture row, or both), or, with
/// `status` other than `ok`, a pair that could not be researched.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRow {
    pub pair_id: String,
    /// `ok`, `missing` (a file the pair names does not exist), `refused` (a capture of another
    /// host) or `error` (a file could not be read).
    pub status: String,
    pub error: Option<String>,
    pub image_sha256: Option<String>,
    pub build: Option<u32>,
    /// tcpip.sys FileVersion: found for NT 6.3 images only (`null` otherwise, and for scan JSONs).
    pub tcpip_version: Option<String>,
    pub capture_file: Option<String>,
    /// The layout kind of the memory object (`tcp_endpoint`, `tcp_listener`, `udp_endpoint`,
    /// `time_wait`); `null` for a capture row without a memory counterpart.
    pub kind: Option<String>,
    pub tag: Option<String>,
    pub proto: Option<String>,
    pub state: Option<String>,
    pub pool_status: Option<String>,
    /// `present`, `zero` or `absent` (no time field); `null` when there is no memory object.
    pub kernel_time: Option<String>,
    pub kernel_time_raw: Option<u64>,
    pub no_time_field: Option<bool>,
    /// A TCP connection object (TcpE, TTcb, TcTW): the hypothesis's subject.
    pub is_connection: Option<bool>,
    /// The scan's time-slot census for this object's kind: `null` when it did not run.
    pub census_decisive: Option<bool>,
    pub census_finding: Option<String>,
    /// The paired capture row's creation time is zero; `null` when unpaired or the capture
    /// format has no times.
    pub api_time_zero: Option<bool>,
    pub api_time_raw: Option<u64>,
    pub class: Option<String>,
    pub cause: Option<String>,
}

impl ObjectRow {
    pub fn failed(id: &str, status: &str, error: String) -> ObjectRow {
        ObjectRow {
            pair_id: id.to_string(),
            status: status.to_string(),
            error: Some(error),
            ..Default::default()
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct PairOptions {
    pub profile: Option<String>,
    pub allow_mismatch: bool,
}

/// The rows of one pair (a single failed row when it cannot be researched). Never panics on
/// what the files hold: every failure is that pair's row.
pub fn research_pair(pair: &Pair, opts: &PairOptions) -> Vec<ObjectRow> {
    let missing = std::iter::once(&pair.image)
        .chain(&pair.captures)
        .filter(|p| std::fs::symlink_metadata(p).is_err())
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>();
    if !missing.is_empty() {
        return vec![ObjectRow::failed(
            &pair.id,
            "missing",
            format!("missing: {}", missing.join(", ")),
        )];
    }
    isolated(&pair.id, || rows_of(pair, opts))
}

/// Runs one pair's work so that whatever happens stays that pair's row: an error is its `status`,
/// and a panic (a bug in netcarve, not a fact about the files) an `error` row saying so, instead
/// of ending the whole corpus.
fn isolated(
    id: &str,
    work: impl FnOnce() -> std::result::Result<Vec<ObjectRow>, (&'static str, String)>,
) -> Vec<ObjectRow> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(Ok(rows)) => rows,
        Ok(Err((status, e))) => vec![ObjectRow::failed(id, status, e)],
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".to_string());
            vec![ObjectRow::failed(
                id,
                "error",
                format!("netcarve failed on this pair (a bug; please report it): {what}"),
            )]
        }
    }
}

fn rows_of(
    pair: &Pair,
    opts: &PairOptions,
) -> std::result::Result<Vec<ObjectRow>, (&'static str, String)> {
    let err = |e: Error| ("error", e.to_string());
    let memory = match load_memory_json(&pair.image).map_err(err)? {
        Some(side) => side,
        None => {
            let scan_opts = ScanOptions {
                profile: opts.profile.clone(),
                hash: true,
                ..Default::default()
            };
            // Runs on the caller's pool: pairs and their scans share `--threads`.
            let scanned = scan_image_in_pool(&pair.image, &scan_opts).map_err(err)?;
            MemorySide {
                image: scanned.image,
                endpoints: scanned.endpoints,
                profile: MemoryProfile {
                    health: scanned.profile.health,
                },
                source: "image".into(),
            }
        }
    };
    let time = TimeContext {
        capture_tz_minutes: None,
        image_offset_minutes: memory.image.timezone_bias_minutes.map(|b| -b),
    };
    let captures = pair
        .captures
        .iter()
        .map(|p| read_capture_with(p, &CaptureOptions::default(), &time))
        .collect::<Result<Vec<_>>>()
        .map_err(err)?;
    let report = compare(
        &memory,
        &captures,
        &CompareOptions {
            tolerance_ticks: None,
            capture_time: pair.capture_time,
        },
    );
    if !opts.allow_mismatch {
        if let Some(c) = report
            .captures
            .iter()
            .find(|c| c.host_check.verdict == "mismatch")
        {
            return Err((
                "refused",
                format!(
                    "{}: does not belong to {}: {}",
                    c.file,
                    pair.image.display(),
                    c.host_check.evidence()
                ),
            ));
        }
    }
    let build = memory.image.nt.build;
    let tcpip_version = tcpip_version(pair, &memory);
    let census = |tag: &str| {
        memory
            .profile
            .health
            .iter()
            .find(|h| h.tags.iter().any(|t| t == tag))
    };
    let rows = report
        .rows
        .iter()
        .map(|r| {
            let m = r.memory.as_ref();
            let c = r.capture.as_ref();
            let health = m.and_then(|m| census(&m.tag));
            let timed = c.filter(|c| Precision::from_name(&c.precision) != Precision::None);
            ObjectRow {
                pair_id: pair.id.clone(),
                status: "ok".into(),
                error: None,
                image_sha256: memory.image.sha256.clone(),
                build,
                tcpip_version: tcpip_version.clone(),
                capture_file: Some(r.capture_file.clone()),
                kind: health.map(|h| h.kind.clone()),
                tag: m.map(|m| m.tag.clone()),
                proto: m.map(|m| m.proto).or(c.map(|c| c.proto)).map(serde_name),
                state: m
                    .and_then(|m| m.state)
                    .or(c.and_then(|c| c.state))
                    .map(|s| s.name().to_string()),
                pool_status: m.map(|m| serde_name(m.pool_status)),
                kernel_time: m.map(|m| kernel_time(m).to_string()),
                kernel_time_raw: m.and_then(|m| m.create_time_raw),
                no_time_field: m.map(|m| m.has_flag(flag::NO_TIME_FIELD)),
                is_connection: m.map(|m| matches!(m.tag.as_str(), "TcpE" | "TTcb" | "TcTW")),
                census_decisive: health.and_then(|h| h.census.as_ref()).map(|c| c.decisive),
                census_finding: health
                    .and_then(|h| h.census.as_ref())
                    .map(|c| c.finding.clone()),
                api_time_zero: timed.and_then(|c| c.create_time_raw).map(|t| t == 0),
                api_time_raw: c.and_then(|c| c.create_time_raw),
                class: Some(r.class.name().to_string()),
                cause: r.cause.map(|c| c.name().to_string()),
            }
        })
        .collect::<Vec<_>>();
    Ok(rows)
}

/// tcpip.sys FileVersion, which `ImageFacts` does not carry: the kernel identification finds it
/// for NT 6.3 only (where it selects the profile), so those images are identified once more.
/// `None` for scan JSONs and other releases.
fn tcpip_version(pair: &Pair, memory: &MemorySide) -> Option<String> {
    let nt = &memory.image.nt;
    if memory.source != "image" || (nt.major, nt.minor) != (6, 3) {
        return None;
    }
    crate::pipeline::open(&pair.image, None)
        .ok()
        .and_then(|o| o.kernel.tcpip_version)
}

/// An enum's name as the scan JSON spells it (`tcp`, `allocated`).
fn serde_name(v: impl Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// `absent` (the layout has no time field), `zero`, or `present`: as compare's research reads it.
fn kernel_time(m: &crate::record::EndpointRecord) -> &'static str {
    if m.has_flag(flag::NO_TIME_FIELD) {
        "absent"
    } else if m.create_time_raw.unwrap_or(0) == 0 || m.has_flag(flag::ZERO_TIME) {
        "zero"
    } else {
        "present"
    }
}

/// One line of the aggregated table: the counts over the `ok` rows of one (build, tcpip
/// version), each a plain filter (docs/research.md gives the SQL).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// `null` when the image's build is unknown.
    pub build: Option<u32>,
    pub tcpip_version: Option<String>,
    /// Distinct pair ids with at least one row.
    pub pairs: usize,
    /// Rows with a memory object (`kernel_time` not null).
    pub objects: usize,
    pub no_time_field: usize,
    pub api_zero_rows: usize,
    pub api_zero_unpaired: usize,
    pub api_zero_on_no_time_field: usize,
    pub api_zero_on_kernel_time_zero: usize,
    pub api_zero_on_kernel_time: usize,
    pub no_time_field_paired: usize,
    pub no_time_field_api_nonzero: usize,
    pub api_zero_not_tcp_connection: usize,
    /// `refuted` when a counter-example exists (api_zero_on_kernel_time +
    /// no_time_field_api_nonzero + api_zero_not_tcp_connection > 0), else `supported` when
    /// api_zero_on_no_time_field > 0, else `inconclusive`: compare's rule for one pair.
    pub verdict: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Aggregate {
    pub pairs: usize,
    pub pairs_ok: usize,
    /// Pairs reported and skipped: (id, status, error).
    pub failed: Vec<FailedPair>,
    pub rows: usize,
    pub groups: Vec<Group>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedPair {
    pub pair_id: String,
    pub status: String,
    pub error: String,
}

pub fn aggregate(rows: &[ObjectRow]) -> Aggregate {
    // (build, tcpip version) → the counts and the pair ids seen.
    type Groups<'a> = BTreeMap<(Option<u32>, Option<String>), (Group, BTreeSet<&'a str>)>;
    let mut groups: Groups = BTreeMap::new();
    let mut ids = BTreeSet::new();
    let mut ok_ids = BTreeSet::new();
    let mut failed = vec![];
    for r in rows {
        ids.insert(r.pair_id.as_str());
        if r.status != "ok" {
            failed.push(FailedPair {
                pair_id: r.pair_id.clone(),
                status: r.status.clone(),
                error: r.error.clone().unwrap_or_default(),
            });
            continue;
        }
        ok_ids.insert(r.pair_id.as_str());
        let build = r.build;
        let (g, pairs) = groups
            .entry((build, r.tcpip_version.clone()))
            .or_insert_with(|| {
                (
                    Group {
                        build,
                        tcpip_version: r.tcpip_version.clone(),
                        ..Default::default()
                    },
                    BTreeSet::new(),
                )
            });
        pairs.insert(r.pair_id.as_str());
        let kt = r.kernel_time.as_deref();
        let zero = r.api_time_zero == Some(true);
        let add = |n: &mut usize, yes: bool| *n += usize::from(yes);
        add(&mut g.objects, kt.is_some());
        add(&mut g.no_time_field, kt == Some("absent"));
        add(&mut g.api_zero_rows, zero);
        add(&mut g.api_zero_unpaired, zero && kt.is_none());
        add(
            &mut g.api_zero_on_no_time_field,
            zero && kt == Some("absent"),
        );
        add(
            &mut g.api_zero_on_kernel_time_zero,
            zero && kt == Some("zero"),
        );
        add(
            &mut g.api_zero_on_kernel_time,
            zero && kt == Some("present"),
        );
        add(
            &mut g.no_time_field_paired,
            kt == Some("absent") && r.api_time_zero.is_some(),
        );
        add(
            &mut g.no_time_field_api_nonzero,
            kt == Some("absent") && r.api_time_zero == Some(false),
        );
        add(
            &mut g.api_zero_not_tcp_connection,
            zero && matches!(kt, Some("absent" | "present")) && r.is_connection == Some(false),
        );
    }
    let groups = groups
        .into_values()
        .map(|(mut g, pairs)| {
            g.pairs = pairs.len();
            g.verdict = crate::compare::verdict(&ResearchCounts {
                api_zero_on_kernel_time: g.api_zero_on_kernel_time,
                no_time_field_api_nonzero: g.no_time_field_api_nonzero,
                api_zero_not_tcp_connection: g.api_zero_not_tcp_connection,
                api_zero_on_no_time_field: g.api_zero_on_no_time_field,
                ..Default::default()
            })
            .into();
            g
        })
        .collect();
    failed.sort_by(|a, b| (&a.pair_id, &a.status).cmp(&(&b.pair_id, &b.status)));
    Aggregate {
        pairs: ids.len(),
        pairs_ok: ok_ids.len(),
        failed,
        rows: rows.iter().filter(|r| r.status == "ok").count(),
        groups,
    }
}

/// The part file name for a pair id: the id itself when it is a plain file name, else its
/// plain characters and a hash, so that no id can name a path outside `--out`.
pub fn part_name(id: &str) -> String {
    let plain: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if plain == id && !id.is_empty() && !id.starts_with('.') {
        format!("{id}.jsonl")
    } else {
        use sha2::Digest;
        let h = sha2::Sha256::digest(id.as_bytes());
        let hex: String = h[..4].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}-{hex}.jsonl", plain.trim_start_matches('.'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic in one pair's work is that pair's `error` row, naming it a bug; errors keep their
    /// status; rows pass through.
    #[test]
    fn one_pair_failing_stays_that_pair_row() {
        let rows = isolated("p1", || panic!("index out of bounds"));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].pair_id, "p1");
        assert_eq!(rows[0].status, "error");
        let error = rows[0].error.as_deref().unwrap();
        assert!(
            error.contains("a bug") && error.contains("index out of bounds"),
            "{error}"
        );
        let rows = isolated("p2", || panic!("{} of {}", 3, 4));
        assert!(rows[0].error.as_deref().unwrap().contains("3 of 4"));
        let rows = isolated("p3", || Err(("refused", "another host".into())));
        assert_eq!(
            (rows[0].status.as_str(), rows[0].error.as_deref()),
            ("refused", Some("another host"))
        );
        let ok = ObjectRow {
            pair_id: "p4".into(),
            status: "ok".into(),
            ..Default::default()
        };
        assert_eq!(isolated("p4", || Ok(vec![ok.clone()])), vec![ok]);
    }

    #[test]
    fn globs() {
        assert!(glob_match("capture-netcarve.json", "capture-netcarve.json"));
        assert!(glob_match("capture-*.json", "capture-ps7.json"));
        assert!(!glob_match("capture-*.json", "capture-velociraptor.jsonl"));
        assert!(glob_match("*", ""));
        assert!(glob_match("c?p*", "cap-x"));
        assert!(!glob_match("a*b", "acbx"));
    }

    #[test]
    fn part_names_stay_in_the_folder() {
        assert_eq!(part_name("win7-1"), "win7-1.jsonl");
        for id in ["../x", "a/b", "", ".hidden", "é"] {
            let n = part_name(id);
            assert!(!n.contains('/') && !n.starts_with('.'), "{id} → {n}");
        }
        assert_ne!(part_name("a/b"), part_name("a_b"));
    }

    #[test]
    fn manifests_in_both_shapes() {
        let j = parse_jsonl(
            "{\"id\":\"a\",\"image\":\"a/m.raw\",\"capture\":[\"c1\",\"c2\"]}\n\n{\"id\":\"b\",\"image\":\"b\",\"capture\":\"c\",\"capture_time\":\"2024-05-01T12:00:00Z\"}\n",
        )
        .unwrap();
        assert_eq!(j.len(), 2);
        assert_eq!(j[0].captures, ["c1", "c2"]);
        assert!(j[1].capture_time.is_some());
        let c = parse_csv("id,image,capture\na, a/m.raw ,c1;c2\n").unwrap();
        assert_eq!(c[0].image, "a/m.raw");
        assert_eq!(c[0].captures, ["c1", "c2"]);
        assert!(parse_csv("x,y\n1,2\n").is_err());
        assert!(parse_jsonl("{\"id\":1}\n").is_err());
    }

    #[test]
    fn verdicts_follow_the_counts() {
        let row = |kt: &str, zero: Option<bool>, conn: bool| ObjectRow {
            pair_id: "p".into(),
            status: "ok".into(),
            build: Some(7601),
            kernel_time: Some(kt.into()),
            is_connection: Some(conn),
            api_time_zero: zero,
            ..Default::default()
        };
        let a = aggregate(&[
            row("absent", Some(true), true),
            row("present", Some(false), false),
        ]);
        assert_eq!(a.groups[0].verdict, "supported");
        let a = aggregate(&[row("absent", Some(true), false)]);
        assert_eq!(a.groups[0].verdict, "refuted");
        assert_eq!(a.groups[0].api_zero_not_tcp_connection, 1);
        let a = aggregate(&[
            row("zero", Some(true), false),
            ObjectRow::failed("q", "missing", "x".into()),
        ]);
        assert_eq!(a.groups[0].verdict, "inconclusive");
        assert_eq!((a.pairs, a.pairs_ok, a.failed.len()), (2, 1, 1));
        // An image whose build is unknown is its own group, null (first), never build 0.
        let unknown = ObjectRow {
            build: None,
            ..row("absent", Some(true), true)
        };
        let a = aggregate(&[row("absent", Some(true), true), unknown]);
        let builds: Vec<Option<u32>> = a.groups.iter().map(|g| g.build).collect();
        assert_eq!(builds, [None, Some(7601)]);
    }
}
