//! Snapshot selection: which snapshots `snapshots`, `ls`, `restore` and
//! `forget` consider (`--device`, `--item`, `--path`, `--tag`), and what a snapshot
//! argument names. `latest` is the newest snapshot *within* the filters,
//! and without `--device` the filters name this device ([`ThisDevice`]),
//! so in a vault several devices share `latest` is never another device's
//! data unless asked for (`--device NAME`, or `--all-devices`). An id or unique id
//! prefix names its snapshot whatever the filters.
//!
//! Pure: the sealed metadata of a snapshot (paths, tags) comes through a
//! function, so the rules are tested without a vault.

use crate::error::{Error, Result};
use crate::snapshot::{SnapshotMeta, SnapshotRecord};

/// Opens a snapshot's sealed metadata.
pub type MetaOf<'a> = dyn Fn(&SnapshotRecord) -> Result<SnapshotMeta> + 'a;

/// Which snapshots to consider; each non-empty list must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Device names (any of them); empty: see [`Filter::all_devices`].
    pub devices: Vec<String>,
    /// Protected item names (any of them).
    pub items: Vec<String>,
    /// Absolute paths the snapshot must all hold among its sources.
    pub paths: Vec<String>,
    /// Tag sets: the snapshot must carry every tag of at least one set
    /// (restic's `--tag a,b --tag c`: a and b, or c).
    pub tags: Vec<Vec<String>>,
    /// Without `devices`: every device rather than this one (only
    /// `latest` defaults to this device; listings show every device).
    pub all_devices: bool,
}

impl Filter {
    /// Whether `s` passes (`meta_of` opens its sealed metadata, asked only
    /// when `paths` or `tags` are given).
    pub fn keeps(&self, s: &SnapshotRecord, meta_of: &MetaOf<'_>) -> Result<bool> {
        if !self.devices.is_empty() && !self.devices.contains(&s.device) {
            return Ok(false);
        }
        if !self.items.is_empty() && !s.item.as_ref().is_some_and(|i| self.items.contains(i)) {
            return Ok(false);
        }
        if self.paths.is_empty() && self.tags.is_empty() {
            return Ok(true);
        }
        let meta = meta_of(s)?;
        let tagged = self.tags.is_empty()
            || self
                .tags
                .iter()
                .any(|set| set.iter().all(|t| meta.tags.contains(t)));
        Ok(tagged && self.paths.iter().all(|p| meta.paths.contains(p)))
    }

    /// The filter `latest` uses among `all`: without devices named (and
    /// not `all_devices`), `this` device's snapshots only.
    pub fn for_latest(&self, this: &ThisDevice<'_>, all: &[SnapshotRecord]) -> Filter {
        let mut f = self.clone();
        let applies = this.always || all.iter().any(|s| s.device == this.name);
        if f.devices.is_empty() && !f.all_devices && applies {
            f.devices.push(this.name.to_string());
        }
        f
    }
}

/// The device `latest` defaults to.
#[derive(Debug, Clone, Copy)]
pub struct ThisDevice<'a> {
    /// Its name: the logged-in device, or the host name.
    pub name: &'a str,
    /// Whether the default holds even when no snapshot records the name:
    /// in an account vault every snapshot records its device, so another
    /// device's newest is never `latest`; a local vault's snapshots record
    /// the host name unless `backup --device` said otherwise, and when none
    /// records this host, `latest` is the vault's newest.
    pub always: bool,
}

/// The snapshots of `all` (oldest first) that `filter` keeps, in order.
pub fn filter<'a>(
    all: &'a [SnapshotRecord],
    filter: &Filter,
    meta_of: &MetaOf<'_>,
) -> Result<Vec<&'a SnapshotRecord>> {
    let mut out = vec![];
    for s in all {
        if filter.keeps(s, meta_of)? {
            out.push(s);
        }
    }
    Ok(out)
}

/// The snapshot `spec` names among `all` (oldest first): `latest` is the
/// newest that [`Filter::for_latest`] keeps, anything else an id or a
/// unique id prefix.
pub fn resolve<'a>(
    all: &'a [SnapshotRecord],
    spec: &str,
    f: &Filter,
    this: &ThisDevice<'_>,
    meta_of: &MetaOf<'_>,
) -> Result<&'a SnapshotRecord> {
    if spec == "latest" {
        let within = f.for_latest(this, all);
        if let Some(s) = filter(all, &within, meta_of)?.pop() {
            return Ok(s);
        }
        if all.is_empty() {
            return Err(Error::NotFound("the vault has no snapshots yet".into()));
        }
        let mut devices: Vec<&str> = all.iter().map(|s| s.device.as_str()).collect();
        devices.sort_unstable();
        devices.dedup();
        return Err(Error::NotFound(format!(
            "no snapshot {} in this vault; its snapshots are of device(s) {}: choose with \
             --device NAME (or --all-devices), or name a snapshot id",
            describe(&within),
            devices.join(", ")
        )));
    }
    let spec = spec.to_ascii_lowercase();
    let mut matches = all.iter().filter(|s| s.id.to_hex().starts_with(&spec));
    match (matches.next(), matches.next()) {
        (Some(s), None) if !spec.is_empty() => Ok(s),
        (Some(_), Some(_)) => Err(Error::NotFound(format!(
            "snapshot id prefix {spec:?} is ambiguous"
        ))),
        _ => Err(Error::NotFound(format!(
            "no snapshot {spec:?} in this vault"
        ))),
    }
}

