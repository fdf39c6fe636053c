#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1, for running relay-tls against the real thing:
# etcd, kube-apiserver (RBAC, ServiceAccount tokens, the default admission chain, an audit log),
# kube-controller-manager (garbage collection, namespace deletion, ...), and cert-manager's
# controller and webhook, each a local process. There is no kubelet, so no Pod runs: a program
# that would run in a Pod runs as a process with a kubeconfig made from its ServiceAccount's
# token (`kubeconfig-for`), and the API server's RBAC decides what it may do.
#
#   scripts/control-plane.sh up                 start it (or reuse a healthy one); prints the kubeconfig path
#   scripts/control-plane.sh down               stop every process it started and wait for them
#   scripts/control-plane.sh env                shell exports: eval "$(scripts/control-plane.sh env)"
#   scripts/control-plane.sh status             whether it is up and healthy (exit 1 if not)
#   scripts/control-plane.sh kubeconfig-for NAMESPACE SERVICEACCOUNT
#                                               a token from the TokenRequest API, written into a
#                                               kubeconfig; prints its path
#   scripts/control-plane.sh pid NAME           the PID of one of its processes (etcd, kube-apiserver, ...)
#   scripts/control-plane.sh build              only build (or find) the binaries
#
# Binaries come from published Go modules at the versions pinned in scripts/versions.env, built
# once per version (and per change of our go.mod/go.sum/main) into
# ${RELAY_TLS_CACHE:-$HOME/.cache/relay-tls}/control-plane, outside the work tree, so later runs
# and CI on the same machine reuse them. Builds run under `nice -n 19` with `go build -p 1`
# (CONTROL_PLANE_BUILD_JOBS to change). The modules: controlplane/kubernetes (k8s.io/kubernetes),
# controlplane/etcd (go.etcd.io/etcd/server/v3), controlplane/cert-manager (two small mains of
# ours around cert-manager's own controllers and webhook; see its go.mod for why).
#
# CONTROL_PLANE_NICE (say -2) gives etcd and kube-apiserver more of the CPU than the other
# sessions on the machine (see `weigh`); make bench-relay-real sets it.
#
# CONTROL_PLANE_AUDIT=0 starts kube-apiserver without its audit log, as it runs by default (no
# audit policy). The log is on otherwise: `make e2e` judges least privilege from it. make
# bench-relay-real sets 0: it reads no audit log, and writing one event per request cost the API
# server about 0.35 ms of CPU per status write here (docs/fleet-benchmark-real.md).
#
# Everything listens on 127.0.0.1, on ports found free at start. Run state (PIDs, logs, PKI,
# kubeconfigs, etcd's data, the audit log) is in ${RELAY_TLS_CONTROL_PLANE_DIR:-target/control-plane}.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=versions.env
. "$ROOT/scripts/versions.env"
CACHE="${RELAY_TLS_CACHE:-$HOME/.cache/relay-tls}/control-plane"
STATE="${RELAY_TLS_CONTROL_PLANE_DIR:-$ROOT/target/control-plane}"
TOOLS_BIN="$ROOT/target/tools/bin"
KUBECTL="${KUBECTL:-$TOOLS_BIN/kubectl}"
HELM="${HELM:-$TOOLS_BIN/helm}"
GO="${GO:-go}"
BUILD_JOBS="${CONTROL_PLANE_BUILD_JOBS:-1}"
# The CPU weight of etcd and kube-apiserver against everything else on the machine, as a nice
# value for their scheduler autogroups (see `weigh`); 0 leaves them as they start.
CPU_NICE="${CONTROL_PLANE_NICE:-0}"
# 1: kube-apiserver writes an audit log (Metadata for every request); 0: none.
AUDIT="${CONTROL_PLANE_AUDIT:-1}"
# How long the ServiceAccount tokens in the kubeconfigs are valid.
TOKEN_DURATION="${CONTROL_PLANE_TOKEN_DURATION:-720h}"
# The order processes start in; `down` stops them in reverse.
PROCESSES=(etcd kube-apiserver kube-controller-manager cert-manager-webhook cert-manager-controller)

