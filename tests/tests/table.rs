//! Server-side Tables (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`), what
//! `kubectl get` prints: over raw HTTP (columns and cells of our `RelayCluster` CRD's printer
//! columns and of a CRD without any, `includeObject`, pages, v1beta1, watches, built-in
//! printers, errors) and with the real kubectl (`get`, `-o wide`, `-A`, `--sort-by`, `--watch`,
//! Secrets, Namespaces, CRDs).
//!
//! The kubectl tests are skipped (with a message) only when the kubectl binary is absent.

use http_body_util::BodyExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube_sandbox::fidelity::{self, Target};
use kube_sandbox::kubectl::Kubectl;
use kube_sandbox::raw_watch::RawWatch;
use relay_sandbox::harness::{self, CONTROLLER_NAMESPACE};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// What `kubectl get` sends.
const KUBECTL_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";
const TABLE_V1BETA1: &str = "application/json;as=Table;v=v1beta1;g=meta.k8s.io";
const CLUSTERS: &str = "/apis/relaytls.dev/v1alpha1/namespaces/relay-tls/relayclusters";

/// The namespace of the RelayClusters: `relay-tls` on the sandbox; on a real cluster (shared by
/// every test) the test's own namespace, the client's default.
fn relay_ns(client: &kube::Client) -> Cow<'static, str> {
    if fidelity::is_real() {
        Cow::Owned(client.default_namespace().to_string())
    } else {
        Cow::Borrowed(CONTROLLER_NAMESPACE)
    }
}

/// The tenant namespace: `team-a` on the sandbox, `<test namespace>-team-a` on a real cluster.
fn team_ns(client: &kube::Client) -> Cow<'static, str> {
    if fidelity::is_real() {
        Cow::Owned(format!("{}-team-a", client.default_namespace()))
    } else {
        Cow::Borrowed("team-a")
    }
}

/// `path` with the namespaces it names (`relay-tls`, `team-a`) made this test's.
fn at(client: &kube::Client, path: &str) -> String {
    path.replace(
        "namespaces/relay-tls",
        &format!("namespaces/{}", relay_ns(client)),
    )
    .replace(
        "namespaces/team-a",
        &format!("namespaces/{}", team_ns(client)),
    )
}

fn clusters(client: &kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("relaytls.dev", "v1alpha1", "RelayCluster");
    Api::namespaced_with(
        client.clone(),
        &relay_ns(client),
        &ApiResource::from_gvk_with_plural(&gvk, "relayclusters"),
    )
}

/// RFC 3339 (whole seconds) for now plus `seconds` (negative: in the past).
/// Asserts that a cell is an RFC 3339 time about `seconds` from now.
fn assert_near(cell: &Value, seconds: i64) {
    let text = cell
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {cell}"));
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text}: {e}"));
    let expected = time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds);
    assert!((t - expected).abs() < time::Duration::minutes(2), "{text}");
}

fn from_now(seconds: i64) -> String {
    let t = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        + time::Duration::seconds(seconds);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Creates a RelayCluster, then writes `status` (if any) through the status subresource with a
/// merge patch, as the relay server does.
async fn cluster(client: &kube::Client, name: &str, spec: Value, status: Option<Value>) {
    let api = clusters(client);
    let object: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "relaytls.dev/v1alpha1", "kind": "RelayCluster",
        "metadata": {"name": name, "namespace": relay_ns(client)},
        "spec": spec
    }))
    .unwrap();
    api.create(&Default::default(), &object).await.unwrap();
    if let Some(status) = status {
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .unwrap();
    }
}

