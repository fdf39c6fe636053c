use std::sync::LazyLock;

use proptest::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

use super::*;

/// ECDSA P-256 with SHA-256 as webpki checks it: the oracle the wrapper is judged by.
const P256: &dyn SignatureVerificationAlgorithm = webpki::ring::ECDSA_P256_SHA256;

fn key() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

fn sign(key: &EcdsaKeyPair, message: &[u8]) -> Vec<u8> {
    key.sign(&SystemRandom::new(), message)
        .unwrap()
        .as_ref()
        .to_vec()
}

/// Bytes shaped like a certificate's signed part: a DER SEQUENCE.
fn signed_part(body: &[u8]) -> Vec<u8> {
    let mut message = vec![DER_SEQUENCE, u8::try_from(body.len()).unwrap()];
    message.extend_from_slice(body);
    message
}

/// What a TLS 1.3 client signs in CertificateVerify: 64 spaces, the context, a transcript hash.
fn certificate_verify_message(transcript: &[u8; 32]) -> Vec<u8> {
    let mut message = vec![0x20; 64];
    message.extend_from_slice(b"TLS 1.3, client CertificateVerify\0");
    message.extend_from_slice(transcript);
    message
}

/// Whether `wrapper` accepts the signature.
fn passes(wrapper: &Remembering, public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    wrapper
        .verify_signature(public_key, message, signature)
        .is_ok()
}

