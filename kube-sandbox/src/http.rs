//! HTTP plumbing: query strings, request bodies, JSON (or protobuf) and Status responses.

use crate::Error;
use crate::metadata::Encoding;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Response, StatusCode};
use std::collections::HashMap;

/// The largest request body accepted (the API server's limit is about 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The response body type used for every response (watch streams included).
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// Parsed query parameters (last value wins, as in the API server).
pub fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    let mut params = HashMap::new();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        params.insert(percent_decode(k), percent_decode(v));
    }
    params
}

/// Decodes `%XX` escapes and `+` (as space) in a query component.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// How much of an oversized body is read and thrown away before answering 413, so the client
/// finishes sending and reads the answer instead of a connection reset (Go's server drains too).
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

/// Reads a request body up to [`MAX_BODY`].
pub async fn read_body(mut body: Incoming) -> Result<Bytes, Error> {
    let mut collected = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|e| Error::BadRequest(format!("reading the request body failed: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len();
        if seen <= MAX_BODY {
            collected.extend_from_slice(&data);
        } else if seen > DRAIN_LIMIT {
            break;
        }
    }
    if seen > MAX_BODY {
        return Err(Error::TooLarge(MAX_BODY));
    }
    Ok(collected.freeze())
}

/// Parses a JSON or YAML request body into a JSON value.
pub fn parse_body(bytes: &[u8], content_type: &str) -> Result<serde_json::Value, Error> {
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        return Err(Error::UnsupportedMediaType(format!(
            "application/json, application/yaml (the sandbox speaks protobuf only for {}; use `kubectl create -f` / `apply -f` with YAML or JSON)",
            crate::protobuf::kind_names()
        )));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::BadRequest("the request body is not UTF-8".into()))?;
    if text.trim().is_empty() {
        return Err(Error::BadRequest("the request body is empty".into()));
    }
    let yaml = content_type.contains("yaml");
    let value: serde_json::Value = if yaml && !text.trim_start().starts_with('{') {
        serde_saphyr::from_str(text)
            .map_err(|e| Error::BadRequest(format!("error converting YAML to JSON: {e}")))?
    } else {
        serde_json::from_str(text).map_err(|e| {
            Error::BadRequest(format!("couldn't get version/kind; json parse error: {e}"))
        })?
    };
    Ok(value)
}

/// A JSON response.
pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

/// A response in the negotiated encoding: JSON, or Kubernetes protobuf (when the object has
/// no protobuf form after all, the encoding failure's own Status, in JSON).
pub fn encoded_response(
    status: StatusCode,
    value: &serde_json::Value,
    encoding: Encoding,
) -> Response<Body> {
    match encoding {
        Encoding::Json => json_response(status, value),
        Encoding::Protobuf => match crate::protobuf::encode(value) {
            Ok(body) => Response::builder()
                .status(status)
                .header("content-type", crate::protobuf::MEDIA_TYPE)
                .body(Full::new(Bytes::from(body)).boxed())
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed())),
            Err(error) => error_response(&error, Encoding::Json),
        },
    }
}

/// The Status response for an error, in the encoding the request's Accept header chose.
pub fn error_response(error: &Error, encoding: Encoding) -> Response<Body> {
    let (code, _) = error.code_and_reason();
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = encoded_response(status, &error.to_status(), encoding);
    if matches!(error, Error::TooManyRequests)
        && let Ok(v) = http::HeaderValue::from_str("1")
    {
        response.headers_mut().insert("retry-after", v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        let q = parse_query(Some("labelSelector=a%3Db%2Cc&watch=true&limit=500&x"));
        assert_eq!(q["labelSelector"], "a=b,c");
        assert_eq!(q["watch"], "true");
        assert_eq!(q["x"], "");
        assert!(parse_query(None).is_empty());
        assert_eq!(percent_decode("a+b%zz%"), "a b%zz%");
    }

    #[test]
    fn bodies_parse_as_json_or_yaml() {
        assert_eq!(
            parse_body(br#"{"a":1}"#, "application/json").unwrap()["a"],
            1
        );
        assert_eq!(
            parse_body(b"a: 1\n", "application/apply-patch+yaml").unwrap()["a"],
            1
        );
        assert!(matches!(
            parse_body(b"{nope", "application/json"),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            parse_body(b"", "application/json"),
            Err(Error::BadRequest(_))
        ));
    }
}
