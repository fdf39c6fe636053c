//! A minimal DER writer and reader, and the object identifiers the signer emits and reads.
//!
//! Only tag-length-value framing and the DER rules a universal tag fixes (BOOLEAN, INTEGER,
//! SET OF) live here: the writer builds certificates, the strict reader walks CSRs on the sign
//! path (see `csr`). It is hand-written for the sign path's speed (it runs per request; README,
//! "Sign-path performance"); what the elements mean is decided by the callers, and certificates
//! and names are still read with x509-parser elsewhere.
//!
//! Kept (issue 14) on the strength of the `csr_structure` differential fuzzing (requests built
//! and re-signed from the fuzzer's choices, this reader and the sign path checked against
//! x509-parser): its first run found, at 32 minutes, subject values that were not strings
//! (refused since, seed `found-2026-12-05-subject-private-tag`); after that fix, 48 minutes
//! (1,967,865 executions), then 1 h 56 min (2,034,529; ended by a full disk, not a finding) and
//! 40 min (1,116,759) without a divergence: 3 h 24 min and 5.1 million executions in all.

/// DER tag numbers used by the certificate builder.
pub(crate) mod tag {
    pub const BOOLEAN: u8 = 0x01;
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const OID: u8 = 0x06;
    pub const UTC_TIME: u8 = 0x17;
    pub const GENERALIZED_TIME: u8 = 0x18;
    pub const SEQUENCE: u8 = 0x30;
    /// `[0]` constructed, explicit (the certificate version).
    pub const CONTEXT_0_CONSTRUCTED: u8 = 0xa0;
    /// `[3]` constructed, explicit (the certificate extensions).
    pub const CONTEXT_3_CONSTRUCTED: u8 = 0xa3;
    /// `[0]` primitive, implicit (a key identifier inside AuthorityKeyIdentifier).
    pub const CONTEXT_0_PRIMITIVE: u8 = 0x80;
    /// `SET` / `SET OF`.
    pub const SET: u8 = 0x31;
    /// GeneralName `otherName [0]`.
    pub const SAN_OTHER_NAME: u8 = 0xa0;
    /// GeneralName `x400Address [3]`.
    pub const SAN_X400_ADDRESS: u8 = 0xa3;
    /// GeneralName `directoryName [4]` (explicit, so constructed).
    pub const SAN_DIRECTORY_NAME: u8 = 0xa4;
    /// GeneralName `ediPartyName [5]`.
    pub const SAN_EDI_PARTY_NAME: u8 = 0xa5;
    /// GeneralName `registeredID [8]`.
    pub const SAN_REGISTERED_ID: u8 = 0x88;
    /// GeneralName `rfc822Name [1]`.
    pub const SAN_EMAIL: u8 = 0x81;
    /// GeneralName `dNSName [2]`.
    pub const SAN_DNS: u8 = 0x82;
    /// GeneralName `uniformResourceIdentifier [6]`.
    pub const SAN_URI: u8 = 0x86;
    /// GeneralName `iPAddress [7]`.
    pub const SAN_IP: u8 = 0x87;
}

/// Pre-encoded object identifier contents (without the tag and length).
pub(crate) mod oid {
    pub const EXT_SUBJECT_KEY_IDENTIFIER: &[u8] = &[0x55, 0x1d, 0x0e];
    pub const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
    pub const EXT_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
    pub const EXT_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
    pub const EXT_AUTHORITY_KEY_IDENTIFIER: &[u8] = &[0x55, 0x1d, 0x23];
    pub const EXT_EXTENDED_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];

    /// ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
    pub const ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    /// ecdsa-with-SHA384 (1.2.840.10045.4.3.3).
    pub const ECDSA_WITH_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
    /// sha256WithRSAEncryption (1.2.840.113549.1.1.11).
    pub const SHA256_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
    /// Ed25519 (1.3.101.112).
    pub const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
    /// id-ecPublicKey (1.2.840.10045.2.1).
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// extensionRequest (1.2.840.113549.1.9.14), the CSR attribute carrying extensions.
    pub const EXTENSION_REQUEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e];
    /// PKCS#9 challengePassword (1.2.840.113549.1.9.7).
    pub const CHALLENGE_PASSWORD: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x07];
    /// sha384WithRSAEncryption (1.2.840.113549.1.1.12).
    pub const SHA384_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
    /// sha512WithRSAEncryption (1.2.840.113549.1.1.13).
    pub const SHA512_WITH_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
    /// id-RSASSA-PSS (1.2.840.113549.1.1.10).
    pub const RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
    /// SHA-256 (2.16.840.1.101.3.4.2.1).
    pub const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
    /// SHA-384 (2.16.840.1.101.3.4.2.2).
    pub const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
    /// SHA-512 (2.16.840.1.101.3.4.2.3).
    pub const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
    /// prime256v1 / P-256 (1.2.840.10045.3.1.7).
    pub const CURVE_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    /// secp384r1 / P-384 (1.3.132.0.34).
    pub const CURVE_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
}

