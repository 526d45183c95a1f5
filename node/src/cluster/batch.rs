//! Proposal batching: the writes that reach the leader while its previous
//! entry is being written share one log entry ([`Event::Batch`]).
//!
//! openraft 0.9 writes each client write as its own entry and waits for that
//! entry's fsync before it takes the next one, so one entry per write caps a
//! leader at one write per fsync whatever the concurrency. Here every local
//! write goes through one queue: a task takes the first waiting write, then
//! everything queued behind it (up to [`MAX_BATCH`]), and proposes them as
//! one entry, with at most [`IN_FLIGHT`] entries in flight. Under load the
//! queue fills while an entry is on its way, so entries grow with the load;
//! a lone write is proposed as itself, with no delay and no wrapper.
//!
//! Each request keeps its own request id, dedup and outcome (the state
//! machine applies a batch as if each request had its own entry), so a
//! caller retrying a write whose batch failed with an unknown result is
//! deduplicated like any retry. A batch that fails fails all its writes
//! with the same error: not the leader (each caller then forwards its own
//! write), or the Raft error.

use std::sync::Arc;

use cairn_consensus::{ClusterNode, Event, NodeId, Outcome, Raft, Request, RequestId};
use openraft::error::{ClientWriteError, ForwardToLeader, RaftError};
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Most writes in one entry: bounds an entry's size (and so one append
/// request to a follower) while leaving room for a few hundred writers.
pub const MAX_BATCH: usize = 256;

/// Entries proposed through the batcher and not yet answered. Two keep the
/// leader's core busy (one written while the next forms) without letting
/// entries stay small under load.
pub const IN_FLIGHT: usize = 2;

/// Why a write through the [`Batcher`] failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// This node is not the leader; the write may be forwarded.
    #[error("{0}")]
    NotLeader(ForwardToLeader<NodeId, ClusterNode>),
    /// Raft refused the write (reported as is).
    #[error("{0}")]
    Refused(String),
    /// Raft stopped on this node.
    #[error("{0}")]
    Fatal(String),
}

impl From<RaftError<NodeId, ClientWriteError<NodeId, ClusterNode>>> for WriteError {
    fn from(e: RaftError<NodeId, ClientWriteError<NodeId, ClusterNode>>) -> Self {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => WriteError::NotLeader(f),
            RaftError::APIError(e) => WriteError::Refused(e.to_string()),
            RaftError::Fatal(f) => WriteError::Fatal(f.to_string()),
        }
    }
}

/// A written request: its entry's log index and its own outcome.
pub type Written = Result<(u64, Outcome), WriteError>;

/// One write waiting for its entry.
struct Pending {
    request: Request,
    reply: oneshot::Sender<Written>,
}

/// The queue in front of this node's Raft. Dropping it ends the task that
/// drains it (after the entries in flight are answered).
pub struct Batcher {
    queue: mpsc::UnboundedSender<Pending>,
}

impl Batcher {
    /// Starts the task that proposes the queued writes to `raft`.
    pub fn start(raft: Raft) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(drain(raft, waiting));
        Self { queue }
    }

    /// Proposes `request` on this node (alone or with others queued at the
    /// same time) and answers once this node has applied its entry.
    pub async fn write(&self, request: Request) -> Written {
        let (reply, answer) = oneshot::channel();
        let stopped = || WriteError::Fatal("the proposal queue stopped".into());
        self.queue
            .send(Pending { request, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Takes the first waiting write, waits for a free slot, then takes what
/// queued up meanwhile and proposes it all as one entry.
async fn drain(raft: Raft, mut waiting: mpsc::UnboundedReceiver<Pending>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = waiting.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            propose(&raft, batch).await;
            drop(slot);
        });
    }
}

/// Proposes `batch` as one entry and answers each write with its outcome.
async fn propose(raft: &Raft, batch: Vec<Pending>) {
    let (mut requests, replies): (Vec<Request>, Vec<_>) =
        batch.into_iter().map(|p| (p.request, p.reply)).unzip();
    let count = requests.len();
    let entry = match requests.pop() {
        Some(one) if requests.is_empty() => one,
        last => {
            requests.extend(last);
            Request {
                request_id: RequestId::random(),
                event: Event::Batch(requests),
            }
        }
    };
    // A caller that gave up is not told: nobody is left to hear it.
    match raft.client_write(entry).await {
        Ok(resp) if resp.data.len() == count => {
            let index = resp.log_id.index;
            for (reply, outcome) in replies.into_iter().zip(resp.data) {
                let _ = reply.send(Ok((index, outcome)));
            }
        }
        Ok(resp) => {
            let e = WriteError::Refused(format!(
                "an entry of {count} writes was answered with {} outcomes",
                resp.data.len()
            ));
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
        Err(e) => {
            let e = WriteError::from(e);
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
