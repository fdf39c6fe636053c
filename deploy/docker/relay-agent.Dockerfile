# relay-agent: follows its client TLS Secret and keeps an mTLS connection to the relay server.
#
# Built by `make images` (scripts/images.sh), which stages the build context
# target/images/relay-agent/rootfs: the stripped release binary, exactly the shared libraries it
# links, Debian's CA bundle, and /etc/passwd and /etc/group naming the nonroot user 65532. No
# base image, no shell, no package manager. By hand, after `scripts/images.sh`:
#
#   podman build -f deploy/docker/relay-agent.Dockerfile --build-arg VERSION=0.1.0 \
#     --build-arg REVISION=$(git rev-parse HEAD) -t ghcr.io/relay-tls/relay-agent:0.1.0 \
#     target/images/relay-agent
#
# The Helm chart deploy/charts/relay-agent runs this image (tag = the chart's appVersion).
FROM scratch
ARG VERSION
ARG REVISION
LABEL org.opencontainers.image.title="relay-agent" \
      org.opencontainers.image.description="relay agent: client TLS Secret watcher and mTLS relay connection" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/relay-tls/relay-tls" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY rootfs/ /
# nonroot (65532:65532), which the chart's securityContext also requires (runAsNonRoot).
USER 65532:65532
# 9091: admin (/live, /ready, /metrics).
EXPOSE 9091
ENTRYPOINT ["/usr/local/bin/relay-agent"]
