//! A scripted malicious server: an HTTP/1.1 relay in front of a real node
//! that passes requests through and lets a test rewrite chosen answers (or
//! replace them with an endless body), recording every request it saw.
//!
//! Each request is forwarded on a fresh connection with `Connection: close`,
//! and each answer goes back with `Connection: close` too, so the relay
//! never has to track keep-alive state: the client simply reconnects.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request as the client sent it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// The node's answer, for the tamper function to rewrite.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers other than framing ones (`content-length`,
    /// `transfer-encoding`, `connection`), which the relay sets itself.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Instead of `body`, stream this many filler bytes; with
    /// `announce_len` the length is sent as `Content-Length`, otherwise the
    /// body ends only when the connection closes.
    pub endless: Option<u64>,
    /// See `endless`.
    pub announce_len: bool,
}

impl Answer {
    /// A JSON answer made up by the relay.
    pub fn with_json(status: u16, v: &serde_json::Value) -> Self {
        Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(v).expect("encode JSON"),
            endless: None,
            announce_len: false,
        }
    }

    /// The body as JSON (panics if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON answer")
    }

    /// Replaces the body with `v`.
    pub fn set_json(&mut self, v: &serde_json::Value) {
        self.body = serde_json::to_vec(v).expect("encode JSON");
    }
}

/// Empties the node list of a login or account answer, so the client knows
/// only the relay and cannot fail over around it to the real node.
pub fn hide_other_nodes(r: &Request, a: &mut Answer) {
    let reports_nodes = matches!(r.path.as_str(), "/api/v1/login" | "/api/v1/account");
    if reports_nodes && a.status == 200 {
        let mut v = a.json();
        v["nodes"] = serde_json::json!([]);
        a.set_json(&v);
    }
}

type Tamper = dyn Fn(&Request, &mut Answer) + Send + Sync;
type Intercept = dyn Fn(&Request) -> Option<Answer> + Send + Sync;

/// The relay; stops accepting when dropped (the listener thread ends with
/// the test process).
pub struct HostileServer {
    /// Its loopback port.
    pub port: u16,
    seen: Arc<Mutex<Vec<Request>>>,
}

impl HostileServer {
    /// Relays to `127.0.0.1:target`, letting `tamper` rewrite each answer.
    pub fn start(
        target: u16,
        tamper: impl Fn(&Request, &mut Answer) + Send + Sync + 'static,
    ) -> Self {
        Self::start_with(target, |_| None, tamper)
    }

    /// Like [`HostileServer::start`], but `intercept` may answer a request
    /// itself, without the node ever seeing it.
    pub fn start_with(
        target: u16,
        intercept: impl Fn(&Request) -> Option<Answer> + Send + Sync + 'static,
        tamper: impl Fn(&Request, &mut Answer) + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind hostile server");
        let port = listener.local_addr().expect("local addr").port();
        let seen = Arc::new(Mutex::new(vec![]));
        let tamper: Arc<Tamper> = Arc::new(tamper);
        let intercept: Arc<Intercept> = Arc::new(intercept);
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (tamper, intercept, log) = (tamper.clone(), intercept.clone(), log.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, target, (&*intercept, &*tamper), &log);
                });
            }
        });
        HostileServer { port, seen }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<Request> {
        self.seen.lock().expect("request log").clone()
    }
}

/// Lower-cased header names and their values.
type Headers = Vec<(String, String)>;

/// Reads a request head and body from `r`: (request line, headers, body).
fn read_message(
    r: &mut BufReader<TcpStream>,
) -> std::io::Result<Option<(String, Headers, Vec<u8>)>> {
    let mut first = String::new();
    if r.read_line(&mut first)? == 0 {
        return Ok(None);
    }
    let mut headers = vec![];
    loop {
        let mut line = String::new();
        r.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = header(&headers, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Some((first.trim_end().to_string(), headers, body)))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

const FRAMING: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

fn serve(
    conn: TcpStream,
    target: u16,
    (intercept, tamper): (&Intercept, &Tamper),
    log: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut client = BufReader::new(conn.try_clone()?);
    let Some((line, headers, body)) = read_message(&mut client)? else {
        return Ok(());
    };
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let request = Request { method, path, body };
    log.lock().expect("request log").push(request.clone());
    if let Some(answer) = intercept(&request) {
        return send(conn, answer);
    }

    // Forward on a fresh connection and read the whole answer.
    let mut node = TcpStream::connect(("127.0.0.1", target))?;
    let mut head = format!("{line}\r\n");
    for (k, v) in headers
        .iter()
        .filter(|(k, _)| !FRAMING.contains(&k.as_str()))
    {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        request.body.len()
    ));
    node.write_all(head.as_bytes())?;
    node.write_all(&request.body)?;
    let mut raw = vec![];
    node.read_to_end(&mut raw)?;
    let mut answer = parse_answer(&raw);
    tamper(&request, &mut answer);
    send(conn, answer)
}

/// Writes `answer` to the client and ends the connection.
fn send(mut out: TcpStream, answer: Answer) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} X\r\n", answer.status);
    for (k, v) in &answer.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    match answer.endless {
        Some(n) => {
            if answer.announce_len {
                head.push_str(&format!("content-length: {n}\r\n"));
            }
            head.push_str("connection: close\r\n\r\n");
            out.write_all(head.as_bytes())?;
            let filler = vec![b' '; 1 << 20];
            let mut left = n;
            while left > 0 {
                let k = left.min(filler.len() as u64) as usize;
                out.write_all(&filler[..k])?;
                left -= k as u64;
            }
        }
        None => {
            head.push_str(&format!(
                "content-length: {}\r\nconnection: close\r\n\r\n",
                answer.body.len()
            ));
            out.write_all(head.as_bytes())?;
            out.write_all(&answer.body)?;
        }
    }
    out.flush()
}

/// Parses a whole HTTP/1.1 answer (Content-Length or chunked or closed).
fn parse_answer(raw: &[u8]) -> Answer {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an answer head");
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let all: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let body = if header(&all, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(rest)
    } else {
        match header(&all, "content-length").and_then(|v| v.parse::<usize>().ok()) {
            Some(n) => rest[..n.min(rest.len())].to_vec(),
            None => rest.to_vec(),
        }
    };
    Answer {
        status,
        headers: all
            .into_iter()
            .filter(|(k, _)| !FRAMING.contains(&k.as_str()))
            .collect(),
        body,
        endless: None,
        announce_len: false,
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        rest = &rest[eol + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[(size + 2).min(rest.len())..];
    }
    out
}
