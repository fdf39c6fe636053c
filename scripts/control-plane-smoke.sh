#!/usr/bin/env bash
# `make cluster-smoke`: proves the real control plane of scripts/control-plane.sh does what the
# project relies on, then takes it down and checks that no process of it is left.
#
#   1. it comes up (timed) and /readyz says ok;
#   2. cert-manager works end to end: a self-signed Issuer makes a CA Certificate, a CA Issuer
#      signs a leaf Certificate with it, and both become Ready; the leaf's CertificateRequest was
#      approved by cert-manager's own approver, and the leaf verifies against the CA with openssl;
#   3. cert-manager's webhook is in the path: a Certificate only its validation rejects is denied
#      by webhook.cert-manager.io;
#   4. ServiceAccount tokens: `kubectl create token` works, a kubeconfig from `kubeconfig-for`
#      authenticates as the ServiceAccount, and RBAC refuses it what it was not granted;
#   5. the audit log names user, verb, resource and name of those requests, cert-manager's
#      controller's own (as its ServiceAccount) among them;
#   6. `down` leaves no process behind (also when any step above fails: the trap runs it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CP="$ROOT/scripts/control-plane.sh"
KUBECTL="${KUBECTL:-$ROOT/target/tools/bin/kubectl}"
. "$ROOT/scripts/versions.env"
CACHE="${RELAY_TLS_CACHE:-$HOME/.cache/relay-tls}/control-plane"
STATE="${RELAY_TLS_CONTROL_PLANE_DIR:-$ROOT/target/control-plane}"
NS=relay-tls-smoke

step() { echo "smoke: $*"; }
fail() {
  echo "smoke: FAILED: $*" >&2
  exit 1
}

