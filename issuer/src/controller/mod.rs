//! The cert-manager external issuer: the CertificateRequest controller and the issuer status
//! controllers, run only while this replica holds the leader Lease.
//!
//! - [`decide`]: every decision as a pure function (routing, steps, statuses, readiness).
//! - [`ca_cache`]: parsed signing CAs, cached per Secret resourceVersion.
//! - [`metrics`]: the controller's Prometheus metrics.
//! - [`signer`]: the signing seam: `check` (can the issuer sign now) and `sign` (CSR → chain),
//!   by the local CA or by the relay server.
//! - [`requests`], [`issuers`]: the reconcilers (I/O glue around `decide` and the signer).
//! - [`csr_rules`], [`csr`]: the signer for the Kubernetes CSR API (`relaytls.dev/agent`): its
//!   decisions, and the reconciler.
//! - [`relay_mode`], [`remote`]: remote signing (`spec.relay`): the decisions, and the glue that
//!   forwards CSRs to the relay server.
//! - [`run`] (here): the shared watches (issuers, cluster issuers, Secret metadata), the three
//!   controllers, and starting/stopping them as leadership comes and goes.
//!
//! What does not live here: leader election itself (`leader`), the admin server (`admin`),
//! command-line parsing (`cli`).

pub mod ca_cache;
pub mod csr;
pub mod csr_rules;
pub mod decide;
pub mod issuers;
pub mod metrics;
pub mod relay_mode;
pub mod remote;
pub mod requests;
pub mod signer;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::Error;
use crate::admin::Health;
use crate::api::{RelayClusterIssuer, RelayIssuer};
use crate::cert_manager::types::CertificateRequest;
use crate::leader::Leadership;
use ca_cache::{CaCache, CaResult};
use decide::{EventNote, IssuerRef, Outcome, Route, SecretData, SecretLocation, Step};
use issuers::IssuerObject;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use metrics::Metrics;

/// How the controller behaves (from the command line).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where `RelayClusterIssuer` Secrets are read.
    pub cluster_resource_namespace: String,
    /// How far notBefore is back-dated for clock skew.
    pub backdate: time::Duration,
    /// First retry delay of a Pending request; doubles per attempt.
    pub pending_backoff_base: StdDuration,
    /// Longest retry delay of a Pending request.
    pub pending_backoff_max: StdDuration,
    /// How many requests are reconciled at once.
    pub concurrency: u16,
    /// The events' reporting controller.
    pub reporter: String,
    /// The events' reporting instance (the Pod name).
    pub instance: String,
    /// The SPIFFE trust domain of agent identities (the CSR API signer checks it).
    pub trust_domain: String,
    /// Whether to sign Kubernetes CSRs of signer `relaytls.dev/agent`.
    pub csr_signer: bool,
    /// The Secret (in the cluster resource namespace) the CSR API signer signs with.
    pub csr_signing_secret: String,
}

impl Settings {
    /// Defaults with the given cluster resource namespace.
    pub fn new(cluster_resource_namespace: impl Into<String>) -> Self {
        Self {
            cluster_resource_namespace: cluster_resource_namespace.into(),
            backdate: time::Duration::ZERO,
            pending_backoff_base: StdDuration::from_secs(1),
            pending_backoff_max: StdDuration::from_secs(300),
            concurrency: 64,
            reporter: "relay-issuer".into(),
            instance: String::new(),
            trust_domain: "relay.local".into(),
            csr_signer: true,
            csr_signing_secret: "relay-tls-signing-secret".into(),
        }
    }
}

