//! The live device connections this node holds (remote control): which
//! device is connected here, with its client version, and the commands in
//! flight on each connection waiting for the device's reply.
//!
//! The registry is per node and in memory: a connection lives as long as
//! its socket, so nothing about it is replicated. The node an admin talks
//! to finds the holder by asking the other nodes (`http::control`), so a
//! device is online exactly while one node holds its socket. A device
//! that connects again (to this node or another) replaces its older
//! connection here; a stale socket's end does not unregister the new one
//! (each registration has its own `epoch`).
//!
//! A connection over long-poll (where a proxy forbids the WebSocket
//! upgrade) has a [`PollEnd`] here besides its registration: the poll
//! requests hand the device's frames to the connection's task and take
//! what the task sends, so both transports share one task (`http::control`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use cairn_proto::control::{Action, Outcome, ToDevice};
use cairn_proto::DeviceId;
use tokio::sync::{mpsc, oneshot};

/// Messages queued for one device's socket before a sender waits.
const OUTBOX: usize = 64;

/// Why a command did not get the device's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The device holds no connection to this node.
    #[error("device {0} is not connected to this node")]
    NotHere(DeviceId),
    /// The connection ended before the device answered.
    #[error("the device's connection ended before it answered")]
    Gone,
    /// The device did not answer in time.
    #[error("the device did not answer within {0:?}")]
    Timeout(Duration),
}

/// One connected device, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// The device.
    pub device: DeviceId,
    /// Its `cairn` version, from its hello.
    pub client_version: String,
    /// When it connected, ms since the epoch.
    pub since: u64,
}

/// A registration: the socket's end of the registry.
pub struct Registration {
    /// Distinguishes this connection from a later one of the same device.
    pub epoch: u64,
    /// What to send on the socket, in order.
    pub outbox: mpsc::Receiver<ToDevice>,
}

struct Conn {
    epoch: u64,
    info: Connected,
    outbox: mpsc::Sender<ToDevice>,
    pending: HashMap<u64, oneshot::Sender<Outcome>>,
}

/// Frames buffered each way on a long-poll connection.
const POLL_QUEUE: usize = 64;

/// The requests' end of a long-poll connection (the task holds a
/// [`PollLink`]): one per session, found by its id and device.
pub struct PollEnd {
    /// The device it belongs to (another device's token finds nothing).
    pub device: DeviceId,
    /// The device's frames, to the connection's task.
    pub inbound: mpsc::Sender<Vec<u8>>,
    /// What the task sends to the device; one waiting poll takes it at a time.
    pub outbound: tokio::sync::Mutex<mpsc::Receiver<ToDevice>>,
}

/// The task's end of a long-poll connection.
pub struct PollLink {
    /// The session's id (the task forgets the session when it ends).
    pub session: String,
    /// To the device (a full queue means the device stopped polling).
    pub outbound: mpsc::Sender<ToDevice>,
    /// From the device.
    pub inbound: mpsc::Receiver<Vec<u8>>,
}

/// The devices connected to this node.
#[derive(Default)]
pub struct Connections {
    conns: Mutex<HashMap<DeviceId, Conn>>,
    polls: Mutex<HashMap<String, std::sync::Arc<PollEnd>>>,
    next: AtomicU64,
}

impl Connections {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Conn>> {
        // A panic while holding the lock leaves plain data behind.
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn polls(&self) -> std::sync::MutexGuard<'_, HashMap<String, std::sync::Arc<PollEnd>>> {
        self.polls.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a long-poll session of `device`: its random id is the
    /// device's handle for the following polls.
    pub fn open_poll(&self, device: DeviceId) -> PollLink {
        let session = hex::encode(rand::random::<[u8; 16]>());
        let (to_device, from_task) = mpsc::channel(POLL_QUEUE);
        let (to_task, from_device) = mpsc::channel(POLL_QUEUE);
        let end = PollEnd {
            device,
            inbound: to_task,
            outbound: tokio::sync::Mutex::new(from_task),
        };
        self.polls()
            .insert(session.clone(), std::sync::Arc::new(end));
        PollLink {
            session,
            outbound: to_device,
            inbound: from_device,
        }
    }

    /// `device`'s long-poll session `session`, while its task runs.
    pub fn poll_end(&self, device: DeviceId, session: &str) -> Option<std::sync::Arc<PollEnd>> {
        self.polls()
            .get(session)
            .filter(|e| e.device == device)
            .cloned()
    }

    /// Forgets a long-poll session (its task ended).
    pub fn close_poll(&self, session: &str) {
        self.polls().remove(session);
    }

    /// Registers `device`'s new connection, replacing an older one (whose
    /// outbox closes, ending its socket).
    pub fn register(&self, device: DeviceId, client_version: String, since: u64) -> Registration {
        let epoch = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(OUTBOX);
        let conn = Conn {
            epoch,
            info: Connected {
                device,
                client_version,
                since,
            },
            outbox: tx,
            pending: HashMap::new(),
        };
        self.lock().insert(device, conn);
        Registration { epoch, outbox: rx }
    }

    /// Forgets `device`'s connection `epoch` (not a newer one); its
    /// waiting commands fail with [`CommandError::Gone`].
    pub fn unregister(&self, device: DeviceId, epoch: u64) {
        let mut conns = self.lock();
        if conns.get(&device).is_some_and(|c| c.epoch == epoch) {
            conns.remove(&device);
        }
    }

