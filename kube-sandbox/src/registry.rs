//! The resource types the sandbox serves: built-ins and those registered by CRDs.
//!
//! A [`ResourceType`] says where a resource lives in the URL space, how it is named in
//! discovery, whether it is namespaced, whether it has a status subresource, which field
//! selectors it supports and (for custom resources) its schema. Storage is `store`'s job.

use std::sync::Arc;

/// One servable resource (one group/version/plural).
#[derive(Clone)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: String,
    /// API version within the group.
    pub version: String,
    /// Kind, e.g. `Secret`.
    pub kind: String,
    /// Plural resource name used in URLs, e.g. `secrets`.
    pub plural: String,
    /// Singular name for discovery.
    pub singular: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names for discovery (kubectl uses them).
    pub short_names: Vec<String>,
    /// Categories for discovery.
    pub categories: Vec<String>,
    /// Whether `/status` is a separate subresource (status dropped on create, kept on update).
    pub status_subresource: bool,
    /// Field selectors supported beyond `metadata.name` and `metadata.namespace`.
    pub extra_field_selectors: Vec<String>,
    /// Subresources besides `status` that write part of the object (CertificateSigningRequest
    /// `approval`); their rules are in `validation::subresource_rules`.
    pub extra_subresources: Vec<String>,
    /// Whether this is a custom resource (generation from 1, PUT needs resourceVersion,
    /// strategic merge patch unsupported).
    pub custom: bool,
    /// The structural schema objects are validated and pruned against (custom resources).
    pub schema: Option<Arc<crate::schema::StructuralSchema>>,
    /// Which store the objects live in, when two views share one (core/v1 and
    /// events.k8s.io/v1 Events); `None` means this resource's own store.
    pub shared_store: Option<StoreKey>,
    /// How objects are shown as `Table` rows (`kubectl get`'s columns).
    pub printer: crate::table::Printer,
}

impl std::fmt::Debug for ResourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ResourceType({}/{} {})",
            self.group, self.version, self.plural
        )
    }
}

/// Identifies one store of objects: group and plural.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreKey {
    /// API group.
    pub group: String,
    /// Plural name.
    pub plural: String,
}

impl ResourceType {
    /// `v1` for the core group, else `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The store these objects live in.
    pub fn store_key(&self) -> StoreKey {
        self.shared_store.clone().unwrap_or_else(|| StoreKey {
            group: self.group.clone(),
            plural: self.plural.clone(),
        })
    }

    /// `plural.group` (or just `plural` for the core group), as in messages and RBAC.
    pub fn qualified_name(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Every field selector this resource supports.
    pub fn field_selectors(&self) -> Vec<&str> {
        let mut fields = vec!["metadata.name"];
        if self.namespaced {
            fields.push("metadata.namespace");
        }
        fields.extend(self.extra_field_selectors.iter().map(String::as_str));
        fields
    }

    fn builtin(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            status_subresource: false,
            extra_field_selectors: Vec::new(),
            extra_subresources: Vec::new(),
            custom: false,
            schema: None,
            shared_store: None,
            printer: crate::table::Printer::Default,
        }
    }
}

