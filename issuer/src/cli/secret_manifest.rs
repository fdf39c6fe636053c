//! Reading and writing Kubernetes Secret manifests (YAML or JSON) for the offline commands.
//!
//! Reading accepts `data` (base64) and `stringData`, as `kubectl apply` does; writing produces
//! `v1/Secret` objects through k8s-openapi's types. No cluster is contacted.

use crate::Error;
use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::path::Path;

/// The decoded entries of a Secret manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretData {
    /// `metadata.name`, when present.
    pub name: Option<String>,
    /// Each key's decoded bytes (`stringData` overrides `data`, as the API server does).
    pub entries: BTreeMap<String, Vec<u8>>,
}

impl SecretData {
    /// The value of `key`, or an error naming the key and the file.
    pub fn require(&self, key: &str, path: &Path) -> Result<&[u8], Error> {
        self.entries.get(key).map(Vec::as_slice).ok_or_else(|| Error::SecretManifest {
            path: path.to_path_buf(),
            detail: format!(
                "it has no {key:?} key (keys present: {}); a signing Secret needs tls.crt and tls.key, and optionally ca.crt",
                if self.entries.is_empty() { "none".to_string() } else { self.entries.keys().cloned().collect::<Vec<_>>().join(", ") }
            ),
        })
    }
}

/// Whether text looks like a Kubernetes manifest rather than PEM.
pub fn looks_like_manifest(text: &[u8]) -> bool {
    let text = String::from_utf8_lossy(text);
    let trimmed = text.trim_start();
    !trimmed.starts_with("-----BEGIN")
        && (trimmed.starts_with('{') || text.contains("kind:") || text.contains("apiVersion:"))
}

/// Parses a Secret manifest from YAML or JSON text.
pub fn parse_secret_manifest(text: &[u8], path: &Path) -> Result<SecretData, Error> {
    let invalid = |detail: String| Error::SecretManifest {
        path: path.to_path_buf(),
        detail,
    };
    let text = std::str::from_utf8(text).map_err(|_| invalid("it is not UTF-8 text".into()))?;
    if text.trim().is_empty() {
        return Err(invalid("the file is empty".into()));
    }
    let value: serde_json::Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| invalid(format!("invalid JSON: {e}")))?
    } else {
        serde_saphyr::from_str(text).map_err(|e| invalid(format!("invalid YAML: {e}")))?
    };
    let object = value
        .as_object()
        .ok_or_else(|| invalid("the document is not a mapping".into()))?;
    match object.get("kind").and_then(|k| k.as_str()) {
        Some("Secret") => {}
        Some(other) => return Err(invalid(format!("its kind is {other:?}, not \"Secret\""))),
        None => return Err(invalid("it has no kind: Secret".into())),
    }
    let name = object
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string);
    let mut entries = BTreeMap::new();
    if let Some(data) = object.get("data").filter(|d| !d.is_null()) {
        let data = data
            .as_object()
            .ok_or_else(|| invalid("data is not a mapping of key to base64 string".into()))?;
        for (key, value) in data {
            let encoded = value
                .as_str()
                .ok_or_else(|| invalid(format!("data.{key} is not a string")))?;
            let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|e| {
                    invalid(format!(
                        "data.{key} is not valid base64 ({e}); encode the value with `base64 -w0`"
                    ))
                })?;
            entries.insert(key.clone(), decoded);
        }
    }
    if let Some(string_data) = object.get("stringData").filter(|d| !d.is_null()) {
        let string_data = string_data
            .as_object()
            .ok_or_else(|| invalid("stringData is not a mapping of key to string".into()))?;
        for (key, value) in string_data {
            let text = value
                .as_str()
                .ok_or_else(|| invalid(format!("stringData.{key} is not a string")))?;
            entries.insert(key.clone(), text.as_bytes().to_vec());
        }
    }
    Ok(SecretData { name, entries })
}

/// Renders a `v1/Secret` manifest as YAML.
pub fn render_secret_manifest(
    name: &str,
    namespace: &str,
    secret_type: &str,
    entries: &[(&str, &[u8])],
) -> Result<String, Error> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "relay-issuer-ca-create".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some(secret_type.to_string()),
        data: Some(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..Secret::default()
    };
    serde_saphyr::to_string(&secret).map_err(|e| Error::Generate {
        what: "a Secret manifest",
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> &'static Path {
        Path::new("secret.yaml")
    }

    #[test]
    fn reads_yaml_data_and_string_data() {
        let yaml = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  tls.crt: aGVsbG8=\nstringData:\n  tls.key: world\n";
        let s = parse_secret_manifest(yaml.as_bytes(), path()).unwrap();
        assert_eq!(s.name.as_deref(), Some("s"));
        assert_eq!(s.entries["tls.crt"], b"hello");
        assert_eq!(s.entries["tls.key"], b"world");
    }

    #[test]
    fn reads_json() {
        let json = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"ca.crt":"aGk="}}"#;
        let s = parse_secret_manifest(json.as_bytes(), path()).unwrap();
        assert_eq!(s.entries["ca.crt"], b"hi");
    }

    #[test]
    fn refuses_bad_base64_wrong_kind_and_missing_keys() {
        let truncated = "kind: Secret\ndata:\n  tls.crt: aGVsbG8\n";
        let err = parse_secret_manifest(truncated.as_bytes(), path()).unwrap_err();
        assert!(
            err.to_string().contains("data.tls.crt is not valid base64"),
            "{err}"
        );
        let config_map = "kind: ConfigMap\ndata: {}\n";
        let err = parse_secret_manifest(config_map.as_bytes(), path()).unwrap_err();
        assert!(err.to_string().contains("\"ConfigMap\""), "{err}");
        let empty = parse_secret_manifest(b"kind: Secret\n", path()).unwrap();
        let err = empty.require("tls.key", path()).unwrap_err();
        assert!(err.to_string().contains("no \"tls.key\" key"), "{err}");
        assert!(parse_secret_manifest(b"", path()).is_err());
        assert!(parse_secret_manifest(b"[1, 2]", path()).is_err());
        assert!(parse_secret_manifest(b"kind: Secret\ndata: [1]\n", path()).is_err());
    }

    #[test]
    fn rendered_manifests_read_back() {
        let yaml = render_secret_manifest(
            "relay-root-tls-secret",
            "gloo-mesh",
            "Opaque",
            &[("ca.crt", b"root")],
        )
        .unwrap();
        assert!(yaml.contains("kind: Secret"), "{yaml}");
        assert!(yaml.contains("namespace: gloo-mesh"), "{yaml}");
        let back = parse_secret_manifest(yaml.as_bytes(), path()).unwrap();
        assert_eq!(back.name.as_deref(), Some("relay-root-tls-secret"));
        assert_eq!(back.entries["ca.crt"], b"root");
    }

    #[test]
    fn tells_manifests_from_pem() {
        assert!(looks_like_manifest(b"apiVersion: v1\nkind: Secret\n"));
        assert!(looks_like_manifest(b"{\"kind\":\"Secret\"}"));
        assert!(!looks_like_manifest(b"-----BEGIN CERTIFICATE-----\n"));
    }
}
