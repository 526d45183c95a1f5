//! `cairn tag`: which snapshots to re-tag, and what is said about them;
//! the re-tagging itself is [`cairn_client::tag`].

use std::path::Path;

use anyhow::Result;
use cairn_client::tag::{self, Retagged, TagEdit};
use cairn_client::Error;
use cairn_proto::SnapshotId;
use serde::Serialize;

use super::args::TagArgs;
use super::commands::find_snapshot;
use super::open::open;
use super::output::print_json;

/// `cairn tag`'s report: the snapshots re-tagged (with their new ids) and
/// those whose tags already were as asked.
#[derive(Serialize)]
struct TagReport {
    retagged: Vec<Retagged>,
    unchanged: Vec<SnapshotId>,
}

/// `cairn tag`.
pub fn tag(config: Option<&Path>, args: TagArgs, json: bool) -> Result<u8> {
    // `--set ''` arrives as one empty tag: no tags at all.
    let set = args
        .set
        .map(|s| s.into_iter().filter(|t| !t.is_empty()).collect());
    let edit = TagEdit {
        set,
        add: args.add,
        remove: args.remove,
    };
    edit.validate()?;
    let opened = open(config, &args.vault.vault)?;
    if opened.session.is_some() {
        return Err(Error::Invalid(
            "cairn tag works on local vaults: a cluster records each snapshot as made by the \
             device that commits it, so a re-tagged copy would change its device"
                .into(),
        )
        .into());
    }
    let records = if args.snapshots.is_empty() {
        opened.vault.snapshots_in(&args.select.filter())?
    } else {
        args.snapshots
            .iter()
            .map(|spec| find_snapshot(&opened, &args.select, spec))
            .collect::<Result<Vec<_>>>()?
    };
    let mut report = TagReport {
        retagged: vec![],
        unchanged: vec![],
    };
    for r in &records {
        match tag::retag(&opened.vault, r, &edit)? {
            Some(done) => report.retagged.push(done),
            None => report.unchanged.push(r.id),
        }
    }
    if json {
        print_json(&report)?;
        return Ok(0);
    }
    for r in &report.retagged {
        let tags = if r.tags.is_empty() {
            "no tags".to_string()
        } else {
            format!("tags {}", r.tags.join(", "))
        };
        println!(
            "snapshot {} is now {}: {tags}",
            &r.old.to_hex()[..8],
            &r.id.to_hex()[..8]
        );
    }
    if !report.unchanged.is_empty() {
        println!("{} snapshot(s) already tagged so", report.unchanged.len());
    }
    Ok(0)
}
