//! `make bench-real`: cert-manager's own CA `ClusterIssuer` beside our `RelayClusterIssuer`, on
//! one real control plane (`scripts/control-plane.sh`, its state in `target/control-plane-bench`)
//! with cert-manager's real controller, approver and webhook, signing with the same CA Secret.
//!
//! Set-up: the relay-issuer chart installed with `helm` (one controller replica, its
//! `--cluster-resource-namespace` set to cert-manager's, `cert-manager`, so both issuers read the
//! one Secret `cert-manager/relay-tls-signing-secret`), `relay-issuer controller` run as the pod
//! of its Deployment with its ServiceAccount's token, `ClusterIssuer bench-ca` (`spec.ca`) and
//! `RelayClusterIssuer bench-relay` both Ready.
//!
//! Each run: a fresh namespace, `--certificates` Certificates (ECDSA P-256 keys, client auth,
//! the agent chart's shape) created at once from `--writers` writers, all naming one issuer;
//! the bench watches them and their CertificateRequests and records, per Certificate, when it
//! was created and when it first saw its request, the request Approved, the request Ready
//! (signed) and the Certificate Ready. It reports the time from the first create to the last
//! Ready, create→Ready p50/p99, the four stages' p50/p99 (where the time goes), and the CPU
//! seconds each process of the plane used (from `/proc/<pid>/stat`); the signing process is
//! cert-manager's controller for the CA issuer and `relay-issuer controller` for ours. Then the
//! namespace is deleted and the bench waits until it is gone and the plane is quiet again.
//!
//! `--rounds` rounds, the order alternating (CA first in odd rounds, ours first in even ones);
//! the summary gives medians over rounds and the ratios CA / ours. A benchmark to run by hand,
//! never a timed assertion. Last line, for scripts: `bench-real: …`; the runs are also written
//! to `target/bench-real/results.json`.

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cert_manager_sim::resource;
use futures::StreamExt;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use relay_sandbox::charts;
use relay_sandbox::harness::{self, create_issuer};
use relay_sandbox::plane::{CONTROLLER, Plane};
use relay_sandbox::processes::free_port;
use relay_sandbox::relay::{RELAY_NAMESPACE, RelayPki, TRUST_DOMAIN, put_signing_secret};
use serde_json::{Value, json};
use tokio::sync::Mutex;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// cert-manager's cluster resource namespace on `make cluster`'s plane.
const CERT_MANAGER_NAMESPACE: &str = "cert-manager";
/// The processes of the plane whose CPU time is reported, besides our controller.
const PLANE_PROCESSES: &[&str] = &[
    "cert-manager-controller",
    "cert-manager-webhook",
    "kube-apiserver",
    "etcd",
    "kube-controller-manager",
];
const OUR_CONTROLLER: &str = "relay-issuer-controller";

/// The two issuers compared.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Issuer {
    CertManagerCa,
    Relay,
}

impl Issuer {
    fn label(self) -> &'static str {
        match self {
            Issuer::CertManagerCa => "cert-manager CA ClusterIssuer",
            Issuer::Relay => "relay-tls RelayClusterIssuer",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Issuer::CertManagerCa => "ca",
            Issuer::Relay => "relay",
        }
    }

    fn issuer_ref(self) -> Value {
        match self {
            Issuer::CertManagerCa => {
                json!({"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "bench-ca"})
            }
            Issuer::Relay => {
                json!({"group": "relaytls.dev", "kind": "RelayClusterIssuer", "name": "bench-relay"})
            }
        }
    }

    /// The process that signs for this issuer.
    fn signer(self) -> &'static str {
        match self {
            Issuer::CertManagerCa => "cert-manager-controller",
            Issuer::Relay => OUR_CONTROLLER,
        }
    }
}

struct Args {
    certificates: usize,
    rounds: usize,
    writers: usize,
    timeout: Duration,
}

impl Args {
    fn parse() -> Result<Self, BoxError> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let value = |name: &str, default: u64| -> Result<u64, BoxError> {
            match args.iter().position(|a| a == name) {
                None => Ok(default),
                Some(i) => args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("{name} needs a whole number").into()),
            }
        };
        Ok(Self {
            certificates: value("--certificates", 1000)? as usize,
            rounds: value("--rounds", 3)? as usize,
            writers: value("--writers", 16)? as usize,
            timeout: Duration::from_secs(value("--timeout-seconds", 1800)?),
        })
    }
}

/// What the bench saw of one Certificate, by when.
#[derive(Default, Clone, Copy)]
struct Timeline {
    created: Option<Instant>,
    request: Option<Instant>,
    approved: Option<Instant>,
    signed: Option<Instant>,
    ready: Option<Instant>,
}

