//! Go's `time.ParseDuration` and `time.Duration.String()`, for the simulator.
//!
//! cert-manager's `spec.duration` and `spec.renewBefore` are Go `metav1.Duration`s: parsed with
//! `time.ParseDuration`, written back (in CertificateRequests, in webhook messages) with
//! `Duration.String()`. This module was written for the simulator from Go's source
//! (`time/format.go`, `time/time.go`, Go 1.26), including what a first guess gets wrong: the
//! `i64` range is asymmetric (`-9223372036854775808ns` parses, `9223372036854775808ns` does
//! not), fractions go through `float64` (`0.3333333333333333333h` is exactly 20 minutes),
//! fraction digits past the 18th are dropped, and the error texts quote bytes as Go does.
//!
//! It is deliberately independent of relay-issuer's `pki::parse_duration` / `format_duration`:
//! the simulator plays cert-manager, so it must be able to judge the product rather than echo it
//! (`tests/tests/renewal_agreement.rs` runs both on the same inputs). Hand-written because no
//! crate reproduces Go's parser exactly. Nothing else lives here: cert-manager's renewal
//! arithmetic is in [`super::renewal`].

use kube_sandbox::Error;
use time::Duration;

/// 2^63: the magnitude of the most negative Go duration, and the bound on every partial sum.
const LIMIT: u64 = 1 << 63;

