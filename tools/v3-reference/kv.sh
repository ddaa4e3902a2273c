#!/usr/bin/env bash
# Runs the etcdctl 3.4 commands of kv.cmds (ETCDCTL_API=3) against ENDPOINT and prints a
# transcript: each command, its standard output, its "Error:" lines, and its exit code (a
# watch is ended after 2 seconds).
# tests/etcdctl_v3.rs runs the same commands against etcd-rs and compares the transcripts
# (cluster and member ids and raft terms masked).
#   tools/v3-reference/kv.sh 127.0.0.1:2379 > tools/v3-reference/kv.etcd-3.4.23.txt
set -u -f
endpoint=$1
here=$(dirname "$0")
while IFS= read -r line; do
  case "$line" in '#'* | '') continue ;; esac
  args=${line%% | *}
  input=
  if [ "$args" != "$line" ]; then input=${line#* | }; fi
  echo "\$ etcdctl $args"
  limit=
  case "$args" in watch*) limit="timeout 2" ;; esac
  out=$(printf '%b' "$input" | ETCDCTL_API=3 $limit etcdctl --endpoints "$endpoint" $args 2>/tmp/kv-ref.err)
  code=$?
  [ -n "$out" ] && printf '%s\n' "$out"
  grep '^Error:' /tmp/kv-ref.err
  if [ -n "$limit" ] && [ $code = 124 ]; then echo "[ended]"; else echo "[exit $code]"; fi
done < "$here/kv.cmds"
