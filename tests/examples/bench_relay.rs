//! `make bench-relay`: the relay server under a fleet, measured from outside.
//!
//! One orchestrating process runs the sandbox API server in-process, writes the relay Secrets,
//! registers `--agents` RelayClusters, starts `--replicas` real `relay-issuer server` processes
//! (release build) against the sandbox, and then `--workers` load-generator processes (this
//! same program with `--worker`). Each worker holds a share of the agent sessions: every session
//! has its own cluster identity, its own P-256 key and a certificate signed by the test
//! intermediate, opens `Connect` through our own connector (`relay_issuer::tls`), sends Hello,
//! waits for Welcome and then heartbeats at the interval the Welcome announces, reconnecting
//! with the agent's own backoff (`relay_agent::backoff`, 1 s doubling to 30 s) to the next
//! replica when its stream breaks. Sessions are spread over the replicas by index, as a
//! Service would spread them.
//!
//! Reported per run:
//! - the connect storm: time until all agents had their Welcome, and failed attempts;
//! - per replica: sessions, resident memory (RSS and peak) and bytes per session over the
//!   replica's idle RSS, CPU per handshake during the storm, CPU while steady;
//! - heartbeat round trips p50/p99/max while steady;
//! - RelayCluster status writes (by outcome; conflicts are the `superseded` ones) and write
//!   rate, and the lag from each agent's Welcome to the moment a watch of the RelayClusters
//!   shows it connected; the real kubectl's `get relayclusters` count at the end;
//! - every party's CPU from the storm's start until every RelayCluster is shown, and the whole
//!   machine's: how much of it was busy and how much the hypervisor took (steal);
//! - what the floors (every Welcome within 90 s, every RelayCluster shown within 60 s of its
//!   Welcome) ask of this machine at the run's measured costs (`relay_sandbox::floors`): the
//!   least CPU-seconds their 150 s window needs with a perfect scheduler, against what the
//!   machine's CPUs offer in it, and the fewest CPUs on which any schedule of that work, each
//!   write within 60 s of its Welcome, meets both floors;
//! - the machine's speed before the storm and after the run, once it is quiet: how long one
//!   P-256 signature check takes (what the handshakes are made of) on one thread and on two at
//!   once, since the hypervisor's steal does not show a slower machine;
//! - with `--kill-one`: one replica killed with SIGKILL; how long until every agent had a
//!   Welcome from a live replica again, until every RelayCluster was truthful (none connected
//!   through the dead replica), and how many watch events after that still showed one
//!   connected through it (must be 0).
//!
//! `--workers-nice N` runs the load generators in a session of their own whose scheduler
//! autogroup gets nice N (the agents of a real fleet are not on the management plane's
//! machine; a plain nice would rank them only against the replicas in the bench's session).
//! `--replica-threads N` and `--generator-threads N` give each replica (`--worker-threads`)
//! and each load generator N threads instead of one per CPU: replicas sized as Pods with a
//! CPU limit of N, on a machine where the processes of a whole fleet share two cores.
//! `RELAY_BENCH_CONTROL_PLANE_PIDS` (`name=pid,…`) names control-plane processes whose CPU the
//! run reports beside the replicas' and the load generators'; `RELAY_BENCH_SERVER_KUBECONFIG`
//! the replicas' own credentials (else they use the bench's).
//!
//! With `RELAY_BENCH_KUBECONFIG` the same run goes against that cluster instead of the sandbox
//! (`make bench-relay-real` brings up the real control plane for it).
//!
//! A benchmark to run by hand or with `make bench-relay`, never a timed assertion in a test.
//! Last line, for scripts: `relay bench: agents=… replicas=… storm_s=… …`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use relay_agent::backoff::{Backoff, BackoffPolicy};
use relay_issuer::api::RelayCluster;
use relay_issuer::pki::SigningCa;
use relay_proto::{AgentMessage, server_message};
use relay_sandbox::harness;
use relay_sandbox::processes::{free_port, http_get};
use relay_sandbox::relay::{
    RELAY_NAMESPACE, RelayPki, connect_agent_with, install_secrets, metric_value, sign_agent,
};
use serde_json::json;
use tokio::sync::Semaphore;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Handshakes one worker runs at once during the storm (`--handshakes-in-flight`).
const HANDSHAKES_IN_FLIGHT: usize = 32;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// "N threads each", or "a thread per CPU each" for 0.
fn threads_label(threads: usize) -> String {
    match threads {
        0 => "a thread per CPU each".to_string(),
        1 => "1 thread each".to_string(),
        n => format!("{n} threads each"),
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn cluster_name(index: usize) -> String {
    format!("bench-{index:06}")
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // `--threads N` (a load generator's share of `--generator-threads`): 0 is one per CPU.
    let threads: usize = arg(&args, "--threads", 0);
    if threads > 0 {
        builder.worker_threads(threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("bench-relay: no tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    relay_issuer::install_crypto_provider();
    let result = if args.iter().any(|a| a == "--worker") {
        runtime.block_on(worker(&args))
    } else {
        runtime.block_on(orchestrate(&args))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench-relay: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The worker: a share of the agents.

#[derive(Default)]
struct WorkerStats {
    connected: AtomicU64,
    welcomed_once: AtomicU64,
    failed_attempts: AtomicU64,
    reconnects: AtomicU64,
    max_reconnect_ms: AtomicU64,
    rtt_us: Mutex<Vec<u64>>,
    welcomes: Mutex<Vec<(String, u64)>>,
    /// Why attempts failed and streams ended, counted by a short description.
    problems: Mutex<HashMap<String, u64>>,
    /// Set by `stay-down`: a session whose stream ends does not come back (the agent went away
    /// with its replica).
    stay_down: std::sync::atomic::AtomicBool,
}

impl WorkerStats {
    /// Counts a problem by its description, with quoted names (the cluster's) left out so that
    /// one cause is one line.
    fn problem(&self, what: String) {
        let general: String = what
            .split('"')
            .enumerate()
            .map(|(i, part)| if i % 2 == 1 { "…" } else { part })
            .collect::<Vec<_>>()
            .join("\"");
        if let Ok(mut problems) = self.problems.lock() {
            *problems.entry(general).or_default() += 1;
        }
    }
}

async fn worker(args: &[String]) -> Result<(), BoxError> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    // A load generator logs nothing through `tracing`, but without a dispatcher set, every span
    // that hyper and h2 enter on each poll goes down `tracing`'s fallback to the `log` crate
    // (about 2 % of a load generator's CPU while steady). An agent sets a subscriber whose
    // filter turns those spans off where they are declared; this one turns them all off.
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    // Started in a session of its own (`setsid`), this process is alone in its scheduler
    // autogroup; nice N applies to that whole group, which is what lowers it against the
    // processes of other sessions (the API server, the relay servers).
    let nice: u32 = arg(args, "--nice", 0);
    if nice > 0
        && let Err(error) = std::fs::write("/proc/self/autogroup", nice.to_string())
    {
        eprintln!(
            "load generator: could not set its autogroup's nice ({error}); only its threads are niced"
        );
    }
    let from: usize = arg(args, "--from", 0);
    let to: usize = arg(args, "--to", 0);
    let dir = PathBuf::from(arg(args, "--dir", String::new()));
    let servers: Vec<std::net::SocketAddr> = arg(args, "--servers", String::new())
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let root = std::fs::read_to_string(dir.join("root.crt"))?;
    let ca = SigningCa::load(
        std::fs::read(dir.join("intermediate.crt"))?.as_slice(),
        std::fs::read(dir.join("intermediate.key"))?.as_slice(),
        Some(root.as_bytes()),
        time::OffsetDateTime::now_utc(),
    )?;
    // Each agent's TLS client configuration is built once, as the agent's provider builds one
    // per certificate: the storm then costs this process the handshakes, not PEM parsing.
    let roots = relay_issuer::tls::root_store(root.as_bytes(), "test roots")?;
    let server_check = Arc::new(ServerChainCheckedOnce::new(roots.clone())?);
    let mut identities = Vec::with_capacity(to.saturating_sub(from));
    for index in from..to {
        let cluster = cluster_name(index);
        let pem = sign_agent(&ca, &cluster, time::Duration::days(1))?;
        let identity = AgentIdentity {
            config: agent_config(roots.clone(), server_check.clone(), pem.certified_key()?),
            serial: pem.serial(),
        };
        identities.push((index, cluster, identity));
    }
    println!(
        "{}",
        json!({"event": "generated", "count": identities.len()})
    );

    let mut stdin = BufReader::new(std::io::stdin()).lines();
    let mut next_command = move || stdin.next().and_then(Result::ok).unwrap_or_default();
    let (commands, mut command) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        loop {
            let line = next_command();
            let quit = line.is_empty() || line == "quit";
            let _ = commands.send(line);
            if quit {
                return;
            }
        }
    });
    if command.recv().await.as_deref() != Some("start") {
        return Ok(());
    }

    let stats = Arc::new(WorkerStats::default());
    let storm = Arc::new(Semaphore::new(arg(
        args,
        "--handshakes-in-flight",
        HANDSHAKES_IN_FLIGHT,
    )));
    let servers = Arc::new(servers);
    for (index, cluster, identity) in identities {
        tokio::spawn(session(
            index,
            cluster,
            identity,
            servers.clone(),
            stats.clone(),
            storm.clone(),
        ));
    }
    let mut progress = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = progress.tick() => {
                println!("{}", json!({
                    "event": "progress",
                    "connected": stats.connected.load(Ordering::Relaxed),
                    "welcomed_once": stats.welcomed_once.load(Ordering::Relaxed),
                    "failed_attempts": stats.failed_attempts.load(Ordering::Relaxed),
                    "reconnects": stats.reconnects.load(Ordering::Relaxed),
                    "max_reconnect_ms": stats.max_reconnect_ms.load(Ordering::Relaxed),
                }));
            }
            line = command.recv() => match line.as_deref() {
                Some("report") => {
                    let rtt = std::mem::take(&mut *stats.rtt_us.lock().map_err(|_| "poisoned")?);
                    let problems = stats.problems.lock().map_err(|_| "poisoned")?.clone();
                    println!("{}", json!({"event": "report", "rtt_us": rtt, "problems": problems}));
                }
                Some("stay-down") => stats.stay_down.store(true, Ordering::Relaxed),
                Some("welcomes") => {
                    let welcomes = stats.welcomes.lock().map_err(|_| "poisoned")?.clone();
                    println!("{}", json!({"event": "welcomes", "welcomes": welcomes}));
                }
                _ => return Ok(()),
            }
        }
        let _ = std::io::stdout().flush();
    }
}

/// How a load generator's agents check the relay server's certificate chain: in full (rustls'
/// `WebPkiServerVerifier`: signatures up to the root, validity, name) the first time the chain
/// is seen and again a minute after, and by remembering that check in between; every handshake
/// still checks the server's own signature (CertificateVerify) in full.
///
/// Why: a load generator stands in for 12,000 agents, each of which checks the server's chain
/// once per connection on a CPU of its own. Here they would check the same chain 12,000 times
/// on the two cores the relay servers under test share: two ECDSA P-256 verifications a
/// handshake, about a sixth of a load generator's CPU in a storm, which the relay servers would
/// lose to the stand-ins for their clients. The relay server sees exactly the same handshake.
#[derive(Debug)]
struct ServerChainCheckedOnce {
    full: Arc<rustls::client::WebPkiServerVerifier>,
    checked: Mutex<Option<CheckedChain>>,
}

/// A server chain (leaf first) and name checked in full, and when.
#[derive(Debug)]
struct CheckedChain {
    chain: Vec<Vec<u8>>,
    name: String,
    at: rustls::pki_types::UnixTime,
}

/// How long a full check of the server's chain is taken as it stands.
const SERVER_CHAIN_RECHECK: Duration = Duration::from_secs(60);

impl ServerChainCheckedOnce {
    fn new(roots: Arc<rustls::RootCertStore>) -> Result<Self, BoxError> {
        Ok(Self {
            full: rustls::client::WebPkiServerVerifier::builder(roots).build()?,
            checked: Mutex::new(None),
        })
    }
}

impl rustls::client::danger::ServerCertVerifier for ServerChainCheckedOnce {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let chain: Vec<&[u8]> = std::iter::once(end_entity.as_ref())
            .chain(intermediates.iter().map(|c| c.as_ref()))
            .collect();
        let name = server_name.to_str();
        if let Ok(checked) = self.checked.lock()
            && let Some(known) = checked.as_ref()
            && known
                .chain
                .iter()
                .map(Vec::as_slice)
                .eq(chain.iter().copied())
            && known.name.as_str() == name.as_ref()
            && now.as_secs().saturating_sub(known.at.as_secs()) < SERVER_CHAIN_RECHECK.as_secs()
        {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        }
        let verified = self.full.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if let Ok(mut checked) = self.checked.lock() {
            *checked = Some(CheckedChain {
                chain: chain.iter().map(|c| c.to_vec()).collect(),
                name: name.into_owned(),
                at: now,
            });
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.full.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.full.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.full.supported_verify_schemes()
    }
}

/// An agent's client configuration (`relay_issuer::tls::client_config`: its certificate, ALPN
/// h2, no resumption), with the server's chain checked by `server_check`.
fn agent_config(
    roots: Arc<rustls::RootCertStore>,
    server_check: Arc<ServerChainCheckedOnce>,
    key: Arc<rustls::sign::CertifiedKey>,
) -> rustls::ClientConfig {
    let mut config = relay_issuer::tls::client_config(roots, Some(key));
    config.dangerous().set_certificate_verifier(server_check);
    config
}

/// What one simulated agent connects with: its TLS client configuration (root and its own
/// certificate) and the serial its Hello names.
struct AgentIdentity {
    config: rustls::ClientConfig,
    serial: String,
}

/// One agent: connect, heartbeat, reconnect with the agent's backoff to the next replica.
async fn session(
    index: usize,
    cluster: String,
    identity: AgentIdentity,
    servers: Arc<Vec<std::net::SocketAddr>>,
    stats: Arc<WorkerStats>,
    storm: Arc<Semaphore>,
) {
    let mut backoff = Backoff::new(BackoffPolicy::default());
    let mut server = index % servers.len().max(1);
    let mut random = (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut unit = move || {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        (random >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut first = true;
    let mut lost_at: Option<Instant> = None;
    loop {
        let connected = {
            let _permit = if first {
                storm.acquire().await.ok()
            } else {
                None
            };
            connect_agent_with(
                servers[server],
                identity.config.clone(),
                &identity.serial,
                &cluster,
            )
            .await
        };
        let (tx, mut inbound, welcome) = match connected {
            Ok(session) => session,
            Err(status) => {
                let message: String = status.message().chars().take(90).collect();
                stats.problem(format!("attempt failed: {:?}: {message}", status.code()));
                stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                server = (server + 1) % servers.len().max(1);
                tokio::time::sleep(backoff.next_delay(unit())).await;
                continue;
            }
        };
        backoff.connected(Instant::now());
        stats.connected.fetch_add(1, Ordering::Relaxed);
        if std::mem::take(&mut first) {
            stats.welcomed_once.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut welcomes) = stats.welcomes.lock() {
                welcomes.push((cluster.clone(), unix_ms()));
            }
        }
        if let Some(lost) = lost_at.take() {
            stats.reconnects.fetch_add(1, Ordering::Relaxed);
            stats
                .max_reconnect_ms
                .fetch_max(lost.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        let interval = Duration::from_secs(u64::from(welcome.heartbeat_interval_seconds.max(1)));
        // Spread the heartbeats over the interval, as agents started at different times are.
        let mut ticks = tokio::time::interval_at(
            tokio::time::Instant::now() + interval.mul_f64(unit()),
            interval,
        );
        let mut sequence = 0u64;
        let mut sent: Option<(u64, Instant)> = None;
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    sequence += 1;
                    sent = Some((sequence, Instant::now()));
                    if tx.send(AgentMessage::heartbeat(sequence, unix_ms() as i64)).await.is_err() {
                        break;
                    }
                }
                message = inbound.next() => match message {
                    Some(Ok(relay_proto::ServerMessage { message: Some(server_message::Message::Heartbeat(beat)) })) => {
                        if let Some((expected, at)) = sent
                            && beat.sequence == expected
                            && let Ok(mut rtt) = stats.rtt_us.lock()
                        {
                            rtt.push(at.elapsed().as_micros() as u64);
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(status)) => {
                        let message: String = status.message().chars().take(90).collect();
                        stats.problem(format!("stream ended: {:?}: {message}", status.code()));
                        break;
                    }
                    None => {
                        stats.problem("stream ended by the server".into());
                        break;
                    }
                }
            }
        }
        stats.connected.fetch_sub(1, Ordering::Relaxed);
        if stats.stay_down.load(Ordering::Relaxed) {
            return;
        }
        lost_at = Some(Instant::now());
        backoff.disconnected(Instant::now());
        server = (server + 1) % servers.len().max(1);
        tokio::time::sleep(backoff.next_delay(unit())).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The orchestrator.

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    last_progress: serde_json::Value,
}

/// As for [`Replica`]: an early end of the run stops the load generators too.
impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    fn send(&mut self, command: &str) -> Result<(), BoxError> {
        writeln!(self.stdin, "{command}")?;
        self.stdin.flush()?;
        Ok(())
    }

    /// The next line whose `event` is `event`, keeping the latest progress on the way.
    async fn expect(
        &mut self,
        event: &str,
        within: Duration,
    ) -> Result<serde_json::Value, BoxError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .map_err(|_| format!("no {event} from a worker within {within:?}"))?
                .ok_or("a worker exited")?;
            if line["event"] == "progress" {
                self.last_progress = line.clone();
            }
            if line["event"] == event {
                return Ok(line);
            }
        }
    }

    fn drain_progress(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            if line["event"] == "progress" {
                self.last_progress = line;
            }
        }
    }

    fn progress(&self, field: &str) -> u64 {
        self.last_progress[field].as_u64().unwrap_or(0)
    }
}

struct Replica {
    name: String,
    child: Child,
    admin: u16,
    idle_rss_kib: u64,
}

/// A run that ends early (an error, a missing tool) must not leave replicas behind: they would
/// keep retrying a gone API server and take CPU from the next run.
impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (resident KiB, peak resident KiB) of `pid`.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU seconds used so far by each party of a run: the relay server replicas, the load
/// generators, and the control-plane processes named in `RELAY_BENCH_CONTROL_PLANE_PIDS`
/// (`name=pid,…`; `make bench-relay-real` passes etcd's and kube-apiserver's).
struct PartyCpu {
    replicas: f64,
    load_generators: f64,
    /// This process: its watch of the RelayClusters, and the sandbox when it runs in-process.
    bench: f64,
    control_plane: Vec<(String, f64)>,
    machine: MachineCpu,
}

/// The whole machine's CPU time so far, from the first line of `/proc/stat` (all CPUs), in
/// seconds: what the run could use, what was busy (any process, the kernel, interrupts), and
/// what the hypervisor gave to other guests (steal), which makes a machine slower from one run
/// to the next.
#[derive(Debug, Clone, Copy, Default)]
struct MachineCpu {
    total: f64,
    busy: f64,
    steal: f64,
}

impl MachineCpu {
    fn sample() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<f64> = stat
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("cpu "))
            .map(|rest| {
                rest.split_whitespace()
                    .map(|t| t.parse().unwrap_or(0.0) / 100.0)
                    .collect()
            })
            .unwrap_or_default();
        let at = |i: usize| ticks.get(i).copied().unwrap_or(0.0);
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let total: f64 = (0..8).map(at).sum();
        Self {
            total,
            busy: total - at(3) - at(4),
            steal: at(7),
        }
    }

    fn since(self, before: &Self) -> Self {
        Self {
            total: self.total - before.total,
            busy: self.busy - before.busy,
            steal: self.steal - before.steal,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{:.0} of {:.0} CPU-seconds busy ({:.0}%), {:.1}s taken by the hypervisor (steal)",
            self.busy,
            self.total,
            100.0 * self.busy / self.total.max(f64::EPSILON),
            self.steal
        )
    }
}

