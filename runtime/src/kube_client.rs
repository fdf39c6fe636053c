//! Building the Kubernetes client, with client-side rate limits (`--kube-api-qps`,
//! `--kube-api-burst`).
//!
//! - [`ClientOptions`]: the command-line flags.
//! - [`RateLimitLayer`] / [`RateLimit`]: a tower middleware that waits for `governor`'s
//!   rate limiter (GCRA: a burst of `burst`, then one request every `1/qps`) in `poll_ready`.
//!   kube wraps its service stack in a tower `Buffer`, whose one worker calls `poll_ready`
//!   before each request in the order the requests were made, so waiting there delays requests
//!   first come, first served, without holding up the callers' tasks. The limiter reads tokio's
//!   clock and the wait sleeps on tokio's timer, so paused-time tests drive both.
//! - [`client`] and [`client_from_config`]: a `kube::Client` with the layer in its stack.
//!
//! What does not live here: what the client is used for (controller, leader election), and the
//! API server's own limits (API Priority and Fairness), which apply on top of these.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use governor::clock::Clock as _;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

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

    /// The rate-limiting layer these options describe, with its own limiter, its full burst available.
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

/// What a [`RateLimitLayer`] has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitStats {
    /// Requests let through.
    pub admitted: u64,
    /// Of those, the ones that had to wait for the limit.
    pub delayed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    admitted: AtomicU64,
    delayed: AtomicU64,
}

/// `governor`'s clock for the limiter: tokio's, so `tokio::time::pause` applies to its decisions
/// as it does to the sleeps.
#[derive(Debug, Clone, Copy, Default)]
struct TokioClock;

impl governor::clock::Clock for TokioClock {
    type Instant = Instant;

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock>;

/// The quota `qps` and `burst` describe; `None` when `qps` is 0 (unlimited). One request takes
/// `1/qps` seconds rounded up to the nanosecond, so the rate never exceeds `qps`.
fn quota(qps: f64, burst: u32) -> Result<Option<Quota>, Error> {
    check_qps(qps)?;
    if qps == 0.0 {
        return Ok(None);
    }
    // Longest period representable here (about 584 years): slower rates take that.
    let nanos = (1e9 / qps).ceil().clamp(1.0, u64::MAX as f64) as u64;
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Ok(Quota::with_period(Duration::from_nanos(nanos)).map(|q| q.allow_burst(burst)))
}

/// A tower layer that limits requests with one limiter shared by every service it wraps.
/// Cloning shares the limiter.
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    /// `None`: unlimited (`qps` 0).
    limiter: Option<Arc<Limiter>>,
    counters: Arc<Counters>,
}

impl RateLimitLayer {
    /// A layer with its full burst available, reading tokio's clock (so paused test time applies).
    pub fn new(qps: f64, burst: u32) -> Result<Self, Error> {
        let limiter = quota(qps, burst)?
            .map(|quota| Arc::new(RateLimiter::direct_with_clock(quota, TokioClock)));
        Ok(Self {
            limiter,
            counters: Arc::default(),
        })
    }

    /// What the layer has done so far.
    pub fn stats(&self) -> LimitStats {
        LimitStats {
            admitted: self.counters.admitted.load(Ordering::Relaxed),
            delayed: self.counters.delayed.load(Ordering::Relaxed),
        }
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            limiter: self.limiter.clone(),
            counters: self.counters.clone(),
            state: State::Idle { waited: false },
        }
    }
}

/// The service [`RateLimitLayer`] builds: `poll_ready` waits until the limiter lets one request
/// through (sleeping on tokio's timer if need be), then asks the inner service; `call` spends it.
pub struct RateLimit<S> {
    inner: S,
    limiter: Option<Arc<Limiter>>,
    counters: Arc<Counters>,
    state: State,
}

enum State {
    /// Not admitted yet; `waited` once it has slept for the limit.
    Idle { waited: bool },
    /// Sleeping until the limiter should admit; then it asks again.
    Waiting(Pin<Box<tokio::time::Sleep>>),
    /// Admitted: the next `call` goes through.
    Holding,
}

