//! Private and public keys: loading a CA key from PEM, signing with it, and naming key types.
//!
//! The CA key may be PKCS#8, PKCS#1 (RSA) or SEC1 (EC). Signing uses ring directly (the one
//! crypto provider of this project). Public keys are classified from their
//! SubjectPublicKeyInfo so that refusals can name the key that was seen.

use super::der::{DerError, DerReader, DerWriter, Element, oid, oid_text, tag};
use crate::Error;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use std::fmt;
use x509_parser::x509::SubjectPublicKeyInfo;

/// A key algorithm and size that this project accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// RSA with a modulus of this many bits.
    Rsa(usize),
    /// Ed25519.
    Ed25519,
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::EcdsaP256 => f.write_str("ECDSA P-256"),
            KeyType::EcdsaP384 => f.write_str("ECDSA P-384"),
            KeyType::Rsa(bits) => write!(f, "RSA {bits}-bit"),
            KeyType::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// Smallest and largest RSA moduli accepted.
pub const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus accepted.
pub const RSA_MAX_BITS: usize = 8192;

// DER contents of the public key algorithm and curve OIDs we recognise.
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const OID_EC_PUBLIC_KEY: &[u8] = oid::EC_PUBLIC_KEY;
const OID_ED25519: &[u8] = oid::ED25519;
const OID_ED448: &[u8] = &[0x2b, 0x65, 0x71];
const OID_X25519: &[u8] = &[0x2b, 0x65, 0x6e];
const OID_DSA: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01];
const OID_CURVE_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_CURVE_SECP256K1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x0a];

/// A SubjectPublicKeyInfo taken apart: the algorithm OID, its parameters and the key bits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpkiParts<'a> {
    /// The algorithm OID's DER contents.
    pub algorithm: &'a [u8],
    /// The algorithm parameters element (the curve OID for EC keys), when present.
    pub parameters: Option<Element<'a>>,
    /// The key: the contents of the subjectPublicKey BIT STRING.
    pub key: &'a [u8],
}

impl<'a> SpkiParts<'a> {
    /// Reads a DER SubjectPublicKeyInfo.
    pub(crate) fn read(spki_der: &'a [u8]) -> Result<Self, DerError> {
        let mut outer = DerReader::new(spki_der);
        let spki = outer.expect(tag::SEQUENCE, "the subjectPublicKeyInfo")?;
        outer.finish("the subjectPublicKeyInfo")?;
        let mut fields = spki.reader();
        let algorithm = fields.expect(tag::SEQUENCE, "the public key algorithm")?;
        let key = fields.expect(tag::BIT_STRING, "the public key")?;
        fields.finish("the subjectPublicKeyInfo")?;
        let (algorithm, parameters) = algorithm.algorithm_identifier("the public key algorithm")?;
        Ok(Self {
            algorithm,
            parameters,
            key: key.whole_bytes("the public key")?,
        })
    }
}

/// Names the key in a SubjectPublicKeyInfo and says whether it is accepted.
///
/// `Ok` for ECDSA P-256/P-384, RSA 2048–8192 and Ed25519; `Err(description)` otherwise, where the
/// description names what was seen (`RSA 1024-bit`, `ECDSA P-521`, `DSA`, …).
pub fn classify_public_key(spki: &SubjectPublicKeyInfo<'_>) -> Result<KeyType, String> {
    let parts = SpkiParts::read(spki.raw).map_err(|e| format!("malformed key ({e})"))?;
    classify_key(&parts)
}