type Seen = Arc<Mutex<HashMap<String, Timeline>>>;

/// One issuer's run: `certificates` Certificates to Ready.
struct Run {
    round: usize,
    issuer: Issuer,
    total: Duration,
    create_to_ready: Vec<Duration>,
    stages: [Vec<Duration>; 4],
    cpu: BTreeMap<String, f64>,
}

const STAGES: [&str; 4] = [
    "create→request",
    "request→approved",
    "approved→signed",
    "signed→Certificate Ready",
];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Clock ticks per second of `/proc/<pid>/stat`'s times.
fn clock_ticks() -> Result<f64, BoxError> {
    let out = Command::new("getconf").arg("CLK_TCK").output()?;
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

/// User plus system CPU seconds process `pid` has used so far.
fn cpu_seconds(pid: u32, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis,
    // where field 3 (state) is index 0, utime (14) index 11 and stime (15) index 12.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / ticks)
}

/// The processes whose CPU is measured, by name.
struct Processes {
    pids: Vec<(String, u32)>,
    ticks: f64,
}

impl Processes {
    fn sample(&self) -> Result<BTreeMap<String, f64>, BoxError> {
        self.pids
            .iter()
            .map(|(name, pid)| {
                cpu_seconds(*pid, self.ticks)
                    .map(|s| (name.clone(), s))
                    .ok_or_else(|| format!("{name} (pid {pid}) is no longer running").into())
            })
            .collect()
    }

    /// Waits until the processes together use under a tenth of a core over one second (the
    /// previous run's deletions and resyncs done), at most `within`; says so if they never do.
    async fn wait_quiet(&self, within: Duration) -> Result<(), BoxError> {
        let deadline = Instant::now() + within;
        loop {
            let before = self.sample()?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let after = self.sample()?;
            let used: f64 = after.iter().map(|(n, s)| s - before[n]).sum();
            if used < 0.1 {
                return Ok(());
            }
            if Instant::now() > deadline {
                eprintln!(
                    "bench-real: the plane still used {used:.2} CPU s per second after {within:?}; going on"
                );
                return Ok(());
            }
        }
    }
}

fn certificate(namespace: &str, index: usize, issuer: Issuer) -> Result<DynamicObject, BoxError> {
    let cluster = format!("bench-{index}");
    Ok(serde_json::from_value(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": format!("agent-{index}"), "namespace": namespace},
        "spec": {
            "secretName": format!("agent-{index}-tls"),
            "commonName": cluster,
            "uris": [format!("spiffe://{TRUST_DOMAIN}/relay/cluster/{cluster}")],
            "duration": "2160h",
            "usages": ["client auth", "digital signature"],
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "issuerRef": issuer.issuer_ref(),
        },
    }))?)
}

fn condition_true(object: &DynamicObject, kind: &str) -> bool {
    object.data["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

/// Watches `api` and records into `seen` what `record` takes from each object; the returned
/// receiver fires once the initial list is in.
fn watch(
    api: Api<DynamicObject>,
    seen: Seen,
    record: fn(&DynamicObject, Instant, &mut HashMap<String, Timeline>),
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::oneshot::Receiver<()>,
) {
    let (listed, on_listed) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut listed = Some(listed);
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            let now = Instant::now();
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    record(&o, now, &mut *seen.lock().await)
                }
                Ok(watcher::Event::InitDone) => {
                    if let Some(listed) = listed.take() {
                        let _ = listed.send(());
                    }
                }
                Ok(_) => {}
                Err(e) => eprintln!("bench-real: watch: {e}"),
            }
        }
    });
    (task, on_listed)
}

fn record_certificate(o: &DynamicObject, now: Instant, seen: &mut HashMap<String, Timeline>) {
    let name = o.metadata.name.clone().unwrap_or_default();
    if condition_true(o, "Ready") {
        seen.entry(name).or_default().ready.get_or_insert(now);
    }
}

fn record_request(o: &DynamicObject, now: Instant, seen: &mut HashMap<String, Timeline>) {
    let Some(name) = o
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("cert-manager.io/certificate-name"))
    else {
        return;
    };
    let timeline = seen.entry(name.clone()).or_default();
    timeline.request.get_or_insert(now);
    if condition_true(o, "Approved") {
        timeline.approved.get_or_insert(now);
    }
    if condition_true(o, "Ready") {
        timeline.signed.get_or_insert(now);
    }
}

