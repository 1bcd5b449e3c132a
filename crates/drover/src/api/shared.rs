//! Shapes every resource module answers with.

use axum::http::StatusCode;
use drover_core::{Confirmation, JobId};
use drover_store::Page;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::commands::Requested;

use super::AppState;
use super::error::ApiError;
use super::middleware::Caller;

pub type Reply<T> = Result<axum::Json<T>, ApiError>;
/// An answer with its own status (201 created, 202 accepted).
pub type WithStatus<T> = Result<(StatusCode, axum::Json<T>), ApiError>;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Return rows with an id above this one.
    after: Option<i64>,
    /// At most this many rows: 100 unless said; 0 is taken as 1 and more than 1000 as 1000.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    limit: Option<u32>,
}

impl PageQuery {
    pub fn page(&self) -> Page {
        Page::new(self.after, self.limit)
    }
}

/// The job queued to carry the change out; follow it at `/api/v1/jobs/{job_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    #[schema(value_type = i64)]
    job_id: JobId,
}

impl Accepted {
    pub fn new(job_id: JobId) -> Self {
        Self { job_id }
    }
}

/// Queues what an operator asked for: 202 with its job.
pub async fn queue(app: &AppState, caller: &Caller, request: Requested) -> WithStatus<Accepted> {
    let job_id = crate::commands::request(&*app.store, &caller.context(), request).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(Accepted::new(job_id))))
}

/// How a deletion of customer data was confirmed: the name the request repeated, or none from
/// the billing system when an operator allowed its cleanup without
/// (`DROVER_BILLING_DELETES_UNCONFIRMED`). Anyone else must repeat it.
pub fn confirmation(app: &AppState, caller: &Caller, typed: Option<String>) -> Confirmation {
    match typed {
        Some(typed) => Confirmation::Typed(typed),
        None if app.settings.billing_deletes_unconfirmed
            && caller.token.scope == drover_core::Scope::Billing =>
        {
            Confirmation::BillingCleanup
        }
        None => Confirmation::Typed(String::new()),
    }
}
