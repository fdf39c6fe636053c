//! The admin HTTP server, one per binary: `GET /live`, `GET /ready` and `GET /metrics`.
//!
//! - [`Health`]: the readiness flag (and the reason when not ready) that the rest of the binary
//!   flips, e.g. after the first sync of CertificateRequests.
//! - [`router`]: the routes and answers (axum), testable without I/O.
//! - [`bind`] and [`serve`]: listen on `--admin-address` and answer until shut down. The
//!   accept loop is ours, around hyper's HTTP/1 connection, rather than `axum::serve`: that one
//!   gives hyper no timer, so a client could hold a connection open with half-sent headers for
//!   ever; here headers must arrive within 10 seconds, and shutdown closes idle keep-alive
//!   connections at once and waits at most 5 seconds for the rest.
//!
//! What does not live here: the metrics themselves (each subsystem registers its own, e.g.
//! `relay_issuer::controller::metrics`), and deciding when the binary is ready (each command does).

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{Method, Request, StatusCode};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::Error;

/// The `Content-Type` of `/metrics`: the OpenMetrics text format `prometheus_client` writes.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `Content-Type` of every other answer.
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for requests in flight before dropping their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Pause after a failed `accept` (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The reason `/ready` gives before anyone said otherwise.
const STARTING_REASON: &str = "starting";

/// Whether the binary is ready, and why not. Cloning is cheap: clones share one state.
///
/// Starts not ready, with the reason `starting`.
#[derive(Clone, Debug, Default)]
pub struct Health {
    state: Arc<Mutex<Readiness>>,
}

#[derive(Debug)]
struct Readiness {
    ready: bool,
    reason: String,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            ready: false,
            reason: STARTING_REASON.to_string(),
        }
    }
}

impl Health {
    /// A new health state: not ready, reason `starting`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the binary ready (`true`) or not (`false`). Going not ready keeps the last reason
    /// given to [`Health::set_not_ready`]; prefer that method, which says why.
    pub fn set_ready(&self, ready: bool) {
        self.lock().ready = ready;
    }

    /// Marks the binary not ready and says why; `/ready` answers 503 with this reason, e.g.
    /// `waiting for the first sync of CertificateRequests`.
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        let mut state = self.lock();
        state.ready = false;
        state.reason = reason.into();
    }

    /// Whether the binary is ready.
    pub fn is_ready(&self) -> bool {
        self.lock().ready
    }

    /// `Ok(())` when ready, otherwise `Err(reason)`.
    pub fn readiness(&self) -> Result<(), String> {
        let state = self.lock();
        if state.ready {
            Ok(())
        } else {
            Err(state.reason.clone())
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Readiness> {
        // The state is two plain fields, consistent after any panic: ignore poisoning.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Binds the admin server's listener; `address` is `host:port`, e.g. `0.0.0.0:8080`.
pub async fn bind(address: &str) -> Result<TcpListener, Error> {
    TcpListener::bind(address)
        .await
        .map_err(|source| Error::AdminServer {
            address: address.to_string(),
            source,
        })
}

/// Serves `/live`, `/ready` and `/metrics` on `listener` until `shutdown` completes.
///
/// On shutdown it stops accepting, lets requests in flight finish (closing idle keep-alive
/// connections at once) for up to 5 seconds, then returns. Failed `accept`s are logged and
/// retried; the only error is a listener whose address cannot be read.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let address = listener.local_addr().map_err(|source| Error::AdminServer {
        address: "the given listener".to_string(),
        source,
    })?;
    tracing::info!(%address, "admin server listening (/live, /ready, /metrics)");
    let router = router(registry, health);
    let (stop_connections, stopping) = tokio::sync::watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connection tasks so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let router = router.clone();
                    let mut stopping = stopping.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                            router.clone().oneshot(request.map(Body::new))
                        });
                        let connection = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HEADER_READ_TIMEOUT)
                            .serve_connection(TokioIo::new(stream), service);
                        tokio::pin!(connection);
                        let result = tokio::select! {
                            result = connection.as_mut() => result,
                            () = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
                                connection.as_mut().graceful_shutdown();
                                connection.await
                            }
                        };
                        if let Err(error) = result {
                            tracing::debug!(%peer, %error, "admin connection ended with an error");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%address, %error, "admin server cannot accept a connection; retrying");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_connections.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            %address,
            remaining = connections.len(),
            "admin server connections still open after the shutdown grace period; dropping them"
        );
        connections.shutdown().await;
    }
    tracing::info!(%address, "admin server stopped");
    Ok(())
}

