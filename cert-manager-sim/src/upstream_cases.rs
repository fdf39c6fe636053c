//! Test vectors from upstream, as data: the inputs and expected outputs of cert-manager's
//! `pkg/util/pki/renewaltime_test.go` (v1.21.2) and of Go's `time/time_test.go` (Go 1.26)
//! duration tables.
//!
//! The simulator's own [`super::renewal`] and [`super::go_duration`] are checked against these,
//! and `tests/tests/renewal_agreement.rs` runs relay-issuer's versions on the same rows. Only
//! the data lives here (no upstream code). Expectations that upstream writes as expressions
//! (e.g. `time.Duration(float64(10 years) * 0.99)`) are the values Go evaluates them to.
//! Left out: cert-manager's ARI and `spec.renewal` window cases (the simulator implements
//! neither), and Go's error inputs that are not valid UTF-8 (a Kubernetes JSON string cannot
//! carry them).

const NS: i64 = 1;
const US: i64 = 1_000;
const MS: i64 = 1_000_000;
const S: i64 = 1_000_000_000;
const M: i64 = 60 * S;
const H: i64 = 60 * M;

/// A row of cert-manager's `TestRenewalTime`: a certificate valid for `lifetime` (notBefore is a
/// whole second), and when cert-manager renews it.
#[derive(Debug, Clone, Copy)]
pub struct RenewalTimeCase {
    /// The upstream scenario name.
    pub name: &'static str,
    /// notAfter − notBefore, in nanoseconds.
    pub lifetime: i64,
    /// `spec.renewBefore`, in nanoseconds.
    pub renew_before: Option<i64>,
    /// `spec.renewBeforePercentage`.
    pub percentage: Option<i32>,
    /// The expected renewal time − notBefore, in nanoseconds.
    pub renewal_after_not_before: i64,
}

/// cert-manager's `TestRenewalTime` rows (the ARI row left out).
pub const RENEWAL_TIME_CASES: &[RenewalTimeCase] = &[
    RenewalTimeCase {
        name: "short lived cert, spec.renewBefore is not set",
        lifetime: 3 * H,
        renew_before: None,
        percentage: None,
        renewal_after_not_before: 2 * H,
    },
    RenewalTimeCase {
        name: "long lived cert, spec.renewBefore is not set",
        lifetime: 4380 * H,
        renew_before: None,
        percentage: None,
        renewal_after_not_before: 2920 * H,
    },
    RenewalTimeCase {
        name: "spec.renewBefore is set",
        lifetime: 24 * H,
        renew_before: Some(20 * H),
        percentage: None,
        renewal_after_not_before: 4 * H,
    },
    RenewalTimeCase {
        name: "long lived cert, spec.renewBefore is set to renew every day",
        lifetime: 730 * H,
        renew_before: Some(706 * H),
        percentage: None,
        renewal_after_not_before: 24 * H,
    },
    RenewalTimeCase {
        name: "spec.renewBefore is set, but would result in renewal time after expiry",
        lifetime: 24 * H,
        renew_before: Some(25 * H),
        percentage: None,
        renewal_after_not_before: 16 * H,
    },
    RenewalTimeCase {
        name: "long lived cert, spec.renewBeforePercentage is set to renew 30% before expiry",
        lifetime: 730 * H,
        renew_before: None,
        percentage: Some(30),
        renewal_after_not_before: 511 * H,
    },
    RenewalTimeCase {
        name: "spec.renewBefore is set to a value slightly less than cert's duration",
        lifetime: 24 * H + 3 * M,
        renew_before: Some(24 * H),
        percentage: None,
        renewal_after_not_before: 3 * M,
    },
    RenewalTimeCase {
        name: "certificate's duration is skewed by a second",
        lifetime: 24 * H - S,
        renew_before: None,
        percentage: None,
        renewal_after_not_before: 16 * H - S,
    },
];

/// A row of cert-manager's `TestRenewBefore` (`desiredRenewalTime`): how long before notAfter
/// a certificate of `lifetime` is renewed.
#[derive(Debug, Clone, Copy)]
pub struct RenewBeforeCase {
    /// The upstream scenario name.
    pub name: &'static str,
    /// The certificate's lifetime, in nanoseconds.
    pub lifetime: i64,
    /// `spec.renewBefore`, in nanoseconds.
    pub renew_before: Option<i64>,
    /// `spec.renewBeforePercentage`.
    pub percentage: Option<i32>,
    /// The expected renew-before, in nanoseconds.
    pub expected: i64,
}

