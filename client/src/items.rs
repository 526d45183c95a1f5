//! Protected items: named sets of paths a device backs up into one of its
//! account's vaults (`cairn backup --item NAME`). This module turns an item
//! into what a backup needs (vault, paths, excludes) and decides which
//! device name a snapshot records.

use std::path::{Path, PathBuf};

use cairn_proto::api::ItemInfo;

use crate::error::{Error, Result};
use crate::remote::{check_vault_name, Session, VaultRef};
use crate::vault::Vault;

/// What a protected item backs up, its vault unlocked.
pub struct ItemBackup {
    /// The item's account vault.
    pub vault: Vault,
    /// Its paths (absolute, as stored).
    pub paths: Vec<PathBuf>,
    /// Its exclude patterns.
    pub excludes: Vec<String>,
}

/// Opens the vault of `item` with the account `password`. `named` is the
/// `--vault` the user gave as well, if any: it must name the item's vault.
///
/// # Errors
///
/// [`Error::Invalid`] when `named` is another vault; [`Error::NotFound`]
/// when the item's vault is gone.
pub fn open(
    session: &mut Session,
    item: &ItemInfo,
    named: Option<&Path>,
    password: &[u8],
) -> Result<ItemBackup> {
    let info = session.vault_by_id(item.vault)?;
    if let Some(named) = named {
        if VaultRef::parse(named) != VaultRef::Remote(info.name.clone()) {
            return Err(Error::Invalid(format!(
                "item {:?} backs up into vault {:?}, not {}",
                item.name,
                info.name,
                named.display()
            )));
        }
    }
    Ok(ItemBackup {
        vault: Vault::open_account_info(session, info, password)?,
        paths: item.paths.iter().map(PathBuf::from).collect(),
        excludes: item.excludes.clone(),
    })
}

/// The device a backup's snapshot records. An account vault's
/// (`account_device`: the logged-in device) is that device, a different
/// `requested` one is refused, and its item label must be a valid item
/// name; a local vault records `requested`, or `hostname` by default.
///
/// # Errors
///
/// [`Error::Invalid`] for a bad item name or a `--device` an account vault
/// cannot record.
pub fn device_name(
    account_device: Option<&str>,
    item: Option<&str>,
    requested: Option<&str>,
    hostname: impl FnOnce() -> String,
) -> Result<String> {
    let Some(device) = account_device else {
        return Ok(requested.map_or_else(hostname, str::to_string));
    };
    if let Some(item) = item {
        check_vault_name("item", item)?;
    }
    if requested.is_some_and(|d| d != device) {
        return Err(Error::Invalid(
            "--device does not apply to account vaults: snapshots record the logged-in device"
                .into(),
        ));
    }
    Ok(device.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_vault_records_the_logged_in_device() {
        let host = || "host".to_string();
        assert_eq!(
            device_name(Some("laptop"), None, None, host).unwrap(),
            "laptop"
        );
        assert_eq!(
            device_name(Some("laptop"), Some("home"), Some("laptop"), host).unwrap(),
            "laptop"
        );
        assert!(matches!(
            device_name(Some("laptop"), None, Some("desktop"), host),
            Err(Error::Invalid(m)) if m.contains("--device")
        ));
        assert!(matches!(
            device_name(Some("laptop"), Some("~label"), None, host),
            Err(Error::Invalid(m)) if m.contains("item name")
        ));
    }

    #[test]
    fn a_local_vault_records_the_requested_device_or_the_host() {
        let host = || "host".to_string();
        assert_eq!(device_name(None, Some("~x"), None, host).unwrap(), "host");
        assert_eq!(device_name(None, None, Some("nas"), host).unwrap(), "nas");
    }
}
