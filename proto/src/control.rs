//! Remote control: the messages of a device's live connection (`cairn
//! daemon` ↔ the node holding its WebSocket) and the JSON bodies of the
//! dispatcher's `/api/v1` routes.
//!
//! Every WebSocket message is one text frame holding one JSON object
//! `{"v": CONTROL_VERSION, "msg": {...}}`. A reader refuses a frame over
//! [`MAX_MESSAGE`] bytes, one that is not that object, and one whose `v` is
//! newer than its own ([`decode`]), with a [`ControlError`] and never a
//! panic; the connection is then closed and the device reconnects (a newer
//! device talks to an older node at the older version, which the device
//! learns from the node's [`ToDevice::Welcome`]).
//!
//! ```text
//! device                                   node
//!   ── GET /api/v1/connect (Bearer device token, Upgrade: websocket) ─▶
//!   ── Hello {client_version} ──────────────────────────────────────────▶ registry: device → this node
//!   ◀─ Welcome {node} ──────────────────────────────────────────────────
//!   ◀─ Command {id, action} ────────── (dispatched here or relayed from another node)
//!   ── Reply {id, outcome} ─────────────────────────────────────────────▶ answers the waiting request
//!   ◀─ Ping / ── Pong                  (liveness both ways)
//!   ◀─ Close {reason}                  (dispatcher "drop the connection")
//! ```
//!
//! Where a proxy refuses the upgrade, the same frames travel over
//! long-poll (`POST /api/v1/connect/poll`, [`crate::route::CONNECT_POLL`]):
//! one frame per line, a session header naming the connection; the
//! messages and their meaning are the same.
//!
//! Job actions carry the job id the node already began in the log (by
//! whoever dispatched it); the device runs the job under that id, so the
//! job log, its heartbeats and its end are the normal ones.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{DeviceId, JobId, VaultId};

/// Version of the connection's messages (`docs/FORMATS.md`).
pub const CONTROL_VERSION: u32 = 1;

/// Largest message either side accepts (a directory or snapshot listing
/// is the largest legitimate one).
pub const MAX_MESSAGE: usize = 4 << 20;

/// Most entries a directory listing carries (the rest is cut, `truncated`).
pub const MAX_DIR_ENTRIES: usize = 10_000;

/// Why a message was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    /// Larger than [`MAX_MESSAGE`].
    #[error("control message of {0} bytes is larger than the limit")]
    TooLarge(usize),
    /// Not the envelope, or not a known message.
    #[error("malformed control message: {0}")]
    Malformed(String),
    /// Written by a newer version than this side understands.
    #[error("control message version {found} is newer than this side's {supported}")]
    Version {
        /// The message's version.
        found: u32,
        /// Ours.
        supported: u32,
    },
}

/// The envelope of every message.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    msg: T,
}

/// Encodes one message as its text frame.
pub fn encode<T: Serialize>(msg: &T) -> String {
    let env = Envelope {
        v: CONTROL_VERSION,
        msg,
    };
    // Serializing plain data structs and enums to JSON cannot fail.
    serde_json::to_string(&env).unwrap_or_default()
}

/// Decodes one text frame.
///
/// # Errors
///
/// [`ControlError`] for an oversized, malformed or newer message.
pub fn decode<T: DeserializeOwned>(frame: &[u8]) -> Result<T, ControlError> {
    if frame.len() > MAX_MESSAGE {
        return Err(ControlError::TooLarge(frame.len()));
    }
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let Version { v } =
        serde_json::from_slice(frame).map_err(|e| ControlError::Malformed(e.to_string()))?;
    if v == 0 || v > CONTROL_VERSION {
        return Err(ControlError::Version {
            found: v,
            supported: CONTROL_VERSION,
        });
    }
    let env: Envelope<T> =
        serde_json::from_slice(frame).map_err(|e| ControlError::Malformed(e.to_string()))?;
    Ok(env.msg)
}

/// Node → device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToDevice {
    /// The answer to [`FromDevice::Hello`]: the connection is registered.
    Welcome {
        /// The node holding the connection (its Raft id).
        node: u64,
    },
    /// Do something; answer with a [`FromDevice::Reply`] of the same id.
    Command {
        /// Chosen by the node, unique on the connection.
        id: u64,
        /// What to do.
        action: Action,
    },
    /// Are you there? (answer [`FromDevice::Pong`]).
    Ping,
    /// The node drops the connection (a dispatcher's "disconnect"); the
    /// device reconnects after its backoff.
    Close {
        /// Why, for the device's log.
        reason: String,
    },
}

