//! The JSONPath dialect of CRD printer columns (client-go's `util/jsonpath`, which
//! kube-apiserver evaluates each `additionalPrinterColumns[].jsonPath` with, missing keys
//! allowed), as a pure parser and evaluator over `serde_json::Value`.
//!
//! Supported, with client-go's results:
//! - fields `.a.b` (a `\` escapes the next character, e.g. `.metadata.labels.app\.kubernetes\.io/name`),
//!   `['key']`, and `.*` / `[*]` wildcards;
//! - indices and slices `[0]`, `[-1]`, `[1:3]`, `[::2]`, and unions `[0,2]`;
//! - recursive descent `..name`;
//! - filters `[?(@.type=="Ready")]` with `==`, `!=`, `<`, `>`, `<=`, `>=` between a path relative
//!   to the element (`@...`) and a literal (`"text"`, `'text'`, integers, floats, `true`,
//!   `false`) or another path, and existence filters `[?(@.reason)]`.
//!
//! Evaluation follows client-go where it matters for printer columns: a missing key yields no
//! result (not an error); `null` values are skipped by fields, indices and wildcards but make a
//! filter fail; an index out of range, indexing a non-array, or comparing values of different
//! kinds (an integer with a float, a string with a number, anything with `null`) is an error;
//! an empty slice stops the evaluation of the remaining inputs (a quirk of client-go kept on
//! purpose). kube-apiserver turns an error or an empty result into a `null` cell, and uses only
//! the first result otherwise.
//!
//! Not supported, as printer columns cannot use them meaningfully: text around the expression
//! (`{.a}x{.b}`, a parse error here) and `range` / `end` templates (bare words, which parse and
//! fail when evaluated).

use serde_json::{Number, Value};
use std::borrow::Cow;

/// A parsed printer-column JSONPath.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    nodes: Vec<Node>,
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// `.name` or `['name']`.
    Field(String),
    /// `.*` or `[*]` on objects.
    Wildcard,
    /// `..`: every container value below (and including) the current ones.
    Recursive,
    /// `[start:end:step]`, `[n]` (end derived as n+1), `[*]` (everything).
    Slice(Slice),
    /// `[a,b]`: each alternative evaluated on the same input, results concatenated.
    Union(Vec<Vec<Node>>),
    /// `[?(...)]`.
    Filter(Box<Filter>),
    /// A quoted string: one result, whatever the input.
    Text(String),
    /// An integer, float or boolean literal: one result per input.
    Literal(Value),
    /// A bare word other than `true`/`false`: evaluating it is an error, as in client-go.
    Identifier(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Slice {
    start: Option<i64>,
    end: Option<i64>,
    step: Option<i64>,
    /// `[n]`: the end is `n + 1`, and `[-1]` means the last element.
    single: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    left: Vec<Node>,
    /// `None` for an existence filter.
    operator: Option<String>,
    right: Vec<Node>,
}

impl JsonPath {
    /// Parses a printer column's `jsonPath` (e.g. `.status.conditions[?(@.type=="Ready")].status`).
    pub fn parse(path: &str) -> Result<Self, String> {
        Ok(Self {
            nodes: Parser::new(path).nodes()?,
        })
    }

    /// Every value the path selects in `data`, in client-go's order; an error where client-go
    /// fails (kube-apiserver then shows `null`).
    pub fn find<'a>(&self, data: &'a Value) -> Result<Vec<Cow<'a, Value>>, String> {
        eval_list(vec![Cow::Borrowed(data)], &self.nodes)
    }

    /// The value a printer column shows: the first result, `None` when there is none or the
    /// evaluation fails.
    pub fn first<'a>(&self, data: &'a Value) -> Option<Cow<'a, Value>> {
        self.find(data).ok()?.into_iter().next()
    }
}

// ---------- parsing ----------

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

fn is_terminator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\r' | '\n' | '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}'
    )
}

fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// The whole input as a list of nodes.
    fn nodes(&mut self) -> Result<Vec<Node>, String> {
        let mut nodes = Vec::new();
        loop {
            let rest = self.rest();
            if rest.starts_with("[?(") {
                self.pos += 3;
                nodes.push(self.filter()?);
                continue;
            }
            if rest.starts_with("..") {
                if nodes.last() == Some(&Node::Recursive) {
                    return Err("invalid multiple recursive descent".into());
                }
                self.pos += 2;
                nodes.push(Node::Recursive);
                if self.peek().is_some_and(is_alphanumeric) {
                    nodes.push(self.field());
                }
                continue;
            }
            let Some(c) = self.bump() else {
                return Ok(nodes);
            };
            match c {
                ' ' | '@' | '$' => {}
                '[' => nodes.extend(self.bracket()?),
                '"' | '\'' => nodes.push(Node::Text(self.quoted(c)?)),
                '.' => nodes.push(self.field()),
                '+' | '-' => {
                    self.pos -= 1;
                    nodes.push(self.number()?);
                }
                c if c.is_ascii_digit() => {
                    self.pos -= c.len_utf8();
                    nodes.push(self.number()?);
                }
                c if is_alphanumeric(c) => {
                    self.pos -= c.len_utf8();
                    let word = self.word();
                    nodes.push(match word {
                        "true" => Node::Literal(Value::Bool(true)),
                        "false" => Node::Literal(Value::Bool(false)),
                        other => Node::Identifier(other.to_string()),
                    });
                }
                '\r' | '\n' => return Err("unclosed action".into()),
                other => return Err(format!("unrecognized character in action: {other:?}")),
            }
        }
    }

    /// Characters up to the next terminator.
    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(|c| !is_terminator(c)) {
            self.bump();
        }
        &self.text[start..self.pos]
    }

    /// A field name after `.`: up to an unescaped terminator, backslashes removed.
    fn field(&mut self) -> Node {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == '\\' {
                self.bump();
                self.bump();
            } else if is_terminator(c) {
                break;
            } else {
                self.bump();
            }
        }
        let raw = &self.text[start..self.pos];
        if raw == "*" {
            Node::Wildcard
        } else {
            Node::Field(raw.replace('\\', ""))
        }
    }

    /// An integer (if it parses as one) or a float, with an optional sign.
    fn number(&mut self) -> Result<Node, String> {
        let start = self.pos;
        if matches!(self.peek(), Some('+' | '-')) {
            self.bump();
        }
        while self.peek().is_some_and(|c| c == '.' || c.is_ascii_digit()) {
            self.bump();
        }
        let text = &self.text[start..self.pos];
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Node::Literal(Value::from(i)));
        }
        text.parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(|n| Node::Literal(Value::Number(n)))
            .ok_or_else(|| format!("cannot parse number {text}"))
    }

    /// A quoted string (the opening quote consumed), with backslash escapes.
    fn quoted(&mut self, quote: char) -> Result<String, String> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None | Some('\n') => return Err("unterminated quoted string".into()),
                Some(c) if c == quote => return Ok(out),
                Some('\\') => match self.bump() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(c @ ('\\' | '"' | '\'')) => out.push(c),
                    Some('u') => {
                        let hex: String = (0..4).filter_map(|_| self.bump()).collect();
                        let c = u32::from_str_radix(&hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("invalid escape \\u{hex}"))?;
                        out.push(c);
                    }
                    other => return Err(format!("invalid escape {other:?}")),
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// What is inside `[...]` (the `[` consumed).
    fn bracket(&mut self) -> Result<Vec<Node>, String> {
        let start = self.pos;
        loop {
            match self.bump() {
                None | Some('\n') => return Err("unterminated array".into()),
                Some(']') => break,
                Some(_) => {}
            }
        }
        let inner = &self.text[start..self.pos - 1];
        let inner = if inner == "*" { ":" } else { inner };
        if inner.contains(',') {
            let mut alternatives = Vec::new();
            for part in inner.split(',') {
                let part = format!("[{}]", part.trim_matches(' '));
                alternatives.push(Parser::new(&part).nodes()?);
            }
            return Ok(vec![Node::Union(alternatives)]);
        }
        if let Some(key) = inner
            .strip_prefix('\'')
            .and_then(|k| k.strip_suffix('\''))
            .filter(|k| !k.contains('\''))
        {
            // client-go parses `['a.b']` as the path `.a.b`.
            return Parser::new(&format!(".{key}")).nodes();
        }
        Ok(vec![Node::Slice(parse_slice(inner)?)])
    }

    /// A filter (the `[?(` consumed): up to the `)` outside quotes, then `]`.
    fn filter(&mut self) -> Result<Node, String> {
        let start = self.pos;
        let mut quote: Option<char> = None;
        let mut previous = '\0';
        loop {
            let c = self
                .bump()
                .filter(|c| *c != '\n')
                .ok_or("unterminated filter")?;
            match (c, quote) {
                ('"' | '\'', None) => quote = Some(c),
                (c, Some(q)) if c == q && previous != '\\' => quote = None,
                (')', None) => break,
                _ => {}
            }
            previous = c;
        }
        let inner = &self.text[start..self.pos - 1];
        if self.bump() != Some(']') {
            return Err("unclosed array expect ]".into());
        }
        // client-go splits on the first run of operator characters: `left op right`, where
        // `left` is not empty and `right` is not empty; otherwise an existence test.
        let split = inner
            .find(['!', '<', '>', '='])
            .filter(|i| *i > 0)
            .and_then(|i| {
                let op_len = inner[i..]
                    .find(|c| !matches!(c, '!' | '<' | '>' | '='))
                    .unwrap_or(inner.len() - i);
                let right = &inner[i + op_len..];
                (!right.is_empty()).then(|| (&inner[..i], &inner[i..i + op_len], right))
            });
        let filter = match split {
            Some((left, operator, right)) => Filter {
                left: Parser::new(left).nodes()?,
                operator: Some(operator.to_string()),
                right: Parser::new(right).nodes()?,
            },
            None => Filter {
                left: Parser::new(inner).nodes()?,
                operator: None,
                right: Vec::new(),
            },
        };
        Ok(Node::Filter(Box::new(filter)))
    }
}

