//! `relay-issuer crds`: writes the CustomResourceDefinitions generated from the API types
//! (`deploy/crds/*.yaml`), or prints them. A test fails when the committed files differ.

use std::path::PathBuf;

use crate::Error;

/// Arguments of `relay-issuer crds`.
#[derive(Debug, clap::Args)]
pub struct CrdsArgs {
    /// Directory to write `<plural>.<group>.yaml` files into; without it the CRDs are printed to
    /// stdout as one multi-document YAML stream.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `relay-issuer crds`.
pub fn run(args: &CrdsArgs) -> Result<(), Error> {
    let files = crate::api::crd_files()?;
    match &args.out {
        None => {
            let documents: Vec<&str> = files.values().map(String::as_str).collect();
            print!("{}", documents.join("---\n"));
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                action: "create",
                path: dir.clone(),
                source,
            })?;
            for (name, yaml) in &files {
                let path = dir.join(name);
                std::fs::write(&path, yaml).map_err(|source| Error::Io {
                    action: "write",
                    path: path.clone(),
                    source,
                })?;
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}
