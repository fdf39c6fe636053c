//! Which relay server replicas are alive, and what a replica does about statuses it finds: the
//! pure half of running several replicas. No Kubernetes client; times are injected.
//!
//! Each replica renews a Lease of its own (`writer::ReplicaLease`); a replica is alive while it
//! keeps renewing. [`ReplicaLiveness`] judges that the way client-go's leader election does: by
//! when *this* process saw the Lease change, on its own monotonic clock, so clock skew between
//! nodes does not matter. [`sweep`] compares what the `RelayCluster` statuses say with the
//! sessions held here and the replicas alive, and says which statuses to reclaim or clear.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::book::{ConnectionBook, StatusWrite};
use crate::api::RelayClusterStatus;

/// What this process saw of one replica's Lease.
#[derive(Debug, Clone)]
struct Seen {
    /// The Lease's renew marker (its `renewTime`) when last changed.
    marker: String,
    /// When this process saw the marker change.
    changed_at: Instant,
    /// The Lease's duration.
    duration: Duration,
}

/// The replicas this process knows to be alive.
#[derive(Debug)]
pub struct ReplicaLiveness {
    me: String,
    started: Instant,
    /// How long a replica never seen is given (its Lease may not have been listed yet).
    grace: Duration,
    synced: bool,
    seen: HashMap<String, Seen>,
}

impl ReplicaLiveness {
    /// Liveness as seen by replica `me`, started at `now`; a replica whose Lease this process
    /// has not seen is given `grace` from the first complete list of Leases.
    pub fn new(me: &str, grace: Duration, now: Instant) -> Self {
        Self {
            me: me.to_string(),
            started: now,
            grace,
            synced: false,
            seen: HashMap::new(),
        }
    }

    /// A replica's Lease, as listed or watched: renewed when `marker` differs from the last one
    /// seen (the first sighting counts as a renewal: the Lease gets a full term from now).
    pub fn observe(&mut self, replica: &str, marker: &str, duration: Duration, now: Instant) {
        match self.seen.get_mut(replica) {
            Some(seen) if seen.marker == marker => seen.duration = duration,
            _ => {
                self.seen.insert(
                    replica.to_string(),
                    Seen {
                        marker: marker.to_string(),
                        changed_at: now,
                        duration,
                    },
                );
            }
        }
    }

    /// A replica's Lease was deleted (it stopped cleanly).
    pub fn deleted(&mut self, replica: &str) {
        self.seen.remove(replica);
    }

    /// The first complete list of Leases has been seen at `now` (a re-list after a watch
    /// restart too: replicas missing from it are forgotten).
    pub fn listed(&mut self, present: &[&str], now: Instant) {
        self.seen.retain(|name, _| present.contains(&name.as_str()));
        if !self.synced {
            self.synced = true;
            self.started = now;
        }
    }

    /// Whether `replica` holds its sessions at `now`: this replica always; another while its
    /// Lease keeps changing within its duration; one never seen only during the grace after the
    /// first list (and until that list).
    pub fn is_live(&self, replica: &str, now: Instant) -> bool {
        if replica == self.me {
            return true;
        }
        match self.seen.get(replica) {
            Some(seen) => now.saturating_duration_since(seen.changed_at) <= seen.duration,
            None => !self.synced || now.saturating_duration_since(self.started) <= self.grace,
        }
    }

    /// When the next Lease of those seen expires after `now`, if any: the next moment a sweep
    /// can change something.
    pub fn next_expiry(&self, now: Instant) -> Option<Instant> {
        self.seen
            .values()
            .map(|seen| seen.changed_at + seen.duration)
            .filter(|at| *at > now)
            .min()
    }
}

/// One `RelayCluster` as the reflector holds it.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The cluster's name.
    pub cluster: &'a str,
    /// Its status, if any.
    pub status: Option<&'a RelayClusterStatus>,
    /// Its resource version.
    pub resource_version: &'a str,
}

