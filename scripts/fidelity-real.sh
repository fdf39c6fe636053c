#!/usr/bin/env bash
# The sandbox's fidelity suites against a real kube-apiserver (`make fidelity-real`): a fresh
# control plane (`scripts/control-plane.sh`), the same test targets with
# RELAY_FIDELITY_TARGET=real (kube-sandbox/src/fidelity.rs), and the plane taken down afterwards, also
# when a test fails. Prints the tests run, passed and failed, and the tests that ran only on the
# sandbox (they print `SANDBOX-ONLY <test>: <reason>`). The whole output is in
# target/fidelity-real.log. Extra arguments go to the test binaries (a test name filters).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# The emulator's own suites (crate kube-sandbox) and the relay Table suite (relay-sandbox).
EMULATOR_SUITES=(api_semantics kubectl kubectl_create metadata custom_resources)
RELAY_SUITES=(table)
LOG="$ROOT/target/fidelity-real.log"
CARGO="${CARGO:-cargo}"

emulator_args=()
for suite in "${EMULATOR_SUITES[@]}"; do emulator_args+=(--test "$suite"); done
relay_args=()
for suite in "${RELAY_SUITES[@]}"; do relay_args+=(--test "$suite"); done
# Build first, so the plane is not up while the tests compile.
"$CARGO" test -p kube-sandbox "${emulator_args[@]}" --no-run
"$CARGO" test -p relay-sandbox "${relay_args[@]}" --no-run

trap 'scripts/control-plane.sh down' EXIT
# A fresh plane: `up` would reuse a running one, with what earlier runs left in it.
scripts/control-plane.sh down
scripts/control-plane.sh up >/dev/null
eval "$(scripts/control-plane.sh env)"
# cert-manager's controller would approve the suites' CertificateRequests (its approver acts on
# every one), which the suites write as the only client; the suites judge the API server, so
# it is stopped (`down` stops the rest). Its webhook stays, and skips the tests' namespaces
# (they carry cert-manager.io/disable-validation=true: kube-sandbox/src/fidelity.rs).
if pid="$(scripts/control-plane.sh pid cert-manager-controller)"; then
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
fi
export KUBECONFIG RELAY_FIDELITY_TARGET=real RELAY_TLS_REQUIRE_TOOLS=1

status=0
: >"$LOG"
"$CARGO" test --no-fail-fast -p kube-sandbox "${emulator_args[@]}" -- --show-output "$@" 2>&1 | tee -a "$LOG" >/dev/null || status=$?
"$CARGO" test --no-fail-fast -p relay-sandbox "${relay_args[@]}" -- --show-output "$@" 2>&1 | tee -a "$LOG" >/dev/null || status=$?
grep -E '^test .* (FAILED|failed)$|^---- ' "$LOG" || true
python3 - "$LOG" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
passed = failed = 0
for m in re.finditer(r"test result: \w+\. (\d+) passed; (\d+) failed", text):
    passed += int(m.group(1)); failed += int(m.group(2))
only = sorted(set(re.findall(r"SANDBOX-ONLY (\S+): (.*)", text)))
print(f"fidelity-real: {passed + failed} tests run against kube-apiserver, {passed} passed, {failed} failed")
print(f"fidelity-real: {len(only)} of them sandbox-only (returned without checking):")
for name, reason in only:
    print(f"  {name}: {reason}")
PY
exit "$status"
