//! Raft benchmark: on a 3-node loopback cluster of real `cairnd`
//! processes, committed events per second and commit latency (p50/p99) at
//! concurrency 1 and 64, then failover time (leader SIGKILL to the first
//! acknowledged write) over a few rounds. Prints a table.
//!
//! Run with `cargo bench -p cairn-node --bench raft` (optionally
//! `-- --seconds N --failovers N --soak SECONDS`; the soak holds the
//! concurrency-64 load and counts the elections it causes). Under
//! `cargo test --all-targets` it only says it was skipped: a benchmark is
//! not a test, and timing assertions on a shared two-core machine would be
//! flaky.
//!
//! Each event is an account creation (`POST /api/v1/admin/users`) sent to
//! the leader: a full write through the log — appended and fsynced on a
//! majority, applied on the leader — answered once applied. Concurrent
//! writes share log entries (the node's proposal batcher). The bars:
//! ≥ 10 000 events/s at concurrency 64 with p99 < 50 ms, and a failover
//! under 1 s as the median of the rounds (run with `--failovers 10`), and
//! no election during a 10-minute loaded run (`--soak 600`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use common::{user_body, wait_for, Node};

struct Load {
    concurrency: usize,
    events: usize,
    errors: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Load {
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn arg(name: &str, default: u64) -> anyhow::Result<u64> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .context(format!("{name} needs a value"))?
            .parse()
            .context(format!("{name} needs a number")),
        None => Ok(default),
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("raft benchmark skipped: run `cargo bench -p cairn-node --bench raft`");
        return;
    }
    if let Err(e) = run() {
        eprintln!("raft benchmark failed: {e:#}");
        std::process::exit(1);
    }
}

fn leader(nodes: &[Node]) -> anyhow::Result<usize> {
    let id = wait_for("a leader", Duration::from_secs(30), || {
        nodes
            .iter()
            .filter(|n| n.is_ready())
            .find_map(|n| n.status().and_then(|s| s.leader))
    });
    nodes
        .iter()
        .position(|n| n.id == id)
        .context("leader is not one of ours")
}

