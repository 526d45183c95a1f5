//! `cairn repair`: heal a vault's lost chunks from a source, and say what
//! stays damaged.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::Result;
use cairn_client::repair::{self, RepairOptions};

use super::args::RepairArgs;
use super::open::open;
use super::output::print_json;
use super::progress::{load, Spinner};

/// `cairn repair`: exit 0 when the vault is sound afterwards, 4 while a
/// snapshot stays damaged.
pub fn repair(config: Option<&Path>, args: RepairArgs, json: bool) -> Result<u8> {
    let opened = open(config, &args.vault.vault)?;
    let done = Arc::new(AtomicU64::new(0));
    let spinner = {
        let done = done.clone();
        Spinner::start(!json, move |_| format!("verified {} chunks", load(&done)))
    };
    let opts = RepairOptions {
        sources: args
            .sources
            .iter()
            .map(|p| cairn_client::fsmeta::expand_tilde(p))
            .collect(),
        forget_unhealed: args.forget_unhealed,
    };
    let report = repair::run(&opened.vault, &opts, &done)?;
    drop(spinner);
    if json {
        print_json(&report)?;
    } else {
        for id in &report.healed {
            println!("healed chunk {id}");
        }
        for p in &report.after.problems {
            eprintln!("problem: {p}");
        }
        for id in &report.after.affected_snapshots {
            let what = if report.forgotten.contains(id) {
                "forgotten"
            } else {
                "still damaged"
            };
            eprintln!("snapshot {id}: {what}");
        }
        println!(
            "{} lost chunk(s) found, {} healed from {} source file(s); {} snapshot(s) damaged{}",
            report.damaged_chunks.len(),
            report.healed.len(),
            report.files_read,
            report.after.affected_snapshots.len(),
            if report.forgotten.is_empty() {
                String::new()
            } else {
                format!(", {} forgotten (run `cairn prune`)", report.forgotten.len())
            }
        );
    }
    Ok(if report.is_clean() { 0 } else { 4 })
}
