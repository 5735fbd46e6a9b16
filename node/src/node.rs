//! Start-up, identity files, and shutdown.

use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::{bail, Context};
use zongzhi_protocol::cert::{EnrollmentRequest, NodeCert};
use zongzhi_protocol::{Body, Level, NodeKey, Policy};

use crate::api::{self, AppState, NodeInfo};
use crate::config::Config;
use crate::ledger::{self, Ledger, Writer};
use crate::store::{meta, Store};

/// Validity of a self-signed city root cert: 20 years.
const ROOT_VALIDITY_MS: u64 = 20 * 365 * 24 * 3600 * 1000;

/// Writes a secret key file readable only by its owner.
fn write_secret(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

pub fn load_key(cfg: &Config) -> anyhow::Result<NodeKey> {
    let path = cfg.key_path();
    let pem = std::fs::read_to_string(&path)
        .with_context(|| format!("reading node key {} (run `zongzhi-node init` first)", path.display()))?;
    NodeKey::from_pkcs8_pem(&pem).with_context(|| format!("node key {}", path.display()))
}

/// What `init` did.
#[derive(Debug)]
pub struct InitOutcome {
    pub key: zongzhi_protocol::NodeId,
    pub enrollment_request: Option<std::path::PathBuf>,
}

/// Creates the key and store. The city also signs its root cert and the
/// default policy; other levels write an enrollment request for the parent.
pub fn init(cfg: &Config) -> anyhow::Result<InitOutcome> {
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    if cfg.key_path().exists() {
        bail!("{} already exists: this node is initialised", cfg.key_path().display());
    }
    let key = NodeKey::generate();
    write_secret(&cfg.key_path(), &key.to_pkcs8_pem()?)?;
    let store = Arc::new(Store::open(&cfg.db_path())?);
    let mut b = store.batch();
    b.put_meta(meta::NODE_ID, key.id().as_bytes());
    let mut epoch = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut epoch);
    b.put_meta(meta::FEED_EPOCH, &epoch);
    store.commit(b)?;
    let id = key.id();
    let now = ledger::now_ms();
    if cfg.division.level() == Level::City {
        let policy = Arc::new(RwLock::new(Arc::new(Policy::default_policy())));
        let mut writer = Writer::new(store.clone(), Arc::new(key), cfg.division, policy)?;
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
        writer.append_own(Body::NodeCert(cert))?;
        writer.append_own(Body::Policy(Box::new(Policy::default_policy())))?;
        Ok(InitOutcome { key: id, enrollment_request: None })
    } else {
        let req = EnrollmentRequest::new(&key, cfg.division, &cfg.name, now);
        let path = cfg.enrollment_request_path();
        std::fs::write(&path, req.to_armored())?;
        Ok(InitOutcome { key: id, enrollment_request: Some(path) })
    }
}

/// Opens the store and checks it belongs to this key.
pub fn open_store(cfg: &Config, key: &NodeKey) -> anyhow::Result<Arc<Store>> {
    let store = Store::open(&cfg.db_path()).with_context(|| format!("opening store {}", cfg.db_path().display()))?;
    match store.meta_get(meta::NODE_ID)? {
        Some(v) if v.as_slice() == key.id().as_bytes() => Ok(Arc::new(store)),
        Some(_) => bail!("the store in {} belongs to another node key", cfg.db_path().display()),
        None => bail!("the store in {} was not initialised (run `zongzhi-node init`)", cfg.db_path().display()),
    }
}

/// Runs the node until `shutdown` resolves.
pub async fn run(cfg: Config, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    let key = Arc::new(load_key(&cfg)?);
    let store = open_store(&cfg, &key)?;
    tracing::info!(node = %key.id().fmt_short(), division = %cfg.division, level = cfg.division.level().as_str(), "store opened, {} records", store.feed_len()?);
    let policy = Arc::new(RwLock::new(Arc::new(Policy::default_policy())));
    let writer = Writer::new(store.clone(), key.clone(), cfg.division, policy.clone())?;
    let ledger = Ledger::start(writer);
    let state = AppState {
        store: store.clone(),
        ledger,
        node: NodeInfo { id: key.id(), division: cfg.division, name: cfg.name.clone() },
        policy,
    };
    let listener = tokio::net::TcpListener::bind(cfg.http_listen)
        .await
        .with_context(|| format!("binding HTTP {}", cfg.http_listen))?;
    tracing::info!("HTTP API listening on http://{}", listener.local_addr()?);
    axum::serve(listener, api::router(state)).with_graceful_shutdown(shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}
