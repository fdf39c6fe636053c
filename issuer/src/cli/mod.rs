//! The `relay-issuer` command line: argument definitions and dispatch.
//!
//! Each command lives in its own module: the offline ones call the PKI core, `controller` runs
//! the external issuer, `server` the relay server, `crds` writes the CRDs; nothing here decides signing policy. Errors go back to `main`, which prints them and picks the exit code.

pub mod ca_create;
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
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Ca(CaCommand::Create(args)) => ca_create::run(&args),
        Command::Sign(args) => sign::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Controller(args) => controller::run(&args),
        Command::Server(args) => server::run(&args),
        Command::Crds(args) => crds::run(&args),
    }
}

/// The process exit code for an error: 2 for refusals and bad input, 1 for internal failures.
pub fn exit_code(error: &Error) -> u8 {
    match error {
        Error::SigningFailed { .. } | Error::Generate { .. } => 1,
        _ => 2,
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
    crate::pki::parse_duration(text)
}