/// Appends DER elements to a growing buffer.
#[derive(Debug, Default)]
pub(crate) struct DerWriter {
    buf: Vec<u8>,
}

impl DerWriter {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            buf: Vec::with_capacity(capacity),
        }
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Appends bytes that are already DER (a whole element, or several).
    pub(crate) fn raw(&mut self, der: &[u8]) {
        self.buf.extend_from_slice(der);
    }

    /// Appends one element with the given tag and content.
    pub(crate) fn element(&mut self, tag: u8, content: &[u8]) {
        self.buf.push(tag);
        push_length(&mut self.buf, content.len());
        self.buf.extend_from_slice(content);
    }

    /// Appends a constructed element whose content `build` writes.
    pub(crate) fn nested(&mut self, tag: u8, build: impl FnOnce(&mut Self)) {
        self.buf.push(tag);
        // One length byte is reserved; the contents move only when the length needs more.
        let length_at = self.buf.len();
        self.buf.push(0);
        let start = self.buf.len();
        build(self);
        let end = self.buf.len();
        let content_len = end - start;
        let mut length = [0u8; 9];
        let length_len = encode_length(&mut length, content_len);
        if length_len > 1 {
            self.buf.resize(end + length_len - 1, 0);
            self.buf.copy_within(start..end, length_at + length_len);
        }
        self.buf[length_at..length_at + length_len].copy_from_slice(&length[..length_len]);
    }

    pub(crate) fn sequence(&mut self, build: impl FnOnce(&mut Self)) {
        self.nested(tag::SEQUENCE, build);
    }

    pub(crate) fn oid(&mut self, encoded: &[u8]) {
        self.element(tag::OID, encoded);
    }

    pub(crate) fn null(&mut self) {
        self.element(tag::NULL, &[]);
    }

    pub(crate) fn boolean(&mut self, value: bool) {
        self.element(tag::BOOLEAN, &[if value { 0xff } else { 0x00 }]);
    }

    pub(crate) fn octet_string(&mut self, content: &[u8]) {
        self.element(tag::OCTET_STRING, content);
    }

    /// A non-negative INTEGER from big-endian magnitude bytes (leading zeros are trimmed and a
    /// zero byte is added when the top bit is set, as DER requires).
    pub(crate) fn unsigned_integer(&mut self, magnitude: &[u8]) {
        let first_nonzero = magnitude.iter().position(|b| *b != 0);
        let trimmed = match first_nonzero {
            Some(index) => &magnitude[index..],
            None => &[0u8][..],
        };
        self.buf.push(tag::INTEGER);
        let needs_pad = trimmed[0] & 0x80 != 0;
        push_length(&mut self.buf, trimmed.len() + usize::from(needs_pad));
        if needs_pad {
            self.buf.push(0);
        }
        self.buf.extend_from_slice(trimmed);
    }

    pub(crate) fn small_integer(&mut self, value: u8) {
        self.unsigned_integer(&[value]);
    }

    /// A BIT STRING of whole bytes (no unused bits).
    pub(crate) fn bit_string(&mut self, bytes: &[u8]) {
        self.buf.push(tag::BIT_STRING);
        push_length(&mut self.buf, bytes.len() + 1);
        self.buf.push(0);
        self.buf.extend_from_slice(bytes);
    }

    /// A BIT STRING of named bits (bit 0 is the most significant bit of the first byte), with
    /// trailing zero bits removed as DER requires for named-bit lists.
    pub(crate) fn named_bits(&mut self, bits: u16) {
        // `bits`: bit n of the named list is `1 << n`.
        let highest = (0..16).rev().find(|n| bits & (1 << n) != 0);
        let Some(highest) = highest else {
            self.element(tag::BIT_STRING, &[0]);
            return;
        };
        let byte_count = highest / 8 + 1;
        let mut bytes = [0u8; 2];
        for n in 0..=highest {
            if bits & (1 << n) != 0 {
                bytes[n / 8] |= 0x80 >> (n % 8);
            }
        }
        let unused = 7 - (highest % 8);
        let mut content = Vec::with_capacity(1 + byte_count);
        content.push(unused as u8);
        content.extend_from_slice(&bytes[..byte_count]);
        self.element(tag::BIT_STRING, &content);
    }

    /// A certificate validity time: UTCTime for 1950–2049, GeneralizedTime otherwise
    /// (RFC 5280 §4.1.2.5), always in UTC with whole seconds.
    pub(crate) fn time(&mut self, at: time::OffsetDateTime) {
        let at = at.to_offset(time::UtcOffset::UTC);
        let year = at.year();
        let mut text = [0u8; 15];
        let mut len = 0;
        let mut two = |value: u32| {
            text[len] = b'0' + (value / 10 % 10) as u8;
            text[len + 1] = b'0' + (value % 10) as u8;
            len += 2;
        };
        let utc_time = (1950..2050).contains(&year);
        let year = year.unsigned_abs();
        if !utc_time {
            two(year / 100);
        }
        two(year % 100);
        two(u32::from(u8::from(at.month())));
        two(u32::from(at.day()));
        two(u32::from(at.hour()));
        two(u32::from(at.minute()));
        two(u32::from(at.second()));
        text[len] = b'Z';
        let tag = if utc_time {
            tag::UTC_TIME
        } else {
            tag::GENERALIZED_TIME
        };
        self.element(tag, &text[..=len]);
    }
}

