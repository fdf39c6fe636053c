//! Bootstrap-token authentication for `SignCertificate`: parsing `authorization: Bearer …`,
//! comparing tokens in constant time, and limiting failed attempts per caller address.
//!
//! Plain functions and a clock-injected limiter; no gRPC or Kubernetes types. The service glue
//! (`service`) decides when to call them and which status to answer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

/// Why a bootstrap token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    /// No `authorization` metadata (and no client certificate).
    Missing,
    /// `authorization` is not `Bearer <token>`.
    Malformed,
    /// The server has no token configured (`relay-identity-token-secret` absent or empty).
    NotConfigured,
    /// The token differs from the configured one.
    Wrong,
}

impl TokenProblem {
    /// Label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            TokenProblem::Missing => "token_missing",
            TokenProblem::Malformed => "token_malformed",
            TokenProblem::NotConfigured => "token_not_configured",
            TokenProblem::Wrong => "token_wrong",
        }
    }
}

/// The token in an `authorization` header value: `Bearer <token>` (scheme case-insensitive).
pub fn bearer_token(header: Option<&str>) -> Result<&str, TokenProblem> {
    let value = header.ok_or(TokenProblem::Missing)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(TokenProblem::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(TokenProblem::Malformed);
    }
    Ok(token)
}

/// Compares a presented token with the configured one in time independent of where they
/// differ and of their lengths (both are hashed first, then compared in constant time).
pub fn check_token(presented: &str, configured: Option<&[u8]>) -> Result<(), TokenProblem> {
    let configured = configured
        .map(trim_ascii_whitespace)
        .filter(|c| !c.is_empty())
        .ok_or(TokenProblem::NotConfigured)?;
    let a = ring::digest::digest(&ring::digest::SHA256, presented.as_bytes());
    let b = ring::digest::digest(&ring::digest::SHA256, configured);
    if bool::from(a.as_ref().ct_eq(b.as_ref())) {
        Ok(())
    } else {
        Err(TokenProblem::Wrong)
    }
}

