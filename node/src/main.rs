//! `cairnd`: the Cairn server. See `cairnd --help` and DESIGN §9.
//!
//! Argument parsing and dispatch only: the command line is [`cmd`], the
//! node itself (lifecycle, dev cluster, roles) is the `cairn_node` library.
//! Offline tools for tests and drills are a separate binary, `cairnd-debug`.

mod cmd;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

/// Keeps the memory of freed request bodies and RocksDB write batches for
/// the next ones. A storage node allocates and frees a few MiB per chunk
/// upload; by default glibc serves those from fresh mappings or hands the
/// heap's top back, so every upload faulted in and zeroed its pages again
/// (about 9% of a storage node's CPU in a replicated backup). Allocations
/// up to 32 MiB now come from the heap, and up to 64 MiB of free memory
/// at its top stays mapped.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// Public so `cairnd-unsafe-ack` (the same program under a test-only
/// feature) can run it.
pub fn main() -> ExitCode {
    keep_freed_memory();
    let cli = cmd::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        cmd::LogFormat::Json => log.json().init(),
        cmd::LogFormat::Text => log.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairnd: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairnd: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
