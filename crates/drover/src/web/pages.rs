//! The pages: each reads what it shows from the store and hands the template rows already
//! in the viewer's words and formats.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use drover_core::{AccountId, DesiredState, DomainName, JobId, MoveState, ServerId, ServerState};
use drover_store::{Account, AccountFilter, JobFilter, Page, ZoneFilter};
use serde::Deserialize;

use super::session::Viewer;
use super::{Chrome, WebError, render};
use crate::api::AppState;

type PageResult = Result<Response, WebError>;

/// A notice after a change, named by its message in the catalogue (`done-…`): only the
/// page's own messages are shown, so an address cannot put other words on it.
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
    /// A drain's figures: how many accounts move, and how many no server can take.
    moves: Option<u32>,
    unplaced: Option<u32>,
}

impl Done {
    fn notice(&self, page: &Chrome, own: &[&str]) -> Option<String> {
        let done = self.done.as_deref().filter(|d| own.contains(d))?;
        let key = format!("done-{done}");
        let text = page.t.lookup(&key)?;
        Some(if done == "drain" {
            page.t.with(
                &key,
                &[
                    ("moves", &self.moves.unwrap_or(0)),
                    ("unplaced", &self.unplaced.unwrap_or(0)),
                ],
            )
        } else {
            text.to_owned()
        })
    }
}

// ---------------------------------------------------------------- dashboard

#[derive(Template)]
#[template(path = "dashboard.html")]
pub(super) struct DashboardPage {
    pub page: Chrome,
    paused: bool,
    servers_by_state: Vec<(String, String)>,
    accounts_held: String,
    capacity: String,
    queues: Vec<(String, String, String)>,
    failed_jobs: String,
    drift_findings: String,
    failed_accounts: Vec<AccountRow>,
    /// Webhook endpoints paused after failing: each URL with why.
    paused_webhooks: Vec<(String, String)>,
}

pub async fn dashboard(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(done): Query<Done>,
) -> PageResult {
    let mut view = dashboard_page(&app, &viewer).await?;
    view.page.notice = done.notice(&view.page, &["paused", "resumed"]);
    Ok(render(StatusCode::OK, &view))
}

/// The dashboard, also drawn again with the reason when its emergency stop is refused.
pub(super) async fn dashboard_page(
    app: &AppState,
    viewer: &Viewer,
) -> Result<DashboardPage, WebError> {
    let t = viewer.lang.words();
    let store = &*app.store;
    let servers = store.servers(Page::new(None, Some(ALL))).await?;
    let mut by_state = Vec::new();
    for state in ServerState::ALL {
        let count = servers.iter().filter(|s| s.state == state).count();
        if count > 0 {
            by_state.push((state_word(t, &state.to_string()), t.number(count as i64)));
        }
    }
    let capacity: i64 = servers
        .iter()
        .filter(|s| s.state != ServerState::Decommissioned)
        .map(|s| i64::from(s.spec.capacity))
        .sum();
    let held: i64 = store
        .resource_counts()
        .await?
        .iter()
        .filter(|c| c.kind == "account" && c.state != "absent")
        .map(|c| c.count)
        .sum();
    let counts = store.job_counts().await?;
    let failed_jobs: i64 = counts
        .iter()
        .filter(|c| c.state == "discarded")
        .map(|c| c.count)
        .sum();
    let queues = counts
        .iter()
        .filter(|c| c.state != "completed" && c.state != "discarded")
        .map(|c| (c.queue.clone(), state_word(t, &c.state), t.number(c.count)))
        .collect();
    let failed = store
        .accounts(AccountFilter {
            failed: true,
            page: Page::new(None, Some(20)),
            ..AccountFilter::default()
        })
        .await?;
    let page = viewer.chrome(t.get("nav-dashboard").to_owned());
    Ok(DashboardPage {
        paused: store.provisioning_paused().await?.unwrap_or(false),
        servers_by_state: by_state,
        accounts_held: t.number(held),
        capacity: t.number(capacity),
        queues,
        failed_jobs: t.number(failed_jobs),
        drift_findings: t.number(store.drift_findings(None).await?.len() as i64),
        failed_accounts: failed.iter().map(|a| AccountRow::new(t, a)).collect(),
        paused_webhooks: store
            .webhook_endpoints(Page::new(None, Some(ALL)))
            .await?
            .into_iter()
            .filter(|e| e.paused)
            .map(|e| (e.url, e.paused_reason.unwrap_or_default()))
            .collect(),
        page,
    })
}

