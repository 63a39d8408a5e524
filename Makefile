# tokengate — every command installs what it needs (idempotently) from the package registries.
#   make dev    run the gateway locally with a demo provider and print curl lines and the
#               console's URL (the demo configuration, wrangler.demo.toml)
#   make check-config
#               check wrangler.toml, the production configuration `wrangler deploy` reads
#               (WRANGLER_CONFIG=FILE for another), and print the Worker secrets it needs
#   make test   run every test
#   make bench  run the benchmarks
#   make bench-profile
#               CPU profiles of tokengate's cached proxy path and of a cold burst → bench/PROFILE.md
#   make fuzz   fuzz the core's parsers and its two machines (long; see FUZZING.md)

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
export WRANGLER_SEND_METRICS := false
export CLOUDFLARE_CF_FETCH_ENABLED := false
export ESBUILD_BIN := $(CURDIR)/node_modules/.bin/esbuild
WASM_BINDGEN_BIN = $(shell command -v wasm-bindgen)
export WASM_BINDGEN_BIN

.PHONY: dev test bench console bench-worker bench-npm bench-forwarder bench-profile worker-profile setup setup-browser setup-schemathesis worker worker-test \
  check-config check-config-bin npm-pkg lint test-native test-worker test-npm fuzz clean

setup: node_modules/.installed
	@.ci/setup-tools rust

setup-browser:
	@.ci/setup-tools chromium

setup-schemathesis:
	@.ci/setup-tools schemathesis

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# The wrangler configuration `wrangler deploy` would use, checked before anything is built: the
# core's own validation (the messages the Worker answers with), then the `wrangler secret put`
# lines it needs (tools/check-config). Each wrangler file's [build] command runs it with itself
# as WRANGLER_CONFIG, so `wrangler deploy` (and --dry-run) stops here on a mistake.
WRANGLER_CONFIG ?= wrangler.toml
check-config:
	@cargo run --quiet -p tokengate-check-config -- $(WRANGLER_CONFIG)

# The check's binary alone (target/debug/tokengate-check-config), for tests/check-config.test.mjs.
check-config-bin:
	cargo build --quiet -p tokengate-check-config

# The Worker as deployed: build/index.js + build/index_bg.wasm (the wrangler files' `main`).
worker: setup
	worker-build --release --out-dir ../build worker

# The Worker the test suites run: the same code with feature `test-clock`, which lets the
# suites set the time through the TOKENGATE_CLOCK service binding. Into build-test/.
worker-test: setup
	worker-build --release --out-dir ../build-test worker --features test-clock

# The npm package: pkg/node (CommonJS) + pkg/web (ES module) + pkg/package.json.
npm-pkg: setup
	.ci/build-npm

