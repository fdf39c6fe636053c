//! Registered clusters and their connection status.
//!
//! - [`ConnectionBook`]: a plain, clock-injected record of each cluster's open streams, last
//!   certificate and last contact, which decides when a status write is due (connects and
//!   disconnects at once; heartbeats at most every [`LAST_SEEN_PERIOD`]).
//! - [`StatusWriter`]: the one task that writes `RelayCluster` status by server-side apply
//!   under the field manager `relay-server`, from the book.
//!
//! Whether a cluster is registered is read from the `RelayCluster` reflector in `service`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kube::Api;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::api::{RelayCluster, RelayClusterStatus};
use crate::k8s::kube_time;

/// The field manager of the relay server's status writes.
pub const FIELD_MANAGER: &str = "relay-server";

/// How often heartbeats alone refresh `status.lastSeen`.
pub const LAST_SEEN_PERIOD: time::Duration = time::Duration::seconds(30);

/// What the server knows about one cluster's agent.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConnection {
    /// Open Connect streams.
    pub streams: u32,
    /// Serial of the certificate of the newest stream.
    pub serial: Option<String>,
    /// notAfter of that certificate.
    pub not_after: Option<OffsetDateTime>,
    /// The agent's version from its newest hello.
    pub agent_version: Option<String>,
    /// Last contact.
    pub last_seen: OffsetDateTime,
    /// `last_seen` as last written.
    written_last_seen: Option<OffsetDateTime>,
}

impl ClusterConnection {
    /// The status this record stands for.
    pub fn status(&self) -> RelayClusterStatus {
        RelayClusterStatus {
            connected: self.streams > 0,
            last_seen: Some(kube_time(self.last_seen)),
            certificate_serial: self.serial.clone(),
            certificate_not_after: self.not_after.map(kube_time),
            agent_version: self.agent_version.clone(),
            streams: self.streams,
        }
    }
}

/// Every cluster's connection record and which ones need a status write.
#[derive(Debug, Default)]
pub struct ConnectionBook {
    clusters: BTreeMap<String, ClusterConnection>,
    dirty: BTreeSet<String>,
}

impl ConnectionBook {
    /// A stream opened with a certificate of `serial` valid until `not_after`.
    pub fn opened(
        &mut self,
        cluster: &str,
        serial: &str,
        not_after: OffsetDateTime,
        agent_version: &str,
        now: OffsetDateTime,
    ) {
        let entry = self
            .clusters
            .entry(cluster.to_string())
            .or_insert_with(|| ClusterConnection {
                streams: 0,
                serial: None,
                not_after: None,
                agent_version: None,
                last_seen: now,
                written_last_seen: None,
            });
        entry.streams += 1;
        entry.serial = Some(serial.to_string());
        entry.not_after = Some(not_after);
        entry.agent_version = Some(agent_version.to_string()).filter(|v| !v.is_empty());
        entry.last_seen = now;
        self.dirty.insert(cluster.to_string());
    }

    /// A heartbeat arrived; true when that makes a status write due.
    pub fn heard_from(&mut self, cluster: &str, now: OffsetDateTime) -> bool {
        let Some(entry) = self.clusters.get_mut(cluster) else {
            return false;
        };
        entry.last_seen = now;
        let due = entry
            .written_last_seen
            .is_none_or(|written| now - written >= LAST_SEEN_PERIOD);
        if due {
            self.dirty.insert(cluster.to_string());
        }
        due
    }

    /// A stream closed.
    pub fn closed(&mut self, cluster: &str, now: OffsetDateTime) {
        if let Some(entry) = self.clusters.get_mut(cluster) {
            entry.streams = entry.streams.saturating_sub(1);
            entry.last_seen = now;
            self.dirty.insert(cluster.to_string());
        }
    }

    /// The statuses due for writing, marking them written.
    pub fn take_due(&mut self) -> Vec<(String, RelayClusterStatus)> {
        let due = std::mem::take(&mut self.dirty);
        due.into_iter()
            .filter_map(|cluster| {
                let entry = self.clusters.get_mut(&cluster)?;
                entry.written_last_seen = Some(entry.last_seen);
                Some((cluster, entry.status()))
            })
            .collect()
    }

    /// Marks a cluster due again (its write failed).
    pub fn retry(&mut self, cluster: &str) {
        self.dirty.insert(cluster.to_string());
    }

    /// Marks every cluster disconnected (the server is stopping) and due.
    pub fn disconnect_all(&mut self, now: OffsetDateTime) {
        for (cluster, entry) in &mut self.clusters {
            if entry.streams > 0 {
                entry.streams = 0;
                entry.last_seen = now;
                self.dirty.insert(cluster.clone());
            }
        }
    }

    /// Takes over a status written before this server started (it may have crashed with
    /// streams open): keeps what it says about the certificate, and marks it disconnected unless
    /// a stream has opened here since.
    pub fn restore(&mut self, cluster: &str, status: &RelayClusterStatus, now: OffsetDateTime) {
        if self.clusters.contains_key(cluster) || !status.connected {
            return;
        }
        let parse = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
            t.as_ref()
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t.0.as_second()).ok())
        };
        self.clusters.insert(
            cluster.to_string(),
            ClusterConnection {
                streams: 0,
                serial: status.certificate_serial.clone(),
                not_after: parse(&status.certificate_not_after),
                agent_version: status.agent_version.clone(),
                last_seen: parse(&status.last_seen).unwrap_or(now),
                written_last_seen: None,
            },
        );
        self.dirty.insert(cluster.to_string());
    }

    /// The record of one cluster.
    pub fn get(&self, cluster: &str) -> Option<&ClusterConnection> {
        self.clusters.get(cluster)
    }

    /// Streams open across all clusters.
    pub fn open_streams(&self) -> u32 {
        self.clusters.values().map(|c| c.streams).sum()
    }
}

