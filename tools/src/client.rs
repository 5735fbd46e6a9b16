//! A small blocking client for a node's HTTP API.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const DEFAULT_NODE: &str = "http://127.0.0.1:7800";

/// The saved login: which node, the bearer token (none after a logout),
/// the certificate trusted for that node (`--cacert` at login, so later
/// commands need not repeat it), and the device tokens logins were given
/// (per node and user: a known client gets in while guessing from
/// elsewhere locks the account for unknown ones).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SavedSession {
    pub node: String,
    #[serde(default)]
    pub token: Option<String>,
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cacert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub devices: std::collections::BTreeMap<String, String>,
}

/// The key of a device token in [`SavedSession::devices`].
pub fn device_key(node: &str, username: &str) -> String {
    format!("{username}@{node}")
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

/// The node could not be reached at all (refused, timed out, TLS failed).
#[derive(Debug)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

/// A command that needs a session was run without one.
#[derive(Debug)]
pub struct NotLoggedIn;

impl std::fmt::Display for NotLoggedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not logged in: run `zongzhi login --user NAME` first")
    }
}

impl std::error::Error for NotLoggedIn {}

/// The node's error in its `{"error": {"code", "message", "rule"}}` body;
/// for a body without one (a proxy's page, a plain-text refusal), its text.
fn api_error(status: reqwest::StatusCode, body: &str) -> ApiError {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let err = &v["error"];
    let message = match err["message"].as_str() {
        Some(m) => m.to_string(),
        None => {
            let text = body.trim();
            match text.lines().next() {
                Some(line) if !text.starts_with('<') && line.chars().count() <= 300 => line.to_string(),
                _ => status.canonical_reason().unwrap_or("request failed").to_string(),
            }
        }
    };
    ApiError { status: status.as_u16(), code: err["code"].as_str().unwrap_or("error").to_string(), message, rule: err["rule"].as_str().map(String::from) }
}

/// The base URL of the node named by `given`: a URL (`http://…`,
/// `https://…`) as it is, or `host:port` / `[v6]:port` as `http://host:port`.
/// `None` when it is neither.
pub fn node_url(given: &str) -> Option<String> {
    let given = given.trim();
    let url = if given.contains("://") {
        given.to_string()
    } else {
        // Without a scheme, an address with its port: the port is what
        // tells `127.0.0.1:7800` from a typo (`7800`, `http//…`).
        let authority = given.split('/').next().unwrap_or_default();
        let (host, port) = authority.rsplit_once(':')?;
        let host_ok = !host.is_empty() && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
        if !host_ok || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        format!("http://{given}")
    };
    let parsed = reqwest::Url::parse(&url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) || parsed.cannot_be_a_base() {
        return None;
    }
    Some(url.trim_end_matches('/').to_string())
}

pub fn session_path(explicit: Option<PathBuf>) -> PathBuf {
    if let Some(p) = explicit {
        return p;
    }
    let base = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config"))).unwrap_or_else(|| PathBuf::from("."));
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
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).with_context(|| format!("writing {}", path.display()))?;
    f.write_all(serde_json::to_string_pretty(s)?.as_bytes())?;
    Ok(())
}

