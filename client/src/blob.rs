//! The chunk format: how plaintext becomes a sealed blob and back.
//!
//! `id = BLAKE3-keyed(chunk_id_key, plaintext)`; sealed =
//! `AEAD(encryption_key, aad = "cairn/chunk/v1" ‖ vault_id ‖ id,
//! codec ‖ payload)` where codec `0` is raw and `1` is zstd. Data chunks and
//! tree blobs use the same rule, so identical directories dedup across
//! snapshots. Opening checks the tag (which binds vault and id, so a swapped
//! or replayed blob fails), decompresses, and re-hashes the plaintext against
//! the id.

use std::cell::RefCell;
use std::sync::Mutex;

use cairn_proto::{ChunkId, VaultId};
use zstd::zstd_safe::zstd_sys;

use crate::chunker::zero_prefix;
use crate::crypto::{aead, VaultKeys};
use crate::error::{Error, Result};

const CHUNK_AAD: &[u8] = b"cairn/chunk/v1";
const CODEC_RAW: u8 = 0;
const CODEC_ZSTD: u8 = 1;
/// Largest plaintext a blob may decompress to (tree blobs of huge
/// directories included); guards against decompression bombs.
pub const MAX_PLAINTEXT: usize = 256 * 1024 * 1024;

/// Checks a zstd level for a vault (local or account) or a benchmark: 1
/// to 22 (zstd's negative "fast" levels are not offered).
pub fn check_level(level: i32) -> Result<()> {
    if (1..=22).contains(&level) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "zstd level {level} is not in 1..=22"
        )))
    }
}

/// Zero chunks at least this large have their ids remembered.
const ZERO_ID_MIN: usize = 64 * 1024;
/// How many zero-chunk lengths a codec remembers ids for (a zero run is
/// cut at `max` until its last piece, so few lengths recur).
const ZERO_IDS: usize = 8;

/// Seals and opens the blobs of one vault.
pub struct BlobCodec {
    vault: VaultId,
    keys: VaultKeys,
    level: i32,
    /// Ids of all-zero chunks by length: disk images hold gigabytes of
    /// zero runs, cut into the same few chunks over and over, and checking
    /// that a chunk is zero costs a fraction of hashing it.
    zero_ids: Mutex<Vec<(usize, ChunkId)>>,
}

impl BlobCodec {
    /// A codec for `vault` using its keys and zstd level.
    pub fn new(vault: VaultId, keys: VaultKeys, level: i32) -> Self {
        Self {
            vault,
            keys,
            level,
            zero_ids: Mutex::new(Vec::new()),
        }
    }

    /// The vault this codec seals for.
    pub fn vault(&self) -> VaultId {
        self.vault
    }

    /// The keyed id of a plaintext.
    pub fn id(&self, plaintext: &[u8]) -> ChunkId {
        let len = plaintext.len();
        if len < ZERO_ID_MIN || zero_prefix(plaintext) < len {
            return self.hash(plaintext);
        }
        // A poisoned lock only means another thread panicked: hash instead.
        let Ok(mut known) = self.zero_ids.lock() else {
            return self.hash(plaintext);
        };
        if let Some(&(_, id)) = known.iter().find(|(l, _)| *l == len) {
            return id;
        }
        let id = self.hash(plaintext);
        if known.len() < ZERO_IDS {
            known.push((len, id));
        }
        id
    }

    /// Whether `id` is that of `len` zero bytes, as far as this codec has
    /// seen such a chunk (false for zero chunks it has not met yet).
    pub fn is_known_zeros(&self, id: &ChunkId, len: u32) -> bool {
        len as usize >= ZERO_ID_MIN
            && self
                .zero_ids
                .lock()
                .is_ok_and(|known| known.contains(&(len as usize, *id)))
    }

