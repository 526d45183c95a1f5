//! Scenario tests for each rule of `apply`, and property tests for the three
//! guarantees the rest of the system relies on: determinism, rejections
//! change nothing, and a request id applies once.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::event::{JobKind, JobStatus, Period, RetentionPolicy, RetentionRange};
use crate::ids::RequestId;
use crate::state::RetentionSource;
use crate::testgen::*;

/// Applies `events` with fresh request ids 1, 2, 3… and returns the outcomes.
fn run(state: &mut State, events: &[Event]) -> Vec<Outcome> {
    let base = state.requests().len() as u32;
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&(base + i as u32 + 1).to_be_bytes());
            apply(
                state,
                &Request {
                    request_id: RequestId(id),
                    event: e.clone(),
                },
            )
        })
        .collect()
}

/// One account "alice" with device 1 and vault 1 on the `standard` tier.
fn base() -> State {
    let mut s = State::default();
    let out = run(
        &mut s,
        &[
            tier("standard", true),
            account_created(1, "alice"),
            device_registered(1, 1, "laptop"),
            vault_created(1, 1, "main", "standard"),
        ],
    );
    assert!(out.iter().all(Outcome::is_applied), "{out:?}");
    s
}

fn rejected(s: &mut State, e: Event) -> Rejection {
    let before = s.clone();
    match run(s, &[e]).pop() {
        Some(Outcome::Rejected(r)) => {
            assert!(s.same_domain(&before), "rejection changed the state");
            r
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn account_names_are_unique_and_reusable_after_delete() {
    let mut s = base();
    assert!(matches!(
        rejected(&mut s, account_created(2, "alice")),
        Rejection::NameTaken {
            kind: RecordKind::Account,
            ..
        }
    ));
    assert!(matches!(
        rejected(&mut s, account_created(1, "bob")),
        Rejection::DuplicateId {
            kind: RecordKind::Account,
            ..
        }
    ));
    assert!(matches!(
        rejected(&mut s, account_created(2, "")),
        Rejection::InvalidName { .. }
    ));
    assert!(matches!(
        rejected(&mut s, account_created(2, " padded")),
        Rejection::InvalidName { .. }
    ));
    // Delete needs the vault gone first.
    assert_eq!(
        rejected(
            &mut s,
            Event::AccountDeleted {
                account: acc(1),
                at: t(5)
            }
        ),
        Rejection::AccountHasVaults {
            account: acc(1),
            vaults: 1
        }
    );
    let out = run(
        &mut s,
        &[
            Event::VaultDeleted {
                vault: vault(1),
                account: acc(1),
                at: t(5),
            },
            Event::AccountDeleted {
                account: acc(1),
                at: t(6),
            },
            account_created(3, "alice"),
        ],
    );
    assert!(out.iter().all(Outcome::is_applied), "{out:?}");
    assert_eq!(s.account_by_name("alice").map(|a| a.id), Some(acc(3)));
    assert!(s.devices().is_empty(), "devices go with their account");
}

#[test]
fn devices_need_an_owner_and_respect_it() {
    let mut s = base();
    assert_eq!(
        rejected(&mut s, device_registered(2, 9, "x")),
        Rejection::UnknownAccount(acc(9))
    );
    assert!(matches!(
        rejected(&mut s, device_registered(2, 1, "laptop")),
        Rejection::NameTaken {
            kind: RecordKind::Device,
            ..
        }
    ));
    run(&mut s, &[account_created(2, "bob")]);
    assert!(matches!(
        rejected(
            &mut s,
            Event::DeviceRevoked {
                device: dev(1),
                account: acc(2),
                at: t(9)
            }
        ),
        Rejection::WrongOwner {
            kind: RecordKind::Device,
            ..
        }
    ));
    assert_eq!(
        rejected(
            &mut s,
            Event::DeviceRenamed {
                device: dev(7),
                account: acc(1),
                name: "n".into(),
                at: t(9)
            }
        ),
        Rejection::UnknownDevice(dev(7))
    );
    let out = run(
        &mut s,
        &[Event::DeviceRevoked {
            device: dev(1),
            account: acc(1),
            at: t(9),
        }],
    );
    assert_eq!(out, vec![Outcome::Applied]);
    assert_eq!(
        rejected(
            &mut s,
            Event::DeviceRevoked {
                device: dev(1),
                account: acc(1),
                at: t(9)
            }
        ),
        Rejection::DeviceRevoked(dev(1))
    );
    // A revoked device's name is free again.
    assert_eq!(
        run(&mut s, &[device_registered(2, 1, "laptop")]),
        vec![Outcome::Applied]
    );
}

#[test]
fn vaults_need_a_requestable_tier_and_unique_name() {
    let mut s = base();
    run(&mut s, &[tier("cold", false)]);
    assert_eq!(
        rejected(&mut s, vault_created(2, 1, "x", "nope")),
        Rejection::UnknownTier("nope".into())
    );
    assert_eq!(
        rejected(&mut s, vault_created(2, 1, "x", "cold")),
        Rejection::TierNotRequestable("cold".into())
    );
    assert!(matches!(
        rejected(&mut s, vault_created(2, 1, "main", "standard")),
        Rejection::NameTaken {
            kind: RecordKind::Vault,
            ..
        }
    ));
    assert!(matches!(
        rejected(&mut s, vault_created(1, 1, "other", "standard")),
        Rejection::DuplicateId {
            kind: RecordKind::Vault,
            ..
        }
    ));
    assert_eq!(
        rejected(
            &mut s,
            Event::TierDefined {
                name: "z".into(),
                replicas: 0,
                requestable: true,
                at: t(1)
            }
        ),
        Rejection::InvalidReplicas(0)
    );
    // Another account may use the same vault name.
    run(&mut s, &[account_created(2, "bob")]);
    assert_eq!(
        run(&mut s, &[vault_created(2, 2, "main", "standard")]),
        vec![Outcome::Applied]
    );
    assert!(matches!(
        rejected(
            &mut s,
            Event::VaultDeleted {
                vault: vault(2),
                account: acc(1),
                at: t(9)
            }
        ),
        Rejection::WrongOwner {
            kind: RecordKind::Vault,
            ..
        }
    ));
}

#[test]
fn password_change_rewraps_exactly_the_accounts_vaults() {
    let mut s = base();
    let wrong = Event::AccountPasswordChanged {
        account: acc(1),
        credentials: creds(9),
        rewrapped_keys: BTreeMap::new(),
        at: t(7),
    };
    assert_eq!(
        rejected(&mut s, wrong),
        Rejection::RewrapMismatch { account: acc(1) }
    );
    let extra = Event::AccountPasswordChanged {
        account: acc(1),
        credentials: creds(9),
        rewrapped_keys: [(vault(1), vec![1]), (vault(2), vec![2])]
            .into_iter()
            .collect(),
        at: t(7),
    };
    assert_eq!(
        rejected(&mut s, extra),
        Rejection::RewrapMismatch { account: acc(1) }
    );
    let ok = Event::AccountPasswordChanged {
        account: acc(1),
        credentials: creds(9),
        rewrapped_keys: [(vault(1), vec![0xee])].into_iter().collect(),
        at: t(7),
    };
    assert_eq!(run(&mut s, &[ok]), vec![Outcome::Applied]);
    assert_eq!(s.vaults()[&vault(1)].wrapped_keys, vec![0xee]);
    assert_eq!(s.accounts()[&acc(1)].credentials, creds(9));
    assert_eq!(s.accounts()[&acc(1)].password_changed_at, Some(t(7)));
}

#[test]
fn snapshots_are_checked_against_vault_and_device() {
    let mut s = base();
    run(
        &mut s,
        &[account_created(2, "bob"), device_registered(2, 2, "pc")],
    );
    assert!(matches!(
        rejected(
            &mut s,
            Event::SnapshotCommitted {
                snapshot: snapshot(1, 1, 2)
            }
        ),
        Rejection::WrongOwner { .. }
    ));
    assert_eq!(
        rejected(
            &mut s,
            Event::SnapshotCommitted {
                snapshot: snapshot(1, 9, 1)
            }
        ),
        Rejection::UnknownVault(vault(9))
    );
    let mut backwards = snapshot(1, 1, 1);
    backwards.finished_at = t(1);
    assert!(matches!(
        rejected(
            &mut s,
            Event::SnapshotCommitted {
                snapshot: backwards
            }
        ),
        Rejection::TimeTravel { .. }
    ));
    assert_eq!(
        run(
            &mut s,
            &[Event::SnapshotCommitted {
                snapshot: snapshot(1, 1, 1)
            }]
        ),
        vec![Outcome::Applied]
    );
    assert!(matches!(
        rejected(
            &mut s,
            Event::SnapshotCommitted {
                snapshot: snapshot(1, 1, 1)
            }
        ),
        Rejection::DuplicateId {
            kind: RecordKind::Snapshot,
            ..
        }
    ));
    // Another device of the same account may forget it; another account may not.
    run(&mut s, &[device_registered(3, 1, "desktop")]);
    assert!(matches!(
        rejected(
            &mut s,
            Event::SnapshotForgotten {
                snapshot: snap_id(1),
                vault: vault(1),
                device: dev(2),
                at: t(30)
            }
        ),
        Rejection::WrongOwner { .. }
    ));
    assert_eq!(
        run(
            &mut s,
            &[Event::SnapshotForgotten {
                snapshot: snap_id(1),
                vault: vault(1),
                device: dev(3),
                at: t(30)
            }]
        ),
        vec![Outcome::Applied]
    );
    assert!(s.snapshots().is_empty());
}

#[test]
fn deleting_a_vault_drops_its_snapshots() {
    let mut s = base();
    run(
        &mut s,
        &[Event::SnapshotCommitted {
            snapshot: snapshot(1, 1, 1),
        }],
    );
    assert_eq!(s.snapshots_of(vault(1)).count(), 1);
    run(
        &mut s,
        &[Event::VaultDeleted {
            vault: vault(1),
            account: acc(1),
            at: t(40),
        }],
    );
    assert!(s.snapshots().is_empty());
}

#[test]
fn jobs_start_and_finish_once() {
    let mut s = base();
    let start = Event::JobStarted {
        job: job(1),
        device: dev(1),
        vault: Some(vault(1)),
        kind: JobKind::Backup,
        at: t(100),
    };
    let finish = |at| Event::JobFinished {
        job: job(1),
        device: dev(1),
        status: JobStatus::Succeeded,
        log: "ok".into(),
        at: t(at),
    };
    assert_eq!(rejected(&mut s, finish(101)), Rejection::UnknownJob(job(1)));
    assert_eq!(
        run(&mut s, std::slice::from_ref(&start)),
        vec![Outcome::Applied]
    );
    assert!(matches!(
        rejected(&mut s, start),
        Rejection::DuplicateId {
            kind: RecordKind::Job,
            ..
        }
    ));
    assert!(matches!(
        rejected(&mut s, finish(99)),
        Rejection::TimeTravel { .. }
    ));
    assert_eq!(run(&mut s, &[finish(101)]), vec![Outcome::Applied]);
    assert_eq!(
        rejected(&mut s, finish(102)),
        Rejection::JobAlreadyFinished(job(1))
    );
    assert_eq!(
        s.jobs()[&job(1)].finished.as_ref().map(|e| e.status),
        Some(JobStatus::Succeeded)
    );
}

#[test]
fn storage_node_lifecycle() {
    let mut s = State::default();
    let join = |n| Event::StorageNodeJoined {
        node: n,
        addr: "10.0.0.1:8700".into(),
        at: t(1),
    };
    assert_eq!(run(&mut s, &[join(1)]), vec![Outcome::Applied]);
    assert!(matches!(
        rejected(&mut s, join(1)),
        Rejection::DuplicateId { .. }
    ));
    assert_eq!(
        rejected(&mut s, Event::StorageNodeDrained { node: 2, at: t(2) }),
        Rejection::UnknownStorageNode(2)
    );
    assert_eq!(
        rejected(
            &mut s,
            Event::StorageNodeJoined {
                node: 2,
                addr: "a b".into(),
                at: t(1)
            }
        ),
        Rejection::InvalidAddress("a b".into())
    );
    run(&mut s, &[Event::StorageNodeDrained { node: 1, at: t(2) }]);
    assert!(matches!(
        rejected(&mut s, Event::StorageNodeDrained { node: 1, at: t(3) }),
        Rejection::StorageNodeState {
            status: StorageNodeStatus::Draining,
            ..
        }
    ));
    run(&mut s, &[Event::StorageNodeRemoved { node: 1, at: t(4) }]);
    assert_eq!(s.storage_nodes()[&1].status, StorageNodeStatus::Removed);
    // A removed node may join again.
    assert_eq!(run(&mut s, &[join(1)]), vec![Outcome::Applied]);
}

#[test]
fn lease_fencing_tokens_only_grow() {
    let mut s = State::default();
    let grant = |token| Event::LeaseGranted {
        lease: Lease {
            serial: "SN-1".into(),
            fencing_token: token,
            granted_at: t(10),
            expires_at: t(20),
        },
    };
    assert_eq!(run(&mut s, &[grant(5)]), vec![Outcome::Applied]);
    assert_eq!(
        rejected(&mut s, grant(5)),
        Rejection::StaleFencingToken { last: 5, got: 5 }
    );
    assert!(matches!(
        rejected(
            &mut s,
            Event::LeaseRenewed {
                serial: "SN-1".into(),
                fencing_token: 4,
                expires_at: t(30),
                at: t(15)
            }
        ),
        Rejection::LeaseMismatch { .. }
    ));
    assert_eq!(
        run(
            &mut s,
            &[Event::LeaseRenewed {
                serial: "SN-1".into(),
                fencing_token: 5,
                expires_at: t(30),
                at: t(15)
            }]
        ),
        vec![Outcome::Applied]
    );
    assert_eq!(s.lease().map(|l| l.expires_at), Some(t(30)));
    run(
        &mut s,
        &[Event::LeaseExpired {
            serial: "SN-1".into(),
            fencing_token: 5,
            at: t(31),
        }],
    );
    assert!(s.lease().is_none());
    // After expiry a new grant still needs a larger token.
    assert_eq!(
        rejected(&mut s, grant(3)),
        Rejection::StaleFencingToken { last: 5, got: 3 }
    );
    assert_eq!(run(&mut s, &[grant(6)]), vec![Outcome::Applied]);
}

#[test]
fn reused_request_id_returns_first_outcome_even_for_another_event() {
    let mut s = State::default();
    let id = RequestId([42; 16]);
    let first = apply(
        &mut s,
        &Request {
            request_id: id,
            event: account_created(1, "alice"),
        },
    );
    assert_eq!(first, Outcome::Applied);
    let snapshot = s.clone();
    let again = apply(
        &mut s,
        &Request {
            request_id: id,
            event: account_created(2, "bob"),
        },
    );
    assert_eq!(again, Outcome::Applied);
    assert_eq!(s, snapshot, "a seen request id must not apply anything");
}

#[test]
fn login_registers_a_new_device_and_records_an_audit_job() {
    let mut s = base();
    assert_eq!(
        run(&mut s, &[logged_in(2, 1, "desktop", 10, 50)]),
        vec![Outcome::Applied]
    );
    let d = &s.devices()[&dev(2)];
    assert_eq!(d.account, acc(1));
    assert_eq!(d.name, "desktop");
    assert_eq!(d.token_hash, vec![2 ^ 10; 32]);
    assert_eq!((d.registered_at, d.last_login_at), (t(50), t(50)));
    assert!(d.is_live());
    let j = &s.jobs()[&job(10)];
    assert_eq!(
        (j.account, j.device, j.vault, j.kind, j.started_at),
        (acc(1), dev(2), None, JobKind::Login, t(50))
    );
    assert_eq!(
        j.finished,
        Some(JobEnd {
            status: JobStatus::Succeeded,
            log: "login from 192.0.2.1".into(),
            at: t(50),
            files: 0,
            bytes: 0,
            error: None,
        })
    );
}

#[test]
fn login_of_a_known_device_rotates_its_token_and_keeps_its_name() {
    let mut s = base();
    let before = s.devices()[&dev(1)].clone();
    // The name in the event is ignored for a known device, even if invalid.
    assert_eq!(
        run(&mut s, &[logged_in(1, 1, "", 11, 60)]),
        vec![Outcome::Applied]
    );
    let after = &s.devices()[&dev(1)];
    assert_eq!(after.token_hash, vec![1 ^ 11; 32]);
    assert_ne!(after.token_hash, before.token_hash);
    assert_eq!(after.last_login_at, t(60));
    assert_eq!(after.registered_at, before.registered_at);
    assert_eq!(after.name, "laptop");
    assert_eq!(s.jobs()[&job(11)].kind, JobKind::Login);
    // A second login is a second audit record.
    run(&mut s, &[logged_in(1, 1, "laptop", 12, 70)]);
    let logins = s
        .jobs()
        .values()
        .filter(|j| j.kind == JobKind::Login && j.device == dev(1))
        .count();
    assert_eq!(logins, 2);
    assert_eq!(s.devices()[&dev(1)].last_login_at, t(70));
}

#[test]
fn login_checks_account_owner_liveness_name_and_job_id() {
    let mut s = base();
    run(
        &mut s,
        &[account_created(2, "bob"), device_registered(3, 2, "pc")],
    );
    assert_eq!(
        rejected(&mut s, logged_in(5, 9, "x", 20, 1)),
        Rejection::UnknownAccount(acc(9))
    );
    assert!(matches!(
        rejected(&mut s, logged_in(3, 1, "pc", 20, 1)),
        Rejection::WrongOwner {
            kind: RecordKind::Device,
            ..
        }
    ));
    assert!(matches!(
        rejected(&mut s, logged_in(5, 1, "laptop", 20, 1)),
        Rejection::NameTaken {
            kind: RecordKind::Device,
            ..
        }
    ));
    assert!(matches!(
        rejected(&mut s, logged_in(5, 1, "bad\n", 20, 1)),
        Rejection::InvalidName { .. }
    ));
    run(&mut s, &[logged_in(5, 1, "phone", 20, 1)]);
    assert!(matches!(
        rejected(&mut s, logged_in(6, 1, "tablet", 20, 2)),
        Rejection::DuplicateId {
            kind: RecordKind::Job,
            ..
        }
    ));
    let long_from = Event::DeviceLoggedIn {
        device: dev(1),
        account: acc(1),
        name: "laptop".into(),
        token_hash: vec![1],
        job: job(21),
        from: "x".repeat(MAX_LOGIN_FROM_LEN + 1),
        at: t(3),
    };
    assert!(matches!(
        rejected(&mut s, long_from),
        Rejection::TooLong { .. }
    ));
    run(
        &mut s,
        &[Event::DeviceRevoked {
            device: dev(1),
            account: acc(1),
            at: t(4),
        }],
    );
    assert_eq!(
        rejected(&mut s, logged_in(1, 1, "laptop", 22, 5)),
        Rejection::DeviceRevoked(dev(1))
    );
    // A revoked device's name may be taken by a new device logging in.
    assert_eq!(
        run(&mut s, &[logged_in(7, 1, "laptop", 22, 5)]),
        vec![Outcome::Applied]
    );
}

#[test]
fn password_change_empties_every_token_of_the_account_only() {
    let mut s = base();
    run(
        &mut s,
        &[
            logged_in(2, 1, "desktop", 10, 5),
            Event::DeviceRevoked {
                device: dev(2),
                account: acc(1),
                at: t(6),
            },
            device_registered(3, 1, "phone"),
            account_created(2, "bob"),
            device_registered(4, 2, "pc"),
        ],
    );
    let change = Event::AccountPasswordChanged {
        account: acc(1),
        credentials: creds(9),
        rewrapped_keys: [(vault(1), vec![0xee])].into_iter().collect(),
        at: t(7),
    };
    assert_eq!(run(&mut s, &[change]), vec![Outcome::Applied]);
    for d in s.devices_of(acc(1)) {
        assert!(d.token_hash.is_empty(), "device {} kept its token", d.id);
    }
    assert_eq!(s.devices_of(acc(1)).count(), 3);
    assert_eq!(s.devices()[&dev(4)].token_hash, vec![4; 32]);
    // Logging in again restores a token.
    run(&mut s, &[logged_in(1, 1, "laptop", 11, 8)]);
    assert_eq!(s.devices()[&dev(1)].token_hash, vec![1 ^ 11; 32]);
}

#[test]
fn tiers_carry_quota_and_description() {
    let mut s = State::default();
    let configured = |quota_bytes, description: &str| Event::TierConfigured {
        name: "standard".into(),
        replicas: 2,
        requestable: true,
        quota_bytes,
        description: description.into(),
        at: t(5),
    };
    assert_eq!(
        run(&mut s, &[configured(Some(1 << 30), "two copies")]),
        vec![Outcome::Applied]
    );
    let std_tier = &s.tiers()["standard"];
    assert_eq!(std_tier.quota_bytes, Some(1 << 30));
    assert_eq!(std_tier.description, "two copies");
    assert_eq!(
        (std_tier.replicas, std_tier.requestable, std_tier.defined_at),
        (2, true, t(5))
    );
    assert_eq!(
        rejected(&mut s, configured(Some(0), "")),
        Rejection::InvalidQuota
    );
    assert!(matches!(
        rejected(
            &mut s,
            configured(None, &"d".repeat(MAX_DESCRIPTION_LEN + 1))
        ),
        Rejection::TooLong { .. }
    ));
    assert!(matches!(
        rejected(
            &mut s,
            Event::TierConfigured {
                name: "x".into(),
                replicas: MAX_REPLICAS + 1,
                requestable: true,
                quota_bytes: None,
                description: String::new(),
                at: t(6)
            }
        ),
        Rejection::InvalidReplicas(_)
    ));
    // The old event means "no quota, no description".
    run(&mut s, &[tier("standard", false)]);
    let std_tier = &s.tiers()["standard"];
    assert_eq!(
        (std_tier.quota_bytes, std_tier.description.as_str()),
        (None, "")
    );
    assert!(!std_tier.requestable);
}

#[test]
fn items_belong_to_one_device_and_can_be_replaced_and_removed() {
    let mut s = base();
    run(
        &mut s,
        &[
            device_registered(2, 1, "desktop"),
            item_set(1, 1, "home", 1),
            item_set(2, 1, "home", 1),
            item_set(1, 1, "etc", 1),
        ],
    );
    let names: Vec<&str> = s.items_of(dev(1)).map(|i| i.name.as_str()).collect();
    assert_eq!(names, vec!["etc", "home"]);
    assert!(s
        .items_of(dev(1))
        .all(|i| i.device == dev(1) && i.account == acc(1)));
    assert_eq!(s.items_of(dev(2)).count(), 1);
    assert_eq!(s.items_of(dev(3)).count(), 0);
    let home = &s.items()[&(dev(1), "home".to_string())];
    assert_eq!(home.paths, vec!["/home/alice", "C:\\Users\\alice"]);
    assert_eq!(home.excludes, vec!["*.tmp"]);
    assert_eq!((home.vault, home.updated_at), (vault(1), t(4)));
    // Upsert: same (device, name) replaces.
    let replace = Event::ItemSet {
        device: dev(1),
        account: acc(1),
        name: "home".into(),
        paths: vec!["/srv".into()],
        excludes: Vec::new(),
        vault: vault(1),
        at: t(9),
    };
    assert_eq!(run(&mut s, &[replace]), vec![Outcome::Applied]);
    let home = &s.items()[&(dev(1), "home".to_string())];
    assert_eq!(
        (home.paths.clone(), home.updated_at),
        (vec!["/srv".to_string()], t(9))
    );
    assert_eq!(s.items().len(), 3);
    let remove = |d, name: &str| Event::ItemRemoved {
        device: dev(d),
        account: acc(1),
        name: name.into(),
        at: t(10),
    };
    assert_eq!(run(&mut s, &[remove(1, "home")]), vec![Outcome::Applied]);
    assert_eq!(
        rejected(&mut s, remove(1, "home")),
        Rejection::UnknownItem {
            device: dev(1),
            name: "home".into()
        }
    );
    assert_eq!(s.items_of(dev(2)).count(), 1, "another device's item stays");
}

#[test]
fn item_rules() {
    let mut s = base();
    run(
        &mut s,
        &[
            account_created(2, "bob"),
            device_registered(3, 2, "pc"),
            vault_created(2, 2, "bobs", "standard"),
        ],
    );
    let with_paths = |paths: Vec<String>, excludes: Vec<String>| Event::ItemSet {
        device: dev(1),
        account: acc(1),
        name: "home".into(),
        paths,
        excludes,
        vault: vault(1),
        at: t(4),
    };
    let invalid = |s: &mut State, e| matches!(rejected(s, e), Rejection::InvalidItem(_));
    assert!(invalid(&mut s, with_paths(Vec::new(), Vec::new())));
    assert!(invalid(
        &mut s,
        with_paths(vec!["relative/x".into()], Vec::new())
    ));
    assert!(invalid(
        &mut s,
        with_paths(vec!["C:relative".into()], Vec::new())
    ));
    assert!(invalid(
        &mut s,
        with_paths(vec!["/a\nb".into()], Vec::new())
    ));
    assert!(invalid(
        &mut s,
        with_paths(vec!["/a".into()], vec![String::new()])
    ));
    assert!(invalid(
        &mut s,
        with_paths(vec![format!("/{}", "a".repeat(MAX_PATH_LEN))], Vec::new())
    ));
    assert!(invalid(
        &mut s,
        with_paths(vec!["/a".into(); MAX_ITEM_PATHS + 1], Vec::new())
    ));
    assert!(invalid(
        &mut s,
        with_paths(vec!["/a".into()], vec!["*".into(); MAX_ITEM_PATHS + 1])
    ));
    assert!(matches!(
        rejected(&mut s, item_set(1, 1, "", 1)),
        Rejection::InvalidName {
            kind: RecordKind::Item,
            ..
        }
    ));
    // Another account's vault or device is off limits.
    assert!(matches!(
        rejected(&mut s, item_set(1, 1, "home", 2)),
        Rejection::WrongOwner {
            kind: RecordKind::Vault,
            ..
        }
    ));
    assert!(matches!(
        rejected(&mut s, item_set(3, 1, "home", 1)),
        Rejection::WrongOwner {
            kind: RecordKind::Device,
            ..
        }
    ));
    assert_eq!(
        rejected(&mut s, item_set(1, 1, "home", 9)),
        Rejection::UnknownVault(vault(9))
    );
    assert_eq!(
        rejected(&mut s, item_set(8, 1, "home", 1)),
        Rejection::UnknownDevice(dev(8))
    );
    assert!(matches!(
        rejected(
            &mut s,
            Event::ItemRemoved {
                device: dev(3),
                account: acc(1),
                name: "home".into(),
                at: t(5)
            }
        ),
        Rejection::WrongOwner { .. }
    ));
    run(
        &mut s,
        &[Event::DeviceRevoked {
            device: dev(1),
            account: acc(1),
            at: t(5),
        }],
    );
    assert_eq!(
        rejected(&mut s, item_set(1, 1, "home", 1)),
        Rejection::DeviceRevoked(dev(1))
    );
}

#[test]
fn a_device_has_a_bounded_number_of_items() {
    let mut s = base();
    let events: Vec<Event> = (0..MAX_ITEMS_PER_DEVICE)
        .map(|i| item_set(1, 1, &format!("item{i}"), 1))
        .collect();
    assert!(run(&mut s, &events).iter().all(Outcome::is_applied));
    assert!(matches!(
        rejected(&mut s, item_set(1, 1, "one more", 1)),
        Rejection::InvalidItem(_)
    ));
    // Replacing an existing item is still allowed at the bound.
    assert_eq!(
        run(&mut s, &[item_set(1, 1, "item0", 1)]),
        vec![Outcome::Applied]
    );
}

#[test]
fn deleting_a_vault_drops_the_items_that_target_it() {
    let mut s = base();
    run(
        &mut s,
        &[
            vault_created(2, 1, "second", "standard"),
            item_set(1, 1, "home", 1),
            item_set(1, 1, "work", 2),
        ],
    );
    run(
        &mut s,
        &[Event::VaultDeleted {
            vault: vault(1),
            account: acc(1),
            at: t(40),
        }],
    );
    let left: Vec<&str> = s.items_of(dev(1)).map(|i| i.name.as_str()).collect();
    assert_eq!(left, vec!["work"]);
    // With its last vault gone the account can go, and nothing of it stays.
    let out = run(
        &mut s,
        &[
            Event::VaultDeleted {
                vault: vault(2),
                account: acc(1),
                at: t(41),
            },
            Event::AccountDeleted {
                account: acc(1),
                at: t(42),
            },
        ],
    );
    assert!(out.iter().all(Outcome::is_applied), "{out:?}");
    assert!(s.items().is_empty() && s.devices().is_empty());
}

#[test]
fn job_completion_records_counters_and_error() {
    let mut s = base();
    let start = |j| Event::JobStarted {
        job: job(j),
        device: dev(1),
        vault: Some(vault(1)),
        kind: JobKind::Backup,
        at: t(100),
    };
    let complete = |j, error: Option<String>, log: String| Event::JobCompleted {
        job: job(j),
        device: dev(1),
        status: JobStatus::Failed,
        files: 12,
        bytes: 3456,
        error,
        log,
        at: t(110),
    };
    run(&mut s, &[start(1), start(2)]);
    assert!(matches!(
        rejected(
            &mut s,
            complete(1, Some("e".repeat(MAX_JOB_ERROR_LEN + 1)), String::new())
        ),
        Rejection::TooLong { .. }
    ));
    assert!(matches!(
        rejected(&mut s, complete(1, None, "l".repeat(MAX_JOB_LOG_LEN + 1))),
        Rejection::TooLong { .. }
    ));
    assert_eq!(
        rejected(&mut s, complete(9, None, String::new())),
        Rejection::UnknownJob(job(9))
    );
    assert_eq!(
        run(
            &mut s,
            &[complete(1, Some("disk full".into()), "tail".into())]
        ),
        vec![Outcome::Applied]
    );
    assert_eq!(
        s.jobs()[&job(1)].finished,
        Some(JobEnd {
            status: JobStatus::Failed,
            log: "tail".into(),
            at: t(110),
            files: 12,
            bytes: 3456,
            error: Some("disk full".into()),
        })
    );
    assert_eq!(
        rejected(&mut s, complete(1, None, String::new())),
        Rejection::JobAlreadyFinished(job(1))
    );
    // The old event still ends a job, with zero counters and no error.
    run(
        &mut s,
        &[Event::JobFinished {
            job: job(2),
            device: dev(1),
            status: JobStatus::Succeeded,
            log: "ok".into(),
            at: t(120),
        }],
    );
    let end = s.jobs()[&job(2)].finished.clone();
    assert_eq!(end.map(|e| (e.files, e.bytes, e.error)), Some((0, 0, None)));
}

#[test]
fn server_secret_is_set_once() {
    let mut s = State::default();
    assert_eq!(s.server_secret(), None);
    let set = |b: u8, len: usize| Event::ServerSecretSet {
        secret: vec![b; len],
        at: t(1),
    };
    assert_eq!(rejected(&mut s, set(1, 31)), Rejection::InvalidSecret(31));
    assert_eq!(
        run(&mut s, &[set(1, SERVER_SECRET_LEN)]),
        vec![Outcome::Applied]
    );
    assert_eq!(s.server_secret(), Some(&[1u8; 32][..]));
    assert_eq!(
        rejected(&mut s, set(2, SERVER_SECRET_LEN)),
        Rejection::SecretAlreadySet
    );
    assert_eq!(s.server_secret(), Some(&[1u8; 32][..]));
}

fn encode(s: &State) -> Result<Vec<u8>, TestCaseError> {
    bincode::serialize(s).map_err(|e| TestCaseError::fail(e.to_string()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any event sequence applied twice from scratch gives the same state,
    /// the same outcomes, and byte-identical encodings (what snapshots and
    /// the persisted state machine store).
    #[test]
    fn apply_is_deterministic(events in proptest::collection::vec(arb_event(), 0..80)) {
        let reqs = requests(events);
        let mut a = State::default();
        let mut b = State::default();
        let oa: Vec<Outcome> = reqs.iter().map(|r| apply(&mut a, r)).collect();
        let ob: Vec<Outcome> = reqs.iter().map(|r| apply(&mut b, r)).collect();
        prop_assert_eq!(&oa, &ob);
        prop_assert_eq!(&a, &b);
        let bytes = encode(&a)?;
        prop_assert_eq!(&bytes, &encode(&b)?);
        let decoded: State = bincode::deserialize(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&decoded, &a);
    }

    /// A rejected event leaves the domain state unchanged; the only trace is
    /// its outcome in the dedup table.
    #[test]
    fn rejection_changes_nothing(events in proptest::collection::vec(arb_event(), 0..80)) {
        let mut s = State::default();
        for r in requests(events) {
            let before = s.clone();
            let outcome = apply(&mut s, &r);
            if let Outcome::Rejected(_) = outcome {
                prop_assert!(s.same_domain(&before), "rejected {:?} changed the state", r.event);
                prop_assert_eq!(s.requests().get(&r.request_id), Some(&outcome));
            }
        }
    }

    /// Delivering every request twice (a retry right after, and a replay of
    /// the whole sequence at the end) gives exactly the state of delivering
    /// each once, and each retry gets the first outcome.
    #[test]
    fn duplicate_request_ids_apply_once(events in proptest::collection::vec(arb_event(), 0..80)) {
        let reqs = requests(events);
        let mut once = State::default();
        let first: Vec<Outcome> = reqs.iter().map(|r| apply(&mut once, r)).collect();

        let mut twice = State::default();
        for (r, expected) in reqs.iter().zip(&first) {
            prop_assert_eq!(&apply(&mut twice, r), expected);
            prop_assert_eq!(&apply(&mut twice, r), expected);
        }
        prop_assert_eq!(&twice, &once);

        let replayed: Vec<Outcome> = reqs.iter().map(|r| apply(&mut twice, r)).collect();
        prop_assert_eq!(&replayed, &first);
        prop_assert_eq!(&twice, &once);
    }

    /// With a tiny dedup table, eviction is still deterministic.
    #[test]
    fn bounded_dedup_is_deterministic(events in proptest::collection::vec(arb_event(), 0..60), cap in 1u32..8) {
        let reqs = requests(events);
        let mut a = State::with_dedup_capacity(cap);
        let mut b = State::with_dedup_capacity(cap);
        for r in &reqs {
            apply(&mut a, r);
            apply(&mut b, r);
        }
        prop_assert_eq!(a.requests().len(), reqs.len().min(cap as usize));
        prop_assert!(reqs.len() >= setup().len());
        prop_assert_eq!(&a, &b);
    }
}

/// The generator is only useful if random sequences reach the accept path of
/// every event kind (not just rejections); check that over a fixed seed.
#[test]
fn generator_reaches_every_accept_path() {
    use std::collections::BTreeSet;

    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = proptest::collection::vec(arb_event(), 80);
    let mut applied = BTreeSet::new();
    let mut rejected = 0usize;
    for _ in 0..400 {
        let events = match strategy.new_tree(&mut runner) {
            Ok(tree) => tree.current(),
            Err(e) => panic!("generator failed: {e}"),
        };
        let mut s = State::default();
        for r in requests(events) {
            match apply(&mut s, &r) {
                Outcome::Applied => {
                    applied.insert(r.event.kind());
                }
                _ => rejected += 1,
            }
        }
    }
    assert_eq!(
        applied.len(),
        50,
        "kinds never applied; reached only {applied:?}"
    );
    assert!(rejected > 0);
}

// --- backup jobs of snapshot commits, abandonment, resource limits --------

const DAY: u64 = BACKUP_JOB_ABANDONED_MS;

/// A 16-byte id: twelve `fill` bytes, then `n` big-endian.
fn id16(fill: u8, n: u32) -> [u8; 16] {
    let mut id = [fill; 16];
    id[12..].copy_from_slice(&n.to_be_bytes());
    id
}

/// `base()` plus a second device of alice and a second vault.
fn two_devices_two_vaults() -> State {
    let mut s = base();
    let out = run(
        &mut s,
        &[
            device_registered(2, 1, "desktop"),
            vault_created(2, 1, "other", "standard"),
        ],
    );
    assert!(out.iter().all(Outcome::is_applied), "{out:?}");
    s
}

fn not_running(r: Rejection) -> String {
    match r {
        Rejection::JobNotRunning { reason, .. } => reason,
        other => panic!("expected job_not_running, got {other:?}"),
    }
}

#[test]
fn a_snapshot_commits_only_under_a_running_backup_job_of_its_device_and_vault() {
    let mut s = two_devices_two_vaults();
    // No job at all (its start failed): refused.
    let reason = not_running(rejected(&mut s, committed_by(1, 1, 1, 1, 200)));
    assert!(reason.contains("does not exist"), "{reason}");
    let out = run(
        &mut s,
        &[
            backup_started(1, 1, 1, 100),
            backup_started(2, 2, 1, 100),
            backup_started(3, 1, 2, 100),
            Event::JobStarted {
                job: job(4),
                device: dev(1),
                vault: Some(vault(1)),
                kind: JobKind::Prune,
                at: t(100),
            },
            backup_started(5, 1, 1, 100),
            Event::JobFinished {
                job: job(5),
                device: dev(1),
                status: JobStatus::Failed,
                log: String::new(),
                at: t(150),
            },
        ],
    );
    assert!(out.iter().all(Outcome::is_applied), "{out:?}");
    for (j, why) in [
        (2, "another device"),
        (3, "another vault"),
        (4, "not a backup"),
        (5, "already finished"),
    ] {
        let reason = not_running(rejected(&mut s, committed_by(1, 1, 1, j, 200)));
        assert!(reason.contains(why), "job {j}: {reason}");
    }
    // Job 1 is 24 h old at the commit: prunes no longer wait for it.
    let reason = not_running(rejected(&mut s, committed_by(1, 1, 1, 1, 100 + DAY)));
    assert!(reason.contains("24 h"), "{reason}");
    assert_eq!(
        run(&mut s, &[committed_by(1, 1, 1, 1, 99 + DAY)]),
        vec![Outcome::Applied]
    );
    assert!(s.snapshots().contains_key(&snap_id(1)));
}

#[test]
fn a_job_start_ends_the_accounts_day_old_jobs_as_abandoned() {
    let mut s = two_devices_two_vaults();
    let out = run(
        &mut s,
        &[
            tier("other", true),
            account_created(2, "bob"),
            device_registered(3, 2, "bobs"),
            vault_created(3, 2, "bobs", "other"),
            backup_started(1, 1, 1, 100),
            backup_started(2, 2, 1, 200),
            backup_started(3, 3, 3, 100),
        ],
    );
    assert!(out.iter().all(Outcome::is_applied), "{out:?}");
    // A prune starting a day after job 1 (not yet after job 2) ends job 1.
    let prune = Event::JobStarted {
        job: job(4),
        device: dev(2),
        vault: Some(vault(1)),
        kind: JobKind::Prune,
        at: t(150 + DAY),
    };
    assert_eq!(run(&mut s, &[prune]), vec![Outcome::Applied]);
    let end = s.jobs()[&job(1)].finished.clone().expect("job 1 ended");
    assert_eq!(end.status, JobStatus::Failed);
    assert_eq!(end.error.as_deref(), Some(ABANDONED));
    assert_eq!(end.at, t(100 + DAY));
    assert!(s.jobs()[&job(2)].finished.is_none(), "younger than a day");
    assert!(
        s.jobs()[&job(3)].finished.is_none(),
        "another account's job is not touched"
    );
    // Its snapshot can no longer be committed, even with an earlier time.
    let reason = not_running(rejected(&mut s, committed_by(1, 1, 1, 1, 120)));
    assert!(reason.contains("abandoned"), "{reason}");
    assert_eq!(
        run(&mut s, &[committed_by(2, 1, 2, 2, 160 + DAY)]),
        vec![Outcome::Applied]
    );
}

#[test]
fn vaults_and_wrapped_keys_are_bounded_per_account() {
    let mut s = base();
    let big = vec![0u8; MAX_WRAPPED_KEYS_LEN + 1];
    let create = |n: u8, keys: Vec<u8>| Event::VaultCreated {
        vault: VaultId([n; 16]),
        account: acc(1),
        name: format!("v{n}"),
        tier: "standard".into(),
        wrapped_keys: keys,
        at: t(3),
    };
    assert!(matches!(
        rejected(&mut s, create(100, big.clone())),
        Rejection::TooLarge { .. }
    ));
    let more: Vec<Event> = (2..=MAX_VAULTS_PER_ACCOUNT as u8)
        .map(|n| create(100 + n, vec![n; MAX_WRAPPED_KEYS_LEN]))
        .collect();
    assert!(run(&mut s, &more).iter().all(Outcome::is_applied));
    assert_eq!(s.vaults_of(acc(1)).count(), MAX_VAULTS_PER_ACCOUNT);
    assert!(matches!(
        rejected(&mut s, create(200, vec![1; 113])),
        Rejection::LimitReached { max, .. } if max == MAX_VAULTS_PER_ACCOUNT as u64
    ));
    // A password change may not grow a vault's keys past the bound either.
    let mut rewrapped: BTreeMap<VaultId, Vec<u8>> =
        s.vaults_of(acc(1)).map(|v| (v.id, vec![1; 113])).collect();
    rewrapped.insert(vault(1), big);
    assert!(matches!(
        rejected(
            &mut s,
            Event::AccountPasswordChanged {
                account: acc(1),
                credentials: creds(9),
                rewrapped_keys: rewrapped,
                at: t(9),
            }
        ),
        Rejection::TooLarge { .. }
    ));
}

#[test]
fn snapshot_records_and_their_metadata_are_bounded() {
    let mut s = base();
    assert_eq!(
        run(&mut s, &[backup_started(1, 1, 1, 100)]),
        vec![Outcome::Applied]
    );
    let commit = |id: u16, meta: usize| {
        let mut snapshot = snapshot(0, 1, 1);
        let mut sid = [0xa0; 16];
        sid[..2].copy_from_slice(&id.to_be_bytes());
        snapshot.id = SnapshotId(sid);
        snapshot.sealed_meta = vec![7; meta];
        Event::SnapshotCommittedByJob {
            snapshot,
            job: job(1),
            at: t(200),
        }
    };
    assert!(matches!(
        rejected(&mut s, commit(0, MAX_SEALED_META_LEN + 1)),
        Rejection::TooLarge { .. }
    ));
    // The account's metadata total: 256 records of the largest size fill it.
    let full = (MAX_SEALED_META_PER_ACCOUNT / MAX_SEALED_META_LEN as u64) as u16;
    for id in 0..full {
        assert_eq!(
            run(&mut s, &[commit(id, MAX_SEALED_META_LEN)]),
            vec![Outcome::Applied]
        );
    }
    assert!(matches!(
        rejected(&mut s, commit(full, 1)),
        Rejection::LimitReached { max, .. } if max == MAX_SEALED_META_PER_ACCOUNT
    ));
    // Forgetting makes room again.
    let forget = Event::SnapshotForgotten {
        snapshot: match commit(0, 0) {
            Event::SnapshotCommittedByJob { snapshot, .. } => snapshot.id,
            _ => unreachable!(),
        },
        vault: vault(1),
        device: dev(1),
        at: t(300),
    };
    assert_eq!(
        run(&mut s, &[forget, commit(full, 1)]),
        vec![Outcome::Applied, Outcome::Applied]
    );
    // The record count per vault.
    s.snapshots.clear();
    for n in 0..MAX_SNAPSHOTS_PER_VAULT as u32 {
        let mut r = snapshot(0, 1, 1);
        r.id = SnapshotId(id16(0x50, n));
        s.snapshots.insert(r.id, r);
    }
    assert!(matches!(
        rejected(&mut s, commit(1, 1)),
        Rejection::LimitReached { max, .. } if max == MAX_SNAPSHOTS_PER_VAULT as u64
    ));
}

#[test]
fn running_jobs_are_bounded_until_abandoned() {
    let mut s = base();
    let starts: Vec<Event> = (0..MAX_RUNNING_JOBS_PER_ACCOUNT as u32)
        .map(|n| Event::JobStarted {
            job: JobId(id16(0x70, n)),
            device: dev(1),
            vault: None,
            kind: JobKind::Restore,
            at: t(100),
        })
        .collect();
    assert!(run(&mut s, &starts).iter().all(Outcome::is_applied));
    assert!(matches!(
        rejected(&mut s, backup_started(1, 1, 1, 200)),
        Rejection::LimitReached { .. }
    ));
    // A day later the start ends them all as abandoned and goes through.
    assert_eq!(
        run(&mut s, &[backup_started(1, 1, 1, 100 + DAY)]),
        vec![Outcome::Applied]
    );
    let running = s.jobs().values().filter(|j| j.finished.is_none()).count();
    assert_eq!(running, 1);
}

#[test]
fn the_job_log_keeps_the_newest_finished_jobs_per_account() {
    let mut s = base();
    let out = run(
        &mut s,
        &[
            account_created(2, "bob"),
            logged_in(3, 2, "bobs", 3, 10),
            backup_started(1, 1, 1, 100),
            Event::JobStarted {
                job: job(2),
                device: dev(1),
                vault: Some(vault(1)),
                kind: JobKind::Prune,
                at: t(110),
            },
            Event::JobFinished {
                job: job(1),
                device: dev(1),
                status: JobStatus::Succeeded,
                log: String::new(),
                at: t(120),
            },
        ],
    );
    assert!(out.iter().all(Outcome::is_applied), "{out:?}");
    let logins: Vec<Event> = (0..MAX_FINISHED_JOBS_PER_ACCOUNT as u32 + 10)
        .map(|n| Event::DeviceLoggedIn {
            device: dev(1),
            account: acc(1),
            name: "laptop".into(),
            token_hash: vec![1; 32],
            job: JobId(id16(0x90, n)),
            from: "192.0.2.1".into(),
            at: t(1000 + u64::from(n)),
        })
        .collect();
    assert!(run(&mut s, &logins).iter().all(Outcome::is_applied));
    let alices: Vec<&Job> = s.jobs().values().filter(|j| j.account == acc(1)).collect();
    let finished = alices.iter().filter(|j| j.finished.is_some()).count();
    assert_eq!(finished, MAX_FINISHED_JOBS_PER_ACCOUNT);
    assert!(!s.jobs().contains_key(&job(1)), "the oldest went first");
    let newest = JobId(id16(0x90, MAX_FINISHED_JOBS_PER_ACCOUNT as u32 + 9));
    assert!(s.jobs().contains_key(&newest));
    // The backup that finished after the prune started is what held the
    // prune's sweep off; with it gone the prune is ended, so it cannot sweep.
    let prune = s.jobs()[&job(2)].finished.as_ref().expect("prune ended");
    assert_eq!(prune.status, JobStatus::Failed);
    assert!(s.jobs().contains_key(&job(3)), "bob's login stays");
}

proptest! {
    /// A blob is accepted exactly when it is within its bound, and a
    /// refusal changes nothing.
    #[test]
    fn size_limits_accept_exactly_up_to_the_bound(
        meta in (MAX_SEALED_META_LEN - 2)..(MAX_SEALED_META_LEN + 2),
        keys in (MAX_WRAPPED_KEYS_LEN - 2)..(MAX_WRAPPED_KEYS_LEN + 2),
    ) {
        let mut s = base();
        let mut snap = snapshot(1, 1, 1);
        snap.sealed_meta = vec![1; meta];
        let out = run(&mut s, &[
            backup_started(1, 1, 1, 100),
            Event::SnapshotCommittedByJob { snapshot: snap, job: job(1), at: t(200) },
            Event::VaultCreated {
                vault: vault(9),
                account: acc(1),
                name: "nine".into(),
                tier: "standard".into(),
                wrapped_keys: vec![1; keys],
                at: t(3),
            },
        ]);
        prop_assert_eq!(out[1].is_applied(), meta <= MAX_SEALED_META_LEN);
        prop_assert_eq!(out[2].is_applied(), keys <= MAX_WRAPPED_KEYS_LEN);
        prop_assert_eq!(s.snapshots().contains_key(&snap_id(1)), meta <= MAX_SEALED_META_LEN);
        prop_assert_eq!(s.vaults().contains_key(&vault(9)), keys <= MAX_WRAPPED_KEYS_LEN);
    }

    /// Whatever mix of logins and job ends, with whatever times, the job
    /// log of an account never holds more than the retention count of
    /// finished jobs, and what it keeps is the newest by end time.
    #[test]
    fn retention_keeps_the_newest_finished_jobs(
        times in proptest::collection::vec(0u64..2_000, 0..(MAX_FINISHED_JOBS_PER_ACCOUNT + 80)),
    ) {
        let mut s = base();
        let events: Vec<Event> = times.iter().enumerate().map(|(n, at)| Event::DeviceLoggedIn {
            device: dev(1),
            account: acc(1),
            name: "laptop".into(),
            token_hash: vec![1; 32],
            job: JobId(id16(0x90, n as u32)),
            from: "x".into(),
            at: t(*at),
        }).collect();
        let out = run(&mut s, &events);
        prop_assert!(out.iter().all(Outcome::is_applied));
        let kept: Vec<(UnixMillis, JobId)> = s.jobs().values()
            .filter_map(|j| j.finished.as_ref().map(|e| (e.at, j.id))).collect();
        prop_assert_eq!(kept.len(), times.len().min(MAX_FINISHED_JOBS_PER_ACCOUNT));
        let mut all: Vec<(UnixMillis, JobId)> = events.iter().map(|e| match e {
            Event::DeviceLoggedIn { job, at, .. } => (*at, *job),
            _ => unreachable!(),
        }).collect();
        all.sort_unstable();
        // Each login trims after it is added, so a late-arriving old login
        // may have been dropped at once; whatever is kept must not be older
        // than anything dropped that arrived after it.
        let oldest_kept = kept.iter().min().copied();
        if let Some(oldest) = oldest_kept {
            let newer_dropped = all.iter().filter(|k| **k > oldest && !kept.contains(k)).count();
            prop_assert_eq!(newer_dropped, 0);
        }
    }
}

// --- unattended protection: commands, schedules, retention, heartbeats -----

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn item_configured(d: u8, a: u8, name: &str, v: u8, before: Vec<String>) -> Event {
    Event::ItemConfigured {
        device: dev(d),
        account: acc(a),
        name: name.into(),
        paths: strings(&["/home"]),
        excludes: Vec::new(),
        vault: vault(v),
        before,
        after: strings(&["echo done"]),
        at: t(4),
    }
}

/// A schedule of device `d` (account `a`) backing up `item`.
fn schedule(d: u8, a: u8, name: &str, item: &str) -> Event {
    Event::ScheduleSet {
        device: dev(d),
        account: acc(a),
        name: name.into(),
        item: item.into(),
        vault: None,
        spec: "daily 02:00".into(),
        random_delay_s: 0,
        timeout_s: None,
        before: Vec::new(),
        after: Vec::new(),
        anchor: t(5),
        at: t(5),
    }
}

/// `schedule` with one field changed by `f`.
fn schedule_with(f: impl FnOnce(&mut Event)) -> Event {
    let mut e = schedule(1, 1, "nightly", "home");
    f(&mut e);
    e
}

fn retention_set(v: u8, item: Option<(u8, &str)>, ranges: Vec<RetentionRange>) -> Event {
    Event::RetentionSet {
        account: acc(1),
        vault: vault(v),
        item: item.map(|(d, n)| (dev(d), n.to_string())),
        policy: RetentionPolicy {
            ranges,
            prune_every_s: None,
        },
        at: t(6),
    }
}

fn retention_cleared(v: u8, item: Option<(u8, &str)>) -> Event {
    Event::RetentionCleared {
        account: acc(1),
        vault: vault(v),
        item: item.map(|(d, n)| (dev(d), n.to_string())),
        at: t(7),
    }
}

fn begun(j: u8, d: u8, v: u8, kind: JobKind, at: u64) -> Event {
    Event::JobBegun {
        job: job(j),
        device: dev(d),
        vault: Some(vault(v)),
        kind,
        item: Some("home".into()),
        schedule: Some("nightly".into()),
        at: t(at),
    }
}

fn heartbeat(j: u8, d: u8, at: u64) -> Event {
    Event::JobHeartbeat {
        job: job(j),
        device: dev(d),
        at: t(at),
    }
}

fn abandon(jobs: &[u8], silence_ms: u64, at: u64) -> Event {
    Event::JobsAbandoned {
        jobs: jobs.iter().map(|j| job(*j)).collect(),
        silence_ms,
        at: t(at),
    }
}

fn recorded(j: u8, status: JobStatus, started_at: u64, at: u64) -> Event {
    Event::JobRecorded {
        job: job(j),
        device: dev(1),
        vault: Some(vault(1)),
        kind: JobKind::Backup,
        item: Some("home".into()),
        schedule: Some("nightly".into()),
        status,
        log: "missed: the device was asleep".into(),
        started_at: t(started_at),
        at: t(at),
    }
}

fn applied(s: &mut State, events: &[Event]) {
    let out = run(s, events);
    assert!(out.iter().all(Outcome::is_applied), "{out:?}");
}

/// `two_devices_two_vaults()` with item `home` on device 1 (vault 1) and
/// its schedule `nightly`.
fn protected() -> State {
    let mut s = two_devices_two_vaults();
    applied(
        &mut s,
        &[
            item_configured(1, 1, "home", 1, strings(&["pg_dump"])),
            schedule(1, 1, "nightly", "home"),
        ],
    );
    s
}

fn status_of(s: &State, j: u8) -> Option<JobStatus> {
    s.jobs()[&job(j)].finished.as_ref().map(|e| e.status)
}

#[test]
fn item_commands_are_stored_bounded_and_cleared_by_item_set() {
    let mut s = protected();
    let item = &s.items()[&(dev(1), "home".to_string())];
    assert_eq!(
        (item.before.clone(), item.after.clone()),
        (strings(&["pg_dump"]), strings(&["echo done"]))
    );
    // Exactly at the bounds: 8 commands of 4 KiB each.
    let max = vec!["x".repeat(MAX_COMMAND_LEN); MAX_COMMANDS];
    applied(&mut s, &[item_configured(1, 1, "home", 1, max)]);
    assert!(matches!(
        rejected(
            &mut s,
            item_configured(1, 1, "home", 1, vec!["x".into(); MAX_COMMANDS + 1])
        ),
        Rejection::InvalidCommand(_)
    ));
    assert_eq!(
        rejected(
            &mut s,
            item_configured(1, 1, "home", 1, vec!["x".repeat(MAX_COMMAND_LEN + 1)])
        ),
        Rejection::TooLong {
            what: "command".into(),
            len: MAX_COMMAND_LEN as u64 + 1,
            max: MAX_COMMAND_LEN as u64,
        }
    );
    for bad in ["", "  ", "a\0b"] {
        assert!(matches!(
            rejected(&mut s, item_configured(1, 1, "home", 1, vec![bad.into()])),
            Rejection::InvalidCommand(_)
        ));
    }
    // Another account's vault, as before.
    assert!(matches!(
        rejected(&mut s, item_configured(1, 1, "home", 9, Vec::new())),
        Rejection::UnknownVault(_)
    ));
    // ItemSet means ItemConfigured without commands: it clears them, and
    // the item's schedules stay.
    applied(&mut s, &[item_set(1, 1, "home", 1)]);
    let item = &s.items()[&(dev(1), "home".to_string())];
    assert!(item.before.is_empty() && item.after.is_empty());
    assert_eq!(s.schedules_of(dev(1)).count(), 1);
}

#[test]
fn vault_commands_are_set_by_the_owning_account_and_cleared_by_empty_lists() {
    let mut s = protected();
    let set = |v: u8, a: u8, before: Vec<String>| Event::VaultCommandsSet {
        vault: vault(v),
        account: acc(a),
        before,
        after: strings(&["umount /mnt"]),
        at: t(8),
    };
    applied(&mut s, &[set(1, 1, strings(&["mount /mnt"]))]);
    assert_eq!(s.vaults()[&vault(1)].before, strings(&["mount /mnt"]));
    applied(
        &mut s,
        &[
            account_created(2, "bob"),
            vault_created(3, 2, "bobs", "standard"),
        ],
    );
    assert!(matches!(
        rejected(&mut s, set(3, 1, Vec::new())),
        Rejection::WrongOwner {
            kind: RecordKind::Vault,
            ..
        }
    ));
    assert_eq!(
        rejected(&mut s, set(9, 1, Vec::new())),
        Rejection::UnknownVault(vault(9))
    );
    assert!(matches!(
        rejected(&mut s, set(1, 1, vec![String::new()])),
        Rejection::InvalidCommand(_)
    ));
    applied(
        &mut s,
        &[Event::VaultCommandsSet {
            vault: vault(1),
            account: acc(1),
            before: Vec::new(),
            after: Vec::new(),
            at: t(9),
        }],
    );
    let v = &s.vaults()[&vault(1)];
    assert!(v.before.is_empty() && v.after.is_empty());
}

#[test]
fn commands_for_nests_schedule_item_and_vault_levels() {
    let mut s = protected();
    applied(
        &mut s,
        &[
            Event::VaultCommandsSet {
                vault: vault(1),
                account: acc(1),
                before: strings(&["v-before"]),
                after: strings(&["v-after"]),
                at: t(8),
            },
            schedule_with(|e| {
                if let Event::ScheduleSet { before, after, .. } = e {
                    *before = strings(&["s-before"]);
                    *after = strings(&["s-after"]);
                }
            }),
        ],
    );
    let c = s
        .commands_for(dev(1), "home", vault(1), Some("nightly"))
        .expect("item exists");
    let before: Vec<&String> = c.before().collect();
    let after: Vec<&String> = c.after().collect();
    assert_eq!(before, ["s-before", "pg_dump", "v-before"]);
    assert_eq!(after, ["v-after", "echo done", "s-after"]);
    // Unscheduled, on a vault without commands: the item's alone.
    let c = s
        .commands_for(dev(1), "home", vault(2), None)
        .expect("item exists");
    assert_eq!(c.before().collect::<Vec<_>>(), ["pg_dump"]);
    assert!(s.commands_for(dev(1), "nope", vault(1), None).is_none());
}

#[test]
fn a_schedule_names_an_item_of_its_live_device_and_vaults_of_its_account() {
    let mut s = protected();
    let sc = &s.schedules()[&(dev(1), "nightly".to_string())];
    assert_eq!(
        (sc.item.as_str(), sc.vault, sc.anchor),
        ("home", None, t(5))
    );
    assert_eq!(
        rejected(&mut s, schedule(1, 1, "x", "nope")),
        Rejection::UnknownItem {
            device: dev(1),
            name: "nope".into()
        }
    );
    // Device 2's items are not device 1's.
    assert!(matches!(
        rejected(&mut s, schedule(2, 1, "x", "home")),
        Rejection::UnknownItem { .. }
    ));
    assert!(matches!(
        rejected(&mut s, schedule(1, 1, "", "home")),
        Rejection::InvalidName {
            kind: RecordKind::Schedule,
            ..
        }
    ));
    applied(
        &mut s,
        &[
            account_created(2, "bob"),
            vault_created(3, 2, "bobs", "standard"),
        ],
    );
    assert!(matches!(
        rejected(&mut s, schedule(1, 2, "x", "home")),
        Rejection::WrongOwner {
            kind: RecordKind::Device,
            ..
        }
    ));
    let on = |v: u8| {
        schedule_with(|e| {
            if let Event::ScheduleSet { vault: sv, .. } = e {
                *sv = Some(vault(v));
            }
        })
    };
    assert!(matches!(
        rejected(&mut s, on(3)),
        Rejection::WrongOwner {
            kind: RecordKind::Vault,
            ..
        }
    ));
    assert_eq!(rejected(&mut s, on(9)), Rejection::UnknownVault(vault(9)));
    applied(&mut s, &[on(2)]);
    assert_eq!(
        s.schedules()[&(dev(1), "nightly".to_string())].vault,
        Some(vault(2))
    );
    applied(
        &mut s,
        &[Event::DeviceRevoked {
            device: dev(1),
            account: acc(1),
            at: t(9),
        }],
    );
    assert_eq!(
        rejected(&mut s, schedule(1, 1, "nightly", "home")),
        Rejection::DeviceRevoked(dev(1))
    );
}

#[test]
fn schedule_spec_delay_timeout_and_commands_are_bounded() {
    let mut s = protected();
    let spec = |text: String| {
        schedule_with(|e| {
            if let Event::ScheduleSet { spec, .. } = e {
                *spec = text;
            }
        })
    };
    applied(&mut s, &[spec("x".repeat(MAX_SCHEDULE_SPEC_LEN))]);
    assert_eq!(
        rejected(&mut s, spec("x".repeat(MAX_SCHEDULE_SPEC_LEN + 1))),
        Rejection::TooLong {
            what: "schedule spec".into(),
            len: MAX_SCHEDULE_SPEC_LEN as u64 + 1,
            max: MAX_SCHEDULE_SPEC_LEN as u64,
        }
    );
    for bad in ["", " ", "daily\n02:00"] {
        assert!(matches!(
            rejected(&mut s, spec(bad.into())),
            Rejection::InvalidSchedule(_)
        ));
    }
    let delay = |d: u32| {
        schedule_with(|e| {
            if let Event::ScheduleSet { random_delay_s, .. } = e {
                *random_delay_s = d;
            }
        })
    };
    applied(&mut s, &[delay(MAX_RANDOM_DELAY_S)]);
    assert!(matches!(
        rejected(&mut s, delay(MAX_RANDOM_DELAY_S + 1)),
        Rejection::InvalidSchedule(_)
    ));
    let timeout = |t: Option<u32>| {
        schedule_with(|e| {
            if let Event::ScheduleSet { timeout_s, .. } = e {
                *timeout_s = t;
            }
        })
    };
    applied(&mut s, &[timeout(Some(MIN_TIMEOUT_S)), timeout(None)]);
    assert!(matches!(
        rejected(&mut s, timeout(Some(0))),
        Rejection::InvalidSchedule(_)
    ));
    let commands = schedule_with(|e| {
        if let Event::ScheduleSet { after, .. } = e {
            *after = vec!["x".into(); MAX_COMMANDS + 1];
        }
    });
    assert!(matches!(
        rejected(&mut s, commands),
        Rejection::InvalidCommand(_)
    ));
}

#[test]
fn a_device_has_a_bounded_number_of_schedules_and_removes_them_by_name() {
    let mut s = protected();
    let more: Vec<Event> = (1..MAX_SCHEDULES_PER_DEVICE)
        .map(|i| schedule(1, 1, &format!("s{i}"), "home"))
        .collect();
    applied(&mut s, &more);
    assert_eq!(s.schedules_of(dev(1)).count(), MAX_SCHEDULES_PER_DEVICE);
    assert!(matches!(
        rejected(&mut s, schedule(1, 1, "one too many", "home")),
        Rejection::LimitReached { max, .. } if max == MAX_SCHEDULES_PER_DEVICE as u64
    ));
    // Replacing one at the limit is fine; another device has its own room.
    applied(&mut s, &[schedule(1, 1, "nightly", "home")]);
    let removed = |name: &str| Event::ScheduleRemoved {
        device: dev(1),
        account: acc(1),
        name: name.into(),
        at: t(9),
    };
    applied(&mut s, &[removed("nightly")]);
    assert_eq!(
        rejected(&mut s, removed("nightly")),
        Rejection::UnknownSchedule {
            device: dev(1),
            name: "nightly".into()
        }
    );
    applied(&mut s, &[schedule(1, 1, "one more", "home")]);
}

#[test]
fn removing_an_item_removes_its_schedules_and_retention_overrides() {
    let mut s = protected();
    applied(
        &mut s,
        &[
            item_configured(1, 1, "docs", 1, Vec::new()),
            schedule(1, 1, "docs nightly", "docs"),
            retention_set(1, Some((1, "home")), vec![RetentionRange::Last(3)]),
            retention_set(2, Some((1, "home")), vec![RetentionRange::Last(4)]),
            retention_set(1, Some((1, "docs")), vec![RetentionRange::Last(5)]),
            Event::ItemRemoved {
                device: dev(1),
                account: acc(1),
                name: "home".into(),
                at: t(9),
            },
        ],
    );
    let names: Vec<&str> = s.schedules_of(dev(1)).map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["docs nightly"]);
    let overrides: Vec<_> = s.item_retention().keys().cloned().collect();
    assert_eq!(overrides, [(vault(1), dev(1), "docs".to_string())]);
}

#[test]
fn deleting_a_vault_removes_its_items_schedules_and_overrides() {
    let mut s = protected();
    applied(
        &mut s,
        &[
            item_configured(1, 1, "docs", 2, Vec::new()),
            schedule(1, 1, "docs nightly", "docs"),
            // `home` (on vault 1) also backs up into vault 2 on a schedule.
            schedule_with(|e| {
                if let Event::ScheduleSet { name, vault: v, .. } = e {
                    *name = "home to 2".into();
                    *v = Some(vault(2));
                }
            }),
            retention_set(2, Some((1, "home")), vec![RetentionRange::Last(4)]),
            retention_set(1, Some((1, "home")), vec![RetentionRange::Last(3)]),
            retention_set(1, Some((1, "docs")), vec![RetentionRange::Last(5)]),
            Event::VaultDeleted {
                vault: vault(2),
                account: acc(1),
                at: t(9),
            },
        ],
    );
    let items: Vec<&str> = s.items_of(dev(1)).map(|i| i.name.as_str()).collect();
    assert_eq!(items, ["home"]);
    let names: Vec<&str> = s.schedules_of(dev(1)).map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["nightly"]);
    let overrides: Vec<_> = s.item_retention().keys().cloned().collect();
    assert_eq!(overrides, [(vault(1), dev(1), "home".to_string())]);
}

#[test]
fn revoking_a_device_removes_its_schedules_and_keeps_its_overrides() {
    let mut s = protected();
    applied(
        &mut s,
        &[
            retention_set(1, Some((1, "home")), vec![RetentionRange::Last(3)]),
            Event::DeviceRevoked {
                device: dev(1),
                account: acc(1),
                at: t(9),
            },
        ],
    );
    assert_eq!(s.schedules_of(dev(1)).count(), 0);
    assert_eq!(s.items_of(dev(1)).count(), 1);
    assert_eq!(s.item_retention().len(), 1);
    // The override of the revoked device can still be cleared, not set.
    assert_eq!(
        rejected(
            &mut s,
            retention_set(1, Some((1, "home")), vec![RetentionRange::Last(2)])
        ),
        Rejection::DeviceRevoked(dev(1))
    );
    applied(&mut s, &[retention_cleared(1, Some((1, "home")))]);
    assert!(s.item_retention().is_empty());
}

#[test]
fn deleting_an_account_leaves_no_schedule_or_override_behind() {
    let mut s = protected();
    applied(
        &mut s,
        &[
            retention_set(1, Some((1, "home")), vec![RetentionRange::Last(3)]),
            Event::VaultDeleted {
                vault: vault(1),
                account: acc(1),
                at: t(9),
            },
            Event::VaultDeleted {
                vault: vault(2),
                account: acc(1),
                at: t(9),
            },
            Event::AccountDeleted {
                account: acc(1),
                at: t(10),
            },
        ],
    );
    assert!(s.items().is_empty() && s.schedules().is_empty() && s.item_retention().is_empty());
}

#[test]
fn the_effective_retention_is_the_override_else_the_vault_default_else_everything() {
    let mut s = protected();
    let eff = |s: &State| {
        let e = s.effective_retention(vault(1), dev(1), "home");
        (e.policy.clone(), e.source)
    };
    assert_eq!(
        eff(&s),
        (RetentionPolicy::default(), RetentionSource::KeepEverything)
    );
    let default = vec![RetentionRange::OnePer {
        period: Period::Day,
        count: 7,
    }];
    applied(&mut s, &[retention_set(1, None, default.clone())]);
    assert_eq!(eff(&s).1, RetentionSource::VaultDefault);
    assert_eq!(eff(&s).0.ranges, default);
    let own = vec![
        RetentionRange::Last(3),
        RetentionRange::NewerThan { secs: 60 },
    ];
    applied(&mut s, &[retention_set(1, Some((1, "home")), own.clone())]);
    assert_eq!(eff(&s).1, RetentionSource::ItemOverride);
    assert_eq!(eff(&s).0.ranges, own);
    // Another item of the device, or the same on another vault: default.
    assert_eq!(
        s.effective_retention(vault(1), dev(2), "home").source,
        RetentionSource::VaultDefault
    );
    assert_eq!(
        s.effective_retention(vault(2), dev(1), "home").source,
        RetentionSource::KeepEverything
    );
    applied(&mut s, &[retention_cleared(1, Some((1, "home")))]);
    assert_eq!(eff(&s).1, RetentionSource::VaultDefault);
    applied(&mut s, &[retention_cleared(1, None)]);
    assert_eq!(eff(&s).1, RetentionSource::KeepEverything);
    assert_eq!(
        rejected(&mut s, retention_cleared(1, None)),
        Rejection::NoRetention {
            vault: vault(1),
            item: None
        }
    );
    assert_eq!(
        rejected(&mut s, retention_cleared(1, Some((1, "home")))),
        Rejection::NoRetention {
            vault: vault(1),
            item: Some((dev(1), "home".into()))
        }
    );
}

#[test]
fn retention_policies_name_own_vaults_and_items_and_are_bounded() {
    let mut s = protected();
    assert_eq!(
        rejected(&mut s, retention_set(1, Some((1, "nope")), Vec::new())),
        Rejection::UnknownItem {
            device: dev(1),
            name: "nope".into()
        }
    );
    assert_eq!(
        rejected(&mut s, retention_set(9, None, Vec::new())),
        Rejection::UnknownVault(vault(9))
    );
    applied(
        &mut s,
        &[
            account_created(2, "bob"),
            device_registered(3, 2, "bobs"),
            vault_created(3, 2, "bobs", "standard"),
        ],
    );
    assert!(matches!(
        rejected(&mut s, retention_set(3, None, Vec::new())),
        Rejection::WrongOwner {
            kind: RecordKind::Vault,
            ..
        }
    ));
    assert!(matches!(
        rejected(&mut s, retention_set(1, Some((3, "home")), Vec::new())),
        Rejection::WrongOwner {
            kind: RecordKind::Device,
            ..
        }
    ));
    assert!(matches!(
        rejected(&mut s, retention_cleared(1, Some((3, "home")))),
        Rejection::WrongOwner {
            kind: RecordKind::Device,
            ..
        }
    ));
    let max = MAX_RETENTION_COUNT;
    applied(
        &mut s,
        &[retention_set(
            1,
            None,
            vec![RetentionRange::Last(max); MAX_RETENTION_RANGES],
        )],
    );
    for bad in [
        vec![RetentionRange::Everything; MAX_RETENTION_RANGES + 1],
        vec![RetentionRange::Last(max + 1)],
        vec![RetentionRange::FirstOf {
            period: Period::Year,
            count: 0,
        }],
        vec![RetentionRange::OnePer {
            period: Period::Hour,
            count: max + 1,
        }],
    ] {
        assert!(matches!(
            rejected(&mut s, retention_set(1, None, bad)),
            Rejection::InvalidRetention(_)
        ));
    }
    let every = Event::RetentionSet {
        account: acc(1),
        vault: vault(1),
        item: None,
        policy: RetentionPolicy {
            ranges: Vec::new(),
            prune_every_s: Some(0),
        },
        at: t(6),
    };
    assert!(matches!(
        rejected(&mut s, every),
        Rejection::InvalidRetention(_)
    ));
}

#[test]
fn jobs_remember_their_item_and_schedule_and_recorded_jobs_start_finished() {
    let mut s = protected();
    applied(
        &mut s,
        &[
            begun(1, 1, 1, JobKind::Retention, 100),
            recorded(2, JobStatus::Missed, 100, 100),
            recorded(3, JobStatus::SkippedAlreadyRunning, 100, 150),
        ],
    );
    let j = &s.jobs()[&job(1)];
    assert_eq!(
        (
            j.item.as_deref(),
            j.schedule.as_deref(),
            j.last_seen,
            j.revived
        ),
        (Some("home"), Some("nightly"), t(100), false)
    );
    assert_eq!(j.kind, JobKind::Retention);
    assert_eq!(status_of(&s, 2), Some(JobStatus::Missed));
    let r = &s.jobs()[&job(3)];
    assert_eq!((r.started_at, r.last_seen), (t(100), t(100)));
    assert_eq!(r.finished.as_ref().map(|e| e.at), Some(t(150)));
    assert_eq!(s.running_jobs().map(|j| j.id).collect::<Vec<_>>(), [job(1)]);
    assert!(matches!(
        rejected(&mut s, recorded(3, JobStatus::Missed, 100, 100)),
        Rejection::DuplicateId {
            kind: RecordKind::Job,
            ..
        }
    ));
    assert!(matches!(
        rejected(&mut s, recorded(4, JobStatus::Missed, 100, 99)),
        Rejection::TimeTravel { .. }
    ));
    let long_log = Event::JobRecorded {
        job: job(4),
        device: dev(1),
        vault: None,
        kind: JobKind::Backup,
        item: None,
        schedule: None,
        status: JobStatus::Failed,
        log: "x".repeat(MAX_JOB_LOG_LEN + 1),
        started_at: t(1),
        at: t(2),
    };
    assert!(matches!(
        rejected(&mut s, long_log),
        Rejection::TooLong { .. }
    ));
    assert_eq!(
        rejected(&mut s, recorded(4, JobStatus::Abandoned, 100, 100)),
        Rejection::StatusReserved(JobStatus::Abandoned)
    );
    let bad_item = Event::JobBegun {
        job: job(4),
        device: dev(1),
        vault: None,
        kind: JobKind::Backup,
        item: Some(String::new()),
        schedule: None,
        at: t(1),
    };
    assert!(matches!(
        rejected(&mut s, bad_item),
        Rejection::InvalidName {
            kind: RecordKind::Item,
            ..
        }
    ));
}

#[test]
fn heartbeats_come_from_the_jobs_device_and_set_last_seen() {
    let mut s = protected();
    applied(&mut s, &[begun(1, 1, 1, JobKind::Backup, 100)]);
    applied(&mut s, &[heartbeat(1, 1, 500), heartbeat(1, 1, 300)]);
    // A late heartbeat never moves `last_seen` back.
    assert_eq!(s.jobs()[&job(1)].last_seen, t(500));
    assert!(matches!(
        rejected(&mut s, heartbeat(1, 2, 600)),
        Rejection::WrongOwner {
            kind: RecordKind::Job,
            ..
        }
    ));
    assert_eq!(
        rejected(&mut s, heartbeat(9, 1, 600)),
        Rejection::UnknownJob(job(9))
    );
    assert!(matches!(
        rejected(&mut s, heartbeat(1, 1, 99)),
        Rejection::TimeTravel { .. }
    ));
    applied(
        &mut s,
        &[Event::JobFinished {
            job: job(1),
            device: dev(1),
            status: JobStatus::Succeeded,
            log: String::new(),
            at: t(700),
        }],
    );
    assert_eq!(
        rejected(&mut s, heartbeat(1, 1, 800)),
        Rejection::JobAlreadyFinished(job(1))
    );
    // Only the cluster ends a job `Abandoned`.
    applied(&mut s, &[begun(2, 1, 1, JobKind::Backup, 100)]);
    let end = Event::JobCompleted {
        job: job(2),
        device: dev(1),
        status: JobStatus::Abandoned,
        files: 0,
        bytes: 0,
        error: None,
        log: String::new(),
        at: t(200),
    };
    assert_eq!(
        rejected(&mut s, end),
        Rejection::StatusReserved(JobStatus::Abandoned)
    );
}

#[test]
fn jobs_abandoned_ends_only_running_jobs_silent_for_the_silence() {
    let mut s = protected();
    let silence = 60_000;
    applied(
        &mut s,
        &[
            begun(1, 1, 1, JobKind::Backup, 1_000),
            begun(2, 1, 1, JobKind::Backup, 1_000),
            begun(3, 2, 2, JobKind::Restore, 1_000),
            recorded(4, JobStatus::Missed, 1_000, 1_000),
            heartbeat(2, 1, 30_000),
            abandon(&[1, 2, 4, 9], silence, 61_000),
        ],
    );
    // Job 1 was silent for 60 s: abandoned at the event's time. Job 2
    // reported 31 s before; job 3 was not listed; job 4 had finished; job
    // 9 does not exist.
    let end = s.jobs()[&job(1)].finished.clone().expect("ended");
    assert_eq!((end.status, end.at), (JobStatus::Abandoned, t(61_000)));
    assert!(end.error.is_some_and(|e| e.starts_with(SILENT)));
    assert_eq!(status_of(&s, 2), None);
    assert_eq!(status_of(&s, 3), None);
    assert_eq!(status_of(&s, 4), Some(JobStatus::Missed));
    assert_eq!(
        rejected(&mut s, abandon(&[2], MIN_ABANDON_SILENCE_MS - 1, 100_000)),
        Rejection::SilenceTooShort {
            silence_ms: MIN_ABANDON_SILENCE_MS - 1,
            min: MIN_ABANDON_SILENCE_MS
        }
    );
    let many = Event::JobsAbandoned {
        jobs: vec![job(2); MAX_JOBS_ABANDONED_PER_EVENT + 1],
        silence_ms: silence,
        at: t(100_000),
    };
    assert!(matches!(
        rejected(&mut s, many),
        Rejection::LimitReached { max, .. } if max == MAX_JOBS_ABANDONED_PER_EVENT as u64
    ));
    applied(&mut s, &[abandon(&[2], MIN_ABANDON_SILENCE_MS, 40_000)]);
    assert_eq!(status_of(&s, 2), Some(JobStatus::Abandoned));
}

#[test]
fn a_report_revives_an_abandoned_job_which_then_never_commits() {
    let mut s = protected();
    applied(
        &mut s,
        &[
            begun(1, 1, 1, JobKind::Backup, 1_000),
            begun(2, 1, 1, JobKind::Backup, 1_000),
            abandon(&[1, 2], 10_000, 20_000),
            heartbeat(1, 1, 25_000),
        ],
    );
    let j = &s.jobs()[&job(1)];
    assert!(j.is_running() && j.revived && j.was_abandoned());
    assert_eq!(j.last_seen, t(25_000));
    assert_eq!(s.running_jobs().count(), 1);
    let reason = not_running(rejected(&mut s, committed_by(1, 1, 1, 1, 26_000)));
    assert!(reason.contains("revived"), "{reason}");
    // Still abandoned (not revived): refused as abandoned.
    let reason = not_running(rejected(&mut s, committed_by(1, 1, 1, 2, 26_000)));
    assert!(reason.contains("stopped reporting"), "{reason}");
    // A finish revives too, and records the device's status.
    applied(
        &mut s,
        &[Event::JobCompleted {
            job: job(2),
            device: dev(1),
            status: JobStatus::Timeout,
            files: 1,
            bytes: 2,
            error: None,
            log: String::new(),
            at: t(30_000),
        }],
    );
    let j = &s.jobs()[&job(2)];
    assert!(j.revived && j.was_abandoned());
    assert_eq!(status_of(&s, 2), Some(JobStatus::Timeout));
    // A revived job is abandoned again after another silence.
    applied(&mut s, &[abandon(&[1], 10_000, 40_000)]);
    assert_eq!(status_of(&s, 1), Some(JobStatus::Abandoned));
}

#[test]
fn the_day_old_rule_ends_jobs_failed_under_job_started_and_abandoned_under_job_begun() {
    let mut s = protected();
    applied(
        &mut s,
        &[
            backup_started(1, 1, 1, 100),
            begun(2, 1, 1, JobKind::Backup, 100),
            // The old event, as old logs replay it: `Failed`, ABANDONED text.
            backup_started(3, 1, 1, 100 + DAY),
        ],
    );
    for j in [1, 2] {
        let end = s.jobs()[&job(j)].finished.clone().expect("ended");
        assert_eq!(
            (end.status, end.error.as_deref()),
            (JobStatus::Failed, Some(ABANDONED))
        );
        assert!(s.jobs()[&job(j)].was_abandoned());
    }
    // Neither a heartbeat nor an old finish revives a `Failed` job.
    assert_eq!(
        rejected(&mut s, heartbeat(1, 1, 200 + DAY)),
        Rejection::JobAlreadyFinished(job(1))
    );
    // The new event ends them `Abandoned` (same text); they can be revived.
    applied(
        &mut s,
        &[
            begun(4, 1, 1, JobKind::Backup, 200 + DAY),
            begun(5, 1, 1, JobKind::Backup, 300 + 2 * DAY),
        ],
    );
    for j in [3, 4] {
        let end = s.jobs()[&job(j)].finished.clone().expect("ended");
        assert_eq!(
            (end.status, end.error.as_deref()),
            (JobStatus::Abandoned, Some(ABANDONED))
        );
    }
    applied(&mut s, &[heartbeat(4, 1, 400 + 2 * DAY)]);
    assert!(s.jobs()[&job(4)].revived);
}

#[test]
fn a_repeated_request_id_of_a_new_event_applies_once() {
    let mut s = protected();
    applied(&mut s, &[begun(1, 1, 1, JobKind::Backup, 1_000)]);
    let r = Request {
        request_id: RequestId([0xab; 16]),
        event: abandon(&[1], 10_000, 20_000),
    };
    assert_eq!(apply(&mut s, &r), Outcome::Applied);
    applied(&mut s, &[heartbeat(1, 1, 25_000)]);
    // The retry answers the first outcome and does not abandon the revived job.
    assert_eq!(apply(&mut s, &r), Outcome::Applied);
    assert!(s.jobs()[&job(1)].is_running());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// An event of `JobsAbandoned` ends only jobs whose last report is at
    /// least `silence_ms` before it; a job that heartbeated within the
    /// silence is never among them.
    #[test]
    fn abandoned_jobs_were_silent(events in proptest::collection::vec(arb_event(), 0..80)) {
        let mut s = State::default();
        for r in requests(events) {
            let before = s.clone();
            let outcome = apply(&mut s, &r);
            let Event::JobsAbandoned { silence_ms, at, .. } = &r.event else { continue };
            if !outcome.is_applied() {
                continue;
            }
            for (id, j) in s.jobs() {
                let Some(old) = before.jobs().get(id) else { continue };
                let ended_now = old.is_running()
                    && j.finished.as_ref().is_some_and(|e| e.status == JobStatus::Abandoned);
                if ended_now {
                    prop_assert!(at.0.saturating_sub(old.last_seen.0) >= *silence_ms,
                        "job {} seen at {} abandoned at {} with silence {}", id, old.last_seen, at, silence_ms);
                }
            }
        }
    }

    /// A job that was ever counted as abandoned never gets a snapshot
    /// committed under it.
    #[test]
    fn a_job_once_abandoned_never_commits(events in proptest::collection::vec(arb_event(), 0..80)) {
        let mut s = State::default();
        let mut ever_abandoned = std::collections::BTreeSet::new();
        for r in requests(events) {
            let outcome = apply(&mut s, &r);
            if let (Event::SnapshotCommittedByJob { job, .. }, true) = (&r.event, outcome.is_applied()) {
                prop_assert!(!ever_abandoned.contains(job), "job {} committed after abandonment", job);
            }
            ever_abandoned.extend(s.jobs().values().filter(|j| j.was_abandoned()).map(|j| j.id));
        }
    }

    /// The effective retention policy is the override whenever one exists,
    /// else the vault's default, else keep everything.
    #[test]
    fn the_effective_policy_is_the_override_when_one_exists(events in proptest::collection::vec(arb_event(), 0..80)) {
        let mut s = State::default();
        for r in requests(events) {
            apply(&mut s, &r);
        }
        for ((v, d, i), policy) in s.item_retention() {
            let e = s.effective_retention(*v, *d, i);
            prop_assert_eq!(e.source, RetentionSource::ItemOverride);
            prop_assert_eq!(e.policy, policy);
        }
        for v in s.vaults().values() {
            for item in s.items().values() {
                if s.item_retention().contains_key(&(v.id, item.device, item.name.clone())) {
                    continue;
                }
                let e = s.effective_retention(v.id, item.device, &item.name);
                match &v.retention {
                    Some(p) => prop_assert_eq!((e.source, e.policy), (RetentionSource::VaultDefault, p)),
                    None => prop_assert_eq!((e.source, e.policy), (RetentionSource::KeepEverything, &RetentionPolicy::default())),
                }
            }
        }
    }

    /// Every schedule names an existing item of its device and, if it names
    /// one, an existing vault; every override an existing item and vault.
    #[test]
    fn schedules_and_overrides_never_dangle(events in proptest::collection::vec(arb_event(), 0..80)) {
        let mut s = State::default();
        for r in requests(events) {
            apply(&mut s, &r);
            for sc in s.schedules().values() {
                prop_assert!(s.items().contains_key(&(sc.device, sc.item.clone())), "{:?}", sc);
                prop_assert!(sc.vault.is_none_or(|v| s.vaults().contains_key(&v)), "{:?}", sc);
                prop_assert!(s.devices().get(&sc.device).is_some_and(Device::is_live));
            }
            for (v, d, i) in s.item_retention().keys() {
                prop_assert!(s.vaults().contains_key(v));
                prop_assert!(s.items().contains_key(&(*d, i.clone())));
            }
        }
    }
}
