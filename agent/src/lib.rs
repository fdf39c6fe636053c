//! relay-agent: keeps a relay agent's mTLS connection to the relay server with the client
//! certificate from its Secret.
//!
//! This crate is a skeleton for now: the watcher, provider and gRPC client arrive with the relay
//! lifecycle work. What exists is the process wiring every later piece relies on: one crypto
//! provider (ring), installed before anything uses rustls.

#![forbid(unsafe_code)]

/// Installs ring as the process-wide rustls crypto provider (the only one compiled in).
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want either way.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #[test]
    fn ring_is_the_installed_provider() {
        super::install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
