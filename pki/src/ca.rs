//! The signing CA: loading `tls.crt` / `tls.key` / `ca.crt` and checking they can sign.
//!
//! A [`SigningCa`] is only constructed when the certificate is a CA within its validity, the key
//! matches it, and the chain links up to the root (when one is known). It precomputes what every
//! signature needs (issuer name, key identifier, chain PEM, root PEM) so that signing does no
//! parsing of the CA. Whether a particular request may be signed is `sign`'s business.

use super::keys::{SigningKey, key_identifier};
use super::{format_time, pem_certificate, to_offset_date_time};
use crate::Error;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

/// Where the CA certificate handed out with each signed certificate (`status.ca`) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootSource {
    /// The root given in `ca.crt`.
    CaCrt,
    /// The self-signed certificate at the top of `tls.crt`.
    TopOfChain,
    /// No root is known: `ca.crt` is absent and the top of `tls.crt` is not self-signed, so the
    /// top of the chain (an intermediate) is handed out as the CA.
    NoRootKnown,
}

/// A CA that has passed every check and is ready to sign.
#[derive(Debug)]
pub struct SigningCa {
    pub(crate) key: SigningKey,
    /// The signing certificate's subject, DER (the issuer of every leaf).
    pub(crate) subject_der: Vec<u8>,
    /// The signing certificate's subject in RFC 4514 text.
    pub(crate) subject_text: String,
    /// The signing certificate's key identifier (its SKI, or one derived from its key).
    pub(crate) key_identifier: Vec<u8>,
    pub(crate) not_before: OffsetDateTime,
    pub(crate) not_after: OffsetDateTime,
    /// PEM of every certificate of `tls.crt` that is not self-signed, signing certificate first.
    pub(crate) chain_pem: String,
    /// PEM of the root (or of the top of the chain when no root is known).
    pub(crate) root_pem: String,
    pub(crate) root_source: RootSource,
}

/// The decoded `CERTIFICATE` blocks of a PEM bundle, as DER.
pub(crate) fn certificates_from_pem(
    pem_text: &[u8],
    source_name: &'static str,
) -> Result<Vec<Vec<u8>>, Error> {
    let blocks = super::pem::parse_pem(pem_text).map_err(|e| Error::CaCertificateInvalid {
        source_name,
        index: 1,
        detail: format!("the PEM is malformed: {e}"),
    })?;
    Ok(blocks
        .into_iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.der)
        .collect())
}

fn parse_certificate<'a>(
    der: &'a [u8],
    source_name: &'static str,
    index: usize,
) -> Result<X509Certificate<'a>, Error> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| Error::CaCertificateInvalid {
        source_name,
        index,
        detail: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(Error::CaCertificateInvalid {
            source_name,
            index,
            detail: "trailing bytes after the certificate".into(),
        });
    }
    Ok(cert)
}

/// Whether `cert` is self-issued and its signature verifies with its own key.
pub(crate) fn is_self_signed(cert: &X509Certificate<'_>) -> bool {
    cert.subject().as_raw() == cert.issuer().as_raw() && cert.verify_signature(None).is_ok()
}

/// Whether `child` was issued and signed by `parent`.
fn signed_by(child: &X509Certificate<'_>, parent: &X509Certificate<'_>) -> Result<(), String> {
    if child.issuer().as_raw() != parent.subject().as_raw() {
        return Err(format!(
            "its issuer is \"{}\" but the next certificate is \"{}\"",
            child.issuer(),
            parent.subject()
        ));
    }
    child
        .verify_signature(Some(parent.public_key()))
        .map_err(|e| {
            format!(
                "its signature does not verify with \"{}\"'s key ({e})",
                parent.subject()
            )
        })
}

