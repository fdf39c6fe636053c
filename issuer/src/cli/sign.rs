//! `relay-issuer sign`: signs a CSR offline with exactly the controller's rules.
//!
//! On success the chain goes to stdout (and the CA to `--ca-out`); on refusal the same reason
//! the controller would write into the CertificateRequest goes to stderr and nothing is written.

use super::secret_manifest::parse_secret_manifest;
use super::{duration_arg, read_file};
use crate::Error;
use crate::pki::usages::split_usage_list;
use crate::pki::{SignRequest, SigningCa, SigningPolicy, sign};
use clap::{ArgGroup, Args};
use std::path::PathBuf;

/// Arguments of `sign`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("ca_source").required(true).args(["signing_secret", "ca_cert"])))]
pub struct SignArgs {
    /// A Secret manifest (YAML or JSON) with tls.crt, tls.key and optional ca.crt, like
    /// relay-tls-signing-secret.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["ca_cert", "ca_key", "ca_root"])]
    pub signing_secret: Option<PathBuf>,
    /// The signing CA certificate (PEM; the intermediate, optionally followed by its chain).
    #[arg(long, value_name = "FILE", requires = "ca_key")]
    pub ca_cert: Option<PathBuf>,
    /// The signing CA private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,
    /// The root CA certificate (PEM), handed out as the CA.
    #[arg(long, value_name = "FILE")]
    pub ca_root: Option<PathBuf>,
    /// The certificate signing request (PEM).
    #[arg(long, value_name = "FILE")]
    pub csr: PathBuf,
    /// Requested lifetime (Go duration syntax); cert-manager's default is 2160h.
    #[arg(long, value_name = "DURATION", default_value = "2160h")]
    pub duration: String,
    /// Comma-separated cert-manager usages; default "digital signature,key encipherment".
    #[arg(long, value_name = "LIST", default_value = "")]
    pub usages: String,
    /// Request a CA certificate (refused unless --allow-ca).
    #[arg(long)]
    pub is_ca: bool,
    /// Policy: allow CA certificates (spec.policy.allowCA).
    #[arg(long)]
    pub allow_ca: bool,
    /// Policy: the longest duration that may be requested (spec.policy.maxDuration).
    #[arg(long, value_name = "DURATION")]
    pub max_duration: Option<String>,
    /// Policy: refuse requests that would outlive the CA instead of clamping them
    /// (spec.policy.clampToCA: false).
    #[arg(long)]
    pub no_clamp: bool,
    /// Back-date notBefore by this much to absorb clock skew.
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    pub backdate: String,
    /// Also write the CA certificate (the root) to this file.
    #[arg(long, value_name = "FILE")]
    pub ca_out: Option<PathBuf>,
}

/// Runs `sign` as of `now`.
pub fn run(args: &SignArgs, now: time::OffsetDateTime) -> Result<(), Error> {
    let (tls_crt, tls_key, ca_crt) = match (&args.signing_secret, &args.ca_cert, &args.ca_key) {
        (Some(path), _, _) => {
            let secret = parse_secret_manifest(&read_file(path)?, path)?;
            (
                secret.require("tls.crt", path)?.to_vec(),
                secret.require("tls.key", path)?.to_vec(),
                secret.entries.get("ca.crt").cloned(),
            )
        }
        (None, Some(cert), Some(key)) => (
            read_file(cert)?,
            read_file(key)?,
            args.ca_root.as_deref().map(read_file).transpose()?,
        ),
        _ => {
            return Err(Error::InvalidArgument(
                "give either --signing-secret FILE or both --ca-cert FILE and --ca-key FILE".into(),
            ));
        }
    };
    let policy = SigningPolicy {
        allow_ca: args.allow_ca,
        max_duration: args.max_duration.as_deref().map(duration_arg).transpose()?,
        clamp_to_ca: !args.no_clamp,
        backdate: duration_arg(&args.backdate)?,
    };
    let duration = duration_arg(&args.duration)?;
    let usages = split_usage_list(&args.usages);
    let csr_pem = read_file(&args.csr)?;

    let ca = SigningCa::load(&tls_crt, &tls_key, ca_crt.as_deref(), now)?;
    let issued = sign(
        &ca,
        &SignRequest {
            csr_pem: &csr_pem,
            duration: Some(duration),
            is_ca: args.is_ca,
            usages: &usages,
        },
        &policy,
        now,
    )?;
    if let Some(ca_out) = &args.ca_out {
        std::fs::write(ca_out, &issued.ca_pem).map_err(|source| Error::Io {
            action: "write",
            path: ca_out.clone(),
            source,
        })?;
    }
    print!("{}", issued.chain_pem);
    eprintln!("{}", issued.summary());
    Ok(())
}
