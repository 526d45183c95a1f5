//! `cairnd license-authority init|serve|serial create|list|relax` (the
//! license authority, a separate process mode of the same binary) and
//! `cairnd admin license set` (a cluster's license). The authority's
//! lifecycle is `cairn_node::server`'s, its operator calls
//! `cairn_node::client`'s; this module parses and prints.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cairn_node::client::table::{table, text};
use cairn_node::client::{human_bytes, local_time, CliError, Client};
use cairn_node::license::policy::{redact, SerialRecord};
use cairn_node::server::{self, AuthorityOptions, AUTHORITY_TOKEN_FILE};
use cairn_proto::admin::{LicenseStatus, SetLicense};
use clap::Subcommand;

use super::output::output;
use super::Failure;

#[derive(Subcommand)]
pub enum AuthorityCommand {
    /// Create the authority's data directory: its database and its operator token
    /// (DIR/operator.token, mode 0600).
    Init {
        /// The authority's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Run the authority.
    Serve {
        /// The authority's data directory (initialised if needed).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Listen address (off loopback: TLS, or --insecure-http).
        #[arg(long, value_name = "ADDR")]
        listen: SocketAddr,
        /// Length of every lease granted or renewed.
        #[arg(long, value_name = "N", default_value_t = 3_600)]
        lease_seconds: u64,
        /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
        #[arg(long, value_name = "PEM", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert.
        #[arg(long, value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Serve plain HTTP on a non-loopback address (serials travel in clear text).
        #[arg(long)]
        insecure_http: bool,
    },
    /// Serials: issue, list, relax (talks to a running authority).
    Serial {
        /// URL of the authority.
        #[arg(
            long,
            global = true,
            env = "CAIRN_LICENSE_AUTHORITY",
            value_name = "URL"
        )]
        authority: Option<String>,
        /// The authority's data directory, for its operator token (else --token-file).
        #[arg(long, global = true, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// File holding the authority's operator token.
        #[arg(long, global = true, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Extra trusted root certificate(s), PEM.
        #[arg(long, global = true, value_name = "PEM")]
        ca_file: Option<PathBuf>,
        #[command(subcommand)]
        command: SerialCommand,
    },
}

#[derive(Subcommand)]
pub enum SerialCommand {
    /// Issue a new serial to a customer (printed once: it is a secret).
    Create {
        /// Who it is for.
        customer: String,
    },
    /// Every serial: holder cluster, expiry, fencing token, last telemetry (--json: with the
    /// full history of holders).
    List,
    /// Release a serial's lease early (e.g. when a cluster moves).
    Relax {
        /// The serial.
        serial: String,
    },
}

#[derive(Subcommand)]
pub enum LicenseCommand {
    /// Record the cluster's serial and license authority through the log; the leader then
    /// leases the serial.
    Set {
        /// The serial number.
        #[arg(long, value_name = "S")]
        serial: String,
        /// The license authority's URL (https:// off loopback).
        #[arg(long, value_name = "URL")]
        authority: String,
        /// How often the leader renews [default: 3600, and at least every third of the lease].
        #[arg(long, value_name = "N")]
        renew_seconds: Option<u64>,
        /// How long the cluster keeps working without the authority [default: 259200 (72 h)].
        #[arg(long, value_name = "N")]
        grace_seconds: Option<u64>,
    },
}

