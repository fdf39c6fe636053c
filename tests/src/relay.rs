//! A ready-made world for testing the relay server and agents: a relay PKI (root,
//! intermediate, server certificate, agent certificates with cluster identities), its Secrets,
//! RelayCluster registration, an in-process `relay-issuer server`, and a test-side TLS client
//! that connects with any certificate (or none) to check what the server presents and allows.

use std::net::SocketAddr;
use std::sync::Arc;

use kube::Api;
use kube::api::{Patch, PatchParams};
use prometheus_client::registry::Registry;
use relay_issuer::admin::Health;
use relay_issuer::api::RelayCluster;
use relay_issuer::pki::generate::{
    GeneratedKeyType, PkiSpec, generate_key, generate_pki, make_csr,
};
use relay_issuer::pki::{self, KeyPair, SignRequest, SigningCa, SigningPolicy, load_key_pair};
use relay_issuer::server::{self, Settings, metrics::ServerMetrics};
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tonic::transport::Channel;

use crate::harness::{CONTROLLER_NAMESPACE, put_secret_data};

/// The namespace the relay server runs in, in these tests.
pub const RELAY_NAMESPACE: &str = CONTROLLER_NAMESPACE;
/// The trust domain of test identities.
pub const TRUST_DOMAIN: &str = "relay.local";
/// The bootstrap token the test world installs.
pub const TOKEN: &str = "test-bootstrap-token";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A certificate chain and key, PEM.
#[derive(Clone, Debug)]
pub struct Pem {
    /// Leaf first, then intermediates.
    pub chain: String,
    /// The private key.
    pub key: String,
}

impl Pem {
    /// The leaf's serial, colon-separated hex.
    pub fn serial(&self) -> String {
        self.key_pair().map(|p| p.serial).unwrap_or_default()
    }

    /// The chain and key checked as a key pair, as of now.
    pub fn key_pair(&self) -> Result<KeyPair, BoxError> {
        Ok(load_key_pair(
            Some(self.chain.as_bytes()),
            Some(self.key.as_bytes()),
            time::OffsetDateTime::now_utc(),
        )?)
    }

    /// The rustls signing key and chain.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, BoxError> {
        Ok(relay_issuer::tls::certified_key(&self.key_pair()?)?)
    }
}

/// A certificate a test CA issued, with the serial and notAfter the CA gave it.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The chain and key.
    pub pem: Pem,
    /// The serial, colon-separated hex.
    pub serial: String,
    /// The leaf's notAfter.
    pub not_after: time::OffsetDateTime,
}

/// A relay PKI: root, signing intermediate, server certificate for localhost/127.0.0.1.
pub struct RelayPki {
    /// The root, PEM.
    pub root: String,
    /// The intermediate (the signing CA), PEM.
    pub intermediate: String,
    /// The intermediate's key, PEM.
    pub intermediate_key: String,
    /// The relay server's certificate.
    pub server: Pem,
    root_key: String,
}

impl RelayPki {
    /// A fresh PKI (P-256), the server certificate valid for `localhost` and `127.0.0.1`.
    pub fn new() -> Result<Self, BoxError> {
        let generated = generate_pki(
            &PkiSpec {
                server_names: vec!["localhost".into(), "127.0.0.1".into()],
                ..PkiSpec::default()
            },
            time::OffsetDateTime::now_utc(),
        )?;
        let server = generated.server.ok_or("no server certificate generated")?;
        Ok(Self {
            root: generated.root.cert_pem,
            intermediate: generated.intermediate.cert_pem,
            intermediate_key: generated.intermediate.key_pem,
            server: Pem {
                chain: server.cert_pem,
                key: server.key_pem,
            },
            root_key: generated.root.key_pem,
        })
    }

    /// The signing CA.
    pub fn ca(&self) -> Result<SigningCa, BoxError> {
        Ok(SigningCa::load(
            self.intermediate.as_bytes(),
            self.intermediate_key.as_bytes(),
            Some(self.root.as_bytes()),
            time::OffsetDateTime::now_utc(),
        )?)
    }

