# syntax=docker/dockerfile:1
#
# relay-issuer: the cert-manager external issuer (`relay-issuer controller`) and the relay server
# (`relay-issuer server`). Build from the repository root:
#
#   docker build -f deploy/docker/relay-issuer.Dockerfile -t ghcr.io/relay-tls/relay-issuer:0.1.0 .
#
# The Helm chart deploy/charts/relay-issuer runs this image (tag = the chart's appVersion).

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
    cargo build --release --locked -p relay-issuer --bin relay-issuer \
    && install -D -m 0755 target/release/relay-issuer /out/relay-issuer

# Runtime: distroless with glibc and libgcc (cc), no shell, no package manager; user nonroot
# (65532:65532), which the chart's securityContext also requires (runAsNonRoot).
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="relay-issuer" \
      org.opencontainers.image.description="cert-manager external issuer and relay server for relay agent client certificates" \
      org.opencontainers.image.source="https://github.com/relay-tls/relay-tls" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/relay-issuer /usr/local/bin/relay-issuer
USER 65532:65532
# 9900: relay gRPC (server); 9402 / 9403: admin (/live, /ready, /metrics) of controller / server.
EXPOSE 9900 9402 9403
ENTRYPOINT ["/usr/local/bin/relay-issuer"]
CMD ["--help"]
