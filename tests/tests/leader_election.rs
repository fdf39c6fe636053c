//! relay-issuer's leader election (`relay_issuer::leader`) against the sandbox API server, with
//! short timings (lease 2s, renew deadline 1.5s, retry 0.2s): one leader at a time, takeover
//! after a kill and after a graceful release, safety under injected API faults, and a leader cut
//! off from the API stepping down within its renew deadline.
//!
//! Every test runs on tokio's paused clock, which the election reads for all its deadlines, and
//! reaches the sandbox through memory (`Sandbox::in_memory_client`), so no socket can make the
//! clock jump while a request is in flight. Time then moves only when every task waits on a
//! timer: a request takes no time, and each bound below is the algorithm's own, with no slack
//! for scheduling.
//!
//! A sampler task reads every elector's `is_leader()` every millisecond (tokio's timer
//! resolution, so every instant at which the paused clock can stop) for the whole test; each
//! test ends by asserting that no sample ever saw two leaders.

use futures::FutureExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube_sandbox::Sandbox;
use kube_sandbox::faults::FaultKind;
use relay_issuer::leader::{self, LeaderElectionConfig, Leadership};
use relay_runtime::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const LEASE: &str = "relay-issuer-leader";
const LEASE_DURATION: Duration = Duration::from_secs(2);
const RENEW_DEADLINE: Duration = Duration::from_millis(1500);
const RETRY_PERIOD: Duration = Duration::from_millis(200);

fn config(identity: &str) -> LeaderElectionConfig {
    LeaderElectionConfig {
        namespace: "default".into(),
        lease_name: LEASE.into(),
        identity: identity.into(),
        lease_duration: LEASE_DURATION,
        renew_deadline: RENEW_DEADLINE,
        retry_period: RETRY_PERIOD,
    }
}

/// A sandbox and a client that reaches it through memory.
async fn world() -> (Sandbox, kube::Client) {
    let sandbox = Sandbox::start().await.unwrap();
    let client = sandbox.in_memory_client();
    (sandbox, client)
}

/// One elector, as a controller replica runs it.
struct Replica {
    identity: String,
    leadership: Leadership,
    task: JoinHandle<Result<(), Error>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Replica {
    fn start(client: &kube::Client, identity: &str) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let (leadership, task) = leader::spawn(client.clone(), config(identity), async move {
            let _ = stopped.await;
        });
        Self {
            identity: identity.into(),
            leadership,
            task,
            stop: Some(stop),
        }
    }

    /// Graceful shutdown (SIGTERM): returns the task's result.
    async fn shut_down(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .expect("the election task ends promptly on shutdown")
            .expect("the election task does not panic")
    }
}

type Samples = Vec<(Instant, Vec<bool>)>;

/// Reads every handle's `is_leader()` every millisecond of the paused clock.
struct Sampler {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Samples>,
}

impl Sampler {
    fn start(replicas: &[&Replica]) -> Self {
        let handles: Vec<Leadership> = replicas.iter().map(|r| r.leadership.clone()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                let leaders = handles.iter().map(Leadership::is_leader).collect();
                samples.push((Instant::now(), leaders));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            samples
        });
        Self { stop, task }
    }

    /// Stops sampling; asserts no sample saw two leaders; returns the samples.
    async fn finish(self) -> Samples {
        self.stop.store(true, Ordering::SeqCst);
        let samples = self.task.await.expect("the sampler does not panic");
        assert!(
            samples.len() > 100,
            "the sampler ran ({} samples)",
            samples.len()
        );
        for (at, leaders) in &samples {
            let count = leaders.iter().filter(|l| **l).count();
            assert!(
                count <= 1,
                "two electors counted as leader at once ({leaders:?} at {at:?})"
            );
        }
        samples
    }
}

fn leader_count(samples: &Samples, from: Instant, to: Instant) -> (usize, usize) {
    let window: Vec<_> = samples
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .collect();
    let led = window
        .iter()
        .filter(|(_, leaders)| leaders.iter().any(|l| *l))
        .count();
    (led, window.len())
}

