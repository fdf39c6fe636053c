//! CustomResourceDefinition structural schemas: compiling one version's `openAPIV3Schema`, then
//! pruning, defaulting and validating custom resources against it the way kube-apiserver's
//! apiextensions code does (structural pruning, kube-openapi's schema validator, the list-type
//! and embedded-resource checks of the custom-resource strategy). Everything here is a pure
//! function over `serde_json::Value`: no HTTP, no storage, no Kubernetes client.
//!
//! Causes are worded as the API server words them: kube-openapi's messages wrapped in
//! apimachinery's `field.Error` formatting. Two consequences that surprise people but match the
//! real server:
//! - a value of the wrong type is reported as `FieldValueTypeInvalid` (`field.TypeInvalid`), e.g.
//!   `Invalid value: "integer": spec.duration in body must be of type string: "integer"`;
//! - failures that kube-openapi reports without a field (unmet `anyOf`/`oneOf`/`allOf`/`not`,
//!   number range checks such as `format: int32`) carry the field `<nil>` and a message starting
//!   `Invalid value: "": `.
//!
//! What does not live here:
//! - `metadata` (ObjectMeta) validation and coercion, at the root or inside embedded resources,
//!   and the root's `apiVersion`/`kind` matching the CRD: the caller does those;
//! - `x-kubernetes-validations` (CEL rules) are accepted when compiling but never evaluated;
//! - validation ratcheting on update, version conversion, status-subresource handling;
//! - `format`s other than `byte`, `date`, `date-time`, `uuid`/`uuid3`/`uuid4`/`uuid5`,
//!   `hostname`, `ipv4`, `ipv6`, `cidr`, `hexcolor`, `rgbcolor`, `ssn`, `k8s-short-name` and
//!   `k8s-long-name` are accepted without being checked (`email`, `uri`, `mac`, `duration`, ...);
//! - of the CRD-registration checks, only those that make a schema unusable or non-structural
//!   are made by [`StructuralSchema::compile`] (no completeness check of value validations, no
//!   restriction of root `metadata` to `name`/`generateName`, no default validation).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

use crate::Error;
use crate::error::Cause;
use crate::error::go_quote;
use crate::table::go_json;

/// A compiled structural schema for one CRD version.
#[derive(Debug, Clone)]
pub struct StructuralSchema {
    root: Node,
}

/// The topology of a list, from `x-kubernetes-list-type` (and `x-kubernetes-list-map-keys`);
/// the same type server-side apply merges by.
pub use crate::apply::ListType;

impl StructuralSchema {
    /// Compiles an openAPIV3Schema (the JSON value under `spec.versions[].schema.openAPIV3Schema`).
    ///
    /// Returns `Err(Error::BadRequest(msg))` if the schema itself is unusable: not structural
    /// (missing `type`, `array` without `items`, types or extensions inside `anyOf`/`allOf`/
    /// `oneOf`/`not`, ...), using keywords CRDs reject (`$ref`, `patternProperties`,
    /// `uniqueItems: true`, ...), an invalid `pattern`, or bad `x-kubernetes-*` extensions.
    /// `x-kubernetes-validations` rules are accepted but never evaluated.
    pub fn compile(schema: &Value) -> Result<Self, Error> {
        let mut compiler = Compiler::default();
        let root = compiler.node(schema, "openAPIV3Schema", Level::Root, false);
        if compiler.problems.is_empty() {
            Ok(Self { root })
        } else {
            Err(Error::BadRequest(format!(
                "invalid openAPIV3Schema: {}",
                compiler.problems.join(", ")
            )))
        }
    }

    /// Removes fields not declared in the schema (unless `x-kubernetes-preserve-unknown-fields:
    /// true` at that level), as the API server's pruning does. `apiVersion`, `kind` and
    /// `metadata` at the root, and in embedded resources, are never pruned (metadata is handled
    /// elsewhere). Like the API server's decoding step, this also drops `null` values of
    /// fields that are neither `nullable` nor defaulted.
    pub fn prune(&self, object: &mut Value) {
        prune_value(object, Some(&self.root), true);
        prune_nulls(object, Some(&self.root));
    }

    /// Applies the schema's `default`s to an (already pruned) object: missing fields, and
    /// `null`s where `null` is not allowed, get a copy of their default, at every level.
    pub fn apply_defaults(&self, object: &mut Value) {
        apply_defaults(object, &self.root);
    }

    /// Validates an (already pruned) object; returns every problem found, empty when valid.
    ///
    /// Runs what the API server runs for a custom resource: the openAPI schema validation,
    /// the embedded-resource checks (`apiVersion`/`kind` of `x-kubernetes-embedded-resource`
    /// values) and the uniqueness of `x-kubernetes-list-type: set` / `map` lists.
    /// `x-kubernetes-validations` (CEL) rules are not evaluated.
    pub fn validate(&self, object: &Value) -> Vec<Cause> {
        let mut causes = Vec::new();
        validate_value(&self.root, object, "", &mut causes);
        validate_embedded(&self.root, object, "", &mut causes);
        if let Value::Object(map) = object {
            validate_lists_in_object(&self.root, map, "", &mut causes);
        }
        causes
    }

    /// For a path of map keys (e.g. `["status", "conditions"]`), the `x-kubernetes-list-type`
    /// and `x-kubernetes-list-map-keys` declared for the list at that path, if any.
    ///
    /// Keys are looked up in `properties`, then in `additionalProperties`; when the path goes
    /// through a list, the lookup continues in the list's `items` (so
    /// `["spec", "containers", "ports"]` finds the list inside each container).
    pub fn list_type_at(&self, path: &[&str]) -> Option<ListType> {
        let mut node = &self.root;
        for key in path {
            while let Some(items) = node.items.as_deref() {
                node = items;
            }
            node = field_schema(node, key)?;
        }
        node.list_type.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// The compiled schema
// ---------------------------------------------------------------------------------------------

/// One schema node. The same shape serves structural nodes and the value validations nested
/// under `allOf`/`anyOf`/`oneOf`/`not` (where `compile` forbids the structural parts).
#[derive(Debug, Clone, Default)]
struct Node {
    /// Empty, one type, or `["integer", "string"]` for `x-kubernetes-int-or-string`.
    types: Vec<String>,
    nullable: bool,
    /// The format, emptied when the API server ignores it for this type.
    format: String,
    default: Option<Value>,
    enumeration: Option<Vec<Value>>,
    maximum: Option<f64>,
    exclusive_maximum: bool,
    minimum: Option<f64>,
    exclusive_minimum: bool,
    multiple_of: Option<f64>,
    max_length: Option<i64>,
    min_length: Option<i64>,
    pattern: Option<Pattern>,
    max_items: Option<i64>,
    min_items: Option<i64>,
    unique_items: bool,
    max_properties: Option<i64>,
    min_properties: Option<i64>,
    required: Vec<String>,
    properties: BTreeMap<String, Node>,
    additional: Option<Additional>,
    items: Option<Box<Node>>,
    all_of: Vec<Node>,
    any_of: Vec<Node>,
    one_of: Vec<Node>,
    not: Option<Box<Node>>,
    preserve_unknown: bool,
    embedded: bool,
    list_type: Option<ListType>,
}

/// `additionalProperties`: `false`, `true`, or a schema (which allows).
#[derive(Debug, Clone)]
struct Additional {
    allows: bool,
    schema: Option<Box<Node>>,
}

/// A `pattern` as written in the schema, and its compiled form.
#[derive(Debug, Clone)]
struct Pattern {
    source: String,
    regex: Regex,
}

/// The schema under `properties[key]`, else under `additionalProperties`.
fn field_schema<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    node.properties
        .get(key)
        .or_else(|| node.additional.as_ref()?.schema.as_deref())
}

// ---------------------------------------------------------------------------------------------
// Compiling
// ---------------------------------------------------------------------------------------------

/// Where a node sits, which decides the structural rules it must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Items,
    Field,
    /// Under `allOf`/`anyOf`/`oneOf`/`not`; `check` is false for the int-or-string exception.
    Nested {
        check: bool,
    },
}

impl Level {
    fn is_nested(self) -> bool {
        matches!(self, Level::Nested { .. })
    }

    fn checks_nested(self) -> bool {
        matches!(self, Level::Nested { check: true })
    }

    /// The level of a child node (property, items, additionalProperties).
    fn child(self, of_items: bool) -> Level {
        match self {
            Level::Nested { .. } => self,
            _ if of_items => Level::Items,
            _ => Level::Field,
        }
    }
}

const TYPE_NAMES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

const UNSUPPORTED_KEYWORDS: [(&str, &str); 7] = [
    ("$ref", "$ref"),
    ("$schema", "schema"),
    ("id", "id"),
    ("patternProperties", "patternProperties"),
    ("dependencies", "dependencies"),
    ("additionalItems", "additionalItems"),
    ("definitions", "definitions"),
];

