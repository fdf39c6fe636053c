//! `relay-issuer`: wires the command line to the library. Decisions live in the library.

use clap::Parser;
use relay_issuer::cli::{Cli, exit_code, run};
use std::process::ExitCode;

fn main() -> ExitCode {
    relay_issuer::install_crypto_provider();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(exit_code(&error))
        }
    }
}
