//! Fuzzes the whole sign path: arbitrary bytes as a PEM CSR, as a DER CSR wrapped in PEM, and as
//! usage names, signed by a fixed P-256 CA. It must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay_issuer::pki::generate::{PkiSpec, generate_pki};
use relay_issuer::pki::pem::encode_pem;
use relay_issuer::pki::{SignRequest, SigningCa, SigningPolicy, sign};
use std::sync::OnceLock;
use time::{Duration, OffsetDateTime};

fn ca() -> &'static SigningCa {
    static CA: OnceLock<SigningCa> = OnceLock::new();
    CA.get_or_init(|| {
        let now = OffsetDateTime::now_utc();
        let spec = PkiSpec::default();
        let pki = generate_pki(&spec, now).expect("generate a CA");
        SigningCa::load(pki.intermediate.cert_pem.as_bytes(), pki.intermediate.key_pem.as_bytes(), Some(pki.root.cert_pem.as_bytes()), now)
            .expect("load the CA")
    })
}

fuzz_target!(|data: &[u8]| {
    let ca = ca();
    let now = OffsetDateTime::now_utc();
    let (flags, rest) = data.split_first().map_or((0u8, data), |(f, r)| (*f, r));
    let usages: Vec<String> = match flags & 3 {
        0 => Vec::new(),
        1 => vec!["client auth".into(), "digital signature".into()],
        2 => String::from_utf8_lossy(rest).split(',').map(str::to_string).take(4).collect(),
        _ => vec!["server auth".into()],
    };
    let policy = SigningPolicy { allow_ca: flags & 4 != 0, clamp_to_ca: flags & 8 == 0, ..SigningPolicy::default() };
    let duration = Some(Duration::seconds(i64::from(flags) * 3600 - 1800));
    // As given (PEM text or garbage) …
    let _ = sign(ca, &SignRequest { csr_pem: rest, duration, is_ca: flags & 16 != 0, usages: &usages }, &policy, now);
    // … and as DER inside a well-formed PEM frame, so the DER parser sees the bytes.
    let framed = encode_pem("CERTIFICATE REQUEST", rest);
    let _ = sign(ca, &SignRequest { csr_pem: framed.as_bytes(), duration, is_ca: flags & 16 != 0, usages: &usages }, &policy, now);
});
