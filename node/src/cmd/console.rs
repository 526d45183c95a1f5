//! `cairnd admin operator|org|audit`: the console's operators, their
//! sessions, organizations and the audit trail, with their text renderers.
//!
//! `operator login` needs no admin token: it prints a session token that
//! works wherever the admin token does (as `CAIRN_ADMIN_TOKEN` or in the
//! `--admin-token-file`), within the operator's role.

use std::path::PathBuf;

use cairn_node::client::table::{table, text};
use cairn_node::client::{local_time, CliError, Client};
use cairn_proto::console::{ConfigureOrg, OperatorInfo};
use clap::Subcommand;

use super::output::output;

#[derive(Subcommand)]
pub enum OperatorCommand {
    /// Create an operator (an admin account kept by the cluster).
    Create {
        /// Login name.
        name: String,
        /// cluster-admin, org-admin or read-only.
        #[arg(long, value_name = "ROLE")]
        role: String,
        /// The organization an org admin (or a bound read-only operator) acts in.
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        /// File holding the password (first line); it never leaves this machine.
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
        /// Enroll a TOTP second factor: prints its otpauth:// URI once (add
        /// it to an authenticator app); logins then need `--totp CODE`.
        #[arg(long)]
        totp: bool,
    },
    /// List operators with their open sessions.
    List,
    /// Remove an operator and their sessions.
    Remove {
        /// Login name.
        name: String,
    },
    /// Log in as an operator and print the session token.
    Login {
        /// Login name.
        name: String,
        /// File holding the password (first line).
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
        /// The current code of an operator enrolled in TOTP.
        #[arg(long, value_name = "CODE", env = "CAIRN_TOTP")]
        totp: Option<String>,
    },
    /// Revoke an operator's sessions (all, or one with --session).
    Revoke {
        /// Login name.
        name: String,
        /// Only this session (its id from `operator list`).
        #[arg(long, value_name = "ID")]
        session: Option<String>,
    },
    /// An existing operator's TOTP second factor.
    Totp {
        #[command(subcommand)]
        command: TotpCommand,
    },
}

