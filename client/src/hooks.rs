//! Before/after commands around one job of a protected item.
//!
//! Three levels nest around the job, outermost first: the schedule's, the
//! item's and the vault's commands. They run in exactly this order:
//!
//! ```text
//! schedule before → item before → vault before → JOB → vault after → item after → schedule after
//! ```
//!
//! A before command that fails (non-zero exit, or it could not be started)
//! stops the chain: the job does not run and ends `error`, and the after
//! commands of every level whose before commands ran (the failing level
//! included, so it can clean up what it half set up) still run, innermost
//! first. After commands see the job's status in `CAIRN_JOB_STATUS`; one
//! that fails turns a `succeeded` job into `warning`.
//!
//! [`run_chain`] is the whole decision, over a [`Shell`] that runs one
//! command: tests give it a recording fake, `cairn` gives it [`SystemShell`]
//! (`/bin/sh -c`, output captured and bounded).
//!
//! A job the daemon stops on its schedule's timeout still runs the after
//! commands of the levels whose before commands ran, from the daemon: the
//! job's process writes [`Mark`]s as it goes (the chain, each level
//! entered, each level's afters begun; [`SystemShell::marking`]), and the
//! daemon, having killed it, runs [`afters_due`] of them through
//! [`run_afters`] with `CAIRN_JOB_STATUS=timeout`. A level whose after
//! commands had begun is not run again.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use cairn_proto::api::{FinishJob, JobStatus};
use serde::{Deserialize, Serialize};

/// Most output kept per command (its tail), so that a chatty command
/// cannot crowd the job's log out of its bound.
pub const OUTPUT_MAX: usize = 4096;

/// One level's commands.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSet {
    /// Run before the job, in order.
    pub before: Vec<String>,
    /// Run after the job, in order.
    pub after: Vec<String>,
}

/// The three levels around a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chain {
    /// The schedule's (outermost; empty for a manual job).
    pub schedule: CommandSet,
    /// The protected item's.
    pub item: CommandSet,
    /// The vault's (innermost, shared by the account's devices).
    pub vault: CommandSet,
}

/// How one command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// Its exit code; `None` when it was killed by a signal or could not
    /// be started.
    pub code: Option<i32>,
    /// Its output (stdout then stderr), bounded, or why it could not run.
    pub output: String,
}

impl Ran {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// A level of commands around a job, outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The schedule's.
    Schedule,
    /// The item's.
    Item,
    /// The vault's.
    Vault,
}

impl Level {
    /// The three, outermost first.
    pub const ALL: [Level; 3] = [Level::Schedule, Level::Item, Level::Vault];

    fn name(self) -> &'static str {
        match self {
            Level::Schedule => "schedule",
            Level::Item => "item",
            Level::Vault => "vault",
        }
    }

    fn of(self, chain: &Chain) -> &CommandSet {
        match self {
            Level::Schedule => &chain.schedule,
            Level::Item => &chain.item,
            Level::Vault => &chain.vault,
        }
    }
}

/// How far a job's commands got, as its process reports it (one JSON line
/// each) to whoever may have to stop it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// The commands and context of the job (first).
    Plan {
        /// The commands (boxed: the other marks are a byte).
        chain: Box<Chain>,
        /// Their environment.
        ctx: Context,
    },
    /// A level's before commands begin.
    Before(Level),
    /// A level's after commands begin.
    After(Level),
}

/// Runs one command with extra environment variables.
pub trait Shell {
    /// Runs `command` with `env` added to the environment.
    fn run(&mut self, command: &str, env: &[(&str, String)]) -> Ran;

    /// Notes how far the chain got (see [`Mark`]); nothing by default.
    fn mark(&mut self, _mark: &Mark) {}
}

/// The job's context, given to every command as environment variables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// `CAIRN_JOB_ID`.
    pub job_id: String,
    /// `CAIRN_ITEM`.
    pub item: String,
    /// `CAIRN_VAULT` (the vault's name).
    pub vault: String,
    /// `CAIRN_SCHEDULE` (empty for a manual job).
    pub schedule: String,
}

