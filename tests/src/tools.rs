//! The outside tools and upstream files that tests need, and what a test does when one is
//! missing.
//!
//! - [`cert_manager_crds`]: cert-manager's own CRDs, from the pinned release's Go module
//!   (`scripts/versions.env`), fetched through the Go module proxy into Go's module cache.
//!   Nothing upstream is copied into the repository.
//! - [`missing_tool`]: a missing kubectl or helm is a failure under CI (`CI=true`) and after
//!   `make test` installed the tools (`RELAY_TLS_REQUIRE_TOOLS=1`); elsewhere the test is
//!   skipped, saying why.
//!
//! What does not live here: finding the kubectl and helm binaries ([`crate::processes::kubectl`],
//! [`crate::charts::helm`]), installing them (`scripts/tools.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The file that pins every upstream version the project fetches.
const VERSIONS: &str = include_str!("../../scripts/versions.env");

/// cert-manager's Go module, whose `deploy/crds/` holds its CRDs.
pub const CERT_MANAGER_MODULE: &str = "github.com/cert-manager/cert-manager";

/// The value of `name=` in `scripts/versions.env`.
pub fn pinned_version(name: &str) -> Option<&'static str> {
    VERSIONS
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .find(|(key, _)| key.trim() == name)
        .map(|(_, value)| value.trim())
}

/// The pinned cert-manager release, e.g. `v1.21.2`.
pub fn cert_manager_version() -> &'static str {
    pinned_version("CERT_MANAGER_VERSION")
        .unwrap_or_else(|| panic!("scripts/versions.env does not set CERT_MANAGER_VERSION"))
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

/// The folder of cert-manager's CRDs of the pinned release: `$RELAY_CERT_MANAGER_CRDS` when set,
/// else `deploy/crds/` of the module `github.com/cert-manager/cert-manager@<pinned>`, downloaded
/// through the Go module proxy on first use (`go mod download`; later runs find it in Go's
/// module cache). Panics, saying what to install, when Go is missing or the download fails.
pub fn cert_manager_crds() -> PathBuf {
    static CRDS: OnceLock<PathBuf> = OnceLock::new();
    CRDS.get_or_init(|| {
        if let Ok(dir) = std::env::var("RELAY_CERT_MANAGER_CRDS") {
            return PathBuf::from(dir);
        }
        let module = go_module_dir(CERT_MANAGER_MODULE, cert_manager_version())
            .unwrap_or_else(|e| panic!("{e}"));
        let crds = module.join("deploy/crds");
        assert!(
            crds.join("cert-manager.io_certificaterequests.yaml")
                .is_file(),
            "{} holds no cert-manager CRDs; is {} the right module?",
            crds.display(),
            CERT_MANAGER_MODULE
        );
        crds
    })
    .clone()
}

/// One of cert-manager's CRD files (for example `cert-manager.io_certificates.yaml`).
pub fn cert_manager_crd(file: &str) -> PathBuf {
    cert_manager_crds().join(file)
}

/// The extracted folder of `module@version` in Go's module cache, downloading it first when
/// absent.
fn go_module_dir(module: &str, version: &str) -> Result<PathBuf, String> {
    let wanted = format!("{module}@{version}");
    // Outside any Go module, so no go.mod nearby changes what is resolved.
    let output = Command::new("go")
        .args(["mod", "download", "-json", &wanted])
        .current_dir(std::env::temp_dir())
        .env("GOFLAGS", "-mod=mod")
        .output()
        .map_err(|e| {
            format!(
                "cannot run `go mod download {wanted}`: {e}; install Go (`make tools` does) to \
                 fetch cert-manager's CRDs through the Go module proxy"
            )
        })?;
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "`go mod download -json {wanted}` printed no JSON ({e}); it said: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    if let Some(error) = json["Error"].as_str() {
        return Err(format!("`go mod download {wanted}` failed: {error}"));
    }
    let dir = json["Dir"]
        .as_str()
        .ok_or_else(|| format!("`go mod download -json {wanted}` named no Dir: {json}"))?;
    let dir = Path::new(dir).to_path_buf();
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "`go mod download {wanted}` named {} but it is not a folder",
            dir.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinned_cert_manager_version_is_a_release_tag() {
        let version = cert_manager_version();
        let numbers: Vec<&str> = version
            .strip_prefix('v')
            .expect("a v prefix")
            .split('.')
            .collect();
        assert_eq!(numbers.len(), 3, "{version}");
        assert!(
            numbers.iter().all(|n| n.parse::<u32>().is_ok()),
            "{version}"
        );
        assert_eq!(pinned_version("NO_SUCH_VERSION"), None);
    }
}
