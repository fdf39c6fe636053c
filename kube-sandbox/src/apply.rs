//! Server-side apply merging with managed fields, after the semantics of Kubernetes'
//! structured-merge-diff, on plain `serde_json::Value` objects.
//!
//! What lives here:
//! - [`apply`]: merges an applied configuration (`PATCH` with `application/apply-patch+yaml`)
//!   into the live object for one field manager: sets what is applied, removes what that
//!   manager applied before but no longer applies (unless someone else owns it), reports
//!   conflicts with other managers (or takes ownership with `force`).
//! - [`record_update`]: ownership bookkeeping for ordinary writes (PUT, merge / JSON patch).
//! - Conversions between [`ManagedEntry`] and `metadata.managedFields` JSON.
//!
//! Field sets are kept as structured-merge-diff "fieldsV1" JSON (`f:` fields, `k:` list-map
//! keys, `v:` set values, `i:` indices, `.` for "this node itself").
//!
//! Scope: only the object body is merged and tracked: for the main resource everything but
//! `apiVersion`, `kind`, `metadata` and `status`, plus `metadata.labels` and
//! `metadata.annotations` (merged per key); for the `status` subresource only `status`.
//! Other metadata is never touched.
//!
//! What does not live here: schema knowledge beyond list types (every JSON object is treated as
//! a granular struct-like map; `x-kubernetes-map-type: atomic` is not modelled), defaulting,
//! validation, pruning of unknown fields, version conversion, the `ancient-changes` cap on
//! Update entries, per-entry timestamps, and HTTP handling.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::Error;
use crate::error::ApplyConflict;

/// The set of fields a manager owns, as structured-merge-diff "fieldsV1" JSON
/// (e.g. `{"f:spec":{"f:replicas":{}},"f:status":{"f:conditions":{"k:{\"type\":\"Ready\"}":{".":{},"f:status":{}}}}}`).
pub type FieldsV1 = Value;

/// How lists are merged at a given path (from the CRD schema's `x-kubernetes-list-type` and
/// `x-kubernetes-list-map-keys`). Lists with no declaration are atomic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// The list is one value: replaced whole, owned whole.
    Atomic,
    /// A set of scalars: merged by value, each value owned separately.
    Set,
    /// A list of objects identified by the values of `keys`: merged entry by entry.
    /// An empty `keys` is treated as atomic.
    Map {
        /// The key field names.
        keys: Vec<String>,
    },
}

/// One manager's record in `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedEntry {
    /// The field manager's name.
    pub manager: String,
    /// [`OPERATION_APPLY`] or [`OPERATION_UPDATE`].
    pub operation: String,
    /// `""` for the main resource or `"status"`.
    pub subresource: String,
    /// The fields owned, as fieldsV1 JSON.
    pub fields: FieldsV1,
}

/// The `operation` of entries written by server-side apply.
pub const OPERATION_APPLY: &str = "Apply";
/// The `operation` of entries written by ordinary updates.
pub const OPERATION_UPDATE: &str = "Update";

/// Applies `applied` (the object a manager sends with `PATCH application/apply-patch+yaml`)
/// onto `live` (`None` when the object does not exist yet) for `manager`.
///
/// - Fields in `applied` are set (a `null` removes the field but still counts as applied).
/// - Fields the manager owned through its previous Apply (same manager and subresource) but no
///   longer applies are removed, unless another entry also owns them or something beneath them
///   (list-map key fields of surviving entries are never removed).
/// - A field whose value changes and which another entry owns is a conflict; unless `force`,
///   every conflict is returned in [`Error::ApplyConflict`]. With `force`, ownership moves to
///   `manager`.
/// - List maps merge entry by entry by key (other managers' entries are kept), sets merge by
///   value, atomic lists are replaced; see [`ListType`]. `list_type` receives the path of field
///   names from the object root (list items are not part of it, so `["spec","containers","ports"]`
///   names the ports of every container).
/// - `subresource == "status"` applies only `.status`; otherwise `.status` in `applied` is
///   ignored. `apiVersion`, `kind` and metadata other than labels and annotations are never
///   changed; on create (`live` is `None`) they are taken from `applied` (`metadata.name` and
///   `metadata.namespace` only).
///
/// Returns the merged object and the new managed-field entries (sorted as the API server sorts
/// entries of equal time: Apply before Update, then by manager and subresource; entries left
/// owning nothing are dropped).
///
/// # Errors
/// - [`Error::ApplyConflict`] listing every conflict (sorted by manager, then field).
/// - [`Error::BadRequest`] when `applied` is not an object or does not fit the list types
///   (a list-map entry missing a key field or repeated, a set holding objects or lists), worded
///   as the API server's `failed to create typed patch object (...)`.
pub fn apply(
    live: Option<&Value>,
    live_managed: &[ManagedEntry],
    applied: &Value,
    manager: &str,
    subresource: &str,
    force: bool,
    list_type: &dyn Fn(&[&str]) -> Option<ListType>,
) -> Result<(Value, Vec<ManagedEntry>), Error> {
    if !applied.is_object() {
        return Err(Error::BadRequest(format!(
            "failed to create typed patch object ({}): expected an object, got {}",
            object_identity(applied),
            kind_name(applied)
        )));
    }
    let lists = Lists { lookup: list_type };
    let applied_scoped = scope(applied, subresource);
    let mut applied_set = FieldSet::new();
    collect_fields(
        &applied_scoped,
        &mut Vec::new(),
        &mut Vec::new(),
        &lists,
        &mut applied_set,
    )
    .map_err(|message| {
        Error::BadRequest(format!(
            "failed to create typed patch object ({}): {message}",
            object_identity(applied)
        ))
    })?;
    untrack_metadata(&mut applied_set);

    let live_scoped = live.map_or_else(|| Value::Object(Map::new()), |l| scope(l, subresource));
    let mut merged = merge(&live_scoped, &applied_scoped, &mut Vec::new(), &lists);

    let mut owners = parse_owners(live_managed);
    let me = owners
        .iter()
        .position(|o| o.is(manager, OPERATION_APPLY, subresource));
    let previous = me.map(|i| owners[i].set.clone()).unwrap_or_default();
    let mut kept = applied_set.clone();
    for (i, owner) in owners.iter().enumerate() {
        if Some(i) != me {
            kept.extend(owner.set.iter().cloned());
        }
    }
    prune(&mut merged, &previous, &kept, &lists);

    let comparison = compare_objects(&live_scoped, &merged, &lists);
    let changed: FieldSet = comparison
        .added
        .union(&comparison.modified)
        .cloned()
        .collect();
    let mut conflicts: Vec<(usize, Path)> = Vec::new();
    for (i, owner) in owners.iter().enumerate() {
        if Some(i) != me {
            conflicts.extend(owner.set.intersection(&changed).map(|p| (i, p.clone())));
        }
    }
    if !conflicts.is_empty() && !force {
        conflicts.sort_by(|(a, pa), (b, pb)| {
            owners[*a]
                .manager
                .cmp(&owners[*b].manager)
                .then_with(|| pa.cmp(pb))
        });
        return Err(Error::ApplyConflict {
            conflicts: conflicts
                .iter()
                .map(|(i, path)| ApplyConflict {
                    manager: owners[*i].manager.clone(),
                    field: path_string(path),
                })
                .collect(),
        });
    }
    for (i, path) in &conflicts {
        owners[*i].set.remove(path);
    }
    match me {
        Some(i) => owners[i].set = applied_set,
        None => owners.push(Owner {
            manager: manager.to_owned(),
            operation: OPERATION_APPLY.to_owned(),
            subresource: subresource.to_owned(),
            set: applied_set,
        }),
    }
    for owner in &mut owners {
        owner.set.retain(|p| !comparison.removed.contains(p));
    }

    let mut result = live.cloned().unwrap_or_else(|| skeleton(applied));
    write_back(&mut result, &merged, subresource);
    Ok((result, finish(owners)))
}

