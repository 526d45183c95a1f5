//! Settings of the command line: flags (and their environment variables)
//! over the `--config` file, merged key by key, so a flag changes one
//! setting of a file for a run. Missing required settings are usage errors
//! (exit code 2).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;

use cairn_consensus::event::Role;
use cairn_node::client::CliError;
use cairn_node::config::StorageSettings;
use cairn_node::config::{FileConfig, HttpSettings, RaftSettings};
use cairn_node::tls::{TlsSettings, TlsSource};
use clap::Args;

// The storage role; the same keys exist in the `[storage]` table of the config file.
#[derive(Args)]
#[command(next_help_heading = "Storage (also the [storage] table of the config file)")]
pub struct StorageArgs {
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
    /// Running jobs silent this long (no heartbeat) are ended `abandoned` by the leader, ms; at least 10000 [default: 900000].
    #[arg(long, value_name = "MS")]
    job_silence_ms: Option<u64>,
    /// Keep this storage node's chunks in an object store, s3://BUCKET/PREFIX (credentials from AWS_*) or sftp://USER@HOST[:PORT]/PATH (key from CAIRN_SFTP_KEY); metadata stays in DATA_DIR [default: DATA_DIR/chunks].
    #[arg(long, value_name = "URL")]
    chunk_store: Option<String>,
}

impl StorageArgs {
    /// `file` with every flag that was given applied on top.
    pub fn over(&self, file: &StorageSettings) -> StorageSettings {
        StorageSettings {
            write_quorum: self.write_quorum.unwrap_or(file.write_quorum),
            repair_interval_ms: self.repair_interval_ms.unwrap_or(file.repair_interval_ms),
            gc_interval_ms: self.gc_interval_ms.unwrap_or(file.gc_interval_ms),
            usage_cache_ms: file.usage_cache_ms,
            scrub_interval_ms: self.scrub_interval_ms.unwrap_or(file.scrub_interval_ms),
            scrub_bytes_per_sec: file.scrub_bytes_per_sec,
            job_silence_ms: self.job_silence_ms.unwrap_or(file.job_silence_ms),
            chunk_store: self
                .chunk_store
                .clone()
                .or_else(|| file.chunk_store.clone()),
        }
    }
}

// Limits of the HTTP server; the same keys exist in the `[http]` table of the config file.
#[derive(Args)]
#[command(next_help_heading = "HTTP limits (also the [http] table of the config file)")]
pub struct HttpArgs {
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
    pub fn over(&self, file: &HttpSettings) -> HttpSettings {
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
pub struct NodeArgs {
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
    /// Roles of a new node, comma-separated: auth, storage, cluster, downloads [default: all]; kept in node.json.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    roles: Option<Vec<String>>,
    /// Storage labels of a new node's chunk store, comma-separated (e.g. ssd,eu-west); tiers name the labels they need.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    storage_labels: Option<Vec<String>>,
    /// Replace the roles and storage labels kept in node.json with --roles/--storage-labels (see OPERATIONS.md).
    #[arg(long)]
    change_roles: bool,
}

// Raft tuning; the same keys exist in the `[raft]` table of the config file.
#[derive(Args)]
#[command(next_help_heading = "Raft tuning (also the [raft] table of the config file)")]
pub struct RaftArgs {
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
    pub fn over(&self, file: &RaftSettings) -> RaftSettings {
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
pub struct ClientArgs {
    /// URL of any node of the cluster.
    #[arg(long, global = true, env = "CAIRN_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// File holding the admin token (else CAIRN_ADMIN_TOKEN).
    #[arg(
        long,
        global = true,
        env = "CAIRN_ADMIN_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub admin_token_file: Option<PathBuf>,
    /// Extra trusted root certificate(s), PEM, e.g. a node's self-signed tls/cert.pem.
    #[arg(long, global = true, env = "CAIRN_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
}

/// A setting that must come from a flag or the config file.
pub fn required<T>(value: Option<T>, what: &str) -> Result<T, CliError> {
    value.ok_or_else(|| {
        CliError::Usage(format!(
            "missing {what}: pass the flag or set it in the --config file"
        ))
    })
}

/// The node settings of `init`/`serve`, flags over the file.
pub struct NodeSettings {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Raft id of a new node.
    pub node_id: Option<u64>,
    /// Listen address of a new node.
    pub listen: Option<SocketAddr>,
    /// Advertised URL of a new node.
    pub advertise: Option<String>,
    /// Plain HTTP on a non-loopback address.
    pub insecure_http: bool,
    /// The cluster secret to install.
    pub cluster_secret_file: Option<PathBuf>,
    /// What the node serves HTTPS with, and the extra roots it trusts.
    pub tls: TlsSettings,
    /// Roles asked for (flag over file); `None`: keep node.json's, or all.
    pub roles: Option<BTreeSet<Role>>,
    /// Storage labels asked for (flag over file).
    pub storage_labels: Option<BTreeSet<String>>,
    /// `--change-roles`: rewrite node.json's roles and labels.
    pub change_roles: bool,
}

impl NodeSettings {
    /// `args` over `file`.
    pub fn merge(args: NodeArgs, file: &FileConfig) -> Result<Self, CliError> {
        if args.node_id.or(file.node_id) == Some(0) {
            // 0 means "no leader" in cairn_raft_leader_id and is no valid Raft id here.
            return Err(CliError::Usage("node ids are positive integers".into()));
        }
        let serve = tls_source(&args, file)?;
        let roles = match args.roles.or_else(|| file.roles.clone()) {
            Some(names) => {
                Some(cairn_node::roles::parse(&names).map_err(|e| CliError::Usage(e.to_string()))?)
            }
            None => None,
        };
        let storage_labels = args
            .storage_labels
            .or_else(|| file.storage_labels.clone())
            .map(|l| cairn_node::roles::parse_labels(&l));
        Ok(Self {
            roles,
            storage_labels,
            change_roles: args.change_roles,
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

#[cfg(test)]
mod tests {
    use super::super::tests::serve_node_args as node;
    use super::*;

    #[test]
    fn tls_settings_merge_key_by_key() {
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
        assert!(
            matches!(tls_source(&node(&[]), &file), Err(CliError::Usage(_))),
            "key without cert"
        );
        assert!(matches!(
            tls_source(&node(&["--tls-self-signed", "--tls-cert", "/c"]), &file),
            Err(CliError::Usage(_))
        ));
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
    fn a_node_id_of_zero_and_a_missing_data_dir_are_usage_errors() {
        let file = FileConfig::default();
        assert!(matches!(
            NodeSettings::merge(node(&["--data-dir", "/d", "--node-id", "0"]), &file),
            Err(CliError::Usage(_))
        ));
        assert!(matches!(
            NodeSettings::merge(node(&[]), &file),
            Err(CliError::Usage(_))
        ));
        let merged = NodeSettings::merge(
            node(&["--node-id", "2"]),
            &FileConfig {
                data_dir: Some("/f".into()),
                node_id: Some(1),
                ..FileConfig::default()
            },
        )
        .expect("merged");
        assert_eq!((merged.data_dir, merged.node_id), ("/f".into(), Some(2)));
    }
}
