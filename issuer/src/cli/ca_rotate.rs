//! `relay-issuer ca rotate`: the staged root rotation against a cluster. It reads what the
//! cluster holds (trust bundles, signing Secrets, the relay server's certificate, every
//! RelayCluster's `status.certificateRoot`), prints the plan of `rotation::plan`, and with
//! `--apply` carries it out stage by stage, reading the cluster back after each.
//!
//! The new PKI comes from `relay-issuer ca create --out DIR --server-name …` (root.crt,
//! intermediate.crt, intermediate.key, server.crt, server.key): files, so that a rotation
//! interrupted anywhere resumes with the same material. Decisions live in `rotation`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};

use crate::Error;
use crate::api::RelayCluster;
use crate::k8s::secret_data;
use crate::kube_client::{self, ClientOptions};
use crate::pki::anchor::{fingerprint, issuing_root};
use crate::pki::pem::parse_pem;
use crate::rotation::{Change, ClusterSeen, Observed, Plan, SecretRef, Stage, plan, short};

/// The trust bundle Secrets' name (server and agents).
const BUNDLE: &str = "relay-root-tls-secret";
/// The signing Secrets' name (relay server, RelayIssuers).
const SIGNER: &str = "relay-tls-signing-secret";
/// The relay server certificate's Secret.
const SERVER: &str = "relay-server-tls-secret";
/// The field manager of the rotation's writes.
const MANAGER: &str = "relay-issuer-ca-rotate";

/// Arguments of `relay-issuer ca rotate`.
#[derive(Debug, clap::Args)]
pub struct CaRotateArgs {
    /// The relay server's namespace (its Secrets and the RelayClusters).
    #[arg(long, default_value = "gloo-mesh")]
    pub namespace: String,
    /// The new PKI, as `relay-issuer ca create --out DIR --server-name <the server's names>`
    /// wrote it: root.crt, intermediate.crt, intermediate.key, server.crt, server.key.
    #[arg(long, value_name = "DIR")]
    pub new: PathBuf,
    /// Carry the plan out (without it, only print it).
    #[arg(long)]
    pub apply: bool,
    /// How long stage 3 waits for agents to come back with certificates under the new root.
    #[arg(long, default_value = "5m", value_parser = super::duration_arg)]
    pub renew_timeout: time::Duration,
    /// How long to let every watcher (relay servers, agents) take in a changed trust bundle,
    /// signing Secret or server certificate before the next stage relies on it.
    #[arg(long, default_value = "5s", value_parser = super::duration_arg)]
    pub settle: time::Duration,
    /// An agents' cluster besides the relay server's own, as NAME=KUBECONFIG (repeatable): its
    /// trust bundles and signing Secrets rotate too, and its cert-manager Certificates are
    /// renewed. The server's cluster is the one of KUBECONFIG / the in-cluster config.
    #[arg(long = "agent-kubeconfig", value_name = "NAME=PATH", value_parser = parse_agent_kubeconfig)]
    pub agent_kubeconfigs: Vec<(String, PathBuf)>,
    /// Kubernetes client limits.
    #[command(flatten)]
    pub client: ClientOptions,
}

fn parse_agent_kubeconfig(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!(
            "{text:?} is not NAME=KUBECONFIG (e.g. workload-1=workload-1.kubeconfig)"
        )),
    }
}

/// The relay server's cluster (named "") and the agents' other clusters.
struct Clients(Vec<(String, kube::Client)>);

impl Clients {
    async fn connect(args: &CaRotateArgs) -> Result<Self, Error> {
        let mut clients = vec![(
            String::new(),
            kube_client::client(&args.client, MANAGER).await?,
        )];
        for (name, path) in &args.agent_kubeconfigs {
            let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                Error::InvalidArgument(format!("--agent-kubeconfig {name}={}: {e}", path.display()))
            })?;
            let config = kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .map_err(|e| {
                Error::InvalidArgument(format!("--agent-kubeconfig {name}={}: {e}", path.display()))
            })?;
            clients.push((
                name.clone(),
                kube_client::client_from_config(config, &args.client)?,
            ));
        }
        Ok(Self(clients))
    }

    /// The relay server's cluster.
    fn server(&self) -> &kube::Client {
        &self.0[0].1
    }

    /// The cluster a Secret lives in.
    fn of(&self, secret: &SecretRef) -> &kube::Client {
        self.0
            .iter()
            .find(|(name, _)| *name == secret.cluster)
            .map_or(self.server(), |(_, client)| client)
    }
}

/// The new PKI's files.
struct NewPki {
    root_pem: String,
    root: String,
    intermediate_pem: String,
    intermediate_key: String,
    server: Option<(String, String)>,
}

fn read(dir: &Path, name: &str) -> Result<String, Error> {
    let path = dir.join(name);
    std::fs::read_to_string(&path).map_err(|source| Error::Io {
        action: "read",
        path,
        source,
    })
}

