//! The connection book: a plain, clock-injected record of the sessions this replica holds (open
//! streams, certificate, last contact), and which `RelayCluster` status writes are due because of
//! them. No Kubernetes client or network type: the writer (`writer`) drains it.
//!
//! Every write names this replica in `status.replica`. A write after a stream opened is a
//! [`StatusWrite::Claim`] (the newest session wins, whoever held the cluster before); every later
//! write about the same session is a [`StatusWrite::Update`], applied only while the status
//! still names this replica, so that a replica whose agent moved elsewhere never overwrites the
//! new holder.

use std::collections::{HashMap, HashSet, VecDeque};
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
    /// The resourceVersion the last write produced (None when it wrote nothing).
    written_version: Option<String>,
    /// The newest resourceVersion the watch showed of the cluster.
    observed_version: Option<String>,
    /// The versions the watch showed from `written_version` on (that write's first, then newer
    /// ones; at most [`SHOWN_SINCE_WRITE`]): a sweep that compares an object at one of them
    /// compares what includes that write. Empty until the watch shows the write.
    shown_since_write: Vec<String>,
    /// The next write must claim the cluster (a stream opened, or the status lost it).
    claim: bool,
}

/// How many settle times the sweep waits for the watch to show a write whose resourceVersion
/// it never showed (a relist shows only the newest version of each object).
const UNSEEN_WRITE_SETTLES: i32 = 4;

/// How many versions from this replica's last write on the book remembers per cluster.
const SHOWN_SINCE_WRITE: usize = 8;

impl ClusterConnection {
    /// The watch showed this cluster at `version`.
    fn observe(&mut self, version: &str) {
        if self.written_version.as_deref() == Some(version) {
            self.shown_since_write = vec![version.to_string()];
        } else if !self.shown_since_write.is_empty()
            && !self.shown_since_write.iter().any(|v| v == version)
        {
            if self.shown_since_write.len() == SHOWN_SINCE_WRITE {
                self.shown_since_write.remove(1);
            }
            self.shown_since_write.push(version.to_string());
        }
        if self.observed_version.as_deref() != Some(version) {
            self.observed_version = Some(version.to_string());
        }
    }

    /// Whether the object a sweep compared, at `version`, includes this replica's last write:
    /// the watch showed that version at or after the write's own, or the write is `settle` old
    /// (a write that produced no version), or `UNSEEN_WRITE_SETTLES` times that (a version
    /// the watch never showed, or a sweep comparing an older copy than the watch has now).
    fn includes_last_write(
        &self,
        version: &str,
        now: OffsetDateTime,
        settle: time::Duration,
    ) -> bool {
        let Some(written_at) = self.written_at else {
            return true;
        };
        if self.shown_since_write.iter().any(|v| v == version) {
            return true;
        }
        let wait = if self.written_version.is_some() {
            settle * UNSEEN_WRITE_SETTLES
        } else {
            settle
        };
        now - written_at >= wait
    }
}

/// Every cluster this replica has held a session for, and which ones need a status write.
#[derive(Debug)]
pub struct ConnectionBook {
    replica: String,
    refresh: time::Duration,
    settle: time::Duration,
    /// Looked up by name on every heartbeat and, for every RelayCluster, on every sweep; never
    /// walked in order.
    clusters: HashMap<String, ClusterConnection>,
    dirty: Due,
}