/// `cairnd admin operator totp enable|disable`: with `--password-file` an
/// operator changes their own (no admin token needed); without, the admin
/// token or a cluster admin's session changes another's.
#[derive(Subcommand, Clone)]
pub enum TotpCommand {
    /// Enrol: prints the otpauth:// URI (and so the secret) once; add it to
    /// an authenticator app. Logins then need `--totp CODE`.
    Enable {
        /// The operator.
        name: String,
        /// Your own password (first line): change your own second factor.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Remove the second factor.
    Disable {
        /// The operator.
        name: String,
        /// Your own password (first line): change your own second factor.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
        /// Your current code (when removing your own).
        #[arg(long, value_name = "CODE", env = "CAIRN_TOTP")]
        totp: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create or reconfigure an organization.
    Set {
        /// Name.
        name: String,
        /// Display name (branding).
        #[arg(long, value_name = "TEXT", default_value = "")]
        display_name: String,
        /// Support URL (branding).
        #[arg(long, value_name = "URL", default_value = "")]
        support_url: String,
        /// A tier its users may request (repeat; none: every requestable tier).
        #[arg(long = "tier", value_name = "TIER")]
        tiers: Vec<String>,
    },
    /// List organizations.
    List,
}

fn render_operators(ops: &[OperatorInfo]) -> String {
    let mut t = table(&["name", "role", "org", "created", "sessions"]);
    for o in ops {
        t.add_row(vec![
            o.name.clone(),
            o.role.clone(),
            o.org.clone().unwrap_or_else(|| "-".into()),
            local_time(o.created_at),
            o.sessions.len().to_string(),
        ]);
    }
    text(&t, "")
}

/// `cairnd admin operator login` (needs no admin token).
pub async fn login(
    client: &Client,
    name: &str,
    password_file: &std::path::Path,
    totp: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let reply = client.operator_login(name, password_file, totp).await?;
    output(json, &reply, |r| format!("{}\n", r.token))
}

/// `cairnd admin operator ...` other than `login`.
pub async fn operator(
    client: &Client,
    command: OperatorCommand,
    json: bool,
) -> Result<(), CliError> {
    match command {
        OperatorCommand::Create {
            name,
            role,
            org,
            password_file,
            totp,
        } => {
            let op = client
                .create_operator(&name, &role, org, &password_file, totp)
                .await?;
            output(json, &op, |o| {
                let uri = o.totp_uri.as_deref().map_or_else(String::new, |u| {
                    format!("TOTP (shown once; add it to an authenticator app): {u}\n")
                });
                format!("created operator {} ({})\n{uri}", o.name, o.role)
            })
        }
        OperatorCommand::List => {
            let ops = client.list_operators().await?;
            output(json, &ops, |ops| render_operators(ops))
        }
        OperatorCommand::Remove { name } => {
            client.remove_operator(&name).await?;
            output(json, &serde_json::json!({ "removed": name }), |_| {
                format!("removed operator {name}\n")
            })
        }
        OperatorCommand::Revoke { name, session } => {
            client.revoke_sessions(&name, session).await?;
            output(json, &serde_json::json!({ "revoked": name }), |_| {
                format!("revoked sessions of {name}\n")
            })
        }
        OperatorCommand::Login {
            name,
            password_file,
            totp,
        } => login(client, &name, &password_file, totp, json).await,
        OperatorCommand::Totp { command } => totp(client, command, json).await,
    }
}

/// `cairnd admin operator totp ...`.
pub async fn totp(client: &Client, command: TotpCommand, json: bool) -> Result<(), CliError> {
    let (name, enable, own) = match &command {
        TotpCommand::Enable {
            name,
            password_file,
        } => (name, true, password_file.as_deref().map(|p| (p, None))),
        TotpCommand::Disable {
            name,
            password_file,
            totp,
        } => (
            name,
            false,
            password_file.as_deref().map(|p| (p, totp.clone())),
        ),
    };
    let op = client.set_totp(name, enable, own).await?;
    output(json, &op, |o| match &o.totp_uri {
        Some(uri) => format!(
            "TOTP enrolled for {} (shown once; add it to an authenticator app): {uri}\n",
            o.name
        ),
        None => format!("TOTP removed for {}\n", o.name),
    })
}

/// `cairnd admin org ...`.
pub async fn org(client: &Client, command: OrgCommand, json: bool) -> Result<(), CliError> {
    match command {
        OrgCommand::Set {
            name,
            display_name,
            support_url,
            tiers,
        } => {
            let body = ConfigureOrg {
                name,
                display_name,
                support_url,
                tiers,
            };
            let info = client.configure_org(&body).await?;
            output(json, &info, |o| format!("organization {} set\n", o.name))
        }
        OrgCommand::List => {
            let orgs = client.list_orgs().await?;
            output(json, &orgs, |orgs| {
                let mut t = table(&["name", "users", "display name", "tiers"]);
                for o in orgs {
                    t.add_row(vec![
                        o.name.clone(),
                        o.users.to_string(),
                        o.display_name.clone(),
                        if o.tiers.is_empty() {
                            "every requestable".into()
                        } else {
                            o.tiers.join(",")
                        },
                    ]);
                }
                text(&t, "")
            })
        }
    }
}

/// `cairnd admin audit`.
pub async fn audit(client: &Client, json: bool) -> Result<(), CliError> {
    let entries = client.audit().await?;
    output(json, &entries, |entries| {
        let mut t = table(&["seq", "at", "actor", "from", "action", "target"]);
        for e in entries {
            t.add_row(vec![
                e.seq.to_string(),
                local_time(e.at),
                e.actor.clone(),
                e.from.clone(),
                e.action.clone(),
                e.target.clone(),
            ]);
        }
        text(&t, "")
    })
}
