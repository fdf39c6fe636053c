//! The Kubernetes side of the connection book, for one replica among several:
//! - [`StatusWriter`]: drains the book and the sweeps into `RelayCluster` status writes, each a
//!   JSON patch whose `test` operations make it conditional (a claim is unconditional; an update
//!   holds only while the status names this replica; a clear only on the exact version the
//!   decision was made on), several in flight at once under the client's rate limit;
//! - [`ReplicaLease`]: this replica's Lease, renewed every third of its duration, deleted on a
//!   clean stop, owned by the Pod when its UID is known (so Kubernetes collects it with the Pod);
//! - [`watch_replicas`]: feeds every replica's Lease into [`ReplicaLiveness`];
//! - [`sweep_forever`]: runs [`sweep`] over the `RelayCluster` reflector.
//!
//! Decisions live in `book` and `holders`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::book::{ConnectionBook, StatusWrite};
use super::holders::{Observed, ReplicaLiveness, sweep};
use crate::api::RelayCluster;
use crate::server::metrics::ServerMetrics;

/// The field manager of the relay server's status writes.
pub const FIELD_MANAGER: &str = "relay-server";

/// The label every replica's Lease carries (value: the replica's name).
pub const REPLICA_LABEL: &str = "relaytls.dev/relay-server-replica";

/// Status writes in flight at once (the client's QPS/burst limit applies on top). Measured
/// against kube-apiserver 1.35 on 2 cores shared with a 45,000-agent connect storm (`make
/// bench-relay-real`, 3 replicas): 16 left the API server waiting between writes (309 writes/s,
/// longest Welcome → shown 78.5 s); 128 outran its watch cache, which fell 19,000 versions
/// behind etcd and restarted every watch of RelayClusters (writes done, yet shown up to 92.6 s
/// after the Welcome); 64 gave 62.4 to 70.0 s.
const WRITES_IN_FLIGHT: usize = 64;

/// How long the first write after an idle spell waits, so that a burst of changes (a connect
/// storm, a reconnect) makes one write per cluster.
const COALESCE: Duration = Duration::from_millis(50);

/// How long no new write starts after one failed (the API server is likely down or
/// overloaded); failed writes are due again and go out after the pause.
const AFTER_FAILURE: Duration = Duration::from_secs(1);

/// RelayClusters a sweep compares while holding the book.
const SWEEP_SLICE: usize = 512;

/// How a status write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written.
    Written,
    /// Its condition no longer held (another replica holds the cluster now, or the status
    /// changed since the sweep looked): nothing to do.
    Superseded,
    /// The RelayCluster is gone.
    Gone,
    /// The API server found the write itself invalid (a 422 on an unconditional write, where no
    /// `test` can have failed): writing it again would fail again, so the writer does not retry.
    Rejected,
    /// The API server refused or could not be reached; the writer retries.
    Failed,
}

impl WriteOutcome {
    /// A low-cardinality label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::Written => "written",
            Self::Superseded => "superseded",
            Self::Gone => "gone",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }

    /// How a write that the API server answered with HTTP `code` ended. `conditional` says
    /// whether the write carried a `test` operation: only then can a 422 mean "the condition no
    /// longer held" rather than "this status is invalid".
    pub fn of_refusal(code: u16, conditional: bool) -> Self {
        match code {
            404 => Self::Gone,
            409 => Self::Superseded,
            422 if conditional => Self::Superseded,
            422 => Self::Rejected,
            _ => Self::Failed,
        }
    }
}

/// The JSON patch that performs `write` for replica `replica`.
pub fn json_patch(write: &StatusWrite, replica: &str) -> serde_json::Value {
    let replace = serde_json::json!({"op": "add", "path": "/status", "value": write.status()});
    match write {
        StatusWrite::Claim(_) => serde_json::json!([replace]),
        StatusWrite::Update(_) => serde_json::json!([
            {"op": "test", "path": "/status/replica", "value": replica},
            replace,
        ]),
        StatusWrite::Clear {
            resource_version, ..
        } => serde_json::json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
            replace,
        ]),
    }
}

