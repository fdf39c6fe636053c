//! RBAC as Kubernetes evaluates it, over rendered manifests: which rules a ServiceAccount gets
//! through RoleBindings and ClusterRoleBindings, and whether a request from the sandbox's
//! request log is allowed by them. Used to check that the Helm charts grant the binaries
//! exactly what they use (the sandbox itself does not authorize).

use serde_json::Value;

use crate::faults::RequestRecord;

/// One policy rule, with where it applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `None`: every namespace and cluster-scoped objects (a ClusterRoleBinding); `Some(ns)`:
    /// objects in `ns` only (a RoleBinding).
    pub namespace: Option<String>,
    /// API groups (`""` = core; `*` = all).
    pub api_groups: Vec<String>,
    /// Resources, `plural` or `plural/subresource` (`*` = all).
    pub resources: Vec<String>,
    /// Verbs (`*` = all).
    pub verbs: Vec<String>,
    /// Object names; empty = any.
    pub resource_names: Vec<String>,
}

/// The strings of a JSON array (non-strings skipped); empty when `value` is not an array.
pub fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn rules(role: &Value, namespace: Option<String>) -> Vec<Grant> {
    role["rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|rule| Grant {
            namespace: namespace.clone(),
            api_groups: string_list(&rule["apiGroups"]),
            resources: string_list(&rule["resources"]),
            verbs: string_list(&rule["verbs"]),
            resource_names: string_list(&rule["resourceNames"]),
        })
        .collect()
}

/// The grants ServiceAccount `namespace/name` receives from the Roles, ClusterRoles and their
/// bindings in `objects` (a RoleBinding's namespace defaults to `release_namespace`).
pub fn grants_for(
    objects: &[Value],
    namespace: &str,
    name: &str,
    release_namespace: &str,
) -> Vec<Grant> {
    let ns_of = |o: &Value| {
        o.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(release_namespace)
            .to_string()
    };
    let find = |kind: &str, role_name: &str, role_ns: Option<&str>| {
        objects.iter().find(|o| {
            o["kind"] == kind
                && o.pointer("/metadata/name").and_then(Value::as_str) == Some(role_name)
                && role_ns.is_none_or(|ns| ns_of(o) == ns)
        })
    };
    let mut grants = Vec::new();
    for binding in objects
        .iter()
        .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
    {
        let binds_us = binding["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"] == name
                    && s["namespace"].as_str().unwrap_or(&ns_of(binding)) == namespace
            });
        if !binds_us {
            continue;
        }
        let role_kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
        let role_name = binding["roleRef"]["name"].as_str().unwrap_or_default();
        let scope = (binding["kind"] == "RoleBinding").then(|| ns_of(binding));
        let role = match role_kind {
            "Role" => find("Role", role_name, scope.as_deref()),
            _ => find("ClusterRole", role_name, None),
        };
        if let Some(role) = role {
            grants.extend(rules(role, scope));
        }
    }
    grants
}

fn matches(list: &[String], value: &str) -> bool {
    list.iter().any(|v| v == "*" || v == value)
}

/// Whether `grant` allows `request`.
pub fn allows(grant: &Grant, request: &RequestRecord) -> bool {
    let resource = if request.subresource.is_empty() {
        request.resource.clone()
    } else {
        format!("{}/{}", request.resource, request.subresource)
    };
    grant
        .namespace
        .as_deref()
        .is_none_or(|ns| ns == request.namespace)
        && matches(&grant.api_groups, &request.group)
        && matches(&grant.resources, &resource)
        && matches(&grant.verbs, &request.verb)
        && (grant.resource_names.is_empty()
            || (!request.name.is_empty() && grant.resource_names.contains(&request.name)))
}

/// The requests in `log` that no grant allows.
pub fn denied<'a>(grants: &[Grant], log: &'a [RequestRecord]) -> Vec<&'a RequestRecord> {
    log.iter()
        .filter(|r| !grants.iter().any(|g| allows(g, r)))
        .collect()
}

