# tokengate — every command installs what it needs (idempotently) from the package registries.
#   make dev    run the gateway locally with a demo provider and print curl lines
#   make test   run every test
#   make bench  run the benchmarks

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
export WRANGLER_SEND_METRICS := false
export CLOUDFLARE_CF_FETCH_ENABLED := false
export ESBUILD_BIN := $(CURDIR)/node_modules/.bin/esbuild
WASM_BINDGEN_BIN = $(shell command -v wasm-bindgen)
export WASM_BINDGEN_BIN

.PHONY: dev test bench bench-worker bench-npm setup setup-browser worker npm-pkg lint test-native test-worker test-npm clean

setup: node_modules/.installed
	@.ci/setup-tools rust

setup-browser:
	@.ci/setup-tools chromium

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# The Worker, as deployed: build/index.js + build/index_bg.wasm.
worker: setup
	worker-build --release -- --features worker

# The npm package: pkg/node (CommonJS) + pkg/web (ES module) + pkg/package.json.
npm-pkg: setup
	.ci/build-npm

lint: setup
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --target wasm32-unknown-unknown --features worker -- -D warnings
	cargo clippy --target wasm32-unknown-unknown --features npm -- -D warnings

test-native: setup
	cargo test

test-worker: worker
	node --test --test-concurrency=1 tests/emulators.test.mjs tests/worker*.test.mjs

test-npm: npm-pkg setup-browser
	wasm-pack test --node --features npm --test npm_web
	WASM_BINDGEN_TEST_WEBDRIVER_JSON=$(CURDIR)/.ci/webdriver.json wasm-pack test --headless --chrome \
	  --chromedriver /usr/bin/chromedriver --features npm --test npm_browser
	node --test --test-concurrency=1 tests/npm.test.mjs tests/www.test.mjs

test: lint test-native test-worker test-npm

bench: bench-worker bench-npm

# Gateway cached path vs a bare passthrough Worker, both in workerd (bench/worker.mjs).
bench-worker: worker
	node bench/worker.mjs

# The npm package's warm token() and client.fetch overhead beside openid-client and
# simple-oauth2 (bench/npm.mjs); only the ratios to the same run's baselines are meaningful.
bench-npm: npm-pkg
	node bench/npm.mjs

dev: worker
	@.ci/dev

clean:
	rm -rf build pkg target/wasm32-unknown-unknown
