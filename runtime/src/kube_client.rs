//! Building the Kubernetes client, with client-side rate limits (`--kube-api-qps`,
//! `--kube-api-burst`).
//!
//! - [`ClientOptions`]: the command-line flags.
//! - [`TokenBucket`]: the limit itself, pure arithmetic with the clock passed in.
//! - [`RateLimitLayer`] / [`RateLimit`]: a tower middleware that waits for a token in
//!   `poll_ready`. kube wraps its service stack in a tower `Buffer`, whose one worker calls
//!   `poll_ready` before each request in the order the requests were made, so waiting there
//!   delays requests first come, first served, without holding up the callers' tasks.
//! - [`client`] and [`client_from_config`]: a `kube::Client` with the layer in its stack.
//!
//! What does not live here: what the client is used for (controller, leader election), and the
//! API server's own limits (API Priority and Fairness), which apply on top of these.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::Error;

/// Default `--kube-api-qps`.
pub const DEFAULT_QPS: f64 = 1000.0;
/// Default `--kube-api-burst`.
pub const DEFAULT_BURST: u32 = 2000;

/// How the Kubernetes client limits its own request rate.
///
/// The defaults (1000 QPS, burst 2000) are sized so that a burst of 10,000 API requests, e.g.
/// from 10,000 CertificateRequests created at once, is not held back by this client: 2,000 go
/// at once and the rest at 1,000 per second, about 8 seconds in all. cert-manager's own client
/// defaults (20 QPS, burst 50) would spread the same burst over more than 8 minutes. Lower them
/// to protect a small or shared API server; `--kube-api-qps 0` disables client-side limiting.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// Requests per second this process sends to the Kubernetes API on average, after the
    /// burst is spent. 0 disables client-side rate limiting. The default, 1000, does not
    /// throttle a 10,000-request burst noticeably (cert-manager's own default is 20).
    #[arg(
        long = "kube-api-qps",
        env = "RELAY_KUBE_API_QPS",
        default_value_t = DEFAULT_QPS,
        value_parser = parse_qps,
    )]
    pub kube_api_qps: f64,
    /// Requests that may be sent at once before `--kube-api-qps` applies. The default, 2000,
    /// lets a sudden burst through at once (cert-manager's own default is 50).
    #[arg(
        long = "kube-api-burst",
        env = "RELAY_KUBE_API_BURST",
        default_value_t = DEFAULT_BURST,
        value_parser = clap::value_parser!(u32).range(1..),
    )]
    pub kube_api_burst: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            kube_api_qps: DEFAULT_QPS,
            kube_api_burst: DEFAULT_BURST,
        }
    }
}

impl ClientOptions {
    /// Checks the values (the command line already does; this covers values set in code).
    pub fn validate(&self) -> Result<(), Error> {
        check_qps(self.kube_api_qps)?;
        if self.kube_api_burst == 0 && self.kube_api_qps > 0.0 {
            return Err(Error::InvalidArgument(
                "--kube-api-burst must be at least 1 when --kube-api-qps is above 0 (it is the number of requests that may go at once)".to_string(),
            ));
        }
        Ok(())
    }

    /// The rate-limiting layer these options describe, with its own fresh token bucket.
    pub fn layer(&self) -> Result<RateLimitLayer, Error> {
        self.validate()?;
        RateLimitLayer::new(self.kube_api_qps, self.kube_api_burst)
    }
}

fn check_qps(qps: f64) -> Result<(), Error> {
    if qps.is_finite() && qps >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "--kube-api-qps must be a finite number of requests per second, 0 or more (0 disables client-side rate limiting), got {qps}"
        )))
    }
}

fn parse_qps(input: &str) -> Result<f64, String> {
    let qps: f64 = input
        .trim()
        .parse()
        .map_err(|_| format!("{input:?} is not a number of requests per second"))?;
    check_qps(qps).map_err(|error| error.to_string())?;
    Ok(qps)
}

