//! One function per `cairn` command: open what it names, run the library,
//! record account-vault jobs, print ([`super::output`]) and return the exit
//! code of an outcome that is not an error (0 ok, 4 damaged data, 1 files
//! not written, 5 backup incomplete).

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use cairn_client::backup::{self, BackupOptions, Change, FileListener, ParentChoice, Progress};
use cairn_client::chunker::ChunkerParams;
use cairn_client::crypto::KdfParams;
use cairn_client::forget::{self, Selection};
use cairn_client::hooks::SystemShell;
use cairn_client::jobs::JobLog;
use cairn_client::remote::config::profile_path;
use cairn_client::remote::preset::{self, Preset};
use cairn_client::remote::session::{LoginOptions, VaultRequest};
use cairn_client::remote::Session;
use cairn_client::restore::{self, RestoreOptions};
use cairn_client::retention::KeepPolicy;
use cairn_client::run::{self, ItemJob, JobEnv};
use cairn_client::select::ThisDevice;
use cairn_client::snapshot::SnapshotRecord;
use cairn_client::vault::object::store::ObjectUrl;
use cairn_client::vault::CreateOptions;
use cairn_client::{check, fsmeta, items, ls, prune, Error, Vault};
use cairn_proto::api::{JobKind, VaultCommands};
use cairn_proto::JobId;

use super::account::{self, DeviceJson, ItemJson, JobJson, VaultJson};
use super::args::{
    BackupArgs, CommandArgs, DevicesCommand, ForgetArgs, ItemCommand, RestoreArgs, SelectArgs,
    VaultArg,
};
use super::open::{account_password, open, session, Opened};
use super::output::{self, print_json};
use super::progress::{self, bytes, load, BackupStatus, Display, Spinner};
use super::{interrupt, password as passwords};

/// Exit code of a backup that saved its snapshot but had to leave out
/// entries it could not read (restic's "incomplete snapshot").
pub const INCOMPLETE: u8 = 5;

/// Prints a job-log warning that does not stop the command.
fn warn(w: &str) {
    eprintln!("warning: {w}");
}

/// The job log of an opened vault, cancelled by this process's signals.
pub fn job_log(opened: &Opened) -> JobLog<'_> {
    JobLog::new(
        opened.session.as_ref(),
        opened.vault.config().vault_id,
        interrupt::cancel_token(),
        &warn,
    )
    .with_job_id(dispatched_job())
}

/// The job id a dispatched job runs under (remote control: the daemon sets
/// `CAIRN_JOB_ID` for the process it starts); a malformed one is ignored.
pub fn dispatched_job() -> Option<JobId> {
    std::env::var(cairn_client::daemon::control::JOB_ID_ENV)
        .ok()
        .and_then(|j| j.parse().ok())
}

/// `cairn login`.
pub fn login(
    config: Option<&Path>,
    server: Option<String>,
    user: String,
    device: Option<String>,
    ca_file: Option<PathBuf>,
    preset: Option<&Preset>,
    json: bool,
) -> Result<u8> {
    let path = profile_path(config, |k| std::env::var(k).ok())?;
    let (servers, ca_file) = preset::login_target(server, ca_file, preset)?;
    let pw = account_password()?;
    let opts = LoginOptions {
        servers,
        user,
        device: device.unwrap_or_else(fsmeta::hostname),
        ca_file,
    };
    let s = Session::login(&path, &opts, &pw)?;
    let p = s.profile();
    if json {
        print_json(&output::LoginJson::new(p, &path))?;
    } else {
        println!(
            "logged in as {} on device {} ({}); {} node(s) known; profile {}",
            p.user,
            p.device_name,
            p.device,
            p.servers.len(),
            path.display()
        );
    }
    Ok(0)
}

