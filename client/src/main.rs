//! `cairn`, the backup tool: a thin command line over the `cairn_client`
//! library. Parses arguments, dispatches to one function per command
//! ([`cli::commands`]), and maps errors to exit codes (0 ok, 1 error, 2
//! usage, 3 wrong password or credentials refused, 4 data integrity, 5
//! backup saved but incomplete). Under `--json` an error, usage errors
//! included, is one JSON document on stderr with a stable `code`; a closed
//! stdout (`cairn ls | head`) ends the command quietly with 0.

mod cli;

use std::process::ExitCode;

use cairn_client::Error;
use clap::Parser;

use crate::cli::args::{Cli, Command, KeyCommand, VaultCommand};
use crate::cli::{browse, commands};

fn main() -> ExitCode {
    limit_malloc_arenas();
    cli::interrupt::install();
    let json = std::env::args_os().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if json && e.use_stderr() => {
            let text = e.kind().to_string();
            let message = e.to_string();
            let first = message.lines().next().unwrap_or(&text);
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("{}", cli::output::error_json(first, "usage", USAGE));
            return ExitCode::from(USAGE);
        }
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        // The reader went away (`cairn ls | head`): nothing left to say.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let cause = e.downcast_ref::<Error>();
            let code = cause.map_or(1, exit_code);
            let message = message(&e);
            if json {
                eprintln!(
                    "{}",
                    cli::output::error_json(&message, cause.map_or("error", error_code), code)
                );
            } else {
                eprintln!("error: {message}");
            }
            ExitCode::from(code)
        }
    }
}

/// Exit code of a usage error (clap's).
const USAGE: u8 = 2;

/// Whether `e` is a failed write to a closed stdout: a bare IO or JSON
/// error, as the printing code returns them (an EPIPE inside a library
/// error, e.g. from a server connection, is a real failure).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let kind = e
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind)
        .or_else(|| e.downcast_ref::<serde_json::Error>()?.io_error_kind());
    kind == Some(std::io::ErrorKind::BrokenPipe)
}

/// The error and its causes on one line, each cause said once (a cause
/// its error's text already ends with is not repeated).
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for c in e.chain() {
        let text = c.to_string();
        if !out.ends_with(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
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

/// The stable `code` of a failed command's JSON error.
fn error_code(e: &Error) -> &'static str {
    match e {
        Error::WrongPassword => "wrong_password",
        Error::Auth(_) => "auth",
        e if e.is_damaged_data() => "damaged",
        Error::NotFound(_) => "not_found",
        Error::Invalid(_) => "invalid",
        Error::JobNotRecorded(cause) => error_code(cause),
        _ => "error",
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
    cli::output::set_quiet(cli.quiet);
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
        Command::Forget(args) => commands::forget(config, args, json),
        Command::Prune { vault, dry_run } => commands::prune(config, vault, dry_run, json),
        Command::Key(KeyCommand::Passwd { vault: Some(v) }) => commands::passwd_local(&v, json),
        Command::Key(KeyCommand::Passwd { vault: None }) => commands::passwd_account(config, json),
        Command::Completions { shell } => cli::manual::completions(shell),
        Command::Man { dir } => cli::manual::man(&dir, json),
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
        assert_eq!(error_code(&unrecorded), "auth");
    }

    #[test]
    fn a_cause_is_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = io.to_string();
        let e = anyhow::Error::from(Error::io("open", std::path::Path::new("/x"), io));
        assert_eq!(message(&e), format!("open /x: {text}"));
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(message(&e), "outer: inner");
        let pipe = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(
            &anyhow::Error::from(pipe()).context("write")
        ));
        let upload = Error::io("upload", std::path::Path::new("/x"), pipe());
        assert!(!is_broken_pipe(&anyhow::Error::from(upload)));
    }
}
