//! `cairn daemon`: one process per device that runs the device's schedules.
//!
//! ```text
//!  poll schedules + items (every `poll`; last good copy kept while the cluster is down)
//!      │
//!      ▼
//!  Scheduler::tick(schedules, now, running, last runs) ──▶ Actions
//!      ├─ Start   → child `cairn backup --item I --schedule S --job-id J --marks F`
//!      │            (the job's commands, heartbeats and retention pass run in
//!      │             the child, exactly as a manual backup does)
//!      ├─ Skip    → record `skipped_already_running`
//!      └─ Missed  → record `missed`
//!  a child that failed before its job was recorded → record `error` with its id
//!  a child past its schedule's `--timeout` → SIGKILL its process group, run the
//!            after commands its marks say are owed (CAIRN_JOB_STATUS=timeout),
//!            record the job `timeout` with their log
//!  records the cluster could not take stay queued and are retried every tick
//!  stop flag (SIGTERM) → SIGTERM to children (each records `cancelled`), wait, return
//!  beside it, a thread keeps the live connection for remote control
//!  ([`control`]): dispatched jobs are children of the same kind
//! ```
//!
//! Each job runs in its own process (and process group) so that a timeout,
//! a shutdown or a crash ends exactly one job with its commands, and so a
//! job's memory goes with it. The daemon owns the timeout, not the job:
//! a process that stops itself could not run its after commands while its
//! backup still runs, and one that is killed cannot run them at all. The
//! children die with the daemon (`PR_SET_PDEATHSIG`): a SIGKILLed daemon
//! leaves no job reporting heartbeats, and the cluster ends it
//! `abandoned`. Only one daemon runs per device profile ([`DaemonLock`]).

pub mod control;
pub mod scheduler;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_proto::api::{FinishJob, JobKind, JobStatus, RecordJob, ScheduleInfo};
use cairn_proto::{JobId, VaultId};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::error::{Error, Result};
use crate::hooks::{afters_due, read_marks, run_afters, SystemShell};
use crate::jobs::finish_by_id;
use crate::remote::Session;
use crate::schedule::Spec;
use scheduler::{Action, Planned, Scheduler};

/// How long children get to record their jobs as cancelled on shutdown.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The loop's granularity.
const TICK: Duration = Duration::from_millis(200);

/// The daemon's settings.
pub struct DaemonOptions {
    /// The `cairn` binary that runs each job.
    pub exe: PathBuf,
    /// Arguments before its subcommand (`--config PATH`).
    pub global_args: Vec<OsString>,
    /// How often the schedules are reloaded.
    pub poll: Duration,
    /// The device's time zone.
    pub tz: TimeZone,
    /// Keep a live connection for remote control ([`control`]).
    pub remote_control: bool,
    /// The key dispatched snapshot listings are sealed with (derived from
    /// the account password); none: listings are refused.
    pub listing_key: Option<crate::crypto::listing::ListingKey>,
}

/// The lock that makes a daemon the only one of its device profile: an
/// exclusive `flock` held for the process's life.
pub struct DaemonLock {
    _file: File,
    path: PathBuf,
}

