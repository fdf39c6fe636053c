#!/usr/bin/env python3
"""`make bench-sign`: certificates per second on one core, beside the crypto floor and
`openssl speed ecdsap256`, all measured in the same run (machines are noisy: read the ratios).

The sign path and the floor are measured in alternating rounds and the medians reported, so a
slow spell of a shared machine does not land on one side only."""

import json
import os
import re
import shutil
import subprocess
import sys

CORE = "0"


def bench_executable() -> str:
    out = subprocess.run(
        ["cargo", "bench", "-p", "relay-issuer", "--bench", "sign", "--no-run", "--message-format=json"],
        check=True, capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["name"] == "sign":
            return msg["executable"]
    sys.exit("bench-sign: could not find the sign benchmark executable")


def pinned(cmd):
    if shutil.which("taskset"):
        return ["taskset", "-c", CORE] + cmd
    return cmd


UNITS = {"elem/s": 1, "Kelem/s": 1e3, "Melem/s": 1e6}


def criterion_rates(output: str) -> dict:
    rates, current = {}, None
    for line in output.splitlines():
        name = re.match(r"^([a-z_]+/[a-z0-9_]+)", line)
        if name:
            current = name.group(1)
        m = re.search(r"thrpt:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", line)
        if m and current and current not in rates and m.group(2) in UNITS:
            rates[current] = float(m.group(1)) * UNITS[m.group(2)]
    return rates


def openssl_rates():
    out = subprocess.run(pinned(["openssl", "speed", "-seconds", "5", "ecdsap256"]), capture_output=True, text=True).stdout
    m = re.search(r"256 bits ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", out)
    if not m:
        sys.exit("bench-sign: could not read `openssl speed ecdsap256` output:\n" + out)
    return float(m.group(1)), float(m.group(2))


def instructions(exe, mode, n):
    """Instructions executed by `sign_cost MODE N` under callgrind (deterministic)."""
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", exe, mode, str(n)],
        capture_output=True, text=True,
    ).stderr
    m = re.search(r"Collected : (\d+)", out)
    return int(m.group(1)) if m else None


def instruction_overhead():
    """Instructions per certificate of the sign path over those of 1 sign + 1 verify, or None
    when valgrind is not installed."""
    if not shutil.which("valgrind"):
        return None
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "relay-issuer", "--example", "sign_cost"], check=True)
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    exe = os.path.join(target, "release", "examples", "sign_cost")
    n = 300
    path = instructions(exe, "path", n) - instructions(exe, "setup-path", 0)
    floor_ = instructions(exe, "floor", n) - instructions(exe, "setup-floor", 0)
    return path / n, floor_ / n


def floor(sign_rate, verify_rate):
    return 1.0 / (1.0 / sign_rate + 1.0 / verify_rate)


ROUNDS = 5


def criterion(exe, name_filter):
    out = subprocess.run(
        pinned([exe, "--bench", "--noplot", "--warm-up-time", "1", "--measurement-time", "3", name_filter]),
        check=True, capture_output=True, text=True,
    ).stdout
    return criterion_rates(out)


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main():
    exe = bench_executable()
    print(f"running {exe} pinned to core {CORE}: {ROUNDS} rounds, sign path and floor alternating …", flush=True)
    paths, floors, ratios, signs, verifies = [], [], [], [], []
    for round_ in range(ROUNDS):
        # Alternate which goes first, so a slow or fast spell of the machine hits both alike.
        if round_ % 2 == 0:
            path_rates = criterion(exe, "^sign/")
            floor_rates = criterion(exe, "^crypto_floor/")
        else:
            floor_rates = criterion(exe, "^crypto_floor/")
            path_rates = criterion(exe, "^sign/")
        path = path_rates["sign/p256_csr_p256_ca_pem_to_pem"]
        sign_rate = floor_rates["crypto_floor/ring_p256_sign"]
        verify_rate = floor_rates["crypto_floor/ring_p256_verify"]
        floor_rate = floor(sign_rate, verify_rate)
        print(f"  round {round_ + 1}: sign path {path:,.0f}/s, ring floor {floor_rate:,.0f}/s ({path / floor_rate:.1%})", flush=True)
        paths.append(path)
        floors.append(floor_rate)
        ratios.append(path / floor_rate)
        signs.append(sign_rate)
        verifies.append(verify_rate)
    path, ring_floor, ratio = median(paths), median(floors), median(ratios)
    ring_sign, ring_verify = median(signs), median(verifies)
    ossl_sign, ossl_verify = openssl_rates()
    ossl_floor = floor(ossl_sign, ossl_verify)
    print()
    print("sign path: P-256 CSR (PEM) -> parse, verify, build, sign with a P-256 CA -> chain (PEM)")
    print(f"(medians of {ROUNDS} rounds)")
    print(f"  relay-issuer sign path        {path:10,.0f} certificates/s on one core")
    print(f"  ring P-256 sign / verify      {ring_sign:10,.0f} / {ring_verify:,.0f} per second")
    print(f"  ring floor (1 sign + 1 verify){ring_floor:10,.0f} /s   -> sign path = {ratio:.1%} of it (median per-round ratio)")
    print(f"  openssl speed sign / verify   {ossl_sign:10,.0f} / {ossl_verify:,.0f} per second")
    print(f"  openssl floor (1 sign+1 verify){ossl_floor:9,.0f} /s   -> sign path = {path / ossl_floor:.2f}x it")
    counted = instruction_overhead()
    if counted:
        per_cert, per_floor = counted
        print(f"  instructions per certificate  {per_cert:10,.0f} vs {per_floor:,.0f} for 1 sign + 1 verify"
              f" (callgrind) -> sign path = {per_floor / per_cert:.1%} of the crypto floor's speed")
        print(f"  at this run's ring floor that is {ring_floor * per_floor / per_cert:,.0f} certificates/s")
    print(f"  target 10,000/s: {'met' if path >= 10_000 else 'not met'} in this run (median, wall clock)")


if __name__ == "__main__":
    main()
