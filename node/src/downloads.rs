//! The downloads role (issue 13): the `cairn` builds this node serves and
//! the files that pre-configure them for the cluster.
//!
//! A node serves the client binaries it finds in its downloads directory
//! (`[downloads] dir`, by default the directory `cairnd` runs from, where
//! `cargo build` and the packages put `cairn`): `cairn` is the build of
//! the node's own platform, `cairn-<os>-<arch>` (`.exe` allowed) another
//! platform's. Beside them it renders, per request, the client
//! configuration (`client.toml`: the auth nodes' URLs, the cluster's CA
//! when it uses its own, the brand) and `install.sh`, a POSIX script that
//! embeds the configuration and the builds' SHA-256, fetches the build for
//! the machine it runs on, checks it and installs both. The brand is the
//! node's `[branding]`, or an organization's (name and support URL in the
//! replicated state) for `?org=ORG`.
//!
//! Rendering is pure (over plain data); only [`Downloads`] touches the
//! disk, and caches each binary's checksum by size and modification time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::config::{DataDir, DownloadSettings};
use crate::error::NodeError;
use crate::tls::{TlsSettings, TlsSource};
use cairn_consensus::State;
use cairn_proto::download::{Branding, ClientConfig};

/// The name of the CA file beside an installed `client.toml`.
pub const CA_FILE: &str = "ca.pem";

/// The platform this node was built for, `os-arch` as Rust names them
/// (`linux-x86_64`): the platform of the `cairn` beside it.
pub fn native_platform() -> String {
    format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH)
}

/// The platform of a client build named `file_name` in the downloads
/// directory: `cairn` is `native`'s, `cairn-<os>-<arch>[.exe]` that
/// platform's; anything else is not a client build.
pub fn platform_of(file_name: &str, native: &str) -> Option<String> {
    if file_name == "cairn" {
        return Some(native.to_string());
    }
    let rest = file_name.strip_prefix("cairn-")?;
    let rest = rest.strip_suffix(".exe").unwrap_or(rest);
    let (os, arch) = rest.split_once('-')?;
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    (word(os) && word(arch)).then(|| rest.to_string())
}

/// The CA certificate a downloaded client must trust, when the cluster
/// uses its own: the `ca_file` the nodes trust each other with, else this
/// node's self-signed development certificate; `None` when the node's
/// certificate chains to the public roots (or it serves plain HTTP).
pub fn client_ca(tls: &TlsSettings, dir: &DataDir) -> Option<PathBuf> {
    match (&tls.serve, &tls.ca_file) {
        (None, _) => None,
        (Some(_), Some(ca)) => Some(ca.clone()),
        (Some(TlsSource::SelfSigned), None) => Some(dir.tls_cert()),
        (Some(TlsSource::Files { .. }), None) => None,
    }
}

/// Why a download cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No organization of that name.
    UnknownOrg(String),
    /// No build of that platform.
    UnknownPlatform(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownOrg(o) => write!(f, "no organization named {o:?}"),
            Self::UnknownPlatform(p) => write!(f, "this node serves no client build for {p:?}"),
        }
    }
}

/// The brand of a download: organization `org`'s (its display name, else
/// its name; its support URL, else the cluster's), or the cluster's.
///
/// # Errors
///
/// [`Refusal::UnknownOrg`] for an organization the state does not have.
pub fn branding_for(
    state: &State,
    cluster: &Branding,
    org: Option<&str>,
) -> Result<Branding, Refusal> {
    let Some(name) = org else {
        return Ok(cluster.clone());
    };
    let o = state
        .orgs()
        .get(name)
        .ok_or_else(|| Refusal::UnknownOrg(name.to_string()))?;
    let or = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else {
            a.to_string()
        }
    };
    Ok(Branding {
        product: or(&o.display_name, &o.name),
        support_url: or(&o.support_url, &cluster.support_url),
    })
}

/// `client.toml` for `servers` and `branding`, naming [`CA_FILE`] when
/// the cluster has its own CA.
///
/// # Errors
///
/// [`NodeError::Config`] if TOML cannot represent it (it always can).
pub fn client_config(
    servers: &[String],
    has_ca: bool,
    branding: &Branding,
) -> Result<String, NodeError> {
    let config = ClientConfig::new(
        servers.to_vec(),
        has_ca.then(|| CA_FILE.to_string()),
        branding.clone(),
    );
    let body =
        toml::to_string(&config).map_err(|e| NodeError::Config(format!("client.toml: {e}")))?;
    Ok(format!(
        "# The {} cluster's client configuration, from its downloads role.\n{body}",
        branding.product.replace(['\n', '\r'], " ")
    ))
}

