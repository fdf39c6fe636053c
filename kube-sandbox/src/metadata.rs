//! Metadata-only responses (`PartialObjectMetadata`), as kube-apiserver serves them.
//!
//! A client that sends `Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1`
//! (kube-rs `get_metadata`/`watch_metadata`, client-go's metadata client) gets objects as
//! `{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{...}}`, with the
//! object's full metadata and nothing else; `as=PartialObjectMetadataList` does the same for
//! lists. This module holds the Accept-header negotiation ([`Representation::negotiate`]) and
//! the conversions; `server` applies them to responses and watch events. `as=Table` (what
//! `kubectl get` asks for) is negotiated here too and rendered by [`crate::table`]. As in
//! kube-apiserver:
//! - the first media range the sandbox can serve wins (ranges sorted by `q`, stably); ranges it
//!   cannot serve (CBOR, YAML, unknown `as`, `g` or `v`) are skipped, and when none is
//!   servable the full JSON object is returned, as before this module existed;
//! - protobuf ([`Encoding::Protobuf`], see [`crate::protobuf`]) is servable for objects and
//!   lists of the kinds that have a protobuf form ([`Offer::protobuf`]; never custom resources),
//!   and for `PartialObjectMetadata(List)` of any resource; never for `Table`s. So a client
//!   that lists protobuf first (kubectl's typed clients: `application/vnd.kubernetes.protobuf,
//!   application/json`) gets protobuf, as from kube-apiserver. Known limit: watches are always
//!   JSON here (kube-apiserver streams protobuf watch events), so protobuf ranges are skipped
//!   for them ([`Offer::for_request`]);
//! - errors ([`error_encoding`]) follow the first range without `as` that is JSON or protobuf,
//!   whatever the resource, as kube-apiserver's `ErrorNegotiated` does;
//! - the response Content-Type of a conversion stays `application/json` (kube-apiserver's
//!   `transformResponseObject` does not list the conversion in it);
//! - asking for `PartialObjectMetadata` on a list (or `PartialObjectMetadataList` on a single
//!   object) is 406 `NotAcceptable`. kube-apiserver finds this out only while encoding, so a
//!   write has already happened; a watch asking for the list form is refused up front here
//!   (kube-apiserver would end the stream at the first event).
//! - `Status` objects (errors, watch `ERROR` events) are never converted.

use crate::Error;
use serde_json::{Map, Value, json};

/// The `meta.k8s.io` version a metadata-only response is rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaVersion {
    /// `meta.k8s.io/v1` (what kube-rs and client-go ask for).
    V1,
    /// `meta.k8s.io/v1beta1` (still served by kube-apiserver).
    V1beta1,
}

impl MetaVersion {
    /// The `apiVersion` of objects rendered in this version.
    pub fn api_version(self) -> &'static str {
        match self {
            MetaVersion::V1 => "meta.k8s.io/v1",
            MetaVersion::V1beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// How a response renders the objects it carries, as the request's Accept header chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Representation {
    /// The objects themselves (`application/json`, or nothing servable was asked for).
    #[default]
    Full,
    /// `as=PartialObjectMetadata`: single objects and watch event objects.
    Partial(MetaVersion),
    /// `as=PartialObjectMetadataList`: lists.
    PartialList(MetaVersion),
    /// `as=Table`: objects, lists and watch events as `Table`s ([`crate::table`]).
    Table(MetaVersion),
}

/// How a response body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// `application/json`.
    #[default]
    Json,
    /// `application/vnd.kubernetes.protobuf` ([`crate::protobuf`]).
    Protobuf,
}

/// What a response can be encoded in besides JSON (the default offers JSON only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offer {
    /// Objects and lists in protobuf: the resource's kind has a protobuf form
    /// ([`crate::protobuf::speaks`]) and the request is not a watch.
    pub protobuf: bool,
    /// `PartialObjectMetadata(List)` in protobuf: any resource, unless the request is a watch.
    pub protobuf_metadata: bool,
}

impl Offer {
    /// What a request to a resource whose kind does (or does not) have a protobuf form is
    /// offered; watches are JSON only (see the module doc).
    pub fn for_request(kind_has_protobuf: bool, watch: bool) -> Self {
        Offer {
            protobuf: kind_has_protobuf && !watch,
            protobuf_metadata: !watch,
        }
    }
}

