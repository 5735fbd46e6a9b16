//! The node's TOML configuration.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zongzhi_protocol::{DivisionCode, NodeId};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the RocksDB store and the node key live. Relative paths are
    /// relative to the config file.
    pub data_dir: PathBuf,
    /// 12-digit division code of this center.
    pub division: DivisionCode,
    /// Official name, e.g. 西湖区社会治安综合治理中心.
    pub name: String,
    /// HTTP API address (default 127.0.0.1:7800).
    #[serde(default = "default_http")]
    pub http_listen: SocketAddr,
    /// QUIC address for child nodes to dial (used by federation).
    #[serde(default)]
    pub quic_listen: Option<SocketAddr>,
    /// The parent center's QUIC address (absent at the city).
    #[serde(default)]
    pub parent: Option<String>,
    /// The city root key (hex). The city's own key when absent at the city.
    #[serde(default)]
    pub root_key: Option<NodeId>,
    /// Seconds between scans for overdue cases to supervise (0: never).
    #[serde(default = "default_supervision_interval")]
    pub supervision_interval_secs: u64,
    /// Shifts this node's wall clock by this many seconds (tests and drills
    /// only: a center's node runs on the real time). Every node of a tree
    /// must use the same offset, or their clocks disagree.
    #[serde(default)]
    pub clock_offset_secs: i64,
    /// Disk space (MiB) kept in `reserve.bin` in the data directory and
    /// released when the disk fills up, so the node can still start and
    /// reopen its store (see `workers::storage`). 0: none.
    #[serde(default = "default_reserve_mb")]
    pub storage_reserve_mb: u64,
    /// HTTPS address for the console on the center's LAN (with `tls_cert`
    /// and `tls_key`).
    #[serde(default)]
    pub https_listen: Option<SocketAddr>,
    /// PEM certificate chain and private key of the HTTPS listener
    /// (`zongzhi-node https-cert` makes a self-signed pair); relative to
    /// the config file.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Allows `http_listen` on an address other than loopback: the console
    /// and its passwords then cross the network unencrypted.
    #[serde(default)]
    pub insecure_http: bool,
    /// HTTP(S) connections open at once (over both listeners).
    #[serde(default = "default_max_connections")]
    pub http_max_connections: usize,
    /// HTTP(S) connections one client address (IPv4, IPv6 /64) may hold
    /// open at once (default: an eighth of `http_max_connections`), so one
    /// client cannot take the whole budget.
    #[serde(default)]
    pub http_max_connections_per_address: Option<usize>,
    /// Seconds a client has for the TLS handshake and each request's headers.
    #[serde(default = "default_header_timeout")]
    pub http_header_timeout_secs: u64,
    /// Seconds a keep-alive connection may stay without a request.
    #[serde(default = "default_idle_timeout")]
    pub http_idle_timeout_secs: u64,
    /// How far back (hours) a filing's 受理时间 (`received_at`) may lie.
    /// Every deadline runs from it, so a case dated back further arrives
    /// overdue and draws supervision at once; 72 (a weekend's paper intake)
    /// by default. Raise it only to enter a backlog (补录), knowingly.
    #[serde(default = "default_received_at_max_hours")]
    pub received_at_max_hours: u64,
    /// Where online backups from the console go (default
    /// `<data_dir>/backups`; better another disk). Relative to the config file.
    #[serde(default)]
    pub backup_dir: Option<PathBuf>,
    /// Login backoff, lockout and the bound on password hashes
    /// ([`crate::login::LoginConfig`]; the defaults suit a center).
    #[serde(default)]
    pub login: crate::login::LoginConfig,
    /// The citizens' public progress page (`/public/`) and its API
    /// ([`crate::citizen::PublicConfig`]; off unless enabled).
    #[serde(default)]
    pub public: crate::citizen::PublicConfig,
    /// Messages to complainants (receipt, progress, resolution, rating
    /// invitation) through a webhook or the log
    /// ([`crate::notify::NotifyConfig`]); none when absent.
    #[serde(default)]
    pub notify: Option<crate::notify::NotifyConfig>,
    /// Systems that file cases here (a 12345 platform, a 网格 app) and get
    /// status callbacks: `[[integration]]` tables
    /// ([`crate::integration::IntegrationConfig`]).
    #[serde(default, rename = "integration")]
    pub integrations: Vec<crate::integration::IntegrationConfig>,
    /// The sync protocol versions this node offers, newest first (default:
    /// every one this release speaks, see `zongzhi-node --version`).
    /// Narrowing it is for drills of a mixed-version tree: a link is
    /// refused when the two ends have none in common.
    #[serde(default)]
    pub sync_protocols: Option<Vec<u32>>,
}

fn default_max_connections() -> usize {
    512
}

fn default_header_timeout() -> u64 {
    10
}

fn default_idle_timeout() -> u64 {
    60
}

fn default_received_at_max_hours() -> u64 {
    72
}

fn default_reserve_mb() -> u64 {
    64
}

fn default_supervision_interval() -> u64 {
    60
}

fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7800))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
        // Every command of a node with a shifted clock (run, import-cert,
        // reindex …) reads the same time.
        if cfg.clock_offset_secs != 0 {
            crate::context::set_clock_offset_ms(cfg.clock_offset_secs.saturating_mul(1000));
        }
        if cfg.name.trim().is_empty() || cfg.name.chars().count() > 100 {
            return Err(ConfigError::Parse { path: path.into(), message: "name must be 1 to 100 characters".into() });
        }
        if let Some(v) = &cfg.sync_protocols
            && (v.is_empty() || v.iter().any(|p| zongzhi_protocol::sync::alpn_of(*p).is_none()))
        {
            let spoken: Vec<String> = zongzhi_protocol::sync::PROTOCOLS.iter().map(|(v, _)| v.to_string()).collect();
            return Err(ConfigError::Parse { path: path.into(), message: format!("sync_protocols: name one or more of {}", spoken.join(", ")) });
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [Some(&mut cfg.data_dir), cfg.tls_cert.as_mut(), cfg.tls_key.as_mut(), cfg.backup_dir.as_mut()].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(cfg)
    }

    /// What this node reads, writes and speaks.
    pub fn capabilities(&self) -> crate::release::Capabilities {
        let mut caps = crate::release::Capabilities::this_build();
        if let Some(p) = &self.sync_protocols {
            caps.protocols = p.clone();
        }
        caps
    }

    pub fn key_path(&self) -> PathBuf {
        self.data_dir.join("node.key")
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("db")
    }

    /// Why this configuration would serve the console unsafely or not at
    /// all, with what to change.
    pub fn check_http(&self) -> Result<(), String> {
        if !self.http_listen.ip().is_loopback() && !self.insecure_http {
            return Err(format!(
                "http_listen = \"{}\" would serve the console and its passwords unencrypted on the network. \
                 Serve it over HTTPS instead: set https_listen, tls_cert and tls_key (`zongzhi-node https-cert --config <this file> --host <address>` makes a self-signed certificate), \
                 and keep http_listen on 127.0.0.1 for the CLI; or set insecure_http = true to accept plain HTTP",
                self.http_listen
            ));
        }
        match (&self.https_listen, &self.tls_cert, &self.tls_key) {
            (Some(_), Some(_), Some(_)) | (None, None, None) => Ok(()),
            (Some(_), _, _) => Err("https_listen needs tls_cert and tls_key (PEM files; `zongzhi-node https-cert` makes a self-signed pair)".into()),
            (None, _, _) => Err("tls_cert and tls_key are set but https_listen is not: set the address to serve HTTPS on, e.g. https_listen = \"0.0.0.0:7843\"".into()),
        }
    }

    pub fn backup_dir(&self) -> PathBuf {
        self.backup_dir.clone().unwrap_or_else(|| self.data_dir.join("backups"))
    }

    /// Where `https-cert` writes the self-signed pair.
    pub fn default_tls_paths(&self) -> (PathBuf, PathBuf) {
        (self.data_dir.join("https-cert.pem"), self.data_dir.join("https-key.pem"))
    }

    /// The HTTPS certificate and key files this node has: those the config
    /// names, else the pair `https-cert` wrote into the data directory if
    /// it is there (kept by backups either way).
    pub fn tls_files(&self) -> (Option<PathBuf>, Option<PathBuf>) {
        let (cert, key) = self.default_tls_paths();
        (self.tls_cert.clone().or_else(|| cert.exists().then_some(cert)), self.tls_key.clone().or_else(|| key.exists().then_some(key)))
    }

    pub fn enrollment_request_path(&self) -> PathBuf {
        self.data_dir.join("enrollment-request.txt")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_example_and_refuses_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("n.toml");
        std::fs::write(&p, "data_dir = \"d\"\ndivision = \"330102001001\"\nname = \"某村工作站\"\n").unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.http_listen.port(), 7800);
        assert_eq!(c.data_dir, dir.path().join("d"));
        std::fs::write(&p, "data_dir = \"d\"\ndivision = \"330102001001\"\nname = \"x\"\nhttp = 1\n").unwrap();
        assert!(Config::load(&p).is_err());
        std::fs::write(&p, "data_dir = \"d\"\ndivision = \"33010200100\"\nname = \"x\"\n").unwrap();
        assert!(Config::load(&p).is_err());
    }

    #[test]
    fn notify_table_is_optional_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("n.toml");
        let base = "data_dir = \"d\"\ndivision = \"330102001001\"\nname = \"某村工作站\"\n";
        std::fs::write(&p, base).unwrap();
        assert!(Config::load(&p).unwrap().notify.is_none());
        std::fs::write(&p, format!("{base}[notify]\nadapter = \"webhook\"\nurl = \"http://127.0.0.1:9000/sms\"\ntoken = \"t\"\n[notify.templates]\nprogress = \"进展：{{note}}\"\n")).unwrap();
        let n = Config::load(&p).unwrap().notify.unwrap();
        assert_eq!((n.adapter, n.give_up_after_hours, n.templates.progress.as_deref()), (crate::notify::AdapterKind::Webhook, 72, Some("进展：{note}")));
        assert!(!format!("{n:?}").contains("token = \"t\"") && format!("{n:?}").contains("Token(…)"));
        crate::notify::Notifier::from_config(&n, "x", None).unwrap();
        for bad in ["[notify]\nadapter = \"sms\"\n", "[notify]\nadapter = \"log\"\nretries = 3\n", "[notify]\nadapter = \"log\"\n[notify.templates]\nreciept = \"x\"\n"] {
            std::fs::write(&p, format!("{base}{bad}")).unwrap();
            assert!(Config::load(&p).is_err(), "{bad}");
        }
        // Read, but refused at start with what to fix.
        std::fs::write(&p, format!("{base}[notify]\nadapter = \"log\"\n[notify.templates]\nreceipt = \"编号{{numbr}}\"\n")).unwrap();
        let e = crate::notify::Notifier::from_config(&Config::load(&p).unwrap().notify.unwrap(), "x", None).unwrap_err();
        assert!(e.contains("receipt template uses {numbr}, which is not a variable"), "{e}");
        std::fs::write(&p, format!("{base}[notify]\nadapter = \"webhook\"\n")).unwrap();
        let e = crate::notify::Notifier::from_config(&Config::load(&p).unwrap().notify.unwrap(), "x", None).unwrap_err();
        assert!(e.contains("needs url"), "{e}");
    }
}
