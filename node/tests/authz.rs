//! The client-facing API against real `cairnd` processes: an authorization
//! table over every documented `/api/v1` route (taken from the served
//! OpenAPI document, so a new route without a row fails), login through
//! each node of a cluster, revocation seen by every node at once, login
//! failures and rate limits, password change, private items, shared
//! snapshot records, and body limits.
//!
//! Most accounts are created with a fixed login key (`common::user_body`:
//! the server never sees how a key was derived, so no KDF has to run); one
//! is created by `cairnd admin user create` and logs in with the key
//! derived from its password.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::time::Duration;

use common::{user_body, Node};
use serde_json::{json, Value};

/// The login key of every account `user_body` creates.
fn key() -> String {
    "11".repeat(32)
}

/// An answer: status, headers (lower-case names), JSON body (`Null` if none).
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Resp {
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[track_caller]
    fn ok(self) -> Value {
        assert!((200..300).contains(&self.status), "{self:?}");
        self.body
    }
}

/// One HTTP/1.1 request with a raw body. Write errors are ignored (a
/// server that refuses an oversized body may close before reading it all)
/// so the answer can still be read.
fn raw(port: u16, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Resp {
    raw_with(port, method, path, token, &[], body)
}

/// [`raw`] with extra headers.
fn raw_with(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    let _ = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(body));
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("http answer");
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
    }
}

