//! relay-sandbox: relay-tls's test fixtures and process harness, on top of the Kubernetes API
//! emulator (`kube-sandbox`) and the cert-manager simulator (`cert-manager-sim`).
//!
//! - [`harness`]: the controller's test world (CRDs, CA Secrets, requests, replicas).
//! - [`relay`]: the relay server's test world (PKI, Secrets, RelayClusters, a TLS client).
//! - [`processes`]: this workspace's binaries as child processes for end-to-end tests.
//! - [`charts`]: the Helm charts rendered with the real helm.
//! - [`images`]: the container images of `make images` run with podman as the charts run them.
//! - [`floors`]: what the fleet benchmark's floors ask of a machine, from a run's measured
//!   costs (plain functions: a sum and a linear program).
//! - [`e2e`]: reads and waits of the process end-to-end suites (RelayCluster status, metrics
//!   and `/ready` over an admin port, the serial `openssl s_client` sees).
//! - [`plane`]: a real control plane (`make cluster`) or cluster, and this workspace's binaries
//!   run on it as the pods of their Deployments (`make e2e`, `make bench-real`).
//!
//! What does not live here: the API emulator and cert-manager's behaviour (their own crates),
//! the product (`relay-issuer`, `relay-agent`).

#![forbid(unsafe_code)]

pub mod charts;
pub mod e2e;
pub mod floors;
pub mod harness;
pub mod images;
pub mod plane;
pub mod processes;
pub mod relay;
