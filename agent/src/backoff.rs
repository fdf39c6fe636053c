//! Reconnect backoff: jittered exponential delays that start over only after a connection stayed
//! up for a stable period.
//!
//! Pure arithmetic: the clock and the random number are passed in, so every rule is tested
//! without sleeping. [`Backoff`] is what the gRPC client keeps; [`delay`] and [`resets`] are the
//! two rules it applies.

use std::time::{Duration, Instant};

/// How reconnect delays grow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// The nominal delay before the first retry.
    pub base: Duration,
    /// No delay is longer than this.
    pub max: Duration,
    /// Fraction (0..=1) of each nominal delay that is randomised away: a delay lies in
    /// `((1 - jitter) × nominal, nominal]`, so agents that lost the server together do not
    /// come back together.
    pub jitter: f64,
    /// A connection must stay up this long before the delays start over from `base`; one that
    /// drops sooner (e.g. a server refusing the certificate right after the handshake) keeps
    /// growing the delay.
    pub stable_after: Duration,
}

impl Default for BackoffPolicy {
    /// 1s doubling to 30s, half of each delay jittered, stable after 30s.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
            jitter: 0.5,
            stable_after: Duration::from_secs(30),
        }
    }
}

impl BackoffPolicy {
    /// Checks the values (flags and code alike): base positive and at most max, jitter in
    /// `[0, 1]`.
    pub fn validate(&self) -> Result<(), crate::Error> {
        if self.base.is_zero() || self.base > self.max {
            return Err(crate::Error::InvalidArgument(format!(
                "the reconnect backoff must start above zero and at most at its maximum (got base {:?}, max {:?}); e.g. --reconnect-backoff 1s --reconnect-backoff-max 30s",
                self.base, self.max
            )));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(crate::Error::InvalidArgument(format!(
                "the reconnect jitter must be between 0 and 1 (got {})",
                self.jitter
            )));
        }
        Ok(())
    }
}

/// The delay before retry number `attempt` (0 = the first retry): `base × 2^attempt`, capped
/// at `max`, minus up to `jitter` of it. `unit` is a random number in `[0, 1)`; values outside
/// are clamped.
pub fn delay(policy: &BackoffPolicy, attempt: u32, unit: f64) -> Duration {
    let nominal = policy
        .base
        .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(policy.max)
        .min(policy.max);
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let jitter = policy.jitter.clamp(0.0, 1.0);
    nominal.mul_f64(1.0 - jitter * unit)
}

/// Whether a connection that stayed up for `connected_for` resets the delays to `base`.
pub fn resets(policy: &BackoffPolicy, connected_for: Duration) -> bool {
    connected_for >= policy.stable_after
}

/// The retry state of one client.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
    connected_at: Option<Instant>,
}

impl Backoff {
    /// A fresh state: the next delay is about `base`.
    pub fn new(policy: BackoffPolicy) -> Self {
        Self {
            policy,
            attempt: 0,
            connected_at: None,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }

    /// Records that a connection came up at `now`.
    pub fn connected(&mut self, now: Instant) {
        self.connected_at = Some(now);
    }

    /// Records that the connection went down at `now`: the delays start over when it had been
    /// up for the stable period, else they keep growing.
    pub fn disconnected(&mut self, now: Instant) {
        if let Some(since) = self.connected_at.take()
            && resets(&self.policy, now.saturating_duration_since(since))
        {
            self.attempt = 0;
        }
    }

    /// Whether a connection that came up is still within its stable period at `now`.
    pub fn is_stable(&self, now: Instant) -> bool {
        self.connected_at
            .is_some_and(|since| resets(&self.policy, now.saturating_duration_since(since)))
    }

    /// The delay before the next attempt (with `unit` in `[0, 1)` as the random draw); each
    /// call moves one step further.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let delay = delay(&self.policy, self.attempt, unit);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// How many delays were handed out since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// A random number in `[0, 1)` from the operating system (for jitter; not for keys).
pub fn random_unit() -> f64 {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 8];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.5;
    }
    // 53 random bits make every double in [0, 1) on the 2^-53 grid equally likely.
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn policy(base: u64, max: u64, jitter: f64, stable: u64) -> BackoffPolicy {
        BackoffPolicy {
            base: ms(base),
            max: ms(max),
            jitter,
            stable_after: ms(stable),
        }
    }

