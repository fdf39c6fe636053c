//! The Helm charts (deploy/charts/relay-issuer, deploy/charts/relay-agent) with the real helm and
//! kubectl binaries (`make tools` installs both into target/tools/bin):
//!
//! - `helm lint --strict` passes for both, in every mode;
//! - the chart's CRDs are byte for byte `deploy/crds/` (what `relay-issuer crds` generates);
//! - `helm template` renders what the issue asks for: the controller (2 replicas, leader
//!   election) and the server (1 replica by default, or several with a budget and anti-affinity;
//!   the relay Service on 9900 grpc), each able
//!   to be turned off; RBAC with exactly the verbs the binaries use (as kept in the charts'
//!   files/rbac.yaml); the cert-manager approver ClusterRole bound to cert-manager's
//!   ServiceAccount; PodDisruptionBudget; hardened security contexts; probes on /live and
//!   /ready of the admin port; the downward-API env; the optional ServiceMonitor;
//! - the agent chart's Certificate (Gloo-managed) with renewBefore = ratio × 8760h, or none
//!   (bring your own); the container args parse with the binaries' own flag parsers;
//! - values.schema.json refuses bad values with a message naming the value;
//! - everything rendered is created in the sandbox with `kubectl apply` (kinds the sandbox does
//!   not serve are checked against the Kubernetes API types instead, and listed on stderr);
//! - the Dockerfiles the charts' images come from are `FROM scratch` images of release binaries
//!   that `make images` builds, with OCI labels, as the non-root user the charts name.
//!
//! Skipped (with a message) only when the helm (or, for the sandbox test, kubectl) binary is
//! absent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use cert_manager_sim::crds::cert_manager_crds;
use cert_manager_sim::{Simulator, SimulatorOptions};
use clap::Parser;
use kube::api::{Api, DynamicObject, GroupVersionKind};
use kube_sandbox::Sandbox;
use kube_sandbox::kubectl::Kubectl;
use kube_sandbox::kubectl::missing_tool;
use kube_sandbox::rbac::string_list;
use relay_sandbox::charts::{
    self, AGENT_CHART, ChartError, ISSUER_CHART, POD_NAME_REF, POD_NAMESPACE_REF, chart_dir, find,
    of_kind, render, repo_root,
};
use serde_json::{Value, json};

const ISSUER_NS: &str = "relay-tls";
const AGENT_NS: &str = "gloo-mesh";
const RATIO: &str = "glooAgent.relay.clientTlsSecretRotationGracePeriodRatio";
const RATIO_PATH: &str = "/glooAgent/relay/clientTlsSecretRotationGracePeriodRatio";
/// The values the agent chart cannot do without.
const AGENT_REQUIRED: [(&str, &str); 2] = [
    ("cluster", "cluster-1"),
    ("glooAgent.relay.serverAddress", "relay.gloo-mesh:9900"),
];

/// `true`, or `false` after saying why the test is skipped (a failure under CI and after
/// `make tools`: see [`missing_tool`]).
fn helm_present(test: &str) -> bool {
    let present = charts::helm().is_some();
    if !present {
        missing_tool(test, &ChartError::HelmMissing.to_string());
    }
    present
}

fn agent_sets<'a>(more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut sets = AGENT_REQUIRED.to_vec();
    sets.extend_from_slice(more);
    sets
}

fn issuer(sets: &[(&str, &str)]) -> Vec<Value> {
    render(ISSUER_CHART, "relay-issuer", ISSUER_NS, sets, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn agent(sets: &[(&str, &str)]) -> Vec<Value> {
    render(AGENT_CHART, "relay-agent", AGENT_NS, &agent_sets(sets), &[])
        .unwrap_or_else(|e| panic!("{e}"))
}

fn get<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    find(objects, kind, name).unwrap_or_else(|| {
        let rendered: Vec<String> = objects.iter().map(describe).collect();
        panic!("no {kind} {name} among {rendered:?}")
    })
}

fn describe(object: &Value) -> String {
    format!(
        "{} {}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

fn kinds_and_names(objects: &[Value]) -> BTreeSet<String> {
    objects.iter().map(describe).collect()
}

/// An RBAC rule flattened: (apiGroup, resource, verb, resourceNames).
type Grant = (String, String, String, Vec<String>);

fn grants(rules: &Value) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in rules.as_array().expect("rules") {
        let names = string_list(&rule["resourceNames"]);
        for group in string_list(&rule["apiGroups"]) {
            for resource in string_list(&rule["resources"]) {
                for verb in string_list(&rule["verbs"]) {
                    out.insert((group.clone(), resource.clone(), verb, names.clone()));
                }
            }
        }
        // Nothing but these keys, and no wildcards anywhere.
        for key in rule.as_object().expect("rule").keys() {
            assert!(
                ["apiGroups", "resources", "verbs", "resourceNames"].contains(&key.as_str()),
                "unexpected rule key {key} in {rule}"
            );
        }
        assert!(!rule.to_string().contains("\"*\""), "wildcard in {rule}");
    }
    out
}

/// A rule as written in the tests: (apiGroup, resources, verbs, resourceNames).
type RuleSpec<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str]);

fn expect_grants(spec: &[RuleSpec]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for (group, resources, verbs, names) in spec {
        for resource in *resources {
            for verb in *verbs {
                out.insert((
                    group.to_string(),
                    resource.to_string(),
                    verb.to_string(),
                    names.iter().map(|n| n.to_string()).collect(),
                ));
            }
        }
    }
    out
}

fn controller_cluster_grants() -> BTreeSet<Grant> {
    expect_grants(&[
        (
            "cert-manager.io",
            &["certificaterequests"],
            &["list", "watch"],
            &[],
        ),
        (
            "cert-manager.io",
            &["certificaterequests/status"],
            &["patch"],
            &[],
        ),
        (
            "relaytls.dev",
            &["relayissuers", "relayclusterissuers"],
            &["list", "watch"],
            &[],
        ),
        (
            "relaytls.dev",
            &["relayissuers/status", "relayclusterissuers/status"],
            &["patch"],
            &[],
        ),
        ("", &["secrets"], &["get", "list", "watch"], &[]),
        ("events.k8s.io", &["events"], &["create", "patch"], &[]),
    ])
}

fn csr_signer_grants() -> BTreeSet<Grant> {
    expect_grants(&[
        (
            "certificates.k8s.io",
            &["certificatesigningrequests"],
            &["list", "watch"],
            &[],
        ),
        (
            "certificates.k8s.io",
            &["certificatesigningrequests/status"],
            &["patch"],
            &[],
        ),
        (
            "certificates.k8s.io",
            &["signers"],
            &["sign"],
            &["relaytls.dev/agent"],
        ),
    ])
}

fn leader_election_grants() -> BTreeSet<Grant> {
    expect_grants(&[(
        "coordination.k8s.io",
        &["leases"],
        &["get", "create", "update"],
        &[],
    )])
}

fn server_grants(secrets: &[&str]) -> BTreeSet<Grant> {
    expect_grants(&[
        ("", &["secrets"], &["list", "watch"], secrets),
        ("relaytls.dev", &["relayclusters"], &["list", "watch"], &[]),
        ("relaytls.dev", &["relayclusters/status"], &["patch"], &[]),
        (
            "coordination.k8s.io",
            &["leases"],
            &["create", "list", "watch", "patch", "delete"],
            &[],
        ),
        ("events.k8s.io", &["events"], &["create", "patch"], &[]),
    ])
}

fn approver_grants() -> BTreeSet<Grant> {
    expect_grants(&[(
        "cert-manager.io",
        &["signers"],
        &["approve"],
        &[
            "relayissuers.relaytls.dev/*",
            "relayclusterissuers.relaytls.dev/*",
        ],
    )])
}

fn agent_grants(secrets: &[&str]) -> BTreeSet<Grant> {
    expect_grants(&[
        ("", &["secrets"], &["get", "list", "watch"], secrets),
        ("events.k8s.io", &["events"], &["create", "patch"], &[]),
    ])
}

/// The grants of files/rbac.yaml's list at `pointer`, `secretNames: true` replaced by
/// `secrets`: what the templates must render.
fn data_file_grants(chart: &str, pointer: &str, secrets: &[&str]) -> BTreeSet<Grant> {
    let text = std::fs::read_to_string(chart_dir(chart).join("files/rbac.yaml")).unwrap();
    let data: Value = serde_saphyr::from_str(&text).unwrap();
    let mut rules = data.pointer(pointer).expect(pointer).clone();
    for rule in rules.as_array_mut().unwrap() {
        let object = rule.as_object_mut().unwrap();
        if object.remove("secretNames") == Some(Value::Bool(true)) {
            object.insert("resourceNames".into(), json!(secrets));
        }
    }
    grants(&rules)
}

/// The (only) container of Deployment `deployment`.
fn container<'a>(objects: &'a [Value], deployment: &str) -> &'a Value {
    &get(objects, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]
}

