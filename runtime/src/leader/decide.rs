//! client-go's leader-election decisions as pure functions: what record an elector writes,
//! when it must wait, and whether it still counts as leader.
//!
//! Nothing here reads a clock or touches the network: callers pass the observed record, the
//! local monotonic time at which that record was last seen to change, and `now`, then apply what
//! comes back (`lease.rs` does the Kubernetes calls). No kube or k8s-openapi types: a
//! [`LeaseRecord`] is the plain data of a Lease's spec.
//!
//! Expiry is judged the way client-go judges it, on the local monotonic clock: a standby may take
//! the Lease over once `lease duration` has passed since it *saw the record change*, whatever
//! `renewTime` says, so wall-clock skew between replicas cannot cut a lease short. The leader, in
//! turn, counts as leader only until `renew deadline` after the *start* of its last successful
//! write. Because `renew deadline < lease duration` and a standby sees a write only after it
//! happened, the old leader stops counting before any standby may write (see
//! [`leader_deadline`]).

use std::time::{Duration, Instant, SystemTime};

use super::config::LeaderElectionConfig;

/// The leader-election fields of a Lease (`spec`), as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `holderIdentity`; `None` or empty means nobody holds the Lease.
    pub holder_identity: Option<String>,
    /// `leaseDurationSeconds`, as the holder declared it.
    pub lease_duration_seconds: Option<i32>,
    /// `acquireTime` (wall clock; informational only).
    pub acquire_time: Option<SystemTime>,
    /// `renewTime` (wall clock; informational only, never used to judge expiry).
    pub renew_time: Option<SystemTime>,
    /// `leaseTransitions`: how many times the holder changed.
    pub lease_transitions: Option<i32>,
}

impl LeaseRecord {
    /// The holder, if there is one (an empty identity counts as none).
    pub fn holder(&self) -> Option<&str> {
        self.holder_identity.as_deref().filter(|h| !h.is_empty())
    }

    /// Whether `identity` holds this record.
    pub fn is_held_by(&self, identity: &str) -> bool {
        self.holder() == Some(identity)
    }

    /// How long this record's lease lasts after it is seen to change: its own
    /// `leaseDurationSeconds`, or `fallback` when that is missing or not positive (client-go
    /// would treat such a lease as already expired; waiting our own duration is the safe side).
    pub fn lease_duration(&self, fallback: Duration) -> Duration {
        match self.lease_duration_seconds {
            Some(seconds) if seconds > 0 => Duration::from_secs(u64::from(seconds.unsigned_abs())),
            _ => fallback,
        }
    }
}

/// The current time on both clocks: monotonic for every decision, wall clock only for the
/// timestamps written into the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Local monotonic time.
    pub monotonic: Instant,
    /// Wall-clock time, for `acquireTime` and `renewTime`.
    pub wall: SystemTime,
}

impl Now {
    /// Reads both clocks.
    pub fn current() -> Self {
        Self {
            monotonic: super::monotonic_now(),
            wall: SystemTime::now(),
        }
    }
}

/// A record as one elector observed it, with the local time it was first seen in this form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The record.
    pub record: LeaseRecord,
    /// The Lease's `resourceVersion` when observed, if known.
    pub version: Option<String>,
    /// Local monotonic time at which the record was first seen with this content and version.
    pub observed_at: Instant,
}

impl Observation {
    /// Folds a fresh read into the previous observation: the observation time stays put while
    /// the record and its resourceVersion are unchanged, and moves to `now` when either changed.
    ///
    /// client-go compares the record alone; also comparing the resourceVersion can only move
    /// `observed_at` later, which makes standbys wait longer, never shorter.
    ///
    /// `now` must be taken after the read returned, never before it was sent.
    pub fn next(
        previous: Option<&Observation>,
        record: LeaseRecord,
        version: Option<String>,
        now: Instant,
    ) -> Observation {
        match previous {
            Some(previous) if previous.record == record && previous.version == version => {
                Observation {
                    record,
                    version,
                    observed_at: previous.observed_at,
                }
            }
            _ => Observation {
                record,
                version,
                observed_at: now,
            },
        }
    }