impl Context {
    fn env(&self, status: Option<JobStatus>) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("CAIRN_JOB_ID", self.job_id.clone()),
            ("CAIRN_ITEM", self.item.clone()),
            ("CAIRN_VAULT", self.vault.clone()),
            ("CAIRN_SCHEDULE", self.schedule.clone()),
        ];
        if let Some(s) = status {
            env.push(("CAIRN_JOB_STATUS", s.name().to_string()));
        }
        env
    }
}

/// Runs the chain around `job` (called only when every before command
/// succeeded) and returns the job's end: its status adjusted by the
/// commands, and their output and exit codes prepended to its log.
pub fn run_chain(
    chain: &Chain,
    ctx: &Context,
    shell: &mut dyn Shell,
    job: impl FnOnce() -> FinishJob,
) -> FinishJob {
    shell.mark(&Mark::Plan {
        chain: Box::new(chain.clone()),
        ctx: ctx.clone(),
    });
    let mut log = String::new();
    let mut entered = 0;
    let mut failed = None;
    for level in Level::ALL {
        entered += 1;
        shell.mark(&Mark::Before(level));
        let name = level.name();
        for cmd in &level.of(chain).before {
            let ran = shell.run(cmd, &ctx.env(None));
            note(&mut log, name, "before", cmd, &ran);
            if !ran.ok() {
                failed = Some(format!(
                    "{name} before command {cmd:?} failed ({}); the job did not run",
                    exit_text(&ran)
                ));
                break;
            }
        }
        if failed.is_some() {
            break;
        }
    }
    let mut end = match failed {
        Some(error) => FinishJob {
            status: JobStatus::Error,
            files: 0,
            bytes: 0,
            error: Some(error),
            log: String::new(),
        },
        None => job(),
    };
    let innermost_first: Vec<Level> = Level::ALL[..entered].iter().rev().copied().collect();
    run_afters(chain, ctx, &innermost_first, shell, &mut end, &mut log);
    if !log.is_empty() {
        if !end.log.is_empty() {
            log.push('\n');
        }
        end.log = log + &end.log;
    }
    end
}

/// Runs the after commands of `levels` (innermost first) for a job that
/// ended as `end` says, noting them in `log`; a failing one turns a
/// `succeeded` job into `warning`.
pub fn run_afters(
    chain: &Chain,
    ctx: &Context,
    levels: &[Level],
    shell: &mut dyn Shell,
    end: &mut FinishJob,
    log: &mut String,
) {
    for level in levels {
        shell.mark(&Mark::After(*level));
        let name = level.name();
        for cmd in &level.of(chain).after {
            let ran = shell.run(cmd, &ctx.env(Some(end.status)));
            note(log, name, "after", cmd, &ran);
            if !ran.ok() && end.status == JobStatus::Succeeded {
                end.status = JobStatus::Warning;
                end.error = Some(format!(
                    "{name} after command {cmd:?} failed ({})",
                    exit_text(&ran)
                ));
            }
        }
    }
}

/// From the marks of a stopped job: its commands, context, and the levels
/// whose after commands are still due (entered, afters not begun),
/// innermost first; `None` before the job wrote its plan.
pub fn afters_due(marks: &[Mark]) -> Option<(Chain, Context, Vec<Level>)> {
    let (chain, ctx) = marks.iter().find_map(|m| match m {
        Mark::Plan { chain, ctx } => Some((chain.as_ref().clone(), ctx.clone())),
        _ => None,
    })?;
    let entered = |l: &Level| marks.contains(&Mark::Before(*l));
    let begun = |l: &Level| marks.contains(&Mark::After(*l));
    let due = Level::ALL
        .iter()
        .rev()
        .filter(|l| entered(l) && !begun(l))
        .copied()
        .collect();
    Some((chain, ctx, due))
}

