//! Multi-member clusters as real processes (spec section 7, the seed's "Clustering" section):
//! joining with `-C`, the machine registry, leader election after a kill, writes on any member,
//! consistent reads and watches on followers, catch-up after a restart or by snapshot, member
//! removal and addition, `-maxsize`, a paused (partitioned) leader, and loss of quorum.
//!
//! Index arithmetic relied on (spec section 4): node1 commits its registration (1) and its
//! empty leader entry (2), each join is one entry (node2: 3, node3: 4), so the first client write
//! of a three-member cluster is 5; a newly elected leader commits one empty entry first. GET and
//! listings report the index of the last entry that changed the store.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// `{"action":"SET","key":K,"value":V,"newKey":true,"index":N}`
fn set_json(key: &str, value: &str, index: u64) -> String {
    format!(r#"{{"action":"SET","key":"{key}","value":"{value}","newKey":true,"index":{index}}}"#)
}

/// `{"action":"GET","key":K,"value":V,"index":N}`
fn get_json(key: &str, value: &str, index: u64) -> String {
    format!(r#"{{"action":"GET","key":"{key}","value":"{value}","index":{index}}}"#)
}

/// The value of `/_etcd/machines/<name>`: `raft=<peer URL>&etcd=<client URL>`.
fn registration(node: &Node) -> String {
    format!("raft={}&etcd={}", node.peer_url(), node.client_url())
}

/// The exact listing of `/v1/keys/_etcd/machines` holding `members` (sorted by name), at `index`.
fn machines_listing(c: &Cluster, members: &[usize], index: u64) -> String {
    let mut nodes: Vec<&Node> = members.iter().map(|&i| c.member(i)).collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let entries: Vec<String> = nodes
        .iter()
        .map(|n| {
            format!(
                r#"{{"action":"GET","key":"/_etcd/machines/{}","value":"{}","index":{index}}}"#,
                n.name,
                registration(n)
            )
        })
        .collect();
    format!("[{}]", entries.join(","))
}

/// The answer to `DELETE /v1/machines/<name>`: the deletion of `/_etcd/machines/<name>`.
fn machine_deleted_json(node: &Node, index: u64) -> String {
    format!(
        r#"{{"action":"DELETE","key":"/_etcd/machines/{}","prevValue":"{}","index":{index}}}"#,
        node.name,
        registration(node)
    )
}

/// `http://C1, http://C2, ...` of these members, in the given order.
fn client_urls(c: &Cluster, members: &[usize]) -> String {
    members
        .iter()
        .map(|&i| c.member(i).client_url())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `FAST_TIMING` plus `more`.
fn fast_with(more: &[&'static str]) -> Vec<&'static str> {
    let mut flags = FAST_TIMING.to_vec();
    flags.extend_from_slice(more);
    flags
}

/// A form POST of `value` to `/v1/keys/<key>` on member `i` with a long deadline; returns the
/// response and how long it took.
fn timed_write(c: &Cluster, i: usize, key: &str, value: &str) -> (Response, Duration) {
    let body = form(&[("value", value)]);
    let start = Instant::now();
    let r = try_request(
        &c.member(i).client_addr(),
        "POST",
        &format!("/v1/keys/{key}"),
        Some((FORM_CONTENT_TYPE, body.as_bytes())),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("POST /v1/keys/{key} on {}: {e}", c.member(i).name));
    (r, start.elapsed())
}

/// Asserts `500 {"errorCode":300,"message":"Raft Internal Error","cause":"<non-empty>"}`.
#[track_caller]
fn assert_raft_internal_error(r: &Response) {
    let text = r.text();
    const PREFIX: &str = r#"{"errorCode":300,"message":"Raft Internal Error","cause":""#;
    assert!(
        r.status == 500 && text.starts_with(PREFIX) && text.ends_with("\"}"),
        "expected 500 {PREFIX}...\"}}, got {} {text:?}",
        r.status
    );
    assert_eq!(r.content_type(), "application/json", "body {text}");
    let cause = r.json()["cause"].as_str().unwrap_or("").to_string();
    assert!(!cause.is_empty(), "error 300 without a cause: {text}");
}

/// Writes `/<prefix>/k<i>` = `v<i>` for `i` in `0..n` from `threads` client threads, spread over
/// the live members; every write must answer 200. Returns the indexes of all writes.
fn write_concurrently(c: &Cluster, prefix: &str, n: usize, threads: usize) -> Vec<u64> {
    let addrs: Vec<String> = c
        .live()
        .iter()
        .map(|&i| c.member(i).client_addr())
        .collect();
    thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let addr = addrs[t % addrs.len()].clone();
                s.spawn(move || {
                    let mut indexes = Vec::new();
                    for k in (t..n).step_by(threads) {
                        let path = format!("/v1/keys/{prefix}/k{k}");
                        let body = form(&[("value", &format!("v{k}"))]);
                        let r = try_request(
                            &addr,
                            "POST",
                            &path,
                            Some((FORM_CONTENT_TYPE, body.as_bytes())),
                            REQUEST_TIMEOUT,
                        )
                        .unwrap_or_else(|e| panic!("POST {path} on {addr}: {e}"));
                        assert_eq!(r.status, 200, "POST {path} on {addr}: {}", r.text());
                        indexes.push(r.index());
                    }
                    indexes
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a writer thread panicked"))
            .collect()
    })
}

/// The seed's "Clustering" walkthrough, with the default raft timing.
#[test]
fn seed_clustering_sequence_with_default_timing() {
    let mut c = Cluster::start(3, &[]);
    let machines = client_urls(&c, &[0, 1, 2]);
    assert_eq!(c.expected_machines(), machines);

    // Every member knows every member, the registry holds all three at index 4, node1 leads.
    let listing = machines_listing(&c, &[0, 1, 2], 4);
    for i in 0..3 {
        assert_text(&c.member(i).get("/v1/machines"), 200, &machines);
        assert_json(&c.member(i).get("/v1/keys/_etcd/machines"), 200, &listing);
        assert_text(&c.member(i).get("/v1/leader"), 200, &c.member(0).peer_url());
    }
    assert_eq!(c.leader(), 0);

    let r = c.member(0).post_form("/v1/keys/foo", &[("value", "bar")]);
    assert_json(&r, 200, &set_json("/foo", "bar", 5));

    // Kill the leader: the others elect a new one within 3 s.
    c.kill(0);
    let killed = Instant::now();
    let leader = c.leader_within(Duration::from_secs(15));
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(3),
        "a new leader took {took:?} after the leader was killed (at most 3 s expected)"
    );
    assert!(leader == 1 || leader == 2, "leader {leader}");
    for i in [1, 2] {
        assert_text(
            &c.member(i).get("/v1/leader"),
            200,
            &c.member(leader).peer_url(),
        );
    }

    // The acknowledged write survives on the others.
    c.wait_body(1, "/v1/keys/foo", &get_json("/foo", "bar", 5));
    c.wait_body(2, "/v1/keys/foo", &get_json("/foo", "bar", 5));

    // Writes continue on the survivors: index 6 is the new leader's empty entry.
    let r = c.member(1).post_form("/v1/keys/foo2", &[("value", "bar2")]);
    assert_json(&r, 200, &set_json("/foo2", "bar2", 7));
    assert_json(
        &c.member(1).get("/v1/keys/foo2"),
        200,
        &get_json("/foo2", "bar2", 7),
    );
    let r = c.member(2).post_form("/v1/keys/foo3", &[("value", "bar3")]);
    assert_json(&r, 200, &set_json("/foo3", "bar3", 8));
    // GET reports the index of the last change of the store (8), not of the key (5).
    c.wait_body(1, "/v1/keys/foo", &get_json("/foo", "bar", 8));
    let before_restart = c.member(1).get("/v1/keys/foo");

    // Kill all, restart all with the same commands: nothing acknowledged is lost.
    c.kill_all();
    c.restart_all();
    for i in 0..3 {
        c.wait_body(i, "/v1/keys/foo", &get_json("/foo", "bar", 8));
        c.wait_body(i, "/v1/keys/foo2", &get_json("/foo2", "bar2", 8));
        c.wait_body(i, "/v1/keys/foo3", &get_json("/foo3", "bar3", 8));
        assert_text(&c.member(i).get("/v1/machines"), 200, &machines);
    }
    let after_restart = c.member(1).get("/v1/keys/foo");
    assert_json(&after_restart, 200, &before_restart.text());
    c.leader();
    let index = c.set(1, "foo4", "bar4");
    assert!(index > 8, "a write after the restart got index {index}");
    c.wait_converged("foo4", "bar4");
}

#[test]
fn follower_writes_are_visible_there_at_once_and_consistent_reads_and_watches_work_anywhere() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let leader = c.leader();
    let followers = c.followers();
    let (f1, f2) = (followers[0], followers[1]);

    // A write sent to a follower is answered after it is applied there.
    for round in 0..10 {
        for w in [f1, f2] {
            let key = format!("/fw/r{round}/{}", c.member(w).name);
            let value = format!("value-{round}");
            let r = c
                .member(w)
                .post_form(&format!("/v1/keys{key}"), &[("value", &value)]);
            assert_eq!(r.status, 200, "write on a follower: {}", r.text());
            let index = r.index();
            assert_json(&r, 200, &set_json(&key, &value, index));
            assert_json(
                &c.member(w).get(&format!("/v1/keys{key}")),
                200,
                &get_json(&key, &value, index),
            );
        }
    }

    // `?consistent=true` on any member right after a write on any other member shows it.
    let all = [leader, f1, f2];
    for round in 0..3 {
        for w in all {
            for reader in all {
                if reader == w {
                    continue;
                }
                let key = format!(
                    "/cr/r{round}/{}-{}",
                    c.member(w).name,
                    c.member(reader).name
                );
                let value = format!("cv{round}");
                let r = c
                    .member(w)
                    .post_form(&format!("/v1/keys{key}"), &[("value", &value)]);
                assert_eq!(r.status, 200, "write: {}", r.text());
                let index = r.index();
                assert_json(
                    &c.member(reader)
                        .get(&format!("/v1/keys{key}?consistent=true")),
                    200,
                    &get_json(&key, &value, index),
                );
            }
        }
    }

    // Watches on a follower and on the leader fire for a write made on the other follower.
    let mut on_follower = c.member(f2).spawn_request("GET", "/v1/watch/wf", None);
    let mut on_leader = c.member(leader).spawn_request("GET", "/v1/watch/wf", None);
    c.member(f2).assert_pending(&mut on_follower);
    c.member(leader).assert_pending(&mut on_leader);
    let r = c
        .member(f1)
        .post_form("/v1/keys/wf/x", &[("value", "fired")]);
    assert_eq!(r.status, 200, "write: {}", r.text());
    let index = r.index();
    let written = set_json("/wf/x", "fired", index);
    assert_json(&r, 200, &written);
    assert_json(&on_follower.wait(Duration::from_secs(10)), 200, &written);
    assert_json(&on_leader.wait(Duration::from_secs(10)), 200, &written);

    // A history watch on a follower replays the same event at once.
    let body = form(&[("index", &index.to_string())]);
    let replay = c.member(f2).request_within(
        "POST",
        "/v1/watch/wf",
        Some((FORM_CONTENT_TYPE, body.as_bytes())),
        AT_ONCE,
    );
    assert_json(&replay, 200, &written);
}

#[test]
fn restarted_old_leader_catches_up_on_writes_made_while_it_was_down() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let old = c.leader();
    let first = c.set(old, "down/before", "0");
    c.kill(old);
    c.leader();
    let live = c.live();
    let mut last = first;
    for k in 0..40 {
        let index = c.set(
            live[k % live.len()],
            &format!("down/k{k}"),
            &format!("v{k}"),
        );
        assert!(index > last, "index {index} after {last}");
        last = index;
    }

    c.restart(old);
    for k in 0..40 {
        c.wait_value(old, &format!("down/k{k}"), &format!("v{k}"));
    }
    c.wait_body(
        old,
        "/v1/keys/down/k39",
        &get_json("/down/k39", "v39", last),
    );
    c.wait_body(
        old,
        "/v1/keys/down/before",
        &get_json("/down/before", "0", last),
    );

    // It takes writes again, and everyone agrees on the leader.
    let index = c.set(old, "down/after", "x");
    assert!(index > last, "index {index} after {last}");
    c.wait_converged("down/after", "x");
    c.leader();
}

#[test]
fn a_member_joining_after_log_compaction_is_caught_up_by_a_snapshot() {
    const KEYS: usize = 20_000;
    let mut c = Cluster::start(2, &fast_with(&["-snapshot-count", "2000"]));
    let indexes = write_concurrently(&c, "snap", KEYS, 16);
    let mut unique = indexes.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        KEYS,
        "two writes were answered with the same index"
    );

    // Both members have taken snapshots.
    for i in 0..2 {
        poll_until(CONVERGE_TIMEOUT, "a snapshot file on an old member", || {
            (!c.member(i).data_files("snap", ".snap").is_empty()).then_some(())
        });
    }

    let new = c.add_member("node3");
    let leader = c.leader();
    let samples = (0..KEYS).step_by(997).chain([KEYS - 1]);
    for k in samples {
        let path = format!("/v1/keys/snap/k{k}");
        let on_leader = c.member(leader).get(&path);
        assert_eq!(
            on_leader.status,
            200,
            "{path} on the leader: {}",
            on_leader.text()
        );
        assert_eq!(
            on_leader.json()["value"].as_str(),
            Some(format!("v{k}").as_str())
        );
        c.wait_body(new, &path, &on_leader.text());
    }
    let listing = c.member(leader).get("/v1/keys/snap");
    assert_eq!(listing.status, 200);
    assert_eq!(
        listing.json().as_array().map(Vec::len),
        Some(KEYS),
        "listing of /snap on the leader"
    );
    c.wait_body(new, "/v1/keys/snap", &listing.text());

    // The snapshot it received is on its disk.
    poll_until(
        CONVERGE_TIMEOUT,
        "a snap/*.snap file in the new member's data dir",
        || (!c.member(new).data_files("snap", ".snap").is_empty()).then_some(()),
    );

    // It is a full member: it takes writes that the others see.
    let index = c.set(new, "snap/after", "x");
    assert!(index > unique[KEYS - 1], "index {index}");
    c.wait_converged("snap/after", "x");
}

#[test]
fn five_members_survive_two_being_killed_and_a_restarted_one_catches_up() {
    let mut c = Cluster::start(5, &FAST_TIMING);
    let first = c.set(0, "five/before", "0");
    c.wait_body_everywhere(
        "/v1/keys/five/before",
        &get_json("/five/before", "0", first),
    );

    // Kill the leader and node1 (node1 and node2 if node1 leads).
    let leader = c.leader();
    let other = if leader == 0 { 1 } else { 0 };
    c.kill(leader);
    c.kill(other);
    c.leader();
    let live = c.live();
    assert_eq!(live.len(), 3);

    let mut last = first;
    for k in 0..15 {
        let m = live[k % live.len()];
        let key = format!("/five/k{k}");
        let value = format!("v{k}");
        let r = c
            .member(m)
            .post_form(&format!("/v1/keys{key}"), &[("value", &value)]);
        assert_eq!(r.status, 200, "write on a survivor: {}", r.text());
        let index = r.index();
        assert!(index > last, "index {index} after {last}");
        last = index;
        assert_json(&r, 200, &set_json(&key, &value, index));
        assert_json(
            &c.member(m).get(&format!("/v1/keys{key}")),
            200,
            &get_json(&key, &value, index),
        );
    }
    c.wait_body_everywhere("/v1/keys/five/k14", &get_json("/five/k14", "v14", last));

    // Restart the killed member that is not node1: its command line still has `-C <node1>`,
    // which is down; with its data dir it must rejoin without it.
    let restarted = if leader == 0 { 1 } else { leader };
    c.restart(restarted);
    for k in 0..15 {
        c.wait_value(restarted, &format!("five/k{k}"), &format!("v{k}"));
    }
    c.wait_body(
        restarted,
        "/v1/keys/five/k14",
        &get_json("/five/k14", "v14", last),
    );
    c.leader();
    let index = c.set(restarted, "five/after", "x");
    assert!(index > last, "index {index} after {last}");
    c.wait_converged("five/after", "x");
}

#[test]
fn a_joiner_tries_each_address_of_a_comma_separated_list_and_may_join_through_a_follower() {
    let mut c = Cluster::start(2, &FAST_TIMING);
    let follower = c.followers()[0];
    let dead = free_ports_vec(1, &c.used_ports())[0];
    let join = format!("127.0.0.1:{dead},{}", c.member(follower).peer_addr());
    let n3 = c.add_member_with("node3", &join);

    let machines = client_urls(&c, &[0, 1, n3]);
    let listing = machines_listing(&c, &[0, 1, n3], 4);
    for i in c.live() {
        assert_text(&c.machines_on(i), 200, &machines);
        c.wait_body(i, "/v1/keys/_etcd/machines", &listing);
    }
    let index = c.set(n3, "joined", "yes");
    assert!(index >= 5, "index {index}");
    c.wait_converged("joined", "yes");
}

#[test]
fn a_dead_member_can_be_removed_and_a_new_member_added() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let before = c.set(0, "rm/before", "0");
    c.kill(2);
    c.leader();

    let r = c.remove_member(0, 2);
    assert_eq!(r.status, 200, "DELETE /v1/machines/node3: {}", r.text());
    let removed_at = r.index();
    assert!(removed_at > before, "index {removed_at} after {before}");
    assert_json(&r, 200, &machine_deleted_json(c.member(2), removed_at));

    let machines = client_urls(&c, &[0, 1]);
    assert_eq!(c.expected_machines(), machines);
    assert_text(&c.member(0).get("/v1/machines"), 200, &machines);
    c.wait_body(1, "/v1/machines", &machines);
    assert_json(
        &c.member(0).get("/v1/keys/_etcd/machines"),
        200,
        &machines_listing(&c, &[0, 1], removed_at),
    );

    let after = c.set(1, "rm/after", "1");
    assert!(after > removed_at, "index {after} after {removed_at}");
    c.wait_converged("rm/after", "1");

    let n4 = c.add_member("node4");
    let machines = client_urls(&c, &[0, 1, n4]);
    assert_eq!(c.expected_machines(), machines);
    for i in c.live() {
        assert_text(&c.member(i).get("/v1/machines"), 200, &machines);
    }
    c.wait_value(n4, "rm/before", "0");
    c.wait_value(n4, "rm/after", "1");
    let from_n4 = c.set(n4, "rm/from-node4", "4");
    assert!(from_n4 > after, "index {from_n4} after {after}");
    c.wait_converged("rm/from-node4", "4");
    c.leader();
}

