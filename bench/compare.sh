#!/usr/bin/env bash
# Side-by-side benchmark: etcd-rs against Debian's etcd 3.4 (if installed), same settings, same
# etcd-bench workloads over the v2 API and the v3 API (gRPC), a fresh server (or cluster) per
# run, A/B order
# alternating per workload. Writes a Markdown table (default bench/results.md) and keeps each
# run's JSON and server logs in a work directory it names.
#
#   bench/compare.sh                 # everything (about 10 minutes on 2 cores)
#   bench/compare.sh put-c8 get-c64  # only these workloads (names in the list below)
#   DURATION=5s bench/compare.sh     # shorter runs
#
# Environment: DURATION (per run, default 10s), ETCD (path of the etcd 3.4 binary, default
# the one on PATH; none: etcd-rs only), OUT (the table's path), KEEP=1 keeps the work dir.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-10s}
OUT=${OUT:-$ROOT/bench/results.md}
ETCD=${ETCD:-$(command -v etcd || true)}
RS=$ROOT/target/release/etcd
BENCH=$ROOT/target/release/etcd-bench

# name | members | API | etcd-bench arguments (a name ending in -auth: v3 auth turned on
# first, with etcdctl, for a user "bench" that may read and write /bench…, see auth_setup; a
# name ending in -scraped: /metrics fetched from every member each second during the run, as
# Prometheus would, to measure what metrics cost)
WORKLOADS=(
  "put-c1|1|v2|-c 1 --duration $DURATION put"
  "put-c8|1|v2|-c 8 --duration $DURATION put"
  "put-c64|1|v2|-c 64 --duration $DURATION put"
  "get-c1|1|v2|-c 1 --duration $DURATION get"
  "get-c64|1|v2|-c 64 --duration $DURATION get"
  "get-consistent-c8|1|v2|-c 8 --duration $DURATION get --consistent"
  "mixed-c64|1|v2|-c 64 --duration $DURATION mixed --read-fraction 0.9"
  "txn-c8|1|v2|-c 8 --duration $DURATION txn"
  "cluster3-put-c1|3|v2|-c 1 --duration $DURATION put"
  "cluster3-put-c8|3|v2|-c 8 --duration $DURATION put"
  "cluster3-put-c64|3|v2|-c 64 --duration $DURATION put"
  "watch-1000|1|v2|watch --watchers 1000 --writes 100"
  "load-1m-keys|1|v2|-c 64 --keys 1000000 --total 1000000 put"
  "v3-put-c8|1|v3|-c 8 --duration $DURATION put"
  "v3-put-c64|1|v3|-c 64 --duration $DURATION put"
  "v3-put-c64-auth|1|v3|-c 64 --duration $DURATION --user bench:benchpw put"
  "v3-put-c64-scraped|1|v3|-c 64 --duration $DURATION put"
  "v3-range-c64|1|v3|-c 64 --duration $DURATION get --consistent"
  "v3-range-serializable-c64|1|v3|-c 64 --duration $DURATION get"
  "v3-txn-c8|1|v3|-c 8 --duration $DURATION txn"
  "v3-cluster3-put-c8|3|v3|-c 8 --duration $DURATION put"
  "v3-cluster3-put-c64|3|v3|-c 64 --duration $DURATION put"
  "v3-watch-1000|1|v3|-c 8 watch --watchers 1000 --writes 100"
  "v3-load-1m-keys|1|v3|-c 64 --keys 1000000 --total 1000000 put"
)

echo "building etcd-rs (release)..." >&2
(cd "$ROOT" && cargo build --release --locked --bin etcd --bin etcd-bench >&2)