    /// When this observation's lease expires for a standby: `observed_at` plus the record's
    /// lease duration (or `fallback`).
    pub fn expires_at(&self, fallback: Duration) -> Instant {
        self.observed_at + self.record.lease_duration(fallback)
    }
}

/// What an elector should do after reading the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists: create it holding this record.
    Create(LeaseRecord),
    /// The Lease is free or expired: replace it with this record, which names us holder and
    /// counts one more transition.
    Acquire(LeaseRecord),
    /// We hold the Lease: replace it with this renewed record.
    Renew(LeaseRecord),
    /// Someone else holds a lease that has not expired: do nothing until at least `expires`.
    Wait {
        /// The current holder.
        holder: String,
        /// Local monotonic time at which the lease expires unless its record changes.
        expires: Instant,
    },
}

/// client-go's `tryAcquireOrRenew` decision. `observed` is the Lease as last read (`None`: it
/// does not exist), `identity` is ours.
///
/// - no Lease: create one naming us, `leaseTransitions` 0;
/// - we hold it (even if it looks expired): renew, keeping `acquireTime` and
///   `leaseTransitions` — safe because the write is conditional on the resourceVersion we read,
///   so it fails if anyone wrote since;
/// - nobody holds it, or the holder's lease expired (`now >= observed_at + duration`): acquire,
///   `leaseTransitions + 1`;
/// - otherwise wait.
pub fn decide(
    observed: Option<&Observation>,
    now: Now,
    identity: &str,
    config: &LeaderElectionConfig,
) -> Decision {
    let fresh = |acquire_time: Option<SystemTime>, transitions: i32| LeaseRecord {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(config.lease_duration_seconds()),
        acquire_time: Some(acquire_time.unwrap_or(now.wall)),
        renew_time: Some(now.wall),
        lease_transitions: Some(transitions),
    };
    let Some(observed) = observed else {
        return Decision::Create(fresh(None, 0));
    };
    let record = &observed.record;
    let transitions = record.lease_transitions.unwrap_or(0).max(0);
    match record.holder() {
        Some(holder) if holder == identity => {
            Decision::Renew(fresh(record.acquire_time, transitions))
        }
        Some(holder) => {
            let expires = observed.expires_at(config.lease_duration);
            if now.monotonic < expires {
                Decision::Wait {
                    holder: holder.to_string(),
                    expires,
                }
            } else {
                Decision::Acquire(fresh(None, transitions.saturating_add(1)))
            }
        }
        None => Decision::Acquire(fresh(None, transitions.saturating_add(1))),
    }
}

/// Until when we count as leader, given the Lease as we last observed it and the local time at
/// which our last successful create/replace of it *began* (`None`: none this run).
///
/// `Some(start + renew_deadline)` when the observed record names us and we wrote successfully;
/// `None` otherwise.
///
/// Why this is safe: a standby takes over only at `t_seen + lease_duration`, where `t_seen` is
/// when it first saw our last record, and it saw it after we wrote it, so after `start`. Its
/// write is conditional on that record's resourceVersion, so it cannot overwrite a later renewal
/// of ours. Hence every takeover happens after `start + lease_duration`, which is later than our
/// `start + renew_deadline`.
pub fn leader_deadline(
    observed: Option<&Observation>,
    identity: &str,
    last_write_started: Option<Instant>,
    renew_deadline: Duration,
) -> Option<Instant> {
    let observed = observed?;
    if !observed.record.is_held_by(identity) {
        return None;
    }
    last_write_started.map(|start| start + renew_deadline)
}

/// Whether we count as leader at `now` (see [`leader_deadline`]): true strictly before the
/// deadline.
pub fn counts_as_leader(
    observed: Option<&Observation>,
    identity: &str,
    last_write_started: Option<Instant>,
    now: Instant,
    renew_deadline: Duration,
) -> bool {
    leader_deadline(observed, identity, last_write_started, renew_deadline)
        .is_some_and(|deadline| now < deadline)
}

