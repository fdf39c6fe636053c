//! The agent's provider against a local tokio-rustls server that requires client certificates
//! and offers session resumption: the handshake after a swap presents the new certificate at
//! once, and resumption cannot bring the old one back (the control case shows that with
//! resumption enabled it would).

mod support;

use std::sync::{Arc, Mutex};

use relay_agent::Provider;
use rustls::ClientConfig;
use support::{Pki, serial_of, swap_in};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server saw for each handshake: the client certificate's serial and whether the
/// session was resumed.
type Handshakes = Arc<Mutex<Vec<(String, bool)>>>;

/// A TLS server that requires client certificates, issues TLS 1.3 tickets and keeps a session
/// cache, so any client willing to resume can.
async fn server(pki: &Pki) -> (std::net::SocketAddr, Handshakes) {
    let mut config = pki.server_config();
    config.ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
    config.send_tls13_tickets = 4;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Handshakes = Arc::default();
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let (_, session) = tls.get_ref();
                let serial = session
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| serial_of(c))
                    .unwrap_or_default();
                let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                record.lock().unwrap().push((serial, resumed));
                // One byte after the tickets, so the client has processed them when it reads it.
                let _ = tls.write_all(b"k").await;
                let _ = tls.flush().await;
                let mut rest = Vec::new();
                let _ = tls.read_to_end(&mut rest).await;
            });
        }
    });
    (addr, seen)
}

/// One full connection with `config`: handshake, read the server's byte, close.
async fn handshake(config: &Arc<ClientConfig>, addr: std::net::SocketAddr) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    tls.read_exact(&mut byte).await.unwrap();
    assert_eq!(&byte, b"k");
    tls.shutdown().await.unwrap();
}

async fn seen_after(seen: &Handshakes, count: usize) -> Vec<(String, bool)> {
    support::eventually(
        "the server to record the handshakes",
        std::time::Duration::from_secs(10),
        || seen.lock().unwrap().len() >= count,
    )
    .await;
    seen.lock().unwrap().clone()
}

#[tokio::test]
async fn the_handshake_after_a_swap_presents_the_new_certificate() {
    relay_agent::install_crypto_provider();
    let pki = Pki::new();
    let (addr, seen) = server(&pki).await;
    let first = pki.agent("cluster-1", time::Duration::hours(1));
    let second = pki.agent("cluster-1", time::Duration::hours(1));

    let provider = Provider::new();
    provider.set_roots(pki.roots());
    swap_in(&provider, &first);
    // One configuration for both handshakes, as a long-lived client would keep: were a session
    // cache in it, the second handshake could resume.
    let config = Arc::new(provider.client_config(provider.clone()).unwrap());

    handshake(&config, addr).await;
    swap_in(&provider, &second);
    handshake(&config, addr).await;
    handshake(&config, addr).await;

    let seen = seen_after(&seen, 3).await;
    assert_eq!(
        seen,
        vec![
            (first.serial.clone(), false),
            (second.serial.clone(), false),
            (second.serial.clone(), false),
        ],
        "every handshake is full and presents the certificate in service at that moment"
    );
}

#[tokio::test]
async fn control_with_resumption_enabled_the_old_certificate_would_come_back() {
    relay_agent::install_crypto_provider();
    let pki = Pki::new();
    let (addr, seen) = server(&pki).await;
    let first = pki.agent("cluster-1", time::Duration::hours(1));
    let second = pki.agent("cluster-1", time::Duration::hours(1));

    let provider = Provider::new();
    provider.set_roots(pki.roots());
    swap_in(&provider, &first);
    let mut config = provider.client_config(provider.clone()).unwrap();
    // What the provider deliberately does not do.
    config.resumption = rustls::client::Resumption::default();
    let config = Arc::new(config);

    handshake(&config, addr).await;
    swap_in(&provider, &second);
    handshake(&config, addr).await;

    let seen = seen_after(&seen, 2).await;
    assert_eq!(seen[0], (first.serial.clone(), false));
    assert_eq!(
        seen[1],
        (first.serial.clone(), true),
        "a resumed session carries the old certificate's identity past the swap"
    );
}
