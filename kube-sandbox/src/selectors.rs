//! Label and field selectors, parsed and matched the way kube-apiserver treats the
//! `labelSelector` and `fieldSelector` query parameters of list and watch requests.
//!
//! What lives here:
//! - [`LabelSelector`]: the set-based label selector grammar (`a=b`, `a==b`, `a!=b`,
//!   `a in (x,y)`, `a notin (x)`, `a`, `!a`, and the `a>1` / `a<1` integer comparisons),
//!   with label key and value validation and the API server's error wording.
//! - [`FieldSelector`]: the equality-only field selector grammar with `\,` `\=` `\\` escapes,
//!   checked against the field paths a resource supports.
//!
//! What does not live here: knowing which fields a resource supports (callers pass that list),
//! HTTP handling and `Status` rendering, and reading selectors out of a URL query.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::Error;
use crate::error::go_quote;

// ---------------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------------

/// A parsed `labelSelector`: every requirement must hold (logical AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Requirements, sorted by key (as the API server sorts them).
    requirements: Vec<Requirement>,
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and deduplicated.
    values: Vec<String>,
}

/// A label selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter exactly as the API server does.
    ///
    /// Grammar: comma-separated requirements (AND), each one of `key=value`, `key==value`,
    /// `key!=value`, `key in (v1,v2)`, `key notin (v1)`, `key` (exists), `!key` (does not
    /// exist), `key>N`, `key<N`. Whitespace (space, tab, CR, LF) separates tokens. Keys must be
    /// qualified names (optional DNS-1123 subdomain prefix and `/`, then a name of at most 63
    /// characters); values must be valid label values (at most 63 characters, alphanumeric at
    /// both ends, `-_.` inside, or empty). The empty string selects everything.
    ///
    /// # Errors
    /// [`Error::BadSelector`] carrying the API server's message (the part after
    /// `unable to parse requirement: `, which the error's `Display` adds).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut parser = Parser {
            items: lex(text),
            position: 0,
        };
        let mut requirements = parser.parse().map_err(Error::BadSelector)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Self { requirements })
    }

    /// Whether the selector has no requirements (it then selects everything).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether every requirement holds for `labels`.
    #[must_use]
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether every requirement holds for the object's `metadata.labels` (absent or
    /// non-string labels count as no labels / are skipped).
    #[must_use]
    pub fn matches_object(&self, object: &Value) -> bool {
        let labels = object
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect::<BTreeMap<_, _>>()
            })
            .unwrap_or_default();
        self.matches(&labels)
    }
}

impl fmt::Display for LabelSelector {
    /// The API server's canonical form: requirements sorted by key, comma-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => {
                value.is_some_and(|v| self.values.contains(v))
            }
            Operator::NotEquals | Operator::NotIn => {
                !value.is_some_and(|v| self.values.contains(v))
            }
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(actual) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let [wanted] = self.values.as_slice() else {
                    return false;
                };
                let Ok(wanted) = wanted.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > wanted
                } else {
                    actual < wanted
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
        };
        f.write_str(op)?;
        let joined = self.values.join(",");
        if matches!(self.operator, Operator::In | Operator::NotIn) {
            write!(f, "({joined})")
        } else {
            f.write_str(&joined)
        }
    }
}

/// A lexer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

/// A token and the text it was read from.
#[derive(Debug, Clone, Copy)]
struct Scanned<'a> {
    token: Token,
    literal: &'a str,
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits `text` into tokens, always ending with [`Token::EndOfString`].
///
/// Like the API server's lexer, a NUL byte where a token would start ends the input, and a NUL
/// byte right after a token is swallowed as a separator.
fn lex(text: &str) -> Vec<Scanned<'_>> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let mut items = Vec::new();
    loop {
        while pos < bytes.len() && is_whitespace(bytes[pos]) {
            pos += 1;
        }
        if pos >= bytes.len() || bytes[pos] == 0 {
            items.push(Scanned {
                token: Token::EndOfString,
                literal: "",
            });
            return items;
        }
        let start = pos;
        let token = if is_special(bytes[pos]) {
            let two = matches!(bytes[pos], b'=' | b'!') && bytes.get(pos + 1) == Some(&b'=');
            pos += if two { 2 } else { 1 };
            match &text[start..pos] {
                "==" => Token::DoubleEquals,
                "!=" => Token::NotEquals,
                "=" => Token::Equals,
                "!" => Token::DoesNotExist,
                "(" => Token::OpenPar,
                ")" => Token::ClosedPar,
                "," => Token::Comma,
                ">" => Token::GreaterThan,
                _ => Token::LessThan,
            }
        } else {
            while pos < bytes.len()
                && bytes[pos] != 0
                && !is_special(bytes[pos])
                && !is_whitespace(bytes[pos])
            {
                pos += 1;
            }
            match &text[start..pos] {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier,
            }
        };
        items.push(Scanned {
            token,
            literal: &text[start..pos],
        });
        if bytes.get(pos) == Some(&0) {
            pos += 1;
        }
    }
}

