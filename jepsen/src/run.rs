//! One run, start to verdict: preflight (root, tools), the network and the
//! cluster, the workloads under the nemesis schedule, healing and settling,
//! reading acknowledged chunks back, the checkers, the report.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::authority::{Authority, Serial};
use crate::check::{self, chunks::Readback, Verdict};
use crate::cluster::Cluster;
use crate::error::JepsenError;
use crate::history::NemesisEvent;
use crate::net::{self, Network};
use crate::report::{self, RunInfo};
use crate::schedule::{self, NemesisKind};
use crate::workload::{self, AdminTokens, ClientCtx, Recorder, VaultSession};
use crate::{backup, interrupt, lease, nemesis};

/// What a run is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Node count.
    pub nodes: usize,
    /// How long the workloads run.
    pub time_limit: Duration,
    /// Fault kinds the schedule draws from.
    pub nemesis: Vec<NemesisKind>,
    /// Seed of the schedule and the clients' choices.
    pub seed: u64,
    /// Report directory (created).
    pub report: PathBuf,
    /// The `cairnd` binary.
    pub cairnd: PathBuf,
    /// The `cairn` client binary (the backup workload).
    pub cairn: PathBuf,
    /// Extra environment for every node.
    pub node_env: Vec<(String, String)>,
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Each checker's verdict.
    pub verdicts: Vec<Verdict>,
    /// What `run.json` says.
    pub info: RunInfo,
}

/// Register clients of a run.
const REGISTER_CLIENTS: usize = 3;
/// Vaults, each with one chunk client.
const VAULTS: usize = 2;
/// The authority's lease length: short, so an outage of a few seconds
/// lets the lease lapse and the rival take it.
const LEASE_SECONDS: u64 = 6;
/// How often the cluster renews (a third of the lease).
const RENEW_SECONDS: u64 = 2;
/// The cluster's grace: longer than any run, so a lapsed lease never
/// stops the other workloads.
const GRACE_SECONDS: u64 = 24 * 3_600;

/// Fails unless the harness can do its work here.
pub fn preflight(opts: &Options) -> Result<(), JepsenError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(JepsenError::NotRoot);
    }
    for tool in ["ip", "iptables"] {
        if !net::have(tool) {
            return Err(JepsenError::MissingTool(tool));
        }
    }
    for (what, path) in [("cairnd", &opts.cairnd), ("cairn", &opts.cairn)] {
        if !path.is_file() {
            return Err(JepsenError::MissingBinary {
                what,
                path: path.clone(),
            });
        }
    }
    if opts.nemesis.contains(&NemesisKind::PowerLoss) && !std::path::Path::new("/dev/fuse").exists()
    {
        return Err(JepsenError::NoFuse);
    }
    let debug_tool = opts.cairnd.with_file_name("cairnd-debug");
    if opts.nemesis.contains(&NemesisKind::Corrupt) && !debug_tool.is_file() {
        return Err(JepsenError::MissingDebugTool(debug_tool));
    }
    Ok(())
}

