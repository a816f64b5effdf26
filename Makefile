# intercom-secure-proxy: the two commands that matter are `make demo` and `make test`.
# Both install what they need on a fresh Debian machine with a Rust toolchain.

SHELL := /bin/bash
.PHONY: demo demo-screenshot test build deps-build deps-test browser-deps legacy-deps packaging-deps page-js bench bench-load clean

## demo: build, then run the sample legacy app (127.0.0.1:3000) and the proxy (127.0.0.1:8080)
demo: deps-build
	cargo build --release
	./target/release/intercom-secure-proxy demo

## demo-screenshot: redraw docs/demo-direct-vs-proxy.png (starts the demo on 3000 and 8080; not part of test)
demo-screenshot: build browser-deps
	node scripts/demo-screenshot.mjs

## test: the docs build without warnings and their examples run, then the whole suite
## (unit and property tests, end-to-end over loopback, the embedding example, real
## headless Chromium)
test: deps-test browser-deps legacy-deps packaging-deps
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
	cargo test --doc
	cargo test --all-targets --features bench-internals -- --test-threads=4

## build: the release binary
build: deps-build
	cargo build --release

## bench: criterion micro-benchmarks (rewriter throughput, signing, identity cache, headers)
bench: deps-build
	cargo bench --features bench-internals --bench rewrite --bench components --bench endpoint --bench redis_session

## bench-load: side-by-side load comparison against nginx peers (prints one table)
bench-load: deps-build
	bash scripts/bench-load.sh

# The Kubernetes schema validator of tests/packaging.rs, in a virtualenv of its own.
packaging-deps:
	@[ -x target/pyenv/bin/kubernetes-validate ] || { python3 -m venv target/pyenv && target/pyenv/bin/pip install -q kubernetes-validate==1.37.0; }

deps-build:
	@scripts/install-deps.sh build

deps-test:
	@scripts/install-deps.sh test

browser-deps:
	@cd tests/browser && { [ -d node_modules/playwright-core ] && [ -d node_modules/terser ] && [ -d node_modules/@hotwired/turbo ] && [ -d node_modules/jquery-pjax ] || npm ci --no-audit --no-fund --loglevel=error; }

## page-js: minify src/page/page.js into src/page/min/ (what pages get) after a change
page-js: browser-deps
	node scripts/minify-page-js.mjs

# The Express app of tests/legacy_servers.rs and tests/redis_session.rs.
legacy-deps:
	@cd tests/legacy/express && { [ -d node_modules/express-session ] && [ -d node_modules/connect-redis ] || npm ci --no-audit --no-fund --loglevel=error; }

clean:
	cargo clean
	rm -rf tests/browser/node_modules tests/legacy/express/node_modules
