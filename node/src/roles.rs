//! Server roles (issue 13): which of `auth`, `storage`, `cluster` and
//! `downloads` a node runs, so that each can be scaled apart — more disk is
//! another storage node without more user handling, more accounts another
//! auth node without more disk.
//!
//! A node keeps its roles and storage labels in `node.json`
//! ([`NodeIdentity`](crate::config::NodeIdentity)) and records them in the
//! replicated state ([`Event::NodeProfileSet`](cairn_consensus::Event)), so
//! every node can name the nodes that serve a role it does not. The
//! decisions here are pure: parsing and checking a role set, how a node
//! joins (voter or learner), and which nodes serve a role.
//!
//! | role | what the node does | Raft |
//! |---|---|---|
//! | `auth` | device and admin API (accounts, vaults, tokens) | voter (up to the cap) |
//! | `storage` | `DATA_DIR/chunks`, a placement target | learner unless also `auth` |
//! | `cluster` | repair, rebalancing, abandoned jobs, the lease: on the leader | needs `auth` |
//! | `downloads` | `GET /download/`: pre-configured clients | any |

use std::collections::{BTreeMap, BTreeSet};

use cairn_consensus::event::Role;
use cairn_consensus::state::Topology;
use cairn_consensus::NodeId;

use crate::error::NodeError;

/// Every role: what a node runs unless told otherwise.
pub fn all() -> BTreeSet<Role> {
    Role::ALL.into_iter().collect()
}

/// Parses a role list (`auth,storage`); names are case-insensitive.
///
/// # Errors
///
/// [`NodeError::Config`] naming an unknown role or an empty list.
pub fn parse(names: &[String]) -> Result<BTreeSet<Role>, NodeError> {
    let mut roles = BTreeSet::new();
    for name in names.iter().flat_map(|n| n.split(',')) {
        if name.trim().is_empty() {
            continue;
        }
        let role = Role::parse(name).ok_or_else(|| {
            NodeError::Config(format!(
                "unknown role {name:?}: the roles are auth, storage, cluster and downloads"
            ))
        })?;
        roles.insert(role);
    }
    if roles.is_empty() {
        return Err(NodeError::Config(
            "--roles needs at least one role (auth, storage, cluster, downloads)".into(),
        ));
    }
    Ok(roles)
}

