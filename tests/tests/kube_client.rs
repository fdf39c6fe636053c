//! `relay_issuer::kube_client` against the sandbox API server: a client built from a kubeconfig
//! with the rate-limiting layer in its stack works, and the layer delays what exceeds the burst
//! (as the API server saw the requests arrive; the limiter's exact timing is unit-tested under
//! tokio's paused clock in `relay_issuer::kube_client`).

use futures::future::join_all;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_sandbox::Sandbox;
use relay_issuer::kube_client::{
    ClientOptions, LimitStats, RateLimitLayer, client_from_config, client_with_layer,
};
use std::time::Duration;

/// The kube config the binaries would get: read from the sandbox's kubeconfig file.
async fn config(sandbox: &Sandbox) -> kube::Config {
    let kubeconfig = Kubeconfig::read_from(sandbox.kubeconfig()).unwrap();
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap()
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "data": {"k": "v"},
    }))
    .unwrap()
}

#[tokio::test]
async fn a_client_from_config_lists_and_creates() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = client_from_config(config(&sandbox).await, &ClientOptions::default()).unwrap();

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|namespace| namespace.metadata.name)
        .collect();
    assert!(names.iter().any(|name| name == "default"), "{names:?}");
    assert!(names.iter().any(|name| name == "kube-system"), "{names:?}");

    // The kubeconfig's namespace is the client's default namespace.
    let config_maps: Api<ConfigMap> = Api::default_namespaced(client);
    config_maps
        .create(&PostParams::default(), &config_map("made-by-relay"))
        .await
        .unwrap();
    let listed: Vec<String> = config_maps
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|config_map| config_map.metadata.name)
        .collect();
    assert!(
        listed.iter().any(|name| name == "made-by-relay"),
        "{listed:?}"
    );
    assert!(
        sandbox
            .requests()
            .iter()
            .any(|record| record.verb == "create" && record.resource == "configmaps"),
        "the request reached the sandbox"
    );
}

#[tokio::test]
async fn client_from_config_refuses_bad_options() {
    let sandbox = Sandbox::start().await.unwrap();
    let options = ClientOptions {
        kube_api_qps: -1.0,
        ..ClientOptions::default()
    };
    let Err(error) = client_from_config(config(&sandbox).await, &options) else {
        panic!("a negative --kube-api-qps was accepted");
    };
    assert!(error.to_string().contains("--kube-api-qps"), "{error}");
}

/// One token every 1/20 s.
const INTERVAL: Duration = Duration::from_millis(50);

#[tokio::test]
async fn at_20_qps_and_burst_5_the_api_server_sees_five_at_once_then_one_per_50_ms() {
    let sandbox = Sandbox::start().await.unwrap();
    let layer = RateLimitLayer::new(20.0, 5).unwrap();
    let client = client_with_layer(config(&sandbox).await, &layer).unwrap();
    let config_maps: Api<ConfigMap> = Api::default_namespaced(client);

    // 25 requests made at once: kube's Buffer hands them to the layer one after another. The
    // limiter's full burst (5) is available when they start.
    let started = tokio::time::Instant::now();
    let names: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    let results = join_all(names.iter().map(|name| {
        let config_maps = config_maps.clone();
        let config_map = config_map(name);
        async move {
            config_maps
                .create(&PostParams::default(), &config_map)
                .await
        }
    }))
    .await;
    for result in results {
        result.unwrap();
    }

    // When the API server received them (the sandbox's request log, same clock): a request
    // arrives after its token was granted, and the k-th token after the burst is granted k
    // intervals after the start at the earliest. So the (5 + k)-th arrival cannot come before
    // started + k × 50 ms, whatever the scheduling.
    let mut arrivals: Vec<Duration> = sandbox
        .timed_requests()
        .into_iter()
        .filter(|timed| timed.request.verb == "create" && timed.request.resource == "configmaps")
        .map(|timed| timed.received - started)
        .collect();
    arrivals.sort();
    assert_eq!(arrivals.len(), 25, "each request reached the sandbox once");
    for (index, arrival) in arrivals.iter().enumerate().skip(5) {
        let earliest = INTERVAL * u32::try_from(index - 4).unwrap();
        assert!(
            *arrival >= earliest,
            "request {} arrived {arrival:?} after the start, before its token ({earliest:?}): {arrivals:?}",
            index + 1
        );
    }
    // And the limiter does not hold them much longer than the rate asks (1 s for the last).
    assert!(
        arrivals[24] < Duration::from_secs(5),
        "the last request arrived only after {:?}: {arrivals:?}",
        arrivals[24]
    );
    let mut created: Vec<String> = config_maps
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|config_map| config_map.metadata.name)
        .collect();
    created.sort();
    assert_eq!(created, names);
}

#[tokio::test]
async fn qps_0_never_waits() {
    let sandbox = Sandbox::start().await.unwrap();
    let options = ClientOptions {
        kube_api_qps: 0.0,
        kube_api_burst: 1,
    };
    let layer = options.layer().unwrap();
    let client = client_with_layer(config(&sandbox).await, &layer).unwrap();
    let config_maps: Api<ConfigMap> = Api::default_namespaced(client);
    let results = join_all((0..50).map(|_| {
        let config_maps = config_maps.clone();
        async move { config_maps.list(&ListParams::default()).await }
    }))
    .await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(
        layer.stats(),
        LimitStats {
            admitted: 50,
            delayed: 0,
        }
    );
}