/// One DER element read by [`DerReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Element<'a> {
    /// The identifier octet (class, constructed bit and tag number).
    pub tag: u8,
    /// The contents, without tag and length.
    pub content: &'a [u8],
    /// The whole element: tag, length and contents.
    pub raw: &'a [u8],
}

impl<'a> Element<'a> {
    /// A reader over this element's contents (for constructed elements).
    pub(crate) fn reader(&self) -> DerReader<'a> {
        DerReader::new(self.content)
    }

    /// An AlgorithmIdentifier's OID contents and its parameters element, if any; `what` names
    /// it in errors (`the signature algorithm`).
    pub(crate) fn algorithm_identifier(
        &self,
        what: &'static str,
    ) -> Result<(&'a [u8], Option<Element<'a>>), DerError> {
        let mut fields = self.reader();
        let oid = fields.expect(tag::OID, what)?;
        let parameters = if fields.is_empty() {
            None
        } else {
            Some(fields.any(what)?)
        };
        fields.finish(what)?;
        Ok((oid.content, parameters))
    }

    /// Checks that this element, a SET OF under an implicit tag, has its elements in DER order
    /// (X.690 §11.6); a universal SET is checked when it is read.
    pub(crate) fn check_set_of(&self, what: &'static str) -> Result<(), DerError> {
        check_set_of_order(self.content, what)
    }

    /// The contents of a BIT STRING with no unused bits (keys and signatures).
    pub(crate) fn whole_bytes(&self, what: &'static str) -> Result<&'a [u8], DerError> {
        match self.content.split_first() {
            Some((0, bytes)) => Ok(bytes),
            Some(_) => Err(DerError::new(what, "has unused bits")),
            None => Err(DerError::new(what, "is empty")),
        }
    }
}

/// Why DER could not be read: which part, and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DerError {
    /// The part being read, e.g. `the subject`.
    pub what: &'static str,
    /// What was wrong, e.g. `is truncated`.
    pub problem: String,
}

impl DerError {
    pub(crate) fn new(what: &'static str, problem: impl Into<String>) -> Self {
        Self {
            what,
            problem: problem.into(),
        }
    }
}

impl std::fmt::Display for DerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.what, self.problem)
    }
}

