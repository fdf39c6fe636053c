//! Server-side `Table` responses, what `kubectl get` prints, as kube-apiserver renders them.
//!
//! A client that sends `Accept: application/json;as=Table;g=meta.k8s.io;v=v1` (or `v=v1beta1`,
//! answered in that version) gets `{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":
//! {resourceVersion, continue, remainingItemCount},"columnDefinitions":[...],"rows":[{"cells":
//! [...],"object":...}]}` for a GET, a LIST, a write's answer, and each watch event (columns in
//! the first event only). `metadata::Representation::negotiate` chooses it; `server` calls
//! [`render`]. The `includeObject` query parameter chooses each row's `object`: `Metadata`
//! (default: a `PartialObjectMetadata` in the Table's version), `Object` (the whole object) or
//! `None` (`null`); anything else is a 400.
//!
//! Which columns each resource gets ([`Printer`]):
//! - custom resources: `Name`, then the served version's `additionalPrinterColumns` (name, type,
//!   format, description, priority), or `Age` when it declares none, as the apiextensions
//!   apiserver's table convertor does: each column's JSONPath ([`crate::jsonpath`]) is
//!   evaluated and only its first result is used (a path that selects a list shows the list
//!   itself in a `string` column, as JSON, and nothing in other columns); no result or an
//!   evaluation error is a `null` cell (kubectl prints an empty cell); `string` cells are the
//!   value printed as client-go's JSONPath prints it (numbers and booleans as text, objects and
//!   arrays as JSON, a JSON `null` as `<no value>`); `integer`, `number` and `boolean` cells keep
//!   their JSON type (null when the value has another type; floats truncate to integers);
//!   `date` cells are rendered by the server as a human-readable age (`5m12s`, `3d4h`;
//!   `<invalid>` for a time more than a second in the future, `<unknown>` for an empty one,
//!   `<invalid>` for one that does not parse), as `kubectl get` shows them.
//! - built-in resources with kube-apiserver's real printers (`pkg/printers/internalversion`):
//!   Namespace (`Name`, `Status`, `Age`), Secret (`Name`, `Type`, `Data`, `Age`), ConfigMap
//!   (`Name`, `Data`, `Age`), ServiceAccount (`Name`, `Secrets`, `Age`), Lease (`Name`,
//!   `Holder`, `Age`) and Event, core/v1 and events.k8s.io/v1 alike (`Last Seen`, `Type`,
//!   `Reason`, `Object`, `Message`, and with priority 1 `Subobject`, `Source`, `First Seen`,
//!   `Count`, `Name`). Ages are rendered server-side.
//! - CustomResourceDefinitions, like every other resource without a printer in kube-apiserver:
//!   the generic default table, `Name` and `Created At` (a `date` column carrying the RFC 3339
//!   creation time).

use crate::Error;
use crate::jsonpath::JsonPath;
use crate::metadata::{MetaVersion, partial_object};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// ObjectMeta's description of `name`, as kube-apiserver's columns carry it.
const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
/// ObjectMeta's description of `creationTimestamp`.
const CREATED_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// What each row's `object` holds (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// `None`: `null`.
    None,
    /// `Metadata` (the default): the object's `PartialObjectMetadata`.
    #[default]
    Metadata,
    /// `Object`: the whole object.
    Object,
}

impl IncludeObject {
    /// The `includeObject` query parameter; absent or empty is `Metadata`, an unknown value a
    /// 400 with kube-apiserver's message.
    pub fn from_query(value: Option<&str>) -> Result<Self, Error> {
        match value.unwrap_or_default() {
            "" | "Metadata" => Ok(Self::Metadata),
            "None" => Ok(Self::None),
            "Object" => Ok(Self::Object),
            other => Err(Error::BadRequest(format!(
                "Unable to convert to Table as requested: includeObject: Invalid value: {other:?}: must be 'Metadata', 'Object', 'None', or empty"
            ))),
        }
    }
}

/// One `columnDefinitions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Shown upper-cased by kubectl.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// E.g. `name` for the Name column.
    pub format: String,
    /// What the column shows.
    pub description: String,
    /// 0 for default output, more for `-o wide` only.
    pub priority: i64,
}

impl Column {
    fn new(name: &str, type_: &str, description: &str) -> Self {
        Self {
            name: name.into(),
            type_: type_.into(),
            format: String::new(),
            description: description.into(),
            priority: 0,
        }
    }

    fn name_column() -> Self {
        Self {
            format: "name".into(),
            ..Self::new("Name", "string", NAME_DESCRIPTION)
        }
    }

    fn age_column() -> Self {
        Self::new("Age", "string", CREATED_DESCRIPTION)
    }