# The processes of this plane still running: one of the control plane's binaries (every binary
# lives in CACHE) started with this plane's state folder in its arguments. Other planes on the
# machine (another checkout's, CI's) use the same binaries and are not ours to count.
leftovers() {
  local p exe args state_real
  state_real="$(realpath -m "$STATE")"
  for p in /proc/[0-9]*; do
    exe="$(readlink "$p/exe" 2>/dev/null)" || continue
    case "$exe" in "$CACHE"/*) ;; *) continue ;; esac
    args="$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)" || continue
    case "$args" in *"$STATE"* | *"$state_real"*) echo "${p#/proc/} $exe" ;; esac
  done
}

teardown() {
  local status=$?
  "$CP" down
  local left
  left="$(leftovers)"
  if [ -n "$left" ]; then
    echo "smoke: FAILED: processes left after down:" >&2
    echo "$left" >&2
    exit 1
  fi
  step "down: no process left"
  exit "$status"
}
trap teardown EXIT

started=$SECONDS
"$CP" build
built=$((SECONDS - started))
# A fresh plane (one already running is stopped), so the time below is a whole warm start.
"$CP" down
started=$SECONDS
kubeconfig="$("$CP" up)"
took_up=$((SECONDS - started))
step "up in ${took_up} s from a warm cache (build check ${built} s); kubeconfig $kubeconfig"
export KUBECONFIG="$kubeconfig"
kc() { "$KUBECTL" "$@"; }

[ "$(kc get --raw /readyz)" = ok ] || fail "/readyz is not ok"
step "/readyz: ok ($(kc version -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])'))"

# --- cert-manager: self-signed Issuer -> CA Certificate -> CA Issuer -> leaf Certificate -------
kc create namespace "$NS" >/dev/null
started=$SECONDS
kc apply -n "$NS" -f - >/dev/null <<'EOF'
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: selfsigned}
spec: {selfSigned: {}}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: smoke-ca}
spec:
  isCA: true
  commonName: relay-tls smoke CA
  secretName: smoke-ca
  privateKey: {algorithm: ECDSA, size: 256}
  issuerRef: {name: selfsigned, kind: Issuer, group: cert-manager.io}
---
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: smoke-ca}
spec: {ca: {secretName: smoke-ca}}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: leaf}
spec:
  commonName: leaf.relay-tls.test
  dnsNames: [leaf.relay-tls.test]
  secretName: leaf-tls
  privateKey: {algorithm: ECDSA, size: 256}
  issuerRef: {name: smoke-ca, kind: Issuer, group: cert-manager.io}
EOF
kc wait -n "$NS" --for condition=Ready --timeout 90s certificate/smoke-ca certificate/leaf >/dev/null ||
  fail "Certificates not Ready: $(kc get -n "$NS" certificates,certificaterequests -o wide 2>&1)"
step "Certificates smoke-ca (self-signed) and leaf (CA Issuer) Ready in $((SECONDS - started)) s"
approved="$(kc get -n "$NS" certificaterequests -o json | python3 -c '
import json, sys
for cr in json.load(sys.stdin)["items"]:
    if cr["spec"]["issuerRef"]["name"] != "smoke-ca":
        continue
    for c in cr["status"].get("conditions", []):
        if c["type"] == "Approved" and c["status"] == "True":
            print(c["reason"])')"
[ "$approved" = cert-manager.io ] || fail "the leaf's CertificateRequest was not approved by cert-manager's approver (reason: '$approved')"
step "the leaf's CertificateRequest was approved by cert-manager's approver (reason cert-manager.io)"
work="$(mktemp -d)"
kc get -n "$NS" secret leaf-tls -o jsonpath='{.data.tls\.crt}' | base64 -d >"$work/leaf.crt"
kc get -n "$NS" secret leaf-tls -o jsonpath='{.data.ca\.crt}' | base64 -d >"$work/ca.crt"
openssl verify -CAfile "$work/ca.crt" "$work/leaf.crt" >/dev/null || fail "the leaf does not verify against its CA"
step "openssl verifies the leaf against the CA ($(openssl x509 -in "$work/leaf.crt" -noout -subject))"
rm -rf "$work"

# --- the webhook: ECDSA size 300 passes the CRD schema, only cert-manager's validation refuses it
denied="$(kc apply -n "$NS" -f - 2>&1 <<'EOF' || true
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: refused}
spec:
  commonName: refused.relay-tls.test
  secretName: refused
  privateKey: {algorithm: ECDSA, size: 300}
  issuerRef: {name: smoke-ca}
EOF
)"
case "$denied" in
  *'admission webhook "webhook.cert-manager.io" denied the request'*) step "webhook: $denied" ;;
  *) fail "cert-manager's webhook did not refuse an ECDSA size 300 Certificate: $denied" ;;
esac

# --- ServiceAccount tokens and RBAC -----------------------------------------------------------
kc create serviceaccount -n "$NS" smoke >/dev/null
token="$(kc create token -n "$NS" smoke --duration 10m)"
[ -n "$token" ] || fail "kubectl create token gave no token"
step "kubectl create token: a token of $(printf %s "$token" | wc -c) characters (TokenRequest API)"
sa_kubeconfig="$("$CP" kubeconfig-for "$NS" smoke)"
whoami="$("$KUBECTL" --kubeconfig "$sa_kubeconfig" auth whoami -o jsonpath='{.status.userInfo.username}')"
[ "$whoami" = "system:serviceaccount:$NS:smoke" ] || fail "kubeconfig-for authenticates as '$whoami'"
if denial="$("$KUBECTL" --kubeconfig "$sa_kubeconfig" get secrets -n "$NS" 2>&1)"; then
  fail "RBAC let the ServiceAccount list Secrets it was never granted"
fi
case "$denial" in *Forbidden*) ;; *) fail "expected Forbidden, got: $denial" ;; esac
step "kubeconfig-for: authenticates as $whoami; RBAC: $denial"

# --- the audit log ----------------------------------------------------------------------------
python3 - "$STATE/audit.log" "$NS" <<'PY' || fail "the audit log lacks an expected event"
import json, sys
path, ns = sys.argv[1], sys.argv[2]
events = [json.loads(line) for line in open(path)]
def find(user, verbs, resource, name, subresource=None):
    for e in events:
        ref = e.get("objectRef") or {}
        if (e["user"]["username"] == user and e["verb"] in verbs and ref.get("resource") == resource
                and ref.get("name") == name and ref.get("subresource") == subresource
                and ref.get("namespace") == ns):
            return e
    sys.exit(f"no audit event: {user} {'|'.join(verbs)} {resource}/{name} {subresource or ''} in {ns}")
checks = [
    ("relay-tls-admin", ("create",), "serviceaccounts", "smoke", "token"),
    ("system:serviceaccount:cert-manager:cert-manager", ("update", "patch"), "certificates", "leaf", "status"),
    (f"system:serviceaccount:{ns}:smoke", ("list",), "secrets", None, None),
]
for user, verbs, resource, name, sub in checks:
    e = find(user, verbs, resource, name, sub)
    ref = e["objectRef"]
    print(f"smoke: audit: {e['user']['username']} {e['verb']} {ref['resource']}"
          f"{'/' + ref['subresource'] if ref.get('subresource') else ''} {ref.get('name') or '(list)'}"
          f" in {ref.get('namespace')} -> {e['responseStatus']['code']}")
assert all(e["user"].get("username") and e.get("verb") for e in events), "an event without user or verb"
with_ref = sum(1 for e in events if e.get("objectRef", {}).get("resource"))
print(f"smoke: audit log: {len(events)} events, each with user and verb; {with_ref} on resources, with objectRef")
PY

step "all checks passed; taking it down"
