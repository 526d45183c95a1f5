//! The web console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver by fantoccini), against a real
//! two-node cluster, with the browser talking only to node 2 through a
//! recording TCP proxy: a cluster admin signs in, creates organizations,
//! their org admins and a user; the user's password set in the page is the
//! one the Rust KDF derives (a real `cairn login` works with it); the
//! user's `cairn daemon` connects to node 1 and shows online; the admin
//! clicks "back up now" on the device's page and watches the job go to
//! `succeeded` live (server-sent events), dispatched through node 2 to the
//! device on node 1; the user signs in, sees only their devices and jobs
//! and dispatches a restore that writes the files on the device
//! byte-exact; another organization's admin sees none of it while the
//! user's own org admin does; no password byte ever crossed the proxy;
//! posts without the form's CSRF token are refused; pages carry a strict
//! CSP and the session cookie is HttpOnly and SameSite=Strict.
//!
//! One browser session serves the whole scenario (signing out and in).
//! Screenshots of the main pages (1280×800, and the user's page at phone
//! width) are written to `$CAIRN_SCREENSHOTS` when set (`docs/screenshots`
//! is refreshed that way), else to the test's temp dir.

use std::net::TcpStream;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_proto::console::OrgInfo;
use cairn_tests::{
    contains, free_port, http, http_with_head, ok, same_tree, stderr, totp_secret, write_data,
    Cluster, Daemon, Device, Node, RecordingProxy,
};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{json, Value};

const ROOT_PW: &str = "root-Pa55word-of-the-cluster";
const ACME_PW: &str = "acme-admin-Secret-77";
const GLOBEX_PW: &str = "globex-admin-Secret-88";
const ALICE_PW: &str = "alice-correct-horse-battery";
const BOB_PW: &str = "bob-Staple-99";
/// A file name only the sealed listing carries: never browsed, never
/// ticked, so it must never cross the proxy in plaintext.
const UNTICKED: &str = "unticked-secret-name.txt";

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (apt install chromium chromium-driver; scripts/install-deps.sh)");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--window-size=1280,800",
            format!("--user-data-dir={}", profile.display())] }
    }))
    .expect("caps");
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("webdriver session")
}

type Res<T = ()> = Result<T, fantoccini::error::CmdError>;

/// The scenario's browser and where it points.
struct Page<'a> {
    c: &'a Client,
    base: String,
    shots: PathBuf,
}

