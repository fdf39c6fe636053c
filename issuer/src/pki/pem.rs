//! PEM framing: finding `-----BEGIN …-----` blocks and base64 in and out.
//!
//! A small, allocation-light implementation (the sign path decodes a CSR and encodes a chain per
//! request). Labels are matched exactly; headers inside a block (RFC 1421 `Proc-Type:` lines)
//! make the block unreadable, which callers report as "encrypted or malformed".

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// One decoded PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    /// The label, e.g. `CERTIFICATE` or `PRIVATE KEY`.
    pub label: String,
    /// The decoded contents.
    pub der: Vec<u8>,
}

/// Why PEM text could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemError {
    /// A BEGIN line without its END line.
    Unterminated {
        /// The label of the unterminated block.
        label: String,
    },
    /// The body of a block is not valid base64.
    BadBase64 {
        /// The label of the block.
        label: String,
    },
}

impl std::fmt::Display for PemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PemError::Unterminated { label } => {
                write!(f, "the {label} block has no -----END {label}----- line")
            }
            PemError::BadBase64 { label } => write!(f, "the {label} block is not valid base64"),
        }
    }
}

const BEGIN: &str = "-----BEGIN ";
const DASHES: &str = "-----";

/// Decodes every PEM block in `text`, in order. Text outside blocks is ignored.
pub fn parse_pem(text: &[u8]) -> Result<Vec<PemBlock>, PemError> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = find(rest, BEGIN.as_bytes()) {
        let after_begin = &rest[start + BEGIN.len()..];
        let Some(label_end) = find(after_begin, DASHES.as_bytes()) else {
            break;
        };
        let label_bytes = &after_begin[..label_end];
        if label_bytes.contains(&b'\n') {
            rest = after_begin;
            continue;
        }
        let label = String::from_utf8_lossy(label_bytes).into_owned();
        let body_start = &after_begin[label_end + DASHES.len()..];
        let end_marker = format!("-----END {label}-----");
        let Some(body_len) = find(body_start, end_marker.as_bytes()) else {
            return Err(PemError::Unterminated { label });
        };
        let compact: Vec<u8> = body_start[..body_len]
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let der = match STANDARD.decode(&compact) {
            Ok(der) => der,
            Err(_) => return Err(PemError::BadBase64 { label }),
        };
        blocks.push(PemBlock { label, der });
        rest = &body_start[body_len + end_marker.len()..];
    }
    Ok(blocks)
}

/// The position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut offset = 0;
    while let Some(pos) = haystack[offset..].iter().position(|b| *b == first) {
        let at = offset + pos;
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
        offset = at + 1;
    }
    None
}

/// Encodes DER as a PEM block with 64-character lines and LF endings.
pub fn encode_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str(BEGIN);
    out.push_str(label);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_several_blocks_and_ignores_text_between() {
        let text = format!(
            "junk\n{}between\n{}",
            encode_pem("CERTIFICATE", b"one"),
            encode_pem("PRIVATE KEY", b"two")
        );
        let blocks = parse_pem(text.as_bytes()).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            blocks[0],
            PemBlock {
                label: "CERTIFICATE".into(),
                der: b"one".to_vec()
            }
        );
        assert_eq!(blocks[1].label, "PRIVATE KEY");
        assert_eq!(blocks[1].der, b"two");
    }

    #[test]
    fn accepts_crlf_and_unwrapped_bodies() {
        let text = "-----BEGIN CERTIFICATE-----\r\naGVs\r\nbG8=\r\n-----END CERTIFICATE-----\r\n";
        assert_eq!(parse_pem(text.as_bytes()).unwrap()[0].der, b"hello");
    }

    #[test]
    fn reports_unterminated_and_bad_base64() {
        assert!(matches!(
            parse_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n"),
            Err(PemError::Unterminated { .. })
        ));
        let bad = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert_eq!(
            parse_pem(bad).unwrap_err().to_string(),
            "the CERTIFICATE block is not valid base64"
        );
        // Mismatched END label.
        assert!(parse_pem(b"-----BEGIN A-----\nAAAA\n-----END B-----\n").is_err());
    }

    #[test]
    fn empty_and_plain_text_have_no_blocks() {
        assert!(parse_pem(b"").unwrap().is_empty());
        assert!(parse_pem(b"hello world").unwrap().is_empty());
    }

    #[test]
    fn lines_are_64_characters() {
        let pem = encode_pem("CERTIFICATE", &[7u8; 100]);
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(line.len() <= 64);
        }
    }

    proptest! {
        #[test]
        fn encode_then_parse_round_trips(der in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let blocks = parse_pem(encode_pem("CERTIFICATE REQUEST", &der).as_bytes()).unwrap();
            prop_assert_eq!(blocks, vec![PemBlock { label: "CERTIFICATE REQUEST".into(), der }]);
        }

        #[test]
        fn parse_never_panics(text in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_pem(&text);
        }
    }
}
