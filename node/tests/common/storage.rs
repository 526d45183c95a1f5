//! Storage-role helpers shared by the tests that put real chunks into a
//! real cluster: a blocking HTTP client, a device session on one vault
//! (user, tier, login, vault), random chunks, and a three-node cluster with
//! fast repair and GC.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_proto::api::UploadReply;
use cairn_proto::frames;
use cairn_proto::{ChunkId, VaultId};
use rand::RngCore;
use serde_json::{json, Value};

use super::{user_body, wait_for, Node};

/// A blocking HTTP client for binary and JSON bodies.
pub struct Http {
    /// Runs the requests.
    pub rt: tokio::runtime::Runtime,
    /// No pooled connections: nodes restart on the same ports.
    pub client: reqwest::Client,
}

impl Http {
    pub fn new() -> Self {
        Http {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            // No pooled connections: nodes restart on the same ports.
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("client"),
        }
    }

    /// A binary POST: status and body.
    pub fn post(&self, node: &Node, path: &str, token: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        let (status, _, body) = self.post_full(node, path, token, body);
        (status, body)
    }

    /// A binary POST: status, `Retry-After`, body.
    pub fn post_full(
        &self,
        node: &Node,
        path: &str,
        token: &str,
        body: Vec<u8>,
    ) -> (u16, Option<String>, Vec<u8>) {
        self.rt.block_on(async {
            let resp = self
                .client
                .post(format!("{}{path}", node.url()))
                .bearer_auth(token)
                .header("content-type", "application/octet-stream")
                .body(body)
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .expect("request");
            let status = resp.status().as_u16();
            let retry = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (status, retry, resp.bytes().await.expect("body").to_vec())
        })
    }

    pub fn delete(&self, node: &Node, path: &str, token: &str) -> u16 {
        self.rt.block_on(async {
            self.client
                .delete(format!("{}{path}", node.url()))
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
                .status()
                .as_u16()
        })
    }

