//! The running sandbox: shared state behind the HTTP server, the listener, CRD registration,
//! admission hooks, and the handle tests use (a `kube::Client`, a kubeconfig, faults, the
//! request log).

use crate::Error;
use crate::faults::{Faults, RequestRecord, TimedRequest};
use crate::registry::{Registry, ResourceType};
use crate::store::{Snapshot, Store, WriteOptions, metadata_mut};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// A check run on every create and update of one kind (what a validating/mutating webhook does).
pub trait Admission: Send + Sync {
    /// Inspects (and may change) `new`; `old` is the stored object on updates.
    fn admit(
        &self,
        resource: &ResourceType,
        old: Option<&Value>,
        new: &mut Value,
    ) -> Result<(), Error>;
}

/// State shared by every request.
pub struct Inner {
    pub(crate) store: Store,
    registry: RwLock<Arc<Registry>>,
    pub(crate) faults: Faults,
    requests: Mutex<Vec<TimedRequest>>,
    snapshots: Mutex<HashMap<u64, Arc<Snapshot>>>,
    next_token: AtomicU64,
    admission: RwLock<Vec<Arc<dyn Admission>>>,
}

impl Inner {
    fn new() -> Self {
        Self {
            store: Store::new(),
            registry: RwLock::new(Arc::new(Registry::with_builtins())),
            faults: Faults::default(),
            requests: Mutex::new(Vec::new()),
            snapshots: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            admission: RwLock::new(Vec::new()),
        }
    }

    /// The registry as of now.
    pub(crate) fn registry_snapshot(&self) -> Arc<Registry> {
        self.registry
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn update_registry(&self, change: impl FnOnce(&mut Registry)) {
        let mut guard = self.registry.write().unwrap_or_else(|p| p.into_inner());
        let mut registry = (**guard).clone();
        change(&mut registry);
        *guard = Arc::new(registry);
    }

    pub(crate) fn record(&self, record: RequestRecord) {
        let received = tokio::time::Instant::now();
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(TimedRequest {
                received,
                request: record,
            });
        }
    }