/// The shared book and the writer that drains it.
#[derive(Clone)]
pub struct StatusWriter {
    book: Arc<Mutex<ConnectionBook>>,
    wake: Arc<Notify>,
    api: Api<RelayCluster>,
}

impl StatusWriter {
    /// A writer for `RelayCluster`s through `api` (the server's namespace).
    pub fn new(api: Api<RelayCluster>) -> Self {
        Self {
            book: Arc::default(),
            wake: Arc::default(),
            api,
        }
    }

    /// Changes the book and wakes the writer when a write became due.
    pub fn update<T>(&self, change: impl FnOnce(&mut ConnectionBook) -> T) -> T {
        let result = {
            let mut book = self.book.lock().unwrap_or_else(PoisonError::into_inner);
            change(&mut book)
        };
        self.wake.notify_one();
        result
    }

    /// Writes due statuses until `stop` resolves; then marks every cluster disconnected and
    /// writes once more.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = &mut stop => break,
            }
            // Coalesce a burst of changes into one write per cluster.
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.write_due().await;
        }
        self.update(|book| book.disconnect_all(OffsetDateTime::now_utc()));
        self.write_due().await;
    }

    async fn write_due(&self) {
        let due = self.update(ConnectionBook::take_due);
        let mut failed = false;
        for (cluster, status) in due {
            match crate::k8s::apply_status(&self.api, &cluster, FIELD_MANAGER, &status).await {
                Ok(true) => {
                    debug!(%cluster, connected = status.connected, "RelayCluster status written")
                }
                Ok(false) => debug!(%cluster, "RelayCluster is gone; status not written"),
                Err(error) => {
                    warn!(%cluster, %error, "could not write RelayCluster status; retrying");
                    self.update(|book| book.retry(&cluster));
                    failed = true;
                }
            }
        }
        if failed {
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-28 12:00:00 UTC);

    #[test]
    fn a_connect_is_written_at_once_with_its_certificate() {
        let mut book = ConnectionBook::default();
        book.opened("a", "01:02", T0 + time::Duration::days(1), "0.1.0", T0);
        let due = book.take_due();
        assert_eq!(due.len(), 1);
        let (cluster, status) = &due[0];
        assert_eq!(cluster, "a");
        assert!(status.connected);
        assert_eq!(status.streams, 1);
        assert_eq!(status.certificate_serial.as_deref(), Some("01:02"));
        assert_eq!(status.agent_version.as_deref(), Some("0.1.0"));
        assert!(book.take_due().is_empty(), "written once");
    }

    #[test]
    fn heartbeats_refresh_last_seen_only_every_period() {
        let mut book = ConnectionBook::default();
        book.opened("a", "01", T0, "", T0);
        book.take_due();
        assert!(!book.heard_from("a", T0 + time::Duration::seconds(10)));
        assert!(book.take_due().is_empty());
        assert!(book.heard_from("a", T0 + time::Duration::seconds(31)));
        let due = book.take_due();
        assert_eq!(due.len(), 1);
        assert!(!book.heard_from("a", T0 + time::Duration::seconds(40)));
        assert!(!book.heard_from("unknown", T0));
    }

    #[test]
    fn a_swap_keeps_the_cluster_connected_and_records_the_new_serial() {
        let mut book = ConnectionBook::default();
        book.opened("a", "old", T0, "", T0);
        book.opened("a", "new", T0, "", T0 + time::Duration::seconds(1));
        book.closed("a", T0 + time::Duration::seconds(2));
        let due = book.take_due();
        let status = &due[0].1;
        assert!(status.connected);
        assert_eq!(status.streams, 1);
        assert_eq!(status.certificate_serial.as_deref(), Some("new"));
        book.closed("a", T0 + time::Duration::seconds(3));
        assert!(!book.take_due()[0].1.connected);
        assert_eq!(book.open_streams(), 0);
    }

    #[test]
    fn stopping_disconnects_everyone() {
        let mut book = ConnectionBook::default();
        book.opened("a", "1", T0, "", T0);
        book.opened("b", "2", T0, "", T0);
        book.take_due();
        book.disconnect_all(T0);
        let due = book.take_due();
        assert_eq!(due.len(), 2);
        assert!(due.iter().all(|(_, s)| !s.connected && s.streams == 0));
    }

    #[test]
    fn a_stale_connected_status_is_taken_over_as_disconnected() {
        let mut book = ConnectionBook::default();
        let before = RelayClusterStatus {
            connected: true,
            streams: 1,
            certificate_serial: Some("aa".into()),
            last_seen: Some(kube_time(T0)),
            ..Default::default()
        };
        book.restore("a", &before, T0 + time::Duration::hours(1));
        let due = book.take_due();
        assert!(!due[0].1.connected);
        assert_eq!(due[0].1.certificate_serial.as_deref(), Some("aa"));
        assert_eq!(due[0].1.last_seen, Some(kube_time(T0)));
        let mut book = ConnectionBook::default();
        book.opened("a", "bb", T0, "", T0);
        book.take_due();
        book.restore("a", &before, T0);
        assert!(book.take_due().is_empty(), "a live stream wins");
    }

    #[test]
    fn a_failed_write_is_retried() {
        let mut book = ConnectionBook::default();
        book.opened("a", "1", T0, "", T0);
        book.take_due();
        book.retry("a");
        assert_eq!(book.take_due().len(), 1);
    }
}
