//! relay-runtime: what the three long-running commands (`relay-issuer controller`,
//! `relay-issuer server`, `relay-agent`) share to run in Kubernetes, in the image of Linkerd's
//! `kubert`: the admin server, the Kubernetes client with a QPS/burst limit, logging, shutdown on
//! a signal, leader election, and the rustls glue both ends of the relay connection use.
//!
//! - [`admin`]: `/live`, `/ready` and `/metrics` on one listener per binary.
//! - [`kube_client`]: a `kube::Client` from the kubeconfig or the Pod, with a client-side rate
//!   limit.
//! - [`telemetry`]: log format and filter.
//! - [`shutdown`]: the future that resolves on SIGTERM or SIGINT.
//! - [`leader`] (feature `leader-election`): client-go's leader election on a Lease.
//! - [`tls`]: rustls keys, root stores and the relay's address and ALPN.
//! - [`Error`]: the crate's one error type.
//!
//! What does not live here: certificates and keys as such (`relay-pki`), and anything that
//! decides what the issuer or the agent does.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
mod error;
pub mod kube_client;
#[cfg(feature = "leader-election")]
pub mod leader;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

pub use error::Error;

/// Installs ring as the process-wide rustls crypto provider. Call once at the start of `main`:
/// this project compiles in no other provider, and kube/tonic need one installed.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want either way.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
