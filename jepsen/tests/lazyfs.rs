//! The power-loss filesystem on a real FUSE mount: what a process fsynced
//! survives a power loss, what it only wrote (appends, overwrites,
//! truncations) is gone, and metadata (new files, renames) stays. Needs
//! root, as CI has.

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

use cairn_jepsen::lazyfs::LazyMount;

#[test]
fn a_power_loss_keeps_synced_data_and_drops_the_rest() {
    assert!(
        common::is_root(),
        "mounting a FUSE filesystem needs root (CI runs as root)"
    );
    let dir = tempfile::tempdir().unwrap();
    let (backing, mnt) = (dir.path().join("disk"), dir.path().join("mnt"));
    let mut m = LazyMount::mount(&backing, &mnt).unwrap();

    let mut synced = File::create(mnt.join("synced")).unwrap();
    synced.write_all(b"durable").unwrap();
    synced.sync_data().unwrap();
    synced.write_all(b" and lost").unwrap();
    synced.write_at(b"D", 0).unwrap();
    // Reads see every write before the power loss; the disk does not yet.
    assert_eq!(
        std::fs::read(mnt.join("synced")).unwrap(),
        b"Durable and lost"
    );
    assert_eq!(std::fs::read(backing.join("synced")).unwrap(), b"durable");

    let mut cut = File::create(mnt.join("cut")).unwrap();
    cut.write_all(b"0123456789").unwrap();
    cut.sync_all().unwrap();
    cut.set_len(3).unwrap();
    assert_eq!(std::fs::read(mnt.join("cut")).unwrap(), b"012");

    std::fs::write(mnt.join("unsynced"), b"never fsynced").unwrap();
    std::fs::create_dir(mnt.join("dir")).unwrap();
    let mut moved = File::create(mnt.join("tmp")).unwrap();
    moved.write_all(b"renamed").unwrap();
    moved.sync_all().unwrap();
    std::fs::rename(mnt.join("tmp"), mnt.join("dir/renamed")).unwrap();
    let mut sync_open = OpenOptions::new()
        .create(true)
        .write(true)
        .custom_flags(libc::O_DSYNC)
        .open(mnt.join("dsync"))
        .unwrap();
    sync_open.write_all(b"each write durable").unwrap();
    drop((synced, cut, moved, sync_open));
    assert!(m.unsynced_bytes() >= 9 + 13, "{}", m.unsynced_bytes());

    m.power_loss().unwrap();
    assert_eq!(m.unsynced_bytes(), 0);
    assert_eq!(std::fs::read(mnt.join("synced")).unwrap(), b"durable");
    assert_eq!(std::fs::read(mnt.join("cut")).unwrap(), b"0123456789");
    assert_eq!(std::fs::read(mnt.join("unsynced")).unwrap(), b"");
    assert_eq!(std::fs::read(mnt.join("dir/renamed")).unwrap(), b"renamed");
    assert!(!mnt.join("tmp").exists());
    assert_eq!(
        std::fs::read(mnt.join("dsync")).unwrap(),
        b"each write durable"
    );

    // The remounted filesystem takes writes and syncs as before.
    std::fs::write(mnt.join("after"), b"x").unwrap();
    File::open(mnt.join("after")).unwrap().sync_all().unwrap();
    assert_eq!(std::fs::read(backing.join("after")).unwrap(), b"x");
    drop(m);
    assert!(
        !std::fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .contains(mnt.to_str().unwrap()),
        "unmounted on drop"
    );
}