/// What the reconcilers share.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Settings.
    pub settings: Settings,
    /// Whether this replica may write.
    pub leadership: Leadership,
    /// Metrics.
    pub metrics: Metrics,
    /// Every `RelayIssuer`.
    pub issuers: Store<RelayIssuer>,
    /// Every `RelayClusterIssuer`.
    pub cluster_issuers: Store<RelayClusterIssuer>,
    /// Every Secret's metadata (its resourceVersion keys the CA cache).
    pub secrets: Store<PartialObjectMeta<Secret>>,
    ca_cache: CaCache,
    ca_load: tokio::sync::Mutex<()>,
    recorder: Recorder,
    requests_seen: Mutex<HashMap<String, RequestMemory>>,
    stopping: std::sync::atomic::AtomicBool,
    in_flight: std::sync::atomic::AtomicUsize,
}

/// What the controller keeps about one request (by uid) between reconciles, until it is seen
/// finished or deleted.
#[derive(Default)]
struct RequestMemory {
    /// Pending retries so far (drives the backoff).
    attempts: u32,
    /// A certificate signed for it, re-applied rather than re-signed until seen recorded.
    signed: Option<Outcome>,
    /// Whether a status write of that certificate succeeded (a later re-apply after watch lag
    /// is neither counted nor announced again).
    issued_recorded: bool,
    /// Whether its `WaitingForApproval` event was published.
    waiting_announced: bool,
}

/// A request reconcile in progress; while any exists the controllers are not torn down.
pub struct InFlight<'a>(&'a Context);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Context {
    /// The signing CA for `location`, from the cache when the Secret's resourceVersion is
    /// unchanged, else fetched, parsed and checked once.
    pub async fn signing_ca(&self, location: SecretLocation<'_>) -> CaResult {
        let key =
            ObjectRef::<PartialObjectMeta<Secret>>::new(location.name).within(location.namespace);
        let now = OffsetDateTime::now_utc();
        let Some(meta) = self.secrets.get(&key) else {
            self.ca_cache.remove(location.namespace, location.name);
            return decide::load_signing_ca(location, SecretData::NotFound, now).map(Arc::new);
        };
        let version = meta.resource_version().unwrap_or_default();
        if let Some(hit) = self
            .ca_cache
            .get(location.namespace, location.name, &version)
        {
            return hit;
        }
        // One load at a time, so a burst of requests against a changed Secret parses it once.
        let _guard = self.ca_load.lock().await;
        if let Some(hit) = self
            .ca_cache
            .get(location.namespace, location.name, &version)
        {
            return hit;
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), location.namespace);
        let secret = match api.get_opt(location.name).await {
            Ok(secret) => secret,
            Err(error) => {
                return Err(decide::NotReady {
                    reason: "SecretUnreadable",
                    message: format!(
                        "Secret {:?} in namespace {:?} could not be read ({error}); check that relay-issuer may get Secrets there",
                        location.name, location.namespace
                    ),
                });
            }
        };
        let Some(secret) = secret else {
            return decide::load_signing_ca(location, SecretData::NotFound, now).map(Arc::new);
        };
        let key = |k: &str| crate::k8s::secret_data(&secret, k);
        let result = decide::load_signing_ca(
            location,
            SecretData::Found {
                tls_crt: key("tls.crt"),
                tls_key: key("tls.key"),
                ca_crt: key("ca.crt"),
            },
            now,
        )
        .map(Arc::new);
        let loaded_version = secret.resource_version().unwrap_or_default();
        self.ca_cache.insert(
            location.namespace,
            location.name,
            &loaded_version,
            result.clone(),
        );
        result
    }

    /// Reads or updates what is kept about request `uid`.
    fn remember<T>(&self, uid: &str, f: impl FnOnce(&mut RequestMemory) -> T) -> T {
        let mut seen = self.requests_seen.lock().unwrap_or_else(|p| p.into_inner());
        f(seen.entry(uid.to_string()).or_default())
    }

    /// The delay before the next retry of a Pending request (and counts the attempt).
    pub fn next_backoff(&self, uid: &str) -> StdDuration {
        let attempt = self.remember(uid, |m| {
            let attempt = m.attempts;
            m.attempts = attempt.saturating_add(1);
            attempt
        });
        decide::pending_backoff(
            attempt,
            self.settings.pending_backoff_base,
            self.settings.pending_backoff_max,
        )
    }

    /// Forgets what was kept about a request (retry count, unrecorded certificate, waiting).
    pub fn forget(&self, uid: &str) {
        self.requests_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uid);
    }

    /// Registers a reconcile, or `None` once the controllers are stopping (then it must not
    /// start: nothing it signed could be recorded).
    pub fn enter(&self) -> Option<InFlight<'_>> {
        use std::sync::atomic::Ordering::SeqCst;
        self.in_flight.fetch_add(1, SeqCst);
        let guard = InFlight(self);
        (!self.stopping.load(SeqCst)).then_some(guard)
    }

    /// Records that a request is waiting for approval; true the first time (publish the event
    /// then, and only then).
    pub fn first_wait(&self, uid: &str) -> bool {
        self.remember(uid, |m| !std::mem::replace(&mut m.waiting_announced, true))
    }

    /// Forgets the retry count of a request.
    pub fn forget_attempts(&self, uid: &str) {
        self.remember(uid, |m| m.attempts = 0);
    }

    fn remember_signed(&self, uid: &str, outcome: Outcome) {
        self.remember(uid, |m| m.signed = Some(outcome));
    }

    fn signed_but_unrecorded(&self, uid: &str) -> Option<Outcome> {
        self.remember(uid, |m| m.signed.clone())
    }

    fn issued_recorded(&self, uid: &str) -> bool {
        self.remember(uid, |m| m.issued_recorded)
    }

    fn mark_issued_recorded(&self, uid: &str) {
        self.remember(uid, |m| m.issued_recorded = true);
    }

    fn publish_event(&self, request: &CertificateRequest, note: EventNote) {
        let recorder = self.recorder.clone();
        let reference = request.object_ref(&());
        let event = Event {
            type_: match note.type_ {
                decide::EventType::Normal => EventType::Normal,
                decide::EventType::Warning => EventType::Warning,
            },
            reason: note.reason.to_string(),
            note: Some(note.note),
            action: "Sign".to_string(),
            secondary: None,
        };
        tokio::spawn(async move {
            if let Err(error) = recorder.publish(&event, &reference).await {
                warn!(%error, reason = %event.reason, "could not publish an event");
            }
        });
    }
}

