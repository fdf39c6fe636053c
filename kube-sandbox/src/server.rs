//! Request handling: routing URLs to resources, the verbs, and the watch stream.
//!
//! Each handler parses the request (JSON or YAML; protobuf for the kinds `protobuf` speaks),
//! asks `store` to do the write or read, applies `validation`, `schema` and admission hooks, and
//! renders JSON or protobuf (in the representation and encoding the Accept header negotiated,
//! see `metadata` and `table`) or a Status error. No semantics of storage live here.

use crate::Error;
use crate::faults::{FaultKind, RequestRecord};
use crate::http::{
    Body, encoded_response, error_response, json_response, parse_body, parse_query, read_body,
};
use crate::metadata::{
    MetaVersion, Offer, Representation, WatchForm, error_encoding, partial_object,
};
use crate::registry::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{
    Change, Deleted, EventType, Preconditions, WriteOptions, metadata_mut, name_of,
};
use crate::table::{self, IncludeObject, TableOptions};
use crate::{Inner, discovery, events, protobuf, validation};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// A handled request's status and the object (or list) it answers with, before the Accept
/// header's representation is applied.
type Reply = (StatusCode, Value);

/// What a resource URL names.
#[derive(Debug, Clone, Default)]
struct Target {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    subresource: Option<String>,
}

/// Handles one HTTP request.
pub async fn handle(inner: Arc<Inner>, request: Request<Incoming>) -> Response<Body> {
    let errors = error_encoding(Some(&accept_header(&request)));
    match route(inner, request).await {
        Ok(response) => response,
        Err(error) => error_response(&error, errors),
    }
}

/// The request's Accept header (all of its lines, joined).
fn accept_header(request: &Request<Incoming>) -> String {
    request
        .headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
}

fn not_found_path() -> Error {
    Error::NotFound {
        resource: String::new(),
        name: String::new(),
    }
}

