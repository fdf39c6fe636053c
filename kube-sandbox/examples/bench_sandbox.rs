//! Throughput and watch fan-out benchmark for the sandbox API server.
//!
//! The sandbox must never be what a later benchmark measures: the goal is at least 2,000 object
//! writes/s with 100 open watches receiving every event, on a 2-core machine. This program
//! measures that; it is a benchmark to run by hand (or from a Makefile target), never a timed
//! assertion inside a test.
//!
//! ```text
//! cargo run --release -p kube-sandbox --example bench_sandbox -- \
//!     [--writes 20000] [--watchers 100] [--concurrency 32] [--timeout-secs 120]
//! ```
//!
//! What it does, all in one process on a 2-worker multi-thread tokio runtime:
//!
//! 1. starts a [`kube_sandbox::Sandbox`] on a loopback port and creates namespace `bench`
//!    (`POST /api/v1/namespaces`);
//! 2. opens `--watchers` raw HTTP/1.1 watches
//!    (`GET /api/v1/namespaces/bench/configmaps?watch=true&resourceVersion=RV`, RV being the
//!    namespace's) and waits until every one has its `200 OK`;
//! 3. creates `--writes` ConfigMaps as fast as it can from `--concurrency` writers, each on its
//!    own keep-alive connection; every ConfigMap carries the nanosecond time it was sent at
//!    (`data.benchSentNs`, measured from one in-process `Instant`);
//! 4. every watcher reads the newline-delimited JSON stream and records, for each event, its
//!    resourceVersion and the time from the write's send to the event's receipt; at the end
//!    each watcher's resourceVersions must be exactly those the creates returned, in order.
//!
//! It prints writes/s (writes / wall time of the write phase), watch events delivered/s
//! (writes × watchers / time from the first write until the last watcher got its last event),
//! fan-out latency p50/p90/p99/max over every (watcher, event) pair, the CPU the process used
//! per write and per delivered event (Linux `/proc`; comparable across runs even when the
//! machine is busy, unlike the rates), how many cores other processes kept busy meanwhile, and a
//! last line for scripts: `sandbox bench: writes/s=… p50=…ms p99=…ms watchers=… events=… missed=0`, where
//! `events` is the number of (watcher, event) pairs delivered and `missed` the number expected
//! but not delivered.
//!
//! The client side is deliberately cheap (hand-written HTTP/1.1, events scanned for the two
//! fields it needs rather than parsed) because it shares the two cores with the sandbox.
//!
//! Exit status: 0 when every watcher got every event in order; 1 when any event was missed or
//! out of order, a watch ended with an error (such as 410 Expired), a request failed, or the
//! hard time limit (`--timeout-secs`) was reached; 2 for bad arguments.

use kube_sandbox::Sandbox;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

const NAMESPACE: &str = "bench";
const USAGE: &str = "usage: bench_sandbox [--writes N] [--watchers W] [--concurrency C] [--timeout-secs S]\n\
    \n  --writes N        ConfigMaps to create (default 20000)\
    \n  --watchers W      concurrent watches on the namespace's ConfigMaps (default 100)\
    \n  --concurrency C   concurrent writers, one keep-alive connection each (default 32)\
    \n  --timeout-secs S  hard stop after S seconds (default 120)";

/// Command-line settings.
#[derive(Debug, Clone)]
struct Options {
    writes: usize,
    watchers: usize,
    concurrency: usize,
    timeout: Duration,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        writes: 20_000,
        watchers: 100,
        concurrency: 32,
        timeout: Duration::from_secs(120),
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_string(), Some(value.to_string())),
            None => (arg, None),
        };
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |max: usize| -> Result<usize, String> {
            match value.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(format!(
                    "{flag}: expected a number from 1 to {max}, got {value:?}"
                )),
            }
        };
        match flag.as_str() {
            "--writes" => options.writes = number(1_000_000)?,
            "--watchers" => options.watchers = number(1_000)?,
            "--concurrency" => options.concurrency = number(1_000)?,
            "--timeout-secs" => options.timeout = Duration::from_secs(number(3_600)? as u64),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(options)
}

/// Counters the watchdog reports if the hard time limit is reached.
struct Progress {
    writes_done: AtomicUsize,
    watchers_ready: AtomicUsize,
    events: Vec<AtomicUsize>,
}

