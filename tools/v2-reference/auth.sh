#!/bin/bash
E=$1
r(){ echo "### ${*#$E}"; curl -s -i -m 5 "$@" | tr -d '\r' | grep -v -i "^date\|^content-length\|^access-control\|^x-etcd-cluster\|^x-raft\|^x-etcd-index"; echo; }
J='Content-Type: application/json'
r $E/v2/auth/users/root
r $E/v2/auth/users/nobody
r $E/v2/auth/roles/root
r $E/v2/auth/roles/guest
r -XPUT $E/v2/auth/users/alice -H "$J" -d '{"user":"alice","password":"apw"}'
r -XPUT $E/v2/auth/users/alice -H "$J" -d '{"user":"alice","password":"apw"}'
r -XPUT $E/v2/auth/roles/r1 -H "$J" -d '{"role":"r1","permissions":{"kv":{"read":["/foo/*"],"write":["/foo/*"]}}}'
r -XPUT $E/v2/auth/roles/r1 -H "$J" -d '{"role":"r1"}'
r -XPUT $E/v2/auth/roles/r2 -H "$J" -d '{"role":"r2","permissions":{"kv":{"read":["/pub"],"write":[]}}}'
r -XPUT $E/v2/auth/users/alice -H "$J" -d '{"user":"alice","grant":["r1","r2"]}'
r -XPUT $E/v2/auth/users/alice -H "$J" -d '{"user":"alice","grant":["nope"]}'
r $E/v2/auth/users/alice
r -XPUT $E/v2/auth/roles/r1 -H "$J" -d '{"role":"r1","grant":{"kv":{"read":["/bar"],"write":[]}}}'
r -XPUT $E/v2/auth/roles/r1 -H "$J" -d '{"role":"r1","revoke":{"kv":{"read":["/bar"],"write":[]}}}'
r $E/v2/auth/roles/r1
r -XPUT $E/v2/auth/enable
r $E/v2/auth/enable
r $E/v2/auth/roles/guest
r $E/v2/keys/pub
r -XPUT $E/v2/keys/pub -d value=1
r -XPUT $E/v2/auth/roles/guest -H "$J" -d '{"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}}'
r -u root:rootpw -XPUT $E/v2/auth/roles/guest -H "$J" -d '{"role":"guest","revoke":{"kv":{"read":["/*"],"write":["/*"]}}}'
r -u root:rootpw $E/v2/auth/roles/guest
r $E/v2/keys/pub
r -XPUT $E/v2/keys/pub -d value=2
r -u alice:apw $E/v2/keys/pub
r -u alice:apw -XPUT $E/v2/keys/pub -d value=3
r -u alice:apw -XPUT $E/v2/keys/foo/x -d value=4
r -u alice:apw $E/v2/keys/foo/x
r -u alice:apw $E/v2/keys/foo
r -u alice:apw "$E/v2/keys/foo?recursive=true"
r -u alice:apw -XPUT $E/v2/keys/foo -d dir=true
r -u alice:wrong $E/v2/keys/foo/x
r -u ghost:x $E/v2/keys/foo/x
r -u alice:apw $E/v2/auth/users
r -u alice:apw $E/v2/auth/users/alice
r -u alice:apw -XPUT $E/v2/auth/users/alice -H "$J" -d '{"user":"alice","password":"new"}'
r -u alice:apw "$E/v2/keys/foo/x?wait=true&waitIndex=1"
r -u root:rootpw -XDELETE $E/v2/auth/roles/root
r -u root:rootpw -XDELETE $E/v2/auth/users/root
r -u root:rootpw -XDELETE $E/v2/auth/users/root2
r -u root:rootpw -XPUT $E/v2/auth/users/alice -H "$J" -d '{"user":"alice","revoke":["r2"]}'
r -u root:rootpw -XDELETE $E/v2/auth/roles/r2
r -u root:rootpw -XPUT $E/v2/auth/users/bob -H "$J" -d '{"user":"bob"}'
r -u root:rootpw -XPUT $E/v2/auth/users/carl -H "$J" -d '{"user":"carl","password":"c","roles":["r1"]}'
r -u root:rootpw $E/v2/auth/users/carl
r -u root:rootpw $E/v2/members
r $E/v2/members
r $E/v2/stats/self
r $E/version
r $E/health
r -XDELETE $E/v2/auth/enable
r -u root:rootpw -XDELETE $E/v2/auth/enable
r $E/v2/auth/enable
r $E/v2/keys/pub
