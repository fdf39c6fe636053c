//! Parsed signing CAs, cached per Secret and resourceVersion, so a burst of requests against
//! one issuer parses and checks the CA once, not once per request. A new resourceVersion (the
//! Secret changed) replaces the entry.
//!
//! What does not live here: fetching Secrets (the reconcilers do) and deciding readiness
//! (`decide`). Results that can change by the clock alone (a CA not valid *yet*) are not cached.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;

use super::decide::NotReady;
use crate::pki::SigningCa;

/// What loading a Secret's CA gave.
pub type CaResult = Result<Arc<SigningCa>, NotReady>;

#[derive(Default)]
struct Entry {
    resource_version: String,
    result: Option<CaResult>,
}

/// The cache. Cheap to share behind an `Arc`.
#[derive(Default)]
pub struct CaCache {
    entries: Mutex<HashMap<(String, String), Entry>>,
    loads: Counter<u64, AtomicU64>,
}

impl CaCache {
    /// A cache that counts its loads in `loads` (the `relay_issuer_ca_loads_total` metric).
    pub fn counting_in(loads: Counter<u64, AtomicU64>) -> Self {
        Self {
            loads,
            ..Self::default()
        }
    }

    /// The cached result for Secret `namespace/name` at `resource_version`, if any.
    pub fn get(&self, namespace: &str, name: &str, resource_version: &str) -> Option<CaResult> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get(&(namespace.to_string(), name.to_string()))?;
        if entry.resource_version != resource_version {
            return None;
        }
        entry.result.clone()
    }

    /// Records a freshly loaded result for Secret `namespace/name` at `resource_version`.
    pub fn insert(&self, namespace: &str, name: &str, resource_version: &str, result: CaResult) {
        self.loads.inc();
        if matches!(&result, Err(not_ready) if not_ready.reason == "CANotYetValid") {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(
            (namespace.to_string(), name.to_string()),
            Entry {
                resource_version: resource_version.to_string(),
                result: Some(result),
            },
        );
    }

    /// Drops the entry of a Secret that no longer exists.
    pub fn remove(&self, namespace: &str, name: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(&(namespace.to_string(), name.to_string()));
    }

    /// How many times a CA was parsed and checked (for the metric and tests).
    pub fn loads(&self) -> u64 {
        self.loads.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::generate::GeneratedKeyType;
    use crate::pki::test_support;

    fn not_ready(reason: &'static str) -> CaResult {
        Err(NotReady {
            reason,
            message: "m".into(),
        })
    }

    #[test]
    fn hit_only_at_the_same_resource_version() {
        let cache = CaCache::default();
        assert!(cache.get("ns", "s", "1").is_none());
        cache.insert("ns", "s", "1", not_ready("KeyMismatch"));
        assert_eq!(
            cache.get("ns", "s", "1").unwrap().unwrap_err().reason,
            "KeyMismatch"
        );
        assert!(
            cache.get("ns", "s", "2").is_none(),
            "a new resourceVersion misses"
        );
        assert!(
            cache.get("other", "s", "1").is_none(),
            "namespaces are separate"
        );
        cache.insert("ns", "s", "2", not_ready("NotACA"));
        assert!(
            cache.get("ns", "s", "1").is_none(),
            "the old version is replaced"
        );
        assert_eq!(cache.loads(), 2);
        cache.remove("ns", "s");
        assert!(cache.get("ns", "s", "2").is_none());
    }

    #[test]
    fn a_ca_not_yet_valid_is_not_cached() {
        let cache = CaCache::default();
        cache.insert("ns", "s", "1", not_ready("CANotYetValid"));
        assert!(cache.get("ns", "s", "1").is_none());
        assert_eq!(cache.loads(), 1);
    }

    #[test]
    fn a_loaded_ca_is_shared() {
        let cache = CaCache::default();
        let ca = Arc::new(test_support::mk_pki(GeneratedKeyType::P256).ca());
        cache.insert("ns", "s", "7", Ok(ca.clone()));
        let hit = cache.get("ns", "s", "7").unwrap().unwrap();
        assert!(Arc::ptr_eq(&hit, &ca));
    }
}
