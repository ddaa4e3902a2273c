#!/usr/bin/env bash
# Runs the HTTP/JSON gateway requests of CMDS (default gateway.cmds, a name relative to this
# directory) with curl against http://ENDPOINT and prints a transcript:
#   $ <the line as written>
#   HTTP <status code>
#   <the response body>
# A non-stream body is printed whole, trailing newlines removed (nothing for an empty body).
# A "stream" answer is read for 1.5 s (curl -N --max-time 1.5) and every complete line
# received is printed in order; a last unterminated piece is printed only when the server
# ended the answer itself (it is then the whole rest of the body, e.g. a stream error).
#
# Line format: "[stream ][auth ]METHOD PATH[ BODY]"; "#" starts a comment line.
#   stream: the answer is a stream (see above);
#   auth:   send "Authorization: <the last token obtained>";
#   BODY:   everything after the path, sent as-is (Content-Type: application/json);
#           absent: no body at all.
# In PATH and BODY, $LEASE is the ID of the last lease granted (the decimal "ID" of the last
# /v3/lease/grant answer). The last token and lease ID are printed as TOKEN and LEASE wherever
# they appear in answers; nothing else is masked.
#   tools/v3-reference/gateway.sh 127.0.0.1:2379 > tools/v3-reference/gateway.etcd-3.4.23.txt
set -u -f
endpoint=$1
cmds=${2:-gateway.cmds}
here=$(dirname "$0")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gateway-ref.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
lease=
token=
# Prints $1 with the remembered token and lease masked.
mask() {
  local s=$1
  [ -n "$token" ] && s=${s//"$token"/TOKEN}
  [ -n "$lease" ] && s=${s//"$lease"/LEASE}
  printf '%s\n' "$s"
}
# The string value of the top-level JSON field $2 of the file $1 (empty if none).
field() {
  jq -r --arg f "$2" 'if type == "object" and (.[$f] | type) == "string" then .[$f] else empty end' \
    "$1" 2>/dev/null
}
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in '#'* | '') continue ;; esac
  rest=$line
  stream=0
  auth=0
  case "$rest" in "stream "*) stream=1 rest=${rest#stream } ;; esac
  case "$rest" in "auth "*) auth=1 rest=${rest#auth } ;; esac
  method=${rest%% *}
  rest=${rest#"$method"}
  rest=${rest# }
  path=${rest%% *}
  hasbody=0
  body=
  case "$rest" in *' '*) hasbody=1 body=${rest#* } ;; esac
  path=${path//\$LEASE/$lease}
  body=${body//\$LEASE/$lease}
  args=(-s -o "$tmp/body" -w '%{http_code}' -X "$method" -H 'Content-Type: application/json')
  [ $auth = 1 ] && args+=(-H "Authorization: $token")
  [ $hasbody = 1 ] && args+=(--data-binary "$body")
  [ $stream = 1 ] && args+=(-N --max-time 1.5)
  : > "$tmp/body"
  code=$(curl "${args[@]}" "http://$endpoint$path")
  rc=$?
  case "$path" in
    /v3/auth/authenticate) t=$(field "$tmp/body" token); [ -n "$t" ] && token=$t ;;
    /v3/lease/grant) l=$(field "$tmp/body" ID); [ -n "$l" ] && lease=$l ;;
  esac
  echo "\$ $line"
  echo "HTTP $code"
  if [ $stream = 1 ]; then
    while IFS= read -r out; do mask "$out"; done < "$tmp/body"
    # The unterminated end of an answer the server finished itself (not cut by the timeout).
    if [ $rc != 28 ] && [ -n "${out:-}" ]; then mask "$out"; fi
    out=
  else
    out=$(cat "$tmp/body")
    [ -n "$out" ] && mask "$out"
  fi
done < "$here/$cmds"
