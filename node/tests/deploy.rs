//! The operations package in `deploy/`, checked with the real tools: the
//! Prometheus configuration and rules (`promtool check` and the rules' unit
//! tests), a runbook in docs/OPERATIONS.md for every alert, the systemd
//! units (`systemd-analyze verify` against the real binaries, and their
//! command lines accepted by those binaries), and a real Prometheus scraping
//! a real three-node cluster with the shipped configuration: a SIGKILLed
//! storage node fires the node-down and under-replicated alerts, which
//! resolve when it returns, and every metric the rules and the Grafana
//! dashboard query is one the nodes export.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cairn_tests::authority::{set_license, Authority};
use common::storage::{random_chunks, serve, three_nodes, Device, Http, FAST};
use common::{free_port, stderr, stdout, wait_for, Node};
use serde_json::Value;

/// The repository's `deploy/` directory.
fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// `tool`, if it can run here. Under CI (`CI` set; `.ci/run` installs it)
/// a missing tool fails the test; elsewhere the test is skipped, loudly.
fn tool(name: &str, package: &str) -> Option<Command> {
    match Command::new(name).arg("--version").output() {
        Ok(o) if o.status.success() => Some(Command::new(name)),
        other => {
            let why = match other {
                Ok(o) => stderr(&o),
                Err(e) => e.to_string(),
            };
            if std::env::var_os("CI").is_some() {
                panic!(
                    "{name} not runnable under CI ({why}): install Debian's `{package}` package"
                );
            }
            eprintln!("SKIPPED: {name} not runnable ({why}); install Debian's `{package}` package");
            None
        }
    }
}

/// Runs `cmd`, failing the test with its output unless it succeeds.
fn succeed(what: &str, cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        o.status.success(),
        "{what} failed:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.{ext} in {}", dir.display());
    files
}

/// `(alert name, runbook annotation)` of every alert in the rule files.
fn alerts() -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for file in files_with(&deploy().join("prometheus/rules"), "yml") {
        let text = std::fs::read_to_string(&file).expect("rules");
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix("- alert: ") {
                // The name, without a trailing `# comment`.
                let name = name.split_whitespace().next().expect("alert name");
                out.push((name.to_string(), None));
            } else if let Some(link) = line.strip_prefix("runbook: ") {
                let last = out.last_mut().expect("a runbook before any alert");
                assert!(last.1.is_none(), "two runbooks for {}", last.0);
                last.1 = Some(link.trim().to_string());
            }
        }
    }
    out
}

#[test]
fn prometheus_config_and_rules_pass_promtool_and_their_unit_tests() {
    let dir = deploy().join("prometheus");
    let Some(_) = tool("promtool", "prometheus") else {
        return;
    };
    let promtool = || {
        let mut c = Command::new("promtool");
        c.current_dir(&dir);
        c
    };
    succeed(
        "promtool check config",
        promtool().args(["check", "config", "prometheus.yml"]),
    );
    let rules = files_with(&dir.join("rules"), "yml");
    succeed(
        "promtool check rules",
        promtool().args(["check", "rules"]).args(&rules),
    );
    let tests = files_with(&dir.join("tests"), "yml");
    let out = succeed(
        "promtool test rules",
        promtool().args(["test", "rules"]).args(&tests),
    );
    assert!(out.contains("SUCCESS"), "{out}");
    // Every alert is exercised by the unit tests, firing and not firing.
    let tests_text: String = tests
        .iter()
        .map(|t| std::fs::read_to_string(t).expect("test file"))
        .collect();
    for (alert, _) in alerts() {
        let mut blocks = tests_text
            .split("alertname: ")
            .skip(1)
            .filter(|b| b.split_whitespace().next() == Some(alert.as_str()));
        let (mut fires, mut quiet) = (false, false);
        for b in blocks.by_ref() {
            let expect = b.split("alertname: ").next().unwrap_or(b);
            if expect.contains("exp_alerts: []") {
                quiet = true;
            } else if expect.contains("exp_labels") {
                fires = true;
            }
        }
        assert!(
            fires && quiet,
            "{alert}: firing tested {fires}, not firing tested {quiet}"
        );
    }
}

#[test]
fn every_alert_links_a_runbook_section_of_the_operations_guide() {
    let guide = std::fs::read_to_string(deploy().join("../docs/OPERATIONS.md")).expect("guide");
    // GitHub's heading anchors: lower case, spaces to dashes, punctuation dropped.
    let anchors: BTreeSet<String> = guide
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let all = alerts();
    assert!(all.len() >= 15, "{all:?}");
    for (alert, runbook) in all {
        let runbook = runbook.unwrap_or_else(|| panic!("{alert} has no runbook annotation"));
        let anchor = runbook
            .strip_prefix("docs/OPERATIONS.md#")
            .unwrap_or_else(|| panic!("{alert}: runbook {runbook} is not in docs/OPERATIONS.md"));
        assert_eq!(
            anchor,
            format!("runbook-{}", alert.to_lowercase()),
            "{alert}: runbook anchors are named after the alert"
        );
        assert!(
            anchors.contains(anchor),
            "{alert}: docs/OPERATIONS.md has no section `Runbook: {alert}`"
        );
    }
}

