//! The repository holds everything it needs: no tracked file refers to a path outside it.
//!
//! A clone anywhere must pass, so nothing may point at a sibling folder (the reference material
//! beside the repository), at a machine's own folders (`/root/...`, `/home/...`), or climb with `..` above the
//! repository root, and no tracked symlink may lead out of it. Upstream files the tests need come
//! from package registries at a pinned version (`scripts/versions.env`), never from a path.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use regex::Regex;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the repository")
        .to_path_buf()
}

/// One reference to a path outside the repository.
#[derive(Debug, PartialEq)]
struct Escape {
    file: String,
    line: usize,
    text: String,
}

/// The folders, relative to the repository root, that `..` chains on one line of `file` are
/// resolved from: the crate root for `CARGO_MANIFEST_DIR`-relative paths, the folder a Makefile
/// line `cd`s into, else the file's own folder.
fn bases(file: &Path, line: &str, crate_root: &Path) -> Vec<PathBuf> {
    if line.contains("CARGO_MANIFEST_DIR") {
        return vec![crate_root.to_path_buf()];
    }
    let cd = Regex::new(r"\bcd\s+([A-Za-z0-9_./-]+)\s*&&").expect("valid regex");
    let dir = file.parent().unwrap_or(Path::new("")).to_path_buf();
    match cd.captures(line) {
        Some(c) => vec![dir.join(&c[1])],
        None => vec![dir],
    }
}

/// Whether `relative` (with `..` components), taken from `base` (relative to the root), climbs
/// above the repository root.
fn climbs_out(base: &Path, relative: &str) -> bool {
    let mut depth: i64 = 0;
    for component in base.join(relative.trim_start_matches('/')).components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

/// The references to outside paths in the text of `file` (a path relative to the root).
fn escapes_in(file: &Path, text: &str, crate_root: &Path) -> Vec<Escape> {
    let sibling = Regex::new(r"shared/reference|(^|[^A-Za-z0-9_.-])\.\./shared\b").expect("regex");
    let absolute =
        Regex::new(r"(^|[^A-Za-z0-9_.~$-])/(work|root|home|Users|mnt|srv)/").expect("regex");
    let climb = Regex::new(r"/?(\.\./)+(\.\.)?").expect("regex");
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let outside = sibling.is_match(line)
            || absolute.is_match(line)
            || climb.find_iter(line).any(|m| {
                bases(file, line, crate_root)
                    .iter()
                    .all(|base| climbs_out(base, m.as_str()))
            });
        if outside {
            found.push(Escape {
                file: file.display().to_string(),
                line: index + 1,
                text: line.trim().to_string(),
            });
        }
    }
    found
}

/// The nearest folder at or above `file`'s that holds a Cargo.toml (the root if none).
fn crate_root_of(root: &Path, file: &Path) -> PathBuf {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if root.join(d).join("Cargo.toml").is_file() {
            return d.to_path_buf();
        }
        dir = d.parent();
    }
    PathBuf::new()
}

fn tracked_files(root: &Path) -> Vec<PathBuf> {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .expect("git is needed to list the tracked files");
    assert!(out.status.success(), "git ls-files failed: {out:?}");
    out.stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
        .collect()
}

#[test]
fn no_tracked_file_refers_to_a_path_outside_the_repository() {
    let root = repo_root();
    let files = tracked_files(&root);
    assert!(files.len() > 100, "only {} tracked files?", files.len());
    let mut found = Vec::new();
    let mut read = 0;
    for file in &files {
        let path = root.join(file);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue; // deleted in the work tree, not yet committed
        };
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).expect("read the symlink");
            let base = file.parent().unwrap_or(Path::new(""));
            if target.is_absolute() || climbs_out(base, &target.to_string_lossy()) {
                found.push(Escape {
                    file: file.display().to_string(),
                    line: 0,
                    text: format!("symlink to {}", target.display()),
                });
            }
            continue;
        }
        // This file names the patterns it looks for (in its regexes).
        if file == Path::new("tests/tests/hermetic.rs") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // binary data
        };
        read += 1;
        found.extend(escapes_in(file, &text, &crate_root_of(&root, file)));
    }
    assert!(read > 100, "only {read} text files read");
    assert!(
        found.is_empty(),
        "tracked files refer to paths outside the repository (a clone elsewhere would break; \
         fetch upstream files through a registry at a version pinned in scripts/versions.env):\n{}",
        found
            .iter()
            .map(|e| format!("  {}:{}: {}", e.file, e.line, e.text))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_checker_finds_each_kind_of_escape_and_passes_paths_inside() {
    let check = |file: &str, crate_root: &str, line: &str| {
        !escapes_in(Path::new(file), line, Path::new(crate_root)).is_empty()
    };
    // Outside: a sibling folder, a machine's folders, a climb above the root.
    // The examples are assembled at run time, so this file does not hold the paths it looks for.
    let sibling = format!("see `{}/shared/reference/x.md`", "..");
    let machine = format!("cp /{}/main/x .", "work");
    assert!(check("README.md", "", &sibling));
    assert!(check(
        "tests/src/a.rs",
        "tests",
        r#"concat!(env!("CARGO_MANIFEST_DIR"), "/../../x")"#
    ));
    assert!(check(
        "tests/src/a.rs",
        "tests",
        r#"read("/root/go/pkg/mod/x")"#
    ));
    assert!(check("scripts/a.sh", "", &machine));
    assert!(check("scripts/a.sh", "", "cat ../../etc/x"));
    assert!(check("Makefile", "", "cd fuzz && cp ../../x ."));
    assert!(check(
        "docs/a.md",
        "",
        "data in shared/reference/ beside the repo"
    ));
    // Inside: climbs that stay within the root, and ordinary absolute paths.
    assert!(!check(
        "tests/Cargo.toml",
        "tests",
        r#"relay-issuer = { path = "../issuer" }"#
    ));
    assert!(!check(
        "tests/src/a.rs",
        "tests",
        r#"concat!(env!("CARGO_MANIFEST_DIR"), "/../target")"#
    ));
    assert!(!check(
        "Makefile",
        "",
        "cd fuzz && CARGO_TARGET_DIR=../target cargo build"
    ));
    assert!(!check(
        "issuer/examples/a.rs",
        "issuer",
        r#"#[path = "../benches/x.rs"]"#
    ));
    assert!(!check(
        "scripts/a.sh",
        "",
        "install -m 0755 x /usr/local/bin/x; cat /etc/passwd"
    ));
    assert!(!check("deploy/a.yaml", "", "mountPath: /var/run/secrets/x"));
}
