//! Architecture invariants, checked on the source (ARCHITECTURE.md states
//! them; this keeps them true).

use std::path::PathBuf;

/// This crate's directory, taken at run time first: cargo sets
/// `CARGO_MANIFEST_DIR` when it runs a test or binary, and a build reused
/// from a cached target dir may have been compiled in another checkout.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Every `.rs` file under `root`, named by its path below it
/// (`ledger/ingest.rs`), with its text.
fn rust_files(root: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let name = path.strip_prefix(root).map(|n| n.to_string_lossy().replace('\\', "/")).unwrap_or_default();
                out.push((name, std::fs::read_to_string(&path).expect("source")));
            }
        }
    }
    out
}

/// Every source file under `node/src`.
fn sources() -> Vec<(String, String)> {
    let out = rust_files(&manifest_dir().join("src"));
    assert!(out.iter().any(|(n, _)| n.starts_with("ledger/")), "node/src/ledger/ not found");
    out
}

/// The file or module `name` is, or is inside, module `module` (`store`
/// is `store.rs` and everything in `store/`).
fn within(name: &str, module: &str) -> bool {
    name == format!("{module}.rs") || name.starts_with(&format!("{module}/"))
}

/// Code lines only (doc and line comments left out).
fn code(text: &str) -> String {
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Whether code names crate `krate` (a path through it or a `use` of it).
fn names(code: &str, krate: &str) -> bool {
    code.contains(&format!("{krate}::")) || code.contains(&format!("use {krate}"))
}

/// The storage engine sits behind the store's typed API, and within the
/// store behind one file: everything else holds its types, never calls it.
#[test]
fn only_the_store_engine_names_rocksdb() {
    let all = sources();
    assert!(all.iter().any(|(n, _)| n == "store/rocks.rs"), "node/src/store/rocks.rs not found");
    for (name, text) in all {
        if name != "store/rocks.rs" {
            assert!(!names(&code(&text), "rocksdb"), "{name} names rocksdb: only store/rocks.rs may");
        }
    }
}

/// The transport is `net/`; within it, TLS is `net/tls.rs`.
#[test]
fn only_net_names_quinn_and_rustls() {
    let all = sources();
    assert!(all.iter().any(|(n, _)| n == "net/tls.rs"), "node/src/net/tls.rs not found");
    for (name, text) in all {
        let code = code(&text);
        if !within(&name, "net") {
            assert!(!names(&code, "quinn") && !names(&code, "quinn_proto") && !names(&code, "rustls"), "{name} names quinn or rustls: only net/ may");
        }
        if name != "net/tls.rs" {
            assert!(!names(&code, "rustls"), "{name} names rustls: only net/tls.rs may");
        }
    }
}

/// Every path that sends records decides each record with the one scope
/// rule (`protocol::sync::scope::sends`): the feed batch, the urgent batch
/// and the answer to a `Want`; the transport decides nothing.
#[test]
fn every_sender_path_asks_the_scope_rule() {
    let all = sources();
    let text = |n: &str| code(&all.iter().find(|(name, _)| name == n).map(|(_, t)| t.clone()).unwrap_or_default());
    let outgoing = text("replication/outgoing.rs");
    for f in ["pub fn build_batch", "fn offer", "fn history_before", "pub fn build_urgent", "pub fn wanted"] {
        let start = outgoing.find(f).unwrap_or_else(|| panic!("replication/outgoing.rs has no {f}"));
        let body = &outgoing[start..];
        let end = body[1..].find("\n    fn ").or_else(|| body[1..].find("\npub fn ")).map(|i| i + 1).unwrap_or(body.len());
        if f != "pub fn build_batch" {
            assert!(body[..end].contains("scope::sends("), "{f} does not ask scope::sends");
        }
    }
    let net: Vec<(String, String)> = all.iter().filter(|(n, _)| within(n, "net")).map(|(n, t)| (n.clone(), code(t))).collect();
    assert!(net.iter().any(|(n, _)| n == "net/mod.rs"), "node/src/net/ not found");
    for (name, net) in &net {
        for needle in ["scope::", "case_in_subtree", "Body::CaseEvent"] {
            assert!(!net.contains(needle), "{name} decides scope ({needle}); that belongs in replication/");
        }
    }
}

/// The replication link is a state machine without I/O
/// (`replication/link.rs`): the transport carries out its actions and
/// decides nothing of the protocol (where a feed resumes, the window, when
/// to acknowledge), so the simulator, which drives the same machine, tests
/// what the node runs.
#[test]
fn the_transport_only_moves_bytes() {
    let all = sources();
    let link = all.iter().find(|(n, _)| n == "replication/link.rs").map(|(_, t)| code(non_test(t))).expect("replication/link.rs");
    for needle in ["tokio", "quinn", "std::time", "crate::store", "crate::context", "Context"] {
        assert!(!link.contains(needle), "replication/link.rs names {needle}: the link machine does no I/O");
    }
    for (name, text) in all.iter().filter(|(n, _)| within(n, "net")) {
        let code = code(text);
        for needle in ["FeedSender", "FeedReceiver", "SenderPoll", "on_subscribe", "continues_feed", "verify_chain"] {
            assert!(!code.contains(needle), "{name} uses {needle}: replication decisions belong to replication::link");
        }
    }
}

/// The non-test part of a source file (up to its `#[cfg(test)]` module).
fn non_test(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests").map_or(text, |i| &text[..i])
}

/// The protocol crate, the ledger and the replication decisions take time
/// and randomness from their caller (the node context, or the simulator's
/// seed), never from the operating system: a seeded run must replay.
#[test]
fn no_wall_clock_or_os_randomness_in_protocol_ledger_or_replication() {
    let forbidden = ["SystemTime", "Instant::now", "OsRng", "thread_rng", "getrandom", "context::now_ms"];
    let mut files: Vec<(String, String)> = rust_files(&manifest_dir().join("../protocol/src")).into_iter().map(|(n, t)| (format!("protocol/src/{n}"), t)).collect();
    assert!(files.len() > 10, "protocol sources found");
    files.extend(sources().into_iter().filter(|(n, _)| (within(n, "ledger") || within(n, "replication")) && !n.ends_with("/tests.rs")));
    for (name, text) in &files {
        let code = code(non_test(text));
        for f in forbidden {
            assert!(!code.contains(f), "{name} reads {f}: take the time or randomness from the caller");
        }
    }
}

/// The HTTP API, the workers and the network take "now" from the node's
/// clock (`Context::clock`, `AppState::now_ms`), so a node run on a
/// simulated or shifted clock answers by that clock everywhere.
#[test]
fn the_api_workers_and_network_read_the_nodes_clock() {
    for (name, text) in sources() {
        if within(&name, "api") || within(&name, "workers") || within(&name, "net") || name == "search.rs" {
            assert!(!code(non_test(&text)).contains("context::now_ms"), "{name} reads the wall clock: use the node's clock");
        }
    }
}

/// Library code returns typed errors (a storage failure must stay
/// distinguishable from a client's mistake up to the HTTP status); `anyhow`
/// is for binaries only: `main.rs` here, and the tools, simulator and test
/// harness crates.
#[test]
fn anyhow_only_in_the_binary() {
    for (name, text) in sources() {
        if name != "main.rs" {
            assert!(!code(&text).contains("anyhow"), "{name} uses anyhow: library modules return typed errors");
        }
    }
    let protocol = manifest_dir().join("../protocol/Cargo.toml");
    let manifest = std::fs::read_to_string(protocol).expect("protocol/Cargo.toml");
    assert!(!manifest.contains("anyhow"), "the protocol crate depends on anyhow");
}

/// The functions in `text` (outside its test module) longer than `max`
/// lines, as (name, lines). A function runs from its `fn` line to the
/// closing brace at the same indentation (the code is rustfmt-formatted).
fn long_functions(text: &str, max: usize) -> Vec<(String, usize)> {
    let lines: Vec<&str> = non_test(text).lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let rest = ["pub(crate) ", "pub(super) ", "pub ", "async ", "const ", "unsafe "].iter().fold(trimmed, |t, p| t.strip_prefix(p).unwrap_or(t));
        let rest = ["async ", "const ", "unsafe "].iter().fold(rest, |t, p| t.strip_prefix(p).unwrap_or(t));
        let Some(sig) = rest.strip_prefix("fn ") else { continue };
        if line.trim_end().ends_with(';') || line.trim_end().ends_with('}') {
            continue;
        }
        let name: String = sig.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let close = format!("{indent}}}");
        if let Some(end) = lines[i + 1..].iter().position(|l| *l == close) {
            let n = end + 2;
            if n > max {
                out.push((name, n));
            }
        }
    }
    out
}