/// Reads the marks a job's process wrote to `path` (a torn last line, from
/// a process killed mid-write, is left out).
pub fn read_marks(path: &Path) -> Vec<Mark> {
    let Ok(file) = File::open(path) else {
        return Vec::new();
    };
    BufReader::new(file)
        .lines()
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

fn exit_text(ran: &Ran) -> String {
    match ran.code {
        Some(c) => format!("exit {c}"),
        None => "no exit code".into(),
    }
}

fn note(log: &mut String, level: &str, when: &str, cmd: &str, ran: &Ran) {
    log.push_str(&format!(
        "[{level} {when}] $ {cmd}\n{}{}[{}]\n",
        ran.output,
        if ran.output.is_empty() || ran.output.ends_with('\n') {
            ""
        } else {
            "\n"
        },
        exit_text(ran)
    ));
}

/// The real shell: `/bin/sh -c COMMAND`, stdin closed, stdout and stderr
/// captured (their last [`OUTPUT_MAX`] bytes kept); with a marks file, the
/// chain's [`Mark`]s are appended to it, one JSON line each, flushed.
#[derive(Default)]
pub struct SystemShell {
    marks: Option<File>,
}

impl SystemShell {
    /// A shell that writes its marks to `path` (created or truncated).
    ///
    /// # Errors
    ///
    /// The file cannot be created.
    pub fn marking(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            marks: Some(File::create(path)?),
        })
    }
}

impl Shell for SystemShell {
    fn mark(&mut self, mark: &Mark) {
        if let (Some(f), Ok(mut line)) = (&mut self.marks, serde_json::to_string(mark)) {
            line.push('\n');
            // Best effort: a mark that cannot be written only means the
            // daemon runs fewer after commands on a timeout.
            let _ = f.write_all(line.as_bytes()).and_then(|()| f.sync_data());
        }
    }

    fn run(&mut self, command: &str, env: &[(&str, String)]) -> Ran {
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                return Ran {
                    code: None,
                    output: format!("could not start /bin/sh: {e}"),
                }
            }
        };
        // stderr is read on its own thread so a command filling one pipe
        // never blocks on the other.
        let err_reader = child.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                let mut b = Vec::new();
                let _ = e.read_to_end(&mut b);
                b
            })
        });
        let mut out = Vec::new();
        if let Some(mut o) = child.stdout.take() {
            let _ = o.read_to_end(&mut out);
        }
        if let Some(Ok(err)) = err_reader.map(|t| t.join()) {
            out.extend(err);
        }
        let code = child.wait().ok().and_then(|s| s.code());
        Ran {
            code,
            output: tail(&String::from_utf8_lossy(&out), OUTPUT_MAX),
        }
    }
}

