//! Fixed-size identifiers. They print and parse as lower-case hex and
//! serialize as hex strings in JSON (human-readable formats) and as fixed-size
//! byte tuples (no length prefix) in binary formats such as bincode.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A hex string could not be parsed into an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: expected {len} hex digits, got {got:?}")]
pub struct IdParseError {
    /// The kind of identifier that was expected.
    pub kind: &'static str,
    /// The number of hex digits expected.
    pub len: usize,
    /// The offending input (truncated to 80 characters).
    pub got: String,
}

macro_rules! fixed_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// A fresh random identifier from the OS random generator.
            pub fn random() -> Self {
                Self(rand::random())
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Builds an identifier from a slice of exactly `LEN` bytes.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                bytes.try_into().ok().map(Self)
            }

            /// Lower-case hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = || IdParseError {
                    kind: $kind,
                    len: $len * 2,
                    got: s.chars().take(80).collect(),
                };
                let mut out = [0u8; $len];
                hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
                Ok(Self(out))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    self.0.serialize(s)
                }
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some(concat!($kind, ", lower-case hex")))
                    .min_length(Some($len * 2))
                    .max_length(Some($len * 2))
                    .pattern(Some("^[0-9a-f]+$"))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = String::deserialize(d)?;
                    s.parse().map_err(serde::de::Error::custom)
                } else {
                    let bytes: [u8; $len] = Deserialize::deserialize(d)?;
                    Ok(Self(bytes))
                }
            }
        }
    };
}

fixed_id!(
    /// Identifies a chunk within a vault: the BLAKE3 keyed hash of its
    /// plaintext under the vault's chunk-id key, so equal data in one vault
    /// has one id and the server cannot test guesses of content.
    ChunkId,
    32,
    "chunk id"
);

fixed_id!(
    /// Identifies a vault, the unit of deduplication; random at creation.
    VaultId,
    16,
    "vault id"
);

fixed_id!(
    /// Identifies a snapshot; random at creation.
    SnapshotId,
    16,
    "snapshot id"
);

fixed_id!(
    /// Identifies an account; chosen at random by the proposer.
    AccountId,
    16,
    "account id"
);

fixed_id!(
    /// Identifies a device (one login of an account); chosen by the proposer.
    DeviceId,
    16,
    "device id"
);

fixed_id!(
    /// Identifies one job (a backup, restore, check…) in the job log.
    JobId,
    16,
    "job id"
);

fixed_id!(
    /// The client-chosen id of a proposal. A retry after a failover carries
    /// the same id, so the state machine can answer it without applying twice.
    RequestId,
    16,
    "request id"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_round_trips(bytes in proptest::array::uniform32(any::<u8>())) {
            let id = ChunkId(bytes);
            prop_assert_eq!(id.to_hex().parse::<ChunkId>().unwrap(), id);
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(serde_json::from_str::<ChunkId>(&json).unwrap(), id);
        }
    }

    #[test]
    fn garbage_is_rejected() {
        assert!("zz".parse::<VaultId>().is_err());
        assert!("00".parse::<VaultId>().is_err());
        assert!(ChunkId::from_slice(&[0; 31]).is_none());
    }
}