    fn wide(self) -> Self {
        Self {
            priority: 1,
            ..self
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// A custom resource's printer column: its definition and its parsed JSONPath.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomColumn {
    /// The column definition served.
    pub column: Column,
    /// What the cells show.
    pub path: JsonPath,
}

/// How a resource's objects become table rows.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Printer {
    /// A custom resource: `Name` and these columns.
    Custom(Arc<Vec<CustomColumn>>),
    /// Namespaces: Name, Status, Age.
    Namespace,
    /// Secrets: Name, Type, Data, Age.
    Secret,
    /// ConfigMaps: Name, Data, Age.
    ConfigMap,
    /// ServiceAccounts: Name, Secrets, Age.
    ServiceAccount,
    /// Leases: Name, Holder, Age.
    Lease,
    /// CertificateSigningRequests: Name, Age, SignerName, Requestor, RequestedDuration,
    /// Condition.
    CertificateSigningRequest,
    /// RoleBindings and ClusterRoleBindings: Name, Role, Age; wide: Users, Groups,
    /// ServiceAccounts.
    RoleBinding,
    /// Events (either view): Last Seen, Type, Reason, Object, Subobject, Source, Message,
    /// First Seen, Count, Name.
    Event,
    /// Everything else: Name, Created At.
    #[default]
    Default,
}

impl Printer {
    /// The printer of one served version of a CRD (`spec.versions[i]`): its
    /// `additionalPrinterColumns`, or `Age` when there are none. A column whose JSONPath does
    /// not parse ends the list there (kube-apiserver logs it and keeps the columns before it).
    pub fn for_crd_version(version: &Value) -> Self {
        let declared: &[Value] = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let age = [
            json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": CREATED_DESCRIPTION}),
        ];
        let declared = if declared.is_empty() {
            &age[..]
        } else {
            declared
        };
        let mut columns = Vec::new();
        for definition in declared {
            let text = |key: &str| {
                definition
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let json_path = text("jsonPath");
            let Ok(path) = JsonPath::parse(&json_path) else {
                tracing::warn!(column = %text("name"), json_path = %json_path, "unparsable printer column; later columns dropped");
                break;
            };
            let description = Some(text("description"))
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| {
                    format!("Custom resource definition column (in JSONPath format): {json_path}")
                });
            columns.push(CustomColumn {
                column: Column {
                    name: text("name"),
                    type_: text("type"),
                    format: text("format"),
                    description,
                    priority: definition
                        .get("priority")
                        .and_then(Value::as_i64)
                        .unwrap_or(0),
                },
                path,
            });
        }
        Printer::Custom(Arc::new(columns))
    }

    /// The column definitions.
    pub fn columns(&self) -> Vec<Column> {
        match self {
            Printer::Custom(custom) => std::iter::once(Column::name_column())
                .chain(custom.iter().map(|c| c.column.clone()))
                .collect(),
            Printer::Namespace => vec![
                Column::name_column(),
                Column::new("Status", "string", "The status of the namespace"),
                Column::age_column(),
            ],
            Printer::Secret => vec![
                Column::name_column(),
                Column::new(
                    "Type",
                    "string",
                    "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
                ),
                Column::new(
                    "Data",
                    "string",
                    "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4",
                ),
                Column::age_column(),
            ],
            Printer::ConfigMap => vec![
                Column::name_column(),
                Column::new(
                    "Data",
                    "string",
                    "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.",
                ),
                Column::age_column(),
            ],
            Printer::ServiceAccount => vec![
                Column::name_column(),
                Column::new(
                    "Secrets",
                    "string",
                    "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
                ),
                Column::age_column(),
            ],
            Printer::CertificateSigningRequest => vec![
                Column::name_column(),
                Column::age_column(),
                Column::new("SignerName", "string", "Only signers with this name sign the request."),
                Column::new("Requestor", "string", "Request submitter."),
                Column::new(
                    "RequestedDuration",
                    "string",
                    "Duration of the certificate the requester asked for.",
                ),
                Column::new("Condition", "string", "State of the request."),
            ],
            Printer::Lease => vec![
                Column::name_column(),
                Column::new(
                    "Holder",
                    "string",
                    "holderIdentity contains the identity of the holder of a current lease.",
                ),
                Column::age_column(),
            ],
            Printer::Event => vec![
                Column::new(
                    "Last Seen",
                    "string",
                    "The time at which the most recent occurrence of this event was recorded.",
                ),
                Column::new(
                    "Type",
                    "string",
                    "Type of this event (Normal, Warning), new types could be added in the future",
                ),
                Column::new(
                    "Reason",
                    "string",
                    "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
                ),
                Column::new("Object", "string", "The object that this event is about."),
                Column::new(
                    "Subobject",
                    "string",
                    "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].",
                )
                .wide(),
                Column::new(
                    "Source",
                    "string",
                    "The component reporting this event. Should be a short machine understandable string.",
                )
                .wide(),
                Column::new(
                    "Message",
                    "string",
                    "A human-readable description of the status of this operation.",
                ),
                Column::new(
                    "First Seen",
                    "string",
                    "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
                )
                .wide(),
                Column::new("Count", "string", "The number of times this event has occurred.")
                    .wide(),
                Column::name_column().wide(),
            ],
            Printer::RoleBinding => vec![
                Column::name_column(),
                Column::new(
                    "Role",
                    "string",
                    "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.",
                ),
                Column::age_column(),
                Column::new("Users", "string", "Users in the roleBinding").wide(),
                Column::new("Groups", "string", "Groups in the roleBinding").wide(),
                Column::new(
                    "ServiceAccounts",
                    "string",
                    "ServiceAccounts in the roleBinding",
                )
                .wide(),
            ],
            Printer::Default => vec![
                Column::name_column(),
                Column::new("Created At", "date", CREATED_DESCRIPTION),
            ],
        }
    }