/// One build the script can install: its platform, URL and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptBuild {
    /// `os-arch`.
    pub platform: String,
    /// Where to fetch it.
    pub url: String,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// `s` as one single-quoted shell word.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The `uname -s`/`uname -m` pattern of a Rust `os-arch` platform.
fn uname_pattern(platform: &str) -> String {
    let (os, arch) = platform.split_once('-').unwrap_or((platform, ""));
    let os = match os {
        "linux" => "Linux",
        "macos" => "Darwin",
        "freebsd" => "FreeBSD",
        other => other,
    };
    let arch = match arch {
        "aarch64" => "aarch64|arm64",
        "x86_64" => "x86_64|amd64",
        other => other,
    };
    arch.split('|')
        .map(|a| format!("{os}-{a}"))
        .collect::<Vec<_>>()
        .join("|")
}

/// A here-document delimiter no line of `text` equals.
fn delimiter(text: &str, base: &str) -> String {
    let mut d = base.to_string();
    while text.lines().any(|l| l == d) {
        d.push('_');
    }
    d
}

/// `install.sh`: a POSIX script that installs the build of the machine it
/// runs on (`uname`), checked against its SHA-256, into
/// `${CAIRN_INSTALL_DIR:-$HOME/.local/bin}`, and writes `config` (and the
/// CA, `ca_pem`) to the client's configuration directory
/// (`$XDG_CONFIG_HOME/cairn`, else `~/.config/cairn`), where it reads them. Downloads trust the embedded CA, so nothing is
/// fetched unverified.
pub fn install_script(
    branding: &Branding,
    builds: &[ScriptBuild],
    config: &str,
    ca_pem: Option<&str>,
) -> String {
    let product = sh_quote(&branding.product);
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    s.push_str("# Installs the backup client (cairn) pre-configured for this cluster.\n");
    s.push_str("# Written by the cluster's downloads role; see GET /download/ for checksums.\n");
    s.push_str("set -eu\n");
    s.push_str(&format!("product={product}\n"));
    s.push_str("bin_dir=\"${CAIRN_INSTALL_DIR:-$HOME/.local/bin}\"\n");
    // Where the client looks (an absolute XDG_CONFIG_HOME, else ~/.config).
    s.push_str(concat!(
        "case \"${XDG_CONFIG_HOME:-}\" in\n",
        "  /*) conf_dir=\"$XDG_CONFIG_HOME/cairn\" ;;\n",
        "  *) conf_dir=\"$HOME/.config/cairn\" ;;\n",
        "esac\n",
    ));
    s.push_str("machine=\"$(uname -s)-$(uname -m)\"\n");
    s.push_str("case \"$machine\" in\n");
    for b in builds {
        s.push_str(&format!(
            "  {}) url={}; sum={} ;;\n",
            uname_pattern(&b.platform),
            sh_quote(&b.url),
            sh_quote(&b.sha256)
        ));
    }
    s.push_str(
        "  *) echo \"$product: this cluster serves no client build for $machine\" >&2; exit 1 ;;\nesac\n",
    );
    s.push_str("tmp=\"$(mktemp -d)\"\ntrap 'rm -rf \"$tmp\"' EXIT\n");
    s.push_str("ca_args=''\n");
    if let Some(pem) = ca_pem {
        let d = delimiter(pem, "CAIRN_CA_PEM");
        s.push_str(&format!(
            "cat > \"$tmp/{CA_FILE}\" <<'{d}'\n{}\n{d}\n",
            pem.trim_end()
        ));
        s.push_str("ca_args=yes\n");
    }
    s.push_str(concat!(
        "fetch() {\n",
        "  if command -v curl >/dev/null 2>&1; then\n",
        "    if [ -n \"$ca_args\" ]; then curl -fsS --cacert \"$tmp/ca.pem\" -o \"$2\" \"$1\"; else curl -fsS -o \"$2\" \"$1\"; fi\n",
        "  elif command -v wget >/dev/null 2>&1; then\n",
        "    if [ -n \"$ca_args\" ]; then wget -q --ca-certificate=\"$tmp/ca.pem\" -O \"$2\" \"$1\"; else wget -q -O \"$2\" \"$1\"; fi\n",
        "  else\n",
        "    echo \"$product: need curl or wget to download the client\" >&2; exit 1\n",
        "  fi\n",
        "}\n",
        "sha256() {\n",
        "  if command -v sha256sum >/dev/null 2>&1; then sha256sum \"$1\" | cut -d' ' -f1; else shasum -a 256 \"$1\" | cut -d' ' -f1; fi\n",
        "}\n",
        "fetch \"$url\" \"$tmp/cairn\"\n",
        "got=\"$(sha256 \"$tmp/cairn\")\"\n",
        "if [ \"$got\" != \"$sum\" ]; then\n",
        "  echo \"$product: the downloaded client's SHA-256 is $got, expected $sum: not installed\" >&2; exit 1\n",
        "fi\n",
        "mkdir -p \"$bin_dir\" \"$conf_dir\"\n",
        "chmod 0755 \"$tmp/cairn\"\n",
        "mv -f \"$tmp/cairn\" \"$bin_dir/cairn\"\n",
    ));
    let d = delimiter(config, "CAIRN_CLIENT_TOML");
    s.push_str(&format!(
        "cat > \"$conf_dir/client.toml.tmp\" <<'{d}'\n{}\n{d}\n",
        config.trim_end()
    ));
    s.push_str("mv -f \"$conf_dir/client.toml.tmp\" \"$conf_dir/client.toml\"\n");
    if ca_pem.is_some() {
        s.push_str(&format!(
            "mv -f \"$tmp/{CA_FILE}\" \"$conf_dir/{CA_FILE}\"\n"
        ));
    }
    s.push_str("echo \"$product client installed: $bin_dir/cairn (configuration $conf_dir/client.toml)\"\n");
    s.push_str("echo \"next: cairn login --user NAME\"\n");
    s
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// A client build found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// `os-arch`.
    pub platform: String,
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// The downloads role of one node: its builds directory, brand and the
/// cluster's CA, and a checksum cache.
pub struct Downloads {
    dir: PathBuf,
    /// The cluster's brand (`[branding]`).
    pub branding: Branding,
    /// The CA certificate (PEM) clients must trust, if the cluster has its own.
    pub ca_pem: Option<String>,
    sums: Mutex<HashMap<PathBuf, (u64, SystemTime, String)>>,
}

impl Downloads {
    /// The role over `settings`, with `branding`, trusting `ca` (see
    /// [`client_ca`]).
    ///
    /// # Errors
    ///
    /// The CA file cannot be read, or without a directory the running
    /// executable's cannot be found.
    pub fn new(
        settings: &DownloadSettings,
        branding: Branding,
        ca: Option<&Path>,
    ) -> Result<Self, NodeError> {
        let dir = match &settings.dir {
            Some(d) => d.clone(),
            None => std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(Path::to_path_buf))
                .ok_or_else(|| {
                    NodeError::Config(
                        "cannot tell where cairnd runs from: set [downloads] dir".into(),
                    )
                })?,
        };
        let ca_pem = match ca {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|source| NodeError::Io {
                path: p.to_owned(),
                source,
            })?),
            None => None,
        };
        Ok(Self {
            dir,
            branding,
            ca_pem,
            sums: Mutex::new(HashMap::new()),
        })
    }

    /// The client builds in the directory, by platform (blocking: hashes
    /// a binary whose size or time changed).
    ///
    /// # Errors
    ///
    /// The directory or a build cannot be read.
    pub fn builds(&self) -> Result<Vec<Build>, NodeError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| NodeError::Io { path, source }
        };
        let native = native_platform();
        let mut builds = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(builds),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name();
            let Some(platform) = name.to_str().and_then(|n| platform_of(n, &native)) else {
                continue;
            };
            let path = entry.path();
            let meta = std::fs::metadata(&path).map_err(io(&path))?;
            if !meta.is_file() {
                continue;
            }
            let modified = meta.modified().map_err(io(&path))?;
            let sha256 = self.sum(&path, meta.len(), modified)?;
            builds.push(Build {
                platform,
                path,
                size: meta.len(),
                sha256,
            });
        }
        builds.sort_by(|a, b| a.platform.cmp(&b.platform));
        builds.dedup_by(|a, b| a.platform == b.platform);
        Ok(builds)
    }

    fn sum(&self, path: &Path, size: u64, modified: SystemTime) -> Result<String, NodeError> {
        let cached = self.sums.lock().ok().and_then(|s| {
            s.get(path)
                .filter(|(n, t, _)| *n == size && *t == modified)
                .map(|(_, _, sum)| sum.clone())
        });
        if let Some(sum) = cached {
            return Ok(sum);
        }
        let bytes = std::fs::read(path).map_err(|source| NodeError::Io {
            path: path.to_owned(),
            source,
        })?;
        let sum = sha256_hex(&bytes);
        if let Ok(mut s) = self.sums.lock() {
            s.insert(path.to_owned(), (size, modified, sum.clone()));
        }
        Ok(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_are_named_by_platform() {
        let native = "linux-x86_64";
        assert_eq!(
            platform_of("cairn", native).as_deref(),
            Some("linux-x86_64")
        );
        assert_eq!(
            platform_of("cairn-macos-aarch64", native).as_deref(),
            Some("macos-aarch64")
        );
        assert_eq!(
            platform_of("cairn-windows-x86_64.exe", native).as_deref(),
            Some("windows-x86_64")
        );
        for other in [
            "cairnd",
            "cairn-debug",
            "cairn-",
            "cairn-Linux-x86",
            "cairn-a-b-c.d",
            "cairn.d",
        ] {
            assert_eq!(platform_of(other, native), None, "{other}");
        }
        assert_eq!(uname_pattern("linux-x86_64"), "Linux-x86_64|Linux-amd64");
        assert_eq!(
            uname_pattern("macos-aarch64"),
            "Darwin-aarch64|Darwin-arm64"
        );
    }

    #[test]
    fn the_ca_is_the_clusters_own_only() {
        let dir = DataDir::new("/d");
        let files = TlsSource::Files {
            cert: "/c".into(),
            key: "/k".into(),
        };
        let tls = |serve, ca: Option<&str>| TlsSettings {
            serve,
            ca_file: ca.map(PathBuf::from),
        };
        assert_eq!(client_ca(&tls(None, Some("/ca")), &dir), None, "plain HTTP");
        assert_eq!(
            client_ca(&tls(Some(files.clone()), None), &dir),
            None,
            "public roots"
        );
        assert_eq!(
            client_ca(&tls(Some(files), Some("/ca")), &dir),
            Some(PathBuf::from("/ca"))
        );
        assert_eq!(
            client_ca(&tls(Some(TlsSource::SelfSigned), None), &dir),
            Some(dir.tls_cert())
        );
    }

    #[test]
    fn an_org_brands_its_downloads() {
        use cairn_consensus::{apply, Event, Request, RequestId, UnixMillis};
        let cluster = Branding {
            product: "Big Backup".into(),
            support_url: "https://help.big.example".into(),
        };
        let mut state = State::default();
        let org = |name: &str, display: &str, url: &str| Event::OrgConfigured {
            name: name.into(),
            display_name: display.into(),
            support_url: url.into(),
            tiers: Vec::new(),
            at: UnixMillis(1),
        };
        for (i, e) in [
            org("acme", "Acme Backup", "https://acme.example"),
            org("bare", "", ""),
        ]
        .into_iter()
        .enumerate()
        {
            let r = Request {
                request_id: RequestId([i as u8; 16]),
                event: e,
            };
            assert!(apply(&mut state, &r).is_applied());
        }
        assert_eq!(branding_for(&state, &cluster, None), Ok(cluster.clone()));
        let acme = branding_for(&state, &cluster, Some("acme")).expect("acme");
        assert_eq!(acme.product, "Acme Backup");
        assert_eq!(acme.support_url, "https://acme.example");
        let bare = branding_for(&state, &cluster, Some("bare")).expect("bare");
        assert_eq!(bare.product, "bare");
        assert_eq!(bare.support_url, cluster.support_url);
        assert_eq!(
            branding_for(&state, &cluster, Some("nope")),
            Err(Refusal::UnknownOrg("nope".into()))
        );
    }

    #[test]
    fn the_config_round_trips_and_the_script_quotes_what_it_embeds() {
        let branding = Branding {
            product: "O'Brien \"Backup\"\nCAIRN_CLIENT_TOML".into(),
            support_url: "https://x.example/?a='b'".into(),
        };
        let servers = vec!["https://a:8700".to_string(), "https://b:8700".to_string()];
        let text = client_config(&servers, true, &branding).expect("toml");
        let back: ClientConfig = toml::from_str(&text).expect("parses");
        assert_eq!(back.servers, servers);
        assert_eq!(back.ca_file.as_deref(), Some(CA_FILE));
        assert_eq!(back.branding, branding);
        let builds = [ScriptBuild {
            platform: "linux-x86_64".into(),
            url: "https://a:8700/download/linux-x86_64/cairn".into(),
            sha256: "ab".repeat(32),
        }];
        let pem = "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n";
        let script = install_script(&branding, &builds, &text, Some(pem));
        assert!(
            script.contains("product='O'\\''Brien \"Backup\""),
            "{script}"
        );
        assert!(script.contains(
            "Linux-x86_64|Linux-amd64) url='https://a:8700/download/linux-x86_64/cairn'"
        ));
        assert!(script.contains(&"ab".repeat(32)));
        assert!(script.contains(pem.trim_end()));
        // The configuration's lines are embedded verbatim, under a
        // delimiter none of them equals.
        for line in text.lines() {
            assert!(script.lines().any(|l| l == line), "{line}");
        }
        assert_eq!(delimiter("a\nEND\nEND_\n", "END"), "END__");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
