//! cert-manager's Certificate controller, simulated: issue → request → Secret → renew.
//!
//! [`decide`] is pure: from a Certificate, its Secret, its CertificateRequests and `now` it
//! returns the next [`Action`] (following the contract's trigger order and backoff). [`Controller`]
//! executes actions against the API: it generates keys, creates requests named
//! `<certificate>-<revision>`, writes the Secret when a request is issued, records failures, and
//! prunes old requests to `revisionHistoryLimit`.

use super::condition;
use super::csr::{certificate_signing_request, generate_private_key, usages_of};
use super::go_duration;
use super::renewal::{leaf_validity, metav1_time, renewal_time};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube_sandbox::Error;
use serde_json::{Value, json};
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};

/// Annotation keys cert-manager uses.
pub mod keys {
    /// On requests and Secrets: the Certificate's name.
    pub const CERTIFICATE_NAME: &str = "cert-manager.io/certificate-name";
    /// On requests: the revision the request is for.
    pub const CERTIFICATE_REVISION: &str = "cert-manager.io/certificate-revision";
    /// On requests: the Secret holding the next private key.
    pub const PRIVATE_KEY_SECRET_NAME: &str = "cert-manager.io/private-key-secret-name";
    /// Label on Secrets cert-manager manages.
    pub const FAO: &str = "controller.cert-manager.io/fao";
}

/// What the controller should do next for one Certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the request for `revision` (the reason names the trigger, as cert-manager's
    /// Issuing condition does).
    Issue {
        /// The revision being issued (current + 1).
        revision: i64,
        /// Trigger reason, e.g. `DoesNotExist`, `Renewing`.
        reason: String,
        /// Human message for the Issuing condition.
        message: String,
    },
    /// The in-flight request is issued: write the Secret and the status.
    Complete {
        /// The request's name.
        request: String,
    },
    /// The in-flight request failed or was denied: record it and back off.
    RecordFailure {
        /// The request's name.
        request: String,
        /// Why, from the request's condition.
        message: String,
    },
    /// Nothing to do until `until` (or a change).
    Wait {
        /// When to look again, if a time is known.
        until: Option<OffsetDateTime>,
    },
}

/// Everything [`decide`] looks at.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// The Certificate.
    pub certificate: &'a Value,
    /// Its Secret (`spec.secretName`), if it exists.
    pub secret: Option<&'a Value>,
    /// Requests annotated with this Certificate's name.
    pub requests: Vec<&'a Value>,
    /// Now.
    pub now: OffsetDateTime,
    /// Scale for cert-manager's failure backoff (1.0 = real: 1h doubling to 32h).
    pub backoff_scale: f64,
}

fn condition_is(object: &Value, kind: &str, status: &str) -> bool {
    condition(object, kind)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some(status)
}

fn parse_time(text: Option<&str>) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text?, &time::format_description::well_known::Rfc3339).ok()
}

fn revision_of(request: &Value) -> Option<i64> {
    request
        .pointer("/metadata/annotations")?
        .get(keys::CERTIFICATE_REVISION)?
        .as_str()?
        .parse()
        .ok()
}

/// cert-manager's failure backoff: 1h × 2^(attempts-1), capped at 32h, times `scale`.
pub fn failure_backoff(attempts: i64, scale: f64) -> Duration {
    let hours = 2f64.powi((attempts.max(1) - 1).min(5) as i32);
    Duration::seconds_f64(hours * 3600.0 * scale)
}