say() { echo "control-plane: $*" >&2; }
die() {
  say "$*"
  exit 1
}

# --- versions and binaries -------------------------------------------------------------------

# The version a module's go.mod requires of MODULE.
required_version() { # DIR MODULE
  (cd "$ROOT/controlplane/$1" && "$GO" mod edit -json) | python3 -c '
import json, sys
mod = json.load(sys.stdin)
print(next((r["Version"] for r in mod.get("Require") or [] if r["Path"] == sys.argv[1]), ""))' "$2"
}

# The pins in scripts/versions.env are the versions the go.mod files build.
check_versions() {
  : "${KUBERNETES_VERSION:?scripts/versions.env must pin KUBERNETES_VERSION}"
  : "${ETCD_VERSION:?scripts/versions.env must pin ETCD_VERSION}"
  : "${CERT_MANAGER_VERSION:?scripts/versions.env must pin CERT_MANAGER_VERSION}"
  local dir module pin found
  for spec in "kubernetes k8s.io/kubernetes $KUBERNETES_VERSION" "etcd go.etcd.io/etcd/server/v3 $ETCD_VERSION" \
    "cert-manager github.com/cert-manager/cert-manager $CERT_MANAGER_VERSION"; do
    read -r dir module pin <<<"$spec"
    found="$(required_version "$dir" "$module")"
    [ "$found" = "$pin" ] || die "controlplane/$dir/go.mod requires $module $found but scripts/versions.env pins $pin: change both (then run go mod tidy there)"
  done
  # Every staging module of k8s.io/kubernetes vX.Y.Z is published as v0.Y.Z.
  local staging="v0.${KUBERNETES_VERSION#v1.}" stale
  stale="$( (cd "$ROOT/controlplane/kubernetes" && "$GO" mod edit -json) | python3 -c '
import json, sys
mod = json.load(sys.stdin)
print(" ".join(r["Old"]["Path"] + "@" + r["New"].get("Version", "(a folder)")
               for r in mod.get("Replace") or [] if r["New"].get("Version") != sys.argv[1]))' "$staging")"
  [ -z "$stale" ] || die "controlplane/kubernetes/go.mod must replace every staging module with $staging; these differ: $stale"
}

# The folder of MODULE@VERSION in Go's module cache (downloaded through the module proxy).
module_dir() { # MODULE VERSION
  (cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod "$GO" mod download -json "$1@$2") | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit("go mod download: " + d["Error"]) if "Error" in d else print(d["Dir"])'
}

