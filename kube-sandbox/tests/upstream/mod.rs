//! Upstream CRDs these suites serve as real-world samples: cert-manager's, of the release the
//! workspace pins in `scripts/versions.env`, through the Go module proxy.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The folder of cert-manager's CRDs (`deploy/crds/` of its Go module at the pinned release).
pub fn cert_manager_crds() -> PathBuf {
    static CRDS: OnceLock<PathBuf> = OnceLock::new();
    CRDS.get_or_init(|| {
        let versions = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/versions.env");
        let text = std::fs::read_to_string(versions).expect("read scripts/versions.env");
        let version = kube_sandbox::go_module::pinned_version(&text, "CERT_MANAGER_VERSION")
            .expect("scripts/versions.env sets CERT_MANAGER_VERSION");
        kube_sandbox::go_module::module_dir("github.com/cert-manager/cert-manager", version)
            .unwrap_or_else(|e| panic!("{e}"))
            .join("deploy/crds")
    })
    .clone()
}
