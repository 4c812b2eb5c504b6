//! The crate's structure, checked on every run (docs/ARCHITECTURE.md, "Layers"): no import cycle
//! between top-level modules (`src/X.rs` or `src/X/` is one unit; every `crate::X` path counts,
//! grouped `use crate::{a, b::c}` lines included, inline `#[cfg(test)]` modules and comments not),
//! and no source file over 450 lines. The same rule as `../shared/tools/modcycles.py`, in Rust so
//! that CI needs nothing outside the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 450;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `text` without comments and without everything from an inline `#[cfg(test)] mod` on.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        out.push_str(code);
        out.push('\n');
    }
    let mut cut = out.len();
    for (at, _) in out.match_indices("#[cfg(test)]") {
        let rest = out[at + "#[cfg(test)]".len()..].trim_start();
        let Some(rest) = rest.strip_prefix("mod ") else { continue };
        let name_end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        if rest[name_end..].trim_start().starts_with('{') {
            cut = at;
            break;
        }
    }
    out.truncate(cut);
    out
}

/// The top-level modules each unit's code names.
fn dependencies(text: &str) -> BTreeSet<String> {
    let code = code_of(text);
    let mut deps = BTreeSet::new();
    let word = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    for (i, _) in code.match_indices("crate::") {
        let after = &code[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // `use crate::{a, b::{c, d}, e}`: the first segment of each top-level item.
            let (mut depth, mut item) = (1, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    ',' if depth == 1 => {
                        deps.insert(word(item.trim()));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 1 {
                    item.push(c);
                }
            }
            deps.insert(word(item.trim()));
        } else {
            deps.insert(word(after));
        }
    }
    deps.retain(|d| !d.is_empty());
    deps
}

/// Strongly connected sets of more than one unit (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for w in &s.g[v] {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s =
        State { g: graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), out: Vec::new() };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn unit_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy();
        let unit = first.trim_end_matches(".rs").to_string();
        if unit == "main" || unit == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap();
        graph.entry(unit).or_default().extend(dependencies(&text));
    }
    let units: BTreeSet<String> = graph.keys().cloned().collect();
    for (u, deps) in graph.iter_mut() {
        deps.retain(|d| units.contains(d) && d != u);
    }
    graph
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let graph = unit_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph.len() > 20, "found only {} units: is the scan broken?", graph.len());
    let found = cycles(&graph);
    assert!(found.is_empty(), "import cycles between top-level modules: {found:?}");
}

/// The modules everything else builds on use no other module of the crate.
#[test]
fn leaves_use_nothing_of_the_crate() {
    let graph = unit_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    for leaf in ["codec", "crypto", "layout", "process", "progress", "units"] {
        let deps = graph.get(leaf).unwrap_or_else(|| panic!("no module {leaf}"));
        assert!(deps.is_empty(), "{leaf} should be a leaf but uses {deps:?}");
    }
}

#[test]
fn the_cycle_check_finds_cycles() {
    let g = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    assert_eq!(cycles(&g(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])), [["a", "b", "c"]]);
    assert!(cycles(&g(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
    let deps = dependencies(
        "use crate::{alpha, beta::{x, y}, gamma::z};\n// crate::comment\nfn f() { crate::delta::g(); }\n#[cfg(test)]\nmod tests {\n use crate::omega;\n}\n",
    );
    assert_eq!(deps.into_iter().collect::<Vec<_>>(), ["alpha", "beta", "delta", "gamma"]);
}

#[test]
fn no_source_file_over_450_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches"] {
        if root.join(dir).is_dir() {
            rust_files(&root.join(dir), &mut files);
        }
    }
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > MAX_LINES).then(|| format!("{} ({n} lines)", f.strip_prefix(root).unwrap().display()))
        })
        .collect();
    assert!(long.is_empty(), "split these files (at most {MAX_LINES} lines each): {long:?}");
}
