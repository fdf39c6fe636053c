//! This repository's Helm charts (`deploy/charts/relay-issuer`, `deploy/charts/relay-agent`)
//! rendered with the real `helm` binary, for the chart tests and for end-to-end tests that start
//! the binaries exactly as the charts would run them.
//!
//! - [`helm`]: where the helm binary is (`$RELAY_HELM`, else `target/tools/bin/helm`).
//! - [`template`] / [`render`]: `helm template` output, raw or as one JSON value per object.
//! - [`rendered_command`] / [`render_chart`] + [`Rendered::command`]: the container args and env
//!   of one Deployment, with downward-API env as `$(fieldRef:<path>)` markers that
//!   [`resolve_env`] fills in.
//!
//! What does not live here: assertions about the charts (tests/tests/helm_charts.rs).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The issuer chart: `relay-issuer controller` and `relay-issuer server`, CRDs, RBAC.
pub const ISSUER_CHART: &str = "relay-issuer";
/// The agent chart: `relay-agent`, its RBAC and the client Certificate.
pub const AGENT_CHART: &str = "relay-agent";

/// The env value standing for the pod's namespace (downward API `metadata.namespace`).
pub const POD_NAMESPACE_REF: &str = "$(fieldRef:metadata.namespace)";
/// The env value standing for the pod's name (downward API `metadata.name`).
pub const POD_NAME_REF: &str = "$(fieldRef:metadata.name)";
/// The marker of the Pod's UID.
pub const POD_UID_REF: &str = "$(fieldRef:metadata.uid)";

/// A container's command line as rendered: (args, env). Env from the downward API is the
/// marker `$(fieldRef:<fieldPath>)`, e.g. [`POD_NAMESPACE_REF`] (see [`resolve_env`]).
pub type RenderedCommand = (Vec<String>, Vec<(String, String)>);

/// Why rendering failed.
#[derive(Debug)]
pub enum ChartError {
    /// No helm binary (run `make tools`, or set `RELAY_HELM`).
    HelmMissing,
    /// helm could not be started.
    Io(std::io::Error),
    /// helm failed; `stderr` is what it said (schema violations, `fail` messages).
    Helm {
        /// The arguments helm was given.
        args: Vec<String>,
        /// helm's standard error.
        stderr: String,
    },
    /// A rendered document is not YAML (or not an object).
    Yaml {
        /// The document's `# Source:` line, or its index.
        source: String,
        /// The parser's message.
        message: String,
    },
    /// The rendered manifests lack what was asked for.
    NotFound(String),
}

impl std::fmt::Display for ChartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::HelmMissing => write!(
                f,
                "helm not found at {} (run `make tools`, or set RELAY_HELM)",
                default_helm_path().display()
            ),
            Self::Io(e) => write!(f, "cannot run helm: {e}"),
            Self::Helm { args, stderr } => write!(f, "helm {} failed:\n{stderr}", args.join(" ")),
            Self::Yaml { source, message } => {
                write!(f, "rendered document {source} does not parse: {message}")
            }
            Self::NotFound(what) => write!(f, "not rendered: {what}"),
        }
    }
}

impl std::error::Error for ChartError {}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The directory of chart `name` (`relay-issuer` or `relay-agent`).
pub fn chart_dir(name: &str) -> PathBuf {
    repo_root().join("deploy/charts").join(name)
}

fn default_helm_path() -> PathBuf {
    kube_sandbox::kubectl::target_dir().join("tools/bin/helm")
}

/// The helm binary: `$RELAY_HELM`, else `target/tools/bin/helm` (`make tools` installs it);
/// `None` when absent.
pub fn helm() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("RELAY_HELM") {
        return Some(PathBuf::from(path));
    }
    let path = default_helm_path();
    path.exists().then_some(path)
}

