//! The web UI as its users meet it: sessions and forms over HTTP, and a support person's and
//! an operator's work in a real headless Chromium, with screenshots of each page and an
//! accessibility check (axe-core) on each.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use drover::api::ApiSettings;
use drover::engine::{FleetPolicy, Sealer};
use drover_core::{Scope, Transition};
use drover_store::{NewService, Store};
use drover_testkit::Browser;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use secrecy::ExposeSecret;

/// drover's HTTP surface (API and UI) on a loopback port, as `drover serve` serves it.
async fn serve_http(store: Arc<dyn Store>, settings: ApiSettings) -> String {
    let sealer = Arc::new(Sealer::from_hex(&"42".repeat(32)).unwrap());
    let app = drover::api::router_with(store, sealer, settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

async fn token(store: &dyn Store, name: &str, scope: Scope) -> String {
    let (_, secret) = drover::commands::create_token(store, &crate::setup_ctx(), name, scope)
        .await
        .unwrap();
    secret.expose_secret().to_owned()
}

/// A browser's cookie jar for one site, kept by hand so each step is visible.
#[derive(Default, Clone)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn keep(&mut self, headers: &HeaderMap) {
        for set in headers.get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (name, value) = set.split(';').next().unwrap().split_once('=').unwrap();
            self.0.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    fn header(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
        pairs.join("; ")
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(
            drover_virtualmin::client_config(&drover_virtualmin::TlsPolicy::default()).unwrap(),
        )
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of the first hidden `csrf` field on a page.
fn form_token(html: &str) -> String {
    let rest = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .expect("a form token");
    rest.split('"').next().unwrap().to_owned()
}

struct Session {
    jar: Jar,
    form_token: String,
}

async fn get(base: &str, jar: &Jar, path: &str) -> reqwest::Response {
    client()
        .get(format!("{base}{path}"))
        .header(header::COOKIE, jar.header())
        .send()
        .await
        .unwrap()
}

async fn post(base: &str, jar: &Jar, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    client()
        .post(format!("{base}{path}"))
        .header(header::COOKIE, jar.header())
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).unwrap())
        .send()
        .await
        .unwrap()
}

async fn sign_in(base: &str, secret: &str) -> Session {
    let mut jar = Jar::default();
    let page = get(base, &jar, "/ui/sign-in").await;
    jar.keep(page.headers());
    let csrf = form_token(&page.text().await.unwrap());
    let signed = post(
        base,
        &jar,
        "/ui/sign-in",
        &[("csrf", &csrf), ("token", secret), ("next", "/ui")],
    )
    .await;
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    jar.keep(signed.headers());
    let dashboard = get(base, &jar, "/ui").await;
    assert_eq!(dashboard.status(), StatusCode::OK);
    let form_token = form_token(&dashboard.text().await.unwrap());
    Session { jar, form_token }
}

#[tokio::test]
async fn sessions_and_forms_refuse_what_did_not_come_from_the_session() {
    let fleet = crate::TestFleet::new().await;
    let store = Arc::clone(&fleet.store);
    // A worker has run: the emergency stop pauses its queue.
    let engine = fleet.engine(crate::quick_retries(), FleetPolicy::default());
    let mut workers = drover::engine::start(Arc::new(engine), 1).unwrap();
    let base = serve_http(Arc::clone(&store), ApiSettings::default()).await;
    let operator = token(&*store, "ops", Scope::Operator).await;
    let readonly = token(&*store, "support", Scope::Readonly).await;

    // Unsigned, a page sends one to sign in and back; the policy forbids others' scripts.
    let page = get(&base, &Jar::default(), "/ui/servers").await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        page.headers()[header::LOCATION],
        "/ui/sign-in?next=%2Fui%2Fservers"
    );
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );

    // A wrong token, or a sign-in form from elsewhere (no cookie of its own), opens nothing.
    let mut jar = Jar::default();
    let form = get(&base, &jar, "/ui/sign-in").await;
    jar.keep(form.headers());
    let csrf = form_token(&form.text().await.unwrap());
    let wrong = post(
        &base,
        &jar,
        "/ui/sign-in",
        &[("csrf", &csrf), ("token", "drv_wrong")],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .all(|c| !c.to_str().unwrap().starts_with("drover_session="))
    );
    assert!(wrong.text().await.unwrap().contains("unknown or revoked"));
    let forged = post(
        &base,
        &Jar::default(),
        "/ui/sign-in",
        &[("csrf", &csrf), ("token", &operator)],
    )
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    // The session cookie is out of scripts' reach and never sent from another site.
    let signed = post(
        &base,
        &jar,
        "/ui/sign-in",
        &[
            ("csrf", &csrf),
            ("token", &operator),
            ("next", "//evil.example"),
        ],
    )
    .await;
    assert_eq!(
        signed.headers()[header::LOCATION],
        "/ui",
        "never another site"
    );
    let cookie = signed
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("drover_session="))
        .unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP here: {cookie}");
    let behind_tls = client()
        .post(format!("{base}/ui/sign-in"))
        .header(header::COOKIE, jar.header())
        .header("x-forwarded-proto", "https")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("csrf", &csrf), ("token", &operator)]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(behind_tls.status(), StatusCode::SEE_OTHER);
    let secure = behind_tls
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("drover_session="))
        .expect("a session");
    assert!(secure.contains("; Secure"), "served over TLS: {secure}");
    // A form posted from another origin (a sibling subdomain counts as the same site) is
    // refused whatever it carries.
    let cross = client()
        .post(format!("{base}/ui/sign-in"))
        .header(header::COOKIE, jar.header())
        .header("sec-fetch-site", "same-site")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string([("csrf", &csrf), ("token", &operator)]).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);

    let ops = sign_in(&base, &operator).await;
    let support = sign_in(&base, &readonly).await;
    let paused = || async { store.provisioning_paused().await.unwrap().unwrap_or(false) };

    // The emergency stop posted without the form token, or with another session's: refused.
    for (who, csrf) in [
        ("none", ""),
        ("another session's", support.form_token.as_str()),
    ] {
        let refused = post(
            &base,
            &ops.jar,
            "/ui/provisioning",
            &[("csrf", csrf), ("paused", "true"), ("confirm", "STOP")],
        )
        .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{who}");
        assert!(
            refused.text().await.unwrap().contains("form token"),
            "{who}"
        );
        assert!(!paused().await, "{who}");
    }
    // Without the typed word: refused, saying which.
    let unconfirmed = post(
        &base,
        &ops.jar,
        "/ui/provisioning",
        &[
            ("csrf", &ops.form_token),
            ("paused", "true"),
            ("confirm", "stop"),
        ],
    )
    .await;
    assert_eq!(unconfirmed.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unconfirmed.text().await.unwrap().contains("type STOP"));
    assert!(!paused().await);
    // A read-only session sees no stop button, and its post is refused by scope.
    let shown = get(&base, &support.jar, "/ui").await.text().await.unwrap();
    assert!(!shown.contains("id=\"stop\""), "read-only sees no stop");
    let by_support = post(
        &base,
        &support.jar,
        "/ui/provisioning",
        &[
            ("csrf", &support.form_token),
            ("paused", "true"),
            ("confirm", "STOP"),
        ],
    )
    .await;
    assert_eq!(by_support.status(), StatusCode::FORBIDDEN);
    assert!(by_support.text().await.unwrap().contains("scope readonly"));
    assert!(!paused().await);
    // The operator's own form: done, audited as done in the UI.
    let stopped = post(
        &base,
        &ops.jar,
        "/ui/provisioning",
        &[
            ("csrf", &ops.form_token),
            ("paused", "true"),
            ("confirm", "STOP"),
        ],
    )
    .await;
    assert_eq!(stopped.status(), StatusCode::SEE_OTHER);
    assert!(paused().await);
    let events = store
        .audit_events(drover_store::AuditFilter::default())
        .await
        .unwrap();
    let stop = events
        .iter()
        .find(|e| e.action == "provisioning.pause")
        .unwrap();
    assert!(stop.actor.contains("(ops) in the web UI"), "{stop:?}");

    // After sign-out, the old cookie and form token open nothing.
    let out = post(
        &base,
        &ops.jar,
        "/ui/sign-out",
        &[("csrf", &ops.form_token)],
    )
    .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = post(
        &base,
        &ops.jar,
        "/ui/provisioning",
        &[("csrf", &ops.form_token), ("paused", "false")],
    )
    .await;
    assert_eq!(after.status(), StatusCode::FORBIDDEN);
    assert!(paused().await, "still paused: the post was refused");
    assert_eq!(
        get(&base, &ops.jar, "/ui").await.status(),
        StatusCode::SEE_OTHER
    );

    // The UI's files: named by their content, kept for good; another name is no file.
    let html = get(&base, &support.jar, "/ui").await.text().await.unwrap();
    let css = html
        .split("href=\"/ui/assets/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let asset = get(&base, &Jar::default(), &format!("/ui/assets/{css}")).await;
    assert_eq!(asset.status(), StatusCode::OK);
    assert!(
        asset.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(
        get(&base, &Jar::default(), "/ui/assets/app-000000000000.css")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    workers.stop().await.unwrap();
}

/// Where the tests put their screenshots (CI keeps the folder).
fn screenshots() -> PathBuf {
    std::env::var_os("DROVER_TEST_SCREENSHOTS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots"),
        PathBuf::from,
    )
}

/// axe-core, installed from the npm registry by scripts/test.
fn axe_source() -> Result<String, String> {
    let path = std::env::var_os("DROVER_TEST_AXE").map_or_else(
        || {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/axe/node_modules/axe-core/axe.min.js")
        },
        PathBuf::from,
    );
    std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e}; scripts/test installs axe-core from npm there",
            path.display()
        )
    })
}

