//! Operators, organizations and the audit trail against a real three-node
//! cluster, through `cairnd admin` (which derives every login key with
//! argon2id locally, as `cairn login` does): an operator created with the
//! admin token logs in on another node and works on a third; an org admin
//! sees and creates only their organization's accounts and cannot define
//! tiers; a read-only operator reads everything and changes nothing; wrong
//! passwords are rate-limited; a revoked session is refused by every node
//! at once; every action is in the audit trail with its actor.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use cairn_proto::admin::UserInfo;
use cairn_proto::console::{AuditInfo, OperatorSessionReply};
use common::{form_three, stderr, Node};

/// `cairnd ARGS --server NODE` with `token_file` as the admin token.
fn as_operator(node: &Node, token_file: &Path, args: &[&str]) -> Output {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend([
        "--server".into(),
        node.url(),
        "--admin-token-file".into(),
        token_file.display().to_string(),
    ]);
    common::run_owned(all)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

/// Logs `name` in through `node`; the session token's file.
fn login(node: &Node, dir: &Path, name: &str, password: &Path) -> PathBuf {
    let out = common::run(&[
        "admin",
        "operator",
        "login",
        name,
        "--password-file",
        &password.display().to_string(),
        "--server",
        &node.url(),
        "--json",
    ]);
    assert!(out.status.success(), "login {name}: {}", stderr(&out));
    let reply: OperatorSessionReply = serde_json::from_slice(&out.stdout).expect("login json");
    assert!(reply.token.starts_with("cairnop_"));
    write(dir, &format!("{name}.token"), &reply.token)
}

fn users(out: &Output) -> Vec<(String, String)> {
    assert!(out.status.success(), "user list: {}", stderr(out));
    let users: Vec<UserInfo> = serde_json::from_slice(&out.stdout).expect("users json");
    users.into_iter().map(|u| (u.name, u.org)).collect()
}

#[test]
fn operators_act_within_their_role_across_the_cluster() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut nodes: Vec<Node> = (1..=3).map(|i| Node::new(dir, i)).collect();
    form_three(&mut nodes);
    let pw = write(dir, "pw", "correct horse battery staple\n");
    let pw_s = pw.display().to_string();

    // Bootstrap: the admin token creates the first cluster admin.
    let out = nodes[0].admin(&[
        "operator",
        "create",
        "root",
        "--role",
        "cluster-admin",
        "--password-file",
        &pw_s,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // It logs in through node 2 and works through node 3.
    let root = login(&nodes[1], dir, "root", &pw);
    for args in [
        vec![
            "admin",
            "org",
            "set",
            "acme",
            "--display-name",
            "Acme Backup",
        ],
        vec![
            "admin",
            "operator",
            "create",
            "acme-admin",
            "--role",
            "org-admin",
            "--org",
            "acme",
            "--password-file",
            &pw_s,
        ],
        vec![
            "admin",
            "operator",
            "create",
            "auditor",
            "--role",
            "read-only",
            "--password-file",
            &pw_s,
        ],
        vec![
            "admin",
            "user",
            "create",
            "carol",
            "--org",
            "acme",
            "--password-file",
            &pw_s,
        ],
        vec!["admin", "user", "create", "dave", "--password-file", &pw_s],
    ] {
        let out = as_operator(&nodes[2], &root, &args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }

    // The org admin sees and creates only accounts of acme.
    let acme = login(&nodes[2], dir, "acme-admin", &pw);
    let out = as_operator(&nodes[0], &acme, &["admin", "user", "list", "--json"]);
    assert_eq!(users(&out), [("carol".to_string(), "acme".to_string())]);
    let out = as_operator(
        &nodes[0],
        &acme,
        &["admin", "user", "create", "erin", "--password-file", &pw_s],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = as_operator(
        &nodes[0],
        &acme,
        &[
            "admin",
            "user",
            "create",
            "mallory",
            "--org",
            "default",
            "--password-file",
            &pw_s,
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("not_permitted"), "{}", stderr(&out));
    let out = as_operator(
        &nodes[0],
        &acme,
        &["admin", "tier", "create", "gold", "--replicas", "1"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = as_operator(&nodes[1], &acme, &["cluster", "drain", "1"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // The read-only operator sees every organization and changes nothing.
    let auditor = login(&nodes[0], dir, "auditor", &pw);
    let out = as_operator(&nodes[1], &auditor, &["admin", "user", "list", "--json"]);
    let mut all = users(&out);
    all.sort();
    assert_eq!(
        all,
        [("carol", "acme"), ("dave", "default"), ("erin", "acme")]
            .map(|(u, o)| (u.to_string(), o.to_string()))
    );
    let out = as_operator(
        &nodes[1],
        &auditor,
        &["admin", "user", "create", "zed", "--password-file", &pw_s],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // Wrong passwords: refused, then rate-limited (per node).
    let wrong = write(dir, "wrong", "not the password\n");
    let attempt = || {
        common::run(&[
            "admin",
            "operator",
            "login",
            "root",
            "--password-file",
            &wrong.display().to_string(),
            "--server",
            &nodes[0].url(),
        ])
    };
    for _ in 0..5 {
        let out = attempt();
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(stderr(&out).contains("login_failed"), "{}", stderr(&out));
    }
    let out = attempt();
    assert!(stderr(&out).contains("rate_limited"), "{}", stderr(&out));

    // Revoked through node 2: the org admin's session is refused by node 3
    // at once.
    let out = as_operator(
        &nodes[1],
        &root,
        &["admin", "operator", "revoke", "acme-admin"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = as_operator(&nodes[2], &acme, &["admin", "user", "list"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // The trail names each actor and what they did, on every node.
    let out = as_operator(&nodes[2], &auditor, &["admin", "audit", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let trail: Vec<AuditInfo> = serde_json::from_slice(&out.stdout).expect("audit json");
    let has = |actor: &str, action: &str, target: &str| {
        trail
            .iter()
            .any(|e| e.actor == actor && e.action == action && e.target == target)
    };
    assert!(
        has("admin token of node 1", "operator_created", "root"),
        "{trail:?}"
    );
    assert!(has("operator root", "operator_session_started", "root"));
    assert!(has("operator root", "org_configured", "acme"));
    assert!(has("operator root", "account_created_in_org", "carol"));
    assert!(has("operator acme-admin", "account_created_in_org", "erin"));
    assert!(has(
        "operator root",
        "operator_session_revoked",
        "acme-admin"
    ));
    assert!(!trail
        .iter()
        .any(|e| e.target == "mallory" || e.target == "zed"));
    println!("{} audit entries", trail.len());
}

/// TOTP through the real binaries: an operator enrolled at creation gets
/// the URI once; logging in then needs the current code, and wrong codes
/// count against the login limiter like wrong passwords.
#[test]
fn totp_is_a_second_factor_for_enrolled_operators() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut node = Node::new(dir, 1);
    node.init();
    node.start();
    node.wait_ready();
    let pw = write(dir, "pw", "second factor please\n");
    let pw_s = pw.display().to_string();
    let out = node.admin(&[
        "operator",
        "create",
        "tess",
        "--role",
        "read-only",
        "--password-file",
        &pw_s,
        "--totp",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(created["totp"], true);
    let uri = created["totp_uri"].as_str().expect("uri shown once");
    assert!(
        uri.starts_with("otpauth://totp/Cairn:tess?secret="),
        "{uri}"
    );
    let secret = cairn_tests::totp_secret(uri);
    assert_eq!(secret.len(), cairn_node::totp::SECRET_LEN);
    // Never shown again.
    let out = node.admin(&["operator", "list", "--json"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("otpauth"));

    let login = |code: Option<&str>| {
        let mut args = vec![
            "admin".to_string(),
            "operator".into(),
            "login".into(),
            "tess".into(),
            "--password-file".into(),
            pw_s.clone(),
            "--server".into(),
            node.url(),
            "--json".into(),
        ];
        if let Some(c) = code {
            args.extend(["--totp".into(), c.to_string()]);
        }
        common::run_owned(args)
    };
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_secs()
    };
    let current = || format!("{:06}", cairn_node::totp::code_at(&secret, now()));
    let wrong = || {
        format!(
            "{:06}",
            (cairn_node::totp::code_at(&secret, now()) + 500_000) % 1_000_000
        )
    };

    let out = login(None);
    assert_eq!(out.status.code(), Some(3), "no code: {}", stderr(&out));
    assert!(stderr(&out).contains("login_failed") || stderr(&out).contains("login failed"));
    let out = login(Some(&wrong()));
    assert_eq!(out.status.code(), Some(3), "wrong code: {}", stderr(&out));
    let out = login(Some(&current()));
    assert!(out.status.success(), "right code: {}", stderr(&out));
    let reply: OperatorSessionReply = serde_json::from_slice(&out.stdout).expect("login json");
    assert!(reply.token.starts_with("cairnop_"));
    assert!(reply.operator.totp);

    // Wrong codes are failed logins: the limiter stops them, and then the
    // right code too, until the window passes.
    let mut limited = false;
    for _ in 0..6 {
        let out = login(Some(&wrong()));
        assert!(!out.status.success());
        if stderr(&out).contains("rate") {
            limited = true;
            break;
        }
    }
    assert!(limited, "wrong TOTP codes are rate-limited");
    let out = login(Some(&current()));
    assert!(!out.status.success(), "still limited");
}
