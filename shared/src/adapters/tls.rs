//! The TLS client configuration every reqwest client of the process shares (gateways, billing).
//!
//! reqwest's rustls backend builds a platform verifier for every client it builds, which reads
//! and parses the system's root certificates each time (a few milliseconds of CPU, many more
//! under a Lambda CPU share). Built once here with the parts reqwest would use — ring (the SDK's
//! provider too: one crypto library per binary), TLS 1.2 and 1.3, the platform verifier (the system roots) — and handed to every client, the
//! roots are read once per process; [`warm`] reads them while init waits on the network.

use std::sync::{Arc, OnceLock};

static CONFIG: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();

fn build() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| format!("cannot load the system's root certificates: {e}"))?;
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

/// Builds the shared configuration now, so the first client does not wait for it.
pub fn warm() {
    let _ = CONFIG.get_or_init(build);
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
}
