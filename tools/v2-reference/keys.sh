#!/bin/bash
# usage: keys.sh BASEURL  — exercises v2 API, prints status + selected headers + body
E=$1
r(){ echo "### ${*#$E}"; curl -s -i -m 5 "$@" | tr -d '\r' | grep -i "^HTTP/\|^x-etcd-index\|^x-raft\|^content-type\|^location\|^www-auth\|^{\|^\[\|^[a-z0-9\"]" | grep -v -i "^date\|^content-length\|^access-control\|^x-etcd-cluster"; echo; }
r $E/v2/keys/cas -XPUT -d value=one
r "$E/v2/keys/cas?prevValue=two" -XPUT -d value=three
r "$E/v2/keys/cas?prevValue=one" -XPUT -d value=two
r "$E/v2/keys/cas?prevIndex=1" -XPUT -d value=x
r "$E/v2/keys/cas?prevIndex=1&prevValue=zz" -XPUT -d value=x
r "$E/v2/keys/cas?prevExist=false" -XPUT -d value=x
r "$E/v2/keys/new1?prevExist=false" -XPUT -d value=x
r "$E/v2/keys/new2?prevExist=true" -XPUT -d value=x
r "$E/v2/keys/new1?prevExist=true" -XPUT -d value=y
r "$E/v2/keys/missing?prevValue=a" -XPUT -d value=x
r "$E/v2/keys/cas?prevValue=two" -XDELETE
r "$E/v2/keys/cas?prevValue=zzz" -XDELETE
r "$E/v2/keys/new1?prevIndex=1" -XDELETE
r "$E/v2/keys/new1" -XDELETE
r "$E/v2/keys/q" -XPOST -d value=job1
r "$E/v2/keys/q" -XPOST -d value=job2
r "$E/v2/keys/q?recursive=true&sorted=true"
r "$E/v2/keys/t1" -XPUT -d value=a -d ttl=100
r "$E/v2/keys/t1?prevExist=true" -XPUT -d value=a -d ttl=
r "$E/v2/keys/t1" -XPUT -d ttl=50 -d refresh=true -d prevExist=true
r "$E/v2/keys/t1" -XPUT -d ttl=50 -d refresh=true
r "$E/v2/keys/t1" -XPUT -d value=b -d ttl=50 -d refresh=true
r "$E/v2/keys/t1" -XPUT -d refresh=true
r "$E/v2/keys/t1" -XPUT -d value=a -d ttl=abc
r "$E/v2/keys/t1" -XPUT -d value=a -d ttl=-5
r "$E/v2/keys/t1" -XPUT
r "$E/v2/keys/t1?prevIndex=abc" -XPUT -d value=a
r "$E/v2/keys/t1?prevExist=maybe" -XPUT -d value=a
r "$E/v2/keys/t1?recursive=maybe"
r "$E/v2/keys/t1?wait=true&waitIndex=abc"
r "$E/v2/keys/t1" -XPATCH
r "$E/v2/keys/t1/child" -XPUT -d value=a
r "$E/v2/keys/t1/child"
r "$E/v2/keys/_etcd/x" -XPUT -d value=a
r "$E/v2/keys/_etcd"
r "$E/v2/keys/d2" -XPUT -d dir=true -d ttl=100
r "$E/v2/keys/d2?prevExist=true" -XPUT -d dir=true -d ttl=
r "$E/v2/keys/d2" -XPUT -d dir=true -d value=x
r "$E/v2/keys/d2" -XPUT -d value=x
r "$E/v2/keys/d2?dir=true" -XDELETE
r "$E/v2/keys/d3" -XPUT -d value=file
r "$E/v2/keys/d3?dir=true" -XDELETE
r "$E/v2/keys/d4" -XPUT -d value=file
r "$E/v2/keys/d4" -XPUT -d dir=true
r "$E/v2/keys/" -XPUT -d value=x
r "$E/v2/keys/" -XDELETE
r "$E/v2/keys/?recursive=true" -XDELETE
r "$E/v2/keys/nothere" -XDELETE
r "$E/v2/keys/d5/x" -XPUT -d value=x
r "$E/v2/keys/d5?prevValue=x" -XDELETE
r "$E/v2/keys/d5?recursive=true&prevIndex=1" -XDELETE
r "$E/v2/keys/t1?wait=true&waitIndex=1"
r "$E/v2/keys/foo?wait=true&waitIndex=4"
r "$E/v2/keys/?wait=true&recursive=true&waitIndex=7"
r "$E/v2/keys/nope?quorum=true"
r "$E/v2/keys/foo?quorum=true"
r "$E/v2/machines"
r "$E/v2/members"
r "$E/v2/stats/self"
r "$E/v2/stats/leader"
r "$E/v2/stats/store"
r "$E/version"
r "$E/health"
r "$E/v2/keys/foo?sorted=true&recursive=true"
r "$E/v2/keys/big" -XPUT --data-urlencode value@/etc/services
