//! `etcd-bench`: the load generator. All logic is in `crates/bench`.

fn main() -> std::process::ExitCode {
    etcd_bench::main()
}
