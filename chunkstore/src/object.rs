//! Object storage (S3-compatible services, SFTP) through Apache OpenDAL,
//! shared by the client's object vaults and by storage nodes whose chunks
//! live in a bucket ([`RocksStore::open_on_objects`](crate::RocksStore::open_on_objects)):
//! a location ([`ObjectUrl`]), and [`Objects`], the blocking face of one
//! OpenDAL operator (driven by a small tokio runtime of its own) that
//! counts its requests and maps the service's errors to ours
//! ([`Error::Auth`], [`Error::NoBucket`], [`Error::Service`]).
//!
//! What the service marks temporary (5xx, throttling, dropped
//! connections) is retried with exponential backoff and jitter
//! ([`RETRIES`] times); only then does an error reach the caller. Reads,
//! listings and deletes go through OpenDAL's retry layer; writes do not:
//! [`put`] retries a failed write whole (see there why).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use opendal::layers::RetryLayer;
use opendal::{ErrorKind, Operator};

use crate::{Error, Result};

/// Attempts after the first for a request the service failed temporarily.
pub const RETRIES: usize = 6;

/// The URL schemes of object locations (`s3://BUCKET/PREFIX`,
/// `sftp://USER@HOST[:PORT]/PATH`).
pub const SCHEMES: [&str; 2] = ["s3://", "sftp://"];

/// Where an object vault or a storage node's chunks live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectUrl {
    /// `s3://BUCKET/PREFIX`: endpoint, region and credentials from the
    /// `AWS_*` variables (or the AWS profile files).
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix (no leading or trailing `/`; may be empty).
        prefix: String,
    },
    /// `sftp://USER@HOST[:PORT]/PATH`: key-based login through `ssh`.
    Sftp {
        /// The login.
        user: String,
        /// The host.
        host: String,
        /// The port (22 when absent).
        port: Option<u16>,
        /// The vault's directory (absolute).
        path: String,
    },
}

impl ObjectUrl {
    /// Whether `text` names an object vault (by its scheme) rather than a
    /// local directory or an account vault.
    pub fn is_url(text: &str) -> bool {
        SCHEMES.iter().any(|s| text.starts_with(s))
    }

