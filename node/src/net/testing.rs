use std::net::SocketAddr;

use zongzhi_protocol::sync::{self, Frame};

use super::quic::{epoch, own_chain, read_frame, write_frame};
use super::tls::{client_config, client_config_alpn};
use super::{LinkError, Result};
use crate::context::Context;

/// A link to a parent, dialled with `shared`'s key.
pub struct RawLink {
    pub conn: quinn::Connection,
    _endpoint: quinn::Endpoint,
    // Kept open: closing them would end the link before the test speaks.
    _streams: (quinn::SendStream, quinn::RecvStream, quinn::SendStream, quinn::RecvStream),
    /// Where the parent acknowledges our batches and asks for records.
    from_parent: quinn::RecvStream,
}

/// A QUIC handshake with `alpn` instead of the protocol's: the parent
/// refuses it at the TLS level. Returns how the attempt ended.
pub async fn handshake_with_alpn(shared: &Context, parent: SocketAddr, alpn: &[u8]) -> String {
    let attempt = async {
        let ep = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).map_err(|source| LinkError::Io { what: "client endpoint".into(), source })?;
        let conn = ep.connect_with(client_config_alpn(shared, alpn)?, parent, "zongzhi")?.await?;
        Ok::<_, LinkError>(conn.remote_address().to_string())
    };
    match attempt.await {
        Ok(addr) => format!("connected to {addr}"),
        Err(e) => e.to_string(),
    }
}

impl RawLink {
    /// Connects and exchanges `Hello`s (our real chain); returns the link
    /// with the parent's subscription stream accepted, ready for batches.
    pub async fn connect(shared: &Context, parent: SocketAddr) -> Result<(RawLink, quinn::SendStream)> {
        let ep = quinn::Endpoint::client(SocketAddr::from(([127, 0, 0, 1], 0))).map_err(|source| LinkError::Io { what: "client endpoint".into(), source })?;
        let conn = ep.connect_with(client_config(shared)?, parent, "zongzhi")?.await?;
        let (mut csend, mut crecv) = conn.open_bi().await?;
        write_frame(&mut csend, &Frame::Hello { version: sync::PROTOCOL_VERSION, chain: own_chain(shared)?, epoch: epoch(shared) }).await?;
        read_frame(&mut crecv).await?;
        // Our own subscription (keeps the parent's receiver loop happy).
        let (mut rsend, rrecv) = conn.open_bi().await?;
        write_frame(&mut rsend, &Frame::Subscribe { epoch: [0; 16], cursor: u64::MAX, own: false }).await?;
        // The parent subscribes to our feed: this is where batches go.
        let (ssend, mut srecv) = conn.accept_bi().await?;
        read_frame(&mut srecv).await?;
        Ok((RawLink { conn, _endpoint: ep, _streams: (csend, crecv, rsend, rrecv), from_parent: srecv }, ssend))
    }

    /// Sends a batch of raw record bytes.
    pub async fn send_batch(send: &mut quinn::SendStream, records: Vec<Vec<u8>>) -> Result<()> {
        let n = records.len() as u64;
        write_frame(send, &Frame::Batch { epoch: [9; 16], upto: n, head: n, records, blobs: vec![] }).await?;
        Ok(())
    }

    /// Sends raw bytes (garbage, hostile length prefixes).
    pub async fn send_raw(send: &mut quinn::SendStream, bytes: &[u8]) -> Result<()> {
        send.write_all(bytes).await?;
        Ok(())
    }

    /// The next frame the parent sends about our feed (`Ack`, `Want`).
    pub async fn next_frame(&mut self) -> Result<Frame> {
        Ok(read_frame(&mut self.from_parent).await?.0)
    }

    /// Waits until the parent closes the connection; returns its reason.
    pub async fn closed(&self) -> String {
        self.conn.closed().await.to_string()
    }
}