/// The most rows a page reads of what a fleet has few of (servers, plans): all of them.
const ALL: u32 = 1000;

/// The servers a form may name (by id, with their names): all but decommissioned ones and
/// `except`.
async fn server_choices(
    store: &dyn drover_store::Store,
    except: Option<ServerId>,
) -> Result<Vec<(i64, String)>, WebError> {
    Ok(store
        .servers(Page::new(None, Some(ALL)))
        .await?
        .into_iter()
        .filter(|s| Some(s.id) != except && s.state != ServerState::Decommissioned)
        .map(|s| (s.id.get(), s.spec.name.to_string()))
        .collect())
}

/// A state's name in the viewer's words where the catalogue has one (`state-…`).
fn state_word(t: &super::Catalogue, state: &str) -> String {
    t.lookup(&format!("state-{state}"))
        .unwrap_or(state)
        .to_owned()
}

// ---------------------------------------------------------------- accounts

pub struct AccountRow {
    id: i64,
    service: i64,
    domain: String,
    state: String,
    server: String,
    protected: bool,
    failure: String,
}

impl AccountRow {
    fn new(t: &super::Catalogue, a: &Account) -> Self {
        Self {
            id: a.id.get(),
            service: a.service_id.get(),
            domain: a.domain_unicode.clone(),
            state: state_word(t, &a.desired_state.to_string()),
            server: a
                .server_id
                .map_or_else(|| "—".to_owned(), |s| format!("#{s}")),
            protected: a.protected_from_deletion,
            failure: a.failure.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "accounts.html")]
struct AccountsPage {
    page: Chrome,
    query: String,
    failed_only: bool,
    rows: Vec<AccountRow>,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AccountSearch {
    #[serde(default)]
    q: String,
    #[serde(default)]
    failed: Option<String>,
    after: Option<i64>,
}

const ROWS: u32 = 50;

pub async fn accounts(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(search): Query<AccountSearch>,
) -> PageResult {
    let t = viewer.lang.words();
    let mut page = viewer.chrome(t.get("nav-accounts").to_owned());
    let query = search.q.trim().to_owned();
    let failed_only = search.failed.is_some();
    let domain = if query.is_empty() {
        None
    } else {
        match DomainName::parse(&query) {
            Ok(domain) => Some(domain),
            Err(e) => {
                page.error = Some(format!("{}: {e}", t.get("search-not-a-domain")));
                let view = AccountsPage {
                    page,
                    query,
                    failed_only,
                    rows: Vec::new(),
                    next: None,
                };
                return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &view));
            }
        }
    };
    let found = app
        .store
        .accounts(AccountFilter {
            domain,
            failed: failed_only,
            page: Page::new(search.after, Some(ROWS)),
            ..AccountFilter::default()
        })
        .await?;
    let next = (found.len() == ROWS as usize).then(|| {
        let last = found.last().map_or(0, |a| a.id.get());
        let failed = if failed_only { "&failed=on" } else { "" };
        format!("/ui/accounts?after={last}{failed}")
    });
    // A search for one domain that finds it goes straight to it.
    if !query.is_empty()
        && let [one] = found.as_slice()
    {
        return Ok(
            axum::response::Redirect::to(&format!("/ui/accounts/{}", one.id)).into_response(),
        );
    }
    if !query.is_empty() && found.is_empty() {
        page.notice = Some(t.with("search-none", &[("domain", &query)]));
    }
    let view = AccountsPage {
        rows: found.iter().map(|a| AccountRow::new(t, a)).collect(),
        page,
        query,
        failed_only,
        next,
    };
    Ok(render(StatusCode::OK, &view))
}

use axum::response::IntoResponse;

