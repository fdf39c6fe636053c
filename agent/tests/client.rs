//! The agent's gRPC client against a minimal test relay server (client certificates required,
//! Welcome, heartbeat echoes, a log of the serials presented): connecting, heartbeats,
//! make-before-break certificate swaps without failures, reconnecting with backoff after a
//! server restart, and an expired certificate that keeps its live session but cannot reconnect
//! until a new one arrives.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_agent::backoff::BackoffPolicy;
use relay_agent::client::{ClientSettings, RelayConnection};
use relay_agent::connector::Target;
use relay_agent::{ConnectionStatus, Metrics, Provider};
use support::{AgentCert, Pki, Seen, TestRelay, eventually, opened, swap_in};
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(20);

struct Running {
    provider: Arc<Provider>,
    metrics: Metrics,
    status: watch::Receiver<ConnectionStatus>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the client stops")
            .unwrap();
    }

    fn connected_serial(&self) -> Option<String> {
        match &*self.status.borrow() {
            ConnectionStatus::Connected { serial } => Some(serial.clone()),
            _ => None,
        }
    }
}

fn start(
    pki: &Pki,
    address: &str,
    cert: &AgentCert,
    heartbeat: Duration,
    backoff: BackoffPolicy,
) -> Running {
    relay_agent::install_crypto_provider();
    let provider = Provider::new();
    provider.set_roots(pki.roots());
    swap_in(&provider, cert);
    let metrics = Metrics::default();
    let (status_tx, status) = watch::channel(ConnectionStatus::Starting);
    let settings = ClientSettings {
        target: Arc::new(Target::parse(address, None).unwrap()),
        cluster: "cluster-1".into(),
        heartbeat_interval: heartbeat,
        heartbeat_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        backoff,
        secret: "test/relay-client-tls-secret".into(),
        root_secret: "test/relay-root-tls-secret".into(),
    };
    let connection = RelayConnection::new(settings, provider.clone(), metrics.clone(), status_tx);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(connection.run(async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|s| *s).await;
    }));
    Running {
        provider,
        metrics,
        status,
        stop,
        task,
    }
}

fn quick_backoff() -> BackoffPolicy {
    BackoffPolicy {
        base: Duration::from_millis(50),
        max: Duration::from_millis(500),
        jitter: 0.2,
        stable_after: Duration::from_secs(30),
    }
}

fn position(seen: &[Seen], wanted: &Seen) -> usize {
    seen.iter()
        .position(|s| s == wanted)
        .unwrap_or_else(|| panic!("{wanted:?} not in {seen:?}"))
}

#[tokio::test]
async fn connects_heartbeats_and_swaps_make_before_break_without_failures() {
    let pki = Pki::new();
    let relay = TestRelay::start(&pki).await;
    let first = pki.agent("cluster-1", time::Duration::hours(1));
    let client = start(
        &pki,
        &relay.url(),
        &first,
        Duration::from_millis(20),
        quick_backoff(),
    );

    eventually("the first Connect stream", WAIT, || {
        relay.opened() == [first.serial.clone()]
    })
    .await;
    eventually("heartbeats to be echoed", WAIT, || {
        client.metrics.heartbeats.get() >= 5
    })
    .await;
    assert_eq!(client.connected_serial(), Some(first.serial.clone()));
    assert_eq!(client.metrics.connection_state.get(), 1);
    assert!(
        relay.seen().contains(&Seen::Opened {
            serial: first.serial.clone(),
            cluster: "cluster-1".into()
        }),
        "Hello carries --cluster"
    );

    // Ten rotations while heartbeats fly every 20 ms.
    let mut previous = first;
    for round in 1..=10 {
        let next = pki.agent("cluster-1", time::Duration::hours(1));
        swap_in(&client.provider, &next);
        eventually(
            "the old stream to close after the new one opened",
            WAIT,
            || {
                relay.seen().contains(&Seen::Closed {
                    serial: previous.serial.clone(),
                })
            },
        )
        .await;
        let seen = relay.seen();
        let opened_new = position(
            &seen,
            &Seen::Opened {
                serial: next.serial.clone(),
                cluster: "cluster-1".into(),
            },
        );
        let closed_old = position(
            &seen,
            &Seen::Closed {
                serial: previous.serial.clone(),
            },
        );
        assert!(
            opened_new < closed_old,
            "round {round}: the new serial must be seen before the old stream closes: {seen:?}"
        );
        let before = client.metrics.heartbeats.get();
        eventually("heartbeats on the new stream", WAIT, || {
            client.metrics.heartbeats.get() >= before + 3
        })
        .await;
        assert_eq!(client.connected_serial(), Some(next.serial.clone()));
        previous = next;
    }
    assert_eq!(
        client.metrics.rpc_failures.get(),
        0,
        "no heartbeat or RPC may fail across swaps"
    );
    assert_eq!(client.metrics.reconnects_for("certificate_swap"), 10);
    assert_eq!(relay.opened().len(), 11);
    // Every heartbeat the server echoed on a stream that is now closed was counted: the old
    // streams' in-flight heartbeats were waited for, not dropped.
    client.stop().await;
    eventually("the last stream to close on shutdown", WAIT, || {
        relay.seen().contains(&Seen::Closed {
            serial: previous.serial.clone(),
        })
    })
    .await;
    relay.stop().await;
}