/// Whether `in` / `notin` are keywords (operator position) or plain identifiers (values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

/// A recursive-descent parser over the scanned tokens.
struct Parser<'a> {
    items: Vec<Scanned<'a>>,
    position: usize,
}

/// The operators the API server lists when it expects one.
const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl<'a> Parser<'a> {
    fn at(&self, index: usize, context: Context) -> (Token, &'a str) {
        let item = self
            .items
            .get(index)
            .or(self.items.last())
            .copied()
            .unwrap_or(Scanned {
                token: Token::EndOfString,
                literal: "",
            });
        let token = match (context, item.token) {
            (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
            (_, t) => t,
        };
        (token, item.literal)
    }

    fn lookahead(&self, context: Context) -> (Token, &'a str) {
        self.at(self.position, context)
    }

    fn consume(&mut self, context: Context) -> (Token, &'a str) {
        let item = self.at(self.position, context);
        if self.position + 1 < self.items.len() {
            self.position += 1;
        }
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    requirements.push(self.parse_requirement()?);
                    let (token, literal) = self.consume(Context::Values);
                    match token {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (next, next_literal) = self.lookahead(Context::Values);
                            if next != Token::Identifier && next != Token::DoesNotExist {
                                return Err(format!(
                                    "found '{next_literal}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => {
                            return Err(format!(
                                "found '{literal}', expected: ',' or 'end of string'"
                            ));
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, inferred) = self.parse_key_and_infer_operator()?;
        if let Some(op) = inferred {
            return new_requirement(key, op, Vec::new());
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        new_requirement(key, operator, values)
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut operator = None;
        let (mut token, mut literal) = self.consume(Context::Values);
        if token == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (token, literal) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        let errors = qualified_name_errors(literal);
        if !errors.is_empty() {
            return Err(format!(
                "<nil>: Invalid value: {}: {}",
                go_quote(literal),
                errors.join("; ")
            ));
        }
        let (next, _) = self.lookahead(Context::Values);
        if matches!(next, Token::EndOfString | Token::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((literal.to_owned(), operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (token, literal) = self.consume(Context::KeyAndOperator);
        match token {
            Token::In => Ok(Operator::In),
            Token::Equals => Ok(Operator::Equals),
            Token::DoubleEquals => Ok(Operator::DoubleEquals),
            Token::GreaterThan => Ok(Operator::GreaterThan),
            Token::LessThan => Ok(Operator::LessThan),
            Token::NotIn => Ok(Operator::NotIn),
            Token::NotEquals => Ok(Operator::NotEquals),
            _ => Err(format!("found '{literal}', expected: {BINARY_OPERATORS}")),
        }
    }

    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (token, literal) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                let (closing, _) = self.consume(Context::Values);
                if closing != Token::ClosedPar {
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!(
                "found '{literal}', expected: ',', ')' or identifier"
            )),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            let (token, literal) = self.consume(Context::Values);
            match token {
                Token::Identifier => {
                    values.push(literal.to_owned());
                    let (next, next_literal) = self.lookahead(Context::Values);
                    match next {
                        Token::Comma => {}
                        Token::ClosedPar => return Ok(values),
                        _ => {
                            return Err(format!("found '{next_literal}', expected: ',' or ')'"));
                        }
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    let (next, _) = self.lookahead(Context::Values);
                    if next == Token::ClosedPar {
                        values.push(String::new());
                        return Ok(values);
                    }
                    if next == Token::Comma {
                        self.consume(Context::Values);
                        values.push(String::new());
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (token, _) = self.lookahead(Context::Values);
        if matches!(token, Token::EndOfString | Token::Comma) {
            return Ok(vec![String::new()]);
        }
        let (token, literal) = self.consume(Context::Values);
        if token == Token::Identifier {
            Ok(vec![literal.to_owned()])
        } else {
            Err(format!("found '{literal}', expected: identifier"))
        }
    }
}

/// Builds a requirement, validating it as the API server's `NewRequirement` does (values are
/// sorted and deduplicated first, so error indices refer to the sorted order).
fn new_requirement(
    key: String,
    operator: Operator,
    mut values: Vec<String>,
) -> Result<Requirement, String> {
    values.sort();
    values.dedup();
    let mut errors = Vec::new();
    let key_errors = qualified_name_errors(&key);
    if !key_errors.is_empty() {
        errors.push(format!(
            "key: Invalid value: {}: {}",
            go_quote(&key),
            key_errors.join("; ")
        ));
    }
    match operator {
        Operator::In | Operator::NotIn if values.is_empty() => errors.push(format!(
            "values: Invalid value: {}: for 'in', 'notin' operators, values set can't be empty",
            go_list(&values)
        )),
        Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if values.len() != 1 => {
            errors.push(format!(
                "values: Invalid value: {}: exact-match compatibility requires one single value",
                go_list(&values)
            ));
        }
        Operator::GreaterThan | Operator::LessThan => {
            if values.len() != 1 {
                errors.push(format!(
                    "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value is required",
                    go_list(&values)
                ));
            }
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errors.push(format!(
                        "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                        go_quote(v)
                    ));
                }
            }
        }
        _ => {}
    }
    for (i, v) in values.iter().enumerate() {
        let value_errors = label_value_errors(v);
        if !value_errors.is_empty() {
            errors.push(format!(
                "values[{i}][{key}]: Invalid value: {}: {}",
                go_quote(v),
                value_errors.join("; ")
            ));
        }
    }
    match errors.len() {
        0 => Ok(Requirement {
            key,
            operator,
            values,
        }),
        1 => Err(errors.remove(0)),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a DNS-1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
/// Longest label name part and label value.
const MAX_NAME_LENGTH: usize = 63;
/// Longest DNS-1123 subdomain (label key prefix).
const MAX_SUBDOMAIN_LENGTH: usize = 253;

/// The API server's explanation of a failed pattern, with examples.
fn regex_error(message: &str, pattern: &str, examples: &[&str]) -> String {
    let mut out = format!("{message} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(example);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(pattern);
    out.push_str("')");
    out
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`
fn is_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let b = label.as_bytes();
        let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        match (b.first(), b.last()) {
            (Some(first), Some(last)) => {
                edge(first) && edge(last) && b.iter().all(|c| edge(c) || *c == b'-')
            }
            _ => false,
        }
    })
}

/// Why `value` is not a qualified name (label key); empty when it is one.
fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_owned());
            } else {
                if prefix.len() > MAX_SUBDOMAIN_LENGTH {
                    errors.push(format!(
                        "prefix part must be no more than {MAX_SUBDOMAIN_LENGTH} characters"
                    ));
                }
                if !is_dns1123_subdomain(prefix) {
                    errors.push(format!(
                        "prefix part {}",
                        regex_error(
                            DNS1123_SUBDOMAIN_MSG,
                            DNS1123_SUBDOMAIN_FMT,
                            &["example.com"]
                        )
                    ));
                }
            }
            *name
        }
        _ => {
            errors.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errors;
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_owned());
    } else if name.len() > MAX_NAME_LENGTH {
        errors.push(format!(
            "name part must be no more than {MAX_NAME_LENGTH} characters"
        ));
    }
    if !is_qualified_name_part(name) {
        errors.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errors
}

/// Why `value` is not a valid label value; empty when it is one.
fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > MAX_NAME_LENGTH {
        errors.push(format!("must be no more than {MAX_NAME_LENGTH} characters"));
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errors.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errors
}

/// A list of strings as the API server's field errors print one (JSON).
fn go_list(values: &[String]) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_owned())
}

// ---------------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------------

/// A parsed `fieldSelector`: every term must hold (logical AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// Terms, sorted by their source text (as the API server sorts them).
    terms: Vec<FieldTerm>,
}

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    negated: bool,
    /// Unescaped.
    value: String,
}

impl FieldSelector {
    /// Parses `fieldSelector` as the API server does: comma-separated terms `field=value`,
    /// `field==value` or `field!=value`; in values `\,` `\=` `\\` are escapes and an unescaped
    /// `,` or `=` is an error. Field names are taken verbatim (no trimming). The empty string
    /// selects everything.
    ///
    /// # Errors
    /// - [`Error::BadRequest`] with the API server's wording for a term without an operator
    ///   (`invalid selector: 'S'; can't understand 'T'`) or a bad escape
    ///   (`invalid field selector: ...`); the whole message is the error's `Display`.
    /// - [`Error::FieldLabelNotSupported`] for the first field (in the API server's sorted term
    ///   order) not listed in `supported`.
    pub fn parse(text: &str, supported: &[&str]) -> Result<Self, Error> {
        let mut parts = split_terms(text);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, operator, raw_value)) = split_term(part) else {
                return Err(Error::BadRequest(format!(
                    "invalid selector: '{text}'; can't understand '{part}'"
                )));
            };
            let value = unescape_value(raw_value).map_err(Error::BadRequest)?;
            terms.push(FieldTerm {
                field: field.to_owned(),
                negated: operator == "!=",
                value,
            });
        }
        if let Some(term) = terms
            .iter()
            .find(|t| !supported.contains(&t.field.as_str()))
        {
            return Err(Error::FieldLabelNotSupported(term.field.clone()));
        }
        Ok(Self { terms })
    }

    /// Whether the selector has no terms (it then selects everything).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Matches by reading each field's dotted path from the JSON object. Missing fields and
    /// nulls compare as `""`; booleans and numbers compare in their JSON spelling; objects and
    /// arrays compare as `""`.
    #[must_use]
    pub fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|t| {
            let actual = field_value(object, &t.field);
            (actual == t.value) != t.negated
        })
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical form: `field=value` / `field!=value` terms, values escaped, comma-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = if t.negated { "!=" } else { "=" };
            write!(f, "{}{op}{}", t.field, escape_value(&t.value))?;
        }
        Ok(())
    }
}

/// Escapes `\`, `,` and `=` in a field selector value.
fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Splits on commas not preceded by an escaping backslash; escapes stay in the terms.
fn split_terms(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&text[start..i]);
            start = i + 1;
        }
    }
    terms.push(&text[start..]);
    terms
}

/// Splits a term at the first operator (`!=`, `==`, `=`, tried in that order at each position).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], op, value));
            }
        }
    }
    None
}

