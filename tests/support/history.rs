//! A v3 history worth carrying through a snapshot, and what it looks like afterwards, for the
//! snapshot tests (`tests/v3_snapshot.rs` with Debian's etcdctl between etcd 3.4 and
//! etcd-rs, `tests/snapshot_restore.rs` with ours): the same writes and the same reads,
//! whichever etcdctl runs them.

/// Runs etcdctl (v3) against one endpoint: its arguments and standard input, then (exit
/// code, stdout, stderr).
pub type Etcdctl<'a> = &'a dyn Fn(&[&str], Option<&str>) -> (Option<i32>, String, String);

#[track_caller]
fn ok(ctl: Etcdctl, args: &[&str]) -> String {
    let (code, out, err) = ctl(args, None);
    assert_eq!(code, Some(0), "etcdctl {args:?}: {out}{err}");
    out
}

/// A history worth carrying: puts, rewrites, a delete, a txn, a lease with keys, a
/// compaction, then more writes after it, and auth (root and a user with a role).
pub fn write_history(ctl: Etcdctl) {
    for i in 0..20 {
        ok(ctl, &["put", &format!("k{}", i % 6), &format!("v{i}")]);
    }
    ok(ctl, &["del", "k2"]);
    // One revision, two changes (sub-revisions 0 and 1).
    let (code, out, err) = ctl(&["txn"], Some("\nput t1 a\nput t2 b\n\n\n"));
    assert_eq!(code, Some(0), "txn: {out}{err}");
    let lease = ok(ctl, &["lease", "grant", "900"]);
    let id = lease
        .split_whitespace()
        .nth(1)
        .expect("a lease id")
        .to_string();
    ok(ctl, &["put", "leased/a", "1", &format!("--lease={id}")]);
    ok(ctl, &["put", "leased/b", "2", &format!("--lease={id}")]);
    ok(ctl, &["compaction", "12"]);
    ok(ctl, &["put", "k0", "after compaction"]);
    ok(ctl, &["put", "big", &"x".repeat(20_000)]);
    ok(ctl, &["user", "add", "root:rootpw"]);
    ok(ctl, &["user", "grant-role", "root", "root"]);
    ok(ctl, &["role", "add", "reader"]);
    ok(
        ctl,
        &[
            "role",
            "grant-permission",
            "reader",
            "read",
            "k",
            "--prefix",
        ],
    );
    ok(ctl, &["user", "add", "alice:alicepw"]);
    ok(ctl, &["user", "grant-role", "alice", "reader"]);
    ok(ctl, &["auth", "enable"]);
}

/// What a data set looks like through etcdctl (as root): every key with its revisions, the
/// reads at older revisions, HashKV, leases with their keys, users and roles.
pub fn fingerprint(ctl: Etcdctl) -> Vec<String> {
    fn with<'a>(args: &[&'a str]) -> Vec<&'a str> {
        let mut a: Vec<&'a str> = args.to_vec();
        a.extend_from_slice(&["--user", "root:rootpw"]);
        a
    }
    let mut out = Vec::new();
    // Everything, with revisions (the header's ids differ: keep only the kvs and count).
    let all = ok(ctl, &with(&["get", "", "--from-key", "-w", "json"]));
    let v: serde_json::Value = serde_json::from_str(&all).expect("json");
    out.push(format!("kvs {}", v["kvs"]));
    out.push(format!("revision {}", v["header"]["revision"]));
    for rev in [12, 15, 20, 25] {
        let at = ok(
            ctl,
            &with(&[
                "get",
                "",
                "--from-key",
                "-w",
                "json",
                &format!("--rev={rev}"),
            ]),
        );
        let v: serde_json::Value = serde_json::from_str(&at).expect("json");
        out.push(format!("at {rev}: {}", v["kvs"]));
    }
    let (_, _, err) = ctl(&with(&["get", "k1", "--rev=11"]), None);
    out.push(format!("at 11: {}", err.lines().last().unwrap_or("")));
    let hash = ok(ctl, &with(&["endpoint", "hashkv"]));
    out.push(format!(
        "hashkv {}",
        hash.split(", ").nth(1).unwrap_or("").trim()
    ));
    let leases = ok(ctl, &with(&["lease", "list"]));
    for id in leases.lines().skip(1) {
        let ttl = ok(ctl, &with(&["lease", "timetolive", id, "--keys"]));
        // The remaining TTL moves: keep the granted TTL and the keys.
        let granted = ttl.split(", remaining").next().unwrap_or("").to_string();
        // (etcd lists a lease's keys in no set order.)
        let keys = ttl.split("attached keys").nth(1).unwrap_or("").trim();
        let mut keys: Vec<&str> = keys
            .trim_start_matches("([")
            .trim_end_matches("])")
            .split(' ')
            .collect();
        keys.sort();
        let keys = format!("([{}])", keys.join(" "));
        out.push(format!("{granted} keys{keys}"));
    }
    out.push(ok(ctl, &with(&["user", "list"])));
    out.push(ok(ctl, &with(&["role", "get", "reader"])));
    out.push(ok(ctl, &["get", "k1", "--user", "alice:alicepw"]));
    let (_, _, err) = ctl(&["put", "k1", "no", "--user", "alice:alicepw"], None);
    out.push(err.lines().last().unwrap_or("").to_string());
    out
}

/// Whether a [`fingerprint`] line moves with later writes (the keys, the revision, HashKV);
/// the rest (older revisions, the compaction, leases, users and roles) stays.
pub fn moved_by_writes(line: &str) -> bool {
    ["kvs ", "revision ", "hashkv "]
        .iter()
        .any(|p| line.starts_with(p))
}