/// Keywords that must not appear under `allOf`/`anyOf`/`oneOf`/`not`, and why.
const FORBIDDEN_NESTED: [(&str, &str); 12] = [
    ("type", "must be empty to be structural"),
    ("additionalProperties", "must be undefined to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("nullable", "must be false to be structural"),
    (
        "x-kubernetes-preserve-unknown-fields",
        "must be false to be structural",
    ),
    (
        "x-kubernetes-embedded-resource",
        "must be false to be structural",
    ),
    (
        "x-kubernetes-int-or-string",
        "must be false to be structural",
    ),
    (
        "x-kubernetes-list-map-keys",
        "must be empty to be structural",
    ),
    (
        "x-kubernetes-list-type",
        "must be undefined to be structural",
    ),
    (
        "x-kubernetes-map-type",
        "must be undefined to be structural",
    ),
];

/// Collects every problem of a schema while building its [`Node`]s.
#[derive(Default)]
struct Compiler {
    problems: Vec<String>,
}

impl Compiler {
    fn fail(&mut self, at: &str, message: impl Display) {
        self.problems.push(format!("{at}: {message}"));
    }

    /// Compiles one node; `skip_any_of` marks an `anyOf` exempt from nested checks.
    fn node(&mut self, value: &Value, at: &str, level: Level, skip_any_of: bool) -> Node {
        let Some(m) = value.as_object() else {
            self.fail(at, "Invalid value: must be a JSON schema object");
            return Node::default();
        };
        for (key, name) in UNSUPPORTED_KEYWORDS {
            if m.get(key).is_some_and(|v| !v.is_null()) {
                self.fail(at, format!("OpenAPIV3Schema '{name}' is not supported"));
            }
        }
        let mut node = Node {
            preserve_unknown: self.preserve_unknown(m, at),
            embedded: self.flag(m, "x-kubernetes-embedded-resource", at),
            nullable: self.flag(m, "nullable", at),
            default: m.get("default").filter(|d| !d.is_null()).cloned(),
            ..Node::default()
        };
        let int_or_string = self.flag(m, "x-kubernetes-int-or-string", at);
        let declared_type = self.type_name(m, at);
        node.types = if int_or_string {
            vec!["integer".to_owned(), "string".to_owned()]
        } else {
            declared_type.iter().cloned().collect()
        };
        let format = self.string(m, "format", at).unwrap_or_default();
        node.format = effective_format(&node.types, &format);
        self.value_validations(&mut node, m, at);
        self.children(&mut node, m, at, level, skip_any_of);
        node.list_type = self.list_type(m, &node, declared_type.as_deref(), at);
        self.map_type(m, declared_type.as_deref(), at);
        if level.checks_nested() {
            self.check_nested(m, at);
        } else if !level.is_nested() {
            let shape = Shape {
                declared_type: declared_type.as_deref(),
                int_or_string,
            };
            self.check_structural(m, &node, shape, at, level);
        }
        node
    }

    fn value_validations(&mut self, node: &mut Node, m: &Map<String, Value>, at: &str) {
        node.enumeration = match m.get("enum") {
            None | Some(Value::Null) => None,
            Some(Value::Array(values)) => Some(values.clone()),
            Some(_) => {
                self.fail(&format!("{at}.enum"), "Invalid value: must be a list");
                None
            }
        };
        node.maximum = self.number(m, "maximum", at);
        node.exclusive_maximum = self.flag(m, "exclusiveMaximum", at);
        node.minimum = self.number(m, "minimum", at);
        node.exclusive_minimum = self.flag(m, "exclusiveMinimum", at);
        node.multiple_of = self.number(m, "multipleOf", at);
        node.max_length = self.count(m, "maxLength", at);
        node.min_length = self.count(m, "minLength", at);
        node.max_items = self.count(m, "maxItems", at);
        node.min_items = self.count(m, "minItems", at);
        node.max_properties = self.count(m, "maxProperties", at);
        node.min_properties = self.count(m, "minProperties", at);
        node.required = self.strings(m, "required", at);
        node.unique_items = self.flag(m, "uniqueItems", at);
        if node.unique_items {
            self.fail(
                &format!("{at}.uniqueItems"),
                "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            );
        }
        if let Some(source) = self.string(m, "pattern", at) {
            match Regex::new(&translate_pattern(&source)) {
                Ok(regex) => node.pattern = Some(Pattern { source, regex }),
                Err(e) => self.fail(
                    &format!("{at}.pattern"),
                    format!(
                        "Invalid value: {}: must be a valid regular expression, but isn't: {e}",
                        go_quote(&source)
                    ),
                ),
            }
        }
    }

    fn children(
        &mut self,
        node: &mut Node,
        m: &Map<String, Value>,
        at: &str,
        level: Level,
        skip_any_of: bool,
    ) {
        match m.get("properties") {
            None | Some(Value::Null) => {}
            Some(Value::Object(props)) => {
                for (key, schema) in props {
                    let child_at = format!("{at}.properties[{key}]");
                    let child = self.node(schema, &child_at, level.child(false), false);
                    node.properties.insert(key.clone(), child);
                }
            }
            Some(_) => self.fail(&format!("{at}.properties"), "Invalid value: must be a map"),
        }
        match m.get("items") {
            None | Some(Value::Null) => {}
            Some(Value::Array(_)) => self.fail(
                &format!("{at}.items"),
                "OpenAPIV3Schema 'items' must be a schema, but is an array",
            ),
            Some(items) => {
                let child = self.node(items, &format!("{at}.items"), level.child(true), false);
                node.items = Some(Box::new(child));
            }
        }
        node.additional = match m.get("additionalProperties") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(allows)) => Some(Additional {
                allows: *allows,
                schema: None,
            }),
            Some(schema) => {
                let child_at = format!("{at}.additionalProperties");
                let child = self.node(schema, &child_at, level.child(false), false);
                Some(Additional {
                    allows: true,
                    schema: Some(Box::new(child)),
                })
            }
        };
        self.junctors(node, m, at, level, skip_any_of);
    }

    fn junctors(
        &mut self,
        node: &mut Node,
        m: &Map<String, Value>,
        at: &str,
        level: Level,
        skip_any_of: bool,
    ) {
        let checking = !matches!(level, Level::Nested { check: false });
        let structural = !level.is_nested();
        let any_of_exempt = skip_any_of || (structural && is_int_or_string_pair(m.get("anyOf")));
        let first_all_of_exempt = structural
            && m.get("allOf")
                .and_then(Value::as_array)
                .and_then(|all| all.first())
                .is_some_and(|first| is_int_or_string_pair(first.get("anyOf")));
        let nested = |check: bool| Level::Nested { check };
        node.any_of = self.branches(m, "anyOf", at, |_| {
            (nested(checking && !any_of_exempt), false)
        });
        node.all_of = self.branches(m, "allOf", at, |i| {
            (nested(checking), i == 0 && first_all_of_exempt)
        });
        node.one_of = self.branches(m, "oneOf", at, |_| (nested(checking), false));
        if let Some(not) = m.get("not").filter(|v| !v.is_null()) {
            let child = self.node(not, &format!("{at}.not"), nested(checking), false);
            node.not = Some(Box::new(child));
        }
    }

    fn branches(
        &mut self,
        m: &Map<String, Value>,
        key: &str,
        at: &str,
        level_of: impl Fn(usize) -> (Level, bool),
    ) -> Vec<Node> {
        match m.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(branches)) => branches
                .iter()
                .enumerate()
                .map(|(i, branch)| {
                    let (level, skip_any_of) = level_of(i);
                    self.node(branch, &format!("{at}.{key}[{i}]"), level, skip_any_of)
                })
                .collect(),
            Some(_) => {
                self.fail(
                    &format!("{at}.{key}"),
                    "Invalid value: must be a list of schemas",
                );
                Vec::new()
            }
        }
    }

    fn list_type(
        &mut self,
        m: &Map<String, Value>,
        node: &Node,
        declared_type: Option<&str>,
        at: &str,
    ) -> Option<ListType> {
        let keys = self.strings(m, "x-kubernetes-list-map-keys", at);
        let name = self.string(m, "x-kubernetes-list-type", at);
        let keys_at = format!("{at}.x-kubernetes-list-map-keys");
        let type_at = format!("{at}.x-kubernetes-list-type");
        if !keys.is_empty() && name.as_deref() != Some("map") {
            self.fail(
                &type_at,
                "Required value: must be map if x-kubernetes-list-map-keys is non-empty",
            );
        }
        let name = name?;
        if declared_type != Some("array") {
            self.fail(
                &format!("{at}.type"),
                "Invalid value: must be array if x-kubernetes-list-type is specified",
            );
        }
        match name.as_str() {
            "atomic" => Some(ListType::Atomic),
            "set" => Some(ListType::Set),
            "map" => {
                if keys.is_empty() {
                    self.fail(
                        &keys_at,
                        "Required value: must not be empty if x-kubernetes-list-type is map",
                    );
                }
                if let Some(items) = node.items.as_deref()
                    && keys.iter().any(|k| !items.properties.contains_key(k))
                {
                    self.fail(
                        &keys_at,
                        "Invalid value: entries must all be names of item properties",
                    );
                }
                Some(ListType::Map { keys })
            }
            other => {
                self.fail(
                    &type_at,
                    format!(
                        "Unsupported value: {}: supported values: \"atomic\", \"set\", \"map\"",
                        go_quote(other)
                    ),
                );
                None
            }
        }
    }

    fn map_type(&mut self, m: &Map<String, Value>, declared_type: Option<&str>, at: &str) {
        let Some(name) = self.string(m, "x-kubernetes-map-type", at) else {
            return;
        };
        if declared_type != Some("object") {
            self.fail(
                &format!("{at}.type"),
                "Invalid value: must be object if x-kubernetes-map-type is specified",
            );
        }
        if name != "atomic" && name != "granular" {
            self.fail(
                &format!("{at}.x-kubernetes-map-type"),
                format!(
                    "Unsupported value: {}: supported values: \"atomic\", \"granular\"",
                    go_quote(&name)
                ),
            );
        }
    }

    /// The structural invariants of a node outside `allOf`/`anyOf`/`oneOf`/`not`.
    fn check_structural(
        &mut self,
        m: &Map<String, Value>,
        node: &Node,
        shape: Shape<'_>,
        at: &str,
        level: Level,
    ) {
        let ty = shape.declared_type.unwrap_or("");
        if ty == "array" && node.items.is_none() {
            self.fail(&format!("{at}.items"), "Required value: must be specified");
        }
        if node.additional.is_some() && level == Level::Root {
            self.fail(
                &format!("{at}.additionalProperties"),
                "Forbidden: must not be used at the root",
            );
        }
        if node
            .additional
            .as_ref()
            .is_some_and(|a| !a.allows || a.schema.is_some())
            && m.get("properties").is_some_and(|p| !p.is_null())
        {
            self.fail(
                &format!("{at}.additionalProperties"),
                "Forbidden: additionalProperties and properties are mutual exclusive",
            );
        }
        if shape.int_or_string && node.preserve_unknown {
            self.fail(
                &format!("{at}.x-kubernetes-preserve-unknown-fields"),
                "Invalid value: true: must be false if x-kubernetes-int-or-string is true",
            );
        }
        if shape.int_or_string && node.embedded {
            self.fail(
                &format!("{at}.x-kubernetes-embedded-resource"),
                "Invalid value: true: must be false if x-kubernetes-int-or-string is true",
            );
        }
        self.check_type_present(node, shape, at, level);
        if node.embedded && node.additional.is_some() {
            self.fail(
                &format!("{at}.additionalProperties"),
                "Forbidden: must not be used if x-kubernetes-embedded-resource is set",
            );
        }
        if node.embedded && !node.preserve_unknown && node.properties.is_empty() {
            self.fail(
                &format!("{at}.properties"),
                "Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
            );
        }
        if level == Level::Root || node.embedded {
            self.check_type_meta(m, node, at);
        }
    }

    fn check_type_present(&mut self, node: &Node, shape: Shape<'_>, at: &str, level: Level) {
        let ty = shape.declared_type.unwrap_or("");
        let type_at = format!("{at}.type");
        if node.embedded && ty != "object" {
            let detail = "must be object if x-kubernetes-embedded-resource is true";
            if ty.is_empty() {
                self.fail(&type_at, format!("Required value: {detail}"));
            } else {
                self.fail(
                    &type_at,
                    format!("Invalid value: {}: {detail}", go_quote(ty)),
                );
            }
        } else if ty.is_empty() && !shape.int_or_string && !node.preserve_unknown {
            let detail = match level {
                Level::Root => "must not be empty at the root",
                Level::Items => "must not be empty for specified array items",
                _ => "must not be empty for specified object fields",
            };
            self.fail(&type_at, format!("Required value: {detail}"));
        }
        if level == Level::Root && !ty.is_empty() && ty != "object" {
            self.fail(
                &type_at,
                format!(
                    "Invalid value: {}: must be object at the root",
                    go_quote(ty)
                ),
            );
        }
    }

    /// `apiVersion` and `kind` must be strings and `metadata` an object, where declared at the
    /// root or in an embedded resource.
    fn check_type_meta(&mut self, m: &Map<String, Value>, node: &Node, at: &str) {
        let declared = |key: &str| {
            m.get("properties")
                .and_then(|p| p.get(key))
                .and_then(|p| p.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        for (key, expected) in [
            ("apiVersion", "string"),
            ("kind", "string"),
            ("metadata", "object"),
        ] {
            if node.properties.contains_key(key) && declared(key) != expected {
                self.fail(
                    &format!("{at}.properties[{key}].type"),
                    format!(
                        "Invalid value: {}: must be {expected}",
                        go_quote(declared(key))
                    ),
                );
            }
        }
    }

    /// Value validations under `allOf`/`anyOf`/`oneOf`/`not` must not carry structure.
    fn check_nested(&mut self, m: &Map<String, Value>, at: &str) {
        for (key, detail) in FORBIDDEN_NESTED {
            let set = match m.get(key) {
                None | Some(Value::Null) | Some(Value::Bool(false)) => false,
                Some(Value::String(s)) => !s.is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(_) => true,
            };
            if set {
                self.fail(&format!("{at}.{key}"), format!("Forbidden: {detail}"));
            }
        }
        if m.get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .is_some_and(|rules| !rules.is_empty())
        {
            self.fail(
                &format!("{at}.x-kubernetes-validations"),
                "Forbidden: must be empty to be structural",
            );
        }
        if m.get("properties")
            .and_then(|p| p.get("metadata"))
            .is_some()
        {
            self.fail(
                &format!("{at}.properties[metadata]"),
                "Forbidden: must not be specified in a nested context",
            );
        }
    }

    fn type_name(&mut self, m: &Map<String, Value>, at: &str) -> Option<String> {
        let name = self.string(m, "type", at)?;
        if name.is_empty() {
            return None;
        }
        if !TYPE_NAMES.contains(&name.as_str()) {
            let supported: Vec<String> = TYPE_NAMES.iter().map(|t| go_quote(t)).collect();
            self.fail(
                &format!("{at}.type"),
                format!(
                    "Unsupported value: {}: supported values: {}",
                    go_quote(&name),
                    supported.join(", ")
                ),
            );
        }
        Some(name)
    }

    fn preserve_unknown(&mut self, m: &Map<String, Value>, at: &str) -> bool {
        let key = "x-kubernetes-preserve-unknown-fields";
        match m.get(key) {
            Some(Value::Bool(false)) => {
                self.fail(
                    &format!("{at}.{key}"),
                    "Invalid value: false: must be true or undefined",
                );
                false
            }
            _ => self.flag(m, key, at),
        }
    }

    fn flag(&mut self, m: &Map<String, Value>, key: &str, at: &str) -> bool {
        match m.get(key) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.fail(&format!("{at}.{key}"), "Invalid value: must be a boolean");
                false
            }
        }
    }

    fn string(&mut self, m: &Map<String, Value>, key: &str, at: &str) -> Option<String> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.fail(&format!("{at}.{key}"), "Invalid value: must be a string");
                None
            }
        }
    }

    fn number(&mut self, m: &Map<String, Value>, key: &str, at: &str) -> Option<f64> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => {
                self.fail(&format!("{at}.{key}"), "Invalid value: must be a number");
                None
            }
        }
    }

    fn count(&mut self, m: &Map<String, Value>, key: &str, at: &str) -> Option<i64> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_i64().is_some_and(|i| i >= 0) => n.as_i64(),
            Some(_) => {
                self.fail(
                    &format!("{at}.{key}"),
                    "Invalid value: must be a non-negative integer",
                );
                None
            }
        }
    }

    fn strings(&mut self, m: &Map<String, Value>, key: &str, at: &str) -> Vec<String> {
        match m.get(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(_) => {
                self.fail(
                    &format!("{at}.{key}"),
                    "Invalid value: must be a list of strings",
                );
                Vec::new()
            }
        }
    }
}

