//! Cross-check with the independent writer: `netcarve info` on images written by `netcarve synth`
//! reports exactly the image facts in their `truth.json`, for each container and paging mode.
//! The two never share code for these facts (synth lays them out, the reader finds them), so a
//! misreading shows here instead of hiding in both directions at once.
mod support;

use support::{assert_success, netcarve, read_json, scratch};

const KEYS: [&str; 11] = [
    "container",
    "arch",
    "paging",
    "dtb",
    "kernel_base",
    "kernel_pdb",
    "nt",
    "system_time_raw",
    "boot_time_raw",
    "timezone_bias_minutes",
    "physical",
];

fn check(profile: &str, container: &str, extra: &[&str]) {
    let out = scratch(&format!(
        "foundation_synth/{profile}-{container}{}",
        extra.join("")
    ));
    let mut args = vec!["--profile", profile, "--container", container];
    args.extend(["--seed", "7", "--size", "32M"]);
    args.extend(extra);
    let image = support::synth(&out, &args);
    let truth = &read_json(&out.join("truth.json"))["image"];
    let image = image.to_str().unwrap();
    let o = netcarve(&["info", "--format", "json", image]);
    assert_success(&o, &format!("info {image}"));
    let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in KEYS {
        assert_eq!(
            got[key], truth[key],
            "{profile} {container} {extra:?}: {key}"
        );
    }
    assert_eq!(
        got["warnings"],
        serde_json::json!([]),
        "{profile} {container}"
    );
}

#[test]
fn x64_every_container() {
    for c in ["raw", "crashdump", "bitmap", "elf", "lime", "vmware"] {
        check("win10-19041-x64", c, &[]);
    }
}

#[test]
fn x86_pae_and_non_pae() {
    for c in ["raw", "crashdump", "bitmap"] {
        check("win7-x86", c, &[]);
    }
    check("win7-x86", "raw", &["--no-pae"]);
    check("vista-x86", "crashdump", &["--no-pae"]);
}

#[test]
fn older_x64_kernels() {
    check("win7-x64", "raw", &[]);
    check("win81-x64", "lime", &[]);
}
