//! Building the Kubernetes client with client-side QPS/burst limits (being written).
