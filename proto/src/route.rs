//! The device API's routes, as the client calls them and the server mounts
//! them: templates below [`crate::api::PREFIX`], `{param}` segments named
//! as in the server's OpenAPI paths. [`ALL`] lists every route the client
//! uses, so a server test can check each against the OpenAPI document.
//!
//! [`path`] fills a template's parameters in order, each percent-encoded as
//! one path segment, so a name with a `/` or a space stays one segment.

/// `POST`: the account's KDF parameters, before a login.
pub const LOGIN_PARAMS: &str = "/login/params";
/// `POST`: log a device in.
pub const LOGIN: &str = "/login";
/// `GET`: the account and the cluster's nodes.
pub const ACCOUNT: &str = "/account";
/// `POST`: change the account password.
pub const ACCOUNT_PASSWORD: &str = "/account/password";
/// `GET`: the account's devices.
pub const DEVICES: &str = "/devices";
/// `POST`: rename device `{id}`.
pub const DEVICE_RENAME: &str = "/devices/{id}/rename";
/// `POST`: revoke device `{id}`.
pub const DEVICE_REVOKE: &str = "/devices/{id}/revoke";
/// `GET`: the tiers vaults are requested from.
pub const TIERS: &str = "/tiers";
/// `GET`: the account's vaults; `POST`: create one.
pub const VAULTS: &str = "/vaults";
/// `DELETE`: vault `{id}` and everything in it.
pub const VAULT: &str = "/vaults/{id}";
/// `GET`: this device's protected items.
pub const ITEMS: &str = "/items";
/// `PUT`: define item `{name}`; `DELETE`: remove it.
pub const ITEM: &str = "/items/{name}";
/// `GET`: the job log; `POST`: start a job.
pub const JOBS: &str = "/jobs";
/// `POST`: record how job `{id}` ended.
pub const JOB_FINISH: &str = "/jobs/{id}/finish";
/// `POST`: job `{id}` is still running (its device's heartbeat).
pub const JOB_HEARTBEAT: &str = "/jobs/{id}/heartbeat";
/// `POST`: record a job that started and ended at once (missed, skipped…).
pub const JOB_RECORD: &str = "/jobs/record";
/// `PUT`: vault `{id}`'s before/after commands.
pub const VAULT_COMMANDS: &str = "/vaults/{id}/commands";
/// `GET`: vault `{id}`'s retention policies; `PUT`: set one.
pub const RETENTION: &str = "/vaults/{id}/retention";
/// `POST`: clear a retention policy of vault `{id}`.
pub const RETENTION_CLEAR: &str = "/vaults/{id}/retention/clear";
/// `GET`: this device's schedules.
pub const SCHEDULES: &str = "/schedules";
/// `PUT`: define schedule `{name}`; `DELETE`: remove it.
pub const SCHEDULE: &str = "/schedules/{name}";
/// `GET`: vault `{id}`'s snapshot records; `POST`: commit one.
pub const SNAPSHOTS: &str = "/vaults/{id}/snapshots";
/// `DELETE`: forget snapshot `{sid}` of vault `{id}`.
pub const SNAPSHOT: &str = "/vaults/{id}/snapshots/{sid}";
/// `POST`: upload sealed chunks (a frames body) to vault `{id}`.
pub const CHUNKS: &str = "/vaults/{id}/chunks";
/// `POST`: which of these chunk ids vault `{id}` lacks.
pub const CHUNKS_MISSING: &str = "/vaults/{id}/chunks/missing";
/// `POST`: the sealed bytes of these chunks of vault `{id}`.
pub const CHUNKS_GET: &str = "/vaults/{id}/chunks/get";
/// `POST`: one page of vault `{id}`'s chunk ids (`?after=` the last one).
pub const CHUNKS_LIST: &str = "/vaults/{id}/chunks/list";
/// `POST`: delete these chunks of vault `{id}` as a prune job (`?job=`).
pub const CHUNKS_DELETE: &str = "/vaults/{id}/chunks/delete";

/// `GET`: the device's live connection for remote control (a WebSocket,
/// [`crate::control`]).
pub const CONNECT: &str = "/connect";

/// `POST`: the same connection over long-poll, where a proxy refuses the
/// WebSocket upgrade (control frames one per line, [`crate::control`]).
pub const CONNECT_POLL: &str = "/connect/poll";

/// Every route the client calls: (method, template).
pub const ALL: &[(&str, &str)] = &[
    ("POST", LOGIN_PARAMS),
    ("POST", LOGIN),
    ("GET", ACCOUNT),
    ("POST", ACCOUNT_PASSWORD),
    ("GET", DEVICES),
    ("POST", DEVICE_RENAME),
    ("POST", DEVICE_REVOKE),
    ("GET", TIERS),
    ("GET", VAULTS),
    ("POST", VAULTS),
    ("DELETE", VAULT),
    ("GET", ITEMS),
    ("PUT", ITEM),
    ("DELETE", ITEM),
    ("GET", JOBS),
    ("POST", JOBS),
    ("POST", JOB_FINISH),
    ("POST", JOB_HEARTBEAT),
    ("POST", JOB_RECORD),
    ("PUT", VAULT_COMMANDS),
    ("GET", RETENTION),
    ("PUT", RETENTION),
    ("POST", RETENTION_CLEAR),
    ("GET", SCHEDULES),
    ("PUT", SCHEDULE),
    ("DELETE", SCHEDULE),
    ("GET", SNAPSHOTS),
    ("POST", SNAPSHOTS),
    ("DELETE", SNAPSHOT),
    ("POST", CHUNKS),
    ("POST", CHUNKS_MISSING),
    ("POST", CHUNKS_GET),
    ("POST", CHUNKS_LIST),
    ("POST", CHUNKS_DELETE),
    ("GET", CONNECT),
    ("POST", CONNECT_POLL),
];

/// `template` with its `{param}` segments replaced, in order, by `values`
/// percent-encoded ([`segment`]). A parameter without a value stays as
/// written (the server answers 404), and extra values are ignored.
pub fn path(template: &str, values: &[&str]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut values = values.iter();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            break;
        };
        out.push_str(&rest[..open]);
        match values.next() {
            Some(v) => out.push_str(&segment(v)),
            None => out.push_str(&rest[open..=close]),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Percent-encodes one path segment: everything but ASCII letters, digits
/// and `-_.~` becomes `%XX`.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_filled_in_order_and_escaped() {
        assert_eq!(path(DEVICE_RENAME, &["ab12"]), "/devices/ab12/rename");
        assert_eq!(path(SNAPSHOT, &["v1", "s2"]), "/vaults/v1/snapshots/s2");
        assert_eq!(path(ITEM, &["my item/x"]), "/items/my%20item%2Fx");
        assert_eq!(path(LOGIN, &[]), "/login");
        // Missing values leave the parameter; extra ones are ignored.
        assert_eq!(path(SNAPSHOT, &["v1"]), "/vaults/v1/snapshots/{sid}");
        assert_eq!(path(VAULT, &["v1", "extra"]), "/vaults/v1");
    }

    #[test]
    fn segments_are_escaped() {
        assert_eq!(segment("home"), "home");
        assert_eq!(segment("my item/x"), "my%20item%2Fx");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn every_route_is_listed_once_with_a_known_method() {
        for (i, (method, template)) in ALL.iter().enumerate() {
            assert!(["GET", "POST", "PUT", "DELETE"].contains(method));
            assert!(template.starts_with('/') && !template.ends_with('/'));
            assert!(
                !ALL[..i].contains(&(*method, *template)),
                "{method} {template}"
            );
        }
    }
}
