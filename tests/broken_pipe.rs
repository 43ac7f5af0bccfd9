//! A closed pipe (`netcarve … | head`) ends every command quietly with the exit code it would have
//! returned: the reader chose to stop, nothing went wrong.
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs netcarve with its stdout a pipe whose reading end is closed before anything is written,
/// so every write fails with EPIPE; returns the exit code and stderr.
fn run_into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_netcarve"))
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const WIN7: &str = "testdata/win7-x64/memory.dmp";
const WIN7_CAPTURE: &str = "testdata/win7-x64/capture-netcarve.json";

#[test]
fn scan_in_every_format_ends_quietly() {
    for format in ["json", "jsonl", "table", "csv", "bodyfile", "timesketch"] {
        let (code, stderr) = run_into_closed_pipe(&["scan", WIN7, "--quiet", "--format", format]);
        assert_eq!(code, Some(0), "scan --format {format}: {stderr}");
        assert_eq!(stderr, "", "scan --format {format}");
    }
}

#[test]
fn compare_keeps_its_verdict_as_exit_code() {
    // The committed sample holds a connection hidden from the API: exit 1 whatever the format.
    for format in ["json", "table", "csv"] {
        let (code, stderr) =
            run_into_closed_pipe(&["compare", WIN7, "--live", WIN7_CAPTURE, "--format", format]);
        assert_eq!(code, Some(1), "compare --format {format}: {stderr}");
        assert!(
            !stderr.contains("pipe") && !stderr.contains("error"),
            "compare --format {format}: {stderr}"
        );
    }
}

#[test]
fn profile_and_info_end_quietly() {
    for args in [
        &["profile", "list"][..],
        &["profile", "list", "--format", "json"],
        &["profile", "show", "win7-x64"],
        &["info", WIN7],
        &["info", WIN7, "--format", "json"],
    ] {
        let (code, stderr) = run_into_closed_pipe(args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}

/// Other write errors still fail loudly: a full disk is not the reader's choice.
#[test]
fn a_full_device_is_an_error() {
    if !Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full on this system");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_netcarve"))
        .args(["profile", "list"])
        .stdout(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("<stdout>"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
