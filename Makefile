# Aegis build entry points. `make build` produces bin/aegis plus its role links.
PREFIX ?= /usr/local
BIN := bin/aegis
SRC := $(shell find src ffi guest -name '*.ts' 2>/dev/null) package.json build.ts

.PHONY: build setup test test-unit install install-kit bench clean deps release formula mutate

build: $(BIN)

$(BIN): $(SRC)
	bun run build.ts

# Everything a fresh Debian 12 machine needs (run as root): QEMU and the guest
# tooling from apt (apt lists are refreshed: the guest kernel is fetched with
# `apt-get download`, and the setup tests mirror those lists), xz-utils, gpgv
# and the Debian keyring for `aegis setup` over HTTP, ruby for `ruby -c` on the
# Homebrew formulae, Bun from npm, then our npm dependencies.
APT_PACKAGES := qemu-system-x86 qemu-utils qemu-system-common busybox-static e2fsprogs zstd cpio curl ca-certificates docker-registry skopeo openssl debootstrap umoci xz-utils gpgv debian-archive-keyring ruby tmux nftables iproute2 socat haproxy dnsmasq-base chromium containerd runc golang-github-containerd-containerd-dev containernetworking-plugins
deps:
	@if [ "$$(id -u)" = 0 ]; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	else echo "make deps: not root; assuming these are installed: $(APT_PACKAGES)" >&2; fi
	command -v bun >/dev/null 2>&1 || npm i -g bun
	bun install --frozen-lockfile

# Prepare the guest assets (kernel, initramfs, tools disk, base rootfs) under AEGIS_HOME.
setup: build
	$(BIN) setup

# Bun 1.4 ignores a `timeout` in bunfig.toml: without --timeout every test and
# every beforeAll/afterAll hook that sets no timeout of its own gets 5 s, which a
# VM test's clean-up (aegis down, QEMU exit) exceeds on a busy machine.
TEST_TIMEOUT_MS := 60000
test: build
	bun test --timeout $(TEST_TIMEOUT_MS)

test-unit:
	bun test --timeout $(TEST_TIMEOUT_MS) test/unit

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/aegis
	for l in aegisd aegis-gateway aegis-harness aegis-agent aegis-vmm-worker aegis-mcp-guest aegis-mcp containerd-shim-aegis-v2; do ln -sf aegis $(DESTDIR)$(PREFIX)/bin/$$l; done

# Install the Agent Kit manifest into AEGIS_HOME (starts the daemon if needed).
install-kit: build
	$(BIN) up
	$(BIN) kit install kits/agent.yaml

# Cross-compiled release tarballs, SHA256SUMS and a smoke test in dist/ (scripts/release.ts).
release:
	bun run scripts/release.ts

# Homebrew formulae for that release in dist/homebrew/ (scripts/formula.ts), syntax-checked.
formula:
	bun run scripts/formula.ts
	for f in dist/homebrew/*.rb; do ruby -c $$f || exit 1; done

# Every benchmark (bench/_*.ts are shared helpers), then the one summary table of them all.
# bench/boot-ab.ts is an A/B tool that needs the binaries to compare (see its usage), not a benchmark of main.
BENCH_SKIP := bench/summary.ts bench/boot-ab.ts
bench: build
	for b in bench/[a-z]*.ts; do case " $(BENCH_SKIP) " in *" $$b "*) continue;; esac; bun run $$b || exit 1; done
	bun run bench/summary.ts

clean:
	rm -rf bin dist

# Mutation testing of the pure policy modules (scripts/mutate.ts): per-module
# scores to bench/results/mutation.json. Not part of CI; run it before resolving
# an issue that touches those modules.
mutate:
	bun run scripts/mutate.ts
