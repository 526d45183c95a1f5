//! What an unauthenticated client cannot do to a node's HTTP surface: grow
//! `/metrics` without bound with made-up methods and paths (audit finding
//! H3).

mod common;

use common::Node;

/// Lines of the node's `/metrics` exposition.
fn metric_lines(node: &Node) -> usize {
    let (code, text) = node.get("/metrics").expect("metrics");
    assert_eq!(code, 200);
    text.lines().count()
}

#[test]
fn made_up_methods_and_paths_do_not_grow_the_metrics() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut node = Node::new(tmp.path(), 1);
    node.spawn_dev();
    node.wait_ready();
    // Every standard method once, on a route and off, so their series exist.
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
        let _ = cairn_tests::http(node.port, method, "/healthz", &[], b"");
        let _ = cairn_tests::http(node.port, method, "/no/such/route", &[], b"");
    }
    let before = metric_lines(&node);

    let mut sent = 0;
    for i in 0..400u32 {
        let tag = hex::encode(rand::random::<[u8; 6]>()).to_uppercase();
        // Short and long (2 KB) made-up methods, on random paths and known ones.
        let method = if i % 10 == 0 {
            format!("M{}", tag.repeat(170))
        } else {
            format!("M{tag}")
        };
        let path = match i % 3 {
            0 => format!("/{tag}/{i}"),
            1 => format!("/api/v1/vaults/{tag}"),
            _ => "/healthz".to_string(),
        };
        if cairn_tests::http(node.port, &method, &path, &[], b"").is_some() {
            sent += 1;
        }
    }
    assert!(sent > 300, "only {sent} requests were answered");
    let after = metric_lines(&node);
    let (_, text) = node.get("/metrics").expect("metrics");
    println!(
        "/metrics: {before} lines before, {after} after {sent} made-up requests ({} bytes)",
        text.len()
    );
    assert!(
        !text.contains("method=\"M"),
        "a made-up method became a label"
    );
    // A few new series (method `other` per route, statuses): bounded, not
    // one per request.
    assert!(
        after <= before + 120,
        "/metrics grew from {before} to {after} lines"
    );
}
