//! The committed CRDs in `deploy/crds/` are exactly what `relay-issuer crds` generates from the
//! API types. When this fails, run `make crds` and commit the result.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[test]
fn committed_crds_match_the_generated_ones() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/crds"));
    let generated = relay_issuer::api::crd_files().unwrap();
    let mut committed = BTreeMap::new();
    for entry in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; run `make crds`", dir.display()))
    {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            committed.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>(),
        "deploy/crds holds other files than the generated CRDs; run `make crds`"
    );
    for (name, yaml) in &generated {
        assert!(
            committed[name] == *yaml,
            "deploy/crds/{name} differs from what the code generates; run `make crds` and commit it"
        );
    }
}

#[test]
fn the_crds_command_prints_the_same_documents() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relay-issuer"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    for yaml in relay_issuer::api::crd_files().unwrap().values() {
        assert!(stdout.contains(yaml.as_str()));
    }
}
