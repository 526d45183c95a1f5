//! The operator commands, which talk to a running cluster over its HTTP API
//! (`cairn_node::client::Client`): `cairnd cluster status|drain|remove` and
//! `cairnd admin user|tier|device|jobs|backups`, with their text renderers.

use std::path::{Path, PathBuf};

use cairn_node::client::table::{table, text};
use cairn_node::client::{self, format_status, human_bytes, local_time, CliError, Client, Health};
use cairn_node::config::FileConfig;
use cairn_proto::admin::DefineTier;
use clap::Subcommand;

use super::output::output;
use super::settings::{required, ClientArgs};

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Healthy or not (and why), leader, term, members, voters, applied
    /// index per node, storage nodes. Exit code 4 without a leader (text
    /// output; `--json` exits 0 with `"leader": null`).
    Status,
    /// Drain a storage node (needs the admin token): it takes no new copies and its chunks move
    /// to other nodes; `cluster status` shows what is left to move. Then `cluster remove` it.
    Drain {
        /// Raft id of the storage node to drain.
        node_id: u64,
    },
    /// Remove a node from the cluster (needs the admin token); stop its process afterwards.
    /// An active storage node must be drained first (`cluster drain`) unless --force.
    Remove {
        /// Raft id of the node to remove.
        node_id: u64,
        /// Remove an undrained storage node (it is gone for good): its copies are rebuilt
        /// from the other replicas; chunks of single-replica vaults it held are lost.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Vault tiers.
    Tier {
        #[command(subcommand)]
        command: TierCommand,
    },
    /// Devices of every account.
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// Backup health across accounts.
    Backups {
        #[command(subcommand)]
        command: BackupsCommand,
    },
    /// The job log of every account (backups, restores, checks, prunes,
    /// retention passes, logins), oldest first.
    ///
    /// Example: `cairnd admin jobs --status error --since 24h` lists the
    /// backups that failed today.
    Jobs {
        /// Only this status: succeeded, running, revived, warning, error,
        /// timeout, quota, missed, cancelled, skipped_already_running,
        /// abandoned.
        #[arg(long)]
        status: Option<String>,
        /// Only jobs started within this age (90s, 24h, 7d, 2w).
        #[arg(long, value_name = "AGE")]
        since: Option<String>,
        /// Only this account's jobs.
        #[arg(long, value_name = "NAME")]
        account: Option<String>,
    },
    /// The cluster's license.
    License {
        #[command(subcommand)]
        command: super::license::LicenseCommand,
    },
    /// Operators: admin accounts kept by the cluster, with roles and sessions.
    Operator {
        #[command(subcommand)]
        command: super::console::OperatorCommand,
    },
    /// Organizations: their users, offered tiers and branding.
    Org {
        #[command(subcommand)]
        command: super::console::OrgCommand,
    },
    /// The audit trail of admin actions, oldest first.
    Audit,
}

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// List every account's devices (revoked ones too), with whether each
    /// is online (a live `cairn daemon` connection) and its version.
    List,
    /// The devices online now: the node holding each one's connection,
    /// its `cairn` version, since when.
    Online,
    /// Revoke a device: every node refuses its token from now on.
    Revoke {
        /// Device id (32 hex digits, from `device list`).
        device: cairn_proto::DeviceId,
    },
}

/// `cairnd admin backups …`.
#[derive(Subcommand)]
pub enum BackupsCommand {
    /// The schedules whose newest successful backup is older than the
    /// schedule allows (what `cairn_backups_overdue_*` counts), with their
    /// account, device, last success and when one was due by.
    Overdue,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Create {
        /// Login name.
        name: String,
        /// File holding the initial password (first line).
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
        /// The account's organization (default: the asking org admin's, else `default`).
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
    },
    /// List accounts.
    List,
    /// Delete an account: its devices (every token stops working at once),
    /// items, schedules and jobs. Refused while it owns vaults, unless
    /// --delete-vaults.
    Delete {
        /// Login name.
        name: String,
        /// Delete the account's vaults and their snapshots too (their data
        /// is collected as garbage; it cannot be brought back).
        #[arg(long)]
        delete_vaults: bool,
    },
    /// Disable an account: every node refuses its logins and every token of
    /// its devices at once; its data and vaults stay. `enable` undoes it.
    Disable {
        /// Login name.
        name: String,
        /// Why (shown to the user when a login or token is refused).
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
    },
    /// Enable a disabled account again: new logins work.
    Enable {
        /// Login name.
        name: String,
    },
}