#[tokio::test]
async fn a_server_restart_is_followed_by_reconnects_with_growing_delays() {
    let pki = Pki::new();
    let relay = TestRelay::start(&pki).await;
    let addr = relay.addr;
    let seen = relay.seen.clone();
    let cert = pki.agent("cluster-1", time::Duration::hours(1));
    let backoff = BackoffPolicy {
        base: Duration::from_millis(100),
        max: Duration::from_secs(2),
        jitter: 0.0,
        stable_after: Duration::from_secs(30),
    };
    let client = start(
        &pki,
        &relay.url(),
        &cert,
        Duration::from_millis(50),
        backoff,
    );
    eventually("connected", WAIT, || relay.opened().len() == 1).await;

    // The server goes away: its streams end with UNAVAILABLE and it stops listening. A plain
    // listener on the same port notes each attempt and hangs up on it.
    relay.stop().await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let attempts = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let record = attempts.clone();
    let refuser = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            record.lock().unwrap().push(Instant::now());
            drop(tcp);
        }
    });
    // Four attempts (state, not a span of time), each one refused.
    eventually("four refused attempts", WAIT, || {
        attempts.lock().unwrap().len() >= 4
    })
    .await;
    refuser.abort();
    let _ = refuser.await;
    let attempts = attempts.lock().unwrap().clone();
    // An attempt comes only after the one before failed and its delay passed: 100 ms after the
    // stream broke, then 200, 400, 800 ms (no jitter). So each gap is at least its delay,
    // however late the machine ran; the exact schedule is backoff.rs's (tested on an injected
    // clock).
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, delay_ms) in gaps.iter().zip([200, 400, 800]) {
        assert!(
            *gap >= Duration::from_millis(delay_ms),
            "an attempt came before its {delay_ms} ms delay had passed: gaps {gaps:?}"
        );
    }
    assert!(!matches!(
        &*client.status.borrow(),
        ConnectionStatus::Connected { .. }
    ));
    assert_eq!(client.metrics.connection_state.get(), 0);

    // Back up on the same port: the agent reconnects by itself.
    let relay = TestRelay::start_on(&pki, addr, seen).await;
    eventually("reconnected", WAIT, || relay.opened().len() == 2).await;
    eventually("connected state", WAIT, || {
        client.connected_serial().is_some()
    })
    .await;
    assert_eq!(client.metrics.reconnects_for("stream_ended"), 1);
    // The broken stream plus each refused attempt were counted.
    let failures = client.metrics.rpc_failures.get();
    assert!(
        failures > attempts.len() as u64 && failures <= attempts.len() as u64 + 3,
        "failures {failures} for {} refused attempts",
        attempts.len()
    );
    let before = client.metrics.heartbeats.get();
    eventually("heartbeats again", WAIT, || {
        client.metrics.heartbeats.get() > before + 2
    })
    .await;
    client.stop().await;
    relay.stop().await;
}

#[tokio::test]
async fn an_expired_certificate_keeps_its_session_but_cannot_reconnect_until_renewed() {
    let pki = Pki::new();
    let relay = TestRelay::start(&pki).await;
    let addr = relay.addr;
    let seen = relay.seen.clone();
    let short = pki.agent("cluster-1", time::Duration::seconds(4));
    // Long delays: a reconnect soon after the new certificate proves the wait was cut short.
    let backoff = BackoffPolicy {
        base: Duration::from_secs(10),
        max: Duration::from_secs(30),
        jitter: 0.0,
        stable_after: Duration::from_secs(30),
    };
    let client = start(
        &pki,
        &relay.url(),
        &short,
        Duration::from_millis(50),
        backoff,
    );
    eventually("connected", WAIT, || relay.opened().len() == 1).await;

    // Past notAfter: the live session goes on (heartbeats still echoed, no new stream).
    eventually("the certificate to expire", WAIT, || {
        time::OffsetDateTime::now_utc() > short.not_after
    })
    .await;
    let before = client.metrics.heartbeats.get();
    eventually("heartbeats after expiry", WAIT, || {
        client.metrics.heartbeats.get() >= before + 5
    })
    .await;
    assert_eq!(client.connected_serial(), Some(short.serial.clone()));
    assert_eq!(relay.opened().len(), 1);
    assert!(
        !relay
            .seen()
            .iter()
            .any(|s| matches!(s, Seen::Closed { .. }))
    );
    assert_eq!(client.metrics.rpc_failures.get(), 0);

    // The server restarts: reconnecting with the expired certificate is refused.
    relay.stop().await;
    let relay = TestRelay::start_on(&pki, addr, seen).await;
    eventually("the expired certificate to be refused", WAIT, || {
        relay
            .seen()
            .iter()
            .any(|s| matches!(s, Seen::HandshakeFailed(_)))
    })
    .await;
    let refused = relay
        .seen()
        .into_iter()
        .find_map(|s| match s {
            Seen::HandshakeFailed(e) => Some(e),
            _ => None,
        })
        .unwrap();
    assert!(refused.to_lowercase().contains("expired"), "{refused}");
    assert_eq!(relay.opened().len(), 1);
    assert!(client.connected_serial().is_none());

    // A new certificate ends the wait at once (the backoff alone would wait 10 s or more).
    let renewed = pki.agent("cluster-1", time::Duration::hours(1));
    let swapped_at = Instant::now();
    swap_in(&client.provider, &renewed);
    eventually(
        "reconnected with the renewed certificate",
        Duration::from_secs(5),
        || opened(&relay.seen()).last() == Some(&renewed.serial),
    )
    .await;
    assert!(swapped_at.elapsed() < Duration::from_secs(5));
    eventually("connected state", WAIT, || {
        client.connected_serial() == Some(renewed.serial.clone())
    })
    .await;
    client.stop().await;
    relay.stop().await;
}
