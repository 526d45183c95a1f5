//! `backup --exclude-file` and `--files-from`: patterns and paths read from
//! files ([`cairn_client::pattern::lines`]) join those given as arguments.

use anyhow::{Context, Result};
use cairn_client::pattern::lines;

use super::args::BackupArgs;

/// Adds the patterns of every `--exclude-file` to `args.excludes` and the
/// paths of `--files-from` to `args.paths`.
pub fn read_into(args: &mut BackupArgs) -> Result<()> {
    for file in &args.exclude_files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("read --exclude-file {}", file.display()))?;
        args.excludes.extend(lines(&text));
    }
    if let Some(file) = &args.files_from {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("read --files-from {}", file.display()))?;
        args.paths.extend(lines(&text).into_iter().map(Into::into));
    }
    Ok(())
}