    /// Another intermediate CA under the same root (its own key and name), as a signing CA.
    pub fn other_intermediate(&self, name: &str) -> Result<SigningCa, BoxError> {
        let root_key = rcgen::KeyPair::from_pem(&self.root_key)?;
        let root = rcgen::Issuer::from_ca_cert_pem(&self.root, root_key)?;
        let key = generate_key(GeneratedKeyType::P256)?;
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(30);
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &root)?;
        Ok(SigningCa::load(
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            Some(self.root.as_bytes()),
            now,
        )?)
    }

    /// An agent certificate for `cluster` valid for `ttl`, with CN and SPIFFE URI.
    pub fn agent(&self, cluster: &str, ttl: time::Duration) -> Result<Pem, BoxError> {
        sign_agent(&self.ca()?, cluster, ttl)
    }

    /// A new relay server certificate (another key and serial) for localhost/127.0.0.1.
    pub fn new_server_certificate(&self) -> Result<Pem, BoxError> {
        sign_server(&self.ca()?)
    }
}

/// Signs `csr` (whose key is `key_pem`) with `ca` for `usages`, valid for `ttl` from now.
fn sign_pem(
    ca: &SigningCa,
    csr: &str,
    key_pem: String,
    usages: &[&str],
    ttl: time::Duration,
) -> Result<Issued, BoxError> {
    sign_pem_with(ca, csr, key_pem, usages, ttl, &SigningPolicy::default())
}

/// [`sign_pem`] under `policy`.
fn sign_pem_with(
    ca: &SigningCa,
    csr: &str,
    key_pem: String,
    usages: &[&str],
    ttl: time::Duration,
    policy: &SigningPolicy,
) -> Result<Issued, BoxError> {
    let usages: Vec<String> = usages.iter().map(|u| u.to_string()).collect();
    let issued = pki::sign(
        ca,
        &SignRequest {
            csr_pem: csr.as_bytes(),
            duration: Some(ttl),
            is_ca: false,
            usages: &usages,
        },
        policy,
        time::OffsetDateTime::now_utc(),
    )?;
    Ok(Issued {
        pem: Pem {
            chain: issued.chain_pem,
            key: key_pem,
        },
        serial: issued.serial,
        not_after: issued.not_after,
    })
}

/// A relay server certificate for localhost/127.0.0.1 signed by `ca`, valid for a day.
pub fn sign_server(ca: &SigningCa) -> Result<Pem, BoxError> {
    let key = generate_key(GeneratedKeyType::P256)?;
    let csr = make_csr(
        &key,
        "relay-server",
        &["localhost".into(), "127.0.0.1".into()],
        &[],
    )?;
    sign_pem(
        ca,
        &csr,
        key.serialize_pem(),
        &["server auth", "digital signature"],
        time::Duration::hours(24),
    )
    .map(|issued| issued.pem)
}

/// Makes a CSR for `cluster`'s identity: CN = cluster, URI SAN = its SPIFFE ID.
pub fn agent_csr(cluster: &str) -> Result<(String, String), BoxError> {
    let key = generate_key(GeneratedKeyType::P256)?;
    let csr = make_csr(&key, cluster, &[], &[pki::spiffe_id(TRUST_DOMAIN, cluster)])?;
    Ok((csr, key.serialize_pem()))
}

/// Signs an agent certificate for `cluster` with `ca`.
pub fn sign_agent(ca: &SigningCa, cluster: &str, ttl: time::Duration) -> Result<Pem, BoxError> {
    issue_agent(ca, cluster, ttl).map(|issued| issued.pem)
}

/// Signs an agent certificate for `cluster` with `ca` (as [`sign_agent`]), returning its serial
/// and notAfter too.
pub fn issue_agent(ca: &SigningCa, cluster: &str, ttl: time::Duration) -> Result<Issued, BoxError> {
    let (csr, key) = agent_csr(cluster)?;
    sign_pem(ca, &csr, key, &["client auth", "digital signature"], ttl)
}

/// An agent certificate for `cluster` signed by `ca` whose notBefore is `age` ago (at most
/// back to the CA's own notBefore): a certificate "issued" earlier, for revocation by time.
pub fn issue_agent_aged(
    ca: &SigningCa,
    cluster: &str,
    ttl: time::Duration,
    age: time::Duration,
) -> Result<Issued, BoxError> {
    let (csr, key) = agent_csr(cluster)?;
    let policy = SigningPolicy {
        backdate: age,
        ..SigningPolicy::default()
    };
    sign_pem_with(
        ca,
        &csr,
        key,
        &["client auth", "digital signature"],
        ttl,
        &policy,
    )
}

