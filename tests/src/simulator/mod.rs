//! The cert-manager simulator: what cert-manager's webhook, approver and Certificate controller
//! do, for tests and the demo.
//!
//! - [`webhook`]: the validating webhook's rules, as a sandbox admission hook.
//! - [`approver`]: the default approver (approve all, approve listed groups, deny all).
//! - [`csr`]: private keys and CSRs as the Certificate controller makes them.
//! - [`certificates`]: the Certificate controller (issue, complete, fail and back off, renew).

pub mod approver;
pub mod certificates;
pub mod csr;
pub mod webhook;
