//! The license authority's durable state: one RocksDB database under its
//! data directory, one JSON [`SerialRecord`] per serial, every change one
//! synced write. Operations run one at a time (a mutex) so a grant's
//! check and write are atomic; the decisions are [`super::policy`]'s.

use std::path::Path;
use std::sync::Mutex;

use rocksdb::{IteratorMode, Options, WriteOptions, DB};

use super::policy::{self, Granted, Refusal, SerialRecord, Telemetry};
use crate::error::NodeError;

/// Why an authority operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// No such serial.
    #[error("unknown serial")]
    UnknownSerial,
    /// The policy refused.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The database failed.
    #[error("license store: {0}")]
    Store(String),
}

/// The authority's serials.
pub struct AuthorityStore {
    db: Mutex<DB>,
}

fn store_error(e: impl std::fmt::Display) -> AuthorityError {
    AuthorityError::Store(e.to_string())
}

impl AuthorityStore {
    /// Opens (creating) the database at `path`.
    ///
    /// # Errors
    ///
    /// RocksDB cannot open it (e.g. another process holds it).
    pub fn open(path: &Path) -> Result<Self, NodeError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        let db = DB::open(&opts, path)
            .map_err(|e| NodeError::Config(format!("license store {}: {e}", path.display())))?;
        Ok(Self { db: Mutex::new(db) })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&DB) -> Result<T, AuthorityError>,
    ) -> Result<T, AuthorityError> {
        let db = self.db.lock().map_err(store_error)?;
        f(&db)
    }

    fn load(db: &DB, serial: &str) -> Result<Option<SerialRecord>, AuthorityError> {
        match db.get(serial.as_bytes()).map_err(store_error)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(store_error),
            None => Ok(None),
        }
    }

    fn save(db: &DB, rec: &SerialRecord) -> Result<(), AuthorityError> {
        let bytes = serde_json::to_vec(rec).map_err(store_error)?;
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        db.put_opt(rec.serial.as_bytes(), bytes, &sync)
            .map_err(store_error)
    }

    /// Issues `serial` to `customer` unless it exists (the embedded dev
    /// authority's fixed serial); answers the record.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn ensure(
        &self,
        serial: &str,
        customer: &str,
        now: u64,
    ) -> Result<SerialRecord, AuthorityError> {
        self.with(|db| {
            if let Some(rec) = Self::load(db, serial)? {
                return Ok(rec);
            }
            let rec = SerialRecord {
                serial: serial.to_owned(),
                customer: customer.to_owned(),
                created_at: now,
                last_token: 0,
                holder: None,
                telemetry: None,
                history: Vec::new(),
            };
            Self::save(db, &rec)?;
            Ok(rec)
        })
    }

    /// Issues a new random serial to `customer`.
    ///
    /// # Errors
    ///
    /// The database failed.
    pub fn create(&self, customer: &str, now: u64) -> Result<SerialRecord, AuthorityError> {
        let raw = hex::encode_upper(rand::random::<[u8; 10]>());
        let serial = raw
            .as_bytes()
            .chunks(5)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-");
        self.ensure(&serial, customer, now)
    }

    /// Runs a policy step on `serial`'s record, keeping `telemetry`, and
    /// saves it when the step succeeded.
    fn step(
        &self,
        serial: &str,
        telemetry: Telemetry,
        now: u64,
        f: impl FnOnce(&mut SerialRecord) -> Result<Granted, Refusal>,
    ) -> Result<Granted, AuthorityError> {
        self.with(|db| {
            let mut rec = Self::load(db, serial)?.ok_or(AuthorityError::UnknownSerial)?;
            let granted = f(&mut rec)?;
            rec.telemetry = Some(Telemetry {
                reported_at: now,
                ..telemetry
            });
            Self::save(db, &rec)?;
            Ok(granted)
        })
    }

    /// A cluster asks for the lease ([`policy::acquire`]).
    ///
    /// # Errors
    ///
    /// Unknown serial, the policy's refusal, the database.
    pub fn acquire(
        &self,
        serial: &str,
        cluster_id: &str,
        telemetry: Telemetry,
        now: u64,
        lease_ms: u64,
    ) -> Result<Granted, AuthorityError> {
        self.step(serial, telemetry, now, |rec| {
            policy::acquire(rec, cluster_id, now, lease_ms)
        })
    }

    /// The holder renews ([`policy::renew`]).
    ///
    /// # Errors
    ///
    /// Unknown serial, the policy's refusal, the database.
    pub fn renew(
        &self,
        serial: &str,
        cluster_id: &str,
        token: u64,
        telemetry: Telemetry,
        now: u64,
        lease_ms: u64,
    ) -> Result<Granted, AuthorityError> {
        self.step(serial, telemetry, now, |rec| {
            policy::renew(rec, cluster_id, token, now, lease_ms)
        })
    }

    /// Releases a serial early ([`policy::relax`]); answers whether a
    /// running lease ended.
    ///
    /// # Errors
    ///
    /// Unknown serial, the database.
    pub fn relax(&self, serial: &str, now: u64) -> Result<bool, AuthorityError> {
        self.with(|db| {
            let mut rec = Self::load(db, serial)?.ok_or(AuthorityError::UnknownSerial)?;
            let live = policy::relax(&mut rec, now);
            Self::save(db, &rec)?;
            Ok(live)
        })
    }

    /// Every serial, in serial order.
    ///
    /// # Errors
    ///
    /// The database failed or holds an unreadable record.
    pub fn list(&self) -> Result<Vec<SerialRecord>, AuthorityError> {
        self.with(|db| {
            db.iterator(IteratorMode::Start)
                .map(|item| {
                    let (_, value) = item.map_err(store_error)?;
                    serde_json::from_slice(&value).map_err(store_error)
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_survive_a_reopen_and_tokens_keep_growing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let serial = {
            let store = AuthorityStore::open(&path).expect("open");
            let rec = store.create("acme", 0).expect("create");
            let g = store
                .acquire(&rec.serial, "a", Telemetry::default(), 0, 1_000)
                .expect("grant");
            assert_eq!(g.fencing_token, 1);
            rec.serial
        };
        let store = AuthorityStore::open(&path).expect("reopen");
        assert!(matches!(
            store.acquire(&serial, "b", Telemetry::default(), 500, 1_000),
            Err(AuthorityError::Refused(Refusal::Held { .. }))
        ));
        let t = Telemetry {
            accounts: 3,
            ..Telemetry::default()
        };
        let g = store
            .acquire(&serial, "b", t, 1_000, 1_000)
            .expect("ran out");
        assert_eq!(g.fencing_token, 2);
        let listed = store.list().expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].telemetry.as_ref().map(|t| t.accounts), Some(3));
        assert!(matches!(
            store.acquire("nope", "a", Telemetry::default(), 0, 1),
            Err(AuthorityError::UnknownSerial)
        ));
    }
}
