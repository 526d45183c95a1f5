//! `cairn mount`: opens the vault, mounts its selected snapshots read-only
//! ([`cairn_client::mount`]) and waits for SIGINT/SIGTERM, or for someone
//! to unmount it, then unmounts and exits 0.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use cairn_client::mount::{self, SnapshotFs};
use serde::Serialize;

use super::args::{SelectArgs, VaultArg};
use super::interrupt;
use super::open::open;
use super::output::print_json;

/// Set by SIGINT/SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);

/// `cairn mount --json`: printed once the mount is ready.
#[derive(Serialize)]
struct MountedJson<'a> {
    /// The mount point.
    mountpoint: &'a Path,
    /// Snapshots shown under `snapshots/`.
    snapshots: usize,
}

/// `cairn mount --vault V [selection] MOUNTPOINT`.
pub fn mount(
    config: Option<&Path>,
    v: &VaultArg,
    select: &SelectArgs,
    mountpoint: &Path,
    json: bool,
) -> Result<u8> {
    let opened = open(config, &v.vault)?;
    let snapshots = opened.vault.snapshots_in(&select.filter())?;
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let count = snapshots.len();
    interrupt::stop_on_signal(&STOP);
    let fs = SnapshotFs::new(opened.vault, &snapshots, uid, gid);
    let session = mount::mount(fs, mountpoint)?;
    if json {
        print_json(&MountedJson {
            mountpoint,
            snapshots: count,
        })?;
    } else {
        eprintln!(
            "{count} snapshot(s) mounted read-only at {}; Ctrl-C to unmount",
            mountpoint.display()
        );
    }
    while !STOP.load(Ordering::SeqCst) && !session.guard.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    if session.guard.is_finished() {
        session.join()?;
    } else {
        session.umount_and_join()?;
    }
    Ok(0)
}