/// Reads DER elements one after another from a byte slice.
///
/// Strict DER (X.690 §10–11): definite and minimal lengths, one-byte tags (every tag X.509 and
/// PKCS#10 use), no reading past the end, and for the universal types whose DER form is fixed by
/// their tag: a BOOLEAN is one byte, 0x00 or 0xff (§11.1); an INTEGER is minimal (§8.3.2); a
/// SET's elements are in ascending order of their encodings (§11.6; every SET in X.509 and
/// PKCS#10 is a SET OF). A SET OF under an implicit tag (the CSR's `[0]` attributes) is checked
/// by the caller with [`Element::check_set_of`]. What the contents mean is for the callers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DerReader<'a> {
    rest: &'a [u8],
}

impl<'a> DerReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The tag of the next element, if any.
    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads the next element, whatever its tag; `what` names it in errors.
    pub(crate) fn any(&mut self, what: &'static str) -> Result<Element<'a>, DerError> {
        let (element, rest) = frame(self.rest, what)?;
        check_canonical(&element, what)?;
        self.rest = rest;
        Ok(element)
    }

    /// Reads the next element, which must have `tag`.
    pub(crate) fn expect(&mut self, tag: u8, what: &'static str) -> Result<Element<'a>, DerError> {
        match self.peek_tag() {
            Some(found) if found == tag => self.any(what),
            Some(found) => Err(DerError::new(
                what,
                format!("has tag 0x{found:02x} where 0x{tag:02x} was expected"),
            )),
            None => Err(DerError::new(what, "is missing")),
        }
    }

    /// Reads the next element when it has `tag`, else leaves the reader as it was.
    pub(crate) fn optional(
        &mut self,
        tag: u8,
        what: &'static str,
    ) -> Result<Option<Element<'a>>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.any(what).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fails when anything is left; `what` names the enclosing element.
    pub(crate) fn finish(&self, what: &'static str) -> Result<(), DerError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DerError::new(
                what,
                format!("has {} unexpected trailing bytes", self.rest.len()),
            ))
        }
    }
}

/// Splits the first tag-length-value element off `data`: the element and what follows it.
/// Checks the framing only (tag form, definite minimal length, no reading past the end).
fn frame<'a>(data: &'a [u8], what: &'static str) -> Result<(Element<'a>, &'a [u8]), DerError> {
    let (&tag, after_tag) = data
        .split_first()
        .ok_or_else(|| DerError::new(what, "is missing"))?;
    if tag & 0x1f == 0x1f {
        return Err(DerError::new(what, "uses a multi-byte tag"));
    }
    let (&first, after_first) = after_tag
        .split_first()
        .ok_or_else(|| DerError::new(what, "is truncated (no length)"))?;
    let (length, after_length) = if first < 0x80 {
        (usize::from(first), after_first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 {
            return Err(DerError::new(
                what,
                "has an indefinite length (BER, not DER)",
            ));
        }
        if count > 4 {
            return Err(DerError::new(what, "has a length that does not fit"));
        }
        let bytes = after_first
            .get(..count)
            .ok_or_else(|| DerError::new(what, "is truncated (in its length)"))?;
        if bytes[0] == 0 {
            return Err(DerError::new(what, "has a non-minimal length (not DER)"));
        }
        let length = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        if length < 0x80 {
            return Err(DerError::new(what, "has a non-minimal length (not DER)"));
        }
        (length, &after_first[count..])
    };
    let content = after_length
        .get(..length)
        .ok_or_else(|| DerError::new(what, "is truncated"))?;
    let header = data.len() - after_length.len();
    let element = Element {
        tag,
        content,
        raw: &data[..header + length],
    };
    Ok((element, &after_length[length..]))
}

