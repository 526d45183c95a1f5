//! The downloads role (issue 13) with real processes: a client downloaded
//! over HTTP from a running cairnd, installed into a fresh HOME by the
//! node's install script, logs in without `--server`, backs up and
//! restores, and shows the cluster's brand in `--version` and `--help`;
//! an organization's download carries its brand; a node without the role
//! names the node that has it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cairn_tests::{bin, ok, same_tree, stdout, write_data, Cluster};
use serde_json::Value;

const PW: &str = "downloads pass words";

/// SHA-256 of a file, by coreutils (independent of the node's).
fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    stdout(&out)
        .split_whitespace()
        .next()
        .expect("sum")
        .to_string()
}

/// A command run as the user of `home`, with no profile or password
/// file from the test's environment.
fn as_user(home: &Path, program: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("CAIRN_PASSWORD", PW)
        .env_remove("CAIRN_CONFIG")
        .env_remove("CAIRN_PASSWORD_FILE")
        .env_remove("CAIRN_INSTALL_DIR")
        .stdin(Stdio::null());
    cmd
}

fn get_json(cluster: &Cluster, i: usize, path: &str) -> (u16, Value) {
    let (code, body) = cluster.nodes[i].get(path).expect("answer");
    (code, serde_json::from_str(&body).expect("JSON"))
}

#[test]
fn a_downloaded_client_is_branded_and_needs_no_server() {
    let root = tempfile::tempdir().expect("temp dir");
    let config = root.path().join("cairnd.toml");
    std::fs::write(
        &config,
        "[branding]\nproduct = \"Acme Backup\"\nsupport_url = \"https://help.acme.example\"\n",
    )
    .expect("config");
    let mut cluster = Cluster::start(0, &[]);
    cluster.add_configured_node(&[], &[], Some(config));
    cluster.add_node_with(&[], &["--roles", "auth,storage"]);
    let url1 = cluster.nodes[0].url();
    let url2 = cluster.nodes[1].url();

    // The index: the cairn beside cairnd, its checksum, the servers.
    let (code, index) = get_json(&cluster, 0, "/download/");
    assert_eq!(code, 200, "{index}");
    assert_eq!(index["branding"]["product"], "Acme Backup", "{index}");
    let servers: Vec<&str> = index["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(servers, [url1.as_str(), url2.as_str()], "the auth nodes");
    let builds = index["builds"].as_array().expect("builds");
    let native = format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    let build = builds
        .iter()
        .find(|b| b["platform"] == native.as_str())
        .unwrap_or_else(|| panic!("no {native} build in {index}"));
    let cairn = bin("cairn");
    assert_eq!(build["file"]["sha256"], sha256sum(&cairn).as_str());
    assert!(index.get("ca").is_none(), "plain HTTP: no CA, {index}");

    // The install script, checked against the index, run in a new HOME.
    let (code, script) = cluster.nodes[0]
        .get("/download/install.sh")
        .expect("script");
    assert_eq!(code, 200, "{script}");
    let home = root.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let script_path = root.path().join("install.sh");
    std::fs::write(&script_path, &script).expect("script");
    assert_eq!(
        index["install_script"]["sha256"],
        sha256sum(&script_path).as_str()
    );
    let sh = PathBuf::from("/bin/sh");
    let installed = as_user(&home, &sh, &[script_path.to_str().expect("utf-8")])
        .output()
        .expect("run install.sh");
    ok("install.sh", &installed);
    let client = home.join(".local/bin/cairn");
    assert_eq!(sha256sum(&client), sha256sum(&cairn), "the build installed");
    let client_toml = home.join("config/cairn/client.toml");
    let toml = std::fs::read_to_string(&client_toml).expect("client.toml");
    assert!(
        toml.contains(&url1) && toml.contains("Acme Backup"),
        "{toml}"
    );

    // Branded.
    let run =
        |args: &[&str]| -> Output { as_user(&home, &client, args).output().expect("run cairn") };
    let version = ok("--version", &run(&["--version"]));
    assert!(
        version.contains("Acme Backup") && version.contains("https://help.acme.example"),
        "{version}"
    );
    let help = ok("--help", &run(&["--help"]));
    assert!(help.starts_with("Acme Backup"), "{help}");

    // Logs in without --server, backs up, restores.
    ok(
        "tier",
        &cluster.nodes[0].admin(&["tier", "create", "one", "--replicas", "1"]),
    );
    cluster.create_user("dana", PW);
    let login = ok(
        "login",
        &run(&["login", "--user", "dana", "--device", "dl"]),
    );
    assert!(login.contains("logged in as dana"), "{login}");
    ok(
        "vault",
        &run(&["vault", "request", "--tier", "one", "--name", "main"]),
    );
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).expect("data");
    write_data(&data.join("a.bin"), 3 << 20, 1);
    let src = data.to_str().expect("utf-8");
    ok("backup", &run(&["backup", "--vault", "main", src]));
    let target = root.path().join("restored");
    let t = target.to_str().expect("utf-8");
    ok(
        "restore",
        &run(&["restore", "--vault", "main", "latest", "--target", t]),
    );
    let restored = target.join(data.strip_prefix("/").expect("absolute"));
    if let Err(e) = same_tree(&data, &restored) {
        panic!("restore differs: {e}");
    }

    // An organization's download carries its brand; an unknown one is 404.
    ok(
        "org",
        &cluster.nodes[0].admin(&[
            "org",
            "set",
            "north",
            "--display-name",
            "North Backup",
            "--support-url",
            "https://north.example/help",
        ]),
    );
    let (code, body) = cluster.nodes[0]
        .get("/download/client.toml?org=north")
        .expect("org config");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("product = \"North Backup\"") && body.contains("https://north.example/help"),
        "{body}"
    );
    let (code, org_index) = get_json(&cluster, 0, "/download/?org=north");
    assert_eq!(code, 200, "{org_index}");
    assert_eq!(org_index["branding"]["product"], "North Backup");
    let script_url = org_index["install_script"]["url"].as_str().expect("url");
    assert!(
        script_url.ends_with("/download/install.sh?org=north"),
        "{script_url}"
    );
    let (code, err) = get_json(&cluster, 0, "/download/?org=nobody");
    assert_eq!(
        (code, err["code"].as_str()),
        (404, Some("not_found")),
        "{err}"
    );
    let (code, err) = get_json(&cluster, 0, "/download/plan9-mips/cairn");
    assert_eq!(code, 404, "{err}");

    // Node 2 does not run the role: it names node 1.
    let (code, err) = get_json(&cluster, 1, "/download/");
    assert_eq!(code, 503, "{err}");
    assert_eq!(err["code"], "role_not_served", "{err}");
    let message = err["message"].as_str().expect("message");
    assert!(message.contains(&url1), "{message}");
}
