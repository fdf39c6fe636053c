//! The leader-election settings and their validation (pure: no clock, no kube client).

use std::time::Duration;

use crate::Error;

/// client-go's default lease duration: how long a standby waits after it last saw the Lease
/// change before it may take it over.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// client-go's default renew deadline: how long the leader keeps counting as leader after its
/// last successful renewal began.
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// client-go's default retry period: how often every elector tries to acquire or renew.
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Where and how to elect a leader.
///
/// Invariants (checked by [`LeaderElectionConfig::validate`]):
/// `0 < retry_period < renew_deadline < lease_duration`. The gap between `renew_deadline` and
/// `lease_duration` is the safety margin: a leader that cannot renew stops counting as leader
/// that long before any standby may take the Lease over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This process's identity, written to `spec.holderIdentity`. Must be unique per process
    /// (e.g. the Pod name): two processes with one identity would both believe they lead.
    pub identity: String,
    /// How long a standby waits, after it last saw the Lease record change, before taking it
    /// over. Written to `spec.leaseDurationSeconds`, rounded up to whole seconds.
    pub lease_duration: Duration,
    /// How long the leader counts as leader after the start of its last successful
    /// acquisition or renewal.
    pub renew_deadline: Duration,
    /// How often electors try to acquire or renew.
    pub retry_period: Duration,
}

impl LeaderElectionConfig {
    /// A configuration with client-go's default timings (15s / 10s / 2s).
    pub fn new(
        namespace: impl Into<String>,
        lease_name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            lease_name: lease_name.into(),
            identity: identity.into(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
        }
    }

    /// `namespace/name` of the Lease, as logs and errors show it.
    pub fn lease_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.lease_name)
    }

    /// `spec.leaseDurationSeconds` for records we write: `lease_duration` rounded up to whole
    /// seconds (rounding down could promise standbys a shorter lease than the leader assumes),
    /// capped at `i32::MAX`.
    pub fn lease_duration_seconds(&self) -> i32 {
        let mut seconds = self.lease_duration.as_secs();
        if self.lease_duration.subsec_nanos() > 0 {
            seconds = seconds.saturating_add(1);
        }
        i32::try_from(seconds).unwrap_or(i32::MAX)
    }

    /// Checks the names and the timing invariants.
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |detail: String| {
            Err(Error::LeaderElection {
                lease: self.lease_ref(),
                detail,
            })
        };
        if self.namespace.is_empty() {
            return fail(
                "the Lease namespace is empty; set --leader-election-namespace or --namespace"
                    .into(),
            );
        }
        if self.lease_name.is_empty() {
            return fail("the Lease name is empty; set --leader-election-lease".into());
        }
        if self.identity.is_empty() {
            return fail(
                "the elector identity is empty; give each replica a unique identity such as its Pod name"
                    .into(),
            );
        }
        for (name, value) in [
            ("lease duration", self.lease_duration),
            ("renew deadline", self.renew_deadline),
            ("retry period", self.retry_period),
        ] {
            if value.is_zero() {
                return fail(format!("the {name} must be greater than zero"));
            }
        }
        if self.renew_deadline >= self.lease_duration {
            return fail(format!(
                "the renew deadline ({:?}) must be shorter than the lease duration ({:?}), or a leader that cannot renew could still act after a standby took over; e.g. 10s and 15s",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return fail(format!(
                "the retry period ({:?}) must be shorter than the renew deadline ({:?}), or the leader gets no second attempt to renew; e.g. 2s and 10s",
                self.retry_period, self.renew_deadline
            ));
        }
        if self.lease_duration.as_secs() >= i32::MAX as u64 {
            return fail(format!(
                "the lease duration ({:?}) does not fit in spec.leaseDurationSeconds",
                self.lease_duration
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LeaderElectionConfig {
        LeaderElectionConfig::new("relay-tls", "relay-issuer-leader", "pod-a")
    }

    fn detail(config: &LeaderElectionConfig) -> String {
        match config.validate() {
            Err(Error::LeaderElection { lease, detail }) => {
                assert_eq!(lease, config.lease_ref());
                detail
            }
            other => panic!("expected a LeaderElection error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_client_go_defaults_and_valid() {
        let c = config();
        assert_eq!(c.lease_duration, Duration::from_secs(15));
        assert_eq!(c.renew_deadline, Duration::from_secs(10));
        assert_eq!(c.retry_period, Duration::from_secs(2));
        assert_eq!(c.lease_ref(), "relay-tls/relay-issuer-leader");
        c.validate().unwrap();
    }

    #[test]
    fn renew_deadline_must_be_shorter_than_the_lease() {
        let mut c = config();
        c.renew_deadline = c.lease_duration;
        let d = detail(&c);
        assert!(d.contains("renew deadline") && d.contains("shorter than the lease duration"));
        c.renew_deadline = c.lease_duration + Duration::from_secs(1);
        assert!(detail(&c).contains("renew deadline"));
    }

    #[test]
    fn retry_period_must_be_shorter_than_the_renew_deadline() {
        let mut c = config();
        c.retry_period = c.renew_deadline;
        let d = detail(&c);
        assert!(d.contains("retry period") && d.contains("shorter than the renew deadline"));
    }

    #[test]
    fn zero_durations_are_refused_by_name() {
        for (field, expected) in [
            (0, "lease duration"),
            (1, "renew deadline"),
            (2, "retry period"),
        ] {
            let mut c = config();
            match field {
                0 => c.lease_duration = Duration::ZERO,
                1 => c.renew_deadline = Duration::ZERO,
                _ => c.retry_period = Duration::ZERO,
            }
            let d = detail(&c);
            assert!(
                d.contains(expected) && d.contains("greater than zero"),
                "{d}"
            );
        }
    }

    #[test]
    fn empty_names_are_refused() {
        let mut c = config();
        c.namespace.clear();
        assert!(detail(&c).contains("namespace is empty"));
        let mut c = config();
        c.lease_name.clear();
        assert!(detail(&c).contains("Lease name is empty"));
        let mut c = config();
        c.identity.clear();
        assert!(detail(&c).contains("identity is empty"));
    }

    #[test]
    fn error_message_names_the_lease() {
        let mut c = config();
        c.retry_period = Duration::from_secs(30);
        let message = c.validate().unwrap_err().to_string();
        assert!(
            message.starts_with("leader election on Lease relay-tls/relay-issuer-leader failed"),
            "{message}"
        );
    }

    #[test]
    fn lease_duration_seconds_rounds_up() {
        let mut c = config();
        assert_eq!(c.lease_duration_seconds(), 15);
        c.lease_duration = Duration::from_millis(1500);
        assert_eq!(c.lease_duration_seconds(), 2);
        c.lease_duration = Duration::from_millis(500);
        assert_eq!(c.lease_duration_seconds(), 1);
        c.lease_duration = Duration::from_secs(u64::MAX);
        assert_eq!(c.lease_duration_seconds(), i32::MAX);
        assert!(detail(&c).contains("does not fit"));
    }

    #[test]
    fn short_test_timings_are_valid() {
        let mut c = config();
        c.lease_duration = Duration::from_secs(2);
        c.renew_deadline = Duration::from_millis(1500);
        c.retry_period = Duration::from_millis(200);
        c.validate().unwrap();
    }
}
