//! Start-up, identity files, and shutdown.

use std::path::Path;
use std::sync::{Arc, RwLock};

use zongzhi_protocol::cert::{EnrollmentRequest, NodeCert};
use zongzhi_protocol::identity::KeyError;
use zongzhi_protocol::{Body, Level, NodeKey, Policy};

use crate::api::{self, AppState, NodeInfo};
use crate::config::Config;
use crate::context::Context;
use crate::ledger::LedgerError;
use crate::ledger::{self, Ledger, Op, Writer};
use crate::store::{Store, StoreError, meta};

/// Why a node could not be set up or started. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration or the data directory is not what this step needs.
    #[error("{0}")]
    Setup(String),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{what}: {source}")]
    Key { what: String, source: KeyError },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The QUIC endpoint could not start.
    #[error("replication: {0}")]
    Net(String),
}

fn io_at(what: String) -> impl FnOnce(std::io::Error) -> NodeError {
    move |source| NodeError::Io { what, source }
}

fn setup<T>(message: String) -> Result<T, NodeError> {
    Err(NodeError::Setup(message))
}

/// Validity of a self-signed city root cert: 20 years.
const ROOT_VALIDITY_MS: u64 = 20 * 365 * 24 * 3600 * 1000;

/// Writes a secret file (a key) readable only by its owner; refuses to
/// replace one.
pub fn write_secret(path: &Path, contents: &str) -> Result<(), NodeError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io_at(format!("creating {}", path.display())))?;
    f.write_all(contents.as_bytes()).and_then(|()| f.sync_all()).map_err(io_at(format!("writing {}", path.display())))?;
    Ok(())
}

pub fn load_key(cfg: &Config) -> Result<NodeKey, NodeError> {
    let path = cfg.key_path();
    let pem = std::fs::read_to_string(&path).map_err(io_at(format!("reading node key {} (run `zongzhi-node init` first)", path.display())))?;
    NodeKey::from_pkcs8_pem(&pem).map_err(|source| NodeError::Key { what: format!("node key {}", path.display()), source })
}

/// What `init` did.
#[derive(Debug)]
pub struct InitOutcome {
    pub key: zongzhi_protocol::NodeId,
    pub enrollment_request: Option<std::path::PathBuf>,
}

/// Creates the key and store. The city also signs its root cert and the
/// default policy; other levels write an enrollment request for the parent.
pub fn init(cfg: &Config) -> Result<InitOutcome, NodeError> {
    init_with(cfg, &mut rand_core::OsRng, &crate::context::Clock::System)
}

/// [`init`] with the key's and the feed epoch's randomness and the time
/// taken from the caller (the simulator passes its seed and its clock, so a
/// seed replays the same keys and record ids).
pub fn init_with(cfg: &Config, rng: &mut impl rand_core::CryptoRngCore, clock: &crate::context::Clock) -> Result<InitOutcome, NodeError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(io_at(format!("creating {}", cfg.data_dir.display())))?;
    if cfg.key_path().exists() {
        return setup(format!("{} already exists: this node is initialised", cfg.key_path().display()));
    }
    let key = NodeKey::generate(rng);
    let pem = key.to_pkcs8_pem().map_err(|source| NodeError::Key { what: "encoding the new node key".into(), source })?;
    write_secret(&cfg.key_path(), &pem)?;
    let store = Arc::new(Store::open_with(&cfg.db_path(), || {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        k
    })?);
    let mut b = store.batch();
    b.put_meta(meta::NODE_ID, key.id().as_bytes());
    let mut epoch = [0u8; 16];
    rng.fill_bytes(&mut epoch);
    b.put_meta(meta::FEED_EPOCH, &epoch);
    store.commit(b)?;
    let id = key.id();
    let now = clock.now_ms();
    if cfg.division.level() == Level::City {
        let mut shared = shared_state(cfg, store.clone(), Arc::new(key))?;
        shared.clock = clock.clone();
        let mut writer = Writer::new(shared)?;
        let cert = NodeCert {
            key: id,
            division: cfg.division,
            level: Level::City,
            name: cfg.name.clone(),
            issuer: id,
            not_before_ms: now.saturating_sub(3_600_000),
            not_after_ms: now + ROOT_VALIDITY_MS,
            serial: 1,
        };
        writer.run(Op::AppendOwn { body: Body::NodeCert(cert) })?;
        writer.run(Op::AppendOwn { body: Body::Policy(Box::new(Policy::default_policy())) })?;
        Ok(InitOutcome { key: id, enrollment_request: None })
    } else {
        let req = EnrollmentRequest::new(&key, cfg.division, &cfg.name, now);
        let path = cfg.enrollment_request_path();
        std::fs::write(&path, req.to_armored()).map_err(io_at(format!("writing {}", path.display())))?;
        Ok(InitOutcome { key: id, enrollment_request: Some(path) })
    }
}

