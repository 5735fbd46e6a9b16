//! Backup and restore, and how a restored node gets its own chain back
//! before it signs anything.
//!
//! A backup is a RocksDB checkpoint of the store (consistent, taken while
//! the node runs) and a `manifest.json` naming the node, its chain head and
//! when it was taken. The node key is not in it unless asked for
//! (`--with-key`): whoever holds the key can sign as the center.
//!
//! A restored store has lost what the node signed after the backup, and
//! its parent (and perhaps its children) hold those records. Signing anew
//! from the old chain head would put two different records at the same
//! position of the node's chain: equivocation, which every peer raises as
//! an alarm. So `restore` marks the store (`meta::RESTORED`) and gives it a
//! new feed epoch; a marked node signs nothing (503 `restoring`) and asks
//! its peers for its own records too (`Subscribe { own: true }`). Once it
//! has stored everything its parent held when the link opened (the city,
//! which has no parent: a child), and none of its own records waits for
//! parents, its chain head is the one it had, and it signs again. If no
//! peer can confirm, an admin may override (`POST /api/admin/recovery`),
//! and accepts the risk of an alarm.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use zongzhi_protocol::DivisionCode;

use crate::store::{Store, meta};

/// What a backup holds, written beside the checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub node_id: String,
    pub division: String,
    pub name: String,
    /// The node's own chain head at the backup: seq and record id.
    pub own_seq: u64,
    pub own_head: Option<String>,
    pub feed_seq: u64,
    pub taken_ms: u64,
    pub taken_at: String,
    pub version: String,
    /// The node key was copied into the backup (`node.key`).
    pub key_included: bool,
    /// Where the key and the configuration live (not copied unless asked).
    pub note: String,
    /// The SHA-256 fingerprint of the HTTPS certificate the backup holds
    /// (`https-cert.pem`): a restored node serves the same one, so
    /// browsers that accepted it do not warn again.
    #[serde(default)]
    pub https_cert: Option<String>,
    /// The HTTPS private key is in the backup too (`https-key.pem`, with
    /// the node key).
    #[serde(default)]
    pub https_key_included: bool,
}

pub const MANIFEST: &str = "manifest.json";
/// The HTTPS certificate and key in a backup.
pub const HTTPS_CERT: &str = "https-cert.pem";
pub const HTTPS_KEY: &str = "https-key.pem";

/// The files besides the store a backup takes: the node key and the HTTPS
/// key only when asked (`--with-key`), the HTTPS certificate always.
#[derive(Debug, Clone, Default)]
pub struct BackupFiles {
    pub node_key: Option<PathBuf>,
    pub https_cert: Option<PathBuf>,
    pub https_key: Option<PathBuf>,
}

impl BackupFiles {
    /// What a backup of this node takes (`with_key`: the keys too).
    pub fn of(paths: &crate::context::NodePaths, with_key: bool) -> BackupFiles {
        BackupFiles {
            node_key: with_key.then(|| paths.key_file.clone()),
            https_cert: paths.tls_cert.clone().filter(|p| p.exists()),
            https_key: paths.tls_key.clone().filter(|p| with_key && p.exists()),
        }
    }
}

