//! The module table of docs/ARCHITECTURE.md, executed: every `crate::` path outside test code is an
//! edge between top-level modules; the test fails on an edge the table's "must not" column forbids
//! and on any cycle, naming the file and line of the import.
//!
//! The "must not" cell is read as a rule when it says `import `a`, `b`` (those are forbidden),
//! `import anything but `a`, `b`` (only those are allowed) or `import any other module`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One reference from a file of module `from` to top-level module `to`.
#[derive(Debug, Clone)]
struct Edge {
    from: String,
    to: String,
    at: String,
}

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

/// The text with its `#[cfg(test)] mod …` blocks blanked (their lines kept, so line numbers
/// still hold). Only an attribute that starts a line and is followed by a `mod` item counts, so
/// the words in a comment or a string hide nothing.
fn without_tests(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let found = rest.match_indices("#[cfg(test)]").find(|&(at, _)| {
            let line_start = rest[..at].rfind('\n').map_or(0, |i| i + 1);
            let after = rest[at + "#[cfg(test)]".len()..].trim_start();
            rest[line_start..at].trim().is_empty()
                && (after.starts_with("mod ") || after.starts_with("pub mod "))
        });
        let Some((at, _)) = found else { break };
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        // The block ends at the brace that closes its first `{`.
        let mut depth = 0usize;
        let mut end = item.len();
        for (i, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.extend(
            item[..end]
                .chars()
                .map(|c| if c == '\n' { '\n' } else { ' ' }),
        );
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The top-level names a `crate::{…}` group names; `group` starts at its `{`.
fn group_names(group: &str) -> Vec<String> {
    let mut depth = 0usize;
    let mut names = Vec::new();
    let mut word = String::new();
    let mut expect_name = true;
    for c in group.chars() {
        if c.is_alphanumeric() || c == '_' {
            if depth == 1 && expect_name {
                word.push(c);
            }
            continue;
        }
        if !word.is_empty() {
            names.push(std::mem::take(&mut word));
            expect_name = false;
        }
        match c {
            '{' => {
                depth += 1;
                expect_name = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect_name = true,
            _ => {}
        }
    }
    names
}

/// Every reference from a file to another top-level module: `crate::x`, `crate::{x, y}`, and a
/// `super::` chain that climbs to the crate root. A glob of the crate root (`crate::*`) is
/// reported as an edge to `*`, since it would hide every later path.
fn edges(src: &Path, modules: &BTreeSet<String>) -> Vec<Edge> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut out = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        // The file's module path: `x/y.rs` is x::y, `x/y/mod.rs` is x::y.
        let mut path: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if path.last().is_some_and(|l| l == "mod.rs") {
            path.pop();
        } else if let Some(l) = path.last_mut() {
            *l = l.trim_end_matches(".rs").to_string();
        }
        let from = path[0].clone();
        if !modules.contains(&from) {
            continue; // lib.rs, main.rs
        }
        let text = without_tests(&std::fs::read_to_string(&file).unwrap());
        let line_of = |i: usize| text[..i].matches('\n').count() + 1;
        let mut push = |to: String, i: usize| {
            if to != from && (to == "*" || modules.contains(&to)) {
                out.push(Edge {
                    from: from.clone(),
                    to,
                    at: format!("src/{}:{}", rel.display(), line_of(i)),
                });
            }
        };
        let named = |after: &str, i: usize, push: &mut dyn FnMut(String, usize)| {
            if after.starts_with('{') {
                for name in group_names(after) {
                    push(name, i);
                }
            } else if after.starts_with('*') {
                push("*".into(), i);
            } else {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                push(name, i);
            }
        };
        for (i, _) in text.match_indices("crate::") {
            named(&text[i + "crate::".len()..], i, &mut push);
        }
        for (i, _) in text.match_indices("super::") {
            if text[..i].ends_with("::") {
                continue; // inside a chain already counted
            }
            let mut k = 0;
            let mut rest = &text[i..];
            while let Some(r) = rest.strip_prefix("super::") {
                k += 1;
                rest = r;
            }
            if k == path.len() {
                named(rest, i, &mut push);
            }
        }
    }
    out
}

/// A rule of the "must not" column.
#[derive(Debug, Clone)]
enum Rule {
    Forbid(BTreeSet<String>),
    OnlyAllow(BTreeSet<String>),
}

fn backticked(cell: &str) -> BTreeSet<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The modules of the table, with the rule of each.
fn table(doc: &str) -> BTreeMap<String, Option<Rule>> {
    let section = doc
        .split("## Modules")
        .nth(1)
        .expect("ARCHITECTURE.md has a `## Modules` section");
    let mut out = BTreeMap::new();
    for line in section.lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() < 3 || cells[0] == "module" || cells[0].starts_with("---") {
            continue;
        }
        let must_not = cells[cells.len() - 1];
        let rule = if let Some(rest) = must_not.split("import anything but").nth(1) {
            let clause = rest.split(';').next().unwrap_or("");
            Some(Rule::OnlyAllow(backticked(clause)))
        } else if must_not.contains("import any other module") {
            Some(Rule::OnlyAllow(BTreeSet::new()))
        } else if let Some(rest) = must_not.split("import ").nth(1) {
            let clause = rest.split(';').next().unwrap_or("");
            Some(Rule::Forbid(backticked(clause)))
        } else {
            None
        };
        // Several modules in one row share its rule.
        for name in backticked(cells[0]) {
            out.insert(name, rule.clone());
        }
    }
    out
}