/// Refuses to start on a data directory this process cannot write (a
/// relative `data_dir` under the packaged unit resolves below the
/// read-only /etc/zongzhi, say), naming it, before RocksDB fails on it.
fn check_writable(data_dir: &Path) -> Result<(), NodeError> {
    match tempfile::Builder::new().prefix(".write-check").tempfile_in(data_dir) {
        Ok(_) => Ok(()),
        Err(e) => setup(format!(
            "data_dir {} is not writable by this process ({e}); under the packaged systemd unit only /var/lib/zongzhi and /var/backups/zongzhi are: set data_dir = \"/var/lib/zongzhi\" (an absolute path) in the config",
            data_dir.display()
        )),
    }
}

/// Opens the store and checks it belongs to this key.
pub fn open_store(cfg: &Config, key: &NodeKey) -> Result<Arc<Store>, NodeError> {
    let store = Store::open(&cfg.db_path()).map_err(|e| match e {
        crate::store::StoreError::InUse(_) => NodeError::Store(e),
        e => NodeError::Setup(format!("opening store {}: {e}", cfg.db_path().display())),
    })?;
    match store.meta_get(meta::NODE_ID)? {
        Some(v) if v.as_slice() == key.id().as_bytes() => {
            finish_migration(cfg, key, &store)?;
            Ok(Arc::new(store))
        }
        Some(_) => setup(format!("the store in {} belongs to another node key", cfg.db_path().display())),
        None => setup(format!("the store in {} was not initialised (run `zongzhi-node init`)", cfg.db_path().display())),
    }
}

/// Ends what opening the store began: a migration step that asked for the
/// derived data to be rebuilt (a crash during the rebuild leaves the ask,
/// so the next open rebuilds again). Every command that opens the store
/// passes here, so none reads derived data of an older schema.
fn finish_migration(cfg: &Config, key: &NodeKey, store: &Store) -> Result<(), NodeError> {
    let m = store.migration();
    if !m.applied.is_empty() {
        tracing::warn!(from = ?m.from, steps = ?m.applied, checkpoint = ?m.checkpoint, "migrated the data directory to schema {}", crate::store::SCHEMA_VERSION);
    }
    if store.needs_reindex() {
        tracing::warn!("rebuilding this data directory's derived data (indexes, summaries, statistics) for schema {}", crate::store::SCHEMA_VERSION);
        let (trust, policy) = Context::load_trust_and_policy_from_feed(store, root_key(cfg, key))?;
        let n = ledger::reindex(store, &policy, &trust)?;
        store.reindexed()?;
        tracing::info!("rebuilt derived data for {n} cases");
    }
    Ok(())
}

/// The trust root: the configured root key, or the city's own key.
pub fn root_key(cfg: &Config, key: &NodeKey) -> zongzhi_protocol::NodeId {
    cfg.root_key.unwrap_or_else(|| key.id())
}

/// Loads the shared state (policy, trust) over an open store.
pub fn shared_state(cfg: &Config, store: Arc<Store>, key: Arc<NodeKey>) -> Result<Context, NodeError> {
    let (trust, policy) = Context::load_trust_and_policy(&store, root_key(cfg, &key))?;
    store.set_repeat_window(policy.current().repeat_window_days)?;
    crate::index::backfill_grade_counts(&store, policy.current())?;
    let (feed, _) = tokio::sync::watch::channel(0);
    // The centers this node enrolled (not revoked) may hold what it signed
    // after a backup: a restore waits for them too.
    let mut children: Vec<zongzhi_protocol::DivisionCode> =
        trust.members().filter(|m| m.cert.division.parent() == Some(cfg.division) && trust.key_of(m.cert.division) == Some(m.cert.key)).map(|m| m.cert.division).collect();
    children.sort();
    children.dedup();
    let parent = cfg.division.parent();
    let recovery = Arc::new(crate::recovery::Recovery::load(&store, parent, &children).map_err(NodeError::Setup)?);
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let timer = metrics.clone();
    store.time_writes(Arc::new(move |took| timer.synced_write(took)));
    Ok(Context {
        store,
        key,
        unit: cfg.division,
        policy: Arc::new(RwLock::new(Arc::new(policy))),
        trust: Arc::new(RwLock::new(Arc::new(trust))),
        feed,
        sync: Default::default(),
        clock: Default::default(),
        storage: Default::default(),
        recovery,
        paths: Arc::new(crate::context::NodePaths { backup_dir: cfg.backup_dir(), key_file: cfg.key_path(), tls_cert: cfg.tls_files().0, tls_key: cfg.tls_files().1 }),
        metrics,
        caps: Arc::new(cfg.capabilities()),
        fleet_changed: tokio::sync::watch::channel(0).0,
        readiness: Default::default(),
    })
}

