//! rustls glue shared by the relay server and the agent: checked key pairs to rustls keys, and
//! `ca.crt` bundles to root stores.
//!
//! Deciding whether a key pair is usable is `pki::keypair`'s job; this module only converts what
//! passed those checks, and dials a gRPC channel over TLS with a given rustls client config
//! ([`connect_channel`]). Nothing here watches Secrets.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};

use crate::Error;
use relay_pki::KeyPair;
use relay_pki::keypair::KeyPairProblem;
use rustls::pki_types::ServerName;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint, Uri};

/// The ALPN protocol gRPC runs over.
pub const ALPN_H2: &[u8] = b"h2";

/// ring's rustls provider with TLS 1.3's AES-128-GCM-SHA256 suite first, for both ends of a
/// relay connection (the relay server also sets `ignore_client_order`, so its order decides).
///
/// ring lists AES-256-GCM-SHA384 first. Its transcript hash and key schedule run on SHA-512's
/// compression function, which x86-64 CPUs have no instructions for, where SHA-256 has SHA-NI:
/// in a connect storm SHA-512 was 3 % of all the CPU a relay server and its agents used. TLS 1.3
/// requires every implementation to offer AES-128-GCM-SHA256, and Go's crypto/tls and
/// BoringSSL prefer it on CPUs with AES instructions; the other suites stay, in ring's order,
/// after it.
pub fn relay_crypto_provider() -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    // A stable sort: ring's order is kept within each rank.
    provider
        .cipher_suites
        .sort_by_key(|suite| match (suite.suite(), suite.version().version) {
            (rustls::CipherSuite::TLS13_AES_128_GCM_SHA256, _) => 0,
            (_, rustls::ProtocolVersion::TLSv1_3) => 1,
            _ => 2,
        });
    provider
}

