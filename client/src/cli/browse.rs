//! The commands that look into snapshots without restoring them: `dump`,
//! `find`, `diff` and `stats` (the work is `cairn_client::browse` and
//! `cairn_client::dump`).

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use cairn_client::pattern::Patterns;
use cairn_client::{browse as lib, dump as libdump};

use super::args::{SelectArgs, VaultArg};
use super::commands::find_snapshot;
use super::open::open;
use super::output::print_json;
use super::progress::bytes;

/// `cairn dump`: a file's bytes, or a directory as tar, on stdout.
pub fn dump(
    config: Option<&Path>,
    v: &VaultArg,
    select: &SelectArgs,
    spec: &str,
    path: &Path,
) -> Result<u8> {
    let opened = open(config, &v.vault)?;
    let snap = find_snapshot(&opened, select, spec)?;
    let mut out = Stdout {
        inner: std::io::stdout().lock(),
        closed: false,
    };
    match libdump::dump(&opened.vault, &snap, path, &mut out).and_then(|()| {
        out.flush()
            .map_err(|e| cairn_client::Error::io("write", Path::new("stdout"), e))
    }) {
        // The reader went away (`cairn dump … | head`): nothing left to do.
        Err(_) if out.closed => Ok(0),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(0),
    }
}

/// Stdout that remembers whether its reader went away.
struct Stdout<'a> {
    inner: std::io::StdoutLock<'a>,
    closed: bool,
}

impl Write for Stdout<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.inner.write(buf);
        self.note(r)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.inner.flush();
        self.note(r)
    }
}

impl Stdout<'_> {
    fn note<T>(&mut self, r: std::io::Result<T>) -> std::io::Result<T> {
        if r.as_ref()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
        {
            self.closed = true;
        }
        r
    }
}

/// `cairn find`.
pub fn find(
    config: Option<&Path>,
    v: &VaultArg,
    select: &SelectArgs,
    patterns: &[String],
    json: bool,
) -> Result<u8> {
    let opened = open(config, &v.vault)?;
    let snaps = opened.vault.snapshots_in(&select.filter())?;
    let patterns = Patterns::new(patterns, "find")?;
    let found = lib::find(&opened.vault, &snaps, &patterns)?;
    if json {
        print_json(&found)?;
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    let zone = super::zone::get();
    for m in &found {
        writeln!(
            out,
            "snapshot {} of {} at {}:",
            &m.id.to_hex()[..8],
            m.device,
            super::account::local(&m.time)
        )?;
        for l in &m.matches {
            writeln!(out, "  {}", l.long(&zone))?;
        }
    }
    Ok(0)
}

/// `cairn diff`.
pub fn diff(
    config: Option<&Path>,
    v: &VaultArg,
    select: &SelectArgs,
    specs: [&str; 2],
    json: bool,
) -> Result<u8> {
    let opened = open(config, &v.vault)?;
    let a = find_snapshot(&opened, select, specs[0])?;
    let b = find_snapshot(&opened, select, specs[1])?;
    let vault = &opened.vault;
    let d = lib::diff(&|id| vault.tree(id), a.root, b.root)?;
    if json {
        print_json(&d)?;
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    for (sign, list) in [("-", &d.removed), ("+", &d.added), ("M", &d.modified)] {
        for p in list {
            writeln!(out, "{sign}  {p}")?;
        }
    }
    writeln!(
        out,
        "{} → {}: {} added, {} removed, {} modified",
        a.short_id(),
        b.short_id(),
        d.added.len(),
        d.removed.len(),
        d.modified.len()
    )?;
    Ok(0)
}

/// `cairn stats`.
pub fn stats(
    config: Option<&Path>,
    v: &VaultArg,
    select: &SelectArgs,
    spec: Option<&str>,
    json: bool,
) -> Result<u8> {
    let opened = open(config, &v.vault)?;
    let snaps = match spec {
        Some(spec) => vec![find_snapshot(&opened, select, spec)?],
        None => opened.vault.snapshots_in(&select.filter())?,
    };
    let s = lib::stats(&opened.vault, &snaps)?;
    if json {
        print_json(&s)?;
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "snapshots:       {}", s.snapshots)?;
    writeln!(out, "files:           {}", s.files)?;
    writeln!(out, "directories:     {}", s.dirs)?;
    writeln!(out, "restore size:    {}", bytes(s.restore_bytes))?;
    writeln!(
        out,
        "unique data:     {} in {} chunks",
        bytes(s.unique_bytes),
        s.unique_chunks
    )?;
    if let Some(stored) = s.stored_bytes {
        writeln!(
            out,
            "stored:          {} (compressed, encrypted)",
            bytes(stored)
        )?;
    }
    writeln!(out, "dedup ratio:     {:.2}", s.dedup_ratio)?;
    Ok(0)
}