impl Progress {
    fn new(watchers: usize) -> Self {
        Self {
            writes_done: AtomicUsize::new(0),
            watchers_ready: AtomicUsize::new(0),
            events: (0..watchers).map(|_| AtomicUsize::new(0)).collect(),
        }
    }
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("bench_sandbox: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let progress = Arc::new(Progress::new(options.watchers));
    start_watchdog(&options, progress.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    runtime.block_on(run(options, progress))
}

/// Ends the process after the time limit, whatever the runtime is doing.
fn start_watchdog(options: &Options, progress: Arc<Progress>) {
    let options = options.clone();
    std::thread::spawn(move || {
        std::thread::sleep(options.timeout);
        let events: Vec<usize> = progress
            .events
            .iter()
            .map(|e| e.load(Ordering::Relaxed))
            .collect();
        let complete = events.iter().filter(|&&e| e >= options.writes).count();
        let slowest = events.iter().copied().min().unwrap_or(0);
        eprintln!(
            "bench_sandbox: HARD STOP after {} s: writes done {}/{}, watches open {}/{}, \
             watchers with every event {}/{}, slowest watcher at {}/{} events",
            options.timeout.as_secs(),
            progress.writes_done.load(Ordering::Relaxed),
            options.writes,
            progress.watchers_ready.load(Ordering::Relaxed),
            options.watchers,
            complete,
            options.watchers,
            slowest,
            options.writes,
        );
        println!(
            "sandbox bench: writes/s=0 p50=0ms p99=0ms watchers={} events={} missed={}",
            options.watchers,
            events.iter().sum::<usize>(),
            (options.writes * options.watchers).saturating_sub(events.iter().sum::<usize>()),
        );
        std::process::exit(1);
    });
}

/// Nanoseconds since `base`.
fn nanos_since(base: Instant) -> u64 {
    u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// CPU time used so far by every thread of this process, nanoseconds (Linux `schedstat`).
fn process_cpu_nanos() -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// CPU time every process has used so far, nanoseconds (`/proc/stat`, counted in USER_HZ
/// ticks, which Linux fixes at 100 per second).
fn machine_cpu_nanos() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal …: everything but idle and iowait.
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum();
    Some(busy * 10_000_000)
}

// ---------- a minimal HTTP/1.1 client ----------

/// A response's status line and framing headers.
struct Head {
    status: u16,
    content_length: Option<usize>,
    chunked: bool,
}

/// One keep-alive HTTP/1.1 connection to the sandbox.
struct Conn {
    stream: BufReader<TcpStream>,
    host: String,
    line: Vec<u8>,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("setting TCP_NODELAY: {e}"))?;
        Ok(Self {
            stream: BufReader::with_capacity(64 * 1024, stream),
            host: addr.to_string(),
            line: Vec::with_capacity(256),
        })
    }

