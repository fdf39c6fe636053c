//! Instruction-count driver for `make bench-sign`: run under `valgrind --tool=callgrind`, it
//! signs N certificates (`path N`) or does N ring P-256 sign+verify pairs (`floor N`), so the
//! sign path's overhead over its crypto floor can be measured free of machine noise.

#[path = "../benches/support/fixture.rs"]
mod fixture;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    match mode.as_str() {
        "path" => {
            let workload = fixture::Workload::new(16);
            let total: usize = (0..n).map(|i| workload.sign_one(i)).sum();
            println!("signed {n} certificates ({total} bytes of PEM)");
        }
        "floor" => {
            let floor = fixture::CryptoFloor::new();
            let total: usize = (0..n)
                .map(|_| {
                    floor.verify();
                    floor.sign()
                })
                .sum();
            println!("did {n} sign+verify pairs ({total} signature bytes)");
        }
        "setup-path" => {
            let _ = fixture::Workload::new(16);
        }
        "setup-floor" => {
            let _ = fixture::CryptoFloor::new();
        }
        _ => {
            eprintln!("usage: sign_cost (path|floor|setup-path|setup-floor) N");
            std::process::exit(2);
        }
    }
}