#[test]
fn systemd_units_verify_and_their_command_lines_parse() {
    let Some(_) = tool("systemd-analyze", "systemd") else {
        return;
    };
    // A scratch root with the distribution's units (targets the ours order
    // against), ours, and the real binaries where ExecStart expects them.
    let root = tempfile::tempdir().expect("tempdir");
    let units = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&units).expect("units dir");
    std::fs::create_dir_all(root.path().join("usr/lib/systemd")).expect("lib dir");
    succeed(
        "copy the system units",
        Command::new("cp")
            .args(["-a", "/usr/lib/systemd/system"])
            .arg(root.path().join("usr/lib/systemd")),
    );
    let services = files_with(&deploy().join("systemd"), "service");
    for unit in &services {
        let text = std::fs::read_to_string(unit).expect("unit");
        // Every unit stops in bounded time and gains no privileges. Server
        // units also get a read-only system and a private /tmp; the
        // device's daemon cannot: it runs the user's before/after commands
        // and reads (and restores to) wherever the user says.
        let device = text.contains("ExecStart=/usr/local/bin/cairn daemon");
        let mut required = vec!["NoNewPrivileges=yes", "LimitNOFILE=", "TimeoutStopSec="];
        if !device {
            required.extend(["ProtectSystem=strict", "PrivateTmp=yes", "User=cairn"]);
        }
        for key in required {
            assert!(text.contains(key), "{}: missing {key}", unit.display());
        }
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("{}: no ExecStart", unit.display()));
        let mut words = exec.split_whitespace();
        let program = Path::new(words.next().expect("program"));
        let args: Vec<&str> = words.collect();
        let real = match program.file_name().and_then(|n| n.to_str()) {
            Some("cairnd") => PathBuf::from(common::CAIRND),
            Some(other) => cairn_tests::bin(other),
            None => panic!("{}: ExecStart has no program", unit.display()),
        };
        let inside = root
            .path()
            .join(program.strip_prefix("/").expect("absolute ExecStart"));
        std::fs::create_dir_all(inside.parent().expect("bin dir")).expect("bin dir");
        std::fs::copy(&real, &inside).expect("copy binary");
        // The command line names a real subcommand with flags it accepts.
        succeed(
            &format!("{} {} --help", program.display(), args.join(" ")),
            Command::new(&real).args(&args).arg("--help"),
        );
        std::fs::copy(unit, units.join(unit.file_name().expect("name"))).expect("copy unit");
    }
    for unit in &services {
        let name = unit.file_name().and_then(|n| n.to_str()).expect("name");
        let o = Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", root.path().display()))
            .arg(name)
            .output()
            .expect("systemd-analyze");
        assert!(
            o.status.success() && stderr(&o).trim().is_empty(),
            "systemd-analyze verify {name}:\n{}{}",
            stdout(&o),
            stderr(&o)
        );
    }
}

