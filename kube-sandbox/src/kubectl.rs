//! The real kubectl as an independent client of a sandbox, and what a test does when it is
//! missing.
//!
//! - [`kubectl`]: the binary: `$RELAY_KUBECTL`, else `<target>/tools/bin/kubectl` (where a
//!   workspace's own tool installer puts it).
//! - [`Kubectl`]: kubectl pointed at one kubeconfig with its own discovery cache and working
//!   folder; [`KubectlStream`] for `--watch`.
//! - [`missing_tool`]: a missing tool fails the test under CI (`CI=true`) and when
//!   `RELAY_TLS_REQUIRE_TOOLS=1` says the tools were just installed; elsewhere the test is
//!   skipped, saying why.
//!
//! What does not live here: installing kubectl (the workspace's tool installer).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The workspace's target directory: `$CARGO_TARGET_DIR`, else `target/` beside this crate.
pub fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")))
}

/// Whether a missing tool fails the test instead of skipping it: under CI, and when `make test`
/// has just installed the tools.
pub fn tools_required() -> bool {
    let set = |name: &str| {
        std::env::var(name)
            .map(|v| matches!(v.trim(), "true" | "1" | "yes"))
            .unwrap_or(false)
    };
    set("CI") || set("RELAY_TLS_REQUIRE_TOOLS")
}

/// Called by a test whose tool (`what`) is missing: panics when tools are required (see
/// [`tools_required`]), otherwise prints why `test` is skipped. The test returns after it.
pub fn missing_tool(test: &str, what: &str) {
    if tools_required() {
        panic!(
            "{test}: {what}. Under CI and after `make tools` a missing tool fails the test \
             instead of skipping it: `make tools` installs kubectl and helm."
        );
    }
    eprintln!("SKIPPED {test}: {what} (`make tools` installs it)");
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
            missing_tool(test, "kubectl not found (or set RELAY_KUBECTL)");
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
