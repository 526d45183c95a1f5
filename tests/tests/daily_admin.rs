//! Daily administration against a real 2-node cluster (issues 11 and
//! 15): disabling an account refuses its logins and its existing device
//! token on both nodes at once, keeps its data, and enabling it restores
//! access; an operator enrols in TOTP with their password, and a code
//! accepted by one node is refused when presented again to the other.

use cairn_tests::{http, json_of, ok, stderr, totp_secret, Cluster, Device};
use serde_json::Value;

const PW: &str = "correct horse battery staple";

/// The bearer token in a device's config file.
fn token_of(device: &Device) -> String {
    let dir = device.config_dir().join("cairn");
    for e in std::fs::read_dir(&dir).expect("config dir").flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        if let Some(start) = text.find("cairn_") {
            return text[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
        }
    }
    panic!("no token in {}", dir.display());
}

/// `GET /api/v1/vaults` with `token` on `port`: status and error code.
fn vaults_with(port: u16, token: &str) -> (u16, String) {
    let auth = format!("Bearer {token}");
    let (status, body) = http(
        port,
        "GET",
        "/api/v1/vaults",
        &[("Authorization", &auth)],
        b"",
    )
    .expect("answer");
    let code = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, code)
}

#[test]
fn a_disabled_account_is_refused_on_every_node_until_enabled() {
    let cluster = Cluster::start(2, &[]);
    ok(
        "tier create",
        &cluster.nodes[0].admin(&["tier", "create", "standard", "--replicas", "1"]),
    );
    cluster.create_user("alice", PW);
    let homes = cluster.scratch("devices");
    let laptop = Device::new(&homes.join("laptop"), "laptop", PW);
    ok("login", &laptop.login(&cluster.nodes[0].url(), "alice"));
    laptop.json(&["vault", "request", "--tier", "standard", "--name", "main"]);
    let token = token_of(&laptop);

    ok(
        "disable",
        &cluster.nodes[0].admin(&["user", "disable", "alice", "--reason", "invoice overdue"]),
    );
    // The existing token is refused by both nodes at once, with the reason.
    for node in &cluster.nodes {
        assert_eq!(
            vaults_with(node.port, &token),
            (403, "account_disabled".to_string()),
            "node {}",
            node.id
        );
    }
    // The client says what happened and exits with the auth code.
    let out = laptop.cairn(&["vault", "list"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("disabled") && err.contains("invoice overdue"),
        "{err}"
    );
    // A new login through the other node is refused the same way.
    let phone = Device::new(&homes.join("phone"), "phone", PW);
    let out = phone.login(&cluster.nodes[1].url(), "alice");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("disabled"), "{}", stderr(&out));
    // The listing shows the state; the data is kept.
    let users = json_of(
        "user list",
        &cluster.nodes[1].admin(&["user", "list", "--json"]),
    );
    let alice = &users.as_array().expect("users")[0];
    assert_eq!(alice["disabled"], "invoice overdue", "{users}");
    assert_eq!(alice["vaults"], 1, "{users}");
    let table = ok("user list", &cluster.nodes[1].admin(&["user", "list"]));
    assert!(table.contains("disabled: invoice overdue"), "{table}");

    ok(
        "enable",
        &cluster.nodes[1].admin(&["user", "enable", "alice"]),
    );
    for node in &cluster.nodes {
        assert_eq!(vaults_with(node.port, &token).0, 200, "node {}", node.id);
    }
    ok(
        "login after enable",
        &phone.login(&cluster.nodes[1].url(), "alice"),
    );
    let vaults = phone.json(&["vault", "list"]);
    assert_eq!(vaults.as_array().map(Vec::len), Some(1), "{vaults}");

    // Both actions are in the audit trail with their actor.
    let audit = json_of("audit", &cluster.nodes[0].admin(&["audit", "--json"]));
    let actions: Vec<(String, String, String)> = audit
        .as_array()
        .expect("audit")
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (s("action"), s("target"), s("actor"))
        })
        .collect();
    for (action, node) in [("account_disabled", 1), ("account_enabled", 2)] {
        let want = (
            action.to_owned(),
            "alice".to_owned(),
            format!("admin token of node {node}"),
        );
        assert!(actions.contains(&want), "{want:?} in {actions:?}");
    }
}

#[test]
fn an_operator_enrols_in_totp_and_a_code_opens_one_session_cluster_wide() {
    let cluster = Cluster::start(2, &[]);
    let pw = cluster.scratch("operator").join("pw");
    std::fs::write(&pw, PW).expect("password file");
    let pw = pw.to_str().expect("utf-8");
    ok(
        "operator create",
        &cluster.nodes[0].admin(&[
            "operator",
            "create",
            "root",
            "--role",
            "cluster-admin",
            "--password-file",
            pw,
        ]),
    );
    // Enrolment by the operator themself, proving the password.
    let enrolled = json_of(
        "totp enable",
        &cluster.nodes[0].admin(&[
            "operator",
            "totp",
            "enable",
            "root",
            "--password-file",
            pw,
            "--json",
        ]),
    );
    let uri = enrolled["totp_uri"].as_str().expect("uri shown once");
    let secret = totp_secret(uri);
    // Wait out the step boundary so both logins fall in one step.
    let now_s = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
    };
    if now_s() % 30 > 25 {
        std::thread::sleep(std::time::Duration::from_secs(6));
    }
    let code = format!("{:06}", cairn_node::totp::code_at(&secret, now_s()));
    let login = |node: usize, code: Option<&str>| {
        let mut args = vec!["operator", "login", "root", "--password-file", pw];
        if let Some(c) = code {
            args.extend(["--totp", c]);
        }
        cluster.nodes[node].admin(&args)
    };
    let out = login(0, None);
    assert!(!out.status.success(), "no code: {}", stderr(&out));
    ok("login with the code", &login(0, Some(&code)));
    let out = login(1, Some(&code));
    assert!(
        !out.status.success(),
        "the same code on the other node was accepted"
    );
    assert!(
        stderr(&out).contains("refused") || stderr(&out).contains("login"),
        "{}",
        stderr(&out)
    );
    // A cluster admin (here the admin token) removes it; a login then
    // needs no code.
    ok(
        "totp disable",
        &cluster.nodes[1].admin(&["operator", "totp", "disable", "root"]),
    );
    ok("login without TOTP", &login(1, None));
}
