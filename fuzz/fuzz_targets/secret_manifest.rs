//! Fuzzes Secret manifest parsing (YAML and JSON) used by `sign --signing-secret` and `inspect`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relay_issuer::cli::secret_manifest::parse_secret_manifest;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = parse_secret_manifest(data, Path::new("fuzz.yaml"));
});