# The console the Worker serves at /ui/ (the wrangler files' [assets]): www/ and the package's
# web build, into build-console/ui/ (pkg/web as ui/pkg/), and the OpenAPI document the Worker
# answers GET /openapi.json with (through its ASSETS binding), into build-console/. The package
# is built when it is missing or older than its sources; the copy is made again when anything
# in it changed.
CONSOLE_DIR := build-console
CONSOLE_FILES := $(filter-out www/serve.mjs,$(wildcard www/*))
NPM_SOURCES := $(shell find src npm -type f -not -path '*/tests/*') Cargo.toml Cargo.lock
console: $(CONSOLE_DIR)/ui/index.html

$(CONSOLE_DIR)/ui/index.html: $(CONSOLE_FILES) pkg/web/core_bg.wasm docs/openapi.json
	rm -rf $(CONSOLE_DIR)
	mkdir -p $(CONSOLE_DIR)/ui/pkg
	cp $(CONSOLE_FILES) $(CONSOLE_DIR)/ui/
	cp pkg/web/*.js pkg/web/core_bg.wasm $(CONSOLE_DIR)/ui/pkg/
	cp docs/openapi.json $(CONSOLE_DIR)/openapi.json

pkg/web/core_bg.wasm: $(NPM_SOURCES) | setup
	.ci/build-npm

lint: setup
	$(STAMP)
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p tokengate --target wasm32-unknown-unknown -- -D warnings
	cargo clippy -p tokengate-worker --target wasm32-unknown-unknown --all-features -- -D warnings
	cargo clippy -p tokengate-npm --target wasm32-unknown-unknown --all-targets -- -D warnings
	cargo clippy --locked --manifest-path $(FORWARDER)/Cargo.toml --target wasm32-unknown-unknown \
	  --target-dir target -- -D warnings

# Every node test is bounded: a hung one fails at TEST_TIMEOUT_MS with its name, instead of
# holding the run until CI's limit (a test may set a longer timeout of its own).
TEST_TIMEOUT_MS ?= 300000
NODE_TEST = node --test --test-concurrency=1 --test-timeout=$(TEST_TIMEOUT_MS)
STAMP = @echo "== $@ $$(date -u +%T)"

test-native: setup
	$(STAMP)
	cargo test --workspace

test-worker: worker worker-test check-config-bin console setup-schemathesis setup-browser
	$(STAMP)
	$(NODE_TEST) tests/emulators.test.mjs tests/openapi-emulator.test.mjs tests/worker*.test.mjs \
	  tests/check-config.test.mjs tests/schemathesis.test.mjs tests/schemathesis-gateway.test.mjs \
	  tests/dev.test.mjs

test-npm: npm-pkg setup-browser
	$(STAMP)
	wasm-pack test --node npm --test node
	WASM_BINDGEN_TEST_WEBDRIVER_JSON=$(CURDIR)/.ci/webdriver.json wasm-pack test --headless --chrome \
	  --chromedriver /usr/bin/chromedriver npm --test browser
	$(NODE_TEST) tests/npm*.test.mjs tests/www.test.mjs

test: lint test-native test-worker test-npm

# Every benchmark in one run → bench/RESULTS.md and bench/latency.svg (bench/run.mjs); only
# ratios within one run are meaningful. BENCH_ARGS passes options (see bench/worker.mjs).
bench: worker worker-test npm-pkg bench-forwarder
	node bench/run.mjs $(BENCH_ARGS)

# The Worker part alone (bench/worker.mjs): tokengate beside a passthrough, the Rust forwarder
# and a hand-written gateway, all in workerd; prints, writes nothing.
bench-worker: worker bench-forwarder
	node bench/worker.mjs $(BENCH_ARGS)

# The Rust floor of the Worker bench (bench/baseline/rust-forwarder, its own Cargo workspace):
# the same toolchain as the Worker — cargo for wasm32 with the Worker's release profile, the
# wasm-bindgen CLI with worker-build's output options (`--target module`, state reset, abort
# handler) — and a plain module-Worker entry (shim.js) instead of worker-build's. Into
# bench/baseline/rust-forwarder/build/; rebuilt only when its sources change.
FORWARDER := bench/baseline/rust-forwarder
bench-forwarder: $(FORWARDER)/build/shim.js $(FORWARDER)/build-worker-build/index.js

$(FORWARDER)/build/shim.js: $(FORWARDER)/Cargo.toml $(FORWARDER)/Cargo.lock $(FORWARDER)/src/lib.rs \
  $(FORWARDER)/shim.js | setup
	cargo build --quiet --locked --release --target wasm32-unknown-unknown \
	  --manifest-path $(FORWARDER)/Cargo.toml --target-dir target
	rm -rf $(FORWARDER)/build
	$(WASM_BINDGEN_BIN) target/wasm32-unknown-unknown/release/tokengate_bench_forwarder.wasm \
	  --out-dir $(FORWARDER)/build --out-name index --no-typescript --target module \
	  --experimental-reset-state-function --force-enable-abort-handler
	sed -i 's/^import source /import /' $(FORWARDER)/build/index.js
	cp $(FORWARDER)/shim.js $@

# The same forwarder behind the worker crate's #[event(fetch)] (feature worker-build), built by
# worker-build exactly as the Worker is: its JavaScript entry included.
$(FORWARDER)/build-worker-build/index.js: $(FORWARDER)/Cargo.toml $(FORWARDER)/Cargo.lock \
  $(FORWARDER)/src/lib.rs | setup
	CARGO_TARGET_DIR=$(CURDIR)/target worker-build --release --out-dir build-worker-build \
	  $(FORWARDER) --locked --features worker-build

# The Worker as deployed, with its functions' names, for bench/profile.mjs (into build-profile/):
# worker-build as for `make worker` (the same wasm, byte for byte) with the JavaScript glue left
# unminified, then the wasm's `name` section — which `strip = true` drops at link time — filled
# in from a second link of the same code with the linker told to keep it (bench/wasm-names.mjs
# explains why not `strip = false`, and checks the code is the same before it splices).
worker-profile: setup
	NO_MINIFY=1 worker-build --release --out-dir ../build-profile worker
	cargo rustc --quiet --release --target wasm32-unknown-unknown -p tokengate-worker \
	  --target-dir target/profile -- -C link-arg=--keep-section=name
	rm -rf target/profile/bindgen
	$(WASM_BINDGEN_BIN) target/profile/wasm32-unknown-unknown/release/tokengate_worker.wasm \
	  --out-dir target/profile/bindgen --out-name index --no-typescript --target module \
	  --experimental-reset-state-function --force-enable-abort-handler
	node bench/wasm-names.mjs target/profile/bindgen/index_bg.wasm build-profile/index_bg.wasm

# A CPU profile of tokengate's cached proxy path (bench/profile.mjs): build-profile/ in workerd
# under the bench's 16-client load, sampled through the V8 inspector, then cold bursts of 1,000
# beside the hand-written gateway doing tokengate's duties; the tables of the hottest
# functions by self and total time go to bench/PROFILE.md (a file of its own, not RESULTS.md;
# `make bench` does not run it). build/ only to check the profiled code is the deployed code.
# PROFILE_ARGS passes options (see bench/profile.mjs).
bench-profile: worker worker-profile
	node bench/profile.mjs --out bench/PROFILE.md $(PROFILE_ARGS)

# The npm package's warm token(), client.fetch overhead against plain fetch with the same
# timeout guarantee, and CPU per call (bench/npm.mjs).
bench-npm: npm-pkg
	node bench/npm.mjs

# cargo-fuzz on the stable toolchain (RUSTC_BOOTSTRAP=1), 2.5 million runs per target by
# default; FUZZ_ARGS="60s" for a time budget per target instead, or "60s proxy_path".
fuzz:
	.ci/fuzz $(FUZZ_ARGS)

# The demo configuration, checked quietly first (wrangler dev's own [build] step then finds the
# check built and the Worker up to date).
dev: worker console
	@cargo run --quiet -p tokengate-check-config -- wrangler.demo.toml >/dev/null
	@.ci/dev

clean:
	rm -rf build build-test build-profile build-console pkg target/wasm32-unknown-unknown target/profile \
	  $(FORWARDER)/build $(FORWARDER)/build-worker-build