#[derive(Subcommand)]
pub enum TierCommand {
    /// Define (or redefine) a requestable tier.
    Create {
        /// Tier name.
        name: String,
        /// Chunk replicas.
        #[arg(long, value_name = "N")]
        replicas: u8,
        /// Per-vault quota of stored chunks: bytes, or with a unit
        /// (e.g. 10GiB, 500GB). Default: unlimited.
        #[arg(long, value_name = "SIZE", value_parser = client::parse_size)]
        quota: Option<u64>,
        /// What the tier is for, shown to users choosing one.
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
        /// Define it but do not let devices request it.
        #[arg(long)]
        not_requestable: bool,
        /// Storage labels every node holding a copy must carry, comma-separated (e.g. ssd);
        /// refused unless at least --replicas active storage nodes carry them.
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        labels: Vec<String>,
    },
    /// List tiers.
    List,
}

/// The admin token: the file's, else `CAIRN_ADMIN_TOKEN`'s.
fn admin_token(file: Option<&Path>) -> Result<Option<String>, CliError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::Other(format!("{}: {e}", path.display())))?;
        return Ok(Some(text.trim().to_string()));
    }
    Ok(std::env::var("CAIRN_ADMIN_TOKEN")
        .ok()
        .map(|t| t.trim().to_string()))
}

/// A client carrying the admin token.
fn admin_client(
    server: &str,
    token_file: Option<&Path>,
    ca_file: Option<&Path>,
) -> Result<Client, CliError> {
    let token = admin_token(token_file)?.ok_or_else(|| {
        CliError::Auth(
            "no admin token: set CAIRN_ADMIN_TOKEN, --admin-token-file or admin_token_file".into(),
        )
    })?;
    Client::new(server, Some(token), ca_file)
}

/// Server, admin token file and CA file: flags over the file.
struct Target {
    server: String,
    token_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
}

impl Target {
    fn merge(client: ClientArgs, file: &FileConfig) -> Result<Self, CliError> {
        Ok(Self {
            server: required(client.server.or_else(|| file.server.clone()), "--server")?,
            token_file: client
                .admin_token_file
                .or_else(|| file.admin_token_file.clone()),
            ca_file: client.ca_file.or_else(|| file.ca_file.clone()),
        })
    }

    fn admin(&self) -> Result<Client, CliError> {
        admin_client(
            &self.server,
            self.token_file.as_deref(),
            self.ca_file.as_deref(),
        )
    }
}

/// `cairnd cluster ...`.
pub async fn cluster(
    client: ClientArgs,
    command: ClusterCommand,
    file: &FileConfig,
    json: bool,
) -> Result<(), CliError> {
    let target = Target::merge(client, file)?;
    match command {
        ClusterCommand::Status => {
            let status = Client::new(&target.server, None, target.ca_file.as_deref())?
                .cluster_status()
                .await?;
            output(json, &status, format_status)?;
            // Text for people and scripts alike: no leader is a failure.
            // `--json` keeps exit 0 with `"leader": null` in the document.
            let health = Health::of(&status);
            if health.leader.is_none() && !json {
                return Err(CliError::Unhealthy(health.problems().join("; ")));
            }
            Ok(())
        }
        ClusterCommand::Drain { node_id } => {
            let drained = target.admin()?.drain_node(node_id).await?;
            output(json, &drained, |d| {
                format!(
                    "node {} is {}; its chunks move to the other nodes (see cluster status)\n",
                    d.node_id, d.status
                )
            })
        }
        ClusterCommand::Remove { node_id, force } => {
            let removed = target.admin()?.remove_node(node_id, force).await?;
            output(json, &removed, |r| {
                format!(
                    "removed node {}; voters {:?}, learners {:?}\n",
                    r.node_id, r.voters, r.learners
                )
            })
        }
    }
}