/// Non-root, read-only, no capabilities, RuntimeDefault seccomp; resources; probes on the
/// admin port `admin_port`, which is also the `--admin-address` port; downward-API env.
fn assert_hardened_pod(objects: &[Value], deployment: &str, admin_port: u64) {
    let object = get(objects, "Deployment", deployment);
    let pod = &object["spec"]["template"]["spec"];
    let what = format!("Deployment {deployment}");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}");
    assert_eq!(pod["securityContext"]["runAsUser"], 65532, "{what}");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "{what}"
    );
    assert_eq!(pod["containers"].as_array().unwrap().len(), 1, "{what}");
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true, "{what}");
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
    assert_eq!(sc["capabilities"], json!({"drop": ["ALL"]}), "{what}");
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{what}");
    assert!(sc.get("privileged").is_none(), "{what}");
    for key in ["requests", "limits"] {
        assert!(c["resources"][key]["memory"].is_string(), "{what}: {key}");
    }
    // Probes on the named admin port, which is the one the binary listens on.
    let ports = c["ports"].as_array().unwrap();
    let admin = ports
        .iter()
        .find(|p| p["name"] == "admin")
        .expect("admin port");
    assert_eq!(admin["containerPort"], admin_port, "{what}");
    for (probe, path) in [("livenessProbe", "/live"), ("readinessProbe", "/ready")] {
        assert_eq!(
            c[probe]["httpGet"],
            json!({"path": path, "port": "admin"}),
            "{what} {probe}"
        );
    }
    let args = string_list(&c["args"]);
    assert!(
        args.contains(&format!("--admin-address=0.0.0.0:{admin_port}")),
        "{what}: {args:?}"
    );
    let env: BTreeMap<String, Value> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["valueFrom"].clone(),
            )
        })
        .collect();
    assert_eq!(
        env["POD_NAMESPACE"],
        json!({"fieldRef": {"fieldPath": "metadata.namespace"}}),
        "{what}"
    );
    assert_eq!(
        env["POD_NAME"],
        json!({"fieldRef": {"fieldPath": "metadata.name"}}),
        "{what}"
    );
    // The pods carry the Deployment's selector.
    let labels = pod_labels(object);
    for (k, v) in object["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(labels.get(k), Some(v), "{what}: selector {k}");
    }
    assert!(
        pod["serviceAccountName"].is_string(),
        "{what}: serviceAccountName"
    );
}

