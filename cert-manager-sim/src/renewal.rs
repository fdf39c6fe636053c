//! When the simulated cert-manager renews a Certificate, and the timestamps it writes to status.
//!
//! Written for the simulator from cert-manager v1.21.2's `pkg/util/pki/renewaltime.go`
//! (`RenewalTime`, `desiredRenewalTime`) as its readiness controller calls it: with the issued
//! certificate's notBefore/notAfter, `spec.renewBefore` and `spec.renewBeforePercentage`. Rules:
//! `renewBefore` when positive and shorter than the lifetime; else the percentage when in
//! (0, 100), computed in float64 as cert-manager does; else a third of the lifetime; then
//! `notAfter − renewBefore`, truncated to the second. Durations are Go's: nanoseconds in an
//! `i64`, `notAfter − notBefore` saturating. Not simulated: ACME ARI windows and `spec.renewal`
//! (windows, `Disabled`).
//!
//! This is deliberately independent of relay-issuer (`pki::renewal`, `pki::inspect`,
//! `pki::format_time`): the simulator plays cert-manager and must be able to judge the product's
//! renewal arithmetic, not repeat it. `tests/tests/renewal_agreement.rs` runs both on the same
//! inputs. The certificate is read with x509-parser and times are formatted with the `time`
//! crate directly.

use super::go_duration::saturating_nanos;
use kube_sandbox::Error;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

/// How long before notAfter cert-manager renews a certificate whose lifetime is `lifetime`
/// nanoseconds (cert-manager's `desiredRenewalTime`). All values are Go nanoseconds.
pub fn desired_renew_before(
    lifetime: i64,
    renew_before: Option<i64>,
    percentage: Option<i32>,
) -> i64 {
    if let Some(before) = renew_before
        && before > 0
        && before < lifetime
    {
        return before;
    }
    if let Some(percentage) = percentage
        && percentage > 0
        && percentage < 100
    {
        // float64 as in cert-manager (which moved off int64 to avoid overflow); the cast
        // truncates toward zero like Go's conversion.
        return (lifetime as f64 * f64::from(percentage) / 100.0) as i64;
    }
    // Go's integer division truncates toward zero, as Rust's does.
    lifetime / 3
}

/// cert-manager's renewal time for a certificate valid from `not_before` to `not_after`, or
/// `None` when it falls outside the dates the `time` crate represents.
pub fn renewal_time(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    renew_before: Option<Duration>,
    percentage: Option<i32>,
) -> Option<OffsetDateTime> {
    let lifetime = saturating_nanos(not_after - not_before);
    let before = desired_renew_before(lifetime, renew_before.map(saturating_nanos), percentage);
    let renewal = not_after.checked_add(Duration::nanoseconds(before.wrapping_neg()))?;
    Some(truncate_to_second(renewal))
}

/// Go's `Time.Truncate(time.Second)`: rounds down to a whole second.
pub fn truncate_to_second(t: OffsetDateTime) -> OffsetDateTime {
    // The nanosecond field counts forward from the second, so dropping it rounds down.
    t.replace_nanosecond(0).unwrap_or(t)
}

/// notBefore and notAfter of the first certificate in a PEM chain (the leaf cert-manager reads
/// from `tls.crt`).
pub fn leaf_validity(chain_pem: &[u8]) -> Result<(OffsetDateTime, OffsetDateTime), Error> {
    let unusable = |why: String| {
        Error::BadRequest(format!(
            "the issued certificate chain cannot be read ({why}); the issuer must return PEM certificates, the leaf first"
        ))
    };
    let pem = x509_parser::pem::Pem::iter_from_buffer(chain_pem)
        .next()
        .ok_or_else(|| unusable("no PEM block".into()))?
        .map_err(|e| unusable(e.to_string()))?;
    let certificate = pem.parse_x509().map_err(|e| unusable(e.to_string()))?;
    let validity = certificate.validity();
    Ok((
        validity.not_before.to_datetime(),
        validity.not_after.to_datetime(),
    ))
}

/// A timestamp as Kubernetes writes a `metav1.Time`: RFC 3339 in UTC, whole seconds
/// (`2026-11-28T03:04:05Z`).
pub fn metav1_time(t: OffsetDateTime) -> Result<String, Error> {
    truncate_to_second(t.to_offset(UtcOffset::UTC))
        .format(&Rfc3339)
        .map_err(|e| Error::Internal(format!("the time {t} cannot be written as RFC 3339: {e}")))
}