/// The resource types currently served.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Registry {
    /// The built-in types: Namespace, Secret, ConfigMap, ServiceAccount, Lease, Event (core/v1
    /// and events.k8s.io/v1 over one store), CustomResourceDefinition, RBAC's Role,
    /// ClusterRole, RoleBinding and ClusterRoleBinding (stored and validated, not enforced), and
    /// certificates.k8s.io/v1 CertificateSigningRequest (with its `approval` subresource).
    pub fn with_builtins() -> Self {
        use crate::table::Printer;
        let mut namespace = ResourceType::builtin("", "v1", "Namespace", "namespaces", false);
        namespace.short_names = vec!["ns".into()];
        namespace.printer = Printer::Namespace;
        namespace.status_subresource = true;
        namespace.extra_field_selectors = vec!["status.phase".into()];
        let mut secret = ResourceType::builtin("", "v1", "Secret", "secrets", true);
        secret.extra_field_selectors = vec!["type".into()];
        secret.printer = Printer::Secret;
        let mut config_map = ResourceType::builtin("", "v1", "ConfigMap", "configmaps", true);
        config_map.short_names = vec!["cm".into()];
        config_map.printer = Printer::ConfigMap;
        let mut service_account =
            ResourceType::builtin("", "v1", "ServiceAccount", "serviceaccounts", true);
        service_account.short_names = vec!["sa".into()];
        service_account.printer = Printer::ServiceAccount;
        let mut lease = ResourceType::builtin("coordination.k8s.io", "v1", "Lease", "leases", true);
        lease.printer = Printer::Lease;
        let events_store = StoreKey {
            group: "events.k8s.io".into(),
            plural: "events".into(),
        };
        let mut core_event = ResourceType::builtin("", "v1", "Event", "events", true);
        core_event.short_names = vec!["ev".into()];
        core_event.shared_store = Some(events_store.clone());
        core_event.printer = Printer::Event;
        core_event.extra_field_selectors = [
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]
        .map(String::from)
        .to_vec();
        let mut events_event =
            ResourceType::builtin("events.k8s.io", "v1", "Event", "events", true);
        events_event.short_names = vec!["ev".into()];
        events_event.shared_store = Some(events_store);
        events_event.printer = Printer::Event;
        events_event.extra_field_selectors = [
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ]
        .map(String::from)
        .to_vec();
        let mut crd = ResourceType::builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        );
        crd.short_names = vec!["crd".into(), "crds".into()];
        crd.status_subresource = true;
        let rbac = "rbac.authorization.k8s.io";
        let role = ResourceType::builtin(rbac, "v1", "Role", "roles", true);
        let cluster_role = ResourceType::builtin(rbac, "v1", "ClusterRole", "clusterroles", false);
        let mut role_binding =
            ResourceType::builtin(rbac, "v1", "RoleBinding", "rolebindings", true);
        role_binding.printer = Printer::RoleBinding;
        let mut cluster_role_binding = ResourceType::builtin(
            rbac,
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
        );
        cluster_role_binding.printer = Printer::RoleBinding;
        let mut csr = ResourceType::builtin(
            "certificates.k8s.io",
            "v1",
            "CertificateSigningRequest",
            "certificatesigningrequests",
            false,
        );
        csr.short_names = vec!["csr".into()];
        csr.status_subresource = true;
        csr.extra_subresources = vec!["approval".into()];
        csr.extra_field_selectors = vec!["spec.signerName".into()];
        csr.printer = Printer::CertificateSigningRequest;
        Self {
            types: vec![
                namespace,
                secret,
                config_map,
                service_account,
                lease,
                core_event,
                events_event,
                crd,
                role,
                cluster_role,
                role_binding,
                cluster_role_binding,
                csr,
            ],
        }
    }

    /// Adds or replaces a type (same group, version and plural).
    pub fn upsert(&mut self, resource: ResourceType) {
        self.types.retain(|t| {
            !(t.group == resource.group
                && t.version == resource.version
                && t.plural == resource.plural)
        });
        self.types.push(resource);
    }

    /// Removes every version of `plural.group` (a CRD was deleted).
    pub fn remove(&mut self, group: &str, plural: &str) {
        self.types
            .retain(|t| !(t.group == group && t.plural == plural));
    }

    /// Finds a type by URL coordinates.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// Finds a type by apiVersion and kind.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
    }

    /// The types served under one group and version.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<&ResourceType> {
        self.types
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .collect()
    }

    /// Every type served.
    pub fn all(&self) -> &[ResourceType] {
        &self.types
    }

    /// The groups (other than core) and their versions, in registration order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.types.iter().filter(|t| !t.group.is_empty()) {
            match groups.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) if !versions.contains(&t.version) => {
                    versions.push(t.version.clone())
                }
                Some(_) => {}
                None => groups.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        groups
    }
}
