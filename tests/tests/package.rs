//! The Debian package as an operator installs it, on this machine: `cargo
//! deb` packs the binaries this test build made (debug: CI never builds a
//! release), `dpkg -i` installs it, and the system user, the directories,
//! the configuration and the hardened unit are where the README says.
//! With systemd running, the node starts through `systemctl`; where it is
//! not (a container, CI), `systemd-analyze verify` checks the unit and the
//! test starts the unit's `ExecStart` as its `User=` in its
//! `WorkingDirectory=`, as systemd would, then takes a backup into the
//! package's backup directory. The package is purged at the end and the
//! machine left as it was. Needs root, dpkg and cargo-deb (`cargo install
//! cargo-deb --locked`; .ci/run installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;
use zongzhi_tests::{bin, free_port, wait_for};

const UNIT: &str = "/usr/lib/systemd/system/zongzhi-node.service";
const CONFIG: &str = "/etc/zongzhi/node.toml";

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Purges the package and what it left (data, backups, the user) when the
/// test ends, passed or not: the machine is as before.
struct Installed;

impl Installed {
    fn purge() {
        let _ = Command::new("dpkg").args(["--purge", "zongzhi"]).output();
        for dir in ["/var/lib/zongzhi", "/var/backups/zongzhi", "/etc/zongzhi"] {
            let _ = std::fs::remove_dir_all(dir);
        }
        let _ = Command::new("deluser").args(["--system", "zongzhi"]).output();
        let _ = Command::new("delgroup").args(["--system", "zongzhi"]).output();
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        Installed::purge();
    }
}

/// The node started as the unit would, killed if the test fails first.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `Key=value` of the unit's `[Service]` section.
fn unit_value(unit: &str, key: &str) -> String {
    unit.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=')).unwrap_or_else(|| panic!("{key}= not in the unit")).trim().to_string()
}

fn get(port: u16, path: &str) -> Option<(u16, Value)> {
    let r = reqwest::blocking::get(format!("http://127.0.0.1:{port}{path}")).ok()?;
    Some((r.status().as_u16(), r.json().ok()?))
}

