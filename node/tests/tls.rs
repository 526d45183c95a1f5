//! HTTPS with real `cairnd` processes: a node with `--tls-self-signed`
//! serves `/healthz` over TLS, clients trusting its certificate
//! (`--ca-file`) succeed, clients that do not fail on the certificate, the
//! certificate is reused on restart, and a two-node cluster replicates over
//! TLS.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use cairn_proto::admin::ClusterStatus;
use common::{run, stderr, stdout, wait_for, Node};

fn https_url(node: &Node) -> String {
    format!("https://127.0.0.1:{}", node.port)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// `GET url` with a rustls client trusting `ca` (if given): the status, or
/// the error with its causes.
fn get(rt: &tokio::runtime::Runtime, url: &str, ca: Option<&Path>) -> Result<u16, String> {
    let client = cairn_node::tls::client_builder(ca)
        .expect("client builder")
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    rt.block_on(async { client.get(url).send().await })
        .map(|r| r.status().as_u16())
        .map_err(|e| cairn_node::error::describe(&e))
}

fn status(node: &Node, ca: &Path) -> Result<ClusterStatus, String> {
    let url = https_url(node);
    let ca = ca.to_string_lossy().into_owned();
    let out = run(&[
        "cluster",
        "status",
        "--server",
        &url,
        "--ca-file",
        &ca,
        "--json",
    ]);
    if !out.status.success() {
        return Err(stderr(&out));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{e}: {}", stdout(&out)))
}

fn spawn_serve(node: &mut Node, extra: &[&str]) {
    let dir = node.dir.to_string_lossy().into_owned();
    let mut args = vec!["serve", "--data-dir", &dir];
    args.extend_from_slice(extra);
    node.spawn(&args);
}

#[test]
fn self_signed_node_serves_https_to_clients_that_trust_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rt = runtime();
    let mut node = Node::new(tmp.path(), 1);
    node.init_with(&["--tls-self-signed"]);
    let cert = node.dir.join("tls/cert.pem");
    for f in [&cert, &node.dir.join("tls/key.pem")] {
        let mode = std::fs::metadata(f).expect("tls file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", f.display());
    }
    let generated = std::fs::read(&cert).expect("cert");

    spawn_serve(&mut node, &["--tls-self-signed"]);
    let healthz = format!("{}/healthz", https_url(&node));
    wait_for("healthz over https", Duration::from_secs(30), || {
        get(&rt, &healthz, Some(&cert)).ok().filter(|s| *s == 200)
    });

    // Without the CA: a certificate error, not a silent success.
    let err = get(&rt, &healthz, None).expect_err("untrusted certificate");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    // Plain HTTP gets no answer from the TLS port.
    assert_ne!(node.get("/healthz").map(|(s, _)| s), Some(200));

    // The operator command, with and without --ca-file.
    let s = wait_for("cluster status over https", Duration::from_secs(30), || {
        status(&node, &cert).ok().filter(|s| s.leader == Some(1))
    });
    assert!(
        s.members.iter().all(|m| m.addr.starts_with("https://")),
        "advertises https: {:?}",
        s.members
    );
    let url = https_url(&node);
    let out = run(&["cluster", "status", "--server", &url]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).to_lowercase().contains("certificate"),
        "{}",
        stderr(&out)
    );

    // Restart: the same certificate is served again.
    assert!(node.terminate().success());
    spawn_serve(&mut node, &["--tls-self-signed"]);
    wait_for("healthz after restart", Duration::from_secs(30), || {
        get(&rt, &healthz, Some(&cert)).ok().filter(|s| *s == 200)
    });
    assert_eq!(std::fs::read(&cert).expect("cert"), generated, "reused");

    // Serving plain HTTP under an https:// identity is refused.
    assert!(node.terminate().success());
    let dir = node.dir.to_string_lossy().into_owned();
    let out = run(&["serve", "--data-dir", &dir]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("advertises https://"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn two_nodes_replicate_over_tls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut n1 = Node::new(tmp.path(), 1);
    let mut n2 = Node::new(tmp.path(), 2);
    n1.init_with(&["--tls-self-signed"]);
    // Both nodes serve node 1's certificate (valid for 127.0.0.1) and trust
    // it as their CA, as a small dev cluster with one shared certificate would.
    let cert = n1.dir.join("tls/cert.pem");
    let key = n1.dir.join("tls/key.pem");
    let (cert_s, key_s) = (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    );
    spawn_serve(&mut n1, &["--tls-self-signed", "--ca-file", &cert_s]);
    let url1 = https_url(&n1);
    n2.spawn_join_with(
        &url1,
        &[
            "--tls-cert",
            &cert_s,
            "--tls-key",
            &key_s,
            "--ca-file",
            &cert_s,
        ],
    );
    let s = wait_for("node 2 joined over TLS", Duration::from_secs(60), || {
        status(&n2, &cert)
            .ok()
            .filter(|s| s.members.len() == 2 && s.storage_nodes.len() == 2)
    });
    assert!(s.members.iter().all(|m| m.addr.starts_with("https://")));

    // A write through node 2 is forwarded to the leader and replicated back.
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "correct horse\n").expect("pw");
    let (url2, token2, ca) = (
        https_url(&n2),
        n2.token_file().to_string_lossy().into_owned(),
        cert_s.clone(),
    );
    let pw_s = pw.to_string_lossy().into_owned();
    let out = run(&[
        "admin",
        "--server",
        &url2,
        "--admin-token-file",
        &token2,
        "--ca-file",
        &ca,
        "user",
        "create",
        "alice",
        "--password-file",
        &pw_s,
    ]);
    assert!(out.status.success(), "create via node 2: {}", stderr(&out));
    let token1 = n1.token_file().to_string_lossy().into_owned();
    let out = run(&[
        "admin",
        "--server",
        &url1,
        "--admin-token-file",
        &token1,
        "--ca-file",
        &ca,
        "--json",
        "user",
        "list",
    ]);
    assert!(common::user_names(&out).contains(&"alice".to_string()));
}
