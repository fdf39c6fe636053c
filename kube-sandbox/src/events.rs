//! Events: one store, two views. events.k8s.io/v1 is stored; core/v1 is converted on the way
//! in and out (regarding ↔ involvedObject, note ↔ message, reportingController ↔
//! reportingComponent, deprecated* ↔ first/lastTimestamp, count, source), as kube-apiserver does.

use serde_json::{Map, Value};

const RENAMES: [(&str, &str); 8] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingInstance", "reportingInstance"),
];

fn rename(object: &Value, api_version: &str, from_events_api: bool) -> Value {
    let Some(map) = object.as_object() else {
        return object.clone();
    };
    let mut out = Map::new();
    for (key, value) in map {
        let new_key = RENAMES
            .iter()
            .find(|(events, core)| {
                if from_events_api {
                    events == key
                } else {
                    core == key
                }
            })
            .map(|(events, core)| if from_events_api { *core } else { *events })
            .unwrap_or(key.as_str());
        out.insert(new_key.to_string(), value.clone());
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    Value::Object(out)
}

/// The core/v1 view of a stored events.k8s.io/v1 Event.
pub fn to_core(stored: &Value) -> Value {
    let mut core = rename(stored, "v1", true);
    // core/v1 readers (kubectl describe) expect count and timestamps; fill them from the series.
    if let Some(map) = core.as_object_mut() {
        if map.get("count").is_none() {
            let count = stored
                .pointer("/series/count")
                .cloned()
                .unwrap_or(Value::from(1));
            map.insert("count".into(), count);
        }
        let event_time = stored.get("eventTime").cloned().unwrap_or(Value::Null);
        if map.get("firstTimestamp").is_none_or(Value::is_null) {
            map.insert("firstTimestamp".into(), truncate_micro(&event_time));
        }
        if map.get("lastTimestamp").is_none_or(Value::is_null) {
            let last = stored
                .pointer("/series/lastObservedTime")
                .cloned()
                .unwrap_or(event_time);
            map.insert("lastTimestamp".into(), truncate_micro(&last));
        }
        if map.get("source").is_none()
            && let Some(component) = stored.get("reportingController")
        {
            map.insert("source".into(), serde_json::json!({"component": component}));
        }
    }
    core
}

/// The stored (events.k8s.io/v1) form of a core/v1 Event.
pub fn from_core(core: &Value) -> Value {
    rename(core, "events.k8s.io/v1", false)
}

/// The events.k8s.io/v1 view of a stored Event (stored form, with apiVersion set).
pub fn to_events_api(stored: &Value) -> Value {
    let mut v = stored.clone();
    if let Some(map) = v.as_object_mut() {
        map.insert(
            "apiVersion".into(),
            Value::String("events.k8s.io/v1".into()),
        );
        map.insert("kind".into(), Value::String("Event".into()));
    }
    v
}

fn truncate_micro(time: &Value) -> Value {
    match time.as_str() {
        Some(t) => match t.find('.') {
            Some(dot) => Value::String(format!("{}Z", &t[..dot])),
            None => Value::String(t.to_string()),
        },
        None => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn core_view_renames_and_fills_timestamps() {
        let stored = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns"},
            "regarding": {"kind": "CertificateRequest", "name": "cr", "namespace": "ns"},
            "note": "Certificate issued", "reason": "CertificateIssued", "type": "Normal",
            "reportingController": "relay-issuer", "action": "Sign",
            "eventTime": "2026-11-28T04:00:00.123456Z"
        });
        let core = to_core(&stored);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "cr");
        assert_eq!(core["message"], "Certificate issued");
        assert_eq!(core["reportingComponent"], "relay-issuer");
        assert_eq!(core["count"], 1);
        assert_eq!(core["lastTimestamp"], "2026-11-28T04:00:00Z");
        assert_eq!(core["source"]["component"], "relay-issuer");
        let back = from_core(&core);
        assert_eq!(back["regarding"]["name"], "cr");
        assert_eq!(back["note"], "Certificate issued");
    }
}