    pub fn json(&self, node: &Node, path: &str, token: &str, body: Value) -> (u16, Value) {
        let (status, bytes) = self.rt.block_on(async {
            let resp = self
                .client
                .post(format!("{}{path}", node.url()))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("request");
            let status = resp.status().as_u16();
            (status, resp.bytes().await.expect("body").to_vec())
        });
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// Random chunks: id → sealed bytes (random, so incompressible like the real thing).
pub fn random_chunks(count: usize, size: usize) -> BTreeMap<ChunkId, Vec<u8>> {
    let mut rng = rand::thread_rng();
    (0..count)
        .map(|_| {
            let mut bytes = vec![0u8; size];
            rng.fill_bytes(&mut bytes);
            (ChunkId(*blake3::hash(&bytes).as_bytes()), bytes)
        })
        .collect()
}

pub fn admin_token(node: &Node) -> String {
    std::fs::read_to_string(node.token_file())
        .expect("admin token")
        .trim()
        .to_string()
}

/// A device session on one vault.
pub struct Device {
    /// The device's session token.
    pub token: String,
    /// Its vault.
    pub vault: VaultId,
}

impl Device {
    /// Creates user `name`, logs a device in and creates a vault of `tier`
    /// (defined with `replicas` and `quota`).
    pub fn create(
        http: &Http,
        node: &Node,
        name: &str,
        tier: &str,
        replicas: u8,
        quota: Option<u64>,
    ) -> Self {
        let admin = admin_token(node);
        let (code, body) = http.json(
            node,
            "/api/v1/admin/users",
            &admin,
            serde_json::from_str(&user_body(name)).expect("user body"),
        );
        assert_eq!(code, 201, "create user: {body}");
        let (code, body) = http.json(
            node,
            "/api/v1/admin/tiers",
            &admin,
            json!({"name": tier, "replicas": replicas, "quota_bytes": quota}),
        );
        assert_eq!(code, 201, "define tier: {body}");
        let (code, body) = http.json(
            node,
            "/api/v1/login",
            "",
            json!({"user": name, "login_key": "11".repeat(32), "device": "laptop"}),
        );
        assert_eq!(code, 200, "login: {body}");
        let token = body["token"].as_str().expect("token").to_string();
        let vault = VaultId::random();
        let (code, body) = http.json(
            node,
            "/api/v1/vaults",
            &token,
            json!({"id": vault.to_hex(), "name": "main", "tier": tier, "wrapped_keys": "00"}),
        );
        assert_eq!(code, 201, "create vault: {body}");
        Device { token, vault }
    }

    pub fn path(&self, what: &str) -> String {
        format!("/api/v1/vaults/{}/chunks{what}", self.vault)
    }

    /// Starts a job of `kind` on the device's vault; its id.
    pub fn start_job(&self, http: &Http, node: &Node, kind: &str) -> String {
        let id = hex::encode(rand::random::<[u8; 16]>());
        let (code, body) = http.json(
            node,
            "/api/v1/jobs",
            &self.token,
            json!({"id": id, "kind": kind, "vault": self.vault.to_hex()}),
        );
        assert_eq!(code, 201, "start {kind} job: {body}");
        id
    }

    /// Finishes `job`, failed with `error` or succeeded; the job as answered.
    pub fn finish_job(&self, http: &Http, node: &Node, job: &str, error: Option<&str>) -> Value {
        let status = if error.is_some() {
            "failed"
        } else {
            "succeeded"
        };
        let (code, body) = http.json(
            node,
            &format!("/api/v1/jobs/{job}/finish"),
            &self.token,
            json!({"status": status, "files": 0, "bytes": 0, "error": error, "log": "done"}),
        );
        assert_eq!(code, 200, "finish job: {body}");
        body
    }

    pub fn missing<'a>(
        &self,
        http: &Http,
        node: &Node,
        ids: impl IntoIterator<Item = &'a ChunkId>,
    ) -> Vec<ChunkId> {
        let (code, body) = http.post(
            node,
            &self.path("/missing"),
            &self.token,
            frames::encode_ids(ids),
        );
        assert_eq!(code, 200, "missing: {}", String::from_utf8_lossy(&body));
        frames::decode_ids(&body).expect("id list")
    }

    pub fn upload_raw(
        &self,
        http: &Http,
        node: &Node,
        chunks: &[(&ChunkId, &Vec<u8>)],
    ) -> (u16, Vec<u8>) {
        let mut body = frames::frames_header();
        for (id, bytes) in chunks {
            frames::push_frame(&mut body, id, bytes);
        }
        http.post(node, &self.path(""), &self.token, body)
    }

    pub fn upload(&self, http: &Http, node: &Node, chunks: &[(&ChunkId, &Vec<u8>)]) -> UploadReply {
        let (code, body) = self.upload_raw(http, node, chunks);
        assert_eq!(
            code,
            200,
            "upload via node {}: {}",
            node.id,
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).expect("upload reply")
    }

    pub fn get(&self, http: &Http, node: &Node, ids: &[ChunkId]) -> BTreeMap<ChunkId, Vec<u8>> {
        let (code, body) = http.post(
            node,
            &self.path("/get"),
            &self.token,
            frames::encode_ids(ids),
        );
        assert_eq!(code, 200, "get: {}", String::from_utf8_lossy(&body));
        frames::decode_frames(&body)
            .expect("frames")
            .into_iter()
            .map(|(id, b)| (id, b.to_vec()))
            .collect()
    }
}

/// `cairnd serve` arguments of an initialised node with fast repair.
pub fn serve_args(node: &Node, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--data-dir".into(),
        node.dir.to_string_lossy().into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

pub fn serve(node: &mut Node, extra: &[&str]) {
    let args = serve_args(node, extra);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    node.spawn(&refs);
}

pub const FAST: &[&str] = &["--repair-interval-ms", "300", "--gc-interval-ms", "300"];

/// Three nodes, every one a storage node.
pub fn three_nodes(root: &std::path::Path) -> Vec<Node> {
    let mut n1 = Node::new(root, 1);
    n1.init();
    serve(&mut n1, FAST);
    n1.wait_ready();
    let mut nodes = vec![n1];
    for id in [2, 3] {
        let mut n = Node::new(root, id);
        n.spawn_join_with(&nodes[0].url(), FAST);
        nodes.push(n);
    }
    for n in &nodes {
        n.wait_ready();
    }
    wait_for(
        "three active storage nodes",
        Duration::from_secs(30),
        || {
            let s = nodes[0].status()?;
            (s.storage_nodes
                .iter()
                .filter(|n| n.status == "Active")
                .count()
                == 3)
                .then_some(())
        },
    );
    nodes
}
