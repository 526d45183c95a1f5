//! `cairn-jepsen`: argument parsing and dispatch only; the harness is the
//! `cairn_jepsen` library. Exit codes: 0 every checker valid, 1 a
//! violation, 2 the run could not be carried out, 3 a checker could not
//! decide.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cairn_jepsen::check::Outcome;
use cairn_jepsen::run::{self, Options};
use cairn_jepsen::schedule::NemesisKind;
use clap::Parser;

/// Runs a real cairnd cluster under faults and checks what clients saw.
/// Needs root (network namespaces, iptables).
#[derive(Debug, Parser)]
#[command(name = "cairn-jepsen", version)]
struct Cli {
    /// Number of cairnd nodes.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u8).range(1..=20))]
    nodes: u8,
    /// Seconds the workloads run (setup and the final check come on top).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    time_limit: u64,
    /// Faults to draw from, comma separated: kill, pause, partition, loss,
    /// corrupt (needs cairnd-debug next to cairnd), power-loss (puts node
    /// data on a lose-unfsynced-writes FUSE filesystem), delay, clock,
    /// churn (drain, remove, join a fresh node; needs 4 nodes or more),
    /// authority (the license authority killed or cut off from the nodes).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kill,pause,partition,loss,corrupt,power-loss,delay,clock,churn,authority"
    )]
    nemesis: Vec<NemesisKind>,
    /// Seed of the fault schedule and the clients' choices [default: random].
    #[arg(long)]
    seed: Option<u64>,
    /// Report directory (created; history, verdicts, timeline, node logs).
    #[arg(long, value_name = "DIR")]
    report: PathBuf,
    /// The cairnd binary to run.
    #[arg(long, value_name = "BIN")]
    cairnd: PathBuf,
    /// The cairn client binary, for the backup workload [default: cairn next to --cairnd].
    #[arg(long, value_name = "BIN")]
    cairn: Option<PathBuf>,
    /// Extra environment for every node, KEY=VALUE (repeatable).
    #[arg(long = "node-env", value_name = "KEY=VALUE", value_parser = parse_env)]
    node_env: Vec<(String, String)>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let seed = cli.seed.unwrap_or_else(rand::random);
    let opts = Options {
        nodes: usize::from(cli.nodes),
        time_limit: Duration::from_secs(cli.time_limit),
        nemesis: cli.nemesis,
        seed,
        report: cli.report,
        cairn: cli
            .cairn
            .unwrap_or_else(|| cli.cairnd.with_file_name("cairn")),
        cairnd: cli.cairnd,
        node_env: cli.node_env,
    };
    let summary = match run::run(&opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cairn-jepsen: {e}");
            eprintln!(
                "cairn-jepsen: seed {seed}; report (partial) in {}",
                opts.report.display()
            );
            return ExitCode::from(2);
        }
    };
    let i = &summary.info;
    println!(
        "seed {}: {} operations ({} ok, {} failed, {} unknown), repair settled: {}",
        i.seed, i.ops, i.ok, i.failed, i.unknown, i.settled
    );
    for v in &summary.verdicts {
        println!("{:>9} {:?}: {}", v.checker, v.result, v.summary);
    }
    println!("report: {}", opts.report.display());
    println!("replay: {}", i.replay.replace("<DIR>", "NEW_DIR"));
    let results: Vec<Outcome> = summary.verdicts.iter().map(|v| v.result).collect();
    if results.contains(&Outcome::Invalid) {
        ExitCode::from(1)
    } else if results.contains(&Outcome::Unknown) {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}
