# intercom-secure-proxy: the two commands that matter are `make demo` and `make test`.
# Both install what they need on a fresh Debian machine with a Rust toolchain.

SHELL := /bin/bash
.PHONY: demo demo-screenshot test test-fast test-tiers deny lint build deps-build deps-test browser-deps \
	legacy-deps packaging-deps page-js bench bench-load clean

## demo: build, then run the sample legacy app (127.0.0.1:3000) and the proxy (127.0.0.1:8080)
demo: deps-build
	cargo build --release
	./target/release/intercom-secure-proxy demo

## demo-screenshot: redraw docs/demo-direct-vs-proxy.png (starts the demo on 3000 and 8080; not part of test)
demo-screenshot: build browser-deps
	node scripts/demo-screenshot.mjs

# The two tiers of tests/*.rs, one file = one test target. FAST_TESTS need nothing but
# Rust: the proxy binary and our own upstreams and clients on loopback. FULL_TESTS also
# need Chromium, Node, Python, PHP, Apache, Redis, HAProxy, lighttpd, wrk, curl, openssl
# or systemd-analyze. `make test-tiers` fails when a file is in neither list or in both,
# so a new test file cannot silently drop out of the inner loop.
FAST_TESTS := access_log admin cli docs_paths embed faults identity identity_html logout logs \
	memory proxy rewriter sites token_features
FULL_TESTS := audit browser browser_placement browser_tokens demo_page header_folding \
	identity_failure init init_redis init_sources instances jwt_sources legacy_servers logins \
	operations packaging page_js redis_auth redis_session rollout rollout_browser \
	soft_navigation tls
# Tests of fast files that are left to `make test`: cli.rs's demo with its sessions in a
# real redis-server (a program of the full tier), and memory.rs's thousand slow readers
# (4 GiB through the proxy: most of a minute alone). `cargo test` skips every test whose
# name contains one of these.
FAST_SKIP := the_demo_with_its_sessions_in_redis a_thousand_slow_readers

## test: the tiers are complete, the code is formatted and lint-free, the dependency
## policy holds, the docs build without warnings and their examples run, then the whole
## suite (unit and property tests, end-to-end over loopback, the embedding example, real
## headless Chromium, the legacy apps, Redis, HAProxy)
test: test-tiers lint deny deps-test browser-deps legacy-deps packaging-deps
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
	cargo test --doc
	cargo test --all-targets --features bench-internals -- --test-threads=4

## test-fast: the inner loop, only what needs nothing but Rust: the unit and property
## tests of the library and the binary, and FAST_TESTS (end-to-end over loopback with our
## own upstreams; tests/embed.rs runs examples/embed.rs, built first). Under 3 minutes
## with a warm target/.
test-fast: test-tiers deps-build
	cargo build --example embed
	cargo test --no-fail-fast --lib --bins $(addprefix --test ,$(FAST_TESTS)) -- --test-threads=4 \
		$(addprefix --skip ,$(FAST_SKIP))

## deny: the dependency policy of deny.toml: licenses, bans (one version of each crate,
## but for the duplicates listed there) and sources (crates.io and vendor/ only). The
## advisories check needs the RustSec database, which these machines cannot fetch: it
## runs, offline, only when a copy is already in $(ADVISORY_DB) (cargo deny's default
## db-path), and says when it does not.
ADVISORY_DB := $(or $(CARGO_HOME),$(HOME)/.cargo)/advisory-dbs
deny:
	@scripts/install-deps.sh deny
	cargo deny --locked check --hide-inclusion-graph licenses bans sources
	@if compgen -G '$(ADVISORY_DB)/*/crates' >/dev/null; then \
		cargo deny --frozen check advisories; \
	else \
		echo "cargo deny: no advisory database in $(ADVISORY_DB); advisories not checked"; \
	fi

## lint: rustfmt's layout (rustfmt.toml) and clippy with every warning an error, on every
## target (the benches' internals included)
lint:
	cargo fmt --check
	cargo clippy --all-targets --features bench-internals --quiet -- -D warnings

# Every tests/*.rs is in exactly one of FAST_TESTS and FULL_TESTS, and each name there is
# a file.
test-tiers:
	@fail=0; \
	for t in $$(ls tests/*.rs | xargs -n1 basename | sed 's/\.rs$$//'); do \
		n=$$(echo " $(FAST_TESTS) $(FULL_TESTS) " | tr ' ' '\n' | grep -cx "$$t"); \
		[ "$$n" = 1 ] || { echo "tests/$$t.rs is in $$n of FAST_TESTS and FULL_TESTS" \
			"(Makefile): put it in exactly one"; fail=1; }; \
	done; \
	for t in $(FAST_TESTS) $(FULL_TESTS); do \
		[ -f tests/$$t.rs ] || { echo "Makefile names tests/$$t.rs, which does not exist"; fail=1; }; \
	done; \
	exit $$fail

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
