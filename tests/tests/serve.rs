//! The `relay-sandbox serve` binary: it prints where it listens, writes a kubeconfig, serves
//! cert-manager's types with `--cert-manager`, and refuses non-loopback addresses.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn serve_listens_writes_a_kubeconfig_and_runs_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_relay-sandbox"))
        .args(["serve", "--cert-manager", "--relaxed", "--kubeconfig-out"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut url = None;
    for line in lines.by_ref().take(5) {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("relay-sandbox listening on ") {
            url = Some(rest.to_string());
            break;
        }
    }
    let url = url.expect("the listening line");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let config = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(config.contains(&url), "{config}");
    let out = Command::new("python3")
        .args(["-c", "import json,sys,urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1] + '/apis/cert-manager.io/v1'))['groupVersion'])", &url])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "cert-manager.io/v1",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn serve_refuses_non_loopback_addresses_and_bad_approver_modes() {
    let out = Command::new(env!("CARGO_BIN_EXE_relay-sandbox"))
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    let out = Command::new(env!("CARGO_BIN_EXE_relay-sandbox"))
        .args(["serve", "--approver", "maybe"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