impl<S: Clone> Clone for RateLimit<S> {
    /// A clone shares the limiter but holds no admission of its own.
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            counters: self.counters.clone(),
            state: State::Idle { waited: false },
        }
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Idle { .. } => "idle",
            State::Waiting(_) => "waiting for the rate limit",
            State::Holding => "admitted",
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
                    Poll::Ready(()) => self.state = State::Idle { waited: true },
                    Poll::Pending => return Poll::Pending,
                },
                State::Idle { waited } => {
                    let waited = *waited;
                    let verdict = match &self.limiter {
                        None => Ok(()),
                        Some(limiter) => limiter.check(),
                    };
                    match verdict {
                        Ok(()) => {
                            self.counters.admitted.fetch_add(1, Ordering::Relaxed);
                            if waited {
                                self.counters.delayed.fetch_add(1, Ordering::Relaxed);
                            }
                            self.state = State::Holding;
                        }
                        Err(not_until) => {
                            let wait = not_until.wait_time_from(TokioClock.now());
                            tracing::trace!(
                                ?wait,
                                "Kubernetes API request waits for the client-side rate limit"
                            );
                            self.state = State::Waiting(Box::pin(tokio::time::sleep(wait)));
                        }
                    }
                }
            }
        }
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Called without a successful `poll_ready` (a tower contract violation) the request is
        // passed on unlimited rather than failed.
        self.state = State::Idle { waited: false };
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

    /// The admission times, from the first call, of requests that arrive `gaps` apart (in
    /// nanoseconds) at one service, each waiting for the limit before the next arrives if the
    /// limit says so: on tokio's paused clock, so the times are exact.
    fn admissions(qps: f64, burst: u32, gaps: &[u64]) -> Vec<Duration> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let t0 = tokio::time::Instant::now();
            let layer = RateLimitLayer::new(qps, burst).unwrap();
            let mut service = layer.layer(tower::service_fn(|()| {
                std::future::ready(Ok::<_, std::convert::Infallible>(
                    tokio::time::Instant::now(),
                ))
            }));
            let mut admitted = Vec::new();
            let mut next_arrival = t0;
            for &gap in gaps {
                next_arrival += Duration::from_nanos(gap);
                tokio::time::sleep_until(next_arrival).await;
                let at = service.ready().await.unwrap().call(()).await.unwrap();
                admitted.push(at - t0);
            }
            admitted
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn never_more_than_burst_plus_qps_times_window(
            qps in 0.5f64..5000.0,
            burst in 1u32..40,
            // Gaps up to 50 ms, many of them zero (simultaneous arrivals).
            gaps in proptest::collection::vec(prop_oneof![Just(0u64), 0u64..50_000_000], 1..120),
        ) {
            let admitted = admissions(qps, burst, &gaps);
            for i in 0..admitted.len() {
                for j in i..admitted.len() {
                    let window = (admitted[j] - admitted[i]).as_secs_f64();
                    let count = (j - i + 1) as f64;
                    prop_assert!(
                        count <= f64::from(burst) + qps * window + 1e-6,
                        "{count} admitted within {window}s (qps {qps}, burst {burst})"
                    );
                }
            }
        }
    }

    #[test]
    fn a_fresh_layer_admits_the_burst_at_once_and_then_one_per_period() {
        let admitted = admissions(10.0, 3, &[0; 6]);
        let expected: Vec<Duration> = [0, 0, 0, 100, 200, 300].into_iter().map(ms).collect();
        assert_eq!(admitted, expected);
    }

    #[test]
    fn the_limit_refills_at_qps_up_to_the_burst_only() {
        // Three at once empty a burst of 3; after 10 s idle only 3 go at once again.
        let gaps = [0, 0, 0, 10_000_000_000, 0, 0, 0];
        let admitted = admissions(10.0, 3, &gaps);
        let expected: Vec<Duration> = [0, 0, 0, 10_000, 10_000, 10_000, 10_100]
            .into_iter()
            .map(ms)
            .collect();
        assert_eq!(admitted, expected);
    }

    #[test]
    fn fractional_qps_spaces_requests_by_their_period() {
        let admitted = admissions(0.5, 1, &[0, 0, 0]);
        let expected: Vec<Duration> = [0, 2_000, 4_000].into_iter().map(ms).collect();
        assert_eq!(admitted, expected);
    }

    #[test]
    fn quotas_round_the_period_up_and_qps_zero_is_unlimited() {
        assert!(quota(0.0, 1).unwrap().is_none());
        let q = quota(3.0, 1).unwrap().unwrap();
        assert_eq!(q.replenish_interval(), Duration::from_nanos(333_333_334));
        assert_eq!(quota(7.0, 0).unwrap().unwrap().burst_size().get(), 1);
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(quota(bad, 1).is_err(), "{bad} accepted");
        }
    }

    fn recording_service(
        order: Arc<std::sync::Mutex<Vec<usize>>>,
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
        let layer = RateLimitLayer::new(20.0, 5).unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let service = layer.layer(recording_service(order.clone()));
        // 25 callers at once, each with its own handle on the shared limiter, polled in order
        // (join_all polls in order).
        let calls = (0..25).map(|index| {
            let service = service.clone();
            async move { service.oneshot(index).await }
        });
        let results = futures::future::join_all(calls).await;
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(*order.lock().unwrap(), (0..25).collect::<Vec<_>>());
        assert_eq!(
            layer.stats(),
            LimitStats {
                admitted: 25,
                delayed: 20,
            }
        );
    }

    /// On tokio's paused clock, the limiter's clock (tokio's) and its sleeps agree exactly: the
    /// burst passes at once, then one request every interval (1/qps).
    #[tokio::test(start_paused = true)]
    async fn service_admits_the_burst_at_once_then_one_per_interval_on_tokio_time() {
        let t0 = tokio::time::Instant::now();
        let layer = RateLimitLayer::new(20.0, 5).unwrap();
        let admitted = Arc::new(std::sync::Mutex::new(Vec::new()));
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
        let expected: Vec<(usize, Duration)> = (0..25)
            .map(|index: usize| (index, ms(50 * index.saturating_sub(4) as u64)))
            .collect();
        assert_eq!(*admitted.lock().unwrap(), expected);
    }

    #[tokio::test]
    async fn service_without_limit_never_waits() {
        let layer = RateLimitLayer::new(0.0, 1).unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut service = layer.layer(recording_service(order.clone()));
        for index in 0..100 {
            let ready = futures::FutureExt::now_or_never(service.ready()).expect("ready at once");
            ready.unwrap().call(index).await.unwrap();
        }
        assert_eq!(order.lock().unwrap().len(), 100);
        assert_eq!(layer.stats().delayed, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn poll_ready_twice_takes_one_admission() {
        let layer = RateLimitLayer::new(1.0, 2).unwrap();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut service = layer.layer(recording_service(order));
        service.ready().await.unwrap();
        service.ready().await.unwrap();
        assert_eq!(layer.stats().admitted, 1);
        service.call(0).await.unwrap();
        service.ready().await.unwrap();
        service.call(1).await.unwrap();
        assert_eq!(
            layer.stats(),
            LimitStats {
                admitted: 2,
                delayed: 0,
            }
        );
        // The burst is spent: the next request has to wait, one second on the paused clock.
        assert!(futures::FutureExt::now_or_never(service.ready()).is_none());
        let before = tokio::time::Instant::now();
        service.ready().await.unwrap();
        assert_eq!(tokio::time::Instant::now() - before, Duration::from_secs(1));
        assert_eq!(
            layer.stats(),
            LimitStats {
                admitted: 3,
                delayed: 1,
            }
        );
    }
}