    /// Parses `s3://BUCKET/PREFIX` or `sftp://USER@HOST[:PORT]/PATH`.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming what is wrong with the URL.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: &str| Error::Invalid(format!("object store URL {text:?}: {why}"));
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.".contains(c);
            if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(valid) {
                return Err(bad(
                    "a bucket name has 3-63 lower-case letters, digits, '-' or '.'",
                ));
            }
            return Ok(Self::S3 {
                bucket: bucket.into(),
                prefix: prefix.trim_matches('/').into(),
            });
        }
        let Some(rest) = text.strip_prefix("sftp://") else {
            return Err(bad(
                "use s3://BUCKET/PREFIX or sftp://USER@HOST[:PORT]/PATH",
            ));
        };
        let (authority, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("name the vault's directory: sftp://USER@HOST[:PORT]/PATH"))?;
        let (user, hostport) = authority
            .split_once('@')
            .ok_or_else(|| bad("name the login: sftp://USER@HOST[:PORT]/PATH"))?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| bad("the port is not a number"))?,
                ),
            ),
            None => (hostport, None),
        };
        let path = path.trim_matches('/');
        if user.is_empty() || host.is_empty() || path.is_empty() {
            return Err(bad("user, host and path must not be empty"));
        }
        Ok(Self::Sftp {
            user: user.into(),
            host: host.into(),
            port,
            path: format!("/{path}"),
        })
    }

    /// The operator for this location, configured from `env`:
    /// `AWS_ENDPOINT_URL` (a self-hosted server, addressed path-style),
    /// `AWS_REGION`/`AWS_DEFAULT_REGION` (default `us-east-1`) and the
    /// credentials OpenDAL reads from `AWS_*` and the profile files; for
    /// SFTP `CAIRN_SFTP_KEY` (the private key; else ssh's own defaults) and
    /// `CAIRN_SFTP_KNOWN_HOSTS` (`strict`, the default, `add` or `accept`).
    fn operator(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Operator> {
        let var = |k: &str| env(k).filter(|v| !v.is_empty());
        let built = match self {
            Self::S3 { bucket, prefix } => {
                let mut b = opendal::services::S3::default()
                    .bucket(bucket)
                    .root(&format!("/{prefix}"))
                    .disable_ec2_metadata();
                if let Some(endpoint) =
                    var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL"))
                {
                    b = b.endpoint(&endpoint);
                }
                // Given here so the caller's `env` decides; OpenDAL falls
                // back to the profile files when they are absent.
                if let (Some(id), Some(secret)) =
                    (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
                {
                    b = b.access_key_id(&id).secret_access_key(&secret);
                    if let Some(token) = var("AWS_SESSION_TOKEN") {
                        b = b.session_token(&token);
                    }
                }
                let region = var("AWS_REGION")
                    .or_else(|| var("AWS_DEFAULT_REGION"))
                    .unwrap_or_else(|| "us-east-1".into());
                Operator::new(b.region(&region)).map(|o| o.finish())
            }
            Self::Sftp {
                user,
                host,
                port,
                path,
            } => {
                let endpoint = match port {
                    Some(p) => format!("ssh://{host}:{p}"),
                    None => format!("ssh://{host}"),
                };
                let mut b = opendal::services::Sftp::default()
                    .endpoint(&endpoint)
                    .user(user)
                    .root(path)
                    .known_hosts_strategy(
                        &var("CAIRN_SFTP_KNOWN_HOSTS").unwrap_or_else(|| "strict".into()),
                    );
                if let Some(key) = var("CAIRN_SFTP_KEY") {
                    b = b.key(&key);
                }
                Operator::new(b).map(|o| o.finish())
            }
        };
        built.map_err(|e| Error::Invalid(format!("{self}: {e}")))
    }
}

impl std::fmt::Display for ObjectUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Self::Sftp {
                user,
                host,
                port: Some(p),
                path,
            } => write!(f, "sftp://{user}@{host}:{p}{path}"),
            Self::Sftp {
                user, host, path, ..
            } => write!(f, "sftp://{user}@{host}{path}"),
        }
    }
}

/// Requests an [`Objects`] sent, by kind (retries included).
#[derive(Debug, Default)]
pub struct Requests {
    /// Whole or ranged reads.
    pub reads: AtomicU64,
    /// Writes.
    pub writes: AtomicU64,
    /// Listings.
    pub lists: AtomicU64,
    /// Deletes.
    pub deletes: AtomicU64,
    /// Retries of failed requests.
    pub retries: AtomicU64,
}

impl Requests {
    /// All requests so far.
    pub fn total(&self) -> u64 {
        [
            &self.reads,
            &self.writes,
            &self.lists,
            &self.deletes,
            &self.retries,
        ]
        .iter()
        .map(|c| c.load(Relaxed))
        .sum()
    }
}

/// The objects under one location, with blocking calls (from threads
/// outside any async runtime, or a runtime's blocking threads).
pub struct Objects {
    url: ObjectUrl,
    /// The runtime, owned here; `Drop` takes it out to shut it down
    /// without blocking, which is allowed even inside an async context (a
    /// storage node drops its store there).
    rt: Option<tokio::runtime::Runtime>,
    /// The runtime's handle, what every call blocks on or spawns onto.
    handle: tokio::runtime::Handle,
    /// With OpenDAL's retry layer: every call but writes.
    op: Operator,
    /// What writes go through ([`put`]).
    writes: Writes,
    requests: Arc<Requests>,
}

/// What [`put`] needs, cheap to clone into a task.
#[derive(Clone)]
struct Writes {
    /// The operator without the retry layer.
    raw: Operator,
    /// With it, for the rename and the clean-up of a temporary.
    op: Operator,
    requests: Arc<Requests>,
}