# What a binary is built from: our module's files, the flags and Go's version. A change rebuilds.
inputs_hash() { # DIR LDFLAGS
  {
    (cd "$ROOT/controlplane/$1" && find . -name '*.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort | xargs sha256sum)
    echo "$2"
    "$GO" version
  } | sha256sum | cut -c1-16
}

# Builds PACKAGE of controlplane/DIR into BIN unless a build of the same inputs is there.
build_one() { # NAME DIR PACKAGE BIN LDFLAGS
  local name="$1" dir="$2" package="$3" bin="$4" ldflags="$5" hash started
  hash="$(inputs_hash "$dir" "$ldflags")"
  if [ -x "$bin" ] && [ "$(cat "$bin.inputs" 2>/dev/null)" = "$hash" ]; then
    return 0
  fi
  mkdir -p "$(dirname "$bin")"
  say "building $name from $package (once per version, under nice -n 19 with -p $BUILD_JOBS; a cold kube-apiserver takes about 12 minutes on 2 busy cores)"
  started=$(date +%s)
  (cd "$ROOT/controlplane/$dir" && nice -n 19 "$GO" build -p "$BUILD_JOBS" -trimpath -ldflags "$ldflags" -o "$bin.tmp" "$package")
  mv -f "$bin.tmp" "$bin"
  echo "$hash" >"$bin.inputs"
  local took=$(($(date +%s) - started))
  echo "$(date -u +%FT%TZ) $name $took s (-p $BUILD_JOBS)" >>"$CACHE/build-times.log"
  say "built $name in $took s: $bin"
}

K8S_BIN="$CACHE/kubernetes-$KUBERNETES_VERSION/bin"
ETCD_BIN="$CACHE/etcd-$ETCD_VERSION/bin"
CM_BIN="$CACHE/cert-manager-$CERT_MANAGER_VERSION/bin"
declare -A BINARY=(
  [etcd]="$ETCD_BIN/etcd"
  [kube-apiserver]="$K8S_BIN/kube-apiserver"
  [kube-controller-manager]="$K8S_BIN/kube-controller-manager"
  [cert-manager-webhook]="$CM_BIN/cert-manager-webhook"
  [cert-manager-controller]="$CM_BIN/cert-manager-controller"
)

build() {
  check_versions
  mkdir -p "$CACHE"
  # One build at a time on this machine, whoever asks (a developer and CI share the cache).
  exec 9>"$CACHE/.build.lock"
  flock 9
  local minor="${KUBERNETES_VERSION#v1.}" k8s_ld="-s -w" p
  minor="${minor%%.*}"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ld="$k8s_ld -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  local cm_ld="-s -w -X github.com/cert-manager/cert-manager/pkg/util.AppVersion=$CERT_MANAGER_VERSION"
  build_one etcd etcd relay-tls.dev/controlplane/etcd "${BINARY[etcd]}" "-s -w"
  build_one kube-apiserver kubernetes k8s.io/kubernetes/cmd/kube-apiserver "${BINARY[kube-apiserver]}" "$k8s_ld"
  build_one kube-controller-manager kubernetes k8s.io/kubernetes/cmd/kube-controller-manager \
    "${BINARY[kube-controller-manager]}" "$k8s_ld"
  build_one cert-manager-webhook cert-manager github.com/cert-manager/cert-manager/relay-tls-control-plane/cmd/webhook \
    "${BINARY[cert-manager-webhook]}" "$cm_ld"
  build_one cert-manager-controller cert-manager github.com/cert-manager/cert-manager/relay-tls-control-plane/cmd/controller \
    "${BINARY[cert-manager-controller]}" "$cm_ld"
  exec 9>&-
}

# --- processes -------------------------------------------------------------------------------

# The PID of a process this script started that still runs the binary it was started from (also
# when that file was since rebuilt, with "any"), else nothing. The PID file records the binary, so
# a process is never mistaken for another that got its PID.
live_pid() { # NAME [any]
  local file="$STATE/pids/$1.pid" pid binary exe
  [ -f "$file" ] || return 1
  read -r pid binary <"$file" || true
  [ -n "$pid" ] && [ -n "$binary" ] || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
  if [ "${2:-}" = any ]; then exe="${exe% (deleted)}"; fi
  [ "$exe" = "$binary" ] || return 1
  echo "$pid"
}

start() { # NAME ARGS...
  local name="$1"
  shift
  # Its own session: the processes outlive the shell that ran `up`, and a Ctrl-C there.
  setsid "${BINARY[$name]}" "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo "$! ${BINARY[$name]}" >"$STATE/pids/$name.pid"
}

# Stops the processes one by one, last started first, each with SIGTERM and, if it has not exited
# 20 s later, SIGKILL: in this order each can still reach the API server while it shuts down
# (cert-manager's controller hands its Lease back).
stop_all() {
  local i name pid
  for ((i = ${#PROCESSES[@]} - 1; i >= 0; i--)); do
    name="${PROCESSES[$i]}"
    if pid="$(live_pid "$name" any)"; then
      kill -TERM "$pid" 2>/dev/null || true
      local deadline=$((SECONDS + 20))
      while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then
        say "$name (pid $pid) did not stop within 20 s of SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
      fi
    fi
    rm -f "$STATE/pids/$name.pid"
  done
}

# Polls COMMAND until it succeeds, for at most SECONDS, while process NAME runs; if it never
# succeeds, says so with the end of NAME's log.
wait_for() { # SECONDS NAME COMMAND...
  local limit="$1" name="$2"
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if ! live_pid "$name" >/dev/null; then
      tail -n 20 "$STATE/logs/$name.log" >&2 || true
      die "$name exited (log: $STATE/logs/$name.log)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 20 "$STATE/logs/$name.log" >&2 || true
      die "$name not ready after ${limit} s (log: $STATE/logs/$name.log)"
    fi
    sleep 0.2
  done
}

free_ports() { # COUNT
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# --- PKI -------------------------------------------------------------------------------------

# A CA: NAME.crt, NAME.key (ECDSA P-256, ten years; the plane is remade on each `up`).
make_ca() { # NAME SUBJECT
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$PKI/$1.key" -out "$PKI/$1.crt" 2>/dev/null
}

# A leaf signed by CA: NAME.crt, NAME.key. USAGE is serverAuth, clientAuth or both.
make_leaf() { # NAME CA SUBJECT USAGE [SANS]
  local name="$1" ca="$2" subject="$3" usage="$4" sans="${5:-}" ext="$PKI/$1.ext"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$usage"
    [ -z "$sans" ] || echo "subjectAltName=$sans"
  } >"$ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$subject" \
    -keyout "$PKI/$name.key" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial \
    -days 3650 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

make_pki() {
  PKI="$STATE/pki"
  mkdir -p "$PKI"
  local local_sans="IP:127.0.0.1,DNS:localhost"
  # The API server's own CA: its serving certificate and the client certificates it accepts.
  make_ca cluster-ca "/CN=relay-tls control plane CA"
  make_leaf kube-apiserver cluster-ca "/CN=kube-apiserver" serverAuth \
    "$local_sans,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1"
  make_leaf admin cluster-ca "/O=system:masters/CN=relay-tls-admin" clientAuth
  make_leaf kube-controller-manager cluster-ca "/CN=system:kube-controller-manager" clientAuth
  # etcd's: its serving certificate and the API server's client certificate.
  make_ca etcd-ca "/CN=relay-tls etcd CA"
  make_leaf etcd etcd-ca "/CN=etcd" serverAuth,clientAuth "$local_sans"
  make_leaf apiserver-etcd-client etcd-ca "/CN=kube-apiserver-etcd-client" clientAuth
  # cert-manager's webhook: its serving certificate; the CA is the webhooks' caBundle.
  make_ca webhook-ca "/CN=relay-tls cert-manager webhook CA"
  make_leaf cert-manager-webhook webhook-ca "/CN=cert-manager-webhook" serverAuth "$local_sans"
  # The aggregation layer's front proxy (as kubeadm sets it up; also what delegated
  # authentication, as in kube-controller-manager, expects to find).
  make_ca front-proxy-ca "/CN=relay-tls front-proxy CA"
  make_leaf front-proxy-client front-proxy-ca "/CN=front-proxy-client" clientAuth
  # ServiceAccount token signing.
  openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out "$PKI/sa.key"
  openssl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  chmod 600 "$PKI"/*.key
}

# --- kubeconfigs -----------------------------------------------------------------------------

write_kubeconfig() { # FILE USER (then --client-certificate/--client-key as credentials)
  local file="$1" user="$2"
  shift 2
  rm -f "$file"
  (
    umask 077
    "$KUBECTL" --kubeconfig "$file" config set-cluster relay-tls --server "https://127.0.0.1:$APISERVER_PORT" \
      --certificate-authority "$STATE/pki/cluster-ca.crt" --embed-certs >/dev/null
    "$KUBECTL" --kubeconfig "$file" config set-credentials "$user" "$@" >/dev/null
    "$KUBECTL" --kubeconfig "$file" config set-context relay-tls --cluster relay-tls --user "$user" >/dev/null
    "$KUBECTL" --kubeconfig "$file" config use-context relay-tls >/dev/null
  )
}

kubeconfig_for() { # NAMESPACE SERVICEACCOUNT
  local namespace="$1" account="$2" file token
  load_env
  kc get serviceaccount -n "$namespace" "$account" >/dev/null 2>&1 ||
    die "no ServiceAccount $namespace/$account: create it first (kubectl create serviceaccount -n $namespace $account)"
  file="$STATE/kubeconfigs/$namespace.$account.kubeconfig"
  token="$(kc create token -n "$namespace" "$account" --duration "$TOKEN_DURATION")"
  # Written by the shell, so the token never appears on a command line.
  rm -f "$file"
  (
    umask 077
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: relay-tls
    cluster:
      server: https://127.0.0.1:$APISERVER_PORT
      certificate-authority-data: $(base64 -w0 "$STATE/pki/cluster-ca.crt")
users:
  - name: "system:serviceaccount:$namespace:$account"
    user:
      token: "$token"
contexts:
  - name: relay-tls
    context: {cluster: relay-tls, user: "system:serviceaccount:$namespace:$account"}
current-context: relay-tls
EOF
  )
  echo "$file"
}

kc() { "$KUBECTL" --kubeconfig "$STATE/kubeconfig" "$@"; }

# --- health ----------------------------------------------------------------------------------

load_env() {
  [ -f "$STATE/ports.env" ] || die "not up: run scripts/control-plane.sh up (or make cluster)"
  # shellcheck disable=SC1091
  . "$STATE/ports.env"
}

apiserver_ready() {
  curl -sf --max-time 2 --cacert "$STATE/pki/cluster-ca.crt" --cert "$STATE/pki/admin.crt" --key "$STATE/pki/admin.key" \
    "https://127.0.0.1:$APISERVER_PORT/readyz" | grep -qx ok
}
etcd_ready() {
  curl -sf --max-time 2 --cacert "$STATE/pki/etcd-ca.crt" --cert "$STATE/pki/apiserver-etcd-client.crt" \
    --key "$STATE/pki/apiserver-etcd-client.key" "https://127.0.0.1:${ETCD_HTTP_PORT:-0}/health" | grep -q '"health":"true"'
}
controller_manager_ready() { curl -skf --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz" | grep -qx ok; }
webhook_ready() {
  curl -sf --max-time 2 --cacert "$STATE/pki/webhook-ca.crt" "https://127.0.0.1:$WEBHOOK_PORT/healthz" | grep -qx ok
}
controller_live() { curl -sf --max-time 2 "http://127.0.0.1:$CM_HEALTHZ_PORT/livez" | grep -qx ok; }
# cert-manager's controller leads (holds its Lease), so its controllers run.
controller_leads() {
  kc get lease -n kube-system cert-manager-controller -o jsonpath='{.spec.holderIdentity}' | grep -q external-cert-manager-controller
}

healthy() {
  [ -f "$STATE/ports.env" ] || return 1
  load_env
  local name
  for name in "${PROCESSES[@]}"; do live_pid "$name" >/dev/null || return 1; done
  etcd_ready && apiserver_ready && controller_manager_ready && webhook_ready && controller_live
}

# --- CPU weight ------------------------------------------------------------------------------

# Each process here starts in a session of its own (`start`), and Linux's autogroup scheduler
# (on by default: /proc/sys/kernel/sched_autogroup_enabled) shares the CPU between sessions, not
# threads: the API server gets as much as a whole session of other work (a benchmark's relay
# servers and load generators, a cargo build), and a plain `nice`/`renice` only ranks threads
# within their own session. A control plane that stands in for nodes of its own gets more with
# CONTROL_PLANE_NICE < 0, written to the process's autogroup (lowering it needs CAP_SYS_NICE).
weigh() { # NAME...
  local name pid
  [ "$CPU_NICE" = 0 ] && return 0
  for name in "$@"; do
    if ! pid="$(live_pid "$name")"; then
      say "CONTROL_PLANE_NICE=$CPU_NICE not applied to $name: it is not running"
    elif [ ! -w "/proc/$pid/autogroup" ]; then
      say "CONTROL_PLANE_NICE=$CPU_NICE not applied to $name: this kernel has no scheduler autogroups"
    elif [ "$(cat "/proc/$pid/autogroup")" = "$(cat /proc/self/autogroup)" ]; then
      say "CONTROL_PLANE_NICE=$CPU_NICE not applied to $name: it shares this shell's session"
    elif ! echo "$CPU_NICE" 2>/dev/null >"/proc/$pid/autogroup"; then
      say "CONTROL_PLANE_NICE=$CPU_NICE not applied to $name: not permitted (a negative value needs CAP_SYS_NICE)"
    else
      say "$name: $(cat "/proc/$pid/autogroup")"
    fi
  done
}

# --- up --------------------------------------------------------------------------------------

UP_DONE=0
up() {
  local began=$SECONDS
  [ -x "$KUBECTL" ] && [ -x "$HELM" ] || die "kubectl and helm are needed in target/tools/bin: run make tools"
  case "$AUDIT" in
    0 | 1) ;;
    *) die "CONTROL_PLANE_AUDIT=$AUDIT: say 1 (write the audit log) or 0 (no audit log)" ;;
  esac
  build
  if healthy && [ "$(cat "$STATE/cert-manager-args" 2>/dev/null)" = "${CONTROL_PLANE_CERT_MANAGER_ARGS:-}" ] &&
    [ "$(cat "$STATE/audit" 2>/dev/null)" = "$AUDIT" ]; then
    weigh etcd kube-apiserver
    say "already up and healthy (reused)"
    echo "$STATE/kubeconfig"
    return 0
  fi
  stop_all
  rm -rf "$STATE"
  mkdir -p "$STATE/pids" "$STATE/logs" "$STATE/kubeconfigs" "$STATE/etcd"
  chmod 700 "$STATE/etcd"
  # Any failure from here on stops what was started.
  trap 'if [ "$UP_DONE" != 1 ]; then say "up failed: stopping what was started"; stop_all; fi' EXIT

  local ports
  read -r -a ports <<<"$(free_ports 8)"
  cat >"$STATE/ports.env" <<EOF
ETCD_PORT=${ports[0]}
ETCD_PEER_PORT=${ports[1]}
APISERVER_PORT=${ports[2]}
KCM_PORT=${ports[3]}
WEBHOOK_PORT=${ports[4]}
CM_HEALTHZ_PORT=${ports[5]}
CM_METRICS_PORT=${ports[6]}
ETCD_HTTP_PORT=${ports[7]}
EOF
  load_env
  make_pki
  local pki="$STATE/pki"

  # gRPC (the API server's client) and HTTP (/health, /metrics) on listeners of their own, as
  # etcd recommends for production: sharing one port, etcd serves gRPC through Go's HTTP/2
  # server, which writes every response of a connection from one goroutine, a frame at a time.
  start etcd --name relay-tls --data-dir "$STATE/etcd" \
    --listen-client-urls "https://127.0.0.1:$ETCD_PORT" --advertise-client-urls "https://127.0.0.1:$ETCD_PORT" \
    --listen-client-http-urls "https://127.0.0.1:$ETCD_HTTP_PORT" \
    --listen-peer-urls "https://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "https://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "relay-tls=https://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state new \
    --cert-file "$pki/etcd.crt" --key-file "$pki/etcd.key" --trusted-ca-file "$pki/etcd-ca.crt" --client-cert-auth \
    --peer-cert-file "$pki/etcd.crt" --peer-key-file "$pki/etcd.key" --peer-trusted-ca-file "$pki/etcd-ca.crt" \
    --peer-client-cert-auth --unsafe-no-fsync --log-level warn
  wait_for 30 etcd etcd_ready

  # Metadata for every request: who (user, groups), the verb, and the object (resource,
  # namespace, name); the RequestReceived stage is left out (each request is logged once done).
  cat >"$STATE/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
EOF
  local audit=(--audit-log-path "$STATE/audit.log" --audit-policy-file "$STATE/audit-policy.yaml" --audit-log-format json)
  [ "$AUDIT" = 1 ] || audit=()
  echo "$AUDIT" >"$STATE/audit"
  start kube-apiserver --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --cert-dir "$pki" --tls-cert-file "$pki/kube-apiserver.crt" --tls-private-key-file "$pki/kube-apiserver.key" \
    --client-ca-file "$pki/cluster-ca.crt" \
    --requestheader-client-ca-file "$pki/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
    --etcd-servers "https://127.0.0.1:$ETCD_PORT" --etcd-cafile "$pki/etcd-ca.crt" \
    --etcd-certfile "$pki/apiserver-etcd-client.crt" --etcd-keyfile "$pki/apiserver-etcd-client.key" \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range 10.0.0.0/24 --endpoint-reconciler-type none \
    "${audit[@]}" --profiling=false
  write_kubeconfig "$STATE/kubeconfig" relay-tls-admin \
    --client-certificate "$pki/admin.crt" --client-key "$pki/admin.key" --embed-certs
  write_kubeconfig "$STATE/kubeconfigs/kube-controller-manager.kubeconfig" system:kube-controller-manager \
    --client-certificate "$pki/kube-controller-manager.crt" --client-key "$pki/kube-controller-manager.key" --embed-certs
  wait_for 60 kube-apiserver apiserver_ready

  local kcm_kubeconfig="$STATE/kubeconfigs/kube-controller-manager.kubeconfig"
  start kube-controller-manager --kubeconfig "$kcm_kubeconfig" \
    --authentication-kubeconfig "$kcm_kubeconfig" --authorization-kubeconfig "$kcm_kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --cert-dir "$pki/kube-controller-manager-serving" \
    --leader-elect=false --use-service-account-credentials \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/cluster-ca.crt" \
    --cluster-signing-cert-file "$pki/cluster-ca.crt" --cluster-signing-key-file "$pki/cluster-ca.key" \
    --profiling=false

  # cert-manager: CRDs and RBAC from the pinned release's module, the webhooks pointed at the
  # local webhook by url: (the chart's webhook.url.host) with its CA as caBundle.
  local cm_dir
  cm_dir="$(module_dir github.com/cert-manager/cert-manager "$CERT_MANAGER_VERSION")"
  kc create namespace cert-manager >/dev/null
  kc apply --server-side -f "$cm_dir/deploy/crds/" >/dev/null
  "$HELM" template cert-manager "$cm_dir/deploy/charts/cert-manager" --namespace cert-manager \
    --kube-version "$KUBERNETES_VERSION" --set crds.enabled=false --set cainjector.enabled=false \
    --set startupapicheck.enabled=false --set "webhook.url.host=127.0.0.1:$WEBHOOK_PORT" |
    python3 -c '
import base64, sys, yaml
keep = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
        "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
ca = base64.b64encode(open(sys.argv[1], "rb").read()).decode()
out = []
for doc in yaml.safe_load_all(sys.stdin):
    if not doc or doc.get("kind") not in keep:
        continue
    for hook in doc.get("webhooks", []):
        hook["clientConfig"]["caBundle"] = ca
    # Nothing injects the CA here: the caBundle is set above.
    doc["metadata"].get("annotations", {}).pop("cert-manager.io/inject-ca-from-secret", None)
    out.append(doc)
yaml.safe_dump_all(out, sys.stdout)' "$pki/webhook-ca.crt" >"$STATE/cert-manager.yaml"
  kc apply -f "$STATE/cert-manager.yaml" >/dev/null
  kubeconfig_for cert-manager cert-manager-webhook >/dev/null
  kubeconfig_for cert-manager cert-manager >/dev/null

  start cert-manager-webhook --listen "127.0.0.1:$WEBHOOK_PORT" \
    --kubeconfig "$STATE/kubeconfigs/cert-manager.cert-manager-webhook.kubeconfig" \
    --tls-cert-file "$pki/cert-manager-webhook.crt" --tls-private-key-file "$pki/cert-manager-webhook.key"
  # CONTROL_PLANE_CERT_MANAGER_ARGS: more flags for cert-manager's controller (make bench-real
  # raises its client rate limit with them); recorded, so `up` reuses only a plane started alike.
  local extra_args
  read -r -a extra_args <<<"${CONTROL_PLANE_CERT_MANAGER_ARGS:-}"
  start cert-manager-controller --kubeconfig "$STATE/kubeconfigs/cert-manager.cert-manager.kubeconfig" \
    --cluster-resource-namespace cert-manager --leader-election-namespace kube-system \
    --healthz-listen-address "127.0.0.1:$CM_HEALTHZ_PORT" --metrics-listen-address "127.0.0.1:$CM_METRICS_PORT" \
    "${extra_args[@]}"
  echo "${CONTROL_PLANE_CERT_MANAGER_ARGS:-}" >"$STATE/cert-manager-args"
  kc wait --for condition=Established --timeout 30s -f "$cm_dir/deploy/crds/" >/dev/null
  wait_for 30 kube-controller-manager controller_manager_ready
  wait_for 30 cert-manager-webhook webhook_ready
  wait_for 30 cert-manager-controller controller_leads
  UP_DONE=1
  weigh etcd kube-apiserver
  write_env
  local audited="an audit log in $STATE/audit.log"
  [ "$AUDIT" = 1 ] || audited="no audit log (CONTROL_PLANE_AUDIT=0)"
  say "up in $((SECONDS - began)) s: etcd $ETCD_VERSION, kube-apiserver and kube-controller-manager $KUBERNETES_VERSION, cert-manager $CERT_MANAGER_VERSION; $audited; logs in $STATE/logs"
  echo "$STATE/kubeconfig"
}

write_env() {
  cat >"$STATE/env" <<EOF
export KUBECONFIG=$STATE/kubeconfig
export RELAY_TLS_CONTROL_PLANE_DIR=$STATE
export RELAY_TLS_APISERVER=https://127.0.0.1:$APISERVER_PORT
export RELAY_TLS_AUDIT_LOG=$STATE/audit.log
EOF
}

case "${1:-}" in
  up) up ;;
  down)
    stop_all
    rm -rf "$STATE/etcd" "$STATE/ports.env" "$STATE/env"
    say "down: every process stopped"
    ;;
  env)
    healthy || die "not up: run scripts/control-plane.sh up (or make cluster)"
    cat "$STATE/env"
    ;;
  status)
    if healthy; then say "up and healthy; kubeconfig $STATE/kubeconfig"; else die "not up"; fi
    ;;
  kubeconfig-for)
    [ $# -eq 3 ] || die "usage: scripts/control-plane.sh kubeconfig-for NAMESPACE SERVICEACCOUNT"
    kubeconfig_for "$2" "$3"
    ;;
  pid)
    [ $# -eq 2 ] || die "usage: scripts/control-plane.sh pid NAME (one of: ${PROCESSES[*]})"
    live_pid "$2" || die "$2 is not running: run scripts/control-plane.sh up (or make cluster)"
    ;;
  build) build ;;
  *) die "usage: scripts/control-plane.sh up|down|env|status|kubeconfig-for NAMESPACE SERVICEACCOUNT|pid NAME|build" ;;
esac
