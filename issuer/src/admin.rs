//! The admin server: `/live`, `/ready`, `/metrics` (being written).