/// A Prometheus server on loopback, killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with the shipped configuration and rules, scraping
    /// `targets`. Only intervals shrink for the test: scrapes and rule
    /// evaluation every second, and every `for:` five seconds (when alerts
    /// fire after their `for:` is what the rules' unit tests check).
    fn start(targets: &[String]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let shipped = deploy().join("prometheus");
        let config = std::fs::read_to_string(shipped.join("prometheus.yml"))
            .expect("config")
            .replace("scrape_interval: 15s", "scrape_interval: 1s")
            .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
            .replace("refresh_interval: 30s", "refresh_interval: 1s");
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write config");
        std::fs::create_dir_all(dir.path().join("rules")).expect("rules dir");
        for rules in files_with(&shipped.join("rules"), "yml") {
            let text: String = std::fs::read_to_string(&rules)
                .expect("rules")
                .lines()
                .map(|l| match l.trim_start().strip_prefix("for: ") {
                    Some(_) => format!("{}for: 5s\n", &l[..l.len() - l.trim_start().len()]),
                    None => format!("{l}\n"),
                })
                .collect();
            std::fs::write(
                dir.path()
                    .join("rules")
                    .join(rules.file_name().expect("name")),
                text,
            )
            .expect("write rules");
        }
        std::fs::create_dir_all(dir.path().join("targets")).expect("targets dir");
        let list = serde_json::json!([{ "targets": targets }]);
        std::fs::write(dir.path().join("targets/cairn.json"), list.to_string()).expect("targets");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .current_dir(dir.path())
            .arg("--config.file=prometheus.yml")
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    /// `GET path` on Prometheus's API; its `data` on success.
    fn api(&self, path: &str) -> Option<Value> {
        let (code, body) = cairn_tests::http(self.port, "GET", path, &[], b"")?;
        let v: Value = serde_json::from_slice(&body).ok()?;
        (code == 200 && v["status"] == "success").then(|| v["data"].clone())
    }

    /// The result vector of an instant query.
    fn query(&self, expr: &str) -> Option<Vec<Value>> {
        let encoded: String = expr
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        self.api(&format!("/api/v1/query?query={encoded}"))?["result"]
            .as_array()
            .cloned()
    }

    /// Names of the alerts in state `firing`.
    fn firing(&self) -> BTreeSet<String> {
        self.api("/api/v1/alerts")
            .and_then(|d| d["alerts"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter(|a| a["state"] == "firing")
            .filter_map(|a| a["labels"]["alertname"].as_str().map(String::from))
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- prometheus log ---\n{}", self.log());
        }
    }
}

/// Metric names a PromQL expression reads (recording-rule names included).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    let mut in_string = false;
    let mut in_braces = 0u32;
    for c in expr.chars().chain(std::iter::once(' ')) {
        if in_string {
            in_string = c != '"';
            continue;
        }
        if c.is_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        // A word outside label matchers and strings, followed by anything
        // but `(` (a function), is a metric name if it looks like ours.
        let metric = word.starts_with("cairn") || word.starts_with("process_") || word == "up";
        if in_braces == 0 && c != '(' && metric {
            names.insert(std::mem::take(&mut word));
        }
        word.clear();
        match c {
            '"' => in_string = true,
            '{' => in_braces += 1,
            '}' => in_braces = in_braces.saturating_sub(1),
            _ => {}
        }
    }
    names
}

/// Every PromQL expression of the rule files (`expr: …` on one line, or a
/// folded `expr: >` block of more indented lines).
fn rule_exprs() -> Vec<String> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut exprs = Vec::new();
    for file in files_with(&deploy().join("prometheus/rules"), "yml") {
        let text = std::fs::read_to_string(&file).expect("rules");
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            let Some(rest) = line.trim_start().strip_prefix("expr:") else {
                continue;
            };
            let mut expr = rest.trim().to_string();
            // A block scalar (`>`, `|`, with or without a chomping sign).
            if expr.starts_with('>') || expr.starts_with('|') {
                expr.clear();
                while let Some(next) = lines.next_if(|n| indent(n) > indent(line)) {
                    expr.push_str(next.trim());
                    expr.push(' ');
                }
            }
            exprs.push(expr);
        }
    }
    exprs
}

/// Every PromQL expression of the Grafana dashboards.
fn dashboard_exprs() -> Vec<String> {
    let mut exprs = Vec::new();
    for file in files_with(&deploy().join("grafana"), "json") {
        let dash: Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("dashboard"))
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        fn walk(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(e)) = m.get("expr") {
                        out.push(e.clone());
                    }
                    m.values().for_each(|v| walk(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        walk(&dash, &mut exprs);
    }
    assert!(exprs.len() >= 20, "{exprs:?}");
    exprs
}

#[test]
fn every_dashboard_query_parses() {
    let Some(_) = tool("promtool", "prometheus") else {
        return;
    };
    // promtool parses PromQL only inside rules: one recording rule per query.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in dashboard_exprs().iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(expr).expect("quote")
        ));
    }
    let file = dir.path().join("dashboard.yml");
    std::fs::write(&file, rules).expect("write");
    succeed(
        "promtool check rules (dashboard queries)",
        Command::new("promtool").args(["check", "rules"]).arg(&file),
    );
}