/// The shared book and the writer that drains it.
#[derive(Clone)]
pub struct StatusWriter {
    book: Arc<Mutex<ConnectionBook>>,
    wake: Arc<Notify>,
    api: Api<RelayCluster>,
    metrics: ServerMetrics,
}

impl StatusWriter {
    /// A writer for `RelayCluster`s through `api` (the server's namespace), for the sessions of
    /// `book`.
    pub fn new(api: Api<RelayCluster>, book: ConnectionBook, metrics: ServerMetrics) -> Self {
        Self {
            book: Arc::new(Mutex::new(book)),
            wake: Arc::default(),
            api,
            metrics,
        }
    }

    /// Changes the book, and wakes the writer when a write is due (most heartbeats make none).
    pub fn update<T>(&self, change: impl FnOnce(&mut ConnectionBook) -> T) -> T {
        let (result, due) = {
            let mut book = self.book.lock().unwrap_or_else(PoisonError::into_inner);
            let result = change(&mut book);
            (result, book.has_due())
        };
        if due {
            self.wake.notify_one();
        }
        result
    }

    /// The watch showed `cluster` (the sweep then knows whether it shows this replica's last
    /// write of it; see [`ConnectionBook::reclaim`]).
    pub fn observed(&self, cluster: &RelayCluster) {
        if let Some(version) = cluster.metadata.resource_version.as_deref() {
            let name = cluster.name_any();
            self.book
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .observed(&name, version);
        }
    }

    fn replica(&self) -> String {
        self.book
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replica()
            .to_string()
    }