#[test]
fn removing_the_leader_elects_another_leader_and_the_removed_process_exits() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let before = c.set(0, "rl/before", "0");
    let old = c.leader();
    let followers = c.followers();

    let r = c.remove_member(followers[0], old);
    assert_eq!(r.status, 200, "DELETE /v1/machines/<leader>: {}", r.text());
    let removed_at = r.index();
    assert!(removed_at > before, "index {removed_at} after {before}");
    assert_json(&r, 200, &machine_deleted_json(c.member(old), removed_at));

    let status = c
        .member_mut(old)
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the removed leader is still running after 20 s"));
    eprintln!("the removed leader exited with {status}");

    let new = c.leader();
    assert_ne!(new, old);
    let machines = client_urls(&c, &followers);
    assert_eq!(c.expected_machines(), machines);
    for i in followers.iter().copied() {
        c.wait_body(i, "/v1/machines", &machines);
    }
    let after = c.set(followers[1], "rl/after", "1");
    assert!(after > removed_at, "index {after} after {removed_at}");
    c.wait_converged("rl/after", "1");
    c.wait_converged("rl/before", "0");
}

/// Removes the running follower `go` through member `via`: 200 with the deletion of its
/// registration (index above `after`), then its process exits by itself. Returns the index.
#[track_caller]
fn remove_running_follower(c: &mut Cluster, via: usize, go: usize, after: u64) -> u64 {
    let r = c.remove_member(via, go);
    assert_eq!(
        r.status,
        200,
        "DELETE /v1/machines/{}: {}",
        c.member(go).name,
        r.text()
    );
    let removed_at = r.index();
    assert!(removed_at > after, "index {removed_at} after {after}");
    assert_json(&r, 200, &machine_deleted_json(c.member(go), removed_at));
    let name = c.member(go).name.clone();
    c.member_mut(go)
        .wait_exit(Duration::from_secs(20))
        .unwrap_or_else(|| {
            panic!("{name} was removed (index {removed_at}) but is still running after 20 s")
        });
    removed_at
}

