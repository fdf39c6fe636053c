//! The connection book: a plain, clock-injected record of the sessions this replica holds (open
//! streams, certificate, last contact), and which `RelayCluster` status writes are due because of
//! them. No Kubernetes client or network type: the writer (`writer`) drains it.
//!
//! Every write names this replica in `status.replica`. A write after a stream opened is a
//! [`StatusWrite::Claim`] (the newest session wins, whoever held the cluster before); every later
//! write about the same session is a [`StatusWrite::Update`], applied only while the status
//! still names this replica, so that a replica whose agent moved elsewhere never overwrites the
//! new holder.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use time::OffsetDateTime;

use crate::api::RelayClusterStatus;
use crate::k8s::kube_time;

/// One status write and its condition.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusWrite {
    /// A session opened here: write whoever holds the cluster now.
    Claim(RelayClusterStatus),
    /// A change to a session held here: write only while the status names this replica.
    Update(RelayClusterStatus),
    /// A status nobody vouches for any more (its replica is dead, or it is this replica's
    /// from before a restart): write only if the object is still at `resource_version`.
    Clear {
        /// The disconnected status.
        status: RelayClusterStatus,
        /// The resource version the decision was made on.
        resource_version: String,
    },
}

impl StatusWrite {
    /// The status written.
    pub fn status(&self) -> &RelayClusterStatus {
        match self {
            Self::Claim(status) | Self::Update(status) | Self::Clear { status, .. } => status,
        }
    }

    /// A low-cardinality label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Claim(_) => "claim",
            Self::Update(_) => "update",
            Self::Clear { .. } => "clear",
        }
    }
}

/// What this replica knows about one cluster's agent.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConnection {
    /// Open Connect streams on this replica.
    pub streams: u32,
    /// Serial of the certificate of the newest stream.
    pub serial: Option<String>,
    /// notAfter of that certificate.
    pub not_after: Option<OffsetDateTime>,
    /// The agent's version from its newest hello.
    pub agent_version: Option<String>,
    /// The fingerprint of the root the newest stream's certificate chains to.
    pub root: Option<Arc<str>>,
    /// The fingerprint of the intermediate that issued it.
    pub issuer: Option<Arc<str>>,
    /// Last contact.
    pub last_seen: OffsetDateTime,
    /// `last_seen` as last written.
    written_last_seen: Option<OffsetDateTime>,
    /// A write taken from the book has not finished yet.
    writing: bool,
    /// When the last write finished (the settle time counts from here: a write queued behind
    /// thousands of others in a connect storm lands long after it was taken).
    written_at: Option<OffsetDateTime>,
    /// The next write must claim the cluster (a stream opened, or the status lost it).
    claim: bool,
}

/// Every cluster this replica has held a session for, and which ones need a status write.
#[derive(Debug)]
pub struct ConnectionBook {
    replica: String,
    refresh: time::Duration,
    settle: time::Duration,
    clusters: BTreeMap<String, ClusterConnection>,
    dirty: Due,
}

impl ConnectionBook {
    /// An empty book for replica `replica`, refreshing `status.lastSeen` from heartbeats at most
    /// every `refresh`, and reclaiming a status only when its last write here is at least
    /// `settle` old (a write takes a moment to show in the watch the sweep reads; reclaiming
    /// before would write every claim of a connect storm twice).
    pub fn new(replica: &str, refresh: time::Duration, settle: time::Duration) -> Self {
        Self {
            replica: replica.to_string(),
            refresh,
            settle,
            clusters: BTreeMap::new(),
            dirty: Due::default(),
        }
    }