fn call(port: u16, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Resp {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    raw(port, method, path, token, &bytes)
}

fn hex16() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn admin_token(node: &Node) -> String {
    std::fs::read_to_string(node.token_file())
        .expect("admin token")
        .trim()
        .to_string()
}

fn create_user(node: &Node, name: &str) {
    let (code, text) = node.port_request(
        "POST",
        "/api/v1/admin/users",
        &[("Authorization", &node.bearer())],
        &user_body(name),
    );
    assert_eq!(code, 201, "create {name}: {text}");
}

fn define_tier(node: &Node, name: &str, requestable: bool) {
    let body = json!({"name": name, "replicas": 1, "requestable": requestable,
        "quota_bytes": 1_000_000_000u64, "description": format!("{name} tier")});
    call(
        node.port,
        "POST",
        "/api/v1/admin/tiers",
        Some(&admin_token(node)),
        Some(&body),
    )
    .ok();
}

/// A logged-in device.
#[derive(Debug, Clone)]
struct Dev {
    token: String,
    id: String,
}

fn login(port: u16, user: &str, device: &str) -> Dev {
    let body = json!({"user": user, "login_key": key(), "device": device});
    let r = call(port, "POST", "/api/v1/login", None, Some(&body)).ok();
    Dev {
        token: r["token"].as_str().expect("token").to_string(),
        id: r["device"].as_str().expect("device").to_string(),
    }
}

fn new_vault(port: u16, dev: &Dev) -> String {
    let id = hex16();
    let body =
        json!({"id": id, "name": format!("v-{id}"), "tier": "standard", "wrapped_keys": "abcd"});
    call(
        port,
        "POST",
        "/api/v1/vaults",
        Some(&dev.token),
        Some(&body),
    )
    .ok();
    // The root tree every test snapshot names (`snapshot_body`): a record
    // is refused unless its root is stored.
    let mut frames = cairn_proto::frames::frames_header();
    cairn_proto::frames::push_frame(&mut frames, &cairn_proto::ChunkId([0xab; 32]), b"tree");
    let path = format!("/api/v1/vaults/{id}/chunks");
    let r = raw(port, "POST", &path, Some(&dev.token), &frames);
    assert_eq!(r.status, 200, "root upload: {:?}", r.body);
    id
}

/// A snapshot record committed under `job` (a running backup job of the
/// committing device on the vault, or the commit is refused).
fn snapshot_body(id: &str, job: &str) -> Value {
    json!({"id": id, "item": "docs", "started_at": 1, "finished_at": 2, "root": "ab".repeat(32),
        "stats": {"files": 1, "bytes": 2, "new_bytes": 2, "new_chunks": 1}, "sealed_meta": "00",
        "job": job})
}

fn new_snapshot(port: u16, dev: &Dev, vault: &str) -> String {
    let id = hex16();
    let path = format!("/api/v1/vaults/{vault}/snapshots");
    let job = new_job(port, dev, vault);
    call(
        port,
        "POST",
        &path,
        Some(&dev.token),
        Some(&snapshot_body(&id, &job)),
    )
    .ok();
    id
}

fn new_job(port: u16, dev: &Dev, vault: &str) -> String {
    new_job_of(port, dev, vault, "backup")
}

fn new_job_of(port: u16, dev: &Dev, vault: &str, kind: &str) -> String {
    let id = hex16();
    let body = json!({"id": id, "kind": kind, "vault": vault});
    call(port, "POST", "/api/v1/jobs", Some(&dev.token), Some(&body)).ok();
    id
}

fn item_body(vault: &str) -> Value {
    json!({"paths": ["/home/a"], "excludes": ["*.tmp"], "vault": vault})
}

fn retention_body() -> Value {
    json!({"policy": {"ranges": [{"type": "last", "count": 3}], "prune_every_s": 60}})
}

fn new_item(port: u16, dev: &Dev, vault: &str) -> String {
    let name = format!("item-{}", hex16());
    let path = format!("/api/v1/items/{name}");
    call(
        port,
        "PUT",
        &path,
        Some(&dev.token),
        Some(&item_body(vault)),
    )
    .ok();
    name
}

/// Starts a one-node cluster.
fn single_node(tmp: &std::path::Path) -> Node {
    let mut n = Node::new(tmp, 1);
    n.init();
    n.start();
    n.wait_ready();
    n
}

/// A one-node cluster with the account alice and the requestable
/// `standard` tier.
fn alice_node(tmp: &std::path::Path) -> Node {
    let n = single_node(tmp);
    create_user(&n, "alice");
    define_tier(&n, "standard", true);
    n
}

/// Who may call a route, and what the permitted callers get.
#[derive(Debug, Clone, Copy)]
enum Access {
    /// Anyone, with or without a token: every caller gets this status.
    Public(u16),
    /// A device token: the owning account's device gets `owner`, another
    /// account's device gets `other` (404 when the route names the owner's
    /// record). No token, bad or revoked tokens: 401; the admin token: 403.
    Device { owner: u16, other: u16 },
    /// The admin token gets this; device tokens 403; no or bad tokens 401.
    Admin(u16),
    /// The admin token (or the cluster secret) gets this; every other
    /// caller, device tokens included, 401.
    Operator(u16),
    /// Remote control of alice's device: the device's account (through
    /// any of its devices), the admin token and the cluster admin get
    /// `seen`; another account's device and the org admin of another
    /// organization get `unseen`; the read-only operator `seen` on reads
    /// and 403 on actions.
    Control { seen: u16, unseen: u16 },
}

/// A device route's row: what the owner's device and another account's
/// device get.
const fn dev(owner: u16, other: u16) -> Access {
    Access::Device { owner, other }
}

/// The table: every documented `/api/v1` route and who may call it.
fn access(method: &str, path: &str) -> Option<Access> {
    use Access::*;
    Some(match (method, path) {
        ("post", "/api/v1/login/params") => Public(200),
        ("post", "/api/v1/login") => Public(200),
        ("get", "/api/v1/openapi.json") => Public(200),
        ("get", "/api/v1/cluster/status") => Public(200),
        // A re-join of a member at its own address: an operator action.
        ("post", "/api/v1/cluster/join") => Operator(200),
        ("get", "/api/v1/account") => dev(200, 200),
        // The body carries a wrong old login key: a token that gets past
        // authentication is answered login_failed.
        ("post", "/api/v1/account/password") => dev(401, 401),
        ("get", "/api/v1/devices") => dev(200, 200),
        ("post", "/api/v1/devices/{id}/rename") => dev(200, 404),
        ("post", "/api/v1/devices/{id}/revoke") => dev(200, 404),
        ("get", "/api/v1/tiers") => dev(200, 200),
        ("get", "/api/v1/vaults") => dev(200, 200),
        ("post", "/api/v1/vaults") => dev(201, 201),
        ("get", "/api/v1/vaults/{id}") => dev(200, 404),
        ("delete", "/api/v1/vaults/{id}") => dev(200, 404),
        ("get", "/api/v1/vaults/{id}/snapshots") => dev(200, 404),
        ("post", "/api/v1/vaults/{id}/snapshots") => dev(201, 404),
        ("delete", "/api/v1/vaults/{id}/snapshots/{sid}") => dev(204, 404),
        ("get", "/api/v1/items") => dev(200, 200),
        ("put", "/api/v1/items/{name}") => dev(200, 404),
        ("delete", "/api/v1/items/{name}") => dev(200, 404),
        ("get", "/api/v1/jobs") => dev(200, 200),
        ("post", "/api/v1/jobs") => dev(201, 404),
        ("post", "/api/v1/jobs/{id}/finish") => dev(200, 404),
        ("post", "/api/v1/jobs/{id}/heartbeat") => dev(200, 404),
        ("post", "/api/v1/jobs/record") => dev(201, 404),
        ("put", "/api/v1/vaults/{id}/commands") => dev(200, 404),
        ("get", "/api/v1/vaults/{id}/retention") => dev(200, 404),
        ("put", "/api/v1/vaults/{id}/retention") => dev(200, 404),
        ("post", "/api/v1/vaults/{id}/retention/clear") => dev(200, 404),
        ("get", "/api/v1/schedules") => dev(200, 200),
        ("put", "/api/v1/schedules/{name}") => dev(200, 404),
        ("delete", "/api/v1/schedules/{name}") => dev(200, 404),
        ("get", "/api/v1/admin/users") => Admin(200),
        ("post", "/api/v1/admin/users") => Admin(201),
        // A fresh account (no vaults) each call.
        ("post", "/api/v1/admin/users/{name}/delete") => Admin(200),
        // A fresh account each call (enabling an enabled one is fine).
        ("post", "/api/v1/admin/users/{name}/disable") => Admin(200),
        ("post", "/api/v1/admin/users/{name}/enable") => Admin(200),
        ("get", "/api/v1/admin/tiers") => Admin(200),
        ("post", "/api/v1/admin/tiers") => Admin(201),
        // An authority off loopback over plain HTTP: refused after the
        // token was checked, changing nothing.
        ("post", "/api/v1/admin/license") => Admin(400),
        ("get", "/api/v1/admin/jobs") => Admin(200),
        ("get", "/api/v1/admin/backups/overdue") => Admin(200),
        ("get", "/api/v1/admin/devices") => Admin(200),
        ("post", "/api/v1/admin/devices/{id}/revoke") => Admin(200),
        // Node 99 was never a member.
        ("post", "/api/v1/cluster/remove") => Admin(404),
        ("post", "/api/v1/cluster/drain") => Admin(404),
        ("post", "/api/v1/vaults/{id}/chunks/missing") => dev(200, 404),
        ("post", "/api/v1/vaults/{id}/chunks") => dev(200, 404),
        ("post", "/api/v1/vaults/{id}/chunks/get") => dev(200, 404),
        ("post", "/api/v1/vaults/{id}/chunks/list") => dev(200, 404),
        // A fresh vault with the owner's running prune job on it each call.
        ("post", "/api/v1/vaults/{id}/chunks/delete") => dev(200, 404),
        ("post", "/api/v1/operators/login/params") => Public(200),
        ("post", "/api/v1/operators/login") => Public(200),
        // Only an operator session logs out (each call a fresh one).
        ("post", "/api/v1/operators/logout") => Admin(403),
        ("get", "/api/v1/admin/operators") => Admin(200),
        ("post", "/api/v1/admin/operators") => Admin(201),
        ("post", "/api/v1/admin/operators/{name}/remove") => Admin(204),
        ("post", "/api/v1/admin/operators/{name}/revoke") => Admin(204),
        // Another (fresh) operator's second factor.
        ("post", "/api/v1/admin/operators/{name}/totp") => Admin(200),
        // One's own, with the password: removing it leaves the table's
        // operator logging in without a code.
        ("post", "/api/v1/operators/totp") => Public(200),
        ("get", "/api/v1/admin/orgs") => Admin(200),
        ("post", "/api/v1/admin/orgs") => Admin(201),
        ("get", "/api/v1/admin/audit") => Admin(200),
        // Not a WebSocket upgrade: refused after the token was checked.
        ("get", "/api/v1/connect") => dev(400, 400),
        // A long-poll without a session opens one only with the hello.
        ("post", "/api/v1/connect/poll") => dev(400, 400),
        // The dispatcher's view of one device (offline here).
        ("get", "/api/v1/control/{id}") => Control {
            seen: 200,
            unseen: 404,
        },
        ("get", "/api/v1/control") => Control {
            seen: 200,
            unseen: 200,
        },
        // Alice's device holds no live connection.
        (
            "post",
            "/api/v1/control/{id}/backup"
            | "/api/v1/control/{id}/restore"
            | "/api/v1/control/{id}/retention"
            | "/api/v1/control/{id}/check"
            | "/api/v1/control/{id}/cancel"
            | "/api/v1/control/{id}/dirs"
            | "/api/v1/control/{id}/files"
            | "/api/v1/control/{id}/disconnect",
        ) => Control {
            seen: 409,
            unseen: 404,
        },
        // A finished job: the stream sends it and ends.
        ("get", "/api/v1/jobs/{id}/events") => Control {
            seen: 200,
            unseen: 404,
        },
        _ => return None,
    })
}

/// What the operators get on an admin route (`Admin(s)`): the cluster
/// admin what the admin token gets; the org admin of `acme` (alice and bob
/// are in the default organization) and the read-only operator get reads
/// (scoped) and are refused writes with `403`, except where the row says
/// otherwise: `(org admin, read-only)`.
fn staff(method: &str, path: &str, admin: u16, who: &str) -> (u16, Option<&'static str>) {
    let special = match (method, path) {
        // An org admin creates users in their own organization.
        ("post", "/api/v1/admin/users") => Some((201, 403)),
        // Refused before anything is proposed.
        ("post", "/api/v1/admin/license") => Some((400, 400)),
        // Another organization's device or account is not found for an
        // org admin.
        (
            "post",
            "/api/v1/admin/devices/{id}/revoke"
            | "/api/v1/admin/users/{name}/delete"
            | "/api/v1/admin/users/{name}/disable"
            | "/api/v1/admin/users/{name}/enable",
        ) => Some((404, 403)),
        // A fresh session of the caller's own each call.
        ("post", "/api/v1/operators/logout") => Some((204, 204)),
        _ => None,
    };
    let (org_admin, read_only) = special.unwrap_or(if method == "get" {
        (admin, admin)
    } else {
        (403, 403)
    });
    let code = |s: u16| (s == 403).then_some("");
    match who {
        "cluster-admin operator" if path == "/api/v1/operators/logout" => (204, None),
        "cluster-admin operator" => (admin, None),
        "org-admin operator" => (org_admin, code(org_admin)),
        _ => (read_only, code(read_only)),
    }
}

/// Creates operator `name` (login key [`key`]) with the admin token and
/// logs them in: the session token.
fn operator(port: u16, admin: &str, name: &str, role: &str, org: Option<&str>) -> String {
    let body = json!({"name": name, "role": role, "org": org,
        "kdf": {"memory_kib": 8, "iterations": 1, "parallelism": 1, "salt": "00".repeat(16)},
        "login_key": key()});
    let r = call(
        port,
        "POST",
        "/api/v1/admin/operators",
        Some(admin),
        Some(&body),
    );
    assert_eq!(r.status, 201, "{r:?}");
    operator_session(port, name)
}

/// A fresh session of operator `name`.
fn operator_session(port: u16, name: &str) -> String {
    let body = json!({"name": name, "login_key": key()});
    let r = call(port, "POST", "/api/v1/operators/login", None, Some(&body)).ok();
    r["token"].as_str().expect("session token").to_string()
}

/// The world the table runs in: alice owns the records, bob is the other
/// account.
struct World {
    port: u16,
    admin: String,
    alice: Dev,
    bob: Dev,
    revoked: Dev,
    vault: String,
    login_addr: String,
}

impl World {
    /// A fresh read-only operator with a session, for a call that removes
    /// or revokes one.
    /// A fresh account in the default organization, created with the
    /// admin token.
    fn victim_user(&self) -> String {
        let name = format!("gone-{}", hex16());
        let body: serde_json::Value = serde_json::from_str(&user_body(&name)).expect("json");
        let r = call(
            self.port,
            "POST",
            "/api/v1/admin/users",
            Some(&self.admin),
            Some(&body),
        );
        assert_eq!(r.status, 201, "{r:?}");
        name
    }

    fn victim_operator(&self) -> String {
        let name = format!("victim-{}", hex16());
        operator(self.port, &self.admin, &name, "read-only", None);
        name
    }

    /// A fresh concrete request (path, body bytes) for one call of a route.
    fn request(&self, method: &str, template: &str) -> (String, Vec<u8>) {
        let v = &self.vault;
        let ids = || cairn_proto::frames::encode_ids(&[cairn_proto::ChunkId([7; 32])]);
        match (method, template) {
            ("post", "/api/v1/vaults/{id}/chunks/missing") => {
                (format!("/api/v1/vaults/{v}/chunks/missing"), ids())
            }
            ("post", "/api/v1/vaults/{id}/chunks/get") => {
                (format!("/api/v1/vaults/{v}/chunks/get"), ids())
            }
            ("post", "/api/v1/vaults/{id}/chunks/list") => {
                (format!("/api/v1/vaults/{v}/chunks/list"), Vec::new())
            }
            ("post", "/api/v1/vaults/{id}/chunks/delete") => {
                let vault = new_vault(self.port, &self.alice);
                let job = new_job_of(self.port, &self.alice, &vault, "prune");
                (
                    format!("/api/v1/vaults/{vault}/chunks/delete?job={job}"),
                    ids(),
                )
            }
            ("post", "/api/v1/vaults/{id}/chunks") => {
                let mut frames = cairn_proto::frames::frames_header();
                let id = cairn_proto::ChunkId(rand::random());
                cairn_proto::frames::push_frame(&mut frames, &id, b"sealed bytes");
                (format!("/api/v1/vaults/{v}/chunks"), frames)
            }
            _ => {
                let (path, body) = self.json_request(method, template);
                (
                    path,
                    body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
                )
            }
        }
    }

    /// A fresh concrete JSON request (path, body) for one call of a route:
    /// records a call may consume (deleted, revoked, finished) are created
    /// anew for each call.
    fn json_request(&self, method: &str, template: &str) -> (String, Option<Value>) {
        let a = &self.alice;
        let p = self.port;
        let v = &self.vault;
        let victim = || login(p, "alice", &format!("victim-{}", hex16())).id;
        match (method, template) {
            ("post", "/api/v1/login/params") => (template.into(), Some(json!({"user": "alice"}))),
            ("post", "/api/v1/login") => (
                template.into(),
                Some(json!({"user": "alice", "login_key": key(), "device": "table-login"})),
            ),
            ("post", "/api/v1/cluster/join") => (
                template.into(),
                Some(json!({"node_id": 1, "addr": self.login_addr})),
            ),
            ("post", "/api/v1/account/password") => (
                template.into(),
                Some(json!({"old_login_key": "22".repeat(32),
                    "kdf": {"memory_kib": 8, "iterations": 1, "parallelism": 1, "salt": "33".repeat(16)},
                    "login_key": "44".repeat(32), "vaults": []})),
            ),
            ("post", "/api/v1/devices/{id}/rename") => (
                format!("/api/v1/devices/{}/rename", victim()),
                Some(json!({"name": format!("renamed-{}", hex16())})),
            ),
            ("post", "/api/v1/devices/{id}/revoke") => {
                (format!("/api/v1/devices/{}/revoke", victim()), None)
            }
            ("post", "/api/v1/admin/devices/{id}/revoke") => {
                (format!("/api/v1/admin/devices/{}/revoke", victim()), None)
            }
            ("post", "/api/v1/vaults") => {
                let id = hex16();
                (
                    template.into(),
                    Some(
                        json!({"id": id, "name": format!("v-{id}"), "tier": "standard", "wrapped_keys": "ab"}),
                    ),
                )
            }
            ("get", "/api/v1/vaults/{id}") => (format!("/api/v1/vaults/{v}"), None),
            ("delete", "/api/v1/vaults/{id}") => {
                (format!("/api/v1/vaults/{}", new_vault(p, a)), None)
            }
            ("get", "/api/v1/vaults/{id}/snapshots") => {
                (format!("/api/v1/vaults/{v}/snapshots"), None)
            }
            ("post", "/api/v1/vaults/{id}/snapshots") => (
                format!("/api/v1/vaults/{v}/snapshots"),
                Some(snapshot_body(&hex16(), &new_job(p, a, v))),
            ),
            ("delete", "/api/v1/vaults/{id}/snapshots/{sid}") => (
                format!("/api/v1/vaults/{v}/snapshots/{}", new_snapshot(p, a, v)),
                None,
            ),
            ("put", "/api/v1/items/{name}") => (
                format!("/api/v1/items/item-{}", hex16()),
                Some(item_body(v)),
            ),
            ("delete", "/api/v1/items/{name}") => {
                (format!("/api/v1/items/{}", new_item(p, a, v)), None)
            }
            ("post", "/api/v1/jobs") => (
                template.into(),
                Some(json!({"id": hex16(), "kind": "backup", "vault": v})),
            ),
            ("post", "/api/v1/jobs/{id}/finish") => (
                format!("/api/v1/jobs/{}/finish", new_job(p, a, v)),
                Some(
                    json!({"status": "succeeded", "files": 3, "bytes": 4, "error": null, "log": "ok"}),
                ),
            ),
            ("post", "/api/v1/jobs/{id}/heartbeat") => {
                (format!("/api/v1/jobs/{}/heartbeat", new_job(p, a, v)), None)
            }
            ("post", "/api/v1/jobs/record") => (
                template.into(),
                Some(json!({"id": hex16(), "kind": "backup", "vault": v,
                    "status": "missed", "started_at": 1})),
            ),
            ("put", "/api/v1/vaults/{id}/commands") => (
                format!("/api/v1/vaults/{v}/commands"),
                Some(json!({"before": ["true"], "after": []})),
            ),
            ("get", "/api/v1/vaults/{id}/retention") => {
                (format!("/api/v1/vaults/{v}/retention"), None)
            }
            ("put", "/api/v1/vaults/{id}/retention") => (
                format!("/api/v1/vaults/{v}/retention"),
                Some(retention_body()),
            ),
            ("post", "/api/v1/vaults/{id}/retention/clear") => {
                // A default to clear, set anew for each call.
                let path = format!("/api/v1/vaults/{v}/retention");
                call(p, "PUT", &path, Some(&a.token), Some(&retention_body())).ok();
                (format!("{path}/clear"), Some(json!({})))
            }
            ("put", "/api/v1/schedules/{name}") => (
                format!("/api/v1/schedules/s-{}", hex16()),
                Some(json!({"item": new_item(p, a, v), "spec": "every 1h"})),
            ),
            ("delete", "/api/v1/schedules/{name}") => {
                let name = format!("s-{}", hex16());
                let path = format!("/api/v1/schedules/{name}");
                let body = json!({"item": new_item(p, a, v), "spec": "daily 02:00"});
                call(p, "PUT", &path, Some(&a.token), Some(&body)).ok();
                (path, None)
            }
            ("post", "/api/v1/admin/users") => (
                template.into(),
                Some(serde_json::from_str(&user_body(&format!("u{}", hex16()))).expect("json")),
            ),
            ("post", "/api/v1/admin/users/{name}/delete") => (
                format!("/api/v1/admin/users/{}/delete", self.victim_user()),
                Some(json!({})),
            ),
            ("post", "/api/v1/admin/users/{name}/disable") => (
                format!("/api/v1/admin/users/{}/disable", self.victim_user()),
                Some(json!({"reason": "table"})),
            ),
            ("post", "/api/v1/admin/users/{name}/enable") => (
                format!("/api/v1/admin/users/{}/enable", self.victim_user()),
                Some(json!({})),
            ),
            ("post", "/api/v1/admin/operators/{name}/totp") => (
                format!("/api/v1/admin/operators/{}/totp", self.victim_operator()),
                Some(json!({"enable": true})),
            ),
            ("post", "/api/v1/operators/totp") => (
                template.into(),
                Some(json!({"name": "table-login", "login_key": key(), "enable": false})),
            ),
            ("post", "/api/v1/admin/tiers") => (
                template.into(),
                Some(json!({"name": format!("t{}", hex16()), "replicas": 2})),
            ),
            ("post", "/api/v1/admin/license") => (
                template.into(),
                Some(json!({"serial": "SN-1", "authority": "http://10.0.0.1:1"})),
            ),
            ("post", "/api/v1/cluster/remove" | "/api/v1/cluster/drain") => {
                (template.into(), Some(json!({"node_id": 99})))
            }
            ("post", "/api/v1/operators/login/params") => {
                (template.into(), Some(json!({"name": "table-login"})))
            }
            ("post", "/api/v1/operators/login") => (
                template.into(),
                Some(json!({"name": "table-login", "login_key": key()})),
            ),
            ("post", "/api/v1/admin/operators") => (
                template.into(),
                Some(
                    json!({"name": format!("op-{}", hex16()), "role": "read-only",
                    "kdf": {"memory_kib": 8, "iterations": 1, "parallelism": 1, "salt": "00".repeat(16)},
                    "login_key": key()}),
                ),
            ),
            ("post", "/api/v1/admin/operators/{name}/remove") => {
                let name = self.victim_operator();
                (
                    format!("/api/v1/admin/operators/{name}/remove"),
                    Some(json!({})),
                )
            }
            ("post", "/api/v1/admin/operators/{name}/revoke") => {
                let name = self.victim_operator();
                (
                    format!("/api/v1/admin/operators/{name}/revoke"),
                    Some(json!({})),
                )
            }
            ("post", "/api/v1/admin/orgs") => (
                template.into(),
                Some(json!({"name": format!("org-{}", hex16()), "display_name": "X"})),
            ),
            ("post", t) if t.starts_with("/api/v1/control/{id}/") => {
                let path = t.replace("{id}", &a.id);
                let body = match t.rsplit('/').next() {
                    Some("backup") => json!({"item": new_item(p, a, v)}),
                    Some("restore") => {
                        json!({"vault": v, "snapshot": "latest", "target": "/tmp/restored"})
                    }
                    Some("retention") => json!({"vault": v, "item": new_item(p, a, v)}),
                    Some("check") => json!({"vault": v, "read_data": true}),
                    Some("cancel") => json!({"job": new_job(p, a, v)}),
                    Some("dirs") => json!({"path": "/"}),
                    Some("files") => json!({"vault": v, "snapshot": "latest"}),
                    _ => return (path, None),
                };
                (path, Some(body))
            }
            ("get", "/api/v1/control/{id}") => (format!("/api/v1/control/{}", a.id), None),
            ("get", "/api/v1/jobs/{id}/events") => {
                let job = new_job(p, a, v);
                let end = json!({"status": "succeeded", "files": 1, "bytes": 2, "error": null, "log": ""});
                let finish = format!("/api/v1/jobs/{job}/finish");
                call(p, "POST", &finish, Some(&a.token), Some(&end)).ok();
                (format!("/api/v1/jobs/{job}/events"), None)
            }
            (_, t) => {
                assert!(!t.contains('{'), "no request recipe for {method} {t}");
                (t.into(), None)
            }
        }
    }
}

#[test]
fn every_route_has_a_row_and_enforces_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let n = alice_node(tmp.path());
    create_user(&n, "bob");
    let p = n.port;
    let alice = login(p, "alice", "a1");
    let bob = login(p, "bob", "b1");
    let revoked = login(p, "alice", "a-revoked");
    let path = format!("/api/v1/devices/{}/revoke", revoked.id);
    call(p, "POST", &path, Some(&alice.token), None).ok();
    let vault = new_vault(p, &alice);
    let world = World {
        port: p,
        admin: admin_token(&n),
        alice,
        bob,
        revoked,
        vault,
        login_addr: n.url(),
    };
    let acme = json!({"name": "acme", "display_name": "Acme"});
    call(
        p,
        "POST",
        "/api/v1/admin/orgs",
        Some(&world.admin),
        Some(&acme),
    )
    .ok();
    let root = operator(p, &world.admin, "root", "cluster-admin", None);
    let org_admin = operator(p, &world.admin, "acme-admin", "org-admin", Some("acme"));
    let read_only = operator(p, &world.admin, "auditor", "read-only", None);
    // The operator the login rows log in (more sessions than one keeps).
    operator(p, &world.admin, "table-login", "read-only", None);

    let doc = call(p, "GET", "/api/v1/openapi.json", None, None).ok();
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if path.starts_with("/api/v1/") {
                routes.push((method.clone(), path.clone()));
            }
        }
    }
    let missing: Vec<String> = routes
        .iter()
        .filter(|(m, p)| access(m, p).is_none())
        .map(|(m, p)| format!("{} {p}", m.to_uppercase()))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without a row in the table: {missing:?}"
    );
    assert!(
        routes.len() >= 30,
        "only {} routes documented",
        routes.len()
    );

    let forged = format!("cairn_{}_{}", world.alice.id, "ab".repeat(32));
    let callers: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("garbage token", Some("garbage".into())),
        ("forged device token", Some(forged)),
        ("revoked device", Some(world.revoked.token.clone())),
        ("other account's device", Some(world.bob.token.clone())),
        ("owner device", Some(world.alice.token.clone())),
        ("admin token", Some(world.admin.clone())),
        ("cluster-admin operator", Some(root.clone())),
        ("org-admin operator", Some(org_admin.clone())),
        ("read-only operator", Some(read_only.clone())),
    ];
    let operator_name = |who: &str| match who {
        "cluster-admin operator" => Some("root"),
        "org-admin operator" => Some("acme-admin"),
        "read-only operator" => Some("auditor"),
        _ => None,
    };
    let mut checked = 0;
    for (method, template) in &routes {
        let rule = access(method, template).expect("row");
        for (who, token) in &callers {
            let (expect, code): (u16, Option<&str>) = match (rule, *who) {
                (Access::Public(s), _) => (s, None),
                (_, "no token" | "garbage token" | "forged device token" | "revoked device") => {
                    (401, Some("unauthorized"))
                }
                (Access::Control { seen, unseen }, w) => match w {
                    "other account's device" | "org-admin operator" => {
                        (unseen, (unseen == 404).then_some("not_found"))
                    }
                    "read-only operator" if method != "get" => (403, Some("forbidden")),
                    _ => (seen, (seen == 409).then_some("device_offline")),
                },
                (Access::Device { .. }, "admin token") => (403, Some("forbidden")),
                (Access::Device { .. }, w) if operator_name(w).is_some() => {
                    (403, Some("forbidden"))
                }
                (Access::Operator(_), w) if operator_name(w).is_some() => {
                    (401, Some("unauthorized"))
                }
                (Access::Admin(s), w) if operator_name(w).is_some() => {
                    staff(method, template, s, w)
                }
                (Access::Device { other, .. }, "other account's device") => {
                    (other, (other == 404).then_some("not_found"))
                }
                (Access::Device { owner, .. }, _) => (owner, None),
                (Access::Admin(_), "other account's device" | "owner device") => {
                    (403, Some("forbidden"))
                }
                (Access::Admin(s), _) => (s, None),
                (Access::Operator(s), "admin token") => (s, None),
                (Access::Operator(_), _) => (401, Some("unauthorized")),
            };
            let (path, body) = world.request(method, template);
            // Logging out ends the session: each call logs out a fresh one.
            let token = match operator_name(who) {
                Some(name) if template == "/api/v1/operators/logout" => {
                    Some(operator_session(p, name))
                }
                _ => token.clone(),
            };
            let r = raw(p, &method.to_uppercase(), &path, token.as_deref(), &body);
            assert_eq!(
                r.status,
                expect,
                "{} {path} as {who}: {:?}",
                method.to_uppercase(),
                r.body
            );
            match code {
                // Refused by role: by the route or by the state machine.
                Some("") => assert!(
                    ["forbidden", "not_permitted"].contains(&r.code()),
                    "{} {path} as {who}: {:?}",
                    method.to_uppercase(),
                    r.body
                ),
                Some(code) => {
                    assert_eq!(r.code(), code, "{} {path} as {who}", method.to_uppercase())
                }
                None => {}
            }
            if r.status >= 400 {
                assert!(
                    r.body["code"].is_string() && r.body["message"].is_string(),
                    "{} {path} as {who}: error body {:?}",
                    method.to_uppercase(),
                    r.body
                );
            }
            checked += 1;
        }
    }
    println!("checked {checked} calls over {} routes", routes.len());

    // The other account sees none of alice's records in its lists.
    for list in [
        "/api/v1/vaults",
        "/api/v1/devices",
        "/api/v1/jobs",
        "/api/v1/items",
    ] {
        let text = call(p, "GET", list, Some(&world.bob.token), None)
            .ok()
            .to_string();
        assert!(!text.contains(&world.vault), "{list}: {text}");
        assert!(!text.contains(&world.alice.id), "{list}: {text}");
    }
    // The org admin of acme sees none of the default organization's
    // accounts, devices or jobs; the cluster admin sees them.
    for list in [
        "/api/v1/admin/users",
        "/api/v1/admin/devices",
        "/api/v1/admin/jobs",
    ] {
        let mine = call(p, "GET", list, Some(&org_admin), None)
            .ok()
            .to_string();
        assert!(
            !mine.contains(&world.alice.id) && !mine.contains("\"alice\""),
            "{list}: {mine}"
        );
        let all = call(p, "GET", list, Some(&root), None).ok().to_string();
        assert!(
            all.contains(&world.alice.id) || all.contains("\"alice\""),
            "{list}: {all}"
        );
    }
    // Every operator write above is in the audit trail with its actor.
    let trail = call(p, "GET", "/api/v1/admin/audit", Some(&root), None).ok();
    let actors: BTreeSet<&str> = trail
        .as_array()
        .expect("trail")
        .iter()
        .filter_map(|e| e["actor"].as_str())
        .collect();
    assert!(
        actors.contains("operator root") && actors.contains("operator acme-admin"),
        "{actors:?}"
    );
    // Requestable tiers only, for devices; all of them for the admin.
    define_tier(&n, "hidden", false);
    let tiers = call(p, "GET", "/api/v1/tiers", Some(&world.alice.token), None).ok();
    let names: Vec<&str> = tiers
        .as_array()
        .expect("tiers")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"standard") && !names.contains(&"hidden"),
        "{names:?}"
    );
    // The CLI defines a tier with a quota and a description.
    let out = n.admin(&[
        "tier",
        "create",
        "big",
        "--replicas",
        "2",
        "--quota",
        "10GiB",
        "--description",
        "lots",
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let tiers = call(p, "GET", "/api/v1/tiers", Some(&world.alice.token), None).ok();
    let big = tiers
        .as_array()
        .expect("tiers")
        .iter()
        .find(|t| t["name"] == "big")
        .cloned()
        .expect("tier big");
    assert_eq!(big["quota_bytes"], 10u64 << 30);
    assert_eq!(big["description"], "lots");
    assert_eq!(big["replicas"], 2);
    // A vault cannot be requested from a tier that is not requestable.
    let body = json!({"id": hex16(), "name": "nope", "tier": "hidden", "wrapped_keys": "ab"});
    let r = call(
        p,
        "POST",
        "/api/v1/vaults",
        Some(&world.alice.token),
        Some(&body),
    );
    assert_eq!((r.status, r.code()), (422, "tier_not_requestable"), "{r:?}");
    // Vault info carries the tier's replicas and quota.
    let info = call(
        p,
        "GET",
        &format!("/api/v1/vaults/{}", world.vault),
        Some(&world.alice.token),
        None,
    )
    .ok();
    assert_eq!(info["replicas"], 1);
    assert_eq!(info["quota_bytes"], 1_000_000_000u64);
    // …and what the storage role holds of it (at least the 4-byte root).
    assert!(info["used_bytes"].as_u64() >= Some(4), "{info}");
    // An unknown path and a wrong method are JSON errors too.
    let r = call(p, "GET", "/api/v1/nonsense", None, None);
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = call(p, "PATCH", "/api/v1/vaults", Some(&world.alice.token), None);
    assert_eq!(r.status, 405);
    assert!(r.body["code"].is_string(), "{r:?}");
    // Every documented route is routed: none of the calls above hit the
    // fallback (checked by the statuses), and the admin sees the logins
    // of both accounts in the job log.
    let jobs = call(p, "GET", "/api/v1/admin/jobs", Some(&world.admin), None).ok();
    let users: BTreeSet<&str> = jobs
        .as_array()
        .expect("jobs")
        .iter()
        .filter(|j| j["kind"] == "login")
        .filter_map(|j| j["user"].as_str())
        .collect();
    assert_eq!(users, BTreeSet::from(["alice", "bob"]));
}

/// Login through each node of a three-node cluster; every token works on
/// every node; a device revoked through node 1 is refused at once by
/// nodes 2 and 3.
#[test]
fn login_anywhere_and_revocation_is_immediate_everywhere() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nodes: Vec<Node> = (1..=3).map(|id| Node::new(tmp.path(), id)).collect();
    common::form_three(&mut nodes);
    create_user(&nodes[1], "alice");

    let mut devices = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let body = json!({"user": "alice", "login_key": key(), "device": format!("d{i}")});
        let r = call(n.port, "POST", "/api/v1/login", None, Some(&body)).ok();
        let advertised: BTreeSet<String> = r["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let expected: BTreeSet<String> = nodes.iter().map(Node::url).collect();
        assert_eq!(advertised, expected, "login through node {}", n.id);
        devices.push(Dev {
            token: r["token"].as_str().expect("token").into(),
            id: r["device"].as_str().expect("id").into(),
        });
        let wrong = json!({"user": "alice", "login_key": "00".repeat(32), "device": "x"});
        let r = call(n.port, "POST", "/api/v1/login", None, Some(&wrong));
        assert_eq!((r.status, r.code()), (401, "login_failed"), "node {}", n.id);
    }
    for d in &devices {
        for n in &nodes {
            let account = call(n.port, "GET", "/api/v1/account", Some(&d.token), None).ok();
            assert_eq!(account["device"], d.id.as_str());
            assert_eq!(account["nodes"].as_array().map(Vec::len), Some(3));
        }
    }
    // Logging in again under the same name rotates that device's token.
    let again = login(nodes[2].port, "alice", "d0");
    assert_eq!(again.id, devices[0].id, "same device");
    let r = call(
        nodes[0].port,
        "GET",
        "/api/v1/account",
        Some(&devices[0].token),
        None,
    );
    assert_eq!(
        (r.status, r.code()),
        (401, "unauthorized"),
        "old token after rotation"
    );
    devices[0] = again;

    let path = format!("/api/v1/devices/{}/revoke", devices[1].id);
    let r = call(nodes[0].port, "POST", &path, Some(&devices[0].token), None).ok();
    assert!(r["revoked_at"].is_u64(), "{r}");
    for n in &nodes[1..] {
        let r = call(
            n.port,
            "GET",
            "/api/v1/account",
            Some(&devices[1].token),
            None,
        );
        assert_eq!((r.status, r.code()), (401, "unauthorized"), "node {}", n.id);
    }
    // The admin revokes through node 3; node 1 refuses at once.
    let path = format!("/api/v1/admin/devices/{}/revoke", devices[2].id);
    call(
        nodes[2].port,
        "POST",
        &path,
        Some(&admin_token(&nodes[2])),
        None,
    )
    .ok();
    let r = call(
        nodes[0].port,
        "GET",
        "/api/v1/devices",
        Some(&devices[2].token),
        None,
    );
    assert_eq!(r.status, 401);
    let list = call(
        nodes[1].port,
        "GET",
        "/api/v1/devices",
        Some(&devices[0].token),
        None,
    )
    .ok();
    let current: Vec<&Value> = list
        .as_array()
        .expect("list")
        .iter()
        .filter(|d| d["current"] == true)
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], devices[0].id.as_str());
}

