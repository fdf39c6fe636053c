//! Type-specific rules of built-in resources, applied on every create and update: names,
//! Secrets (stringData, base64, type, TLS keys, immutability), Lease MicroTimes, and
//! events.k8s.io/v1 Events. Custom resources are validated by `schema`.

use crate::Error;
use crate::error::Cause;
use crate::registry::ResourceType;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

fn invalid(rt: &ResourceType, name: &str, field: &str, reason: &str, message: String) -> Error {
    Error::Invalid {
        kind: rt.kind.clone(),
        name: name.to_string(),
        causes: vec![Cause {
            reason: reason.into(),
            message,
            field: field.into(),
        }],
    }
}

/// Whether `name` is a DNS-1123 subdomain (what most resources require).
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Checks apiVersion/kind/namespace/name against the URL and fills defaults; returns the name.
pub fn check_identity(
    rt: &ResourceType,
    object: &mut Value,
    url_namespace: &str,
    url_name: Option<&str>,
) -> Result<String, Error> {
    let map = object
        .as_object_mut()
        .ok_or_else(|| Error::BadRequest("the request body is not a JSON object".into()))?;
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !api_version.is_empty() && api_version != rt.api_version() {
        return Err(Error::BadRequest(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    if !kind.is_empty() && kind != rt.kind {
        return Err(Error::BadRequest(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    map.insert("apiVersion".into(), Value::String(rt.api_version()));
    map.insert("kind".into(), Value::String(rt.kind.clone()));
    let meta = crate::store::metadata_mut(object);
    if rt.namespaced {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != url_namespace => {
                return Err(Error::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            _ => {
                meta.insert("namespace".into(), Value::String(url_namespace.to_string()));
            }
        }
    } else {
        meta.remove("namespace");
    }
    let mut name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(url_name) = url_name {
        if name.is_empty() {
            name = url_name.to_string();
            meta.insert("name".into(), Value::String(name.clone()));
        } else if name != url_name {
            return Err(Error::BadRequest(format!(
                "the name of the object ({name}) does not match the name on the URL ({url_name})"
            )));
        }
    }
    if name.is_empty() {
        let prefix = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if prefix.is_empty() {
            return Err(Error::Invalid {
                kind: rt.kind.clone(),
                name: String::new(),
                causes: vec![Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: name or generateName is required".into(),
                    field: "metadata.name".into(),
                }],
            });
        }
        name = format!("{prefix}{}", &crate::store::new_uid().replace('-', "")[..5]);
        meta.insert("name".into(), Value::String(name.clone()));
    }
    if !is_dns_subdomain(&name) {
        return Err(invalid(
            rt,
            &name,
            "metadata.name",
            "FieldValueInvalid",
            format!(
                "Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            ),
        ));
    }
    Ok(name)
}

/// The conditions only a CertificateSigningRequest's `approval` subresource may add.
const APPROVAL_CONDITIONS: [&str; 2] = ["Approved", "Denied"];

/// The conditions no update may remove.
const PERMANENT_CONDITIONS: [&str; 3] = ["Approved", "Denied", "Failed"];

fn conditions(object: &Value) -> Vec<Value> {
    object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn of_type<'a>(conditions: &'a [Value], kind: &str) -> Vec<&'a Value> {
    conditions
        .iter()
        .filter(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        .collect()
}

fn set_conditions(object: &mut Value, conditions: Vec<Value>) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let status = map
        .entry("status")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(status) = status.as_object_mut() {
        if conditions.is_empty() {
            status.remove("conditions");
        } else {
            status.insert("conditions".into(), Value::Array(conditions));
        }
    }
}

/// What a write through `subresource` (None: the object itself) may change, as kube-apiserver's
/// update strategies decide it, applied to `new` given the stored `old`, then the rules of such
/// an update. Only CertificateSigningRequests have any:
/// - the object itself: neither spec nor status changes;
/// - `approval`: only the conditions change (and only there may Approved or Denied be added);
/// - `status`: the spec stays; Approved and Denied keep their stored values;
/// - no update removes an Approved, Denied or Failed condition, and a certificate, once set,
///   never changes.
pub fn subresource_rules(
    rt: &ResourceType,
    subresource: Option<&str>,
    old: &Value,
    new: &mut Value,
) -> Result<(), Error> {
    if (rt.group.as_str(), rt.kind.as_str()) != ("certificates.k8s.io", "CertificateSigningRequest")
    {
        return Ok(());
    }
    let name = crate::store::name_of(old).to_string();
    let keep = |new: &mut Value, field: &str| {
        if let Some(map) = new.as_object_mut() {
            match old.get(field) {
                Some(value) => map.insert(field.into(), value.clone()),
                None => map.remove(field),
            };
        }
    };
    keep(new, "spec");
    match subresource {
        None => keep(new, "status"),
        Some("approval") => {
            let taken = conditions(new);
            keep(new, "status");
            set_conditions(new, taken);
        }
        Some(_) => {
            // Approved and Denied instances keep their stored values where their number did not
            // change (a change of number is refused below).
            let stored = conditions(old);
            let mut taken = conditions(new);
            for kind in APPROVAL_CONDITIONS {
                let before = of_type(&stored, kind);
                let positions: Vec<usize> = taken
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.get("type").and_then(Value::as_str) == Some(kind))
                    .map(|(i, _)| i)
                    .collect();
                if before.len() == positions.len() {
                    for (position, value) in positions.into_iter().zip(before) {
                        taken[position] = value.clone();
                    }
                }
            }
            set_conditions(new, taken);
        }
    }
    let (before, after) = (conditions(old), conditions(new));
    let mut causes = Vec::new();
    let mut forbid = |field: &str, message: String| {
        causes.push(Cause {
            reason: "FieldValueForbidden".into(),
            message: format!("Forbidden: {message}"),
            field: field.into(),
        })
    };
    for kind in PERMANENT_CONDITIONS {
        if of_type(&after, kind).len() < of_type(&before, kind).len() {
            forbid(
                "status.conditions",
                format!("updates may not remove a condition of type {kind:?}"),
            );
        }
    }
    if subresource != Some("approval") {
        for kind in APPROVAL_CONDITIONS {
            if of_type(&after, kind).len() > of_type(&before, kind).len() {
                forbid(
                    "status.conditions",
                    format!("updates may not add a condition of type {kind:?}"),
                );
            }
        }
    }
    let certificate = |object: &Value| {
        object
            .pointer("/status/certificate")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (issued, written) = (certificate(old), certificate(new));
    if issued != written {
        if subresource != Some("status") {
            forbid(
                "status.certificate",
                "updates may not set certificate content".into(),
            );
        } else if !issued.is_empty() {
            forbid(
                "status.certificate",
                "updates may not modify existing certificate content".into(),
            );
        }
    }
    causes_to_error(rt, &name, causes)
}

/// The problem with `pem` as a CSR's certificate (kube-apiserver's rule: CERTIFICATE blocks
/// only, at least one, no headers, each a certificate), if any.
fn certificate_problem(pem: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(pem);
    let mut blocks = 0;
    let mut rest = text.as_ref();
    while let Some(begin) = rest.find("-----BEGIN ") {
        let after = &rest[begin + "-----BEGIN ".len()..];
        let label = after.split("-----").next().unwrap_or_default();
        if label != "CERTIFICATE" {
            return Some(format!(
                "only CERTIFICATE PEM blocks are allowed, found {label:?}"
            ));
        }
        let end_marker = "-----END CERTIFICATE-----";
        let Some(end) = after.find(end_marker) else {
            break;
        };
        let body: String = after[label.len() + 5..end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        match STANDARD.decode(&body) {
            Ok(der) if x509_parser::parse_x509_certificate(&der).is_ok() => blocks += 1,
            Ok(_) => return Some("x509: malformed certificate".into()),
            Err(_) => break,
        }
        rest = &after[end + end_marker.len()..];
    }
    (blocks == 0).then(|| "must contain at least one CERTIFICATE PEM block".to_string())
}

/// CertificateSigningRequest rules on every write (certificates.k8s.io/v1 validation): a PEM
/// certificate request and a signer name; Approved and Denied not both; a certificate of PEM
/// CERTIFICATE blocks only; condition timestamps filled in. What an update may change is
/// [`subresource_rules`].
fn csr_rules(object: &mut Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut cause = |field: &str, reason: &str, message: String| {
        causes.push(Cause {
            reason: reason.into(),
            message,
            field: field.into(),
        })
    };
    let decoded = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(|b64| STANDARD.decode(b64))
    };
    match decoded("/spec/request") {
        None => cause(
            "spec.request",
            "FieldValueRequired",
            "Required value".into(),
        ),
        Some(Ok(pem))
            if String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE REQUEST-----") => {}
        Some(_) => cause(
            "spec.request",
            "FieldValueInvalid",
            "Invalid value: []byte{...}: PEM block type must be CERTIFICATE REQUEST".into(),
        ),
    }
    if object
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        cause(
            "spec.signerName",
            "FieldValueRequired",
            "Required value".into(),
        );
    }
    let all = conditions(object);
    if !of_type(&all, "Approved").is_empty() && !of_type(&all, "Denied").is_empty() {
        cause(
            "status.conditions",
            "FieldValueInvalid",
            "Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive"
                .into(),
        );
    }
    if let Some(Ok(pem)) = decoded("/status/certificate")
        && !pem.is_empty()
        && let Some(problem) = certificate_problem(&pem)
    {
        cause(
            "status.certificate",
            "FieldValueInvalid",
            format!("Invalid value: \"<certificate data>\": {problem}"),
        );
    }
    // Timestamps kube-apiserver fills in.
    let now = crate::now_rfc3339();
    if let Some(list) = object
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for condition in list.iter_mut().filter_map(Value::as_object_mut) {
            for field in ["lastUpdateTime", "lastTransitionTime"] {
                condition
                    .entry(field)
                    .or_insert_with(|| Value::String(now.clone()));
            }
        }
    }
    causes
}

/// Applies the built-in rules for `rt` to `object` (the new state) given the stored `old` one.
pub fn builtin_rules(
    rt: &ResourceType,
    object: &mut Value,
    old: Option<&Value>,
) -> Result<(), Error> {
    let name = crate::store::name_of(object).to_string();
    causes_to_error(rt, &name, finalizer_rules(object))?;
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => {
            // kube-apiserver labels every namespace with its own name.
            let meta = crate::store::metadata_mut(object);
            let labels = meta
                .entry("labels")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert(
                    "kubernetes.io/metadata.name".into(),
                    Value::String(name.clone()),
                );
            }
            Ok(())
        }
        ("", "Secret") => secret_rules(rt, &name, object, old),
        ("coordination.k8s.io", "Lease") => {
            for field in ["acquireTime", "renewTime"] {
                normalise_micro_time(object, "spec", field).map_err(|m| {
                    invalid(rt, &name, &format!("spec.{field}"), "FieldValueInvalid", m)
                })?;
            }
            Ok(())
        }
        ("events.k8s.io", "Event") => event_rules(rt, &name, object),
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            causes_to_error(rt, &name, csr_rules(object))
        }
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => {
            causes_to_error(rt, &name, role_rules(rt, object))
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            causes_to_error(rt, &name, binding_rules(rt, object, old))
        }
        _ => Ok(()),
    }
}

/// The finalizer names kube-apiserver accepts without a `/` (the standard ones).
const STANDARD_FINALIZERS: [&str; 3] = ["kubernetes", "orphan", "foregroundDeletion"];

/// Every object's `metadata.finalizers`: a standard name or a qualified `prefix/name`.
fn finalizer_rules(object: &Value) -> Vec<Cause> {
    let finalizers = object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    finalizers
        .iter()
        .enumerate()
        .filter_map(|(i, f)| {
            let f = f.as_str().unwrap_or_default();
            (!f.contains('/') && !STANDARD_FINALIZERS.contains(&f)).then(|| Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {}: name is neither a standard finalizer name nor is it fully qualified",
                    crate::error::go_quote(f)
                ),
                field: format!("metadata.finalizers[{i}]"),
            })
        })
        .collect()
}