    fn hash(&self, plaintext: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.keys.chunk_id, plaintext).as_bytes())
    }

    fn aad(&self, id: &ChunkId) -> Vec<u8> {
        [CHUNK_AAD, self.vault.as_bytes(), id.as_bytes()].concat()
    }

    /// Compresses (keeping the raw bytes when zstd does not shrink them) and
    /// seals `plaintext`, which must have id `id`.
    pub fn seal(&self, id: &ChunkId, plaintext: &[u8], zstd: &mut Compressor) -> Vec<u8> {
        let aad = self.aad(id);
        let nonce = rand::random();
        match zstd.compress(plaintext, self.level) {
            Some(z) if z.len() < plaintext.len() => {
                aead::seal_parts(&self.keys.encryption, nonce, &aad, &[&[CODEC_ZSTD], &z])
            }
            _ => aead::seal_parts(
                &self.keys.encryption,
                nonce,
                &aad,
                &[&[CODEC_RAW], plaintext],
            ),
        }
    }

    /// Verifies, decrypts and decompresses a blob claimed to be chunk `id`.
    /// Any mismatch is an [`Error::Integrity`].
    ///
    /// The zstd context is kept per thread: creating one allocates and
    /// clears over 100 KiB, and a backup that finds nothing changed opens
    /// one tree blob per directory (5% of a Linux-tree re-run went there).
    pub fn open(&self, id: &ChunkId, sealed: &[u8]) -> Result<Vec<u8>> {
        thread_local! {
            static DCTX: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
                const { RefCell::new(None) };
        }
        let mut scratch = OpenScratch {
            dctx: DCTX.with(|d| d.borrow_mut().take()),
            ..OpenScratch::default()
        };
        let opened = self.open_with(id, sealed, &mut scratch);
        DCTX.with(|d| *d.borrow_mut() = scratch.dctx.take());
        opened?;
        Ok(scratch.into_plaintext())
    }

    /// Like [`BlobCodec::open`], reusing `scratch`'s buffers (no allocation
    /// per chunk on hot paths such as restore); the plaintext is
    /// [`OpenScratch::plaintext`].
    pub fn open_with(&self, id: &ChunkId, sealed: &[u8], scratch: &mut OpenScratch) -> Result<()> {
        let integrity = |what: String| Error::Integrity(format!("chunk {id}: {what}"));
        aead::open_into(
            &self.keys.encryption,
            &self.aad(id),
            sealed,
            &mut scratch.body,
        )
        .map_err(|e| integrity(e.to_string()))?;
        scratch.zstd = match scratch.body.first() {
            Some(&CODEC_RAW) => false,
            Some(&CODEC_ZSTD) => {
                let dctx = match &mut scratch.dctx {
                    Some(d) => d,
                    None => scratch.dctx.insert(
                        zstd::bulk::Decompressor::new()
                            .map_err(|e| Error::Format(format!("zstd: {e}")))?,
                    ),
                };
                decompress_into(dctx, &scratch.body[1..], &mut scratch.plain).map_err(integrity)?;
                true
            }
            other => return Err(integrity(format!("unknown codec {other:?}"))),
        };
        if self.id(scratch.plaintext()) != *id {
            return Err(integrity("content does not match its id".into()));
        }
        Ok(())
    }
}

/// Reusable buffers for [`BlobCodec::open_with`].
#[derive(Default)]
pub struct OpenScratch {
    body: Vec<u8>,
    plain: Vec<u8>,
    zstd: bool,
    dctx: Option<zstd::bulk::Decompressor<'static>>,
}

impl OpenScratch {
    /// The plaintext of the last successfully opened blob.
    pub fn plaintext(&self) -> &[u8] {
        if self.zstd {
            &self.plain
        } else {
            self.body.get(1..).unwrap_or_default()
        }
    }

    fn into_plaintext(mut self) -> Vec<u8> {
        if self.zstd {
            self.plain
        } else {
            self.body.drain(..1.min(self.body.len()));
            self.body
        }
    }
}

/// Chunks at least this large are probed before zstd works on them all.
const PROBE_MIN: usize = 64 * 1024;
/// Bytes of each of the three samples (start, middle, end) of a probe.
const PROBE_SAMPLE: usize = 4 * 1024;

