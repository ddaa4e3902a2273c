//! `etcdctl`: the command-line client. All logic is in `crates/ctl`.

fn main() -> std::process::ExitCode {
    etcd_ctl::main()
}
