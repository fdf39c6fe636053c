//! relay-issuer's renewal and duration arithmetic judged by the simulator's own.
//!
//! The cert-manager simulator computes renewal times and Go durations with code written from
//! cert-manager's and Go's sources (`cert_manager_sim::{renewal, go_duration}`), never
//! with relay-issuer's. Here both run on the same inputs: cert-manager's and Go's test tables
//! (`simulator::upstream_cases`), a few rows evaluated by cert-manager's own Go code, and random
//! inputs; they must agree. A wrong formula in `relay_issuer::pki::renewal` or a parsing slip in
//! `relay_issuer::pki::duration` fails here even when end-to-end rotation still "works".

use cert_manager_sim::upstream_cases::{
    GO_DURATION_STRING_CASES, GO_PARSE_DURATION_CASES, GO_PARSE_DURATION_ERROR_CASES,
    RENEW_BEFORE_CASES, RENEWAL_TIME_CASES,
};
use cert_manager_sim::{go_duration, renewal};
use proptest::prelude::*;
use relay_issuer::pki::renewal::{cert_manager_renew_before, cert_manager_renewal_time};
use relay_issuer::pki::{format_duration, parse_duration};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// Whole-second notBefore values (X.509 times are whole seconds).
const BASES: [OffsetDateTime; 3] = [
    datetime!(2026-01-01 00:00:00 UTC),
    datetime!(2031-07-15 13:47:11 UTC),
    datetime!(1999-12-31 23:59:59 UTC),
];

/// The product's and the simulator's renewal time for one certificate; panics with the inputs
/// when they differ.
fn assert_same_renewal(
    what: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    renew_before: Option<Duration>,
    percentage: Option<i32>,
) -> OffsetDateTime {
    let simulated = renewal::renewal_time(not_before, not_after, renew_before, percentage)
        .unwrap_or_else(|| panic!("{what}: the simulator has no renewal time"));
    let product = cert_manager_renewal_time(not_before, not_after, renew_before, percentage);
    assert_eq!(
        product, simulated,
        "{what}: relay-issuer renews at {product}, cert-manager (simulated) at {simulated} \
         (notBefore {not_before}, notAfter {not_after}, renewBefore {renew_before:?}, \
         renewBeforePercentage {percentage:?})"
    );
    simulated
}

