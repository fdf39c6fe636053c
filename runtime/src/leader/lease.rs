//! The election loop: reads, creates and replaces the `coordination.k8s.io/v1` Lease with
//! resourceVersion-conditional writes, applies the decisions of `decide.rs`, publishes the
//! outcome to [`Leadership`], logs leadership changes, and releases the Lease on shutdown.
//!
//! No decisions are made here beyond "retry next period": a 409 (Conflict or AlreadyExists)
//! means another elector wrote first, and any other failure is logged and retried.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::config::LeaderElectionConfig;
use super::decide::{self, Decision, LeaseRecord, Now, Observation};
use super::handle::{Leadership, Publisher};
use crate::Error;

/// The field manager of our Lease writes.
const FIELD_MANAGER: &str = "relay-issuer";

/// Tries to release the Lease at most this many times on shutdown (each 409 re-reads it).
const RELEASE_ATTEMPTS: usize = 3;

/// Starts leader election on the Lease `config` names.
///
/// Returns the [`Leadership`] handle at once and the election task. The task tries to acquire
/// or renew every `retry_period` until `shutdown` resolves; then, if it holds the Lease, it
/// stops counting as leader and releases the Lease (client-go's `ReleaseOnCancel`: no holder,
/// `leaseDurationSeconds: 1`) so a standby takes over at once. The task ends with
/// [`Error::LeaderElection`] for an invalid `config` (nobody leads then) or a release that
/// failed, and `Ok(())` otherwise; API failures while running are logged and retried.
///
/// Aborting the task (or killing the process) releases nothing: leadership then fades at the
/// renew deadline and a standby takes over once the lease duration has passed.
pub fn spawn(
    client: kube::Client,
    config: LeaderElectionConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (Leadership, JoinHandle<Result<(), Error>>) {
    let (leadership, publisher) = Leadership::elected();
    let task = tokio::spawn(async move {
        config.validate()?;
        let api: Api<Lease> = Api::namespaced(client, &config.namespace);
        Elector::new(api, config, publisher).run(shutdown).await
    });
    (leadership, task)
}

/// What the election loop knows about the Lease.
#[derive(Debug, Default)]
struct State {
    /// The record as last read or written, and since when it looked like this.
    observed: Option<Observation>,
    /// The Lease object behind `observed` (its metadata carries the resourceVersion).
    lease: Option<Lease>,
    /// When our last successful create/replace began.
    last_write_started: Option<Instant>,
    /// A write was sent and its answer never arrived (timeout): it may have been applied.
    write_in_doubt: bool,
    /// Failed attempts in a row, to keep the logs readable while the API is down.
    failures: u32,
}

/// The election loop's parts.
struct Elector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    lease_ref: String,
    publisher: Publisher,
    state: State,
    /// Whether we counted as leader when last checked (for logging transitions).
    leading: bool,
    /// The holder we last logged, so each change of holder is logged once.
    known_holder: Option<String>,
}

/// Why an attempt could not finish.
enum Failure {
    /// Another elector wrote first (409); nothing is wrong.
    Conflict,
    /// The API call failed.
    Api(Error),
}

impl Elector {
    fn new(api: Api<Lease>, config: LeaderElectionConfig, publisher: Publisher) -> Self {
        Self {
            api,
            lease_ref: config.lease_ref(),
            config,
            publisher,
            state: State::default(),
            leading: false,
            known_holder: None,
        }
    }

