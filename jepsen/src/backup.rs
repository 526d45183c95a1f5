//! The backup workload, with the real `cairn` client: one device backs up
//! its protected item, a directory rewritten with each generation of a
//! generated tree (each generation shares about half its files with the
//! one before, so snapshots reuse each other's chunks, and names itself in
//! a `generation` file), restores a recent
//! snapshot now and then and compares it byte for byte, and every few
//! backups applies the vault's retention (keep the last 3: forget, then
//! prune) while the next backups run. After the faults are healed,
//! [`verify`] lists the vault's snapshots, restores every one, and runs
//! `cairn check --read-data`. Everything is recorded as operations for
//! [`crate::check::backups`].
//!
//! Tree contents derive from the seed and the generation alone
//! ([`tree_files`]), so nothing is kept to compare a restore with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::error::JepsenError;
use crate::history::{Call, Outcome};
use crate::workload::{ClientCtx, Recorder};

/// The account the backup device logs in to.
const USER: &str = "jbackup";
/// Its password (the client derives its keys from it).
const PASSWORD: &str = "jepsen backup password";
/// The vault's name.
const VAULT: &str = "main";
/// The protected item (the tree directory).
const ITEM: &str = "jepsen";
/// Files in every generated tree.
const FILES: usize = 6;
/// How long one `cairn` command may take before it counts as unknown.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// The device: its `cairn` binary and home (config, cache, trees), and
/// the run's seed (the trees' contents).
#[derive(Debug, Clone)]
pub struct Device {
    cairn: PathBuf,
    home: PathBuf,
    seed: u64,
}

/// How a `cairn` command ended.
#[derive(Debug)]
enum Ran {
    /// Exit 0, with its standard output.
    Ok(String),
    /// A non-zero exit, with its standard error.
    Failed(String),
    /// It did not finish in time (killed) or could not be waited for.
    TimedOut,
}

impl Device {
    /// A device under `home` running `cairn`, its trees from `seed`.
    pub fn new(cairn: &Path, home: &Path, seed: u64) -> Device {
        Device {
            cairn: cairn.to_owned(),
            home: home.to_owned(),
            seed,
        }
    }

    /// The protected directory, rewritten with each generation.
    fn tree_dir(&self) -> PathBuf {
        self.home.join("tree")
    }

    /// `cairn --json ARGS` as this device, up to [`COMMAND_TIMEOUT`].
    fn cairn(&self, args: &[&str]) -> Ran {
        let spawned = Command::new(&self.cairn)
            .arg("--json")
            .args(args)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .env("XDG_CACHE_HOME", self.home.join("cache"))
            .env("HOME", &self.home)
            .env("CAIRN_PASSWORD", PASSWORD)
            .env_remove("CAIRN_CONFIG")
            .env_remove("CAIRN_PASSWORD_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let Ok(mut child) = spawned else {
            return Ran::Failed("cairn could not be started".into());
        };
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Ran::TimedOut;
                }
            }
        }
        match child.wait_with_output() {
            Ok(out) if out.status.success() => {
                Ran::Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            }
            Ok(out) => Ran::Failed(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(_) => Ran::TimedOut,
        }
    }

    /// Setup through node `server`: the account (`cairnd admin user
    /// create`, with the node's admin token file), the login, the vault of
    /// `tier`, and its retention (keep the last 3).
    pub fn setup(
        &self,
        cairnd: &Path,
        server: &str,
        admin_token_file: &Path,
        tier: &str,
    ) -> Result<(), JepsenError> {
        std::fs::create_dir_all(&self.home)
            .map_err(JepsenError::io(format!("creating {}", self.home.display())))?;
        let tree = self.tree_dir();
        std::fs::create_dir_all(&tree)
            .map_err(JepsenError::io(format!("creating {}", tree.display())))?;
        let tree = tree.to_string_lossy().into_owned();
        let pw = self.home.join("password");
        std::fs::write(&pw, PASSWORD).map_err(JepsenError::io("writing the password file"))?;
        let out = Command::new(cairnd)
            .args(["admin", "user", "create", USER, "--password-file"])
            .arg(&pw)
            .args(["--server", server, "--admin-token-file"])
            .arg(admin_token_file)
            .env_remove("CAIRN_ADMIN_TOKEN")
            .output()
            .map_err(JepsenError::io("running cairnd admin user create"))?;
        if !out.status.success() {
            return Err(JepsenError::Command {
                command: "cairnd admin user create".into(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        let steps: [&[&str]; 4] = [
            &[
                "login", "--server", server, "--user", USER, "--device", "jepsen",
            ],
            &["vault", "request", "--tier", tier, "--name", VAULT],
            &["item", "set", ITEM, "--vault", VAULT, &tree],
            &["retention", "set", "--vault", VAULT, "--keep-last", "3"],
        ];
        for args in steps {
            if let Ran::Failed(e) = self.cairn(args) {
                return Err(JepsenError::Command {
                    command: format!("cairn {}", args.join(" ")),
                    stderr: e,
                });
            }
        }
        Ok(())
    }
}

/// The files of generation `gen`'s tree (name, bytes), sorted by name:
/// about half are the previous generation's, unchanged; `generation`
/// holds the number.
pub fn tree_files(seed: u64, gen: u64) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = (0..FILES)
        .map(|j| {
            let origin = origin(seed, gen, j);
            let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, origin, j) ^ 0x5eed);
            let mut bytes = vec![0u8; rng.gen_range(1_000..96_000)];
            rng.fill_bytes(&mut bytes);
            (format!("f{j}"), bytes)
        })
        .collect();
    files.push(("generation".into(), gen.to_string().into_bytes()));
    files
}

