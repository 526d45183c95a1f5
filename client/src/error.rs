//! The client core's error type. Each variant carries what a user needs to
//! act and is a kind a caller can match; `cairn` maps the kinds onto its
//! exit codes (DESIGN.md §9: 1 error, 3 wrong password, 4 data integrity).

use std::io;
use std::path::Path;

/// Result alias for the client core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the backup core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The password does not open the vault keys.
    #[error("wrong password: it does not unlock this vault's keys")]
    WrongPassword,
    /// Stored data is missing, damaged or tampered with.
    #[error("data integrity error: {0}")]
    Integrity(String),
    /// Bytes that should be in one of our formats are not (or are a newer
    /// version than this build understands).
    #[error("format error: {0}")]
    Format(String),
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The chunk store failed (its object-store errors become
    /// [`Error::Auth`], [`Error::NotFound`], [`Error::Network`],
    /// [`Error::Integrity`] or [`Error::Invalid`] instead, see the `From`
    /// conversion, so exit codes do not depend on which crate spoke).
    #[error(transparent)]
    Store(cairn_chunkstore::Error),
    /// The request names something that does not exist or is ambiguous.
    #[error("{0}")]
    NotFound(String),
    /// The request is invalid as given.
    #[error("{0}")]
    Invalid(String),
    /// The server refused to delete chunks because a backup ran on the
    /// vault during the prune; a fresh prune (new mark) may succeed.
    #[error("{0}; nothing was deleted")]
    Busy(String),
    /// The server refused our credentials: wrong password at login, or a
    /// device token that was revoked or invalidated by a password change.
    #[error("{0}")]
    Auth(String),
    /// Too many failed logins; the server says when to try again.
    #[error("{}", rate_limited_text(message, *retry_after))]
    RateLimited {
        /// The server's explanation.
        message: String,
        /// Seconds to wait, from `Retry-After`.
        retry_after: Option<u64>,
    },
    /// The vault's tier quota would be exceeded.
    #[error("the vault is over its quota: {0}; nothing was committed (forget and prune old snapshots, or request a vault of a larger tier)")]
    QuotaExceeded(String),
    /// Every storage node of the vault's tier is down (`pool_unavailable`):
    /// backups to it fail until they return; vaults of other tiers work.
    #[error("the vault's storage is down: {0}; nothing was committed (retry when the cluster's storage nodes for this tier are back)")]
    PoolUnavailable(String),
    /// The server answered with an error this client has no better name for.
    #[error("server error {status} ({code}): {message}")]
    Remote {
        /// HTTP status.
        status: u16,
        /// Stable error code (`cairn_proto::api::code`).
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// No node of the cluster could be reached.
    #[error("{0}")]
    Network(String),
    /// A backup's pipeline stopped because another of its threads failed
    /// (that thread's error is the cause reported; this one only when none
    /// is left).
    #[error("backup pipeline aborted")]
    Aborted,
    /// A backup's job could not be recorded, so the backup did not run:
    /// without a running job a concurrent prune could delete chunks the
    /// backup reuses.
    #[error(
        "could not record the backup job, so nothing was backed up (without a running job a \
         concurrent prune could delete chunks the backup reuses); retry when the cluster \
         answers: {0}"
    )]
    JobNotRecorded(Box<Error>),
}

impl Error {
    /// Whether stored data is missing, damaged or tampered with (what
    /// `cairn` reports with exit code 4, and restore counts as damaged).
    pub fn is_damaged_data(&self) -> bool {
        matches!(
            self,
            Error::Integrity(_) | Error::Store(cairn_chunkstore::Error::Corrupt { .. })
        )
    }

    /// An IO error with the action and path that failed.
    pub fn io(action: &str, path: &Path, source: io::Error) -> Self {
        Error::Io {
            context: format!("{action} {}", path.display()),
            source,
        }
    }
}

impl From<cairn_chunkstore::Error> for Error {
    fn from(e: cairn_chunkstore::Error) -> Self {
        use cairn_chunkstore::Error as S;
        match e {
            S::Invalid(m) => Error::Invalid(m),
            S::Auth(m) => Error::Auth(m),
            S::NoBucket(m) => Error::NotFound(m),
            S::Service(m) => Error::Network(m),
            S::Damaged(m) => Error::Integrity(m),
            other => Error::Store(other),
        }
    }
}

/// The text of [`Error::RateLimited`]: the server's message, and when to
/// retry unless the message already says.
fn rate_limited_text(message: &str, retry_after: Option<u64>) -> String {
    match retry_after {
        Some(s) if !message.contains("retry") => format!("{message} (retry in {s} s)"),
        _ => message.to_string(),
    }
}

/// Adds "what and where" context to `io::Result`s.
pub trait IoContext<T> {
    /// Maps an IO error to [`Error::Io`] naming `action` and `path`.
    fn ctx(self, action: &str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, action: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}