/// The certificate (PEM) that HTTPS nodes are checked against (`--cacert`).
static CA_CERT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Trust this PEM certificate (a node's self-signed one, or the center's
/// CA) for `https://` nodes; without it no HTTPS node is trusted.
pub fn set_ca_cert(path: PathBuf) {
    let _ = CA_CERT.set(path);
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Client> {
        let mut builder = reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(60)).use_rustls_tls();
        if let Some(path) = CA_CERT.get() {
            let pem = std::fs::read(path).with_context(|| format!("reading --cacert {}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem).with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder.build()?;
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
        let resp = req.send().map_err(|e| {
            let detail = format!("{e:?}");
            if self.base.starts_with("https://") && detail.contains("UnknownIssuer") {
                anyhow::Error::new(Unreachable(format!(
                    "the HTTPS certificate of {} is not trusted: pass --cacert with its PEM file (`zongzhi-node https-cert` wrote it as https-cert.pem in the node's data directory)",
                    self.base
                )))
            } else {
                anyhow::Error::new(e).context(Unreachable(format!("cannot reach the node at {}", self.base)))
            }
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.text().unwrap_or_default();
        Err(api_error(status, &body).into())
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

    /// A GET whose answer is read whatever its status (the probes answer
    /// 503 with JSON of their own): the status and the JSON.
    pub fn probe(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let resp = self.http.get(self.url(path)).send().map_err(|e| anyhow::Error::new(e).context(Unreachable(format!("cannot reach the node at {}", self.base))))?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().map_err(|e| anyhow!("the node sent an unreadable answer: {e}"))?))
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
    /// complete; `-`: standard output); returns the bytes written. Exports
    /// can take long, so the request gets an hour instead of the usual minute.
    pub fn download(&self, path: &str, query: &[(&str, String)], out: &std::path::Path) -> anyhow::Result<u64> {
        let req = self.http.get(self.url(path)).query(query).timeout(std::time::Duration::from_secs(3600));
        let mut resp = self.send(req)?;
        if crate::out::is_dash(out) {
            let mut stdout = std::io::stdout().lock();
            let n = resp.copy_to(&mut stdout).map_err(|e| anyhow!("the download broke off: {e}"))?;
            std::io::Write::flush(&mut stdout).map_err(|e| anyhow!("writing to standard output: {e}"))?;
            return Ok(n);
        }
        let mut part = out.as_os_str().to_owned();
        part.push(".part");
        let part = PathBuf::from(part);
        let result = (|| -> anyhow::Result<u64> {
            let file = std::fs::File::create(&part).with_context(|| format!("creating {}", part.display()))?;
            let synced = file.try_clone()?;
            let bar = crate::progress::bytes(resp.content_length(), &format!("{}", out.display()));
            let mut file = bar.wrap_write(file);
            let n = resp.copy_to(&mut file).map_err(|e| anyhow!("the download broke off: {e}"))?;
            bar.finish_and_clear();
            synced.sync_all()?;
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
            return Err(NotLoggedIn.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses() {
        for (given, url) in [
            ("127.0.0.1:7800", "http://127.0.0.1:7800"),
            ("localhost:7800", "http://localhost:7800"),
            ("[::1]:7800", "http://[::1]:7800"),
            ("node.example:8443/zongzhi/", "http://node.example:8443/zongzhi"),
            ("http://127.0.0.1:7800", "http://127.0.0.1:7800"),
            ("http://127.0.0.1:7800/", "http://127.0.0.1:7800"),
            ("https://zz.example", "https://zz.example"),
            ("http://[::1]:7800", "http://[::1]:7800"),
        ] {
            assert_eq!(node_url(given).as_deref(), Some(url), "{given}");
        }
        for bad in ["", "7800", "127.0.0.1", "127.0.0.1:", "127.0.0.1:78o0", "::1:7800", "http//127.0.0.1:7800", "http://", "ftp://127.0.0.1:7800", "a b:7800", "127.0.0.1:99999"] {
            assert_eq!(node_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn errors_are_the_nodes_message() {
        let e = api_error(reqwest::StatusCode::NOT_FOUND, r#"{"error": {"code": "not_found", "message": "no certificate for that key"}}"#);
        assert_eq!(e.to_string(), "no certificate for that key (404 not_found)");
        let e = api_error(reqwest::StatusCode::UNPROCESSABLE_ENTITY, "Failed to parse the request body\n");
        assert_eq!(e.message, "Failed to parse the request body");
        let e = api_error(reqwest::StatusCode::BAD_GATEWAY, "<html><body>502</body></html>");
        assert_eq!(e.message, "Bad Gateway");
        assert_eq!(api_error(reqwest::StatusCode::NOT_FOUND, "").message, "Not Found");
    }
}
