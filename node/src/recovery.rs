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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::store::{meta, Store};

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
}

pub const MANIFEST: &str = "manifest.json";

/// Writes a backup of `store` into `dir` (created; must not exist).
pub fn backup(store: &Store, dir: &Path, node: &crate::api::NodeInfo, key_file: Option<&Path>, now_ms: u64) -> Result<Manifest, String> {
    if dir.exists() {
        return Err(format!("{} already exists: name a new directory for the backup", dir.display()));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    // The head before the checkpoint: what the checkpoint holds is at
    // least this (records only get added).
    let (own_seq, own_head) = store.chain_last(&node.id).map_err(|e| e.to_string())?.map(|(s, id)| (s, Some(id.to_string()))).unwrap_or((0, None));
    let feed_seq = store.feed_len().map_err(|e| e.to_string())?;
    store.checkpoint(&dir.join("db")).map_err(|e| format!("checkpoint: {e}"))?;
    if let Some(key) = key_file {
        copy_private(key, &dir.join("node.key"))?;
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
        note: if key_file.is_some() {
            "node.key is in this backup: keep it as safe as the center's seal".into()
        } else {
            "the node key (data_dir/node.key) and the configuration are not in this backup; restoring needs the key".into()
        },
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

/// Copies the backup's store into `db` (which must not exist) and marks
/// it restored, with a new feed epoch so every peer reads its feed again
/// from the start (the positions after the backup were given to records
/// it no longer holds).
pub fn restore(from: &Path, db: &Path, now_ms: u64, epoch: [u8; 16]) -> Result<Manifest, String> {
    let manifest = read_manifest(from)?;
    if db.exists() {
        return Err(format!("{} exists", db.display()));
    }
    copy_dir(&from.join("db"), db)?;
    let store = Store::open(db).map_err(|e| format!("opening the restored store: {e}"))?;
    match store.meta_get(meta::NODE_ID).map_err(|e| e.to_string())? {
        Some(id) if hex::encode(&id) == manifest.node_id => {}
        _ => return Err("the backup's store does not belong to the node its manifest names".into()),
    }
    let marker = Marker { manifest: manifest.clone(), restored_ms: now_ms };
    let mut b = store.batch();
    b.put_meta(meta::RESTORED, &serde_json::to_vec(&marker).map_err(|e| e.to_string())?);
    b.put_meta(meta::FEED_EPOCH, &epoch);
    store.commit(b).map_err(|e| e.to_string())?;
    Ok(manifest)
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
    /// From the store's marker at start-up.
    pub fn load(store: &Store, has_parent: bool) -> Result<Recovery, String> {
        let r = Recovery::default();
        let mut s = r.lock();
        s.has_parent = has_parent;
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
        if s.restoring && (from_parent || !s.has_parent) && s.caught_up_with.is_none() {
            s.caught_up_with = Some(peer.to_string());
        }
    }

    /// An admin's override: no peer could confirm.
    pub fn force(&self, by: &str) {
        let mut s = self.lock();
        if s.restoring {
            s.caught_up_with = Some(by.to_string());
            s.forced = true;
        }
    }

    /// Whether the writer may end the restore now, given our own records
    /// still waiting for parents.
    pub fn may_confirm(&self, own_waiting: usize) -> bool {
        let mut s = self.lock();
        s.own_waiting = own_waiting;
        s.restoring && s.caught_up_with.is_some() && (own_waiting == 0 || s.forced)
    }

    /// The writer ended the restore (the marker's removal is in its batch).
    pub fn confirmed(&self, now_ms: u64) {
        let mut s = self.lock();
        s.restoring = false;
        s.confirmed_ms = Some(now_ms);
        s.confirmed_by = s.caught_up_with.clone();
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
        Some(p) if p.is_relative() => Some(std::env::current_dir().map_err(|e| e.to_string())?.join(p)),
        other => other.map(Path::to_path_buf),
    };
    match Store::open(&cfg.db_path()) {
        Ok(store) => {
            let now = crate::context::now_ms();
            let dir = out.unwrap_or_else(|| cfg.backup_dir().join(format!("zongzhi-{}-{}", cfg.division, stamp(now))));
            let node = crate::api::NodeInfo { id: key.id(), division: cfg.division, name: cfg.name.clone() };
            let key_file = with_key.then(|| cfg.key_path());
            let manifest = backup(&store, &dir, &node, key_file.as_deref(), now)?;
            Ok((dir, manifest))
        }
        Err(crate::store::StoreError::InUse(_)) => ask_running_node(cfg, &key, out.as_deref(), with_key),
        Err(e) => Err(format!("opening the store: {e}")),
    }
}

/// `20261207-171500`, China time.
pub fn stamp(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8))).strftime("%Y%m%d-%H%M%S").to_string())
        .unwrap_or_default()
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

/// `zongzhi-node restore` (the node stopped): the backup's store in place
/// of the data directory's (moved aside with `force`), the key from the
/// backup if the data directory has none, and the restore marker.
pub fn restore_command(cfg: &crate::config::Config, from: &Path, force: bool) -> Result<Manifest, String> {
    let manifest = read_manifest(from)?;
    let key_path = cfg.key_path();
    if !key_path.exists() {
        if !manifest.key_included {
            return Err(format!("{} is missing and the backup does not hold the key: put the node key there first", key_path.display()));
        }
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| e.to_string())?;
        copy_private(&from.join("node.key"), &key_path)?;
    }
    let key = crate::node::load_key(cfg).map_err(|e| e.to_string())?;
    if key.id().to_string() != manifest.node_id {
        return Err(format!("the backup is of node {} but {} holds the key of {}", &manifest.node_id[..10], key_path.display(), key.id().fmt_short()));
    }
    if manifest.division != cfg.division.to_string() {
        return Err(format!("the backup is of division {} but the config says {}", manifest.division, cfg.division));
    }
    let db = cfg.db_path();
    if db.exists() {
        if !force {
            return Err(format!("{} already holds a store: pass --force to move it aside (it is kept as db.replaced-<time>)", db.display()));
        }
        if let Err(crate::store::StoreError::InUse(_)) = Store::open(&db) {
            return Err("the node is running: stop it before restoring".into());
        }
        let aside = cfg.data_dir.join(format!("db.replaced-{}", stamp(crate::context::now_ms())));
        std::fs::rename(&db, &aside).map_err(|e| format!("moving {} aside: {e}", db.display()))?;
    }
    let mut epoch = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut epoch);
    restore(from, &db, crate::context::now_ms(), epoch)
}