    /// Hands the device's reply to the command waiting for it.
    pub fn answer(&self, device: DeviceId, epoch: u64, id: u64, outcome: Outcome) {
        let waiting = self
            .lock()
            .get_mut(&device)
            .filter(|c| c.epoch == epoch)
            .and_then(|c| c.pending.remove(&id));
        if let Some(w) = waiting {
            let _ = w.send(outcome);
        }
    }

    /// The devices connected here.
    pub fn list(&self) -> Vec<Connected> {
        let mut all: Vec<Connected> = self.lock().values().map(|c| c.info.clone()).collect();
        all.sort_by_key(|c| c.device);
        all
    }

    /// Whether `device` is connected here.
    pub fn holds(&self, device: DeviceId) -> bool {
        self.lock().contains_key(&device)
    }

    /// Sends `action` to `device` and waits up to `wait` for its answer.
    ///
    /// # Errors
    ///
    /// [`CommandError`]: not connected here, the connection ended, or no
    /// answer in time.
    pub async fn command(
        &self,
        device: DeviceId,
        action: Action,
        wait: Duration,
    ) -> Result<Outcome, CommandError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let outbox = {
            let mut conns = self.lock();
            let conn = conns
                .get_mut(&device)
                .ok_or(CommandError::NotHere(device))?;
            conn.pending.insert(id, tx);
            conn.outbox.clone()
        };
        let sent = outbox.send(ToDevice::Command { id, action });
        let answered = tokio::time::timeout(wait, async {
            sent.await.map_err(|_| CommandError::Gone)?;
            rx.await.map_err(|_| CommandError::Gone)
        })
        .await;
        if let Some(c) = self.lock().get_mut(&device) {
            c.pending.remove(&id);
        }
        answered.map_err(|_| CommandError::Timeout(wait))?
    }

    /// Tells `device` the node drops its connection, then forgets it.
    /// Whether it was connected here.
    pub fn close(&self, device: DeviceId, reason: &str) -> bool {
        let Some(conn) = self.lock().remove(&device) else {
            return false;
        };
        let _ = conn.outbox.try_send(ToDevice::Close {
            reason: reason.to_owned(),
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::control::Answer;

    fn dev(n: u8) -> DeviceId {
        DeviceId([n; 16])
    }

    #[tokio::test]
    async fn commands_get_their_own_answers_and_fail_when_the_socket_goes() {
        let c = std::sync::Arc::new(Connections::new());
        let mut reg = c.register(dev(1), "0.1.0".into(), 5);
        assert!(c.holds(dev(1)));
        assert_eq!(c.list()[0].client_version, "0.1.0");
        let device = {
            let c = c.clone();
            tokio::spawn(async move {
                let Some(ToDevice::Command { id, .. }) = reg.outbox.recv().await else {
                    panic!("no command");
                };
                c.answer(
                    dev(1),
                    reg.epoch,
                    id,
                    Outcome::Ok {
                        answer: Answer::Started,
                    },
                );
                reg
            })
        };
        let cancel = Action::Cancel {
            job: cairn_proto::JobId([1; 16]),
        };
        let got = c
            .command(dev(1), cancel.clone(), Duration::from_secs(5))
            .await;
        assert_eq!(
            got,
            Ok(Outcome::Ok {
                answer: Answer::Started
            })
        );
        let reg = device.await.expect("device task");
        // No answer: a timeout; another device: not here.
        let late = c
            .command(dev(1), cancel.clone(), Duration::from_millis(50))
            .await;
        assert_eq!(late, Err(CommandError::Timeout(Duration::from_millis(50))));
        assert_eq!(
            c.command(dev(2), cancel.clone(), Duration::from_secs(1))
                .await,
            Err(CommandError::NotHere(dev(2)))
        );
        // A newer connection survives the older one's end.
        let newer = c.register(dev(1), "0.2.0".into(), 6);
        c.unregister(dev(1), reg.epoch);
        assert!(c.holds(dev(1)));
        c.unregister(dev(1), newer.epoch);
        assert!(!c.holds(dev(1)));
        // Closing tells the device why.
        let mut third = c.register(dev(1), "0.2.0".into(), 7);
        assert!(c.close(dev(1), "bye"));
        assert_eq!(
            third.outbox.recv().await,
            Some(ToDevice::Close {
                reason: "bye".into()
            })
        );
        assert!(!c.close(dev(1), "again"));
    }

    #[tokio::test]
    async fn a_poll_session_belongs_to_its_device_until_it_closes() {
        let c = Connections::new();
        let mut link = c.open_poll(dev(1));
        assert!(
            c.poll_end(dev(2), &link.session).is_none(),
            "another device"
        );
        let end = c.poll_end(dev(1), &link.session).expect("its session");
        end.inbound
            .send(b"frame".to_vec())
            .await
            .expect("to the task");
        assert_eq!(link.inbound.recv().await, Some(b"frame".to_vec()));
        link.outbound
            .try_send(ToDevice::Ping)
            .expect("to the device");
        assert_eq!(end.outbound.lock().await.recv().await, Some(ToDevice::Ping));
        c.close_poll(&link.session);
        assert!(c.poll_end(dev(1), &link.session).is_none());
    }
}