/// `cairn logout`.
pub fn logout(config: Option<&Path>, json: bool) -> Result<u8> {
    let path = profile_path(config, |k| std::env::var(k).ok())?;
    let revoked = Session::open(&path)?.logout()?;
    if json {
        print_json(&output::LogoutJson {
            logged_out: true,
            token_revoked: revoked,
        })?;
    } else if revoked {
        println!("logged out; this device's token is revoked");
    } else {
        println!("logged out locally; the cluster could not be reached to revoke the token (revoke it with `cairn devices revoke` from another device)");
    }
    Ok(0)
}

/// `cairn devices …`.
pub fn devices(config: Option<&Path>, cmd: DevicesCommand, json: bool) -> Result<u8> {
    let s = session(config)?;
    let shown = match cmd {
        DevicesCommand::List => None,
        DevicesCommand::Rename { id, name } => {
            let d = s.find_device(&id)?;
            Some(s.rename_device(d.id, &name)?)
        }
        DevicesCommand::Revoke { id } => {
            let d = s.find_device(&id)?;
            Some(s.revoke_device(d.id)?)
        }
    };
    match shown {
        Some(d) if json => print_json(&DeviceJson::from(&d))?,
        Some(d) => account::print_devices(std::slice::from_ref(&d)),
        None if json => {
            let list = s.devices()?;
            print_json(&list.iter().map(DeviceJson::from).collect::<Vec<_>>())?
        }
        None => account::print_devices(&s.devices()?),
    }
    Ok(0)
}

/// `cairn tiers`.
pub fn tiers(config: Option<&Path>, json: bool) -> Result<u8> {
    let tiers = session(config)?.tiers()?;
    if json {
        print_json(&tiers)?;
    } else {
        account::print_tiers(&tiers);
    }
    Ok(0)
}

/// `cairn jobs`.
pub fn jobs(config: Option<&Path>, json: bool) -> Result<u8> {
    let s = session(config)?;
    let mut jobs = s.jobs()?;
    jobs.sort_by_key(|j| j.started_at);
    if json {
        print_json(&jobs.iter().map(JobJson::from).collect::<Vec<_>>())?;
    } else {
        let names = s
            .vaults()
            .map(|v| v.into_iter().map(|v| (v.id, v.name)).collect())
            .unwrap_or_default();
        account::print_jobs(&jobs, &names)?;
    }
    Ok(0)
}

/// `cairn item …`.
pub fn item(config: Option<&Path>, cmd: ItemCommand, json: bool) -> Result<u8> {
    let s = session(config)?;
    let names = || -> Result<std::collections::HashMap<_, _>> {
        Ok(s.vaults()?.into_iter().map(|v| (v.id, v.name)).collect())
    };
    match cmd {
        ItemCommand::Set {
            name,
            vault,
            paths,
            excludes,
            commands,
        } => {
            let commands = VaultCommands {
                before: commands.before,
                after: commands.after,
            };
            let item = s.set_item(&name, &vault, &paths, &excludes, &commands)?;
            if json {
                print_json(&ItemJson::new(&item, &names()?))?;
            } else {
                println!(
                    "item {} backs up {} path(s) into vault {vault}; run `cairn backup --item {}`",
                    item.name,
                    item.paths.len(),
                    item.name
                );
            }
        }
        ItemCommand::List => {
            let items = s.items()?;
            let names = names()?;
            if json {
                let list: Vec<_> = items.iter().map(|i| ItemJson::new(i, &names)).collect();
                print_json(&list)?;
            } else {
                account::print_items(&items, &names);
            }
        }
        ItemCommand::Remove { name } => {
            s.remove_item(&name)?;
            if json {
                print_json(&output::RemovedJson { removed: &name })?;
            } else {
                println!("removed item {name}; its snapshots stay in their vault");
            }
        }
    }
    Ok(0)
}

/// `cairn vault request`.
pub fn vault_request(
    config: Option<&Path>,
    tier: String,
    name: String,
    zstd_level: i32,
    json: bool,
) -> Result<u8> {
    let mut s = session(config)?;
    let pw = account_password()?;
    let request = VaultRequest {
        name,
        tier,
        chunker: ChunkerParams::default(),
        zstd_level,
    };
    let v = s.request_vault(&request, &pw)?;
    if json {
        print_json(&VaultJson::from(&v))?;
    } else {
        println!(
            "created account vault {} ({}) in tier {}: {} replica(s){}",
            v.name,
            v.id,
            v.tier,
            v.replicas,
            v.quota_bytes
                .map(|q| format!(", quota {}", bytes(q)))
                .unwrap_or_default()
        );
    }
    Ok(0)
}

