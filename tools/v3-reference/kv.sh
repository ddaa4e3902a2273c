#!/usr/bin/env bash
# Runs the etcdctl 3.4 commands of CMDS (default kv.cmds; ETCDCTL_API=3) against ENDPOINT and
# prints a transcript: each command, its standard output, its "Error:" lines, and its exit
# code (a watch is ended after 2 seconds, its standard input held open until then).
# tests/etcdctl_v3.rs runs the same commands against etcd-rs and compares the transcripts
# (cluster and member ids and raft terms masked).
#   tools/v3-reference/kv.sh 127.0.0.1:2379 > tools/v3-reference/kv.etcd-3.4.23.txt
#   tools/v3-reference/kv.sh 127.0.0.1:2379 members.cmds > tools/v3-reference/members.etcd-3.4.23.txt
# ETCDCTL_EXTRA (default empty) holds more etcdctl flags, passed right after "--endpoints
# ENDPOINT" on every call (split at spaces), e.g. for TLS with a client certificate:
#   ETCDCTL_EXTRA="--cacert=fixtures/ca/ca.crt --cert=fixtures/ca/client.crt \
#     --key=fixtures/ca/client.key.insecure" tools/v3-reference/kv.sh https://127.0.0.1:2379 auth.cmds
# $LEASE in a command stands for the id the last "lease grant" printed, $MEMBER for the hex id
# of the member the last successful "member add" added (from "Member <hex> added ..." or, with
# -w json, from its "member" ID); they are masked as LEASE and MEMBER in the output (MEMBER also
# in etcdctl's %16x padding and, in json, in decimal).
set -u -f
endpoint=$1
extra=${ETCDCTL_EXTRA:-}
cmds=${2:-kv.cmds}
here=$(dirname "$0")
lease=none
member=none
mdec=
while IFS= read -r line; do
  case "$line" in '#'* | '') continue ;; esac
  args=${line%% | *}
  shown=$args
  args=${args//\$LEASE/$lease}
  args=${args//\$MEMBER/$member}
  input=
  if [ "$shown" != "$line" ]; then input=${line#* | }; fi
  echo "\$ etcdctl $shown"
  limit=
  case "$args" in watch*) limit="timeout 2" ;; esac
  # A watch's standard input stays open while it runs (for "watch -i").
  hold=0
  [ -n "$limit" ] && hold=3
  out=$({ printf '%b' "$input"; sleep $hold; } | ETCDCTL_API=3 $limit etcdctl --endpoints "$endpoint" $extra $args 2>/tmp/kv-ref.err)
  code=$?
  case "$args" in "lease grant"*) lease=$(printf '%s' "$out" | awk '{print $2}') ;; esac
  out=${out//$lease/LEASE}
  if [ $code = 0 ]; then
    case "$args" in "member add"*)
      case "$out" in
        Member*) member=$(printf '%s' "$out" | awk 'NR==1 {print $2}') ;;
        '{'*) member=$(printf '%x' "$(printf '%s' "$out" | sed -n 's/.*"member":{"ID":\([0-9]*\).*/\1/p')") ;;
      esac
      mdec=$(printf '%u' "0x$member") ;;
    esac
  fi
  # etcdctl prints member ids as %16x: the padded form first, then bare (hex) and decimal (json).
  masks="s/$lease/LEASE/g"
  if [ -n "$mdec" ]; then
    padded=$(printf '%16s' "$member")
    out=${out//$padded/MEMBER}
    out=${out//$member/MEMBER}
    out=${out//$mdec/MEMBER}
    masks="$masks; s/$padded/MEMBER/g; s/$member/MEMBER/g; s/$mdec/MEMBER/g"
  fi
  [ -n "$out" ] && printf '%s\n' "$out"
  grep '^Error:' /tmp/kv-ref.err | sed "$masks"
  if [ -n "$limit" ] && [ $code = 124 ]; then echo "[ended]"; else echo "[exit $code]"; fi
done < "$here/$cmds"