    /// One object's cells, ages counted up to `now`.
    pub fn cells(&self, object: &Value, now: OffsetDateTime) -> Vec<Value> {
        let name = json!(text(object, "/metadata/name"));
        let age = || json!(age_of(object.pointer("/metadata/creationTimestamp"), now));
        let count = |pointer: &str| {
            json!(
                object
                    .pointer(pointer)
                    .map(|v| match v {
                        Value::Object(m) => m.len(),
                        Value::Array(a) => a.len(),
                        _ => 0,
                    })
                    .unwrap_or(0)
            )
        };
        match self {
            Printer::Custom(custom) => {
                std::iter::once(name)
                    .chain(custom.iter().map(|c| {
                        custom_cell(&c.column.type_, c.path.first(object).as_deref(), now)
                    }))
                    .collect()
            }
            Printer::Namespace => vec![name, json!(text(object, "/status/phase")), age()],
            Printer::Secret => vec![name, json!(text(object, "/type")), count("/data"), age()],
            Printer::ConfigMap => {
                let data = count("/data").as_u64().unwrap_or(0);
                let binary = count("/binaryData").as_u64().unwrap_or(0);
                vec![name, json!(data + binary), age()]
            }
            Printer::ServiceAccount => vec![name, count("/secrets"), age()],
            Printer::Lease => vec![name, json!(text(object, "/spec/holderIdentity")), age()],
            Printer::CertificateSigningRequest => {
                let requested = object
                    .pointer("/spec/expirationSeconds")
                    .and_then(Value::as_i64)
                    .map_or_else(
                        || "<none>".to_string(),
                        |s| human_duration(time::Duration::seconds(s)),
                    );
                vec![
                    name,
                    age(),
                    json!(text(object, "/spec/signerName")),
                    json!(text(object, "/spec/username")),
                    json!(requested),
                    json!(csr_condition(object)),
                ]
            }
            Printer::RoleBinding => {
                let role = format!(
                    "{}/{}",
                    text(object, "/roleRef/kind"),
                    text(object, "/roleRef/name")
                );
                let subjects: &[Value] = object
                    .get("subjects")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let of_kind = |kind: &str| {
                    let names: Vec<String> = subjects
                        .iter()
                        .filter(|s| text(s, "/kind") == kind)
                        .map(|s| match kind {
                            "ServiceAccount" => {
                                format!("{}/{}", text(s, "/namespace"), text(s, "/name"))
                            }
                            _ => text(s, "/name").to_string(),
                        })
                        .collect();
                    json!(names.join(", "))
                };
                vec![
                    name,
                    json!(role),
                    age(),
                    of_kind("User"),
                    of_kind("Group"),
                    of_kind("ServiceAccount"),
                ]
            }
            Printer::Event => event_cells(object, now),
            Printer::Default => vec![name, json!(created_at(object))],
        }
    }
}

/// A string at `pointer`, empty when absent.
fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// kube-apiserver's Event printer, on the core/v1 form (events.k8s.io/v1 objects are converted).
fn event_cells(object: &Value, now: OffsetDateTime) -> Vec<Value> {
    let core;
    let event = if object.get("apiVersion").and_then(Value::as_str) == Some("events.k8s.io/v1") {
        core = crate::events::to_core(object);
        &core
    } else {
        object
    };
    let present = |pointer: &str| {
        event
            .pointer(pointer)
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    };
    let first = match present("/firstTimestamp") {
        Some(t) => age_of(Some(t), now),
        None => age_of(event.get("eventTime"), now),
    };
    let mut last = match present("/lastTimestamp") {
        Some(t) => age_of(Some(t), now),
        None => first.clone(),
    };
    let mut count = event.get("count").and_then(Value::as_i64).unwrap_or(0);
    if let Some(series) = event.get("series").filter(|s| s.is_object()) {
        last = age_of(series.get("lastObservedTime"), now);
        count = series.get("count").and_then(Value::as_i64).unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let kind = text(event, "/involvedObject/kind").to_lowercase();
    let involved = text(event, "/involvedObject/name");
    let target = if involved.is_empty() {
        kind
    } else {
        format!("{kind}/{involved}")
    };
    let first_non_empty = |a: &str, b: &str| {
        let a = text(event, a);
        if a.is_empty() {
            text(event, b).to_string()
        } else {
            a.to_string()
        }
    };
    let component = first_non_empty("/source/component", "/reportingComponent");
    let instance = first_non_empty("/source/host", "/reportingInstance");
    let source = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(text(event, "/type")),
        json!(text(event, "/reason")),
        json!(target),
        json!(text(event, "/involvedObject/fieldPath")),
        json!(source),
        json!(text(event, "/message").trim()),
        json!(first),
        json!(count),
        json!(text(event, "/metadata/name")),
    ]
}

/// The default table's `Created At`: the creation time in RFC 3339, UTC, whole seconds (Go's
/// zero time when absent).
fn created_at(object: &Value) -> String {
    object
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(parse_time)
        .map(|t| format_rfc3339(t.to_offset(time::UtcOffset::UTC)))
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string())
}

