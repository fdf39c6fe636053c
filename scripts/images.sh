#!/usr/bin/env bash
# `make images`: the OCI images of relay-issuer and relay-agent, built with podman from
# deploy/docker/*.Dockerfile and nothing a registry must serve.
#
# Each image is `FROM scratch` plus a root filesystem staged here under
# target/images/<name>/rootfs:
#   /usr/local/bin/<name>               the release binary, stripped
#   /lib/x86_64-linux-gnu/*, /lib64/... exactly the shared libraries `ldd` says it links
#                                       (glibc's loader, libc, libm, libgcc_s) from this machine
#   /etc/ssl/certs/ca-certificates.crt  Debian's CA bundle
#   /etc/passwd, /etc/group             the nonroot user and group 65532
# No shell, no package manager. The tag is the charts' appVersion, so the charts' defaults
# name exactly these images; the OCI labels carry that version, the git revision, the source
# and the licence. Each image is also saved as an OCI archive,
# target/images/<name>-<version>.oci.tar (`podman load -i` / `skopeo copy oci-archive:...`).
#
#   scripts/images.sh            build both, save the archives, print their sizes
#   scripts/images.sh podman ... run podman with the flags these machines need (the image test,
#                                tests/tests/images.rs, runs podman this way)
#
# RELAY_IMAGE_REPOSITORY (default ghcr.io/relay-tls, the charts' default) names the images for
# another registry, e.g. registry.example.com/relay.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { echo "images: $*" >&2; }
die() {
  say "$*"
  exit 1
}

# podman as these machines run it: runc (crun fails on this cgroup set-up), cgroupfs (no
# systemd), events to a file (no journald); a container may open as many files as this shell
# and run 1,024 processes and threads (podman's defaults are above what may be set here:
# "error setting rlimit type 7: operation not permitted", and type 6 for nproc at this shell's
# own limit).
podman_cmd() {
  if [ "${1:-}" = run ]; then
    shift
    set -- run "--ulimit=nofile=$(ulimit -Sn):$(ulimit -Hn)" "--ulimit=nproc=1024:1024" "$@"
  fi
  podman --runtime runc --cgroup-manager cgroupfs --events-backend file "$@"
}

if [ "${1:-}" = podman ]; then
  shift
  podman_cmd "$@"
  exit
fi

command -v podman >/dev/null || die "podman is not installed: run scripts/tools.sh (it installs Debian's podman and runc)"
command -v strip >/dev/null || die "strip is not installed: run scripts/tools.sh (Debian's binutils)"

# The version: both charts' appVersion, which must agree.
app_version() { sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "deploy/charts/$1/Chart.yaml"; }
VERSION="$(app_version relay-issuer)"
[ -n "$VERSION" ] || die "deploy/charts/relay-issuer/Chart.yaml has no appVersion"
[ "$VERSION" = "$(app_version relay-agent)" ] ||
  die "the charts disagree on appVersion (relay-issuer $VERSION, relay-agent $(app_version relay-agent)): set both to the version being built"
REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [ "$REVISION" != unknown ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  REVISION="$REVISION-dirty"
fi
# Image creation time: the commit's, so that the same commit gives the same image config.
CREATED="$(git log -1 --format=%ct 2>/dev/null || echo 0)"
REPOSITORY="${RELAY_IMAGE_REPOSITORY:-ghcr.io/relay-tls}"
CARGO="${CARGO:-cargo}"

say "building the binaries (release; the agent with the size-optimised profile)"
"$CARGO" build --release --locked -p relay-issuer --bin relay-issuer
"$CARGO" build --profile agent --locked -p relay-agent --bin relay-agent

# The shared libraries `ldd` resolves for BINARY, one path per line (the loader included).
linked_libraries() {
  ldd "$1" | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }'
}

# Stages NAME's root filesystem from BINARY.
stage() { # NAME BINARY
  local name="$1" binary="$2" rootfs="target/images/$1/rootfs" lib
  rm -rf "target/images/$name"
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  install -m 0755 "$binary" "$rootfs/usr/local/bin/$name"
  strip --strip-all "$rootfs/usr/local/bin/$name"
  while read -r lib; do
    # At the path the binary's loader looks for it, as a regular file (no links into a merged
    # /usr that the image does not have).
    mkdir -p "$rootfs$(dirname "$lib")"
    install -m 0755 "$lib" "$rootfs$lib"
  done < <(linked_libraries "$binary")
  [ -f /etc/ssl/certs/ca-certificates.crt ] || die "/etc/ssl/certs/ca-certificates.crt is missing: install Debian's ca-certificates"
  install -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
  chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group"
}

build() { # NAME BINARY
  local name="$1" image="$REPOSITORY/$1:$VERSION" archive="target/images/$1-$VERSION.oci.tar"
  stage "$name" "$2"
  # --no-cache: an unchanged root filesystem must still get this build's labels (the layer
  # cache reused an image whose revision label named an older commit).
  podman_cmd build --quiet --no-cache --timestamp "$CREATED" \
    --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" \
    -f "deploy/docker/$name.Dockerfile" -t "$image" "target/images/$name" >/dev/null
  rm -f "$archive"
  podman_cmd save --quiet --format oci-archive -o "$archive" "$image"
  local size
  size="$(podman_cmd image inspect --format '{{.Size}}' "$image")"
  say "$image: $size bytes uncompressed ($(du -b "$archive" | cut -f1) bytes as $archive)"
  echo "$name $image $size $archive" >>target/images/sizes.txt
}

mkdir -p target/images
rm -f target/images/sizes.txt
build relay-issuer target/release/relay-issuer
build relay-agent target/agent/relay-agent