async fn route(inner: Arc<Inner>, request: Request<Incoming>) -> Result<Response<Body>, Error> {
    let path = request.uri().path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let registry = inner.registry_snapshot();
    match segments.as_slice() {
        ["version"] => return Ok(json_response(StatusCode::OK, &discovery::version())),
        ["healthz" | "livez" | "readyz"] => return Ok(text_response("ok")),
        ["openapi", "v3"] => {
            return Ok(json_response(
                StatusCode::OK,
                &discovery::openapi_v3_root(&registry),
            ));
        }
        ["openapi", "v3", "api", version] => {
            return discovery::openapi_v3_group_version(&registry, "", version)
                .map(|v| json_response(StatusCode::OK, &v))
                .ok_or_else(not_found_path);
        }
        ["openapi", "v3", "apis", group, version] => {
            return discovery::openapi_v3_group_version(&registry, group, version)
                .map(|v| json_response(StatusCode::OK, &v))
                .ok_or_else(not_found_path);
        }
        ["api"] => return Ok(json_response(StatusCode::OK, &discovery::core_versions())),
        ["apis"] => {
            return Ok(json_response(
                StatusCode::OK,
                &discovery::group_list(&registry),
            ));
        }
        ["api", "v1"] => {
            return discovery::resource_list(&registry, "", "v1")
                .map(|v| json_response(StatusCode::OK, &v))
                .ok_or_else(not_found_path);
        }
        ["apis", group] => {
            return discovery::group(&registry, group)
                .map(|v| json_response(StatusCode::OK, &v))
                .ok_or_else(not_found_path);
        }
        ["apis", group, version] => {
            return discovery::resource_list(&registry, group, version)
                .map(|v| json_response(StatusCode::OK, &v))
                .ok_or_else(not_found_path);
        }
        _ => {}
    }
    let target = parse_target(&segments).ok_or_else(not_found_path)?;
    let rt = registry
        .find(&target.group, &target.version, &target.plural)
        .cloned()
        .ok_or_else(|| Error::NotFound {
            resource: "the server could not find the requested resource".into(),
            name: String::new(),
        })?;
    drop(registry);
    let query = parse_query(request.uri().query());
    let user_agent = request
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let manager = manager_of(&query, &user_agent);
    let verb = verb_of(request.method(), &target, &query);
    let record = RequestRecord {
        verb: verb.to_string(),
        group: rt.group.clone(),
        resource: rt.plural.clone(),
        subresource: target.subresource.clone().unwrap_or_default(),
        namespace: target.namespace.clone().unwrap_or_default(),
        // As kube-apiserver's RequestInfo does for authorization: a list or watch narrowed by
        // `fieldSelector=metadata.name=<n>` is a request for object <n>.
        name: target.name.clone().unwrap_or_else(|| {
            query
                .get("fieldSelector")
                .and_then(|selector| selector.strip_prefix("metadata.name="))
                .filter(|name| !name.contains(','))
                .unwrap_or_default()
                .to_string()
        }),
        field_manager: query.get("fieldManager").cloned().unwrap_or_default(),
        user_agent: user_agent.clone(),
    };
    inner.record(record.clone());
    if let Some(fault) = inner.faults.next_fault() {
        return Err(match fault {
            FaultKind::Internal => Error::Internal("injected fault".into()),
            FaultKind::TooManyRequests => Error::TooManyRequests,
            FaultKind::Conflict if matches!(verb, "update" | "patch" | "create" | "delete") => Error::Conflict {
                resource: rt.qualified_name(),
                name: target.name.clone().unwrap_or_default(),
                message: "the object has been modified; please apply your changes to the latest version and try again".into(),
            },
            FaultKind::Conflict => Error::Internal("injected fault".into()),
        });
    }
    if rt.namespaced && target.namespace.is_none() && !matches!(verb, "list" | "watch") {
        return Err(not_found_path());
    }
    if !rt.namespaced && target.namespace.is_some() {
        return Err(not_found_path());
    }
    if let Some(sub) = &target.subresource
        && !((sub == "status" && rt.status_subresource) || rt.extra_subresources.contains(sub))
    {
        return Err(not_found_path());
    }
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let offer = Offer::for_request(protobuf::speaks(&rt), verb == "watch");
    let (representation, encoding) =
        Representation::negotiate_for(Some(&accept_header(&request)), offer);
    let (status, body) = match verb {
        "watch" => return watch(inner, &rt, &target, &query, representation),
        "list" => list(&inner, &rt, &target, &query)?,
        "get" => {
            let ns = target.namespace.clone().unwrap_or_default();
            let object = inner
                .store
                .get(&rt, &ns, target.name.as_deref().unwrap_or_default())?;
            (StatusCode::OK, view(&rt, &object))
        }
        "create" => {
            let bytes = read_body(request.into_body()).await?;
            let body = object_body(&inner, &rt, &bytes, &content_type)?;
            create(&inner, &rt, &target, body, &query, Some(&manager))?
        }
        "update" => {
            let bytes = read_body(request.into_body()).await?;
            let body = object_body(&inner, &rt, &bytes, &content_type)?;
            update(&inner, &rt, &target, body, &query, &manager)?
        }
        "patch" => {
            let bytes = read_body(request.into_body()).await?;
            patch(
                &inner,
                &rt,
                &target,
                &bytes,
                &content_type,
                &query,
                &manager,
                &record,
            )?
        }
        "delete" => {
            let bytes = read_body(request.into_body()).await?;
            delete(&inner, &rt, &target, &bytes, &content_type, &query)?
        }
        "deletecollection" => delete_collection(&inner, &rt, &target, &query)?,
        _ => return Err(Error::MethodNotAllowed),
    };
    // As in kube-apiserver, the representation is applied after the verb ran: a write whose
    // Accept header cannot be honoured (or whose `includeObject` is invalid) has still happened.
    let is_list = matches!(verb, "list" | "deletecollection");
    let table = |body: Value, version: MetaVersion| -> Result<Value, Error> {
        let options = TableOptions {
            version,
            include: IncludeObject::from_query(query.get("includeObject").map(String::as_str))?,
            headers: true,
        };
        Ok(table::render(
            &rt.printer,
            &body,
            is_list,
            options,
            time::OffsetDateTime::now_utc(),
        ))
    };
    let body = if is_list {
        representation.list(body, table)?
    } else {
        representation.object(body, table)?
    };
    Ok(encoded_response(status, &body, encoding))
}

