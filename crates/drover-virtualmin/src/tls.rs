//! TLS for Virtualmin servers: verification on by default, or a pinned SHA-256 fingerprint of
//! the server's certificate, checked during the handshake, before any credentials are sent.

use std::sync::Arc;

use drover_core::CertFingerprint;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// How a server's certificate is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicy {
    /// Check the chain against trusted roots and the host name.
    pub verify: bool,
    /// Accept exactly the certificate with this fingerprint (and no other), with or without a
    /// CA: the usual way to trust a server's self-signed certificate.
    pub pinned_sha256: Option<CertFingerprint>,
    /// Extra trusted roots (DER), beside the bundled Mozilla roots.
    pub extra_roots: Vec<Vec<u8>>,
}

impl Default for TlsPolicy {
    fn default() -> Self {
        Self {
            verify: true,
            pinned_sha256: None,
            extra_roots: Vec::new(),
        }
    }
}

/// The one crypto provider drover uses: ring.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client configuration that applies `policy`.
pub fn client_config(policy: &TlsPolicy) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = crypto_provider();
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for der in &policy.extra_roots {
        roots.add(CertificateDer::from(der.clone()))?;
    }
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let verifier = PolicyVerifier {
        webpki,
        pinned: policy.pinned_sha256,
        verify: policy.verify,
        algorithms: provider.signature_verification_algorithms,
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

#[derive(Debug)]
struct PolicyVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pinned: Option<CertFingerprint>,
    verify: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(pin) = self.pinned {
            let presented: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
            return if &presented == pin.as_bytes() {
                Ok(ServerCertVerified::assertion())
            } else {
                Err(rustls::Error::General(format!(
                    "the server's certificate (SHA-256 {}) is not the pinned one ({})",
                    hex::encode(presented),
                    pin.to_hex()
                )))
            };
        }
        if !self.verify {
            return Ok(ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The SHA-256 fingerprint of a DER certificate, as pinned.
pub fn fingerprint(der: &[u8]) -> CertFingerprint {
    CertFingerprint::parse(&hex::encode(Sha256::digest(der))).expect("a SHA-256 digest is 32 bytes")
}

/// The certificate a server presents: its fingerprint and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedCertificate {
    pub sha256: CertFingerprint,
    /// Expiry, in seconds since the Unix epoch.
    pub not_after: i64,
}

/// Reads the certificate a server presents in a TLS handshake, trusting nothing and sending
/// nothing: the health check compares it with the pin and reads its expiry.
pub async fn presented_certificate(
    host: &str,
    port: u16,
    timeout: std::time::Duration,
) -> Result<PresentedCertificate, String> {
    let config = client_config(&TlsPolicy {
        verify: false,
        pinned_sha256: None,
        extra_roots: Vec::new(),
    })
    .map_err(|e| e.to_string())?;
    let name =
        ServerName::try_from(host.to_owned()).map_err(|e| format!("server name {host}: {e}"))?;
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))
    };
    let stream = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| format!("no TLS handshake with {host}:{port} within {timeout:?}"))??;
    let der = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or_else(|| format!("{host}:{port} presented no certificate"))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| format!("the certificate of {host}:{port} cannot be read: {e}"))?;
    Ok(PresentedCertificate {
        sha256: fingerprint(der.as_ref()),
        not_after: parsed.validity().not_after.timestamp(),
    })
}
