//! Renewal arithmetic: when cert-manager renews, and when the relay grace ratio says to rotate.
//!
//! Pure functions over timestamps and durations. (a) mirrors cert-manager's `RenewalTime`
//! (v1.21: renewBefore, else renewBeforePercentage in float64, else a third of the lifetime;
//! truncated to the second). (b) is the relay's `clientTlsSecretRotationGracePeriodRatio`:
//! rotation starts `ratio × lifetime` before notAfter.

use super::truncate_to_second;
use crate::Error;
use time::{Duration, OffsetDateTime};

/// How long before notAfter cert-manager renews a certificate with this lifetime.
///
/// `renew_before` wins when it is positive and shorter than the lifetime; otherwise
/// `renew_before_percentage` when it is in (0, 100); otherwise a third of the lifetime. As in
/// cert-manager, the lifetime is a Go duration (nanoseconds in an `i64`, saturating past about
/// 292 years) and the percentage is computed in float64 and truncated, so for multi-year
/// lifetimes the result can be a few nanoseconds off the exact value, exactly as cert-manager's.
pub fn cert_manager_renew_before(
    lifetime: Duration,
    renew_before: Option<Duration>,
    renew_before_percentage: Option<i32>,
) -> Duration {
    let lifetime = go_nanos(lifetime);
    if let Some(rb) = renew_before
        && rb > Duration::ZERO
        && rb.whole_nanoseconds() < i128::from(lifetime)
    {
        return rb;
    }
    if let Some(pct) = renew_before_percentage
        && pct > 0
        && pct < 100
    {
        return Duration::nanoseconds((lifetime as f64 * f64::from(pct) / 100.0) as i64);
    }
    Duration::nanoseconds(lifetime / 3)
}

/// A duration as Go's `time.Duration` holds it: nanoseconds, saturating at the `i64` range.
fn go_nanos(duration: Duration) -> i64 {
    let nanos = duration.whole_nanoseconds();
    nanos.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// cert-manager's renewal time for a certificate valid from `not_before` to `not_after`:
/// `not_after - renew_before`, truncated to the second.
pub fn cert_manager_renewal_time(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    renew_before: Option<Duration>,
    renew_before_percentage: Option<i32>,
) -> OffsetDateTime {
    let lifetime = not_after - not_before;
    let rb = cert_manager_renew_before(lifetime, renew_before, renew_before_percentage);
    truncate_to_second(not_after - rb)
}

/// Checks a relay grace-period ratio: it must be a number strictly between 0 and 1.
pub fn validate_grace_ratio(ratio: f64) -> Result<f64, Error> {
    if ratio.is_finite() && ratio > 0.0 && ratio < 1.0 {
        Ok(ratio)
    } else {
        Err(Error::RatioOutOfRange { ratio })
    }
}

/// Parses the Helm value `clientTlsSecretRotationGracePeriodRatio`: empty means "not set"
/// (`None`), anything else must be a number in (0, 1).
pub fn parse_grace_ratio(text: &str) -> Result<Option<f64>, Error> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let ratio: f64 = text
        .parse()
        .map_err(|_| Error::RatioOutOfRange { ratio: f64::NAN })?;
    validate_grace_ratio(ratio).map(Some)
}

/// How long before notAfter rotation starts under a grace ratio: `ratio × lifetime`.
pub fn grace_period(lifetime: Duration, ratio: f64) -> Result<Duration, Error> {
    let ratio = validate_grace_ratio(ratio)?;
    let grace = (lifetime.whole_nanoseconds() as f64 * ratio).round();
    Ok(nanos(grace as i128))
}

/// When rotation starts under a grace ratio: `not_after - ratio × (not_after - not_before)`.
pub fn grace_rotation_time(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    ratio: f64,
) -> Result<OffsetDateTime, Error> {
    Ok(not_after - grace_period(not_after - not_before, ratio)?)
}

/// The cert-manager `renewBefore` that makes cert-manager renew at the grace ratio for a
/// certificate of the given duration, truncated to whole seconds (the Helm chart renders this).
pub fn renew_before_for_ratio(duration: Duration, ratio: f64) -> Result<Duration, Error> {
    let grace = grace_period(duration, ratio)?;
    Ok(Duration::seconds(grace.whole_seconds()))
}

