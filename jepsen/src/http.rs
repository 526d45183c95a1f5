//! A minimal blocking HTTP/1.1 client over `std::net` for the workloads.
//!
//! Blocking sockets on plain threads, because the threads live in the
//! harness's client network namespace (namespaces are per thread) and
//! because the outcome of a request must be classified exactly: a request
//! that could not connect certainly had no effect ([`HttpError::NotSent`]);
//! one cut off after it was sent may have ([`HttpError::MaybeSent`]).
//! HTTPS ([`request_tls`]) is for the license authority, which serves
//! only TLS off loopback, as in production.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// Why a request has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The connection could not be made: the request was never sent.
    #[error("not sent: {0}")]
    NotSent(String),
    /// Sent (at least partly), but no complete answer came back.
    #[error("no answer: {0}")]
    MaybeSent(String),
}

/// A response: status and body.
pub type Response = (u16, Vec<u8>);

/// `METHOD path` to `addr` with `headers` and `body`, giving up after
/// `timeout` (for the connection, and for each read and write).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, HttpError> {
    let s = connect(addr, timeout)?;
    exchange(s, addr, method, path, headers, body)
}

/// A TLS client trusting exactly one server certificate (the authority's
/// self-signed one), for servers addressed by IP.
#[derive(Debug, Clone)]
pub struct Tls(Arc<rustls::ClientConfig>);

impl Tls {
    /// Trusts the PEM certificate(s) in `ca`.
    pub fn trusting(ca: &Path) -> Result<Tls, String> {
        let mut roots = rustls::RootCertStore::empty();
        let certs =
            CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", ca.display()))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls(Arc::new(config)))
    }
}

/// [`request`] over HTTPS, verifying the server's certificate for its IP
/// with `tls`. A failed handshake sent nothing of the request.
pub fn request_tls(
    tls: &Tls,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> Result<Response, HttpError> {
    let mut tcp = connect(addr, timeout)?;
    let name = ServerName::IpAddress(addr.ip().into());
    let not_sent = |e: String| HttpError::NotSent(format!("TLS: {e}"));
    let mut conn =
        rustls::ClientConnection::new(tls.0.clone(), name).map_err(|e| not_sent(e.to_string()))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| not_sent(e.to_string()))?;
    }
    exchange(
        rustls::StreamOwned::new(conn, tcp),
        addr,
        method,
        path,
        headers,
        body,
    )
}

/// A connection to `addr` with `timeout` on connecting, reading and writing.
fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, HttpError> {
    let s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| HttpError::NotSent(e.to_string()))?;
    let not_sent = |e: std::io::Error| HttpError::NotSent(e.to_string());
    s.set_read_timeout(Some(timeout)).map_err(not_sent)?;
    s.set_write_timeout(Some(timeout)).map_err(not_sent)?;
    Ok(s)
}

/// Sends one request over `s` and reads the whole answer.
fn exchange(
    mut s: impl Read + Write,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, HttpError> {
    let maybe = |e: std::io::Error| HttpError::MaybeSent(e.to_string());
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).map_err(maybe)?;
    s.write_all(body).map_err(maybe)?;
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => {}
        // A TLS server that closes without close_notify after a complete
        // answer: what arrived is judged by `parse`.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(maybe(e)),
    }
    parse(&raw).ok_or_else(|| HttpError::MaybeSent("malformed or cut-off response".into()))
}

/// Status and body of a complete response (`Content-Length`, chunked, or
/// to the end of the connection).
fn parse(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split])
        .ok()?
        .to_ascii_lowercase();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let rest = &raw[split + 4..];
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
    };
    if header("transfer-encoding") == Some("chunked") {
        return Some((status, dechunk(rest)?));
    }
    match header("content-length") {
        Some(n) => {
            let n: usize = n.parse().ok()?;
            Some((status, rest.get(..n)?.to_vec()))
        }
        None => Some((status, rest.to_vec())),
    }
}

/// The body of a chunked transfer; `None` if it was cut off.
fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_and_chunked_bodies_parse() {
        let plain = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nokEXTRA";
        assert_eq!(parse(plain), Some((201, b"ok".to_vec())));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse(chunked), Some((200, b"abcde".to_vec())));
    }

    #[test]
    fn a_cut_off_response_is_no_response() {
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"),
            None
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab"),
            None
        );
        assert_eq!(parse(b"HTTP/1.1 200"), None);
    }

    #[test]
    fn a_refused_connection_was_not_sent() {
        // Bind and drop: the port is closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = request(port, "GET", "/", &[], b"", Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, HttpError::NotSent(_)), "{e:?}");
    }
}