impl Objects {
    /// Connects to `url` (no request is sent yet).
    pub fn open(url: &ObjectUrl, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-objects")
            .enable_all()
            .build()
            .map_err(|e| Error::Service(format!("cannot start the IO runtime: {e}")))?;
        let requests = Arc::new(Requests::default());
        let counter = requests.clone();
        let retry = RetryLayer::new()
            .with_jitter()
            .with_max_times(RETRIES)
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_notify(move |_: &opendal::Error, _: Duration| {
                counter.retries.fetch_add(1, Relaxed);
            });
        let raw = url.operator(env)?;
        let op = raw.clone().layer(retry);
        let writes = Writes {
            raw,
            op: op.clone(),
            requests: requests.clone(),
        };
        Ok(Self {
            url: url.clone(),
            handle: rt.handle().clone(),
            rt: Some(rt),
            op,
            writes,
            requests,
        })
    }

    /// The location (for messages).
    pub fn url(&self) -> &ObjectUrl {
        &self.url
    }

    /// The requests sent so far.
    pub fn requests(&self) -> &Requests {
        &self.requests
    }

    /// Our error for a failed `action` on `key`.
    fn error(&self, action: &str, key: &str, e: &opendal::Error) -> Error {
        let text = format!("{e:#}");
        let url = &self.url;
        if e.kind() == ErrorKind::PermissionDenied
            || text.contains("Permission denied")
            || text.contains("InvalidAccessKeyId")
            || text.contains("SignatureDoesNotMatch")
        {
            Error::Auth(format!(
                "{url}: the storage service refused our credentials ({action} {key}): {e}"
            ))
        } else if matches!(url, ObjectUrl::Sftp { .. }) && text.contains("connection request") {
            Error::Service(format!(
                "{url}: could not log in over SSH (a key the server refuses, a host key not in \
                 known_hosts while CAIRN_SFTP_KNOWN_HOSTS=strict, or the host unreachable; \
                 `ssh -i KEY -p PORT USER@HOST` shows which): {e}"
            ))
        } else if text.contains("NoSuchBucket") {
            Error::NoBucket(format!(
                "{url}: the bucket does not exist (create it first)"
            ))
        } else if matches!(url, ObjectUrl::Sftp { .. }) && action == "write" {
            // OpenSSH's sftp-server answers a full disk or an exceeded
            // quota with its generic "Failure": name the usual causes.
            Error::Service(format!(
                "{url}: the SFTP server failed to store {key} (a full disk or an exceeded quota \
                 on the server is the usual cause; a rerun after freeing space resumes): {e}"
            ))
        } else {
            Error::Service(format!("{url}: {action} {key} failed: {e}"))
        }
    }

    /// The whole object `key`, or `None` when there is none.
    pub fn read(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.requests.reads.fetch_add(1, Relaxed);
        match self.handle.block_on(self.op.read(key)) {
            Ok(buf) => Ok(Some(buf.to_vec())),
            Err(e)
                if e.kind() == ErrorKind::NotFound
                    && !format!("{e:#}").contains("NoSuchBucket") =>
            {
                Ok(None)
            }
            Err(e) => Err(self.error("read", key, &e)),
        }
    }