/// The replicas that lead now.
fn leaders<'a>(replicas: &[&'a Replica]) -> Vec<&'a Replica> {
    replicas
        .iter()
        .copied()
        .filter(|r| r.leadership.is_leader())
        .collect()
}

/// Resolves when the first of `replicas` leads (at once if one does): its index and when.
async fn first_to_lead(replicas: &[&Replica], limit: Duration) -> Option<(usize, Instant)> {
    let waits = replicas
        .iter()
        .map(|r| r.leadership.leading().boxed())
        .collect::<Vec<_>>();
    tokio::time::timeout(limit, futures::future::select_all(waits))
        .await
        .ok()
        .map(|((), index, _)| (index, Instant::now()))
}

/// Waits until a replica leads and returns its index; asserts it is the only one.
async fn elected(replicas: &[&Replica], limit: Duration) -> usize {
    let (index, _) = first_to_lead(replicas, limit)
        .await
        .unwrap_or_else(|| panic!("a leader is elected within {limit:?}"));
    assert_eq!(leaders(replicas).len(), 1, "exactly one leader");
    index
}

async fn lease(client: &kube::Client) -> Lease {
    Api::<Lease>::namespaced(client.clone(), "default")
        .get(LEASE)
        .await
        .expect("the Lease exists")
}

fn holder(lease: &Lease) -> Option<String> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty())
}

fn transitions(lease: &Lease) -> i32 {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0)
}

/// When the sandbox received each Lease update (`replace`) since `from`.
fn lease_updates(sandbox: &Sandbox, from: Instant) -> Vec<Instant> {
    sandbox
        .timed_requests()
        .into_iter()
        .filter(|t| t.request.resource == "leases" && t.request.verb == "update")
        .map(|t| t.received)
        .filter(|at| *at >= from)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn only_one_of_three_electors_leads_at_any_moment() {
    let (sandbox, client) = world().await;
    let replicas = [
        Replica::start(&client, "replica-a"),
        Replica::start(&client, "replica-b"),
        Replica::start(&client, "replica-c"),
    ];
    let all: Vec<&Replica> = replicas.iter().collect();
    let sampler = Sampler::start(&all);
    let first = elected(&all, RETRY_PERIOD).await;
    let elected_at = Instant::now();
    let leader = all[first];
    for (i, standby) in all.iter().enumerate().filter(|(i, _)| *i != first) {
        assert!(
            tokio::time::timeout(Duration::from_millis(300), standby.leadership.leading())
                .await
                .is_err(),
            "standby {i} must not resolve leading()"
        );
    }
    // Hold for two lease durations: the leader keeps renewing, nobody takes over.
    tokio::time::sleep(LEASE_DURATION * 2).await;
    assert!(
        leader.leadership.is_leader(),
        "the first leader still leads"
    );
    let stored = lease(&client).await;
    assert_eq!(holder(&stored).as_deref(), Some(leader.identity.as_str()));
    assert_eq!(
        transitions(&stored),
        0,
        "no takeover happened: {:?}",
        stored.spec
    );
    let spec = stored.spec.clone().unwrap();
    assert_eq!(spec.lease_duration_seconds, Some(2));
    assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());
    assert!(
        spec.renew_time > spec.acquire_time,
        "the leader renewed since it acquired"
    );
    // As the API server saw them: one renewal every retry period, to the millisecond.
    let renewals = lease_updates(&sandbox, elected_at);
    assert!(
        renewals.len() >= 20,
        "renewals over 4 s: {}",
        renewals.len()
    );
    for pair in renewals.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            RETRY_PERIOD,
            "renewals arrive one retry period apart"
        );
    }

    let samples = sampler.finish().await;
    // (A sample taken at the very instant of the election may come before it, in that instant.)
    let unled: Vec<Duration> = samples
        .iter()
        .filter(|(at, leaders)| *at > elected_at && !leaders.iter().any(|l| *l))
        .map(|(at, _)| *at - elected_at)
        .collect();
    assert!(
        unled.is_empty(),
        "samples after the election without a leader: {unled:?}"
    );
    let mut shut = Vec::new();
    for replica in replicas {
        shut.push(replica.shut_down().await);
    }
    assert!(shut.iter().all(Result::is_ok), "{shut:?}");
}