#[derive(Template)]
#[template(path = "account.html")]
pub(super) struct AccountPage {
    pub page: Chrome,
    id: i64,
    domain: String,
    punycode: String,
    unix_user: String,
    desired: String,
    observed: String,
    service_status: String,
    suspended: bool,
    /// The service may be suspended now (it is active).
    suspendable: bool,
    suspension: Option<String>,
    server: String,
    protected: bool,
    failure: Option<String>,
    over_limit: Option<String>,
    last_sync: String,
    last_backup: String,
    mailboxes: Vec<String>,
    databases: Vec<String>,
    aliases: Vec<String>,
    subservers: Vec<String>,
    jobs: Vec<JobRow>,
    events: Vec<EventRow>,
    plan_id: i64,
    plans: Vec<(i64, String)>,
    servers: Vec<(i64, String)>,
    usage: Option<String>,
}

pub struct EventRow {
    at: String,
    actor: String,
    action: String,
    subject: String,
    details: String,
}

impl EventRow {
    fn new(t: &super::Catalogue, e: &drover_core::AuditEntry) -> Self {
        Self {
            at: t.time(e.at),
            actor: e.actor.clone(),
            action: e.action.clone(),
            subject: e.subject.clone(),
            details: e.details.clone(),
        }
    }
}

pub async fn account(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> PageResult {
    let id: AccountId = path_id("account", &id)?;
    let mut view = account_page(&app, &viewer, id).await?;
    let own = [
        "suspend",
        "unsuspend",
        "protect",
        "unprotect",
        "plan",
        "migrate",
    ];
    view.page.notice = done.notice(&view.page, &own);
    Ok(render(StatusCode::OK, &view))
}

pub(super) fn path_id<T: std::str::FromStr>(what: &str, raw: &str) -> Result<T, WebError> {
    crate::api::path_id(what, raw).map_err(WebError::from)
}

/// An account's page, also drawn again with the reason when one of its forms is refused.
pub(super) async fn account_page(
    app: &AppState,
    viewer: &Viewer,
    id: AccountId,
) -> Result<AccountPage, WebError> {
    use drover_store::OtherDomainKind::{Alias, Subserver};
    let t = viewer.lang.words();
    let store = &*app.store;
    let account = store.account(id).await?;
    let service = store.service(account.service_id).await?;
    let mut events = Vec::new();
    for subject in [
        format!("account:{id}"),
        format!("service:{}", account.service_id),
    ] {
        events.extend(store.latest_audit_events(Some(&subject), None, 30).await?);
    }
    events.sort_by_key(|e| std::cmp::Reverse(e.id));
    let suspended = service.status == drover_core::ServiceStatus::Suspended;
    // Who suspended it and when: the last suspension among its events.
    let suspension = suspended.then(|| {
        let by = events.iter().find(|e| e.action.contains("suspend"));
        t.with(
            "account-suspended-because",
            &[
                (
                    "reason",
                    &account.suspend_reason.clone().unwrap_or_else(|| "—".into()),
                ),
                ("actor", &by.map_or("—", |e| e.actor.as_str())),
                ("at", &by.map_or_else(|| "—".to_owned(), |e| t.time(e.at))),
            ],
        )
    });
    let server = match account.server_id {
        Some(s) => store.server(s).await?.spec.name.to_string(),
        None => "—".to_owned(),
    };
    let jobs = store
        .jobs(JobFilter {
            account_id: Some(id),
            limit: Some(20),
            ..JobFilter::default()
        })
        .await?;
    let plans = store
        .plans(Page::new(None, Some(ALL)))
        .await?
        .into_iter()
        .map(|p| (p.id.get(), p.spec.name.to_string()))
        .collect();
    let servers = server_choices(store, account.server_id).await?;
    let usage = store
        .usage(drover_store::UsageFilter {
            service_id: Some(account.service_id),
            ..drover_store::UsageFilter::default()
        })
        .await?
        .first()
        .map(|u| {
            let mb = |b: Option<u64>| {
                b.map_or_else(|| "—".to_owned(), |b| t.number((b / 1_000_000) as i64))
            };
            t.with(
                "account-usage-figures",
                &[
                    ("disk", &mb(u.usage.disk_bytes)),
                    ("bandwidth", &mb(u.usage.bandwidth_bytes)),
                    ("at", &t.time(u.measured_at)),
                ],
            )
        });
    let last_backup = match store.last_good_backup(id).await? {
        Some(b) => t.maybe_time(b.finished_at.or(Some(b.started_at))),
        None => t.get("never").to_owned(),
    };
    Ok(AccountPage {
        page: viewer.chrome(account.domain_unicode.clone()),
        id: id.get(),
        punycode: account.domain.to_string(),
        unix_user: account.unix_username.to_string(),
        desired: state_word(t, &account.desired_state.to_string()),
        observed: account
            .observed_state
            .as_deref()
            .map_or_else(|| "—".to_owned(), |s| state_word(t, s)),
        service_status: state_word(t, &service.status.to_string()),
        suspended,
        suspendable: service.status == drover_core::ServiceStatus::Active,
        suspension,
        server,
        protected: account.protected_from_deletion,
        failure: account.failure.clone(),
        over_limit: account.over_limit.clone(),
        last_sync: t.maybe_time(account.last_sync_at),
        last_backup,
        mailboxes: store
            .mailboxes(id)
            .await?
            .iter()
            .map(|m| m.name.to_string())
            .collect(),
        databases: store
            .databases(id)
            .await?
            .iter()
            .map(|d| d.name.to_string())
            .collect(),
        aliases: store
            .other_domains(id, Alias)
            .await?
            .iter()
            .map(|d| d.domain.to_unicode())
            .collect(),
        subservers: store
            .other_domains(id, Subserver)
            .await?
            .iter()
            .map(|d| d.domain.to_unicode())
            .collect(),
        jobs: jobs.iter().map(|j| JobRow::new(t, j)).collect(),
        events: events
            .iter()
            .take(30)
            .map(|e| EventRow::new(t, e))
            .collect(),
        plan_id: service.plan_id.get(),
        plans,
        servers,
        usage,
        domain: account.domain_unicode,
    })
}

// ---------------------------------------------------------------- servers

pub struct ServerRow {
    id: i64,
    name: String,
    host: String,
    state: String,
    accounts: String,
}

#[derive(Template)]
#[template(path = "servers.html")]
struct ServersPage {
    page: Chrome,
    rows: Vec<ServerRow>,
}

pub async fn servers(State(app): State<AppState>, viewer: Viewer) -> PageResult {
    let t = viewer.lang.words();
    let store = &*app.store;
    let mut rows = Vec::new();
    for server in store.servers(Page::new(None, Some(ALL))).await? {
        let held = crate::engine::accounts_on(store, server.id)
            .await?
            .iter()
            .filter(|a| a.desired_state != DesiredState::Absent)
            .count();
        rows.push(ServerRow {
            id: server.id.get(),
            name: server.spec.name.to_string(),
            host: format!("{}:{}", server.spec.hostname, server.spec.port),
            state: state_word(t, &server.state.to_string()),
            accounts: format!(
                "{} / {}",
                t.number(held as i64),
                t.number(i64::from(server.spec.capacity))
            ),
        });
    }
    let view = ServersPage {
        page: viewer.chrome(t.get("nav-servers").to_owned()),
        rows,
    };
    Ok(render(StatusCode::OK, &view))
}

#[derive(Template)]
#[template(path = "server.html")]
pub(super) struct ServerPage {
    pub page: Chrome,
    id: i64,
    name: String,
    host: String,
    state: String,
    capacity: String,
    health: Option<String>,
    checked_at: String,
    login_refused: Option<String>,
    /// Why, by whom and since when an operator works on it over SSH.
    break_glass: Option<String>,
    certificate_days: String,
    in_maintenance: bool,
    can_drain: bool,
    /// The servers a rebuild may go onto.
    others: Vec<(i64, String)>,
    /// A rebuild's plan, once asked for: onto which server, and the plan.
    pub rebuild: Option<(i64, crate::commands::RebuildPlan)>,
    history: Vec<EventRow>,
    /// The live part, drawn by its own template.
    progress: String,
}

#[derive(Template)]
#[template(path = "server_progress.html")]
pub(super) struct ProgressFragment {
    t: &'static super::Catalogue,
    draining: bool,
    /// Followed while accounts still leave or reach the server (a drain, a move, a rebuild).
    watching: bool,
    remaining: String,
    accounts: Vec<AccountRow>,
    moving: String,
    moves: Vec<MoveRow>,
}

/// A move leaving or reaching a server, as its page lists it.
pub struct MoveRow {
    account: i64,
    domain: String,
    from: String,
    to: String,
    state: String,
}

pub async fn server(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> PageResult {
    let id: ServerId = path_id("server", &id)?;
    let mut view = server_page(&app, &viewer, id).await?;
    let own = ["drain", "maintenance-on", "maintenance-off", "rebuild"];
    view.page.notice = done.notice(&view.page, &own);
    Ok(render(StatusCode::OK, &view))
}

pub(super) async fn server_page(
    app: &AppState,
    viewer: &Viewer,
    id: ServerId,
) -> Result<ServerPage, WebError> {
    let t = viewer.lang.words();
    let store = &*app.store;
    let server = store.server(id).await?;
    let health = store.server_health(id).await?;
    let history = store
        .latest_audit_events(Some(&format!("server:{id}")), None, 30)
        .await?;
    let others = server_choices(store, Some(id)).await?;
    Ok(ServerPage {
        page: viewer.chrome(server.spec.name.to_string()),
        id: id.get(),
        name: server.spec.name.to_string(),
        host: format!("{}:{}", server.spec.hostname, server.spec.port),
        state: state_word(t, &server.state.to_string()),
        capacity: t.number(i64::from(server.spec.capacity)),
        health: health.as_ref().map(|h| {
            let reasons = h.reasons.join("; ");
            if reasons.is_empty() {
                format!("{:?}", h.verdict).to_lowercase()
            } else {
                format!("{:?}: {reasons}", h.verdict).to_lowercase()
            }
        }),
        checked_at: t.maybe_time(health.as_ref().map(|h| h.checked_at)),
        login_refused: server.login_refused.as_ref().map(|l| l.reason.clone()),
        break_glass: server.break_glass.as_ref().map(|m| {
            t.with(
                "server-break-glass-by",
                &[
                    ("reason", &m.reason),
                    ("by", &m.by),
                    ("since", &t.time(m.since)),
                ],
            )
        }),
        certificate_days: health
            .as_ref()
            .and_then(|h| h.probe.certificate_days_left)
            .map_or_else(|| "—".to_owned(), |d| t.number(d)),
        in_maintenance: server.state == ServerState::Maintenance,
        others,
        rebuild: None,
        history: history.iter().map(|e| EventRow::new(t, e)).collect(),
        can_drain: viewer.may(drover_core::Access::Operator)
            && !matches!(
                server.state,
                ServerState::Draining | ServerState::Decommissioned
            ),
        progress: fragment(&progress(app, viewer, id, server.state).await?)?,
    })
}

async fn progress(
    app: &AppState,
    viewer: &Viewer,
    id: ServerId,
    state: ServerState,
) -> Result<ProgressFragment, WebError> {
    let t = viewer.lang.words();
    let store = &*app.store;
    let held: Vec<Account> = crate::engine::accounts_on(store, id)
        .await?
        .into_iter()
        .filter(|a| a.desired_state != DesiredState::Absent)
        .collect();
    let moves = store.moves_under_way(id).await?;
    let names: std::collections::HashMap<ServerId, String> = if moves.is_empty() {
        Default::default()
    } else {
        store
            .servers(Page::new(None, Some(ALL)))
            .await?
            .into_iter()
            .map(|s| (s.id, s.spec.name.to_string()))
            .collect()
    };
    let name = |s: ServerId| names.get(&s).cloned().unwrap_or_else(|| format!("#{s}"));
    // A draining server stays draining once empty; a move waiting out its grace period before
    // the old copy goes (source disabled) has nothing left to watch for days.
    let draining = state == ServerState::Draining && !held.is_empty();
    let active = moves
        .iter()
        .any(|(_, m)| matches!(m.state, MoveState::Creating | MoveState::Switched));
    Ok(ProgressFragment {
        t,
        draining,
        watching: draining || active,
        moving: t.with(
            "server-moves-under-way",
            &[("count", &t.number(moves.len() as i64))],
        ),
        moves: moves
            .iter()
            .take(100)
            .map(|(domain, m)| MoveRow {
                account: m.account_id.get(),
                domain: domain.to_unicode(),
                from: name(m.from_server),
                to: name(m.to_server),
                state: state_word(t, m.state.as_str()),
            })
            .collect(),
        remaining: t.with(
            "server-accounts-here",
            &[("count", &t.number(held.len() as i64))],
        ),
        accounts: held
            .iter()
            .take(100)
            .map(|a| AccountRow::new(t, a))
            .collect(),
    })
}

/// The part of a server's page that follows a drain, fetched again by the page's script.
pub async fn server_progress(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let id: ServerId = path_id("server", &id)?;
    let server = app.store.server(id).await?;
    let fragment = progress(&app, &viewer, id, server.state).await?;
    Ok(render(StatusCode::OK, &fragment))
}

// ---------------------------------------------------------------- jobs

pub struct JobRow {
    id: i64,
    kind: String,
    state: String,
    attempts: String,
    account: Option<i64>,
    created: String,
    error: String,
}

impl JobRow {
    fn new(t: &super::Catalogue, j: &drover_store::JobSummary) -> Self {
        Self {
            id: j.id.get(),
            kind: j.kind.clone(),
            state: state_word(t, &j.state),
            attempts: format!("{}/{}", j.attempt, j.max_attempts),
            account: j.account_id.map(|a| a.get()),
            created: t.time(j.created_at),
            error: j.errors.last().cloned().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    page: Chrome,
    state: String,
    states: Vec<(String, String)>,
    rows: Vec<JobRow>,
}

#[derive(Debug, Deserialize)]
pub struct JobSearch {
    #[serde(default)]
    state: String,
}

pub async fn jobs(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(search): Query<JobSearch>,
) -> PageResult {
    let t = viewer.lang.words();
    let states = if search.state.is_empty() {
        Vec::new()
    } else {
        crate::api::parse_job_states(&search.state)?
    };
    let found = app
        .store
        .jobs(JobFilter {
            states,
            limit: Some(100),
            ..JobFilter::default()
        })
        .await?;
    let view = JobsPage {
        page: viewer.chrome(t.get("nav-jobs").to_owned()),
        states: [
            "available",
            "running",
            "retryable",
            "scheduled",
            "completed",
            "discarded",
            "cancelled",
        ]
        .iter()
        .map(|s| ((*s).to_owned(), state_word(t, s)))
        .collect(),
        state: search.state,
        rows: found.iter().map(|j| JobRow::new(t, j)).collect(),
    };
    Ok(render(StatusCode::OK, &view))
}

pub struct CallRow {
    at: String,
    server: String,
    call: String,
    outcome: String,
    message: String,
    duration: String,
}

#[derive(Template)]
#[template(path = "job.html")]
pub(super) struct JobPage {
    pub page: Chrome,
    live: JobLive,
    live_html: String,
}

/// The part of a job's page that follows it until it ends.
#[derive(Template)]
#[template(path = "job_live.html")]
pub(super) struct JobLive {
    t: &'static super::Catalogue,
    job: JobRow,
    queue: String,
    errors: Vec<String>,
    /// What the job answered: a plan's text as it is, anything else as indented JSON.
    output: Option<String>,
    calls: Vec<CallRow>,
    finished: bool,
}

pub async fn job(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(done): Query<Done>,
) -> PageResult {
    let id: JobId = path_id("job", &id)?;
    let mut view = job_page(&app, &viewer, id).await?;
    view.page.notice = done.notice(&view.page, &["retry", "cancel"]);
    Ok(render(StatusCode::OK, &view))
}

pub async fn job_live(
    State(app): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> PageResult {
    let id: JobId = path_id("job", &id)?;
    Ok(render(
        StatusCode::OK,
        &job_live_part(&app, &viewer, id).await?,
    ))
}

async fn job_live_part(app: &AppState, viewer: &Viewer, id: JobId) -> Result<JobLive, WebError> {
    let t = viewer.lang.words();
    let job = app.store.job(id).await?;
    let calls = app.store.job_calls(id).await?;
    let output = job
        .output
        .as_ref()
        .map(|o| match o.get("text").and_then(|t| t.as_str()) {
            Some(text) => text.to_owned(),
            None => serde_json::to_string_pretty(o).unwrap_or_default(),
        });
    Ok(JobLive {
        t,
        queue: job.queue.clone(),
        errors: job.errors.clone(),
        finished: matches!(job.state.as_str(), "completed" | "cancelled" | "discarded"),
        output,
        calls: calls
            .iter()
            .map(|c| CallRow {
                at: t.time(c.at),
                server: c.server.clone(),
                call: c.call.clone(),
                outcome: c.outcome.clone(),
                message: c.message.clone().unwrap_or_default(),
                duration: format!("{} ms", t.number(c.duration_ms)),
            })
            .collect(),
        job: JobRow::new(t, &job),
    })
}

pub(super) async fn job_page(
    app: &AppState,
    viewer: &Viewer,
    id: JobId,
) -> Result<JobPage, WebError> {
    let t = viewer.lang.words();
    let live = job_live_part(app, viewer, id).await?;
    Ok(JobPage {
        page: viewer.chrome(format!("{} #{id}", t.get("job"))),
        live_html: fragment(&live)?,
        live,
    })
}

/// A live part drawn on its own, to be put into its page as it is.
fn fragment(part: &impl Template) -> Result<String, WebError> {
    part.render()
        .map_err(|e| WebError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

// ---------------------------------------------------------------- drift, DNS, audit

pub struct DriftRow {
    server: i64,
    kind: String,
    domain: String,
    account: Option<i64>,
    expected: String,
    found: String,
    action: String,
    at: String,
}

#[derive(Template)]
#[template(path = "drift.html")]
pub(super) struct DriftPage {
    pub page: Chrome,
    rows: Vec<DriftRow>,
    servers: Vec<(i64, String)>,
}

pub async fn drift(State(app): State<AppState>, viewer: Viewer) -> PageResult {
    Ok(render(StatusCode::OK, &drift_page(&app, &viewer).await?))
}

pub(super) async fn drift_page(app: &AppState, viewer: &Viewer) -> Result<DriftPage, WebError> {
    let t = viewer.lang.words();
    let rows = app
        .store
        .drift_findings(None)
        .await?
        .iter()
        .map(|d| DriftRow {
            server: d.server_id.get(),
            kind: format!("{:?}", d.finding.kind).to_lowercase(),
            domain: d.finding.domain.clone(),
            account: d.finding.account_id.map(|a| a.get()),
            expected: d.finding.expected.clone().unwrap_or_default(),
            found: d.finding.found.clone().unwrap_or_default(),
            action: d
                .action
                .map_or_else(String::new, |a| format!("{a:?}").to_lowercase()),
            at: t.time(d.found_at),
        })
        .collect();
    let servers = server_choices(&*app.store, None).await?;
    Ok(DriftPage {
        page: viewer.chrome(t.get("nav-drift").to_owned()),
        rows,
        servers,
    })
}

pub struct ZoneRow {
    id: i64,
    name: String,
    account: Option<i64>,
    records: usize,
    providers: Vec<String>,
}

#[derive(Template)]
#[template(path = "dns.html")]
pub(super) struct DnsPage {
    pub page: Chrome,
    rows: Vec<ZoneRow>,
}

pub async fn dns(State(app): State<AppState>, viewer: Viewer) -> PageResult {
    Ok(render(StatusCode::OK, &dns_page(&app, &viewer).await?))
}

/// The zones, also drawn again with the reason when a forced apply is refused.
pub(super) async fn dns_page(app: &AppState, viewer: &Viewer) -> Result<DnsPage, WebError> {
    let t = viewer.lang.words();
    let zones = app.store.zones(ZoneFilter::default()).await?;
    let rows = zones
        .iter()
        .map(|z| ZoneRow {
            id: z.id.get(),
            name: z.name.to_unicode(),
            account: z.account_id.map(|a| a.get()),
            records: z.rrsets.len(),
            providers: z
                .providers
                .iter()
                .map(|p| {
                    let state = match &p.last_error {
                        Some(e) => format!("{}: {e}", t.get("dns-error")),
                        None if p.synced_generation >= z.generation => {
                            t.get("dns-in-sync").to_owned()
                        }
                        None => t.get("dns-pending").to_owned(),
                    };
                    format!("{} — {state}", p.provider_name)
                })
                .collect(),
        })
        .collect();
    Ok(DnsPage {
        page: viewer.chrome(t.get("nav-dns").to_owned()),
        rows,
    })
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    page: Chrome,
    rows: Vec<EventRow>,
    verified: Option<String>,
    next: Option<String>,
    subject: String,
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// Events older than this one (the next page, newest first).
    before: Option<i64>,
    verify: Option<String>,
    /// Only the events about one thing (`account:7`, `server:2`, `service:7`…).
    #[serde(default)]
    subject: String,
}

pub async fn audit(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(query): Query<AuditQuery>,
) -> PageResult {
    let t = viewer.lang.words();
    let subject = Some(query.subject.trim()).filter(|s| !s.is_empty());
    let events = app
        .store
        .latest_audit_events(subject, query.before, ROWS)
        .await?;
    let verified = match query.verify {
        Some(_) => {
            let report = app.store.verify_audit().await?;
            let checked = t.number(i64::try_from(report.events_checked).unwrap_or(i64::MAX));
            Some(if report.intact {
                t.with("audit-intact", &[("count", &checked)])
            } else {
                let problem = report.problem.map(|p| format!("{p:?}")).unwrap_or_default();
                t.with(
                    "audit-broken",
                    &[("count", &checked), ("problem", &problem)],
                )
            })
        }
        None => None,
    };
    let next = (events.len() == ROWS as usize).then(|| {
        let before = events.last().map_or(0, |e| e.id.get()).to_string();
        let query = serde_urlencoded::to_string([
            ("before", before.as_str()),
            ("subject", query.subject.trim()),
        ])
        .unwrap_or_default();
        format!("/ui/audit?{query}")
    });
    let view = AuditPage {
        page: viewer.chrome(t.get("nav-audit").to_owned()),
        rows: events.iter().map(|e| EventRow::new(t, e)).collect(),
        verified,
        next,
        subject: query.subject,
    };
    Ok(render(StatusCode::OK, &view))
}

// ---------------------------------------------------------------- bulk moves

pub struct BulkRow {
    job: i64,
    domain: String,
    state: String,
}

/// A bulk move's jobs, followed until each has ended.
#[derive(Template)]
#[template(path = "bulk_live.html")]
pub(super) struct BulkLive {
    t: &'static super::Catalogue,
    rows: Vec<BulkRow>,
    done: String,
    finished: bool,
}

#[derive(Debug, Deserialize)]
pub struct BulkJobs {
    #[serde(default)]
    jobs: String,
}

pub async fn bulk_live(
    State(app): State<AppState>,
    viewer: Viewer,
    Query(query): Query<BulkJobs>,
) -> PageResult {
    let jobs = query
        .jobs
        .split(',')
        .filter(|j| !j.is_empty())
        .take(1000)
        .map(|j| path_id::<JobId>("job", j))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(render(
        StatusCode::OK,
        &bulk_live_part(&app, &viewer, &jobs).await?,
    ))
}

pub(super) async fn bulk_live_part(
    app: &AppState,
    viewer: &Viewer,
    jobs: &[JobId],
) -> Result<BulkLive, WebError> {
    let t = viewer.lang.words();
    let mut rows = Vec::with_capacity(jobs.len());
    let mut ended = 0_i64;
    for &id in jobs {
        let job = app.store.job(id).await?;
        if matches!(job.state.as_str(), "completed" | "cancelled" | "discarded") {
            ended += 1;
        }
        let domain = match job.account_id {
            Some(account) => app.store.account(account).await?.domain_unicode,
            None => String::new(),
        };
        rows.push(BulkRow {
            job: id.get(),
            domain,
            state: state_word(t, &job.state),
        });
    }
    Ok(BulkLive {
        t,
        done: t.with(
            "bulk-progress",
            &[
                ("ended", &t.number(ended)),
                ("total", &t.number(jobs.len() as i64)),
            ],
        ),
        finished: ended == jobs.len() as i64,
        rows,
    })
}

#[derive(Template)]
#[template(path = "bulk.html")]
pub(super) struct BulkPage {
    pub page: Chrome,
    pub refused: Vec<(String, String)>,
    pub live_path: String,
    pub live_html: String,
}

/// The page a bulk move answers with: what was refused at once, and its jobs followed live.
pub(super) async fn bulk_page(
    app: &AppState,
    viewer: &Viewer,
    jobs: &[JobId],
    refused: Vec<(String, String)>,
) -> Result<BulkPage, WebError> {
    let t = viewer.lang.words();
    let live = bulk_live_part(app, viewer, jobs).await?;
    let list: Vec<String> = jobs.iter().map(ToString::to_string).collect();
    Ok(BulkPage {
        page: viewer.chrome(t.get("bulk").to_owned()),
        refused,
        live_path: format!("/ui/bulk/live?jobs={}", list.join(",")),
        live_html: fragment(&live)?,
    })
}