/// cert-manager's `TestRenewBefore` rows (lifetime 3 h unless the row says otherwise).
pub const RENEW_BEFORE_CASES: &[RenewBeforeCase] = &[
    RenewBeforeCase {
        name: "spec.renewBefore and spec.renewBeforePercentage are not set",
        lifetime: 3 * H,
        renew_before: None,
        percentage: None,
        expected: H,
    },
    RenewBeforeCase {
        name: "spec.renewBeforePercentage is valid",
        lifetime: 3 * H,
        renew_before: None,
        percentage: Some(25),
        expected: 45 * M,
    },
    RenewBeforeCase {
        name: "spec.renewBeforePercentage is too large so default is used",
        lifetime: 3 * H,
        renew_before: None,
        percentage: Some(100),
        expected: H,
    },
    RenewBeforeCase {
        name: "spec.renewBeforePercentage is too small so default is used",
        lifetime: 3 * H,
        renew_before: None,
        percentage: Some(0),
        expected: H,
    },
    RenewBeforeCase {
        name: "spec.renewBefore is valid",
        lifetime: 3 * H,
        renew_before: Some(H),
        percentage: None,
        expected: H,
    },
    RenewBeforeCase {
        name: "spec.renewBefore is invalid so default is used",
        lifetime: 3 * H,
        renew_before: Some(4 * H),
        percentage: None,
        expected: H,
    },
    RenewBeforeCase {
        name: "spec.renewBeforePercentage=99 with 10-year duration does not overflow int64",
        lifetime: 24 * 365 * 10 * H,
        renew_before: None,
        percentage: Some(99),
        expected: 312_206_400_000_000_000,
    },
    RenewBeforeCase {
        name: "spec.renewBeforePercentage=99 with 3-year duration does not overflow int64",
        lifetime: 24 * 365 * 3 * H,
        renew_before: None,
        percentage: Some(99),
        expected: 93_661_920_000_000_000,
    },
];

/// A row of Go's `parseDurationTests`.
#[derive(Debug, Clone, Copy)]
pub struct ParseDurationCase {
    /// The text.
    pub input: &'static str,
    /// What `time.ParseDuration` returns, in nanoseconds.
    pub nanos: i64,
}

const fn parsed(input: &'static str, nanos: i64) -> ParseDurationCase {
    ParseDurationCase { input, nanos }
}