/// Unknown users and wrong keys answer alike; made-up KDF parameters are
/// stable; failed logins are limited per account and per address, before
/// the key is checked, with Retry-After.
#[test]
fn login_failures_look_alike_and_are_rate_limited() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let n = single_node(tmp.path());
    let p = n.port;
    create_user(&n, "alice");

    let params = |user: &str| {
        call(
            p,
            "POST",
            "/api/v1/login/params",
            None,
            Some(&json!({"user": user})),
        )
        .ok()
    };
    let real = params("alice");
    assert_eq!(real["salt"], "00".repeat(16));

    // An account made by `cairnd admin user create` logs in with the key
    // derived from the password and the parameters the server hands out.
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, "correct horse\n").expect("write pw");
    let out = n.admin(&[
        "user",
        "create",
        "carol",
        "--password-file",
        &pw.to_string_lossy(),
    ]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let kdf = params("carol");
    let u32_of = |k: &str| u32::try_from(kdf[k].as_u64().expect(k)).expect(k);
    let salt = hex::decode(kdf["salt"].as_str().expect("salt")).expect("hex");
    let cost = cairn_proto::kdf::Cost {
        memory_kib: u32_of("memory_kib"),
        iterations: u32_of("iterations"),
        parallelism: u32_of("parallelism"),
    };
    let derived = cairn_proto::kdf::derive(b"correct horse", &salt, cost).expect("kdf");
    let body = json!({"user": "carol", "login_key": hex::encode(derived.login), "device": "pc"});
    let r = call(p, "POST", "/api/v1/login", None, Some(&body)).ok();
    assert_eq!(r["device_name"], "pc");
    let ghost = params("ghost");
    assert_eq!(ghost, params("ghost"), "stable for the same name");
    assert_ne!(ghost["salt"], params("ghost2")["salt"]);
    assert_eq!(ghost["salt"].as_str().map(str::len), Some(32));

    let attempt = |user: &str, key: &str| {
        let body = json!({"user": user, "login_key": key, "device": "laptop"});
        call(p, "POST", "/api/v1/login", None, Some(&body))
    };
    let wrong_key = attempt("alice", &"22".repeat(32));
    let no_user = attempt("ghost", &key());
    assert_eq!((wrong_key.status, wrong_key.code()), (401, "login_failed"));
    assert_eq!(wrong_key.body, no_user.body, "same answer for both");

    // Four more failures for alice make five: the sixth attempt is refused
    // before the key is checked — even the right key.
    for _ in 0..4 {
        assert_eq!(attempt("alice", &"22".repeat(32)).status, 401);
    }
    let limited = attempt("alice", &key());
    assert_eq!(
        (limited.status, limited.code()),
        (429, "rate_limited"),
        "{limited:?}"
    );
    let retry: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=300).contains(&retry), "{retry}");

    // Per address: 20 failures in all (6 so far: alice 5, ghost 1) lock
    // every name from this address, existing or not.
    for i in 0..14 {
        assert_eq!(attempt(&format!("nobody{i}"), &key()).status, 401);
    }
    let r = attempt("someone-new", &key());
    assert_eq!((r.status, r.code()), (429, "rate_limited"));
}

