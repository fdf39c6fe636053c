//! Leader election on a coordination.k8s.io Lease (being written).
