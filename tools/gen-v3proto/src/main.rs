//! Regenerates the committed Rust code of `crates/v3proto` from its `.proto` files, with
//! protox (a pure-Rust protobuf compiler) and tonic's prost generator: no `protoc` needed.
//!
//! ```text
//! cargo run --manifest-path tools/gen-v3proto/Cargo.toml            # rewrite the files
//! cargo run --manifest-path tools/gen-v3proto/Cargo.toml -- --check # fail if they are stale
//! ```

use std::path::{Path, PathBuf};

const FILES: &[&str] = &[
    "mvccpb/kv.proto",
    "authpb/auth.proto",
    "etcdserverpb/rpc.proto",
    "etcdrs/internal.proto",
    "grpc/health/v1/health.proto",
    "v3lockpb/v3lock.proto",
    "v3electionpb/v3election.proto",
];

fn main() {
    let check = std::env::args().any(|a| a == "--check");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/v3proto");
    let proto = root.join("proto");
    let out_dir = root.join("src/gen");
    let scratch = tempdir();

    let fds = protox::compile(FILES.iter().map(|f| proto.join(f)), [&proto])
        .unwrap_or_else(|e| panic!("compiling the .proto files: {e:?}"));
    // The descriptors themselves, for the JSON gateway's mapping (comments left out).
    let mut bare = fds.clone();
    for f in &mut bare.file {
        f.source_code_info = None;
    }
    std::fs::write(
        scratch.join("descriptors.bin"),
        prost::Message::encode_to_vec(&bare),
    )
    .expect("writing the descriptors");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        // Values are shared between the index, history and responses without copying.
        .bytes(".")
        // Only the server and client halves need tonic; the messages alone need prost.
        .server_mod_attribute(".", "#[cfg(feature = \"server\")]")
        .client_mod_attribute(".", "#[cfg(feature = \"client\")]")
        .out_dir(&scratch)
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("generating code: {e}"));

    let mut stale = Vec::new();
    for entry in std::fs::read_dir(&scratch).expect("reading the scratch dir") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().expect("file name").to_owned();
        let new = std::fs::read(&path).expect("reading generated code");
        let target = out_dir.join(&name);
        if std::fs::read(&target).ok().as_deref() != Some(new.as_slice()) {
            stale.push(target.clone());
            if !check {
                std::fs::create_dir_all(&out_dir).expect("creating src/gen");
                std::fs::write(&target, new).expect("writing generated code");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if check && !stale.is_empty() {
        eprintln!("generated code is stale; run tools/gen-v3proto: {stale:?}");
        std::process::exit(1);
    }
    for path in &stale {
        println!("wrote {}", path.display());
    }
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gen-v3proto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating a scratch dir");
    dir
}
