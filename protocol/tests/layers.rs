//! The protocol's modules form layers: no module reaches, through the
//! modules it names (`crate::…`, outside tests and comments), back to
//! itself. Ids live in the leaf `id`, the report payload in `report` (not
//! `kpi`, which computes it from the workflow), chain checks in `trust`;
//! before, six modules were one circle through `record`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module name → the source of its files (a directory module's files
/// count as the module), tests and comments left out.
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut add = |name: String, path: &Path| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let text = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
        let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        out.entry(name).or_default().push_str(&code);
    };
    for entry in std::fs::read_dir(&src).expect("protocol/src") {
        let path = entry.expect("entry").path();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_string();
        if path.is_dir() {
            for f in std::fs::read_dir(&path).expect("module directory") {
                let f = f.expect("entry").path();
                let name = f.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                if f.extension().is_some_and(|e| e == "rs") && name != "tests" && name != "sim" {
                    add(stem.clone(), &f);
                }
            }
        } else if path.extension().is_some_and(|e| e == "rs") && stem != "lib" {
            add(stem, &path);
        }
    }
    out
}

fn edges(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (name, code) in mods {
        let mut to = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            let m: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if mods.contains_key(&m) && m != *name {
                to.insert(m);
            }
        }
        out.insert(name.clone(), to);
    }
    out
}

/// A cycle through `start`, if any (depth-first).
fn cycle_from(start: &str, graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn walk(at: &str, start: &str, graph: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, seen: &mut BTreeSet<String>) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(next, start, graph, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(start, start, graph, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn protocol_modules_have_no_import_circle() {
    let mods = modules();
    assert!(mods.contains_key("record") && mods.contains_key("workflow"), "found {:?}", mods.keys());
    let graph = edges(&mods);
    let cycles: Vec<String> = graph.keys().filter_map(|m| cycle_from(m, &graph)).map(|c| c.join(" → ")).collect();
    assert!(cycles.is_empty(), "import circles:\n{}", cycles.join("\n"));
    // The leaves stay leaves.
    for leaf in ["codec", "id", "report"] {
        let names: Vec<&String> = graph[leaf].iter().filter(|m| !["codec", "division"].contains(&m.as_str())).collect();
        assert!(names.is_empty(), "{leaf} names {names:?}");
    }
}
