//! The dependency check: ring is the one crypto provider, and aws-lc-rs never creeps in; and
//! the provider our binaries install as rustls' default is ring's, told apart from any other.
//!
//! kube, rustls, tokio-rustls, rcgen, x509-parser and tonic each default to one provider or the
//! other; with both compiled in, no default provider is installed and rustls' builders panic.

use rustls::crypto::CryptoProvider;
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

/// Why `provider` is not rustls' ring provider, or `Ok` when it is. rustls' providers differ in
/// their randomness and key-loading halves (Debug names `Ring` and `AwsLcRs`) and in their key
/// exchange groups (aws-lc-rs adds post-quantum hybrids); the whole provider is compared with
/// `rustls::crypto::ring::default_provider()` by its Debug form, which names every part.
fn ring_or_why_not(provider: &CryptoProvider) -> Result<(), String> {
    let ring = rustls::crypto::ring::default_provider();
    for (part, ours, reference) in [
        (
            "secure_random",
            format!("{:?}", provider.secure_random),
            format!("{:?}", ring.secure_random),
        ),
        (
            "key_provider",
            format!("{:?}", provider.key_provider),
            format!("{:?}", ring.key_provider),
        ),
        (
            "kx_groups",
            format!("{:?}", provider.kx_groups),
            format!("{:?}", ring.kx_groups),
        ),
        (
            "cipher_suites",
            format!("{:?}", provider.cipher_suites),
            format!("{:?}", ring.cipher_suites),
        ),
        (
            "the whole provider",
            format!("{provider:?}"),
            format!("{ring:?}"),
        ),
    ] {
        if ours != reference {
            return Err(format!("{part} is {ours}, ring's is {reference}"));
        }
    }
    Ok(())
}

#[test]
fn the_installed_default_provider_is_ring() {
    relay_issuer::install_crypto_provider();
    let installed = CryptoProvider::get_default().expect("a default provider is installed");
    assert_eq!(ring_or_why_not(installed), Ok(()));
    assert!(!installed.fips(), "ring is not a FIPS provider");
    // A second install is harmless and changes nothing.
    relay_issuer::install_crypto_provider();
    assert_eq!(
        ring_or_why_not(CryptoProvider::get_default().unwrap()),
        Ok(())
    );
}

/// The randomness and key loading of another provider: what aws-lc-rs' provider is made of,
/// as far as the check can see (rustls names that type `AwsLcRs`; the work is delegated to ring
/// here so the stand-in is usable).
#[derive(Debug)]
struct AwsLcRs;

impl rustls::crypto::SecureRandom for AwsLcRs {
    fn fill(&self, buf: &mut [u8]) -> Result<(), rustls::crypto::GetRandomFailed> {
        rustls::crypto::ring::default_provider()
            .secure_random
            .fill(buf)
    }
}

impl rustls::crypto::KeyProvider for AwsLcRs {
    fn load_private_key(
        &self,
        key_der: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<std::sync::Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        rustls::crypto::ring::default_provider()
            .key_provider
            .load_private_key(key_der)
    }
}

#[test]
fn the_check_tells_another_provider_from_ring() {
    // Another provider's randomness and key loading with ring's algorithms.
    let mut other = rustls::crypto::ring::default_provider();
    other.secure_random = &AwsLcRs;
    other.key_provider = &AwsLcRs;
    let why = ring_or_why_not(&other).unwrap_err();
    assert!(why.contains("secure_random is AwsLcRs"), "{why}");
    // Ring's parts with another set of key exchange groups (aws-lc-rs offers X25519MLKEM768).
    let mut other = rustls::crypto::ring::default_provider();
    other.kx_groups.reverse();
    let why = ring_or_why_not(&other).unwrap_err();
    assert!(why.contains("kx_groups"), "{why}");
    // Fewer cipher suites.
    let mut other = rustls::crypto::ring::default_provider();
    other.cipher_suites.pop();
    let why = ring_or_why_not(&other).unwrap_err();
    assert!(why.contains("cipher_suites"), "{why}");
}
