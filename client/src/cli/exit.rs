//! How a `cairn` command ends: its exit code (0 ok, 1 error, 2 usage, 3
//! wrong password or credentials refused, 4 data integrity, 5 backup saved
//! but incomplete), its error on stderr (under `--json` one JSON document
//! with a stable `code`, usage errors included), and a closed stdout
//! (`cairn ls | head`) ending the command quietly with 0. Kept apart from
//! `main` so the binary only parses and dispatches.

use std::process::ExitCode;

use cairn_client::Error;
use serde::Serialize;

/// Exit code of a usage error (clap's).
const USAGE: u8 = 2;

/// Ends a command whose arguments did not parse: under `--json` a usage
/// error is a JSON document with code `usage` (help and `--version` still
/// print as text); otherwise clap prints and exits as it does.
pub fn usage_failure(e: clap::Error, json: bool) -> ExitCode {
    if !(json && e.use_stderr()) {
        e.exit()
    }
    let text = e.kind().to_string();
    let message = e.to_string();
    let first = message.lines().next().unwrap_or(&text);
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("{}", error_json(first, "usage", USAGE));
    ExitCode::from(USAGE)
}

/// Ends a command that ran: its own exit code, or its error printed (as
/// JSON under `--json`) with the exit code of its kind.
pub fn finish(result: anyhow::Result<u8>, json: bool) -> ExitCode {
    let e = match result {
        Ok(code) => return ExitCode::from(code),
        // The reader went away (`cairn ls | head`): nothing left to say.
        Err(e) if is_broken_pipe(&e) => return ExitCode::SUCCESS,
        Err(e) => e,
    };
    let cause = e.downcast_ref::<Error>();
    let code = cause.map_or(1, exit_code);
    let message = message(&e);
    if json {
        let kind = cause.map_or("error", error_code);
        eprintln!("{}", error_json(&message, kind, code));
    } else {
        eprintln!("error: {message}");
    }
    ExitCode::from(code)
}

/// The one-line JSON document of a failed command (printed on stderr):
/// the message, a stable `code` and the exit code.
fn error_json(error: &str, code: &str, exit_code: u8) -> String {
    #[derive(Serialize)]
    struct Failed<'a> {
        error: &'a str,
        code: &'a str,
        exit_code: u8,
    }
    serde_json::to_string(&Failed {
        error,
        code,
        exit_code,
    })
    .unwrap_or_default()
}

/// Whether `e` is a failed write to a closed stdout: a bare IO or JSON
/// error, as the printing code returns them (an EPIPE inside a library
/// error, e.g. from a server connection, is a real failure).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let kind = e
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind)
        .or_else(|| e.downcast_ref::<serde_json::Error>()?.io_error_kind());
    kind == Some(std::io::ErrorKind::BrokenPipe)
}

/// The error and its causes on one line, each cause said once (a cause
/// its error's text already ends with is not repeated).
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for c in e.chain() {
        let text = c.to_string();
        if !out.ends_with(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

/// The exit code of a failed command: 3 when the password or the device's
/// credentials were refused, 4 when stored data is damaged, 1 otherwise.
fn exit_code(e: &Error) -> u8 {
    match e {
        Error::WrongPassword | Error::Auth(_) => 3,
        e if e.is_damaged_data() => 4,
        Error::JobNotRecorded(cause) => exit_code(cause),
        _ => 1,
    }
}

/// The stable `code` of a failed command's JSON error.
fn error_code(e: &Error) -> &'static str {
    match e {
        Error::WrongPassword => "wrong_password",
        Error::Auth(_) => "auth",
        e if e.is_damaged_data() => "damaged",
        Error::NotFound(_) => "not_found",
        Error::Invalid(_) => "invalid",
        Error::PoolUnavailable(_) => "pool_unavailable",
        Error::JobNotRecorded(cause) => error_code(cause),
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_map_to_exit_codes() {
        assert_eq!(exit_code(&Error::WrongPassword), 3);
        assert_eq!(exit_code(&Error::Auth("refused".into())), 3);
        assert_eq!(exit_code(&Error::Integrity("bad".into())), 4);
        assert_eq!(exit_code(&Error::Invalid("no".into())), 1);
        assert_eq!(exit_code(&Error::Network("down".into())), 1);
        let unrecorded = Error::JobNotRecorded(Box::new(Error::Auth("revoked".into())));
        assert_eq!(exit_code(&unrecorded), 3);
        assert_eq!(error_code(&unrecorded), "auth");
    }

    #[test]
    fn a_cause_is_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = io.to_string();
        let e = anyhow::Error::from(Error::io("open", std::path::Path::new("/x"), io));
        assert_eq!(message(&e), format!("open /x: {text}"));
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(message(&e), "outer: inner");
        let pipe = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(
            &anyhow::Error::from(pipe()).context("write")
        ));
        let upload = Error::io("upload", std::path::Path::new("/x"), pipe());
        assert!(!is_broken_pipe(&anyhow::Error::from(upload)));
    }

    #[test]
    fn a_json_error_names_its_code_and_exit_code() {
        let doc: serde_json::Value =
            serde_json::from_str(&error_json("no \"x\"", "usage", USAGE)).unwrap();
        assert_eq!(doc["error"], "no \"x\"");
        assert_eq!(doc["code"], "usage");
        assert_eq!(doc["exit_code"], 2);
    }
}
