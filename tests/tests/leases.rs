//! Leader election through kube-lease-manager (the lease library the issuer will use) against
//! the sandbox: one holder at a time, and the other takes over after a release.

use kube_lease_manager::LeaseManagerBuilder;
use relay_sandbox::Sandbox;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_holder_at_a_time_and_takeover_after_release() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = sandbox.client().unwrap();
    let manager = |identity: &str| {
        LeaseManagerBuilder::new(client.clone(), "relay-issuer-leader")
            .with_namespace("default")
            .with_identity(identity)
            .with_duration(3)
            .with_grace(1)
            .build()
    };
    let a = manager("replica-a").await.unwrap();
    let b = manager("replica-b").await.unwrap();
    assert!(
        a.changed().await.unwrap(),
        "the first replica acquires the lease"
    );
    let b_holds = tokio::time::timeout(Duration::from_millis(1500), b.changed()).await;
    assert!(
        !matches!(b_holds, Ok(Ok(true))),
        "the second replica must not hold it at the same time"
    );
    a.release().await.unwrap();
    let taken = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if b.changed().await.unwrap() {
                return;
            }
        }
    })
    .await;
    assert!(
        taken.is_ok(),
        "the second replica takes over after the release"
    );
    let requests = sandbox.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.resource == "leases" && !r.field_manager.is_empty()),
        "the lease library uses server-side apply with a field manager"
    );
}
