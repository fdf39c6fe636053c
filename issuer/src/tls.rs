//! rustls glue shared by the relay server and the agent: checked key pairs to rustls keys, and
//! `ca.crt` bundles to root stores.
//!
//! Deciding whether a key pair is usable is `pki::keypair`'s job; this module only converts what
//! passed those checks. Nothing here watches Secrets or opens sockets.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};

use crate::Error;
use crate::pki::KeyPair;
use crate::pki::keypair::KeyPairProblem;

/// The ALPN protocol gRPC runs over.
pub const ALPN_H2: &[u8] = b"h2";

/// The rustls signing key and chain for a checked key pair.
pub fn certified_key(pair: &KeyPair) -> Result<Arc<CertifiedKey>, Error> {
    let der = pair.key_der.clone();
    let key: PrivateKeyDer<'static> = match pair.key_pem_label.as_str() {
        "PRIVATE KEY" => PrivatePkcs8KeyDer::from(der).into(),
        "RSA PRIVATE KEY" => PrivatePkcs1KeyDer::from(der).into(),
        "EC PRIVATE KEY" => PrivateSec1KeyDer::from(der).into(),
        other => {
            return Err(Error::KeyPairInvalid {
                problem: KeyPairProblem::KeyInvalid,
                detail: format!("tls.key holds a {other:?} block, which TLS cannot use"),
            });
        }
    };
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| {
        Error::KeyPairInvalid {
            problem: KeyPairProblem::KeyInvalid,
            detail: format!("tls.key cannot be used for TLS ({e})"),
        }
    })?;
    let chain = pair
        .chain_der
        .iter()
        .map(|der| CertificateDer::from(der.clone()))
        .collect();
    Ok(Arc::new(CertifiedKey::new(chain, signing_key)))
}

/// A root store holding every certificate of a `ca.crt` bundle (several roots are allowed, for
/// trust-bundle rotation). `source` names the Secret for messages.
pub fn root_store(ca_crt: &[u8], source: &str) -> Result<Arc<RootCertStore>, Error> {
    let invalid = |detail: String| Error::TrustBundleInvalid {
        source_name: source.to_string(),
        detail,
    };
    let blocks = crate::pki::pem::parse_pem(ca_crt)
        .map_err(|e| invalid(format!("ca.crt is not valid PEM ({e})")))?;
    let mut store = RootCertStore::empty();
    for (index, block) in blocks
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .enumerate()
    {
        store.add(CertificateDer::from(block.der)).map_err(|e| {
            invalid(format!(
                "ca.crt certificate #{} is unusable ({e})",
                index + 1
            ))
        })?;
    }
    if store.is_empty() {
        return Err(invalid("ca.crt holds no PEM CERTIFICATE block".into()));
    }
    Ok(Arc::new(store))
}
