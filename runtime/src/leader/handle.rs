//! [`Leadership`], the handle the rest of the process asks "do we lead?". It holds only the
//! current leadership deadline, published by the election loop (`lease.rs`); it makes no API
//! calls and decides nothing itself.

use std::time::Instant;

use tokio::sync::watch;

/// Whether this process leads, as a cheap cloneable handle.
///
/// The election loop publishes a deadline: the start of our last successful acquisition or
/// renewal plus the renew deadline (or nothing while we do not hold the Lease). Every check
/// compares it with the monotonic clock at the moment of the call, so leadership fades on time
/// even if the loop is stuck, cancelled or cannot reach the API server.
#[derive(Debug, Clone)]
pub struct Leadership {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// `--leader-elect=false`: always the leader.
    Always,
    /// Elected on a Lease.
    Elected(watch::Receiver<Option<Instant>>),
}

/// The writing side of [`Leadership`], held by the election loop.
#[derive(Debug)]
pub(crate) struct Publisher {
    sender: watch::Sender<Option<Instant>>,
}

impl Publisher {
    /// Publishes until when we lead (`None`: we do not).
    pub(crate) fn set(&self, deadline: Option<Instant>) {
        self.sender.send_if_modified(|current| {
            let changed = *current != deadline;
            *current = deadline;
            changed
        });
    }

    /// The deadline as published.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        *self.sender.borrow()
    }
}

impl Leadership {
    /// A handle that always leads and never loses (leader election disabled).
    pub fn always() -> Self {
        Self { kind: Kind::Always }
    }

    /// A handle for an election, with the publisher the election loop writes to.
    pub(crate) fn elected() -> (Self, Publisher) {
        let (sender, receiver) = watch::channel(None);
        (
            Self {
                kind: Kind::Elected(receiver),
            },
            Publisher { sender },
        )
    }

    /// Whether we lead right now. Safe to call right before signing: true only while we hold
    /// the Lease and less than the renew deadline has passed since our last successful
    /// acquisition or renewal began, so it turns false before any standby may take over.
    pub fn is_leader(&self) -> bool {
        match &self.kind {
            Kind::Always => true,
            Kind::Elected(receiver) => {
                let deadline = *receiver.borrow();
                deadline.is_some_and(|deadline| super::monotonic_now() < deadline)
            }
        }
    }

    /// Whether we lead now and will still lead `margin` from now unless a renewal extends it
    /// (always true for [`Leadership::always`]). The controller asks this before signing, so
    /// the status write that follows lands while it still leads.
    pub fn leads_for_at_least(&self, margin: std::time::Duration) -> bool {
        match &self.kind {
            Kind::Always => true,
            Kind::Elected(receiver) => {
                let deadline = *receiver.borrow();
                deadline.is_some_and(|deadline| {
                    deadline.saturating_duration_since(super::monotonic_now()) >= margin
                })
            }
        }
    }

    /// Until when we lead, if we do (`None` for [`Leadership::always`] or while not leading).
    pub fn deadline(&self) -> Option<Instant> {
        match &self.kind {
            Kind::Always => None,
            Kind::Elected(receiver) => {
                let deadline = *receiver.borrow();
                deadline.filter(|deadline| super::monotonic_now() < *deadline)
            }
        }
    }