/// "of device a, item b, with paths /c" for an error message.
fn describe(f: &Filter) -> String {
    let mut parts = vec![];
    if !f.devices.is_empty() {
        parts.push(format!("of device {}", f.devices.join(" or ")));
    }
    if !f.items.is_empty() {
        parts.push(format!("of item {}", f.items.join(" or ")));
    }
    if !f.paths.is_empty() {
        parts.push(format!("with paths {}", f.paths.join(" ")));
    }
    if !f.tags.is_empty() {
        let sets: Vec<String> = f.tags.iter().map(|t| t.join(",")).collect();
        parts.push(format!("tagged {}", sets.join(" or ")));
    }
    if parts.is_empty() {
        "at all".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::memory::testing::record;

    /// Metadata by record: odd ones hold /home, even ones /etc and /home;
    /// 3 and 4 are tagged `daily`, 4 also `keep`.
    fn paths_of(s: &SnapshotRecord) -> Result<SnapshotMeta> {
        let n = s.meta[0];
        Ok(SnapshotMeta {
            paths: if n % 2 == 1 {
                vec!["/home".into()]
            } else {
                vec!["/etc".into(), "/home".into()]
            },
            tags: match n {
                3 => vec!["daily".into()],
                4 => vec!["daily".into(), "keep".into()],
                _ => vec![],
            },
            ..SnapshotMeta::default()
        })
    }

    fn all() -> Vec<SnapshotRecord> {
        vec![
            record("laptop", None, 1),
            record("desktop", Some("docs"), 2),
            record("laptop", Some("docs"), 3),
            record("laptop", None, 4),
            record("desktop", None, 5),
        ]
    }

    fn n(s: &SnapshotRecord) -> u8 {
        s.meta[0]
    }

    #[test]
    fn latest_is_the_newest_of_this_device_within_the_filters() {
        let all = all();
        let none = Filter::default();
        let latest = |f: &Filter, me: &str| {
            let me = ThisDevice {
                name: me,
                always: true,
            };
            resolve(&all, "latest", f, &me, &paths_of).map(n)
        };
        assert_eq!(latest(&none, "laptop").unwrap(), 4);
        assert_eq!(latest(&none, "desktop").unwrap(), 5);
        let docs = Filter {
            items: vec!["docs".into()],
            ..Filter::default()
        };
        assert_eq!(latest(&docs, "laptop").unwrap(), 3);
        let etc = Filter {
            paths: vec!["/etc".into()],
            ..Filter::default()
        };
        assert_eq!(latest(&etc, "laptop").unwrap(), 4);
        let other = Filter {
            devices: vec!["desktop".into()],
            ..docs.clone()
        };
        assert_eq!(latest(&other, "laptop").unwrap(), 2);
        let any = Filter {
            all_devices: true,
            ..Filter::default()
        };
        assert_eq!(latest(&any, "phone").unwrap(), 5);
        // Another device's data is never `latest` by default.
        let err = latest(&none, "phone").unwrap_err().to_string();
        assert!(
            err.contains("of device phone") && err.contains("desktop, laptop"),
            "{err}"
        );
        // A local vault whose snapshots never record this host: the newest.
        let host = ThisDevice {
            name: "phone",
            always: false,
        };
        let got = resolve(&all, "latest", &none, &host, &paths_of).unwrap();
        assert_eq!(n(got), 5);
        let me = ThisDevice {
            name: "x",
            always: true,
        };
        assert!(resolve(&[], "latest", &none, &me, &paths_of)
            .unwrap_err()
            .to_string()
            .contains("no snapshots yet"));
    }

    #[test]
    fn ids_name_their_snapshot_whatever_the_filters() {
        let all = all();
        let other = Filter {
            devices: vec!["nobody".into()],
            ..Filter::default()
        };
        let id = all[1].id.to_hex();
        let me = ThisDevice {
            name: "laptop",
            always: true,
        };
        let got = resolve(&all, &id[..12], &other, &me, &paths_of).unwrap();
        assert_eq!(n(got), 2);
        assert!(resolve(&all, "", &other, &me, &paths_of).is_err());
        assert!(resolve(&all, "zz", &other, &me, &paths_of).is_err());
    }

    #[test]
    fn a_listing_filters_by_every_given_list_and_shows_every_device_by_default() {
        let all = all();
        let got = |f: &Filter| -> Vec<u8> {
            filter(&all, f, &paths_of)
                .unwrap()
                .into_iter()
                .map(n)
                .collect()
        };
        assert_eq!(got(&Filter::default()), [1, 2, 3, 4, 5]);
        let f = Filter {
            devices: vec!["laptop".into()],
            paths: vec!["/home".into()],
            ..Filter::default()
        };
        assert_eq!(got(&f), [1, 3, 4]);
        let f = Filter {
            items: vec!["docs".into()],
            paths: vec!["/etc".into(), "/home".into()],
            ..Filter::default()
        };
        assert_eq!(got(&f), [2]);
        let tags = |sets: &[&[&str]]| Filter {
            tags: sets
                .iter()
                .map(|s| s.iter().map(|t| t.to_string()).collect())
                .collect(),
            ..Filter::default()
        };
        assert_eq!(got(&tags(&[&["daily"]])), [3, 4]);
        assert_eq!(got(&tags(&[&["daily", "keep"]])), [4]);
        assert_eq!(got(&tags(&[&["keep"], &["nope"]])), [4]);
        assert_eq!(got(&tags(&[&["nope"]])), Vec::<u8>::new());
        // Metadata is only opened when asked for.
        let sealed = |_: &SnapshotRecord| Err(Error::Integrity("sealed".into()));
        assert!(filter(&all, &Filter::default(), &sealed).is_ok());
    }
}
