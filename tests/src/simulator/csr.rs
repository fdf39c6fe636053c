//! Private keys and CSRs as cert-manager's Certificate controller makes them: the key per
//! `spec.privateKey`, and a CSR that carries the subject, every SAN kind, KeyUsage,
//! ExtendedKeyUsage and BasicConstraints from the Certificate's spec.

use crate::Error;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use relay_issuer::pki::generate::{GeneratedKeyType, generate_key, generate_rsa_key};
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
    let failed =
        |e: relay_issuer::pki::Error| invalid(format!("generating the private key failed: {e}"));
    match (algorithm, size) {
        ("RSA", None) => generate_rsa_key(2048).map_err(failed),
        ("RSA", Some(bits)) if (2048..=8192).contains(&bits) => {
            generate_rsa_key(bits as usize).map_err(failed)
        }
        ("ECDSA", None | Some(256)) => generate_key(GeneratedKeyType::P256).map_err(failed),
        ("ECDSA", Some(384)) => generate_key(GeneratedKeyType::P384).map_err(failed),
        ("Ed25519", _) => generate_key(GeneratedKeyType::Ed25519).map_err(failed),
        (algorithm, size) => Err(invalid(format!(
            "unsupported private key: {algorithm} {size:?}"
        ))),
    }
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
    fn csr_carries_names_and_usages_and_signs_with_relay_issuer() {
        let spec = json!({"commonName": "cluster-a", "uris": ["spiffe://relay.local/relay/cluster/cluster-a"], "dnsNames": ["a.example.com"],
            "ipAddresses": ["10.0.0.1"], "emailAddresses": ["ops@example.com"], "usages": ["client auth", "digital signature"]});
        let key = generate_private_key(Some(&json!({"algorithm": "ECDSA", "size": 256}))).unwrap();
        let csr = certificate_signing_request(&spec, &key).unwrap();
        let pki = relay_issuer::pki::generate::generate_pki(
            &relay_issuer::pki::generate::PkiSpec::default(),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        let ca = relay_issuer::pki::SigningCa::load(
            pki.intermediate.cert_pem.as_bytes(),
            pki.intermediate.key_pem.as_bytes(),
            Some(pki.root.cert_pem.as_bytes()),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        let usages = usages_of(&spec);
        let issued = relay_issuer::pki::sign(
            &ca,
            &relay_issuer::pki::SignRequest {
                csr_pem: csr.as_bytes(),
                duration: None,
                is_ca: false,
                usages: &usages,
            },
            &relay_issuer::pki::SigningPolicy::default(),
            time::OffsetDateTime::now_utc(),
        );
        assert!(issued.is_ok(), "{issued:?}");
        // The same CSR asking for other usages is refused: KU/EKU are encoded in the CSR.
        let other = vec!["server auth".to_string()];
        assert!(
            relay_issuer::pki::sign(
                &ca,
                &relay_issuer::pki::SignRequest {
                    csr_pem: csr.as_bytes(),
                    duration: None,
                    is_ca: false,
                    usages: &other
                },
                &relay_issuer::pki::SigningPolicy::default(),
                time::OffsetDateTime::now_utc()
            )
            .is_err()
        );
    }

    #[test]
    fn keys_follow_the_private_key_spec() {
        assert!(generate_private_key(Some(&json!({"algorithm": "Ed25519"}))).is_ok());
        assert!(generate_private_key(Some(&json!({"algorithm": "ECDSA", "size": 384}))).is_ok());
        assert!(generate_private_key(Some(&json!({"algorithm": "ECDSA", "size": 521}))).is_err());
        assert!(generate_private_key(Some(&json!({"algorithm": "DSA"}))).is_err());
    }
}