/// [`classify_public_key`] for a SubjectPublicKeyInfo already taken apart.
pub(crate) fn classify_key(spki: &SpkiParts<'_>) -> Result<KeyType, String> {
    match spki.algorithm {
        OID_RSA_ENCRYPTION => {
            let bits = rsa_modulus_bits(spki.key).ok_or_else(|| "malformed RSA".to_string())?;
            if (RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                Ok(KeyType::Rsa(bits))
            } else {
                Err(format!("RSA {bits}-bit"))
            }
        }
        OID_EC_PUBLIC_KEY => {
            let curve = spki
                .parameters
                .filter(|p| p.tag == tag::OID)
                .map(|p| p.content);
            match curve {
                Some(c) if c == oid::CURVE_P256 => Ok(KeyType::EcdsaP256),
                Some(c) if c == oid::CURVE_P384 => Ok(KeyType::EcdsaP384),
                Some(OID_CURVE_P521) => Err("ECDSA P-521".to_string()),
                Some(OID_CURVE_SECP256K1) => Err("ECDSA secp256k1".to_string()),
                Some(other) => Err(format!("ECDSA (curve {})", oid_text(other))),
                None => Err("ECDSA (curve not named)".to_string()),
            }
        }
        OID_ED25519 => Ok(KeyType::Ed25519),
        OID_ED448 => Err("Ed448".to_string()),
        OID_X25519 => Err("X25519 (key agreement only)".to_string()),
        OID_DSA => Err("DSA".to_string()),
        OID_RSASSA_PSS => Err("RSASSA-PSS-restricted RSA".to_string()),
        other => Err(format!("unknown algorithm {}", oid_text(other))),
    }
}

/// The size in bits of the modulus of a DER RSAPublicKey.
fn rsa_modulus_bits(rsa_public_key: &[u8]) -> Option<usize> {
    let mut outer = DerReader::new(rsa_public_key);
    let key = outer.expect(tag::SEQUENCE, "the RSA key").ok()?;
    outer.finish("the RSA key").ok()?;
    let mut fields = key.reader();
    let modulus = fields.expect(tag::INTEGER, "the RSA modulus").ok()?;
    fields.expect(tag::INTEGER, "the RSA exponent").ok()?;
    fields.finish("the RSA key").ok()?;
    let first = modulus.content.iter().position(|b| *b != 0)?;
    let trimmed = &modulus.content[first..];
    Some(trimmed.len() * 8 - trimmed[0].leading_zeros() as usize)
}

/// A CA private key, ready to sign.
pub struct SigningKey {
    kind: SigningKeyKind,
    rng: SystemRandom,
}

enum SigningKeyKind {
    EcdsaP256(EcdsaKeyPair),
    EcdsaP384(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(f, "SigningKey({})", self.key_type())
    }
}

