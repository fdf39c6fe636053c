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
