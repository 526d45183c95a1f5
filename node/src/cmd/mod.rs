//! The command line of `cairnd`: clap types and dispatch.
//!
//! Settings come from flags, their environment variables and the TOML file
//! given with `--config`, in that order of precedence; the merge happens
//! in [`settings`], so the library only ever sees complete settings. What
//! a command does is the library's (`cairn_node::server` for the node's
//! lifecycle, `cairn_node::client` for operator commands); this module
//! parses, dispatches and renders ([`node`], [`operator`], [`output`]).

mod console;
mod license;
mod node;
mod operator;
mod output;
mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;

use cairn_node::client::CliError;
use cairn_node::config::FileConfig;
use cairn_node::error::NodeError;
use clap::{Parser, Subcommand};

use settings::{ClientArgs, HttpArgs, NodeArgs, RaftArgs, StorageArgs};

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
pub struct Cli {
    /// TOML configuration file; flags given on the command line override its values.
    #[arg(long, global = true, env = "CAIRND_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print JSON instead of text: one document per command (one line per event for servers).
    #[arg(long, global = true)]
    json: bool,
    /// Log line format on stderr: `text` (colored only on a terminal) or `json` (one object
    /// per line, for log shippers). Verbosity: CAIRN_LOG (e.g. `debug`, `info,openraft=warn`).
    #[arg(long, global = true, env = "CAIRN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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

/// How `cairnd` writes its log lines.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; ANSI colors only when stderr is a terminal.
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
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
        /// Dev and test clusters only: while no license is set, count the cluster as licensed
        /// (without it, a cluster without a license is read-only).
        #[arg(
            long,
            env = "CAIRND_DEV_LICENSE",
            value_parser = clap::builder::FalseyValueParser::new()
        )]
        dev_license: bool,
    },
    /// Inspect and change the cluster's membership.
    Cluster {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: operator::ClusterCommand,
    },
    /// Administer accounts and tiers.
    Admin {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: operator::AdminCommand,
    },
    /// The license authority: a separate service leasing serials to clusters.
    LicenseAuthority {
        #[command(subcommand)]
        command: license::AuthorityCommand,
    },
}

/// Why `cairnd` failed; decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Starting or running the node failed (exit code 1).
    #[error(transparent)]
    Node(#[from] NodeError),
    /// An operator command failed (its own exit code).
    #[error(transparent)]
    Cli(#[from] CliError),
}

impl Failure {
    /// The process exit code (DESIGN §9): 3 refused credentials, 2 an
    /// incomplete command line, 4 `cluster status` found no leader, 1
    /// anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Node(_) => 1,
            Failure::Cli(CliError::Auth(_)) => 3,
            Failure::Cli(CliError::Usage(_)) => 2,
            Failure::Cli(CliError::Other(_)) => 1,
            Failure::Cli(CliError::Unhealthy(_)) => 4,
        }
    }
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    let file = match &cli.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let json = cli.json;
    match cli.command {
        None => node::dev(cli.data_dir, cli.listen, &cli.raft, &file, json).await,
        Some(Command::Init { node, raft }) => node::init(node, &raft, &file, json).await,
        Some(Command::Serve {
            node,
            join,
            raft,
            storage,
            http,
            dev_license,
        }) => {
            let args = node::ServeArgs {
                node,
                join,
                raft,
                storage,
                http,
                dev_license,
            };
            node::serve(args, &file, json).await
        }
        Some(Command::Cluster { client, command }) => {
            Ok(operator::cluster(client, command, &file, json).await?)
        }
        Some(Command::Admin { client, command }) => {
            Ok(operator::admin(client, command, &file, json).await?)
        }
        Some(Command::LicenseAuthority { command }) => license::authority(command, json).await,
    }
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

    /// The node's flags as `serve` parses them.
    pub(super) fn serve_node_args(argv: &[&str]) -> NodeArgs {
        let mut all = vec!["cairnd", "serve"];
        all.extend_from_slice(argv);
        match Cli::parse_from(all).command {
            Some(Command::Serve { node, .. }) => node,
            _ => panic!("not serve"),
        }
    }

    #[test]
    fn dev_license_takes_the_environment_as_a_switch() {
        let parse = |argv: &[&str]| match Cli::parse_from(argv).command {
            Some(Command::Serve { dev_license, .. }) => dev_license,
            _ => panic!("not serve"),
        };
        assert!(parse(&["cairnd", "serve", "--dev-license"]));
        assert!(!parse(&["cairnd", "serve"]));
    }

    #[test]
    fn exit_codes() {
        let code = |e: CliError| Failure::Cli(e).exit_code();
        assert_eq!(code(CliError::Usage("x".into())), 2);
        assert_eq!(code(CliError::Auth("x".into())), 3);
        assert_eq!(code(CliError::Other("x".into())), 1);
        assert_eq!(code(CliError::Unhealthy("no leader".into())), 4);
        let node = Failure::Node(NodeError::Config("x".into()));
        assert_eq!(node.exit_code(), 1);
    }

    #[test]
    fn flags_override_the_file() {
        let file = cairn_node::config::RaftSettings {
            snapshot_every: 7,
            heartbeat_ms: 50,
            ..Default::default()
        };
        let cli = Cli::parse_from(["cairnd", "--snapshot-every", "9"]);
        let merged = cli.raft.over(&file);
        assert_eq!(merged.snapshot_every, 9);
        assert_eq!(merged.heartbeat_ms, 50);
    }
}