fn pod_labels(deployment: &Value) -> serde_json::Map<String, Value> {
    deployment["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

fn selects(selector: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    selector
        .as_object()
        .unwrap()
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}

fn args_of(objects: &[Value], deployment: &str) -> Vec<String> {
    string_list(&container(objects, deployment)["args"])
}

// ----- lint, CRDs, versions, Dockerfiles ---------------------------------------------------

/// The chart-testing values files of `chart` (`ci/*-values.yaml`), sorted.
fn ci_values_files(chart: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(chart_dir(chart).join("ci"))
        .unwrap_or_else(|e| panic!("{chart} has no ci/ folder of chart-testing values: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("-values.yaml"))
        .collect();
    files.sort();
    files
}

/// Every mode the charts support has a chart-testing values file, and `helm lint --strict` and
/// `helm template` pass with each (lint alone lets a `required` value through).
#[test]
fn charts_pass_strict_lint_with_each_chart_testing_values_file() {
    let test = "charts_pass_strict_lint_with_each_chart_testing_values_file";
    if !helm_present(test) {
        return;
    }
    for (chart, modes) in [
        (
            ISSUER_CHART,
            &["controller-only", "default", "monitoring", "server-only"][..],
        ),
        (
            AGENT_CHART,
            &["bring-your-own", "gloo-managed", "grace-ratio"][..],
        ),
    ] {
        let files = ci_values_files(chart);
        let names: Vec<String> = files
            .iter()
            .map(|f| {
                let name = f.file_name().unwrap().to_string_lossy();
                name.trim_end_matches("-values.yaml").to_string()
            })
            .collect();
        assert_eq!(names, modes, "{chart}'s ci/ values files");
        for file in &files {
            let file = file.display().to_string();
            let lint = charts::run_helm(&[
                "lint".to_string(),
                "--strict".into(),
                chart_dir(chart).display().to_string(),
                "-f".into(),
                file.clone(),
            ])
            .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                lint.contains("1 chart(s) linted, 0 chart(s) failed"),
                "{file}: {lint}"
            );
            assert!(
                !lint.contains("[WARNING]") && !lint.contains("[ERROR]"),
                "{file}: {lint}"
            );
            let objects = render(chart, chart, "ns", &[], &["-f", &file])
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(
                !of_kind(&objects, "Deployment").is_empty(),
                "{file} renders no Deployment"
            );
        }
    }
    // The values files are what they say they are.
    let agent_mode = |mode: &str| {
        let file = chart_dir(AGENT_CHART).join(format!("ci/{mode}-values.yaml"));
        render(
            AGENT_CHART,
            "relay-agent",
            AGENT_NS,
            &[],
            &["-f", &file.display().to_string()],
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(of_kind(&agent_mode("gloo-managed"), "Certificate").len(), 1);
    assert!(of_kind(&agent_mode("bring-your-own"), "Certificate").is_empty());
}

/// A required value left out fails the install with a message naming the value and giving an
/// example.
#[test]
fn a_missing_required_value_is_named() {
    if !helm_present("a_missing_required_value_is_named") {
        return;
    }
    assert_refused(
        AGENT_CHART,
        &[("glooAgent.relay.serverAddress", "relay:9900")],
        &[],
        &["cluster is required", "--set cluster=cluster-1"],
    );
    assert_refused(
        AGENT_CHART,
        &[("cluster", "c1")],
        &[],
        &["glooAgent.relay.serverAddress is required", "host:port"],
    );
    // With nothing set, the first one met is named.
    assert_refused(AGENT_CHART, &[], &[], &["is required"]);
}

#[test]
fn chart_crds_are_the_generated_ones() {
    let generated = repo_root().join("deploy/crds");
    let shipped = chart_dir(ISSUER_CHART).join("crds");
    let names = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        names(&generated),
        names(&shipped),
        "deploy/charts/relay-issuer/crds must hold exactly the files of deploy/crds"
    );
    for name in names(&generated) {
        let a = std::fs::read(generated.join(&name)).unwrap();
        let b = std::fs::read(shipped.join(&name)).unwrap();
        assert!(
            a == b,
            "deploy/charts/relay-issuer/crds/{name} differs from deploy/crds/{name}: run `make crds && cp deploy/crds/*.yaml deploy/charts/relay-issuer/crds/`"
        );
    }
    // And helm installs them: `--include-crds` renders each one, unchanged.
    if charts::helm().is_none() {
        missing_tool("chart_crds_are_the_generated_ones", "helm not found");
        return;
    }
    {
        let objects = render(
            ISSUER_CHART,
            "relay-issuer",
            ISSUER_NS,
            &[],
            &["--include-crds"],
        )
        .unwrap();
        let rendered = of_kind(&objects, "CustomResourceDefinition");
        assert_eq!(rendered.len(), names(&generated).len());
        for name in names(&generated) {
            let text = std::fs::read_to_string(generated.join(&name)).unwrap();
            let crd: Value = serde_saphyr::from_str(&text).unwrap();
            let crd_name = crd["metadata"]["name"].as_str().unwrap();
            assert_eq!(
                find(&objects, "CustomResourceDefinition", crd_name),
                Some(&crd),
                "{name}"
            );
        }
        // Not without it: CRDs are never templated (helm installs crds/ before anything else).
        let plain = issuer(&[]);
        assert!(of_kind(&plain, "CustomResourceDefinition").is_empty());
    }
}

#[test]
fn charts_versions_images_and_dockerfiles_agree() {
    for (chart, binary) in [(ISSUER_CHART, "relay-issuer"), (AGENT_CHART, "relay-agent")] {
        let dir = chart_dir(chart);
        let meta: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(dir.join("Chart.yaml")).unwrap())
                .unwrap();
        assert_eq!(meta["apiVersion"], "v2");
        assert_eq!(meta["name"], chart);
        assert_eq!(
            meta["appVersion"],
            env!("CARGO_PKG_VERSION"),
            "{chart}: appVersion follows the workspace version"
        );
        let values: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(dir.join("values.yaml")).unwrap())
                .unwrap();
        assert_eq!(
            values["image"]["repository"],
            format!("ghcr.io/relay-tls/{binary}")
        );
        assert_eq!(
            values["image"]["tag"], "",
            "{chart}: the tag defaults to appVersion"
        );
        let dockerfile_path = format!("deploy/docker/{binary}.Dockerfile");
        assert_eq!(
            meta["annotations"]["relaytls.dev/dockerfile"],
            dockerfile_path
        );
        let dockerfile = std::fs::read_to_string(repo_root().join(&dockerfile_path)).unwrap();
        // Built from nothing a registry must serve: scratch plus the root filesystem that
        // scripts/images.sh stages (the binary, its shared libraries, CA bundle, passwd/group).
        let instructions: Vec<&str> = dockerfile
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .collect();
        let froms: Vec<&&str> = instructions
            .iter()
            .filter(|l| l.starts_with("FROM "))
            .collect();
        assert_eq!(froms, [&"FROM scratch"], "{dockerfile_path}");
        for needle in [
            "COPY rootfs/ /".to_string(),
            "USER 65532:65532".into(),
            format!("ENTRYPOINT [\"/usr/local/bin/{binary}\"]"),
            "org.opencontainers.image.version=\"${VERSION}\"".into(),
            "org.opencontainers.image.revision=\"${REVISION}\"".into(),
            "org.opencontainers.image.source=".into(),
            format!(
                "org.opencontainers.image.licenses=\"{}\"",
                env!("CARGO_PKG_LICENSE")
            ),
        ] {
            assert!(
                dockerfile.contains(&needle),
                "{dockerfile_path} lacks {needle:?}"
            );
        }
        assert!(
            !instructions.iter().any(|l| l.starts_with("RUN ")),
            "{dockerfile_path}: nothing runs inside a scratch image"
        );
        // make images builds exactly these Dockerfiles, the agent from the size-optimised
        // `agent` profile (make bench-agent measures it), the issuer from release.
        let script = std::fs::read_to_string(repo_root().join("scripts/images.sh")).unwrap();
        for needle in [
            "-f \"deploy/docker/$name.Dockerfile\"",
            "cargo build --profile agent --locked -p relay-agent --bin relay-agent",
            "cargo build --release --locked -p relay-issuer --bin relay-issuer",
        ] {
            let needle = needle.replace("cargo build", "\"$CARGO\" build");
            assert!(
                script.contains(&needle),
                "scripts/images.sh lacks {needle:?}"
            );
        }
        // The image's user is the one the chart's securityContext names.
        let pod_sc = if chart == ISSUER_CHART {
            &values["podSecurityContext"]
        } else {
            &values["glooAgent"]["podSecurityContext"]
        };
        assert_eq!(pod_sc["runAsUser"], 65532);
        assert_eq!(pod_sc["runAsNonRoot"], true);
    }
}

// ----- the issuer chart ---------------------------------------------------------------------

#[test]
fn issuer_chart_renders_the_controller_and_the_server() {
    if !helm_present("issuer_chart_renders_the_controller_and_the_server") {
        return;
    }
    let objects = issuer(&[]);
    assert_eq!(
        kinds_and_names(&objects),
        [
            "ClusterRole relay-issuer-cert-manager-approver",
            "ClusterRole relay-issuer-controller",
            "ClusterRole relay-issuer-controller-csr-signer",
            "ClusterRoleBinding relay-issuer-cert-manager-approver",
            "ClusterRoleBinding relay-issuer-controller",
            "ClusterRoleBinding relay-issuer-controller-csr-signer",
            "Deployment relay-issuer-controller",
            "Deployment relay-issuer-server",
            "PodDisruptionBudget relay-issuer-controller",
            "Role relay-issuer-controller-leader-election",
            "Role relay-issuer-server",
            "RoleBinding relay-issuer-controller-leader-election",
            "RoleBinding relay-issuer-server",
            "Service relay-issuer-relay",
            "ServiceAccount relay-issuer-controller",
            "ServiceAccount relay-issuer-server",
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<BTreeSet<_>>()
    );
    for object in &objects {
        let cluster_scoped =
            ["ClusterRole", "ClusterRoleBinding"].contains(&object["kind"].as_str().unwrap());
        assert_eq!(
            object["metadata"].get("namespace").and_then(Value::as_str),
            (!cluster_scoped).then_some(ISSUER_NS),
            "{}",
            describe(object)
        );
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "Helm",
            "{}",
            describe(object)
        );
    }

    // The controller: 2 replicas electing a leader, with a PodDisruptionBudget.
    let controller = get(&objects, "Deployment", "relay-issuer-controller");
    assert_eq!(controller["spec"]["replicas"], 2);
    assert_hardened_pod(&objects, "relay-issuer-controller", 9402);
    let c = container(&objects, "relay-issuer-controller");
    assert_eq!(
        c["image"],
        format!(
            "ghcr.io/relay-tls/relay-issuer:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    let args = args_of(&objects, "relay-issuer-controller");
    assert_eq!(args[0], "controller");
    assert!(
        args.contains(&"--leader-elect=true".to_string()),
        "{args:?}"
    );
    assert!(args.contains(&"--leader-election-lease=relay-issuer-controller".to_string()));
    let pdb = get(&objects, "PodDisruptionBudget", "relay-issuer-controller");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert!(selects(
        &pdb["spec"]["selector"]["matchLabels"],
        &pod_labels(controller)
    ));
    assert_eq!(
        controller["spec"]["template"]["spec"]["serviceAccountName"],
        "relay-issuer-controller"
    );

    // The server: one replica by default, rolling updates (replicas may overlap: statuses name
    // their replica), its Lease owned by the Pod, the relay Service on 9900 named grpc.
    let server = get(&objects, "Deployment", "relay-issuer-server");
    assert_eq!(server["spec"]["replicas"], 1);
    assert!(
        server["spec"]["strategy"].is_null(),
        "RollingUpdate, the default"
    );
    assert!(
        !kinds_and_names(&objects).contains("PodDisruptionBudget relay-issuer-server"),
        "no budget for a single replica"
    );
    let env = &container(&objects, "relay-issuer-server")["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "POD_UID"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"),
        "{env}"
    );
    assert_hardened_pod(&objects, "relay-issuer-server", 9403);
    let args = args_of(&objects, "relay-issuer-server");
    assert_eq!(args[0], "server");
    for arg in [
        "--listen=0.0.0.0:9900",
        "--trust-domain=relay.local",
        "--server-tls-secret=relay-server-tls-secret",
        "--root-tls-secret=relay-root-tls-secret",
        "--signing-secret=relay-tls-signing-secret",
        "--token-secret=relay-identity-token-secret",
        "--replica-lease-duration=15s",
        "--status-refresh=10m",
    ] {
        assert!(args.contains(&arg.to_string()), "{arg} not in {args:?}");
    }
    assert!(
        !args.iter().any(|a| a.starts_with("--worker-threads")),
        "by default the server sizes its threads from the CPUs it may use: {args:?}"
    );
    let sized = issuer(&[("server.workerThreads", "2")]);
    assert!(
        args_of(&sized, "relay-issuer-server").contains(&"--worker-threads=2".to_string()),
        "server.workerThreads sets --worker-threads"
    );
    let grpc = container(&objects, "relay-issuer-server")["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "grpc")
        .cloned()
        .expect("grpc port");
    assert_eq!(grpc["containerPort"], 9900);
    let service = get(&objects, "Service", "relay-issuer-relay");
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "grpc", "port": 9900, "targetPort": "grpc", "protocol": "TCP"}])
    );
    assert!(selects(&service["spec"]["selector"], &pod_labels(server)));
    assert!(
        !selects(&service["spec"]["selector"], &pod_labels(controller)),
        "the relay Service must not send agents to the controller"
    );
    assert!(of_kind(&objects, "ServiceMonitor").is_empty());

    // Several server replicas: a budget, spread over nodes (softly unless asked otherwise).
    let objects = issuer(&[("server.replicas", "3")]);
    let server = get(&objects, "Deployment", "relay-issuer-server");
    assert_eq!(server["spec"]["replicas"], 3);
    let pdb = get(&objects, "PodDisruptionBudget", "relay-issuer-server");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert!(selects(
        &pdb["spec"]["selector"]["matchLabels"],
        &pod_labels(server)
    ));
    let anti = &server["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"];
    let term = &anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"];
    assert_eq!(term["topologyKey"], "kubernetes.io/hostname");
    assert!(selects(
        &term["labelSelector"]["matchLabels"],
        &pod_labels(server)
    ));
    let objects = issuer(&[
        ("server.replicas", "3"),
        ("server.antiAffinity", "hard"),
        ("server.podDisruptionBudget.enabled", "false"),
    ]);
    let server = get(&objects, "Deployment", "relay-issuer-server");
    let anti = &server["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"];
    assert_eq!(
        anti["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert!(!kinds_and_names(&objects).contains("PodDisruptionBudget relay-issuer-server"));
    let objects = issuer(&[("server.replicas", "3"), ("server.antiAffinity", "none")]);
    let server = get(&objects, "Deployment", "relay-issuer-server");
    assert!(server["spec"]["template"]["spec"]["affinity"].is_null());

    // Values reach the flags.
    let objects = issuer(&[
        ("controller.replicas", "3"),
        ("controller.clusterResourceNamespace", "relay-ca"),
        ("controller.leaderElection.lease", "my-lease"),
        ("controller.adminPort", "19402"),
        ("server.port", "19900"),
        ("server.trustDomain", "example.org"),
        ("server.secrets.signing", "my-ca"),
        ("server.service.name", "relay"),
        ("logging.format", "plain"),
        ("logging.level", "debug"),
        ("image.tag", "dev"),
    ]);
    assert_eq!(
        get(&objects, "Deployment", "relay-issuer-controller")["spec"]["replicas"],
        3
    );
    let args = args_of(&objects, "relay-issuer-controller");
    for arg in [
        "--cluster-resource-namespace=relay-ca",
        "--leader-election-lease=my-lease",
        "--admin-address=0.0.0.0:19402",
        "--log-format=plain",
        "--log-level=debug",
    ] {
        assert!(args.contains(&arg.to_string()), "{arg} not in {args:?}");
    }
    assert_hardened_pod(&objects, "relay-issuer-controller", 19402);
    let args = args_of(&objects, "relay-issuer-server");
    for arg in [
        "--listen=0.0.0.0:19900",
        "--trust-domain=example.org",
        "--signing-secret=my-ca",
    ] {
        assert!(args.contains(&arg.to_string()), "{arg} not in {args:?}");
    }
    assert_eq!(
        get(&objects, "Service", "relay")["spec"]["ports"][0]["port"],
        19900
    );
    assert_eq!(
        container(&objects, "relay-issuer-server")["image"],
        "ghcr.io/relay-tls/relay-issuer:dev"
    );
    // The server's Role follows the Secret names.
    let role = get(&objects, "Role", "relay-issuer-server");
    assert_eq!(
        grants(&role["rules"]),
        server_grants(&[
            "relay-server-tls-secret",
            "relay-root-tls-secret",
            "my-ca",
            "relay-identity-token-secret"
        ])
    );
}

#[test]
fn issuer_chart_rbac_is_exactly_what_the_binaries_use() {
    if !helm_present("issuer_chart_rbac_is_exactly_what_the_binaries_use") {
        return;
    }
    let objects = issuer(&[]);
    let server_secrets = [
        "relay-server-tls-secret",
        "relay-root-tls-secret",
        "relay-tls-signing-secret",
        "relay-identity-token-secret",
    ];
    let cases: [(&str, &str, BTreeSet<Grant>, &str); 5] = [
        (
            "ClusterRole",
            "relay-issuer-controller",
            controller_cluster_grants(),
            "/controller/cluster",
        ),
        (
            "ClusterRole",
            "relay-issuer-controller-csr-signer",
            csr_signer_grants(),
            "/controller/csrSigner",
        ),
        (
            "Role",
            "relay-issuer-controller-leader-election",
            leader_election_grants(),
            "/controller/leaderElection",
        ),
        (
            "Role",
            "relay-issuer-server",
            server_grants(&server_secrets),
            "/server/namespace",
        ),
        (
            "ClusterRole",
            "relay-issuer-cert-manager-approver",
            approver_grants(),
            "/approver",
        ),
    ];
    for (kind, name, expected, pointer) in cases {
        let rendered = grants(&get(&objects, kind, name)["rules"]);
        assert_eq!(rendered, expected, "{kind} {name}");
        assert_eq!(
            rendered,
            data_file_grants(ISSUER_CHART, pointer, &server_secrets),
            "{kind} {name} is files/rbac.yaml{pointer}"
        );
    }
    // Each role is bound to the component that needs it.
    for (kind, name, role_kind, subject) in [
        (
            "ClusterRoleBinding",
            "relay-issuer-controller",
            "ClusterRole",
            json!({"kind": "ServiceAccount", "name": "relay-issuer-controller", "namespace": ISSUER_NS}),
        ),
        (
            "ClusterRoleBinding",
            "relay-issuer-controller-csr-signer",
            "ClusterRole",
            json!({"kind": "ServiceAccount", "name": "relay-issuer-controller", "namespace": ISSUER_NS}),
        ),
        (
            "RoleBinding",
            "relay-issuer-controller-leader-election",
            "Role",
            json!({"kind": "ServiceAccount", "name": "relay-issuer-controller", "namespace": ISSUER_NS}),
        ),
        (
            "RoleBinding",
            "relay-issuer-server",
            "Role",
            json!({"kind": "ServiceAccount", "name": "relay-issuer-server", "namespace": ISSUER_NS}),
        ),
        (
            "ClusterRoleBinding",
            "relay-issuer-cert-manager-approver",
            "ClusterRole",
            json!({"kind": "ServiceAccount", "name": "cert-manager", "namespace": "cert-manager"}),
        ),
    ] {
        let binding = get(&objects, kind, name);
        assert_eq!(binding["subjects"], json!([subject]), "{kind} {name}");
        let role_name = binding["roleRef"]["name"].as_str().unwrap();
        assert_eq!(binding["roleRef"]["kind"], role_kind);
        assert_eq!(binding["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
        get(&objects, role_kind, role_name);
    }
    // The server has no cluster-wide rights; the controller's Lease rights stay in its namespace.
    let server_cluster_bindings: Vec<&Value> = of_kind(&objects, "ClusterRoleBinding")
        .into_iter()
        .filter(|b| b["subjects"][0]["name"] == "relay-issuer-server")
        .collect();
    assert!(server_cluster_bindings.is_empty());

    // cert-manager elsewhere; approver off.
    let objects = issuer(&[
        ("certManager.approver.serviceAccount.name", "cm"),
        ("certManager.approver.serviceAccount.namespace", "security"),
    ]);
    assert_eq!(
        get(
            &objects,
            "ClusterRoleBinding",
            "relay-issuer-cert-manager-approver"
        )["subjects"],
        json!([{"kind": "ServiceAccount", "name": "cm", "namespace": "security"}])
    );
    let objects = issuer(&[("certManager.approver.enabled", "false")]);
    assert!(
        find(
            &objects,
            "ClusterRole",
            "relay-issuer-cert-manager-approver"
        )
        .is_none()
    );
    assert!(
        find(
            &objects,
            "ClusterRoleBinding",
            "relay-issuer-cert-manager-approver"
        )
        .is_none()
    );
    // Without leader election (one replica) there is no Lease Role.
    let objects = issuer(&[
        ("controller.replicas", "1"),
        ("controller.leaderElection.enabled", "false"),
    ]);
    assert!(find(&objects, "Role", "relay-issuer-controller-leader-election").is_none());
    assert!(
        find(&objects, "PodDisruptionBudget", "relay-issuer-controller").is_none(),
        "a PodDisruptionBudget of one replica would block node drains"
    );
    assert!(
        args_of(&objects, "relay-issuer-controller").contains(&"--leader-elect=false".to_string())
    );
}

#[test]
fn issuer_chart_components_turn_off() {
    if !helm_present("issuer_chart_components_turn_off") {
        return;
    }
    let without = |objects: &[Value], component: &str| {
        for object in objects {
            assert_ne!(
                object["metadata"]["labels"]["app.kubernetes.io/component"],
                component,
                "{} rendered with {component} off",
                describe(object)
            );
        }
    };
    let with = |objects: &[Value], component: &str| {
        assert!(
            objects
                .iter()
                .any(|o| o["metadata"]["labels"]["app.kubernetes.io/component"] == component),
            "nothing of {component}"
        );
    };
    let no_controller = issuer(&[
        ("controller.enabled", "false"),
        ("serviceMonitor.enabled", "true"),
    ]);
    without(&no_controller, "controller");
    with(&no_controller, "server");
    get(&no_controller, "Deployment", "relay-issuer-server");
    get(&no_controller, "Service", "relay-issuer-relay");
    get(&no_controller, "ServiceMonitor", "relay-issuer-server");
    // The approver belongs to the issuer kinds, not to the controller Deployment: kept.
    get(
        &no_controller,
        "ClusterRole",
        "relay-issuer-cert-manager-approver",
    );

    let no_server = issuer(&[
        ("server.enabled", "false"),
        ("serviceMonitor.enabled", "true"),
    ]);
    without(&no_server, "server");
    with(&no_server, "controller");
    get(&no_server, "Deployment", "relay-issuer-controller");
    get(&no_server, "ServiceMonitor", "relay-issuer-controller");
    assert!(
        of_kind(&no_server, "Service")
            .iter()
            .all(|s| s["metadata"]["name"] == "relay-issuer-controller-metrics")
    );

    // The Kubernetes CSR API signer: off, no ClusterRole that may sign, and the flag says so.
    let no_csr_signer = issuer(&[("controller.csrSigner.enabled", "false")]);
    assert!(
        !kinds_and_names(&no_csr_signer)
            .iter()
            .any(|k| k.contains("csr-signer")),
        "{:?}",
        kinds_and_names(&no_csr_signer)
    );
    let flag = |objects: &[Value]| {
        args_of(objects, "relay-issuer-controller")
            .into_iter()
            .filter(|a| a.starts_with("--csr-signer=") || a.starts_with("--trust-domain="))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        flag(&no_csr_signer),
        ["--trust-domain=relay.local", "--csr-signer=false"]
    );
    assert_eq!(
        flag(&issuer(&[("server.trustDomain", "example.org")])),
        ["--trust-domain=example.org", "--csr-signer=true"]
    );

    let nothing = issuer(&[
        ("controller.enabled", "false"),
        ("server.enabled", "false"),
        ("certManager.approver.enabled", "false"),
    ]);
    assert!(nothing.is_empty(), "{:?}", kinds_and_names(&nothing));
    // The CRDs still come with the chart.
    let crds_only = render(
        ISSUER_CHART,
        "relay-issuer",
        ISSUER_NS,
        &[
            ("controller.enabled", "false"),
            ("server.enabled", "false"),
            ("certManager.approver.enabled", "false"),
        ],
        &["--include-crds"],
    )
    .unwrap();
    assert_eq!(of_kind(&crds_only, "CustomResourceDefinition").len(), 3);
}

#[test]
fn issuer_chart_service_monitor_scrapes_each_component() {
    if !helm_present("issuer_chart_service_monitor_scrapes_each_component") {
        return;
    }
    let objects = issuer(&[
        ("serviceMonitor.enabled", "true"),
        ("serviceMonitor.labels.release", "prometheus"),
    ]);
    for (component, port) in [("controller", 9402), ("server", 9403)] {
        let deployment = get(&objects, "Deployment", &format!("relay-issuer-{component}"));
        let service = get(
            &objects,
            "Service",
            &format!("relay-issuer-{component}-metrics"),
        );
        assert_eq!(service["spec"]["clusterIP"], "None");
        assert!(selects(
            &service["spec"]["selector"],
            &pod_labels(deployment)
        ));
        assert_eq!(service["spec"]["ports"][0]["port"], port);
        assert_eq!(service["spec"]["ports"][0]["targetPort"], "admin");
        let monitor = get(
            &objects,
            "ServiceMonitor",
            &format!("relay-issuer-{component}"),
        );
        assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
        let service_labels = service["metadata"]["labels"].as_object().unwrap();
        assert!(selects(
            &monitor["spec"]["selector"]["matchLabels"],
            service_labels
        ));
        // ... and only that Service (not the relay Service, not the other component's).
        for other in of_kind(&objects, "Service") {
            if other["metadata"]["name"] != service["metadata"]["name"] {
                assert!(!selects(
                    &monitor["spec"]["selector"]["matchLabels"],
                    other["metadata"]["labels"].as_object().unwrap()
                ));
            }
        }
        assert_eq!(
            monitor["spec"]["endpoints"][0]["port"], "admin",
            "{component}"
        );
        assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    }
}

// ----- the agent chart ----------------------------------------------------------------------

fn certificate(objects: &[Value]) -> &Value {
    get(objects, "Certificate", "relay-agent-client-tls")
}

#[test]
fn agent_chart_gloo_managed_certificate_renews_at_the_ratio() {
    if !helm_present("agent_chart_gloo_managed_certificate_renews_at_the_ratio") {
        return;
    }
    let objects = agent(&[]);
    let cert = certificate(&objects);
    assert_eq!(cert["apiVersion"], "cert-manager.io/v1");
    assert_eq!(cert["metadata"]["namespace"], AGENT_NS);
    let spec = &cert["spec"];
    assert_eq!(spec["secretName"], "relay-client-tls-secret");
    assert_eq!(spec["duration"], "8760h");
    assert_eq!(spec["renewBefore"], "3153600s", "the default ratio is 0.1");
    assert_eq!(spec["commonName"], "cluster-1");
    assert_eq!(
        spec["uris"],
        json!(["spiffe://relay.local/relay/cluster/cluster-1"])
    );
    assert_eq!(spec["usages"], json!(["client auth", "digital signature"]));
    assert_eq!(
        spec["privateKey"],
        json!({"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"})
    );
    assert_eq!(
        spec["issuerRef"],
        json!({"group": "relaytls.dev", "kind": "RelayIssuer", "name": "relay"})
    );
    assert!(spec.get("renewBeforePercentage").is_none());
    // The identity agrees with the rule every component uses.
    assert_eq!(
        spec["uris"][0],
        relay_issuer::pki::identity::spiffe_id("relay.local", "cluster-1")
    );

    // The RelayIssuer that forwards the CSR to the relay server, token as a fallback.
    let issuer = get(&objects, "RelayIssuer", "relay");
    assert_eq!(issuer["apiVersion"], "relaytls.dev/v1alpha1");
    assert_eq!(
        issuer["spec"],
        json!({"relay": {
            "address": "https://relay.gloo-mesh:9900",
            "cluster": "cluster-1",
            "caBundleSecretRef": {"name": "relay-root-tls-secret"},
            "clientTLSSecretRef": {"name": "relay-client-tls-secret"},
            "tokenSecretRef": {"name": "relay-identity-token-secret", "key": "token"}
        }})
    );

    // renewBefore = ratio × 8760h, truncated to whole seconds, from --set (a string), from
    // --set-string and from a values file (a number).
    let values_file = tempfile::NamedTempFile::new().unwrap();
    for (ratio, expected) in [
        ("0.1", "3153600s"),
        ("0.25", "7884000s"),
        ("0.29", "9145440s"), // 0.29 × 31536000 in floating point is 9145439.999…
        ("0.5", "15768000s"),
        (".75", "23652000s"),
        ("0.123456789", "3893333s"), // 3893333.33… truncated
        ("0.999", "31504464s"),
        ("0.0001", "3153s"),
    ] {
        let cert_of = |objects: Vec<Value>| certificate(&objects)["spec"]["renewBefore"].clone();
        assert_eq!(cert_of(agent(&[(RATIO, ratio)])), expected, "--set {ratio}");
        let by_string = render(
            AGENT_CHART,
            "relay-agent",
            AGENT_NS,
            &AGENT_REQUIRED,
            &["--set-string", &format!("{RATIO}={ratio}")],
        )
        .unwrap();
        assert_eq!(cert_of(by_string), expected, "--set-string {ratio}");
        if !ratio.starts_with('.') {
            std::fs::write(
                values_file.path(),
                format!(
                    "glooAgent:\n  relay:\n    clientTlsSecretRotationGracePeriodRatio: {ratio}\n"
                ),
            )
            .unwrap();
            let by_file = render(
                AGENT_CHART,
                "relay-agent",
                AGENT_NS,
                &AGENT_REQUIRED,
                &["-f", values_file.path().to_str().unwrap()],
            )
            .unwrap();
            assert_eq!(cert_of(by_file), expected, "values file {ratio}");
        }
    }

    // The lifetime is a value too (Gloo fixes one year; demos and tests shorten it), read as
    // Go reads durations; renewBefore follows it.
    for (duration, ratio, expected) in [
        ("24s", "0.5", "12s"),
        ("0.006666666666666667h", "0.5", "12s"), // 24s to Go
        ("1h30m", "0.1", "540s"),
        ("2h45m30.5s", "0.29", "2879s"), // 2879.845s truncated
        ("87600h", "0.1", "31536000s"),
    ] {
        let objects = agent(&[("certificate.duration", duration), (RATIO, ratio)]);
        let spec = &certificate(&objects)["spec"];
        assert_eq!(spec["duration"], duration);
        assert_eq!(spec["renewBefore"], expected, "{ratio} × {duration}");
    }

    // Other names follow the values.
    let objects = agent(&[
        ("cluster", "edge-7"),
        ("trustDomain", "example.org"),
        ("glooAgent.relay.clientTlsSecret.name", "client"),
        ("glooAgent.relay.rootTlsSecret.name", "roots"),
        ("glooAgent.relay.tokenSecret.name", "bootstrap"),
        ("glooAgent.relay.tokenSecret.key", "t"),
        (
            "glooAgent.relay.serverAddress",
            "https://relay.example.org:443",
        ),
        ("glooAgent.relay.serverName", "relay.internal"),
        ("certificate.issuerRef.name", "mgmt"),
    ]);
    let spec = &certificate(&objects)["spec"];
    assert_eq!(spec["secretName"], "client");
    assert_eq!(spec["commonName"], "edge-7");
    assert_eq!(
        spec["uris"],
        json!(["spiffe://example.org/relay/cluster/edge-7"])
    );
    assert_eq!(spec["issuerRef"]["name"], "mgmt");
    let relay = &get(&objects, "RelayIssuer", "mgmt")["spec"]["relay"];
    assert_eq!(relay["address"], "https://relay.example.org:443");
    assert_eq!(relay["serverName"], "relay.internal");
    assert_eq!(
        relay["tokenSecretRef"],
        json!({"name": "bootstrap", "key": "t"})
    );
    assert_eq!(relay["caBundleSecretRef"], json!({"name": "roots"}));
    assert_eq!(relay["clientTLSSecretRef"], json!({"name": "client"}));

    // Another issuer: the Certificate points at it and no RelayIssuer is rendered.
    let objects = agent(&[
        ("certificate.issuerRef.kind", "RelayClusterIssuer"),
        ("certificate.issuerRef.name", "relay-ca"),
    ]);
    assert_eq!(
        certificate(&objects)["spec"]["issuerRef"],
        json!({"group": "relaytls.dev", "kind": "RelayClusterIssuer", "name": "relay-ca"})
    );
    assert!(of_kind(&objects, "RelayIssuer").is_empty());
    let objects = agent(&[("certificate.issuer.create", "false")]);
    certificate(&objects);
    assert!(of_kind(&objects, "RelayIssuer").is_empty());
}

#[test]
fn agent_chart_bring_your_own_renders_no_certificate() {
    if !helm_present("agent_chart_bring_your_own_renders_no_certificate") {
        return;
    }
    let managed = agent(&[]);
    let byo = agent(&[("certificate.create", "false"), (RATIO, "0.25")]);
    assert!(of_kind(&byo, "Certificate").is_empty());
    assert!(of_kind(&byo, "RelayIssuer").is_empty());
    assert_eq!(
        kinds_and_names(&byo),
        [
            "Deployment relay-agent",
            "Role relay-agent",
            "RoleBinding relay-agent",
            "ServiceAccount relay-agent",
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<BTreeSet<_>>()
    );
    // The agent itself is the same either way: it just watches the Secret.
    for kind_name in ["Deployment relay-agent", "Role relay-agent"] {
        let (kind, name) = kind_name.split_once(' ').unwrap();
        assert_eq!(
            get(&managed, kind, name),
            get(&byo, kind, name),
            "{kind_name}"
        );
    }
}

#[test]
fn agent_chart_pod_and_rbac() {
    if !helm_present("agent_chart_pod_and_rbac") {
        return;
    }
    let objects = agent(&[]);
    assert_hardened_pod(&objects, "relay-agent", 9091);
    let deployment = get(&objects, "Deployment", "relay-agent");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(
        container(&objects, "relay-agent")["image"],
        format!(
            "ghcr.io/relay-tls/relay-agent:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(
        args_of(&objects, "relay-agent"),
        [
            "--relay-address=https://relay.gloo-mesh:9900",
            "--cluster=cluster-1",
            "--client-tls-secret-name=relay-client-tls-secret",
            "--root-tls-secret-name=relay-root-tls-secret",
            "--trust-domain=relay.local",
            "--heartbeat-interval=10s",
            "--admin-address=0.0.0.0:9091",
            "--log-format=json",
            "--log-level=info",
        ]
    );
    let role = get(&objects, "Role", "relay-agent");
    let expected = agent_grants(&["relay-client-tls-secret", "relay-root-tls-secret"]);
    assert_eq!(grants(&role["rules"]), expected);
    assert_eq!(
        grants(&role["rules"]),
        data_file_grants(
            AGENT_CHART,
            "/agent",
            &["relay-client-tls-secret", "relay-root-tls-secret"]
        )
    );
    let binding = get(&objects, "RoleBinding", "relay-agent");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "relay-agent", "namespace": AGENT_NS}])
    );
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "relay-agent"})
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "relay-agent"
    );
    assert!(of_kind(&objects, "ClusterRole").is_empty());
    assert!(of_kind(&objects, "ClusterRoleBinding").is_empty());
    // The Role follows the Secret names; one Secret for both is named once.
    let objects = agent(&[
        ("glooAgent.relay.clientTlsSecret.name", "mine"),
        ("glooAgent.relay.rootTlsSecret.name", "mine"),
        ("glooAgent.adminPort", "19091"),
        ("glooAgent.relay.serverName", "relay.internal"),
    ]);
    assert_eq!(
        grants(&get(&objects, "Role", "relay-agent")["rules"]),
        agent_grants(&["mine"])
    );
    assert_hardened_pod(&objects, "relay-agent", 19091);
    assert!(args_of(&objects, "relay-agent").contains(&"--server-name=relay.internal".to_string()));
}

