//! Ctrl-C during a backup to an account vault: the job is recorded as
//! cancelled (so it does not hold off `prune` for a day), the process exits
//! with 130, and the next backup completes and restores byte for byte.

use std::process::{Command, Stdio};
use std::time::Duration;

use cairn_tests::{bin, ok, stderr, wait_for, write_data, Cluster, Device};
use serde_json::Value;

const PW: &str = "interrupted pass words";

#[test]
fn ctrl_c_records_the_job_as_cancelled_and_leaves_a_usable_vault() {
    let cluster = Cluster::start(1, &[]);
    ok(
        "tier create",
        &cluster.nodes[0].admin(&["tier", "create", "one", "--replicas", "1"]),
    );
    cluster.create_user("dave", PW);
    let homes = cluster.scratch("devices");
    let device = Device::new(&homes.join("d"), "desk", PW);
    ok("login", &device.login(&cluster.nodes[0].url(), "dave"));
    device.json(&["vault", "request", "--tier", "one", "--name", "main"]);
    let data = cluster.scratch("data");
    for i in 0..24 {
        write_data(&data.join(format!("f{i:02}.bin")), 16 << 20, i);
    }

    let backup = Command::new(bin("cairn"))
        .args(["backup", "--vault", "main", data.to_str().expect("utf-8")])
        .env("XDG_CONFIG_HOME", device.config_dir())
        .env("XDG_CACHE_HOME", homes.join("d/cache"))
        .env("CAIRN_PASSWORD", PW)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn backup");
    // Interrupt once the job log shows the backup running.
    let job = wait_for("the backup job to start", Duration::from_secs(30), || {
        let jobs = device.json(&["jobs"]);
        jobs.as_array()?
            .iter()
            .find(|j| j["kind"] == "backup" && j["status"].is_null())
            .and_then(|j| j["id"].as_str().map(str::to_string))
    });
    let pid = backup.id().to_string();
    ok(
        "kill -INT",
        &Command::new("kill")
            .args(["-INT", &pid])
            .output()
            .expect("kill"),
    );
    let out = backup.wait_with_output().expect("backup exit");
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));

    let jobs = device.json(&["jobs"]);
    let record: &Value = jobs
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["id"] == job.as_str())
        .expect("the interrupted job");
    assert_eq!(record["status"], "cancelled", "{record}");
    assert!(
        record["error"]
            .as_str()
            .is_some_and(|e| e.contains("SIGINT")),
        "{record}"
    );

    // Nothing is running any more: prune sweeps at once, and the next
    // backup completes and restores exactly.
    device.json(&["prune", "--vault", "main"]);
    device.json(&["backup", "--vault", "main", data.to_str().expect("utf-8")]);
    device.restore_and_compare("main", "latest", &cluster.scratch("restore"), &data);
}