impl PartyCpu {
    fn sample(servers: &[Replica], pool: &[Worker], control_plane: &[(String, u32)]) -> Self {
        Self {
            replicas: servers.iter().map(|s| cpu_seconds(s.child.id())).sum(),
            load_generators: pool.iter().map(|w| cpu_seconds(w.child.id())).sum(),
            bench: cpu_seconds(std::process::id()),
            control_plane: control_plane
                .iter()
                .map(|(name, pid)| (name.clone(), cpu_seconds(*pid)))
                .collect(),
            machine: MachineCpu::sample(),
        }
    }

    fn since(self, before: &Self) -> Self {
        Self {
            replicas: self.replicas - before.replicas,
            load_generators: self.load_generators - before.load_generators,
            bench: self.bench - before.bench,
            control_plane: self
                .control_plane
                .into_iter()
                .zip(&before.control_plane)
                .map(|((name, now), (_, then))| (name, now - then))
                .collect(),
            machine: self.machine.since(&before.machine),
        }
    }

    /// One line; `sessions` status writes (one claim per session) give the API server's CPU
    /// per write.
    fn describe(&self, sessions: usize) -> String {
        let per = |cpu: f64| cpu * 1000.0 / sessions.max(1) as f64;
        let mut line = format!(
            "relay replicas {:.1}s ({:.2}ms per session), load generators {:.1}s, the bench itself {:.1}s",
            self.replicas,
            per(self.replicas),
            self.load_generators,
            self.bench
        );
        for (name, cpu) in &self.control_plane {
            line.push_str(&format!(
                ", {name} {cpu:.1}s ({:.2}ms per session)",
                per(*cpu)
            ));
        }
        line
    }