/// `east`: connected, seen 10 minutes ago, its certificate expired 2 days ago. `west`:
/// suspended, not connected, certificate expiring in 30 days. `north`: no status yet.
async fn world() -> (Target, kube::Client) {
    let sandbox = if fidelity::is_real() {
        let target = Target::start().await.unwrap();
        for crd in relay_issuer::api::crds().into_values() {
            target
                .create_crd(serde_json::to_value(&crd).unwrap())
                .await
                .unwrap();
        }
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(target.client());
        let team = serde_json::from_value(json!({"metadata": {"name": team_ns(&target.client())}}))
            .unwrap();
        namespaces.create(&Default::default(), &team).await.unwrap();
        target
    } else {
        Target::from_sandbox(harness::sandbox().await.unwrap()).unwrap()
    };
    let client = sandbox.client();
    cluster(
        &client,
        "east",
        json!({"description": "b"}),
        Some(json!({
            "connected": true, "lastSeen": from_now(-600), "certificateSerial": "0a:1b:2c",
            "certificateNotAfter": from_now(-2 * 86400), "agentVersion": "0.1.0", "streams": 1,
            "replica": "relay-0"
        })),
    )
    .await;
    cluster(
        &client,
        "west",
        json!({"description": "c", "suspended": true}),
        Some(json!({
            "connected": false, "lastSeen": from_now(-3 * 3600), "certificateSerial": "ff:01",
            "certificateNotAfter": from_now(30 * 86400), "agentVersion": "0.2.0"
        })),
    )
    .await;
    cluster(&client, "north", json!({"description": "a"}), None).await;
    (sandbox, client)
}

async fn raw(client: &kube::Client, method: &str, path: &str, accept: &str) -> (u16, Value) {
    let request = http::Request::builder()
        .method(method)
        .uri(at(client, path))
        .header(http::header::ACCEPT, accept)
        .body(kube::client::Body::empty())
        .unwrap();
    let response = client.send(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
    (status, body)
}

async fn get_table(client: &kube::Client, path: &str) -> Value {
    let (code, body) = raw(client, "GET", path, KUBECTL_ACCEPT).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["kind"], "Table", "{body}");
    body
}

fn column_names(table: &Value) -> Vec<&str> {
    table["columnDefinitions"]
        .as_array()
        .unwrap_or_else(|| panic!("no columnDefinitions: {table}"))
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

fn is_seconds_age(cell: &Value) -> bool {
    cell.as_str()
        .and_then(|s| s.strip_suffix('s'))
        .is_some_and(|n| n.parse::<u32>().is_ok())
}

/// The row whose first cell is `name`.
fn row<'a>(table: &'a Value, name: &str) -> &'a Value {
    table["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cells"][0] == name)
        .unwrap_or_else(|| panic!("no row {name}: {table}"))
}