/// `cairnd license-authority ...`.
pub async fn authority(command: AuthorityCommand, json: bool) -> Result<(), Failure> {
    match command {
        AuthorityCommand::Init { data_dir } => {
            let token = server::license_authority_init(&data_dir)?;
            Ok(output(json, &token, |t| {
                format!(
                    "license authority initialised; operator token: {}\n",
                    t.display()
                )
            })?)
        }
        AuthorityCommand::Serve {
            data_dir,
            listen,
            lease_seconds,
            tls_cert,
            tls_key,
            insecure_http,
        } => {
            let options = AuthorityOptions {
                data_dir,
                listen,
                lease: Duration::from_secs(lease_seconds),
                tls: tls_cert.zip(tls_key),
                insecure_http,
                on_listening: Box::new(move |url: &str| {
                    if json {
                        println!("{}", serde_json::json!({"event": "listening", "url": url}));
                    } else {
                        println!("cairnd license authority listening on {url}");
                    }
                }),
            };
            server::license_authority_serve(options, server::shutdown_signal()).await?;
            Ok(())
        }
        AuthorityCommand::Serial {
            authority,
            data_dir,
            token_file,
            ca_file,
            command,
        } => {
            let url = authority.ok_or_else(|| {
                CliError::Usage("missing --authority URL (or CAIRN_LICENSE_AUTHORITY)".into())
            })?;
            let token_file = token_file
                .or_else(|| data_dir.map(|d| d.join(AUTHORITY_TOKEN_FILE)))
                .ok_or_else(|| {
                    CliError::Usage(
                        "the operator token: pass --data-dir DIR of the authority or --token-file FILE"
                            .into(),
                    )
                })?;
            let token = std::fs::read_to_string(&token_file)
                .map_err(|e| CliError::Other(format!("{}: {e}", token_file.display())))?;
            let client = Client::new(&url, Some(token.trim().to_owned()), ca_file.as_deref())?;
            Ok(serial(&client, command, json).await?)
        }
    }
}

async fn serial(client: &Client, command: SerialCommand, json: bool) -> Result<(), CliError> {
    match command {
        SerialCommand::Create { customer } => {
            let rec = client.create_serial(&customer).await?;
            output(json, &rec, |r| {
                format!("serial {} issued to {}\n", r.serial, r.customer)
            })
        }
        SerialCommand::List => {
            let serials = client.list_serials().await?;
            output(json, &serials, |all| serial_table(all))
        }
        SerialCommand::Relax { serial } => {
            let r = client.relax_serial(&serial).await?;
            output(json, &r, |r| {
                if r.relaxed {
                    "the lease was released; any cluster may now acquire the serial\n".to_owned()
                } else {
                    "no lease was running; the serial is free\n".to_owned()
                }
            })
        }
    }
}

/// `serial list`: one row per serial, its holder and last telemetry.
fn serial_table(all: &[SerialRecord]) -> String {
    let mut t = table(&[
        "serial", "customer", "holder", "until", "token", "accounts", "devices", "vaults", "stored",
    ]);
    for r in all {
        let (holder, until, token) = r.holder.as_ref().map_or_else(
            || ("free".to_owned(), "-".to_owned(), "-".to_owned()),
            |h| {
                (
                    h.cluster_id.clone(),
                    local_time(h.expires_at),
                    h.fencing_token.to_string(),
                )
            },
        );
        let mut row = vec![redact(&r.serial), r.customer.clone(), holder, until, token];
        match &r.telemetry {
            Some(t) => row.extend([
                t.accounts.to_string(),
                t.devices.to_string(),
                t.vaults.to_string(),
                human_bytes(t.stored_bytes),
            ]),
            None => row.extend(["-".to_owned(), "-".into(), "-".into(), "-".into()]),
        }
        t.add_row(row);
    }
    text(&t, "")
}

/// `cairnd admin license set ...`.
pub async fn set(client: &Client, command: LicenseCommand, json: bool) -> Result<(), CliError> {
    let LicenseCommand::Set {
        serial,
        authority,
        renew_seconds,
        grace_seconds,
    } = command;
    let status = client
        .set_license(&SetLicense {
            serial,
            authority,
            renew_seconds,
            grace_seconds,
        })
        .await?;
    output(json, &status, license_line)
}

fn license_line(l: &LicenseStatus) -> String {
    format!(
        "license set: serial {}, mode {} (the leader acquires the lease)\n",
        l.serial.as_deref().unwrap_or("-"),
        l.mode
    )
}