/// `start:end:step` (each part optional, `end` and `step` with their colon).
fn parse_slice(text: &str) -> Result<Slice, String> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() > 3
        || !parts.iter().all(|p| {
            let digits = p.strip_prefix('-').unwrap_or(p);
            digits.chars().all(|c| c.is_ascii_digit())
        })
    {
        return Err(format!("invalid array index {text}"));
    }
    let number = |p: &str| -> Result<Option<i64>, String> {
        if p.is_empty() {
            return Ok(None);
        }
        p.parse()
            .map(Some)
            .map_err(|_| format!("array index {p} is not a number"))
    };
    let start = number(parts[0])?;
    if parts.len() == 1 {
        return Ok(Slice {
            start,
            end: Some(start.unwrap_or(0) + 1),
            step: None,
            single: true,
        });
    }
    Ok(Slice {
        start,
        end: number(parts[1])?,
        step: parts.get(2).map(|p| number(p)).transpose()?.flatten(),
        single: false,
    })
}

// ---------- evaluation ----------

type Values<'a> = Vec<Cow<'a, Value>>;

/// A borrowed child of a `Cow` value: borrowed from the data when the parent is, owned otherwise.
fn child<'a>(
    parent: &Cow<'a, Value>,
    pick: impl Fn(&Value) -> Option<&Value>,
) -> Option<Cow<'a, Value>> {
    match parent {
        Cow::Borrowed(v) => pick(v).map(Cow::Borrowed),
        Cow::Owned(v) => pick(v).cloned().map(Cow::Owned),
    }
}

/// Every child of a value: object members, array elements, and a string's bytes (client-go
/// walks strings byte by byte).
fn children<'a>(value: &Cow<'a, Value>) -> Values<'a> {
    match value.as_ref() {
        Value::Object(map) => map
            .keys()
            .filter_map(|k| child(value, |v| v.get(k)))
            .collect(),
        Value::Array(items) => (0..items.len())
            .filter_map(|i| child(value, |v| v.get(i)))
            .collect(),
        Value::String(s) => s.bytes().map(|b| Cow::Owned(Value::from(b))).collect(),
        _ => Vec::new(),
    }
}

fn eval_list<'a>(input: Values<'a>, nodes: &[Node]) -> Result<Values<'a>, String> {
    nodes
        .iter()
        .try_fold(input, |current, node| eval(current, node))
}

