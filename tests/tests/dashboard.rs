//! The Grafana dashboard (`deploy/grafana/relay-tls-dashboard.json`) queries only metrics the
//! three binaries really export, so it cannot drift from the code.

use std::collections::BTreeSet;

use prometheus_client::registry::Registry;
use regex::Regex;

/// Metric family names the binaries register: every `register("<name>", …)` call in their
/// metrics modules, under each module's prefix. (prometheus-client leaves families without
/// series out of a scrape, so an empty registry cannot be asked.) The same names must show up
/// in a scrape once they have series, which the end-to-end tests read.
fn exported() -> BTreeSet<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let call = Regex::new(r#"register\(\s*"([a-z_]+)""#).unwrap();
    let mut names = BTreeSet::new();
    for (file, prefix) in [
        ("issuer/src/controller/metrics.rs", "relay_issuer_"),
        ("issuer/src/server/metrics.rs", "relay_server_"),
        ("agent/src/metrics.rs", "relay_agent_"),
    ] {
        let source = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        for found in call.captures_iter(&source) {
            names.insert(format!("{prefix}{}", &found[1]));
        }
    }
    // Cross-check with a scrape: every family that has series is among them.
    let mut registry = Registry::default();
    relay_issuer::controller::metrics::Metrics::register(&mut registry);
    relay_issuer::server::metrics::ServerMetrics::register(&mut registry);
    relay_agent::Metrics::register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for family in text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
    {
        assert!(
            names.contains(family),
            "{family} is registered but not found in the sources"
        );
    }
    names
}

#[test]
fn every_dashboard_query_names_an_exported_metric() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/relay-tls-dashboard.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let exported = exported();
    let name = Regex::new(r"relay_(issuer|server|agent)_[a-z_]+").unwrap();
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            for found in name.find_iter(target["expr"].as_str().unwrap()) {
                let metric = found.as_str();
                let family = ["_total", "_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| metric.strip_suffix(suffix))
                    .unwrap_or(metric);
                assert!(
                    exported.contains(family),
                    "panel {:?} queries {metric}, which no binary exports; exported: {exported:?}",
                    panel["title"]
                );
                used.insert(family.to_string());
            }
        }
    }
    assert!(
        used.len() >= 15,
        "the dashboard covers the main metrics: {used:?}"
    );
}
