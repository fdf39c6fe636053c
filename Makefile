# relay-tls: every routine command. `make help` lists them.

CARGO ?= cargo
FUZZ_SECONDS ?= 60
# cargo-fuzz needs nightly flags: use a nightly toolchain when one is installed, else let the
# stable compiler accept them.
FUZZ_TOOLCHAIN := $(shell rustup toolchain list 2>/dev/null | grep -q '^nightly' && echo +nightly)
FUZZ_ENV := $(if $(FUZZ_TOOLCHAIN),,RUSTC_BOOTSTRAP=1)

.PHONY: help all build test images test-images lint crds fmt tools demo bench-sign bench-sandbox bench-issuer bench-agent bench-relay bench-relay-real fuzz fuzz-build ci clean cluster cluster-down cluster-smoke fidelity-real e2e bench-real

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

all: build

build: ## build every crate (debug)
	$(CARGO) build --workspace --all-targets

test: tools ## install the tools, then run every test (unit, property, openssl, python cryptography, kubectl, helm); a missing tool fails
	RELAY_TLS_REQUIRE_TOOLS=1 $(CARGO) test --workspace --all-targets

images: tools ## OCI images of relay-issuer and relay-agent with podman (FROM scratch; tag = the charts' appVersion), saved as target/images/*.oci.tar
	scripts/images.sh

test-images: images ## run the images as the charts do (sandbox, relay server, user 65532, read-only root, no capabilities)
	RELAY_TLS_REQUIRE_TOOLS=1 RELAY_TLS_IMAGES=1 $(CARGO) test -p relay-sandbox --test images

lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

