//! cert-manager's validating webhook rules, as an admission hook of the sandbox.
//!
//! CertificateRequests: `spec` and `cert-manager.io/*` annotations are immutable; the
//! `Approved` and `Denied` conditions never coexist and never change once set. Certificates:
//! duration ≥ 1h (unless relaxed), 5m ≤ renewBefore < duration, renewBefore and
//! renewBeforePercentage exclusive, percentage in (0, 100). Only the rules; registering the hook
//! is `Sandbox::add_admission`'s job.

use super::condition;
use super::go_duration::{format, parse};
use kube_sandbox::Cause;
use kube_sandbox::registry::ResourceType;
use kube_sandbox::{Admission, Error};
use serde_json::Value;
use time::Duration;

/// The webhook. `relaxed` allows durations under cert-manager's 1 h minimum (and renewBefore
/// under 5 m) so rotation tests can run in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct CertManagerWebhook {
    /// Allow short durations.
    pub relaxed: bool,
}

fn cause(field: &str, reason: &str, message: impl Into<String>) -> Cause {
    Cause {
        reason: reason.into(),
        message: message.into(),
        field: field.into(),
    }
}

/// The rules for a CertificateRequest update (`old` → `new`).
pub fn certificate_request_update_causes(old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if old.get("spec") != new.get("spec") {
        causes.push(cause(
            "spec",
            "FieldValueForbidden",
            "Forbidden: field is immutable",
        ));
    }
    let cm_annotations = |object: &Value| -> Vec<(String, Value)> {
        object
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .map(|a| {
                a.iter()
                    .filter(|(k, _)| k.starts_with("cert-manager.io/"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    if cm_annotations(old) != cm_annotations(new) {
        causes.push(cause(
            "metadata.annotations",
            "FieldValueForbidden",
            "Forbidden: cert-manager.io/* annotations are immutable once set",
        ));
    }
    for kind in ["Approved", "Denied"] {
        if let Some(before) = condition(old, kind) {
            let after = condition(new, kind);
            let same = after.is_some_and(|a| {
                a.get("status") == before.get("status") && a.get("reason") == before.get("reason")
            });
            if !same {
                causes.push(cause(
                    "status.conditions",
                    "FieldValueForbidden",
                    format!("Forbidden: '{kind}' condition may not be modified once set"),
                ));
            }
        }
    }
    causes.extend(approval_causes(new));
    causes
}

/// Approved and Denied never coexist, and only with status True.
pub fn approval_causes(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if condition(object, "Approved").is_some() && condition(object, "Denied").is_some() {
        causes.push(cause(
            "status.conditions",
            "FieldValueForbidden",
            "Forbidden: both 'Denied' and 'Approved' conditions cannot coexist",
        ));
    }
    for kind in ["Approved", "Denied"] {
        if let Some(c) = condition(object, kind)
            && c.get("status").and_then(Value::as_str) != Some("True")
        {
            causes.push(cause(
                "status.conditions",
                "FieldValueInvalid",
                format!(
                    "Invalid value: \"{}\": '{kind}' condition may only have a status of 'True'",
                    c.get("status").and_then(Value::as_str).unwrap_or_default()
                ),
            ));
        }
    }
    causes
}

/// The rules for a Certificate spec.
pub fn certificate_spec_causes(spec: &Value, relaxed: bool) -> Vec<Cause> {
    let mut causes = Vec::new();
    let read = |field: &str| -> Result<Option<Duration>, Cause> {
        match spec.get(field).and_then(Value::as_str) {
            None => Ok(None),
            Some(text) => parse(text).map(Some).map_err(|e| {
                cause(
                    &format!("spec.{field}"),
                    "FieldValueInvalid",
                    format!("Invalid value: \"{text}\": {e}"),
                )
            }),
        }
    };
    let duration = match read("duration") {
        Ok(d) => d.unwrap_or(Duration::hours(2160)),
        Err(c) => {
            causes.push(c);
            return causes;
        }
    };
    let min_duration = if relaxed {
        Duration::seconds(1)
    } else {
        Duration::hours(1)
    };
    if duration < min_duration {
        causes.push(cause(
            "spec.duration",
            "FieldValueInvalid",
            format!(
                "Invalid value: \"{}\": certificate duration must be greater than {}",
                format(duration),
                format(min_duration)
            ),
        ));
    }
    match read("renewBefore") {
        Ok(Some(rb)) => {
            let min_rb = if relaxed {
                Duration::ZERO
            } else {
                Duration::minutes(5)
            };
            if rb < min_rb {
                causes.push(cause(
                    "spec.renewBefore",
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: \"{}\": certificate renewBefore must be greater than {}",
                        format(rb),
                        format(min_rb)
                    ),
                ));
            }
            if rb >= duration {
                causes.push(cause("spec.renewBefore", "FieldValueInvalid", format!("Invalid value: \"{}\": certificate duration {} must be greater than renewBefore {}", format(rb), format(duration), format(rb))));
            }
            if spec.get("renewBeforePercentage").is_some() {
                causes.push(cause("spec.renewBefore", "FieldValueInvalid", "Invalid value: renewBefore and renewBeforePercentage are mutually exclusive and cannot both be set"));
            }
        }
        Ok(None) => {}
        Err(c) => causes.push(c),
    }
    if let Some(pct) = spec.get("renewBeforePercentage").and_then(Value::as_i64)
        && !(1..100).contains(&pct)
    {
        causes.push(cause(
            "spec.renewBeforePercentage",
            "FieldValueInvalid",
            format!(
                "Invalid value: {pct}: renewBeforePercentage must be between 0 and 100 exclusive"
            ),
        ));
    }
    causes
}

impl Admission for CertManagerWebhook {
    fn admit(
        &self,
        resource: &ResourceType,
        old: Option<&Value>,
        new: &mut Value,
    ) -> Result<(), Error> {
        if resource.group != "cert-manager.io" {
            return Ok(());
        }
        let causes = match (resource.kind.as_str(), old) {
            ("CertificateRequest", Some(old)) => certificate_request_update_causes(old, new),
            ("CertificateRequest", None) => approval_causes(new),
            ("Certificate", _) => new
                .get("spec")
                .map(|s| certificate_spec_causes(s, self.relaxed))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        if causes.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid {
                kind: resource.kind.clone(),
                name: kube_sandbox::store::name_of(new).to_string(),
                causes,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cr(conditions: Value) -> Value {
        json!({"metadata": {"name": "r", "annotations": {"cert-manager.io/certificate-name": "c", "other": "x"}}, "spec": {"request": "AAAA", "usages": ["client auth"]}, "status": {"conditions": conditions}})
    }

    #[test]
    fn spec_and_cert_manager_annotations_are_immutable() {
        let old = cr(json!([]));
        let mut changed = old.clone();
        changed["spec"]["usages"] = json!(["server auth"]);
        assert_eq!(
            certificate_request_update_causes(&old, &changed)[0].field,
            "spec"
        );
        let mut annotated = old.clone();
        annotated["metadata"]["annotations"]["cert-manager.io/certificate-name"] = json!("d");
        assert_eq!(
            certificate_request_update_causes(&old, &annotated)[0].field,
            "metadata.annotations"
        );
        let mut other = old.clone();
        other["metadata"]["annotations"]["other"] = json!("y");
        assert!(certificate_request_update_causes(&old, &other).is_empty());
    }

    #[test]
    fn approval_never_changes_and_never_coexists_with_denial() {
        let approved =
            cr(json!([{"type": "Approved", "status": "True", "reason": "cert-manager.io"}]));
        let both = cr(
            json!([{"type": "Approved", "status": "True", "reason": "cert-manager.io"}, {"type": "Denied", "status": "True", "reason": "x"}]),
        );
        assert!(!certificate_request_update_causes(&approved, &both).is_empty());
        let removed = cr(json!([{"type": "Ready", "status": "True", "reason": "Issued"}]));
        assert!(
            certificate_request_update_causes(&approved, &removed)[0]
                .message
                .contains("may not be modified")
        );
        let kept = cr(
            json!([{"type": "Approved", "status": "True", "reason": "cert-manager.io"}, {"type": "Ready", "status": "True", "reason": "Issued"}]),
        );
        assert!(certificate_request_update_causes(&approved, &kept).is_empty());
        let false_approval = cr(json!([{"type": "Approved", "status": "False", "reason": "x"}]));
        assert!(!approval_causes(&false_approval).is_empty());
    }

    #[test]
    fn certificate_durations_follow_cert_manager_unless_relaxed() {
        assert!(
            certificate_spec_causes(&json!({"duration": "8760h", "renewBefore": "876h"}), false)
                .is_empty()
        );
        assert!(certificate_spec_causes(&json!({}), false).is_empty());
        assert_eq!(
            certificate_spec_causes(&json!({"duration": "30m"}), false)[0].field,
            "spec.duration"
        );
        assert!(
            certificate_spec_causes(&json!({"duration": "30s", "renewBefore": "10s"}), true)
                .is_empty()
        );
        assert!(
            !certificate_spec_causes(&json!({"duration": "2h", "renewBefore": "1m"}), false)
                .is_empty()
        );
        assert!(
            !certificate_spec_causes(&json!({"duration": "2h", "renewBefore": "2h"}), false)
                .is_empty()
        );
        assert!(
            !certificate_spec_causes(
                &json!({"duration": "2h", "renewBefore": "10m", "renewBeforePercentage": 10}),
                false
            )
            .is_empty()
        );
        assert!(!certificate_spec_causes(&json!({"renewBeforePercentage": 100}), false).is_empty());
        assert!(!certificate_spec_causes(&json!({"duration": "1y"}), false).is_empty());
    }
}