/// Compares each observed status with the sessions in `book` and the replicas alive:
/// - a cluster with a stream open here whose status does not show it connected through this
///   replica or another live one is reclaimed (marked due in `book`), once this replica's last
///   write of it has had time to show;
/// - a status that says connected through a dead replica, through no replica (written by a
///   server before replicas existed), or through this one although no stream is open here (a
///   previous run of this replica) is cleared, if unchanged since observed.
///
/// Returns the clears; the reclaims are in `book`.
pub fn sweep<'a>(
    book: &mut ConnectionBook,
    observed: impl IntoIterator<Item = Observed<'a>>,
    is_live: impl Fn(&str) -> bool,
    now: time::OffsetDateTime,
) -> Vec<(String, StatusWrite)> {
    let mut clears = Vec::new();
    for Observed {
        cluster,
        status,
        resource_version,
    } in observed
    {
        let connected_through = status.filter(|s| s.connected).map(|s| s.replica.as_deref());
        let here = book.streams(cluster) > 0;
        let held_elsewhere_alive = matches!(
            connected_through,
            Some(Some(replica)) if replica != book.replica() && is_live(replica)
        );
        let held_here = connected_through == Some(Some(book.replica()));
        if here {
            if !held_here && !held_elsewhere_alive {
                book.reclaim(cluster, resource_version, now);
            }
            continue;
        }
        let Some(status) = status.filter(|_| connected_through.is_some()) else {
            continue;
        };
        if held_elsewhere_alive {
            continue;
        }
        let cleared = RelayClusterStatus {
            connected: false,
            streams: 0,
            ..status.clone()
        };
        clears.push((
            cluster.to_string(),
            StatusWrite::Clear {
                status: cleared,
                resource_version: resource_version.to_string(),
            },
        ));
    }
    clears
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::kube_time;
    use time::OffsetDateTime;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-28 12:00:00 UTC);
    const TERM: Duration = Duration::from_secs(15);

    #[test]
    fn a_replica_lives_while_its_lease_keeps_changing_on_our_clock() {
        let start = Instant::now();
        let mut live = ReplicaLiveness::new("me", TERM, start);
        live.listed(&[], start);
        live.observe("other", "t1", TERM, start);
        assert!(live.is_live("other", start + TERM));
        // The same marker again is no renewal, whatever the clocks say.
        live.observe("other", "t1", TERM, start + Duration::from_secs(10));
        assert!(!live.is_live("other", start + TERM + Duration::from_millis(1)));
        live.observe("other", "t2", TERM, start + Duration::from_secs(20));
        assert!(live.is_live("other", start + Duration::from_secs(35)));
        assert!(!live.is_live("other", start + Duration::from_secs(36)));
        assert_eq!(
            live.next_expiry(start + Duration::from_secs(21)),
            Some(start + Duration::from_secs(35))
        );
        live.deleted("other");
        assert!(
            !live.is_live("other", start + Duration::from_secs(21)),
            "a deleted Lease is a clean stop"
        );
        assert!(live.is_live("me", start + Duration::from_secs(3600)));
    }

    #[test]
    fn a_replica_never_seen_gets_the_grace_after_the_first_list_only() {
        let start = Instant::now();
        let mut live = ReplicaLiveness::new("me", TERM, start);
        let late = start + Duration::from_secs(120);
        assert!(
            live.is_live("ghost", late),
            "before any list nothing is known"
        );
        live.listed(&["other"], late);
        assert!(live.is_live("ghost", late + TERM));
        assert!(!live.is_live("ghost", late + TERM + Duration::from_millis(1)));
    }

    #[test]
    fn a_relist_forgets_replicas_whose_lease_went_away() {
        let start = Instant::now();
        let mut live = ReplicaLiveness::new("me", TERM, start);
        live.listed(&[], start);
        live.observe("other", "t1", TERM, start);
        live.listed(&[], start + Duration::from_secs(1));
        assert!(!live.is_live("other", start + TERM + Duration::from_secs(2)));
    }

    fn status(connected: bool, replica: Option<&str>) -> RelayClusterStatus {
        RelayClusterStatus {
            connected,
            replica: replica.map(str::to_string),
            streams: u32::from(connected),
            last_seen: Some(kube_time(T0)),
            certificate_serial: Some("aa".into()),
            ..Default::default()
        }
    }

    fn observed<'a>(cluster: &'a str, status: Option<&'a RelayClusterStatus>) -> Observed<'a> {
        Observed {
            cluster,
            status,
            resource_version: "7",
        }
    }

    fn alive(replica: &str) -> bool {
        replica != "dead"
    }

    #[test]
    fn statuses_vouched_for_by_nobody_are_cleared_if_unchanged() {
        let mut book = ConnectionBook::new(
            "me",
            time::Duration::minutes(10),
            time::Duration::seconds(15),
        );
        let by_dead = status(true, Some("dead"));
        let by_old_server = status(true, None);
        let by_my_last_run = status(true, Some("me"));
        let by_live = status(true, Some("other"));
        let disconnected = status(false, Some("dead"));
        let clears = sweep(
            &mut book,
            [
                observed("a", Some(&by_dead)),
                observed("b", Some(&by_old_server)),
                observed("c", Some(&by_my_last_run)),
                observed("d", Some(&by_live)),
                observed("e", Some(&disconnected)),
                observed("f", None),
            ],
            alive,
            T0,
        );
        let cleared: Vec<&str> = clears.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(cleared, ["a", "b", "c"]);
        for (_, write) in &clears {
            let StatusWrite::Clear {
                status,
                resource_version,
            } = write
            else {
                panic!("{write:?}")
            };
            assert_eq!(resource_version, "7");
            assert!(!status.connected && status.streams == 0);
            assert_eq!(status.certificate_serial.as_deref(), Some("aa"), "kept");
            assert_eq!(status.last_seen, Some(kube_time(T0)), "kept");
        }
        assert_eq!(
            clears[0].1.status().replica.as_deref(),
            Some("dead"),
            "says who held it last"
        );
        assert!(book.take_due().is_empty(), "nothing held here");
    }

    #[test]
    fn sessions_held_here_are_reclaimed_unless_a_live_replica_shows_them() {
        let mut book = ConnectionBook::new(
            "me",
            time::Duration::minutes(10),
            time::Duration::seconds(15),
        );
        for cluster in ["a", "b", "c", "d", "e", "f"] {
            book.opened(cluster, "bb", T0, "", T0);
        }
        for (cluster, _) in book.take_due() {
            book.finished(&cluster, T0, None);
        }
        let by_dead = status(true, Some("dead"));
        let by_old_server = status(true, None);
        let by_me = status(true, Some("me"));
        let by_live = status(true, Some("other"));
        let cleared_by_someone = status(false, Some("me"));
        let clears = sweep(
            &mut book,
            [
                observed("a", Some(&by_dead)),
                observed("b", Some(&by_old_server)),
                observed("c", Some(&by_me)),
                observed("d", Some(&by_live)),
                observed("e", Some(&cleared_by_someone)),
                observed("f", None),
            ],
            alive,
            T0 + time::Duration::seconds(15),
        );
        assert!(clears.is_empty(), "{clears:?}");
        let due = book.take_due();
        let reclaimed: Vec<&str> = due.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(reclaimed, ["a", "b", "e", "f"]);
        assert!(
            due.iter()
                .all(|(_, w)| matches!(w, StatusWrite::Claim(s) if s.connected))
        );
    }
}
