//! relay-proto: the relay gRPC API (`RelayCertificates.SignCertificate`, `Relay.Connect`).
//!
//! A skeleton for now: the `.proto` definitions and generated code arrive with the relay
//! lifecycle work, built offline from a clean clone.

#![forbid(unsafe_code)]
