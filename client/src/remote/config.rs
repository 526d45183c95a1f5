//! The client profile: which cluster this device belongs to and its token.
//!
//! One JSON file, `$XDG_CONFIG_HOME/cairn/profile.json` (default
//! `~/.config/cairn/profile.json`), or the file named by `--config` /
//! `CAIRN_CONFIG`. `cairn login` writes it; every account command reads it.
//! It holds a bearer token, so it is written atomically (temporary file,
//! fsync, rename, fsync of the directory) with mode 0600 in a directory
//! created with mode 0700. It never holds the password or any key.

use std::fs;
use std::path::{Path, PathBuf};

use cairn_proto::api::Kdf;
use cairn_proto::{AccountId, DeviceId};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Version of the profile file.
pub const PROFILE_FORMAT: u32 = 1;
const PROFILE_FILE: &str = "profile.json";

/// What `cairn login` learned and the commands need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// File format version.
    pub format: u32,
    /// Base URLs of every node, the one logged in through first; the
    /// client fails over along this list.
    pub servers: Vec<String>,
    /// Login name.
    pub user: String,
    /// The account.
    pub account: AccountId,
    /// This device.
    pub device: DeviceId,
    /// This device's name.
    pub device_name: String,
    /// Bearer token of this device.
    pub token: String,
    /// Extra CA certificate(s) (PEM) trusted for the servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// A check value derived from the wrap key (hex), so a mistyped
    /// password is caught before it seals a new vault's keys. It reveals
    /// nothing the token in this file does not already give access to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_check: Option<String>,
    /// The account's key derivation parameters and salt as of the last
    /// login or password change here. A server that later answers other
    /// ones (say, weaker, to crack the login key it receives) is refused
    /// until the user logs in again, and a new login may not be weaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kdf: Option<Kdf>,
}

/// Where the profile lives: `explicit` (from `--config` or `CAIRN_CONFIG`),
/// else `profile.json` in the [`config_dir`]. `env` reads a variable.
pub fn profile_path(
    explicit: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<PathBuf> {
    match explicit {
        Some(p) => Ok(p.to_path_buf()),
        None => Ok(config_dir(env)?.join(PROFILE_FILE)),
    }
}

/// The client's configuration directory: `$XDG_CONFIG_HOME/cairn` when
/// that variable is an absolute path (as the XDG spec requires), else
/// `$HOME/.config/cairn`. `env` reads a variable.
pub fn config_dir(env: impl Fn(&str) -> Option<String>) -> Result<PathBuf> {
    let non_empty = |v: &str| env(v).filter(|s| !s.is_empty());
    if let Some(xdg) = non_empty("XDG_CONFIG_HOME").filter(|s| s.starts_with('/')) {
        return Ok(Path::new(&xdg).join("cairn"));
    }
    match non_empty("HOME") {
        Some(home) => Ok(Path::new(&home).join(".config").join("cairn")),
        None => Err(Error::Invalid(
            "cannot tell where the profile lives: set HOME, XDG_CONFIG_HOME or --config".into(),
        )),
    }
}

impl Profile {
    /// Reads the profile at `path`. A missing file means "not logged in".
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Auth(format!(
                    "not logged in (no profile at {}): run `cairn login --server URL --user NAME` first",
                    path.display()
                ))
            } else {
                Error::io("read", path, e)
            }
        })?;
        let profile: Self = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Format(format!("{}: {e}", path.display())))?;
        if profile.format > PROFILE_FORMAT {
            return Err(Error::Format(format!(
                "{}: profile format {} is newer than this build understands ({PROFILE_FORMAT}); upgrade cairn",
                path.display(),
                profile.format
            )));
        }
        if profile.servers.is_empty() {
            return Err(Error::Format(format!(
                "{}: the profile names no server",
                path.display()
            )));
        }
        Ok(profile)
    }

    /// Writes the profile to `path` atomically with mode 0600, creating its
    /// directory with mode 0700 if missing.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Format(e.to_string()))?;
        crate::fsmeta::write_private(path, &json)
    }

    /// Removes the profile (logging out); a missing file is fine.
    pub fn remove(path: &Path) -> Result<()> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn sample() -> Profile {
        Profile {
            format: PROFILE_FORMAT,
            servers: vec!["https://a:8700".into(), "https://b:8700".into()],
            user: "alice".into(),
            account: AccountId::random(),
            device: DeviceId::random(),
            device_name: "laptop".into(),
            token: "secret-token".into(),
            ca_file: None,
            key_check: None,
            kdf: None,
        }
    }

    #[test]
    fn saved_private_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("fresh/cairn/profile.json");
        let p = sample();
        p.save(&path).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(Profile::load(&path).unwrap(), p);
        // Overwriting keeps the mode and leaves no temporary file behind.
        let mut q = p.clone();
        q.token = "another".into();
        q.save(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(Profile::load(&path).unwrap().token, "another");
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        Profile::remove(&path).unwrap();
        assert!(matches!(Profile::load(&path), Err(Error::Auth(_))));
        Profile::remove(&path).unwrap();
    }

    #[test]
    fn newer_or_garbage_profiles_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("profile.json");
        let mut p = sample();
        p.format = PROFILE_FORMAT + 1;
        p.save(&path).unwrap();
        assert!(matches!(Profile::load(&path), Err(Error::Format(_))));
        fs::write(&path, b"{not json").unwrap();
        assert!(matches!(Profile::load(&path), Err(Error::Format(_))));
    }

    #[test]
    fn path_precedence() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let explicit = Path::new("/etc/cairn.json");
        assert_eq!(
            profile_path(Some(explicit), env(&[("HOME", "/home/a")])).unwrap(),
            explicit
        );
        assert_eq!(
            profile_path(None, env(&[("HOME", "/home/a"), ("XDG_CONFIG_HOME", "/x")])).unwrap(),
            Path::new("/x/cairn/profile.json")
        );
        // A relative XDG_CONFIG_HOME is invalid per the spec and ignored.
        assert_eq!(
            profile_path(
                None,
                env(&[("HOME", "/home/a"), ("XDG_CONFIG_HOME", "rel")])
            )
            .unwrap(),
            Path::new("/home/a/.config/cairn/profile.json")
        );
        assert!(matches!(
            profile_path(None, env(&[])),
            Err(Error::Invalid(_))
        ));
    }
}