/// Stores a certificate chain issued by the parent (root first, this node last).
pub fn import_chain(cfg: &Config, text: &str) -> Result<zongzhi_protocol::cert::NodeCert, NodeError> {
    use zongzhi_protocol::cert::{RECORDS_ARMOR, dearmor_all};
    use zongzhi_protocol::trust::verify_chain;
    let Some(root) = cfg.root_key else {
        return setup("set root_key (the city root key, hex) in the config before importing a certificate".into());
    };
    let key = Arc::new(load_key(cfg)?);
    let all: Vec<zongzhi_protocol::Record> =
        dearmor_all(RECORDS_ARMOR, text).iter().map(|b| zongzhi_protocol::Record::decode(b)).collect::<Result<_, _>>().map_err(|e| NodeError::Setup(format!("reading the certificate chain: {e}")))?;
    // The chain from the root to this node, and after it (for a division
    // re-enrolled with a new key) its earlier keys' certificates and their
    // revocations, which the issuer adds.
    let (records, predecessors) = split_chain(all.clone(), &key.id());
    if records.is_empty() {
        // No certificate in the file names this node's key: say whose it is.
        let leaf = all.iter().rev().find_map(|r| match &r.body {
            Body::NodeCert(c) => Some(format!("key {} (division {})", c.key.fmt_short(), c.division)),
            _ => None,
        });
        return match leaf {
            Some(whose) => setup(format!("the certificate chain is for {whose}, not this node's key {}", key.id().fmt_short())),
            None => setup("checking the certificate chain: the file holds no certificate".into()),
        };
    }
    let cert = verify_chain(&records, &root, crate::context::now_ms()).map_err(|e| NodeError::Setup(format!("checking the certificate chain: {e}")))?.clone();
    if cert.key != key.id() {
        return setup(format!("the certificate is for key {}, not this node's key {}", cert.key.fmt_short(), key.id().fmt_short()));
    }
    if cert.division != cfg.division {
        return setup(format!("the certificate is for division {}, this node is {}", cert.division, cfg.division));
    }
    let store = open_store(cfg, &key)?;
    let mut writer = Writer::new(shared_state(cfg, store.clone(), key.clone())?)?;
    let records: Vec<zongzhi_protocol::Record> = records.into_iter().chain(predecessors).collect();
    match writer.run(Op::Ingest { records, blobs: vec![], cursor: None })? {
        ledger::Outcome::Ingested(r) if r.rejected.is_empty() => {
            mark_succession(&store, &writer.shared().trust(), &key.id(), cfg.division)?;
            Ok(cert)
        }
        ledger::Outcome::Ingested(r) => {
            let why: Vec<String> = r.rejected.iter().map(|(id, reason)| format!("{}: {reason}", id.fmt_short())).collect();
            setup(format!("the parent's certificate records were refused: {}", why.join("; ")))
        }
        _ => setup("importing the certificate chain did not store it".into()),
    }
}

/// The certificates from the root to `own` in order, and the rest.
fn split_chain(all: Vec<zongzhi_protocol::Record>, own: &zongzhi_protocol::NodeId) -> (Vec<zongzhi_protocol::Record>, Vec<zongzhi_protocol::Record>) {
    let cert_of = |r: &zongzhi_protocol::Record| match &r.body {
        Body::NodeCert(c) => Some((c.key, c.issuer)),
        _ => None,
    };
    let mut path = Vec::new();
    let mut at = Some(*own);
    while let Some(k) = at {
        let Some(i) = all.iter().position(|r| cert_of(r).is_some_and(|(key, _)| key == k)) else { break };
        let (key, issuer) = cert_of(&all[i]).unwrap_or((k, k));
        path.push(i);
        at = (issuer != key && !path.iter().any(|&j| cert_of(&all[j]).is_some_and(|(kk, _)| kk == issuer))).then_some(issuer);
    }
    path.reverse();
    let chain = path.iter().map(|&i| all[i].clone()).collect();
    let rest = all.into_iter().enumerate().filter(|(i, _)| !path.contains(i)).map(|(_, r)| r).collect();
    (chain, rest)
}

