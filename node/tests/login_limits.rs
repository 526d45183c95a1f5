//! The failed-login limiter holds under concurrency (audit finding M1):
//! attempts are counted before the credential check, so many concurrent
//! wrong logins for one user cannot all slip past the limit while the
//! first ones are still being checked.

mod common;

use std::sync::{Arc, Barrier};

use common::{user_body, Node};

/// The default failures allowed per account name in the window.
const PER_ACCOUNT: usize = 5;

#[test]
fn concurrent_wrong_logins_are_limited() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut node = Node::new(tmp.path(), 1);
    node.spawn_dev();
    node.wait_ready();
    let auth = node.bearer();
    let (code, body) = node.port_request(
        "POST",
        "/api/v1/admin/users",
        &[("Authorization", &auth)],
        &user_body("alice"),
    );
    assert_eq!(code, 201, "{body}");

    let wrong = format!(
        r#"{{"user":"alice","login_key":"{}","device":"laptop"}}"#,
        "22".repeat(32)
    );
    let n = 50;
    let start = Arc::new(Barrier::new(n));
    let port = node.port;
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let start = start.clone();
            let wrong = wrong.clone();
            std::thread::spawn(move || {
                start.wait();
                common::http_request(port, "POST", "/api/v1/login", &[], &wrong).expect("an answer")
            })
        })
        .collect();
    let mut checked = 0;
    let mut limited = 0;
    for t in threads {
        let (code, body) = t.join().expect("thread");
        match code {
            401 => {
                assert!(body.contains("login_failed"), "{body}");
                checked += 1;
            }
            429 => {
                assert!(body.contains("rate_limited"), "{body}");
                limited += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    println!("{n} concurrent wrong logins: {checked} checked, {limited} refused with 429");
    assert!(
        checked <= PER_ACCOUNT,
        "{checked} wrong logins were checked against a limit of {PER_ACCOUNT}"
    );
    assert_eq!(checked + limited, n);
}
