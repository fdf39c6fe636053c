//! The `openssl` binary as an independent checker of what `relay-issuer` signs, with CSRs and CA
//! keys made by openssl (and by Python's `cryptography`, shaped like cert-manager's CSRs).

mod common;
use common::*;

const CA_KEY_TYPES: [&str; 4] = ["p256", "p384", "rsa2048", "ed25519"];

/// openssl key generation arguments per CSR key type.
fn gen_key(s: &Scratch, kind: &str, out: &str) {
    match kind {
        "p256" => s.openssl(&[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-noout",
            "-out",
            out,
        ]),
        "p384" => s.openssl(&[
            "ecparam",
            "-genkey",
            "-name",
            "secp384r1",
            "-noout",
            "-out",
            out,
        ]),
        "rsa2048" => s.openssl(&["genrsa", "-out", out, "2048"]),
        "rsa3072" => s.openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:3072",
            "-out",
            out,
        ]),
        "ed25519" => s.openssl(&["genpkey", "-algorithm", "ed25519", "-out", out]),
        other => panic!("unknown key kind {other}"),
    };
}

fn client_csr(s: &Scratch, key: &str, csr: &str, cluster: &str) {
    s.openssl(&[
        "req", "-new", "-key", key, "-subj", &format!("/CN={cluster}"),
        "-addext", &format!("subjectAltName=URI:spiffe://relay.local/relay/cluster/{cluster},DNS:{cluster}.agents.example.com,IP:10.9.8.7"),
        "-addext", "keyUsage=critical,digitalSignature",
        "-addext", "extendedKeyUsage=clientAuth",
        "-out", csr,
    ]);
}

fn ext(s: &Scratch, cert: &str, names: &str) -> String {
    s.openssl(&["x509", "-in", cert, "-noout", "-ext", names])
}

#[test]
fn every_ca_and_csr_key_type_verifies_with_openssl() {
    for ca_type in CA_KEY_TYPES {
        let s = Scratch::new();
        ok(s.relay_issuer(&[
            "ca",
            "create",
            "--out",
            "pki",
            "--key-type",
            ca_type,
            "--server-name",
            "relay.example.com",
        ]));
        // The relay server certificate made by `ca create` is valid for server auth.
        let server_chain = s.read("pki/server.crt");
        let server_parts = split_pem(&server_chain);
        assert_eq!(server_parts.len(), 2, "server.crt = leaf + intermediate");
        s.write("server-leaf.pem", &server_parts[0]);
        let verify = s.openssl(&[
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            "pki/root.crt",
            "-untrusted",
            "pki/intermediate.crt",
            "server-leaf.pem",
        ]);
        assert!(verify.contains("OK"), "{verify}");

        for csr_type in ["p256", "p384", "rsa2048", "rsa3072", "ed25519"] {
            let key = format!("{csr_type}.key");
            let csr = format!("{csr_type}.csr");
            gen_key(&s, csr_type, &key);
            client_csr(&s, &key, &csr, "cluster-a");
            let chain = ok(s.relay_issuer(&[
                "sign",
                "--ca-cert",
                "pki/intermediate.crt",
                "--ca-key",
                "pki/intermediate.key",
                "--ca-root",
                "pki/root.crt",
                "--csr",
                &csr,
                "--duration",
                "8760h",
                "--usages",
                "client auth,digital signature",
                "--ca-out",
                "ca.pem",
            ]));
            let parts = split_pem(&chain);
            assert_eq!(
                parts.len(),
                2,
                "chain = leaf + intermediate ({ca_type}/{csr_type})"
            );
            assert_eq!(
                parts[1].trim(),
                s.read("pki/intermediate.crt").trim(),
                "the intermediate follows the leaf"
            );
            assert_eq!(
                s.read("ca.pem").trim(),
                s.read("pki/root.crt").trim(),
                "ca.crt is the root, not the intermediate"
            );
            s.write("leaf.pem", &parts[0]);
            let verify = s.openssl(&[
                "verify",
                "-purpose",
                "sslclient",
                "-CAfile",
                "ca.pem",
                "-untrusted",
                "pki/intermediate.crt",
                "leaf.pem",
            ]);
            assert!(
                verify.contains("leaf.pem: OK"),
                "{ca_type}/{csr_type}: {verify}"
            );

            // The leaf carries the CSR's key.
            let leaf_pub = s.openssl(&["x509", "-in", "leaf.pem", "-noout", "-pubkey"]);
            let key_pub = s.openssl(&["pkey", "-in", &key, "-pubout"]);
            assert_eq!(leaf_pub, key_pub, "{ca_type}/{csr_type}");
        }
    }
}