/// How long in-flight reconciles get to finish when the controllers stop.
const STOP_GRACE: StdDuration = StdDuration::from_secs(10);

/// Runs the controllers whenever this replica leads, until `shutdown` resolves.
///
/// When leadership is lost, or on shutdown, the controllers stop taking work and let in-flight
/// reconciles finish, so a certificate signed just before is still recorded rather than signed
/// again by the next leader (signing itself only starts with [`SIGN_MARGIN`] of leadership
/// left).
pub async fn run(
    client: Client,
    settings: Settings,
    leadership: Leadership,
    metrics: Metrics,
    health: Health,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    tokio::pin!(shutdown);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    loop {
        health.set_ready(true);
        tokio::select! {
            _ = leadership.leading() => {}
            _ = &mut shutdown => return Ok(()),
        }
        info!("leading: starting the controllers");
        metrics.leader.set(1);
        health.set_not_ready(
            "leading: waiting for the first sync of CertificateRequests, issuers and Secrets",
        );
        let term = lead(
            client.clone(),
            settings.clone(),
            leadership.clone(),
            metrics.clone(),
            health.clone(),
            stopping.clone(),
        );
        tokio::pin!(term);
        let result = tokio::select! {
            result = &mut term => result,
            _ = &mut shutdown => {
                let _ = stop.send(true);
                if tokio::time::timeout(STOP_GRACE, term).await.is_err() {
                    warn!("in-flight reconciles did not finish within {STOP_GRACE:?}");
                }
                metrics.leader.set(0);
                return Ok(());
            }
        };
        warn!("no longer the leader: controllers stopped, standing by");
        metrics.leader.set(0);
        result?;
    }
}