    /// Resolves once we lead (at once if we already do). Never resolves after the election
    /// has stopped without us leading.
    pub async fn leading(&self) {
        let Kind::Elected(receiver) = &self.kind else {
            return;
        };
        let mut receiver = receiver.clone();
        loop {
            receiver.borrow_and_update();
            if self.is_leader() {
                return;
            }
            if receiver.changed().await.is_err() {
                // The election stopped; we will not lead again.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves once we no longer lead (at once if we do not lead now): when the Lease is
    /// released or taken over, or when the renew deadline passes without a successful renewal.
    /// Never resolves for [`Leadership::always`].
    pub async fn lost(&self) {
        let Kind::Elected(receiver) = &self.kind else {
            std::future::pending::<()>().await;
            return;
        };
        let mut receiver = receiver.clone();
        loop {
            let Some(deadline) = *receiver.borrow_and_update() else {
                return;
            };
            if super::monotonic_now() >= deadline {
                return;
            }
            let expiry = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline));
            tokio::select! {
                _ = expiry => {}
                changed = receiver.changed() => {
                    if changed.is_err() {
                        // The election stopped without withdrawing the deadline (e.g. its task
                        // was aborted): nobody will renew, so leadership ends at the deadline.
                        tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leader::monotonic_now;
    use std::time::Duration;

    // Every test runs on tokio's paused clock, which the handle reads: a deadline passes
    // exactly when the test's sleeps say so, and a sleep returns only once every other task
    // has done what it could (so "still waiting" after a sleep is a real observation).

    #[tokio::test(start_paused = true)]
    async fn always_leads_and_never_loses() {
        let leadership = Leadership::always();
        assert!(leadership.is_leader());
        assert_eq!(leadership.deadline(), None);
        tokio::time::timeout(Duration::from_millis(100), leadership.leading())
            .await
            .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(100), leadership.lost())
                .await
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn leads_only_before_the_published_deadline() {
        let (leadership, publisher) = Leadership::elected();
        assert!(!leadership.is_leader());
        publisher.set(Some(monotonic_now() + Duration::from_secs(60)));
        assert!(leadership.is_leader());
        assert!(leadership.deadline().is_some());
        publisher.set(Some(monotonic_now()));
        assert!(!leadership.is_leader(), "at the deadline we no longer lead");
        assert_eq!(leadership.deadline(), None);
        publisher.set(None);
        assert!(!leadership.is_leader());
        assert_eq!(publisher.deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn leading_waits_for_a_future_deadline() {
        let (leadership, publisher) = Leadership::elected();
        let clone = leadership.clone();
        let waiter = tokio::spawn(async move { clone.leading().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        // A deadline already in the past is not leadership.
        publisher.set(Some(monotonic_now() - Duration::from_millis(1)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        publisher.set(Some(monotonic_now() + Duration::from_secs(60)));
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn lost_resolves_at_the_deadline_unless_renewed() {
        let (leadership, publisher) = Leadership::elected();
        let start = monotonic_now();
        publisher.set(Some(start + Duration::from_millis(200)));
        let clone = leadership.clone();
        let waiter = tokio::spawn(async move {
            clone.lost().await;
            monotonic_now()
        });
        // Renewed before the first deadline: keeps leading past it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        publisher.set(Some(start + Duration::from_millis(400)));
        let lost_at = tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(lost_at - start, Duration::from_millis(400));
        assert!(!leadership.is_leader());
    }

    #[tokio::test(start_paused = true)]
    async fn lost_resolves_when_withdrawn_or_not_leading() {
        let (leadership, publisher) = Leadership::elected();
        tokio::time::timeout(Duration::from_millis(100), leadership.lost())
            .await
            .unwrap();
        publisher.set(Some(monotonic_now() + Duration::from_secs(60)));
        let clone = leadership.clone();
        let waiter = tokio::spawn(async move { clone.lost().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        publisher.set(None);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_publisher_lets_leadership_fade_at_the_deadline() {
        let (leadership, publisher) = Leadership::elected();
        let start = monotonic_now();
        publisher.set(Some(start + Duration::from_millis(150)));
        drop(publisher);
        assert!(leadership.is_leader());
        tokio::time::timeout(Duration::from_secs(1), leadership.lost())
            .await
            .unwrap();
        assert_eq!(monotonic_now() - start, Duration::from_millis(150));
        assert!(!leadership.is_leader());
        assert!(
            tokio::time::timeout(Duration::from_millis(100), leadership.leading())
                .await
                .is_err(),
            "a stopped election never leads again"
        );
    }
}
