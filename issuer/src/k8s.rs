//! Kubernetes glue shared by the external issuer (`controller`) and the relay server
//! (`server`), so that neither reaches into the other: reading a Secret's key, writing a status
//! subresource by server-side apply, and `Time` values of whole seconds.
//!
//! What does not live here: any decision (each side's `decide`), the client itself
//! (`relay_runtime::kube_client`).

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, Resource};
use time::OffsetDateTime;

/// The bytes of key `key` of a Secret, if present.
pub(crate) fn secret_data<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| v.0.as_slice())
}

/// Applies `status` to object `name` by server-side apply of the status subresource under
/// `field_manager` (forced: the fields are ours). `Ok(false)`: the object is gone.
pub(crate) async fn apply_status<K>(
    api: &Api<K>,
    name: &str,
    field_manager: &str,
    status: &impl serde::Serialize,
) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let params = kube::api::PatchParams::apply(field_manager).force();
    match api
        .patch_status(name, &params, &kube::api::Patch::Apply(&patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(error) => Err(error),
    }
}

/// A Kubernetes `Time` (whole seconds) for `t`.
pub(crate) fn kube_time(t: OffsetDateTime) -> Time {
    Time(jiff_from(t))
}

/// The `OffsetDateTime` of a Kubernetes `Time` (sub-second precision kept; `None` if out of
/// range).
pub(crate) fn offset_time(t: &Time) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(t.0.as_nanosecond()).ok()
}

fn jiff_from(t: OffsetDateTime) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::from_second(t.unix_timestamp())
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
}