fn eval<'a>(input: Values<'a>, node: &Node) -> Result<Values<'a>, String> {
    match node {
        Node::Field(name) => Ok(input
            .iter()
            .filter(|v| !v.is_null())
            .filter_map(|v| child(v, |v| v.as_object().and_then(|m| m.get(name))))
            .collect()),
        Node::Wildcard => Ok(input
            .iter()
            .filter(|v| !v.is_null())
            .flat_map(children)
            .collect()),
        Node::Recursive => {
            let mut out = Vec::new();
            recurse(&input, &mut out);
            Ok(out)
        }
        Node::Slice(slice) => eval_slice(input, slice),
        Node::Union(alternatives) => {
            let mut out = Vec::new();
            for alternative in alternatives {
                out.extend(eval_list(input.clone(), alternative)?);
            }
            Ok(out)
        }
        Node::Filter(filter) => eval_filter(input, filter),
        Node::Text(text) => Ok(vec![Cow::Owned(Value::String(text.clone()))]),
        Node::Literal(value) => Ok(input.iter().map(|_| Cow::Owned(value.clone())).collect()),
        Node::Identifier(word) => Err(format!("unrecognized identifier {word}")),
    }
}

/// Pre-order: each non-null value with children, then what is below it.
fn recurse<'a>(input: &[Cow<'a, Value>], out: &mut Values<'a>) {
    for value in input.iter().filter(|v| !v.is_null()) {
        let below = children(value);
        if below.is_empty() {
            continue;
        }
        out.push(value.clone());
        recurse(&below, out);
    }
}

fn eval_slice<'a>(input: Values<'a>, slice: &Slice) -> Result<Values<'a>, String> {
    let mut out = Vec::new();
    for value in input.iter().filter(|v| !v.is_null()) {
        let Some(items) = value.as_array() else {
            return Err(format!("{} is not array or slice", type_name(value)));
        };
        let len = items.len() as i64;
        let mut start = slice.start.unwrap_or(0);
        if start < 0 {
            start += len;
        }
        let mut end = slice.end.unwrap_or(len);
        if end < 0 || (end == 0 && slice.single) {
            end += len;
        }
        if start == end {
            // client-go returns what it has so far: later inputs are not looked at.
            return Ok(out);
        }
        if start >= len || start < 0 {
            return Err(format!(
                "array index out of bounds: index {start}, length {len}"
            ));
        }
        if end > len || end < 0 {
            return Err(format!(
                "array index out of bounds: index {}, length {len}",
                end - 1
            ));
        }
        if start > end {
            return Err(format!(
                "starting index {start} is greater than ending index {end}"
            ));
        }
        let step = match slice.step {
            Some(step) if step <= 0 => return Err("step must be > 0".into()),
            Some(step) => step as usize,
            None => 1,
        };
        out.extend(
            (start as usize..end as usize)
                .step_by(step)
                .filter_map(|i| child(value, |v| v.get(i))),
        );
    }
    Ok(out)
}

fn eval_filter<'a>(input: Values<'a>, filter: &Filter) -> Result<Values<'a>, String> {
    let mut out = Vec::new();
    for value in &input {
        let Some(items) = value.as_array() else {
            return Err(format!(
                "{} is not array or slice and cannot be filtered",
                type_name(value)
            ));
        };
        for i in 0..items.len() {
            let Some(element) = child(value, |v| v.get(i)) else {
                continue;
            };
            let lefts = eval_list(vec![element.clone()], &filter.left);
            let Some(operator) = &filter.operator else {
                if lefts.is_ok_and(|l| !l.is_empty()) {
                    out.push(element);
                }
                continue;
            };
            let lefts = lefts?;
            let left = match lefts.as_slice() {
                [] => continue,
                [one] => one,
                _ => return Err("can only compare one element at a time".into()),
            };
            let rights = eval_list(vec![element.clone()], &filter.right)?;
            let right = match rights.as_slice() {
                [] => continue,
                [one] => one,
                _ => return Err("can only compare one element at a time".into()),
            };
            if compare(operator, left, right)? {
                out.push(element);
            }
        }
    }
    Ok(out)
}

/// The kind Go's template comparisons see: JSON integers are int64, other numbers float64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Float,
    String,
}

