//! The agent's Secret watcher against the sandbox API server: a good Secret reaches the
//! provider; bad versions (garbage PEM, a mismatched key, a CA certificate, missing keys) leave
//! the last good certificate in service with a Warning event regarding the Secret and a
//! counted rejection; a dropped watch still delivers the next update; the periodic resync
//! catches an update without any watch; the trust bundle is followed the same way.

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube::runtime::events::Reporter;
use relay_agent::watcher::{
    INVALID_CLIENT_CERTIFICATE, INVALID_TRUST_BUNDLE, Role, SecretWatcher, WatchSettings,
};
use relay_agent::{Metrics, Provider};
use relay_sandbox::harness::{self, put_secret_data};
use support::{AgentCert, Pki, eventually};
use tokio::sync::watch;

const NAMESPACE: &str = "team-a";
const CLIENT_SECRET: &str = "relay-client-tls-secret";
const ROOT_SECRET: &str = "relay-root-tls-secret";
const WAIT: Duration = Duration::from_secs(20);

struct Watching {
    provider: Arc<Provider>,
    metrics: Metrics,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Watching {
    async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
        }
    }

    fn serial(&self) -> Option<String> {
        self.provider.current().map(|c| c.serial.clone())
    }
}

fn settings(resync: Duration, watch: bool) -> WatchSettings {
    WatchSettings {
        resync_interval: resync,
        watch,
        reporter: Reporter {
            controller: "relay-agent".into(),
            instance: Some("agent-0".into()),
        },
        cluster: "cluster-1".into(),
        trust_domain: support::TRUST_DOMAIN.into(),
    }
}

fn follow(client: &kube::Client, roles: &[(&str, Role)], settings: WatchSettings) -> Watching {
    relay_agent::install_crypto_provider();
    if std::env::var("AGENT_TEST_LOG").is_ok() {
        let _ = relay_runtime::telemetry::init_logging(&relay_runtime::telemetry::LogOptions {
            log_level: "relay_agent=debug,kube=info".into(),
            ..Default::default()
        });
    }
    let provider = Provider::new();
    let metrics = Metrics::default();
    let (stop, stopped) = watch::channel(false);
    let tasks = roles
        .iter()
        .map(|(name, role)| {
            let watcher = SecretWatcher::new(
                client.clone(),
                NAMESPACE,
                name,
                *role,
                provider.clone(),
                metrics.clone(),
                settings.clone(),
            );
            let mut stopped = stopped.clone();
            tokio::spawn(watcher.run(async move {
                let _ = stopped.wait_for(|s| *s).await;
            }))
        })
        .collect();
    Watching {
        provider,
        metrics,
        stop,
        tasks,
    }
}

async fn put_cert(client: &kube::Client, cert: &AgentCert) {
    put_secret_data(
        client,
        NAMESPACE,
        CLIENT_SECRET,
        &[
            ("tls.crt", cert.pem.chain.as_str()),
            ("tls.key", cert.pem.key.as_str()),
            ("ca.crt", "unused by the agent"),
        ],
    )
    .await
    .unwrap();
}

/// Warning events (events.k8s.io/v1) regarding Secret `name` with `reason`, as (note, kind).
async fn warnings(client: &kube::Client, name: &str, reason: &str) -> Vec<(String, String)> {
    let events: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.type_.as_deref() == Some("Warning")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .map(|e| {
            let kind = e.regarding.and_then(|r| r.kind).unwrap_or_default();
            (e.note.unwrap_or_default(), kind)
        })
        .collect()
}

