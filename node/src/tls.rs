//! HTTPS for `cairnd`: the server side (rustls behind axum), the dev
//! self-signed certificate, and the certificate-verifying HTTP client used
//! for peer traffic and the operator commands.
//!
//! Cairn carries admin tokens, device tokens and login keys over HTTP, so
//! anything that leaves the loopback interface must be encrypted and the
//! server authenticated: clients always verify the server's certificate
//! against the public web roots plus an optional CA file (`--ca-file`), and
//! there is deliberately no switch to turn verification off. A dev cluster
//! with `--tls-self-signed` is trusted by passing the node's own
//! `<data-dir>/tls/cert.pem` as the CA file.
//!
//! The server's accept loop ([`crate::http::serve`]) runs each handshake in
//! the connection's own task under `HANDSHAKE_TIMEOUT`, so one slow or
//! hostile client cannot hold up the accept loop; failed handshakes are
//! logged and dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use crate::config::{write_durably, DataDir, NodeIdentity};
use crate::error::NodeError;

/// How long a client may take to complete the TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a node's certificate and key come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// PEM files provided by the operator (`tls_cert`, `tls_key`).
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// A dev certificate generated on first start under `<data-dir>/tls/`
    /// and reused afterwards, so clients that trust it keep working.
    SelfSigned,
}

/// A node's TLS settings: what it serves with, and what its peer client
/// trusts beyond the public roots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// Serve HTTPS with this certificate; `None` serves plain HTTP.
    pub serve: Option<TlsSource>,
    /// Extra trusted root(s) for connections to other nodes (PEM).
    pub ca_file: Option<PathBuf>,
}

impl TlsSettings {
    /// Whether the node serves HTTPS.
    pub fn enabled(&self) -> bool {
        self.serve.is_some()
    }

    /// The URL scheme the node serves.
    pub fn scheme(&self) -> &'static str {
        if self.enabled() {
            "https"
        } else {
            "http"
        }
    }

    /// The rustls server configuration, generating the self-signed
    /// certificate first if asked for and missing; `None` without TLS.
    ///
    /// # Errors
    ///
    /// Unreadable or invalid PEM files, a key that does not match the
    /// certificate, or a failure writing the generated files.
    pub fn server_config(
        &self,
        dir: &DataDir,
        identity: &NodeIdentity,
    ) -> Result<Option<Arc<ServerConfig>>, NodeError> {
        let (cert, key) = match &self.serve {
            None => return Ok(None),
            Some(TlsSource::Files { cert, key }) => (cert.clone(), key.clone()),
            Some(TlsSource::SelfSigned) => {
                ensure_self_signed(dir, identity)?;
                (dir.tls_cert(), dir.tls_key())
            }
        };
        load_server_config(&cert, &key).map(Some)
    }
}

/// The names a self-signed certificate is valid for: the advertised host,
/// the listen address (unless it is a wildcard), and the loopback names so
/// local tools can always reach the node.
fn self_signed_names(identity: &NodeIdentity) -> Vec<String> {
    let mut names: Vec<String> = reqwest::Url::parse(&identity.advertise)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
        .into_iter()
        .collect();
    names.push(identity.listen.ip().to_string());
    names.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
    // A wildcard (0.0.0.0, ::) is no address a client connects to.
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| {
        !n.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
            && seen.insert(n.clone())
    });
    names
}

/// Writes `<data-dir>/tls/{cert,key}.pem` (mode 0600) unless both exist.
fn ensure_self_signed(dir: &DataDir, identity: &NodeIdentity) -> Result<(), NodeError> {
    let (cert_path, key_path) = (dir.tls_cert(), dir.tls_key());
    if cert_path.exists() && key_path.exists() {
        return Ok(());
    }
    let tls_dir = dir.tls_dir();
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&tls_dir)
            .map_err(|source| NodeError::Io {
                path: tls_dir.clone(),
                source,
            })?;
    }
    let names = self_signed_names(identity);
    let generated = rcgen::generate_simple_self_signed(names.clone())
        .map_err(|e| NodeError::Tls(format!("generating a self-signed certificate: {e}")))?;
    // Key first: a crash in between leaves no certificate, so the next
    // start generates both again.
    write_durably(
        &key_path,
        generated.signing_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_durably(&cert_path, generated.cert.pem().as_bytes(), 0o600)?;
    tracing::info!(cert = %cert_path.display(), ?names, "generated a self-signed TLS certificate");
    Ok(())
}

fn pem_error(path: &Path, e: impl std::fmt::Display) -> NodeError {
    NodeError::Tls(format!("{}: {e}", path.display()))
}

/// The ring provider, chosen explicitly so the process never depends on
/// which rustls crypto features other crates happen to enable.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain and key into a server configuration
/// (HTTP/1.1 over ALPN: the server speaks only that).
///
/// # Errors
///
/// [`NodeError::Tls`] for unreadable or invalid files or a mismatched key.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, NodeError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem_error(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(cert, e))?;
    if chain.is_empty() {
        return Err(pem_error(cert, "no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| NodeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| NodeError::Tls(format!("{} / {}: {e}", cert.display(), key.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// An HTTP client builder that verifies certificates with rustls against
/// the public roots plus the certificates in `ca_file`; shared by the peer
/// client and the operator commands so both trust exactly the same roots.
///
/// # Errors
///
/// [`NodeError::Io`] if the file cannot be read, [`NodeError::Tls`] if it
/// holds no valid PEM certificate.
pub fn client_builder(ca_file: Option<&Path>) -> Result<reqwest::ClientBuilder, NodeError> {
    let mut builder = reqwest::Client::builder().use_rustls_tls();
    if let Some(path) = ca_file {
        let pem = fs::read(path).map_err(|source| NodeError::Io {
            path: path.to_owned(),
            source,
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| pem_error(path, e))?;
        if certs.is_empty() {
            return Err(pem_error(path, "no certificate in the file"));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_generated_once_private_and_loadable() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = DataDir::new(tmp.path());
        let identity = NodeIdentity::new(
            1,
            "127.0.0.1:9000".parse().expect("addr"),
            Some("https://node1.example:9000".into()),
            true,
        );
        let settings = TlsSettings {
            serve: Some(TlsSource::SelfSigned),
            ca_file: None,
        };
        settings
            .server_config(&dir, &identity)
            .expect("config")
            .expect("tls on");
        let first = fs::read(dir.tls_cert()).expect("cert");
        use std::os::unix::fs::PermissionsExt;
        for p in [dir.tls_cert(), dir.tls_key()] {
            let mode = fs::metadata(&p).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", p.display());
        }
        settings.server_config(&dir, &identity).expect("reuse");
        assert_eq!(fs::read(dir.tls_cert()).expect("cert"), first, "reused");
        assert_eq!(
            self_signed_names(&identity),
            ["node1.example", "127.0.0.1", "localhost"]
        );
        let wildcard = NodeIdentity::new(1, "0.0.0.0:9000".parse().expect("addr"), None, true);
        assert_eq!(self_signed_names(&wildcard), ["localhost", "127.0.0.1"]);
        assert!(client_builder(Some(&dir.tls_cert())).is_ok());
        assert!(
            matches!(client_builder(Some(&dir.tls_key())), Err(NodeError::Tls(_))),
            "a key is no CA"
        );
    }
}