    async fn send(&mut self, method: &str, path: &str, body: Option<&str>) -> Result<(), String> {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: bench-sandbox\r\nAccept: application/json\r\n",
            self.host
        );
        if let Some(body) = body {
            request.push_str("Content-Type: application/json\r\n");
            request.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            request.push_str(body);
        } else {
            request.push_str("\r\n");
        }
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("sending {method} {path}: {e}"))
    }

    /// Reads one line (CRLF or LF terminated) into `self.line`; errors at end of stream.
    async fn read_line(&mut self) -> Result<(), String> {
        self.line.clear();
        let n = self
            .stream
            .read_until(b'\n', &mut self.line)
            .await
            .map_err(|e| format!("reading from the sandbox: {e}"))?;
        if n == 0 {
            return Err("the sandbox closed the connection".into());
        }
        while matches!(self.line.last(), Some(b'\n' | b'\r')) {
            self.line.pop();
        }
        Ok(())
    }

    async fn read_head(&mut self) -> Result<Head, String> {
        self.read_line().await?;
        let status_line = String::from_utf8_lossy(&self.line).into_owned();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let mut head = Head {
            status,
            content_length: None,
            chunked: false,
        };
        loop {
            self.read_line().await?;
            if self.line.is_empty() {
                return Ok(head);
            }
            let header = String::from_utf8_lossy(&self.line);
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                head.content_length = value.parse().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                head.chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
    }

    /// Appends the next chunk of a chunked body to `out`; `false` at the last (empty) chunk.
    async fn read_chunk(&mut self, out: &mut Vec<u8>) -> Result<bool, String> {
        self.read_line().await?;
        let size_text = String::from_utf8_lossy(&self.line);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                self.read_line().await?;
                if self.line.is_empty() {
                    return Ok(false);
                }
            }
        }
        let start = out.len();
        out.resize(start + size, 0);
        self.stream
            .read_exact(&mut out[start..])
            .await
            .map_err(|e| format!("reading a chunk: {e}"))?;
        self.read_line().await?;
        Ok(true)
    }

    async fn read_body(&mut self, head: &Head) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        if head.chunked {
            while self.read_chunk(&mut body).await? {}
        } else if let Some(length) = head.content_length {
            body.resize(length, 0);
            self.stream
                .read_exact(&mut body)
                .await
                .map_err(|e| format!("reading a response body: {e}"))?;
        } else {
            return Err("a response with neither Content-Length nor chunked framing".into());
        }
        Ok(body)
    }

    /// Sends a request and reads the whole response.
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<(u16, Vec<u8>), String> {
        self.send(method, path, body).await?;
        let head = self.read_head().await?;
        let body = self.read_body(&head).await?;
        Ok((head.status, body))
    }
}

/// The number in the JSON string field introduced by `key` (e.g. `"resourceVersion":"`).
///
/// Events are scanned, not parsed, to keep the client's share of the two cores small: in a
/// ConfigMap watch event `"resourceVersion":"`, `"benchSentNs":"` and `"type":"` each occur
/// exactly once. The sandbox writes `resourceVersion` and `data` last, so searching from the
/// end is the short way.
fn number_after(text: &str, key: &str) -> Option<u64> {
    // Every key ends with the quote that opens its value: walk the quotes back from the end
    // (`rfind(char)` is a fast byte search) and compare the key there.
    let mut end = text.len();
    while let Some(quote) = text[..end].rfind('"') {
        if text[..=quote].ends_with(key) {
            let rest = &text[quote + 1..];
            return rest[..rest.find('"')?].parse().ok();
        }
        end = quote;
    }
    None
}

/// The event's `type` (`{"type":"…"` leads the line as the sandbox writes it).
fn event_type(text: &str) -> Option<&str> {
    let start = match text.strip_prefix('{').filter(|t| t.starts_with(TYPE_KEY)) {
        Some(_) => 1 + TYPE_KEY.len(),
        None => text.find(TYPE_KEY)? + TYPE_KEY.len(),
    };
    let rest = &text[start..];
    Some(&rest[..rest.find('"')?])
}

const RV_KEY: &str = "\"resourceVersion\":\"";
const SENT_KEY: &str = "\"benchSentNs\":\"";
const TYPE_KEY: &str = "\"type\":\"";

// ---------- watchers ----------

/// What one watcher saw.
struct Watched {
    /// resourceVersions of the events, in arrival order.
    rvs: Vec<u64>,
    /// Send-to-receipt latency of each event, nanoseconds.
    latencies: Vec<u64>,
    /// When the last event arrived (nanoseconds since the base instant).
    last_receipt: u64,
    /// Why the watch ended early, if it did.
    error: Option<String>,
}