#[tokio::test]
async fn relay_clusters_as_tables_carry_the_printer_columns() {
    let (_sandbox, client) = world().await;
    let east = clusters(&client).get("east").await.unwrap();

    // One object.
    let table = get_table(&client, &format!("{CLUSTERS}/east")).await;
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        table["metadata"],
        json!({"resourceVersion": east.metadata.resource_version.clone().unwrap()})
    );
    assert_eq!(
        column_names(&table),
        [
            "Name",
            "Connected",
            "Suspended",
            "Last Seen",
            "Serial",
            "Cert Expires",
            "Replica",
            "Agent",
            "Root",
            "Age"
        ]
    );
    let columns = table["columnDefinitions"].as_array().unwrap();
    assert_eq!(columns[0]["type"], "string");
    assert_eq!(columns[0]["format"], "name");
    assert!(
        columns[0]["description"]
            .as_str()
            .unwrap()
            .starts_with("Name must be unique within a namespace"),
        "{table}"
    );
    let types: Vec<(&str, i64)> = columns
        .iter()
        .map(|c| (c["type"].as_str().unwrap(), c["priority"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        types,
        [
            ("string", 0),
            ("boolean", 0),
            ("boolean", 0),
            ("date", 0),
            ("string", 0),
            ("string", 0),
            ("string", 1),
            ("string", 1),
            ("string", 1),
            ("date", 0)
        ]
    );
    assert_eq!(
        columns[1]["description"],
        "Custom resource definition column (in JSONPath format): .status.connected"
    );
    let rows = table["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let cells = rows[0]["cells"].as_array().unwrap();
    // Booleans stay booleans; dates are ages rendered by the server; the expiry is a string
    // column (a date column would show a future expiry as `<invalid>`), so it is the timestamp.
    assert_eq!(
        [&cells[..5], &cells[6..8]].concat(),
        [
            json!("east"),
            json!(true),
            json!(null),
            json!("10m"),
            json!("0a:1b:2c"),
            json!("relay-0"),
            json!("0.1.0")
        ],
        "{table}"
    );
    assert_near(&cells[5], -2 * 86400);
    assert_eq!(cells[8], json!(null), "no root known: {table}");
    assert!(is_seconds_age(&cells[9]), "{table}");
    // By default each row carries the object's PartialObjectMetadata.
    let object = &rows[0]["object"];
    assert_eq!(object["kind"], "PartialObjectMetadata");
    assert_eq!(object["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(object["metadata"]["name"], "east");
    assert_eq!(object["metadata"]["namespace"], relay_ns(&client).as_ref());
    assert!(object.get("spec").is_none() && object.get("status").is_none());

    // A list: the expiry timestamp as written, and missing values are null, as kube-apiserver
    // renders them.
    let table = get_table(&client, CLUSTERS).await;
    assert_eq!(table["rows"].as_array().unwrap().len(), 3);
    let west = row(&table, "west")["cells"].as_array().unwrap();
    assert_eq!(
        west[..8],
        [
            json!("west"),
            json!(false),
            json!(true),
            json!("3h"),
            json!("ff:01"),
            west[5].clone(),
            json!(null),
            json!("0.2.0")
        ]
    );
    assert_near(&west[5], 30 * 86400);
    let north = row(&table, "north")["cells"].as_array().unwrap();
    assert_eq!(
        north[..8],
        [
            json!("north"),
            json!(null),
            json!(null),
            json!(null),
            json!(null),
            json!(null),
            json!(null),
            json!(null)
        ]
    );
    assert!(is_seconds_age(&north[9]));
    assert!(
        table["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|rv| !rv.is_empty())
    );
    assert!(table["metadata"].get("continue").is_none(), "{table}");

    // Across namespaces too (`kubectl get -A`).
    // (A real cluster holds other tests' RelayClusters too: count this test's namespace's.)
    let all = get_table(&client, "/apis/relaytls.dev/v1alpha1/relayclusters").await;
    let ours = all["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["object"]["metadata"]["namespace"] == relay_ns(&client).as_ref())
        .count();
    assert_eq!(ours, 3, "{all}");
}

#[tokio::test]
async fn include_object_and_versions() {
    let (_sandbox, client) = world().await;
    let path = format!("{CLUSTERS}/east");

    let table = get_table(&client, &format!("{path}?includeObject=Object")).await;
    let object = &table["rows"][0]["object"];
    assert_eq!(object["kind"], "RelayCluster");
    assert_eq!(object["apiVersion"], "relaytls.dev/v1alpha1");
    assert_eq!(object["spec"]["description"], "b");
    assert_eq!(object["status"]["certificateSerial"], "0a:1b:2c");

    let table = get_table(&client, &format!("{path}?includeObject=None")).await;
    assert_eq!(table["rows"][0]["object"], Value::Null);
    assert_eq!(table["rows"][0]["cells"][0], "east");

    let table = get_table(&client, &format!("{path}?includeObject=Metadata")).await;
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");

    let (code, status) = raw(
        &client,
        "GET",
        &format!("{CLUSTERS}?includeObject=Everything"),
        TABLE,
    )
    .await;
    assert_eq!(code, 400, "{status}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "BadRequest");
    assert_eq!(
        status["message"],
        "Unable to convert to Table as requested: includeObject: Invalid value: \"Everything\": must be 'Metadata', 'Object', 'None', or empty"
    );
    // includeObject means nothing without a Table.
    let (code, plain) = raw(
        &client,
        "GET",
        &format!("{path}?includeObject=Everything"),
        "application/json",
    )
    .await;
    assert_eq!((code, plain["kind"].as_str()), (200, Some("RelayCluster")));

    // meta.k8s.io/v1beta1 is answered in v1beta1, rows' metadata too.
    let (code, table) = raw(&client, "GET", &path, TABLE_V1BETA1).await;
    assert_eq!(code, 200);
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1beta1");
    assert_eq!(
        table["rows"][0]["object"]["apiVersion"],
        "meta.k8s.io/v1beta1"
    );

    // Errors stay Status objects.
    let (code, status) = raw(&client, "GET", &format!("{CLUSTERS}/nope"), TABLE).await;
    assert_eq!(code, 404);
    assert_eq!(status["kind"], "Status");

    // A Table range in a version that does not exist falls through to the next range.
    let (code, body) = raw(
        &client,
        "GET",
        &path,
        "application/json;as=Table;v=v2;g=meta.k8s.io,application/json",
    )
    .await;
    assert_eq!((code, body["kind"].as_str()), (200, Some("RelayCluster")));
}

#[tokio::test]
async fn pages_keep_the_table_shape() {
    let (_sandbox, client) = world().await;
    let first = get_table(&client, &format!("{CLUSTERS}?limit=2")).await;
    assert_eq!(first["rows"].as_array().unwrap().len(), 2);
    assert_eq!(column_names(&first).len(), 10);
    let token = first["metadata"]["continue"]
        .as_str()
        .unwrap_or_else(|| panic!("no continue token: {first}"))
        .to_string();
    assert_eq!(first["metadata"]["remainingItemCount"], 1);
    let rv = first["metadata"]["resourceVersion"].clone();
    let second = get_table(&client, &format!("{CLUSTERS}?limit=2&continue={token}")).await;
    assert_eq!(second["rows"].as_array().unwrap().len(), 1);
    assert_eq!(column_names(&second).len(), 10);
    assert_eq!(second["metadata"]["resourceVersion"], rv);
    assert!(second["metadata"].get("continue").is_none(), "{second}");
    let mut names: Vec<&str> = first["rows"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["rows"].as_array().unwrap())
        .map(|r| r["cells"][0].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["east", "north", "west"]);

    // An empty list is a Table with no rows.
    let empty = get_table(
        &client,
        "/apis/relaytls.dev/v1alpha1/namespaces/team-a/relayclusters",
    )
    .await;
    assert_eq!(empty["rows"], json!([]));
    assert_eq!(column_names(&empty).len(), 10);
}

#[tokio::test]
async fn a_crd_without_printer_columns_gets_name_and_age() {
    let (sandbox, client) = world().await;
    sandbox
        .create_crd(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
            }
        }))
        .await
        .unwrap();
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let widgets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &team_ns(&client),
        &ApiResource::from_gvk_with_plural(&gvk, "widgets"),
    );
    widgets
        .create(
            &Default::default(),
            &serde_json::from_value(json!({
                "apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": {"name": "w1"}, "spec": {"size": 3}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let table = get_table(&client, "/apis/example.com/v1/namespaces/team-a/widgets").await;
    assert_eq!(column_names(&table), ["Name", "Age"]);
    let age = &table["columnDefinitions"][1];
    assert_eq!(age["type"], "date");
    assert!(
        age["description"]
            .as_str()
            .unwrap()
            .starts_with("CreationTimestamp is a timestamp"),
        "{table}"
    );
    let cells = table["rows"][0]["cells"].as_array().unwrap();
    assert_eq!(cells[0], "w1");
    assert!(is_seconds_age(&cells[1]), "{table}");

    // The CRDs themselves: the generic default table, Name and Created At (RFC 3339).
    let crd = get_table(
        &client,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
    )
    .await;
    assert_eq!(column_names(&crd), ["Name", "Created At"]);
    let created = crd["rows"][0]["cells"][1].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
            .is_ok()
            && created.ends_with('Z'),
        "{crd}"
    );
}

#[tokio::test]
async fn built_in_printers() {
    let (_sandbox, client) = world().await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), &team_ns(&client));
    secrets
        .create(
            &Default::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "creds"}, "type": "Opaque",
                "stringData": {"user": "u", "password": "p"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let table = get_table(&client, "/api/v1/namespaces/team-a/secrets").await;
    assert_eq!(column_names(&table), ["Name", "Type", "Data", "Age"]);
    let cells = row(&table, "creds")["cells"].as_array().unwrap();
    assert_eq!(cells[..3], [json!("creds"), json!("Opaque"), json!(2)]);
    assert!(is_seconds_age(&cells[3]), "{table}");

    let table = get_table(&client, "/api/v1/namespaces/team-a").await;
    assert_eq!(column_names(&table), ["Name", "Status", "Age"]);
    assert_eq!(table["rows"][0]["cells"][1], "Active");

    // Events: the same printer for both views of the one store.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), &team_ns(&client));
    events
        .create(
            &Default::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "creds.1"},
                "eventTime": from_now(0).replace('Z', ".000000Z"),
                "type": "Normal", "reason": "Rotated", "action": "Rotate", "note": "rotated",
                "reportingController": "relay-tls/test", "reportingInstance": "test-1",
                "regarding": {"kind": "Secret", "name": "creds", "namespace": team_ns(&client), "apiVersion": "v1"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    for path in [
        "/api/v1/namespaces/team-a/events",
        "/apis/events.k8s.io/v1/namespaces/team-a/events",
    ] {
        let table = get_table(&client, path).await;
        assert_eq!(
            column_names(&table),
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ],
            "{path}"
        );
        let cells = table["rows"][0]["cells"].as_array().unwrap();
        assert_eq!(
            cells[1..7],
            [
                json!("Normal"),
                json!("Rotated"),
                json!("secret/creds"),
                json!(""),
                json!("relay-tls/test, test-1"),
                json!("rotated")
            ],
            "{path}: {table}"
        );
        assert_eq!(cells[8..], [json!(1), json!("creds.1")], "{path}");
    }
}

#[tokio::test]
async fn watches_send_one_row_tables_with_headers_first() {
    let (_sandbox, client) = world().await;
    let mut watch = RawWatch::open(
        &client,
        &at(
            &client,
            &format!("{CLUSTERS}?watch=true&fieldSelector=metadata.name%3Deast"),
        ),
        KUBECTL_ACCEPT,
    )
    .await;
    let added = watch.next().await.expect("the watch is still open");
    assert_eq!(added["type"], "ADDED");
    let table = &added["object"];
    assert_eq!(table["kind"], "Table", "{added}");
    assert_eq!(column_names(table).len(), 10);
    assert_eq!(table["rows"][0]["cells"][4], "0a:1b:2c");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");

    clusters(&client)
        .patch_status(
            "east",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"certificateSerial": "0a:1b:2d"}})),
        )
        .await
        .unwrap();
    let modified = watch.next().await.expect("the watch is still open");
    assert_eq!(modified["type"], "MODIFIED");
    let table = &modified["object"];
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["columnDefinitions"], Value::Null, "{modified}");
    assert_eq!(table["rows"][0]["cells"][4], "0a:1b:2d");
    let rv = clusters(&client)
        .get("east")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    assert_eq!(table["metadata"]["resourceVersion"], rv.as_str());

    // includeObject applies to watches, and is checked before the stream starts.
    let mut full = RawWatch::open(
        &client,
        &at(
            &client,
            &format!(
                "{CLUSTERS}?watch=true&includeObject=Object&fieldSelector=metadata.name%3Dwest"
            ),
        ),
        TABLE,
    )
    .await;
    let added = full.next().await.expect("the watch is still open");
    assert_eq!(added["object"]["rows"][0]["object"]["kind"], "RelayCluster");
    let (code, status) = raw(
        &client,
        "GET",
        &format!("{CLUSTERS}?watch=true&includeObject=All"),
        TABLE,
    )
    .await;
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")));
}