    /// This replica's name, as statuses carry it.
    pub fn replica(&self) -> &str {
        &self.replica
    }

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
                root: None,
                issuer: None,
                last_seen: now,
                written_last_seen: None,
                writing: false,
                written_at: None,
                claim: false,
            });
        entry.streams += 1;
        entry.serial = Some(serial.to_string());
        entry.not_after = Some(not_after);
        entry.agent_version = Some(agent_version.to_string()).filter(|v| !v.is_empty());
        entry.last_seen = now;
        entry.claim = true;
        self.dirty.insert(cluster.to_string());
    }

    /// The newest stream's certificate chains to root `root` through intermediate `issuer`
    /// (fingerprints; `None` when unknown). Call with [`opened`](Self::opened).
    pub fn anchored(&mut self, cluster: &str, root: Option<Arc<str>>, issuer: Option<Arc<str>>) {
        if let Some(entry) = self.clusters.get_mut(cluster) {
            entry.root = root;
            entry.issuer = issuer;
        }
    }

    /// A heartbeat arrived; true when that makes a status write due.
    pub fn heard_from(&mut self, cluster: &str, now: OffsetDateTime) -> bool {
        let Some(entry) = self.clusters.get_mut(cluster) else {
            return false;
        };
        entry.last_seen = now;
        let due = entry
            .written_last_seen
            .is_none_or(|written| now - written >= self.refresh);
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
            if entry.streams == 0 {
                entry.claim = false;
            }
            self.dirty.insert(cluster.to_string());
        }
    }

    /// The status says this replica does not hold `cluster` although a stream is open here
    /// (another replica cleared it while this one could not renew its Lease, or a write was
    /// lost): claim it again. False when no stream is open here, while a write of it is still
    /// on its way, or when this replica's last write finished less than the settle time before
    /// `now` (the watch may not show that write yet).
    pub fn reclaim(&mut self, cluster: &str, now: OffsetDateTime) -> bool {
        let settle = self.settle;
        match self.clusters.get_mut(cluster) {
            Some(entry)
                if entry.streams > 0
                    && !entry.writing
                    && entry
                        .written_at
                        .is_none_or(|written| now - written >= settle) =>
            {
                entry.claim = true;
                self.dirty.insert(cluster.to_string());
                true
            }
            _ => false,
        }
    }

    /// Whether any write is due.
    pub fn has_due(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// The writes due, marking them written.
    pub fn take_due(&mut self) -> Vec<(String, StatusWrite)> {
        self.take_due_at_most(usize::MAX)
    }

    /// The `limit` writes due longest, oldest first, marking them written: a connect storm's
    /// claims are written in the order their sessions opened, so none waits behind ones that
    /// came later.
    pub fn take_due_at_most(&mut self, limit: usize) -> Vec<(String, StatusWrite)> {
        let due = self.dirty.pop_front(limit);
        due.into_iter()
            .filter_map(|cluster| {
                let entry = self.clusters.get_mut(&cluster)?;
                entry.written_last_seen = Some(entry.last_seen);
                entry.writing = true;
                let status = status_of(entry, &self.replica);
                let write = if std::mem::take(&mut entry.claim) {
                    StatusWrite::Claim(status)
                } else {
                    StatusWrite::Update(status)
                };
                Some((cluster, write))
            })
            .collect()
    }

    /// A write taken from the book finished (whatever its outcome) at `now`.
    pub fn finished(&mut self, cluster: &str, now: OffsetDateTime) {
        if let Some(entry) = self.clusters.get_mut(cluster) {
            entry.writing = false;
            entry.written_at = Some(now);
        }
    }

    /// A write of this book's failed with an error worth retrying: marks it due again (a claim
    /// stays a claim).
    pub fn retry(&mut self, cluster: &str, write: &StatusWrite) {
        if let Some(entry) = self.clusters.get_mut(cluster) {
            if matches!(write, StatusWrite::Claim(_)) && entry.streams > 0 {
                entry.claim = true;
            }
            self.dirty.insert(cluster.to_string());
        }
    }

    /// The cluster's RelayCluster is gone: forgets it unless a stream is still open here (a
    /// session that outlives its RelayCluster is being cut; its close writes once more, and
    /// that write, gone too, forgets it). Nothing about it is written again.
    pub fn forget(&mut self, cluster: &str) {
        if self.streams(cluster) == 0 {
            self.clusters.remove(cluster);
            self.dirty.remove(cluster);
        }
    }

    /// Marks every cluster with streams here disconnected (the server is stopping) and due.
    pub fn disconnect_all(&mut self, now: OffsetDateTime) {
        for (cluster, entry) in &mut self.clusters {
            if entry.streams > 0 {
                entry.streams = 0;
                entry.claim = false;
                entry.last_seen = now;
                self.dirty.insert(cluster.clone());
            }
        }
    }

    /// The record of one cluster.
    pub fn get(&self, cluster: &str) -> Option<&ClusterConnection> {
        self.clusters.get(cluster)
    }

    /// Streams open here on `cluster`.
    pub fn streams(&self, cluster: &str) -> u32 {
        self.clusters.get(cluster).map_or(0, |c| c.streams)
    }

    /// Streams open across all clusters.
    pub fn open_streams(&self) -> u32 {
        self.clusters.values().map(|c| c.streams).sum()
    }
}