/// Nanoseconds per unit, for the units Go accepts (`µs` as U+00B5 and as U+03BC).
fn unit_nanos(unit: &[u8]) -> Option<u64> {
    Some(match unit {
        b"ns" => 1,
        b"us" => 1_000,
        _ if unit == "µs".as_bytes() || unit == "μs".as_bytes() => 1_000,
        b"ms" => 1_000_000,
        b"s" => 1_000_000_000,
        b"m" => 60_000_000_000,
        b"h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parses a duration as Go's `time.ParseDuration` does, into nanoseconds.
///
/// Errors carry Go's message, e.g. `time: unknown unit "d" in duration "1d"`.
pub fn parse_nanos(input: &str) -> Result<i64, Error> {
    let fail = |message: String| Error::BadRequest(format!("time: {message} {}", quote(input)));
    let invalid = || fail("invalid duration".into());
    let mut rest = input.as_bytes();
    let mut negative = false;
    if let Some(&sign) = rest.first()
        && (sign == b'-' || sign == b'+')
    {
        negative = sign == b'-';
        rest = &rest[1..];
    }
    if rest == b"0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while let Some(&first) = rest.first() {
        if first != b'.' && !first.is_ascii_digit() {
            return Err(invalid());
        }
        let (mut value, after_int) = whole_part(rest).ok_or_else(invalid)?;
        let had_int = after_int.len() != rest.len();
        rest = after_int;
        let mut fraction = Fraction::default();
        let mut had_fraction = false;
        if let Some(after_dot) = rest.strip_prefix(b".") {
            let (parsed, after_fraction) = fraction_part(after_dot);
            had_fraction = after_fraction.len() != after_dot.len();
            fraction = parsed;
            rest = after_fraction;
        }
        if !had_int && !had_fraction {
            return Err(invalid());
        }
        let unit_len = rest
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(fail("missing unit in duration".into()));
        }
        let (unit_text, after_unit) = rest.split_at(unit_len);
        rest = after_unit;
        let unit = unit_nanos(unit_text).ok_or_else(|| {
            fail(format!(
                "unknown unit {} in duration",
                quote(&String::from_utf8_lossy(unit_text))
            ))
        })?;
        if value > LIMIT / unit {
            return Err(invalid());
        }
        value *= unit;
        if fraction.digits > 0 {
            // Go scales the fraction in float64 and truncates toward zero.
            value += (fraction.digits as f64 * (unit as f64 / fraction.scale)) as u64;
            if value > LIMIT {
                return Err(invalid());
            }
        }
        // Both terms are at most 2^63, so the sum can reach 2^64 and wrap to 0, which Go then
        // accepts; wrapping here keeps that (harmless, unreachable from sane input) quirk.
        total = total.wrapping_add(value);
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if negative {
        // 2^63 as i64 is i64::MIN, and its negation is itself: Go's `-Duration(d)`.
        return Ok((total as i64).wrapping_neg());
    }
    if total > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(total as i64)
}

/// [`parse_nanos`] as a [`time::Duration`].
pub fn parse(input: &str) -> Result<Duration, Error> {
    parse_nanos(input).map(Duration::nanoseconds)
}

/// The leading decimal digits as an integer, or `None` when it exceeds 2^63 (Go: overflow).
fn whole_part(text: &[u8]) -> Option<(u64, &[u8])> {
    let digits = text.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut value: u64 = 0;
    for &c in &text[..digits] {
        if value > LIMIT / 10 {
            return None;
        }
        value = value * 10 + u64::from(c - b'0');
        if value > LIMIT {
            return None;
        }
    }
    Some((value, &text[digits..]))
}

/// Digits after the decimal point: `value = digits / scale`.
#[derive(Debug, Default)]
struct Fraction {
    digits: u64,
    scale: f64,
}

/// The leading fraction digits. Once another digit would overflow, later digits are consumed
/// but ignored (precision simply stops), as in Go.
fn fraction_part(text: &[u8]) -> (Fraction, &[u8]) {
    let len = text.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut fraction = Fraction {
        digits: 0,
        scale: 1.0,
    };
    for &c in &text[..len] {
        if fraction.digits > (LIMIT - 1) / 10 {
            break;
        }
        let next = fraction.digits * 10 + u64::from(c - b'0');
        if next > LIMIT {
            break;
        }
        fraction.digits = next;
        fraction.scale *= 10.0;
    }
    (fraction, &text[len..])
}

/// Quotes text as Go's `time` package does in its errors: `"` and `\` escaped, every byte of a
/// non-ASCII or control character written as `\xNN`.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if !c.is_ascii() || c < ' ' {
            let mut buffer = [0u8; 4];
            for byte in c.encode_utf8(&mut buffer).bytes() {
                out.push_str(&format!("\\x{byte:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Formats nanoseconds as Go's `Duration.String()`: `2160h0m0s`, `1m30s`, `1.5s`, `300ms`,
/// `2µs`, `7ns`, `0s`.
pub fn format_nanos(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let magnitude = nanos.unsigned_abs();
    const SECOND: u64 = 1_000_000_000;
    if magnitude == 0 {
        return "0s".into();
    }
    if magnitude < SECOND {
        let (unit, precision) = if magnitude < 1_000 {
            ("ns", 0)
        } else if magnitude < 1_000_000 {
            ("µs", 3)
        } else {
            ("ms", 6)
        };
        return format!("{sign}{}{unit}", decimal(magnitude, precision));
    }
    let seconds = decimal(magnitude % (60 * SECOND), 9);
    let minutes = magnitude / (60 * SECOND);
    match (minutes / 60, minutes % 60) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

/// [`format_nanos`] of a [`time::Duration`]; durations beyond Go's range (about 292 years)
/// saturate, as Go's `Time.Sub` does.
pub fn format(duration: Duration) -> String {
    format_nanos(saturating_nanos(duration))
}

/// A [`time::Duration`] as Go nanoseconds, saturating at the `i64` range.
pub fn saturating_nanos(duration: Duration) -> i64 {
    let nanos = duration.whole_nanoseconds();
    i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

/// `value / 10^precision` in decimal, the fraction without trailing zeros (and without the point
/// when it is zero).
fn decimal(value: u64, precision: u32) -> String {
    let scale = 10u64.pow(precision);
    let (whole, fraction) = (value / scale, value % scale);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = precision as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::super::upstream_cases::{
        GO_DURATION_STRING_CASES, GO_PARSE_DURATION_CASES, GO_PARSE_DURATION_ERROR_CASES,
    };
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_go_s_table() {
        for case in GO_PARSE_DURATION_CASES {
            match parse_nanos(case.input) {
                Ok(nanos) => assert_eq!(nanos, case.nanos, "ParseDuration({:?})", case.input),
                Err(e) => panic!("ParseDuration({:?}) failed: {e}", case.input),
            }
        }
    }

    #[test]
    fn rejects_go_s_error_table_with_go_s_messages() {
        for case in GO_PARSE_DURATION_ERROR_CASES {
            let message = match parse_nanos(case.input) {
                Ok(nanos) => panic!("ParseDuration({:?}) = {nanos}, want an error", case.input),
                Err(e) => e.to_string(),
            };
            assert!(
                message.contains(case.quoted),
                "ParseDuration({:?}): {message:?} does not contain {:?}",
                case.input,
                case.quoted
            );
            assert_eq!(message, case.message, "ParseDuration({:?})", case.input);
        }
    }

    #[test]
    fn formats_go_s_table_and_its_negations() {
        for case in GO_DURATION_STRING_CASES {
            assert_eq!(
                format_nanos(case.nanos),
                case.text,
                "String({})",
                case.nanos
            );
            if case.nanos > 0 {
                assert_eq!(
                    format_nanos(-case.nanos),
                    format!("-{}", case.text),
                    "String({})",
                    -case.nanos
                );
            }
        }
    }

    #[test]
    fn the_extremes_round_trip() {
        for nanos in [i64::MAX, i64::MIN] {
            assert_eq!(parse_nanos(&format_nanos(nanos)).ok(), Some(nanos));
        }
    }

    #[test]
    fn durations_beyond_go_s_range_saturate() {
        assert_eq!(
            format(Duration::days(200 * 365)),
            format_nanos(200 * 365 * 86_400 * 1_000_000_000)
        );
        assert_eq!(format(Duration::days(400 * 365)), format_nanos(i64::MAX));
        assert_eq!(format(Duration::days(-400 * 365)), format_nanos(i64::MIN));
    }

    proptest! {
        // Go's TestParseDurationRoundTrip: millisecond resolutions round-trip exactly.
        #[test]
        fn millisecond_durations_round_trip(ms in 0i64..=i64::from(i32::MAX)) {
            let nanos = ms * 1_000_000;
            prop_assert_eq!(parse_nanos(&format_nanos(nanos)).ok(), Some(nanos));
        }

        // Integer nanosecond strings are exact in every unit combination Go prints.
        #[test]
        fn printed_durations_parse_back(nanos in any::<i64>()) {
            prop_assert_eq!(parse_nanos(&format_nanos(nanos)).ok(), Some(nanos));
        }

        #[test]
        fn parse_never_panics(input in "[-+0-9.a-zµμ\" ]{0,24}") {
            let _ = parse_nanos(&input);
        }
    }
}