/// `cairn vault set`.
pub fn vault_set(
    config: Option<&Path>,
    name: String,
    commands: CommandArgs,
    json: bool,
) -> Result<u8> {
    let commands = VaultCommands {
        before: commands.before,
        after: commands.after,
    };
    let v = session(config)?.set_vault_commands(&name, &commands)?;
    if json {
        print_json(&VaultJson::from(&v))?;
    } else {
        println!(
            "vault {}: {} before and {} after command(s) around every job of the account's devices",
            v.name,
            v.before.len(),
            v.after.len()
        );
    }
    Ok(0)
}

/// `cairn vault list`.
pub fn vault_list(config: Option<&Path>, json: bool) -> Result<u8> {
    let vaults = session(config)?.vaults()?;
    if json {
        let list: Vec<_> = vaults.iter().map(VaultJson::from).collect();
        print_json(&list)?;
    } else {
        account::print_vaults(&vaults);
    }
    Ok(0)
}

/// `cairn vault delete`.
pub fn vault_delete(config: Option<&Path>, name: String, yes: bool, json: bool) -> Result<u8> {
    if !yes {
        return Err(Error::Invalid(format!(
            "deleting vault {name:?} destroys every snapshot in it; repeat with --yes to confirm"
        ))
        .into());
    }
    let v = session(config)?.delete_vault(&name)?;
    if json {
        print_json(&output::DeletedJson {
            deleted: VaultJson::from(&v),
        })?;
    } else {
        println!("deleted account vault {} ({})", v.name, v.id);
    }
    Ok(0)
}

/// The directory `target` names when it is not an object vault's URL: a
/// `file://` URL or anything without a `scheme://`.
fn local_place(target: &str) -> Option<PathBuf> {
    match target.split_once("://") {
        Some(("file", path)) => Some(PathBuf::from(path)),
        Some(_) => None,
        None => Some(PathBuf::from(target)),
    }
}

/// `cairn vault init`: a local directory, or an object vault's URL.
pub fn vault_init(
    local: Option<PathBuf>,
    url: Option<String>,
    chunker: ChunkerParams,
    zstd_level: i32,
    kdf: (u32, u32),
    json: bool,
) -> Result<u8> {
    // A plain path or a file:// URL is a local vault, like --local.
    let (local, url) = match url.as_deref().map(local_place) {
        Some(Some(path)) => (Some(path), None),
        _ => (local, url),
    };
    let object = url.as_deref().map(ObjectUrl::parse).transpose()?;
    let pw = passwords::read("CAIRN_PASSWORD", "New vault password: ", true)?;
    let options = CreateOptions {
        chunker,
        zstd_level,
        kdf: KdfParams {
            memory_kib: kdf.0,
            iterations: kdf.1,
            ..KdfParams::generate()
        },
    };
    let (config, place) = match (object, local) {
        (Some(url), _) => {
            let env = |k: &str| std::env::var(k).ok();
            let config = Vault::create_object(&url, &pw, &options, &env)?;
            (config, PathBuf::from(url.to_string()))
        }
        (None, Some(local)) => {
            let local = fsmeta::expand_tilde(&local);
            (Vault::create(&local, &pw, &options)?, local)
        }
        (None, None) => return Err(Error::Invalid("give --local DIR or a vault URL".into()).into()),
    };
    if json {
        print_json(&output::CreatedJson {
            id: config.vault_id,
            path: &place,
        })?;
    } else {
        println!("created vault {} in {}", config.vault_id, place.display());
    }
    Ok(0)
}

