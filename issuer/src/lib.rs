//! relay-issuer: a cert-manager external issuer and relay server for relay agents' client
//! certificates.
//!
//! - [`pki`]: signing rules, CA checks and renewal arithmetic (pure; no Kubernetes or network).
//! - [`cli`]: the offline `relay-issuer` commands (`ca create`, `sign`, `inspect`).
//! - [`rotation`]: the staged root rotation's plan (pure), for `relay-issuer ca rotate`.
//! - [`Error`]: the crate's one error type.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod cert_manager;
pub mod cli;
pub mod controller;
mod error;
pub(crate) mod k8s;
/// The PKI core, crate `relay-pki` (re-exported under its old path).
pub use relay_pki as pki;
pub mod rotation;
pub mod server;

pub use error::{Disposition, Error};

/// The shared runtime, crate `relay-runtime` (re-exported under the old paths).
pub use relay_runtime::{
    admin, install_crypto_provider, kube_client, leader, shutdown, telemetry, tls,
};
