//! Persistence and process life cycle of a real node: SIGKILL and restart, snapshots, WAL
//! recovery (torn tail vs. corruption in the middle), graceful signals, and the command line.
//!
//! WAL facts relied on (documented on-disk contract): segments are `DIR/wal/*.wal`, a fresh
//! node has one, and each record is `u32 LE length | u32 CRC | body`.

mod support;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use support::*;

const FOUND_CONFIG_START: &str = "Found node configuration in '";
const FOUND_CONFIG_END: &str = "/info'. Ignoring flags.";

/// Writes `/<prefix>/k<i>` = `<prefix>-value-<i>` for `i` in `0..n`; returns the indexes, which
/// must be strictly increasing.
fn write_keys(node: &Node, prefix: &str, n: usize) -> Vec<u64> {
    let mut indexes: Vec<u64> = Vec::with_capacity(n);
    for i in 0..n {
        let index = node.set(&format!("{prefix}/k{i}"), &value_of(prefix, i));
        if let Some(&last) = indexes.last() {
            assert!(index > last, "index {index} after {last}");
        }
        indexes.push(index);
    }
    indexes
}

fn value_of(prefix: &str, i: usize) -> String {
    format!("{prefix}-value-{i}")
}

#[track_caller]
fn assert_key(node: &Node, prefix: &str, i: usize) {
    let r = node.get(&format!("/v1/keys/{prefix}/k{i}"));
    assert_eq!(r.status, 200, "{prefix}/k{i}: {}", r.text());
    assert_eq!(r.content_type(), "application/json");
    assert_eq!(
        r.json()["value"].as_str(),
        Some(value_of(prefix, i).as_str()),
        "{prefix}/k{i}: {}",
        r.text()
    );
}

#[track_caller]
fn assert_keys(node: &Node, prefix: &str, range: std::ops::Range<usize>) {
    for i in range {
        assert_key(node, prefix, i);
    }
}

#[track_caller]
fn assert_found_config_line(node: &Node) {
    let logs = node.logs();
    let found = logs.lines().any(|line| {
        line.find(FOUND_CONFIG_START)
            .is_some_and(|start| line[start..].contains(FOUND_CONFIG_END))
    });
    assert!(
        found,
        "restart should say {FOUND_CONFIG_START}...{FOUND_CONFIG_END}; logs:\n{logs}"
    );
}

/// The WAL segments, sorted by name.
fn wal_segments(node: &Node) -> Vec<PathBuf> {
    let segments = node.data_files("wal", ".wal");
    assert!(
        !segments.is_empty(),
        "no *.wal segment in {}",
        node.data_dir.join("wal").display()
    );
    segments
}

/// Cheap non-cryptographic random bytes (xorshift seeded from the clock and pid).
fn random_bytes(n: usize) -> Vec<u8> {
    let mut x = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
        ^ (u64::from(std::process::id()) << 32)
        | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `(offset, length)` of each framed record (`u32 LE len | u32 crc | body`), if the whole
/// file parses as such records.
fn parse_records(data: &[u8]) -> Option<Vec<(usize, usize)>> {
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        if data[offset..].iter().all(|&b| b == 0) {
            // The preallocated rest of the segment.
            break;
        }
        let header = data.get(offset..offset + 8)?;
        let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
        if len == 0 || offset + 8 + len > data.len() {
            return None;
        }
        records.push((offset, len));
        offset += 8 + len;
    }
    Some(records)
}

/// Kills, then restarts and checks the node refuses to start because of `segment`.
#[track_caller]
fn assert_refuses_to_start_naming(node: &mut Node, segment: &Path) {
    node.launch();
    let status = node.wait_exit(EXIT_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "node started on a WAL corrupted in the middle; it must refuse (exit 1). logs:\n{}",
            node.logs()
        )
    });
    let stderr = node.stderr();
    assert_eq!(
        status.code(),
        Some(1),
        "exit status on a corrupt WAL: {status}; stderr:\n{stderr}"
    );
    let file_name = segment
        .file_name()
        .and_then(|n| n.to_str())
        .expect("segment name");
    assert!(
        stderr.contains(file_name),
        "stderr should name the segment {file_name}:\n{stderr}"
    );
    assert!(
        stderr.contains("offset"),
        "stderr should give the offset:\n{stderr}"
    );
}