#[test]
fn renewal_times_agree_on_cert_manager_s_table() {
    for case in RENEWAL_TIME_CASES {
        for base in BASES {
            let renewal = assert_same_renewal(
                case.name,
                base,
                base + Duration::nanoseconds(case.lifetime),
                case.renew_before.map(Duration::nanoseconds),
                case.percentage,
            );
            assert_eq!(
                renewal - base,
                Duration::nanoseconds(case.renewal_after_not_before),
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn renew_before_agrees_on_cert_manager_s_table() {
    for case in RENEW_BEFORE_CASES {
        let simulated =
            renewal::desired_renew_before(case.lifetime, case.renew_before, case.percentage);
        let product = cert_manager_renew_before(
            Duration::nanoseconds(case.lifetime),
            case.renew_before.map(Duration::nanoseconds),
            case.percentage,
        );
        assert_eq!(simulated, case.expected, "{}", case.name);
        assert_eq!(
            product,
            Duration::nanoseconds(simulated),
            "{}: relay-issuer renews {product} before notAfter, cert-manager (simulated) {}",
            case.name,
            go_duration::format_nanos(simulated)
        );
    }
}

/// Certificates whose renewal time cert-manager v1.21.2's `desiredRenewalTime`, run in Go,
/// puts one second earlier than exact integer arithmetic would: multi-year lifetimes with a
/// percentage, where cert-manager's float64 product rounds up. Columns: notBefore, notAfter
/// (Unix seconds), renewBeforePercentage, cert-manager's renewal time (Unix seconds).
const FLOAT_ROUNDING_ROWS: [(i64, i64, i32, i64); 3] = [
    (2_043_825_651, 2_270_587_901, 94, 2_057_431_385),
    (1_948_561_193, 2_199_954_909, 75, 2_011_409_621),
    (1_986_768_490, 2_353_104_750, 55, 2_151_619_806),
];

#[test]
fn renewal_times_agree_where_cert_manager_rounds_in_float64() -> Result<(), time::Error> {
    for (not_before, not_after, percentage, expected) in FLOAT_ROUNDING_ROWS {
        let not_before = OffsetDateTime::from_unix_timestamp(not_before)?;
        let not_after = OffsetDateTime::from_unix_timestamp(not_after)?;
        let renewal = assert_same_renewal(
            "a float64-rounded percentage",
            not_before,
            not_after,
            None,
            Some(percentage),
        );
        assert_eq!(renewal.unix_timestamp(), expected);
    }
    Ok(())
}

/// The product's and the simulator's parse of one text: both succeed with the same value or both
/// refuse.
fn assert_same_parse(input: &str) -> Option<i64> {
    let simulated = go_duration::parse_nanos(input);
    let product = parse_duration(input);
    match (&simulated, &product) {
        (Ok(go), Ok(ours)) => assert_eq!(
            ours.whole_nanoseconds(),
            i128::from(*go),
            "{input:?}: relay-issuer parses {ours}, Go (simulated) {}",
            go_duration::format_nanos(*go)
        ),
        (Err(_), Err(_)) => {}
        _ => panic!(
            "{input:?}: relay-issuer says {product:?}, Go (simulated) says {:?}",
            simulated.as_ref().map_err(ToString::to_string)
        ),
    }
    simulated.ok()
}

#[test]
fn durations_parse_alike_on_go_s_table() {
    for case in GO_PARSE_DURATION_CASES {
        assert_eq!(
            assert_same_parse(case.input),
            Some(case.nanos),
            "{:?}",
            case.input
        );
    }
    for case in GO_PARSE_DURATION_ERROR_CASES {
        assert_eq!(assert_same_parse(case.input), None, "{:?}", case.input);
    }
}

#[test]
fn durations_print_alike_on_go_s_table() {
    for case in GO_DURATION_STRING_CASES {
        for nanos in [case.nanos, case.nanos.saturating_neg()] {
            let go = go_duration::format_nanos(nanos);
            assert_eq!(
                format_duration(Duration::nanoseconds(nanos)),
                go,
                "{nanos}ns"
            );
        }
        assert_eq!(go_duration::format_nanos(case.nanos), case.text);
    }
}

/// The one difference on purpose: relay-issuer ignores surrounding whitespace (its CLI flags),
/// Go refuses it. Random texts below therefore carry no whitespace.
#[test]
fn only_the_product_ignores_surrounding_whitespace() {
    for input in [" 1h", "1h ", "\t90m\n"] {
        assert!(go_duration::parse_nanos(input).is_err(), "{input:?}");
        assert!(parse_duration(input).is_ok(), "{input:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn renewal_times_agree_on_random_certificates(
        not_before in 0i64..4_000_000_000,
        lifetime in prop_oneof![1i64..(400 * 86_400), 1i64..(100 * 365 * 86_400)],
        renew_before in proptest::option::of(prop_oneof![
            (-10i64..(120 * 365 * 86_400)).prop_map(|s| s * 1_000_000_000),
            -10_000_000_000i64..(400 * 86_400 * 1_000_000_000i64),
        ]),
        percentage in proptest::option::of(-5i32..110),
    ) {
        let not_before = OffsetDateTime::from_unix_timestamp(not_before).map_err(|e| TestCaseError::fail(e.to_string()))?;
        assert_same_renewal(
            "random",
            not_before,
            not_before + Duration::seconds(lifetime),
            renew_before.map(Duration::nanoseconds),
            percentage,
        );
    }

    #[test]
    fn durations_parse_alike_on_random_texts(
        input in prop_oneof![
            "[-+]?(([0-9]{0,20}(\\.[0-9]{0,24})?)(h|m|s|ms|us|µs|μs|ns|d|y)?){1,3}",
            "[-+0-9.hmsunµμdy]{0,16}",
        ]
    ) {
        assert_same_parse(&input);
    }

    #[test]
    fn durations_print_alike(nanos in any::<i64>()) {
        prop_assert_eq!(
            format_duration(Duration::nanoseconds(nanos)),
            go_duration::format_nanos(nanos)
        );
    }
}