/// Runs helm with `args` (HOME-independent: its cache, config and data go to a temporary
/// directory); returns its standard output.
pub fn run_helm(args: &[String]) -> Result<String, ChartError> {
    let binary = helm().ok_or(ChartError::HelmMissing)?;
    let scratch = std::env::temp_dir().join(format!("relay-helm-{}", std::process::id()));
    let out = Command::new(binary)
        .args(args)
        .env("HELM_CACHE_HOME", scratch.join("cache"))
        .env("HELM_CONFIG_HOME", scratch.join("config"))
        .env("HELM_DATA_HOME", scratch.join("data"))
        .output()
        .map_err(ChartError::Io)?;
    if !out.status.success() {
        return Err(ChartError::Helm {
            args: args.to_vec(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `helm template <release> <chart dir> --namespace <namespace> --set k=v… <extra…>`: the raw
/// multi-document YAML.
pub fn template(
    chart: &str,
    release: &str,
    namespace: &str,
    sets: &[(&str, &str)],
    extra: &[&str],
) -> Result<String, ChartError> {
    let mut args: Vec<String> = vec![
        "template".into(),
        release.into(),
        chart_dir(chart).display().to_string(),
        "--namespace".into(),
        namespace.into(),
    ];
    for (key, value) in sets {
        args.push("--set".into());
        args.push(format!("{key}={value}"));
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    run_helm(&args)
}

/// Splits helm's output into documents (on lines that are exactly `---`) and parses each
/// non-empty one; empty and comment-only documents are skipped.
pub fn parse_manifests(yaml: &str) -> Result<Vec<Value>, ChartError> {
    let mut documents: Vec<String> = vec![String::new()];
    for line in yaml.lines() {
        if line.trim_end() == "---" {
            documents.push(String::new());
        } else if let Some(last) = documents.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    let mut objects = Vec::new();
    for (index, document) in documents.iter().enumerate() {
        let has_content = document
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        if !has_content {
            continue;
        }
        let source = document
            .lines()
            .find_map(|l| l.strip_prefix("# Source: "))
            .map(str::to_string)
            .unwrap_or_else(|| format!("#{index}"));
        let value: Value = serde_saphyr::from_str(document).map_err(|e| ChartError::Yaml {
            source: source.clone(),
            message: e.to_string(),
        })?;
        if !value.is_object() {
            return Err(ChartError::Yaml {
                source,
                message: format!("not an object: {value}"),
            });
        }
        objects.push(value);
    }
    Ok(objects)
}

/// [`template`], parsed by [`parse_manifests`].
pub fn render(
    chart: &str,
    release: &str,
    namespace: &str,
    sets: &[(&str, &str)],
    extra: &[&str],
) -> Result<Vec<Value>, ChartError> {
    parse_manifests(&template(chart, release, namespace, sets, extra)?)
}

/// The object of `kind` named `name` among `objects`.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects.iter().find(|o| {
        o.get("kind").and_then(Value::as_str) == Some(kind)
            && o.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
    })
}

/// Every object of `kind` among `objects`.
pub fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects
        .iter()
        .filter(|o| o.get("kind").and_then(Value::as_str) == Some(kind))
        .collect()
}

/// The first container of Deployment `deployment` in `objects`: (args, env). Env from the
/// downward API is returned as the marker `$(fieldRef:<fieldPath>)` (see [`resolve_env`]);
/// other `valueFrom` sources are refused.
pub fn container_command(
    objects: &[Value],
    deployment: &str,
) -> Result<RenderedCommand, ChartError> {
    let object = find(objects, "Deployment", deployment).ok_or_else(|| {
        let names: Vec<&str> = of_kind(objects, "Deployment")
            .iter()
            .filter_map(|d| d.pointer("/metadata/name").and_then(Value::as_str))
            .collect();
        ChartError::NotFound(format!(
            "Deployment {deployment} (rendered Deployments: {names:?})"
        ))
    })?;
    let container = object
        .pointer("/spec/template/spec/containers/0")
        .ok_or_else(|| ChartError::NotFound(format!("a container in Deployment {deployment}")))?;
    let args = container
        .get("args")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    let mut env = Vec::new();
    for entry in container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = entry
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let value = if let Some(value) = entry.get("value").and_then(Value::as_str) {
            value.to_string()
        } else if let Some(path) = entry
            .pointer("/valueFrom/fieldRef/fieldPath")
            .and_then(Value::as_str)
        {
            format!("$(fieldRef:{path})")
        } else if entry.get("valueFrom").is_none() {
            String::new()
        } else {
            return Err(ChartError::NotFound(format!(
                "a value for env {name} of Deployment {deployment} (only value and fieldRef are supported): {entry}"
            )));
        };
        env.push((name, value));
    }
    Ok((args, env))
}

/// Renders `chart` as release `chart` (so the Deployments are `relay-issuer-controller`,
/// `relay-issuer-server` and `relay-agent`) into `release_namespace` with `--set` values
/// `sets`, and returns the args and env of Deployment `deployment`'s container, e.g.
/// `(["controller", "--leader-elect=true", …], [("POD_NAMESPACE",
/// "$(fieldRef:metadata.namespace)"), …])`. Start the binary with these args and [`resolve_env`]'s env to run it exactly as the
/// chart does.
pub fn rendered_command(
    chart: &str,
    release_namespace: &str,
    sets: &[(&str, &str)],
    deployment: &str,
) -> Result<RenderedCommand, ChartError> {
    let objects = render(chart, chart, release_namespace, sets, &[])?;
    container_command(&objects, deployment)
}

/// `env` with the downward-API markers filled in: [`POD_NAMESPACE_REF`] → `namespace`,
/// [`POD_NAME_REF`] → `pod_name`, [`POD_UID_REF`] → empty (a process outside Kubernetes has
/// no Pod to own its objects; an owner that does not exist would have them collected at once);
/// other values are left as they are.
pub fn resolve_env(
    env: &[(String, String)],
    namespace: &str,
    pod_name: &str,
) -> Vec<(String, String)> {
    env.iter()
        .map(|(name, value)| {
            let value = match value.as_str() {
                POD_NAMESPACE_REF => namespace.to_string(),
                POD_NAME_REF => pod_name.to_string(),
                POD_UID_REF => String::new(),
                _ => value.clone(),
            };
            (name.clone(), value)
        })
        .collect()
}

/// What a chart rendered, for callers that need both the objects and the commands (e.g. the
/// demo creates the objects and starts the binaries).
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The chart's name.
    pub chart: String,
    /// The release name (the chart's name, see [`render_chart`]).
    pub release: String,
    /// The release namespace.
    pub namespace: String,
    /// Every rendered object (not the CRDs: helm installs those from the chart's `crds/`).
    pub objects: Vec<Value>,
}

impl Rendered {
    /// The object of `kind` named `name`.
    pub fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        find(&self.objects, kind, name)
    }

    /// Every object of `kind`.
    pub fn of_kind(&self, kind: &str) -> Vec<&Value> {
        of_kind(&self.objects, kind)
    }

    /// The args and env of Deployment `deployment`'s container (see [`container_command`]).
    pub fn command(&self, deployment: &str) -> Result<RenderedCommand, ChartError> {
        container_command(&self.objects, deployment)
    }
}

