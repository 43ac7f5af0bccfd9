//! Data flows one way through the modules (docs/internals.md): no module imports one that imports it
//! back. This reads the paths each source file names (`crate::a::b`, `super::a`) outside its unit
//! tests and fails on a cycle, at two levels: between the crate's top-level modules, and between
//! the files of one folder (a folder's `mod.rs` may use its files; a file may use its siblings
//! one way only).
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` → `[a, b]`, `src/a/mod.rs` → `[a]`; `None` for the crate root and the binary.
fn module_of(src: &Path, file: &Path) -> Option<Module> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Module = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    (!parts.is_empty() && parts != ["lib"] && parts != ["main"]).then_some(parts)
}

/// The code of a file without its comments and its trailing `#[cfg(test)] mod tests`.
fn production_code(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// Every `crate::…` and `super::…` path in `code`, resolved from `module` (whose file is a
/// `mod.rs` when `is_dir_module`).
fn named_paths(code: &str, module: &Module, is_dir_module: bool) -> Vec<Module> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut paths = vec![];
    for (start, _) in code.match_indices("::") {
        // The segment before this `::` must be `crate` or `super` starting a path.
        let before = &code[..start];
        let head_start = before.rfind(|c: char| !ident(c)).map_or(0, |i| i + 1);
        let head = &before[head_start..];
        if head != "crate" && head != "super" {
            continue;
        }
        if before[..head_start].ends_with("::") {
            continue;
        }
        let mut resolved: Module = if head == "crate" {
            vec![]
        } else {
            // `super` from a file `a/b.rs` is `a`; from `a/mod.rs` it is the crate root.
            let mut parent = module.clone();
            parent.pop();
            if is_dir_module {
                parent.clear();
            }
            parent
        };
        for segment in code[start + 2..].split("::") {
            let name: String = segment.chars().take_while(|&c| ident(c)).collect();
            let continues = segment.len() == name.len();
            if name.is_empty() {
                break;
            }
            resolved.push(name);
            if !continues {
                break;
            }
        }
        paths.push(resolved);
    }
    paths
}

/// The longest prefix of `path` that is a module.
fn owning_module(path: &Module, modules: &BTreeSet<Module>) -> Option<Module> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| modules.contains(prefix))
}

fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut vec![], &mut done))
}

struct Graph {
    top: BTreeMap<String, BTreeSet<String>>,
    /// Per folder: edges between its files (not its `mod.rs`).
    siblings: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

fn graph(src: &Path) -> Graph {
    let mut files = vec![];
    rust_files(src, &mut files);
    let sources: Vec<(Module, bool, String)> = files
        .iter()
        .filter_map(|f| {
            let module = module_of(src, f)?;
            let is_dir_module = f.file_name().is_some_and(|n| n == "mod.rs");
            Some((module, is_dir_module, std::fs::read_to_string(f).unwrap()))
        })
        .collect();
    let modules: BTreeSet<Module> = sources.iter().map(|(m, _, _)| m.clone()).collect();
    let mut g = Graph {
        top: BTreeMap::new(),
        siblings: BTreeMap::new(),
    };
    for (module, is_dir_module, text) in &sources {
        g.top.entry(module[0].clone()).or_default();
        for path in named_paths(&production_code(text), module, *is_dir_module) {
            let Some(target) = owning_module(&path, &modules) else {
                continue;
            };
            if target[0] != module[0] {
                g.top
                    .entry(module[0].clone())
                    .or_default()
                    .insert(target[0].clone());
            } else if module.len() == 2 && target.len() == 2 && target != *module {
                g.siblings
                    .entry(module[0].clone())
                    .or_default()
                    .entry(module[1].clone())
                    .or_default()
                    .insert(target[1].clone());
            } else if module.len() == 2 && target.len() == 1 && !is_dir_module {
                // A file using its folder's `mod.rs`, which declares (and may use) the file.
                g.siblings
                    .entry(module[0].clone())
                    .or_default()
                    .entry(module[1].clone())
                    .or_default()
                    .insert("mod".to_string());
            }
        }
    }
    g
}

#[test]
fn top_level_modules_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    assert!(g.top.contains_key("carve") && g.top.contains_key("scan"));
    if let Some(cycle) = find_cycle(&g.top) {
        panic!("modules import each other: {}", cycle.join(" -> "));
    }
}

/// Files of the carve folder use only the steps below them, and never its orchestration.
#[test]
fn carve_files_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    let carve = g.siblings.get("carve").expect("carve files use each other");
    for (file, uses) in carve {
        assert!(
            !uses.contains("mod"),
            "carve/{file}.rs uses carve/mod.rs, which runs it"
        );
    }
    if let Some(cycle) = find_cycle(carve) {
        panic!("carve files import each other: {}", cycle.join(" -> "));
    }
    assert!(carve["search"].contains("pool") && carve["decode"].contains("pool"));
}

#[test]
fn sibling_files_form_no_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (folder, mut edges) in graph(&src).siblings {
        // A file using its folder's shared helpers in `mod.rs` is a reference up, not a cycle
        // between files; the carve test above forbids it where the folder is a pipeline.
        for uses in edges.values_mut() {
            uses.remove("mod");
        }
        if let Some(cycle) = find_cycle(&edges) {
            panic!(
                "files of {folder}/ import each other: {}",
                cycle.join(" -> ")
            );
        }
    }
}

/// The checker itself: a planted cycle is found, and paths resolve as Rust resolves them.
#[test]
fn checker_finds_cycles_and_resolves_paths() {
    let module: Module = vec!["carve".into(), "decode".into()];
    let code = "use crate::carve::pool::{Candidate, PAGE_SIZE};\nlet x = super::search::f();\n";
    assert_eq!(
        named_paths(code, &module, false),
        vec![
            vec!["carve".to_string(), "pool".into()],
            vec!["carve".to_string(), "search".into(), "f".into()],
        ]
    );
    let root: Module = vec!["capture".into()];
    assert_eq!(
        named_paths("super::record::Hex", &root, true),
        vec![vec!["record".to_string(), "Hex".into()]]
    );
    assert_eq!(
        production_code("use a;\n// crate::x::y\n#[cfg(test)]\nmod tests {\nuse crate::z;\n}\n"),
        "use a;\n"
    );
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&edges), None);
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&edges),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
