//! `cairn benchmark`: the CPU ceiling of the backup pipeline on given data.
//!
//! How fast could a backup of these files be if reading them and writing
//! the vault cost nothing? Every file is read into memory first (not
//! timed), then chunked, hashed, compressed and sealed exactly as a backup
//! does it (same chunker, same [`BlobCodec`], fresh throwaway keys), each
//! stage timed on one thread. A chunk seen before in the run is not sealed
//! again, as in a backup. The ceiling is the bytes over the CPU time
//! spread over the cores: what a backup could reach with every core busy
//! and no other work (no directory walk, no metadata, no tree blobs, no
//! vault writes). `bench/compare.sh` reports each initial backup as a
//! fraction of it, which tells how much is left to gain outside these
//! stages (IO, hand-offs, idle cores) and how much only a cheaper stage
//! could bring.
//!
//! Files over [`SEGMENT`] are read and chunked a segment at a time, so
//! memory stays bounded; each segment's end forces one cut a backup would
//! not make (one in several hundred chunks), which does not change the
//! CPU per byte.

use std::collections::HashSet;
use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn_proto::{ChunkId, VaultId};
use serde::Serialize;

use crate::blob::{BlobCodec, Compressor};
use crate::chunker::ChunkerParams;
use crate::crypto::VaultKeys;
use crate::error::{Error, Result};

/// Largest piece of a file held in memory at once.
pub const SEGMENT: usize = 256 * 1024 * 1024;

/// What one run measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Measured {
    /// Regular files read.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files that could not be opened or read to the end (skipped; bytes
    /// measured before a read failed still count).
    pub unreadable: u64,
    /// Chunks cut.
    pub chunks: u64,
    /// Chunks not seen before in the run: the ones sealed.
    pub unique_chunks: u64,
    /// Bytes of the sealed chunks (what a vault would store for them).
    pub sealed_bytes: u64,
    /// Time finding cut points.
    #[serde(serialize_with = "secs")]
    pub chunking: Duration,
    /// Time computing keyed chunk ids.
    #[serde(serialize_with = "secs")]
    pub hashing: Duration,
    /// Time compressing and sealing the unique chunks.
    #[serde(serialize_with = "secs")]
    pub sealing: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Measured {
    /// Time of all stages on one core.
    pub fn cpu(&self) -> Duration {
        self.chunking + self.hashing + self.sealing
    }

    /// Bytes per second the stages reach with `cores` cores all busy
    /// (0 when nothing was measured).
    pub fn ceiling(&self, cores: usize) -> f64 {
        let cpu = self.cpu().as_secs_f64();
        if cpu > 0.0 {
            self.bytes as f64 * cores as f64 / cpu
        } else {
            0.0
        }
    }
}

/// Runs the pipeline's stages over every regular file under `paths`
/// (directories recursively; symbolic links are not followed), chunking
/// with `params` and compressing at zstd `level`.
pub fn measure(paths: &[PathBuf], params: ChunkerParams, level: i32) -> Result<Measured> {
    params.validate()?;
    crate::blob::check_level(level)?;
    let mut run = Run {
        params,
        codec: BlobCodec::new(VaultId::random(), VaultKeys::generate(), level),
        zstd: Compressor::new()?,
        seen: HashSet::new(),
        buf: Vec::new(),
        out: Measured::default(),
    };
    for path in paths {
        let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io("stat", path, e))?;
        run.path(path, &meta)?;
    }
    Ok(run.out)
}

/// One measurement's state.
struct Run {
    params: ChunkerParams,
    codec: BlobCodec,
    zstd: Compressor,
    seen: HashSet<ChunkId>,
    /// The piece of a file being chunked.
    buf: Vec<u8>,
    out: Measured,
}

impl Run {
    /// Measures a directory's tree or a regular file; anything else
    /// (symbolic links, devices) holds no content a backup chunks.
    fn path(&mut self, path: &Path, meta: &Metadata) -> Result<()> {
        if meta.is_dir() {
            self.dir(path)
        } else if meta.is_file() {
            self.file(path, meta.len())
        } else {
            Ok(())
        }
    }

