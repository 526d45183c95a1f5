//! The web console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver by fantoccini), against a real
//! `cairnd`, with the browser talking only through a recording TCP proxy:
//! a cluster admin signs in, creates organizations, their org admins and a
//! user; the user's password set in the page is the one the Rust KDF
//! derives (a device logs in with it); the user signs in and sees only
//! their devices and jobs; another organization's admin sees none of it
//! while the user's own org admin does; no password byte ever crossed the
//! proxy; posts without the form's CSRF token are refused; pages carry a
//! strict CSP and the session cookie is HttpOnly and SameSite=Strict.
//!
//! One browser session serves the whole scenario (signing out and in).
//! Screenshots of the main pages (1280×800, and the user's page at phone
//! width) are written to `$CAIRN_SCREENSHOTS` when set (`docs/screenshots`
//! is refreshed that way), else to the test's temp dir.

mod common;

use std::net::TcpStream;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_proto::console::OrgInfo;
use cairn_tests::{contains, http, http_with_head, RecordingProxy};
use common::{free_port, stderr, Node};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{json, Value};

const ROOT_PW: &str = "root-Pa55word-of-the-cluster";
const ACME_PW: &str = "acme-admin-Secret-77";
const GLOBEX_PW: &str = "globex-admin-Secret-88";
const ALICE_PW: &str = "alice-correct-horse-battery";
const BOB_PW: &str = "bob-Staple-99";

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut node = Node::new(dir, 1);
    node.init();
    node.start();
    node.wait_ready();

    // Bootstrap with the admin token: the first cluster admin, and bob (of
    // the default organization) with a device that logged in.
    let pw_file = |name: &str, pw: &str| {
        let p = dir.join(format!("{name}.pw"));
        std::fs::write(&p, format!("{pw}\n")).expect("pw");
        p.display().to_string()
    };
    let root_pw = pw_file("root", ROOT_PW);
    let out = node.admin(&[
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
    let out = node.admin(&["user", "create", "bob", "--password-file", &bob_pw]);
    assert!(out.status.success(), "user create: {}", stderr(&out));
    assert_eq!(device_login(node.port, "bob", BOB_PW, "bob-pc"), 200);

    let proxy = RecordingProxy::start(node.port);
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
    // Close the session whatever happens (an assertion's panic too: else
    // Chromium outlives chromedriver), then report.
    let result = AssertUnwindSafe(scenario(&page, &node, &proxy))
        .catch_unwind()
        .await;
    let _ = c.close().await;
    drop(driver);
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            node.dump_logs();
            panic!("browser scenario failed: {e}");
        }
        Err(panic) => {
            node.dump_logs();
            std::panic::resume_unwind(panic);
        }
    }
}

async fn scenario(page: &Page<'_>, node: &Node, proxy: &RecordingProxy) -> Res {
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

    // The page derived alice's login key exactly as the Rust KDF does: a
    // device logs in with her password the way `cairn login` would.
    assert_eq!(device_login(node.port, "alice", ALICE_PW, "laptop"), 200);

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

    page.goto("/console/jobs").await?;
    page.wait_text("laptop").await?;
    page.shot("jobs").await?;
    page.sign_out().await?;

    // alice signs in through the page: her devices and jobs only.
    page.sign_in("user", "alice", ALICE_PW).await?;
    let home = page.wait_text("laptop").await?;
    assert!(home.contains("web console"), "{home}");
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
    page.sign_out().await?;

    // Another organization's admin sees none of alice's; her own org
    // admin does.
    page.sign_in("operator", "globex-admin", GLOBEX_PW).await?;
    for path in ["/console/users", "/console/devices", "/console/jobs"] {
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

    // No password crossed the wire: only names and derived keys did.
    let sent = proxy.sent();
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
