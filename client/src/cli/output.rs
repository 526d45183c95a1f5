//! What `cairn` prints: with `--json`, one JSON document rendered from the
//! library's `Serialize` reports (keys sorted, as `serde_json` maps keep
//! them); otherwise lines for people. Notes, warnings and problems go to
//! stderr either way.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use cairn_client::backup::BackupReport;
use cairn_client::check::CheckReport;
use cairn_client::crypto::VaultKeys;
use cairn_client::forget::ForgetReport;
use cairn_client::prune::PruneReport;
use cairn_client::remote::Profile;
use cairn_client::restore::RestoreReport;
use cairn_client::snapshot::{SnapshotRecord, SnapshotStats};
use cairn_proto::{AccountId, ChunkId, DeviceId, SnapshotId, VaultId};
use serde::Serialize;

use super::progress::bytes;

/// How much the process says, set once by `main`: -1 for `--quiet` (no
/// progress display and no notes; results, warnings and errors are still
/// printed), 0 by default, 1 and 2 for `-v` and `-vv`.
static VERBOSITY: std::sync::OnceLock<i8> = std::sync::OnceLock::new();

/// Sets `--quiet` or the number of `-v`s for the process (the first call
/// wins).
pub fn set_verbosity(quiet: bool, verbose: u8) {
    let level = if quiet {
        -1
    } else {
        i8::try_from(verbose).unwrap_or(i8::MAX)
    };
    let _ = VERBOSITY.set(level);
}

/// Whether `--quiet` was given.
pub fn quiet() -> bool {
    VERBOSITY.get().is_some_and(|&v| v < 0)
}

/// How many `-v`s were given (0 under `--quiet`).
pub fn verbosity() -> u8 {
    VERBOSITY.get().map_or(0, |&v| u8::try_from(v).unwrap_or(0))
}

/// A table for human output with these column headers: columns as wide
/// as their longest cell (a long device name or path widens its column
/// instead of shifting the ones after it), no borders, two spaces apart.
pub fn table(headers: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_header(headers.to_vec());
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    t
}

/// A table's lines without trailing blanks.
pub fn table_text(t: &comfy_table::Table) -> String {
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints `value` as one pretty JSON document with sorted keys.
pub fn print_json(value: &impl Serialize) -> Result<()> {
    let value = serde_json::to_value(value)?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &value)?;
    writeln!(out)?;
    Ok(())
}

/// `cairn login`: the profile written, without its token.
#[derive(Serialize)]
pub struct LoginJson<'a> {
    user: &'a str,
    account: AccountId,
    device: DeviceId,
    device_name: &'a str,
    servers: &'a [String],
    profile: &'a Path,
}

impl<'a> LoginJson<'a> {
    /// The profile `p`, written to `path`.
    pub fn new(p: &'a Profile, path: &'a Path) -> Self {
        Self {
            user: &p.user,
            account: p.account,
            device: p.device,
            device_name: &p.device_name,
            servers: &p.servers,
            profile: path,
        }
    }
}

/// `cairn logout`.
#[derive(Serialize)]
pub struct LogoutJson {
    /// Always true: the profile is gone.
    pub logged_out: bool,
    /// Whether the cluster confirmed the revocation.
    pub token_revoked: bool,
}

/// `cairn item remove`.
#[derive(Serialize)]
pub struct RemovedJson<'a> {
    /// The item removed.
    pub removed: &'a str,
}

/// `cairn vault delete`.
#[derive(Serialize)]
pub struct DeletedJson<'a> {
    /// The vault deleted.
    pub deleted: super::account::VaultJson<'a>,
}

/// `cairn vault init`.
#[derive(Serialize)]
pub struct CreatedJson<'a> {
    /// The new vault's id.
    pub id: VaultId,
    /// Its directory.
    pub path: &'a Path,
}

/// `cairn key passwd` (the account password).
#[derive(Serialize)]
pub struct AccountPasswordJson {
    /// Always true.
    pub changed: bool,
    /// Account vaults whose keys were re-wrapped.
    pub vaults_rewrapped: usize,
}

/// `cairn prune`: the report under the mode it ran in.
#[derive(Serialize)]
pub struct PruneJson<'a> {
    /// Whether nothing was deleted.
    pub dry_run: bool,
    /// What was (or would be) deleted.
    pub report: &'a PruneReport,
}

/// One line of `cairn snapshots --json`: the record and its sealed paths.
#[derive(Serialize)]
pub struct SnapshotJson<'a> {
    id: SnapshotId,
    time: &'a str,
    finished: &'a str,
    device: &'a str,
    item: Option<&'a str>,
    root: ChunkId,
    stats: &'a SnapshotStats,
    paths: Option<Vec<String>>,
    tags: Option<Vec<String>>,
}

impl<'a> SnapshotJson<'a> {
    /// `s`, with its paths when `keys` open its metadata.
    pub fn new(s: &'a SnapshotRecord, keys: &VaultKeys) -> Self {
        let meta = s.open_meta(keys).ok();
        Self {
            id: s.id,
            time: &s.time,
            finished: &s.finished,
            device: &s.device,
            item: s.item.as_deref(),
            root: s.root,
            stats: &s.stats,
            paths: meta.as_ref().map(|m| m.paths.clone()),
            tags: meta.map(|m| m.tags),
        }
    }
}