fn run() -> anyhow::Result<()> {
    let seconds = arg("--seconds", 5)?;
    let failovers = arg("--failovers", 3)?;
    let soak_seconds = arg("--soak", 0)?;
    let tmp = tempfile::tempdir()?;
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let mut n = Node::new(tmp.path(), id);
            n.env.push(("CAIRN_LOG".into(), "warn".into()));
            n
        })
        .collect();
    nodes[0].init();
    nodes[0].start();
    nodes[0].wait_ready();
    let url = nodes[0].url();
    for n in &mut nodes[1..] {
        n.spawn_join(&url);
    }
    wait_for("three voters", Duration::from_secs(60), || {
        nodes[0].status().filter(|s| s.voters.len() == 3)
    });
    for n in &nodes {
        n.wait_ready();
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(128)
        .build()?;
    let mut loads = Vec::new();
    for concurrency in [1usize, 64] {
        let l = leader(&nodes)?;
        let target = format!("{}/api/v1/admin/users", nodes[l].url());
        let bearer = nodes[l].bearer();
        // A short warm-up fills the connection pool and the page cache.
        runtime.block_on(load(
            &http,
            &target,
            &bearer,
            concurrency,
            Duration::from_millis(500),
            "warm",
        ))?;
        let measured = runtime.block_on(load(
            &http,
            &target,
            &bearer,
            concurrency,
            Duration::from_secs(seconds),
            "run",
        ))?;
        loads.push(measured);
    }

    // The soak: the concurrency-64 load for `--soak` seconds, counting the
    // elections it causes (term changes on any node). None is the bar.
    let soak = if soak_seconds > 0 {
        let l = leader(&nodes)?;
        let term_before = max_term(&nodes);
        let target = format!("{}/api/v1/admin/users", nodes[l].url());
        let measured = runtime.block_on(load(
            &http,
            &target,
            &nodes[l].bearer(),
            64,
            Duration::from_secs(soak_seconds),
            "soak",
        ))?;
        let elections = max_term(&nodes).saturating_sub(term_before);
        Some((measured, elections))
    } else {
        None
    };

    let mut failover_times = Vec::new();
    for round in 0..failovers {
        let l = leader(&nodes)?;
        let survivor = (l + 1) % nodes.len();
        let target = format!("{}/api/v1/admin/tiers", nodes[survivor].url());
        let bearer = nodes[survivor].bearer();
        let killed_at = Instant::now();
        nodes[l].kill();
        let took = runtime.block_on(async {
            let mut attempt = 0u64;
            loop {
                attempt += 1;
                let sent = http
                    .post(&target)
                    .header("Authorization", &bearer)
                    .header(
                        "Idempotency-Key",
                        format!("{:032x}", (round << 32) + attempt),
                    )
                    .header("Content-Type", "application/json")
                    .body(r#"{"name":"failover","replicas":2}"#)
                    .send()
                    .await;
                if matches!(&sent, Ok(r) if r.status().as_u16() == 201) {
                    return Ok(killed_at.elapsed());
                }
                if killed_at.elapsed() > Duration::from_secs(60) {
                    bail!("no write succeeded within 60 s of the failover");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })?;
        failover_times.push(took);
        nodes[l].start();
        nodes[l].wait_ready();
        std::thread::sleep(Duration::from_secs(2));
    }

    println!();
    println!("Raft on a 3-node loopback cluster (cairnd processes, account creations sent to the leader)");
    println!();
    println!("| concurrency | events | seconds | events/s | p50 ms | p99 ms | errors |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for l in &loads {
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.2} | {:.2} | {} |",
            l.concurrency,
            l.events,
            l.elapsed.as_secs_f64(),
            l.events as f64 / l.elapsed.as_secs_f64(),
            ms(l.percentile(0.50)),
            ms(l.percentile(0.99)),
            l.errors,
        );
    }
    if let Some((l, elections)) = &soak {
        println!();
        println!(
            "soak: {} s at concurrency 64, {:.0} events/s, p99 {:.2} ms, {} errors, {} elections (term changes)",
            soak_seconds,
            l.events as f64 / l.elapsed.as_secs_f64(),
            ms(l.percentile(0.99)),
            l.errors,
            elections,
        );
    }
    println!();
    println!("| failover round | leader SIGKILL → first acknowledged write |");
    println!("|---:|---:|");
    for (i, t) in failover_times.iter().enumerate() {
        println!("| {} | {:.2} s |", i + 1, t.as_secs_f64());
    }
    let mut sorted = failover_times.clone();
    sorted.sort();
    if let Some(median) = sorted.get(sorted.len() / 2) {
        println!("| median | {:.2} s |", median.as_secs_f64());
    }
    if let Some(max) = sorted.last() {
        println!("| max | {:.2} s |", max.as_secs_f64());
    }
    println!();
    println!("bars: >= 10000 events/s at concurrency 64 with p99 < 50 ms; failover median < 1 s; no elections in a 600 s soak");
    Ok(())
}

/// The highest Raft term any node reports.
fn max_term(nodes: &[Node]) -> u64 {
    nodes
        .iter()
        .filter_map(|n| n.status().map(|s| s.term))
        .max()
        .unwrap_or(0)
}

/// `concurrency` tasks create accounts back to back for `duration`.
async fn load(
    http: &reqwest::Client,
    target: &str,
    bearer: &str,
    concurrency: usize,
    duration: Duration,
    tag: &str,
) -> anyhow::Result<Load> {
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for task in 0..concurrency {
        let http = http.clone();
        let target = target.to_string();
        let bearer = bearer.to_string();
        let errors = errors.clone();
        let prefix = format!("{tag}-c{concurrency}-t{task}");
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let body = user_body(&format!("{prefix}-{i}"));
                let t0 = Instant::now();
                let sent = http
                    .post(&target)
                    .header("Authorization", &bearer)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let answered = match sent {
                    // Read the body: the write counts once answered.
                    Ok(r) if r.status().as_u16() == 201 => r.bytes().await.is_ok(),
                    _ => false,
                };
                if answered {
                    latencies.push(t0.elapsed());
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await?);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(Load {
        concurrency,
        events: latencies.len(),
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        latencies,
    })
}