/// A cert-manager `Certificate` for `cluster`'s agent: Secret `relay-client-tls-secret`, CN and
/// SPIFFE URI of the cluster, client auth, a new ECDSA P-256 key at each renewal, issued by
/// RelayIssuer `issuer` in `namespace`.
pub fn agent_certificate(
    namespace: &str,
    cluster: &str,
    issuer: &str,
    duration: &str,
    renew_before: &str,
) -> serde_json::Value {
    json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "relay-client", "namespace": namespace},
        "spec": {
            "secretName": "relay-client-tls-secret",
            "commonName": cluster,
            "uris": [pki::spiffe_id(TRUST_DOMAIN, cluster)],
            "duration": duration,
            "renewBefore": renew_before,
            "usages": ["client auth", "digital signature"],
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "issuerRef": {"group": "relaytls.dev", "kind": "RelayIssuer", "name": issuer},
        }
    })
}

/// The cluster side of a Gloo-managed agent in `namespace`: a signing Secret with `pki`'s
/// intermediate, RelayIssuer `relay` signing locally, and the agent chart's Certificate for
/// `cluster` with `duration` and `renew_before` (Go durations). Returns the namespace's
/// Certificates.
pub async fn install_managed_agent(
    client: &kube::Client,
    pki: &RelayPki,
    namespace: &str,
    cluster: &str,
    duration: &str,
    renew_before: &str,
) -> Result<Api<kube::api::DynamicObject>, BoxError> {
    put_signing_secret(client, namespace, pki).await?;
    crate::harness::create_issuer(client, Some(namespace), "relay", json!({})).await?;
    let certificates = Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        namespace,
        &cert_manager_sim::resource("Certificate", "certificates"),
    );
    let certificate: kube::api::DynamicObject = serde_json::from_value(agent_certificate(
        namespace,
        cluster,
        "relay",
        duration,
        renew_before,
    ))?;
    certificates
        .create(&kube::api::PostParams::default(), &certificate)
        .await?;
    Ok(certificates)
}

/// Writes the relay server's four Secrets for `pki` into `namespace`.
pub async fn install_secrets(
    client: &kube::Client,
    namespace: &str,
    pki: &RelayPki,
) -> Result<(), kube::Error> {
    put_secret_data(
        client,
        namespace,
        "relay-server-tls-secret",
        &[("tls.crt", &pki.server.chain), ("tls.key", &pki.server.key)],
    )
    .await?;
    put_root_secret(client, namespace, pki).await?;
    put_signing_secret(client, namespace, pki).await?;
    put_secret_data(
        client,
        namespace,
        "relay-identity-token-secret",
        &[("token", TOKEN)],
    )
    .await
}

/// Writes `relay-root-tls-secret` (`ca.crt`: `pki`'s root) into `namespace`: the trust an agent
/// checks the relay server against.
pub async fn put_root_secret(
    client: &kube::Client,
    namespace: &str,
    pki: &RelayPki,
) -> Result<(), kube::Error> {
    put_secret_data(
        client,
        namespace,
        "relay-root-tls-secret",
        &[("ca.crt", &pki.root)],
    )
    .await
}

/// Writes `relay-tls-signing-secret` (`pki`'s intermediate, its key and the root) into
/// `namespace`: the CA a RelayIssuer there signs with.
pub async fn put_signing_secret(
    client: &kube::Client,
    namespace: &str,
    pki: &RelayPki,
) -> Result<(), kube::Error> {
    put_secret_data(
        client,
        namespace,
        "relay-tls-signing-secret",
        &[
            ("tls.crt", &pki.intermediate),
            ("tls.key", &pki.intermediate_key),
            ("ca.crt", &pki.root),
        ],
    )
    .await
}

/// The relay world in one call: the relay server's Secrets in [`RELAY_NAMESPACE`], RelayClusters
/// `clusters` registered there, and the root Secret in each of the agents' `namespaces`.
pub async fn install_relay(
    client: &kube::Client,
    pki: &RelayPki,
    clusters: &[&str],
    namespaces: &[&str],
) -> Result<(), kube::Error> {
    install_secrets(client, RELAY_NAMESPACE, pki).await?;
    for cluster in clusters {
        register_cluster(client, RELAY_NAMESPACE, cluster).await?;
    }
    for namespace in namespaces {
        put_root_secret(client, namespace, pki).await?;
    }
    Ok(())
}

