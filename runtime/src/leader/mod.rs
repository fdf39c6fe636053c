//! Leader election on a `coordination.k8s.io/v1` Lease, following client-go's algorithm, so
//! that only one controller replica signs at a time.
//!
//! - `config`: [`LeaderElectionConfig`] and its validation (client-go's 15s / 10s / 2s).
//! - [`decide`]: the algorithm as pure functions (acquire, renew or wait; do we still lead;
//!   the release record). No clock reads, no kube types.
//! - `lease`: [`spawn`], the loop that reads and writes the Lease with resourceVersion-
//!   conditional writes and releases it on shutdown. The only code here that holds a client.
//! - `handle`: [`Leadership`], what the controller asks before signing and waits on to start
//!   and stop its work (also the source of the leader metric).
//! - [`monotonic_now`] (here): the one clock all of them read.
//!
//! What does not live here: starting and stopping the controllers as leadership comes and goes
//! (`relay_issuer::controller`), the command-line flags (`relay_issuer::cli`), and the leader
//! metric itself.
//!
//! Why our own and not a lease crate. The candidates were `kube-lease-manager` (once a
//! dependency here, never used, now dropped) and `kubert`'s `lease` module. We keep this one
//! because the controller's rule "sign only while leadership has time to spare" needs the
//! deadline measured the way client-go measures it, on this process's monotonic clock from the
//! last renewal it saw succeed (a follower: from the last change it observed), so that two
//! replicas whose wall clocks disagree never both believe they lead. `kubert`'s `Claim` carries an
//! expiry computed from the Lease's `renewTime` (the holder's wall clock), which is exactly the
//! skew-sensitive reading client-go avoids; its `LeaseManager::init` also needs the Lease to
//! exist beforehand, which would move a create into the Helm chart. `kube-lease-manager` exposes
//! only "changed / is leader", with no deadline at all. The algorithm here is pure (`decide`,
//! driven by paused-clock tests of every transition) and the glue small (`lease`, one client);
//! the cost of keeping it is that code, tested against the sandbox and against kube-apiserver
//! (`make e2e` kills a leader with -9 and times the takeover).

mod config;
pub mod decide;
mod handle;
mod lease;

pub use config::{
    DEFAULT_LEASE_DURATION, DEFAULT_RENEW_DEADLINE, DEFAULT_RETRY_PERIOD, LeaderElectionConfig,
};
pub use handle::Leadership;
pub use lease::spawn;

/// The monotonic clock every leadership deadline is measured on: tokio's. Outside a paused test
/// runtime that is the system's monotonic clock; under `tokio::time::pause` tests drive it, so
/// the election's timing is tested exactly rather than against the wall clock.
pub(crate) fn monotonic_now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
