#!/usr/bin/env bash
# Installs what the tests need, idempotently: openssl (independent verifier), Python's
# `cryptography` (independent CSR/certificate maker), rustfmt and clippy.
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

if ! python3 -c 'import cryptography' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check 'cryptography>=42' \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'cryptography>=42'
fi

if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

if [ "${1:-}" = "fuzz" ] && ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

echo "tools: openssl $(openssl version | cut -d' ' -f2), python cryptography $(python3 -c 'import cryptography; print(cryptography.__version__)')"