// ----- values.schema.json -------------------------------------------------------------------

/// What helm says first about values that break values.schema.json (helm 3 and 4 alike).
const SCHEMA: &str = "values don't meet the specifications of the schema";

/// Whether the helm binary is helm 4, whose schema validator words the messages asserted here
/// (`at '/a/b': minimum: got 0, want 1`); helm 3 says the same in other words, so there only
/// the value's path (`a.b`) is checked.
fn helm_is_v4() -> bool {
    static V4: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V4.get_or_init(|| {
        charts::run_helm(&["version".to_string(), "--short".to_string()])
            .is_ok_and(|v| v.starts_with("v4."))
    })
}

/// `helm template` of `chart` with `sets` and `extra` must fail, and its message must contain
/// every one of `needles`.
fn assert_refused(chart: &str, sets: &[(&str, &str)], extra: &[&str], needles: &[&str]) {
    match charts::template(chart, "x", "default", sets, extra) {
        Ok(out) => panic!("{chart} {sets:?} {extra:?} rendered:\n{out}"),
        Err(ChartError::Helm { stderr, .. }) => {
            let schema_error = needles
                .iter()
                .any(|n| n.starts_with("at '/") || *n == SCHEMA);
            for needle in needles {
                let needle = if helm_is_v4() || !schema_error || *needle == SCHEMA {
                    needle.to_string()
                } else if let Some(rest) = needle.strip_prefix("at '/") {
                    rest.split('\'')
                        .next()
                        .unwrap_or_default()
                        .replace('/', ".")
                } else {
                    continue;
                };
                assert!(
                    stderr.contains(&needle),
                    "{chart} {sets:?} {extra:?}: message lacks {needle:?}:\n{stderr}"
                );
            }
            assert!(stderr.starts_with("Error: "), "{stderr}");
            assert!(stderr.lines().count() <= 8, "a short message:\n{stderr}");
        }
        Err(other) => panic!("{other}"),
    }
}

