//! `cairnd`: the Cairn server. See `cairnd --help` and DESIGN §9.
//!
//! With no subcommand it runs a single-node dev cluster in `./cairn-data`
//! on `127.0.0.1:8700`, initialising it on first start.
//!
//! Settings come from flags, their environment variables and the TOML file
//! given with `--config`, in that order of precedence; the merge happens
//! here, so the library only ever sees complete settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cairn_node::app::App;
use cairn_node::cli::{self, format_status, CliError, Client};
use cairn_node::config::{DataDir, FileConfig, HttpSettings, NodeIdentity, RaftSettings};
use cairn_node::error::NodeError;
use cairn_node::server::{self, ServeOptions};
use cairn_node::storage::StorageSettings;
use cairn_node::tls::{TlsSettings, TlsSource};
use cairn_node::wire::DefineTier;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

const DEV_DATA_DIR: &str = "./cairn-data";
const DEV_LISTEN: &str = "127.0.0.1:8700";

#[derive(Parser)]
#[command(
    name = "cairnd",
    version,
    about = "Cairn server node",
    long_about = "Cairn server node.\n\nWithout a subcommand: a one-node dev cluster \
                  (data in ./cairn-data, listening on 127.0.0.1:8700), initialised on first start.\n\n\
                  Settings: command-line flags (and their environment variables) override the \
                  TOML file given with --config.",
    propagate_version = true
)]
struct Cli {
    /// TOML configuration file; flags given on the command line override its values.
    #[arg(long, global = true, env = "CAIRND_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print JSON instead of text: one document per command (one line per event for servers).
    #[arg(long, global = true)]
    json: bool,
    /// Data directory of the dev cluster (without a subcommand) [default: ./cairn-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Listen address of the dev cluster (without a subcommand) [default: 127.0.0.1:8700].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    raft: RaftArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new one-voter cluster in the data directory, then exit.
    Init {
        #[command(flatten)]
        node: NodeArgs,
        #[command(flatten)]
        raft: RaftArgs,
    },
    /// Run a node; with --join, first add it to an existing cluster.
    Serve {
        #[command(flatten)]
        node: NodeArgs,
        /// URL of any node of the cluster to join (for a node that is not yet a member).
        #[arg(long, value_name = "URL")]
        join: Option<String>,
        #[command(flatten)]
        raft: RaftArgs,
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Inspect and change the cluster's membership.
    Cluster {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Administer accounts and tiers.
    Admin {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Offline tools for tests and incident drills (on a stopped node's data directory).
    Debug {
        #[command(subcommand)]
        command: DebugCommand,
    },
}

#[derive(Subcommand)]
enum DebugCommand {
    /// Flip bytes of one stored copy of a chunk (its checksum record is kept, so reads detect it).
    CorruptReplica {
        /// Data directory of the stopped node.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Vault id (hex).
        #[arg(long, value_name = "HEX")]
        vault: String,
        /// Chunk id (hex).
        #[arg(long, value_name = "HEX")]
        chunk: String,
    },
}

// The storage role; the same keys exist in the `[storage]` table of the config file.
#[derive(Args)]
#[command(next_help_heading = "Storage (also the [storage] table of the config file)")]
struct StorageArgs {
    /// Durable copies an upload waits for (W), capped by the vault's replicas [default: 2].
    #[arg(long, value_name = "N")]
    write_quorum: Option<usize>,
    /// Pause between the leader's repair passes, ms [default: 30000].
    #[arg(long, value_name = "MS")]
    repair_interval_ms: Option<u64>,
    /// Pause between garbage-collection passes, ms [default: 600000].
    #[arg(long, value_name = "MS")]
    gc_interval_ms: Option<u64>,
    /// Pause between scrubs (every stored copy read and checked), ms; 0 = off [default: 86400000].
    #[arg(long, value_name = "MS")]
    scrub_interval_ms: Option<u64>,
}

impl StorageArgs {
    /// `file` with every flag that was given applied on top.
    fn over(&self, file: &StorageSettings) -> StorageSettings {
        StorageSettings {
            write_quorum: self.write_quorum.unwrap_or(file.write_quorum),
            repair_interval_ms: self.repair_interval_ms.unwrap_or(file.repair_interval_ms),
            gc_interval_ms: self.gc_interval_ms.unwrap_or(file.gc_interval_ms),
            usage_cache_ms: file.usage_cache_ms,
            scrub_interval_ms: self.scrub_interval_ms.unwrap_or(file.scrub_interval_ms),
            scrub_bytes_per_sec: file.scrub_bytes_per_sec,
        }
    }
}

// Limits of the HTTP server; the same keys exist in the `[http]` table of the config file.
#[derive(Args)]
#[command(next_help_heading = "HTTP limits (also the [http] table of the config file)")]
struct HttpArgs {
    /// Time a client has to send a request's headers (also the idle keep-alive timeout), ms [default: 10000].
    #[arg(long, value_name = "MS")]
    header_timeout_ms: Option<u64>,
    /// Longest pause while a request body is received, ms [default: 60000].
    #[arg(long, value_name = "MS")]
    body_timeout_ms: Option<u64>,
    /// Most connections served at once; more are closed on accept [default: 1024].
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
}

impl HttpArgs {
    /// `file` with every flag that was given applied on top.
    fn over(&self, file: &HttpSettings) -> HttpSettings {
        HttpSettings {
            header_timeout_ms: self.header_timeout_ms.unwrap_or(file.header_timeout_ms),
            body_timeout_ms: self.body_timeout_ms.unwrap_or(file.body_timeout_ms),
            max_connections: self.max_connections.unwrap_or(file.max_connections),
        }
    }
}

// Where a node lives; fixed once the node is initialised or has joined.
// (Plain comments: a doc comment here would replace the subcommand's about.)
#[derive(Args)]
struct NodeArgs {
    /// Data directory (Raft log and state, node.json, admin.token).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// This node's Raft id: a positive integer, unique in the cluster (new nodes only).
    #[arg(long, value_name = "ID")]
    node_id: Option<u64>,
    /// Address to listen on (new nodes only).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// URL peers and clients use to reach this node [default: http://LISTEN].
    #[arg(long, value_name = "URL")]
    advertise: Option<String>,
    /// Allow a non-loopback listen address without TLS.
    #[arg(long)]
    insecure_http: bool,
    /// File holding the secret nodes present on cluster-internal endpoints; every node needs the same [init: generated in DATA_DIR/cluster.secret; serve --join: required].
    #[arg(long, env = "CAIRN_CLUSTER_SECRET_FILE", value_name = "FILE")]
    cluster_secret_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Dev: serve HTTPS with a self-signed certificate generated on first start in DATA_DIR/tls/.
    #[arg(long)]
    tls_self_signed: bool,
    /// Extra trusted root certificate(s), PEM, for connections to other nodes.
    #[arg(long, env = "CAIRN_CA_FILE", value_name = "PEM")]
    ca_file: Option<PathBuf>,
}

// Raft tuning; the same keys exist in the `[raft]` table of the config file.
#[derive(Args)]
#[command(next_help_heading = "Raft tuning (also the [raft] table of the config file)")]
struct RaftArgs {
    /// Leader heartbeat interval, ms [default: 150].
    #[arg(long, value_name = "MS")]
    heartbeat_ms: Option<u64>,
    /// Lower bound of the random election timeout, ms [default: 600].
    #[arg(long, value_name = "MS")]
    election_timeout_min_ms: Option<u64>,
    /// Upper bound of the random election timeout (and leader lease), ms [default: 900].
    #[arg(long, value_name = "MS")]
    election_timeout_max_ms: Option<u64>,
    /// Snapshot the state and compact the log every N entries [default: 5000].
    #[arg(long, value_name = "N")]
    snapshot_every: Option<u64>,
    /// Log entries kept behind the latest snapshot [default: 1000].
    #[arg(long, value_name = "N")]
    snapshot_keep_logs: Option<u64>,
    /// Bytes of snapshot per install-snapshot request [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    snapshot_chunk_size: Option<u64>,
    /// Time allowed for one install-snapshot request, ms [default: 10000].
    #[arg(long, value_name = "MS")]
    install_snapshot_timeout_ms: Option<u64>,
}

impl RaftArgs {
    /// `file` with every flag that was given applied on top.
    fn over(&self, file: &RaftSettings) -> RaftSettings {
        RaftSettings {
            heartbeat_ms: self.heartbeat_ms.unwrap_or(file.heartbeat_ms),
            election_timeout_min_ms: self
                .election_timeout_min_ms
                .unwrap_or(file.election_timeout_min_ms),
            election_timeout_max_ms: self
                .election_timeout_max_ms
                .unwrap_or(file.election_timeout_max_ms),
            snapshot_every: self.snapshot_every.unwrap_or(file.snapshot_every),
            snapshot_keep_logs: self.snapshot_keep_logs.unwrap_or(file.snapshot_keep_logs),
            snapshot_chunk_size: self.snapshot_chunk_size.unwrap_or(file.snapshot_chunk_size),
            install_snapshot_timeout_ms: self
                .install_snapshot_timeout_ms
                .unwrap_or(file.install_snapshot_timeout_ms),
        }
    }
}

// How operator commands reach the cluster.
#[derive(Args)]
struct ClientArgs {
    /// URL of any node of the cluster.
    #[arg(long, global = true, env = "CAIRN_SERVER", value_name = "URL")]
    server: Option<String>,
    /// File holding the admin token (else CAIRN_ADMIN_TOKEN).
    #[arg(
        long,
        global = true,
        env = "CAIRN_ADMIN_TOKEN_FILE",
        value_name = "FILE"
    )]
    admin_token_file: Option<PathBuf>,
    /// Extra trusted root certificate(s), PEM, e.g. a node's self-signed tls/cert.pem.
    #[arg(long, global = true, env = "CAIRN_CA_FILE", value_name = "PEM")]
    ca_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Leader, term, members, voters, applied index per node, storage nodes.
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
    /// Devices of every account.
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// The job log of every account (backups, restores, checks, prunes,
    /// logins), oldest first.
    Jobs,
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// List every account's devices (revoked ones too).
    List,
    /// Revoke a device: every node refuses its token from now on.
    Revoke {
        /// Device id (32 hex digits, from `device list`).
        device: cairn_proto::DeviceId,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account.
    Create {
        /// Login name.
        name: String,
        /// File holding the initial password (first line).
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
    },
    /// List accounts.
    List,
}

#[derive(Subcommand)]
enum TierCommand {
    /// Define (or redefine) a requestable tier.
    Create {
        /// Tier name.
        name: String,
        /// Chunk replicas.
        #[arg(long, value_name = "N")]
        replicas: u8,
        /// Per-vault quota of stored chunks: bytes, or with a unit
        /// (e.g. 10GiB, 500GB). Default: unlimited.
        #[arg(long, value_name = "SIZE", value_parser = cli::parse_size)]
        quota: Option<u64>,
        /// What the tier is for, shown to users choosing one.
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
        /// Define it but do not let devices request it.
        #[arg(long)]
        not_requestable: bool,
    },
    /// List tiers.
    List,
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

fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Other(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Prints `value` as JSON in `--json` mode, else the text `human` renders.
fn output<T: Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce(&T) -> String,
) -> Result<(), CliError> {
    if json {
        print_json(value)
    } else {
        print!("{}", human(value));
        Ok(())
    }
}

/// What a server prints once it listens (`--json`: one line).
#[derive(Serialize)]
struct Listening {
    event: &'static str,
    node_id: u64,
    url: String,
    advertise: String,
    data_dir: PathBuf,
    admin_token: PathBuf,
}

fn on_listening(
    json: bool,
    dev: bool,
    scheme: &'static str,
    identity: &NodeIdentity,
    dir: &DataDir,
) -> ServeOptions {
    let node_id = identity.node_id;
    let advertise = identity.advertise.clone();
    let data_dir = dir.root().to_owned();
    let admin_token = dir.admin_token();
    ServeOptions {
        join: None,
        data_dir: dir.clone(),
        storage: StorageSettings::default(),
        http: HttpSettings::default(),
        on_listening: Box::new(move |local: SocketAddr| {
            let l = Listening {
                event: "listening",
                node_id,
                url: format!("{scheme}://{local}"),
                advertise,
                data_dir,
                admin_token,
            };
            if json {
                match serde_json::to_string(&l) {
                    Ok(line) => println!("{line}"),
                    Err(e) => tracing::error!(error = %e, "printing the listening line"),
                }
            } else if dev {
                println!("cairnd dev cluster: {}", l.url);
                println!("data directory: {}", l.data_dir.display());
                println!("admin token: {} (mode 0600)", l.admin_token.display());
            } else {
                println!("cairnd node {} listening on {}", l.node_id, l.url);
            }
        }),
    }
}

/// A setting that must come from a flag or the config file.
fn required<T>(value: Option<T>, what: &str) -> Result<T, CliError> {
    value.ok_or_else(|| {
        CliError::Usage(format!(
            "missing {what}: pass the flag or set it in the --config file"
        ))
    })
}

/// The node settings of `init`/`serve`, flags over the file.
struct NodeSettings {
    data_dir: PathBuf,
    node_id: Option<u64>,
    listen: Option<SocketAddr>,
    advertise: Option<String>,
    insecure_http: bool,
    cluster_secret_file: Option<PathBuf>,
    tls: TlsSettings,
}

impl NodeSettings {
    fn merge(args: NodeArgs, file: &FileConfig) -> Result<Self, CliError> {
        if args.node_id.or(file.node_id) == Some(0) {
            // 0 means "no leader" in cairn_raft_leader_id and is no valid Raft id here.
            return Err(CliError::Usage("node ids are positive integers".into()));
        }
        let serve = tls_source(&args, file)?;
        Ok(Self {
            data_dir: required(
                args.data_dir.or_else(|| file.data_dir.clone()),
                "--data-dir",
            )?,
            node_id: args.node_id.or(file.node_id),
            listen: args.listen.or(file.listen),
            advertise: args.advertise.or_else(|| file.advertise.clone()),
            insecure_http: args.insecure_http || file.insecure_http.unwrap_or(false),
            cluster_secret_file: args
                .cluster_secret_file
                .or_else(|| file.cluster_secret_file.clone()),
            tls: TlsSettings {
                serve,
                ca_file: args.ca_file.or_else(|| file.ca_file.clone()),
            },
        })
    }
}

/// What the node serves HTTPS with, merged key by key like every other
/// setting (a flag wins over the file).
fn tls_source(args: &NodeArgs, file: &FileConfig) -> Result<Option<TlsSource>, CliError> {
    let cert = args.tls_cert.clone().or_else(|| file.tls_cert.clone());
    let key = args.tls_key.clone().or_else(|| file.tls_key.clone());
    let self_signed = args.tls_self_signed || file.tls_self_signed.unwrap_or(false);
    match (cert, key, self_signed) {
        (None, None, false) => Ok(None),
        (None, None, true) => Ok(Some(TlsSource::SelfSigned)),
        (Some(cert), Some(key), false) => Ok(Some(TlsSource::Files { cert, key })),
        (Some(_), Some(_), true) => Err(CliError::Usage(
            "--tls-self-signed cannot be combined with --tls-cert/--tls-key".into(),
        )),
        _ => Err(CliError::Usage(
            "--tls-cert and --tls-key (tls_cert, tls_key) go together".into(),
        )),
    }
}

#[derive(Serialize)]
struct Initialised {
    node_id: u64,
    advertise: String,
    data_dir: PathBuf,
    admin_token: PathBuf,
    /// Joining nodes are given a copy (`--cluster-secret-file`).
    cluster_secret: PathBuf,
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let file = match &cli.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let json = cli.json;
    match cli.command {
        None => {
            let data_dir = cli
                .data_dir
                .or_else(|| file.data_dir.clone())
                .unwrap_or_else(|| PathBuf::from(DEV_DATA_DIR));
            let listen = match cli.listen.or(file.listen) {
                Some(l) => l,
                None => DEV_LISTEN
                    .parse()
                    .map_err(|e| CliError::Other(format!("{DEV_LISTEN}: {e}")))?,
            };
            dev(
                data_dir,
                listen,
                &cli.raft.over(&file.raft),
                file.storage.clone(),
                file.http,
                json,
            )
            .await
        }
        Some(Command::Init { node, raft }) => {
            let node = NodeSettings::merge(node, &file)?;
            let node_id = required(node.node_id, "--node-id")?;
            let listen = required(node.listen, "--listen")?;
            server::check_listen(listen, node.tls.enabled(), node.insecure_http)?;
            let dir = DataDir::new(node.data_dir);
            let identity = NodeIdentity::new(node_id, listen, node.advertise, node.tls.enabled());
            server::check_advertise(&identity, &node.tls)?;
            let advertise = identity.advertise.clone();
            server::init(
                &dir,
                identity,
                node.cluster_secret_file.as_deref(),
                &raft.over(&file.raft),
                &node.tls,
            )
            .await?;
            let done = Initialised {
                node_id,
                advertise,
                data_dir: dir.root().to_owned(),
                admin_token: dir.admin_token(),
                cluster_secret: dir.cluster_secret(),
            };
            Ok(output(json, &done, |d| {
                format!(
                    "initialised node {} in {}\nadmin token: {}\ncluster secret: {} \
                     (copy it to every joining node: --cluster-secret-file)\n",
                    d.node_id,
                    d.data_dir.display(),
                    d.admin_token.display(),
                    d.cluster_secret.display()
                )
            })?)
        }
        Some(Command::Serve {
            node,
            join,
            raft,
            storage,
            http,
        }) => {
            let node = NodeSettings::merge(node, &file)?;
            let join = join.or_else(|| file.join.clone());
            let dir = DataDir::new(node.data_dir);
            let secret = node.cluster_secret_file.as_deref();
            let identity = match (NodeIdentity::load(&dir)?, node.node_id, node.listen) {
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
                    let id = NodeIdentity::new(n, l, node.advertise, node.tls.enabled());
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
            server::check_listen(identity.listen, node.tls.enabled(), node.insecure_http)?;
            server::check_advertise(&identity, &node.tls)?;
            let mut options = on_listening(json, false, node.tls.scheme(), &identity, &dir);
            options.join = join;
            options.storage = storage.over(&file.storage);
            options.http = http.over(&file.http);
            server::serve(
                &dir,
                identity,
                &raft.over(&file.raft),
                &node.tls,
                options,
                server::shutdown_signal(),
            )
            .await?;
            Ok(())
        }
        Some(Command::Cluster { client, command }) => {
            let server = required(client.server.or_else(|| file.server.clone()), "--server")?;
            let ca_file = client.ca_file.or_else(|| file.ca_file.clone());
            match command {
                ClusterCommand::Status => {
                    let status = Client::new(&server, None, ca_file.as_deref())?
                        .cluster_status()
                        .await?;
                    Ok(output(json, &status, format_status)?)
                }
                ClusterCommand::Drain { node_id } => {
                    let token_file = client
                        .admin_token_file
                        .or_else(|| file.admin_token_file.clone());
                    let drained = admin_client(&server, token_file.as_deref(), ca_file.as_deref())?
                        .drain_node(node_id)
                        .await?;
                    Ok(output(json, &drained, |d| {
                        format!(
                            "node {} is {}; its chunks move to the other nodes (see cluster status)\n",
                            d.node_id, d.status
                        )
                    })?)
                }
                ClusterCommand::Remove { node_id, force } => {
                    let token_file = client
                        .admin_token_file
                        .or_else(|| file.admin_token_file.clone());
                    let removed = admin_client(&server, token_file.as_deref(), ca_file.as_deref())?
                        .remove_node(node_id, force)
                        .await?;
                    Ok(output(json, &removed, |r| {
                        format!(
                            "removed node {}; voters {:?}, learners {:?}\n",
                            r.node_id, r.voters, r.learners
                        )
                    })?)
                }
            }
        }
        Some(Command::Debug {
            command:
                DebugCommand::CorruptReplica {
                    data_dir,
                    vault,
                    chunk,
                },
        }) => Ok(corrupt_replica(&data_dir, &vault, &chunk, json)?),
        Some(Command::Admin { client, command }) => {
            let server = required(client.server.or_else(|| file.server.clone()), "--server")?;
            let ca_file = client.ca_file.or_else(|| file.ca_file.clone());
            let token_file = client
                .admin_token_file
                .or_else(|| file.admin_token_file.clone());
            let client = admin_client(&server, token_file.as_deref(), ca_file.as_deref())?;
            match command {
                AdminCommand::User {
                    command:
                        UserCommand::Create {
                            name,
                            password_file,
                        },
                } => {
                    let user = client.create_user(&name, &password_file).await?;
                    output(json, &user, |u| {
                        format!("created user {} ({})\n", u.name, u.id)
                    })?;
                }
                AdminCommand::User {
                    command: UserCommand::List,
                } => {
                    let users = client.list_users().await?;
                    output(json, &users, |users| {
                        users
                            .iter()
                            .map(|u| {
                                format!(
                                    "{:<24} {}  devices {}  vaults {}\n",
                                    u.name, u.id, u.devices, u.vaults
                                )
                            })
                            .collect()
                    })?;
                }
                AdminCommand::Tier {
                    command:
                        TierCommand::Create {
                            name,
                            replicas,
                            quota,
                            description,
                            not_requestable,
                        },
                } => {
                    let tier = client
                        .define_tier(&DefineTier {
                            name,
                            replicas,
                            requestable: !not_requestable,
                            quota_bytes: quota,
                            description,
                        })
                        .await?;
                    output(json, &tier, |t| {
                        format!("defined tier {} ({} replicas)\n", t.name, t.replicas)
                    })?;
                }
                AdminCommand::Device {
                    command: DeviceCommand::List,
                } => {
                    let devices = client.list_devices().await?;
                    output(json, &devices, |devices| {
                        devices.iter().map(device_line).collect()
                    })?;
                }
                AdminCommand::Device {
                    command: DeviceCommand::Revoke { device },
                } => {
                    let d = client.revoke_device(device).await?;
                    output(json, &d, device_line)?;
                }
                AdminCommand::Jobs => {
                    let jobs = client.list_jobs().await?;
                    output(json, &jobs, |jobs| jobs.iter().map(job_line).collect())?;
                }
                AdminCommand::Tier {
                    command: TierCommand::List,
                } => {
                    let tiers = client.list_tiers().await?;
                    output(json, &tiers, |tiers| {
                        tiers
                            .iter()
                            .map(|t| {
                                format!(
                                    "{:<24} replicas {}  {}\n",
                                    t.name,
                                    t.replicas,
                                    if t.requestable {
                                        "requestable"
                                    } else {
                                        "not requestable"
                                    }
                                )
                            })
                            .collect()
                    })?;
                }
            }
            Ok(())
        }
    }
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

/// What `debug corrupt-replica` did.
#[derive(Serialize)]
struct Corrupted {
    vault: String,
    chunk: String,
    store: PathBuf,
}

/// `cairnd debug corrupt-replica`: damages this node's copy of one chunk.
fn corrupt_replica(data_dir: &Path, vault: &str, chunk: &str, json: bool) -> Result<(), CliError> {
    use cairn_chunkstore::{ChunkKey, RocksStore, StoreOptions};
    let vault: cairn_proto::VaultId = vault.parse().map_err(|_| {
        CliError::Usage(format!(
            "--vault {vault:?} is not a vault id (32 hex digits)"
        ))
    })?;
    let chunk: cairn_proto::ChunkId = chunk.parse().map_err(|_| {
        CliError::Usage(format!(
            "--chunk {chunk:?} is not a chunk id (64 hex digits)"
        ))
    })?;
    let path = DataDir::new(data_dir).chunks();
    let store = RocksStore::open(&path, &StoreOptions::default()).map_err(|e| {
        if e.is_locked() {
            CliError::Other(format!(
                "{}: the node is running; stop it first",
                path.display()
            ))
        } else {
            CliError::Other(e.to_string())
        }
    })?;
    let found = store
        .damage_value(&ChunkKey::new(vault, chunk))
        .map_err(|e| CliError::Other(e.to_string()))?;
    if !found {
        return Err(CliError::Other(format!(
            "{} holds no copy of chunk {chunk} of vault {vault}",
            path.display()
        )));
    }
    let done = Corrupted {
        vault: vault.to_hex(),
        chunk: chunk.to_hex(),
        store: path,
    };
    output(json, &done, |d| {
        format!(
            "damaged the copy of chunk {} (vault {}) in {}\n",
            d.chunk,
            d.vault,
            d.store.display()
        )
    })
}

/// The tier a new dev cluster offers.
const DEV_TIER: &str = "standard";

/// The no-argument dev cluster: one node, id 1, initialised on first start
/// (with the [`DEV_TIER`] tier).
async fn dev(
    data_dir: PathBuf,
    listen: SocketAddr,
    settings: &RaftSettings,
    storage: StorageSettings,
    http: HttpSettings,
    json: bool,
) -> Result<(), Failure> {
    server::check_listen(listen, false, false)?;
    let dir = DataDir::new(data_dir);
    // The dev cluster is loopback-only and plain HTTP.
    let tls = TlsSettings::default();
    let app = match NodeIdentity::load(&dir)? {
        Some(id) => {
            // A dev data dir from before every node had a secret.
            server::ensure_dev_cluster_secret(&dir)?;
            App::start(&dir, id, settings, &tls).await?
        }
        None => {
            let identity = NodeIdentity::new(1, listen, None, false);
            let app = server::start_new_cluster(&dir, identity, None, settings, &tls).await?;
            // A dev cluster is usable at once: devices can request vaults
            // of a one-copy `standard` tier.
            let tier = cairn_consensus::Event::TierConfigured {
                name: DEV_TIER.into(),
                replicas: 1,
                requestable: true,
                quota_bytes: None,
                description: "dev cluster: one copy of every chunk".into(),
                at: cairn_node::app::now(),
            };
            app.propose(tier)
                .await
                .map_err(|e| CliError::Other(format!("defining the dev tier: {e}")))?;
            app
        }
    };
    let mut options = on_listening(json, true, tls.scheme(), &app.identity, &dir);
    options.storage = storage;
    options.http = http;
    server::serve_app(app, options, server::shutdown_signal()).await?;
    Ok(())
}

/// One line of `admin device list`.
fn device_line(d: &cairn_proto::api::DeviceInfo) -> String {
    let state = match d.revoked_at {
        Some(_) => "revoked",
        None => "live",
    };
    format!("{}  account {}  {:<24} {state}\n", d.id, d.account, d.name)
}

/// One line of `admin jobs`.
fn job_line(j: &cairn_proto::api::JobInfo) -> String {
    let status = j.status.map_or_else(
        || "running".to_string(),
        |s| format!("{s:?}").to_lowercase(),
    );
    format!(
        "{}  {:<10} {:<8} {:<10} {}/{}  {} files  {} bytes{}\n",
        j.id,
        format!("{:?}", j.kind).to_lowercase(),
        status,
        j.duration_ms
            .map_or_else(String::new, |ms| format!("{ms} ms")),
        j.user,
        j.device_name,
        j.files,
        j.bytes,
        // Device-written text: control characters shown escaped, so a job
        // cannot rewrite the operator's terminal (stored ones may predate
        // the escaping on input).
        j.error.as_deref().map_or_else(String::new, |e| format!(
            "  error: {}",
            cairn_node::api::jobs::escape_control(e, false)
        )),
    )
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// `--help` documents every flag and argument of every subcommand.
    #[test]
    fn every_flag_is_documented() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() && path != " cairnd" {
                missing.push(format!("{path} (command)"));
            }
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() != "help" {
                    walk(sub, &path, missing);
                }
            }
        }
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cmd, "", &mut missing);
        assert!(missing.is_empty(), "undocumented: {missing:?}");
    }

    #[test]
    fn tls_settings_merge_key_by_key() {
        let node = |argv: &[&str]| {
            let mut all = vec!["cairnd", "serve"];
            all.extend_from_slice(argv);
            match Cli::parse_from(all).command {
                Some(Command::Serve { node, .. }) => node,
                _ => panic!("not serve"),
            }
        };
        let file = FileConfig {
            tls_key: Some("/f/key.pem".into()),
            ..FileConfig::default()
        };
        let files = tls_source(&node(&["--tls-cert", "/a/cert.pem"]), &file).expect("pair");
        assert_eq!(
            files,
            Some(TlsSource::Files {
                cert: "/a/cert.pem".into(),
                key: "/f/key.pem".into()
            })
        );
        assert!(tls_source(&node(&[]), &file).is_err(), "key without cert");
        assert!(tls_source(&node(&["--tls-self-signed", "--tls-cert", "/c"]), &file).is_err());
        assert_eq!(
            tls_source(&node(&["--tls-self-signed"]), &FileConfig::default()).expect("dev"),
            Some(TlsSource::SelfSigned)
        );
        assert_eq!(
            tls_source(&node(&[]), &FileConfig::default()).expect("off"),
            None
        );
    }

    #[test]
    fn flags_override_the_file() {
        let file = RaftSettings {
            snapshot_every: 7,
            heartbeat_ms: 50,
            ..RaftSettings::default()
        };
        let cli = Cli::parse_from(["cairnd", "--snapshot-every", "9"]);
        let merged = cli.raft.over(&file);
        assert_eq!(merged.snapshot_every, 9);
        assert_eq!(merged.heartbeat_ms, 50);
    }
}