/// Signing starts only with at least this much leadership left, so the status write that
/// follows lands while this replica still leads.
pub const SIGN_MARGIN: StdDuration = StdDuration::from_millis(1500);

const SHARED_BUFFER: usize = 1024;

/// The watches and controllers of one leadership term.
async fn lead(
    client: Client,
    settings: Settings,
    leadership: Leadership,
    metrics: Metrics,
    health: Health,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<(), Error> {
    let watch_config = watcher::Config::default;
    // Each controller stops taking work (and finishes what it started) when this replica
    // loses the Lease or the process shuts down.
    let stop_trigger = {
        let leadership = leadership.clone();
        move || {
            let leadership = leadership.clone();
            let mut stopping = stopping.clone();
            async move {
                tokio::select! {
                    _ = leadership.lost() => {}
                    _ = stopping.wait_for(|stop| *stop) => {}
                }
            }
        }
    };

    let (issuers, issuers_writer) = reflector::store_shared::<RelayIssuer>(SHARED_BUFFER);
    let (cluster_issuers, cluster_writer) =
        reflector::store_shared::<RelayClusterIssuer>(SHARED_BUFFER);
    let (secrets, secrets_writer) =
        reflector::store_shared::<PartialObjectMeta<Secret>>(SHARED_BUFFER);
    let subscribe_error =
        || Error::InvalidArgument("a shared watch cannot be subscribed to".into());
    let issuers_for_requests = issuers_writer.subscribe().ok_or_else(subscribe_error)?;
    let issuers_for_status = issuers_writer.subscribe().ok_or_else(subscribe_error)?;
    let cluster_for_requests = cluster_writer.subscribe().ok_or_else(subscribe_error)?;
    let cluster_for_status = cluster_writer.subscribe().ok_or_else(subscribe_error)?;
    let secrets_for_requests = secrets_writer.subscribe().ok_or_else(subscribe_error)?;
    let secrets_for_issuers = secrets_writer.subscribe().ok_or_else(subscribe_error)?;
    let secrets_for_cluster = secrets_writer.subscribe().ok_or_else(subscribe_error)?;

    let ctx_metrics = metrics.clone();
    let issuer_watch = watcher(Api::<RelayIssuer>::all(client.clone()), watch_config())
        .default_backoff()
        .reflect_shared(issuers_writer)
        .for_each(forget_deleted(ctx_metrics.clone()));
    let cluster_watch = watcher(
        Api::<RelayClusterIssuer>::all(client.clone()),
        watch_config(),
    )
    .default_backoff()
    .reflect_shared(cluster_writer)
    .for_each(forget_deleted(ctx_metrics.clone()));
    let secret_watch = watcher(
        Api::<PartialObjectMeta<Secret>>::all(client.clone()),
        watch_config(),
    )
    .default_backoff()
    .reflect_shared(secrets_writer)
    .for_each(|_| async {});

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: settings.reporter.clone(),
            instance: (!settings.instance.is_empty()).then(|| settings.instance.clone()),
        },
    );
    let concurrency = settings.concurrency;
    let cluster_namespace = settings.cluster_resource_namespace.clone();
    let ctx = Arc::new(Context {
        client: client.clone(),
        settings,
        leadership,
        ca_cache: CaCache::counting_in(metrics.ca_loads.clone()),
        metrics,
        issuers: issuers.clone(),
        cluster_issuers: cluster_issuers.clone(),
        secrets: secrets.clone(),
        ca_load: tokio::sync::Mutex::new(()),
        recorder,
        requests_seen: Mutex::default(),
        stopping: std::sync::atomic::AtomicBool::new(false),
        in_flight: std::sync::atomic::AtomicUsize::new(0),
    });

    let request_controller = Controller::new(
        Api::<CertificateRequest>::all(client.clone()),
        watch_config(),
    )
    .with_config(controller::Config::default().concurrency(concurrency));
    let requests = request_controller.store();
    let waiting = {
        let requests = requests.clone();
        move |issuer: &IssuerRef| waiting_requests(&requests, issuer)
    };
    let users = SecretUsers {
        issuers: issuers.clone(),
        cluster_issuers: cluster_issuers.clone(),
        cluster_namespace: cluster_namespace.clone(),
    };
    let request_controller = {
        let (w1, w2, w3) = (waiting.clone(), waiting.clone(), waiting.clone());
        let users = users.clone();
        request_controller
            .watches_shared_stream(issuers_for_requests, move |i: Arc<RelayIssuer>| {
                w1(&i.issuer_ref())
            })
            .watches_shared_stream(cluster_for_requests, move |i: Arc<RelayClusterIssuer>| {
                w2(&i.issuer_ref())
            })
            .watches_shared_stream(
                secrets_for_requests,
                move |s: Arc<PartialObjectMeta<Secret>>| {
                    users
                        .issuers_using(&s)
                        .iter()
                        .flat_map(&w3)
                        .collect::<Vec<_>>()
                },
            )
            .graceful_shutdown_on(stop_trigger())
            .run(requests::reconcile, request_error_policy, ctx.clone())
            .for_each(|_| async {})
    };
    let issuer_controller = {
        let users = users.clone();
        Controller::for_shared_stream(issuers_for_status, issuers.clone())
            .watches_shared_stream(
                secrets_for_issuers,
                move |s: Arc<PartialObjectMeta<Secret>>| {
                    users
                        .issuers_using(&s)
                        .into_iter()
                        .filter_map(|issuer| match issuer {
                            IssuerRef::Namespaced { namespace, name } => {
                                Some(ObjectRef::<RelayIssuer>::new(&name).within(&namespace))
                            }
                            IssuerRef::Cluster { .. } => None,
                        })
                        .collect::<Vec<_>>()
                },
            )
            .run(
                issuers::reconcile::<RelayIssuer>,
                issuer_error_policy,
                ctx.clone(),
            )
            .for_each(|_| async {})
    };
    let cluster_controller = {
        let users = users.clone();
        Controller::for_shared_stream(cluster_for_status, cluster_issuers.clone())
            .watches_shared_stream(
                secrets_for_cluster,
                move |s: Arc<PartialObjectMeta<Secret>>| {
                    users
                        .issuers_using(&s)
                        .into_iter()
                        .filter_map(|issuer| match issuer {
                            IssuerRef::Cluster { name } => {
                                Some(ObjectRef::<RelayClusterIssuer>::new(&name))
                            }
                            IssuerRef::Namespaced { .. } => None,
                        })
                        .collect::<Vec<_>>()
                },
            )
            .graceful_shutdown_on(stop_trigger())
            .run(
                issuers::reconcile::<RelayClusterIssuer>,
                issuer_error_policy,
                ctx.clone(),
            )
            .for_each(|_| async {})
    };
    // The Kubernetes CSR API signer: only requests of our signer name are watched.
    let csr_controller = {
        let enabled = ctx.settings.csr_signer;
        let controller = Controller::new(
            Api::<CertificateSigningRequest>::all(client.clone()),
            watch_config().fields(&format!("spec.signerName={}", csr_rules::SIGNER_NAME)),
        )
        .graceful_shutdown_on(stop_trigger())
        .run(csr::reconcile, csr_error_policy, ctx.clone())
        .for_each(|_| async {});
        async move {
            if enabled {
                controller.await;
            } else {
                std::future::pending::<()>().await;
            }
        }
    };
    let synced = async {
        let _ = futures::join!(
            requests.wait_until_ready(),
            issuers.wait_until_ready(),
            cluster_issuers.wait_until_ready(),
            secrets.wait_until_ready(),
        );
        info!("caches synced; ready");
        health.set_ready(true);
    };
    let controllers = async {
        futures::join!(
            request_controller,
            issuer_controller,
            cluster_controller,
            csr_controller
        );
    };
    // Once stopping, no new reconcile starts; those in flight finish (and record what they
    // signed), then everything is dropped, including requeues scheduled for later.
    let stopped = async {
        stop_trigger().await;
        ctx.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        while ctx.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            tokio::time::sleep(StdDuration::from_millis(5)).await;
        }
    };
    let watches = async {
        futures::join!(issuer_watch, cluster_watch, secret_watch, synced);
    };
    // The controllers end on the stop trigger; the watches never end on their own.
    tokio::select! {
        _ = controllers => {}
        _ = watches => {}
        _ = stopped => {}
    }
    Ok(())
}

