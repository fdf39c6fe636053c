//! `make bench-issuer`: how fast `relay-issuer controller` fulfils CertificateRequests.
//!
//! In one process: a sandbox with cert-manager's CRDs and ours, the cert-manager simulator's
//! approver (approve-all, as cert-manager's default approver with our ClusterRole), a
//! RelayIssuer with a P-256 CA, and one controller replica with its default settings.
//!
//! 1. Idle latency: `--single` requests one after another; each is created, the approver
//!    approves it, and the time from the moment the bench's watch sees `Approved=True` to the
//!    moment it sees `Ready=True` is recorded.
//! 2. Burst: `--requests` requests (CSRs generated beforehand) created at once from 32
//!    writers; the bench reports requests/s (requests / time from the first create to the last
//!    Ready) and the approval→Ready latency p50/p99 over the burst.
//!
//! A benchmark to run by hand, never a timed assertion in a test. Last line, for scripts:
//! `issuer bench: requests=… requests/s=… burst_p50=…ms burst_p99=…ms single_p50=…ms single_p99=…ms signatures=…`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cert_manager_sim::{Simulator, SimulatorOptions};
use futures::StreamExt;
use kube::api::{DynamicObject, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use relay_issuer::pki::generate::GeneratedKeyType;
use relay_sandbox::harness::{self, Replica};
use serde_json::json;
use tokio::sync::Mutex;

const NAMESPACE: &str = "team-a";

#[derive(Default)]
struct Seen {
    approved: HashMap<String, Instant>,
    ready: HashMap<String, Instant>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn request_object(name: &str, csr: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"request": STANDARD.encode(csr), "issuerRef": {"group": "relaytls.dev", "kind": "RelayIssuer", "name": "relay"},
                 "duration": "2160h", "usages": ["digital signature", "key encipherment", "client auth"]},
    }))
    .unwrap_or_else(|e| panic!("request object: {e}"))
}

fn latencies(seen: &Seen, names: &[String]) -> Vec<Duration> {
    let mut out: Vec<Duration> = names
        .iter()
        .filter_map(|n| {
            Some(
                seen.ready
                    .get(n)?
                    .saturating_duration_since(*seen.approved.get(n)?),
            )
        })
        .collect();
    out.sort();
    out
}

