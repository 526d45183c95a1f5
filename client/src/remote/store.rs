//! An account vault's chunks and snapshot records, over the storage API.
//!
//! Chunk traffic is batched: `missing` asks about many ids per request,
//! uploads carry frame batches of several MiB, and `get_many` fetches many
//! chunks per request. Bodies use the binary layouts of
//! `cairn_proto::frames`; whatever the server sends back is decoded through
//! those checked decoders and then verified by the AEAD (which binds vault
//! and chunk id), so a node that swaps, truncates or corrupts a chunk is
//! caught here, never trusted.
//!
//! Trees are cached on local disk (`$XDG_CACHE_HOME/cairn/vaults/<id>/trees/`,
//! sealed as stored): the walk of a parent snapshot and the planning of a
//! restore then cost no round trip per directory. A cached tree is verified
//! like a fetched one and refetched when it fails, and deleting the cache
//! costs only time.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use cairn_proto::api::{
    CommitSnapshot, SnapshotInfo, SweepReply, UploadReply, VaultInfo, LIST_PAGE,
};
use cairn_proto::frames::{self, MAX_IDS};
use cairn_proto::version::SNAPSHOT_FORMAT;
use cairn_proto::{route, ChunkId, JobId, SnapshotId, VaultId};

use super::api::Api;
use crate::error::{Error, Result};
use crate::snapshot::{ms_rfc3339, rfc3339_ms, SnapshotRecord, SnapshotStats};

/// Ids per `missing` request (1 MiB of ids; well under the server's limit).
pub const MISSING_BATCH: usize = 32 * 1024;

/// One account vault as the client reaches it.
pub struct RemoteVault {
    api: Arc<Api>,
    info: VaultInfo,
    tree_cache: Option<PathBuf>,
    /// The file keeping the newest snapshot this device has seen here.
    newest_seen: Option<PathBuf>,
}

/// The newest snapshot a device has seen in a vault: a server that later
/// lists neither it nor anything newer is hiding snapshots.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct NewestSeen {
    id: SnapshotId,
    started_ms: u64,
}

impl RemoteVault {
    /// A handle on vault `info` through `api`; `cache_root` (see
    /// [`cache_root`]) holds the tree cache when given, `state_dir` (beside
    /// the profile) the newest snapshot seen.
    pub fn new(
        api: Arc<Api>,
        info: VaultInfo,
        cache_root: Option<&Path>,
        state_dir: Option<&Path>,
    ) -> Self {
        let tree_cache = cache_root.map(|r| r.join("vaults").join(info.id.to_hex()).join("trees"));
        let newest_seen = state_dir.map(|d| d.join(format!("{}.json", info.id.to_hex())));
        Self {
            api,
            info,
            tree_cache,
            newest_seen,
        }
    }

    /// Remembers the newest snapshot of `list` (verified records, oldest
    /// first) if it is newer than the one remembered. The mark is kept on a
    /// best-effort basis: if it cannot be written, detection is lost, not
    /// data.
    pub fn observe_newest(&self, list: &[SnapshotRecord]) -> Result<()> {
        let newest = list.last().map(newest_of).transpose()?;
        match newest {
            Some(n)
                if self
                    .newest_seen()
                    .is_none_or(|s| n.started_ms >= s.started_ms) =>
            {
                self.save_newest_seen(Some(&n));
            }
            _ => {}
        }
        Ok(())
    }

