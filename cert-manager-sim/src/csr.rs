//! Private keys and CSRs as cert-manager's Certificate controller makes them: the key per
//! `spec.privateKey`, and a CSR that carries the subject, every SAN kind, KeyUsage,
//! ExtendedKeyUsage and BasicConstraints from the Certificate's spec.

use kube_sandbox::Error;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::Value;

fn invalid(message: String) -> Error {
    Error::BadRequest(message)
}

/// Generates the private key `spec.privateKey` asks for (default RSA 2048, as cert-manager).
pub fn generate_private_key(private_key: Option<&Value>) -> Result<KeyPair, Error> {
    let algorithm = private_key
        .and_then(|p| p.get("algorithm"))
        .and_then(Value::as_str)
        .unwrap_or("RSA");
    let size = private_key
        .and_then(|p| p.get("size"))
        .and_then(Value::as_u64);
    let failed = |e: String| invalid(format!("generating the private key failed: {e}"));
    let generate_for = |alg: &'static rcgen::SignatureAlgorithm| {
        KeyPair::generate_for(alg).map_err(|e| failed(e.to_string()))
    };
    match (algorithm, size) {
        ("RSA", None) => rsa_key(2048).map_err(failed),
        ("RSA", Some(bits)) if (2048..=8192).contains(&bits) => {
            rsa_key(bits as usize).map_err(failed)
        }
        ("ECDSA", None | Some(256)) => generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        ("ECDSA", Some(384)) => generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        ("Ed25519", _) => generate_for(&rcgen::PKCS_ED25519),
        (algorithm, size) => Err(invalid(format!(
            "unsupported private key: {algorithm} {size:?}"
        ))),
    }
}

/// An RSA key of `bits` (ring, rcgen's backend, cannot generate RSA keys; the `rsa` crate can).
fn rsa_key(bits: usize) -> Result<KeyPair, String> {
    use rsa::pkcs8::EncodePrivateKey;
    let key =
        rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).map_err(|e| e.to_string())?;
    let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
    KeyPair::try_from(der.as_bytes()).map_err(|e| e.to_string())
}

fn key_usage(name: &str) -> Option<KeyUsagePurpose> {
    Some(match name {
        "signing" | "digital signature" => KeyUsagePurpose::DigitalSignature,
        "content commitment" => KeyUsagePurpose::ContentCommitment,
        "key encipherment" => KeyUsagePurpose::KeyEncipherment,
        "key agreement" => KeyUsagePurpose::KeyAgreement,
        "data encipherment" => KeyUsagePurpose::DataEncipherment,
        "cert sign" => KeyUsagePurpose::KeyCertSign,
        "crl sign" => KeyUsagePurpose::CrlSign,
        "encipher only" => KeyUsagePurpose::EncipherOnly,
        "decipher only" => KeyUsagePurpose::DecipherOnly,
        _ => return None,
    })
}

fn extended_key_usage(name: &str) -> Option<ExtendedKeyUsagePurpose> {
    Some(match name {
        "any" => ExtendedKeyUsagePurpose::Any,
        "server auth" => ExtendedKeyUsagePurpose::ServerAuth,
        "client auth" => ExtendedKeyUsagePurpose::ClientAuth,
        "code signing" => ExtendedKeyUsagePurpose::CodeSigning,
        "email protection" | "s/mime" => ExtendedKeyUsagePurpose::EmailProtection,
        "timestamping" => ExtendedKeyUsagePurpose::TimeStamping,
        "ocsp signing" => ExtendedKeyUsagePurpose::OcspSigning,
        "ipsec end system" => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 5]),
        "ipsec tunnel" => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 6]),
        "ipsec user" => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 7]),
        "microsoft sgc" => ExtendedKeyUsagePurpose::Other(vec![1, 3, 6, 1, 4, 1, 311, 10, 3, 3]),
        "netscape sgc" => ExtendedKeyUsagePurpose::Other(vec![2, 16, 840, 1, 113730, 4, 1]),
        _ => return None,
    })
}

fn strings<'a>(spec: &'a Value, field: &str) -> Vec<&'a str> {
    spec.get(field)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The usages a Certificate requests: `spec.usages`, or cert-manager's default.
pub fn usages_of(spec: &Value) -> Vec<String> {
    let usages = strings(spec, "usages");
    if usages.is_empty() {
        vec!["digital signature".into(), "key encipherment".into()]
    } else {
        usages.into_iter().map(str::to_string).collect()
    }
}

/// Builds the PEM CSR for a Certificate spec, signed with `key`.
pub fn certificate_signing_request(spec: &Value, key: &KeyPair) -> Result<String, Error> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    let subject = spec.get("subject");
    for org in subject
        .map(|s| strings(s, "organizations"))
        .unwrap_or_default()
    {
        dn.push(DnType::OrganizationName, org);
    }
    if let Some(cn) = spec.get("commonName").and_then(Value::as_str) {
        dn.push(DnType::CommonName, cn);
    }
    params.distinguished_name = dn;
    let bad = |e: rcgen::Error| invalid(format!("building the CSR failed: {e}"));
    for dns in strings(spec, "dnsNames") {
        params
            .subject_alt_names
            .push(SanType::DnsName(dns.to_string().try_into().map_err(bad)?));
    }
    for ip in strings(spec, "ipAddresses") {
        let ip = ip
            .parse()
            .map_err(|_| invalid(format!("spec.ipAddresses: {ip:?} is not an IP address")))?;
        params.subject_alt_names.push(SanType::IpAddress(ip));
    }
    for uri in strings(spec, "uris") {
        params
            .subject_alt_names
            .push(SanType::URI(uri.to_string().try_into().map_err(bad)?));
    }
    for email in strings(spec, "emailAddresses") {
        params.subject_alt_names.push(SanType::Rfc822Name(
            email.to_string().try_into().map_err(bad)?,
        ));
    }
    let is_ca = spec.get("isCA").and_then(Value::as_bool).unwrap_or(false);
    for usage in usages_of(spec) {
        if let Some(ku) = key_usage(&usage) {
            if !params.key_usages.contains(&ku) {
                params.key_usages.push(ku);
            }
        } else if let Some(eku) = extended_key_usage(&usage) {
            params.insert_extended_key_usage(eku);
        } else {
            return Err(invalid(format!("spec.usages: unknown usage {usage:?}")));
        }
    }
    if is_ca && !params.key_usages.contains(&KeyUsagePurpose::KeyCertSign) {
        params.key_usages.push(KeyUsagePurpose::KeyCertSign);
    }
    params.is_ca = if is_ca {
        IsCa::Ca(BasicConstraints::Unconstrained)
    } else {
        IsCa::ExplicitNoCa
    };
    params
        .serialize_request(key)
        .map_err(bad)?
        .pem()
        .map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_follow_the_private_key_spec() {
        assert!(generate_private_key(Some(&json!({"algorithm": "Ed25519"}))).is_ok());
        assert!(generate_private_key(Some(&json!({"algorithm": "ECDSA", "size": 384}))).is_ok());
        assert!(generate_private_key(Some(&json!({"algorithm": "ECDSA", "size": 521}))).is_err());
        assert!(generate_private_key(Some(&json!({"algorithm": "DSA"}))).is_err());
    }
}
