#!/usr/bin/env bash
# Load comparison (`make bench-load`): our proxy in Secure Mode vs the same binary in
# passthrough vs a bare Pingora proxy (examples/pingora_bare.rs, the floor of anything
# built on Pingora) vs nginx (plain proxy) vs nginx+njs minting the same JWT, all
# proxying the same static pages on 127.0.0.1, printed as one table with the issue's
# targets; then TLS + HTTP/2, what an idle keep-alive connection costs each target in
# memory (scripts/idle-conns.py), and a busy load beside 15,000 idle connections. The
# report is also written to target/bench-load/bench-load.txt, with a chart of it
# (bench-load.svg) beside it.
#
#   scripts/bench-load.sh                   # defaults: ~8 min once the proxy is built
#   QUICK=1 scripts/bench-load.sh           # 1 repeat, 2 s runs: ~1.5 min
#
# Knobs (environment):
#   DURATION=3       seconds of each closed-loop wrk run
#   RATE_DURATION=3  seconds of each fixed-rate run (after WARMUP_RATE=0.5 s not counted)
#   REPEATS=3        interleaved repeats (A B C D, A B C D, ...); the table shows medians
#   CONNS="1 32 256" closed-loop connection counts (wrk threads: 1 for 1 connection, else 2)
#   RATE_CONNS=32    connections of the fixed-rate runs; the rate is half the nginx-njs
#                    closed-loop median of that page at this many connections
#   PAGES="app.html big.html"   pages (big.html is generated: BIG_MIB=5 MiB)
#   PIN=1            pin the proxy under test to CPU 0 and the load generator and the
#                    upstream nginx to CPU 1 (default: let the scheduler place them)
#   PORT_SECURE=18091 PORT_PASS=18092 PORT_BARE=18094   our two instances and the bare
#                    Pingora proxy (next free port if taken)
#   KEEP=1           keep the work directory (logs, raw results) instead of deleting it
#   BUDGET=570       seconds the load runs should take: when the build was slow (a fresh
#                    machine), the default durations shrink to 2 s to fit; set DURATION
#                    to opt out (the memory runs below come on top: 2-4 min)
#   IDLE_CONNS=3000  idle connections opened per target for the memory table (plain
#                    HTTP/1.1; QUICK: 1000); IDLE_TLS_CONNS=1000 over TLS (QUICK too:
#                    at 500 the allocator's first steps weigh ~3 KiB per connection)
#   BUSY_IDLE=15000  idle connections held while wrk drives 32 busy ones (QUICK: 5000);
#                    0 skips that run
#   OUT=target/bench-load   where the report and its chart are written
#   PROXY_BIN=... BARE_PINGORA_BIN=...   run these binaries instead of building (to
#                    compare builds: the version printed is still the tree's)
#
# Needs: cargo, python3, and (installed with apt-get when missing) wrk, curl, nginx-light
# and libnginx-mod-http-js (by bench/nginx/run). Everything listens on
# 127.0.0.1 only; everything started here is stopped on exit, Ctrl-C or failure.
set -euo pipefail

T0=$(date +%s)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS=$ROOT/bench/nginx
CORPUS=$ROOT/tests/corpus
HELPER=$ROOT/scripts/bench-load.py
IDLE_TOOL=$ROOT/scripts/idle-conns.py
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$TARGET_DIR/bench-load}

USER_SET_DURATION=${DURATION:-}${RATE_DURATION:-}
if [ "${QUICK:-0}" = 1 ]; then
  : "${DURATION:=2}" "${RATE_DURATION:=2}" "${REPEATS:=1}" "${IDLE_CONNS:=1000}" "${IDLE_TLS_CONNS:=1000}" "${BUSY_IDLE:=5000}"
fi
IDLE_CONNS=${IDLE_CONNS:-3000}
IDLE_TLS_CONNS=${IDLE_TLS_CONNS:-1000}
BUSY_IDLE=${BUSY_IDLE:-15000}
DURATION=${DURATION:-3}
RATE_DURATION=${RATE_DURATION:-$DURATION}
WARMUP_RATE=${WARMUP_RATE:-0.5}
REPEATS=${REPEATS:-3}
CONNS=${CONNS:-"1 32 256"}
RATE_CONNS=${RATE_CONNS:-32}
PAGES=${PAGES:-"app.html big.html"}
BIG_MIB=${BIG_MIB:-5}
PIN=${PIN:-0}
KEEP=${KEEP:-0}
BUDGET=${BUDGET:-570}   # seconds for the whole script; default durations shrink to fit it
SECRET=bench-secret-0123456789abcdef0123456789abcdef   # the njs peer's (bench/nginx/jwt.js)
HDR_USER="X-Forwarded-User: bench-user"
HDR_EMAIL="X-Forwarded-Email: bench@example.com"
TARGETS=(ours-secure ours-passthrough pingora-bare nginx-plain nginx-njs)