/// A password change re-wraps the vault keys in one event; the asking
/// device gets a new token, every other device must log in again, the
/// old password stops working.
#[test]
fn password_change_logs_out_other_devices() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let n = alice_node(tmp.path());
    let p = n.port;
    let a1 = login(p, "alice", "a1");
    let a2 = login(p, "alice", "a2");
    let vault = new_vault(p, &a1);

    let change = |vaults: Value| {
        json!({"old_login_key": key(),
            "kdf": {"memory_kib": 8, "iterations": 1, "parallelism": 1, "salt": "55".repeat(16)},
            "login_key": "66".repeat(32), "vaults": vaults})
    };
    // Not exactly the account's vaults: refused, nothing changes.
    let r = call(
        p,
        "POST",
        "/api/v1/account/password",
        Some(&a1.token),
        Some(&change(json!([]))),
    );
    assert_eq!((r.status, r.code()), (422, "rewrap_mismatch"), "{r:?}");
    call(p, "GET", "/api/v1/account", Some(&a2.token), None).ok();

    let body = change(json!([{"vault": vault, "wrapped_keys": "beef"}]));
    let reply = call(
        p,
        "POST",
        "/api/v1/account/password",
        Some(&a1.token),
        Some(&body),
    )
    .ok();
    assert_eq!(reply["device"], a1.id.as_str());
    let new_token = reply["token"].as_str().expect("token");
    let account = call(p, "GET", "/api/v1/account", Some(new_token), None).ok();
    assert_eq!(account["kdf"]["salt"], "55".repeat(16));
    let v = call(
        p,
        "GET",
        &format!("/api/v1/vaults/{vault}"),
        Some(new_token),
        None,
    )
    .ok();
    assert_eq!(v["wrapped_keys"], "beef");

    for old in [&a1.token, &a2.token] {
        let r = call(p, "GET", "/api/v1/account", Some(old), None);
        assert_eq!((r.status, r.code()), (401, "unauthorized"));
    }
    let old_pw = json!({"user": "alice", "login_key": key(), "device": "a2"});
    let r = call(p, "POST", "/api/v1/login", None, Some(&old_pw));
    assert_eq!((r.status, r.code()), (401, "login_failed"));
    let new_pw = json!({"user": "alice", "login_key": "66".repeat(32), "device": "a2"});
    let r = call(p, "POST", "/api/v1/login", None, Some(&new_pw)).ok();
    assert_eq!(
        r["device"],
        a2.id.as_str(),
        "a2 logs in again as the same device"
    );
}

