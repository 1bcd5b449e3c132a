//! The HTTP API v1: JSON over axum, every route but the probes behind a bearer token.
//!
//! Requests pass, outermost first: correlation id → authentication and scope → idempotency
//! (POSTs with an `Idempotency-Key`) → the handler, which validates, records and enqueues
//! through the store, and never calls a server itself.

mod dns;
mod error;
mod extract;
mod middleware;
mod openapi;
mod routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use drover_store::Store;

use crate::engine::Sealer;

pub use extract::parse_json;
pub use middleware::new_correlation_id;
pub use openapi::ApiDoc;
pub use routes::parse_job_states;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Seals account passwords sent by billing before they are stored.
    pub sealer: Arc<Sealer>,
    /// How long a moved account's old copy is kept when the request does not say.
    pub migration_grace: std::time::Duration,
    /// How drains choose where accounts go.
    pub placement: drover_core::PlacementPolicy,
}

/// The whole HTTP surface of drover, with default settings.
pub fn router(store: Arc<dyn Store>, sealer: Arc<Sealer>) -> Router {
    let grace = crate::engine::FleetPolicy::default().migration_grace;
    router_with(
        store,
        sealer,
        grace,
        drover_core::PlacementPolicy::default(),
    )
}

/// The whole HTTP surface of drover.
pub fn router_with(
    store: Arc<dyn Store>,
    sealer: Arc<Sealer>,
    migration_grace: std::time::Duration,
    placement: drover_core::PlacementPolicy,
) -> Router {
    let state = AppState {
        store,
        sealer,
        migration_grace,
        placement,
    };
    let api = routes::v1()
        .merge(dns::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::idempotency,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authenticate,
        ));
    Router::new()
        .merge(routes::probes())
        .merge(api)
        .fallback(routes::no_such_route)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .layer(axum::middleware::from_fn(middleware::correlate))
        .with_state(state)
}
