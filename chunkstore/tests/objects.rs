//! A chunk store with its values in an object store, against real servers
//! on loopback (s3s-fs; OpenSSH's sftp-server): concurrent puts of the
//! same and of different chunks upload at once and still count each chunk
//! once and lose no object, also while GC sweeps and the orphan sweep run;
//! the orphan sweep deletes only old objects nothing describes; an SFTP
//! server whose disk fills up stores each object whole or not at all.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant, SystemTime};

use cairn_chunkstore::object::{ObjectUrl, Objects};
use cairn_chunkstore::peers::Swept;
use cairn_chunkstore::{ChunkKey, Durability, PutMode, RocksStore, Store, StoreOptions, Usage};
use cairn_proto::{ChunkId, VaultId};
use cairn_testservers::{pseudo_random, S3sFs, Sshd, Tmpfs, BUCKET};

const VAULT: VaultId = VaultId([7; 16]);
const WRITERS: u32 = 6;
const SHARED: u32 = 40;
const OWN: u32 = 10;

fn key(i: u32) -> ChunkKey {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&i.to_be_bytes());
    ChunkKey::new(VAULT, ChunkId(id))
}

/// A value of a few KiB that differs per chunk and per writer (chunks are
/// sealed with random nonces: two uploads of one chunk differ).
fn value(i: u32, writer: u32) -> Vec<u8> {
    let len = 2048 + (i as usize % 7) * 512;
    (0..len)
        .map(|n| (n as u32 ^ i.wrapping_mul(31) ^ writer.wrapping_mul(7)) as u8)
        .collect()
}

fn open(url: &str, env: &[(String, String)], dir: &std::path::Path) -> RocksStore {
    let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let objects = Objects::open(&ObjectUrl::parse(url).expect("url"), &lookup).expect("objects");
    let store =
        RocksStore::open_on_objects(dir, &StoreOptions::default(), objects).expect("open store");
    store.track_usage().expect("usage");
    store
}

/// Puts chunks `ids` as writer `w` in batches of `batch`; answers each id
/// with whether it was new.
fn put(store: &RocksStore, ids: &[u32], w: u32, batch: usize, now: u64) -> Vec<(u32, bool)> {
    let mut out = Vec::new();
    for step in ids.chunks(batch) {
        let values: Vec<Vec<u8>> = step.iter().map(|&i| value(i, w)).collect();
        let chunks: Vec<(ChunkKey, &[u8])> = step
            .iter()
            .zip(&values)
            .map(|(&i, v)| (key(i), v.as_slice()))
            .collect();
        let new = store
            .put_chunks(&chunks, now, Durability::Now, PutMode::KeepExisting)
            .expect("put");
        out.extend(step.iter().copied().zip(new));
    }
    out
}

/// The usage a full scan of the metadata gives, after checking that every
/// described chunk reads back whole (its object is there and matches).
fn scan(store: &RocksStore) -> Usage {
    let mut u = Usage::default();
    let mut keys = Vec::new();
    store
        .for_each_chunk(&mut |k, m| {
            u.chunks += 1;
            u.bytes += u64::from(m.size);
            keys.push(k);
            Ok(())
        })
        .expect("scan");
    for k in keys {
        let read = store.get(&k).expect("a described chunk reads whole");
        assert!(read.is_some(), "{k:?} lost");
    }
    u
}