/// Items are private to their device; snapshot records are shared by the
/// account's devices: device 2 lists and forgets device 1's snapshot.
#[test]
fn items_are_private_and_snapshots_are_shared() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let n = alice_node(tmp.path());
    let p = n.port;
    let d1 = login(p, "alice", "laptop");
    let d2 = login(p, "alice", "desktop");
    let vault = new_vault(p, &d1);

    let put = call(
        p,
        "PUT",
        "/api/v1/items/home",
        Some(&d1.token),
        Some(&item_body(&vault)),
    )
    .ok();
    assert_eq!(put["paths"], json!(["/home/a"]));
    let mine = call(p, "GET", "/api/v1/items", Some(&d1.token), None).ok();
    assert_eq!(mine.as_array().map(Vec::len), Some(1));
    let theirs = call(p, "GET", "/api/v1/items", Some(&d2.token), None).ok();
    assert_eq!(theirs, json!([]), "device 2 does not see device 1's items");
    let r = call(p, "DELETE", "/api/v1/items/home", Some(&d2.token), None);
    assert_eq!((r.status, r.code()), (404, "not_found"));
    // Device 2's own item of the same name is a different item.
    let other = json!({"paths": ["/srv"], "excludes": [], "vault": vault});
    call(
        p,
        "PUT",
        "/api/v1/items/home",
        Some(&d2.token),
        Some(&other),
    )
    .ok();
    let mine = call(p, "GET", "/api/v1/items", Some(&d1.token), None).ok();
    assert_eq!(
        mine[0]["paths"],
        json!(["/home/a"]),
        "unchanged by device 2"
    );
    let removed = call(p, "DELETE", "/api/v1/items/home", Some(&d1.token), None).ok();
    assert_eq!(removed["name"], "home");
    let left = call(p, "GET", "/api/v1/items", Some(&d2.token), None).ok();
    assert_eq!(left[0]["paths"], json!(["/srv"]));

    let sid = new_snapshot(p, &d1, &vault);
    let mut unstored = snapshot_body(&hex16(), &new_job(p, &d1, &vault));
    unstored["root"] = json!("cd".repeat(32));
    let path = format!("/api/v1/vaults/{vault}/snapshots");
    let r = call(p, "POST", &path, Some(&d1.token), Some(&unstored));
    assert_eq!(
        r.status, 400,
        "a record naming an unstored root: {:?}",
        r.body
    );
    let list_path = format!("/api/v1/vaults/{vault}/snapshots");
    let list = call(p, "GET", &list_path, Some(&d2.token), None).ok();
    assert_eq!(list[0]["id"], sid.as_str());
    assert_eq!(list[0]["device"], d1.id.as_str());
    assert_eq!(list[0]["device_name"], "laptop");
    let forget = format!("/api/v1/vaults/{vault}/snapshots/{sid}");
    assert_eq!(
        call(p, "DELETE", &forget, Some(&d2.token), None).status,
        204
    );
    assert_eq!(
        call(p, "GET", &list_path, Some(&d1.token), None).ok(),
        json!([])
    );
    let r = call(p, "DELETE", &forget, Some(&d2.token), None);
    assert_eq!(
        (r.status, r.code()),
        (404, "not_found"),
        "already forgotten"
    );

    // Jobs: only the device that started one may finish it; the account
    // sees both devices' jobs.
    let job = new_job(p, &d1, &vault);
    let finish =
        json!({"status": "failed", "files": 1, "bytes": 2, "error": "disk full", "log": "tail"});
    let path = format!("/api/v1/jobs/{job}/finish");
    let r = call(p, "POST", &path, Some(&d2.token), Some(&finish));
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let done = call(p, "POST", &path, Some(&d1.token), Some(&finish)).ok();
    // The old wire name is accepted and shown under its new name.
    assert_eq!(done["status"], "error");
    assert_eq!(done["error"], "disk full");
    assert!(done["duration_ms"].is_u64());
    let jobs = call(p, "GET", "/api/v1/jobs", Some(&d2.token), None).ok();
    assert!(jobs
        .as_array()
        .expect("jobs")
        .iter()
        .any(|j| j["id"] == job.as_str()));
}

