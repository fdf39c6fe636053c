//! Many requests, several replicas, a hostile API: two replicas behind leader election sign
//! each request exactly once (signatures counted, not conditions) and the standby takes over
//! when the leader is killed; with injected API faults and dropped watches every request still
//! ends Issued and none is signed twice.

use std::time::{Duration, Instant};

use kube::api::ListParams;
use kube_sandbox::faults::FaultKind;
use relay_issuer::leader::{self, LeaderElectionConfig};
use relay_issuer::pki::generate::GeneratedKeyType;
use relay_sandbox::harness::{self, CONTROLLER_NAMESPACE, Replica};
use serde_json::json;

fn requests_count() -> usize {
    std::env::var("RELAY_TEST_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

async fn world() -> (kube_sandbox::Sandbox, kube::Client) {
    if let Ok(level) = std::env::var("RELAY_TEST_LOG") {
        let _ = relay_issuer::telemetry::init_logging(&relay_issuer::telemetry::LogOptions {
            log_format: Default::default(),
            log_level: level,
        });
    }
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    let ca = harness::test_ca(GeneratedKeyType::P256, time::Duration::days(365)).unwrap();
    harness::put_signing_secret(&client, "team-a", "relay-tls-signing-secret", &ca)
        .await
        .unwrap();
    harness::create_issuer(&client, Some("team-a"), "relay", json!({}))
        .await
        .unwrap();
    (sandbox, client)
}

/// Creates and approves `names`, 16 at a time.
async fn create_approved(client: &kube::Client, names: &[String]) {
    for chunk in names.chunks(16) {
        let mut tasks = Vec::new();
        for name in chunk {
            let client = client.clone();
            let name = name.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    match harness::create_request(&client, "team-a", &name, "RelayIssuer", "relay")
                        .await
                    {
                        Ok(()) => break,
                        Err(kube::Error::Api(s))
                            if s.code == 409 && s.reason == "AlreadyExists" =>
                        {
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                while harness::decide_request(&client, "team-a", &name, true)
                    .await
                    .is_err()
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
}

/// The sentinel of "nothing else was signed": one more request, created after every earlier
/// request was seen Issued, is Issued too; the controller's watch delivered every earlier
/// change (and our own status writes) before it.
async fn sentinel_issued(client: &kube::Client, name: &str) {
    create_approved(client, &[name.to_string()]).await;
    harness::wait_for_reason(
        &harness::requests(client, "team-a"),
        name,
        "Issued",
        Duration::from_secs(60),
    )
    .await;
}

/// Waits until every request in team-a is Issued; returns how many are.
async fn wait_all_issued(client: &kube::Client, expected: usize, timeout: Duration) -> usize {
    let api = harness::requests(client, "team-a");
    let deadline = Instant::now() + timeout;
    loop {
        let issued = match api.list(&ListParams::default()).await {
            Ok(list) => list
                .items
                .iter()
                .filter(|r| harness::ready_condition(r).is_some_and(|c| c["reason"] == "Issued"))
                .count(),
            Err(_) => 0,
        };
        if issued >= expected || Instant::now() > deadline {
            return issued;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn election(identity: &str) -> LeaderElectionConfig {
    let mut config =
        LeaderElectionConfig::new(CONTROLLER_NAMESPACE, "relay-issuer-controller", identity);
    // Short enough for a quick takeover, long enough that a replica sharing two busy cores
    // with the sandbox and the other replica keeps renewing.
    config.lease_duration = Duration::from_secs(6);
    config.renew_deadline = Duration::from_secs(4);
    config.retry_period = Duration::from_millis(500);
    config
}

/// A replica and its leader-election task.
struct Elected {
    replica: Replica,
    election: tokio::task::JoinHandle<Result<(), relay_runtime::Error>>,
}

impl Elected {
    /// `kill -9`: the controllers and the election stop at once, the Lease is not released.
    fn kill(&self) {
        self.election.abort();
        self.replica.kill();
    }
}

fn replica(client: &kube::Client, identity: &str) -> Elected {
    let (leadership, election) =
        leader::spawn(client.clone(), election(identity), std::future::pending());
    Elected {
        replica: Replica::start(client.clone(), harness::test_settings(), leadership),
        election,
    }
}

/// The two scenarios each load both cores; run them one after the other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sign_each_request_once_and_the_standby_takes_over() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (_sandbox, client) = world().await;
    let a = replica(&client, "replica-a");
    let b = replica(&client, "replica-b");
    // One of them leads.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.replica.leadership.is_leader() || b.replica.leadership.is_leader()) {
        assert!(Instant::now() < deadline, "nobody became leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!(a.replica.leadership.is_leader() && b.replica.leadership.is_leader()));
    let (leader, standby) = if a.replica.leadership.is_leader() {
        (a, b)
    } else {
        (b, a)
    };

    // Phase 1: 1,000 requests with both replicas running.
    let names: Vec<String> = (0..requests_count())
        .map(|i| format!("phase1-{i}"))
        .collect();
    create_approved(&client, &names).await;
    assert_eq!(
        wait_all_issued(&client, requests_count(), Duration::from_secs(120)).await,
        requests_count()
    );
    sentinel_issued(&client, "phase1-sentinel").await;
    assert_eq!(
        leader.replica.signatures() + standby.replica.signatures(),
        requests_count() as u64 + 1,
        "each request signed exactly once, the sentinel included (leader {}, standby {})",
        leader.replica.signatures(),
        standby.replica.signatures()
    );
    assert_eq!(standby.replica.signatures(), 0, "the standby never signs");

    // Phase 2: kill the leader (nothing released) while more requests arrive.
    let more: Vec<String> = (0..200).map(|i| format!("phase2-{i}")).collect();
    leader.kill();
    let killed_at = Instant::now();
    let watch_takeover = {
        let leadership = standby.replica.leadership.clone();
        tokio::spawn(async move {
            leadership.leading().await;
            killed_at.elapsed()
        })
    };
    create_approved(&client, &more).await;
    let took_over = tokio::time::timeout(Duration::from_secs(30), watch_takeover)
        .await
        .expect("the standby did not take over within 30 s")
        .unwrap();
    assert!(
        took_over <= Duration::from_millis(6000 + 500 + 1000),
        "took over after {took_over:?}; the lease lasts 6 s"
    );
    assert_eq!(
        wait_all_issued(
            &client,
            requests_count() + 1 + more.len(),
            Duration::from_secs(120)
        )
        .await,
        requests_count() + 1 + more.len()
    );
    sentinel_issued(&client, "sentinel").await;
    assert_eq!(
        standby.replica.signatures(),
        more.len() as u64 + 1,
        "the new leader signed exactly the requests that arrived after the kill, and the sentinel"
    );
    standby.replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_api_faults_and_dropped_watches_every_request_is_issued_once() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (sandbox, client) = world().await;
    let names: Vec<String> = (0..requests_count())
        .map(|i| format!("faulty-{i}"))
        .collect();
    let replica = Replica::alone(client.clone());
    sandbox.faults().fail_fraction(
        0.05,
        &[
            FaultKind::Internal,
            FaultKind::TooManyRequests,
            FaultKind::Conflict,
        ],
    );
    let creating = create_approved(&client, &names);
    let dropping = async {
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(700)).await;
            sandbox.faults().drop_watches();
        }
    };
    let started = Instant::now();
    futures::join!(creating, dropping);
    eprintln!(
        "created and approved {} requests in {:?}",
        names.len(),
        started.elapsed()
    );
    let issued = wait_all_issued(&client, requests_count(), Duration::from_secs(180)).await;
    eprintln!("{issued} issued {:?} after the start", started.elapsed());
    sandbox.faults().fail_fraction(0.0, &[]);
    let issued = if issued < requests_count() {
        wait_all_issued(&client, requests_count(), Duration::from_secs(30)).await
    } else {
        issued
    };
    assert_eq!(issued, requests_count());
    sentinel_issued(&client, "sentinel").await;
    assert_eq!(
        replica.signatures(),
        requests_count() as u64 + 1,
        "none signed twice (the sentinel included)"
    );
    replica.stop().await;
}