    /// Bytes `offset..offset+len` of object `key` for each request of
    /// `ranges`, fetched `parallel` at a time; a missing object or a short
    /// range is [`Error::Damaged`].
    pub fn read_ranges(
        &self,
        ranges: &[(String, u64, u32)],
        parallel: usize,
    ) -> Result<Vec<Vec<u8>>> {
        self.requests.reads.fetch_add(ranges.len() as u64, Relaxed);
        let results = self.handle.block_on(async {
            let limit = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
            let mut tasks = Vec::with_capacity(ranges.len());
            for (key, offset, len) in ranges {
                let (op, limit, key) = (self.op.clone(), limit.clone(), key.clone());
                let range = *offset..*offset + u64::from(*len);
                tasks.push(tokio::spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    op.read_with(&key).range(range).await
                }));
            }
            let mut out = Vec::with_capacity(tasks.len());
            for t in tasks {
                out.push(t.await);
            }
            out
        });
        results
            .into_iter()
            .zip(ranges)
            .map(|(r, (key, _, len))| {
                let r = r.map_err(|e| Error::Service(format!("read task failed: {e}")))?;
                match r {
                    Ok(buf) if buf.len() == *len as usize => Ok(buf.to_vec()),
                    Ok(_) => Err(Error::Damaged(format!(
                        "{}: {key} is shorter than its index says",
                        self.url
                    ))),
                    Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::Damaged(format!(
                        "{}: pack {key} is missing",
                        self.url
                    ))),
                    Err(e) => Err(self.error("read", key, &e)),
                }
            })
            .collect()
    }

    /// Writes object `key` (whole, replacing any; see [`put`]).
    pub fn write(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.requests.writes.fetch_add(1, Relaxed);
        self.handle
            .block_on(put(&self.writes, key, bytes))
            .map_err(|e| self.error("write", key, &e))
    }

    /// Starts writing each `(key, bytes)` in order, in the background;
    /// [`Objects::finish`] returns once all are stored.
    pub fn start_writes(&self, objects: Vec<(String, Vec<u8>)>) -> Upload {
        self.requests
            .writes
            .fetch_add(objects.len() as u64, Relaxed);
        let writes = self.writes.clone();
        Upload(self.handle.spawn(async move {
            for (key, bytes) in objects {
                put(&writes, &key, bytes).await.map_err(|e| (key, e))?;
            }
            Ok(())
        }))
    }

    /// Waits for an upload [`Objects::start_writes`] started.
    pub fn finish(&self, upload: Upload) -> Result<()> {
        match self.handle.block_on(upload.0) {
            Ok(Ok(())) => Ok(()),
            Ok(Err((key, e))) => Err(self.error("write", &key, &e)),
            Err(e) => Err(Error::Service(format!("upload task failed: {e}"))),
        }
    }

    /// Checks that the location answers with our credentials: one listing
    /// of its root, so a missing bucket ([`Error::NoBucket`]) or refused
    /// credentials ([`Error::Auth`]) show at start rather than at the
    /// first upload.
    pub fn check(&self) -> Result<()> {
        self.requests.lists.fetch_add(1, Relaxed);
        self.handle
            .block_on(self.op.check())
            .map_err(|e| self.error("list", "/", &e))
    }

    /// Writes every `(key, bytes)`, `parallel` at a time (see [`put`]);
    /// returns once all are stored, or with the first failure.
    pub fn write_many(&self, objects: Vec<(String, Vec<u8>)>, parallel: usize) -> Result<()> {
        self.requests
            .writes
            .fetch_add(objects.len() as u64, Relaxed);
        let results = self.handle.block_on(async {
            let limit = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
            let mut tasks = Vec::with_capacity(objects.len());
            for (key, bytes) in objects {
                let (writes, limit) = (self.writes.clone(), limit.clone());
                tasks.push(tokio::spawn(async move {
                    let _permit = limit.acquire_owned().await;
                    put(&writes, &key, bytes).await.map_err(|e| (key, e))
                }));
            }
            let mut out = Vec::with_capacity(tasks.len());
            for t in tasks {
                out.push(t.await);
            }
            out
        });
        for r in results {
            match r {
                Ok(Ok(())) => {}
                Ok(Err((key, e))) => return Err(self.error("write", &key, &e)),
                Err(e) => return Err(Error::Service(format!("write task failed: {e}"))),
            }
        }
        Ok(())
    }

    /// Deletes every object of `keys` (absent ones are no error), batched
    /// where the service has a multi-object delete.
    pub fn delete_many(&self, keys: Vec<String>) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.requests.deletes.fetch_add(keys.len() as u64, Relaxed);
        self.handle
            .block_on(self.op.delete_iter(keys))
            .map_err(|e| self.error("delete", "a batch", &e))
    }

    /// Whether writes go through temporary objects renamed into place
    /// (SFTP; see [`put`]), which an interrupted write can leave behind.
    pub fn writes_through_temporaries(&self) -> bool {
        self.op.info().full_capability().rename
    }

    /// The keys of every temporary object ([`TEMP_MARK`] names) anywhere
    /// under this location last modified before `cutoff` (those without a
    /// time are kept): leftovers of interrupted writes ([`stale`]).
    pub fn stale_temporaries(&self, cutoff: SystemTime) -> Result<Vec<String>> {
        Ok(self
            .list_all("/")?
            .into_iter()
            .filter(|o| stale(&o.key, o.modified, cutoff))
            .map(|o| o.key)
            .collect())
    }

    /// Every object anywhere under `dir` (which ends in `/`; `/` is the
    /// whole location), with its key (relative to the location) and last
    /// modification time (the service's clock). A missing directory is
    /// empty. Walks one directory level per listing: OpenDAL's recursive
    /// listing over SFTP was seen to hang while writes ran beside it.
    pub fn list_all(&self, dir: &str) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        let mut dirs = vec![dir.to_string()];
        while let Some(dir) = dirs.pop() {
            self.requests.lists.fetch_add(1, Relaxed);
            let entries = match self.handle.block_on(self.op.list(&dir)) {
                Ok(entries) => entries,
                Err(e)
                    if e.kind() == ErrorKind::NotFound
                        && !format!("{e:#}").contains("NoSuchBucket") =>
                {
                    vec![]
                }
                Err(e) => return Err(self.error("list", &dir, &e)),
            };
            for e in entries {
                let key = e.path().trim_start_matches('/').to_string();
                if e.metadata().is_dir() {
                    // A listing names its own directory too (SFTP's ".").
                    if key != dir.trim_start_matches('/') {
                        dirs.push(key);
                    }
                } else if e.metadata().is_file() {
                    let modified = e.metadata().last_modified().map(SystemTime::from);
                    out.push(Listed { key, modified });
                }
            }
        }
        Ok(out)
    }

    /// Deletes object `key` (no error when it is already gone).
    pub fn delete(&self, key: &str) -> Result<()> {
        self.requests.deletes.fetch_add(1, Relaxed);
        self.handle
            .block_on(self.op.delete(key))
            .map_err(|e| self.error("delete", key, &e))
    }

    /// The names of the objects directly in `dir` (which ends in `/`).
    pub fn list(&self, dir: &str) -> Result<Vec<String>> {
        self.requests.lists.fetch_add(1, Relaxed);
        let entries = match self.handle.block_on(self.op.list(dir)) {
            Ok(entries) => entries,
            Err(e)
                if e.kind() == ErrorKind::NotFound
                    && !format!("{e:#}").contains("NoSuchBucket") =>
            {
                vec![]
            }
            Err(e) => return Err(self.error("list", dir, &e)),
        };
        Ok(entries
            .into_iter()
            .filter(|e| e.metadata().is_file())
            .map(|e| e.name().to_string())
            .collect())
    }
}

