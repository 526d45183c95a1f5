//! The report directory of a run: `run.json` (seed, options, counts, the
//! replay command), `history.jsonl`, `verdicts.json`, `timeline.svg`, and
//! the node logs in `logs/`.

use std::path::Path;

use serde::Serialize;

use crate::check::Verdict;
use crate::error::JepsenError;
use crate::history::History;
use crate::timeline;

/// What `run.json` records.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// The seed of the schedule and the workload's choices.
    pub seed: u64,
    /// Node count.
    pub nodes: usize,
    /// Workload duration, seconds.
    pub time_limit_s: u64,
    /// Nemesis kinds.
    pub nemesis: Vec<String>,
    /// The command that replays the run.
    pub replay: String,
    /// Operations recorded.
    pub ops: usize,
    /// Of which ok.
    pub ok: usize,
    /// Of which failed.
    pub failed: usize,
    /// Of which unknown.
    pub unknown: usize,
    /// Whether repair settled (no under-replicated chunk) before the check.
    pub settled: bool,
    /// Nodes whose process exited without the nemesis killing it.
    pub crashed: Vec<String>,
}

/// The one command that replays a run: the same binary, nodes, schedule,
/// seed, node environment and binaries.
pub fn replay_command(
    exe: &str,
    nodes: usize,
    time_limit_s: u64,
    nemesis: &[String],
    seed: u64,
    node_env: &[(String, String)],
    (cairnd, cairn): (&Path, &Path),
) -> String {
    let mut cmd = format!("{exe} --nodes {nodes} --time-limit {time_limit_s}");
    if !nemesis.is_empty() {
        cmd.push_str(&format!(" --nemesis {}", nemesis.join(",")));
    }
    cmd.push_str(&format!(" --seed {seed}"));
    for (k, v) in node_env {
        cmd.push_str(&format!(" --node-env {k}={v}"));
    }
    cmd.push_str(&format!(
        " --report <DIR> --cairnd {} --cairn {}",
        cairnd.display(),
        cairn.display()
    ));
    cmd
}

/// Writes everything but the logs (already there) into `dir`.
pub fn write(
    dir: &Path,
    info: &RunInfo,
    history: &History,
    verdicts: &[Verdict],
    duration_ms: u64,
) -> Result<(), JepsenError> {
    let put = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(JepsenError::io(format!("writing {}", path.display())))
    };
    put("run.json", pretty(info))?;
    put("verdicts.json", pretty(&verdicts))?;
    write_partial(dir, history, duration_ms)
}

/// Writes what an interrupted or failed run recorded: the history and its
/// timeline, without verdicts.
pub fn write_partial(dir: &Path, history: &History, duration_ms: u64) -> Result<(), JepsenError> {
    let put = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(JepsenError::io(format!("writing {}", path.display())))
    };
    put("history.jsonl", history.to_jsonl())?;
    put("timeline.svg", timeline::render(history, duration_ms))
}

/// Pretty JSON of the report's plain data.
fn pretty<T: Serialize>(value: &T) -> String {
    // Plain structs of strings and numbers: serialisation cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_command_repeats_the_run() {
        let cmd = replay_command(
            "cairn-jepsen",
            3,
            120,
            &["kill".into(), "pause".into()],
            42,
            &[("CAIRN_UNSAFE_ACK".into(), "1".into())],
            (Path::new("/bin/cairnd"), Path::new("/bin/cairn")),
        );
        assert_eq!(
            cmd,
            "cairn-jepsen --nodes 3 --time-limit 120 --nemesis kill,pause --seed 42 --node-env CAIRN_UNSAFE_ACK=1 --report <DIR> --cairnd /bin/cairnd --cairn /bin/cairn"
        );
    }
}