/// Builds a client from the ambient configuration (in-cluster ServiceAccount, or `KUBECONFIG` /
/// `~/.kube/config`), sending `user_agent` as the `User-Agent`, limited as `options` say.
pub async fn client(options: &ClientOptions, user_agent: &str) -> Result<kube::Client, Error> {
    let mut config = kube::Config::infer()
        .await
        .map_err(|error| Error::KubeConfig {
            detail: error.to_string(),
        })?;
    set_user_agent(&mut config, user_agent)?;
    client_from_config(config, options)
}

/// Builds a client from `config`, limited as `options` say.
pub fn client_from_config(
    config: kube::Config,
    options: &ClientOptions,
) -> Result<kube::Client, Error> {
    let layer = options.layer()?;
    client_with_layer(config, &layer)
}

/// Builds a client from `config` with `layer` in its stack; keep a clone of the layer to read
/// its [`RateLimitLayer::stats`].
pub fn client_with_layer(
    config: kube::Config,
    layer: &RateLimitLayer,
) -> Result<kube::Client, Error> {
    let builder =
        kube::client::ClientBuilder::try_from(config).map_err(|error| Error::KubeConfig {
            detail: format!("cannot build the HTTP client: {error}"),
        })?;
    Ok(builder.with_layer(layer).build())
}

/// Replaces any `User-Agent` in the configured extra headers with `user_agent`.
fn set_user_agent(config: &mut kube::Config, user_agent: &str) -> Result<(), Error> {
    let value = http::HeaderValue::from_str(user_agent).map_err(|error| {
        Error::InvalidArgument(format!(
            "the user agent {user_agent:?} is not a valid HTTP header value: {error}"
        ))
    })?;
    config
        .headers
        .retain(|(name, _)| name != http::header::USER_AGENT);
    config.headers.push((http::header::USER_AGENT, value));
    Ok(())
}

/// What a [`TokenBucket`] has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucketStats {
    /// Tokens handed out: [`TokenBucket::try_acquire`] successes plus every
    /// [`TokenBucket::reserve`].
    pub admitted: u64,
    /// Reservations that had to wait (a [`TokenBucket::reserve`] that returned a non-zero wait).
    pub delayed: u64,
    /// [`TokenBucket::try_acquire`] calls refused for want of a token.
    pub refused: u64,
}

/// A token bucket: holds up to `burst` tokens, refills at `qps` tokens per second, and every
/// request takes one. `qps` 0 means unlimited.
///
/// Pure arithmetic: the caller passes the time of every call, so tests drive it with any clock.
/// Times earlier than one already seen count as that time (the bucket never refills backwards).
/// Internally credit is kept in whole nanoseconds (one token is `1/qps` seconds, rounded up to
/// the nanosecond), so there is no floating-point drift: over any interval of length `w` it
/// admits at most `burst + qps × w` requests.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Nanoseconds per token; `None` when unlimited.
    interval: Option<i128>,
    /// Credit at `last`, in nanoseconds; may be negative after reservations.
    credit: i128,
    /// Maximum credit: `burst` tokens.
    capacity: i128,
    last: Instant,
    burst: u32,
    qps: f64,
    stats: BucketStats,
}

/// Longest time one token may take (about 292 years), to keep the arithmetic in range.
const MAX_INTERVAL_NANOS: i128 = i64::MAX as i128;

impl TokenBucket {
    /// A full bucket at `now`. `qps` must be finite and at least 0 (0 = unlimited); a `burst`
    /// of 0 counts as 1.
    pub fn new(qps: f64, burst: u32, now: Instant) -> Result<Self, Error> {
        check_qps(qps)?;
        let burst = burst.max(1);
        let interval = (qps > 0.0).then(|| {
            let nanos = (1e9 / qps).ceil();
            if nanos >= MAX_INTERVAL_NANOS as f64 {
                MAX_INTERVAL_NANOS
            } else {
                (nanos as i128).max(1)
            }
        });
        let capacity = interval.map_or(0, |interval| interval * i128::from(burst));
        Ok(Self {
            interval,
            credit: capacity,
            capacity,
            last: now,
            burst,
            qps,
            stats: BucketStats::default(),
        })
    }

    /// Requests per second (0 = unlimited).
    pub fn qps(&self) -> f64 {
        self.qps
    }

