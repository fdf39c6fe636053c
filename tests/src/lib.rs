//! relay-sandbox: an in-process Kubernetes API server and cert-manager simulator for tests.
//!
//! A skeleton for now: the API server, the simulator and the `relay-sandbox serve` binary
//! arrive with the sandbox work.

#![forbid(unsafe_code)]
