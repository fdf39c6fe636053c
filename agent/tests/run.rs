//! The whole agent in-process (`relay_agent::Agent`): Secrets in the sandbox, the test relay
//! server, the admin server's `/live`, `/ready` and `/metrics`. Certificates rotated through the
//! Secret move the connection without failures; `/ready` says why it is not ready (no
//! certificate yet, an expired certificate on a live session) and recovers by itself.

mod support;

use std::time::Duration;

use relay_agent::{Agent, BackoffPolicy, Config};
use relay_sandbox::harness::{self, put_secret_data};
use support::{AgentCert, Pki, Seen, TestRelay, eventually};

const NAMESPACE: &str = "team-a";
const WAIT: Duration = Duration::from_secs(20);

/// `GET path` on the agent's admin server: (status, body).
async fn get(agent: &Agent, path: &str) -> (u16, String) {
    let port = agent.admin_address().unwrap().port();
    let path = path.to_string();
    tokio::task::spawn_blocking(move || relay_sandbox::processes::http_get(port, &path))
        .await
        .unwrap()
        .unwrap_or((0, String::new()))
}

async fn eventually_ready(agent: &Agent, ready: bool, words: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (code, body) = get(agent, "/ready").await;
        if (code == 200) == ready && body.contains(words) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/ready never became {ready} with {words:?}; last: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn put_cert(client: &kube::Client, cert: &AgentCert) {
    put_secret_data(
        client,
        NAMESPACE,
        relay_agent::DEFAULT_CLIENT_TLS_SECRET,
        &[
            ("tls.crt", cert.pem.chain.as_str()),
            ("tls.key", cert.pem.key.as_str()),
        ],
    )
    .await
    .unwrap();
}

async fn put_root(client: &kube::Client, pki: &Pki) {
    put_secret_data(
        client,
        NAMESPACE,
        relay_agent::DEFAULT_ROOT_TLS_SECRET,
        &[("ca.crt", pki.root_pem())],
    )
    .await
    .unwrap();
}

fn config(relay: &TestRelay) -> Config {
    relay_agent::install_crypto_provider();
    let mut config = Config::new(NAMESPACE, &relay.url(), "cluster-1");
    config.heartbeat_interval = Duration::from_millis(50);
    config.heartbeat_timeout = Duration::from_secs(5);
    config.backoff = BackoffPolicy {
        base: Duration::from_millis(50),
        max: Duration::from_millis(500),
        ..BackoffPolicy::default()
    };
    config.admin_address = Some("127.0.0.1:0".into());
    config.instance = Some("agent-0".into());
    config
}

#[tokio::test]
async fn the_agent_connects_rotates_through_its_secret_and_serves_admin() {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    let pki = Pki::new();
    let relay = TestRelay::start(&pki).await;
    let first = pki.agent("cluster-1", time::Duration::hours(1));
    put_root(&client, &pki).await;
    put_cert(&client, &first).await;

    let agent = Agent::start(config(&relay), client.clone()).await.unwrap();
    eventually_ready(&agent, true, "ok").await;
    assert_eq!(get(&agent, "/live").await.0, 200);
    assert_eq!(relay.opened(), std::slice::from_ref(&first.serial));

    let mut previous = first;
    for _ in 0..3 {
        let next = pki.agent("cluster-1", time::Duration::hours(1));
        put_cert(&client, &next).await;
        eventually(
            "the old stream closed after the new one opened",
            WAIT,
            || {
                relay.seen().contains(&Seen::Closed {
                    serial: previous.serial.clone(),
                })
            },
        )
        .await;
        assert_eq!(relay.opened().last(), Some(&next.serial));
        previous = next;
    }
    eventually("heartbeats", WAIT, || {
        agent.metrics().heartbeats.get() >= 10
    })
    .await;
    eventually_ready(&agent, true, "ok").await;

    // A bad version: the last good certificate stays, the agent stays ready.
    put_secret_data(
        &client,
        NAMESPACE,
        relay_agent::DEFAULT_CLIENT_TLS_SECRET,
        &[("tls.crt", previous.pem.chain.as_str())],
    )
    .await
    .unwrap();
    eventually("the rejection", WAIT, || {
        agent.metrics().rejected("key_missing") == 1
    })
    .await;
    assert_eq!(
        agent.provider().current().map(|c| c.serial.clone()),
        Some(previous.serial.clone())
    );
    eventually_ready(&agent, true, "ok").await;

    let (code, text) = get(&agent, "/metrics").await;
    assert_eq!(code, 200);
    for line in [
        "relay_agent_certificate_swaps_total 3",
        "relay_agent_rpc_failures_total 0",
        "relay_agent_connection_state 1",
        "relay_agent_reconnects_total{reason=\"certificate_swap\"} 3",
        "relay_agent_certificate_rejected_total{reason=\"key_missing\"} 1",
        &format!(
            "relay_agent_certificate_expiry_timestamp_seconds {}",
            previous.not_after.unix_timestamp()
        ),
        "relay_agent_heartbeats_total ",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    agent.stop().await;
    eventually("the stream closed on stop", WAIT, || {
        relay.seen().contains(&Seen::Closed {
            serial: previous.serial.clone(),
        })
    })
    .await;
    relay.stop().await;
}

#[tokio::test]
async fn readiness_names_what_is_missing_and_follows_expiry_and_renewal() {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    let pki = Pki::new();
    let relay = TestRelay::start(&pki).await;
    let agent = Agent::start(config(&relay), client.clone()).await.unwrap();

    // Nothing yet: the reason names the Secret.
    eventually_ready(
        &agent,
        false,
        "no valid client certificate yet in Secret team-a/relay-client-tls-secret",
    )
    .await;
    let short = pki.agent("cluster-1", time::Duration::seconds(4));
    put_cert(&client, &short).await;
    eventually_ready(&agent, false, "relay-root-tls-secret").await;
    put_root(&client, &pki).await;
    eventually_ready(&agent, true, "ok").await;

    // The certificate expires on a live session: still connected, no longer ready.
    let body = eventually_ready(&agent, false, "expired").await;
    assert!(body.contains(&short.serial), "{body}");
    let beats = agent.metrics().heartbeats.get();
    eventually("heartbeats after expiry", WAIT, || {
        agent.metrics().heartbeats.get() >= beats + 5
    })
    .await;
    assert_eq!(relay.opened().len(), 1);
    assert_eq!(agent.metrics().connection_state.get(), 1);

    // cert-manager renews: ready again, on a new connection.
    let renewed = pki.agent("cluster-1", time::Duration::hours(1));
    put_cert(&client, &renewed).await;
    eventually_ready(&agent, true, "ok").await;
    eventually(
        "the connection moved to the renewed certificate",
        WAIT,
        || relay.opened().last() == Some(&renewed.serial),
    )
    .await;
    assert_eq!(agent.metrics().rpc_failures.get(), 0);
    agent.stop().await;
    relay.stop().await;
}
