//! The SVG timeline of a run: one row per client with its operations as
//! bars over time (green ok, red failed, orange unknown), nemesis windows
//! shaded behind them and labelled. Pure: history in, SVG text out.

use std::fmt::Write;

use crate::history::{History, Outcome};

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 70.0;
const TOP: f64 = 40.0;
const ROW: f64 = 16.0;

/// Renders `history` of a run that lasted `duration_ms`.
pub fn render(history: &History, duration_ms: u64) -> String {
    let clients = history.ops.iter().map(|o| o.client + 1).max().unwrap_or(0);
    let height = TOP + ROW * clients as f64 + 30.0;
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
    let axis_y = TOP + ROW * clients as f64 + 14.0;
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
    fn ticks_are_whole_seconds() {
        assert_eq!(tick_step(0), 1000);
        assert_eq!(tick_step(60_000), 6000);
        assert_eq!(tick_step(3_600_000), 360_000);
    }
}
