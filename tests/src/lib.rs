//! relay-sandbox: an in-process Kubernetes API server and cert-manager simulator for tests.
//!
//! - [`schema`]: CRD structural-schema validation and pruning (pure).
//! - [`selectors`]: label and field selectors (pure).
//! - [`apply`]: server-side apply merging with managed fields (pure).
//! - [`Error`]: the crate's one error type.

#![forbid(unsafe_code)]

pub mod apply;
mod error;
pub mod schema;
pub mod selectors;

pub use error::Error;
