//! Key slots: several secrets that each unwrap the same vault keys.
//!
//! A local vault's keys are sealed once per slot (the sealed-keys blob of
//! [`VaultKeys::wrap`], unchanged). A *password* slot derives its wrap key
//! with argon2id from its own KDF parameters and salt; a *recovery* slot
//! holds a random 256-bit recovery key, printed once when it is added, whose
//! wrap key is `BLAKE3-derive_key(RECOVERY_CONTEXT, recovery_key)` (full
//! entropy needs no stretching).
//!
//! `vault.json` format 1 has exactly one password slot (top-level `kdf`
//! and `keys`); format 2 lists `key_slots`. A vault is written in format 1
//! while its only slot is password slot 0, so a vault that never used
//! `key add` still opens with older builds, and in format 2 otherwise, which
//! older builds refuse instead of silently dropping slots.
//!
//! The decisions here (which slot to try, what may be removed) are pure
//! functions over the slot list; `Vault` does the IO.

use cairn_proto::VaultId;
use serde::{Deserialize, Serialize};

use crate::crypto::{KdfParams, VaultKeys};
use crate::error::{Error, Result};

const RECOVERY_CONTEXT: &str = "cairn 2026-12 recovery key wrap v1";

/// How a slot's secret becomes its wrap key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Unlock {
    /// A password stretched with argon2id under these parameters.
    Password {
        /// The slot's own KDF parameters and salt.
        kdf: KdfParams,
    },
    /// A random recovery key ([`RecoveryKey`]).
    Recovery,
}

/// One way into the vault: an id (stable, never reused while the slot
/// exists), how its secret unlocks, and the vault keys it seals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySlot {
    /// The slot's number (`cairn key remove ID`).
    pub id: u32,
    /// How its secret becomes the wrap key.
    #[serde(flatten)]
    pub unlock: Unlock,
    /// The vault keys sealed with the slot's wrap key, hex.
    #[serde(with = "hex::serde")]
    pub keys: Vec<u8>,
}

impl KeySlot {
    /// Whether this is the one slot a format-1 `vault.json` can hold.
    pub fn is_first_password(&self) -> bool {
        self.id == 0 && matches!(self.unlock, Unlock::Password { .. })
    }

    /// The slot's wrap key for `secret`, or `None` when the secret cannot
    /// be this slot's kind (a password is no recovery key).
    fn wrap_key(&self, secret: &[u8]) -> Result<Option<[u8; 32]>> {
        match &self.unlock {
            Unlock::Password { kdf } => Ok(Some(kdf.derive(secret)?.wrap)),
            Unlock::Recovery => Ok(RecoveryKey::parse(secret).map(|k| k.wrap_key())),
        }
    }

    /// Seals `keys` into a new slot `id` unlocked by `unlock` with `secret`.
    pub fn seal(
        id: u32,
        unlock: Unlock,
        vault: VaultId,
        keys: &VaultKeys,
        secret: &[u8],
    ) -> Result<Self> {
        let mut slot = Self {
            id,
            unlock,
            keys: vec![],
        };
        let wrap = slot.wrap_key(secret)?.ok_or_else(|| {
            Error::Invalid("a recovery slot needs a recovery key as its secret".into())
        })?;
        slot.keys = keys.wrap(vault, &wrap);
        Ok(slot)
    }
}

/// A recovery key: 32 random bytes, shown as 8 dash-separated groups of 8
/// hex digits. Entered wherever a password is asked for.
pub struct RecoveryKey([u8; 32]);

impl RecoveryKey {
    /// A fresh key from the OS generator.
    pub fn generate() -> Self {
        Self(rand::random())
    }

    /// Reads a recovery key typed as shown (dashes, spaces and case do not
    /// matter); `None` for anything else.
    pub fn parse(secret: &[u8]) -> Option<Self> {
        let digits: Vec<u8> = secret
            .iter()
            .filter(|b| !matches!(b, b'-' | b' ' | b'\t'))
            .map(u8::to_ascii_lowercase)
            .collect();
        let mut out = [0u8; 32];
        hex::decode_to_slice(&digits, &mut out).ok()?;
        Some(Self(out))
    }

    /// The key as the user writes it down.
    pub fn display(&self) -> String {
        hex::encode(self.0)
            .as_bytes()
            .chunks(8)
            .map(|g| String::from_utf8_lossy(g).into_owned())
            .collect::<Vec<_>>()
            .join("-")
    }

    fn wrap_key(&self) -> [u8; 32] {
        blake3::derive_key(RECOVERY_CONTEXT, &self.0)
    }
}

