//! Jobs: the durable work queue, with each job's attempts and calls; retry and cancel.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_core::{AccountId, JobId};
use drover_store::{JobAttempt, JobCall, JobFilter, JobState, JobSummary};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{Query, path_id};
use super::middleware::Caller;
use super::shared::Reply;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(retry_job))
        .routes(routes!(cancel_job))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct JobQuery {
    /// Comma-separated River states: available, scheduled, running, retryable, completed,
    /// discarded, cancelled, pending.
    #[param(
        pattern = r"^(available|scheduled|running|retryable|completed|discarded|cancelled|pending)(,(available|scheduled|running|retryable|completed|discarded|cancelled|pending))*$"
    )]
    status: Option<String>,
    #[param(value_type = Option<i64>)]
    account_id: Option<AccountId>,
    /// At most this many rows: 100 unless said; 0 is taken as 1 and more than 1000 as 1000.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobQuery),
    responses((status = 200, body = [JobSummary]), (status = 400, body = ErrorBody)))]
async fn list_jobs(
    State(app): State<AppState>,
    Query(query): Query<JobQuery>,
) -> Reply<Vec<JobSummary>> {
    let states = match &query.status {
        None => Vec::new(),
        Some(list) => parse_job_states(list)?,
    };
    let filter = JobFilter {
        states,
        account_id: query.account_id,
        limit: query.limit,
    };
    Ok(axum::Json(app.store.jobs(filter).await?))
}

pub fn parse_job_states(list: &str) -> Result<Vec<JobState>, ApiError> {
    list.split(',')
        .map(|s| {
            s.trim().parse::<JobState>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    format!(
                        "status '{s}' is not a job state; use available, scheduled, running, \
                         retryable, completed, discarded, cancelled or pending"
                    ),
                )
                .with_field("status")
            })
        })
        .collect()
}

/// A job with the Virtualmin calls it made (secrets masked).
#[derive(Debug, Serialize, ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    job: JobSummary,
    /// How each attempt ended, oldest first.
    attempts: Vec<JobAttempt>,
    calls: Vec<JobCall>,
}

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    responses((status = 200, body = JobDetail), (status = 404, body = ErrorBody)))]
async fn get_job(State(app): State<AppState>, Path(id): Path<String>) -> Reply<JobDetail> {
    let id: JobId = path_id("job", &id)?;
    let job = app.store.job(id).await?;
    let attempts = app.store.job_attempts(id).await?;
    let calls = app.store.job_calls(id).await?;
    Ok(axum::Json(JobDetail {
        job,
        attempts,
        calls,
    }))
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs",
    responses((status = 200, body = JobSummary), (status = 404, body = ErrorBody),
        (status = 409, description = "a job of its kind waits for the same account (`job_waiting`, naming it)", body = ErrorBody)))]
async fn retry_job(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Reply<JobSummary> {
    let id: JobId = path_id("job", &id)?;
    Ok(axum::Json(
        crate::commands::retry_job(&*app.store, &caller.context(), id).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    responses((status = 200, body = JobSummary), (status = 404, body = ErrorBody)))]
async fn cancel_job(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Reply<JobSummary> {
    let id: JobId = path_id("job", &id)?;
    Ok(axum::Json(
        crate::commands::cancel_job(&*app.store, &caller.context(), id).await?,
    ))
}
