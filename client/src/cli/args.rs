//! The command line of `cairn`: every subcommand, flag and help text
//! (clap derive types), and nothing that acts on them.

use std::path::PathBuf;

use cairn_client::chunker::ChunkerParams;
use clap::{Args, Parser, Subcommand};

use super::benchmark::BenchmarkArgs;
use super::daemon::DaemonArgs;
use super::retention::RetentionCommand;
use super::schedule::ScheduleCommand;

/// Cairn: encrypted, deduplicated backups.
///
/// Data is split into content-defined chunks, compressed, encrypted with keys
/// only your password unlocks, and stored once per vault however many
/// snapshots use it. Passwords come from CAIRN_PASSWORD, CAIRN_PASSWORD_FILE,
/// the output of CAIRN_PASSWORD_COMMAND (run by `sh -c`) or a prompt;
/// CAIRN_VAULT stands for `--vault`.
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
#[command(name = "cairn", version = VERSION, propagate_version = true, after_help = EXAMPLES)]
pub struct Cli {
    /// Print one JSON document instead of human-readable text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress display and no notes (results, warnings and errors stay).
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Say more: `-v` lists the files a backup reads (new, changed),
    /// `-vv` also the unmodified ones.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// The profile file written by `cairn login` (default:
    /// $XDG_CONFIG_HOME/cairn/profile.json, else ~/.config/cairn/profile.json).
    #[arg(long, global = true, env = "CAIRN_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The time zone of displayed times and of retention's hours, days,
    /// weeks, months and years: UTC, an IANA name (Europe/Berlin) or a
    /// POSIX TZ string (EST5EDT,M3.2.0,M11.1.0); default: the system's.
    #[arg(long, global = true, env = "CAIRN_TZ", value_name = "ZONE", value_parser = super::zone::name)]
    pub time_zone: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// The `cairn` command line, branded when a client configuration
/// (`client.toml`, from the cluster's downloads) names a brand: `--help`
/// starts with the product name and support URL, `--version` ends with
/// them.
pub fn command(branding: Option<&cairn_proto::download::Branding>) -> clap::Command {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let Some(b) = branding else {
        return cmd;
    };
    let brand = if b.support_url.is_empty() {
        b.product.clone()
    } else {
        format!("{} (support: {})", b.product, b.support_url)
    };
    // clap takes 'static strings; built once per process.
    let version: &'static str = Box::leak(format!("{VERSION}, {brand}").into_boxed_str());
    let heading: &'static str = Box::leak(brand.into_boxed_str());
    cmd.version(version).before_help(heading)
}

/// `cairn --version`: the crate version, the commit built and the build date.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CAIRN_BUILD_COMMIT"),
    ", built ",
    env!("CAIRN_BUILD_DATE"),
    ")"
);

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
  cairn jobs

Examples (unattended backups, see `cairn schedule --help`):
  cairn item set home --vault laptop ~ --before 'pg_dump db > ~/db.sql' --after 'rm ~/db.sql'
  cairn schedule add nightly --item home --at 'daily 02:00' --random-delay 30m --timeout 4h
  cairn retention set --vault laptop --keep-last 3 --one-per-day 7 --one-per-month 12
  cairn daemon";

