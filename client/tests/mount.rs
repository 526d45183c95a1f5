//! `cairn mount` through the real binary (root and /dev/fuse): files of
//! two snapshots read back byte-exact, `latest` points at the newest, the
//! mount is read-only, and SIGINT unmounts and exits 0.

mod common;

use std::fs;
use std::path::Path;
use std::process::Stdio;

use common::{cairn, init_vault, run_json};

fn mounted(at: &Path) -> bool {
    let canon = fs::canonicalize(at).unwrap();
    fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(canon.to_str().unwrap()))
}

#[test]
fn two_snapshots_read_back_byte_exact_and_sigint_unmounts() {
    if !Path::new("/dev/fuse").exists() || unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root and /dev/fuse");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (vault, src, mnt) = (
        tmp.path().join("vault"),
        tmp.path().join("src"),
        tmp.path().join("mnt"),
    );
    fs::create_dir_all(src.join("d")).unwrap();
    fs::create_dir_all(&mnt).unwrap();
    init_vault(&vault);
    let v = vault.to_str().unwrap();
    // Several chunks, so reads cross chunk boundaries.
    let mut x: u64 = 7;
    let big: Vec<u8> = (0..5_000_000)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (x >> 33) as u8
        })
        .collect();
    fs::write(src.join("d/big.bin"), &big).unwrap();
    fs::write(src.join("a.txt"), "first\n").unwrap();
    let first = run_json(&["backup", "--vault", v, src.to_str().unwrap()]);
    fs::write(src.join("a.txt"), "second version\n").unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    let second = run_json(&["backup", "--vault", v, src.to_str().unwrap()]);

    let mut child = cairn()
        .args(["--json", "mount", "--vault", v])
        .arg(&mnt)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = serde_json::Deserializer::from_reader(stdout)
        .into_iter::<serde_json::Value>()
        .next();
    let Some(Ok(ready)) = ready else {
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let out = child.wait_with_output().unwrap();
        panic!(
            "no readiness document: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    assert_eq!(ready["snapshots"], 2);

    let rel = src.strip_prefix("/").unwrap();
    let snap = |s: &serde_json::Value| {
        mnt.join("snapshots")
            .join(s["id"].as_str().unwrap())
            .join(rel)
    };
    let check = std::panic::catch_unwind(|| {
        assert_eq!(fs::read(snap(&first).join("a.txt")).unwrap(), b"first\n");
        assert_eq!(
            fs::read(snap(&second).join("a.txt")).unwrap(),
            b"second version\n"
        );
        assert!(fs::read(snap(&first).join("d/big.bin")).unwrap() == big);
        assert!(fs::read(snap(&second).join("d/big.bin")).unwrap() == big);
        assert!(!snap(&first).join("link").exists());
        assert_eq!(
            fs::read_link(snap(&second).join("link")).unwrap(),
            Path::new("a.txt")
        );
        assert_eq!(
            fs::read_link(mnt.join("snapshots/latest")).unwrap(),
            Path::new(second["id"].as_str().unwrap())
        );
        let latest = mnt.join("snapshots/latest").join(rel).join("a.txt");
        assert_eq!(fs::read(&latest).unwrap(), b"second version\n");
        let mut names: Vec<_> = fs::read_dir(snap(&second))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a.txt", "d", "link"]);
        // Read-only, also for root.
        assert!(fs::write(snap(&second).join("a.txt"), "x").is_err());
        assert!(fs::write(snap(&second).join("new"), "x").is_err());
        assert!(mounted(&mnt));
    });

    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    if let Err(e) = check {
        std::panic::resume_unwind(e);
    }
    assert_eq!(status.code(), Some(0));
    assert!(!mounted(&mnt), "SIGINT unmounts");
}
