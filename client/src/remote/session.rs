//! A logged-in device: login, the account's vaults, devices, items and jobs,
//! and the password change.
//!
//! The password never leaves this process: `argon2id(password, account
//! salt)` gives the login key (sent; the server keeps a hash) and the wrap
//! key (kept; it seals and opens vault keys). Vault keys are generated
//! here and travel sealed only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_proto::api::{
    AccountInfo, CreateVault, DeviceInfo, ItemInfo, JobInfo, Kdf, LoginParamsRequest, LoginReply,
    LoginRequest, PasswordChange, PutItem, RenameDevice, RewrappedKeys, TierInfo, VaultCommands,
    VaultInfo,
};
use cairn_proto::{route, DeviceId, VaultId};

use super::api::Api;
use super::check_vault_name;
use super::config::{Profile, PROFILE_FORMAT};
use super::store::{cache_root, RemoteVault};
use crate::chunker::ChunkerParams;
use crate::crypto::{DerivedKeys, KdfParams, VaultKeys, VaultSecrets};
use crate::error::{Error, Result};

/// Largest argon2id memory cost accepted from a server (2 GiB): a hostile
/// server must not be able to make the client allocate without bound.
const MAX_KDF_MEMORY_KIB: u32 = 2 * 1024 * 1024;
const MAX_KDF_ITERATIONS: u32 = 64;
/// The weakest argon2id a server may ask for (OWASP's minimum for
/// argon2id: 19 MiB, 2 passes): the login key derived with it is sent to
/// the server, which could otherwise ask for `m = 8 KiB, t = 1` and crack the
/// password offline thousands of times faster.
pub const MIN_KDF_MEMORY_KIB: u32 = 19 * 1024;
/// See [`MIN_KDF_MEMORY_KIB`].
pub const MIN_KDF_ITERATIONS: u32 = 2;
/// Salts shorter than this, or of one repeated byte, are refused: a fixed
/// salt would let one precomputation serve every account.
pub const MIN_KDF_SALT: usize = 16;
const MAX_KDF_SALT: usize = 64;
const MAX_KDF_PARALLELISM: u32 = 16;

/// What `cairn login` needs.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// The servers to log in through, tried in order.
    pub servers: Vec<String>,
    /// Login name.
    pub user: String,
    /// Device name.
    pub device: String,
    /// Extra CA certificate file.
    pub ca_file: Option<PathBuf>,
}

/// Settings of a new account vault.
#[derive(Debug, Clone)]
pub struct VaultRequest {
    /// Vault name (unique in the account).
    pub name: String,
    /// Tier to request it from.
    pub tier: String,
    /// FastCDC parameters.
    pub chunker: ChunkerParams,
    /// zstd level.
    pub zstd_level: i32,
}

/// A logged-in device.
pub struct Session {
    path: PathBuf,
    profile: Profile,
    api: Arc<Api>,
}

impl Session {
    /// Logs in through `opts.servers` and writes the profile to `path`.
    pub fn login(path: &Path, opts: &LoginOptions, password: &[u8]) -> Result<Self> {
        check_vault_name("device", &opts.device)?;
        let api = Api::new(&opts.servers, None, opts.ca_file.as_deref())?;
        let kdf: Kdf = api.post(
            route::LOGIN_PARAMS,
            &LoginParamsRequest {
                user: opts.user.clone(),
            },
        )?;
        // What this device knew of the account before (a re-login): the
        // server may not weaken the derivation since.
        let pinned = Profile::load(path)
            .ok()
            .filter(|p| p.user == opts.user)
            .and_then(|p| p.kdf);
        if let Some(old) = &pinned {
            if kdf.memory_kib < old.memory_kib || kdf.iterations < old.iterations {
                return Err(Error::Integrity(format!(
                    "the server asks for weaker key derivation than this account used before \
                     ({} KiB, {} passes instead of {} KiB, {} passes): refusing to send \
                     anything derived from your password",
                    kdf.memory_kib, kdf.iterations, old.memory_kib, old.iterations
                )));
            }
        }
        let keys = derive(&kdf, password)?;
        let reply: LoginReply = api.post(
            route::LOGIN,
            &LoginRequest {
                user: opts.user.clone(),
                login_key: keys.login.to_vec(),
                device: opts.device.clone(),
            },
        )?;
        let ca_file = match &opts.ca_file {
            Some(f) => Some(std::path::absolute(f).map_err(|e| Error::io("resolve", f, e))?),
            None => None,
        };
        let profile = Profile {
            format: PROFILE_FORMAT,
            servers: merge_nodes(api.nodes(), &reply.nodes),
            user: opts.user.clone(),
            account: reply.account,
            device: reply.device,
            device_name: reply.device_name,
            token: reply.token,
            ca_file,
            key_check: Some(key_check(&keys)),
            kdf: Some(kdf),
        };
        profile.save(path)?;
        Self::with_profile(path, profile)
    }

