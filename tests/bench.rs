//! `etcd-bench` against a real node: every workload, both API flavours, checked by what the
//! tool reports and by what the server then holds. (Speed is never asserted here.)

mod support;

use std::process::Command;

use support::*;

fn bench(node: &Node, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_etcd-bench"))
        .args(["--endpoints", &node.client_url(), "--json", "-q"])
        .args(args)
        .output()
        .expect("run etcd-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "etcd-bench {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not one line of JSON ({e}): {stdout}"))
}

fn assert_clean(report: &serde_json::Value, ops: u64) {
    assert_eq!(report["ops"], ops, "{report}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report}");
    let lat = &report["latency_us"];
    let (p50, p99, max) = (
        lat["p50"].as_u64(),
        lat["p99"].as_u64(),
        lat["max"].as_u64(),
    );
    assert!(p50 > Some(0) && p50 <= p99 && p99 <= max, "{report}");
}

#[test]
fn every_workload_in_both_flavours_does_what_it_says() {
    let mut node = Node::start("bench", &[]);
    let pid = node.pid().expect("running").to_string();
    for api in ["v1", "v2"] {
        let prefix = format!("/b{api}");
        let common = ["--api", api, "--prefix", &prefix, "--keys", "50", "-c", "4"];
        let with = |extra: &[&str]| -> Vec<String> {
            common.iter().chain(extra).map(|s| s.to_string()).collect()
        };
        let run = |extra: &[&str]| {
            let args = with(extra);
            bench(&node, &args.iter().map(String::as_str).collect::<Vec<_>>())
        };

        let put = run(&[
            "--total",
            "200",
            "--server-pid",
            &pid,
            "--value-size",
            "10",
            "put",
        ]);
        assert_clean(&put, 200);
        assert_eq!(put["op"], "put");
        assert_eq!(put["api"], api);
        assert!(put["server_cpu_us_per_op"].as_f64().is_some(), "{put}");
        assert!(put["server_rss_kib"].as_u64() > Some(0), "{put}");
        // Every key of the key space was written, with a value of the size asked for.
        for k in [0, 49] {
            let got = get(&node.client_addr(), &format!("/v2/keys{prefix}/{k}"));
            assert_eq!(got.status, 200, "{}", got.text());
            assert_eq!(got.json()["node"]["value"].as_str().map(str::len), Some(10));
        }

        assert_clean(&run(&["--total", "100", "get"]), 100);
        assert_clean(&run(&["--total", "20", "get", "--consistent"]), 20);
        let mixed = run(&["--total", "100", "mixed", "--read-fraction", "0.5"]);
        assert_clean(&mixed, 100);
        assert_eq!(mixed["op"], "mixed(0.5)");

        // Test-and-set that compares with the value each worker last set: a lost or
        // misapplied swap would show up as a 412 (v2) or 101 error.
        let etcd_index = || -> u64 {
            let r = get(&node.client_addr(), "/v2/keys/");
            r.header("x-etcd-index")
                .and_then(|v| v.parse().ok())
                .expect("X-Etcd-Index")
        };
        let before = etcd_index();
        assert_clean(&run(&["--total", "120", "txn"]), 120);
        let after = etcd_index();
        // The fill (50 sets) and 120 swaps, each its own index.
        assert_eq!(after - before, 170);

        let watch = run(&["watch", "--watchers", "20", "--writes", "5"]);
        assert_clean(&watch, 100);
        assert_eq!(watch["conns"], 20);
    }
    node.assert_running();
}

#[test]
fn a_dead_endpoint_is_reported_not_hung_on() {
    let port = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_etcd-bench"))
        .args([
            "--endpoints",
            &format!("127.0.0.1:{port}"),
            "--total",
            "5",
            "put",
        ])
        .output()
        .expect("run etcd-bench");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Connection refused") || err.contains("connect"),
        "{err}"
    );
}