/// A reusable zstd compression context (one per worker thread).
///
/// Already-compressed data (media, archives, packages) gains nothing from
/// zstd but costs it as much time as text. So a large chunk is probed
/// first: three 4 KiB samples compressed at level 1 (about 1% of the work
/// of compressing a 1 MiB chunk at level 3). If they do not shrink by at
/// least 2%, the chunk is stored raw without compressing it. A chunk that
/// would have shrunk a little is then stored a little larger: never wrong,
/// since raw is always a valid encoding.
pub struct Compressor {
    ctx: zstd::bulk::Compressor<'static>,
    level: Option<i32>,
    /// Level 3 for large chunks, when this zstd accepts its settings.
    large: Option<LargeChunks>,
    probe: zstd::bulk::Compressor<'static>,
    sample: Vec<u8>,
}

impl Compressor {
    /// A fresh context.
    pub fn new() -> Result<Self> {
        let zstd = |level| {
            zstd::bulk::Compressor::new(level).map_err(|e| Error::Format(format!("zstd: {e}")))
        };
        Ok(Self {
            ctx: zstd(0)?,
            level: None,
            large: LargeChunks::new(),
            probe: zstd(1)?,
            sample: Vec::with_capacity(3 * PROBE_SAMPLE),
        })
    }

    /// Whether `data` is large and its samples do not compress: then it
    /// is not worth compressing.
    fn incompressible(&mut self, data: &[u8]) -> bool {
        if data.len() < PROBE_MIN {
            return false;
        }
        let mid = data.len() / 2;
        self.sample.clear();
        self.sample.extend_from_slice(&data[..PROBE_SAMPLE]);
        self.sample
            .extend_from_slice(&data[mid..mid + PROBE_SAMPLE]);
        self.sample
            .extend_from_slice(&data[data.len() - PROBE_SAMPLE..]);
        match self.probe.compress(&self.sample) {
            Ok(z) => z.len() * 50 >= self.sample.len() * 49,
            Err(_) => false,
        }
    }

    /// The zstd frame of `data` (with its content size in the header), or
    /// `None` if it is not worth it ([`Compressor::incompressible`]) or zstd
    /// failed: the caller then stores the data raw.
    fn compress(&mut self, data: &[u8], level: i32) -> Option<Vec<u8>> {
        if self.incompressible(data) {
            return None;
        }
        if level == LargeChunks::LEVEL && data.len() >= LARGE_MIN {
            if let Some(large) = &mut self.large {
                return large.compress(data);
            }
        }
        if self.level != Some(level) {
            self.ctx.set_compression_level(level).ok()?;
            self.level = Some(level);
        }
        self.ctx.compress(data).ok()
    }
}

/// Chunks at least this large get [`LargeChunks`]' settings at level 3.
const LARGE_MIN: usize = 256 * 1024;

/// zstd level 3 as set for chunks of 256 KiB and more (those of large files:
/// FastCDC's minimum is 256 KiB): a chain table of 32 Ki entries instead of
/// 64 Ki, and no block splitting before the match search. 7-9% less zstd
/// time on the large-file and disk-image sets for output about 1% larger, which
/// keeps every measured vault under restic's (a hash table of 64 Ki entries
/// too saved 12% but made the disk images' vault larger than restic's after
/// a modification). Any zstd decoder reads the frames: the format is
/// unchanged. Smaller chunks keep zstd's own tables for their size.
///
/// The block-splitter setting is experimental in zstd, so it is set through
/// the raw API on a context of its own (a zstd that refuses it just splits).
struct LargeChunks(std::ptr::NonNull<zstd_sys::ZSTD_CCtx>);

// SAFETY: a zstd context has no thread affinity; `LargeChunks` owns its
// context and only uses it through `&mut self`.
unsafe impl Send for LargeChunks {}

impl LargeChunks {
    const LEVEL: i32 = 3;

    /// A context with the settings, or `None` if this zstd refuses one of
    /// the stable ones (then large chunks get plain level 3).
    fn new() -> Option<Self> {
        use zstd_sys::ZSTD_cParameter as P;
        // SAFETY: ZSTD_createCCtx returns an owned context or null.
        let ctx = Self(std::ptr::NonNull::new(unsafe {
            zstd_sys::ZSTD_createCCtx()
        })?);
        let set = |param, value| {
            // SAFETY: the context is valid; zstd checks the parameter and value.
            unsafe {
                zstd_sys::ZSTD_isError(zstd_sys::ZSTD_CCtx_setParameter(
                    ctx.0.as_ptr(),
                    param,
                    value,
                )) == 0
            }
        };
        let stable = set(P::ZSTD_c_compressionLevel, Self::LEVEL) && set(P::ZSTD_c_chainLog, 15);
        // ZSTD_c_blockSplitterLevel = 1: no pre-splitting.
        set(P::ZSTD_c_experimentalParam20, 1);
        stable.then_some(ctx)
    }

