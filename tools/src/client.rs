//! A small blocking client for a node's HTTP API.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const DEFAULT_NODE: &str = "http://127.0.0.1:7800";

/// The saved login: which node, and the bearer token.
#[derive(Debug, Serialize, Deserialize)]
pub struct SavedSession {
    pub node: String,
    pub token: String,
    pub username: String,
}

pub struct Client {
    http: reqwest::blocking::Client,
    pub base: String,
    token: Option<String>,
}

/// An error the node answered with.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub rule: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} {})", self.message, self.status, self.code)?;
        if let Some(rule) = &self.rule {
            write!(f, " [rule: {rule}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

pub fn session_path(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p;
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("zongzhi").join("session.json")
}

pub fn load_session(path: &PathBuf) -> Option<SavedSession> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn save_session(path: &PathBuf, s: &SavedSession) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(serde_json::to_string_pretty(s)?.as_bytes())?;
    Ok(())
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Client> {
        let http = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(60)).build()?;
        Ok(Client { http, base: base.trim_end_matches('/').to_string(), token })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> anyhow::Result<reqwest::blocking::Response> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().with_context(|| format!("cannot reach the node at {}", self.base))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body: Value = resp.json().unwrap_or(Value::Null);
        let err = &body["error"];
        Err(ApiError {
            status,
            code: err["code"].as_str().unwrap_or("error").to_string(),
            message: err["message"].as_str().unwrap_or("request failed").to_string(),
            rule: err["rule"].as_str().map(String::from),
        }
        .into())
    }

    fn json(resp: reqwest::blocking::Response) -> anyhow::Result<Value> {
        if resp.status().as_u16() == 204 {
            return Ok(Value::Null);
        }
        resp.json().map_err(|e| anyhow!("the node sent an unreadable answer: {e}"))
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        Self::json(self.send(self.http.get(self.url(path)))?)
    }

    pub fn get_query(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        Self::json(self.send(self.http.get(self.url(path)).query(query))?)
    }

    pub fn get_query_bytes(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Vec<u8>> {
        Ok(self.send(self.http.get(self.url(path)).query(query))?.bytes()?.to_vec())
    }

    pub fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        Ok(self.send(self.http.get(self.url(path)))?.bytes()?.to_vec())
    }

    /// Streams a GET answer into `out` (through `out.part`, renamed when
    /// complete); returns the bytes written. Exports can take long, so the
    /// request gets an hour instead of the usual minute.
    pub fn download(&self, path: &str, query: &[(&str, String)], out: &std::path::Path) -> anyhow::Result<u64> {
        let req = self.http.get(self.url(path)).query(query).timeout(std::time::Duration::from_secs(3600));
        let mut resp = self.send(req)?;
        let mut part = out.as_os_str().to_owned();
        part.push(".part");
        let part = PathBuf::from(part);
        let result = (|| -> anyhow::Result<u64> {
            let mut file = std::fs::File::create(&part).with_context(|| format!("creating {}", part.display()))?;
            let n = resp.copy_to(&mut file).map_err(|e| anyhow!("the download broke off: {e}"))?;
            file.sync_all()?;
            Ok(n)
        })();
        match result {
            Ok(n) => {
                std::fs::rename(&part, out).with_context(|| format!("writing {}", out.display()))?;
                Ok(n)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                Err(e)
            }
        }
    }

    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        Self::json(self.send(self.http.post(self.url(path)).json(body))?)
    }

    pub fn post_bytes(&self, path: &str, query: &[(&str, String)], mime: &str, bytes: Vec<u8>) -> anyhow::Result<Value> {
        let req = self.http.post(self.url(path)).query(query).header("content-type", mime).body(bytes);
        Self::json(self.send(req)?)
    }

    /// Another client with the same node and token.
    pub fn clone_client(&self) -> Client {
        Client { http: self.http.clone(), base: self.base.clone(), token: self.token.clone() }
    }

    pub fn require_login(&self) -> anyhow::Result<()> {
        if self.token.is_none() {
            bail!("not logged in: run `zongzhi login --user NAME` first");
        }
        Ok(())
    }
}