// ---------- the real kubectl ----------

/// kubectl's table output as (column titles, rows keyed by title); cells are cut at the
/// columns' header positions (kubectl aligns cells under their titles), so titles and values
/// may contain single spaces.
fn parse_table(output: &str) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or_default().trim_end().to_string();
    let mut starts: Vec<(usize, String)> = Vec::new();
    let mut i = 0;
    let bytes = header.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b' ' {
            i += 1;
            continue;
        }
        let start = i;
        // A title ends at two spaces in a row (or the end).
        while i < bytes.len() && !(bytes[i] == b' ' && bytes.get(i + 1) == Some(&b' ')) {
            i += 1;
        }
        starts.push((start, header[start..i].trim_end().to_string()));
    }
    let rows = lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            starts
                .iter()
                .enumerate()
                .map(|(n, (start, title))| {
                    let end = starts.get(n + 1).map(|(s, _)| *s).unwrap_or(line.len());
                    let cell = line.get(*start..end.min(line.len())).unwrap_or_default();
                    (title.clone(), cell.trim().to_string())
                })
                .collect()
        })
        .collect();
    (starts.into_iter().map(|(_, title)| title).collect(), rows)
}

fn find_row<'a>(rows: &'a [BTreeMap<String, String>], name: &str) -> &'a BTreeMap<String, String> {
    rows.iter()
        .find(|r| r["NAME"] == name)
        .unwrap_or_else(|| panic!("no row {name}: {rows:?}"))
}

