//! Registered clusters and their connection status, with any number of relay server replicas.
//!
//! - [`book`]: the sessions this replica holds and the status writes they make due (pure).
//! - [`holders`]: which replicas are alive, and which statuses to reclaim or clear (pure).
//! - [`writer`]: the status writes, this replica's Lease, the Lease watch and the sweep (glue).
//!
//! How statuses stay true with several replicas (the README's "Relay server replicas" says it
//! for users): every status names the replica that wrote it; a replica writes "connected" when
//! a stream opens (the newest session wins) and changes a status afterwards only while it still
//! names it; each replica renews a Lease, and every replica clears statuses that say
//! "connected" through a replica whose Lease stopped changing. Whether a cluster is registered
//! is read from the `RelayCluster` reflector in `service`.

pub mod book;
pub mod holders;
pub mod writer;

pub use book::{ClusterConnection, ConnectionBook, StatusWrite};
pub use holders::{Observed, ReplicaLiveness, sweep};
pub use writer::{FIELD_MANAGER, REPLICA_LABEL, ReplicaLease, StatusWriter};
