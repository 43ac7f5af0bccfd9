//! `netcarve research` over synthesized corpora: the aggregated table against DuckDB running the
//! SQL docs/research.md documents over rows.jsonl, resuming, determinism across thread counts,
//! and the bad pairs a manifest can name (missing files, another host's capture, bad manifests).
//!
//! DuckDB is installed from PyPI into `target/duckdb-venv`; without PyPI access the DuckDB check
//! fails when `CI` is set and is skipped with a note otherwise.
mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// 9 profiles over Windows 7, 8.1 (both tcpip.sys layouts), 10 and 11, x64 and x86, three seeds
/// each: 27 pairs.
const PROFILES: [&str; 9] = [
    "win7-x64",
    "win7-x86",
    "win81-x64",
    "win81-19935-x64",
    "win81-x86",
    "win10-14393-x86",
    "win10-19041-x64",
    "win11-22000-x64",
    "win11-22621-x64",
];

/// Synthesizes `PROFILES` × `seeds` into `root/<profile>-s<seed>`, a few at a time.
fn corpus(root: &Path, seeds: &[u64]) -> Vec<PathBuf> {
    let jobs: Vec<(String, u64)> = PROFILES
        .iter()
        .flat_map(|p| seeds.iter().map(move |&s| (p.to_string(), s)))
        .collect();
    let dirs: Vec<PathBuf> = jobs
        .iter()
        .map(|(p, s)| root.join(format!("{p}-s{s}")))
        .collect();
    std::thread::scope(|scope| {
        for chunk in jobs.chunks(jobs.len().div_ceil(4)) {
            scope.spawn(move || {
                for (p, s) in chunk {
                    let seed = s.to_string();
                    support::synth(
                        &root.join(format!("{p}-s{s}")),
                        &["--profile", p, "--seed", &seed, "--size", "16M"],
                    );
                }
            });
        }
    });
    dirs
}

fn research(args: &[&str]) -> (i32, String, String) {
    support::run(&[&["research"], args].concat())
}

fn read_rows(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn mtimes(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let t = std::fs::metadata(&p).unwrap().modified().unwrap();
            (p, t)
        })
        .collect();
    v.sort();
    v
}

/// The query in docs/research.md, verbatim.
fn documented_sql() -> String {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/research.md"))
            .unwrap();
    let start = doc
        .find("```sql\n")
        .expect("docs/research.md holds an SQL block")
        + 7;
    let len = doc[start..].find("```").unwrap();
    doc[start..start + len].to_string()
}