    /// The session of the profile at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let profile = Profile::load(path)?;
        Self::with_profile(path, profile)
    }

    fn with_profile(path: &Path, profile: Profile) -> Result<Self> {
        let api = Api::new(
            &profile.servers,
            Some(profile.token.clone()),
            profile.ca_file.as_deref(),
        )?;
        Ok(Self {
            path: path.to_path_buf(),
            profile,
            api: Arc::new(api),
        })
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The API client.
    pub fn api(&self) -> &Arc<Api> {
        &self.api
    }

    /// Revokes this device's token on the server and removes the profile.
    /// Returns whether the server confirmed the revocation (the profile is
    /// removed either way; a token already refused counts as revoked).
    pub fn logout(self) -> Result<bool> {
        let revoked = match self.api.post_empty::<DeviceInfo>(&route::path(
            route::DEVICE_REVOKE,
            &[&self.profile.device.to_string()],
        )) {
            Ok(_) | Err(Error::Auth(_)) => true,
            Err(Error::Network(_)) => false,
            Err(e) => return Err(e),
        };
        Profile::remove(&self.path)?;
        Ok(revoked)
    }

    /// The account, and refreshes the profile's node list from it.
    pub fn account(&mut self) -> Result<AccountInfo> {
        let info: AccountInfo = self.api.get(route::ACCOUNT)?;
        let nodes = merge_nodes(&self.profile.servers, &info.nodes);
        if nodes != self.profile.servers {
            self.profile.servers = nodes;
            // Best effort: learning nodes must not fail the command.
            let _ = self.profile.save(&self.path);
        }
        Ok(info)
    }

    /// Derives the keys of `password` under the account's current KDF and
    /// checks them against the profile.
    fn keys(&mut self, password: &[u8]) -> Result<(AccountInfo, DerivedKeys)> {
        let account = self.account()?;
        match &self.profile.kdf {
            Some(pinned) if *pinned != account.kdf => {
                return Err(Error::Auth(
                    "the account's key derivation parameters differ from those at this \
                     device's login (was the password changed on another device?): log in \
                     again with `cairn login`"
                        .into(),
                ))
            }
            Some(_) => {}
            None => {
                // A profile from before pinning: pin what the server says now.
                kdf_params(&account.kdf)?;
                self.profile.kdf = Some(account.kdf.clone());
                self.profile.save(&self.path)?;
            }
        }
        let keys = derive(&account.kdf, password)?;
        if let Some(check) = &self.profile.key_check {
            if *check != key_check(&keys) {
                return Err(Error::WrongPassword);
            }
        }
        Ok((account, keys))
    }

    /// The key dispatched snapshot listings are sealed with (remote
    /// control, [`cairn_proto::control::SealedListing`]): derived from the
    /// wrap key, so only someone with the account password opens them.
    ///
    /// # Errors
    ///
    /// As the login: a wrong password, changed KDF parameters, the network.
    pub fn listing_key(&mut self, password: &[u8]) -> Result<[u8; 32]> {
        let (_, keys) = self.keys(password)?;
        Ok(crate::crypto::listing::key(&keys.wrap))
    }

    /// The account's devices.
    pub fn devices(&self) -> Result<Vec<DeviceInfo>> {
        self.api.get(route::DEVICES)
    }

    /// Finds a device by id, unique id prefix or name.
    pub fn find_device(&self, spec: &str) -> Result<DeviceInfo> {
        let all = self.devices()?;
        if let Some(d) = all
            .iter()
            .find(|d| d.id.to_hex() == spec.to_ascii_lowercase())
        {
            return Ok(d.clone());
        }
        let by_name: Vec<_> = all.iter().filter(|d| d.name == spec).collect();
        let by_prefix: Vec<_> = all
            .iter()
            .filter(|d| d.id.to_hex().starts_with(&spec.to_ascii_lowercase()) && !spec.is_empty())
            .collect();
        match (by_name.as_slice(), by_prefix.as_slice()) {
            ([one], _) | ([], [one]) => Ok((*one).clone()),
            ([], []) => Err(Error::NotFound(format!("no device {spec:?}"))),
            _ => Err(Error::NotFound(format!(
                "device {spec:?} is ambiguous; give its full id"
            ))),
        }
    }

    /// Renames a device.
    pub fn rename_device(&self, id: DeviceId, name: &str) -> Result<DeviceInfo> {
        check_vault_name("device", name)?;
        self.api.post(
            &route::path(route::DEVICE_RENAME, &[&id.to_string()]),
            &RenameDevice { name: name.into() },
        )
    }

    /// Revokes a device: its token stops working on every node.
    pub fn revoke_device(&self, id: DeviceId) -> Result<DeviceInfo> {
        self.api
            .post_empty(&route::path(route::DEVICE_REVOKE, &[&id.to_string()]))
    }

    /// The tiers devices may request vaults from.
    pub fn tiers(&self) -> Result<Vec<TierInfo>> {
        self.api.get(route::TIERS)
    }

    /// The account's vaults.
    pub fn vaults(&self) -> Result<Vec<VaultInfo>> {
        self.api.get(route::VAULTS)
    }

    /// The account vault called `name`.
    pub fn vault_by_name(&self, name: &str) -> Result<VaultInfo> {
        self.vault_of(self.vaults()?, name)
    }

    fn vault_of(&self, vaults: Vec<VaultInfo>, name: &str) -> Result<VaultInfo> {
        vaults.into_iter().find(|v| v.name == name).ok_or_else(|| {
            Error::NotFound(format!(
                "the account has no vault named {name:?} (and {name:?} is no local vault \
                 directory); `cairn vault list` shows the account's vaults"
            ))
        })
    }

    /// Creates an account vault: fresh id and keys, sealed with the wrap
    /// key together with the vault's parameters.
    pub fn request_vault(&mut self, req: &VaultRequest, password: &[u8]) -> Result<VaultInfo> {
        check_vault_name("vault", &req.name)?;
        req.chunker.validate()?;
        crate::blob::check_level(req.zstd_level)?;
        let (_, keys) = self.keys(password)?;
        let id = VaultId::random();
        let secrets = VaultSecrets {
            keys: VaultKeys::generate(),
            chunker: req.chunker,
            zstd_level: req.zstd_level,
        };
        self.api.post(
            route::VAULTS,
            &CreateVault {
                id,
                name: req.name.clone(),
                tier: req.tier.clone(),
                wrapped_keys: secrets.wrap(id, &keys.wrap),
            },
        )
    }

    /// Deletes the account vault called `name`.
    pub fn delete_vault(&self, name: &str) -> Result<VaultInfo> {
        let info = self.vault_by_name(name)?;
        self.api
            .delete(&route::path(route::VAULT, &[&info.id.to_string()]))?;
        Ok(info)
    }

    /// The account vault with id `id`.
    pub fn vault_by_id(&self, id: VaultId) -> Result<VaultInfo> {
        self.vaults()?
            .into_iter()
            .find(|v| v.id == id)
            .ok_or_else(|| Error::NotFound(format!("the account has no vault {id}")))
    }

    /// Unlocks the account vault `info` with the account password: its
    /// storage handle, its unwrapped keys and parameters, and the
    /// account's KDF parameters (`crate::Vault::open_account` assembles
    /// them into a vault).
    pub fn unlock_vault(
        &mut self,
        info: VaultInfo,
        password: &[u8],
    ) -> Result<(RemoteVault, VaultSecrets, KdfParams)> {
        let (account, keys) = self.keys(password)?;
        let secrets = VaultSecrets::unwrap(info.id, &keys.wrap, &info.wrapped_keys)?;
        let cache = cache_root(|k| std::env::var(k).ok());
        // Beside the profile, not in the cache: losing it loses rollback
        // detection.
        let state = self.path.parent().map(|d| d.join("seen"));
        let remote = RemoteVault::new(self.api.clone(), info, cache.as_deref(), state.as_deref());
        Ok((remote, secrets, kdf_params(&account.kdf)?))
    }

    /// This device's protected items.
    pub fn items(&self) -> Result<Vec<ItemInfo>> {
        self.api.get(route::ITEMS)
    }

    /// This device's item called `name`.
    pub fn item(&self, name: &str) -> Result<ItemInfo> {
        self.items()?
            .into_iter()
            .find(|i| i.name == name)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "this device has no protected item {name:?}; `cairn item list` shows them"
                ))
            })
    }

    /// Defines (or redefines) a protected item backing `paths` up into the
    /// account vault `vault`, with the commands run before and after each
    /// of its jobs.
    pub fn set_item(
        &self,
        name: &str,
        vault: &str,
        paths: &[PathBuf],
        excludes: &[String],
        commands: &VaultCommands,
    ) -> Result<ItemInfo> {
        check_vault_name("item", name)?;
        if paths.is_empty() {
            return Err(Error::Invalid("an item needs at least one path".into()));
        }
        let vault = self.vault_by_name(vault)?;
        let paths = paths
            .iter()
            .map(|p| crate::source::absolute(p).map(|a| a.to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>>>()?;
        self.api.put(
            &route::path(route::ITEM, &[name]),
            &PutItem {
                paths,
                excludes: excludes.to_vec(),
                vault: vault.id,
                before: commands.before.clone(),
                after: commands.after.clone(),
            },
        )
    }

    /// Removes a protected item (its snapshots stay).
    pub fn remove_item(&self, name: &str) -> Result<()> {
        self.api.delete(&route::path(route::ITEM, &[name]))
    }

    /// The account's job log.
    pub fn jobs(&self) -> Result<Vec<JobInfo>> {
        self.api.get(route::JOBS)
    }

    /// Changes the account password: checks the current one, re-wraps
    /// every vault's keys under a new salt, and stores the fresh token.
    /// Every other device must log in again. Returns the vaults re-wrapped.
    pub fn change_password(&mut self, old: &[u8], new: &[u8]) -> Result<usize> {
        let (account, old_keys) = self.keys(old)?;
        let mut vaults = vec![];
        for v in self.vaults()? {
            let secrets = VaultSecrets::unwrap(v.id, &old_keys.wrap, &v.wrapped_keys)?;
            vaults.push((v.id, secrets));
        }
        // Never weaker than this build's defaults, whatever the account had.
        let defaults = KdfParams::generate();
        let kdf = Kdf {
            memory_kib: account.kdf.memory_kib.max(defaults.memory_kib),
            iterations: account.kdf.iterations.max(defaults.iterations),
            parallelism: account.kdf.parallelism,
            salt: defaults.salt,
        };
        let new_keys = derive(&kdf, new)?;
        let change = PasswordChange {
            old_login_key: old_keys.login.to_vec(),
            kdf,
            login_key: new_keys.login.to_vec(),
            vaults: vaults
                .iter()
                .map(|(id, s)| RewrappedKeys {
                    vault: *id,
                    wrapped_keys: s.wrap(*id, &new_keys.wrap),
                })
                .collect(),
        };
        let reply: LoginReply = self.api.post(route::ACCOUNT_PASSWORD, &change)?;
        self.profile.token = reply.token;
        self.profile.device = reply.device;
        self.profile.device_name = reply.device_name;
        self.profile.servers = merge_nodes(&self.profile.servers, &reply.nodes);
        self.profile.key_check = Some(key_check(&new_keys));
        self.profile.kdf = Some(change.kdf.clone());
        self.profile.save(&self.path)?;
        let n = vaults.len();
        *self = Self::with_profile(&self.path, self.profile.clone())?;
        Ok(n)
    }
}

/// The client's KDF parameters for the account's, bounded both ways: from
/// above so a hostile server cannot make the client allocate without limit,
/// from below so it cannot get a cheaply crackable login key
/// ([`MIN_KDF_MEMORY_KIB`]).
pub fn kdf_params(kdf: &Kdf) -> Result<KdfParams> {
    if kdf.memory_kib > MAX_KDF_MEMORY_KIB
        || kdf.iterations > MAX_KDF_ITERATIONS
        || kdf.parallelism == 0
        || kdf.parallelism > MAX_KDF_PARALLELISM
        || kdf.salt.len() > MAX_KDF_SALT
    {
        return Err(Error::Format(format!(
            "the server's key derivation parameters are out of bounds ({} KiB, {} passes, {} lanes, {}-byte salt)",
            kdf.memory_kib,
            kdf.iterations,
            kdf.parallelism,
            kdf.salt.len()
        )));
    }
    let one_byte = kdf.salt.windows(2).all(|w| w[0] == w[1]);
    if kdf.memory_kib < MIN_KDF_MEMORY_KIB
        || kdf.iterations < MIN_KDF_ITERATIONS
        || kdf.salt.len() < MIN_KDF_SALT
        || one_byte
    {
        return Err(Error::Integrity(format!(
            "the server asks for key derivation weaker than this client accepts ({} KiB, {} \
             passes, a {}-byte salt{}; at least {MIN_KDF_MEMORY_KIB} KiB, {MIN_KDF_ITERATIONS} \
             passes and a {MIN_KDF_SALT}-byte random salt): refusing to send anything derived \
             from your password",
            kdf.memory_kib,
            kdf.iterations,
            kdf.salt.len(),
            if one_byte {
                " of one repeated byte"
            } else {
                ""
            }
        )));
    }
    Ok(KdfParams {
        algorithm: cairn_proto::kdf::ALGORITHM.into(),
        memory_kib: kdf.memory_kib,
        iterations: kdf.iterations,
        parallelism: kdf.parallelism,
        salt: kdf.salt.clone(),
    })
}

fn derive(kdf: &Kdf, password: &[u8]) -> Result<DerivedKeys> {
    kdf_params(kdf)?.derive(password)
}

/// The profile's password check: a one-way derivation of the wrap key.
fn key_check(keys: &DerivedKeys) -> String {
    hex::encode(blake3::derive_key(
        "cairn 2026-11 profile wrap-key check v1",
        &keys.wrap,
    ))
}

/// The failover list: the nodes already known (the one the user named
/// first), then new ones the cluster reported, without duplicates.
///
/// A reported node gets this device's token, so the server cannot send it
/// anywhere weaker than where the user pointed it: a reported URL must use
/// the scheme of the first known node, and plain `http` only on a loopback
/// host; anything else is dropped. (Certificates of reported nodes are
/// checked against the same roots as the first one: with `--ca-file`, that
/// CA alone.)
pub fn merge_nodes(known: &[String], reported: &[String]) -> Vec<String> {
    let first = known
        .first()
        .and_then(|k| reqwest::Url::parse(k).ok())
        .map(|u| u.scheme().to_string());
    let mut out: Vec<String> = vec![];
    let learned = reported
        .iter()
        .filter(|n| acceptable_learned_node(first.as_deref(), n));
    for n in known.iter().chain(learned) {
        let n = n.trim_end_matches('/').to_string();
        if !n.is_empty() && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// Whether a node URL the cluster reported may be used (see [`merge_nodes`]).
fn acceptable_learned_node(first_scheme: Option<&str>, node: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(node) else {
        return false;
    };
    let loopback = match url.host_str() {
        Some("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    match url.scheme() {
        "https" => first_scheme.is_none_or(|s| s == "https"),
        "http" => loopback && first_scheme.is_none_or(|s| s == "http"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_nodes_never_downgrade_the_connection() {
        let https = vec!["https://a:1".to_string()];
        let reported: Vec<String> = [
            "http://b:1",
            "http://127.0.0.1:2",
            "https://c:1",
            "ftp://d:1",
            "garbage",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            merge_nodes(&https, &reported),
            ["https://a:1", "https://c:1"]
        );
        let http = vec!["http://127.0.0.1:1".to_string()];
        assert_eq!(
            merge_nodes(&http, &reported),
            ["http://127.0.0.1:1", "http://127.0.0.1:2"]
        );
    }

    #[test]
    fn nodes_merge_in_order_without_duplicates() {
        let known = vec!["https://a:1".to_string()];
        let reported = vec![
            "https://b:1/".to_string(),
            "https://a:1".to_string(),
            "https://c:1".to_string(),
        ];
        assert_eq!(
            merge_nodes(&known, &reported),
            ["https://a:1", "https://b:1", "https://c:1"]
        );
    }

    #[test]
    fn hostile_kdf_parameters_are_refused() {
        let kdf = Kdf {
            memory_kib: u32::MAX,
            iterations: 3,
            parallelism: 1,
            salt: vec![0; 16],
        };
        assert!(matches!(kdf_params(&kdf), Err(Error::Format(_))));
        let ok = Kdf {
            memory_kib: MIN_KDF_MEMORY_KIB,
            iterations: MIN_KDF_ITERATIONS,
            parallelism: 1,
            salt: (0..16).collect(),
        };
        assert!(kdf_params(&ok).is_ok());
        // The audit's downgrade: 8 KiB, one pass, an all-zero salt.
        let downgrade = Kdf {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
            salt: vec![0; 16],
        };
        for weak in [
            downgrade,
            Kdf {
                memory_kib: MIN_KDF_MEMORY_KIB - 1,
                ..ok.clone()
            },
            Kdf {
                iterations: 1,
                ..ok.clone()
            },
            Kdf {
                salt: (0..15).collect(),
                ..ok.clone()
            },
            Kdf {
                salt: vec![7; 16],
                ..ok.clone()
            },
        ] {
            let err = kdf_params(&weak).expect_err("weak parameters accepted");
            assert!(matches!(err, Error::Integrity(_)), "{err}");
        }
        for absurd in [
            Kdf {
                parallelism: 0,
                ..ok.clone()
            },
            Kdf {
                parallelism: 1000,
                ..ok.clone()
            },
            Kdf {
                salt: vec![1; 65],
                ..ok.clone()
            },
        ] {
            assert!(matches!(kdf_params(&absurd), Err(Error::Format(_))));
        }
    }

    #[test]
    fn key_check_depends_on_the_wrap_key_only() {
        let a = DerivedKeys {
            login: [1; 32],
            wrap: [2; 32],
        };
        let b = DerivedKeys {
            login: [9; 32],
            wrap: [2; 32],
        };
        let c = DerivedKeys {
            login: [1; 32],
            wrap: [3; 32],
        };
        assert_eq!(key_check(&a), key_check(&b));
        assert_ne!(key_check(&a), key_check(&c));
    }
}
