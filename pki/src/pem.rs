//! PEM framing: finding `-----BEGIN …-----` blocks; the base64 inside them is the `base64`
//! crate's (standard alphabet, canonical padding, no stray bits).
//!
//! The framing is ours, for what our error messages say, measured against the two crates at
//! hand (both already in the tree):
//! - `rustls-pki-types`' PEM reader skips sections whose label it does not know
//!   (`ENCRYPTED PRIVATE KEY`, `NEW CERTIFICATE REQUEST`, `EC PARAMETERS`, …), so "this key is
//!   encrypted; decrypt it" would become "no private key found", and it returns no label.
//! - `pem` 3.0 (through rcgen) drops an unterminated last block without an error (its iterator
//!   just stops), fails the whole text on one mismatched END line, and its errors name no block.
//!
//! Here every block is returned with its label, an unterminated block is an error naming it,
//! an END line of another label inside a block is not its end, and only the wanted block is
//! decoded on the sign path. Headers inside a block (RFC 1421 `Proc-Type:` lines) make the
//! block unreadable, which callers report as "encrypted or malformed".

use base64::Engine as _;
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

const BEGIN: &[u8] = b"-----BEGIN ";
const END: &[u8] = b"-----END ";
const DASHES: &[u8] = b"-----";

/// Decodes every PEM block in `text`, in order. Text outside blocks is ignored.
pub fn parse_pem(text: &[u8]) -> Result<Vec<PemBlock>, PemError> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(block) = next_block(rest)? {
        blocks.push(PemBlock {
            label: block.label(),
            der: block.decode()?,
        });
        rest = block.after;
    }
    Ok(blocks)
}

/// Decodes the first block whose label is one of `labels`, skipping (without decoding) the
/// blocks before it; `None` when there is none. This is the sign path's CSR reader.
pub fn first_block_labelled(text: &[u8], labels: &[&str]) -> Result<Option<Vec<u8>>, PemError> {
    let mut rest = text;
    while let Some(block) = next_block(rest)? {
        if labels.iter().any(|l| l.as_bytes() == block.label) {
            return block.decode().map(Some);
        }
        rest = block.after;
    }
    Ok(None)
}

/// A block found in PEM text, not yet decoded.
struct RawBlock<'a> {
    label: &'a [u8],
    body: &'a [u8],
    /// The text after the block's END line.
    after: &'a [u8],
}

impl RawBlock<'_> {
    fn label(&self) -> String {
        String::from_utf8_lossy(self.label).into_owned()
    }

    fn decode(&self) -> Result<Vec<u8>, PemError> {
        decode_base64(self.body).ok_or_else(|| PemError::BadBase64 {
            label: self.label(),
        })
    }
}

/// The next block in `text`, if any.
fn next_block(text: &[u8]) -> Result<Option<RawBlock<'_>>, PemError> {
    let mut rest = text;
    loop {
        let Some(start) = find(rest, BEGIN) else {
            return Ok(None);
        };
        let after_begin = &rest[start + BEGIN.len()..];
        let Some(label_end) = find(after_begin, DASHES) else {
            return Ok(None);
        };
        let label = &after_begin[..label_end];
        if label.contains(&b'\n') {
            rest = after_begin;
            continue;
        }
        let body_start = &after_begin[label_end + DASHES.len()..];
        let mut search = body_start;
        loop {
            let Some(end) = find(search, END) else {
                return Err(PemError::Unterminated {
                    label: String::from_utf8_lossy(label).into_owned(),
                });
            };
            let after_end = &search[end + END.len()..];
            if after_end.starts_with(label) && after_end[label.len()..].starts_with(DASHES) {
                let body_len = body_start.len() - search.len() + end;
                return Ok(Some(RawBlock {
                    label,
                    body: &body_start[..body_len],
                    after: &after_end[label.len() + DASHES.len()..],
                }));
            }
            search = after_end;
        }
    }
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

/// Decodes a block's body: standard base64 with canonical padding, ASCII whitespace anywhere
/// ignored (line breaks, CRLF, indentation); `None` when it is not base64. (Compacting first
/// and decoding once measured cheaper than decoding line by line.)
fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    STANDARD.decode(compact).ok()
}

/// Encodes DER as a PEM block with 64-character lines and LF endings.
pub fn encode_pem(label: &str, der: &[u8]) -> String {
    let body_len = der.len().div_ceil(3) * 4;
    let mut out = String::with_capacity(body_len + body_len / 64 + 2 * label.len() + 32);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    // 48 bytes are one 64-character line.
    for chunk in der.chunks(48) {
        STANDARD.encode_string(chunk, &mut out);
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

    #[test]
    fn decoding_is_canonical_and_strict() {
        assert_eq!(decode_base64(b"aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64(b"aGVs bG8 =\n").unwrap(), b"hello");
        assert_eq!(decode_base64(b"aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64(b"aA==").unwrap(), b"h");
        assert_eq!(decode_base64(b"").unwrap(), b"");
        for bad in [
            &b"aGVsbG8"[..], // missing padding
            b"aGVsbG9=",     // non-zero trailing bits
            b"aB==",         // non-zero trailing bits
            b"a===",         // too much padding
            b"aGk=aGk=",     // data after padding
            b"aGk",          // partial group
            b"aG!k",         // stray character
            b"aA=",          // short padding
        ] {
            assert_eq!(decode_base64(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_first_wanted_block_is_found_past_others_and_false_ends() {
        let text = format!(
            "{}{}",
            encode_pem("CERTIFICATE", b"not this"),
            "-----BEGIN CERTIFICATE REQUEST-----\naGVsbG8=\n-----END CERTIFICATE-----\n-----END CERTIFICATE REQUEST-----\n"
        );
        // The END line of another label inside the body is not this block's end; its text is
        // not base64, so the block is reported as such.
        assert_eq!(
            first_block_labelled(text.as_bytes(), &["CERTIFICATE REQUEST"]),
            Err(PemError::BadBase64 {
                label: "CERTIFICATE REQUEST".into()
            })
        );
        let text = format!(
            "{}{}",
            encode_pem("CERTIFICATE", b"not this"),
            encode_pem("NEW CERTIFICATE REQUEST", b"this")
        );
        assert_eq!(
            first_block_labelled(
                text.as_bytes(),
                &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"]
            ),
            Ok(Some(b"this".to_vec()))
        );
        assert_eq!(first_block_labelled(b"nothing", &["CERTIFICATE"]), Ok(None));
    }

    proptest! {
        /// However the body is wrapped or damaged, decoding it agrees with decoding it without
        /// its whitespace, and a clean body gives back the data.
        #[test]
        fn decoding_any_wrapping_agrees_with_decoding_the_compacted_body(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            breaks in proptest::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![&b"\n"[..], b"\r\n", b" ", b"\t"])), 0..6),
            noise in proptest::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![b'=', b'A', b'*'])), 0..2),
        ) {
            let mut text = STANDARD.encode(&data).into_bytes();
            for (at, gap) in breaks {
                let at = at.index(text.len() + 1);
                text.splice(at..at, gap.iter().copied());
            }
            let clean = noise.is_empty();
            for (at, byte) in noise {
                let at = at.index(text.len() + 1);
                text.insert(at, byte);
            }
            let compact: Vec<u8> = text.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
            let expected = STANDARD.decode(&compact).ok();
            if clean {
                prop_assert_eq!(expected.as_deref(), Some(&data[..]));
            }
            prop_assert_eq!(decode_base64(&text), expected);
        }

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
