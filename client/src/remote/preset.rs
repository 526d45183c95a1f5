//! The client configuration a download from a cluster's downloads role
//! ships with (`client.toml`, [`ClientConfig`]): the cluster's servers, its
//! CA certificate when it has its own, and the brand the client shows in
//! `--help` and `--version`. With it `cairn login --user U` needs no
//! `--server`.
//!
//! The client reads the first of `client.toml` in its [`config_dir`] (where
//! the install script writes it, beside `profile.json`) and
//! [`SYSTEM_FILE`] (a machine-wide install). A relative `ca_file` is
//! relative to the file's directory. Unlike the profile it holds no
//! secret: it is what the cluster's `/download/client.toml` served.

use std::path::{Path, PathBuf};

use cairn_proto::download::{Branding, ClientConfig};
use cairn_proto::version::CLIENT_CONFIG_FORMAT;

use super::config::config_dir;
use crate::error::{Error, Result};

/// The file's name in the configuration directory.
pub const FILE: &str = "client.toml";

/// The machine-wide client configuration, read when the user has none.
pub const SYSTEM_FILE: &str = "/etc/cairn/client.toml";

/// A client configuration as read: where from, and its CA resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preset {
    /// The file it was read from.
    pub path: PathBuf,
    /// The cluster's servers, in the order to try them.
    pub servers: Vec<String>,
    /// The CA certificate to trust for them, an absolute path.
    pub ca_file: Option<PathBuf>,
    /// The brand.
    pub branding: Branding,
}

/// Where a client configuration may be, in the order they are tried.
pub fn paths(env: impl Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = config_dir(env).map(|d| d.join(FILE)).into_iter().collect();
    paths.push(PathBuf::from(SYSTEM_FILE));
    paths
}

/// Parses the client configuration `text` read from `path`.
///
/// # Errors
///
/// [`Error::Format`] for invalid TOML, unknown keys, a newer format or no
/// server.
pub fn parse(path: &Path, text: &str) -> Result<Preset> {
    let bad = |what: String| Error::Format(format!("{}: {what}", path.display()));
    let config: ClientConfig = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    if config.format > CLIENT_CONFIG_FORMAT {
        return Err(bad(format!(
            "client configuration format {} is newer than this build understands \
             ({CLIENT_CONFIG_FORMAT}); install the client again from your cluster",
            config.format
        )));
    }
    if config.servers.is_empty() {
        return Err(bad("the client configuration names no server".into()));
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    Ok(Preset {
        path: path.to_owned(),
        servers: config.servers,
        ca_file: config.ca_file.map(|f| dir.join(f)),
        branding: config.branding,
    })
}

/// The first client configuration of [`paths`]; `None` when there is none.
///
/// # Errors
///
/// As [`parse`], or the file exists but cannot be read.
pub fn load(env: impl Fn(&str) -> Option<String>) -> Result<Option<Preset>> {
    for path in paths(env) {
        match std::fs::read_to_string(&path) {
            Ok(text) => return parse(&path, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("read", &path, e)),
        }
    }
    Ok(None)
}

/// Where `cairn login` goes: `--server` (with `--ca-file`) when given,
/// else the configuration's servers and CA (an explicit `--ca-file` still
/// wins).
///
/// # Errors
///
/// [`Error::Invalid`] when there is neither.
pub fn login_target(
    server: Option<String>,
    ca_file: Option<PathBuf>,
    preset: Option<&Preset>,
) -> Result<(Vec<String>, Option<PathBuf>)> {
    match (server, preset) {
        (Some(s), _) => Ok((vec![s], ca_file)),
        (None, Some(p)) => Ok((p.servers.clone(), ca_file.or_else(|| p.ca_file.clone()))),
        (None, None) => Err(Error::Invalid(
            "no --server given and no client configuration installed: pass --server URL, or \
             install the client from your cluster's /download/ page"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_read_from_the_config_dir_then_the_system() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            paths(env(&[("HOME", "/home/a")])),
            [
                PathBuf::from("/home/a/.config/cairn/client.toml"),
                PathBuf::from(SYSTEM_FILE)
            ]
        );
        assert_eq!(
            paths(env(&[("HOME", "/home/a"), ("XDG_CONFIG_HOME", "/x")]))[0],
            PathBuf::from("/x/cairn/client.toml")
        );
        assert_eq!(paths(env(&[])), [PathBuf::from(SYSTEM_FILE)]);
    }

    #[test]
    fn the_golden_file_parses_and_resolves_its_ca() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/client-config-v1.toml");
        let text = std::fs::read_to_string(&path).expect("fixture");
        let p = parse(&path, &text).expect("parses");
        assert_eq!(
            p.servers,
            [
                "https://b1.acme.example:8700",
                "https://b2.acme.example:8700"
            ]
        );
        assert_eq!(p.ca_file, Some(path.parent().expect("dir").join("ca.pem")));
        assert_eq!(p.branding.product, "Acme Backup");
        assert_eq!(p.branding.support_url, "https://support.acme.example");
        let bad = |t: &str| {
            parse(Path::new("/c/client.toml"), t)
                .expect_err(t)
                .to_string()
        };
        assert!(bad("format = 2\nservers = [\"http://a\"]\n").contains("newer"));
        assert!(bad("format = 1\nservers = []\n").contains("no server"));
        assert!(bad("format = 1\nservers = [\"http://a\"]\nserver = 1\n").contains("server"));
        let plain = parse(
            Path::new("/c/client.toml"),
            "format = 1\nservers = [\"http://a\"]\n",
        )
        .expect("minimal");
        assert_eq!(plain.branding, Branding::default());
        assert_eq!(plain.ca_file, None);
    }

    #[test]
    fn login_goes_to_the_server_given_else_the_configured_ones() {
        let preset = Preset {
            path: "/c/client.toml".into(),
            servers: vec!["https://a".into(), "https://b".into()],
            ca_file: Some("/c/ca.pem".into()),
            branding: Branding::default(),
        };
        let given = login_target(Some("https://x".into()), None, Some(&preset)).expect("given");
        assert_eq!(given, (vec!["https://x".to_string()], None));
        let configured = login_target(None, None, Some(&preset)).expect("configured");
        assert_eq!(configured, (preset.servers.clone(), preset.ca_file.clone()));
        let own_ca = login_target(None, Some("/mine.pem".into()), Some(&preset)).expect("ca");
        assert_eq!(own_ca.1, Some(PathBuf::from("/mine.pem")));
        assert!(matches!(
            login_target(None, None, None),
            Err(Error::Invalid(_))
        ));
    }
}