#[test]
fn acknowledged_writes_survive_sigkill_and_restart() {
    let mut node = Node::start("killed", &[]);
    let indexes = write_keys(&node, "d", 200);
    assert_eq!(indexes[0], 3);
    let last = *indexes.last().expect("writes");
    node.kill();

    node.restart();
    assert_found_config_line(&node);
    assert_keys(&node, "d", 0..200);
    let r = node.get("/v1/keys/d/k0");
    assert!(r.index() >= last, "GET index after restart: {}", r.text());
    let first_new = node.set("after/a", "1");
    assert!(first_new > last, "new write index {first_new} <= {last}");
    let second_new = node.set("after/b", "2");
    assert_eq!(second_new, first_new + 1);
    assert_text(&node.get("/v1/machines"), 200, &node.client_url());
}

#[test]
fn restart_recovers_from_snapshot_and_log_tail() {
    let mut node = Node::start("snap", &["-snapshot-count", "50"]);
    let mut last_write = None;
    for i in 0..230 {
        let r = node.post_form(&format!("/v1/keys/k/k{i}"), &[("value", &value_of("k", i))]);
        assert_eq!(r.status, 200, "{}", r.text());
        last_write = Some(r);
    }
    let last_write = last_write.expect("writes");
    node.kill();
    let snaps = node.data_files("snap", ".snap");
    assert!(
        !snaps.is_empty(),
        "no *.snap in {} after 230 writes with -snapshot-count 50",
        node.data_dir.join("snap").display()
    );

    node.restart();
    assert_keys(&node, "k", 0..230);
    // Watch history is rebuilt from the log tail: the last write is served at once.
    let r = node.post_form_at_once("/v1/watch/k", &[("index", &last_write.index().to_string())]);
    assert_json(&r, 200, &last_write.text());
    let next = node.set("k/after", "1");
    assert!(next > last_write.index());
}

#[test]
fn random_bytes_appended_to_the_last_wal_segment_are_truncated() {
    let mut node = Node::start("tailgarbage", &[]);
    let indexes = write_keys(&node, "t", 20);
    node.kill();
    let segments = wal_segments(&node);
    let last = segments.last().expect("segment");
    let end = wal_records_end(&fs::read(last).expect("read segment"));
    let file = OpenOptions::new()
        .write(true)
        .open(last)
        .expect("open last segment");
    // Right after the last record, in the preallocated space.
    file.write_all_at(&random_bytes(37), end as u64)
        .expect("write garbage");
    file.sync_all().expect("sync");
    drop(file);

    node.restart();
    assert_keys(&node, "t", 0..20);
    let next = node.set("t/after", "1");
    assert!(next > indexes[19], "{next} <= {}", indexes[19]);
    assert_key(&node, "t", 19);
}

#[test]
fn torn_last_record_of_the_wal_is_truncated() {
    let mut node = Node::start("torn", &[]);
    let indexes = write_keys(&node, "t", 20);
    node.kill();
    let segments = wal_segments(&node);
    let last = segments.last().expect("segment");
    let end = wal_records_end(&fs::read(last).expect("read segment")) as u64;
    let file = OpenOptions::new()
        .write(true)
        .open(last)
        .expect("open last segment");
    // The last record's final bytes never reached the disk (the space is preallocated, so
    // they read as zeros).
    file.write_all_at(&[0; 3], end - 3).expect("tear");
    file.sync_all().expect("sync");
    drop(file);

    node.restart();
    assert_keys(&node, "t", 0..19);
    // The last write may or may not have survived its torn record; if it did, it is whole.
    let r = node.get("/v1/keys/t/k19");
    match r.status {
        200 => assert_eq!(r.json()["value"].as_str(), Some(value_of("t", 19).as_str())),
        404 => {}
        other => panic!("GET t/k19: {other} {}", r.text()),
    }
    let next = node.set("t/after", "1");
    assert!(next > indexes[18], "{next} <= {}", indexes[18]);
    assert_eq!(node.set("t/after2", "2"), next + 1);
    assert_key(&node, "t", 0);
}

#[test]
fn corrupt_record_in_the_middle_of_the_wal_refuses_to_start() {
    let mut node = Node::start("corrupt", &[]);
    write_keys(&node, "c", 20);
    node.kill();
    let segments = wal_segments(&node);
    let first = &segments[0];
    let mut data = fs::read(first).expect("read segment");
    // Flip a byte inside the body of a record that has valid records after it. If the file
    // does not parse as bare records (e.g. a file header), fall back to the middle byte.
    let at = match parse_records(&data) {
        Some(records) if records.len() >= 3 => {
            let (offset, len) = records[records.len() / 2];
            offset + 8 + len / 2
        }
        _ => data.len() / 2,
    };
    data[at] ^= 0x5a;
    fs::write(first, &data).expect("write segment");

    assert_refuses_to_start_naming(&mut node, first);
}

#[test]
fn sigterm_shuts_down_gracefully_and_keeps_data() {
    let mut node = Node::start("term", &[]);
    write_keys(&node, "g", 10);
    let status = node.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}"
    );
    node.restart();
    assert_keys(&node, "g", 0..10);
}