/// Device → node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromDevice {
    /// The first message: who the device is running.
    Hello {
        /// The `cairn` version (shown to admins).
        client_version: String,
    },
    /// The answer to a [`ToDevice::Command`].
    Reply {
        /// The command's id.
        id: u64,
        /// How it went.
        outcome: Outcome,
    },
    /// The answer to [`ToDevice::Ping`].
    Pong,
}

/// What a dispatched command asks of the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Back up a protected item (`cairn backup --item`), or ad hoc paths
    /// to a vault.
    Backup {
        /// The job the node began.
        job: JobId,
        /// The item, or none for ad hoc paths.
        item: Option<String>,
        /// The vault's name for ad hoc paths (an item names its own).
        vault: Option<String>,
        /// Ad hoc paths (absolute, on the device).
        paths: Vec<String>,
    },
    /// Restore a snapshot (or some paths of it) to a directory.
    Restore {
        /// The job the node began.
        job: JobId,
        /// The vault's name.
        vault: String,
        /// Snapshot id (or `latest`).
        snapshot: String,
        /// Target directory on the device.
        target: String,
        /// Only these paths of the snapshot (empty: everything).
        paths: Vec<String>,
    },
    /// Apply the retention policy of an item in a vault.
    Retention {
        /// The job the node began.
        job: JobId,
        /// The vault's name.
        vault: String,
        /// The item.
        item: String,
    },
    /// `cairn check [--read-data]`.
    Check {
        /// The job the node began.
        job: JobId,
        /// The vault's name.
        vault: String,
        /// Read and verify every chunk.
        read_data: bool,
    },
    /// Stop a running dispatched job (it records `cancelled`).
    Cancel {
        /// The job.
        job: JobId,
    },
    /// List a directory of the device (to pick item paths).
    ListDir {
        /// Absolute path.
        path: String,
    },
    /// List the files of a snapshot: the device decrypts and answers the
    /// listing sealed for the account ([`Answer::Sealed`]).
    ListFiles {
        /// The vault's name.
        vault: String,
        /// Snapshot id (or `latest`).
        snapshot: String,
        /// A directory inside the snapshot (empty: its root).
        path: String,
    },
}

impl Action {
    /// The job a job action runs under.
    pub fn job(&self) -> Option<JobId> {
        match self {
            Action::Backup { job, .. }
            | Action::Restore { job, .. }
            | Action::Retention { job, .. }
            | Action::Check { job, .. } => Some(*job),
            _ => None,
        }
    }
}

/// How a command went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// Done (or, for a job, started).
    Ok {
        /// The answer.
        answer: Answer,
    },
    /// Refused or failed.
    Err {
        /// A stable code (`not_found`, `busy`, `failed`, `unsupported`).
        code: String,
        /// For people.
        message: String,
    },
}

/// A command's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    /// The job runs (its progress is in the job log).
    Started,
    /// The job was told to stop.
    Cancelled,
    /// A directory's entries.
    Dir(DirListing),
    /// A snapshot listing sealed for the account ([`SealedListing`]).
    Sealed(SealedListing),
}

/// A directory of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DirListing {
    /// The directory listed.
    pub path: String,
    /// Its entries, by name.
    pub entries: Vec<DirEntry>,
    /// Whether entries beyond [`MAX_DIR_ENTRIES`] were left out.
    pub truncated: bool,
}

/// One entry of a [`DirListing`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DirEntry {
    /// The entry's name.
    pub name: String,
    /// Whether it is a directory.
    pub dir: bool,
    /// Its size in bytes (files).
    pub size: u64,
}

/// A snapshot's listing as the server relays it: sealed by the device for
/// the account, so only someone who knows the account password can read
/// the names; the server sees their total size only.
///
/// Version 2 (the one sealed now) is AES-256-GCM under the listing key
/// `HKDF-SHA256(ikm = wrap key, salt = empty, info = LISTING_HKDF_INFO)`,
/// with [`LISTING_AAD`] as associated data; sealed = 12-byte nonce ‖
/// ciphertext ‖ 16-byte tag. Those are WebCrypto's primitives, so the web
/// console opens it in the browser (the password and wrap key never leave
/// the page). Version 1 (AES-256-CTR + Poly1305 under a BLAKE3-derived
/// key, without this field) was never stored anywhere: an old daemon's
/// answer is refused by the page with "upgrade the device".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SealedListing {
    /// The sealing's version ([`LISTING_VERSION`]; absent: 1).
    #[serde(default = "listing_v1")]
    pub version: u32,
    /// The sealed JSON listing (`cairn ls --json`'s document), hex.
    pub sealed: String,
}

