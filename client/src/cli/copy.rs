//! `cairn copy`: which snapshots of the source to copy, the job an account
//! target records, and what is said; the copying itself is
//! [`cairn_client::copy`].

use std::path::Path;

use anyhow::Result;
use cairn_client::copy::{self, CopyOptions};
use cairn_proto::api::JobKind;

use super::args::CopyArgs;
use super::commands::{find_snapshot, job_log};
use super::open::{open, open_with, Secret};
use super::output::print_json;
use super::password;
use super::progress::bytes;

/// The source's passwords: `CAIRN_FROM_PASSWORD` (or its `_FILE`,
/// `_COMMAND`) or a prompt, whether it is a local vault's or the account's.
const SOURCE: Secret = Secret {
    local: || password::read("CAIRN_FROM_PASSWORD", "Source vault password: ", false),
    account: || password::read("CAIRN_FROM_PASSWORD", "Source account password: ", false),
};

/// `cairn copy`.
pub fn copy(config: Option<&Path>, args: CopyArgs, json: bool) -> Result<u8> {
    let from = open_with(config, &args.from, &SOURCE)?;
    let records = if args.snapshots.is_empty() {
        from.vault.snapshots_in(&args.select.filter())?
    } else {
        args.snapshots
            .iter()
            .map(|spec| find_snapshot(&from, &args.select, spec))
            .collect::<Result<Vec<_>>>()?
    };
    let to = open(config, &args.vault.vault)?;
    let log = job_log(&to);
    let job = log.start(JobKind::Backup)?;
    let opts = CopyOptions {
        device: to.session.as_ref().map(|s| s.profile().device_name.clone()),
        job: job.id(),
    };
    let result = copy::copy(&from.vault, &to.vault, &records, &opts);
    job.finish(&result);
    let report = result?;
    if json {
        print_json(&report)?;
        return Ok(0);
    }
    for c in &report.copied {
        println!(
            "snapshot {} copied as {}",
            &c.from.to_hex()[..8],
            &c.id.to_hex()[..8]
        );
    }
    if !report.already_there.is_empty() {
        println!(
            "{} snapshot(s) already in the target",
            report.already_there.len()
        );
    }
    println!(
        "{} chunk(s) stored ({} of data, {} stored), {} already there",
        report.chunks_stored,
        bytes(report.bytes_stored),
        bytes(report.sealed_bytes_stored),
        report.chunks_reused
    );
    Ok(0)
}