impl DaemonLock {
    /// Takes the lock next to the profile at `profile`.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] when another daemon holds it; IO errors.
    pub fn take(profile: &Path) -> Result<Self> {
        let mut name = profile.as_os_str().to_owned();
        name.push(".daemon.lock");
        let path = PathBuf::from(name);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open the daemon lock", &path, e))?;
        // SAFETY: flock on a descriptor this function owns.
        let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if !taken {
            return Err(Error::Busy(format!(
                "another cairn daemon already runs for this device (lock {} is held)",
                path.display()
            )));
        }
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A running job of a schedule.
struct Running {
    child: Child,
    job: JobId,
    record: RecordJob,
    /// Where the job notes how far its commands got.
    marks: PathBuf,
    /// The schedule's time limit and when it is reached.
    limit: Option<(u32, Instant)>,
}

/// The schedules as last loaded, with each one's item vault.
#[derive(Default)]
struct Loaded {
    schedules: Vec<ScheduleInfo>,
    vaults: HashMap<String, VaultId>,
    planned: Vec<Planned>,
}

/// Runs the daemon until `stop` is set. `say` gets one line per event.
///
/// # Errors
///
/// None once running: the cluster being unreachable is retried; only an
/// unusable setup (no device id) ends it early.
pub fn run(
    session: &Session,
    opts: &DaemonOptions,
    stop: &AtomicBool,
    say: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    let dispatched = control::Running::default();
    std::thread::scope(|scope| {
        if opts.remote_control {
            scope.spawn(|| control::run(session, opts, &dispatched, stop, say));
        }
        schedules(session, opts, &dispatched, stop, say);
    });
    control::reap(session, &dispatched, say);
    Ok(())
}

/// The schedules' loop (and the reaping of dispatched jobs) until `stop`.
fn schedules(
    session: &Session,
    opts: &DaemonOptions,
    dispatched: &control::Running,
    stop: &AtomicBool,
    say: &dyn Fn(&str),
) {
    let started = Timestamp::now();
    let mut scheduler = Scheduler::new(session.profile().device.to_string().as_bytes());
    let mut loaded: Option<Loaded> = None;
    let mut at_start: BTreeSet<String> = BTreeSet::new();
    let mut last_runs: BTreeMap<String, Timestamp> = BTreeMap::new();
    let mut next_poll = Instant::now();
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut pending: Vec<RecordJob> = Vec::new();
    let mut invalid: BTreeSet<String> = BTreeSet::new();
    // The last load error said: a lasting refusal (a disabled account, a
    // revoked device) is said once, not every poll.
    let mut failing: Option<String> = None;
    while !stop.load(Ordering::SeqCst) {
        if Instant::now() >= next_poll {
            next_poll = Instant::now() + opts.poll;
            match load(session, &mut invalid, say) {
                Ok(l) => {
                    if loaded.is_none() {
                        // The first load: what ran before the daemon came up.
                        at_start = l.schedules.iter().map(|s| s.name.clone()).collect();
                        last_runs = last_runs_of(session).unwrap_or_default();
                        say(&format!("{} schedule(s) loaded", l.schedules.len()));
                    }
                    loaded = Some(l);
                    failing = None;
                }
                Err(e) => {
                    let text = e.to_string();
                    if failing.as_deref() != Some(text.as_str()) {
                        say(&format!(
                            "could not load the schedules (trying again every {}s): {text}",
                            opts.poll.as_secs().max(1)
                        ));
                        failing = Some(text);
                    }
                }
            }
        }
        reap(&mut running, &mut pending, say);
        time_out(session, &mut running, &mut pending, say);
        if let Some(l) = &loaded {
            let now = Timestamp::now();
            let actions = scheduler.tick(
                &l.planned,
                now,
                &opts.tz,
                |n| running.contains_key(n),
                |n| match (at_start.contains(n), last_runs.get(n)) {
                    (true, Some(t)) => *t,
                    (true, None) => Timestamp::MIN,
                    // New since the daemon started: nothing was missed.
                    (false, _) => now.max(started),
                },
            );
            for a in actions {
                act(a, l, opts, &mut running, &mut pending, say);
            }
        }
        flush(session, &mut pending, say);
        control::reap(session, dispatched, say);
        std::thread::sleep(TICK);
    }
    shut_down(&mut running, &mut pending, say);
    flush(session, &mut pending, say);
}

/// Loads the schedules and the vaults of their items; a schedule whose
/// spec does not parse is reported once and left out.
fn load(session: &Session, invalid: &mut BTreeSet<String>, say: &dyn Fn(&str)) -> Result<Loaded> {
    let schedules = session.schedules()?;
    let vaults: HashMap<String, VaultId> = session
        .items()?
        .into_iter()
        .map(|i| (i.name, i.vault))
        .collect();
    let mut planned = Vec::new();
    for s in &schedules {
        match s.spec.parse::<Spec>() {
            Ok(spec) => planned.push(Planned {
                name: s.name.clone(),
                frequency: spec.frequency,
                run_missed: spec.run_missed,
                anchor: Timestamp::from_millisecond(s.anchor as i64).unwrap_or(Timestamp::MIN),
                max_delay: SignedDuration::from_secs(s.random_delay_s.into()),
            }),
            Err(e) => {
                if invalid.insert(format!("{}\n{}", s.name, s.spec)) {
                    say(&format!("schedule {}: {e}; it does not run", s.name));
                }
            }
        }
    }
    Ok(Loaded {
        schedules,
        vaults,
        planned,
    })
}

/// When each schedule's newest job started.
fn last_runs_of(session: &Session) -> Result<BTreeMap<String, Timestamp>> {
    let me = session.profile().device;
    let mut last = BTreeMap::new();
    for j in session.jobs()? {
        let (Some(s), true) = (j.schedule, j.device == me) else {
            continue;
        };
        let t = Timestamp::from_millisecond(j.started_at as i64).unwrap_or(Timestamp::MIN);
        let e = last.entry(s).or_insert(t);
        *e = t.max(*e);
    }
    Ok(last)
}

fn record_of(s: &ScheduleInfo, l: &Loaded, status: JobStatus, due: Timestamp) -> RecordJob {
    RecordJob {
        id: JobId::random(),
        kind: JobKind::Backup,
        vault: s.vault.or_else(|| l.vaults.get(&s.item).copied()),
        item: Some(s.item.clone()),
        schedule: Some(s.name.clone()),
        status,
        log: String::new(),
        started_at: due.as_millisecond().max(0) as u64,
    }
}

fn act(
    action: Action,
    l: &Loaded,
    opts: &DaemonOptions,
    running: &mut HashMap<String, Running>,
    pending: &mut Vec<RecordJob>,
    say: &dyn Fn(&str),
) {
    let (name, due) = match &action {
        Action::Start { schedule, due }
        | Action::Skip { schedule, due }
        | Action::Missed { schedule, due } => (schedule, *due),
    };
    let Some(s) = l.schedules.iter().find(|s| &s.name == name) else {
        return;
    };
    match action {
        Action::Missed { .. } => {
            say(&format!("schedule {name}: the run due at {due} was missed"));
            let mut r = record_of(s, l, JobStatus::Missed, due);
            r.log = format!("due at {due}; the daemon was not running");
            pending.push(r);
        }
        Action::Skip { .. } => {
            say(&format!(
                "schedule {name}: the previous job still runs; skipping the run due at {due}"
            ));
            let mut r = record_of(s, l, JobStatus::SkippedAlreadyRunning, due);
            r.log = format!("due at {due}; the previous job of the schedule still ran");
            pending.push(r);
        }
        Action::Start { .. } => {
            let record = record_of(s, l, JobStatus::Error, due);
            let job = record.id;
            let marks = std::env::temp_dir().join(format!("cairn-job-{job}.marks"));
            match launch(opts, s, job, &marks) {
                Ok(child) => {
                    say(&format!("schedule {name}: started job {job}"));
                    let limit = s
                        .timeout_s
                        .map(|t| (t, Instant::now() + Duration::from_secs(t.into())));
                    running.insert(
                        name.clone(),
                        Running {
                            child,
                            job,
                            record,
                            marks,
                            limit,
                        },
                    );
                }
                Err(e) => {
                    say(&format!("schedule {name}: could not start a job: {e}"));
                    let mut r = record;
                    r.log = format!("the daemon could not start the job: {e}");
                    pending.push(r);
                }
            }
        }
    }
}

/// Starts `cairn backup --item I --schedule S --job-id J --marks F`.
fn launch(
    opts: &DaemonOptions,
    s: &ScheduleInfo,
    job: JobId,
    marks: &Path,
) -> std::io::Result<Child> {
    let mut args: Vec<OsString> = ["backup", "--item", &s.item, "--schedule", &s.name]
        .map(OsString::from)
        .to_vec();
    args.extend(["--job-id".into(), job.to_string().into(), "--marks".into()]);
    args.push(marks.as_os_str().to_owned());
    spawn_job(&opts.exe, &opts.global_args, &args, &[])
}

/// Starts a job's `cairn` process (`exe`, global arguments, `args`, extra
/// environment) in a process group of its own, dying with the daemon.
fn spawn_job(
    exe: &Path,
    global_args: &[OsString],
    args: &[OsString],
    env: &[(&str, String)],
) -> std::io::Result<Child> {
    let mut cmd = Command::new(exe);
    cmd.args(global_args)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)));
    // SAFETY: prctl, setpgid and sigprocmask are async-signal-safe; the
    // closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Its own group: a timeout kills its commands with it.
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The daemon blocks SIGTERM for its signal thread; the job's
            // own process installs its handling afresh.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    cmd.spawn()
}

