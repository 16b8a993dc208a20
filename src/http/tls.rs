//! TLS client settings: the trusted roots (webpki plus the system's), `insecure` acceptance of
//! any certificate, ALPN, and the client certificate for mutual TLS.

use std::sync::{Arc, OnceLock};

use crate::scenario::transport::ClientIdentity;

/// The roots a verifying configuration trusts, read once per process: reading the system's
/// certificate store is about 19 million instructions, and every run made two configurations
/// (one per ALPN list), each reading it. The configurations stay eager: one made on first use
/// would read the store inside the first handshake (a redirect can reach an `https` origin
/// that no step names), in that request's latency.
fn roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            Arc::new(roots)
        })
        .clone()
}

/// Builds a client configuration offering `alpn`.
pub(super) fn config(
    insecure: bool,
    alpn: &[&[u8]],
    identity: Option<&ClientIdentity>,
) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b,
        // The ring provider supports the default versions; fall back to TLS 1.3 only otherwise.
        Err(_) => match rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
        {
            Ok(b) => b,
            Err(_) => {
                return rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth();
            }
        },
    };
    let builder = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
    } else {
        builder.with_root_certificates(roots())
    };
    let mut config = match identity {
        // The scenario loader already checked that the key is usable and the certificate's; if
        // rustls still refused, the server's refusal (a TLS error of the step) would say so.
        Some(id) => match builder
            .clone()
            .with_client_auth_cert(id.certs.clone(), id.key.clone_key())
        {
            Ok(c) => c,
            Err(_) => builder.with_no_client_auth(),
        },
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// Certificate verifier for `insecure: true`: accepts any certificate, still checks signatures
/// of the handshake itself so the connection is a real TLS session.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