    /// The zstd frame of `data`, with its content size in the header.
    fn compress(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        // SAFETY: ZSTD_compressBound is a pure size computation.
        let bound = unsafe { zstd_sys::ZSTD_compressBound(data.len()) };
        let mut out: Vec<u8> = Vec::with_capacity(bound);
        // SAFETY: `out` has `bound` writable bytes and `data` is readable
        // for its length; zstd writes at most `bound` bytes and returns how
        // many (or an error code, checked before the length is set).
        unsafe {
            let n = zstd_sys::ZSTD_compress2(
                self.0.as_ptr(),
                out.as_mut_ptr().cast(),
                bound,
                data.as_ptr().cast(),
                data.len(),
            );
            if zstd_sys::ZSTD_isError(n) != 0 {
                return None;
            }
            out.set_len(n);
        }
        Some(out)
    }
}

impl Drop for LargeChunks {
    fn drop(&mut self) {
        // SAFETY: the context is owned and freed once.
        unsafe {
            zstd_sys::ZSTD_freeCCtx(self.0.as_ptr());
        }
    }
}

fn decompress_into(
    dctx: &mut zstd::bulk::Decompressor<'static>,
    frame: &[u8],
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    let size = zstd::zstd_safe::get_frame_content_size(frame)
        .map_err(|_| "zstd frame header is invalid".to_string())?
        .ok_or("zstd frame has no content size")?;
    if size > MAX_PLAINTEXT as u64 {
        return Err(format!(
            "zstd frame claims {size} bytes, over the {MAX_PLAINTEXT}-byte limit"
        ));
    }
    out.clear();
    out.reserve(size as usize);
    let written = dctx
        .decompress_to_buffer(frame, out)
        .map_err(|e| format!("zstd: {e}"))?;
    if written as u64 != size {
        return Err("zstd frame is shorter than its header says".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn codec() -> BlobCodec {
        BlobCodec::new(VaultId([5; 16]), VaultKeys::generate(), 3)
    }

    #[test]
    fn remembered_zero_ids_are_the_hashes() {
        let c = codec();
        // More lengths than are remembered, each asked twice, around the
        // size where remembering starts; and a chunk that is zero but for
        // its last byte.
        for round in 0..2 {
            for len in (0..2 * ZERO_IDS).map(|i| ZERO_ID_MIN - 4 + i * 3) {
                let zeros = vec![0u8; len];
                assert_eq!(c.id(&zeros), c.hash(&zeros), "len {len} round {round}");
                let mut almost = zeros;
                *almost.last_mut().unwrap() = 1;
                assert_eq!(c.id(&almost), c.hash(&almost));
            }
        }
        assert_eq!(c.zero_ids.lock().unwrap().len(), ZERO_IDS);
        let len = ZERO_ID_MIN + 2;
        let zeros = c.hash(&vec![0u8; len]);
        assert!(c.is_known_zeros(&zeros, len as u32));
        assert!(!c.is_known_zeros(&zeros, len as u32 + 1));
        assert!(!c.is_known_zeros(&c.hash(&[1]), len as u32));
        // Another vault's key gives another id for the same zeros.
        let zeros = vec![0u8; ZERO_ID_MIN];
        assert_ne!(codec().id(&zeros), c.id(&zeros));
    }

    #[test]
    fn compressible_data_is_compressed_and_random_data_stored_raw() {
        let c = codec();
        let mut z = Compressor::new().unwrap();
        let text = b"abcabcabc".repeat(10_000);
        let sealed = c.seal(&c.id(&text), &text, &mut z);
        assert!(sealed.len() < text.len() / 10);
        assert_eq!(c.open(&c.id(&text), &sealed).unwrap(), text);

        let noise: Vec<u8> = (0..50_000).map(|_| rand::random()).collect();
        let sealed = c.seal(&c.id(&noise), &noise, &mut z);
        assert_eq!(sealed.len(), noise.len() + 1 + aead::OVERHEAD);
        assert_eq!(c.open(&c.id(&noise), &sealed).unwrap(), noise);
    }

    /// The probe skips zstd on large incompressible chunks only: random
    /// data is not compressed at all, while a large chunk whose samples
    /// compress (even if its start does not) still is.
    #[test]
    fn the_probe_skips_only_incompressible_chunks() {
        let mut z = Compressor::new().unwrap();
        let noise: Vec<u8> = (0..300_000).map(|_| rand::random()).collect();
        assert!(z.incompressible(&noise));
        assert!(z.compress(&noise, 3).is_none());
        let small: Vec<u8> = noise[..PROBE_MIN - 1].to_vec();
        assert!(!z.incompressible(&small), "small chunks are not probed");
        let mut mixed = noise[..PROBE_SAMPLE].to_vec();
        mixed.extend(b"text, text and more text. ".repeat(12_000));
        assert!(!z.incompressible(&mixed));
        let shrunk = z.compress(&mixed, 3).expect("compressed");
        assert!(shrunk.len() < mixed.len() / 5);
    }

    /// Large chunks at level 3 go through their own context: the frames
    /// decode with the content size in the header, and differ from plain
    /// level 3's (the settings took effect).
    #[test]
    fn large_chunks_use_their_own_settings_and_round_trip() {
        let mut z = Compressor::new().unwrap();
        assert!(z.large.is_some(), "the bundled zstd accepts the settings");
        let mut data: Vec<u8> = b"large chunks, their own settings. "
            .iter()
            .cycle()
            .take(LARGE_MIN * 3)
            .copied()
            .collect();
        for b in data.iter_mut().step_by(7) {
            *b = rand::random();
        }
        let frame = z.compress(&data, 3).expect("compressed");
        assert!(frame.len() < data.len() / 2);
        let mut dctx = zstd::bulk::Decompressor::new().unwrap();
        let mut out = Vec::new();
        decompress_into(&mut dctx, &frame, &mut out).unwrap();
        assert_eq!(out, data);
        let plain = zstd::bulk::compress(&data, 3).unwrap();
        assert_ne!(frame, plain);
        // Below the threshold, and at other levels, zstd's own settings.
        let small = &data[..LARGE_MIN - 1];
        assert_eq!(
            z.compress(small, 3).unwrap(),
            zstd::bulk::compress(small, 3).unwrap()
        );
        assert_eq!(
            z.compress(&data, 5).unwrap(),
            zstd::bulk::compress(&data, 5).unwrap()
        );
        let c = codec();
        let sealed = c.seal(&c.id(&data), &data, &mut z);
        assert_eq!(c.open(&c.id(&data), &sealed).unwrap(), data);
    }

    #[test]
    fn a_blob_under_another_id_or_vault_is_rejected() {
        let c = codec();
        let mut z = Compressor::new().unwrap();
        let (a, b) = (b"chunk a".to_vec(), b"chunk b".to_vec());
        let sealed_a = c.seal(&c.id(&a), &a, &mut z);
        assert!(matches!(
            c.open(&c.id(&b), &sealed_a),
            Err(Error::Integrity(_))
        ));
        let other = BlobCodec::new(VaultId([6; 16]), c.keys.clone(), 3);
        assert!(matches!(
            other.open(&c.id(&a), &sealed_a),
            Err(Error::Integrity(_))
        ));
    }

    #[test]
    fn ids_depend_on_the_key() {
        let (c1, c2) = (codec(), codec());
        assert_ne!(c1.id(b"same"), c2.id(b"same"));
        assert_eq!(c1.id(b"same"), c1.id(b"same"));
    }

    proptest! {
        #[test]
        fn round_trips(data in proptest::collection::vec(any::<u8>(), 0..5000), rep in 1usize..50) {
            let c = codec();
            let mut z = Compressor::new().unwrap();
            let data = data.repeat(rep);
            let id = c.id(&data);
            prop_assert_eq!(c.open(&id, &c.seal(&id, &data, &mut z)).unwrap(), data);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let c = codec();
            prop_assert!(matches!(c.open(&ChunkId([0; 32]), &bytes), Err(Error::Integrity(_))));
        }
    }
}