/// Collects finished children; one that failed may have failed before its
/// job was recorded, so its job is recorded `error` under the same id (the
/// cluster refuses the duplicate when the job exists).
fn reap(running: &mut HashMap<String, Running>, pending: &mut Vec<RecordJob>, say: &dyn Fn(&str)) {
    let mut done = Vec::new();
    for (name, r) in running.iter_mut() {
        if let Ok(Some(status)) = r.child.try_wait() {
            done.push(name.clone());
            if status.success() {
                say(&format!("schedule {name}: job {} finished", r.job));
            } else {
                say(&format!(
                    "schedule {name}: job {} ended with {status}",
                    r.job
                ));
                let mut rec = r.record.clone();
                rec.log = format!(
                    "the job's process ended with {status} (see the daemon's log) before or after recording its end"
                );
                pending.push(rec);
            }
        }
    }
    for name in done {
        if let Some(r) = running.remove(&name) {
            let _ = std::fs::remove_file(&r.marks);
        }
    }
}

/// Stops the jobs past their schedule's time limit: SIGKILL to the job's
/// process group, then the after commands its marks say are still owed
/// (with `CAIRN_JOB_STATUS=timeout`), then the job's end, `timeout`, with
/// their log. A job whose start was never recorded is recorded whole.
fn time_out(
    session: &Session,
    running: &mut HashMap<String, Running>,
    pending: &mut Vec<RecordJob>,
    say: &dyn Fn(&str),
) {
    let now = Instant::now();
    let due: Vec<String> = running
        .iter()
        .filter(|(_, r)| r.limit.is_some_and(|(_, at)| now >= at))
        .map(|(n, _)| n.clone())
        .collect();
    for name in due {
        let Some(mut r) = running.remove(&name) else {
            continue;
        };
        let limit = r.limit.map_or(0, |(s, _)| s);
        signal_group(&r.child, libc::SIGKILL);
        let _ = r.child.kill();
        let _ = r.child.wait();
        say(&format!(
            "schedule {name}: job {} ran past its time limit of {limit}s; stopped",
            r.job
        ));
        let mut end = FinishJob {
            status: JobStatus::Timeout,
            files: 0,
            bytes: 0,
            error: Some(format!(
                "stopped: the schedule's time limit of {limit}s was reached"
            )),
            log: String::new(),
        };
        if let Some((chain, ctx, levels)) = afters_due(&read_marks(&r.marks)) {
            let mut shell = SystemShell::default();
            let mut log = String::new();
            run_afters(&chain, &ctx, &levels, &mut shell, &mut end, &mut log);
            end.log = log;
        }
        let _ = std::fs::remove_file(&r.marks);
        if let Err(e) = finish_by_id(session, r.job, &end) {
            say(&format!(
                "schedule {name}: could not record job {} as timed out ({e}); recording it whole",
                r.job
            ));
            let mut rec = r.record;
            rec.status = JobStatus::Timeout;
            rec.log = format!("{}\n{}", end.error.unwrap_or_default(), end.log);
            pending.push(rec);
        }
    }
}

