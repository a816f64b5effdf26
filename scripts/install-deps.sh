#!/usr/bin/env bash
# Installs the system packages the build and the tests need, when missing (Debian).
#   scripts/install-deps.sh build   cmake and a C compiler (Pingora's zlib-ng, ring)
#   scripts/install-deps.sh test    the above, plus Chromium and Node.js for browser tests, and the
#                                   legacy app servers (python3, php-cli, apache2 + mod_php), and
#                                   wrk, curl and openssl for the operations and TLS tests, and
#                                   systemd-analyze and python3-venv for the packaging tests, and
#                                   redis-server and php-redis for the redis_session tests, and
#                                   PyJWT + cryptography for the JWT source tests, and
#                                   haproxy for the several-instances test, and
#                                   lighttpd for the CGI header-folding test, and cargo-deny
#   scripts/install-deps.sh deny    cargo-deny alone (`make deny`: deny.toml's policy)
set -euo pipefail
want=("${1:-test}")
# cargo-deny, built from crates.io with its own lock file. Pinned, so deny.toml is read
# the same way everywhere; 0.20.2 needs rustc 1.88 or later.
CARGO_DENY_VERSION=0.20.2
install_cargo_deny() {
  if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
    echo "installing: cargo-deny $CARGO_DENY_VERSION"
    cargo install --quiet --locked cargo-deny --version "$CARGO_DENY_VERSION"
  fi
}
if [ "${want[0]}" = deny ]; then
  install_cargo_deny
  exit 0
fi
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v cc >/dev/null || need+=(gcc)
command -v make >/dev/null || need+=(make)
if [ "${want[0]}" = test ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium)
  command -v node >/dev/null || need+=(nodejs)
  command -v npm >/dev/null || need+=(npm)
  command -v python3 >/dev/null || need+=(python3)
  # tests/jwt_sources.rs signs its tokens with an independent library (tests/jwt/sign.py).
  /usr/bin/python3 -c 'import jwt' 2>/dev/null || need+=(python3-jwt)
  /usr/bin/python3 -c 'import cryptography' 2>/dev/null || need+=(python3-cryptography)
  command -v php >/dev/null || need+=(php-cli)
  [ -x /usr/sbin/apache2 ] || need+=(apache2)
  compgen -G '/usr/lib/apache2/modules/libphp*.so' >/dev/null || need+=(libapache2-mod-php)
  command -v wrk >/dev/null || need+=(wrk)
  command -v curl >/dev/null || need+=(curl)
  command -v openssl >/dev/null || need+=(openssl)
  command -v systemd-analyze >/dev/null || need+=(systemd)
  python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
  # tests/redis_session.rs: a real Redis (openssl above makes its TLS certificates), PHP's
  # phpredis session handler.
  command -v redis-server >/dev/null || need+=(redis-server)
  php -m 2>/dev/null | grep -qx redis || need+=(php-redis)
  # tests/instances.rs: three proxies behind a real HAProxy.
  [ -x /usr/sbin/haproxy ] || need+=(haproxy)
  # tests/header_folding.rs: a CGI app behind lighttpd, which folds every non-alphanumeric
  # byte of a header name into `_`.
  [ -x /usr/sbin/lighttpd ] || need+=(lighttpd)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ "${want[0]}" = test ]; then
  install_cargo_deny
fi
