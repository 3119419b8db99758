//! The TLS client configuration every reqwest client of the process shares (AWS, gateways, billing).
//!
//! reqwest's rustls backend builds a platform verifier for every client it builds, which reads
//! and parses the system's root certificates each time (a few milliseconds of CPU, many more
//! under a Lambda CPU share). Built once here with the parts reqwest would use — ring (the SDK's
//! provider too: one crypto library per binary), TLS 1.2 and 1.3, the platform verifier (the
//! system roots) — and handed to every client, the roots are read once per process, and only by a process that opens a TLS connection: at its
//! first handshake ([`SystemRoots`]), not at init. The AWS SDK's client is reqwest on this same
//! configuration too (`adapters::aws_http`).

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

static CONFIG: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();

fn build() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = SystemRoots {
        provider: provider.clone(),
        verifier: OnceLock::new(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("no TLS version the crypto provider supports: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // reqwest's clients here speak HTTP/1.1 only (no `http2` feature).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The shared configuration (a clone: its parts are reference-counted), or why it cannot be built.
pub fn client_config() -> Result<rustls::ClientConfig, String> {
    CONFIG.get_or_init(build).clone()
}

/// The platform verifier (the system's roots), built at the first TLS handshake rather than with
/// the configuration: reading and parsing the roots is the costly part of a TLS setup, and a
/// process that never opens a TLS connection (the local stack is plain HTTP) never pays it. A
/// process that does pays it once, in its first handshake. If the roots cannot be read, every
/// handshake fails with that reason.
#[derive(Debug)]
struct SystemRoots {
    provider: Arc<rustls::crypto::CryptoProvider>,
    verifier: OnceLock<Result<rustls_platform_verifier::Verifier, String>>,
}

impl SystemRoots {
    fn verifier(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        let built = self.verifier.get_or_init(|| {
            rustls_platform_verifier::Verifier::new(self.provider.clone())
                .map_err(|e| format!("cannot load the system's root certificates: {e}"))
        });
        built
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }
}

impl ServerCertVerifier for SystemRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier()?.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        match self.verifier() {
            Ok(verifier) => verifier.supported_verify_schemes(),
            // The handshake fails at the certificate with the reason; offer what the provider can.
            Err(_) => self
                .provider
                .signature_verification_algorithms
                .supported_schemes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_configuration_is_built_once_and_speaks_http1() {
        let first = client_config().expect("the system's roots load");
        let second = client_config().expect("the system's roots load");
        assert_eq!(first.alpn_protocols, [b"http/1.1".to_vec()]);
        // The verifier (and so the roots it holds) is the same one, not built again.
        assert!(Arc::ptr_eq(
            &first.crypto_provider().clone(),
            &second.crypto_provider().clone()
        ));
    }

    #[test]
    fn the_system_roots_are_read_at_the_first_handshake_not_with_the_configuration() {
        let roots = SystemRoots {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            verifier: OnceLock::new(),
        };
        assert!(roots.verifier.get().is_none());
        assert!(!roots.supported_verify_schemes().is_empty());
        assert!(
            roots.verifier.get().is_some_and(|v| v.is_ok()),
            "the roots load"
        );
    }
}