# Progress goes to the original stderr (fd 3), also from traps that fire while a
# command's output is redirected to a file.
exec 3>&2
log() { printf '[%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&3; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------
# Cleanup: only what this run started, by pid or by its own nginx prefix.
WORK=
NGINX_STARTED=0
PIDS_OURS=()
CHILD=
HOLDER=
# A process that exists and is not a zombie (daemonized nginx masters may stay unreaped).
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
cleanup() {
  local rc=$?
  # Ignore further signals (Ctrl-C twice, a signal sent to the whole process group) so
  # the cleanup itself is never cut short; it takes a few seconds at most.
  trap '' INT TERM
  trap - EXIT
  [ -n "$CHILD" ] && kill "$CHILD" 2>/dev/null || true
  [ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null || true
  for pid in "${PIDS_OURS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  if [ "$NGINX_STARTED" = 1 ]; then
    local masters=()
    for f in "$WORK/nginx/nginx.pid" "$WORK/nginx/upstream.pid"; do
      [ -s "$f" ] || continue
      masters+=("$(cat "$f")")
      # Its workers too, so nothing is left behind if the master has to be killed.
      for w in $(children "$(cat "$f")"); do masters+=("$w"); done
    done
    NGINX_PEER_DIR=$WORK/nginx "$PEERS/run" stop >/dev/null 2>&1 || true
    for _ in $(seq 50); do
      local alive=0
      for pid in "${masters[@]}"; do alive "$pid" && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.1
    done
    for pid in "${masters[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  fi
  for pid in "${PIDS_OURS[@]}"; do
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    # Kept for a look at the logs after a failure (not after Ctrl-C / TERM).
    if [ "$KEEP" = 1 ] || { [ "$rc" != 0 ] && [ "$rc" != 130 ] && [ "$rc" != 143 ]; }; then
      log "work directory kept: $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  [ "$rc" = 0 ] || log "stopped (exit $rc); everything started here is stopped"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a command in the background and waits, so Ctrl-C/TERM reach the trap at once.
run() { "$@" & CHILD=$!; local rc=0; wait "$CHILD" || rc=$?; CHILD=; return "$rc"; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
  local port=$1 pid=${2:-}
  for _ in $(seq 100); do
    port_busy "$port" && return 0
    [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && return 1
    sleep 0.1
  done
  return 1
}
free_port() {
  local p=$1
  while port_busy "$p"; do p=$((p + 1)); done
  echo "$p"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo -1; }
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
reset_hwm() { echo 5 > "/proc/$1/clear_refs" 2>/dev/null || true; }
children() { { tr ' ' '\n' < "/proc/$1/task/$1/children"; } 2>/dev/null | grep -v '^$' || true; }

# ---------------------------------------------------------------------------
# Tools
need_apt() {
  if ! command -v "$1" >/dev/null; then
    log "installing $2 (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  fi
}
need_apt wrk wrk
need_apt curl curl
need_apt h2load nghttp2-client
need_apt openssl openssl
[ "$PIN" = 1 ] && need_apt taskset util-linux
command -v python3 >/dev/null || die "python3 is needed for the table"
# The idle-connection runs hold thousands of sockets in the client and in the proxy
# (which inherits this limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$BUSY_IDLE" -gt 0 ] && [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((BUSY_IDLE + 1000)) ]; then
  log "WARNING: ulimit -n is $(ulimit -n): BUSY_IDLE lowered to $(( $(ulimit -n) - 1000 ))"
  BUSY_IDLE=$(( $(ulimit -n) - 1000 ))
fi
for p in 18080 18081 18083 18084; do
  port_busy "$p" && die "127.0.0.1:$p is in use: stop the other nginx peers first (bench/nginx/run stop)"
done
PORT_SECURE=$(free_port "${PORT_SECURE:-18091}")
PORT_PASS=$(free_port "${PORT_PASS:-18092}")
[ "$PORT_SECURE" = "$PORT_PASS" ] && PORT_PASS=$(free_port $((PORT_PASS + 1)))
PORT_BARE=$(free_port "${PORT_BARE:-18094}")

WORK=$(mktemp -d /tmp/bench-load.XXXXXX)
chmod 755 "$WORK"   # nginx workers run unprivileged and serve $WORK/pages
RESULTS=$WORK/results.jsonl
: > "$RESULTS"

if [ -n "${PROXY_BIN:-}" ]; then
  log "using the binaries given: $PROXY_BIN, ${BARE_PINGORA_BIN:-?}"
  BIN=$PROXY_BIN
  BARE_BIN=${BARE_PINGORA_BIN:?PROXY_BIN goes with BARE_PINGORA_BIN}
else
  log "building the proxy and the bare Pingora proxy (cargo build --release)"
  (cd "$ROOT" && cargo build --release --quiet --bin intercom-secure-proxy --example pingora_bare)
  BIN=$TARGET_DIR/release/intercom-secure-proxy
  BARE_BIN=$TARGET_DIR/release/examples/pingora_bare
fi
[ -x "$BIN" ] || die "no binary at $BIN"
[ -x "$BARE_BIN" ] || die "no binary at $BARE_BIN"

# The open-loop generator is std-only: plain rustc builds it in about a second.
LOADGEN=$TARGET_DIR/bench-load/loadgen
if [ ! -x "$LOADGEN" ] || [ "$ROOT/benches/loadgen.rs" -nt "$LOADGEN" ]; then
  log "building the load generator (benches/loadgen.rs)"
  mkdir -p "$(dirname "$LOADGEN")"
  rustc --edition 2021 -C opt-level=3 "$ROOT/benches/loadgen.rs" -o "$LOADGEN.tmp"
  mv "$LOADGEN.tmp" "$LOADGEN"
fi

# ---------------------------------------------------------------------------
# Pages and peers
mkdir -p "$WORK/pages"
for f in "$CORPUS"/*.html; do ln -s "$f" "$WORK/pages/"; done
python3 "$HELPER" big-page "$CORPUS/app.html" "$WORK/pages/big.html" $((BIG_MIB * 1024 * 1024))
for page in $PAGES; do [ -e "$WORK/pages/$page" ] || die "no page $page"; done

log "starting nginx peers (upstream 18080, plain 18081, njs 18083)"
NGINX_STARTED=1
run env NGINX_PEER_DIR="$WORK/nginx" "$PEERS/run" start "$WORK/pages" >&2
for p in 18080 18081 18083; do wait_port "$p" || die "nginx peer on $p did not come up"; done
nginx_worker() {
  local master w
  master=$(cat "$WORK/nginx/$1.pid")
  for _ in $(seq 50); do
    w=$(children "$master" | head -n 1)
    [ -n "$w" ] && { echo "$w"; return 0; }
    sleep 0.1
  done
  die "no worker process for nginx $1 (master $master)"
}
NGINX_WORKER=$(nginx_worker nginx)
UPSTREAM_WORKER=$(nginx_worker upstream)

# ---------------------------------------------------------------------------
# Memory: what an idle keep-alive connection costs. N connections are opened one after
# another, each answered once (app.html) and left idle; the figure is the growth of the
# serving process's RSS / N (scripts/idle-conns.py). nginx first, before any load run,
# each target from a fresh worker (a reload starts new ones), so that memory its
# allocator kept from earlier connections cannot take in the new ones.
MEMORY=$WORK/memory.jsonl
: > "$MEMORY"
idle_measure() {  # label pid url proto n
  run python3 "$IDLE_TOOL" measure --label "$1" --pid "$2" --url "$3" --proto "$4" --n "$5" \
    -H "$HDR_USER" -H "$HDR_EMAIL" >> "$MEMORY" || die "idle connections to $1 failed"
  log "memory: $1 $(tail -n 1 "$MEMORY" | python3 -c 'import json, sys; print(json.load(sys.stdin)["kib_per_conn"])') KiB per idle connection"
}
fresh_nginx_worker() {
  local old=$NGINX_WORKER new
  nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -s reload
  for _ in $(seq 100); do
    # No new worker listed yet is no error (grep finds nothing): wait for it.
    new=$(children "$(cat "$WORK/nginx/nginx.pid")" | grep -vx "$old" | head -n 1 || true)
    [ -n "$new" ] && ! alive "$old" && { NGINX_WORKER=$new; return 0; }
    sleep 0.1
  done
  die "nginx did not start a new worker on reload"
}
log "memory: $IDLE_CONNS idle connections per plain target, $IDLE_TLS_CONNS per TLS target; nginx first"
for m in "nginx-plain http://127.0.0.1:18081 h1 $IDLE_CONNS" "nginx-njs http://127.0.0.1:18083 h1 $IDLE_CONNS" \
         "nginx-njs-tls https://127.0.0.1:18084 h1 $IDLE_TLS_CONNS" "nginx-njs-tls-h2 https://127.0.0.1:18084 h2 $IDLE_TLS_CONNS"; do
  read -r label url proto n <<<"$m"
  fresh_nginx_worker
  idle_measure "$label" "$NGINX_WORKER" "$url/app.html" "$proto" "$n"
done
fresh_nginx_worker

start_ours() {
  local name=$1 port=$2; shift 2
  cat > "$WORK/$name.yaml" <<EOF
listen: [${LISTEN:-"127.0.0.1:$port"}]
upstream:
  addresses: ["127.0.0.1:18080"]
server:
  threads: 1
  grace_period: 1s
  graceful_shutdown_timeout: 1s
  pid_file: $WORK/$name.pid
  upgrade_sock: $WORK/$name-upgrade.sock
${SERVER_EXTRA:-}
intercom:
  app_id: abc12345
  secret_env: BENCH_INTERCOM_SECRET
identity:
  sources:
    - type: trusted_header
      trusted_cidrs: ["127.0.0.1/32"]
      headers: {user_id: X-Forwarded-User, email: X-Forwarded-Email}
EOF
  BENCH_INTERCOM_SECRET=$SECRET RUST_LOG=warn "$BIN" run -c "$WORK/$name.yaml" "$@" > "$WORK/$name.log" 2>&1 &
  STARTED=$!
  PIDS_OURS+=("$STARTED")
  wait_port "$port" "$STARTED" || { cat "$WORK/$name.log" >&2; die "$name did not start"; }
}
# Stops one of ours (or bare Pingora) started above, so its memory is given back.
stop_one() {
  kill -INT "$1" 2>/dev/null || true
  for _ in $(seq 50); do alive "$1" || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}
log "starting our proxy: ours-secure on $PORT_SECURE, ours-passthrough on $PORT_PASS (1 thread each)"
start_ours ours-secure "$PORT_SECURE"
SECURE_PID=$STARTED
start_ours ours-passthrough "$PORT_PASS" --passthrough
PASS_PID=$STARTED
log "starting pingora-bare on $PORT_BARE (1 thread)"
RUST_LOG=warn "$BARE_BIN" "127.0.0.1:$PORT_BARE" 127.0.0.1:18080 > "$WORK/pingora-bare.log" 2>&1 &
BARE_PID=$!
PIDS_OURS+=("$BARE_PID")
wait_port "$PORT_BARE" "$BARE_PID" || { cat "$WORK/pingora-bare.log" >&2; die "pingora-bare did not start"; }

declare -A PORT=([ours-secure]=$PORT_SECURE [ours-passthrough]=$PORT_PASS [pingora-bare]=$PORT_BARE [nginx-plain]=18081 [nginx-njs]=18083)
declare -A PID=([ours-secure]=$SECURE_PID [ours-passthrough]=$PASS_PID [pingora-bare]=$BARE_PID [nginx-plain]=$NGINX_WORKER [nginx-njs]=$NGINX_WORKER)

if [ "$PIN" = 1 ]; then
  for pid in "$SECURE_PID" "$PASS_PID" "$BARE_PID" "$NGINX_WORKER"; do taskset -apc 0 "$pid" >/dev/null; done
  taskset -apc 1 "$UPSTREAM_WORKER" >/dev/null
  GEN=(taskset -c 1)
  log "pinned: proxies under test on CPU 0; upstream nginx and load generators on CPU 1"
else
  GEN=()
fi

# ---------------------------------------------------------------------------
# Sanity: the right bytes come back before anything is measured.
get() { curl -sS --fail --max-time 20 -H "$HDR_USER" -H "$HDR_EMAIL" -o "$2" "http://127.0.0.1:$1/$3"; }
for page in $PAGES; do
  get 18080 "$WORK/s-upstream-$page" "$page"
  get "$PORT_SECURE" "$WORK/s-secure-$page" "$page"
  get "$PORT_PASS" "$WORK/s-pass-$page" "$page"
  get "$PORT_BARE" "$WORK/s-bare-$page" "$page"
  get 18083 "$WORK/s-njs-$page" "$page"
  grep -q '"j":"eyJ' "$WORK/s-secure-$page" || die "ours-secure: no \"j\":\"eyJ token in $page"
  msg=$(python3 "$HELPER" check-secure "$WORK/s-upstream-$page" "$WORK/s-secure-$page" "$SECRET") \
    || die "ours-secure: $page is not the upstream page plus our script"
  log "sanity $page: ours-secure adds one script with a valid token ($msg)"
  cmp -s "$WORK/s-upstream-$page" "$WORK/s-pass-$page" || die "ours-passthrough: $page differs from the upstream"
  log "sanity $page: ours-passthrough is byte-identical to the upstream ($(wc -c < "$WORK/s-pass-$page") bytes)"
  cmp -s "$WORK/s-upstream-$page" "$WORK/s-bare-$page" || die "pingora-bare: $page differs from the upstream"
  grep -q 'intercom_user_jwt:"eyJ' "$WORK/s-njs-$page" || die "nginx-njs: no token in $page"
done
rm -f "$WORK"/s-*

IDLE_SECURE=$(status_kib "$SECURE_PID" VmRSS)
IDLE_PASS=$(status_kib "$PASS_PID" VmRSS)
log "idle RSS after start-up and the sanity requests: ours-secure $((IDLE_SECURE / 1024)) MiB, ours-passthrough $((IDLE_PASS / 1024)) MiB"
CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------
# Measurements
WRK_HDRS=(-H "$HDR_USER" -H "$HDR_EMAIL")
n_closed=$(( $(wc -w <<<"$PAGES") * $(wc -w <<<"$CONNS") * REPEATS * ${#TARGETS[@]} ))
n_fixed=$(( $(wc -w <<<"$PAGES") * REPEATS * ${#TARGETS[@]} ))
estimate() {  # seconds the measurements take with closed-loop runs of $1 s and fixed-rate runs of $2 s
  awk -v nc="$n_closed" -v nf="$n_fixed" -v d="$1" -v r="$2" -v w="$WARMUP_RATE" -v np="$(wc -w <<<"$PAGES")" \
    -v nt="${#TARGETS[@]}" 'BEGIN { printf "%d", nc * (d + 0.45) + nf * (r + w + 0.7) + np * nt * 1.3 + 5 }'
}
if [ -z "$USER_SET_DURATION" ]; then
  elapsed=$(( $(date +%s) - T0 )) planned=$DURATION
  while [ "$DURATION" -gt 2 ] && [ $(( elapsed + $(estimate "$DURATION" "$RATE_DURATION") )) -gt "$BUDGET" ]; do
    DURATION=$((DURATION - 1)); RATE_DURATION=$DURATION
  done
  [ "$DURATION" != "$planned" ] && log "the build took ${elapsed}s: runs shortened to ${DURATION}s to stay within ${BUDGET}s (set DURATION to override)"
fi
log "plan: $n_closed closed-loop runs of ${DURATION}s, then $n_fixed fixed-rate runs of ${RATE_DURATION}s (about $(estimate "$DURATION" "$RATE_DURATION")s)"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
awk -v l="${LOAD_START%% *}" 'BEGIN { exit !(l > 1.0) }' && \
  log "WARNING: load average is $LOAD_START before the runs: something else is busy, numbers will be noisy"

for page in $PAGES; do
  for t in "${TARGETS[@]}"; do   # warm-up, not recorded
    run "${GEN[@]}" wrk -t 2 -c 8 -d 1s --timeout 30s "${WRK_HDRS[@]}" "http://127.0.0.1:${PORT[$t]}/$page" >/dev/null
  done
done

closed_run() {
  local page=$1 c=$2 t=$3 rep=$4 pid=${PID[$3]} threads=2
  [ "$c" = 1 ] && threads=1
  reset_hwm "$pid"
  local c0 c1
  c0=$(cpu_ticks "$pid")
  run "${GEN[@]}" wrk -t "$threads" -c "$c" -d "${DURATION}s" --timeout 30s "${WRK_HDRS[@]}" \
    "http://127.0.0.1:${PORT[$t]}/$page" > "$WORK/wrk.out" 2>&1 || die "wrk failed: $(cat "$WORK/wrk.out")"
  c1=$(cpu_ticks "$pid")
  python3 "$HELPER" record-wrk "$WORK/wrk.out" page="$page" conns="$c" target="$t" rep="$rep" \
    cpu_ticks=$((c1 - c0)) clk_tck="$CLK_TCK" hwm_kib="$(status_kib "$pid" VmHWM)" >> "$RESULTS"
  cat "$WORK/wrk.out" >> "$WORK/wrk-all.log"
}

fixed_run() {
  local page=$1 rate=$2 t=$3 rep=$4 pid=${PID[$3]}
  reset_hwm "$pid"
  local c0 c1
  c0=$(cpu_ticks "$pid")
  run "${GEN[@]}" "$LOADGEN" --addr "127.0.0.1:${PORT[$t]}" --path "/$page" --rate "$rate" \
    --connections "$RATE_CONNS" --duration "$RATE_DURATION" --warmup "$WARMUP_RATE" \
    -H "$HDR_USER" -H "$HDR_EMAIL" > "$WORK/rate.out" || die "loadgen failed"
  c1=$(cpu_ticks "$pid")
  # CPU covers the warm-up too: the per-1000 figure divides by all requests served.
  python3 "$HELPER" record-rate "$WORK/rate.out" page="$page" conns="$RATE_CONNS" target="$t" rep="$rep" \
    cpu_ticks=$((c1 - c0)) clk_tck="$CLK_TCK" hwm_kib="$(status_kib "$pid" VmHWM)" >> "$RESULTS"
}

fixed_rate_page() {
  local page=$1 peak rate
  if grep -qw -- "$RATE_CONNS" <<<"$CONNS"; then
    peak=$(python3 "$HELPER" median "$RESULTS" "$page" "$RATE_CONNS" nginx-njs)
  else
    run "${GEN[@]}" wrk -t 2 -c "$RATE_CONNS" -d "${DURATION}s" --timeout 30s "${WRK_HDRS[@]}" \
      "http://127.0.0.1:18083/$page" > "$WORK/wrk.out"
    peak=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' "$WORK/wrk.out")
  fi
  rate=$(( peak / 2 ))
  [ "$rate" -ge 1 ] || rate=1
  log "fixed-rate $page: $rate req/s (half the nginx-njs peak of $peak at ${RATE_CONNS}c)"
  for rep in $(seq "$REPEATS"); do
    for t in "${TARGETS[@]}"; do
      fixed_run "$page" "$rate" "$t" "$rep"
    done
  done
}

# Page by page: closed-loop (which measures the nginx-njs peak), then fixed-rate, so one
# page's memory high-water mark does not show up in the next page's rows.
done_runs=0
for page in $PAGES; do
  for c in $CONNS; do
    for rep in $(seq "$REPEATS"); do
      for t in "${TARGETS[@]}"; do
        closed_run "$page" "$c" "$t" "$rep"
        done_runs=$((done_runs + 1))
      done
    done
    log "closed-loop $page ${c}c done ($done_runs/$n_closed)"
  done
  fixed_rate_page "$page"
done

# ---------------------------------------------------------------------------
# TLS + HTTP/2: ours-secure with a TLS listener vs nginx-njs over TLS, the same
# certificate and page, driven by h2load (32 connections, one stream each), interleaved.
TLS_PAGE=app.html
tls_listen() { echo "{address: \"127.0.0.1:$1\", tls: {cert_file: $WORK/nginx/tls-cert.pem, key_file: $WORK/nginx/tls-key.pem}, h2: true}"; }
PORT_TLS=$(free_port 18093)
LISTEN=$(tls_listen "$PORT_TLS") start_ours ours-secure-tls "$PORT_TLS"
TLS_PID=$STARTED
log "TLS+h2: ours-secure-tls on $PORT_TLS vs nginx-njs-tls on 18084, $TLS_PAGE"
: > "$WORK/tls.txt"
for rep in $(seq "$REPEATS"); do
  for t in ours-secure-tls nginx-njs-tls; do
    if [ "$t" = ours-secure-tls ]; then port=$PORT_TLS pid=$TLS_PID; else port=18084 pid=$NGINX_WORKER; fi
    c0=$(cpu_ticks "$pid")
    run "${GEN[@]}" h2load -c 32 -m 1 -t 2 -D "$DURATION" -H "$HDR_USER" -H "$HDR_EMAIL" \
      "https://127.0.0.1:$port/$TLS_PAGE" > "$WORK/h2load.out" 2>&1 || die "h2load failed: $(cat "$WORK/h2load.out")"
    c1=$(cpu_ticks "$pid")
    grep -q "Application protocol: h2" "$WORK/h2load.out" || die "$t did not negotiate HTTP/2: $(cat "$WORK/h2load.out")"
    rps=$(awk '/finished in/ { for (i = 1; i <= NF; i++) if ($(i + 1) ~ /^req\/s/) print $i }' "$WORK/h2load.out" | tr -d ',')
    # "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout"
    read -r done ok failed errored < <(awk '/^requests:/ { print $6, $8, $10, $12 }' "$WORK/h2load.out")
    echo "$t $rep $rps $done $ok $((failed + errored)) $((c1 - c0))" >> "$WORK/tls.txt"
  done
done
stop_one "$TLS_PID"

# ---------------------------------------------------------------------------
# Memory of ours (nginx's was measured before the load runs): each of ours (and bare
# Pingora) is a fresh process, so memory its allocator kept from the load runs cannot
# take in the connections.
# A fresh process of ours: label proto plain|tls [args]
mem_ours() {
  local label=$1 proto=$2 kind=$3 port
  shift 3
  port=$(free_port 18095)
  if [ "$kind" = tls ]; then
    LISTEN=$(tls_listen "$port") start_ours "mem-$label" "$port" "$@"
    idle_measure "$label" "$STARTED" "https://127.0.0.1:$port/app.html" "$proto" "$IDLE_TLS_CONNS"
  else
    start_ours "mem-$label" "$port" "$@"
    idle_measure "$label" "$STARTED" "http://127.0.0.1:$port/app.html" "$proto" "$IDLE_CONNS"
  fi
  stop_one "$STARTED"
}
mem_ours ours-secure h1 plain
mem_ours ours-passthrough h1 plain --passthrough
mem_ours ours-secure-tls h1 tls
mem_ours ours-secure-tls-h2 h2 tls
PORT_BARE_MEM=$(free_port 18096)
RUST_LOG=warn "$BARE_BIN" "127.0.0.1:$PORT_BARE_MEM" 127.0.0.1:18080 > "$WORK/pingora-bare-mem.log" 2>&1 &
BARE_MEM_PID=$!
PIDS_OURS+=("$BARE_MEM_PID")
wait_port "$PORT_BARE_MEM" "$BARE_MEM_PID" || die "pingora-bare (memory) did not start"
idle_measure pingora-bare "$BARE_MEM_PID" "http://127.0.0.1:$PORT_BARE_MEM/app.html" h1 "$IDLE_CONNS"
stop_one "$BARE_MEM_PID"

# ---------------------------------------------------------------------------
# Idle plus busy: BUSY_IDLE idle connections held on one process of ours while wrk drives
# 32 busy ones, against a twin process without idle connections, interleaved.
IDLE_BUSY=$WORK/idle-busy.jsonl
: > "$IDLE_BUSY"
if [ "$BUSY_IDLE" -gt 0 ]; then
  SERVER_EXTRA="  max_client_connections: $((BUSY_IDLE + 1000))
  client_keepalive_timeout: 3600s"
  PORT_IDLE=$(free_port 18097)
  SERVER_EXTRA=$SERVER_EXTRA start_ours ours-with-idle "$PORT_IDLE"
  IDLE_PID=$STARTED
  PORT_TWIN=$(free_port $((PORT_IDLE + 1)))
  SERVER_EXTRA=$SERVER_EXTRA start_ours ours-without-idle "$PORT_TWIN"
  TWIN_PID=$STARTED
  RSS_EMPTY=$(status_kib "$IDLE_PID" VmRSS)
  log "idle plus busy: opening $BUSY_IDLE idle connections to ours-with-idle ($PORT_IDLE)"
  "${GEN[@]}" python3 "$IDLE_TOOL" hold --url "http://127.0.0.1:$PORT_IDLE/app.html" --n "$BUSY_IDLE" --seconds 3000 \
    -H "$HDR_USER" -H "$HDR_EMAIL" > "$WORK/hold.out" 2>&1 &
  HOLDER=$!
  until grep -q '^ready' "$WORK/hold.out"; do
    kill -0 "$HOLDER" 2>/dev/null || die "holding idle connections failed: $(cat "$WORK/hold.out")"
    sleep 0.5
  done
  RSS_IDLE=$(status_kib "$IDLE_PID" VmRSS)
  log "idle plus busy: $BUSY_IDLE idle connections open; RSS $((RSS_EMPTY / 1024)) -> $((RSS_IDLE / 1024)) MiB"
  for rep in $(seq "$REPEATS"); do
    for t in ours-with-idle ours-without-idle; do
      if [ "$t" = ours-with-idle ]; then port=$PORT_IDLE pid=$IDLE_PID; else port=$PORT_TWIN pid=$TWIN_PID; fi
      c0=$(cpu_ticks "$pid")
      run "${GEN[@]}" wrk -t 2 -c 32 -d "${DURATION}s" --timeout 30s "${WRK_HDRS[@]}" \
        "http://127.0.0.1:$port/app.html" > "$WORK/wrk.out" 2>&1 || die "wrk failed: $(cat "$WORK/wrk.out")"
      c1=$(cpu_ticks "$pid")
      # VmHWM is not reset here: for ours-with-idle it is the peak with the idle connections.
      python3 "$HELPER" record-wrk "$WORK/wrk.out" page=app.html conns=32 target="$t" rep="$rep" \
        cpu_ticks=$((c1 - c0)) clk_tck="$CLK_TCK" hwm_kib="$(status_kib "$pid" VmHWM)" >> "$IDLE_BUSY"
    done
  done
  kill "$HOLDER" 2>/dev/null || true
  wait "$HOLDER" 2>/dev/null || true
  HOLDER=
  grep -q "(0 closed" "$WORK/hold.out" || die "the server closed idle connections during the busy runs: $(tail -n 1 "$WORK/hold.out")"
  printf '{"idle": %s, "rss_empty_kib": %s, "rss_idle_kib": %s}\n' "$BUSY_IDLE" "$RSS_EMPTY" "$RSS_IDLE" > "$WORK/idle-busy-meta.json"
  stop_one "$IDLE_PID"
  stop_one "$TWIN_PID"
fi
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------
# Report (also written to $OUT, with its chart)
printf '{"repeats": %s, "duration": %s, "rate_duration": %s, "rate_conns": %s, "idle_rss_mib": {"ours-secure": %s, "ours-passthrough": %s}}\n' \
  "$REPEATS" "$DURATION" "$RATE_DURATION" "$RATE_CONNS" \
  "$(awk -v k="$IDLE_SECURE" 'BEGIN { print k / 1024 }')" "$(awk -v k="$IDLE_PASS" 'BEGIN { print k / 1024 }')" > "$WORK/meta.json"
for pid in "$SECURE_PID" "$PASS_PID" "$BARE_PID"; do
  kill -0 "$pid" 2>/dev/null || die "a proxy under test (pid $pid) died during the run; see $WORK/*.log"
done
mkdir -p "$OUT"
VERSION="proxy $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$( [ -z "$(cd "$ROOT" && git status --porcelain -- src 2>/dev/null)" ] || echo '+dirty src')"
{
  echo
  echo "Load comparison: $(nproc) cores, $(uname -r), $(wrk -v 2>&1 | head -n 1 | awk '{ print $1, $2 }'), $(nginx -v 2>&1 | sed 's/.*: //'), $VERSION, $(date -u +'%Y-%m-%d %H:%M UTC')"
  echo "Load average (1/5/15 min) before the runs: $LOAD_START, after: $LOAD_END (anything well above 0 before means other work shared the 2 cores)"
  echo "Targets: ours-secure (Secure Mode, trusted_header) :$PORT_SECURE, ours-passthrough :$PORT_PASS, pingora-bare :$PORT_BARE, nginx-plain :18081, nginx-njs :18083; upstream nginx :18080; pin=$PIN"
  echo
  python3 "$HELPER" table "$RESULTS" "$WORK/meta.json"
  echo
  echo "TLS + HTTP/2, $TLS_PAGE, 32 connections (h2load, ${DURATION}s, medians of $REPEATS):"
  python3 "$HELPER" tls-table "$WORK/tls.txt" "$CLK_TCK"
  echo
  python3 "$HELPER" memory-table "$MEMORY"
  if [ -s "$IDLE_BUSY" ]; then
    echo
    python3 "$HELPER" idle-busy-table "$IDLE_BUSY" "$WORK/idle-busy-meta.json"
  fi
} | tee "$OUT/bench-load.txt"
python3 "$HELPER" chart "$RESULTS" "$WORK/tls.txt" "$CLK_TCK" "$MEMORY" "$OUT/bench-load.svg" "$VERSION, $(date -u +%Y-%m-%d)"
[ "$KEEP" = 1 ] && cp "$RESULTS" "$WORK/results-final.jsonl"
echo
log "report: $OUT/bench-load.txt, chart: $OUT/bench-load.svg"
log "done in $(( $(date +%s) - T0 )) s"
