//! `cairn-debug`: low-level access for verifying formats with independent
//! tools (the tests use it). It prints raw vault keys, so it is a separate
//! binary, not a subcommand of the production `cairn`.

#[path = "../cli/open.rs"]
mod open;
#[path = "../cli/password.rs"]
mod password;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use cairn_client::{Error, Vault};
use cairn_proto::VaultId;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

/// Low-level access to a vault: raw keys and sealed chunks. Handle with care.
#[derive(Parser)]
#[command(name = "cairn-debug", version)]
struct Cli {
    /// The profile file written by `cairn login` (as for `cairn`).
    #[arg(long, global = true, env = "CAIRN_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the vault id and the unwrapped vault keys (hex, JSON).
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
    /// The vault: a local vault directory, or the name of an account vault.
    #[arg(long, value_name = "VAULT")]
    vault: PathBuf,
}

/// `keys`: the raw vault keys.
#[derive(Serialize)]
struct KeysJson {
    vault_id: VaultId,
    encryption_key: String,
    chunk_id_key: String,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The vault `v` names; these tools record no jobs, so its session goes.
fn vault_of(config: Option<&Path>, v: &Path) -> Result<Vault> {
    let opened = open::open(config, v)?;
    drop(opened.session);
    Ok(opened.vault)
}

fn run(cli: Cli) -> Result<()> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Keys(v) => {
            let vault = vault_of(config, &v.vault)?;
            let k = vault.keys();
            let keys = KeysJson {
                vault_id: vault.config().vault_id,
                encryption_key: hex::encode(k.encryption),
                chunk_id_key: hex::encode(k.chunk_id),
            };
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &serde_json::to_value(&keys)?)?;
            writeln!(out)?;
        }
        Command::CatRaw { vault, chunk_id } => {
            let vault = vault_of(config, &vault.vault)?;
            let id = chunk_id
                .parse()
                .map_err(|e| Error::Invalid(format!("{e}")))?;
            let raw = vault.raw_blob(id)?;
            std::io::stdout()
                .lock()
                .write_all(&raw)
                .context("write to stdout")?;
        }
    }
    Ok(())
}
