//! Fault injection and the request log: what tests use to make the sandbox misbehave on purpose
//! and to see what clients actually did (and when the sandbox received it).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Which failure an injected fault produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// HTTP 500 InternalError.
    Internal,
    /// HTTP 429 TooManyRequests with Retry-After.
    TooManyRequests,
    /// HTTP 409 Conflict (writes only; reads get 500 instead).
    Conflict,
}

/// The fault settings, changed at run time through [`crate::Sandbox::faults`].
#[derive(Debug, Default)]
pub struct Faults {
    /// Fraction of requests (0..=1, in millionths) that fail.
    rate_ppm: AtomicU64,
    kinds: Mutex<Vec<FaultKind>>,
    counter: AtomicU64,
    /// Bumped to make every open watch close.
    watch_epoch: AtomicU64,
}

impl Faults {
    /// Makes `fraction` of API requests fail, cycling through `kinds`. `fraction` 0 turns it off.
    pub fn fail_fraction(&self, fraction: f64, kinds: &[FaultKind]) {
        let ppm = (fraction.clamp(0.0, 1.0) * 1_000_000.0) as u64;
        if let Ok(mut k) = self.kinds.lock() {
            *k = kinds.to_vec();
        }
        self.rate_ppm.store(ppm, Ordering::SeqCst);
    }

    /// Decides whether this request fails, deterministically spreading failures at the rate.
    pub(crate) fn next_fault(&self) -> Option<FaultKind> {
        let ppm = self.rate_ppm.load(Ordering::SeqCst);
        if ppm == 0 {
            return None;
        }
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        // Fail request n when the running count of failures due crosses an integer.
        let before = n * ppm / 1_000_000;
        let after = (n + 1) * ppm / 1_000_000;
        if after == before {
            return None;
        }
        let kinds = self.kinds.lock().ok()?;
        kinds
            .get((after as usize) % kinds.len().max(1))
            .copied()
            .or(Some(FaultKind::Internal))
    }

    /// Closes every open watch (clients must resume them).
    pub fn drop_watches(&self) {
        self.watch_epoch.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn watch_epoch(&self) -> u64 {
        self.watch_epoch.load(Ordering::SeqCst)
    }
}

/// One entry of the request log: a request and when the sandbox received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedRequest {
    /// When the sandbox received it, on tokio's clock (the paused clock under
    /// `tokio::time::pause`, the monotonic clock otherwise).
    pub received: tokio::time::Instant,
    /// The request.
    pub request: RequestRecord,
}

/// One request as the sandbox saw it, as kube-apiserver authorizes it: a patch that creates its
/// object is recorded twice, as the `patch` it is and as the `create` it is also authorized as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group ("" for core).
    pub group: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource ("status") or "".
    pub subresource: String,
    /// Namespace or "".
    pub namespace: String,
    /// Object name, or for a list/watch the name a `metadata.name=` field selector asks for
    /// (as kube-apiserver authorizes it), or "".
    pub name: String,
    /// `fieldManager` query parameter or "".
    pub field_manager: String,
    /// User-Agent header, to tell clients apart.
    pub user_agent: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_rate_is_respected_exactly_over_many_requests() {
        let f = Faults::default();
        f.fail_fraction(
            0.05,
            &[
                FaultKind::Internal,
                FaultKind::TooManyRequests,
                FaultKind::Conflict,
            ],
        );
        let failures = (0..10_000).filter(|_| f.next_fault().is_some()).count();
        assert_eq!(failures, 500);
        f.fail_fraction(0.0, &[]);
        assert!((0..100).all(|_| f.next_fault().is_none()));
    }
}
