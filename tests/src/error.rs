//! The crate's one error type. Each variant maps to the Kubernetes `Status` a real API server
//! would return for the same mistake.

/// A field-level problem, reported as a `Status` cause (`reason` is Kubernetes' cause type,
/// e.g. `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`, `FieldValueDuplicate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The cause type, as the API server spells it.
    pub reason: String,
    /// What is wrong.
    pub message: String,
    /// The JSON path of the field, e.g. `spec.duration`.
    pub field: String,
}

/// Everything that can go wrong in the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A label or field selector that does not parse (HTTP 400 BadRequest).
    #[error("unable to parse requirement: {0}")]
    BadSelector(String),
    /// A field selector naming a field the resource does not support (HTTP 400 BadRequest).
    #[error("field label not supported: {0}")]
    FieldLabelNotSupported(String),
    /// Server-side apply conflicts with fields owned by other managers (HTTP 409 Conflict).
    #[error("Apply failed with {} conflict{}: {}", .conflicts.len(), if .conflicts.len() == 1 { "" } else { "s" }, .conflicts.iter().map(|c| format!("conflict with \"{}\": {}", c.manager, c.field)).collect::<Vec<_>>().join("; "))]
    ApplyConflict {
        /// Each conflicting field and the manager that owns it.
        conflicts: Vec<ApplyConflict>,
    },
    /// An object that fails validation (HTTP 422 Invalid).
    #[error("{kind} \"{name}\" is invalid: {}", .causes.iter().map(|c| format!("{}: {}", c.field, c.message)).collect::<Vec<_>>().join(", "))]
    Invalid {
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// What is wrong, field by field.
        causes: Vec<Cause>,
    },
    /// A request body or patch that cannot be applied (HTTP 400 BadRequest / 422).
    #[error("{0}")]
    BadRequest(String),
}

/// One server-side apply conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyConflict {
    /// The manager that owns the field.
    pub manager: String,
    /// The field, as a path such as `.spec.replicas` or `.status.conditions[type="Ready"].status`.
    pub field: String,
}