/// The DER of each CERTIFICATE block of `pem` (other blocks skipped; unreadable PEM: none).
fn certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    parse_pem(pem)
        .unwrap_or_default()
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.der)
        .collect()
}

/// The first certificate of `pem` (empty when it has none).
fn first_der(pem: &str) -> Vec<u8> {
    certificates(pem.as_bytes())
        .into_iter()
        .next()
        .unwrap_or_default()
}

impl NewPki {
    fn load(dir: &Path) -> Result<Self, Error> {
        let root_pem = read(dir, "root.crt")?;
        let root_der = first_der(&root_pem);
        let intermediate_pem = read(dir, "intermediate.crt")?;
        if issuing_root(&[&first_der(&intermediate_pem)], &[&root_der]).is_none() {
            return Err(Error::InvalidArgument(format!(
                "{} is not signed by {}; pass the directory `relay-issuer ca create --out` wrote",
                dir.join("intermediate.crt").display(),
                dir.join("root.crt").display()
            )));
        }
        let server = match (read(dir, "server.crt"), read(dir, "server.key")) {
            (Ok(cert), Ok(key)) => Some((cert, key)),
            _ => None,
        };
        Ok(Self {
            root: fingerprint(&root_der),
            intermediate_key: read(dir, "intermediate.key")?,
            root_pem,
            intermediate_pem,
            server,
        })
    }
}

/// Runs `relay-issuer ca rotate`.
pub fn run(args: &CaRotateArgs) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::InvalidArgument(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: &CaRotateArgs) -> Result<(), Error> {
    let new = NewPki::load(&args.new)?;
    let clients = Clients::connect(args).await?;
    let mut state = observe(&clients, &args.namespace, &new).await?;
    println!(
        "rotating the relay root {} -> {} (namespace {})",
        short(&state.old),
        short(&new.root),
        args.namespace
    );
    let mut plans = plan(&state.observed, &state.old, &new.root);
    print_plan(&plans);
    if !args.apply {
        println!("(dry run: add --apply to carry this out)");
        return Ok(());
    }
    while let Some(next) = plans.first().cloned() {
        if !next.blocked.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{} refused: it would cut these off:\n  {}\nfix them and run the command again; the rotation resumes where it stopped",
                next.stage.title(),
                next.blocked.join("\n  ")
            )));
        }
        println!("{}", next.stage.title());
        for change in &next.changes {
            println!("  {change}");
            carry_out(&clients, &args.namespace, &new, &state, change).await?;
        }
        if next.stage == Stage::RenewAgents {
            wait_for_agents(
                clients.server(),
                &args.namespace,
                &new.root,
                args.renew_timeout,
            )
            .await?;
        } else {
            tokio::time::sleep(Duration::try_from(args.settle).unwrap_or_default()).await;
        }
        state = observe(&clients, &args.namespace, &new).await?;
        let again = plan(&state.observed, &state.old, &new.root);
        // A stage that stays incomplete after its changes (agents that did not renew) is left
        // behind; stage 5 says who it would cut off.
        plans = again.into_iter().filter(|p| p.stage > next.stage).collect();
    }
    println!("done: the relay trusts, signs and serves with the new root only");
    Ok(())
}

fn print_plan(plans: &[Plan]) {
    if plans.is_empty() {
        println!("nothing to do: every bundle, signer, agent and the server use the new root");
    }
    for p in plans {
        println!("{}", p.stage.title());
        for change in &p.changes {
            println!("  - {change}");
        }
        for reason in &p.blocked {
            println!("  ! blocked: {reason}");
        }
    }
}

/// What the cluster holds, and the Secrets behind it.
struct State {
    observed: Observed,
    /// The old root's fingerprint.
    old: String,
    /// Trust bundles' `ca.crt` by Secret.
    bundles: BTreeMap<SecretRef, Vec<u8>>,
}

/// Every Secret named `name`, in every namespace of every cluster.
async fn secrets_named(clients: &Clients, name: &str) -> Result<Vec<(SecretRef, Secret)>, Error> {
    let mut found = Vec::new();
    for (cluster, client) in &clients.0 {
        let api: Api<Secret> = Api::all(client.clone());
        let listed = api
            .list(&ListParams::default().fields(&format!("metadata.name={name}")))
            .await
            .map_err(|e| {
                let at = if cluster.is_empty() {
                    "the relay server's cluster"
                } else {
                    cluster
                };
                Error::kube(format!("list the Secrets named {name} in {at}"), e)
            })?;
        for secret in listed.items {
            let reference = SecretRef {
                cluster: cluster.clone(),
                namespace: secret.namespace().unwrap_or_default(),
                name: secret.name_any(),
            };
            found.push((reference, secret));
        }
    }
    Ok(found)
}