/// Renders `chart` as release `chart` (Deployments `relay-issuer-controller`,
/// `relay-issuer-server`, `relay-agent`) into `namespace` with `--set` values `sets`.
pub fn render_chart(
    chart: &str,
    namespace: &str,
    sets: &[(&str, String)],
) -> Result<Rendered, ChartError> {
    let sets: Vec<(&str, &str)> = sets.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Ok(Rendered {
        chart: chart.to_string(),
        release: chart.to_string(),
        namespace: namespace.to_string(),
        objects: render(chart, chart, namespace, &sets, &[])?,
    })
}

/// Writes `objects` as one multi-document YAML file (JSON documents, which YAML reads) for
/// `kubectl apply -f`.
pub fn write_manifests(path: &Path, objects: &[&Value]) -> std::io::Result<()> {
    let text: Vec<String> = objects.iter().map(|o| o.to_string()).collect();
    std::fs::write(path, text.join("\n---\n"))
}

/// `args` with each `(flag, value)` of `overrides` applied: an existing `--flag value` or
/// `--flag=value` gets the new value, a missing flag is appended. Tests and the demo run the
/// rendered commands on loopback addresses and with short intervals this way.
pub fn with_overrides(mut args: Vec<String>, overrides: &[(&str, String)]) -> Vec<String> {
    for (flag, value) in overrides {
        let prefix = format!("{flag}=");
        match args
            .iter()
            .position(|a| a == flag || a.starts_with(&prefix))
        {
            Some(i) if args[i].starts_with(&prefix) => args[i] = format!("{flag}={value}"),
            Some(i) if i + 1 < args.len() => args[i + 1] = value.clone(),
            _ => {
                args.push(flag.to_string());
                args.push(value.clone());
            }
        }
    }
    args
}

impl Rendered {
    /// A [`std::process::Command`] for Deployment `deployment`'s container: `binary` with the
    /// rendered args (then `overrides`, see [`with_overrides`]) and env (downward-API values
    /// filled with this release's namespace and `pod_name`).
    pub fn process_command(
        &self,
        binary: &Path,
        deployment: &str,
        overrides: &[(&str, String)],
        pod_name: &str,
    ) -> Result<std::process::Command, ChartError> {
        let (args, env) = self.command(deployment)?;
        let mut command = std::process::Command::new(binary);
        command.args(with_overrides(args, overrides));
        command.envs(resolve_env(&env, &self.namespace, pod_name));
        Ok(command)
    }
}

#[cfg(test)]
mod override_tests {
    use super::with_overrides;

    #[test]
    fn overrides_replace_both_flag_forms_and_append_missing_flags() {
        let args: Vec<String> = ["server", "--listen", "0.0.0.0:9900", "--leader-elect=true"]
            .map(String::from)
            .to_vec();
        let out = with_overrides(
            args,
            &[
                ("--listen", "127.0.0.1:1".into()),
                ("--leader-elect", "false".into()),
                ("--admin-address", "127.0.0.1:2".into()),
            ],
        );
        assert_eq!(
            out,
            [
                "server",
                "--listen",
                "127.0.0.1:1",
                "--leader-elect=false",
                "--admin-address",
                "127.0.0.1:2"
            ]
        );
    }
}