    /// Writes due statuses until `stop` resolves; then marks every cluster held here
    /// disconnected and writes until none is due (the caller bounds how long a stop may take).
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let stopped = self.pipeline(Some(stop.as_mut())).await;
        if stopped {
            self.update(|book| book.disconnect_all(OffsetDateTime::now_utc()));
            self.pipeline(None::<std::pin::Pin<&mut std::future::Pending<()>>>)
                .await;
        }
    }

    /// Keeps up to [`WRITES_IN_FLIGHT`] writes in flight, taking the oldest due write each time
    /// one finishes (no rounds: one slow write never holds back the ones behind it). A first
    /// write after an idle spell waits [`COALESCE`] so a burst of changes makes one write per
    /// cluster; after a failed write no new one starts for [`AFTER_FAILURE`]. With `stop`, runs
    /// until it resolves (in-flight writes are finished first) and returns true; without, until
    /// nothing is due or in flight.
    async fn pipeline<S>(&self, mut stop: Option<std::pin::Pin<&mut S>>) -> bool
    where
        S: std::future::Future<Output = ()> + ?Sized,
    {
        let replica = self.replica();
        let replica = &replica;
        let mut in_flight = futures::stream::FuturesUnordered::new();
        let mut paused_until: Option<tokio::time::Instant> = None;
        loop {
            if paused_until.is_none_or(|until| tokio::time::Instant::now() >= until) {
                paused_until = None;
                while in_flight.len() < WRITES_IN_FLIGHT {
                    let Some((cluster, write)) = self
                        .update(|book| book.take_due_at_most(1))
                        .into_iter()
                        .next()
                    else {
                        break;
                    };
                    in_flight.push(async move { self.write_one(&cluster, &write, replica).await });
                }
            }
            if stop.is_none() && in_flight.is_empty() && !self.update(|book| book.has_due()) {
                return false;
            }
            let resume = async {
                match paused_until {
                    Some(until) => tokio::time::sleep_until(until).await,
                    None => std::future::pending().await,
                }
            };
            let stopping = async {
                match stop.as_mut() {
                    Some(stop) => stop.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(failed) = in_flight.next(), if !in_flight.is_empty() => {
                    if failed {
                        paused_until = Some(tokio::time::Instant::now() + AFTER_FAILURE);
                    }
                }
                _ = self.wake.notified(), if in_flight.len() < WRITES_IN_FLIGHT && paused_until.is_none() => {
                    if in_flight.is_empty() {
                        tokio::time::sleep(COALESCE).await;
                    }
                }
                _ = resume => {}
                _ = stopping => {
                    while in_flight.next().await.is_some() {}
                    return true;
                }
            }
        }
    }

    /// Performs `writes` several at a time; failed claims and updates go back into the book.
    /// Returns how many failed.
    pub async fn write_all(&self, writes: Vec<(String, StatusWrite)>) -> usize {
        let replica = self.replica();
        let replica = &replica;
        futures::stream::iter(writes)
            .map(|(cluster, write)| async move {
                usize::from(self.write_one(&cluster, &write, replica).await)
            })
            .buffer_unordered(WRITES_IN_FLIGHT)
            .fold(0, |failed, one| async move { failed + one })
            .await
    }

    /// Performs one write taken from the book and settles it there; true when it failed (and
    /// was put back, unless it was a clear).
    async fn write_one(&self, cluster: &str, write: &StatusWrite, replica: &str) -> bool {
        let (outcome, version) = self.write(cluster, write, replica).await;
        self.metrics.status_write(write.kind(), outcome.label());
        self.update(|book| book.finished(cluster, OffsetDateTime::now_utc(), version.as_deref()));
        match outcome {
            WriteOutcome::Failed if !matches!(write, StatusWrite::Clear { .. }) => {
                self.update(|book| book.retry(cluster, write));
            }
            WriteOutcome::Gone => self.update(|book| book.forget(cluster)),
            WriteOutcome::Failed
            | WriteOutcome::Written
            | WriteOutcome::Superseded
            | WriteOutcome::Rejected => {}
        }
        outcome == WriteOutcome::Failed
    }

    /// Performs `write`: how it ended, and the resourceVersion it produced when it wrote.
    async fn write(
        &self,
        cluster: &str,
        write: &StatusWrite,
        replica: &str,
    ) -> (WriteOutcome, Option<String>) {
        let patch = match serde_json::from_value::<json_patch::Patch>(json_patch(write, replica)) {
            Ok(patch) => patch,
            Err(error) => {
                warn!(%cluster, %error, "could not build the RelayCluster status patch");
                return (WriteOutcome::Failed, None);
            }
        };
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let status = write.status();
        match self
            .api
            .patch_status(cluster, &params, &Patch::<()>::Json(patch))
            .await
        {
            Ok(written) => {
                debug!(%cluster, kind = write.kind(), connected = status.connected, "RelayCluster status written");
                (WriteOutcome::Written, written.metadata.resource_version)
            }
            Err(kube::Error::Api(response)) => {
                let conditional = !matches!(write, StatusWrite::Claim(_));
                let outcome = WriteOutcome::of_refusal(response.code, conditional);
                match outcome {
                    WriteOutcome::Gone => {
                        debug!(%cluster, "RelayCluster is gone; status not written");
                    }
                    WriteOutcome::Superseded => {
                        debug!(%cluster, kind = write.kind(), "RelayCluster status changed meanwhile; not written");
                    }
                    WriteOutcome::Rejected => {
                        warn!(%cluster, kind = write.kind(), error = %response.message, "the API server refused this RelayCluster status as invalid; not retrying. Check that the RelayCluster CRD installed matches this relay-issuer version (helm upgrade installs it)");
                    }
                    WriteOutcome::Failed => {
                        warn!(%cluster, error = %response.message, code = response.code, "could not write RelayCluster status; retrying");
                    }
                    WriteOutcome::Written => {}
                }
                (outcome, None)
            }
            Err(error) => {
                warn!(%cluster, %error, "could not write RelayCluster status; retrying");
                (WriteOutcome::Failed, None)
            }
        }
    }
}

