//! Let's Encrypt certificates: billing or an operator asks for one per account, a job requests
//! it once the account's DNS points at its server, and anyone who reads sees how each stands
//! (and which expire without having been renewed).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_core::{AccountId, CertificateState, ServerId};
use drover_store::{Certificate, CertificateFilter, Page};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{Query, path_id};
use super::middleware::Caller;
use super::shared::{Reply, WithStatus};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            get_certificate,
            request_certificate,
            forget_certificate
        ))
        .routes(routes!(list_certificates))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct CertificateQuery {
    state: Option<CertificateState>,
    #[param(value_type = Option<i64>)]
    server_id: Option<ServerId>,
    /// Only issued certificates that expire within this many days (at most 3650).
    #[param(minimum = 0, maximum = 3650)]
    expiring_within_days: Option<u32>,
    after: Option<i64>,
    /// At most this many rows: 100 unless said; 0 is taken as 1 and more than 1000 as 1000.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/certificates", tag = "certificates", params(CertificateQuery),
    responses((status = 200, body = [Certificate]),
        (status = 422, description = "`expiring_within_days` over 3650", body = ErrorBody)))]
async fn list_certificates(
    State(app): State<AppState>,
    Query(query): Query<CertificateQuery>,
) -> Reply<Vec<Certificate>> {
    let now = jiff::Timestamp::now();
    let filter = CertificateFilter {
        state: query.state,
        server: query.server_id,
        expiring_before: query
            .expiring_within_days
            .map(|days| drover_core::expiring_within(now, days))
            .transpose()
            .map_err(|e| ApiError::from(e).with_field("expiring_within_days"))?,
        page: Page::new(query.after, query.limit),
    };
    Ok(axum::Json(app.store.certificates(filter).await?))
}

#[utoipa::path(get, path = "/api/v1/accounts/{id}/certificate", tag = "certificates",
    responses((status = 200, body = Certificate),
        (status = 404, description = "no such account, or none asked for", body = ErrorBody)))]
async fn get_certificate(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Reply<Certificate> {
    let id: AccountId = path_id("account", &id)?;
    Ok(axum::Json(
        crate::commands::certificate(&*app.store, id).await?,
    ))
}

/// A certificate asked for, and the job that requests it.
#[derive(Serialize, ToSchema)]
pub struct CertificateRequested {
    certificate: Certificate,
    #[schema(value_type = i64)]
    job_id: drover_core::JobId,
}

#[utoipa::path(post, path = "/api/v1/accounts/{id}/certificate", tag = "certificates",
    responses((status = 202, description = "recorded; a job asks Let's Encrypt through the account's server once its DNS points there (a request waiting after a failure is brought forward)", body = CertificateRequested),
        (status = 404, body = ErrorBody),
        (status = 409, description = "the account is deleted or suspended, its plan has no website (`feature_missing`), or Let's Encrypt's hourly limit of failed validations is reached (`certificate_refused`, with when the next request can be made)", body = ErrorBody)))]
async fn request_certificate(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> WithStatus<CertificateRequested> {
    let id: AccountId = path_id("account", &id)?;
    let (certificate, job_id) =
        crate::commands::request_certificate(&*app.store, &caller.context(), id).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(CertificateRequested {
            certificate,
            job_id,
        }),
    ))
}

#[utoipa::path(delete, path = "/api/v1/accounts/{id}/certificate", tag = "certificates",
    responses((status = 204, description = "drover stops asking; a certificate the server installed stays there"),
        (status = 404, body = ErrorBody)))]
async fn forget_certificate(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: AccountId = path_id("account", &id)?;
    crate::commands::forget_certificate(&*app.store, &caller.context(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
