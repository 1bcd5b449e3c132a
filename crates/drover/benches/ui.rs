//! The web UI's pages with 100,000 accounts, through the real `drover serve` on its embedded
//! default (SQLite). `cargo bench -p drover --bench ui`
//!
//! A signed-in session asks for the dashboard, an account search by domain and the account's
//! page; each request is paired with the JSON API request that does the same lookup (the
//! dashboard with the failed-accounts list, its costliest read), interleaved A B A B, in rounds.
//! Printed: p50 and p99 of each (the goal: every page under 50 ms at p99) and the ratio of
//! medians, page over API.
//!
//! Then API reads under load: 32 connections asking `GET /api/v1/services` (the first page of
//! 100,000) for `LOAD_SECONDS`, against the same 32 connections asking `GET /healthz` (the
//! HTTP stack alone, no token, no query), interleaved in rounds: requests a second, p99, and
//! the resident memory of `serve` after the load.

#[path = "common/serve.rs"]
mod serve;

use std::time::Instant;

use drover_core::{CustomerSpec, Scope, Transition};
use drover_store::RequestContext;
use secrecy::ExposeSecret;

const ACCOUNTS: i64 = 100_000;
const ROUNDS: usize = 3;
const PER_ROUND: usize = 200;

fn ctx() -> RequestContext {
    RequestContext {
        actor: "bench".into(),
        correlation_id: "bench".into(),
    }
}

/// A database with `ACCOUNTS` accounts (one in a hundred failed), and a token to sign in with.
async fn seeded(dir: &std::path::Path) -> String {
    let url = format!("sqlite://{}", dir.join("drover.db").display());
    let store = drover_store::open(&url).await.unwrap();
    let plan = serde_json::json!({"name": "Web", "features": ["dir", "web"]});
    drover::commands::create_plan(&*store, &ctx(), serde_json::from_value(plan).unwrap())
        .await
        .unwrap();
    let customer = CustomerSpec::new("Bench", None, None).unwrap();
    let customer = drover::commands::create_customer(&*store, &ctx(), customer)
        .await
        .unwrap();
    // One made by the command layer: the others copy its shape.
    let first = drover::commands::create_service(
        &*store,
        &ctx(),
        customer.id,
        drover_core::PlanId(1),
        "bench-1.ro",
        false,
    )
    .await
    .unwrap();
    drover::commands::transition_service(
        &*store,
        &ctx(),
        first.service.id,
        Transition::Activate,
        None,
    )
    .await
    .unwrap();
    let (_, secret) = drover::commands::create_token(&*store, &ctx(), "bench", Scope::Operator)
        .await
        .unwrap();
    drop(store);
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows = format!(
        "WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < {ACCOUNTS})"
    );
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "{rows} INSERT INTO services (id, customer_id, plan_id, status, created_at, updated_at) \
         SELECT i, 1, 1, 'active', s.created_at, s.updated_at FROM n, services s WHERE s.id = 1"
    )))
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "{rows} INSERT INTO accounts (id, service_id, domain, unix_username, desired_state, \
         desired_generation, failure, created_at, updated_at) \
         SELECT i, i, 'bench-' || i || '.ro', 'bench' || i, 'enabled', 1, \
         CASE WHEN i % 100 = 0 THEN 'refused by the server' END, a.created_at, a.updated_at \
         FROM n, accounts a WHERE a.id = 1"
    )))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    secret.expose_secret().to_owned()
}

/// A `/proc/PID/status` figure of `serve`, in MB.
fn memory_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1000.0
}

const CONNECTIONS: usize = 32;
const LOAD_SECONDS: f64 = 3.0;

/// `CONNECTIONS` clients asking `path` one request after another for `LOAD_SECONDS`: requests
/// a second and every request's milliseconds.
async fn load(http: &reqwest::Client, url: String, token: Option<&str>) -> (f64, Vec<f64>) {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let (http, url) = (http.clone(), url.clone());
        let token = token.map(|t| format!("Bearer {t}"));
        tasks.spawn(async move {
            let mut times = Vec::new();
            while started.elapsed().as_secs_f64() < LOAD_SECONDS {
                let mut request = http.get(&url);
                if let Some(token) = &token {
                    request = request.header("authorization", token);
                }
                times.push(timed(request, 200).await);
            }
            times
        });
    }
    let mut times = Vec::new();
    while let Some(done) = tasks.join_next().await {
        times.extend(done.unwrap());
    }
    (times.len() as f64 / started.elapsed().as_secs_f64(), times)
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

/// Signs in as a browser does; returns the session's cookie header.
async fn sign_in(http: &reqwest::Client, base: &str, token: &str) -> String {
    let form = http.get(format!("{base}/ui/sign-in")).send().await.unwrap();
    let cookie = form.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let html = form.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let body = serde_urlencoded::to_string([("csrf", csrf), ("token", token)]).unwrap();
    let signed = http
        .post(format!("{base}/ui/sign-in"))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let session = signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap())
        .find(|c| c.starts_with("drover_session="))
        .expect("signed in");
    session.split(';').next().unwrap().to_owned()
}