/// Go's `parseDurationTests`.
pub const GO_PARSE_DURATION_CASES: &[ParseDurationCase] = &[
    // simple
    parsed("0", 0),
    parsed("5s", 5 * S),
    parsed("30s", 30 * S),
    parsed("1478s", 1478 * S),
    // sign
    parsed("-5s", -5 * S),
    parsed("+5s", 5 * S),
    parsed("-0", 0),
    parsed("+0", 0),
    // decimal
    parsed("5.0s", 5 * S),
    parsed("5.6s", 5 * S + 600 * MS),
    parsed("5.s", 5 * S),
    parsed(".5s", 500 * MS),
    parsed("1.0s", S),
    parsed("1.00s", S),
    parsed("1.004s", S + 4 * MS),
    parsed("1.0040s", S + 4 * MS),
    parsed("100.00100s", 100 * S + MS),
    // units
    parsed("10ns", 10 * NS),
    parsed("11us", 11 * US),
    parsed("12\u{b5}s", 12 * US),
    parsed("12\u{3bc}s", 12 * US),
    parsed("13ms", 13 * MS),
    parsed("14s", 14 * S),
    parsed("15m", 15 * M),
    parsed("16h", 16 * H),
    // composite
    parsed("3h30m", 3 * H + 30 * M),
    parsed("10.5s4m", 4 * M + 10 * S + 500 * MS),
    parsed("-2m3.4s", -(2 * M + 3 * S + 400 * MS)),
    parsed(
        "1h2m3s4ms5us6ns",
        H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS,
    ),
    parsed("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
    // large value
    parsed("52763797000ns", 52_763_797_000 * NS),
    // more than 9 digits after the point
    parsed("0.3333333333333333333h", 20 * M),
    // 2^53 + 1, not exact in a float64
    parsed("9007199254740993ns", (1 << 53) + 1),
    // the largest positive duration
    parsed("9223372036854775807ns", i64::MAX),
    parsed("9223372036854775.807us", i64::MAX),
    parsed("9223372036s854ms775us807ns", i64::MAX),
    // the largest negative duration
    parsed("-9223372036854775808ns", i64::MIN),
    parsed("-9223372036854775.808us", i64::MIN),
    parsed("-9223372036s854ms775us808ns", i64::MIN),
    parsed("-2562047h47m16.854775808s", i64::MIN),
    // a huge fraction
    parsed("0.100000000000000000000h", 6 * M),
    // the first overflow check of the fraction
    parsed(
        "0.830103483285477580700h",
        49 * M + 48 * S + 372_539_827 * NS,
    ),
];

/// A row of Go's `parseDurationErrorTests`: `quoted` is what upstream checks the error contains;
/// `message` is the whole error text Go prints.
#[derive(Debug, Clone, Copy)]
pub struct ParseDurationErrorCase {
    /// The text.
    pub input: &'static str,
    /// The quoted input upstream looks for in the error.
    pub quoted: &'static str,
    /// Go's complete error message.
    pub message: &'static str,
}

const fn refused(
    input: &'static str,
    quoted: &'static str,
    message: &'static str,
) -> ParseDurationErrorCase {
    ParseDurationErrorCase {
        input,
        quoted,
        message,
    }
}

/// Go's `parseDurationErrorTests` (the valid UTF-8 rows).
pub const GO_PARSE_DURATION_ERROR_CASES: &[ParseDurationErrorCase] = &[
    refused("", r#""""#, r#"time: invalid duration """#),
    refused("3", r#""3""#, r#"time: missing unit in duration "3""#),
    refused("-", r#""-""#, r#"time: invalid duration "-""#),
    refused("s", r#""s""#, r#"time: invalid duration "s""#),
    refused(".", r#"".""#, r#"time: invalid duration ".""#),
    refused("-.", r#""-.""#, r#"time: invalid duration "-.""#),
    refused(".s", r#"".s""#, r#"time: invalid duration ".s""#),
    refused("+.s", r#""+.s""#, r#"time: invalid duration "+.s""#),
    refused(
        "1d",
        r#""1d""#,
        r#"time: unknown unit "d" in duration "1d""#,
    ),
    refused(
        "\u{fffd}",
        r#""\xef\xbf\xbd""#,
        r#"time: invalid duration "\xef\xbf\xbd""#,
    ),
    refused(
        "\u{fffd} hello \u{fffd} world",
        r#""\xef\xbf\xbd hello \xef\xbf\xbd world""#,
        r#"time: invalid duration "\xef\xbf\xbd hello \xef\xbf\xbd world""#,
    ),
    // overflow
    refused(
        "9223372036854775810ns",
        r#""9223372036854775810ns""#,
        r#"time: invalid duration "9223372036854775810ns""#,
    ),
    refused(
        "9223372036854775808ns",
        r#""9223372036854775808ns""#,
        r#"time: invalid duration "9223372036854775808ns""#,
    ),
    refused(
        "-9223372036854775809ns",
        r#""-9223372036854775809ns""#,
        r#"time: invalid duration "-9223372036854775809ns""#,
    ),
    refused(
        "9223372036854776us",
        r#""9223372036854776us""#,
        r#"time: invalid duration "9223372036854776us""#,
    ),
    refused(
        "3000000h",
        r#""3000000h""#,
        r#"time: invalid duration "3000000h""#,
    ),
    refused(
        "9223372036854775.808us",
        r#""9223372036854775.808us""#,
        r#"time: invalid duration "9223372036854775.808us""#,
    ),
    refused(
        "9223372036854ms775us808ns",
        r#""9223372036854ms775us808ns""#,
        r#"time: invalid duration "9223372036854ms775us808ns""#,
    ),
];

/// A row of Go's `durationTests` (`Duration.String()`; upstream also checks that the negation
/// of each positive row prints with a leading `-`).
#[derive(Debug, Clone, Copy)]
pub struct DurationStringCase {
    /// What `String()` prints.
    pub text: &'static str,
    /// The duration, in nanoseconds.
    pub nanos: i64,
}

const fn printed(text: &'static str, nanos: i64) -> DurationStringCase {
    DurationStringCase { text, nanos }
}

/// Go's `durationTests`.
pub const GO_DURATION_STRING_CASES: &[DurationStringCase] = &[
    printed("0s", 0),
    printed("1ns", NS),
    printed("1.1\u{b5}s", 1100 * NS),
    printed("2.2ms", 2200 * US),
    printed("3.3s", 3300 * MS),
    printed("4m5s", 4 * M + 5 * S),
    printed("4m5.001s", 4 * M + 5001 * MS),
    printed("5h6m7.001s", 5 * H + 6 * M + 7001 * MS),
    printed("8m0.000000001s", 8 * M + NS),
    printed("2562047h47m16.854775807s", i64::MAX),
    printed("-2562047h47m16.854775808s", i64::MIN),
];