/// Sends the records it can; keeps those the cluster could not take for
/// now (unreachable, overloaded) and drops those it refused.
fn flush(session: &Session, pending: &mut Vec<RecordJob>, say: &dyn Fn(&str)) {
    pending.retain(|r| match session.record_job(r) {
        Ok(_) => false,
        Err(e) if is_transient(&e) => true,
        Err(Error::Remote { code, .. }) if code == "duplicate_id" => false,
        Err(e) => {
            say(&format!("could not record job {}: {e}", r.id));
            false
        }
    });
}

fn is_transient(e: &Error) -> bool {
    match e {
        Error::Network(_) | Error::RateLimited { .. } => true,
        Error::Remote { status, .. } => *status >= 500,
        _ => false,
    }
}

/// SIGTERM to every child (each records its job `cancelled`), then waits
/// for them, killing those that outlive [`STOP_GRACE`]; what is left of
/// each job's process group (a before command still running) is killed.
fn shut_down(
    running: &mut HashMap<String, Running>,
    pending: &mut Vec<RecordJob>,
    say: &dyn Fn(&str),
) {
    for r in running.values() {
        signal(&r.child, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_GRACE;
    while !running.is_empty() && Instant::now() < deadline {
        running.retain(|_, r| {
            let done = matches!(r.child.try_wait(), Ok(Some(_)));
            if done {
                signal_group(&r.child, libc::SIGKILL);
                let _ = std::fs::remove_file(&r.marks);
            }
            !done
        });
        std::thread::sleep(Duration::from_millis(50));
    }
    for (name, mut r) in running.drain() {
        say(&format!(
            "schedule {name}: job {} did not stop; killed",
            r.job
        ));
        signal_group(&r.child, libc::SIGKILL);
        let _ = r.child.kill();
        let _ = r.child.wait();
        let _ = std::fs::remove_file(&r.marks);
        let mut rec = r.record;
        rec.status = JobStatus::Cancelled;
        rec.log = "the daemon stopped and the job did not end in time".into();
        pending.push(rec);
    }
}

/// Sends `sig` to a job's process.
fn signal(child: &Child, sig: i32) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill on a child this process started.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Sends `sig` to a job's process group (its id is the job process's).
fn signal_group(child: &Child, sig: i32) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill on the process group of a child this process
        // started in a group of its own.
        unsafe {
            libc::kill(-pid, sig);
        }
    }
}
