//! `cairn`, the backup tool: a thin command line over the `cairn_client`
//! library. Parses arguments, reads passwords, shows progress, prints human
//! or `--json` output and maps errors to exit codes (0 ok, 1 error, 2 usage,
//! 3 wrong password, 4 data integrity).

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
use cairn_client::restore::{self, RestoreOptions};
use cairn_client::retention::KeepPolicy;
use cairn_client::vault::CreateOptions;
use cairn_client::{check, fsmeta, ls, prune, Error, Vault};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::cli::progress::{bytes, load, Spinner};

/// Cairn: encrypted, deduplicated backups.
///
/// Data is split into content-defined chunks, compressed, encrypted with keys
/// only your password unlocks, and stored once per vault however many
/// snapshots use it. Passwords come from CAIRN_PASSWORD, CAIRN_PASSWORD_FILE
/// or a prompt.
///
/// Exit codes: 0 ok, 1 error, 2 usage, 3 wrong password, 4 data integrity error.
#[derive(Parser)]
#[command(name = "cairn", version, propagate_version = true, after_help = EXAMPLES)]
struct Cli {
    /// Print one JSON document instead of human-readable text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "Examples:
  cairn vault init --local /backup/vault
  cairn backup --vault /backup/vault /home/me /etc --exclude '*.tmp'
  cairn snapshots --vault /backup/vault
  cairn restore --vault /backup/vault latest --target /tmp/restored
  cairn check --vault /backup/vault --read-data
  cairn forget --vault /backup/vault --keep-daily 7 --keep-monthly 12 && cairn prune --vault /backup/vault";

#[derive(Subcommand)]
enum Command {
    /// Create vaults.
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Back up paths into a vault as a new snapshot.
    ///
    /// Files unchanged since the parent snapshot (same size, mtime, ctime and
    /// inode) are not read again; changed files upload only their new chunks.
    Backup(BackupArgs),
    /// List a vault's snapshots, oldest first.
    Snapshots(VaultArg),
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
    /// --read-data also decrypt and verify every stored chunk.
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
enum VaultCommand {
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
    /// Change the vault password: re-wraps the keys, rewrites no data. The
    /// new password comes from CAIRN_NEW_PASSWORD, CAIRN_NEW_PASSWORD_FILE or a prompt.
    Passwd(VaultArg),
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
    /// The vault: a local vault directory.
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
    #[command(flatten)]
    vault: VaultArg,
    /// Files and directories to back up.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Skip matching files: patterns with a `/` match the absolute path, others the name (repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    excludes: Vec<String>,
    /// Protected item label; the parent snapshot is the newest of the same item.
    #[arg(long)]
    item: Option<String>,
    /// Device name recorded in the snapshot (default: host name).
    #[arg(long)]
    device: Option<String>,
    /// Compare against this snapshot instead of choosing the parent automatically.
    #[arg(long, conflicts_with = "force")]
    parent: Option<String>,
    /// Read every file, ignoring any parent snapshot.
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    limit_malloc_arenas();
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

fn open(v: &VaultArg) -> Result<Vault> {
    let pw = password()?;
    Ok(Vault::open(&v.vault, &pw)?)
}

fn print_json(value: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn run(cli: Cli) -> Result<u8> {
    let json = cli.json;
    match cli.command {
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
        Command::Backup(args) => cmd_backup(args, json),
        Command::Snapshots(v) => {
            let vault = open(&v)?;
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
            let vault = open(&vault)?;
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
            let vault = open(&vault)?;
            let snap = vault.find_snapshot(&snapshot)?;
            let done = Arc::new(AtomicU64::new(0));
            let total = snap.stats.bytes;
            let spinner = {
                let done = done.clone();
                Spinner::start(!json, move || {
                    format!("restored {} of {}", bytes(load(&done)), bytes(total))
                })
            };
            let report = restore::run(
                &vault,
                &snap,
                &RestoreOptions {
                    target: target.clone(),
                    includes,
                },
                &done,
            )?;
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
            let vault = open(&vault)?;
            let done = Arc::new(AtomicU64::new(0));
            let spinner = {
                let done = done.clone();
                Spinner::start(!json && read_data, move || {
                    format!("verified {} chunks", load(&done))
                })
            };
            let report = check::run(&vault, read_data, &done)?;
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
        Command::Forget(args) => cmd_forget(args, json),
        Command::Prune { vault, dry_run } => {
            let vault = open(&vault)?;
            let report = prune::prune(&vault, dry_run)?;
            if json {
                print_json(&json!({"dry_run": dry_run, "report": report}))?;
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
            Ok(0)
        }
        Command::Key(KeyCommand::Passwd(v)) => {
            let mut vault = open(&v)?;
            let new = cli::password::read("CAIRN_NEW_PASSWORD", "New password: ", true)?;
            vault.change_password(&new)?;
            if json {
                print_json(&json!({"vault_id": vault.config().vault_id, "changed": true}))?;
            } else {
                println!("password changed; the old password no longer opens this vault");
            }
            Ok(0)
        }
        Command::Debug(DebugCommand::Keys(v)) => {
            let vault = open(&v)?;
            let k = vault.keys();
            print_json(&json!({
                "vault_id": vault.config().vault_id,
                "encryption_key": hex::encode(k.encryption),
                "chunk_id_key": hex::encode(k.chunk_id),
            }))?;
            Ok(0)
        }
        Command::Debug(DebugCommand::CatRaw { vault, chunk_id }) => {
            let vault = open(&vault)?;
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

fn cmd_forget(args: ForgetArgs, json: bool) -> Result<u8> {
    let vault = open(&args.vault)?;
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

fn cmd_backup(args: BackupArgs, json: bool) -> Result<u8> {
    let vault = open(&args.vault)?;
    let opts = BackupOptions {
        paths: args.paths,
        excludes: args.excludes,
        item: args.item,
        device: args.device.unwrap_or_else(fsmeta::hostname),
        parent: match (args.parent, args.force) {
            (Some(p), _) => ParentChoice::Snapshot(p),
            (None, true) => ParentChoice::None,
            (None, false) => ParentChoice::Auto,
        },
    };
    let progress = Arc::new(Progress::default());
    let spinner = {
        let p = progress.clone();
        Spinner::start(!json, move || {
            format!("{} files, {}", load(&p.files), bytes(load(&p.bytes)))
        })
    };
    let report = backup::run(&vault, &opts, &progress)?;
    drop(spinner);
    let s = &report.snapshot;
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
    }
    Ok(0)
}