fn data<'a>(secret: &'a Secret, key: &str) -> &'a [u8] {
    secret_data(secret, key).unwrap_or_default()
}

async fn observe(clients: &Clients, namespace: &str, new: &NewPki) -> Result<State, Error> {
    let client = clients.server();
    let mut bundles = BTreeMap::new();
    let mut observed = Observed::default();
    for (reference, secret) in secrets_named(clients, BUNDLE).await? {
        let ca = data(&secret, "ca.crt").to_vec();
        let roots = certificates(&ca).iter().map(|d| fingerprint(d)).collect();
        observed.bundles.push((reference.clone(), roots));
        bundles.insert(reference, ca);
    }
    let server_bundle = SecretRef {
        cluster: String::new(),
        namespace: namespace.to_string(),
        name: BUNDLE.to_string(),
    };
    let server_roots = bundles.get(&server_bundle).cloned().ok_or_else(|| {
        Error::InvalidArgument(format!(
            "Secret {namespace}/{BUNDLE} not found: is --namespace the relay server's namespace?"
        ))
    })?;
    let old_roots: Vec<Vec<u8>> = certificates(&server_roots)
        .into_iter()
        .filter(|d| fingerprint(d) != new.root)
        .collect();
    let old = match old_roots.as_slice() {
        [one] => fingerprint(one),
        [] => new.root.clone(),
        _ => {
            return Err(Error::InvalidArgument(format!(
                "{namespace}/{BUNDLE} holds {} roots besides the new one; finish the earlier rotation (remove the roots no longer used) first",
                old_roots.len()
            )));
        }
    };
    let mut known: Vec<Vec<u8>> = old_roots;
    known.push(first_der(&new.root_pem));
    let known_refs: Vec<&[u8]> = known.iter().map(Vec::as_slice).collect();
    let root_of = |chain_pem: &[u8]| {
        let chain = certificates(chain_pem);
        let refs: Vec<&[u8]> = chain.iter().map(Vec::as_slice).collect();
        issuing_root(&refs, &known_refs).map(|i| fingerprint(known_refs[i]))
    };
    for (reference, secret) in secrets_named(clients, SIGNER).await? {
        observed
            .signers
            .push((reference, root_of(data(&secret, "tls.crt"))));
    }
    let servers: Api<Secret> = Api::namespaced(client.clone(), namespace);
    if let Some(secret) = servers
        .get_opt(SERVER)
        .await
        .map_err(|e| Error::kube(format!("read Secret {namespace}/{SERVER}"), e))?
    {
        let reference = SecretRef {
            cluster: String::new(),
            namespace: namespace.to_string(),
            name: secret.name_any(),
        };
        observed.server = Some((reference, root_of(data(&secret, "tls.crt"))));
    }
    let clusters: Api<RelayCluster> = Api::namespaced(client.clone(), namespace);
    for cluster in clusters
        .list(&ListParams::default())
        .await
        .map_err(|e| Error::kube(format!("list the RelayClusters in {namespace}"), e))?
    {
        let status = cluster.status.clone().unwrap_or_default();
        observed.clusters.push(ClusterSeen {
            name: cluster.name_any(),
            root: status.certificate_root,
            connected: status.connected,
        });
    }
    Ok(State {
        observed,
        old,
        bundles,
    })
}

async fn write_data(
    clients: &Clients,
    secret: &SecretRef,
    entries: &[(&str, &str)],
) -> Result<(), Error> {
    let api: Api<Secret> = Api::namespaced(clients.of(secret).clone(), &secret.namespace);
    let data: BTreeMap<String, ByteString> = entries
        .iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect();
    let patch = serde_json::json!({"data": data});
    api.patch(&secret.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| Error::kube(format!("update Secret {secret}"), e))
}

async fn carry_out(
    clients: &Clients,
    namespace: &str,
    new: &NewPki,
    state: &State,
    change: &Change,
) -> Result<(), Error> {
    match change {
        Change::AddRoot(secret) => {
            let mut ca = String::from_utf8_lossy(
                state
                    .bundles
                    .get(secret)
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            )
            .into_owned();
            if !ca.is_empty() && !ca.ends_with('\n') {
                ca.push('\n');
            }
            ca.push_str(&new.root_pem);
            write_data(clients, secret, &[("ca.crt", &ca)]).await
        }
        Change::ReplaceSigner(secret) => {
            write_data(
                clients,
                secret,
                &[
                    ("tls.crt", &new.intermediate_pem),
                    ("tls.key", &new.intermediate_key),
                    ("ca.crt", &new.root_pem),
                ],
            )
            .await
        }
        Change::RenewAgent(cluster) => renew_agent(clients, cluster).await,
        Change::ReplaceServerCertificate(secret) => {
            let Some((cert, key)) = &new.server else {
                return Err(Error::InvalidArgument(format!(
                    "no server.crt/server.key in the new PKI directory; create it with `relay-issuer ca create --server-name <each name of the relay server>` (the names in {namespace}/{SERVER}'s certificate)"
                )));
            };
            write_data(
                clients,
                secret,
                &[
                    ("tls.crt", cert),
                    ("tls.key", key),
                    ("ca.crt", &new.root_pem),
                ],
            )
            .await
        }
        Change::RemoveRoot(secret) => {
            let kept: String = certificates(
                state
                    .bundles
                    .get(secret)
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            )
            .iter()
            .filter(|der| fingerprint(der) != state.old)
            .map(|der| crate::pki::pem_certificate(der))
            .collect();
            write_data(clients, secret, &[("ca.crt", &kept)]).await
        }
    }
}