/// What `check_structural` needs beyond the built node.
#[derive(Clone, Copy)]
struct Shape<'a> {
    declared_type: Option<&'a str>,
    int_or_string: bool,
}

/// Whether `anyOf` is exactly `[{type: integer}, {type: string}]`, the int-or-string pattern
/// allowed to carry types.
fn is_int_or_string_pair(any_of: Option<&Value>) -> bool {
    let Some(Value::Array(branches)) = any_of else {
        return false;
    };
    let only_type = |branch: &Value, ty: &str| {
        branch
            .as_object()
            .is_some_and(|m| m.len() == 1 && m.get("type").and_then(Value::as_str) == Some(ty))
    };
    branches.len() == 2 && only_type(&branches[0], "integer") && only_type(&branches[1], "string")
}

/// String formats the API server validates (names without dashes, as go-openapi normalises).
const STRING_FORMATS: [&str; 26] = [
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "k8sshortname",
    "k8slongname",
];

/// The format the API server keeps for a type: it silently drops formats it does not support.
fn effective_format(types: &[String], format: &str) -> String {
    if format.is_empty() {
        return String::new();
    }
    let single = match types {
        [only] => only.as_str(),
        _ => "",
    };
    let kept = match single {
        "" | "string" => STRING_FORMATS.contains(&normalize_format(format).as_str()),
        "integer" => format == "int32" || format == "int64",
        "number" => format == "float" || format == "double",
        _ => false,
    };
    if kept {
        format.to_owned()
    } else {
        String::new()
    }
}

fn normalize_format(format: &str) -> String {
    format.replace('-', "")
}

