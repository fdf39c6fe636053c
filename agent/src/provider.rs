//! The provider: holds the current client certificate and the trust bundle, and hands them to
//! every new TLS handshake.
//!
//! - [`Provider`] implements rustls' [`ResolvesClientCert`]: the certificate is read from an
//!   [`ArcSwapOption`] at each handshake, so a handshake that starts after [`Provider::swap`]
//!   presents the new certificate at once. Handshakes already done keep theirs (a live session
//!   outlives its certificate, as TLS intends).
//! - Every certificate swap bumps a generation published on a [`tokio::sync::watch`] channel
//!   ([`Provider::subscribe`]); the gRPC client follows it to move its connection to the new
//!   certificate (make-before-break).
//! - [`Provider::client_config`] builds the rustls client configuration: ALPN `h2`, the relay
//!   server verified against the trust bundle, and **session resumption disabled**: a resumed
//!   TLS 1.3 session carries the identity of the handshake that created it, so resumption would
//!   let a replaced certificate outlive the swap.
//!
//! Deciding whether a Secret's data is usable is the watcher's job (`load_key_pair`); this module
//! takes only checked key pairs.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use relay_pki::KeyPair;
use relay_runtime::tls::{ALPN_H2, certified_key};
use rustls::client::{ResolvesClientCert, Resumption};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, SignatureScheme};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::Error;
use crate::readiness::CertificateFacts;

/// A client certificate in service.
pub struct ClientCertificate {
    /// The rustls signing key and chain.
    pub key: Arc<CertifiedKey>,
    /// The leaf's serial, colon-separated hex.
    pub serial: String,
    /// The leaf's subject, RFC 4514.
    pub subject: String,
    /// The leaf's notBefore.
    pub not_before: OffsetDateTime,
    /// The leaf's notAfter.
    pub not_after: OffsetDateTime,
    /// The leaf, DER.
    pub leaf_der: Vec<u8>,
    /// Which swap brought it (1 for the first certificate).
    pub generation: u64,
    /// SHA-256 over the chain and the key: tells a changed Secret from a rewritten one.
    fingerprint: [u8; 32],
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("ClientCertificate")
            .field("serial", &self.serial)
            .field("subject", &self.subject)
            .field("not_after", &relay_pki::format_time(self.not_after))
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// What readiness needs to know about it.
    pub fn facts(&self) -> CertificateFacts {
        CertificateFacts {
            serial: self.serial.clone(),
            not_before: self.not_before,
            not_after: self.not_after,
        }
    }
}

/// What [`Provider::swap`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The same chain and key were already in service (e.g. only the Secret's metadata changed).
    Unchanged,
    /// The certificate was replaced; new handshakes present it from now on.
    Replaced {
        /// The serial it replaced, if there was a certificate before.
        previous_serial: Option<String>,
        /// The new generation.
        generation: u64,
    },
}

/// The current client certificate and trust bundle.
pub struct Provider {
    current: ArcSwapOption<ClientCertificate>,
    roots: ArcSwapOption<RootCertStore>,
    generation: watch::Sender<u64>,
    roots_generation: watch::Sender<u64>,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("current", &self.current.load().as_deref())
            .field("generation", &*self.generation.borrow())
            .field("roots_loaded", &self.roots.load().is_some())
            .finish()
    }
}

impl Default for Provider {
    fn default() -> Self {
        Self {
            current: ArcSwapOption::empty(),
            roots: ArcSwapOption::empty(),
            generation: watch::channel(0).0,
            roots_generation: watch::channel(0).0,
        }
    }
}

fn fingerprint(pair: &KeyPair) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for der in &pair.chain_der {
        context.update(&(der.len() as u64).to_be_bytes());
        context.update(der);
    }
    context.update(pair.key_pem_label.as_bytes());
    context.update(&pair.key_der);
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

impl Provider {
    /// An empty provider: no certificate, no trust bundle, generation 0.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Puts a checked key pair in service. New handshakes present it at once; subscribers see
    /// the generation go up. The same chain and key again change nothing.
    pub fn swap(&self, pair: &KeyPair) -> Result<Swap, Error> {
        let fingerprint = fingerprint(pair);
        let previous = self.current.load_full();
        if previous
            .as_ref()
            .is_some_and(|p| p.fingerprint == fingerprint)
        {
            return Ok(Swap::Unchanged);
        }
        let key = certified_key(pair)?;
        let generation = previous.as_ref().map_or(0, |p| p.generation) + 1;
        let certificate = ClientCertificate {
            key,
            serial: pair.serial.clone(),
            subject: pair.subject.clone(),
            not_before: pair.not_before,
            not_after: pair.not_after,
            leaf_der: pair.chain_der.first().cloned().unwrap_or_default(),
            generation,
            fingerprint,
        };
        self.current.store(Some(Arc::new(certificate)));
        self.generation.send_replace(generation);
        Ok(Swap::Replaced {
            previous_serial: previous.map(|p| p.serial.clone()),
            generation,
        })
    }

    /// The certificate in service, if any.
    pub fn current(&self) -> Option<Arc<ClientCertificate>> {
        self.current.load_full()
    }