fn causes_to_error(rt: &ResourceType, name: &str, causes: Vec<Cause>) -> Result<(), Error> {
    if causes.is_empty() {
        return Ok(());
    }
    Err(Error::Invalid {
        kind: rt.kind.clone(),
        name: name.to_string(),
        causes,
    })
}

fn cause(field: String, reason: &str, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        message,
        field,
    }
}

/// Go's `%q` list of supported values, as `field.NotSupported` prints it.
fn supported(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| crate::error::go_quote(v))
        .collect::<Vec<_>>()
        .join(", ")
}

fn not_supported(field: String, value: &str, values: &[&str]) -> Cause {
    cause(
        field,
        "FieldValueNotSupported",
        format!(
            "Unsupported value: {}: supported values: {}",
            crate::error::go_quote(value),
            supported(values)
        ),
    )
}

fn strings_at<'a>(object: &'a Value, key: &str) -> Vec<&'a str> {
    object
        .get(key)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// kube-apiserver's `ValidatePolicyRule` over `rules` (Role and ClusterRole). A ClusterRole
/// with an aggregationRule may have no rules (the aggregation controller, which the sandbox
/// does not run, would fill them).
fn role_rules(rt: &ResourceType, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let rules: &[Value] = object
        .get("rules")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, rule) in rules.iter().enumerate() {
        let at = |child: &str| format!("rules[{i}].{child}");
        if strings_at(rule, "verbs").is_empty() {
            causes.push(cause(
                at("verbs"),
                "FieldValueRequired",
                "Required value: verbs must contain at least one value".into(),
            ));
        }
        let urls = strings_at(rule, "nonResourceURLs");
        if !urls.is_empty() {
            // field.Invalid shows a list as JSON.
            let shown = Value::from(urls.clone()).to_string();
            if rt.namespaced {
                causes.push(cause(
                    at("nonResourceURLs"),
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {shown}: namespaced rules cannot apply to non-resource URLs"
                    ),
                ));
            }
            if ["apiGroups", "resources", "resourceNames"]
                .iter()
                .any(|k| !strings_at(rule, k).is_empty())
            {
                causes.push(cause(
                    at("nonResourceURLs"),
                    "FieldValueInvalid",
                    format!("Invalid value: {shown}: rules cannot apply to both regular resources and non-resource URLs"),
                ));
            }
            continue;
        }
        if rule
            .get("apiGroups")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            causes.push(cause(
                at("apiGroups"),
                "FieldValueRequired",
                "Required value: resource rules must supply at least one api group".into(),
            ));
        }
        if strings_at(rule, "resources").is_empty() {
            causes.push(cause(
                at("resources"),
                "FieldValueRequired",
                "Required value: resource rules must supply at least one resource".into(),
            ));
        }
    }
    causes
}