/// Writes a backup of `store` into `dir` (created; must not exist), with
/// the `files` besides it.
pub fn backup(store: &Store, dir: &Path, node: &crate::api::NodeInfo, files: &BackupFiles, now_ms: u64) -> Result<Manifest, String> {
    if dir.exists() {
        return Err(format!("{} already exists: name a new directory for the backup", dir.display()));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    // The head before the checkpoint: what the checkpoint holds is at
    // least this (records only get added).
    let (own_seq, own_head) = store.chain_last(&node.id).map_err(|e| e.to_string())?.map(|(s, id)| (s, Some(id.to_string()))).unwrap_or((0, None));
    let feed_seq = store.feed_len().map_err(|e| e.to_string())?;
    store.checkpoint(&dir.join("db")).map_err(|e| format!("checkpoint: {e}"))?;
    let key_file = files.node_key.as_deref();
    if let Some(key) = key_file {
        copy_private(key, &dir.join("node.key"))?;
    }
    let https_cert = match &files.https_cert {
        Some(cert) => {
            std::fs::copy(cert, dir.join(HTTPS_CERT)).map_err(|e| format!("copying the HTTPS certificate {}: {e}", cert.display()))?;
            Some(crate::net::http::fingerprint_of(cert)?)
        }
        None => None,
    };
    if let Some(key) = &files.https_key {
        copy_private(key, &dir.join(HTTPS_KEY))?;
    }
    let manifest = Manifest {
        format: 1,
        node_id: node.id.to_string(),
        division: node.division.to_string(),
        name: node.name.clone(),
        own_seq,
        own_head,
        feed_seq,
        taken_ms: now_ms,
        taken_at: crate::api::time(now_ms),
        version: env!("CARGO_PKG_VERSION").into(),
        key_included: key_file.is_some(),
        note: match (key_file.is_some(), https_cert.is_some()) {
            (true, _) => "node.key (and the HTTPS key, if any) is in this backup: keep it as safe as the center's seal".into(),
            (false, false) => "the node key (data_dir/node.key) and the configuration are not in this backup; restoring needs the key".into(),
            (false, true) => {
                "the node key (data_dir/node.key), the HTTPS key (tls_key) and the configuration are not in this backup; restoring needs both keys (the HTTPS certificate is in it)".into()
            }
        },
        https_cert,
        https_key_included: files.https_key.is_some(),
    };
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
    std::fs::write(dir.join(MANIFEST), text).map_err(|e| format!("writing the manifest: {e}"))?;
    Ok(manifest)
}

/// Copies the node key, readable only by its owner.
fn copy_private(from: &Path, to: &Path) -> Result<(), String> {
    let key = std::fs::read_to_string(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    crate::node::write_secret(to, &key).map_err(|e| e.to_string())
}

pub fn read_manifest(dir: &Path) -> Result<Manifest, String> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{} is not a zongzhi backup ({}: {e})", dir.display(), path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The marker `restore` leaves in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Marker {
    pub manifest: Manifest,
    pub restored_ms: u64,
}

/// Copies the backup's store into `staging` (which must not exist),
/// checks that it is the store of the node the manifest names, and marks
/// it restored, with a new feed epoch so every peer reads its feed again
/// from the start (the positions after the backup were given to records
/// it no longer holds). On any refusal `staging` is removed: nothing else
/// was touched.
pub fn stage(from: &Path, staging: &Path, manifest: &Manifest, now_ms: u64, epoch: [u8; 16]) -> Result<(), String> {
    if staging.exists() {
        return Err(format!("{} exists (a restore broken off?): remove it and try again", staging.display()));
    }
    let result = (|| {
        copy_dir(&from.join("db"), staging)?;
        let store = Store::open(staging).map_err(|e| format!("opening the backup's store: {e}"))?;
        match store.meta_get(meta::NODE_ID).map_err(|e| e.to_string())? {
            Some(id) if hex::encode(&id) == manifest.node_id => {}
            _ => return Err("the backup's store does not belong to the node its manifest names (another node's store, or an edited manifest): nothing was changed".into()),
        }
        let marker = Marker { manifest: manifest.clone(), restored_ms: now_ms };
        let mut b = store.batch();
        b.put_meta(meta::RESTORED, &serde_json::to_vec(&marker).map_err(|e| e.to_string())?);
        b.put_meta(meta::FEED_EPOCH, &epoch);
        store.commit(b).map_err(|e| e.to_string())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(staging);
    }
    result
}

/// [`stage`] then move the staged store to `db` (which must not exist).
pub fn restore(from: &Path, db: &Path, now_ms: u64, epoch: [u8; 16]) -> Result<Manifest, String> {
    let manifest = read_manifest(from)?;
    if db.exists() {
        return Err(format!("{} exists", db.display()));
    }
    let staging = staging_path(db);
    stage(from, &staging, &manifest, now_ms, epoch)?;
    std::fs::rename(&staging, db).map_err(|e| format!("moving the restored store into place: {e}"))?;
    Ok(manifest)
}

/// Where a restore copies the backup's store before it is checked: beside
/// `db`, on the same file system (so moving it into place is a rename).
fn staging_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".restoring");
    db.with_file_name(name)
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let target: PathBuf = to.join(entry.file_name());
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(|e| format!("copying {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Where a restored node stands, for the writer, the API and the links.
#[derive(Debug, Default)]
pub struct Recovery {
    restoring: AtomicBool,
    status: Mutex<RecoveryStatus>,
}

/// What health shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecoveryStatus {
    pub restoring: bool,
    pub backup_taken_at: Option<String>,
    pub backup_own_seq: Option<u64>,
    pub restored_ms: Option<u64>,
    /// This node has a parent (every level but the city): only the parent
    /// confirms.
    pub has_parent: bool,
    /// The peer whose whole feed (with our own records) we stored, or the
    /// admin's override.
    pub caught_up_with: Option<String>,
    pub forced: bool,
    /// The centers that may hold records this node signed after its
    /// backup: its parent and every child enrolled when the backup was
    /// taken (a village that was online after it may hold a step no one
    /// else has). The restore is confirmed once each of them gave back
    /// everything it held, or an admin named it in an override.
    pub must_hear: Vec<String>,
    /// Those whose whole feed this node stored since it was restored.
    pub heard_from: Vec<String>,
    /// Named by an admin's override: not waited for.
    pub given_up: Vec<String>,
    /// Our own records still waiting for their parents (from a child that
    /// has not reconnected): signing waits for them.
    pub own_waiting: usize,
    pub confirmed_ms: Option<u64>,
    pub confirmed_by: Option<String>,
    /// Re-enrolled with a new key: the division's earlier keys (revoked)
    /// whose history this node waits to get back from its parent.
    pub succeeds: Vec<String>,
}

/// The marker `import-cert` leaves on a center that takes over a division
/// whose earlier key was revoked (a machine and key lost without a backup).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Succession {
    /// The earlier keys (hex) and their cut-offs.
    pub predecessors: Vec<(String, u64)>,
    pub at_ms: u64,
}

impl Recovery {
    /// From the store's marker at start-up. `parent` is this node's
    /// parent division (none at the city); `children` the divisions of
    /// the centers it enrolled that are not revoked.
    pub fn load(store: &Store, parent: Option<DivisionCode>, children: &[DivisionCode]) -> Result<Recovery, String> {
        let r = Recovery::default();
        let mut s = r.lock();
        s.has_parent = parent.is_some();
        s.must_hear = parent.iter().chain(children).map(ToString::to_string).collect();
        if let Some(bytes) = store.meta_get(meta::RESTORED).map_err(|e| e.to_string())? {
            let m: Marker = serde_json::from_slice(&bytes).map_err(|e| format!("the restore marker is unreadable: {e}"))?;
            s.restoring = true;
            s.backup_taken_at = Some(m.manifest.taken_at);
            s.backup_own_seq = Some(m.manifest.own_seq);
            s.restored_ms = Some(m.restored_ms);
            r.restoring.store(true, Ordering::SeqCst);
        }
        if let Some(bytes) = store.meta_get(meta::SUCCESSION).map_err(|e| e.to_string())? {
            let m: Succession = serde_json::from_slice(&bytes).map_err(|e| format!("the succession marker is unreadable: {e}"))?;
            s.restoring = true;
            // A successor takes back its division's history from the
            // parent; what its lost predecessor signed beyond the cut-off
            // is void anyway, so its children are not waited for.
            s.must_hear = parent.iter().map(ToString::to_string).collect();
            s.succeeds = m.predecessors.iter().map(|(k, _)| k.chars().take(10).collect()).collect();
            s.restored_ms = Some(m.at_ms);
            r.restoring.store(true, Ordering::SeqCst);
        }
        drop(s);
        Ok(r)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RecoveryStatus> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Restored and not confirmed yet: sign nothing.
    pub fn restoring(&self) -> bool {
        self.restoring.load(Ordering::SeqCst)
    }

    pub fn status(&self) -> RecoveryStatus {
        self.lock().clone()
    }

    /// A link stored everything the peer held, our own records included.
    /// Counts if the peer is our parent, or if we have none.
    pub fn caught_up(&self, peer: &str, from_parent: bool) {
        let mut s = self.lock();
        if !s.restoring {
            return;
        }
        if !s.heard_from.iter().any(|p| p == peer) {
            s.heard_from.push(peer.to_string());
        }
        if (from_parent || !s.has_parent) && s.caught_up_with.is_none() {
            s.caught_up_with = Some(peer.to_string());
        }
    }

    /// The centers still waited for: neither heard from nor given up.
    pub fn waiting_for(&self) -> Vec<String> {
        let s = self.lock();
        if !s.restoring {
            return vec![];
        }
        s.must_hear.iter().filter(|d| !s.heard_from.contains(d) && !s.given_up.contains(d)).cloned().collect()
    }

    /// An admin's override, naming every center still waited for (the
    /// caller checked [`Recovery::waiting_for`]): they are given up on.
    pub fn force(&self, by: &str, naming: &[String]) {
        let mut s = self.lock();
        if s.restoring {
            s.caught_up_with = Some(by.to_string());
            s.forced = true;
            for d in naming {
                if !s.given_up.contains(d) {
                    s.given_up.push(d.clone());
                }
            }
        }
    }

    /// Whether the writer may end the restore now, given our own records
    /// still waiting for parents: every center that may hold a record we
    /// signed after the backup gave back what it held (or was given up on
    /// by an admin), so no record we sign next can collide with one of
    /// ours out there.
    pub fn may_confirm(&self, own_waiting: usize) -> bool {
        let mut s = self.lock();
        s.own_waiting = own_waiting;
        let all_heard = s.must_hear.iter().all(|d| s.heard_from.contains(d) || s.given_up.contains(d));
        s.restoring && (s.forced || (all_heard && (s.caught_up_with.is_some() || s.must_hear.is_empty()))) && (own_waiting == 0 || s.forced)
    }

    /// The writer ended the restore (the marker's removal is in its batch).
    pub fn confirmed(&self, now_ms: u64) {
        let mut s = self.lock();
        s.restoring = false;
        s.confirmed_ms = Some(now_ms);
        s.confirmed_by = s.caught_up_with.clone().or_else(|| (!s.heard_from.is_empty()).then(|| s.heard_from.join(", "))).or(Some("no center holds this node's records".into()));
        self.restoring.store(false, Ordering::SeqCst);
        if s.succeeds.is_empty() {
            tracing::warn!(by = s.confirmed_by.as_deref().unwrap_or(""), "restore confirmed: this node has its own chain back and signs again");
        } else {
            tracing::warn!(by = s.confirmed_by.as_deref().unwrap_or(""), "succession confirmed: this node holds its division's history and signs again, continuing its case numbers");
        }
    }
}

/// `zongzhi-node backup`: through the running node (a request signed with
/// the node key, which this host can read), or on the store itself when
/// the node is stopped. Returns where the backup went.
pub fn backup_command(cfg: &crate::config::Config, out: Option<&Path>, with_key: bool) -> Result<(PathBuf, Manifest), String> {
    let key = crate::node::load_key(cfg).map_err(|e| e.to_string())?;
    let out = match out {
        Some(p) if p.as_os_str() == "-" => return Err("--out - (standard output) cannot take a backup: it is a directory (a RocksDB checkpoint and its files); name a new directory".into()),
        Some(p) if p.is_relative() => Some(std::env::current_dir().map_err(|e| e.to_string())?.join(p)),
        other => other.map(Path::to_path_buf),
    };
    match Store::open(&cfg.db_path()) {
        Ok(store) => {
            let now = crate::context::now_ms();
            let dir = out.unwrap_or_else(|| cfg.backup_dir().join(format!("zongzhi-{}-{}", cfg.division, stamp(now))));
            let node = crate::api::NodeInfo { id: key.id(), division: cfg.division, name: cfg.name.clone() };
            let (tls_cert, tls_key) = cfg.tls_files();
            let paths = crate::context::NodePaths { backup_dir: cfg.backup_dir(), key_file: cfg.key_path(), tls_cert, tls_key };
            let manifest = backup(&store, &dir, &node, &BackupFiles::of(&paths, with_key), now)?;
            Ok((dir, manifest))
        }
        Err(crate::store::StoreError::InUse(_)) => ask_running_node(cfg, &key, out.as_deref(), with_key),
        Err(e) => Err(format!("opening the store: {e}")),
    }
}

/// `20261207-171500`, China time.
pub fn stamp(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64).map(|t| t.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).strftime("%Y%m%d-%H%M%S").to_string()).unwrap_or_default()
}

