//! cert-manager usage names and their X.509 key usage / extended key usage encodings.
//!
//! `spec.usages` in a CertificateRequest is a list of names such as `digital signature` or
//! `client auth`. This module maps them to KeyUsage bits and ExtendedKeyUsage OIDs exactly as
//! cert-manager does (an empty list means `digital signature` + `key encipherment`; `isCA` adds
//! `cert sign`), and renders them back as names for messages.

use crate::Error;
use std::collections::BTreeSet;
use std::fmt;

/// A KeyUsage bit, numbered as in RFC 5280 (`digitalSignature` = 0 … `decipherOnly` = 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyUsage {
    /// `digital signature` (also spelled `signing`).
    DigitalSignature = 0,
    /// `content commitment` (nonRepudiation).
    ContentCommitment = 1,
    /// `key encipherment`.
    KeyEncipherment = 2,
    /// `data encipherment`.
    DataEncipherment = 3,
    /// `key agreement`.
    KeyAgreement = 4,
    /// `cert sign`.
    CertSign = 5,
    /// `crl sign`.
    CrlSign = 6,
    /// `encipher only`.
    EncipherOnly = 7,
    /// `decipher only`.
    DecipherOnly = 8,
}

impl KeyUsage {
    /// Every key usage, in bit order.
    pub const ALL: [KeyUsage; 9] = [
        KeyUsage::DigitalSignature,
        KeyUsage::ContentCommitment,
        KeyUsage::KeyEncipherment,
        KeyUsage::DataEncipherment,
        KeyUsage::KeyAgreement,
        KeyUsage::CertSign,
        KeyUsage::CrlSign,
        KeyUsage::EncipherOnly,
        KeyUsage::DecipherOnly,
    ];

    /// The cert-manager name.
    pub fn name(self) -> &'static str {
        match self {
            KeyUsage::DigitalSignature => "digital signature",
            KeyUsage::ContentCommitment => "content commitment",
            KeyUsage::KeyEncipherment => "key encipherment",
            KeyUsage::DataEncipherment => "data encipherment",
            KeyUsage::KeyAgreement => "key agreement",
            KeyUsage::CertSign => "cert sign",
            KeyUsage::CrlSign => "crl sign",
            KeyUsage::EncipherOnly => "encipher only",
            KeyUsage::DecipherOnly => "decipher only",
        }
    }

    /// This usage's bit in a [`KeyUsageSet`].
    pub fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// A set of KeyUsage bits (bit n = RFC 5280 named bit n).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyUsageSet(pub u16);

impl KeyUsageSet {
    /// Adds a usage.
    pub fn insert(&mut self, usage: KeyUsage) {
        self.0 |= usage.bit();
    }

    /// Whether the set holds `usage`.
    pub fn contains(self, usage: KeyUsage) -> bool {
        self.0 & usage.bit() != 0
    }

    /// Whether no bit is set.
    pub fn is_empty(self) -> bool {
        self.0 & 0x1ff == 0
    }
}

impl fmt::Display for KeyUsageSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = KeyUsage::ALL
            .iter()
            .filter(|u| self.contains(**u))
            .map(|u| u.name())
            .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(", "))
        }
    }
}

/// An ExtendedKeyUsage purpose cert-manager can request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ExtendedKeyUsage {
    /// `any` (anyExtendedKeyUsage).
    Any,
    /// `server auth`.
    ServerAuth,
    /// `client auth`.
    ClientAuth,
    /// `code signing`.
    CodeSigning,
    /// `email protection` (also `s/mime`).
    EmailProtection,
    /// `ipsec end system`.
    IpsecEndSystem,
    /// `ipsec tunnel`.
    IpsecTunnel,
    /// `ipsec user`.
    IpsecUser,
    /// `timestamping`.
    Timestamping,
    /// `ocsp signing`.
    OcspSigning,
    /// `microsoft sgc`.
    MicrosoftSgc,
    /// `netscape sgc`.
    NetscapeSgc,
}