/// Prints a backup's notes and warnings (stderr) and, without `json`, its
/// summary line.
pub fn backup(report: &BackupReport, json: bool, incomplete_code: u8) -> Result<()> {
    for n in report.notes.iter().filter(|_| !quiet()) {
        eprintln!("note: {n}");
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for c in &report.changed_during_read {
        eprintln!("warning: {c} changed while it was read; the snapshot holds the bytes as read");
    }
    if json {
        return print_json(report);
    }
    for line in backup_summary(report) {
        println!("{line}");
    }
    if !report.warnings.is_empty() {
        let n = report.warnings.len();
        println!(
            "incomplete: {n} {} skipped (listed above), exit code {incomplete_code}",
            if n == 1 { "file" } else { "files" }
        );
    }
    Ok(())
}

/// The human summary of a backup: the snapshot, files new, changed and
/// unmodified against the parent (named), dirs, bytes added and stored.
fn backup_summary(report: &BackupReport) -> [String; 3] {
    let s = &report.snapshot;
    let c = &report.changes;
    let parent = report.parent.map_or_else(
        || "no parent".to_string(),
        |p| format!("parent {}", &p.to_hex()[..8]),
    );
    [
        format!(
            "snapshot {} saved: {} files, {} dirs, {} in {:.2}s",
            s.short_id(),
            s.stats.files,
            s.stats.dirs,
            bytes(s.stats.bytes),
            report.seconds
        ),
        format!(
            "files: {} new, {} changed, {} unmodified ({parent})",
            c.new, c.changed, c.unmodified
        ),
        format!(
            "added: {} in {} new chunks, {} stored",
            bytes(s.stats.new_bytes),
            s.stats.new_chunks,
            bytes(s.stats.stored_bytes)
        ),
    ]
}

/// Prints a restore's outcome; what was kept, deleted or could not be
/// restored goes to stderr.
pub fn restore(report: &RestoreReport, short_id: &str, json: bool) -> Result<()> {
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let would = if report.dry_run { "would be " } else { "" };
    for k in &report.kept {
        eprintln!("kept: {k}");
    }
    for d in &report.deleted {
        eprintln!("{would}deleted: {d}");
    }
    if json {
        print_json(report)?;
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{} snapshot {} to {}: {} files, {} dirs, {} ({} replaced, {} unchanged, {} kept, {} deleted) in {:.2}s",
            if report.dry_run { "would restore" } else { "restored" },
            short_id,
            report.target.display(),
            report.files,
            report.dirs,
            bytes(report.bytes),
            report.replaced,
            report.unchanged,
            report.kept.len(),
            report.deleted.len(),
            report.seconds
        )?;
        if !report.kept.is_empty() {
            writeln!(
                out,
                "{} existing path(s) {would}kept as they are (listed above); --overwrite always replaces them",
                report.kept.len()
            )?;
        }
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
    } else if !report.failed.is_empty() {
        eprintln!(
            "error: {} file(s) could not be written",
            report.failed.len()
        );
    }
    Ok(())
}

/// Prints what `check` found.
pub fn check(report: &CheckReport, read_data: bool, json: bool) -> Result<()> {
    if json {
        return print_json(report);
    }
    for p in &report.problems {
        eprintln!("problem: {p}");
    }
    for f in &report.damaged_files {
        eprintln!("affected file: {f}");
    }
    for s in &report.affected_snapshots {
        eprintln!("affected snapshot: {s}");
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
    Ok(())
}

/// Prints what `forget` did (or would do).
pub fn forget(report: &ForgetReport, json: bool) -> Result<()> {
    if json {
        return print_json(report);
    }
    let verb = if report.dry_run {
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
    Ok(())
}

/// Prints what `prune` deleted (or would delete); an account vault's
/// sweep reports chunks kept for a concurrent backup instead of bytes.
pub fn prune(report: &PruneReport, dry_run: bool, account: bool, json: bool) -> Result<()> {
    if json {
        return print_json(&PruneJson { dry_run, report });
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    if account {
        println!(
            "{verb} {} unreferenced chunks ({} kept: a backup used them meanwhile); \
             {} chunks of {} snapshots kept",
            report.deleted_chunks, report.kept_recently_used, report.live_chunks, report.snapshots
        );
    } else {
        println!(
            "{verb} {} unreferenced chunks ({}); {} chunks of {} snapshots kept",
            report.deleted_chunks,
            bytes(report.deleted_bytes),
            report.live_chunks,
            report.snapshots
        );
    }
    Ok(())
}

/// Prints the snapshot list.
pub fn snapshots(snaps: &[SnapshotRecord], keys: &VaultKeys, json: bool) -> Result<()> {
    if json {
        let list: Vec<_> = snaps.iter().map(|s| SnapshotJson::new(s, keys)).collect();
        return print_json(&list);
    }
    let mut t = table(&[
        "id", "time", "device", "item", "files", "size", "paths", "tags",
    ]);
    for s in snaps {
        let (paths, tags) = s.open_meta(keys).map_or_else(
            |e| (e.to_string(), String::new()),
            |m| (m.paths.join(" "), m.tags.join(",")),
        );
        t.add_row(vec![
            s.short_id(),
            super::account::local(&s.time),
            s.device.clone(),
            s.item.clone().unwrap_or_else(|| "-".into()),
            s.stats.files.to_string(),
            bytes(s.stats.bytes),
            paths,
            tags,
        ]);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", table_text(&t))?;
    writeln!(out, "{} snapshot(s)", snaps.len())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_cell_widens_its_column_and_keeps_the_others_aligned() {
        let mut t = table(&["id", "device", "size"]);
        t.add_row(vec!["a1", "laptop", "1 KiB"]);
        t.add_row(vec!["b2", "a-device-with-a-very-long-name", "2 KiB"]);
        let text = table_text(&t);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let col = |l: &str| l.find("KiB").or_else(|| l.find("size"));
        assert_eq!(col(lines[1]).map(|c| c - 2), col(lines[0]), "{text}");
        assert_eq!(col(lines[1]), col(lines[2]), "{text}");
        assert!(lines.iter().all(|l| !l.ends_with(' ')), "{text}");
    }
}
