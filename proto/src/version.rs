//! Format version constants. Every on-disk and wire format carries one of
//! these; a reader accepts every version up to its own and refuses newer ones
//! with a clear error (upgrade compatible, never silently downgrade).
//! `docs/FORMATS.md` describes each version byte for byte.

/// Version of a tree blob (one serialized directory).
pub const TREE_FORMAT: u8 = 1;
/// Version of the local vault directory layout and its `vault.json`
/// (2: key slots; a vault with only its first password is still written
/// as version 1).
pub const VAULT_FORMAT: u32 = 2;
/// Version of a snapshot record.
pub const SNAPSHOT_FORMAT: u32 = 2;
/// Version of the sealed vault-keys blob.
pub const KEYS_FORMAT: u8 = 1;
/// Version of a client configuration file (`client.toml`), the cluster
/// settings and branding a download from the downloads role ships with.
pub const CLIENT_CONFIG_FORMAT: u32 = 1;