/// `cairnd admin ...`.
pub async fn admin(
    client: ClientArgs,
    command: AdminCommand,
    file: &FileConfig,
    json: bool,
) -> Result<(), CliError> {
    let target = Target::merge(client, file)?;
    if let AdminCommand::Operator {
        command:
            super::console::OperatorCommand::Login {
                name,
                password_file,
                totp,
            },
    } = &command
    {
        let anonymous = Client::new(&target.server, None, target.ca_file.as_deref())?;
        return super::console::login(&anonymous, name, password_file, totp.clone(), json).await;
    }
    if let AdminCommand::Operator {
        command: super::console::OperatorCommand::Totp { command: totp },
    } = &command
    {
        use super::console::TotpCommand as T;
        if matches!(
            totp,
            T::Enable {
                password_file: Some(_),
                ..
            } | T::Disable {
                password_file: Some(_),
                ..
            }
        ) {
            // One's own second factor: the password proves who asks.
            let anonymous = Client::new(&target.server, None, target.ca_file.as_deref())?;
            return super::console::totp(&anonymous, totp.clone(), json).await;
        }
    }
    let client = target.admin()?;
    match command {
        AdminCommand::Operator { command } => {
            super::console::operator(&client, command, json).await
        }
        AdminCommand::Org { command } => super::console::org(&client, command, json).await,
        AdminCommand::Audit => super::console::audit(&client, json).await,
        AdminCommand::User {
            command:
                UserCommand::Create {
                    name,
                    password_file,
                    org,
                },
        } => {
            let user = client.create_user(&name, &password_file, org).await?;
            output(json, &user, |u| {
                format!("created user {} ({})\n", u.name, u.id)
            })
        }
        AdminCommand::User {
            command:
                UserCommand::Delete {
                    name,
                    delete_vaults,
                },
        } => {
            let user = client.delete_user(&name, delete_vaults).await?;
            output(json, &user, |u| {
                format!(
                    "deleted user {} ({}) with {} device(s){}\n",
                    u.name,
                    u.id,
                    u.devices,
                    if delete_vaults {
                        format!(" and {} vault(s)", u.vaults)
                    } else {
                        String::new()
                    }
                )
            })
        }
        AdminCommand::User {
            command: UserCommand::Disable { name, reason },
        } => {
            let user = client.set_user_disabled(&name, Some(reason)).await?;
            output(json, &user, |u| {
                format!(
                    "disabled user {}: its logins and device tokens are refused; its data stays\n",
                    u.name
                )
            })
        }
        AdminCommand::User {
            command: UserCommand::Enable { name },
        } => {
            let user = client.set_user_disabled(&name, None).await?;
            output(json, &user, |u| format!("enabled user {}\n", u.name))
        }
        AdminCommand::User {
            command: UserCommand::List,
        } => {
            let users = client.list_users().await?;
            output(json, &users, |users| {
                let esc = |t: &str| cairn_node::http::api::jobs::escape_control(t, false);
                let mut t = table(&["name", "id", "org", "created", "devices", "vaults", "state"]);
                for u in users {
                    t.add_row(vec![
                        u.name.clone(),
                        u.id.clone(),
                        u.org.clone(),
                        local_time(u.created_at),
                        u.devices.to_string(),
                        u.vaults.to_string(),
                        match &u.disabled {
                            None => "enabled".into(),
                            Some(r) if r.is_empty() => "disabled".into(),
                            Some(r) => format!("disabled: {}", esc(r)),
                        },
                    ]);
                }
                text(&t, "")
            })
        }
        AdminCommand::Tier {
            command:
                TierCommand::Create {
                    name,
                    replicas,
                    quota,
                    description,
                    not_requestable,
                    labels,
                },
        } => {
            let tier = client
                .define_tier(&DefineTier {
                    name,
                    replicas,
                    requestable: !not_requestable,
                    quota_bytes: quota,
                    description,
                    labels,
                })
                .await?;
            output(json, &tier, |t| {
                format!(
                    "defined tier {} ({} replicas)\n",
                    t.tier.name, t.tier.replicas
                )
            })
        }
        AdminCommand::Tier {
            command: TierCommand::List,
        } => {
            let tiers = client.list_tiers().await?;
            output(json, &tiers, |tiers| {
                let mut t = table(&["tier", "replicas", "quota", "requestable", "labels"]);
                for i in tiers {
                    t.add_row(vec![
                        i.tier.name.clone(),
                        i.tier.replicas.to_string(),
                        i.tier.quota_bytes.map_or_else(|| "-".into(), human_bytes),
                        if i.tier.requestable { "yes" } else { "no" }.into(),
                        if i.labels.is_empty() {
                            "-".into()
                        } else {
                            i.labels.join(",")
                        },
                    ]);
                }
                text(&t, "")
            })
        }
        AdminCommand::Device {
            command: DeviceCommand::List,
        } => {
            let devices = client.list_devices().await?;
            let online = client.connections().await?;
            output(json, &devices, |devices| device_table(devices, &online))
        }
        AdminCommand::Device {
            command: DeviceCommand::Online,
        } => {
            let online = client.connections().await?;
            output(json, &online, |online| online_table(online))
        }
        AdminCommand::Device {
            command: DeviceCommand::Revoke { device },
        } => {
            let d = client.revoke_device(device).await?;
            output(json, &d, |d| device_table(std::slice::from_ref(d), &[]))
        }
        AdminCommand::Jobs {
            status,
            since,
            account,
        } => {
            let since_ms = match since {
                Some(age) => {
                    let age = cairn_proto::admin::parse_age(&age).map_err(CliError::Usage)?;
                    Some(cairn_node::cluster::now().0.saturating_sub(age))
                }
                None => None,
            };
            let query = cairn_proto::admin::JobsQuery {
                status,
                since_ms,
                account,
            };
            let jobs = client.list_jobs(&query).await?;
            output(json, &jobs, |jobs| job_table(jobs))
        }
        AdminCommand::Backups {
            command: BackupsCommand::Overdue,
        } => {
            let list = client.overdue_backups().await?;
            output(json, &list, |list| overdue_table(list))
        }
        AdminCommand::License { command } => super::license::set(&client, command, json).await,
    }
}