/// A center re-enrolled with a new key while its division's earlier key is
/// revoked: it signs nothing until its parent has given it the division's
/// history back (case numbers go on from there; its open cases, feedback
/// and reports are its own), as a node restored from a backup waits for
/// its own records ([`crate::recovery`]).
fn mark_succession(store: &Store, trust: &zongzhi_protocol::trust::Trust, own: &zongzhi_protocol::NodeId, division: zongzhi_protocol::DivisionCode) -> Result<(), NodeError> {
    let predecessors: Vec<(String, u64)> = trust.predecessors(division).into_iter().filter(|(k, _)| k != own).map(|(k, c)| (k.to_string(), c)).collect();
    // Only a node that has signed nothing yet (a renewed certificate on a
    // working node is no succession).
    if predecessors.is_empty() || store.chain_last(own)?.is_some() {
        return Ok(());
    }
    let marker = crate::recovery::Succession { predecessors, at_ms: crate::context::now_ms() };
    let mut b = store.batch();
    b.put_meta(meta::SUCCESSION, &serde_json::to_vec(&marker).map_err(|e| NodeError::Setup(e.to_string()))?);
    store.commit(b)?;
    tracing::warn!("this center takes over division {division} from a revoked key: it signs nothing until its parent has given back the division's history");
    Ok(())
}

/// The writer over an opened node's shared state, after the passes a crash
/// or an upgrade may have left to do: a revocation's re-fold, the waiting
/// index after a new policy version, and records waiting for parents the
/// node already holds.
pub fn start_writer(shared: Context) -> Result<Writer, NodeError> {
    let mut writer = Writer::new(shared.clone())?;
    writer.void_revoked()?;
    writer.refold_waiting()?;
    writer.after_finalization();
    if shared.store.parked()?.iter().any(|(_, e)| shared.caps.reads(e.needs))
        && let ledger::Outcome::Ingested(r) = writer.run(Op::Unpark)?
    {
        tracing::info!(applied = r.applied, still_held = shared.store.parked()?.len(), "records held aside for a newer format were taken in");
    }
    if shared.store.pending_count(1)? > 0
        && let ledger::Outcome::Ingested(r) = writer.run(Op::Ingest { records: vec![], blobs: vec![], cursor: None })?
        && r.applied > 0
    {
        tracing::info!(applied = r.applied, "applied records that were waiting for parents already held");
    }
    Ok(writer)
}

/// What `run` checks and takes before it opens the store: every refusal
/// a configuration can cause happens here, before RocksDB starts its
/// threads, so a refused start changes nothing and exits with its message.
struct Preflight {
    notifier: Option<Arc<crate::notify::Notifier>>,
    integrations: Arc<crate::integration::Integrations>,
    http: tokio::net::TcpListener,
    /// The HTTPS listener, its acceptor and the certificate file.
    https: Option<(tokio::net::TcpListener, crate::net::http::Acceptor, std::path::PathBuf)>,
    parent: Option<std::net::SocketAddr>,
}