/// `cairn backup`.
pub fn backup(config: Option<&Path>, mut args: BackupArgs, json: bool) -> Result<u8> {
    super::lists::read_into(&mut args)?;
    let display = Display::new(!json);
    let progress = Arc::new(Progress {
        on_file: file_lister(&display, json),
        ..Progress::default()
    });
    let spinner = {
        let p = progress.clone();
        if json {
            Spinner::json_lines(move |elapsed| {
                progress::backup_json(&BackupStatus::of(&p), elapsed)
            })
        } else {
            Spinner::on(display, move |elapsed| {
                progress::backup_frame(&BackupStatus::of(&p), elapsed)
            })
        }
    };
    let parent = match (args.parent, args.force) {
        (Some(p), _) => ParentChoice::Snapshot(p),
        (None, true) => ParentChoice::None,
        (None, false) => ParentChoice::Auto,
    };
    let no_paths = args.paths.is_empty() && !args.stdin;
    let report = match (&args.vault, no_paths, &args.item) {
        (_, true, None) => {
            return Err(Error::Invalid(
                "nothing to back up: give paths, or --item NAME for a protected item".into(),
            )
            .into())
        }
        (vault, true, Some(name)) => {
            // A protected item of this device: its paths, excludes, vault
            // and before/after commands (a schedule's too, from the daemon).
            let mut s = session(config)?;
            let schedule = match &args.schedule {
                Some(n) => Some(
                    s.schedules()?
                        .into_iter()
                        .find(|sc| &sc.name == n)
                        .ok_or_else(|| Error::NotFound(format!("no schedule {n:?}")))?,
                ),
                None => None,
            };
            let job_id = args
                .job_id
                .as_deref()
                .map(|j| j.parse::<JobId>())
                .transpose()
                .map_err(|_| Error::Invalid("--job-id: not a job id".into()))?;
            let pw = account_password()?;
            let job = ItemJob {
                item: name,
                schedule: schedule.as_ref(),
                named_vault: vault.as_deref(),
                password: &pw,
                extra_excludes: args.excludes,
                parent,
                job_id,
                exclude_caches: args.exclude_caches,
                one_file_system: args.one_file_system,
                tags: args.tags,
            };
            let mut shell = match &args.marks {
                Some(path) => SystemShell::marking(path)
                    .map_err(|e| Error::io("create the job's marks file", path, e))?,
                None => SystemShell::default(),
            };
            let env = JobEnv {
                cancel: interrupt::cancel_token(),
                warn: &warn,
                heartbeat: heartbeat_every(),
                shell: &mut shell,
            };
            let mut ran = run::backup_item(&mut s, job, env, &progress)?;
            let report = ran.take_report()?;
            if schedule.is_some() {
                // The retention pass after a scheduled backup; it never
                // fails the backup.
                let vault = ran.vault.config().vault_id;
                let log = JobLog::new(Some(&s), vault, interrupt::cancel_token(), &warn);
                let zone = super::zone::get();
                if let Err(e) =
                    run::apply_retention(&s, &ran.vault, name, false, false, &zone, &log)
                {
                    warn(&format!("retention pass: {e}"));
                }
            }
            report
        }
        (Some(vault), false, _) => {
            let opened = open(config, vault)?;
            let device = items::device_name(
                opened
                    .session
                    .as_ref()
                    .map(|s| s.profile().device_name.as_str()),
                args.item.as_deref(),
                args.device.as_deref(),
                fsmeta::hostname,
            )?;
            let log = job_log(&opened);
            let job = log.start_for(JobKind::Backup, args.item.as_deref(), None)?;
            let opts = BackupOptions {
                paths: args.paths.clone(),
                excludes: args.excludes,
                item: args.item,
                device,
                parent,
                job: job.id(),
                exclude_caches: args.exclude_caches,
                one_file_system: args.one_file_system,
                tags: args.tags,
            };
            let result = if args.stdin {
                let mut input = std::io::stdin().lock();
                backup::run_stdin(
                    &opened.vault,
                    &opts,
                    &args.stdin_filename,
                    &mut input,
                    &progress,
                )
            } else {
                backup::run(&opened.vault, &opts, &progress)
            };
            job.finish(&result);
            result?
        }
        (None, false, _) => {
            return Err(Error::Invalid("which vault? give --vault VAULT".into()).into())
        }
    };
    drop(spinner);
    output::backup(&report, json, INCOMPLETE)?;
    Ok(if report.warnings.is_empty() {
        0
    } else {
        INCOMPLETE
    })
}