/// The object a create or update sends, as JSON: JSON or YAML as sent, or decoded from
/// protobuf. As kube-apiserver: protobuf only for built-in kinds (a custom resource's endpoint
/// lists JSON and YAML in its 415); here only for the kinds `protobuf` speaks.
fn object_body(
    inner: &Inner,
    rt: &ResourceType,
    bytes: &[u8],
    content_type: &str,
) -> Result<Value, Error> {
    if !protobuf::is_protobuf(content_type) {
        return parse_body(bytes, content_type);
    }
    if rt.custom {
        return Err(Error::UnsupportedMediaType(
            "application/json, application/yaml".into(),
        ));
    }
    if !protobuf::speaks(rt) {
        return parse_body(bytes, content_type);
    }
    protobuf::decode(rt, bytes, &inner.registry_snapshot())
}

fn text_response(text: &'static str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(http_body_util::Full::new(Bytes::from_static(text.as_bytes())).boxed())
        .unwrap_or_else(|_| Response::new(http_body_util::Full::new(Bytes::new()).boxed()))
}

fn parse_target(segments: &[&str]) -> Option<Target> {
    let (group, version, rest) = match segments {
        ["api", version, rest @ ..] => (String::new(), version.to_string(), rest),
        ["apis", group, version, rest @ ..] => (group.to_string(), version.to_string(), rest),
        _ => return None,
    };
    let mut t = Target {
        group,
        version,
        ..Target::default()
    };
    let rest: Vec<&str> = match rest {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => {
            t.namespace = Some(ns.to_string());
            tail.to_vec()
        }
        other => other.to_vec(),
    };
    match rest.as_slice() {
        [plural] => t.plural = plural.to_string(),
        [plural, name] => {
            t.plural = plural.to_string();
            t.name = Some(name.to_string());
        }
        [plural, name, sub] => {
            t.plural = plural.to_string();
            t.name = Some(name.to_string());
            t.subresource = Some(sub.to_string());
        }
        _ => return None,
    }
    Some(t)
}

fn verb_of(method: &Method, target: &Target, query: &HashMap<String, String>) -> &'static str {
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    match (method.as_str(), target.name.is_some()) {
        ("GET", false) if watching => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unsupported",
    }
}

/// The object as this resource's view shows it (core/v1 Events are converted).
fn view(rt: &ResourceType, stored: &Value) -> Value {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Event") => events::to_core(stored),
        ("events.k8s.io", "Event") => events::to_events_api(stored),
        _ => stored.clone(),
    }
}

/// The stored form of an object written through this view.
fn to_stored(rt: &ResourceType, object: Value) -> Value {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Event") => events::from_core(&object),
        _ => object,
    }
}

/// The type whose rules apply to stored objects of this view (events.k8s.io for both views).
fn storage_type(inner: &Inner, rt: &ResourceType) -> ResourceType {
    if rt.group.is_empty() && rt.kind == "Event" {
        return inner
            .registry_snapshot()
            .find("events.k8s.io", "v1", "events")
            .cloned()
            .unwrap_or_else(|| rt.clone());
    }
    rt.clone()
}

/// The field manager of an ordinary write: `fieldManager`, else the User-Agent's product name,
/// as the API server defaults it.
fn manager_of(query: &HashMap<String, String>, user_agent: &str) -> String {
    query
        .get("fieldManager")
        .filter(|m| !m.is_empty())
        .cloned()
        .unwrap_or_else(|| {
            let product = user_agent.split('/').next().unwrap_or_default();
            if product.is_empty() {
                "unknown".to_string()
            } else {
                product.to_string()
            }
        })
}

fn write_options(query: &HashMap<String, String>) -> WriteOptions {
    WriteOptions {
        dry_run: query.get("dryRun").is_some_and(|d| d == "All"),
        field_manager: query.get("fieldManager").cloned(),
    }
}

fn selectors(
    rt: &ResourceType,
    query: &HashMap<String, String>,
) -> Result<(Option<LabelSelector>, Option<FieldSelector>), Error> {
    let labels = query
        .get("labelSelector")
        .filter(|s| !s.is_empty())
        .map(|s| LabelSelector::parse(s))
        .transpose()?;
    let supported = rt.field_selectors();
    let fields = query
        .get("fieldSelector")
        .filter(|s| !s.is_empty())
        .map(|s| FieldSelector::parse(s, &supported))
        .transpose()?;
    Ok((labels, fields))
}

fn matches(object: &Value, labels: &Option<LabelSelector>, fields: &Option<FieldSelector>) -> bool {
    labels.as_ref().is_none_or(|l| l.matches_object(object))
        && fields.as_ref().is_none_or(|f| f.matches(object))
}