/// The DER rules fixed by a universal tag: BOOLEAN (X.690 §11.1), INTEGER (§8.3.2) and SET OF
/// (§11.6). Other tags pass; their callers judge their contents.
fn check_canonical(element: &Element<'_>, what: &'static str) -> Result<(), DerError> {
    match element.tag {
        tag::BOOLEAN => match element.content {
            [0x00] | [0xff] => Ok(()),
            [other] => Err(DerError::new(
                what,
                format!(
                    "is a BOOLEAN encoded as 0x{other:02x}; DER allows only 0x00 (FALSE) and 0xff (TRUE) (X.690 11.1)"
                ),
            )),
            bytes => Err(DerError::new(
                what,
                format!(
                    "is a BOOLEAN of {} bytes; DER needs exactly one (X.690 8.2.1)",
                    bytes.len()
                ),
            )),
        },
        tag::INTEGER => match element.content {
            [] => Err(DerError::new(
                what,
                "is an empty INTEGER; it needs at least one byte (X.690 8.3.1)",
            )),
            [0x00, next, ..] if next & 0x80 == 0 => Err(DerError::new(
                what,
                "is an INTEGER with a redundant leading 0x00 byte; DER needs the minimal encoding (X.690 8.3.2)",
            )),
            [0xff, next, ..] if next & 0x80 != 0 => Err(DerError::new(
                what,
                "is an INTEGER with a redundant leading 0xff byte; DER needs the minimal encoding (X.690 8.3.2)",
            )),
            _ => Ok(()),
        },
        tag::SET => check_set_of_order(element.content, what),
        _ => Ok(()),
    }
}

/// Checks that the elements of a SET OF's contents are in ascending order of their encodings
/// (X.690 §11.6). Whole encodings are compared as byte strings: two complete DER elements are
/// never a proper prefix of one another, so plain lexicographic order is §11.6's order.
fn check_set_of_order(content: &[u8], what: &'static str) -> Result<(), DerError> {
    let mut rest = content;
    let mut previous: Option<&[u8]> = None;
    while !rest.is_empty() {
        let (element, after) = frame(rest, what)?;
        if previous.is_some_and(|p| p > element.raw) {
            return Err(DerError::new(
                what,
                "is a SET OF whose elements are not in ascending order; DER sorts them by their encodings (X.690 11.6)",
            ));
        }
        previous = Some(element.raw);
        rest = after;
    }
    Ok(())
}