fn modules(src: &Path) -> BTreeSet<String> {
    std::fs::read_dir(src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lib.rs" && n != "main.rs")
        .filter(|n| !n.contains('.') || n.ends_with(".rs"))
        .map(|n| n.trim_end_matches(".rs").to_string())
        .collect()
}

/// A cycle through `start`, as the edges that make it, when one exists.
fn cycle_from(start: &str, graph: &BTreeMap<String, Vec<Edge>>) -> Option<Vec<Edge>> {
    fn walk(
        node: &str,
        start: &str,
        graph: &BTreeMap<String, Vec<Edge>>,
        seen: &mut BTreeSet<String>,
        path: &mut Vec<Edge>,
    ) -> bool {
        for e in graph.get(node).into_iter().flatten() {
            path.push(e.clone());
            if e.to == start {
                return true;
            }
            if seen.insert(e.to.clone()) && walk(&e.to, start, graph, seen, path) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = Vec::new();
    walk(start, start, graph, &mut BTreeSet::new(), &mut path).then_some(path)
}

#[test]
fn module_imports_follow_the_architecture_table() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mods = modules(&src);
    let doc = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let rules = table(&doc);
    let missing: Vec<&String> = mods.iter().filter(|m| !rules.contains_key(*m)).collect();
    assert!(
        missing.is_empty(),
        "top-level modules missing from ARCHITECTURE.md's module table: {missing:?}"
    );
    let all = edges(&src, &mods);
    let mut broken = Vec::new();
    for e in all.iter().filter(|e| e.to == "*") {
        broken.push(format!(
            "{}: a glob import of the crate root hides which modules `{}` uses; name them",
            e.at, e.from
        ));
    }
    for e in all.iter().filter(|e| e.to != "*") {
        let forbidden = match rules.get(&e.from) {
            Some(Some(Rule::Forbid(f))) => f.contains(&e.to),
            Some(Some(Rule::OnlyAllow(a))) => !a.contains(&e.to),
            _ => false,
        };
        if forbidden {
            broken.push(format!(
                "{}: `{}` imports `{}`, which ARCHITECTURE.md says it must not",
                e.at, e.from, e.to
            ));
        }
    }
    let mut graph: BTreeMap<String, Vec<Edge>> = BTreeMap::new();
    for e in all.iter().filter(|e| e.to != "*") {
        let out = graph.entry(e.from.clone()).or_default();
        if !out.iter().any(|o| o.to == e.to) {
            out.push(e.clone());
        }
    }
    for m in &mods {
        if let Some(cycle) = cycle_from(m, &graph) {
            let steps: Vec<String> = cycle
                .iter()
                .map(|e| format!("{} -> {} ({})", e.from, e.to, e.at))
                .collect();
            broken.push(format!("cycle: {}", steps.join(", ")));
            break;
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_reader_sees_grouped_and_inline_paths_and_skips_tests() {
    let text = "use crate::{a, b::{c, d}};\nfn f() { crate::e::g(); }\n#[cfg(test)]\nmod tests { use crate::h; }\n";
    let stripped = without_tests(text);
    assert!(!stripped.contains("crate::h"));
    // The words in a comment hide nothing.
    let commented = "// see #[cfg(test)] below\nuse crate::k;\n";
    assert!(without_tests(commented).contains("crate::k"));
    assert_eq!(stripped.lines().count(), text.lines().count());
    let open = text.find('{').unwrap();
    assert_eq!(group_names(&text[open..]), ["a", "b"]);
    let doc = "## Modules\n\n| module | owns | must not |\n|---|---|---|\n| `x`, `y` | things | import `z`; hold state |\n| `w` | w | import anything but `x` |\n| `v` | v | import any other module |\n| `u` | u | — |\n";
    let t = table(doc);
    assert!(matches!(&t["y"], Some(Rule::Forbid(f)) if f.contains("z") && f.len() == 1));
    assert!(matches!(&t["w"], Some(Rule::OnlyAllow(a)) if a.contains("x")));
    assert!(matches!(&t["v"], Some(Rule::OnlyAllow(a)) if a.is_empty()));
    assert!(t["u"].is_none());
}

#[test]
fn super_chains_that_reach_the_root_are_edges() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path();
    std::fs::create_dir_all(src.join("a/deep")).unwrap();
    std::fs::write(src.join("a/mod.rs"), "use super::c::X;\nuse super::*;\n").unwrap();
    std::fs::write(
        src.join("a/deep/mod.rs"),
        "use super::super::b::Y;\nuse super::Z;\n",
    )
    .unwrap();
    std::fs::write(src.join("b.rs"), "use crate::{\n    c,\n    a::Q,\n};\n").unwrap();
    std::fs::write(src.join("c.rs"), "").unwrap();
    let mods = modules(src);
    let mut found: Vec<String> = edges(src, &mods)
        .iter()
        .map(|e| format!("{}->{}", e.from, e.to))
        .collect();
    found.sort();
    assert_eq!(found, ["a->*", "a->b", "a->c", "b->a", "b->c"]);
}