    async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        tokio::pin!(shutdown);
        info!(
            lease = %self.lease_ref,
            identity = %self.config.identity,
            "leader election started"
        );
        loop {
            let started = super::monotonic_now();
            let round = tokio::time::timeout(
                self.config.renew_deadline,
                attempt(&self.api, &self.config, &mut self.state),
            );
            let outcome = guarded(
                round,
                shutdown.as_mut(),
                &self.publisher,
                &mut self.leading,
                &self.lease_ref,
                &self.config.identity,
            )
            .await;
            let wake = match outcome {
                None => return self.stop().await,
                Some(Ok(Ok(wake))) => {
                    self.state.failures = 0;
                    wake
                }
                Some(Ok(Err(Failure::Conflict))) => {
                    debug!(lease = %self.lease_ref, "another elector wrote the Lease first; retrying next period");
                    None
                }
                Some(Ok(Err(Failure::Api(error)))) => {
                    self.failed(&error.to_string());
                    None
                }
                Some(Err(_elapsed)) => {
                    self.failed(&format!(
                        "the Kubernetes API did not answer within {:?}",
                        self.config.renew_deadline
                    ));
                    None
                }
            };
            self.publish();
            let mut next = started + self.config.retry_period;
            if let Some(expires) = wake {
                next = next.min(expires);
            }
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(next));
            let slept = guarded(
                sleep,
                shutdown.as_mut(),
                &self.publisher,
                &mut self.leading,
                &self.lease_ref,
                &self.config.identity,
            )
            .await;
            if slept.is_none() {
                return self.stop().await;
            }
        }
    }

    fn failed(&mut self, error: &str) {
        self.state.failures = self.state.failures.saturating_add(1);
        let failures = self.state.failures;
        if failures == 1 || failures.is_multiple_of(30) {
            warn!(
                lease = %self.lease_ref,
                identity = %self.config.identity,
                leading = self.leading,
                failures,
                %error,
                "leader election could not acquire or renew the Lease; retrying"
            );
        } else {
            debug!(lease = %self.lease_ref, failures, %error, "leader election attempt failed");
        }
    }

    /// Publishes until when we lead and logs any change of leadership or holder.
    fn publish(&mut self) {
        let identity = &self.config.identity;
        let deadline = decide::leader_deadline(
            self.state.observed.as_ref(),
            identity,
            self.state.last_write_started,
            self.config.renew_deadline,
        );
        self.publisher.set(deadline);
        let leading = deadline.is_some_and(|deadline| super::monotonic_now() < deadline);
        let record = self.state.observed.as_ref().map(|o| &o.record);
        let holder = record.and_then(LeaseRecord::holder).map(str::to_string);
        if leading && !self.leading {
            info!(
                lease = %self.lease_ref,
                %identity,
                transitions = record.and_then(|r| r.lease_transitions).unwrap_or(0),
                "acquired leadership: this replica now leads"
            );
        } else if !leading && self.leading {
            let reason = match &holder {
                Some(holder) if holder != identity => format!("the Lease is now held by {holder}"),
                None => "the Lease was released".to_string(),
                Some(_) => "the renew deadline passed without a successful renewal".to_string(),
            };
            warn!(lease = %self.lease_ref, %identity, %reason, "lost leadership: this replica stops leading");
        }
        if holder != self.known_holder {
            if let Some(holder) = holder.as_deref().filter(|h| *h != identity.as_str()) {
                info!(lease = %self.lease_ref, %identity, leader = %holder, "the Lease is held by another replica");
            }
            self.known_holder = holder;
        }
        self.leading = leading;
    }

    /// Stops leading, then releases the Lease if it may be ours.
    async fn stop(mut self) -> Result<(), Error> {
        self.publisher.set(None);
        let identity = self.config.identity.clone();
        let ours = self
            .state
            .observed
            .as_ref()
            .is_some_and(|o| o.record.is_held_by(&identity));
        if self.leading {
            info!(lease = %self.lease_ref, %identity, "shutting down: stepped down as leader");
        }
        self.leading = false;
        if !ours && !self.state.write_in_doubt {
            info!(lease = %self.lease_ref, %identity, "leader election stopped");
            return Ok(());
        }
        let released = tokio::time::timeout(
            self.config.renew_deadline,
            release(&self.api, &self.config, &mut self.state),
        )
        .await;
        match released {
            Ok(Ok(true)) => {
                info!(lease = %self.lease_ref, %identity, "released the Lease so a standby can take over at once");
                Ok(())
            }
            Ok(Ok(false)) => {
                info!(lease = %self.lease_ref, %identity, "leader election stopped; the Lease was not ours to release");
                Ok(())
            }
            Ok(Err(error)) => Err(error),
            Err(_elapsed) => Err(Error::LeaderElection {
                lease: self.lease_ref.clone(),
                detail: format!(
                    "releasing the Lease on shutdown got no answer within {:?}; a standby takes over once the lease expires",
                    self.config.renew_deadline
                ),
            }),
        }
    }
}