/// `POST /api/admin/backup` on the node's own HTTP address (loopback
/// when it listens everywhere), signed with the node key.
fn ask_running_node(cfg: &crate::config::Config, key: &zongzhi_protocol::NodeKey, out: Option<&Path>, with_key: bool) -> Result<(PathBuf, Manifest), String> {
    let mut body = serde_json::json!({"with_key": with_key});
    if let Some(dir) = out {
        body["dir"] = serde_json::json!(dir.display().to_string());
    }
    let v = ask_running_node_json(cfg, key, "/api/admin/backup", &body, "backup")?;
    let dir = PathBuf::from(v["dir"].as_str().unwrap_or_default());
    let manifest = serde_json::from_value(v["manifest"].clone()).map_err(|e| e.to_string())?;
    Ok((dir, manifest))
}

/// POSTs `body` to `path` of the node running on this host's store,
/// signed with the node key (`api::admin::host_signature`), through the
/// node's HTTP client; the answer's JSON when it is 201 Created.
pub fn ask_running_node_json(cfg: &crate::config::Config, key: &zongzhi_protocol::NodeKey, path: &str, body: &serde_json::Value, what: &str) -> Result<serde_json::Value, String> {
    let body = body.to_string();
    let auth = crate::api::admin::host_signature(key, "POST", path, crate::context::now_ms(), body.as_bytes());
    let mut addr = cfg.http_listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let address = addr.to_string();
    let call = crate::http_client::Call {
        method: axum::http::Method::POST,
        address: &address,
        host: &address,
        path,
        headers: vec![(axum::http::HeaderName::from_static(crate::api::admin::HOST_AUTH), auth)],
        content_type: "application/json",
        body: body.into_bytes(),
        timeout: std::time::Duration::from_secs(600),
        max_body: 1 << 20,
    };
    let answer = call.send_blocking().map_err(|e| format!("the store is in use but the node does not answer on {addr}: {e}"))?;
    let v = answer.json();
    if answer.status != 201 {
        let why = v["error"]["message"].as_str().map(String::from).unwrap_or_else(|| format!("HTTP {}", answer.status));
        return Err(format!("the node refused the {what}: {why}"));
    }
    Ok(v)
}

