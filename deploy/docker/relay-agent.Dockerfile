# syntax=docker/dockerfile:1
#
# relay-agent: follows its client TLS Secret and keeps an mTLS connection to the relay server.
# Build from the repository root:
#
#   docker build -f deploy/docker/relay-agent.Dockerfile -t ghcr.io/relay-tls/relay-agent:0.1.0 .
#
# The Helm chart deploy/charts/relay-agent runs this image (tag = the chart's appVersion).

# Builder: the workspace's release build. Debian bookworm, as the runtime image below: the binary
# links glibc dynamically and must not need a newer one than the runtime has. protoc comes
# vendored (protoc-bin-vendored), ring brings its own assembly: nothing else to install.
FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Every workspace member must be present for cargo to load the workspace, even those not built.
COPY Cargo.toml Cargo.lock ./
COPY pki pki
COPY runtime runtime
COPY proto proto
COPY issuer issuer
COPY agent agent
COPY kube-sandbox kube-sandbox
COPY cert-manager-sim cert-manager-sim
COPY tests tests
COPY demo demo
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile agent --locked -p relay-agent --bin relay-agent \
    && install -D -m 0755 target/agent/relay-agent /out/relay-agent

# Runtime: distroless with glibc and libgcc (cc), no shell, no package manager; user nonroot
# (65532:65532), which the chart's securityContext also requires (runAsNonRoot).
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="relay-agent" \
      org.opencontainers.image.description="relay agent: client TLS Secret watcher and mTLS relay connection" \
      org.opencontainers.image.source="https://github.com/relay-tls/relay-tls" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/relay-agent /usr/local/bin/relay-agent
USER 65532:65532
# 9091: admin (/live, /ready, /metrics).
EXPOSE 9091
ENTRYPOINT ["/usr/local/bin/relay-agent"]
