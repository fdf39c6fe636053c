//! relay-issuer: a cert-manager external issuer and relay server for relay agents' client
//! certificates.
//!
//! - [`pki`]: signing rules, CA checks and renewal arithmetic (pure; no Kubernetes or network).
//! - [`cli`]: the offline `relay-issuer` commands (`ca create`, `sign`, `inspect`).
//! - [`Error`]: the crate's one error type.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod api;
pub mod cert_manager;
pub mod cli;
pub mod controller;
mod error;
pub mod kube_client;
pub mod leader;
/// The PKI core, crate `relay-pki` (re-exported under its old path).
pub use relay_pki as pki;
pub mod server;
pub mod telemetry;
pub mod tls;

pub use error::{Disposition, Error};

/// Installs ring as the process-wide rustls crypto provider. Call once at the start of `main`:
/// this project compiles in no other provider, and kube/tonic need one installed.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want either way.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
