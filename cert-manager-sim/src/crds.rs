//! cert-manager's own CRDs of the pinned release (`scripts/versions.env`), fetched through the
//! Go module proxy into Go's module cache (`go mod download`); nothing upstream is copied into
//! the repository. The simulator registers them; the type generation (`build.rs`) reads them.
//!
//! What does not live here: installing Go (`scripts/tools.sh`).

use std::path::PathBuf;
use std::sync::OnceLock;

/// The file that pins every upstream version the project fetches.
const VERSIONS: &str = include_str!("../../scripts/versions.env");

/// cert-manager's Go module, whose `deploy/crds/` holds its CRDs.
pub const CERT_MANAGER_MODULE: &str = "github.com/cert-manager/cert-manager";

/// The value of `name=` in `scripts/versions.env`.
pub fn pinned_version(name: &str) -> Option<&'static str> {
    kube_sandbox::go_module::pinned_version(VERSIONS, name)
}

/// The pinned cert-manager release, e.g. `v1.21.2`.
pub fn cert_manager_version() -> &'static str {
    pinned_version("CERT_MANAGER_VERSION")
        .unwrap_or_else(|| panic!("scripts/versions.env does not set CERT_MANAGER_VERSION"))
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
        let module =
            kube_sandbox::go_module::module_dir(CERT_MANAGER_MODULE, cert_manager_version())
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