#[test]
fn a_removed_running_follower_shuts_itself_down_and_the_rest_carry_on() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let before = c.set(0, "rf/before", "0");
    let leader = c.leader();
    let followers = c.followers();

    // Three to two, through the leader.
    let removed_at = remove_running_follower(&mut c, leader, followers[0], before);
    let rest = [leader, followers[1]];
    let machines = client_urls(&c, &rest);
    assert_eq!(c.expected_machines(), machines);
    assert_text(&c.machines_on(leader), 200, &machines);
    c.wait_body(followers[1], "/v1/machines", &machines);
    let after = c.set(followers[1], "rf/after", "1");
    assert!(after > removed_at, "index {after} after {removed_at}");
    c.wait_converged("rf/after", "1");

    // Two to one, through the leader, which carries on alone.
    let removed_at = remove_running_follower(&mut c, leader, followers[1], after);
    assert_eq!(c.leader(), leader);
    assert_text(&c.machines_on(leader), 200, &client_urls(&c, &[leader]));
    let alone = c
        .member(leader)
        .post_form("/v1/keys/rf/alone", &[("value", "a")]);
    assert_json(&alone, 200, &set_json("/rf/alone", "a", removed_at + 1));
}

#[test]
fn ttl_expiry_is_one_log_entry_that_every_member_sees_identically() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let followers = c.followers();
    let set = c
        .member(followers[0])
        .post_form("/v1/keys/ttl/k", &[("value", "v"), ("ttl", "1")]);
    assert_eq!(
        set.status,
        200,
        "SET with ttl on a follower: {}",
        set.text()
    );
    let set_index = set.index();
    let expiration = extract_expiration(&set.text()).expect("a SET with ttl has an expiration");
    assert_json_normalized(
        &set,
        200,
        &format!(
            r#"{{"action":"SET","key":"/ttl/k","value":"v","newKey":true,"expiration":"{EXPIRATION_PLACEHOLDER}","index":{set_index}}}"#
        ),
    );

    // The expiry is the next log entry: the same event, at the same index, on every member.
    let expected = format!(
        r#"{{"action":"DELETE","key":"/ttl/k","prevValue":"v","expiration":"{expiration}","index":{}}}"#,
        set_index + 1
    );
    let body = form(&[("index", &(set_index + 1).to_string())]);
    let watches: Vec<Pending> = c
        .live()
        .into_iter()
        .map(|i| {
            c.member(i).spawn_request(
                "POST",
                "/v1/watch/ttl/k",
                Some((FORM_CONTENT_TYPE, body.as_bytes())),
            )
        })
        .collect();
    for watch in watches {
        assert_json(&watch.wait(Duration::from_secs(10)), 200, &expected);
    }
    for i in c.live() {
        assert_json(
            &c.member(i).get("/v1/keys/ttl/k"),
            404,
            r#"{"errorCode":100,"message":"Key Not Found","cause":"/ttl/k"}"#,
        );
    }
    let next = c.set(followers[1], "ttl/after", "x");
    assert!(next > set_index + 1, "index {next} after the expiry");
}

