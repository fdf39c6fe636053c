//! Durations in Go / cert-manager syntax (`8760h`, `90m`, `1h30m`, `1.5h`, `300ms`).
//!
//! cert-manager's `spec.duration` and `spec.renewBefore` are Go `time.Duration` strings; the CLI
//! flags and the controller accept exactly that syntax. Formatting follows Go's
//! `Duration.String()` (`2160h0m0s`) so our messages read like cert-manager's.

use crate::Error;
use time::Duration;

/// The largest duration Go can represent (about 292 years), in nanoseconds.
const MAX_NANOS: i128 = i64::MAX as i128;

/// Parses a Go duration string such as `8760h`, `1h30m` or `-1.5s`.
///
/// Values are Go's: the same range (down to `-9223372036854775808ns`, up to one nanosecond
/// less) and the same rounding of fractions ([`go_fraction`]). One difference on purpose:
/// surrounding whitespace is ignored (CLI flags), where Go refuses it.
pub fn parse_duration(input: &str) -> Result<Duration, Error> {
    let invalid = |detail: &str| Error::DurationSyntax {
        input: input.to_string(),
        detail: detail.to_string(),
    };
    let mut rest = input.trim();
    if rest.is_empty() {
        return Err(invalid("the value is empty"));
    }
    let mut negative = false;
    if let Some(stripped) = rest.strip_prefix('-') {
        negative = true;
        rest = stripped;
    } else if let Some(stripped) = rest.strip_prefix('+') {
        rest = stripped;
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid("a number must follow the sign"));
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after_int) = rest.split_at(int_len);
        let (frac_part, after_frac) = match after_int.strip_prefix('.') {
            Some(after_dot) => {
                let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
                after_dot.split_at(frac_len)
            }
            None => ("", after_int),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(invalid("expected a number before each unit"));
        }
        let unit_len = after_frac
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after_frac.len(), |(i, _)| i);
        let (unit, after_unit) = after_frac.split_at(unit_len);
        let unit_nanos: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "" => {
                return Err(invalid(
                    "missing unit; use h, m, s, ms, us or ns (e.g. 8760h)",
                ));
            }
            _ => {
                return Err(invalid(&format!(
                    "unknown unit {unit:?}; use h, m, s, ms, us or ns"
                )));
            }
        };
        let whole: i128 = if int_part.is_empty() {
            0
        } else {
            int_part
                .parse::<i128>()
                .map_err(|_| invalid("the number is too large"))?
        };
        let mut value = whole
            .checked_mul(unit_nanos)
            .ok_or_else(|| invalid("the value is too large"))?;
        value += go_fraction(frac_part, unit_nanos);
        total = total
            .checked_add(value)
            .ok_or_else(|| invalid("the value is too large"))?;
        // One more than the largest positive value: the most negative one.
        if total > MAX_NANOS + 1 {
            return Err(invalid("the value is larger than about 292 years"));
        }
        rest = after_unit;
    }
    let nanos = if negative { -total } else { total };
    let nanos =
        i64::try_from(nanos).map_err(|_| invalid("the value is larger than about 292 years"))?;
    Ok(Duration::nanoseconds(nanos))
}

/// The nanoseconds that the fraction digits `digits` of a unit add, rounded as Go rounds them:
/// only the leading digits that fit in 63 bits count, the fraction is scaled in float64 and
/// truncated (so `0.3333333333333333333h` is exactly 20 minutes, and a 30-digit fraction
/// cannot overflow).
fn go_fraction(digits: &str, unit_nanos: i128) -> i128 {
    let mut fraction: u64 = 0;
    let mut scale = 1.0f64;
    for digit in digits.bytes() {
        if fraction > i64::MAX as u64 / 10 {
            break;
        }
        let next = fraction * 10 + u64::from(digit - b'0');
        if next > 1 << 63 {
            break;
        }
        fraction = next;
        scale *= 10.0;
    }
    if fraction == 0 {
        return 0;
    }
    (fraction as f64 * (unit_nanos as f64 / scale)) as i128
}