/// Opens a watch, reports readiness (or failure) through `ready`, then reads `expected` events.
async fn watcher(
    addr: SocketAddr,
    since_rv: u64,
    expected: usize,
    base: Instant,
    ready: tokio::sync::mpsc::Sender<Result<(), String>>,
    progress: Arc<Progress>,
    index: usize,
) -> Watched {
    let mut watched = Watched {
        rvs: Vec::with_capacity(expected),
        latencies: Vec::with_capacity(expected),
        last_receipt: 0,
        error: None,
    };
    let path =
        format!("/api/v1/namespaces/{NAMESPACE}/configmaps?watch=true&resourceVersion={since_rv}");
    let opened = async {
        let mut conn = Conn::connect(addr).await?;
        conn.send("GET", &path, None).await?;
        let head = conn.read_head().await?;
        if head.status != 200 || !head.chunked {
            let body = conn.read_body(&head).await.unwrap_or_default();
            return Err(format!(
                "watch answered {} (chunked: {}): {}",
                head.status,
                head.chunked,
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(conn)
    }
    .await;
    let mut conn = match opened {
        Ok(conn) => {
            progress.watchers_ready.fetch_add(1, Ordering::Relaxed);
            let _ = ready.send(Ok(())).await;
            conn
        }
        Err(e) => {
            let _ = ready.send(Err(e.clone())).await;
            watched.error = Some(e);
            return watched;
        }
    };
    drop(ready);
    let mut buffer = Vec::with_capacity(64 * 1024);
    while watched.rvs.len() < expected {
        match conn.read_chunk(&mut buffer).await {
            Ok(true) => {}
            Ok(false) => {
                watched.error = Some("the sandbox ended the watch stream".into());
                break;
            }
            Err(e) => {
                watched.error = Some(e);
                break;
            }
        }
        let received = nanos_since(base);
        // Whole lines only (the sandbox sends one per chunk, but chunks are not promised to
        // align with lines); JSON text never holds a raw newline.
        let Some(last_newline) = buffer.iter().rposition(|&b| b == b'\n') else {
            continue;
        };
        let Ok(text) = std::str::from_utf8(&buffer[..=last_newline]) else {
            watched.error = Some("a watch event is not UTF-8".into());
            return watched;
        };
        for line in text.split_terminator('\n') {
            if let Err(e) = record_event(line, received, &mut watched) {
                watched.error = Some(e);
                return watched;
            }
        }
        buffer.drain(..=last_newline);
        progress.events[index].store(watched.rvs.len(), Ordering::Relaxed);
        watched.last_receipt = received;
    }
    watched
}

fn record_event(text: &str, received: u64, watched: &mut Watched) -> Result<(), String> {
    if text.trim().is_empty() {
        return Ok(());
    }
    match event_type(text) {
        Some("ADDED") => {}
        Some("ERROR") => return Err(format!("the watch got an ERROR event: {text}")),
        other => return Err(format!("unexpected watch event type {other:?}: {text}")),
    }
    let rv = number_after(text, RV_KEY).ok_or_else(|| format!("no resourceVersion in {text}"))?;
    let sent = number_after(text, SENT_KEY).ok_or_else(|| format!("no {SENT_KEY} in {text}"))?;
    watched.rvs.push(rv);
    watched.latencies.push(received.saturating_sub(sent));
    Ok(())
}

// ---------- writers ----------

/// What one writer did.
struct Written {
    /// resourceVersions the creates returned.
    rvs: Vec<u64>,
    /// Request latencies, nanoseconds.
    latencies: Vec<u64>,
}

async fn writer(
    addr: SocketAddr,
    total: usize,
    next: Arc<AtomicUsize>,
    base: Instant,
    progress: Arc<Progress>,
) -> Result<Written, String> {
    let mut conn = Conn::connect(addr).await?;
    let path = format!("/api/v1/namespaces/{NAMESPACE}/configmaps");
    let mut written = Written {
        rvs: Vec::new(),
        latencies: Vec::new(),
    };
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= total {
            return Ok(written);
        }
        let sent = nanos_since(base);
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"bench-{i:07}"}},"data":{{"seq":"{i}","benchSentNs":"{sent}"}}}}"#
        );
        let (status, response) = conn.request("POST", &path, Some(&body)).await?;
        let done = nanos_since(base);
        let text = String::from_utf8_lossy(&response);
        if status != 201 {
            return Err(format!("creating bench-{i:07} answered {status}: {text}"));
        }
        let rv = number_after(&text, RV_KEY)
            .ok_or_else(|| format!("no resourceVersion in the create response {text}"))?;
        written.rvs.push(rv);
        written.latencies.push(done - sent);
        progress.writes_done.fetch_add(1, Ordering::Relaxed);
    }
}

// ---------- the run ----------

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

fn fail(message: &str) -> ExitCode {
    eprintln!("bench_sandbox: {message}");
    ExitCode::from(1)
}

