//! The SVG timeline of a run: one row per client with its operations as
//! bars over time (green ok, red failed, orange unknown), nemesis windows
//! shaded behind them and labelled, and below them a strip of successful
//! operations per time slice, where faults show as dips. Pure: history in,
//! SVG text out.

use std::fmt::Write;

use crate::history::{History, Outcome};

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 70.0;
const TOP: f64 = 40.0;
const ROW: f64 = 16.0;
/// Height of the throughput strip.
const STRIP: f64 = 60.0;
/// Time slices of the throughput strip.
const SLICES: usize = 200;

/// Renders `history` of a run that lasted `duration_ms`.
pub fn render(history: &History, duration_ms: u64) -> String {
    let clients = history.ops.iter().map(|o| o.client + 1).max().unwrap_or(0);
    let height = TOP + ROW * clients as f64 + STRIP + 40.0;
    let span = duration_ms.max(1) as f64;
    let x = |ms: u64| LEFT + (WIDTH - LEFT - 10.0) * (ms as f64 / span).min(1.0);
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="10">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, n) in history.nemesis.iter().enumerate() {
        let (x0, x1) = (x(n.start_ms), x(n.end_ms));
        let _ = writeln!(
            s,
            r##"<rect class="nemesis" x="{x0:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="#f6c4c0" opacity="0.6"><title>{}</title></rect>"##,
            (x1 - x0).max(1.0),
            ROW * clients as f64,
            escape(&n.fault)
        );
        let label_y = 12.0 + 12.0 * (i % 2) as f64;
        let _ = writeln!(
            s,
            r##"<text x="{x0:.1}" y="{label_y}" fill="#b0413e">{}</text>"##,
            escape(&n.fault)
        );
    }
    for c in 0..clients {
        let y = TOP + ROW * c as f64;
        let _ = writeln!(
            s,
            r#"<text x="4" y="{:.1}">client {c}</text>"#,
            y + ROW * 0.7
        );
    }
    // Failures and unknowns last, so they are drawn on top.
    let mut ops: Vec<_> = history.ops.iter().collect();
    ops.sort_by_key(|o| !matches!(o.outcome, Outcome::Ok { .. }));
    for op in ops {
        let (x0, x1) = (x(op.start_ms), x(op.end_ms));
        let y = TOP + ROW * op.client as f64 + 2.0;
        let (class, color) = match op.outcome {
            Outcome::Ok { .. } => ("ok", "#43a047"),
            Outcome::Fail { .. } => ("fail", "#e53935"),
            Outcome::Unknown { .. } => ("unknown", "#fb8c00"),
        };
        let _ = write!(
            s,
            r#"<rect class="{class}" x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{color}">"#,
            (x1 - x0).max(1.0),
            ROW - 4.0
        );
        if let Outcome::Fail { error } | Outcome::Unknown { error } = &op.outcome {
            let _ = write!(s, "<title>op {}: {}</title>", op.index, escape(error));
        }
        let _ = writeln!(s, "</rect>");
    }
    let strip_top = TOP + ROW * clients as f64 + 10.0;
    let slices = throughput(history, duration_ms);
    let peak = slices.iter().copied().max().unwrap_or(0).max(1) as f64;
    let slice_w = (WIDTH - LEFT - 10.0) / SLICES as f64;
    let _ = writeln!(
        s,
        r#"<text x="4" y="{:.1}">ok ops</text>"#,
        strip_top + STRIP / 2.0
    );
    for (i, n) in slices.iter().enumerate().filter(|(_, n)| **n > 0) {
        let h = STRIP * *n as f64 / peak;
        let _ = writeln!(
            s,
            r##"<rect class="throughput" x="{:.1}" y="{:.1}" width="{slice_w:.2}" height="{h:.1}" fill="#546e7a"/>"##,
            LEFT + slice_w * i as f64,
            strip_top + STRIP - h
        );
    }
    let axis_y = strip_top + STRIP + 14.0;
    let step = tick_step(duration_ms);
    let mut t = 0;
    while t <= duration_ms {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{axis_y:.1}">{}s</text>"#,
            x(t),
            t / 1000
        );
        t += step;
    }
    s.push_str("</svg>\n");
    s
}

