//! The README's crate diagram against the workspace: every crate in the diagram is a workspace
//! member (with the folder it names), every member is in the diagram, and its arrows are
//! exactly the normal dependencies between members that `cargo metadata` reports. The layering
//! rules the design rests on are checked on cargo's graph itself: the agent links no issuer
//! code, and the emulator and the simulator link no relay crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `cargo metadata` of the workspace's own packages (their declared dependencies).
fn metadata() -> Value {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Members by name → (folder relative to the root, normal dependencies on other members).
fn members(metadata: &Value) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let root = repo_root();
    let ids: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let packages: Vec<&Value> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| ids.contains(p["id"].as_str().unwrap()))
        .collect();
    let names: BTreeSet<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    packages
        .iter()
        .map(|p| {
            let manifest = Path::new(p["manifest_path"].as_str().unwrap());
            let folder = manifest
                .parent()
                .unwrap()
                .strip_prefix(&root)
                .unwrap()
                .display()
                .to_string();
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                // Normal dependencies only (`kind` null); dev and build edges are not drawn.
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| d["name"].as_str())
                .filter(|name| names.contains(name))
                .map(str::to_string)
                .collect();
            (p["name"].as_str().unwrap().to_string(), (folder, deps))
        })
        .collect()
}

/// The README's crate diagram: node id → (crate name, folder), and the arrows as crate names.
struct Diagram {
    nodes: BTreeMap<String, (String, String)>,
    arrows: BTreeSet<(String, String)>,
}

fn diagram() -> Diagram {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section = &readme[readme.find("### Crates").expect("a Crates section")..];
    let block = &section[section.find("```mermaid").unwrap()..];
    let block = &block[..3 + block[3..].find("```").unwrap()];
    let mut nodes = BTreeMap::new();
    let mut arrows = Vec::new();
    for line in block.lines().map(str::trim) {
        if let Some((id, label)) = line.split_once("[\"") {
            // `id["name (folder/)<br/>..."]`
            let head = label.split("<br/>").next().unwrap();
            let (name, folder) = head.split_once(" (").unwrap();
            let folder = folder.trim_end_matches(')').trim_end_matches('/');
            nodes.insert(id.to_string(), (name.to_string(), folder.to_string()));
        } else if let Some((from, to)) = line.split_once(" --> ") {
            arrows.push((from.trim().to_string(), to.trim().to_string()));
        }
    }
    let arrows = arrows
        .into_iter()
        .map(|(from, to)| (nodes[&from].0.clone(), nodes[&to].0.clone()))
        .collect();
    Diagram { nodes, arrows }
}

#[test]
fn the_readme_diagram_is_the_workspace_graph() {
    let members = members(&metadata());
    let Diagram { nodes, arrows } = diagram();
    let drawn: BTreeMap<String, String> = nodes.into_values().collect();
    let actual: BTreeMap<String, String> = members
        .iter()
        .map(|(name, (folder, _))| (name.clone(), folder.clone()))
        .collect();
    assert_eq!(
        drawn, actual,
        "crates and folders: README vs cargo metadata"
    );
    let edges: BTreeSet<(String, String)> = members
        .iter()
        .flat_map(|(name, (_, deps))| deps.iter().map(move |d| (name.clone(), d.clone())))
        .collect();
    assert_eq!(arrows, edges, "arrows: README vs cargo metadata");
}

#[test]
fn the_layering_holds_in_cargos_graph() {
    let members = members(&metadata());
    // Transitive normal dependencies among members.
    let closure = |start: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start.to_string()];
        while let Some(name) = todo.pop() {
            for dep in &members[&name].1 {
                if seen.insert(dep.clone()) {
                    todo.push(dep.clone());
                }
            }
        }
        seen
    };
    let agent = closure("relay-agent");
    assert!(!agent.contains("relay-issuer"), "{agent:?}");
    for tool in ["kube-sandbox", "cert-manager-sim"] {
        let deps = closure(tool);
        assert!(
            deps.iter().all(|d| !d.starts_with("relay-")),
            "{tool} links a relay crate: {deps:?}"
        );
    }
    for pure in ["relay-pki", "relay-proto"] {
        assert!(closure(pure).is_empty(), "{pure}: {:?}", closure(pure));
    }
}