#[derive(Subcommand)]
pub enum Command {
    /// Log this device in to an account on a cairnd cluster.
    ///
    /// Derives the login key from the password with the account's argon2id
    /// parameters (the password itself is never sent), registers the device
    /// (a device of the same name gets a new token) and writes the profile:
    /// every node of the cluster (for failover), the account, the device
    /// and its token, mode 0600.
    Login {
        /// URL of any node, e.g. https://backup.example:8700 (default: the
        /// servers of the installed client configuration, client.toml).
        #[arg(long, value_name = "URL")]
        server: Option<String>,
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
    ///
    /// Statuses: succeeded; running (revived: a job the cluster marked
    /// abandoned that reported again); warning, error, timeout, quota,
    /// missed, cancelled, skipped_already_running, abandoned.
    Jobs,
    /// When this device backs up its items by itself (run by `cairn daemon`).
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Which snapshots an account vault keeps (applied after each
    /// scheduled backup, or by `cairn retention apply`).
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Run this device's schedules until stopped (one daemon per device).
    Daemon(DaemonArgs),
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
        #[command(flatten)]
        select: SelectArgs,
        /// Accept the server's list as it is now, after a snapshot newer than
        /// all listed ones was forgotten on another device on purpose.
        #[arg(long)]
        acknowledge: bool,
    },
    /// List the contents of a snapshot.
    Ls {
        #[command(flatten)]
        vault: VaultArg,
        #[command(flatten)]
        select: SelectArgs,
        /// Snapshot id, unique id prefix, or `latest`.
        snapshot: String,
        /// Absolute path inside the snapshot to list (default: everything).
        path: Option<PathBuf>,
        /// Long listing: type and permissions, owner, size, mtime, link target.
        #[arg(short = 'l', long)]
        long: bool,
    },
    /// Restore a snapshot: each backed-up absolute path is recreated under --target.
    ///
    /// What the target already holds is kept when it is as new as or newer
    /// than the snapshot's copy (`--overwrite if-newer`, the default: a
    /// restore never silently destroys newer local data); kept paths are
    /// listed. `--dry-run` shows what would happen.
    Restore(RestoreArgs),
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
    /// Print a file of a snapshot to stdout, or a directory as a tar archive.
    Dump {
        #[command(flatten)]
        vault: VaultArg,
        #[command(flatten)]
        select: SelectArgs,
        /// Snapshot id, unique id prefix, or `latest`.
        snapshot: String,
        /// Absolute path inside the snapshot (`/`: all of it, as tar).
        path: PathBuf,
    },
    /// Find entries whose path matches a pattern, in every snapshot (or
    /// those the filters keep).
    Find {
        #[command(flatten)]
        vault: VaultArg,
        #[command(flatten)]
        select: SelectArgs,
        /// Patterns as for --exclude: `*.conf` and `sub/name` at any depth,
        /// `/etc/*` anchored (several: any of them).
        #[arg(required = true, value_name = "PATTERN")]
        patterns: Vec<String>,
    },
    /// What changed between two snapshots: added, removed and modified paths.
    Diff {
        #[command(flatten)]
        vault: VaultArg,
        #[command(flatten)]
        select: SelectArgs,
        /// The older snapshot (id, unique id prefix, or `latest`).
        first: String,
        /// The newer snapshot.
        second: String,
    },
    /// Restore size, unique data, stored size and deduplication ratio of a
    /// snapshot, or of every snapshot the filters keep.
    Stats {
        #[command(flatten)]
        vault: VaultArg,
        #[command(flatten)]
        select: SelectArgs,
        /// One snapshot (id, unique id prefix, or `latest`); default: all.
        snapshot: Option<String>,
    },
    /// Heal damaged or missing chunks from a source: the files (or any copy
    /// of them) whose content hashes to the lost chunks' ids.
    ///
    /// Checks the vault with --read-data, looks for every lost chunk in the
    /// sources, stores those it finds and checks again. Every snapshot that
    /// is still damaged is named (exit 4); `--forget-unhealed` forgets them
    /// (then `prune`). Local vaults (a cluster heals replicas itself).
    Repair(RepairArgs),
    /// Add, remove or replace the tags of snapshots (local vaults).
    ///
    /// The named snapshots, or without names every snapshot the selection
    /// keeps. A re-tagged snapshot gets a new id (its tags are sealed with
    /// it); its data, time, device and item stay.
    ///
    /// Example: `cairn tag --vault /backup/vault latest --add keep`.
    Tag(TagArgs),
    /// Copy snapshots from another vault (--from) into this one, re-encrypted
    /// for this vault's keys.
    ///
    /// Only what this vault does not hold is stored; a snapshot already
    /// copied (same time, host, item, paths and tags) is skipped, so running
    /// it again copies only new snapshots. The source's password (an
    /// account vault's: the account password) comes from
    /// CAIRN_FROM_PASSWORD (or its _FILE, _COMMAND) or a prompt, the
    /// target's from CAIRN_PASSWORD as usual. A copy into an account vault
    /// records the logged-in device.
    ///
    /// Example: `cairn copy --from /backup/old --vault main --tag keep`.
    Copy(CopyArgs),
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
    /// Browse snapshots as a read-only file system (FUSE) until Ctrl-C,
    /// SIGTERM or an unmount: MOUNTPOINT/snapshots/<id>/… for every snapshot
    /// the selection keeps, and snapshots/latest. Needs /dev/fuse, and as a
    /// non-root user `fusermount3` (Debian: fuse3).
    Mount {
        #[command(flatten)]
        vault: VaultArg,
        #[command(flatten)]
        select: SelectArgs,
        /// An existing empty directory.
        mountpoint: PathBuf,
    },
    /// Manage the passwords and recovery keys that protect the vault keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Measure how fast this machine chunks, hashes, compresses and seals
    /// the given files: the CPU ceiling of a backup of them.
    ///
    /// Reads the files into memory first and times only the pipeline's
    /// work, with throwaway keys; writes nothing.
    Benchmark(BenchmarkArgs),
    /// Print the shell completion script for SHELL (e.g. `cairn completions
    /// bash > /etc/bash_completion.d/cairn`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (cairn.1 and one per command) into DIR.
    Man {
        /// The directory (created if missing), e.g. /usr/local/share/man/man1.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum DevicesCommand {
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
pub enum ItemCommand {
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
        /// Skip matching paths: `*.tmp` and `sub/file` match at any depth, `/abs/path` only there; `*` stays within one name, `**` spans directories (repeatable).
        #[arg(long = "exclude", value_name = "GLOB")]
        excludes: Vec<String>,
        #[command(flatten)]
        commands: CommandArgs,
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
pub enum VaultCommand {
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
    /// Set an account vault's before/after commands, run by every device
    /// of the account around each job on the vault (none: clear them).
    ///
    /// Around a job they nest innermost: schedule before, item before,
    /// vault before, backup, vault after, item after, schedule after.
    Set {
        /// The vault's name.
        name: String,
        #[command(flatten)]
        commands: CommandArgs,
    },
    /// Delete an account vault, its snapshots and its data.
    Delete {
        /// The vault's name.
        name: String,
        /// Confirm: without it nothing is deleted.
        #[arg(long)]
        yes: bool,
    },
    /// Create a vault in a local directory (new or empty: `--local DIR`, a
    /// plain path or `file:///PATH`), or on object
    /// storage or SFTP: `cairn vault init s3://BUCKET/PREFIX` (endpoint,
    /// region and credentials from AWS_*; AWS_ENDPOINT_URL for a self-hosted
    /// server) or `sftp://USER@HOST[:PORT]/PATH` (key login: CAIRN_SFTP_KEY,
    /// and CAIRN_SFTP_KNOWN_HOSTS=strict|add|accept).
    Init {
        /// The directory to hold the vault.
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "url",
            conflicts_with = "url"
        )]
        local: Option<PathBuf>,
        /// The object vault's URL (s3://… or sftp://…), or a local
        /// directory (a path or file://…).
        #[arg(value_name = "URL")]
        url: Option<String>,
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
pub enum KeyCommand {
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
    /// Add a way into a local vault: another password (from
    /// CAIRN_NEW_PASSWORD, its _FILE or _COMMAND, or a prompt), or with
    /// `--recovery` a random recovery key, printed once and stored nowhere.
    /// A recovery key is entered wherever a password is asked for. The
    /// vault is then written in format 2, which builds before key slots
    /// refuse to open. Account vaults follow the account password (the
    /// server keeps one sealed key blob per vault): refused there.
    Add {
        /// A local vault directory.
        #[arg(long, value_name = "DIR", env = "CAIRN_VAULT")]
        vault: PathBuf,
        /// Add a recovery key instead of a password.
        #[arg(long)]
        recovery: bool,
    },
    /// List a local vault's key slots (id, kind, the one that opened it).
    List {
        /// A local vault directory.
        #[arg(long, value_name = "DIR", env = "CAIRN_VAULT")]
        vault: PathBuf,
    },
    /// Remove key slot ID from a local vault. The vault must be opened
    /// with another key, and its last key cannot be removed.
    Remove {
        /// A local vault directory.
        #[arg(long, value_name = "DIR", env = "CAIRN_VAULT")]
        vault: PathBuf,
        /// The slot's id (`cairn key list`).
        id: u32,
    },
}

/// Before/after commands of an item, a vault or a schedule.
#[derive(Args, Clone, Default)]
pub struct CommandArgs {
    /// Run before each job, through `/bin/sh -c` (repeatable, in order).
    /// A failing one fails the job (`error`) and skips the backup. The
    /// environment has CAIRN_JOB_ID, CAIRN_ITEM, CAIRN_VAULT and
    /// CAIRN_SCHEDULE.
    #[arg(long = "before", value_name = "CMD")]
    pub before: Vec<String>,
    /// Run after each job (repeatable), also when a before command of the
    /// same or an outer level failed; CAIRN_JOB_STATUS holds the job's
    /// status. Output and exit codes go into the job's log.
    #[arg(long = "after", value_name = "CMD")]
    pub after: Vec<String>,
}

#[derive(Args)]
pub struct VaultArg {
    /// The vault: a local vault directory, or the name of an account vault
    /// (a word that is no local vault directory; see `cairn --help`).
    #[arg(long, value_name = "VAULT", env = "CAIRN_VAULT")]
    pub vault: PathBuf,
}

#[derive(Args)]
pub struct RepairArgs {
    #[command(flatten)]
    pub vault: VaultArg,
    /// Where to look for the lost chunks: files and directories (repeatable).
    #[arg(long = "source", value_name = "PATH", required = true)]
    pub sources: Vec<PathBuf>,
    /// Forget the snapshots that are still damaged afterwards.
    #[arg(long)]
    pub forget_unhealed: bool,
}

/// Snapshot selection: which snapshots a command considers, and within
/// which `latest` is the newest.
#[derive(Args)]
pub struct SelectArgs {
    /// Only snapshots of this device (repeatable). Without it, `latest`
    /// means this device's newest snapshot (a local vault's: this host's,
    /// if any snapshot records it); listings show every device.
    #[arg(long = "device", visible_alias = "host", value_name = "NAME")]
    pub devices: Vec<String>,
    /// `latest` may be any device's newest snapshot.
    #[arg(long, conflicts_with = "devices")]
    pub all_devices: bool,
    /// Only snapshots of this protected item (repeatable).
    #[arg(long = "item", value_name = "NAME")]
    pub items: Vec<String>,
    /// Only snapshots that backed up this absolute path (repeatable: all of them).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Only snapshots carrying these tags (`a,b`: both; repeated: any of the sets).
    #[arg(long = "tag", value_name = "TAGS")]
    pub tags: Vec<String>,
}

impl SelectArgs {
    /// The library's filter (relative `--path`s made absolute).
    pub fn filter(&self) -> cairn_client::select::Filter {
        cairn_client::select::Filter {
            devices: self.devices.clone(),
            items: self.items.clone(),
            paths: self
                .paths
                .iter()
                .map(|p| {
                    std::path::absolute(p)
                        .unwrap_or_else(|_| p.clone())
                        .display()
                        .to_string()
                })
                .collect(),
            all_devices: self.all_devices,
            tags: self
                .tags
                .iter()
                .map(|set| set.split(',').map(str::to_string).collect())
                .collect(),
        }
    }
}

#[derive(Args)]
pub struct TagArgs {
    #[command(flatten)]
    pub vault: VaultArg,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Snapshots to re-tag (ids, unique prefixes or `latest`); with none,
    /// every snapshot the selection keeps.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Add these tags (repeatable, or comma-separated).
    #[arg(long, value_name = "TAGS", value_delimiter = ',')]
    pub add: Vec<String>,
    /// Remove these tags (repeatable, or comma-separated).
    #[arg(long, value_name = "TAGS", value_delimiter = ',')]
    pub remove: Vec<String>,
    /// Replace all tags with these (repeatable, or comma-separated; `--set ''`
    /// removes every tag).
    #[arg(long, value_name = "TAGS", value_delimiter = ',')]
    pub set: Option<Vec<String>>,
}

#[derive(Args)]
pub struct CopyArgs {
    /// The target vault.
    #[command(flatten)]
    pub vault: VaultArg,
    /// The source vault: a local vault directory or an account vault's name.
    #[arg(long, value_name = "VAULT", env = "CAIRN_FROM_VAULT")]
    pub from: PathBuf,
    /// Which of the source's snapshots to copy (with no SNAPSHOT: every
    /// snapshot the selection keeps).
    #[command(flatten)]
    pub select: SelectArgs,
    /// Snapshots of the source (ids, unique prefixes or `latest`).
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
}

#[derive(Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub vault: VaultArg,
    #[command(flatten)]
    pub select: SelectArgs,
    /// Snapshot id, unique id prefix, or `latest`.
    pub snapshot: String,
    /// Directory to restore into (created if missing).
    #[arg(long)]
    pub target: PathBuf,
    /// Restore only matching snapshot paths and what is below them:
    /// `/abs/path` there, `name` or `sub/file` at any depth, globs as for
    /// --exclude (repeatable).
    #[arg(long = "include", value_name = "PATTERN")]
    pub includes: Vec<String>,
    /// Do not restore matching paths (patterns as for --include; repeatable).
    #[arg(long = "exclude", value_name = "PATTERN")]
    pub excludes: Vec<String>,
    /// What to do with a path the target already holds: `always` replace
    /// it, `if-changed` unless size and mtime match, `if-newer` only when
    /// the snapshot's copy is newer, `never`.
    #[arg(long, value_enum, default_value_t = Overwrite::IfNewer)]
    pub overwrite: Overwrite,
    /// Delete what the restored directories of the backed-up sources hold
    /// in the target but the snapshot does not (excluded paths, and the
    /// directories on the way to a source, stay).
    #[arg(long)]
    pub delete: bool,
    /// Report what would be written, replaced, kept and deleted; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `--overwrite` (mirrors [`cairn_client::restore::Overwrite`]).
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Overwrite {
    Always,
    IfChanged,
    IfNewer,
    Never,
}

impl From<Overwrite> for cairn_client::restore::Overwrite {
    fn from(o: Overwrite) -> Self {
        match o {
            Overwrite::Always => Self::Always,
            Overwrite::IfChanged => Self::IfChanged,
            Overwrite::IfNewer => Self::IfNewer,
            Overwrite::Never => Self::Never,
        }
    }
}

#[derive(Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub vault: VaultArg,
    /// Apply the --keep-… policy to these snapshots only.
    #[command(flatten)]
    pub select: SelectArgs,
    /// Snapshots to forget (ids or unique prefixes); with none, apply the --keep-… policy.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Keep the N newest snapshots of each group.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N weeks.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years.
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Report what would be forgotten, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args)]
pub struct BackupArgs {
    /// The vault: a local vault directory, or the name of an account vault
    /// (optional with `--item` naming a protected item).
    #[arg(
        long,
        value_name = "VAULT",
        env = "CAIRN_VAULT",
        required_unless_present = "item"
    )]
    pub vault: Option<PathBuf>,
    /// Files and directories to back up (none: those of the protected item
    /// `--item`). Symlinked parents are followed and the path is saved as
    /// given; a symlink named itself is saved as the link (`LINK/` saves
    /// what it points to).
    #[arg(
        value_name = "PATH",
        required_unless_present_any = ["item", "files_from", "stdin"]
    )]
    pub paths: Vec<PathBuf>,
    /// Back up standard input as one file (`--stdin-filename`) instead of
    /// paths, e.g. `pg_dump db | cairn backup --vault V --stdin`.
    #[arg(long, conflicts_with_all = ["paths", "files_from"])]
    pub stdin: bool,
    /// The file name standard input is saved as (at the snapshot's root).
    #[arg(long, value_name = "NAME", default_value = "stdin", requires = "stdin")]
    pub stdin_filename: String,
    /// Skip matching paths: `*.tmp` and `sub/file` match at any depth, `/abs/path` only there; `*` stays within one name, `**` spans directories (repeatable).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// Protected item: with paths, a label (the parent snapshot is the newest
    /// of the same item); without paths, this device's protected item of
    /// that name supplies paths, excludes and vault.
    #[arg(long)]
    pub item: Option<String>,
    /// Device name recorded in the snapshot (default: host name; account
    /// vaults record the logged-in device).
    #[arg(long)]
    pub device: Option<String>,
    /// Compare against this snapshot instead of choosing the parent automatically.
    #[arg(long, conflicts_with = "force")]
    pub parent: Option<String>,
    /// Tag the snapshot (repeatable, or comma-separated), for `--tag` selection.
    #[arg(long = "tag", value_name = "TAG", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Read exclude patterns from FILE, one per line (`#` comments; repeatable).
    #[arg(long = "exclude-file", value_name = "FILE")]
    pub exclude_files: Vec<PathBuf>,
    /// Leave out directories holding a CACHEDIR.TAG (caches that tag
    /// themselves, as many tools do).
    #[arg(long)]
    pub exclude_caches: bool,
    /// Stay on the file system of each source: do not descend into other
    /// file systems mounted below it.
    #[arg(long, short = 'x')]
    pub one_file_system: bool,
    /// Read paths to back up from FILE, one per line (`#` comments),
    /// besides those given.
    #[arg(long, value_name = "FILE")]
    pub files_from: Option<PathBuf>,
    /// Read every file, ignoring any parent snapshot; in a local vault also
    /// verify every chunk the vault already holds and store a damaged one
    /// again from the file (heals damage `check --read-data` found).
    #[arg(long)]
    pub force: bool,
    /// The schedule running this backup (set by `cairn daemon`).
    #[arg(long, hide = true, requires = "item")]
    pub schedule: Option<String>,
    /// The job id to record (set by `cairn daemon`).
    #[arg(long, hide = true, requires = "item")]
    pub job_id: Option<String>,
    /// Where to note how far the job's before/after commands got (set by
    /// `cairn daemon`, which runs the owed after commands of a job it stops
    /// on its schedule's timeout).
    #[arg(long, hide = true, requires = "item", value_name = "FILE")]
    pub marks: Option<PathBuf>,
}