impl SigningCa {
    /// Loads and checks a signing CA from the Secret's `tls.crt`, `tls.key` and optional
    /// `ca.crt`, as of `now`.
    pub fn load(
        tls_crt: &[u8],
        tls_key: &[u8],
        ca_crt: Option<&[u8]>,
        now: OffsetDateTime,
    ) -> Result<Self, Error> {
        let chain_der = certificates_from_pem(tls_crt, "tls.crt")?;
        if chain_der.is_empty() {
            return Err(Error::CaCertificateMissing);
        }
        let chain: Vec<X509Certificate<'_>> = chain_der
            .iter()
            .enumerate()
            .map(|(i, der)| parse_certificate(der, "tls.crt", i + 1))
            .collect::<Result<_, _>>()?;
        let signing = &chain[0];
        let subject_text = signing.subject().to_string();

        check_is_ca(signing, &subject_text)?;
        let not_before = to_offset_date_time(signing.validity().not_before);
        let not_after = to_offset_date_time(signing.validity().not_after);
        if now < not_before {
            return Err(Error::CaNotYetValid {
                subject: subject_text,
                not_before: format_time(not_before),
            });
        }
        if now > not_after {
            return Err(Error::CaExpired {
                subject: subject_text,
                not_after: format_time(not_after),
            });
        }

        let key = SigningKey::from_pem(tls_key)?;
        key.matches(signing.public_key())
            .map_err(|detail| Error::CaKeyMismatch {
                subject: subject_text.clone(),
                detail,
            })?;

        for (i, pair) in chain.windows(2).enumerate() {
            signed_by(&pair[0], &pair[1]).map_err(|why| Error::CaChainBroken {
                detail: format!(
                    "tls.crt certificate #{} (\"{}\"): {why}",
                    i + 1,
                    pair[0].subject()
                ),
            })?;
        }

        let (root_pem, root_source) = find_root(&chain, &chain_der, ca_crt)?;

        let chain_pem = chain
            .iter()
            .zip(&chain_der)
            .filter(|(cert, _)| !is_self_signed(cert))
            .map(|(_, der)| pem_certificate(der))
            .collect::<String>();

        let key_identifier = signing
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(ski) => {
                    Some(ski.0.to_vec())
                }
                _ => None,
            })
            .unwrap_or_else(|| key_identifier(key.public_key_bytes()));

        Ok(Self {
            subject_der: signing.subject().as_raw().to_vec(),
            subject_text,
            key_identifier,
            not_before,
            not_after,
            chain_pem,
            root_pem,
            root_source,
            key,
        })
    }

    /// The signing certificate's subject, for messages.
    pub fn subject(&self) -> &str {
        &self.subject_text
    }

    /// When the signing certificate expires (leaves are clamped to this).
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// When the signing certificate became valid.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// The CA certificate handed out as `status.ca` / `ca.crt`.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// Where [`Self::root_pem`] came from.
    pub fn root_source(&self) -> RootSource {
        self.root_source
    }

    /// The intermediates appended after each leaf (signing certificate first).
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// The CA key's type.
    pub fn key_type(&self) -> super::KeyType {
        self.key.key_type()
    }
}

fn check_is_ca(cert: &X509Certificate<'_>, subject: &str) -> Result<(), Error> {
    let not_ca = |detail: &str| Error::CaNotCa {
        subject: subject.to_string(),
        detail: detail.to_string(),
    };
    let bc = cert.basic_constraints().map_err(|e| {
        not_ca(&format!(
            "its BasicConstraints extension is malformed ({e})"
        ))
    })?;
    match bc {
        None => return Err(not_ca("it has no BasicConstraints extension")),
        Some(bc) if !bc.value.ca => return Err(not_ca("its BasicConstraints say CA:FALSE")),
        Some(_) => {}
    }
    let ku = cert
        .key_usage()
        .map_err(|e| not_ca(&format!("its KeyUsage extension is malformed ({e})")))?;
    // RFC 5280: when KeyUsage is present it must allow keyCertSign; when absent all uses are allowed.
    if let Some(ku) = ku
        && !ku.value.key_cert_sign()
    {
        return Err(not_ca("its KeyUsage does not include keyCertSign"));
    }
    Ok(())
}

/// Finds the root that anchors `chain`: in `ca.crt` when given, else the chain's self-signed top.
fn find_root(
    chain: &[X509Certificate<'_>],
    chain_der: &[Vec<u8>],
    ca_crt: Option<&[u8]>,
) -> Result<(String, RootSource), Error> {
    let top_index = chain.len() - 1;
    let top = &chain[top_index];
    let top_der = &chain_der[top_index];
    let roots_der = match ca_crt {
        Some(bytes) if !bytes.iter().all(u8::is_ascii_whitespace) => {
            certificates_from_pem(bytes, "ca.crt")?
        }
        _ => Vec::new(),
    };
    if roots_der.is_empty() {
        if ca_crt.is_some_and(|b| !b.iter().all(u8::is_ascii_whitespace)) {
            return Err(Error::CaCertificateInvalid {
                source_name: "ca.crt",
                index: 1,
                detail: "it holds no PEM CERTIFICATE block".into(),
            });
        }
        return Ok(if is_self_signed(top) {
            (pem_certificate(top_der), RootSource::TopOfChain)
        } else {
            (pem_certificate(top_der), RootSource::NoRootKnown)
        });
    }
    let roots: Vec<X509Certificate<'_>> = roots_der
        .iter()
        .enumerate()
        .map(|(i, der)| parse_certificate(der, "ca.crt", i + 1))
        .collect::<Result<_, _>>()?;
    // The top of tls.crt may be the root itself.
    if let Some(i) = roots_der.iter().position(|r| r == top_der) {
        return Ok((pem_certificate(&roots_der[i]), RootSource::CaCrt));
    }
    let mut reasons = Vec::new();
    for (root, der) in roots.iter().zip(&roots_der) {
        match signed_by(top, root) {
            Ok(()) => return Ok((pem_certificate(der), RootSource::CaCrt)),
            Err(why) => reasons.push(why),
        }
    }
    Err(Error::CaChainBroken {
        detail: format!(
            "the top of tls.crt (\"{}\") is not signed by any certificate in ca.crt: {}",
            top.subject(),
            reasons.join("; ")
        ),
    })
}
