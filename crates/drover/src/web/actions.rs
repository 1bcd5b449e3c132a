//! The forms: each checks the viewer's scope, calls the command layer as the API does (one
//! transaction: a refused change changes nothing), and redirects to the page with a notice; a
//! refusal draws the page again with the reason.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use drover_core::{Access, AccountId, JobId, ServerId, Transition, ZoneId};
use drover_store::jobs::DriftRepair;
use serde::Deserialize;

use super::pages::{
    account_page, dashboard_page, dns_page, drift_page, job_page, path_id, server_page,
};
use super::session::Posted;
use super::{WebError, render};
use crate::api::AppState;

type ActionResult = Result<Response, WebError>;

fn done(path: &str, what: &str) -> Response {
    Redirect::to(&format!("{path}?done={what}")).into_response()
}

/// The status and words of a refusal, for drawing the page again.
fn refusal(e: impl Into<WebError>) -> Result<(StatusCode, String), WebError> {
    match e.into() {
        WebError::Page { status, message } if status.is_client_error() => Ok((status, message)),
        other => Err(other),
    }
}

#[derive(Debug, Deserialize)]
pub struct AccountForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: String,
    plan: Option<String>,
    force: Option<String>,
    to: Option<String>,
    without_content: Option<String>,
}

/// Suspend, unsuspend, protect or unprotect an account.
pub async fn account(
    State(app): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    posted: Posted<AccountForm>,
) -> ActionResult {
    let id: AccountId = path_id("account", &id)?;
    let viewer = &posted.viewer;
    let form = &posted.form;
    let store = &*app.store;
    let ctx = viewer.context();
    let outcome = match action.as_str() {
        "suspend" | "unsuspend" => {
            // Suspension is billing's move on the service; an operator may make it too.
            viewer.require(Access::Billing)?;
            let transition = if action == "suspend" {
                Transition::Suspend
            } else {
                Transition::Unsuspend
            };
            let reason = form.reason.trim();
            let service = store.account(id).await?.service_id;
            crate::commands::transition_service(
                store,
                &ctx,
                service,
                transition,
                (!reason.is_empty()).then_some(reason),
            )
            .await
            .map(|_| ())
        }
        "protect" | "unprotect" => {
            viewer.require(Access::Operator)?;
            crate::commands::set_protection(store, &ctx, id, action == "protect", &form.confirm)
                .await
                .map(|_| ())
        }
        "plan" => {
            // A plan change is billing's too.
            viewer.require(Access::Billing)?;
            let plan = path_id("plan", form.plan.as_deref().unwrap_or_default())?;
            let service = store.account(id).await?.service_id;
            crate::commands::change_plan(store, &ctx, service, plan, form.force.is_some())
                .await
                .map(|_| ())
        }
        "migrate" => {
            viewer.require(Access::Operator)?;
            let to = path_id("server", form.to.as_deref().unwrap_or_default())?;
            crate::commands::start_migration(
                store,
                &ctx,
                id,
                to,
                app.settings.migration_grace,
                crate::commands::WithoutContent::allowed(form.without_content.is_some()),
            )
            .await
            .map(|_| ())
        }
        _ => {
            return Err(WebError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "no action '{action}': suspend, unsuspend, protect, unprotect, plan or migrate"
                ),
            ));
        }
    };
    let path = format!("/ui/accounts/{id}");
    match outcome {
        Ok(()) => Ok(done(&path, &action)),
        Err(e) => {
            let (status, message) = refusal(e)?;
            let mut page = account_page(&app, viewer, id).await?;
            page.page.error = Some(message);
            Ok(render(status, &page))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct DrainForm {
    #[serde(default)]
    confirm: String,
    without_content: Option<String>,
}

/// Drains a server: its accounts are placed elsewhere and moved by jobs. The server's name,
/// typed, confirms it.
pub async fn drain(
    State(app): State<AppState>,
    Path(id): Path<String>,
    posted: Posted<DrainForm>,
) -> ActionResult {
    let id: ServerId = path_id("server", &id)?;
    let viewer = &posted.viewer;
    viewer.require(Access::Operator)?;
    let store = &*app.store;
    let name = store.server(id).await?.spec.name.to_string();
    let outcome = if posted.form.confirm.trim() == name {
        crate::commands::drain(
            store,
            &viewer.context(),
            &app.settings.placement,
            id,
            app.settings.migration_grace,
            false,
            crate::commands::WithoutContent::allowed(posted.form.without_content.is_some()),
        )
        .await
        .map_err(WebError::from)
    } else {
        Err(WebError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            viewer
                .lang
                .words()
                .with("server-drain-confirm-wrong", &[("name", &name)]),
        ))
    };
    match outcome {
        Ok(plan) => Ok(Redirect::to(&format!(
            "/ui/servers/{id}?done=drain&moves={}&unplaced={}",
            plan.moves.len(),
            plan.unplaced.len()
        ))
        .into_response()),
        Err(e) => {
            let (status, message) = refusal(e)?;
            let mut page = server_page(&app, viewer, id).await?;
            page.page.error = Some(message);
            Ok(render(status, &page))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ProvisioningForm {
    paused: String,
    #[serde(default)]
    confirm: String,
}

/// The emergency stop, and going on again. Stopping asks for a typed word.
pub async fn provisioning(
    State(app): State<AppState>,
    posted: Posted<ProvisioningForm>,
) -> ActionResult {
    let viewer = &posted.viewer;
    viewer.require(Access::Operator)?;
    let t = viewer.lang.words();
    let paused = posted.form.paused == "true";
    if paused && posted.form.confirm.trim() != t.get("stop-word") {
        let mut page = dashboard_page(&app, viewer).await?;
        page.page.error = Some(t.with("stop-confirm-wrong", &[("word", &t.get("stop-word"))]));
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
    }
    crate::commands::set_provisioning_paused(&*app.store, &viewer.context(), paused).await?;
    Ok(done("/ui", if paused { "paused" } else { "resumed" }))
}

#[derive(Debug, Deserialize)]
pub struct Nothing {}

/// Retry or cancel a job.
pub async fn job(
    State(app): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    posted: Posted<Nothing>,
) -> ActionResult {
    let id: JobId = path_id("job", &id)?;
    let viewer = &posted.viewer;
    viewer.require(Access::Operator)?;
    let ctx = viewer.context();
    let outcome = match action.as_str() {
        "retry" => crate::commands::retry_job(&*app.store, &ctx, id).await,
        "cancel" => crate::commands::cancel_job(&*app.store, &ctx, id).await,
        _ => {
            return Err(WebError::new(
                StatusCode::NOT_FOUND,
                format!("no action '{action}': retry or cancel"),
            ));
        }
    };
    match outcome {
        Ok(_) => Ok(done(&format!("/ui/jobs/{id}"), &action)),
        Err(e) => {
            let (status, message) = refusal(e)?;
            let mut page = job_page(&app, viewer, id).await?;
            page.page.error = Some(message);
            Ok(render(status, &page))
        }
    }
}

/// A job's page, where what it does is followed until it ends.
fn to_job(job: JobId) -> Response {
    Redirect::to(&format!("/ui/jobs/{job}")).into_response()
}

#[derive(Debug, Deserialize)]
pub struct ZoneForm {
    force: Option<String>,
    #[serde(default)]
    confirm: String,
}

/// Plans a zone (each provider's changes, as a diff) or applies it; a forced apply, past the
/// safety limits, repeats the zone's name.
pub async fn zone(
    State(app): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    posted: Posted<ZoneForm>,
) -> ActionResult {
    let viewer = &posted.viewer;
    viewer.require(Access::Operator)?;
    let store = &*app.store;
    let zone = store.zone(path_id::<ZoneId>("zone", &id)?).await?;
    let ctx = viewer.context();
    let job = match action.as_str() {
        "plan" => {
            crate::commands::request(
                store,
                &ctx,
                crate::commands::Requested::ZonePlan { zone: zone.id },
            )
            .await?
        }
        "apply" => {
            let force = posted.form.force.is_some();
            let confirmed = zone.name.confirm_as("zone", &posted.form.confirm, || {
                format!(
                    "apply zone {} past its safety limits",
                    zone.name.to_unicode()
                )
            });
            if let (true, Err(refused)) = (force, confirmed) {
                let mut page = dns_page(&app, viewer).await?;
                page.page.error = Some(refused.to_string());
                return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
            }
            crate::commands::sync_zone(store, &ctx, zone.id, force).await?
        }
        _ => {
            return Err(WebError::new(
                StatusCode::NOT_FOUND,
                format!("no action '{action}': plan or apply"),
            ));
        }
    };
    Ok(to_job(job))
}

#[derive(Debug, Deserialize)]
pub struct DriftForm {
    #[serde(default)]
    confirm: String,
}

/// Scans a server for drift, says what a repair would do, repairs within the drift limits,
/// or (the server's name typed) past them.
pub async fn drift(
    State(app): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    posted: Posted<DriftForm>,
) -> ActionResult {
    let viewer = &posted.viewer;
    viewer.require(Access::Operator)?;
    let store = &*app.store;
    let id: ServerId = path_id("server", &id)?;
    let name = store.server(id).await?.spec.name.to_string();
    let repair = match action.as_str() {
        "scan" => DriftRepair::ScanOnly,
        "plan" => DriftRepair::DryRun,
        "repair" => DriftRepair::ByPolicy,
        "force" if posted.form.confirm.trim() == name => DriftRepair::Forced,
        "force" => {
            let t = viewer.lang.words();
            let mut page = drift_page(&app, viewer).await?;
            page.page.error = Some(t.with("drift-force-confirm-wrong", &[("name", &name)]));
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
        _ => {
            return Err(WebError::new(
                StatusCode::NOT_FOUND,
                format!("no action '{action}': scan, plan, repair or force"),
            ));
        }
    };
    let requested = crate::commands::Requested::DriftScan {
        server: Some(id),
        repair,
    };
    Ok(to_job(
        crate::commands::request(store, &viewer.context(), requested).await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct ServerForm {
    on: Option<String>,
    onto: Option<String>,
    #[serde(default)]
    confirm: String,
}

/// Maintenance on and off, and a rebuild onto another server: planned first (shown on the
/// page), then started with the lost server's name typed.
pub async fn server(
    State(app): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    posted: Posted<ServerForm>,
) -> ActionResult {
    let id: ServerId = path_id("server", &id)?;
    let viewer = &posted.viewer;
    viewer.require(Access::Operator)?;
    let store = &*app.store;
    let ctx = viewer.context();
    let form = &posted.form;
    match action.as_str() {
        "maintenance" => {
            let on = form.on.as_deref() == Some("true");
            match crate::commands::set_maintenance(store, &ctx, id, on).await {
                Ok(_) => Ok(done(
                    &format!("/ui/servers/{id}"),
                    if on {
                        "maintenance-on"
                    } else {
                        "maintenance-off"
                    },
                )),
                Err(e) => server_refused(&app, viewer, id, e.into()).await,
            }
        }
        "rebuild-plan" | "rebuild" => {
            let onto: ServerId = path_id("server", form.onto.as_deref().unwrap_or_default())?;
            let lost = store.server(id).await?;
            let start = action == "rebuild";
            if start && form.confirm.trim() != lost.spec.name.as_str() {
                let t = viewer.lang.words();
                let name = lost.spec.name.to_string();
                let message = t.with("server-rebuild-confirm-wrong", &[("name", &name)]);
                let refused = WebError::new(StatusCode::UNPROCESSABLE_ENTITY, message);
                return server_refused(&app, viewer, id, refused).await;
            }
            let rate = app.settings.virtualmin_rate_qps;
            let plan = match crate::commands::rebuild(store, &ctx, &lost, onto, rate, !start).await
            {
                Ok(plan) => plan,
                Err(e) => return server_refused(&app, viewer, id, e.into()).await,
            };
            if plan.started {
                return Ok(done(&format!("/ui/servers/{onto}"), "rebuild"));
            }
            let mut page = server_page(&app, viewer, id).await?;
            page.rebuild = Some((onto.get(), plan));
            Ok(render(StatusCode::OK, &page))
        }
        _ => Err(WebError::new(
            StatusCode::NOT_FOUND,
            format!("no action '{action}': maintenance, rebuild-plan or rebuild"),
        )),
    }
}

/// A server's page drawn again with why its form was refused.
async fn server_refused(
    app: &AppState,
    viewer: &super::session::Viewer,
    id: ServerId,
    e: WebError,
) -> ActionResult {
    let (status, message) = refusal(e)?;
    let mut page = server_page(app, viewer, id).await?;
    page.page.error = Some(message);
    Ok(render(status, &page))
}

/// Suspends or unsuspends the accounts ticked on the accounts page, each in its own
/// transaction (as billing's bulk request does), then follows their jobs.
pub async fn bulk(
    State(app): State<AppState>,
    posted: Posted<Vec<(String, String)>>,
) -> ActionResult {
    let viewer = &posted.viewer;
    viewer.require(Access::Billing)?;
    let field = |name: &str| {
        posted
            .form
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.trim())
    };
    let services = posted
        .form
        .iter()
        .filter(|(n, _)| n == "service")
        .map(|(_, v)| path_id::<drover_core::ServiceId>("service", v))
        .collect::<Result<Vec<_>, _>>()?;
    if services.is_empty() || services.len() > 1000 {
        let t = viewer.lang.words();
        return Err(WebError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            t.get("bulk-none-chosen"),
        ));
    }
    let action = match field("action") {
        "suspend" => {
            let reason = Some(field("reason")).filter(|r| !r.is_empty());
            let reason = reason
                .map(drover_core::SuspendReason::parse)
                .transpose()
                .map_err(crate::commands::Error::from)?;
            crate::bulk::BulkAction::Suspend { reason }
        }
        "unsuspend" => crate::bulk::BulkAction::Unsuspend,
        other => {
            return Err(WebError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("no bulk action '{other}': suspend or unsuspend"),
            ));
        }
    };
    let store = &*app.store;
    let queued = crate::bulk::queue(
        store,
        &viewer.context(),
        &action,
        &services,
        &crate::bulk::Interrupt::default(),
    )
    .await;
    let mut refused = Vec::with_capacity(queued.refused.len());
    for (service, why) in queued.refused {
        let domain = match store.service(service).await {
            Ok(s) => s.domain_unicode,
            Err(_) => format!("#{service}"),
        };
        refused.push((domain, why));
    }
    let jobs: Vec<JobId> = queued.queued.iter().map(|(_, job)| *job).collect();
    let page = super::pages::bulk_page(&app, viewer, &jobs, refused).await?;
    Ok(render(StatusCode::OK, &page))
}