/// An object identifier's DER contents in dotted text (`1.2.840.10045.2.1`), for messages.
pub(crate) fn oid_text(content: &[u8]) -> String {
    let mut arcs: Vec<u128> = Vec::new();
    let mut value: u128 = 0;
    for (i, byte) in content.iter().enumerate() {
        value = (value << 7) | u128::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        } else if i + 1 == content.len() || value > u128::MAX >> 7 {
            return format!("(malformed OID {})", hex(content));
        }
    }
    if arcs.is_empty() {
        return "(empty OID)".into();
    }
    arcs.iter()
        .map(u128::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn push_length(out: &mut Vec<u8>, len: usize) {
    let mut length = [0u8; 9];
    let length_len = encode_length(&mut length, len);
    out.extend_from_slice(&length[..length_len]);
}

/// Writes a DER length into `out`, returning how many bytes it took.
fn encode_length(out: &mut [u8; 9], len: usize) -> usize {
    if len < 0x80 {
        out[0] = len as u8;
        return 1;
    }
    let bytes = len.to_be_bytes();
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    let significant = &bytes[first..];
    out[0] = 0x80 | significant.len() as u8;
    out[1..=significant.len()].copy_from_slice(significant);
    1 + significant.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn written(build: impl FnOnce(&mut DerWriter)) -> Vec<u8> {
        let mut w = DerWriter::default();
        build(&mut w);
        w.into_bytes()
    }

    #[test]
    fn short_and_long_lengths() {
        assert_eq!(written(|w| w.octet_string(&[1, 2])), vec![0x04, 0x02, 1, 2]);
        let long = vec![7u8; 200];
        let out = written(|w| w.octet_string(&long));
        assert_eq!(&out[..3], &[0x04, 0x81, 200]);
        let longer = vec![7u8; 300];
        let out = written(|w| w.octet_string(&longer));
        assert_eq!(&out[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn nested_fixes_up_long_length() {
        let out = written(|w| w.sequence(|w| w.octet_string(&[0u8; 130])));
        assert_eq!(&out[..3], &[0x30, 0x81, 133]);
        assert_eq!(out.len(), 3 + 133);
    }

    #[test]
    fn integers_are_minimal_and_positive() {
        assert_eq!(written(|w| w.unsigned_integer(&[0, 0, 5])), vec![2, 1, 5]);
        assert_eq!(
            written(|w| w.unsigned_integer(&[0x80])),
            vec![2, 2, 0, 0x80]
        );
        assert_eq!(written(|w| w.unsigned_integer(&[0, 0])), vec![2, 1, 0]);
        assert_eq!(written(|w| w.small_integer(2)), vec![2, 1, 2]);
    }

    #[test]
    fn named_bits_trim_trailing_zeros() {
        // digitalSignature (bit 0) only: 0x80 with 7 unused bits.
        assert_eq!(written(|w| w.named_bits(1)), vec![3, 2, 7, 0x80]);
        // digitalSignature + keyEncipherment (bits 0, 2): 0xa0, 5 unused.
        assert_eq!(written(|w| w.named_bits(0b101)), vec![3, 2, 5, 0xa0]);
        // keyCertSign + cRLSign (bits 5, 6): 0x06, 1 unused.
        assert_eq!(written(|w| w.named_bits(0b110_0000)), vec![3, 2, 1, 0x06]);
        // decipherOnly (bit 8) needs a second byte.
        assert_eq!(written(|w| w.named_bits(1 << 8)), vec![3, 3, 7, 0, 0x80]);
        assert_eq!(written(|w| w.named_bits(0)), vec![3, 1, 0]);
    }

    #[test]
    fn times_switch_to_generalized_after_2049() {
        let utc = written(|w| w.time(datetime!(2026-11-28 03:04:05 UTC)));
        assert_eq!(utc[0], tag::UTC_TIME);
        assert_eq!(&utc[2..], b"261128030405Z");
        let gen_time = written(|w| w.time(datetime!(2050-01-01 00:00:00 UTC)));
        assert_eq!(gen_time[0], tag::GENERALIZED_TIME);
        assert_eq!(&gen_time[2..], b"20500101000000Z");
        let before = written(|w| w.time(datetime!(1949-12-31 23:59:59 UTC)));
        assert_eq!(before[0], tag::GENERALIZED_TIME);
    }

    #[test]
    fn booleans_and_null() {
        assert_eq!(written(|w| w.boolean(true)), vec![1, 1, 0xff]);
        assert_eq!(written(|w| w.null()), vec![5, 0]);
        assert_eq!(written(|w| w.bit_string(&[9])), vec![3, 2, 0, 9]);
    }

    #[test]
    fn reader_reads_what_the_writer_wrote() {
        let der = written(|w| {
            w.sequence(|w| {
                w.small_integer(0);
                w.octet_string(&[9u8; 300]);
            });
            w.null();
        });
        let mut top = DerReader::new(&der);
        let seq = top.expect(tag::SEQUENCE, "seq").unwrap();
        assert_eq!(seq.raw.len(), der.len() - 2);
        let mut inner = seq.reader();
        assert_eq!(inner.expect(tag::INTEGER, "int").unwrap().content, [0]);
        assert_eq!(inner.any("octets").unwrap().content, [9u8; 300]);
        inner.finish("seq").unwrap();
        assert!(top.optional(tag::BOOLEAN, "bool").unwrap().is_none());
        assert_eq!(top.expect(tag::NULL, "null").unwrap().raw, [5, 0]);
        assert!(top.is_empty());
    }

    #[test]
    fn reader_refuses_ber_and_truncation_naming_the_part() {
        let err = |bytes: &[u8]| {
            DerReader::new(bytes)
                .any("the thing")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(err(&[]), "the thing is missing");
        assert_eq!(err(&[0x30]), "the thing is truncated (no length)");
        assert_eq!(
            err(&[0x30, 0x80]),
            "the thing has an indefinite length (BER, not DER)"
        );
        assert_eq!(
            err(&[0x30, 0x81, 0x05]),
            "the thing has a non-minimal length (not DER)"
        );
        assert_eq!(
            err(&[0x30, 0x82, 0x00, 0x90]),
            "the thing has a non-minimal length (not DER)"
        );
        assert_eq!(
            err(&[0x30, 0x85, 1, 1, 1, 1, 1]),
            "the thing has a length that does not fit"
        );
        assert_eq!(
            err(&[0x30, 0x82, 0x01]),
            "the thing is truncated (in its length)"
        );
        assert_eq!(err(&[0x30, 0x03, 0x01]), "the thing is truncated");
        assert_eq!(err(&[0x1f, 0x01, 0x00]), "the thing uses a multi-byte tag");
        let mut reader = DerReader::new(&[0x05, 0x00, 0x05, 0x00]);
        reader.any("first").unwrap();
        assert_eq!(
            reader.finish("the list").unwrap_err().to_string(),
            "the list has 2 unexpected trailing bytes"
        );
        assert_eq!(
            DerReader::new(&[0x04, 0x00])
                .expect(tag::SEQUENCE, "the subject")
                .unwrap_err()
                .to_string(),
            "the subject has tag 0x04 where 0x30 was expected"
        );
    }

    #[test]
    fn booleans_are_refused_unless_0x00_or_0xff() {
        let read = |bytes: &[u8]| {
            DerReader::new(bytes)
                .any("the flag")
                .map(|e| e.content.to_vec())
        };
        assert_eq!(read(&[0x01, 0x01, 0x00]).unwrap(), [0x00]);
        assert_eq!(read(&[0x01, 0x01, 0xff]).unwrap(), [0xff]);
        for byte in [0x01, 0x7f, 0x80, 0xfe] {
            assert_eq!(
                read(&[0x01, 0x01, byte]).unwrap_err().to_string(),
                format!(
                    "the flag is a BOOLEAN encoded as 0x{byte:02x}; DER allows only 0x00 (FALSE) and 0xff (TRUE) (X.690 11.1)"
                )
            );
        }
        assert_eq!(
            read(&[0x01, 0x00]).unwrap_err().to_string(),
            "the flag is a BOOLEAN of 0 bytes; DER needs exactly one (X.690 8.2.1)"
        );
        assert_eq!(
            read(&[0x01, 0x02, 0xff, 0xff]).unwrap_err().to_string(),
            "the flag is a BOOLEAN of 2 bytes; DER needs exactly one (X.690 8.2.1)"
        );
        // A context tag is not a BOOLEAN, whatever its contents: its schema decides.
        assert_eq!(
            DerReader::new(&[0x81, 0x01, 0x01])
                .any("x")
                .unwrap()
                .content,
            [1]
        );
    }

    #[test]
    fn integers_are_refused_unless_minimal() {
        let read = |bytes: &[u8]| {
            DerReader::new(bytes)
                .any("the number")
                .map(|e| e.content.to_vec())
        };
        for minimal in [
            &[0x02, 0x01, 0x00][..],
            &[0x02, 0x01, 0x7f],
            &[0x02, 0x01, 0xff],
            &[0x02, 0x02, 0x00, 0x80],
            &[0x02, 0x02, 0xff, 0x7f],
            &[0x02, 0x03, 0x01, 0x00, 0x00],
        ] {
            assert_eq!(read(minimal).unwrap(), &minimal[2..]);
        }
        assert_eq!(
            read(&[0x02, 0x02, 0x00, 0x7f]).unwrap_err().to_string(),
            "the number is an INTEGER with a redundant leading 0x00 byte; DER needs the minimal encoding (X.690 8.3.2)"
        );
        assert_eq!(
            read(&[0x02, 0x02, 0x00, 0x00]).unwrap_err().to_string(),
            "the number is an INTEGER with a redundant leading 0x00 byte; DER needs the minimal encoding (X.690 8.3.2)"
        );
        assert_eq!(
            read(&[0x02, 0x02, 0xff, 0x80]).unwrap_err().to_string(),
            "the number is an INTEGER with a redundant leading 0xff byte; DER needs the minimal encoding (X.690 8.3.2)"
        );
        assert_eq!(
            read(&[0x02, 0x00]).unwrap_err().to_string(),
            "the number is an empty INTEGER; it needs at least one byte (X.690 8.3.1)"
        );
    }

    #[test]
    fn sets_of_are_refused_unless_sorted() {
        let read = |bytes: &[u8]| {
            DerReader::new(bytes)
                .any("the set")
                .map(|e| e.content.len())
        };
        // 04 01 02 < 04 02 01 01 (the second byte decides), equal elements may repeat.
        assert!(read(&[0x31, 0x07, 0x04, 0x01, 0x02, 0x04, 0x02, 0x01, 0x01]).is_ok());
        assert!(read(&[0x31, 0x06, 0x04, 0x01, 0x02, 0x04, 0x01, 0x02]).is_ok());
        assert!(read(&[0x31, 0x00]).is_ok());
        let unsorted = [0x31, 0x07, 0x04, 0x02, 0x01, 0x01, 0x04, 0x01, 0x02];
        assert_eq!(
            read(&unsorted).unwrap_err().to_string(),
            "the set is a SET OF whose elements are not in ascending order; DER sorts them by their encodings (X.690 11.6)"
        );
        // Contents that do not frame are refused while the order is checked, naming the set.
        assert_eq!(
            read(&[0x31, 0x03, 0x04, 0x05, 0x00])
                .unwrap_err()
                .to_string(),
            "the set is truncated"
        );
        // Under an implicit tag the reader cannot know it is a SET OF; the caller checks.
        let mut implicit = unsorted;
        implicit[0] = 0xa0;
        let element = DerReader::new(&implicit).any("the attributes").unwrap();
        assert_eq!(
            element
                .check_set_of("the attributes")
                .unwrap_err()
                .to_string(),
            "the attributes is a SET OF whose elements are not in ascending order; DER sorts them by their encodings (X.690 11.6)"
        );
        // Inside a SEQUENCE the SET is checked when it is read, not when the SEQUENCE is.
        let mut nested = vec![0x30, 0x09];
        nested.extend_from_slice(&unsorted);
        let sequence = DerReader::new(&nested).any("the name").unwrap();
        assert!(sequence.reader().any("a component").is_err());
    }

    #[test]
    fn bit_strings_with_unused_bits_are_not_whole_bytes() {
        let der = [0x03, 0x02, 0x01, 0xfe];
        let element = DerReader::new(&der).any("key").unwrap();
        assert_eq!(
            element.whole_bytes("the key").unwrap_err().to_string(),
            "the key has unused bits"
        );
        let der = [0x03, 0x02, 0x00, 0xfe];
        let element = DerReader::new(&der).any("key").unwrap();
        assert_eq!(element.whole_bytes("the key").unwrap(), [0xfe]);
    }

    #[test]
    fn oids_render_dotted() {
        assert_eq!(oid_text(oid::EC_PUBLIC_KEY), "1.2.840.10045.2.1");
        assert_eq!(oid_text(&[0x55, 0x1d, 0x25, 0x00]), "2.5.29.37.0");
        assert_eq!(oid_text(oid::SHA256), "2.16.840.1.101.3.4.2.1");
        // 2.999.3: the first arc pair 2.999 is 1079 = 0x88 0x37.
        assert_eq!(oid_text(&[0x88, 0x37, 0x03]), "2.999.3");
        assert_eq!(oid_text(&[]), "(empty OID)");
        assert_eq!(oid_text(&[0x2a, 0x86]), "(malformed OID 2a86)");
    }

    proptest::proptest! {
        /// Framing of any length (BOOLEAN and INTEGER, whose contents the reader judges, are
        /// left to their own tests).
        #[test]
        fn any_length_round_trips(len in 0usize..70_000, tag in 3u8..0x1f) {
            let content = vec![0xa5u8; len];
            let der = written(|w| w.element(tag, &content));
            let mut reader = DerReader::new(&der);
            let element = reader.any("element").unwrap();
            proptest::prop_assert_eq!(element.tag, tag);
            proptest::prop_assert_eq!(element.content.len(), len);
            proptest::prop_assert_eq!(element.raw, &der[..]);
            proptest::prop_assert!(reader.is_empty());
        }

        /// A SET OF is accepted exactly when its elements are in ascending order of their
        /// encodings (std's sort is the judge).
        #[test]
        fn sets_of_are_accepted_exactly_when_sorted(
            items in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3), 0..5),
        ) {
            let encodings: Vec<Vec<u8>> = items.iter().map(|c| written(|w| w.octet_string(c))).collect();
            let mut sorted = encodings.clone();
            sorted.sort();
            let der = written(|w| w.nested(tag::SET, |w| encodings.iter().for_each(|e| w.raw(e))));
            let accepted = DerReader::new(&der).any("the set").is_ok();
            proptest::prop_assert_eq!(accepted, sorted == encodings);
        }

        #[test]
        fn reading_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let mut reader = DerReader::new(&bytes);
            while let Ok(element) = reader.any("element") {
                let _ = element.reader().any("inner");
            }
        }
    }
}
