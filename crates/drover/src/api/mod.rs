//! The HTTP API v1: JSON over axum, every route but the probes behind a bearer token. The
//! web UI ([`crate::web`]) is served beside it, on the same state.
//!
//! Requests pass, outermost first: correlation id → authentication and scope → idempotency
//! (POSTs with an `Idempotency-Key`) → the handler, which validates, records and enqueues
//! through the store, and never calls a server itself.

mod accounts;
mod audit;
mod backups;
mod bootstraps;
mod certificates;
mod customers;
mod databases;
mod dns;
mod drift;
mod error;
mod extract;
mod jobs;
mod login_links;
mod mailboxes;
pub(crate) mod middleware;
mod openapi;
mod other_domains;
mod plans;
mod probes;
mod provisioning;
mod servers;
mod services;
mod shared;
mod tokens;
mod usage;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use drover_store::Store;
use utoipa_axum::router::OpenApiRouter;

use crate::engine::Sealer;

pub(crate) use error::ApiError;
pub use extract::parse_json;
pub(crate) use extract::path_id;
pub use jobs::parse_job_states;
pub use middleware::new_correlation_id;
pub use openapi::document as openapi_document;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Seals account passwords sent by billing before they are stored.
    pub sealer: Arc<Sealer>,
    pub settings: ApiSettings,
    pub tokens: Arc<middleware::TokenCache>,
}

/// The settings handlers plan with.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    /// How long a moved account's old copy is kept when the request does not say.
    pub migration_grace: std::time::Duration,
    /// How drains choose where accounts go.
    pub placement: drover_core::PlacementPolicy,
    /// The call rate a rebuild's time is estimated at, for servers that set none.
    pub virtualmin_rate_qps: f64,
    /// Where a server's or DNS provider's credentials may point.
    pub secret_sources: drover_core::SecretSources,
    /// New domains that can pass for others are refused, not only warned about.
    pub refuse_confusable: bool,
    /// The billing system may delete an account's resources without repeating their names.
    pub billing_deletes_unconfirmed: bool,
    /// The local copy of Webmin and Virtualmin bootstraps install from.
    pub virtualmin_sources: Option<std::path::PathBuf>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            migration_grace: crate::engine::FleetPolicy::default().migration_grace,
            placement: drover_core::PlacementPolicy::default(),
            virtualmin_rate_qps: drover_virtualmin::VirtualminSettings::default().rate_qps,
            secret_sources: drover_core::SecretSources {
                dir: std::env::current_dir().unwrap_or_default().join("secrets"),
                env_prefix: drover_core::SecretSources::DEFAULT_ENV_PREFIX.to_owned(),
            },
            refuse_confusable: false,
            billing_deletes_unconfirmed: false,
            virtualmin_sources: None,
        }
    }
}

/// The whole HTTP surface of drover, with default settings.
pub fn router(store: Arc<dyn Store>, sealer: Arc<Sealer>) -> Router {
    router_with(store, sealer, ApiSettings::default())
}

/// Every route behind a token, each resource module declaring its routes once for both the
/// router and the OpenAPI document.
fn resources() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(customers::routes())
        .merge(plans::routes())
        .merge(servers::routes())
        .merge(bootstraps::routes())
        .merge(drift::routes())
        .merge(usage::routes())
        .merge(services::routes())
        .merge(accounts::routes())
        .merge(mailboxes::routes())
        .merge(databases::routes())
        .merge(other_domains::routes())
        .merge(login_links::routes())
        .merge(certificates::routes())
        .merge(backups::routes())
        .merge(jobs::routes())
        .merge(provisioning::routes())
        .merge(audit::routes())
        .merge(tokens::routes())
        .merge(dns::routes())
        .merge(webhooks::routes())
}

/// The whole HTTP surface of drover.
pub fn router_with(store: Arc<dyn Store>, sealer: Arc<Sealer>, settings: ApiSettings) -> Router {
    let state = AppState {
        store,
        sealer,
        settings,
        tokens: Arc::default(),
    };
    let (api, _) = resources().split_for_parts();
    let api = api
        .route("/api/v1/openapi.json", get(openapi::serve))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::idempotency,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authenticate,
        ));
    let (probes, _) = probes::routes().split_for_parts();
    Router::new()
        .merge(probes)
        .merge(api)
        .merge(crate::web::routes(state.clone()))
        .fallback(error::no_such_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .layer(axum::middleware::from_fn(middleware::correlate))
        .with_state(state)
}
