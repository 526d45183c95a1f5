//! Lock objects: how backups and prunes of one object vault keep out of
//! each other's way without a coordinator (the argument is in
//! `docs/FORMATS.md`, "Object vaults").
//!
//! A backup holds a shared lock, a prune an exclusive one, each an object
//! `locks/<kind>-<random>` (JSON: kind, owner, heartbeat time, expiry).
//! Whoever takes a lock first writes it, then lists the others: a prune
//! backs off when any other live lock exists, a backup when a live prune
//! lock exists. Since both write before they list (and the services are
//! read-after-write consistent), of a backup and a prune that overlap at
//! least one sees the other. The holder rewrites its lock every
//! `expiry / 6` (the heartbeat); a lock whose heartbeat is older than its
//! expiry belongs to a process that died and is ignored. A holder whose
//! heartbeat has not succeeded for half the expiry stops before its next
//! step that relies on the lock ([`HeldLock::check`]).
//!
//! The decisions ([`LockRecord::live`], [`conflict`]) are pure.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, RecvTimeoutError, Sender};
use serde::{Deserialize, Serialize};

use super::store::Objects;
use crate::error::{Error, Result};
use crate::fsmeta;
use crate::vault::backend::LockKind;

/// How long a lock lives without a heartbeat.
pub const EXPIRY: Duration = Duration::from_secs(30 * 60);

/// Lock format version.
const LOCK_FORMAT: u32 = 1;

/// A lock object's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    /// Format version (1).
    pub format: u32,
    /// Backup or prune.
    pub kind: LockKind,
    /// Who holds it: host name and process id.
    pub owner: String,
    /// When it was first written (Unix ms).
    pub created_ms: u64,
    /// The last heartbeat (Unix ms, the holder's clock).
    pub heartbeat_ms: u64,
    /// How long after its heartbeat the lock still counts (ms).
    pub expiry_ms: u64,
}

impl LockRecord {
    /// Whether the lock still counts at `now_ms` (its heartbeat is younger
    /// than its expiry; a heartbeat from the future, a clock ahead of ours,
    /// counts too).
    pub fn live(&self, now_ms: u64) -> bool {
        now_ms < self.heartbeat_ms.saturating_add(self.expiry_ms)
    }
}

/// The first of `others` (the locks besides one's own) that keeps a lock
/// of `kind` from being held at `now_ms`: for a prune any live lock, for
/// a backup a live prune lock.
pub fn conflict(kind: LockKind, others: &[LockRecord], now_ms: u64) -> Option<&LockRecord> {
    others
        .iter()
        .filter(|o| o.live(now_ms))
        .find(|o| kind == LockKind::Prune || o.kind == LockKind::Prune)
}

/// A lock this process holds; dropping it stops the heartbeat and
/// deletes the object.
pub struct HeldLock {
    kind: LockKind,
    objects: Arc<Objects>,
    key: String,
    /// Unix ms of the last heartbeat that was stored.
    stored_ms: Arc<AtomicU64>,
    expiry: Duration,
    stop: Option<Sender<()>>,
    beat: Option<std::thread::JoinHandle<()>>,
}

/// Milliseconds since the Unix epoch on this machine's clock.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl HeldLock {
    /// Takes a lock of `kind`, waiting up to `attempts × wait` for a
    /// conflicting one to go.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`] naming the holder when the conflict stays.
    pub fn take(
        objects: &Arc<Objects>,
        kind: LockKind,
        attempts: u32,
        wait: Duration,
    ) -> Result<Self> {
        let name = format!(
            "{}-{}",
            match kind {
                LockKind::Backup => "backup",
                LockKind::Prune => "prune",
            },
            hex::encode(rand::random::<[u8; 8]>())
        );
        let key = format!("locks/{name}");
        let now = unix_ms();
        let record = LockRecord {
            format: LOCK_FORMAT,
            kind,
            owner: format!("{} pid {}", fsmeta::hostname(), std::process::id()),
            created_ms: now,
            heartbeat_ms: now,
            expiry_ms: EXPIRY.as_millis() as u64,
        };
        let mut attempt = 1;
        loop {
            objects.write(&key, to_json(&record)?)?;
            let others = read_locks(objects, &name)?;
            let Some(holder) = conflict(kind, &others, unix_ms()).cloned() else {
                break;
            };
            objects.delete(&key)?;
            if attempt >= attempts {
                return Err(Error::Busy(format!(
                    "{}: a {} by {} holds the vault",
                    objects.url(),
                    match holder.kind {
                        LockKind::Backup => "backup",
                        LockKind::Prune => "prune",
                    },
                    holder.owner
                )));
            }
            attempt += 1;
            std::thread::sleep(wait);
        }
        Ok(Self::beating(objects.clone(), key, record))
    }

    /// Starts the heartbeat of a stored lock.
    fn beating(objects: Arc<Objects>, key: String, mut record: LockRecord) -> Self {
        let kind = record.kind;
        let expiry = Duration::from_millis(record.expiry_ms);
        let stored_ms = Arc::new(AtomicU64::new(record.heartbeat_ms));
        let (stop, stopped) = bounded::<()>(1);
        let beat = {
            let (objects, key, stored_ms) = (objects.clone(), key.clone(), stored_ms.clone());
            std::thread::Builder::new()
                .name("cairn-lock".into())
                .spawn(move || {
                    // Beats until told to stop (a message or the sender dropped).
                    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(expiry / 6) {
                        record.heartbeat_ms = unix_ms();
                        let ok = to_json(&record).and_then(|j| Ok(objects.write(&key, j)?));
                        if ok.is_ok() {
                            stored_ms.store(record.heartbeat_ms, Relaxed);
                        }
                    }
                })
                .ok()
        };
        Self {
            kind,
            objects,
            key,
            stored_ms,
            expiry,
            stop: Some(stop),
            beat,
        }
    }

    /// What the lock is for.
    pub fn kind(&self) -> LockKind {
        self.kind
    }

    /// Fails once the lock may have lapsed: its heartbeat has not been
    /// stored for half its expiry, so others may soon ignore it.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`]; the caller stops before relying on the lock.
    pub fn check(&self) -> Result<()> {
        let age = unix_ms().saturating_sub(self.stored_ms.load(Relaxed));
        if u128::from(age) >= self.expiry.as_millis() / 2 {
            return Err(Error::Busy(format!(
                "{}: this process's lock {} could not be renewed for {} s",
                self.objects.url(),
                self.key,
                age / 1000
            )));
        }
        Ok(())
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(b) = self.beat.take() {
            let _ = b.join();
        }
        // Best effort: an undeleted lock expires.
        let _ = self.objects.delete(&self.key);
    }
}