/// Runs axe-core in the page and returns its serious and critical violations.
async fn accessibility_violations(browser: &Browser, axe: &str) -> Vec<String> {
    let script = format!(
        "{axe}\nreturn axe.run(document, {{runOnly: {{type: 'tag', values: \
         ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}}}}).then(r => r.violations\
         .filter(v => v.impact === 'serious' || v.impact === 'critical')\
         .map(v => v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', ')));"
    );
    let found = browser.run(&script, Vec::new()).await.unwrap();
    found
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Takes a screenshot of the page as `name` and checks it with axe.
async fn look(browser: &Browser, axe: &str, name: &str) {
    let path = browser
        .screenshot(&screenshots().join(format!("{name}.png")))
        .await
        .unwrap();
    eprintln!("screenshot: {}", path.display());
    let violations = accessibility_violations(browser, axe).await;
    assert!(violations.is_empty(), "{name}: {violations:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_and_an_operator_work_through_the_ui_in_a_real_browser() {
    let wanted = std::env::var("CI").is_ok_and(|v| v == "true");
    let axe = match (drover_testkit::browser::missing(), axe_source()) {
        (None, Ok(axe)) => axe,
        (missing, axe) => {
            let why = missing.or(axe.err()).unwrap();
            assert!(!wanted, "CI runs the browser tests: {why}");
            eprintln!("SKIPPED: no browser test here: {why}");
            return;
        }
    };
    let fleet = crate::TestFleet::new().await;
    let store = Arc::clone(&fleet.store);
    let (sim1, vm1) = fleet
        .add_server(
            "vm1",
            serde_json::json!({"capacity": 10, "ipv4": "192.0.2.1"}),
        )
        .await;
    let (sim2, vm2) = fleet
        .add_server(
            "vm2",
            serde_json::json!({"capacity": 10, "ipv4": "192.0.2.2"}),
        )
        .await;
    let (plan, customer) = fleet.plan_and_customer().await;
    let engine = Arc::new(fleet.engine(
        crate::quick_retries(),
        FleetPolicy {
            migration_grace: Duration::ZERO,
            ..FleetPolicy::default()
        },
    ));
    let mut workers = drover::engine::start(engine, 4).unwrap();
    let ctx = crate::setup_ctx();
    let new = NewService {
        customer_id: customer,
        plan_id: plan,
        domain: drover_core::DomainName::parse("știri-bune.ro").unwrap(),
    };
    let service = crate::create_service(&*store, &ctx, new).await.unwrap();
    let activated =
        crate::transition_service(&*store, &ctx, service.id, Transition::Activate, None)
            .await
            .unwrap();
    let account = activated.account.id;
    let id = account.get();
    let punycode = activated.account.domain.as_str();
    let on = |sim: &drover_testkit::virtualmin::VirtualminSim| {
        sim.with_state(|s| s.domains.get(punycode).map(|d| d.disabled.is_some()))
    };
    crate::until(
        "the account is on a server",
        Duration::from_secs(30),
        async || on(&sim1).is_some() || on(&sim2).is_some(),
    )
    .await;
    let settings = ApiSettings {
        migration_grace: Duration::ZERO,
        ..ApiSettings::default()
    };
    let base = serve_http(Arc::clone(&store), settings).await;
    let operator = token(&*store, "Ana (support)", Scope::Operator).await;

    let browser = Browser::start("en-US").await.unwrap();
    // Signing in: any page sends one to sign in, then back to it.
    browser.goto(&format!("{base}/ui/accounts")).await.unwrap();
    assert!(browser.url().await.unwrap().contains("/ui/sign-in"));
    look(&browser, &axe, "01-sign-in").await;
    browser.fill("#token", &operator).await.unwrap();
    browser.follow("#sign-in").await.unwrap();
    assert!(browser.url().await.unwrap().ends_with("/ui/accounts"));

    // A customer calls: find the account by its domain as they write it.
    browser.fill("#q", "știri-bune.ro").await.unwrap();
    browser.follow("#search").await.unwrap();
    assert!(
        browser
            .url()
            .await
            .unwrap()
            .ends_with(&format!("/ui/accounts/{id}"))
    );
    assert_eq!(browser.text("h1").await.unwrap(), "știri-bune.ro");
    assert_eq!(browser.text("#protection").await.unwrap(), "protected");
    look(&browser, &axe, "02-account").await;

    // Suspend it with a reason: the server follows, and the page says why and who.
    browser
        .fill("#reason", "unpaid invoice 2026-118")
        .await
        .unwrap();
    browser.follow("#suspend").await.unwrap();
    assert!(browser.text(".notice").await.unwrap().contains("Suspended"));
    crate::until(
        "the server disables it",
        Duration::from_secs(30),
        async || on(&sim1) == Some(true) || on(&sim2) == Some(true),
    )
    .await;
    browser
        .goto(&format!("{base}/ui/accounts/{id}"))
        .await
        .unwrap();
    let why = browser.text("#suspension").await.unwrap();
    assert!(
        why.contains("unpaid invoice 2026-118") && why.contains("Ana (support)) in the web UI"),
        "{why}"
    );
    look(&browser, &axe, "03-account-suspended").await;

    // Lifting protection with the wrong domain is refused and changes nothing; then the right.
    browser.fill("#confirm", "stiri-bune.ro").await.unwrap();
    browser.follow("#unprotect").await.unwrap();
    let refused = browser.text("#error").await.unwrap();
    assert!(refused.contains("știri-bune.ro"), "{refused}");
    assert!(
        store
            .account(account)
            .await
            .unwrap()
            .protected_from_deletion
    );
    look(&browser, &axe, "04-unprotect-refused").await;
    browser.fill("#confirm", "știri-bune.ro").await.unwrap();
    browser.follow("#unprotect").await.unwrap();
    assert_eq!(browser.text("#protection").await.unwrap(), "not protected");
    assert!(
        !store
            .account(account)
            .await
            .unwrap()
            .protected_from_deletion
    );

    // The job that suspended it, with each call it made.
    browser.goto(&format!("{base}/ui/jobs")).await.unwrap();
    look(&browser, &axe, "05-jobs").await;
    let mut suspended_by = None;
    for job in store
        .jobs(drover_store::JobFilter {
            account_id: Some(account),
            ..Default::default()
        })
        .await
        .unwrap()
    {
        let calls = store.job_calls(job.id).await.unwrap();
        if calls.iter().any(|c| c.call.starts_with("disable-domain")) {
            suspended_by = Some(job.id.get());
        }
    }
    let suspended_by = suspended_by.expect("a job disabled the domain");
    browser
        .goto(&format!("{base}/ui/jobs/{suspended_by}"))
        .await
        .unwrap();
    browser
        .wait_for_text("#job-state", Duration::from_secs(30), |s| s == "completed")
        .await
        .unwrap();
    browser
        .goto(&format!("{base}/ui/jobs/{suspended_by}"))
        .await
        .unwrap();
    assert!(
        browser
            .text("main")
            .await
            .unwrap()
            .contains("disable-domain")
    );
    look(&browser, &axe, "06-job").await;

    // Drain the account's server and watch the page follow the move without a reload.
    let from = store.account(account).await.unwrap().server_id.unwrap();
    let from_id = from.get();
    let (from_name, to_sim) = if from == vm1.id {
        ("vm1", &sim2)
    } else {
        ("vm2", &sim1)
    };
    assert!(from == vm1.id || from == vm2.id);
    browser
        .goto(&format!("{base}/ui/servers/{from_id}"))
        .await
        .unwrap();
    browser.fill("#drain-confirm", "wrong").await.unwrap();
    browser.follow("#drain").await.unwrap();
    assert!(browser.text("#error").await.unwrap().contains(from_name));
    // The moves are held (the emergency stop) until the page shows the account still here.
    drover::commands::set_provisioning_paused(&*store, &ctx, true)
        .await
        .unwrap();
    browser.fill("#drain-confirm", from_name).await.unwrap();
    browser.click("#without-content").await.unwrap();
    browser.follow("#drain").await.unwrap();
    assert!(
        browser
            .text(".notice")
            .await
            .unwrap()
            .contains("drain has begun")
    );
    let remaining = browser.text("#remaining").await.unwrap();
    assert!(
        remaining.starts_with("Accounts on this server: 1 "),
        "{remaining}"
    );
    browser
        .run("window.__same_page = true;", Vec::new())
        .await
        .unwrap();
    drover::commands::set_provisioning_paused(&*store, &ctx, false)
        .await
        .unwrap();
    browser
        .wait_for_text("#remaining", Duration::from_secs(60), |t| {
            t == "Accounts on this server: 0"
        })
        .await
        .unwrap();
    let same = browser
        .run("return window.__same_page === true;", Vec::new())
        .await;
    assert_eq!(
        same.unwrap(),
        serde_json::Value::Bool(true),
        "updated in place"
    );
    assert!(to_sim.with_state(|s| s.domains.contains_key(punycode)));
    look(&browser, &axe, "07-server-drained").await;

    // A drift repair planned on the drift page, followed on its job's page until it ends.
    browser.goto(&format!("{base}/ui/drift")).await.unwrap();
    look(&browser, &axe, "08-drift").await;
    let now_on = store
        .account(account)
        .await
        .unwrap()
        .server_id
        .unwrap()
        .get();
    browser.follow(&format!("#plan-{now_on}")).await.unwrap();
    browser
        .wait_for_text("#job-state", Duration::from_secs(30), |s| s == "completed")
        .await
        .unwrap();
    assert!(browser.has("#job-output").await.unwrap());
    look(&browser, &axe, "09-drift-plan").await;

    // The dashboard, the other lists, then the same in Romanian.
    for (path, name) in [
        ("/ui", "10-dashboard"),
        ("/ui/servers", "11-servers"),
        ("/ui/accounts", "11-accounts"),
        ("/ui/dns", "12-dns"),
        ("/ui/audit?verify=1", "13-audit"),
    ] {
        browser.goto(&format!("{base}{path}")).await.unwrap();
        look(&browser, &axe, name).await;
    }
    assert!(browser.text("#verified").await.unwrap().contains("intact"));
    browser
        .goto(&format!("{base}/ui/accounts/{id}"))
        .await
        .unwrap();
    browser.follow("#switch-language").await.unwrap();
    assert!(browser.has("html[lang=ro]").await.unwrap());
    assert_eq!(browser.text("#protection").await.unwrap(), "neprotejat");
    let nav = browser.text("nav").await.unwrap();
    assert!(nav.contains("Conturi") && nav.contains("Lucrări"), "{nav}");
    let why = browser.text("#suspension").await.unwrap();
    assert!(
        why.starts_with("Suspendat:") && why.ends_with(" UTC."),
        "{why}"
    );
    look(&browser, &axe, "14-account-ro").await;
    browser.goto(&format!("{base}/ui")).await.unwrap();
    look(&browser, &axe, "15-dashboard-ro").await;

    browser.close().await;
    workers.stop().await.unwrap();
}

/// The path a form's answer sends the browser to.
fn location(response: &reqwest::Response) -> String {
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_forms_change_what_they_say_and_refusals_change_nothing() {
    let fleet = crate::TestFleet::new().await;
    let store = Arc::clone(&fleet.store);
    let (_sim1, vm1) = fleet
        .add_server("vm1", serde_json::json!({"capacity": 10}))
        .await;
    let (_sim2, vm2) = fleet
        .add_server("vm2", serde_json::json!({"capacity": 10}))
        .await;
    let (plan, customer) = fleet.plan_and_customer().await;
    let engine = fleet.engine(crate::quick_retries(), FleetPolicy::default());
    let mut workers = drover::engine::start(Arc::new(engine), 2).unwrap();
    let ctx = crate::setup_ctx();
    let new = NewService {
        customer_id: customer,
        plan_id: plan,
        domain: drover_core::DomainName::parse("forme.ro").unwrap(),
    };
    let service = crate::create_service(&*store, &ctx, new).await.unwrap();
    let activated =
        crate::transition_service(&*store, &ctx, service.id, Transition::Activate, None)
            .await
            .unwrap();
    let account = activated.account.id.get();
    crate::until(
        "the account is placed",
        Duration::from_secs(30),
        async || {
            let job = store.job(activated.job_id).await.unwrap();
            job.state == "completed"
        },
    )
    .await;
    let bigger = serde_json::json!({"name": "Web Plus", "features": ["dir", "web", "dns"]});
    let bigger =
        drover::commands::create_plan(&*store, &ctx, serde_json::from_value(bigger).unwrap())
            .await
            .unwrap();
    let base = serve_http(Arc::clone(&store), ApiSettings::default()).await;
    let ops = sign_in(&base, &token(&*store, "ops", Scope::Operator).await).await;
    let billing = sign_in(&base, &token(&*store, "billing", Scope::Billing).await).await;
    let form = |s: &Session, extra: &[(&'static str, String)]| {
        let mut all = vec![("csrf", s.form_token.clone())];
        all.extend(extra.iter().cloned());
        all
    };
    let send = async |s: &Session, path: String, fields: Vec<(&'static str, String)>| {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        post(&base, &s.jar, &path, &pairs).await
    };

    // Billing changes the plan from the account's page; an operator's move needs operator.
    let changed = send(
        &billing,
        format!("/ui/accounts/{account}/plan"),
        form(&billing, &[("plan", bigger.id.get().to_string())]),
    )
    .await;
    assert_eq!(
        location(&changed),
        format!("/ui/accounts/{account}?done=plan")
    );
    assert_eq!(store.service(service.id).await.unwrap().plan_id, bigger.id);
    let page = get(
        &base,
        &billing.jar,
        &format!("/ui/accounts/{account}?done=plan"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(page.contains("The plan was changed"), "the notice is shown");
    assert!(
        !page.contains("id=\"migrate\""),
        "billing is offered no move"
    );
    let moved = send(
        &billing,
        format!("/ui/accounts/{account}/migrate"),
        form(&billing, &[("to", vm2.id.get().to_string())]),
    )
    .await;
    assert_eq!(moved.status(), StatusCode::FORBIDDEN);
    // A move that cannot carry the content is refused on the page, saying why; nothing moves.
    let from = store.account(activated.account.id).await.unwrap().server_id;
    let to = if from == Some(vm1.id) { vm2.id } else { vm1.id };
    let refused = send(
        &ops,
        format!("/ui/accounts/{account}/migrate"),
        form(&ops, &[("to", to.get().to_string())]),
    )
    .await;
    let status = refused.status();
    let body = refused.text().await.unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body.contains("no backup destination is the default"),
        "{body}"
    );
    assert!(
        store
            .migration(activated.account.id)
            .await
            .unwrap()
            .is_none()
    );

    // What does not exist is said inside the viewer's page, menu and all.
    let missing = get(&base, &ops.jar, "/ui/accounts/987654").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let missing = missing.text().await.unwrap();
    assert!(
        missing.contains("Refused · 404")
            && missing.contains("987654")
            && missing.contains("href=\"/ui/servers\""),
        "{missing}"
    );

    // Several accounts at once: billing ticks two and suspends them; both jobs are followed.
    let second = NewService {
        customer_id: customer,
        plan_id: plan,
        domain: drover_core::DomainName::parse("forme-doi.ro").unwrap(),
    };
    let second = crate::create_service(&*store, &ctx, second).await.unwrap();
    crate::transition_service(&*store, &ctx, second.id, Transition::Activate, None)
        .await
        .unwrap();
    let list = get(&base, &billing.jar, "/ui/accounts")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        list.contains("name=\"service\""),
        "billing may choose accounts"
    );
    let nothing = send(
        &billing,
        "/ui/bulk".into(),
        form(&billing, &[("action", "suspend".into())]),
    )
    .await;
    assert_eq!(nothing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let bulk = send(
        &billing,
        "/ui/bulk".into(),
        form(
            &billing,
            &[
                ("service", service.id.get().to_string()),
                ("service", second.id.get().to_string()),
                ("action", "suspend".into()),
                ("reason", "unpaid".into()),
            ],
        ),
    )
    .await;
    assert_eq!(bulk.status(), StatusCode::OK);
    let page = bulk.text().await.unwrap();
    assert!(
        page.contains("forme.ro") && page.contains("forme-doi.ro"),
        "{page}"
    );
    for id in [service.id, second.id] {
        assert_eq!(
            store.service(id).await.unwrap().status,
            drover_core::ServiceStatus::Suspended
        );
    }
    let live = page
        .split("data-live=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&");
    // Before any maintenance below: a job that meets a server in maintenance waits 30 s.
    crate::until("both jobs end", Duration::from_secs(60), async || {
        let part = get(&base, &billing.jar, &live).await.text().await.unwrap();
        part.contains("2 of 2 jobs ended")
    })
    .await;

    // Maintenance on and off, audited on the server's history.
    let on = send(
        &ops,
        format!("/ui/servers/{}/maintenance", vm1.id.get()),
        form(&ops, &[("on", "true".into())]),
    )
    .await;
    assert_eq!(
        location(&on),
        format!("/ui/servers/{}?done=maintenance-on", vm1.id.get())
    );
    assert_eq!(
        store.server(vm1.id).await.unwrap().state,
        drover_core::ServerState::Maintenance
    );
    let shown = get(&base, &ops.jar, &format!("/ui/servers/{}", vm1.id.get()))
        .await
        .text()
        .await
        .unwrap();
    assert!(shown.contains("End maintenance") && shown.contains("server.maintenance"));
    send(
        &ops,
        format!("/ui/servers/{}/maintenance", vm1.id.get()),
        form(&ops, &[("on", "false".into())]),
    )
    .await;
    assert_eq!(
        store.server(vm1.id).await.unwrap().state,
        drover_core::ServerState::Healthy
    );

    // A webhook endpoint paused after failing is on the dashboard, with why.
    let key_id = store
        .seal_key_id()
        .await
        .unwrap()
        .unwrap_or_else(|| "key:test".into());
    let endpoint = store
        .create_webhook_endpoint(
            &ctx,
            &drover_store::NewWebhookEndpoint {
                url: drover_core::WebhookUrl::parse("https://billing.example/in", false).unwrap(),
                event_types: Vec::new(),
                sealed_secret: b"sealed".to_vec(),
                key_id,
            },
        )
        .await
        .unwrap();
    store
        .pause_webhook_endpoint(
            &ctx,
            endpoint.id,
            "failing since yesterday (last: answered 502)",
        )
        .await
        .unwrap();
    let dashboard = get(&base, &ops.jar, "/ui").await.text().await.unwrap();
    assert!(
        dashboard.contains("id=\"paused-webhooks\"")
            && dashboard.contains("https://billing.example/in")
            && dashboard.contains("answered 502"),
        "{dashboard}"
    );

    // A server an operator works on over SSH says so, and why.
    let ssh = serde_json::json!({"ssh": {
        "key": "env:VM1_SSH_KEY",
        "host_key": "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    }});
    drover::commands::update_server(&*store, &ctx, vm1.id, serde_json::from_value(ssh).unwrap())
        .await
        .unwrap();
    drover::commands::set_break_glass(&*store, &ctx, vm1.id, Some("remote.cgi answers 500"))
        .await
        .unwrap();
    let shown = get(&base, &ops.jar, &format!("/ui/servers/{}", vm1.id.get()))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        shown.contains("Worked on over SSH") && shown.contains("remote.cgi answers 500"),
        "{shown}"
    );
    drover::commands::set_break_glass(&*store, &ctx, vm1.id, None)
        .await
        .unwrap();

    // A rebuild is planned on the page first; a start without the lost server's name is refused.
    let lost = from.unwrap().get();
    let planned = send(
        &ops,
        format!("/ui/servers/{lost}/rebuild-plan"),
        form(&ops, &[("onto", to.get().to_string())]),
    )
    .await;
    assert_eq!(planned.status(), StatusCode::OK);
    let planned = planned.text().await.unwrap();
    assert!(
        planned.contains("forme.ro") && planned.contains("id=\"rebuild\""),
        "{planned}"
    );
    let unconfirmed = send(
        &ops,
        format!("/ui/servers/{lost}/rebuild"),
        form(
            &ops,
            &[("onto", to.get().to_string()), ("confirm", "nope".into())],
        ),
    )
    .await;
    assert_eq!(unconfirmed.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let rebuilt = store
        .latest_audit_events(None, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .any(|e| e.action == "server.rebuild");
    assert!(!rebuilt, "nothing was rebuilt");

    // Started with the name, a rebuild is followed on the page of the server it recreates the
    // accounts on: held by the emergency stop, the live part lists the moves and is watched;
    // released, the moves end and the page stops watching.
    drover::commands::set_provisioning_paused(&*store, &ctx, true)
        .await
        .unwrap();
    let lost_name = store.server(from.unwrap()).await.unwrap().spec.name;
    let started = send(
        &ops,
        format!("/ui/servers/{lost}/rebuild"),
        form(
            &ops,
            &[
                ("onto", to.get().to_string()),
                ("confirm", lost_name.to_string()),
            ],
        ),
    )
    .await;
    assert_eq!(
        location(&started),
        format!("/ui/servers/{}?done=rebuild", to.get())
    );
    let progress = format!("/ui/servers/{}/progress", to.get());
    let part = get(&base, &ops.jar, &progress).await.text().await.unwrap();
    assert!(
        part.contains("data-watching")
            && part.contains("forme.ro")
            && part.contains("being created on the new server"),
        "{part}"
    );
    drover::commands::set_provisioning_paused(&*store, &ctx, false)
        .await
        .unwrap();
    crate::until(
        "the rebuild's moves end",
        Duration::from_secs(60),
        async || {
            let part = get(&base, &ops.jar, &progress).await.text().await.unwrap();
            !part.contains("data-watching") && !part.contains("Moves under way")
        },
    )
    .await;
    assert_eq!(
        store.account(activated.account.id).await.unwrap().server_id,
        Some(to)
    );

    // Drift and DNS work is a job, followed on its page.
    let scan = send(&ops, format!("/ui/drift/{lost}/plan"), form(&ops, &[])).await;
    let job_page = location(&scan);
    assert!(job_page.starts_with("/ui/jobs/"), "{job_page}");
    let job = job_page.rsplit('/').next().unwrap();
    let kind = store
        .job(job.parse::<drover_core::JobId>().unwrap())
        .await
        .unwrap()
        .kind;
    assert_eq!(kind, "scan_drift");
    let forced = send(
        &ops,
        format!("/ui/drift/{lost}/force"),
        form(&ops, &[("confirm", "wrong".into())]),
    )
    .await;
    assert_eq!(forced.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let zone = drover::commands::create_zone(
        &*store,
        &ctx,
        &drover_core::DomainName::parse("zona.ro").unwrap(),
        None,
        Vec::new(),
        &[],
    )
    .await
    .unwrap();
    let planned = send(
        &ops,
        format!("/ui/dns/{}/plan", zone.id.get()),
        form(&ops, &[]),
    )
    .await;
    assert!(location(&planned).starts_with("/ui/jobs/"));
    let forced = send(
        &ops,
        format!("/ui/dns/{}/apply", zone.id.get()),
        form(
            &ops,
            &[("force", "on".into()), ("confirm", "alta.ro".into())],
        ),
    )
    .await;
    assert_eq!(forced.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(forced.text().await.unwrap().contains("zona.ro"));

    // The audit log, filtered to one account's events.
    let audit = get(
        &base,
        &ops.jar,
        &format!("/ui/audit?subject=service%3A{}", service.id.get()),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(audit.contains("service.change_plan"), "{audit}");
    assert!(audit.contains("service.suspend"), "{audit}");
    assert!(!audit.contains("server.maintenance"), "only the service's");
    workers.stop().await.unwrap();
}
