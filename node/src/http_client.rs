//! The node's one HTTP client: an HTTP/1.1 request on a connection of its
//! own, with hyper's client connection (the server side already runs on
//! hyper). Used for the notification webhook and integration callbacks
//! (`notify`), and by `zongzhi-node backup` / `export` to ask the running
//! node over its API (`recovery`).

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, Request, header};

/// What the server answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    /// The start of the body as text, for an error message.
    pub fn text(&self, chars: usize) -> String {
        String::from_utf8_lossy(&self.body).trim().chars().take(chars).collect()
    }
}

/// One request: `method path` to `address` (`host:port`), `host` as the
/// Host header, the given extra headers, at most `max_body` bytes of the
/// answer read, everything within `timeout`.
#[derive(Debug)]
pub struct Call<'a> {
    pub method: Method,
    pub address: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub headers: Vec<(HeaderName, String)>,
    pub content_type: &'a str,
    pub body: Vec<u8>,
    pub timeout: Duration,
    pub max_body: usize,
}

impl Call<'_> {
    /// Sends the request; an error says what failed (connecting, HTTP, no answer in time).
    pub async fn send(self) -> Result<Answer, String> {
        let address = self.address.to_string();
        let secs = self.timeout.as_secs_f64();
        match tokio::time::timeout(self.timeout, self.exchange()).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer from {address} within {secs} s")),
        }
    }

    /// The same from a thread without a runtime (a command of `zongzhi-node`).
    pub fn send_blocking(self) -> Result<Answer, String> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("starting the HTTP client: {e}"))?;
        rt.block_on(self.send())
    }

    async fn exchange(self) -> Result<Answer, String> {
        let address = self.address;
        let stream = tokio::net::TcpStream::connect(address).await.map_err(|e| format!("connecting to {address}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| format!("HTTP with {address}: {e}"))?;
        // Drives the connection until it closes; dropped with the request.
        let driver = tokio::spawn(connection);
        let mut request = Request::builder()
            .method(self.method)
            .uri(self.path)
            .header(header::HOST, self.host)
            .header(header::CONTENT_TYPE, self.content_type)
            .header(header::USER_AGENT, concat!("zongzhi-node/", env!("CARGO_PKG_VERSION")))
            .header(header::CONNECTION, "close");
        for (name, value) in self.headers {
            let value = HeaderValue::from_str(&value).map_err(|_| format!("header {name} has characters HTTP does not allow"))?;
            request = request.header(name, value);
        }
        let request = request.body(axum::body::Body::from(self.body)).map_err(|e| format!("building the request: {e}"))?;
        let result = match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                match axum::body::to_bytes(axum::body::Body::new(response.into_body()), self.max_body).await {
                    Ok(body) => Ok(Answer { status, body: body.to_vec() }),
                    // An error answer's body is only for the message.
                    Err(_) if !(200..300).contains(&status) => Ok(Answer { status, body: Vec::new() }),
                    Err(e) => Err(format!("reading the answer of {address}: {e}")),
                }
            }
            Err(e) => Err(format!("HTTP with {address}: {e}")),
        };
        driver.abort();
        result
    }
}
