//! Ctrl-C and SIGTERM while a job runs on an account vault.
//!
//! A job left "running" in the account's job log would hold off `prune` on
//! its vault for a day (the server must take an unfinished backup for a live
//! one). So `cairn` takes the two signals itself: they are blocked in every
//! thread and one thread waits for them. When one arrives while a job is
//! running (registered with the library's [`CancelToken`] by
//! `JobLog::start`), the job is recorded as cancelled (waiting a few
//! seconds at most), then the process exits with 128 + the signal number,
//! as a shell expects. Stopping at any point is safe: every vault is
//! crash-consistent (an interrupted backup leaves unreferenced chunks only,
//! no snapshot).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, OnceLock};
use std::time::Duration;

use cairn_client::jobs::{CancelToken, PendingCancel};

/// The running job a signal records as cancelled.
static CANCEL: CancelToken = CancelToken::new();

/// Set instead of exiting, when a long-running command (`cairn daemon`)
/// stops by itself.
static STOP: OnceLock<&'static AtomicBool> = OnceLock::new();

/// Makes SIGINT and SIGTERM set `flag` instead of ending the process.
pub fn stop_on_signal(flag: &'static AtomicBool) {
    let _ = STOP.set(flag);
}

/// Records a job's end on its own thread, waiting [`RECORD_FOR`] at most.
fn record(
    job: PendingCancel,
    how: impl FnOnce(PendingCancel) -> cairn_client::Result<()> + Send + 'static,
) {
    let (done, wait) = mpsc::channel();
    std::thread::spawn(move || {
        if let Err(e) = how(job) {
            eprintln!("warning: could not record the job's end: {e}");
        }
        let _ = done.send(());
    });
    let _ = wait.recv_timeout(RECORD_FOR);
}

/// The token job logs register their running job with.
pub fn cancel_token() -> &'static CancelToken {
    &CANCEL
}

/// How long the job record may take before the process exits anyway.
const RECORD_FOR: Duration = Duration::from_secs(5);

/// Blocks SIGINT and SIGTERM and starts the thread that waits for them.
/// Call first thing in `main`, before any other thread exists, so that
/// every later thread inherits the mask.
pub fn install() {
    // SAFETY: plain libc signal-set calls on a zeroed, owned `sigset_t`.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return; // the default handling stays in place
        }
        set
    };
    std::thread::spawn(move || loop {
        let mut signal = 0;
        // SAFETY: `set` is a valid signal set; `signal` is a valid out pointer.
        if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
            continue;
        }
        let name = if signal == libc::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        if let Some(stop) = STOP.get() {
            stop.store(true, Ordering::SeqCst);
            continue;
        }
        if let Some(job) = CANCEL.take() {
            eprintln!("interrupted ({name}): recording the job as cancelled");
            record(job, move |j| j.record(name));
        }
        std::process::exit(128 + signal);
    });
}
