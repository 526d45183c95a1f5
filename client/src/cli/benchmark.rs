//! `cairn benchmark`: the backup pipeline's CPU ceiling on the user's own
//! data (the measurement is [`cairn_client::benchmark`]).

use std::path::PathBuf;

use anyhow::Result;
use cairn_client::benchmark::{self, Measured};
use cairn_client::chunker::ChunkerParams;
use clap::Args;
use serde::Serialize;

use super::output::print_json;
use super::progress::bytes;

/// `cairn benchmark` options.
#[derive(Args)]
#[command(after_help = "Examples:
  cairn benchmark ~/Documents
  cairn benchmark --zstd-level 6 /var/lib/images      # what a higher level costs
  cairn benchmark --json /srv/data | jq .ceiling_mib_s

Files are read into memory before they are timed, so the figures are the CPU
of chunking, hashing, compressing and sealing alone: what a backup of the same
files could reach with every core busy and free IO. A backup far below the
ceiling spends its time elsewhere (reading files, writing the vault, the network,
idle cores); one close to it is bound by these stages, and only a lower zstd
level would make it much faster. Nothing is written.")]
pub struct BenchmarkArgs {
    /// Files and directories to measure (directories recursively, symbolic
    /// links not followed).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// zstd compression level (1-22), as `cairn vault init --zstd-level`.
    #[arg(long, default_value_t = 3)]
    pub zstd_level: i32,
    /// Cores the ceiling counts on (default: this machine's).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub cores: Option<u16>,
}

/// `cairn benchmark --json`.
#[derive(Serialize)]
struct BenchmarkJson {
    #[serde(flatten)]
    measured: Measured,
    zstd_level: i32,
    cores: usize,
    /// Throughput of the stages on one core.
    per_core_mib_s: f64,
    /// ... and on `cores` cores all busy.
    ceiling_mib_s: f64,
}

/// `cairn benchmark`.
pub fn benchmark(args: BenchmarkArgs, json: bool) -> Result<u8> {
    let cores = args.cores.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let m = benchmark::measure(&args.paths, ChunkerParams::default(), args.zstd_level)?;
    let mib = |b: f64| b / (1024.0 * 1024.0);
    let report = BenchmarkJson {
        per_core_mib_s: mib(m.ceiling(1)),
        ceiling_mib_s: mib(m.ceiling(cores)),
        measured: m,
        zstd_level: args.zstd_level,
        cores,
    };
    if json {
        print_json(&report)?;
        return Ok(0);
    }
    let m = &report.measured;
    println!(
        "files: {} ({}, {} unreadable); chunks: {} ({} unique, sealed to {})",
        m.files,
        bytes(m.bytes),
        m.unreadable,
        m.chunks,
        m.unique_chunks,
        bytes(m.sealed_bytes)
    );
    let rate = |d: std::time::Duration| {
        let s = d.as_secs_f64();
        if s > 0.0 {
            format!("{:>9.0} MiB/s", mib(m.bytes as f64) / s)
        } else {
            format!("{:>15}", "-")
        }
    };
    for (stage, d) in [
        ("chunking", m.chunking),
        ("hashing", m.hashing),
        ("compressing and sealing", m.sealing),
        ("all stages", m.cpu()),
    ] {
        println!("{stage:<24} {:>8.2} s {}", d.as_secs_f64(), rate(d));
    }
    println!(
        "ceiling on {cores} core{}: {:.0} MiB/s (zstd level {})",
        if cores == 1 { "" } else { "s" },
        report.ceiling_mib_s,
        args.zstd_level
    );
    Ok(0)
}
