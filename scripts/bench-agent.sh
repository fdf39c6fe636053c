#!/usr/bin/env bash
# bench-agent: the relay agent's footprint.
#
# 1. Builds relay-agent with --release (and, by default, also with a size-optimised profile
#    defined on the command line, see PROFILES), strips a copy of each and reports its size
#    (budget: 15 MB).
# 2. Starts, once, the sandbox API server (relay-sandbox serve, our CRDs), a relay PKI
#    (relay-issuer ca create), a registered RelayCluster, an agent certificate signed with
#    relay-issuer sign, and the relay server (relay-issuer server). Then, for each build, runs
#    the stripped agent connected to that server, waits until /ready, lets it settle, and samples
#    VmRSS from /proc/<pid>/status (budget: 10 MiB steady RSS with one connection).
#
# Everything listens on 127.0.0.1; what the script starts is stopped by its PID when it ends.
#
# Knobs (environment):
#   PROFILES        builds to measure, default "small release": `small` is the shipped build,
#                   the workspace's `agent` profile (release with opt-level="s", lto="fat",
#                   codegen-units=1; what the Dockerfile builds); `release` is cargo's release
#                   profile, for comparison.
#   SETTLE_SECONDS  how long the agent runs before sampling (default 20)
#   SAMPLES         one VmRSS sample per second (default 10)
#   HEARTBEAT       agent --heartbeat-interval (default 1s)
#   ENFORCE=1       exit 1 when a measured build is over a budget (default: report only)
#   VERBOSE=1       list the largest resident mappings of each agent
#   HOLD_SECONDS=N  keep each agent up N more seconds after measuring, for inspection
# Needs openssl and kubectl (`make tools` puts kubectl in target/tools/bin).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
CARGO=${CARGO:-cargo}
PROFILES=${PROFILES:-small release}
SETTLE_SECONDS=${SETTLE_SECONDS:-20}
SAMPLES=${SAMPLES:-10}
HEARTBEAT=${HEARTBEAT:-1s}
ENFORCE=${ENFORCE:-0}
MAX_SIZE_BYTES=$((15 * 1000 * 1000))
MAX_RSS_KIB=$((10 * 1024))
NAMESPACE=gloo-mesh
CLUSTER=bench-cluster
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SMALL_PROFILE=(--profile agent)

KUBECTL=${KUBECTL:-}
if [[ -z $KUBECTL ]]; then
  if [[ -x $ROOT/target/tools/bin/kubectl ]]; then
    KUBECTL=$ROOT/target/tools/bin/kubectl
  elif command -v kubectl >/dev/null; then
    KUBECTL=$(command -v kubectl)
  else
    echo "bench-agent: kubectl not found; run 'make tools' (it installs target/tools/bin/kubectl)" >&2
    exit 2
  fi
fi
command -v openssl >/dev/null || { echo "bench-agent: openssl not found; run 'make tools'" >&2; exit 2; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# GET 127.0.0.1:$1$2 with bash's /dev/tcp; prints the status code.
http_status() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1" &&
    printf 'GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$2" >&3 &&
    head -c 12 <&3 | cut -d' ' -f2) 2>/dev/null || true
}

http_body() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1" &&
    printf 'GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "$2" >&3 &&
    cat <&3) 2>/dev/null | sed '1,/^\r$/d'
}

# Waits until GET 127.0.0.1:$1$2 answers 200, at most $3 seconds.
wait_http_ok() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    [[ $(http_status "$1" "$2") == 200 ]] && return 0
    sleep 0.1
  done
  return 1
}

status_kib() { awk -v key="$1:" '$1 == key {print $2}' "/proc/$2/status"; }
mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1000000}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.2f", k / 1024}'; }

echo "== building the sandbox and relay server (release) =="
"$CARGO" build --release -p relay-issuer -p relay-sandbox

echo "== starting the sandbox and the relay server =="
"$TARGET_DIR/release/relay-sandbox" serve --crds deploy/crds --kubeconfig-out "$WORK/kubeconfig" \
  >"$WORK/sandbox.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do [[ -s $WORK/kubeconfig ]] && break; sleep 0.1; done
[[ -s $WORK/kubeconfig ]] || { echo "the sandbox did not start:"; cat "$WORK/sandbox.log"; exit 1; }
export KUBECONFIG=$WORK/kubeconfig
kube() { "$KUBECTL" --kubeconfig "$WORK/kubeconfig" "$@"; }

# The sandbox takes JSON/YAML bodies only: everything goes through `kubectl apply -f`.
printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n' "$NAMESPACE" | kube apply -f - >/dev/null
"$TARGET_DIR/release/relay-issuer" ca create --out "$WORK/pki" --trust-domain relay.local \
  --namespace "$NAMESPACE" --key-type p256 --server-name localhost >/dev/null
kube apply -f "$WORK/pki/relay-root-tls-secret.yaml" -f "$WORK/pki/relay-tls-signing-secret.yaml" \
  -f "$WORK/pki/relay-server-tls-secret.yaml" >/dev/null
printf 'apiVersion: relaytls.dev/v1alpha1\nkind: RelayCluster\nmetadata: {name: %s, namespace: %s}\nspec: {}\n' \
  "$CLUSTER" "$NAMESPACE" | kube apply -f - >/dev/null