#[test]
fn real_prometheus_fires_node_down_and_under_replicated_and_resolves_them() {
    let Some(_) = tool("prometheus", "prometheus") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut nodes = three_nodes(tmp.path());
    let http = Http::new();
    let dev = Device::create(&http, &nodes[0], "sre", "triple", 3, None);
    let chunks = random_chunks(10, 64 * 1024);
    let all: Vec<_> = chunks.iter().collect();
    let reply = dev.upload(&http, &nodes[0], &all);
    assert_eq!(reply.stored, 10, "{reply:?}");
    // A real license, so the lease metrics exist as they do in production.
    let authority = Authority::start(tmp.path(), 60);
    let serial = authority.create_serial("sre");
    set_license(&nodes[0], &serial, &authority.url(), 5, 3600);
    wait_for(
        "the cluster holds its lease",
        Duration::from_secs(30),
        || {
            let status = nodes[0].status()?;
            (status.license?.mode == "valid").then_some(())
        },
    );
    let targets: Vec<String> = nodes.iter().map(Node::listen).collect();
    let prom = Prometheus::start(&targets);

    wait_for(
        "Prometheus scrapes three nodes",
        Duration::from_secs(60),
        || {
            let up = prom.query("sum(up{job=\"cairn\"})")?;
            (up.first()?["value"][1] == "3").then_some(())
        },
    );
    // Leader-only gauges come from one node: no sentinels to sum.
    wait_for(
        "one under-replicated series",
        Duration::from_secs(30),
        || {
            let r = prom.query("count(cairn_storage_under_replicated_chunks)")?;
            (r.first()?["value"][1] == "1").then_some(())
        },
    );
    // Before the first scrapes some alerts (no leader) may fire; a healthy
    // cluster settles to none.
    wait_for(
        "no alerts on a healthy cluster",
        Duration::from_secs(30),
        || prom.firing().is_empty().then_some(()),
    );

    // Every metric the rules and the dashboard read is one the nodes export
    // (or a recording rule, or Prometheus's own `up`).
    let exported: BTreeSet<String> = prom
        .api("/api/v1/label/__name__/values")
        .and_then(|v| v.as_array().cloned())
        .expect("metric names")
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let mut recorded = BTreeSet::new();
    let mut read = BTreeSet::new();
    for file in files_with(&deploy().join("prometheus/rules"), "yml") {
        let text = std::fs::read_to_string(&file).expect("rules");
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix("- record: ") {
                recorded.insert(name.to_string());
            }
        }
    }
    for expr in rule_exprs() {
        read.extend(metric_names(&expr));
    }
    for expr in dashboard_exprs() {
        read.extend(metric_names(&expr));
    }
    assert!(read.len() >= 30, "too few metric names found: {read:?}");
    for name in &read {
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|b| exported.contains(&format!("{b}_bucket")))
            })
            .unwrap_or(name);
        assert!(
            exported.contains(name) || exported.contains(base) || recorded.contains(name),
            "`{name}` is read by a rule or the dashboard but no node exports it"
        );
    }

    // SIGKILL a storage node: it is down, and its copies are missing.
    let victim = nodes.iter().position(|n| n.id == 3).expect("node 3");
    nodes[victim].kill();
    wait_for(
        "node-down and under-replicated alerts firing",
        Duration::from_secs(90),
        || {
            let firing = prom.firing();
            (firing.contains("CairnNodeDown") && firing.contains("CairnUnderReplicated"))
                .then_some(())
        },
    );
    let down = prom
        .query("ALERTS{alertname=\"CairnNodeDown\",alertstate=\"firing\"}")
        .expect("alerts");
    assert_eq!(down.len(), 1, "{down:?}");
    assert_eq!(
        down[0]["metric"]["instance"],
        nodes[victim].listen().as_str()
    );

    // It returns: repair restores the copies and both alerts resolve.
    serve(&mut nodes[victim], FAST);
    nodes[victim].wait_ready();
    wait_for("alerts resolved", Duration::from_secs(90), || {
        let firing = prom.firing();
        (!firing.contains("CairnNodeDown") && !firing.contains("CairnUnderReplicated"))
            .then_some(())
    });
}

#[test]
fn metric_names_are_read_from_expressions() {
    let names = metric_names(
        r#"sum by (le) (rate(cairn_http_request_duration_seconds_bucket{route=~"/api/v1/admin/.*",x="cairn_no"}[5m])) / cairn:x:ratio and up{job="cairn"}"#,
    );
    let expect: BTreeSet<String> = [
        "cairn_http_request_duration_seconds_bucket",
        "cairn:x:ratio",
        "up",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(names, expect);
}

#[test]
fn json_logs_are_one_object_per_line_and_text_logs_have_no_ansi_codes_off_a_terminal() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut json = Node::new(tmp.path(), 1);
    json.extra = vec!["--log-format".into(), "json".into()];
    json.spawn_dev();
    json.wait_ready();
    json.terminate();
    let log = std::fs::read_to_string(json.log_dir.join("node1.1.err")).expect("log");
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 2, "{log}");
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
    }
    assert!(log.contains("cairnd listening"), "{log}");

    let mut text = Node::new(tmp.path(), 2);
    text.spawn_dev();
    text.wait_ready();
    text.terminate();
    let log = std::fs::read_to_string(text.log_dir.join("node2.1.err")).expect("log");
    assert!(log.contains("cairnd listening"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a log file: {log:?}"
    );
}
