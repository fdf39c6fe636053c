//! The connector tonic dials the relay server with: TCP, then TLS (tokio-rustls) with ALPN `h2`,
//! the server verified against the provider's trust bundle, and the client certificate chosen
//! by the provider at handshake time.
//!
//! tonic's own TLS takes a fixed identity; this connector is what lets a swapped certificate
//! reach the next connection (`Endpoint::connect_with_connector`). Each connector records which
//! certificate its handshake presented ([`Presented`]), so the agent's `Hello` names exactly
//! that one.
//!
//! What does not live here: when to connect or reconnect (`client`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::rt::TokioIo;
use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use relay_runtime::tls::RelayAddress;

use crate::Error;
use crate::provider::{ClientCertificate, Provider};

/// Where the relay server is and which name its certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https://host:port`, as given.
    pub address: String,
    /// The host to dial.
    pub host: String,
    /// The port to dial.
    pub port: u16,
    /// The name the server's certificate must carry (`--server-name`, else `host`).
    pub server_name: String,
}

/// The default relay port when `--relay-address` names none.
pub const DEFAULT_PORT: u16 = relay_runtime::tls::DEFAULT_RELAY_PORT;

impl Target {
    /// Parses `--relay-address` (`https://host[:port]`, read by the one parser remote signing
    /// uses too: [`RelayAddress::parse`]) and the optional `--server-name`.
    pub fn parse(address: &str, server_name: Option<&str>) -> Result<Self, Error> {
        let RelayAddress { host, port } =
            RelayAddress::parse(address).map_err(|detail| Error::RelayAddress {
                address: address.to_string(),
                detail,
            })?;
        let server_name = server_name
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| host.clone());
        ServerName::try_from(server_name.clone()).map_err(|_| Error::InvalidArgument(format!(
            "--server-name {server_name:?} is neither a DNS name nor an IP address; give the name the relay server's certificate carries"
        )))?;
        Ok(Self {
            address: address.trim_end_matches('/').to_string(),
            port,
            host,
            server_name,
        })
    }

    fn server_name(&self) -> Result<ServerName<'static>, Error> {
        ServerName::try_from(self.server_name.clone()).map_err(|_| {
            Error::InvalidArgument(format!(
                "--server-name {:?} is neither a DNS name nor an IP address",
                self.server_name
            ))
        })
    }
}

/// The certificate a connector's handshake presented (`None` until it did).
#[derive(Clone, Debug, Default)]
pub struct Presented(Arc<Mutex<Option<Arc<ClientCertificate>>>>);

impl Presented {
    /// The certificate presented by the last handshake, if any.
    pub fn get(&self) -> Option<Arc<ClientCertificate>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, certificate: Arc<ClientCertificate>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(certificate);
    }
}

/// Asks the provider at handshake time and remembers the answer.
#[derive(Debug)]
struct RecordingResolver {
    provider: Arc<Provider>,
    presented: Presented,
}

impl ResolvesClientCert for RecordingResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let certificate = self.provider.current()?;
        let key = certificate.key.clone();
        self.presented.set(certificate);
        Some(key)
    }

    fn has_certs(&self) -> bool {
        self.provider.has_certs()
    }
}

/// A tower `Service<Uri>` that opens one TLS connection to the relay server per call.
#[derive(Clone, Debug)]
pub struct TlsConnector {
    provider: Arc<Provider>,
    target: Arc<Target>,
    presented: Presented,
}

impl TlsConnector {
    /// A connector to `target` with the provider's certificate and trust bundle.
    pub fn new(provider: Arc<Provider>, target: Arc<Target>) -> Self {
        Self {
            provider,
            target,
            presented: Presented::default(),
        }
    }

    /// What this connector's handshakes presented.
    pub fn presented(&self) -> Presented {
        self.presented.clone()
    }

    /// Dials the target and completes the TLS handshake.
    pub async fn connect(&self) -> Result<TlsStream<TcpStream>, Error> {
        let target = &self.target;
        let failed = |detail: String| Error::Connect {
            address: target.address.clone(),
            detail,
        };
        let resolver = Arc::new(RecordingResolver {
            provider: self.provider.clone(),
            presented: self.presented.clone(),
        });
        let config = self.provider.client_config(resolver)?;
        let server_name = target.server_name()?;
        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| failed(format!("TCP connection failed ({e})")))?;
        tcp.set_nodelay(true)
            .map_err(|e| failed(format!("cannot set TCP_NODELAY ({e})")))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(server_name, tcp)
            .await
            .map_err(|e| failed(format!("TLS handshake failed ({e})")))?;
        let (_, session) = tls.get_ref();
        if session.alpn_protocol() != Some(relay_runtime::tls::ALPN_H2) {
            return Err(failed(
                "the server did not agree to HTTP/2 (ALPN h2); is this the relay's gRPC port?"
                    .to_string(),
            ));
        }
        Ok(tls)
    }
}

impl tower::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        // The endpoint URI is always our target's; dial what `Target` parsed.
        let connector = self.clone();
        Box::pin(async move { connector.connect().await.map(TokioIo::new) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_defaults_and_overrides() {
        let t = Target::parse("https://relay.gloo-mesh:9900", None).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.server_name.as_str()),
            ("relay.gloo-mesh", 9900, "relay.gloo-mesh")
        );
        let t = Target::parse("https://127.0.0.1:4443/", Some("relay.example.com")).unwrap();
        assert_eq!(t.host, "127.0.0.1");
        assert_eq!(t.server_name, "relay.example.com");
        assert_eq!(t.address, "https://127.0.0.1:4443");
        let t = Target::parse("https://relay", None).unwrap();
        assert_eq!(t.port, DEFAULT_PORT);
        let t = Target::parse("https://[::1]:9900", None).unwrap();
        assert_eq!(t.host, "::1");
        assert_eq!(t.server_name, "::1");
    }

    #[test]
    fn bad_addresses_say_what_to_give() {
        for (address, words) in [
            ("http://relay:9900", "always TLS"),
            ("relay:9900", "scheme"),
            ("https://relay:9900/api", "path"),
            ("https://", "relay-address"),
        ] {
            let message = Target::parse(address, None).unwrap_err().to_string();
            assert!(message.contains(words), "{address}: {message}");
            assert!(message.contains("https://host:port"), "{message}");
        }
        let message = Target::parse("https://relay:1", Some("not a name"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("--server-name"), "{message}");
    }
}