/// The rustls signing key and chain for a checked key pair.
pub fn certified_key(pair: &KeyPair) -> Result<Arc<CertifiedKey>, Error> {
    let der = pair.key_der.clone();
    let key: PrivateKeyDer<'static> = match pair.key_pem_label.as_str() {
        "PRIVATE KEY" => PrivatePkcs8KeyDer::from(der).into(),
        "RSA PRIVATE KEY" => PrivatePkcs1KeyDer::from(der).into(),
        "EC PRIVATE KEY" => PrivateSec1KeyDer::from(der).into(),
        other => {
            return Err(relay_pki::Error::KeyPairInvalid {
                problem: KeyPairProblem::KeyInvalid,
                detail: format!("tls.key holds a {other:?} block, which TLS cannot use"),
            }
            .into());
        }
    };
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| {
        relay_pki::Error::KeyPairInvalid {
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
    let blocks = relay_pki::pem::parse_pem(ca_crt)
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

/// A client certificate resolver that always offers one certificate.
#[derive(Debug)]
pub struct FixedClientCertificate(pub Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for FixedClientCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A TLS 1.3/1.2 client config trusting `roots`, offering `client` when given, ALPN h2, no
/// session resumption (every connection authenticates in full).
pub fn client_config(
    roots: Arc<RootCertStore>,
    client: Option<Arc<CertifiedKey>>,
) -> rustls::ClientConfig {
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match client {
        Some(key) => builder.with_client_cert_resolver(Arc::new(FixedClientCertificate(key))),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    config
}

/// The relay server's port when an address names none: the relay-issuer chart's Service port.
pub const DEFAULT_RELAY_PORT: u16 = 9900;

/// A relay server's `https://host[:port]`: the one reading of the address for the agent
/// (`--relay-address`) and for remote signing (`spec.relay.address`), which the relay-agent chart
/// fills from the same value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAddress {
    /// The host to dial (an IPv6 literal without its brackets).
    pub host: String,
    /// The port to dial: the address's, else [`DEFAULT_RELAY_PORT`].
    pub port: u16,
}

impl RelayAddress {
    /// Parses `https://host[:port]` (a trailing `/` is allowed; a path, query, other scheme or
    /// missing host is not). The error is what is wrong, as a phrase ("it has a path…"), for the
    /// caller to put in its own error naming the setting the address came from.
    pub fn parse(address: &str) -> Result<Self, String> {
        let uri = address
            .parse::<Uri>()
            .map_err(|e| format!("it is not a URL ({e})"))?;
        match uri.scheme_str() {
            Some("https") => {}
            Some(other) => {
                return Err(format!(
                    "the scheme is {other}, but the relay connection is always TLS"
                ));
            }
            None => return Err("it has no scheme".into()),
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or("it names no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if !(uri.path().is_empty() || uri.path() == "/") || uri.query().is_some() {
            return Err("it has a path; give only https://host:port".into());
        }
        Ok(Self {
            host,
            port: uri.port_u16().unwrap_or(DEFAULT_RELAY_PORT),
        })
    }
}

/// Dials `address` (`https://host:port`) and returns a gRPC channel over TLS with `config`;
/// the server's certificate must carry `server_name` (default: the address's host). Each step
/// (TCP, TLS) is limited to `timeout`.
pub async fn connect_channel(
    address: &str,
    server_name: Option<&str>,
    config: rustls::ClientConfig,
    timeout: Duration,
) -> Result<Channel, Error> {
    let RelayAddress { host, port } = RelayAddress::parse(address).map_err(|why| {
        Error::InvalidArgument(format!(
            "relay address {address:?} cannot be used: {why}; write it as https://host:port, e.g. https://relay.example.com:9900"
        ))
    })?;
    let name = server_name
        .map(str::to_string)
        .unwrap_or_else(|| host.clone());
    let server_name = ServerName::try_from(name.clone())
        .map_err(|_| Error::InvalidArgument(format!("{name:?} is not a valid TLS server name")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let endpoint = Endpoint::from_shared(format!("http://{host}:{port}"))
        .map_err(|e| Error::InvalidArgument(format!("relay address {address:?}: {e}")))?
        .connect_timeout(timeout);
    let target = (host, port);
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            let server_name = server_name.clone();
            let target = target.clone();
            async move {
                let tcp = tokio::time::timeout(
                    timeout,
                    tokio::net::TcpStream::connect((target.0.as_str(), target.1)),
                )
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "TCP connect timed out")
                })??;
                let _ = tcp.set_nodelay(true);
                let tls = tokio::time::timeout(timeout, connector.connect(server_name, tcp))
                    .await
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
                    })??;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| Error::Tls {
            what: format!("connecting to the relay server at {address}"),
            detail: describe_transport_error(&e),
        })
}

/// The innermost cause of a transport error, which is the part a person can act on.
fn describe_transport_error(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_connections_prefer_aes_128_gcm_sha256_and_keep_every_ring_suite() {
        use rustls::CipherSuite::*;
        let order: Vec<_> = relay_crypto_provider()
            .cipher_suites
            .iter()
            .map(|suite| suite.suite())
            .collect();
        assert_eq!(
            order,
            [
                TLS13_AES_128_GCM_SHA256,
                TLS13_AES_256_GCM_SHA384,
                TLS13_CHACHA20_POLY1305_SHA256,
                TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            ]
        );
    }

    #[test]
    fn relay_addresses_parse_with_the_relay_port_as_default() {
        let parse = |a: &str| RelayAddress::parse(a).map(|r| (r.host, r.port));
        assert_eq!(
            parse("https://relay.example:9900"),
            Ok(("relay.example".into(), 9900))
        );
        assert_eq!(
            parse("https://relay.example"),
            Ok(("relay.example".into(), DEFAULT_RELAY_PORT))
        );
        assert_eq!(
            parse("https://relay.example/"),
            Ok(("relay.example".into(), 9900))
        );
        assert_eq!(parse("https://[::1]:4443"), Ok(("::1".into(), 4443)));
        assert_eq!(parse("https://127.0.0.1"), Ok(("127.0.0.1".into(), 9900)));
        for (bad, words) in [
            ("http://relay:9900", "always TLS"),
            ("relay:9900", "scheme"),
            ("https://relay:9900/api", "path"),
            ("https://relay:9900/?x=1", "path"),
            ("https://", "not a URL"),
            ("", "not a URL"),
        ] {
            let why = parse(bad).unwrap_err();
            assert!(why.contains(words), "{bad}: {why}");
        }
    }

    #[tokio::test]
    async fn dialling_a_bad_address_says_how_to_write_it() {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS 1.2 and 1.3")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
        let err = connect_channel("relay:9900", None, config, Duration::from_secs(1))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("https://host:port"), "{err}");
        assert!(err.contains("scheme"), "{err}");
    }
}