    /// Most requests admitted at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Whether the bucket admits everything at once (`qps` 0).
    pub fn is_unlimited(&self) -> bool {
        self.interval.is_none()
    }

    /// The time one token takes to refill (`1/qps`, rounded up to the nanosecond); zero when
    /// unlimited.
    pub fn interval(&self) -> Duration {
        self.interval.map_or(Duration::ZERO, nanos_to_duration)
    }

    /// Tokens available at `now` (fractional; negative when reservations are queued);
    /// `burst` when unlimited.
    pub fn tokens(&self, now: Instant) -> f64 {
        match self.interval {
            None => f64::from(self.burst),
            Some(interval) => self.credit_at(now) as f64 / interval as f64,
        }
    }

    /// How long from `now` until a token is available; zero if one is.
    pub fn wait_time(&self, now: Instant) -> Duration {
        match self.interval {
            None => Duration::ZERO,
            Some(interval) => nanos_to_duration(interval - self.credit_at(now)),
        }
    }

    /// Takes a token at `now` if one is available; otherwise takes nothing and returns how long
    /// until one will be.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        match self.interval {
            Some(interval) if self.credit < interval => {
                self.stats.refused += 1;
                Err(nanos_to_duration(interval - self.credit))
            }
            Some(interval) => {
                self.credit -= interval;
                self.stats.admitted += 1;
                Ok(())
            }
            None => {
                self.stats.admitted += 1;
                Ok(())
            }
        }
    }

    /// Takes a token at `now`, borrowing against the future if none is left, and returns how
    /// long the caller must wait before using it (zero if a token was available). Reservations
    /// queue: each one waits one interval longer than the one before.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.stats.admitted += 1;
        let Some(interval) = self.interval else {
            return Duration::ZERO;
        };
        self.credit = self.credit.saturating_sub(interval);
        if self.credit >= 0 {
            Duration::ZERO
        } else {
            self.stats.delayed += 1;
            nanos_to_duration(-self.credit)
        }
    }

    /// What the bucket has done so far.
    pub fn stats(&self) -> BucketStats {
        self.stats
    }

    fn credit_at(&self, now: Instant) -> i128 {
        let elapsed = now.saturating_duration_since(self.last).as_nanos();
        let elapsed = i128::try_from(elapsed).unwrap_or(i128::MAX);
        self.credit.saturating_add(elapsed).min(self.capacity)
    }

    fn refill(&mut self, now: Instant) {
        self.credit = self.credit_at(now);
        self.last = self.last.max(now);
    }
}

fn nanos_to_duration(nanos: i128) -> Duration {
    if nanos <= 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// Where a [`RateLimit`] service reads the time.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// A tower layer that limits requests with one [`TokenBucket`] shared by every service it
/// wraps. Cloning shares the bucket.
#[derive(Clone)]
pub struct RateLimitLayer {
    bucket: Arc<Mutex<TokenBucket>>,
    clock: Clock,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("bucket", &*lock(&self.bucket))
            .finish_non_exhaustive()
    }
}

impl RateLimitLayer {
    /// A layer with a full bucket, reading tokio's clock (so paused test time applies).
    pub fn new(qps: f64, burst: u32) -> Result<Self, Error> {
        Self::with_clock(
            qps,
            burst,
            Arc::new(|| tokio::time::Instant::now().into_std()),
        )
    }

    /// A layer reading `clock` for the time; waiting still sleeps on tokio's timer. Tests use
    /// a fixed clock to make the bucket's decisions independent of scheduling.
    pub fn with_clock(qps: f64, burst: u32, clock: Clock) -> Result<Self, Error> {
        let bucket = TokenBucket::new(qps, burst, clock())?;
        Ok(Self {
            bucket: Arc::new(Mutex::new(bucket)),
            clock,
        })
    }

    /// What the shared bucket has done so far.
    pub fn stats(&self) -> BucketStats {
        lock(&self.bucket).stats()
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            bucket: self.bucket.clone(),
            clock: self.clock.clone(),
            state: State::Idle,
        }
    }
}

