//! Account vaults: the client side of a `cairnd` cluster.
//!
//! | module | what |
//! |---|---|
//! | [`config`] | the profile file (servers, device, token), mode 0600 |
//! | [`preset`] | `client.toml`, the cluster's servers, CA and brand a downloaded client ships with |
//! | [`api`] | blocking HTTP client: failover between nodes, idempotency keys, error codes → [`crate::Error`] |
//! | [`session`] | login, account, devices, tiers, vaults, items, jobs, password change |
//! | [`automation`] | vault commands, schedules, retention policies, recorded jobs (more [`Session`] calls) |
//! | [`store`] | one vault's chunks (batched missing / upload / get) and snapshot records, tree cache |
//!
//! Which vault a `--vault V` names is decided by [`VaultRef::parse`]:
//! anything that looks like a path, or a local vault directory, is a local
//! vault; any other word is the name of one of the account's vaults.

pub mod api;
pub mod automation;
pub mod config;
pub mod preset;
pub mod session;
pub mod store;

use std::path::{Path, PathBuf};

pub use api::Api;
pub use config::Profile;
pub use session::Session;
pub use store::RemoteVault;

/// What `--vault V` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultRef {
    /// A local vault directory.
    Local(PathBuf),
    /// An account vault, by name.
    Remote(String),
    /// A vault on object storage or SFTP, by URL
    /// ([`crate::vault::object::store::ObjectUrl`]).
    Object(String),
}

impl VaultRef {
    /// The selection rule: `V` is an object vault when it starts with
    /// `s3://` or `sftp://`, a local vault when it looks like a path
    /// (contains `/`, or starts with `.` or `~`) or is a local vault
    /// directory (holds `vault.json`); otherwise it is the name of an
    /// account vault. So `--vault ./main` is always the directory and
    /// `--vault main` is the account vault unless `./main` is a local
    /// vault. Vault names cannot contain `/` or start with `.`/`~`
    /// ([`check_vault_name`]), so every account vault stays reachable and a
    /// mistyped path never turns into a network request.
    pub fn parse(v: &Path) -> Self {
        let text = v.to_string_lossy();
        if OBJECT_SCHEMES.iter().any(|s| text.starts_with(s)) {
            return VaultRef::Object(text.into_owned());
        }
        let looks_like_path = text.contains('/') || text.starts_with(['.', '~']) || text.is_empty();
        if looks_like_path || v.join("vault.json").is_file() {
            VaultRef::Local(crate::fsmeta::expand_tilde(v))
        } else {
            VaultRef::Remote(text.into_owned())
        }
    }
}

/// The URL schemes of object vaults (`s3://BUCKET/PREFIX`,
/// `sftp://USER@HOST[:PORT]/PATH`).
pub use cairn_chunkstore::object::SCHEMES as OBJECT_SCHEMES;

/// Checks an account vault, device or protected item name: 1–100
/// characters, no `/`, no control characters, no surrounding spaces, not
/// starting with `.` or `~` (so it can never be mistaken for a path by
/// [`VaultRef::parse`], nor an item for a paths label).
pub fn check_vault_name(kind: &str, name: &str) -> crate::Result<()> {
    let ok = !name.is_empty()
        && name.trim() == name
        && name.chars().count() <= 100
        && !name.contains('/')
        && !name.starts_with(['.', '~'])
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(crate::Error::Invalid(format!(
            "{kind} name {name:?} is not allowed: use 1-100 characters, no '/', no control \
             characters, no surrounding spaces, not starting with '.' or '~'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_selection_rule() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("myvault");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("vault.json"), b"{}").unwrap();
        assert_eq!(VaultRef::parse(&dir), VaultRef::Local(dir.clone()));
        // (A bare word naming a local vault in the working directory is
        // covered by tests/cli.rs, which can run in its own directory.)
        // Paths are local even when missing (a clear "not a vault" error later).
        for p in ["./v", "/no/such", "../v", ".", "a/b", ".v"] {
            assert_eq!(
                VaultRef::parse(Path::new(p)),
                VaultRef::Local(PathBuf::from(p)),
                "{p}"
            );
        }
        // A `~` the shell did not expand (quoted) is the home directory.
        assert_eq!(
            VaultRef::parse(Path::new("~/v")),
            VaultRef::Local(crate::fsmeta::expand_tilde(Path::new("~/v")))
        );
        // A URL is an object vault (though it contains '/').
        assert_eq!(
            VaultRef::parse(Path::new("s3://bucket/p")),
            VaultRef::Object("s3://bucket/p".into())
        );
        // A bare word that is no directory here is an account vault.
        assert_eq!(
            VaultRef::parse(Path::new("photos-zz-not-a-dir")),
            VaultRef::Remote("photos-zz-not-a-dir".into())
        );
    }

    #[test]
    fn names_never_look_like_paths() {
        for bad in [
            "",
            "a/b",
            ".hidden",
            "~x",
            "tab\there",
            " pad",
            &"x".repeat(101),
        ] {
            assert!(
                matches!(
                    check_vault_name("vault", bad),
                    Err(crate::Error::Invalid(_))
                ),
                "{bad:?}"
            );
        }
        for good in ["photos", "my vault", "éte-2026", "a.b"] {
            check_vault_name("vault", good).unwrap();
            assert!(matches!(
                VaultRef::parse(Path::new(good)),
                VaultRef::Remote(_) | VaultRef::Local(_)
            ));
        }
    }
}