/// Awaits `future` unless `shutdown` resolves first (`None`). Meanwhile, logs the loss of
/// leadership as soon as the published deadline passes.
async fn guarded<F: Future>(
    future: F,
    mut shutdown: Pin<&mut impl Future<Output = ()>>,
    publisher: &Publisher,
    leading: &mut bool,
    lease_ref: &str,
    identity: &str,
) -> Option<F::Output> {
    tokio::pin!(future);
    loop {
        let deadline = publisher.deadline().filter(|_| *leading);
        let expiry = async {
            match deadline {
                Some(deadline) => {
                    tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.as_mut() => return None,
            output = &mut future => return Some(output),
            _ = expiry => {
                *leading = false;
                warn!(
                    lease = %lease_ref,
                    %identity,
                    reason = "the renew deadline passed without a successful renewal",
                    "lost leadership: this replica stops leading"
                );
            }
        }
    }
}

/// One round of client-go's `tryAcquireOrRenew`. Returns when the current holder's lease
/// expires if we must wait for it.
async fn attempt(
    api: &Api<Lease>,
    config: &LeaderElectionConfig,
    state: &mut State,
) -> Result<Option<Instant>, Failure> {
    let identity = config.identity.as_str();
    let lease_ref = config.lease_ref();
    // Fast path: while we lead, renew on top of what we last wrote, without reading first.
    let leading = decide::counts_as_leader(
        state.observed.as_ref(),
        identity,
        state.last_write_started,
        super::monotonic_now(),
        config.renew_deadline,
    );
    if leading
        && let Some(lease) = state.lease.clone()
        && let Decision::Renew(record) =
            decide::decide(state.observed.as_ref(), Now::current(), identity, config)
    {
        match write(api, config, state, Some(lease), &record).await {
            Ok(()) => return Ok(None),
            Err(Failure::Conflict) => {
                debug!(lease = %lease_ref, "optimistic renewal conflicted; re-reading the Lease");
            }
            Err(Failure::Api(error)) => {
                debug!(lease = %lease_ref, %error, "optimistic renewal failed; re-reading the Lease");
            }
        }
    }
    // Slow path: read, decide, write.
    let read = api
        .get_opt(&config.lease_name)
        .await
        .map_err(|e| Failure::Api(Error::kube(format!("read Lease {lease_ref}"), e)))?;
    let now = Now::current();
    state.write_in_doubt = false;
    match read {
        None => {
            state.observed = None;
            state.lease = None;
        }
        Some(lease) => {
            state.observed = Some(Observation::next(
                state.observed.as_ref(),
                record_of(&lease),
                lease.metadata.resource_version.clone(),
                now.monotonic,
            ));
            state.lease = Some(lease);
        }
    }
    if !state
        .observed
        .as_ref()
        .is_some_and(|o| o.record.is_held_by(identity))
    {
        // Someone else's (or nobody's) record: our previous term, if any, is over.
        state.last_write_started = None;
    }
    match decide::decide(state.observed.as_ref(), now, identity, config) {
        Decision::Wait { expires, .. } => Ok(Some(expires)),
        Decision::Create(record) => write(api, config, state, None, &record)
            .await
            .map(|()| None),
        Decision::Acquire(record) | Decision::Renew(record) => {
            let lease = state.lease.clone();
            write(api, config, state, lease, &record)
                .await
                .map(|()| None)
        }
    }
}

/// Creates (`base` is `None`) or replaces `base` with `record`, conditional on `base`'s
/// resourceVersion. On success, records the write in `state`.
async fn write(
    api: &Api<Lease>,
    config: &LeaderElectionConfig,
    state: &mut State,
    base: Option<Lease>,
    record: &LeaseRecord,
) -> Result<(), Failure> {
    let lease_ref = config.lease_ref();
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    let creating = base.is_none();
    let mut lease = base.unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(config.lease_name.clone()),
            namespace: Some(config.namespace.clone()),
            ..ObjectMeta::default()
        },
        spec: None,
    });
    lease.metadata.managed_fields = None;
    set_record(&mut lease, record);
    let started = super::monotonic_now();
    state.write_in_doubt = true;
    let result = if creating {
        api.create(&params, &lease).await
    } else {
        api.replace(&config.lease_name, &params, &lease).await
    };
    state.write_in_doubt = false;
    let written = result.map_err(|e| match e {
        kube::Error::Api(status) if status.code == 409 => Failure::Conflict,
        e => Failure::Api(Error::kube(
            format!(
                "{} Lease {lease_ref}",
                if creating { "create" } else { "replace" }
            ),
            e,
        )),
    })?;
    state.observed = Some(Observation {
        record: record_of(&written),
        version: written.metadata.resource_version.clone(),
        observed_at: super::monotonic_now(),
    });
    state.lease = Some(written);
    state.last_write_started = Some(started);
    Ok(())
}