    pub(crate) fn save_snapshot(&self, snapshot: Arc<Snapshot>, index: usize) -> String {
        let id = self.next_token.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut snapshots) = self.snapshots.lock() {
            if snapshots.len() > 1000 {
                snapshots.clear();
            }
            snapshots.insert(id, snapshot);
        }
        format!("{id}:{index}")
    }

    pub(crate) fn continue_snapshot(&self, token: &str) -> Result<(Arc<Snapshot>, usize), Error> {
        let expired = || {
            Error::Expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into())
        };
        let (id, index) = token
            .split_once(':')
            .ok_or_else(|| Error::BadRequest("continue key is not valid".into()))?;
        let id: u64 = id
            .parse()
            .map_err(|_| Error::BadRequest("continue key is not valid".into()))?;
        let index: usize = index
            .parse()
            .map_err(|_| Error::BadRequest("continue key is not valid".into()))?;
        let snapshot = self
            .snapshots
            .lock()
            .ok()
            .and_then(|s| s.get(&id).cloned())
            .ok_or_else(expired)?;
        Ok((snapshot, index))
    }

    /// Runs schema pruning/validation (custom resources) and the admission hooks.
    pub(crate) fn admit(
        &self,
        rt: &ResourceType,
        old: Option<&Value>,
        new: &mut Value,
    ) -> Result<(), Error> {
        // A CRD must define servable types (group, names, compilable schemas) before it is
        // stored, whichever way it arrives (HTTP or `create_crd`).
        if rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition" {
            crd_resource_types(new)?;
        }
        if let Some(schema) = &rt.schema {
            schema.prune(new);
            schema.apply_defaults(new);
            let causes = schema.validate(new);
            if !causes.is_empty() {
                return Err(Error::Invalid {
                    kind: rt.kind.clone(),
                    name: crate::store::name_of(new).to_string(),
                    causes,
                });
            }
        }
        let hooks = self.admission.read().map(|h| h.clone()).unwrap_or_default();
        for hook in hooks {
            hook.admit(rt, old, new)?;
        }
        Ok(())
    }

    /// Side effects of a stored write: CRDs register their resources.
    pub(crate) fn after_write(&self, rt: &ResourceType, object: &Value) {
        if rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition" {
            self.register_crd(rt, object);
        }
    }

    /// Side effects of a removal: CRDs unregister, namespaces take their contents with them.
    pub(crate) fn after_delete(&self, rt: &ResourceType, object: &Value) {
        if rt.group == "apiextensions.k8s.io" && rt.kind == "CustomResourceDefinition" {
            let group = object
                .pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let plural = object
                .pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or_default();
            self.update_registry(|r| r.remove(group, plural));
        }
        if rt.group.is_empty() && rt.kind == "Namespace" {
            let registry = self.registry_snapshot();
            self.store
                .delete_namespace_contents(crate::store::name_of(object), registry.all());
        }
    }

    fn register_crd(&self, crd_type: &ResourceType, crd: &Value) {
        let types = match crd_resource_types(crd) {
            Ok(types) => types,
            Err(e) => {
                tracing::warn!(error = %e, "CRD not registered");
                return;
            }
        };
        self.update_registry(|r| {
            for t in types {
                r.upsert(t);
            }
        });
        // Mark the CRD Established, as the apiextensions controller does.
        let name = crate::store::name_of(crd).to_string();
        if crd.pointer("/status/conditions").is_some() {
            return;
        }
        let now = now_rfc3339();
        let mut with_status = crd.clone();
        if let Some(map) = with_status.as_object_mut() {
            map.insert(
                "status".into(),
                json!({
                    "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or(json!({})),
                    "storedVersions": crd.pointer("/spec/versions").and_then(Value::as_array).map(|v| v.iter().filter(|v| v.get("storage") == Some(&json!(true))).filter_map(|v| v.get("name").cloned()).collect::<Vec<_>>()).unwrap_or_default(),
                    "conditions": [
                        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
                    ],
                }),
            );
        }
        if let Some(meta) = with_status
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
        {
            meta.remove("resourceVersion");
        }
        if let Err(e) = self.store.replace(
            crd_type,
            "",
            &name,
            with_status,
            true,
            &WriteOptions::default(),
        ) {
            tracing::warn!(error = %e, crd = %name, "could not mark the CRD Established");
        }
    }

    /// Server-side apply of `applied` by `manager`, returning the merged object with its new
    /// managedFields.
    pub(crate) fn server_side_apply(
        &self,
        rt: &ResourceType,
        old: Option<&Value>,
        applied: &Value,
        manager: &str,
        status_only: bool,
        force: bool,
    ) -> Result<Value, Error> {
        // kube-apiserver builds a typed object from the apply configuration with the CRD's
        // schema, and refuses (500, no reason) a field the schema does not declare, where other
        // writes would prune it.
        if let Some(schema) = rt.schema.as_ref().filter(|_| rt.custom) {
            let mut pruned = applied.clone();
            schema.prune(&mut pruned);
            if let Some(path) = first_pruned_path(applied, &pruned, String::new()) {
                return Err(Error::Storage(format!(
                    "failed to create typed patch object ({}/{}; {}, Kind={}): {path}: field not declared in schema",
                    applied
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    crate::store::name_of(applied),
                    rt.api_version(),
                    rt.kind
                )));
            }
        }
        let live_managed = old.map(managed_entries).unwrap_or_default();
        let subresource = if status_only { "status" } else { "" };
        let list_type = |path: &[&str]| rt.schema.as_ref().and_then(|s| s.list_type_at(path));
        let (mut merged, entries) = crate::apply::apply(
            old,
            &live_managed,
            applied,
            manager,
            subresource,
            force,
            &list_type,
        )?;
        metadata_mut(&mut merged).insert(
            "managedFields".into(),
            crate::apply::to_managed_fields_json(&entries, &rt.api_version(), &now_rfc3339()),
        );
        Ok(merged)
    }

    /// Records an ordinary write by `manager` in `new`'s managedFields.
    pub(crate) fn record_managed_fields(
        &self,
        rt: &ResourceType,
        old: Option<&Value>,
        new: &mut Value,
        manager: &str,
        status_only: bool,
    ) {
        let live_managed = old.map(managed_entries).unwrap_or_default();
        let subresource = if status_only { "status" } else { "" };
        let list_type = |path: &[&str]| rt.schema.as_ref().and_then(|s| s.list_type_at(path));
        let entries =
            crate::apply::record_update(old, new, &live_managed, manager, subresource, &list_type);
        let meta = metadata_mut(new);
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert(
                "managedFields".into(),
                crate::apply::to_managed_fields_json(&entries, &rt.api_version(), &now_rfc3339()),
            );
        }
    }
}

