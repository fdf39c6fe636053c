//! `relay-issuer inspect`: describes a certificate, chain or Secret manifest.
//!
//! Reads PEM (certificates, optionally with a private key) or a Secret manifest (`tls.crt`,
//! `tls.key`, `ca.crt`), and prints subject, names, validity, key match and renewal time, in
//! plain text or JSON.

use super::read_file;
use super::secret_manifest::{looks_like_manifest, parse_secret_manifest};
use crate::Error;
use crate::pki::inspect::{InspectReport, RenewalRule, inspect};
use crate::pki::renewal::validate_grace_ratio;
use clap::{ArgGroup, Args, ValueEnum};
use std::path::PathBuf;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    Text,
    /// JSON for machines.
    Json,
}

/// Arguments of `inspect`.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("renewal").args(["ratio", "renew_before", "renew_before_percentage"])))]
pub struct InspectArgs {
    /// A PEM certificate or chain (optionally with its private key), or a Secret manifest.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// A private key to check against the first certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Renewal under the relay grace ratio (rotation starts ratio × lifetime before expiry).
    #[arg(long, value_name = "R")]
    pub ratio: Option<f64>,
    /// Renewal under cert-manager's renewBefore (Go duration syntax).
    #[arg(long, value_name = "DURATION")]
    pub renew_before: Option<String>,
    /// Renewal under cert-manager's renewBeforePercentage (1-99).
    #[arg(long, value_name = "P")]
    pub renew_before_percentage: Option<i32>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
}

/// Runs `inspect` as of `now`.
pub fn run(args: &InspectArgs, now: time::OffsetDateTime) -> Result<(), Error> {
    let rule = match (args.ratio, &args.renew_before, args.renew_before_percentage) {
        (Some(ratio), _, _) => RenewalRule::GraceRatio(validate_grace_ratio(ratio)?),
        (_, Some(rb), _) => RenewalRule::RenewBefore(super::duration_arg(rb)?),
        (_, _, Some(pct)) => {
            if !(1..=99).contains(&pct) {
                return Err(relay_pki::Error::PercentageOutOfRange {
                    percentage: i64::from(pct),
                }
                .into());
            }
            RenewalRule::RenewBeforePercentage(pct)
        }
        _ => RenewalRule::CertManagerDefault,
    };
    let input = read_file(&args.file)?;
    let (cert_pem, mut key_pem, ca_pem) = if looks_like_manifest(&input) {
        let secret = parse_secret_manifest(&input, &args.file)?;
        let cert = secret
            .require("tls.crt", &args.file)
            .or_else(|_| secret.require("ca.crt", &args.file))?;
        (
            cert.to_vec(),
            secret.entries.get("tls.key").cloned(),
            if secret.entries.contains_key("tls.crt") {
                secret.entries.get("ca.crt").cloned()
            } else {
                None
            },
        )
    } else {
        let has_key = String::from_utf8_lossy(&input).contains("PRIVATE KEY-----");
        (input.clone(), has_key.then(|| input.clone()), None)
    };
    if let Some(key_path) = &args.key {
        key_pem = Some(read_file(key_path)?);
    }
    if !String::from_utf8_lossy(&cert_pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::UnrecognisedInput {
            path: args.file.clone(),
            detail:
                "it holds no PEM certificate and is not a Secret manifest with tls.crt or ca.crt"
                    .into(),
        });
    }
    let report = inspect(&cert_pem, key_pem.as_deref(), rule, now)?;
    let ca_report = ca_pem.map(|ca| inspect(&ca, None, rule, now)).transpose()?;
    match args.output {
        OutputFormat::Json => {
            let json = serde_json::json!({ "tls.crt": report, "ca.crt": ca_report });
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
        }
        OutputFormat::Text => {
            print_text(&report, "certificate");
            if let Some(ca_report) = &ca_report {
                print_text(ca_report, "ca.crt certificate");
            }
        }
    }
    Ok(())
}

fn print_text(report: &InspectReport, label: &str) {
    for (i, c) in report.certificates.iter().enumerate() {
        println!("{label} #{}", i + 1);
        println!("  subject:     {}", c.subject);
        println!(
            "  issuer:      {}{}",
            c.issuer,
            if c.self_signed { " (self-signed)" } else { "" }
        );
        println!("  serial:      {}", c.serial);
        println!(
            "  valid:       {} → {} ({})",
            c.not_before, c.not_after, c.lifetime
        );
        println!("  key:         {}", c.key_type);
        if !c.subject_alt_names.is_empty() {
            println!("  names:       {}", c.subject_alt_names.join(", "));
        }
        println!("  CA:          {}", if c.is_ca { "yes" } else { "no" });
        println!("  renewal:     {} ({})", c.renewal_time, c.renewal_rule);
        println!(
            "  state:       {}",
            serde_json::to_value(c.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        );
    }
    match report.key_matches_certificate {
        Some(true) => println!("private key:   matches certificate #1"),
        Some(false) => println!("private key:   DOES NOT MATCH certificate #1"),
        None => {}
    }
    for finding in &report.findings {
        println!("WARNING: {finding}");
    }
}