/// Milliseconds one request takes, its answer read whole; it must answer `status`.
async fn timed(request: reqwest::RequestBuilder, status: u16) -> f64 {
    let started = Instant::now();
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), status);
    response.bytes().await.unwrap();
    started.elapsed().as_secs_f64() * 1000.0
}

/// The `kind`-th page about account `i`: its path, the status it answers, and the API path
/// doing the same lookup.
fn requests(kind: usize, i: i64) -> (String, u16, String) {
    match kind {
        0 => ("/ui".into(), 200, "/accounts?failed=true&limit=20".into()),
        1 => (
            format!("/ui/accounts?q=bench-{i}.ro"),
            303,
            format!("/accounts?domain=bench-{i}.ro"),
        ),
        _ => (format!("/ui/accounts/{i}"), 200, format!("/accounts/{i}")),
    }
}

fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let at = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[at]
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let token = seeded(dir.path()).await;
    println!(
        "seeded {ACCOUNTS} accounts in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let served = serve::start(dir.path(), &[]).await;
    let base = &served.base;
    let http = client();
    let session = sign_in(&http, base, &token).await;
    let page = |path: String| http.get(format!("{base}{path}")).header("cookie", &session);
    let api = |path: String| {
        http.get(format!("{base}/api/v1{path}"))
            .header("authorization", format!("Bearer {token}"))
    };
    let kinds = ["dashboard", "account search", "account page"];
    let mut figures: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); kinds.len()];
    // Warm both paths, then measure.
    for kind in 0..kinds.len() {
        let (p, status, a) = requests(kind, 7);
        for _ in 0..20 {
            timed(page(p.clone()), status).await;
            timed(api(a.clone()), 200).await;
        }
    }
    let mut n = 0_i64;
    for _ in 0..ROUNDS {
        for (k, (pages, apis)) in figures.iter_mut().enumerate() {
            for _ in 0..PER_ROUND {
                n += 1;
                // Spread over the whole table, so no lookup is cached by being repeated.
                let id = 2 + (n * 7919) % (ACCOUNTS - 1);
                let (p, status, a) = requests(k, id);
                pages.push(timed(page(p), status).await);
                apis.push(timed(api(a), 200).await);
            }
        }
    }
    println!(
        "\n{ACCOUNTS} accounts, SQLite, drover serve; {} requests each, page and API interleaved\n",
        ROUNDS * PER_ROUND
    );
    println!(
        "{:<16} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "page", "p50 ms", "p99 ms", "API p50", "API p99", "page / API"
    );
    for (name, (pages, apis)) in kinds.iter().zip(figures.iter_mut()) {
        let (p50, p99) = (quantile(pages, 0.5), quantile(pages, 0.99));
        let (a50, a99) = (quantile(apis, 0.5), quantile(apis, 0.99));
        println!(
            "{name:<16} {p50:>10.2} {p99:>10.2} {a50:>10.2} {a99:>10.2} {:>11.2}x",
            p50 / a50
        );
        if p99 > 50.0 {
            println!("  {name}: p99 {p99:.1} ms is over the 50 ms goal");
        }
    }

    let loaded = client();
    let (mut reads, mut bare) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for _ in 0..ROUNDS {
        let (rate, times) = load(&loaded, format!("{base}/api/v1/services"), Some(&token)).await;
        reads.0.push(rate);
        reads.1.extend(times);
        let (rate, times) = load(&loaded, format!("{base}/healthz"), None).await;
        bare.0.push(rate);
        bare.1.extend(times);
    }
    let pid = served.child.id().unwrap();
    println!(
        "\nunder load: {CONNECTIONS} connections, {ROUNDS} rounds of {LOAD_SECONDS} s each, \
         interleaved\n"
    );
    println!(
        "{:<28} {:>10} {:>10} {:>10}",
        "request", "req/s", "p50 ms", "p99 ms"
    );
    let mut rates = Vec::new();
    for (name, (rounds, times)) in [
        ("GET /api/v1/services", &mut reads),
        ("GET /healthz (baseline)", &mut bare),
    ] {
        let rate = quantile(rounds, 0.5);
        rates.push(rate);
        println!(
            "{name:<28} {rate:>10.0} {:>10.2} {:>10.2}",
            quantile(times, 0.5),
            quantile(times, 0.99)
        );
    }
    println!(
        "services over the baseline: {:.2}x the time per request (ratio of median rates)",
        rates[1] / rates[0]
    );
    println!(
        "drover serve's memory after the load: {:.0} MB resident, {:.0} MB at its peak",
        memory_mb(pid, "VmRSS:"),
        memory_mb(pid, "VmHWM:")
    );
}