    /// The machine's busy CPU-seconds that none of the parties above used (other processes,
    /// the kernel's own threads).
    fn unlisted(&self) -> f64 {
        let listed: f64 = self.replicas
            + self.load_generators
            + self.bench
            + self.control_plane.iter().map(|(_, cpu)| cpu).sum::<f64>();
        self.machine.busy - listed
    }
}

/// The floors of issue 15: every Welcome within 90 s of the storm's start, every RelayCluster
/// shown connected within 60 s of its Welcome.
const STORM_FLOOR_S: f64 = 90.0;
const LAG_FLOOR_S: f64 = 60.0;

/// One line: the least CPU the floors' window needs at this run's measured costs
/// (`relay_sandbox::floors`), against what the machine's CPUs offer in it, and the fewest CPUs
/// any schedule of that work needs; and the need as a share of the offer, and those CPUs. The
/// control plane's CPU per write is that of the processes named in
/// `RELAY_BENCH_CONTROL_PLANE_PIDS`, or, on the sandbox, this process's (the sandbox runs in it). The CPU that no party used over `span_s`
/// (and this process's, against the real plane) is a constant load beside them in the
/// schedule.
fn floor_capacity(
    parties: &PartyCpu,
    span_s: f64,
    heartbeats_per_session_second: f64,
    session_seconds: f64,
    writes: f64,
    agents: usize,
) -> (String, f64, Option<f64>) {
    use relay_sandbox::floors::{
        FloorWindow, MeasuredCosts, handshake_cpu, least_cpus, least_work,
    };
    let (control_plane, whose, others) = if parties.control_plane.is_empty() {
        (parties.bench, "the bench's sandbox", parties.unlisted())
    } else {
        (
            parties.control_plane.iter().map(|(_, cpu)| cpu).sum(),
            "the control plane",
            parties.unlisted() + parties.bench,
        )
    };
    let sessions = agents as f64;
    let handshakes = handshake_cpu(
        parties.replicas + parties.load_generators,
        session_seconds,
        heartbeats_per_session_second,
    );
    let costs = MeasuredCosts {
        sessions,
        per_write: control_plane / writes.max(1.0),
        per_handshake: handshakes / sessions.max(1.0),
        heartbeats_per_session_second,
    };
    let cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let window = FloorWindow {
        storm: STORM_FLOOR_S,
        lag: LAG_FLOOR_S,
        cpus,
    };
    let bound = least_work(&costs, &window);
    let constant_load = (others / span_s.max(0.001)).max(0.0);
    let least = least_cpus(&costs, &window, constant_load);
    let schedule = match least {
        Some(least) => format!(
            "; with each write within {LAG_FLOOR_S:.0}s of its Welcome and the rest of the machine's work ({constant_load:.2} CPUs) beside it, no schedule meets both floors on fewer than {least:.2} CPUs (the machine has {cpus:.0})"
        ),
        None => "; the fewest CPUs for any schedule could not be computed (the linear program found no optimum)".to_string(),
    };
    let line = format!(
        "floors' window ({STORM_FLOOR_S:.0}s storm + {LAG_FLOOR_S:.0}s lag on {cpus:.0} CPUs): {:.0} CPU-seconds offered; at this run's costs it needs at least {:.0} ({:.0}%) with a perfect scheduler: status writes {:.0} ({:.2}ms each, {whose}), handshakes {:.0} ({:.2}ms each, both sides, with Hello, Welcome and the claim's request), heartbeats {:.0} ({LAG_FLOOR_S:.0}s per session at the steady {:.1}µs per session-second, both sides){schedule}",
        bound.offered,
        bound.needed(),
        100.0 * bound.share(),
        bound.writes,
        costs.per_write * 1000.0,
        bound.handshakes,
        costs.per_handshake * 1000.0,
        bound.heartbeats,
        heartbeats_per_session_second * 1e6,
    );
    (line, bound.share(), least)
}

