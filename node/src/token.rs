//! The admin token: a random bearer secret that authorises the admin API.
//!
//! It is generated when a node is initialised (or first joins) and written
//! to `<data-dir>/admin.token` with mode 0600, so only the operator account
//! can read it. The node keeps only its BLAKE3 hash in memory, and compares
//! hashes (BLAKE3's `Hash` compares in constant time), so a timing side
//! channel does not reveal the token byte by byte.

use std::fs;
use std::path::Path;

use crate::config::write_durably;
use crate::error::NodeError;

/// The hash of the node's admin token.
#[derive(Clone)]
pub struct AdminToken {
    hash: blake3::Hash,
}

impl AdminToken {
    /// Reads the token file.
    ///
    /// # Errors
    ///
    /// The file is missing, unreadable or empty.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let text = fs::read_to_string(path).map_err(|source| NodeError::Io {
            path: path.to_owned(),
            source,
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(NodeError::Config(format!("{} is empty", path.display())));
        }
        Ok(Self {
            hash: blake3::hash(token.as_bytes()),
        })
    }

    /// Creates a fresh random token at `path` (mode 0600) unless one exists.
    ///
    /// # Errors
    ///
    /// IO errors.
    pub fn create_if_missing(path: &Path) -> Result<(), NodeError> {
        if path.exists() {
            return Ok(());
        }
        let token = hex::encode(rand::random::<[u8; 32]>());
        write_durably(path, format!("{token}\n").as_bytes(), 0o600)
    }

    /// Whether `presented` is the token.
    pub fn verify(&self, presented: &str) -> bool {
        blake3::hash(presented.trim().as_bytes()) == self.hash
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn token_file_is_private_and_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("admin.token");
        AdminToken::create_if_missing(&path).expect("create");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(&path).expect("read");
        let token = AdminToken::load(&path).expect("load");
        assert!(token.verify(text.trim()));
        assert!(!token.verify("nope"));
        // A second call keeps the existing token.
        AdminToken::create_if_missing(&path).expect("again");
        assert_eq!(fs::read_to_string(&path).expect("read"), text);
    }
}

/// The cluster secret: a shared bearer secret that every node presents on
/// the cluster-internal endpoints (`/raft/*`, `/internal/v1/*`, joins), so
/// that only nodes holding it can vote, replicate, read or delete chunks,
/// read the replicated state or join.
///
/// Every node has one, loopback and the dev cluster included (a local user
/// or a reverse proxy must not own the cluster): `cairnd init` and the dev
/// cluster generate it ([`ClusterSecret::create_if_missing`]) unless one is
/// given, and a joining node is given the cluster's with
/// `--cluster-secret-file`.
#[derive(Clone)]
pub struct ClusterSecret {
    raw: String,
    hash: blake3::Hash,
}

/// Header carrying the cluster secret on internal requests.
pub const CLUSTER_SECRET_HEADER: &str = "x-cairn-cluster-secret";

impl ClusterSecret {
    /// Reads the secret file, `None` if it does not exist.
    ///
    /// # Errors
    ///
    /// Unreadable or empty file.
    pub fn load(path: &Path) -> Result<Option<Self>, NodeError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(NodeError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let raw = text.trim().to_string();
        if raw.is_empty() {
            return Err(NodeError::Config(format!("{} is empty", path.display())));
        }
        let hash = blake3::hash(raw.as_bytes());
        Ok(Some(Self { raw, hash }))
    }

    /// Copies the secret in `from` into the node's data directory at `to`
    /// (mode 0600). Refuses to replace a different secret already there:
    /// a node cannot silently move to another cluster's secret.
    ///
    /// # Errors
    ///
    /// Unreadable source, a conflicting secret, IO errors.
    pub fn install(from: &Path, to: &Path) -> Result<(), NodeError> {
        let new = Self::load(from)?
            .ok_or_else(|| NodeError::Config(format!("{} does not exist", from.display())))?;
        if let Some(old) = Self::load(to)? {
            if old.hash != new.hash {
                return Err(NodeError::Config(format!(
                    "{} holds a different cluster secret than {}",
                    to.display(),
                    from.display()
                )));
            }
            return Ok(());
        }
        write_durably(to, format!("{}\n", new.raw).as_bytes(), 0o600)
    }

    /// Generates a random secret at `path` (64 hex digits, mode 0600)
    /// unless a file is already there.
    ///
    /// # Errors
    ///
    /// IO errors.
    pub fn create_if_missing(path: &Path) -> Result<(), NodeError> {
        if path.exists() {
            return Ok(());
        }
        let secret = hex::encode(rand::random::<[u8; 32]>());
        write_durably(path, format!("{secret}\n").as_bytes(), 0o600)
    }

    /// The secret, for outgoing requests.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// Whether `presented` is the secret.
    pub fn verify(&self, presented: &str) -> bool {
        blake3::hash(presented.trim().as_bytes()) == self.hash
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn install_copies_privately_and_refuses_a_different_secret() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        let to = dir.path().join("cluster.secret");
        fs::write(&a, "secret-a\n").expect("write");
        fs::write(&b, "secret-b\n").expect("write");
        assert!(ClusterSecret::load(&to).expect("load").is_none());
        ClusterSecret::install(&a, &to).expect("install");
        let mode = fs::metadata(&to).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        ClusterSecret::install(&a, &to).expect("same secret again is fine");
        assert!(matches!(
            ClusterSecret::install(&b, &to),
            Err(NodeError::Config(_))
        ));
        let s = ClusterSecret::load(&to).expect("load").expect("some");
        assert!(s.verify("secret-a"));
        assert!(!s.verify("secret-b"));
    }

    #[test]
    fn a_generated_secret_is_private_random_and_kept() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        ClusterSecret::create_if_missing(&a).expect("create");
        ClusterSecret::create_if_missing(&b).expect("create");
        let mode = fs::metadata(&a).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(&a).expect("read");
        assert_eq!(text.trim().len(), 64);
        assert_ne!(text, fs::read_to_string(&b).expect("read"));
        ClusterSecret::create_if_missing(&a).expect("again");
        assert_eq!(fs::read_to_string(&a).expect("read"), text, "kept");
        let s = ClusterSecret::load(&a).expect("load").expect("some");
        assert!(s.verify(text.trim()));
    }
}