/// The form of watch event objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchForm {
    /// The objects themselves.
    Full,
    /// `PartialObjectMetadata` in this version.
    Partial(MetaVersion),
    /// A one-row `Table` in this version (column definitions in the first event only).
    Table(MetaVersion),
}

/// One media range of an Accept header.
struct MediaRange<'a> {
    kind: &'a str,
    subtype: &'a str,
    params: Vec<(String, &'a str)>,
    q: f32,
}

impl<'a> MediaRange<'a> {
    fn parse(clause: &'a str) -> Option<Self> {
        let mut parts = clause.split(';');
        let (kind, subtype) = parts.next()?.trim().split_once('/')?;
        let mut range = MediaRange {
            kind: kind.trim(),
            subtype: subtype.trim(),
            params: Vec::new(),
            q: 1.0,
        };
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim().trim_matches('"');
            if key == "q" {
                range.q = value.parse().unwrap_or(0.0);
            } else {
                range.params.push((key, value));
            }
        }
        Some(range)
    }

    fn param(&self, key: &str) -> Option<&'a str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// Whether JSON satisfies this range's type (`application/json`, `application/*`, `*/*`).
    fn accepts_json(&self) -> bool {
        let kind = self.kind.eq_ignore_ascii_case("application") || self.kind == "*";
        let subtype = self.subtype.eq_ignore_ascii_case("json") || self.subtype == "*";
        kind && subtype
    }

    /// Whether this range is Kubernetes' protobuf (no wildcards: they mean JSON, the server's
    /// first media type).
    fn is_protobuf(&self) -> bool {
        self.kind.eq_ignore_ascii_case("application")
            && self.subtype.eq_ignore_ascii_case("vnd.kubernetes.protobuf")
    }

    /// What the sandbox serves for this range, if it can serve it at all.
    fn choice(&self, offer: Offer) -> Option<(Representation, Encoding)> {
        if self.accepts_json() {
            return self.representation().map(|r| (r, Encoding::Json));
        }
        if !self.is_protobuf() {
            return None;
        }
        match self.representation()? {
            Representation::Full => offer
                .protobuf
                .then_some((Representation::Full, Encoding::Protobuf)),
            // kube-apiserver allows Tables in JSON and YAML only.
            Representation::Table(_) => None,
            metadata => offer
                .protobuf_metadata
                .then_some((metadata, Encoding::Protobuf)),
        }
    }

    /// The representation this range's `as`, `g` and `v` ask for, if the sandbox has it.
    fn representation(&self) -> Option<Representation> {
        let Some(target) = self.param("as") else {
            return Some(Representation::Full);
        };
        let version = match (self.param("g"), self.param("v")) {
            (Some("meta.k8s.io"), Some("v1")) => MetaVersion::V1,
            (Some("meta.k8s.io"), Some("v1beta1")) => MetaVersion::V1beta1,
            _ => return None,
        };
        match target {
            "PartialObjectMetadata" => Some(Representation::Partial(version)),
            "PartialObjectMetadataList" => Some(Representation::PartialList(version)),
            "Table" => Some(Representation::Table(version)),
            _ => None,
        }
    }
}

impl Representation {
    /// The representation an Accept header asks for when only JSON is offered (protobuf
    /// ranges skipped): see [`Representation::negotiate_for`].
    pub fn negotiate(accept: Option<&str>) -> Self {
        Self::negotiate_for(accept, Offer::default()).0
    }

    /// The representation and encoding an Accept header asks for from a resource that offers
    /// `offer`: its first servable media range, by descending `q` and then header order;
    /// [`Representation::Full`] in JSON when none is servable.
    pub fn negotiate_for(accept: Option<&str>, offer: Offer) -> (Self, Encoding) {
        ranges(accept)
            .iter()
            .find_map(|range| range.choice(offer))
            .unwrap_or_default()
    }

    /// A single object as this representation shows it; `table` renders the `Table` form
    /// (it needs the resource's printer and the request's `includeObject`).
    pub fn object(
        self,
        object: Value,
        table: impl FnOnce(Value, MetaVersion) -> Result<Value, Error>,
    ) -> Result<Value, Error> {
        match self {
            Representation::Full => Ok(object),
            _ if is_status(&object) => Ok(object),
            Representation::Partial(version) => Ok(partial_object(&object, version)),
            Representation::Table(version) => table(object, version),
            Representation::PartialList(_) => Err(Error::NotAcceptable(
                "you requested PartialObjectMetadataList, but the requested object is not a list"
                    .into(),
            )),
        }
    }