async fn run_once(
    plane: &Plane,
    processes: &Processes,
    args: &Args,
    round: usize,
    issuer: Issuer,
) -> Result<Run, BoxError> {
    let namespace = format!("bench-{round}-{}", issuer.short());
    plane.namespace(&namespace)?;
    let certificates: Api<DynamicObject> = Api::namespaced_with(
        plane.client.clone(),
        &namespace,
        &resource("Certificate", "certificates"),
    );
    let seen: Seen = Arc::default();
    let (certificate_watch, certificates_listed) =
        watch(certificates.clone(), seen.clone(), record_certificate);
    let (request_watch, requests_listed) = watch(
        harness::requests(&plane.client, &namespace),
        seen.clone(),
        record_request,
    );
    certificates_listed.await?;
    requests_listed.await?;
    processes.wait_quiet(Duration::from_secs(120)).await?;

    eprintln!(
        "bench-real: round {round}, {}: creating {} Certificates from {} writers …",
        issuer.label(),
        args.certificates,
        args.writers
    );
    let cpu_before = processes.sample()?;
    let started = Instant::now();
    let queue = Arc::new(std::sync::Mutex::new(
        (0..args.certificates).rev().collect::<Vec<_>>(),
    ));
    let writers: Vec<_> = (0..args.writers)
        .map(|_| {
            let queue = queue.clone();
            let api = certificates.clone();
            let seen = seen.clone();
            let namespace = namespace.clone();
            tokio::spawn(async move {
                loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop();
                    let Some(index) = next else {
                        return Ok::<(), BoxError>(());
                    };
                    let object = certificate(&namespace, index, issuer)?;
                    let at = Instant::now();
                    seen.lock()
                        .await
                        .entry(format!("agent-{index}"))
                        .or_default()
                        .created = Some(at);
                    api.create(&PostParams::default(), &object)
                        .await
                        .map_err(|e| format!("create Certificate agent-{index}: {e}"))?;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    let all_created = started.elapsed();

    let deadline = started + args.timeout;
    let ready = loop {
        let ready = seen
            .lock()
            .await
            .values()
            .filter(|t| t.created.is_some() && t.ready.is_some())
            .count();
        if ready == args.certificates {
            break ready;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "round {round}, {}: only {ready} of {} Certificates Ready within {:?}",
                issuer.label(),
                args.certificates,
                args.timeout
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cpu_after = processes.sample()?;
    certificate_watch.abort();
    request_watch.abort();

    let timelines: Vec<Timeline> = seen.lock().await.values().copied().collect();
    let last_ready = timelines
        .iter()
        .filter_map(|t| t.ready)
        .max()
        .unwrap_or(started);
    let between =
        |from: Option<Instant>, to: Option<Instant>| Some(to?.saturating_duration_since(from?));
    let mut create_to_ready: Vec<Duration> = timelines
        .iter()
        .filter_map(|t| between(t.created, t.ready))
        .collect();
    create_to_ready.sort();
    let mut stages: [Vec<Duration>; 4] = Default::default();
    for t in &timelines {
        let points = [t.created, t.request, t.approved, t.signed, t.ready];
        for (stage, pair) in stages.iter_mut().zip(points.windows(2)) {
            if let Some(d) = between(pair[0], pair[1]) {
                stage.push(d);
            }
        }
    }
    stages.iter_mut().for_each(|s| s.sort());
    let cpu = cpu_after
        .iter()
        .map(|(name, after)| (name.clone(), after - cpu_before[name]))
        .collect();
    let run = Run {
        round,
        issuer,
        total: last_ready.saturating_duration_since(started),
        create_to_ready,
        stages,
        cpu,
    };
    eprintln!(
        "bench-real: round {round}, {}: {ready} Ready {:.1} s after the first create (all created in {:.1} s)",
        issuer.label(),
        run.total.as_secs_f64(),
        all_created.as_secs_f64()
    );
    print_run(&run);

    // Clean up before the next run, and wait until that is done.
    plane.kubectl(
        &[
            "delete",
            "namespace",
            &namespace,
            "--wait=true",
            "--timeout=15m",
        ],
        None,
    )?;
    Ok(run)
}

fn print_run(run: &Run) {
    let stages: Vec<String> = STAGES
        .iter()
        .zip(&run.stages)
        .map(|(name, d)| {
            format!(
                "{name} {}/{}",
                ms(percentile(d, 0.5)),
                ms(percentile(d, 0.99))
            )
        })
        .collect();
    let cpu: Vec<String> = run.cpu.iter().map(|(n, s)| format!("{n} {s:.1}")).collect();
    println!(
        "round {} | {:<30} | all Ready {:>7.1} s | create→Ready p50 {} p99 {} | stages p50/p99: {} | CPU s: {}",
        run.round,
        run.issuer.label(),
        run.total.as_secs_f64(),
        ms(percentile(&run.create_to_ready, 0.5)),
        ms(percentile(&run.create_to_ready, 0.99)),
        stages.join(", "),
        cpu.join(", ")
    );
}

/// Medians over one issuer's runs.
struct Summary {
    total: f64,
    p50: f64,
    p99: f64,
    stages_p50: [f64; 4],
    stages_p99: [f64; 4],
    signer_cpu: f64,
    cpu: BTreeMap<String, f64>,
}

fn summarize(runs: &[Run], issuer: Issuer) -> Summary {
    let mine: Vec<&Run> = runs.iter().filter(|r| r.issuer == issuer).collect();
    let over = |f: &dyn Fn(&Run) -> f64| median(&mut mine.iter().map(|r| f(r)).collect::<Vec<_>>());
    let secs = |d: Duration| d.as_secs_f64();
    let stage = |p: f64| -> [f64; 4] {
        std::array::from_fn(|i| over(&|r: &Run| secs(percentile(&r.stages[i], p))))
    };
    let names: Vec<String> = mine
        .first()
        .map(|r| r.cpu.keys().cloned().collect())
        .unwrap_or_default();
    Summary {
        total: over(&|r| secs(r.total)),
        p50: over(&|r| secs(percentile(&r.create_to_ready, 0.5))),
        p99: over(&|r| secs(percentile(&r.create_to_ready, 0.99))),
        stages_p50: stage(0.5),
        stages_p99: stage(0.99),
        signer_cpu: over(&|r| r.cpu.get(issuer.signer()).copied().unwrap_or(0.0)),
        cpu: names
            .into_iter()
            .map(|n| {
                let value = over(&|r| r.cpu.get(&n).copied().unwrap_or(0.0));
                (n, value)
            })
            .collect(),
    }
}

fn run_json(run: &Run) -> Value {
    let secs = |d: Duration| d.as_secs_f64();
    json!({
        "round": run.round,
        "issuer": run.issuer.short(),
        "all_ready_seconds": secs(run.total),
        "create_to_ready_p50_seconds": secs(percentile(&run.create_to_ready, 0.5)),
        "create_to_ready_p99_seconds": secs(percentile(&run.create_to_ready, 0.99)),
        "stages": STAGES.iter().zip(&run.stages).map(|(name, d)| json!({
            "stage": name,
            "p50_seconds": secs(percentile(d, 0.5)),
            "p99_seconds": secs(percentile(d, 0.99)),
        })).collect::<Vec<_>>(),
        "cpu_seconds": run.cpu,
    })
}

async fn wait_issuer_ready(api: &Api<DynamicObject>, name: &str) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let object = api.get_opt(name).await?;
        if object.as_ref().is_some_and(|o| condition_true(o, "Ready")) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "issuer {name} not Ready within 60 s: {:?}",
                object.map(|o| o.data["status"].clone())
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn bench() -> Result<(), BoxError> {
    relay_issuer::install_crypto_provider();
    let args = Args::parse()?;
    let root = charts::repo_root();
    let work = root.join("target/bench-real");
    let _ = std::fs::remove_dir_all(&work);
    let state = std::env::var("RELAY_TLS_CONTROL_PLANE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target/control-plane-bench"));
    let cert_manager_args = std::env::var("CONTROL_PLANE_CERT_MANAGER_ARGS").unwrap_or_default();
    let plane = Plane::local(state, work.clone()).await?;
    let client = plane.client.clone();

    plane.namespace(RELAY_NAMESPACE)?;
    let issuer_chart = charts::chart_dir(charts::ISSUER_CHART)
        .display()
        .to_string();
    plane.helm_install(
        "relay-issuer",
        &issuer_chart,
        RELAY_NAMESPACE,
        &[
            "server.enabled=false",
            "controller.replicas=1",
            "controller.clusterResourceNamespace=cert-manager",
            "certManager.approver.enabled=true",
            "certManager.approver.serviceAccount.name=cert-manager",
            "certManager.approver.serviceAccount.namespace=cert-manager",
        ],
    )?;
    let pki = RelayPki::new()?;
    put_signing_secret(&client, CERT_MANAGER_NAMESPACE, &pki).await?;
    let cluster_issuers: Api<DynamicObject> =
        Api::all_with(client.clone(), &resource("ClusterIssuer", "clusterissuers"));
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
        "metadata": {"name": "bench-ca"},
        "spec": {"ca": {"secretName": "relay-tls-signing-secret"}},
    }))?;
    cluster_issuers
        .create(&PostParams::default(), &object)
        .await?;
    create_issuer(&client, None, "bench-relay", json!({})).await?;

    let admin = free_port();
    let controller = plane
        .start_ready(
            CONTROLLER,
            RELAY_NAMESPACE,
            admin,
            &[],
            OUR_CONTROLLER,
            Duration::from_secs(60),
        )
        .await?;
    wait_issuer_ready(&cluster_issuers, "bench-ca").await?;
    let relay_issuers: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource {
            group: "relaytls.dev".into(),
            version: "v1alpha1".into(),
            api_version: "relaytls.dev/v1alpha1".into(),
            kind: "RelayClusterIssuer".into(),
            plural: "relayclusterissuers".into(),
        },
    );
    wait_issuer_ready(&relay_issuers, "bench-relay").await?;

    let mut pids = vec![(OUR_CONTROLLER.to_string(), controller.pid())];
    for name in PLANE_PROCESSES {
        let pid = plane
            .process_pid(name)
            .ok_or_else(|| format!("no PID for the plane's {name}: is the plane up?"))?;
        pids.push((name.to_string(), pid));
    }
    let processes = Processes {
        pids,
        ticks: clock_ticks()?,
    };
    println!(
        "bench-real: {} Certificates per run, {} rounds, {} writers; cert-manager controller flags: {}",
        args.certificates,
        args.rounds,
        args.writers,
        if cert_manager_args.is_empty() {
            "its defaults (--kube-api-qps 20 --kube-api-burst 50)".to_string()
        } else {
            cert_manager_args.clone()
        }
    );

    let mut runs = Vec::new();
    for round in 1..=args.rounds {
        let order = if round % 2 == 1 {
            [Issuer::CertManagerCa, Issuer::Relay]
        } else {
            [Issuer::Relay, Issuer::CertManagerCa]
        };
        for issuer in order {
            runs.push(run_once(&plane, &processes, &args, round, issuer).await?);
        }
    }
    drop(controller);

    let ca = summarize(&runs, Issuer::CertManagerCa);
    let ours = summarize(&runs, Issuer::Relay);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    println!(
        "\nmedians over {} rounds ({} Certificates each):",
        args.rounds, args.certificates
    );
    println!("| | cert-manager CA ClusterIssuer | relay-tls RelayClusterIssuer | CA / ours |");
    println!("| --- | --- | --- | --- |");
    let row = |name: &str, a: f64, b: f64, unit: &str| {
        println!(
            "| {name} | {a:.2} {unit} | {b:.2} {unit} | {:.2} |",
            ratio(a, b)
        )
    };
    row(
        "all Ready after the first create",
        ca.total,
        ours.total,
        "s",
    );
    row("create→Ready p50", ca.p50, ours.p50, "s");
    row("create→Ready p99", ca.p99, ours.p99, "s");
    for (i, name) in STAGES.iter().enumerate() {
        row(
            &format!("{name} p50"),
            ca.stages_p50[i],
            ours.stages_p50[i],
            "s",
        );
        row(
            &format!("{name} p99"),
            ca.stages_p99[i],
            ours.stages_p99[i],
            "s",
        );
    }
    row(
        "CPU of the signing process",
        ca.signer_cpu,
        ours.signer_cpu,
        "s",
    );
    for (name, a) in &ca.cpu {
        let b = ours.cpu.get(name).copied().unwrap_or(0.0);
        row(&format!("CPU of {name}"), *a, b, "s");
    }
    let total_cpu = |s: &Summary| s.cpu.values().sum::<f64>();
    row(
        "CPU of all these processes",
        total_cpu(&ca),
        total_cpu(&ours),
        "s",
    );

    std::fs::create_dir_all(&work)?;
    std::fs::write(
        work.join("results.json"),
        serde_json::to_string_pretty(&json!({
            "certificates": args.certificates,
            "rounds": args.rounds,
            "writers": args.writers,
            "cert_manager_args": cert_manager_args,
            "runs": runs.iter().map(run_json).collect::<Vec<_>>(),
        }))?,
    )?;
    println!(
        "bench-real: certificates={} rounds={} ca_all_ready={:.1}s relay_all_ready={:.1}s ratio={:.2} ca_p50={:.2}s relay_p50={:.2}s ca_p99={:.2}s relay_p99={:.2}s ca_signer_cpu={:.1}s relay_signer_cpu={:.1}s",
        args.certificates,
        args.rounds,
        ca.total,
        ours.total,
        ratio(ca.total, ours.total),
        ca.p50,
        ours.p50,
        ca.p99,
        ours.p99,
        ca.signer_cpu,
        ours.signer_cpu
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    match bench().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-real: {e}");
            ExitCode::FAILURE
        }
    }
}
