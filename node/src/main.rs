//! `cairnd`: the Cairn server. See `cairnd --help` and DESIGN §9.
//!
//! With no subcommand it runs a single-node dev cluster in `./cairn-data`
//! on `127.0.0.1:8700`, initialising it on first start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cairn_node::app::App;
use cairn_node::cli::{format_status, CliError, Client};
use cairn_node::config::{DataDir, NodeIdentity};
use cairn_node::error::NodeError;
use cairn_node::server::{self, ServeOptions};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cairnd",
    version,
    about = "Cairn server node",
    propagate_version = true
)]
struct Cli {
    /// Data directory of the dev cluster (when run without a subcommand).
    #[arg(long, default_value = "./cairn-data")]
    data_dir: PathBuf,
    /// Listen address of the dev cluster (when run without a subcommand).
    #[arg(long, default_value = "127.0.0.1:8700")]
    listen: SocketAddr,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new one-voter cluster in DATA_DIR.
    Init {
        /// Data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// This node's Raft id (any positive integer, unique in the cluster).
        #[arg(long)]
        node_id: u64,
        /// Address to listen on.
        #[arg(long)]
        listen: SocketAddr,
        /// URL peers and clients use to reach this node [default: http://LISTEN].
        #[arg(long)]
        advertise: Option<String>,
        /// Allow a non-loopback listen address without TLS.
        #[arg(long)]
        insecure_http: bool,
        /// File holding a shared secret that nodes must present on the
        /// cluster-internal endpoints; every node needs the same one.
        #[arg(long, env = "CAIRN_CLUSTER_SECRET_FILE")]
        cluster_secret_file: Option<PathBuf>,
    },
    /// Run a node; with --join, first add it to an existing cluster.
    Serve {
        /// Data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// This node's Raft id (only for a node that is joining).
        #[arg(long)]
        node_id: Option<u64>,
        /// Address to listen on (only for a node that is joining).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// URL peers and clients use to reach this node [default: http://LISTEN].
        #[arg(long)]
        advertise: Option<String>,
        /// URL of any node of the cluster to join.
        #[arg(long)]
        join: Option<String>,
        /// Allow a non-loopback listen address without TLS.
        #[arg(long)]
        insecure_http: bool,
        /// File holding the cluster's secret (needed to join a cluster that has one).
        #[arg(long, env = "CAIRN_CLUSTER_SECRET_FILE")]
        cluster_secret_file: Option<PathBuf>,
    },
    /// Inspect the cluster.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Administer accounts and tiers.
    Admin {
        /// URL of any node.
        #[arg(long, env = "CAIRN_SERVER")]
        server: String,
        /// File holding the admin token (else CAIRN_ADMIN_TOKEN).
        #[arg(long)]
        admin_token_file: Option<PathBuf>,
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Leader, term, members, voters, applied index per node, storage nodes.
    Status {
        /// URL of any node.
        #[arg(long, env = "CAIRN_SERVER")]
        server: String,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
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
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account.
    Create {
        /// Login name.
        name: String,
        /// File holding the initial password (first line).
        #[arg(long)]
        password_file: PathBuf,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// List accounts.
    List {
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TierCommand {
    /// Define (or redefine) a requestable tier.
    Create {
        /// Tier name.
        name: String,
        /// Chunk replicas.
        #[arg(long)]
        replicas: u8,
        /// Define it but do not let devices request it.
        #[arg(long)]
        not_requestable: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairnd: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Node(e)) => {
            eprintln!("cairnd: {e}");
            ExitCode::from(1)
        }
        Err(Failure::Cli(e)) => {
            eprintln!("cairnd: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

enum Failure {
    Node(NodeError),
    Cli(CliError),
}

impl From<NodeError> for Failure {
    fn from(e: NodeError) -> Self {
        Failure::Node(e)
    }
}

impl From<CliError> for Failure {
    fn from(e: CliError) -> Self {
        Failure::Cli(e)
    }
}

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

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Other(e.to_string()))?;
    println!("{text}");
    Ok(())
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        None => dev(cli.data_dir, cli.listen).await,
        Some(Command::Init {
            data_dir,
            node_id,
            listen,
            advertise,
            insecure_http,
            cluster_secret_file,
        }) => {
            server::check_listen(listen, insecure_http)?;
            let dir = DataDir::new(data_dir);
            let identity = NodeIdentity::new(node_id, listen, advertise);
            server::init(&dir, identity, cluster_secret_file.as_deref()).await?;
            println!("initialised node {node_id} in {}", dir.root().display());
            println!("admin token: {}", dir.admin_token().display());
            Ok(())
        }
        Some(Command::Serve {
            data_dir,
            node_id,
            listen,
            advertise,
            join,
            insecure_http,
            cluster_secret_file,
        }) => {
            let dir = DataDir::new(data_dir);
            let secret = cluster_secret_file.as_deref();
            let identity = match (NodeIdentity::load(&dir)?, node_id, listen) {
                (Some(id), None, None) => {
                    server::install_cluster_secret(&dir, secret)?;
                    id
                }
                (Some(id), n, l) => {
                    if n.is_some_and(|n| n != id.node_id) || l.is_some_and(|l| l != id.listen) {
                        return Err(NodeError::Config(format!(
                            "{} belongs to node {} on {}; --node-id/--listen cannot change that",
                            dir.root().display(),
                            id.node_id,
                            id.listen
                        ))
                        .into());
                    }
                    server::install_cluster_secret(&dir, secret)?;
                    id
                }
                (None, Some(n), Some(l)) if join.is_some() => {
                    let id = NodeIdentity::new(n, l, advertise);
                    server::prepare_joiner(&dir, &id, secret)?;
                    id
                }
                (None, _, _) => {
                    return Err(NodeError::Config(format!(
                        "{} is not initialised: run `cairnd init`, or pass --node-id, --listen and --join",
                        dir.root().display()
                    ))
                    .into())
                }
            };
            server::check_listen(identity.listen, insecure_http)?;
            server::serve(
                &dir,
                identity,
                ServeOptions { join },
                server::shutdown_signal(),
            )
            .await?;
            Ok(())
        }
        Some(Command::Cluster {
            command: ClusterCommand::Status { server, json },
        }) => {
            let status = Client::new(&server, None)?.cluster_status().await?;
            if json {
                print_json(&status)?;
            } else {
                print!("{}", format_status(&status));
            }
            Ok(())
        }
        Some(Command::Admin {
            server,
            admin_token_file,
            command,
        }) => {
            let token = admin_token(admin_token_file.as_deref())?;
            if token.is_none() {
                return Err(CliError::Auth(
                    "no admin token: set CAIRN_ADMIN_TOKEN or --admin-token-file".into(),
                )
                .into());
            }
            let client = Client::new(&server, token)?;
            match command {
                AdminCommand::User {
                    command:
                        UserCommand::Create {
                            name,
                            password_file,
                            json,
                        },
                } => {
                    let user = client.create_user(&name, &password_file).await?;
                    if json {
                        print_json(&user)?;
                    } else {
                        println!("created user {} ({})", user.name, user.id);
                    }
                }
                AdminCommand::User {
                    command: UserCommand::List { json },
                } => {
                    let users = client.list_users().await?;
                    if json {
                        print_json(&users)?;
                    } else {
                        for u in users {
                            println!(
                                "{:<24} {}  devices {}  vaults {}",
                                u.name, u.id, u.devices, u.vaults
                            );
                        }
                    }
                }
                AdminCommand::Tier {
                    command:
                        TierCommand::Create {
                            name,
                            replicas,
                            not_requestable,
                        },
                } => {
                    client
                        .define_tier(&name, replicas, !not_requestable)
                        .await?;
                    println!("defined tier {name} ({replicas} replicas)");
                }
            }
            Ok(())
        }
    }
}

/// The no-argument dev cluster: one node, id 1, initialised on first start.
async fn dev(data_dir: PathBuf, listen: SocketAddr) -> Result<(), Failure> {
    server::check_listen(listen, false)?;
    let dir = DataDir::new(data_dir);
    let app = match NodeIdentity::load(&dir)? {
        Some(id) => App::start(&dir, id).await?,
        None => server::start_new_cluster(&dir, NodeIdentity::new(1, listen, None), None).await?,
    };
    println!("cairnd dev cluster: {}", app.identity.advertise);
    println!("data directory: {}", dir.root().display());
    println!("admin token: {} (mode 0600)", dir.admin_token().display());
    server::serve_app(app, ServeOptions { join: None }, server::shutdown_signal()).await?;
    Ok(())
}
