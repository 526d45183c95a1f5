//! `cairn`, the backup tool: a thin command line over the `cairn_client`
//! library. Parses arguments and dispatches to one function per command
//! ([`cli::commands`] and its siblings); how a command ends (exit codes,
//! errors as text or JSON, a closed stdout) is [`cli::exit`].

mod cli;

use std::process::ExitCode;

use cairn_client::remote::preset::{self, Preset};
use clap::FromArgMatches;

use crate::cli::args::{Cli, Command, KeyCommand, VaultCommand};
use crate::cli::{browse, commands};

fn main() -> ExitCode {
    tune_malloc();
    cli::interrupt::install();
    let json = std::env::args_os().any(|a| a == "--json");
    // The cluster's client configuration (downloads role): servers for
    // `login`, the brand for --help/--version. A broken one is named, not
    // fatal: only a login without --server needs it.
    let preset = preset::load(|k| std::env::var(k).ok()).unwrap_or_else(|e| {
        eprintln!("warning: ignoring the client configuration: {e}");
        None
    });
    let parsed = cli::args::command(preset.as_ref().map(|p| &p.branding))
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    match parsed {
        Ok(cli) => cli::exit::finish(run(cli, preset.as_ref()), json),
        Err(e) => cli::exit::usage_failure(e, json),
    }
}

/// glibc gives each thread that frees memory allocated elsewhere its own
/// arena; with chunk buffers passed between pipeline threads that retains
/// tens of MiB. Two arenas keep peak memory down at no measurable speed cost.
///
/// Chunk buffers and upload batches (up to a few MiB each) come from the
/// heap, and up to 64 MiB free at its top stays mapped: by default glibc
/// maps the large ones afresh or hands the top back, and every batch
/// faulted in and zeroed its pages again (0.1 s of system time in a backup
/// of the 1.3 GB large-file set, a third of it).
fn tune_malloc() {
    // SAFETY: mallopt only tunes the allocator; called before any threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// Runs the command; its `Ok` is the exit code of an outcome that is not
/// an error.
fn run(cli: Cli, preset: Option<&Preset>) -> anyhow::Result<u8> {
    let json = cli.json;
    cli::output::set_verbosity(cli.quiet, cli.verbose);
    if let Some(name) = &cli.time_zone {
        cli::zone::set(cli::zone::parse(name)?);
    }
    let config = cli.config.as_deref();
    match cli.command {
        Command::Login {
            server,
            user,
            device,
            ca_file,
        } => commands::login(config, server, user, device, ca_file, preset, json),
        Command::Logout => commands::logout(config, json),
        Command::Devices(cmd) => commands::devices(config, cmd, json),
        Command::Tiers => commands::tiers(config, json),
        Command::Jobs => commands::jobs(config, json),
        Command::Item(cmd) => commands::item(config, cmd, json),
        Command::Vault(VaultCommand::Request {
            tier,
            name,
            zstd_level,
        }) => commands::vault_request(config, tier, name, zstd_level, json),
        Command::Vault(VaultCommand::List) => commands::vault_list(config, json),
        Command::Vault(VaultCommand::Set { name, commands: c }) => {
            commands::vault_set(config, name, c, json)
        }
        Command::Schedule(cmd) => cli::schedule::schedule(config, cmd, json),
        Command::Retention(cmd) => cli::retention::retention(config, cmd, json),
        Command::Daemon(args) => cli::daemon::daemon(config, cli.time_zone.as_deref(), args),
        Command::Vault(VaultCommand::Delete { name, yes }) => {
            commands::vault_delete(config, name, yes, json)
        }
        Command::Vault(VaultCommand::Init {
            local,
            url,
            zstd_level,
            chunk_min,
            chunk_avg,
            chunk_max,
            kdf_memory_kib,
            kdf_iterations,
        }) => {
            let chunker = cairn_client::chunker::ChunkerParams {
                min_size: chunk_min,
                avg_size: chunk_avg,
                max_size: chunk_max,
            };
            let kdf = (kdf_memory_kib, kdf_iterations);
            commands::vault_init(local, url, chunker, zstd_level, kdf, json)
        }
        Command::Backup(args) => commands::backup(config, args, json),
        Command::Snapshots {
            vault,
            select,
            acknowledge,
        } => commands::snapshots(config, vault, &select, acknowledge, json),
        Command::Ls {
            vault,
            select,
            snapshot,
            path,
            long,
        } => commands::list(
            config,
            vault,
            &select,
            &snapshot,
            path.as_deref(),
            long,
            json,
        ),
        Command::Restore(args) => commands::restore(config, args, json),
        Command::Check { vault, read_data } => commands::check(config, vault, read_data, json),
        Command::Repair(args) => cli::repair::repair(config, args, json),
        Command::Dump {
            vault,
            select,
            snapshot,
            path,
        } => browse::dump(config, &vault, &select, &snapshot, &path),
        Command::Find {
            vault,
            select,
            patterns,
        } => browse::find(config, &vault, &select, &patterns, json),
        Command::Diff {
            vault,
            select,
            first,
            second,
        } => browse::diff(config, &vault, &select, [&first, &second], json),
        Command::Stats {
            vault,
            select,
            snapshot,
        } => browse::stats(config, &vault, &select, snapshot.as_deref(), json),
        Command::Tag(args) => cli::tag::tag(config, args, json),
        Command::Copy(args) => cli::copy::copy(config, args, json),
        Command::Forget(args) => commands::forget(config, args, json),
        Command::Prune { vault, dry_run } => commands::prune(config, vault, dry_run, json),
        Command::Mount {
            vault,
            select,
            mountpoint,
        } => cli::mount::mount(config, &vault, &select, &mountpoint, json),
        Command::Key(KeyCommand::Passwd { vault: Some(v) }) => cli::keys::passwd_local(&v, json),
        Command::Key(KeyCommand::Add { vault, recovery }) => cli::keys::add(&vault, recovery, json),
        Command::Key(KeyCommand::List { vault }) => cli::keys::list(&vault, json),
        Command::Key(KeyCommand::Remove { vault, id }) => cli::keys::remove(&vault, id, json),
        Command::Key(KeyCommand::Passwd { vault: None }) => commands::passwd_account(config, json),
        Command::Benchmark(args) => cli::benchmark::benchmark(args, json),
        Command::Completions { shell } => cli::manual::completions(shell),
        Command::Man { dir } => cli::manual::man(&dir, json),
    }
}