/// Records an ordinary update (PUT, merge or JSON patch) by `manager` from `old` (`None` on
/// create) to `new`: the manager's Update entry (for `subresource`) takes every field whose
/// value it changed or added, those fields leave every other entry, and fields that no longer
/// exist leave every entry. Newly created maps and list entries are recorded with `.` as the
/// API server does. The scope is the same as [`apply`]'s.
#[must_use]
pub fn record_update(
    old: Option<&Value>,
    new: &Value,
    live_managed: &[ManagedEntry],
    manager: &str,
    subresource: &str,
    list_type: &dyn Fn(&[&str]) -> Option<ListType>,
) -> Vec<ManagedEntry> {
    let lists = Lists { lookup: list_type };
    let old_scoped = old.map_or_else(|| Value::Object(Map::new()), |o| scope(o, subresource));
    let new_scoped = scope(new, subresource);
    let comparison = compare_objects(&old_scoped, &new_scoped, &lists);
    let changed: FieldSet = comparison
        .added
        .union(&comparison.modified)
        .cloned()
        .collect();

    let mut owners = parse_owners(live_managed);
    let me = owners
        .iter()
        .position(|o| o.is(manager, OPERATION_UPDATE, subresource));
    for (i, owner) in owners.iter_mut().enumerate() {
        if Some(i) != me {
            owner.set.retain(|p| !changed.contains(p));
        }
    }
    match me {
        Some(i) => owners[i].set.extend(changed),
        None => owners.push(Owner {
            manager: manager.to_owned(),
            operation: OPERATION_UPDATE.to_owned(),
            subresource: subresource.to_owned(),
            set: changed,
        }),
    }
    for owner in &mut owners {
        owner.set.retain(|p| !comparison.removed.contains(p));
    }
    finish(owners)
}

/// Converts entries to `metadata.managedFields` JSON: each with `apiVersion`,
/// `fieldsType: FieldsV1`, `fieldsV1`, `manager`, `operation`, `subresource` (only when not
/// empty, as the API server omits it) and `time`.
#[must_use]
pub fn to_managed_fields_json(
    entries: &[ManagedEntry],
    api_version: &str,
    now_rfc3339: &str,
) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("apiVersion".into(), Value::from(api_version));
                m.insert("fieldsType".into(), Value::from("FieldsV1"));
                m.insert("fieldsV1".into(), e.fields.clone());
                m.insert("manager".into(), Value::from(e.manager.as_str()));
                m.insert("operation".into(), Value::from(e.operation.as_str()));
                if !e.subresource.is_empty() {
                    m.insert("subresource".into(), Value::from(e.subresource.as_str()));
                }
                m.insert("time".into(), Value::from(now_rfc3339));
                Value::Object(m)
            })
            .collect(),
    )
}

