//! Metadata-only responses (`PartialObjectMetadata`) through kube-rs and raw HTTP: get, list
//! with selectors and pages, watches (live, replayed, bookmarks), `metadata_watcher` and
//! `watcher` over `Api<PartialObjectMeta<K>>` in both list modes, a custom resource, and Accept
//! negotiation (fallbacks, 406 on a list/object mismatch; `as=Table` is tests/tests/table.rs). Every metadata-only
//! answer is checked for carrying the object's whole metadata and nothing else.

use futures::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use kube_sandbox::fidelity::Target;
use kube_sandbox::raw_watch::RawWatch;
mod upstream;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use upstream::cert_manager_crds;

/// What kube-rs 5 sends for get and watch (`kube-core/src/request.rs`).
const META: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
/// What kube-rs 5 sends for list.
const META_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

/// The target (the sandbox, or a real kube-apiserver with `RELAY_FIDELITY_TARGET=real`) and a
/// client whose default namespace is the test's.
async fn start() -> (Target, kube::Client) {
    let target = Target::start().await.unwrap();
    let client = target.client();
    (target, client)
}

/// `path` with the `default` namespace it names replaced by the client's (the test's).
fn in_ns(client: &kube::Client, path: &str) -> String {
    path.replace(
        "/namespaces/default/",
        &format!("/namespaces/{}/", client.default_namespace()),
    )
}

fn secret(name: &str, labels: &[(&str, &str)], value: &str) -> Secret {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "annotations": {"example.com/owner": "metadata-tests"},
        },
        "stringData": {"k": value},
    }))
    .unwrap()
}

fn rv_of(meta: &kube::api::ObjectMeta) -> String {
    meta.resource_version.clone().expect("a resourceVersion")
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// kube-rs's view of the type fields: a metadata-only answer says so.
fn assert_partial_types<K>(object: &PartialObjectMeta<K>) {
    let types = object.types.as_ref().expect("type fields");
    assert_eq!(types.kind, "PartialObjectMetadata");
    assert_eq!(types.api_version, "meta.k8s.io/v1");
}

/// A raw JSON object is `PartialObjectMetadata` and carries nothing but its metadata.
fn assert_metadata_only(object: &Value) {
    let keys: Vec<&str> = object
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["apiVersion", "kind", "metadata"], "{object}");
    assert_eq!(object["kind"], "PartialObjectMetadata", "{object}");
    assert_eq!(object["apiVersion"], "meta.k8s.io/v1", "{object}");
    assert!(object["metadata"]["name"].is_string(), "{object}");
}

/// A raw GET with the given Accept header (none when `None`): status, Content-Type, body.
async fn raw_get(client: &kube::Client, path: &str, accept: Option<&str>) -> (u16, String, Value) {
    let (status, content_type, bytes) = raw_get_bytes(client, path, accept).await;
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
    (status, content_type, body)
}

