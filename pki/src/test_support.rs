//! Builders for tests: CAs of every key type, CSRs shaped as tests need them.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use super::generate::{GeneratedKeyType, generate_key};
use super::{SigningCa, parse_duration};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

pub const NOW: OffsetDateTime = datetime!(2026-11-28 12:00:00 UTC);

/// A root, an intermediate signed by it, and their PEMs.
pub struct TestPki {
    pub root_pem: String,
    pub root_key: KeyPair,
    pub intermediate_pem: String,
    pub intermediate_key_pem: String,
}

pub fn ca_params(
    cn: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = not_before;
    params.not_after = not_after;
    params.use_authority_key_identifier_extension = true;
    params
}

/// A root valid ±10 years around NOW and an intermediate valid until `intermediate_not_after`.
pub fn mk_pki_until(key_type: GeneratedKeyType, intermediate_not_after: OffsetDateTime) -> TestPki {
    let root_key = generate_key(key_type).unwrap();
    let root_params = ca_params(
        "test root",
        NOW - Duration::days(3650),
        NOW + Duration::days(3650),
    );
    let root = root_params.self_signed(&root_key).unwrap();
    let intermediate_key = generate_key(key_type).unwrap();
    let intermediate_params = ca_params(
        "test intermediate",
        NOW - Duration::days(1),
        intermediate_not_after,
    );
    let issuer = rcgen::Issuer::new(root_params, &root_key);
    let intermediate = intermediate_params
        .signed_by(&intermediate_key, &issuer)
        .unwrap();
    TestPki {
        root_pem: root.pem(),
        root_key,
        intermediate_pem: intermediate.pem(),
        intermediate_key_pem: intermediate_key.serialize_pem(),
    }
}

pub fn mk_pki(key_type: GeneratedKeyType) -> TestPki {
    mk_pki_until(key_type, NOW + Duration::days(1825))
}

impl TestPki {
    pub fn ca(&self) -> SigningCa {
        SigningCa::load(
            self.intermediate_pem.as_bytes(),
            self.intermediate_key_pem.as_bytes(),
            Some(self.root_pem.as_bytes()),
            NOW,
        )
        .unwrap()
    }
}

/// What a test CSR asks for.
#[derive(Clone, Debug)]
pub struct CsrSpec {
    pub key_type: GeneratedKeyType,
    pub common_name: Option<String>,
    pub sans: Vec<SanType>,
    pub key_usages: Vec<KeyUsagePurpose>,
    pub extended: Vec<ExtendedKeyUsagePurpose>,
    pub is_ca: IsCa,
}

impl Default for CsrSpec {
    fn default() -> Self {
        Self {
            key_type: GeneratedKeyType::P256,
            common_name: Some("cluster-a".into()),
            sans: vec![SanType::URI(
                "spiffe://relay.local/relay/cluster/cluster-a"
                    .try_into()
                    .unwrap(),
            )],
            key_usages: Vec::new(),
            extended: Vec::new(),
            is_ca: IsCa::NoCa,
        }
    }
}

/// Makes a CSR and returns (PEM, the key).
pub fn mk_csr(spec: &CsrSpec) -> (String, KeyPair) {
    let key = generate_key(spec.key_type).unwrap();
    let pem = csr_params(spec)
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    (pem, key)
}

/// The rcgen parameters of a CSR shaped as `spec` says (the key is the caller's).
pub fn csr_params(spec: &CsrSpec) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(cn) = &spec.common_name {
        dn.push(DnType::CommonName, cn.clone());
    }
    params.distinguished_name = dn;
    params.subject_alt_names = spec.sans.clone();
    params.key_usages = spec.key_usages.clone();
    params.extended_key_usages = spec.extended.clone();
    params.is_ca = spec.is_ca;
    params
}

pub fn dur(text: &str) -> Duration {
    parse_duration(text).unwrap()
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