impl Page<'_> {
    async fn goto(&self, path: &str) -> Res {
        self.c.goto(&format!("{}{path}", self.base)).await
    }

    async fn text(&self) -> Res<String> {
        self.c.find(Locator::Css("body")).await?.text().await
    }

    async fn fill(&self, css: &str, value: &str) -> Res {
        let e = self.c.find(Locator::Css(css)).await?;
        e.clear().await?;
        e.send_keys(value).await
    }

    async fn click(&self, css: &str) -> Res {
        self.c.find(Locator::Css(css)).await?.click().await
    }

    /// Waits until the page (after a submit) shows `needle` in its body.
    async fn wait_text(&self, needle: &str) -> Res<String> {
        let started = Instant::now();
        loop {
            let text = self.text().await.unwrap_or_default();
            if text.contains(needle) {
                return Ok(text);
            }
            if started.elapsed() > Duration::from_secs(60) {
                panic!("page never showed {needle:?}; it shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// On a job's page: the job was running when the page loaded (it
    /// follows the event stream), and the stream's last event ended it;
    /// answers the status the page shows.
    async fn watch_job(&self) -> Res<String> {
        let live = self.job_page().await?;
        assert!(
            live.attr("data-events").await?.is_some(),
            "the job had ended before its page loaded: nothing to follow live"
        );
        let started = Instant::now();
        loop {
            if let Some(ended) = live.attr("data-ended").await? {
                let shown = self
                    .c
                    .find(Locator::Css("#live [data-field=status]"))
                    .await?
                    .text()
                    .await?;
                assert_eq!(shown, ended);
                return Ok(ended);
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "the job never ended on its page: {}",
                self.text().await?
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for a job's page (after a dispatch's redirect): its job card.
    async fn job_page(&self) -> Res<fantoccini::elements::Element> {
        self.c
            .wait()
            .at_most(Duration::from_secs(60))
            .for_element(Locator::Css("#live"))
            .await
    }

    /// On a job's page: the kind it shows (and the item).
    async fn job_kind(&self) -> Res<String> {
        self.c.find(Locator::Css("#live dd")).await?.text().await
    }

    /// On a job's page: follows it live if it still ran when the page
    /// loaded, else reads the status it ended with; answers that status.
    async fn job_status(&self) -> Res<String> {
        let live = self.job_page().await?;
        if live.attr("data-events").await?.is_some() {
            return self.watch_job().await;
        }
        self.c
            .find(Locator::Css("#live [data-field=status]"))
            .await?
            .text()
            .await
    }

    /// Loads `path` until it shows `needle` (what the page shows changes
    /// only on a reload, like a device coming online).
    async fn reload_until(&self, path: &str, needle: &str) -> Res<String> {
        let started = Instant::now();
        loop {
            self.goto(path).await?;
            let text = self.text().await.unwrap_or_default();
            if text.contains(needle) {
                return Ok(text);
            }
            if started.elapsed() > Duration::from_secs(60) {
                panic!("{path} never showed {needle:?}; it shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn sign_in(&self, kind: &str, name: &str, password: &str) -> Res {
        self.goto("/console/login").await?;
        self.click(&format!("input[name=kind][value={kind}]"))
            .await?;
        self.fill("#f-name", name).await?;
        self.fill("#password", password).await?;
        self.click("button[type=submit]").await?;
        self.wait_text("Sign out").await.map(drop)
    }

    async fn sign_out(&self) -> Res {
        self.click("header form button").await?;
        self.wait_text("Sign in to Cairn").await.map(drop)
    }

    async fn shot(&self, name: &str) -> Res {
        let png = self.c.screenshot().await?;
        assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write screenshot");
        Ok(())
    }
}

/// `POST /api/v1/login` with a login key derived by the Rust KDF from
/// `password` and the account's parameters: what `cairn login` sends.
fn device_login(port: u16, user: &str, password: &str, device: &str) -> u16 {
    let (code, body) = http(
        port,
        "POST",
        "/api/v1/login/params",
        &[("content-type", "application/json")],
        json!({ "user": user }).to_string().as_bytes(),
    )
    .expect("params");
    assert_eq!(code, 200);
    let kdf: cairn_proto::api::Kdf = serde_json::from_slice(&body).expect("kdf");
    let keys = cairn_proto::kdf::derive(
        password.as_bytes(),
        &kdf.salt,
        cairn_proto::kdf::Cost {
            memory_kib: kdf.memory_kib,
            iterations: kdf.iterations,
            parallelism: kdf.parallelism,
        },
    )
    .expect("derive");
    let login = json!({ "user": user, "login_key": hex::encode(keys.login), "device": device });
    http(
        port,
        "POST",
        "/api/v1/login",
        &[("content-type", "application/json")],
        login.to_string().as_bytes(),
    )
    .expect("login")
    .0
}

fn orgs(node: &Node) -> Vec<String> {
    let auth = format!("Bearer {}", node.admin_token());
    let (code, body) = http(
        node.port,
        "GET",
        "/api/v1/admin/orgs",
        &[("authorization", &auth)],
        b"",
    )
    .expect("orgs");
    assert_eq!(code, 200);
    let orgs: Vec<OrgInfo> = serde_json::from_slice(&body).expect("orgs json");
    orgs.into_iter().map(|o| o.name).collect()
}

/// What the scenario works with besides the browser.
struct World<'a> {
    node1: &'a Node,
    node2: &'a Node,
    proxy: &'a RecordingProxy,
    dir: &'a Path,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let cluster = Cluster::start(2, &[]);
    let dir = cluster.scratch("web");
    let (node1, node2) = (&cluster.nodes[0], &cluster.nodes[1]);
    let out = node1.admin(&["tier", "create", "one", "--replicas", "1"]);
    assert!(out.status.success(), "tier create: {}", stderr(&out));

    // Bootstrap with the admin token: the first cluster admin, and bob (of
    // the default organization) with a device that logged in.
    let pw_file = |name: &str, pw: &str| {
        let p = dir.join(format!("{name}.pw"));
        std::fs::write(&p, format!("{pw}\n")).expect("pw");
        p.display().to_string()
    };
    let root_pw = pw_file("root", ROOT_PW);
    let out = node1.admin(&[
        "operator",
        "create",
        "root",
        "--role",
        "cluster-admin",
        "--password-file",
        &root_pw,
    ]);
    assert!(out.status.success(), "operator create: {}", stderr(&out));
    let bob_pw = pw_file("bob", BOB_PW);
    let out = node1.admin(&["user", "create", "bob", "--password-file", &bob_pw]);
    assert!(out.status.success(), "user create: {}", stderr(&out));
    assert_eq!(device_login(node1.port, "bob", BOB_PW, "bob-pc"), 200);

    let proxy = RecordingProxy::start(node2.port);
    let shots =
        std::env::var_os("CAIRN_SCREENSHOTS").map_or_else(|| dir.join("shots"), PathBuf::from);
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let driver = Driver::start();
    let profile = dir.join("profile");
    let c = browser(&driver, &profile).await;
    let page = Page {
        c: &c,
        base: format!("http://127.0.0.1:{}", proxy.port),
        shots,
    };
    let world = World {
        node1,
        node2,
        proxy: &proxy,
        dir: &dir,
    };
    // Close the session whatever happens (an assertion's panic too: else
    // Chromium outlives chromedriver), then report.
    let result = AssertUnwindSafe(scenario(&page, &world))
        .catch_unwind()
        .await;
    let _ = c.close().await;
    drop(driver);
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            cluster.nodes.iter().for_each(Node::dump_logs);
            panic!("browser scenario failed: {e}");
        }
        Err(panic) => {
            cluster.nodes.iter().for_each(Node::dump_logs);
            std::panic::resume_unwind(panic);
        }
    }
}

/// alice's laptop: a real `cairn login` through node 1 with the password
/// the page set, a vault, an item of `data`, and its `cairn daemon`.
fn laptop(w: &World, data: &Path) -> (Device, String, Daemon) {
    let laptop = Device::new(&w.dir.join("laptop"), "laptop", ALICE_PW);
    ok("alice logs in", &laptop.login(&w.node1.url(), "alice"));
    laptop.json(&["vault", "request", "--tier", "one", "--name", "main"]);
    std::fs::create_dir_all(data.join("sub")).expect("sub");
    write_data(&data.join("big.bin"), 24 << 20, 7);
    write_data(&data.join("sub").join("small.bin"), 70 << 10, 8);
    write_data(&data.join("sub").join(UNTICKED), 3 << 10, 9);
    let path = data.to_str().expect("utf-8");
    laptop.json(&["item", "set", "home", "--vault", "main", path]);
    // A job that runs until it is cancelled (its before command waits).
    laptop.json(&[
        "item", "set", "slow", "--vault", "main", path, "--before", "sleep 20",
    ]);
    laptop.json(&["retention", "set", "--vault", "main", "--keep-last", "3"]);
    let profile: Value = serde_json::from_str(
        &std::fs::read_to_string(laptop.config_dir().join("cairn").join("profile.json"))
            .expect("profile"),
    )
    .expect("profile json");
    let id = profile["device"].as_str().expect("device id").to_string();
    let log = std::fs::File::create(w.dir.join("daemon.log")).expect("daemon log");
    let daemon = Daemon::spawn(
        laptop
            .command(&["daemon", "--poll", "1s"])
            .env("CAIRN_HEARTBEAT_SECS", "1")
            .stdout(Stdio::null())
            .stderr(log),
    );
    (laptop, id, daemon)
}

async fn scenario(page: &Page<'_>, w: &World<'_>) -> Res {
    let node = w.node2;
    // Unauthenticated: the console sends the browser to the login form.
    page.goto("/").await?;
    page.wait_text("Sign in to Cairn").await?;
    page.shot("login").await?;

    // The cluster admin builds two organizations, an org admin for each
    // and a user of acme, all through the pages.
    page.sign_in("operator", "root", ROOT_PW).await?;
    let dash = page.wait_text("Health").await?;
    assert!(dash.contains("healthy"), "{dash}");
    page.shot("dashboard").await?;
    for (org, display) in [("acme", "Acme Corp"), ("globex", "Globex")] {
        page.goto("/console/orgs").await?;
        page.fill("#f-name", org).await?;
        page.fill("#f-display_name", display).await?;
        page.click("form[action='/console/orgs'] button[type=submit]")
            .await?;
        page.wait_text(display).await?;
    }
    for (name, org, pw) in [
        ("acme-admin", "acme", ACME_PW),
        ("globex-admin", "globex", GLOBEX_PW),
    ] {
        page.goto("/console/operators").await?;
        page.fill("#f-name", name).await?;
        page.click("#f-role option[value=org-admin]").await?;
        page.click(&format!("#f-org option[value={org}]")).await?;
        page.fill("#new-password", pw).await?;
        page.click("form[action='/console/operators'] button[type=submit]")
            .await?;
        page.wait_text(name).await?;
    }
    page.goto("/console/users").await?;
    page.fill("#f-name", "alice").await?;
    page.click("#f-org option[value=acme]").await?;
    page.fill("#new-password", ALICE_PW).await?;
    page.click("form[action='/console/users'] button[type=submit]")
        .await?;
    let users = page.wait_text("alice").await?;
    assert!(users.contains("bob"), "the cluster admin sees every user");
    page.shot("users").await?;
    account_switches(page, w.node1).await?;
    own_totp(page).await?;

    // The page derived alice's login key exactly as the Rust KDF does: her
    // laptop logs in with `cairn login` and her password; its daemon
    // connects to node 1 and shows online, with its version.
    let data = w.dir.join("data");
    let (laptop, laptop_id, daemon) = laptop(w, &data);
    let device_page = format!("/console/devices/{laptop_id}");
    page.reload_until("/console/devices", "online").await?;
    page.click(&format!("a[href='{device_page}']")).await?;
    let text = page
        .wait_text(&format!(
            "online via node 1, cairn {}",
            env!("CARGO_PKG_VERSION")
        ))
        .await?;
    assert!(
        text.contains("Back up now") && text.contains("Restore"),
        "{text}"
    );
    page.fill("#f-dir", data.to_str().expect("utf-8")).await?;
    page.click("form[role=search] button[type=submit]").await?;
    page.wait_text("big.bin").await?;
    page.shot("device").await?;

    // "Back up now" of the item, dispatched through node 2 to the device
    // on node 1: the job's page follows it live to `succeeded`.
    page.click("#backup button[type=submit]").await?;
    page.job_page().await?;
    page.shot("job-live").await?;
    let job = page.watch_job().await?;
    assert_eq!(job, "succeeded");
    dispatcher_clicks(page, &device_page).await?;

    // CSRF: the session cookie alone does not make a post; the page's
    // token does (the same request otherwise).
    let cookie = page.c.get_named_cookie("cairn_session").await?;
    assert_eq!(cookie.http_only(), Some(true), "HttpOnly");
    assert_eq!(
        format!("{:?}", cookie.same_site()),
        "Some(Strict)",
        "SameSite=Strict"
    );
    assert_ne!(cookie.secure(), Some(true), "no Secure on loopback");
    page.goto("/console/orgs").await?;
    let csrf = page
        .c
        .find(Locator::Css(
            "form[action='/console/orgs'] input[name=csrf]",
        ))
        .await?
        .attr("value")
        .await?
        .expect("csrf field");
    let session = format!("cairn_session={}", cookie.value());
    let post = |body: String| {
        http(
            node.port,
            "POST",
            "/console/orgs",
            &[
                ("cookie", session.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        )
        .expect("post")
        .0
    };
    assert_eq!(post("name=evil".into()), 403, "no token");
    assert_eq!(
        post(format!("name=evil&csrf={}", "0".repeat(64))),
        403,
        "wrong token"
    );
    assert!(!orgs(node).contains(&"evil".to_string()));
    assert_eq!(
        post(format!("name=fine&csrf={csrf}")),
        303,
        "with the page's token"
    );
    assert!(orgs(node).contains(&"fine".to_string()));
    // A dispatch needs the form's token too.
    let dispatch = |body: &str| {
        http(
            node.port,
            "POST",
            &format!("{device_page}/backup"),
            &[
                ("cookie", session.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            body.as_bytes(),
        )
        .expect("post")
        .0
    };
    assert_eq!(dispatch("item=home"), 403, "a dispatch without the token");

    page.goto("/console/jobs").await?;
    page.wait_text("laptop").await?;
    page.shot("jobs").await?;
    page.sign_out().await?;

    // alice signs in through the page: her devices and jobs only.
    page.sign_in("user", "alice", ALICE_PW).await?;
    let home = page.wait_text("laptop").await?;
    assert!(home.contains("web console"), "{home}");
    assert!(home.contains("online"), "{home}");
    assert!(!home.contains("bob-pc"), "another account's device: {home}");
    page.shot("user-devices").await?;
    page.c.set_window_size(390, 844).await?;
    page.goto("/console/").await?;
    page.wait_text("laptop").await?;
    let overflow = page
        .c
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth;",
            vec![],
        )
        .await?;
    assert!(
        overflow.as_i64().unwrap_or(1) <= 0,
        "no sideways scrolling at phone width: {overflow}"
    );
    page.shot("user-devices-phone").await?;
    page.c.set_window_size(1280, 800).await?;
    page.goto("/console/jobs").await?;
    let jobs = page.wait_text("laptop").await?;
    assert!(!jobs.contains("bob"), "another account's jobs: {jobs}");

    // alice restores the latest snapshot onto the laptop from her page:
    // the device writes the files, byte-exact.
    page.goto(&device_page).await?;
    page.wait_text("online via node 1").await?;
    let target = w.dir.join("restored");
    page.fill("#f-r-target", target.to_str().expect("utf-8"))
        .await?;
    page.click("#restore button[type=submit]").await?;
    assert_eq!(page.watch_job().await?, "succeeded");
    let restored = target.join(data.strip_prefix("/").expect("absolute"));
    same_tree(&data, &restored).expect("restored byte-exact");
    snapshot_files(page, w, &device_page, &data).await?;
    page.sign_out().await?;

    // Another organization's admin sees none of alice's; her own org
    // admin does.
    page.sign_in("operator", "globex-admin", GLOBEX_PW).await?;
    for path in [
        "/console/users",
        "/console/devices",
        "/console/jobs",
        device_page.as_str(),
    ] {
        page.goto(path).await?;
        let text = page.wait_text("Sign out").await?;
        for hidden in ["alice", "laptop", "bob"] {
            assert!(
                !text.contains(hidden),
                "globex-admin sees {hidden} on {path}: {text}"
            );
        }
    }
    page.sign_out().await?;
    page.sign_in("operator", "acme-admin", ACME_PW).await?;
    page.goto("/console/devices").await?;
    let devices = page.wait_text("laptop").await?;
    assert!(
        !devices.contains("bob-pc"),
        "acme-admin sees the default org: {devices}"
    );
    page.sign_out().await?;

    drop(daemon);
    drop(laptop);

    // No password crossed the wire: only names and derived keys did.
    let sent = w.proxy.sent();
    assert!(
        contains(&sent, b"alice") && contains(&sent, b"login_key"),
        "the proxy recorded the logins"
    );
    for pw in [ROOT_PW, ACME_PW, GLOBEX_PW, ALICE_PW] {
        assert!(
            !contains(&sent, pw.as_bytes()),
            "a password crossed the proxy"
        );
    }
    let received = w.proxy.received();
    assert!(
        contains(&received, b"\"sealed\""),
        "the proxy relayed a sealed listing"
    );
    for seen in [&sent, &received] {
        assert!(
            !contains(seen, UNTICKED.as_bytes()),
            "a name of the sealed listing crossed the proxy in plaintext"
        );
    }

    // Every console answer carries the strict CSP.
    let (code, head, _) =
        http_with_head(node.port, "GET", "/console/login", &[], b"").expect("login page");
    assert_eq!(code, 200);
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains(
            "content-security-policy: default-src 'none'; script-src 'self' 'wasm-unsafe-eval'"
        ),
        "{head}"
    );
    assert!(!head.contains("unsafe-inline"), "{head}");
    assert!(
        head.contains("set-cookie: cairn_login_csrf=")
            && head.contains("httponly; samesite=strict"),
        "{head}"
    );
    Ok(())
}

/// The device page's Cancel ends a running job as `cancelled`; Retention
/// and Check (`--read-data`) run to `succeeded`; all three are in the job
/// list.
async fn dispatcher_clicks(page: &Page<'_>, device_page: &str) -> Res {
    page.goto(device_page).await?;
    page.wait_text("online via node 1").await?;
    page.click("#f-b-item option[value=slow]").await?;
    page.click("#backup button[type=submit]").await?;
    page.job_page().await?;
    let url = page.c.current_url().await?;
    let job = url
        .path()
        .rsplit('/')
        .next()
        .expect("a job page")
        .to_owned();
    page.goto(device_page).await?;
    page.click(&format!("button[aria-label='Cancel job {job}']"))
        .await?;
    page.wait_text("online via node 1").await?;
    page.reload_until(&format!("/console/jobs/{job}"), "cancelled")
        .await?;
    assert_eq!(page.job_status().await?, "cancelled");

    page.goto(device_page).await?;
    page.click("#f-t-item option:first-child").await?;
    page.click("#retention button[type=submit]").await?;
    assert_eq!(page.job_status().await?, "succeeded");
    assert_eq!(page.job_kind().await?, "retention of home");

    page.goto(device_page).await?;
    page.click("#f-c-read").await?;
    page.click("#check button[type=submit]").await?;
    assert_eq!(page.job_status().await?, "succeeded");
    assert_eq!(page.job_kind().await?, "check");

    page.goto("/console/jobs").await?;
    let jobs = page.wait_text("laptop").await?;
    for kind in ["retention", "check", "cancelled"] {
        assert!(jobs.contains(kind), "the job list shows {kind}: {jobs}");
    }
    Ok(())
}

/// The user opens a snapshot's listing in the page (the device seals it,
/// the browser derives the key from her password and decrypts), ticks one
/// file and restores just that, byte-exact. The page's opening steps first
/// pass the known-answer vector the Rust sealer is pinned to.
async fn snapshot_files(page: &Page<'_>, w: &World<'_>, device_page: &str, data: &Path) -> Res {
    let vector: Value =
        serde_json::from_str(include_str!("../../client/tests/fixtures/listing-v2.json"))
            .expect("vector");
    let opened = page
        .c
        .execute_async(
            "var done = arguments[arguments.length - 1];
             window.cairnListing.open(arguments[0], arguments[1], arguments[2], arguments[3], arguments[4])
               .then(done, function (e) { done('failed: ' + e); });",
            vec![
                vector["password"].clone(),
                vector["kdf"].clone(),
                vector["sealed"].clone(),
                json!(cairn_proto::control::LISTING_HKDF_INFO),
                json!(cairn_proto::control::LISTING_AAD),
            ],
        )
        .await?;
    assert_eq!(opened, vector["listing"], "the page opens the vector");

    page.goto(device_page).await?;
    page.wait_text("online via node 1").await?;
    page.fill("#f-l-password", ALICE_PW).await?;
    page.click("#files button[type=submit]").await?;
    page.wait_text(UNTICKED).await?;
    page.shot("snapshot-files").await?;
    let small = data.join("sub").join("small.bin");
    let small = small.to_str().expect("utf-8");
    page.click(&format!("#files-restore input[value='{small}']"))
        .await?;
    let target = w.dir.join("picked");
    page.fill("#f-f-target", target.to_str().expect("utf-8"))
        .await?;
    page.click("#files-restore button[type=submit]").await?;
    assert_eq!(page.job_status().await?, "succeeded");
    let restored = target.join(small.trim_start_matches('/'));
    assert_eq!(
        std::fs::read(&restored).expect("the ticked file"),
        std::fs::read(data.join("sub").join("small.bin")).expect("the original")
    );
    assert!(
        !target
            .join(data.strip_prefix("/").expect("absolute"))
            .join("big.bin")
            .exists(),
        "only the ticked path was restored"
    );
    Ok(())
}

/// The users page shows a disabled account and switches it: bob's
/// device login is refused while disabled, accepted once enabled again.
async fn account_switches(page: &Page<'_>, node: &Node) -> Res {
    page.goto("/console/users").await?;
    page.fill("#r-bob", "unpaid invoice").await?;
    page.click("button[aria-label='Disable bob']").await?;
    let text = page.wait_text("disabled (unpaid invoice)").await?;
    assert!(text.contains("Enable"), "{text}");
    page.shot("users-disabled").await?;
    assert_eq!(device_login(node.port, "bob", BOB_PW, "bob-pc"), 403);
    page.click("button[aria-label='Enable bob']").await?;
    page.wait_text("Disable").await?;
    let row = page
        .c
        .find(Locator::XPath("//tr[td[1]='bob']"))
        .await?
        .text()
        .await?;
    assert!(row.contains("enabled"), "{row}");
    assert_eq!(device_login(node.port, "bob", BOB_PW, "bob-pc"), 200);
    Ok(())
}

/// The operator's own page enrols them in TOTP (the URI and secret shown
/// once) and removes it again with a current code from that secret.
async fn own_totp(page: &Page<'_>) -> Res {
    page.goto("/console/account").await?;
    page.fill("#f-name", "root").await?;
    page.fill("#password", ROOT_PW).await?;
    page.click("#totp button[type=submit]").await?;
    page.wait_text("Enrolled").await?;
    page.shot("account-totp").await?;
    let uri = page.c.find(Locator::Css("#totp-uri")).await?.text().await?;
    assert!(
        uri.starts_with("otpauth://totp/Cairn:root?secret="),
        "{uri}"
    );
    let secret = totp_secret(&uri);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let code = format!("{:06}", cairn_node::totp::code_at(&secret, now));
    page.fill("#f-name", "root").await?;
    page.fill("#password", ROOT_PW).await?;
    page.fill("#f-totp", &code).await?;
    page.click("#totp input[name=enable][value=false]").await?;
    page.click("#totp button[type=submit]").await?;
    page.wait_text("Two-step sign-in is off for root").await?;
    Ok(())
}