/// The routes, answers included: everything the server decides, without any I/O. `GET` (and
/// `HEAD`, which axum answers alongside) on `/live`, `/ready` and `/metrics`; 405 with `Allow`
/// for other methods there; 404 elsewhere.
pub fn router(registry: Arc<Registry>, health: Health) -> Router {
    Router::new()
        .route(
            "/live",
            get(|| async { text(StatusCode::OK, "ok\n") }).fallback(method_not_allowed),
        )
        .route(
            "/ready",
            get(move || {
                let health = health.clone();
                async move { ready(&health) }
            })
            .fallback(method_not_allowed),
        )
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move { metrics(&registry) }
            })
            .fallback(method_not_allowed),
        )
        .fallback(|| async {
            text(
                StatusCode::NOT_FOUND,
                "not found; try /live, /ready or /metrics\n",
            )
        })
}

async fn method_not_allowed(method: Method) -> Response {
    let mut response = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} not allowed; use GET\n"),
    );
    response
        .headers_mut()
        .insert(ALLOW, http::HeaderValue::from_static("GET, HEAD"));
    response
}

fn ready(health: &Health) -> Response {
    match health.readiness() {
        Ok(()) => text(StatusCode::OK, "ok\n"),
        Err(reason) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

fn metrics(registry: &Registry) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, registry) {
        Ok(()) => ([(CONTENT_TYPE, METRICS_CONTENT_TYPE)], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode the metrics");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics\n",
            )
        }
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, [(CONTENT_TYPE, TEXT_CONTENT_TYPE)], body.into()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    /// One parsed HTTP/1.1 response.
    #[derive(Debug)]
    struct Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Answer {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// A running server on an ephemeral loopback port.
    struct Running {
        addr: SocketAddr,
        health: Health,
        stop: Option<oneshot::Sender<()>>,
        task: JoinHandle<Result<(), Error>>,
    }

    impl Running {
        async fn stop(mut self) -> Result<(), Error> {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            tokio::time::timeout(Duration::from_secs(30), &mut self.task)
                .await
                .expect("serve returns after shutdown")
                .expect("serve does not panic")
        }
    }

    async fn start(registry: Registry) -> Running {
        let listener = bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let health = Health::new();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, Arc::new(registry), health.clone(), async {
            let _ = stopped.await;
        }));
        Running {
            addr,
            health,
            stop: Some(stop),
            task,
        }
    }

    /// One request over a fresh connection, with hyper's HTTP/1 client.
    async fn request(addr: SocketAddr, method: &str, path: &str) -> Answer {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, addr.to_string())
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    #[tokio::test]
    async fn live_is_always_ok() {
        let server = start(Registry::default()).await;
        let answer = request(server.addr, "GET", "/live").await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.body, "ok\n");
        assert_eq!(answer.header("content-type"), Some(TEXT_CONTENT_TYPE));
        server.stop().await.unwrap();
    }

    #[tokio::test]
    async fn ready_says_why_not_until_marked_ready() {
        let server = start(Registry::default()).await;

        let answer = request(server.addr, "GET", "/ready").await;
        assert_eq!(answer.status, 503, "{answer:?}");
        assert_eq!(answer.body, "not ready: starting\n");

        server
            .health
            .set_not_ready("waiting for the first sync of CertificateRequests");
        let answer = request(server.addr, "GET", "/ready").await;
        assert_eq!(answer.status, 503, "{answer:?}");
        assert_eq!(
            answer.body,
            "not ready: waiting for the first sync of CertificateRequests\n"
        );

        server.health.set_ready(true);
        let answer = request(server.addr, "GET", "/ready").await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.body, "ok\n");

        // Going not ready again keeps the last reason.
        server.health.set_ready(false);
        let answer = request(server.addr, "GET", "/ready").await;
        assert_eq!(answer.status, 503, "{answer:?}");
        assert!(answer.body.contains("first sync"), "{answer:?}");

        server.stop().await.unwrap();
    }

    #[tokio::test]
    async fn metrics_shows_registered_counters_in_openmetrics_text() {
        let mut registry = Registry::default();
        let counter: Counter = Counter::default();
        registry.sub_registry_with_prefix("relay_issuer").register(
            "test_events",
            "Events seen by the test",
            counter.clone(),
        );
        counter.inc_by(3);
        let server = start(registry).await;

        let answer = request(server.addr, "GET", "/metrics").await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.header("content-type"), Some(METRICS_CONTENT_TYPE));
        assert!(
            answer
                .body
                .contains("# TYPE relay_issuer_test_events counter"),
            "{}",
            answer.body
        );
        assert!(
            answer.body.contains("relay_issuer_test_events_total 3\n"),
            "{}",
            answer.body
        );
        assert!(answer.body.ends_with("# EOF\n"), "{}", answer.body);

        // The same registry is read on every scrape: later increments show.
        counter.inc();
        let answer = request(server.addr, "GET", "/metrics?ignored=query").await;
        assert!(
            answer.body.contains("relay_issuer_test_events_total 4\n"),
            "{}",
            answer.body
        );
        server.stop().await.unwrap();
    }

    #[tokio::test]
    async fn unknown_paths_are_404_and_other_methods_405() {
        let server = start(Registry::default()).await;

        for path in ["/", "/healthz", "/metrics/extra", "/live/"] {
            let answer = request(server.addr, "GET", path).await;
            assert_eq!(answer.status, 404, "{path}: {answer:?}");
            assert!(
                answer.body.contains("/live, /ready or /metrics"),
                "{answer:?}"
            );
        }
        for (method, path) in [("POST", "/live"), ("PUT", "/ready"), ("DELETE", "/metrics")] {
            let answer = request(server.addr, method, path).await;
            assert_eq!(answer.status, 405, "{method} {path}: {answer:?}");
            assert_eq!(answer.header("allow"), Some("GET, HEAD"), "{answer:?}");
            let allows = answer.headers.iter().filter(|(n, _)| n == "allow").count();
            assert_eq!(allows, 1, "one Allow header: {answer:?}");
            assert!(answer.body.contains("use GET"), "{answer:?}");
        }
        // HEAD is GET without the body.
        let answer = request(server.addr, "HEAD", "/live").await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.body, "");
        server.stop().await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_stops_accepting_and_does_not_wait_for_idle_connections() {
        let server = start(Registry::default()).await;
        let addr = server.addr;

        // A keep-alive connection that has finished one request and now sits idle.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(format!("GET /live HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buffer = [0u8; 512];
        let read = idle.read(&mut buffer).await.unwrap();
        assert!(
            String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buffer[..read])
        );

        // Well within the 5 s grace period: the idle connection is closed, not waited for.
        tokio::time::timeout(Duration::from_secs(4), server.stop())
            .await
            .expect("shutdown does not wait for idle connections")
            .unwrap();

        // The idle connection was closed by the server...
        let read = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buffer))
            .await
            .expect("the server closes the idle connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        // ...and nothing listens any more.
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn bind_reports_the_address_it_could_not_use() {
        let taken = bind("127.0.0.1:0").await.unwrap();
        let address = taken.local_addr().unwrap().to_string();
        let error = bind(&address).await.unwrap_err();
        match &error {
            Error::AdminServer { address: a, .. } => assert_eq!(a, &address),
            other => panic!("expected AdminServer, got {other:?}"),
        }
        let message = error.to_string();
        assert!(message.contains(&address), "{message}");
        assert!(message.contains("--admin-address"), "{message}");
        assert_eq!(error.metric_label(), "admin_server");

        let error = bind("no port here").await.unwrap_err();
        assert!(
            matches!(&error, Error::AdminServer { address, .. } if address == "no port here"),
            "{error:?}"
        );
    }

    #[test]
    fn health_clones_share_state() {
        let health = Health::new();
        let clone = health.clone();
        assert!(!health.is_ready());
        assert_eq!(health.readiness(), Err("starting".to_string()));
        clone.set_ready(true);
        assert!(health.is_ready());
        assert_eq!(health.readiness(), Ok(()));
        clone.set_not_ready("leader election lost");
        assert_eq!(health.readiness(), Err("leader election lost".to_string()));
    }

    #[tokio::test]
    async fn router_routes_without_io() {
        let health = Health::new();
        let router = router(Arc::new(Registry::default()), health.clone());
        let status = |method: Method, path: &str| {
            let router = router.clone();
            let request = Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .unwrap();
            async move { router.oneshot(request).await.unwrap().status() }
        };
        assert_eq!(status(Method::GET, "/live").await, StatusCode::OK);
        assert_eq!(
            status(Method::GET, "/ready").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status(Method::GET, "/metrics").await, StatusCode::OK);
        assert_eq!(status(Method::GET, "/nope").await, StatusCode::NOT_FOUND);
        assert_eq!(status(Method::POST, "/nope").await, StatusCode::NOT_FOUND);
        assert_eq!(
            status(Method::PATCH, "/ready").await,
            StatusCode::METHOD_NOT_ALLOWED
        );
        health.set_ready(true);
        assert_eq!(status(Method::GET, "/ready").await, StatusCode::OK);
    }
}
