//! The house's shape, read from `src/` as text: no module depends on itself through
//! others, and the domain never names the web framework or a database driver.
//!
//! A node is a top-level module (`src/accounts.rs` with `src/accounts/`), except under
//! `src/http/`, where each surface (`src/http/auth.rs`, `src/http/selfkey/`) is a node of
//! its own and `src/http/mod.rs` is `http`. An edge is a `crate::…` path, or under
//! `src/http/` a `super::…` one, outside comments. A parent naming its own submodules
//! (the router composing its surfaces) is how Rust nests modules, not a dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that hold the rules: they know nothing of HTTP or SQL.
const DOMAIN: &[&str] = &[
    "src/signin",
    "src/accounts",
    "src/sessions",
    "src/domain",
    "src/oidc",
    "src/crypto",
    "src/lifecycle",
];

/// What domain code must never name.
const FRAMEWORKS: &[&str] = &["axum", "sqlx", "rusqlite", "hyper"];

#[test]
fn no_module_depends_on_itself() {
    let graph = graph(&src());
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "import circles between modules:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn domain_modules_name_no_framework() {
    let mut found = Vec::new();
    for file in rust_files(&src()) {
        let rel = relative(&file);
        if !DOMAIN
            .iter()
            .any(|d| rel == format!("{d}.rs") || rel.starts_with(&format!("{d}/")))
        {
            continue;
        }
        for (n, line) in code_lines(&file) {
            for name in FRAMEWORKS {
                if names(&line, name) {
                    found.push(format!("{rel}:{n}: {name}: {}", line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "domain code naming a framework:\n{}",
        found.join("\n")
    );
}

/// The checker itself: a circle through two surfaces is found, and the parent naming
/// its child is not one.
#[test]
fn the_checker_finds_a_circle() {
    let mut graph = BTreeMap::new();
    let edge = |g: &mut BTreeMap<String, BTreeSet<String>>, a: &str, b: &str| {
        g.entry(a.to_owned()).or_default().insert(b.to_owned());
    };
    edge(&mut graph, "http/auth", "http/sessions");
    edge(&mut graph, "http/sessions", "http/lifecycle");
    edge(&mut graph, "config", "domain");
    assert_eq!(cycles(&graph), Vec::<String>::new());
    edge(&mut graph, "http/lifecycle", "http/auth");
    assert_eq!(
        cycles(&graph),
        vec![
            "http/auth -> http/sessions, http/lifecycle -> http/auth, http/sessions -> http/lifecycle"
                .to_owned()
        ]
    );
    assert_eq!(node_of("src/http/selfkey/extract.rs"), "http/selfkey");
    assert_eq!(node_of("src/http/mod.rs"), "http");
    assert_eq!(node_of("src/signin/siwe/message.rs"), "signin");
    assert_eq!(
        targets(
            "use crate::{accounts::X, sessions::{Device, Via}};",
            "signin"
        ),
        vec!["accounts".to_owned(), "sessions".to_owned()]
    );
    assert_eq!(
        targets(
            "use super::sessions::{TokenResponse, signed_in};",
            "http/auth"
        ),
        vec!["http/sessions".to_owned()]
    );
    assert!(!names("// axum::Router", "axum") || code("// axum::Router").is_empty());
    assert!(names("use axum::Json;", "axum"));
    assert!(!names("let taxum = 1;", "axum"));
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn relative(file: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    file.strip_prefix(root)
        .unwrap_or(file)
        .to_string_lossy()
        .replace('\\', "/")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src/") {
            let path = entry.expect("read src/").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The node a file (`src/…`, relative to the crate) belongs to; `None` for the crate's
/// roots.
fn node_of(rel: &str) -> String {
    let parts: Vec<&str> = rel.trim_start_matches("src/").split('/').collect();
    let stem = |s: &str| s.trim_end_matches(".rs").to_owned();
    match parts.as_slice() {
        ["http", "mod.rs"] => "http".to_owned(),
        ["http", rest @ ..] => format!("http/{}", stem(rest[0])),
        [first, ..] => stem(first),
        [] => String::new(),
    }
}

/// The lines outside comments, numbered from 1; a line's trailing comment is cut.
fn code_lines(file: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(file).expect("read a source file");
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, code(line)))
        .filter(|(_, line)| !line.trim().is_empty())
        .collect()
}

fn code(line: &str) -> String {
    let trimmed = line.trim_start();
    if trimmed.starts_with("//") {
        return String::new();
    }
    match line.find(" //") {
        Some(i) if !line[..i].contains('"') => line[..i].to_owned(),
        _ => line.to_owned(),
    }
}

/// Whether `line` names the crate `name` as a path (`name::`, `use name;`).
fn names(line: &str, name: &str) -> bool {
    let line = code(line);
    line.match_indices(name).any(|(i, _)| {
        let before = line[..i].chars().next_back();
        let after = &line[i + name.len()..];
        let starts = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        starts && (after.starts_with("::") || after.starts_with(';'))
    })
}

/// The nodes a line's paths lead to, seen from node `from`.
fn targets(line: &str, from: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (prefix, under_http) in [("crate::", false), ("super::", true)] {
        for (i, _) in line.match_indices(prefix) {
            let before = line[..i].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            if under_http && !from.starts_with("http/") {
                continue;
            }
            for path in first_segments(&line[i + prefix.len()..]) {
                let node = if under_http {
                    http_sibling(&path)
                } else if let Some(rest) = path.strip_prefix("http::") {
                    match rest.split("::").next() {
                        Some(m) if is_http_module(m) => format!("http/{m}"),
                        _ => "http".to_owned(),
                    }
                } else {
                    path.split("::").next().unwrap_or_default().to_owned()
                };
                if !node.is_empty() {
                    found.push(node);
                }
            }
        }
    }
    found
}

/// `super::x` seen from an http surface: its sibling `http/x`, or `http` itself.
fn http_sibling(path: &str) -> String {
    let first = path.split("::").next().unwrap_or_default();
    if is_http_module(first) {
        format!("http/{first}")
    } else {
        "http".to_owned()
    }
}

fn is_http_module(name: &str) -> bool {
    let http = src().join("http");
    http.join(format!("{name}.rs")).is_file() || http.join(name).is_dir()
}

/// The paths after a `crate::`: one, or each of a `{…}` group's, two segments deep.
fn first_segments(rest: &str) -> Vec<String> {
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut items = Vec::new();
        let mut item = String::new();
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(std::mem::take(&mut item));
                    continue;
                }
                _ => {}
            }
            item.push(c);
        }
        items.push(item);
        return items
            .iter()
            .map(|i| path_head(i.trim()))
            .filter(|p| !p.is_empty() && p != "self")
            .collect();
    }
    vec![path_head(rest)]
}

/// `a::b` of `a::b::c…`, or `a`.
fn path_head(path: &str) -> String {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let first = ident(path);
    match path[first.len()..].strip_prefix("::") {
        Some(rest) if !rest.starts_with('{') => {
            let second = ident(rest);
            if second.is_empty() {
                first
            } else {
                format!("{first}::{second}")
            }
        }
        _ => first,
    }
}

fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let rel = relative(&file);
        if rel == "src/lib.rs" || rel == "src/main.rs" {
            continue;
        }
        let from = node_of(&rel);
        // In a surface's folder (`http/selfkey/extract.rs`), `super::` is the surface
        // itself and `super::super::` is `http`.
        let nested = rel.starts_with("src/http/")
            && rel.matches('/').count() > 2
            && !rel.ends_with("/mod.rs");
        for (_, line) in code_lines(&file) {
            let line = if nested {
                line.replace("super::super::", "\u{0}")
                    .replace("super::", "self::")
                    .replace('\u{0}', "super::")
            } else {
                line
            };
            for to in targets(&line, &from) {
                let parent_to_child = to.strip_prefix(&format!("{from}/")).is_some();
                if to != from && !parent_to_child {
                    graph.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    graph
}

/// Every group of modules that depend on each other, as `a <-> b <-> …` with the
/// edges inside it: modules each reachable from the other.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(node) = todo.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|n| (n, reach(n))).collect();
    let mut groups = BTreeSet::new();
    for (node, seen) in &reachable {
        let group: BTreeSet<&String> = seen
            .iter()
            .filter_map(|other| reachable.get_key_value(other).map(|(k, _)| *k))
            .filter(|other| reachable[other].contains(*node))
            .collect();
        if !group.is_empty() {
            let edges: Vec<String> = group
                .iter()
                .flat_map(|a| {
                    graph[*a]
                        .iter()
                        .filter(|b| group.contains(b))
                        .map(move |b| format!("{a} -> {b}"))
                })
                .collect();
            groups.insert(edges.join(", "));
        }
    }
    groups.into_iter().collect()
}
