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
    /// Login backoff, lockout and the bound on password hashes
    /// ([`crate::login::LoginConfig`]; the defaults suit a center).
    #[serde(default)]
    pub login: crate::login::LoginConfig,
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
        if cfg.data_dir.is_relative() {
            let base = path.parent().unwrap_or(Path::new("."));
            cfg.data_dir = base.join(&cfg.data_dir);
        }
        Ok(cfg)
    }

    pub fn key_path(&self) -> PathBuf {
        self.data_dir.join("node.key")
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("db")
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
}
