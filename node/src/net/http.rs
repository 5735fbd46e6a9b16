//! Serving the HTTP API and the console: plain HTTP on `http_listen`
//! (loopback, unless the operator sets `insecure_http`) and HTTPS on
//! `https_listen` (TLS on ring, a PEM certificate and key: [`super::tls`]). Both with
//! limits no client can push past: a cap on open connections (a
//! connection over it gets a 503 and is closed at once, so idle sockets
//! cannot use up the process's file descriptors and starve the QUIC link),
//! under it a cap per client address (IPv4, IPv6 /64: one client holding
//! half-sent requests and reconnecting as they are cut cannot take the
//! whole budget from the others), a deadline for the TLS handshake and
//! for each request's headers, and an idle timeout on keep-alive
//! connections.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tower::Service;

/// What a client may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once, over both listeners.
    pub max_connections: usize,
    /// Connections one client address (IPv4, IPv6 /64) may hold at once.
    pub max_per_address: usize,
    /// To finish the TLS handshake, and to send a request's headers.
    pub header_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_connections: 512, max_per_address: 64, header_timeout: Duration::from_secs(10), idle_timeout: Duration::from_secs(60) }
    }
}

/// Connection counters for `/metrics`.
#[derive(Debug, Default)]
pub struct HttpCounters {
    pub open: AtomicU64,
    pub accepted: AtomicU64,
    /// Turned away at the cap.
    pub refused: AtomicU64,
    /// Turned away at the per-address cap.
    pub refused_address: AtomicU64,
    /// TLS handshakes that failed or timed out.
    pub tls_failed: AtomicU64,
    /// Closed for sending headers too slowly or idling too long.
    pub timed_out: AtomicU64,
}

pub static COUNTERS: HttpCounters =
    HttpCounters { open: AtomicU64::new(0), accepted: AtomicU64::new(0), refused: AtomicU64::new(0), refused_address: AtomicU64::new(0), tls_failed: AtomicU64::new(0), timed_out: AtomicU64::new(0) };

/// Connections open per client address (IPv4, IPv6 /64).
#[derive(Debug, Default)]
struct PerAddress(std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>);

/// One connection's place in its address's count; given back when dropped.
struct AddressSlot {
    table: Arc<PerAddress>,
    key: std::net::IpAddr,
}

impl PerAddress {
    fn take(self: &Arc<Self>, peer: std::net::IpAddr, max: usize) -> Option<AddressSlot> {
        let key = crate::login::throttle::address_key(peer);
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = t.entry(key).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot { table: self.clone(), key })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut t = self.table.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = t.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                t.remove(&self.key);
            }
        }
    }
}

pub use super::tls::{Acceptor, https_acceptor as acceptor, pem_fingerprint as fingerprint_of};

