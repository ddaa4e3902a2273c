#!/usr/bin/env bash
# Writes into a growing store, then kill -9 and restart (issue "snapshots that never stop
# writes"). One run, one machine, the release build:
#   1. a fresh node, v2 puts over a 1,000-key space for DURATION: the small-store write rate;
#   2. a fresh node, KEYS v2 puts over a KEYS key space (each key written once, so the store
#      grows to KEYS keys) with 64 connections: rate, p99.9 and max while it grows;
#   3. its resident memory, kill -9, restart: time until a GET answers, resident memory then.
#
#   bench/growth.sh                      # KEYS=1000000
#   KEYS=630000 ETCD_BIN=/path/etcd bench/growth.sh
#
# Environment: KEYS (default 1000000), DURATION (step 1, default 10s), SNAPSHOT_COUNT
# (default 10000, etcd-rs's default), ETCD_BIN (default target/release/etcd), KEEP=1 keeps the
# work dir. Needs python3 and curl.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KEYS=${KEYS:-1000000}
DURATION=${DURATION:-10s}
SNAPSHOT_COUNT=${SNAPSHOT_COUNT:-10000}
ETCD_BIN=${ETCD_BIN:-$ROOT/target/release/etcd}
BENCH=$ROOT/target/release/etcd-bench
[ -x "$BENCH" ] || (cd "$ROOT" && cargo build --release --locked --bin etcd --bin etcd-bench >&2)

WORK=$(mktemp -d /tmp/etcd-growth.XXXXXX)
PID=
cleanup() {
  [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

read -r CPORT PPORT < <(python3 -c '
import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')
URL=http://127.0.0.1:$CPORT

start() { # DIR
  "$ETCD_BIN" -n bench -d "$1" -c "127.0.0.1:$CPORT" -s "127.0.0.1:$PPORT" \
    -snapshot-count "$SNAPSHOT_COUNT" >>"$WORK/server.log" 2>&1 &
  PID=$!
}
wait_get() { # PATH -> seconds until it answers 200
  python3 - "$URL$1" <<'PY'
import sys, time, urllib.request
t0 = time.monotonic()
while time.monotonic() - t0 < 120:
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
            if r.status == 200:
                print(f"{time.monotonic() - t0:.3f}")
                sys.exit(0)
    except Exception:
        time.sleep(0.005)
sys.exit("no answer within 120 s")
PY
}
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }

echo "== 1. small store: 1,000 keys, -c 64, $DURATION" >&2
start "$WORK/small"
wait_get /version >/dev/null
"$BENCH" --endpoints "$URL" --api v2 -c 64 --keys 1000 --duration "$DURATION" -q \
  --server-pid "$PID" put | tee "$WORK/small.txt"
kill -9 "$PID"; wait "$PID" 2>/dev/null || true; PID=

echo "== 2. growing store: $KEYS puts over $KEYS keys, -c 64" >&2
start "$WORK/grow"
wait_get /version >/dev/null
"$BENCH" --endpoints "$URL" --api v2 -c 64 --keys "$KEYS" --total "$KEYS" -q \
  --server-pid "$PID" put | tee "$WORK/grow.txt"

echo "== 3. kill -9 and restart" >&2
before=$(rss_mib "$PID")
kill -9 "$PID"; wait "$PID" 2>/dev/null || true
start "$WORK/grow"
secs=$(wait_get /v2/keys/bench/$((KEYS - 1)))
sleep 2
after=$(rss_mib "$PID")
ls -la "$WORK/grow/snap" >&2
echo "restart: GET answered ${secs}s after the start; RSS ${before} MiB before the kill, ${after} MiB after the restart"