    /// A list (`{kind: XList, metadata, items}`) as this representation shows it; `table`
    /// renders the `Table` form.
    pub fn list(
        self,
        list: Value,
        table: impl FnOnce(Value, MetaVersion) -> Result<Value, Error>,
    ) -> Result<Value, Error> {
        match self {
            Representation::Full => Ok(list),
            Representation::PartialList(version) => Ok(partial_list(&list, version)),
            Representation::Table(version) => table(list, version),
            Representation::Partial(_) => Err(Error::NotAcceptable(
                "you requested PartialObjectMetadata, but the requested object is a list".into(),
            )),
        }
    }

    /// The form of watch event objects.
    pub fn watch_form(self) -> Result<WatchForm, Error> {
        match self {
            Representation::Full => Ok(WatchForm::Full),
            Representation::Partial(version) => Ok(WatchForm::Partial(version)),
            Representation::Table(version) => Ok(WatchForm::Table(version)),
            Representation::PartialList(_) => Err(Error::NotAcceptable(
                "you requested PartialObjectMetadataList, but watch events carry single objects"
                    .into(),
            )),
        }
    }
}

/// An Accept header's media ranges with `q` > 0, most preferred first.
fn ranges(accept: Option<&str>) -> Vec<MediaRange<'_>> {
    let mut ranges: Vec<MediaRange<'_>> = accept
        .unwrap_or_default()
        .split(',')
        .filter_map(MediaRange::parse)
        .filter(|r| r.q > 0.0)
        .collect();
    // Stable: equal preferences keep the client's order; wildcards after concrete types.
    ranges.sort_by(|a, b| {
        b.q.total_cmp(&a.q)
            .then((a.kind == "*").cmp(&(b.kind == "*")))
            .then((a.subtype == "*").cmp(&(b.subtype == "*")))
    });
    ranges
}

/// The encoding of an error's `Status`: the first range without `as` that is JSON (or a
/// wildcard) or protobuf, whatever the resource; JSON when there is none.
pub fn error_encoding(accept: Option<&str>) -> Encoding {
    ranges(accept)
        .iter()
        .filter(|range| range.param("as").is_none())
        .find_map(|range| {
            if range.accepts_json() {
                Some(Encoding::Json)
            } else {
                range.is_protobuf().then_some(Encoding::Protobuf)
            }
        })
        .unwrap_or_default()
}

fn is_status(object: &Value) -> bool {
    object.get("kind").and_then(Value::as_str) == Some("Status")
}

/// An object's `PartialObjectMetadata` form: its whole `metadata`, nothing else.
pub fn partial_object(object: &Value, version: MetaVersion) -> Value {
    let metadata = object
        .get("metadata")
        .filter(|m| m.is_object())
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    json!({"kind": "PartialObjectMetadata", "apiVersion": version.api_version(), "metadata": metadata})
}

