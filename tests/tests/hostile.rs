//! A malicious server against the real `cairn`: a scripted relay in front of
//! a real node ([`HostileServer`]) rewrites its answers, one attack at a
//! time. Each attack must be refused with a clear error (and nothing written
//! outside a restore's target):
//!
//! - KDF downgrade at login (nothing derived from the password is sent), and
//!   different parameters after login (pinned);
//! - a record whose root is swapped for an older snapshot's, a fabricated
//!   record, and a rollback that hides the newest snapshot;
//! - oversized answers, announced and not;
//! - reported plain-`http` nodes off loopback;
//! - chunks swapped in a `chunks/get` answer.

use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use cairn_tests::hostile::{hide_other_nodes, Answer, HostileServer, Request};
use cairn_tests::{ok, stderr, write_data, Cluster, Device};
use serde_json::{json, Value};

const PW: &str = "the server is not on our side";

/// Which attack the relay runs.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    PassThrough,
    WeakKdf,
    OtherSalt,
    SwapRoot,
    Fabricate,
    Rollback,
    HugeAnnounced,
    HugeUnannounced,
    HttpNodes,
    SwapChunks,
}

fn is_snapshot_list(r: &Request) -> bool {
    r.method == "GET" && r.path.starts_with("/api/v1/vaults/") && r.path.ends_with("/snapshots")
}

fn tamper(mode: Mode, r: &Request, a: &mut Answer) {
    // The relay hides the real node, so the client cannot fail over around
    // it (except where an attack is about the nodes reported).
    if mode != Mode::HttpNodes {
        hide_other_nodes(r, a);
    }
    match mode {
        Mode::PassThrough => {}
        Mode::WeakKdf if r.path == "/api/v1/login/params" => {
            a.set_json(&json!({"memory_kib": 8, "iterations": 1, "parallelism": 1,
                "salt": "00".repeat(16)}));
        }
        Mode::OtherSalt if r.path == "/api/v1/account" => {
            let mut v = a.json();
            v["kdf"]["salt"] = json!("5a".repeat(16));
            a.set_json(&v);
        }
        Mode::HttpNodes if r.path == "/api/v1/account" => {
            let mut v = a.json();
            v["nodes"] = json!(["http://cairn-hostile.invalid:80"]);
            a.set_json(&v);
        }
        Mode::SwapRoot if is_snapshot_list(r) => {
            let mut v = a.json();
            let list = v.as_array_mut().expect("a list");
            let oldest = list
                .iter()
                .min_by_key(|s| s["started_at"].as_u64())
                .cloned();
            let newest = list.iter_mut().max_by_key(|s| s["started_at"].as_u64());
            if let (Some(o), Some(n)) = (oldest, newest) {
                n["root"] = o["root"].clone();
            }
            a.set_json(&v);
        }
        Mode::Fabricate if is_snapshot_list(r) => {
            let mut v = a.json();
            let list = v.as_array_mut().expect("a list");
            let mut fake = list[0].clone();
            fake["id"] = json!("ab".repeat(16));
            fake["started_at"] = json!(4_102_444_800_000u64);
            fake["finished_at"] = json!(4_102_444_800_001u64);
            fake["sealed_meta"] = json!("cd".repeat(120));
            list.push(fake);
            a.set_json(&v);
        }
        Mode::Rollback if is_snapshot_list(r) => {
            let mut v = a.json();
            let list = v.as_array_mut().expect("a list");
            let newest = list
                .iter()
                .enumerate()
                .max_by_key(|(_, s)| s["started_at"].as_u64())
                .map(|(i, _)| i);
            if let Some(i) = newest {
                list.remove(i);
            }
            a.set_json(&v);
        }
        Mode::HugeAnnounced | Mode::HugeUnannounced if is_snapshot_list(r) => {
            a.endless = Some(1 << 30);
            a.announce_len = mode == Mode::HugeAnnounced;
        }
        Mode::SwapChunks if r.path.ends_with("/chunks/get") && a.status == 200 => {
            let frames = cairn_proto::frames::decode_frames(&a.body).expect("frames");
            if frames.len() >= 2 {
                let mut out = cairn_proto::frames::frames_header();
                let n = frames.len();
                for (i, (id, _)) in frames.iter().enumerate() {
                    // Every id paired with the next chunk's bytes.
                    cairn_proto::frames::push_frame(&mut out, id, frames[(i + 1) % n].1);
                }
                a.body = out;
            }
        }
        _ => {}
    }
}

fn code(o: &std::process::Output) -> Option<i32> {
    o.status.code()
}

