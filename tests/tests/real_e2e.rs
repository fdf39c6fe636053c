//! The relay lifecycle on a real Kubernetes control plane (`make e2e`): kube-apiserver with RBAC
//! and an audit log, and cert-manager's own controller, approver and webhook (`make cluster`),
//! or any cluster that runs cert-manager (`RELAY_E2E_KUBECONFIG`, an admin kubeconfig).
//!
//! Both charts are installed with the real `helm`; `relay-issuer controller`, `relay-issuer
//! server` and `relay-agent` run as local processes standing in for the pods of the Deployments
//! helm created: the args and env are read back from those Deployments (only listen addresses
//! are moved to loopback ports), and each process authenticates with a token of its own
//! ServiceAccount (`scripts/control-plane.sh kubeconfig-for`, or the TokenRequest API on another
//! cluster), so the API server's RBAC decides what it may do.
//!
//! One test, scenarios in order on one installation (each builds on the state before it):
//! - `kubectl describe certificaterequest` for waiting for approval (event only), Pending (issuer missing),
//!   Denied, Failed (policy) and Issued — the first two while cert-manager's approver may not
//!   approve our signers yet (the chart's approver ClusterRole is switched on by `helm upgrade`);
//! - Gloo-managed: the agent chart's Certificate → cert-manager's CertificateRequest → its
//!   approver → our controller → Secret → agent, then renewals driven by cert-manager itself
//!   (duration 1h, renewBefore 1h − 4s): distinct serials at the relay server, 0 failed RPCs;
//! - bring-your-own, twice: `kubectl create secret tls --dry-run=client -o yaml | kubectl apply`,
//!   then a certificate from cert-manager's own CA Issuer;
//! - the relay server's certificate reloaded (seen by `openssl s_client`) without touching the
//!   agent's stream, and bad Secret data refused with the last good certificate kept;
//! - expiry: a live session outlives a 4 s certificate, a new server process refuses the
//!   reconnect, a new certificate recovers it;
//! - two controller replicas on the real Lease API, the leader killed (-9) during a burst of
//!   1,000 CertificateRequests;
//! - the Kubernetes CSR API: `kubectl certificate approve`, then our signer
//!   (`relaytls.dev/agent`) issues, or fails a CSR that breaks a rule;
//! - last, the root rotation (`relay-issuer ca rotate --apply`) with the workload plane of the
//!   remote-signing scenario as an agents' cluster (`--agent-kubeconfig`): stage 5 refused
//!   naming the bring-your-own and the decommissioned cluster, then completed; no failed RPC;
//! - least privilege judged by the API server: no 403 for our ServiceAccounts, and from the
//!   audit log every (verb, resource) they used is granted by the installed charts and every
//!   granted rule was used except the ones named in `UNREACHABLE` (skipped on a cluster without
//!   our audit log).
//!
//! - remote signing (`spec.relay`) between two control planes: a second plane from the same
//!   script is the workload cluster (controller only, the agent chart's RelayIssuer forwarding
//!   to this plane's relay server); only on `make cluster`'s planes.
//!
//! Ignored by plain `cargo test`: it needs the Go-built plane (or a cluster); `make e2e` runs
//! it with `--ignored`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DynamicObject, ObjectMeta, PostParams};
use kube_sandbox::faults::RequestRecord;
use relay_sandbox::charts::{self, parse_manifests};
use relay_sandbox::e2e::{
    metric, metrics, wait_metric, wait_metric_grows, wait_not_ready_because, wait_openssl_serial,
    wait_ready,
};
use relay_sandbox::harness::{self, create_issuer, create_request, put_secret_data};
use relay_sandbox::plane::{AGENT, CONTROLLER, Plane, SERVER};
use relay_sandbox::processes::free_port;
use relay_sandbox::relay::{
    Pem, RELAY_NAMESPACE, RelayPki, RotationPki, TRUST_DOMAIN, assert_bundles_hold_only,
    csr_failed, install_relay, metric_sum, metric_value, put_root_secret, put_signing_secret,
    register_cluster, run_relay_issuer, wait_csr,
};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type TestResult = Result<(), BoxError>;

/// The Gloo-managed agent's namespace.
const MANAGED_NS: &str = "team-a";
/// The bring-your-own agent's namespace.
const BYO_NS: &str = "team-b";

/// Granted rules the suite cannot reach, per ServiceAccount, as `verb resource.group`: no
/// RelayClusterIssuer is used, no event repeats within the API's series window, and the relay
/// server's Secrets never turn bad here (so it writes no event). The README names these.
const UNREACHABLE: &[(&str, &[&str])] = &[
    (
        "relay-issuer-controller",
        &[
            "patch events.events.k8s.io",
            "patch relayclusterissuers/status.relaytls.dev",
            // kube-apiserver checks `sign` on the signer name inside the CSR status write that
            // sets a certificate; the audit log records that write as a patch.
            "sign signers.certificates.k8s.io",
        ],
    ),
    // The server deletes its replica Lease when it stops, after the audit log is read; it
    // creates the Lease by server-side apply, which kube-apiserver authorizes as create inside
    // a request the audit log records as a patch.
    (
        "relay-issuer-server",
        &[
            "create events.events.k8s.io",
            "patch events.events.k8s.io",
            "delete leases.coordination.k8s.io",
            "create leases.coordination.k8s.io",
        ],
    ),
    ("relay-agent", &["patch events.events.k8s.io"]),
];