fn managed_entries(object: &Value) -> Vec<crate::apply::ManagedEntry> {
    object
        .pointer("/metadata/managedFields")
        .map(crate::apply::from_managed_fields_json)
        .unwrap_or_default()
}

/// The resource types a CRD defines (one per served version).
pub fn crd_resource_types(crd: &Value) -> Result<Vec<ResourceType>, Error> {
    let spec = crd
        .get("spec")
        .ok_or_else(|| Error::BadRequest("the CRD has no spec".into()))?;
    let text = |p: &str| {
        spec.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let group = text("/group");
    let kind = text("/names/kind");
    let plural = text("/names/plural");
    if group.is_empty() || kind.is_empty() || plural.is_empty() {
        return Err(Error::BadRequest(
            "the CRD needs spec.group, spec.names.kind and spec.names.plural".into(),
        ));
    }
    let singular = Some(text("/names/singular"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let list = |p: &str| {
        spec.pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let namespaced = text("/scope") != "Cluster";
    let mut types = Vec::new();
    for version in spec
        .get("versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if version.get("served") == Some(&json!(false)) {
            continue;
        }
        let schema = version
            .pointer("/schema/openAPIV3Schema")
            .map(|s| crate::schema::StructuralSchema::compile(s).map(Arc::new))
            .transpose()?;
        types.push(ResourceType {
            group: group.clone(),
            version: version
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("v1")
                .to_string(),
            kind: kind.clone(),
            plural: plural.clone(),
            singular: singular.clone(),
            namespaced,
            short_names: list("/names/shortNames"),
            categories: list("/names/categories"),
            status_subresource: version.pointer("/subresources/status").is_some(),
            extra_subresources: Vec::new(),
            extra_field_selectors: version
                .get("selectableFields")
                .and_then(Value::as_array)
                .map(|fields| {
                    fields
                        .iter()
                        .filter_map(|f| f.get("jsonPath").and_then(Value::as_str))
                        .map(|p| p.trim_start_matches('.').to_string())
                        .collect()
                })
                .unwrap_or_default(),
            custom: true,
            schema,
            shared_store: None,
            printer: crate::table::Printer::for_crd_version(version),
        });
    }
    Ok(types)
}

/// Now as RFC 3339 with whole seconds, UTC.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// The first field (as `.a.b`) of `original` that pruning removed (null values aside, which
/// pruning drops for another reason).
fn first_pruned_path(original: &Value, pruned: &Value, path: String) -> Option<String> {
    match (original, pruned) {
        (Value::Object(before), Value::Object(after)) => before.iter().find_map(|(key, value)| {
            let here = format!("{path}.{key}");
            match after.get(key) {
                None if !value.is_null() => Some(here),
                None => None,
                Some(kept) => first_pruned_path(value, kept, here),
            }
        }),
        (Value::Array(before), Value::Array(after)) => before
            .iter()
            .zip(after)
            .enumerate()
            .find_map(|(i, (b, a))| first_pruned_path(b, a, format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Every CustomResourceDefinition in the YAML (or JSON) files of `dir`, in file-name order.
pub fn read_crds(dir: &Path) -> Result<Vec<Value>, Error> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::BadRequest(format!("cannot read {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        })
        .collect();
    files.sort();
    let mut crds = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Error::BadRequest(format!("cannot read {}: {e}", file.display())))?;
        for doc in text
            .split("\n---")
            .filter(|d| d.contains("CustomResourceDefinition"))
        {
            crds.push(
                serde_saphyr::from_str(doc)
                    .map_err(|e| Error::BadRequest(format!("{}: {e}", file.display())))?,
            );
        }
    }
    Ok(crds)
}

/// A running sandbox API server. Dropping it stops the server.
pub struct Sandbox {
    inner: Arc<Inner>,
    addr: SocketAddr,
    kubeconfig: PathBuf,
    _dir: Option<tempfile_dir::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

mod tempfile_dir {
    //! A minimal self-removing temporary folder for the kubeconfig (no extra dependency).
    use std::path::{Path, PathBuf};

    /// Removed on drop.
    #[derive(Debug)]
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> std::io::Result<Self> {
            let dir =
                std::env::temp_dir().join(format!("relay-sandbox-{}", crate::store::new_uid()));
            std::fs::create_dir_all(&dir)?;
            Ok(Self(dir))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// How to start a sandbox.
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// Address to listen on; default `127.0.0.1:0` (an ephemeral port).
    pub listen: Option<SocketAddr>,
    /// Where to write the kubeconfig; default a temporary folder removed on drop.
    pub kubeconfig_out: Option<PathBuf>,
    /// Namespaces to create at start (besides `default` and `kube-system`).
    pub namespaces: Vec<String>,
}

impl Sandbox {
    /// Starts a sandbox on an ephemeral loopback port.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with(SandboxOptions::default()).await
    }

    /// Starts a sandbox with options.
    pub async fn start_with(options: SandboxOptions) -> Result<Self, Error> {
        let inner = Arc::new(Inner::new());
        for ns in ["default", "kube-system", "kube-public"]
            .iter()
            .map(|s| s.to_string())
            .chain(options.namespaces.iter().cloned())
        {
            inner.create_namespace(&ns)?;
        }
        let listen = options
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Error::Internal(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let (shutdown, mut stop) = tokio::sync::oneshot::channel::<()>();
        let served = inner.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        tokio::spawn(serve_connection(served.clone(), stream));
                    }
                }
            }
        });
        let (dir, kubeconfig) = match options.kubeconfig_out {
            Some(path) => (None, path),
            None => {
                let dir = tempfile_dir::TempDir::new().map_err(|e| {
                    Error::Internal(format!("cannot create a temporary folder: {e}"))
                })?;
                let path = dir.path().join("kubeconfig");
                (Some(dir), path)
            }
        };
        write_kubeconfig(&kubeconfig, addr)
            .map_err(|e| Error::Internal(format!("cannot write {}: {e}", kubeconfig.display())))?;
        Ok(Self {
            inner,
            addr,
            kubeconfig,
            _dir: dir,
            shutdown: Some(shutdown),
        })
    }

    /// The address the API server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The kubeconfig file pointing at this sandbox (for kubectl and the binaries).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kube-rs client for this sandbox.
    pub fn client(&self) -> Result<kube::Client, Error> {
        let uri: http::Uri = self
            .url()
            .parse()
            .map_err(|e: http::uri::InvalidUri| Error::Internal(e.to_string()))?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".into();
        kube::Client::try_from(config).map_err(|e| Error::Internal(e.to_string()))
    }

    /// A kube-rs client that reaches this sandbox through memory instead of TCP: each request
    /// gets its own HTTP/1 connection over a `tokio::io::duplex` pipe, served by the same
    /// handler as the listener. For tests under tokio's paused clock: the runtime advances a
    /// paused clock whenever no task can run, and with a socket in between it cannot tell "the
    /// answer is on its way through the kernel" from "idle", so timeouts would fire early. With
    /// a pipe, every step of a request wakes its task directly; the clock moves only when every
    /// task waits on a timer. Call it inside a tokio runtime (the client spawns its worker).
    pub fn in_memory_client(&self) -> kube::Client {
        let inner = self.inner.clone();
        let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
            let inner = inner.clone();
            async move {
                let (client_end, server_end) = tokio::io::duplex(PIPE_BUFFER);
                tokio::spawn(serve_connection(inner, server_end));
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(client_end)).await?;
                tokio::spawn(connection);
                sender.send_request(request).await
            }
        });
        kube::Client::new(service, "default")
    }

    /// Fault injection.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Forgets watch history: the next watch from an older resourceVersion gets 410.
    pub fn compact(&self) {
        self.inner.store.compact();
    }

    /// Every API request so far (a patch that created its object also appears as a `create`).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.timed_requests()
            .into_iter()
            .map(|timed| timed.request)
            .collect()
    }

    /// Every API request so far, with when the sandbox received it, in order of arrival.
    pub fn timed_requests(&self) -> Vec<TimedRequest> {
        self.inner
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// How many requests of the log `matches` accepts.
    pub fn count_requests(&self, matches: impl Fn(&RequestRecord) -> bool) -> usize {
        self.inner
            .requests
            .lock()
            .map(|r| r.iter().filter(|t| matches(&t.request)).count())
            .unwrap_or_default()
    }

    /// Waits until the request log holds at least `count` requests that `matches` accepts
    /// (polling every 10 ms of tokio's clock); returns how many it holds then. A barrier for
    /// tests: "the client has made its next request", e.g. re-opened a watch or started the
    /// next pass of a loop, so whatever it had to do before that is done.
    pub async fn wait_for_requests(
        &self,
        count: usize,
        within: std::time::Duration,
        matches: impl Fn(&RequestRecord) -> bool,
    ) -> Result<usize, Error> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let seen = self.count_requests(&matches);
            if seen >= count {
                return Ok(seen);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Internal(format!(
                    "the request log holds {seen} matching requests after {within:?}, expected at least {count}"
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Adds an admission hook (webhook rules).
    pub fn add_admission(&self, hook: Arc<dyn Admission>) {
        if let Ok(mut hooks) = self.inner.admission.write() {
            hooks.push(hook);
        }
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.store.current_rv()
    }

    /// Creates every CustomResourceDefinition in the YAML files of `dir` (as `kubectl create`
    /// would); returns their names.
    pub async fn load_crds(&self, dir: &Path) -> Result<Vec<String>, Error> {
        read_crds(dir)?
            .into_iter()
            .map(|crd| self.create_crd(crd))
            .collect()
    }

    /// Whether a CustomResourceDefinition with this name exists.
    pub fn has_crd(&self, name: &str) -> bool {
        let registry = self.inner.registry_snapshot();
        registry
            .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .is_some_and(|rt| self.inner.store.get(rt, "", name).is_ok())
    }

    /// Creates (or replaces) a CustomResourceDefinition from its JSON form; returns its name.
    pub fn create_crd(&self, mut crd: Value) -> Result<String, Error> {
        let registry = self.inner.registry_snapshot();
        let rt = registry
            .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .cloned()
            .ok_or_else(|| Error::Internal("no CRD type".into()))?;
        let name = crate::validation::check_identity(&rt, &mut crd, "", None)?;
        let existing = self.inner.store.get(&rt, "", &name).ok();
        self.inner.admit(&rt, existing.as_ref(), &mut crd)?;
        let written = match existing {
            Some(existing) => {
                if let Some(meta) = crd.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert(
                        "resourceVersion".into(),
                        existing
                            .pointer("/metadata/resourceVersion")
                            .cloned()
                            .unwrap_or(Value::Null),
                    );
                }
                self.inner
                    .store
                    .replace(&rt, "", &name, crd, false, &WriteOptions::default())?
            }
            None => {
                self.inner
                    .store
                    .create(&rt, "", crd, &WriteOptions::default(), &now_rfc3339())?
            }
        };
        self.inner.after_write(&rt, &written);
        Ok(name)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

impl Inner {
    fn create_namespace(&self, name: &str) -> Result<(), Error> {
        let registry = self.registry_snapshot();
        let rt = registry
            .find("", "v1", "namespaces")
            .cloned()
            .ok_or_else(|| Error::Internal("no namespaces type".into()))?;
        // Labelled with its name, as kube-apiserver labels every namespace.
        let object = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}});
        match self
            .store
            .create(&rt, "", object, &WriteOptions::default(), &now_rfc3339())
        {
            Ok(_) | Err(Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Bytes buffered each way in an in-memory connection (a watch that nobody reads waits here).
const PIPE_BUFFER: usize = 256 * 1024;

/// Serves one HTTP/1 connection (a TCP stream or an in-memory pipe) until it closes.
async fn serve_connection<IO>(inner: Arc<Inner>, io: IO)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let inner = inner.clone();
        async move { Ok::<_, std::convert::Infallible>(crate::server::handle(inner, request).await) }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

fn write_kubeconfig(path: &Path, addr: SocketAddr) -> std::io::Result<()> {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: relay-sandbox\n  cluster:\n    server: http://{addr}\ncontexts:\n- name: relay-sandbox\n  context:\n    cluster: relay-sandbox\n    user: relay-sandbox\n    namespace: default\ncurrent-context: relay-sandbox\nusers:\n- name: relay-sandbox\n  user:\n    token: sandbox\n"
    );
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)
}