fn format_rfc3339(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// An RFC 3339 time (fractional seconds allowed), as `metav1.Time` parses it.
fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// Whether a time is Go's zero time (`0001-01-01T00:00:00Z`), which prints as `<unknown>`.
fn is_zero_time(t: OffsetDateTime) -> bool {
    t.unix_timestamp() == -62_135_596_800 && t.nanosecond() == 0
}

/// A built-in printer's age: `<unknown>` for a missing or zero time, else the human duration
/// since it.
fn age_of(time: Option<&Value>, now: OffsetDateTime) -> String {
    match time.and_then(Value::as_str).and_then(parse_time) {
        Some(t) if !is_zero_time(t) => human_duration(now - t),
        _ => "<unknown>".to_string(),
    }
}

/// kube-apiserver's CSR state column: Denied, Approved or Pending, then `,Failed` and
/// `,Issued` (the order of its printer).
fn csr_condition(object: &Value) -> String {
    let types: Vec<&str> = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|c| c.get("type").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let mut state = if types.contains(&"Denied") {
        "Denied"
    } else if types.contains(&"Approved") {
        "Approved"
    } else {
        "Pending"
    }
    .to_string();
    if types.contains(&"Failed") {
        state.push_str(",Failed");
    }
    if object
        .pointer("/status/certificate")
        .and_then(Value::as_str)
        .is_some_and(|c| !c.is_empty())
    {
        state.push_str(",Issued");
    }
    state
}

/// apimachinery's `duration.HumanDuration`: about two significant figures, `<invalid>` more
/// than a second in the future.
pub fn human_duration(d: time::Duration) -> String {
    let seconds = d.whole_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d.whole_minutes();
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d.whole_hours();
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// A custom resource column's cell for the first value its JSONPath found (`None`: nothing
/// found, or the evaluation failed), as the apiextensions apiserver's table convertor makes it.
pub fn custom_cell(column_type: &str, value: Option<&Value>, now: OffsetDateTime) -> Value {
    let Some(value) = value else {
        return Value::Null;
    };
    match column_type {
        "string" => Value::String(go_text(value)),
        "integer" => match value {
            Value::Number(n) if n.is_i64() => value.clone(),
            // Go converts float64 to int64 by truncation (the saturating cast matches for the
            // values a column can sensibly hold).
            Value::Number(n) => n.as_f64().map(|f| json!(f as i64)).unwrap_or(Value::Null),
            _ => Value::Null,
        },
        "number" => match value {
            Value::Number(n) => n.as_f64().map(float_cell).unwrap_or(Value::Null),
            _ => Value::Null,
        },
        "boolean" => match value {
            Value::Bool(_) => value.clone(),
            _ => Value::Null,
        },
        "date" => match value {
            Value::String(s) if s.is_empty() => json!("<unknown>"),
            Value::String(s) => match parse_time(s) {
                Some(t) if is_zero_time(t) => json!("<unknown>"),
                Some(t) => json!(human_duration(now - t)),
                None => json!("<invalid>"),
            },
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

/// A float64 cell as Go's encoding/json writes it: integral values without a fraction.
fn float_cell(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        json!(f as i64)
    } else {
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// A value as client-go's JSONPath prints one result: strings as they are, numbers and
/// booleans as Go's `fmt.Print` writes them, objects and arrays as Go's `json.Marshal` writes
/// them, and a JSON `null` as `<no value>`.
pub fn go_text(value: &Value) -> String {
    match value {
        Value::Null => "<no value>".into(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => go_float_print(f),
            _ => n.to_string(),
        },
        Value::Array(_) | Value::Object(_) => go_json(value),
    }
}

/// The shortest decimal digits of a finite, positive float and its decimal exponent
/// (`d.ddd × 10^exp`).
fn shortest_digits(f: f64) -> (String, i32) {
    let formatted = format!("{f:e}");
    let (mantissa, exp) = formatted.split_once('e').unwrap_or((&formatted, "0"));
    (mantissa.replace('.', ""), exp.parse().unwrap_or(0))
}

/// `d.ddde±XX` (at least two exponent digits), Go's `%e` with the shortest precision.
fn go_exponent_form(negative: bool, digits: &str, exp: i32) -> String {
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    out.push_str(&format!("{:02}", exp.abs()));
    out
}

/// Plain decimal notation of `digits × 10^(exp - len + 1)`.
fn go_plain_form(negative: bool, digits: &str, exp: i32) -> String {
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if exp < 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-exp - 1) as usize));
        out.push_str(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(digits);
            out.push_str(&"0".repeat(int_len - digits.len()));
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// A float64 as Go's `fmt.Print` writes it (`%v`: the shortest `%g`, in exponent form below
/// 1e-4 and from 1e6 up, e.g. `1e+06`, `1.234567e+06`).
pub fn go_float_print(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (digits, exp) = shortest_digits(f.abs());
    if !(-4..6).contains(&exp) {
        go_exponent_form(f < 0.0, &digits, exp)
    } else {
        go_plain_form(f < 0.0, &digits, exp)
    }
}

/// A float64 as Go's encoding/json writes it: plain notation from 1e-6 up to 1e21, exponent
/// form (`1e+21`, `1e-7`) outside.
fn go_json_float(f: f64) -> String {
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let abs = f.abs();
    let (digits, exp) = shortest_digits(abs);
    if !(1e-6..1e21).contains(&abs) {
        let mut text = go_exponent_form(f < 0.0, &digits, exp);
        // Go cleans `e-07` up to `e-7`.
        if let Some(i) = text.find("e-0") {
            text.remove(i + 2);
        }
        text
    } else {
        go_plain_form(f < 0.0, &digits, exp)
    }
}

/// JSON as Go's `json.Marshal` writes a decoded value: map keys sorted, no spaces, `<`, `>`,
/// `&`, U+2028 and U+2029 escaped.
pub fn go_json(value: &Value) -> String {
    let mut out = String::new();
    write_go_json(value, &mut out);
    out
}

fn write_go_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => out.push_str(&i.to_string()),
            (None, Some(f)) => out.push_str(&go_json_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => write_go_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(key, out);
                out.push(':');
                write_go_json(&map[key], out);
            }
            out.push('}');
        }
    }
}

fn write_go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// What a Table rendering needs besides the objects.
#[derive(Debug, Clone, Copy)]
pub struct TableOptions {
    /// The `meta.k8s.io` version asked for.
    pub version: MetaVersion,
    /// What each row's `object` holds.
    pub include: IncludeObject,
    /// Whether `columnDefinitions` are sent (`null` otherwise: watch events after the first).
    pub headers: bool,
}

/// A single object (`list == false`) or a list (`{metadata, items}`) as a `Table`, ages counted
/// up to `now`.
pub fn render(
    printer: &Printer,
    body: &Value,
    list: bool,
    options: TableOptions,
    now: OffsetDateTime,
) -> Value {
    let mut metadata = Map::new();
    if list {
        for key in ["resourceVersion", "continue", "remainingItemCount"] {
            if let Some(v) = body
                .pointer(&format!("/metadata/{key}"))
                .filter(|v| !v.is_null() && v.as_str() != Some(""))
            {
                metadata.insert(key.into(), v.clone());
            }
        }
    } else if let Some(rv) = body
        .pointer("/metadata/resourceVersion")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    {
        metadata.insert("resourceVersion".into(), rv.clone());
    }
    let objects: Vec<&Value> = if list {
        body.get("items")
            .and_then(Value::as_array)
            .map(|items| items.iter().collect())
            .unwrap_or_default()
    } else {
        vec![body]
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let shown = match options.include {
                IncludeObject::None => Value::Null,
                IncludeObject::Metadata => partial_object(object, options.version),
                IncludeObject::Object => (*object).clone(),
            };
            json!({"cells": printer.cells(object, now), "object": shown})
        })
        .collect();
    // kube-apiserver's default table convertor leaves an empty list's rows nil (`null`); the
    // printers and the custom resource convertor make an empty array.
    let rows = if rows.is_empty() && *printer == Printer::Default {
        Value::Null
    } else {
        Value::Array(rows)
    };
    let columns = if options.headers {
        Value::Array(printer.columns().iter().map(Column::to_json).collect())
    } else {
        Value::Null
    };
    json!({
        "kind": "Table",
        "apiVersion": options.version.api_version(),
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);

    fn ago(seconds: i64) -> String {
        format_rfc3339(NOW - time::Duration::seconds(seconds))
    }

    #[test]
    fn human_durations_match_apimachinery() {
        let d = time::Duration::seconds;
        for (seconds, expected) in [
            (-5, "<invalid>"),
            (-2, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60 * 7, "3h7m"),
            (8 * 3600, "8h"),
            (47 * 3600 + 59 * 60, "47h"),
            (48 * 3600, "2d"),
            (50 * 3600, "2d2h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (731 * 86400, "2y1d"),
            (8 * 365 * 86400, "8y"),
        ] {
            assert_eq!(human_duration(d(seconds)), expected, "{seconds}s");
        }
        assert_eq!(human_duration(time::Duration::milliseconds(-1500)), "0s");
    }

    #[test]
    fn custom_cells_follow_the_apiextensions_convertor() {
        let cell = |t: &str, v: Option<Value>| custom_cell(t, v.as_ref(), NOW);
        // Nothing found: null, whatever the type.
        for t in ["string", "integer", "number", "boolean", "date"] {
            assert_eq!(cell(t, None), Value::Null, "{t}");
        }
        // string: printed as client-go's JSONPath prints.
        assert_eq!(cell("string", Some(json!("x"))), json!("x"));
        assert_eq!(cell("string", Some(json!(3))), json!("3"));
        assert_eq!(cell("string", Some(json!(2.5))), json!("2.5"));
        assert_eq!(cell("string", Some(json!(1e6))), json!("1e+06"));
        assert_eq!(cell("string", Some(json!(true))), json!("true"));
        assert_eq!(cell("string", Some(json!(null))), json!("<no value>"));
        assert_eq!(
            cell("string", Some(json!(["a", "b"]))),
            json!(r#"["a","b"]"#)
        );
        assert_eq!(
            cell("string", Some(json!({"z": 1, "a": "<&>"}))),
            json!(r#"{"a":"\u003c\u0026\u003e","z":1}"#)
        );
        // integer / number / boolean keep their JSON type, or are null.
        assert_eq!(cell("integer", Some(json!(7))), json!(7));
        assert_eq!(cell("integer", Some(json!(7.9))), json!(7));
        assert_eq!(cell("integer", Some(json!("7"))), Value::Null);
        assert_eq!(cell("number", Some(json!(7))), json!(7));
        assert_eq!(cell("number", Some(json!(0.25))), json!(0.25));
        assert_eq!(cell("number", Some(json!(true))), Value::Null);
        assert_eq!(cell("boolean", Some(json!(false))), json!(false));
        assert_eq!(cell("boolean", Some(json!("true"))), Value::Null);
        assert_eq!(cell("integer", Some(json!(null))), Value::Null);
        // date: an age rendered by the server.
        assert_eq!(cell("date", Some(json!(ago(3 * 3600)))), json!("3h"));
        assert_eq!(
            cell("date", Some(json!("2026-03-01T11:59:30.5Z"))),
            json!("29s")
        );
        assert_eq!(cell("date", Some(json!(ago(-86400)))), json!("<invalid>"));
        assert_eq!(cell("date", Some(json!("yesterday"))), json!("<invalid>"));
        assert_eq!(cell("date", Some(json!(""))), json!("<unknown>"));
        assert_eq!(
            cell("date", Some(json!("0001-01-01T00:00:00Z"))),
            json!("<unknown>")
        );
        assert_eq!(cell("date", Some(json!(12))), Value::Null);
        // Unknown column types show nothing.
        assert_eq!(cell("duration", Some(json!("x"))), Value::Null);
    }

    #[test]
    fn go_number_formatting() {
        for (f, print, json_text) in [
            (1.5, "1.5", "1.5"),
            (100000.0, "100000", "100000"),
            (1e6, "1e+06", "1000000"),
            (1234567.0, "1.234567e+06", "1234567"),
            (0.0001, "0.0001", "0.0001"),
            (0.00001, "1e-05", "0.00001"),
            (1e-7, "1e-07", "1e-7"),
            (-2.25, "-2.25", "-2.25"),
            (1e21, "1e+21", "1e+21"),
            (123456789012.5, "1.234567890125e+11", "123456789012.5"),
        ] {
            assert_eq!(go_float_print(f), print, "{f}");
            assert_eq!(go_json_float(f), json_text, "{f}");
        }
        assert_eq!(
            go_json(&json!({"b": [1, 2.5, null, "\n\u{2028}"], "a": {"y": true}})),
            r#"{"a":{"y":true},"b":[1,2.5,null,"\n\u2028"]}"#
        );
    }

    fn relay_cluster_printer() -> Printer {
        Printer::for_crd_version(&json!({
            "name": "v1alpha1",
            "additionalPrinterColumns": [
                {"name": "Connected", "type": "boolean", "jsonPath": ".status.connected"},
                {"name": "Last Seen", "type": "date", "jsonPath": ".status.lastSeen"},
                {"name": "Serial", "type": "string", "jsonPath": ".status.certificateSerial"},
                {"name": "Agent", "type": "string", "jsonPath": ".status.agentVersion", "priority": 1, "description": "The agent's version"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
            ]
        }))
    }

    #[test]
    fn crd_columns_and_cells() {
        let printer = relay_cluster_printer();
        let columns = printer.columns();
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["Name", "Connected", "Last Seen", "Serial", "Agent", "Age"]
        );
        assert_eq!(columns[0].format, "name");
        assert_eq!(columns[0].description, NAME_DESCRIPTION);
        assert_eq!(columns[1].type_, "boolean");
        assert_eq!(
            columns[1].description,
            "Custom resource definition column (in JSONPath format): .status.connected"
        );
        assert_eq!(
            (columns[4].priority, columns[4].description.as_str()),
            (1, "The agent's version")
        );
        let object = json!({
            "metadata": {"name": "east", "creationTimestamp": ago(90)},
            "status": {"connected": true, "lastSeen": ago(600), "certificateSerial": "0a:1b"}
        });
        assert_eq!(
            printer.cells(&object, NOW),
            vec![
                json!("east"),
                json!(true),
                json!("10m"),
                json!("0a:1b"),
                Value::Null,
                json!("90s")
            ]
        );
        // No status yet: nulls.
        let bare = json!({"metadata": {"name": "west", "creationTimestamp": ago(0)}});
        assert_eq!(
            printer.cells(&bare, NOW),
            vec![
                json!("west"),
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                json!("0s")
            ]
        );

        // No declared columns: Name and Age.
        let plain = Printer::for_crd_version(&json!({"name": "v1"}));
        let columns = plain.columns();
        assert_eq!(
            columns
                .iter()
                .map(|c| (c.name.as_str(), c.type_.as_str()))
                .collect::<Vec<_>>(),
            [("Name", "string"), ("Age", "date")]
        );
        assert_eq!(columns[1].description, CREATED_DESCRIPTION);
        assert_eq!(plain.cells(&object, NOW), vec![json!("east"), json!("90s")]);

        // An unparsable column keeps the ones before it.
        let broken = Printer::for_crd_version(&json!({"additionalPrinterColumns": [
            {"name": "A", "type": "string", "jsonPath": ".a"},
            {"name": "B", "type": "string", "jsonPath": ".b["},
            {"name": "C", "type": "string", "jsonPath": ".c"}
        ]}));
        assert_eq!(broken.columns().len(), 2);
    }

    #[test]
    fn builtin_printers() {
        let secret = json!({
            "kind": "Secret", "apiVersion": "v1", "type": "kubernetes.io/tls",
            "metadata": {"name": "tls", "creationTimestamp": ago(7200)},
            "data": {"tls.crt": "", "tls.key": "", "ca.crt": ""}
        });
        assert_eq!(
            Printer::Secret.cells(&secret, NOW),
            vec![
                json!("tls"),
                json!("kubernetes.io/tls"),
                json!(3),
                json!("120m")
            ]
        );
        let names = |p: &Printer| p.columns().into_iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(names(&Printer::Secret), ["Name", "Type", "Data", "Age"]);
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "binaryData": {"b": ""}});
        assert_eq!(
            Printer::ConfigMap.cells(&cm, NOW),
            vec![json!("c"), json!(2), json!("<unknown>")]
        );
        let ns = json!({"metadata": {"name": "team-a", "creationTimestamp": ago(5)}, "status": {"phase": "Active"}});
        assert_eq!(
            Printer::Namespace.cells(&ns, NOW),
            vec![json!("team-a"), json!("Active"), json!("5s")]
        );
        assert_eq!(names(&Printer::Namespace), ["Name", "Status", "Age"]);
        let lease = json!({"metadata": {"name": "l", "creationTimestamp": ago(5)}, "spec": {"holderIdentity": "pod-1"}});
        assert_eq!(
            Printer::Lease.cells(&lease, NOW),
            vec![json!("l"), json!("pod-1"), json!("5s")]
        );
        let binding = json!({"metadata": {"name": "rb", "creationTimestamp": ago(5)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "a"}, {"kind": "User", "name": "b"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]});
        assert_eq!(
            Printer::RoleBinding.cells(&binding, NOW),
            vec![
                json!("rb"),
                json!("ClusterRole/view"),
                json!("5s"),
                json!("a, b"),
                json!(""),
                json!("ns/sa")
            ]
        );
        assert_eq!(
            names(&Printer::RoleBinding),
            ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
        );
        let sa = json!({"metadata": {"name": "default"}, "secrets": [{"name": "x"}]});
        assert_eq!(Printer::ServiceAccount.cells(&sa, NOW)[1], json!(1));
        // CRDs: the default table, RFC 3339 creation time.
        let crd = json!({"metadata": {"name": "relayclusters.relaytls.dev", "creationTimestamp": "2026-02-01T10:00:00Z"}});
        assert_eq!(
            Printer::Default.cells(&crd, NOW),
            vec![
                json!("relayclusters.relaytls.dev"),
                json!("2026-02-01T10:00:00Z")
            ]
        );
        assert_eq!(names(&Printer::Default), ["Name", "Created At"]);
    }

    #[test]
    fn event_printer_reads_both_views() {
        let stored = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "cr.1", "namespace": "ns"},
            "regarding": {"kind": "CertificateRequest", "name": "cr", "namespace": "ns"},
            "note": "Certificate issued\n", "reason": "Issued", "type": "Normal",
            "reportingController": "relay-issuer", "reportingInstance": "relay-issuer-0",
            "action": "Sign", "eventTime": ago(30).replace('Z', ".123456Z")
        });
        let cells = Printer::Event.cells(&stored, NOW);
        assert_eq!(
            cells,
            vec![
                json!("30s"),
                json!("Normal"),
                json!("Issued"),
                json!("certificaterequest/cr"),
                json!(""),
                json!("relay-issuer, relay-issuer-0"),
                json!("Certificate issued"),
                json!("30s"),
                json!(1),
                json!("cr.1")
            ]
        );
        let core = crate::events::to_core(&stored);
        assert_eq!(Printer::Event.cells(&core, NOW), cells);
        let series = json!({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Lease"}, "firstTimestamp": ago(600), "count": 0,
            "series": {"count": 4, "lastObservedTime": ago(20)}, "source": {"component": "c"}
        });
        let cells = Printer::Event.cells(&series, NOW);
        assert_eq!(cells[0], json!("20s"));
        assert_eq!(cells[3], json!("lease"));
        assert_eq!(cells[5], json!("c"));
        assert_eq!(cells[7], json!("10m"));
        assert_eq!(cells[8], json!(4));
        let columns = Printer::Event.columns();
        let default: Vec<&str> = columns
            .iter()
            .filter(|c| c.priority == 0)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            default,
            ["Last Seen", "Type", "Reason", "Object", "Message"]
        );
    }

    #[test]
    fn render_objects_and_lists() {
        let printer = relay_cluster_printer();
        let object = json!({
            "kind": "RelayCluster", "apiVersion": "relaytls.dev/v1alpha1",
            "metadata": {"name": "east", "namespace": "relay-tls", "resourceVersion": "12", "creationTimestamp": ago(90)},
            "spec": {"description": "d"}
        });
        let options = TableOptions {
            version: MetaVersion::V1,
            include: IncludeObject::Metadata,
            headers: true,
        };
        let table = render(&printer, &object, false, options, NOW);
        assert_eq!(table["kind"], "Table");
        assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(table["metadata"], json!({"resourceVersion": "12"}));
        assert_eq!(table["columnDefinitions"].as_array().unwrap().len(), 6);
        assert_eq!(
            table["columnDefinitions"][0],
            json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DESCRIPTION, "priority": 0})
        );
        assert_eq!(table["rows"][0]["cells"][0], "east");
        assert_eq!(
            table["rows"][0]["object"],
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]})
        );

        let list = json!({
            "kind": "RelayClusterList", "apiVersion": "relaytls.dev/v1alpha1",
            "metadata": {"resourceVersion": "20", "continue": "tok", "remainingItemCount": 1},
            "items": [object.clone()]
        });
        let table = render(
            &printer,
            &list,
            true,
            TableOptions {
                version: MetaVersion::V1beta1,
                include: IncludeObject::Object,
                headers: false,
            },
            NOW,
        );
        assert_eq!(table["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(
            table["metadata"],
            json!({"resourceVersion": "20", "continue": "tok", "remainingItemCount": 1})
        );
        assert_eq!(table["columnDefinitions"], Value::Null);
        assert_eq!(table["rows"][0]["object"], object);
        let none = render(
            &printer,
            &list,
            true,
            TableOptions {
                include: IncludeObject::None,
                ..options
            },
            NOW,
        );
        assert_eq!(none["rows"][0]["object"], Value::Null);
        assert!(none["rows"][0].as_object().unwrap().contains_key("object"));

        let empty = json!({"metadata": {"resourceVersion": "3"}, "items": []});
        assert_eq!(
            render(&printer, &empty, true, options, NOW)["rows"],
            json!([])
        );
        assert_eq!(
            render(&Printer::Default, &empty, true, options, NOW)["rows"],
            Value::Null
        );
    }

    #[test]
    fn include_object_values() {
        assert_eq!(
            IncludeObject::from_query(None).unwrap(),
            IncludeObject::Metadata
        );
        assert_eq!(
            IncludeObject::from_query(Some("")).unwrap(),
            IncludeObject::Metadata
        );
        assert_eq!(
            IncludeObject::from_query(Some("None")).unwrap(),
            IncludeObject::None
        );
        assert_eq!(
            IncludeObject::from_query(Some("Object")).unwrap(),
            IncludeObject::Object
        );
        let err = IncludeObject::from_query(Some("Everything")).unwrap_err();
        assert!(
            matches!(&err, Error::BadRequest(m) if m.contains("includeObject: Invalid value: \"Everything\"")),
            "{err}"
        );
    }
}