/// Decides the next action for one Certificate.
pub fn decide(observed: &Observed<'_>) -> Action {
    let cert = observed.certificate;
    let revision = cert
        .pointer("/status/revision")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let next = revision + 1;
    let in_flight = observed
        .requests
        .iter()
        .find(|r| revision_of(r) == Some(next));
    if let Some(request) = in_flight {
        let name = kube_sandbox::store::name_of(request).to_string();
        let issuing = condition_is(cert, "Issuing", "True");
        if condition_is(request, "Ready", "True")
            && request
                .pointer("/status/certificate")
                .and_then(Value::as_str)
                .is_some_and(|c| !c.is_empty())
        {
            return Action::Complete { request: name };
        }
        let denied = condition_is(request, "Denied", "True");
        let failed = condition(request, "Ready")
            .and_then(|c| c.get("reason"))
            .and_then(Value::as_str)
            == Some("Failed");
        if (denied || failed) && issuing {
            let from = if denied {
                condition(request, "Denied")
            } else {
                condition(request, "Ready")
            };
            let message = from
                .and_then(|c| c.get("message"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            return Action::RecordFailure {
                request: name,
                message,
            };
        }
        if !(denied || failed) {
            return Action::Wait { until: None };
        }
    }
    // Issuing already True with no request in flight: someone asked for a renewal (`cmctl
    // renew` sets the condition). cert-manager's request manager acts on the condition alone,
    // whatever the renewal time or failure backoff, and keeps its reason.
    if let Some(issuing) = condition(cert, "Issuing")
        .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
    {
        let text = |key: &str| {
            issuing
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        return issue(next, &text("reason"), &text("message"));
    }
    // Backing off after a failure?
    if let Some(last_failure) = parse_time(
        cert.pointer("/status/lastFailureTime")
            .and_then(Value::as_str),
    ) {
        let attempts = cert
            .pointer("/status/failedIssuanceAttempts")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let retry_at = last_failure + failure_backoff(attempts, observed.backoff_scale);
        if observed.now < retry_at {
            return Action::Wait {
                until: Some(retry_at),
            };
        }
        return issue(
            next,
            "Retrying",
            "Retrying issuance after the failure backoff",
        );
    }
    let spec_secret = cert
        .pointer("/spec/secretName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(secret) = observed.secret else {
        return issue(
            next,
            "DoesNotExist",
            &format!("Issuing certificate as Secret \"{spec_secret}\" does not exist"),
        );
    };
    let has = |key: &str| {
        secret
            .pointer(&format!("/data/{}", key.replace('/', "~1")))
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty())
    };
    if !has("tls.crt") || !has("tls.key") {
        return issue(
            next,
            "MissingData",
            "Issuing certificate as Secret does not contain a certificate",
        );
    }
    let annotations = secret.pointer("/metadata/annotations");
    let annotated = |key: &str| {
        annotations
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let issuer = |field: &str| {
        cert.pointer(&format!("/spec/issuerRef/{field}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if annotated("cert-manager.io/issuer-name") != issuer("name")
        || annotated("cert-manager.io/issuer-kind") != issuer("kind")
        || annotated("cert-manager.io/issuer-group") != issuer("group")
    {
        return issue(
            next,
            "IncorrectIssuer",
            "Issuing certificate as Secret was previously issued by a different issuer",
        );
    }
    if annotated(keys::CERTIFICATE_NAME) != kube_sandbox::store::name_of(cert) {
        return issue(
            next,
            "IncorrectCertificate",
            "Secret was issued for a different Certificate",
        );
    }
    if let Some(latest) = observed
        .requests
        .iter()
        .filter(|r| revision_of(r) == Some(revision))
        .max_by_key(|r| revision_of(r))
        && !request_matches_spec(latest, cert)
    {
        return issue(
            next,
            "RequestChanged",
            "Fields on existing CertificateRequest resource not up to date",
        );
    }
    match parse_time(cert.pointer("/status/renewalTime").and_then(Value::as_str)) {
        Some(renewal) if observed.now >= renewal => issue(
            next,
            "Renewing",
            "Renewing certificate as renewal was scheduled",
        ),
        Some(renewal) => Action::Wait {
            until: Some(renewal),
        },
        None => issue(
            next,
            "Renewing",
            "Renewing certificate as no renewal time is known",
        ),
    }
}

fn issue(revision: i64, reason: &str, message: &str) -> Action {
    Action::Issue {
        revision,
        reason: reason.into(),
        message: message.into(),
    }
}

fn request_matches_spec(request: &Value, cert: &Value) -> bool {
    let spec = cert.get("spec").cloned().unwrap_or(Value::Null);
    let usages: Vec<String> = request
        .pointer("/spec/usages")
        .and_then(Value::as_array)
        .map(|u| {
            u.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    // Durations compare by value, as cert-manager compares parsed durations: `2160h` in the
    // Certificate and `2160h0m0s` in the request are the same.
    let requested = request
        .pointer("/spec/duration")
        .and_then(Value::as_str)
        .and_then(|d| go_duration::parse_nanos(d).ok());
    let wanted = go_duration::parse_nanos(
        spec.get("duration")
            .and_then(Value::as_str)
            .unwrap_or("2160h"),
    )
    .ok();
    request.pointer("/spec/issuerRef") == spec.get("issuerRef")
        && requested.is_some()
        && requested == wanted
        && usages == usages_of(&spec)
}

/// The simulated Certificate controller.
pub struct Controller {
    client: kube::Client,
    /// Private keys of in-flight requests, by namespace/request name (PEM).
    keys: HashMap<String, String>,
    /// Backoff scale (1.0 = cert-manager's real schedule).
    pub backoff_scale: f64,
}

fn api(client: &kube::Client, namespace: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &super::resource(kind, plural))
}

fn to_value(o: &DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

fn kube_error(e: kube::Error) -> Error {
    Error::Internal(format!("cert-manager simulator: {e}"))
}

impl Controller {
    /// A controller using `client`, with cert-manager's backoff scaled by `backoff_scale`.
    pub fn new(client: kube::Client, backoff_scale: f64) -> Self {
        Self {
            client,
            keys: HashMap::new(),
            backoff_scale,
        }
    }

    /// Runs forever, re-evaluating every Certificate every `interval`.
    pub async fn run(mut self, interval: std::time::Duration) {
        loop {
            if let Err(e) = self.sync_all().await {
                tracing::debug!(error = %e, "certificate sync failed; retrying");
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// One pass over every Certificate in the cluster.
    pub async fn sync_all(&mut self) -> Result<(), Error> {
        let all: Api<DynamicObject> = Api::all_with(
            self.client.clone(),
            &super::resource("Certificate", "certificates"),
        );
        let certificates = all.list(&ListParams::default()).await.map_err(kube_error)?;
        for cert in certificates.items {
            let ns = cert.metadata.namespace.clone().unwrap_or_default();
            if let Err(e) = self.sync_one(&ns, &to_value(&cert)).await {
                tracing::debug!(error = %e, certificate = %cert.metadata.name.clone().unwrap_or_default(), "certificate sync failed");
            }
        }
        Ok(())
    }

    async fn sync_one(&mut self, ns: &str, cert: &Value) -> Result<(), Error> {
        let name = kube_sandbox::store::name_of(cert).to_string();
        let secret_name = cert
            .pointer("/spec/secretName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.client.clone(), ns);
        let secret = secrets
            .get_opt(&secret_name)
            .await
            .map_err(kube_error)?
            .map(|s| serde_json::to_value(s).unwrap_or(Value::Null));
        let requests_api = api(
            &self.client,
            ns,
            "CertificateRequest",
            "certificaterequests",
        );
        let requests: Vec<Value> = requests_api
            .list(&ListParams::default())
            .await
            .map_err(kube_error)?
            .items
            .iter()
            .map(to_value)
            .filter(|r| {
                r.pointer("/metadata/annotations")
                    .and_then(|a| a.get(keys::CERTIFICATE_NAME))
                    .and_then(Value::as_str)
                    == Some(name.as_str())
            })
            .collect();
        let observed = Observed {
            certificate: cert,
            secret: secret.as_ref(),
            requests: requests.iter().collect(),
            now: OffsetDateTime::now_utc(),
            backoff_scale: self.backoff_scale,
        };
        match decide(&observed) {
            Action::Wait { .. } => Ok(()),
            Action::Issue {
                revision,
                reason,
                message,
            } => {
                self.issue(
                    ns,
                    cert,
                    secret.as_ref(),
                    revision,
                    &reason,
                    &message,
                    &requests_api,
                )
                .await
            }
            Action::Complete { request } => {
                let request = requests
                    .iter()
                    .find(|r| kube_sandbox::store::name_of(r) == request)
                    .cloned()
                    .unwrap_or(Value::Null);
                self.complete(ns, cert, &request, &requests, &secrets, &requests_api)
                    .await
            }
            Action::RecordFailure { message, .. } => self.record_failure(ns, cert, &message).await,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn issue(
        &mut self,
        ns: &str,
        cert: &Value,
        secret: Option<&Value>,
        revision: i64,
        reason: &str,
        message: &str,
        requests: &Api<DynamicObject>,
    ) -> Result<(), Error> {
        let name = kube_sandbox::store::name_of(cert).to_string();
        let spec = cert.get("spec").cloned().unwrap_or(Value::Null);
        let private_key = spec.get("privateKey");
        let reuse = private_key
            .and_then(|p| p.get("rotationPolicy"))
            .and_then(Value::as_str)
            == Some("Never");
        let existing_key = secret
            .and_then(|s| s.pointer("/data/tls.key"))
            .and_then(Value::as_str)
            .and_then(|k| STANDARD.decode(k).ok())
            .and_then(|k| String::from_utf8(k).ok());
        let key_pem = match (reuse, existing_key) {
            (true, Some(pem)) => pem,
            _ => generate_private_key(private_key)?.serialize_pem(),
        };
        let key = rcgen::KeyPair::from_pem(&key_pem)
            .map_err(|e| Error::BadRequest(format!("the private key cannot be used: {e}")))?;
        let csr = certificate_signing_request(&spec, &key)?;
        let request_name = format!("{name}-{revision}");
        // A failed request for the same revision is replaced.
        let _ = requests
            .delete(&request_name, &DeleteParams::default())
            .await;
        let duration = spec
            .get("duration")
            .and_then(Value::as_str)
            .map(|d| go_duration::parse_nanos(d).map(go_duration::format_nanos))
            .transpose()?
            .unwrap_or_else(|| "2160h0m0s".into());
        let mut labels = cert
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        if !labels.is_object() {
            labels = json!({});
        }
        let request = json!({
            "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
            "metadata": {
                "name": request_name, "namespace": ns, "labels": labels,
                "annotations": {
                    keys::CERTIFICATE_NAME: name, keys::CERTIFICATE_REVISION: revision.to_string(),
                    keys::PRIVATE_KEY_SECRET_NAME: format!("{name}-next-key"),
                },
                "ownerReferences": [{"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "name": name, "uid": cert.pointer("/metadata/uid"), "controller": true, "blockOwnerDeletion": true}],
            },
            "spec": {
                "request": STANDARD.encode(csr.as_bytes()), "duration": duration,
                "issuerRef": spec.get("issuerRef"), "isCA": spec.get("isCA").and_then(Value::as_bool).unwrap_or(false),
                "usages": usages_of(&spec),
            }
        });
        let object: DynamicObject =
            serde_json::from_value(request).map_err(|e| Error::Internal(e.to_string()))?;
        requests
            .create(&PostParams::default(), &object)
            .await
            .map_err(kube_error)?;
        self.keys.insert(format!("{ns}/{request_name}"), key_pem);
        self.set_status(ns, &name, json!({"conditions": merge_conditions(cert, &[issuing_condition("True", reason, message)])})).await
    }

    async fn complete(
        &mut self,
        ns: &str,
        cert: &Value,
        request: &Value,
        all: &[Value],
        secrets: &Api<k8s_openapi::api::core::v1::Secret>,
        requests: &Api<DynamicObject>,
    ) -> Result<(), Error> {
        let name = kube_sandbox::store::name_of(cert).to_string();
        let request_name = kube_sandbox::store::name_of(request).to_string();
        let key_pem = self
            .keys
            .get(&format!("{ns}/{request_name}"))
            .cloned()
            .ok_or_else(|| {
                Error::Internal(format!(
                    "the private key for {request_name} is not known (simulator restarted?)"
                ))
            })?;
        let chain = STANDARD
            .decode(
                request
                    .pointer("/status/certificate")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            )
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        let ca = request
            .pointer("/status/ca")
            .and_then(Value::as_str)
            .and_then(|c| STANDARD.decode(c).ok())
            .unwrap_or_default();
        let (not_before, not_after) = leaf_validity(&chain)?;
        let spec = cert.get("spec").cloned().unwrap_or(Value::Null);
        let renew_before = spec
            .get("renewBefore")
            .and_then(Value::as_str)
            .map(go_duration::parse)
            .transpose()?;
        let percentage = spec
            .get("renewBeforePercentage")
            .and_then(Value::as_i64)
            .map(|p| i32::try_from(p).map_err(|_| Error::BadRequest(format!("spec.renewBeforePercentage {p} does not fit cert-manager's int32; use a value between 1 and 99"))))
            .transpose()?;
        let renewal = renewal_time(not_before, not_after, renew_before, percentage).ok_or_else(|| {
            Error::BadRequest(format!(
                "the renewal time of a certificate valid from {not_before} to {not_after} is out of range"
            ))
        })?;
        let secret_name = spec
            .get("secretName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut annotations = spec
            .pointer("/secretTemplate/annotations")
            .cloned()
            .unwrap_or(json!({}));
        let mut labels = spec
            .pointer("/secretTemplate/labels")
            .cloned()
            .unwrap_or(json!({}));
        let issuer = |f: &str| {
            spec.pointer(&format!("/issuerRef/{f}"))
                .cloned()
                .unwrap_or(json!(""))
        };
        let join = |field: &str| {
            spec.get(field)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        if let Some(a) = annotations.as_object_mut() {
            for (k, v) in [
                (keys::CERTIFICATE_NAME, json!(name)),
                ("cert-manager.io/issuer-name", issuer("name")),
                ("cert-manager.io/issuer-kind", issuer("kind")),
                ("cert-manager.io/issuer-group", issuer("group")),
                (
                    "cert-manager.io/common-name",
                    spec.get("commonName").cloned().unwrap_or(json!("")),
                ),
                ("cert-manager.io/alt-names", json!(join("dnsNames"))),
                ("cert-manager.io/ip-sans", json!(join("ipAddresses"))),
                ("cert-manager.io/uri-sans", json!(join("uris"))),
            ] {
                a.insert(k.to_string(), v);
            }
        }
        if let Some(l) = labels.as_object_mut() {
            l.insert(keys::FAO.into(), json!("true"));
        }
        let mut data = json!({"tls.crt": STANDARD.encode(&chain), "tls.key": STANDARD.encode(key_pem.as_bytes())});
        if !ca.is_empty() {
            data["ca.crt"] = json!(STANDARD.encode(&ca));
        }
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret_name, "namespace": ns, "annotations": annotations, "labels": labels}, "type": "kubernetes.io/tls", "data": data});
        let params = PatchParams::apply("cert-manager-certificates-issuing").force();
        secrets
            .patch(&secret_name, &params, &Patch::Apply(secret))
            .await
            .map_err(kube_error)?;
        self.keys.remove(&format!("{ns}/{request_name}"));
        let revision = revision_of(request).unwrap_or(1);
        let ready = json!({"type": "Ready", "status": "True", "reason": "Ready", "message": "Certificate is up to date and has not expired", "lastTransitionTime": kube_sandbox::now_rfc3339(), "observedGeneration": cert.pointer("/metadata/generation")});
        let mut conditions = merge_conditions(cert, &[ready]);
        if let Some(list) = conditions.as_array_mut() {
            list.retain(|c| c.get("type").and_then(Value::as_str) != Some("Issuing"));
        }
        self.set_status(ns, &name, json!({
            "conditions": conditions, "revision": revision, "notBefore": metav1_time(not_before)?, "notAfter": metav1_time(not_after)?,
            "renewalTime": metav1_time(renewal)?, "lastFailureTime": null, "failedIssuanceAttempts": null,
        }))
        .await?;
        // Prune old requests to revisionHistoryLimit (default 1).
        let limit = spec
            .get("revisionHistoryLimit")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            .max(1);
        let mut owned: Vec<(i64, String)> = all
            .iter()
            .filter_map(|r| {
                revision_of(r).map(|rev| (rev, kube_sandbox::store::name_of(r).to_string()))
            })
            .collect();
        owned.sort();
        let excess = owned.len().saturating_sub(limit as usize);
        for (_, old) in owned.into_iter().take(excess) {
            let _ = requests.delete(&old, &DeleteParams::default()).await;
        }
        Ok(())
    }

    async fn record_failure(&mut self, ns: &str, cert: &Value, message: &str) -> Result<(), Error> {
        let name = kube_sandbox::store::name_of(cert).to_string();
        let attempts = cert
            .pointer("/status/failedIssuanceAttempts")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        let issuing = issuing_condition(
            "False",
            "Failed",
            &format!(
                "The certificate request has failed to complete and will be retried: {message}"
            ),
        );
        self.set_status(ns, &name, json!({"conditions": merge_conditions(cert, &[issuing]), "lastFailureTime": kube_sandbox::now_rfc3339(), "failedIssuanceAttempts": attempts})).await
    }

    async fn set_status(&self, ns: &str, name: &str, status: Value) -> Result<(), Error> {
        let certificates = api(&self.client, ns, "Certificate", "certificates");
        let params = PatchParams {
            field_manager: Some("cert-manager-certificates".into()),
            ..PatchParams::default()
        };
        certificates
            .patch_status(name, &params, &Patch::Merge(json!({"status": status})))
            .await
            .map_err(kube_error)?;
        Ok(())
    }
}

fn issuing_condition(status: &str, reason: &str, message: &str) -> Value {
    json!({"type": "Issuing", "status": status, "reason": reason, "message": message, "lastTransitionTime": kube_sandbox::now_rfc3339()})
}

/// The Certificate's conditions with `updates` replacing entries of the same type.
fn merge_conditions(cert: &Value, updates: &[Value]) -> Value {
    let mut conditions = cert
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for update in updates {
        let kind = update.get("type");
        match conditions.iter_mut().find(|c| c.get("type") == kind) {
            Some(existing) => *existing = update.clone(),
            None => conditions.push(update.clone()),
        }
    }
    Value::Array(conditions)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-11-28 12:00:00 UTC);

    fn cert(status: Value) -> Value {
        json!({"metadata": {"name": "agent"}, "spec": {"secretName": "relay-client-tls-secret", "duration": "1h0m0s", "issuerRef": {"name": "relay", "kind": "RelayIssuer", "group": "relaytls.dev"}}, "status": status})
    }

    fn secret() -> Value {
        json!({"metadata": {"name": "relay-client-tls-secret", "annotations": {"cert-manager.io/issuer-name": "relay", "cert-manager.io/issuer-kind": "RelayIssuer", "cert-manager.io/issuer-group": "relaytls.dev", "cert-manager.io/certificate-name": "agent"}}, "data": {"tls.crt": "eA==", "tls.key": "eQ=="}})
    }

    fn request(revision: i64, conditions: Value, certificate: Option<&str>) -> Value {
        json!({"metadata": {"name": format!("agent-{revision}"), "annotations": {"cert-manager.io/certificate-name": "agent", "cert-manager.io/certificate-revision": revision.to_string()}},
            "spec": {"issuerRef": {"name": "relay", "kind": "RelayIssuer", "group": "relaytls.dev"}, "duration": "1h0m0s", "usages": ["digital signature", "key encipherment"]},
            "status": {"conditions": conditions, "certificate": certificate}})
    }

    fn observe<'a>(cert: &'a Value, secret: Option<&'a Value>, requests: Vec<&'a Value>) -> Action {
        decide(&Observed {
            certificate: cert,
            secret,
            requests,
            now: NOW,
            backoff_scale: 1.0,
        })
    }

    #[test]
    fn a_missing_secret_triggers_issuance_of_revision_one() {
        let c = cert(json!({}));
        assert!(
            matches!(observe(&c, None, vec![]), Action::Issue { revision: 1, ref reason, .. } if reason == "DoesNotExist")
        );
    }

    #[test]
    fn an_issued_request_completes_and_a_pending_one_waits() {
        let c = cert(json!({"conditions": [{"type": "Issuing", "status": "True"}]}));
        let issued = request(
            1,
            json!([{"type": "Approved", "status": "True"}, {"type": "Ready", "status": "True", "reason": "Issued"}]),
            Some("Y2VydA=="),
        );
        assert_eq!(
            observe(&c, None, vec![&issued]),
            Action::Complete {
                request: "agent-1".into()
            }
        );
        let pending = request(
            1,
            json!([{"type": "Approved", "status": "True"}, {"type": "Ready", "status": "False", "reason": "Pending"}]),
            None,
        );
        assert_eq!(
            observe(&c, None, vec![&pending]),
            Action::Wait { until: None }
        );
    }

    #[test]
    fn an_issuing_condition_set_by_hand_issues_the_next_revision_at_once() {
        // What `cmctl renew` does, on a Certificate whose renewal is far off.
        let c = cert(json!({"revision": 3, "renewalTime": "2027-01-01T00:00:00Z",
            "conditions": [{"type": "Ready", "status": "True"},
                           {"type": "Issuing", "status": "True", "reason": "ManuallyTriggered", "message": "Certificate re-issuance manually triggered"}]}));
        let current = request(
            3,
            json!([{"type": "Approved", "status": "True"}, {"type": "Ready", "status": "True", "reason": "Issued"}]),
            Some("Y2VydA=="),
        );
        assert_eq!(
            observe(&c, Some(&secret()), vec![&current]),
            Action::Issue {
                revision: 4,
                reason: "ManuallyTriggered".into(),
                message: "Certificate re-issuance manually triggered".into()
            }
        );
        // Without the condition, the same Certificate waits for its renewal time.
        let waiting = cert(json!({"revision": 3, "renewalTime": "2027-01-01T00:00:00Z",
            "conditions": [{"type": "Ready", "status": "True"}]}));
        assert!(matches!(
            observe(&waiting, Some(&secret()), vec![&current]),
            Action::Wait { until: Some(_) }
        ));
    }

    #[test]
    fn failures_and_denials_are_recorded_then_backed_off() {
        let issuing = cert(json!({"conditions": [{"type": "Issuing", "status": "True"}]}));
        let failed = request(
            1,
            json!([{"type": "Ready", "status": "False", "reason": "Failed", "message": "bad CSR"}]),
            None,
        );
        assert_eq!(
            observe(&issuing, None, vec![&failed]),
            Action::RecordFailure {
                request: "agent-1".into(),
                message: "bad CSR".into()
            }
        );
        let denied = request(
            1,
            json!([{"type": "Denied", "status": "True", "message": "no"}]),
            None,
        );
        assert!(matches!(
            observe(&issuing, None, vec![&denied]),
            Action::RecordFailure { .. }
        ));
        let backing_off = cert(
            json!({"lastFailureTime": "2026-11-28T11:30:00Z", "failedIssuanceAttempts": 1, "conditions": [{"type": "Issuing", "status": "False", "reason": "Failed"}]}),
        );
        assert_eq!(
            observe(&backing_off, None, vec![&failed]),
            Action::Wait {
                until: Some(time::macros::datetime!(2026-11-28 12:30:00 UTC))
            }
        );
        let retry =
            cert(json!({"lastFailureTime": "2026-11-28T10:00:00Z", "failedIssuanceAttempts": 1}));
        assert!(matches!(
            observe(&retry, None, vec![&failed]),
            Action::Issue { revision: 1, .. }
        ));
    }

    #[test]
    fn backoff_doubles_to_32_hours() {
        assert_eq!(failure_backoff(1, 1.0), Duration::hours(1));
        assert_eq!(failure_backoff(2, 1.0), Duration::hours(2));
        assert_eq!(failure_backoff(6, 1.0), Duration::hours(32));
        assert_eq!(failure_backoff(60, 1.0), Duration::hours(32));
        assert_eq!(failure_backoff(1, 0.001), Duration::milliseconds(3600));
    }

    #[test]
    fn renewal_happens_at_the_renewal_time() {
        let s = secret();
        let current = request(
            1,
            json!([{"type": "Ready", "status": "True"}]),
            Some("eA=="),
        );
        let later = cert(json!({"revision": 1, "renewalTime": "2026-11-28T12:30:00Z"}));
        assert_eq!(
            observe(&later, Some(&s), vec![&current]),
            Action::Wait {
                until: Some(time::macros::datetime!(2026-11-28 12:30:00 UTC))
            }
        );
        let due = cert(json!({"revision": 1, "renewalTime": "2026-11-28T11:59:59Z"}));
        assert!(
            matches!(observe(&due, Some(&s), vec![&current]), Action::Issue { revision: 2, ref reason, .. } if reason == "Renewing")
        );
    }

    #[test]
    fn triggers_follow_cert_managers_order() {
        let c = cert(json!({"revision": 1, "renewalTime": "2027-01-01T00:00:00Z"}));
        let mut no_key = secret();
        no_key["data"] = json!({"tls.crt": "eA=="});
        assert!(
            matches!(observe(&c, Some(&no_key), vec![]), Action::Issue { ref reason, .. } if reason == "MissingData")
        );
        let mut other_issuer = secret();
        other_issuer["metadata"]["annotations"]["cert-manager.io/issuer-name"] = json!("other");
        assert!(
            matches!(observe(&c, Some(&other_issuer), vec![]), Action::Issue { ref reason, .. } if reason == "IncorrectIssuer")
        );
        let mut changed = request(1, json!([]), Some("eA=="));
        changed["spec"]["usages"] = json!(["server auth"]);
        assert!(
            matches!(observe(&c, Some(&secret()), vec![&changed]), Action::Issue { ref reason, .. } if reason == "RequestChanged")
        );
    }
}
