//! The access gate: tells live `Connect` sessions at once when their cluster's `RelayCluster`
//! changes what it allows (deleted, suspended, certificates revoked), so that the server can cut
//! a stream within a second of the change instead of at the agent's next reconnect.
//!
//! Each cluster with open sessions has one `tokio::sync::watch` channel of its
//! [`Registration`]; sessions hold receivers, the `RelayCluster` watch publishes into it. A
//! channel exists only while a session holds it, so the gate costs nothing for clusters without
//! a session, and a `RelayCluster` status write (the most common change) costs one map lookup
//! and no wake-up: a channel is only told when the registration itself changed.
//!
//! Hand-written because it is a map of tokio channels and nothing more; the decision of what a
//! registration allows is `decide::check_access`, and the stream's end lives in `service`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::watch;

use super::decide::Registration;
use crate::api::RelayCluster;

/// The registration of `cluster` as its spec says it (no Kubernetes types past this point).
pub fn registration_of(cluster: &RelayCluster) -> Registration {
    Registration {
        suspended: cluster.spec.suspended,
        revoked_before: cluster
            .spec
            .revoke_certificates_issued_before
            .as_ref()
            .and_then(crate::k8s::offset_time),
    }
}

/// The per-cluster channels, and where registrations are read from.
pub struct AccessGate {
    clusters: Store<RelayCluster>,
    namespace: String,
    channels: Mutex<HashMap<String, watch::Sender<Option<Registration>>>>,
}

impl AccessGate {
    /// A gate over the `RelayCluster`s of `clusters` in `namespace`.
    pub fn new(clusters: Store<RelayCluster>, namespace: &str) -> Arc<Self> {
        Arc::new(Self {
            clusters,
            namespace: namespace.to_string(),
            channels: Mutex::default(),
        })
    }

    /// The registration of `cluster` in the store now (`None`: no RelayCluster).
    pub fn registration(&self, cluster: &str) -> Option<Registration> {
        self.object(cluster)
            .map(|cluster| registration_of(&cluster))
    }

    /// `cluster`'s RelayCluster, when there is one.
    pub fn object(&self, cluster: &str) -> Option<Arc<RelayCluster>> {
        self.clusters
            .get(&ObjectRef::new(cluster).within(&self.namespace))
    }

    fn channels(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<Option<Registration>>>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Follows `cluster`'s registration from now on. The store is read under the gate's lock,
    /// so a change the watch publishes after this call is never missed: either it is already
    /// in the store, or the publish finds this channel.
    pub fn subscribe(self: &Arc<Self>, cluster: &str) -> Subscription {
        let mut channels = self.channels();
        let receiver = match channels.get(cluster) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = watch::channel(self.registration(cluster));
                channels.insert(cluster.to_string(), sender);
                receiver
            }
        };
        Subscription {
            gate: self.clone(),
            cluster: cluster.to_string(),
            receiver: Some(receiver),
        }
    }

    /// Tells `cluster`'s sessions its registration as the store has it now, if it changed.
    /// Call after the store took in a change of that RelayCluster (or its deletion).
    pub fn publish(&self, cluster: &str) {
        let channels = self.channels();
        if let Some(sender) = channels.get(cluster) {
            let now = self.registration(cluster);
            sender.send_if_modified(|current| {
                let changed = *current != now;
                *current = now;
                changed
            });
        }
    }

    /// [`publish`](Self::publish) for every cluster with sessions (after a re-list, which
    /// reports no deletions of its own).
    pub fn publish_all(&self) {
        let clusters: Vec<String> = self.channels().keys().cloned().collect();
        for cluster in clusters {
            self.publish(&cluster);
        }
    }

    /// Clusters with at least one session following them.
    pub fn followed(&self) -> usize {
        self.channels().len()
    }
}

/// One session's view of its cluster's registration; dropping the last one of a cluster drops
/// the cluster's channel.
pub struct Subscription {
    gate: Arc<AccessGate>,
    cluster: String,
    receiver: Option<watch::Receiver<Option<Registration>>>,
}

impl Subscription {
    /// The registration now (`None`: no RelayCluster), marked as seen.
    pub fn current(&mut self) -> Option<Registration> {
        self.receiver
            .as_mut()
            .and_then(|receiver| receiver.borrow_and_update().clone())
    }

    /// Waits until the registration changes, then returns it (`None`: no RelayCluster).
    pub async fn changed(&mut self) -> Option<Registration> {
        let Some(receiver) = self.receiver.as_mut() else {
            return std::future::pending().await;
        };
        if receiver.changed().await.is_err() {
            // The gate dropped the channel, which it does only once nobody follows it.
            return std::future::pending().await;
        }
        receiver.borrow_and_update().clone()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        drop(self.receiver.take());
        let mut channels = self.gate.channels();
        if channels
            .get(&self.cluster)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            channels.remove(&self.cluster);
        }
    }
}