/// The generation whose content file `j` of generation `gen` carries.
fn origin(seed: u64, gen: u64, j: usize) -> u64 {
    let mut g = gen;
    while g > 0 && ChaCha8Rng::seed_from_u64(mix(seed, g, j)).gen_bool(0.5) {
        g -= 1;
    }
    g
}

fn mix(seed: u64, gen: u64, j: usize) -> u64 {
    seed ^ gen.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (j as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
}

/// How a restored directory differs from generation `gen` (`None`: byte
/// for byte the same).
pub fn compare(
    expected: &[(String, Vec<u8>)],
    found: &BTreeMap<String, Vec<u8>>,
) -> Option<String> {
    let names: Vec<&String> = expected.iter().map(|(n, _)| n).collect();
    let got: Vec<&String> = found.keys().collect();
    if names != got {
        return Some(format!("files {got:?}, expected {names:?}"));
    }
    expected
        .iter()
        .find(|(name, bytes)| found.get(name) != Some(bytes))
        .map(|(name, _)| format!("{name} differs"))
}

/// The files of directory `dir` (not recursing: trees are flat).
fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if let Ok(bytes) = std::fs::read(e.path()) {
            out.insert(e.file_name().to_string_lossy().into_owned(), bytes);
        }
    }
    out
}

/// The client loop: back up generation after generation; after every
/// third backup apply retention, and restore the newest committed
/// snapshot.
pub fn client(ctx: ClientCtx, device: Device) {
    let mut gen = 0u64;
    let mut committed: Vec<(String, u64)> = Vec::new();
    while !ctx.stop.load(Ordering::SeqCst) {
        if let Some(id) = backup(&ctx, &device, gen) {
            committed.push((id, gen));
        }
        gen += 1;
        if gen % 3 == 0 {
            retention(&ctx, &device);
            if let Some((id, g)) = committed.last().cloned() {
                restore(&ctx.rec, ctx.client, &device, &id, Some(g));
            }
        }
    }
}

/// Writes generation `gen`'s tree and backs the item up; the snapshot id
/// if committed.
fn backup(ctx: &ClientCtx, device: &Device, gen: u64) -> Option<String> {
    let dir = device.tree_dir();
    for (name, bytes) in tree_files(device.seed, gen) {
        std::fs::write(dir.join(name), bytes).ok()?;
    }
    let start = ctx.rec.now_ms();
    let ran = device.cairn(&["backup", "--item", ITEM]);
    let id = match &ran {
        Ran::Ok(out) => serde_json::from_str::<Value>(out)
            .ok()
            .and_then(|v| Some(v["id"].as_str()?.to_string())),
        _ => None,
    };
    let outcome = match (ran, &id) {
        (Ran::Ok(_), Some(id)) => Outcome::Ok {
            value: Some(id.clone()),
        },
        (Ran::Ok(out), None) => Outcome::Unknown {
            error: format!("no snapshot id in {out:?}"),
        },
        // A backup that failed may still have committed.
        (Ran::Failed(error), _) => Outcome::Unknown { error },
        (Ran::TimedOut, _) => Outcome::Unknown {
            error: "timed out".into(),
        },
    };
    ctx.rec
        .op(ctx.client, 0, start, Call::Backup { tree: gen }, outcome);
    id
}

/// `cairn retention apply`: forgets what keep-last-3 drops, then prunes.
fn retention(ctx: &ClientCtx, device: &Device) {
    let start = ctx.rec.now_ms();
    let outcome = match device.cairn(&["retention", "apply", "--vault", VAULT]) {
        Ran::Ok(out) => {
            let forgotten: Vec<String> = serde_json::from_str::<Value>(&out)
                .ok()
                .and_then(|v| {
                    v.as_array()?.first()?["forgotten"]
                        .as_array()
                        .map(|ids| ids.iter().filter_map(snapshot_id).collect())
                })
                .unwrap_or_default();
            Outcome::Ok {
                value: Some(forgotten.join(",")),
            }
        }
        Ran::Failed(error) => Outcome::Unknown { error },
        Ran::TimedOut => Outcome::Unknown {
            error: "timed out".into(),
        },
    };
    ctx.rec.op(ctx.client, 0, start, Call::Retention, outcome);
}

/// A snapshot id in a JSON answer: a string, or an object with an `id`.
fn snapshot_id(v: &Value) -> Option<String> {
    v.as_str().or_else(|| v["id"].as_str()).map(str::to_string)
}

