//! `cairn tag`: add, remove or replace the tags of snapshots. Tags travel
//! in a snapshot's sealed metadata, which is bound to the snapshot's id, so
//! re-tagging writes a new record (a new id) with the same root, time,
//! device and item, then forgets the old one, as restic does; the data is
//! untouched. Local vaults only: an account vault's server records each
//! snapshot as committed by the device that commits it (under a backup
//! job), so a re-tagged copy would change its device.

use cairn_proto::SnapshotId;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::snapshot::SnapshotRecord;
use crate::vault::Vault;

/// What to do to the tags: `set` replaces them all (then `add` and
/// `remove` apply to the new set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagEdit {
    /// The new tags, replacing the old ones.
    pub set: Option<Vec<String>>,
    /// Tags to add (once each).
    pub add: Vec<String>,
    /// Tags to remove.
    pub remove: Vec<String>,
}

impl TagEdit {
    /// Refuses an edit that does nothing, and empty tags or ones with a
    /// comma (`--tag a,b` selects by both, so a tag cannot hold one).
    pub fn validate(&self) -> Result<()> {
        if self.set.is_none() && self.add.is_empty() && self.remove.is_empty() {
            return Err(Error::Invalid(
                "nothing to do: give --add, --remove or --set".into(),
            ));
        }
        let all = self
            .set
            .iter()
            .flatten()
            .chain(&self.add)
            .chain(&self.remove);
        for t in all {
            if t.is_empty() || t.contains(',') {
                return Err(Error::Invalid(format!(
                    "tag {t:?}: a tag is a non-empty word without ','"
                )));
            }
        }
        Ok(())
    }

    /// The tags `tags` become: set, then added (in order, once), then
    /// removed.
    pub fn apply(&self, tags: &[String]) -> Vec<String> {
        let mut out: Vec<String> = vec![];
        let base = self.set.as_deref().unwrap_or(tags);
        for t in base.iter().chain(&self.add) {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        out.retain(|t| !self.remove.contains(t));
        out
    }
}

/// One snapshot re-tagged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Retagged {
    /// The snapshot before (now forgotten).
    pub old: SnapshotId,
    /// The same snapshot with its new tags.
    pub id: SnapshotId,
    /// Its tags now.
    pub tags: Vec<String>,
}

/// Applies `edit` to `record`: `None` when its tags stay as they are,
/// else the new record is committed and the old one forgotten (in that
/// order: a failure between the two leaves both, never neither).
pub fn retag(vault: &Vault, record: &SnapshotRecord, edit: &TagEdit) -> Result<Option<Retagged>> {
    let meta = record.verified_meta(vault.keys())?;
    let tags = edit.apply(&meta.tags);
    if tags == meta.tags {
        return Ok(None);
    }
    let id = SnapshotId::random();
    let vault_id = vault.config().vault_id;
    let sealed = crate::snapshot::SnapshotMeta {
        tags: tags.clone(),
        ..meta
    }
    .seal(vault.keys(), vault_id, id)?;
    let new = SnapshotRecord {
        id,
        meta: sealed,
        ..record.clone()
    };
    vault.commit_snapshot(&new, None)?;
    vault.forget_snapshot(record.id)?;
    Ok(Some(Retagged {
        old: record.id,
        id,
        tags,
    }))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::vault::memory::testing::{backup_dir, small_vault};

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn set_then_add_then_remove_each_tag_once() {
        let edit = |set: Option<&[&str]>, add: &[&str], remove: &[&str]| TagEdit {
            set: set.map(strings),
            add: strings(add),
            remove: strings(remove),
        };
        let old = strings(&["a", "b"]);
        assert_eq!(edit(None, &["c", "a"], &[]).apply(&old), ["a", "b", "c"]);
        assert_eq!(edit(None, &[], &["a", "x"]).apply(&old), ["b"]);
        assert_eq!(edit(Some(&["x"]), &["y"], &[]).apply(&old), ["x", "y"]);
        assert_eq!(edit(Some(&[]), &[], &[]).apply(&old), Vec::<String>::new());
        assert_eq!(edit(None, &["d"], &["d"]).apply(&old), ["a", "b"]);
        assert!(TagEdit::default().validate().is_err());
        assert!(edit(None, &["a,b"], &[]).validate().is_err());
        assert!(edit(None, &[""], &[]).validate().is_err());
        assert!(edit(Some(&[]), &[], &[]).validate().is_ok());
    }

    #[test]
    fn a_retagged_snapshot_keeps_its_data_and_the_old_record_goes() {
        let vault = small_vault();
        let src = tempfile::tempdir().unwrap();
        fs::write(src.path().join("a"), b"a").unwrap();
        let report = backup_dir(&vault, src.path());
        let old = report.snapshot;
        let edit = TagEdit {
            add: strings(&["keep"]),
            ..TagEdit::default()
        };
        let done = retag(&vault, &old, &edit).unwrap().unwrap();
        assert_eq!((done.old, done.tags.clone()), (old.id, strings(&["keep"])));
        let all = vault.snapshots().unwrap();
        assert_eq!(all.len(), 1);
        let new = &all[0];
        assert_eq!(new.id, done.id);
        assert_eq!(
            (new.root, &new.time, &new.device),
            (old.root, &old.time, &old.device)
        );
        let meta = new.verified_meta(vault.keys()).unwrap();
        assert_eq!(meta.tags, ["keep"]);
        assert_eq!(meta.paths, old.open_meta(vault.keys()).unwrap().paths);
        // Already tagged: nothing is written.
        assert_eq!(retag(&vault, new, &edit).unwrap(), None);
        assert_eq!(vault.snapshots().unwrap()[0].id, done.id);
    }
}
