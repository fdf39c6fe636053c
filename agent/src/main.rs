//! `relay-agent`: wires the command line to the library.

use clap::Parser;
use std::process::ExitCode;

/// relay-agent: watches its client TLS Secret and keeps an mTLS connection to the relay server.
#[derive(Debug, Parser)]
#[command(name = "relay-agent", version, about)]
struct Cli {}

fn main() -> ExitCode {
    relay_agent::install_crypto_provider();
    let _cli = Cli::parse();
    eprintln!("relay-agent: the watcher, provider and relay client are not part of this build yet");
    ExitCode::from(2)
}
