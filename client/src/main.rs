//! `cairn`, the backup tool: a thin command line over the `cairn_client`
//! library. Parses arguments, reads passwords, shows progress, prints human
//! or `--json` output, records jobs of account vaults in the server's job
//! log, and maps errors to exit codes (0 ok, 1 error, 2 usage, 3 wrong
//! password or credentials refused, 4 data integrity, 5 backup saved but
//! incomplete).

mod cli;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::{Context, Result};
use cairn_client::backup::{self, BackupOptions, ParentChoice, Progress};
use cairn_client::chunker::ChunkerParams;
use cairn_client::crypto::KdfParams;
use cairn_client::remote::config::profile_path;
use cairn_client::remote::session::{LoginOptions, VaultRequest};
use cairn_client::remote::{Session, VaultRef};
use cairn_client::restore::{self, RestoreOptions};
use cairn_client::retention::KeepPolicy;
use cairn_client::vault::CreateOptions;
use cairn_client::{check, fsmeta, ls, prune, Error, Vault};
use cairn_proto::api::{FinishJob, JobKind, JobStatus};
use cairn_proto::JobId;
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::cli::account;
use crate::cli::progress::{bytes, load, Spinner};

/// Cairn: encrypted, deduplicated backups.
///
/// Data is split into content-defined chunks, compressed, encrypted with keys
/// only your password unlocks, and stored once per vault however many
/// snapshots use it. Passwords come from CAIRN_PASSWORD, CAIRN_PASSWORD_FILE
/// or a prompt.
///
/// A vault is either a local directory (`cairn vault init --local DIR`) or a
/// vault of your account on a cairnd cluster (`cairn login`, then `cairn vault
/// request`). `--vault V` means the local vault when V looks like a path
/// (contains `/`, or starts with `.` or `~`) or is a local vault directory
/// (holds vault.json), and otherwise the account vault named V: `--vault
/// ./main` is a directory, `--vault main` the account vault "main". The
/// account password unlocks every account vault; it never leaves this machine.
///
/// Exit codes: 0 ok, 1 error, 2 usage, 3 wrong password or credentials
/// refused (log in again), 4 data integrity error, 5 backup saved but
/// incomplete (some entries could not be read; they are listed).
#[derive(Parser)]
#[command(name = "cairn", version, propagate_version = true, after_help = EXAMPLES)]
struct Cli {
    /// Print one JSON document instead of human-readable text.
    #[arg(long, global = true)]
    json: bool,
    /// The profile file written by `cairn login` (default:
    /// $XDG_CONFIG_HOME/cairn/profile.json, else ~/.config/cairn/profile.json).
    #[arg(long, global = true, env = "CAIRN_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "Examples (local vault):
  cairn vault init --local /backup/vault
  cairn backup --vault /backup/vault /home/me /etc --exclude '*.tmp'
  cairn snapshots --vault /backup/vault
  cairn restore --vault /backup/vault latest --target /tmp/restored
  cairn check --vault /backup/vault --read-data
  cairn forget --vault /backup/vault --keep-daily 7 --keep-monthly 12 && cairn prune --vault /backup/vault

Examples (account vault on a cluster):
  cairn login --server https://backup.example:8700 --user alice
  cairn tiers && cairn vault request --tier standard --name laptop
  cairn backup --vault laptop ~/Documents
  cairn item set home --vault laptop ~ --exclude '*.cache' && cairn backup --item home
  cairn restore --vault laptop latest --target /tmp/restored
  cairn jobs";

/// How many times `prune` marks again when a concurrent backup makes the
/// server refuse its sweep.
const PRUNE_ATTEMPTS: u32 = 4;
/// Wait before marking again: longer than the server's clock-skew margin
/// around a backup's end (5 s).
const PRUNE_RETRY_SECS: u64 = 6;

#[derive(Subcommand)]
enum Command {
    /// Log this device in to an account on a cairnd cluster.
    ///
    /// Derives the login key from the password with the account's argon2id
    /// parameters (the password itself is never sent), registers the device
    /// (a device of the same name gets a new token) and writes the profile:
    /// every node of the cluster (for failover), the account, the device
    /// and its token, mode 0600.
    Login {
        /// URL of any node, e.g. https://backup.example:8700.
        #[arg(long, value_name = "URL")]
        server: String,
        /// Account name.
        #[arg(long, value_name = "NAME")]
        user: String,
        /// Device name (default: host name).
        #[arg(long, value_name = "NAME")]
        device: Option<String>,
        /// Trust this CA certificate (PEM) for the servers, in addition to
        /// the public roots (e.g. a dev node's tls/cert.pem).
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
    },
    /// Revoke this device's token and remove the profile.
    Logout,
    /// List, rename or revoke the account's devices.
    #[command(subcommand)]
    Devices(DevicesCommand),
    /// Create, list and delete vaults.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// List the vault tiers the cluster offers.
    Tiers,
    /// Protected items: named sets of paths this device backs up into an
    /// account vault (`cairn backup --item NAME`). Private to this device.
    #[command(subcommand)]
    Item(ItemCommand),
    /// The account's job log (backups, restores, checks, prunes, logins).
    Jobs,
    /// Back up paths into a vault as a new snapshot.
    ///
    /// Files unchanged since the parent snapshot (same size, mtime, ctime and
    /// inode) are not read again; changed files upload only their new chunks.
    /// `--item NAME` without paths backs up this device's protected item
    /// NAME (its paths and excludes, into its vault).
    Backup(BackupArgs),
    /// List a vault's snapshots, oldest first.
    ///
    /// Every record is checked against what its vault keys sealed with it; an
    /// account vault's list is also checked against the newest snapshot this
    /// device has seen there, so a server hiding newer snapshots is noticed.
    Snapshots {
        #[command(flatten)]
        vault: VaultArg,
        /// Accept the server's list as it is now, after a snapshot newer than
        /// all listed ones was forgotten on another device on purpose.
        #[arg(long)]
        acknowledge: bool,
    },
    /// List the contents of a snapshot.
    Ls {
        #[command(flatten)]
        vault: VaultArg,
        /// Snapshot id, unique id prefix, or `latest`.
        snapshot: String,
        /// Absolute path inside the snapshot to list (default: everything).
        path: Option<PathBuf>,
    },
    /// Restore a snapshot: each backed-up absolute path is recreated under --target.
    Restore {
        #[command(flatten)]
        vault: VaultArg,
        /// Snapshot id, unique id prefix, or `latest`.
        snapshot: String,
        /// Directory to restore into (created if missing).
        #[arg(long)]
        target: PathBuf,
        /// Restore only this absolute path of the snapshot (repeatable).
        #[arg(long = "include", value_name = "PATH")]
        includes: Vec<PathBuf>,
    },
    /// Verify the vault: every snapshot's trees and chunk references; with
    /// --read-data also decrypt and verify every stored chunk (account
    /// vaults: every chunk the snapshots reference).
    Check {
        #[command(flatten)]
        vault: VaultArg,
        /// Read, decrypt and verify every chunk (slower, complete).
        #[arg(long)]
        read_data: bool,
    },
    /// Forget snapshots: by id, or all those a --keep-… policy does not keep.
    ///
    /// Snapshots are grouped by device and item (or paths); in each group the
    /// newest snapshot of each period is kept, up to the given count. Only the
    /// records go; run `prune` to free the data no snapshot uses any more.
    Forget(ForgetArgs),
    /// Delete the chunks that no snapshot references any more.
    Prune {
        #[command(flatten)]
        vault: VaultArg,
        /// Report what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Manage the password that protects the vault keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Low-level access for verifying formats with independent tools.
    #[command(subcommand)]
    Debug(DebugCommand),
}

#[derive(Subcommand)]
enum DevicesCommand {
    /// List the account's devices.
    List,
    /// Rename a device (by id, unique id prefix or name).
    Rename {
        /// The device.
        id: String,
        /// Its new name.
        name: String,
    },
    /// Revoke a device: its token stops working on every node at once.
    Revoke {
        /// The device (id, unique id prefix or name).
        id: String,
    },
}

#[derive(Subcommand)]
enum ItemCommand {
    /// Define (or redefine) a protected item of this device.
    Set {
        /// Item name.
        name: String,
        /// The account vault it backs up into.
        #[arg(long, value_name = "NAME")]
        vault: String,
        /// Files and directories (stored as absolute paths).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Skip matching files: patterns with a `/` match the absolute path, others the name (repeatable).
        #[arg(long = "exclude", value_name = "GLOB")]
        excludes: Vec<String>,
    },
    /// List this device's protected items.
    List,
    /// Remove a protected item (its snapshots stay).
    Remove {
        /// Item name.
        name: String,
    },
}

#[derive(Subcommand)]
enum VaultCommand {
    /// Request a vault of the account from a tier (see `cairn tiers`).
    ///
    /// The vault's keys are generated here and sealed with the wrap key
    /// derived from the account password, together with its chunking and
    /// compression parameters; the server stores them sealed.
    Request {
        /// The tier.
        #[arg(long)]
        tier: String,
        /// The vault's name (unique in the account; no '/').
        #[arg(long)]
        name: String,
        /// zstd compression level (1-22); chunks that do not shrink are stored raw.
        #[arg(long, default_value_t = 3)]
        zstd_level: i32,
    },
    /// List the account's vaults (local vaults are not listed).
    List,
    /// Delete an account vault, its snapshots and its data.
    Delete {
        /// The vault's name.
        name: String,
        /// Confirm: without it nothing is deleted.
        #[arg(long)]
        yes: bool,
    },
    /// Create a vault in a local directory (new or empty).
    Init {
        /// The directory to hold the vault.
        #[arg(long, value_name = "DIR")]
        local: PathBuf,
        /// zstd compression level (1-22); chunks that do not shrink are stored raw.
        #[arg(long, default_value_t = 3)]
        zstd_level: i32,
        /// FastCDC minimum chunk size in bytes.
        #[arg(long, default_value_t = ChunkerParams::default().min_size)]
        chunk_min: u32,
        /// FastCDC average chunk size in bytes.
        #[arg(long, default_value_t = ChunkerParams::default().avg_size)]
        chunk_avg: u32,
        /// FastCDC maximum chunk size in bytes.
        #[arg(long, default_value_t = ChunkerParams::default().max_size)]
        chunk_max: u32,
        /// argon2id memory cost in KiB.
        #[arg(long, default_value_t = 65536)]
        kdf_memory_kib: u32,
        /// argon2id passes.
        #[arg(long, default_value_t = 3)]
        kdf_iterations: u32,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Change a password: re-wraps keys, rewrites no data. The new password
    /// comes from CAIRN_NEW_PASSWORD, CAIRN_NEW_PASSWORD_FILE or a prompt.
    ///
    /// With `--vault DIR`: the password of that local vault. Without
    /// `--vault`: the account password; every account vault's keys are
    /// re-wrapped in one step, the old password stops working everywhere,
    /// and the account's other devices must log in again.
    Passwd {
        /// A local vault directory.
        #[arg(long, value_name = "DIR")]
        vault: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DebugCommand {
    /// Print the vault id and the unwrapped vault keys (hex). Handle with care.
    Keys(VaultArg),
    /// Write the sealed bytes of one chunk to stdout, exactly as stored.
    CatRaw {
        #[command(flatten)]
        vault: VaultArg,
        /// Chunk id (64 hex digits).
        chunk_id: String,
    },
}

#[derive(Args)]
struct VaultArg {
    /// The vault: a local vault directory, or the name of an account vault
    /// (a word that is no local vault directory; see `cairn --help`).
    #[arg(long, value_name = "VAULT")]
    vault: PathBuf,
}

#[derive(Args)]
struct ForgetArgs {
    #[command(flatten)]
    vault: VaultArg,
    /// Snapshots to forget (ids or unique prefixes); with none, apply the --keep-… policy.
    #[arg(value_name = "SNAPSHOT")]
    snapshots: Vec<String>,
    /// Keep the N newest snapshots of each group.
    #[arg(long, value_name = "N")]
    keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours.
    #[arg(long, value_name = "N")]
    keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days.
    #[arg(long, value_name = "N")]
    keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N weeks.
    #[arg(long, value_name = "N")]
    keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months.
    #[arg(long, value_name = "N")]
    keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years.
    #[arg(long, value_name = "N")]
    keep_yearly: Option<u32>,
    /// Report what would be forgotten, change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct BackupArgs {
    /// The vault: a local vault directory, or the name of an account vault
    /// (optional with `--item` naming a protected item).
    #[arg(long, value_name = "VAULT", required_unless_present = "item")]
    vault: Option<PathBuf>,
    /// Files and directories to back up (none: those of the protected item
    /// `--item`). Symlinked parents are followed and the path is saved as
    /// given; a symlink named itself is saved as the link (`LINK/` saves
    /// what it points to).
    #[arg(value_name = "PATH", required_unless_present = "item")]
    paths: Vec<PathBuf>,
    /// Skip matching files: patterns with a `/` match the absolute path, others the name (repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    excludes: Vec<String>,
    /// Protected item: with paths, a label (the parent snapshot is the newest
    /// of the same item); without paths, this device's protected item of
    /// that name supplies paths, excludes and vault.
    #[arg(long)]
    item: Option<String>,
    /// Device name recorded in the snapshot (default: host name; account
    /// vaults record the logged-in device).
    #[arg(long)]
    device: Option<String>,
    /// Compare against this snapshot instead of choosing the parent automatically.
    #[arg(long, conflicts_with = "force")]
    parent: Option<String>,
    /// Read every file, ignoring any parent snapshot.
    #[arg(long)]
    force: bool,
}

/// Exit code of a backup that saved its snapshot but had to leave out
/// entries it could not read (restic's "incomplete snapshot").
const INCOMPLETE: u8 = 5;

fn main() -> ExitCode {
    limit_malloc_arenas();
    cli::interrupt::install();
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e.downcast_ref::<Error>().map_or(1, Error::exit_code);
            if json {
                println!("{}", json!({"error": format!("{e:#}"), "exit_code": code}));
            }
            eprintln!("error: {e:#}");
            ExitCode::from(code as u8)
        }
    }
}

/// glibc gives each thread that frees memory allocated elsewhere its own
/// arena; with chunk buffers passed between pipeline threads that retains
/// tens of MiB. Two arenas keep peak memory down at no measurable speed cost.
fn limit_malloc_arenas() {
    // SAFETY: mallopt only tunes the allocator; called before any threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn password() -> Result<Vec<u8>> {
    cli::password::read("CAIRN_PASSWORD", "Vault password: ", false)
}

fn account_password() -> Result<Vec<u8>> {
    cli::password::read("CAIRN_PASSWORD", "Account password: ", false)
}

/// The logged-in session of the profile (`--config`, `CAIRN_CONFIG` or the
/// default path).
fn session(config: Option<&Path>) -> Result<Session> {
    let path = profile_path(config, |k| std::env::var(k).ok())?;
    Ok(Session::open(&path)?)
}

/// An unlocked vault and, for an account vault, the session it came
/// through (which records jobs).
struct Opened {
    vault: Vault,
    session: Option<Session>,
}

impl Opened {
    /// Records the start of a job in the account's job log (account vaults
    /// only; the API client already retried through every node). For a
    /// backup this is required: its running job is what keeps a concurrent
    /// prune from deleting the chunks it reuses, so a backup that cannot
    /// record its job does not run. For the other kinds a job log that
    /// cannot be written is a warning: the work goes through the same
    /// cluster and reports its own errors.
    fn start_job(&self, kind: JobKind) -> Result<Option<JobId>> {
        let Some(s) = self.session.as_ref() else {
            return Ok(None);
        };
        match s.start_job(kind, Some(self.vault.config().vault_id)) {
            Ok(id) => {
                cli::interrupt::on_signal(s.job_canceller(id));
                Ok(Some(id))
            }
            Err(e) if kind == JobKind::Backup => Err(anyhow::Error::new(e).context(
                "could not record the backup job, so nothing was backed up (without a \
                 running job a concurrent prune could delete chunks the backup reuses); \
                 retry when the cluster answers",
            )),
            Err(e) => {
                eprintln!("warning: could not record the job in the job log: {e}");
                Ok(None)
            }
        }
    }

