//! A profile derived from one kernel's PDB, used on an image of another kernel, is a warning (in the
//! JSON and on stderr), not silence; on the matching kernel it is quiet.
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_netcarve");

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

#[test]
fn pdb_profile_on_another_kernel_warns() {
    let dir = std::env::temp_dir().join(format!("netcarve-pdbwarn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let profile = format!("{d}/from-pdb.json");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/testdata/pdb/ntkrnl_fixture.pdb"
    );
    let o = run(&[
        "profile",
        "from-pdb",
        "--nt",
        fixture,
        "--base",
        "win10-19041-x64",
        "-o",
        &profile,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&[
        "synth",
        "--profile",
        "win10-19041-x64",
        "--container",
        "raw",
        "--size",
        "16M",
        "--out",
        d,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let image = format!("{d}/memory.raw");

    let o = run(&["scan", &image, "--profile", &profile, "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("D0A4C7E58BABE17B4C4C44205044422E-1"),
        "{stderr}"
    );
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let warnings = out["image"]["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("offsets may not apply")),
        "{warnings:?}"
    );

    // The built-in profile (no kernel PDB of its own) raises no such warning.
    let o = run(&["scan", &image, "--format", "json"]);
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!out["image"]["warnings"]
        .to_string()
        .contains("offsets may not apply"));
    let _ = std::fs::remove_dir_all(&dir);
}