    /// The current generation (0 before the first certificate).
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Follows certificate swaps: the value is the generation.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Replaces the trust bundle used to verify the relay server on new connections.
    pub fn set_roots(&self, roots: Arc<RootCertStore>) {
        self.roots.store(Some(roots));
        self.roots_generation.send_modify(|g| *g += 1);
    }

    /// The trust bundle, if one was loaded.
    pub fn roots(&self) -> Option<Arc<RootCertStore>> {
        self.roots.load_full()
    }

    /// Follows trust-bundle reloads: the value counts them.
    pub fn subscribe_roots(&self) -> watch::Receiver<u64> {
        self.roots_generation.subscribe()
    }

    /// A rustls client configuration for one connection to the relay server: the current trust
    /// bundle, ALPN `h2`, no session resumption, and `resolver` choosing the client certificate
    /// at handshake time (the provider itself, or a wrapper that records the choice).
    pub fn client_config(
        &self,
        resolver: Arc<dyn ResolvesClientCert>,
    ) -> Result<ClientConfig, Error> {
        let roots = self.roots().ok_or_else(|| Error::NoRoots {
            secret: "the root Secret".to_string(),
        })?;
        client_config(roots, resolver)
    }
}

/// The client configuration every relay connection uses (see [`Provider::client_config`]).
pub fn client_config(
    roots: Arc<RootCertStore>,
    resolver: Arc<dyn ResolvesClientCert>,
) -> Result<ClientConfig, Error> {
    let provider = Arc::new(relay_runtime::tls::relay_crypto_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            Error::Shared(relay_runtime::Error::Tls {
                what: "cannot set up TLS for the relay connection".into(),
                detail: e.to_string(),
            })
        })?
        .with_root_certificates(roots)
        .with_client_cert_resolver(resolver);
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    config.resumption = Resumption::disabled();
    Ok(config)
}

impl ResolvesClientCert for Provider {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.current.load().as_ref().map(|c| c.key.clone())
    }

    fn has_certs(&self) -> bool {
        self.current.load().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_pki::generate::{PkiSpec, generate_pki};
    use relay_pki::load_key_pair;

    fn pair(names: &[&str]) -> KeyPair {
        let spec = PkiSpec {
            server_names: names.iter().map(|s| s.to_string()).collect(),
            ..PkiSpec::default()
        };
        let now = OffsetDateTime::now_utc();
        let pki = generate_pki(&spec, now).unwrap();
        let server = pki.server.unwrap();
        load_key_pair(
            Some(server.cert_pem.as_bytes()),
            Some(server.key_pem.as_bytes()),
            now,
        )
        .unwrap()
    }

    #[test]
    fn swaps_bump_the_generation_and_identical_pairs_do_not() {
        let provider = Provider::new();
        let mut changes = provider.subscribe();
        assert!(provider.current().is_none());
        assert!(!provider.has_certs());
        let first = pair(&["a.example"]);
        assert_eq!(
            provider.swap(&first).unwrap(),
            Swap::Replaced {
                previous_serial: None,
                generation: 1
            }
        );
        assert!(changes.has_changed().unwrap());
        assert_eq!(*changes.borrow_and_update(), 1);
        assert_eq!(provider.swap(&first).unwrap(), Swap::Unchanged);
        assert!(!changes.has_changed().unwrap());
        let second = pair(&["b.example"]);
        assert_eq!(
            provider.swap(&second).unwrap(),
            Swap::Replaced {
                previous_serial: Some(first.serial.clone()),
                generation: 2
            }
        );
        let current = provider.current().unwrap();
        assert_eq!(current.serial, second.serial);
        assert_eq!(current.generation, 2);
        assert_eq!(provider.generation(), 2);
        // The resolver hands out the new key at once.
        let resolved = provider.resolve(&[], &[]).unwrap();
        assert!(Arc::ptr_eq(&resolved, &current.key));
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let provider = Provider::new();
        let p = pair(&["a.example"]);
        provider.swap(&p).unwrap();
        let text = format!("{provider:?}");
        assert!(text.contains(&p.serial), "{text}");
        assert!(!text.contains("PRIVATE"), "{text}");
    }

    #[test]
    fn a_client_config_needs_roots_and_disables_resumption() {
        crate::install_crypto_provider();
        let provider = Provider::new();
        let error = provider.client_config(provider.clone()).unwrap_err();
        assert!(matches!(error, Error::NoRoots { .. }), "{error:?}");
        let mut roots = RootCertStore::empty();
        let spec = PkiSpec::default();
        let pki = generate_pki(&spec, OffsetDateTime::now_utc()).unwrap();
        let store = relay_runtime::tls::root_store(pki.root.cert_pem.as_bytes(), "test").unwrap();
        roots.roots.extend(store.roots.iter().cloned());
        provider.set_roots(Arc::new(roots));
        let config = provider.client_config(provider.clone()).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
        // Resumption::disabled() stores no sessions: a fresh config would have a cache.
        assert!(format!("{:?}", config.resumption).contains("NoClientSessionStorage"));
    }
}
