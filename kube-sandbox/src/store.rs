//! The object store: resourceVersions, the semantics of every write, history for watches.
//!
//! One global resourceVersion counter; objects kept as JSON per store; a bounded history of
//! changes that watches replay from (older requests get 410 Expired); a broadcast channel for
//! live changes. Write semantics follow kube-apiserver: optimistic concurrency, status
//! subresource rules, generation, finalizers, no-op writes. HTTP is `server`'s job; type-specific
//! validation is `validation`'s.

use crate::Error;
use crate::registry::{ResourceType, StoreKey};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// How many changes the history keeps for watches to resume from.
pub const HISTORY_LIMIT: usize = 50_000;

/// A watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed (including deletionTimestamp being set).
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion of the change.
    pub rv: u64,
    /// Which store changed.
    pub store: StoreKey,
    /// The object's namespace ("" for cluster-scoped).
    pub namespace: String,
    /// What happened.
    pub kind: EventType,
    /// The object after the change (for DELETED: the last state, with the deletion's RV).
    pub object: Arc<Value>,
    /// The watch line for this change, encoded once and shared by every watcher.
    pub encoded: std::sync::OnceLock<bytes::Bytes>,
    /// The watch line in the metadata-only form (`PartialObjectMetadata`, meta.k8s.io/v1),
    /// encoded once on first use and shared by every metadata watcher.
    pub encoded_metadata: std::sync::OnceLock<bytes::Bytes>,
}

type ObjectKey = (String, String);

#[derive(Default)]
struct State {
    rv: u64,
    objects: HashMap<StoreKey, BTreeMap<ObjectKey, Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    /// Watches from a resourceVersion below this get 410 Expired.
    compacted_through: u64,
}

/// Options common to writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and return the result without storing it.
    pub dry_run: bool,
    /// `fieldManager`.
    pub field_manager: Option<String>,
}

/// Preconditions on delete.
#[derive(Debug, Clone, Default)]
pub struct Preconditions {
    /// The object's uid must equal this.
    pub uid: Option<String>,
    /// The object's resourceVersion must equal this.
    pub resource_version: Option<String>,
}

/// The result of a delete.
#[derive(Debug, Clone)]
pub enum Deleted {
    /// The object is gone; this was its last state.
    Gone(Value),
    /// Finalizers remain: the object now carries a deletionTimestamp.
    Pending(Value),
}

/// A consistent snapshot of one store for listing.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The resourceVersion the snapshot was taken at.
    pub rv: u64,
    /// The objects, ordered by (namespace, name).
    pub objects: Vec<Arc<Value>>,
}

/// Past changes, a receiver for later ones, and the resourceVersion they were taken at.
pub type ChangesSince = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>, u64);