#[test]
fn the_debian_package_installs_and_its_unit_runs_a_node() {
    // One package test at a time on a machine (it installs system-wide).
    let lock = std::fs::File::create(std::env::temp_dir().join("zongzhi-package-test.lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    // cargo-deb takes the binaries from <target dir>/release/: give it a
    // target dir whose release/ holds those of this test build (debug
    // ones; CI never builds a release).
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let out_dir = tempfile::tempdir().unwrap();
    let release = out_dir.path().join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    for name in ["zongzhi-node", "zongzhi"] {
        std::os::unix::fs::symlink(bin(name), release.join(name)).unwrap();
    }
    let deb = out_dir.path().join("zongzhi.deb");
    let made = Command::new("cargo")
        .args(["deb", "-p", "zongzhi-node", "--no-build", "--fast", "--no-dbgsym", "--output"])
        .arg(&deb)
        .env("CARGO_TARGET_DIR", out_dir.path().join("target"))
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(made.status.success(), "cargo deb failed (installed? `cargo install cargo-deb --locked`):\n{}", text(&made));

    // What the package holds and declares.
    let info = text(&run(Command::new("dpkg-deb").arg("--info").arg(&deb)));
    assert!(info.contains("Package: zongzhi") && info.contains("adduser") && info.contains("libc6"), "{info}");
    let contents = text(&run(Command::new("dpkg-deb").arg("--contents").arg(&deb)));
    for path in [
        "./usr/bin/zongzhi-node",
        "./usr/bin/zongzhi",
        "./etc/zongzhi/node.toml",
        "./usr/lib/systemd/system/zongzhi-node.service",
        "./usr/share/doc/zongzhi/README.md",
        "./usr/share/doc/zongzhi/examples/township.toml",
        "./usr/share/doc/zongzhi/monitoring/zongzhi-alerts.yml",
    ] {
        assert!(contents.contains(path), "{path} not in the package:\n{contents}");
    }

    // Never over a real installation: only what an earlier run of this
    // test left (it marks its data directory) is purged first.
    const MARK: &str = "/var/lib/zongzhi/.zongzhi-package-test";
    assert!(!Path::new("/var/lib/zongzhi").exists() || Path::new(MARK).exists(), "/var/lib/zongzhi exists: this machine runs a zongzhi node, which the package test would remove; run it elsewhere");
    Installed::purge();
    let _installed = Installed;
    run(Command::new("dpkg").arg("-i").arg(&deb).env("DEBIAN_FRONTEND", "noninteractive"));
    std::fs::write(MARK, "installed by tests/tests/package.rs\n").unwrap();
    let status = text(&run(Command::new("dpkg-query").args(["-W", "-f=${Status} ${Conffiles}", "zongzhi"])));
    assert!(status.starts_with("install ok installed") && status.contains(CONFIG), "{status}");

    // The system user, its directories, the configuration only it reads.
    let user = text(&run(Command::new("getent").args(["passwd", "zongzhi"])));
    let fields: Vec<&str> = user.trim().split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid < 1000 && fields[5] == "/var/lib/zongzhi" && fields[6].ends_with("nologin"), "{user}");
    let gid: u32 = fields[3].parse().unwrap();
    for (dir, mode) in [("/var/lib/zongzhi", 0o750), ("/var/backups/zongzhi", 0o750)] {
        let m = std::fs::metadata(dir).unwrap();
        assert_eq!((m.uid(), m.gid(), m.permissions().mode() & 0o7777), (uid, gid, mode), "{dir}");
    }
    let m = std::fs::metadata(CONFIG).unwrap();
    assert_eq!((m.uid(), m.gid(), m.permissions().mode() & 0o777), (0, gid, 0o640), "{CONFIG}");
    let shipped = std::fs::read_to_string(CONFIG).unwrap();
    assert!(shipped.contains("data_dir = \"/var/lib/zongzhi\"") && shipped.contains("backup_dir = \"/var/backups/zongzhi\""), "{shipped}");

    // The unit: valid, hardened, and pointing at what the package installed.
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let verify = Command::new("systemd-analyze").args(["verify", UNIT]).output().unwrap();
    assert!(verify.status.success() && text(&verify).trim().is_empty(), "systemd-analyze verify:\n{}", text(&verify));
    let security = text(&run(Command::new("systemd-analyze").args(["security", "--offline=yes", UNIT])));
    let exposure: f64 = security
        .lines()
        .find_map(|l| l.split("zongzhi-node.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure figure:\n{security}"));
    assert!(exposure <= 2.0, "exposure {exposure}:\n{security}");
    let exec: Vec<String> = unit_value(&unit, "ExecStart").split_whitespace().map(String::from).collect();
    assert_eq!(exec[..], ["/usr/bin/zongzhi-node", "run", "--config", CONFIG]);
    assert_eq!(unit_value(&unit, "User"), "zongzhi");
    let workdir = unit_value(&unit, "WorkingDirectory");
    assert_eq!(unit_value(&unit, "ProtectSystem"), "strict");
    // StateDirectory=zongzhi is /var/lib/zongzhi.
    assert_eq!(unit_value(&unit, "StateDirectory"), "zongzhi");
    let writable: Vec<String> = unit_value(&unit, "ReadWritePaths").split_whitespace().map(String::from).chain(["/var/lib/zongzhi".to_string()]).collect();
    for path in &writable {
        assert!(Path::new(path).is_dir(), "{path} (writable under the unit) was not created");
    }

    // Configure it as the README says, and initialise it as the service's user.
    let port = free_port();
    let config = shipped
        .replace("# division = \"330106010000\"", "division = \"330106010000\"")
        .replace("# name = \"示例街道社会治安综合治理中心\"", "name = \"示例街道社会治安综合治理中心\"")
        .replace("http_listen = \"127.0.0.1:7800\"", &format!("http_listen = \"127.0.0.1:{port}\""));
    assert_ne!(config, shipped);
    std::fs::write(CONFIG, config).unwrap();
    let as_user = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=zongzhi", "--regid=zongzhi", "--init-groups", "--"]).args(args).current_dir(&workdir).env_remove("RUST_LOG");
        c
    };
    run(&mut as_user(&["/usr/bin/zongzhi-node", "init", "--config", CONFIG]));
    let added = as_user(&["/usr/bin/zongzhi-node", "user", "add", "--config", CONFIG, "--username", "admin", "--role", "admin", "--password", "package-admin-1"]).output().unwrap();
    assert!(added.status.success(), "{}", text(&added));
    let key = std::fs::metadata("/var/lib/zongzhi/node.key").unwrap();
    assert_eq!((key.uid(), key.permissions().mode() & 0o777), (uid, 0o600));

    // A data directory the service cannot write is refused at start, by name.
    std::fs::set_permissions("/var/lib/zongzhi", std::fs::Permissions::from_mode(0o550)).unwrap();
    let refused = as_user(&exec.iter().map(String::as_str).collect::<Vec<_>>()).output().unwrap();
    assert!(!refused.status.success() && text(&refused).contains("data_dir /var/lib/zongzhi is not writable"), "{}", text(&refused));
    std::fs::set_permissions("/var/lib/zongzhi", std::fs::Permissions::from_mode(0o750)).unwrap();

    let systemd = Path::new("/run/systemd/system").is_dir();
    // Dropped before `_installed`: the node stops before the purge.
    let mut node = Running(None);
    if systemd {
        run(Command::new("systemctl").arg("daemon-reload"));
        run(Command::new("systemctl").args(["start", "zongzhi-node"]));
    } else {
        // The file system as ProtectSystem=strict and ReadWritePaths= leave
        // it, in a mount namespace of its own: everything read-only but
        // the data and backup directories.
        let log = std::fs::File::create(out_dir.path().join("node.log")).unwrap();
        let binds: String = writable.iter().map(|d| format!("mount --bind {d} {d}; ")).collect();
        let script = format!("set -e; {binds}mount -o remount,bind,ro /; cd {workdir}; exec setpriv --reuid=zongzhi --regid=zongzhi --init-groups -- {}", exec.join(" "));
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "private", "sh", "-c", &script]).env_remove("RUST_LOG").stdout(Stdio::null()).stderr(log);
        node.0 = Some(c.spawn().unwrap());
    }
    let node_log = || std::fs::read_to_string(out_dir.path().join("node.log")).unwrap_or_default();
    wait_for("the packaged node to be ready", 60, || get(port, "/api/health/ready").filter(|(s, _)| *s == 200));
    let (_, health) = get(port, "/api/health").unwrap();
    assert_eq!(health["division"], "330106010000", "{health}");
    // A backup elsewhere (the README's old `--out /mnt/backup/…`) is
    // refused: the node, which writes it, may not write there.
    if !systemd {
        let elsewhere = "/var/tmp/zongzhi-package-test-backup";
        let refused = as_user(&["/usr/bin/zongzhi-node", "backup", "--config", CONFIG, "--out", elsewhere]).output().unwrap();
        let _ = std::fs::remove_dir_all(elsewhere);
        assert!(!refused.status.success() && text(&refused).contains("Read-only file system"), "{}\n{}", text(&refused), node_log());
    }
    // The nightly backup, as the README's runbook takes it: the running
    // node writes it into the package's backup directory.
    let backup = as_user(&["/usr/bin/zongzhi-node", "backup", "--config", CONFIG]).output().unwrap();
    assert!(backup.status.success(), "{}\n{}", text(&backup), node_log());
    let taken: Vec<PathBuf> = std::fs::read_dir("/var/backups/zongzhi").unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert!(taken[0].join("manifest.json").is_file() && std::fs::metadata(&taken[0]).unwrap().uid() == uid, "{taken:?}");

    if systemd {
        run(Command::new("systemctl").args(["stop", "zongzhi-node"]));
    } else if let Some(mut c) = node.0.take() {
        run(Command::new("kill").args(["-TERM", &c.id().to_string()]));
        let status = c.wait().unwrap();
        assert!(status.success(), "the node exited with {status} on SIGTERM:\n{}", node_log());
    }
    // Removing the package keeps the data (the key is the center's seal).
    run(Command::new("dpkg").args(["--purge", "zongzhi"]));
    assert!(!Path::new("/usr/bin/zongzhi-node").exists() && !Path::new(UNIT).exists());
    assert!(Path::new("/var/lib/zongzhi/node.key").exists(), "a purge must keep the node key");
}
