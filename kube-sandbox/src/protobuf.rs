//! Kubernetes' protobuf wire format (`application/vnd.kubernetes.protobuf`) for the built-in
//! kinds kubectl's imperative commands write (`kubectl create namespace|secret|configmap|
//! serviceaccount|role|rolebinding|clusterrole|clusterrolebinding`), their lists, `Status`,
//! `PartialObjectMetadata(List)` and `DeleteOptions`.
//!
//! A body is the 4-byte magic `k8s\0` and a `runtime.Unknown` whose `typeMeta` names the kind
//! and whose `raw` is the object's own message. [`decode`] turns a request body into the JSON
//! the store keeps, as kube-apiserver's protobuf decoder and its JSON encoding would (Go's
//! `omitempty`/`omitzero`: empty strings, zero integers, empty maps and lists left out; lists
//! that are not `omitempty`, such as `rules` and `verbs`, are `null` when empty; bytes as
//! base64; `metav1.Time` as RFC 3339 in whole seconds, UTC). Its errors are kube-apiserver's
//! 400s (`the object provided is unrecognized ...`, `X in version "v" cannot be handled as a Y:
//! ...`); the text of a decoding failure inside `raw` is prost's, not Go's. [`encode`] turns a
//! response (the JSON the store keeps, a list, a `Status`) into protobuf.
//!
//! The messages are k8s-pb's generated types (kube-rs' bindings of Kubernetes' `.proto` files);
//! what is written by hand is only the mapping between them and JSON, because k8s-pb has no
//! JSON support and Kubernetes' JSON conventions are per field. Which representation a request
//! gets (the Accept negotiation) is `metadata`'s business, routing is `server`'s.

use crate::Error;
use crate::error::go_quote;
use crate::registry::{Registry, ResourceType};
use base64::Engine as _;
use k8s_pb::api::certificates::v1 as certificates;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::rbac::v1 as rbac;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use prost::Message;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The protobuf media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The prefix of every Kubernetes protobuf body.
pub const MAGIC: [u8; 4] = *b"k8s\0";

/// The API group of RBAC.
const RBAC: &str = "rbac.authorization.k8s.io";

/// The API group of CertificateSigningRequests.
const CERTIFICATES: &str = "certificates.k8s.io";

/// A failed conversion between a message and JSON: what was wrong.
type Converted<T> = Result<T, String>;

macro_rules! kinds {
    ($(($group:expr, $kind:literal, $list:literal) => $message:ty, $list_message:ident, $to_json:ident, $from_json:ident;)*) => {
        /// The (group, kind) pairs in version v1 that have a protobuf form here.
        pub const KINDS: &[(&str, &str)] = &[$(($group, $kind)),*];

        /// An object's fields (all but `apiVersion` and `kind`) from its `raw` message; `None`
        /// for a kind without a protobuf form here.
        fn raw_to_json(group: &str, kind: &str, raw: &[u8]) -> Option<Converted<Map<String, Value>>> {
            $(if group == $group && kind == $kind {
                return Some(
                    <$message>::decode(raw)
                        .map_err(|e| e.to_string())
                        .and_then($to_json),
                );
            })*
            None
        }

        /// The `raw` message of an object or list in JSON; `None` for a kind without a
        /// protobuf form here.
        fn json_to_raw(group: &str, kind: &str, value: &Value) -> Option<Converted<Vec<u8>>> {
            $(if group == $group && kind == $kind {
                return Some($from_json(value).map(|m| m.encode_to_vec()));
            }
            if group == $group && kind == $list {
                return Some(list_from_json(value, $from_json).map(|(metadata, items)| {
                    $list_message { metadata: Some(metadata), items }.encode_to_vec()
                }));
            })*
            None
        }
    };
}

use certificates::CertificateSigningRequestList;
use core::{ConfigMapList, NamespaceList, SecretList, ServiceAccountList};
use rbac::{ClusterRoleBindingList, ClusterRoleList, RoleBindingList, RoleList};

kinds! {
    ("", "Namespace", "NamespaceList") => core::Namespace, NamespaceList, namespace_to_json, namespace_from_json;
    ("", "Secret", "SecretList") => core::Secret, SecretList, secret_to_json, secret_from_json;
    ("", "ConfigMap", "ConfigMapList") => core::ConfigMap, ConfigMapList, config_map_to_json, config_map_from_json;
    ("", "ServiceAccount", "ServiceAccountList") => core::ServiceAccount, ServiceAccountList, service_account_to_json, service_account_from_json;
    (RBAC, "Role", "RoleList") => rbac::Role, RoleList, role_to_json, role_from_json;
    (RBAC, "ClusterRole", "ClusterRoleList") => rbac::ClusterRole, ClusterRoleList, cluster_role_to_json, cluster_role_from_json;
    (RBAC, "RoleBinding", "RoleBindingList") => rbac::RoleBinding, RoleBindingList, role_binding_to_json, role_binding_from_json;
    (RBAC, "ClusterRoleBinding", "ClusterRoleBindingList") => rbac::ClusterRoleBinding, ClusterRoleBindingList, cluster_role_binding_to_json, cluster_role_binding_from_json;
    (CERTIFICATES, "CertificateSigningRequest", "CertificateSigningRequestList") => certificates::CertificateSigningRequest, CertificateSigningRequestList, csr_to_json, csr_from_json;
}

/// Whether objects of this resource have a protobuf form here (built-in, v1, one of [`KINDS`]).
pub fn speaks(rt: &ResourceType) -> bool {
    !rt.custom && rt.version == "v1" && KINDS.contains(&(rt.group.as_str(), rt.kind.as_str()))
}

/// Whether a Content-Type is the protobuf media type (parameters allowed).
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(MEDIA_TYPE))
}

// ---------- request bodies ----------

/// The JSON form of a protobuf request body written to `rt` (a resource [`speaks`] is true
/// for): `apiVersion` and `kind` from the URL's resource, fields as kube-apiserver's JSON
/// would show them. `registry` tells kinds the server knows (another kind in the body is a
/// failed conversion) from kinds it does not (not registered).
pub fn decode(rt: &ResourceType, body: &[u8], registry: &Registry) -> Result<Value, Error> {
    let data = match body {
        [] => return Err(unrecognized(rt, "empty data", body)),
        _ if !body.starts_with(&MAGIC) => {
            return Err(unrecognized(
                rt,
                "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]",
                body,
            ));
        }
        _ if body.len() == MAGIC.len() => return Err(unrecognized(rt, "empty body", body)),
        _ => &body[MAGIC.len()..],
    };
    let unknown = Unknown::decode(data).map_err(|e| unrecognized(rt, &e.to_string(), body))?;
    // As the Go decoder does: a kind or version missing from typeMeta comes from the URL.
    let type_meta = unknown.type_meta.unwrap_or_default();
    let kind = type_meta
        .kind
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| rt.kind.clone());
    let (group, version) = match type_meta.api_version.as_deref().map(split_api_version) {
        Some(Some((group, version))) if !version.is_empty() => (group, version),
        _ => (rt.group.clone(), rt.version.clone()),
    };
    let raw = unknown.raw.unwrap_or_default();
    let cannot_handle = |why: String| {
        Error::BadRequest(format!(
            "{kind} in version {} cannot be handled as a {}: {why}",
            go_quote(&version),
            rt.kind
        ))
    };
    if (group.as_str(), version.as_str(), kind.as_str())
        != (rt.group.as_str(), rt.version.as_str(), rt.kind.as_str())
    {
        let api_version = join_api_version(&group, &version);
        if version == "v1"
            && let Some(Err(why)) = raw_to_json(&group, &kind, &raw)
        {
            return Err(cannot_handle(why));
        }
        let known = registry
            .find_kind(&api_version, &kind)
            .is_some_and(|t| !t.custom);
        return Err(cannot_handle(if known {
            format!(
                "converting ({version}.{kind}) to ({}.{}): unknown conversion",
                internal_package(&rt.group),
                rt.kind
            )
        } else {
            format!(
                "no kind {} is registered for version {} in scheme \"pkg/api/legacyscheme/scheme.go:30\"",
                go_quote(&kind),
                go_quote(&api_version)
            )
        }));
    }
    let mut fields = raw_to_json(&rt.group, &rt.kind, &raw)
        .ok_or_else(|| {
            Error::UnsupportedMediaType(format!(
                "application/json, application/yaml (the sandbox speaks protobuf only for {})",
                kind_names()
            ))
        })?
        .map_err(cannot_handle)?;
    fields.insert("apiVersion".into(), Value::String(rt.api_version()));
    fields.insert("kind".into(), Value::String(rt.kind.clone()));
    Ok(Value::Object(fields))
}