#[tokio::test(start_paused = true)]
async fn a_killed_leader_is_replaced_within_lease_duration_plus_retry_period() {
    let (_sandbox, client) = world().await;
    let replicas = [
        Replica::start(&client, "replica-a"),
        Replica::start(&client, "replica-b"),
        Replica::start(&client, "replica-c"),
    ];
    let all: Vec<&Replica> = replicas.iter().collect();
    let sampler = Sampler::start(&all);
    let first = elected(&all, RETRY_PERIOD).await;
    // Kill it between two renewals.
    tokio::time::sleep(Duration::from_millis(650)).await;
    let old = all[first];
    assert!(old.leadership.is_leader());

    // kill -9: the task stops mid-loop and releases nothing.
    old.task.abort();
    let killed_at = Instant::now();
    let old_handle = old.leadership.clone();
    let lost = tokio::spawn(async move {
        old_handle.lost().await;
        Instant::now()
    });
    let standbys: Vec<&Replica> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != first)
        .map(|(_, r)| *r)
        .collect();
    let (new, took_over_at) = first_to_lead(&standbys, LEASE_DURATION * 2)
        .await
        .expect("a standby takes over");
    let new = standbys[new];
    let took_over = took_over_at - killed_at;
    // A standby may write once the lease duration has passed since it saw the last renewal;
    // it saw it within one retry period of the renewal, which came before the kill.
    assert!(
        took_over <= LEASE_DURATION + RETRY_PERIOD,
        "takeover after {took_over:?}, expected within lease duration + retry period"
    );
    assert!(
        took_over > LEASE_DURATION - RETRY_PERIOD,
        "a standby waited out the lease ({took_over:?})"
    );
    let lost_at = tokio::time::timeout(Duration::from_secs(1), lost)
        .await
        .expect("the killed leader's lost() resolved")
        .unwrap();
    assert!(
        lost_at - killed_at <= RENEW_DEADLINE,
        "the killed leader stopped counting within the renew deadline ({:?})",
        lost_at - killed_at
    );
    assert!(lost_at < took_over_at, "the old leader stopped first");
    assert!(!old.leadership.is_leader());
    assert!(old.task.is_finished());

    let stored = lease(&client).await;
    assert_eq!(holder(&stored).as_deref(), Some(new.identity.as_str()));
    assert_eq!(transitions(&stored), 1, "one takeover: {:?}", stored.spec);

    tokio::time::sleep(LEASE_DURATION).await;
    assert!(new.leadership.is_leader(), "the new leader keeps leading");
    sampler.finish().await;
    for (i, replica) in replicas.into_iter().enumerate() {
        if i != first {
            replica.shut_down().await.unwrap();
        }
    }
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_releases_and_a_standby_takes_over_at_once() {
    let (_sandbox, client) = world().await;
    let a = Replica::start(&client, "replica-a");
    let b = Replica::start(&client, "replica-b");
    let sampler = Sampler::start(&[&a, &b]);
    let first = elected(&[&a, &b], RETRY_PERIOD).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (old, standby) = if first == 0 { (a, b) } else { (b, a) };
    let old_handle = old.leadership.clone();
    let old_identity = old.identity.clone();

    let stopping = Instant::now();
    old.shut_down()
        .await
        .expect("the release succeeds and the task ends Ok");
    assert!(!old_handle.is_leader());
    assert!(
        old_handle.lost().now_or_never().is_some(),
        "lost() resolves once stepped down"
    );

    let (_, took_over_at) = first_to_lead(&[&standby], LEASE_DURATION)
        .await
        .expect("the standby takes over");
    let took_over = took_over_at - stopping;
    assert!(
        took_over <= RETRY_PERIOD,
        "after a release the standby takes over at its next attempt ({took_over:?})"
    );
    let stored = lease(&client).await;
    assert_eq!(holder(&stored).as_deref(), Some(standby.identity.as_str()));
    assert_ne!(holder(&stored), Some(old_identity));
    assert_eq!(
        transitions(&stored),
        1,
        "release keeps the count, takeover adds one"
    );

    sampler.finish().await;
    standby.shut_down().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn release_on_shutdown_clears_the_holder_and_shortens_the_lease() {
    let (sandbox, client) = world().await;
    let only = Replica::start(&client, "replica-a");
    elected(&[&only], RETRY_PERIOD).await;
    let held = lease(&client).await;
    assert_eq!(holder(&held).as_deref(), Some("replica-a"));
    assert_eq!(held.spec.as_ref().unwrap().lease_duration_seconds, Some(2));
    only.shut_down().await.unwrap();
    let released = lease(&client).await;
    let spec = released.spec.clone().unwrap();
    assert_eq!(holder(&released), None, "{spec:?}");
    assert_eq!(spec.lease_duration_seconds, Some(1));
    assert_eq!(spec.lease_transitions, Some(0));
    assert!(spec.renew_time >= held.spec.as_ref().unwrap().renew_time);

    // A replica that never led releases nothing: the Lease stays as the leader left it.
    let a = Replica::start(&client, "replica-a");
    elected(&[&a], RETRY_PERIOD).await;
    let is_read =
        |r: &kube_sandbox::faults::RequestRecord| r.resource == "leases" && r.verb == "get";
    // The leader renews without reading; every read from now on is b's. Two of them: b saw
    // the Lease held by a, and decided to wait, at least twice.
    let reads = sandbox.count_requests(is_read);
    let b = Replica::start(&client, "replica-b");
    sandbox
        .wait_for_requests(reads + 2, Duration::from_secs(5), is_read)
        .await
        .unwrap();
    let before = lease(&client).await;
    b.shut_down().await.unwrap();
    let after = lease(&client).await;
    assert_eq!(holder(&after).as_deref(), Some("replica-a"));
    assert_eq!(transitions(&after), transitions(&before));
    assert_eq!(
        transitions(&after),
        1,
        "replica-a re-acquired the released Lease"
    );
    a.shut_down().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn injected_api_faults_never_yield_two_leaders() {
    let (sandbox, client) = world().await;
    let replicas = [
        Replica::start(&client, "replica-a"),
        Replica::start(&client, "replica-b"),
        Replica::start(&client, "replica-c"),
    ];
    let all: Vec<&Replica> = replicas.iter().collect();
    let sampler = Sampler::start(&all);
    // Faults from the start, so even the first election races through them.
    sandbox
        .faults()
        .fail_fraction(0.2, &[FaultKind::Internal, FaultKind::Conflict]);
    elected(&all, LEASE_DURATION * 2).await;
    let mild_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mild_to = Instant::now();
    // Heavy faults: renewals fail often enough that leadership may change hands.
    sandbox
        .faults()
        .fail_fraction(0.6, &[FaultKind::Internal, FaultKind::Conflict]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    sandbox.faults().fail_fraction(0.0, &[]);
    // Whoever holds the Lease (or nobody, if it lapsed) leads again within a lease duration
    // and a retry period.
    let calm = elected(&all, LEASE_DURATION + RETRY_PERIOD).await;
    tokio::time::sleep(LEASE_DURATION).await;
    assert!(all[calm].leadership.is_leader());

    let samples = sampler.finish().await;
    let (led, total) = leader_count(&samples, mild_from, mild_to);
    assert!(
        led * 100 >= total * 95,
        "with 20% of requests failing, the leader keeps renewing ({led} of {total} samples led)"
    );
    let lease_requests = sandbox.count_requests(|r| r.resource == "leases");
    assert!(
        lease_requests > 100,
        "the electors kept trying through the faults ({lease_requests} Lease requests)"
    );
    let stored = lease(&client).await;
    assert_eq!(
        holder(&stored).as_deref(),
        Some(all[calm].identity.as_str())
    );
    for replica in replicas {
        replica.shut_down().await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_leader_cut_off_from_the_api_stops_leading_within_the_renew_deadline() {
    let (sandbox, client) = world().await;
    let a = Replica::start(&client, "replica-a");
    let b = Replica::start(&client, "replica-b");
    let both = [&a, &b];
    let sampler = Sampler::start(&both);
    let first = elected(&both, RETRY_PERIOD).await;
    tokio::time::sleep(Duration::from_millis(650)).await;
    let leader = both[first];
    let handle = leader.leadership.clone();
    let lost = tokio::spawn(async move {
        handle.lost().await;
        Instant::now()
    });

    // Every API request fails from now on.
    sandbox.faults().fail_fraction(1.0, &[FaultKind::Internal]);
    let cut_at = Instant::now();
    assert!(leader.leadership.is_leader());
    let lost_at = tokio::time::timeout(RENEW_DEADLINE * 2, lost)
        .await
        .expect("the leader reports the loss")
        .unwrap();
    let after = lost_at - cut_at;
    // Its last successful renewal began at most one retry period before the cut.
    assert!(
        after <= RENEW_DEADLINE,
        "lost() resolved {after:?} after the cut, expected within the renew deadline"
    );
    assert!(
        after >= RENEW_DEADLINE - RETRY_PERIOD,
        "a leader rides out outages shorter than its renew deadline ({after:?})"
    );
    assert!(!leader.leadership.is_leader());
    // Nobody can write the Lease, so nobody leads while the API is down.
    assert_eq!(
        first_to_lead(&both, LEASE_DURATION + RETRY_PERIOD).await,
        None,
        "no replica leads while the API is unreachable"
    );

    // The API comes back: exactly one replica leads again within a lease duration and a retry
    // period.
    sandbox.faults().fail_fraction(0.0, &[]);
    let again = elected(&both, LEASE_DURATION + RETRY_PERIOD).await;
    tokio::time::sleep(LEASE_DURATION).await;
    assert!(both[again].leadership.is_leader());
    let stored = lease(&client).await;
    assert_eq!(
        holder(&stored).as_deref(),
        Some(both[again].identity.as_str())
    );

    let samples = sampler.finish().await;
    // is_leader() itself, as the sampler saw it: true up to the cut, false from the renew
    // deadline after it.
    let last_led = samples
        .iter()
        .filter(|(at, leaders)| *at <= lost_at && leaders[first])
        .map(|(at, _)| *at)
        .max()
        .expect("the leader was sampled leading");
    assert!(
        last_led >= cut_at && last_led < cut_at + RENEW_DEADLINE,
        "is_leader() turned false {:?} after the cut",
        last_led.saturating_duration_since(cut_at)
    );
    a.shut_down().await.unwrap();
    b.shut_down().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_invalid_config_ends_the_task_with_a_clear_error() {
    let (_sandbox, client) = world().await;
    let mut bad = config("replica-a");
    bad.renew_deadline = LEASE_DURATION;
    let (leadership, task) = leader::spawn(client.clone(), bad, std::future::pending());
    let error = tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(error, Error::LeaderElection { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("default/relay-issuer-leader") && message.contains("renew deadline"),
        "{message}"
    );
    assert_eq!(error.metric_label(), "leader_election");
    assert!(!leadership.is_leader());
    let leases: Api<Lease> = Api::namespaced(client, "default");
    assert!(
        leases.get_opt(LEASE).await.unwrap().is_none(),
        "nothing was written"
    );
}