/// A watch-event consumer that removes a deleted issuer's metric series.
fn forget_deleted<K: IssuerObject>(
    metrics: Metrics,
) -> impl FnMut(Result<watcher::Event<K>, watcher::Error>) -> futures::future::Ready<()> {
    move |event| {
        if let Ok(watcher::Event::Delete(issuer)) = event {
            metrics.forget_issuer(&issuers::labels(&issuer.issuer_ref()));
        }
        futures::future::ready(())
    }
}

/// Which issuers read a Secret.
#[derive(Clone)]
struct SecretUsers {
    issuers: Store<RelayIssuer>,
    cluster_issuers: Store<RelayClusterIssuer>,
    cluster_namespace: String,
}

impl SecretUsers {
    fn issuers_using(&self, secret: &PartialObjectMeta<Secret>) -> Vec<IssuerRef> {
        let namespace = secret.namespace().unwrap_or_default();
        let name = secret.name_any();
        let mut users: Vec<IssuerRef> = self
            .issuers
            .state()
            .iter()
            .filter(|i| i.namespace().as_deref() == Some(namespace.as_str()))
            .filter(|i| i.spec.settings().uses_secret(&name))
            .map(|i| i.issuer_ref())
            .collect();
        if namespace == self.cluster_namespace {
            users.extend(
                self.cluster_issuers
                    .state()
                    .iter()
                    .filter(|i| i.spec.settings().uses_secret(&name))
                    .map(|i| i.issuer_ref()),
            );
        }
        users
    }
}

