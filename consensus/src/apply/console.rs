//! `apply` for the console's events: operators and their sessions,
//! organizations, accounts created in an organization, and the audit
//! wrapper with its authorization rule ([`permits`]).
//!
//! The node checks who asks (a session token, the admin token) before it
//! proposes; the state machine checks what that actor may do, so the rule
//! is one pure function every replica evaluates alike: a cluster admin and
//! the admin token may do everything, an org admin may create and manage
//! the accounts, devices and operators of their organization (never a
//! cluster admin), begin jobs on their devices (dispatch) and brand it
//! (not change its tiers), a read-only operator changes nothing but their
//! own sessions and second factor, and a user acting through a device
//! ([`Actor::Device`]) may only begin a job on a device of their own
//! account (not while it is disabled).
//!
//! Disabled accounts and TOTP replay protection are decided here too:
//! [`check_enabled`] refuses logins of a disabled account and
//! [`totp_step_fresh`] a TOTP step at or before the operator's last one.

use super::{check_len, check_name, taken, Rejection, MAX_LOGIN_FROM_LEN};
use crate::console::{Actor, AuditEntry, Operator, OperatorRole, OperatorSession, Org};
use crate::event::{Credentials, Event};
use crate::ids::{AccountId, DeviceId, UnixMillis};
use crate::state::{Disabled, State};
use crate::RecordKind;

/// Most open sessions one operator keeps; a login beyond drops the oldest.
pub const MAX_SESSIONS_PER_OPERATOR: usize = 16;

/// How many audit entries the state keeps; older ones are dropped, oldest
/// first (the log itself keeps them until it is compacted).
pub const MAX_AUDIT_ENTRIES: usize = 10_000;

/// Longest branding text (display name, support URL), in bytes.
pub const MAX_BRANDING_LEN: usize = 256;

/// Most tiers an organization may offer.
pub const MAX_ORG_TIERS: usize = 32;

/// Longest TOTP secret, in bytes.
pub const MAX_TOTP_SECRET_LEN: usize = 64;

/// Length of a session id (hex of 16 bytes).
const SESSION_ID_LEN: usize = 32;

/// [`Event::Audited`]: checks the actor's role against the inner event,
/// applies it, and records the entry.
pub(super) fn apply_audited(
    s: &mut State,
    actor: &Actor,
    from: &str,
    at: UnixMillis,
    event: &Event,
) -> Result<(), Rejection> {
    if matches!(event, Event::Audited { .. }) {
        return Err(Rejection::NotPermitted {
            actor: actor.to_string(),
            action: "audited".into(),
        });
    }
    check_len("request origin", from, MAX_LOGIN_FROM_LEN)?;
    permits(s, actor, event)?;
    super::apply_event(s, event)?;
    let seq = s.next_audit_seq();
    let entry = AuditEntry {
        seq,
        actor: actor.clone(),
        from: from.to_owned(),
        action: event.kind().to_owned(),
        target: target_of(s, event),
        at,
    };
    s.audit.insert(seq, entry);
    while s.audit.len() > MAX_AUDIT_ENTRIES {
        let Some(oldest) = s.audit.get_min().map(|(seq, _)| *seq) else {
            break;
        };
        s.audit.remove(&oldest);
    }
    Ok(())
}

/// The audit entries an [`Event::Audited`] drops: the oldest when the trail
/// is full (for the store, which rewrites exactly these keys).
pub(crate) fn audit_evicted(s: &State) -> Option<u64> {
    (s.audit.len() >= MAX_AUDIT_ENTRIES)
        .then(|| s.audit.keys().next().copied())
        .flatten()
}