/// Unwraps the vault keys with `secret`, trying recovery slots first when
/// the secret looks like a recovery key (no argon2 run is wasted on it),
/// then password slots in order. Returns the keys and the slot that opened
/// them; [`Error::WrongPassword`] when none does.
pub fn unlock(vault: VaultId, slots: &[KeySlot], secret: &[u8]) -> Result<(VaultKeys, u32)> {
    let looks_recovery = RecoveryKey::parse(secret).is_some();
    let mut order: Vec<&KeySlot> = slots.iter().collect();
    order.sort_by_key(|s| (matches!(s.unlock, Unlock::Recovery) != looks_recovery, s.id));
    for slot in order {
        let Some(wrap) = slot.wrap_key(secret)? else {
            continue;
        };
        match VaultKeys::unwrap(vault, &wrap, &slot.keys) {
            Ok(keys) => return Ok((keys, slot.id)),
            Err(Error::WrongPassword) => {}
            Err(e) => return Err(e),
        }
    }
    Err(Error::WrongPassword)
}

/// The id a new slot gets: one more than the highest.
pub fn next_id(slots: &[KeySlot]) -> u32 {
    slots.iter().map(|s| s.id + 1).max().unwrap_or(0)
}

/// Checks that slot `id` may be removed from `slots` by a process that
/// unlocked the vault with slot `in_use`: it must exist, must not be the
/// last slot (the vault would be lost) and must not be the one in use (so
/// the caller proves another way in still works).
pub fn check_removal(slots: &[KeySlot], id: u32, in_use: u32) -> Result<()> {
    if !slots.iter().any(|s| s.id == id) {
        return Err(Error::NotFound(format!("no key slot {id}")));
    }
    if slots.len() == 1 {
        return Err(Error::Invalid(format!(
            "key slot {id} is the vault's last key; removing it would lock the data away for good"
        )));
    }
    if id == in_use {
        return Err(Error::Invalid(format!(
            "key slot {id} unlocked this run; open the vault with another key to remove it"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cheap() -> Unlock {
        Unlock::Password {
            kdf: KdfParams {
                memory_kib: 64,
                iterations: 1,
                ..KdfParams::generate()
            },
        }
    }

    #[test]
    fn every_slot_opens_the_same_keys_and_reports_itself() {
        let vault = VaultId::random();
        let keys = VaultKeys::generate();
        let rk = RecoveryKey::generate();
        let slots = vec![
            KeySlot::seal(0, cheap(), vault, &keys, b"first").unwrap(),
            KeySlot::seal(1, cheap(), vault, &keys, b"second").unwrap(),
            KeySlot::seal(2, Unlock::Recovery, vault, &keys, rk.display().as_bytes()).unwrap(),
        ];
        for (secret, id) in [
            (b"first".to_vec(), 0),
            (b"second".to_vec(), 1),
            (rk.display().into_bytes(), 2),
            (
                rk.display().to_uppercase().replace('-', " ").into_bytes(),
                2,
            ),
        ] {
            let (got, slot) = unlock(vault, &slots, &secret).unwrap();
            assert_eq!(slot, id);
            assert_eq!(got.encryption, keys.encryption);
            assert_eq!(got.chunk_id, keys.chunk_id);
        }
        assert!(matches!(
            unlock(vault, &slots, b"third"),
            Err(Error::WrongPassword)
        ));
        assert!(matches!(
            unlock(VaultId::random(), &slots, b"first"),
            Err(Error::WrongPassword)
        ));
        assert_eq!(next_id(&slots), 3);
        assert_eq!(next_id(&[]), 0);
    }

    #[test]
    fn removal_keeps_a_way_in() {
        let vault = VaultId::random();
        let keys = VaultKeys::generate();
        let one = vec![KeySlot::seal(0, cheap(), vault, &keys, b"a").unwrap()];
        assert!(matches!(check_removal(&one, 0, 0), Err(Error::Invalid(m)) if m.contains("last")));
        assert!(matches!(check_removal(&one, 5, 0), Err(Error::NotFound(_))));
        let mut two = one.clone();
        two.push(KeySlot::seal(1, cheap(), vault, &keys, b"b").unwrap());
        assert!(
            matches!(check_removal(&two, 1, 1), Err(Error::Invalid(m)) if m.contains("another key"))
        );
        assert!(check_removal(&two, 1, 0).is_ok());
        assert!(check_removal(&two, 0, 1).is_ok());
    }

    proptest! {
        #[test]
        fn recovery_keys_round_trip_through_their_display(bytes in any::<[u8; 32]>()) {
            let shown = RecoveryKey(bytes).display();
            prop_assert_eq!(shown.len(), 64 + 7);
            prop_assert_eq!(RecoveryKey::parse(shown.as_bytes()).map(|k| k.0), Some(bytes));
        }

        #[test]
        fn non_keys_do_not_parse(s in "[ -~]{0,80}") {
            let hexdigits = s.bytes().filter(u8::is_ascii_hexdigit).count();
            if let Some(k) = RecoveryKey::parse(s.as_bytes()) {
                prop_assert_eq!(hexdigits, 64);
                prop_assert_eq!(k.display().len(), 71);
            }
        }
    }
}