/// The last `max` bytes of `text` (on a character boundary), saying how
/// much was left out.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("(… {start} bytes left out)\n{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every command with its environment; fails those listed.
    #[derive(Default)]
    struct Recorder {
        ran: Vec<(String, Vec<(String, String)>)>,
        failing: Vec<String>,
    }

    impl Shell for Recorder {
        fn run(&mut self, command: &str, env: &[(&str, String)]) -> Ran {
            self.ran.push((
                command.to_string(),
                env.iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            ));
            let fails = self.failing.iter().any(|f| f == command);
            Ran {
                code: Some(if fails { 1 } else { 0 }),
                output: format!("out of {command}"),
            }
        }
    }

    fn set(name: &str) -> CommandSet {
        CommandSet {
            before: vec![format!("{name}-before")],
            after: vec![format!("{name}-after")],
        }
    }

    fn chain() -> Chain {
        Chain {
            schedule: set("schedule"),
            item: set("item"),
            vault: set("vault"),
        }
    }

    fn ok_job() -> FinishJob {
        FinishJob {
            status: JobStatus::Succeeded,
            files: 2,
            bytes: 3,
            error: None,
            log: "backup log".into(),
        }
    }

    fn commands(r: &Recorder) -> Vec<&str> {
        r.ran.iter().map(|(c, _)| c.as_str()).collect()
    }

    #[test]
    fn the_seven_steps_run_in_nesting_order() {
        let mut shell = Recorder::default();
        let mut ran_job = false;
        let end = run_chain(&chain(), &Context::default(), &mut shell, || {
            ran_job = true;
            ok_job()
        });
        assert!(ran_job);
        assert_eq!(
            commands(&shell),
            [
                "schedule-before",
                "item-before",
                "vault-before",
                "vault-after",
                "item-after",
                "schedule-after"
            ]
        );
        assert_eq!(end.status, JobStatus::Succeeded);
        assert_eq!((end.files, end.bytes), (2, 3));
        assert!(
            end.log.starts_with(
                "[schedule before] $ schedule-before\nout of schedule-before\n[exit 0]"
            ),
            "{}",
            end.log
        );
        assert!(end.log.ends_with("backup log"), "{}", end.log);
    }

    #[test]
    fn a_failing_before_command_skips_the_job_and_runs_the_entered_levels_afters() {
        let mut shell = Recorder {
            failing: vec!["item-before".into()],
            ..Recorder::default()
        };
        let end = run_chain(&chain(), &Context::default(), &mut shell, || {
            panic!("the job must not run")
        });
        assert_eq!(
            commands(&shell),
            [
                "schedule-before",
                "item-before",
                "item-after",
                "schedule-after"
            ]
        );
        assert_eq!(end.status, JobStatus::Error);
        assert!(end
            .error
            .as_deref()
            .is_some_and(|e| e.contains("item before")));
        assert!(end.log.contains("[exit 1]"), "{}", end.log);
        // The after commands see the job's status.
        let (_, env) = &shell.ran[2];
        assert!(env.contains(&("CAIRN_JOB_STATUS".into(), "error".into())));
    }

    #[test]
    fn a_failing_before_command_stops_its_own_level_too() {
        let mut c = chain();
        c.schedule.before = vec!["s1".into(), "s2".into()];
        let mut shell = Recorder {
            failing: vec!["s1".into()],
            ..Recorder::default()
        };
        run_chain(&c, &Context::default(), &mut shell, || panic!("no job"));
        assert_eq!(commands(&shell), ["s1", "schedule-after"]);
    }

    #[test]
    fn a_failing_after_command_turns_success_into_a_warning_only() {
        let mut shell = Recorder {
            failing: vec!["vault-after".into()],
            ..Recorder::default()
        };
        let end = run_chain(&chain(), &Context::default(), &mut shell, ok_job);
        assert_eq!(end.status, JobStatus::Warning);
        assert_eq!(commands(&shell).len(), 6, "the other afters still run");
        let mut shell = Recorder {
            failing: vec!["vault-after".into()],
            ..Recorder::default()
        };
        let quota = || FinishJob {
            status: JobStatus::Quota,
            ..ok_job()
        };
        let end = run_chain(&chain(), &Context::default(), &mut shell, quota);
        assert_eq!(end.status, JobStatus::Quota);
    }

    #[test]
    fn every_command_sees_the_job_context() {
        let ctx = Context {
            job_id: "j1".into(),
            item: "home".into(),
            vault: "main".into(),
            schedule: "nightly".into(),
        };
        let mut shell = Recorder::default();
        run_chain(&chain(), &ctx, &mut shell, ok_job);
        for (cmd, env) in &shell.ran {
            for (k, v) in [
                ("CAIRN_JOB_ID", "j1"),
                ("CAIRN_ITEM", "home"),
                ("CAIRN_VAULT", "main"),
                ("CAIRN_SCHEDULE", "nightly"),
            ] {
                assert!(env.contains(&(k.into(), v.into())), "{cmd}: {env:?}");
            }
            let status = env.iter().find(|(k, _)| k == "CAIRN_JOB_STATUS");
            if cmd.ends_with("-after") {
                assert_eq!(status.map(|(_, v)| v.as_str()), Some("succeeded"));
            } else {
                assert!(status.is_none(), "{cmd}");
            }
        }
    }

    /// A shell that records its marks.
    #[derive(Default)]
    struct Marker {
        inner: Recorder,
        marks: Vec<Mark>,
    }

    impl Shell for Marker {
        fn run(&mut self, command: &str, env: &[(&str, String)]) -> Ran {
            self.inner.run(command, env)
        }
        fn mark(&mut self, mark: &Mark) {
            self.marks.push(mark.clone());
        }
    }

    #[test]
    fn marks_say_which_afters_a_stopped_job_still_owes() {
        let mut shell = Marker::default();
        run_chain(&chain(), &Context::default(), &mut shell, ok_job);
        let m = &shell.marks;
        assert_eq!(m.len(), 7, "{m:?}");
        // Stopped during the job: every level's afters, innermost first.
        let (c, _, due) = afters_due(&m[..4]).unwrap();
        assert_eq!(c, chain());
        assert_eq!(due, [Level::Vault, Level::Item, Level::Schedule]);
        // Stopped in the item's before commands: item and schedule.
        assert_eq!(
            afters_due(&m[..3]).unwrap().2,
            [Level::Item, Level::Schedule]
        );
        // Stopped in the item's afters: only the schedule's are left.
        assert_eq!(afters_due(&m[..6]).unwrap().2, [Level::Schedule]);
        assert_eq!(afters_due(m).unwrap().2, []);
        assert!(afters_due(&[]).is_none());
        // Run by the daemon with the timeout status.
        let (c, ctx, due) = afters_due(&m[..4]).unwrap();
        let mut shell = Recorder::default();
        let mut end = FinishJob {
            status: JobStatus::Timeout,
            ..ok_job()
        };
        let mut log = String::new();
        run_afters(&c, &ctx, &due, &mut shell, &mut end, &mut log);
        assert_eq!(
            commands(&shell),
            ["vault-after", "item-after", "schedule-after"]
        );
        assert_eq!(end.status, JobStatus::Timeout);
        let (_, env) = &shell.ran[0];
        assert!(env.contains(&("CAIRN_JOB_STATUS".into(), "timeout".into())));
        assert!(log.contains("[schedule after] $ schedule-after"), "{log}");
    }

    #[test]
    fn the_system_shell_writes_marks_a_reader_gets_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marks");
        let mut sh = SystemShell::marking(&path).unwrap();
        run_chain(
            &chain(),
            &Context::default(),
            &mut MarkOnly(&mut sh),
            ok_job,
        );
        let mut torn = std::fs::read_to_string(&path).unwrap();
        torn.push_str("{\"after\":");
        std::fs::write(&path, torn).unwrap();
        let marks = read_marks(&path);
        assert_eq!(marks.len(), 7);
        assert_eq!(marks[1], Mark::Before(Level::Schedule));
        assert!(read_marks(&dir.path().join("none")).is_empty());
    }

    /// Marks through a system shell, runs nothing.
    struct MarkOnly<'a>(&'a mut SystemShell);

    impl Shell for MarkOnly<'_> {
        fn run(&mut self, _: &str, _: &[(&str, String)]) -> Ran {
            Ran {
                code: Some(0),
                output: String::new(),
            }
        }
        fn mark(&mut self, mark: &Mark) {
            self.0.mark(mark);
        }
    }

    #[test]
    fn no_commands_leave_the_job_as_it_is() {
        let mut shell = Recorder::default();
        let end = run_chain(&Chain::default(), &Context::default(), &mut shell, ok_job);
        assert_eq!(end, ok_job());
        assert!(shell.ran.is_empty());
    }

    #[test]
    fn the_system_shell_captures_output_and_exit_codes() {
        let mut sh = SystemShell::default();
        let ran = sh.run(
            "echo \"$CAIRN_ITEM\"; echo oops >&2; exit 3",
            &[("CAIRN_ITEM", "home".into())],
        );
        assert_eq!(ran.code, Some(3));
        assert_eq!(ran.output, "home\noops\n");
        let long = sh.run("head -c 10000 /dev/zero | tr '\\0' x", &[]);
        assert!(long.output.len() < OUTPUT_MAX + 64, "{}", long.output.len());
        assert!(long.output.starts_with("(… 5904 bytes left out)"));
    }
}