/// Rewrites a Go (RE2) pattern for the `regex` crate: `\d`, `\w` and `\s` are ASCII-only in Go,
/// and `[` inside a character class is a literal there.
fn translate_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let starting = class_start;
        class_start = false;
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let ascii = match next {
                    'd' => Some("0-9"),
                    'w' => Some("0-9A-Za-z_"),
                    's' => Some("\\t\\n\\f\\r "),
                    _ => None,
                };
                match ascii {
                    Some(set) if in_class => out.push_str(set),
                    Some(set) => {
                        out.push('[');
                        out.push_str(set);
                        out.push(']');
                    }
                    None => {
                        out.push('\\');
                        out.push(next);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
            }
            '[' if chars.peek() == Some(&':') => {
                // A POSIX class such as [:alpha:], copied through its closing ":]".
                out.push('[');
                let mut previous = '[';
                for inner in chars.by_ref() {
                    out.push(inner);
                    if previous == ':' && inner == ']' {
                        break;
                    }
                    previous = inner;
                }
            }
            '[' => out.push_str("\\["),
            ']' if in_class && !starting => {
                in_class = false;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Pruning and defaulting
// ---------------------------------------------------------------------------------------------

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Structural pruning of one value; `is_root` keeps the root's type and object meta.
fn prune_value(value: &mut Value, schema: Option<&Node>, is_root: bool) {
    if let Some(node) = schema.filter(|n| n.preserve_unknown) {
        skip_prune(value, node, is_root || node.embedded);
        return;
    }
    match value {
        Value::Object(map) => {
            let Some(node) = schema else {
                map.clear();
                return;
            };
            let keep_meta = is_root || node.embedded;
            map.retain(|key, child| {
                if keep_meta && META_FIELDS.contains(&key.as_str()) {
                    return true;
                }
                if let Some(property) = node.properties.get(key) {
                    prune_value(child, Some(property), false);
                    return true;
                }
                match &node.additional {
                    Some(additional) => {
                        prune_value(child, additional.schema.as_deref(), false);
                        true
                    }
                    None => false,
                }
            });
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(|n| n.items.as_deref());
            for item in items {
                prune_value(item, item_schema, false);
            }
        }
        _ => {}
    }
}

/// Below `x-kubernetes-preserve-unknown-fields: true`: unknown fields stay, declared ones are
/// pruned by their own schema.
fn skip_prune(value: &mut Value, node: &Node, keep_meta: bool) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if keep_meta && META_FIELDS.contains(&key.as_str()) {
                    continue;
                }
                if let Some(property) = node.properties.get(key) {
                    prune_value(child, Some(property), false);
                } else if let Some(additional) = &node.additional {
                    prune_value(child, additional.schema.as_deref(), false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.items.as_deref() {
                for item in items {
                    skip_prune(item, item_schema, item_schema.embedded);
                }
            }
        }
        _ => {}
    }
}

/// Drops `null` fields whose schema is neither nullable nor defaulted.
fn prune_nulls(value: &mut Value, schema: Option<&Node>) {
    match value {
        Value::Object(map) => map.retain(|key, child| {
            let child_schema = schema.and_then(|n| field_schema(n, key));
            let droppable = child_schema.is_some_and(|s| !s.nullable && s.default.is_none());
            if child.is_null() && droppable {
                return false;
            }
            prune_nulls(child, child_schema);
            true
        }),
        Value::Array(items) => {
            let item_schema = schema.and_then(|n| n.items.as_deref());
            for item in items {
                prune_nulls(item, item_schema);
            }
        }
        _ => {}
    }
}

fn is_non_nullable_null(value: &Value, schema: &Node) -> bool {
    value.is_null() && !schema.nullable
}

fn apply_defaults(value: &mut Value, node: &Node) {
    match value {
        Value::Object(map) => {
            for (key, property) in &node.properties {
                let Some(default) = &property.default else {
                    continue;
                };
                let missing = map
                    .get(key)
                    .is_none_or(|v| is_non_nullable_null(v, property));
                if missing {
                    map.insert(key.clone(), default.clone());
                }
            }
            for (key, child) in map.iter_mut() {
                if let Some(property) = node.properties.get(key) {
                    apply_defaults(child, property);
                } else if let Some(schema) =
                    node.additional.as_ref().and_then(|a| a.schema.as_deref())
                {
                    default_null(child, schema);
                    apply_defaults(child, schema);
                }
            }
        }
        Value::Array(items) => {
            if let Some(schema) = node.items.as_deref() {
                for item in items {
                    default_null(item, schema);
                    apply_defaults(item, schema);
                }
            }
        }
        _ => {}
    }
}

/// Replaces a `null` that is not allowed by the schema's default (which may itself be absent).
fn default_null(value: &mut Value, schema: &Node) {
    if is_non_nullable_null(value, schema) {
        *value = schema.default.clone().unwrap_or(Value::Null);
    }
}

// ---------------------------------------------------------------------------------------------
// Causes, worded as apimachinery's field errors
// ---------------------------------------------------------------------------------------------

/// The field of a kube-openapi error: its name without the leading dot, `<nil>` when it has none.
fn field_of(name: &str) -> String {
    if name.is_empty() || name == "." {
        "<nil>".to_owned()
    } else {
        name.strip_prefix('.').unwrap_or(name).to_owned()
    }
}

fn cause(reason: &str, field: String, message: String) -> Cause {
    Cause {
        reason: reason.to_owned(),
        message,
        field,
    }
}

fn required(name: &str) -> Cause {
    cause(
        "FieldValueRequired",
        field_of(name),
        "Required value".to_owned(),
    )
}

fn invalid(name: &str, bad: &Value, detail: &str) -> Cause {
    invalid_at(field_of(name), bad, detail)
}

fn invalid_at(field: String, bad: &Value, detail: &str) -> Cause {
    cause(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {}: {detail}", render(bad)),
    )
}

/// A kube-openapi error that is not a field validation: reported at `<nil>`.
fn unplaced(message: &str) -> Cause {
    invalid_at("<nil>".to_owned(), &Value::String(String::new()), message)
}

/// kube-openapi's `InvalidType`, as `field.TypeInvalid`.
fn type_invalid(name: &str, expected: &str, actual: &str) -> Cause {
    let detail = format!(
        "{name} in body must be of type {expected}: {}",
        go_quote(actual)
    );
    cause(
        "FieldValueTypeInvalid",
        field_of(name),
        format!("Invalid value: {}: {detail}", go_quote(actual)),
    )
}

fn not_supported(name: &str, bad: &Value, allowed: &[Value]) -> Cause {
    let quoted: Vec<String> = allowed
        .iter()
        .map(|v| match v {
            Value::String(s) => go_quote(s),
            other => go_quote(&go_json(other)),
        })
        .collect();
    cause(
        "FieldValueNotSupported",
        field_of(name),
        format!(
            "Unsupported value: {}: supported values: {}",
            render(bad),
            quoted.join(", ")
        ),
    )
}

fn too_long(name: &str, max: i64) -> Cause {
    let unit = if max == 1 { "byte" } else { "bytes" };
    cause(
        "FieldValueTooLong",
        field_of(name),
        format!("Too long: may not be more than {max} {unit}"),
    )
}

fn too_many(name: &str, actual: usize, max: i64) -> Cause {
    let unit = if max == 1 { "item" } else { "items" };
    cause(
        "FieldValueTooMany",
        field_of(name),
        format!("Too many: {actual}: must have at most {max} {unit}"),
    )
}

fn duplicate(field: String, bad: &Value) -> Cause {
    cause(
        "FieldValueDuplicate",
        field,
        format!("Duplicate value: {}", render(bad)),
    )
}

/// A bad value as `field.Error` prints it: `%q` for strings, `%v` for numbers and booleans,
/// JSON for anything else.
fn render(value: &Value) -> String {
    match value {
        Value::String(s) => go_quote(s),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match number_of(n) {
            Num::Int(i) => i.to_string(),
            Num::Float(f) => go_float(f),
        },
        other => go_json(other),
    }
}

/// Go's `%v` of a float64: shortest digits, exponent form below 1e-4 and from 1e6 (`1e+06`).
fn go_float(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return format!("{f}");
    }
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        format!("{f}")
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

// ---------------------------------------------------------------------------------------------
// Schema validation (kube-openapi's validator, as the API server configures it)
// ---------------------------------------------------------------------------------------------

/// A JSON number as the API server decodes it: int64 when it is one, float64 otherwise.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

fn number_of(n: &serde_json::Number) -> Num {
    match n.as_i64() {
        Some(i) => Num::Int(i),
        None => Num::Float(n.as_f64().unwrap_or(f64::NAN)),
    }
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            // The conversion Go makes; precision loss above 2^53 is shared.
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// go-openapi's `IsFloat64AJSONInteger`: whole (or within 1e-9 relative of whole) and within
/// ±(2^53 - 1).
fn is_json_integer(f: f64) -> bool {
    const MAX_JSON_INT: f64 = 9_007_199_254_740_991.0;
    if !f.is_finite() || !(-MAX_JSON_INT..=MAX_JSON_INT).contains(&f) {
        return false;
    }
    if f == f.trunc() {
        return true;
    }
    let whole = f.trunc();
    if f < 0.0 || whole == 0.0 {
        return false;
    }
    (f - whole) / (f + whole) < 1e-9
}

/// The JSON type and Go format kube-openapi infers for a (non-null) value.
fn type_info(value: &Value) -> (&'static str, &'static str) {
    match value {
        Value::Null => ("null", ""),
        Value::Bool(_) => ("boolean", ""),
        Value::String(_) => ("string", ""),
        Value::Number(n) => match number_of(n) {
            Num::Int(_) => ("integer", "int64"),
            Num::Float(_) => ("number", "float64"),
        },
        Value::Array(_) => ("array", ""),
        Value::Object(_) => ("object", ""),
    }
}

/// Validates one value against one node at `path` (kube-openapi's dotted path).
fn validate_value(node: &Node, value: &Value, path: &str, out: &mut Vec<Cause>) {
    if value.is_null() {
        if !node.types.is_empty() && !node.nullable {
            out.push(type_invalid(path, &node.types.join(","), "null"));
        }
        check_enum(node, value, path, out);
        return;
    }
    check_type(node, value, path, out);
    check_junctors(node, value, path, out);
    match value {
        Value::String(s) => {
            check_string(node, s, path, out);
            check_format(node, s, path, out);
        }
        Value::Number(n) => check_number(node, number_of(n), path, out),
        Value::Array(items) => check_array(node, items, path, out),
        _ => {}
    }
    check_enum(node, value, path, out);
    if let Value::Object(map) = value {
        check_object(node, map, path, out);
    }
}

/// kube-openapi's type validator, quirks included (a string `format` lets arrays through).
fn check_type(node: &Node, value: &Value, path: &str, out: &mut Vec<Cause>) {
    if node.types.is_empty() && node.format.is_empty() {
        return;
    }
    let (json_type, go_format) = type_info(value);
    let has = |t: &str| node.types.iter().any(|x| x == t);
    let float_as_int = matches!(value, Value::Number(n)
        if matches!(number_of(n), Num::Float(f) if is_json_integer(f)))
        && has("integer");
    let int_as_float = json_type == "integer" && has("number");
    let stringish = matches!(value, Value::String(_) | Value::Array(_));
    let format = node.format.as_str();
    let fits_format = has(json_type) || go_format == format || float_as_int || int_as_float;
    if !format.is_empty() && !stringish && !fits_format {
        out.push(type_invalid(path, format, go_format));
        return;
    }
    let numeric = has("number") || has("integer");
    if !format.is_empty() && stringish && !numeric {
        return;
    }
    if !(has(json_type) || float_as_int || int_as_float) {
        out.push(type_invalid(path, &node.types.join(","), json_type));
    }
}

/// `anyOf`, `oneOf`, `allOf` and `not`, each validated at the same path.
fn check_junctors(node: &Node, value: &Value, path: &str, out: &mut Vec<Cause>) {
    if !node.any_of.is_empty() {
        check_any_of(&node.any_of, value, path, out);
    }
    if !node.one_of.is_empty() {
        check_one_of(&node.one_of, value, path, out);
    }
    if !node.all_of.is_empty() {
        let mut valid = 0;
        for branch in &node.all_of {
            let causes = branch_causes(branch, value, path);
            valid += usize::from(causes.is_empty());
            out.extend(causes);
        }
        if valid != node.all_of.len() {
            let none = if valid == 0 { ". None validated" } else { "" };
            out.push(unplaced(&format!(
                "{} must validate all the schemas (allOf){none}",
                go_quote(path)
            )));
        }
    }
    if let Some(not) = node.not.as_deref()
        && branch_causes(not, value, path).is_empty()
    {
        out.push(unplaced(&format!(
            "{} must not validate the schema (not)",
            go_quote(path)
        )));
    }
}

fn branch_causes(branch: &Node, value: &Value, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    validate_value(branch, value, path, &mut causes);
    causes
}

/// Reports the failure and the causes of the closest branch (fewest causes, first on ties:
/// an approximation of kube-openapi's "most positive checks").
fn check_any_of(branches: &[Node], value: &Value, path: &str, out: &mut Vec<Cause>) {
    let mut best: Option<Vec<Cause>> = None;
    for branch in branches {
        let causes = branch_causes(branch, value, path);
        if causes.is_empty() {
            return;
        }
        if best.as_ref().is_none_or(|b| causes.len() < b.len()) {
            best = Some(causes);
        }
    }
    out.push(unplaced(&format!(
        "{} must validate at least one schema (anyOf)",
        go_quote(path)
    )));
    out.extend(best.unwrap_or_default());
}

fn check_one_of(branches: &[Node], value: &Value, path: &str, out: &mut Vec<Cause>) {
    let mut valid = 0;
    let mut best: Option<Vec<Cause>> = None;
    for branch in branches {
        let causes = branch_causes(branch, value, path);
        if causes.is_empty() {
            valid += 1;
        } else if valid == 0 && best.as_ref().is_none_or(|b| causes.len() < b.len()) {
            best = Some(causes);
        }
    }
    if valid == 1 {
        return;
    }
    let found = if valid == 0 {
        "Found none valid".to_owned()
    } else {
        format!("Found {valid} valid alternatives")
    };
    out.push(unplaced(&format!(
        "{} must validate one and only one schema (oneOf). {found}",
        go_quote(path)
    )));
    if valid == 0 {
        out.extend(best.unwrap_or_default());
    }
}

/// `maxLength`, `minLength`, `pattern`: the first failure only, lengths in characters.
fn check_string(node: &Node, s: &str, path: &str, out: &mut Vec<Cause>) {
    let length = i64::try_from(s.chars().count()).unwrap_or(i64::MAX);
    let bad = || Value::String(s.to_owned());
    if let Some(max) = node.max_length.filter(|max| length > *max) {
        out.push(too_long(path, max));
    } else if let Some(min) = node.min_length.filter(|min| length < *min) {
        let detail = format!("{path} in body should be at least {min} chars long");
        out.push(invalid(path, &bad(), &detail));
    } else if let Some(pattern) = node.pattern.as_ref().filter(|p| !p.regex.is_match(s)) {
        let detail = format!("{path} in body should match '{}'", pattern.source);
        out.push(invalid(path, &bad(), &detail));
    }
}

fn check_format(node: &Node, s: &str, path: &str, out: &mut Vec<Cause>) {
    let format = node.format.as_str();
    let normalized = normalize_format(format);
    if format.is_empty() || !STRING_FORMATS.contains(&normalized.as_str()) {
        return;
    }
    if !format_accepts(&normalized, s) {
        out.push(type_invalid(path, format, s));
    }
}

/// The numeric type and format the number validator checks ranges against (only when the
/// schema has exactly one numeric type).
fn numeric_kind(node: &Node) -> (&'static str, &'static str) {
    let format = node.format.as_str();
    match node.types.as_slice() {
        [t] if t == "integer" => match format {
            "int32" => ("integer", "int32"),
            "int64" => ("integer", "int64"),
            _ => ("integer", ""),
        },
        [t] if t == "number" => match format {
            "float" => ("number", "float"),
            "double" => ("number", "double"),
            _ => ("number", ""),
        },
        _ => ("", ""),
    }
}

/// go-openapi's `IsValueValidAgainstRange`: whether a number fits the type and format.
fn range_error(num: Num, kind: (&str, &str), prefix: &str, path: &str) -> Option<String> {
    let (type_name, format) = kind;
    let text = match num {
        Num::Int(i) => i.to_string(),
        Num::Float(f) => format!("{f}"),
    };
    let fits = match (type_name, format) {
        ("integer", "int32") => text.parse::<i32>().is_ok(),
        ("integer", _) => text.parse::<i64>().is_ok(),
        (_, "float") => num.as_f64().abs() <= f64::from(f32::MAX),
        _ => true,
    };
    if fits {
        None
    } else if format.is_empty() {
        Some(format!(
            "{prefix} value must be of type {type_name} (default format) in {path}"
        ))
    } else {
        Some(format!(
            "{prefix} value must be of type {type_name} with format {format} in {path}"
        ))
    }
}

fn num_value(num: Num) -> Value {
    match num {
        Num::Int(i) => Value::from(i),
        Num::Float(f) => Value::from(f),
    }
}

fn check_number(node: &Node, num: Num, path: &str, out: &mut Vec<Cause>) {
    let kind = numeric_kind(node);
    if let Some(message) = range_error(num, kind, "Checked", path) {
        out.push(unplaced(&message));
    }
    if let Some(factor) = node.multiple_of {
        check_multiple_of(num, factor, kind, path, out);
    }
    if let Some(min) = node.minimum {
        let bound = Bound {
            limit: min,
            exclusive: node.exclusive_minimum,
            upper: false,
        };
        check_bound(num, bound, kind, path, out);
    }
    if let Some(max) = node.maximum {
        let bound = Bound {
            limit: max,
            exclusive: node.exclusive_maximum,
            upper: true,
        };
        check_bound(num, bound, kind, path, out);
    }
}

fn check_multiple_of(num: Num, factor: f64, kind: (&str, &str), path: &str, out: &mut Vec<Cause>) {
    let boundary = range_error(Num::Float(factor), kind, "MultipleOf", path);
    let native = if boundary.is_none() {
        num
    } else {
        Num::Float(num.as_f64())
    };
    if let Some(message) = boundary {
        out.push(unplaced(&message));
    }
    match native {
        Num::Int(data) => {
            // Go converts the factor with int64(...): truncation.
            let whole = factor as i64;
            if whole <= 0 {
                let detail =
                    format!("factor MultipleOf declared for {path} must be positive: {whole}");
                out.push(invalid(path, &Value::from(whole), &detail));
            } else if data % whole != 0 {
                let detail = format!("{path} in body should be a multiple of {whole}");
                out.push(invalid(path, &Value::from(data), &detail));
            }
        }
        Num::Float(data) => {
            if factor <= 0.0 {
                let detail = format!(
                    "factor MultipleOf declared for {path} must be positive: {}",
                    go_float(factor)
                );
                out.push(invalid(path, &Value::from(factor), &detail));
                return;
            }
            let ratio = if factor < 1.0 {
                1.0 / factor * data
            } else {
                data / factor
            };
            if !is_json_integer(ratio) {
                let detail = format!(
                    "{path} in body should be a multiple of {}",
                    go_float(factor)
                );
                out.push(invalid(path, &Value::from(data), &detail));
            }
        }
    }
}

/// A `minimum` or `maximum`.
#[derive(Clone, Copy)]
struct Bound {
    limit: f64,
    exclusive: bool,
    upper: bool,
}

fn check_bound(num: Num, bound: Bound, kind: (&str, &str), path: &str, out: &mut Vec<Cause>) {
    let prefix = if bound.upper {
        "Maximum boundary"
    } else {
        "Minimum boundary"
    };
    let boundary = range_error(Num::Float(bound.limit), kind, prefix, path);
    let native = if boundary.is_none() {
        num
    } else {
        Num::Float(num.as_f64())
    };
    if let Some(message) = boundary {
        out.push(unplaced(&message));
    }
    let (violated, shown) = match native {
        Num::Int(data) => {
            // Go compares integers with int64(bound): truncation.
            let limit = bound.limit as i64;
            (crosses(data.cmp(&limit), bound), limit.to_string())
        }
        Num::Float(data) => {
            let ordering = data
                .partial_cmp(&bound.limit)
                .unwrap_or(std::cmp::Ordering::Equal);
            (crosses(ordering, bound), go_float(bound.limit))
        }
    };
    if violated {
        let relation = match (bound.upper, bound.exclusive) {
            (true, false) => "less than or equal to",
            (true, true) => "less than",
            (false, false) => "greater than or equal to",
            (false, true) => "greater than",
        };
        let detail = format!("{path} in body should be {relation} {shown}");
        out.push(invalid(path, &num_value(native), &detail));
    }
}

fn crosses(ordering: std::cmp::Ordering, bound: Bound) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    match (ordering, bound.upper) {
        (Greater, true) | (Less, false) => true,
        (Equal, _) => bound.exclusive,
        _ => false,
    }
}

fn check_array(node: &Node, items: &[Value], path: &str, out: &mut Vec<Cause>) {
    if let Some(item_schema) = node.items.as_deref() {
        for (i, item) in items.iter().enumerate() {
            validate_value(item_schema, item, &format!("{path}[{i}]"), out);
        }
    }
    let size = items.len();
    let count = i64::try_from(size).unwrap_or(i64::MAX);
    if let Some(min) = node.min_items.filter(|min| count < *min) {
        let detail = format!("{path} in body should have at least {min} items");
        out.push(invalid(path, &Value::from(count), &detail));
    }
    if let Some(max) = node.max_items.filter(|max| count > *max) {
        out.push(too_many(path, size, max));
    }
    if node.unique_items && !duplicate_indexes(items).is_empty() {
        let detail = format!("{path} in body shouldn't contain duplicates");
        out.push(invalid(path, &Value::String(String::new()), &detail));
    }
}

/// Go's conversion-based enum comparison, for the types JSON decoding produces.
fn enum_matches(data: &Value, allowed: &Value) -> bool {
    match (data, allowed) {
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Number(d), Value::Number(a)) => match (number_of(d), number_of(a)) {
            (Num::Int(d), Num::Int(a)) => d == a,
            // Go converts the value to the enum entry's type: float64 -> int64 truncates.
            (Num::Float(d), Num::Int(a)) => d as i64 == a,
            (d, Num::Float(a)) => d.as_f64() == a,
        },
        _ => data == allowed,
    }
}