fn cells<'a>(row: &'a BTreeMap<String, String>, titles: &[&str]) -> Vec<&'a str> {
    titles.iter().map(|t| row[*t].as_str()).collect()
}

fn is_age(text: &str) -> bool {
    text.strip_suffix('s')
        .is_some_and(|n| n.parse::<u32>().is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_relayclusters_shows_the_printer_columns() {
    let (sandbox, client) = world().await;
    let Some(k) = Kubectl::for_test(
        "kubectl_get_relayclusters_shows_the_printer_columns",
        sandbox.kubeconfig(),
    ) else {
        return;
    };

    let out = k.ok(&["get", "relayclusters", "-n", &relay_ns(&client)]);
    let (header, rows) = parse_table(&out);
    assert_eq!(
        header,
        [
            "NAME",
            "CONNECTED",
            "SUSPENDED",
            "LAST SEEN",
            "SERIAL",
            "CERT EXPIRES",
            "AGE"
        ],
        "{out}"
    );
    assert_eq!(rows.len(), 3, "{out}");
    let titles = [
        "CONNECTED",
        "SUSPENDED",
        "LAST SEEN",
        "SERIAL",
        "CERT EXPIRES",
    ];
    let east = cells(find_row(&rows, "east"), &titles);
    assert_eq!(east[..4], ["true", "", "10m", "0a:1b:2c"], "{out}");
    assert_near(&json!(east[4]), -2 * 86400);
    let west = cells(find_row(&rows, "west"), &titles);
    assert_eq!(west[..4], ["false", "true", "3h", "ff:01"], "{out}");
    assert_near(&json!(west[4]), 30 * 86400);
    // No status yet: empty cells (kubectl prints a null cell as nothing).
    assert_eq!(
        cells(find_row(&rows, "north"), &titles),
        ["", "", "", "", ""],
        "{out}"
    );
    assert!(rows.iter().all(|r| is_age(&r["AGE"])), "{out}");

    // -o wide adds the priority-1 Replica and Agent columns.
    let out = k.ok(&[
        "get",
        "rcluster",
        "east",
        "-n",
        &relay_ns(&client),
        "-o",
        "wide",
    ]);
    let (header, rows) = parse_table(&out);
    assert_eq!(
        header,
        [
            "NAME",
            "CONNECTED",
            "SUSPENDED",
            "LAST SEEN",
            "SERIAL",
            "CERT EXPIRES",
            "REPLICA",
            "AGENT",
            "ROOT",
            "AGE"
        ],
        "{out}"
    );
    // The exact line a person sees.
    assert!(
        out.starts_with(
            "NAME   CONNECTED   SUSPENDED   LAST SEEN   SERIAL     CERT EXPIRES           REPLICA   AGENT   ROOT   AGE\n"
        ),
        "{out}"
    );
    assert_eq!(find_row(&rows, "east")["REPLICA"], "relay-0");
    assert_eq!(find_row(&rows, "east")["AGENT"], "0.1.0");

    // -A adds NAMESPACE from each row's metadata (the default includeObject).
    let out = k.ok(&["get", "relayclusters", "-A"]);
    let (header, rows) = parse_table(&out);
    assert_eq!(header[..2], ["NAMESPACE", "NAME"], "{out}");
    // A real cluster holds other tests' `west`s too: this test's is the one in its namespace.
    assert!(
        rows.iter()
            .any(|r| r["NAME"] == "west" && r["NAMESPACE"] == relay_ns(&client)),
        "{out}"
    );

    // --sort-by makes kubectl ask for whole objects (includeObject=Object).
    let out = k.ok(&[
        "get",
        "relayclusters",
        "-n",
        &relay_ns(&client),
        "--sort-by=.spec.description",
    ]);
    let (_, rows) = parse_table(&out);
    let names: Vec<&str> = rows.iter().map(|r| r["NAME"].as_str()).collect();
    assert_eq!(names, ["north", "east", "west"], "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_built_ins_shows_their_columns() {
    let (sandbox, client) = world().await;
    let Some(k) = Kubectl::for_test(
        "kubectl_get_built_ins_shows_their_columns",
        sandbox.kubeconfig(),
    ) else {
        return;
    };
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), &team_ns(&client));
    secrets
        .create(
            &Default::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "creds"}, "type": "Opaque",
                "data": {"user": "dQ==", "password": "cA==", "token": "dA=="}
            }))
            .unwrap(),
        )
        .await
        .unwrap();

    let out = k.ok(&["get", "secrets", "-n", &team_ns(&client)]);
    let (header, rows) = parse_table(&out);
    assert_eq!(header, ["NAME", "TYPE", "DATA", "AGE"], "{out}");
    assert_eq!(
        cells(find_row(&rows, "creds"), &["TYPE", "DATA"]),
        ["Opaque", "3"]
    );

    let out = k.ok(&["get", "namespaces"]);
    let (header, rows) = parse_table(&out);
    assert_eq!(header, ["NAME", "STATUS", "AGE"], "{out}");
    assert_eq!(
        find_row(&rows, &relay_ns(&client))["STATUS"],
        "Active",
        "{out}"
    );

    let out = k.ok(&["get", "crd", "relayclusters.relaytls.dev"]);
    let (header, rows) = parse_table(&out);
    assert_eq!(header, ["NAME", "CREATED AT"], "{out}");
    let created = &find_row(&rows, "relayclusters.relaytls.dev")["CREATED AT"];
    assert!(
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_prints_new_rows() {
    let (sandbox, client) = world().await;
    let Some(k) = Kubectl::for_test("kubectl_get_watch_prints_new_rows", sandbox.kubeconfig())
    else {
        return;
    };
    // A list watch: it resumes from the list's resourceVersion, so the update below cannot be
    // missed (a single-object watch starts "now" and drops its first event).
    let watch = k.stream(&["get", "relayclusters", "-n", &relay_ns(&client), "--watch"]);
    let next = || watch.next_line();
    let header = next();
    assert_eq!(
        header
            .split("  ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>(),
        [
            "NAME",
            "CONNECTED",
            "SUSPENDED",
            "LAST SEEN",
            "SERIAL",
            "CERT EXPIRES",
            "AGE"
        ],
        "{header}"
    );
    let listed: Vec<String> = (0..3).map(|_| next()).collect();
    assert!(
        listed
            .iter()
            .any(|l| l.starts_with("east ") && l.contains("0a:1b:2c")),
        "{listed:?}"
    );
    clusters(&client)
        .patch_status(
            "east",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"certificateSerial": "0a:1b:2d", "connected": false}})),
        )
        .await
        .unwrap();
    // Watch events carry one-row Tables without column definitions: kubectl prints just the row.
    let update = next();
    let fields: Vec<&str> = update.split_whitespace().collect();
    assert_eq!(
        fields[..4],
        ["east", "false", "10m", "0a:1b:2d"],
        "{update}"
    );
    assert_near(&json!(fields[4]), -2 * 86400);
}
