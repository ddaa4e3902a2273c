//! `etcdutl`: the offline tool for a member's files. All logic is in `crates/ctl`.

fn main() -> std::process::ExitCode {
    etcd_ctl::etcdutl_main()
}