/// kube-apiserver's RoleBinding/ClusterRoleBinding validation: the roleRef (immutable once
/// set) and each subject.
fn binding_rules(rt: &ResourceType, object: &Value, old: Option<&Value>) -> Vec<Cause> {
    const RBAC: &str = "rbac.authorization.k8s.io";
    let mut causes = Vec::new();
    let role_ref = object.get("roleRef").unwrap_or(&Value::Null);
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let api_group = text(role_ref, "apiGroup");
    if api_group != RBAC {
        causes.push(not_supported(
            "roleRef.apiGroup".into(),
            &api_group,
            &[RBAC],
        ));
    }
    let kinds: &[&str] = if rt.namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    let kind = text(role_ref, "kind");
    if !kinds.contains(&kind.as_str()) {
        causes.push(not_supported("roleRef.kind".into(), &kind, kinds));
    }
    if text(role_ref, "name").is_empty() {
        causes.push(cause(
            "roleRef.name".into(),
            "FieldValueRequired",
            "Required value".into(),
        ));
    }
    let subjects: &[Value] = object
        .get("subjects")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, subject) in subjects.iter().enumerate() {
        let at = |child: &str| format!("subjects[{i}].{child}");
        let name = text(subject, "name");
        if name.is_empty() {
            causes.push(cause(
                at("name"),
                "FieldValueRequired",
                "Required value".into(),
            ));
        }
        let group = text(subject, "apiGroup");
        match text(subject, "kind").as_str() {
            "ServiceAccount" => {
                if !group.is_empty() {
                    causes.push(not_supported(at("apiGroup"), &group, &[""]));
                }
                if !rt.namespaced && text(subject, "namespace").is_empty() {
                    causes.push(cause(
                        at("namespace"),
                        "FieldValueRequired",
                        "Required value".into(),
                    ));
                }
            }
            "User" | "Group" => {
                if group != RBAC {
                    causes.push(not_supported(at("apiGroup"), &group, &[RBAC]));
                }
            }
            other => causes.push(not_supported(
                at("kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    if let Some(old) = old
        && old.get("roleRef") != object.get("roleRef")
    {
        // field.Invalid shows the (internal, untagged) RoleRef struct as JSON.
        let shown = serde_json::json!({
            "APIGroup": text(role_ref, "apiGroup"),
            "Kind": text(role_ref, "kind"),
            "Name": text(role_ref, "name"),
        });
        causes.push(cause(
            "roleRef".into(),
            "FieldValueInvalid",
            format!("Invalid value: {shown}: cannot change roleRef"),
        ));
    }
    causes
}

fn secret_rules(
    rt: &ResourceType,
    name: &str,
    object: &mut Value,
    old: Option<&Value>,
) -> Result<(), Error> {
    let map = object
        .as_object_mut()
        .ok_or_else(|| Error::BadRequest("not an object".into()))?;
    let mut data = match map.remove("data") {
        Some(Value::Object(d)) => d,
        Some(Value::Null) | None => Map::new(),
        Some(_) => return Err(Error::BadRequest(
            "Secret in version \"v1\" cannot be handled as a Secret: data must be a map of strings"
                .into(),
        )),
    };
    for (key, value) in &data {
        let ok = value.as_str().is_some_and(|s| STANDARD.decode(s).is_ok());
        if !ok {
            return Err(Error::BadRequest(format!(
                "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 0 (key {key:?})"
            )));
        }
    }
    if let Some(Value::Object(string_data)) = map.remove("stringData") {
        for (key, value) in string_data {
            let text = value.as_str().unwrap_or_default();
            data.insert(key, Value::String(STANDARD.encode(text)));
        }
    }
    let secret_type = map
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .unwrap_or("Opaque")
        .to_string();
    map.insert("type".into(), Value::String(secret_type.clone()));
    if secret_type == "kubernetes.io/tls" {
        for key in ["tls.crt", "tls.key"] {
            if !data.contains_key(key) {
                return Err(invalid(
                    rt,
                    name,
                    &format!("data[{key}]"),
                    "FieldValueRequired",
                    "Required value".into(),
                ));
            }
        }
    }
    if let Some(old) = old {
        let old_type = old.get("type").and_then(Value::as_str).unwrap_or("Opaque");
        if old_type != secret_type {
            return Err(invalid(
                rt,
                name,
                "type",
                "FieldValueInvalid",
                format!("Invalid value: \"{secret_type}\": field is immutable"),
            ));
        }
        if old.get("immutable").and_then(Value::as_bool) == Some(true) {
            let old_data = old
                .get("data")
                .cloned()
                .unwrap_or(Value::Object(Map::new()));
            if old_data != Value::Object(data.clone()) {
                return Err(invalid(
                    rt,
                    name,
                    "data",
                    "FieldValueForbidden",
                    "Forbidden: field is immutable when `immutable` is set".into(),
                ));
            }
            if map.get("immutable").and_then(Value::as_bool) != Some(true) {
                return Err(invalid(
                    rt,
                    name,
                    "immutable",
                    "FieldValueForbidden",
                    "Forbidden: field is immutable when `immutable` is set".into(),
                ));
            }
        }
    }
    if !data.is_empty() {
        map.insert("data".into(), Value::Object(data));
    }
    Ok(())
}

fn event_rules(rt: &ResourceType, name: &str, object: &mut Value) -> Result<(), Error> {
    let mut causes = Vec::new();
    let mut cause = |field: &str, reason: &str, message: String| {
        causes.push(Cause {
            reason: reason.into(),
            message,
            field: field.into(),
        })
    };
    if object.get("eventTime").is_none_or(Value::is_null) {
        cause("eventTime", "FieldValueRequired", "Required value".into());
    } else if let Err(m) = normalise_micro_time(object, "", "eventTime") {
        cause("eventTime", "FieldValueInvalid", m);
    }
    match object.get("type").and_then(Value::as_str) {
        Some("Normal" | "Warning") => {}
        Some(other) => cause(
            "type",
            "FieldValueInvalid",
            format!("Invalid value: \"{other}\": has invalid value: {other}"),
        ),
        None => cause("type", "FieldValueRequired", "Required value".into()),
    }
    for (field, limit) in [("reason", 128), ("action", 128), ("note", 1024)] {
        if let Some(text) = object.get(field).and_then(Value::as_str)
            && text.len() > limit
        {
            cause(
                field,
                "FieldValueTooLong",
                format!("Too long: may not be longer than {limit}"),
            );
        }
    }
    for field in [
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
    ] {
        if object
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            cause(field, "FieldValueRequired", "Required value".into());
        }
    }
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Some(regarding_ns) = object
        .pointer("/regarding/namespace")
        .and_then(Value::as_str)
        && !regarding_ns.is_empty()
        && regarding_ns != namespace
    {
        cause(
            "regarding.namespace",
            "FieldValueInvalid",
            format!("Invalid value: \"{regarding_ns}\": does not match event.namespace"),
        );
    }
    if let Some(t) = object
        .pointer("/series/lastObservedTime")
        .and_then(Value::as_str)
        .map(str::to_string)
        && let Some(series) = object.get_mut("series")
    {
        match micro_time(&t) {
            Ok(fixed) => {
                if let Some(m) = series.as_object_mut() {
                    m.insert("lastObservedTime".into(), Value::String(fixed));
                }
            }
            Err(m) => causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: m,
                field: "series.lastObservedTime".into(),
            }),
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid {
            kind: rt.kind.clone(),
            name: name.to_string(),
            causes,
        })
    }
}

/// Rewrites a time field as a MicroTime (RFC 3339 with exactly six fractional digits, UTC).
fn normalise_micro_time(object: &mut Value, parent: &str, field: &str) -> Result<(), String> {
    let target = if parent.is_empty() {
        Some(object)
    } else {
        object.get_mut(parent)
    };
    let Some(target) = target.and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let Some(text) = target
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Ok(());
    };
    let fixed = micro_time(&text)?;
    target.insert(field.into(), Value::String(fixed));
    Ok(())
}

