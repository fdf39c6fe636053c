//! The `relay-issuer` command line: help everywhere, exit code 2 and a clear message on every
//! kind of bad input, nothing written on refusal, and what `inspect` reports.

mod common;
use base64::Engine;
use common::*;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn agent_csr(s: &Scratch) -> String {
    s.openssl(&[
        "ecparam",
        "-genkey",
        "-name",
        "prime256v1",
        "-noout",
        "-out",
        "agent.key",
    ]);
    s.openssl(&[
        "req",
        "-new",
        "-key",
        "agent.key",
        "-subj",
        "/CN=cluster-a",
        "-addext",
        "subjectAltName=URI:spiffe://relay.local/relay/cluster/cluster-a",
        "-out",
        "agent.csr",
    ]);
    s.p("agent.csr")
}

#[test]
fn every_command_has_help() {
    let s = Scratch::new();
    for args in [
        vec!["--help"],
        vec!["ca", "--help"],
        vec!["ca", "create", "--help"],
        vec!["sign", "--help"],
        vec!["inspect", "--help"],
    ] {
        let out = ok(s.relay_issuer(&args));
        assert!(out.contains("Usage:"), "{args:?}: {out}");
    }
    let help = ok(s.relay_issuer(&["sign", "--help"]));
    for flag in [
        "--signing-secret",
        "--ca-cert",
        "--ca-key",
        "--ca-root",
        "--csr",
        "--duration",
        "--usages",
        "--is-ca",
        "--ca-out",
    ] {
        assert!(help.contains(flag), "{flag} missing from sign --help");
    }
    let help = ok(s.relay_issuer(&["ca", "create", "--help"]));
    for flag in [
        "--out",
        "--trust-domain",
        "--namespace",
        "--key-type",
        "--root-ttl",
        "--intermediate-ttl",
        "--server-name",
        "--force",
    ] {
        assert!(help.contains(flag), "{flag} missing from ca create --help");
    }
}

#[test]
fn ca_create_refuses_to_overwrite_and_writes_nothing_on_refusal() {
    let s = Scratch::new();
    ok(s.relay_issuer(&[
        "ca",
        "create",
        "--out",
        "pki",
        "--server-name",
        "relay.example.com",
    ]));
    let before: Vec<(String, String)> = list_files(&s.path("pki"))
        .into_iter()
        .map(|f| (f.clone(), s.read(&format!("pki/{f}"))))
        .collect();
    assert_eq!(before.len(), 9, "{before:?}");
    let err = refused(s.relay_issuer(&["ca", "create", "--out", "pki"]));
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    let after: Vec<(String, String)> = list_files(&s.path("pki"))
        .into_iter()
        .map(|f| (f.clone(), s.read(&format!("pki/{f}"))))
        .collect();
    assert_eq!(before, after, "a refusal changes nothing");
    ok(s.relay_issuer(&["ca", "create", "--out", "pki", "--force"]));
    assert_ne!(
        s.read("pki/root.crt"),
        before.iter().find(|(f, _)| f == "root.crt").unwrap().1
    );
}

