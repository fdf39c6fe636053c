//! Creating a relay PKI: a root CA, an intermediate CA that signs agents' certificates, and
//! optionally the relay server's own certificate.
//!
//! Used by `relay-issuer ca create` and by tests. The server certificate goes through the same
//! [`sign`](super::sign::sign) path as every other certificate.

use super::sign::{SignRequest, SigningPolicy, sign};
use super::{KeyType, SigningCa};
use crate::Error;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use time::{Duration, OffsetDateTime};

/// Key algorithms `ca create` can generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeneratedKeyType {
    /// ECDSA P-256.
    P256,
    /// ECDSA P-384.
    P384,
    /// RSA 2048-bit.
    Rsa2048,
    /// Ed25519.
    Ed25519,
}

/// What to create.
#[derive(Debug, Clone)]
pub struct PkiSpec {
    /// The relay trust domain, recorded as the CAs' organization.
    pub trust_domain: String,
    /// Key algorithm for every key created.
    pub key_type: GeneratedKeyType,
    /// Root lifetime.
    pub root_ttl: Duration,
    /// Intermediate lifetime (clamped to the root's).
    pub intermediate_ttl: Duration,
    /// DNS names or IP addresses for a relay server certificate; empty means none.
    pub server_names: Vec<String>,
    /// Server certificate lifetime.
    pub server_ttl: Duration,
}

impl Default for PkiSpec {
    /// `ca create`'s defaults: trust domain `relay.local`, P-256, root 10 years, intermediate
    /// 5 years, no server certificate (server lifetime 1 year when names are added).
    fn default() -> Self {
        Self {
            trust_domain: "relay.local".into(),
            key_type: GeneratedKeyType::P256,
            root_ttl: Duration::hours(87_600),
            intermediate_ttl: Duration::hours(43_800),
            server_names: Vec::new(),
            server_ttl: Duration::hours(8_760),
        }
    }
}

/// A certificate and its private key, PEM.
#[derive(Debug, Clone)]
pub struct CertAndKey {
    /// The certificate (for a leaf: followed by its intermediates).
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
}

/// The created PKI.
#[derive(Debug, Clone)]
pub struct GeneratedPki {
    /// The self-signed root.
    pub root: CertAndKey,
    /// The intermediate, signed by the root.
    pub intermediate: CertAndKey,
    /// The relay server's certificate chain and key, when server names were given.
    pub server: Option<CertAndKey>,
}

/// Generates a private key of the given type.
pub fn generate_key(key_type: GeneratedKeyType) -> Result<KeyPair, Error> {
    let failed = |detail: String| Error::Generate {
        what: "a private key",
        detail,
    };
    match key_type {
        GeneratedKeyType::P256 => {
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| failed(e.to_string()))
        }
        GeneratedKeyType::P384 => {
            KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(|e| failed(e.to_string()))
        }
        GeneratedKeyType::Ed25519 => {
            KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(|e| failed(e.to_string()))
        }
        GeneratedKeyType::Rsa2048 => generate_rsa_key(2048),
    }
}

/// Generates an RSA key (ring cannot generate RSA keys, so the `rsa` crate does).
pub fn generate_rsa_key(bits: usize) -> Result<KeyPair, Error> {
    use rsa::pkcs8::EncodePrivateKey;
    let failed = |detail: String| Error::Generate {
        what: "an RSA key",
        detail,
    };
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
        .map_err(|e| failed(e.to_string()))?;
    let der = key.to_pkcs8_der().map_err(|e| failed(e.to_string()))?;
    KeyPair::try_from(der.as_bytes()).map_err(|e| failed(e.to_string()))
}