fn to_json(record: &LockRecord) -> Result<Vec<u8>> {
    serde_json::to_vec(record).map_err(|e| Error::Format(e.to_string()))
}

/// Every lock but `mine`; unreadable ones (a lock deleted while listed, a
/// damaged one) are skipped: a damaged lock protects nothing anyway.
fn read_locks(objects: &Objects, mine: &str) -> Result<Vec<LockRecord>> {
    let mut out = vec![];
    for name in objects.list("locks/")? {
        if name == mine || name.contains(super::store::TEMP_MARK) {
            continue;
        }
        if let Some(bytes) = objects.read(&format!("locks/{name}"))? {
            if let Ok(rec) = serde_json::from_slice::<LockRecord>(&bytes) {
                out.push(rec);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden fixture: a lock object of format 1 as its first build wrote
    /// it (docs/FORMATS.md) still reads, with every field.
    #[test]
    fn golden_lock_v1_reads() {
        let golden = include_bytes!("../../../tests/fixtures/object-lock-v1.json");
        let rec: LockRecord = serde_json::from_slice(golden).unwrap();
        assert_eq!(rec.format, 1);
        assert_eq!(rec.kind, LockKind::Prune);
        assert_eq!(rec.owner, "host-a pid 4242");
        assert_eq!(rec.created_ms, 1_767_000_000_000);
        assert_eq!(rec.heartbeat_ms, 1_767_000_300_000);
        assert_eq!(rec.expiry_ms, 1_800_000);
        assert!(rec.live(1_767_000_300_000 + 1_799_999));
        assert!(!rec.live(1_767_000_300_000 + 1_800_000));
    }

    fn lock(kind: LockKind, heartbeat_ms: u64) -> LockRecord {
        LockRecord {
            format: 1,
            kind,
            owner: "host pid 1".into(),
            created_ms: 0,
            heartbeat_ms,
            expiry_ms: 1000,
        }
    }

    #[test]
    fn a_prune_waits_for_everyone_a_backup_only_for_prunes() {
        let now = 10_000;
        let backup = lock(LockKind::Backup, now - 10);
        let prune = lock(LockKind::Prune, now - 10);
        let dead_prune = lock(LockKind::Prune, now - 1000);
        assert_eq!(
            conflict(LockKind::Prune, std::slice::from_ref(&backup), now),
            Some(&backup)
        );
        assert_eq!(
            conflict(LockKind::Backup, std::slice::from_ref(&backup), now),
            None
        );
        assert_eq!(
            conflict(LockKind::Backup, std::slice::from_ref(&prune), now),
            Some(&prune)
        );
        assert_eq!(
            conflict(LockKind::Prune, std::slice::from_ref(&prune), now),
            Some(&prune)
        );
        // An expired lock is a dead holder's: ignored by both.
        assert_eq!(
            conflict(LockKind::Backup, std::slice::from_ref(&dead_prune), now),
            None
        );
        assert_eq!(conflict(LockKind::Prune, &[dead_prune], now), None);
        // A heartbeat from a clock ahead of ours still counts.
        assert!(lock(LockKind::Prune, now + 5000).live(now));
    }

    #[test]
    fn lock_records_keep_their_format() {
        let json = r#"{"format":1,"kind":"prune","owner":"h pid 2","created_ms":5,"heartbeat_ms":6,"expiry_ms":7}"#;
        let rec: LockRecord = serde_json::from_str(json).unwrap();
        assert_eq!(rec.kind, LockKind::Prune);
        assert_eq!(serde_json::to_string(&rec).unwrap(), json);
    }
}