#[test]
fn corpus_table_equals_duckdb_over_the_jsonl() {
    let started = std::time::Instant::now();
    let root = support::scratch("research-corpus");
    let corpus_dir = root.join("corpus");
    let dirs = corpus(&corpus_dir, &[11, 12, 13]);
    assert!(dirs.len() >= 20);
    // A folder without a capture: reported and skipped, the others go on.
    std::fs::create_dir_all(corpus_dir.join("zz-broken")).unwrap();
    std::fs::copy(
        dirs[0].join("memory.raw"),
        corpus_dir.join("zz-broken/memory.raw"),
    )
    .unwrap();
    let synthesized = started.elapsed();

    let out = root.join("out");
    let corpus_arg = corpus_dir.to_str().unwrap();
    let out_arg = out.to_str().unwrap();
    let (code, json, err) = research(&[corpus_arg, "--out", out_arg, "--format", "json"]);
    assert_eq!(code, 1, "one pair skipped: {err}");
    assert!(err.contains("pair zz-broken missing"), "{err}");
    let agg: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(agg, support::read_json(&out.join("aggregate.json")));
    assert_eq!(agg["pairs"], 28);
    assert_eq!(agg["pairs_ok"], 27);
    let groups = agg["groups"].as_array().unwrap();
    let builds: Vec<u64> = groups
        .iter()
        .map(|g| g["build"].as_u64().unwrap())
        .collect();
    let mut distinct = builds.clone();
    distinct.dedup();
    assert_eq!(distinct, [7601, 9600, 14393, 19041, 22000, 22621]);
    let group = |b: u64| groups.iter().find(|g| g["build"] == b).unwrap();
    // Windows 7 and 8.1 TcpE have no time field and their API shows zero: the hypothesis holds;
    // Windows 10 and 11 have times, and only the kernel's own zero shows as zero.
    assert_eq!(group(7601)["pairs"], 6);
    // 8.1 is split by tcpip.sys FileVersion (x64 only: x86 does not look for it); synth picks a
    // version per seed below 6.3.9600.19935 for win81-x64.
    let win81 = |v: Value| -> u64 {
        groups
            .iter()
            .filter(|g| g["build"] == 9600 && g["tcpip_version"] == v)
            .map(|g| g["pairs"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(win81(Value::Null), 3);
    assert_eq!(win81(Value::from("6.3.9600.19935")), 3);
    let older = groups
        .iter()
        .filter(|g| g["build"] == 9600)
        .filter_map(|g| g["tcpip_version"].as_str())
        .filter(|v| v.starts_with("6.3.9600.1") && *v < "6.3.9600.19935")
        .count();
    assert!(older >= 1, "{groups:?}");
    for g in groups
        .iter()
        .filter(|g| g["build"] == 7601 || g["build"] == 9600)
    {
        assert_eq!(g["verdict"], "supported", "{g}");
        assert!(g["api_zero_on_no_time_field"].as_u64().unwrap() > 0);
    }
    for b in [19041, 22000, 22621] {
        assert_eq!(group(b)["verdict"], "inconclusive", "{b}");
        assert_eq!(group(b)["no_time_field"], 0);
    }
    let rows = read_rows(&out.join("rows.jsonl"));
    let ok = rows.iter().filter(|r| r["status"] == "ok").count();
    assert_eq!(agg["rows"], ok);
    assert!(rows
        .iter()
        .filter(|r| r["status"] == "ok")
        .all(|r| r["image_sha256"].as_str().is_some_and(|h| h.len() == 64)));
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["pair_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] <= w[1]),
        "rows sorted by pair id"
    );
    eprintln!(
        "research corpus: {} pairs, {} rows; synthesized in {:.1?}, researched by {:.1?}",
        agg["pairs_ok"],
        ok,
        synthesized,
        started.elapsed()
    );

    // Resumed: nothing researched again, same output, whatever the thread count.
    let parts = mtimes(&out.join("parts"));
    assert_eq!(parts.len(), 27);
    let (code2, json2, _) = research(&[
        corpus_arg,
        "--out",
        out_arg,
        "--format",
        "json",
        "--threads",
        "1",
    ]);
    assert_eq!((code2, &json2), (1, &json));
    assert_eq!(mtimes(&out.join("parts")), parts, "done pairs are skipped");
    let (code4, json4, _) =
        research(&[corpus_arg, "--out", out_arg, "--format", "json", "--force"]);
    assert_eq!((code4, &json4), (1, &json));
    let redone = mtimes(&out.join("parts"));
    assert!(
        redone
            .iter()
            .zip(&parts)
            .all(|(a, b)| a.0 == b.0 && a.1 != b.1),
        "--force redoes every pair"
    );
    let fresh = root.join("fresh");
    let (_, json3, _) = research(&[
        corpus_arg,
        "--out",
        fresh.to_str().unwrap(),
        "--format",
        "json",
        "--threads",
        "1",
    ]);
    assert_eq!(json3, json, "independent of thread count");
    assert_eq!(
        std::fs::read(fresh.join("rows.jsonl")).unwrap(),
        std::fs::read(out.join("rows.jsonl")).unwrap()
    );

    let Some(venv) = support::pypi_venv("duckdb-venv", "duckdb==2.0.1", |v| {
        v.join("bin/python").exists()
            && Command::new(v.join("bin/python"))
                .args(["-c", "import duckdb"])
                .status()
                .is_ok_and(|s| s.success())
    }) else {
        return;
    };
    let script = r#"
import duckdb, json, sys
con = duckdb.connect()
cur = con.execute(sys.stdin.read())
names = [d[0] for d in cur.description]
print(json.dumps({"duckdb": duckdb.__version__, "groups": [dict(zip(names, r)) for r in cur.fetchall()]}))
"#;
    let mut child = Command::new(venv.join("bin/python"))
        .args(["-c", script])
        .current_dir(&out)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(documented_sql().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    support::assert_success(&o, "duckdb over rows.jsonl");
    let duck: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(duck["groups"], agg["groups"], "DuckDB {}", duck["duckdb"]);
    eprintln!(
        "research corpus: DuckDB {} reproduces {} groups; {:.1?} in all",
        duck["duckdb"],
        groups.len(),
        started.elapsed()
    );
}

#[test]
fn manifest_pairs_missing_refused_and_bad_manifests() {
    let root = support::scratch("research-manifest");
    let a = root.join("ev/a");
    let b = root.join("ev/b");
    support::synth(
        &a,
        &["--profile", "win7-x64", "--seed", "21", "--size", "16M"],
    );
    support::synth(
        &b,
        &[
            "--profile",
            "win10-19041-x64",
            "--seed",
            "22",
            "--size",
            "16M",
        ],
    );
    let manifest = support::write(
        &root,
        "pairs.csv",
        b"id,image,capture\n\
          a,ev/a/memory.raw,ev/a/capture-netcarve.json;ev/a/capture-ps7.json\n\
          gone,ev/nowhere/memory.raw,ev/a/capture-netcarve.json\n\
          wrong,ev/b/memory.raw,ev/a/capture-netcarve.json\n",
    );
    let out = root.join("out");
    let (code, table, err) =
        research(&[manifest.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        table.contains("7601") && table.contains("supported"),
        "{table}"
    );
    assert!(
        err.contains("pair gone missing: missing: ") && err.contains("nowhere"),
        "{err}"
    );
    assert!(
        err.contains("pair wrong refused: ") && err.contains("does not belong to"),
        "{err}"
    );
    let rows = read_rows(&out.join("rows.jsonl"));
    let status = |id: &str| -> Vec<&str> {
        rows.iter()
            .filter(|r| r["pair_id"] == id)
            .map(|r| r["status"].as_str().unwrap())
            .collect()
    };
    assert_eq!(status("gone"), ["missing"]);
    assert_eq!(status("wrong"), ["refused"]);
    assert!(status("a").len() > 40 && status("a").iter().all(|s| *s == "ok"));
    // Two captures: rows of both.
    let files: std::collections::BTreeSet<&str> = rows
        .iter()
        .filter_map(|r| r["capture_file"].as_str())
        .map(|f| f.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    // Only the finished pair is kept for resuming.
    assert_eq!(std::fs::read_dir(out.join("parts")).unwrap().count(), 1);

    // The same as JSON Lines, with --allow-mismatch researching the other host's pair.
    let jsonl = support::write(
        &root,
        "pairs.jsonl",
        b"{\"id\": \"wrong\", \"image\": \"ev/b/memory.raw\", \"capture\": \"ev/a/capture-netcarve.json\"}\n",
    );
    let out2 = root.join("out2");
    let (code, _, err) = research(&[
        jsonl.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
        "--allow-mismatch",
    ]);
    assert_eq!(code, 0, "{err}");

    // A scan JSON in place of the image: the same rows, the hash from the scan.
    let scan = root.join("ev/scans/a.json");
    std::fs::create_dir_all(scan.parent().unwrap()).unwrap();
    let o = support::netcarve(&[
        "scan",
        a.join("memory.raw").to_str().unwrap(),
        "--hash",
        "--format",
        "json",
        "-o",
        scan.to_str().unwrap(),
    ]);
    support::assert_success(&o, "scan --hash");
    let from_scan = support::write(
        &root,
        "scan.jsonl",
        b"{\"id\": \"a\", \"image\": \"ev/scans/a.json\", \"capture\": \"ev/a/capture-netcarve.json\"}\n",
    );
    let out3 = root.join("out3");
    let (code, _, err) = research(&[from_scan.to_str().unwrap(), "--out", out3.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let scanned = read_rows(&out3.join("rows.jsonl"));
    let imaged: Vec<&Value> = rows
        .iter()
        .filter(|r| {
            r["pair_id"] == "a"
                && r["capture_file"]
                    .as_str()
                    .unwrap()
                    .ends_with("capture-netcarve.json")
        })
        .collect();
    assert_eq!(scanned.iter().collect::<Vec<_>>(), imaged);
    assert_eq!(
        scanned[0]["image_sha256"].as_str().unwrap(),
        support::sha256_file(&a.join("memory.raw"))
    );

    // Nothing readable, an unreadable manifest, --out beside evidence: one line, exit 2.
    let none = support::write(
        &root,
        "none.csv",
        b"id,image,capture\nx,ev/x.raw,ev/x.json\n",
    );
    let garbage = support::write(&root, "garbage.jsonl", b"{\"id\": \"a\"\n");
    let nocols = support::write(&root, "nocols.csv", b"name,path\na,b\n");
    let binary = support::write(&root, "binary.csv", b"\xff\xfe\x00id");
    let m = manifest.to_str().unwrap();
    let inside = a.join("results");
    for (args, needle) in [
        (
            vec![none.to_str().unwrap(), "--out", out.to_str().unwrap()],
            "no pair could be read",
        ),
        (
            vec![garbage.to_str().unwrap(), "--out", out.to_str().unwrap()],
            "manifest line 1",
        ),
        (
            vec![nocols.to_str().unwrap(), "--out", out.to_str().unwrap()],
            "neither JSON Lines nor CSV",
        ),
        (
            vec![binary.to_str().unwrap(), "--out", out.to_str().unwrap()],
            "not UTF-8",
        ),
        (vec![m, "--out", inside.to_str().unwrap()], "holds evidence"),
        (vec![m, "--out", a.to_str().unwrap()], "holds evidence"),
        (
            vec![m, "--out", a.join("memory.raw").to_str().unwrap()],
            "names an input",
        ),
        (vec![m, "--out", m], "names an input"),
    ] {
        let (code, _, err) = research(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(!inside.exists(), "nothing written next to evidence");
}