/// Creates `RelayCluster` `name` in `namespace`.
pub async fn register_cluster(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<(), kube::Error> {
    let api: Api<RelayCluster> = Api::namespaced(client.clone(), namespace);
    let object = json!({"apiVersion": "relaytls.dev/v1alpha1", "kind": "RelayCluster", "metadata": {"name": name}, "spec": {}});
    api.patch(name, &PatchParams::apply("test"), &Patch::Apply(&object))
        .await
        .map(|_| ())
}

/// A sandbox with the relay Secrets of a fresh PKI in [`RELAY_NAMESPACE`] and a RelayCluster
/// for each of `clusters`: what a relay server needs before it starts.
pub async fn relay_world(
    clusters: &[&str],
) -> Result<(kube_sandbox::Sandbox, kube::Client, RelayPki), BoxError> {
    relay_issuer::install_crypto_provider();
    let sandbox = crate::harness::sandbox().await?;
    let client = sandbox.client()?;
    let pki = RelayPki::new()?;
    install_secrets(&client, RELAY_NAMESPACE, &pki).await?;
    for cluster in clusters {
        register_cluster(&client, RELAY_NAMESPACE, cluster).await?;
    }
    Ok((sandbox, client, pki))
}

/// An in-process relay server.
pub struct RelayServer {
    /// Where it listens.
    pub address: SocketAddr,
    /// Its readiness.
    pub health: Health,
    /// Its metrics registry.
    pub registry: Arc<Registry>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), relay_issuer::Error>>,
}