/// The checks of [`Preflight`]: the HTTP setup, notifications, the HTTPS
/// certificate and key, the listen addresses (bound now), the parent's
/// address, and that the QUIC address is free.
async fn preflight(cfg: &Config) -> Result<Preflight, NodeError> {
    cfg.check_http().map_err(NodeError::Setup)?;
    let integrations = Arc::new(crate::integration::Integrations::from_config(&cfg.integrations).map_err(NodeError::Setup)?);
    let notifier = match &cfg.notify {
        Some(n) => Some(crate::notify::Notifier::from_config(n, &cfg.name, cfg.public.url.as_deref()).map_err(NodeError::Setup)?),
        // Integration callbacks go through the same outbox.
        None if integrations.callbacks() => Some(crate::notify::Notifier::callbacks_only(&cfg.name).map_err(NodeError::Setup)?),
        None => None,
    };
    let notifier = notifier.map(|n| Arc::new(n.with_integrations(integrations.clone())));
    let tls = match (&cfg.https_listen, &cfg.tls_cert, &cfg.tls_key) {
        (Some(addr), Some(cert), Some(key)) => Some((*addr, crate::net::http::acceptor(cert, key).map_err(NodeError::Setup)?, cert.clone())),
        _ => None,
    };
    let parent = match &cfg.parent {
        Some(p) => Some(
            tokio::net::lookup_host(p.as_str())
                .await
                .map_err(io_at(format!("resolving parent address {p}")))?
                .next()
                .ok_or_else(|| NodeError::Setup(format!("parent address {p} resolves to nothing")))?,
        ),
        None => None,
    };
    if let Some(addr) = cfg.quic_listen {
        // Only a probe (the endpoint binds it later): a port in use is
        // said now, before the store opens.
        std::net::UdpSocket::bind(addr).map_err(io_at(format!("binding QUIC {addr} (quic_listen)")))?;
    }
    let http = tokio::net::TcpListener::bind(cfg.http_listen).await.map_err(io_at(format!("binding HTTP {}", cfg.http_listen)))?;
    let https = match tls {
        Some((addr, acceptor, cert)) => Some((tokio::net::TcpListener::bind(addr).await.map_err(io_at(format!("binding HTTPS {addr}")))?, acceptor, cert)),
        None => None,
    };
    Ok(Preflight { notifier, integrations, http, https, parent })
}

/// The HTTP limits of the config.
fn http_limits(cfg: &Config) -> crate::net::http::Limits {
    let max_connections = cfg.http_max_connections.max(1);
    crate::net::http::Limits {
        max_connections,
        max_per_address: cfg.http_max_connections_per_address.unwrap_or(max_connections / 8).clamp(1, max_connections),
        header_timeout: std::time::Duration::from_secs(cfg.http_header_timeout_secs.max(1)),
        idle_timeout: std::time::Duration::from_secs(cfg.http_idle_timeout_secs.max(1)),
    }
}

