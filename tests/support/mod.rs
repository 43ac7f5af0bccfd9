//! What the integration tests share: running the binary, scratch directories, synthesized images
//! (through the binary and through the library), the committed test data, the shared reference
//! tables, one RNG and SHA-256. Images laid out by hand are in `machine` (page tables, kernel) and
//! `containers` (container wrappers around them); `world` plants endpoint objects for the
//! library-level scan tests. Pool headers and little-endian fields come from
//! `netcarve::synth::builder`, so a hand-made object is encoded exactly as synth encodes it.
// Each test file is its own crate and uses only part of this module (the re-export included).
#![allow(dead_code, unused_imports)]

pub mod containers;
pub mod fixtures;
pub mod machine;
pub mod world;
pub mod xpress;

pub use netcarve::synth::rng::Rng;

use netcarve::profile::Profile;
use netcarve::synth::{Container, SynthOptions};
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The netcarve binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_netcarve");

/// A command running netcarve, for tests that add paths or pipes before running it.
pub fn command() -> Command {
    Command::new(BIN)
}

/// Runs netcarve with `args` to the end.
pub fn netcarve<S: AsRef<OsStr>>(args: &[S]) -> Output {
    command().args(args).output().expect("run netcarve")
}

/// Runs netcarve with `args`: (exit code, or -1 when a signal ended it; stdout; stderr).
pub fn run<S: AsRef<OsStr>>(args: &[S]) -> (i32, String, String) {
    let o = netcarve(args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Panics with `what` and the command's stderr unless it exited 0.
pub fn assert_success(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A run of netcarve that was watched while it ran.
pub struct Watched {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// Peak anonymous resident memory (heap, stacks) seen while polling, in KiB; 0 without /proc.
    pub peak_anon_kib: u64,
    /// How many times that memory was read.
    pub samples: u32,
}

/// A hang is a failure: every watched run must finish well inside this.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Anonymous resident memory of a running process, in KiB (Linux `/proc`; `None` elsewhere).
pub fn rss_anon_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs netcarve with `args`, sampling its heap every 2 ms, and kills it (failing the test) when
/// it outlives `DEADLINE`.
pub fn watch<S: AsRef<OsStr> + std::fmt::Debug>(args: &[S]) -> Watched {
    let started = Instant::now();
    let mut child = command()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start netcarve");
    // The pipes are drained on threads so that a chatty child cannot block on a full pipe.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            pipe.read_to_string(&mut s).ok();
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let (mut peak_anon_kib, mut samples) = (0, 0);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Some(kib) = rss_anon_kib(child.id()) {
            peak_anon_kib = peak_anon_kib.max(kib);
            samples += 1;
        }
        if started.elapsed() > DEADLINE {
            child.kill().ok();
            child.wait().ok();
            panic!("netcarve {args:?} did not finish in {DEADLINE:?} (hang)");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Watched {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
        elapsed: started.elapsed(),
        peak_anon_kib,
        samples,
    }
}

/// An empty directory for one test (`name` unique across the suite: tests run in parallel),
/// inside cargo's scratch space for integration tests so that nothing is left beside the sources.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A file or folder under the committed `testdata/`.
pub fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Hex SHA-256 of a file, computed here rather than by netcarve so that `--hash` is checked
/// against an independent digest.
pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(std::fs::read(path).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `netcarve synth ARGS --out OUT` (`out` being a `scratch` directory, or a path in one)
/// and returns the memory image it wrote (for VMware the `.vmem`, not its `.vmss`).
pub fn synth(out: &Path, args: &[&str]) -> PathBuf {
    let o = command()
        .arg("synth")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert_success(&o, &format!("synth {}", args.join(" ")));
    memory_image(out)
}

/// The memory image among the files synth wrote into `dir`.
pub fn memory_image(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name().is_some_and(|n| n == "hiberfil.sys")
                || p.file_stem().is_some_and(|s| s == "memory")
                    && p.extension().is_some_and(|e| e != "vmss" && e != "vmsn")
        })
        .unwrap_or_else(|| panic!("synth wrote no memory image into {}", dir.display()))
}

/// Library synth options with the tests' defaults: a 16 MiB image, PAE on x86, the profile's
/// representative build, no extra endpoints and no ISF.
pub fn synth_options(
    profile: &Profile,
    container: Container,
    seed: u64,
    out: &Path,
) -> SynthOptions {
    SynthOptions {
        profile: profile.clone(),
        container,
        seed,
        size: Some(16 << 20),
        pae: true,
        build: None,
        extra_endpoints: 0,
        isf_dir: None,
        out: out.to_path_buf(),
        time_field: Default::default(),
        tcpip_symbols: true,
        hide_build: false,
    }
}

/// The shared reference tables: `NETCARVE_REFERENCE`, else `../shared/reference` beside the
/// crate (where the project keeps them; they are not part of the repository). `None`, with a
/// note, when neither holds them; under `CI` that is a failure, so that a CI run cannot skip
/// the checks that depend on them.
pub fn reference_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("NETCARVE_REFERENCE").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference")),
    ];
    let found = candidates
        .into_iter()
        .flatten()
        .find(|c| c.join("endpoint-layouts.json").is_file());
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("reference tables not found (set NETCARVE_REFERENCE)");
        }
        eprintln!("note: reference tables not found (set NETCARVE_REFERENCE); skipping");
    }
    found
}

/// `netcarve scan IMAGE --format json --quiet EXTRA...`: (exit code, the JSON or null, stderr).
pub fn scan_json(image: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let mut args = vec!["scan".to_string(), image.display().to_string()];
    args.extend(["--format", "json", "--quiet"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let (code, stdout, stderr) = run(&args);
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (code, json, stderr)
}

/// `netcarve info IMAGE --format json EXTRA...`, which must succeed.
pub fn info_json(image: &Path, extra: &[&str]) -> serde_json::Value {
    let o = command()
        .arg("info")
        .arg(image)
        .args(["--format", "json"])
        .args(extra)
        .output()
        .unwrap();
    assert_success(&o, &format!("info --format json {}", image.display()));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `info`'s JSON and its text table for `image`, both of which must succeed.
pub fn info_json_and_text(image: &Path) -> (serde_json::Value, String) {
    let o = command().arg("info").arg(image).output().unwrap();
    assert_success(&o, &format!("info {}", image.display()));
    (
        info_json(image, &[]),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// A Python venv under cargo's target directory holding `package` from PyPI, created on first
/// use; `ready(venv)` says whether it is usable. `None` with a note when PyPI cannot be reached,
/// a failure under `CI` (which must run the independent check).
pub fn pypi_venv(name: &str, package: &str, ready: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let venv = target.join(name);
    if ready(&venv) {
        return Some(venv);
    }
    let installed = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .is_ok_and(|s| s.success())
        && Command::new(venv.join("bin").join("pip"))
            .args(["install", "-q", package])
            .status()
            .is_ok_and(|s| s.success());
    if installed && ready(&venv) {
        return Some(venv);
    }
    skip_or_fail(&format!(
        "could not install {package} from PyPI into target/{name}"
    ));
    None
}

/// A check that needs something this machine may lack: skipped with a note, failed under `CI`.
pub fn skip_or_fail(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("note: skipped: {why}");
}