/// What a restore will do besides moving the store: the files it puts
/// back (from, to, private), all checked before anything is touched.
struct Plan {
    copies: Vec<(PathBuf, PathBuf, bool)>,
}

/// `zongzhi-node restore` (the node stopped): the backup's store in place
/// of the data directory's (moved aside with `force`), the node key and
/// the HTTPS certificate and key from the backup where the data directory
/// lacks them, and the restore marker. Everything is checked first: the
/// manifest, the key, the division, the files the node needs to start,
/// the store not in use, and the backup's store itself (copied beside the
/// data directory's and opened there); a refused restore leaves the data
/// directory as it was.
pub fn restore_command(cfg: &crate::config::Config, from: &Path, force: bool) -> Result<Manifest, String> {
    let manifest = read_manifest(from)?;
    let plan = check_restore(cfg, from, &manifest, force)?;
    let db = cfg.db_path();
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| format!("creating {}: {e}", cfg.data_dir.display()))?;
    let mut epoch = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut epoch);
    // The backup's store is copied and checked beside the data
    // directory's before that one moves.
    let staging = staging_path(&db);
    stage(from, &staging, &manifest, crate::context::now_ms(), epoch)?;
    if db.exists() {
        let aside = cfg.data_dir.join(format!("db.replaced-{}", stamp(crate::context::now_ms())));
        if let Err(e) = std::fs::rename(&db, &aside) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(format!("moving {} aside: {e}", db.display()));
        }
    }
    std::fs::rename(&staging, &db).map_err(|e| format!("moving the restored store into place ({} → {}): {e}", staging.display(), db.display()))?;
    for (src, dst, private) in plan.copies {
        if let Some(dir) = dst.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        if private {
            copy_private(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| format!("copying {} to {}: {e}", src.display(), dst.display()))?;
        }
    }
    Ok(manifest)
}

