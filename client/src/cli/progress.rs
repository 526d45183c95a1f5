//! Progress display, shown only when stderr is a terminal and output is not
//! JSON or `--quiet`, so scripts and logs never see control characters: a
//! bar with percentage, totals, rate and ETA when the total is known (a
//! backup's parent, a restore's selected files), else a spinner with
//! counters. The lines are pure functions of the counters
//! ([`backup_frame`], [`restore_frame`]), tested without a terminal.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use cairn_client::backup::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// One redraw: the text, and the bar's (position, length) when the total
/// is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What follows the bar.
    pub text: String,
    /// Done and total, for the bar.
    pub of: Option<(u64, u64)>,
}

impl From<String> for Frame {
    fn from(text: String) -> Self {
        Self { text, of: None }
    }
}

/// Where a progress display draws and lines print: a bar on a terminal,
/// else plain stderr (disabled, `--quiet`, or stderr not a terminal).
#[derive(Clone)]
pub struct Display(Option<ProgressBar>);

impl Display {
    /// A display when `enabled` and stderr is a terminal (not `--quiet`).
    pub fn new(enabled: bool) -> Self {
        let on = enabled && !super::output::quiet() && std::io::stderr().is_terminal();
        Self(on.then(ProgressBar::new_spinner))
    }

    /// Prints `line` on stderr above the display (or plainly without one).
    pub fn println(&self, line: &str) {
        match &self.0 {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

/// A progress display that redraws from counters until dropped.
pub struct Spinner {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Spinner {
    /// Starts a display rendering `render(elapsed)` every 100 ms, or
    /// nothing when `enabled` is false, under `--quiet`, or when stderr is
    /// not a terminal.
    pub fn start<F: Into<Frame>>(
        enabled: bool,
        render: impl Fn(Duration) -> F + Send + 'static,
    ) -> Self {
        Self::on(Display::new(enabled), render)
    }

    /// Starts rendering on `display` (nothing when it has no bar).
    pub fn on<F: Into<Frame>>(
        display: Display,
        render: impl Fn(Duration) -> F + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let Some(drawn) = display.0 else {
            return Self { stop, handle: None };
        };
        let style = |template: &str| {
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_spinner())
                .progress_chars("=> ")
        };
        let spinning = style("{spinner} {elapsed} {wide_msg}");
        let barred = style("{spinner} {elapsed} [{bar:24}] {wide_msg}");
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut has_bar = false;
            while !flag.load(Ordering::Relaxed) {
                let frame: Frame = render(started.elapsed()).into();
                if frame.of.is_some() != has_bar {
                    has_bar = frame.of.is_some();
                    drawn.set_style(if has_bar { &barred } else { &spinning }.clone());
                }
                if let Some((done, total)) = frame.of {
                    drawn.set_length(total);
                    drawn.set_position(done.min(total));
                }
                drawn.set_message(frame.text);
                drawn.tick();
                std::thread::sleep(Duration::from_millis(100));
            }
            drawn.finish_and_clear();
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }
}

impl Spinner {
    /// Under `--json`: one status document a second on stderr, rendered by
    /// `render(elapsed)` (stdout keeps its one result document); nothing
    /// under `--quiet` or when the command ends within the first second.
    pub fn json_lines(render: impl Fn(Duration) -> String + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if super::output::quiet() {
            return Self { stop, handle: None };
        }
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut next = Duration::from_secs(1);
            while !flag.load(Ordering::Relaxed) {
                if started.elapsed() >= next {
                    eprintln!("{}", render(started.elapsed()));
                    next += Duration::from_secs(1);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What a backup's display shows, read from its [`Progress`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupStatus {
    /// Files finished.
    pub files: u64,
    /// Bytes finished.
    pub bytes: u64,
    /// The parent's files (0: no parent).
    pub expected_files: u64,
    /// The parent's bytes (0: no parent).
    pub expected_bytes: u64,
    /// Entries skipped so far.
    pub errors: u64,
    /// The file being read.
    pub current: String,
}

impl BackupStatus {
    /// Reads the live counters.
    pub fn of(p: &Progress) -> Self {
        Self {
            files: load(&p.files),
            bytes: load(&p.bytes),
            expected_files: load(&p.expected_files),
            expected_bytes: load(&p.expected_bytes),
            errors: load(&p.errors),
            current: p
                .current
                .lock()
                .map(|c| c.display().to_string())
                .unwrap_or_default(),
        }
    }
}

/// A backup's line: with the parent's totals, percentage, done of total,
/// rate and ETA (a total that is passed shows no percentage: the tree
/// grew); files, errors and the current file.
pub fn backup_frame(s: &BackupStatus, elapsed: Duration) -> Frame {
    let mut parts = vec![];
    let known = s.expected_bytes > 0 && s.bytes <= s.expected_bytes;
    if known {
        parts.push(format!(
            "{}% {} / {}",
            s.bytes * 100 / s.expected_bytes,
            bytes(s.bytes),
            bytes(s.expected_bytes)
        ));
    } else {
        parts.push(bytes(s.bytes));
    }
    parts.extend(rate_and_eta(
        s.bytes,
        known.then_some(s.expected_bytes),
        elapsed,
    ));
    parts.push(if s.expected_files > 0 {
        format!("{} / {} files", s.files, s.expected_files)
    } else {
        format!("{} files", s.files)
    });
    if s.errors > 0 {
        parts.push(format!(
            "{} {}",
            s.errors,
            if s.errors == 1 { "error" } else { "errors" }
        ));
    }
    if !s.current.is_empty() {
        parts.push(s.current.clone());
    }
    Frame {
        text: parts.join(", "),
        of: known.then_some((s.bytes, s.expected_bytes)),
    }
}

/// A backup's `--json` status document (restic's `status` message):
/// counters, totals when known, the current file.
pub fn backup_json(s: &BackupStatus, elapsed: Duration) -> String {
    #[derive(Serialize)]
    struct Status<'a> {
        message_type: &'static str,
        seconds_elapsed: u64,
        percent_done: Option<f64>,
        files_done: u64,
        bytes_done: u64,
        total_files: Option<u64>,
        total_bytes: Option<u64>,
        errors: u64,
        current_file: &'a str,
    }
    let known = s.expected_bytes > 0 && s.bytes <= s.expected_bytes;
    serde_json::to_string(&Status {
        message_type: "status",
        seconds_elapsed: elapsed.as_secs(),
        percent_done: known.then(|| s.bytes as f64 / s.expected_bytes as f64),
        files_done: s.files,
        bytes_done: s.bytes,
        total_files: (s.expected_files > 0).then_some(s.expected_files),
        total_bytes: (s.expected_bytes > 0).then_some(s.expected_bytes),
        errors: s.errors,
        current_file: &s.current,
    })
    .unwrap_or_default()
}

/// A restore's `--json` status document.
pub fn restore_json(done: u64, total: u64, elapsed: Duration) -> String {
    serde_json::json!({
        "message_type": "status",
        "seconds_elapsed": elapsed.as_secs(),
        "percent_done": (total > 0).then(|| done.min(total) as f64 / total as f64),
        "bytes_done": done,
        "total_bytes": total,
    })
    .to_string()
}

/// A restore's line: percentage of the selected files' bytes, rate, ETA.
pub fn restore_frame(done: u64, total: u64, elapsed: Duration) -> Frame {
    if total == 0 {
        return format!("restored {}", bytes(done)).into();
    }
    let mut parts = vec![format!(
        "{}% {} / {}",
        done.min(total) * 100 / total,
        bytes(done),
        bytes(total)
    )];
    parts.extend(rate_and_eta(done, Some(total), elapsed));
    Frame {
        text: parts.join(", "),
        of: Some((done, total)),
    }
}

/// "12.0 MiB/s" and, toward a known total, "ETA 1:05"; nothing in the
/// first half second (no rate worth showing yet).
fn rate_and_eta(done: u64, total: Option<u64>, elapsed: Duration) -> Vec<String> {
    let secs = elapsed.as_secs_f64();
    if secs < 0.5 || done == 0 {
        return vec![];
    }
    let rate = done as f64 / secs;
    let mut out = vec![format!("{}/s", bytes(rate as u64))];
    if let Some(total) = total {
        let left = (total.saturating_sub(done) as f64 / rate).round() as u64;
        out.push(format!("ETA {}:{:02}", left / 60, left % 60));
    }
    out
}

/// Human-readable byte count.
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// Reads a shared counter.
pub fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_with_a_parent_shows_percentage_rate_eta_and_errors() {
        let s = BackupStatus {
            files: 10,
            bytes: 25 << 20,
            expected_files: 40,
            expected_bytes: 100 << 20,
            errors: 2,
            current: "/home/me/big.iso".into(),
        };
        let f = backup_frame(&s, Duration::from_secs(5));
        assert_eq!(
            f.text,
            "25% 25.00 MiB / 100.00 MiB, 5.00 MiB/s, ETA 0:15, 10 / 40 files, 2 errors, \
             /home/me/big.iso"
        );
        assert_eq!(f.of, Some((25 << 20, 100 << 20)));
    }

    #[test]
    fn without_a_total_or_past_it_there_is_no_bar() {
        let first = BackupStatus {
            files: 3,
            bytes: 2048,
            ..BackupStatus::default()
        };
        let f = backup_frame(&first, Duration::from_millis(100));
        assert_eq!((f.text.as_str(), f.of), ("2.00 KiB, 3 files", None));
        let grown = BackupStatus {
            expected_bytes: 1024,
            expected_files: 1,
            errors: 1,
            ..first
        };
        let f = backup_frame(&grown, Duration::from_secs(2));
        assert_eq!(f.text, "2.00 KiB, 1.00 KiB/s, 3 / 1 files, 1 error");
        assert_eq!(f.of, None);
    }

    #[test]
    fn a_restore_counts_against_its_selected_bytes() {
        let f = restore_frame(30, 120, Duration::from_secs(3));
        assert_eq!(f.text, "25% 30 B / 120 B, 10 B/s, ETA 0:09");
        assert_eq!(f.of, Some((30, 120)));
        assert_eq!(restore_frame(5, 0, Duration::ZERO).text, "restored 5 B");
    }

    #[test]
    fn json_status_documents_carry_totals_only_when_known() {
        let s = BackupStatus {
            files: 1,
            bytes: 50,
            expected_files: 2,
            expected_bytes: 200,
            errors: 0,
            current: "/x".into(),
        };
        let doc: serde_json::Value =
            serde_json::from_str(&backup_json(&s, Duration::from_secs(3))).unwrap();
        assert_eq!(doc["message_type"], "status");
        assert_eq!(doc["percent_done"], 0.25);
        assert_eq!(doc["total_bytes"], 200);
        assert_eq!(doc["current_file"], "/x");
        let first = BackupStatus::default();
        let doc: serde_json::Value =
            serde_json::from_str(&backup_json(&first, Duration::ZERO)).unwrap();
        assert!(doc["percent_done"].is_null() && doc["total_bytes"].is_null());
        let doc: serde_json::Value =
            serde_json::from_str(&restore_json(10, 40, Duration::ZERO)).unwrap();
        assert_eq!(doc["percent_done"], 0.25);
    }
}
