//! The state machine: openraft's [`RaftStateMachine`] and
//! [`RaftSnapshotBuilder`], persisting [`State`] in the `state` column
//! family.
//!
//! Why persist the state and not only snapshots: a restart must not replay
//! the whole log, and must never present a state that disagrees with its
//! `last_applied`. Each `apply` call applies its entries in memory, then
//! writes the records they touched (see [`records`](super::records)),
//! `last_applied` and membership in one atomic `WriteBatch`. A crash at any
//! point leaves an earlier consistent set on disk, and openraft re-applies
//! whatever committed entries follow the persisted `last_applied`.
//!
//! That batch is not fsynced: the log is the durable record (every entry
//! is fsynced before it counts), so an apply lost in a crash is only applied
//! again, identically, from the log. What makes that always possible: the
//! log is purged only behind a snapshot, and a snapshot build is a synced
//! write, which makes every earlier apply durable, so the state on disk
//! never falls behind the purged part of the log. It saves one fsync
//! per applied batch on every node (no throughput change was measurable on
//! our 2-core machines, where the leader's log fsync dominates).
//!
//! The in-memory state sits behind an `Arc` that `apply` updates with
//! copy-on-write: a reader or snapshot build holding the previous version
//! keeps a consistent view, and the state is only copied when such a reader
//! is still holding it. If the write fails the store is poisoned and
//! openraft stops the node; the in-memory state then holds committed
//! entries that never reached disk, which is harmless because they are
//! committed in the log.
//!
//! Readers (the node's HTTP handlers) get a [`StateHandle`], a shared
//! read-only view that never blocks on disk IO.
//!
//! Snapshots are lazy. The persisted state already is a snapshot of
//! itself, so building one only makes the applies so far durable (one
//! synced write) and notes that one exists: O(1), where encoding the whole
//! state and writing it as one value cost seconds and hundreds of MB at a
//! few million records, stalled the runtime and brought spurious elections
//! under load (measured: 25 in a 10-minute soak of the Raft bench). The
//! bytes are encoded only when a lagging follower needs them, from the
//! state as it is then: a consistent state at an applied (so committed)
//! position at least as new as the last one built, which serves the
//! follower as well, and openraft advances the follower to the position of
//! the snapshot it sent. Keeping the built version instead would pin it,
//! and every node of the persistent maps an apply touches afterwards would
//! be copied once. After a restart there is no snapshot until openraft
//! builds one (it does so at once when the log has been purged).
//! Encoding, decoding and installing run on the blocking pool, so a large
//! state does not hold up a runtime worker (heartbeats, appends).

use std::collections::BTreeSet;
use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftLogId};
use rocksdb::WriteBatch;

use super::records::{self, KEY_LAST_APPLIED, KEY_MEMBERSHIP};
use super::{sto, Db, NoObserver, SnapshotObserver, CF_SNAPSHOT, CF_STATE};
use crate::apply::{apply, entry_requests, Outcome};
use crate::codec::{self, META_FORMAT, STATE_FORMAT};
use crate::error::{ConsensusError, Result};
use crate::event::Request;
use crate::state::State;
use crate::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

const KEY_SNAPSHOT_META: &[u8] = b"meta";
const KEY_SNAPSHOT_DATA: &[u8] = b"data";

/// The applied state together with its position in the log.
#[derive(Debug, Clone, Default)]
struct Applied {
    state: State,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

/// The RocksDB-backed state machine. Cheap to clone; clones share the data
/// (openraft uses a clone as the snapshot builder).
#[derive(Clone)]
pub struct StateMachineStore {
    db: Db,
    applied: Arc<RwLock<Arc<Applied>>>,
    /// Whether a snapshot was built or installed since this process opened
    /// the store (see the module doc: snapshots are not kept across
    /// restarts).
    has_snapshot: Arc<AtomicBool>,
    observer: Arc<dyn SnapshotObserver>,
}

/// A read-only view of the applied state, for request handlers.
#[derive(Clone)]
pub struct StateHandle {
    applied: Arc<RwLock<Arc<Applied>>>,
}

impl StateHandle {
    fn current(&self) -> Arc<Applied> {
        // Poisoning would mean `apply` panicked mid-batch (it has no
        // panicking paths by design); openraft then stops the node, and
        // readers may still look at what is there rather than panic too.
        self.applied
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs `f` on the current state. The state is a consistent snapshot:
    /// applies that finish meanwhile do not show up half-done.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.current().state)
    }

