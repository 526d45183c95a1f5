//! CRC32C in hardware for the RocksDB this crate links.
//!
//! Debian's `librocksdb` (7.8.3, a portable build without SSE4.2) computes
//! the CRC32C of every write-ahead-log record and blob-file record with a
//! table lookup per byte. On a storage node taking a replicated backup that
//! was 40% of the node's CPU. The library calls
//! `rocksdb::crc32c::Extend(uint32_t, const char*, size_t)` through its
//! procedure linkage table, so a binary that exports a function of that
//! name replaces it for every caller in the library ([`extend`] here: three
//! hardware streams in parallel). The checksums are the same, so the files
//! are too; a binary that does not export the symbol simply keeps RocksDB's
//! own. rustc exports `export_name` functions from every executable that
//! links this crate (`nm -D target/release/cairnd` lists it), so `cairnd`,
//! `cairn` and the test binaries all get it; a test below checks that
//! RocksDB really calls it.

/// Calls made to [`rocksdb_extend`]: how the test sees that the
/// replacement is in effect. Counted in test builds only, so the hot path
/// of every log record does not share one contended counter.
#[cfg(test)]
static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// RocksDB's `crc32c::Extend`: the CRC32C of `len` bytes at `buf`,
/// continuing from `crc` (a previous result, or 0).
///
/// # Safety
///
/// `buf` must point to `len` readable bytes (or `len` be 0), as RocksDB's
/// own contract for this function says.
#[export_name = "_ZN7rocksdb6crc32c6ExtendEjPKcm"]
pub unsafe extern "C" fn rocksdb_extend(crc: u32, buf: *const u8, len: usize) -> u32 {
    #[cfg(test)]
    CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if len == 0 || buf.is_null() {
        return crc;
    }
    // SAFETY: the caller passes `len` readable bytes at `buf`.
    extend(crc, unsafe { std::slice::from_raw_parts(buf, len) })
}

/// The CRC32C (Castagnoli) of `data`, continuing from `crc` (0 to start).
///
/// The `crc32c` crate runs three hardware CRC streams side by side and
/// combines them: the instruction's latency is three cycles, so one stream
/// (what this module first did) used a third of it, and a storage node
/// taking a replicated backup spent 15% of its CPU here.
pub fn extend(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::Ordering;

    /// How many times [`rocksdb_extend`] has been called.
    fn rocksdb_calls() -> u64 {
        CALLS.load(Ordering::Relaxed)
    }

    /// The reference: one bit at a time.
    fn extend_bitwise(crc: u32, data: &[u8]) -> u32 {
        const POLY: u32 = 0x82f6_3b78;
        let mut c = !crc;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
            }
        }
        !c
    }

    #[test]
    fn known_answers() {
        // The CRC-32C check value, and RFC 3720's 32 zero bytes.
        assert_eq!(extend(0, b"123456789"), 0xe306_9283);
        assert_eq!(extend_bitwise(0, b"123456789"), 0xe306_9283);
        assert_eq!(extend(0, &[0u8; 32]), 0x8a91_36aa);
        assert_eq!(extend(0, b""), 0);
    }

    #[test]
    fn the_linked_rocksdb_calls_this_crc() {
        let dir = tempfile::tempdir().unwrap();
        let before = rocksdb_calls();
        {
            let db = rocksdb::DB::open_default(dir.path()).unwrap();
            db.put(b"key", vec![7u8; 100_000]).unwrap();
            db.flush().unwrap();
        }
        assert!(rocksdb_calls() > before, "RocksDB kept its own CRC32C");
        // What was written with it reads back with checksums verified.
        let db = rocksdb::DB::open_default(dir.path()).unwrap();
        let mut read = rocksdb::ReadOptions::default();
        read.set_verify_checksums(true);
        assert_eq!(
            db.get_opt(b"key", &read).unwrap().unwrap(),
            vec![7u8; 100_000]
        );
    }

    proptest! {
        #[test]
        fn hardware_bitwise_and_split_agree(data in proptest::collection::vec(any::<u8>(), 0..30_000), cut in 0usize..30_000) {
            let cut = cut.min(data.len());
            let whole = extend_bitwise(0, &data);
            prop_assert_eq!(extend(0, &data), whole);
            prop_assert_eq!(extend(extend(0, &data[..cut]), &data[cut..]), whole);
            // SAFETY: a live slice.
            prop_assert_eq!(unsafe { rocksdb_extend(0, data.as_ptr(), data.len()) }, whole);
        }
    }
}
