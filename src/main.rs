//! The `rxchain` binary: parses the command line, sets up tracing, and hands
//! over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = rxchain::cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RXCHAIN_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,openraft=warn,sled=warn")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    if matches!(
        cli.command,
        rxchain::cli::Command::Node(_) | rxchain::cli::Command::Demo(_)
    ) {
        limit_malloc_arenas();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(rxchain::commands::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// How many malloc arenas a long-running node may use (glibc only).
///
/// glibc gives each thread that meets a locked arena a new one, up to eight
/// per core, and free memory in one arena does not serve another's
/// allocations. A node's many threads (tokio workers, the blocking pool,
/// sled's flusher) each fragment their own, so with the default its RSS grew
/// with the chain: one hand run of `scripts/bench.sh`'s growth option found
/// 374 MiB at 300,000 transactions with glibc's default and 262 MiB with two
/// arenas, at about the same throughput. The short-lived commands (`verify`
/// uses every core for signatures) keep glibc's default.
/// An operator's own `MALLOC_ARENA_MAX` wins.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    const NODE_MALLOC_ARENAS: libc::c_int = 2;
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt only sets an allocator parameter; it is called before
    // the runtime starts any thread.
    if unsafe { libc::mallopt(libc::M_ARENA_MAX, NODE_MALLOC_ARENAS) } != 1 {
        tracing::warn!("could not limit malloc arenas; memory use may grow");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