fn listing_v1() -> u32 {
    1
}

/// The version of [`SealedListing`] a device seals.
pub const LISTING_VERSION: u32 = 2;

/// The HKDF-SHA256 `info` of the listing key.
pub const LISTING_HKDF_INFO: &str = "cairn 2026-12 dispatched snapshot listing v2";

/// The associated data a sealed listing is bound to.
pub const LISTING_AAD: &str = "cairn snapshot listing v2";

/// `POST /api/v1/dispatch/{device}/backup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DispatchBackup {
    /// A protected item of the device.
    #[serde(default)]
    pub item: Option<String>,
    /// For ad hoc paths: the vault (one of the account's).
    #[serde(default)]
    pub vault: Option<VaultId>,
    /// Ad hoc paths (with `vault`, without `item`).
    #[serde(default)]
    pub paths: Vec<String>,
}

/// `POST /api/v1/dispatch/{device}/restore`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DispatchRestore {
    /// The vault.
    pub vault: VaultId,
    /// Snapshot id, or `latest`.
    pub snapshot: String,
    /// Target directory on the device (absolute).
    pub target: String,
    /// Only these paths (empty: everything).
    #[serde(default)]
    pub paths: Vec<String>,
}

/// `POST /api/v1/dispatch/{device}/retention`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DispatchRetention {
    /// The vault.
    pub vault: VaultId,
    /// The item whose snapshots the policy applies to.
    pub item: String,
}

/// `POST /api/v1/dispatch/{device}/check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DispatchCheck {
    /// The vault.
    pub vault: VaultId,
    /// Read and verify every chunk (`check --read-data`).
    #[serde(default)]
    pub read_data: bool,
}

/// `POST /api/v1/dispatch/{device}/cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DispatchCancel {
    /// The running job.
    pub job: JobId,
}

/// `POST /api/v1/dispatch/{device}/dirs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListDir {
    /// Absolute path on the device.
    pub path: String,
}

/// `POST /api/v1/dispatch/{device}/files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListFiles {
    /// The vault.
    pub vault: VaultId,
    /// Snapshot id, or `latest`.
    pub snapshot: String,
    /// A directory inside the snapshot (empty: the root).
    #[serde(default)]
    pub path: String,
}

/// The answer of a job dispatch: the job, already in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Dispatched {
    /// The job (`GET /api/v1/jobs/{id}/events` streams its progress).
    pub job: JobId,
}

/// A device's live connection, as admins and its account see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectionInfo {
    /// The device.
    pub device: DeviceId,
    /// Its name.
    pub device_name: String,
    /// Its account's name.
    pub user: String,
    /// The node holding the connection.
    pub node: u64,
    /// The device's `cairn` version.
    pub client_version: String,
    /// When it connected, ms since the epoch.
    pub since: u64,
}

/// `GET /api/v1/control/{device}`: what the dispatcher's forms offer for
/// one device: its connection (none: offline), its items, its account's
/// vaults and latest snapshots, and its latest jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceControl {
    /// The device.
    pub device: DeviceId,
    /// Its name.
    pub device_name: String,
    /// Its account's name.
    pub user: String,
    /// Its live connection, if it is online.
    pub connection: Option<ConnectionInfo>,
    /// Its protected items.
    pub items: Vec<ControlItem>,
    /// Its account's vaults.
    pub vaults: Vec<ControlVault>,
    /// The latest snapshots of those vaults (newest first, at most 50).
    pub snapshots: Vec<crate::api::SnapshotInfo>,
    /// Its latest jobs (newest first, at most 20).
    pub jobs: Vec<crate::api::JobInfo>,
}

/// A protected item, as the dispatcher offers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ControlItem {
    /// Its name.
    pub name: String,
    /// The vault it is backed up into.
    pub vault: VaultId,
    /// Its paths.
    pub paths: Vec<String>,
}

