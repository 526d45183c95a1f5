//! Daily use against a real one-node cluster (issue 11): `cairn copy` from
//! a local vault into an account vault and back out into another local
//! vault, each copy re-encrypted and restored byte-exact, a second copy
//! storing nothing; then `cairnd admin user delete`: refused while the
//! account owns vaults, and afterwards the account's device token and its
//! password stop working at once.

use cairn_tests::{json_of, ok, same_tree, stderr, stdout, write_data, Cluster, Device};
use serde_json::Value;

const ALICE_PW: &str = "correct horse battery staple";
const LOCAL_PW: &str = "the local vault's own password";
const OTHER_PW: &str = "and the second local vault's";

fn count(v: &Value, key: &str) -> usize {
    v[key].as_array().map_or(usize::MAX, Vec::len)
}

#[test]
fn copy_into_and_out_of_an_account_vault_then_delete_the_account() {
    let cluster = Cluster::start(1, &[]);
    let node = &cluster.nodes[0];
    ok(
        "tier create",
        &node.admin(&["tier", "create", "one", "--replicas", "1"]),
    );
    cluster.create_user("alice", ALICE_PW);
    let homes = cluster.scratch("devices");
    let laptop = Device::new(&homes.join("laptop"), "laptop", ALICE_PW);
    ok("login", &laptop.login(&node.url(), "alice"));
    laptop.json(&["vault", "request", "--tier", "one", "--name", "main"]);

    // A local vault of the laptop's, with its own password, two snapshots.
    let local = cluster.scratch("local-vault");
    let l = local.to_str().expect("utf-8");
    let init = |dir: &str, pw: &str| {
        let out = laptop
            .command(&["vault", "init", "--local", dir, "--kdf-memory-kib", "1024"])
            .args(["--kdf-iterations", "1"])
            .env("CAIRN_PASSWORD", pw)
            .output()
            .expect("run cairn");
        ok("vault init", &out);
    };
    init(l, LOCAL_PW);
    let data = cluster.scratch("data");
    write_data(&data.join("big.bin"), 3 << 20, 5);
    std::fs::write(data.join("note.txt"), b"remember the milk").expect("note");
    let d = data.to_str().expect("utf-8");
    let as_local = |args: &[&str]| {
        let out = laptop
            .command(&[&["--json"], args].concat())
            .env("CAIRN_PASSWORD", LOCAL_PW)
            .output()
            .expect("run cairn");
        json_of(&format!("cairn {args:?}"), &out)
    };
    as_local(&["backup", "--vault", l, d]);
    std::fs::write(data.join("later.txt"), b"added later").expect("later");
    as_local(&["backup", "--vault", l, d]);

    // Local → account vault: the source's password from CAIRN_FROM_PASSWORD,
    // the account's from CAIRN_PASSWORD.
    let copy = |args: &[&str], from_pw: &str, pw: &str| {
        laptop
            .command(&[&["--json", "copy"], args].concat())
            .env("CAIRN_FROM_PASSWORD", from_pw)
            .env("CAIRN_PASSWORD", pw)
            .output()
            .expect("run cairn")
    };
    let into = json_of(
        "copy into main",
        &copy(&["--from", l, "--vault", "main"], LOCAL_PW, ALICE_PW),
    );
    assert_eq!(count(&into, "copied"), 2, "{into}");
    let listed = laptop.json(&["snapshots", "--vault", "main"]);
    let listed = listed.as_array().expect("snapshots");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|s| s["device"] == "laptop"), "{listed:?}");
    laptop.restore_and_compare("main", "latest", &cluster.scratch("r1"), &data);
    // The copies ran as backup jobs of the vault.
    let jobs = laptop.json(&["jobs"]);
    assert!(
        jobs.as_array()
            .expect("jobs")
            .iter()
            .any(|j| j["kind"] == "backup" && j["status"] == "succeeded"),
        "{jobs}"
    );
    // Again: nothing new.
    let again = json_of(
        "copy again",
        &copy(&["--from", l, "--vault", "main"], LOCAL_PW, ALICE_PW),
    );
    assert_eq!(
        (count(&again, "copied"), count(&again, "already_there")),
        (0, 2),
        "{again}"
    );

    // Account vault → another local vault (the account password is now the
    // source's), restored from there.
    let other = cluster.scratch("other-vault");
    let o = other.to_str().expect("utf-8");
    init(o, OTHER_PW);
    let out_of = json_of(
        "copy out of main",
        &copy(
            &["--from", "main", "--vault", o, "latest"],
            ALICE_PW,
            OTHER_PW,
        ),
    );
    assert_eq!(count(&out_of, "copied"), 1, "{out_of}");
    let target = cluster.scratch("r2");
    let t = target.to_str().expect("utf-8");
    let restored = laptop
        .command(&[
            "restore",
            "--vault",
            o,
            "latest",
            "--all-devices",
            "--target",
            t,
        ])
        .env("CAIRN_PASSWORD", OTHER_PW)
        .output()
        .expect("run cairn");
    ok("restore the second copy", &restored);
    let back = target.join(data.strip_prefix("/").expect("absolute"));
    same_tree(&data, &back).expect("the copy of a copy restores byte-exact");

    // An account with vaults is not deleted by mistake…
    let refused = node.admin(&["user", "delete", "alice"]);
    assert!(!refused.status.success(), "{}", stdout(&refused));
    assert!(
        stderr(&refused).contains("account_has_vaults") || stderr(&refused).contains("vault"),
        "{}",
        stderr(&refused)
    );
    ok("still logged in", &laptop.cairn(&["vault", "list"]));
    // …and with --delete-vaults it goes, with every way in.
    let gone = node.admin(&["user", "delete", "alice", "--delete-vaults", "--json"]);
    let gone = json_of("user delete", &gone);
    assert_eq!(gone["name"], "alice", "{gone}");
    let users = json_of("user list", &node.admin(&["user", "list", "--json"]));
    assert!(
        !users
            .as_array()
            .expect("users")
            .iter()
            .any(|u| u["name"] == "alice"),
        "{users}"
    );
    let token = laptop.cairn(&["vault", "list"]);
    assert_eq!(token.status.code(), Some(3), "{}", stderr(&token));
    let again = Device::new(&homes.join("again"), "again", ALICE_PW);
    let login = again.login(&node.url(), "alice");
    assert_eq!(login.status.code(), Some(3), "{}", stderr(&login));
}