/// Parses storage labels (`ssd,eu-west`), trimmed and lowercased; the
/// state machine checks their form when the node records them.
pub fn parse_labels(names: &[String]) -> BTreeSet<String> {
    names
        .iter()
        .flat_map(|n| n.split(','))
        .map(|l| l.trim().to_ascii_lowercase())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Checks a node's roles and labels before it starts: `cluster` runs only
/// on an auth voter (the leader), labels belong to a storage node, and a
/// node that founds a cluster (`init`) is its first voter, so it needs
/// `auth`.
///
/// # Errors
///
/// [`NodeError::Config`] saying what to change.
pub fn check(
    roles: &BTreeSet<Role>,
    labels: &BTreeSet<String>,
    founding: bool,
) -> Result<(), NodeError> {
    if roles.contains(&Role::Cluster) && !roles.contains(&Role::Auth) {
        return Err(NodeError::Config(
            "the cluster role runs on the Raft leader, an auth voter: add auth to --roles \
             or drop cluster"
                .into(),
        ));
    }
    if !labels.is_empty() && !roles.contains(&Role::Storage) {
        return Err(NodeError::Config(
            "--storage-labels needs the storage role".into(),
        ));
    }
    if founding && !roles.contains(&Role::Auth) {
        return Err(NodeError::Config(
            "`cairnd init` founds a cluster whose first voter it is: its roles need auth \
             (and cluster); start storage-only nodes with `cairnd serve --join`"
                .into(),
        ));
    }
    Ok(())
}

/// Whether a node with `roles` may vote: only auth nodes do, so storage
/// nodes never change the quorum.
pub fn votes(roles: &BTreeSet<Role>) -> bool {
    roles.contains(&Role::Auth)
}

/// The role names, in canonical order (for JSON and the join request).
pub fn names(roles: &BTreeSet<Role>) -> Vec<String> {
    roles.iter().map(|r| r.name().to_string()).collect()
}

/// The members (`id → address`) that serve `role`, by the recorded
/// profiles (a member without one serves every role).
pub fn serving(
    members: &BTreeMap<NodeId, String>,
    topology: &Topology,
    role: Role,
) -> Vec<(NodeId, String)> {
    members
        .iter()
        .filter(|(id, _)| topology.has_role(**id, role))
        .map(|(id, addr)| (*id, addr.clone()))
        .collect()
}

/// The message of a request for `role` on node `me`, which does not run
/// it: which nodes do, so the caller (or its operator) can go there.
pub fn not_served(me: NodeId, role: Role, serving: &[(NodeId, String)]) -> String {
    if serving.is_empty() {
        return format!("node {me} does not run the {role} role, and no member does");
    }
    let list: Vec<String> = serving
        .iter()
        .map(|(id, addr)| format!("node {id} ({addr})"))
        .collect();
    format!(
        "node {me} does not run the {role} role; nodes that do: {}",
        list.join(", ")
    )
}

/// The labelled tiers that the live storage nodes cannot satisfy: fewer
/// active nodes carrying their labels, leaving out `down` (the nodes the
/// leader's last repair pass could not reach), than they keep copies.
/// Backups to these tiers fail until nodes return or join.
pub fn unsatisfiable_tiers(state: &cairn_consensus::State, down: &[NodeId]) -> Vec<String> {
    state
        .tiers()
        .values()
        .filter_map(|t| {
            let labels = state.topology().tier_labels(&t.name)?;
            let live = state
                .pool(labels)
                .into_iter()
                .filter(|n| !down.contains(n))
                .count();
            (live < usize::from(t.replicas)).then(|| t.name.clone())
        })
        .collect()
}

/// The message of an upload to `vault` that no node could take: its
/// tier and the labels of its pool, and that other tiers go on. `None`
/// for a vault the state does not have.
pub fn pool_down(state: &cairn_consensus::State, vault: cairn_proto::VaultId) -> Option<String> {
    let tier = &state.vaults().get(&vault)?.tier;
    let pool = match state.topology().tier_labels(tier) {
        Some(labels) if !labels.is_empty() => format!(
            "the storage nodes labelled {}",
            labels.iter().cloned().collect::<Vec<_>>().join(",")
        ),
        _ => "every storage node".to_string(),
    };
    Some(format!(
        "tier {tier}'s storage pool ({pool}) is down: backups to its vaults fail until          those nodes return; vaults of other tiers are unaffected"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn role_lists_parse_with_commas_and_case() {
        let r = parse(&strings(&["Auth,cluster", " storage "])).expect("roles");
        assert_eq!(r, [Role::Auth, Role::Storage, Role::Cluster].into());
        assert!(parse(&strings(&["auth,disk"])).is_err());
        assert!(parse(&strings(&[""])).is_err());
        assert_eq!(
            parse_labels(&strings(&["SSD, eu-west", ""])),
            ["ssd".to_string(), "eu-west".to_string()].into()
        );
    }

    #[test]
    fn cluster_needs_auth_and_labels_need_storage() {
        let roles = |v: &[Role]| v.iter().copied().collect::<BTreeSet<_>>();
        let none = BTreeSet::new();
        let ssd: BTreeSet<String> = ["ssd".to_string()].into();
        assert!(check(&roles(&[Role::Cluster]), &none, false).is_err());
        assert!(check(&roles(&[Role::Auth]), &ssd, false).is_err());
        assert!(check(&roles(&[Role::Storage]), &ssd, false).is_ok());
        assert!(check(&roles(&[Role::Storage]), &ssd, true).is_err(), "init");
        assert!(check(&all(), &ssd, true).is_ok());
        assert!(votes(&roles(&[Role::Auth, Role::Downloads])));
        assert!(!votes(&roles(&[Role::Storage, Role::Downloads])));
    }

    #[test]
    fn the_error_names_the_nodes_that_serve_the_role() {
        let members: BTreeMap<NodeId, String> = [
            (1, "http://a".to_string()),
            (2, "http://b".to_string()),
            (3, "http://c".to_string()),
        ]
        .into();
        let mut state = cairn_consensus::State::default();
        let profile = |node, roles: &[Role]| cairn_consensus::Request {
            request_id: cairn_consensus::RequestId([node as u8; 16]),
            event: cairn_consensus::Event::NodeProfileSet {
                node,
                roles: roles.iter().copied().collect(),
                labels: BTreeSet::new(),
                at: cairn_consensus::UnixMillis(1),
            },
        };
        assert!(cairn_consensus::apply(&mut state, &profile(1, &[Role::Auth])).is_applied());
        assert!(cairn_consensus::apply(&mut state, &profile(2, &[Role::Storage])).is_applied());
        let auth = serving(&members, state.topology(), Role::Auth);
        assert_eq!(
            auth,
            vec![(1, "http://a".to_string()), (3, "http://c".to_string())],
            "node 3 has no profile: every role"
        );
        let message = not_served(2, Role::Auth, &auth);
        assert!(message.contains("node 1 (http://a)") && message.contains("node 3"));
        assert!(not_served(2, Role::Downloads, &[]).contains("no member"));
    }

    #[test]
    fn a_pooled_tier_is_unsatisfiable_when_too_few_of_its_nodes_are_live() {
        use cairn_consensus::{apply, Event, Request, RequestId, UnixMillis};
        let mut state = cairn_consensus::State::default();
        let mut n = 0u8;
        let mut run = |state: &mut cairn_consensus::State, event: Event| {
            n += 1;
            apply(
                state,
                &Request {
                    request_id: RequestId([n; 16]),
                    event,
                },
            )
        };
        for (node, label) in [(1, "ssd"), (2, "ssd"), (3, "hdd")] {
            let labels: BTreeSet<String> = [label.to_string()].into();
            let profile = Event::NodeProfileSet {
                node,
                roles: [Role::Storage].into(),
                labels,
                at: UnixMillis(1),
            };
            assert!(run(&mut state, profile).is_applied());
            let joined = Event::StorageNodeJoined {
                node,
                addr: format!("http://n{node}"),
                at: UnixMillis(1),
            };
            assert!(run(&mut state, joined).is_applied());
        }
        let tier = |replicas, label: &str| Event::TierPooled {
            name: format!("{label}{replicas}"),
            replicas,
            requestable: true,
            quota_bytes: None,
            description: String::new(),
            labels: [label.to_string()].into(),
            at: UnixMillis(2),
        };
        assert!(run(&mut state, tier(2, "ssd")).is_applied());
        assert!(
            !run(&mut state, tier(2, "hdd")).is_applied(),
            "one hdd node cannot hold two copies"
        );
        assert!(unsatisfiable_tiers(&state, &[]).is_empty());
        assert!(unsatisfiable_tiers(&state, &[3]).is_empty());
        assert_eq!(unsatisfiable_tiers(&state, &[2]), vec!["ssd2".to_string()]);
    }
}
