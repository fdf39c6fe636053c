//! cert-manager's kinds as Rust types, generated at build time by kopium from the pinned
//! release's CRDs (see `build.rs`): every field of the release, nothing hand-written. For tests
//! that build or read cert-manager objects typed; the simulator itself works on JSON.
//!
//! What does not live here: the product's own `CertificateRequest` (`relay_issuer::cert_manager`,
//! the few fields the issuer reads, checked against these CRDs by a drift test).

/// `Certificate` (cert-manager.io/v1) and the types of its fields.
#[allow(missing_docs, clippy::all)]
pub mod certificates {
    include!(concat!(env!("OUT_DIR"), "/certificates.rs"));
}

/// `CertificateRequest` (cert-manager.io/v1) and the types of its fields.
#[allow(missing_docs, clippy::all)]
pub mod certificaterequests {
    include!(concat!(env!("OUT_DIR"), "/certificaterequests.rs"));
}

pub use certificaterequests::CertificateRequest;
pub use certificates::Certificate;