#[test]
fn schemas_refuse_bad_values_readably() {
    if !helm_present("schemas_refuse_bad_values_readably") {
        return;
    }
    let schema = SCHEMA;
    let at_ratio = format!("at '{RATIO_PATH}'");
    // The ratio: 0 and 1 (integers from --set), 1.5 (a string from --set, a number from a file),
    // words, booleans.
    assert_refused(
        AGENT_CHART,
        &agent_sets(&[(RATIO, "0")]),
        &[],
        &[schema, &at_ratio, "minimum: got 0, want 0.0001"],
    );
    assert_refused(
        AGENT_CHART,
        &agent_sets(&[(RATIO, "1")]),
        &[],
        &[schema, &at_ratio, "maximum: got 1, want 0.999999999"],
    );
    assert_refused(
        AGENT_CHART,
        &agent_sets(&[(RATIO, "1.5")]),
        &[],
        &[schema, &at_ratio, "'1.5' does not match pattern"],
    );
    assert_refused(
        AGENT_CHART,
        &agent_sets(&[(RATIO, "abc")]),
        &[],
        &[schema, &at_ratio, "'abc' does not match pattern"],
    );
    assert_refused(
        AGENT_CHART,
        &agent_sets(&[(RATIO, "true")]),
        &[],
        &[schema, &at_ratio, "got boolean, want number or string"],
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    for (ratio, needle) in [
        ("1.5", "maximum: got 1.5, want 0.999999999"),
        ("0", "minimum: got 0, want 0.0001"),
        ("-0.1", "minimum: got -0.1, want 0.0001"),
        ("\"abc\"", "'abc' does not match pattern"),
    ] {
        std::fs::write(
            file.path(),
            format!("glooAgent:\n  relay:\n    clientTlsSecretRotationGracePeriodRatio: {ratio}\n"),
        )
        .unwrap();
        assert_refused(
            AGENT_CHART,
            &AGENT_REQUIRED,
            &["-f", file.path().to_str().unwrap()],
            &[schema, &at_ratio, needle],
        );
    }
    // A decimal string below the smallest ratio: the template says so in words.
    assert_refused(
        AGENT_CHART,
        &AGENT_REQUIRED,
        &["--set-string", &format!("{RATIO}=0.00001")],
        &[
            "glooAgent.relay.clientTlsSecretRotationGracePeriodRatio must be between 0 and 1 exclusive",
            "got 0.00001",
        ],
    );
    // The cluster name: malformed, too long for a common name (missing: see
    // a_missing_required_value_is_named).
    assert_refused(
        AGENT_CHART,
        &agent_sets(&[("cluster", "Cluster_1")]),
        &[],
        &["at '/cluster': 'Cluster_1' does not match pattern"],
    );
    let long = "c".repeat(65);
    assert_refused(
        AGENT_CHART,
        &agent_sets(&[("cluster", &long)]),
        &[],
        &["at '/cluster': maxLength: got 65, want 64"],
    );
    // The server address.
    assert_refused(
        AGENT_CHART,
        &agent_sets(&[("glooAgent.relay.serverAddress", "http://relay:9900")]),
        &[],
        &["at '/glooAgent/relay/serverAddress'"],
    );
    // Wrong types and unknown keys.
    assert_refused(
        AGENT_CHART,
        &agent_sets(&[("glooAgent.adminPort", "abc")]),
        &[],
        &["at '/glooAgent/adminPort': got string, want integer"],
    );
    assert_refused(
        AGENT_CHART,
        &agent_sets(&[("certificate.create", "yes")]),
        &[],
        &["at '/certificate/create': got string, want boolean"],
    );
    assert_refused(
        AGENT_CHART,
        &agent_sets(&[("glooAgent.relay.clientTlsSecretRotationGracePeriod", "0.1")]),
        &[],
        &[
            schema,
            "additional properties 'clientTlsSecretRotationGracePeriod' not allowed",
        ],
    );
    assert_refused(
        ISSUER_CHART,
        &[("controller.replicas", "two")],
        &[],
        &[
            schema,
            "at '/controller/replicas': got string, want integer",
        ],
    );
    assert_refused(
        ISSUER_CHART,
        &[("controller.replicas", "0")],
        &[],
        &["at '/controller/replicas': minimum: got 0, want 1"],
    );
    assert_refused(
        ISSUER_CHART,
        &[("server.port", "70000")],
        &[],
        &["at '/server/port': maximum: got 70,000, want 65,535"],
    );
    assert_refused(
        ISSUER_CHART,
        &[("server.enabled", "maybe")],
        &[],
        &["at '/server/enabled': got string, want boolean"],
    );
    assert_refused(
        ISSUER_CHART,
        &[("logging.format", "xml")],
        &[],
        &["at '/logging/format'"],
    );
    assert_refused(
        ISSUER_CHART,
        &[("controler.replicas", "1")],
        &[],
        &[schema, "additional properties 'controler' not allowed"],
    );
    assert_refused(
        ISSUER_CHART,
        &[("certManager.approver.serviceAccount.namespace", "")],
        &[],
        &["at '/certManager/approver/serviceAccount/namespace'"],
    );
    // The certificate's lifetime.
    assert_refused(
        AGENT_CHART,
        &agent_sets(&[("certificate.duration", "1y")]),
        &[],
        &[
            schema,
            "at '/certificate/duration': '1y' does not match pattern",
        ],
    );
    assert_refused(
        AGENT_CHART,
        &agent_sets(&[("certificate.duration", "0s")]),
        &[],
        &["certificate.duration must be a positive Go duration such as 8760h; got \"0s\""],
    );
    assert_refused(
        AGENT_CHART,
        &agent_sets(&[("certificate.duration", "100ms")]),
        &[],
        &["renewBefore = 0.1 × 100ms is under a second"],
    );
    // Rules across values, in words.
    assert_refused(
        ISSUER_CHART,
        &[("controller.leaderElection.enabled", "false")],
        &[],
        &["controller.replicas > 1 needs controller.leaderElection.enabled=true"],
    );
    assert_refused(
        ISSUER_CHART,
        &[("controller.podDisruptionBudget.maxUnavailable", "1")],
        &[],
        &["controller.podDisruptionBudget: set minAvailable or maxUnavailable, not both"],
    );
}

// ----- rendered commands --------------------------------------------------------------------

fn issuer_cli(args: &[String]) -> relay_issuer::cli::Command {
    relay_issuer::cli::Cli::try_parse_from(
        std::iter::once("relay-issuer".to_string()).chain(args.iter().cloned()),
    )
    .unwrap_or_else(|e| panic!("relay-issuer refuses the chart's args {args:?}:\n{e}"))
    .command
}

#[test]
fn rendered_commands_are_what_the_binaries_accept() {
    if !helm_present("rendered_commands_are_what_the_binaries_accept") {
        return;
    }
    let downward = vec![
        ("POD_NAMESPACE".to_string(), POD_NAMESPACE_REF.to_string()),
        ("POD_NAME".to_string(), POD_NAME_REF.to_string()),
    ];

    let (args, env) =
        charts::rendered_command(ISSUER_CHART, ISSUER_NS, &[], "relay-issuer-controller").unwrap();
    assert_eq!(env, downward);
    match issuer_cli(&args) {
        relay_issuer::cli::Command::Controller(c) => {
            assert!(c.leader_elect);
            assert_eq!(c.leader_election_lease, "relay-issuer-controller");
            assert_eq!(c.admin_address, "0.0.0.0:9402");
            assert_eq!(c.concurrency, 64);
        }
        other => panic!("not the controller: {other:?}"),
    }
    assert_eq!(
        charts::resolve_env(&env, "relay-tls", "relay-issuer-controller-0"),
        vec![
            ("POD_NAMESPACE".to_string(), "relay-tls".to_string()),
            (
                "POD_NAME".to_string(),
                "relay-issuer-controller-0".to_string()
            ),
        ]
    );

    // What an end-to-end test would do: its own ports.
    let (args, env) = charts::rendered_command(
        ISSUER_CHART,
        ISSUER_NS,
        &[("server.port", "19900"), ("server.adminPort", "19403")],
        "relay-issuer-server",
    )
    .unwrap();
    let mut server_downward = downward.clone();
    server_downward.push(("POD_UID".to_string(), charts::POD_UID_REF.to_string()));
    assert_eq!(env, server_downward);
    assert_eq!(
        charts::resolve_env(&env, "relay-tls", "relay-issuer-server-0")[2],
        ("POD_UID".to_string(), String::new()),
        "outside Kubernetes there is no Pod to own the replica's Lease"
    );
    match issuer_cli(&args) {
        relay_issuer::cli::Command::Server(s) => {
            assert_eq!(s.listen, "0.0.0.0:19900");
            assert_eq!(s.admin_address, "0.0.0.0:19403");
            assert_eq!(s.trust_domain, "relay.local");
            assert_eq!(s.signing_secret, "relay-tls-signing-secret");
            assert_eq!(s.token_secret, "relay-identity-token-secret");
        }
        other => panic!("not the server: {other:?}"),
    }

    for certificate in ["true", "false"] {
        let (args, env) = charts::rendered_command(
            AGENT_CHART,
            AGENT_NS,
            &agent_sets(&[("certificate.create", certificate)]),
            "relay-agent",
        )
        .unwrap();
        assert_eq!(env, downward);
        let parsed = relay_agent::cli::Args::try_parse_from(
            std::iter::once("relay-agent".to_string()).chain(args.iter().cloned()),
        )
        .unwrap_or_else(|e| panic!("relay-agent refuses the chart's args {args:?}:\n{e}"));
        assert_eq!(parsed.relay_address, "https://relay.gloo-mesh:9900");
        assert_eq!(parsed.cluster, "cluster-1");
        assert_eq!(parsed.client_tls_secret_name, "relay-client-tls-secret");
        assert_eq!(parsed.root_tls_secret_name, "relay-root-tls-secret");
        assert_eq!(parsed.admin_address, "0.0.0.0:9091");
    }

    // The same through render_chart (objects and commands at once), as the demo uses it.
    let rendered = charts::render_chart(
        AGENT_CHART,
        AGENT_NS,
        &[
            ("cluster", "cluster-1".to_string()),
            (
                "glooAgent.relay.serverAddress",
                "https://relay-server.gloo-mesh:9900".into(),
            ),
            ("certificate.duration", "24s".into()),
            (RATIO, "0.5".into()),
        ],
    )
    .unwrap();
    assert_eq!(rendered.release, AGENT_CHART);
    assert_eq!(
        rendered
            .find("Certificate", "relay-agent-client-tls")
            .unwrap()["spec"]["renewBefore"],
        "12s"
    );
    let (args, env) = rendered.command("relay-agent").unwrap();
    assert_eq!(env, downward);
    assert!(args.contains(&"--relay-address=https://relay-server.gloo-mesh:9900".to_string()));
    assert_eq!(rendered.of_kind("Deployment").len(), 1);

    // A Deployment that is not rendered is named in the error.
    let error = charts::rendered_command(
        ISSUER_CHART,
        ISSUER_NS,
        &[("server.enabled", "false")],
        "relay-issuer-server",
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("Deployment relay-issuer-server"), "{error}");
    assert!(error.contains("relay-issuer-controller"), "{error}");
}

// ----- the sandbox ----------------------------------------------------------------------------

/// Kinds the sandbox does not serve (yet); their objects are checked against the Kubernetes API
/// types instead of being created.
const NOT_SERVED_YET: [&str; 7] = [
    "Deployment",
    "Service",
    "PodDisruptionBudget",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
];

/// `kubectl apply -f` of `objects` (one file); every one must be `created`.
fn apply_all(k: &Kubectl, file: &str, objects: &[&Value]) {
    let path = k.dir().join(file);
    charts::write_manifests(&path, objects).unwrap();
    let out = k.ok(&["apply", "-f", path.to_str().unwrap()]);
    let created = out.lines().filter(|l| l.ends_with(" created")).count();
    assert_eq!(created, objects.len(), "kubectl apply -f {file}:\n{out}");
}

/// Every field of `expected` is in `actual` with the same value (objects may have more keys).
fn contains(actual: &Value, expected: &Value, path: &str) -> Result<(), String> {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (key, value) in e {
                let inner = format!("{path}.{key}");
                let found = a.get(key).ok_or_else(|| format!("{inner} is missing"))?;
                contains(found, value, &inner)?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(e)) if a.len() == e.len() => a
            .iter()
            .zip(e)
            .enumerate()
            .try_for_each(|(i, (a, e))| contains(a, e, &format!("{path}[{i}]"))),
        (Value::Number(a), Value::Number(e)) if a.as_f64() == e.as_f64() => Ok(()),
        _ if actual == expected => Ok(()),
        _ => Err(format!("{path}: {actual} instead of {expected}")),
    }
}

