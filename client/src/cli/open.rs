//! Opening what a command names: the logged-in session, and the vault
//! `--vault V` names with the password it needs (a local vault's, or the
//! account's). Shared by `cairn` and `cairn-debug`.

use std::path::Path;

use anyhow::Result;
use cairn_client::remote::config::profile_path;
use cairn_client::remote::{Session, VaultRef};
use cairn_client::vault::object::store::ObjectUrl;
use cairn_client::Vault;

use super::password;

/// A local vault's password (`CAIRN_PASSWORD`, its `_FILE`, or a prompt).
pub fn password() -> Result<Vec<u8>> {
    password::read("CAIRN_PASSWORD", "Vault password: ", false)
}

/// The account password (same sources).
pub fn account_password() -> Result<Vec<u8>> {
    password::read(ACCOUNT_PASSWORD, "Account password: ", false)
}

/// The environment variable (and its `_FILE`, `_COMMAND` forms) of the
/// account password.
pub const ACCOUNT_PASSWORD: &str = "CAIRN_PASSWORD";

/// Where the password that opens a vault comes from: a local vault's, or
/// (an account vault) the account password.
pub struct Secret {
    /// A local vault's password.
    pub local: fn() -> Result<Vec<u8>>,
    /// The account password.
    pub account: fn() -> Result<Vec<u8>>,
}

/// The passwords of the vault a command works on.
pub const VAULT: Secret = Secret {
    local: password,
    account: account_password,
};

/// The logged-in session of the profile (`--config`, `CAIRN_CONFIG` or the
/// default path).
pub fn session(config: Option<&Path>) -> Result<Session> {
    let path = profile_path(config, |k| std::env::var(k).ok())?;
    Ok(Session::open(&path)?)
}

/// Opens and unlocks the object vault at `url` (settings from the
/// environment: `AWS_*`, `CAIRN_SFTP_*`).
pub fn open_object(url: &str) -> Result<Vault> {
    let url = ObjectUrl::parse(url)?;
    let pw = password()?;
    Ok(Vault::open_object(&url, &pw, &|k| std::env::var(k).ok())?)
}

/// An unlocked vault and, for an account vault, the session it came
/// through (which records jobs).
pub struct Opened {
    /// The vault.
    pub vault: Vault,
    /// The account session (account vaults).
    pub session: Option<Session>,
}

/// Opens and unlocks the vault `v` names ([`VaultRef::parse`]).
pub fn open(config: Option<&Path>, v: &Path) -> Result<Opened> {
    open_with(config, v, &VAULT)
}

/// [`open`], unlocked with the password from `secret` (for an account
/// vault: the account password).
pub fn open_with(config: Option<&Path>, v: &Path, secret: &Secret) -> Result<Opened> {
    match VaultRef::parse(v) {
        VaultRef::Local(dir) => {
            let pw = (secret.local)()?;
            Ok(Opened {
                vault: Vault::open(&dir, &pw)?,
                session: None,
            })
        }
        VaultRef::Object(url) => Ok(Opened {
            vault: open_object(&url)?,
            session: None,
        }),
        VaultRef::Remote(name) => {
            let profile = profile_path(config, |k| std::env::var(k).ok())?;
            if !profile.exists() {
                return Err(cairn_client::Error::NotFound(format!(
                    "no vault {name:?}: there is no local vault directory of that name here, and \
                     without a login (`cairn login`) it cannot be an account vault (write a \
                     local path with a '/', e.g. ./{name})"
                ))
                .into());
            }
            let mut s = session(config)?;
            let pw = (secret.account)()?;
            let vault = Vault::open_account(&mut s, &name, &pw)?;
            Ok(Opened {
                vault,
                session: Some(s),
            })
        }
    }
}
