//! Shell completions and man pages, generated from the clap definitions
//! ([`super::args`]) so they never disagree with `--help`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use super::args::Cli;
use super::output::print_json;

/// `cairn completions SHELL`: the script on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<u8> {
    let mut script = vec![];
    clap_complete::generate(shell, &mut Cli::command(), "cairn", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(0)
}

/// `cairn man --dir DIR`: cairn.1 and cairn-COMMAND.1 for every command.
pub fn man(dir: &Path, json: bool) -> Result<u8> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("write man pages into {}", dir.display()))?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cairn") && n.ends_with(".1"))
        .collect();
    pages.sort();
    if json {
        print_json(&pages)?;
    } else {
        println!("wrote {} man page(s) into {}", pages.len(), dir.display());
    }
    Ok(0)
}
