//! `cairnd-debug`: offline tools for tests and incident drills, run on a
//! stopped node's data directory. Not part of the production `cairnd`
//! (they damage data on purpose) and not installed by the scripts; the
//! tests use it from the build directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cairn_chunkstore::{ChunkKey, RocksStore, StoreOptions};
use cairn_node::config::DataDir;
use cairn_node::storage::open_on_objects;
use clap::{Parser, Subcommand};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "cairnd-debug",
    version,
    about = "Offline tools for tests and incident drills (on a stopped node's data directory)"
)]
struct Cli {
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Flip bytes of one stored copy of a chunk (its checksum record is kept, so reads detect it).
    CorruptReplica {
        /// Data directory of the stopped node.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Vault id (hex).
        #[arg(long, value_name = "HEX")]
        vault: String,
        /// Chunk id (hex).
        #[arg(long, value_name = "HEX")]
        chunk: String,
        /// The node's `--chunk-store` URL when its values live in an object
        /// store (credentials from the same variables as `cairnd serve`).
        #[arg(long, value_name = "URL")]
        chunk_store: Option<String>,
    },
}

/// Why a tool failed: a usage error (exit code 2) or anything else (1).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Other(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = match cli.command {
        Command::CorruptReplica {
            data_dir,
            vault,
            chunk,
            chunk_store,
        } => corrupt_replica(&data_dir, &vault, &chunk, chunk_store.as_deref(), cli.json),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cairnd-debug: {e}");
            ExitCode::from(match e {
                Failure::Usage(_) => 2,
                Failure::Other(_) => 1,
            })
        }
    }
}

/// What `corrupt-replica` did.
#[derive(Serialize)]
struct Corrupted {
    vault: String,
    chunk: String,
    store: PathBuf,
}

/// `cairnd-debug corrupt-replica`: damages this node's copy of one chunk
/// (the object itself on a cloud-backed node).
fn corrupt_replica(
    data_dir: &Path,
    vault: &str,
    chunk: &str,
    chunk_store: Option<&str>,
    json: bool,
) -> Result<(), Failure> {
    let vault: cairn_proto::VaultId = vault.parse().map_err(|_| {
        Failure::Usage(format!(
            "--vault {vault:?} is not a vault id (32 hex digits)"
        ))
    })?;
    let chunk: cairn_proto::ChunkId = chunk.parse().map_err(|_| {
        Failure::Usage(format!(
            "--chunk {chunk:?} is not a chunk id (64 hex digits)"
        ))
    })?;
    let path = DataDir::new(data_dir).chunks();
    let options = StoreOptions::default();
    let store = match chunk_store {
        None => RocksStore::open(&path, &options),
        Some(url) => open_on_objects(url, &path, &options),
    }
    .map_err(|e| {
        if e.is_locked() {
            Failure::Other(format!(
                "{}: the node is running; stop it first",
                path.display()
            ))
        } else {
            Failure::Other(e.to_string())
        }
    })?;
    let found = store
        .damage_value(&ChunkKey::new(vault, chunk))
        .map_err(|e| Failure::Other(e.to_string()))?;
    if !found {
        return Err(Failure::Other(format!(
            "{} holds no copy of chunk {chunk} of vault {vault}",
            path.display()
        )));
    }
    let done = Corrupted {
        vault: vault.to_hex(),
        chunk: chunk.to_hex(),
        store: path,
    };
    if json {
        let text =
            serde_json::to_string_pretty(&done).map_err(|e| Failure::Other(e.to_string()))?;
        println!("{text}");
    } else {
        println!(
            "damaged the copy of chunk {} (vault {}) in {}",
            done.chunk,
            done.vault,
            done.store.display()
        );
    }
    Ok(())
}