async fn eventually_warning(
    client: &kube::Client,
    name: &str,
    reason: &str,
    words: &str,
) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = warnings(client, name, reason).await;
        if let Some((note, kind)) = found.iter().find(|(note, _)| note.contains(words)) {
            assert_eq!(kind, "Secret");
            return note.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {reason} Warning mentioning {words:?} regarding {name}; found {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn good_certificates_reach_the_provider_and_bad_ones_keep_the_last_good() {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    let pki = Pki::new();
    let good = pki.agent("cluster-1", time::Duration::hours(1));
    put_cert(&client, &good).await;
    let watching = follow(
        &client,
        &[(CLIENT_SECRET, Role::ClientCertificate)],
        settings(Duration::from_secs(3600), true),
    );
    eventually("the good certificate in the provider", WAIT, || {
        watching.serial() == Some(good.serial.clone())
    })
    .await;
    assert_eq!(
        watching.metrics.certificate_swaps.get(),
        0,
        "a first load is no swap"
    );
    assert_eq!(
        watching.metrics.certificate_expiry.get(),
        good.not_after.unix_timestamp()
    );

    let other = pki.agent("cluster-1", time::Duration::hours(1));
    let garbage = "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n";
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "certificate_invalid",
            vec![("tls.crt", garbage), ("tls.key", good.pem.key.as_str())],
            "tls.crt",
        ),
        (
            "key_mismatch",
            vec![
                ("tls.crt", good.pem.chain.as_str()),
                ("tls.key", other.pem.key.as_str()),
            ],
            "does not belong",
        ),
        (
            "key_missing",
            vec![("tls.crt", good.pem.chain.as_str())],
            "tls.key is missing",
        ),
        (
            "certificate_missing",
            vec![("tls.key", good.pem.key.as_str())],
            "tls.crt is missing",
        ),
    ];
    for (reason, data, words) in cases {
        put_secret_data(&client, NAMESPACE, CLIENT_SECRET, &data)
            .await
            .unwrap();
        let note =
            eventually_warning(&client, CLIENT_SECRET, INVALID_CLIENT_CERTIFICATE, words).await;
        assert!(
            !note.contains("PRIVATE KEY"),
            "no key material in events: {note}"
        );
        eventually("the rejection to be counted", WAIT, || {
            watching.metrics.rejected(reason) == 1
        })
        .await;
        assert_eq!(
            watching.serial(),
            Some(good.serial.clone()),
            "{reason}: the last good certificate stays in service"
        );
    }

    // A CA certificate with its own (matching) key: refused as a CA.
    let ca = harness::test_ca(
        relay_pki::generate::GeneratedKeyType::P256,
        time::Duration::days(30),
    )
    .unwrap();
    put_secret_data(
        &client,
        NAMESPACE,
        CLIENT_SECRET,
        &[
            ("tls.crt", ca.intermediate_pem.as_str()),
            ("tls.key", ca.intermediate_key_pem.as_str()),
        ],
    )
    .await
    .unwrap();
    eventually_warning(
        &client,
        CLIENT_SECRET,
        INVALID_CLIENT_CERTIFICATE,
        "is a CA",
    )
    .await;
    eventually("the CA rejection to be counted", WAIT, || {
        watching.metrics.rejected("is_ca") == 1
    })
    .await;
    assert_eq!(watching.serial(), Some(good.serial.clone()));

    // The same good certificate again is no swap; a new one is.
    put_cert(&client, &good).await;
    put_cert(&client, &other).await;
    eventually("the next good certificate", WAIT, || {
        watching.serial() == Some(other.serial.clone())
    })
    .await;
    assert_eq!(watching.metrics.certificate_swaps.get(), 1);
    watching.stop().await;
}

#[tokio::test]
async fn an_update_after_a_dropped_watch_still_arrives() {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    let pki = Pki::new();
    let first = pki.agent("cluster-1", time::Duration::hours(1));
    put_cert(&client, &first).await;
    // No resync to help: only the watch can deliver.
    let watching = follow(
        &client,
        &[(CLIENT_SECRET, Role::ClientCertificate)],
        settings(Duration::from_secs(3600), true),
    );
    eventually("the first certificate", WAIT, || {
        watching.serial() == Some(first.serial.clone())
    })
    .await;
    eventually("the first watch", WAIT, || secret_watches(&sandbox) >= 1).await;
    let watches_before = secret_watches(&sandbox);
    sandbox.faults().drop_watches();
    // The sandbox closes watches within a second; kube's watcher opens a new one.
    eventually("the watch to be re-established", WAIT, || {
        secret_watches(&sandbox) > watches_before
    })
    .await;
    let second = pki.agent("cluster-1", time::Duration::hours(1));
    put_cert(&client, &second).await;
    eventually("the update after the dropped watch", WAIT, || {
        watching.serial() == Some(second.serial.clone())
    })
    .await;
    watching.stop().await;
}