/// Restores snapshot `id` into a fresh directory and compares it with its
/// generation (`gen`, or whichever generation's tree it holds). Ok with
/// `None` when byte for byte the same, with the difference otherwise.
/// Answers whether the restore ran (whatever it found).
fn restore(rec: &Recorder, client: usize, device: &Device, id: &str, gen: Option<u64>) -> bool {
    let target = device.home.join("restore");
    let _ = std::fs::remove_dir_all(&target);
    let start = rec.now_ms();
    let t = target.to_string_lossy().into_owned();
    let ran = device.cairn(&["restore", "--vault", VAULT, id, "--target", &t]);
    let tree = target.join(device.tree_dir().strip_prefix("/").unwrap_or(Path::new("")));
    let found = read_dir(&tree);
    // The generation the snapshot holds names itself.
    let held = found
        .get("generation")
        .and_then(|g| String::from_utf8_lossy(g).parse::<u64>().ok());
    let (gen, outcome) = match ran {
        Ran::Ok(_) => match gen.or(held) {
            Some(g) => (
                g,
                Outcome::Ok {
                    value: compare(&tree_files(device.seed, g), &found),
                },
            ),
            None => (
                0,
                Outcome::Ok {
                    value: Some("no tree in the restored snapshot".into()),
                },
            ),
        },
        // A restore changes nothing on the server.
        Ran::Failed(error) => (gen.unwrap_or(0), Outcome::Fail { error }),
        Ran::TimedOut => (
            gen.unwrap_or(0),
            Outcome::Fail {
                error: "timed out".into(),
            },
        ),
    };
    let call = Call::Restore {
        snapshot: id.to_string(),
        tree: gen,
    };
    let ran = matches!(outcome, Outcome::Ok { .. });
    rec.op(client, 0, start, call, outcome);
    let _ = std::fs::remove_dir_all(&target);
    ran
}

/// After the faults: lists the vault's snapshots, restores each one and
/// compares it, and runs `cairn check --read-data` (each retried a few
/// times while the cluster settles), recorded as operations of `client`.
pub fn verify(rec: &Recorder, client: usize, device: &Device) {
    let listed = retried(rec, client, Call::Snapshots, || {
        match device.cairn(&["snapshots", "--vault", VAULT]) {
            Ran::Ok(out) => {
                let ids: Option<Vec<String>> =
                    serde_json::from_str::<Value>(&out).ok().and_then(|v| {
                        v.as_array()
                            .map(|a| a.iter().filter_map(snapshot_id).collect())
                    });
                match ids {
                    Some(ids) => Ok(Some(ids.join(","))),
                    None => Err(format!("unreadable snapshot list {out:?}")),
                }
            }
            Ran::Failed(e) => Err(e),
            Ran::TimedOut => Err("timed out".into()),
        }
    });
    let Some(Some(listed)) = listed else { return };
    for id in listed.split(',').filter(|s| !s.is_empty()) {
        for _ in 0..3 {
            if restore(rec, client, device, id, None) {
                break;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }
    let _ = retried(rec, client, Call::Check, || {
        match device.cairn(&["check", "--vault", VAULT, "--read-data"]) {
            Ran::Ok(_) => Ok(None),
            Ran::Failed(e) => Err(e),
            Ran::TimedOut => Err("timed out".into()),
        }
    });
}

/// Runs `f` up to 3 times until it succeeds, recording each attempt as
/// `call` (a read: failing changes nothing); its value if it succeeded.
fn retried(
    rec: &Recorder,
    client: usize,
    call: Call,
    mut f: impl FnMut() -> Result<Option<String>, String>,
) -> Option<Option<String>> {
    for _ in 0..3 {
        let start = rec.now_ms();
        match f() {
            Ok(value) => {
                rec.op(
                    client,
                    0,
                    start,
                    call,
                    Outcome::Ok {
                        value: value.clone(),
                    },
                );
                return Some(value);
            }
            Err(error) => rec.op(client, 0, start, call.clone(), Outcome::Fail { error }),
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_derive_from_seed_and_generation_and_share_files() {
        assert_eq!(tree_files(1, 5), tree_files(1, 5));
        assert_ne!(tree_files(1, 5), tree_files(2, 5));
        let shared = (1..40)
            .map(|g| {
                let (a, b) = (tree_files(3, g - 1), tree_files(3, g));
                a.iter().zip(&b).filter(|(x, y)| x == y).count()
            })
            .sum::<usize>();
        assert_eq!(
            tree_files(3, 12).last(),
            Some(&("generation".to_string(), b"12".to_vec()))
        );
        // About half of 6 files over 39 generations.
        assert!((60..180).contains(&shared), "{shared}");
    }

    #[test]
    fn a_restore_compares_names_and_bytes() {
        let expected = tree_files(1, 2);
        let mut found: BTreeMap<String, Vec<u8>> = expected.iter().cloned().collect();
        assert_eq!(compare(&expected, &found), None);
        if let Some(f) = found.get_mut("f3") {
            f[0] ^= 1;
        }
        assert_eq!(compare(&expected, &found).as_deref(), Some("f3 differs"));
        found.remove("f3");
        assert!(compare(&expected, &found).is_some_and(|d| d.starts_with("files")));
    }
}