/// Shared by both listeners: one cap.
#[derive(Clone)]
pub struct Server {
    app: Router,
    limits: Limits,
    slots: Arc<tokio::sync::Semaphore>,
    per_address: Arc<PerAddress>,
    /// Set at shutdown: connections finish their request and close.
    stop: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Server {
    pub fn new(app: Router, limits: Limits) -> Server {
        Server { app, limits, slots: Arc::new(tokio::sync::Semaphore::new(limits.max_connections)), per_address: Arc::default(), stop: Arc::new(tokio::sync::watch::channel(false).0) }
    }

    /// Accepts connections until `stop` resolves.
    pub async fn listen(&self, listener: TcpListener, tls: Option<Acceptor>, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let (tcp, peer) = tokio::select! {
                _ = &mut stop => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, say: wait rather than spin.
                        tracing::warn!("accepting an HTTP connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            // The address's share first: a client at its own cap does not
            // take a slot of the others'.
            let Some(mine) = self.per_address.take(peer.ip(), self.limits.max_per_address) else {
                COUNTERS.refused_address.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(turn_away(tcp, tls.is_none(), TOO_MANY_FROM_ADDRESS));
                continue;
            };
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                COUNTERS.refused.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(turn_away(tcp, tls.is_none(), TOO_MANY));
                continue;
            };
            let _ = tcp.set_nodelay(true);
            COUNTERS.accepted.fetch_add(1, Ordering::Relaxed);
            let this = self.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                COUNTERS.open.fetch_add(1, Ordering::Relaxed);
                match tls {
                    None => this.serve(tcp, peer).await,
                    Some(tls) => match tokio::time::timeout(this.limits.header_timeout, tls.accept(tcp)).await {
                        Ok(Ok(stream)) => this.serve(stream, peer).await,
                        Ok(Err(e)) => {
                            COUNTERS.tls_failed.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, "HTTPS handshake failed: {e}");
                        }
                        Err(_) => {
                            COUNTERS.tls_failed.fetch_add(1, Ordering::Relaxed);
                        }
                    },
                }
                COUNTERS.open.fetch_sub(1, Ordering::Relaxed);
                drop(slot);
                drop(mine);
            });
        }
    }

    /// One connection: HTTP/1.1 with the header deadline, closed after
    /// `idle_timeout` without a request in progress or a new one.
    async fn serve<S: AsyncRead + AsyncWrite + Send + Unpin + 'static>(&self, stream: S, peer: SocketAddr) {
        let app = self.app.clone();
        // Requests started, and those in progress.
        let started = Arc::new(AtomicU64::new(0));
        let busy = Arc::new(AtomicU64::new(0));
        let (s, b) = (started.clone(), busy.clone());
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            s.fetch_add(1, Ordering::Relaxed);
            b.fetch_add(1, Ordering::Relaxed);
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            let b = b.clone();
            async move {
                let response = app.call(req).await.unwrap_or_else(|e| match e {});
                b.fetch_sub(1, Ordering::Relaxed);
                Ok::<_, Infallible>(response)
            }
        });
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new()).header_read_timeout(self.limits.header_timeout).keep_alive(true);
        let conn = http.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        let mut stop = self.stop.subscribe();
        let mut last = 0;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        if e.is_timeout() {
                            COUNTERS.timed_out.fetch_add(1, Ordering::Relaxed);
                        }
                        tracing::debug!(%peer, "HTTP connection ended: {e}");
                    }
                    return;
                }
                _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                    return;
                }
                _ = tokio::time::sleep(self.limits.idle_timeout) => {
                    let now = started.load(Ordering::Relaxed);
                    if now == last && busy.load(Ordering::Relaxed) == 0 {
                        COUNTERS.timed_out.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    last = now;
                }
            }
        }
    }

    /// Stops every connection after its request in progress (waiting up
    /// to `within`).
    pub async fn shut_down(&self, within: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + within;
        while COUNTERS.open.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

const TOO_MANY: &str = r#"{"error":{"code":"too_many_connections","message":"the node has too many open connections; try again shortly"}}"#;
const TOO_MANY_FROM_ADDRESS: &str = r#"{"error":{"code":"too_many_connections","message":"too many connections from this address are open at once; close some and try again shortly"}}"#;

/// Over a cap: a plain-HTTP client is told why; a TLS one is closed.
async fn turn_away(mut tcp: tokio::net::TcpStream, plain: bool, body: &'static str) {
    if plain {
        let response = format!("HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        let _ = tokio::time::timeout(Duration::from_secs(2), tcp.write_all(response.as_bytes())).await;
    }
}

/// A self-signed certificate for a center's LAN: the host names and IP
/// addresses operators type into their browsers. Returns the certificate
/// and key in PEM and the certificate's SHA-256 fingerprint (what a
/// browser shows, to compare before accepting it).
pub fn self_signed(hosts: &[String]) -> Result<(String, String, String), String> {
    let mut params = rcgen::CertificateParams::new(hosts.to_vec()).map_err(|e| format!("host names: {e}"))?;
    params.distinguished_name.push(rcgen::DnType::CommonName, hosts.first().cloned().unwrap_or_else(|| "zongzhi".into()));
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "zongzhi");
    let now = time_now();
    params.not_before = now;
    params.not_after = now + time::Duration::days(5 * 365);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok((cert.pem(), key.serialize_pem(), fingerprint(cert.der())))
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// SHA-256 of a DER certificate as colon-separated hex (as browsers show it).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}