impl ExtendedKeyUsage {
    const ALL: [ExtendedKeyUsage; 12] = [
        ExtendedKeyUsage::Any,
        ExtendedKeyUsage::ServerAuth,
        ExtendedKeyUsage::ClientAuth,
        ExtendedKeyUsage::CodeSigning,
        ExtendedKeyUsage::EmailProtection,
        ExtendedKeyUsage::IpsecEndSystem,
        ExtendedKeyUsage::IpsecTunnel,
        ExtendedKeyUsage::IpsecUser,
        ExtendedKeyUsage::Timestamping,
        ExtendedKeyUsage::OcspSigning,
        ExtendedKeyUsage::MicrosoftSgc,
        ExtendedKeyUsage::NetscapeSgc,
    ];

    /// The cert-manager name.
    pub fn name(self) -> &'static str {
        match self {
            ExtendedKeyUsage::Any => "any",
            ExtendedKeyUsage::ServerAuth => "server auth",
            ExtendedKeyUsage::ClientAuth => "client auth",
            ExtendedKeyUsage::CodeSigning => "code signing",
            ExtendedKeyUsage::EmailProtection => "email protection",
            ExtendedKeyUsage::IpsecEndSystem => "ipsec end system",
            ExtendedKeyUsage::IpsecTunnel => "ipsec tunnel",
            ExtendedKeyUsage::IpsecUser => "ipsec user",
            ExtendedKeyUsage::Timestamping => "timestamping",
            ExtendedKeyUsage::OcspSigning => "ocsp signing",
            ExtendedKeyUsage::MicrosoftSgc => "microsoft sgc",
            ExtendedKeyUsage::NetscapeSgc => "netscape sgc",
        }
    }

    /// The OID's DER content bytes.
    pub fn oid_der(self) -> &'static [u8] {
        const KP: [u8; 7] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03];
        match self {
            ExtendedKeyUsage::Any => &[0x55, 0x1d, 0x25, 0x00],
            ExtendedKeyUsage::ServerAuth => &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 1],
            ExtendedKeyUsage::ClientAuth => &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 2],
            ExtendedKeyUsage::CodeSigning => &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 3],
            ExtendedKeyUsage::EmailProtection => {
                &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 4]
            }
            ExtendedKeyUsage::IpsecEndSystem => {
                &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 5]
            }
            ExtendedKeyUsage::IpsecTunnel => &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 6],
            ExtendedKeyUsage::IpsecUser => &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 7],
            ExtendedKeyUsage::Timestamping => &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 8],
            ExtendedKeyUsage::OcspSigning => &[KP[0], KP[1], KP[2], KP[3], KP[4], KP[5], KP[6], 9],
            // 1.3.6.1.4.1.311.10.3.3
            ExtendedKeyUsage::MicrosoftSgc => {
                &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x0a, 0x03, 0x03]
            }
            // 2.16.840.1.113730.4.1
            ExtendedKeyUsage::NetscapeSgc => {
                &[0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x42, 0x04, 0x01]
            }
        }
    }

    /// Finds the purpose with this OID (DER content bytes).
    pub fn from_oid_der(oid: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|eku| eku.oid_der() == oid)
    }
}

/// What a request's usages (plus isCA) ask the certificate to carry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Usages {
    /// KeyUsage bits.
    pub key_usage: KeyUsageSet,
    /// ExtendedKeyUsage purposes.
    pub extended: BTreeSet<ExtendedKeyUsage>,
}

/// Renders a set of extended key usages for messages.
pub fn describe_extended(set: &BTreeSet<ExtendedKeyUsage>) -> String {
    if set.is_empty() {
        "none".to_string()
    } else {
        set.iter().map(|e| e.name()).collect::<Vec<_>>().join(", ")
    }
}

/// Every usage name cert-manager accepts, for error messages.
pub fn known_usage_names() -> String {
    let mut names = vec!["signing"];
    names.extend(KeyUsage::ALL.iter().map(|u| u.name()));
    names.extend(ExtendedKeyUsage::ALL.iter().map(|e| e.name()));
    names.push("s/mime");
    names.join(", ")
}

