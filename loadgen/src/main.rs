//! `pushlab-loadgen`: parse flags, run, print the table, write the JSON. Exits non-zero with a
//! one-line error on bad input, an unreachable or broken target, or a run that lost or
//! duplicated messages.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use pushlab_loadgen::cli::{Cli, Command, MergeArgs, RunArgs};
use pushlab_proto::result::RunResult;

/// Counts heap bytes in use for `/metrics` (`pushlab_heap_bytes`): memory per connection
/// without the allocator's reuse hiding it (see `pushlab_server::usage`).
#[global_allocator]
static ALLOC: pushlab_server::usage::CountingAlloc = pushlab_server::usage::CountingAlloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pushlab-loadgen: error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Merge(args) => merge(args),
            Command::Compare(args) => {
                pushlab_loadgen::compare::cli(&args, &argv()).await?;
                Ok(())
            }
            Command::Capacity(args) => {
                pushlab_loadgen::capacity::cli(&args, &argv()).await?;
                Ok(())
            }
            Command::Sweep(args) => {
                pushlab_loadgen::sweep::cli(&args, &argv()).await?;
                Ok(())
            }
            Command::Report(args) => {
                pushlab_loadgen::report::cli(&args)?;
                Ok(())
            }
            Command::Serve(args) => {
                pushlab_loadgen::serve(&args, shutdown_signal()).await?;
                Ok(())
            }
            Command::Link(args) => {
                // The link is down (everything removed) once this returns.
                let code = pushlab_loadgen::link::shell::cli(args).await?;
                if code != 0 {
                    std::process::exit(code);
                }
                Ok(())
            }
            Command::Schema => {
                print!("{}", pushlab_loadgen::schema::result_schema_text());
                Ok(())
            }
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pushlab-loadgen: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The command line as typed, for result files and reports.
fn argv() -> Vec<String> {
    std::env::args().collect()
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let out = args.out.clone();
    let quiet = args.quiet;
    let link = args.link.clone();
    let result = match (args.shards, &link) {
        (Some(n), _) => pushlab_loadgen::shard::run_sharded(&args, n).await?,
        (None, None) => pushlab_loadgen::run(args.into_config()?).await?,
        (None, Some(spec)) => {
            pushlab_loadgen::link::run_through_link(args.into_config()?, spec, None).await?
        }
    };
    if let Some(path) = &out {
        write_result(path, &result)?;
    }
    if !quiet {
        println!("{}", pushlab_loadgen::summary::table(&result));
        if let Some(path) = &out {
            println!("result written to {}", path.display());
        }
    }
    let losses = pushlab_loadgen::summary::losses(&result);
    if !losses.is_empty() {
        anyhow::bail!("messages went missing: {}", losses.join("; "));
    }
    Ok(())
}

fn merge(args: MergeArgs) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for p in &args.inputs {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        let r: RunResult = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a pushlab result", p.display()))?;
        runs.push((p.display().to_string(), r));
    }
    let merged = pushlab_loadgen::merge::merge(&runs)?;
    write_result(&args.out, &merged)?;
    println!("{}", pushlab_loadgen::summary::table(&merged));
    Ok(())
}

fn write_result(path: &std::path::Path, r: &RunResult) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut text = serde_json::to_string_pretty(r)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

async fn shutdown_signal() {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    match term {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
