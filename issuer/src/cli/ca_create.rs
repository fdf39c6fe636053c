//! `relay-issuer ca create`: writes a root, an intermediate and Secret manifests to a folder.
//!
//! Everything is generated in memory first; files are written only when every target is free
//! (or `--force` is given), so a refusal writes nothing.

use super::duration_arg;
use super::secret_manifest::render_secret_manifest;
use crate::Error;
use crate::pki::generate::{GeneratedKeyType, PkiSpec, generate_pki};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// Key algorithm choices on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyTypeArg {
    /// ECDSA P-256.
    P256,
    /// ECDSA P-384.
    P384,
    /// RSA 2048-bit.
    Rsa2048,
    /// Ed25519.
    Ed25519,
}

impl From<KeyTypeArg> for GeneratedKeyType {
    fn from(value: KeyTypeArg) -> Self {
        match value {
            KeyTypeArg::P256 => GeneratedKeyType::P256,
            KeyTypeArg::P384 => GeneratedKeyType::P384,
            KeyTypeArg::Rsa2048 => GeneratedKeyType::Rsa2048,
            KeyTypeArg::Ed25519 => GeneratedKeyType::Ed25519,
        }
    }
}

/// Arguments of `ca create`.
#[derive(Debug, Args)]
pub struct CaCreateArgs {
    /// Folder to write PEM files and Secret manifests into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Relay trust domain (agents' identities are spiffe://<trust-domain>/relay/cluster/<name>).
    #[arg(long, default_value = "relay.local", value_name = "D")]
    pub trust_domain: String,
    /// Namespace written into the Secret manifests.
    #[arg(long, default_value = "gloo-mesh")]
    pub namespace: String,
    /// Key algorithm for every key created.
    #[arg(long, value_enum, default_value = "p256")]
    pub key_type: KeyTypeArg,
    /// Root CA lifetime (Go duration syntax).
    #[arg(long, default_value = "87600h", value_name = "DURATION")]
    pub root_ttl: String,
    /// Intermediate CA lifetime (Go duration syntax; clamped to the root's).
    #[arg(long, default_value = "43800h", value_name = "DURATION")]
    pub intermediate_ttl: String,
    /// DNS name or IP of the relay server; repeat for several. Also writes relay-server-tls-secret.
    #[arg(long = "server-name", value_name = "NAME")]
    pub server_names: Vec<String>,
    /// Relay server certificate lifetime (Go duration syntax).
    #[arg(long, default_value = "8760h", value_name = "DURATION")]
    pub server_ttl: String,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

struct OutputFile {
    name: &'static str,
    contents: String,
    private: bool,
}

/// Runs `ca create`, issuing the certificates as of `now`.
pub fn run(args: &CaCreateArgs, now: time::OffsetDateTime) -> Result<(), Error> {
    if args.trust_domain.trim().is_empty() || args.trust_domain.contains('/') {
        return Err(Error::InvalidArgument(format!(
            "--trust-domain {:?} is not a trust domain; use a DNS-like name such as relay.example.com",
            args.trust_domain
        )));
    }
    let spec = PkiSpec {
        trust_domain: args.trust_domain.clone(),
        key_type: args.key_type.into(),
        root_ttl: duration_arg(&args.root_ttl)?,
        intermediate_ttl: duration_arg(&args.intermediate_ttl)?,
        server_names: args.server_names.clone(),
        server_ttl: duration_arg(&args.server_ttl)?,
    };
    let files = planned_files(args, &spec, now)?;
    refuse_existing(&args.out, &files, args.force)?;
    std::fs::create_dir_all(&args.out).map_err(|source| Error::Io {
        action: "create",
        path: args.out.clone(),
        source,
    })?;
    for file in &files {
        write_file(&args.out.join(file.name), &file.contents, file.private)?;
    }
    println!(
        "Created the relay PKI in {} (trust domain {}):",
        args.out.display(),
        args.trust_domain
    );
    for file in &files {
        println!("  {}", args.out.join(file.name).display());
    }
    println!(
        "Apply the manifests with: kubectl apply -f {}/relay-root-tls-secret.yaml -f {}/relay-tls-signing-secret.yaml",
        args.out.display(),
        args.out.display()
    );
    println!("Keep root.key offline: it is only needed to create a new intermediate.");
    Ok(())
}

fn planned_files(
    args: &CaCreateArgs,
    spec: &PkiSpec,
    now: time::OffsetDateTime,
) -> Result<Vec<OutputFile>, Error> {
    let pki = generate_pki(spec, now)?;
    let ns = &args.namespace;
    let mut files = vec![
        OutputFile {
            name: "root.crt",
            contents: pki.root.cert_pem.clone(),
            private: false,
        },
        OutputFile {
            name: "root.key",
            contents: pki.root.key_pem.clone(),
            private: true,
        },
        OutputFile {
            name: "intermediate.crt",
            contents: pki.intermediate.cert_pem.clone(),
            private: false,
        },
        OutputFile {
            name: "intermediate.key",
            contents: pki.intermediate.key_pem.clone(),
            private: true,
        },
        OutputFile {
            name: "relay-root-tls-secret.yaml",
            contents: render_secret_manifest(
                "relay-root-tls-secret",
                ns,
                "Opaque",
                &[("ca.crt", pki.root.cert_pem.as_bytes())],
            )?,
            private: false,
        },
        OutputFile {
            name: "relay-tls-signing-secret.yaml",
            contents: render_secret_manifest(
                "relay-tls-signing-secret",
                ns,
                "kubernetes.io/tls",
                &[
                    ("tls.crt", pki.intermediate.cert_pem.as_bytes()),
                    ("tls.key", pki.intermediate.key_pem.as_bytes()),
                    ("ca.crt", pki.root.cert_pem.as_bytes()),
                ],
            )?,
            private: true,
        },
    ];
    if let Some(server) = &pki.server {
        files.push(OutputFile {
            name: "server.crt",
            contents: server.cert_pem.clone(),
            private: false,
        });
        files.push(OutputFile {
            name: "server.key",
            contents: server.key_pem.clone(),
            private: true,
        });
        files.push(OutputFile {
            name: "relay-server-tls-secret.yaml",
            contents: render_secret_manifest(
                "relay-server-tls-secret",
                ns,
                "kubernetes.io/tls",
                &[
                    ("tls.crt", server.cert_pem.as_bytes()),
                    ("tls.key", server.key_pem.as_bytes()),
                    ("ca.crt", pki.root.cert_pem.as_bytes()),
                ],
            )?,
            private: true,
        });
    }
    Ok(files)
}

fn refuse_existing(dir: &Path, files: &[OutputFile], force: bool) -> Result<(), Error> {
    if force {
        return Ok(());
    }
    for file in files {
        let path = dir.join(file.name);
        if path.exists() {
            return Err(Error::FileExists { path });
        }
    }
    Ok(())
}

fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), Error> {
    use std::io::Write;
    let io_error = |source| Error::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path).map_err(io_error)?;
    file.write_all(contents.as_bytes()).map_err(io_error)?;
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_error)?;
    }
    Ok(())
}