/// client-go's `ReleaseOnCancel` record: nobody holds the Lease, it lasts one second, and the
/// transition count is kept, so a standby takes over on its next try. `None` when `record` is
/// not ours to release.
pub fn release(record: &LeaseRecord, identity: &str, now: SystemTime) -> Option<LeaseRecord> {
    if !record.is_held_by(identity) {
        return None;
    }
    Some(LeaseRecord {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: Some(now),
        renew_time: Some(now),
        lease_transitions: record.lease_transitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ME: &str = "pod-a";
    const OTHER: &str = "pod-b";

    fn config() -> LeaderElectionConfig {
        let mut c = LeaderElectionConfig::new("ns", "lease", ME);
        c.lease_duration = Duration::from_secs(15);
        c.renew_deadline = Duration::from_secs(10);
        c.retry_period = Duration::from_secs(2);
        c
    }

    fn wall(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    fn at(base: Instant, seconds: f64) -> Now {
        Now {
            monotonic: base + Duration::from_secs_f64(seconds),
            wall: wall(seconds as u64),
        }
    }

    fn held_by(holder: Option<&str>, transitions: Option<i32>) -> LeaseRecord {
        LeaseRecord {
            holder_identity: holder.map(str::to_string),
            lease_duration_seconds: Some(15),
            acquire_time: Some(wall(0)),
            renew_time: Some(wall(0)),
            lease_transitions: transitions,
        }
    }

    fn seen(record: LeaseRecord, at: Instant) -> Observation {
        Observation {
            record,
            version: Some("1".into()),
            observed_at: at,
        }
    }

    #[test]
    fn a_missing_lease_is_created_naming_us_with_zero_transitions() {
        let base = Instant::now();
        let now = at(base, 3.0);
        let Decision::Create(record) = decide(None, now, ME, &config()) else {
            panic!("expected Create");
        };
        assert_eq!(
            record,
            LeaseRecord {
                holder_identity: Some(ME.into()),
                lease_duration_seconds: Some(15),
                acquire_time: Some(now.wall),
                renew_time: Some(now.wall),
                lease_transitions: Some(0),
            }
        );
    }

    #[test]
    fn a_free_lease_is_acquired_with_one_more_transition() {
        let base = Instant::now();
        for holder in [None, Some("")] {
            let observed = seen(held_by(holder, Some(4)), base);
            // Free means free: no need to wait for the previous duration.
            let now = at(base, 0.0);
            let Decision::Acquire(record) = decide(Some(&observed), now, ME, &config()) else {
                panic!("expected Acquire for holder {holder:?}");
            };
            assert_eq!(record.holder_identity.as_deref(), Some(ME));
            assert_eq!(record.lease_transitions, Some(5));
            assert_eq!(record.acquire_time, Some(now.wall));
            assert_eq!(record.renew_time, Some(now.wall));
            assert_eq!(record.lease_duration_seconds, Some(15));
        }
    }

    #[test]
    fn someone_elses_valid_lease_means_wait_until_it_expires() {
        let base = Instant::now();
        let observed = seen(held_by(Some(OTHER), Some(2)), base);
        for seconds in [0.0, 1.0, 14.999] {
            assert_eq!(
                decide(Some(&observed), at(base, seconds), ME, &config()),
                Decision::Wait {
                    holder: OTHER.into(),
                    expires: base + Duration::from_secs(15),
                },
                "at {seconds}s"
            );
        }
    }

    #[test]
    fn someone_elses_expired_lease_is_taken_over_at_exactly_its_expiry() {
        let base = Instant::now();
        let observed = seen(held_by(Some(OTHER), Some(2)), base);
        for seconds in [15.0, 15.001, 1000.0] {
            let now = at(base, seconds);
            let Decision::Acquire(record) = decide(Some(&observed), now, ME, &config()) else {
                panic!("expected Acquire at {seconds}s");
            };
            assert_eq!(record.holder_identity.as_deref(), Some(ME));
            assert_eq!(record.lease_transitions, Some(3));
            assert_eq!(
                record.acquire_time,
                Some(now.wall),
                "a new holder's acquireTime is now"
            );
        }
    }

    #[test]
    fn missing_transitions_count_from_zero() {
        let base = Instant::now();
        let observed = seen(held_by(Some(OTHER), None), base);
        let Decision::Acquire(record) = decide(Some(&observed), at(base, 20.0), ME, &config())
        else {
            panic!("expected Acquire");
        };
        assert_eq!(record.lease_transitions, Some(1));
        let observed = seen(held_by(Some(ME), None), base);
        let Decision::Renew(record) = decide(Some(&observed), at(base, 1.0), ME, &config()) else {
            panic!("expected Renew");
        };
        assert_eq!(record.lease_transitions, Some(0));
    }

    #[test]
    fn transitions_saturate_and_negative_counts_are_reset() {
        let base = Instant::now();
        let observed = seen(held_by(None, Some(i32::MAX)), base);
        let Decision::Acquire(record) = decide(Some(&observed), at(base, 0.0), ME, &config())
        else {
            panic!("expected Acquire");
        };
        assert_eq!(record.lease_transitions, Some(i32::MAX));
        let observed = seen(held_by(None, Some(-7)), base);
        let Decision::Acquire(record) = decide(Some(&observed), at(base, 0.0), ME, &config())
        else {
            panic!("expected Acquire");
        };
        assert_eq!(record.lease_transitions, Some(1));
    }

    #[test]
    fn our_own_lease_is_renewed_keeping_acquire_time_and_transitions() {
        let base = Instant::now();
        let observed = seen(held_by(Some(ME), Some(7)), base);
        // Even long after it would have expired for a standby: the conditional write fails if
        // anyone else wrote in between.
        for seconds in [0.5, 14.0, 15.0, 100.0] {
            let now = at(base, seconds);
            let Decision::Renew(record) = decide(Some(&observed), now, ME, &config()) else {
                panic!("expected Renew at {seconds}s");
            };
            assert_eq!(record.holder_identity.as_deref(), Some(ME));
            assert_eq!(record.acquire_time, Some(wall(0)));
            assert_eq!(record.renew_time, Some(now.wall));
            assert_eq!(record.lease_transitions, Some(7));
        }
        // A record without acquireTime gets one.
        let mut record = held_by(Some(ME), Some(1));
        record.acquire_time = None;
        let now = at(base, 2.0);
        let Decision::Renew(renewed) = decide(Some(&seen(record, base)), now, ME, &config()) else {
            panic!("expected Renew");
        };
        assert_eq!(renewed.acquire_time, Some(now.wall));
    }

    #[test]
    fn written_duration_is_our_config_rounded_up() {
        let base = Instant::now();
        let mut c = config();
        c.lease_duration = Duration::from_millis(2500);
        let Decision::Create(record) = decide(None, at(base, 0.0), ME, &c) else {
            panic!("expected Create");
        };
        assert_eq!(record.lease_duration_seconds, Some(3));
    }

    #[test]
    fn expiry_uses_the_holders_declared_duration() {
        let base = Instant::now();
        let mut record = held_by(Some(OTHER), Some(0));
        record.lease_duration_seconds = Some(40);
        let observed = seen(record, base);
        assert!(matches!(
            decide(Some(&observed), at(base, 39.0), ME, &config()),
            Decision::Wait { expires, .. } if expires == base + Duration::from_secs(40)
        ));
        assert!(matches!(
            decide(Some(&observed), at(base, 40.0), ME, &config()),
            Decision::Acquire(_)
        ));
    }

    #[test]
    fn a_missing_or_non_positive_duration_falls_back_to_ours() {
        let base = Instant::now();
        for declared in [None, Some(0), Some(-5)] {
            let mut record = held_by(Some(OTHER), Some(0));
            record.lease_duration_seconds = declared;
            let observed = seen(record, base);
            assert!(
                matches!(
                    decide(Some(&observed), at(base, 14.0), ME, &config()),
                    Decision::Wait { expires, .. } if expires == base + Duration::from_secs(15)
                ),
                "declared {declared:?}"
            );
            assert!(matches!(
                decide(Some(&observed), at(base, 15.0), ME, &config()),
                Decision::Acquire(_)
            ));
        }
    }

    #[test]
    fn renew_time_is_ignored_so_clock_skew_cannot_shorten_a_lease() {
        let base = Instant::now();
        // The holder's clock is an hour behind (or ahead): its renewTime says nothing.
        for renew in [
            SystemTime::UNIX_EPOCH,
            wall(0) - Duration::from_secs(3600),
            wall(0) + Duration::from_secs(3600),
        ] {
            let mut record = held_by(Some(OTHER), Some(0));
            record.renew_time = Some(renew);
            let observed = seen(record, base);
            assert!(matches!(
                decide(Some(&observed), at(base, 1.0), ME, &config()),
                Decision::Wait { .. }
            ));
        }
    }

    #[test]
    fn observation_time_moves_only_when_the_record_or_version_changes() {
        let base = Instant::now();
        let later = base + Duration::from_secs(5);
        let first = Observation::next(None, held_by(Some(OTHER), Some(0)), Some("1".into()), base);
        assert_eq!(first.observed_at, base);
        let same = Observation::next(
            Some(&first),
            held_by(Some(OTHER), Some(0)),
            Some("1".into()),
            later,
        );
        assert_eq!(same.observed_at, base, "an unchanged record keeps its time");
        let mut renewed = held_by(Some(OTHER), Some(0));
        renewed.renew_time = Some(wall(5));
        let changed = Observation::next(Some(&same), renewed, Some("2".into()), later);
        assert_eq!(changed.observed_at, later, "a renewal restarts the clock");
        let relabelled = Observation::next(
            Some(&changed),
            changed.record.clone(),
            Some("3".into()),
            later + Duration::from_secs(1),
        );
        assert_eq!(
            relabelled.observed_at,
            later + Duration::from_secs(1),
            "a new resourceVersion restarts it too"
        );
    }

    #[test]
    fn a_standby_that_keeps_seeing_renewals_never_acquires() {
        let base = Instant::now();
        let mut observed: Option<Observation> = None;
        for step in 0..100u64 {
            let t = base + Duration::from_secs(2 * step);
            let mut record = held_by(Some(OTHER), Some(0));
            record.renew_time = Some(wall(2 * step));
            observed = Some(Observation::next(
                observed.as_ref(),
                record,
                Some(step.to_string()),
                t,
            ));
            let now = Now {
                monotonic: t,
                wall: wall(2 * step),
            };
            assert!(matches!(
                decide(observed.as_ref(), now, ME, &config()),
                Decision::Wait { .. }
            ));
        }
    }

    #[test]
    fn we_lead_until_the_renew_deadline_after_our_last_write_began() {
        let base = Instant::now();
        let rd = Duration::from_secs(10);
        let ours = seen(held_by(Some(ME), Some(0)), base + Duration::from_secs(1));
        let start = Some(base);
        assert_eq!(
            leader_deadline(Some(&ours), ME, start, rd),
            Some(base + Duration::from_secs(10))
        );
        assert!(counts_as_leader(Some(&ours), ME, start, base, rd));
        assert!(counts_as_leader(
            Some(&ours),
            ME,
            start,
            base + Duration::from_millis(9999),
            rd
        ));
        assert!(!counts_as_leader(
            Some(&ours),
            ME,
            start,
            base + Duration::from_secs(10),
            rd
        ));
        assert!(!counts_as_leader(
            Some(&ours),
            ME,
            start,
            base + Duration::from_secs(11),
            rd
        ));
    }

    #[test]
    fn we_do_not_lead_without_a_write_or_when_the_record_names_someone_else() {
        let base = Instant::now();
        let rd = Duration::from_secs(10);
        let ours = seen(held_by(Some(ME), Some(0)), base);
        assert!(
            !counts_as_leader(Some(&ours), ME, None, base, rd),
            "a record naming us from before a restart is not leadership until we renew it"
        );
        let theirs = seen(held_by(Some(OTHER), Some(0)), base);
        assert!(!counts_as_leader(Some(&theirs), ME, Some(base), base, rd));
        let free = seen(held_by(None, Some(0)), base);
        assert!(!counts_as_leader(Some(&free), ME, Some(base), base, rd));
        assert!(!counts_as_leader(None, ME, Some(base), base, rd));
    }

    #[test]
    fn release_clears_the_holder_only_when_it_is_us() {
        let record = held_by(Some(ME), Some(3));
        let released = release(&record, ME, wall(9)).unwrap();
        assert_eq!(
            released,
            LeaseRecord {
                holder_identity: None,
                lease_duration_seconds: Some(1),
                acquire_time: Some(wall(9)),
                renew_time: Some(wall(9)),
                lease_transitions: Some(3),
            }
        );
        assert_eq!(release(&held_by(Some(OTHER), Some(3)), ME, wall(9)), None);
        assert_eq!(release(&held_by(None, Some(3)), ME, wall(9)), None);
        assert_eq!(release(&held_by(Some(""), Some(3)), "", wall(9)), None);
    }

    #[test]
    fn a_released_lease_is_acquired_at_once_by_a_standby() {
        let base = Instant::now();
        let released = release(&held_by(Some(OTHER), Some(3)), OTHER, wall(1)).unwrap();
        let observed = seen(released, base);
        let Decision::Acquire(record) = decide(Some(&observed), at(base, 0.0), ME, &config())
        else {
            panic!("expected Acquire");
        };
        assert_eq!(record.lease_transitions, Some(4));
    }

    // ---- a model of several electors sharing one Lease ----

    /// One linearizable Lease with resourceVersions, as the API server keeps it.
    #[derive(Debug, Default)]
    struct Store {
        record: Option<LeaseRecord>,
        version: u64,
    }

    #[derive(Debug)]
    struct Write {
        record: LeaseRecord,
        /// The version the write is conditional on (`None`: a create).
        expects: Option<u64>,
        started: Instant,
        /// Set once the server has applied (or refused) it.
        outcome: Option<Result<u64, ()>>,
    }

    #[derive(Debug, Default)]
    struct Elector {
        observed: Option<Observation>,
        last_write_started: Option<Instant>,
        in_flight: Option<Write>,
        /// Writes the elector gave up on that the server may still apply.
        abandoned: Vec<Write>,
    }

    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// Let time pass (milliseconds).
        Advance(u64),
        /// Elector reads the Lease.
        Read(usize),
        /// Elector decides on what it last read and sends the write, if any.
        Send(usize),
        /// The server applies the elector's in-flight (else oldest abandoned) write, or refuses
        /// it on a stale resourceVersion.
        Apply(usize),
        /// The elector gets its answer; with `lost` it sees only an error. An answer before the
        /// server acted is a timeout: the write is abandoned but may still be applied.
        Answer(usize, bool),
    }

    /// Several electors, one store, one monotonic clock.
    struct Model {
        config: LeaderElectionConfig,
        clock: Instant,
        store: Store,
        electors: Vec<Elector>,
    }

    impl Model {
        fn new(config: LeaderElectionConfig, electors: usize) -> Self {
            Self {
                config,
                clock: Instant::now(),
                store: Store::default(),
                electors: (0..electors).map(|_| Elector::default()).collect(),
            }
        }

        fn identity(e: usize) -> String {
            format!("elector-{e}")
        }

        /// Runs one step; returns the decision when the step was a `Send`.
        fn run(&mut self, step: Step) -> Option<Decision> {
            let clock = self.clock;
            match step {
                Step::Advance(ms) => self.clock += Duration::from_millis(ms),
                Step::Read(e) => {
                    let elector = &mut self.electors[e];
                    elector.observed = self.store.record.clone().map(|record| {
                        Observation::next(
                            elector.observed.as_ref(),
                            record,
                            Some(self.store.version.to_string()),
                            clock,
                        )
                    });
                }
                Step::Send(e) => {
                    let elector = &mut self.electors[e];
                    if elector.in_flight.is_some() {
                        return None;
                    }
                    let now = Now {
                        monotonic: clock,
                        wall: SystemTime::UNIX_EPOCH,
                    };
                    let expects = elector
                        .observed
                        .as_ref()
                        .and_then(|o| o.version.as_deref())
                        .and_then(|v| v.parse().ok());
                    let decision = decide(
                        elector.observed.as_ref(),
                        now,
                        &Self::identity(e),
                        &self.config,
                    );
                    if let Decision::Create(record)
                    | Decision::Acquire(record)
                    | Decision::Renew(record) = &decision
                    {
                        elector.in_flight = Some(Write {
                            record: record.clone(),
                            expects,
                            started: clock,
                            outcome: None,
                        });
                    }
                    return Some(decision);
                }
                Step::Apply(e) => {
                    let elector = &mut self.electors[e];
                    let write = match elector.in_flight.as_mut().filter(|w| w.outcome.is_none()) {
                        Some(write) => Some(write),
                        None => elector.abandoned.iter_mut().find(|w| w.outcome.is_none()),
                    };
                    if let Some(write) = write {
                        let current = self.store.record.as_ref().map(|_| self.store.version);
                        if current == write.expects {
                            self.store.version += 1;
                            self.store.record = Some(write.record.clone());
                            write.outcome = Some(Ok(self.store.version));
                        } else {
                            write.outcome = Some(Err(()));
                        }
                    }
                }
                Step::Answer(e, lost) => {
                    let elector = &mut self.electors[e];
                    let write = elector.in_flight.take()?;
                    match write.outcome {
                        None => elector.abandoned.push(write),
                        Some(Ok(version)) if !lost => {
                            elector.observed = Some(Observation {
                                record: write.record,
                                version: Some(version.to_string()),
                                observed_at: clock,
                            });
                            elector.last_write_started = Some(write.started);
                        }
                        Some(_) => {}
                    }
                }
            }
            None
        }

        fn leaders(&self) -> Vec<usize> {
            (0..self.electors.len())
                .filter(|&e| {
                    counts_as_leader(
                        self.electors[e].observed.as_ref(),
                        &Self::identity(e),
                        self.electors[e].last_write_started,
                        self.clock,
                        self.config.renew_deadline,
                    )
                })
                .collect()
        }

        /// A full read-decide-write round trip with an immediate, delivered answer.
        fn round(&mut self, e: usize) -> Option<Decision> {
            self.run(Step::Read(e));
            let decision = self.run(Step::Send(e));
            self.run(Step::Apply(e));
            self.run(Step::Answer(e, false));
            decision
        }
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (1u64..3000).prop_map(Step::Advance),
            (0usize..3).prop_map(Step::Read),
            (0usize..3).prop_map(Step::Send),
            (0usize..3).prop_map(Step::Apply),
            (0usize..3, any::<bool>()).prop_map(|(e, lost)| Step::Answer(e, lost)),
        ]
    }

    fn short_config() -> LeaderElectionConfig {
        let mut c = config();
        c.lease_duration = Duration::from_secs(2);
        c.renew_deadline = Duration::from_millis(1500);
        c.retry_period = Duration::from_millis(200);
        c
    }

    #[test]
    fn model_one_leader_then_takeover_after_the_lease_runs_out() {
        let mut m = Model::new(short_config(), 2);
        assert!(matches!(m.round(0), Some(Decision::Create(_))));
        assert_eq!(m.leaders(), vec![0]);
        assert!(matches!(m.round(1), Some(Decision::Wait { .. })));
        // Elector 0 renews every 200ms: elector 1 keeps waiting.
        for _ in 0..20 {
            m.run(Step::Advance(200));
            assert!(matches!(m.round(0), Some(Decision::Renew(_))));
            assert!(matches!(m.round(1), Some(Decision::Wait { .. })));
            assert_eq!(m.leaders(), vec![0]);
        }
        // Elector 0 stops (killed). It stops counting at 1.5s, elector 1 takes over at 2s.
        m.run(Step::Advance(1499));
        assert_eq!(m.leaders(), vec![0]);
        m.run(Step::Advance(1));
        assert_eq!(m.leaders(), Vec::<usize>::new());
        assert!(matches!(m.round(1), Some(Decision::Wait { .. })));
        m.run(Step::Advance(500));
        let Some(Decision::Acquire(record)) = m.round(1) else {
            panic!("expected elector 1 to acquire");
        };
        assert_eq!(record.lease_transitions, Some(1));
        assert_eq!(m.leaders(), vec![1]);
        // Elector 0 comes back: its stale renewal is refused, and it sees the new holder.
        assert!(matches!(m.round(0), Some(Decision::Wait { .. })));
        assert_eq!(m.leaders(), vec![1]);
    }

    #[test]
    fn model_stale_conditional_writes_are_refused() {
        let mut m = Model::new(short_config(), 2);
        m.round(0);
        // Elector 1 read the lease long ago and decides only after it looks expired, but
        // elector 0 renewed meanwhile: the acquisition is conditional on the old version.
        m.run(Step::Read(1));
        m.run(Step::Advance(200));
        m.round(0);
        m.run(Step::Advance(2000));
        assert!(matches!(m.run(Step::Send(1)), Some(Decision::Acquire(_))));
        m.run(Step::Apply(1));
        m.run(Step::Answer(1, false));
        assert_eq!(
            m.store.record.as_ref().and_then(LeaseRecord::holder),
            Some("elector-0")
        );
        assert!(
            m.leaders().is_empty(),
            "elector 0 is past its renew deadline"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// However reads, writes, server delays, timeouts and lost answers interleave, at no
        /// moment do two electors count as leader, and whoever counts as leader is the holder
        /// the store names.
        #[test]
        fn never_two_leaders(
            steps in proptest::collection::vec(step(), 1..300),
            lease_ms in 1000u64..20_000,
            deadline_fraction in 0.1f64..0.95,
        ) {
            let mut config = config();
            config.lease_duration = Duration::from_millis(lease_ms);
            config.renew_deadline =
                Duration::from_millis(((lease_ms as f64) * deadline_fraction) as u64);
            config.retry_period = config.renew_deadline / 4;
            prop_assume!(config.validate().is_ok());
            let mut m = Model::new(config, 3);
            for step in steps {
                if let Some(Decision::Wait { expires, .. }) = m.run(step) {
                    prop_assert!(m.clock < expires);
                }
                let leaders = m.leaders();
                prop_assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
                for &e in &leaders {
                    prop_assert!(m
                        .store
                        .record
                        .as_ref()
                        .is_some_and(|r| r.is_held_by(&Model::identity(e))));
                }
            }
        }

        /// An elector that sees the holder's record keep changing waits; one that sees it frozen
        /// for a whole lease duration acquires, with exactly one more transition.
        #[test]
        fn frozen_records_expire_after_exactly_the_lease_duration(
            elapsed_ms in 0u64..40_000,
            declared in 1i32..30,
            transitions in 0i32..1000,
        ) {
            let base = Instant::now();
            let mut record = held_by(Some(OTHER), Some(transitions));
            record.lease_duration_seconds = Some(declared);
            let observed = seen(record, base);
            let now = Now { monotonic: base + Duration::from_millis(elapsed_ms), wall: wall(0) };
            match decide(Some(&observed), now, ME, &config()) {
                Decision::Wait { holder, expires } => {
                    prop_assert!(elapsed_ms < declared as u64 * 1000);
                    prop_assert_eq!(holder, OTHER);
                    prop_assert_eq!(expires, base + Duration::from_secs(declared as u64));
                }
                Decision::Acquire(r) => {
                    prop_assert!(elapsed_ms >= declared as u64 * 1000);
                    prop_assert_eq!(r.lease_transitions, Some(transitions + 1));
                    prop_assert_eq!(r.holder_identity.as_deref(), Some(ME));
                }
                other => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
