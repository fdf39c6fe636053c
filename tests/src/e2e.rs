//! Reads and waits shared by the end-to-end suites that run this workspace's binaries as
//! processes (`tests/lifecycle_e2e.rs` on the sandbox, `tests/real_e2e.rs` on a real control
//! plane): a RelayCluster's status, Prometheus series and `/ready` over a process's admin port,
//! and the serial `openssl s_client` is presented.
//!
//! Each wait polls observable state until a deadline and says what it last saw. Starting the
//! processes, the PKI and the test worlds live elsewhere ([`crate::processes`],
//! [`crate::relay`]).

use std::process::Command;
use std::time::{Duration, Instant};

use kube::Api;
use relay_issuer::api::{RelayCluster, RelayClusterStatus};

use crate::processes::http_get;
use crate::relay::metric_value;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How often the waits below look again.
const POLL: Duration = Duration::from_millis(25);

/// The RelayClusters of one namespace, read through one client.
#[derive(Clone)]
pub struct RelayClusters {
    client: kube::Client,
    namespace: String,
}

impl RelayClusters {
    /// The RelayClusters in `namespace`, read with `client`.
    pub fn new(client: &kube::Client, namespace: &str) -> Self {
        Self {
            client: client.clone(),
            namespace: namespace.to_string(),
        }
    }

    /// RelayCluster `cluster`'s status, if it exists and has one.
    pub async fn status(&self, cluster: &str) -> Option<RelayClusterStatus> {
        let api: Api<RelayCluster> = Api::namespaced(self.client.clone(), &self.namespace);
        api.get(cluster).await.ok().and_then(|c| c.status)
    }

    /// Waits until RelayCluster `cluster`'s status satisfies `check`; returns it.
    pub async fn wait(
        &self,
        cluster: &str,
        within: Duration,
        check: impl Fn(&RelayClusterStatus) -> bool,
    ) -> Result<RelayClusterStatus, BoxError> {
        let deadline = Instant::now() + within;
        loop {
            let status = self.status(cluster).await;
            if let Some(status) = &status
                && check(status)
            {
                return Ok(status.clone());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "RelayCluster {cluster} never matched; last status {status:?}"
                )
                .into());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits, from serial `first`, for `renewals` new serials of RelayCluster `cluster` (each
    /// connected with a serial other than the one before), all within `within`; returns every
    /// serial, `first` included.
    pub async fn wait_renewals(
        &self,
        cluster: &str,
        first: String,
        renewals: usize,
        within: Duration,
    ) -> Result<Vec<String>, BoxError> {
        let deadline = Instant::now() + within;
        let mut serials = vec![first];
        while serials.len() < renewals + 1 {
            let last = serials.last().cloned().unwrap_or_default();
            let status = self
                .wait(
                    cluster,
                    deadline.saturating_duration_since(Instant::now()),
                    |s| s.connected && s.certificate_serial.as_deref() != Some(last.as_str()),
                )
                .await
                .map_err(|e| format!("after {} renewals: {e}", serials.len() - 1))?;
            serials.push(status.certificate_serial.unwrap_or_default());
        }
        Ok(serials)
    }
}

/// The `/metrics` text of the admin port `port` (empty when it does not answer).
pub fn metrics(port: u16) -> String {
    http_get(port, "/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default()
}

/// The value of `series` at admin port `port` (0 when absent).
pub fn metric(port: u16, series: &str) -> f64 {
    metric_value(&metrics(port), series)
}

/// Waits until `series` at admin port `port` satisfies `check`; returns its value.
pub async fn wait_metric(
    port: u16,
    series: &str,
    within: Duration,
    check: impl Fn(f64) -> bool,
) -> Result<f64, BoxError> {
    let deadline = Instant::now() + within;
    loop {
        let value = metric(port, series);
        if check(value) {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(format!("{series} stayed at {value}:\n{}", metrics(port)).into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `series` at admin port `port` has grown by at least `by` from its value now;
/// returns the new value.
pub async fn wait_metric_grows(
    port: u16,
    series: &str,
    by: f64,
    within: Duration,
) -> Result<f64, BoxError> {
    let before = metric(port, series);
    wait_metric(port, series, within, |v| v >= before + by).await
}

/// Waits until `/ready` at admin port `port` answers 200 (`ready`) or anything else.
pub async fn wait_ready(port: u16, ready: bool, within: Duration) -> Result<(), BoxError> {
    let deadline = Instant::now() + within;
    loop {
        let answer = http_get(port, "/ready");
        if answer.as_ref().map(|(code, _)| *code == 200) == Some(ready) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("/ready never became {ready}: {answer:?}").into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `/ready` at admin port `port` answers 503 with a reason containing `words`;
/// returns the reason.
pub async fn wait_not_ready_because(
    port: u16,
    words: &str,
    within: Duration,
) -> Result<String, BoxError> {
    let deadline = Instant::now() + within;
    loop {
        let answer = http_get(port, "/ready");
        if let Some((503, body)) = &answer
            && body.contains(words)
        {
            return Ok(body.clone());
        }
        if Instant::now() > deadline {
            return Err(format!("/ready never said {words:?}: {answer:?}").into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The serial of the certificate `openssl s_client` is presented on `127.0.0.1:port` (SNI
/// `localhost`, ALPN h2), upper-case hex; empty when the handshake fails.
pub fn openssl_serial(port: u16) -> Result<String, BoxError> {
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername localhost -alpn h2 </dev/null 2>/dev/null | openssl x509 -noout -serial"
        ))
        .output()?;
    let text = String::from_utf8(output.stdout)?;
    Ok(text.trim().trim_start_matches("serial=").to_string())
}

/// Waits until `openssl s_client` is presented on `127.0.0.1:port` the certificate of serial
/// `serial` (colon-separated hex, as [`crate::relay::serial_of`] writes it; leading zeros and
/// case aside); returns the serial openssl printed.
pub async fn wait_openssl_serial(
    port: u16,
    serial: &str,
    within: Duration,
) -> Result<String, BoxError> {
    let want = serial.replace(':', "").to_uppercase();
    let want = want.trim_start_matches('0');
    let deadline = Instant::now() + within;
    loop {
        let seen = openssl_serial(port)?;
        if seen.trim_start_matches('0') == want {
            return Ok(seen);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "openssl s_client never saw the certificate of serial {want}; last {seen:?}"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