/// Runs [`sweep`] every `period` over the `RelayCluster`s in `store` (once `listed` says the
/// first list is in) until `stop` resolves: clears what no live replica vouches for, reclaims
/// what this replica holds.
pub async fn sweep_forever(
    writer: StatusWriter,
    store: Store<RelayCluster>,
    mut listed: tokio::sync::watch::Receiver<bool>,
    liveness: Arc<Mutex<ReplicaLiveness>>,
    period: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    if tokio::select! {
        listed = listed.wait_for(|listed| *listed) => listed.is_err(),
        _ = &mut stop => true,
    } {
        return;
    }
    loop {
        let clusters = store.state();
        // In slices, so that heartbeats waiting for the book are held up for a slice at most.
        let mut clears = Vec::new();
        for slice in clusters.chunks(SWEEP_SLICE) {
            {
                let now = Instant::now();
                let wall = OffsetDateTime::now_utc();
                let liveness = liveness.lock().unwrap_or_else(PoisonError::into_inner);
                let observed = slice.iter().map(|cluster| Observed {
                    cluster: cluster.metadata.name.as_deref().unwrap_or_default(),
                    status: cluster.status.as_ref(),
                    resource_version: cluster
                        .metadata
                        .resource_version
                        .as_deref()
                        .unwrap_or_default(),
                });
                clears.extend(writer.update(|book| {
                    sweep(
                        book,
                        observed,
                        |replica| liveness.is_live(replica, now),
                        wall,
                    )
                }));
            }
            tokio::task::yield_now().await;
        }
        if !clears.is_empty() {
            info!(
                count = clears.len(),
                "clearing RelayCluster statuses no live relay server replica holds"
            );
            writer.write_all(clears).await;
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = &mut stop => return,
        }
    }
}

/// This replica's Lease.
pub struct ReplicaLease {
    api: Api<Lease>,
    name: String,
    replica: String,
    duration: Duration,
    owner: Option<OwnerReference>,
}

impl ReplicaLease {
    /// The Lease `relay-server-<replica>` through `api`, with `duration`, owned by Pod
    /// `replica` when `pod_uid` is known.
    pub fn new(api: Api<Lease>, replica: &str, duration: Duration, pod_uid: Option<&str>) -> Self {
        Self {
            api,
            name: lease_name(replica),
            replica: replica.to_string(),
            duration,
            owner: pod_uid.map(|uid| OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: replica.to_string(),
                uid: uid.to_string(),
                ..OwnerReference::default()
            }),
        }
    }

    async fn renew(&self) -> Result<(), kube::Error> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some([(REPLICA_LABEL.to_string(), self.replica.clone())].into()),
                owner_references: self.owner.clone().map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.replica.clone()),
                lease_duration_seconds: i32::try_from(self.duration.as_secs().max(1)).ok(),
                renew_time: Some(micro_time_now()),
                ..LeaseSpec::default()
            }),
        };
        let mut value = serde_json::to_value(&lease).map_err(kube::Error::SerdeError)?;
        value["apiVersion"] = "coordination.k8s.io/v1".into();
        value["kind"] = "Lease".into();
        self.api
            .patch(
                &self.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&value),
            )
            .await
            .map(|_| ())
    }

    /// Renews the Lease every third of its duration until `stop` resolves, then deletes it.
    pub async fn keep(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let period = (self.duration / 3).max(Duration::from_millis(200));
        loop {
            if let Err(error) = self.renew().await {
                warn!(lease = %self.name, %error, "could not renew this relay server replica's Lease; other replicas will clear its RelayClusters if this lasts longer than the Lease duration");
            }
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = &mut stop => break,
            }
        }
        match self.api.delete(&self.name, &DeleteParams::default()).await {
            Ok(_) => debug!(lease = %self.name, "replica Lease deleted"),
            Err(error) => {
                warn!(lease = %self.name, %error, "could not delete this replica's Lease; it expires on its own")
            }
        }
    }
}

/// The name of replica `replica`'s Lease.
pub fn lease_name(replica: &str) -> String {
    format!("relay-server-{replica}")
}