/// Serves the API on the listeners bound by [`preflight`] until
/// `shutdown` resolves; then lets requests in progress finish.
async fn serve_http(
    limits: crate::net::http::Limits,
    plain: tokio::net::TcpListener,
    https: Option<(tokio::net::TcpListener, crate::net::http::Acceptor, std::path::PathBuf)>,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use crate::net::http;
    let server = http::Server::new(app, limits);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    if let Ok(a) = plain.local_addr() {
        tracing::info!("HTTP API listening on http://{a}");
    }
    let mut listeners = vec![tokio::spawn({
        let (server, stop) = (server.clone(), stopped());
        async move { server.listen(plain, None, stop).await }
    })];
    if let Some((listener, acceptor, cert)) = https {
        let fingerprint = http::fingerprint_of(&cert).unwrap_or_default();
        if let Ok(a) = listener.local_addr() {
            tracing::info!("console on https://{a} (certificate SHA-256 {fingerprint})");
        }
        let (server, stop) = (server.clone(), stopped());
        listeners.push(tokio::spawn(async move { server.listen(listener, Some(acceptor), stop).await }));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    for l in listeners {
        let _ = l.await;
    }
    server.shut_down(std::time::Duration::from_secs(10)).await;
}

/// Refuses a trust setup that cannot work, saying what to change: a node
/// that will link (a `parent` or `quic_listen`) below the city needs its
/// certificate imported, and `root_key` must be the key its chain starts
/// from; the city is its own root.
pub fn check_trust_setup(cfg: &Config, shared: &Context) -> Result<(), NodeError> {
    let own = shared.key.id();
    if cfg.division.level() == zongzhi_protocol::Level::City {
        return match cfg.root_key {
            Some(r) if r != own => setup(format!("root_key = {r} but this is the city: the city is the trust root and its root key is its own ({own}); remove root_key from the config")),
            _ => Ok(()),
        };
    }
    let links = cfg.parent.is_some() || cfg.quic_listen.is_some();
    if !links || shared.trust().chain(&own).is_some() {
        return Ok(());
    }
    let Some(root) = cfg.root_key else {
        return setup(
            "this node links to others (parent or quic_listen is set) but has no root_key: set root_key to the city's key (its `GET /api/health` shows it as node_id), then import this node's certificate"
                .into(),
        );
    };
    // A certificate for this key is stored, under another root?
    let mut stored_root = None;
    for id in shared.store.trust_records()? {
        if let Some(bytes) = shared.store.record_bytes(&id)?
            && let Ok(r) = zongzhi_protocol::Record::decode(&bytes)
            && let zongzhi_protocol::Body::NodeCert(c) = &r.body
            && c.key == c.issuer
        {
            stored_root = Some(c.key);
        }
    }
    match stored_root {
        Some(actual) if actual != root => setup(format!(
            "root_key = {} is not the root this node's certificate chain starts from ({}): set root_key to the city's key (check it at the city: `GET /api/health` node_id), or import a chain issued under that root",
            root.fmt_short(),
            actual.fmt_short()
        )),
        _ => setup(format!(
            "this node ({}) has no certificate yet, so its parent would refuse every connection: give {} to the parent center's admin (`zongzhi cert issue`), then run `zongzhi-node import-cert --config <this config> --file chain.txt` and start again (to run on its own, outside the hierarchy, remove parent and quic_listen)",
            own.fmt_short(),
            cfg.enrollment_request_path().display()
        )),
    }
}

/// Runs the node until `shutdown` resolves. Every check a configuration
/// can fail is made before the store opens ([`preflight`]); a failure
/// after the writer started stops it before returning, so no RocksDB
/// thread outlives the error (an exit with one still running aborts).
pub async fn run(cfg: Config, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<(), NodeError> {
    crate::probes::mark_start();
    if cfg.clock_offset_secs != 0 {
        tracing::warn!(secs = cfg.clock_offset_secs, "this node's clock is shifted (clock_offset_secs): tests and drills only");
    }
    let pre = preflight(&cfg).await?;
    let key = Arc::new(load_key(&cfg)?);
    let watch = crate::workers::storage::Watch { data_dir: cfg.data_dir.clone(), reserve_bytes: cfg.storage_reserve_mb << 20 };
    check_writable(&cfg.data_dir)?;
    let store = watch.open(|| open_store(&cfg, &key))?;
    tracing::info!(node = %key.id().fmt_short(), division = %cfg.division, level = cfg.division.level().as_str(), "store opened, {} records", store.feed_len()?);
    let shared = shared_state(&cfg, store.clone(), key.clone())?;
    check_trust_setup(&cfg, &shared)?;
    crate::notify::prepare(&store, pre.notifier.is_some())?;
    let writer = start_writer(shared.clone())?;
    let ledger = Ledger::start(writer);
    let mut tasks = Vec::new();
    let result = serve(&cfg, pre, shared, ledger.clone(), watch, &mut tasks, shutdown).await;
    for t in tasks {
        t.abort();
    }
    // Stop the writer before the store is closed: RocksDB must not be torn
    // down while a thread still uses it.
    ledger.shutdown();
    match &result {
        Ok(()) => tracing::info!("stopped"),
        Err(e) => tracing::error!("stopped: {e}"),
    }
    result
}

/// The running node over its started ledger: workers, links and the API,
/// until `shutdown` resolves. The tasks it spawns are left in `tasks` for
/// [`run`] to stop.
async fn serve(
    cfg: &Config,
    pre: Preflight,
    shared: Context,
    ledger: Ledger,
    watch: crate::workers::storage::Watch,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let Preflight { notifier, integrations, http, https, parent } = pre;
    let node = NodeInfo { id: shared.key.id(), division: cfg.division, name: cfg.name.clone() };
    let state = AppState::new(shared.clone(), ledger.clone(), node, &cfg.login, &cfg.public)?
        .with_notify(notifier.as_ref().map(|n| n.adapter_name()).filter(|a| *a != "off"))
        .with_received_at_max(cfg.received_at_max_hours)
        .with_integrations(integrations);
    if cfg.supervision_interval_secs > 0 {
        let interval = std::time::Duration::from_secs(cfg.supervision_interval_secs);
        tasks.push(tokio::spawn(crate::workers::supervisor::run(shared.clone(), ledger.clone(), interval)));
    }
    if cfg.quic_listen.is_some() || parent.is_some() {
        tasks.extend(crate::net::start(shared.clone(), ledger.clone(), cfg.quic_listen, parent).await.map_err(|e| NodeError::Net(format!("{e:#}")))?);
    }
    if let Some(n) = notifier {
        tracing::info!(adapter = n.adapter_name(), callbacks = n.integrations.callbacks(), "notifications on");
        tasks.push(tokio::spawn(crate::notify::run(shared.clone(), n)));
    }
    watch.check(&shared.store, &shared.storage, shared.clock.now_ms());
    tasks.push(tokio::spawn(crate::workers::storage::run(shared.clone(), watch, shared.storage.clone())));
    serve_http(http_limits(cfg), http, https, api::router(state), shutdown).await;
    Ok(())
}