/// A list's `PartialObjectMetadataList` form: the list's metadata (resourceVersion, continue,
/// remainingItemCount) and each item's `PartialObjectMetadata` form.
pub fn partial_list(list: &Value, version: MetaVersion) -> Value {
    let metadata = list
        .get("metadata")
        .filter(|m| m.is_object())
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let items: Vec<Value> = list
        .get("items")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|item| partial_object(item, version))
                .collect()
        })
        .unwrap_or_default();
    json!({"kind": "PartialObjectMetadataList", "apiVersion": version.api_version(), "metadata": metadata, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBE_RS_GET: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
    const KUBE_RS_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

    fn no_table(_: Value, _: MetaVersion) -> Result<Value, Error> {
        panic!("no Table asked for")
    }

    #[test]
    fn negotiation_picks_the_first_servable_range() {
        use Representation::*;
        assert_eq!(Representation::negotiate(None), Full);
        assert_eq!(Representation::negotiate(Some("")), Full);
        assert_eq!(Representation::negotiate(Some("application/json")), Full);
        assert_eq!(
            Representation::negotiate(Some(KUBE_RS_GET)),
            Partial(MetaVersion::V1)
        );
        assert_eq!(
            Representation::negotiate(Some(KUBE_RS_LIST)),
            PartialList(MetaVersion::V1)
        );
        // client-go's metadata client: protobuf first; when only JSON is offered, the next.
        assert_eq!(
            Representation::negotiate(Some(
                "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
            )),
            PartialList(MetaVersion::V1)
        );
        // Parameter order, spacing and case of the media type do not matter.
        assert_eq!(
            Representation::negotiate(Some(
                " Application/JSON ; v=v1beta1 ; g=meta.k8s.io ; as=PartialObjectMetadata , application/json"
            )),
            Partial(MetaVersion::V1beta1)
        );
        // kubectl get's Table request: the first range, in the version asked for.
        assert_eq!(
            Representation::negotiate(Some(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            )),
            Table(MetaVersion::V1)
        );
        assert_eq!(
            Representation::negotiate(Some("application/json;as=Table;v=v1beta1;g=meta.k8s.io")),
            Table(MetaVersion::V1beta1)
        );
        // Tables only in JSON, only from meta.k8s.io v1/v1beta1; else the next range.
        assert_eq!(
            Representation::negotiate(Some(
                "application/yaml;as=Table;v=v1;g=meta.k8s.io,application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json"
            )),
            Full
        );
        assert_eq!(
            Representation::negotiate(Some(
                "application/json;as=Table;v=v2;g=meta.k8s.io,application/json;as=Table;g=meta.k8s.io,application/json;as=Table;v=v1;g=example.com"
            )),
            Full
        );
        assert_eq!(
            Representation::negotiate(Some(&format!(
                "application/json;as=Table;v=v1;g=meta.k8s.io;q=0.5,{KUBE_RS_GET}"
            ))),
            Partial(MetaVersion::V1)
        );
        // Unknown targets fall through to plain JSON.
        assert_eq!(
            Representation::negotiate(Some(
                "application/json;as=Everything;v=v1;g=meta.k8s.io,application/json"
            )),
            Full
        );
        assert_eq!(
            Representation::negotiate(Some(
                "application/json;as=PartialObjectMetadata;g=example.com;v=v1,application/json"
            )),
            Full
        );
        assert_eq!(
            Representation::negotiate(Some("application/json;as=PartialObjectMetadata")),
            Full
        );
        // The metadata range listed after plain JSON loses; `q` reorders.
        assert_eq!(
            Representation::negotiate(Some(&format!("application/json,{KUBE_RS_GET}"))),
            Full
        );
        assert_eq!(
            Representation::negotiate(Some(&format!("application/json;q=0.5,{KUBE_RS_GET}"))),
            Partial(MetaVersion::V1)
        );
        assert_eq!(
            Representation::negotiate(Some(&format!("{KUBE_RS_GET};q=0,application/json"))),
            Full
        );
        assert_eq!(
            Representation::negotiate(Some(&format!("*/*,{KUBE_RS_GET}"))),
            Partial(MetaVersion::V1)
        );
    }

    #[test]
    fn protobuf_is_chosen_in_order_where_the_resource_offers_it() {
        use Encoding::{Json, Protobuf};
        use Representation::*;
        // kubectl's typed clients (`kubectl create secret ...`).
        const KUBECTL: &str = "application/vnd.kubernetes.protobuf,application/json";
        let builtin = Offer::for_request(true, false);
        let custom = Offer::for_request(false, false);
        let watch = Offer::for_request(true, true);
        assert_eq!(
            Representation::negotiate_for(Some(KUBECTL), builtin),
            (Full, Protobuf)
        );
        // A kind without a protobuf form (a custom resource): the next range, JSON.
        assert_eq!(
            Representation::negotiate_for(Some(KUBECTL), custom),
            (Full, Json)
        );
        assert_eq!(
            Representation::negotiate_for(Some("application/vnd.kubernetes.protobuf"), custom),
            (Full, Json)
        );
        // Order and q decide; wildcards mean JSON (the server's first media type).
        assert_eq!(
            Representation::negotiate_for(
                Some("application/json,application/vnd.kubernetes.protobuf"),
                builtin
            ),
            (Full, Json)
        );
        assert_eq!(
            Representation::negotiate_for(
                Some("application/json;q=0.5,application/vnd.kubernetes.protobuf"),
                builtin
            ),
            (Full, Protobuf)
        );
        assert_eq!(
            Representation::negotiate_for(Some("*/*"), builtin),
            (Full, Json)
        );
        // Metadata in protobuf for any resource; Tables never.
        let metadata_client = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
        assert_eq!(
            Representation::negotiate_for(Some(metadata_client), custom),
            (PartialList(MetaVersion::V1), Protobuf)
        );
        assert_eq!(
            Representation::negotiate_for(
                Some(
                    "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json"
                ),
                builtin
            ),
            (Full, Json)
        );
        // Watches are JSON here.
        assert_eq!(
            Representation::negotiate_for(Some(KUBECTL), watch),
            (Full, Json)
        );
        assert_eq!(
            Representation::negotiate_for(Some(metadata_client), watch),
            (PartialList(MetaVersion::V1), Json)
        );
        // JSON only: as before protobuf was spoken.
        assert_eq!(Representation::negotiate(Some(KUBECTL)), Full);
    }

    #[test]
    fn errors_follow_the_first_plain_json_or_protobuf_range() {
        assert_eq!(
            error_encoding(Some("application/vnd.kubernetes.protobuf,application/json")),
            Encoding::Protobuf
        );
        assert_eq!(
            error_encoding(Some("application/json,application/vnd.kubernetes.protobuf")),
            Encoding::Json
        );
        // Conversions (`as=`) do not apply to Status: the next range decides.
        assert_eq!(
            error_encoding(Some(
                "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
            )),
            Encoding::Json
        );
        assert_eq!(
            error_encoding(Some(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/vnd.kubernetes.protobuf"
            )),
            Encoding::Protobuf
        );
        assert_eq!(error_encoding(None), Encoding::Json);
        assert_eq!(error_encoding(Some("text/plain")), Encoding::Json);
    }

    #[test]
    fn tables_are_rendered_by_the_caller_and_statuses_stay_statuses() {
        let table = Representation::Table(MetaVersion::V1beta1);
        let rendered = table
            .object(json!({"kind": "Secret"}), |object, version| {
                Ok(json!({"kind": "Table", "apiVersion": version.api_version(), "of": object}))
            })
            .unwrap();
        assert_eq!(rendered["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(rendered["of"]["kind"], "Secret");
        let listed = table
            .list(json!({"items": []}), |list, _| {
                Ok(json!({"rows": list["items"]}))
            })
            .unwrap();
        assert_eq!(listed, json!({"rows": []}));
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Success"});
        assert_eq!(table.object(status.clone(), no_table).unwrap(), status);
        assert_eq!(
            table.watch_form().unwrap(),
            WatchForm::Table(MetaVersion::V1beta1)
        );
        assert_eq!(Representation::Full.watch_form().unwrap(), WatchForm::Full);
        assert!(
            Representation::PartialList(MetaVersion::V1)
                .watch_form()
                .is_err()
        );
    }

    #[test]
    fn objects_keep_their_whole_metadata_and_nothing_else() {
        let secret = json!({
            "kind": "Secret", "apiVersion": "v1",
            "metadata": {"name": "a", "namespace": "ns", "resourceVersion": "7", "labels": {"x": "y"}},
            "data": {"k": "dg=="}, "type": "Opaque"
        });
        let partial = Representation::Partial(MetaVersion::V1)
            .object(secret.clone(), no_table)
            .unwrap();
        assert_eq!(
            partial,
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": secret["metadata"]})
        );
        assert_eq!(
            Representation::Full
                .object(secret.clone(), no_table)
                .unwrap(),
            secret
        );
        assert!(matches!(
            Representation::PartialList(MetaVersion::V1).object(secret.clone(), no_table),
            Err(Error::NotAcceptable(_))
        ));
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Success"});
        assert_eq!(
            Representation::Partial(MetaVersion::V1)
                .object(status.clone(), no_table)
                .unwrap(),
            status
        );

        let list = json!({
            "kind": "SecretList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "9", "continue": "t", "remainingItemCount": 3},
            "items": [secret]
        });
        let partial = Representation::PartialList(MetaVersion::V1beta1)
            .list(list.clone(), no_table)
            .unwrap();
        assert_eq!(partial["kind"], "PartialObjectMetadataList");
        assert_eq!(partial["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(partial["metadata"], list["metadata"]);
        assert_eq!(partial["items"][0]["kind"], "PartialObjectMetadata");
        assert_eq!(partial["items"][0]["apiVersion"], "meta.k8s.io/v1beta1");
        assert_eq!(partial["items"][0]["metadata"]["name"], "a");
        assert!(partial["items"][0].get("data").is_none());
        assert!(matches!(
            Representation::Partial(MetaVersion::V1).list(list, no_table),
            Err(Error::NotAcceptable(_))
        ));
        assert_eq!(
            partial_list(
                &json!({"metadata": {"resourceVersion": "1"}}),
                MetaVersion::V1
            )["items"],
            json!([])
        );
    }
}