#[test]
fn leaf_extensions_are_exactly_what_the_rules_say() {
    let s = Scratch::new();
    ok(s.relay_issuer(&["ca", "create", "--out", "pki"]));
    gen_key(&s, "p256", "agent.key");
    client_csr(&s, "agent.key", "agent.csr", "cluster-b");
    let chain = ok(s.relay_issuer(&[
        "sign",
        "--signing-secret",
        "pki/relay-tls-signing-secret.yaml",
        "--csr",
        "agent.csr",
        "--usages",
        "client auth,digital signature",
        "--duration",
        "1h",
    ]));
    s.write("leaf.pem", &split_pem(&chain)[0]);

    let bc = ext(&s, "leaf.pem", "basicConstraints");
    assert!(bc.contains("critical") && bc.contains("CA:FALSE"), "{bc}");
    let ku = ext(&s, "leaf.pem", "keyUsage");
    assert!(
        ku.contains("critical")
            && ku.contains("Digital Signature")
            && !ku.contains("Certificate Sign"),
        "{ku}"
    );
    let eku = ext(&s, "leaf.pem", "extendedKeyUsage");
    assert!(
        eku.contains("TLS Web Client Authentication") && !eku.contains("Server"),
        "{eku}"
    );
    let san = ext(&s, "leaf.pem", "subjectAltName");
    assert!(
        san.contains("URI:spiffe://relay.local/relay/cluster/cluster-b"),
        "{san}"
    );
    assert!(
        san.contains("DNS:cluster-b.agents.example.com") && san.contains("IP Address:10.9.8.7"),
        "{san}"
    );
    let subject = s.openssl(&["x509", "-in", "leaf.pem", "-noout", "-subject"]);
    assert!(subject.contains("CN = cluster-b"), "{subject}");

    // AKI = the intermediate's SKI; the leaf has its own SKI.
    let ski_of_intermediate = ext(&s, "pki/intermediate.crt", "subjectKeyIdentifier");
    let aki = ext(&s, "leaf.pem", "authorityKeyIdentifier");
    let intermediate_id = ski_of_intermediate
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    assert!(
        aki.contains(&intermediate_id),
        "AKI {aki} vs intermediate SKI {intermediate_id}"
    );
    assert!(ext(&s, "leaf.pem", "subjectKeyIdentifier").contains("Subject Key Identifier"));

    // Serial: positive, at least 64 bits.
    let serial = s.openssl(&["x509", "-in", "leaf.pem", "-noout", "-serial"]);
    let hex = serial.trim().trim_start_matches("serial=");
    assert!(hex.len() * 4 >= 64, "{serial}");

    // Validity is exactly the requested hour.
    let dates = s.openssl(&[
        "x509",
        "-in",
        "leaf.pem",
        "-noout",
        "-startdate",
        "-enddate",
    ]);
    assert!(
        dates.contains("notBefore=") && dates.contains("notAfter="),
        "{dates}"
    );
    let check_59m = s.openssl_output(&["x509", "-in", "leaf.pem", "-noout", "-checkend", "3540"]);
    let check_61m = s.openssl_output(&["x509", "-in", "leaf.pem", "-noout", "-checkend", "3660"]);
    assert!(check_59m.status.success(), "valid for at least 59 minutes");
    assert!(!check_61m.status.success(), "expires within 61 minutes");
}

