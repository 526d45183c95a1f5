//! `cairn`, the backup tool: a thin command line over the `cairn_client`
//! library. Parses arguments, dispatches to one function per command
//! ([`cli::commands`]), and maps errors to exit codes (0 ok, 1 error, 2
//! usage, 3 wrong password or credentials refused, 4 data integrity, 5
//! backup saved but incomplete).

mod cli;

use std::process::ExitCode;

use cairn_client::Error;
use clap::Parser;

use crate::cli::args::{Cli, Command, KeyCommand, VaultCommand};
use crate::cli::commands;

fn main() -> ExitCode {
    limit_malloc_arenas();
    cli::interrupt::install();
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let code = e.downcast_ref::<Error>().map_or(1, exit_code);
            if json {
                println!("{}", cli::output::error_json(&format!("{e:#}"), code));
            }
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

/// The exit code of a failed command: 3 when the password or the device's
/// credentials were refused, 4 when stored data is damaged, 1 otherwise.
fn exit_code(e: &Error) -> u8 {
    match e {
        Error::WrongPassword | Error::Auth(_) => 3,
        e if e.is_damaged_data() => 4,
        Error::JobNotRecorded(cause) => exit_code(cause),
        _ => 1,
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

/// Runs the command; its `Ok` is the exit code of an outcome that is not
/// an error.
fn run(cli: Cli) -> anyhow::Result<u8> {
    let json = cli.json;
    let config = cli.config.as_deref();
    match cli.command {
        Command::Login {
            server,
            user,
            device,
            ca_file,
        } => commands::login(config, server, user, device, ca_file, json),
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
        Command::Daemon(args) => cli::daemon::daemon(config, args),
        Command::Vault(VaultCommand::Delete { name, yes }) => {
            commands::vault_delete(config, name, yes, json)
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
            let chunker = cairn_client::chunker::ChunkerParams {
                min_size: chunk_min,
                avg_size: chunk_avg,
                max_size: chunk_max,
            };
            let kdf = (kdf_memory_kib, kdf_iterations);
            commands::vault_init(local, chunker, zstd_level, kdf, json)
        }
        Command::Backup(args) => commands::backup(config, args, json),
        Command::Snapshots { vault, acknowledge } => {
            commands::snapshots(config, vault, acknowledge, json)
        }
        Command::Ls {
            vault,
            snapshot,
            path,
        } => commands::list(config, vault, &snapshot, path.as_deref(), json),
        Command::Restore {
            vault,
            snapshot,
            target,
            includes,
        } => commands::restore(config, vault, &snapshot, target, includes, json),
        Command::Check { vault, read_data } => commands::check(config, vault, read_data, json),
        Command::Forget(args) => commands::forget(config, args, json),
        Command::Prune { vault, dry_run } => commands::prune(config, vault, dry_run, json),
        Command::Key(KeyCommand::Passwd { vault: Some(v) }) => commands::passwd_local(&v, json),
        Command::Key(KeyCommand::Passwd { vault: None }) => commands::passwd_account(config, json),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_map_to_exit_codes() {
        assert_eq!(exit_code(&Error::WrongPassword), 3);
        assert_eq!(exit_code(&Error::Auth("refused".into())), 3);
        assert_eq!(exit_code(&Error::Integrity("bad".into())), 4);
        assert_eq!(exit_code(&Error::Invalid("no".into())), 1);
        assert_eq!(exit_code(&Error::Network("down".into())), 1);
        let unrecorded = Error::JobNotRecorded(Box::new(Error::Auth("revoked".into())));
        assert_eq!(exit_code(&unrecorded), 3);
    }
}