fn list(
    inner: &Arc<Inner>,
    rt: &ResourceType,
    target: &Target,
    query: &HashMap<String, String>,
) -> Result<Reply, Error> {
    let (labels, fields) = selectors(rt, query)?;
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let (snapshot, start) = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => inner.continue_snapshot(token)?,
        None => (
            Arc::new(inner.store.snapshot(rt, target.namespace.as_deref())),
            0,
        ),
    };
    let mut items = Vec::new();
    let mut next = None;
    for (index, object) in snapshot.objects.iter().enumerate().skip(start) {
        let shown = view(rt, object);
        if !matches(&shown, &labels, &fields) {
            continue;
        }
        if items.len() == limit {
            next = Some(index);
            break;
        }
        items.push(shown);
    }
    let mut metadata = json!({"resourceVersion": snapshot.rv.to_string()});
    if let Some(index) = next {
        let token = inner.save_snapshot(snapshot.clone(), index);
        metadata["continue"] = json!(token);
        // As kube-apiserver's storage: known only when nothing is filtered out.
        if labels.is_none() && fields.is_none() {
            metadata["remainingItemCount"] = json!(snapshot.objects.len() - index);
        }
    }
    let list = json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": metadata, "items": items});
    Ok((StatusCode::OK, list))
}

fn now() -> String {
    crate::now_rfc3339()
}

fn create(
    inner: &Arc<Inner>,
    rt: &ResourceType,
    target: &Target,
    body: Value,
    query: &HashMap<String, String>,
    manager: Option<&str>,
) -> Result<Reply, Error> {
    let ns = target.namespace.clone().unwrap_or_default();
    let mut object = body;
    if crate::store::resource_version_of(&object).is_some() {
        // kube-apiserver's storage refuses it with a bare error: a 500 without a reason.
        return Err(Error::Storage(
            "resourceVersion should not be set on objects to be created".into(),
        ));
    }
    validation::check_identity(rt, &mut object, &ns, None)?;
    if rt.namespaced && !inner.store.namespace_exists(&ns) {
        return Err(Error::NotFound {
            resource: "namespaces".into(),
            name: ns,
        });
    }
    let srt = storage_type(inner, rt);
    let mut stored = to_stored(rt, object);
    validation::builtin_rules(&srt, &mut stored, None)?;
    inner.admit(&srt, None, &mut stored)?;
    if let Some(manager) = manager {
        inner.record_managed_fields(&srt, None, &mut stored, manager, false);
    }
    let opts = write_options(query);
    let created = inner.store.create(&srt, &ns, stored, &opts, &now())?;
    if !opts.dry_run {
        inner.after_write(&srt, &created);
    }
    Ok((StatusCode::CREATED, view(rt, &created)))
}

fn update(
    inner: &Arc<Inner>,
    rt: &ResourceType,
    target: &Target,
    body: Value,
    query: &HashMap<String, String>,
    manager: &str,
) -> Result<Reply, Error> {
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let mut object = body;
    validation::check_identity(rt, &mut object, &ns, Some(&name))?;
    let srt = storage_type(inner, rt);
    let old = inner.store.get(&srt, &ns, &name)?;
    write_object(
        inner,
        rt,
        &srt,
        &ns,
        &name,
        old,
        to_stored(rt, object),
        target.subresource.as_deref(),
        &write_options(query),
        Some(manager),
    )
}

#[allow(clippy::too_many_arguments)]
fn write_object(
    inner: &Arc<Inner>,
    rt: &ResourceType,
    srt: &ResourceType,
    ns: &str,
    name: &str,
    old: Value,
    mut new: Value,
    subresource: Option<&str>,
    opts: &WriteOptions,
    manager: Option<&str>,
) -> Result<Reply, Error> {
    let status_only = subresource.is_some();
    validation::subresource_rules(srt, subresource, &old, &mut new)?;
    validation::builtin_rules(srt, &mut new, Some(&old))?;
    inner.admit(srt, Some(&old), &mut new)?;
    // managedFields: the client's copy is ignored; ordinary writes are recorded for `manager`,
    // server-side apply has already computed them (`manager` is None).
    if let Some(manager) = manager {
        inner.record_managed_fields(srt, Some(&old), &mut new, manager, status_only);
    }
    let written = inner.store.replace(srt, ns, name, new, status_only, opts)?;
    if !opts.dry_run {
        inner.after_write(srt, &written);
    }
    Ok((StatusCode::OK, view(rt, &written)))
}

