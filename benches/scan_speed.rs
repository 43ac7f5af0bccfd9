//! `cargo bench --bench scan_speed`: netcarve's scan against the memory-speed baseline, in one run.
//!
//! 1. Synthesizes (sparse-fast, non-zero noise) a raw image and a bitmap crash dump of the same content with
//!    thousands of planted endpoints, and checks every planted endpoint is found (recall at scale).
//! 2. Hot cache, interleaved, median of N runs: (a) memchr::memmem counting one tag over the same mmap
//!    with 2 threads; (b) `netcarve scan IMAGE --format json -o /dev/null` as a whole process with 2
//!    threads. Prints GB/s (median times) and the ratio b/a (the median of each round's ratio), for raw
//!    and bitmap.
//!    Then the cost of the endpoints themselves: the same-size raw image with only the base scenario's
//!    few dozen endpoints against the full one, each against memmem on itself in the same round.
//! 3. Cold cache (posix_fadvise DONTNEED): a sequential read of the file vs the scan.
//! 4. Scaling: `--threads 1` vs `--threads 2`.
//! 5. Peak anonymous memory (RssAnon, polled) of the scan on this image, on a 4x larger sparse one,
//!    and on the bitmap dump.
//! 6. Time to first output row on the committed sample.
//! 7. Optionally Volatility 3 (`NETCARVE_BENCH_VOL=path/to/vol`) on a small image, as a ratio.
//! 8. Compressed evidence (`compressed`): an E01 of the raw image (written by `ewfacquire`, when
//!    installed) and a hiberfil.sys of the same seed, each checked for recall, then the scan with 2
//!    threads against a decompress-only baseline (every block decoded through the same block store
//!    by 2 threads, one copy out per block), 1 thread against 2, and peak anonymous memory.
//!
//! Sizes: `NETCARVE_BENCH_GIB` (default 4), runs: `NETCARVE_BENCH_RUNS` (default 7).
use netcarve::bytes::ReadBytes;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_netcarve");

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median over rounds of `times[i] / baseline[i]`.
fn paired_ratio(times: &[f64], baseline: &[f64]) -> f64 {
    median(times.iter().zip(baseline).map(|(t, b)| t / b).collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Synthesizes into `dir` unless a previous run left the same image there.
fn synth(dir: &Path, container: &str, size_gib: u64, endpoints: u64) -> PathBuf {
    synth_with(dir, container, size_gib, endpoints, &[])
}

/// [`synth`] with more synth arguments.
fn synth_with(
    dir: &Path,
    container: &str,
    size_gib: u64,
    endpoints: u64,
    extra: &[&str],
) -> PathBuf {
    let stamp = dir.join("args");
    let args = format!("{container} {size_gib} {endpoints} {}", extra.join(" "));
    let args = args.trim_end().to_string();
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(args.as_str()) {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let t = Instant::now();
        run_ok(
            Command::new(BIN)
                .args([
                    "synth",
                    "--profile",
                    "win10-19041-x64",
                    "--container",
                    container,
                    "--seed",
                    "7",
                    "--size",
                    &format!("{size_gib}G"),
                    "--endpoints",
                    &endpoints.to_string(),
                ])
                .args(extra)
                .arg("--out")
                .arg(dir),
        );
        eprintln!(
            "synthesized {container} {size_gib} GiB in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        std::fs::write(&stamp, args).unwrap();
    }
    let image = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name().is_some_and(|n| n == "hiberfil.sys")
                || p.file_stem().is_some_and(|s| s == "memory")
                    && p.extension().is_some_and(|e| e != "vmss")
        })
        .expect("image in synth output");
    image
}

/// The baseline: count one 4-byte tag with memchr::memmem over the mmap, split over `threads`.
/// Returns (seconds of the search alone, seconds including open, mmap and munmap): a scan process
/// pays its mapping and teardown too, so the second is the like-for-like figure.
fn memmem_baseline(path: &Path, threads: usize) -> (f64, f64) {
    let whole = Instant::now();
    let file = std::fs::File::open(path).unwrap();
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let t = Instant::now();
    let chunk = map.len().div_ceil(threads);
    let total: usize = std::thread::scope(|s| {
        let handles: Vec<_> = map
            .chunks(chunk)
            .map(|c| s.spawn(move || memchr::memmem::find_iter(c, b"TcpE").count()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let secs = t.elapsed().as_secs_f64();
    drop(map);
    let with_mapping = whole.elapsed().as_secs_f64();
    assert!(total > 0);
    (secs, with_mapping)
}

/// `netcarve scan --format json` of `path` into `out` with `threads` workers, stderr captured.
fn scan_command(path: &Path, threads: usize, out: &str) -> Command {
    scan_command_with(path, threads, out, &[])
}

fn scan_command_with(path: &Path, threads: usize, out: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["scan", "--quiet", "--format", "json"])
        .args(extra)
        .arg("--threads")
        .arg(threads.to_string())
        .args(["-o", out])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Times a scan process (waiting on it, so the figure has no polling granularity).
fn scan_time(path: &Path, threads: usize) -> f64 {
    scan_time_with(path, threads, &[])
}

fn scan_time_with(path: &Path, threads: usize, extra: &[&str]) -> f64 {
    let t = Instant::now();
    let out = scan_command_with(path, threads, "/dev/null", extra)
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "scan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}

/// Runs a scan process, polling its RssAnon; returns (seconds, peak RssAnon in KiB).
fn scan_process(path: &Path, threads: usize, out: &str) -> (f64, u64) {
    let t = Instant::now();
    let mut child = scan_command(path, threads, out).spawn().unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(kib) = s
                .lines()
                .find(|l| l.starts_with("RssAnon:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            assert!(st.success(), "scan failed: {err}");
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    (t.elapsed().as_secs_f64(), peak)
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` has them.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn evict(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    // Dirty pages (a just-synthesized image) cannot be dropped: write them back first.
    let _ = f.sync_data();
    // SAFETY: plain syscall on an open descriptor.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

fn sequential_read(path: &Path) -> f64 {
    let t = Instant::now();
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 8 << 20];
    while f.read(&mut buf).unwrap() > 0 {}
    t.elapsed().as_secs_f64()
}

/// The page-cache layouts a hot scan can meet. The kernel's cost of mapping cached file pages (and
/// of unmapping them) is per folio, so the same hot file scans at very different speeds depending
/// on how its pages came into the cache; each state is produced from an empty cache so that a run
/// measures a known one.
#[derive(Copy, Clone)]
enum CacheState {
    /// A sequential read with readahead, as after copying or acquiring the image: on kernels with
    /// large-folio page caches (ext4 since 6.16, xfs) the pages arrive as large folios.
    Sequential,
    /// `POSIX_FADV_RANDOM` reads: readahead off, every page cached as its own 4 KiB folio (as after
    /// scattered reads, or on older kernels).
    Pages4K,
}

impl CacheState {
    fn label(self) -> &'static str {
        match self {
            CacheState::Sequential => "sequential",
            CacheState::Pages4K => "4k-pages",
        }
    }

    /// Evicts `path` from the page cache and reads it back in this state.
    fn prepare(self, path: &Path) {
        use std::os::fd::AsRawFd;
        evict(path);
        match self {
            CacheState::Sequential => {
                sequential_read(path);
            }
            CacheState::Pages4K => {
                let mut f = std::fs::File::open(path).unwrap();
                // SAFETY: plain syscall on an open descriptor.
                unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
                let mut buf = vec![0u8; 1 << 20];
                while f.read(&mut buf).unwrap() > 0 {}
            }
        }
    }
}

/// Whether `NETCARVE_BENCH_ONLY` (a comma-separated list of sections) asks for `section`; all
/// sections run when it is unset.
fn wanted(section: &str) -> bool {
    std::env::var("NETCARVE_BENCH_ONLY")
        .map(|only| only.split(',').any(|s| s.trim() == section))
        .unwrap_or(true)
}

/// Scans `image` and checks it against `truth_dir/truth.json` (the bitmap dump shares the raw
/// image's physical content, hence its truth).
fn recall(truth_dir: &Path, image: &Path) {
    let dir = truth_dir;
    let out = image.with_extension("scan.json");
    run_ok(
        Command::new(BIN)
            .args(["scan", "--quiet", "--format", "json", "-o"])
            .arg(&out)
            .arg(image),
    );
    let scan: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("truth.json")).unwrap()).unwrap();
    let found: std::collections::HashSet<String> = scan["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.to_string())
        .collect();
    let planted = truth["endpoints"].as_array().unwrap();
    let missing = planted
        .iter()
        .filter(|e| !found.contains(&e.to_string()))
        .count();
    let decoys: std::collections::HashSet<String> = truth["decoys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["physical_offset"].to_string())
        .collect();
    let reported_decoys = scan["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| decoys.contains(&e["physical_offset"].to_string()))
        .count();
    println!(
        "recall {}: {} planted endpoints, {} found with every field equal, {} missing; {} decoys, {} reported",
        image.display(),
        planted.len(),
        planted.len() - missing,
        missing,
        decoys.len(),
        reported_decoys
    );
    assert_eq!(missing, 0, "planted endpoints missing from the scan");
    assert_eq!(reported_decoys, 0, "decoys reported");
}

/// A Windows bitmap crash dump (DUMP_HEADER64, DumpType 5, `FDMP` summary) of the raw image's
/// physical memory, as Windows writes them: every page except the all-zero ones, so the dump has
/// thousands of runs. Header facts come from the synthesizer's truth, not from netcarve's reader.
fn bitmap_of(raw: &Path, truth: &Path, dir: &Path) -> PathBuf {
    use std::io::{Seek, SeekFrom, Write};
    const PAGE: usize = 0x1000;
    let out = dir.join("memory.dmp");
    let stamp = dir.join("args");
    let raw_len = std::fs::metadata(raw).unwrap().len();
    let args = format!("{} {raw_len}", raw.display());
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(args.as_str()) && out.exists() {
        return out;
    }
    let t = Instant::now();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let truth: serde_json::Value = serde_json::from_slice(&std::fs::read(truth).unwrap()).unwrap();
    let image = &truth["image"];
    let hex = |v: &serde_json::Value| {
        u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    };
    let dtb = hex(&image["dtb"]);
    let build = image["nt"]["build"].as_u64().unwrap() as u32;
    let system_time = image["system_time_raw"].as_u64().unwrap();
    let pages = raw_len / PAGE as u64;

    let header_size = 0x2000usize;
    let bitmap_len = pages.div_ceil(8) as usize;
    let first_page = (header_size + 0x38 + bitmap_len).div_ceil(PAGE);
    let first_page = first_page * PAGE;
    let mut bitmap = vec![0u8; bitmap_len];
    let mut file = std::fs::File::create(&out).unwrap();
    file.seek(SeekFrom::Start(first_page as u64)).unwrap();
    let mut w = std::io::BufWriter::with_capacity(8 << 20, file);
    let mut src = std::fs::File::open(raw).unwrap();
    let mut buf = vec![0u8; 8 << 20];
    let (mut pfn, mut stored) = (0u64, 0u64);
    loop {
        let n = src.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert_eq!(n % PAGE, 0, "short read");
        for page in buf[..n].chunks_exact(PAGE) {
            if page.iter().any(|&b| b != 0) {
                bitmap[(pfn / 8) as usize] |= 1 << (pfn % 8);
                w.write_all(page).unwrap();
                stored += 1;
            }
            pfn += 1;
        }
    }
    let mut file = w.into_inner().unwrap();

    let mut head = b"PAGE".repeat(header_size / 4);
    let put32 =
        |h: &mut Vec<u8>, at: usize, v: u32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put64 =
        |h: &mut Vec<u8>, at: usize, v: u64| h[at..at + 8].copy_from_slice(&v.to_le_bytes());
    head[0..8].copy_from_slice(b"PAGEDU64");
    put32(&mut head, 0x8, 0xF);
    put32(&mut head, 0xC, build);
    put64(&mut head, 0x10, dtb);
    put32(&mut head, 0x30, 0x8664);
    put32(&mut head, 0x34, 2);
    // PhysicalMemoryBlock: one run over all of memory, as on a real bitmap dump.
    put32(&mut head, 0x88, 1);
    put32(&mut head, 0x8C, 0);
    put64(&mut head, 0x90, pages);
    put64(&mut head, 0x98, 0);
    put64(&mut head, 0xA0, pages);
    put32(&mut head, 0xF98, 5);
    put64(&mut head, 0xFA0, first_page as u64 + stored * PAGE as u64);
    put64(&mut head, 0xFA8, system_time);
    let mut summary = vec![0u8; first_page - header_size];
    summary[0..4].copy_from_slice(b"FDMP");
    summary[4..8].copy_from_slice(b"DUMP");
    summary[0x20..0x28].copy_from_slice(&(first_page as u64).to_le_bytes());
    summary[0x28..0x30].copy_from_slice(&stored.to_le_bytes());
    summary[0x30..0x38].copy_from_slice(&pages.to_le_bytes());
    summary[0x38..0x38 + bitmap_len].copy_from_slice(&bitmap);
    file.seek(SeekFrom::Start(0)).unwrap();
    file.write_all(&head).unwrap();
    file.write_all(&summary).unwrap();
    file.sync_all().unwrap();
    std::fs::write(&stamp, args).unwrap();
    eprintln!(
        "wrote a bitmap dump of {} ({} of {} pages stored) in {:.1} s",
        raw.display(),
        stored,
        pages,
        t.elapsed().as_secs_f64()
    );
    out
}

/// A `size_gib` raw image whose first bytes are `raw` and the rest a hole (no disk blocks): the
/// memory test needs a large image, not a slow one to write.
fn sparse_copy(raw: &Path, out: &Path, size_gib: u64) -> PathBuf {
    let size = size_gib << 30;
    if std::fs::metadata(out).is_ok_and(|m| m.len() == size) {
        return out.to_path_buf();
    }
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let mut src = std::fs::File::open(raw).unwrap();
    let mut dst = std::fs::File::create(out).unwrap();
    std::io::copy(&mut src, &mut dst).unwrap();
    dst.set_len(size).unwrap();
    out.to_path_buf()
}

fn time_to_first_row(sample: &Path) -> f64 {
    let t = Instant::now();
    let mut child = Command::new(BIN)
        .args(["scan", "--quiet", "--format", "jsonl"])
        .arg(sample)
        .stdout(Stdio::piped())
        // Reading stops at the first row, so the rest of the output meets a closed pipe.
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let _ = child.wait();
    assert!(!line.is_empty(), "no output row");
    secs
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: only run when benchmarking.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let gib = env_num("NETCARVE_BENCH_GIB", 4);
    let runs = env_num("NETCARVE_BENCH_RUNS", 7) as usize;
    let endpoints = env_num("NETCARVE_BENCH_ENDPOINTS", 5000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let raw = synth(&root.join("raw"), "raw", gib, endpoints);
    let bitmap = bitmap_of(&raw, &root.join("raw/truth.json"), &root.join("bitmap"));
    if wanted("recall") {
        recall(&root.join("raw"), &raw);
        recall(&root.join("raw"), &bitmap);
    }

    println!(
        "\nmachine: {} cores, load average {} (other processes compete for the cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    if wanted("hot") {
        println!("\nhot cache, median of {runs} interleaved runs, 2 threads");
        println!(
            "{:<10} {:<11} {:>8} {:>11} {:>14} {:>8} {:>9} {:>14} {:>8}",
            "container",
            "page cache",
            "size",
            "memmem",
            "netcarve scan",
            "ratio",
            "target",
            "memmem+mmap",
            "ratio"
        );
        for (name, image) in [("raw", &raw), ("bitmap", &bitmap)] {
            for state in [CacheState::Sequential, CacheState::Pages4K] {
                let size = std::fs::metadata(image).unwrap().len() as f64;
                state.prepare(image);
                let (mut a, mut m, mut b) = (vec![], vec![], vec![]);
                for _ in 0..runs {
                    let (search, with_mapping) = memmem_baseline(image, 2);
                    a.push(search);
                    m.push(with_mapping);
                    b.push(scan_time(image, 2));
                }
                // Ratios are taken within each round (the scan against the baseline timed just
                // before it), then the median: the host's memory speed drifts between rounds.
                let (ratio, ratio_mapped) = (paired_ratio(&b, &a), paired_ratio(&b, &m));
                let (a, m, b) = (median(a), median(m), median(b));
                println!(
                    "{:<10} {:<11} {:>5.2} GB {:>6.2} GB/s {:>9.2} GB/s {:>7.2}x {:>9} {:>9.2} GB/s {:>7.2}x",
                    name,
                    state.label(),
                    size / 1e9,
                    size / a / 1e9,
                    size / b / 1e9,
                    ratio,
                    "<= 1.15x",
                    size / m / 1e9,
                    ratio_mapped
                );
            }
        }
    }

    if wanted("endpoints") {
        endpoint_cost(&root, &raw, gib, runs);
    }

    if wanted("tables") {
        tables_cost(&root, &raw, gib, endpoints, runs);
    }
    if wanted("cold") {
        println!("\ncold cache (posix_fadvise DONTNEED before each run), median of {runs}");
        for (name, image) in [("raw", &raw), ("bitmap", &bitmap)] {
            let size = std::fs::metadata(image).unwrap().len() as f64;
            let (mut a, mut b) = (vec![], vec![]);
            for _ in 0..runs {
                evict(image);
                a.push(sequential_read(image));
                evict(image);
                b.push(scan_time(image, 2));
            }
            let ratio = paired_ratio(&b, &a);
            let (a, b) = (median(a), median(b));
            println!(
                "{:<10} read {:>7.2} GB/s   scan {:>7.2} GB/s   ratio {:>5.2}x (target <= 1.1x)",
                name,
                size / a / 1e9,
                size / b / 1e9,
                ratio
            );
        }
    }

    if wanted("scaling") {
        // In both page-cache states, with memmem's own scaling beside it: when the search is bound
        // by memory bandwidth rather than by the cores, no second thread doubles it.
        println!("\nscaling on the raw image, median of {runs} interleaved runs (target: netcarve 2 threads >= 1.7x 1 thread)");
        for state in [CacheState::Sequential, CacheState::Pages4K] {
            state.prepare(&raw);
            let (mut one, mut two, mut m1, mut m2) = (vec![], vec![], vec![], vec![]);
            for _ in 0..runs {
                one.push(scan_time(&raw, 1));
                two.push(scan_time(&raw, 2));
                m1.push(memmem_baseline(&raw, 1).0);
                m2.push(memmem_baseline(&raw, 2).0);
            }
            let (one, two, m1, m2) = (median(one), median(two), median(m1), median(m2));
            println!(
                "{:<11} netcarve 1 thread {:.3} s, 2 threads {:.3} s: {:.2}x   memmem 1 thread {:.3} s, 2 threads {:.3} s: {:.2}x",
                state.label(),
                one,
                two,
                one / two,
                m1,
                m2,
                m1 / m2
            );
        }
    }

    if wanted("memory") {
        let (_, rss) = scan_process(&raw, 2, "/dev/null");
        let big = sparse_copy(&raw, &root.join("big/memory.raw"), gib * 4);
        let (_, rss_big) = scan_process(&big, 2, "/dev/null");
        // 16 GiB of (mostly zero) cached pages would push everyone else's files out of the cache.
        evict(&big);
        // The bitmap dump of the same content: its page lookups must not need a table per run.
        let (_, rss_bitmap) = scan_process(&bitmap, 2, "/dev/null");
        println!(
            "\npeak RssAnon: {} GiB image {:.1} MiB, {} GiB image {:.1} MiB (target < 64 MiB); bitmap dump of the {} GiB image {:.1} MiB",
            gib,
            rss as f64 / 1024.0,
            gib * 4,
            rss_big as f64 / 1024.0,
            gib,
            rss_bitmap as f64 / 1024.0
        );
    }

    if wanted("first-row") {
        let sample =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/win10-19041-x64/memory.dmp");
        if sample.exists() {
            let mut t: Vec<f64> = (0..runs).map(|_| time_to_first_row(&sample)).collect();
            t.sort_by(|a, b| a.total_cmp(b));
            println!(
                "\ntime to first row on {}: median {:.3} s (target < 0.2 s)",
                sample.display(),
                median(t)
            );
        }
    }

    if wanted("compressed") {
        compressed(&root, &raw, gib, endpoints, runs);
    }

    println!("\nload average at the end: {}", load_average());

    if let (Ok(vol), true) = (std::env::var("NETCARVE_BENCH_VOL"), wanted("vol")) {
        bench_vol(&vol, &root);
    }
}

/// Splits the hot scan's time into the search and the endpoints: a raw image of the same size with
/// only the base scenario's endpoints, beside the full one, each timed against memmem on itself in
/// the same round (page cache read sequentially). What the full image costs beyond the few is the
/// per-endpoint work (decoding through the page tables, calibration, gathering, rendering), which
/// memmem does not do and which is the same however fast memory is.
fn endpoint_cost(root: &Path, full: &Path, gib: u64, runs: usize) {
    let few = synth(&root.join("few"), "raw", gib, 0);
    let planted = |image: &Path| -> usize {
        let truth = image.with_file_name("truth.json");
        let truth: serde_json::Value =
            serde_json::from_slice(&std::fs::read(truth).unwrap()).unwrap();
        truth["endpoints"].as_array().unwrap().len()
    };
    let images = [(planted(&few), few.as_path()), (planted(full), full)];
    for (_, image) in images {
        CacheState::Sequential.prepare(image);
    }
    // Per image: memmem search times, scan times.
    let mut times = [(vec![], vec![]), (vec![], vec![])];
    for _ in 0..runs {
        for (i, (_, image)) in images.iter().enumerate() {
            times[i].0.push(memmem_baseline(image, 2).0);
            times[i].1.push(scan_time(image, 2));
        }
    }
    println!(
        "\ncost of the endpoints: raw {gib} GiB images, page cache sequential, median of {runs} interleaved runs, 2 threads"
    );
    let size = std::fs::metadata(full).unwrap().len() as f64;
    for (i, (count, _)) in images.iter().enumerate() {
        let (a, b) = &times[i];
        println!(
            "{:>6} endpoints   memmem {:>6.2} GB/s   netcarve scan {:>6.2} GB/s   ratio {:>5.2}x",
            count,
            size / median(a.clone()) / 1e9,
            size / median(b.clone()) / 1e9,
            paired_ratio(b, a)
        );
    }
    // Each image's time beyond its own memmem search, full minus few, round by round.
    let beyond = |i: usize, round: usize| times[i].1[round] - times[i].0[round];
    let extra = median((0..runs).map(|r| beyond(1, r) - beyond(0, r)).collect());
    let more = images[1].0.saturating_sub(images[0].0);
    println!(
        "the {} more endpoints: {:.1} ms more wall time ({:.2} us each on 2 threads); the few-endpoint row is the search with the scan's fixed costs",
        more,
        extra * 1e3,
        extra * 1e6 / more.max(1) as f64
    );
}

/// What the walk of tcpip's tables costs: whole scan processes with and without it (`--no-tables`),
/// interleaved, on the 4 GiB image (built-in symbols) and on one whose tcpip has no known symbols
/// (the pool-tag route, whose block tags the search then collects too).
fn tables_cost(root: &Path, full: &Path, gib: u64, endpoints: u64, runs: usize) {
    let no_symbols = synth_with(
        &root.join("no-symbols"),
        "raw",
        gib,
        endpoints,
        &["--no-tcpip-symbols"],
    );
    println!(
        "
cost of the table walk: raw {gib} GiB images, page cache sequential, median of {runs} interleaved runs, 2 threads"
    );
    for (label, image) in [
        ("builtin-symbols", full),
        ("pool-tags", no_symbols.as_path()),
    ] {
        CacheState::Sequential.prepare(image);
        let json = root.join("tables-scan.json");
        run_ok(&mut scan_command(image, 2, json.to_str().unwrap()));
        let scanned: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        let route = scanned["tables"]["route"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        assert_eq!(route, label, "the image takes the route it is for");
        let linked = scanned["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["linked"] == true)
            .count();
        let (mut with, mut without) = (vec![], vec![]);
        for _ in 0..runs {
            without.push(scan_time_with(image, 2, &["--no-tables"]));
            with.push(scan_time(image, 2));
        }
        println!(
            "{label:<16} {linked:>5} linked   scan --no-tables {:.3} s   scan {:.3} s   ratio {:.3}x (target <= 1.05x)",
            median(without.clone()),
            median(with.clone()),
            paired_ratio(&with, &without)
        );
    }
}

/// Volatility 3 netscan vs netcarve scan on a small image (Volatility needs its ISF: synth --isf-dir).
fn bench_vol(vol: &str, root: &Path) {
    let dir = root.join("vol");
    let _ = std::fs::remove_dir_all(&dir);
    run_ok(
        Command::new(BIN)
            .args([
                "synth",
                "--profile",
                "win10-19041-x64",
                "--container",
                "raw",
                "--size",
                "256M",
                "--seed",
                "7",
                "--isf-dir",
            ])
            .arg(dir.join("isf"))
            .arg("--out")
            .arg(&dir),
    );
    let image = dir.join("memory.raw");
    CacheState::Sequential.prepare(&image);
    let t = Instant::now();
    run_ok(
        Command::new(vol)
            .args(["-q", "--offline", "-r", "json", "-s"])
            .arg(dir.join("isf"))
            .arg("-f")
            .arg(&image)
            .arg("windows.netscan"),
    );
    let v = t.elapsed().as_secs_f64();
    let n = scan_time(&image, 2);
    println!(
        "\nVolatility 3 netscan {:.2} s, netcarve scan {:.3} s on 256 MiB: netcarve {:.0}x faster",
        v,
        n,
        v / n
    );
}

/// Decodes every block of a compressed image with `threads` threads, through the block store the
/// scan reads from: what the scan cannot avoid paying. Returns the whole time, open included.
fn decode_baseline(path: &Path, threads: usize) -> f64 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let t = Instant::now();
    let space = netcarve::container::PhysicalSpace::open(path).unwrap();
    let runs = space.runs().to_vec();
    let next = AtomicUsize::new(0);
    let bytes: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut buf = vec![0u8; 1 << 20];
                    let mut done = 0u64;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(run) = runs.get(i) else { break };
                        let part = &mut buf[..run.len.min(1 << 20) as usize];
                        if space.read_into(run.phys, part) {
                            done += part.len() as u64;
                        }
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert!(bytes > 0);
    t.elapsed().as_secs_f64()
}

/// E01 and hiberfil.sys of the bench's machine: recall, scan against decoding, scaling, memory.
fn compressed(root: &Path, raw: &Path, gib: u64, endpoints: u64, runs: usize) {
    let mut images: Vec<(&str, PathBuf, PathBuf)> = vec![];
    let tool = Path::new("/usr/bin/ewfacquire");
    if tool.exists() {
        let dir = root.join("e01");
        let first = dir.join("mem.E01");
        let stamp = dir.join("args");
        let args = format!(
            "{} {}",
            raw.display(),
            std::fs::metadata(raw).unwrap().len()
        );
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(args.as_str()) {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let t = Instant::now();
            run_ok(
                Command::new(tool)
                    .args(["-u", "-t"])
                    .arg(dir.join("mem"))
                    .args(["-f", "encase6", "-c", "deflate:fast", "-S", "4GiB"])
                    .arg(raw),
            );
            eprintln!(
                "ewfacquire wrote the E01 in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            std::fs::write(&stamp, args).unwrap();
        }
        images.push(("e01", first, root.join("raw")));
    } else {
        println!("\ncompressed: no ewfacquire (apt-get install ewf-tools): E01 row skipped");
    }
    let hiber = synth(&root.join("hiber"), "hiberfil", gib, endpoints);
    images.push(("hiberfil", hiber, root.join("hiber")));
    for (_, image, truth) in &images {
        recall(truth, image);
    }
    println!(
        "\ncompressed evidence, hot cache, median of {runs} interleaved runs (targets: scan <= 1.15x decode-only, 2 threads >= 1.7x 1 thread, RssAnon < 64 MiB)"
    );
    for (name, image, _) in &images {
        let size = std::fs::metadata(raw).unwrap().len() as f64;
        sequential_read(image);
        let (mut decode, mut two, mut one) = (vec![], vec![], vec![]);
        for _ in 0..runs {
            decode.push(decode_baseline(image, 2));
            two.push(scan_time(image, 2));
            one.push(scan_time(image, 1));
        }
        let ratio = paired_ratio(&two, &decode);
        let scaling = paired_ratio(&one, &two);
        let (_, rss) = scan_process(image, 2, "/dev/null");
        let (decode, two) = (median(decode), median(two));
        println!(
            "{:<9} {:>5.2} GB of memory   decode-only {:>6.2} GB/s   scan {:>6.2} GB/s   ratio {:>5.2}x   1->2 threads {:>5.2}x   RssAnon {:>6.1} MiB",
            name,
            size / 1e9,
            size / decode / 1e9,
            size / two / 1e9,
            ratio,
            scaling,
            rss as f64 / 1024.0
        );
    }
}
