//! `relay-agent`: wires the command line to the library. Decisions live in the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    relay_agent::install_crypto_provider();
    let args = relay_agent::cli::Args::parse();
    match relay_agent::cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}