/// The JSON form of a protobuf `DeleteOptions` body (what the delete handler reads of it).
pub fn decode_delete_options(body: &[u8]) -> Result<Value, Error> {
    let unrecognized = |why: &str| {
        Error::BadRequest(format!(
            "the object provided is unrecognized (must be of type DeleteOptions): {why} ({})",
            summarize(body)
        ))
    };
    let data = body
        .strip_prefix(&MAGIC)
        .ok_or_else(|| unrecognized("provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"))?;
    let unknown = Unknown::decode(data).map_err(|e| unrecognized(&e.to_string()))?;
    let options = meta::DeleteOptions::decode(unknown.raw.unwrap_or_default().as_slice())
        .map_err(|e| unrecognized(&e.to_string()))?;
    let preconditions = options.preconditions.map(|p| {
        Json::default()
            .pointer("uid", p.uid.map(Value::String))
            .pointer("resourceVersion", p.resource_version.map(Value::String))
            .done()
    });
    Ok(Json::default()
        .pointer(
            "gracePeriodSeconds",
            options.grace_period_seconds.map(Value::from),
        )
        .pointer("preconditions", preconditions)
        .pointer(
            "orphanDependents",
            options.orphan_dependents.map(Value::from),
        )
        .pointer(
            "propagationPolicy",
            options.propagation_policy.map(Value::String),
        )
        .strings("dryRun", options.dry_run)
        .done())
}

/// kube-apiserver's 400 for a body it could not read at all.
fn unrecognized(rt: &ResourceType, why: &str, body: &[u8]) -> Error {
    Error::BadRequest(format!(
        "the object provided is unrecognized (must be of type {}): {why} ({})",
        rt.kind,
        summarize(body)
    ))
}

/// kube-apiserver's summary of a body in error messages: JSON text, else hex; 30 bytes at most.
fn summarize(body: &[u8]) -> String {
    const MAX: usize = 30;
    let shown = &body[..body.len().min(MAX)];
    let more = if body.len() > MAX { " ..." } else { "" };
    match body.first() {
        None => "<empty>".into(),
        Some(b'{') => format!("{}{more}", String::from_utf8_lossy(shown)),
        Some(_) => {
            let hex: String = shown.iter().map(|b| format!("{b:02x}")).collect();
            format!("{hex}{more}")
        }
    }
}

/// The Go package of a group's internal types, as conversion errors name it.
fn internal_package(group: &str) -> &str {
    match group {
        "" => "core",
        other => other.split('.').next().unwrap_or(other),
    }
}

/// `group/version` or `version` split as Go's `ParseGroupVersion` does; `None` when malformed.
fn split_api_version(api_version: &str) -> Option<(String, String)> {
    match api_version.split('/').collect::<Vec<_>>().as_slice() {
        [""] => Some((String::new(), String::new())),
        [version] => Some((String::new(), version.to_string())),
        [group, version] => Some((group.to_string(), version.to_string())),
        _ => None,
    }
}

fn join_api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// The kinds with a protobuf form, for messages.
pub fn kind_names() -> String {
    KINDS
        .iter()
        .map(|(_, kind)| *kind)
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------- responses ----------

/// The protobuf body of a response: an object or list of one of [`KINDS`], a `Status`, or a
/// `PartialObjectMetadata(List)`, as kube-apiserver's protobuf encoder writes it.
pub fn encode(value: &Value) -> Result<Vec<u8>, Error> {
    let api_version = text(value, "apiVersion").unwrap_or_default();
    let kind = text(value, "kind").unwrap_or_default();
    let (group, version) = split_api_version(&api_version).unwrap_or_default();
    let raw = match (group.as_str(), version.as_str(), kind.as_str()) {
        (_, _, "Status") => status_from_json(value).map(|s| s.encode_to_vec()),
        ("meta.k8s.io", _, "PartialObjectMetadata") => {
            object_meta_from_json(value.get("metadata").unwrap_or(&Value::Null))
                .map(|m| meta::PartialObjectMetadata { metadata: Some(m) }.encode_to_vec())
        }
        ("meta.k8s.io", _, "PartialObjectMetadataList") => list_from_json(value, |item| {
            object_meta_from_json(item.get("metadata").unwrap_or(&Value::Null))
                .map(|m| meta::PartialObjectMetadata { metadata: Some(m) })
        })
        .map(|(metadata, items)| {
            meta::PartialObjectMetadataList {
                metadata: Some(metadata),
                items,
            }
            .encode_to_vec()
        }),
        (group, "v1", kind) => json_to_raw(group, kind, value)
            .unwrap_or_else(|| Err(format!("{kind} has no protobuf form in the sandbox"))),
        _ => Err(format!(
            "{api_version} {kind} has no protobuf form in the sandbox"
        )),
    }
    .map_err(|why| Error::Internal(format!("encoding the response as protobuf: {why}")))?;
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version),
            kind: Some(kind),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    unknown
        .encode(&mut body)
        .map_err(|e| Error::Internal(format!("encoding the response as protobuf: {e}")))?;
    Ok(body)
}

fn list_from_json<T>(
    value: &Value,
    item: impl Fn(&Value) -> Converted<T>,
) -> Converted<(meta::ListMeta, Vec<T>)> {
    let metadata = value.get("metadata").unwrap_or(&Value::Null);
    let list_meta = list_meta_from_json(metadata);
    let items = value
        .get("items")
        .and_then(Value::as_array)
        .map(|items| items.iter().map(item).collect::<Converted<Vec<T>>>())
        .transpose()?
        .unwrap_or_default();
    Ok((list_meta, items))
}

fn list_meta_from_json(metadata: &Value) -> meta::ListMeta {
    meta::ListMeta {
        self_link: text(metadata, "selfLink"),
        resource_version: text(metadata, "resourceVersion"),
        r#continue: text(metadata, "continue"),
        remaining_item_count: integer(metadata, "remainingItemCount"),
    }
}

