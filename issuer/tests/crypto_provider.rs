//! The dependency check: ring is the one crypto provider, and aws-lc-rs never creeps in.
//!
//! kube, rustls, tokio-rustls, rcgen, x509-parser and tonic each default to one provider or the
//! other; with both compiled in, no default provider is installed and rustls' builders panic.

use std::process::Command;

fn workspace_packages() -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let output = Command::new(cargo)
        .args([
            "tree",
            "--workspace",
            "--locked",
            "--offline",
            "--prefix",
            "none",
            "-e",
            "all",
            "--format",
            "{p}",
            "--manifest-path",
            manifest,
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn only_ring_is_compiled_in() {
    let packages = workspace_packages();
    let aws: Vec<&String> = packages
        .iter()
        .filter(|p| p.starts_with("aws-lc"))
        .collect();
    assert!(
        aws.is_empty(),
        "aws-lc-rs crept into the dependency tree: {aws:?}; set default-features = false and the ring feature on the crate that pulled it in (cargo tree -i aws-lc-rs)"
    );
    assert!(
        packages.iter().any(|p| p == "ring"),
        "ring is missing from the dependency tree"
    );
    assert!(
        !packages.iter().any(|p| p == "openssl-sys"),
        "openssl-sys crept into the dependency tree"
    );
}

#[test]
fn the_ring_provider_installs() {
    relay_issuer::install_crypto_provider();
    assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    // A second install is harmless.
    relay_issuer::install_crypto_provider();
}