fn kind(value: &Value) -> Result<Kind, String> {
    match value {
        Value::Bool(_) => Ok(Kind::Bool),
        Value::Number(n) if n.is_i64() => Ok(Kind::Int),
        Value::Number(_) => Ok(Kind::Float),
        Value::String(_) => Ok(Kind::String),
        _ => Err("invalid type for comparison".into()),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() => "int64",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Go's text/template `eq`/`ne`/`lt`/`le`/`gt`/`ge` on two values of the same basic kind.
fn compare(operator: &str, left: &Value, right: &Value) -> Result<bool, String> {
    let (kl, kr) = (kind(left)?, kind(right)?);
    if kl != kr {
        return Err("incompatible types for comparison".into());
    }
    let equal = match kl {
        Kind::Bool => left.as_bool() == right.as_bool(),
        Kind::Int => left.as_i64() == right.as_i64(),
        Kind::Float => left.as_f64() == right.as_f64(),
        Kind::String => left.as_str() == right.as_str(),
    };
    let less = || -> Result<bool, String> {
        Ok(match kl {
            Kind::Bool => return Err("invalid type for comparison".into()),
            Kind::Int => left.as_i64() < right.as_i64(),
            Kind::Float => left.as_f64() < right.as_f64(),
            Kind::String => left.as_str() < right.as_str(),
        })
    };
    match operator {
        "==" => Ok(equal),
        "!=" => Ok(!equal),
        "<" => less(),
        "<=" => Ok(less()? || equal),
        ">" => Ok(!(less()? || equal)),
        ">=" => Ok(!less()?),
        other => Err(format!("unrecognized filter operator {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object() -> Value {
        json!({
            "metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "relay"}, "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"usages": ["client auth", "digital signature"], "replicas": 3, "ratio": 0.5, "nothing": null},
            "status": {
                "connected": true,
                "conditions": [
                    {"type": "Approved", "status": "True", "reason": "ByTest"},
                    {"type": "Ready", "status": "False", "reason": "Pending", "observedGeneration": 2},
                    {"type": "Extra", "status": "Unknown"}
                ],
                "nodes": [{"name": "n1", "ports": [1, 2]}, {"name": "n2", "ports": [3]}]
            }
        })
    }

    fn find(path: &str) -> Result<Vec<Value>, String> {
        let data = object();
        let parsed = JsonPath::parse(path)?;
        parsed
            .find(&data)
            .map(|found| found.into_iter().map(Cow::into_owned).collect())
    }

    fn first(path: &str) -> Option<Value> {
        let data = object();
        JsonPath::parse(path)
            .unwrap()
            .first(&data)
            .map(Cow::into_owned)
    }

    #[test]
    fn fields_and_escapes() {
        assert_eq!(first(".metadata.name"), Some(json!("a")));
        assert_eq!(first(".status.connected"), Some(json!(true)));
        assert_eq!(first(".spec.replicas"), Some(json!(3)));
        assert_eq!(
            first(r".metadata.labels.app\.kubernetes\.io/name"),
            Some(json!("relay"))
        );
        assert_eq!(first(".metadata['name']"), Some(json!("a")));
        // Missing keys are no result, not an error; a present null is a result.
        assert_eq!(find(".status.lastSeen"), Ok(vec![]));
        assert_eq!(find(".nope.deeper.still"), Ok(vec![]));
        assert_eq!(find(".spec.nothing"), Ok(vec![json!(null)]));
        // Fields of non-objects select nothing.
        assert_eq!(find(".metadata.name.first"), Ok(vec![]));
        // Whole sub-trees.
        assert_eq!(
            first(".spec.usages"),
            Some(json!(["client auth", "digital signature"]))
        );
        // `$` and `@` name the current object.
        assert_eq!(first("$.metadata.name"), Some(json!("a")));
    }

    #[test]
    fn indices_slices_wildcards_and_unions() {
        assert_eq!(first(".spec.usages[0]"), Some(json!("client auth")));
        assert_eq!(first(".spec.usages[-1]"), Some(json!("digital signature")));
        assert_eq!(
            find(".spec.usages[*]"),
            Ok(vec![json!("client auth"), json!("digital signature")])
        );
        assert_eq!(
            find(".status.conditions[*].type"),
            Ok(vec![json!("Approved"), json!("Ready"), json!("Extra")])
        );
        assert_eq!(
            find(".status.conditions[0:2].type"),
            Ok(vec![json!("Approved"), json!("Ready")])
        );
        assert_eq!(
            find(".status.conditions[::2].type"),
            Ok(vec![json!("Approved"), json!("Extra")])
        );
        assert_eq!(
            find(".status.conditions[0,2].type"),
            Ok(vec![json!("Approved"), json!("Extra")])
        );
        assert_eq!(
            find(".status.nodes[*].ports[*]"),
            Ok(vec![json!(1), json!(2), json!(3)])
        );
        assert_eq!(
            find(".status.nodes[*].name"),
            Ok(vec![json!("n1"), json!("n2")])
        );
        assert_eq!(
            find(".status.nodes.*.name"),
            Ok(vec![json!("n1"), json!("n2")])
        );
        assert_eq!(find(".metadata.labels.*"), Ok(vec![json!("relay")]));
        // Out of range and indexing a non-array are errors (a null cell).
        assert!(find(".spec.usages[5]").is_err());
        assert!(find(".metadata.name[0]").is_err());
        assert_eq!(first(".spec.usages[5]"), None);
        // An index on a missing field is simply nothing.
        assert_eq!(find(".spec.missing[0]"), Ok(vec![]));
        // A zero-length slice ends the evaluation with what was found so far.
        assert_eq!(find(".spec.usages[1:1]"), Ok(vec![]));
    }

    #[test]
    fn filters_compare_like_go_templates() {
        assert_eq!(
            first(r#".status.conditions[?(@.type=="Ready")].status"#),
            Some(json!("False"))
        );
        // The issuer CRDs write it with spaces.
        assert_eq!(
            first(r#".status.conditions[?(@.type == "Ready")].reason"#),
            Some(json!("Pending"))
        );
        assert_eq!(
            first(".status.conditions[?(@.type=='Approved')].reason"),
            Some(json!("ByTest"))
        );
        assert_eq!(
            find(r#".status.conditions[?(@.type!="Ready")].type"#),
            Ok(vec![json!("Approved"), json!("Extra")])
        );
        // Elements without the field are skipped.
        assert_eq!(
            find(".status.conditions[?(@.observedGeneration>=2)].type"),
            Ok(vec![json!("Ready")])
        );
        assert_eq!(
            find(".status.conditions[?(@.observedGeneration<2)].type"),
            Ok(vec![])
        );
        // Existence.
        assert_eq!(
            find(".status.conditions[?(@.reason)].type"),
            Ok(vec![json!("Approved"), json!("Ready")])
        );
        // No match: no result.
        assert_eq!(
            find(r#".status.conditions[?(@.type=="Issued")].status"#),
            Ok(vec![])
        );
        // Different kinds do not compare: an error, as in client-go.
        assert!(find(".status.conditions[?(@.observedGeneration==2.0)].type").is_err());
        assert!(find(r#".status.conditions[?(@.observedGeneration=="2")].type"#).is_err());
        assert!(find(".status.conditions[?(@.type<true)].type").is_err());
        // Filtering a non-array or a null is an error.
        assert!(find(r#".metadata[?(@.x=="y")]"#).is_err());
        assert!(find(r#".spec.nothing[?(@.x=="y")]"#).is_err());
        // Filtering a missing field is nothing.
        assert_eq!(find(r#".spec.missing[?(@.x=="y")]"#), Ok(vec![]));
        // String ordering.
        assert_eq!(
            find(r#".status.conditions[?(@.type>"B")].type"#),
            Ok(vec![json!("Ready"), json!("Extra")])
        );
    }

    #[test]
    fn recursive_descent() {
        assert_eq!(
            find("..name"),
            Ok(vec![json!("a"), json!("n1"), json!("n2")])
        );
        assert_eq!(find("..ports[0]"), Ok(vec![json!(1), json!(3)]));
        assert!(JsonPath::parse("....name").is_err());
    }

    #[test]
    fn parse_errors() {
        for bad in [
            ".a[",
            ".a[x]",
            ".a[?(@.b==\"c\"",
            ".a[?(@.b==\"c\")",
            ".a\n",
            ".a[?(@.b=\"c\")]x{",
            ".a['b",
            "..*",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
        // Bare words parse, and fail when evaluated.
        let path = JsonPath::parse("status").unwrap();
        assert!(path.find(&object()).is_err());
    }
}
