//! `relay-sandbox serve`: runs the sandbox API server until stopped.

use cert_manager_sim::approver::ApproverMode;
use cert_manager_sim::{Simulator, SimulatorOptions};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// relay-sandbox: an in-process Kubernetes API server for tests and demos.
#[derive(Debug, Parser)]
#[command(name = "relay-sandbox", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API until interrupted.
    Serve {
        /// Address to listen on (loopback only).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Write a kubeconfig pointing at the server here.
        #[arg(long, value_name = "FILE")]
        kubeconfig_out: Option<PathBuf>,
        /// Load every CustomResourceDefinition found in this folder (YAML); repeatable.
        #[arg(long = "crds", value_name = "DIR", env = "RELAY_SANDBOX_CRDS")]
        crds: Vec<PathBuf>,
        /// Also run the cert-manager simulator (webhook rules, approver, Certificate controller).
        #[arg(long)]
        cert_manager: bool,
        /// Approver mode: approve-all, deny-all, or groups:G1,G2 (approve only those issuer groups).
        #[arg(long, default_value = "approve-all", value_name = "MODE")]
        approver: String,
        /// Allow certificate durations under cert-manager's 1h minimum.
        #[arg(long)]
        relaxed: bool,
        /// Scale cert-manager's failure backoff (1.0 = 1h doubling to 32h).
        #[arg(long, default_value_t = 1.0)]
        backoff_scale: f64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Command::Serve {
        listen,
        kubeconfig_out,
        crds,
        cert_manager,
        approver,
        relaxed,
        backoff_scale,
    } = Cli::parse().command;
    let approver: ApproverMode = match approver.parse() {
        Ok(mode) => mode,
        Err(e) => {
            eprintln!("error: --approver: {e}");
            return ExitCode::from(2);
        }
    };
    if !listen.ip().is_loopback() {
        eprintln!("error: --listen must be a loopback address (the sandbox has no authentication)");
        return ExitCode::from(2);
    }
    let options = kube_sandbox::SandboxOptions {
        listen: Some(listen),
        kubeconfig_out,
        namespaces: Vec::new(),
    };
    let sandbox = match kube_sandbox::Sandbox::start_with(options).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    for dir in &crds {
        match sandbox.load_crds(dir).await {
            Ok(names) => println!("loaded CRDs from {}: {}", dir.display(), names.join(", ")),
            Err(e) => {
                eprintln!("error: {}: {e}", dir.display());
                return ExitCode::from(2);
            }
        }
    }
    let _simulator = if cert_manager {
        let options = SimulatorOptions {
            approver,
            relaxed,
            backoff_scale,
            ..SimulatorOptions::default()
        };
        match Simulator::start(&sandbox, options) {
            Ok(simulator) => {
                println!("cert-manager simulator running");
                Some(simulator)
            }
            Err(e) => {
                eprintln!("error: starting the cert-manager simulator: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        None
    };
    println!("relay-sandbox listening on {}", sandbox.url());
    println!("kubeconfig: {}", sandbox.kubeconfig().display());
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