/// The machine's speed on one thread: µs per P-256 signature check (ring, the check every
/// handshake makes), the median of 5 rounds of 2,000. A core whose physical twin is busy with
/// another guest runs slower without losing any time to steal; this shows it. It measures a
/// computation that fits in a core's caches, at two moments: a fast check beside a costly run
/// (run 50 in docs/fleet-benchmark-real.md) says the cost lies elsewhere.
fn reference_check_us() -> f64 {
    use ring::rand::SystemRandom;
    use ring::signature::{
        ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
        UnparsedPublicKey,
    };
    let random = SystemRandom::new();
    let Some(key) = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &random)
        .ok()
        .and_then(|pkcs8| {
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &random).ok()
        })
    else {
        return f64::NAN;
    };
    let message = b"relay bench reference check";
    let Ok(signature) = key.sign(&random, message) else {
        return f64::NAN;
    };
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key().as_ref());
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            let passed = (0..2000)
                .filter(|_| public.verify(message, signature.as_ref()).is_ok())
                .count();
            started.elapsed().as_secs_f64() * 1e6 / passed.max(1) as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[rounds.len() / 2]
}

/// [`reference_check_us`] off the async threads, on one thread while the rest of the machine is
/// quiet and then on two at once; with one line's words that say how much of a core everything
/// else used during the first, and how much work two CPUs did together against one (2.0 when
/// they are as fast together as alone). The one-thread check is made again, up to 20 times,
/// until everything else used under a fifth of a core during it: processes just killed are
/// still handing back their memory, and the control plane works on after registrations.
async fn machine_speed() -> (f64, String) {
    let mut us = f64::NAN;
    let mut others = f64::NAN;
    for _ in 0..20 {
        let before = MachineCpu::sample();
        let started = Instant::now();
        us = tokio::task::spawn_blocking(reference_check_us)
            .await
            .unwrap_or(f64::NAN);
        let wall = started.elapsed().as_secs_f64();
        let spent = MachineCpu::sample().since(&before);
        // The check's own thread keeps one CPU busy for the whole time.
        others = (spent.busy - wall).max(0.0) / wall.max(f64::EPSILON);
        if others < 0.2 {
            break;
        }
    }
    let pair = tokio::task::spawn_blocking(|| {
        std::thread::scope(|scope| {
            let first = scope.spawn(reference_check_us);
            let second = scope.spawn(reference_check_us);
            [first.join(), second.join()]
                .map(|us| us.unwrap_or(f64::NAN))
                .iter()
                .sum::<f64>()
                / 2.0
        })
    })
    .await
    .unwrap_or(f64::NAN);
    (
        us,
        format!(
            "{us:.1} µs per P-256 signature check on one thread (everything else meanwhile: {:.0}% of a core); {pair:.1} µs each on two threads at once: the two CPUs together do {:.2} times the work of one",
            others * 100.0,
            2.0 * us / pair
        ),
    )
}

