//! JSON bodies of the HTTP API, parsed with serde_json as axum's `Json`
//! extractor (the node, from devices and operators) and the client's API
//! replies (the client, from a server it does not trust) parse them: every
//! `cairn_proto::api` type, the node's admin and cluster bodies
//! (`cairn_proto::admin`), and the client's own JSON files
//! (`vault.json`, the account profile). The first byte picks the type.
//!
//! Protects: no panic and no allocation beyond the input for any body; a
//! stable JSON round trip; and the server's key derivation parameters
//! (`login/params`) are refused beyond the client's bounds before argon2
//! would allocate them.
#![no_main]

use cairn_client::remote::config::Profile;
use cairn_client::remote::session::kdf_params;
use cairn_client::vault::VaultConfig;
use cairn_fuzz::{json, selector};
use cairn_proto::admin as node;
use cairn_proto::admin::{DrainRequest, DrainResponse};
use cairn_proto::api::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = selector(data) else {
        return;
    };
    match which % 48 {
        0 => {
            if let Some(kdf) = json::<Kdf>(body) {
                if let Ok(params) = kdf_params(&kdf) {
                    assert!(params.memory_kib <= 2 * 1024 * 1024);
                    assert!(params.iterations <= 64);
                    assert!(params.salt.len() >= 8);
                }
            }
        }
        1 => drop(json::<SweepReply>(body)),
        2 => drop(json::<ErrorBody>(body)),
        3 => drop(json::<LoginParamsRequest>(body)),
        4 => drop(json::<LoginRequest>(body)),
        5 => drop(json::<LoginReply>(body)),
        6 => drop(json::<AccountInfo>(body)),
        7 => drop(json::<RewrappedKeys>(body)),
        8 => drop(json::<PasswordChange>(body)),
        9 => drop(json::<Vec<DeviceInfo>>(body)),
        10 => drop(json::<RenameDevice>(body)),
        11 => drop(json::<Vec<TierInfo>>(body)),
        12 => drop(json::<CreateVault>(body)),
        13 => drop(json::<Vec<VaultInfo>>(body)),
        14 => drop(json::<SnapshotStats>(body)),
        15 => drop(json::<CommitSnapshot>(body)),
        16 => drop(json::<Vec<SnapshotInfo>>(body)),
        17 => drop(json::<UploadReply>(body)),
        18 => drop(json::<PutItem>(body)),
        19 => drop(json::<Vec<ItemInfo>>(body)),
        20 => drop(json::<JobKind>(body)),
        21 => drop(json::<JobStatus>(body)),
        22 => drop(json::<StartJob>(body)),
        23 => drop(json::<FinishJob>(body)),
        24 => drop(json::<Vec<JobInfo>>(body)),
        25 => drop(json::<node::CreateUser>(body)),
        26 => drop(json::<Vec<node::UserInfo>>(body)),
        27 => drop(json::<node::DefineTier>(body)),
        28 => drop(json::<node::JoinRequest>(body)),
        29 => drop(json::<node::JoinResponse>(body)),
        30 => drop(json::<node::ClusterStatus>(body)),
        31 => drop(json::<Vec<node::TierInfo>>(body)),
        32 => drop(json::<node::RemoveRequest>(body)),
        33 => drop(json::<node::RemoveResponse>(body)),
        34 => drop(json::<DrainRequest>(body)),
        35 => drop(json::<DrainResponse>(body)),
        36 => drop(json::<VaultConfig>(body)),
        37 => drop(json::<Profile>(body)),
        38 => drop(json::<DeviceInfo>(body)),
        39 => drop(json::<VaultInfo>(body)),
        40 => drop(json::<SnapshotInfo>(body)),
        41 => drop(json::<JobInfo>(body)),
        42 => drop(json::<ItemInfo>(body)),
        43 => drop(json::<TierInfo>(body)),
        _ => {}
    }
});