fn micro_time_now() -> MicroTime {
    let now = OffsetDateTime::now_utc();
    let micros = i64::try_from(now.unix_timestamp_nanos() / 1000).unwrap_or(0);
    MicroTime(
        k8s_openapi::jiff::Timestamp::from_microsecond(micros)
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

/// Feeds every replica's Lease (label [`REPLICA_LABEL`]) into `liveness`, forever.
pub async fn watch_replicas(api: Api<Lease>, liveness: Arc<Mutex<ReplicaLiveness>>) {
    let config = watcher::Config::default().labels(REPLICA_LABEL);
    let mut listing: Vec<String> = Vec::new();
    let events = watcher(api, config).default_backoff();
    futures::pin_mut!(events);
    loop {
        let event = match events.try_next().await {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(error) => {
                warn!(%error, "watching relay server replica Leases failed; retrying");
                continue;
            }
        };
        let now = Instant::now();
        let mut liveness = liveness.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Init => listing.clear(),
            watcher::Event::InitApply(lease) => {
                if let Some(replica) = observe(&mut liveness, &lease, now) {
                    listing.push(replica);
                }
            }
            watcher::Event::InitDone => {
                let present: Vec<&str> = listing.iter().map(String::as_str).collect();
                liveness.listed(&present, now);
            }
            watcher::Event::Apply(lease) => {
                observe(&mut liveness, &lease, now);
            }
            watcher::Event::Delete(lease) => {
                if let Some(replica) = replica_of(&lease) {
                    liveness.deleted(&replica);
                }
            }
        }
    }
}

fn replica_of(lease: &Lease) -> Option<String> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .or_else(|| lease.labels().get(REPLICA_LABEL).cloned())
}

fn observe(liveness: &mut ReplicaLiveness, lease: &Lease, now: Instant) -> Option<String> {
    let replica = replica_of(lease)?;
    let spec = lease.spec.as_ref();
    let marker = spec
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0.to_string())
        .or_else(|| lease.resource_version())
        .unwrap_or_default();
    let seconds = spec
        .and_then(|s| s.lease_duration_seconds)
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or(15);
    liveness.observe(&replica, &marker, Duration::from_secs(seconds), now);
    Some(replica)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RelayClusterStatus;

    #[test]
    fn claims_are_unconditional_updates_test_the_holder_clears_the_version() {
        let status = RelayClusterStatus {
            connected: true,
            replica: Some("me".into()),
            ..Default::default()
        };
        let claim = json_patch(&StatusWrite::Claim(status.clone()), "me");
        assert_eq!(claim.as_array().unwrap().len(), 1);
        assert_eq!(claim[0]["op"], "add");
        assert_eq!(claim[0]["path"], "/status");
        assert_eq!(claim[0]["value"]["replica"], "me");
        let update = json_patch(&StatusWrite::Update(status.clone()), "me");
        assert_eq!(
            update[0],
            serde_json::json!({"op": "test", "path": "/status/replica", "value": "me"})
        );
        assert_eq!(update[1]["op"], "add");
        let clear = json_patch(
            &StatusWrite::Clear {
                status,
                resource_version: "42".into(),
            },
            "me",
        );
        assert_eq!(
            clear[0],
            serde_json::json!({"op": "test", "path": "/metadata/resourceVersion", "value": "42"})
        );
        for patch in [claim, update, clear] {
            serde_json::from_value::<json_patch::Patch>(patch).expect("a valid JSON patch");
        }
    }

    #[test]
    fn a_422_is_a_lost_condition_only_for_a_write_that_tested_one() {
        assert_eq!(
            WriteOutcome::of_refusal(422, true),
            WriteOutcome::Superseded
        );
        assert_eq!(WriteOutcome::of_refusal(422, false), WriteOutcome::Rejected);
        for conditional in [true, false] {
            assert_eq!(
                WriteOutcome::of_refusal(404, conditional),
                WriteOutcome::Gone
            );
            assert_eq!(
                WriteOutcome::of_refusal(409, conditional),
                WriteOutcome::Superseded
            );
            for code in [400, 401, 403, 429, 500, 503] {
                assert_eq!(
                    WriteOutcome::of_refusal(code, conditional),
                    WriteOutcome::Failed
                );
            }
        }
    }

    #[test]
    fn lease_names_follow_the_replica() {
        assert_eq!(
            lease_name("relay-issuer-server-7d9f-abcde"),
            "relay-server-relay-issuer-server-7d9f-abcde"
        );
    }
}