/// Whether `actor` may take `event`. The admin token and cluster admins
/// may take every event; see the module doc for the others.
pub fn permits(s: &State, actor: &Actor, event: &Event) -> Result<(), Rejection> {
    let name = match actor {
        Actor::AdminToken { .. } => return Ok(()),
        Actor::Device { device } => return device_permits(s, actor, *device, event),
        Actor::Operator { name } => name,
    };
    let op = s
        .operators
        .get(name)
        .ok_or_else(|| Rejection::UnknownOperator(name.clone()))?;
    let refuse = || Rejection::NotPermitted {
        actor: actor.to_string(),
        action: event.kind().to_owned(),
    };
    let own_sessions = match event {
        Event::OperatorSessionOpened { operator, .. }
        | Event::OperatorSessionStarted { operator, .. }
        | Event::OperatorSessionRevoked { operator, .. }
        | Event::OperatorTotpSet { operator, .. } => operator == name,
        _ => false,
    };
    if own_sessions || op.role == OperatorRole::ClusterAdmin {
        return Ok(());
    }
    let (OperatorRole::OrgAdmin, Some(org)) = (op.role, op.org.as_deref()) else {
        return Err(refuse());
    };
    let in_org = |account: &AccountId| s.org_of(*account) == org;
    let allowed = match event {
        Event::AccountCreatedInOrg { org: o, .. } => o == org,
        Event::DeviceRevoked { account, .. }
        | Event::AccountDeleted { account, .. }
        | Event::AccountDisabled { account, .. }
        | Event::AccountEnabled { account, .. } => in_org(account),
        Event::OperatorCreated { role, org: o, .. } => {
            *role != OperatorRole::ClusterAdmin && o.as_deref() == Some(org)
        }
        Event::OperatorRemoved { name: other, .. }
        | Event::OperatorSessionRevoked {
            operator: other, ..
        }
        | Event::OperatorTotpSet {
            operator: other, ..
        } => s
            .operators
            .get(other)
            .is_some_and(|o| o.role != OperatorRole::ClusterAdmin && o.org.as_deref() == Some(org)),
        Event::JobBegun { device, .. } => {
            s.devices().get(device).is_some_and(|d| in_org(&d.account))
        }
        Event::OrgConfigured { name: o, tiers, .. } => {
            let current = s.orgs.get(org).map(|c| c.tiers.as_slice()).unwrap_or(&[]);
            o == org && tiers.as_slice() == current
        }
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(refuse())
    }
}

/// What a user, through their device `by`, may take: starting a job on a
/// live device of the same account (a dispatched job), nothing else.
fn device_permits(s: &State, actor: &Actor, by: DeviceId, event: &Event) -> Result<(), Rejection> {
    let account_of = |d: &DeviceId| {
        s.devices()
            .get(d)
            .filter(|d| d.is_live() && s.disabled(d.account).is_none())
            .map(|d| d.account)
    };
    let allowed = match event {
        Event::JobBegun { device, .. } => {
            account_of(&by).is_some() && account_of(&by) == account_of(device)
        }
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(Rejection::NotPermitted {
            actor: actor.to_string(),
            action: event.kind().to_owned(),
        })
    }
}

/// What an audited event acts on, for the trail.
fn target_of(s: &State, event: &Event) -> String {
    match event {
        Event::AccountCreated { name, .. }
        | Event::AccountCreatedInOrg { name, .. }
        | Event::OperatorCreated { name, .. }
        | Event::OperatorRemoved { name, .. }
        | Event::OrgConfigured { name, .. }
        | Event::TierDefined { name, .. }
        | Event::TierConfigured { name, .. }
        | Event::TierPooled { name, .. } => name.clone(),
        Event::OperatorSessionOpened { operator, .. }
        | Event::OperatorSessionStarted { operator, .. }
        | Event::OperatorSessionRevoked { operator, .. }
        | Event::OperatorTotpSet { operator, .. } => operator.clone(),
        Event::AccountDeleted { account, .. } | Event::AccountPasswordChanged { account, .. } => {
            account.to_string()
        }
        Event::AccountDisabled { account, .. } | Event::AccountEnabled { account, .. } => s
            .accounts()
            .get(account)
            .map_or_else(|| account.to_string(), |a| a.name.clone()),
        Event::DeviceRevoked { device, .. } => s
            .devices()
            .get(device)
            .map_or_else(|| device.to_string(), |d| format!("{} ({device})", d.name)),
        Event::StorageNodeDrained { node, .. }
        | Event::StorageNodeRemoved { node, .. }
        | Event::NodeProfileSet { node, .. } => {
            format!("node {node}")
        }
        Event::LicenseConfigured { cluster_id, .. } => cluster_id.clone(),
        Event::JobBegun { job, .. } => job.to_string(),
        _ => String::new(),
    }
}