/// A raw GET with the given Accept header: status, Content-Type and the body's bytes.
async fn raw_get_bytes(
    client: &kube::Client,
    path: &str,
    accept: Option<&str>,
) -> (u16, String, Vec<u8>) {
    let mut request = http::Request::get(in_ns(client, path));
    if let Some(accept) = accept {
        request = request.header(http::header::ACCEPT, accept);
    }
    let response = client
        .send(request.body(kube::client::Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, bytes.to_vec())
}

#[tokio::test]
async fn get_metadata_returns_a_secrets_whole_metadata_and_no_data() {
    let (_s, client) = start().await;
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let created = secrets
        .create(
            &PostParams::default(),
            &secret("s", &[("app", "web")], "hunter2"),
        )
        .await
        .unwrap();

    let meta = secrets.get_metadata("s").await.unwrap();
    assert_partial_types(&meta);
    assert_eq!(meta.metadata.name.as_deref(), Some("s"));
    assert_eq!(
        meta.metadata.namespace.as_deref(),
        Some(client.default_namespace())
    );
    assert_eq!(meta.metadata.labels, Some(labels(&[("app", "web")])));
    assert_eq!(
        meta.metadata.annotations,
        Some(labels(&[("example.com/owner", "metadata-tests")]))
    );
    assert_eq!(rv_of(&meta.metadata), rv_of(&created.metadata));
    assert_eq!(meta.metadata.uid, created.metadata.uid);
    assert_eq!(
        meta.metadata.creation_timestamp,
        created.metadata.creation_timestamp
    );

    // kube 5's Api<PartialObjectMeta<K>> asks for metadata by itself.
    let partial: Api<PartialObjectMeta<Secret>> = Api::default_namespaced(client.clone());
    let via_partial_api = partial.get("s").await.unwrap();
    assert_partial_types(&via_partial_api);
    assert_eq!(via_partial_api.metadata, meta.metadata);

    // On the wire: exactly the full object's metadata (managedFields included), nothing else.
    let path = "/api/v1/namespaces/default/secrets/s";
    let (code, content_type, full) = raw_get(&client, path, None).await;
    assert_eq!(code, 200);
    assert_eq!(content_type, "application/json");
    assert_eq!(full["kind"], "Secret");
    assert_eq!(full["data"]["k"], "aHVudGVyMg==");
    let (code, content_type, partial_json) = raw_get(&client, path, Some(META)).await;
    assert_eq!(code, 200);
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_metadata_only(&partial_json);
    assert_eq!(partial_json["metadata"], full["metadata"]);
    assert!(
        partial_json["metadata"]["managedFields"].is_array(),
        "{partial_json}"
    );
    assert!(!partial_json.to_string().contains("aHVudGVyMg=="));

    // Errors stay Status objects.
    let missing = secrets.get_metadata("nope").await.unwrap_err();
    match missing {
        kube::Error::Api(status) => {
            assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
        }
        other => panic!("expected a 404, got {other:?}"),
    }
}

#[tokio::test]
async fn accept_negotiation_honours_the_first_supported_media_type() {
    let (_s, client) = start().await;
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    secrets
        .create(&PostParams::default(), &secret("s", &[("app", "web")], "v"))
        .await
        .unwrap();
    let path = "/api/v1/namespaces/default/secrets/s";
    let full_secret = |body: &Value| {
        assert_eq!(body["kind"], "Secret", "{body}");
        assert_eq!(body["apiVersion"], "v1", "{body}");
        assert_eq!(body["data"]["k"], "dg==", "{body}");
        assert_eq!(body["type"], "Opaque", "{body}");
    };

    // Plain JSON still gets full objects, through kube-rs and on the wire.
    let typed = secrets.get("s").await.unwrap();
    assert_eq!(typed.data.unwrap()["k"].0, b"v");
    for accept in [
        None,
        Some("application/json"),
        Some("*/*"),
        // A Table in a version meta.k8s.io does not have falls through to JSON (Tables
        // themselves: tests/tests/table.rs).
        Some("application/json;as=Table;v=v2;g=meta.k8s.io,application/json"),
        // Plain JSON listed first wins over metadata listed second.
        Some(&format!("application/json,{META}")),
    ] {
        let (code, _, body) = raw_get(&client, path, accept).await;
        assert_eq!(code, 200, "{accept:?}");
        full_secret(&body);
    }

    // client-go's metadata client: protobuf first, which kube-apiserver serves for metadata.
    let (code, content_type, bytes) = raw_get_bytes(
        &client,
        path,
        Some(&format!(
            "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,{META},application/json"
        )),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(content_type, "application/vnd.kubernetes.protobuf");
    let unknown = {
        use prost::Message;
        let body = bytes.strip_prefix(b"k8s\0").expect("the protobuf magic");
        k8s_pb::apimachinery::pkg::runtime::Unknown::decode(body).unwrap()
    };
    let type_meta = unknown.type_meta.unwrap();
    assert_eq!(type_meta.api_version.as_deref(), Some("meta.k8s.io/v1"));
    assert_eq!(type_meta.kind.as_deref(), Some("PartialObjectMetadata"));
    let partial = {
        use prost::Message;
        k8s_pb::apimachinery::pkg::apis::meta::v1::PartialObjectMetadata::decode(
            unknown.raw.unwrap().as_slice(),
        )
        .unwrap()
    };
    assert_eq!(partial.metadata.unwrap().labels["app"], "web");

    // meta.k8s.io/v1beta1 is served too.
    let (code, _, body) = raw_get(
        &client,
        path,
        Some("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1"),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(body["apiVersion"], "meta.k8s.io/v1beta1");
    assert_eq!(body["kind"], "PartialObjectMetadata");
    assert!(body.get("data").is_none(), "{body}");

    // A list form for one object, or an object form for a list: 406 NotAcceptable.
    let (code, _, body) = raw_get(&client, path, Some(META_LIST)).await;
    assert_eq!(code, 406, "{body}");
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "NotAcceptable");
    let (code, _, body) = raw_get(&client, "/api/v1/namespaces/default/secrets", Some(META)).await;
    assert_eq!(code, 406, "{body}");
    assert_eq!(body["reason"], "NotAcceptable");
    // A known difference (README): kube-apiserver 1.35 opens this watch (200).
    if !kube_sandbox::fidelity::is_real() {
        let (code, _, body) = raw_get(
            &client,
            "/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds=1",
            Some(META_LIST),
        )
        .await;
        assert_eq!(code, 406, "{body}");
    }
}

#[tokio::test]
async fn list_metadata_with_label_selectors_and_pages() {
    let (_s, client) = start().await;
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let mut rvs = BTreeMap::new();
    for (name, app) in [
        ("a", "web"),
        ("b", "db"),
        ("c", "web"),
        ("d", "web"),
        ("e", "web"),
    ] {
        let created = secrets
            .create(&PostParams::default(), &secret(name, &[("app", app)], name))
            .await
            .unwrap();
        rvs.insert(name.to_string(), rv_of(&created.metadata));
    }

    let first = secrets
        .list_metadata(&ListParams::default().labels("app=web").limit(2))
        .await
        .unwrap();
    assert_eq!(first.types.kind, "PartialObjectMetadataList");
    assert_eq!(first.types.api_version, "meta.k8s.io/v1");
    let names = |items: &[PartialObjectMeta<Secret>]| {
        items
            .iter()
            .map(|i| i.metadata.name.clone().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&first.items), ["a", "c"]);
    let token = first.metadata.continue_.clone().expect("a continue token");
    assert!(!token.is_empty());
    let list_rv = first.metadata.resource_version.clone().unwrap();
    assert!(!list_rv.is_empty());
    for item in &first.items {
        assert_partial_types(item);
        assert_eq!(
            rv_of(&item.metadata),
            rvs[item.metadata.name.as_deref().unwrap()]
        );
        assert_eq!(item.metadata.labels, Some(labels(&[("app", "web")])));
    }

    let second = secrets
        .list_metadata(
            &ListParams::default()
                .labels("app=web")
                .limit(2)
                .continue_token(&token),
        )
        .await
        .unwrap();
    assert_eq!(names(&second.items), ["d", "e"]);
    assert!(
        second
            .metadata
            .continue_
            .as_deref()
            .unwrap_or("")
            .is_empty()
    );
    assert_eq!(
        second.metadata.resource_version.as_deref(),
        Some(list_rv.as_str()),
        "every page is the same snapshot"
    );
    second.items.iter().for_each(assert_partial_types);

    let db = secrets
        .list_metadata(&ListParams::default().labels("app=db"))
        .await
        .unwrap();
    assert_eq!(names(&db.items), ["b"]);
    let by_field = secrets
        .list_metadata(
            &ListParams::default()
                .labels("app")
                .fields("metadata.name=c"),
        )
        .await
        .unwrap();
    assert_eq!(names(&by_field.items), ["c"]);

    // On the wire: list metadata kept, items metadata-only.
    let (code, _, raw) = raw_get(
        &client,
        "/api/v1/namespaces/default/secrets?labelSelector=app%3Dweb&limit=3",
        Some(META_LIST),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(raw["kind"], "PartialObjectMetadataList");
    assert_eq!(raw["apiVersion"], "meta.k8s.io/v1");
    assert!(raw["metadata"]["resourceVersion"].is_string(), "{raw}");
    assert!(raw["metadata"]["continue"].is_string(), "{raw}");
    // With a selector the server cannot know how many remain, and says nothing.
    assert_eq!(raw["metadata"].get("remainingItemCount"), None, "{raw}");
    let items = raw["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    items.iter().for_each(assert_metadata_only);
    let (code, _, raw) = raw_get(
        &client,
        "/api/v1/namespaces/default/secrets?limit=3",
        Some(META_LIST),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(raw["metadata"]["remainingItemCount"], 2, "{raw}");

    // The ordinary list is unchanged: full Secrets with their data.
    let full = secrets
        .list(&ListParams::default().labels("app=db"))
        .await
        .unwrap();
    assert_eq!(full.types.kind, "SecretList");
    assert_eq!(full.items[0].data.as_ref().unwrap()["k"].0, b"b");
}

/// Creates, relabels and deletes `name`; returns the three resourceVersions.
async fn churn(secrets: &Api<Secret>, name: &str) -> [String; 3] {
    let created = secrets
        .create(
            &PostParams::default(),
            &secret(name, &[("app", "web")], "1"),
        )
        .await
        .unwrap();
    let patched = secrets
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"tier": "gold"}}, "stringData": {"k": "2"}}),
            ),
        )
        .await
        .unwrap();
    // A Secret's DELETE answers a Status (no resourceVersion), so the deletion's version is
    // read from a watch of its own that starts after the patch.
    let mut deletions = secrets
        .watch(
            &WatchParams::default()
                .fields(&format!("metadata.name={name}"))
                .timeout(10),
            &rv_of(&patched.metadata),
        )
        .await
        .unwrap()
        .boxed();
    let status = secrets
        .delete(name, &DeleteParams::default())
        .await
        .unwrap()
        .right()
        .expect("a built-in's DELETE answers a Status");
    assert_eq!(
        status.status,
        Some(kube::core::response::StatusSummary::Success)
    );
    let deleted = loop {
        match deletions
            .try_next()
            .await
            .unwrap()
            .expect("the watch is open")
        {
            WatchEvent::Deleted(object) => break object,
            WatchEvent::Bookmark(_) => {}
            other => panic!("{other:?}"),
        }
    };
    [
        rv_of(&created.metadata),
        rv_of(&patched.metadata),
        rv_of(&deleted.metadata),
    ]
}