#[test]
fn killing_all_members_during_writes_loses_no_acknowledged_write() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let mut c = Cluster::start(3, &FAST_TIMING);
    let addrs: Vec<String> = c
        .live()
        .iter()
        .map(|&i| c.member(i).client_addr())
        .collect();
    let stop = AtomicBool::new(false);
    let acked = AtomicUsize::new(0);
    const WRITERS: usize = 6;
    const BEFORE_KILL: usize = 300;

    let acknowledged: Vec<(String, String, u64)> = thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|t| {
                let (addr, stop, acked) = (addrs[t % addrs.len()].clone(), &stop, &acked);
                s.spawn(move || {
                    let mut mine = Vec::new();
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        let (key, value) = (format!("ka/w{t}/k{n}"), format!("v{t}-{n}"));
                        n += 1;
                        let body = form(&[("value", &value)]);
                        let r = try_request(
                            &addr,
                            "POST",
                            &format!("/v1/keys/{key}"),
                            Some((FORM_CONTENT_TYPE, body.as_bytes())),
                            REQUEST_TIMEOUT,
                        );
                        match r {
                            Ok(r) if r.status == 200 => {
                                mine.push((key, value, r.index()));
                                acked.fetch_add(1, Ordering::SeqCst);
                            }
                            // In flight when the members died: not acknowledged.
                            _ => thread::sleep(POLL_INTERVAL),
                        }
                    }
                    mine
                })
            })
            .collect();
        poll_until(
            Duration::from_secs(60),
            "acknowledged writes before the kill",
            || (acked.load(Ordering::SeqCst) >= BEFORE_KILL).then_some(()),
        );
        c.kill_all();
        stop.store(true, Ordering::SeqCst);
        writers
            .into_iter()
            .flat_map(|w| w.join().expect("a writer thread panicked"))
            .collect()
    });

    let mut indexes: Vec<u64> = acknowledged.iter().map(|(_, _, i)| *i).collect();
    indexes.sort_unstable();
    indexes.dedup();
    assert_eq!(
        indexes.len(),
        acknowledged.len(),
        "two writes were answered with the same index"
    );
    let max_acked = *indexes.last().expect("acknowledged writes");

    c.restart_all();
    let leader = c.leader();
    for (key, value, index) in &acknowledged {
        let r = c
            .member(leader)
            .get(&format!("/v1/keys/{key}?consistent=true"));
        assert_eq!(
            r.status,
            200,
            "acknowledged write {key} (index {index}) lost: {}",
            r.text()
        );
        assert_eq!(r.json()["value"].as_str(), Some(value.as_str()), "{key}");
        assert!(
            r.index() >= max_acked,
            "store index {} below {max_acked}",
            r.index()
        );
    }
    let (last_key, last_value, _) = acknowledged.last().expect("acknowledged writes");
    c.wait_converged(last_key, last_value);
    for i in c.live() {
        for (key, value, _) in &acknowledged {
            c.wait_value(i, key, value);
        }
    }
}

