//! Remote control with real processes: a three-node cluster, `cairn
//! daemon` keeping its live connection, and jobs and listings dispatched
//! to it through other nodes by the admin and by the account's user, the
//! connection failing over when its node dies, and strangers refused.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cairn_client::crypto::{kdf::KdfParams, listing};
use cairn_tests::{
    contains, ok, same_tree, wait_for, write_data, Cluster, Daemon, Device, Node, RecordingProxy,
};
use serde_json::{json, Value};

const PW: &str = "remote control pass words";

fn utf8(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The device's profile (`cairn login` wrote it).
fn profile(d: &Device) -> Value {
    let text = std::fs::read_to_string(d.config_dir().join("cairn").join("profile.json"))
        .expect("profile");
    serde_json::from_str(&text).expect("profile json")
}

/// `cairn daemon` as the device, its log in `log`.
fn daemon(device: &Device, log: &Path) -> Daemon {
    Daemon::spawn(
        device
            .command(&["daemon", "--poll", "1s"])
            .env("CAIRN_HEARTBEAT_SECS", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("daemon log")),
    )
}

/// A JSON request to `node` with `bearer`: (status, parsed body).
fn call(node: &Node, bearer: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    let auth = format!("Bearer {bearer}");
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (status, answer) = node.port_request(method, path, &[("Authorization", &auth)], &text);
    (
        status,
        serde_json::from_str(&answer).unwrap_or(Value::String(answer)),
    )
}

/// The live connections as `node` reports them to the admin.
fn online(node: &Node) -> Vec<Value> {
    let (status, body) = call(
        node,
        &node.admin_token(),
        "GET",
        "/api/v1/control",
        Value::Null,
    );
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

/// Waits until `device` is online through a node other than `not_via`;
/// answers the holder's id.
fn wait_online(node: &Node, device: &str, not_via: Option<u64>) -> u64 {
    wait_for("the device online", Duration::from_secs(60), || {
        online(node)
            .into_iter()
            .find(|c| c["device"] == device && c["node"].as_u64() != not_via)
            .and_then(|c| c["node"].as_u64())
    })
}

/// Waits for job `id` to end, through the account's job log.
fn ended(device: &Device, id: &str) -> Value {
    wait_for(
        "the dispatched job to end",
        Duration::from_secs(120),
        || {
            device
                .json(&["jobs"])
                .as_array()?
                .iter()
                .find(|j| j["id"] == id && !j["status"].is_null())
                .cloned()
        },
    )
}

struct Setup {
    cluster: Cluster,
    desk: Device,
    laptop: Device,
    stranger: Device,
    data: PathBuf,
    vault: String,
}

fn setup() -> Setup {
    let cluster = Cluster::start(3, &[]);
    ok(
        "tier create",
        &cluster.nodes[0].admin(&["tier", "create", "two", "--replicas", "2"]),
    );
    cluster.create_user("erin", PW);
    cluster.create_user("mallory", PW);
    let devices = cluster.scratch("devices");
    let desk = Device::new(&devices.join("desk"), "desk", PW);
    let laptop = Device::new(&devices.join("laptop"), "laptop", PW);
    let stranger = Device::new(&devices.join("stranger"), "stranger", PW);
    ok("login desk", &desk.login(&cluster.nodes[0].url(), "erin"));
    ok(
        "login laptop",
        &laptop.login(&cluster.nodes[1].url(), "erin"),
    );
    ok(
        "login stranger",
        &stranger.login(&cluster.nodes[2].url(), "mallory"),
    );
    let vault = desk.json(&["vault", "request", "--tier", "two", "--name", "main"]);
    let data = cluster.scratch("data");
    write_data(&data.join("a.bin"), 300 << 10, 1);
    std::fs::create_dir_all(data.join("sub")).expect("sub");
    write_data(&data.join("sub").join("b.bin"), 70 << 10, 2);
    desk.json(&["item", "set", "home", "--vault", "main", utf8(&data)]);
    Setup {
        vault: vault["id"].as_str().expect("vault id").to_string(),
        cluster,
        desk,
        laptop,
        stranger,
        data,
    }
}

/// The listing key of an account from its password, as the device derives
/// it: only the user can open a dispatched snapshot listing.
fn listing_key(d: &Device) -> listing::ListingKey {
    let kdf = &profile(d)["kdf"];
    let params = KdfParams {
        algorithm: "argon2id".into(),
        memory_kib: kdf["memory_kib"].as_u64().expect("m") as u32,
        iterations: kdf["iterations"].as_u64().expect("t") as u32,
        parallelism: kdf["parallelism"].as_u64().expect("p") as u32,
        salt: hex::decode(kdf["salt"].as_str().expect("salt")).expect("salt hex"),
    };
    let keys = params.derive(PW.as_bytes()).expect("derive");
    listing::key(&keys.wrap)
}

#[test]
fn dispatched_jobs_run_on_the_device_through_any_node() {
    let mut s = setup();
    let desk_id = profile(&s.desk)["device"]
        .as_str()
        .expect("device id")
        .to_string();
    let laptop_token = profile(&s.laptop)["token"]
        .as_str()
        .expect("token")
        .to_string();
    let stranger_token = profile(&s.stranger)["token"]
        .as_str()
        .expect("token")
        .to_string();
    let log = s.cluster.scratch("logs").join("daemon.log");
    let d = daemon(&s.desk, &log);

    // The daemon logs in and shows online, with its version, on node 1
    // (the node it logged in through), as node 2 and `cairnd admin` see it.
    let holder = wait_online(&s.cluster.nodes[1], &desk_id, None);
    assert_eq!(holder, 1);
    let listed = ok(
        "admin device list",
        &s.cluster.nodes[2].admin(&["device", "list"]),
    );
    assert!(
        listed.contains(&format!(
            "online via node 1 (cairn {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{listed}"
    );

    // The admin dispatches "back up now" through node 2; the job goes to
    // `succeeded` and the live event stream ends with it.
    let n2 = &s.cluster.nodes[1];
    let path = format!("/api/v1/control/{desk_id}/backup");
    let (status, body) = call(
        n2,
        &n2.admin_token(),
        "POST",
        &path,
        json!({"item": "home"}),
    );
    assert_eq!(status, 202, "{body}");
    let job = body["job"].as_str().expect("job").to_string();
    let (status, events) = n2.port_request(
        "GET",
        &format!("/api/v1/jobs/{job}/events"),
        &[("Authorization", &n2.bearer())],
        "",
    );
    assert_eq!(status, 200, "{events}");
    let last = events
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .next_back()
        .expect("an event");
    let last: Value = serde_json::from_str(last.trim()).expect("event json");
    assert_eq!(last["status"], "succeeded", "{events}");
    let done = ended(&s.desk, &job);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["dispatched_by"], "admin token of node 2", "{done}");
    assert_eq!(done["item"], "home");

    // The user, through the laptop, lists the desk's directories and
    // dispatches a restore through node 3: the files come back byte-exact.
    let n3 = &s.cluster.nodes[2];
    let dirs = format!("/api/v1/control/{desk_id}/dirs");
    let (status, listing) = call(
        n3,
        &laptop_token,
        "POST",
        &dirs,
        json!({"path": utf8(&s.data)}),
    );
    assert_eq!(status, 200, "{listing}");
    let names: Vec<&str> = listing["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["a.bin", "sub"]);
    let target = s.cluster.scratch("restored");
    let restore = format!("/api/v1/control/{desk_id}/restore");
    let (status, body) = call(
        n3,
        &laptop_token,
        "POST",
        &restore,
        json!({"vault": s.vault, "snapshot": "latest", "target": utf8(&target)}),
    );
    assert_eq!(status, 202, "{body}");
    let job = body["job"].as_str().expect("job").to_string();
    let done = ended(&s.desk, &job);
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["kind"], "restore");
    assert!(
        done["dispatched_by"]
            .as_str()
            .is_some_and(|a| a.starts_with("device ")),
        "{done}"
    );
    let restored = target.join(s.data.strip_prefix("/").expect("absolute"));
    same_tree(&s.data, &restored).expect("restored byte-exact");

    // A snapshot's files: the device decrypts and seals them for the
    // account; the server relays bytes it cannot read.
    let files = format!("/api/v1/control/{desk_id}/files");
    let (status, sealed) = call(
        n2,
        &n2.admin_token(),
        "POST",
        &files,
        json!({"vault": s.vault, "snapshot": "latest"}),
    );
    assert_eq!(status, 200, "{sealed}");
    assert!(!sealed.to_string().contains("b.bin"));
    let bytes = hex::decode(sealed["sealed"].as_str().expect("sealed")).expect("hex");
    assert_eq!(sealed["version"], cairn_proto::control::LISTING_VERSION);
    let plain =
        listing::open(&listing_key(&s.desk), &bytes).expect("the account opens the listing");
    assert!(String::from_utf8_lossy(&plain).contains("b.bin"));

    // Another account's user, and a read-only look at a device that does
    // not exist, get nothing.
    let (status, body) = call(n2, &stranger_token, "POST", &path, json!({"item": "home"}));
    assert_eq!(status, 404, "{body}");
    let (status, body) = call(n2, &stranger_token, "GET", "/api/v1/control", Value::Null);
    assert_eq!(status, 200);
    assert_eq!(body, json!([]), "a stranger sees no connection");

    // The node holding the connection dies: the daemon reconnects to
    // another node and shows online again; dispatching still works.
    s.cluster.node(1).kill();
    let n2 = &s.cluster.nodes[1];
    let holder = wait_online(n2, &desk_id, Some(1));
    assert!(holder == 2 || holder == 3, "{holder}");
    let check = format!("/api/v1/control/{desk_id}/check");
    let (status, body) = call(
        n2,
        &n2.admin_token(),
        "POST",
        &check,
        json!({"vault": s.vault}),
    );
    assert_eq!(status, 202, "{body}");
    let job = body["job"].as_str().expect("job").to_string();
    assert_eq!(ended(&s.desk, &job)["status"], "succeeded");

    // Dropping the connection: the device comes back after its backoff.
    let drop = format!("/api/v1/control/{desk_id}/disconnect");
    let (status, body) = call(n2, &n2.admin_token(), "POST", &drop, Value::Null);
    assert_eq!(status, 204, "{body}");
    wait_online(n2, &desk_id, Some(1));

    d.stop();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("remote control: connected"), "{text}");
}

/// A proxy between the daemon and its node refuses WebSocket upgrades:
/// the daemon keeps its connection over long-poll instead, shows online,
/// answers a listing and runs a dispatched backup to `succeeded`.
#[test]
fn long_poll_passes_a_proxy_that_refuses_websockets() {
    let cluster = Cluster::start(1, &[]);
    ok(
        "tier create",
        &cluster.nodes[0].admin(&["tier", "create", "one", "--replicas", "1"]),
    );
    cluster.create_user("finn", PW);
    let proxy = RecordingProxy::refusing_upgrades(cluster.nodes[0].port);
    let desk = Device::new(&cluster.scratch("devices").join("desk"), "desk", PW);
    ok(
        "login through the proxy",
        &desk.login(&format!("http://127.0.0.1:{}", proxy.port), "finn"),
    );
    desk.json(&["vault", "request", "--tier", "one", "--name", "main"]);
    let data = cluster.scratch("data");
    write_data(&data.join("a.bin"), 100 << 10, 3);
    desk.json(&["item", "set", "home", "--vault", "main", utf8(&data)]);
    let desk_id = profile(&desk)["device"]
        .as_str()
        .expect("device id")
        .to_string();
    let log = cluster.scratch("logs").join("daemon.log");
    let d = daemon(&desk, &log);

    let node = &cluster.nodes[0];
    wait_online(node, &desk_id, None);
    // The node registers the hello before the daemon logs its answer.
    wait_for("the daemon to long-poll", Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("long-polling").then_some(())
    });
    let sent = proxy.sent();
    assert!(
        contains(&sent, b"POST /api/v1/connect/poll"),
        "polled through the proxy"
    );
    assert!(
        !contains(&sent, b"GET /api/v1/connect "),
        "no upgrade reached the node"
    );

    // A listing's reply and a job's start travel back over long-poll.
    let (status, listing) = call(
        node,
        &node.admin_token(),
        "POST",
        &format!("/api/v1/control/{desk_id}/dirs"),
        json!({"path": utf8(&data)}),
    );
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing["entries"][0]["name"], "a.bin", "{listing}");
    let (status, body) = call(
        node,
        &node.admin_token(),
        "POST",
        &format!("/api/v1/control/{desk_id}/backup"),
        json!({"item": "home"}),
    );
    assert_eq!(status, 202, "{body}");
    let job = body["job"].as_str().expect("job").to_string();
    assert_eq!(ended(&desk, &job)["status"], "succeeded");

    // Quiet for longer than a ping interval, the connection stays up.
    std::thread::sleep(Duration::from_secs(12));
    wait_online(node, &desk_id, None);

    d.stop();
}