fn secret_watches(sandbox: &kube_sandbox::Sandbox) -> usize {
    sandbox
        .requests()
        .iter()
        .filter(|r| r.verb == "watch" && r.resource == "secrets")
        .count()
}

#[tokio::test]
async fn the_resync_catches_an_update_without_a_watch() {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    let pki = Pki::new();
    let first = pki.agent("cluster-1", time::Duration::hours(1));
    put_cert(&client, &first).await;
    let watching = follow(
        &client,
        &[(CLIENT_SECRET, Role::ClientCertificate)],
        settings(Duration::from_millis(300), false),
    );
    eventually("the first certificate (read at start)", WAIT, || {
        watching.serial() == Some(first.serial.clone())
    })
    .await;
    let second = pki.agent("cluster-1", time::Duration::hours(1));
    put_cert(&client, &second).await;
    eventually(
        "the resync to pick up the update",
        Duration::from_secs(5),
        || watching.serial() == Some(second.serial.clone()),
    )
    .await;
    assert_eq!(secret_watches(&sandbox), 0, "no watch was used");
    assert!(
        sandbox
            .requests()
            .iter()
            .filter(|r| r.verb == "get" && r.resource == "secrets")
            .count()
            >= 2
    );
    // Re-reading an unchanged Secret does not count or swap anything. The resync reads one
    // after the other: once two more reads have arrived, the first of them was handled.
    let is_secret_get =
        |r: &kube_sandbox::faults::RequestRecord| r.verb == "get" && r.resource == "secrets";
    let reads = sandbox.count_requests(is_secret_get);
    sandbox
        .wait_for_requests(reads + 2, WAIT, is_secret_get)
        .await
        .unwrap();
    assert_eq!(watching.metrics.certificate_swaps.get(), 1);
    watching.stop().await;
}

#[tokio::test]
async fn the_trust_bundle_is_followed_with_several_roots_and_bad_versions_are_refused() {
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    let watching = follow(
        &client,
        &[(ROOT_SECRET, Role::TrustBundle)],
        settings(Duration::from_secs(3600), true),
    );
    let mut roots = watching.provider.subscribe_roots();
    let one = Pki::new();
    let two = Pki::new();
    let bundle = format!("{}{}", one.root_pem(), two.root_pem());
    put_secret_data(
        &client,
        NAMESPACE,
        ROOT_SECRET,
        &[("ca.crt", bundle.as_str())],
    )
    .await
    .unwrap();
    eventually("the trust bundle", WAIT, || {
        watching.provider.roots().is_some_and(|r| r.len() == 2)
    })
    .await;
    assert!(roots.has_changed().unwrap());
    roots.borrow_and_update();

    put_secret_data(
        &client,
        NAMESPACE,
        ROOT_SECRET,
        &[("ca.crt", "no certificates here")],
    )
    .await
    .unwrap();
    let note = eventually_warning(&client, ROOT_SECRET, INVALID_TRUST_BUNDLE, "ca.crt").await;
    assert!(
        note.contains(&format!("{NAMESPACE}/{ROOT_SECRET}")),
        "{note}"
    );
    eventually("the rejection to be counted", WAIT, || {
        watching.metrics.rejected("trust_bundle_invalid") == 1
    })
    .await;
    assert_eq!(watching.provider.roots().map(|r| r.len()), Some(2));
    assert!(!roots.has_changed().unwrap(), "the last good bundle stays");

    put_secret_data(
        &client,
        NAMESPACE,
        ROOT_SECRET,
        &[("ca.crt", one.root_pem())],
    )
    .await
    .unwrap();
    eventually("the reloaded bundle", WAIT, || {
        watching.provider.roots().is_some_and(|r| r.len() == 1)
    })
    .await;
    watching.stop().await;
}
