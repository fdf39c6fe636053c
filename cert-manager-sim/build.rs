//! Generates Rust types for cert-manager's `Certificate` and `CertificateRequest` from the CRDs
//! of the release pinned in `scripts/versions.env`, with kopium used as a library, into
//! `OUT_DIR` (`src/types.rs` includes them). Nothing generated is committed: a new pin
//! regenerates the types, and the compiler then names every use that no longer fits.
//!
//! The CRDs come from cert-manager's Go module through the Go module proxy (the same code as
//! `kube_sandbox::go_module`), or from `$RELAY_CERT_MANAGER_CRDS` when set.

#[path = "../kube-sandbox/src/go_module.rs"]
mod go_module;

use std::path::PathBuf;

use k8s_openapi_kopium::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kopium::{Derive, TypeGenerator};

/// The CRD files generated, and the module each becomes.
const KINDS: [(&str, &str); 2] = [
    ("cert-manager.io_certificates.yaml", "certificates"),
    (
        "cert-manager.io_certificaterequests.yaml",
        "certificaterequests",
    ),
];

fn main() {
    if let Err(message) = generate() {
        // A build script reports by panicking; the message says what to do.
        panic!("cert-manager-sim: {message}");
    }
}

fn generate() -> Result<(), String> {
    let versions = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/versions.env");
    println!("cargo:rerun-if-changed={versions}");
    println!("cargo:rerun-if-env-changed=RELAY_CERT_MANAGER_CRDS");
    let crds = match std::env::var("RELAY_CERT_MANAGER_CRDS") {
        Ok(dir) => PathBuf::from(dir),
        Err(_) => {
            let text = std::fs::read_to_string(versions)
                .map_err(|e| format!("cannot read {versions}: {e}"))?;
            let version = go_module::pinned_version(&text, "CERT_MANAGER_VERSION")
                .ok_or("scripts/versions.env does not set CERT_MANAGER_VERSION")?;
            go_module::module_dir("github.com/cert-manager/cert-manager", version)?
                .join("deploy/crds")
        }
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?);
    // `no_condition`: cert-manager's conditions require only `type` and `status`, so they get
    // their own types rather than k8s-openapi's `Condition` (whose `lastTransitionTime` and
    // `message` are required and would refuse a real status).
    let generator = TypeGenerator::builder()
        .no_condition(true)
        .derive(Derive::all("PartialEq"))
        .build();
    for (file, module) in KINDS {
        let path = crds.join(file);
        println!("cargo:rerun-if-changed={}", path.display());
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&text)
            .map_err(|e| format!("{} is not a CRD: {e}", path.display()))?;
        let source = generator
            .generate_rust_types_for(&crd, None::<&str>)
            .map_err(|e| format!("kopium could not generate {module}: {e}"))?;
        std::fs::write(out.join(format!("{module}.rs")), source)
            .map_err(|e| format!("cannot write {module}.rs: {e}"))?;
    }
    Ok(())
}