fn nanos(value: i128) -> Duration {
    let clamped = value.clamp(i128::from(i64::MIN), i128::from(i64::MAX));
    Duration::nanoseconds(clamped as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const NB: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

    #[test]
    fn default_is_two_thirds_of_the_lifetime() {
        let na = NB + Duration::hours(2160);
        assert_eq!(
            cert_manager_renewal_time(NB, na, None, None),
            NB + Duration::hours(1440)
        );
    }

    #[test]
    fn renew_before_wins_when_shorter_than_the_lifetime() {
        let na = NB + Duration::hours(24);
        let rt = cert_manager_renewal_time(NB, na, Some(Duration::hours(1)), Some(50));
        assert_eq!(rt, na - Duration::hours(1));
        // Not shorter than the lifetime: falls through to the percentage.
        let rt = cert_manager_renewal_time(NB, na, Some(Duration::hours(24)), Some(25));
        assert_eq!(rt, na - Duration::hours(6));
        // Zero or negative renewBefore is ignored.
        let rt = cert_manager_renewal_time(NB, na, Some(Duration::ZERO), None);
        assert_eq!(rt, na - Duration::hours(8));
    }

    #[test]
    fn percentage_matches_the_crd_example() {
        // "valid for 60 minutes, renewBeforePercentage=25 → renew 45 minutes after issuance".
        let na = NB + Duration::minutes(60);
        assert_eq!(
            cert_manager_renewal_time(NB, na, None, Some(25)),
            NB + Duration::minutes(45)
        );
        // Out of range percentages fall back to a third.
        for pct in [0, 100, -5, 150] {
            assert_eq!(
                cert_manager_renewal_time(NB, na, None, Some(pct)),
                NB + Duration::minutes(40)
            );
        }
    }

    #[test]
    fn renewal_time_is_truncated_to_the_second() {
        let na = NB + Duration::seconds(10);
        // A third of 10s is 3.333s: renewal at 6.666s, truncated to 6s.
        assert_eq!(
            cert_manager_renewal_time(NB, na, None, None),
            NB + Duration::seconds(6)
        );
    }

    #[test]
    fn percentages_round_in_float64_as_cert_manager_does() {
        // 37 years at 80 %: float64 puts renewBefore 128 ns past the exact value, so the renewal
        // time (truncated) falls a second earlier than exact arithmetic says.
        let na = NB + Duration::seconds(1_172_300_335);
        let exact = na - Duration::seconds(1_172_300_335 * 80 / 100);
        assert_eq!(
            cert_manager_renewal_time(NB, na, None, Some(80)),
            exact - Duration::seconds(1)
        );
    }

    #[test]
    fn long_lifetimes_do_not_overflow() {
        let na = NB + Duration::days(3650);
        let rt = cert_manager_renewal_time(NB, na, None, Some(33));
        assert_eq!(rt, na - Duration::seconds(3650 * 86400 * 33 / 100));
    }

    #[test]
    fn grace_ratio_of_a_tenth_of_a_year_is_36_and_a_half_days() {
        let na = NB + Duration::days(365);
        let start = grace_rotation_time(NB, na, 0.1).unwrap();
        assert_eq!(na - start, Duration::hours(876));
        assert_eq!(na - start, Duration::days(36) + Duration::hours(12));
        assert_eq!(
            renew_before_for_ratio(Duration::hours(8760), 0.1).unwrap(),
            Duration::hours(876)
        );
    }

    #[test]
    fn ratios_outside_zero_one_are_errors() {
        for bad in [0.0, 1.0, -0.1, 1.5, f64::NAN, f64::INFINITY] {
            let err = validate_grace_ratio(bad).unwrap_err();
            assert!(
                err.to_string().contains("greater than 0 and less than 1"),
                "{err}"
            );
        }
        assert_eq!(parse_grace_ratio("").unwrap(), None);
        assert_eq!(parse_grace_ratio(" 0.25 ").unwrap(), Some(0.25));
        assert!(parse_grace_ratio("abc").is_err());
        assert!(parse_grace_ratio("1").is_err());
    }

    proptest! {
        #[test]
        fn renewal_lies_within_the_validity(lifetime_s in 2i64..(20 * 365 * 86400), rb_s in proptest::option::of(-10i64..(30 * 365 * 86400)), pct in proptest::option::of(-5i32..120)) {
            let na = NB + Duration::seconds(lifetime_s);
            let rt = cert_manager_renewal_time(NB, na, rb_s.map(Duration::seconds), pct);
            prop_assert!(rt >= NB);
            prop_assert!(rt < na);
            prop_assert_eq!(rt.nanosecond(), 0);
        }

        #[test]
        fn grace_rotation_lies_within_the_validity(lifetime_s in 1i64..(20 * 365 * 86400), ratio in 0.0001f64..0.9999) {
            let na = NB + Duration::seconds(lifetime_s);
            let start = grace_rotation_time(NB, na, ratio).unwrap();
            prop_assert!(start >= NB && start <= na);
            let expected = lifetime_s as f64 * ratio;
            let got = (na - start).as_seconds_f64();
            prop_assert!((got - expected).abs() < 1e-3);
        }
    }
}
