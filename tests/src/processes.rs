//! Real processes for end-to-end tests: building and starting this workspace's binaries
//! (`relay-issuer`, `relay-agent`) against a sandbox kubeconfig, capturing their logs to files,
//! talking to their admin servers, stopping them with SIGTERM.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// This workspace's target directory.
fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")))
}

/// The debug binary `name` (`relay-issuer` or `relay-agent`); both are built once per test
/// process.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "-q",
                "-p",
                "relay-issuer",
                "--bin",
                "relay-issuer",
                "-p",
                "relay-agent",
                "--bin",
                "relay-agent",
            ])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the binaries failed");
    });
    target_dir().join("debug").join(name)
}

/// The kubectl binary: `$RELAY_KUBECTL`, else `target/tools/bin/kubectl` (`make tools`
/// installs it); `None` when absent.
pub fn kubectl() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("RELAY_KUBECTL") {
        return Some(PathBuf::from(path));
    }
    let path = target_dir().join("tools/bin/kubectl");
    path.exists().then_some(path)
}

/// The real kubectl pointed at one sandbox, with its own cache and working directories; for
/// tests that use kubectl as an independent client.
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    cache: tempfile::TempDir,
    dir: tempfile::TempDir,
}

impl Kubectl {
    /// kubectl for `kubeconfig`, or `None` after printing why `test` is skipped when kubectl is
    /// not installed (a failure instead under CI and after `make tools`: see
    /// [`crate::tools::missing_tool`]). Panics when kubectl's directories cannot be made.
    pub fn for_test(test: &str, kubeconfig: &Path) -> Option<Self> {
        let Some(binary) = kubectl() else {
            crate::tools::missing_tool(test, "kubectl not found (or set RELAY_KUBECTL)");
            return None;
        };
        match Self::new(binary, kubeconfig) {
            Ok(kubectl) => Some(kubectl),
            Err(e) => panic!("{test}: cannot make kubectl's temporary directories: {e}"),
        }
    }

    /// kubectl at `binary` for `kubeconfig`.
    pub fn new(binary: PathBuf, kubeconfig: &Path) -> std::io::Result<Self> {
        Ok(Self {
            binary,
            kubeconfig: kubeconfig.to_path_buf(),
            cache: tempfile::tempdir()?,
            dir: tempfile::tempdir()?,
        })
    }

    /// The command `kubectl ARGS`, run in this kubectl's working directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.cache.path())
            .current_dir(self.dir.path())
            .args(args);
        command
    }

    /// Runs `kubectl ARGS` to completion. On a multi-threaded tokio runtime the wait is marked
    /// blocking, so the sandbox (served from the same runtime) keeps answering.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        blocking(|| {
            self.command(args)
                .output()
                .unwrap_or_else(|e| panic!("cannot run kubectl {args:?}: {e}"))
        })
    }

    /// Starts `kubectl ARGS` (a `get --watch`) and hands out its output lines as they come;
    /// the process is killed when the result is dropped.
    pub fn stream(&self, args: &[&str]) -> KubectlStream {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start kubectl {args:?}: {e}"));
        let (sender, lines) = std::sync::mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        KubectlStream { child, lines }
    }

    /// `kubectl ARGS`'s standard output; the test fails with kubectl's stderr if it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes `text` to `name` in the working directory and returns its path as text.
    pub fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
        path.display().to_string()
    }

    /// The working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A running `kubectl ... --watch` and its output lines (see [`Kubectl::stream`]).
pub struct KubectlStream {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl KubectlStream {
    /// The next output line; the test fails if none comes within 20 s.
    pub fn next_line(&self) -> String {
        blocking(|| {
            self.lines
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|e| panic!("no kubectl output line within 20 s: {e}"))
        })
    }
}

impl Drop for KubectlStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `work`, marked as blocking when on a multi-threaded tokio runtime, so that a sandbox
/// served from the same runtime keeps answering.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_threaded {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// `GET path` on 127.0.0.1:`port`: (status code, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Some((code, body))
}

/// A child process whose stdout and stderr go to a log file; killed when dropped.
pub struct Process {
    /// Its name in messages.
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `command` (stdout and stderr to `log_dir/<name>.log`).
    pub fn spawn(name: &str, mut command: Command, log_dir: &Path) -> std::io::Result<Self> {
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)?;
        let child = command
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()?;
        Ok(Self {
            name: name.to_string(),
            child,
            log,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its admin server on `port` answers `/ready` with 200.
    pub async fn wait_ready(&mut self, port: u16, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some((200, _)) = http_get(port, "/ready") {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited ({status}) before ready:\n{}",
                    self.name,
                    self.log()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} not ready within {within:?}: {:?}\n{}",
                    self.name,
                    http_get(port, "/ready"),
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits up to `within` for it to exit.
    pub async fn terminate(&mut self, within: Duration) -> Result<ExitStatus, String> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not stop on SIGTERM:\n{}",
                    self.name,
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the real kubectl with `args` against `kubeconfig` (discovery cached in `cache_dir`),
/// feeding `stdin` when given; its stdout, or an error with its stderr.
pub fn kubectl_run(
    kubeconfig: &Path,
    cache_dir: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<String, String> {
    let binary = kubectl().ok_or("kubectl not found: run `make tools` first")?;
    let mut child = Command::new(binary)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("KUBECACHEDIR", cache_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run kubectl: {e}"))?;
    if let Some(input) = stdin
        && let Some(mut pipe) = child.stdin.take()
    {
        pipe.write_all(input.as_bytes())
            .map_err(|e| format!("cannot write to kubectl: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("kubectl did not finish: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