#[test]
fn a_join_beyond_maxsize_is_refused_and_the_joiner_exits_1() {
    let mut c = Cluster::start(2, &fast_with(&["-maxsize", "2"]));
    let before = c.set(0, "max/before", "0");

    let joiner = c.launch_joiner("node3");
    let status = c
        .member_mut(joiner)
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("the refused joiner still runs after {EXIT_TIMEOUT:?}"));
    let logs = c.member(joiner).logs();
    assert_eq!(
        status.code(),
        Some(1),
        "exit status of the refused joiner; logs:\n{logs}"
    );
    assert!(
        logs.contains("Reached the max number of machines in the cluster"),
        "the refused joiner should say why; logs:\n{logs}"
    );

    // The cluster is unchanged and still takes writes.
    let machines = client_urls(&c, &[0, 1]);
    assert_eq!(c.expected_machines(), machines);
    for i in [0, 1] {
        assert_text(&c.member(i).get("/v1/machines"), 200, &machines);
        c.wait_body(
            i,
            "/v1/keys/_etcd/machines",
            &machines_listing(&c, &[0, 1], before),
        );
    }
    let after = c.set(1, "max/after", "1");
    assert!(after > before, "index {after} after {before}");
    c.wait_converged("max/after", "1");
    c.leader();
}

