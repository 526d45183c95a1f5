//! Raft RPC bodies as the node decodes them: `bincode::deserialize` (the
//! legacy configuration of `node/src/http.rs` `decode`) of openraft's
//! AppendEntries, Vote and InstallSnapshot requests over Cairn's
//! `TypeConfig`, a forwarded proposal (`/raft/propose`) and removal
//! (`/raft/remove-node`); and the answers a leader or forwarding follower
//! decodes (`node/src/network.rs` `post_bincode`, `node/src/app.rs`). The
//! first byte picks the body.
//!
//! Protects: no panic and no allocation beyond the input for any body from
//! a peer, a stable round trip, and that what the node then reads off a
//! decoded request (membership of entries, snapshot chunk bounds) can be
//! read without panicking.
#![no_main]

use cairn_consensus::{ClusterNode, NodeId, Outcome, Request, TypeConfig};
use cairn_fuzz::{bincode_legacy as de, selector};
use cairn_node::error::ForwardedError;
use cairn_proto::admin::RemoveResponse;
use libfuzzer_sys::fuzz_target;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{EntryPayload, Membership, MessageSummary};

type Answer<T, E = openraft::error::Infallible> = Result<T, RaftError<NodeId, E>>;

fn membership(m: &Membership<NodeId, ClusterNode>) {
    let voters: Vec<NodeId> = m.voter_ids().collect();
    let learners: Vec<NodeId> = m.learner_ids().collect();
    assert!(learners.iter().all(|l| !voters.contains(l)));
    for (id, node) in m.nodes() {
        assert_eq!(m.get_node(id), Some(node));
    }
    let _ = m.get_joint_config().len();
}

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = selector(data) else {
        return;
    };
    match which % 12 {
        0 => {
            if let Some(rpc) = de::<AppendEntriesRequest<TypeConfig>>(body) {
                for entry in &rpc.entries {
                    if let EntryPayload::Membership(m) = &entry.payload {
                        membership(m);
                    }
                }
                let _ = rpc.summary();
            }
        }
        1 => {
            if let Some(rpc) = de::<VoteRequest<NodeId>>(body) {
                let _ = rpc.to_string();
            }
        }
        2 => {
            if let Some(rpc) = de::<InstallSnapshotRequest<TypeConfig>>(body) {
                // What `check_snapshot_chunk` computes before openraft sees it.
                let _ = rpc.offset.checked_add(rpc.data.len() as u64);
                membership(rpc.meta.last_membership.membership());
                let _ = rpc.to_string();
            }
        }
        3 => drop(de::<Request>(body)),
        4 => drop(de::<u64>(body)),
        5 => drop(de::<Answer<AppendEntriesResponse<NodeId>>>(body)),
        6 => drop(de::<Answer<VoteResponse<NodeId>>>(body)),
        7 => drop(de::<
            Answer<InstallSnapshotResponse<NodeId>, InstallSnapshotError>,
        >(body)),
        8 => drop(de::<Result<(u64, Outcome), String>>(body)),
        9 => drop(de::<Result<Option<u64>, String>>(body)),
        10 => drop(de::<Result<RemoveResponse, ForwardedError>>(body)),
        _ => drop(de::<Result<Option<u64>, String>>(body)),
    }
});