#[cfg(test)]
mod tests {
    use super::super::upstream_cases::{RENEW_BEFORE_CASES, RENEWAL_TIME_CASES};
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    /// Whole-second notBefore values to run the upstream rows from (upstream uses "now",
    /// truncated to the second).
    const BASES: [OffsetDateTime; 3] = [
        datetime!(2026-01-01 00:00:00 UTC),
        datetime!(2031-07-15 13:47:11 UTC),
        datetime!(1999-12-31 23:59:59 UTC),
    ];

    #[test]
    fn cert_manager_s_renewal_time_table() {
        for case in RENEWAL_TIME_CASES {
            for base in BASES {
                let got = renewal_time(
                    base,
                    base + Duration::nanoseconds(case.lifetime),
                    case.renew_before.map(Duration::nanoseconds),
                    case.percentage,
                );
                assert_eq!(
                    got,
                    Some(base + Duration::nanoseconds(case.renewal_after_not_before)),
                    "{} (notBefore {base})",
                    case.name
                );
            }
        }
    }

    #[test]
    fn cert_manager_s_renew_before_table() {
        for case in RENEW_BEFORE_CASES {
            assert_eq!(
                desired_renew_before(case.lifetime, case.renew_before, case.percentage),
                case.expected,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn a_fraction_of_a_second_is_dropped_not_rounded() {
        let not_before = datetime!(2026-01-01 00:00:00 UTC);
        // A third of 10 s is 3.333… s: renewal at 6.666… s, written as 6 s.
        let renewal = renewal_time(not_before, not_before + Duration::seconds(10), None, None);
        assert_eq!(renewal, Some(not_before + Duration::seconds(6)));
        // A notAfter with a fraction (not from X.509, but the rule is general).
        let renewal = renewal_time(
            not_before,
            not_before + Duration::milliseconds(2_999),
            Some(Duration::milliseconds(1)),
            None,
        );
        assert_eq!(renewal, Some(not_before + Duration::seconds(2)));
    }

    #[test]
    fn lifetimes_beyond_go_s_range_saturate_like_time_sub() {
        let not_before = datetime!(2000-01-01 00:00:00 UTC);
        let not_after = datetime!(9999-12-31 23:59:59 UTC);
        let renewal = renewal_time(not_before, not_after, None, None);
        assert_eq!(
            renewal,
            Some(truncate_to_second(
                not_after - Duration::nanoseconds(i64::MAX / 3)
            ))
        );
    }

    #[test]
    fn status_times_are_utc_whole_seconds() {
        let t = datetime!(2026-11-28 05:04:05.999 +02:00);
        assert_eq!(metav1_time(t).unwrap(), "2026-11-28T03:04:05Z");
    }

    #[test]
    fn reads_the_leaf_s_validity_from_a_pem_chain() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["leaf.test".into()]).unwrap();
        params.not_before = datetime!(2026-03-01 10:00:00 UTC);
        params.not_after = datetime!(2026-03-02 10:00:00 UTC);
        let leaf = params.self_signed(&key).unwrap();
        let mut other = rcgen::CertificateParams::new(vec!["ca.test".into()]).unwrap();
        other.not_before = datetime!(2020-01-01 00:00:00 UTC);
        let ca = other.self_signed(&key).unwrap();
        let chain = format!("{}{}", leaf.pem(), ca.pem());
        assert_eq!(
            leaf_validity(chain.as_bytes()).unwrap(),
            (params.not_before, params.not_after)
        );
        let error = leaf_validity(b"not a certificate").unwrap_err();
        assert!(error.to_string().contains("cannot be read"), "{error}");
    }

    proptest! {
        #[test]
        fn renewal_lies_within_the_validity_and_on_a_second(
            lifetime_s in 2i64..(200 * 365 * 86_400),
            renew_before_s in proptest::option::of(-10i64..(300 * 365 * 86_400)),
            percentage in proptest::option::of(-5i32..120),
        ) {
            let not_before = BASES[0];
            let not_after = not_before + Duration::seconds(lifetime_s);
            let renewal = renewal_time(not_before, not_after, renew_before_s.map(Duration::seconds), percentage);
            let renewal = renewal.expect("in range");
            prop_assert!(renewal >= not_before && renewal < not_after);
            prop_assert_eq!(renewal.nanosecond(), 0);
        }
    }
}
