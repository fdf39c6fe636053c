//! Which root a certificate chain hangs from, and the fingerprints that name certificates in
//! statuses and in a root rotation (`relay-issuer ca rotate`).
//!
//! A fingerprint is the SHA-256 of the certificate's DER, lowercase hex without separators
//! (what `openssl x509 -fingerprint -sha256` prints, without its colons). The issuing root is
//! found by name and by signature, not by name alone: a rotated root usually keeps the old
//! root's subject.

use x509_parser::prelude::{FromDer, X509Certificate};

/// The SHA-256 fingerprint of a DER certificate, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The index in `roots` (DER certificates) of the root that issued the top of `chain` (DER,
/// leaf first, as a TLS peer sends it): the root whose subject is the top certificate's issuer
/// and whose key verifies its signature. `None` when no root does, or `chain` does not parse.
pub fn issuing_root(chain: &[&[u8]], roots: &[&[u8]]) -> Option<usize> {
    let top = X509Certificate::from_der(chain.last()?).ok()?.1;
    roots.iter().position(|root| {
        X509Certificate::from_der(root).is_ok_and(|(_, root)| {
            top.issuer().as_raw() == root.subject().as_raw()
                && top.verify_signature(Some(root.public_key())).is_ok()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{GeneratedKeyType, PkiSpec, generate_pki};

    fn der(pem: &str) -> Vec<u8> {
        x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents
    }

    #[test]
    fn fingerprints_are_sha256_of_the_der_in_lowercase_hex() {
        assert_eq!(
            fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_root_that_signed_the_chain_is_found_even_among_roots_of_the_same_name() {
        let now = time::OffsetDateTime::now_utc();
        let spec = PkiSpec {
            key_type: GeneratedKeyType::P256,
            ..PkiSpec::default()
        };
        let a = generate_pki(&spec, now).unwrap();
        let b = generate_pki(&spec, now).unwrap();
        let (root_a, root_b) = (der(&a.root.cert_pem), der(&b.root.cert_pem));
        let intermediate_b = der(&b.intermediate.cert_pem);
        assert_ne!(fingerprint(&root_a), fingerprint(&root_b));
        // Same subject (both generated with the default names): only the signature tells.
        let roots: [&[u8]; 2] = [&root_a, &root_b];
        assert_eq!(issuing_root(&[&intermediate_b], &roots), Some(1));
        assert_eq!(issuing_root(&[&intermediate_b], &roots[..1]), None);
        assert_eq!(issuing_root(&[], &roots), None);
        assert_eq!(issuing_root(&[b"not a certificate"], &roots), None);
    }
}
