//! Accounts, devices and key custody end to end (issue 4): a 3-node
//! cluster, two accounts with two devices each, the real `cairn` client.
//!
//! One scenario, in order, because each step builds on the last: logins
//! through every node; a vault requested and backed up by one device and
//! restored by the other; the other account sees and reaches nothing of it;
//! revocation; a password change seen by both devices; the job log; and
//! finally a search of every node's files and of every byte the clients
//! sent for the password and the raw vault keys.

use cairn_tests::{
    files_containing, http, json_of, ok, stderr, write_data, Cluster, Device, RecordingProxy,
};
use serde_json::Value;

const ALICE_PW: &str = "correct horse battery staple";
const ALICE_PW2: &str = "a whole new passphrase 2026";
const BOB_PW: &str = "bob's own secret words";

fn vault_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("vault list is an array")
        .iter()
        .map(|v| v["id"].as_str().expect("vault id").to_string())
        .collect()
}

#[test]
fn two_accounts_two_devices_each_through_a_three_node_cluster() {
    let cluster = Cluster::start(3, &[]);
    let out = cluster.nodes[0].admin(&["tier", "create", "standard", "--replicas", "3"]);
    ok("tier create", &out);
    cluster.create_user("alice", ALICE_PW);
    cluster.create_user("bob", BOB_PW);

    // Alice's laptop talks to node 1 through a recording proxy, so the test
    // sees every byte it sends.
    let proxy = RecordingProxy::start(cluster.nodes[0].port);
    let proxy_url = format!("http://127.0.0.1:{}", proxy.port);
    let homes = cluster.scratch("devices");
    let laptop = Device::new(&homes.join("alice-laptop"), "laptop", ALICE_PW);
    let mut desktop = Device::new(&homes.join("alice-desktop"), "desktop", ALICE_PW);
    let bob1 = Device::new(&homes.join("bob-1"), "bob-laptop", BOB_PW);
    let bob2 = Device::new(&homes.join("bob-2"), "bob-phone", BOB_PW);

    // Login through each node.
    ok("laptop login", &laptop.login(&proxy_url, "alice"));
    ok(
        "desktop login",
        &desktop.login(&cluster.nodes[1].url(), "alice"),
    );
    ok("bob1 login", &bob1.login(&cluster.nodes[2].url(), "bob"));
    ok("bob2 login", &bob2.login(&cluster.nodes[0].url(), "bob"));

    // Wrong password: refused with exit 3, and nothing is registered.
    let wrong = Device::new(&homes.join("intruder"), "intruder", "not the password");
    let out = wrong.login(&cluster.nodes[2].url(), "alice");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = wrong.login(&cluster.nodes[2].url(), "nobody-here");
    assert_eq!(out.status.code(), Some(3), "unknown user: {}", stderr(&out));

    // The token lives in a 0600 file under XDG_CONFIG_HOME/cairn.
    let config = std::fs::read_dir(laptop.config_dir().join("cairn"))
        .expect("config dir")
        .flatten()
        .next()
        .expect("a config file");
    use std::os::unix::fs::PermissionsExt;
    let mode = config.metadata().expect("config meta").permissions().mode();
    assert_eq!(
        mode & 0o077,
        0,
        "config file must be private, mode {mode:o}"
    );

    // A new account has no vaults and no items.
    assert_eq!(bob1.json(&["vault", "list"]), Value::Array(vec![]));
    assert_eq!(bob1.json(&["item", "list"]), Value::Array(vec![]));

    // Alice's laptop requests a vault and backs up into it.
    laptop.json(&["vault", "request", "--tier", "standard", "--name", "main"]);
    let alice_vaults = laptop.json(&["vault", "list"]);
    assert_eq!(vault_ids(&alice_vaults).len(), 1);
    let vault_id = vault_ids(&alice_vaults)[0].clone();
    let data = cluster.scratch("alice-data");
    write_data(&data.join("big.bin"), 6 << 20, 1);
    std::fs::write(data.join("note.txt"), b"remember the milk").expect("note");
    laptop.json(&[
        "item",
        "set",
        "home",
        "--vault",
        "main",
        data.to_str().expect("utf-8"),
    ]);
    let backup = laptop.json(&["backup", "--item", "home"]);
    assert!(backup["id"].is_string(), "{backup}");

    // Items are private to their device; vaults are shared by the account.
    assert_eq!(desktop.json(&["item", "list"]), Value::Array(vec![]));
    assert_eq!(
        laptop.json(&["item", "list"]).as_array().map(Vec::len),
        Some(1)
    );
    let snaps = desktop.json(&["snapshots", "--vault", "main"]);
    let snaps = snaps.as_array().expect("snapshots array");
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["device"].as_str(), Some("laptop"), "{snaps:?}");

    // The desktop restores the laptop's snapshot, byte for byte.
    let target = cluster.scratch("desktop-restore");
    desktop.restore_and_compare("main", "latest", &target, &data);

    // Bob sees none of it, by name or by id, on any node.
    assert!(!vault_ids(&bob1.json(&["vault", "list"])).contains(&vault_id));
    let out = bob1.cairn(&["snapshots", "--vault", "main"]);
    assert!(!out.status.success(), "bob must not reach alice's vault");
    let bob_token = token_of(&bob1);
    for node in &cluster.nodes {
        for path in [
            format!("/api/v1/vaults/{vault_id}"),
            format!("/api/v1/vaults/{vault_id}/snapshots"),
        ] {
            let auth = format!("Bearer {bob_token}");
            let (code, body) =
                http(node.port, "GET", &path, &[("Authorization", &auth)], b"").expect("answer");
            assert_eq!(
                code,
                404,
                "{path} on node {}: {}",
                node.id,
                String::from_utf8_lossy(&body)
            );
        }
    }

    // The raw vault keys (from `cairn-debug`, not the production `cairn`),
    // for the search at the end.
    let keys = json_of(
        "cairn-debug keys",
        &std::process::Command::new(cairn_tests::bin("cairn-debug"))
            .args(["keys", "--vault", "main"])
            .env(
                "CAIRN_CONFIG",
                laptop.config_dir().join("cairn/profile.json"),
            )
            .env("HOME", homes.join("alice-laptop"))
            .env("XDG_CACHE_HOME", homes.join("alice-laptop/cache"))
            .env("CAIRN_PASSWORD", &laptop.password)
            .env_remove("CAIRN_PASSWORD_FILE")
            .output()
            .expect("run cairn-debug"),
    );

    // Revoke the desktop from the laptop: refused at once on every node.
    let devices = laptop.json(&["devices", "list"]);
    let desktop_id = devices
        .as_array()
        .expect("devices array")
        .iter()
        .find(|d| d["name"] == "desktop")
        .and_then(|d| d["id"].as_str())
        .expect("desktop listed")
        .to_string();
    let desktop_token = token_of(&desktop);
    ok("revoke", &laptop.cairn(&["devices", "revoke", &desktop_id]));
    for node in &cluster.nodes {
        let auth = format!("Bearer {desktop_token}");
        let (code, _) = http(
            node.port,
            "GET",
            "/api/v1/vaults",
            &[("Authorization", &auth)],
            b"",
        )
        .expect("answer");
        assert_eq!(code, 401, "revoked token on node {}", node.id);
    }
    let out = desktop.cairn(&["snapshots", "--vault", "main"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "revoked device: {}",
        stderr(&out)
    );
    ok(
        "desktop logs in again",
        &desktop.login(&cluster.nodes[2].url(), "alice"),
    );

    // Password change on the laptop: one event re-wraps the vault keys.
    ok(
        "key passwd",
        &laptop.cairn_with(&["key", "passwd"], Some(ALICE_PW2)),
    );
    let laptop = Device::new(&homes.join("alice-laptop"), "laptop", ALICE_PW2);
    laptop.json(&["snapshots", "--vault", "main"]);
    // The desktop's old token and old password stop working…
    let out = desktop.cairn(&["snapshots", "--vault", "main"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "old token after passwd: {}",
        stderr(&out)
    );
    let out = desktop.login(&cluster.nodes[1].url(), "alice");
    assert_eq!(out.status.code(), Some(3), "old password after passwd");
    // …and the new password restores the same data.
    desktop.password = ALICE_PW2.into();
    ok(
        "desktop login with the new password",
        &desktop.login(&cluster.nodes[1].url(), "alice"),
    );
    desktop.restore_and_compare("main", "latest", &target, &data);

    // The job log: the backup and both restores, with status and sizes.
    let jobs = laptop.json(&["jobs"]);
    let jobs = jobs.as_array().expect("jobs array");
    let finished = |kind: &str| {
        jobs.iter()
            .filter(|j| j["kind"] == kind && j["status"] == "succeeded")
            .count()
    };
    assert!(finished("backup") >= 1, "{jobs:?}");
    assert!(finished("restore") >= 2, "{jobs:?}");
    assert!(finished("login") >= 2, "logins are audited: {jobs:?}");
    assert!(
        jobs.iter()
            .any(|j| j["kind"] == "backup" && j["bytes"].as_u64() >= Some(6 << 20)),
        "{jobs:?}"
    );
    // Bob's job log holds only bob's jobs; the admin sees both accounts'.
    let bob_jobs = bob1.json(&["jobs"]);
    assert!(bob_jobs
        .as_array()
        .expect("array")
        .iter()
        .all(|j| j["user"] == "bob"));

    let all = json_of("admin jobs", &cluster.nodes[2].admin(&["jobs", "--json"]));
    for user in ["alice", "bob"] {
        assert!(
            all.as_array()
                .expect("array")
                .iter()
                .any(|j| j["user"] == user),
            "{all}"
        );
    }

    // The admin lists every account's devices and revokes one of bob's.
    let devices = json_of(
        "admin device list",
        &cluster.nodes[1].admin(&["device", "list", "--json"]),
    );
    let phone = devices
        .as_array()
        .expect("devices")
        .iter()
        .find(|d| d["name"] == "bob-phone")
        .and_then(|d| d["id"].as_str())
        .expect("bob's phone listed")
        .to_string();
    ok(
        "admin revoke",
        &cluster.nodes[1].admin(&["device", "revoke", &phone]),
    );
    let out = bob2.cairn(&["vault", "list"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "revoked by the admin: {}",
        stderr(&out)
    );
    bob1.json(&["vault", "list"]);

    // A wrong password on a logged-in device: exit 3, nothing decrypted.
    let confused = Device::new(&homes.join("alice-laptop"), "laptop", ALICE_PW);
    let out = confused.cairn(&["snapshots", "--vault", "main"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "old password on the laptop: {}",
        stderr(&out)
    );

    // Nothing secret reached the server: not the passwords, not the raw
    // vault keys, in any node's files or in anything the laptop sent.
    let mut secrets: Vec<(String, Vec<u8>)> = vec![
        ("old password".into(), ALICE_PW.as_bytes().to_vec()),
        ("new password".into(), ALICE_PW2.as_bytes().to_vec()),
        ("bob's password".into(), BOB_PW.as_bytes().to_vec()),
    ];
    for (name, value) in keys.as_object().expect("keys object") {
        if let Some(h) = value.as_str().filter(|h| h.len() == 64) {
            secrets.push((format!("{name} (hex)"), h.as_bytes().to_vec()));
            secrets.push((format!("{name} (raw)"), hex_decode(h)));
        }
    }
    assert!(secrets.len() >= 5, "debug keys printed no keys: {keys}");
    let sent = proxy.sent();
    // big.bin is half random: at least 3 MiB of sealed chunks went through.
    assert!(
        sent.len() > 3 << 20,
        "the proxy saw the upload ({} bytes)",
        sent.len()
    );
    for (name, secret) in &secrets {
        for node in &cluster.nodes {
            let hits = files_containing(&node.dir, secret);
            assert!(hits.is_empty(), "{name} found in {hits:?}");
        }
        assert!(
            !cairn_tests::contains(&sent, secret),
            "{name} was sent to the server"
        );
    }
}

/// The bearer token in a device's config file.
fn token_of(device: &Device) -> String {
    let dir = device.config_dir().join("cairn");
    for e in std::fs::read_dir(&dir).expect("config dir").flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        if let Some(start) = text.find("cairn_") {
            let token: String = text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            return token;
        }
    }
    panic!("no token in {}", dir.display());
}

fn hex_decode(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .filter_map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok())
        .collect()
}