/// Turns cert-manager usage names into the KeyUsage / ExtendedKeyUsage a certificate carries.
///
/// An empty list means cert-manager's default (`digital signature`, `key encipherment`);
/// `is_ca` adds `cert sign`, as cert-manager does.
pub fn usages_from_names<S: AsRef<str>>(names: &[S], is_ca: bool) -> Result<Usages, Error> {
    let mut usages = Usages::default();
    if is_ca {
        usages.key_usage.insert(KeyUsage::CertSign);
    }
    if names.is_empty() {
        usages.key_usage.insert(KeyUsage::DigitalSignature);
        usages.key_usage.insert(KeyUsage::KeyEncipherment);
        return Ok(usages);
    }
    for name in names {
        let name = name.as_ref();
        let normalized = name.trim().to_ascii_lowercase();
        if normalized == "signing" {
            usages.key_usage.insert(KeyUsage::DigitalSignature);
        } else if normalized == "s/mime" {
            usages.extended.insert(ExtendedKeyUsage::EmailProtection);
        } else if let Some(ku) = KeyUsage::ALL.iter().find(|u| u.name() == normalized) {
            usages.key_usage.insert(*ku);
        } else if let Some(eku) = ExtendedKeyUsage::ALL
            .iter()
            .find(|e| e.name() == normalized)
        {
            usages.extended.insert(*eku);
        } else {
            return Err(Error::UsageUnknown {
                name: name.to_string(),
                known: known_usage_names(),
            });
        }
    }
    Ok(usages)
}

/// Splits a comma-separated usage list (`"client auth,digital signature"`).
pub fn split_usage_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_usages_default_to_digital_signature_and_key_encipherment() {
        let u = usages_from_names::<&str>(&[], false).unwrap();
        assert!(u.key_usage.contains(KeyUsage::DigitalSignature));
        assert!(u.key_usage.contains(KeyUsage::KeyEncipherment));
        assert!(!u.key_usage.contains(KeyUsage::CertSign));
        assert!(u.extended.is_empty());
    }

    #[test]
    fn is_ca_adds_cert_sign_even_with_explicit_usages() {
        let u = usages_from_names(&["digital signature"], true).unwrap();
        assert!(u.key_usage.contains(KeyUsage::CertSign));
        let u = usages_from_names::<&str>(&[], true).unwrap();
        assert!(u.key_usage.contains(KeyUsage::CertSign));
    }

    #[test]
    fn every_name_maps_and_aliases_agree() {
        for ku in KeyUsage::ALL {
            let u = usages_from_names(&[ku.name()], false).unwrap();
            assert_eq!(u.key_usage, KeyUsageSet(ku.bit()));
        }
        for eku in ExtendedKeyUsage::ALL {
            let u = usages_from_names(&[eku.name()], false).unwrap();
            assert_eq!(u.extended.iter().copied().collect::<Vec<_>>(), vec![eku]);
            assert_eq!(ExtendedKeyUsage::from_oid_der(eku.oid_der()), Some(eku));
        }
        assert_eq!(
            usages_from_names(&["signing"], false).unwrap(),
            usages_from_names(&["digital signature"], false).unwrap()
        );
        assert_eq!(
            usages_from_names(&["s/mime"], false).unwrap(),
            usages_from_names(&["email protection"], false).unwrap()
        );
    }

    #[test]
    fn unknown_names_are_refused_with_the_list() {
        let err = usages_from_names(&["client-auth"], false).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("\"client-auth\""), "{message}");
        assert!(message.contains("client auth"), "{message}");
    }

    #[test]
    fn splits_comma_lists() {
        assert_eq!(
            split_usage_list("client auth, digital signature,,"),
            vec!["client auth".to_string(), "digital signature".to_string()]
        );
    }

    #[test]
    fn displays_sets_in_bit_order() {
        let u = usages_from_names(
            &[
                "key encipherment",
                "digital signature",
                "client auth",
                "server auth",
            ],
            false,
        )
        .unwrap();
        assert_eq!(
            u.key_usage.to_string(),
            "digital signature, key encipherment"
        );
        assert_eq!(describe_extended(&u.extended), "server auth, client auth");
        assert_eq!(KeyUsageSet::default().to_string(), "none");
    }
}