/// Reads entries from `metadata.managedFields` JSON: either the array itself or an object whose
/// `metadata.managedFields` holds it. Missing strings read as `""`; entries whose `fieldsType`
/// is present and not `FieldsV1` read as owning nothing.
#[must_use]
pub fn from_managed_fields_json(value: &Value) -> Vec<ManagedEntry> {
    let list = match value {
        Value::Array(list) => Some(list),
        Value::Object(_) => value
            .get("metadata")
            .and_then(|m| m.get("managedFields"))
            .and_then(Value::as_array),
        _ => None,
    };
    let text = |entry: &Value, key: &str| {
        entry
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    list.map(|list| {
        list.iter()
            .filter(|e| e.is_object())
            .map(|e| {
                let fields_v1 = e
                    .get("fieldsType")
                    .and_then(Value::as_str)
                    .is_none_or(|t| t == "FieldsV1");
                ManagedEntry {
                    manager: text(e, "manager"),
                    operation: text(e, "operation"),
                    subresource: text(e, "subresource"),
                    fields: match e.get("fieldsV1") {
                        Some(f) if fields_v1 && f.is_object() => f.clone(),
                        _ => Value::Object(Map::new()),
                    },
                }
            })
            .collect()
    })
    .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Paths and field sets
// ---------------------------------------------------------------------------------------------

/// One step of a field path. The variant order is structured-merge-diff's element order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Element {
    /// A field of an object (`f:name`).
    Field(String),
    /// A list-map entry, by its key fields as canonical JSON (`k:{"type":"Ready"}`).
    Key(String),
    /// A set member, as canonical JSON (`v:"a"`).
    Value(String),
    /// A position in a list (`i:0`); only read from stored field sets.
    Index(usize),
}

/// A path from the object root.
type Path = Vec<Element>;
/// A set of owned paths; a path's extensions sort right after it.
type FieldSet = BTreeSet<Path>;

impl Element {
    /// The element as a fieldsV1 key.
    fn fields_key(&self) -> String {
        match self {
            Self::Field(name) => format!("f:{name}"),
            Self::Key(json) => format!("k:{json}"),
            Self::Value(json) => format!("v:{json}"),
            Self::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a fieldsV1 key.
    fn parse(key: &str) -> Option<Self> {
        let (kind, rest) = key.split_at_checked(2)?;
        match kind {
            "f:" => Some(Self::Field(rest.to_owned())),
            "k:" => serde_json::from_str::<Value>(rest)
                .ok()
                .filter(Value::is_object)
                .map(|v| Self::Key(canonical(&v))),
            "v:" => serde_json::from_str::<Value>(rest)
                .ok()
                .map(|v| Self::Value(canonical(&v))),
            "i:" => rest.parse().ok().map(Self::Index),
            _ => None,
        }
    }

    /// The element as the API server prints it in conflict messages
    /// (`.name`, `[type="Ready"]`, `[="a"]`, `[0]`).
    fn display(&self) -> String {
        match self {
            Self::Field(name) => format!(".{name}"),
            Self::Key(json) => match serde_json::from_str::<Value>(json) {
                Ok(Value::Object(m)) => {
                    let mut pairs: Vec<_> = m.iter().collect();
                    pairs.sort_by(|a, b| a.0.cmp(b.0));
                    let inner: Vec<String> = pairs
                        .iter()
                        .map(|(k, v)| format!("{k}={}", value_string(v)))
                        .collect();
                    format!("[{}]", inner.join(","))
                }
                _ => format!("[{json}]"),
            },
            Self::Value(json) => match serde_json::from_str::<Value>(json) {
                Ok(v) => format!("[={}]", value_string(&v)),
                Err(_) => format!("[={json}]"),
            },
            Self::Index(i) => format!("[{i}]"),
        }
    }
}

/// A path as the API server prints it, e.g. `.status.conditions[type="Ready"].status`.
fn path_string(path: &[Element]) -> String {
    path.iter().map(Element::display).collect()
}

/// A value as structured-merge-diff prints it inside a path element.
fn value_string(value: &Value) -> String {
    match value {
        Value::Array(_) | Value::Object(_) => canonical(value),
        scalar => scalar.to_string(),
    }
}

/// JSON with object keys sorted and no whitespace.
fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(m) => {
            let mut pairs: Vec<_> = m.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in pairs.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(k.as_str()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Whether `set` holds `prefix` or any path under it.
fn has_prefix(set: &FieldSet, prefix: &[Element]) -> bool {
    set.range(prefix.to_vec()..)
        .next()
        .is_some_and(|p| p.starts_with(prefix))
}

/// A node of a fieldsV1 tree.
#[derive(Default)]
struct Node {
    member: bool,
    children: BTreeMap<Element, Node>,
}

/// Serializes a field set as fieldsV1 JSON.
fn set_to_fields(set: &FieldSet) -> Value {
    let mut root = Node::default();
    for path in set.iter().filter(|p| !p.is_empty()) {
        let mut node = &mut root;
        for element in path {
            node = node.children.entry(element.clone()).or_default();
        }
        node.member = true;
    }
    node_to_json(&root)
}

fn node_to_json(node: &Node) -> Value {
    let mut m = Map::new();
    if node.member && !node.children.is_empty() {
        m.insert(".".into(), Value::Object(Map::new()));
    }
    for (element, child) in &node.children {
        m.insert(element.fields_key(), node_to_json(child));
    }
    Value::Object(m)
}

/// Parses fieldsV1 JSON into a field set, skipping keys it cannot read.
fn set_from_fields(fields: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Some(m) = fields.as_object() {
        read_fields(m, &mut Vec::new(), &mut out);
    }
    out
}

fn read_fields(m: &Map<String, Value>, path: &mut Path, out: &mut FieldSet) {
    for (key, child) in m {
        if key == "." {
            if !path.is_empty() {
                out.insert(path.clone());
            }
            continue;
        }
        let Some(element) = Element::parse(key) else {
            continue;
        };
        path.push(element);
        match child.as_object() {
            Some(cm) if !cm.is_empty() => read_fields(cm, path, out),
            _ => {
                out.insert(path.clone());
            }
        }
        path.pop();
    }
}

// ---------------------------------------------------------------------------------------------
// Owners
// ---------------------------------------------------------------------------------------------

/// A managed-fields entry with its set parsed.
struct Owner {
    manager: String,
    operation: String,
    subresource: String,
    set: FieldSet,
}

impl Owner {
    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

/// Parses entries, folding entries with the same identity together.
fn parse_owners(entries: &[ManagedEntry]) -> Vec<Owner> {
    let mut owners: Vec<Owner> = Vec::new();
    for e in entries {
        let set = set_from_fields(&e.fields);
        match owners
            .iter_mut()
            .find(|o| o.is(&e.manager, &e.operation, &e.subresource))
        {
            Some(owner) => owner.set.extend(set),
            None => owners.push(Owner {
                manager: e.manager.clone(),
                operation: e.operation.clone(),
                subresource: e.subresource.clone(),
                set,
            }),
        }
    }
    owners
}

/// Drops owners of nothing, sorts, and serializes.
fn finish(owners: Vec<Owner>) -> Vec<ManagedEntry> {
    let mut owners: Vec<Owner> = owners.into_iter().filter(|o| !o.set.is_empty()).collect();
    owners.sort_by(|a, b| {
        (
            a.operation.as_str(),
            a.manager.as_str(),
            a.subresource.as_str(),
        )
            .cmp(&(
                b.operation.as_str(),
                b.manager.as_str(),
                b.subresource.as_str(),
            ))
    });
    owners
        .into_iter()
        .map(|o| ManagedEntry {
            fields: set_to_fields(&o.set),
            manager: o.manager,
            operation: o.operation,
            subresource: o.subresource,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Scope
// ---------------------------------------------------------------------------------------------

/// Top-level keys that are never part of the merged body.
fn is_envelope(key: &str) -> bool {
    matches!(key, "apiVersion" | "kind" | "metadata" | "status")
}

/// Metadata keys that are merged and tracked.
const TRACKED_METADATA: [&str; 2] = ["labels", "annotations"];

/// The part of `object` that apply and update track for `subresource`.
fn scope(object: &Value, subresource: &str) -> Value {
    let mut out = Map::new();
    let Some(m) = object.as_object() else {
        return Value::Object(out);
    };
    if subresource == "status" {
        if let Some(status) = m.get("status") {
            out.insert("status".into(), status.clone());
        }
        return Value::Object(out);
    }
    for (k, v) in m.iter().filter(|(k, _)| !is_envelope(k)) {
        out.insert(k.clone(), v.clone());
    }
    if let Some(metadata) = m.get("metadata").and_then(Value::as_object) {
        let tracked: Map<String, Value> = TRACKED_METADATA
            .iter()
            .filter_map(|k| metadata.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect();
        if !tracked.is_empty() {
            out.insert("metadata".into(), Value::Object(tracked));
        }
    }
    Value::Object(out)
}

/// Replaces the tracked part of `target` with `scoped`.
fn write_back(target: &mut Value, scoped: &Value, subresource: &str) {
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(t) = target.as_object_mut() else {
        return;
    };
    let empty = Map::new();
    let s = scoped.as_object().unwrap_or(&empty);
    if subresource == "status" {
        match s.get("status") {
            Some(status) => {
                t.insert("status".into(), status.clone());
            }
            None => {
                t.remove("status");
            }
        }
        return;
    }
    let body: Vec<String> = t.keys().filter(|k| !is_envelope(k)).cloned().collect();
    for k in body {
        t.remove(&k);
    }
    for (k, v) in s.iter().filter(|(k, _)| !is_envelope(k)) {
        t.insert(k.clone(), v.clone());
    }
    let tracked = s.get("metadata").and_then(Value::as_object);
    if !t.contains_key("metadata") && tracked.is_none_or(Map::is_empty) {
        return;
    }
    let metadata = t
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !metadata.is_object() {
        *metadata = Value::Object(Map::new());
    }
    if let Some(metadata) = metadata.as_object_mut() {
        for key in TRACKED_METADATA {
            match tracked.and_then(|m| m.get(key)) {
                Some(v) => {
                    metadata.insert(key.to_owned(), v.clone());
                }
                None => {
                    metadata.remove(key);
                }
            }
        }
    }
}

/// The envelope of an object created by apply: `apiVersion`, `kind`, `metadata.name` and
/// `metadata.namespace` from the applied configuration.
fn skeleton(applied: &Value) -> Value {
    let mut out = Map::new();
    for key in ["apiVersion", "kind"] {
        if let Some(v) = applied.get(key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
    let mut metadata = Map::new();
    for key in ["name", "namespace"] {
        if let Some(v) = applied.get("metadata").and_then(|m| m.get(key)) {
            metadata.insert(key.to_owned(), v.clone());
        }
    }
    out.insert("metadata".into(), Value::Object(metadata));
    Value::Object(out)
}

/// `namespace/name; group/version, Kind=kind`, as the API server names a patch object.
fn object_identity(object: &Value) -> String {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    let metadata = object.get("metadata");
    let namespace = text(metadata.and_then(|m| m.get("namespace")));
    let name = text(metadata.and_then(|m| m.get("name")));
    let api_version = text(object.get("apiVersion"));
    let kind = text(object.get("kind"));
    let (group, version) = api_version
        .rsplit_once('/')
        .unwrap_or(("", api_version.as_str()));
    format!("{namespace}/{name}; {group}/{version}, Kind={kind}")
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

// ---------------------------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------------------------

/// The caller's list-type lookup.
struct Lists<'a> {
    lookup: &'a dyn Fn(&[&str]) -> Option<ListType>,
}

impl Lists<'_> {
    fn at(&self, names: &[String]) -> ListType {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        match (self.lookup)(&names) {
            Some(ListType::Map { keys }) if keys.is_empty() => ListType::Atomic,
            Some(list) => list,
            None => ListType::Atomic,
        }
    }
}

/// The element naming `item` in an associative list.
fn item_element(list: &ListType, item: &Value) -> Result<Element, String> {
    match (list, item) {
        (ListType::Map { .. }, Value::Null) => {
            Err("associative list with keys may not have a null element".to_owned())
        }
        (ListType::Map { keys }, Value::Object(m)) => {
            let mut key = Map::new();
            for name in keys {
                let Some(v) = m.get(name) else {
                    return Err(format!(
                        "associative list with keys has an element that omits key field {} (and doesn't have default value)",
                        Value::from(name.as_str())
                    ));
                };
                key.insert(name.clone(), v.clone());
            }
            Ok(Element::Key(canonical(&Value::Object(key))))
        }
        (ListType::Map { .. }, _) => {
            Err("associative list with keys may not have non-map elements".to_owned())
        }
        (_, Value::Object(_)) => {
            Err("associative list without keys has an element that's a map type".to_owned())
        }
        (_, Value::Array(_)) => {
            Err("associative list without keys has an element that's a list type".to_owned())
        }
        (_, scalar) => Ok(Element::Value(canonical(scalar))),
    }
}

/// Names each item of an associative list. Items that cannot be named, and repeats, are `None`
/// (kept as they are, never matched or tracked).
fn index_items(list: &ListType, items: &[Value]) -> Vec<Option<Element>> {
    let mut seen = BTreeSet::new();
    items
        .iter()
        .map(|item| {
            item_element(list, item)
                .ok()
                .filter(|e| seen.insert(e.clone()))
        })
        .collect()
}

/// Names each item of an associative list in an applied configuration, rejecting what the API
/// server rejects.
fn index_items_strictly(
    list: &ListType,
    items: &[Value],
    path: &[Element],
) -> Result<Vec<Element>, String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let element = item_element(list, item)
            .map_err(|message| format!("{}: element {i}: {message}", path_string(path)))?;
        if !seen.insert(element.clone()) {
            return Err(format!(
                "{}: duplicate entries for key {}",
                path_string(path),
                element.display()
            ));
        }
        out.push(element);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Walkers
// ---------------------------------------------------------------------------------------------

/// Collects the fields an applied configuration sets: scalars, atomic lists, list entries,
/// empty objects and nulls (structured-merge-diff's `ToFieldSet`).
fn collect_fields(
    value: &Value,
    path: &mut Path,
    names: &mut Vec<String>,
    lists: &Lists<'_>,
    out: &mut FieldSet,
) -> Result<(), String> {
    match value {
        Value::Object(m) => {
            for (k, child) in m {
                path.push(Element::Field(k.clone()));
                names.push(k.clone());
                if child.is_null() || child.as_object().is_some_and(Map::is_empty) {
                    out.insert(path.clone());
                }
                collect_fields(child, path, names, lists, out)?;
                names.pop();
                path.pop();
            }
        }
        Value::Array(items) => {
            let list = lists.at(names);
            if list == ListType::Atomic {
                insert_path(out, path);
                return Ok(());
            }
            let elements = index_items_strictly(&list, items, path)?;
            for (item, element) in items.iter().zip(elements) {
                path.push(element);
                collect_fields(item, path, names, lists, out)?;
                out.insert(path.clone());
                path.pop();
            }
        }
        _ => insert_path(out, path),
    }
    Ok(())
}

fn insert_path(out: &mut FieldSet, path: &[Element]) {
    if !path.is_empty() {
        out.insert(path.to_vec());
    }
}

/// Drops `null` object fields, recursively.
fn strip_nulls(value: &Value) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        scalar => scalar.clone(),
    }
}

/// Merges `applied` into `live`.
fn merge(live: &Value, applied: &Value, names: &mut Vec<String>, lists: &Lists<'_>) -> Value {
    match (live, applied) {
        (Value::Object(lm), Value::Object(am)) => {
            let mut out = lm.clone();
            for (k, av) in am {
                if av.is_null() {
                    out.remove(k);
                    continue;
                }
                names.push(k.clone());
                let merged = match lm.get(k) {
                    Some(lv) => merge(lv, av, names, lists),
                    None => strip_nulls(av),
                };
                names.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(la), Value::Array(aa)) => match lists.at(names) {
            ListType::Atomic => strip_nulls(applied),
            list => Value::Array(merge_list(la, aa, &list, names, lists)),
        },
        _ => strip_nulls(applied),
    }
}

/// Merges associative lists. Entries only in `live` keep their place; entries in `applied`
/// follow `applied`'s order; an entry in both is merged where `applied` places it relative to
/// the other shared entries.
fn merge_list(
    live: &[Value],
    applied: &[Value],
    list: &ListType,
    names: &mut Vec<String>,
    lists: &Lists<'_>,
) -> Vec<Value> {
    let live_elements = index_items(list, live);
    let applied_elements = index_items(list, applied);
    let live_at: BTreeMap<&Element, usize> = live_elements
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.as_ref().map(|e| (e, i)))
        .collect();
    let in_applied: BTreeSet<&Element> = applied_elements.iter().flatten().collect();
    let shared: Vec<&Element> = applied_elements
        .iter()
        .flatten()
        .filter(|e| live_at.contains_key(e))
        .collect();

    let mut out = Vec::with_capacity(live.len().max(applied.len()));
    let mut emitted: BTreeSet<&Element> = BTreeSet::new();
    let mut next_shared = 0;
    let (mut li, mut ai) = (0, 0);
    while li < live.len() || ai < applied.len() {
        if let Some(live_element) = live_elements.get(li) {
            match live_element {
                None => {
                    out.push(live[li].clone());
                    li += 1;
                    continue;
                }
                Some(e) if !in_applied.contains(e) => {
                    out.push(live[li].clone());
                    li += 1;
                    continue;
                }
                Some(e) if emitted.contains(e) => {
                    li += 1;
                    continue;
                }
                Some(e) if ai < applied.len() && shared.get(next_shared) != Some(&e) => {
                    // Shared, but applied wants another shared entry first.
                    li += 1;
                    continue;
                }
                Some(_) => {}
            }
        }
        let Some(applied_item) = applied.get(ai) else {
            // Only reachable with a shared live entry left over; keep it.
            out.push(live[li].clone());
            li += 1;
            continue;
        };
        let element = applied_elements.get(ai).and_then(Option::as_ref);
        let live_item = element.and_then(|e| live_at.get(e)).map(|i| &live[*i]);
        out.push(match live_item {
            Some(l) => merge(l, applied_item, names, lists),
            None => strip_nulls(applied_item),
        });
        if let Some(e) = element {
            emitted.insert(e);
            if shared.get(next_shared) == Some(&e) {
                next_shared += 1;
            }
        }
        ai += 1;
    }
    out
}

/// Paths added, modified and removed between two versions of an object.
#[derive(Default)]
struct Comparison {
    added: FieldSet,
    modified: FieldSet,
    removed: FieldSet,
}

fn compare_objects(old: &Value, new: &Value, lists: &Lists<'_>) -> Comparison {
    let mut comparison = Comparison::default();
    compare(
        Some(old),
        Some(new),
        &mut Vec::new(),
        &mut Vec::new(),
        lists,
        &mut comparison,
    );
    untrack_metadata(&mut comparison.added);
    untrack_metadata(&mut comparison.modified);
    untrack_metadata(&mut comparison.removed);
    comparison
}

/// Forgets the `metadata` node itself: it always exists, only labels and annotations beneath it
/// are tracked.
fn untrack_metadata(set: &mut FieldSet) {
    set.remove([Element::Field("metadata".to_owned())].as_slice());
}

/// Compares two values at `path`. Leaves (scalars, atomic lists, kind changes) are modified
/// when they differ; nodes present on one side only are added or removed with everything under
/// them.
fn compare(
    old: Option<&Value>,
    new: Option<&Value>,
    path: &mut Path,
    names: &mut Vec<String>,
    lists: &Lists<'_>,
    out: &mut Comparison,
) {
    match (old, new) {
        (None, None) => {}
        (None, Some(n)) => mark(n, path, names, lists, &mut out.added, true),
        (Some(o), None) => mark(o, path, names, lists, &mut out.removed, true),
        (Some(Value::Object(om)), Some(Value::Object(nm))) => {
            let keys: BTreeSet<&String> = om.keys().chain(nm.keys()).collect();
            for k in keys {
                path.push(Element::Field(k.clone()));
                names.push(k.clone());
                compare(om.get(k), nm.get(k), path, names, lists, out);
                names.pop();
                path.pop();
            }
        }
        (Some(Value::Array(oa)), Some(Value::Array(na))) => {
            let list = lists.at(names);
            let old_elements = index_items(&list, oa);
            let new_elements = index_items(&list, na);
            let opaque = old_elements
                .iter()
                .chain(&new_elements)
                .any(Option::is_none);
            if list == ListType::Atomic || opaque {
                if oa != na {
                    insert_path(&mut out.modified, path);
                }
                return;
            }
            let old_items: BTreeMap<&Element, &Value> =
                old_elements.iter().flatten().zip(oa).collect();
            let new_items: BTreeMap<&Element, &Value> =
                new_elements.iter().flatten().zip(na).collect();
            let elements: BTreeSet<&Element> =
                old_items.keys().chain(new_items.keys()).copied().collect();
            for e in elements {
                path.push(e.clone());
                compare(
                    old_items.get(e).copied(),
                    new_items.get(e).copied(),
                    path,
                    names,
                    lists,
                    out,
                );
                path.pop();
            }
        }
        (Some(o), Some(n)) => {
            if o == n {
                return;
            }
            insert_path(&mut out.modified, path);
            if o.is_object() || o.is_array() || n.is_object() || n.is_array() {
                // A change of kind: what was beneath is gone, what is beneath now is new.
                mark(o, path, names, lists, &mut out.removed, false);
                mark(n, path, names, lists, &mut out.added, false);
            }
        }
    }
}

/// Inserts `path` (when `include_self`) and every node beneath it into `set`.
fn mark(
    value: &Value,
    path: &mut Path,
    names: &mut Vec<String>,
    lists: &Lists<'_>,
    set: &mut FieldSet,
    include_self: bool,
) {
    if include_self {
        insert_path(set, path);
    }
    match value {
        Value::Object(m) => {
            for (k, child) in m {
                path.push(Element::Field(k.clone()));
                names.push(k.clone());
                mark(child, path, names, lists, set, true);
                names.pop();
                path.pop();
            }
        }
        Value::Array(items) => {
            let list = lists.at(names);
            if list == ListType::Atomic {
                return;
            }
            for (item, element) in items.iter().zip(index_items(&list, items)) {
                if let Some(element) = element {
                    path.push(element);
                    mark(item, path, names, lists, set, true);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

/// Removes from `merged` what the applier owned before (`previous`) and no longer applies,
/// where nobody (the applier's new set included, in `kept`) owns the node or anything beneath
/// it. Ancestors of previously owned fields are candidates too, so a struct emptied of owned
/// fields goes away with them; `metadata` itself and key fields of surviving list-map entries
/// never do.
fn prune(merged: &mut Value, previous: &FieldSet, kept: &FieldSet, lists: &Lists<'_>) {
    let candidates: FieldSet = previous
        .iter()
        .flat_map(|p| (1..=p.len()).map(move |n| p[..n].to_vec()))
        .collect();
    let metadata = vec![Element::Field("metadata".to_owned())];
    let mut remove = FieldSet::new();
    for candidate in candidates {
        if candidate == metadata
            || is_key_field(&candidate)
            || has_prefix(kept, &candidate)
            || (1..candidate.len()).any(|n| remove.contains(&candidate[..n]))
        {
            continue;
        }
        remove.insert(candidate);
    }
    if !remove.is_empty() {
        remove_paths(merged, &mut Vec::new(), &mut Vec::new(), lists, &remove);
    }
}

/// Whether `path` ends in a key field of the list-map entry it is in.
fn is_key_field(path: &[Element]) -> bool {
    let [.., Element::Key(key), Element::Field(name)] = path else {
        return false;
    };
    serde_json::from_str::<Value>(key)
        .ok()
        .is_some_and(|k| k.get(name).is_some())
}

/// Removes the nodes whose paths are in `remove`.
fn remove_paths(
    value: &mut Value,
    path: &mut Path,
    names: &mut Vec<String>,
    lists: &Lists<'_>,
    remove: &FieldSet,
) {
    match value {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                path.push(Element::Field(k.clone()));
                if remove.contains(path.as_slice()) {
                    m.remove(&k);
                } else if has_prefix(remove, path) {
                    names.push(k.clone());
                    if let Some(child) = m.get_mut(&k) {
                        remove_paths(child, path, names, lists, remove);
                    }
                    names.pop();
                }
                path.pop();
            }
        }
        Value::Array(items) => {
            let list = lists.at(names);
            if list == ListType::Atomic {
                return;
            }
            let elements = index_items(&list, items);
            let mut kept = Vec::with_capacity(items.len());
            for (mut item, element) in std::mem::take(items).into_iter().zip(elements) {
                let Some(element) = element else {
                    kept.push(item);
                    continue;
                };
                path.push(element);
                if !remove.contains(path.as_slice()) {
                    if has_prefix(remove, path) {
                        remove_paths(&mut item, path, names, lists, remove);
                    }
                    kept.push(item);
                }
                path.pop();
            }
            *items = kept;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn no_lists(_: &[&str]) -> Option<ListType> {
        None
    }

    fn cr_lists(path: &[&str]) -> Option<ListType> {
        match path {
            ["status", "conditions"] => Some(ListType::Map {
                keys: vec!["type".into()],
            }),
            ["spec", "hosts"] | ["spec", "finalizers"] => Some(ListType::Set),
            ["spec", "containers"] => Some(ListType::Map {
                keys: vec!["name".into()],
            }),
            ["spec", "containers", "ports"] => Some(ListType::Map {
                keys: vec!["containerPort".into(), "protocol".into()],
            }),
            _ => None,
        }
    }

    fn entry<'a>(entries: &'a [ManagedEntry], manager: &str) -> &'a ManagedEntry {
        entries
            .iter()
            .find(|e| e.manager == manager)
            .unwrap_or_else(|| panic!("no entry for {manager}: {entries:#?}"))
    }

    fn conflicts(result: Result<(Value, Vec<ManagedEntry>), Error>) -> Vec<(String, String)> {
        match result {
            Err(Error::ApplyConflict { conflicts }) => conflicts
                .into_iter()
                .map(|c| (c.manager, c.field))
                .collect(),
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    fn certificate_request() -> Value {
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "CertificateRequest",
            "metadata": {"name": "cr-1", "namespace": "apps", "uid": "u-1", "resourceVersion": "7"},
            "spec": {"request": "LS0t", "issuerRef": {"group": "relay.dev", "kind": "RelayIssuer", "name": "relay"}},
        })
    }

    fn approved() -> Value {
        json!({
            "type": "Approved", "status": "True", "reason": "cert-manager.io",
            "message": "Certificate request has been approved by cert-manager.io",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        })
    }

    fn ready(status: &str, reason: &str, message: Option<&str>) -> Value {
        let mut c = json!({
            "type": "Ready", "status": status, "reason": reason,
            "lastTransitionTime": "2026-01-01T00:01:00Z",
        });
        if let Some(message) = message {
            c["message"] = json!(message);
        }
        c
    }

    fn status_apply(conditions: Vec<Value>) -> Value {
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "CertificateRequest",
            "metadata": {"name": "cr-1", "namespace": "apps"},
            "status": {"conditions": conditions},
        })
    }

    /// A CertificateRequest approved by cert-manager through a status Update.
    fn approved_by_update() -> (Value, Vec<ManagedEntry>) {
        let created = certificate_request();
        let creator = record_update(
            None,
            &created,
            &[],
            "cert-manager-certificates",
            "",
            &cr_lists,
        );
        let mut approved_cr = created.clone();
        approved_cr["status"] = json!({"conditions": [approved()]});
        let managed = record_update(
            Some(&created),
            &approved_cr,
            &creator,
            "cert-manager-approver",
            "status",
            &cr_lists,
        );
        (approved_cr, managed)
    }

    fn condition_types(object: &Value) -> Vec<String> {
        object["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn approver_update_is_recorded_with_dots() {
        let (_, managed) = approved_by_update();
        assert_eq!(
            entry(&managed, "cert-manager-approver").fields,
            json!({"f:status": {".": {}, "f:conditions": {".": {}, "k:{\"type\":\"Approved\"}": {
                ".": {}, "f:lastTransitionTime": {}, "f:message": {}, "f:reason": {}, "f:status": {}, "f:type": {}
            }}}})
        );
        let approver = entry(&managed, "cert-manager-approver");
        assert_eq!(approver.operation, "Update");
        assert_eq!(approver.subresource, "status");
        assert_eq!(
            entry(&managed, "cert-manager-certificates").fields,
            json!({"f:spec": {".": {}, "f:issuerRef": {".": {}, "f:group": {}, "f:kind": {}, "f:name": {}}, "f:request": {}}})
        );
    }

    #[test]
    fn issuer_status_apply_keeps_the_approvers_condition() {
        for approver_applies in [false, true] {
            let (live, managed) = if approver_applies {
                let (object, managed) = apply(
                    Some(&certificate_request()),
                    &[],
                    &status_apply(vec![approved()]),
                    "cert-manager-approver",
                    "status",
                    false,
                    &cr_lists,
                )
                .unwrap();
                assert_eq!(entry(&managed, "cert-manager-approver").operation, "Apply");
                (object, managed)
            } else {
                approved_by_update()
            };

            // First apply: Ready joins Approved.
            let issued = status_apply(vec![ready(
                "True",
                "Issued",
                Some("Certificate fetched from issuer successfully"),
            )]);
            let (object, managed) = apply(
                Some(&live),
                &managed,
                &issued,
                "relay-issuer",
                "status",
                false,
                &cr_lists,
            )
            .unwrap();
            assert_eq!(condition_types(&object), ["Approved", "Ready"]);
            assert_eq!(object["status"]["conditions"][0], approved());
            assert_eq!(object["spec"], live["spec"]);
            assert_eq!(object["metadata"], live["metadata"]);
            let issuer = entry(&managed, "relay-issuer");
            assert_eq!(
                (issuer.operation.as_str(), issuer.subresource.as_str()),
                ("Apply", "status")
            );
            assert_eq!(
                issuer.fields,
                json!({"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {
                    ".": {}, "f:lastTransitionTime": {}, "f:message": {}, "f:reason": {}, "f:status": {}, "f:type": {}
                }}}})
            );
            assert!(managed.iter().any(|e| e.manager == "cert-manager-approver"));

            // Second apply with only Ready, changed and without a message: Approved stays,
            // Ready changes, the message the issuer stopped applying goes.
            let failed = status_apply(vec![ready("False", "Failed", None)]);
            let (object, managed) = apply(
                Some(&object),
                &managed,
                &failed,
                "relay-issuer",
                "status",
                false,
                &cr_lists,
            )
            .unwrap();
            assert_eq!(condition_types(&object), ["Approved", "Ready"]);
            assert_eq!(object["status"]["conditions"][0], approved());
            assert_eq!(
                object["status"]["conditions"][1],
                ready("False", "Failed", None)
            );
            assert_eq!(
                entry(&managed, "relay-issuer").fields["f:status"]["f:conditions"]["k:{\"type\":\"Ready\"}"]
                    .get("f:message"),
                None
            );

            // Changing the approver's condition without force conflicts, naming the approver.
            let mut denied = approved();
            denied["status"] = json!("False");
            let hijack = status_apply(vec![denied.clone(), ready("False", "Failed", None)]);
            let found = conflicts(apply(
                Some(&object),
                &managed,
                &hijack,
                "relay-issuer",
                "status",
                false,
                &cr_lists,
            ));
            assert_eq!(
                found,
                [(
                    "cert-manager-approver".to_owned(),
                    ".status.conditions[type=\"Approved\"].status".to_owned()
                )]
            );
            let error = apply(
                Some(&object),
                &managed,
                &hijack,
                "relay-issuer",
                "status",
                false,
                &cr_lists,
            )
            .unwrap_err();
            assert_eq!(
                error.to_string(),
                "Apply failed with 1 conflict: conflict with \"cert-manager-approver\": .status.conditions[type=\"Approved\"].status"
            );

            // With force it succeeds and ownership of that field moves.
            let (forced, managed) = apply(
                Some(&object),
                &managed,
                &hijack,
                "relay-issuer",
                "status",
                true,
                &cr_lists,
            )
            .unwrap();
            assert_eq!(condition_types(&forced), ["Approved", "Ready"]);
            assert_eq!(forced["status"]["conditions"][0], denied);
            let approver = entry(&managed, "cert-manager-approver").fields.clone();
            let approved_key = "k:{\"type\":\"Approved\"}";
            assert!(
                approver["f:status"]["f:conditions"][approved_key]
                    .get("f:status")
                    .is_none()
            );
            assert!(
                approver["f:status"]["f:conditions"][approved_key]
                    .get("f:reason")
                    .is_some()
            );
            let issuer = &entry(&managed, "relay-issuer").fields;
            assert!(
                issuer["f:status"]["f:conditions"][approved_key]
                    .get("f:status")
                    .is_some()
            );
        }
    }

    #[test]
    fn applying_identical_values_shares_ownership() {
        let (live, managed) = approved_by_update();
        let both = status_apply(vec![approved(), ready("True", "Issued", None)]);
        let (object, managed) = apply(
            Some(&live),
            &managed,
            &both,
            "relay-issuer",
            "status",
            false,
            &cr_lists,
        )
        .unwrap();
        assert_eq!(condition_types(&object), ["Approved", "Ready"]);
        // Dropping the shared entry keeps it: the approver still owns it.
        let only_ready = status_apply(vec![ready("True", "Issued", None)]);
        let (object, _) = apply(
            Some(&object),
            &managed,
            &only_ready,
            "relay-issuer",
            "status",
            false,
            &cr_lists,
        )
        .unwrap();
        assert_eq!(condition_types(&object), ["Approved", "Ready"]);
        assert_eq!(object["status"]["conditions"][0], approved());
    }

    #[test]
    fn status_apply_ignores_spec_and_main_apply_ignores_status() {
        let live = certificate_request();
        let mut applied = status_apply(vec![ready("True", "Issued", None)]);
        applied["spec"] = json!({"request": "changed"});
        let (object, managed) = apply(
            Some(&live),
            &[],
            &applied,
            "relay-issuer",
            "status",
            false,
            &cr_lists,
        )
        .unwrap();
        assert_eq!(object["spec"]["request"], "LS0t");
        assert_eq!(object["status"]["conditions"][0]["type"], "Ready");
        assert!(
            entry(&managed, "relay-issuer")
                .fields
                .get("f:spec")
                .is_none()
        );

        let (object, managed) =
            apply(Some(&live), &[], &applied, "kubectl", "", false, &cr_lists).unwrap();
        assert_eq!(object["spec"]["request"], "changed");
        assert!(object.get("status").is_none());
        assert_eq!(
            entry(&managed, "kubectl").fields,
            json!({"f:spec": {"f:request": {}}})
        );
    }

    #[test]
    fn missing_or_repeated_keys_are_rejected() {
        let live = certificate_request();
        let applied = status_apply(vec![json!({"status": "True"})]);
        match apply(Some(&live), &[], &applied, "m", "status", false, &cr_lists) {
            Err(Error::BadRequest(message)) => assert_eq!(
                message,
                "failed to create typed patch object (apps/cr-1; cert-manager.io/v1, Kind=CertificateRequest): .status.conditions: element 0: associative list with keys has an element that omits key field \"type\" (and doesn't have default value)"
            ),
            other => panic!("{other:?}"),
        }
        let applied = status_apply(vec![ready("True", "a", None), ready("False", "b", None)]);
        match apply(Some(&live), &[], &applied, "m", "status", false, &cr_lists) {
            Err(Error::BadRequest(message)) => assert!(
                message.ends_with(".status.conditions: duplicate entries for key [type=\"Ready\"]"),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
        let applied = json!({"spec": {"hosts": [{"a": 1}]}});
        assert!(matches!(
            apply(None, &[], &applied, "m", "", false, &cr_lists),
            Err(Error::BadRequest(m)) if m.contains("associative list without keys has an element that's a map type")
        ));
        assert!(matches!(
            apply(None, &[], &json!([1]), "m", "", false, &cr_lists),
            Err(Error::BadRequest(_))
        ));
    }

    fn config_map(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns"}, "data": data})
    }

    #[test]
    fn apply_onto_nothing_creates() {
        let mut applied = config_map(json!({"a": "1", "b": "2"}));
        applied["status"] = json!({"ignored": true});
        applied["metadata"]["labels"] = json!({"app": "web"});
        applied["metadata"]["finalizers"] = json!(["ignored"]);
        let (object, managed) =
            apply(None, &[], &applied, "kubectl", "", false, &no_lists).unwrap();
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cm", "namespace": "ns", "labels": {"app": "web"}},
                   "data": {"a": "1", "b": "2"}})
        );
        assert_eq!(
            managed,
            [ManagedEntry {
                manager: "kubectl".into(),
                operation: "Apply".into(),
                subresource: String::new(),
                fields: json!({"f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}),
            }]
        );
    }

    #[test]
    fn fields_no_longer_applied_are_removed() {
        let (object, managed) = apply(
            None,
            &[],
            &config_map(json!({"a": "1", "b": "2"})),
            "m",
            "",
            false,
            &no_lists,
        )
        .unwrap();
        let (object, managed) = apply(
            Some(&object),
            &managed,
            &config_map(json!({"a": "1"})),
            "m",
            "",
            false,
            &no_lists,
        )
        .unwrap();
        assert_eq!(object["data"], json!({"a": "1"}));
        assert_eq!(entry(&managed, "m").fields, json!({"f:data": {"f:a": {}}}));
        // Applying nothing removes the emptied map too.
        let (object, managed) = apply(
            Some(&object),
            &managed,
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}),
            "m",
            "",
            false,
            &no_lists,
        )
        .unwrap();
        assert!(object.get("data").is_none());
        assert_eq!(object["metadata"], json!({"name": "cm", "namespace": "ns"}));
        assert!(managed.is_empty());
    }

    #[test]
    fn removal_keeps_unowned_siblings_and_other_managers_fields() {
        let live = config_map(json!({"mine": "1", "theirs": "2", "nobodys": "3"}));
        let managed = vec![
            ManagedEntry {
                manager: "m".into(),
                operation: "Apply".into(),
                subresource: String::new(),
                fields: json!({"f:data": {"f:mine": {}}}),
            },
            ManagedEntry {
                manager: "other".into(),
                operation: "Update".into(),
                subresource: String::new(),
                fields: json!({"f:data": {"f:theirs": {}}}),
            },
        ];
        let (object, managed) = apply(
            Some(&live),
            &managed,
            &config_map(json!({"new": "4"})),
            "m",
            "",
            false,
            &no_lists,
        )
        .unwrap();
        assert_eq!(
            object["data"],
            json!({"theirs": "2", "nobodys": "3", "new": "4"})
        );
        assert_eq!(
            entry(&managed, "m").fields,
            json!({"f:data": {"f:new": {}}})
        );
        assert_eq!(
            entry(&managed, "other").fields,
            json!({"f:data": {"f:theirs": {}}})
        );
    }

    #[test]
    fn shared_ownership_keeps_the_field() {
        let (object, managed) = apply(
            None,
            &[],
            &config_map(json!({"x": "1"})),
            "one",
            "",
            false,
            &no_lists,
        )
        .unwrap();
        let (object, managed) = apply(
            Some(&object),
            &managed,
            &config_map(json!({"x": "1"})),
            "two",
            "",
            false,
            &no_lists,
        )
        .unwrap();
        assert_eq!(managed.len(), 2);
        let (object, managed) = apply(
            Some(&object),
            &managed,
            &config_map(json!({"y": "2"})),
            "one",
            "",
            false,
            &no_lists,
        )
        .unwrap();
        assert_eq!(object["data"], json!({"x": "1", "y": "2"}));
        assert_eq!(
            entry(&managed, "two").fields,
            json!({"f:data": {"f:x": {}}})
        );
        // Now only "two" owns x: changing it from "one" conflicts.
        let found = conflicts(apply(
            Some(&object),
            &managed,
            &config_map(json!({"x": "9", "y": "2"})),
            "one",
            "",
            false,
            &no_lists,
        ));
        assert_eq!(found, [("two".to_owned(), ".data.x".to_owned())]);
    }

    #[test]
    fn every_conflict_is_listed() {
        let (object, managed) = apply(
            None,
            &[],
            &config_map(json!({"a": "1", "b": "1"})),
            "alpha",
            "",
            false,
            &no_lists,
        )
        .unwrap();
        let (object, managed) = apply(
            Some(&object),
            &managed,
            &config_map(json!({"c": "1"})),
            "beta",
            "",
            false,
            &no_lists,
        )
        .unwrap();
        let result = apply(
            Some(&object),
            &managed,
            &config_map(json!({"a": "2", "b": "2", "c": "2"})),
            "gamma",
            "",
            false,
            &no_lists,
        );
        let error = result.unwrap_err();
        assert_eq!(
            error.to_string(),
            "Apply failed with 3 conflicts: conflict with \"alpha\": .data.a; conflict with \"alpha\": .data.b; conflict with \"beta\": .data.c"
        );
    }

    #[test]
    fn sets_merge_by_value() {
        let spec = |hosts: Value| json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x"}, "spec": {"hosts": hosts}});
        let (object, managed) = apply(
            None,
            &[],
            &spec(json!(["a", "b"])),
            "one",
            "",
            false,
            &cr_lists,
        )
        .unwrap();
        let (object, managed) = apply(
            Some(&object),
            &managed,
            &spec(json!(["c", "a"])),
            "two",
            "",
            false,
            &cr_lists,
        )
        .unwrap();
        assert_eq!(object["spec"]["hosts"], json!(["c", "a", "b"]));
        assert_eq!(
            entry(&managed, "two").fields,
            json!({"f:spec": {"f:hosts": {"v:\"a\"": {}, "v:\"c\"": {}}}})
        );
        let (object, _) = apply(
            Some(&object),
            &managed,
            &spec(json!(["d"])),
            "one",
            "",
            false,
            &cr_lists,
        )
        .unwrap();
        // b was only one's: gone; a is still two's: kept.
        assert_eq!(object["spec"]["hosts"], json!(["c", "a", "d"]));
    }

    #[test]
    fn atomic_lists_are_replaced_whole() {
        let spec = |args: Value| json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x"}, "spec": {"args": args}});
        let (object, managed) = apply(
            None,
            &[],
            &spec(json!(["a", "b"])),
            "one",
            "",
            false,
            &no_lists,
        )
        .unwrap();
        assert_eq!(
            entry(&managed, "one").fields,
            json!({"f:spec": {"f:args": {}}})
        );
        let (object, managed) = apply(
            Some(&object),
            &managed,
            &spec(json!(["x"])),
            "one",
            "",
            false,
            &no_lists,
        )
        .unwrap();
        assert_eq!(object["spec"]["args"], json!(["x"]));
        let found = conflicts(apply(
            Some(&object),
            &managed,
            &spec(json!(["y"])),
            "two",
            "",
            false,
            &no_lists,
        ));
        assert_eq!(found, [("one".to_owned(), ".spec.args".to_owned())]);
        let (object, managed) = apply(
            Some(&object),
            &managed,
            &spec(json!(["y"])),
            "two",
            "",
            true,
            &no_lists,
        )
        .unwrap();
        assert_eq!(object["spec"]["args"], json!(["y"]));
        assert!(managed.iter().all(|e| e.manager == "two"));
    }

    #[test]
    fn nested_list_maps_merge_by_compound_key() {
        let pod = |containers: Value| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}});
        let (object, managed) = apply(
            None,
            &[],
            &pod(json!([{"name": "app", "image": "a:1", "ports": [{"containerPort": 80, "protocol": "TCP"}]}])),
            "one",
            "",
            false,
            &cr_lists,
        )
        .unwrap();
        assert_eq!(
            entry(&managed, "one").fields,
            json!({"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                ".": {}, "f:image": {}, "f:name": {},
                "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:protocol": {}}}
            }}}})
        );
        let (object, _) = apply(
            Some(&object),
            &managed,
            &pod(json!([
                {"name": "app", "ports": [{"containerPort": 9090, "protocol": "TCP", "name": "metrics"}]},
                {"name": "sidecar", "image": "s:1"}
            ])),
            "two",
            "",
            false,
            &cr_lists,
        )
        .unwrap();
        assert_eq!(
            object["spec"]["containers"],
            json!([
                {"name": "app", "image": "a:1", "ports": [
                    {"containerPort": 80, "protocol": "TCP"},
                    {"containerPort": 9090, "protocol": "TCP", "name": "metrics"}
                ]},
                {"name": "sidecar", "image": "s:1"}
            ])
        );
    }

    #[test]
    fn list_map_order_follows_applied_for_shared_entries() {
        let lists = |p: &[&str]| {
            (p == ["spec", "items"]).then(|| ListType::Map {
                keys: vec!["name".into()],
            })
        };
        let live = json!({"spec": {"items": [{"name": "a"}, {"name": "x"}, {"name": "b"}]}});
        let applied = json!({"spec": {"items": [{"name": "b"}, {"name": "a"}]}});
        let (object, _) = apply(Some(&live), &[], &applied, "m", "", false, &lists).unwrap();
        assert_eq!(
            object["spec"]["items"],
            json!([{"name": "x"}, {"name": "b"}, {"name": "a"}])
        );
        let applied = json!({"spec": {"items": [{"name": "a"}, {"name": "c"}, {"name": "b"}]}});
        let (object, _) = apply(Some(&live), &[], &applied, "m", "", false, &lists).unwrap();
        assert_eq!(
            object["spec"]["items"],
            json!([{"name": "a"}, {"name": "x"}, {"name": "c"}, {"name": "b"}])
        );
    }

    #[test]
    fn labels_and_annotations_merge_per_key() {
        let live = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "ns", "uid": "u", "labels": {"team": "infra"}, "annotations": {"note": "keep"}},
        });
        let managed = record_update(None, &live, &[], "kubectl-create", "", &no_lists);
        assert_eq!(
            entry(&managed, "kubectl-create").fields,
            json!({"f:metadata": {"f:annotations": {".": {}, "f:note": {}}, "f:labels": {".": {}, "f:team": {}}}})
        );
        let applied = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "other-name", "namespace": "other", "labels": {"app": "web"}, "annotations": {"relay.dev/x": "1"}},
        });
        let (object, managed) = apply(
            Some(&live),
            &managed,
            &applied,
            "relay",
            "",
            false,
            &no_lists,
        )
        .unwrap();
        assert_eq!(
            object["metadata"],
            json!({"name": "cm", "namespace": "ns", "uid": "u",
                   "labels": {"team": "infra", "app": "web"},
                   "annotations": {"note": "keep", "relay.dev/x": "1"}})
        );
        let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "labels": {"app": "web"}}});
        let (object, managed) = apply(
            Some(&object),
            &managed,
            &applied,
            "relay",
            "",
            false,
            &no_lists,
        )
        .unwrap();
        assert_eq!(object["metadata"]["annotations"], json!({"note": "keep"}));
        assert_eq!(
            object["metadata"]["labels"],
            json!({"team": "infra", "app": "web"})
        );
        let found = conflicts(apply(
            Some(&object),
            &managed,
            &json!({"metadata": {"labels": {"team": "apps"}}}),
            "relay",
            "",
            false,
            &no_lists,
        ));
        assert_eq!(
            found,
            [(
                "kubectl-create".to_owned(),
                ".metadata.labels.team".to_owned()
            )]
        );
    }

    #[test]
    fn record_update_takes_ownership() {
        let deployment = |replicas: i64| json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": replicas, "paused": false}});
        let (object, managed) =
            apply(None, &[], &deployment(1), "kubectl", "", false, &no_lists).unwrap();
        let mut edited = object.clone();
        edited["spec"]["replicas"] = json!(2);
        edited["spec"]["minReadySeconds"] = json!(5);
        let managed = record_update(
            Some(&object),
            &edited,
            &managed,
            "kubectl-edit",
            "",
            &no_lists,
        );
        assert_eq!(
            entry(&managed, "kubectl").fields,
            json!({"f:spec": {"f:paused": {}}})
        );
        let editor = entry(&managed, "kubectl-edit");
        assert_eq!(editor.operation, "Update");
        assert_eq!(
            editor.fields,
            json!({"f:spec": {"f:minReadySeconds": {}, "f:replicas": {}}})
        );
        // Entries are sorted: Apply first.
        assert_eq!(managed[0].operation, "Apply");
        let found = conflicts(apply(
            Some(&edited),
            &managed,
            &deployment(3),
            "kubectl",
            "",
            false,
            &no_lists,
        ));
        assert_eq!(
            found,
            [("kubectl-edit".to_owned(), ".spec.replicas".to_owned())]
        );
        let error = apply(
            Some(&edited),
            &managed,
            &deployment(3),
            "kubectl",
            "",
            false,
            &no_lists,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\": .spec.replicas"
        );
        // Applying the value the editor set is no conflict.
        assert!(
            apply(
                Some(&edited),
                &managed,
                &deployment(2),
                "kubectl",
                "",
                false,
                &no_lists
            )
            .is_ok()
        );

        // Removing a field drops it from every entry; unchanged writes change nothing.
        let mut trimmed = edited.clone();
        trimmed["spec"].as_object_mut().unwrap().remove("paused");
        let after = record_update(
            Some(&edited),
            &trimmed,
            &managed,
            "kubectl-edit",
            "",
            &no_lists,
        );
        assert!(after.iter().all(|e| e.manager != "kubectl"));
        assert_eq!(
            record_update(Some(&trimmed), &trimmed, &after, "x", "", &no_lists),
            after
        );
    }

    #[test]
    fn record_update_of_status_only_sees_status() {
        let live = certificate_request();
        let mut new = live.clone();
        new["spec"]["request"] = json!("other");
        new["status"] = json!({"failureTime": "now"});
        let managed = record_update(Some(&live), &new, &[], "controller", "status", &cr_lists);
        assert_eq!(
            managed,
            [ManagedEntry {
                manager: "controller".into(),
                operation: "Update".into(),
                subresource: "status".into(),
                fields: json!({"f:status": {".": {}, "f:failureTime": {}}}),
            }]
        );
    }

    #[test]
    fn managed_fields_json_round_trip() {
        let (_, managed) = approved_by_update();
        let json = to_managed_fields_json(&managed, "cert-manager.io/v1", "2026-01-01T00:00:00Z");
        let first = &json[0];
        assert_eq!(first["apiVersion"], "cert-manager.io/v1");
        assert_eq!(first["fieldsType"], "FieldsV1");
        assert_eq!(first["time"], "2026-01-01T00:00:00Z");
        assert!(
            json.as_array()
                .unwrap()
                .iter()
                .any(|e| e["subresource"] == "status")
        );
        assert!(
            json.as_array()
                .unwrap()
                .iter()
                .any(|e| e.get("subresource").is_none())
        );
        assert_eq!(from_managed_fields_json(&json), managed);
        let object = json!({"metadata": {"managedFields": json}});
        assert_eq!(from_managed_fields_json(&object), managed);
        assert!(from_managed_fields_json(&json!("nope")).is_empty());
        let other_type = json!([{"manager": "m", "operation": "Update", "fieldsType": "FieldsV2", "fieldsV1": {"f:a": {}}}]);
        assert_eq!(from_managed_fields_json(&other_type)[0].fields, json!({}));
    }

    #[test]
    fn fields_v1_parsing_normalizes() {
        let fields = json!({"f:spec": {"f:x": {}, "f:list": {"v:\"a\"": {}, "i:0": {}}, "k:{\"b\":1,\"a\":2}": {".": {}}, "bogus": {}}});
        let set = set_from_fields(&fields);
        assert_eq!(
            set_to_fields(&set),
            json!({"f:spec": {"f:list": {"i:0": {}, "v:\"a\"": {}}, "f:x": {}, "k:{\"a\":2,\"b\":1}": {}}})
        );
        let path: Path = vec![
            Element::Field("spec".into()),
            Element::Key("{\"a\":2,\"b\":\"x\"}".into()),
            Element::Value("\"v\"".into()),
            Element::Index(3),
        ];
        assert_eq!(path_string(&path), ".spec[a=2,b=\"x\"][=\"v\"][3]");
    }

    #[test]
    fn null_removes_a_field_and_empty_object_is_owned() {
        let (object, managed) = apply(
            None,
            &[],
            &config_map(json!({"a": "1", "b": "2"})),
            "m",
            "",
            false,
            &no_lists,
        )
        .unwrap();
        let (object, managed) = apply(
            Some(&object),
            &managed,
            &json!({"data": {"a": null, "b": "2"}, "spec": {}}),
            "m",
            "",
            false,
            &no_lists,
        )
        .unwrap();
        assert_eq!(object["data"], json!({"b": "2"}));
        assert_eq!(object["spec"], json!({}));
        assert_eq!(
            entry(&managed, "m").fields,
            json!({"f:data": {"f:b": {}}, "f:spec": {}})
        );
    }

    fn prop_lists(path: &[&str]) -> Option<ListType> {
        match path {
            ["spec", "items"] => Some(ListType::Map {
                keys: vec!["name".into()],
            }),
            ["spec", "tags"] => Some(ListType::Set),
            _ => None,
        }
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::from),
            (-3i64..3).prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::from),
        ]
    }

    fn small_object() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(2, 12, 3, |inner| {
            prop_oneof![
                prop::collection::btree_map("[a-d]", inner.clone(), 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                prop::collection::vec(inner, 0..3).prop_map(Value::Array),
            ]
        })
    }

    fn applied_config() -> impl Strategy<Value = Value> {
        (
            prop::option::of(leaf()),
            prop::collection::btree_map("[a-d]", small_object(), 0..3),
            prop::collection::btree_map("[a-c]", prop::collection::btree_map("[w-z]", leaf(), 0..3), 0..3),
            prop::collection::btree_set("[a-d]", 0..4),
            prop::collection::btree_map("[a-c]", "[a-c]", 0..3),
        )
            .prop_map(|(x, nested, items, tags, labels)| {
                let items: Vec<Value> = items
                    .into_iter()
                    .map(|(name, fields)| {
                        let mut m: Map<String, Value> = fields.into_iter().collect();
                        m.insert("name".into(), Value::from(name));
                        Value::Object(m)
                    })
                    .collect();
                let mut spec = json!({"nested": Value::Object(nested.into_iter().collect()), "items": items, "tags": tags});
                if let Some(x) = x {
                    spec["x"] = x;
                }
                json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "x", "labels": labels}, "spec": spec})
            })
    }

    fn arbitrary_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-2i64..2).prop_map(Value::from),
            "[a-b]{0,1}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::btree_map(
                    "(spec|items|tags|name|x|status|metadata|labels)",
                    inner.clone(),
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
                prop::collection::vec(inner, 0..4).prop_map(Value::Array),
            ]
        })
    }

    proptest! {
        #[test]
        fn reapplying_is_a_no_op(applied in applied_config()) {
            let (first, managed) = apply(None, &[], &applied, "m", "", false, &prop_lists).unwrap();
            let (second, managed_again) =
                apply(Some(&first), &managed, &applied, "m", "", false, &prop_lists).unwrap();
            prop_assert_eq!(&second, &first);
            prop_assert_eq!(&managed_again, &managed);
            let json = to_managed_fields_json(&managed, "v1", "t");
            prop_assert_eq!(from_managed_fields_json(&json), managed);
        }

        #[test]
        fn forced_apply_wins_and_then_applies_cleanly(a in applied_config(), b in applied_config()) {
            let (object, managed) = apply(None, &[], &a, "a", "", false, &prop_lists).unwrap();
            let (object, managed) = apply(Some(&object), &managed, &b, "b", "", true, &prop_lists).unwrap();
            let (again, _) = apply(Some(&object), &managed, &b, "b", "", false, &prop_lists).unwrap();
            prop_assert_eq!(again, object);
        }

        #[test]
        fn apply_and_update_never_panic(live in arbitrary_json(), applied in arbitrary_json(), force: bool) {
            let managed = record_update(None, &live, &[], "u", "", &prop_lists);
            let _ = apply(Some(&live), &managed, &applied, "m", "", force, &prop_lists);
            let _ = apply(Some(&live), &managed, &applied, "m", "status", force, &prop_lists);
            let _ = record_update(Some(&live), &applied, &managed, "u", "status", &prop_lists);
        }
    }
}
