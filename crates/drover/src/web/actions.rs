//! The forms: each checks the viewer's scope, calls the command layer as the API does, and
//! redirects to the page with a notice; a refusal draws the page again with the reason, and
//! nothing is changed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use drover_core::{Access, AccountId, JobId, ServerId, Transition};
use serde::Deserialize;

use super::pages::{account_page, job_page, path_id, server_page};
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
        _ => {
            return Err(WebError::new(
                StatusCode::NOT_FOUND,
                format!("no action '{action}': suspend, unsuspend, protect or unprotect"),
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
        .map(|_| ())
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
        Ok(()) => Ok(done(&format!("/ui/servers/{id}"), "drain")),
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
        return Err(WebError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            t.with("stop-confirm-wrong", &[("word", &t.get("stop-word"))]),
        ));
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
