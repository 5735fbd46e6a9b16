//! A data directory written by release 0.1.0 (schema 9, record format 3;
//! `fixtures/store-0.1.0`, a township of that release's demo) opens with
//! this build and is migrated in place (UPGRADES.md §2): a checkpoint
//! first, one step per schema, the derived data rebuilt; `verify` passes
//! and `reindex` gives the same bytes. The process is killed inside each
//! step (`ZONGZHI_FAILPOINT`) and started again: the end state is the same
//! as an uninterrupted migration's. A directory this binary is too old for
//! is refused, naming the release to install; one a newer release added a
//! column family to opens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use zongzhi_node::store::{DerivedEntry, Store, meta};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-0.1.0")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A fresh copy of the fixture.
fn baseline_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), dir.path());
    dir
}

fn node(dir: &Path, args: &[&str], failpoint: Option<&str>) -> Output {
    let config = dir.join("node.toml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zongzhi-node"));
    cmd.args(args).arg("--config").arg(&config).env_remove("ZONGZHI_FAILPOINT");
    if let Some(fp) = failpoint {
        cmd.env("ZONGZHI_FAILPOINT", fp);
    }
    cmd.output().unwrap()
}

fn ok(out: &Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    text
}

fn meta_u32(store: &Store, key: &str) -> Option<u32> {
    store.meta_get(key).unwrap().map(|v| u32::from_be_bytes(v[..4].try_into().unwrap()))
}

/// The derived state and the schema marks of a (stopped) node's store.
fn state(dir: &Path) -> (Option<u32>, Option<u32>, bool, Vec<DerivedEntry>, u64) {
    let store = Store::open(&dir.join("data/db")).unwrap();
    let pending = store.meta_get(meta::REINDEX_PENDING).unwrap().is_some();
    (meta_u32(&store, meta::SCHEMA), meta_u32(&store, meta::OLDEST_READER), pending, store.derived_dump().unwrap(), store.feed_len().unwrap())
}

#[test]
fn a_release_0_1_0_directory_is_migrated_in_place() {
    let dir = baseline_dir();
    let text = ok(&node(dir.path(), &["verify"], None));
    assert!(text.contains("\nok"), "{text}");
    let checkpoint = dir.path().join("data/db.before-schema-9");
    assert!(checkpoint.join("CURRENT").exists(), "a checkpoint before the first step, kept for a rollback");
    let (schema, oldest, pending, derived, records) = state(dir.path());
    assert_eq!((schema, oldest, pending), (Some(10), Some(10), false));
    assert!(records > 50, "the township's records are all there ({records})");
    assert!(derived.iter().any(|(cf, _, _)| cf == "case_state"), "case summaries rebuilt");
    // A rebuild from the records gives the same bytes.
    ok(&node(dir.path(), &["reindex"], None));
    let (_, _, _, again, _) = state(dir.path());
    assert!(again == derived, "reindex changed the migrated derived data");
    // Opening again migrates nothing more and keeps the checkpoint.
    ok(&node(dir.path(), &["verify"], None));
    assert!(checkpoint.exists());
}

#[test]
fn a_crash_inside_each_migration_step_is_repaired_by_the_next_start() {
    let clean = baseline_dir();
    ok(&node(clean.path(), &["verify"], None));
    let want = state(clean.path());
    for failpoint in ["migrate:checkpoint", "migrate:step:9", "reindex:cleared", "reindex:cases"] {
        let dir = baseline_dir();
        let out = node(dir.path(), &["verify"], Some(failpoint));
        assert!(!out.status.success(), "{failpoint}: the process was to die there");
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("failpoint {failpoint}")), "{failpoint} was not reached: {}", String::from_utf8_lossy(&out.stderr));
        ok(&node(dir.path(), &["verify"], None));
        let got = state(dir.path());
        assert_eq!((got.0, got.1, got.2, got.4), (want.0, want.1, want.2, want.4), "{failpoint}");
        assert!(got.3 == want.3, "{failpoint}: the derived data differs from an uninterrupted migration's");
        assert!(dir.path().join("data/db.before-schema-9/CURRENT").exists(), "{failpoint}: the checkpoint");
    }
}

#[test]
fn a_directory_this_binary_is_too_old_for_is_refused_and_one_with_a_newer_family_opens() {
    let dir = baseline_dir();
    ok(&node(dir.path(), &["verify"], None));
    // A newer release added a column family (an additive step): this
    // binary still opens the directory.
    Store::add_foreign_family(&dir.path().join("data/db"), "added_by_a_later_release").unwrap();
    ok(&node(dir.path(), &["verify"], None));
    // A newer release raised oldest_reader above this binary's schema.
    {
        let store = Store::open(&dir.path().join("data/db")).unwrap();
        let mut b = store.batch();
        b.put_meta(meta::OLDEST_READER, &11u32.to_be_bytes());
        b.put_meta(meta::SCHEMA, &11u32.to_be_bytes());
        store.commit(b).unwrap();
    }
    let out = node(dir.path(), &["verify"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs a binary of schema 11") && err.contains("install a release newer than"), "{err}");
}
