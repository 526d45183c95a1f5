//! The workloads: client threads that drive real requests at the nodes
//! while the nemesis works, recording every operation.
//!
//! - **register**: each key is a vault tier whose description is the
//!   register's value; a write redefines the tier (`POST
//!   /api/v1/admin/tiers`, through the event log), a read lists the tiers
//!   (`GET`, a linearizable read). Keys rotate every [`KEY_EPOCH_MS`] so
//!   each key's history stays small enough to check.
//! - **chunks**: each client uploads batches of random chunks to its own
//!   vault (`POST /api/v1/vaults/{id}/chunks`); a chunk's bytes are drawn
//!   from its random id ([`chunk_bytes`]), so the checker can compare
//!   what comes back without keeping them.
//!
//! Outcomes: 2xx is ok; a refused connection or a 4xx certainly had no
//! effect (fail); a timeout, a cut connection or a 5xx may have (unknown).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use cairn_proto::frames;
use cairn_proto::VaultId;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::error::JepsenError;
use crate::history::{Call, History, NemesisEvent, Op, Outcome};
use crate::http::{self, HttpError, Response};

/// How long a client waits for an answer.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one register key is used before clients move to the next.
pub const KEY_EPOCH_MS: u64 = 15_000;
/// Register keys in use at a time.
const KEYS: u64 = 3;
/// The tier the chunk vaults (and the backup device's vault) use.
pub const VAULT_TIER: &str = "jepsen-vaults";