WORK=$(mktemp -d /tmp/etcd-compare.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "work dir kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# N distinct free loopback ports (all bound at once, so no two are the same).
ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# start KIND MEMBERS RUNDIR: starts a fresh server or cluster; sets ENDPOINTS and SERVER_PIDS.
start() {
  local kind=$1 members=$2 dir=$3 bin
  if [ "$kind" = etcd-rs ]; then bin=$RS; else bin=$ETCD; fi
  read -r -a ps <<<"$(ports $((members * 2)))"
  local cluster="" i
  for ((i = 0; i < members; i++)); do
    cluster+="${cluster:+,}m$i=http://127.0.0.1:${ps[$((2 * i + 1))]}"
  done
  ENDPOINTS="" SERVER_PIDS=()
  for ((i = 0; i < members; i++)); do
    local c=${ps[$((2 * i))]} p=${ps[$((2 * i + 1))]}
    mkdir -p "$dir/m$i"
    "$bin" --name "m$i" --data-dir "$dir/m$i/data" \
      --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
      --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      --snapshot-count 100000 --enable-v2 >"$dir/m$i/log" 2>&1 &
    PIDS+=($!)
    SERVER_PIDS+=($!)
    ENDPOINTS+="${ENDPOINTS:+,}http://127.0.0.1:$c"
  done
  # Ready when every member answers /health with a leader (bounded: 30 s).
  local deadline=$((SECONDS + 30)) e
  for e in ${ENDPOINTS//,/ }; do
    until curl -sf --max-time 1 "$e/health" 2>/dev/null | grep -q '"true"'; do
      if ((SECONDS > deadline)); then
        echo "$kind did not become healthy; log:" >&2
        tail -20 "$dir"/m*/log >&2
        exit 1
      fi
      sleep 0.1
    done
  done
}

# auth_setup ENDPOINT: root, a user "bench" with read-write on the /bench prefix, auth on.
auth_setup() {
  local ctl=(env ETCDCTL_API=3 etcdctl --endpoints "${1#http://}")
  "${ctl[@]}" user add root:rootpw >/dev/null
  "${ctl[@]}" user grant-role root root >/dev/null
  "${ctl[@]}" role add bench >/dev/null
  "${ctl[@]}" role grant-permission bench readwrite /bench --prefix >/dev/null
  "${ctl[@]}" user add bench:benchpw >/dev/null
  "${ctl[@]}" user grant-role bench bench >/dev/null
  "${ctl[@]}" auth enable >/dev/null
}

stop() {
  for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SERVER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}

# run KIND WORKLOAD-LINE: one fresh server, one etcd-bench run; prints the JSON path.
run() {
  local kind=$1 name members api args
  IFS='|' read -r name members api args <<<"$2"
  local dir=$WORK/$name/$kind
  mkdir -p "$dir"
  start "$kind" "$members" "$dir"
  if [[ $name == *-auth ]]; then auth_setup "${ENDPOINTS%%,*}"; fi
  local pidargs=() p scraper=""
  for p in "${SERVER_PIDS[@]}"; do pidargs+=(--server-pid "$p"); done
  if [[ $name == *-scraped ]]; then
    (while :; do
      for e in ${ENDPOINTS//,/ }; do curl -sf --max-time 1 -o /dev/null "$e/metrics" || true; done
      sleep 1
    done) &
    scraper=$!
  fi
  # shellcheck disable=SC2086
  if ! "$BENCH" --api "$api" --endpoints "$ENDPOINTS" "${pidargs[@]}" --json -q $args \
    >"$dir/result.json" 2>"$dir/bench.err"; then
    echo "{}" >"$dir/result.json"
    echo "  $kind $name failed: $(tail -1 "$dir/bench.err")" >&2
  fi
  if [ -n "$scraper" ]; then kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; fi
  stop
  echo "  $kind $name: $(cat "$dir/result.json")" >&2
}

SELECTED=("$@")
i=0
for w in "${WORKLOADS[@]}"; do
  name=${w%%|*}
  if [ ${#SELECTED[@]} -gt 0 ] && [[ ! " ${SELECTED[*]} " =~ \ $name\  ]]; then continue; fi
  echo "$name" >>"$WORK/order"
  if [ -z "$ETCD" ]; then
    run etcd-rs "$w"
  elif ((i % 2 == 0)); then
    run etcd-rs "$w"
    run etcd "$w"
  else
    run etcd "$w"
    run etcd-rs "$w"
  fi
  i=$((i + 1))
done

python3 - "$WORK" "$OUT" "${ETCD:+$("$ETCD" --version | head -1)}" <<'PY'
import json, os, sys
work, out, etcd_version = sys.argv[1], sys.argv[2], sys.argv[3]
def load(name, kind):
    try:
        with open(os.path.join(work, name, kind, "result.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}
def num(v, fmt="{:,.0f}"):
    return "–" if v is None else fmt.format(v)
def ratio(a, b, invert=False):
    if not a or not b:
        return "–"
    return "{:.2f}×".format(b / a if invert else a / b)
rows = []
for name in open(os.path.join(work, "order")).read().split():
    a, b = load(name, "etcd-rs"), load(name, "etcd")
    load_run = "load-" in name
    la, lb = a.get("latency_us", {}), b.get("latency_us", {})
    errs = lambda r: sum(r.get("errors", {}).values()) if r else None
    if load_run:
        ra, rb = a.get("server_rss_kib"), b.get("server_rss_kib")
        rows.append("| {} | RSS {} MiB | RSS {} MiB | {} (memory) | | | | | {} / {} |".format(
            name, num(ra and ra / 1024, "{:,.0f}"), num(rb and rb / 1024, "{:,.0f}"),
            ratio(ra, rb), num(errs(a)), num(errs(b))))
        continue
    rows.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |".format(
        name, num(a.get("ops_per_s")), num(b.get("ops_per_s")),
        ratio(a.get("ops_per_s"), b.get("ops_per_s")),
        num(la.get("p99") and la["p99"] / 1000, "{:.2f}"),
        num(lb.get("p99") and lb["p99"] / 1000, "{:.2f}"),
        num(a.get("server_cpu_us_per_op"), "{:.1f}"),
        num(b.get("server_cpu_us_per_op"), "{:.1f}"),
        num(errs(a)), num(errs(b))))
head = [
    "| workload | etcd-rs ops/s | etcd ops/s | ratio | etcd-rs p99 ms | etcd p99 ms "
    "| etcd-rs server CPU µs/op | etcd server CPU µs/op | errors (rs / etcd) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]
note = ("v2 API unless the name says v3 (gRPC), 256-byte values, 1,000 keys unless named, "
        "fresh server per run, "
        "etcd-bench closed loop; etcd: {}".format(etcd_version or "not installed"))
text = "\n".join([note, ""] + head + rows) + "\n"
with open(out, "w") as f:
    f.write(text)
print(text)
PY
echo "table written to $OUT" >&2
