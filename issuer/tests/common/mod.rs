//! Helpers shared by the integration tests: running `relay-issuer` and `openssl` in a temp dir.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch folder that holds a test's files.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        std::fs::write(self.path(name), contents).expect("write");
        self.p(name)
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Runs relay-issuer with these args in this folder.
    pub fn relay_issuer(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_relay-issuer"))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run relay-issuer")
    }

    /// Runs openssl with these args in this folder and insists it succeeds.
    pub fn openssl(&self, args: &[&str]) -> String {
        let out = self.openssl_output(args);
        assert!(
            out.status.success(),
            "openssl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn openssl_output(&self, args: &[&str]) -> Output {
        Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl is required for these tests (make tools installs it)")
    }

    /// Lists the folder's file names, sorted.
    pub fn files(&self) -> Vec<String> {
        list_files(self.dir.path())
    }
}

pub fn list_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a successful run and returns stdout.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "expected success, got {:?}: {}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

/// Asserts a refusal: exit code 2, nothing on stdout, an `error:` line on stderr; returns stderr.
pub fn refused(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2; stderr: {}",
        stderr(&out)
    );
    assert!(
        out.stdout.is_empty(),
        "a refusal prints nothing on stdout: {}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Splits a PEM chain into its certificates' PEM blocks.
pub fn split_pem(chain: &str) -> Vec<String> {
    chain
        .split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|b| b.contains("BEGIN CERTIFICATE"))
        .map(str::to_string)
        .collect()
}