impl Drop for Objects {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// One object of a listing ([`Objects::list_all`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key, relative to the location.
    pub key: String,
    /// When the service last wrote it (by the service's clock), if it says.
    pub modified: Option<SystemTime>,
}

/// Marks a temporary name of [`put`] (never a vault object's name).
pub const TEMP_MARK: &str = ".tmp-";

/// Whether the object `name`, last modified at `modified`, is a temporary
/// of [`put`] old enough (before `cutoff`) that no write still in progress
/// can own it. Pure.
pub fn stale(name: &str, modified: Option<SystemTime>, cutoff: SystemTime) -> bool {
    name.contains(TEMP_MARK) && modified.is_some_and(|m| m < cutoff)
}

/// Stores `bytes` at `key` so that no reader ever sees part of them:
/// directly where a write is atomic (S3: an object appears whole), else
/// (SFTP) under a temporary name renamed into place (OpenSSH's
/// `posix-rename` replaces atomically). A crash may leave a temporary
/// object, which no listing of the vault takes for a real one.
///
/// A write that fails temporarily is retried whole, from a fresh writer
/// (and a fresh temporary, the failed one deleted), never through
/// OpenDAL's retry layer: that layer retries a failed `write` or `close`
/// on the same writer, and its SFTP writer has by then dropped the part
/// the server refused, so the retry reported success for a short object
/// (truncated packs in vaults on a full disk).
async fn put(writes: &Writes, key: &str, bytes: Vec<u8>) -> opendal::Result<()> {
    let bytes = opendal::Buffer::from(bytes);
    let mut attempt = 0;
    loop {
        let res = put_once(writes, key, bytes.clone()).await;
        match res {
            Err(e) if e.is_temporary() && attempt < RETRIES => {
                writes.requests.retries.fetch_add(1, Relaxed);
                tokio::time::sleep(backoff(attempt, rand::random())).await;
                attempt += 1;
            }
            res => return res,
        }
    }
}

