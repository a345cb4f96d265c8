//! Guards the node's layering (ARCHITECTURE.md, `src/lib.rs` `# Layout`):
//! the top-level modules of `src/` import one another without a cycle, the
//! leaf modules import nothing of ours, and the layers below `http` know
//! nothing of axum. Test-only code (`#[cfg(test)] mod tests` blocks and the
//! `query::testchain` fixture) is outside the layers and not counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Files that are test-only modules (declared under `#[cfg(test)]`).
const TEST_ONLY_FILES: &[&str] = &["query/testchain.rs"];

/// The file's text without comments and without its `#[cfg(test)] mod
/// ... { }` block (by the house convention, a file's tests come last, so
/// everything from there on is test code).
fn production_text(text: &str) -> String {
    let mut cut = text.len();
    let mut from = 0;
    while let Some(i) = text[from..].find("#[cfg(test)]") {
        let at = from + i;
        let after = text[at + "#[cfg(test)]".len()..].trim_start();
        let decl = after.split('{').next().unwrap_or("");
        if after.contains('{') && !decl.contains(';') && decl.trim_start().starts_with("mod ") {
            cut = at;
            break;
        }
        from = at + 1;
    }
    text[..cut]
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names following `crate::` in `text`.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// Top-level module → the top-level modules its production code names,
/// and the production text of each module.
fn graph() -> (BTreeMap<String, BTreeSet<String>>, BTreeMap<String, String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let rel_text = rel.to_string_lossy().replace('\\', "/");
        if top == "lib" || top == "main" || TEST_ONLY_FILES.contains(&rel_text.as_str()) {
            continue;
        }
        let text = production_text(&std::fs::read_to_string(&f).unwrap());
        let refs = crate_refs(&text);
        let entry = deps.entry(top.clone()).or_default();
        entry.extend(refs.into_iter().filter(|r| *r != top));
        texts.entry(top).or_default().push_str(&text);
    }
    (deps, texts)
}

/// A path from `from` to `to` through `deps`, if there is one.
fn path(deps: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(p) = stack.pop() {
        let last = p.last().unwrap().clone();
        if last == to && p.len() > 1 {
            return Some(p);
        }
        if !seen.insert(last.clone()) {
            continue;
        }
        for next in deps.get(&last).into_iter().flatten() {
            let mut q = p.clone();
            q.push(next.clone());
            stack.push(q);
        }
    }
    None
}

#[test]
fn the_modules_of_src_import_each_other_without_a_cycle() {
    let (deps, _) = graph();
    assert!(deps.len() > 10, "the scan found the modules: {deps:?}");
    assert!(
        deps["http"].contains("service"),
        "the scan sees real imports: {deps:?}"
    );
    for module in deps.keys() {
        if let Some(cycle) = path(&deps, module, module) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_leaf_modules_import_nothing_of_ours() {
    let (deps, _) = graph();
    for leaf in ["types", "clock", "limiter"] {
        assert_eq!(
            deps.get(leaf),
            Some(&BTreeSet::new()),
            "{leaf} must import nothing of ours"
        );
    }
}

#[test]
fn the_layers_below_http_know_nothing_of_axum() {
    let (_, texts) = graph();
    for module in [
        "service", "mempool", "producer", "store", "query", "types", "clock",
    ] {
        let text = &texts[module];
        assert!(
            !text.contains("axum"),
            "{module} must not use axum (only http and raft::rpc do)"
        );
    }
}

#[test]
fn the_layers_go_top_down() {
    // Who may not import whom: a lower layer never names a higher one.
    let (deps, _) = graph();
    let order = [
        "commands", "node", "http", "service", "producer", "mempool", "store", "raft", "types",
    ];
    for (i, low) in order.iter().enumerate() {
        for high in &order[..i] {
            assert!(
                !deps.get(*low).is_some_and(|d| d.contains(*high)),
                "{low} imports {high}, a layer above it"
            );
        }
    }
}
