use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{dns, routes};

/// The OpenAPI document served at `/api/v1/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "drover",
        description = "The provisioning control plane of a web-hosting business. Every route \
                       but the probes needs `Authorization: Bearer <token>`; a token's scope \
                       (operator, billing, readonly) decides what it may do."
    ),
    paths(
        routes::healthz, routes::readyz,
        routes::create_customer, routes::list_customers, routes::get_customer,
        routes::create_plan, routes::list_plans, routes::get_plan, routes::update_plan,
        routes::create_server, routes::list_servers, routes::get_server, routes::update_server,
        routes::server_health, routes::set_maintenance, routes::allow_login, routes::drain_server, routes::decommission_server,
        routes::rebuild_server, routes::scan_drift, routes::list_drift,
        routes::sync_usage, routes::list_usage, routes::service_usage,
        routes::create_service, routes::list_services, routes::get_service, routes::move_service,
        routes::change_plan, routes::change_password, routes::bulk_services,
        routes::list_accounts, routes::get_account, routes::protect_account, routes::unprotect_account,
        routes::migrate_account, routes::get_migration, routes::confirm_migration,
        routes::list_jobs, routes::get_job, routes::retry_job, routes::cancel_job,
        routes::provisioning_status, routes::pause_provisioning, routes::resume_provisioning,
        routes::list_audit, routes::verify_audit,
        routes::create_token, routes::list_tokens, routes::revoke_token,
        dns::create_provider, dns::list_providers, dns::create_zone, dns::list_zones,
        dns::get_zone, dns::set_rrset, dns::delete_rrset, dns::sync_zone, dns::delete_zone,
        dns::rewrite,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
#[derive(Debug)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}