    fn dir(&mut self, dir: &Path) -> Result<()> {
        let mut entries = std::fs::read_dir(dir)
            .map_err(|e| Error::io("read directory", dir, e))?
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| Error::io("read directory", dir, e))?;
        // Sorted, as a backup walks them, so dedup within a run is the same.
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            match std::fs::symlink_metadata(&path) {
                Ok(meta) => self.path(&path, &meta)?,
                Err(_) => self.out.unreadable += 1,
            }
        }
        Ok(())
    }

    /// Measures one file; one that cannot be read is counted and skipped.
    fn file(&mut self, path: &Path, len: u64) -> Result<()> {
        let Ok(mut file) = File::open(path) else {
            self.out.unreadable += 1;
            return Ok(());
        };
        let mut read = 0u64;
        loop {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            let got = (&mut file).take(SEGMENT as u64).read_to_end(&mut buf);
            if got.is_err() {
                // What was measured of it still counts.
                self.out.unreadable += 1;
                self.out.bytes += read;
                self.buf = buf;
                return Ok(());
            }
            let done = buf.len() < SEGMENT;
            read += buf.len() as u64;
            if self.params.is_one_chunk(len) {
                if !buf.is_empty() {
                    self.chunk_of(&buf);
                }
            } else {
                self.segment(&buf)?;
            }
            self.buf = buf;
            if done {
                break;
            }
        }
        self.out.files += 1;
        self.out.bytes += read;
        Ok(())
    }

    /// Chunks, hashes and seals one piece of a file.
    fn segment(&mut self, buf: &[u8]) -> Result<()> {
        let mut chunks = Vec::new();
        let mut mark = Instant::now();
        let mut cut = Duration::ZERO;
        // The cut search runs between the calls; the chunks are measured
        // after it, so each stage's time is its own.
        self.params.split_slice(buf, &mut |c| {
            cut += mark.elapsed();
            chunks.push(c.len());
            mark = Instant::now();
            Ok(())
        })?;
        self.out.chunking += cut + mark.elapsed();
        let mut at = 0;
        for len in chunks {
            self.chunk_of(&buf[at..at + len]);
            at += len;
        }
        Ok(())
    }

    /// Hashes and (if new) seals one chunk.
    fn chunk_of(&mut self, chunk: &[u8]) {
        let start = Instant::now();
        let id = self.codec.id(chunk);
        let hashed = Instant::now();
        self.out.hashing += hashed - start;
        self.out.chunks += 1;
        if self.seen.insert(id) {
            let sealed = self.codec.seal(&id, chunk, &mut self.zstd);
            self.out.sealing += hashed.elapsed();
            self.out.unique_chunks += 1;
            self.out.sealed_bytes += sealed.len() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ChunkerParams {
        ChunkerParams {
            min_size: 64 * 1024,
            avg_size: 256 * 1024,
            max_size: 1024 * 1024,
        }
    }

    #[test]
    fn counts_files_bytes_chunks_and_dedups_within_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..3_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(dir.path().join("a"), &noise).unwrap();
        let one = measure(&[dir.path().join("a")], params(), 3).unwrap();
        std::fs::write(dir.path().join("b"), &noise).unwrap(); // all duplicate
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/small"), b"hello hello hello hello").unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("link")).unwrap();

        let m = measure(&[dir.path().to_path_buf()], params(), 3).unwrap();
        assert_eq!(m.files, 3, "the symlink is not followed");
        assert_eq!(m.bytes, 2 * 3_000_000 + 23);
        assert_eq!(m.unreadable, 0);
        // The same file twice cuts the same chunks, sealed once.
        assert!(one.chunks >= 3, "{one:?}");
        assert_eq!(m.chunks, 2 * one.chunks + 1);
        assert_eq!(m.unique_chunks, one.unique_chunks + 1);
        assert!(m.sealed_bytes > 3_000_000, "noise does not compress: {m:?}");
        assert!(m.cpu() > Duration::ZERO);
        let c1 = m.ceiling(1);
        assert!((m.ceiling(2) - 2.0 * c1).abs() < 1e-6 * c1);
    }

    #[test]
    fn compressible_data_seals_smaller_and_bad_settings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("text");
        std::fs::write(
            &file,
            "the quick brown fox jumps over the lazy dog\n".repeat(50_000),
        )
        .unwrap();
        let m = measure(std::slice::from_ref(&file), params(), 3).unwrap();
        assert_eq!(m.files, 1);
        assert!(m.sealed_bytes * 20 < m.bytes, "{m:?}");

        assert!(matches!(
            measure(std::slice::from_ref(&file), params(), 0),
            Err(Error::Invalid(_))
        ));
        let bad = ChunkerParams {
            min_size: 3,
            ..params()
        };
        assert!(measure(&[file], bad, 3).is_err());
        assert!(matches!(
            measure(&[dir.path().join("missing")], params(), 3),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn nothing_measured_has_no_ceiling() {
        let dir = tempfile::tempdir().unwrap();
        let m = measure(&[dir.path().to_path_buf()], params(), 3).unwrap();
        assert_eq!((m.files, m.bytes, m.chunks), (0, 0, 0));
        assert_eq!(m.ceiling(2), 0.0);
    }
}