/// One attempt of [`put`].
async fn put_once(writes: &Writes, key: &str, bytes: opendal::Buffer) -> opendal::Result<()> {
    if !writes.raw.info().full_capability().rename {
        return writes.raw.write(key, bytes).await.map(drop);
    }
    let tmp = format!("{key}{TEMP_MARK}{}", hex::encode(rand::random::<[u8; 8]>()));
    if let Err(e) = writes.raw.write(&tmp, bytes).await {
        // Frees the space a full disk needs back; a temporary left here
        // anyway is a prune's to delete.
        let _ = writes.op.delete(&tmp).await;
        return Err(e);
    }
    writes.op.rename(&tmp, key).await
}

/// The wait before retry `attempt` (0 for the first) of a write:
/// 200 ms doubling per attempt up to 10 s, stretched by `jitter` (0..1) by
/// up to half again so writers that failed together do not retry in step.
/// Pure.
fn backoff(attempt: usize, jitter: f64) -> Duration {
    let base = Duration::from_millis(200).saturating_mul(1 << attempt.min(16));
    base.min(Duration::from_secs(10))
        .mul_f64(1.0 + jitter.clamp(0.0, 1.0) / 2.0)
}

/// A background write of [`Objects::start_writes`].
pub struct Upload(tokio::task::JoinHandle<std::result::Result<(), (String, opendal::Error)>>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_seconds_and_jitters_by_half() {
        assert_eq!(backoff(0, 0.0), Duration::from_millis(200));
        assert_eq!(backoff(1, 0.0), Duration::from_millis(400));
        assert_eq!(backoff(5, 0.0), Duration::from_millis(6400));
        assert_eq!(backoff(6, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(usize::MAX, 1.0), Duration::from_secs(15));
        assert_eq!(backoff(0, 1.0), Duration::from_millis(300));
        assert_eq!(backoff(2, 7.0), backoff(2, 1.0));
    }

    #[test]
    fn only_old_temporaries_are_stale() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let cutoff = now - Duration::from_secs(86_400);
        let old = Some(cutoff - Duration::from_secs(1));
        let young = Some(cutoff + Duration::from_secs(1));
        assert!(stale("ab.tmp-0011223344556677", old, cutoff));
        assert!(!stale("ab.tmp-0011223344556677", young, cutoff));
        assert!(!stale("ab.tmp-0011223344556677", None, cutoff));
        assert!(!stale("abcdef", old, cutoff));
    }

    #[test]
    fn vault_urls_parse_and_print() {
        let s3 = ObjectUrl::parse("s3://my-bucket/backups/laptop/").unwrap();
        assert_eq!(
            s3,
            ObjectUrl::S3 {
                bucket: "my-bucket".into(),
                prefix: "backups/laptop".into()
            }
        );
        assert_eq!(s3.to_string(), "s3://my-bucket/backups/laptop");
        assert_eq!(
            ObjectUrl::parse("s3://bucket").unwrap(),
            ObjectUrl::S3 {
                bucket: "bucket".into(),
                prefix: String::new()
            }
        );
        let sftp = ObjectUrl::parse("sftp://me@host.example:2222/srv/vault").unwrap();
        assert_eq!(
            sftp,
            ObjectUrl::Sftp {
                user: "me".into(),
                host: "host.example".into(),
                port: Some(2222),
                path: "/srv/vault".into()
            }
        );
        assert_eq!(sftp.to_string(), "sftp://me@host.example:2222/srv/vault");
        for bad in [
            "s3://",
            "s3://Upper/x",
            "s3://ab",
            "sftp://host/path",
            "sftp://me@host",
            "sftp://me@host:port/x",
            "sftp://me@host/",
            "ftp://x/y",
        ] {
            assert!(
                matches!(ObjectUrl::parse(bad), Err(Error::Invalid(_))),
                "{bad}"
            );
        }
        assert!(ObjectUrl::is_url("s3://b/p") && ObjectUrl::is_url("sftp://u@h/p"));
        assert!(!ObjectUrl::is_url("/srv/s3://x") && !ObjectUrl::is_url("main"));
    }
}