/// Carries out a run and writes its report.
pub fn run(opts: &Options) -> Result<Summary, JepsenError> {
    preflight(opts)?;
    interrupt::install();
    let removed = net::remove_leftovers()?;
    if removed > 0 {
        eprintln!("cairn-jepsen: removed {removed} namespaces left by earlier runs");
    }
    let logs = opts.report.join("logs");
    let data = opts.report.join("data");
    for d in [&logs, &data] {
        std::fs::create_dir_all(d).map_err(JepsenError::io(format!("creating {}", d.display())))?;
    }
    // Absolute: the backup device's paths are recreated under restore targets.
    let data = std::fs::canonicalize(&data).map_err(JepsenError::io("resolving the data dir"))?;
    let cairnd =
        std::fs::canonicalize(&opts.cairnd).map_err(JepsenError::io("resolving --cairnd"))?;
    let cairn = std::fs::canonicalize(&opts.cairn).map_err(JepsenError::io("resolving --cairn"))?;
    let net = Network::create(opts.nodes)?;
    net.enter_client_ns()?;
    eprintln!("cairn-jepsen: starting the license authority");
    let mut authority =
        Authority::start(&net, &cairnd, &data.join("authority"), &logs, LEASE_SECONDS)?;
    let serial = authority.create_serial()?;
    let mut cluster = Cluster::new(
        &net,
        opts.nodes,
        &cairnd,
        &data,
        &logs,
        opts.node_env.clone(),
        &authority.ca_file(),
    );
    eprintln!("cairn-jepsen: forming a cluster of {} nodes", opts.nodes);
    if opts.nemesis.contains(&NemesisKind::PowerLoss) {
        cluster.mount_lazy()?;
    }
    cluster.form()?;
    cluster.license(&serial.0, &authority.url(), RENEW_SECONDS, GRACE_SECONDS)?;
    let cluster_id = cluster_id(&authority, &serial)?;
    let tokens = cluster.admin_tokens()?;
    let replicas = u8::try_from(opts.nodes.min(3)).unwrap_or(3);
    let sessions = workload::create_vaults(cluster.addr(0), &tokens[0], VAULTS, replicas)?;
    let admins: AdminTokens = Arc::new(RwLock::new(tokens));
    let device = backup::Device::new(&cairn, &data.join("device"), opts.seed);
    device.setup(
        &cairnd,
        &format!("http://{}", cluster.addr(0)),
        &cluster.admin_token_file(0),
        workload::VAULT_TIER,
    )?;

    let rec = Arc::new(Recorder::new());
    let stop = Arc::new(AtomicBool::new(false));
    let addrs: Vec<_> = (0..opts.nodes).map(|i| cluster.addr(i)).collect();
    let ctx = |client: usize| ClientCtx {
        client,
        nodes: addrs.clone(),
        rec: rec.clone(),
        stop: stop.clone(),
        seed: opts.seed,
    };
    let mut threads = Vec::new();
    for c in 0..REGISTER_CLIENTS {
        let (ctx, admins) = (ctx(c), admins.clone());
        threads.push(std::thread::spawn(move || {
            workload::register_client(ctx, admins)
        }));
    }
    for (v, session) in sessions.iter().enumerate() {
        let (ctx, session) = (ctx(REGISTER_CLIENTS + v), session.clone());
        threads.push(std::thread::spawn(move || {
            workload::chunk_client(ctx, v, session)
        }));
    }
    let next = REGISTER_CLIENTS + sessions.len();
    let (observer, cid) = (ctx(next), cluster_id.clone());
    threads.push(std::thread::spawn(move || lease::observer(observer, cid)));
    let (rival, tls, at, s) = (
        ctx(next + 1),
        authority.tls().clone(),
        authority.addr(),
        serial.clone(),
    );
    threads.push(std::thread::spawn(move || {
        lease::rival(rival, tls, at, s, LEASE_SECONDS * 1_000)
    }));
    let backup_client = next + 2;
    let (b, d) = (ctx(backup_client), device.clone());
    threads.push(std::thread::spawn(move || backup::client(b, d)));
    let limit_ms = u64::try_from(opts.time_limit.as_millis()).unwrap_or(u64::MAX);
    eprintln!(
        "cairn-jepsen: running workloads for {} s (seed {})",
        limit_ms / 1000,
        opts.seed
    );
    let vaults: Vec<String> = sessions.iter().map(|s| s.vault.to_hex()).collect();
    let faults = run_schedule(
        opts,
        limit_ms,
        &rec,
        (&mut cluster, &mut authority),
        &net,
        &vaults,
        &admins,
    );
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    let duration_ms = rec.now_ms();
    if let Err(e) = faults {
        // What was recorded is still evidence.
        let _ = report::write_partial(&opts.report, &rec.history(), duration_ms);
        return Err(e);
    }

    eprintln!("cairn-jepsen: healing, waiting for repair to settle");
    net.heal()?;
    let crashed: Vec<String> = cluster
        .revive()?
        .into_iter()
        .map(|(i, status)| format!("n{} exited by itself ({status})", i + 1))
        .collect();
    for c in &crashed {
        eprintln!("cairn-jepsen: {c}; see its log");
    }
    for i in 0..cluster.node_count() {
        cluster.wait_ready(i, Duration::from_secs(120))?;
    }
    let settled = settle(&cluster).is_ok();
    let final_ms = rec.now_ms();
    eprintln!("cairn-jepsen: restoring every snapshot, checking the vault");
    backup::verify(&rec, backup_client, &device);
    let history = rec.history();
    let tenures = authority.tenures(&serial)?;
    // Through every node: each reads its own copy first, so a damaged
    // copy anywhere is exercised.
    let readbacks = (0..cluster.node_count())
        .map(|i| {
            Ok((
                format!("n{}", i + 1),
                read_back(&cluster, i, &history, &sessions)?,
            ))
        })
        .collect::<Result<Vec<_>, JepsenError>>()?;
    let verdicts = vec![
        check::register::check(&history, check::register::BUDGET_PER_KEY),
        check::chunks::check_each(&history, &workload::chunk_bytes_hex, &readbacks),
        check::lease::check(&history, &tenures),
        check::lease::check_views(&history, &tenures, rec.t0_epoch_ms()),
        check::backups::check(&history, final_ms),
        check::nodes(&crashed),
    ];
    let (ok, failed, unknown) = history.counts();
    let names: Vec<String> = opts.nemesis.iter().map(|k| k.name().to_string()).collect();
    let info = RunInfo {
        seed: opts.seed,
        nodes: opts.nodes,
        time_limit_s: opts.time_limit.as_secs(),
        replay: report::replay_command(
            "cairn-jepsen",
            opts.nodes,
            opts.time_limit.as_secs(),
            &names,
            opts.seed,
            &opts.node_env,
            (&cairnd, &cairn),
        ),
        nemesis: names,
        ops: history.ops.len(),
        ok,
        failed,
        unknown,
        settled,
        crashed,
    };
    report::write(&opts.report, &info, &history, &verdicts, duration_ms)?;
    drop(cluster);
    // The node data is evidence only when something is wrong.
    if verdicts.iter().all(|v| v.result == check::Outcome::Valid) {
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(Summary { verdicts, info })
}

/// Waits `until` ms into the run, polling for Ctrl-C.
fn sleep_until(rec: &Recorder, until: u64) -> Result<(), JepsenError> {
    while rec.now_ms() < until {
        if interrupt::interrupted() {
            return Err(JepsenError::Interrupted);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Applies and heals the seed's faults, then waits out the time limit.
fn run_schedule(
    opts: &Options,
    limit_ms: u64,
    rec: &Recorder,
    (cluster, authority): (&mut Cluster, &mut Authority),
    net: &Network,
    vaults: &[String],
    admins: &AdminTokens,
) -> Result<(), JepsenError> {
    for w in schedule::schedule(opts.seed, &opts.nemesis, opts.nodes, limit_ms) {
        sleep_until(rec, w.start_ms)?;
        let start_ms = rec.now_ms();
        let targets = match w.fault {
            schedule::Fault::Corrupt { .. } => corrupt_targets(&rec.history(), vaults),
            _ => Vec::new(),
        };
        let (active, fault) = nemesis::apply(&w.fault, cluster, authority, net, &targets)?;
        eprintln!("cairn-jepsen: {:>7.1}s {fault}", start_ms as f64 / 1000.0);
        let healed = sleep_until(rec, w.end_ms)
            .and_then(|()| nemesis::heal(active, cluster, authority, net))
            // A churned node comes back with a new admin token.
            .and_then(|()| cluster.admin_tokens())
            .map(|t| *admins.write().unwrap_or_else(PoisonError::into_inner) = t);
        rec.nemesis(NemesisEvent {
            fault,
            start_ms,
            end_ms: rec.now_ms(),
        });
        healed?;
    }
    sleep_until(rec, limit_ms)
}

/// The 20 most recently acknowledged chunks as (vault, chunk) hex ids,
/// newest first: what a corruption picks from.
fn corrupt_targets(history: &crate::history::History, vaults: &[String]) -> Vec<(String, String)> {
    let mut acked: Vec<(usize, usize, String)> = check::chunks::acknowledged(history)
        .into_iter()
        .map(|((vault, chunk), op)| (op, vault, chunk))
        .collect();
    acked.sort_unstable_by(|a, b| b.cmp(a));
    acked
        .into_iter()
        .filter_map(|(_, v, c)| Some((vaults.get(v)?.clone(), c)))
        .take(20)
        .collect()
}

/// The cluster's id at the authority: the holder of the first tenure
/// (the cluster is licensed before the rival starts).
fn cluster_id(authority: &Authority, serial: &Serial) -> Result<String, JepsenError> {
    authority
        .tenures(serial)?
        .first()
        .map(|t| t.cluster_id.clone())
        .ok_or_else(|| JepsenError::Setup("the authority granted the cluster no lease".into()))
}

/// Waits until the leader reports no under-replicated chunk after two
/// more repair passes.
fn settle(cluster: &Cluster) -> Result<(), JepsenError> {
    let timeout = Duration::from_secs(120);
    let leader = cluster.wait("a leader", timeout, Cluster::leader)?;
    let passes = |c: &Cluster| c.metric(leader, "cairn_storage_repair_passes_total");
    let start = cluster.wait("repair passes", timeout, passes)?;
    cluster.wait("two more repair passes", timeout, |c| {
        (passes(c)? >= start + 2.0).then_some(())
    })?;
    cluster.wait("no under-replicated chunks", timeout, |c| {
        (c.status(leader)?.under_replicated_chunks == Some(0)).then_some(())
    })
}

/// Reads every acknowledged chunk back from its vault through node `node`,
/// and a sample of each vault's chunks through the other vault (which
/// must not see them).
fn read_back(
    cluster: &Cluster,
    node: usize,
    history: &crate::history::History,
    sessions: &[VaultSession],
) -> Result<Readback, JepsenError> {
    let acked = check::chunks::acknowledged(history);
    let mut readback = Readback::default();
    let addr = cluster.addr(node);
    for (v, session) in sessions.iter().enumerate() {
        let ids: Vec<String> = acked
            .keys()
            .filter(|(vault, _)| *vault == v)
            .map(|(_, c)| c.clone())
            .collect();
        for (id, bytes) in workload::read_chunks(addr, session, &ids)? {
            readback.found.insert((v, id), bytes);
        }
        let other = (v + 1) % sessions.len();
        if other != v {
            let sample = &ids[..ids.len().min(256)];
            for id in workload::read_chunks(addr, &sessions[other], sample)?.into_keys() {
                readback.foreign.push((other, id));
            }
        }
    }
    Ok(readback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Call, History, Op, Outcome};

    fn upload(index: usize, vault: usize, chunk: &str, outcome: Outcome) -> Op {
        Op {
            index,
            client: 0,
            node: 0,
            start_ms: 0,
            end_ms: 1,
            call: Call::Upload {
                vault,
                chunks: vec![chunk.into()],
            },
            outcome,
        }
    }

    #[test]
    fn corruption_picks_the_newest_acknowledged_chunks_with_their_vault() {
        let ok = || Outcome::Ok { value: None };
        let history = History {
            ops: vec![
                upload(0, 0, "aa", ok()),
                upload(1, 1, "bb", ok()),
                upload(
                    2,
                    0,
                    "cc",
                    Outcome::Unknown {
                        error: "timeout".into(),
                    },
                ),
            ],
            nemesis: vec![],
        };
        let vaults = ["v0".to_string(), "v1".to_string()];
        assert_eq!(
            corrupt_targets(&history, &vaults),
            vec![
                ("v1".to_string(), "bb".to_string()),
                ("v0".to_string(), "aa".to_string())
            ]
        );
    }
}