/// The fields of [`Event::OperatorCreated`], borrowed.
pub(super) struct NewOperator<'a> {
    pub(super) name: &'a str,
    pub(super) role: OperatorRole,
    pub(super) org: Option<&'a str>,
    pub(super) credentials: &'a Credentials,
    pub(super) totp_secret: Option<&'a [u8]>,
    pub(super) at: UnixMillis,
}

pub(super) fn apply_operator_created(s: &mut State, o: NewOperator<'_>) -> Result<(), Rejection> {
    check_name(RecordKind::Operator, o.name)?;
    if s.operators.contains_key(o.name) {
        return Err(taken(RecordKind::Operator, o.name));
    }
    match (o.role, o.org) {
        (OperatorRole::ClusterAdmin, Some(_)) => {
            return Err(Rejection::InvalidOperator(
                "a cluster admin belongs to no organization".into(),
            ))
        }
        (OperatorRole::OrgAdmin, None) => {
            return Err(Rejection::InvalidOperator(
                "an org admin needs an organization".into(),
            ))
        }
        (_, Some(org)) if !s.org_exists(org) => return Err(Rejection::UnknownOrg(org.to_owned())),
        _ => {}
    }
    check_totp_secret(o.totp_secret)?;
    s.operators.insert(
        o.name.to_owned(),
        Operator {
            name: o.name.to_owned(),
            role: o.role,
            org: o.org.map(str::to_owned),
            credentials: o.credentials.clone(),
            totp_secret: o.totp_secret.map(<[u8]>::to_vec),
            created_at: o.at,
            sessions: Default::default(),
        },
    );
    Ok(())
}

/// Refuses a TOTP secret of an unusable length.
fn check_totp_secret(secret: Option<&[u8]>) -> Result<(), Rejection> {
    match secret {
        Some(secret) if secret.len() < 10 || secret.len() > MAX_TOTP_SECRET_LEN => {
            Err(Rejection::InvalidOperator(format!(
                "a TOTP secret has 10 to {MAX_TOTP_SECRET_LEN} bytes"
            )))
        }
        _ => Ok(()),
    }
}

pub(super) fn apply_operator_removed(s: &mut State, name: &str) -> Result<(), Rejection> {
    s.operators
        .remove(name)
        .ok_or_else(|| Rejection::UnknownOperator(name.to_owned()))?;
    s.totp_steps.remove(name);
    Ok(())
}

/// [`Event::OperatorTotpSet`]: enrols, re-keys or removes the second
/// factor. The last step used stays: steps only grow, so a new secret's
/// codes are still checked against it.
pub(super) fn apply_totp_set(
    s: &mut State,
    operator: &str,
    secret: Option<&[u8]>,
) -> Result<(), Rejection> {
    check_totp_secret(secret)?;
    let op = s
        .operators
        .get_mut(operator)
        .ok_or_else(|| Rejection::UnknownOperator(operator.to_owned()))?;
    op.totp_secret = secret.map(<[u8]>::to_vec);
    Ok(())
}

/// Whether a TOTP code of `step` may open a session after the operator's
/// `last` used step: only a later step may (a code is good once).
pub fn totp_step_fresh(last: Option<u64>, step: u64) -> bool {
    last.is_none_or(|last| step > last)
}

/// Longest reason of a disabled account, in bytes.
pub const MAX_DISABLE_REASON_LEN: usize = 256;

/// Refuses anything that needs `account` enabled.
pub(crate) fn check_enabled(s: &State, account: AccountId) -> Result<(), Rejection> {
    match s.disabled(account) {
        Some(d) => Err(Rejection::AccountDisabled {
            account,
            reason: d.reason.clone(),
        }),
        None => Ok(()),
    }
}

pub(super) fn apply_account_disabled(
    s: &mut State,
    account: AccountId,
    reason: &str,
    at: UnixMillis,
) -> Result<(), Rejection> {
    check_len("reason", reason, MAX_DISABLE_REASON_LEN)?;
    if !s.accounts.contains_key(&account) {
        return Err(Rejection::UnknownAccount(account));
    }
    s.disabled.insert(
        account,
        Disabled {
            reason: reason.to_owned(),
            at,
        },
    );
    Ok(())
}