/// Releases the Lease if it is ours. `Ok(true)`: released; `Ok(false)`: not ours (or gone).
async fn release(
    api: &Api<Lease>,
    config: &LeaderElectionConfig,
    state: &mut State,
) -> Result<bool, Error> {
    let lease_ref = config.lease_ref();
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    // Try what we last saw first (no read needed when it is current), then re-read.
    let mut cached = if state.write_in_doubt {
        None
    } else {
        state.lease.take()
    };
    for _ in 0..RELEASE_ATTEMPTS {
        let lease = match cached.take() {
            Some(lease) => lease,
            None => match api.get_opt(&config.lease_name).await {
                Ok(Some(lease)) => lease,
                Ok(None) => return Ok(false),
                Err(e) => return Err(Error::kube(format!("read Lease {lease_ref}"), e)),
            },
        };
        let Some(record) = decide::release(&record_of(&lease), &config.identity, SystemTime::now())
        else {
            return Ok(false);
        };
        let mut released = lease;
        released.metadata.managed_fields = None;
        set_record(&mut released, &record);
        match api.replace(&config.lease_name, &params, &released).await {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(e) => return Err(Error::kube(format!("release Lease {lease_ref}"), e)),
        }
    }
    Err(Error::LeaderElection {
        lease: lease_ref,
        detail: format!(
            "the Lease kept changing while releasing it ({RELEASE_ATTEMPTS} conflicts); a standby takes over once the lease expires"
        ),
    })
}

/// The leader-election record of a Lease.
fn record_of(lease: &Lease) -> LeaseRecord {
    let Some(spec) = lease.spec.as_ref() else {
        return LeaseRecord::default();
    };
    LeaseRecord {
        holder_identity: spec.holder_identity.clone(),
        lease_duration_seconds: spec.lease_duration_seconds,
        acquire_time: spec.acquire_time.as_ref().map(system_time),
        renew_time: spec.renew_time.as_ref().map(system_time),
        lease_transitions: spec.lease_transitions,
    }
}

/// Writes `record` into `lease`'s spec, keeping fields leader election does not own.
fn set_record(lease: &mut Lease, record: &LeaseRecord) {
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    spec.holder_identity = record.holder_identity.clone();
    spec.lease_duration_seconds = record.lease_duration_seconds;
    spec.acquire_time = record.acquire_time.and_then(micro_time);
    spec.renew_time = record.renew_time.and_then(micro_time);
    spec.lease_transitions = record.lease_transitions;
}

fn micro_time(time: SystemTime) -> Option<MicroTime> {
    let micros = match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).ok()?,
        Err(before) => i64::try_from(before.duration().as_micros())
            .ok()?
            .checked_neg()?,
    };
    Timestamp::from_microsecond(micros).ok().map(MicroTime)
}

fn system_time(time: &MicroTime) -> SystemTime {
    let micros = time.0.as_microsecond();
    let magnitude = Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_at_microsecond_precision() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_800_000_000, 123_456_789);
        let micro = micro_time(t).unwrap();
        assert_eq!(
            system_time(&micro),
            SystemTime::UNIX_EPOCH + Duration::new(1_800_000_000, 123_456_000)
        );
        let before = SystemTime::UNIX_EPOCH - Duration::from_micros(5);
        assert_eq!(system_time(&micro_time(before).unwrap()), before);
    }

    #[test]
    fn records_round_trip_through_a_lease_keeping_other_fields() {
        let record = LeaseRecord {
            holder_identity: Some("pod-a".into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            renew_time: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_010)),
            lease_transitions: Some(3),
        };
        let mut lease = Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                strategy: Some("OldestEmulationVersion".into()),
                ..LeaseSpec::default()
            }),
        };
        set_record(&mut lease, &record);
        assert_eq!(record_of(&lease), record);
        assert_eq!(
            lease.spec.as_ref().and_then(|s| s.strategy.as_deref()),
            Some("OldestEmulationVersion")
        );
        let released = decide::release(&record, "pod-a", SystemTime::UNIX_EPOCH).unwrap();
        set_record(&mut lease, &released);
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity, None);
        assert_eq!(spec.lease_duration_seconds, Some(1));
        assert_eq!(spec.lease_transitions, Some(3));
    }

    #[test]
    fn a_lease_without_spec_is_a_free_record() {
        let lease = Lease::default();
        assert_eq!(record_of(&lease), LeaseRecord::default());
        assert_eq!(record_of(&lease).holder(), None);
    }
}