/// `admin device list` (and the device `admin device revoke` revoked),
/// with each live device's connection from `online`.
fn device_table(
    devices: &[cairn_proto::api::DeviceInfo],
    online: &[cairn_proto::control::ConnectionInfo],
) -> String {
    let esc = |t: &str| cairn_node::http::api::jobs::escape_control(t, false);
    let mut t = table(&[
        "id",
        "account",
        "name",
        "registered",
        "last login",
        "state",
        "connection",
    ]);
    for d in devices {
        let connection = match (d.revoked_at, online.iter().find(|c| c.device == d.id)) {
            (Some(_), _) => "-".to_string(),
            (None, Some(c)) => format!(
                "online via node {} (cairn {})",
                c.node,
                esc(&c.client_version)
            ),
            (None, None) => "offline".to_string(),
        };
        t.add_row(vec![
            d.id.to_string(),
            d.account.to_string(),
            d.name.clone(),
            local_time(d.registered_at),
            local_time(d.last_login_at),
            d.revoked_at
                .map_or_else(|| "live".into(), |at| format!("revoked {}", local_time(at))),
            connection,
        ]);
    }
    text(&t, "")
}

/// `admin device online`: the devices connected to the cluster now.
fn online_table(online: &[cairn_proto::control::ConnectionInfo]) -> String {
    let esc = |t: &str| cairn_node::http::api::jobs::escape_control(t, false);
    let mut t = table(&["device", "user/name", "node", "cairn", "since"]);
    for c in online {
        t.add_row(vec![
            c.device.to_string(),
            format!("{}/{}", esc(&c.user), esc(&c.device_name)),
            c.node.to_string(),
            esc(&c.client_version),
            local_time(c.since),
        ]);
    }
    text(&t, "")
}

/// `admin backups overdue`.
fn overdue_table(list: &[cairn_proto::admin::OverdueBackup]) -> String {
    let esc = |t: &str| cairn_node::http::api::jobs::escape_control(t, false);
    let mut t = table(&[
        "user",
        "device",
        "schedule",
        "item",
        "spec",
        "last success",
        "due by",
    ]);
    for o in list {
        t.add_row(vec![
            esc(&o.user),
            format!("{} ({})", esc(&o.device_name), o.device),
            esc(&o.schedule),
            esc(&o.item),
            esc(&o.spec),
            o.last_success
                .map_or_else(|| "never".to_string(), local_time),
            local_time(o.due_by),
        ]);
    }
    text(&t, "")
}

/// `admin jobs`: one row per job; device-written text (the error) with
/// control characters shown escaped, so a job cannot rewrite the
/// operator's terminal (stored ones may predate the escaping on input).
fn job_table(jobs: &[cairn_proto::api::JobInfo]) -> String {
    let mut t = table(&[
        "started",
        "id",
        "kind",
        "status",
        "seconds",
        "user/device",
        "item",
        "vault",
        "files",
        "bytes",
        "error",
    ]);
    for j in jobs {
        t.add_row(vec![
            local_time(j.started_at),
            j.id.to_string(),
            j.kind.name().to_string(),
            j.status_name().to_string(),
            j.duration_ms
                .map_or_else(|| "-".into(), |ms| format!("{:.1}", ms as f64 / 1000.0)),
            format!("{}/{}", j.user, j.device_name),
            j.item.clone().unwrap_or_else(|| "-".into()),
            j.vault
                .map_or_else(|| "-".to_string(), |v| v.to_hex()[..8].to_string()),
            j.files.to_string(),
            human_bytes(j.bytes),
            j.error.as_deref().map_or_else(String::new, |e| {
                cairn_node::http::api::jobs::escape_control(e, false)
            }),
        ]);
    }
    text(&t, "")
}