#[allow(clippy::too_many_arguments)]
fn patch(
    inner: &Arc<Inner>,
    rt: &ResourceType,
    target: &Target,
    bytes: &[u8],
    content_type: &str,
    query: &HashMap<String, String>,
    manager: &str,
    request: &RequestRecord,
) -> Result<Reply, Error> {
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let srt = storage_type(inner, rt);
    let status_only = target.subresource.is_some();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    let opts = write_options(query);
    if media == "application/apply-patch+yaml" {
        let manager = opts
            .field_manager
            .clone()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| Error::Invalid {
                kind: "PatchOptions.meta.k8s.io".into(),
                name: String::new(),
                causes: vec![crate::Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: is required for apply patch".into(),
                    field: "fieldManager".into(),
                }],
            })?;
        let force = query.get("force").is_some_and(|f| f == "true");
        let applied = parse_body(bytes, media)?;
        let old = match inner.store.get(&srt, &ns, &name) {
            Ok(old) => Some(old),
            // kube-apiserver's status endpoint never creates (its strategy does not allow
            // create-on-update): applying to the status of a missing object is 404.
            Err(e @ Error::NotFound { .. }) if status_only => return Err(e),
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let merged =
            inner.server_side_apply(&srt, old.as_ref(), &applied, &manager, status_only, force)?;
        return match old {
            Some(old) => write_object(
                inner,
                rt,
                &srt,
                &ns,
                &name,
                old,
                merged,
                target.subresource.as_deref(),
                &opts,
                None,
            ),
            None => {
                // As kube-apiserver's patch handler does, a patch that creates the object is
                // also authorized as `create` on it (same resource, subresource and name).
                inner.record(RequestRecord {
                    verb: "create".into(),
                    ..request.clone()
                });
                let target = Target {
                    name: None,
                    subresource: None,
                    ..target.clone()
                };
                create(inner, rt, &target, view(rt, &merged), query, None)
            }
        };
    }
    let old_stored = inner.store.get(&srt, &ns, &name)?;
    let old_view = view(rt, &old_stored);
    let patch_body = parse_body(bytes, "application/json")?;
    let mut patched = old_view.clone();
    match media {
        "application/merge-patch+json" => json_patch::merge(&mut patched, &patch_body),
        "application/json-patch+json" => {
            let ops: json_patch::Patch = serde_json::from_value(patch_body)
                .map_err(|e| Error::BadRequest(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut patched, &ops).map_err(|e| Error::Invalid {
                kind: rt.kind.clone(),
                name: name.clone(),
                causes: vec![crate::error::Cause {
                    reason: "FieldValueInvalid".into(),
                    message: e.to_string(),
                    field: String::new(),
                }],
            })?;
        }
        "application/strategic-merge-patch+json" if !rt.custom => {
            let mut cleaned = patch_body;
            strip_directives(&mut cleaned);
            json_patch::merge(&mut patched, &cleaned);
        }
        _ => {
            return Err(Error::UnsupportedMediaType(if rt.custom {
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into()
            } else {
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json".into()
            }));
        }
    }
    // A patch never changes identity; the resourceVersion it carries (if any) is a precondition.
    let meta = metadata_mut(&mut patched);
    meta.insert("name".into(), json!(name));
    if rt.namespaced {
        meta.insert("namespace".into(), json!(ns));
    }
    if patched.pointer("/metadata/resourceVersion").is_none()
        && let Some(rv) = old_stored.pointer("/metadata/resourceVersion").cloned()
    {
        metadata_mut(&mut patched).insert("resourceVersion".into(), rv);
    }
    write_object(
        inner,
        rt,
        &srt,
        &ns,
        &name,
        old_stored,
        to_stored(rt, patched),
        target.subresource.as_deref(),
        &opts,
        Some(manager),
    )
}

fn strip_directives(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !k.starts_with('$'));
            map.values_mut().for_each(strip_directives);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