/// `RELAY_BENCH_CONTROL_PLANE_PIDS` (`name=pid,…`), the processes whose CPU the run reports.
fn control_plane_pids() -> Vec<(String, u32)> {
    std::env::var("RELAY_BENCH_CONTROL_PLANE_PIDS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| {
            let (name, pid) = pair.split_once('=')?;
            Some((name.trim().to_string(), pid.trim().parse().ok()?))
        })
        .collect()
}

/// CPU seconds (user + system) `pid` used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

fn metrics(admin: u16) -> String {
    http_get(admin, "/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default()
}

fn release_binary(name: &str) -> PathBuf {
    std::env::var_os("RELAY_BENCH_BINARIES")
        .map(PathBuf::from)
        .unwrap_or_else(|| kube_sandbox::kubectl::target_dir().join("release"))
        .join(name)
}

/// What the RelayCluster watch saw.
#[derive(Default)]
struct Watched {
    /// First time each cluster was shown connected (unix ms).
    first_connected: HashMap<String, u64>,
    /// Each cluster's current (connected, replica).
    now: HashMap<String, (bool, Option<String>)>,
    /// Events showing a cluster connected through `dead` after `dead_since`, with their times.
    dead_sightings: Vec<u64>,
    /// The last time a status stopped showing connected through `dead` (unix ms).
    last_cleared: u64,
    dead: Option<String>,
}

async fn watch_clusters(api: Api<RelayCluster>, watched: Arc<Mutex<Watched>>) {
    // With a backoff: a watch whose API server is gone (the end of a run) fails at once, and
    // retried without one it never yields, so the task can neither be aborted nor let the
    // runtime stop (a finished run spun at 95 % of a core).
    let mut events =
        std::pin::pin!(watcher::watcher(api, watcher::Config::default()).default_backoff());
    while let Some(event) = events.next().await {
        let Ok(watcher::Event::Apply(cluster) | watcher::Event::InitApply(cluster)) = event else {
            continue;
        };
        let name = cluster.metadata.name.clone().unwrap_or_default();
        let status = cluster.status.unwrap_or_default();
        let at = unix_ms();
        let Ok(mut watched) = watched.lock() else {
            return;
        };
        if status.connected {
            watched.first_connected.entry(name.clone()).or_insert(at);
        }
        let through_dead =
            status.connected && status.replica.is_some() && status.replica == watched.dead;
        let was_through_dead = watched.now.get(&name).is_some_and(|(connected, replica)| {
            *connected && replica.is_some() && *replica == watched.dead
        });
        if through_dead {
            watched.dead_sightings.push(at);
        } else if was_through_dead {
            watched.last_cleared = watched.last_cleared.max(at);
        }
        watched.now.insert(name, (status.connected, status.replica));
    }
}

/// A client of the cluster of `kubeconfig`, with our CRDs established and the relay namespace
/// there (RelayClusters of an earlier run are deleted).
async fn real_cluster(kubeconfig: &std::path::Path) -> Result<kube::Client, BoxError> {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig)?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    // Keyed by file name; the object's name is the CRD's own.
    for crd in relay_issuer::api::crds().into_values() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let mut value = serde_json::to_value(&crd)?;
        value["apiVersion"] = "apiextensions.k8s.io/v1".into();
        value["kind"] = "CustomResourceDefinition".into();
        crds.patch(
            &name,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(&value),
        )
        .await?;
        kube::runtime::wait::await_condition(
            crds.clone(),
            &name,
            kube::runtime::conditions::is_crd_established(),
        )
        .await?;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": RELAY_NAMESPACE}});
    namespaces
        .patch(
            RELAY_NAMESPACE,
            &PatchParams::apply("bench"),
            &Patch::Apply(&namespace),
        )
        .await?;
    let clusters: Api<RelayCluster> = Api::namespaced(client.clone(), RELAY_NAMESPACE);
    clusters
        .delete_collection(&Default::default(), &Default::default())
        .await?;
    Ok(client)
}