    fn newest_seen(&self) -> Option<NewestSeen> {
        let file = self.newest_seen.as_ref()?;
        fs::read(file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Refuses a list that lacks the newest snapshot this device has seen
    /// here and holds nothing newer: the server may be hiding snapshots (a
    /// rollback), and `latest` would silently be an older one.
    pub fn check_newest_seen(&self, list: &[SnapshotRecord]) -> Result<()> {
        let newest = list.last().map(newest_of).transpose()?;
        if let Some(seen) = &self.newest_seen() {
            let listed = list.iter().any(|r| r.id == seen.id);
            let newer = newest
                .as_ref()
                .is_some_and(|n| n.started_ms > seen.started_ms);
            if !listed && !newer {
                return Err(Error::Integrity(format!(
                    "the server no longer lists snapshot {} of {}, the newest this device has \
                     seen in vault {}, and lists nothing newer: it may be hiding newer \
                     snapshots (a rollback). If that snapshot was forgotten on another device \
                     on purpose, accept the list as it is with `cairn snapshots --vault {} \
                     --acknowledge`",
                    seen.id,
                    ms_rfc3339(seen.started_ms),
                    self.info.name,
                    self.info.name
                )));
            }
        }
        Ok(())
    }

    /// Takes `list` as it is: its newest is now the newest seen.
    pub fn reset_newest_seen(&self, list: &[SnapshotRecord]) -> Result<()> {
        let newest = list.last().map(newest_of).transpose()?;
        self.save_newest_seen(newest.as_ref());
        Ok(())
    }

    fn save_newest_seen(&self, newest: Option<&NewestSeen>) {
        let Some(file) = &self.newest_seen else {
            return;
        };
        match newest.map(serde_json::to_vec) {
            Some(Ok(bytes)) => {
                let _ = file.parent().map(fs::create_dir_all);
                let _ = crate::fsmeta::write_private(file, &bytes);
            }
            Some(Err(_)) => {}
            None => {
                let _ = fs::remove_file(file);
            }
        }
    }

    /// The vault record.
    pub fn info(&self) -> &VaultInfo {
        &self.info
    }

    /// The vault id.
    pub fn id(&self) -> VaultId {
        self.info.id
    }

    /// The API client.
    pub fn api(&self) -> &Arc<Api> {
        &self.api
    }

    /// The path of `template` for this vault (its `{id}`), then `more`.
    fn path(&self, template: &str, more: &[&str]) -> String {
        let id = self.info.id.to_string();
        let values: Vec<&str> = std::iter::once(id.as_str())
            .chain(more.iter().copied())
            .collect();
        route::path(template, &values)
    }

    /// Which of `ids` the cluster does not store, in as few requests as
    /// [`MISSING_BATCH`] allows.
    pub fn missing(&self, ids: &[ChunkId]) -> Result<Vec<ChunkId>> {
        let mut out = vec![];
        for batch in ids.chunks(MISSING_BATCH) {
            let answer = self.api.post_binary(
                &self.path(route::CHUNKS_MISSING, &[]),
                Bytes::from(frames::encode_ids(batch)),
            )?;
            let missing = frames::decode_ids(&answer)
                .map_err(|e| Error::Format(format!("answer to chunks/missing: {e}")))?;
            out.extend(missing);
        }
        Ok(out)
    }

    /// Uploads sealed chunks as one frame body; the answer comes once every
    /// chunk is durable on the write quorum.
    pub fn upload(&self, chunks: &[(ChunkId, &[u8])]) -> Result<UploadReply> {
        let size = 1 + chunks.iter().map(|(_, b)| 36 + b.len()).sum::<usize>();
        let mut body = Vec::with_capacity(size);
        body.extend_from_slice(&frames::frames_header());
        for (id, sealed) in chunks {
            frames::push_frame(&mut body, id, sealed);
        }
        self.api
            .post_binary_json(&self.path(route::CHUNKS, &[]), Bytes::from(body))
    }

    /// Fetches the sealed bytes of `ids` (one request per [`MAX_IDS`]);
    /// ids the node could not serve are asked once more through the next
    /// node, and those still absent are absent from the map. Frames for
    /// ids that were not asked for are refused.
    pub fn get_many(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, Vec<u8>>> {
        let mut out = self.get_once(ids)?;
        if out.len() < ids.len() && self.api.nodes().len() > 1 {
            let absent: Vec<ChunkId> = ids
                .iter()
                .filter(|id| !out.contains_key(id))
                .copied()
                .collect();
            self.api.rotate();
            out.extend(self.get_once(&absent)?);
        }
        Ok(out)
    }

    fn get_once(&self, ids: &[ChunkId]) -> Result<HashMap<ChunkId, Vec<u8>>> {
        let mut out = HashMap::with_capacity(ids.len());
        for batch in ids.chunks(MAX_IDS) {
            // Chunks the node has no good copy of are absent from the answer.
            let answer = self.api.post_binary(
                &self.path(route::CHUNKS_GET, &[]),
                Bytes::from(frames::encode_ids(batch)),
            )?;
            let frames = frames::decode_frames(&answer)
                .map_err(|e| Error::Format(format!("answer to chunks/get: {e}")))?;
            for (id, sealed) in frames {
                if !batch.contains(&id) {
                    return Err(Error::Integrity(format!(
                        "the server sent chunk {id}, which was not asked for"
                    )));
                }
                out.insert(id, sealed.to_vec());
            }
        }
        Ok(out)
    }

    /// Every chunk id the vault stores, ascending (paged `chunks/list`).
    pub fn list(&self) -> Result<Vec<ChunkId>> {
        let mut out: Vec<ChunkId> = vec![];
        loop {
            let query = match out.last() {
                Some(last) => format!("?after={last}"),
                None => String::new(),
            };
            let answer = self.api.post_binary(
                &format!("{}{query}", self.path(route::CHUNKS_LIST, &[])),
                Bytes::new(),
            )?;
            let page = frames::decode_ids(&answer)
                .map_err(|e| Error::Format(format!("answer to chunks/list: {e}")))?;
            if let (Some(last), Some(first)) = (out.last(), page.first()) {
                if first <= last {
                    return Err(Error::Format(
                        "chunks/list answered a page out of order".into(),
                    ));
                }
            }
            let done = page.len() < LIST_PAGE;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    /// Deletes chunks as the sweep of prune job `job` (the server keeps
    /// any touched since the job started, and refuses while a backup runs).
    pub fn sweep(&self, job: JobId, ids: &[ChunkId]) -> Result<SweepReply> {
        let mut total = SweepReply::default();
        for batch in ids.chunks(MISSING_BATCH) {
            let reply: SweepReply = self.api.post_binary_json(
                &format!("{}?job={job}", self.path(route::CHUNKS_DELETE, &[])),
                Bytes::from(frames::encode_ids(batch)),
            )?;
            total.deleted += reply.deleted;
            total.kept_recently_used += reply.kept_recently_used;
        }
        Ok(total)
    }

    /// The sealed bytes of one chunk, if the cluster has it.
    pub fn get(&self, id: ChunkId) -> Result<Option<Vec<u8>>> {
        Ok(self.get_many(&[id])?.remove(&id))
    }

    /// A cached sealed tree, if any.
    pub fn cached_tree(&self, id: ChunkId) -> Option<Vec<u8>> {
        let path = self.tree_cache_path(id)?;
        fs::read(path).ok()
    }

    /// Caches a sealed tree (best effort: a cache that cannot be written
    /// only costs time later).
    pub fn cache_tree(&self, id: ChunkId, sealed: &[u8]) {
        let Some(path) = self.tree_cache_path(id) else {
            return;
        };
        let Some(dir) = path.parent() else { return };
        if fs::create_dir_all(dir).is_err() {
            return;
        }
        let tmp = dir.join(format!(".{}.{}.tmp", id.to_hex(), std::process::id()));
        if fs::write(&tmp, sealed).is_ok() && fs::rename(&tmp, &path).is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }

    /// Drops a cached tree that failed verification.
    pub fn uncache_tree(&self, id: ChunkId) {
        if let Some(path) = self.tree_cache_path(id) {
            let _ = fs::remove_file(path);
        }
    }

    fn tree_cache_path(&self, id: ChunkId) -> Option<PathBuf> {
        let hex = id.to_hex();
        self.tree_cache
            .as_ref()
            .map(|d| d.join(&hex[..2]).join(hex))
    }

    /// Every snapshot record of the vault, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotRecord>> {
        let infos: Vec<SnapshotInfo> = self.api.get(&self.path(route::SNAPSHOTS, &[]))?;
        let mut out = Vec::with_capacity(infos.len());
        for info in infos {
            if info.vault != self.info.id {
                return Err(Error::Integrity(format!(
                    "the server listed snapshot {} of another vault",
                    info.id
                )));
            }
            out.push(record_of(info));
        }
        out.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Commits a snapshot record (after every chunk it names is stored)
    /// under the item name or label `item`, as the end of backup job `job`.
    pub fn commit(&self, record: &SnapshotRecord, item: &str, job: JobId) -> Result<()> {
        let body = CommitSnapshot {
            id: record.id,
            item: item.to_string(),
            started_at: rfc3339_ms(&record.time)?,
            finished_at: rfc3339_ms(&record.finished)?,
            root: record.root,
            stats: cairn_proto::api::SnapshotStats {
                files: record.stats.files,
                bytes: record.stats.bytes,
                new_bytes: record.stats.new_bytes,
                new_chunks: record.stats.new_chunks,
            },
            sealed_meta: record.meta.clone(),
            job,
        };
        let _: SnapshotInfo = self.api.post(&self.path(route::SNAPSHOTS, &[]), &body)?;
        Ok(())
    }

    /// Deletes a snapshot record (its chunks stay until garbage collection).
    /// Forgetting the newest snapshot seen here drops that mark, so this
    /// device's own forget is not taken for a rollback.
    pub fn forget(&self, id: SnapshotId) -> Result<()> {
        self.api
            .delete(&self.path(route::SNAPSHOT, &[&id.to_string()]))?;
        if self.newest_seen().is_some_and(|s| s.id == id) {
            self.save_newest_seen(None);
        }
        Ok(())
    }
}

fn newest_of(r: &SnapshotRecord) -> Result<NewestSeen> {
    Ok(NewestSeen {
        id: r.id,
        started_ms: rfc3339_ms(&r.time)?,
    })
}

/// The client's view of a server snapshot record. Items travel as their
/// name; a backup of plain paths travels under a `~…` label
/// ([`crate::vault::paths_label`]) and has no item here (the paths
/// themselves are in the sealed metadata only).
pub fn record_of(info: SnapshotInfo) -> SnapshotRecord {
    SnapshotRecord {
        format: SNAPSHOT_FORMAT,
        id: info.id,
        vault: info.vault,
        device: info.device_name,
        item: Some(info.item).filter(|i| !i.is_empty() && !i.starts_with('~')),
        time: ms_rfc3339(info.started_at),
        finished: ms_rfc3339(info.finished_at),
        root: info.root,
        stats: SnapshotStats {
            files: info.stats.files,
            bytes: info.stats.bytes,
            new_bytes: info.stats.new_bytes,
            new_chunks: info.stats.new_chunks,
            ..SnapshotStats::default()
        },
        meta: info.sealed_meta,
    }
}

/// Where caches live: `$XDG_CACHE_HOME/cairn` when absolute, else
/// `$HOME/.cache/cairn`; `None` when neither is set (no cache then).
pub fn cache_root(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let non_empty = |v: &str| env(v).filter(|s| !s.is_empty());
    if let Some(x) = non_empty("XDG_CACHE_HOME").filter(|s| s.starts_with('/')) {
        return Some(Path::new(&x).join("cairn"));
    }
    non_empty("HOME").map(|h| Path::new(&h).join(".cache").join("cairn"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_through_milliseconds() {
        let ms = 1_764_140_000_123;
        assert_eq!(rfc3339_ms(&ms_rfc3339(ms)).unwrap(), ms);
        assert!(matches!(rfc3339_ms("yesterday"), Err(Error::Format(_))));
    }

    #[test]
    fn records_keep_items_and_mark_path_backups() {
        let info = SnapshotInfo {
            id: SnapshotId::random(),
            vault: VaultId::random(),
            device: cairn_proto::DeviceId::random(),
            device_name: "laptop".into(),
            item: String::new(),
            started_at: 1000,
            finished_at: 2000,
            root: ChunkId([1; 32]),
            stats: Default::default(),
            sealed_meta: vec![1, 2],
        };
        let r = record_of(info.clone());
        assert_eq!(r.item, None);
        let r = record_of(SnapshotInfo {
            item: "~0123456789abcdef".into(),
            ..info.clone()
        });
        assert_eq!(r.item, None, "a paths label is no item");
        assert_eq!(r.device, "laptop");
        assert_eq!(rfc3339_ms(&r.finished).unwrap(), 2000);
        let r = record_of(SnapshotInfo {
            item: "home".into(),
            ..info
        });
        assert_eq!(r.item.as_deref(), Some("home"));
    }

    #[test]
    fn cache_root_follows_xdg() {
        let env = |k: &str| match k {
            "XDG_CACHE_HOME" => Some("/c".to_string()),
            "HOME" => Some("/h".to_string()),
            _ => None,
        };
        assert_eq!(cache_root(env), Some(PathBuf::from("/c/cairn")));
        let env = |k: &str| (k == "HOME").then(|| "/h".to_string());
        assert_eq!(cache_root(env), Some(PathBuf::from("/h/.cache/cairn")));
        assert_eq!(cache_root(|_| None), None);
    }
}