/// [`Event::AccountEnabled`]; enabling an enabled account changes nothing.
pub(super) fn apply_account_enabled(s: &mut State, account: AccountId) -> Result<(), Rejection> {
    if !s.accounts.contains_key(&account) {
        return Err(Rejection::UnknownAccount(account));
    }
    s.disabled.remove(&account);
    Ok(())
}

/// The fields of [`Event::OperatorSessionOpened`], borrowed.
pub(super) struct NewSession<'a> {
    pub(super) operator: &'a str,
    pub(super) session: &'a str,
    pub(super) token_hash: &'a [u8],
    pub(super) expires_at: UnixMillis,
    pub(super) from: &'a str,
    pub(super) totp_step: Option<u64>,
    pub(super) at: UnixMillis,
}

pub(super) fn apply_session_opened(s: &mut State, n: NewSession<'_>) -> Result<(), Rejection> {
    check_len("login origin", n.from, MAX_LOGIN_FROM_LEN)?;
    if n.session.len() != SESSION_ID_LEN || !n.session.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Rejection::InvalidOperator(
            "a session id is 32 hex digits".into(),
        ));
    }
    if n.expires_at <= n.at {
        return Err(Rejection::TimeTravel {
            what: "session expiry".into(),
            earlier: n.at,
            later: n.expires_at,
        });
    }
    let op = s
        .operators
        .get_mut(n.operator)
        .ok_or_else(|| Rejection::UnknownOperator(n.operator.to_owned()))?;
    if op.sessions.contains_key(n.session) {
        return Err(super::dup(RecordKind::Operator, n.session));
    }
    if let Some(step) = n.totp_step {
        let last = s.totp_steps.get(n.operator).copied();
        if !totp_step_fresh(last, step) {
            return Err(Rejection::TotpReplayed {
                operator: n.operator.to_owned(),
                last: last.unwrap_or_default(),
            });
        }
        s.totp_steps.insert(n.operator.to_owned(), step);
    }
    op.sessions.retain(|_, x| x.expires_at > n.at);
    while op.sessions.len() >= MAX_SESSIONS_PER_OPERATOR {
        let oldest = op
            .sessions
            .iter()
            .min_by_key(|(id, x)| (x.opened_at, (*id).clone()))
            .map(|(id, _)| id.clone());
        if let Some(id) = oldest {
            op.sessions.remove(&id);
        }
    }
    op.sessions.insert(
        n.session.to_owned(),
        OperatorSession {
            token_hash: n.token_hash.to_vec(),
            opened_at: n.at,
            expires_at: n.expires_at,
            from: n.from.to_owned(),
        },
    );
    Ok(())
}

pub(super) fn apply_session_revoked(
    s: &mut State,
    operator: &str,
    session: Option<&str>,
) -> Result<(), Rejection> {
    let op = s
        .operators
        .get_mut(operator)
        .ok_or_else(|| Rejection::UnknownOperator(operator.to_owned()))?;
    match session {
        None => op.sessions.clear(),
        Some(id) => {
            op.sessions
                .remove(id)
                .ok_or_else(|| Rejection::UnknownSession(id.to_owned()))?;
        }
    }
    Ok(())
}

pub(super) fn apply_org_configured(s: &mut State, org: Org) -> Result<(), Rejection> {
    check_name(RecordKind::Org, &org.name)?;
    check_len("display name", &org.display_name, MAX_BRANDING_LEN)?;
    check_len("support URL", &org.support_url, MAX_BRANDING_LEN)?;
    if org.tiers.len() > MAX_ORG_TIERS {
        return Err(Rejection::LimitReached {
            what: "tiers of an organization".into(),
            max: MAX_ORG_TIERS as u64,
            hint: String::new(),
        });
    }
    if let Some(t) = org.tiers.iter().find(|t| !s.tiers.contains_key(*t)) {
        return Err(Rejection::UnknownTier(t.clone()));
    }
    s.orgs.insert(org.name.clone(), org);
    Ok(())
}