    #[test]
    fn without_jitter_delays_double_up_to_the_maximum() {
        let p = policy(100, 1000, 0.0, 30_000);
        let delays: Vec<_> = (0..8).map(|a| delay(&p, a, 0.7)).collect();
        assert_eq!(
            delays,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1000),
                ms(1000),
                ms(1000),
                ms(1000)
            ]
        );
        // Huge attempt numbers neither overflow nor leave the cap.
        assert_eq!(delay(&p, u32::MAX, 0.0), ms(1000));
    }

    #[test]
    fn jitter_takes_off_up_to_its_fraction() {
        let p = policy(1000, 1000, 0.5, 30_000);
        assert_eq!(delay(&p, 0, 0.0), ms(1000));
        assert_eq!(delay(&p, 0, 0.5), ms(750));
        assert_eq!(delay(&p, 0, 1.0), ms(500));
        // Nonsense draws are clamped, never panic.
        assert_eq!(delay(&p, 0, -3.0), ms(1000));
        assert_eq!(delay(&p, 0, f64::NAN), ms(1000));
    }

    #[test]
    fn defaults_are_valid_and_bad_policies_are_refused() {
        assert!(BackoffPolicy::default().validate().is_ok());
        assert!(policy(0, 10, 0.1, 1).validate().is_err());
        assert!(policy(20, 10, 0.1, 1).validate().is_err());
        assert!(policy(1, 10, 1.5, 1).validate().is_err());
        let message = policy(1, 10, -0.1, 1).validate().unwrap_err().to_string();
        assert!(message.contains("between 0 and 1"), "{message}");
    }

    #[test]
    fn a_short_connection_keeps_growing_the_delay() {
        let t0 = Instant::now();
        let mut b = Backoff::new(policy(100, 10_000, 0.0, 30_000));
        assert_eq!(b.next_delay(0.0), ms(100));
        assert_eq!(b.next_delay(0.0), ms(200));
        b.connected(t0);
        assert!(!b.is_stable(t0 + ms(29_999)));
        b.disconnected(t0 + ms(29_999));
        assert_eq!(b.next_delay(0.0), ms(400));
    }

    #[test]
    fn a_stable_connection_starts_the_delays_over() {
        let t0 = Instant::now();
        let mut b = Backoff::new(policy(100, 10_000, 0.0, 30_000));
        for _ in 0..5 {
            b.next_delay(0.0);
        }
        b.connected(t0);
        assert!(b.is_stable(t0 + ms(30_000)));
        b.disconnected(t0 + ms(30_000));
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay(0.0), ms(100));
        // A disconnect without a connection (a failed attempt) changes nothing.
        b.disconnected(t0 + ms(90_000));
        assert_eq!(b.next_delay(0.0), ms(200));
    }

    #[test]
    fn random_units_are_in_range() {
        for _ in 0..1000 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u), "{u}");
        }
    }

    proptest! {
        #[test]
        fn every_delay_is_within_bounds(
            base in 1u64..5_000,
            extra in 0u64..100_000,
            jitter in 0.0f64..=1.0,
            attempt in 0u32..200,
            unit in 0.0f64..1.0,
        ) {
            let p = policy(base, base + extra, jitter, 1);
            let d = delay(&p, attempt, unit);
            let nominal = ms(base)
                .saturating_mul(2u32.saturating_pow(attempt.min(40)))
                .min(p.max);
            prop_assert!(d <= p.max);
            prop_assert!(d <= nominal);
            // Within the jitter range: above (1 - jitter) × nominal (1 ns of rounding allowed).
            prop_assert!(d.as_secs_f64() + 1e-9 >= nominal.as_secs_f64() * (1.0 - jitter));
        }

        #[test]
        fn nominal_delays_never_shrink_until_reset(
            base in 1u64..1_000,
            extra in 0u64..60_000,
            steps in 1usize..60,
        ) {
            let mut b = Backoff::new(policy(base, base + extra, 0.0, 1_000));
            let mut previous = Duration::ZERO;
            for _ in 0..steps {
                let d = b.next_delay(0.0);
                prop_assert!(d >= previous);
                prop_assert!(d >= ms(base));
                previous = d;
            }
        }

        #[test]
        fn reset_happens_exactly_at_the_stable_period(
            stable in 1u64..100_000,
            up in 0u64..200_000,
            failures in 1u32..20,
        ) {
            let t0 = Instant::now();
            let mut b = Backoff::new(policy(10, 1_000_000, 0.0, stable));
            for _ in 0..failures {
                b.next_delay(0.0);
            }
            b.connected(t0);
            b.disconnected(t0 + ms(up));
            if up >= stable {
                prop_assert_eq!(b.attempt(), 0);
            } else {
                prop_assert_eq!(b.attempt(), failures);
            }
        }
    }
}