/// An openssl-made CA whose keys are SEC1 (`EC PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`).
fn openssl_ca(s: &Scratch, kind: &str) {
    let (root_key, int_key) = ("oroot.key", "oint.key");
    match kind {
        "ec" => {
            s.openssl(&[
                "ecparam",
                "-genkey",
                "-name",
                "prime256v1",
                "-noout",
                "-out",
                root_key,
            ]);
            s.openssl(&[
                "ecparam",
                "-genkey",
                "-name",
                "secp384r1",
                "-noout",
                "-out",
                int_key,
            ]);
        }
        "rsa" => {
            s.openssl(&["genrsa", "-traditional", "-out", root_key, "2048"]);
            s.openssl(&["genrsa", "-traditional", "-out", int_key, "2048"]);
        }
        _ => unreachable!(),
    }
    s.write(
        "ca.ext",
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid:always\n",
    );
    s.openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        root_key,
        "-subj",
        "/O=Example/CN=openssl root",
        "-days",
        "3650",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        "oroot.crt",
    ]);
    s.openssl(&[
        "req",
        "-new",
        "-key",
        int_key,
        "-subj",
        "/O=Example/CN=openssl intermediate",
        "-out",
        "oint.csr",
    ]);
    s.openssl(&[
        "x509",
        "-req",
        "-in",
        "oint.csr",
        "-CA",
        "oroot.crt",
        "-CAkey",
        root_key,
        "-CAcreateserial",
        "-days",
        "1000",
        "-extfile",
        "ca.ext",
        "-out",
        "oint.crt",
    ]);
}

#[test]
fn openssl_made_cas_with_sec1_and_pkcs1_keys_sign() {
    for kind in ["ec", "rsa"] {
        let s = Scratch::new();
        openssl_ca(&s, kind);
        let key_text = s.read("oint.key");
        assert!(
            key_text.contains(if kind == "ec" {
                "BEGIN EC PRIVATE KEY"
            } else {
                "BEGIN RSA PRIVATE KEY"
            }),
            "{key_text}"
        );
        gen_key(&s, "p256", "agent.key");
        client_csr(&s, "agent.key", "agent.csr", "cluster-c");
        let chain = ok(s.relay_issuer(&[
            "sign",
            "--ca-cert",
            "oint.crt",
            "--ca-key",
            "oint.key",
            "--ca-root",
            "oroot.crt",
            "--csr",
            "agent.csr",
            "--usages",
            "digital signature,client auth",
            "--ca-out",
            "ca.pem",
        ]));
        s.write("leaf.pem", &split_pem(&chain)[0]);
        let verify = s.openssl(&[
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            "oroot.crt",
            "-untrusted",
            "oint.crt",
            "leaf.pem",
        ]);
        assert!(verify.contains("OK"), "{kind}: {verify}");
        // The leaf's validity is clamped to the intermediate's (1000 days < 8760h? no: 2160h default).
        let issuer = s.openssl(&["x509", "-in", "leaf.pem", "-noout", "-issuer"]);
        assert!(issuer.contains("openssl intermediate"), "{issuer}");
    }
}

#[test]
fn leaves_are_clamped_to_the_intermediates_expiry() {
    let s = Scratch::new();
    ok(s.relay_issuer(&["ca", "create", "--out", "pki", "--intermediate-ttl", "2h"]));
    gen_key(&s, "p256", "agent.key");
    client_csr(&s, "agent.key", "agent.csr", "cluster-d");
    let out = s.relay_issuer(&[
        "sign",
        "--ca-cert",
        "pki/intermediate.crt",
        "--ca-key",
        "pki/intermediate.key",
        "--ca-root",
        "pki/root.crt",
        "--csr",
        "agent.csr",
        "--usages",
        "digital signature,client auth",
        "--duration",
        "8760h",
    ]);
    let chain = stdout(&out);
    let note = stderr(&out);
    assert!(out.status.success(), "{note}");
    assert!(note.contains("clamped to the CA's expiry"), "{note}");
    s.write("leaf.pem", &split_pem(&chain)[0]);
    let leaf_end = s.openssl(&["x509", "-in", "leaf.pem", "-noout", "-enddate"]);
    let int_end = s.openssl(&["x509", "-in", "pki/intermediate.crt", "-noout", "-enddate"]);
    assert_eq!(leaf_end, int_end);
    // With clamping off, the same request is refused.
    let err = refused(s.relay_issuer(&[
        "sign",
        "--ca-cert",
        "pki/intermediate.crt",
        "--ca-key",
        "pki/intermediate.key",
        "--csr",
        "agent.csr",
        "--usages",
        "digital signature,client auth",
        "--duration",
        "8760h",
        "--no-clamp",
    ]));
    assert!(err.contains("clampToCA: false"), "{err}");
}

