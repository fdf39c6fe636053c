//! Files of a Go module release, fetched through the Go module proxy into Go's module cache
//! (`go mod download`): how tests get upstream CRDs (cert-manager's, Gateway API's, ...) of a
//! pinned release without copying them into a repository.
//!
//! What does not live here: which module and version (the caller pins them), installing Go.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The value of `name=` in the text of a pins file of `NAME=value` lines (`#` comments), such as
/// a workspace's `versions.env`.
pub fn pinned_version<'a>(pins: &'a str, name: &str) -> Option<&'a str> {
    pins.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .find(|(key, _)| key.trim() == name)
        .map(|(_, value)| value.trim())
}

/// The extracted folder of `module@version` in Go's module cache, downloading it first when
/// absent.
pub fn module_dir(module: &str, version: &str) -> Result<PathBuf, String> {
    let wanted = format!("{module}@{version}");
    // Outside any Go module, so no go.mod nearby changes what is resolved.
    let output = Command::new("go")
        .args(["mod", "download", "-json", &wanted])
        .current_dir(std::env::temp_dir())
        .env("GOFLAGS", "-mod=mod")
        .output()
        .map_err(|e| {
            format!(
                "cannot run `go mod download {wanted}`: {e}; install Go (`make tools` does) to \
                 fetch cert-manager's CRDs through the Go module proxy"
            )
        })?;
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|e| {
        format!(
            "`go mod download -json {wanted}` printed no JSON ({e}); it said: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    if let Some(error) = json["Error"].as_str() {
        return Err(format!("`go mod download {wanted}` failed: {error}"));
    }
    let dir = json["Dir"]
        .as_str()
        .ok_or_else(|| format!("`go mod download -json {wanted}` named no Dir: {json}"))?;
    let dir = Path::new(dir).to_path_buf();
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "`go mod download {wanted}` named {} but it is not a folder",
            dir.display()
        ))
    }
}
