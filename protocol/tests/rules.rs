//! Every rule name a step can be refused with has its zh-CN message in
//! `protocol::rules`: the names are found in the sources of the workflow
//! and of the node (`reject("…"`, `rejected("…"`, `rule: "…"`,
//! `rule: Some("…")`), so a new rule without a message fails here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") && !p.to_string_lossy().contains("tests") {
            out.push(p);
        }
    }
}

/// The string literal starting at `text` (after optional whitespace and `"`), if any.
fn literal(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('"')?;
    let end = rest.find('"')?;
    let name = &rest[..end];
    name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-').then_some(name)
}

fn rule_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for opener in ["reject(", "rejected(", "rule: ", "rule: Some("] {
        let mut at = 0;
        while let Some(i) = text[at..].find(opener) {
            let start = at + i + opener.len();
            if let Some(name) = literal(&text[start..]).filter(|n| !n.is_empty()) {
                names.push(name.to_string());
            }
            at = start;
        }
    }
    names
}

#[test]
fn every_rule_a_step_can_be_refused_with_has_a_chinese_message() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut files = Vec::new();
    sources(&root.join("protocol/src"), &mut files);
    sources(&root.join("node/src"), &mut files);
    let mut found = std::collections::BTreeSet::new();
    for f in &files {
        found.extend(rule_names(&std::fs::read_to_string(f).unwrap()));
    }
    // The scan sees the rules it must: one from the workflow, one the node checks before signing.
    assert!(found.contains("only-owner") && found.contains("unknown-unit") && found.contains("no-calendar-for-year"), "{found:?}");
    let missing: Vec<&String> = found.iter().filter(|r| zongzhi_protocol::rules::zh(r).is_none()).collect();
    assert!(missing.is_empty(), "rules without a zh-CN message in protocol/src/rules.rs: {missing:?}");
}
