//! kube-sandbox: an in-process Kubernetes API server for the tests of kube-rs programs. It
//! speaks the real API's wire format closely enough that kube-rs clients, controllers and the
//! real kubectl work against it, and its fidelity is measured against a real kube-apiserver
//! ([`fidelity`]). It knows nothing of relay-tls.
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
//! - [`events`]: the `events.k8s.io` and core Event views of one Event.
//! - [`faults`]: fault injection and the request log.
//! - [`rbac`]: RBAC evaluation of rendered Roles and bindings against the request log.
//! - [`fidelity`]: the fidelity suites' target, the sandbox or a real kube-apiserver.
//! - [`raw_watch`]: a watch read off the wire, for tests of the watch format.
//! - [`go_module`]: files of a Go module release (upstream CRDs), through the Go module proxy.
//! - [`kubectl`]: the real kubectl pointed at a sandbox; what a test does when it is missing.
//! - [`Error`]: the crate's one error type, rendered as Kubernetes `Status` objects.
//!
//! What does not live here: cert-manager (the `cert-manager-sim` crate) and anything of
//! relay-tls (`relay-sandbox`).

#![forbid(unsafe_code)]

pub mod apply;
pub mod discovery;
mod error;
pub mod events;
pub mod faults;
pub mod fidelity;
pub mod go_module;
mod http;
pub mod jsonpath;
pub mod kubectl;
pub mod metadata;
pub mod protobuf;
pub mod raw_watch;
pub mod rbac;
pub mod registry;
mod sandbox;
pub mod schema;
pub mod selectors;
mod server;
pub mod store;
pub mod table;
pub mod validation;

pub use error::{ApplyConflict, Cause, Error};
pub(crate) use sandbox::Inner;
pub use sandbox::{Admission, Sandbox, SandboxOptions, crd_resource_types, now_rfc3339, read_crds};
