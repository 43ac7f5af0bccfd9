//! A profile derived from one kernel's PDB, used on an image of another kernel, is a warning (in the
//! JSON and on stderr), not silence; on the matching kernel it is quiet.
mod support;

use support::{assert_success, netcarve as run, scratch, synth, testdata};

#[test]
fn pdb_profile_on_another_kernel_warns() {
    let dir = scratch("profile_mismatch");
    let d = dir.to_str().unwrap();
    let profile = format!("{d}/from-pdb.json");
    let fixture = testdata("pdb/ntkrnl_fixture.pdb");
    let fixture = fixture.to_str().unwrap();
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
    assert_success(&o, "profile from-pdb");
    let image = synth(
        &dir.join("image"),
        &[
            "--profile",
            "win10-19041-x64",
            "--container",
            "raw",
            "--size",
            "16M",
        ],
    );
    let image = image.to_str().unwrap();

    let o = run(&["scan", image, "--profile", &profile, "--format", "json"]);
    assert_success(&o, "scan with the PDB profile");
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
    let o = run(&["scan", image, "--format", "json"]);
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!out["image"]["warnings"]
        .to_string()
        .contains("offsets may not apply"));
}
