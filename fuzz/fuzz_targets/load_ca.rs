//! Fuzzes CA loading: arbitrary bytes split into tls.crt / tls.key / ca.crt, as PEM text and as
//! DER framed in PEM. It must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay_issuer::pki::SigningCa;
use relay_issuer::pki::pem::encode_pem;
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let now = OffsetDateTime::now_utc();
    let third = data.len() / 3;
    let (crt, rest) = data.split_at(third);
    let (key, ca) = rest.split_at(third);
    let _ = SigningCa::load(crt, key, Some(ca), now);
    let crt_pem = encode_pem("CERTIFICATE", crt);
    let key_pem = encode_pem(if data.first().is_some_and(|b| b & 1 == 1) { "EC PRIVATE KEY" } else { "PRIVATE KEY" }, key);
    let ca_pem = encode_pem("CERTIFICATE", ca);
    let _ = SigningCa::load(crt_pem.as_bytes(), key_pem.as_bytes(), Some(ca_pem.as_bytes()), now);
    let _ = relay_issuer::pki::inspect::inspect(crt_pem.as_bytes(), Some(key_pem.as_bytes()), relay_issuer::pki::inspect::RenewalRule::CertManagerDefault, now);
});