#[tokio::test]
async fn watch_metadata_sees_added_modified_deleted_with_resource_versions_and_no_data() {
    let (_s, client) = start().await;
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let start_rv = secrets
        .list_metadata(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let params = WatchParams::default().timeout(10);

    // Three live watchers of the same changes: metadata (shared encoding), metadata with a
    // selector (encoded per watcher), and full objects (the other shared encoding).
    let mut plain = secrets
        .watch_metadata(&params, &start_rv)
        .await
        .unwrap()
        .boxed();
    let mut selected = secrets
        .watch_metadata(&params.clone().labels("app=web"), &start_rv)
        .await
        .unwrap()
        .boxed();
    let mut full = secrets.watch(&params, &start_rv).await.unwrap().boxed();
    // A raw watch that is known to be in its live phase: its first bookmark follows the
    // subscription.
    let mut raw = RawWatch::open(
        &client,
        &in_ns(
            &client,
            &format!(
            "/api/v1/namespaces/default/secrets?watch=true&allowWatchBookmarks=true&timeoutSeconds=10&resourceVersion={start_rv}"
        ),
        ),
        META,
    )
    .await;
    // A known difference (README): kube-apiserver sends bookmarks periodically, none at once;
    // the watch starts at start_rv, so it sees the changes either way.
    if !kube_sandbox::fidelity::is_real() {
        let first = raw.next().await.unwrap();
        assert_eq!(first["type"], "BOOKMARK");
        assert_metadata_only_bookmark(&first["object"], false);
    }

    let rvs = churn(&secrets, "w").await;

    for stream in [&mut plain, &mut selected] {
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let event = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
                .await
                .expect("an event within 5s")
                .unwrap()
                .expect("the watch is open");
            let (kind, object) = match event {
                WatchEvent::Added(o) => ("ADDED", o),
                WatchEvent::Modified(o) => ("MODIFIED", o),
                WatchEvent::Deleted(o) => ("DELETED", o),
                WatchEvent::Bookmark(_) => continue,
                WatchEvent::Error(e) => panic!("watch error: {e:?}"),
            };
            assert_partial_types(&object);
            assert_eq!(object.metadata.name.as_deref(), Some("w"));
            seen.push((kind, rv_of(&object.metadata), object.metadata.labels));
        }
        let gold = Some(labels(&[("app", "web"), ("tier", "gold")]));
        assert_eq!(
            seen,
            [
                ("ADDED", rvs[0].clone(), Some(labels(&[("app", "web")]))),
                ("MODIFIED", rvs[1].clone(), gold.clone()),
                ("DELETED", rvs[2].clone(), gold),
            ]
        );
    }

    let mut full_seen = Vec::new();
    while full_seen.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(5), full.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(s) | WatchEvent::Modified(s) | WatchEvent::Deleted(s) => {
                full_seen.push((rv_of(&s.metadata), s.data.unwrap()["k"].0.clone()));
            }
            _ => {}
        }
    }
    assert_eq!(
        full_seen,
        [
            (rvs[0].clone(), b"1".to_vec()),
            (rvs[1].clone(), b"2".to_vec()),
            (rvs[2].clone(), b"2".to_vec()),
        ],
        "full watchers still get full objects"
    );

    for (want_type, want_rv) in ["ADDED", "MODIFIED", "DELETED"].iter().zip(&rvs) {
        let event = raw.next_change().await;
        assert_eq!(event["type"], *want_type);
        assert_metadata_only(&event["object"]);
        assert_eq!(event["object"]["metadata"]["resourceVersion"], **want_rv);
    }

    // Replayed from history (not live): the same events, metadata-only.
    let mut replay = RawWatch::open(
        &client,
        &in_ns(
            &client,
            &format!(
            "/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds=1&resourceVersion={start_rv}"
        ),
        ),
        META,
    )
    .await;
    for (want_type, want_rv) in ["ADDED", "MODIFIED", "DELETED"].iter().zip(&rvs) {
        let event = replay.next().await.expect("a replayed event");
        assert_eq!(event["type"], *want_type);
        assert_metadata_only(&event["object"]);
        assert_eq!(event["object"]["metadata"]["resourceVersion"], **want_rv);
    }
    assert!(replay.next().await.is_none(), "closed at timeoutSeconds");
}