impl ConnectionBook {
    /// An empty book for replica `replica`, refreshing `status.lastSeen` from heartbeats at most
    /// every `refresh`, and reclaiming a status only once the watch the sweep reads shows this
    /// replica's last write of it, or `settle` after that write when the watch cannot say (see
    /// [`ConnectionBook::reclaim`]; reclaiming before would write a connect storm's claims
    /// twice).
    pub fn new(replica: &str, refresh: time::Duration, settle: time::Duration) -> Self {
        Self {
            replica: replica.to_string(),
            refresh,
            settle,
            clusters: HashMap::new(),
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
                written_version: None,
                observed_version: None,
                shown_since_write: Vec::new(),
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
    /// lost): claim it again. `version` is the resourceVersion of the object the sweep
    /// compared. False when no stream is open here, while a write of it is still on its way,
    /// or while that object may predate this replica's last write: it does not once the watch
    /// showed that write's version and then `version` (versions are compared for equality
    /// only: Kubernetes gives them no order); should the watch never show the write's version
    /// (a relist shows only the newest), it does after a bound (see
    /// [`ClusterConnection::includes_last_write`]). A watch that lags behind a busy API
    /// server, or a sweep comparing a copy older than the watch, thus never makes a connect
    /// storm's claims go out twice.
    pub fn reclaim(&mut self, cluster: &str, version: &str, now: OffsetDateTime) -> bool {
        let settle = self.settle;
        match self.clusters.get_mut(cluster) {
            Some(entry)
                if entry.streams > 0
                    && !entry.writing
                    && entry.includes_last_write(version, now, settle) =>
            {
                entry.claim = true;
                self.dirty.insert(cluster.to_string());
                true
            }
            _ => false,
        }
    }

    /// The watch showed `cluster` at `resource_version`.
    pub fn observed(&mut self, cluster: &str, resource_version: &str) {
        if let Some(entry) = self.clusters.get_mut(cluster) {
            entry.observe(resource_version);
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
                entry.shown_since_write.clear();
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

    /// A write taken from the book finished at `now`; `written_version` is the resourceVersion
    /// it produced (None when nothing was written: refused, superseded, failed).
    pub fn finished(&mut self, cluster: &str, now: OffsetDateTime, written_version: Option<&str>) {
        if let Some(entry) = self.clusters.get_mut(cluster) {
            entry.writing = false;
            entry.written_at = Some(now);
            entry.written_version = written_version.map(str::to_string);
            // The watch may have shown the write before its response arrived.
            if let Some(version) = entry.observed_version.clone() {
                entry.observe(&version);
            }
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
        assert!(!book.reclaim("a", "1", T0 + time::Duration::minutes(5)));
        let landed = T0 + time::Duration::seconds(40);
        book.finished("a", landed, None);
        let settled = landed + time::Duration::seconds(15);
        assert!(
            !book.reclaim("a", "1", settled - time::Duration::seconds(1)),
            "the watch may not show the claim yet"
        );
        assert!(book.take_due().is_empty());
        assert!(book.reclaim("a", "1", settled));
        let (_, write) = only(book.take_due());
        assert!(matches!(write, StatusWrite::Claim(_)));
        book.closed("a", settled);
        book.take_due();
        assert!(!book.reclaim("a", "1", settled + time::Duration::hours(1)));
        assert!(!book.reclaim("never-seen", "1", settled));
        assert!(book.take_due().is_empty());
    }

    #[test]
    fn a_claim_is_reclaimed_only_from_a_copy_that_includes_it_however_late_the_watch_is() {
        let settle = time::Duration::seconds(15);
        let mut book = book();
        book.opened("a", "1", T0, "", T0);
        book.take_due();
        book.finished("a", T0, Some("7"));
        // The watch lags: it still shows the version before the claim. However long that
        // takes, short of the unseen-version bound, the claim is not written again.
        book.observed("a", "5");
        assert!(!book.reclaim("a", "5", T0 + settle));
        assert!(!book.reclaim("a", "5", T0 + settle * 3));
        // The watch shows the claim, then someone else's newer write; a sweep comparing a copy
        // from before the claim (its snapshot is older than the watch) still does not reclaim.
        book.observed("a", "7");
        book.observed("a", "8");
        assert!(!book.reclaim("a", "5", T0 + time::Duration::seconds(1)));
        // One comparing the newer write reclaims at once: the status really lost the claim.
        assert!(book.reclaim("a", "8", T0 + time::Duration::seconds(1)));
        let (_, write) = only(book.take_due());
        assert!(matches!(write, StatusWrite::Claim(_)));
        // A new write in flight: never reclaimed.
        assert!(!book.reclaim("a", "8", T0 + time::Duration::hours(1)));
        // Its event came before its response: seen all the same.
        book.observed("a", "9");
        book.finished("a", T0 + settle, Some("9"));
        assert!(book.reclaim("a", "9", T0 + settle));
        book.take_due();
        // A version the watch never shows (a relist skipped it): reclaimed after the bound.
        book.finished("a", T0 + settle * 2, Some("11"));
        book.observed("a", "12");
        assert!(!book.reclaim("a", "12", T0 + settle * 5));
        assert!(book.reclaim("a", "12", T0 + settle * 6));
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