/// Every check of a restore, touching nothing.
fn check_restore(cfg: &crate::config::Config, from: &Path, manifest: &Manifest, force: bool) -> Result<Plan, String> {
    let mut copies = Vec::new();
    let key_path = cfg.key_path();
    let key = if key_path.exists() {
        crate::node::load_key(cfg).map_err(|e| e.to_string())?
    } else {
        if !manifest.key_included {
            return Err(format!("{} is missing and the backup does not hold the key: put the node key there first", key_path.display()));
        }
        let pem = std::fs::read_to_string(from.join("node.key")).map_err(|e| format!("reading the backup's node.key: {e}"))?;
        let key = zongzhi_protocol::NodeKey::from_pkcs8_pem(&pem).map_err(|e| format!("the backup's node.key: {e}"))?;
        copies.push((from.join("node.key"), key_path.clone(), true));
        key
    };
    if key.id().to_string() != manifest.node_id {
        return Err(format!("the backup is of node {} but {} holds the key of {}", manifest.node_id.get(..10).unwrap_or(&manifest.node_id), key_path.display(), key.id().fmt_short()));
    }
    if manifest.division != cfg.division.to_string() {
        return Err(format!("the backup is of division {} but the config says {}", manifest.division, cfg.division));
    }
    if !from.join("db").is_dir() {
        return Err(format!("{} holds no store (db/): not a complete backup", from.display()));
    }
    copies.extend(https_copies(cfg, from, manifest)?);
    let db = cfg.db_path();
    if db.exists() {
        if !force {
            return Err(format!("{} already holds a store: pass --force to move it aside (it is kept as db.replaced-<time>)", db.display()));
        }
        if let Err(crate::store::StoreError::InUse(_)) = Store::open(&db) {
            return Err("the node is running: stop it before restoring".into());
        }
    }
    Ok(Plan { copies })
}