/// Formats a duration as Go's `Duration.String()` does: `2160h0m0s`, `1.5s`, `300ms`, `0s`.
pub fn format_duration(duration: Duration) -> String {
    let total = duration.whole_nanoseconds();
    if total == 0 {
        return "0s".to_string();
    }
    let sign = if total < 0 { "-" } else { "" };
    let nanos = total.unsigned_abs();
    if nanos < 1_000_000_000 {
        let (unit, scale) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", fixed_point(nanos, scale));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = (nanos / 60_000_000_000) % 60;
    let seconds_nanos = nanos % 60_000_000_000;
    let seconds = fixed_point(seconds_nanos, 1_000_000_000);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{seconds}s")
    } else {
        format!("{sign}{seconds}s")
    }
}

/// `value / scale` with the fraction written without trailing zeros.
fn fixed_point(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_cert_manager_durations() {
        assert_eq!(parse_duration("8760h").unwrap(), Duration::hours(8760));
        assert_eq!(parse_duration("2160h").unwrap(), Duration::days(90));
        assert_eq!(parse_duration("90m").unwrap(), Duration::minutes(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::minutes(90));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::minutes(90));
        assert_eq!(
            parse_duration("300ms").unwrap(),
            Duration::milliseconds(300)
        );
        assert_eq!(parse_duration("2us").unwrap(), Duration::microseconds(2));
        assert_eq!(parse_duration("2µs").unwrap(), Duration::microseconds(2));
        assert_eq!(parse_duration("7ns").unwrap(), Duration::nanoseconds(7));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("-1m").unwrap(), Duration::minutes(-1));
        assert_eq!(parse_duration(".5s").unwrap(), Duration::milliseconds(500));
        assert_eq!(parse_duration("1h1m1s").unwrap(), Duration::seconds(3661));
        assert_eq!(
            parse_duration("-9223372036854775808ns").unwrap(),
            Duration::nanoseconds(i64::MIN)
        );
        assert!(parse_duration("9223372036854775808ns").is_err());
    }

    #[test]
    fn fractions_round_as_go_rounds_them() {
        assert_eq!(
            parse_duration("0.3333333333333333333h").unwrap(),
            Duration::minutes(20)
        );
        assert_eq!(
            parse_duration("1.9999999999999999999999ns").unwrap(),
            Duration::nanoseconds(2)
        );
        // Long fractions used to overflow the multiplication.
        assert_eq!(
            parse_duration(".100000000000000000000000000h").unwrap(),
            Duration::minutes(6)
        );
    }

    #[test]
    fn rejects_malformed_durations_with_a_reason() {
        for bad in [
            "",
            "h",
            "10",
            "10d",
            "1y",
            "abc",
            "1h30",
            "-",
            "1..5h",
            "1e3s",
            "9999999999999h",
        ] {
            let err = parse_duration(bad).unwrap_err();
            let message = err.to_string();
            assert!(message.contains("duration"), "{bad}: {message}");
        }
        assert!(
            parse_duration("10d")
                .unwrap_err()
                .to_string()
                .contains("unknown unit \"d\"")
        );
        assert!(
            parse_duration("10")
                .unwrap_err()
                .to_string()
                .contains("missing unit")
        );
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_duration(Duration::hours(2160)), "2160h0m0s");
        assert_eq!(format_duration(Duration::minutes(90)), "1h30m0s");
        assert_eq!(format_duration(Duration::seconds(61)), "1m1s");
        assert_eq!(format_duration(Duration::milliseconds(1500)), "1.5s");
        assert_eq!(format_duration(Duration::milliseconds(300)), "300ms");
        assert_eq!(format_duration(Duration::microseconds(2)), "2µs");
        assert_eq!(format_duration(Duration::nanoseconds(7)), "7ns");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::seconds(-5)), "-5s");
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(nanos in -(i64::MAX / 2)..(i64::MAX / 2)) {
            let d = Duration::nanoseconds(nanos);
            prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }

        #[test]
        fn parse_never_panics(input in "\\PC{0,24}") {
            let _ = parse_duration(&input);
        }
    }
}
