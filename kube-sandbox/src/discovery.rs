//! Discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/{group}[/{version}]`, `/version`)
//! built from the registry, as kubectl and kube-rs read them.

use crate::registry::{Registry, ResourceType};
use serde_json::{Value, json};

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1", "minor": "35", "gitVersion": "v1.35.0-relay-sandbox", "gitCommit": "sandbox",
        "gitTreeState": "clean", "buildDate": "2026-11-01T00:00:00Z", "goVersion": "go1.25",
        "compiler": "gc", "platform": "linux/amd64"
    })
}

/// `/api`.
pub fn core_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": versions, "preferredVersion": versions.first().cloned().unwrap_or(Value::Null)})
}

/// `/apis`.
pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = registry
        .groups()
        .iter()
        .map(|(g, v)| group_entry(g, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`, when the group exists.
pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    registry
        .groups()
        .into_iter()
        .find(|(g, _)| g == name)
        .map(|(g, v)| {
            let mut entry = group_entry(&g, &v);
            if let Some(m) = entry.as_object_mut() {
                m.insert("kind".into(), json!("APIGroup"));
                m.insert("apiVersion".into(), json!("v1"));
            }
            entry
        })
}

fn resource_entry(t: &ResourceType) -> Vec<Value> {
    let mut entries = vec![json!({
        "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
        "verbs": VERBS, "shortNames": t.short_names, "categories": t.categories,
    })];
    if t.status_subresource {
        entries.push(json!({"name": format!("{}/status", t.plural), "singularName": "", "namespaced": t.namespaced, "kind": t.kind, "verbs": ["get", "patch", "update"]}));
    }
    for sub in &t.extra_subresources {
        entries.push(json!({"name": format!("{}/{sub}", t.plural), "singularName": "", "namespaced": t.namespaced, "kind": t.kind, "verbs": ["get", "patch", "update"]}));
    }
    entries
}

/// `/api/v1` or `/apis/{group}/{version}`, when served.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = registry.in_group_version(group, version);
    if types.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let resources: Vec<Value> = types.iter().flat_map(|t| resource_entry(t)).collect();
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

/// The `/openapi/v3` root: one entry per group-version, as kubectl's query-parameter verifier
/// reads it.
pub fn openapi_v3_root(registry: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    paths.insert(
        "api/v1".into(),
        json!({"serverRelativeURL": "/openapi/v3/api/v1?hash=sandbox"}),
    );
    for (group, versions) in registry.groups() {
        for version in versions {
            let key = format!("apis/{group}/{version}");
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash=sandbox")}),
            );
        }
    }
    json!({"paths": paths})
}

/// The `/openapi/v3/{api/v1 | apis/g/v}` document: each resource's paths with their operations,
/// GVK extensions and the `fieldValidation` / `dryRun` / `fieldManager` parameters (so kubectl
/// leaves validation to the server). Schemas are left open.
pub fn openapi_v3_group_version(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = registry.in_group_version(group, version);
    if types.is_empty() {
        return None;
    }
    let param = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    let write_params = json!([
        param("dryRun"),
        param("fieldManager"),
        param("fieldValidation")
    ]);
    let mut paths = serde_json::Map::new();
    for t in types {
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let prefix = if t.group.is_empty() {
            format!("/api/{}", t.version)
        } else {
            format!("/apis/{}/{}", t.group, t.version)
        };
        let base = if t.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", t.plural)
        } else {
            format!("{prefix}/{}", t.plural)
        };
        let response = json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}});
        let op = |action: &str, params: &Value| json!({"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": action, "parameters": params, "responses": response});
        paths.insert(
            base.clone(),
            json!({"get": op("list", &json!([])), "post": op("post", &write_params)}),
        );
        let item = json!({"get": op("get", &json!([])), "put": op("put", &write_params), "patch": op("patch", &write_params), "delete": op("delete", &json!([param("dryRun")]))});
        paths.insert(format!("{base}/{{name}}"), item.clone());
        for sub in &t.extra_subresources {
            paths.insert(format!("{base}/{{name}}/{sub}"), item.clone());
        }
        if t.status_subresource {
            paths.insert(format!("{base}/{{name}}/status"), item);
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0-relay-sandbox"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
