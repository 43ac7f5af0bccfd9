//! Embeds every `profiles/*.json` in the binary, so netcarve works offline with no extra files.
//! Adding a profile is dropping a file in `profiles/`; no code changes.
use std::{env, fs, path::Path};

fn main() {
    let dir = Path::new("profiles");
    println!("cargo:rerun-if-changed=profiles");
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut src = String::from(
        "/// (file name, JSON text) of every built-in profile, sorted by file name.\n",
    );
    src.push_str("pub static EMBEDDED_PROFILES: &[(&str, &str)] = &[\n");
    for n in &names {
        println!("cargo:rerun-if-changed=profiles/{n}");
        let abs = fs::canonicalize(dir.join(n)).expect("profile path");
        src.push_str(&format!(
            "    ({n:?}, include_str!({:?})),\n",
            abs.display().to_string()
        ));
    }
    src.push_str("];\n");
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("embedded_profiles.rs");
    fs::write(out, src).expect("write embedded_profiles.rs");
}