/// Undoes `\\`, `\,`, `\=`; any other escape, a trailing `\`, or a bare `,` / `=` is an error.
fn unescape_value(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut escaped = false;
    for c in raw.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                ));
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ));
            }
            c => out.push(c),
        }
    }
    if escaped {
        return Err("invalid field selector: invalid escape sequence: \\".to_owned());
    }
    Ok(out)
}

/// Reads a dotted path as a selectable string.
fn field_value(object: &Value, path: &str) -> String {
    let mut current = object;
    for segment in path.split('.') {
        match current.get(segment) {
            Some(next) => current = next,
            None => return String::new(),
        }
    }
    match current {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null | Value::Array(_) | Value::Object(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn sel(text: &str) -> LabelSelector {
        LabelSelector::parse(text).unwrap()
    }

    fn bad(text: &str) -> String {
        match LabelSelector::parse(text) {
            Err(Error::BadSelector(message)) => message,
            other => panic!("{text:?}: expected BadSelector, got {other:?}"),
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        for text in ["", "   ", "\t\n"] {
            let s = sel(text);
            assert!(s.is_empty());
            assert!(s.matches(&labels(&[])));
            assert!(s.matches(&labels(&[("a", "b")])));
        }
    }

    #[test]
    fn equals_and_double_equals() {
        for text in ["app=web", "app==web", " app = web "] {
            let s = sel(text);
            assert!(s.matches(&labels(&[("app", "web")])), "{text}");
            assert!(!s.matches(&labels(&[("app", "db")])), "{text}");
            assert!(!s.matches(&labels(&[])), "{text}");
        }
    }

    #[test]
    fn equals_empty_value() {
        assert!(sel("app==").matches(&labels(&[("app", "")])));
        let s = sel("app=");
        assert!(s.matches(&labels(&[("app", "")])));
        assert!(!s.matches(&labels(&[("app", "x")])));
        assert!(!s.matches(&labels(&[])));
        assert_eq!(s.to_string(), "app=");
    }

    #[test]
    fn not_equals_matches_absent_key() {
        let s = sel("app!=web");
        assert!(!s.matches(&labels(&[("app", "web")])));
        assert!(s.matches(&labels(&[("app", "db")])));
        assert!(s.matches(&labels(&[])));
    }

    #[test]
    fn in_and_notin() {
        let s = sel("env in (prod, staging)");
        assert!(s.matches(&labels(&[("env", "prod")])));
        assert!(s.matches(&labels(&[("env", "staging")])));
        assert!(!s.matches(&labels(&[("env", "dev")])));
        assert!(!s.matches(&labels(&[])));
        assert_eq!(s.to_string(), "env in (prod,staging)");

        let s = sel("env notin (prod)");
        assert!(!s.matches(&labels(&[("env", "prod")])));
        assert!(s.matches(&labels(&[("env", "dev")])));
        assert!(s.matches(&labels(&[])));
    }

    #[test]
    fn in_with_empty_values() {
        let s = sel("x in (foo,,baz),y,z notin ()");
        assert!(s.matches(&labels(&[("x", ""), ("y", "1"), ("z", "a")])));
        assert!(s.matches(&labels(&[("x", "baz"), ("y", "1")])));
        assert!(!s.matches(&labels(&[("x", "baz"), ("y", "1"), ("z", "")])));
        assert_eq!(s.to_string(), "x in (,baz,foo),y,z notin ()");
    }

    #[test]
    fn in_and_notin_are_values_inside_parentheses() {
        let s = sel("x in (in,notin)");
        assert!(s.matches(&labels(&[("x", "in")])));
        assert!(s.matches(&labels(&[("x", "notin")])));
        let s = sel("in");
        assert!(s.matches(&labels(&[("in", "")])));
    }

    #[test]
    fn exists_and_does_not_exist() {
        let s = sel("app");
        assert!(s.matches(&labels(&[("app", "")])));
        assert!(!s.matches(&labels(&[("other", "x")])));
        let s = sel("!app");
        assert!(!s.matches(&labels(&[("app", "x")])));
        assert!(s.matches(&labels(&[])));
        assert_eq!(s.to_string(), "!app");
    }

    #[test]
    fn greater_and_less_than() {
        let s = sel("replicas>2");
        assert!(s.matches(&labels(&[("replicas", "3")])));
        assert!(!s.matches(&labels(&[("replicas", "2")])));
        assert!(!s.matches(&labels(&[("replicas", "x")])));
        assert!(!s.matches(&labels(&[])));
        let s = sel("replicas<2");
        assert!(s.matches(&labels(&[("replicas", "-1")])));
        assert!(!s.matches(&labels(&[("replicas", "2")])));
        assert_eq!(
            bad("a>b"),
            "values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
    }

    #[test]
    fn conjunction_of_requirements() {
        let s = sel("app=web,tier!=db,!legacy,env in (prod)");
        assert!(s.matches(&labels(&[("app", "web"), ("env", "prod")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "prod"), ("legacy", "1")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "prod"), ("tier", "db")])));
        assert_eq!(s.to_string(), "app=web,env in (prod),!legacy,tier!=db");
    }

    #[test]
    fn prefixed_keys() {
        let s = sel("app.kubernetes.io/name=relay,cert-manager.io/issuer-kind");
        assert!(s.matches(&labels(&[
            ("app.kubernetes.io/name", "relay"),
            ("cert-manager.io/issuer-kind", "Issuer"),
        ])));
    }

    #[test]
    fn matches_object_reads_metadata_labels() {
        let s = sel("app=web");
        assert!(s.matches_object(&json!({"metadata": {"labels": {"app": "web"}}})));
        assert!(!s.matches_object(&json!({"metadata": {"name": "x"}})));
        assert!(!s.matches_object(&json!({})));
        assert!(sel("!app").matches_object(&json!({"metadata": {}})));
    }

    #[test]
    fn syntax_errors_use_apiserver_wording() {
        assert_eq!(bad("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(bad("a=b,"), "found '', expected: identifier after ','");
        assert_eq!(
            bad("=a"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            bad("!=a"),
            "found '!=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(bad("! =a"), "found '=', expected: identifier");
        assert_eq!(
            bad("a b"),
            "found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(bad("a in"), "found '' expected: '('");
        assert_eq!(bad("a in b"), "found 'b' expected: '('");
        assert_eq!(bad("a in (b"), "found '', expected: ',' or ')'");
        assert_eq!(bad("a in (b c)"), "found 'c', expected: ',' or ')'");
        assert_eq!(
            bad("a in (="),
            "found '=', expected: ',', ')' or identifier"
        );
        assert_eq!(bad("a in (,="), "found '=', expected: ',', or identifier");
        assert_eq!(bad("a=!"), "found '!', expected: identifier");
        assert_eq!(bad("a=(b)"), "found '(', expected: identifier");
    }

    #[test]
    fn error_display_has_apiserver_prefix() {
        let error = LabelSelector::parse("a b").unwrap_err();
        assert_eq!(
            error.to_string(),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
    }

    #[test]
    fn invalid_keys() {
        assert_eq!(
            bad("-a=b"),
            "<nil>: Invalid value: \"-a\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        assert_eq!(
            bad("/a"),
            "<nil>: Invalid value: \"/a\": prefix part must be non-empty"
        );
        assert_eq!(
            bad("Example.com/a"),
            "<nil>: Invalid value: \"Example.com/a\": prefix part a DNS-1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        assert!(bad("a/b/c").contains("a qualified name must consist of"));
        assert!(bad("a/").contains("name part must be non-empty; name part must consist"));
        let long = "k".repeat(64);
        assert!(bad(&long).contains("name part must be no more than 63 characters"));
        assert!(LabelSelector::parse(&"k".repeat(63)).is_ok());
        let long_prefix = format!("{}/a", "p".repeat(254));
        assert!(bad(&long_prefix).contains("prefix part must be no more than 253 characters"));
    }

    #[test]
    fn invalid_values() {
        assert_eq!(
            bad("a=-b"),
            "values[0][a]: Invalid value: \"-b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        let long = format!("a={}", "v".repeat(64));
        assert!(bad(&long).starts_with("values[0][a]: Invalid value: "));
        assert!(bad(&long).contains("must be no more than 63 characters"));
        // Indices refer to the sorted value set.
        assert!(bad("a in (z,b_)").starts_with("values[0][a]: Invalid value: \"b_\""));
        // Several bad values are aggregated.
        let message = bad("a in (-x,-y)");
        assert!(
            message.starts_with("[values[0][a]: Invalid value: \"-x\""),
            "{message}"
        );
        assert!(
            message.contains(", values[1][a]: Invalid value: \"-y\""),
            "{message}"
        );
    }

    #[test]
    fn non_ascii_is_rejected_not_panicking() {
        assert!(bad("ä=b").contains("Invalid value: \"ä\""));
        assert!(bad("a=ü").contains("Invalid value: \"ü\""));
    }

    #[test]
    fn nul_byte_ends_the_input_like_the_apiserver() {
        assert!(sel("\0a=b").is_empty());
        assert_eq!(sel("a=b\0").to_string(), "a=b");
    }

    fn fsel(text: &str) -> FieldSelector {
        FieldSelector::parse(
            text,
            &[
                "metadata.name",
                "metadata.namespace",
                "type",
                "spec.replicas",
                "status.ready",
            ],
        )
        .unwrap()
    }

    #[test]
    fn field_equals_and_not_equals() {
        let secret =
            json!({"metadata": {"name": "tls", "namespace": "ns"}, "type": "kubernetes.io/tls"});
        assert!(fsel("type=kubernetes.io/tls").matches(&secret));
        assert!(fsel("type==kubernetes.io/tls").matches(&secret));
        assert!(!fsel("type!=kubernetes.io/tls").matches(&secret));
        assert!(fsel("metadata.name=tls,metadata.namespace!=other").matches(&secret));
        assert!(!fsel("metadata.name=tls,metadata.namespace=other").matches(&secret));
        assert!(fsel("").matches(&secret));
        assert!(fsel("").is_empty());
        assert!(fsel(",,").is_empty());
    }

    #[test]
    fn field_missing_compares_as_empty() {
        let object = json!({"metadata": {"name": "x"}});
        assert!(fsel("type=").matches(&object));
        assert!(!fsel("type!=").matches(&object));
        assert!(fsel("type!=Opaque").matches(&object));
    }

    #[test]
    fn field_numbers_and_booleans() {
        let object = json!({"spec": {"replicas": 3}, "status": {"ready": true}});
        assert!(fsel("spec.replicas=3,status.ready=true").matches(&object));
        assert!(!fsel("spec.replicas=4").matches(&object));
    }

    #[test]
    fn field_escapes() {
        let object = json!({"metadata": {"name": "a,b=c\\d"}});
        let s = fsel("metadata.name=a\\,b\\=c\\\\d");
        assert!(s.matches(&object));
        assert_eq!(s.to_string(), "metadata.name=a\\,b\\=c\\\\d");
        // An escaped comma does not split terms.
        assert_eq!(fsel("metadata.name=x\\,type\\=y").terms.len(), 1);
    }

    #[test]
    fn field_bad_escapes_and_syntax() {
        let err = |text: &str| match FieldSelector::parse(text, &["metadata.name"]) {
            Err(Error::BadRequest(message)) => message,
            other => panic!("{text:?}: expected BadRequest, got {other:?}"),
        };
        assert_eq!(
            err("metadata.name=a\\b"),
            "invalid field selector: invalid escape sequence: \\b"
        );
        assert_eq!(
            err("metadata.name=a\\"),
            "invalid field selector: invalid escape sequence: \\"
        );
        assert_eq!(
            err("metadata.name=a=b"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            err("metadata.name"),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            err("metadata.name=a,bogus"),
            "invalid selector: 'metadata.name=a,bogus'; can't understand 'bogus'"
        );
    }

    #[test]
    fn field_unsupported() {
        let supported = ["metadata.name", "metadata.namespace", "type"];
        match FieldSelector::parse("spec.foo=bar", &supported) {
            Err(Error::FieldLabelNotSupported(field)) => assert_eq!(field, "spec.foo"),
            other => panic!("expected FieldLabelNotSupported, got {other:?}"),
        }
        let error = FieldSelector::parse("type=x,status.phase=Running", &supported).unwrap_err();
        assert_eq!(error.to_string(), "field label not supported: status.phase");
        // Field names are not trimmed.
        assert!(matches!(
            FieldSelector::parse(" type=x", &supported),
            Err(Error::FieldLabelNotSupported(f)) if f == " type"
        ));
        // Syntax errors come before support checks.
        assert!(matches!(
            FieldSelector::parse("spec.foo=a=b", &supported),
            Err(Error::BadRequest(_))
        ));
    }

    proptest! {
        #[test]
        fn label_parse_never_panics(text in ".{0,64}") {
            let _ = LabelSelector::parse(&text);
        }

        #[test]
        fn label_parse_never_panics_on_selector_alphabet(text in "[a-z0-9=!(),<> \t./_-]{0,40}") {
            if let Ok(selector) = LabelSelector::parse(&text) {
                let reparsed = LabelSelector::parse(&selector.to_string());
                prop_assert_eq!(reparsed.ok(), Some(selector));
            }
        }

        #[test]
        fn field_parse_never_panics(text in ".{0,64}") {
            let _ = FieldSelector::parse(&text, &["a", "b.c"]);
        }

        #[test]
        fn field_values_round_trip(value in "[a-z,=\\\\ ]{0,20}") {
            let text = format!("a={}", escape_value(&value));
            let selector = FieldSelector::parse(&text, &["a"]).unwrap();
            let object = json!({"a": value});
            prop_assert!(selector.matches(&object));
            let reparsed = FieldSelector::parse(&selector.to_string(), &["a"]).unwrap();
            prop_assert_eq!(reparsed, selector);
        }
    }
}
