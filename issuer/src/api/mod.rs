//! relaytls.dev/v1alpha1 API types (being written).