    /// The log id of the last applied entry.
    pub fn last_applied(&self) -> Option<LogId> {
        self.current().last_applied
    }

    /// The last applied membership.
    pub fn membership(&self) -> StoredMembership {
        self.current().membership.clone()
    }
}

impl StateMachineStore {
    /// Loads the persisted state (or an empty one for a new database).
    pub(crate) fn load(db: Db) -> Result<Self> {
        let state = records::load(&db, CF_STATE)?;
        let last_applied = match db.get(CF_STATE, KEY_LAST_APPLIED)? {
            Some(bytes) => codec::decode("last applied log id", META_FORMAT, &bytes)?,
            None => None,
        };
        let membership = match db.get(CF_STATE, KEY_MEMBERSHIP)? {
            Some(bytes) => codec::decode("membership", META_FORMAT, &bytes)?,
            None => StoredMembership::default(),
        };
        let applied = Applied {
            state,
            last_applied,
            membership,
        };
        Ok(Self {
            db,
            applied: Arc::new(RwLock::new(Arc::new(applied))),
            has_snapshot: Arc::new(AtomicBool::new(false)),
            observer: Arc::new(NoObserver),
        })
    }

    /// Reports snapshot builds and installs to `observer` from now on.
    pub(crate) fn set_observer(&mut self, observer: Arc<dyn SnapshotObserver>) {
        self.observer = observer;
    }

    /// A read-only handle on the applied state.
    pub fn handle(&self) -> StateHandle {
        StateHandle {
            applied: self.applied.clone(),
        }
    }

    /// The database's RocksDB statistics (shared with the log store).
    pub fn properties(&self) -> super::DbProperties {
        super::DbProperties(self.db.clone())
    }

    /// Whether an earlier write failed and the store refuses all operations.
    pub fn is_poisoned(&self) -> bool {
        self.db.is_poisoned()
    }

    fn current(&self) -> Arc<Applied> {
        self.handle().current()
    }

    fn publish(&self, next: Applied) {
        *self.applied.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
    }

    /// Stages `last_applied` and membership.
    fn stage_position(&self, batch: &mut WriteBatch, a: &Applied) -> Result<()> {
        let cf = self.db.cf(CF_STATE)?;
        batch.put_cf(
            cf,
            KEY_LAST_APPLIED,
            codec::encode("last applied log id", META_FORMAT, &a.last_applied)?,
        );
        batch.put_cf(
            cf,
            KEY_MEMBERSHIP,
            codec::encode("membership", META_FORMAT, &a.membership)?,
        );
        Ok(())
    }

    /// Stages the deletion of the snapshot an older build kept in the
    /// `snapshot` family (stale once this build runs; deleting absent keys
    /// costs a tombstone).
    fn stage_drop_stored_snapshot(&self, batch: &mut WriteBatch) -> Result<()> {
        let cf = self.db.cf(CF_SNAPSHOT)?;
        batch.delete_cf(cf, KEY_SNAPSHOT_META);
        batch.delete_cf(cf, KEY_SNAPSHOT_DATA);
        Ok(())
    }

    fn do_apply(&self, entries: impl IntoIterator<Item = Entry>) -> Result<Vec<Vec<Outcome>>> {
        self.db.check()?;
        let cf = self.db.cf(CF_STATE)?;
        let mut batch = WriteBatch::default();
        let mut outcomes = Vec::new();
        {
            let mut guard = self.applied.write().unwrap_or_else(PoisonError::into_inner);
            // Copies the state only if a reader still holds the previous version.
            let next = Arc::make_mut(&mut guard);
            let mut touched = BTreeSet::new();
            for entry in entries {
                next.last_applied = Some(*entry.get_log_id());
                let outcome = match &entry.payload {
                    EntryPayload::Blank => vec![Outcome::NoOp],
                    // Each request of a batch is applied (and its records
                    // found) against the state the ones before it left, as
                    // if it had its own entry.
                    EntryPayload::Normal(request) => entry_requests(request)
                        .map(|r| apply_request(&mut next.state, r, &mut touched, &entry.log_id))
                        .collect(),
                    EntryPayload::Membership(m) => {
                        next.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                        vec![Outcome::NoOp]
                    }
                };
                outcomes.push(outcome);
            }
            if outcomes.is_empty() {
                return Ok(outcomes);
            }
            for key in &touched {
                records::stage(&mut batch, cf, &next.state, key)?;
            }
            self.stage_position(&mut batch, next)?;
        }
        self.db.write_unsynced("persist applied state", batch)?;
        Ok(outcomes)
    }