/// A vault, as the dispatcher offers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ControlVault {
    /// Its id.
    pub id: VaultId,
    /// Its name.
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn job() -> JobId {
        JobId([7; 16])
    }

    #[test]
    fn messages_round_trip() {
        let to = [
            ToDevice::Welcome { node: 3 },
            ToDevice::Ping,
            ToDevice::Close { reason: "x".into() },
            ToDevice::Command {
                id: 9,
                action: Action::Restore {
                    job: job(),
                    vault: "v".into(),
                    snapshot: "latest".into(),
                    target: "/t".into(),
                    paths: vec!["/a".into()],
                },
            },
        ];
        for m in to {
            assert_eq!(decode::<ToDevice>(encode(&m).as_bytes()), Ok(m));
        }
        let from = [
            FromDevice::Hello {
                client_version: "0.1.0".into(),
            },
            FromDevice::Pong,
            FromDevice::Reply {
                id: 1,
                outcome: Outcome::Ok {
                    answer: Answer::Dir(DirListing {
                        path: "/".into(),
                        entries: vec![DirEntry {
                            name: "etc".into(),
                            dir: true,
                            size: 0,
                        }],
                        truncated: false,
                    }),
                },
            },
            FromDevice::Reply {
                id: 2,
                outcome: Outcome::Err {
                    code: "busy".into(),
                    message: "m".into(),
                },
            },
        ];
        for m in from {
            assert_eq!(decode::<FromDevice>(encode(&m).as_bytes()), Ok(m));
        }
    }

    /// The version-1 encoding, pinned: a change here breaks older devices.
    #[test]
    fn golden_frames() {
        let hello = FromDevice::Hello {
            client_version: "0.1.0".into(),
        };
        assert_eq!(
            encode(&hello),
            r#"{"v":1,"msg":{"type":"hello","client_version":"0.1.0"}}"#
        );
        let cancel = ToDevice::Command {
            id: 4,
            action: Action::Cancel { job: job() },
        };
        assert_eq!(
            encode(&cancel),
            r#"{"v":1,"msg":{"type":"command","id":4,"action":{"action":"cancel","job":"07070707070707070707070707070707"}}}"#
        );
    }

    /// An old daemon's listing (no `version`) reads as version 1, so the
    /// page can tell the user to upgrade the device instead of failing to
    /// decrypt.
    #[test]
    fn a_listing_without_version_is_v1() {
        let old: SealedListing = serde_json::from_str(r#"{"sealed":"00"}"#).expect("v1");
        assert_eq!(old.version, 1);
        let new = SealedListing {
            version: LISTING_VERSION,
            sealed: "ab".into(),
        };
        assert_eq!(
            serde_json::to_string(&new).expect("json"),
            r#"{"version":2,"sealed":"ab"}"#
        );
    }

    #[test]
    fn newer_oversized_and_unknown_messages_are_refused() {
        assert_eq!(
            decode::<ToDevice>(br#"{"v":2,"msg":{"type":"ping"}}"#),
            Err(ControlError::Version {
                found: 2,
                supported: 1
            })
        );
        assert!(matches!(
            decode::<ToDevice>(br#"{"v":1,"msg":{"type":"format_disk"}}"#),
            Err(ControlError::Malformed(_))
        ));
        assert!(matches!(
            decode::<ToDevice>(br#"{"msg":{"type":"ping"}}"#),
            Err(ControlError::Malformed(_))
        ));
        let big = vec![b' '; MAX_MESSAGE + 1];
        assert_eq!(
            decode::<ToDevice>(&big),
            Err(ControlError::TooLarge(MAX_MESSAGE + 1))
        );
    }

    proptest! {
        /// Garbage never panics and is never taken for a message.
        #[test]
        fn garbage_is_refused(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            prop_assert!(decode::<ToDevice>(&bytes).is_err());
            prop_assert!(decode::<FromDevice>(&bytes).is_err());
        }

        /// Mangling a valid frame never panics.
        #[test]
        fn mangled_frames_never_panic(cut in 0usize..120, flip in 0usize..120, byte in any::<u8>()) {
            let mut f = encode(&ToDevice::Command { id: 1, action: Action::ListDir { path: "/home".into() } }).into_bytes();
            let i = flip % f.len();
            f[i] = byte;
            f.truncate(cut.min(f.len()));
            let _ = decode::<ToDevice>(&f);
            let _ = decode::<FromDevice>(&f);
        }
    }
}