/// Requests for `issuer` that are not finished (they may be waiting on it).
fn waiting_requests(
    requests: &Store<CertificateRequest>,
    issuer: &IssuerRef,
) -> Vec<ObjectRef<CertificateRequest>> {
    requests
        .state()
        .iter()
        .filter(|r| {
            let namespace = r.namespace().unwrap_or_default();
            let issuer_ref = &r.spec.issuer_ref;
            decide::route(
                issuer_ref.group.as_deref(),
                issuer_ref.kind.as_deref(),
                &issuer_ref.name,
                &namespace,
            ) == Route::Issuer(issuer.clone())
                && decide::next_step(r.status.as_ref()) != Step::Finished
        })
        .map(|r| ObjectRef::from_obj(&**r))
        .collect()
}

fn csr_error_policy(
    csr: Arc<CertificateSigningRequest>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.count_reconcile_error(error);
    let wait = ctx.next_backoff(&csr.uid().unwrap_or_default());
    warn!(name = %csr.name_any(), %error, "CertificateSigningRequest reconcile failed; retrying in {wait:?}");
    Action::requeue(wait)
}

fn request_error_policy(
    request: Arc<CertificateRequest>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.count_reconcile_error(error);
    let wait = ctx.next_backoff(&request.uid().unwrap_or_default());
    warn!(
        namespace = %request.namespace().unwrap_or_default(),
        name = %request.name_any(),
        %error,
        retry_in = ?wait,
        "reconcile failed; will retry"
    );
    Action::requeue(wait)
}

fn issuer_error_policy<K: IssuerObject>(
    issuer: Arc<K>,
    error: &Error,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.count_reconcile_error(error);
    warn!(issuer = %issuer.issuer_ref(), %error, "issuer reconcile failed; will retry");
    Action::requeue(
        ctx.settings
            .pending_backoff_base
            .max(StdDuration::from_secs(1)),
    )
}