    /// Records how a job ended: from `outcome`'s counts, or `Failed` with
    /// the error text.
    fn finish_job<T>(
        &self,
        job: Option<JobId>,
        outcome: &std::result::Result<T, Error>,
        counts: impl FnOnce(&T) -> (JobStatus, u64, u64, Option<String>, String),
    ) {
        let (Some(s), Some(id)) = (self.session.as_ref(), job) else {
            return;
        };
        cli::interrupt::clear();
        let finish = match outcome {
            Ok(t) => {
                let (status, files, bytes, error, log) = counts(t);
                FinishJob {
                    status,
                    files,
                    bytes,
                    error,
                    log,
                }
            }
            Err(e) => FinishJob {
                status: JobStatus::Failed,
                files: 0,
                bytes: 0,
                error: Some(e.to_string()),
                log: String::new(),
            },
        };
        if let Err(e) = s.finish_job(id, &finish) {
            eprintln!("warning: could not record the end of the job in the job log: {e}");
        }
    }
}

fn open(config: Option<&Path>, v: &Path) -> Result<Opened> {
    match VaultRef::parse(v) {
        VaultRef::Local(dir) => {
            let pw = password()?;
            Ok(Opened {
                vault: Vault::open(&dir, &pw)?,
                session: None,
            })
        }
        VaultRef::Remote(name) => {
            let mut s = session(config)?;
            let pw = account_password()?;
            let vault = s.open_vault(&name, &pw)?;
            Ok(Opened {
                vault,
                session: Some(s),
            })
        }
    }
}

fn print_json(value: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn run(cli: Cli) -> Result<u8> {
    let json = cli.json;
    let config = cli.config.as_deref();
    match cli.command {
        Command::Login {
            server,
            user,
            device,
            ca_file,
        } => {
            let path = profile_path(config, |k| std::env::var(k).ok())?;
            let pw = account_password()?;
            let opts = LoginOptions {
                server,
                user,
                device: device.unwrap_or_else(fsmeta::hostname),
                ca_file,
            };
            let s = Session::login(&path, &opts, &pw)?;
            let p = s.profile();
            if json {
                print_json(&json!({
                    "user": p.user, "account": p.account, "device": p.device,
                    "device_name": p.device_name, "servers": p.servers, "profile": path,
                }))?;
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
        Command::Logout => {
            let path = profile_path(config, |k| std::env::var(k).ok())?;
            let revoked = Session::open(&path)?.logout()?;
            if json {
                print_json(&json!({"logged_out": true, "token_revoked": revoked}))?;
            } else if revoked {
                println!("logged out; this device's token is revoked");
            } else {
                println!("logged out locally; the cluster could not be reached to revoke the token (revoke it with `cairn devices revoke` from another device)");
            }
            Ok(0)
        }
        Command::Devices(cmd) => {
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
                Some(d) if json => print_json(&json!(d))?,
                Some(d) => account::print_devices(std::slice::from_ref(&d)),
                None if json => print_json(&json!(s.devices()?))?,
                None => account::print_devices(&s.devices()?),
            }
            Ok(0)
        }
        Command::Tiers => {
            let tiers = session(config)?.tiers()?;
            if json {
                print_json(&json!(tiers))?;
            } else {
                account::print_tiers(&tiers);
            }
            Ok(0)
        }
        Command::Jobs => {
            let s = session(config)?;
            let mut jobs = s.jobs()?;
            jobs.sort_by_key(|j| j.started_at);
            if json {
                print_json(&json!(jobs))?;
            } else {
                let names = s
                    .vaults()
                    .map(|v| v.into_iter().map(|v| (v.id, v.name)).collect())
                    .unwrap_or_default();
                account::print_jobs(&jobs, &names)?;
            }
            Ok(0)
        }
        Command::Item(cmd) => cmd_item(config, cmd, json),
        Command::Vault(VaultCommand::Request {
            tier,
            name,
            zstd_level,
        }) => {
            let mut s = session(config)?;
            let pw = account_password()?;
            let v = s.request_vault(
                &VaultRequest {
                    name,
                    tier,
                    chunker: ChunkerParams::default(),
                    zstd_level,
                },
                &pw,
            )?;
            if json {
                print_json(&account::vault_json(&v))?;
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
        Command::Vault(VaultCommand::List) => {
            let vaults = session(config)?.vaults()?;
            if json {
                print_json(&json!(vaults
                    .iter()
                    .map(account::vault_json)
                    .collect::<Vec<_>>()))?;
            } else {
                account::print_vaults(&vaults);
            }
            Ok(0)
        }
        Command::Vault(VaultCommand::Delete { name, yes }) => {
            if !yes {
                return Err(Error::Invalid(format!(
                    "deleting vault {name:?} destroys every snapshot in it; repeat with --yes to confirm"
                ))
                .into());
            }
            let v = session(config)?.delete_vault(&name)?;
            if json {
                print_json(&json!({"deleted": account::vault_json(&v)}))?;
            } else {
                println!("deleted account vault {} ({})", v.name, v.id);
            }
            Ok(0)
        }
        Command::Vault(VaultCommand::Init {
            local,
            zstd_level,
            chunk_min,
            chunk_avg,
            chunk_max,
            kdf_memory_kib,
            kdf_iterations,
        }) => {
            let pw = cli::password::read("CAIRN_PASSWORD", "New vault password: ", true)?;
            let options = CreateOptions {
                chunker: ChunkerParams {
                    min_size: chunk_min,
                    avg_size: chunk_avg,
                    max_size: chunk_max,
                },
                zstd_level,
                kdf: KdfParams {
                    memory_kib: kdf_memory_kib,
                    iterations: kdf_iterations,
                    ..KdfParams::generate()
                },
            };
            let config = Vault::create(&local, &pw, &options)?;
            if json {
                print_json(&json!({"vault_id": config.vault_id, "path": local}))?;
            } else {
                println!("created vault {} in {}", config.vault_id, local.display());
            }
            Ok(0)
        }
        Command::Backup(args) => cmd_backup(config, args, json),
        Command::Snapshots {
            vault: v,
            acknowledge,
        } => {
            let vault = open(config, &v.vault)?.vault;
            if acknowledge {
                vault.acknowledge_snapshots()?;
            }
            let snaps = vault.snapshots()?;
            if json {
                let list: Vec<_> = snaps
                    .iter()
                    .map(|s| {
                        let meta = s.open_meta(vault.keys()).ok();
                        json!({
                            "id": s.id, "time": s.time, "finished": s.finished, "device": s.device,
                            "item": s.item, "root": s.root, "stats": s.stats,
                            "paths": meta.map(|m| m.paths),
                        })
                    })
                    .collect();
                print_json(&json!(list))?;
            } else {
                println!(
                    "{:<8}  {:<20}  {:<14}  {:<10}  {:>8}  {:>10}  paths",
                    "id", "time", "device", "item", "files", "size"
                );
                for s in &snaps {
                    let paths = s
                        .open_meta(vault.keys())
                        .map(|m| m.paths.join(" "))
                        .unwrap_or_else(|e| e.to_string());
                    println!(
                        "{:<8}  {:<20}  {:<14}  {:<10}  {:>8}  {:>10}  {}",
                        s.short_id(),
                        &s.time[..19.min(s.time.len())].replace('T', " "),
                        s.device,
                        s.item.as_deref().unwrap_or("-"),
                        s.stats.files,
                        bytes(s.stats.bytes),
                        paths
                    );
                }
                println!("{} snapshot(s)", snaps.len());
            }
            Ok(0)
        }
        Command::Ls {
            vault,
            snapshot,
            path,
        } => {
            let vault = open(config, &vault.vault)?.vault;
            let snap = vault.find_snapshot(&snapshot)?;
            let listed = ls::list(&vault, &snap, path.as_deref().unwrap_or(Path::new("/")))?;
            if json {
                print_json(&json!(listed))?;
            } else {
                let mut out = std::io::stdout().lock();
                for l in &listed {
                    writeln!(out, "{}", l.path)?;
                }
            }
            Ok(0)
        }
        Command::Restore {
            vault,
            snapshot,
            target,
            includes,
        } => {
            let opened = open(config, &vault.vault)?;
            let vault = &opened.vault;
            let snap = vault.find_snapshot(&snapshot)?;
            let done = Arc::new(AtomicU64::new(0));
            let total = snap.stats.bytes;
            let spinner = {
                let done = done.clone();
                Spinner::start(!json, move || {
                    format!("restored {} of {}", bytes(load(&done)), bytes(total))
                })
            };
            let job = opened.start_job(JobKind::Restore)?;
            let result = restore::run(
                vault,
                &snap,
                &RestoreOptions {
                    target: target.clone(),
                    includes,
                },
                &done,
            );
            opened.finish_job(job, &result, |r| {
                let status = match (
                    r.damaged.is_empty() && r.failed.is_empty(),
                    r.warnings.is_empty(),
                ) {
                    (false, _) => JobStatus::Failed,
                    (true, false) => JobStatus::Warnings,
                    (true, true) => JobStatus::Succeeded,
                };
                let error = (!r.damaged.is_empty() || !r.failed.is_empty()).then(|| {
                    format!(
                        "{} damaged and {} unwritable file(s) not restored",
                        r.damaged.len(),
                        r.failed.len()
                    )
                });
                let log = r
                    .damaged
                    .iter()
                    .chain(&r.failed)
                    .chain(&r.warnings)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n");
                (status, r.files, r.bytes, error, log)
            });
            let report = result?;
            drop(spinner);
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            if json {
                print_json(&json!({
                    "snapshot": snap.id, "target": target, "files": report.files, "dirs": report.dirs,
                    "bytes": report.bytes, "damaged": report.damaged, "failed": report.failed,
                    "warnings": report.warnings,
                    "seconds": report.seconds,
                }))?;
            } else {
                println!(
                    "restored snapshot {} to {}: {} files, {} dirs, {} in {:.2}s",
                    snap.short_id(),
                    target.display(),
                    report.files,
                    report.dirs,
                    bytes(report.bytes),
                    report.seconds
                );
            }
            for f in &report.failed {
                eprintln!("could not write, not restored: {f}");
            }
            for d in &report.damaged {
                eprintln!("damaged, not restored: {d}");
            }
            if !report.damaged.is_empty() {
                eprintln!(
                    "error: {} file(s) could not be restored because their data is damaged",
                    report.damaged.len()
                );
                return Ok(4);
            }
            if !report.failed.is_empty() {
                eprintln!(
                    "error: {} file(s) could not be written",
                    report.failed.len()
                );
                return Ok(1);
            }
            Ok(0)
        }
        Command::Check { vault, read_data } => {
            let opened = open(config, &vault.vault)?;
            let done = Arc::new(AtomicU64::new(0));
            let spinner = {
                let done = done.clone();
                Spinner::start(!json && read_data, move || {
                    format!("verified {} chunks", load(&done))
                })
            };
            let job = opened.start_job(JobKind::Check)?;
            let result = check::run(&opened.vault, read_data, &done);
            opened.finish_job(job, &result, |r| {
                let status = if r.is_clean() {
                    JobStatus::Succeeded
                } else {
                    JobStatus::Failed
                };
                let error = (!r.is_clean()).then(|| format!("{} problem(s)", r.problems.len()));
                let mut log = format!(
                    "{} snapshots, {} trees, {} chunks read",
                    r.snapshots, r.trees, r.chunks_read
                );
                for p in &r.problems {
                    log.push('\n');
                    log.push_str(p);
                }
                (status, 0, 0, error, log)
            });
            let report = result?;
            drop(spinner);
            if json {
                print_json(&json!(report))?;
            } else {
                for p in &report.problems {
                    eprintln!("problem: {p}");
                }
                for f in &report.damaged_files {
                    eprintln!("affected file: {f}");
                }
                println!(
                    "checked {} snapshots, {} trees{}: {}",
                    report.snapshots,
                    report.trees,
                    if read_data {
                        format!(", {} chunks read", report.chunks_read)
                    } else {
                        String::new()
                    },
                    if report.is_clean() {
                        "no problems found".to_string()
                    } else {
                        format!("{} problem(s)", report.problems.len())
                    }
                );
            }
            Ok(if report.is_clean() { 0 } else { 4 })
        }
        Command::Forget(args) => cmd_forget(config, args, json),
        Command::Prune { vault, dry_run } => {
            let opened = open(config, &vault.vault)?;
            // A backup that ran during the mark makes the server refuse the
            // sweep (its snapshot may be missing from the marked set): mark
            // again under a new prune job, a few times, before giving up.
            let mut attempt = 1;
            let report = loop {
                let job = opened.start_job(JobKind::Prune)?;
                let result = prune::prune(&opened.vault, dry_run, job);
                opened.finish_job(job, &result, |r| {
                    let log = format!(
                        "{} chunks deleted, {} kept (used again during the prune), {} live",
                        r.deleted_chunks, r.kept_recently_used, r.live_chunks
                    );
                    (JobStatus::Succeeded, 0, r.deleted_bytes, None, log)
                });
                match result {
                    Err(Error::Busy(why)) if attempt < PRUNE_ATTEMPTS => {
                        eprintln!("{why}; marking again in {PRUNE_RETRY_SECS} s");
                        std::thread::sleep(std::time::Duration::from_secs(PRUNE_RETRY_SECS));
                        attempt += 1;
                    }
                    other => break other?,
                }
            };
            if json {
                print_json(&json!({"dry_run": dry_run, "report": report}))?;
            } else {
                if opened.vault.remote().is_some() {
                    println!(
                        "{} {} unreferenced chunks ({} kept: a backup used them meanwhile); \
                         {} chunks of {} snapshots kept",
                        if dry_run { "would delete" } else { "deleted" },
                        report.deleted_chunks,
                        report.kept_recently_used,
                        report.live_chunks,
                        report.snapshots
                    );
                } else {
                    println!(
                        "{} {} unreferenced chunks ({}); {} chunks of {} snapshots kept",
                        if dry_run { "would delete" } else { "deleted" },
                        report.deleted_chunks,
                        bytes(report.deleted_bytes),
                        report.live_chunks,
                        report.snapshots
                    );
                }
            }
            Ok(0)
        }
        Command::Key(KeyCommand::Passwd { vault: Some(v) }) => {
            let VaultRef::Local(dir) = VaultRef::parse(&v) else {
                return Err(Error::Invalid(
                    "an account vault's keys follow the account password: run `cairn key passwd` without --vault"
                        .into(),
                )
                .into());
            };
            let mut vault = Vault::open(&dir, &password()?)?;
            let new = cli::password::read("CAIRN_NEW_PASSWORD", "New password: ", true)?;
            vault.change_password(&new)?;
            if json {
                print_json(&json!({"vault_id": vault.config().vault_id, "changed": true}))?;
            } else {
                println!("password changed; the old password no longer opens this vault");
            }
            Ok(0)
        }
        Command::Key(KeyCommand::Passwd { vault: None }) => {
            let mut s = session(config)?;
            let old = account_password()?;
            let new = cli::password::read("CAIRN_NEW_PASSWORD", "New account password: ", true)?;
            let vaults = s.change_password(&old, &new)?;
            if json {
                print_json(&json!({"changed": true, "vaults_rewrapped": vaults}))?;
            } else {
                println!(
                    "account password changed; {vaults} vault key(s) re-wrapped; the old password \
                     no longer works and the account's other devices must log in again"
                );
            }
            Ok(0)
        }
        Command::Debug(DebugCommand::Keys(v)) => {
            let vault = open(config, &v.vault)?.vault;
            let k = vault.keys();
            print_json(&json!({
                "vault_id": vault.config().vault_id,
                "encryption_key": hex::encode(k.encryption),
                "chunk_id_key": hex::encode(k.chunk_id),
            }))?;
            Ok(0)
        }
        Command::Debug(DebugCommand::CatRaw { vault, chunk_id }) => {
            let vault = open(config, &vault.vault)?.vault;
            let id = chunk_id
                .parse()
                .map_err(|e| Error::Invalid(format!("{e}")))?;
            let raw = vault.raw_blob(id)?;
            std::io::stdout()
                .lock()
                .write_all(&raw)
                .context("write to stdout")?;
            Ok(0)
        }
    }
}

fn cmd_item(config: Option<&Path>, cmd: ItemCommand, json: bool) -> Result<u8> {
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
        } => {
            let item = s.set_item(&name, &vault, &paths, &excludes)?;
            if json {
                print_json(&account::item_json(&item, &names()?))?;
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
                print_json(&json!(items
                    .iter()
                    .map(|i| account::item_json(i, &names))
                    .collect::<Vec<_>>()))?;
            } else {
                account::print_items(&items, &names);
            }
        }
        ItemCommand::Remove { name } => {
            s.remove_item(&name)?;
            if json {
                print_json(&json!({"removed": name}))?;
            } else {
                println!("removed item {name}; its snapshots stay in their vault");
            }
        }
    }
    Ok(0)
}

fn cmd_forget(config: Option<&Path>, args: ForgetArgs, json: bool) -> Result<u8> {
    let vault = open(config, &args.vault.vault)?.vault;
    let policy = KeepPolicy {
        last: args.keep_last,
        hourly: args.keep_hourly,
        daily: args.keep_daily,
        weekly: args.keep_weekly,
        monthly: args.keep_monthly,
        yearly: args.keep_yearly,
    };
    let report = if args.snapshots.is_empty() {
        if policy.is_empty() {
            return Err(Error::Invalid(
                "nothing to forget: name snapshots or give a --keep-… policy".into(),
            )
            .into());
        }
        prune::forget(&vault, &policy, args.dry_run)?
    } else {
        let mut report = prune::ForgetReport::default();
        for spec in &args.snapshots {
            let snap = vault.find_snapshot(spec)?;
            if !args.dry_run {
                vault.forget_snapshot(snap.id)?;
            }
            report.forgotten.push(snap.id);
        }
        report
    };
    if json {
        print_json(
            &json!({"dry_run": args.dry_run, "kept": report.kept, "forgotten": report.forgotten}),
        )?;
    } else {
        let verb = if args.dry_run {
            "would forget"
        } else {
            "forgot"
        };
        for id in &report.forgotten {
            println!("{verb} {id}");
        }
        println!(
            "{verb} {} snapshot(s), kept {}",
            report.forgotten.len(),
            report.kept.len()
        );
    }
    Ok(0)
}

fn cmd_backup(config: Option<&Path>, args: BackupArgs, json: bool) -> Result<u8> {
    let (opened, paths, mut excludes) = match (&args.vault, args.paths.is_empty(), &args.item) {
        (_, true, None) => {
            return Err(Error::Invalid(
                "nothing to back up: give paths, or --item NAME for a protected item".into(),
            )
            .into())
        }
        (vault, true, Some(name)) => {
            // A protected item of this device: its paths, excludes and vault.
            let mut s = session(config)?;
            let item = s.item(name)?;
            let pw = account_password()?;
            let v = s.open_vault_id(item.vault, &pw)?;
            let actual = v
                .remote()
                .map(|r| r.info().name.clone())
                .unwrap_or_default();
            if let Some(named) = vault {
                if VaultRef::parse(named) != VaultRef::Remote(actual.clone()) {
                    return Err(Error::Invalid(format!(
                        "item {name:?} backs up into vault {actual:?}, not {}",
                        named.display()
                    ))
                    .into());
                }
            }
            let paths = item.paths.iter().map(PathBuf::from).collect();
            (
                Opened {
                    vault: v,
                    session: Some(s),
                },
                paths,
                item.excludes,
            )
        }
        (Some(vault), false, _) => (open(config, vault)?, args.paths.clone(), vec![]),
        (None, false, _) => {
            return Err(Error::Invalid("which vault? give --vault VAULT".into()).into())
        }
    };
    excludes.extend(args.excludes);
    let device = match &opened.session {
        Some(s) => {
            if let Some(item) = &args.item {
                cairn_client::remote::check_vault_name("item", item)?;
            }
            if args
                .device
                .as_deref()
                .is_some_and(|d| d != s.profile().device_name)
            {
                return Err(Error::Invalid(
                    "--device does not apply to account vaults: snapshots record the logged-in device"
                        .into(),
                )
                .into());
            }
            s.profile().device_name.clone()
        }
        None => args.device.unwrap_or_else(fsmeta::hostname),
    };
    let job = opened.start_job(JobKind::Backup)?;
    let opts = BackupOptions {
        paths,
        excludes,
        item: args.item,
        device,
        parent: match (args.parent, args.force) {
            (Some(p), _) => ParentChoice::Snapshot(p),
            (None, true) => ParentChoice::None,
            (None, false) => ParentChoice::Auto,
        },
        job,
    };
    let progress = Arc::new(Progress::default());
    let spinner = {
        let p = progress.clone();
        Spinner::start(!json, move || {
            format!("{} files, {}", load(&p.files), bytes(load(&p.bytes)))
        })
    };
    let result = backup::run(&opened.vault, &opts, &progress);
    opened.finish_job(job, &result, |r| {
        let status = if r.warnings.is_empty() && r.changed_during_read.is_empty() {
            JobStatus::Succeeded
        } else {
            JobStatus::Warnings
        };
        let log = r
            .warnings
            .iter()
            .cloned()
            .chain(
                r.changed_during_read
                    .iter()
                    .map(|c| format!("{c} changed while it was read")),
            )
            .collect::<Vec<_>>()
            .join("\n");
        (
            status,
            r.snapshot.stats.files,
            r.snapshot.stats.bytes,
            None,
            log,
        )
    });
    let report = result?;
    drop(spinner);
    let s = &report.snapshot;
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for c in &report.changed_during_read {
        eprintln!("warning: {c} changed while it was read; the snapshot holds the bytes as read");
    }
    if json {
        print_json(&json!({
            "snapshot_id": s.id,
            "parent": report.parent,
            "root": s.root,
            "files": s.stats.files,
            "dirs": s.stats.dirs,
            "bytes": s.stats.bytes,
            "files_read": s.stats.files_read,
            "new_bytes": s.stats.new_bytes,
            "new_chunks": s.stats.new_chunks,
            "stored_bytes": s.stats.stored_bytes,
            "warnings": report.warnings,
            "skipped": report.warnings.len(),
            "notes": report.notes,
            "changed_during_read": report.changed_during_read,
            "seconds": report.seconds,
        }))?;
    } else {
        println!(
            "snapshot {} saved: {} files, {} dirs, {} ({} files read, {} new in {} chunks, {} stored) in {:.2}s",
            s.short_id(),
            s.stats.files,
            s.stats.dirs,
            bytes(s.stats.bytes),
            s.stats.files_read,
            bytes(s.stats.new_bytes),
            s.stats.new_chunks,
            bytes(s.stats.stored_bytes),
            report.seconds
        );
        if !report.warnings.is_empty() {
            println!(
                "incomplete: {} entries skipped (listed above), exit code {INCOMPLETE}",
                report.warnings.len()
            );
        }
    }
    Ok(if report.warnings.is_empty() {
        0
    } else {
        INCOMPLETE
    })
}