    /// The meta of a snapshot of `a`. Its id is its position: apply is
    /// deterministic, so one position is one state, and a follower that
    /// receives a snapshot in chunks starts over exactly when the leader's
    /// state moved on between two requests for it.
    fn meta_of(a: &Applied) -> SnapshotMeta {
        let snapshot_id = match &a.last_applied {
            Some(l) => format!("{}-{}", l.leader_id, l.index),
            None => "none".to_string(),
        };
        SnapshotMeta {
            last_log_id: a.last_applied,
            last_membership: a.membership.clone(),
            snapshot_id,
        }
    }

    /// Builds a snapshot: one synced write makes every apply so far durable
    /// (and drops what an older build stored); nothing is encoded. The
    /// returned data is empty: openraft keeps only the meta of a built
    /// snapshot and asks [`Self::do_current_snapshot`] for the bytes.
    fn do_build_snapshot(&self) -> Result<Snapshot> {
        self.db.check()?;
        let started = Instant::now();
        let meta = Self::meta_of(&self.current());
        let mut batch = WriteBatch::default();
        self.stage_drop_stored_snapshot(&mut batch)?;
        self.db.write_synced("save snapshot", batch)?;
        self.has_snapshot.store(true, Ordering::Release);
        self.observer.snapshot_built(started.elapsed());
        tracing::info!(snapshot = %meta, "built snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(Vec::new())),
        })
    }

    fn do_install_snapshot(&self, meta: &SnapshotMeta, data: Vec<u8>) -> Result<()> {
        self.db.check()?;
        let started = Instant::now();
        // Decode first: a snapshot that does not decode changes nothing.
        let state = codec::decode_state(&data)?;
        let next = Applied {
            state,
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        let mut batch = WriteBatch::default();
        records::stage_all(&mut batch, self.db.cf(CF_STATE)?, &next.state)?;
        self.stage_position(&mut batch, &next)?;
        self.stage_drop_stored_snapshot(&mut batch)?;
        self.db.write_synced("install snapshot", batch)?;
        self.publish(next);
        self.has_snapshot.store(true, Ordering::Release);
        self.observer
            .snapshot_installed(data.len(), started.elapsed());
        tracing::info!(snapshot = %meta, bytes = data.len(), "installed snapshot");
        Ok(())
    }

    /// The current snapshot: the state as it is now, encoded (see the
    /// module doc), or none before the first build or install.
    fn do_current_snapshot(&self) -> Result<Option<Snapshot>> {
        self.db.check()?;
        if !self.has_snapshot.load(Ordering::Acquire) {
            return Ok(None);
        }
        let started = Instant::now();
        let current = self.current();
        let data = codec::encode("snapshot data", STATE_FORMAT, &current.state)?;
        let meta = Self::meta_of(&current);
        self.observer.snapshot_served(data.len(), started.elapsed());
        tracing::info!(snapshot = %meta, bytes = data.len(), "encoded snapshot");
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }

    /// Runs `f` on a clone of this store on the blocking pool: encoding,
    /// decoding and writing a whole state must not hold a runtime worker.
    async fn blocking<R: Send + 'static>(
        &self,
        subject: ErrorSubject<u64>,
        verb: ErrorVerb,
        f: impl FnOnce(&Self) -> Result<R> + Send + 'static,
    ) -> Result<R, StorageError> {
        let this = self.clone();
        match tokio::task::spawn_blocking(move || f(&this)).await {
            Ok(r) => r.map_err(|e| sto(subject, verb, e)),
            Err(e) => Err(sto(subject, verb, ConsensusError::Task(e.to_string()))),
        }
    }
}

