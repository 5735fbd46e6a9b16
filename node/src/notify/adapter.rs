//! Where a message goes: an HTTP webhook (an SMS gateway's HTTP interface
//! is one: its URL) or the node's log (tests and the demo).

use std::time::Duration;

use axum::http::{Uri, header};
use serde::Serialize;

/// What is posted to the webhook, as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Message<'a> {
    /// The step's record id (hex): the same message always has the same
    /// id, so a gateway can drop a repeat (delivery is at least once: a
    /// node that stops between the gateway's answer and storing it sends
    /// the message again).
    pub id: &'a str,
    /// `receipt`, `progress`, `resolution` or `rating_invitation`.
    pub template: &'a str,
    /// The citizen's phone number, digits only.
    pub to: &'a str,
    pub text: &'a str,
    pub case_number: &'a str,
    /// When the step was taken into the outbox (RFC 3339, China time).
    pub created_at: &'a str,
}

/// The configured destination.
#[derive(Debug)]
pub enum Adapter {
    Webhook(Webhook),
    /// Writes each message to the log (target `zongzhi::notify`) and
    /// counts it delivered.
    Log,
    /// No `[notify]`: no message to citizens is queued (the worker runs for
    /// integration callbacks only).
    Off,
}

impl Adapter {
    /// Delivers one message: `Ok` once the destination took it, else why not.
    pub async fn deliver(&self, m: &Message<'_>) -> Result<(), String> {
        match self {
            Adapter::Webhook(w) => w.post(serde_json::to_vec(m).map_err(|e| e.to_string())?).await,
            Adapter::Log => {
                tracing::info!(
                    target: "zongzhi::notify",
                    id = m.id,
                    template = m.template,
                    to = %zongzhi_protocol::case::mask_keep(m.to, 3, 4),
                    case = m.case_number,
                    "message: {}",
                    m.text
                );
                Ok(())
            }
            Adapter::Off => Err("citizen notifications are off (no [notify])".into()),
        }
    }
}

/// An HTTP/1.1 POST of the message's JSON per delivery, on a connection of
/// its own (messages are few; a gateway behind a proxy may close idle
/// connections at will). A 2xx answer is delivered; any other answer, a
/// connection error or no answer within the timeout is a failure to retry.
pub struct Webhook {
    uri: Uri,
    /// `host:port` to connect to.
    address: String,
    token: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("uri", &self.uri).field("token", &self.token.as_ref().map(|_| "…")).finish()
    }
}

/// The longest part of an error answer's body kept in the entry's last error.
const ERROR_BODY_CHARS: usize = 200;

