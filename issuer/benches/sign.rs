//! The whole sign path for P-256: PEM CSR in → parse, verify, build, sign → PEM chain out.
//!
//! `make bench-sign` runs this pinned to one core and prints certificates per second beside
//! `openssl speed ecdsap256` measured in the same run.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use relay_issuer::pki::generate::{
    GeneratedKeyType, PkiSpec, generate_key, generate_pki, make_csr,
};
use relay_issuer::pki::{SignRequest, SigningCa, SigningPolicy, sign};
use std::hint::black_box;
use time::{Duration, OffsetDateTime};

fn bench_sign(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let pki = generate_pki(
        &PkiSpec {
            trust_domain: "relay.local".into(),
            key_type: GeneratedKeyType::P256,
            root_ttl: Duration::days(3650),
            intermediate_ttl: Duration::days(1825),
            server_names: Vec::new(),
            server_ttl: Duration::days(365),
        },
        now,
    )
    .expect("generate the CA");
    let ca = SigningCa::load(
        pki.intermediate.cert_pem.as_bytes(),
        pki.intermediate.key_pem.as_bytes(),
        Some(pki.root.cert_pem.as_bytes()),
        now,
    )
    .expect("load the CA");
    // Distinct CSRs, shaped like an agent's: CN and a SPIFFE URI SAN.
    let csrs: Vec<String> = (0..64)
        .map(|i| {
            let key = generate_key(GeneratedKeyType::P256).expect("key");
            let cluster = format!("cluster-{i}");
            make_csr(
                &key,
                &cluster,
                &[],
                &[format!("spiffe://relay.local/relay/cluster/{cluster}")],
            )
            .expect("csr")
        })
        .collect();
    let usages = vec![
        "client auth".to_string(),
        "digital signature".to_string(),
        "key encipherment".to_string(),
    ];
    let policy = SigningPolicy::default();

    let mut group = c.benchmark_group("sign");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("p256_csr_p256_ca_pem_to_pem", |b| {
        b.iter(|| {
            i = (i + 1) % csrs.len();
            let request = SignRequest {
                csr_pem: csrs[i].as_bytes(),
                duration: Some(Duration::hours(8760)),
                is_ca: false,
                usages: &usages,
            };
            let issued = sign(&ca, black_box(&request), &policy, now).expect("sign");
            black_box(issued.chain_pem.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_sign, bench_crypto_floor);
criterion_main!(benches);

/// The crypto floor measured in the same run: one ring P-256 signature and one verification,
/// the two operations every issued certificate costs.
fn bench_crypto_floor(c: &mut Criterion) {
    use ring::rand::SystemRandom;
    use ring::signature::{self, EcdsaKeyPair, KeyPair};
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .expect("key");
    let key = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .expect("key");
    let message = vec![0x5au8; 400];
    let sig = key.sign(&rng, &message).expect("sign");
    let public = signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        key.public_key().as_ref().to_vec(),
    );
    let mut group = c.benchmark_group("crypto_floor");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ring_p256_sign", |b| {
        b.iter(|| black_box(key.sign(&rng, black_box(&message)).expect("sign")))
    });
    group.bench_function("ring_p256_verify", |b| {
        b.iter(|| {
            public
                .verify(black_box(&message), sig.as_ref())
                .expect("verify")
        })
    });
    group.finish();
}
