//! Customers: billing's record of who buys services.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_core::{CustomerId, CustomerSpec};
use drover_store::Customer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::extract::{Json, Query, path_id};
use super::middleware::Caller;
use super::shared::{PageQuery, Reply, WithStatus};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_customer, list_customers))
        .routes(routes!(get_customer))
}

#[utoipa::path(post, path = "/api/v1/customers", tag = "customers", request_body = CustomerSpec,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes a retry return the first answer")),
    responses((status = 201, body = Customer), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_customer(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(spec): Json<CustomerSpec>,
) -> WithStatus<Customer> {
    let customer = crate::commands::create_customer(&*app.store, &caller.context(), spec).await?;
    Ok((StatusCode::CREATED, axum::Json(customer)))
}

#[utoipa::path(get, path = "/api/v1/customers", tag = "customers", params(PageQuery),
    responses((status = 200, body = [Customer])))]
async fn list_customers(
    State(app): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Reply<Vec<Customer>> {
    Ok(axum::Json(app.store.customers(query.page()).await?))
}

#[utoipa::path(get, path = "/api/v1/customers/{id}", tag = "customers",
    responses((status = 200, body = Customer), (status = 404, body = ErrorBody)))]
async fn get_customer(State(app): State<AppState>, Path(id): Path<String>) -> Reply<Customer> {
    let id: CustomerId = path_id("customer", &id)?;
    Ok(axum::Json(app.store.customer(id).await?))
}
