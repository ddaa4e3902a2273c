//! `etcd`: parse the command line, set up logging, run a node until SIGINT or SIGTERM.

use std::process::ExitCode;

use etcd_server::config::{self, Command};

/// mimalloc instead of glibc's malloc: the request path allocates many short-lived buffers
/// from several threads, where glibc spent ~12% of the server's CPU (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match config::parse(&args) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Version) => {
            println!("{}", config::VERSION);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Help) => {
            print!("{}", config::usage());
            return ExitCode::SUCCESS;
        }
        Err(config::Error::Usage(msg)) => {
            eprintln!("{msg}\n{}", config::usage());
            return ExitCode::from(2);
        }
        Err(config::Error::Invalid(msg)) => {
            eprintln!("etcd: {msg}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = etcd_server::logger::init(&config.logging, config.verbosity) {
        eprintln!("etcd: {e}");
        return ExitCode::from(1);
    }
    for notice in &config.notices {
        tracing::warn!("{notice}");
    }
    for accepted in &config.accepted {
        tracing::info!("{accepted}");
    }
    // The raft thread is busy on its own core under load (fsyncs, applying): the runtime gets
    // the others. On two cores this measured ~5% more writes and ~5% less CPU per request
    // than one worker per core (docs/performance.md). TOKIO_WORKER_THREADS still overrides.
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(cores.saturating_sub(1).max(1));
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("etcd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(etcd_server::server::run(*config, stop_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("etcd: {e}");
            ExitCode::from(1)
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