/// Puts a new account into `org` (nothing to record for the default one).
pub(super) fn check_org(s: &State, org: &str) -> Result<(), Rejection> {
    if s.org_exists(org) {
        Ok(())
    } else {
        Err(Rejection::UnknownOrg(org.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{apply, Outcome};
    use crate::console::DEFAULT_ORG;
    use crate::testgen::{acc, creds, dev, requests, t};

    fn operator(name: &str, role: OperatorRole, org: Option<&str>) -> Event {
        Event::OperatorCreated {
            name: name.into(),
            role,
            org: org.map(str::to_owned),
            credentials: creds(9),
            totp_secret: None,
            at: t(3),
        }
    }

    fn by(actor: &str, event: Event) -> Event {
        Event::Audited {
            actor: Actor::Operator { name: actor.into() },
            from: "10.0.0.1".into(),
            at: t(4),
            event: Box::new(event),
        }
    }

    fn org(name: &str, tiers: &[&str]) -> Event {
        Event::OrgConfigured {
            name: name.into(),
            display_name: format!("{name} Inc."),
            support_url: "https://support.example".into(),
            tiers: tiers.iter().map(|t| (*t).to_owned()).collect(),
            at: t(3),
        }
    }

    fn user_in(n: u8, name: &str, org: &str) -> Event {
        Event::AccountCreatedInOrg {
            account: acc(n),
            name: name.into(),
            credentials: creds(n),
            org: org.into(),
            at: t(3),
        }
    }

    /// Applies `events` after the standard setup; returns the outcomes of
    /// `events` only.
    fn run(events: Vec<Event>) -> (State, Vec<Outcome>) {
        let setup = crate::testgen::setup().len();
        let mut state = State::default();
        let outcomes: Vec<Outcome> = requests(events)
            .iter()
            .map(|r| apply(&mut state, r))
            .collect();
        (state, outcomes[setup..].to_vec())
    }

    fn not_permitted(o: &Outcome) -> bool {
        matches!(o, Outcome::Rejected(Rejection::NotPermitted { .. }))
    }

    #[test]
    fn roles_bound_what_an_operator_may_do() {
        let (state, out) = run(vec![
            org("acme", &[]),
            org("zeta", &[]),
            operator("root", OperatorRole::ClusterAdmin, None),
            operator("oa", OperatorRole::OrgAdmin, Some("acme")),
            operator("ro", OperatorRole::ReadOnly, None),
            // The org admin creates a user in their org, not in another.
            by("oa", user_in(5, "carol", "acme")),
            by("oa", user_in(6, "dave", "zeta")),
            // …creates an org admin of their org, never a cluster admin.
            by("oa", operator("oa2", OperatorRole::OrgAdmin, Some("acme"))),
            by("oa", operator("boss", OperatorRole::ClusterAdmin, None)),
            by("oa", operator("za", OperatorRole::OrgAdmin, Some("zeta"))),
            // …brands their org but cannot change its tiers.
            by("oa", org("acme", &[])),
            by("oa", org("acme", &["standard"])),
            // …cannot revoke a device of the default org.
            by(
                "oa",
                Event::DeviceRevoked {
                    device: dev(0),
                    account: acc(0),
                    at: t(5),
                },
            ),
            // Read-only changes nothing.
            by("ro", user_in(7, "erin", "acme")),
            // The cluster admin does anything.
            by("root", user_in(8, "frank", "zeta")),
            by("root", org("acme", &["standard"])),
            // Unknown actors and nested audits are refused.
            by("ghost", user_in(9, "gina", "acme")),
            by("root", by("root", org("zeta", &[]))),
        ]);
        let ok = Outcome::is_applied;
        assert!(out[..5].iter().all(ok), "{out:?}");
        assert!(ok(&out[5]), "{:?}", out[5]);
        assert!(not_permitted(&out[6]));
        assert!(ok(&out[7]));
        assert!(not_permitted(&out[8]));
        assert!(not_permitted(&out[9]));
        assert!(ok(&out[10]));
        assert!(not_permitted(&out[11]));
        assert!(not_permitted(&out[12]));
        assert!(not_permitted(&out[13]));
        assert!(ok(&out[14]) && ok(&out[15]));
        assert_eq!(
            out[16],
            Outcome::Rejected(Rejection::UnknownOperator("ghost".into()))
        );
        assert!(not_permitted(&out[17]));
        assert_eq!(state.org_of(acc(5)), "acme");
        assert_eq!(state.org_of(acc(8)), "zeta");
        assert_eq!(state.org_of(acc(0)), DEFAULT_ORG);
        // Only applied actions are audited, in order, with their actor.
        let trail: Vec<(String, String)> = state
            .audit()
            .values()
            .map(|e| (e.actor.to_string(), e.target.clone()))
            .collect();
        assert_eq!(
            trail,
            [
                ("operator oa", "carol"),
                ("operator oa", "oa2"),
                ("operator oa", "acme"),
                ("operator root", "frank"),
                ("operator root", "acme"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        assert_eq!(state.orgs()["acme"].tiers, ["standard"]);
    }

    /// An organization with a tier list lets its accounts request vaults
    /// of those tiers only; the default organization offers every tier.
    #[test]
    fn an_organization_offers_only_its_tiers() {
        let vault = |v: u8, a: u8, tier: &str| Event::VaultCreated {
            vault: crate::testgen::vault(v),
            account: acc(a),
            name: format!("v{v}"),
            tier: tier.into(),
            wrapped_keys: vec![1],
            at: t(6),
        };
        let (state, out) = run(vec![
            crate::testgen::tier("gold", true),
            org("acme", &["gold"]),
            user_in(5, "carol", "acme"),
            vault(10, 5, "standard"),
            vault(11, 5, "gold"),
            vault(12, 0, "gold"),
        ]);
        assert_eq!(
            out[3],
            Outcome::Rejected(Rejection::TierNotRequestable("standard".into()))
        );
        assert!(out[4].is_applied() && out[5].is_applied(), "{out:?}");
        assert!(state.offers_tier(acc(5), "gold") && !state.offers_tier(acc(5), "standard"));
        assert!(state.offers_tier(acc(0), "standard"));
    }

    #[test]
    fn operators_need_a_fitting_organization() {
        let (_, out) = run(vec![
            operator("a", OperatorRole::ClusterAdmin, Some("default")),
            operator("b", OperatorRole::OrgAdmin, None),
            operator("c", OperatorRole::OrgAdmin, Some("nowhere")),
            operator("d", OperatorRole::OrgAdmin, Some(DEFAULT_ORG)),
            operator("d", OperatorRole::ReadOnly, None),
            user_in(5, "x", "nowhere"),
            org("bad", &["no-such-tier"]),
        ]);
        assert!(matches!(
            out[0],
            Outcome::Rejected(Rejection::InvalidOperator(_))
        ));
        assert!(matches!(
            out[1],
            Outcome::Rejected(Rejection::InvalidOperator(_))
        ));
        assert_eq!(
            out[2],
            Outcome::Rejected(Rejection::UnknownOrg("nowhere".into()))
        );
        assert!(out[3].is_applied());
        assert!(matches!(
            out[4],
            Outcome::Rejected(Rejection::NameTaken { .. })
        ));
        assert_eq!(
            out[5],
            Outcome::Rejected(Rejection::UnknownOrg("nowhere".into()))
        );
        assert_eq!(
            out[6],
            Outcome::Rejected(Rejection::UnknownTier("no-such-tier".into()))
        );
    }

    fn session(op: &str, n: u8, at: u64, expires: u64) -> Event {
        Event::OperatorSessionOpened {
            operator: op.into(),
            session: hex::encode([n; 16]),
            token_hash: vec![n; 32],
            expires_at: t(expires),
            from: "10.0.0.1".into(),
            at: t(at),
        }
    }

    #[test]
    fn sessions_expire_are_bounded_and_revocable() {
        let mut events = vec![operator("ro", OperatorRole::ReadOnly, None)];
        events.push(session("ro", 0, 10, 20));
        // The expired session goes at the next login.
        events.push(session("ro", 1, 30, 1_000));
        for n in 2..=(MAX_SESSIONS_PER_OPERATOR as u8 + 1) {
            events.push(session("ro", n, 30 + u64::from(n), 1_000));
        }
        let (state, out) = run(events.clone());
        assert!(out.iter().all(Outcome::is_applied), "{out:?}");
        let sessions = &state.operators()["ro"].sessions;
        assert_eq!(sessions.len(), MAX_SESSIONS_PER_OPERATOR);
        assert!(!sessions.contains_key(&hex::encode([0u8; 16])), "expired");
        assert!(!sessions.contains_key(&hex::encode([1u8; 16])), "oldest");

        // A read-only operator revokes their own sessions, not others'.
        events.push(operator("other", OperatorRole::ReadOnly, None));
        events.push(session("other", 40, 50, 1_000));
        let revoke = |operator: &str, session: Option<String>| Event::OperatorSessionRevoked {
            operator: operator.into(),
            session,
            at: t(60),
        };
        events.push(by("ro", revoke("other", None)));
        events.push(by("ro", revoke("ro", Some(hex::encode([5u8; 16])))));
        events.push(by("ro", revoke("ro", Some(hex::encode([5u8; 16])))));
        events.push(revoke("ro", None));
        let (state, out) = run(events);
        let n = out.len();
        assert!(not_permitted(&out[n - 4]));
        assert!(out[n - 3].is_applied());
        assert!(matches!(
            out[n - 2],
            Outcome::Rejected(Rejection::UnknownSession(_))
        ));
        assert!(out[n - 1].is_applied());
        assert!(state.operators()["ro"].sessions.is_empty());
        assert_eq!(state.operators()["other"].sessions.len(), 1);
    }

    /// A dispatched job: a user may begin one on another device of their
    /// account only, an org admin on devices of their organization, a
    /// read-only operator never; the trail names the job.
    #[test]
    fn dispatched_jobs_are_permitted_by_account_and_org() {
        let begin = |job: u8, device: u8| Event::JobBegun {
            job: crate::testgen::job(job),
            device: dev(device),
            vault: None,
            kind: crate::event::JobKind::Backup,
            item: None,
            schedule: None,
            at: t(5),
        };
        let from_device = |by: u8, event: Event| Event::Audited {
            actor: Actor::Device { device: dev(by) },
            from: String::new(),
            at: t(5),
            event: Box::new(event),
        };
        let (state, out) = run(vec![
            org("acme", &[]),
            operator("oa", OperatorRole::OrgAdmin, Some("acme")),
            operator("ro", OperatorRole::ReadOnly, None),
            from_device(0, begin(1, 1)),
            from_device(2, begin(2, 0)),
            from_device(0, org("zeta", &[])),
            by("oa", begin(3, 0)),
            by("ro", begin(4, 0)),
        ]);
        assert!(out[3].is_applied(), "{:?}", out[3]);
        assert!(not_permitted(&out[4]), "another account's device");
        assert!(not_permitted(&out[5]), "users dispatch jobs only");
        assert!(not_permitted(&out[6]), "the default org is not acme");
        assert!(not_permitted(&out[7]));
        let entry = state.audit().values().next_back().expect("entry");
        assert_eq!(entry.actor, Actor::Device { device: dev(0) });
        assert_eq!(entry.target, crate::testgen::job(1).to_string());
    }

    #[test]
    fn a_totp_step_is_fresh_only_after_the_last_one() {
        assert!(totp_step_fresh(None, 0));
        assert!(totp_step_fresh(Some(7), 8));
        assert!(!totp_step_fresh(Some(7), 7), "the same code again");
        assert!(!totp_step_fresh(Some(7), 6), "an older code");
    }

    proptest::proptest! {
        /// Whatever the order of presented steps, no step opens two
        /// sessions and the recorded step only grows.
        #[test]
        fn no_totp_step_opens_two_sessions(steps in proptest::collection::vec(0u64..6, 1..12)) {
            let mut last = None;
            let mut used = std::collections::BTreeSet::new();
            for step in steps {
                if totp_step_fresh(last, step) {
                    proptest::prop_assert!(used.insert(step));
                    proptest::prop_assert!(last.is_none_or(|l| step > l));
                    last = Some(step);
                }
            }
        }
    }

    fn started(n: u8, step: Option<u64>) -> Event {
        Event::OperatorSessionStarted {
            operator: "root".into(),
            session: hex::encode([n; 16]),
            token_hash: vec![n; 32],
            expires_at: t(1_000),
            from: "10.0.0.1".into(),
            totp_step: step,
            at: t(10),
        }
    }

    /// A TOTP step opens one session: the same or an older step is
    /// refused (nothing changes), a later one is accepted; removing the
    /// operator forgets the step.
    #[test]
    fn a_totp_step_opens_one_session() {
        let (state, out) = run(vec![
            operator("root", OperatorRole::ClusterAdmin, None),
            Event::OperatorTotpSet {
                operator: "root".into(),
                totp_secret: Some(vec![1; 20]),
                at: t(4),
            },
            started(1, Some(100)),
            started(2, Some(100)),
            started(3, Some(99)),
            started(4, Some(101)),
            Event::OperatorTotpSet {
                operator: "root".into(),
                totp_secret: Some(vec![1; 3]),
                at: t(4),
            },
        ]);
        assert!(out[..3].iter().all(Outcome::is_applied), "{out:?}");
        for o in &out[3..5] {
            assert_eq!(
                *o,
                Outcome::Rejected(Rejection::TotpReplayed {
                    operator: "root".into(),
                    last: 100
                })
            );
        }
        assert!(out[5].is_applied());
        assert!(matches!(
            out[6],
            Outcome::Rejected(Rejection::InvalidOperator(_))
        ));
        assert_eq!(state.totp_step("root"), Some(101));
        assert_eq!(state.operators()["root"].sessions.len(), 2);
        let (state, _) = run(vec![
            operator("root", OperatorRole::ClusterAdmin, None),
            started(1, Some(100)),
            Event::OperatorRemoved {
                name: "root".into(),
                at: t(5),
            },
        ]);
        assert_eq!(state.totp_step("root"), None);
    }

    /// A disabled account keeps its data but refuses logins and
    /// dispatched jobs; enabling restores them; an org admin may disable
    /// only accounts of their organization.
    #[test]
    fn a_disabled_account_refuses_logins_until_enabled() {
        let login = |job: u8| Event::DeviceLoggedIn {
            device: dev(0),
            account: acc(0),
            name: "laptop".into(),
            token_hash: vec![job; 32],
            job: crate::testgen::job(job),
            from: String::new(),
            at: t(6),
        };
        let disable = |n: u8| Event::AccountDisabled {
            account: acc(n),
            reason: "unpaid".into(),
            at: t(5),
        };
        let (state, out) = run(vec![
            org("acme", &[]),
            operator("oa", OperatorRole::OrgAdmin, Some("acme")),
            by("oa", disable(0)),
            disable(0),
            login(1),
            Event::Audited {
                actor: Actor::Device { device: dev(0) },
                from: String::new(),
                at: t(5),
                event: Box::new(Event::JobBegun {
                    job: crate::testgen::job(2),
                    device: dev(0),
                    vault: None,
                    kind: crate::event::JobKind::Backup,
                    item: None,
                    schedule: None,
                    at: t(5),
                }),
            },
            Event::AccountEnabled {
                account: acc(0),
                at: t(7),
            },
            login(3),
            disable(9),
        ]);
        assert!(not_permitted(&out[2]), "the default org is not acme");
        assert!(out[3].is_applied());
        assert_eq!(
            out[4],
            Outcome::Rejected(Rejection::AccountDisabled {
                account: acc(0),
                reason: "unpaid".into()
            })
        );
        assert!(not_permitted(&out[5]));
        assert!(out[6].is_applied() && out[7].is_applied(), "{out:?}");
        assert_eq!(out[8], Outcome::Rejected(Rejection::UnknownAccount(acc(9))));
        assert!(state.disabled(acc(0)).is_none());
        assert!(state.vaults_of(acc(0)).count() > 0, "data is kept");
    }

    #[test]
    fn the_audit_trail_is_bounded_and_its_numbers_never_repeat() {
        let mut state = State::default();
        let admin = Actor::AdminToken { node: 1 };
        let total = MAX_AUDIT_ENTRIES + 3;
        for i in 0..total {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let r = crate::Request {
                request_id: crate::RequestId(id),
                event: Event::Audited {
                    actor: admin.clone(),
                    from: String::new(),
                    at: t(i as u64),
                    event: Box::new(org(&format!("o{i}"), &[])),
                },
            };
            assert!(apply(&mut state, &r).is_applied());
        }
        assert_eq!(state.audit().len(), MAX_AUDIT_ENTRIES);
        assert_eq!(state.audit().keys().next(), Some(&3));
        assert_eq!(state.next_audit_seq(), total as u64);
    }
}