impl RelayServer {
    /// Starts a relay server on 127.0.0.1 (an ephemeral port) and waits until it is ready.
    pub async fn start(client: kube::Client, settings: Settings) -> Result<Self, BoxError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        Self::start_on(client, settings, listener).await
    }

    /// Starts a relay server on `listener` and waits until it is ready.
    pub async fn start_on(
        client: kube::Client,
        settings: Settings,
        listener: tokio::net::TcpListener,
    ) -> Result<Self, BoxError> {
        let server = Self::spawn_on(client, settings, listener)?;
        for _ in 0..500 {
            if server.health.is_ready() {
                return Ok(server);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        Err(format!("relay server not ready: {:?}", server.health.readiness()).into())
    }

    /// Starts a relay server on `listener` without waiting for it to be ready.
    pub fn spawn_on(
        client: kube::Client,
        settings: Settings,
        listener: tokio::net::TcpListener,
    ) -> Result<Self, BoxError> {
        let current = tokio::runtime::Handle::current();
        Self::spawn_on_runtimes(client, settings, listener, &current, current.clone())
    }

    /// Starts a relay server on `listener` without waiting for it to be ready: agents served
    /// on `serving`, the Kubernetes side on `control` (as `relay-issuer server` runs it).
    pub fn spawn_on_runtimes(
        client: kube::Client,
        settings: Settings,
        listener: tokio::net::TcpListener,
        serving: &tokio::runtime::Handle,
        control: tokio::runtime::Handle,
    ) -> Result<Self, BoxError> {
        let address = listener.local_addr()?;
        let mut registry = Registry::default();
        let metrics = ServerMetrics::register(&mut registry);
        let health = Health::new();
        let (stop, stopped) = oneshot::channel();
        let task = serving.spawn(server::run(
            client,
            settings,
            listener,
            metrics,
            health.clone(),
            control,
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(Self {
            address,
            health,
            registry: Arc::new(registry),
            stop: Some(stop),
            task,
        })
    }

    /// Waits up to `within` until `series` reaches `at_least`; returns the metrics text then
    /// (callers assert on it).
    pub async fn wait_metric(
        &self,
        series: &str,
        at_least: f64,
        within: std::time::Duration,
    ) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let text = self.metrics_text();
            if metric_value(&text, series) >= at_least || tokio::time::Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn metrics_text(&self) -> String {
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) -> Result<(), BoxError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await??;
        Ok(())
    }
}

/// Default relay settings for tests (namespace [`RELAY_NAMESPACE`]).
pub fn relay_settings() -> Settings {
    let mut settings = Settings::new(RELAY_NAMESPACE);
    settings.heartbeat_interval = std::time::Duration::from_secs(1);
    settings
}

/// The value of one metric sample line (`name{labels} value`) in OpenMetrics text, 0 if absent.
pub fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// The sum of every series of metric `name` in Prometheus text, whatever their labels (0 when
/// there is none).
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let labels = series.strip_prefix(name)?;
            (labels.is_empty() || labels.starts_with('{')).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// A rustls client config trusting `root_pem`, presenting `client` when given, no resumption.
pub fn client_config(
    root_pem: &str,
    client: Option<&Pem>,
) -> Result<rustls::ClientConfig, BoxError> {
    let roots = relay_issuer::tls::root_store(root_pem.as_bytes(), "test roots")?;
    let key = client.map(Pem::certified_key).transpose()?;
    Ok(relay_issuer::tls::client_config(roots, key))
}

/// A gRPC channel to the relay at `address` over TLS with `config` (server name `localhost`).
pub async fn channel(
    address: SocketAddr,
    config: rustls::ClientConfig,
) -> Result<Channel, BoxError> {
    Ok(relay_issuer::tls::connect_channel(
        &format!("https://{address}"),
        Some("localhost"),
        config,
        std::time::Duration::from_secs(10),
    )
    .await?)
}

/// Completes one TLS handshake with the relay and returns the serial of the certificate it
/// presented (the handshake itself must succeed).
pub async fn presented_serial(
    address: SocketAddr,
    config: rustls::ClientConfig,
) -> Result<String, BoxError> {
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(address).await?;
    let tls = connector
        .connect(ServerName::try_from("localhost")?.to_owned(), tcp)
        .await?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("the server presented no certificate")?;
    serial_of(leaf)
}

/// An open Connect stream: the outbound sender, the inbound stream and the Welcome.
pub type AgentSession = (
    tokio::sync::mpsc::Sender<relay_proto::AgentMessage>,
    tonic::Streaming<relay_proto::ServerMessage>,
    relay_proto::Welcome,
);

/// Opens Connect to the relay at `address` (trusting `root_pem`) with `cert`, sends Hello for
/// `hello_cluster` and waits for the Welcome.
pub async fn connect_agent(
    address: SocketAddr,
    root_pem: &str,
    cert: &Pem,
    hello_cluster: &str,
) -> Result<AgentSession, tonic::Status> {
    let config =
        client_config(root_pem, Some(cert)).map_err(|e| tonic::Status::internal(e.to_string()))?;
    connect_agent_with(address, config, &cert.serial(), hello_cluster).await
}

/// [`connect_agent`] with a client configuration built once (as an agent builds one per
/// certificate, not per connection) and the serial its Hello names.
pub async fn connect_agent_with(
    address: SocketAddr,
    config: rustls::ClientConfig,
    serial: &str,
    hello_cluster: &str,
) -> Result<AgentSession, tonic::Status> {
    use futures::StreamExt;
    let channel = channel(address, config)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(relay_proto::AgentMessage::hello(relay_proto::Hello {
        cluster: hello_cluster.into(),
        agent_version: "test".into(),
        certificate_serial: serial.into(),
        certificate_not_after_unix: 0,
    }))
    .await
    .map_err(|e| tonic::Status::internal(e.to_string()))?;
    let mut inbound = relay_proto::v1::relay_client::RelayClient::new(channel)
        .connect(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    match inbound.next().await {
        Some(Ok(relay_proto::ServerMessage {
            message: Some(relay_proto::server_message::Message::Welcome(welcome)),
        })) => Ok((tx, inbound, welcome)),
        Some(Err(status)) => Err(status),
        other => Err(tonic::Status::internal(format!(
            "expected Welcome, got {other:?}"
        ))),
    }
}

/// Completes one TLS handshake with the relay, then resets the connection (`SO_LINGER` 0, as
/// `openssl s_time` and load-balancer TLS probes end theirs).
pub async fn handshake_then_reset(
    address: SocketAddr,
    config: rustls::ClientConfig,
) -> Result<(), BoxError> {
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(address).await?;
    let tls = connector
        .connect(ServerName::try_from("localhost")?.to_owned(), tcp)
        .await?;
    let (tcp, _) = tls.into_inner();
    tcp.set_zero_linger()?;
    drop(tcp);
    Ok(())
}

/// The serial of a DER certificate, colon-separated hex (as the relay and the agent report it).
pub fn serial_of(der: &[u8]) -> Result<String, BoxError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)?;
    Ok(relay_issuer::pki::sign::colon_hex(cert.raw_serial()))
}

/// Runs the `relay-issuer` command line with `args` and `KUBECONFIG=kubeconfig` (blocking):
/// its exit code and its output (stdout then stderr).
pub fn run_relay_issuer(
    kubeconfig: &std::path::Path,
    args: &[&str],
) -> Result<(i32, String), BoxError> {
    let output = std::process::Command::new(crate::processes::binary("relay-issuer"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()?;
    Ok((
        output.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    ))
}

/// The SHA-256 fingerprint of the first certificate of `pem`.
pub fn pem_fingerprint(pem: &str) -> Result<String, BoxError> {
    let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())?.1.contents;
    Ok(pki::anchor::fingerprint(&der))
}

/// Asserts that every `relay-root-tls-secret` `client` can list holds exactly one root, the one
/// of fingerprint `root` (a finished rotation).
pub async fn assert_bundles_hold_only(client: &kube::Client, root: &str) -> Result<(), BoxError> {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::all(client.clone());
    for secret in secrets
        .list(&kube::api::ListParams::default().fields("metadata.name=relay-root-tls-secret"))
        .await?
    {
        let name = format!(
            "{}/{}",
            secret.metadata.namespace.clone().unwrap_or_default(),
            secret.metadata.name.clone().unwrap_or_default()
        );
        let ca = String::from_utf8(
            secret
                .data
                .unwrap_or_default()
                .get("ca.crt")
                .map(|b| b.0.clone())
                .unwrap_or_default(),
        )?;
        assert_eq!(ca.matches("BEGIN CERTIFICATE").count(), 1, "{name}: {ca}");
        assert_eq!(pem_fingerprint(&ca)?, root, "{name}");
    }
    Ok(())
}

/// The new PKI of a root rotation, as `relay-issuer ca create --out` writes it (server names
/// `localhost` and `127.0.0.1`), in a directory of its own.
pub struct RotationPki {
    dir: tempfile::TempDir,
}

impl RotationPki {
    /// Creates it with the real command line.
    pub fn create(kubeconfig: &std::path::Path) -> Result<Self, BoxError> {
        let dir = tempfile::tempdir()?;
        let out = dir.path().display().to_string();
        let (code, output) = run_relay_issuer(
            kubeconfig,
            &[
                "ca",
                "create",
                "--out",
                &out,
                "--server-name",
                "localhost",
                "--server-name",
                "127.0.0.1",
            ],
        )?;
        if code != 0 {
            return Err(format!("relay-issuer ca create exited with {code}: {output}").into());
        }
        Ok(Self { dir })
    }

    /// The directory (`ca rotate --new`).
    pub fn path(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn read(&self, name: &str) -> Result<String, BoxError> {
        Ok(std::fs::read_to_string(self.dir.path().join(name))?)
    }

    /// The new root's fingerprint.
    pub fn root_fingerprint(&self) -> Result<String, BoxError> {
        pem_fingerprint(&self.read("root.crt")?)
    }

    /// The serial of the new relay server certificate.
    pub fn server_serial(&self) -> Result<String, BoxError> {
        let der = x509_parser::pem::parse_x509_pem(self.read("server.crt")?.as_bytes())?
            .1
            .contents;
        serial_of(&der)
    }

    /// An agent certificate for `cluster` under the new root.
    pub fn agent(&self, cluster: &str) -> Result<Pem, BoxError> {
        let ca = SigningCa::load(
            self.read("intermediate.crt")?.as_bytes(),
            self.read("intermediate.key")?.as_bytes(),
            Some(self.read("root.crt")?.as_bytes()),
            time::OffsetDateTime::now_utc(),
        )?;
        sign_agent(&ca, cluster, time::Duration::hours(1))
    }
}

/// Waits, on a watch, until CertificateSigningRequest `name` has a status `done` accepts, for
/// at most `within`; returns that status.
pub async fn wait_csr(
    client: &kube::Client,
    name: &str,
    within: std::time::Duration,
    done: impl Fn(&k8s_openapi::api::certificates::v1::CertificateSigningRequestStatus) -> bool,
) -> Result<k8s_openapi::api::certificates::v1::CertificateSigningRequestStatus, BoxError> {
    use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let condition = |csr: Option<&CertificateSigningRequest>| {
        csr.and_then(|c| c.status.as_ref()).is_some_and(&done)
    };
    match tokio::time::timeout(
        within,
        kube::runtime::wait::await_condition(csrs.clone(), name, condition),
    )
    .await
    {
        Ok(Ok(Some(csr))) => Ok(csr.status.unwrap_or_default()),
        Ok(Ok(None)) => Err(format!("CertificateSigningRequest {name} was deleted").into()),
        Ok(Err(error)) => Err(error.into()),
        Err(_) => Err(format!(
            "CertificateSigningRequest {name} not done within {within:?}: {:?}",
            csrs.get(name).await.ok().and_then(|c| c.status)
        )
        .into()),
    }
}

/// Whether a CSR status has a `Failed` condition.
pub fn csr_failed(
    status: &k8s_openapi::api::certificates::v1::CertificateSigningRequestStatus,
) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Failed")
}
