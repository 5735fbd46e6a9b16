//! TLS 1.3 with raw public keys: the rustls configurations of both ends,
//! the verifier that asks the trust store whether a peer key may connect,
//! and the peer's key read back from a connection. The only file that
//! names rustls.

use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use zongzhi_protocol::NodeId;
use zongzhi_protocol::sync;

use super::quic::transport;
use super::{LinkError, Result};
use crate::context::Context;

/// DER prefix of an ed25519 SubjectPublicKeyInfo; the key's 32 bytes follow.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

fn key_from_spki(spki: &[u8]) -> Option<NodeId> {
    if spki.len() != 44 || spki[..12] != ED25519_SPKI_PREFIX {
        return None;
    }
    let key = NodeId(spki[12..].try_into().ok()?);
    key.verifying_key().ok()?;
    Some(key)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts a peer key only if the trust store says it may connect now.
#[derive(Debug)]
struct TrustVerifier {
    shared: Context,
    algs: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl TrustVerifier {
    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let Some(key) = key_from_spki(end_entity.as_ref()) else {
            self.shared.sync.refused("not an ed25519 raw public key");
            return Err(rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding));
        };
        match self.shared.trust().may_connect(&key, self.shared.clock.now_ms()) {
            Ok(_) => Ok(()),
            Err(e) => {
                let reason = match e {
                    zongzhi_protocol::trust::TrustError::KeyRevoked { .. } | zongzhi_protocol::trust::TrustError::Revoked { .. } => "revoked",
                    zongzhi_protocol::trust::TrustError::Cert(zongzhi_protocol::cert::CertError::Expired) => "expired",
                    _ => "unknown key",
                };
                tracing::warn!(peer = %key.fmt_short(), "handshake refused: {e}");
                self.shared.sync.refused(reason);
                Err(rustls::Error::InvalidCertificate(rustls::CertificateError::ApplicationVerificationFailure))
            }
        }
    }

    fn tls13(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature_with_raw_key(message, &SubjectPublicKeyInfoDer::from(cert.as_ref()), dss, &self.algs)
    }
}

impl rustls::client::danger::ServerCertVerifier for TrustVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.check(end_entity).map(|_| rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, _: &[u8], _: &CertificateDer<'_>, _: &DigitallySignedStruct) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered))
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

impl rustls::server::danger::ClientCertVerifier for TrustVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(&self, end_entity: &CertificateDer<'_>, _intermediates: &[CertificateDer<'_>], _now: UnixTime) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        self.check(end_entity).map(|_| rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, _: &[u8], _: &CertificateDer<'_>, _: &DigitallySignedStruct) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered))
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }

    fn requires_raw_public_keys(&self) -> bool {
        true
    }
}

fn certified_key(shared: &Context) -> Result<Arc<rustls::sign::CertifiedKey>> {
    let der = shared.key.to_pkcs8_der().map_err(|e| LinkError::Setup(format!("TLS key: {e}")))?;
    let signing = rustls::crypto::ring::sign::any_eddsa_type(&PrivatePkcs8KeyDer::from(der)).map_err(|e| LinkError::Setup(format!("TLS key: {e}")))?;
    let spki = signing.public_key().ok_or_else(|| LinkError::Setup("TLS key has no public key".into()))?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(vec![CertificateDer::from(spki.as_ref().to_vec())], signing)))
}

fn tls_setup(e: rustls::Error) -> LinkError {
    LinkError::Setup(format!("TLS: {e}"))
}

pub(super) fn server_config(shared: &Context) -> Result<quinn::ServerConfig> {
    let verifier = Arc::new(TrustVerifier { shared: shared.clone(), algs: provider().signature_verification_algorithms });
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_setup)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(rustls::server::AlwaysResolvesServerRawPublicKeys::new(certified_key(shared)?)));
    tls.alpn_protocols = alpns(shared);
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls).map_err(|e| LinkError::Setup(format!("QUIC TLS: {e}")))?));
    cfg.transport_config(transport());
    Ok(cfg)
}

/// The ALPN names of the protocols this node speaks, most preferred first
/// (the accepting side's order decides: the highest common version).
fn alpns(shared: &Context) -> Vec<Vec<u8>> {
    shared.caps.protocols.iter().filter_map(|v| sync::alpn_of(*v)).map(<[u8]>::to_vec).collect()
}

pub(super) fn client_config(shared: &Context) -> Result<quinn::ClientConfig> {
    client_config_alpns(shared, alpns(shared))
}

/// The client configuration with another ALPN (tests: a handshake that
/// fails at the TLS level, before any certificate is looked at).
pub(super) fn client_config_alpn(shared: &Context, alpn: &[u8]) -> Result<quinn::ClientConfig> {
    client_config_alpns(shared, vec![alpn.to_vec()])
}

fn client_config_alpns(shared: &Context, alpns: Vec<Vec<u8>>) -> Result<quinn::ClientConfig> {
    let verifier = Arc::new(TrustVerifier { shared: shared.clone(), algs: provider().signature_verification_algorithms });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_setup)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(rustls::client::AlwaysResolvesClientRawPublicKeys::new(certified_key(shared)?)));
    tls.alpn_protocols = alpns;
    let mut cfg = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).map_err(|e| LinkError::Setup(format!("QUIC TLS: {e}")))?));
    cfg.transport_config(transport());
    Ok(cfg)
}

/// The protocol version the handshake chose (the ALPN both offered).
pub(super) fn negotiated(conn: &quinn::Connection) -> Result<u32> {
    let alpn = conn
        .handshake_data()
        .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|d| d.protocol)
        .ok_or_else(|| LinkError::Peer("the handshake chose no protocol".into()))?;
    sync::version_of_alpn(&alpn).ok_or_else(|| LinkError::Peer(format!("the handshake chose an unknown protocol {:?}", String::from_utf8_lossy(&alpn))))
}

pub(super) fn peer_key(conn: &quinn::Connection) -> Result<NodeId> {
    let no_key = || LinkError::Peer("peer sent no key".into());
    let identity = conn.peer_identity().ok_or_else(no_key)?;
    let certs = identity.downcast::<Vec<CertificateDer<'static>>>().map_err(|_| LinkError::Peer("unexpected peer identity".into()))?;
    let first = certs.first().ok_or_else(no_key)?;
    key_from_spki(first.as_ref()).ok_or_else(|| LinkError::Peer("peer key is not ed25519".into()))
}

/// The TLS side of the HTTPS listener (`net::http`).
pub type Acceptor = tokio_rustls::TlsAcceptor;

/// Reads a PEM certificate chain and private key into an acceptor.
pub fn https_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<Acceptor, String> {
    let certs: Vec<CertificateDer<'static>> = <CertificateDer as rustls::pki_types::pem::PemObject>::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("reading the HTTPS certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", cert.display()));
    }
    let key = <rustls::pki_types::PrivateKeyDer as rustls::pki_types::pem::PemObject>::from_pem_file(key).map_err(|e| format!("reading the HTTPS private key {}: {e}", key.display()))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the HTTPS certificate and key do not fit together: {e}"))?;
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}

/// The fingerprint of the first certificate in a PEM file.
pub fn pem_fingerprint(cert: &std::path::Path) -> Result<String, String> {
    let der = <CertificateDer as rustls::pki_types::pem::PemObject>::from_pem_file(cert).map_err(|e| format!("reading {}: {e}", cert.display()))?;
    Ok(super::http::fingerprint(&der))
}