fn status_from_json(value: &Value) -> Converted<meta::Status> {
    let details = value
        .get("details")
        .filter(|d| d.is_object())
        .map(|d| meta::StatusDetails {
            name: text(d, "name"),
            group: text(d, "group"),
            kind: text(d, "kind"),
            uid: text(d, "uid"),
            causes: d
                .get("causes")
                .and_then(Value::as_array)
                .map(|causes| {
                    causes
                        .iter()
                        .map(|c| meta::StatusCause {
                            reason: text(c, "reason"),
                            message: text(c, "message"),
                            field: text(c, "field"),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            retry_after_seconds: integer(d, "retryAfterSeconds")
                .and_then(|s| i32::try_from(s).ok()),
        });
    Ok(meta::Status {
        metadata: Some(list_meta_from_json(
            value.get("metadata").unwrap_or(&Value::Null),
        )),
        status: text(value, "status"),
        message: text(value, "message"),
        reason: text(value, "reason"),
        details,
        code: integer(value, "code")
            .map(i32::try_from)
            .transpose()
            .map_err(|_| "status code out of range".to_string())?,
    })
}

// ---------- JSON building (Go's encoding/json over the Kubernetes types) ----------

/// A JSON object built field by field with Go's rules for each field's kind.
#[derive(Default)]
struct Json(Map<String, Value>);

impl Json {
    /// A `string` field with `omitempty`.
    fn string(mut self, key: &str, value: Option<String>) -> Self {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            self.0.insert(key.into(), Value::String(value));
        }
        self
    }

    /// A `string` field without `omitempty` (always present).
    fn required(mut self, key: &str, value: Option<String>) -> Self {
        self.0
            .insert(key.into(), Value::String(value.unwrap_or_default()));
        self
    }

    /// A `[]string` with `omitempty`.
    fn strings(mut self, key: &str, values: Vec<String>) -> Self {
        if !values.is_empty() {
            self.0.insert(key.into(), Value::from(values));
        }
        self
    }

    /// A `[]string` without `omitempty`: `null` when empty (a decoded empty list is nil in Go).
    fn strings_or_null(mut self, key: &str, values: Vec<String>) -> Self {
        let value = if values.is_empty() {
            Value::Null
        } else {
            Value::from(values)
        };
        self.0.insert(key.into(), value);
        self
    }

    /// A `map[string]string` with `omitempty`.
    fn map(mut self, key: &str, values: BTreeMap<String, String>) -> Self {
        if !values.is_empty() {
            let map = values.into_iter().map(|(k, v)| (k, Value::String(v)));
            self.0.insert(key.into(), Value::Object(map.collect()));
        }
        self
    }

    /// A `map[string][]byte` with `omitempty`: values in standard base64.
    fn bytes_map(mut self, key: &str, values: BTreeMap<String, Vec<u8>>) -> Self {
        if !values.is_empty() {
            let engine = base64::engine::general_purpose::STANDARD;
            let map = values
                .into_iter()
                .map(|(k, v)| (k, Value::String(engine.encode(v))));
            self.0.insert(key.into(), Value::Object(map.collect()));
        }
        self
    }

    /// A pointer field (`*bool`, `*int64`, `*Struct`) with `omitempty`: present when set, even
    /// to a zero value.
    fn pointer(mut self, key: &str, value: Option<Value>) -> Self {
        if let Some(value) = value {
            self.0.insert(key.into(), value);
        }
        self
    }

    /// An `int64` with `omitempty`.
    fn integer(mut self, key: &str, value: Option<i64>) -> Self {
        if let Some(value) = value.filter(|v| *v != 0) {
            self.0.insert(key.into(), Value::from(value));
        }
        self
    }

    /// A struct or list field always present (a non-pointer struct; `omitempty` does not omit
    /// structs in Go).
    fn value(mut self, key: &str, value: Value) -> Self {
        self.0.insert(key.into(), value);
        self
    }

    /// A list of structs with `omitempty`.
    fn list(mut self, key: &str, values: Vec<Value>) -> Self {
        if !values.is_empty() {
            self.0.insert(key.into(), Value::Array(values));
        }
        self
    }

    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

/// A decoded `metav1.Time`'s JSON: `None` for the zero time (an empty message decodes to it),
/// else RFC 3339 in whole seconds, UTC.
fn time_to_json(time: Option<meta::Time>) -> Converted<Option<String>> {
    let Some(time) = time else {
        return Ok(None);
    };
    let (seconds, nanos) = (time.seconds.unwrap_or(0), time.nanos.unwrap_or(0));
    if seconds == 0 && nanos == 0 {
        return Ok(None);
    }
    let seconds = seconds
        .checked_add(i64::from(nanos).div_euclid(1_000_000_000))
        .ok_or("a time out of range")?;
    let at = time::OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|e| format!("a time out of range: {e}"))?;
    at.format(&time::format_description::well_known::Rfc3339)
        .map(Some)
        .map_err(|e| format!("a time out of range: {e}"))
}

fn time_value(text: Option<String>) -> Value {
    text.map(Value::String).unwrap_or(Value::Null)
}

fn object_meta_to_json(m: meta::ObjectMeta) -> Converted<Value> {
    let creation = time_to_json(m.creation_timestamp)?;
    // A pointer: a present message is shown even when it decodes to the zero time (null).
    let deletion = match m.deletion_timestamp {
        Some(t) => Some(time_value(time_to_json(Some(t))?)),
        None => None,
    };
    let owners = m
        .owner_references
        .into_iter()
        .map(|o| {
            Json::default()
                .required("apiVersion", o.api_version)
                .required("kind", o.kind)
                .required("name", o.name)
                .required("uid", o.uid)
                .pointer("controller", o.controller.map(Value::Bool))
                .pointer(
                    "blockOwnerDeletion",
                    o.block_owner_deletion.map(Value::Bool),
                )
                .done()
        })
        .collect();
    let managed = m
        .managed_fields
        .into_iter()
        .map(managed_fields_to_json)
        .collect::<Converted<Vec<_>>>()?;
    let mut json = Json::default()
        .string("name", m.name)
        .string("generateName", m.generate_name)
        .string("namespace", m.namespace)
        .string("selfLink", m.self_link)
        .string("uid", m.uid)
        .string("resourceVersion", m.resource_version)
        .integer("generation", m.generation);
    if let Some(creation) = creation {
        json = json.value("creationTimestamp", Value::String(creation));
    }
    Ok(json
        .pointer("deletionTimestamp", deletion)
        .pointer(
            "deletionGracePeriodSeconds",
            m.deletion_grace_period_seconds.map(Value::from),
        )
        .map("labels", m.labels)
        .map("annotations", m.annotations)
        .list("ownerReferences", owners)
        .strings("finalizers", m.finalizers)
        .list("managedFields", managed)
        .done())
}

fn managed_fields_to_json(entry: meta::ManagedFieldsEntry) -> Converted<Value> {
    let time = match entry.time {
        Some(t) => Some(time_value(time_to_json(Some(t))?)),
        None => None,
    };
    let fields = match entry.fields_v1 {
        Some(fields) => Some(match fields.raw {
            Some(raw) if !raw.is_empty() => serde_json::from_slice(&raw)
                .map_err(|e| format!("managedFields: fieldsV1 is not JSON: {e}"))?,
            _ => Value::Null,
        }),
        None => None,
    };
    Ok(Json::default()
        .string("manager", entry.manager)
        .string("operation", entry.operation)
        .string("apiVersion", entry.api_version)
        .pointer("time", time)
        .string("fieldsType", entry.fields_type)
        .pointer("fieldsV1", fields)
        .string("subresource", entry.subresource)
        .done())
}

/// The object's fields with its metadata (always present: a non-pointer struct).
fn with_metadata(metadata: Option<meta::ObjectMeta>) -> Converted<Json> {
    Ok(Json::default().value(
        "metadata",
        object_meta_to_json(metadata.unwrap_or_default())?,
    ))
}

fn into_map(json: Json) -> Map<String, Value> {
    json.0
}

fn namespace_to_json(ns: core::Namespace) -> Converted<Map<String, Value>> {
    let spec = ns.spec.unwrap_or_default();
    let status = ns.status.unwrap_or_default();
    let conditions = status
        .conditions
        .into_iter()
        .map(|c| {
            // lastTransitionTime is a non-pointer Time with omitempty only: null when zero.
            Ok(Json::default()
                .required("type", c.r#type)
                .required("status", c.status)
                .value(
                    "lastTransitionTime",
                    time_value(time_to_json(c.last_transition_time)?),
                )
                .string("reason", c.reason)
                .string("message", c.message)
                .done())
        })
        .collect::<Converted<Vec<_>>>()?;
    Ok(into_map(
        with_metadata(ns.metadata)?
            .value(
                "spec",
                Json::default()
                    .strings("finalizers", spec.finalizers)
                    .done(),
            )
            .value(
                "status",
                Json::default()
                    .string("phase", status.phase)
                    .list("conditions", conditions)
                    .done(),
            ),
    ))
}

fn secret_to_json(secret: core::Secret) -> Converted<Map<String, Value>> {
    Ok(into_map(
        with_metadata(secret.metadata)?
            .pointer("immutable", secret.immutable.map(Value::Bool))
            .bytes_map("data", secret.data)
            .map("stringData", secret.string_data)
            .string("type", secret.r#type),
    ))
}

fn config_map_to_json(cm: core::ConfigMap) -> Converted<Map<String, Value>> {
    Ok(into_map(
        with_metadata(cm.metadata)?
            .pointer("immutable", cm.immutable.map(Value::Bool))
            .map("data", cm.data)
            .bytes_map("binaryData", cm.binary_data),
    ))
}

fn service_account_to_json(sa: core::ServiceAccount) -> Converted<Map<String, Value>> {
    let secrets = sa
        .secrets
        .into_iter()
        .map(|r| {
            Json::default()
                .string("kind", r.kind)
                .string("namespace", r.namespace)
                .string("name", r.name)
                .string("uid", r.uid)
                .string("apiVersion", r.api_version)
                .string("resourceVersion", r.resource_version)
                .string("fieldPath", r.field_path)
                .done()
        })
        .collect();
    let pull_secrets = sa
        .image_pull_secrets
        .into_iter()
        .map(|r| Json::default().string("name", r.name).done())
        .collect();
    Ok(into_map(
        with_metadata(sa.metadata)?
            .list("secrets", secrets)
            .list("imagePullSecrets", pull_secrets)
            .pointer(
                "automountServiceAccountToken",
                sa.automount_service_account_token.map(Value::Bool),
            ),
    ))
}

fn rules_to_json(rules: Vec<rbac::PolicyRule>) -> Value {
    if rules.is_empty() {
        return Value::Null;
    }
    Value::Array(
        rules
            .into_iter()
            .map(|r| {
                Json::default()
                    .strings_or_null("verbs", r.verbs)
                    .strings("apiGroups", r.api_groups)
                    .strings("resources", r.resources)
                    .strings("resourceNames", r.resource_names)
                    .strings("nonResourceURLs", r.non_resource_ur_ls)
                    .done()
            })
            .collect(),
    )
}

fn role_to_json(role: rbac::Role) -> Converted<Map<String, Value>> {
    Ok(into_map(
        with_metadata(role.metadata)?.value("rules", rules_to_json(role.rules)),
    ))
}

fn label_selector_to_json(selector: meta::LabelSelector) -> Value {
    let expressions = selector
        .match_expressions
        .into_iter()
        .map(|e| {
            Json::default()
                .required("key", e.key)
                .required("operator", e.operator)
                .strings("values", e.values)
                .done()
        })
        .collect();
    Json::default()
        .map("matchLabels", selector.match_labels)
        .list("matchExpressions", expressions)
        .done()
}

fn cluster_role_to_json(role: rbac::ClusterRole) -> Converted<Map<String, Value>> {
    let aggregation = role.aggregation_rule.map(|rule| {
        Json::default()
            .list(
                "clusterRoleSelectors",
                rule.cluster_role_selectors
                    .into_iter()
                    .map(label_selector_to_json)
                    .collect(),
            )
            .done()
    });
    Ok(into_map(
        with_metadata(role.metadata)?
            .value("rules", rules_to_json(role.rules))
            .pointer("aggregationRule", aggregation),
    ))
}

fn binding_to_json(
    metadata: Option<meta::ObjectMeta>,
    subjects: Vec<rbac::Subject>,
    role_ref: Option<rbac::RoleRef>,
) -> Converted<Map<String, Value>> {
    let subjects = subjects
        .into_iter()
        .map(|s| {
            Json::default()
                .required("kind", s.kind)
                .string("apiGroup", s.api_group)
                .required("name", s.name)
                .string("namespace", s.namespace)
                .done()
        })
        .collect();
    let role_ref = role_ref.unwrap_or_default();
    Ok(into_map(
        with_metadata(metadata)?.list("subjects", subjects).value(
            "roleRef",
            Json::default()
                .required("apiGroup", role_ref.api_group)
                .required("kind", role_ref.kind)
                .required("name", role_ref.name)
                .done(),
        ),
    ))
}

fn role_binding_to_json(b: rbac::RoleBinding) -> Converted<Map<String, Value>> {
    binding_to_json(b.metadata, b.subjects, b.role_ref)
}

fn cluster_role_binding_to_json(b: rbac::ClusterRoleBinding) -> Converted<Map<String, Value>> {
    binding_to_json(b.metadata, b.subjects, b.role_ref)
}

// ---------- JSON reading (the store's objects into messages) ----------

fn csr_to_json(csr: certificates::CertificateSigningRequest) -> Converted<Map<String, Value>> {
    let engine = base64::engine::general_purpose::STANDARD;
    let spec = csr.spec.unwrap_or_default();
    let status = csr.status.unwrap_or_default();
    let extra: Map<String, Value> = spec
        .extra
        .into_iter()
        .map(|(k, v)| (k, Value::from(v.items)))
        .collect();
    let conditions = status
        .conditions
        .into_iter()
        .map(|c| {
            Ok(Json::default()
                .required("type", c.r#type)
                .required("status", c.status)
                .string("reason", c.reason)
                .string("message", c.message)
                .pointer(
                    "lastUpdateTime",
                    time_to_json(c.last_update_time)?.map(Value::String),
                )
                .pointer(
                    "lastTransitionTime",
                    time_to_json(c.last_transition_time)?.map(Value::String),
                )
                .done())
        })
        .collect::<Converted<Vec<_>>>()?;
    Ok(into_map(
        with_metadata(csr.metadata)?
            .value(
                "spec",
                Json::default()
                    // `request` is a []byte without omitempty.
                    .value(
                        "request",
                        spec.request
                            .map_or(Value::Null, |r| Value::String(engine.encode(r))),
                    )
                    .required("signerName", spec.signer_name)
                    .pointer(
                        "expirationSeconds",
                        spec.expiration_seconds.map(Value::from),
                    )
                    .strings("usages", spec.usages)
                    .string("username", spec.username)
                    .string("uid", spec.uid)
                    .strings("groups", spec.groups)
                    .pointer("extra", (!extra.is_empty()).then_some(Value::Object(extra)))
                    .done(),
            )
            .value(
                "status",
                Json::default()
                    .list("conditions", conditions)
                    .pointer(
                        "certificate",
                        spec_bytes(status.certificate).map(|c| Value::String(engine.encode(c))),
                    )
                    .done(),
            ),
    ))
}

/// A `[]byte` with `omitempty`: absent when empty.
fn spec_bytes(bytes: Option<Vec<u8>>) -> Option<Vec<u8>> {
    bytes.filter(|b| !b.is_empty())
}

fn csr_from_json(value: &Value) -> Converted<certificates::CertificateSigningRequest> {
    let engine = base64::engine::general_purpose::STANDARD;
    let spec = value.get("spec").unwrap_or(&Value::Null);
    let status = value.get("status").unwrap_or(&Value::Null);
    let bytes = |v: &Value, key: &str| -> Converted<Option<Vec<u8>>> {
        v.get(key)
            .and_then(Value::as_str)
            .map(|b64| {
                engine
                    .decode(b64)
                    .map_err(|e| format!("{key} is not base64: {e}"))
            })
            .transpose()
    };
    let extra = spec
        .get("extra")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        certificates::ExtraValue {
                            items: v
                                .as_array()
                                .map(|items| {
                                    items
                                        .iter()
                                        .filter_map(Value::as_str)
                                        .map(str::to_string)
                                        .collect()
                                })
                                .unwrap_or_default(),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(certificates::CertificateSigningRequest {
        metadata: metadata_from_json(value)?,
        spec: Some(certificates::CertificateSigningRequestSpec {
            request: bytes(spec, "request")?,
            signer_name: text(spec, "signerName"),
            expiration_seconds: integer(spec, "expirationSeconds")
                .and_then(|s| i32::try_from(s).ok()),
            usages: texts(spec, "usages"),
            username: text(spec, "username"),
            uid: text(spec, "uid"),
            groups: texts(spec, "groups"),
            extra,
        }),
        status: Some(certificates::CertificateSigningRequestStatus {
            conditions: objects(status, "conditions", |c| {
                Ok(certificates::CertificateSigningRequestCondition {
                    r#type: text(c, "type"),
                    status: text(c, "status"),
                    reason: text(c, "reason"),
                    message: text(c, "message"),
                    last_update_time: time_from_json(c, "lastUpdateTime")?,
                    last_transition_time: time_from_json(c, "lastTransitionTime")?,
                })
            })?,
            certificate: bytes(status, "certificate")?,
        }),
    })
}

fn text(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_string)
}

fn texts(value: &Value, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn text_map(value: &Value, key: &str) -> BTreeMap<String, String> {
    value
        .get(key)
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn bytes_map(value: &Value, key: &str) -> Converted<BTreeMap<String, Vec<u8>>> {
    let engine = base64::engine::general_purpose::STANDARD;
    value
        .get(key)
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k, v)))
                .map(|(k, v)| {
                    engine
                        .decode(v)
                        .map(|bytes| (k.clone(), bytes))
                        .map_err(|e| format!("{key}.{k} is not base64: {e}"))
                })
                .collect()
        })
        .unwrap_or_else(|| Ok(BTreeMap::new()))
}

fn boolean(value: &Value, key: &str) -> Option<bool> {
    value.get(key).and_then(Value::as_bool)
}

fn integer(value: &Value, key: &str) -> Option<i64> {
    value.get(key).and_then(Value::as_i64)
}

fn objects<T>(
    value: &Value,
    key: &str,
    item: impl Fn(&Value) -> Converted<T>,
) -> Converted<Vec<T>> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|items| items.iter().map(item).collect())
        .unwrap_or_else(|| Ok(Vec::new()))
}

fn time_from_json(value: &Value, key: &str) -> Converted<Option<meta::Time>> {
    let Some(text) = value.get(key).and_then(Value::as_str) else {
        return Ok(None);
    };
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{key} {text:?} is not an RFC 3339 time: {e}"))?;
    Ok(Some(meta::Time {
        seconds: Some(at.unix_timestamp()),
        nanos: i32::try_from(at.nanosecond()).ok(),
    }))
}

fn object_meta_from_json(m: &Value) -> Converted<meta::ObjectMeta> {
    Ok(meta::ObjectMeta {
        name: text(m, "name"),
        generate_name: text(m, "generateName"),
        namespace: text(m, "namespace"),
        self_link: text(m, "selfLink"),
        uid: text(m, "uid"),
        resource_version: text(m, "resourceVersion"),
        generation: integer(m, "generation"),
        creation_timestamp: time_from_json(m, "creationTimestamp")?,
        deletion_timestamp: time_from_json(m, "deletionTimestamp")?,
        deletion_grace_period_seconds: integer(m, "deletionGracePeriodSeconds"),
        labels: text_map(m, "labels"),
        annotations: text_map(m, "annotations"),
        owner_references: objects(m, "ownerReferences", |o| {
            Ok(meta::OwnerReference {
                api_version: text(o, "apiVersion"),
                kind: text(o, "kind"),
                name: text(o, "name"),
                uid: text(o, "uid"),
                controller: boolean(o, "controller"),
                block_owner_deletion: boolean(o, "blockOwnerDeletion"),
            })
        })?,
        finalizers: texts(m, "finalizers"),
        managed_fields: objects(m, "managedFields", |e| {
            Ok(meta::ManagedFieldsEntry {
                manager: text(e, "manager"),
                operation: text(e, "operation"),
                api_version: text(e, "apiVersion"),
                time: time_from_json(e, "time")?,
                fields_type: text(e, "fieldsType"),
                fields_v1: e
                    .get("fieldsV1")
                    .filter(|f| !f.is_null())
                    .map(|f| meta::FieldsV1 {
                        raw: serde_json::to_vec(f).ok(),
                    }),
                subresource: text(e, "subresource"),
            })
        })?,
    })
}

fn metadata_from_json(value: &Value) -> Converted<Option<meta::ObjectMeta>> {
    object_meta_from_json(value.get("metadata").unwrap_or(&Value::Null)).map(Some)
}

fn namespace_from_json(value: &Value) -> Converted<core::Namespace> {
    let spec = value.get("spec").unwrap_or(&Value::Null);
    let status = value.get("status").unwrap_or(&Value::Null);
    Ok(core::Namespace {
        metadata: metadata_from_json(value)?,
        spec: Some(core::NamespaceSpec {
            finalizers: texts(spec, "finalizers"),
        }),
        status: Some(core::NamespaceStatus {
            phase: text(status, "phase"),
            conditions: objects(status, "conditions", |c| {
                Ok(core::NamespaceCondition {
                    r#type: text(c, "type"),
                    status: text(c, "status"),
                    last_transition_time: time_from_json(c, "lastTransitionTime")?,
                    reason: text(c, "reason"),
                    message: text(c, "message"),
                })
            })?,
        }),
    })
}

fn secret_from_json(value: &Value) -> Converted<core::Secret> {
    Ok(core::Secret {
        metadata: metadata_from_json(value)?,
        immutable: boolean(value, "immutable"),
        data: bytes_map(value, "data")?,
        string_data: text_map(value, "stringData"),
        r#type: text(value, "type"),
    })
}

fn config_map_from_json(value: &Value) -> Converted<core::ConfigMap> {
    Ok(core::ConfigMap {
        metadata: metadata_from_json(value)?,
        immutable: boolean(value, "immutable"),
        data: text_map(value, "data"),
        binary_data: bytes_map(value, "binaryData")?,
    })
}

fn service_account_from_json(value: &Value) -> Converted<core::ServiceAccount> {
    Ok(core::ServiceAccount {
        metadata: metadata_from_json(value)?,
        secrets: objects(value, "secrets", |r| {
            Ok(core::ObjectReference {
                kind: text(r, "kind"),
                namespace: text(r, "namespace"),
                name: text(r, "name"),
                uid: text(r, "uid"),
                api_version: text(r, "apiVersion"),
                resource_version: text(r, "resourceVersion"),
                field_path: text(r, "fieldPath"),
            })
        })?,
        image_pull_secrets: objects(value, "imagePullSecrets", |r| {
            Ok(core::LocalObjectReference {
                name: text(r, "name"),
            })
        })?,
        automount_service_account_token: boolean(value, "automountServiceAccountToken"),
    })
}

fn rules_from_json(value: &Value) -> Converted<Vec<rbac::PolicyRule>> {
    objects(value, "rules", |r| {
        Ok(rbac::PolicyRule {
            verbs: texts(r, "verbs"),
            api_groups: texts(r, "apiGroups"),
            resources: texts(r, "resources"),
            resource_names: texts(r, "resourceNames"),
            non_resource_ur_ls: texts(r, "nonResourceURLs"),
        })
    })
}

fn role_from_json(value: &Value) -> Converted<rbac::Role> {
    Ok(rbac::Role {
        metadata: metadata_from_json(value)?,
        rules: rules_from_json(value)?,
    })
}

fn cluster_role_from_json(value: &Value) -> Converted<rbac::ClusterRole> {
    let aggregation = value
        .get("aggregationRule")
        .filter(|a| a.is_object())
        .map(|a| {
            objects(a, "clusterRoleSelectors", |s| {
                Ok(meta::LabelSelector {
                    match_labels: text_map(s, "matchLabels"),
                    match_expressions: objects(s, "matchExpressions", |e| {
                        Ok(meta::LabelSelectorRequirement {
                            key: text(e, "key"),
                            operator: text(e, "operator"),
                            values: texts(e, "values"),
                        })
                    })?,
                })
            })
            .map(|selectors| rbac::AggregationRule {
                cluster_role_selectors: selectors,
            })
        })
        .transpose()?;
    Ok(rbac::ClusterRole {
        metadata: metadata_from_json(value)?,
        rules: rules_from_json(value)?,
        aggregation_rule: aggregation,
    })
}

fn subjects_from_json(value: &Value) -> Converted<Vec<rbac::Subject>> {
    objects(value, "subjects", |s| {
        Ok(rbac::Subject {
            kind: text(s, "kind"),
            api_group: text(s, "apiGroup"),
            name: text(s, "name"),
            namespace: text(s, "namespace"),
        })
    })
}

fn role_ref_from_json(value: &Value) -> Option<rbac::RoleRef> {
    value.get("roleRef").map(|r| rbac::RoleRef {
        api_group: text(r, "apiGroup"),
        kind: text(r, "kind"),
        name: text(r, "name"),
    })
}

fn role_binding_from_json(value: &Value) -> Converted<rbac::RoleBinding> {
    Ok(rbac::RoleBinding {
        metadata: metadata_from_json(value)?,
        subjects: subjects_from_json(value)?,
        role_ref: role_ref_from_json(value),
    })
}

fn cluster_role_binding_from_json(value: &Value) -> Converted<rbac::ClusterRoleBinding> {
    Ok(rbac::ClusterRoleBinding {
        metadata: metadata_from_json(value)?,
        subjects: subjects_from_json(value)?,
        role_ref: role_ref_from_json(value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Bodies kubectl 1.35 sent for `kubectl create ...` (captured from the wire), with the
    /// JSON the same command prints with `--dry-run=client -o json` (Go's encoding).
    const KUBECTL_BODIES: &[(&str, &str, &str, &str)] = &[
        (
            "",
            "secrets",
            "6b3873000a0c0a0276311206536563726574121f0a130a0367656e12001a0022002a0032003800420012060a01611201621a001a002200",
            r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"gen"},"data":{"a":"Yg=="}}"#,
        ),
        (
            "",
            "namespaces",
            "6b3873000a0f0a02763112094e616d657370616365121b0a130a036e733112001a0022002a0032003800420012001a020a001a002200",
            r#"{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"ns1"},"spec":{},"status":{}}"#,
        ),
        (
            "rbac.authorization.k8s.io",
            "roles",
            "6b3873000a240a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f76311204526f6c65122e0a110a017212001a0022002a0032003800420012190a036765740a046c69737412001a07736563726574732201611a002200",
            r#"{"kind":"Role","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"r"},"rules":[{"verbs":["get","list"],"apiGroups":[""],"resources":["secrets"],"resourceNames":["a"]}]}"#,
        ),
        (
            "",
            "configmaps",
            "6b3873000a0f0a0276311209436f6e6669674d6170121b0a110a016312001a0022002a0032003800420012060a016b1201761a002200",
            r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"c"},"data":{"k":"v"}}"#,
        ),
        (
            "",
            "serviceaccounts",
            "6b3873000a140a027631120e536572766963654163636f756e7412140a120a02736112001a0022002a003200380042001a002200",
            r#"{"kind":"ServiceAccount","apiVersion":"v1","metadata":{"name":"sa"}}"#,
        ),
        (
            "rbac.authorization.k8s.io",
            "rolebindings",
            "6b3873000a2b0a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f7631120b526f6c6542696e64696e671287010a120a02726212001a0022002a00320038004200122a0a04557365721219726261632e617574686f72697a6174696f6e2e6b38732e696f1a05616c6963652200121f0a0e536572766963654163636f756e7412001a027361220764656661756c741a240a19726261632e617574686f72697a6174696f6e2e6b38732e696f1204526f6c651a01721a002200",
            r#"{"kind":"RoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"rb"},"subjects":[{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"alice"},{"kind":"ServiceAccount","name":"sa","namespace":"default"}],"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"r"}}"#,
        ),
        (
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            "6b3873000a320a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f76311212436c7573746572526f6c6542696e64696e67126c0a130a0363726212001a0022002a0032003800420012270a0547726f75701219726261632e617574686f72697a6174696f6e2e6b38732e696f1a016722001a2c0a19726261632e617574686f72697a6174696f6e2e6b38732e696f120b436c7573746572526f6c651a0263721a002200",
            r#"{"kind":"ClusterRoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"crb"},"subjects":[{"kind":"Group","apiGroup":"rbac.authorization.k8s.io","name":"g"}],"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"cr"}}"#,
        ),
        (
            "rbac.authorization.k8s.io",
            "clusterroles",
            "6b3873000a2b0a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f7631120b436c7573746572526f6c6512200a120a02637212001a0022002a003200380042001a0a0a080a060a01611201621a002200",
            r#"{"kind":"ClusterRole","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"cr"},"rules":null,"aggregationRule":{"clusterRoleSelectors":[{"matchLabels":{"a":"b"}}]}}"#,
        ),
        (
            "rbac.authorization.k8s.io",
            "clusterroles",
            "6b3873000a2b0a1c726261632e617574686f72697a6174696f6e2e6b38732e696f2f7631120b436c7573746572526f6c6512260a130a0363723212001a0022002a00320038004200120f0a036765742a082f6865616c74687a1a002200",
            r#"{"kind":"ClusterRole","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"cr2"},"rules":[{"verbs":["get"],"nonResourceURLs":["/healthz"]}]}"#,
        ),
        (
            "",
            "secrets",
            "6b3873000a0c0a0276311206536563726574128f010a110a016412001a0022002a00320038004200125a0a112e646f636b6572636f6e6669676a736f6e12457b226175746873223a7b22722e6578616d706c65223a7b22757365726e616d65223a2275222c2270617373776f7264223a2270222c2261757468223a2264547077227d7d7d1a1e6b756265726e657465732e696f2f646f636b6572636f6e6669676a736f6e1a002200",
            r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"d"},"data":{".dockerconfigjson":"eyJhdXRocyI6eyJyLmV4YW1wbGUiOnsidXNlcm5hbWUiOiJ1IiwicGFzc3dvcmQiOiJwIiwiYXV0aCI6ImRUcHcifX19"},"type":"kubernetes.io/dockerconfigjson"}"#,
        ),
        (
            "",
            "secrets",
            "6b3873000a0c0a0276311206536563726574123e0a1a0a05696d6d757412001a056f7468657222002a0032003800420012060a01611201621a186b756265726e657465732e696f2f62617369632d617574681a002200",
            r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"immut","namespace":"other"},"data":{"a":"Yg=="},"type":"kubernetes.io/basic-auth"}"#,
        ),
    ];

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn resource(group: &str, plural: &str) -> ResourceType {
        Registry::with_builtins()
            .find(group, "v1", plural)
            .cloned()
            .unwrap()
    }

    fn secrets() -> ResourceType {
        resource("", "secrets")
    }

    fn message(error: Error) -> String {
        match error {
            Error::BadRequest(message) => message,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    /// A body as the Go encoder writes one: magic, then Unknown around `raw`.
    fn body(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [MAGIC.as_slice(), &unknown.encode_to_vec()].concat()
    }

    #[test]
    fn kubectl_bodies_decode_to_the_json_kubectl_would_have_sent() {
        let registry = Registry::with_builtins();
        for (group, plural, body, expected) in KUBECTL_BODIES {
            let rt = resource(group, plural);
            assert!(speaks(&rt), "{plural}");
            let decoded = decode(&rt, &hex(body), &registry).unwrap();
            let expected: Value = serde_json::from_str(expected).unwrap();
            assert_eq!(decoded, expected, "{plural}");
        }
    }

    #[test]
    fn only_the_listed_builtin_kinds_speak_protobuf() {
        let registry = Registry::with_builtins();
        let spoken: Vec<&str> = registry
            .all()
            .iter()
            .filter(|t| speaks(t))
            .map(|t| t.kind.as_str())
            .collect();
        assert_eq!(
            spoken,
            [
                "Namespace",
                "Secret",
                "ConfigMap",
                "ServiceAccount",
                "Role",
                "ClusterRole",
                "RoleBinding",
                "ClusterRoleBinding",
                "CertificateSigningRequest"
            ]
        );
        let mut custom = secrets();
        custom.custom = true;
        assert!(!speaks(&custom));
        assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
        assert!(is_protobuf(
            "Application/VND.Kubernetes.Protobuf; charset=x"
        ));
        assert!(!is_protobuf("application/json"));
    }

    #[test]
    fn unreadable_bodies_are_the_apiservers_400s() {
        let registry = Registry::with_builtins();
        let rt = secrets();
        let decode = |body: &[u8]| message(decode(&rt, body, &registry).unwrap_err());
        assert_eq!(
            decode(b""),
            "the object provided is unrecognized (must be of type Secret): empty data (<empty>)"
        );
        assert_eq!(
            decode(br#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"x"}}"#),
            "the object provided is unrecognized (must be of type Secret): provided data does not appear to be a protobuf message, expected prefix [107 56 115 0] ({\"kind\":\"Secret\",\"apiVersion\": ...)"
        );
        assert_eq!(
            decode(b"k8s\0"),
            "the object provided is unrecognized (must be of type Secret): empty body (6b387300)"
        );
        assert_eq!(
            decode(b"\x00\x01\x02"),
            "the object provided is unrecognized (must be of type Secret): provided data does not appear to be a protobuf message, expected prefix [107 56 115 0] (000102)"
        );
        // Cut short inside the Unknown envelope: unreadable, so no kind to blame.
        let whole = hex(KUBECTL_BODIES[0].2);
        let truncated = decode(&whole[..whole.len() - 10]);
        assert!(
            truncated.starts_with(
                "the object provided is unrecognized (must be of type Secret): failed to decode Protobuf message"
            ),
            "{truncated}"
        );
        assert!(truncated.ends_with(" ...)"), "{truncated}");
    }

    #[test]
    fn bodies_of_the_wrong_kind_or_with_a_broken_raw_are_400s_naming_the_kind() {
        let registry = Registry::with_builtins();
        let rt = secrets();
        let decode = |body: Vec<u8>| decode(&rt, &body, &registry).map_err(message);
        // A raw that is not a Secret message.
        let garbage = decode(body("v1", "Secret", vec![0x0a, 0xff, 0xff])).unwrap_err();
        assert!(
            garbage.starts_with("Secret in version \"v1\" cannot be handled as a Secret: "),
            "{garbage}"
        );
        // A ConfigMap sent to the secrets endpoint: decoded, then not convertible.
        let config_map = core::ConfigMap {
            metadata: Some(meta::ObjectMeta {
                name: Some("c".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            decode(body("v1", "ConfigMap", config_map.encode_to_vec())).unwrap_err(),
            "ConfigMap in version \"v1\" cannot be handled as a Secret: converting (v1.ConfigMap) to (core.Secret): unknown conversion"
        );
        assert_eq!(
            decode(body(RBAC_V1, "Role", Vec::new())).unwrap_err(),
            "Role in version \"v1\" cannot be handled as a Secret: converting (v1.Role) to (core.Secret): unknown conversion"
        );
        // A kind the server does not know.
        assert_eq!(
            decode(body("v1", "secret", Vec::new())).unwrap_err(),
            "secret in version \"v1\" cannot be handled as a Secret: no kind \"secret\" is registered for version \"v1\" in scheme \"pkg/api/legacyscheme/scheme.go:30\""
        );
        assert_eq!(
            decode(body("v2", "Secret", Vec::new())).unwrap_err(),
            "Secret in version \"v2\" cannot be handled as a Secret: no kind \"Secret\" is registered for version \"v2\" in scheme \"pkg/api/legacyscheme/scheme.go:30\""
        );
        // No typeMeta at all: the URL's kind and version, as the Go decoder defaults them.
        let secret = core::Secret {
            metadata: Some(meta::ObjectMeta {
                name: Some("s".into()),
                ..Default::default()
            }),
            string_data: [("k".to_string(), "v".to_string())].into(),
            ..Default::default()
        };
        let bare = Unknown {
            raw: Some(secret.encode_to_vec()),
            ..Default::default()
        };
        assert_eq!(
            decode([MAGIC.as_slice(), &bare.encode_to_vec()].concat()).unwrap(),
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}})
        );
    }

    const RBAC_V1: &str = "rbac.authorization.k8s.io/v1";

    /// A stored Secret with every metadata field the store writes.
    fn stored_secret() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {
                "name": "tls", "namespace": "team-a", "uid": "0b9c7f0e-1d2a-4c3b-8e4f-5a6b7c8d9e0f",
                "resourceVersion": "42", "creationTimestamp": "2026-02-01T10:00:00Z",
                "labels": {"app": "relay"}, "annotations": {"note": "x"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "u-1", "controller": false}],
                "finalizers": ["example.com/keep"],
                "managedFields": [{
                    "manager": "kubectl-create", "operation": "Update", "apiVersion": "v1",
                    "time": "2026-02-01T10:00:00Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {".": {}, "f:tls.crt": {}}, "f:type": {}}
                }]
            },
            "data": {"tls.crt": "AAEC/w==", "tls.key": ""},
            "immutable": false,
            "type": "kubernetes.io/tls"
        })
    }

    fn unwrap_unknown(body: &[u8]) -> Unknown {
        assert_eq!(&body[..4], b"k8s\0");
        Unknown::decode(&body[4..]).unwrap()
    }

    #[test]
    fn objects_encode_as_the_go_encoder_writes_them() {
        let unknown = unwrap_unknown(&encode(&stored_secret()).unwrap());
        let type_meta = unknown.type_meta.unwrap();
        assert_eq!(type_meta.api_version.as_deref(), Some("v1"));
        assert_eq!(type_meta.kind.as_deref(), Some("Secret"));
        assert_eq!(unknown.content_type.as_deref(), Some(""));
        let secret = core::Secret::decode(unknown.raw.unwrap().as_slice()).unwrap();
        assert_eq!(secret.data["tls.crt"], [0, 1, 2, 255]);
        assert_eq!(secret.data["tls.key"], Vec::<u8>::new());
        assert_eq!(secret.r#type.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(secret.immutable, Some(false));
        let metadata = secret.metadata.unwrap();
        assert_eq!(metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(
            metadata.creation_timestamp.and_then(|t| t.seconds),
            Some(1_769_940_000)
        );
        assert_eq!(metadata.owner_references[0].controller, Some(false));
        let fields = metadata.managed_fields[0].fields_v1.clone().unwrap();
        let fields: Value = serde_json::from_slice(&fields.raw.unwrap()).unwrap();
        assert_eq!(fields["f:type"], json!({}));
    }

    #[test]
    fn stored_objects_survive_a_round_trip() {
        let objects = [
            stored_secret(),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "creationTimestamp": "2026-02-01T10:00:00Z"},
                   "spec": {"finalizers": ["kubernetes"]},
                   "status": {"phase": "Terminating", "conditions": [{"type": "NamespaceDeletionContentFailure", "status": "False", "lastTransitionTime": "2026-02-01T10:00:01Z", "reason": "ContentDeleted"}]}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "d", "generation": 3},
                   "data": {"a": "1"}, "binaryData": {"b": "/w=="}, "immutable": true}),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": "d", "deletionTimestamp": "2026-02-01T10:00:00Z", "deletionGracePeriodSeconds": 0},
                   "secrets": [{"name": "token", "namespace": "d"}], "imagePullSecrets": [{"name": "pull"}], "automountServiceAccountToken": false}),
            json!({"apiVersion": RBAC_V1, "kind": "Role", "metadata": {"name": "r", "namespace": "d"},
                   "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a"]}]}),
            json!({"apiVersion": RBAC_V1, "kind": "ClusterRole", "metadata": {"name": "cr"}, "rules": null,
                   "aggregationRule": {"clusterRoleSelectors": [{"matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]}]}}),
            json!({"apiVersion": RBAC_V1, "kind": "RoleBinding", "metadata": {"name": "rb", "namespace": "d"},
                   "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "d"}],
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}}),
            json!({"apiVersion": RBAC_V1, "kind": "ClusterRoleBinding", "metadata": {"name": "crb"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cr"}}),
        ];
        let registry = Registry::with_builtins();
        for object in objects {
            let api_version = object["apiVersion"].as_str().unwrap();
            let kind = object["kind"].as_str().unwrap();
            let rt = registry.find_kind(api_version, kind).unwrap().clone();
            let again = decode(&rt, &encode(&object).unwrap(), &registry).unwrap();
            assert_eq!(again, object, "{kind}");
        }
    }

    #[test]
    fn lists_statuses_and_metadata_encode() {
        let list = json!({
            "apiVersion": "v1", "kind": "SecretList",
            "metadata": {"resourceVersion": "9", "continue": "c", "remainingItemCount": 2},
            "items": [stored_secret(), {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "b"}}]
        });
        let unknown = unwrap_unknown(&encode(&list).unwrap());
        assert_eq!(
            unknown.type_meta.unwrap().kind.as_deref(),
            Some("SecretList")
        );
        let decoded = core::SecretList::decode(unknown.raw.unwrap().as_slice()).unwrap();
        let list_meta = decoded.metadata.unwrap();
        assert_eq!(list_meta.r#continue.as_deref(), Some("c"));
        assert_eq!(list_meta.remaining_item_count, Some(2));
        assert_eq!(decoded.items.len(), 2);
        assert_eq!(
            decoded.items[1].metadata.as_ref().unwrap().name.as_deref(),
            Some("b")
        );

        let status = Error::NotFound {
            resource: "namespaces".into(),
            name: "missing".into(),
        }
        .to_status();
        let unknown = unwrap_unknown(&encode(&status).unwrap());
        assert_eq!(unknown.type_meta.unwrap().kind.as_deref(), Some("Status"));
        let decoded = meta::Status::decode(unknown.raw.unwrap().as_slice()).unwrap();
        assert_eq!(decoded.code, Some(404));
        assert_eq!(decoded.reason.as_deref(), Some("NotFound"));
        assert_eq!(
            decoded.message.as_deref(),
            Some("namespaces \"missing\" not found")
        );
        let details = decoded.details.unwrap();
        assert_eq!(details.kind.as_deref(), Some("namespaces"));
        assert_eq!(details.name.as_deref(), Some("missing"));

        let partial = crate::metadata::partial_list(&list, crate::metadata::MetaVersion::V1);
        let unknown = unwrap_unknown(&encode(&partial).unwrap());
        let type_meta = unknown.type_meta.unwrap();
        assert_eq!(type_meta.api_version.as_deref(), Some("meta.k8s.io/v1"));
        assert_eq!(type_meta.kind.as_deref(), Some("PartialObjectMetadataList"));
        let decoded =
            meta::PartialObjectMetadataList::decode(unknown.raw.unwrap().as_slice()).unwrap();
        assert_eq!(
            decoded.items[0].metadata.as_ref().unwrap().labels["app"],
            "relay"
        );

        // Kinds without a protobuf form are not encoded (the caller never negotiates them).
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}});
        assert!(matches!(encode(&lease), Err(Error::Internal(_))));
    }

    #[test]
    fn times_follow_metav1_time() {
        let zero = meta::Time {
            seconds: Some(0),
            nanos: Some(0),
        };
        assert_eq!(time_to_json(Some(zero)).unwrap(), None);
        assert_eq!(time_to_json(Some(meta::Time::default())).unwrap(), None);
        // Whole seconds in JSON, as Go's RFC 3339 layout writes them.
        let later = meta::Time {
            seconds: Some(1_769_940_000),
            nanos: Some(999_000_000),
        };
        assert_eq!(
            time_to_json(Some(later)).unwrap().as_deref(),
            Some("2026-02-01T10:00:00Z")
        );
        let parsed = time_from_json(&json!({"t": "2026-02-01T10:00:00.5Z"}), "t")
            .unwrap()
            .unwrap();
        assert_eq!(parsed.seconds, Some(1_769_940_000));
        assert_eq!(parsed.nanos, Some(500_000_000));
        assert!(time_from_json(&json!({"t": "yesterday"}), "t").is_err());
        // A non-pointer Time that is not omitzero shows the zero time as null.
        let ns = core::Namespace {
            status: Some(core::NamespaceStatus {
                conditions: vec![core::NamespaceCondition {
                    r#type: Some("X".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let fields = namespace_to_json(ns).unwrap();
        assert_eq!(
            fields["status"]["conditions"][0],
            json!({"type": "X", "status": "", "lastTransitionTime": null})
        );
    }

    #[test]
    fn delete_options_decode() {
        let options = meta::DeleteOptions {
            preconditions: Some(meta::Preconditions {
                uid: Some("u-1".into()),
                resource_version: Some("7".into()),
            }),
            propagation_policy: Some("Foreground".into()),
            ..Default::default()
        };
        let decoded =
            decode_delete_options(&body("v1", "DeleteOptions", options.encode_to_vec())).unwrap();
        assert_eq!(
            decoded,
            json!({"preconditions": {"uid": "u-1", "resourceVersion": "7"}, "propagationPolicy": "Foreground"})
        );
        assert!(matches!(
            decode_delete_options(b"{}"),
            Err(Error::BadRequest(_))
        ));
    }
}
