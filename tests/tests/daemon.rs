//! Unattended protection with real processes: a dev cluster, `cairn
//! daemon` running a device's schedules, before/after commands, Comet's job
//! statuses (missed, skipped_already_running, timeout, cancelled,
//! abandoned) and retention policies applied to an account vault.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cairn_client::retention::{self, Range};
use cairn_tests::{ok, same_tree, stderr, wait_for, write_data, Cluster, Daemon, Device};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde_json::Value;

const PW: &str = "unattended pass words";

/// One node, one account, device `desk` logged in with vault `main` and
/// item `home` (a small data directory) defined.
struct Setup {
    cluster: Cluster,
    device: Device,
    data: PathBuf,
}

fn setup(serve: &[&str], item_commands: &[&str]) -> Setup {
    let cluster = Cluster::start(1, serve);
    ok(
        "tier create",
        &cluster.nodes[0].admin(&["tier", "create", "one", "--replicas", "1"]),
    );
    cluster.create_user("erin", PW);
    let device = Device::new(&cluster.scratch("devices").join("d"), "desk", PW);
    ok("login", &device.login(&cluster.nodes[0].url(), "erin"));
    device.json(&["vault", "request", "--tier", "one", "--name", "main"]);
    let data = cluster.scratch("data");
    write_data(&data.join("a.bin"), 64 << 10, 1);
    let mut args = vec!["item", "set", "home", "--vault", "main", utf8(&data)];
    args.extend_from_slice(item_commands);
    device.json(&args);
    Setup {
        cluster,
        device,
        data,
    }
}

fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `cairn daemon --poll 1s` as the device, heartbeats every second.
fn daemon(device: &Device) -> Daemon {
    Daemon::spawn(
        device
            .command(&["daemon", "--poll", "1s"])
            .env("CAIRN_HEARTBEAT_SECS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    )
}

fn jobs(device: &Device) -> Vec<Value> {
    device
        .json(&["jobs"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits for a job of `schedule` matching `pred`.
fn job_of(device: &Device, schedule: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, Duration::from_secs(60), || {
        jobs(device)
            .into_iter()
            .find(|j| j["schedule"] == schedule && pred(j))
    })
}

fn status_is(status: &'static str) -> impl Fn(&Value) -> bool {
    move |j: &Value| j["status"] == status
}

fn snapshots(device: &Device) -> Vec<Value> {
    device
        .json(&["snapshots", "--vault", "main"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `echo WORD and the job's context >> out` for a before or after command.
fn echo(word: &str, out: &Path) -> String {
    format!(
        "echo {word} \"$CAIRN_JOB_ID\" \"$CAIRN_ITEM\" \"$CAIRN_VAULT\" \"$CAIRN_SCHEDULE\" \"${{CAIRN_JOB_STATUS:--}}\" >> {}",
        out.display()
    )
}

/// `cairn schedule add NAME --item home --at SPEC EXTRA…`.
fn add_schedule(d: &Device, name: &str, spec: &str, extra: &[&str]) {
    let mut args = vec!["schedule", "add", name, "--item", "home", "--at", spec];
    args.extend_from_slice(extra);
    d.json(&args);
}

/// Vault `main`'s commands echo `vault-before`/`vault-after` to `out`;
/// schedule `tick` (`every 2s`, plus `extra`) echoes
/// `schedule-before`/`schedule-after` (with the job's context).
fn echo_around(d: &Device, out: &Path, vault_before: &str, extra: &[&str]) {
    d.json(&[
        "vault",
        "set",
        "main",
        "--before",
        vault_before,
        "--after",
        &echo("vault-after", out),
    ]);
    let (sb, sa) = (echo("schedule-before", out), echo("schedule-after", out));
    let mut args = vec!["--before", &sb, "--after", &sa];
    args.extend_from_slice(extra);
    add_schedule(d, "tick", "every 2s", &args);
}

/// A [`setup`] whose item commands echo `item-before`/`item-after` (see
/// [`echo`]) to the returned steps file.
fn setup_echoing() -> (tempfile::TempDir, PathBuf, Setup) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("steps");
    let (ib, ia) = (echo("item-before", &out), echo("item-after", &out));
    let s = setup(&[], &["--before", &ib, "--after", &ia]);
    (dir, out, s)
}

/// The steps of a job that entered `levels` (outermost first): their
/// before commands in order, then their after commands innermost first.
fn nested(levels: &[&str]) -> Vec<String> {
    let before = levels.iter().map(|l| format!("{l}-before"));
    let after = levels.iter().rev().map(|l| format!("{l}-after"));
    before.chain(after).collect()
}

/// The first word of each line of `steps` about job `id`.
fn steps_of<'a>(steps: &'a str, id: &str) -> Vec<&'a str> {
    steps
        .lines()
        .filter(|l| l.contains(id))
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect()
}

#[test]
fn a_periodic_schedule_backs_up_with_its_seven_steps_in_order() {
    let (_dir, out, s) = setup_echoing();
    let d = &s.device;
    echo_around(d, &out, &echo("vault-before", &out), &[]);
    let child = daemon(d);
    // Periodic: two scheduled backups, each with its snapshot.
    wait_for("two scheduled backups", Duration::from_secs(90), || {
        let done = jobs(d)
            .into_iter()
            .filter(|j| j["schedule"] == "tick" && j["status"] == "succeeded")
            .count();
        (done >= 2).then_some(())
    });
    d.json(&["schedule", "remove", "tick"]);
    assert!(child.stop().success(), "the daemon exits 0 on SIGTERM");
    assert!(
        snapshots(d).len() >= 2,
        "each scheduled backup made a snapshot"
    );

    let first = jobs(d)
        .into_iter()
        .find(|j| j["schedule"] == "tick" && j["status"] == "succeeded")
        .expect("a scheduled job");
    let id = first["id"].as_str().expect("job id");
    assert_eq!(first["item"], "home");
    let steps = std::fs::read_to_string(&out).expect("steps file");
    let mine: Vec<&str> = steps.lines().filter(|l| l.contains(id)).collect();
    let context = format!("{id} home main tick");
    assert_eq!(
        mine,
        [
            format!("schedule-before {context} -"),
            format!("item-before {context} -"),
            format!("vault-before {context} -"),
            format!("vault-after {context} succeeded"),
            format!("item-after {context} succeeded"),
            format!("schedule-after {context} succeeded"),
        ],
        "{steps}"
    );
    // The commands' output and exit codes are in the job's log.
    let log = first["log"].as_str().expect("log");
    assert!(
        log.contains("[schedule before] $ echo schedule-before"),
        "{log}"
    );
    assert!(log.contains("[exit 0]"), "{log}");
}

#[test]
fn a_failing_item_before_command_fails_the_job_with_no_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("steps");
    let failing = format!("{}; exit 3", echo("item-before", &out));
    let s = setup(
        &[],
        &["--before", &failing, "--after", &echo("item-after", &out)],
    );
    let d = &s.device;
    echo_around(d, &out, &echo("vault-before", &out), &[]);
    let child = daemon(d);
    let job = job_of(d, "tick", "a failed scheduled job", status_is("error"));
    d.json(&["schedule", "remove", "tick"]);
    assert!(child.stop().success());
    let id = job["id"].as_str().expect("id");
    assert!(
        job["error"]
            .as_str()
            .is_some_and(|e| e.contains("item before") && e.contains("exit 3")),
        "{job}"
    );
    let steps = std::fs::read_to_string(&out).expect("steps file");
    // The vault level was never entered; the item and schedule levels
    // clean up after themselves.
    assert_eq!(
        steps_of(&steps, id),
        nested(&["schedule", "item"]),
        "{steps}"
    );
    assert!(steps.contains("item-after"), "{steps}");
    assert!(steps
        .lines()
        .filter(|l| l.contains(id) && l.contains("-after"))
        .all(|l| l.ends_with(" error")));
    assert!(snapshots(d).is_empty(), "no backup ran");
    // Operators see failing backups in /metrics.
    let failed = s.cluster.nodes[0].metric(r#"cairn_jobs{kind="backup",status="error"}"#);
    assert!(failed.is_some_and(|n| n >= 1.0), "{failed:?}");

    // A manual backup of the item runs the item's commands too.
    let manual = d.cairn(&["backup", "--item", "home"]);
    assert_eq!(manual.status.code(), Some(1), "{}", stderr(&manual));
    assert!(
        stderr(&manual).contains("item before"),
        "{}",
        stderr(&manual)
    );
}

#[test]
fn a_run_due_while_the_last_one_runs_is_skipped_and_sigterm_cancels_the_job() {
    let s = setup(&[], &["--before", "sleep 6"]);
    let d = &s.device;
    add_schedule(d, "slow", "every 2s", &[]);
    let child = daemon(d);
    let skipped = job_of(
        d,
        "slow",
        "a skipped run",
        status_is("skipped_already_running"),
    );
    assert_eq!(skipped["item"], "home");
    let running = job_of(d, "slow", "the running job", |j| j["status"].is_null());
    assert!(child.stop().success(), "the daemon exits 0 on SIGTERM");
    let id = running["id"].clone();
    let ended = jobs(d)
        .into_iter()
        .find(|j| j["id"] == id)
        .expect("the job that ran");
    assert_eq!(ended["status"], "cancelled", "{ended}");
}

/// The leader's count of devices with overdue backups.
fn overdue_devices(s: &Setup) -> Option<f64> {
    s.cluster.nodes[0].metric("cairn_backups_overdue_devices")
}

fn missed_of(d: &Device, schedule: &str) -> Vec<Value> {
    jobs(d)
        .into_iter()
        .filter(|j| j["schedule"] == schedule && j["status"] == "missed")
        .collect()
}

#[test]
fn a_schedule_that_passed_while_the_daemon_was_down_is_missed_and_overdue() {
    let s = setup(&[], &[]);
    let d = &s.device;
    add_schedule(d, "tick", "every 2s", &[]);
    let child = daemon(d);
    job_of(d, "tick", "a scheduled backup", status_is("succeeded"));
    assert_eq!(overdue_devices(&s), Some(0.0), "backing up on time");
    assert!(child.stop().success());
    let before = missed_of(d, "tick").len();
    // Down for longer than a period and its grace: overdue on the leader,
    // and listed for the operator.
    let node = &s.cluster.nodes[0];
    wait_for("an overdue device", Duration::from_secs(30), || {
        (overdue_devices(&s) == Some(1.0)).then_some(())
    });
    assert_eq!(node.metric("cairn_backups_overdue_schedules"), Some(1.0));
    let listed = cairn_tests::json_of(
        "admin backups overdue",
        &node.admin(&["backups", "overdue", "--json"]),
    );
    let listed = listed.as_array().expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["schedule"], "tick");
    assert_eq!(listed[0]["item"], "home");
    assert_eq!(listed[0]["device_name"], "desk");
    assert!(listed[0]["last_success"].is_u64(), "{listed:?}");
    let text = ok(
        "admin backups overdue",
        &node.admin(&["backups", "overdue"]),
    );
    let row = text
        .lines()
        .find(|l| l.contains("tick"))
        .unwrap_or_default();
    assert!(row.contains("home") && row.contains("desk"), "{text}");

    let child = daemon(d);
    let new = wait_for("a missed run", Duration::from_secs(60), || {
        let m = missed_of(d, "tick");
        (m.len() > before).then_some(m)
    });
    assert_eq!(new.len(), before + 1, "one record however many runs passed");
    assert!(new
        .iter()
        .all(|j| j["kind"] == "backup" && j["item"] == "home"));
    // Backing up again: no longer overdue.
    wait_for("no overdue device", Duration::from_secs(30), || {
        (overdue_devices(&s) == Some(0.0)).then_some(())
    });
    assert!(child.stop().success());
}

#[test]
fn a_run_missed_schedule_runs_the_missed_run_when_the_daemon_starts() {
    let s = setup(&[], &[]);
    let d = &s.device;
    // Defined while no daemon runs; its first run (8 s after it was set)
    // passes before the daemon starts.
    add_schedule(d, "catch", "every 8s", &["--run-missed"]);
    let listed = d.json(&["schedule", "list"]);
    assert_eq!(listed[0]["spec"], "every 8s run-missed", "{listed}");
    let anchor = listed[0]["anchor"].as_u64().expect("anchor");
    std::thread::sleep(Duration::from_secs(9));
    let child = daemon(d);
    let ran = job_of(d, "catch", "the missed run", status_is("succeeded"));
    assert!(child.stop().success());
    let missed = missed_of(d, "catch");
    assert_eq!(missed.len(), 1, "{missed:?}");
    let at = |j: &Value| -> Timestamp {
        j["started_at"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("started_at of {j}"))
    };
    // Periodic runs count whole seconds from the anchor.
    let due = at(&missed[0]).as_second();
    assert_eq!(due, anchor as i64 / 1_000 + 8, "{missed:?}");
    // Started at once, before the next regular run was due.
    let started = at(&ran).as_millisecond();
    assert!(
        started < anchor as i64 + 16_000,
        "{started} vs anchor {anchor}"
    );
}

#[test]
fn a_second_daemon_for_the_device_refuses_to_start() {
    let s = setup(&[], &[]);
    let d = &s.device;
    let first = daemon(d);
    std::thread::sleep(Duration::from_secs(1));
    let second = d.cairn(&["daemon"]);
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("another cairn daemon"),
        "{}",
        stderr(&second)
    );
    assert!(first.stop().success());
}

#[test]
fn a_run_over_its_time_limit_ends_as_timeout_and_still_runs_its_after_commands() {
    let (_dir, out, s) = setup_echoing();
    let d = &s.device;
    // The vault's before command outlives the limit; it is killed with the
    // job (`late` is never written).
    let slow = format!(
        "{}; sleep 5; echo late >> {}",
        echo("vault-before", &out),
        out.display()
    );
    echo_around(d, &out, &slow, &["--timeout", "3s"]);
    let child = daemon(d);
    let job = job_of(d, "tick", "a timed-out job that entered every level", |j| {
        j["status"] == "timeout"
            && j["log"]
                .as_str()
                .is_some_and(|l| l.contains("[vault after]"))
    });
    d.json(&["schedule", "remove", "tick"]);
    assert!(child.stop().success());
    assert!(
        job["error"]
            .as_str()
            .is_some_and(|e| e.contains("time limit of 3s")),
        "{job}"
    );
    let log = job["log"].as_str().expect("log");
    assert!(
        log.contains("[schedule after] $ echo schedule-after"),
        "{log}"
    );
    let id = job["id"].as_str().expect("id");
    let steps = std::fs::read_to_string(&out).expect("steps file");
    assert_eq!(
        steps_of(&steps, id),
        nested(&["schedule", "item", "vault"]),
        "{steps}"
    );
    assert!(steps
        .lines()
        .filter(|l| l.contains(id) && l.contains("-after"))
        .all(|l| l.ends_with(" timeout")));
    assert!(snapshots(d).is_empty());
    // Past the killed command's sleep: it never wrote.
    std::thread::sleep(Duration::from_secs(6));
    let steps = std::fs::read_to_string(&out).expect("steps file");
    assert!(!steps.contains("late"), "{steps}");
}

#[test]
fn a_sigkilled_daemon_leaves_its_job_abandoned_by_the_cluster() {
    let s = setup(&["--job-silence-ms", "10000"], &["--before", "sleep 30"]);
    let d = &s.device;
    add_schedule(d, "tick", "every 2s", &[]);
    let child = daemon(d);
    let running = job_of(d, "tick", "a running job", |j| j["status"].is_null());
    // Heartbeats keep it running past the silence while the daemon lives.
    std::thread::sleep(Duration::from_secs(3));
    child.kill();
    let id = running["id"].clone();
    let ended = wait_for("the job to be abandoned", Duration::from_secs(60), || {
        jobs(d)
            .into_iter()
            .find(|j| j["id"] == id && !j["status"].is_null())
    });
    assert_eq!(ended["status"], "abandoned", "{ended}");

    // The operator sees it among the abandoned jobs of the account, and an
    // unknown status is a usage error.
    let node = &s.cluster.nodes[0];
    let listed = cairn_tests::json_of(
        "admin jobs",
        &node.admin(&[
            "jobs",
            "--status",
            "abandoned",
            "--since",
            "1h",
            "--account",
            "erin",
            "--json",
        ]),
    );
    let listed = listed.as_array().expect("jobs");
    assert!(listed.iter().any(|j| j["id"] == id), "{listed:?}");
    assert!(listed.iter().all(|j| j["status"] == "abandoned"));
    let text = ok(
        "admin jobs",
        &node.admin(&["jobs", "--status", "abandoned"]),
    );
    assert!(
        text.contains("abandoned") && text.contains("vault "),
        "{text}"
    );
    let bad = node.admin(&["jobs", "--status", "nonsense"]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("unknown job status"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn retention_keeps_what_the_policy_selects_and_the_vault_stays_restorable() {
    let s = setup(&[], &[]);
    let d = &s.device;
    let versions = s.cluster.scratch("versions");
    for v in 0..4u64 {
        write_data(&s.data.join("a.bin"), (64 << 10) + v as usize, v + 10);
        copy_dir(&s.data, &versions.join(v.to_string()));
        d.json(&["backup", "--item", "home"]);
    }
    let before = snapshots(d);
    assert_eq!(before.len(), 4);
    d.json(&["retention", "set", "--vault", "main", "--keep-last", "2"]);
    let shown = d.json(&["retention", "show", "--vault", "main"]);
    assert_eq!(shown["default"]["ranges"][0]["type"], "last", "{shown}");

    let times: Vec<Timestamp> = before
        .iter()
        .map(|s| s["time"].as_str().expect("time").parse().expect("RFC 3339"))
        .collect();
    let expected = retention::select(
        &times,
        &[Range::Last(2)],
        Timestamp::now(),
        &TimeZone::system(),
    );

    let dry = d.json(&["retention", "apply", "--vault", "main", "--dry-run"]);
    assert_eq!(
        dry[0]["forgotten"].as_array().map(Vec::len),
        Some(2),
        "{dry}"
    );
    assert_eq!(snapshots(d).len(), 4, "a dry run changes nothing");

    let applied = d.json(&["retention", "apply", "--vault", "main"]);
    assert_eq!(applied[0]["pruned"], true, "{applied}");
    let after: Vec<String> = snapshots(d)
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect();
    let kept: Vec<String> = before
        .iter()
        .zip(&expected)
        .filter(|(_, k)| **k)
        .map(|(s, _)| s["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(after, kept);
    assert!(jobs(d)
        .iter()
        .any(|j| j["kind"] == "retention" && j["status"] == "succeeded"));

    ok(
        "check --read-data",
        &d.cairn(&["check", "--vault", "main", "--read-data"]),
    );
    for (i, snap) in before.iter().enumerate() {
        let id = snap["id"].as_str().expect("id");
        if !after.iter().any(|a| a == id) {
            continue;
        }
        let target = s.cluster.scratch(&format!("restore-{i}"));
        ok(
            "restore",
            &d.cairn(&["restore", "--vault", "main", id, "--target", utf8(&target)]),
        );
        let restored = target.join(s.data.strip_prefix("/").expect("absolute"));
        if let Err(e) = same_tree(&versions.join(i.to_string()), &restored) {
            panic!("snapshot {i} restores differently: {e}");
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

#[test]
fn an_over_quota_backup_ends_as_quota_not_error() {
    let cluster = Cluster::start(1, &[]);
    ok(
        "tier create",
        &cluster.nodes[0].admin(&[
            "tier",
            "create",
            "tiny",
            "--replicas",
            "1",
            "--quota",
            "64KiB",
        ]),
    );
    cluster.create_user("quinn", PW);
    let d = Device::new(&cluster.scratch("devices").join("q"), "full", PW);
    ok("login", &d.login(&cluster.nodes[0].url(), "quinn"));
    d.json(&["vault", "request", "--tier", "tiny", "--name", "main"]);
    let data = cluster.scratch("data");
    write_data(&data.join("big.bin"), 1 << 20, 7);
    let out = d.cairn(&["backup", "--vault", "main", utf8(&data)]);
    assert!(!out.status.success(), "an over-quota backup fails");
    assert!(stderr(&out).contains("over its quota"), "{}", stderr(&out));
    let job = jobs(&d)
        .into_iter()
        .find(|j| j["kind"] == "backup")
        .expect("the backup's job is in the log");
    assert_eq!(job["status"], "quota", "{job}");
    assert!(snapshots(&d).is_empty(), "nothing was committed");
}