fn random_serial() -> Result<SerialNumber, Error> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Generate {
            what: "a serial number",
            detail: "the system random number generator failed".into(),
        })?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn ca_params(
    common_name: &str,
    organization: &str,
    path_len: u8,
    now: OffsetDateTime,
    ttl: Duration,
) -> Result<CertificateParams, Error> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, organization);
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now;
    params.not_after = now + ttl;
    params.serial_number = Some(random_serial()?);
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// Creates a root, an intermediate and (when asked) a relay server certificate, as of `now`.
pub fn generate_pki(spec: &PkiSpec, now: OffsetDateTime) -> Result<GeneratedPki, Error> {
    if spec.root_ttl <= Duration::ZERO
        || spec.intermediate_ttl <= Duration::ZERO
        || spec.server_ttl <= Duration::ZERO
    {
        return Err(Error::InvalidArgument(
            "every TTL must be positive (e.g. 87600h)".into(),
        ));
    }
    let now = super::truncate_to_second(now);
    let failed = |what: &'static str| {
        move |e: rcgen::Error| Error::Generate {
            what,
            detail: e.to_string(),
        }
    };

    let root_key = generate_key(spec.key_type)?;
    let root_params = ca_params(
        "relay-tls root CA",
        &spec.trust_domain,
        1,
        now,
        spec.root_ttl,
    )?;
    let root_cert = root_params
        .self_signed(&root_key)
        .map_err(failed("the root CA"))?;

    let intermediate_ttl = spec.intermediate_ttl.min(spec.root_ttl);
    let intermediate_key = generate_key(spec.key_type)?;
    let intermediate_params = ca_params(
        "relay-tls intermediate CA",
        &spec.trust_domain,
        0,
        now,
        intermediate_ttl,
    )?;
    let root_issuer = rcgen::Issuer::new(root_params, &root_key);
    let intermediate_cert = intermediate_params
        .signed_by(&intermediate_key, &root_issuer)
        .map_err(failed("the intermediate CA"))?;

    let root = CertAndKey {
        cert_pem: root_cert.pem(),
        key_pem: root_key.serialize_pem(),
    };
    let intermediate = CertAndKey {
        cert_pem: intermediate_cert.pem(),
        key_pem: intermediate_key.serialize_pem(),
    };

    let server = if spec.server_names.is_empty() {
        None
    } else {
        let ca = SigningCa::load(
            intermediate.cert_pem.as_bytes(),
            intermediate.key_pem.as_bytes(),
            Some(root.cert_pem.as_bytes()),
            now,
        )?;
        Some(server_certificate(&ca, spec, now)?)
    };
    Ok(GeneratedPki {
        root,
        intermediate,
        server,
    })
}

/// Creates a key and a CSR for the server names, and signs it with `ca` for server auth.
fn server_certificate(
    ca: &SigningCa,
    spec: &PkiSpec,
    now: OffsetDateTime,
) -> Result<CertAndKey, Error> {
    let key = generate_key(spec.key_type)?;
    let csr_pem = make_csr(&key, &spec.server_names[0], &spec.server_names, &[])?;
    let usages = [
        "digital signature".to_string(),
        "key encipherment".to_string(),
        "server auth".to_string(),
    ];
    let issued = sign(
        ca,
        &SignRequest {
            csr_pem: csr_pem.as_bytes(),
            duration: Some(spec.server_ttl),
            is_ca: false,
            usages: &usages,
        },
        &SigningPolicy::default(),
        now,
    )?;
    Ok(CertAndKey {
        cert_pem: issued.chain_pem,
        key_pem: key.serialize_pem(),
    })
}

/// Makes a PEM CSR with the given common name, DNS/IP names and URI SANs (no requested
/// extensions besides subjectAltName).
pub fn make_csr(
    key: &KeyPair,
    common_name: &str,
    names: &[String],
    uris: &[String],
) -> Result<String, Error> {
    let failed = |e: rcgen::Error| Error::Generate {
        what: "a certificate signing request",
        detail: e.to_string(),
    };
    let mut params = CertificateParams::new(names.to_vec()).map_err(failed)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    for uri in uris {
        params
            .subject_alt_names
            .push(SanType::URI(uri.clone().try_into().map_err(failed)?));
    }
    params
        .serialize_request(key)
        .map_err(failed)?
        .pem()
        .map_err(failed)
}

impl GeneratedKeyType {
    /// The [`KeyType`] of keys generated with this setting.
    pub fn key_type(self) -> KeyType {
        match self {
            GeneratedKeyType::P256 => KeyType::EcdsaP256,
            GeneratedKeyType::P384 => KeyType::EcdsaP384,
            GeneratedKeyType::Rsa2048 => KeyType::Rsa(2048),
            GeneratedKeyType::Ed25519 => KeyType::Ed25519,
        }
    }
}
