//! The container images of `make images`, run with podman as the charts would run them: the
//! image a rendered Deployment names, its args and env, and the container `securityContext`
//! (user, read-only root filesystem, dropped capabilities, no privilege escalation) translated
//! to `podman run` flags. podman is started through `scripts/images.sh podman`, so the flags
//! these machines need (runc, cgroupfs, the containers' rlimits) live in one place.
//!
//! What does not live here: building the images (scripts/images.sh) and the assertions
//! (tests/tests/images.rs).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::charts::{ChartError, Rendered, repo_root, resolve_env, with_overrides};
use crate::processes::Process;

/// Where a container finds the kubeconfig mounted into it.
pub const KUBECONFIG_IN_CONTAINER: &str = "/etc/relay-tls/kubeconfig";

/// `podman` with this project's flags (`scripts/images.sh podman …`).
pub fn podman() -> Command {
    let mut command = Command::new(repo_root().join("scripts/images.sh"));
    command.arg("podman");
    command
}

/// Runs `podman args…` to completion.
pub fn podman_output(args: &[&str]) -> std::io::Result<Output> {
    podman().args(args).output()
}

/// Whether podman is installed.
pub fn podman_present() -> bool {
    Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether podman's local storage holds `image`.
pub fn image_present(image: &str) -> bool {
    podman_output(&["image", "exists", image]).is_ok_and(|o| o.status.success())
}

/// `podman image inspect` of `image`, the first element.
pub fn inspect(image: &str) -> Result<Value, String> {
    let output = podman_output(&["image", "inspect", image]).map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let all: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
    all.get(0)
        .cloned()
        .ok_or_else(|| format!("podman image inspect {image}: empty"))
}

/// A running container, removed (`podman rm -f`) when dropped.
pub struct Container {
    /// The `podman run` client, whose output is the container's.
    pub process: Process,
    /// The container's name.
    pub name: String,
}

impl Container {
    /// `podman container inspect` of it, the first element.
    pub fn inspect(&self) -> Result<Value, String> {
        let output =
            podman_output(&["container", "inspect", &self.name]).map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        let all: Value = serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())?;
        all.get(0)
            .cloned()
            .ok_or_else(|| format!("podman container inspect {}: empty", self.name))
    }

    /// Stops it as Kubernetes would (SIGTERM, then the exit code).
    pub async fn terminate(&mut self, within: Duration) -> Result<Option<i32>, String> {
        let stopped = podman_output(&[
            "stop",
            "-t",
            &within.as_secs().max(1).to_string(),
            &self.name,
        ])
        .map_err(|e| e.to_string())?;
        if !stopped.status.success() {
            return Err(format!(
                "podman stop {}: {}",
                self.name,
                String::from_utf8_lossy(&stopped.stderr)
            ));
        }
        // `podman run` exits with the container's status once the runtime has stopped it;
        // signalling the client too would race with that and report the signal instead.
        Ok(self.process.wait_exit(within).await?.code())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman_output(&["rm", "-f", "-t", "0", &self.name]);
    }
}

/// The `podman run` flags that enforce a container `securityContext` (merged over the pod's):
/// `--user uid:gid`, `--read-only`, `--cap-drop` and `no-new-privileges`. Anything it cannot
/// express is refused rather than silently dropped.
pub fn security_flags(pod: &Value, container: &Value) -> Result<Vec<String>, ChartError> {
    let field = |name: &str| container.get(name).or_else(|| pod.get(name));
    let mut flags = Vec::new();
    let user = field("runAsUser").and_then(Value::as_u64);
    let group = field("runAsGroup").and_then(Value::as_u64);
    match (user, group) {
        (Some(user), Some(group)) => flags.push(format!("--user={user}:{group}")),
        (Some(user), None) => flags.push(format!("--user={user}")),
        _ => {}
    }
    if field("runAsNonRoot").and_then(Value::as_bool) == Some(true) && user.is_none_or(|u| u == 0) {
        return Err(ChartError::NotFound(
            "a non-zero runAsUser for runAsNonRoot: true".into(),
        ));
    }
    if container
        .get("readOnlyRootFilesystem")
        .and_then(Value::as_bool)
        == Some(true)
    {
        flags.push("--read-only".into());
    }
    if container
        .get("allowPrivilegeEscalation")
        .and_then(Value::as_bool)
        == Some(false)
    {
        flags.push("--security-opt=no-new-privileges".into());
    }
    for capability in container
        .pointer("/capabilities/drop")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        flags.push(format!("--cap-drop={capability}"));
    }
    if let Some(add) = container
        .pointer("/capabilities/add")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    {
        return Err(ChartError::NotFound(format!(
            "support for added capabilities {add:?}"
        )));
    }
    Ok(flags)
}

