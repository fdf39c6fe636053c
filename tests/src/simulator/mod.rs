//! The cert-manager simulator: what cert-manager's webhook, approver and Certificate controller
//! do, for tests and the demo.
//!
//! - [`webhook`]: the validating webhook's rules, as a sandbox admission hook.

pub mod webhook;