/// The device `latest` defaults to: the logged-in device for an account
/// vault (always), the host name (what backups record by default) for a
/// local one (if some snapshot records it).
pub fn this_device(opened: &Opened) -> (String, bool) {
    match &opened.session {
        Some(s) => (s.profile().device_name.clone(), true),
        None => (fsmeta::hostname(), false),
    }
}

/// The snapshot `spec` names within `select`'s filters.
pub fn find_snapshot(opened: &Opened, select: &SelectArgs, spec: &str) -> Result<SnapshotRecord> {
    let (name, always) = this_device(opened);
    let this = ThisDevice {
        name: &name,
        always,
    };
    Ok(opened
        .vault
        .find_snapshot_in(spec, &select.filter(), &this)?)
}

/// How often a running job reports a heartbeat: CAIRN_HEARTBEAT_SECS, for
/// clusters (and tests) with a short abandon silence, else the default.
fn heartbeat_every() -> Duration {
    std::env::var("CAIRN_HEARTBEAT_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0 && s.is_finite())
        .map_or(cairn_client::jobs::HEARTBEAT_EVERY, Duration::from_secs_f64)
}

/// `cairn snapshots`.
pub fn snapshots(
    config: Option<&Path>,
    v: VaultArg,
    select: &SelectArgs,
    acknowledge: bool,
    json: bool,
) -> Result<u8> {
    let vault = open(config, &v.vault)?.vault;
    if acknowledge {
        vault.acknowledge_snapshots()?;
    }
    output::snapshots(&vault.snapshots_in(&select.filter())?, vault.keys(), json)?;
    Ok(0)
}

/// `cairn ls`.
pub fn list(
    config: Option<&Path>,
    v: VaultArg,
    select: &SelectArgs,
    snapshot: &str,
    path: Option<&Path>,
    long: bool,
    json: bool,
) -> Result<u8> {
    let opened = open(config, &v.vault)?;
    let vault = &opened.vault;
    let snap = find_snapshot(&opened, select, snapshot)?;
    let listed = ls::list(vault, &snap, path.unwrap_or(Path::new("/")))?;
    if json {
        print_json(&listed)?;
    } else {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let zone = super::zone::get();
        for l in &listed {
            if long {
                writeln!(out, "{}", l.long(&zone))?;
            } else {
                writeln!(out, "{}", l.path)?;
            }
        }
    }
    Ok(0)
}

/// `-v` lists the files a backup reads (new, changed), `-vv` also the
/// unmodified ones, above the progress display; nothing under `--json`.
fn file_lister(display: &Display, json: bool) -> Option<Box<FileListener>> {
    let level = output::verbosity();
    if json || level == 0 {
        return None;
    }
    let display = display.clone();
    Some(Box::new(move |change, path| {
        let word = match change {
            Change::New => "new",
            Change::Changed => "changed",
            Change::Unmodified if level >= 2 => "unmodified",
            Change::Unmodified => return,
        };
        display.println(&format!("{word:<10} {}", path.display()));
    }))
}

/// `cairn restore`.
pub fn restore(config: Option<&Path>, args: RestoreArgs, json: bool) -> Result<u8> {
    let opened = open(config, &args.vault.vault)?;
    let vault = &opened.vault;
    let snap = find_snapshot(&opened, &args.select, &args.snapshot)?;
    let done = Arc::new(restore::Progress::default());
    let spinner = {
        let p = done.clone();
        if json && !args.dry_run {
            Spinner::json_lines(move |elapsed| {
                progress::restore_json(load(&p.done), load(&p.total), elapsed)
            })
        } else {
            Spinner::start(!json && !args.dry_run, move |elapsed| {
                progress::restore_frame(load(&p.done), load(&p.total), elapsed)
            })
        }
    };
    let opts = RestoreOptions {
        target: fsmeta::expand_tilde(&args.target),
        includes: args.includes,
        excludes: args.excludes,
        overwrite: args.overwrite.into(),
        delete: args.delete,
        dry_run: args.dry_run,
    };
    let result = if opts.dry_run {
        restore::run(vault, &snap, &opts, &done)
    } else {
        let log = job_log(&opened);
        let job = log.start(JobKind::Restore)?;
        let result = restore::run(vault, &snap, &opts, &done);
        job.finish(&result);
        result
    };
    let report = result?;
    drop(spinner);
    output::restore(&report, &snap.short_id(), json)?;
    Ok(if !report.damaged.is_empty() {
        4
    } else if !report.failed.is_empty() {
        1
    } else {
        0
    })
}

/// `cairn check`.
pub fn check(config: Option<&Path>, v: VaultArg, read_data: bool, json: bool) -> Result<u8> {
    let opened = open(config, &v.vault)?;
    let done = Arc::new(AtomicU64::new(0));
    let spinner = {
        let done = done.clone();
        Spinner::start(!json && read_data, move |_| {
            format!("verified {} chunks", load(&done))
        })
    };
    let log = job_log(&opened);
    let job = log.start(JobKind::Check)?;
    let result = check::run(&opened.vault, read_data, &done);
    job.finish(&result);
    let report = result?;
    drop(spinner);
    output::check(&report, read_data, json)?;
    Ok(if report.is_clean() { 0 } else { 4 })
}

/// `cairn forget`.
pub fn forget(config: Option<&Path>, args: ForgetArgs, json: bool) -> Result<u8> {
    let vault = open(config, &args.vault.vault)?.vault;
    let selection = if args.snapshots.is_empty() {
        Selection::Policy(KeepPolicy {
            last: args.keep_last,
            hourly: args.keep_hourly,
            daily: args.keep_daily,
            weekly: args.keep_weekly,
            monthly: args.keep_monthly,
            yearly: args.keep_yearly,
        })
    } else {
        Selection::Ids(args.snapshots)
    };
    let zone = super::zone::get();
    let report = forget::run(
        &vault,
        &selection,
        &args.select.filter(),
        &zone,
        args.dry_run,
    )?;
    output::forget(&report, json)?;
    Ok(0)
}

/// `cairn prune`.
pub fn prune(config: Option<&Path>, v: VaultArg, dry_run: bool, json: bool) -> Result<u8> {
    let opened = open(config, &v.vault)?;
    let log = job_log(&opened);
    let report = prune::run(&opened.vault, dry_run, &log, |line| eprintln!("{line}"))?;
    output::prune(&report, dry_run, opened.session.is_some(), json)?;
    Ok(0)
}

/// `cairn key passwd` (the account password).
pub fn passwd_account(config: Option<&Path>, json: bool) -> Result<u8> {
    let mut s = session(config)?;
    let old = account_password()?;
    let new = passwords::read("CAIRN_NEW_PASSWORD", "New account password: ", true)?;
    let vaults = s.change_password(&old, &new)?;
    if json {
        print_json(&output::AccountPasswordJson {
            changed: true,
            vaults_rewrapped: vaults,
        })?;
    } else {
        println!(
            "account password changed; {vaults} vault key(s) re-wrapped; the old password \
             no longer works and the account's other devices must log in again"
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_and_file_urls_are_local_vaults() {
        assert_eq!(local_place("/srv/v"), Some(PathBuf::from("/srv/v")));
        assert_eq!(local_place("v"), Some(PathBuf::from("v")));
        assert_eq!(local_place("file:///srv/v"), Some(PathBuf::from("/srv/v")));
        assert_eq!(local_place("s3://bucket/p"), None);
        assert_eq!(local_place("sftp://u@h/p"), None);
    }
}