crds: ## regenerate deploy/crds (and the relay-issuer chart's copies) from the API types (tests fail when they are stale)
	$(CARGO) run -q -p relay-issuer -- crds --out deploy/crds
	cp deploy/crds/*.yaml deploy/charts/relay-issuer/crds/

fmt: ## format the code
	$(CARGO) fmt --all

tools: ## install what the tests need (idempotent)
	scripts/tools.sh

demo: ## the whole lifecycle on the sandbox, narrated (KEEP=1 keeps it running; kubeconfig in target/demo)
	scripts/tools.sh
	$(CARGO) build -q -p relay-issuer -p relay-agent
	$(CARGO) run -q -p relay-demo -- $(if $(KEEP),--keep,)

bench-sign: ## certificates/s of the sign path on one core, beside openssl speed ecdsap256
	python3 scripts/bench-sign.py

bench-sandbox: ## sandbox writes/s with 100 open watches receiving every event, and fan-out latency
	$(CARGO) run --release -p kube-sandbox --example bench_sandbox -- --writes 20000 --watchers 100

bench-issuer: ## 10,000 CertificateRequests at once: requests/s, approval→Ready p50/p99, and idle single-request latency
	$(CARGO) run --release -p relay-sandbox --example bench_issuer -- --requests 10000 --single 50

# AGENTS, REPLICAS and RELAY_BENCH_ARGS (e.g. --kill-one [--agents-stay-down] --steady 60) size the run.
AGENTS ?= 45000
REPLICAS ?= 3
bench-relay: tools ## a fleet against real relay-issuer server replicas on the sandbox: connect storm, memory/CPU per session, heartbeat p99, RelayCluster status lag and writes, replica loss (RELAY_BENCH_ARGS=--kill-one)
	$(CARGO) build --release -p relay-issuer --bin relay-issuer -p relay-sandbox --example bench_relay
	target/release/examples/bench_relay --agents $(AGENTS) --replicas $(REPLICAS) $(RELAY_BENCH_ARGS)

# The control plane's CPU weight in bench-relay-real (its autogroup's nice;
# docs/fleet-benchmark-real.md): it stands in for nodes of its own beside the replicas and
# load generators. The replicas run as the relay-issuer chart's server ServiceAccount, with its
# Role (the chart's Deployments themselves never start: the plane has no kubelet).
BENCH_CONTROL_PLANE_NICE ?= -2
# Whether the bench's kube-apiserver writes an audit log: 0, as kube-apiserver runs by default.
# `make cluster` writes one for `make e2e`'s least-privilege check; the bench reads none, and
# writing it cost the API server about 0.35 ms of CPU per status write
# (docs/fleet-benchmark-real.md).
BENCH_CONTROL_PLANE_AUDIT ?= 0
# Threads per replica and per load generator: each stands in for a Pod or an agent with one
# CPU, not for a process that may use both of this machine's cores (docs/fleet-benchmark-real.md,
# runs 33-35).
BENCH_THREADS ?= 1
bench-relay-real: tools ## make bench-relay against the real control plane (make cluster, the run, make cluster-down)
	$(CARGO) build --release -p relay-issuer --bin relay-issuer -p relay-sandbox --example bench_relay
	CONTROL_PLANE_NICE=$(BENCH_CONTROL_PLANE_NICE) CONTROL_PLANE_AUDIT=$(BENCH_CONTROL_PLANE_AUDIT) $(MAKE) cluster
	status=0; target/tools/bin/helm upgrade --install relay-issuer deploy/charts/relay-issuer --namespace relay-tls \
	  --create-namespace --kubeconfig target/control-plane/kubeconfig >/dev/null \
	  && server_kubeconfig=$$(scripts/control-plane.sh kubeconfig-for relay-tls relay-issuer-server) \
	  && apiserver_pid=$$(scripts/control-plane.sh pid kube-apiserver) && etcd_pid=$$(scripts/control-plane.sh pid etcd) \
	  && kcm_pid=$$(scripts/control-plane.sh pid kube-controller-manager) \
	  || { scripts/control-plane.sh down; exit 1; }; \
	  RELAY_BENCH_KUBECONFIG=$(abspath target/control-plane/kubeconfig) RELAY_BENCH_SERVER_KUBECONFIG=$$server_kubeconfig \
	  RELAY_BENCH_CONTROL_PLANE_PIDS="kube-apiserver=$$apiserver_pid,etcd=$$etcd_pid,kube-controller-manager=$$kcm_pid" \
	  target/release/examples/bench_relay --agents $(AGENTS) --replicas $(REPLICAS) \
	  --replica-threads $(BENCH_THREADS) --generator-threads $(BENCH_THREADS) $(RELAY_BENCH_ARGS) || status=$$?; \
	  scripts/control-plane.sh down; exit $$status

bench-agent: ## relay-agent footprint: stripped release binary size and steady resident memory with one connection
	scripts/bench-agent.sh

cluster: tools ## a real control plane on 127.0.0.1 (etcd, kube-apiserver, kube-controller-manager, cert-manager), built once into a cache; prints the kubeconfig path
	scripts/control-plane.sh up

cluster-down: ## stop every process of the control plane
	scripts/control-plane.sh down

cluster-smoke: tools ## bring the control plane up, prove cert-manager/tokens/RBAC/audit work, take it down, check nothing is left
	scripts/control-plane-smoke.sh

fidelity-real: tools ## the sandbox's fidelity suites against a fresh real control plane (then down, also on failure): tests run, failed, sandbox-only
	scripts/fidelity-real.sh

# The test brings the plane up itself too (reusing the healthy one `make cluster` started), and
# a second one (the workload plane of remote signing, state in target/control-plane-workload);
# both go down afterwards whether the test passed or not. With RELAY_E2E_KUBECONFIG (an
# admin kubeconfig of a cluster that runs cert-manager) no local plane is built or started.
E2E_TEST = $(CARGO) build -q -p relay-issuer --bin relay-issuer -p relay-agent --bin relay-agent && \
  RELAY_E2E_BINARIES=$(abspath target/debug) RELAY_TLS_REQUIRE_TOOLS=1 $(CARGO) test -p relay-sandbox --test real_e2e -- --ignored --nocapture
e2e: tools ## the relay lifecycle on a real control plane with cert-manager (make cluster, helm install both charts, the scenarios, make cluster-down); RELAY_E2E_KUBECONFIG=... for another cluster
ifdef RELAY_E2E_KUBECONFIG
	export RELAY_E2E_KUBECONFIG=$(abspath $(RELAY_E2E_KUBECONFIG)); $(E2E_TEST)
else
	$(MAKE) cluster
	status=0; $(E2E_TEST) || status=$$?; \
	  scripts/control-plane.sh down; \
	  RELAY_TLS_CONTROL_PLANE_DIR=$(abspath target/control-plane-workload) scripts/control-plane.sh down; exit $$status
endif

# The bench's own plane (state in target/control-plane-bench), fresh, and down afterwards
# whether it passed or not; our controller is a release build (cert-manager's is optimised too).
BENCH_REAL_CERTIFICATES ?= 1000
BENCH_REAL_ROUNDS ?= 3
BENCH_REAL_PLANE = RELAY_TLS_CONTROL_PLANE_DIR=$(abspath target/control-plane-bench)
bench-real: tools ## cert-manager's CA ClusterIssuer vs our RelayClusterIssuer on a real plane: BENCH_REAL_CERTIFICATES (1000) Certificates at once, BENCH_REAL_ROUNDS (3) alternating rounds, medians and ratios; BENCH_REAL_CERT_MANAGER_ARGS for cert-manager's flags
	$(CARGO) build -q --release -p relay-issuer --bin relay-issuer
	$(CARGO) build -q -p relay-sandbox --example bench_real
	$(BENCH_REAL_PLANE) scripts/control-plane.sh down
	status=0; $(BENCH_REAL_PLANE) CONTROL_PLANE_CERT_MANAGER_ARGS="$(BENCH_REAL_CERT_MANAGER_ARGS)" \
	  RELAY_E2E_BINARIES=$(abspath target/release) target/debug/examples/bench_real \
	  --certificates $(BENCH_REAL_CERTIFICATES) --rounds $(BENCH_REAL_ROUNDS) || status=$$?; \
	  $(BENCH_REAL_PLANE) scripts/control-plane.sh down; exit $$status

fuzz-build: ## check that the fuzz targets compile (what CI runs)
	cd fuzz && CARGO_TARGET_DIR=../target $(CARGO) build --bins

fuzz: ## fuzz CSR/PEM parsing and signing for FUZZ_SECONDS per target (not in CI)
	scripts/tools.sh fuzz
	cd fuzz && for target in sign_csr csr_structure load_ca secret_manifest; do \
	  mkdir -p corpus/$$target && $(FUZZ_ENV) $(CARGO) $(FUZZ_TOOLCHAIN) fuzz run $$target corpus/$$target seeds/$$target -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

ci: tools lint test test-images fuzz-build demo e2e ## what .ci/run runs (e2e last: it builds the real control plane once per version into a cache)

clean: ## remove build output
	$(CARGO) clean
	rm -rf fuzz/target