#[test]
fn sigint_shuts_down_gracefully_and_keeps_data() {
    let mut node = Node::start("int", &[]);
    write_keys(&node, "g", 10);
    let status = node.stop_with(libc::SIGINT);
    assert_eq!(status.code(), Some(0), "exit status after SIGINT: {status}");
    node.restart();
    assert_keys(&node, "g", 0..10);
}

#[test]
fn forget_flag_starts_fresh_on_a_directory_with_data() {
    let mut node = Node::start("forget", &[]);
    assert_eq!(node.set("old", "1"), 3);
    assert_eq!(node.set("old2", "2"), 4);
    node.kill();
    node.args.push("-f".to_string());
    node.restart();
    assert_eq!(node.get("/v1/keys/old").status, 404);
    assert_eq!(node.set("new", "1"), 3, "first write after -f");
    assert_text(&node.get("/v1/machines"), 200, &node.client_url());
}

#[test]
fn go_style_flag_spellings_are_accepted() {
    let mut node = Node::prepare("spelled", &[]);
    node.args = vec![
        "--name=spelled".to_string(),
        format!("--data-dir={}", node.data_dir.display()),
        format!("-c={}", node.client_addr()),
        "--s".to_string(),
        format!("127.0.0.1:{}", node.peer_port),
        "-m=10".to_string(),
        "-f=true".to_string(),
    ];
    node.launch();
    node.wait_ready();
    assert!(
        node.data_dir.join("info").is_file(),
        "--data-dir ignored: no {}",
        node.data_dir.join("info").display()
    );
    assert_eq!(node.set("a", "1"), 3);
    let r = node.get("/v1/keys/_etcd/machines/spelled");
    assert_eq!(r.status, 200, "--name ignored: {}", r.text());
}

/// Arguments that would start a valid node in `dir` (so a wrongly started node stays there).
fn args_in(dir: &Path, overrides: &[&str]) -> Vec<String> {
    let [client, peer] = free_ports::<2>();
    let mut args = vec![
        "-d".to_string(),
        dir.join("data").display().to_string(),
        "-c".to_string(),
        format!("127.0.0.1:{client}"),
        "-s".to_string(),
        format!("127.0.0.1:{peer}"),
    ];
    args.extend(overrides.iter().map(|s| s.to_string()));
    args
}

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("etcd-rs-cli-")
        .tempdir()
        .expect("temp dir")
}

#[test]
fn unknown_flag_prints_usage_and_exits_2() {
    let dir = tmp();
    let exit = run_etcd(
        &args_in(dir.path(), &["-n", "x", "-bogus-flag"]),
        dir.path(),
    );
    assert_eq!(exit.code(), Some(2), "{exit:?}");
    assert!(
        exit.stderr.contains("-n") && exit.stderr.contains("-d"),
        "usage on stderr: {exit:?}"
    );
}

#[test]
fn version_and_help_flags_exit_0() {
    let dir = tmp();
    for flag in ["-version", "--version"] {
        let exit = run_etcd(&[flag.to_string()], dir.path());
        assert_eq!(exit.code(), Some(0), "{flag}: {exit:?}");
        assert!(
            exit.stdout.lines().any(|l| l.starts_with("etcd")),
            "{flag}: {exit:?}"
        );
    }
    for flag in ["-h", "--help"] {
        let exit = run_etcd(&[flag.to_string()], dir.path());
        assert_eq!(exit.code(), Some(0), "{flag}: {exit:?}");
        let all = format!("{}{}", exit.stdout, exit.stderr);
        assert!(all.contains("-n"), "{flag} should print usage: {exit:?}");
    }
}

#[test]
fn empty_name_is_fatal_with_exit_1() {
    let dir = tmp();
    let exit = run_etcd(&args_in(dir.path(), &["-n", ""]), dir.path());
    assert_eq!(exit.code(), Some(1), "{exit:?}");
    assert!(
        exit.stderr.to_lowercase().contains("name"),
        "message should mention the name: {exit:?}"
    );
}

#[test]
fn malformed_client_address_is_fatal_naming_the_flag() {
    let dir = tmp();
    let peer = free_port();
    let args: Vec<String> = [
        "-n",
        "x",
        "-d",
        &dir.path().join("data").display().to_string(),
        "-c",
        "notaport",
        "-s",
        &format!("127.0.0.1:{peer}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let exit = run_etcd(&args, dir.path());
    assert_eq!(exit.code(), Some(1), "{exit:?}");
    assert!(
        exit.stderr.contains("-c"),
        "message should name -c: {exit:?}"
    );
}