/// Asks cert-manager to renew cluster `cluster`'s agent certificate: the Issuing condition on
/// every Certificate of `relay-client-tls-secret` for that cluster, in every cluster, as
/// `cmctl renew` sets it.
async fn renew_agent(clients: &Clients, cluster: &str) -> Result<(), Error> {
    let mut found = false;
    for (_, client) in &clients.0 {
        found |= renew_agent_in(client, cluster).await?;
    }
    if !found {
        println!(
            "    cluster {cluster:?} has no cert-manager Certificate (bring-your-own?): replace its relay-client-tls-secret with a certificate under the new root"
        );
    }
    Ok(())
}

/// [`renew_agent`] in one cluster; true when a Certificate was found there.
async fn renew_agent_in(client: &kube::Client, cluster: &str) -> Result<bool, Error> {
    let resource = kube::api::ApiResource {
        group: "cert-manager.io".into(),
        version: "v1".into(),
        api_version: "cert-manager.io/v1".into(),
        kind: "Certificate".into(),
        plural: "certificates".into(),
    };
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let certificates = match all.list(&ListParams::default()).await {
        Ok(list) => list,
        // No cert-manager in this cluster: nothing to renew here.
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
        Err(e) => return Err(Error::kube("list cert-manager Certificates", e)),
    };
    let mine: Vec<&DynamicObject> = certificates
        .items
        .iter()
        .filter(|c| {
            c.data["spec"]["secretName"] == "relay-client-tls-secret"
                && c.data["spec"]["commonName"] == cluster
        })
        .collect();
    let found = !mine.is_empty();
    for certificate in mine {
        let namespace = certificate.namespace().unwrap_or_default();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
        let now = crate::pki::format_time(time::OffsetDateTime::now_utc());
        let condition = serde_json::json!({"type": "Issuing", "status": "True",
            "reason": "ManuallyTriggered", "message": "Certificate re-issuance manually triggered (relay-issuer ca rotate)",
            "lastTransitionTime": now});
        let operation = if certificate.data["status"]["conditions"].is_array() {
            serde_json::json!({"op": "add", "path": "/status/conditions/-", "value": condition})
        } else {
            serde_json::json!({"op": "add", "path": "/status/conditions", "value": [condition]})
        };
        let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([operation]))
            .map_err(|e| Error::InvalidArgument(format!("building the renewal patch: {e}")))?;
        api.patch_status(
            &certificate.name_any(),
            &PatchParams::default(),
            &Patch::<()>::Json(patch),
        )
        .await
        .map_err(|e| {
            Error::kube(
                format!(
                    "ask cert-manager to renew Certificate {namespace}/{}",
                    certificate.name_any()
                ),
                e,
            )
        })?;
        println!(
            "    asked cert-manager to renew Certificate {namespace}/{}",
            certificate.name_any()
        );
    }
    Ok(found)
}

/// Waits until every RelayCluster's certificate chains to `new`, or `timeout`.
async fn wait_for_agents(
    client: &kube::Client,
    namespace: &str,
    new: &str,
    timeout: time::Duration,
) -> Result<(), Error> {
    let clusters: Api<RelayCluster> = Api::namespaced(client.clone(), namespace);
    let deadline =
        tokio::time::Instant::now() + Duration::try_from(timeout).unwrap_or(Duration::ZERO);
    loop {
        let behind: Vec<String> = clusters
            .list(&ListParams::default())
            .await
            .map_err(|e| Error::kube(format!("list the RelayClusters in {namespace}"), e))?
            .items
            .into_iter()
            .filter(|c| {
                c.status
                    .as_ref()
                    .and_then(|s| s.certificate_root.as_deref())
                    != Some(new)
            })
            .map(|c| c.name_any())
            .collect();
        if behind.is_empty() {
            println!("  every agent is on the new root");
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            println!(
                "  still on the old root after {}: {} (stage 5 will name them)",
                crate::pki::format_duration(timeout),
                behind.join(", ")
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