impl Webhook {
    /// A webhook posting to `url` (`http://host[:port]/path`), with
    /// `Authorization: Bearer <token>` when a token is given.
    pub fn new(url: &str, token: Option<String>, timeout: Duration) -> Result<Webhook, String> {
        let uri: Uri = url.parse().map_err(|e| format!("[notify] url = \"{url}\" is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "[notify] url = \"{url}\": the node posts plain HTTP only; for an HTTPS gateway, point url at a forwarding proxy on this host or the center's network (nginx, stunnel) that adds TLS"
                ));
            }
            _ => return Err(format!("[notify] url = \"{url}\" must start with http://")),
        }
        let authority = uri.authority().ok_or_else(|| format!("[notify] url = \"{url}\" has no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("[notify] url = \"{url}\": no user or password in the URL; set token for a bearer token"));
        }
        let address = match authority.port_u16() {
            Some(_) => authority.as_str().to_string(),
            None => format!("{}:80", authority.as_str()),
        };
        let token = token.filter(|t| !t.is_empty());
        if token.as_ref().is_some_and(|t| t.chars().any(|c| c.is_control() || c == ' ')) {
            return Err("[notify] token must not contain spaces or control characters".into());
        }
        Ok(Webhook { uri, address, token, timeout })
    }

    /// The URL posted to.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// `host:port` connected to.
    pub fn address(&self) -> &str {
        &self.address
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), String> {
        let mut headers = Vec::new();
        if let Some(t) = &self.token {
            headers.push((header::AUTHORIZATION, format!("Bearer {t}")));
        }
        let call = crate::http_client::Call {
            method: axum::http::Method::POST,
            address: &self.address,
            host: self.uri.authority().map_or("", |a| a.as_str()),
            path: self.uri.path_and_query().map_or("/", |p| p.as_str()),
            headers,
            content_type: "application/json; charset=utf-8",
            body,
            timeout: self.timeout,
            max_body: 16 * 1024,
        };
        let answer = call.send().await?;
        if answer.success() {
            return Ok(());
        }
        let text = answer.text(ERROR_BODY_CHARS);
        let status = axum::http::StatusCode::from_u16(answer.status).map_or_else(|_| answer.status.to_string(), |s| s.to_string());
        Err(if text.is_empty() { format!("HTTP {status}") } else { format!("HTTP {status}: {text}") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn urls_are_checked() {
        let t = Duration::from_secs(1);
        assert_eq!(Webhook::new("http://127.0.0.1/sms", None, t).unwrap().address, "127.0.0.1:80");
        assert_eq!(Webhook::new("http://gw.example:8080/sms?x=1", None, t).unwrap().address, "gw.example:8080");
        assert!(Webhook::new("https://gw.example/sms", None, t).unwrap_err().contains("forwarding proxy"));
        assert!(Webhook::new("ftp://gw.example/sms", None, t).unwrap_err().contains("http://"));
        assert!(Webhook::new("http://u:p@gw.example/sms", None, t).unwrap_err().contains("token"));
        assert!(Webhook::new("not a url", None, t).is_err());
    }

    /// Answers one request with `status` and returns what it read.
    async fn answer_once(listener: tokio::net::TcpListener, status: &'static str) -> String {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // Headers, then as many body bytes as Content-Length says.
        loop {
            let n = s.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())).unwrap_or(0);
                if got.len() >= end + 4 + len {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        s.write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope").as_bytes()).await.unwrap();
        String::from_utf8(got).unwrap()
    }

    #[tokio::test]
    async fn posts_json_with_the_token_and_takes_only_2xx() {
        let m = Message { id: "ab", template: "receipt", to: "13812341234", text: "已受理", case_number: "N-1", created_at: "t" };
        for (status, ok) in [("200 OK", true), ("204 No Content", true), ("500 Internal Server Error", false), ("429 Too Many Requests", false)] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/hook/sms?k=1", listener.local_addr().unwrap());
            let server = tokio::spawn(answer_once(listener, status));
            let a = Adapter::Webhook(Webhook::new(&url, Some("s3cret".into()), Duration::from_secs(5)).unwrap());
            let r = a.deliver(&m).await;
            let got = server.await.unwrap();
            assert_eq!(r.is_ok(), ok, "{status}: {r:?}");
            if !ok {
                assert_eq!(r.unwrap_err(), format!("HTTP {status}: nope"));
            }
            assert!(got.starts_with("POST /hook/sms?k=1 HTTP/1.1\r\n"), "{got}");
            assert!(got.to_ascii_lowercase().contains("authorization: bearer s3cret\r\n"), "{got}");
            let body: serde_json::Value = serde_json::from_str(got.split("\r\n\r\n").nth(1).unwrap()).unwrap();
            assert_eq!(body, serde_json::json!({"id": "ab", "template": "receipt", "to": "13812341234", "text": "已受理", "case_number": "N-1", "created_at": "t"}));
        }
    }

    #[tokio::test]
    async fn a_refused_connection_and_a_silent_server_are_failures() {
        let m = Message { id: "ab", template: "receipt", to: "1", text: "x", case_number: "N", created_at: "t" };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let e = Adapter::Webhook(Webhook::new(&format!("http://{addr}/"), None, Duration::from_secs(5)).unwrap()).deliver(&m).await.unwrap_err();
        assert!(e.starts_with(&format!("connecting to {addr}")), "{e}");
        // Accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _held = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(s);
        });
        let e = Adapter::Webhook(Webhook::new(&format!("http://{addr}/"), None, Duration::from_millis(300)).unwrap()).deliver(&m).await.unwrap_err();
        assert!(e.contains("within 0.3 s"), "{e}");
    }
}