fn check_enum(node: &Node, value: &Value, path: &str, out: &mut Vec<Cause>) {
    let Some(allowed) = &node.enumeration else {
        return;
    };
    if allowed.is_empty() || allowed.iter().any(|a| enum_matches(value, a)) {
        return;
    }
    out.push(not_supported(path, value, allowed));
}

fn check_object(node: &Node, map: &Map<String, Value>, path: &str, out: &mut Vec<Cause>) {
    let size = map.len();
    let count = i64::try_from(size).unwrap_or(i64::MAX);
    if let Some(min) = node.min_properties.filter(|min| count < *min) {
        let detail = format!("{path} in body should have at least {min} properties");
        out.push(invalid(path, &Value::from(count), &detail));
    }
    if let Some(max) = node.max_properties.filter(|max| count > *max) {
        out.push(too_many(path, size, max));
    }
    if let Some(additional) = &node.additional {
        let extra = map
            .iter()
            .filter(|(k, _)| !node.properties.contains_key(*k));
        for (key, child) in extra {
            if !additional.allows {
                let detail = format!("{path}.{key} in body is a forbidden property");
                out.push(invalid(path, &Value::String(key.clone()), &detail));
            } else if let Some(schema) = additional.schema.as_deref() {
                validate_value(schema, child, &format!("{path}.{key}"), out);
            }
        }
    }
    for (name, property) in &node.properties {
        if let Some(child) = map.get(name) {
            let child_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            validate_value(property, child, &child_path, out);
        }
    }
    for name in &node.required {
        if !map.contains_key(name) {
            out.push(required(&format!("{path}.{name}")));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Formats
// ---------------------------------------------------------------------------------------------

/// A regex compiled once; `None` only if the literal were invalid (then nothing matches).
struct Lazy(LazyLock<Option<Regex>>);

impl Lazy {
    const fn new(init: fn() -> Option<Regex>) -> Self {
        Self(LazyLock::new(init))
    }

    fn is_match(&self, s: &str) -> bool {
        self.0.as_ref().is_some_and(|re| re.is_match(s))
    }
}

static BASE64: Lazy = Lazy::new(|| {
    Regex::new(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$")
        .ok()
});
static DATE: Lazy = Lazy::new(|| Regex::new(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$").ok());
static TIME: Lazy = Lazy::new(|| {
    Regex::new(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$").ok()
});
static UUID: Lazy = Lazy::new(|| {
    Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$").ok()
});
static UUID3: Lazy = Lazy::new(|| {
    Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$").ok()
});
static UUID4: Lazy = Lazy::new(|| {
    Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
        .ok()
});
static UUID5: Lazy = Lazy::new(|| {
    Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
        .ok()
});
static HOSTNAME: Lazy = Lazy::new(|| {
    Regex::new(
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9\-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
    )
    .ok()
});
static HEXCOLOR: Lazy = Lazy::new(|| Regex::new(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$").ok());
static RGBCOLOR: Lazy = Lazy::new(|| {
    let channel = r"\s*(0|[1-9][0-9]?|1[0-9][0-9]?|2[0-4][0-9]|25[0-5])\s*";
    Regex::new(&format!(r"^rgb\({channel},{channel},{channel}\)$")).ok()
});
static SSN: Lazy = Lazy::new(|| Regex::new(r"^[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}$").ok());
static SHORT_NAME: Lazy = Lazy::new(|| Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").ok());
static LONG_NAME: Lazy = Lazy::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").ok()
});
static DNS1035: Lazy = Lazy::new(|| Regex::new(r"^[a-z]([-a-z0-9]*[a-z0-9])?$").ok());

/// Whether a string satisfies a (normalised) format; unchecked formats accept everything.
fn format_accepts(normalized: &str, s: &str) -> bool {
    match normalized {
        "byte" => BASE64.is_match(s),
        "date" => is_date(s),
        "datetime" => is_date_time(s),
        "uuid" => UUID.is_match(s),
        "uuid3" => UUID3.is_match(s),
        "uuid4" => UUID4.is_match(s),
        "uuid5" => UUID5.is_match(s),
        "hostname" => is_hostname(s),
        "ipv4" => is_ipv4(s),
        "ipv6" => s.contains(':') && s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => is_cidr(s),
        "hexcolor" => HEXCOLOR.is_match(s),
        "rgbcolor" => RGBCOLOR.is_match(s),
        "ssn" => SSN.is_match(s),
        "k8sshortname" => s.len() <= 63 && SHORT_NAME.is_match(s),
        "k8slongname" => s.len() <= 253 && LONG_NAME.is_match(s),
        _ => true,
    }
}

/// A full-date (`2006-01-02`) naming a real day.
fn is_date(s: &str) -> bool {
    if !DATE.is_match(s) {
        return false;
    }
    let mut parts = s.split('-').map(|p| p.parse::<u32>().unwrap_or(0));
    let (year, month, day) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    (1..=days).contains(&day)
}

/// go-openapi's `IsDateTime`: a date, `T` (any case), then `hh:mm:ss[.frac](Z|±hh:mm)`.
fn is_date_time(s: &str) -> bool {
    if s.len() < 4 {
        return false;
    }
    let lower = s.to_lowercase();
    let mut parts = lower.split('t');
    let (Some(date), Some(time)) = (parts.next(), parts.next()) else {
        return false;
    };
    if !is_date(date) || !TIME.is_match(time) {
        return false;
    }
    let field = |i: usize| time.get(i..i + 2).unwrap_or("99");
    field(0) <= "23" && field(3) <= "59" && field(6) <= "59"
}

fn is_hostname(s: &str) -> bool {
    HOSTNAME.is_match(s) && s.len() <= 255 && s.split('.').all(|label| label.len() <= 63)
}

/// Go's lenient IPv4 parsing (leading zeros allowed), or an IPv6 form written with dots.
fn is_ipv4(s: &str) -> bool {
    sloppy_ipv4(s) || (s.contains('.') && s.parse::<std::net::Ipv6Addr>().is_ok())
}

fn sloppy_ipv4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u64>().is_ok_and(|n| n <= 255)
        })
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, prefix)) = s.split_once('/') else {
        return false;
    };
    let max = if sloppy_ipv4(ip) {
        32
    } else if ip.parse::<std::net::Ipv6Addr>().is_ok() {
        128
    } else {
        return false;
    };
    !prefix.is_empty()
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && prefix.parse::<u32>().is_ok_and(|n| n <= max)
}

// ---------------------------------------------------------------------------------------------
// Embedded resources and list types (the custom-resource strategy's extra checks)
// ---------------------------------------------------------------------------------------------

/// Child, index and key steps of an apimachinery `field.Path`.
fn child_field(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn validate_embedded(node: &Node, value: &Value, path: &str, out: &mut Vec<Cause>) {
    match value {
        Value::Object(map) => {
            if node.embedded {
                check_embedded_type_meta(map, path, out);
            }
            for (key, child) in map {
                if let Some(property) = node.properties.get(key) {
                    validate_embedded(property, child, &child_field(path, key), out);
                } else if let Some(schema) =
                    node.additional.as_ref().and_then(|a| a.schema.as_deref())
                {
                    validate_embedded(schema, child, &format!("{path}[{key}]"), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = node.items.as_deref() {
                for (i, item) in items.iter().enumerate() {
                    validate_embedded(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

/// `apiVersion` and `kind` of an embedded resource (its `metadata` is not checked here).
fn check_embedded_type_meta(map: &Map<String, Value>, path: &str, out: &mut Vec<Cause>) {
    for key in ["apiVersion", "kind"] {
        if !map.contains_key(key) {
            out.push(cause(
                "FieldValueRequired",
                child_field(path, key),
                "Required value".to_owned(),
            ));
        }
    }
    if let Some(api_version) = map.get("apiVersion") {
        let field = child_field(path, "apiVersion");
        match api_version.as_str() {
            None => out.push(invalid_at(field, api_version, "must be a string")),
            Some("") => out.push(invalid_at(field, api_version, "must not be empty")),
            Some(s) if s != "/" && s.matches('/').count() > 1 => {
                let detail = format!("unexpected GroupVersion string: {s}");
                out.push(invalid_at(field, api_version, &detail));
            }
            Some(_) => {}
        }
    }
    if let Some(kind) = map.get("kind") {
        let field = child_field(path, "kind");
        match kind.as_str() {
            None => out.push(invalid_at(field, kind, "must be a string")),
            Some("") => out.push(invalid_at(field, kind, "must not be empty")),
            Some(s) => {
                let problems = dns1035_label_problems(&s.to_lowercase());
                if !problems.is_empty() {
                    let detail = format!(
                        "may have mixed case, but should otherwise match: {}",
                        problems.join(",")
                    );
                    out.push(invalid_at(field, kind, &detail));
                }
            }
        }
    }
}

fn dns1035_label_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > 63 {
        problems.push("must be no more than 63 characters".to_owned());
    }
    if !DNS1035.is_match(value) {
        problems.push(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
                .to_owned(),
        );
    }
    problems
}

fn validate_lists_in_object(
    node: &Node,
    map: &Map<String, Value>,
    path: &str,
    out: &mut Vec<Cause>,
) {
    if let Some(schema) = node.additional.as_ref().and_then(|a| a.schema.as_deref()) {
        for (key, child) in map {
            validate_lists(schema, child, &format!("{path}[{key}]"), out);
        }
    }
    for (key, child) in map {
        if let Some(property) = node.properties.get(key) {
            validate_lists(property, child, &child_field(path, key), out);
        }
    }
}

fn validate_lists(node: &Node, value: &Value, path: &str, out: &mut Vec<Cause>) {
    match value {
        Value::Array(items) => validate_list(node, items, path, out),
        Value::Object(map) => validate_lists_in_object(node, map, path, out),
        _ => {}
    }
}

fn validate_list(node: &Node, items: &[Value], path: &str, out: &mut Vec<Cause>) {
    match &node.list_type {
        Some(ListType::Set) => {
            for i in duplicate_indexes(items) {
                out.push(duplicate(format!("{path}[{i}]"), &items[i]));
            }
        }
        Some(ListType::Map { keys }) => validate_list_map(keys, items, path, out),
        _ => {}
    }
    if let Some(item_schema) = node.items.as_deref() {
        for (i, item) in items.iter().enumerate() {
            validate_lists(item_schema, item, &format!("{path}[{i}]"), out);
        }
    }
}

/// The identity of a list element for uniqueness: Go compares scalars by type and value and
/// compound values by their JSON encoding.
fn identity(value: &Value) -> String {
    match value {
        Value::Number(n) => match number_of(n) {
            Num::Int(i) => format!("i:{i}"),
            Num::Float(f) => format!("f:{}", f.to_bits()),
        },
        Value::String(s) => format!("s:{s}"),
        Value::Bool(b) => format!("b:{b}"),
        Value::Null => "n".to_owned(),
        compound => format!("c:{}", go_json(compound)),
    }
}

/// Indexes of the second occurrence of each repeated element.
fn duplicate_indexes(items: &[Value]) -> Vec<usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut repeated = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let times = seen.entry(identity(item)).or_insert(0);
        *times += 1;
        if *times == 2 {
            repeated.push(i);
        }
    }
    repeated
}

fn validate_list_map(keys: &[String], items: &[Value], path: &str, out: &mut Vec<Cause>) {
    for (i, item) in items.iter().enumerate() {
        if !item.is_null() && !item.is_object() {
            let detail = "must be an object for an array of list-type map";
            out.push(invalid_at(format!("{path}[{i}]"), item, detail));
            return;
        }
    }
    if items.len() <= 1 {
        return;
    }
    // The key fields present in each item ({} for a null item or missing keys).
    let key_maps: Vec<Value> = items
        .iter()
        .map(|item| {
            let present = keys
                .iter()
                .filter_map(|k| Some((k.clone(), item.get(k)?.clone())))
                .collect::<Map<String, Value>>();
            Value::Object(present)
        })
        .collect();
    for i in duplicate_indexes(&key_maps) {
        out.push(duplicate(format!("{path}[{i}]"), &key_maps[i]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(schema: Value) -> StructuralSchema {
        match StructuralSchema::compile(&schema) {
            Ok(compiled) => compiled,
            Err(e) => panic!("schema should compile: {e}"),
        }
    }

    /// A root schema with `spec` holding the given properties.
    fn spec_schema(properties: Value) -> StructuralSchema {
        compile(json!({
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {"type": "object", "properties": properties},
            },
        }))
    }

    fn with_spec(spec: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "a"}, "spec": spec})
    }

    fn causes(schema: &StructuralSchema, spec: Value) -> Vec<Cause> {
        schema.validate(&with_spec(spec))
    }

    fn one(reason: &str, field: &str, message: &str) -> Vec<Cause> {
        vec![Cause {
            reason: reason.to_owned(),
            message: message.to_owned(),
            field: field.to_owned(),
        }]
    }

    fn compile_error(schema: Value) -> String {
        match StructuralSchema::compile(&schema) {
            Ok(_) => panic!("schema should not compile: {schema}"),
            Err(Error::BadRequest(message)) => message,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }

    // ----- compile ------------------------------------------------------------------------

    #[test]
    fn compile_rejects_unusable_schemas() {
        assert!(compile_error(json!("object")).contains("must be a JSON schema object"));
        assert!(compile_error(json!({"type": "string"})).contains("must be object at the root"));
        assert!(compile_error(json!({"properties": {}})).contains("must not be empty at the root"));
        let missing = compile_error(json!({"type": "object", "properties": {"a": {}}}));
        assert!(missing.contains(
            "openAPIV3Schema.properties[a].type: Required value: must not be empty for specified object fields"
        ));
        let strange =
            compile_error(json!({"type": "object", "properties": {"a": {"type": "strin"}}}));
        assert!(strange.contains("Unsupported value: \"strin\""));
        let array =
            compile_error(json!({"type": "object", "properties": {"a": {"type": "array"}}}));
        assert!(array.contains("properties[a].items: Required value: must be specified"));
        let tuple = json!({"type": "object", "properties": {"a": {"type": "array", "items": [{"type": "string"}]}}});
        assert!(compile_error(tuple).contains("must be a schema, but is an array"));
        let reference = json!({"type": "object", "properties": {"a": {"$ref": "#/x"}}});
        assert!(compile_error(reference).contains("'$ref' is not supported"));
        let pattern =
            json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "("}}});
        assert!(compile_error(pattern).contains("must be a valid regular expression"));
        let unique = json!({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string"}, "uniqueItems": true}}});
        assert!(compile_error(unique).contains("uniqueItems cannot be set to true"));
        let root_map = json!({"type": "object", "additionalProperties": {"type": "string"}});
        assert!(compile_error(root_map).contains("must not be used at the root"));
        let preserve_false =
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": false});
        assert!(compile_error(preserve_false).contains("must be true or undefined"));
    }

    #[test]
    fn compile_rejects_structure_inside_value_validations() {
        let typed = json!({"type": "object", "properties": {"a": {"type": "string", "anyOf": [{"type": "string"}]}}});
        assert!(
            compile_error(typed)
                .contains("properties[a].anyOf[0].type: Forbidden: must be empty to be structural")
        );
        let described = json!({"type": "object", "properties": {"a": {"type": "object", "allOf": [{"description": "x"}]}}});
        assert!(compile_error(described).contains("allOf[0].description: Forbidden"));
        let metadata = json!({"type": "object", "not": {"properties": {"metadata": {}}}});
        assert!(compile_error(metadata).contains("must not be specified in a nested context"));
    }

    #[test]
    fn compile_rejects_bad_extensions() {
        let list_type = json!({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "bag"}}});
        assert!(compile_error(list_type).contains("Unsupported value: \"bag\""));
        let no_keys = json!({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "object"}, "x-kubernetes-list-type": "map"}}});
        assert!(
            compile_error(no_keys).contains("must not be empty if x-kubernetes-list-type is map")
        );
        let unknown_key = json!({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "object", "properties": {"b": {"type": "string"}}}, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["c"]}}});
        assert!(
            compile_error(unknown_key).contains("entries must all be names of item properties")
        );
        let keys_without_map = json!({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "object", "properties": {"b": {"type": "string"}}}, "x-kubernetes-list-map-keys": ["b"]}}});
        assert!(
            compile_error(keys_without_map)
                .contains("must be map if x-kubernetes-list-map-keys is non-empty")
        );
        let map_type = json!({"type": "object", "properties": {"a": {"type": "object", "x-kubernetes-map-type": "loose"}}});
        assert!(compile_error(map_type).contains("Unsupported value: \"loose\""));
        let embedded = json!({"type": "object", "properties": {"a": {"type": "string", "x-kubernetes-embedded-resource": true}}});
        assert!(
            compile_error(embedded)
                .contains("must be object if x-kubernetes-embedded-resource is true")
        );
        let int_or_string = json!({"type": "object", "properties": {"a": {"x-kubernetes-int-or-string": true, "x-kubernetes-preserve-unknown-fields": true}}});
        assert!(
            compile_error(int_or_string)
                .contains("must be false if x-kubernetes-int-or-string is true")
        );
    }

    #[test]
    fn compile_accepts_map_type_and_cel_rules_without_evaluating_them() {
        let schema = spec_schema(json!({
            "labels": {"type": "object", "x-kubernetes-map-type": "atomic", "additionalProperties": {"type": "string"}},
            "replicas": {"type": "integer", "x-kubernetes-validations": [{"rule": "self > 100", "message": "big"}]},
        }));
        assert!(causes(&schema, json!({"labels": {"a": "b"}, "replicas": 1})).is_empty());
    }

    // ----- types ----------------------------------------------------------------------------

    #[test]
    fn type_mismatch_is_reported_like_the_api_server() {
        let schema = spec_schema(json!({"duration": {"type": "string"}}));
        assert_eq!(
            causes(&schema, json!({"duration": 5})),
            one(
                "FieldValueTypeInvalid",
                "spec.duration",
                "Invalid value: \"integer\": spec.duration in body must be of type string: \"integer\""
            )
        );
        assert!(causes(&schema, json!({"duration": "1h"})).is_empty());
    }

    #[test]
    fn each_json_type_is_named_in_mismatches() {
        let schema = spec_schema(json!({"s": {"type": "string"}}));
        for (value, name) in [
            (json!(true), "boolean"),
            (json!(1.5), "number"),
            (json!([]), "array"),
            (json!({}), "object"),
        ] {
            let found = causes(&schema, json!({"s": value}));
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(
                found[0].message,
                format!(
                    "Invalid value: \"{name}\": spec.s in body must be of type string: \"{name}\""
                )
            );
        }
        let object = spec_schema(
            json!({"o": {"type": "object"}, "a": {"type": "array", "items": {"type": "string"}}, "b": {"type": "boolean"}}),
        );
        assert_eq!(
            causes(&object, json!({"o": "x", "a": {}, "b": "true"})).len(),
            3
        );
    }

    #[test]
    fn integers_exclude_fractions_and_numbers_include_integers() {
        let schema = spec_schema(json!({"i": {"type": "integer"}, "n": {"type": "number"}}));
        assert!(causes(&schema, json!({"i": 3, "n": 3})).is_empty());
        assert!(causes(&schema, json!({"i": 3.0, "n": 2.5})).is_empty());
        let found = causes(&schema, json!({"i": 2.5}));
        assert_eq!(found[0].reason, "FieldValueTypeInvalid");
        assert_eq!(
            found[0].message,
            "Invalid value: \"number\": spec.i in body must be of type integer: \"number\""
        );
        // kube-openapi's range check adds a second, field-less cause.
        assert_eq!(
            found[1..],
            one(
                "FieldValueInvalid",
                "<nil>",
                "Invalid value: \"\": Checked value must be of type integer (default format) in spec.i"
            )
        );
    }

    #[test]
    fn int32_and_int64_formats_bound_integers() {
        let schema = spec_schema(
            json!({"small": {"type": "integer", "format": "int32"}, "big": {"type": "integer", "format": "int64"}}),
        );
        assert!(
            causes(
                &schema,
                json!({"small": 2_147_483_647, "big": 9_007_199_254_740_993_i64})
            )
            .is_empty()
        );
        assert_eq!(
            causes(&schema, json!({"small": 2_147_483_648_i64})),
            one(
                "FieldValueInvalid",
                "<nil>",
                "Invalid value: \"\": Checked value must be of type integer with format int32 in spec.small"
            )
        );
        assert_eq!(
            causes(&schema, json!({"small": -2_147_483_649_i64})).len(),
            1
        );
    }

    #[test]
    fn int_or_string_accepts_both_and_nothing_else() {
        let schema = spec_schema(json!({
            "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "bare": {"x-kubernetes-int-or-string": true},
        }));
        assert!(causes(&schema, json!({"port": 8080, "bare": "http"})).is_empty());
        assert!(causes(&schema, json!({"port": "http", "bare": 1})).is_empty());
        let found = causes(&schema, json!({"bare": true}));
        assert_eq!(
            found,
            one(
                "FieldValueTypeInvalid",
                "spec.bare",
                "Invalid value: \"boolean\": spec.bare in body must be of type integer,string: \"boolean\""
            )
        );
        let any_of = causes(&schema, json!({"port": false}));
        assert_eq!(any_of[0].reason, "FieldValueTypeInvalid");
        assert!(any_of.iter().any(|c| c.field == "<nil>"
            && c.message
                == "Invalid value: \"\": \"spec.port\" must validate at least one schema (anyOf)"));
    }

    #[test]
    fn nullable_allows_null_and_other_nulls_are_rejected_or_pruned() {
        let schema = spec_schema(json!({
            "maybe": {"type": "string", "nullable": true},
            "never": {"type": "string"},
            "list": {"type": "array", "items": {"type": "string"}},
        }));
        assert!(causes(&schema, json!({"maybe": null})).is_empty());
        assert_eq!(
            causes(&schema, json!({"list": ["a", null]})),
            one(
                "FieldValueTypeInvalid",
                "spec.list[1]",
                "Invalid value: \"null\": spec.list[1] in body must be of type string: \"null\""
            )
        );
        let mut object = with_spec(json!({"maybe": null, "never": null}));
        schema.prune(&mut object);
        assert_eq!(object["spec"], json!({"maybe": null}));
    }

    // ----- value validations -------------------------------------------------------------------

    #[test]
    fn required_properties_are_reported_missing() {
        let schema = spec_schema(json!({
            "issuerRef": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}},
        }));
        assert_eq!(
            causes(&schema, json!({"issuerRef": {}})),
            one(
                "FieldValueRequired",
                "spec.issuerRef.name",
                "Required value"
            )
        );
        let root = compile(
            json!({"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object"}}}),
        );
        assert_eq!(
            root.validate(&json!({"kind": "X"})),
            one("FieldValueRequired", "spec", "Required value")
        );
    }

    #[test]
    fn enums_list_the_supported_values() {
        let schema = spec_schema(json!({
            "algorithm": {"type": "string", "enum": ["RSA", "ECDSA"]},
            "size": {"type": "integer", "enum": [256, 384]},
        }));
        assert!(causes(&schema, json!({"algorithm": "RSA", "size": 384})).is_empty());
        assert_eq!(
            causes(&schema, json!({"algorithm": "DSA"})),
            one(
                "FieldValueNotSupported",
                "spec.algorithm",
                "Unsupported value: \"DSA\": supported values: \"RSA\", \"ECDSA\""
            )
        );
        assert_eq!(
            causes(&schema, json!({"size": 512})),
            one(
                "FieldValueNotSupported",
                "spec.size",
                "Unsupported value: 512: supported values: \"256\", \"384\""
            )
        );
    }

    #[test]
    fn minimum_and_maximum_bound_numbers() {
        let schema = spec_schema(json!({
            "percent": {"type": "integer", "minimum": 1, "maximum": 99},
            "open": {"type": "number", "minimum": 0, "exclusiveMinimum": true, "maximum": 1.5, "exclusiveMaximum": true},
        }));
        assert!(causes(&schema, json!({"percent": 1, "open": 1.25})).is_empty());
        assert!(causes(&schema, json!({"percent": 99})).is_empty());
        assert_eq!(
            causes(&schema, json!({"percent": 100})),
            one(
                "FieldValueInvalid",
                "spec.percent",
                "Invalid value: 100: spec.percent in body should be less than or equal to 99"
            )
        );
        assert_eq!(
            causes(&schema, json!({"percent": 0})),
            one(
                "FieldValueInvalid",
                "spec.percent",
                "Invalid value: 0: spec.percent in body should be greater than or equal to 1"
            )
        );
        assert_eq!(
            causes(&schema, json!({"open": 0})),
            one(
                "FieldValueInvalid",
                "spec.open",
                "Invalid value: 0: spec.open in body should be greater than 0"
            )
        );
        assert_eq!(
            causes(&schema, json!({"open": 1.5})),
            one(
                "FieldValueInvalid",
                "spec.open",
                "Invalid value: 1.5: spec.open in body should be less than 1.5"
            )
        );
    }

    #[test]
    fn multiple_of_requires_whole_ratios() {
        let schema = spec_schema(
            json!({"step": {"type": "integer", "multipleOf": 5}, "half": {"type": "number", "multipleOf": 0.5}}),
        );
        assert!(causes(&schema, json!({"step": 15, "half": 2.5})).is_empty());
        assert_eq!(
            causes(&schema, json!({"step": 7})),
            one(
                "FieldValueInvalid",
                "spec.step",
                "Invalid value: 7: spec.step in body should be a multiple of 5"
            )
        );
        assert_eq!(
            causes(&schema, json!({"half": 0.7})),
            one(
                "FieldValueInvalid",
                "spec.half",
                "Invalid value: 0.7: spec.half in body should be a multiple of 0.5"
            )
        );
    }

    #[test]
    fn string_lengths_count_characters() {
        let schema =
            spec_schema(json!({"name": {"type": "string", "minLength": 2, "maxLength": 4}}));
        assert!(causes(&schema, json!({"name": "ééé"})).is_empty());
        assert_eq!(
            causes(&schema, json!({"name": "abcde"})),
            one(
                "FieldValueTooLong",
                "spec.name",
                "Too long: may not be more than 4 bytes"
            )
        );
        assert_eq!(
            causes(&schema, json!({"name": "a"})),
            one(
                "FieldValueInvalid",
                "spec.name",
                "Invalid value: \"a\": spec.name in body should be at least 2 chars long"
            )
        );
    }

    #[test]
    fn patterns_use_go_semantics() {
        let schema = spec_schema(json!({
            "window": {"type": "string", "pattern": "^([0-9]+(\\.[0-9]+)?(s|m|h))+$"},
            "digits": {"type": "string", "pattern": "^\\d+$"},
            "class": {"type": "string", "pattern": "^[\\d[]+$"},
        }));
        assert!(
            causes(
                &schema,
                json!({"window": "1h30m", "digits": "42", "class": "4[2"})
            )
            .is_empty()
        );
        assert_eq!(
            causes(&schema, json!({"window": "90 minutes"})),
            one(
                "FieldValueInvalid",
                "spec.window",
                "Invalid value: \"90 minutes\": spec.window in body should match '^([0-9]+(\\.[0-9]+)?(s|m|h))+$'"
            )
        );
        // Go's \d is ASCII only: Arabic-Indic digits do not match.
        assert_eq!(causes(&schema, json!({"digits": "٤٢"})).len(), 1);
    }

    #[test]
    fn item_counts_are_bounded() {
        let schema = spec_schema(
            json!({"names": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2}}),
        );
        assert!(causes(&schema, json!({"names": ["a", "b"]})).is_empty());
        assert_eq!(
            causes(&schema, json!({"names": []})),
            one(
                "FieldValueInvalid",
                "spec.names",
                "Invalid value: 0: spec.names in body should have at least 1 items"
            )
        );
        assert_eq!(
            causes(&schema, json!({"names": ["a", "b", "c"]})),
            one(
                "FieldValueTooMany",
                "spec.names",
                "Too many: 3: must have at most 2 items"
            )
        );
    }

    #[test]
    fn property_counts_are_bounded() {
        let schema = spec_schema(
            json!({"labels": {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1, "maxProperties": 1}}),
        );
        assert!(causes(&schema, json!({"labels": {"a": "b"}})).is_empty());
        assert_eq!(
            causes(&schema, json!({"labels": {}})),
            one(
                "FieldValueInvalid",
                "spec.labels",
                "Invalid value: 0: spec.labels in body should have at least 1 properties"
            )
        );
        assert_eq!(
            causes(&schema, json!({"labels": {"a": "b", "c": "d"}})),
            one(
                "FieldValueTooMany",
                "spec.labels",
                "Too many: 2: must have at most 1 item"
            )
        );
    }

    #[test]
    fn items_are_validated_with_indexed_paths() {
        let schema = spec_schema(
            json!({"usages": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}}),
        );
        assert_eq!(
            causes(&schema, json!({"usages": ["a", "b", "c"]})),
            one(
                "FieldValueNotSupported",
                "spec.usages[2]",
                "Unsupported value: \"c\": supported values: \"a\", \"b\""
            )
        );
    }

    #[test]
    fn additional_properties_schema_validates_values() {
        let schema = spec_schema(
            json!({"labels": {"type": "object", "additionalProperties": {"type": "string"}}}),
        );
        assert!(causes(&schema, json!({"labels": {"app": "web"}})).is_empty());
        assert_eq!(
            causes(&schema, json!({"labels": {"app": 1}})),
            one(
                "FieldValueTypeInvalid",
                "spec.labels.app",
                "Invalid value: \"integer\": spec.labels.app in body must be of type string: \"integer\""
            )
        );
    }

    #[test]
    fn additional_properties_false_forbids_and_true_keeps_keys() {
        let schema = spec_schema(json!({
            "closed": {"type": "object", "additionalProperties": false},
            "open": {"type": "object", "additionalProperties": true},
        }));
        let mut object = with_spec(json!({"closed": {"x": 1}, "open": {"y": 2, "z": {"deep": 1}}}));
        schema.prune(&mut object);
        // Kept by pruning (their schema is absent, so objects below are emptied)...
        assert_eq!(
            object["spec"],
            json!({"closed": {"x": 1}, "open": {"y": 2, "z": {}}})
        );
        // ...and rejected by validation when additionalProperties is false.
        assert_eq!(
            schema.validate(&object),
            one(
                "FieldValueInvalid",
                "spec.closed",
                "Invalid value: \"x\": spec.closed.x in body is a forbidden property"
            )
        );
    }

    // ----- formats -------------------------------------------------------------------------

    #[test]
    fn byte_format_requires_padded_standard_base64() {
        let schema = spec_schema(json!({"request": {"type": "string", "format": "byte"}}));
        assert!(causes(&schema, json!({"request": "aGVsbG8="})).is_empty());
        assert!(causes(&schema, json!({"request": "aGk+"})).is_empty());
        for bad in ["aGVsbG8", "aGk-", "", "aGVs\nbG8=", "not base64!"] {
            let found = causes(&schema, json!({"request": bad}));
            assert_eq!(
                found,
                one(
                    "FieldValueTypeInvalid",
                    "spec.request",
                    &format!(
                        "Invalid value: {q}: spec.request in body must be of type byte: {q}",
                        q = go_quote(bad)
                    )
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn date_time_and_date_formats() {
        let schema = spec_schema(
            json!({"at": {"type": "string", "format": "date-time"}, "on": {"type": "string", "format": "date"}}),
        );
        for good in [
            "2024-02-29T23:59:59Z",
            "2024-01-01T00:00:00.123+02:00",
            "2024-01-01t10:00:00z",
        ] {
            assert!(causes(&schema, json!({"at": good})).is_empty(), "{good}");
        }
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01 10:00:00Z",
            "2024-01-01T10:00:00",
            "yesterday",
        ] {
            let found = causes(&schema, json!({"at": bad}));
            assert_eq!(found.len(), 1, "{bad}");
            assert!(
                found[0]
                    .message
                    .ends_with(&format!("must be of type date-time: {}", go_quote(bad)))
            );
        }
        assert!(causes(&schema, json!({"on": "2024-12-31"})).is_empty());
        assert_eq!(causes(&schema, json!({"on": "2024-13-01"})).len(), 1);
    }

    #[test]
    fn other_string_formats() {
        let schema = spec_schema(json!({
            "id": {"type": "string", "format": "uuid"},
            "ip": {"type": "string", "format": "ipv4"},
            "ip6": {"type": "string", "format": "ipv6"},
            "net": {"type": "string", "format": "cidr"},
            "host": {"type": "string", "format": "hostname"},
            "name": {"type": "string", "format": "k8s-short-name"},
            "mail": {"type": "string", "format": "email"},
        }));
        let good = json!({"id": "123E4567-e89b-12d3-a456-426614174000", "ip": "10.0.0.1", "ip6": "fd00::1",
            "net": "10.0.0.0/8", "host": "relay.example.com", "name": "relay-1", "mail": "unchecked"});
        assert!(causes(&schema, good).is_empty());
        let bad = json!({"id": "nope", "ip": "10.0.0.256", "ip6": "10.0.0.1", "net": "10.0.0.0/33",
            "host": "-bad-.example.com", "name": "Relay"});
        let found = causes(&schema, bad);
        let fields: Vec<&str> = found.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.host",
                "spec.id",
                "spec.ip",
                "spec.ip6",
                "spec.name",
                "spec.net"
            ]
        );
    }

    #[test]
    fn unsupported_formats_are_ignored() {
        let schema = spec_schema(
            json!({"a": {"type": "string", "format": "made-up"}, "b": {"type": "integer", "format": "byte"}}),
        );
        assert!(causes(&schema, json!({"a": "anything", "b": 3})).is_empty());
    }

    // ----- junctors ----------------------------------------------------------------------------

    #[test]
    fn any_of_reports_failure_and_the_closest_branch() {
        let schema = spec_schema(json!({
            "source": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                "anyOf": [{"required": ["a"]}, {"required": ["b"]}]},
        }));
        assert!(causes(&schema, json!({"source": {"b": "x"}})).is_empty());
        let found = causes(&schema, json!({"source": {}}));
        assert_eq!(
            found,
            vec![
                Cause {
                    reason: "FieldValueInvalid".into(),
                    message: "Invalid value: \"\": \"spec.source\" must validate at least one schema (anyOf)".into(),
                    field: "<nil>".into(),
                },
                Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: "spec.source.a".into(),
                },
            ]
        );
    }

    #[test]
    fn one_of_requires_exactly_one_branch() {
        let schema = spec_schema(json!({
            "source": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
        }));
        assert!(causes(&schema, json!({"source": {"a": "x"}})).is_empty());
        let both = causes(&schema, json!({"source": {"a": "x", "b": "y"}}));
        assert_eq!(
            both,
            one(
                "FieldValueInvalid",
                "<nil>",
                "Invalid value: \"\": \"spec.source\" must validate one and only one schema (oneOf). Found 2 valid alternatives"
            )
        );
        let none = causes(&schema, json!({"source": {}}));
        assert_eq!(none.len(), 2);
        assert!(none[0].message.ends_with("(oneOf). Found none valid"));
        assert_eq!(none[1].field, "spec.source.a");
    }

    #[test]
    fn all_of_and_not() {
        let schema = spec_schema(json!({
            "n": {"type": "integer", "allOf": [{"minimum": 1}, {"maximum": 5}]},
            "s": {"type": "string", "not": {"enum": ["forbidden"]}},
        }));
        assert!(causes(&schema, json!({"n": 3, "s": "fine"})).is_empty());
        let found = causes(&schema, json!({"n": 9}));
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].message,
            "Invalid value: 9: spec.n in body should be less than or equal to 5"
        );
        assert_eq!(
            found[1].message,
            "Invalid value: \"\": \"spec.n\" must validate all the schemas (allOf)"
        );
        assert_eq!(
            causes(&schema, json!({"s": "forbidden"})),
            one(
                "FieldValueInvalid",
                "<nil>",
                "Invalid value: \"\": \"spec.s\" must not validate the schema (not)"
            )
        );
    }

    // ----- list types --------------------------------------------------------------------------

    fn list_schema() -> StructuralSchema {
        spec_schema(json!({
            "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                "items": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}, "status": {"type": "string"},
                    "ports": {"type": "array", "items": {"type": "integer"}, "x-kubernetes-list-type": "atomic"}}}},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port", "protocol"],
                "items": {"type": "object", "properties": {"port": {"type": "integer"}, "protocol": {"type": "string"}}}},
            "byName": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}},
        }))
    }

    #[test]
    fn set_lists_reject_duplicates() {
        let schema = list_schema();
        assert!(causes(&schema, json!({"tags": ["a", "b"]})).is_empty());
        assert_eq!(
            causes(&schema, json!({"tags": ["a", "b", "a", "a"]})),
            one(
                "FieldValueDuplicate",
                "spec.tags[2]",
                "Duplicate value: \"a\""
            )
        );
        assert_eq!(
            causes(&schema, json!({"byName": {"x": ["q", "q"]}})),
            one(
                "FieldValueDuplicate",
                "spec.byName[x][1]",
                "Duplicate value: \"q\""
            )
        );
    }

    #[test]
    fn map_lists_reject_duplicate_keys() {
        let schema = list_schema();
        let ok = json!({"conditions": [{"type": "Ready", "status": "True"}, {"type": "Issuing", "status": "False"}]});
        assert!(causes(&schema, ok).is_empty());
        assert_eq!(
            causes(
                &schema,
                json!({"conditions": [{"type": "Ready"}, {"type": "Ready", "status": "False"}]})
            ),
            one(
                "FieldValueDuplicate",
                "spec.conditions[1]",
                "Duplicate value: {\"type\":\"Ready\"}"
            )
        );
        let multi = json!({"ports": [{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "UDP"}, {"protocol": "TCP", "port": 80}]});
        assert_eq!(
            causes(&schema, multi),
            one(
                "FieldValueDuplicate",
                "spec.ports[2]",
                "Duplicate value: {\"port\":80,\"protocol\":\"TCP\"}"
            )
        );
        let scalar = causes(&schema, json!({"ports": [{"port": 1}, "x"]}));
        assert!(scalar.iter().any(|c| c.field == "spec.ports[1]"
            && c.message
                == "Invalid value: \"x\": must be an object for an array of list-type map"));
    }

    #[test]
    fn list_type_at_finds_declared_lists() {
        let schema = list_schema();
        assert_eq!(schema.list_type_at(&["spec", "tags"]), Some(ListType::Set));
        assert_eq!(
            schema.list_type_at(&["spec", "conditions"]),
            Some(ListType::Map {
                keys: vec!["type".into()]
            })
        );
        assert_eq!(
            schema.list_type_at(&["spec", "ports"]),
            Some(ListType::Map {
                keys: vec!["port".into(), "protocol".into()]
            })
        );
        assert_eq!(
            schema.list_type_at(&["spec", "conditions", "ports"]),
            Some(ListType::Atomic)
        );
        assert_eq!(
            schema.list_type_at(&["spec", "byName", "anything"]),
            Some(ListType::Set)
        );
        assert_eq!(schema.list_type_at(&["spec"]), None);
        assert_eq!(schema.list_type_at(&["spec", "missing"]), None);
        assert_eq!(schema.list_type_at(&["spec", "tags", "deeper"]), None);
    }

    // ----- pruning -------------------------------------------------------------------------

    #[test]
    fn prune_removes_unknown_fields_at_every_level() {
        let schema = spec_schema(json!({
            "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "nested": {"type": "object", "properties": {"inner": {"type": "object", "properties": {"keep": {"type": "integer"}}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "object", "properties": {"v": {"type": "string"}}}},
        }));
        let mut object = json!({
            "apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "a", "whatever": 1},
            "unknownRoot": true,
            "spec": {
                "unknownSpec": 1,
                "items": [{"name": "a", "drop": 1}, {"drop": 2}],
                "nested": {"inner": {"keep": 1, "drop": 2}, "drop": 3},
                "labels": {"x": {"v": "1", "drop": 2}},
            },
            "status": {"anything": 1},
        });
        schema.prune(&mut object);
        assert_eq!(
            object,
            json!({
                "apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "a", "whatever": 1},
                "spec": {
                    "items": [{"name": "a"}, {}],
                    "nested": {"inner": {"keep": 1}},
                    "labels": {"x": {"v": "1"}},
                },
            })
        );
    }

    #[test]
    fn root_meta_fields_survive_even_when_undeclared() {
        let schema = compile(json!({"type": "object", "properties": {"spec": {"type": "object"}}}));
        let mut object = json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "n"}, "spec": {"x": 1}, "other": 1});
        schema.prune(&mut object);
        assert_eq!(
            object,
            json!({"apiVersion": "v1", "kind": "K", "metadata": {"name": "n"}, "spec": {}})
        );
    }

    #[test]
    fn preserve_unknown_fields_keeps_unknowns_but_prunes_declared_children() {
        let schema = spec_schema(json!({
            "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                "properties": {"typed": {"type": "object", "properties": {"a": {"type": "string"}}}}},
            "raw": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
        }));
        let mut object = with_spec(json!({
            "config": {"free": {"deep": [1, {"x": 2}]}, "typed": {"a": "1", "b": 2}},
            "raw": [{"anything": {"goes": true}}],
        }));
        schema.prune(&mut object);
        assert_eq!(
            object["spec"],
            json!({"config": {"free": {"deep": [1, {"x": 2}]}, "typed": {"a": "1"}}, "raw": [{"anything": {"goes": true}}]})
        );
        assert!(schema.validate(&object).is_empty());
    }

    #[test]
    fn embedded_resources_keep_their_type_and_object_meta() {
        let schema = spec_schema(json!({
            "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                "properties": {"spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}},
            "raw": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
        }));
        let mut object = with_spec(json!({
            "template": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"replicas": 1, "drop": true}, "drop": 1},
            "raw": {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}},
        }));
        schema.prune(&mut object);
        assert_eq!(
            object["spec"]["template"],
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}})
        );
        assert_eq!(object["spec"]["raw"]["data"], json!({"a": "b"}));
        assert!(schema.validate(&object).is_empty());
    }

    #[test]
    fn embedded_resources_need_api_version_and_kind() {
        let schema = spec_schema(json!({
            "raw": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
        }));
        let found = causes(&schema, json!({"raw": {"metadata": {}}}));
        assert_eq!(
            found,
            vec![
                Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: "spec.raw.apiVersion".into()
                },
                Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: "spec.raw.kind".into()
                },
            ]
        );
        let bad = causes(
            &schema,
            json!({"raw": {"apiVersion": "a/b/c", "kind": "Not_A_Kind"}}),
        );
        assert_eq!(bad.len(), 2);
        assert_eq!(
            bad[0].message,
            "Invalid value: \"a/b/c\": unexpected GroupVersion string: a/b/c"
        );
        assert!(bad[1].message.starts_with(
            "Invalid value: \"Not_A_Kind\": may have mixed case, but should otherwise match: a DNS-1035 label"
        ));
    }

    #[test]
    fn defaults_fill_missing_fields() {
        let schema = spec_schema(json!({
            "mode": {"type": "string", "default": "auto"},
            "limits": {"type": "object", "default": {}, "properties": {"cpu": {"type": "integer", "default": 1}}},
            "items": {"type": "array", "items": {"type": "object", "properties": {"weight": {"type": "integer", "default": 10}}}},
        }));
        let mut object = with_spec(json!({"mode": null, "items": [{}, {"weight": 2}]}));
        schema.prune(&mut object);
        schema.apply_defaults(&mut object);
        assert_eq!(
            object["spec"],
            json!({"mode": "auto", "limits": {"cpu": 1}, "items": [{"weight": 10}, {"weight": 2}]})
        );
    }

    // ----- Go formatting helpers --------------------------------------------------------------

    #[test]
    fn go_formatting_matches_fmt_and_encoding_json() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(100_000.0), "100000");
        assert_eq!(go_float(1_000_000.0), "1e+06");
        assert_eq!(go_float(0.000_01), "1e-05");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_quote("a\"b\\\n\u{1}"), "\"a\\\"b\\\\\\n\\x01\"");
        assert_eq!(
            go_json(&json!({"b": [1, 1.5, "<"], "a": null})),
            "{\"a\":null,\"b\":[1,1.5,\"\\u003c\"]}"
        );
        assert_eq!(go_json(&json!(1e21)), "1e+21");
    }

    // ----- properties ----------------------------------------------------------------------

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                (-1e9f64..1e9).prop_map(Value::from),
                "[a-z]{0,6}".prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                    prop::collection::btree_map(
                        prop_oneof![
                            Just("spec".to_owned()),
                            Just("tags".to_owned()),
                            Just("name".to_owned()),
                            "[a-z]{1,4}"
                        ],
                        inner,
                        0..4
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn prune_is_idempotent_and_validate_never_panics(value in json_value()) {
                let schema = list_schema();
                let mut object = json!({"apiVersion": "v1", "kind": "K", "spec": value});
                schema.prune(&mut object);
                let once = object.clone();
                schema.prune(&mut object);
                prop_assert_eq!(&once, &object);
                let _ = schema.validate(&object);
            }
        }
    }
}