impl SigningKey {
    /// Loads the first private key from PEM text (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub fn from_pem(pem_text: &[u8]) -> Result<Self, Error> {
        let blocks = super::pem::parse_pem(pem_text).map_err(|e| Error::CaKeyInvalid {
            detail: format!("the PEM is malformed ({e})"),
        })?;
        let block = blocks
            .iter()
            .find(|b| b.label.ends_with("PRIVATE KEY"))
            .ok_or(Error::CaKeyMissing)?;
        let der = block.der.as_slice();
        match block.label.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8(der),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(der)
                .map(|k| Self::new(SigningKeyKind::Rsa(k)))
                .map_err(|e| Error::CaKeyInvalid {
                    detail: format!("the PKCS#1 RSA key is rejected ({e})"),
                }),
            "EC PRIVATE KEY" => Self::from_sec1(der),
            "ENCRYPTED PRIVATE KEY" => Err(Error::CaKeyInvalid {
                detail: "the key is encrypted; store it unencrypted in the Secret (openssl pkcs8 -topk8 -nocrypt)".into(),
            }),
            other => Err(Error::CaKeyInvalid {
                detail: format!("PEM block {other:?} is not a supported private key type"),
            }),
        }
    }

    /// Loads a PKCS#8 DER private key.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, Error> {
        let rng = SystemRandom::new();
        if let Ok(k) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der, &rng)
        {
            return Ok(Self::new(SigningKeyKind::EcdsaP256(k)));
        }
        if let Ok(k) =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, der, &rng)
        {
            return Ok(Self::new(SigningKeyKind::EcdsaP384(k)));
        }
        if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Ok(Self::new(SigningKeyKind::Ed25519(k)));
        }
        match RsaKeyPair::from_pkcs8(der) {
            Ok(k) => Ok(Self::new(SigningKeyKind::Rsa(k))),
            Err(e) => Err(Error::CaKeyInvalid {
                detail: format!(
                    "the PKCS#8 key is not an ECDSA P-256/P-384, Ed25519 or RSA 2048-8192 key ring can use ({e})"
                ),
            }),
        }
    }

    /// Loads a SEC1 (`EC PRIVATE KEY`) DER key by wrapping it in PKCS#8.
    fn from_sec1(der: &[u8]) -> Result<Self, Error> {
        let rng = SystemRandom::new();
        for (curve, alg, make) in [
            (
                oid::CURVE_P256,
                &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                SigningKeyKind::EcdsaP256 as fn(EcdsaKeyPair) -> SigningKeyKind,
            ),
            (
                oid::CURVE_P384,
                &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
                SigningKeyKind::EcdsaP384,
            ),
        ] {
            let mut w = DerWriter::default();
            w.sequence(|w| {
                w.small_integer(0);
                w.sequence(|w| {
                    w.oid(oid::EC_PUBLIC_KEY);
                    w.oid(curve);
                });
                w.octet_string(der);
            });
            if let Ok(k) = EcdsaKeyPair::from_pkcs8(alg, &w.into_bytes(), &rng) {
                return Ok(Self::new(make(k)));
            }
        }
        Err(Error::CaKeyInvalid {
            detail: "the SEC1 EC key is not a P-256 or P-384 key with its public key included (re-export it with `openssl pkcs8 -topk8 -nocrypt`)".into(),
        })
    }

    fn new(kind: SigningKeyKind) -> Self {
        Self {
            kind,
            rng: SystemRandom::new(),
        }
    }

    /// The algorithm and size of this key.
    pub fn key_type(&self) -> KeyType {
        match &self.kind {
            SigningKeyKind::EcdsaP256(_) => KeyType::EcdsaP256,
            SigningKeyKind::EcdsaP384(_) => KeyType::EcdsaP384,
            SigningKeyKind::Rsa(k) => KeyType::Rsa(k.public().modulus_len() * 8),
            SigningKeyKind::Ed25519(_) => KeyType::Ed25519,
        }
    }

    /// The public key as it appears inside a SubjectPublicKeyInfo BIT STRING.
    pub fn public_key_bytes(&self) -> &[u8] {
        match &self.kind {
            SigningKeyKind::EcdsaP256(k) | SigningKeyKind::EcdsaP384(k) => k.public_key().as_ref(),
            SigningKeyKind::Rsa(k) => k.public_key().as_ref(),
            SigningKeyKind::Ed25519(k) => k.public_key().as_ref(),
        }
    }

    /// Writes the AlgorithmIdentifier of the signatures this key makes.
    pub(crate) fn write_signature_algorithm(&self, w: &mut DerWriter) {
        w.sequence(|w| match &self.kind {
            SigningKeyKind::EcdsaP256(_) => w.oid(oid::ECDSA_WITH_SHA256),
            SigningKeyKind::EcdsaP384(_) => w.oid(oid::ECDSA_WITH_SHA384),
            SigningKeyKind::Rsa(_) => {
                w.oid(oid::SHA256_WITH_RSA);
                w.null();
            }
            SigningKeyKind::Ed25519(_) => w.oid(oid::ED25519),
        });
    }

    /// Signs `message`, returning the signature as it goes into the certificate's BIT STRING.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let failed = |what: &str| Error::SigningFailed {
            detail: what.to_string(),
        };
        match &self.kind {
            SigningKeyKind::EcdsaP256(k) | SigningKeyKind::EcdsaP384(k) => k
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| failed("ECDSA signing failed")),
            SigningKeyKind::Rsa(k) => {
                let mut signature = vec![0u8; k.public().modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &self.rng,
                    message,
                    &mut signature,
                )
                .map_err(|_| failed("RSA signing failed"))?;
                Ok(signature)
            }
            SigningKeyKind::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
        }
    }

    /// Checks that this key belongs to the public key in `spki` (same algorithm, same key).
    /// Returns a description of the difference when it does not.
    pub fn matches(&self, spki: &SubjectPublicKeyInfo<'_>) -> Result<(), String> {
        let cert_type = classify_public_key(spki)
            .map_err(|seen| format!("the certificate carries a {seen} key"))?;
        let own_type = self.key_type();
        if cert_type != own_type {
            return Err(format!(
                "the key is {own_type} but the certificate's public key is {cert_type}"
            ));
        }
        if spki.subject_public_key.data.as_ref() != self.public_key_bytes() {
            return Err(format!("both are {own_type} but the public keys differ"));
        }
        Ok(())
    }
}

