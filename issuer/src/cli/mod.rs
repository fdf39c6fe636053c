//! The `relay-issuer` command line: argument definitions and dispatch.
//!
//! Each command lives in its own module: the offline ones call the PKI core, `controller` runs
//! the external issuer, `server` the relay server, `crds` writes the CRDs; nothing here decides
//! signing policy. Errors go back to `main`, which prints them and picks the exit code.
//!
//! The offline commands get "now" from [`run`], the one place that reads the clock: the system
//! clock, or the hidden test-only `--now RFC3339`.

pub mod ca_create;
pub mod ca_rotate;
pub mod controller;
pub mod crds;
pub mod inspect;
pub mod secret_manifest;
pub mod server;
pub mod sign;

use crate::Error;
use clap::{Parser, Subcommand};

/// relay-issuer: cert-manager external issuer and relay server for relay agent certificates.
#[derive(Debug, Parser)]
#[command(name = "relay-issuer", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// For tests only, and hidden from `--help`: the time `ca create`, `sign` and `inspect` take
    /// as now, RFC 3339 (e.g. `2030-01-02T03:04:05Z`), so a test can look at a certificate
    /// after its renewal time without waiting for it. The controller and the server refuse it:
    /// they always run on the system clock.
    #[arg(long, global = true, hide = true, value_name = "RFC3339", value_parser = parse_now)]
    pub now: Option<time::OffsetDateTime>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and manage the relay CA offline.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Sign a CSR offline with exactly the rules the controller applies.
    Sign(sign::SignArgs),
    /// Describe a certificate, chain or Secret manifest: names, validity, key match, renewal.
    Inspect(inspect::InspectArgs),
    /// Run the cert-manager external issuer: sign CertificateRequests for RelayIssuers and
    /// RelayClusterIssuers, keep their status, elect a leader.
    Controller(Box<controller::ControllerArgs>),
    /// Run the relay server: gRPC over TLS 1.3 for agents (certificate signing by bootstrap
    /// token or mTLS, the Connect stream), hot-reloading its certificate and trust bundle.
    Server(Box<server::ServerArgs>),
    /// Write (or print) the CustomResourceDefinitions of RelayIssuer, RelayClusterIssuer and
    /// RelayCluster.
    Crds(crds::CrdsArgs),
}

/// `relay-issuer ca …`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a root CA, an intermediate signing CA and (optionally) a relay server certificate,
    /// as PEM files and Kubernetes Secret manifests.
    Create(ca_create::CaCreateArgs),
    /// Rotate the relay root with no outage, in five resumable stages against the cluster:
    /// trust the new root everywhere, sign and renew agents under it, serve with it, then drop
    /// the old one (refused, naming them, while any agent would be cut off). Prints the plan;
    /// `--apply` carries it out.
    Rotate(Box<ca_rotate::CaRotateArgs>),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    // The one place the command line reads the time.
    let now = || cli.now.unwrap_or_else(time::OffsetDateTime::now_utc);
    let offline_only = |command: &str| {
        Error::InvalidArgument(format!(
            "--now is a test aid for ca create, sign and inspect; {command} always runs on the system clock, so drop --now"
        ))
    };
    match &cli.command {
        Command::Ca(CaCommand::Create(args)) => ca_create::run(args, now()),
        Command::Ca(CaCommand::Rotate(_)) if cli.now.is_some() => Err(offline_only("ca rotate")),
        Command::Ca(CaCommand::Rotate(args)) => ca_rotate::run(args),
        Command::Sign(args) => sign::run(args, now()),
        Command::Inspect(args) => inspect::run(args, now()),
        Command::Controller(_) if cli.now.is_some() => Err(offline_only("the controller")),
        Command::Server(_) if cli.now.is_some() => Err(offline_only("the server")),
        Command::Crds(_) if cli.now.is_some() => Err(offline_only("crds")),
        Command::Controller(args) => controller::run(args),
        Command::Server(args) => server::run(args),
        Command::Crds(args) => crds::run(args),
    }
}

/// Parses `--now`: an RFC 3339 timestamp.
fn parse_now(text: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{text:?} is not an RFC 3339 time such as 2030-01-02T03:04:05Z ({e})"))
}

/// The process exit code for an error: 2 for refusals and bad input, 1 for internal failures.
pub fn exit_code(error: &Error) -> u8 {
    match error {
        Error::Pki(relay_pki::Error::SigningFailed { .. } | relay_pki::Error::Generate { .. })
        | Error::Generate { .. }
        | Error::TaskStopped { .. } => 1,
        Error::Pki(_)
        | Error::Runtime(_)
        | Error::Tls { .. }
        | Error::Io { .. }
        | Error::FileExists { .. }
        | Error::SecretManifest { .. }
        | Error::UnrecognisedInput { .. }
        | Error::InvalidArgument(_)
        | Error::KubeApi { .. } => 2,
    }
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

/// Parses a Go duration from a flag.
pub(crate) fn duration_arg(text: &str) -> Result<time::Duration, Error> {
    Ok(crate::pki::parse_duration(text)?)
}
