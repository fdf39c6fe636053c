# relay-issuer: the cert-manager external issuer (`relay-issuer controller`) and the relay server
# (`relay-issuer server`).
#
# Built by `make images` (scripts/images.sh), which stages the build context
# target/images/relay-issuer/rootfs: the stripped release binary, exactly the shared libraries
# it links, Debian's CA bundle, and /etc/passwd and /etc/group naming the nonroot user 65532.
# No base image, no shell, no package manager. By hand, after `scripts/images.sh`:
#
#   podman build -f deploy/docker/relay-issuer.Dockerfile --build-arg VERSION=0.1.0 \
#     --build-arg REVISION=$(git rev-parse HEAD) -t ghcr.io/relay-tls/relay-issuer:0.1.0 \
#     target/images/relay-issuer
#
# The Helm chart deploy/charts/relay-issuer runs this image (tag = the chart's appVersion).
FROM scratch
ARG VERSION
ARG REVISION
LABEL org.opencontainers.image.title="relay-issuer" \
      org.opencontainers.image.description="cert-manager external issuer and relay server for relay agent client certificates" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/relay-tls/relay-tls" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY rootfs/ /
# nonroot (65532:65532), which the chart's securityContext also requires (runAsNonRoot).
USER 65532:65532
# 9900: relay gRPC (server); 9402 / 9403: admin (/live, /ready, /metrics) of controller / server.
EXPOSE 9900 9402 9403
ENTRYPOINT ["/usr/local/bin/relay-issuer"]
CMD ["--help"]
