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
    #[error("{kind} \"{name}\" is invalid: {}", causes_text(.causes))]
    Invalid {
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// What is wrong, field by field.
        causes: Vec<Cause>,
    },
    /// A request body or patch that cannot be applied (HTTP 400 BadRequest).
    #[error("{0}")]
    BadRequest(String),
    /// The object does not exist (HTTP 404 NotFound).
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// `plural` or `plural.group`.
        resource: String,
        /// The object's name.
        name: String,
    },
    /// The object already exists (HTTP 409 AlreadyExists).
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        /// `plural` or `plural.group`.
        resource: String,
        /// The object's name.
        name: String,
    },
    /// A stale resourceVersion or a failed precondition (HTTP 409 Conflict).
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {message}")]
    Conflict {
        /// `plural` or `plural.group`.
        resource: String,
        /// The object's name.
        name: String,
        /// Why.
        message: String,
    },
    /// The requested resourceVersion is too old (HTTP 410 Expired).
    #[error("{0}")]
    Expired(String),
    /// A content type the endpoint does not accept (HTTP 415).
    #[error("the body of the request was in an unknown format - accepted media types include: {0}")]
    UnsupportedMediaType(String),
    /// A response representation (`Accept`) the endpoint cannot produce (HTTP 406), e.g.
    /// `as=PartialObjectMetadata` on a list.
    #[error("{0}")]
    NotAcceptable(String),
    /// A verb the resource does not support (HTTP 405).
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// The body exceeds the size limit (HTTP 413).
    #[error("Request entity too large: limit is {0}")]
    TooLarge(usize),
    /// An injected fault: the server pretends to be overloaded (HTTP 429).
    #[error("Too many requests, please try again later.")]
    TooManyRequests,
    /// An injected fault or an internal failure (HTTP 500).
    #[error("Internal error occurred: {0}")]
    Internal(String),
    /// An error kube-apiserver's storage layer returns as is (HTTP 500, a Status without a
    /// reason), e.g. a create that carries a resourceVersion.
    #[error("{0}")]
    Storage(String),
}

impl Error {
    /// The HTTP status code and the `reason` of the Kubernetes Status for this error.
    pub fn code_and_reason(&self) -> (u16, &'static str) {
        match self {
            Error::BadSelector(_) | Error::FieldLabelNotSupported(_) | Error::BadRequest(_) => {
                (400, "BadRequest")
            }
            Error::ApplyConflict { .. } | Error::Conflict { .. } => (409, "Conflict"),
            Error::Invalid { .. } => (422, "Invalid"),
            Error::NotFound { .. } => (404, "NotFound"),
            Error::AlreadyExists { .. } => (409, "AlreadyExists"),
            Error::Expired(_) => (410, "Expired"),
            Error::UnsupportedMediaType(_) => (415, "UnsupportedMediaType"),
            Error::NotAcceptable(_) => (406, "NotAcceptable"),
            Error::MethodNotAllowed => (405, "MethodNotAllowed"),
            Error::TooLarge(_) => (413, "RequestEntityTooLarge"),
            Error::TooManyRequests => (429, "TooManyRequests"),
            Error::Internal(_) => (500, "InternalError"),
            Error::Storage(_) => (500, ""),
        }
    }

    /// The `Status` object a real API server returns for this error.
    pub fn to_status(&self) -> serde_json::Value {
        let (code, reason) = self.code_and_reason();
        let mut status = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": reason,
            "code": code,
        });
        let details = match self {
            Error::NotFound { resource, name }
            | Error::AlreadyExists { resource, name }
            | Error::Conflict { resource, name, .. } => {
                let (kind, group) = split_resource(resource);
                Some(serde_json::json!({"name": name, "group": group, "kind": kind}))
            }
            Error::Invalid { kind, name, causes } => Some(serde_json::json!({
                "name": name,
                "kind": kind,
                "causes": causes.iter().map(|c| serde_json::json!({"reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>(),
            })),
            Error::ApplyConflict { conflicts } => Some(serde_json::json!({
                "causes": conflicts.iter().map(|c| serde_json::json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\"", c.manager), "field": c.field})).collect::<Vec<_>>(),
            })),
            Error::TooManyRequests => Some(serde_json::json!({"retryAfterSeconds": 1})),
            _ => None,
        };
        if let (Some(details), Some(map)) = (details, status.as_object_mut()) {
            map.insert("details".into(), details);
        }
        if reason.is_empty()
            && let Some(map) = status.as_object_mut()
        {
            map.remove("reason");
        }
        status
    }
}

/// The causes of an Invalid error as kube-apiserver words them: one alone, several as
/// `[a, b]` (Go's error aggregate).
fn causes_text(causes: &[Cause]) -> String {
    let texts: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    match texts.as_slice() {
        [one] => one.clone(),
        _ => format!("[{}]", texts.join(", ")),
    }
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if u32::from(c) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn split_resource(resource: &str) -> (&str, &str) {
    resource.split_once('.').unwrap_or((resource, ""))
}

/// One server-side apply conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyConflict {
    /// The manager that owns the field.
    pub manager: String,
    /// The field, as a path such as `.spec.replicas` or `.status.conditions[type="Ready"].status`.
    pub field: String,
}