impl Rendered {
    /// The image Deployment `deployment`'s container names.
    pub fn image(&self, deployment: &str) -> Result<String, ChartError> {
        self.find("Deployment", deployment)
            .and_then(|d| d.pointer("/spec/template/spec/containers/0/image"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ChartError::NotFound(format!("the image of Deployment {deployment}")))
    }

    /// A `podman run` of Deployment `deployment`'s container as the chart runs it: its image,
    /// the rendered args (then `overrides`, see [`with_overrides`]), env (downward API filled
    /// with this release's namespace and `pod_name`), its security context, host networking
    /// (the tests' servers listen on loopback) and `kubeconfig` mounted read-only at
    /// [`KUBECONFIG_IN_CONTAINER`].
    pub fn container_command(
        &self,
        deployment: &str,
        overrides: &[(&str, String)],
        pod_name: &str,
        kubeconfig: &Path,
    ) -> Result<(Command, String), ChartError> {
        let object = self
            .find("Deployment", deployment)
            .ok_or_else(|| ChartError::NotFound(format!("Deployment {deployment}")))?;
        let pod = object
            .pointer("/spec/template/spec/securityContext")
            .cloned()
            .unwrap_or(Value::Null);
        let container = object
            .pointer("/spec/template/spec/containers/0/securityContext")
            .cloned()
            .unwrap_or(Value::Null);
        let (args, env) = self.command(deployment)?;
        let name = format!(
            "relay-test-{pod_name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        );
        let mut command = podman();
        command.args(["run", "--rm", "--name", &name, "--network=host"]);
        command.args(security_flags(&pod, &container)?);
        command.arg(format!(
            "--volume={}:{KUBECONFIG_IN_CONTAINER}:ro",
            kubeconfig.display()
        ));
        command.arg(format!("--env=KUBECONFIG={KUBECONFIG_IN_CONTAINER}"));
        for (key, value) in resolve_env(&env, &self.namespace, pod_name) {
            command.arg(format!("--env={key}={value}"));
        }
        command.arg(self.image(deployment)?);
        command.args(with_overrides(args, overrides));
        Ok((command, name))
    }

    /// Starts [`Rendered::container_command`], its output logged under `log_dir`.
    pub fn start_container(
        &self,
        deployment: &str,
        overrides: &[(&str, String)],
        pod_name: &str,
        kubeconfig: &Path,
        log_dir: &Path,
    ) -> Result<Container, Box<dyn std::error::Error + Send + Sync>> {
        let (command, name) =
            self.container_command(deployment, overrides, pod_name, kubeconfig)?;
        let process = Process::spawn(pod_name, command, log_dir)?;
        Ok(Container { process, name })
    }
}

/// A copy of `kubeconfig` that any user may read (the containers run as 65532), in `dir`.
pub fn readable_kubeconfig(kubeconfig: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let copy = dir.join("kubeconfig");
    std::fs::copy(kubeconfig, &copy)?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644))?;
    Ok(copy)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::security_flags;

    #[test]
    fn the_container_security_context_becomes_podman_flags_over_the_pods() {
        let pod = json!({"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532});
        let container = json!({
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
        });
        assert_eq!(
            security_flags(&pod, &container).unwrap(),
            [
                "--user=65532:65532",
                "--read-only",
                "--security-opt=no-new-privileges",
                "--cap-drop=ALL",
            ]
        );
        // The container's own user wins over the pod's.
        let flags = security_flags(&pod, &json!({"runAsUser": 1000})).unwrap();
        assert_eq!(flags, ["--user=1000:65532"]);
        // What podman flags cannot express here is refused, not dropped.
        assert!(security_flags(&json!({"runAsNonRoot": true}), &json!({})).is_err());
        assert!(security_flags(&pod, &json!({"capabilities": {"add": ["NET_ADMIN"]}})).is_err());
    }
}