fn assert_metadata_only_bookmark(object: &Value, initial_end: bool) {
    assert_eq!(object["kind"], "PartialObjectMetadata", "{object}");
    assert_eq!(object["apiVersion"], "meta.k8s.io/v1", "{object}");
    assert!(
        object["metadata"]["resourceVersion"].is_string(),
        "{object}"
    );
    assert_eq!(
        object["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true",
        initial_end,
        "{object}"
    );
}

#[tokio::test]
async fn streaming_list_sends_metadata_only_events_and_bookmarks() {
    let (_s, client) = start().await;
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let created = secrets
        .create(&PostParams::default(), &secret("x", &[("app", "web")], "v"))
        .await
        .unwrap();
    let mut watch = RawWatch::open(
        &client,
        &in_ns(
            &client,
            "/api/v1/namespaces/default/secrets?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0&allowWatchBookmarks=true&timeoutSeconds=1",
        ),
        META,
    )
    .await;
    let added = watch.next().await.unwrap();
    assert_eq!(added["type"], "ADDED");
    assert_metadata_only(&added["object"]);
    assert_eq!(
        added["object"]["metadata"]["resourceVersion"],
        rv_of(&created.metadata)
    );
    let end = watch.next().await.unwrap();
    assert_eq!(end["type"], "BOOKMARK");
    assert_metadata_only_bookmark(&end["object"], true);
}

type MetaEvents = futures::stream::BoxStream<
    'static,
    Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error>,
>;

async fn next_event(stream: &mut MetaEvents) -> watcher::Event<PartialObjectMeta<Secret>> {
    tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .expect("an event within 10s")
        .unwrap()
        .expect("the watcher is running")
}

#[tokio::test]
async fn metadata_watchers_see_changes_in_both_list_modes() {
    for streaming in [false, true] {
        for recommended in [false, true] {
            let (_s, client) = start().await;
            let secrets: Api<Secret> = Api::default_namespaced(client.clone());
            let before = secrets
                .create(
                    &PostParams::default(),
                    &secret("before", &[("app", "web")], "0"),
                )
                .await
                .unwrap();
            let config = if streaming {
                watcher::Config::default().streaming_lists()
            } else {
                watcher::Config::default()
            };
            let case = format!("streaming={streaming} recommended={recommended}");
            let mut stream: MetaEvents = if recommended {
                // kube 5's replacement for metadata_watcher.
                let api: Api<PartialObjectMeta<Secret>> = Api::default_namespaced(client.clone());
                watcher(api, config).boxed()
            } else {
                #[allow(deprecated)]
                let stream = kube::runtime::metadata_watcher(secrets.clone(), config);
                stream.boxed()
            };
            assert!(
                matches!(next_event(&mut stream).await, watcher::Event::Init),
                "{case}"
            );
            match next_event(&mut stream).await {
                watcher::Event::InitApply(object) => {
                    assert_partial_types(&object);
                    assert_eq!(object.metadata.name.as_deref(), Some("before"), "{case}");
                    assert_eq!(rv_of(&object.metadata), rv_of(&before.metadata), "{case}");
                }
                other => panic!("{case}: expected InitApply, got {other:?}"),
            }
            assert!(
                matches!(next_event(&mut stream).await, watcher::Event::InitDone),
                "{case}"
            );

            let rvs = churn(&secrets, "after").await;
            let mut seen = Vec::new();
            while seen.len() < 3 {
                let (kind, object) = match next_event(&mut stream).await {
                    watcher::Event::Apply(o) => ("apply", o),
                    watcher::Event::Delete(o) => ("delete", o),
                    other => panic!("{case}: unexpected {other:?}"),
                };
                assert_partial_types(&object);
                assert_eq!(object.metadata.name.as_deref(), Some("after"), "{case}");
                seen.push((kind, rv_of(&object.metadata)));
            }
            assert_eq!(
                seen,
                [
                    ("apply", rvs[0].clone()),
                    ("apply", rvs[1].clone()),
                    ("delete", rvs[2].clone()),
                ],
                "{case}"
            );
        }
    }
}

const CSR_B64: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlJQkRUQ0J0QUlCQURBVU1SSXdFQVlEVlFRRERBbGpiSFZ6ZEdWeUxXRXdXVEFUQmdjcWhrak9QUUlCQmdncQpoa2pPUFFNQkJ3TkNBQVRoaHNQeS93PT0KLS0tLS1FTkQgQ0VSVElGSUNBVEUgUkVRVUVTVC0tLS0tCg==";

#[tokio::test]
async fn custom_resources_serve_metadata_only_too() {
    let (sandbox, client) = start().await;
    sandbox.load_crds(&cert_manager_crds()).await.unwrap();
    let gvk = GroupVersionKind::gvk("cert-manager.io", "v1", "CertificateRequest");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "certificaterequests");
    let api: Api<DynamicObject> = Api::default_namespaced_with(client.clone(), &resource);
    let body: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"name": "cr", "labels": {"team": "relay"}},
        "spec": {
            "request": CSR_B64,
            "issuerRef": {"name": "relay", "kind": "RelayIssuer", "group": "relaytls.dev"},
        },
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &body).await.unwrap();
    let start_rv = rv_of(&created.metadata);

    let meta = api.get_metadata("cr").await.unwrap();
    assert_partial_types(&meta);
    assert_eq!(meta.metadata.labels, Some(labels(&[("team", "relay")])));
    assert_eq!(meta.metadata.generation, Some(1));
    assert_eq!(rv_of(&meta.metadata), start_rv);

    let path = "/apis/cert-manager.io/v1/namespaces/default/certificaterequests/cr";
    let (_, _, full) = raw_get(&client, path, None).await;
    assert_eq!(full["spec"]["request"], CSR_B64);
    let (code, _, raw) = raw_get(&client, path, Some(META)).await;
    assert_eq!(code, 200);
    assert_metadata_only(&raw);
    assert_eq!(raw["metadata"], full["metadata"]);

    let list = api
        .list_metadata(&ListParams::default().labels("team=relay"))
        .await
        .unwrap();
    assert_eq!(list.types.kind, "PartialObjectMetadataList");
    assert_eq!(list.items.len(), 1);
    assert_partial_types(&list.items[0]);
    assert_eq!(list.items[0].metadata.uid, created.metadata.uid);

    let mut watch = api
        .watch_metadata(&WatchParams::default().timeout(10), &start_rv)
        .await
        .unwrap()
        .boxed();
    // patch_metadata answers in the metadata form too.
    let patched = api
        .patch_metadata(
            "cr",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"stage": "two"}}})),
        )
        .await
        .unwrap();
    assert_partial_types(&patched);
    assert_eq!(
        patched.metadata.labels,
        Some(labels(&[("stage", "two"), ("team", "relay")]))
    );
    assert_eq!(patched.metadata.generation, Some(1), "metadata only");
    assert_ne!(rv_of(&patched.metadata), start_rv);
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), watch.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match event {
            WatchEvent::Modified(object) => {
                assert_partial_types(&object);
                assert_eq!(rv_of(&object.metadata), rv_of(&patched.metadata));
                assert_eq!(object.metadata.labels, patched.metadata.labels);
                break;
            }
            WatchEvent::Bookmark(_) => {}
            other => panic!("expected MODIFIED, got {other:?}"),
        }
    }
}