/// Writers of the same and of different chunks at once: each shared chunk
/// is new to exactly one writer, usage matches the metadata, every chunk's
/// object is there. Then writers race GC sweeps and orphan sweeps (with a
/// cutoff in the future, so only the claims protect puts in flight):
/// "new" answers minus deletions equal what is stored, and nothing
/// described has lost its object.
fn concurrent_writers(store: &RocksStore, objects_stored: &dyn Fn() -> usize) {
    let started = Instant::now();
    let news: Vec<(u32, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                s.spawn(move || {
                    let mut ids: Vec<u32> = (0..SHARED).collect();
                    ids.rotate_left((w * 7 % SHARED) as usize);
                    ids.extend((0..OWN).map(|i| 1000 + w * 100 + i));
                    put(store, &ids, w, 4, 100)
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("writer"))
            .collect()
    });
    eprintln!(
        "{} puts by {WRITERS} writers in {:?}",
        WRITERS * (SHARED + OWN),
        started.elapsed()
    );
    for i in 0..SHARED {
        let firsts = news.iter().filter(|(j, new)| *j == i && *new).count();
        assert_eq!(firsts, 1, "chunk {i} was new to {firsts} writers");
    }
    let expected = u64::from(SHARED + WRITERS * OWN);
    let usage = store.usage(&VAULT).expect("usage");
    assert_eq!(usage.chunks, expected);
    assert_eq!(usage, scan(store), "usage matches the metadata");
    assert_eq!(objects_stored() as u64, expected, "one object per chunk");

    // Writers racing deletions and orphan sweeps of the same chunks.
    let created = AtomicU64::new(0);
    let deleted = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let future = SystemTime::now() + Duration::from_secs(3600);
    std::thread::scope(|s| {
        s.spawn(|| {
            let ids: Vec<ChunkKey> = (0..SHARED).map(key).collect();
            while !done.load(SeqCst) {
                let fates = store.delete_untouched(&ids, u64::MAX).expect("sweep");
                let n = fates.iter().filter(|f| **f == Swept::Deleted).count();
                deleted.fetch_add(n as u64, SeqCst);
                store.sweep_orphans(future).expect("orphan sweep");
            }
        });
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let created = &created;
                s.spawn(move || {
                    let ids: Vec<u32> = (0..SHARED).collect();
                    for round in 0..3 {
                        let new = put(store, &ids, w + round, 5, 200);
                        let n = new.iter().filter(|(_, n)| *n).count();
                        created.fetch_add(n as u64, SeqCst);
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
        done.store(true, SeqCst);
    });
    let stored = scan(store);
    let (created, deleted) = (created.load(SeqCst), deleted.load(SeqCst));
    eprintln!("racing GC: {created} chunks created, {deleted} deleted");
    assert!(deleted > 0, "the sweeps raced the writers");
    assert_eq!(
        expected + created - deleted,
        stored.chunks,
        "every new chunk counted once"
    );
    assert_eq!(store.usage(&VAULT).expect("usage"), stored);
    assert_eq!(objects_stored() as u64, stored.chunks);
}

/// The orphan sweep: a chunk object nothing describes (a crash between
/// object and metadata) and a leftover temporary are deleted once old
/// enough; described chunks and other names are kept.
fn orphans(store: &RocksStore, objects_stored: &dyn Fn() -> usize) {
    let objects = store.objects().expect("an object store");
    let described = key(5000);
    store
        .put_batch(&[(described, &value(5000, 0))], 1, Durability::Now)
        .expect("put");
    let orphan = key(5001);
    let orphan_name = format!("chunks/{}/{}", orphan.vault, orphan.chunk);
    objects.write(&orphan_name, value(5001, 0)).expect("write");
    let temporary = format!("{orphan_name}.tmp-0011223344556677");
    objects.write(&temporary, vec![1, 2, 3]).expect("write");
    objects
        .write("chunks/README", b"not ours".to_vec())
        .expect("write");
    let before = objects_stored();
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let swept = store.sweep_orphans(an_hour_ago).expect("sweep");
    assert_eq!(swept, 0, "young objects are kept");
    let later = SystemTime::now() + Duration::from_secs(60);
    assert_eq!(store.sweep_orphans(later).expect("sweep"), 2);
    assert_eq!(objects.read(&orphan_name).expect("read"), None);
    assert_eq!(objects.read(&temporary).expect("read"), None);
    assert!(objects.read("chunks/README").expect("read").is_some());
    assert_eq!(objects_stored(), before - 1);
    assert!(store.get(&described).expect("read").is_some());
    // The chunk whose object was swept can be stored again.
    let new = put(store, &[5001], 1, 1, 3);
    assert_eq!(new, vec![(5001, true)]);
    assert_eq!(store.get(&orphan).expect("read"), Some(value(5001, 1)));
}

#[test]
fn s3_values_take_concurrent_writers_and_sweep_orphans() {
    let Some(s3) = S3sFs::start() else { return };
    let meta = tempfile::tempdir().expect("temp dir");
    let store = open(&format!("s3://{BUCKET}/node"), &s3.env(), meta.path());
    let count = || {
        s3.files_under("node/chunks")
            .iter()
            .filter(|p| !p.ends_with("README"))
            .count()
    };
    concurrent_writers(&store, &count);
    orphans(&store, &count);
}

#[test]
fn sftp_values_take_concurrent_writers_and_sweep_orphans() {
    let Some(sshd) = Sshd::start() else { return };
    let meta = tempfile::tempdir().expect("temp dir");
    let store = open(&sshd.url("node"), &sshd.env(), meta.path());
    let root = sshd.dir().join("vaults/node/chunks");
    let count = || {
        let vaults = std::fs::read_dir(&root).into_iter().flatten().flatten();
        vaults
            .flat_map(|v| std::fs::read_dir(v.path()).into_iter().flatten().flatten())
            .filter(|f| f.file_type().is_ok_and(|t| t.is_file()))
            .filter(|f| !f.file_name().to_string_lossy().contains(".tmp-"))
            .count()
    };
    concurrent_writers(&store, &count);
    orphans(&store, &count);
}

/// Object `i` of the full-disk test: 3 MiB that differ per object.
fn object(i: u32) -> Vec<u8> {
    pseudo_random(3 << 20, i.into())
}

/// The SFTP server's disk fills up while objects are written four at a
/// time: every write that returns `Ok` stored its object whole, every one
/// that fails says so and leaves no object under its name, and with the
/// disk grown the failed ones store on a second try. (OpenDAL's retry of a
/// failed close on the same SFTP file once dropped the failed part and
/// reported success, which left truncated packs in vaults.)
#[test]
fn sftp_writes_on_a_full_disk_store_whole_objects_or_nothing() {
    let Some(sshd) = Sshd::start() else { return };
    let dir = sshd.dir().join("vaults/full");
    let disk = Tmpfs::mount(&dir, "20m");
    let env = sshd.env();
    let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let url = ObjectUrl::parse(&sshd.url("full")).expect("url");
    let objects = Objects::open(&url, &lookup).expect("objects");
    let write_all = |ids: Vec<u32>| -> Vec<(u32, Result<(), String>)> {
        let next = std::sync::Mutex::new(ids.into_iter());
        let done = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| loop {
                    let Some(i) = next.lock().unwrap().next() else {
                        break;
                    };
                    let r = objects.write(&format!("o/{i}"), object(i));
                    done.lock().unwrap().push((i, r.map_err(|e| e.to_string())));
                });
            }
        });
        done.into_inner().unwrap()
    };
    let first = write_all((0..12).collect());
    let failed: Vec<u32> = first
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|r| r.0)
        .collect();
    assert!(!failed.is_empty(), "36 MiB fit on a 20 MiB disk");
    for (i, r) in &first {
        let stored = std::fs::read(dir.join(format!("o/{i}"))).ok();
        match r {
            Ok(()) => assert!(stored == Some(object(*i)), "object {i} is not whole"),
            Err(e) => {
                assert!(stored.is_none(), "failed object {i} left under its name");
                assert!(e.contains("full disk"), "{e}");
            }
        }
    }
    let names = std::fs::read_dir(dir.join("o")).expect("o/").flatten();
    let left: Vec<_> = names
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "failed writes left temporaries: {left:?}");
    disk.resize("64m");
    for (i, r) in write_all(failed) {
        assert!(r.is_ok(), "object {i}: {r:?}");
        let stored = std::fs::read(dir.join(format!("o/{i}"))).expect("stored");
        assert!(stored == object(i), "object {i} is not whole");
    }
}
