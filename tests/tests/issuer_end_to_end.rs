//! Certificate → Secret end to end: the cert-manager simulator (Certificate controller +
//! approve-all approver) and an in-process `relay-issuer controller` replica, for both issuer
//! kinds and every CA key type. The resulting Secret is checked independently of relay-issuer's
//! own PKI code with the `openssl` binary: the chain verifies to the test CA's root, the leaf is
//! issued by the intermediate, `ca.crt` is the root, and the leaf's public key is `tls.key`'s.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cert_manager_sim::{Simulator, SimulatorOptions};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, PostParams};
use relay_issuer::pki::generate::GeneratedKeyType;
use relay_sandbox::harness::{self, CONTROLLER_NAMESPACE, Replica, TestCa};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const NAMESPACE: &str = "team-a";
const DURATION_HOURS: i64 = 2160;
/// Written as users write it; the request carries Go's canonical `2160h0m0s`, and the simulator
/// (like cert-manager) compares the parsed durations, so this must not re-issue.
const DURATION: &str = "2160h";

const KEY_TYPES: [GeneratedKeyType; 4] = [
    GeneratedKeyType::P256,
    GeneratedKeyType::P384,
    GeneratedKeyType::Rsa2048,
    GeneratedKeyType::Ed25519,
];

/// What one key type means for the test: a name suffix, the leaf's `spec.privateKey` (the same
/// algorithm as the CA, so every leaf key type is exercised too), and what openssl prints for
/// the leaf's public key algorithm and its signature algorithm (which the CA's key decides).
struct Case {
    key_type: GeneratedKeyType,
    suffix: &'static str,
    private_key: Value,
    leaf_key_algorithm: &'static str,
    signature_algorithm: &'static str,
}

fn case(key_type: GeneratedKeyType) -> Case {
    let (suffix, private_key, leaf_key_algorithm, signature_algorithm) = match key_type {
        GeneratedKeyType::P256 => (
            "p256",
            json!({"algorithm": "ECDSA", "size": 256}),
            "id-ecPublicKey",
            "ecdsa-with-SHA256",
        ),
        GeneratedKeyType::P384 => (
            "p384",
            json!({"algorithm": "ECDSA", "size": 384}),
            "id-ecPublicKey",
            "ecdsa-with-SHA384",
        ),
        GeneratedKeyType::Rsa2048 => (
            "rsa2048",
            json!({"algorithm": "RSA", "size": 2048}),
            "rsaEncryption",
            "sha256WithRSAEncryption",
        ),
        GeneratedKeyType::Ed25519 => (
            "ed25519",
            json!({"algorithm": "Ed25519"}),
            "ED25519",
            "ED25519",
        ),
    };
    Case {
        key_type,
        suffix,
        private_key,
        leaf_key_algorithm,
        signature_algorithm,
    }
}

/// Which issuer kind a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Namespaced,
    Cluster,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Namespaced => "RelayIssuer",
            Kind::Cluster => "RelayClusterIssuer",
        }
    }

    /// Where the issuer's signing Secret lives.
    fn secret_namespace(self) -> &'static str {
        match self {
            Kind::Namespaced => NAMESPACE,
            Kind::Cluster => CONTROLLER_NAMESPACE,
        }
    }

    fn issuer_namespace(self) -> Option<&'static str> {
        match self {
            Kind::Namespaced => Some(NAMESPACE),
            Kind::Cluster => None,
        }
    }

    fn issuers(self, client: &kube::Client) -> Api<DynamicObject> {
        match self {
            Kind::Namespaced => {
                harness::issuer_api(client, Some(NAMESPACE), "RelayIssuer", "relayissuers")
            }
            Kind::Cluster => {
                harness::issuer_api(client, None, "RelayClusterIssuer", "relayclusterissuers")
            }
        }
    }
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `openssl args` in `dir`, asserting success, and returns stdout.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let context = std::fs::read_to_string(dir.join("context")).unwrap_or_default();
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{context}: openssl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The PEM blocks of a bundle, each ending with a newline.
fn pem_blocks(bundle: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current = String::new();
    for line in bundle.lines() {
        if line.starts_with("-----BEGIN ") {
            current.clear();
        }
        current.push_str(line);
        current.push('\n');
        if line.starts_with("-----END ") {
            blocks.push(std::mem::take(&mut current));
        }
    }
    blocks
}