#[test]
fn a_paused_leader_never_acknowledges_a_stale_index_and_converges_when_resumed() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let old = c.leader();
    let mut max_acked = c.set(old, "p/before", "0");
    c.wait_converged("p/before", "0");

    c.pause(old);
    let new = c.leader();
    assert_ne!(new, old);
    let live = c.live();
    let mut written = Vec::new();
    for k in 0..20 {
        let (key, value) = (format!("p/k{k}"), format!("v{k}"));
        let index = c.set(live[k % live.len()], &key, &value);
        assert!(index > max_acked, "index {index} after {max_acked}");
        max_acked = index;
        written.push((key, value));
    }

    c.resume(old);
    let (r, took) = timed_write(&c, old, "p/after-resume", "late");
    eprintln!(
        "write on the resumed old leader: {} {:?} after {took:?} (max acknowledged index \
         before: {max_acked})",
        r.status,
        r.text()
    );
    match r.status {
        200 => {
            let index = r.index();
            assert!(
                index > max_acked,
                "the resumed old leader acknowledged index {index}, but {max_acked} was \
                 already acknowledged: {}",
                r.text()
            );
            assert_json(&r, 200, &set_json("/p/after-resume", "late", index));
            max_acked = index;
            let leader = c.leader();
            let read = c
                .member(leader)
                .get("/v1/keys/p/after-resume?consistent=true");
            assert_eq!(read.status, 200, "acknowledged write lost: {}", read.text());
            assert_eq!(
                read.json()["value"].as_str(),
                Some("late"),
                "{}",
                read.text()
            );
        }
        _ => assert_raft_internal_error(&r),
    }

    for (key, value) in &written {
        c.wait_value(old, key, value);
    }
    c.leader();
    let index = c.set(old, "p/final", "f");
    assert!(index > max_acked, "index {index} after {max_acked}");
    c.wait_converged("p/final", "f");
}

