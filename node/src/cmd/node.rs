//! The node commands: `cairnd` (the dev cluster), `cairnd init` and
//! `cairnd serve`. Each merges its settings, calls `cairn_node::server`
//! and prints what happened (text, or `--json`: one line per event).

use std::net::SocketAddr;
use std::path::PathBuf;

use cairn_node::config::{DataDir, FileConfig, NodeIdentity};
use cairn_node::server::{self, Listening, ServeOptions, ServeRequest};
use serde::Serialize;

use super::output::output;
use super::settings::{required, HttpArgs, NodeArgs, NodeSettings, RaftArgs, StorageArgs};
use super::Failure;

/// The flags of `cairnd serve`.
pub struct ServeArgs {
    /// Where the node lives.
    pub node: NodeArgs,
    /// `--join URL`.
    pub join: Option<String>,
    /// Raft tuning.
    pub raft: RaftArgs,
    /// The storage role.
    pub storage: StorageArgs,
    /// HTTP limits.
    pub http: HttpArgs,
    /// `--dev-license`.
    pub dev_license: bool,
}

/// The line a server prints once it listens (`--json`: one JSON line).
#[derive(Serialize)]
struct ListeningEvent<'a> {
    event: &'static str,
    #[serde(flatten)]
    listening: &'a Listening,
}

/// Prints where the node listens; the dev cluster says more.
fn on_listening(json: bool, dev: bool) -> Box<dyn FnOnce(&Listening) + Send> {
    Box::new(move |l: &Listening| {
        if json {
            let event = ListeningEvent {
                event: "listening",
                listening: l,
            };
            match serde_json::to_string(&event) {
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
    })
}

/// `cairnd` without a subcommand: the one-node dev cluster.
pub async fn dev(
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    raft: &RaftArgs,
    file: &FileConfig,
    json: bool,
) -> Result<(), Failure> {
    let data_dir = data_dir
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(server::DEV_DATA_DIR));
    let listen = listen.or(file.listen).unwrap_or(server::DEV_LISTEN);
    let options = ServeOptions {
        join: None,
        on_listening: on_listening(json, true),
        data_dir: DataDir::new(data_dir),
        storage: file.storage.clone(),
        http: file.http,
        dev_license: false,
        authority: None,
        downloads: file.downloads.clone(),
        branding: file.branding.clone(),
    };
    server::dev(
        listen,
        &raft.over(&file.raft),
        options,
        server::shutdown_signal(),
    )
    .await?;
    Ok(())
}

/// What `init` prints.
#[derive(Serialize)]
struct Initialised {
    node_id: u64,
    advertise: String,
    data_dir: PathBuf,
    admin_token: PathBuf,
    /// Joining nodes are given a copy (`--cluster-secret-file`).
    cluster_secret: PathBuf,
}

/// `cairnd init`.
pub async fn init(
    node: NodeArgs,
    raft: &RaftArgs,
    file: &FileConfig,
    json: bool,
) -> Result<(), Failure> {
    let node = NodeSettings::merge(node, file)?;
    let node_id = required(node.node_id, "--node-id")?;
    let listen = required(node.listen, "--listen")?;
    server::check_listen(listen, node.tls.enabled(), node.insecure_http)?;
    let dir = DataDir::new(node.data_dir);
    let mut identity = NodeIdentity::new(node_id, listen, node.advertise, node.tls.enabled());
    if let Some(roles) = node.roles {
        identity.roles = roles;
    }
    identity.storage_labels = node.storage_labels.unwrap_or_default();
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

/// `cairnd serve [--join URL]`.
pub async fn serve(args: ServeArgs, file: &FileConfig, json: bool) -> Result<(), Failure> {
    let node = NodeSettings::merge(args.node, file)?;
    let join = args.join.or_else(|| file.join.clone());
    let dir = DataDir::new(node.data_dir);
    let identity = server::serve_identity(
        &dir,
        ServeRequest {
            node_id: node.node_id,
            listen: node.listen,
            advertise: node.advertise,
            tls: node.tls.enabled(),
            joining: join.is_some(),
            cluster_secret: node.cluster_secret_file,
            roles: node.roles,
            storage_labels: node.storage_labels,
            change_roles: node.change_roles,
        },
    )?;
    server::check_listen(identity.listen, node.tls.enabled(), node.insecure_http)?;
    server::check_advertise(&identity, &node.tls)?;
    let options = ServeOptions {
        join,
        on_listening: on_listening(json, false),
        data_dir: dir.clone(),
        storage: args.storage.over(&file.storage),
        http: args.http.over(&file.http),
        dev_license: args.dev_license,
        authority: None,
        downloads: file.downloads.clone(),
        branding: file.branding.clone(),
    };
    server::serve(
        &dir,
        identity,
        &args.raft.over(&file.raft),
        &node.tls,
        options,
        server::shutdown_signal(),
    )
    .await?;
    Ok(())
}
