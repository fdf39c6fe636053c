//! The CertificateRequest and issuer controllers (being written).