/// A write retried with the same Idempotency-Key is applied once and
/// answered like the first attempt; a login cannot be replayed that way
/// (its token was shown once).
#[test]
fn idempotency_keys_make_retries_safe() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let n = alice_node(tmp.path());
    let p = n.port;
    let d = login(p, "alice", "laptop");
    let key_header = hex16();
    let id = hex16();
    let body =
        json!({"id": id, "name": "photos", "tier": "standard", "wrapped_keys": "ab"}).to_string();
    let send = || {
        raw_with(
            p,
            "POST",
            "/api/v1/vaults",
            Some(&d.token),
            &[("Idempotency-Key", &key_header)],
            body.as_bytes(),
        )
    };
    let first = send();
    let second = send();
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(second.status, 201, "{second:?}");
    assert_eq!(first.body, second.body);
    let vaults = call(p, "GET", "/api/v1/vaults", Some(&d.token), None).ok();
    assert_eq!(vaults.as_array().map(Vec::len), Some(1));
    // Without the key, the same body is a second request: refused.
    let r = raw(p, "POST", "/api/v1/vaults", Some(&d.token), body.as_bytes());
    assert_eq!(r.status, 409, "{r:?}");

    let login_body = json!({"user": "alice", "login_key": key(), "device": "tablet"}).to_string();
    let login_key = hex16();
    let login = || {
        raw_with(
            p,
            "POST",
            "/api/v1/login",
            None,
            &[("Idempotency-Key", &login_key)],
            login_body.as_bytes(),
        )
    };
    assert_eq!(login().status, 200);
    let replay = login();
    assert_eq!(
        (replay.status, replay.code()),
        (400, "bad_request"),
        "{replay:?}"
    );
    let bad = raw_with(
        p,
        "POST",
        "/api/v1/vaults",
        Some(&d.token),
        &[("Idempotency-Key", "xyz")],
        body.as_bytes(),
    );
    assert_eq!((bad.status, bad.code()), (400, "bad_request"));
}

/// Oversized bodies answer 413 with a JSON error, on public and
/// authenticated routes.
#[test]
fn oversized_bodies_are_refused_with_json() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let n = alice_node(tmp.path());
    let p = n.port;
    let d = login(p, "alice", "laptop");
    let vault = new_vault(p, &d);

    let big = format!(r#"{{"user":"{}"}}"#, "x".repeat(2 << 20));
    let r = raw(p, "POST", "/api/v1/login/params", None, big.as_bytes());
    assert_eq!(
        (r.status, r.code()),
        (413, "payload_too_large"),
        "{:?}",
        r.status
    );

    let paths: Vec<String> = (0..40_000).map(|i| format!("/home/{i:040}")).collect();
    let body = json!({"paths": paths, "excludes": [], "vault": vault}).to_string();
    assert!(body.len() > 1 << 20);
    let r = raw(
        p,
        "PUT",
        "/api/v1/items/big",
        Some(&d.token),
        body.as_bytes(),
    );
    assert_eq!((r.status, r.code()), (413, "payload_too_large"));

    // Malformed JSON is a JSON error as well.
    let r = raw(p, "POST", "/api/v1/login", None, b"{not json");
    assert_eq!((r.status, r.code()), (400, "bad_request"));
}
