//! Network delay without `netem` (the kernel has none): an iptables rule in
//! a node's namespace sends every packet it emits to NFQUEUE, and a thread
//! of the harness, moved into that namespace (netlink queues are per
//! namespace), holds each packet for the delay before accepting it.
//! `--queue-bypass` on the rule fails open: once the thread is gone,
//! packets flow undelayed.

use std::collections::VecDeque;
use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::JepsenError;

/// How many queue numbers a delayer tries (queues are per namespace). A
/// queue some other socket still holds refuses the bind with `EPERM`
/// (a 10-minute run once met one in a node's namespace): the delayer
/// takes the next free number and the delay rule names it.
const QUEUES: u16 = 16;

/// A running delayer; stopped on drop.
#[derive(Debug)]
pub struct Delayer {
    queue: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Delayer {
    /// Starts holding, for `delay`, every packet queued in namespace `ns`
    /// to the first free queue number ([`Delayer::queue`]). Answers once
    /// the queue is bound.
    pub fn start(ns: &str, delay: Duration) -> Result<Delayer, JepsenError> {
        let path = format!("/var/run/netns/{ns}");
        let f = File::open(&path).map_err(JepsenError::io(format!("opening {path}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // SAFETY: setns on an open namespace fd; it moves only this thread.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                let e = format!("setns: {}", std::io::Error::last_os_error());
                let _ = ready_tx.send(Err(e.clone()));
                return Err(e);
            }
            let (number, mut q) = match open_free_queue() {
                Ok(q) => q,
                Err(e) => {
                    let e = format!("binding an NFQUEUE: {e}");
                    let _ = ready_tx.send(Err(e.clone()));
                    return Err(e);
                }
            };
            let _ = ready_tx.send(Ok(number));
            hold(&mut q, delay, &flag).map_err(|e| e.to_string())
        });
        match ready_rx.recv() {
            Ok(Ok(queue)) => Ok(Delayer {
                queue,
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(JepsenError::Setup(e)),
            Err(_) => Err(JepsenError::Setup("the delayer thread died".into())),
        }
    }

    /// The queue number this delayer holds (for the delay rule).
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

/// Binds the first queue number below [`QUEUES`] no other socket holds.
fn open_free_queue() -> std::io::Result<(u16, nfq::Queue)> {
    let mut last = None;
    for number in 0..QUEUES {
        let mut q = nfq::Queue::open()?;
        match q.bind(number) {
            Ok(()) => {
                q.set_nonblocking(true);
                return Ok((number, q));
            }
            Err(e) if e.kind() == ErrorKind::PermissionDenied => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no queue numbers to try")))
}

/// Accepts each queued packet `delay` after it arrived, until `stop`.
fn hold(q: &mut nfq::Queue, delay: Duration, stop: &AtomicBool) -> std::io::Result<()> {
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    while !stop.load(Ordering::Relaxed) {
        loop {
            match q.recv() {
                Ok(mut m) => {
                    m.set_verdict(nfq::Verdict::Accept);
                    held.push_back((Instant::now() + delay, m));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let now = Instant::now();
        while held.front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, m)) = held.pop_front() {
                q.verdict(m)?;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // What is still held goes out now.
    for (_, m) in held {
        q.verdict(m)?;
    }
    Ok(())
}

impl Drop for Delayer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
