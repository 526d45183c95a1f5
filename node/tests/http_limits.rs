//! What an unauthenticated client cannot do to a node's HTTP surface: grow
//! `/metrics` without bound with made-up methods and paths (audit finding
//! H3), or hold connections open with unfinished requests until the node
//! starves (M2).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

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

/// Opens a connection that sends `sent` and then nothing more.
fn stalled(port: u16, sent: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(sent).expect("write");
    s
}

/// Waits (at most `limit`) until the server closes `s`: EOF or a reset,
/// after whatever it answers. `None` if it is still open.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if started.elapsed() >= limit {
                    return None;
                }
            }
            Err(_) => return Some(started.elapsed()),
        }
    }
}

#[test]
fn unfinished_requests_are_closed_after_the_header_timeout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut node = Node::new(tmp.path(), 1);
    node.spawn_dev();
    node.wait_ready();
    let opened = Instant::now();
    let mut held: Vec<TcpStream> = (0..50).map(|_| stalled(node.port, b"GET /heal")).collect();
    println!("=== /healthz answers while 50 unfinished requests are held");
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(node.get("/healthz").map(|r| r.0), Some(200));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    println!("=== the server closes them after its header timeout (10 s)");
    let mut slowest = Duration::ZERO;
    for (i, s) in held.iter_mut().enumerate() {
        let left = Duration::from_secs(20).saturating_sub(opened.elapsed());
        assert!(
            closed_within(s, left).is_some(),
            "connection {i} still open {:?} after it was opened",
            opened.elapsed()
        );
        slowest = slowest.max(opened.elapsed());
    }
    println!("all 50 closed {slowest:?} after they were opened");
    assert!(
        slowest >= Duration::from_secs(9),
        "closed too early: {slowest:?}"
    );
    assert_eq!(node.get("/healthz").map(|r| r.0), Some(200));
}

#[test]
fn connections_are_capped_and_stalled_bodies_time_out() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut node = Node::new(tmp.path(), 1);
    node.init();
    let dir = node.dir.to_string_lossy().into_owned();
    node.spawn(&[
        "serve",
        "--data-dir",
        &dir,
        "--max-connections",
        "20",
        "--header-timeout-ms",
        "1500",
        "--body-timeout-ms",
        "1500",
    ]);
    node.wait_ready();

    println!("=== a body that stops halfway fails after the body timeout");
    let mut s = stalled(
        node.port,
        b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"user\":",
    );
    let took = closed_within(&mut s, Duration::from_secs(10)).expect("answered and closed");
    println!("stalled body ended after {took:?}");
    assert!(took >= Duration::from_millis(1400), "{took:?}");
    drop(s);
    // Let the server release that connection's slot.
    std::thread::sleep(Duration::from_millis(200));

    println!("=== 30 silent connections against a cap of 20: the extra ones are closed at once");
    let mut held: Vec<TcpStream> = (0..30).map(|_| stalled(node.port, b"")).collect();
    let at_once = held
        .iter_mut()
        .filter_map(|s| closed_within(s, Duration::from_millis(300)))
        .count();
    assert!(at_once >= 10, "only {at_once} closed over the cap");
    println!("=== after the header timeout the rest are closed too, and the node answers");
    for (i, s) in held.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(5)).is_some(),
            "connection {i} still open"
        );
    }
    assert_eq!(node.get("/healthz").map(|r| r.0), Some(200));
}