fn delete(
    inner: &Arc<Inner>,
    rt: &ResourceType,
    target: &Target,
    bytes: &[u8],
    content_type: &str,
    query: &HashMap<String, String>,
) -> Result<Reply, Error> {
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let srt = storage_type(inner, rt);
    let options: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else if protobuf::is_protobuf(content_type) {
        protobuf::decode_delete_options(bytes)?
    } else {
        parse_body(bytes, "application/json")?
    };
    let pre = Preconditions {
        uid: options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        resource_version: options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    let opts = write_options(query);
    match inner.store.delete(&srt, &ns, &name, &pre, &opts, &now())? {
        Deleted::Gone(last) => {
            if !opts.dry_run {
                inner.after_delete(&srt, &last);
            }
            // kube-apiserver answers with the deleted object only for custom resources (their
            // store's ReturnDeletedObject); the built-ins here answer a Status of Success.
            if rt.custom {
                return Ok((StatusCode::OK, view(rt, &last)));
            }
            let mut details = json!({
                "name": name,
                "kind": rt.plural,
                "uid": last.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
            });
            if !rt.group.is_empty() {
                details["group"] = json!(rt.group);
            }
            Ok((
                StatusCode::OK,
                json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": details,
                }),
            ))
        }
        Deleted::Pending(object) => Ok((StatusCode::ACCEPTED, view(rt, &object))),
    }
}

fn delete_collection(
    inner: &Arc<Inner>,
    rt: &ResourceType,
    target: &Target,
    query: &HashMap<String, String>,
) -> Result<Reply, Error> {
    let (labels, fields) = selectors(rt, query)?;
    let srt = storage_type(inner, rt);
    let snapshot = inner.store.snapshot(&srt, target.namespace.as_deref());
    let opts = write_options(query);
    let mut items = Vec::new();
    for object in snapshot
        .objects
        .iter()
        .filter(|o| matches(&view(rt, o), &labels, &fields))
    {
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Ok(Deleted::Gone(last)) = inner.store.delete(
            &srt,
            ns,
            name_of(object),
            &Preconditions::default(),
            &opts,
            &now(),
        ) {
            inner.after_delete(&srt, &last);
            items.push(view(rt, &last));
        }
    }
    Ok((
        StatusCode::OK,
        json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": {}, "items": items}),
    ))
}

// ---------- watch ----------

fn watch_line(kind: &str, object: &Value) -> Bytes {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        r#type: &'a str,
        object: &'a Value,
    }
    let mut line = serde_json::to_vec(&Line {
        r#type: kind,
        object,
    })
    .unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// Encodes one watcher's events in its form: full objects, `PartialObjectMetadata`, or one-row
/// `Table`s whose column definitions only the first event carries (kube-apiserver's watch
/// encoder sets `NoHeaders` after the first event).
struct WatchEncoder {
    form: WatchForm,
    printer: table::Printer,
    include: IncludeObject,
    headers_sent: bool,
}

impl WatchEncoder {
    /// The watch line of an object already in the resource's view.
    fn line(&mut self, kind: &str, object: Value) -> Bytes {
        let object = match self.form {
            WatchForm::Full => object,
            WatchForm::Partial(version) => partial_object(&object, version),
            WatchForm::Table(version) => {
                let headers = !std::mem::replace(&mut self.headers_sent, true);
                let options = TableOptions {
                    version,
                    include: self.include,
                    headers,
                };
                table::render(
                    &self.printer,
                    &object,
                    false,
                    options,
                    time::OffsetDateTime::now_utc(),
                )
            }
        };
        watch_line(kind, &object)
    }

    /// The watch line of a change shown unfiltered and unconverted: encoded once per change and
    /// form (full, or metadata-only in meta.k8s.io/v1), and shared by every watcher that wants
    /// it. The rarely used v1beta1 metadata form and Tables are encoded per watcher.
    fn shared_line(&mut self, change: &Change, kind: &str) -> Bytes {
        match self.form {
            WatchForm::Full => change
                .encoded
                .get_or_init(|| watch_line(kind, &change.object))
                .clone(),
            WatchForm::Partial(MetaVersion::V1) => change
                .encoded_metadata
                .get_or_init(|| watch_line(kind, &partial_object(&change.object, MetaVersion::V1)))
                .clone(),
            _ => self.line(kind, Value::clone(&change.object)),
        }
    }

    fn bookmark(&mut self, rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta});
        self.line("BOOKMARK", object)
    }
}