async fn run(options: Options, progress: Arc<Progress>) -> ExitCode {
    let sandbox = Sandbox::start().await.expect("starting the sandbox");
    let addr = sandbox.addr();
    assert!(
        addr.ip().is_loopback(),
        "the sandbox must listen on loopback"
    );
    let base = Instant::now();
    println!(
        "bench_sandbox: {} writes from {} writers, {} watchers, sandbox at {} (in-process, 2 tokio workers, {} CPUs)",
        options.writes,
        options.concurrency,
        options.watchers,
        sandbox.url(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );

    // The namespace; its resourceVersion is where the watches start.
    let mut setup = Conn::connect(addr)
        .await
        .expect("connecting to the sandbox");
    let namespace =
        format!(r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{NAMESPACE}"}}}}"#);
    let (status, body) = setup
        .request("POST", "/api/v1/namespaces", Some(&namespace))
        .await
        .expect("creating namespace bench");
    let body = String::from_utf8_lossy(&body);
    if status != 201 {
        return fail(&format!(
            "creating namespace {NAMESPACE} answered {status}: {body}"
        ));
    }
    let since_rv = number_after(&body, RV_KEY).expect("the namespace's resourceVersion");
    drop(setup);

    // The watches, all open before the first write.
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(options.watchers);
    let watchers: Vec<JoinHandle<Watched>> = (0..options.watchers)
        .map(|index| {
            tokio::spawn(watcher(
                addr,
                since_rv,
                options.writes,
                base,
                ready_tx.clone(),
                progress.clone(),
                index,
            ))
        })
        .collect();
    drop(ready_tx);
    for _ in 0..options.watchers {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => return fail(&format!("opening a watch failed: {e}")),
            None => return fail("a watcher ended before opening its watch"),
        }
    }

    // The writes.
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_start = process_cpu_nanos();
    let machine_start = machine_cpu_nanos();
    let write_start = nanos_since(base);
    let writers: Vec<JoinHandle<Result<Written, String>>> = (0..options.concurrency)
        .map(|_| {
            tokio::spawn(writer(
                addr,
                options.writes,
                next.clone(),
                base,
                progress.clone(),
            ))
        })
        .collect();
    let mut write_rvs = Vec::with_capacity(options.writes);
    let mut write_latencies = Vec::with_capacity(options.writes);
    for handle in writers {
        match handle.await.expect("a writer task panicked") {
            Ok(written) => {
                write_rvs.extend(written.rvs);
                write_latencies.extend(written.latencies);
            }
            Err(e) => return fail(&format!("a write failed: {e}")),
        }
    }
    let write_end = nanos_since(base);
    let write_secs = (write_end - write_start) as f64 / 1e9;
    let writes_per_sec = options.writes as f64 / write_secs;
    write_rvs.sort_unstable();
    write_latencies.sort_unstable();
    println!(
        "writes:   {} ConfigMap creates in {:.3} s = {:.0} writes/s (request latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms)",
        options.writes,
        write_secs,
        writes_per_sec,
        ms(percentile(&write_latencies, 50.0)),
        ms(percentile(&write_latencies, 99.0)),
        ms(percentile(&write_latencies, 100.0)),
    );

    // What the watchers saw.
    let mut latencies = Vec::with_capacity(options.writes * options.watchers);
    let mut last_receipt = 0;
    let mut delivered = 0usize;
    let mut missed = 0usize;
    let mut complete = 0usize;
    let mut problems: Vec<String> = Vec::new();
    for (index, handle) in watchers.into_iter().enumerate() {
        let watched = handle.await.expect("a watcher task panicked");
        last_receipt = last_receipt.max(watched.last_receipt);
        let in_order = watched.rvs.windows(2).all(|w| w[0] < w[1]);
        let matched = watched
            .rvs
            .iter()
            .filter(|rv| write_rvs.binary_search(rv).is_ok())
            .count();
        let unexpected = watched.rvs.len() - matched;
        let this_missed = options.writes.saturating_sub(matched);
        delivered += matched;
        missed += this_missed;
        latencies.extend_from_slice(&watched.latencies);
        if in_order && unexpected == 0 && this_missed == 0 && watched.error.is_none() {
            complete += 1;
        } else {
            problems.push(format!(
                "watcher {index}: {} events, {this_missed} missed, {unexpected} unexpected, {}{}",
                watched.rvs.len(),
                if in_order { "in order" } else { "OUT OF ORDER" },
                watched
                    .error
                    .map(|e| format!(", ended with: {e}"))
                    .unwrap_or_default(),
            ));
        }
    }
    let cpu_used = cpu_start
        .zip(process_cpu_nanos())
        .map(|(a, b)| b.saturating_sub(a));
    let machine_used = machine_start
        .zip(machine_cpu_nanos())
        .map(|(a, b)| b.saturating_sub(a));
    latencies.sort_unstable();
    let delivery_secs = last_receipt.saturating_sub(write_start) as f64 / 1e9;
    println!(
        "delivery: {delivered} watch events in {delivery_secs:.3} s = {:.0} events/s (last event reached the last watcher {:.3} s after the last write returned)",
        delivered as f64 / delivery_secs.max(1e-9),
        last_receipt.saturating_sub(write_end) as f64 / 1e9,
    );
    let (p50, p90, p99, max) = (
        percentile(&latencies, 50.0),
        percentile(&latencies, 90.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 100.0),
    );
    println!(
        "fan-out latency (write sent -> event received, {} watcher×event pairs): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        ms(p50),
        ms(p90),
        ms(p99),
        ms(max),
    );
    if let Some(cpu) = cpu_used {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_write = cpu as f64 / options.writes as f64;
        println!(
            "cpu:      {:.2} s of CPU for writes and delivery ({:.2} cores busy) = {:.0} µs per write, {:.2} µs per delivered event; at this cost {cores} idle cores sustain at most ~{:.0} writes/s",
            cpu as f64 / 1e9,
            cpu as f64 / 1e9 / delivery_secs.max(1e-9),
            per_write / 1e3,
            cpu as f64 / 1e3 / delivered.max(1) as f64,
            cores as f64 * 1e9 / per_write.max(1.0),
        );
    }
    if let Some((machine, cpu)) = machine_used.zip(cpu_used) {
        let others = machine.saturating_sub(cpu) as f64 / 1e9 / delivery_secs.max(1e-9);
        println!("machine:  other processes kept ~{others:.2} cores busy during the run");
        if others > 0.25 {
            eprintln!(
                "bench_sandbox: warning: other processes shared the cores ({others:.2} cores busy); writes/s and latencies are understated, the per-event CPU cost is not"
            );
        }
    }
    for problem in problems.iter().take(10) {
        eprintln!("bench_sandbox: {problem}");
    }
    if problems.len() > 10 {
        eprintln!(
            "bench_sandbox: … and {} more watchers with problems",
            problems.len() - 10
        );
    }
    println!(
        "verify:   {complete}/{} watchers got all {} events in resourceVersion order",
        options.watchers, options.writes
    );
    println!(
        "sandbox bench: writes/s={writes_per_sec:.0} p50={:.2}ms p99={:.2}ms watchers={} events={delivered} missed={missed}",
        ms(p50),
        ms(p99),
        options.watchers,
    );
    drop(sandbox);
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse() {
        let args = |s: &str| parse_args(s.split_whitespace().map(str::to_string));
        let o = args("--writes 5 --watchers=3 --concurrency 2 --timeout-secs 9").expect("parse");
        assert_eq!(
            (o.writes, o.watchers, o.concurrency, o.timeout.as_secs()),
            (5, 3, 2, 9)
        );
        assert!(args("--writes 0").is_err());
        assert!(args("--bogus 1").is_err());
        assert!(args("--writes").is_err());
    }

    #[test]
    fn fields_are_scanned() {
        let line = r#"{"object":{"data":{"benchSentNs":"42","seq":"1"},"metadata":{"resourceVersion":"7"}},"type":"ADDED"}"#;
        assert_eq!(number_after(line, RV_KEY), Some(7));
        assert_eq!(number_after(line, SENT_KEY), Some(42));
        assert_eq!(event_type(line), Some("ADDED"));
        assert_eq!(number_after(line, "\"missing\":\""), None);
        assert_eq!(number_after(r#"{"a":"1","b":"x"}"#, "\"b\":\""), None);
        let led = r#"{"type":"ERROR","object":{"kind":"Status","code":410}}"#;
        assert_eq!(event_type(led), Some("ERROR"));
    }
}