/// The object store shared by every request.
pub struct Store {
    state: Mutex<State>,
    changes: broadcast::Sender<Arc<Change>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(16_384);
        Self {
            state: Mutex::new(State::default()),
            changes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every write is applied at the
        // end), so a poisoned lock is safe to keep using.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Subscribes to live changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    /// Gets one object.
    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value, Error> {
        let state = self.lock();
        state
            .objects
            .get(&rt.store_key())
            .and_then(|m| m.get(&(namespace.to_string(), name.to_string())))
            .map(|v| (**v).clone())
            .ok_or_else(|| not_found(rt, name))
    }

    /// Whether a namespace exists.
    pub fn namespace_exists(&self, name: &str) -> bool {
        let state = self.lock();
        state
            .objects
            .get(&StoreKey {
                group: String::new(),
                plural: "namespaces".into(),
            })
            .is_some_and(|m| m.contains_key(&(String::new(), name.to_string())))
    }

    /// A snapshot of one store, optionally restricted to a namespace.
    pub fn snapshot(&self, rt: &ResourceType, namespace: Option<&str>) -> Snapshot {
        let state = self.lock();
        let objects = state
            .objects
            .get(&rt.store_key())
            .map(|m| {
                m.iter()
                    .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
                    .map(|(_, v)| v.clone())
                    .collect()
            })
            .unwrap_or_default();
        Snapshot {
            rv: state.rv,
            objects,
        }
    }

    /// Changes to one store after `since`, and a receiver for later ones, taken atomically so
    /// nothing is missed between them. `Err(Expired)` when `since` is older than the history.
    pub fn changes_since(&self, store: &StoreKey, since: u64) -> Result<ChangesSince, Error> {
        let state = self.lock();
        if since < state.compacted_through {
            return Err(Error::Expired(format!(
                "too old resource version: {since} ({})",
                state.compacted_through
            )));
        }
        let past = state
            .history
            .iter()
            .filter(|c| c.rv > since && &c.store == store)
            .cloned()
            .collect();
        Ok((past, self.changes.subscribe(), state.rv))
    }

    /// Forgets all history: the next watch from any older resourceVersion gets 410 Expired.
    pub fn compact(&self) {
        let mut state = self.lock();
        state.history.clear();
        state.compacted_through = state.rv;
    }

    /// Stores a new object (already defaulted and validated by the caller).
    pub fn create(
        &self,
        rt: &ResourceType,
        namespace: &str,
        mut object: Value,
        opts: &WriteOptions,
        now: &str,
    ) -> Result<Value, Error> {
        let mut state = self.lock();
        let name = name_of(&object).to_string();
        let key = (namespace.to_string(), name.clone());
        if state
            .objects
            .get(&rt.store_key())
            .is_some_and(|m| m.contains_key(&key))
        {
            return Err(Error::AlreadyExists {
                resource: rt.qualified_name(),
                name,
            });
        }
        let meta = metadata_mut(&mut object);
        meta.insert("uid".into(), Value::String(new_uid()));
        meta.insert("creationTimestamp".into(), Value::String(now.to_string()));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        if rt.custom || rt.status_subresource {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        if rt.status_subresource
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
            // kube-apiserver's namespace strategy starts every namespace Active (what the
            // STATUS column of `kubectl get namespaces` shows) with the `kubernetes` finalizer
            // in its spec.
            if rt.group.is_empty() && rt.kind == "Namespace" {
                map.insert("status".into(), json!({"phase": "Active"}));
                let spec = map.entry("spec").or_insert_with(|| json!({}));
                if !spec.is_object() {
                    *spec = json!({});
                }
                let finalizers = spec
                    .as_object_mut()
                    .map(|spec| spec.entry("finalizers").or_insert_with(|| json!([])));
                if let Some(finalizers) = finalizers {
                    if !finalizers.is_array() {
                        *finalizers = json!([]);
                    }
                    if let Some(list) = finalizers.as_array_mut()
                        && !list.iter().any(|f| f == "kubernetes")
                    {
                        list.push(json!("kubernetes"));
                    }
                }
            }
        }
        if opts.dry_run {
            metadata_mut(&mut object).insert(
                "resourceVersion".into(),
                Value::String((state.rv + 1).to_string()),
            );
            return Ok(object);
        }
        Ok(commit(
            &mut state,
            &self.changes,
            rt,
            key,
            object,
            EventType::Added,
        ))
    }

    /// Replaces an object (PUT), or only its status when `status_only`. `object` is the full new
    /// object as the client sent it (after type-specific normalisation).
    pub fn replace(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        mut object: Value,
        status_only: bool,
        opts: &WriteOptions,
    ) -> Result<Value, Error> {
        let mut state = self.lock();
        let key = (namespace.to_string(), name.to_string());
        let current = stored(&state, rt, &key).ok_or_else(|| not_found(rt, name))?;
        match resource_version_of(&object) {
            Some(rv) if rv != resource_version_of(&current).unwrap_or_default() => {
                return Err(Error::Conflict {
                    resource: rt.qualified_name(),
                    name: name.to_string(),
                    message: "the object has been modified; please apply your changes to the latest version and try again".into(),
                });
            }
            Some(_) => {}
            None if rt.custom || rt.kind == "Lease" => {
                return Err(Error::Invalid {
                    kind: rt.kind.clone(),
                    name: name.to_string(),
                    causes: vec![crate::error::Cause {
                        reason: "FieldValueInvalid".into(),
                        message: "Invalid value: 0x0: must be specified for an update".into(),
                        field: "metadata.resourceVersion".into(),
                    }],
                });
            }
            None => {}
        }
        // Immutable metadata carried over from the stored object.
        let preserved = [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ];
        {
            let current_meta = current
                .get("metadata")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let meta = metadata_mut(&mut object);
            for field in preserved {
                match current_meta.get(field) {
                    Some(v) => meta.insert(field.into(), v.clone()),
                    None => meta.remove(field),
                };
            }
        }
        let mut merged = if status_only {
            let mut merged = (*current).clone();
            if let Some(map) = merged.as_object_mut() {
                match object.get("status") {
                    Some(status) => map.insert("status".into(), status.clone()),
                    None => map.remove("status"),
                };
            }
            // The status writer's managedFields (computed by the caller) are kept.
            if let Some(mf) = object.pointer("/metadata/managedFields") {
                metadata_mut(&mut merged).insert("managedFields".into(), mf.clone());
            }
            merged
        } else {
            if rt.status_subresource
                && let Some(map) = object.as_object_mut()
            {
                match current.get("status") {
                    Some(status) => map.insert("status".into(), status.clone()),
                    None => map.remove("status"),
                };
            }
            object
        };
        // managedFields as the caller computed them win; otherwise keep the stored ones.
        if merged
            .get("metadata")
            .and_then(|m| m.get("managedFields"))
            .is_none()
            && let Some(mf) = current.get("metadata").and_then(|m| m.get("managedFields"))
        {
            metadata_mut(&mut merged).insert("managedFields".into(), mf.clone());
        }
        if !status_only && spec_changed(&current, &merged) && (rt.custom || rt.status_subresource) {
            let generation = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            metadata_mut(&mut merged).insert("generation".into(), json!(generation));
        }
        if same_object(&current, &merged) {
            return Ok((*current).clone());
        }
        // Finalizers all removed from an object being deleted: it goes away now.
        let finalizers_empty = merged
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if opts.dry_run {
            metadata_mut(&mut merged).insert(
                "resourceVersion".into(),
                Value::String((state.rv + 1).to_string()),
            );
            return Ok(merged);
        }
        if merged.pointer("/metadata/deletionTimestamp").is_some() && finalizers_empty {
            return Ok(remove(&mut state, &self.changes, rt, key, merged));
        }
        Ok(commit(
            &mut state,
            &self.changes,
            rt,
            key,
            merged,
            EventType::Modified,
        ))
    }

    /// Deletes an object: at once, or by setting deletionTimestamp when finalizers remain.
    pub fn delete(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        pre: &Preconditions,
        opts: &WriteOptions,
        now: &str,
    ) -> Result<Deleted, Error> {
        let mut state = self.lock();
        let key = (namespace.to_string(), name.to_string());
        let current = stored(&state, rt, &key).ok_or_else(|| not_found(rt, name))?;
        let conflict = |what: &str, want: &str, have: &str| Error::Conflict {
            resource: rt.qualified_name(),
            name: name.to_string(),
            message: format!("Precondition failed: {what}: {want}, {what} in object meta: {have}"),
        };
        if let Some(uid) = &pre.uid {
            let have = current
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if uid != have {
                return Err(conflict("UID in precondition", uid, have));
            }
        }
        if let Some(rv) = &pre.resource_version {
            let have = resource_version_of(&current).unwrap_or_default();
            if *rv != have {
                return Err(conflict("ResourceVersion in precondition", rv, &have));
            }
        }
        let has_finalizers = current
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if has_finalizers {
            if current.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(Deleted::Pending((*current).clone()));
            }
            let mut updated = (*current).clone();
            metadata_mut(&mut updated)
                .insert("deletionTimestamp".into(), Value::String(now.to_string()));
            metadata_mut(&mut updated).insert("deletionGracePeriodSeconds".into(), json!(0));
            if opts.dry_run {
                return Ok(Deleted::Pending(updated));
            }
            return Ok(Deleted::Pending(commit(
                &mut state,
                &self.changes,
                rt,
                key,
                updated,
                EventType::Modified,
            )));
        }
        if opts.dry_run {
            return Ok(Deleted::Gone((*current).clone()));
        }
        Ok(Deleted::Gone(remove(
            &mut state,
            &self.changes,
            rt,
            key,
            (*current).clone(),
        )))
    }