#[test]
fn without_quorum_a_write_on_a_surviving_follower_fails_with_300() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let before = c.set(0, "nq/before", "0");
    c.wait_body_everywhere("/v1/keys/nq/before", &get_json("/nq/before", "0", before));
    let leader = c.leader();
    let followers = c.followers();
    c.kill(leader);
    c.kill(followers[0]);
    let survivor = followers[1];

    // Reads stay local and are served at once.
    assert_json(
        &c.member(survivor).get_at_once("/v1/keys/nq/before"),
        200,
        &get_json("/nq/before", "0", before),
    );

    let (r, took) = timed_write(&c, survivor, "nq/lost", "x");
    assert_raft_internal_error(&r);
    assert!(
        took <= Duration::from_secs(8),
        "the write failed only after {took:?}"
    );

    // Nobody leads.
    c.wait_get(
        survivor,
        "/v1/leader",
        Duration::from_secs(10),
        &format!("500 {DURING_ELECTION_BODY}"),
        |r| r.status == 500 && r.text() == DURING_ELECTION_BODY,
    );

    // Quorum back: writes work again.
    c.restart(followers[0]);
    c.leader();
    let after = c.set(survivor, "nq/after", "1");
    assert!(after > before, "index {after} after {before}");
    c.wait_converged("nq/after", "1");
}