#[test]
fn every_attack_of_a_malicious_server_is_refused() {
    let cluster = Cluster::start(1, &[]);
    ok(
        "tier create",
        &cluster.nodes[0].admin(&["tier", "create", "one", "--replicas", "1"]),
    );
    cluster.create_user("mallory-victim", PW);
    let node_port = cluster.nodes[0].port;
    let mode = Arc::new(AtomicU8::new(Mode::PassThrough as u8));
    let modes = [
        Mode::PassThrough,
        Mode::WeakKdf,
        Mode::OtherSalt,
        Mode::SwapRoot,
        Mode::Fabricate,
        Mode::Rollback,
        Mode::HugeAnnounced,
        Mode::HugeUnannounced,
        Mode::HttpNodes,
        Mode::SwapChunks,
    ];
    let current = mode.clone();
    let relay = HostileServer::start(node_port, move |r, a| {
        let m = current.load(Ordering::SeqCst);
        tamper(modes[m as usize], r, a);
    });
    let set = |m: Mode| mode.store(m as u8, Ordering::SeqCst);

    let homes = cluster.scratch("devices");
    // KDF downgrade at the first login: refused before the login key goes out.
    set(Mode::WeakKdf);
    let newcomer = Device::new(&homes.join("n"), "new", PW);
    let out = newcomer.login(&relay.url(), "mallory-victim");
    assert_eq!(code(&out), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("weaker"), "{}", stderr(&out));
    assert!(
        !relay.requests().iter().any(|r| r.path == "/api/v1/login"),
        "a login key derived with the weak parameters was sent"
    );

    // The victim logs in through the relay while it behaves, and backs up twice.
    set(Mode::PassThrough);
    let victim = Device::new(&homes.join("v"), "victim", PW);
    ok("login", &victim.login(&relay.url(), "mallory-victim"));
    victim.json(&["vault", "request", "--tier", "one", "--name", "main"]);
    let data = cluster.scratch("data");
    write_data(&data.join("old.bin"), 300_000, 1);
    let first = victim.json(&["backup", "--vault", "main", data.to_str().expect("utf-8")]);
    write_data(&data.join("new.bin"), 300_000, 2);
    let second = victim.json(&["backup", "--vault", "main", data.to_str().expect("utf-8")]);
    assert_ne!(first["root"], second["root"]);
    victim.json(&["snapshots", "--vault", "main"]);

    let target = homes.join("target");
    let target_s = target.to_str().expect("utf-8").to_string();
    let restore_latest = || {
        let _ = std::fs::remove_dir_all(&target);
        victim.cairn(&[
            "restore", "--vault", "main", "latest", "--target", &target_s,
        ])
    };

    // Other KDF parameters after login: pinned, refused until a new login.
    set(Mode::OtherSalt);
    let out = victim.cairn(&["snapshots", "--vault", "main"]);
    assert_eq!(code(&out), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("log in again"), "{}", stderr(&out));

    // The newest record with the oldest one's root: refused, nothing restored.
    set(Mode::SwapRoot);
    let out = restore_latest();
    assert_eq!(code(&out), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("altered"), "{}", stderr(&out));
    assert!(dir_is_empty_or_missing(&target));

    // A fabricated record in the future.
    set(Mode::Fabricate);
    let out = victim.cairn(&["snapshots", "--vault", "main"]);
    assert_eq!(code(&out), Some(4), "{}", stderr(&out));

    // The newest snapshot hidden: a rollback, named.
    set(Mode::Rollback);
    let out = restore_latest();
    assert_eq!(code(&out), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("rollback"), "{}", stderr(&out));
    let second_id = second["id"].as_str().expect("id");
    assert!(stderr(&out).contains(second_id), "{}", stderr(&out));

    // Endless answers, with and without an announced length: refused with
    // bounded memory.
    for m in [Mode::HugeAnnounced, Mode::HugeUnannounced] {
        set(m);
        let out = victim.cairn(&["snapshots", "--vault", "main"]);
        assert_ne!(code(&out), Some(0), "{}", stderr(&out));
        assert!(stderr(&out).contains("larger than"), "{}", stderr(&out));
    }

    // A plain-http node off loopback is never taken into the profile.
    set(Mode::HttpNodes);
    ok(
        "snapshots",
        &victim.cairn(&["snapshots", "--vault", "main"]),
    );
    let profile =
        std::fs::read_to_string(victim.config_dir().join("cairn/profile.json")).expect("profile");
    assert!(!profile.contains("cairn-hostile.invalid"), "{profile}");

    // Swapped chunks: every file damaged is named and removed, exit 4, and
    // nothing lands outside the target.
    set(Mode::SwapChunks);
    let others = || {
        let mut names: Vec<_> = std::fs::read_dir(&homes)
            .expect("homes")
            .map(|e| e.expect("entry").file_name())
            .filter(|n| n != "target")
            .collect();
        names.sort();
        names
    };
    let before = others();
    let out = restore_latest();
    assert_eq!(code(&out), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("new.bin"), "{}", stderr(&out));
    let restored = target.join(data.strip_prefix("/").expect("absolute"));
    assert!(
        !restored.join("new.bin").exists(),
        "a damaged file was left"
    );
    assert_eq!(others(), before);

    // The relay behaving again: everything restores.
    set(Mode::PassThrough);
    let out = restore_latest();
    assert_eq!(code(&out), Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(restored.join("new.bin")).expect("restored"),
        std::fs::read(data.join("new.bin")).expect("source")
    );
    let _: Value = victim.json(&["snapshots", "--vault", "main"]);
}

fn dir_is_empty_or_missing(p: &Path) -> bool {
    std::fs::read_dir(p).map_or(true, |mut d| d.next().is_none())
}