/// Secrets written with `echo` often end in a newline; it is not part of the token.
fn trim_ascii_whitespace(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// Limits failed token attempts per caller address: each address may fail `burst` times, and
/// regains one attempt every `refill`. A caller with no attempts left is refused before its
/// token is even compared, until it regains one. At most 10,000 addresses are kept:
/// beyond that, recovered ones are forgotten first, then the one closest to recovery.
///
/// Why not `governor`'s keyed limiter (which the Kubernetes client's limit uses): this one must
/// answer "may this address try?" without spending anything, and spend only when the comparison
/// fails. `governor` spends a cell on every positive check and has no way to look without
/// spending. Spending per attempt would count an agent's successful bootstrap against its
/// address (a behaviour change for agents sharing an egress address); spending after the
/// comparison would let a caller go on comparing tokens once its budget is gone, which is what
/// the limiter is for. The arithmetic here is the same token bucket, kept as plain functions of
/// the time passed in, with its own property test.
#[derive(Debug)]
pub struct FailureLimiter {
    burst: u32,
    refill: Duration,
    buckets: HashMap<IpAddr, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Attempts left as of `at`.
    left: f64,
    at: Instant,
}

/// Most addresses tracked at once; beyond it, full buckets are forgotten first.
const MAX_TRACKED: usize = 10_000;

impl FailureLimiter {
    /// A limiter allowing `burst` failures per address, regaining one per `refill`.
    pub fn new(burst: u32, refill: Duration) -> Self {
        Self {
            burst: burst.max(1),
            refill: refill.max(Duration::from_millis(1)),
            buckets: HashMap::new(),
        }
    }

    fn left(&self, bucket: Bucket, now: Instant) -> f64 {
        let regained =
            now.saturating_duration_since(bucket.at).as_secs_f64() / self.refill.as_secs_f64();
        (bucket.left + regained).min(f64::from(self.burst))
    }

    /// `Ok` when `address` may try a token now; otherwise how long until it may.
    pub fn check(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.buckets.get(&address) {
            None => Ok(()),
            Some(bucket) => {
                let left = self.left(*bucket, now);
                if left >= 1.0 {
                    Ok(())
                } else {
                    Err(self.refill.mul_f64(1.0 - left))
                }
            }
        }
    }

    /// Records a failed attempt from `address`.
    pub fn record_failure(&mut self, address: IpAddr, now: Instant) {
        if self.buckets.len() >= MAX_TRACKED && !self.buckets.contains_key(&address) {
            self.forget_recovered(now);
            if self.buckets.len() >= MAX_TRACKED {
                self.forget_closest_to_recovery(now);
            }
        }
        let burst = f64::from(self.burst);
        let left = match self.buckets.get(&address) {
            Some(bucket) => self.left(*bucket, now),
            None => burst,
        };
        self.buckets.insert(
            address,
            Bucket {
                left: (left - 1.0).max(0.0),
                at: now,
            },
        );
    }

    /// Forgets addresses that have regained every attempt.
    fn forget_recovered(&mut self, now: Instant) {
        let burst = f64::from(self.burst);
        let refill = self.refill.as_secs_f64();
        self.buckets.retain(|_, bucket| {
            bucket.left + now.saturating_duration_since(bucket.at).as_secs_f64() / refill < burst
        });
    }

    /// Forgets the address with the most attempts left (the table stays bounded when every
    /// tracked address is still limited).
    fn forget_closest_to_recovery(&mut self, now: Instant) {
        let closest = self
            .buckets
            .iter()
            .max_by(|a, b| self.left(*a.1, now).total_cmp(&self.left(*b.1, now)))
            .map(|(address, _)| *address);
        if let Some(address) = closest {
            self.buckets.remove(&address);
        }
    }

    /// How many addresses are tracked (for tests).
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bearer_tokens_are_parsed() {
        assert_eq!(bearer_token(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer_token(None), Err(TokenProblem::Missing));
        assert_eq!(bearer_token(Some("abc")), Err(TokenProblem::Malformed));
        assert_eq!(
            bearer_token(Some("Basic abc")),
            Err(TokenProblem::Malformed)
        );
        assert_eq!(bearer_token(Some("Bearer ")), Err(TokenProblem::Malformed));
    }

    #[test]
    fn tokens_are_compared_exactly_ignoring_a_trailing_newline_in_the_secret() {
        assert_eq!(check_token("s3cret", Some(b"s3cret")), Ok(()));
        assert_eq!(check_token("s3cret", Some(b"s3cret\n")), Ok(()));
        assert_eq!(
            check_token("s3cre", Some(b"s3cret")),
            Err(TokenProblem::Wrong)
        );
        assert_eq!(
            check_token("s3cret!", Some(b"s3cret")),
            Err(TokenProblem::Wrong)
        );
        assert_eq!(check_token("x", None), Err(TokenProblem::NotConfigured));
        assert_eq!(
            check_token("x", Some(b" \n")),
            Err(TokenProblem::NotConfigured)
        );
    }

    #[test]
    fn a_caller_is_limited_after_its_burst_and_regains_attempts() {
        let t0 = Instant::now();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let mut limiter = FailureLimiter::new(3, Duration::from_secs(10));
        for _ in 0..3 {
            assert!(limiter.check(ip, t0).is_ok());
            limiter.record_failure(ip, t0);
        }
        let wait = limiter.check(ip, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10));
        assert!(
            limiter.check(other, t0).is_ok(),
            "other callers are not limited"
        );
        let later = t0 + Duration::from_secs(5);
        assert_eq!(
            limiter.check(ip, later).unwrap_err(),
            Duration::from_secs(5)
        );
        assert!(limiter.check(ip, t0 + Duration::from_secs(10)).is_ok());
        assert!(limiter.check(ip, t0 + Duration::from_secs(25)).is_ok());
    }

    #[test]
    fn recovered_callers_are_forgotten_when_the_table_is_full() {
        let t0 = Instant::now();
        let mut limiter = FailureLimiter::new(2, Duration::from_secs(1));
        for i in 0..MAX_TRACKED as u32 {
            limiter.record_failure(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert_eq!(limiter.tracked(), MAX_TRACKED);
        limiter.record_failure("192.168.0.1".parse().unwrap(), t0 + Duration::from_secs(5));
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn the_table_stays_bounded_when_every_caller_is_still_limited() {
        let t0 = Instant::now();
        let mut limiter = FailureLimiter::new(1, Duration::from_secs(3600));
        for i in 0..MAX_TRACKED as u32 {
            limiter.record_failure(IpAddr::from(i.to_be_bytes()), t0);
        }
        // None has recovered: one of them is forgotten for the newcomer, which is limited.
        let newcomer = IpAddr::from(u32::MAX.to_be_bytes());
        let later = t0 + Duration::from_secs(1);
        limiter.record_failure(newcomer, later);
        assert_eq!(limiter.tracked(), MAX_TRACKED);
        assert!(limiter.check(newcomer, later).is_err());
    }

    proptest! {
        #[test]
        fn never_more_than_burst_plus_regained_failures(
            burst in 1u32..10,
            refill_ms in 1u64..1000,
            steps in proptest::collection::vec(0u64..500, 1..200),
        ) {
            let t0 = Instant::now();
            let ip: IpAddr = "10.1.1.1".parse().unwrap();
            let mut limiter = FailureLimiter::new(burst, Duration::from_millis(refill_ms));
            let mut now = t0;
            let mut allowed = 0u64;
            for step in steps {
                now += Duration::from_millis(step);
                if limiter.check(ip, now).is_ok() {
                    allowed += 1;
                    limiter.record_failure(ip, now);
                }
            }
            let elapsed = now.duration_since(t0).as_millis() as u64;
            prop_assert!(allowed <= u64::from(burst) + elapsed / refill_ms + 1);
        }
    }
}
