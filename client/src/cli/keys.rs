//! `cairn key passwd --vault`, `key add`, `key list`, `key remove`: the key
//! slots of a local vault ([`cairn_client::vault::slots`]). Account vaults
//! follow the account password — the server keeps one sealed key blob per
//! vault in its replicated state — so these refuse them with a pointer to
//! `cairn key passwd`.

use std::path::Path;

use anyhow::Result;
use cairn_client::remote::VaultRef;
use cairn_client::vault::slots::Unlock;
use cairn_client::{Error, Vault};
use cairn_proto::VaultId;
use serde::Serialize;

use super::open::password;
use super::output::print_json;
use super::password as passwords;

/// A local or object vault, unlocked; a clear refusal for an account vault.
fn open_local(v: &Path) -> Result<Vault> {
    match VaultRef::parse(v) {
        VaultRef::Local(dir) => Ok(Vault::open(&dir, &password()?)?),
        VaultRef::Object(url) => super::open::open_object(&url),
        VaultRef::Remote(_) => Err(Error::Invalid(
            "an account vault's keys follow the account password (the server stores one sealed \
             key blob per vault): change it with `cairn key passwd` without --vault; extra \
             passwords and recovery keys exist for local vaults only"
                .into(),
        )
        .into()),
    }
}

/// `cairn key passwd --vault DIR`: the password of the slot that opened it.
pub fn passwd_local(v: &Path, json: bool) -> Result<u8> {
    let mut vault = open_local(v)?;
    let new = passwords::read("CAIRN_NEW_PASSWORD", "New password: ", true)?;
    vault.change_password(&new)?;
    if json {
        print_json(&PasswordJson {
            id: vault.config().vault_id,
            slot: vault.unlocked_by(),
            changed: true,
        })?;
    } else {
        println!(
            "password of key slot {} changed; the old password no longer opens this vault",
            vault.unlocked_by()
        );
    }
    Ok(0)
}

/// `cairn key passwd --vault DIR`.
#[derive(Serialize)]
struct PasswordJson {
    /// The vault whose keys were re-wrapped.
    id: VaultId,
    /// The key slot whose password changed.
    slot: u32,
    /// Always true.
    changed: bool,
}

/// One key slot as `key list` and `key add` show it.
#[derive(Serialize)]
struct SlotJson {
    /// The slot's id.
    slot: u32,
    /// `password` or `recovery`.
    kind: &'static str,
    /// Whether this run's secret opened the vault through it.
    in_use: bool,
}

fn kind(unlock: &Unlock) -> &'static str {
    match unlock {
        Unlock::Password { .. } => "password",
        Unlock::Recovery => "recovery",
    }
}

/// `cairn key add`.
#[derive(Serialize)]
struct AddedJson {
    /// The new slot.
    added: SlotJson,
    /// The recovery key, present only for `--recovery` (shown this once).
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_key: Option<String>,
}

/// `cairn key add --vault DIR [--recovery]`.
pub fn add(v: &Path, recovery: bool, json: bool) -> Result<u8> {
    let mut vault = open_local(v)?;
    let new = if recovery {
        None
    } else {
        Some(passwords::read(
            "CAIRN_NEW_PASSWORD",
            "Password to add: ",
            true,
        )?)
    };
    let added = vault.add_key(new.as_deref())?;
    let shown = added.recovery.as_ref().map(|k| k.display());
    if json {
        print_json(&AddedJson {
            added: SlotJson {
                slot: added.id,
                kind: if recovery { "recovery" } else { "password" },
                in_use: false,
            },
            recovery_key: shown,
        })?;
    } else if let Some(key) = shown {
        println!(
            "recovery key added as key slot {}:\n\n    {key}\n",
            added.id
        );
        println!(
            "Write it down and keep it apart from the vault: it is shown only now, and it \
             opens the vault wherever a password is asked for."
        );
    } else {
        println!("password added as key slot {}", added.id);
    }
    Ok(0)
}

/// `cairn key list --vault DIR`.
pub fn list(v: &Path, json: bool) -> Result<u8> {
    let vault = open_local(v)?;
    let slots: Vec<SlotJson> = vault
        .config()
        .slots
        .iter()
        .map(|s| SlotJson {
            slot: s.id,
            kind: kind(&s.unlock),
            in_use: s.id == vault.unlocked_by(),
        })
        .collect();
    if json {
        print_json(&slots)?;
    } else {
        let mut t = super::output::table(&["slot", "kind", "in use"]);
        for s in &slots {
            let mark = if s.in_use { "opened this run" } else { "" };
            t.add_row(vec![s.slot.to_string(), s.kind.to_string(), mark.into()]);
        }
        println!("{}", super::output::table_text(&t));
    }
    Ok(0)
}

/// `cairn key remove`.
#[derive(Serialize)]
struct RemovedJson {
    /// The slot removed.
    removed: u32,
}

/// `cairn key remove --vault DIR ID`.
pub fn remove(v: &Path, id: u32, json: bool) -> Result<u8> {
    let mut vault = open_local(v)?;
    vault.remove_key(id)?;
    if json {
        print_json(&RemovedJson { removed: id })?;
    } else {
        println!("key slot {id} removed; its secret no longer opens this vault");
    }
    Ok(0)
}