/// The key identifier of a public key: the first 160 bits of its SHA-256 (RFC 7093 §2 method 1).
pub fn key_identifier(public_key: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, public_key).as_ref()[..20].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer;

    fn spki_of(key: &rcgen::KeyPair) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(key)
    }

    #[test]
    fn loads_pkcs8_keys_of_every_supported_type() {
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let signing = SigningKey::from_pem(key.serialize_pem().as_bytes()).unwrap();
            let spki_der = spki_of(&key);
            let (_, spki) = SubjectPublicKeyInfo::from_der(&spki_der).unwrap();
            signing.matches(&spki).unwrap();
            assert_eq!(classify_public_key(&spki).unwrap(), signing.key_type());
        }
    }

    #[test]
    fn refuses_missing_encrypted_and_garbage_keys() {
        assert!(matches!(
            SigningKey::from_pem(b""),
            Err(Error::CaKeyMissing)
        ));
        assert!(matches!(
            SigningKey::from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(Error::CaKeyMissing)
        ));
        let encrypted =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let err = SigningKey::from_pem(encrypted).unwrap_err();
        assert!(err.to_string().contains("encrypted"), "{err}");
        let garbage = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(matches!(
            SigningKey::from_pem(garbage),
            Err(Error::CaKeyInvalid { .. })
        ));
        let bad_sec1 = b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert!(matches!(
            SigningKey::from_pem(bad_sec1),
            Err(Error::CaKeyInvalid { .. })
        ));
    }

    #[test]
    fn mismatched_keys_say_how_they_differ() {
        let a = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let b = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let c = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let signing = SigningKey::from_pem(a.serialize_pem().as_bytes()).unwrap();
        let b_spki = spki_of(&b);
        let (_, spki) = SubjectPublicKeyInfo::from_der(&b_spki).unwrap();
        assert!(
            signing
                .matches(&spki)
                .unwrap_err()
                .contains("public keys differ")
        );
        let c_spki = spki_of(&c);
        let (_, spki) = SubjectPublicKeyInfo::from_der(&c_spki).unwrap();
        assert!(signing.matches(&spki).unwrap_err().contains("Ed25519"));
    }

    #[test]
    fn debug_never_shows_key_material() {
        let a = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let signing = SigningKey::from_pem(a.serialize_pem().as_bytes()).unwrap();
        assert_eq!(format!("{signing:?}"), "SigningKey(ECDSA P-256)");
    }

    #[test]
    fn key_types_display_plainly() {
        assert_eq!(KeyType::Rsa(2048).to_string(), "RSA 2048-bit");
        assert_eq!(KeyType::EcdsaP384.to_string(), "ECDSA P-384");
    }

    #[test]
    fn key_identifiers_are_160_bits() {
        assert_eq!(key_identifier(b"abc").len(), 20);
    }
}
