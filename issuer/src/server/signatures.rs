//! Certificate signatures the relay server has already checked, remembered so that a handshake
//! does not repeat the arithmetic: [`remembering_algorithms`] wraps each signature algorithm of
//! the crypto provider. What lives elsewhere: path building, validity periods, key usages and
//! names stay webpki's; which roots are trusted is `tls`.
//!
//! Why our own: every agent's chain ends in the same intermediate, so every mTLS handshake
//! checks that intermediate's signature by the root again, an ECDSA P-256 verification of about
//! 90 µs here, a ninth of a relay server's CPU per handshake in a connect storm. webpki has no
//! cache, and rustls takes signature algorithms only as `&'static` trait objects, so the cache
//! sits in a wrapper around each algorithm, built once per process.
//!
//! A signature check is a pure function of the public key, the message and the signature: the
//! wrapper remembers the SHA-256 of those three (with their lengths) after a check succeeded,
//! and answers the same check again with success. Only checks over a DER structure (a
//! certificate's signed part starts with a SEQUENCE) are remembered; TLS 1.3 CertificateVerify
//! messages (64 spaces, then a context string) are unique to their handshake and are always
//! computed. A failed check is never remembered. Each algorithm remembers at most [`CAPACITY`]
//! checks and forgets them all when full, so a storm of new agents' leaves costs the shared
//! intermediate one new check per [`CAPACITY`] handshakes.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use ring::digest::{Context, SHA256};
use rustls::SignatureScheme;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls_pki_types::{AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm};

/// Checks each algorithm remembers before it forgets them all.
pub const CAPACITY: usize = 1024;

/// The DER tag of a SEQUENCE: the first byte of a certificate's (or a CRL's) signed part.
const DER_SEQUENCE: u8 = 0x30;

/// One signature algorithm with the checks it has seen succeed.
#[derive(Debug)]
pub struct Remembering {
    inner: &'static dyn SignatureVerificationAlgorithm,
    succeeded: Mutex<HashSet<[u8; 32]>>,
    answered_from_memory: AtomicU64,
}

impl Remembering {
    /// `inner`, remembering its successful checks of certificate signatures.
    pub fn new(inner: &'static dyn SignatureVerificationAlgorithm) -> Self {
        Self {
            inner,
            succeeded: Mutex::new(HashSet::new()),
            answered_from_memory: AtomicU64::new(0),
        }
    }

    /// How many checks were answered from memory.
    pub fn answered_from_memory(&self) -> u64 {
        self.answered_from_memory.load(Ordering::Relaxed)
    }

    /// How many successful checks are remembered now.
    pub fn remembered(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.succeeded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// SHA-256 over the three inputs, each after its length, so that no two different triples give
/// the same bytes to hash.
fn check_digest(public_key: &[u8], message: &[u8], signature: &[u8]) -> [u8; 32] {
    let mut context = Context::new(&SHA256);
    for part in [public_key, message, signature] {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part);
    }
    let mut digest = [0; 32];
    digest.copy_from_slice(context.finish().as_ref());
    digest
}

impl SignatureVerificationAlgorithm for Remembering {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        if message.first() != Some(&DER_SEQUENCE) {
            return self.inner.verify_signature(public_key, message, signature);
        }
        let digest = check_digest(public_key, message, signature);
        if self.lock().contains(&digest) {
            self.answered_from_memory.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.inner
            .verify_signature(public_key, message, signature)?;
        let mut succeeded = self.lock();
        if succeeded.len() >= CAPACITY {
            succeeded.clear();
        }
        succeeded.insert(digest);
        Ok(())
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.public_key_alg_id()
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.signature_alg_id()
    }

    fn fips(&self) -> bool {
        self.inner.fips()
    }
}

/// The algorithms of ring's rustls provider, each wrapped in a [`Remembering`] (one per distinct
/// algorithm, shared by the chain check and the TLS scheme mapping), built on first use and kept
/// for the life of the process.
pub fn remembering_algorithms() -> WebPkiSupportedAlgorithms {
    wrapped().algorithms
}

/// Whether some algorithm of [`remembering_algorithms`] remembers this check as succeeded.
pub fn remembers(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let digest = check_digest(public_key, message, signature);
    wrapped()
        .wrappers
        .iter()
        .any(|wrapper| wrapper.lock().contains(&digest))
}

/// The provider's algorithms as rustls takes them, and each wrapper once.
struct Wrapped {
    algorithms: WebPkiSupportedAlgorithms,
    wrappers: Vec<&'static Remembering>,
}

/// ring's provider's algorithms, wrapped once per process.
fn wrapped() -> &'static Wrapped {
    static WRAPPED: OnceLock<Wrapped> = OnceLock::new();
    WRAPPED.get_or_init(|| {
        wrap(rustls::crypto::ring::default_provider().signature_verification_algorithms)
    })
}

/// `algorithms` with every algorithm wrapped once; the wrappers and the lists are leaked, as
/// rustls needs them `'static` (this runs once per process).
fn wrap(algorithms: WebPkiSupportedAlgorithms) -> Wrapped {
    let mut made: Vec<(
        &'static dyn SignatureVerificationAlgorithm,
        &'static Remembering,
    )> = Vec::new();
    let mut wrapper_of = |inner: &'static dyn SignatureVerificationAlgorithm| -> &'static dyn SignatureVerificationAlgorithm {
        if let Some((_, wrapper)) = made.iter().find(|(seen, _)| std::ptr::addr_eq(*seen, inner)) {
            return *wrapper;
        }
        let wrapper: &'static Remembering = Box::leak(Box::new(Remembering::new(inner)));
        made.push((inner, wrapper));
        wrapper
    };
    let all: Vec<&'static dyn SignatureVerificationAlgorithm> = algorithms
        .all
        .iter()
        .map(|inner| wrapper_of(*inner))
        .collect();
    let mapping: Vec<(
        SignatureScheme,
        &'static [&'static dyn SignatureVerificationAlgorithm],
    )> = algorithms
        .mapping
        .iter()
        .map(|(scheme, inners)| {
            let wrappers: Vec<&'static dyn SignatureVerificationAlgorithm> =
                inners.iter().map(|inner| wrapper_of(*inner)).collect();
            (*scheme, &*Box::leak(wrappers.into_boxed_slice()))
        })
        .collect();
    Wrapped {
        algorithms: WebPkiSupportedAlgorithms {
            all: Box::leak(all.into_boxed_slice()),
            mapping: Box::leak(mapping.into_boxed_slice()),
        },
        wrappers: made.into_iter().map(|(_, wrapper)| wrapper).collect(),
    }
}

#[cfg(test)]
mod tests;