/// The outcome of the same check made twice.
fn checked_twice(
    wrapper: &Remembering,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> [bool; 2] {
    [(); 2].map(|()| passes(wrapper, public_key, message, signature))
}

/// (checks remembered, checks answered from memory).
fn counts(wrapper: &Remembering) -> (usize, u64) {
    (wrapper.remembered(), wrapper.answered_from_memory())
}

#[test]
fn a_certificate_signature_is_checked_once_then_answered_from_memory() {
    let wrapper = Remembering::new(P256);
    let key = key();
    let message = signed_part(b"an intermediate's to-be-signed part");
    let signature = sign(&key, &message);
    let public_key = key.public_key().as_ref();

    assert!(passes(&wrapper, public_key, &message, &signature));
    assert_eq!(counts(&wrapper), (1, 0));
    assert!(passes(&wrapper, public_key, &message, &signature));
    assert_eq!(counts(&wrapper), (1, 1));
}

#[test]
fn a_remembered_check_vouches_for_nothing_but_its_own_bytes() {
    let wrapper = Remembering::new(P256);
    let (key, other_key) = (key(), key());
    let message = signed_part(b"an intermediate's to-be-signed part");
    let signature = sign(&key, &message);
    let public_key = key.public_key().as_ref();
    assert!(passes(&wrapper, public_key, &message, &signature));

    let mut flipped_signature = signature.clone();
    *flipped_signature.last_mut().unwrap() ^= 1;
    let mut flipped_message = message.clone();
    *flipped_message.last_mut().unwrap() ^= 1;
    let refused = [
        (public_key, message.as_slice(), flipped_signature.as_slice()),
        (public_key, flipped_message.as_slice(), signature.as_slice()),
        (
            other_key.public_key().as_ref(),
            message.as_slice(),
            signature.as_slice(),
        ),
    ];
    for (public_key, message, signature) in refused {
        assert!(!passes(&wrapper, public_key, message, signature));
    }
    assert_eq!(counts(&wrapper), (1, 0));
}

#[test]
fn failed_checks_and_handshake_signatures_are_never_remembered() {
    let key = key();
    let public_key = key.public_key().as_ref();
    let leaf = signed_part(b"a leaf's to-be-signed part");
    let mut bad_signature = sign(&key, &leaf);
    *bad_signature.last_mut().unwrap() ^= 1;
    let handshake = certificate_verify_message(&[7; 32]);
    let handshake_signature = sign(&key, &handshake);
    // (what, message, signature, the outcome of each of two checks)
    let cases = [
        ("a failed check", &leaf, &bad_signature, [false; 2]),
        (
            "a handshake signature",
            &handshake,
            &handshake_signature,
            [true; 2],
        ),
    ];
    for (what, message, signature, outcomes) in cases {
        let wrapper = Remembering::new(P256);
        assert_eq!(
            checked_twice(&wrapper, public_key, message, signature),
            outcomes,
            "{what}"
        );
        assert_eq!(counts(&wrapper), (0, 0), "{what}");
    }
}

#[test]
fn memory_is_bounded_and_refilled() {
    let wrapper = Remembering::new(P256);
    let key = key();
    let public_key = key.public_key().as_ref();
    let checks: Vec<(Vec<u8>, Vec<u8>)> = (0..=CAPACITY)
        .map(|i| {
            let message = signed_part(format!("leaf {i}").as_bytes());
            let signature = sign(&key, &message);
            (message, signature)
        })
        .collect();
    for (message, signature) in &checks[..CAPACITY] {
        assert!(passes(&wrapper, public_key, message, signature));
    }
    assert_eq!(wrapper.remembered(), CAPACITY);
    // One more: all are forgotten, the new one is remembered.
    let (message, signature) = &checks[CAPACITY];
    assert!(passes(&wrapper, public_key, message, signature));
    assert_eq!(wrapper.remembered(), 1);
    // A forgotten check is computed again, and still right.
    let (message, signature) = &checks[0];
    assert!(passes(&wrapper, public_key, message, signature));
    assert_eq!(counts(&wrapper), (2, 0));
}

#[test]
fn every_algorithm_of_the_provider_is_wrapped_once_in_the_same_place() {
    let ring = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    let remembering = remembering_algorithms();
    let ids =
        |algorithms: &[&'static dyn SignatureVerificationAlgorithm]| -> Vec<(Vec<u8>, Vec<u8>)> {
            algorithms
                .iter()
                .map(|a| {
                    (
                        a.public_key_alg_id().to_vec(),
                        a.signature_alg_id().to_vec(),
                    )
                })
                .collect()
        };
    assert_eq!(ids(ring.all), ids(remembering.all));
    assert_eq!(ring.mapping.len(), remembering.mapping.len());
    for ((scheme, algorithms), (wrapped_scheme, wrapped)) in
        ring.mapping.iter().zip(remembering.mapping)
    {
        assert_eq!(scheme, wrapped_scheme);
        assert_eq!(ids(algorithms), ids(wrapped));
    }
    // The chain check and the scheme mapping share one wrapper per algorithm, and every call
    // returns the same wrappers.
    let again = remembering_algorithms();
    assert!(std::ptr::eq(remembering.all, again.all));
    for (_, wrapped) in remembering.mapping {
        for algorithm in *wrapped {
            assert!(
                remembering
                    .all
                    .iter()
                    .any(|a| std::ptr::addr_eq(*a, *algorithm))
            );
        }
    }
    assert_eq!(super::wrapped().wrappers.len(), remembering.all.len());
}

/// Two keys, four messages (two signed parts, two CertificateVerify messages) and each key's
/// signature of each message, shared by every case (making them is the slow part).
struct Material {
    keys: [EcdsaKeyPair; 2],
    messages: [Vec<u8>; 4],
    signatures: [[Vec<u8>; 2]; 4],
}

static MATERIAL: LazyLock<Material> = LazyLock::new(|| {
    let keys = [key(), key()];
    let messages = [
        signed_part(b"intermediate"),
        signed_part(b"leaf"),
        certificate_verify_message(&[1; 32]),
        certificate_verify_message(&[2; 32]),
    ];
    let signatures = messages
        .clone()
        .map(|m| [sign(&keys[0], &m), sign(&keys[1], &m)]);
    Material {
        keys,
        messages,
        signatures,
    }
});

proptest! {
    /// Whatever the order of checks, repeats, flipped bits and wrong keys, the wrapper answers as
    /// webpki's own algorithm does.
    #[test]
    fn answers_as_the_algorithm_it_wraps(
        checks in prop::collection::vec((0usize..4, 0usize..2, 0usize..2, prop::option::of(0usize..80)), 1..32),
    ) {
        let material = &*MATERIAL;
        let wrapper = Remembering::new(P256);
        for (which, signer, checker, flip) in checks {
            let mut message = material.messages[which].clone();
            let mut signature = material.signatures[which][signer].clone();
            match flip {
                Some(bit) if bit < 40 => {
                    let at = bit % signature.len();
                    signature[at] ^= 1 << (bit % 8);
                }
                Some(bit) => {
                    let at = bit % message.len();
                    message[at] ^= 1 << (bit % 8);
                }
                None => {}
            }
            let public_key = material.keys[checker].public_key().as_ref();
            prop_assert_eq!(
                wrapper.verify_signature(public_key, &message, &signature).is_ok(),
                P256.verify_signature(public_key, &message, &signature).is_ok()
            );
        }
    }
}
