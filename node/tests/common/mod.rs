//! What `cairnd`'s own tests add to the workspace's node harness
//! ([`cairn_tests::Node`]: real processes, free ports, data directories in
//! a temp dir, logs kept when a test fails, polling with deadlines): one-off
//! `cairnd` commands, a three-node cluster, request bodies.

#![allow(dead_code)]

pub mod storage;

use std::process::{Command, Output};
use std::time::Duration;

// Each test target uses its own subset of these.
#[allow(unused_imports)]
pub use cairn_tests::{free_port, stderr, stdout, wait_for, Node};

pub const CAIRND: &str = env!("CARGO_BIN_EXE_cairnd");

/// Initialises `nodes[0]`, joins `nodes[1]` and `nodes[2]` to it, and
/// waits until the three are voters and storage nodes and all are ready.
pub fn form_three(nodes: &mut [Node]) {
    nodes[0].init();
    nodes[0].start();
    nodes[0].wait_ready();
    let url1 = nodes[0].url();
    nodes[1].spawn_join(&url1);
    nodes[2].spawn_join(&url1);
    wait_for("three voters", Duration::from_secs(60), || {
        nodes[0]
            .status()
            .filter(|s| s.voters.len() == 3 && s.storage_nodes.len() == 3)
    });
    for n in &nodes[..3] {
        n.wait_ready();
    }
}

/// `cairnd ARGS` (without an admin token in the environment).
pub fn run(args: &[&str]) -> Output {
    run_owned(args.iter().map(|s| s.to_string()).collect())
}

/// `cairnd ARGS` (without an admin token in the environment).
pub fn run_owned(args: Vec<String>) -> Output {
    Command::new(CAIRND)
        .args(&args)
        .env_remove("CAIRN_ADMIN_TOKEN")
        .output()
        .expect("run cairnd")
}

/// A minimal HTTP/1.1 GET to a port.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_request(port, "GET", path, &[], "")
}

/// A minimal HTTP/1.1 request to a port with extra headers and a JSON body
/// ([`cairn_tests::http`], answering text).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    let mut all = headers.to_vec();
    if !body.is_empty() {
        all.push(("Content-Type", "application/json"));
    }
    let (status, answer) = cairn_tests::http(port, method, path, &all, body.as_bytes())?;
    Some((status, String::from_utf8_lossy(&answer).into_owned()))
}

/// The body of a `POST /api/v1/admin/users` that creates `name` (a fixed
/// login key: no KDF to run, so tests can write fast).
pub fn user_body(name: &str) -> String {
    format!(
        r#"{{"name":"{name}","kdf":{{"memory_kib":8,"iterations":1,"parallelism":1,"salt":"{}"}},"login_key":"{}"}}"#,
        "00".repeat(16),
        "11".repeat(32)
    )
}

/// Names from `admin user list --json`.
pub fn user_names(o: &Output) -> Vec<String> {
    assert!(o.status.success(), "user list failed: {}", stderr(o));
    let users: Vec<cairn_proto::admin::UserInfo> =
        serde_json::from_slice(&o.stdout).expect("user list json");
    users.into_iter().map(|u| u.name).collect()
}