#[test]
fn cert_manager_shaped_csrs_from_python_cryptography_sign_and_verify() {
    let s = Scratch::new();
    ok(s.relay_issuer(&["ca", "create", "--out", "pki"]));
    let script = r#"
import ipaddress, sys
from cryptography import x509
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, ed25519
kind = sys.argv[1]
key = {"p256": lambda: ec.generate_private_key(ec.SECP256R1()),
       "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
       "rsa": lambda: rsa.generate_private_key(65537, 2048),
       "ed25519": lambda: ed25519.Ed25519PrivateKey.generate()}[kind]()
algo = None if kind == "ed25519" else (hashes.SHA384() if kind == "p384" else hashes.SHA256())
csr = (x509.CertificateSigningRequestBuilder()
  .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cluster-py")]))
  .add_extension(x509.SubjectAlternativeName([
      x509.DNSName("py.example.com"), x509.IPAddress(ipaddress.ip_address("2001:db8::5")),
      x509.UniformResourceIdentifier("spiffe://relay.local/relay/cluster/cluster-py"),
      x509.RFC822Name("ops@example.com")]), critical=False)
  .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
  .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
  .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
  .sign(key, algo))
sys.stdout.buffer.write(csr.public_bytes(serialization.Encoding.PEM))
"#;
    for kind in ["p256", "p384", "rsa", "ed25519"] {
        let out = std::process::Command::new("python3")
            .args(["-c", script, kind])
            .output()
            .expect("python3 is required (make tools installs the cryptography package)");
        assert!(
            out.status.success(),
            "python cryptography failed: {}",
            stderr(&out)
        );
        s.write("py.csr", &out.stdout);
        let chain = ok(s.relay_issuer(&[
            "sign",
            "--signing-secret",
            "pki/relay-tls-signing-secret.yaml",
            "--csr",
            "py.csr",
            "--usages",
            "digital signature,key encipherment,client auth",
            "--duration",
            "8760h",
        ]));
        s.write("leaf.pem", &split_pem(&chain)[0]);
        let verify = s.openssl(&[
            "verify",
            "-purpose",
            "sslclient",
            "-CAfile",
            "pki/root.crt",
            "-untrusted",
            "pki/intermediate.crt",
            "leaf.pem",
        ]);
        assert!(verify.contains("OK"), "{kind}: {verify}");
        let san = ext(&s, "leaf.pem", "subjectAltName");
        assert!(
            san.contains("IP Address:2001:DB8:0:0:0:0:0:5")
                && san.contains("email:ops@example.com"),
            "{san}"
        );
    }
}

#[test]
fn openssl_refusals_name_the_problem() {
    let s = Scratch::new();
    ok(s.relay_issuer(&["ca", "create", "--out", "pki"]));
    let sign = |csr: &str, extra: &[&str]| {
        let mut args = vec![
            "sign",
            "--signing-secret",
            "pki/relay-tls-signing-secret.yaml",
            "--csr",
            csr,
        ];
        args.extend_from_slice(extra);
        s.relay_issuer(&args)
    };
    s.openssl(&["genrsa", "-out", "weak.key", "1024"]);
    s.openssl(&[
        "req", "-new", "-key", "weak.key", "-subj", "/CN=weak", "-out", "weak.csr",
    ]);
    assert!(refused(sign("weak.csr", &[])).contains("RSA 1024-bit"));

    s.openssl(&[
        "ecparam",
        "-genkey",
        "-name",
        "secp521r1",
        "-noout",
        "-out",
        "p521.key",
    ]);
    s.openssl(&[
        "req", "-new", "-key", "p521.key", "-subj", "/CN=p521", "-out", "p521.csr",
    ]);
    assert!(refused(sign("p521.csr", &[])).contains("ECDSA P-521"));

    gen_key(&s, "p256", "agent.key");
    client_csr(&s, "agent.key", "agent.csr", "cluster-e");
    let err = refused(sign(
        "agent.csr",
        &["--usages", "server auth,digital signature"],
    ));
    assert!(
        err.contains(
            "extended key usages (client auth) does not match the requested usages (server auth)"
        ),
        "{err}"
    );
    s.openssl(&[
        "req",
        "-new",
        "-key",
        "agent.key",
        "-subj",
        "/CN=ca-wannabe",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-out",
        "ca.csr",
    ]);
    let err = refused(sign("ca.csr", &[]));
    assert!(err.contains("CA:true but isCA is false"), "{err}");
    let err = refused(sign("ca.csr", &["--is-ca"]));
    assert!(err.contains("allowCA"), "{err}");
}