fn lock(bucket: &Mutex<TokenBucket>) -> MutexGuard<'_, TokenBucket> {
    // The bucket's fields are updated together with no code that can panic in between.
    bucket.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The service [`RateLimitLayer`] builds: `poll_ready` takes a token (waiting for it on tokio's
/// timer if need be), then asks the inner service; `call` spends the token.
pub struct RateLimit<S> {
    inner: S,
    bucket: Arc<Mutex<TokenBucket>>,
    clock: Clock,
    state: State,
}

enum State {
    /// No token held.
    Idle,
    /// A token is reserved; usable when the sleep ends.
    Waiting(Pin<Box<tokio::time::Sleep>>),
    /// A token is held for the next `call`.
    Holding,
}

impl<S: Clone> Clone for RateLimit<S> {
    /// A clone shares the bucket but holds no token of its own.
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            bucket: self.bucket.clone(),
            clock: self.clock.clone(),
            state: State::Idle,
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Idle => "idle",
            State::Waiting(_) => "waiting for a token",
            State::Holding => "holding a token",
        };
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl<S, Request> tower::Service<Request> for RateLimit<S>
where
    S: tower::Service<Request>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            match &mut self.state {
                State::Holding => return self.inner.poll_ready(cx),
                State::Waiting(sleep) => match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => self.state = State::Holding,
                    Poll::Pending => return Poll::Pending,
                },
                State::Idle => {
                    let wait = lock(&self.bucket).reserve((self.clock)());
                    self.state = if wait.is_zero() {
                        State::Holding
                    } else {
                        tracing::trace!(
                            ?wait,
                            "Kubernetes API request waits for the client-side rate limit"
                        );
                        State::Waiting(Box::pin(tokio::time::sleep(wait)))
                    };
                }
            }
        }
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Called without a successful `poll_ready` (a tower contract violation) the request is
        // passed on unlimited rather than failed.
        self.state = State::Idle;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use proptest::prelude::*;
    use tower::{Layer, Service, ServiceExt};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        options: ClientOptions,
    }

    #[test]
    fn flags_default_to_1000_qps_and_burst_2000() {
        let cli = Cli::try_parse_from(["relay-issuer"]).unwrap();
        assert_eq!(cli.options, ClientOptions::default());
        assert_eq!(cli.options.kube_api_qps, 1000.0);
        assert_eq!(cli.options.kube_api_burst, 2000);
    }

    #[test]
    fn flags_parse_and_reject_nonsense() {
        let cli = Cli::try_parse_from([
            "relay-issuer",
            "--kube-api-qps",
            "20",
            "--kube-api-burst",
            "50",
        ])
        .unwrap();
        assert_eq!(cli.options.kube_api_qps, 20.0);
        assert_eq!(cli.options.kube_api_burst, 50);
        let cli = Cli::try_parse_from(["relay-issuer", "--kube-api-qps", "0"]).unwrap();
        assert_eq!(cli.options.kube_api_qps, 0.0);
        for bad in [
            ["--kube-api-qps", "-1"],
            ["--kube-api-qps", "NaN"],
            ["--kube-api-qps", "inf"],
            ["--kube-api-qps", "lots"],
            ["--kube-api-burst", "0"],
            ["--kube-api-burst", "-5"],
        ] {
            let result = Cli::try_parse_from(["relay-issuer", bad[0], bad[1]]);
            assert!(result.is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn options_set_in_code_are_validated() {
        let mut options = ClientOptions {
            kube_api_qps: -3.0,
            ..ClientOptions::default()
        };
        let error = options.layer().unwrap_err();
        assert!(error.to_string().contains("--kube-api-qps"), "{error}");
        options.kube_api_qps = 5.0;
        options.kube_api_burst = 0;
        let error = options.validate().unwrap_err();
        assert!(error.to_string().contains("--kube-api-burst"), "{error}");
        options.kube_api_qps = 0.0;
        assert!(
            options.validate().is_ok(),
            "burst is irrelevant when unlimited"
        );
    }

    #[test]
    fn user_agent_replaces_any_configured_one() {
        let mut config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static("old"),
        ));
        set_user_agent(&mut config, "relay-issuer/0.1.0").unwrap();
        let agents: Vec<_> = config
            .headers
            .iter()
            .filter(|(name, _)| name == http::header::USER_AGENT)
            .map(|(_, value)| value.to_str().unwrap().to_string())
            .collect();
        assert_eq!(agents, ["relay-issuer/0.1.0"]);
        let error = set_user_agent(&mut config, "bad\nagent").unwrap_err();
        assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
    }

    #[test]
    fn a_new_bucket_is_full_and_admits_exactly_burst_at_once() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 3, t0).unwrap();
        assert_eq!(bucket.tokens(t0), 3.0);
        assert_eq!(bucket.wait_time(t0), Duration::ZERO);
        for _ in 0..3 {
            bucket.try_acquire(t0).unwrap();
        }
        assert_eq!(bucket.try_acquire(t0), Err(ms(100)));
        assert_eq!(
            bucket.stats(),
            BucketStats {
                admitted: 3,
                delayed: 0,
                refused: 1
            }
        );
    }

    #[test]
    fn tokens_refill_at_qps() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 3, t0).unwrap();
        for _ in 0..3 {
            bucket.try_acquire(t0).unwrap();
        }
        assert_eq!(bucket.tokens(t0), 0.0);
        assert_eq!(bucket.tokens(t0 + ms(50)), 0.5);
        assert_eq!(bucket.try_acquire(t0 + ms(50)), Err(ms(50)));
        assert_eq!(bucket.try_acquire(t0 + ms(99)), Err(ms(1)));
        assert_eq!(bucket.try_acquire(t0 + ms(100)), Ok(()));
        assert_eq!(bucket.try_acquire(t0 + ms(100)), Err(ms(100)));
        // 250 ms later: 2.5 tokens.
        assert_eq!(bucket.tokens(t0 + ms(350)), 2.5);
        assert_eq!(bucket.try_acquire(t0 + ms(350)), Ok(()));
        assert_eq!(bucket.try_acquire(t0 + ms(350)), Ok(()));
        assert_eq!(bucket.try_acquire(t0 + ms(350)), Err(ms(50)));
    }

    #[test]
    fn refill_stops_at_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 3, t0).unwrap();
        bucket.try_acquire(t0).unwrap();
        // An hour idle refills to 3 tokens, no more.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(bucket.tokens(later), 3.0);
        for _ in 0..3 {
            bucket.try_acquire(later).unwrap();
        }
        assert!(bucket.try_acquire(later).is_err());
    }

    #[test]
    fn time_going_backwards_does_not_refill() {
        let t0 = Instant::now();
        let t1 = t0 + ms(1000);
        let mut bucket = TokenBucket::new(1.0, 1, t0).unwrap();
        bucket.try_acquire(t1).unwrap();
        assert_eq!(bucket.try_acquire(t0), Err(ms(1000)));
        assert_eq!(bucket.try_acquire(t1 + ms(400)), Err(ms(600)));
        assert_eq!(bucket.try_acquire(t1 + ms(1000)), Ok(()));
    }

    #[test]
    fn reservations_queue_one_interval_apart() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(20.0, 5, t0).unwrap();
        let waits: Vec<Duration> = (0..25).map(|_| bucket.reserve(t0)).collect();
        let expected: Vec<Duration> = (0..25u64).map(|i| ms(50 * i.saturating_sub(4))).collect();
        assert_eq!(waits, expected);
        assert_eq!(
            bucket.stats(),
            BucketStats {
                admitted: 25,
                delayed: 20,
                refused: 0
            }
        );
        // The queue is 20 tokens deep: the next free token is 1 s away.
        assert_eq!(bucket.tokens(t0), -20.0);
        assert_eq!(bucket.wait_time(t0), ms(1050));
        assert_eq!(bucket.try_acquire(t0 + ms(1000)), Err(ms(50)));
        assert_eq!(bucket.try_acquire(t0 + ms(1050)), Ok(()));
    }

    #[test]
    fn wait_time_counts_down_to_the_next_token() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(4.0, 1, t0).unwrap();
        assert_eq!(bucket.wait_time(t0), Duration::ZERO);
        bucket.try_acquire(t0).unwrap();
        assert_eq!(bucket.wait_time(t0), ms(250));
        assert_eq!(bucket.wait_time(t0 + ms(100)), ms(150));
        assert_eq!(bucket.wait_time(t0 + ms(250)), Duration::ZERO);
        assert_eq!(bucket.wait_time(t0 + ms(5000)), Duration::ZERO);
        // wait_time only looks: it changes nothing.
        assert_eq!(bucket.stats().admitted, 1);
    }

    #[test]
    fn intervals_round_up_so_the_rate_never_exceeds_qps() {
        let t0 = Instant::now();
        let bucket = TokenBucket::new(3.0, 1, t0).unwrap();
        assert_eq!(bucket.interval(), Duration::from_nanos(333_333_334));
        let bucket = TokenBucket::new(1e12, 1, t0).unwrap();
        assert_eq!(bucket.interval(), Duration::from_nanos(1));
        let bucket = TokenBucket::new(1e-300, 1, t0).unwrap();
        assert_eq!(bucket.interval(), Duration::from_nanos(i64::MAX as u64));
    }

    #[test]
    fn qps_zero_is_unlimited() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(0.0, 1, t0).unwrap();
        assert!(bucket.is_unlimited());
        assert_eq!(bucket.interval(), Duration::ZERO);
        for _ in 0..10_000 {
            assert_eq!(bucket.try_acquire(t0), Ok(()));
            assert_eq!(bucket.reserve(t0), Duration::ZERO);
        }
        assert_eq!(bucket.wait_time(t0), Duration::ZERO);
        assert_eq!(
            bucket.stats(),
            BucketStats {
                admitted: 20_000,
                delayed: 0,
                refused: 0
            }
        );
    }

    #[test]
    fn invalid_qps_is_refused_and_burst_zero_counts_as_one() {
        let t0 = Instant::now();
        for qps in [-1.0, f64::NAN, f64::INFINITY] {
            let error = TokenBucket::new(qps, 1, t0).unwrap_err();
            assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
        }
        let mut bucket = TokenBucket::new(1.0, 0, t0).unwrap();
        assert_eq!(bucket.burst(), 1);
        assert_eq!(bucket.try_acquire(t0), Ok(()));
        assert!(bucket.try_acquire(t0).is_err());
    }

    /// Every admission time of a schedule of calls, each call `gap` after the previous, taking
    /// tokens with `reserve` (admitted after its wait) or `try_acquire` (admitted now, or not).
    fn admissions(qps: f64, burst: u32, schedule: &[(u64, bool)]) -> Vec<Duration> {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(qps, burst, t0).unwrap();
        let mut at = Duration::ZERO;
        let mut admitted = Vec::new();
        for &(gap, reserve) in schedule {
            at += Duration::from_nanos(gap);
            if reserve {
                admitted.push(at + bucket.reserve(t0 + at));
            } else if bucket.try_acquire(t0 + at).is_ok() {
                admitted.push(at);
            }
        }
        admitted.sort();
        admitted
    }

    proptest! {
        #[test]
        fn never_more_than_burst_plus_qps_times_window(
            qps in 0.5f64..5000.0,
            burst in 1u32..40,
            // Gaps up to 50 ms, many of them zero (simultaneous calls).
            schedule in proptest::collection::vec(
                (prop_oneof![Just(0u64), 0u64..50_000_000], any::<bool>()),
                1..300,
            ),
        ) {
            let admitted = admissions(qps, burst, &schedule);
            for i in 0..admitted.len() {
                for j in i..admitted.len() {
                    let window = (admitted[j] - admitted[i]).as_secs_f64();
                    let count = (j - i + 1) as f64;
                    prop_assert!(
                        count <= f64::from(burst) + qps * window + 1e-9,
                        "{count} admitted within {window}s (qps {qps}, burst {burst})"
                    );
                }
            }
        }

        #[test]
        fn reservations_are_admitted_in_the_order_made(
            qps in 0.5f64..5000.0,
            burst in 1u32..40,
            gaps in proptest::collection::vec(0u64..50_000_000, 1..200),
        ) {
            let t0 = Instant::now();
            let mut bucket = TokenBucket::new(qps, burst, t0).unwrap();
            let mut at = Duration::ZERO;
            let mut previous = Duration::ZERO;
            for gap in gaps {
                at += Duration::from_nanos(gap);
                let admitted = at + bucket.reserve(t0 + at);
                prop_assert!(admitted >= previous);
                previous = admitted;
            }
        }
    }

    /// A fixed clock: every decision is made "at the same instant", whatever the scheduler does.
    fn frozen() -> Clock {
        let t0 = Instant::now();
        Arc::new(move || t0)
    }

    fn recording_service(
        order: Arc<Mutex<Vec<usize>>>,
    ) -> impl Service<usize, Response = usize, Error = std::convert::Infallible, Future: Send>
    + Clone
    + Send {
        tower::service_fn(move |index: usize| {
            order.lock().unwrap().push(index);
            std::future::ready(Ok(index))
        })
    }

    #[tokio::test(start_paused = true)]
    async fn service_admits_25_requests_in_order_and_20_of_them_wait() {
        let layer = RateLimitLayer::with_clock(20.0, 5, frozen()).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let service = layer.layer(recording_service(order.clone()));
        // 25 callers at once, each with its own handle on the shared bucket, reserving in the
        // order they are polled (join_all polls in order).
        let calls = (0..25).map(|index| {
            let service = service.clone();
            async move { service.oneshot(index).await }
        });
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(*order.lock().unwrap(), (0..25).collect::<Vec<_>>());
        assert_eq!(
            layer.stats(),
            BucketStats {
                admitted: 25,
                delayed: 20,
                refused: 0
            }
        );
    }

    /// On tokio's paused clock, the layer's clock (tokio's by default) and its sleeps agree
    /// exactly: the burst passes at once, then one request every interval (1/qps).
    #[tokio::test(start_paused = true)]
    async fn service_admits_the_burst_at_once_then_one_per_interval_on_tokio_time() {
        let t0 = tokio::time::Instant::now();
        let layer = RateLimitLayer::new(20.0, 5).unwrap();
        let admitted = Arc::new(Mutex::new(Vec::new()));
        let record = admitted.clone();
        let service = layer.layer(tower::service_fn(move |index: usize| {
            record
                .lock()
                .unwrap()
                .push((index, tokio::time::Instant::now() - t0));
            std::future::ready(Ok::<_, std::convert::Infallible>(index))
        }));
        let calls = (0..25).map(|index| {
            let service = service.clone();
            async move { service.oneshot(index).await }
        });
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(Result::is_ok));
        // The clock is paused at the runtime's start, which is also where tokio's 1 ms timer
        // ticks start, so every wait ends exactly on its deadline.
        let expected: Vec<(usize, Duration)> = (0..25)
            .map(|index: usize| (index, ms(50 * index.saturating_sub(4) as u64)))
            .collect();
        assert_eq!(*admitted.lock().unwrap(), expected);
    }

    #[tokio::test]
    async fn service_without_limit_never_waits() {
        let layer = RateLimitLayer::with_clock(0.0, 1, frozen()).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut service = layer.layer(recording_service(order.clone()));
        for index in 0..100 {
            let ready = futures::FutureExt::now_or_never(service.ready()).expect("ready at once");
            ready.unwrap().call(index).await.unwrap();
        }
        assert_eq!(order.lock().unwrap().len(), 100);
        assert_eq!(layer.stats().delayed, 0);
    }

    #[tokio::test]
    async fn poll_ready_twice_takes_one_token() {
        let layer = RateLimitLayer::with_clock(1.0, 2, frozen()).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut service = layer.layer(recording_service(order));
        service.ready().await.unwrap();
        service.ready().await.unwrap();
        assert_eq!(layer.stats().admitted, 1);
        service.call(0).await.unwrap();
        service.ready().await.unwrap();
        service.call(1).await.unwrap();
        assert_eq!(
            layer.stats(),
            BucketStats {
                admitted: 2,
                delayed: 0,
                refused: 0
            }
        );
        // The bucket is empty now: the next request has to wait (not awaited here).
        let mut next = service.ready();
        assert!(futures::FutureExt::now_or_never(&mut next).is_none());
        assert_eq!(layer.stats().delayed, 1);
    }
}