#[test]
fn ca_create_writes_keys_privately_and_manifests_for_the_namespace() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new();
    ok(s.relay_issuer(&[
        "ca",
        "create",
        "--out",
        "pki",
        "--namespace",
        "relay-system",
        "--trust-domain",
        "mesh.example.com",
        "--server-name",
        "10.0.0.1",
    ]));
    for key in [
        "root.key",
        "intermediate.key",
        "server.key",
        "relay-tls-signing-secret.yaml",
    ] {
        let mode = std::fs::metadata(s.path(&format!("pki/{key}")))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    let signing = s.read("pki/relay-tls-signing-secret.yaml");
    assert!(
        signing.contains("name: relay-tls-signing-secret")
            && signing.contains("namespace: relay-system"),
        "{signing}"
    );
    assert!(signing.contains("type: kubernetes.io/tls"), "{signing}");
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(signing.contains(key), "{key} missing: {signing}");
    }
    let root = s.read("pki/relay-root-tls-secret.yaml");
    assert!(
        root.contains("ca.crt") && !root.contains("tls.key"),
        "{root}"
    );
    let subject = s.openssl(&["x509", "-in", "pki/root.crt", "-noout", "-subject"]);
    assert!(subject.contains("mesh.example.com"), "{subject}");
    let san = s.openssl(&[
        "x509",
        "-in",
        "pki/server.crt",
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    assert!(san.contains("IP Address:10.0.0.1"), "{san}");
}

#[test]
fn ca_create_rejects_bad_arguments_before_writing() {
    let s = Scratch::new();
    let err = refused(s.relay_issuer(&["ca", "create", "--out", "pki", "--root-ttl", "10y"]));
    assert!(
        err.contains("invalid duration \"10y\"") && err.contains("unknown unit"),
        "{err}"
    );
    assert!(!s.path("pki").exists(), "nothing written");
    let out = s.relay_issuer(&["ca", "create", "--out", "pki", "--key-type", "dsa"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value 'dsa'"),
        "{}",
        stderr(&out)
    );
    let err = refused(s.relay_issuer(&["ca", "create", "--out", "pki", "--trust-domain", ""]));
    assert!(err.contains("trust domain"), "{err}");
    assert!(!s.path("pki").exists());
}

#[test]
fn sign_reads_secret_manifests_in_yaml_json_and_string_data() {
    let s = Scratch::new();
    ok(s.relay_issuer(&["ca", "create", "--out", "pki"]));
    let csr = agent_csr(&s);
    let (crt, key, ca) = (
        s.read("pki/intermediate.crt"),
        s.read("pki/intermediate.key"),
        s.read("pki/root.crt"),
    );
    let json = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "relay-tls-signing-secret"},
        "data": {"tls.crt": b64(&crt), "tls.key": b64(&key), "ca.crt": b64(&ca)}
    });
    s.write("secret.json", json.to_string());
    ok(s.relay_issuer(&["sign", "--signing-secret", "secret.json", "--csr", &csr]));
    let string_data = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"},
        "stringData": {"tls.crt": crt, "tls.key": key}
    });
    // YAML is a superset of JSON, but write real block YAML too.
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nstringData:\n  tls.crt: |\n{}\n  tls.key: |\n{}\n",
        crt.lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
        key.lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    s.write("secret-string.yaml", yaml);
    s.write("secret-string.json", string_data.to_string());
    let out = s.relay_issuer(&[
        "sign",
        "--signing-secret",
        "secret-string.yaml",
        "--csr",
        &csr,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no root CA is known"),
        "without ca.crt the note says so: {}",
        stderr(&out)
    );
    ok(s.relay_issuer(&[
        "sign",
        "--signing-secret",
        "secret-string.json",
        "--csr",
        &csr,
    ]));
}