/// Formats an RFC 3339 time as a Kubernetes MicroTime.
pub fn micro_time(text: &str) -> Result<String, String> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("Invalid value: \"{text}\": must be an RFC 3339 time"))?
        .to_offset(time::UtcOffset::UTC);
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use serde_json::json;

    fn secret_type() -> ResourceType {
        Registry::with_builtins()
            .find("", "v1", "secrets")
            .cloned()
            .unwrap()
    }

    fn rbac_type(plural: &str) -> ResourceType {
        Registry::with_builtins()
            .find("rbac.authorization.k8s.io", "v1", plural)
            .cloned()
            .unwrap()
    }

    fn causes(result: Result<(), Error>) -> Vec<(String, String)> {
        match result {
            Err(Error::Invalid { causes, .. }) => {
                causes.into_iter().map(|c| (c.field, c.message)).collect()
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn policy_rules_follow_kube_apiservers_validation() {
        let role = rbac_type("roles");
        let cluster_role = rbac_type("clusterroles");
        let mut ok = json!({"metadata": {"name": "r"}, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]});
        builtin_rules(&role, &mut ok, None).unwrap();
        // An aggregated ClusterRole has no rules of its own.
        let mut aggregated = json!({"metadata": {"name": "a"}, "rules": null, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}});
        builtin_rules(&cluster_role, &mut aggregated, None).unwrap();
        let mut urls = json!({"metadata": {"name": "h"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]});
        builtin_rules(&cluster_role, &mut urls, None).unwrap();
        assert_eq!(
            causes(builtin_rules(&role, &mut urls, None)),
            [(
                "rules[0].nonResourceURLs".to_string(),
                r#"Invalid value: ["/healthz"]: namespaced rules cannot apply to non-resource URLs"#
                    .to_string()
            )]
        );
        let mut empty = json!({"metadata": {"name": "e"}, "rules": [{}]});
        assert_eq!(
            causes(builtin_rules(&role, &mut empty, None)),
            [
                (
                    "rules[0].verbs".to_string(),
                    "Required value: verbs must contain at least one value".to_string()
                ),
                (
                    "rules[0].apiGroups".to_string(),
                    "Required value: resource rules must supply at least one api group".to_string()
                ),
                (
                    "rules[0].resources".to_string(),
                    "Required value: resource rules must supply at least one resource".to_string()
                ),
            ]
        );
    }

    #[test]
    fn bindings_check_their_role_ref_and_subjects_and_keep_the_role_ref() {
        let binding_type = rbac_type("rolebindings");
        let cluster_binding_type = rbac_type("clusterrolebindings");
        let role_ref =
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"});
        let mut binding = json!({"metadata": {"name": "b"}, "roleRef": role_ref, "subjects": [
            {"kind": "ServiceAccount", "name": "sa"},
            {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"}
        ]});
        builtin_rules(&binding_type, &mut binding, None).unwrap();
        // A ClusterRoleBinding binds ClusterRoles only, and its ServiceAccounts need a namespace.
        assert_eq!(
            causes(builtin_rules(
                &cluster_binding_type,
                &mut binding.clone(),
                None
            )),
            [
                (
                    "roleRef.kind".to_string(),
                    r#"Unsupported value: "Role": supported values: "ClusterRole""#.to_string()
                ),
                (
                    "subjects[0].namespace".to_string(),
                    "Required value".to_string()
                ),
            ]
        );
        let mut bad = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "Role"}, "subjects": [
            {"kind": "Robot", "name": "x"}, {"kind": "User", "name": "u"}
        ]});
        let fields: Vec<String> = causes(builtin_rules(&binding_type, &mut bad, None))
            .into_iter()
            .map(|(field, _)| field)
            .collect();
        assert_eq!(
            fields,
            [
                "roleRef.apiGroup",
                "roleRef.name",
                "subjects[0].kind",
                "subjects[1].apiGroup"
            ]
        );
        let mut changed = binding.clone();
        changed["roleRef"]["name"] = json!("other");
        assert_eq!(
            causes(builtin_rules(&binding_type, &mut changed, Some(&binding))),
            [(
                "roleRef".to_string(),
                r#"Invalid value: {"APIGroup":"rbac.authorization.k8s.io","Kind":"Role","Name":"other"}: cannot change roleRef"#
                    .to_string()
            )]
        );
    }

    #[test]
    fn string_data_is_merged_into_data_and_never_kept() {
        let rt = secret_type();
        let mut s = json!({"metadata": {"name": "s"}, "data": {"a": "aGk="}, "stringData": {"b": "yo", "a": "over"}});
        builtin_rules(&rt, &mut s, None).unwrap();
        assert_eq!(s["data"]["a"], STANDARD.encode("over"));
        assert_eq!(s["data"]["b"], STANDARD.encode("yo"));
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
    }

    #[test]
    fn secrets_refuse_bad_base64_missing_tls_keys_type_changes_and_immutable_edits() {
        let rt = secret_type();
        let mut bad = json!({"metadata": {"name": "s"}, "data": {"a": "!!"}});
        assert!(matches!(
            builtin_rules(&rt, &mut bad, None),
            Err(Error::BadRequest(_))
        ));
        let mut tls = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "aGk="}});
        let err = builtin_rules(&rt, &mut tls, None).unwrap_err();
        assert!(err.to_string().contains("data[tls.key]"), "{err}");
        let old = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {}});
        let mut changed = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/basic-auth"});
        assert!(
            builtin_rules(&rt, &mut changed, Some(&old))
                .unwrap_err()
                .to_string()
                .contains("field is immutable")
        );
        let frozen = json!({"metadata": {"name": "s"}, "type": "Opaque", "immutable": true, "data": {"a": "aGk="}});
        let mut edit = json!({"metadata": {"name": "s"}, "immutable": true, "data": {"a": "eW8="}});
        assert!(
            builtin_rules(&rt, &mut edit, Some(&frozen))
                .unwrap_err()
                .to_string()
                .contains("immutable")
        );
    }

    #[test]
    fn micro_times_have_six_digits() {
        assert_eq!(
            micro_time("2026-11-28T04:00:00Z").unwrap(),
            "2026-11-28T04:00:00.000000Z"
        );
        assert_eq!(
            micro_time("2026-11-28T04:00:00.5+01:00").unwrap(),
            "2026-11-28T03:00:00.500000Z"
        );
        assert!(micro_time("yesterday").is_err());
    }

    #[test]
    fn names_must_be_dns_subdomains() {
        assert!(is_dns_subdomain("relay-tls-signing-secret"));
        assert!(is_dns_subdomain("a.b-c.d"));
        assert!(!is_dns_subdomain("Upper"));
        assert!(!is_dns_subdomain("-x"));
        assert!(!is_dns_subdomain(""));
    }
}