/// Everything the clients and the nemesis record, shared between threads.
#[derive(Debug)]
pub struct Recorder {
    t0: Instant,
    /// The wall clock at `t0` (ms since the epoch): the authority's times
    /// are its wall clock.
    t0_epoch_ms: u64,
    history: Mutex<History>,
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            t0: Instant::now(),
            t0_epoch_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            history: Mutex::new(History::default()),
        }
    }

    /// Milliseconds since the run started.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The wall clock when the run's clock started, ms since the epoch.
    pub fn t0_epoch_ms(&self) -> u64 {
        self.t0_epoch_ms
    }

    /// Records a completed operation invoked at `start_ms`.
    pub fn op(&self, client: usize, node: usize, start_ms: u64, call: Call, outcome: Outcome) {
        let end_ms = self.now_ms();
        let mut h = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        let index = h.ops.len();
        h.ops.push(Op {
            index,
            client,
            node,
            start_ms,
            end_ms,
            call,
            outcome,
        });
    }

    /// Records a nemesis window.
    pub fn nemesis(&self, event: NemesisEvent) {
        let mut h = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        h.nemesis.push(event);
    }

    /// The history so far.
    pub fn history(&self) -> History {
        self.history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

/// A device session on one vault.
#[derive(Debug, Clone)]
pub struct VaultSession {
    /// The device token.
    pub token: String,
    /// The vault.
    pub vault: VaultId,
}

/// Classifies a write's answer.
pub fn write_outcome(r: &Result<Response, HttpError>) -> Outcome {
    match r {
        Ok((code, _)) if (200..300).contains(code) => Outcome::Ok { value: None },
        Ok((code, body)) => {
            let error = format!("{code} {}", String::from_utf8_lossy(body).trim());
            if (400..500).contains(code) && *code != 408 {
                Outcome::Fail { error }
            } else {
                Outcome::Unknown { error }
            }
        }
        Err(e @ HttpError::NotSent(_)) => Outcome::Fail {
            error: e.to_string(),
        },
        Err(e @ HttpError::MaybeSent(_)) => Outcome::Unknown {
            error: e.to_string(),
        },
    }
}

/// A JSON request that must succeed (setup), retried for up to a minute
/// while the cluster settles.
pub fn setup_json(
    addr: SocketAddr,
    path: &str,
    token: &str,
    body: Value,
) -> Result<Value, JepsenError> {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("Content-Type", "application/json")];
    if !token.is_empty() {
        headers.push(("Authorization", bearer.as_str()));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = http::request(
            addr,
            "POST",
            path,
            &headers,
            body.to_string().as_bytes(),
            OP_TIMEOUT,
        );
        let last = match r {
            Ok((code, answer)) if (200..300).contains(&code) => {
                return Ok(serde_json::from_slice(&answer).unwrap_or(Value::Null))
            }
            Ok((code, answer)) => format!("{code} {}", String::from_utf8_lossy(&answer)),
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            return Err(JepsenError::Setup(format!("POST {path}: {last}")));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Creates `vaults` users, each with a logged-in device and a vault of a
/// tier with `replicas` copies.
pub fn create_vaults(
    addr: SocketAddr,
    admin: &str,
    vaults: usize,
    replicas: u8,
) -> Result<Vec<VaultSession>, JepsenError> {
    setup_json(
        addr,
        "/api/v1/admin/tiers",
        admin,
        json!({"name": VAULT_TIER, "replicas": replicas}),
    )?;
    let mut sessions = Vec::new();
    for v in 0..vaults {
        let user = format!("jepsen{v}");
        // A fixed login key: no KDF to run.
        setup_json(
            addr,
            "/api/v1/admin/users",
            admin,
            json!({
                "name": user,
                "kdf": {"memory_kib": 8, "iterations": 1, "parallelism": 1, "salt": "00".repeat(16)},
                "login_key": "11".repeat(32),
            }),
        )?;
        let login = setup_json(
            addr,
            "/api/v1/login",
            "",
            json!({"user": user, "login_key": "11".repeat(32), "device": "jepsen"}),
        )?;
        let token = login["token"]
            .as_str()
            .ok_or_else(|| JepsenError::Setup(format!("login answered without a token: {login}")))?
            .to_string();
        let vault = VaultId::random();
        setup_json(
            addr,
            "/api/v1/vaults",
            &token,
            json!({"id": vault.to_hex(), "name": "main", "tier": VAULT_TIER, "wrapped_keys": "00"}),
        )?;
        sessions.push(VaultSession { token, vault });
    }
    Ok(sessions)
}

/// What a client thread needs.
#[derive(Debug, Clone)]
pub struct ClientCtx {
    /// This client's number (its timeline row).
    pub client: usize,
    /// Every node's address.
    pub nodes: Vec<SocketAddr>,
    /// The shared recorder.
    pub rec: Arc<Recorder>,
    /// Set when the run is over.
    pub stop: Arc<AtomicBool>,
    /// Seed of this client's choices and data.
    pub seed: u64,
}

impl ClientCtx {
    /// This client's random choices, from the run's seed.
    pub fn rng(&self) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(
            self.seed ^ (self.client as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        )
    }

    fn pause(&self, rng: &mut ChaCha8Rng) {
        std::thread::sleep(Duration::from_millis(rng.gen_range(10..60)));
    }
}

/// Each node's admin token, by node; membership churn replaces a node
/// (and its token) while the clients run.
pub type AdminTokens = Arc<RwLock<Vec<String>>>;

/// The register client: reads and writes of rotating keys until stopped;
/// `admins` holds each node's admin token.
pub fn register_client(ctx: ClientCtx, admins: AdminTokens) {
    let mut rng = ctx.rng();
    let mut seq = 0u64;
    while !ctx.stop.load(Ordering::SeqCst) {
        let node = rng.gen_range(0..ctx.nodes.len());
        let addr = ctx.nodes[node];
        let token = admins.read().unwrap_or_else(PoisonError::into_inner)[node].clone();
        let bearer = format!("Bearer {token}");
        let start = ctx.rec.now_ms();
        let key = format!("jk{}-e{}", rng.gen_range(0..KEYS), start / KEY_EPOCH_MS);
        if rng.gen_bool(0.5) {
            seq += 1;
            let value = format!("c{}-{seq}", ctx.client);
            let body =
                json!({"name": key, "replicas": 1, "requestable": false, "description": value});
            let r = http::request(
                addr,
                "POST",
                "/api/v1/admin/tiers",
                &[
                    ("Authorization", &bearer),
                    ("Content-Type", "application/json"),
                ],
                body.to_string().as_bytes(),
                OP_TIMEOUT,
            );
            let outcome = write_outcome(&r);
            ctx.rec
                .op(ctx.client, node, start, Call::Write { key, value }, outcome);
        } else {
            let r = http::request(
                addr,
                "GET",
                "/api/v1/admin/tiers",
                &[("Authorization", &bearer)],
                b"",
                OP_TIMEOUT,
            );
            let outcome = match r {
                Ok((200, body)) => match read_tier(&body, &key) {
                    Ok(value) => Outcome::Ok { value },
                    Err(error) => Outcome::Fail { error },
                },
                // A read has no effect: whatever went wrong, it failed.
                other => Outcome::Fail {
                    error: match other {
                        Ok((code, body)) => format!("{code} {}", String::from_utf8_lossy(&body)),
                        Err(e) => e.to_string(),
                    },
                },
            };
            ctx.rec
                .op(ctx.client, node, start, Call::Read { key }, outcome);
        }
        ctx.pause(&mut rng);
    }
}

/// The description of tier `key` in a tier list (`None` if not defined).
fn read_tier(body: &[u8], key: &str) -> Result<Option<String>, String> {
    let tiers: Vec<cairn_proto::admin::TierInfo> =
        serde_json::from_slice(body).map_err(|e| format!("tier list: {e}"))?;
    Ok(tiers
        .into_iter()
        .find(|t| t.tier.name == key)
        .map(|t| t.tier.description))
}

/// The chunk client: uploads of 1–4 random chunks to vault `vault` until
/// stopped.
pub fn chunk_client(ctx: ClientCtx, vault: usize, session: VaultSession) {
    let mut rng = ctx.rng();
    let bearer = format!("Bearer {}", session.token);
    let path = format!("/api/v1/vaults/{}/chunks", session.vault);
    while !ctx.stop.load(Ordering::SeqCst) {
        let node = rng.gen_range(0..ctx.nodes.len());
        let mut body = frames::frames_header();
        let mut ids = Vec::new();
        for _ in 0..rng.gen_range(1..=4) {
            let mut id = [0u8; 32];
            rng.fill_bytes(&mut id);
            frames::push_frame(&mut body, &cairn_proto::ChunkId(id), &chunk_bytes(&id));
            ids.push(hex::encode(id));
        }
        let start = ctx.rec.now_ms();
        let r = http::request(
            ctx.nodes[node],
            "POST",
            &path,
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/octet-stream"),
            ],
            &body,
            OP_TIMEOUT,
        );
        let outcome = write_outcome(&r);
        ctx.rec.op(
            ctx.client,
            node,
            start,
            Call::Upload { vault, chunks: ids },
            outcome,
        );
        ctx.pause(&mut rng);
    }
}

/// The bytes of the chunk with id `id`: 256 B to 4 KiB of random data
/// drawn from the id itself, so nothing needs keeping to check them later.
pub fn chunk_bytes(id: &[u8; 32]) -> Vec<u8> {
    let mut rng = ChaCha8Rng::from_seed(*id);
    let mut bytes = vec![0u8; rng.gen_range(256..4096)];
    rng.fill_bytes(&mut bytes);
    bytes
}

/// [`chunk_bytes`] of a hex id; `None` if it is not one.
pub fn chunk_bytes_hex(id: &str) -> Option<Vec<u8>> {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(id, &mut raw).ok()?;
    Some(chunk_bytes(&raw))
}

/// Reads chunks (hex ids) from a vault through node `addr`: the ones it
/// returned, with their bytes. Retries a failed request a few times.
pub fn read_chunks(
    addr: SocketAddr,
    session: &VaultSession,
    ids: &[String],
) -> Result<BTreeMap<String, Vec<u8>>, JepsenError> {
    let bearer = format!("Bearer {}", session.token);
    let path = format!("/api/v1/vaults/{}/chunks/get", session.vault);
    let mut found = BTreeMap::new();
    for batch in ids.chunks(256) {
        let parsed: Vec<cairn_proto::ChunkId> = batch
            .iter()
            .filter_map(|h| {
                let mut id = [0u8; 32];
                hex::decode_to_slice(h, &mut id).ok()?;
                Some(cairn_proto::ChunkId(id))
            })
            .collect();
        let body = frames::encode_ids(&parsed);
        let mut attempt = 0;
        let answer = loop {
            attempt += 1;
            let r = http::request(
                addr,
                "POST",
                &path,
                &[
                    ("Authorization", &bearer),
                    ("Content-Type", "application/octet-stream"),
                ],
                &body,
                Duration::from_secs(30),
            );
            match r {
                Ok((200, answer)) => break answer,
                other if attempt >= 5 => {
                    return Err(JepsenError::Setup(format!(
                        "reading chunks back: {other:?}"
                    )))
                }
                _ => std::thread::sleep(Duration::from_secs(1)),
            }
        };
        let frames = frames::decode_frames(&answer)
            .map_err(|e| JepsenError::Setup(format!("reading chunks back: {e}")))?;
        for (id, bytes) in frames {
            found.insert(hex::encode(id.0), bytes.to_vec());
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_what_they_prove() {
        assert_eq!(write_outcome(&Ok((201, vec![]))).name(), "ok");
        assert_eq!(write_outcome(&Ok((422, vec![]))).name(), "fail");
        assert_eq!(write_outcome(&Ok((503, vec![]))).name(), "unknown");
        assert_eq!(write_outcome(&Ok((408, vec![]))).name(), "unknown");
        assert_eq!(
            write_outcome(&Err(HttpError::NotSent("refused".into()))).name(),
            "fail"
        );
        assert_eq!(
            write_outcome(&Err(HttpError::MaybeSent("timed out".into()))).name(),
            "unknown"
        );
    }

    #[test]
    fn a_chunk_id_determines_its_bytes() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert_eq!(chunk_bytes(&a), chunk_bytes(&a));
        assert_ne!(chunk_bytes(&a), chunk_bytes(&b));
        assert!((256..4096).contains(&chunk_bytes(&a).len()));
        assert_eq!(chunk_bytes_hex(&hex::encode(a)), Some(chunk_bytes(&a)));
        assert_eq!(chunk_bytes_hex("zz"), None);
    }

    #[test]
    fn a_tier_list_gives_the_register_value() {
        let body = br#"[{"name":"jk0-e1","replicas":1,"quota_bytes":null,"description":"c1-4","requestable":false,"defined_at":5}]"#;
        assert_eq!(read_tier(body, "jk0-e1"), Ok(Some("c1-4".into())));
        assert_eq!(read_tier(body, "jk1-e1"), Ok(None));
        assert!(read_tier(b"nope", "jk0-e1").is_err());
    }
}