#[test]
fn without_quorum_a_write_on_the_surviving_leader_fails_with_300() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let before = c.set(0, "nql/before", "0");
    let leader = c.leader();
    let followers = c.followers();
    c.kill(followers[0]);
    c.kill(followers[1]);

    let (r, took) = timed_write(&c, leader, "nql/lost", "x");
    assert_raft_internal_error(&r);
    assert!(
        took <= Duration::from_secs(8),
        "the write failed only after {took:?}"
    );

    c.restart(followers[1]);
    c.leader();
    let after = c.set(leader, "nql/after", "1");
    assert!(after > before, "index {after} after {before}");
    c.wait_converged("nql/after", "1");
}

/// "No leader for 5 s → 300" also means: a leaderless moment shorter than that (an election
/// after the leader died) delays a write but does not fail it.
#[test]
fn a_write_sent_while_the_leader_is_dead_is_answered_once_a_new_leader_is_elected() {
    let mut c = Cluster::start(3, &FAST_TIMING);
    let before = c.set(0, "el/before", "0");
    c.wait_body_everywhere("/v1/keys/el/before", &get_json("/el/before", "0", before));
    let leader = c.leader();
    let followers = c.followers();
    c.kill(leader);

    // Sent at once, while the followers still believe in the dead leader.
    let (r, took) = timed_write(&c, followers[0], "el/during", "x");
    assert_eq!(
        r.status,
        200,
        "a write during a short election failed after {took:?}: {}",
        r.text()
    );
    let index = r.index();
    assert!(index > before, "index {index} after {before}");
    assert_json(&r, 200, &set_json("/el/during", "x", index));
    assert_json(
        &c.member(followers[0]).get("/v1/keys/el/during"),
        200,
        &get_json("/el/during", "x", index),
    );
    c.leader();
    c.wait_converged("el/during", "x");
}