/// Waits until CertificateRequest `namespace/name`'s Ready condition has `reason` and a message
/// containing `words`; returns the condition.
async fn wait_request(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    reason: &str,
    words: &str,
) -> Result<Value, BoxError> {
    let api = harness::requests(client, namespace);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let object = api.get_opt(name).await?;
        let ready = object.as_ref().and_then(harness::ready_condition);
        if let Some(ready) = &ready
            && ready["reason"] == reason
            && ready["message"].as_str().is_some_and(|m| m.contains(words))
        {
            return Ok(ready.clone());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{namespace}/{name}: Ready never became {reason} ({words:?}); last {ready:?}"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The object's `Ready` condition status is True.
async fn wait_ready_object(
    api: &Api<DynamicObject>,
    name: &str,
    within: Duration,
) -> Result<DynamicObject, BoxError> {
    let deadline = Instant::now() + within;
    loop {
        let object = api.get_opt(name).await?;
        if let Some(object) = &object
            && harness::ready_condition(object).is_some_and(|c| c["status"] == "True")
        {
            return Ok(object.clone());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{name} not Ready within {within:?}: {:?}",
                object.map(|o| o.data["status"].clone())
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn certificates(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &cert_manager_sim::resource("Certificate", "certificates"),
    )
}

/// The chain and key in Secret `namespace/name`.
async fn secret_pem(client: &kube::Client, namespace: &str, name: &str) -> Result<Pem, BoxError> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(name)
        .await?;
    let data = secret.data.unwrap_or_default();
    let text = |key: &str| {
        data.get(key)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .unwrap_or_default()
    };
    Ok(Pem {
        chain: text("tls.crt"),
        key: text("tls.key"),
    })
}

/// The audit log's requests of ServiceAccount `namespace/account`, as request records, and the
/// number answered 403.
fn audited(
    audit: &Path,
    namespace: &str,
    account: &str,
) -> Result<(Vec<RequestRecord>, Vec<String>), BoxError> {
    let user = format!("system:serviceaccount:{namespace}:{account}");
    let mut records = Vec::new();
    let mut forbidden = Vec::new();
    for line in std::fs::read_to_string(audit)?.lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if event["user"]["username"] != user.as_str() {
            continue;
        }
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let object = &event["objectRef"];
        if event["responseStatus"]["code"] == 403 {
            forbidden.push(format!("{} {}", s(&event["verb"]), s(&event["requestURI"])));
        }
        if object.is_null() {
            continue; // non-resource URLs (discovery, /version)
        }
        records.push(RequestRecord {
            verb: s(&event["verb"]),
            group: s(&object["apiGroup"]),
            resource: s(&object["resource"]),
            subresource: s(&object["subresource"]),
            namespace: s(&object["namespace"]),
            name: s(&object["name"]),
            field_manager: String::new(),
            user_agent: s(&event["userAgent"]),
        });
    }
    Ok((records, forbidden))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real control plane with cert-manager: run `make e2e`"]
async fn lifecycle_on_a_real_control_plane_with_cert_manager() -> TestResult {
    relay_issuer::install_crypto_provider();
    let started = Instant::now();
    let plane = Plane::start("e2e").await?;
    let client = plane.client.clone();
    let (cm_namespace, cm_account) = match std::env::var("RELAY_E2E_CERT_MANAGER_SERVICEACCOUNT") {
        Ok(value) => {
            let (ns, name) = value
                .split_once('/')
                .ok_or("RELAY_E2E_CERT_MANAGER_SERVICEACCOUNT must be NAMESPACE/NAME")?;
            (ns.to_string(), name.to_string())
        }
        Err(_) => ("cert-manager".to_string(), "cert-manager".to_string()),
    };
    for ns in [RELAY_NAMESPACE, MANAGED_NS, BYO_NS] {
        plane.namespace(ns)?;
    }

    // ---- helm install relay-issuer: at first without the approver's ClusterRole, so
    // cert-manager's approver cannot approve our signers (Pending / Denied below).
    let issuer_chart = charts::chart_dir(charts::ISSUER_CHART)
        .display()
        .to_string();
    let approver = |enabled: bool| {
        vec![
            format!("certManager.approver.enabled={enabled}"),
            format!("certManager.approver.serviceAccount.name={cm_account}"),
            format!("certManager.approver.serviceAccount.namespace={cm_namespace}"),
        ]
    };
    let install_issuer = |enabled: bool| {
        plane.helm_install(
            "relay-issuer",
            &issuer_chart,
            RELAY_NAMESPACE,
            &approver(enabled),
        )
    };
    install_issuer(false)?;
    let pki = RelayPki::new()?;
    install_relay(
        &client,
        &pki,
        &["cluster-a", "cluster-b"],
        &[MANAGED_NS, BYO_NS],
    )
    .await?;
    put_signing_secret(&client, MANAGED_NS, &pki).await?;
    create_issuer(&client, Some(MANAGED_NS), "relay", json!({})).await?;
    create_issuer(
        &client,
        Some(MANAGED_NS),
        "strict",
        json!({"policy": {"maxDuration": "720h"}}),
    )
    .await?;

    let controller_admin = free_port();
    let controller = plane
        .start_ready(
            CONTROLLER,
            RELAY_NAMESPACE,
            controller_admin,
            &[],
            "relay-issuer-controller",
            Duration::from_secs(60),
        )
        .await?;
    let relay_port = free_port();
    let server_admin = free_port();
    let listen = [("--listen", format!("127.0.0.1:{relay_port}"))];
    let mut server = plane
        .start_ready(
            SERVER,
            RELAY_NAMESPACE,
            server_admin,
            &listen,
            "relay-issuer-server",
            Duration::from_secs(60),
        )
        .await?;
    eprintln!(
        "e2e: issuer chart installed, controller and server up after {:?}",
        started.elapsed()
    );

    // ---- describe: waiting for approval and Denied, with no approver allowed yet. While a
    // request is unapproved the controller writes no condition (as cert-manager's issuers):
    // describe shows the Normal WaitingForApproval event alone.
    create_request(&client, MANAGED_NS, "waiting", "RelayIssuer", "relay").await?;
    create_request(&client, MANAGED_NS, "denied", "RelayIssuer", "relay").await?;
    let waiting_words = [
        "Normal WaitingForApproval",
        "Not signing CertificateRequest until it is Approved",
    ];
    let waiting = plane
        .describe_until(MANAGED_NS, "waiting", &waiting_words)
        .await?;
    let object = harness::requests(&client, MANAGED_NS)
        .get("waiting")
        .await?;
    assert!(
        harness::ready_condition(&object).is_none(),
        "no condition while unapproved: {:?}",
        object.data["status"]
    );
    plane
        .describe_until(MANAGED_NS, "denied", &waiting_words)
        .await?;
    harness::decide_request(&client, MANAGED_NS, "denied", false).await?;
    wait_request(&client, MANAGED_NS, "denied", "Denied", "").await?;
    let denied = plane
        .describe_until(MANAGED_NS, "denied", &["Reason: Denied", "Warning Denied"])
        .await?;
    assert!(!denied.contains("CertificateIssued"), "{denied}");

    // ---- the approver's ClusterRole on: cert-manager approves, we sign or refuse.
    install_issuer(true)?;
    create_request(&client, MANAGED_NS, "no-issuer", "RelayIssuer", "absent").await?;
    let pending = wait_request(&client, MANAGED_NS, "no-issuer", "Pending", "absent").await?;
    let no_issuer = plane
        .describe_until(
            MANAGED_NS,
            "no-issuer",
            &["Pending", "absent", "Warning Pending"],
        )
        .await?;
    create_request(&client, MANAGED_NS, "over-policy", "RelayIssuer", "strict").await?;
    wait_request(&client, MANAGED_NS, "over-policy", "Failed", "maxDuration").await?;
    let failed = plane
        .describe_until(
            MANAGED_NS,
            "over-policy",
            &["Failed", "maxDuration", "Warning Failed"],
        )
        .await?;
    eprintln!(
        "e2e: describe — waiting for approval:\n{}\ndenied:\n{}\nissuer missing ({}):\n{}\nfailed:\n{}",
        tail(&waiting),
        tail(&denied),
        pending["message"],
        tail(&no_issuer),
        tail(&failed)
    );

    // ---- 6. The Kubernetes CSR API: `kubectl certificate approve`, then our signer signs.
    kubernetes_csr_api(&plane, &client, &pki).await?;

    // ---- 1. Gloo-managed: the agent chart's Certificate, renewed by cert-manager itself.
    let agent_chart = charts::chart_dir(charts::AGENT_CHART).display().to_string();
    let relay_address = format!("glooAgent.relay.serverAddress=127.0.0.1:{relay_port}");
    plane.install_agent(
        &agent_chart,
        MANAGED_NS,
        "cluster-a",
        &relay_address,
        &[
            "certificate.issuer.create=false",
            "certificate.duration=1h",
            // renewBefore = 0.999 × 1h = 3596s: cert-manager renews 4 s after each issuance.
            "glooAgent.relay.clientTlsSecretRotationGracePeriodRatio=0.999",
        ],
    )?;
    let agent_admin = free_port();
    let mut agent = plane
        .start_ready(
            AGENT,
            MANAGED_NS,
            agent_admin,
            &[],
            "relay-agent-team-a",
            Duration::from_secs(60),
        )
        .await
        .map_err(|e| format!("{e}\ncontroller:\n{}", controller.log()))?;
    let first = plane
        .clusters()
        .wait("cluster-a", Duration::from_secs(30), |s| s.connected)
        .await?;
    let renewals_wanted: usize = std::env::var("RELAY_E2E_RENEWALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let renewals_began = Instant::now();
    let serials = plane
        .clusters()
        .wait_renewals(
            "cluster-a",
            first.certificate_serial.unwrap_or_default(),
            renewals_wanted,
            Duration::from_secs(30 * renewals_wanted as u64 + 60),
        )
        .await
        .map_err(|e| {
            format!(
                "{e}\nagent log:\n{}\ncontroller log:\n{}",
                agent.log(),
                controller.log()
            )
        })?;
    let text = metrics(agent_admin);
    let swaps = metric_value(&text, "relay_agent_certificate_swaps_total");
    let failures = metric_value(&text, "relay_agent_rpc_failures_total");
    let unique: BTreeSet<_> = serials.iter().collect();
    eprintln!(
        "e2e: gloo-managed: {} distinct serials at the relay server ({renewals_wanted} renewals by cert-manager in {:?}), {swaps} swaps, {failures} failed RPCs",
        unique.len(),
        renewals_began.elapsed()
    );
    assert_eq!(unique.len(), renewals_wanted + 1, "{serials:?}");
    assert!(swaps >= renewals_wanted as f64, "{text}");
    assert_eq!(failures, 0.0, "{text}\n{}", agent.log());
    // describe: Issued, on the Certificate's first request.
    let requests = harness::requests(&client, MANAGED_NS)
        .list(&Default::default())
        .await?;
    let issued_name = requests
        .items
        .iter()
        .filter(|r| r.data.pointer("/spec/issuerRef/name") == Some(&json!("relay")))
        .filter(|r| {
            r.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("cert-manager.io/certificate-name"))
        })
        .filter_map(|r| r.metadata.name.clone())
        .next()
        .ok_or("no CertificateRequest of the agent's Certificate")?;
    let issued = plane
        .describe_until(
            MANAGED_NS,
            &issued_name,
            &[
                "Reason: Issued",
                "Normal CertificateIssued",
                "cert-manager.io",
            ],
        )
        .await?;
    eprintln!("e2e: describe — issued:\n{}", tail(&issued));
    agent.terminate(Duration::from_secs(10)).await?;
    // No more renewals for the rest of the suite.
    certificates(&client, MANAGED_NS)
        .delete("relay-agent-client-tls", &Default::default())
        .await?;

    // ---- 2. Bring-your-own: kubectl create secret tls | kubectl apply, then cert-manager's CA
    // Issuer. The agent does not care who issued its certificate.
    plane.install_agent(
        &agent_chart,
        BYO_NS,
        "cluster-b",
        &relay_address,
        &["certificate.create=false"],
    )?;
    let own = pki.agent("cluster-b", time::Duration::hours(1))?;
    let cert_file = plane.work.join("byo.crt");
    let key_file = plane.work.join("byo.key");
    std::fs::write(&cert_file, &own.chain)?;
    std::fs::write(&key_file, &own.key)?;
    let manifest = plane.kubectl(
        &[
            "create",
            "secret",
            "tls",
            "relay-client-tls-secret",
            "-n",
            BYO_NS,
            "--cert",
            &cert_file.display().to_string(),
            "--key",
            &key_file.display().to_string(),
            "--dry-run=client",
            "-o",
            "yaml",
        ],
        None,
    )?;
    plane.kubectl(&["apply", "-f", "-"], Some(&manifest))?;
    let byo_admin = free_port();
    let byo = plane
        .start_ready(
            AGENT,
            BYO_NS,
            byo_admin,
            &[
                // The periodic resync (a get by name; the chart's 5m would not come within the
                // suite), so the least-privilege check below sees it used.
                ("--resync-interval", "5s".into()),
            ],
            "relay-agent-team-b",
            Duration::from_secs(60),
        )
        .await?;
    let serial = own.serial();
    plane
        .clusters()
        .wait("cluster-b", Duration::from_secs(30), |s| {
            s.connected && s.certificate_serial.as_deref() == Some(serial.as_str())
        })
        .await?;
    put_secret_data(
        &client,
        BYO_NS,
        "relay-intermediate",
        &[
            ("tls.crt", &pki.intermediate),
            ("tls.key", &pki.intermediate_key),
        ],
    )
    .await?;
    let issuers = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        BYO_NS,
        &cert_manager_sim::resource("Issuer", "issuers"),
    );
    let ca_issuer: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Issuer",
        "metadata": {"name": "relay-ca"}, "spec": {"ca": {"secretName": "relay-intermediate"}},
    }))?;
    issuers.create(&PostParams::default(), &ca_issuer).await?;
    wait_ready_object(&issuers, "relay-ca", Duration::from_secs(30)).await?;
    let certificate: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "byo-client", "namespace": BYO_NS},
        "spec": {
            "secretName": "relay-client-tls-secret",
            "commonName": "cluster-b",
            "uris": [relay_issuer::pki::spiffe_id(TRUST_DOMAIN, "cluster-b")],
            "duration": "1h",
            "usages": ["client auth", "digital signature"],
            // Another key type than the kubectl-applied certificate's P-256: cert-manager adopts
            // a Secret whose certificate already matches the spec (no issuer annotations means
            // no mismatch to it), so this makes it issue.
            "privateKey": {"algorithm": "ECDSA", "size": 384},
            "issuerRef": {"group": "cert-manager.io", "kind": "Issuer", "name": "relay-ca"},
        }
    }))?;
    let byo_certificates = certificates(&client, BYO_NS);
    byo_certificates
        .create(&PostParams::default(), &certificate)
        .await?;
    wait_ready_object(&byo_certificates, "byo-client", Duration::from_secs(60)).await?;
    let from_ca_issuer = secret_pem(&client, BYO_NS, "relay-client-tls-secret").await?;
    let serial = leaf_serial(&from_ca_issuer.chain)?;
    assert_ne!(
        serial,
        own.serial(),
        "cert-manager's CA Issuer wrote a new certificate"
    );
    plane
        .clusters()
        .wait("cluster-b", Duration::from_secs(30), |s| {
            s.connected && s.certificate_serial.as_deref() == Some(serial.as_str())
        })
        .await
        .map_err(|e| format!("{e}\n{}", byo.log()))?;
    eprintln!(
        "e2e: bring-your-own: kubectl-applied Secret and cert-manager CA Issuer certificate both connected"
    );
    // cert-manager keeps the Secret from here on only while the Certificate exists.
    byo_certificates
        .delete("byo-client", &Default::default())
        .await?;

    // ---- 5. Server certificate reload: new handshakes see it, the agent's stream stays.
    let reconnects_before = metric_sum(&metrics(byo_admin), "relay_agent_reconnects_total");
    let heartbeats_before = metric(byo_admin, "relay_agent_heartbeats_total");
    let new_server = pki.new_server_certificate()?;
    put_secret_data(
        &client,
        RELAY_NAMESPACE,
        "relay-server-tls-secret",
        &[("tls.crt", &new_server.chain), ("tls.key", &new_server.key)],
    )
    .await?;
    // openssl s_client sees the new server certificate.
    wait_openssl_serial(relay_port, &new_server.serial(), Duration::from_secs(20)).await?;
    // Heartbeats go on (the chart's interval is 10 s): two more, no reconnect.
    wait_metric(
        byo_admin,
        "relay_agent_heartbeats_total",
        Duration::from_secs(40),
        |v| v >= heartbeats_before + 2.0,
    )
    .await?;
    let text = metrics(byo_admin);
    assert_eq!(
        metric_sum(&text, "relay_agent_reconnects_total"),
        reconnects_before,
        "{text}"
    );
    assert_eq!(
        metric_value(&text, "relay_agent_rpc_failures_total"),
        0.0,
        "{text}"
    );

    // ---- 5. Bad Secret data: refused, the last good certificate kept, Warning events.
    let other = pki.agent("cluster-b", time::Duration::hours(1))?;
    let good = secret_pem(&client, BYO_NS, "relay-client-tls-secret").await?;
    let cases: [(&str, [(&str, &str); 2]); 3] = [
        (
            "certificate_missing",
            [("tls.crt", "garbage"), ("tls.key", &good.key)],
        ),
        (
            "key_mismatch",
            [("tls.crt", &good.chain), ("tls.key", &other.key)],
        ),
        (
            "is_ca",
            [
                ("tls.crt", &pki.intermediate),
                ("tls.key", &pki.intermediate_key),
            ],
        ),
    ];
    let secrets = Api::<Secret>::namespaced(client.clone(), BYO_NS);
    for (reason, data) in &cases {
        replace_tls_data(&secrets, data).await?;
        wait_metric(
            byo_admin,
            &format!("relay_agent_certificate_rejected_total{{reason=\"{reason}\"}}"),
            Duration::from_secs(20),
            |v| v >= 1.0,
        )
        .await
        .map_err(|e| format!("{reason}: {e}\n{}", byo.log()))?;
        let status = plane
            .clusters()
            .status("cluster-b")
            .await
            .ok_or("no status")?;
        assert!(status.connected, "{reason}: still connected");
        assert_eq!(
            status.certificate_serial.as_deref(),
            Some(serial.as_str()),
            "{reason}"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let listed = loop {
        let listed = plane.kubectl(
            &[
                "events",
                "-n",
                BYO_NS,
                "--for",
                "secret/relay-client-tls-secret",
                "--types",
                "Warning",
            ],
            None,
        )?;
        if listed.matches("InvalidClientCertificate").count() >= 3 || Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        listed.matches("InvalidClientCertificate").count(),
        3,
        "{listed}"
    );
    assert!(!listed.contains("PRIVATE KEY"), "{listed}");
    eprintln!("e2e: server reload and bad Secret data as in the sandbox suite");

    // ---- 5. Expiry: a live session outlives its certificate; a forced reconnect (a new server
    // process) is refused until a new certificate arrives, then recovers by itself.
    let short = pki.agent("cluster-b", time::Duration::seconds(4))?;
    replace_tls_data(
        &secrets,
        &[("tls.crt", &short.chain), ("tls.key", &short.key)],
    )
    .await?;
    let short_serial = short.serial();
    plane
        .clusters()
        .wait("cluster-b", Duration::from_secs(20), |s| {
            s.connected && s.certificate_serial.as_deref() == Some(short_serial.as_str())
        })
        .await?;
    wait_not_ready_because(byo_admin, "expired", Duration::from_secs(20)).await?;
    wait_metric_grows(
        byo_admin,
        "relay_agent_heartbeats_total",
        1.0,
        Duration::from_secs(30),
    )
    .await?;
    assert_eq!(metric(byo_admin, "relay_agent_rpc_failures_total"), 0.0);
    assert!(
        plane
            .clusters()
            .status("cluster-b")
            .await
            .is_some_and(|s| s.connected)
    );
    server.terminate(Duration::from_secs(20)).await?;
    server = plane
        .start_ready(
            SERVER,
            RELAY_NAMESPACE,
            server_admin,
            &listen,
            "relay-issuer-server-2",
            Duration::from_secs(60),
        )
        .await?;
    wait_metric(
        server_admin,
        "relay_server_handshake_failures_total{reason=\"expired_client_certificate\"}",
        Duration::from_secs(30),
        |v| v >= 1.0,
    )
    .await?;
    assert_eq!(metric(server_admin, "relay_server_connected_agents"), 0.0);
    let fresh = pki.agent("cluster-b", time::Duration::hours(1))?;
    replace_tls_data(
        &secrets,
        &[("tls.crt", &fresh.chain), ("tls.key", &fresh.key)],
    )
    .await?;
    let fresh_serial = fresh.serial();
    plane
        .clusters()
        .wait("cluster-b", Duration::from_secs(60), |s| {
            s.connected && s.certificate_serial.as_deref() == Some(fresh_serial.as_str())
        })
        .await
        .map_err(|e| format!("{e}\n{}", byo.log()))?;
    wait_ready(byo_admin, true, Duration::from_secs(20))
        .await
        .map_err(|e| format!("agent not ready again: {e}"))?;
    eprintln!(
        "e2e: expiry: the live session outlived the certificate, the reconnect was refused, a new certificate recovered it"
    );

    // ---- 4. Two controller replicas on the real Lease API: kill -9 the leader during a burst.
    let standby_admin = free_port();
    let standby = plane.run_deployment(
        CONTROLLER,
        RELAY_NAMESPACE,
        standby_admin,
        &[],
        "relay-issuer-controller-standby",
    )?;
    wait_metric(
        standby_admin,
        "relay_issuer_leader",
        Duration::from_secs(30),
        |_| metrics(standby_admin).contains("relay_issuer_leader"),
    )
    .await?;
    assert_eq!(metric(standby_admin, "relay_issuer_leader"), 0.0);
    let burst: usize = std::env::var("RELAY_E2E_BURST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    const BURST_NS: &str = "burst";
    plane.namespace(BURST_NS)?;
    put_signing_secret(&client, BURST_NS, &pki).await?;
    create_issuer(&client, Some(BURST_NS), "relay", json!({})).await?;
    let signed_before = metric(controller_admin, "relay_issuer_signatures_total");
    let burst_began = Instant::now();
    let creating = {
        let client = client.clone();
        tokio::spawn(async move {
            use futures::StreamExt as _;
            futures::stream::iter(0..burst)
                .map(|i| {
                    let client = client.clone();
                    async move {
                        create_request(
                            &client,
                            BURST_NS,
                            &format!("burst-{i}"),
                            "RelayIssuer",
                            "relay",
                        )
                        .await
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<_>>()
                .await
        })
    };
    // Kill the leader once it has signed a quarter of the burst.
    let leader_signed = wait_metric(
        controller_admin,
        "relay_issuer_signatures_total",
        Duration::from_secs(300),
        |v| v >= signed_before + (burst / 4) as f64,
    )
    .await?;
    let killed_at = Instant::now();
    Command::new("kill")
        .args(["-KILL", &controller.pid().to_string()])
        .status()?;
    wait_metric(
        standby_admin,
        "relay_issuer_leader",
        Duration::from_secs(60),
        |v| v == 1.0,
    )
    .await?;
    let takeover = killed_at.elapsed();
    for result in creating.await? {
        result?;
    }
    let requests_api = harness::requests(&client, BURST_NS);
    let deadline = Instant::now() + Duration::from_secs(600);
    let ready = loop {
        let list = requests_api.list(&Default::default()).await?;
        let ready = list
            .items
            .iter()
            .filter(|r| harness::ready_condition(r).is_some_and(|c| c["status"] == "True"))
            .count();
        if ready == burst {
            break ready;
        }
        if Instant::now() > deadline {
            return Err(format!("{ready} of {burst} burst requests Ready").into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let burst_time = burst_began.elapsed();
    // Exactly one certificate per request. Each replica logs "certificate issued" with the
    // serial after the status write; the killed leader may have written a status and died
    // before its log line. So: no request is logged twice; every logged serial is the one in
    // the request's status (nothing signed it again afterwards); the survivor's signature
    // count is exactly its logged issuances (it signed nothing it did not record); and the
    // requests no log names carry serials no log names (the killed leader's last writes).
    let issued_line = regex::Regex::new(
        r#""message":"certificate issued","summary":"Certificate issued \(serial ([0-9a-f:]+),.*"span":\{"name":"(burst-[0-9]+)","namespace":"burst""#,
    )?;
    // A reconcile that still sees the request as before its own write (watch lag) re-applies
    // the same certificate and logs it again: one signature is one (request, serial) pair.
    let mut logged = std::collections::BTreeMap::<String, BTreeSet<String>>::new();
    let mut survivor_pairs = BTreeSet::new();
    for (index, log) in [controller.log(), standby.log()].iter().enumerate() {
        for line in log.lines() {
            if let Some(found) = issued_line.captures(line) {
                logged
                    .entry(found[2].to_string())
                    .or_default()
                    .insert(found[1].to_string());
                if index == 1 {
                    survivor_pairs.insert((found[2].to_string(), found[1].to_string()));
                }
            }
        }
    }
    let survivor_issued = survivor_pairs.len();
    let twice: Vec<_> = logged.iter().filter(|(_, s)| s.len() > 1).collect();
    assert!(twice.is_empty(), "signed more than once: {twice:?}");
    let mut unlogged = 0;
    let mut serials = BTreeSet::new();
    for request in requests_api.list(&Default::default()).await?.items {
        let name = request.metadata.name.clone().unwrap_or_default();
        let pem = request
            .data
            .pointer("/status/certificate")
            .and_then(Value::as_str)
            .map(|b64| base64::engine::general_purpose::STANDARD.decode(b64))
            .transpose()?
            .ok_or(format!("{name} has no certificate"))?;
        let serial = leaf_serial(&String::from_utf8(pem)?)?;
        match logged.get(&name) {
            Some(log) => assert_eq!(
                log.iter()
                    .next()
                    .map(|s| s.to_lowercase())
                    .unwrap_or_default(),
                serial.to_lowercase(),
                "{name}: the logged signature is the recorded one"
            ),
            None => unlogged += 1,
        }
        serials.insert(serial);
    }
    assert_eq!(serials.len(), burst, "one distinct certificate per request");
    // At most the controller's --concurrency (64) requests were in flight at the kill.
    assert!(
        unlogged <= 64,
        "{unlogged} requests issued without a log line"
    );
    let survivor_signatures = metric(standby_admin, "relay_issuer_signatures_total");
    assert_eq!(
        survivor_signatures, survivor_issued as f64,
        "the new leader's signatures are its recorded certificates"
    );
    eprintln!(
        "e2e: replicas: {ready}/{burst} burst requests Ready in {burst_time:?}; leader killed (kill -9) at {leader_signed} signatures in all, the standby led {takeover:?} later (Lease 15s) and signed {survivor_signatures}; each request issued exactly once ({unlogged} written by the leader just before the kill, their log lines lost with it)"
    );
    assert!(
        takeover <= Duration::from_secs(19),
        "the standby leads within the lease duration (15 s, counted from when it saw the last renewal, up to one 2 s retry period after it was made) plus one retry period: {takeover:?}"
    );

    // ---- 7. Least privilege, judged by the API server.
    for process in [&controller, &standby, &server, &agent, &byo] {
        let log = process.log();
        assert!(
            !log.contains(" 403") && !log.to_lowercase().contains("forbidden"),
            "{} met a 403:\n{log}",
            process.name
        );
    }
    let Some(state) = &plane.local else {
        eprintln!(
            "e2e: least privilege from the audit log skipped: RELAY_E2E_KUBECONFIG's cluster has no audit log of ours"
        );
        return Ok(());
    };
    let audit = state.join("audit.log");
    // The team-b agent's resync has read its Secret by name (the audit log says so).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !audited(&audit, BYO_NS, "relay-agent")?
        .0
        .iter()
        .any(|r| r.verb == "get" && r.resource == "secrets")
    {
        if Instant::now() > deadline {
            return Err(
                "the team-b agent never resynced (no get of its Secret in the audit log)".into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let issuer_manifest = parse_manifests(&plane.helm(&[
        "get",
        "manifest",
        "relay-issuer",
        "-n",
        RELAY_NAMESPACE,
    ])?)?;
    let mut agent_manifests = Vec::new();
    for ns in [MANAGED_NS, BYO_NS] {
        agent_manifests.push((
            ns,
            parse_manifests(&plane.helm(&["get", "manifest", "relay-agent", "-n", ns])?)?,
        ));
    }
    let mut accounts: Vec<(&str, &str, &str, &[Value])> = vec![
        (
            "relay-issuer-controller",
            RELAY_NAMESPACE,
            "relay-issuer-controller",
            issuer_manifest.as_slice(),
        ),
        (
            "relay-issuer-server",
            RELAY_NAMESPACE,
            "relay-issuer-server",
            issuer_manifest.as_slice(),
        ),
    ];
    for (ns, objects) in &agent_manifests {
        accounts.push(("relay-agent", *ns, "relay-agent", objects.as_slice()));
    }
    // Per component, the union of what its ServiceAccounts used (both agents share a chart).
    let mut unused_by_component: Vec<(String, BTreeSet<String>)> = Vec::new();
    for (component, namespace, account, objects) in accounts {
        let grants = kube_sandbox::rbac::grants_for(objects, namespace, account, namespace);
        assert!(!grants.is_empty(), "{component}: no grants rendered");
        let (used, forbidden) = audited(&audit, namespace, account)?;
        assert!(
            !used.is_empty(),
            "{namespace}/{account}: no request in the audit log"
        );
        assert!(
            forbidden.is_empty(),
            "{namespace}/{account} got 403s: {forbidden:#?}"
        );
        let refused = kube_sandbox::rbac::denied(&grants, &used);
        assert!(
            refused.is_empty(),
            "{namespace}/{account} made requests its chart does not grant: {refused:#?}"
        );
        let unused: BTreeSet<String> = kube_sandbox::rbac::unused(&grants, &used)
            .into_iter()
            .collect();
        match unused_by_component
            .iter_mut()
            .find(|(c, _)| c.as_str() == component)
        {
            Some((_, set)) => *set = set.intersection(&unused).cloned().collect(),
            None => unused_by_component.push((component.to_string(), unused)),
        }
    }
    for (component, unused) in &unused_by_component {
        eprintln!("e2e: {component}: granted, not used in the suite: {unused:?}");
        let allowed = UNREACHABLE
            .iter()
            .find(|(c, _)| *c == component.as_str())
            .map(|(_, list)| *list)
            .unwrap_or_default();
        for grant in unused {
            assert!(
                allowed.contains(&grant.as_str()),
                "{component} is granted {grant}, which the suite never used"
            );
        }
    }

    // ---- 3. Remote signing (spec.relay) between two control planes: this one is the
    // management plane (relay server); a second plane from the same script is the workload
    // plane (controller only, agent chart with its RelayIssuer pointing at the relay server).
    let workload = Plane::local(
        charts::repo_root().join("target/control-plane-workload"),
        plane.work.join("workload"),
    )
    .await?;
    const REMOTE_NS: &str = "team-c";
    for ns in [RELAY_NAMESPACE, REMOTE_NS] {
        workload.namespace(ns)?;
    }
    workload.helm_install(
        "relay-issuer",
        &issuer_chart,
        RELAY_NAMESPACE,
        &[
            "server.enabled=false".to_string(),
            format!("certManager.approver.serviceAccount.name={cm_account}"),
            format!("certManager.approver.serviceAccount.namespace={cm_namespace}"),
        ],
    )?;
    register_cluster(&client, RELAY_NAMESPACE, "cluster-c").await?;
    let workload_client = workload.client.clone();
    put_root_secret(&workload_client, REMOTE_NS, &pki).await?;
    put_secret_data(
        &workload_client,
        REMOTE_NS,
        "relay-identity-token-secret",
        &[("token", relay_sandbox::relay::TOKEN)],
    )
    .await?;
    let remote_controller_admin = free_port();
    let remote_controller = workload
        .start_ready(
            CONTROLLER,
            RELAY_NAMESPACE,
            remote_controller_admin,
            &[],
            "workload-relay-issuer-controller",
            Duration::from_secs(60),
        )
        .await?;
    workload.install_agent(
        &agent_chart,
        REMOTE_NS,
        "cluster-c",
        &relay_address,
        &["certificate.issuer.create=true"],
    )?;
    let remote_agent_admin = free_port();
    let _remote_agent = workload
        .start_ready(
            AGENT,
            REMOTE_NS,
            remote_agent_admin,
            &[],
            "workload-relay-agent",
            Duration::from_secs(90),
        )
        .await
        .map_err(|e| format!("{e}\nworkload controller:\n{}", remote_controller.log()))?;
    let remote = plane
        .clusters()
        .wait("cluster-c", Duration::from_secs(30), |s| s.connected)
        .await?;
    let signed_remotely = metric_sum(&metrics(server_admin), "relay_server_sign_requests_total");
    eprintln!(
        "e2e: remote signing: the workload plane's Certificate signed by the management plane's relay server (serial {:?}; {signed_remotely} sign requests at the server), agent connected",
        remote.certificate_serial
    );
    // ---- 8. Root rotation on the real stack: `relay-issuer ca rotate --apply`, the workload
    // plane as an agents' cluster.
    rotate_root(&plane, &workload, relay_port, byo_admin, remote_agent_admin).await?;

    let down = Command::new(charts::repo_root().join("scripts/control-plane.sh"))
        .arg("down")
        .env(
            "RELAY_TLS_CONTROL_PLANE_DIR",
            charts::repo_root().join("target/control-plane-workload"),
        )
        .output()?;
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    eprintln!("e2e: all scenarios passed in {:?}", started.elapsed());
    Ok(())
}

/// Scenario 6: agent certificates through `certificates.k8s.io/v1` (signer `relaytls.dev/agent`):
/// nothing is signed before `kubectl certificate approve`; then the certificate is the leaf and
/// its intermediate, for the CSR's cluster, chaining to the relay root; a CSR that breaks a rule
/// (server auth) gets `Failed` with the reason; `kubectl get csr` shows both.
async fn kubernetes_csr_api(plane: &Plane, client: &kube::Client, pki: &RelayPki) -> TestResult {
    use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let create = |name: &'static str, usages: Value| {
        let csrs = csrs.clone();
        async move {
            let (csr, key) = relay_sandbox::relay::agent_csr("cluster-b")?;
            let object: CertificateSigningRequest = serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"request": b64(&csr), "signerName": "relaytls.dev/agent",
                         "usages": usages, "expirationSeconds": 3600},
            }))?;
            csrs.create(&PostParams::default(), &object).await?;
            Ok::<String, BoxError>(key)
        }
    };
    let status_of = |name: &'static str| {
        let csrs = csrs.clone();
        async move { csrs.get(name).await.map(|c| c.status.unwrap_or_default()) }
    };
    let key = create(
        "agent-cluster-b",
        json!(["client auth", "digital signature"]),
    )
    .await?;
    create("agent-server-auth", json!(["server auth", "client auth"])).await?;
    create("agent-unapproved", json!(["client auth"])).await?;
    plane.kubectl(
        &[
            "certificate",
            "approve",
            "agent-cluster-b",
            "agent-server-auth",
        ],
        None,
    )?;
    let within = Duration::from_secs(30);
    let issued = wait_csr(client, "agent-cluster-b", within, |s| {
        s.certificate.is_some()
    })
    .await?;
    let failed = wait_csr(client, "agent-server-auth", within, csr_failed).await?;
    // The certificate: the agent identity of the CSR, signed by the relay intermediate, with the
    // intermediate after it; the chain verifies up to the root with the CSR's key.
    let chain = String::from_utf8(issued.certificate.map(|c| c.0).unwrap_or_default())?;
    let pair = relay_issuer::pki::load_key_pair(
        Some(chain.as_bytes()),
        Some(key.as_bytes()),
        time::OffsetDateTime::now_utc(),
    )?;
    let leaf = x509_parser::pem::parse_x509_pem(chain.as_bytes())?.1;
    let identity = relay_issuer::pki::certificate_identity(&leaf.contents, TRUST_DOMAIN)?;
    assert_eq!(identity.cluster, "cluster-b");
    assert_eq!(
        chain.matches("-----BEGIN CERTIFICATE-----").count(),
        2,
        "{chain}"
    );
    assert!(
        chain.contains(pki.intermediate.trim()),
        "the intermediate follows the leaf"
    );
    assert!(!chain.contains(pki.root.trim()), "never the root");
    let lifetime = pair.not_after - time::OffsetDateTime::now_utc();
    assert!(
        lifetime <= time::Duration::hours(1) && lifetime > time::Duration::minutes(58),
        "expirationSeconds 3600: {lifetime}"
    );
    let root = tempfile::NamedTempFile::new()?;
    std::fs::write(root.path(), &pki.root)?;
    let leaf_file = tempfile::NamedTempFile::new()?;
    std::fs::write(leaf_file.path(), &chain)?;
    let verified = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(root.path())
        .arg("-untrusted")
        .arg(leaf_file.path())
        .arg(leaf_file.path())
        .output()?;
    assert!(
        verified.status.success(),
        "openssl verify: {}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let failed = failed
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .ok_or("no Failed condition")?;
    assert_eq!(failed.reason.as_deref(), Some("UsagesNotAllowed"));
    assert!(
        failed
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("server auth"),
        "{failed:?}"
    );
    // The unapproved one, looked at after the two above were written: nothing signed.
    assert!(status_of("agent-unapproved").await?.certificate.is_none());
    let table = plane.kubectl(
        &[
            "get",
            "csr",
            "agent-cluster-b",
            "agent-server-auth",
            "agent-unapproved",
        ],
        None,
    )?;
    eprintln!("e2e: the Kubernetes CSR API signer:\n{table}");
    for (name, condition) in [
        ("agent-cluster-b", "Approved,Issued"),
        ("agent-server-auth", "Approved,Failed"),
        ("agent-unapproved", "Pending"),
    ] {
        assert!(
            table.lines().any(|l| l.starts_with(name)
                && l.contains("relaytls.dev/agent")
                && l.trim_end().ends_with(condition)),
            "{name} {condition}:\n{table}"
        );
    }
    Ok(())
}

/// Scenario 8: the staged root rotation against kube-apiserver and cert-manager, with the
/// workload plane's agent (remote signing) as an agents' cluster: the first run does stages
/// 1-4 (real cert-manager renews the workload agent through the relay server) and refuses
/// stage 5 naming the bring-your-own cluster and the decommissioned one; once they are dealt
/// with, the second run completes; no agent saw a failed RPC.
async fn rotate_root(
    plane: &Plane,
    workload: &Plane,
    relay_port: u16,
    byo_admin: u16,
    remote_admin: u16,
) -> TestResult {
    let new_pki = RotationPki::create(&plane.admin)?;
    let new_path = new_pki.path();
    let new_root = new_pki.root_fingerprint()?;
    let agent_cluster = format!("workload={}", workload.admin.display());
    let rotate = || {
        run_relay_issuer(
            &plane.admin,
            &[
                "ca",
                "rotate",
                "--namespace",
                RELAY_NAMESPACE,
                "--new",
                &new_path,
                "--agent-kubeconfig",
                &agent_cluster,
                "--renew-timeout",
                "90s",
                "--settle",
                "3s",
                "--apply",
            ],
        )
    };
    let failed_before = (
        metric(byo_admin, "relay_agent_rpc_failures_total"),
        metric(remote_admin, "relay_agent_rpc_failures_total"),
    );
    let started = Instant::now();
    let (code, output) = rotate()?;
    eprintln!(
        "e2e: root rotation, first run ({:?}):\n{output}",
        started.elapsed()
    );
    assert_eq!(code, 2, "{output}");
    assert!(
        output.contains("stage 5/5")
            && output.contains("\"cluster-b\"")
            && output.contains("\"cluster-a\" (not connected)"),
        "{output}"
    );
    // The workload plane's agent was renewed by its cert-manager, through the relay server.
    plane
        .clusters()
        .wait("cluster-c", Duration::from_secs(30), |s| {
            s.connected && s.certificate_root.as_deref() == Some(new_root.as_str())
        })
        .await?;
    wait_openssl_serial(
        relay_port,
        &new_pki.server_serial()?,
        Duration::from_secs(15),
    )
    .await?;
    // Dealt with: cluster-a's agent is gone for good (its RelayCluster goes), cluster-b's
    // Secret gets a certificate under the new root.
    Api::<relay_issuer::api::RelayCluster>::namespaced(plane.client.clone(), RELAY_NAMESPACE)
        .delete("cluster-a", &Default::default())
        .await?;
    let fresh = new_pki.agent("cluster-b")?;
    replace_tls_data(
        &Api::namespaced(plane.client.clone(), BYO_NS),
        &[("tls.crt", &fresh.chain), ("tls.key", &fresh.key)],
    )
    .await?;
    plane
        .clusters()
        .wait("cluster-b", Duration::from_secs(30), |s| {
            s.connected && s.certificate_root.as_deref() == Some(new_root.as_str())
        })
        .await?;
    let (code, output) = rotate()?;
    eprintln!("e2e: root rotation, second run:\n{output}");
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("done"), "{output}");
    for p in [plane, workload] {
        assert_bundles_hold_only(&p.client, &new_root).await?;
    }
    for admin in [byo_admin, remote_admin] {
        wait_ready(admin, true, Duration::from_secs(30)).await?;
    }
    assert_eq!(
        (
            metric(byo_admin, "relay_agent_rpc_failures_total"),
            metric(remote_admin, "relay_agent_rpc_failures_total"),
        ),
        failed_before,
        "no failed RPC during the rotation"
    );
    eprintln!("e2e: root rotation done in {:?}", started.elapsed());
    Ok(())
}

/// Replaces the data of `relay-client-tls-secret` (type kubernetes.io/tls) with exactly `data`.
async fn replace_tls_data(secrets: &Api<Secret>, data: &[(&str, &str)]) -> Result<(), BoxError> {
    let mut secret = secrets.get("relay-client-tls-secret").await?;
    secret.metadata = ObjectMeta {
        name: secret.metadata.name.clone(),
        resource_version: secret.metadata.resource_version.clone(),
        ..Default::default()
    };
    secret.data = Some(
        data.iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    k8s_openapi::ByteString(v.as_bytes().to_vec()),
                )
            })
            .collect(),
    );
    secrets
        .replace("relay-client-tls-secret", &PostParams::default(), &secret)
        .await?;
    Ok(())
}

/// The serial of the first certificate of PEM `chain`, colon-separated hex (as the relay reports
/// it).
fn leaf_serial(chain: &str) -> Result<String, BoxError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain.as_bytes())?;
    relay_sandbox::relay::serial_of(&pem.contents)
}

/// The last lines of a `kubectl describe` (status and events).
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = lines
        .iter()
        .position(|l| l.starts_with("Status:"))
        .unwrap_or(0);
    lines[from..]
        .iter()
        .filter(|l| {
            let l = l.trim_start();
            !l.starts_with("Ca:") && !l.starts_with("Certificate:")
        })
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}