async fn orchestrate(args: &[String]) -> Result<(), BoxError> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let agents: usize = arg(args, "--agents", 3000);
    let replicas: usize = arg(args, "--replicas", 3).max(1);
    let per_worker: usize = arg(args, "--per-worker", 12_000).max(1);
    let workers: usize = arg(args, "--workers", agents.div_ceil(per_worker)).max(1);
    let steady: u64 = arg(args, "--steady", 30);
    let lease: u64 = arg(args, "--lease", 15);
    let qps: u32 = arg(args, "--kube-api-qps", 1000);
    let burst: u32 = arg(args, "--kube-api-burst", 2000);
    let kill_one = args.iter().any(|a| a == "--kill-one");
    // The killed replica's agents stay away: only the other replicas' sweep can make their
    // statuses true, which measures the stated bound itself.
    let stay_down = args.iter().any(|a| a == "--agents-stay-down");
    let in_flight: usize = arg(args, "--handshakes-in-flight", HANDSHAKES_IN_FLIGHT);
    // The agents of a real fleet run in their own clusters, not on the management plane's
    // machine: `--workers-nice N` lowers the load generators' CPU weight (their autogroup's
    // nice) so the relay servers and the API server are not starved by the agents they stand
    // in for.
    let workers_nice: u32 = arg(args, "--workers-nice", 0);
    // Threads per replica and per load generator (0: one per CPU, each process's default). A
    // replica sized to one CPU runs one: on a machine shared by many processes, more threads
    // than the process's share of CPUs add a thread switch to every heartbeat.
    let replica_threads: u16 = arg(args, "--replica-threads", 0);
    let generator_threads: usize = arg(args, "--generator-threads", 0);
    let control_plane = control_plane_pids();
    let work = tempfile::tempdir()?;
    println!(
        "relay bench: {agents} agents, {replicas} relay server replicas ({}), {workers} load-generator processes (nice {workers_nice}, {}), Lease {lease}s, API budget {qps} QPS / burst {burst}",
        threads_label(usize::from(replica_threads)),
        threads_label(generator_threads),
    );

    // The API server (the sandbox, or a real cluster with RELAY_BENCH_KUBECONFIG), the relay
    // Secrets and the RelayClusters.
    let (sandbox, kubeconfig, client) = match std::env::var_os("RELAY_BENCH_KUBECONFIG") {
        Some(path) => {
            let path = PathBuf::from(path);
            let client = real_cluster(&path).await?;
            println!("against the cluster of {}", path.display());
            (None, path, client)
        }
        None => {
            let sandbox = harness::sandbox().await?;
            let client = sandbox.client()?;
            let path = sandbox.kubeconfig().to_path_buf();
            (Some(sandbox), path, client)
        }
    };
    // The replicas' credentials: `RELAY_BENCH_SERVER_KUBECONFIG` (make bench-relay-real: a token
    // of the relay-issuer chart's server ServiceAccount, so its RBAC and a token's cost at the
    // API server are what a deployment has), else the bench's own.
    let server_kubeconfig = match std::env::var_os("RELAY_BENCH_SERVER_KUBECONFIG") {
        Some(path) => {
            println!(
                "relay servers authenticate with {}",
                PathBuf::from(&path).display()
            );
            PathBuf::from(path)
        }
        None => kubeconfig.clone(),
    };
    let pki = RelayPki::new()?;
    install_secrets(&client, RELAY_NAMESPACE, &pki).await?;
    std::fs::write(work.path().join("root.crt"), &pki.root)?;
    std::fs::write(work.path().join("intermediate.crt"), &pki.intermediate)?;
    std::fs::write(work.path().join("intermediate.key"), &pki.intermediate_key)?;
    let api: Api<RelayCluster> = Api::namespaced(client.clone(), RELAY_NAMESPACE);
    let started = Instant::now();
    futures::stream::iter(0..agents)
        .map(|index| {
            let api = api.clone();
            async move {
                let name = cluster_name(index);
                let object = json!({"apiVersion": "relaytls.dev/v1alpha1", "kind": "RelayCluster", "metadata": {"name": name}, "spec": {}});
                api.patch(&name, &PatchParams::apply("bench"), &Patch::Apply(&object))
                    .await
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    println!(
        "registered {agents} RelayClusters in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let watched = Arc::new(Mutex::new(Watched::default()));
    let watch_task = tokio::spawn(watch_clusters(api.clone(), watched.clone()));

    // The relay server replicas.
    let mut servers = Vec::new();
    let mut addresses = Vec::new();
    for r in 0..replicas {
        let (port, admin) = (free_port(), free_port());
        let name = format!("relay-bench-{r}");
        let log = std::fs::File::create(work.path().join(format!("{name}.log")))?;
        // RELAY_BENCH_SERVER_WRAPPER (e.g. `heaptrack -o /tmp/relay`) runs each replica under a
        // profiler.
        let wrapper = std::env::var("RELAY_BENCH_SERVER_WRAPPER").unwrap_or_default();
        let mut wrapper = wrapper.split_whitespace();
        let mut command = match wrapper.next() {
            Some(program) => {
                let mut command = Command::new(program);
                command.args(wrapper).arg(release_binary("relay-issuer"));
                command
            }
            None => Command::new(release_binary("relay-issuer")),
        };
        let child = command
            .args([
                "server",
                &format!("--listen=127.0.0.1:{port}"),
                &format!("--admin-address=127.0.0.1:{admin}"),
                &format!("--namespace={RELAY_NAMESPACE}"),
                &format!("--replica-lease-duration={lease}s"),
                &format!("--kube-api-qps={qps}"),
                &format!("--kube-api-burst={burst}"),
                "--log-level=warn",
            ])
            .args((replica_threads > 0).then(|| format!("--worker-threads={replica_threads}")))
            .env("KUBECONFIG", &server_kubeconfig)
            .env("POD_NAME", &name)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| {
                format!(
                    "starting {}: {e} (build it: cargo build --release -p relay-issuer)",
                    release_binary("relay-issuer").display()
                )
            })?;
        servers.push(Replica {
            name,
            child,
            admin,
            idle_rss_kib: 0,
        });
        addresses.push(format!("127.0.0.1:{port}"));
    }
    for server in &mut servers {
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(server.admin, "/ready").map(|(code, _)| code) != Some(200) {
            if Instant::now() > deadline {
                return Err(format!("{} not ready within 60s", server.name).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.idle_rss_kib = memory_kib(server.child.id()).0;
    }

    // The load generators.
    let me = std::env::current_exe()?;
    let mut pool = Vec::new();
    for w in 0..workers {
        let (from, to) = (agents * w / workers, agents * (w + 1) / workers);
        let mut command = if workers_nice > 0 {
            let mut nice = Command::new("setsid");
            nice.args(["nice", "-n", &workers_nice.to_string()])
                .arg(&me)
                .args(["--nice", &workers_nice.to_string()]);
            nice
        } else {
            Command::new(&me)
        };
        let mut child = command
            .args([
                "--worker",
                "--from",
                &from.to_string(),
                "--to",
                &to.to_string(),
                "--dir",
                &work.path().display().to_string(),
                "--servers",
                &addresses.join(","),
                "--handshakes-in-flight",
                &in_flight.to_string(),
                "--threads",
                &generator_threads.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("no worker stdin")?;
        let stdout = child.stdout.take().ok_or("no worker stdout")?;
        let (sender, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str(&line) {
                    let _ = sender.send(value);
                }
            }
        });
        pool.push(Worker {
            child,
            stdin,
            lines,
            last_progress: json!({}),
        });
    }
    let started = Instant::now();
    for worker in &mut pool {
        worker.expect("generated", Duration::from_secs(600)).await?;
    }
    println!(
        "{agents} agent keys and certificates made in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let (speed_before, speed) = machine_speed().await;
    println!("machine speed before the storm: {speed}");

    // 1. The connect storm.
    let cpu_before: Vec<f64> = servers.iter().map(|s| cpu_seconds(s.child.id())).collect();
    // Every party's CPU from here until every RelayCluster is shown: the whole cost of a cold
    // start on this machine, and how the scheduler shared it out.
    let parties_before = PartyCpu::sample(&servers, &pool, &control_plane);
    let storm_start = Instant::now();
    let storm_start_ms = unix_ms();
    for worker in &mut pool {
        worker.send("start")?;
    }
    let storm_deadline = Instant::now() + Duration::from_secs(600);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        pool.iter_mut().for_each(Worker::drain_progress);
        let welcomed: u64 = pool.iter().map(|w| w.progress("welcomed_once")).sum();
        if welcomed as usize >= agents {
            break;
        }
        if Instant::now() > storm_deadline {
            return Err(
                format!("only {welcomed} of {agents} agents had a Welcome after 600s").into(),
            );
        }
    }
    let storm = storm_start.elapsed();
    let failed: u64 = pool.iter().map(|w| w.progress("failed_attempts")).sum();
    let reconnects: u64 = pool.iter().map(|w| w.progress("reconnects")).sum();
    let storm_cpu: Vec<f64> = servers
        .iter()
        .zip(&cpu_before)
        .map(|(s, before)| cpu_seconds(s.child.id()) - before)
        .collect();
    println!(
        "storm: all {agents} Welcomes in {:.1}s, {failed} failed attempts, {reconnects} sessions lost and reopened",
        storm.as_secs_f64()
    );

    // 2. Until the RelayClusters show every agent connected.
    let mut welcomes: HashMap<String, u64> = HashMap::new();
    let mut last_per_worker = Vec::new();
    for worker in &mut pool {
        worker.send("welcomes")?;
        let line = worker.expect("welcomes", Duration::from_secs(60)).await?;
        let mut last = 0;
        for pair in line["welcomes"].as_array().into_iter().flatten() {
            if let (Some(cluster), Some(at)) = (pair[0].as_str(), pair[1].as_u64()) {
                welcomes.insert(cluster.to_string(), at);
                last = last.max(at);
            }
        }
        last_per_worker.push(last);
    }
    // The storm's shape: when each share of the agents had its Welcome, and when each load
    // generator's last one came (a long tail from one generator is the load's, not the relay's).
    let mut welcome_times: Vec<u64> = welcomes.values().copied().collect();
    welcome_times.sort_unstable();
    let after_start = |at: u64| at.saturating_sub(storm_start_ms) as f64 / 1000.0;
    println!(
        "storm shape: 50% of Welcomes by {:.1}s, 90% by {:.1}s, 99% by {:.1}s; each load generator's last at {}",
        after_start(percentile(&welcome_times, 0.5)),
        after_start(percentile(&welcome_times, 0.9)),
        after_start(percentile(&welcome_times, 0.99)),
        last_per_worker
            .iter()
            .map(|at| format!("{:.1}s", after_start(*at)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let shown_deadline = Instant::now() + Duration::from_secs(300);
    let all_connected_ms = loop {
        let shown = watched
            .lock()
            .map(|w| {
                (
                    w.first_connected.len(),
                    w.first_connected.values().max().copied(),
                )
            })
            .map_err(|_| "poisoned")?;
        if shown.0 >= agents {
            break shown.1.unwrap_or(0);
        }
        if Instant::now() > shown_deadline {
            return Err(format!(
                "only {} of {agents} RelayClusters shown connected after 300s",
                shown.0
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // (lag, cluster, Welcome, shown), the lag first so that sorting puts the longest last.
    let mut lagged: Vec<(u64, &str, u64, u64)> = {
        let watched = watched.lock().map_err(|_| "poisoned")?;
        welcomes
            .iter()
            .filter_map(|(cluster, at)| {
                watched
                    .first_connected
                    .get(cluster)
                    .map(|shown| (shown.saturating_sub(*at), cluster.as_str(), *at, *shown))
            })
            .collect()
    };
    let parties = PartyCpu::sample(&servers, &pool, &control_plane).since(&parties_before);
    lagged.sort_unstable();
    let lags: Vec<u64> = lagged.iter().map(|(lag, ..)| *lag).collect();
    let status_span_s = (all_connected_ms.saturating_sub(storm_start_ms)) as f64 / 1000.0;
    println!(
        "status: every RelayCluster shown connected {status_span_s:.1}s after the storm began; Welcome→shown lag p50 {}ms p99 {}ms max {}ms",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(0)
    );
    println!(
        "CPU from the storm's start until every RelayCluster was shown ({status_span_s:.1}s): {}",
        parties.describe(agents)
    );
    println!(
        "machine over those {status_span_s:.1}s: {}; not by the parties above: {:.1} CPU-seconds",
        parties.machine.describe(),
        parties.unlisted()
    );
    // The longest lags, with when (after the storm began) each had its Welcome and was shown:
    // a status written late although its Welcome came early says the writes left out of order.
    let since = |at: u64| at.saturating_sub(storm_start_ms) as f64 / 1000.0;
    for (lag, cluster, welcomed, shown) in lagged.iter().rev().take(3) {
        println!(
            "  lag {lag}ms: {cluster}, Welcome at {:.1}s, shown at {:.1}s",
            since(*welcomed),
            since(*shown)
        );
    }

    // 3. Steady: heartbeats, CPU and memory.
    for worker in &mut pool {
        worker.send("report")?;
        worker.expect("report", Duration::from_secs(60)).await?;
    }
    let cpu_before: Vec<f64> = servers.iter().map(|s| cpu_seconds(s.child.id())).collect();
    let workers_cpu_before: f64 = pool.iter().map(|w| cpu_seconds(w.child.id())).sum();
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(steady)).await;
    let window = window.elapsed().as_secs_f64();
    let workers_cpu =
        (pool.iter().map(|w| cpu_seconds(w.child.id())).sum::<f64>() - workers_cpu_before) / window;
    let mut rtt: Vec<u64> = Vec::new();
    let mut problems: HashMap<String, u64> = HashMap::new();
    for worker in &mut pool {
        worker.send("report")?;
        let line = worker.expect("report", Duration::from_secs(60)).await?;
        rtt.extend(
            line["rtt_us"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_u64()),
        );
        for (what, count) in line["problems"].as_object().into_iter().flatten() {
            *problems.entry(what.clone()).or_default() += count.as_u64().unwrap_or(0);
        }
    }
    let mut problems: Vec<(String, u64)> = problems.into_iter().collect();
    problems.sort_by_key(|problem| std::cmp::Reverse(problem.1));
    for (what, count) in problems.iter().take(8) {
        println!("  {count} × {what}");
    }
    println!(
        "load generators: {:.0}% of a core while steady",
        workers_cpu * 100.0
    );
    rtt.sort_unstable();
    let (rtt_p50, rtt_p99, rtt_max) = (
        percentile(&rtt, 0.5) as f64 / 1000.0,
        percentile(&rtt, 0.99) as f64 / 1000.0,
        rtt.last().copied().unwrap_or(0) as f64 / 1000.0,
    );
    println!(
        "steady {steady}s: {} heartbeat round trips, p50 {rtt_p50:.1}ms p99 {rtt_p99:.1}ms max {rtt_max:.1}ms",
        rtt.len(),
    );
    let mut worst_bytes_per_session = 0u64;
    let mut replicas_steady_cpu = 0.0;
    let mut writes_total = 0.0;
    let mut conflicts_total = 0.0;
    for (i, server) in servers.iter().enumerate() {
        let text = metrics(server.admin);
        let sessions = metric_value(&text, "relay_server_connected_agents");
        let (rss, peak) = memory_kib(server.child.id());
        let per_session = if sessions > 0.0 {
            ((rss.saturating_sub(server.idle_rss_kib)) as f64 * 1024.0 / sessions) as u64
        } else {
            0
        };
        worst_bytes_per_session = worst_bytes_per_session.max(per_session);
        let steady_cpu = (cpu_seconds(server.child.id()) - cpu_before[i]) / window;
        replicas_steady_cpu += steady_cpu;
        let written: f64 = ["claim", "update", "clear"]
            .iter()
            .map(|kind| {
                metric_value(
                    &text,
                    &format!(
                        "relay_server_status_writes_total{{kind=\"{kind}\",outcome=\"written\"}}"
                    ),
                )
            })
            .sum();
        let superseded: f64 = ["claim", "update", "clear"]
            .iter()
            .map(|kind| {
                metric_value(
                    &text,
                    &format!(
                        "relay_server_status_writes_total{{kind=\"{kind}\",outcome=\"superseded\"}}"
                    ),
                )
            })
            .sum();
        writes_total += written;
        conflicts_total += superseded;
        println!(
            "{}: {sessions} sessions, RSS {:.0} MiB (peak {:.0} MiB, idle {:.0} MiB), {:.1} KiB/session, storm CPU {:.2}s ({:.2}ms/handshake), steady CPU {:.1}% of a core, status writes {written} ({superseded} conflicts)",
            server.name,
            rss as f64 / 1024.0,
            peak as f64 / 1024.0,
            server.idle_rss_kib as f64 / 1024.0,
            per_session as f64 / 1024.0,
            storm_cpu[i],
            if sessions > 0.0 {
                storm_cpu[i] * 1000.0 / sessions
            } else {
                0.0
            },
            steady_cpu * 100.0,
        );
    }
    let write_rate = writes_total / status_span_s.max(0.001);
    println!(
        "status writes: {writes_total} written, {conflicts_total} conflicts, {write_rate:.0}/s across replicas during the storm (budget {qps} QPS / burst {burst} per replica)"
    );
    // What the floors ask of this machine at this run's costs, whatever the scheduler.
    let session_seconds: f64 = welcome_times
        .iter()
        .map(|at| all_connected_ms.saturating_sub(*at) as f64 / 1000.0)
        .sum();
    let (floor_line, floor_share, floor_cpus) = floor_capacity(
        &parties,
        status_span_s,
        (replicas_steady_cpu + workers_cpu) / agents.max(1) as f64,
        session_seconds,
        writes_total,
        agents,
    );
    println!("{floor_line}");
    let kubectl =
        kube_sandbox::kubectl::kubectl().ok_or("kubectl is not installed: run `make tools`")?;
    let shown = Command::new(&kubectl)
        .args([
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "get",
            "relayclusters",
            "-n",
            RELAY_NAMESPACE,
            "-o",
            "jsonpath={range .items[*]}{.status.connected}{\"\\n\"}{end}",
        ])
        .output()?;
    let kubectl_connected = String::from_utf8_lossy(&shown.stdout)
        .lines()
        .filter(|l| *l == "true")
        .count();
    println!("kubectl get relayclusters: {kubectl_connected} of {agents} connected");

    // 4. Replica loss.
    let mut loss = String::new();
    if kill_one {
        let victim = &mut servers[0];
        let victim_name = victim.name.clone();
        let on_victim =
            metric_value(&metrics(victim.admin), "relay_server_connected_agents") as u64;
        if let Ok(mut watched) = watched.lock() {
            watched.dead = Some(victim_name.clone());
            watched.dead_sightings.clear();
        }
        if stay_down {
            for worker in &mut pool {
                worker.send("stay-down")?;
            }
        }
        let killed_ms = unix_ms();
        let killed = Instant::now();
        victim.child.kill()?;
        let _ = victim.child.wait();
        // Every agent back with a Welcome from a live replica (unless they stay away).
        let expected = if stay_down {
            agents - on_victim as usize
        } else {
            agents
        };
        let back = loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            pool.iter_mut().for_each(Worker::drain_progress);
            let connected: u64 = pool.iter().map(|w| w.progress("connected")).sum();
            let reconnects: u64 = pool.iter().map(|w| w.progress("reconnects")).sum();
            if connected as usize == expected && (stay_down || reconnects >= on_victim) {
                break killed.elapsed();
            }
            if killed.elapsed() > Duration::from_secs(300) {
                return Err(format!(
                    "only {connected} of {expected} agents connected 300s after the kill"
                )
                .into());
            }
        };
        let max_reconnect: u64 = pool
            .iter()
            .map(|w| w.progress("max_reconnect_ms"))
            .max()
            .unwrap_or(0);
        // Every RelayCluster truthful: none connected through the dead replica.
        let truthful = loop {
            let through_dead = watched
                .lock()
                .map(|w| {
                    w.now
                        .values()
                        .filter(|(connected, replica)| {
                            *connected && replica.as_deref() == Some(victim_name.as_str())
                        })
                        .count()
                })
                .map_err(|_| "poisoned")?;
            if through_dead == 0 {
                break watched
                    .lock()
                    .map(|w| w.last_cleared)
                    .unwrap_or(0)
                    .saturating_sub(killed_ms);
            }
            if killed.elapsed() > Duration::from_secs(300) {
                return Err(format!("{through_dead} RelayClusters still connected through {victim_name} 300s after the kill").into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // Watch on for two Lease terms: nothing may show the dead replica again.
        tokio::time::sleep(Duration::from_secs(2 * lease)).await;
        let after = watched
            .lock()
            .map(|w| {
                w.dead_sightings
                    .iter()
                    .filter(|at| **at > killed_ms + truthful)
                    .count()
            })
            .map_err(|_| "poisoned")?;
        let bound_ms = lease * 1000 + lease * 1000 / 3;
        let agents_line = if stay_down {
            format!("its agents stayed away (the other {expected} stayed connected)")
        } else {
            format!(
                "all {agents} agents on live replicas after {:.1}s (slowest reconnect {max_reconnect}ms; backoff bound 1s + connect)",
                back.as_secs_f64()
            )
        };
        println!(
            "replica loss: killed {victim_name} (SIGKILL) holding {on_victim} sessions; {agents_line}; every RelayCluster truthful {:.1}s after the kill (stated bound: Lease {lease}s + sweep {:.1}s = {:.1}s, plus the writes); watch events showing a cluster connected through the dead replica after that: {after}",
            truthful as f64 / 1000.0,
            lease as f64 / 3.0,
            bound_ms as f64 / 1000.0,
        );
        loss = format!(
            " loss_back_s={:.1} loss_truthful_s={:.1} loss_dead_sightings_after={after}",
            back.as_secs_f64(),
            truthful as f64 / 1000.0
        );
    }

    // Dropping a load generator or a replica kills it: the load generators first, then the
    // replicas.
    for worker in &mut pool {
        let _ = worker.send("quit");
    }
    drop(pool);
    drop(servers);
    watch_task.abort();
    drop(sandbox);
    let (speed_after, speed) = machine_speed().await;
    println!("machine speed after the run: {speed}");
    println!(
        "relay bench: agents={agents} replicas={replicas} storm_s={:.1} failed_attempts={failed} bytes_per_session_max={worst_bytes_per_session} heartbeat_p50_ms={rtt_p50:.1} heartbeat_p99_ms={rtt_p99:.1} heartbeat_max_ms={rtt_max:.1} status_shown_s={status_span_s:.1} lag_max_ms={} status_writes={writes_total} conflicts={conflicts_total} kubectl_connected={kubectl_connected} check_us_before={speed_before:.1} check_us_after={speed_after:.1} floor_cpu_share={floor_share:.2} floor_least_cpus={}{loss}",
        storm.as_secs_f64(),
        lags.last().copied().unwrap_or(0),
        floor_cpus.map_or_else(|| "none".to_string(), |cpus| format!("{cpus:.2}")),
    );
    Ok(())
}