/// Successful operations completed in each of [`SLICES`] equal slices of
/// the run.
fn throughput(history: &History, duration_ms: u64) -> Vec<usize> {
    let mut slices = vec![0usize; SLICES];
    let span = duration_ms.max(1);
    for op in &history.ops {
        if matches!(op.outcome, Outcome::Ok { .. }) {
            let i = (op.end_ms.min(span - 1) * SLICES as u64 / span) as usize;
            slices[i.min(SLICES - 1)] += 1;
        }
    }
    slices
}

/// About ten axis ticks, at whole seconds.
fn tick_step(duration_ms: u64) -> u64 {
    (duration_ms / 10).div_ceil(1000).max(1) * 1000
}

/// Text safe inside SVG elements and attributes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Call, NemesisEvent, Op};

    fn op(index: usize, client: usize, start: u64, end: u64, outcome: Outcome) -> Op {
        Op {
            index,
            client,
            node: 0,
            start_ms: start,
            end_ms: end,
            call: Call::Read { key: "k".into() },
            outcome,
        }
    }

    #[test]
    fn windows_ops_and_outcomes_are_drawn() {
        let h = History {
            ops: vec![
                op(0, 0, 0, 500, Outcome::Ok { value: None }),
                op(
                    1,
                    1,
                    1000,
                    2000,
                    Outcome::Unknown {
                        error: "timed out <5s>".into(),
                    },
                ),
                op(
                    2,
                    1,
                    3000,
                    3500,
                    Outcome::Fail {
                        error: "refused".into(),
                    },
                ),
            ],
            nemesis: vec![NemesisEvent {
                fault: "kill n1".into(),
                start_ms: 900,
                end_ms: 2500,
            }],
        };
        let svg = render(&h, 10_000);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches(r#"class="nemesis""#).count(), 1);
        assert_eq!(svg.matches(r#"class="ok""#).count(), 1);
        assert_eq!(svg.matches(r#"class="unknown""#).count(), 1);
        assert_eq!(svg.matches(r#"class="fail""#).count(), 1);
        assert!(svg.contains("client 1") && !svg.contains("client 2"));
        assert!(svg.contains("timed out &lt;5s&gt;"), "{svg}");
        assert!(svg.contains(">kill n1</text>"));
        // The window sits where its times say: 900 ms of 10 s.
        let x0 = LEFT + (WIDTH - LEFT - 10.0) * 0.09;
        assert!(svg.contains(&format!(r#"x="{x0:.1}" y="{TOP}""#)), "{svg}");
        assert!(svg.contains(">10s</text>"));
    }

    #[test]
    fn throughput_counts_ok_operations_per_slice() {
        let h = History {
            ops: vec![
                // 2 s in 200 slices: 10 ms each.
                op(0, 0, 0, 1, Outcome::Ok { value: None }),
                op(1, 0, 0, 9, Outcome::Ok { value: None }),
                op(2, 0, 0, 30, Outcome::Fail { error: "x".into() }),
                op(3, 0, 0, 999_999, Outcome::Ok { value: None }),
            ],
            nemesis: vec![],
        };
        let t = throughput(&h, 2_000);
        assert_eq!(t.len(), SLICES);
        assert_eq!((t[0], t[1], t[SLICES - 1]), (2, 0, 1));
        assert_eq!(
            render(&h, 2_000).matches(r#"class="throughput""#).count(),
            2
        );
    }

    #[test]
    fn ticks_are_whole_seconds() {
        assert_eq!(tick_step(0), 1000);
        assert_eq!(tick_step(60_000), 6000);
        assert_eq!(tick_step(3_600_000), 360_000);
    }
}