/// Applies one request that is not a batch, adding the records it may
/// change to `touched` (found before it applies, against the same state).
fn apply_request(
    state: &mut State,
    request: &Request,
    touched: &mut BTreeSet<records::RecordKey>,
    log_id: &LogId,
) -> Outcome {
    touched.extend(records::touched(state, request));
    let outcome = apply(state, request);
    if let Outcome::Rejected(r) = &outcome {
        tracing::debug!(%log_id, kind = request.event.kind(), rejection = %r, "event rejected");
    }
    outcome
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        self.do_build_snapshot()
            .map_err(|e| sto(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let current = self.current();
        Ok((current.last_applied, current.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Outcome>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.do_apply(entries)
            .map_err(|e| sto(ErrorSubject::StateMachine, ErrorVerb::Write, e))
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let m = meta.clone();
        self.blocking(
            ErrorSubject::Snapshot(Some(meta.signature())),
            ErrorVerb::Write,
            move |sm| sm.do_install_snapshot(&m, data),
        )
        .await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        self.blocking(ErrorSubject::Snapshot(None), ErrorVerb::Read, |sm| {
            sm.do_current_snapshot()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};
    use proptest::prelude::*;

    use super::*;
    use crate::event::Event;
    use crate::testgen::{arb_event, requests};
    use crate::types::LogId;

    fn entries(reqs: Vec<crate::event::Request>) -> Vec<Entry> {
        reqs.into_iter()
            .enumerate()
            .map(|(i, r)| Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), i as u64 + 1),
                payload: EntryPayload::Normal(r),
            })
            .collect()
    }

    fn fail(e: impl std::fmt::Display) -> TestCaseError {
        TestCaseError::fail(e.to_string())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Whatever random events are applied, in whatever batch sizes,
        /// with a tiny dedup table (so evictions happen), reopening the
        /// store yields exactly the in-memory state: no touched record is
        /// left unwritten and no stale record survives.
        #[test]
        fn reloaded_state_equals_applied_state(
            events in proptest::collection::vec(arb_event(), 0..60),
            batch in 1usize..8,
            capacity in 1u32..6,
        ) {
            let dir = tempfile::tempdir().map_err(fail)?;
            let (expected, applied_to) = {
                let db = Db::open(dir.path()).map_err(fail)?;
                let sm = StateMachineStore::load(db).map_err(fail)?;
                // Start from a small dedup capacity so eviction is exercised.
                sm.publish(Applied { state: State::with_dedup_capacity(capacity), ..Applied::default() });
                let all = entries(requests(events));
                for chunk in all.chunks(batch) {
                    sm.do_apply(chunk.to_vec()).map_err(fail)?;
                }
                let current = sm.current();
                (current.state.clone(), current.last_applied)
            };
            let db = Db::open(dir.path()).map_err(fail)?;
            let reloaded = StateMachineStore::load(db).map_err(fail)?;
            let current = reloaded.current();
            prop_assert_eq!(&current.state, &expected);
            prop_assert_eq!(current.last_applied, applied_to);
        }

        /// Requests packed into batch entries (as the leader packs
        /// concurrent writes) end in the state and outcomes of the same
        /// requests one per entry, and that state survives a reopen: each
        /// request's records are found against the state its predecessors
        /// in the batch left. Duplicate ids inside a batch are deduplicated.
        #[test]
        fn batched_requests_apply_as_if_one_per_entry(
            events in proptest::collection::vec(arb_event(), 0..60),
            packed in 1usize..9,
            capacity in 1u32..6,
            repeat in any::<bool>(),
        ) {
            let mut reqs = requests(events);
            if repeat && reqs.len() > 2 {
                // A retried write lands in a later batch (or the same one).
                let again = reqs[reqs.len() / 2].clone();
                reqs.push(again);
            }
            let mut one_by_one = State::with_dedup_capacity(capacity);
            let expected_outcomes: Vec<Outcome> =
                reqs.iter().map(|r| apply(&mut one_by_one, r)).collect();
            let batches: Vec<Request> = reqs
                .chunks(packed)
                .enumerate()
                .map(|(i, chunk)| Request {
                    request_id: crate::ids::RequestId([0xba, i as u8, (i >> 8) as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                    event: Event::Batch(chunk.to_vec()),
                })
                .collect();
            let dir = tempfile::tempdir().map_err(fail)?;
            {
                let db = Db::open(dir.path()).map_err(fail)?;
                let sm = StateMachineStore::load(db).map_err(fail)?;
                sm.publish(Applied { state: State::with_dedup_capacity(capacity), ..Applied::default() });
                let outcomes = sm.do_apply(entries(batches)).map_err(fail)?;
                let flat: Vec<Outcome> = outcomes.into_iter().flatten().collect();
                prop_assert_eq!(&flat, &expected_outcomes);
                prop_assert_eq!(&sm.current().state, &one_by_one);
            }
            let db = Db::open(dir.path()).map_err(fail)?;
            let reloaded = StateMachineStore::load(db).map_err(fail)?;
            prop_assert_eq!(&reloaded.current().state, &one_by_one);
        }
    }

    /// A batch inside a batch, or inside an audit entry, is refused and
    /// changes nothing but the request log.
    #[test]
    fn nested_batches_are_rejected() {
        use crate::apply::{apply_entry, Rejection};
        let mut state = State::default();
        let inner = Request {
            request_id: crate::ids::RequestId([1; 16]),
            event: Event::Batch(vec![]),
        };
        let outer = Request {
            request_id: crate::ids::RequestId([2; 16]),
            event: Event::Batch(vec![inner]),
        };
        assert_eq!(
            apply_entry(&mut state, &outer),
            vec![Outcome::Rejected(Rejection::NestedBatch)]
        );
        let audited = Request {
            request_id: crate::ids::RequestId([3; 16]),
            event: Event::Audited {
                actor: crate::event::Actor::AdminToken { node: 1 },
                from: "test".into(),
                at: crate::ids::UnixMillis(1),
                event: Box::new(Event::Batch(vec![])),
            },
        };
        assert!(matches!(apply(&mut state, &audited), Outcome::Rejected(_)));
    }

    /// The job records that abandonment, retention and ended prunes change
    /// (many at once, beyond the one job an event names) reach the disk:
    /// reopening yields the state applied in memory.
    #[test]
    fn job_housekeeping_is_persisted() {
        use crate::apply::{BACKUP_JOB_ABANDONED_MS, MAX_FINISHED_JOBS_PER_ACCOUNT};
        use crate::event::{Event, JobKind, JobStatus};
        use crate::ids::{JobId, UnixMillis};
        use crate::testgen::{acc, backup_started, dev, vault};

        let start = |n: u8, kind, at| Event::JobStarted {
            job: JobId([n; 16]),
            device: dev(0),
            vault: Some(vault(0)),
            kind,
            at: UnixMillis(at),
        };
        let mut events = vec![
            backup_started(1, 0, 0, 100),
            start(2, JobKind::Prune, 110),
            Event::JobFinished {
                job: JobId([1; 16]),
                device: dev(0),
                status: JobStatus::Succeeded,
                log: "done".into(),
                at: UnixMillis(120),
            },
            start(3, JobKind::Restore, 130),
        ];
        for n in 0..MAX_FINISHED_JOBS_PER_ACCOUNT as u32 + 5 {
            let mut id = [0x90; 16];
            id[12..].copy_from_slice(&n.to_be_bytes());
            events.push(Event::DeviceLoggedIn {
                device: dev(0),
                account: acc(0),
                name: "a".into(),
                token_hash: vec![1; 32],
                job: JobId(id),
                from: "x".into(),
                at: UnixMillis(1_000 + u64::from(n)),
            });
        }
        events.push(start(4, JobKind::Check, 130 + BACKUP_JOB_ABANDONED_MS));
        let dir = tempfile::tempdir().expect("tempdir");
        let expected = {
            let sm = StateMachineStore::load(Db::open(dir.path()).expect("open")).expect("load");
            for entry in entries(requests(events)) {
                sm.do_apply(vec![entry]).expect("apply");
            }
            sm.current().state.clone()
        };
        let jobs = expected.jobs();
        assert!(!jobs.contains_key(&JobId([1; 16])), "trimmed");
        assert!(jobs[&JobId([2; 16])].finished.is_some(), "prune ended");
        assert!(jobs[&JobId([3; 16])].finished.is_some(), "abandoned");
        let reloaded = StateMachineStore::load(Db::open(dir.path()).expect("open")).expect("load");
        assert_eq!(reloaded.current().state, expected);
    }

    /// The observer hears of every snapshot built, served and installed,
    /// with the size of what was encoded.
    #[test]
    fn observer_sees_builds_serves_and_installs() {
        use std::sync::Mutex;
        use std::time::Duration;

        #[derive(Default)]
        struct Seen(Mutex<Vec<(&'static str, usize)>>);
        impl SnapshotObserver for Seen {
            fn snapshot_built(&self, _: Duration) {
                self.0.lock().expect("lock").push(("built", 0));
            }
            fn snapshot_served(&self, bytes: usize, _: Duration) {
                self.0.lock().expect("lock").push(("served", bytes));
            }
            fn snapshot_installed(&self, bytes: usize, _: Duration) {
                self.0.lock().expect("lock").push(("installed", bytes));
            }
        }

        let dir = tempfile::tempdir().expect("tempdir");
        let seen = Arc::new(Seen::default());
        let mut sm = StateMachineStore::load(Db::open(dir.path()).expect("open")).expect("load");
        sm.set_observer(seen.clone());
        sm.do_apply(entries(requests(Vec::new()))).expect("apply");
        sm.do_build_snapshot().expect("build");
        let snapshot = sm.do_current_snapshot().expect("current").expect("some");
        let data = snapshot.snapshot.into_inner();
        sm.do_install_snapshot(&snapshot.meta, data.clone())
            .expect("install");
        let seen = seen.0.lock().expect("lock").clone();
        assert_eq!(
            seen,
            vec![
                ("built", 0),
                ("served", data.len()),
                ("installed", data.len())
            ]
        );
    }

    /// No snapshot before the first build; after it, the current snapshot
    /// is the state as it is now, at its position, not as it was built.
    #[test]
    fn current_snapshot_is_the_state_now() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sm = StateMachineStore::load(Db::open(dir.path()).expect("open")).expect("load");
        let mut reqs = requests(Vec::new());
        let later = reqs.split_off(reqs.len() / 2);
        sm.do_apply(entries(reqs)).expect("apply");
        assert!(sm.do_current_snapshot().expect("current").is_none());
        let built = sm.do_build_snapshot().expect("build");
        assert_eq!(built.meta.last_log_id, sm.current().last_applied);
        let n = sm.current().last_applied.map_or(0, |l| l.index);
        let mut more = entries(later);
        for (i, e) in more.iter_mut().enumerate() {
            e.log_id.index = n + 1 + i as u64;
        }
        sm.do_apply(more).expect("apply later");
        let current = sm.do_current_snapshot().expect("current").expect("some");
        assert_eq!(current.meta.last_log_id, sm.current().last_applied);
        assert!(current.meta.last_log_id > built.meta.last_log_id);
        let decoded = codec::decode_state(current.snapshot.get_ref()).expect("decode");
        assert_eq!(decoded, sm.current().state);
    }

    /// A reopened store has no snapshot until one is built (openraft builds
    /// one at start when the log was purged), and a build drops the
    /// snapshot an older build stored in the `snapshot` family.
    #[test]
    fn snapshots_are_not_kept_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = Db::open(dir.path()).expect("open");
            let sm = StateMachineStore::load(db.clone()).expect("load");
            sm.do_apply(entries(requests(Vec::new()))).expect("apply");
            sm.do_build_snapshot().expect("build");
            // What an older build left.
            let mut batch = WriteBatch::default();
            let cf = db.cf(CF_SNAPSHOT).expect("cf");
            batch.put_cf(cf, KEY_SNAPSHOT_META, b"old meta");
            batch.put_cf(cf, KEY_SNAPSHOT_DATA, b"old data");
            db.write_synced("legacy", batch).expect("write");
        }
        let db = Db::open(dir.path()).expect("reopen");
        let sm = StateMachineStore::load(db.clone()).expect("reload");
        assert!(sm.do_current_snapshot().expect("current").is_none());
        sm.do_build_snapshot().expect("build");
        assert!(sm.do_current_snapshot().expect("current").is_some());
        for key in [KEY_SNAPSHOT_META, KEY_SNAPSHOT_DATA] {
            assert_eq!(db.get(CF_SNAPSHOT, key).expect("get"), None);
        }
    }

    /// A snapshot install replaces every record: records of the old state
    /// that the snapshot lacks do not come back after a restart.
    #[test]
    fn install_replaces_all_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut reqs = requests(Vec::new());
        let extra = reqs.split_off(4);
        {
            let sm = StateMachineStore::load(Db::open(dir.path()).expect("open")).expect("load");
            sm.do_apply(entries(reqs.iter().cloned().chain(extra).collect()))
                .expect("apply");
            // A snapshot of a smaller state (the first four requests only).
            let mut small = State::default();
            for r in &reqs {
                crate::apply::apply(&mut small, r);
            }
            let data = codec::encode("snapshot data", STATE_FORMAT, &small).expect("encode");
            let meta = SnapshotMeta {
                last_log_id: Some(LogId::new(CommittedLeaderId::new(2, 1), 100)),
                last_membership: StoredMembership::default(),
                snapshot_id: "s".into(),
            };
            sm.do_install_snapshot(&meta, data).expect("install");
            assert_eq!(sm.current().state, small);
        }
        let sm = StateMachineStore::load(Db::open(dir.path()).expect("open")).expect("reload");
        let mut small = State::default();
        for r in &reqs {
            crate::apply::apply(&mut small, r);
        }
        assert_eq!(sm.current().state, small);
        assert_eq!(sm.current().last_applied.map(|l| l.index), Some(100));
    }
}
