//! `pushlab-server`: parse flags, bind, serve until SIGINT or SIGTERM. Flags are declared and
//! checked in the library ([`pushlab_server::config::ServerArgs`]); this file maps outcomes to
//! exit codes: 0 after a clean shutdown, 2 for a bad flag (as clap does), 1 when binding or
//! serving fails.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use pushlab_server::config::ServerArgs;

/// Counts heap bytes in use for `/metrics` (`pushlab_heap_bytes`): memory per connection
/// without the allocator's reuse hiding it (see `pushlab_server::usage`).
#[global_allocator]
static ALLOC: pushlab_server::usage::CountingAlloc = pushlab_server::usage::CountingAlloc;

/// One live feed served by short polling, long polling, SSE, chunked streaming and WebSocket.
#[derive(Parser, Debug)]
#[command(version, about)]
// This binary is the lab's demo: the ticker runs unless told otherwise (the library's
// default, and `pushlab-loadgen serve`'s, is off).
#[command(mut_arg("tick_rate", |a| a.default_value("1")))]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Threads that serve connections (tokio worker threads); default: one per core. With 1,
    /// every connection is served on one thread, as by a single nginx worker process
    /// (`worker_processes 1`), and no wake-up crosses threads.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,
    #[command(flatten)]
    server: ServerArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.worker_threads {
        runtime.worker_threads(usize::from(n));
    }
    match runtime.enable_all().build() {
        Ok(runtime) => runtime.block_on(run(args)),
        Err(e) => {
            eprintln!("pushlab-server: error: starting the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = match args.server.into_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("pushlab-server: error: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.bind).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("pushlab-server: error: binding {}: {e}", args.bind);
            return ExitCode::FAILURE;
        }
    };
    match pushlab_server::serve(listener, config, shutdown_signal()).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pushlab-server: error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
