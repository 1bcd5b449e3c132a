//! The audit trail and the check of its hash chain.

use axum::extract::State;
use drover_store::{AuditFilter, AuditReport, Page};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::extract::Query;
use super::shared::Reply;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit))
        .routes(routes!(verify_audit))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Like `service:7` or `server:2`.
    subject: Option<String>,
    after: Option<i64>,
    /// At most this many rows: 100 unless said; 0 is taken as 1 and more than 1000 as 1000.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = [drover_core::AuditEntry])))]
async fn list_audit(
    State(app): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> Reply<Vec<drover_core::AuditEntry>> {
    let filter = AuditFilter {
        subject: query.subject,
        page: Page::new(query.after, query.limit),
    };
    Ok(axum::Json(app.store.audit_events(filter).await?))
}

#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = AuditReport)))]
async fn verify_audit(State(app): State<AppState>) -> Reply<AuditReport> {
    Ok(axum::Json(app.store.verify_audit().await?))
}