/// `tls.key` in a form OpenSSL 3.0 reads. Ed25519 keys generated with ring are PKCS#8 v2
/// (RFC 5958 OneAsymmetricKey, the public key appended), which OpenSSL 3.0 refuses ("unsupported");
/// those are rewritten as PKCS#8 v1 holding only the private seed, so openssl derives the public
/// key itself. Every other key is returned unchanged.
fn openssl_readable_key(pem: &str) -> String {
    const V2_PREFIX: [u8; 16] = [
        0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body.trim()).unwrap();
    if der.len() != 83 || der[..16] != V2_PREFIX {
        return pem.to_string();
    }
    let mut v1 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    v1.extend_from_slice(&der[16..48]);
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(v1)
    )
}

/// The text after `prefix=` on openssl's one-line output (e.g. `subject=CN = x`).
fn after_prefix<'a>(line: &'a str, prefix: &str) -> &'a str {
    line.trim()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}"))
        .trim()
}

fn certificate(name: &str, kind: Kind, issuer: &str, private_key: &Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "secretName": format!("{name}-tls"),
            "commonName": name,
            "uris": [format!("spiffe://relay.local/relay/cluster/{name}")],
            "duration": DURATION,
            "usages": ["client auth", "digital signature"],
            "privateKey": private_key,
            "issuerRef": {"name": issuer, "kind": kind.name(), "group": "relaytls.dev"},
        }
    }))
    .unwrap()
}

fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Polls until `check` returns `Some`, panicking with `what` after [`WAIT`].
async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the whole flow for `kind` and every CA key type in one sandbox: an issuer and signing
/// Secret per key type, a Certificate per issuer, then checks every resulting Secret.
async fn end_to_end(kind: Kind) {
    assert!(
        openssl_available(),
        "these tests verify the issued chain with the `openssl` binary, which was not found on PATH"
    );
    let sandbox = harness::sandbox().await.unwrap();
    let client = sandbox.client().unwrap();
    let _simulator = Simulator::start(&sandbox, SimulatorOptions::fast()).unwrap();

    let cases: Vec<Case> = KEY_TYPES.into_iter().map(case).collect();
    let mut cas: Vec<TestCa> = Vec::new();
    for case in &cases {
        let ca = harness::test_ca(case.key_type, time::Duration::days(365)).unwrap();
        // P-256 uses the default Secret name (no spec.ca), the others name theirs.
        let (secret_name, spec) = if case.key_type == GeneratedKeyType::P256 {
            ("relay-tls-signing-secret".to_string(), json!({}))
        } else {
            let name = format!("signing-{}", case.suffix);
            (name.clone(), json!({"ca": {"secretName": name}}))
        };
        harness::put_signing_secret(&client, kind.secret_namespace(), &secret_name, &ca)
            .await
            .unwrap();
        harness::create_issuer(
            &client,
            kind.issuer_namespace(),
            &format!("relay-{}", case.suffix),
            spec,
        )
        .await
        .unwrap();
        cas.push(ca);
    }
    let replica = Replica::alone(client.clone());

    // Every issuer verifies its CA before any Certificate exists.
    let issuers = kind.issuers(&client);
    for case in &cases {
        let issuer = harness::wait_for_reason(
            &issuers,
            &format!("relay-{}", case.suffix),
            "CAVerified",
            WAIT,
        )
        .await;
        assert_eq!(
            harness::ready_condition(&issuer).unwrap()["status"],
            "True",
            "{} relay-{}",
            kind.name(),
            case.suffix
        );
    }

    let certificates: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &cert_manager_sim::resource("Certificate", "certificates"),
    );
    for case in &cases {
        let name = format!("agent-{}", case.suffix);
        certificates
            .create(
                &PostParams::default(),
                &certificate(
                    &name,
                    kind,
                    &format!("relay-{}", case.suffix),
                    &case.private_key,
                ),
            )
            .await
            .unwrap();
    }

    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let requests = harness::requests(&client, NAMESPACE);
    for (case, ca) in cases.iter().zip(&cas) {
        let name = format!("agent-{}", case.suffix);
        let context = format!("{} with a {:?} CA", kind.name(), case.key_type);

        // The Certificate becomes Ready=True at revision 1.
        let status = wait_for(
            &format!("{context}: Certificate {name} Ready"),
            async || {
                let c = serde_json::to_value(certificates.get(&name).await.ok()?).ok()?;
                condition(&c, "Ready")
                    .is_some_and(|r| r["status"] == "True")
                    .then(|| c["status"].clone())
            },
        )
        .await;
        assert_eq!(status["revision"], 1, "{context}: {status}");
        let ready = condition(&json!({"status": status}), "Ready")
            .cloned()
            .unwrap();
        assert_eq!(ready["reason"], "Ready", "{context}: {ready}");
        let not_before = time::OffsetDateTime::parse(
            status["notBefore"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let not_after = time::OffsetDateTime::parse(
            status["notAfter"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert_eq!(
            not_after - not_before,
            time::Duration::hours(DURATION_HOURS),
            "{context}: the leaf lives for spec.duration"
        );

        // The request was approved by the simulator and issued by relay-issuer.
        let request = requests.get(&format!("{name}-1")).await.unwrap();
        let request_ready = harness::ready_condition(&request).unwrap();
        assert_eq!(request_ready["reason"], "Issued", "{context}");
        assert_eq!(request_ready["status"], "True", "{context}");
        assert!(
            request.data["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["type"] == "Approved" && c["status"] == "True"),
            "{context}: Approved kept: {}",
            request.data["status"]
        );

        // The Secret.
        let secret = secrets.get(&format!("{name}-tls")).await.unwrap();
        assert_eq!(
            secret.type_.as_deref(),
            Some("kubernetes.io/tls"),
            "{context}"
        );
        let data = secret.data.clone().unwrap();
        let text = |key: &str| {
            String::from_utf8(
                data.get(key)
                    .unwrap_or_else(|| panic!("{context}: {key} missing"))
                    .0
                    .clone(),
            )
            .unwrap()
        };
        let (tls_crt, tls_key, ca_crt) = (text("tls.crt"), text("tls.key"), text("ca.crt"));
        // The simulator copies status.certificate / status.ca verbatim.
        assert_eq!(
            tls_crt.as_bytes(),
            STANDARD
                .decode(request.data["status"]["certificate"].as_str().unwrap())
                .unwrap(),
            "{context}"
        );

        let blocks = pem_blocks(&tls_crt);
        assert_eq!(
            blocks.len(),
            2,
            "{context}: leaf + intermediate:\n{tls_crt}"
        );
        assert!(
            blocks
                .iter()
                .all(|b| b.starts_with("-----BEGIN CERTIFICATE-----")),
            "{context}: only certificates in tls.crt"
        );
        assert_eq!(
            blocks[1].trim(),
            ca.intermediate_pem.trim(),
            "{context}: the intermediate follows the leaf"
        );
        assert_eq!(
            ca_crt.trim(),
            ca.root_pem.trim(),
            "{context}: ca.crt is the test CA's root"
        );
        assert!(
            !tls_crt.contains(ca.root_pem.trim()),
            "{context}: never the root in tls.crt"
        );

        // Independent checks with openssl.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("context"), &context).unwrap();
        std::fs::write(dir.path().join("leaf.pem"), &blocks[0]).unwrap();
        std::fs::write(dir.path().join("intermediate.pem"), &blocks[1]).unwrap();
        std::fs::write(dir.path().join("root.pem"), &ca_crt).unwrap();
        std::fs::write(dir.path().join("tls.key"), openssl_readable_key(&tls_key)).unwrap();
        let verified = openssl(
            dir.path(),
            &[
                "verify",
                "-purpose",
                "sslclient",
                "-CAfile",
                "root.pem",
                "-untrusted",
                "intermediate.pem",
                "leaf.pem",
            ],
        );
        assert_eq!(verified.trim(), "leaf.pem: OK", "{context}");

        let leaf_issuer = openssl(
            dir.path(),
            &[
                "x509", "-noout", "-issuer", "-nameopt", "RFC2253", "-in", "leaf.pem",
            ],
        );
        let leaf_subject = openssl(
            dir.path(),
            &[
                "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", "leaf.pem",
            ],
        );
        let intermediate_subject = openssl(
            dir.path(),
            &[
                "x509",
                "-noout",
                "-subject",
                "-nameopt",
                "RFC2253",
                "-in",
                "intermediate.pem",
            ],
        );
        assert_eq!(
            after_prefix(&leaf_issuer, "issuer="),
            after_prefix(&intermediate_subject, "subject="),
            "{context}: the leaf's issuer is the intermediate"
        );
        assert_eq!(
            after_prefix(&leaf_subject, "subject="),
            format!("CN={name}"),
            "{context}"
        );

        let leaf_public_key = openssl(
            dir.path(),
            &["x509", "-noout", "-pubkey", "-in", "leaf.pem"],
        );
        let key_public_key = openssl(dir.path(), &["pkey", "-pubout", "-in", "tls.key"]);
        assert!(
            leaf_public_key.contains("-----BEGIN PUBLIC KEY-----"),
            "{context}: {leaf_public_key}"
        );
        assert_eq!(
            leaf_public_key, key_public_key,
            "{context}: the leaf's public key is tls.key's"
        );

        let leaf_text = openssl(
            dir.path(),
            &[
                "x509",
                "-noout",
                "-text",
                "-certopt",
                "no_sigdump",
                "-in",
                "leaf.pem",
            ],
        );
        assert!(
            leaf_text.contains(&format!(
                "Public Key Algorithm: {}",
                case.leaf_key_algorithm
            )),
            "{context}: leaf key per spec.privateKey:\n{leaf_text}"
        );
        assert!(
            leaf_text.contains(&format!(
                "Signature Algorithm: {}",
                case.signature_algorithm
            )),
            "{context}: signed by the {:?} intermediate:\n{leaf_text}",
            case.key_type
        );
        assert!(
            leaf_text.contains(&format!("URI:spiffe://relay.local/relay/cluster/{name}")),
            "{context}: the URI SAN:\n{leaf_text}"
        );
        assert!(
            leaf_text.contains("TLS Web Client Authentication"),
            "{context}: client auth EKU:\n{leaf_text}"
        );
        assert!(
            leaf_text.contains("CA:FALSE"),
            "{context}: not a CA:\n{leaf_text}"
        );
    }
    // Settled: nothing is re-issued, one signature per Certificate. Sentinel: one more
    // Certificate, created now, is issued; the simulator's passes over every Certificate that
    // created and completed its request came after the checks above, and so did the
    // controller's handling of those requests.
    let sentinel = "agent-sentinel";
    certificates
        .create(
            &PostParams::default(),
            &certificate(sentinel, kind, "relay-p256", &cases[0].private_key),
        )
        .await
        .unwrap();
    wait_for(
        &format!("{}: the sentinel Certificate Ready", kind.name()),
        async || {
            let c = serde_json::to_value(certificates.get(sentinel).await.ok()?).ok()?;
            condition(&c, "Ready")
                .is_some_and(|r| r["status"] == "True")
                .then_some(())
        },
    )
    .await;
    for case in &cases {
        let c = certificates
            .get(&format!("agent-{}", case.suffix))
            .await
            .unwrap();
        assert_eq!(
            c.data["status"]["revision"],
            1,
            "{} {:?}: still revision 1",
            kind.name(),
            case.key_type
        );
    }
    assert_eq!(
        replica.signatures(),
        cases.len() as u64 + 1,
        "one signature per Certificate, the sentinel's included"
    );
    let mut requested: Vec<String> = requests
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|r| r.metadata.name)
        .collect();
    requested.sort();
    let mut expected: Vec<String> = cases
        .iter()
        .map(|case| format!("agent-{}-1", case.suffix))
        .chain([format!("{sentinel}-1")])
        .collect();
    expected.sort();
    assert_eq!(
        requested, expected,
        "one request per Certificate, revision 1"
    );
    replica.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_to_secret_through_a_relay_issuer_for_every_ca_key_type() {
    end_to_end(Kind::Namespaced).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_to_secret_through_a_relay_cluster_issuer_for_every_ca_key_type() {
    end_to_end(Kind::Cluster).await;
}
