//! What the downloads role (issue 13) serves: the index of `GET
//! /download/` and the client configuration file (`client.toml`) a
//! downloaded client is pre-configured with.
//!
//! The node writes `client.toml` (TOML) and the client reads it, so both
//! share these types; the listing is JSON. `docs/FORMATS.md` describes the
//! file and `docs/OPERATIONS.md` the role.

use serde::{Deserialize, Serialize};

use crate::version::CLIENT_CONFIG_FORMAT;

/// The product name a client shows when nobody branded it.
pub const DEFAULT_PRODUCT: &str = "Cairn";

/// The brand a client shows in `--help` and `--version`: the cluster's
/// (`[branding]` of the node's config) or an organization's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Branding {
    /// Product name, e.g. "Acme Backup".
    pub product: String,
    /// Where users get help; empty when none is given.
    pub support_url: String,
}

impl Default for Branding {
    fn default() -> Self {
        Self {
            product: DEFAULT_PRODUCT.into(),
            support_url: String::new(),
        }
    }
}

/// `client.toml`: the cluster a downloaded client belongs to, so that
/// `cairn login --user U` needs no `--server`, and the brand it shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Format version ([`CLIENT_CONFIG_FORMAT`]).
    pub format: u32,
    /// Base URLs of the cluster's auth nodes, tried in order at login.
    pub servers: Vec<String>,
    /// CA certificate (PEM) to trust for the servers, relative to the
    /// file's directory; absent when the servers use public roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// The brand.
    #[serde(default)]
    pub branding: Branding,
}

impl ClientConfig {
    /// A configuration of the current format.
    pub fn new(servers: Vec<String>, ca_file: Option<String>, branding: Branding) -> Self {
        Self {
            format: CLIENT_CONFIG_FORMAT,
            servers,
            ca_file,
            branding,
        }
    }
}

/// One file the downloads role serves, with its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadFile {
    /// Absolute URL of the file.
    pub url: String,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
}

/// A client build of one platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientBuild {
    /// `os-arch` as Rust names them, e.g. `linux-x86_64`.
    pub platform: String,
    /// The `cairn` binary.
    pub file: DownloadFile,
}

/// `GET /download/`: the client builds this node serves and the files
/// that pre-configure them for the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadIndex {
    /// The brand the downloads carry.
    pub branding: Branding,
    /// The servers the client configuration names.
    pub servers: Vec<String>,
    /// The `cairn` builds, by platform.
    pub builds: Vec<ClientBuild>,
    /// `install.sh`: fetches the build for the machine it runs on,
    /// checks its SHA-256 and writes the client configuration.
    pub install_script: DownloadFile,
    /// `client.toml` on its own (for a manual install).
    pub client_config: DownloadFile,
    /// The cluster's CA certificate (`ca.pem`), when it uses its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<DownloadFile>,
}