fn watch(
    inner: Arc<Inner>,
    rt: &ResourceType,
    target: &Target,
    query: &HashMap<String, String>,
    representation: Representation,
) -> Result<Response<Body>, Error> {
    let form = representation.watch_form()?;
    // kube-apiserver validates the Table options before it starts streaming.
    let include = match form {
        WatchForm::Table(_) => {
            IncludeObject::from_query(query.get("includeObject").map(String::as_str))?
        }
        _ => IncludeObject::default(),
    };
    let mut encoder = WatchEncoder {
        form,
        printer: rt.printer.clone(),
        include,
        headers_sent: false,
    };
    let (labels, fields) = selectors(rt, query)?;
    let rt = rt.clone();
    let srt = storage_type(&inner, &rt);
    let namespace = target.namespace.clone();
    let send_initial = query.get("sendInitialEvents").is_some_and(|v| v == "true");
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let requested_rv: Option<u64> = query
        .get("resourceVersion")
        .filter(|r| !r.is_empty())
        .map(|r| {
            r.parse()
                .map_err(|_| Error::BadRequest(format!("invalid resource version: {r}")))
        })
        .transpose()?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1024);
    let epoch = inner.faults.watch_epoch();
    tokio::spawn(async move {
        let shown = |object: &Value| {
            let v = view(&rt, object);
            let in_ns = namespace.as_deref().is_none_or(|ns| {
                v.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns)
            });
            (in_ns && matches(&v, &labels, &fields)).then_some(v)
        };
        let mut last_rv;
        let (past, mut live) = if send_initial || requested_rv.is_none_or(|rv| rv == 0) {
            let snapshot = inner.store.snapshot(&srt, namespace.as_deref());
            for object in &snapshot.objects {
                if let Some(v) = shown(object)
                    && tx.send(encoder.line("ADDED", v)).await.is_err()
                {
                    return;
                }
            }
            last_rv = snapshot.rv;
            match inner.store.changes_since(&srt.store_key(), snapshot.rv) {
                Ok((past, live, _)) => (past, live),
                Err(e) => {
                    let _ = tx.send(watch_line("ERROR", &e.to_status())).await;
                    return;
                }
            }
        } else {
            let since = requested_rv.unwrap_or(0);
            last_rv = since;
            match inner.store.changes_since(&srt.store_key(), since) {
                Ok((past, live, _)) => (past, live),
                Err(e) => {
                    let _ = tx.send(watch_line("ERROR", &e.to_status())).await;
                    return;
                }
            }
        };
        for change in past {
            if change.rv <= last_rv {
                continue;
            }
            last_rv = change.rv;
            if let Some(v) = shown(&change.object)
                && tx
                    .send(encoder.line(change.kind.as_str(), v))
                    .await
                    .is_err()
            {
                return;
            }
        }
        if send_initial && tx.send(encoder.bookmark(&rt, last_rv, true)).await.is_err() {
            return;
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(timeout);
        let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = ticker.tick() => {
                    if inner.faults.watch_epoch() != epoch {
                        return;
                    }
                    if bookmarks && tx.send(encoder.bookmark(&rt, last_rv, false)).await.is_err() {
                        return;
                    }
                }
                received = live.recv() => match received {
                    Ok(change) => {
                        if change.store != srt.store_key() || change.rv <= last_rv {
                            continue;
                        }
                        last_rv = change.rv;
                        let kind = if change.kind == EventType::Deleted { "DELETED" } else { change.kind.as_str() };
                        let plain = labels.is_none() && fields.is_none() && !(rt.kind == "Event" && (rt.group.is_empty() || rt.group == "events.k8s.io"));
                        if plain {
                            if namespace.as_deref().is_some_and(|ns| ns != change.namespace) {
                                continue;
                            }
                            if tx.send(encoder.shared_line(&change, kind)).await.is_err() {
                                return;
                            }
                        } else if let Some(v) = shown(&change.object)
                            && tx.send(encoder.line(kind, v)).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let e = Error::Expired("the watch fell behind; too old resource version".into());
                        let _ = tx.send(watch_line("ERROR", &e.to_status())).await;
                        return;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, std::convert::Infallible>(Frame::data(bytes)), rx))
    });
    let body = StreamBody::new(stream).boxed();
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(body)
        .map_err(|e| Error::Internal(e.to_string()))
}