    /// Removes every object in a namespace (the namespace is being deleted).
    pub fn delete_namespace_contents(&self, namespace: &str, types: &[ResourceType]) {
        let mut state = self.lock();
        for rt in types
            .iter()
            .filter(|t| t.namespaced && (t.shared_store.is_none() || t.group == "events.k8s.io"))
        {
            let keys: Vec<ObjectKey> = state
                .objects
                .get(&rt.store_key())
                .map(|m| {
                    m.keys()
                        .filter(|(ns, _)| ns == namespace)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            for key in keys {
                let current = state
                    .objects
                    .get(&rt.store_key())
                    .and_then(|m| m.get(&key))
                    .cloned();
                if let Some(current) = current {
                    remove(&mut state, &self.changes, rt, key, (*current).clone());
                }
            }
        }
    }
}

fn commit(
    state: &mut State,
    changes: &broadcast::Sender<Arc<Change>>,
    rt: &ResourceType,
    key: ObjectKey,
    mut object: Value,
    kind: EventType,
) -> Value {
    state.rv += 1;
    let rv = state.rv;
    metadata_mut(&mut object).insert("resourceVersion".into(), Value::String(rv.to_string()));
    let object = Arc::new(object);
    let namespace = key.0.clone();
    state
        .objects
        .entry(rt.store_key())
        .or_default()
        .insert(key, object.clone());
    record(state, changes, rt, namespace, kind, object.clone());
    (*object).clone()
}

fn remove(
    state: &mut State,
    changes: &broadcast::Sender<Arc<Change>>,
    rt: &ResourceType,
    key: ObjectKey,
    mut last: Value,
) -> Value {
    state.rv += 1;
    let rv = state.rv;
    metadata_mut(&mut last).insert("resourceVersion".into(), Value::String(rv.to_string()));
    if let Some(m) = state.objects.get_mut(&rt.store_key()) {
        m.remove(&key);
    }
    let object = Arc::new(last);
    record(
        state,
        changes,
        rt,
        key.0,
        EventType::Deleted,
        object.clone(),
    );
    (*object).clone()
}

fn record(
    state: &mut State,
    changes: &broadcast::Sender<Arc<Change>>,
    rt: &ResourceType,
    namespace: String,
    kind: EventType,
    object: Arc<Value>,
) {
    let change = Arc::new(Change {
        rv: state.rv,
        store: rt.store_key(),
        namespace,
        kind,
        object,
        encoded: std::sync::OnceLock::new(),
        encoded_metadata: std::sync::OnceLock::new(),
    });
    state.history.push_back(change.clone());
    while state.history.len() > HISTORY_LIMIT {
        if let Some(old) = state.history.pop_front() {
            state.compacted_through = old.rv;
        }
    }
    // No receivers is fine.
    let _ = changes.send(change);
}

fn stored(state: &State, rt: &ResourceType, key: &ObjectKey) -> Option<Arc<Value>> {
    state
        .objects
        .get(&rt.store_key())
        .and_then(|m| m.get(key))
        .cloned()
}

fn not_found(rt: &ResourceType, name: &str) -> Error {
    Error::NotFound {
        resource: rt.qualified_name(),
        name: name.to_string(),
    }
}

/// `metadata.name`.
pub fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `metadata.resourceVersion`, when set and non-empty.
pub fn resource_version_of(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `metadata` as a mutable map, created when missing.
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.is_object() {
        *object = Value::Object(Map::new());
    }
    if let Value::Object(map) = object {
        let meta = map
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        if let Value::Object(m) = meta {
            return m;
        }
    }
    unreachable!("both values were just made objects")
}

/// Whether anything but metadata and status differs (generation bumps only then).
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(old) != strip(new)
}

/// Whether two versions are equal ignoring resourceVersion and managedFields timestamps.
fn same_object(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        let meta = metadata_mut(&mut v);
        meta.remove("resourceVersion");
        if let Some(Value::Array(entries)) = meta.get_mut("managedFields") {
            for e in entries.iter_mut() {
                if let Some(m) = e.as_object_mut() {
                    m.remove("time");
                }
            }
        }
        v
    };
    strip(old) == strip(new)
}

/// A random RFC 4122 version-4 UID.
pub fn new_uid() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        // Fall back to time-based uniqueness; uids only need to be unique.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = nanos.to_be_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