# The agent's certificate: CN and SPIFFE URI name the cluster.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$WORK/agent.key" -out "$WORK/agent.csr" -subj "/CN=$CLUSTER" \
  -addext "subjectAltName=URI:spiffe://relay.local/relay/cluster/$CLUSTER" 2>/dev/null
"$TARGET_DIR/release/relay-issuer" sign --signing-secret "$WORK/pki/relay-tls-signing-secret.yaml" \
  --csr "$WORK/agent.csr" --duration 8760h --usages "client auth,digital signature" \
  >"$WORK/agent.crt" 2>/dev/null
kube create secret tls relay-client-tls-secret -n "$NAMESPACE" --cert "$WORK/agent.crt" \
  --key "$WORK/agent.key" --dry-run=client -o yaml | kube apply -f - >/dev/null

RELAY_PORT=$(free_port)
SERVER_ADMIN=$(free_port)
"$TARGET_DIR/release/relay-issuer" server --namespace "$NAMESPACE" --listen "127.0.0.1:$RELAY_PORT" \
  --admin-address "127.0.0.1:$SERVER_ADMIN" --heartbeat-interval 10s >"$WORK/server.log" 2>&1 &
PIDS+=($!)
wait_http_ok "$SERVER_ADMIN" /ready 60 || { echo "the relay server did not become ready:"; cat "$WORK/server.log"; exit 1; }

STATUS=0
SUMMARY=()
for profile in $PROFILES; do
  case $profile in
    release) build=(--release); built=$TARGET_DIR/release/relay-agent ;;
    small) build=("${SMALL_PROFILE[@]}"); built=$TARGET_DIR/agent/relay-agent ;;
    *) echo "unknown profile $profile (use release or small)" >&2; exit 2 ;;
  esac
  echo "== relay-agent, $profile build =="
  "$CARGO" build -p relay-agent "${build[@]}"
  cp "$built" "$WORK/relay-agent-$profile"
  strip "$WORK/relay-agent-$profile"
  size=$(stat -c %s "$WORK/relay-agent-$profile")
  echo "binary: $size bytes stripped ($(mb "$size") MB; budget 15 MB), $(stat -c %s "$built") unstripped"

  admin=$(free_port)
  "$WORK/relay-agent-$profile" --relay-address "https://127.0.0.1:$RELAY_PORT" --server-name localhost \
    --cluster "$CLUSTER" --namespace "$NAMESPACE" --heartbeat-interval "$HEARTBEAT" \
    --admin-address "127.0.0.1:$admin" >"$WORK/agent-$profile.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_http_ok "$admin" /ready 60 || { echo "the agent did not become ready:"; cat "$WORK/agent-$profile.log"; exit 1; }
  echo "agent connected (pid $pid); settling for ${SETTLE_SECONDS}s, then $SAMPLES samples"
  sleep "$SETTLE_SECONDS"
  max=0
  total=0
  for _ in $(seq 1 "$SAMPLES"); do
    rss=$(status_kib VmRSS "$pid")
    total=$((total + rss))
    ((rss > max)) && max=$rss
    sleep 1
  done
  avg=$((total / SAMPLES))
  metrics=$(http_body "$admin" /metrics)
  beats=$(awk '$1 == "relay_agent_heartbeats_total" {print $2}' <<<"$metrics")
  failures=$(awk '$1 == "relay_agent_rpc_failures_total" {print $2}' <<<"$metrics")
  echo "steady RSS: avg $avg KiB, max $max KiB ($(mib "$max") MiB; budget 10 MiB); peak (VmHWM) $(status_kib VmHWM "$pid") KiB; $(status_kib Threads "$pid") thread(s)"
  echo "  anonymous (heap, stacks) $(status_kib RssAnon "$pid") KiB, file-backed (code pages of the binary and libraries) $(status_kib RssFile "$pid") KiB"
  echo "  heartbeats acknowledged ${beats:-?}, RPC failures ${failures:-?}"
  if [[ -n ${VERBOSE:-} ]]; then
    echo "  largest resident mappings (KiB):"
    awk '/^[0-9a-f]+-[0-9a-f]+ / {name = ($6 == "" ? "[anon]" : $6)} /^Rss:/ {rss[name] += $2} END {for (n in rss) print "   ", rss[n], n}' \
      "/proc/$pid/smaps" | sort -k1,1 -rn | head -8
  fi
  if [[ -n ${HOLD_SECONDS:-} ]]; then
    echo "  HOLD_SECONDS: agent pid $pid stays up ${HOLD_SECONDS}s (admin 127.0.0.1:$admin)"
    sleep "$HOLD_SECONDS"
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  remaining=()
  for p in "${PIDS[@]}"; do [[ $p == "$pid" ]] || remaining+=("$p"); done
  PIDS=("${remaining[@]}")

  verdict=ok
  if ((size > MAX_SIZE_BYTES)); then verdict="OVER BUDGET (size)"; STATUS=1; fi
  if ((max > MAX_RSS_KIB)); then verdict="OVER BUDGET (RSS)"; STATUS=1; fi
  SUMMARY+=("$(printf '%-8s stripped %5s MB   steady RSS %6s MiB   %s' "$profile" "$(mb "$size")" "$(mib "$max")" "$verdict")")
done

echo "== summary (budgets: 15 MB stripped, 10 MiB steady RSS) =="
printf '%s\n' "${SUMMARY[@]}"
if [[ $ENFORCE == 1 ]]; then
  exit $STATUS
fi