#[test]
fn bad_input_anywhere_is_a_clear_refusal_that_writes_nothing() {
    let s = Scratch::new();
    ok(s.relay_issuer(&["ca", "create", "--out", "pki"]));
    let csr = agent_csr(&s);
    let (crt, key) = (
        s.read("pki/intermediate.crt"),
        s.read("pki/intermediate.key"),
    );
    s.write("empty", "");
    s.write(
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n-----END CERTIFICATE-----\n",
    );
    s.write(
        "truncated.yaml",
        format!(
            "kind: Secret\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
            &b64(&crt)[..101],
            b64(&key)
        ),
    );
    s.write(
        "nokeys.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata: {}\n",
    );
    s.write(
        "configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s\n",
    );
    s.write("broken.yaml", "kind: Secret\ndata: [\n");
    s.write(
        "ed-key.pem",
        s.openssl(&["genpkey", "-algorithm", "ed25519"]),
    );
    s.write("leaf-as-csr.pem", &crt);

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "--ca-cert",
                "pki/intermediate.crt",
                "--ca-key",
                "pki/intermediate.key",
                "--csr",
                "empty",
            ],
            "the request is empty",
        ),
        (
            vec![
                "--ca-cert",
                "pki/intermediate.crt",
                "--ca-key",
                "pki/intermediate.key",
                "--csr",
                "garbage.pem",
            ],
            "not PEM-encoded",
        ),
        (
            vec![
                "--ca-cert",
                "pki/intermediate.crt",
                "--ca-key",
                "pki/intermediate.key",
                "--csr",
                "leaf-as-csr.pem",
            ],
            "no CERTIFICATE REQUEST block",
        ),
        (
            vec![
                "--ca-cert",
                "pki/intermediate.crt",
                "--ca-key",
                "pki/intermediate.key",
                "--csr",
                "missing.csr",
            ],
            "cannot read missing.csr",
        ),
        (
            vec![
                "--ca-cert",
                "empty",
                "--ca-key",
                "pki/intermediate.key",
                "--csr",
                &csr,
            ],
            "holds no PEM CERTIFICATE block",
        ),
        (
            vec![
                "--ca-cert",
                "garbage.pem",
                "--ca-key",
                "pki/intermediate.key",
                "--csr",
                &csr,
            ],
            "PEM is malformed",
        ),
        (
            vec![
                "--ca-cert",
                "pki/intermediate.crt",
                "--ca-key",
                "empty",
                "--csr",
                &csr,
            ],
            "holds no PEM private key block",
        ),
        (
            vec![
                "--ca-cert",
                "pki/intermediate.crt",
                "--ca-key",
                "ed-key.pem",
                "--csr",
                &csr,
            ],
            "does not match the CA certificate",
        ),
        (
            vec![
                "--ca-cert",
                "pki/intermediate.crt",
                "--ca-key",
                "pki/intermediate.key",
                "--ca-root",
                "garbage.pem",
                "--csr",
                &csr,
            ],
            "PEM is malformed",
        ),
        (
            vec!["--signing-secret", "truncated.yaml", "--csr", &csr],
            "data.tls.crt is not valid base64",
        ),
        (
            vec!["--signing-secret", "nokeys.yaml", "--csr", &csr],
            "it has no \"tls.crt\" key",
        ),
        (
            vec!["--signing-secret", "configmap.yaml", "--csr", &csr],
            "its kind is \"ConfigMap\"",
        ),
        (
            vec!["--signing-secret", "broken.yaml", "--csr", &csr],
            "invalid YAML",
        ),
        (
            vec!["--signing-secret", "empty", "--csr", &csr],
            "the file is empty",
        ),
        (
            vec![
                "--signing-secret",
                "pki/relay-tls-signing-secret.yaml",
                "--csr",
                &csr,
                "--duration",
                "1y",
            ],
            "invalid duration \"1y\"",
        ),
        (
            vec![
                "--signing-secret",
                "pki/relay-tls-signing-secret.yaml",
                "--csr",
                &csr,
                "--duration",
                "90",
            ],
            "missing unit",
        ),
        (
            vec![
                "--signing-secret",
                "pki/relay-tls-signing-secret.yaml",
                "--csr",
                &csr,
                "--usages",
                "clientauth",
            ],
            "unknown usage \"clientauth\"",
        ),
        (
            vec![
                "--signing-secret",
                "pki/relay-tls-signing-secret.yaml",
                "--csr",
                &csr,
                "--max-duration",
                "24h",
                "--duration",
                "48h",
            ],
            "exceeds this issuer's maximum of 24h0m0s",
        ),
    ];
    for (args, expected) in cases {
        let mut full = vec!["sign"];
        full.extend(args.iter().copied());
        full.extend(["--ca-out", "should-not-exist.pem"]);
        let err = refused(s.relay_issuer(&full));
        assert!(
            err.contains(expected),
            "{args:?}: expected {expected:?} in {err}"
        );
        assert!(
            !err.contains("PRIVATE KEY-----"),
            "no key material in errors"
        );
        assert!(
            !s.path("should-not-exist.pem").exists(),
            "{args:?} wrote --ca-out"
        );
    }
    // Conflicting or missing CA sources are usage errors (exit 2).
    let out = s.relay_issuer(&["sign", "--csr", &csr]);
    assert_eq!(out.status.code(), Some(2));
    let out = s.relay_issuer(&[
        "sign",
        "--signing-secret",
        "x",
        "--ca-cert",
        "y",
        "--ca-key",
        "z",
        "--csr",
        &csr,
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_refusal_reason_is_the_one_the_controller_would_write() {
    let s = Scratch::new();
    ok(s.relay_issuer(&["ca", "create", "--out", "pki"]));
    let csr = agent_csr(&s);
    let err = refused(s.relay_issuer(&[
        "sign",
        "--signing-secret",
        "pki/relay-tls-signing-secret.yaml",
        "--csr",
        &csr,
        "--is-ca",
    ]));
    // Exactly the PKI core's message for Error::CaNotAllowed.
    assert_eq!(
        err.trim_end(),
        format!("error: {}", relay_issuer::pki::Error::CaNotAllowed)
    );
}

#[test]
fn inspect_describes_certificates_secrets_and_keys() {
    let s = Scratch::new();
    ok(s.relay_issuer(&["ca", "create", "--out", "pki"]));
    let csr = agent_csr(&s);
    let chain = ok(s.relay_issuer(&[
        "sign",
        "--signing-secret",
        "pki/relay-tls-signing-secret.yaml",
        "--csr",
        &csr,
        "--duration",
        "8760h",
    ]));
    s.write("chain.pem", &chain);
    let text = ok(s.relay_issuer(&["inspect", "chain.pem", "--ratio", "0.1"]));
    assert!(text.contains("subject:     CN=cluster-a"), "{text}");
    assert!(
        text.contains("URI:spiffe://relay.local/relay/cluster/cluster-a"),
        "{text}"
    );
    assert!(
        text.contains("(8760h0m0s)") && text.contains("grace ratio 0.1"),
        "{text}"
    );
    assert!(
        text.contains("ECDSA P-256") && text.contains("state:       valid"),
        "{text}"
    );

    // Key check: the right key matches, another does not.
    let text = ok(s.relay_issuer(&["inspect", "chain.pem", "--key", "agent.key"]));
    assert!(
        text.contains("private key:   matches certificate #1"),
        "{text}"
    );
    let text = ok(s.relay_issuer(&["inspect", "chain.pem", "--key", "pki/intermediate.key"]));
    assert!(text.contains("DOES NOT MATCH"), "{text}");

    // A Secret manifest: tls.crt, key check, and ca.crt.
    let text = ok(s.relay_issuer(&["inspect", "pki/relay-tls-signing-secret.yaml"]));
    assert!(
        text.contains("relay-tls intermediate CA")
            && text.contains("matches certificate #1")
            && text.contains("ca.crt certificate #1"),
        "{text}"
    );

    // JSON for machines.
    let json: serde_json::Value = serde_json::from_str(&ok(s.relay_issuer(&[
        "inspect",
        "chain.pem",
        "--output",
        "json",
        "--renew-before",
        "720h",
    ])))
    .unwrap();
    let first = &json["tls.crt"]["certificates"][0];
    assert_eq!(first["subject"], "CN=cluster-a");
    assert_eq!(first["state"], "valid");
    assert_eq!(first["lifetime"], "8760h0m0s");
    assert!(first["renewal_rule"].as_str().unwrap().contains("720h"));

    // Expiring: past the renewal time.
    let text = ok(s.relay_issuer(&["inspect", "chain.pem", "--renew-before-percentage", "99"]));
    assert!(
        text.contains("state:       valid"),
        "99% of a year is still ahead: {text}"
    );
    // Renewal one second after issuance (99% of 100 s before expiry). The hidden test-only
    // --now fixes the time of both commands instead of waiting: issued at T, the certificate
    // is valid a millisecond before T + 1 s and due for renewal at T + 1 s.
    let issued = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let at = |offset: time::Duration| {
        (issued + offset)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let short = ok(s.relay_issuer(&[
        "sign",
        "--signing-secret",
        "pki/relay-tls-signing-secret.yaml",
        "--csr",
        &csr,
        "--duration",
        "100s",
        "--now",
        &at(time::Duration::ZERO),
    ]));
    s.write("short.pem", &short);
    let inspect_at = |offset: time::Duration| {
        ok(s.relay_issuer(&[
            "inspect",
            "short.pem",
            "--renew-before-percentage",
            "99",
            "--now",
            &at(offset),
        ]))
    };
    let text = inspect_at(time::Duration::milliseconds(999));
    assert!(text.contains("state:       valid"), "{text}");
    let text = inspect_at(time::Duration::seconds(1));
    assert!(text.contains("EXPIRING"), "{text}");
}

#[test]
fn now_is_hidden_checked_and_refused_outside_the_offline_commands() {
    let s = Scratch::new();
    let help = ok(s.relay_issuer(&["inspect", "--help"]));
    assert!(!help.contains("--now"), "--now is hidden: {help}");
    let err = refused(s.relay_issuer(&["inspect", "x.pem", "--now", "yesterday"]));
    assert!(err.contains("RFC 3339"), "{err}");
    let err = refused(s.relay_issuer(&["crds", "--now", "2030-01-02T03:04:05Z"]));
    assert!(
        err.contains("--now") && err.contains("system clock"),
        "{err}"
    );
}

#[test]
fn inspect_flags_expired_certificates() {
    let s = Scratch::new();
    // An expired self-signed certificate, made by Python's cryptography package.
    let script = r#"
import datetime, sys
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
  .serial_number(x509.random_serial_number())
  .not_valid_before(datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc))
  .not_valid_after(datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone.utc))
  .sign(key, hashes.SHA256()))
sys.stdout.buffer.write(cert.public_bytes(serialization.Encoding.PEM))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", stderr(&out));
    s.write("old.pem", &out.stdout);
    let text = ok(s.relay_issuer(&["inspect", "old.pem"]));
    assert!(text.contains("EXPIRED at 2020-01-02T00:00:00Z"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&ok(
        s.relay_issuer(&["inspect", "old.pem", "--output", "json"])
    ))
    .unwrap();
    assert_eq!(json["tls.crt"]["certificates"][0]["state"], "expired");
}

#[test]
fn inspect_refuses_bad_input_and_bad_renewal_settings() {
    let s = Scratch::new();
    s.write("empty", "");
    s.write("text", "hello");
    s.write("nokeys.yaml", "kind: Secret\ndata: {}\n");
    assert!(refused(s.relay_issuer(&["inspect", "empty"])).contains("no PEM certificate"));
    assert!(refused(s.relay_issuer(&["inspect", "text"])).contains("no PEM certificate"));
    assert!(refused(s.relay_issuer(&["inspect", "nokeys.yaml"])).contains("no \"ca.crt\" key"));
    assert!(refused(s.relay_issuer(&["inspect", "missing.pem"])).contains("cannot read"));
    ok(s.relay_issuer(&["ca", "create", "--out", "pki"]));
    for ratio in ["0", "1", "1.5", "-0.2"] {
        let err =
            refused(s.relay_issuer(&["inspect", "pki/root.crt", &format!("--ratio={ratio}")]));
        assert!(
            err.contains("greater than 0 and less than 1"),
            "{ratio}: {err}"
        );
    }
    assert!(
        refused(s.relay_issuer(&[
            "inspect",
            "pki/root.crt",
            "--renew-before-percentage",
            "100"
        ]))
        .contains("renewBeforePercentage")
    );
    let out = s.relay_issuer(&[
        "inspect",
        "pki/root.crt",
        "--ratio",
        "0.1",
        "--renew-before",
        "1h",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "the renewal options exclude each other"
    );
}