/// `object` read into its k8s-openapi type and written back: every field the chart rendered
/// must survive (a misspelt or misplaced field would be dropped, a wrong type refused).
fn typed_round_trip(object: &Value) -> Result<Value, String> {
    use k8s_openapi::api::{apps, core, policy, rbac};
    fn through<T: serde::de::DeserializeOwned + serde::Serialize>(
        object: &Value,
    ) -> Result<Value, String> {
        let typed: T = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(typed).map_err(|e| e.to_string())
    }
    match object["kind"].as_str().unwrap_or_default() {
        "Deployment" => through::<apps::v1::Deployment>(object),
        "Service" => through::<core::v1::Service>(object),
        "ServiceAccount" => through::<core::v1::ServiceAccount>(object),
        "PodDisruptionBudget" => through::<policy::v1::PodDisruptionBudget>(object),
        "Role" => through::<rbac::v1::Role>(object),
        "RoleBinding" => through::<rbac::v1::RoleBinding>(object),
        "ClusterRole" => through::<rbac::v1::ClusterRole>(object),
        "ClusterRoleBinding" => through::<rbac::v1::ClusterRoleBinding>(object),
        other => Err(format!("no Kubernetes API type for {other}")),
    }
}

/// A stand-in for prometheus-operator's ServiceMonitor CRD (group, names and version only; the
/// spec is kept as given), so that the ServiceMonitor can be created too.
fn service_monitor_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": "ServiceMonitor", "listKind": "ServiceMonitorList", "plural": "servicemonitors", "singular": "servicemonitor"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }}}
            }]
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_manifests_are_created_in_the_sandbox() {
    let test = "rendered_manifests_are_created_in_the_sandbox";
    if !helm_present(test) {
        return;
    }
    if kube_sandbox::kubectl::kubectl().is_none() {
        missing_tool(test, "kubectl not found (or set RELAY_KUBECTL)");
        return;
    }
    let sandbox = Sandbox::start().await.unwrap();
    // cert-manager's own CRDs of the pinned release, its webhook rules, approver and
    // Certificate controller.
    sandbox.load_crds(&cert_manager_crds()).await.unwrap();
    let _simulator = Simulator::start(&sandbox, SimulatorOptions::default()).unwrap();
    sandbox.create_crd(service_monitor_crd()).unwrap();
    let client = sandbox.client().unwrap();
    let Some(k) = Kubectl::for_test(test, sandbox.kubeconfig()) else {
        return;
    };
    let byo_ns = "team-byo";
    let namespaces: Vec<Value> = [ISSUER_NS, AGENT_NS, byo_ns]
        .iter()
        .map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}))
        .collect();
    apply_all(
        &k,
        "namespaces.yaml",
        &namespaces.iter().collect::<Vec<_>>(),
    );

    // Everything both charts render, in every mode.
    let issuer_objects = render(
        ISSUER_CHART,
        "relay-issuer",
        ISSUER_NS,
        &[("serviceMonitor.enabled", "true")],
        &["--include-crds"],
    )
    .unwrap();
    let managed = agent(&[]);
    let byo = render(
        AGENT_CHART,
        "byo",
        byo_ns,
        &agent_sets(&[("certificate.create", "false"), ("cluster", "cluster-2")]),
        &[],
    )
    .unwrap();

    // The CRDs first, as helm installs them.
    let crds: Vec<&Value> = of_kind(&issuer_objects, "CustomResourceDefinition");
    assert_eq!(crds.len(), 3);
    apply_all(&k, "crds.yaml", &crds);
    for crd in &crds {
        assert!(sandbox.has_crd(crd["metadata"]["name"].as_str().unwrap()));
    }

    let mut served: Vec<(&Value, kube::api::ApiResource)> = Vec::new();
    let mut not_served: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for object in issuer_objects
        .iter()
        .chain(&managed)
        .chain(&byo)
        .filter(|o| o["kind"] != "CustomResourceDefinition")
    {
        let (group, version) = match object["apiVersion"].as_str().unwrap().split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", object["apiVersion"].as_str().unwrap()),
        };
        let gvk = GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap());
        match kube::discovery::pinned_kind(&client, &gvk).await {
            Ok((resource, _)) => served.push((object, resource)),
            Err(_) => not_served
                .entry(object["kind"].as_str().unwrap().to_string())
                .or_default()
                .push(describe(object)),
        }
    }
    eprintln!(
        "{test}: kinds the sandbox does not serve, checked against the k8s-openapi types instead: {:?}",
        not_served.keys().collect::<Vec<_>>()
    );
    for kind in not_served.keys() {
        assert!(
            NOT_SERVED_YET.contains(&kind.as_str()),
            "the sandbox does not serve {kind}, which the charts render"
        );
    }
    // Served kinds: created with kubectl, read back with every rendered field intact (a field
    // the CRD schema does not know would have been pruned).
    let served_objects: Vec<&Value> = served.iter().map(|(o, _)| *o).collect();
    assert!(
        served_objects.iter().any(|o| o["kind"] == "Certificate")
            && served_objects.iter().any(|o| o["kind"] == "RelayIssuer")
            && served_objects.iter().any(|o| o["kind"] == "ServiceAccount")
            && served_objects.iter().any(|o| o["kind"] == "ServiceMonitor"),
        "{:?}",
        served_objects
            .iter()
            .map(|o| describe(o))
            .collect::<Vec<_>>()
    );
    apply_all(&k, "objects.yaml", &served_objects);
    for (object, resource) in &served {
        let name = object["metadata"]["name"].as_str().unwrap();
        let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
            None => Api::all_with(client.clone(), resource),
        };
        let live = serde_json::to_value(api.get(name).await.unwrap()).unwrap();
        if let Err(difference) = contains(&live, object, "") {
            panic!(
                "{} as stored differs from as rendered: {difference}",
                describe(object)
            );
        }
    }
    // The rest: valid Kubernetes API objects, every field known.
    for object in issuer_objects.iter().chain(&managed).chain(&byo) {
        let kind = object["kind"].as_str().unwrap();
        if !not_served.contains_key(kind) {
            continue;
        }
        let round_trip = typed_round_trip(object)
            .unwrap_or_else(|e| panic!("{} is not a valid {kind}: {e}", describe(object)));
        if let Err(difference) = contains(&round_trip, object, "") {
            panic!(
                "{} has a field its type does not know: {difference}",
                describe(object)
            );
        }
    }

    // cert-manager (the simulator) took the rendered Certificate: its webhook rules admitted it
    // and its controller asked our RelayIssuer for the certificate.
    let requests: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        AGENT_NS,
        &cert_manager_sim::resource("CertificateRequest", "certificaterequests"),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let request = loop {
        if let Ok(request) = requests.get("relay-agent-client-tls-1").await {
            break serde_json::to_value(request).unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no CertificateRequest for the rendered Certificate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        request["spec"]["issuerRef"],
        json!({"group": "relaytls.dev", "kind": "RelayIssuer", "name": "relay"})
    );
    // cert-manager writes durations as Go prints them.
    assert_eq!(request["spec"]["duration"], "8760h0m0s");
    let stored = k.ok(&[
        "get",
        "certificate",
        "relay-agent-client-tls",
        "-n",
        AGENT_NS,
        "-o",
        "jsonpath={.spec.renewBefore}",
    ]);
    assert_eq!(stored, "3153600s");
    // Bring your own: no Certificate, so nothing is requested there.
    let out = k.ok(&[
        "get",
        "certificates,certificaterequests",
        "-n",
        byo_ns,
        "-o",
        "name",
    ]);
    assert_eq!(out.trim(), "", "{out}");
}
