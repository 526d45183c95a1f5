//! `cairn key add|list|remove` through the real binary: several passwords
//! and a recovery key open the same local vault, removal keeps a way in,
//! and account vaults are refused with a clear message.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;

use common::{assert_same_tree, cairn, init_vault, restored, PASSWORD};

/// Runs `cairn --json ARGS` with `CAIRN_PASSWORD=secret` (and
/// `CAIRN_NEW_PASSWORD=new` when given), expecting exit code `code`.
fn run_as(secret: &str, new: Option<&str>, args: &[&str], code: i32) -> Output {
    let mut c = cairn();
    c.env("CAIRN_PASSWORD", secret).arg("--json").args(args);
    c.env_remove("CAIRN_NEW_PASSWORD_FILE")
        .env_remove("CAIRN_NEW_PASSWORD_COMMAND");
    match new {
        Some(n) => c.env("CAIRN_NEW_PASSWORD", n),
        None => c.env_remove("CAIRN_NEW_PASSWORD"),
    };
    let out = c.output().expect("run cairn");
    assert_eq!(
        out.status.code(),
        Some(code),
        "cairn {args:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

fn slots(secret: &str, v: &str) -> serde_json::Value {
    json(&run_as(secret, None, &["key", "list", "--vault", v], 0))
}

fn restores_with(secret: &str, v: &str, src: &Path, target: &Path) {
    run_as(
        secret,
        None,
        &[
            "restore",
            "--vault",
            v,
            "latest",
            "--target",
            target.to_str().unwrap(),
        ],
        0,
    );
    assert_same_tree(src, &restored(target, src));
}

#[test]
fn passwords_and_a_recovery_key_open_the_vault_and_removal_keeps_a_way_in() {
    let tmp = tempfile::tempdir().unwrap();
    let (vault, src) = (tmp.path().join("vault"), tmp.path().join("src"));
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/f.txt"), b"key slots\n".repeat(1000)).unwrap();
    init_vault(&vault);
    let v = vault.to_str().unwrap();
    run_as(
        PASSWORD,
        None,
        &["backup", "--vault", v, src.to_str().unwrap()],
        0,
    );
    let config = |v: &Path| -> serde_json::Value {
        serde_json::from_slice(&fs::read(v.join("vault.json")).unwrap()).unwrap()
    };
    assert_eq!(config(&vault)["format"], 1, "one password: format 1");

    // A second password, then a recovery key printed once.
    let added = json(&run_as(
        PASSWORD,
        Some("second password"),
        &["key", "add", "--vault", v],
        0,
    ));
    assert_eq!(added["added"]["slot"], 1);
    assert!(added.get("recovery_key").is_none());
    let rec = json(&run_as(
        "second password",
        None,
        &["key", "add", "--vault", v, "--recovery"],
        0,
    ));
    assert_eq!(rec["added"]["slot"], 2);
    assert_eq!(rec["added"]["kind"], "recovery");
    let rk = rec["recovery_key"].as_str().unwrap().to_string();
    assert_eq!(rk.len(), 71, "{rk}");
    let stored = fs::read_to_string(vault.join("vault.json")).unwrap();
    assert!(!stored.contains(&rk.replace('-', "")[..16]), "never stored");
    assert_eq!(config(&vault)["format"], 2);

    let listed = slots(&rk, v);
    let kinds: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["slot"].as_u64().unwrap(),
                s["kind"].as_str().unwrap().to_string(),
                s["in_use"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (0, "password".into(), false),
            (1, "password".into(), false),
            (2, "recovery".into(), true)
        ]
    );

    // Every secret restores the same data; a wrong one is the
    // wrong-password exit code.
    for (i, secret) in [PASSWORD, "second password", rk.as_str()]
        .iter()
        .enumerate()
    {
        restores_with(secret, v, &src, &tmp.path().join(format!("out{i}")));
    }
    run_as("nope", None, &["snapshots", "--vault", v], 3);

    // Lost the first password: open with the recovery key, remove slot 0.
    run_as(PASSWORD, None, &["key", "remove", "--vault", v, "0"], 1);
    run_as(&rk, None, &["key", "remove", "--vault", v, "0"], 0);
    run_as(PASSWORD, None, &["snapshots", "--vault", v], 3);
    run_as(&rk, None, &["key", "remove", "--vault", v, "7"], 1);
    // A recovery key cannot be "changed" into a password.
    run_as(&rk, Some("x"), &["key", "passwd", "--vault", v], 1);
    run_as(
        "second password",
        None,
        &["key", "remove", "--vault", v, "2"],
        0,
    );
    // The last key is never removed.
    let out = run_as(
        "second password",
        None,
        &["key", "remove", "--vault", v, "1"],
        1,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("last key"));
    restores_with("second password", v, &src, &tmp.path().join("out-last"));
    // `passwd` changes the slot in use, which keeps its id.
    run_as(
        "second password",
        Some("third password"),
        &["key", "passwd", "--vault", v],
        0,
    );
    assert_eq!(slots("third password", v)[0]["slot"], 1);
    run_as("second password", None, &["snapshots", "--vault", v], 3);
    assert_eq!(
        config(&vault)["format"],
        2,
        "slot 1 alone is no format-1 vault"
    );
}

#[test]
fn account_vaults_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = cairn()
        .current_dir(tmp.path())
        .env("CAIRN_CONFIG", tmp.path().join("profile.json"))
        .args(["key", "add", "--vault", "photos", "--recovery"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("account password"), "{err}");
}
