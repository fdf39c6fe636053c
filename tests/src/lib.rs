//! relay-sandbox: an in-process Kubernetes API server and cert-manager simulator for tests.
//!
//! - [`Sandbox`]: start one on a loopback port; get a `kube::Client` and a kubeconfig.
//! - [`store`]: resourceVersions, write semantics, watch history.
//! - [`registry`]: the resource types served (built-ins and CRD-defined).
//! - [`schema`]: CRD structural-schema validation and pruning (pure).
//! - [`selectors`]: label and field selectors (pure).
//! - [`metadata`]: metadata-only responses (`PartialObjectMetadata`) and Accept negotiation.
//! - [`protobuf`]: Kubernetes' protobuf encoding for the built-in kinds kubectl's imperative
//!   commands write (`kubectl create secret|configmap|namespace|...`).
//! - [`table`]: server-side `Table` responses (`kubectl get` columns), per resource printers.
//! - [`jsonpath`]: the JSONPath dialect of CRD printer columns (pure).
//! - [`apply`]: server-side apply merging with managed fields (pure).
//! - [`validation`]: built-in types' rules (Secrets, Leases, Events, names).
//! - [`faults`]: fault injection and the request log.
//! - [`fidelity`]: the fidelity suites' target, the sandbox or a real kube-apiserver.
//! - [`cert_manager`]: cert-manager's `Certificate`/`CertificateRequest` types and their CRDs
//!   (they live in `relay_issuer::cert_manager`, which the issuer's controller uses too).
//! - [`e2e`]: reads and waits of the process end-to-end suites (RelayCluster status, metrics
//!   and `/ready` over an admin port, the serial `openssl s_client` sees).
//! - [`plane`]: a real control plane (`make cluster`) or cluster, and this workspace's binaries
//!   run on it as the pods of their Deployments (`make e2e`, `make bench-real`).
//! - [`harness`]: the controller's test world (CRDs, CA Secrets, requests, replicas).
//! - [`processes`]: this workspace's binaries as child processes for end-to-end tests, and the
//!   real kubectl pointed at a sandbox.
//! - [`raw_watch`]: a watch read off the wire, for tests of the watch format.
//! - [`rbac`]: RBAC evaluation over rendered manifests, against the request log.
//! - [`relay`]: the relay server's test world (PKI, Secrets, RelayClusters, a TLS client).
//! - [`simulator`]: cert-manager's webhook rules, approver and Certificate controller.
//! - [`tools`]: cert-manager's CRDs from the pinned release's Go module; what a test does when
//!   kubectl or helm is missing.
//! - [`Error`]: the crate's one error type, rendered as Kubernetes `Status` objects.

#![forbid(unsafe_code)]

pub mod apply;
pub mod charts;
pub mod discovery;
pub mod e2e;
mod error;
pub mod events;
pub mod faults;
pub mod fidelity;
pub mod harness;
mod http;
pub mod jsonpath;
pub mod metadata;
pub mod plane;
pub mod processes;
pub mod protobuf;
pub mod raw_watch;
pub mod rbac;
pub mod registry;
pub mod relay;
mod sandbox;
pub mod schema;
pub mod selectors;
mod server;
pub mod simulator;
pub mod store;
pub mod table;
pub mod tools;
pub mod validation;

pub use relay_issuer::cert_manager;

pub use error::{ApplyConflict, Cause, Error};
pub(crate) use sandbox::Inner;
pub use sandbox::{Admission, Sandbox, SandboxOptions, crd_resource_types, now_rfc3339};