/// No function is longer than about a screen: a long one does several
/// jobs, and each job deserves a name. The exceptions are plain dispatch,
/// one arm per variant: the workflow's rule and effect of each action, and
/// the CLI's command to its handler.
#[test]
fn no_function_over_80_lines() {
    const DISPATCH: [(&str, &str); 3] = [("protocol/src/workflow.rs", "check"), ("protocol/src/workflow.rs", "effect"), ("tools/src/commands/mod.rs", "dispatch")];
    let root = manifest_dir().join("..");
    let mut long = Vec::new();
    for krate in ["node/src", "protocol/src", "tools/src", "sim/src"] {
        let files = rust_files(&root.join(krate));
        assert!(!files.is_empty(), "{krate} found");
        for (name, text) in files {
            if name.ends_with("tests.rs") || name.ends_with("_tests.rs") {
                continue;
            }
            let path = format!("{krate}/{name}");
            for (f, n) in long_functions(&text, 80) {
                if !DISPATCH.contains(&(path.as_str(), f.as_str())) {
                    long.push(format!("{path}: {f} ({n} lines)"));
                }
            }
        }
    }
    assert!(long.is_empty(), "functions over 80 lines:\n{}", long.join("\n"));
}

#[test]
fn the_function_length_check_sees_a_long_function() {
    let body = "    let x = 1;\n".repeat(81);
    let text = format!("/// Doc.\npub fn long() {{\n{body}}}\n\nfn short() {{\n    let y = 2;\n}}\n");
    assert_eq!(long_functions(&text, 80), vec![("long".to_string(), 83)]);
}