/// Clusters with a status write due, in the order they became due (each once).
#[derive(Debug, Default)]
struct Due {
    order: VecDeque<String>,
    members: HashSet<String>,
}

impl Due {
    fn insert(&mut self, cluster: String) {
        if self.members.insert(cluster.clone()) {
            self.order.push_back(cluster);
        }
    }

    fn remove(&mut self, cluster: &str) {
        if self.members.remove(cluster) {
            self.order.retain(|c| c != cluster);
        }
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn pop_front(&mut self, limit: usize) -> Vec<String> {
        let taken: Vec<String> = self.order.drain(..limit.min(self.order.len())).collect();
        for cluster in &taken {
            self.members.remove(cluster);
        }
        taken
    }
}

/// The status a record stands for, naming `replica`.
fn status_of(entry: &ClusterConnection, replica: &str) -> RelayClusterStatus {
    RelayClusterStatus {
        connected: entry.streams > 0,
        replica: Some(replica.to_string()),
        last_seen: Some(kube_time(entry.last_seen)),
        certificate_serial: entry.serial.clone(),
        certificate_not_after: entry.not_after.map(kube_time),
        agent_version: entry.agent_version.clone(),
        certificate_root: entry.root.as_deref().map(str::to_string),
        certificate_issuer: entry.issuer.as_deref().map(str::to_string),
        streams: entry.streams,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-28 12:00:00 UTC);
    const REFRESH: time::Duration = time::Duration::minutes(10);

    fn book() -> ConnectionBook {
        ConnectionBook::new("relay-0", REFRESH, time::Duration::seconds(15))
    }

    fn only(due: Vec<(String, StatusWrite)>) -> (String, StatusWrite) {
        assert_eq!(due.len(), 1, "{due:?}");
        due.into_iter().next().unwrap()
    }

    #[test]
    fn a_connect_is_claimed_at_once_with_its_certificate_and_replica() {
        let mut book = book();
        book.opened("a", "01:02", T0 + time::Duration::days(1), "0.1.0", T0);
        let (cluster, write) = only(book.take_due());
        assert_eq!(cluster, "a");
        let StatusWrite::Claim(status) = write else {
            panic!("a new session claims: {write:?}")
        };
        assert!(status.connected);
        assert_eq!(status.streams, 1);
        assert_eq!(status.replica.as_deref(), Some("relay-0"));
        assert_eq!(status.certificate_serial.as_deref(), Some("01:02"));
        assert_eq!(status.agent_version.as_deref(), Some("0.1.0"));
        assert!(book.take_due().is_empty(), "written once");
    }

    #[test]
    fn a_cluster_whose_relaycluster_is_gone_is_forgotten_once_its_streams_closed() {
        let mut book = book();
        book.opened("a", "01", T0 + time::Duration::days(1), "", T0);
        book.take_due();
        // Gone while the stream is open: kept, so the stream's close still finds it.
        book.forget("a");
        assert_eq!(book.streams("a"), 1);
        book.closed("a", T0);
        assert_eq!(only(book.take_due()).0, "a");
        // That write found it gone too: forgotten, and nothing more is due for it.
        book.forget("a");
        assert!(book.get("a").is_none());
        assert!(!book.heard_from("a", T0 + REFRESH));
        book.closed("a", T0 + REFRESH);
        assert!(book.take_due().is_empty());
    }

    #[test]
    fn heartbeats_refresh_last_seen_only_every_period_and_only_as_updates() {
        let mut book = book();
        book.opened("a", "01", T0, "", T0);
        book.take_due();
        assert!(!book.heard_from("a", T0 + time::Duration::minutes(9)));
        assert!(book.take_due().is_empty());
        assert!(book.heard_from("a", T0 + time::Duration::minutes(10)));
        let (_, write) = only(book.take_due());
        assert!(matches!(write, StatusWrite::Update(_)), "{write:?}");
        assert_eq!(
            write.status().last_seen,
            Some(kube_time(T0 + time::Duration::minutes(10)))
        );
        assert!(!book.heard_from("a", T0 + time::Duration::minutes(11)));
        assert!(!book.heard_from("unknown", T0));
    }

    #[test]
    fn a_swap_keeps_the_cluster_connected_and_records_the_new_serial() {
        let mut book = book();
        book.opened("a", "old", T0, "", T0);
        book.opened("a", "new", T0, "", T0 + time::Duration::seconds(1));
        book.closed("a", T0 + time::Duration::seconds(2));
        let (_, write) = only(book.take_due());
        assert!(matches!(write, StatusWrite::Claim(_)));
        assert!(write.status().connected);
        assert_eq!(write.status().streams, 1);
        assert_eq!(write.status().certificate_serial.as_deref(), Some("new"));
        book.closed("a", T0 + time::Duration::seconds(3));
        let (_, write) = only(book.take_due());
        assert!(
            matches!(write, StatusWrite::Update(_)),
            "a close never claims"
        );
        assert!(!write.status().connected);
        assert_eq!(book.open_streams(), 0);
    }

    #[test]
    fn a_connect_then_close_before_the_write_is_an_update_not_a_claim() {
        // Claiming a disconnected status would overwrite another replica's live session.
        let mut book = book();
        book.opened("a", "1", T0, "", T0);
        book.closed("a", T0);
        let (_, write) = only(book.take_due());
        assert!(matches!(write, StatusWrite::Update(_)), "{write:?}");
        assert!(!write.status().connected);
    }

    #[test]
    fn stopping_disconnects_everyone_held_here() {
        let mut book = book();
        book.opened("a", "1", T0, "", T0);
        book.opened("b", "2", T0, "", T0);
        book.take_due();
        book.disconnect_all(T0);
        let due = book.take_due();
        assert_eq!(due.len(), 2);
        assert!(
            due.iter().all(
                |(_, w)| matches!(w, StatusWrite::Update(s) if !s.connected && s.streams == 0)
            )
        );
    }

    #[test]
    fn a_lost_claim_is_reclaimed_only_while_a_stream_is_open_and_once_its_write_settled() {
        let mut book = book();
        book.opened("a", "1", T0, "", T0);
        assert!(book.has_due());
        book.take_due();
        assert!(!book.has_due());
        // Still on its way (queued behind a storm's writes): never reclaimed, however late.
        assert!(!book.reclaim("a", T0 + time::Duration::minutes(5)));
        let landed = T0 + time::Duration::seconds(40);
        book.finished("a", landed);
        let settled = landed + time::Duration::seconds(15);
        assert!(
            !book.reclaim("a", settled - time::Duration::seconds(1)),
            "the watch may not show the claim yet"
        );
        assert!(book.take_due().is_empty());
        assert!(book.reclaim("a", settled));
        let (_, write) = only(book.take_due());
        assert!(matches!(write, StatusWrite::Claim(_)));
        book.closed("a", settled);
        book.take_due();
        assert!(!book.reclaim("a", settled + time::Duration::hours(1)));
        assert!(!book.reclaim("never-seen", settled));
        assert!(book.take_due().is_empty());
    }

    #[test]
    fn writes_are_taken_in_the_order_they_became_due_a_bounded_batch_at_a_time() {
        let mut book = book();
        for cluster in ["m", "z", "a", "k"] {
            book.opened(cluster, "1", T0, "", T0);
        }
        // "z" changes again while queued: it keeps its place.
        book.heard_from("z", T0 + REFRESH);
        let first: Vec<String> = book
            .take_due_at_most(2)
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        assert_eq!(first, ["m", "z"]);
        book.opened("b", "1", T0, "", T0);
        let rest: Vec<String> = book
            .take_due_at_most(10)
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        assert_eq!(rest, ["a", "k", "b"]);
        assert!(!book.has_due());
    }

    #[test]
    fn a_failed_write_is_retried_as_the_same_kind() {
        let mut book = book();
        book.opened("a", "1", T0, "", T0);
        let (_, claim) = only(book.take_due());
        book.retry("a", &claim);
        let (_, again) = only(book.take_due());
        assert!(matches!(again, StatusWrite::Claim(_)));
        book.retry("a", &StatusWrite::Update(again.status().clone()));
        let (_, update) = only(book.take_due());
        assert!(matches!(update, StatusWrite::Update(_)));
        book.retry("unknown", &update);
        assert!(book.take_due().is_empty());
    }
}