/// The (group, resource, verb) triples granted that no request in `log` used.
pub fn unused(grants: &[Grant], log: &[RequestRecord]) -> Vec<String> {
    let mut out = Vec::new();
    for grant in grants {
        for group in &grant.api_groups {
            for resource in &grant.resources {
                for verb in &grant.verbs {
                    let single = Grant {
                        api_groups: vec![group.clone()],
                        resources: vec![resource.clone()],
                        verbs: vec![verb.clone()],
                        ..grant.clone()
                    };
                    if !log.iter().any(|r| allows(&single, r)) {
                        out.push(format!("{verb} {resource}.{group}"));
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        ns: &str,
        name: &str,
    ) -> RequestRecord {
        RequestRecord {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: ns.into(),
            name: name.into(),
            field_manager: String::new(),
            user_agent: String::new(),
        }
    }

    fn objects() -> Vec<Value> {
        vec![
            json!({"kind": "ClusterRole", "metadata": {"name": "c"}, "rules": [
                {"apiGroups": ["cert-manager.io"], "resources": ["certificaterequests"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["cert-manager.io"], "resources": ["certificaterequests/status"], "verbs": ["patch"]}]}),
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "c"}, "roleRef": {"kind": "ClusterRole", "name": "c"},
                "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]}),
            json!({"kind": "Role", "metadata": {"name": "r", "namespace": "ns"}, "rules": [
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch"], "resourceNames": ["s1"]}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "r", "namespace": "ns"}, "roleRef": {"kind": "Role", "name": "r"},
                "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]}),
            json!({"kind": "RoleBinding", "metadata": {"name": "other", "namespace": "ns"}, "roleRef": {"kind": "Role", "name": "r"},
                "subjects": [{"kind": "ServiceAccount", "name": "someone-else", "namespace": "ns"}]}),
        ]
    }

    #[test]
    fn bindings_give_cluster_wide_and_namespaced_rules() {
        let grants = grants_for(&objects(), "ns", "sa", "ns");
        assert_eq!(grants.len(), 3);
        assert_eq!(grants[0].namespace, None);
        assert_eq!(grants[2].namespace.as_deref(), Some("ns"));
        assert!(grants_for(&objects(), "ns", "nobody", "ns").is_empty());
    }

    #[test]
    fn requests_are_checked_by_group_resource_subresource_verb_namespace_and_name() {
        let grants = grants_for(&objects(), "ns", "sa", "ns");
        let ok = [
            request("list", "cert-manager.io", "certificaterequests", "", "", ""),
            request(
                "watch",
                "cert-manager.io",
                "certificaterequests",
                "",
                "team-a",
                "",
            ),
            request(
                "patch",
                "cert-manager.io",
                "certificaterequests",
                "status",
                "team-a",
                "x",
            ),
            request("get", "", "secrets", "", "ns", "s1"),
            request("watch", "", "secrets", "", "ns", "s1"),
        ];
        assert!(denied(&grants, &ok).is_empty());
        let refused = [
            request(
                "patch",
                "cert-manager.io",
                "certificaterequests",
                "",
                "team-a",
                "x",
            ),
            request("get", "", "secrets", "", "ns", "s2"),
            request("get", "", "secrets", "", "other", "s1"),
            request("list", "", "secrets", "", "ns", ""),
            request("create", "", "secrets", "", "ns", "s1"),
        ];
        assert_eq!(denied(&grants, &refused).len(), refused.len());
        assert_eq!(
            unused(&grants, &ok),
            ["get certificaterequests.cert-manager.io"]
        );
        assert_eq!(
            unused(&grants, &ok[..1]),
            [
                "get certificaterequests.cert-manager.io",
                "get secrets.",
                "patch certificaterequests/status.cert-manager.io",
                "watch certificaterequests.cert-manager.io",
                "watch secrets."
            ]
        );
    }
}
