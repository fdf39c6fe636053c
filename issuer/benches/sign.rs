//! The whole sign path for P-256: PEM CSR in → parse, verify, build, sign → PEM chain out, and
//! the crypto floor (one ring P-256 sign + one verify) measured in the same run.
//!
//! `make bench-sign` runs this pinned to one core and prints certificates per second beside
//! `openssl speed ecdsap256`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

#[path = "support/fixture.rs"]
mod fixture;
use fixture::{CryptoFloor, Workload};

fn bench_sign(c: &mut Criterion) {
    let workload = Workload::new(64);
    let mut group = c.benchmark_group("sign");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("p256_csr_p256_ca_pem_to_pem", |b| {
        b.iter(|| {
            i += 1;
            black_box(workload.sign_one(i))
        })
    });
    group.finish();
}

fn bench_crypto_floor(c: &mut Criterion) {
    let floor = CryptoFloor::new();
    let mut group = c.benchmark_group("crypto_floor");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ring_p256_sign", |b| b.iter(|| black_box(floor.sign())));
    group.bench_function("ring_p256_verify", |b| b.iter(|| floor.verify()));
    group.finish();
}

criterion_group!(benches, bench_sign, bench_crypto_floor);
criterion_main!(benches);