/// The HTTPS certificate and key to put back: where the config (or
/// `https-cert`'s default) wants them and they are missing. A node whose
/// config serves HTTPS needs both to start: a missing one the backup does
/// not hold refuses the restore, saying which.
fn https_copies(cfg: &crate::config::Config, from: &Path, manifest: &Manifest) -> Result<Vec<(PathBuf, PathBuf, bool)>, String> {
    let (default_cert, default_key) = cfg.default_tls_paths();
    let cert_to = cfg.tls_cert.clone().unwrap_or(default_cert);
    let key_to = cfg.tls_key.clone().unwrap_or(default_key);
    let serves = cfg.https_listen.is_some();
    let mut copies = Vec::new();
    for (held, name, to, private) in [(manifest.https_cert.is_some(), HTTPS_CERT, cert_to, false), (manifest.https_key_included, HTTPS_KEY, key_to, true)] {
        if to.exists() {
            continue;
        }
        if held && from.join(name).is_file() {
            copies.push((from.join(name), to, private));
        } else if serves {
            let what = if private { "private key (tls_key)" } else { "certificate (tls_cert)" };
            let hint = if private { "keep it with node.key, or take backups with --with-key" } else { "the backup holds none" };
            return Err(format!("the config serves HTTPS but its {what} {} is missing and the backup does not hold it: put it back first ({hint}); nothing was changed", to.display()));
        }
    }
    Ok(copies)
}
