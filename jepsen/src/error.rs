//! The harness's errors: what stopped a run before its checkers could
//! decide (a violation is not an error; it is a verdict).

use std::path::PathBuf;

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum JepsenError {
    /// Namespaces and iptables need root.
    #[error("cairn-jepsen needs root (it creates network namespaces, a bridge and iptables rules): run it as root, e.g. with sudo")]
    NotRoot,
    /// A system tool is not installed.
    #[error("`{0}` not found: install iproute2 and iptables (scripts/install-deps.sh does)")]
    MissingTool(&'static str),
    /// A binary given on the command line does not exist.
    #[error("{what} binary {path} does not exist")]
    MissingBinary { what: &'static str, path: PathBuf },
    /// The corrupt nemesis needs the offline tool beside `cairnd`.
    #[error("the corrupt nemesis needs cairnd-debug next to cairnd: {0} does not exist")]
    MissingDebugTool(PathBuf),
    /// The power-loss nemesis mounts a FUSE filesystem.
    #[error(
        "the power-loss nemesis needs /dev/fuse (the fuse kernel module; Debian's fuse3 package)"
    )]
    NoFuse,
    /// A setup or fault command failed.
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
    /// The cluster did not reach a state in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// A request during setup was refused.
    #[error("setup: {0}")]
    Setup(String),
    /// Ctrl-C or SIGTERM.
    #[error("interrupted")]
    Interrupted,
    /// File or process IO.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl JepsenError {
    /// An IO error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> JepsenError {
        let context = context.into();
        move |source| JepsenError::Io { context, source }
    }
}