async fn wait_all_ready(seen: &Mutex<Seen>, names: &[String], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if names.iter().all(|n| {
            seen.try_lock()
                .map(|s| s.ready.contains_key(n))
                .unwrap_or(false)
        }) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    relay_issuer::install_crypto_provider();
    let args: Vec<String> = std::env::args().collect();
    let total = arg(&args, "--requests", 10_000);
    let singles = arg(&args, "--single", 50);

    let sandbox = harness::sandbox()
        .await
        .unwrap_or_else(|e| panic!("sandbox: {e}"));
    let client = sandbox.client().unwrap_or_else(|e| panic!("client: {e}"));
    let _simulator = Simulator::start(&sandbox, SimulatorOptions::default())
        .unwrap_or_else(|e| panic!("simulator: {e}"));
    let ca = harness::test_ca(GeneratedKeyType::P256, time::Duration::days(365))
        .unwrap_or_else(|e| panic!("ca: {e}"));
    harness::put_signing_secret(&client, NAMESPACE, "relay-tls-signing-secret", &ca)
        .await
        .unwrap_or_else(|e| panic!("secret: {e}"));
    harness::create_issuer(&client, Some(NAMESPACE), "relay", json!({}))
        .await
        .unwrap_or_else(|e| panic!("issuer: {e}"));
    let replica = Replica::start(
        client.clone(),
        relay_issuer::controller::Settings::new(harness::CONTROLLER_NAMESPACE),
        relay_issuer::leader::Leadership::always(),
    );

    // The bench's own view: when each request was first seen Approved, and first seen Ready.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watch = {
        let seen = seen.clone();
        let api = harness::requests(&client, NAMESPACE);
        tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = stream.next().await {
                let now = Instant::now();
                let objects = match event {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => vec![o],
                    _ => continue,
                };
                let mut seen = seen.lock().await;
                for o in objects {
                    let name = o.metadata.name.clone().unwrap_or_default();
                    let conditions = o.data["status"]["conditions"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let has = |t: &str| {
                        conditions
                            .iter()
                            .any(|c| c["type"] == t && c["status"] == "True")
                    };
                    if has("Approved") {
                        seen.approved.entry(name.clone()).or_insert(now);
                    }
                    if has("Ready") {
                        seen.ready.entry(name).or_insert(now);
                    }
                }
            }
        })
    };

    let requests = harness::requests(&client, NAMESPACE);
    // 1. Idle latency, one request at a time.
    let mut single_names = Vec::new();
    for i in 0..singles {
        let name = format!("single-{i}");
        let csr = harness::csr_pem(&json!({"commonName": name, "usages": ["digital signature", "key encipherment", "client auth"]}))
            .unwrap_or_else(|e| panic!("csr: {e}"));
        requests
            .create(&PostParams::default(), &request_object(&name, &csr))
            .await
            .unwrap_or_else(|e| panic!("create: {e}"));
        if !wait_all_ready(&seen, std::slice::from_ref(&name), Duration::from_secs(30)).await {
            eprintln!("{name} was not Ready within 30 s");
            return ExitCode::FAILURE;
        }
        single_names.push(name);
    }
    let single = latencies(&*seen.lock().await, &single_names);

    // 2. The burst.
    eprintln!("generating {total} CSRs …");
    let csrs: Vec<(String, String)> = (0..total)
        .map(|i| {
            let name = format!("burst-{i}");
            let csr = harness::csr_pem(&json!({"commonName": name, "usages": ["digital signature", "key encipherment", "client auth"]}))
                .unwrap_or_else(|e| panic!("csr: {e}"));
            (name, csr)
        })
        .collect();
    let names: Vec<String> = csrs.iter().map(|(n, _)| n.clone()).collect();
    let queue = Arc::new(std::sync::Mutex::new(csrs));
    eprintln!("creating {total} CertificateRequests at once …");
    let started = Instant::now();
    let writers: Vec<_> = (0..32)
        .map(|_| {
            let queue = queue.clone();
            let requests = requests.clone();
            tokio::spawn(async move {
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    let Some((name, csr)) = next else { break };
                    if let Err(e) = requests
                        .create(&PostParams::default(), &request_object(&name, &csr))
                        .await
                    {
                        eprintln!("create {name}: {e}");
                    }
                }
            })
        })
        .collect();
    for w in writers {
        let _ = w.await;
    }
    let created = started.elapsed();
    if !wait_all_ready(&seen, &names, Duration::from_secs(600)).await {
        let done = names
            .iter()
            .filter(|n| {
                seen.try_lock()
                    .map(|s| s.ready.contains_key(*n))
                    .unwrap_or(false)
            })
            .count();
        eprintln!("only {done} of {total} requests were Ready within 600 s");
        return ExitCode::FAILURE;
    }
    let last_ready = {
        let s = seen.lock().await;
        names.iter().filter_map(|n| s.ready.get(n)).max().copied()
    };
    let elapsed = last_ready
        .map(|t| t.duration_since(started))
        .unwrap_or(started.elapsed());
    let burst = latencies(&*seen.lock().await, &names);
    watch.abort();

    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "single request, idle system ({singles} one after another): approval→Ready p50 {} ms, p99 {} ms, max {} ms",
        ms(percentile(&single, 0.5)),
        ms(percentile(&single, 0.99)),
        ms(single.last().copied().unwrap_or_default())
    );
    println!(
        "burst of {total}: all created in {:.2} s; all Ready {:.2} s after the first create → {:.0} requests/s",
        created.as_secs_f64(),
        elapsed.as_secs_f64(),
        rate
    );
    println!(
        "burst approval→Ready: p50 {} ms, p99 {} ms, max {} ms",
        ms(percentile(&burst, 0.5)),
        ms(percentile(&burst, 0.99)),
        ms(burst.last().copied().unwrap_or_default())
    );
    println!(
        "signatures: {} (expected {}), CA parses: {}",
        replica.signatures(),
        total + singles,
        replica.metrics.ca_loads.get()
    );
    println!(
        "issuer bench: requests={total} requests/s={rate:.0} burst_p50={}ms burst_p99={}ms single_p50={}ms single_p99={}ms signatures={}",
        ms(percentile(&burst, 0.5)),
        ms(percentile(&burst, 0.99)),
        ms(percentile(&single, 0.5)),
        ms(percentile(&single, 0.99)),
        replica.signatures()
    );
    let signatures = replica.signatures();
    replica.stop().await;
    if signatures == (total + singles) as u64 {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "signed {signatures} certificates for {} requests: some were signed twice",
            total + singles
        );
        ExitCode::FAILURE
    }
}
