//! DNS routes: providers, zones and their records, sync and the failover rewrite. Handlers
//! change drover's data and enqueue the jobs that carry it to the providers; none of them
//! talks to a provider itself.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_core::DnsProviderId;
use drover_core::{AddressMove, DomainName, OwnerName, RecordType, RrSet};
use drover_store::{DnsProviderRecord, DnsProviderSpec, Zone, ZoneFilter};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Query};
use super::middleware::Caller;
use super::shared::{Accepted, Reply, WithStatus};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_provider, list_providers))
        .routes(routes!(create_zone, list_zones))
        .routes(routes!(get_zone))
        .routes(routes!(set_rrset))
        .routes(routes!(delete_rrset))
        .routes(routes!(sync_zone))
        .routes(routes!(delete_zone))
        .routes(routes!(rewrite))
}

fn zone_name(raw: &str) -> Result<DomainName, ApiError> {
    Ok(DomainName::parse(raw)?)
}

#[utoipa::path(post, path = "/api/v1/dns/providers", tag = "dns", request_body = DnsProviderSpec,
    responses((status = 201, body = DnsProviderRecord), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_provider(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(spec): Json<DnsProviderSpec>,
) -> WithStatus<DnsProviderRecord> {
    app.settings.secret_sources.check(&spec.credentials)?;
    let provider =
        crate::commands::create_dns_provider(&*app.store, &caller.context(), spec).await?;
    Ok((StatusCode::CREATED, axum::Json(provider)))
}

#[utoipa::path(get, path = "/api/v1/dns/providers", tag = "dns",
    responses((status = 200, body = [DnsProviderRecord])))]
pub async fn list_providers(State(app): State<AppState>) -> Reply<Vec<DnsProviderRecord>> {
    Ok(axum::Json(app.store.dns_providers().await?))
}

/// An rrset as the API takes it: names relative (`www`, `@`) or absolute, contents in any of
/// the forms drover reads.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RrSetInput {
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    ttl: u32,
    records: Vec<String>,
}

impl RrSetInput {
    fn parse(&self, zone: &DomainName) -> Result<RrSet, ApiError> {
        let owner = OwnerName::parse(&self.name, zone)?;
        let rtype = RecordType::parse(&self.rtype)?;
        Ok(RrSet::new(
            owner,
            rtype,
            self.ttl,
            self.records.iter().map(String::as_str),
        )?)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewZone {
    name: String,
    /// Names of the providers that serve it.
    #[serde(default)]
    providers: Vec<String>,
    #[serde(default)]
    rrsets: Vec<RrSetInput>,
}

#[utoipa::path(post, path = "/api/v1/dns/zones", tag = "dns", request_body = NewZone,
    responses((status = 201, body = Zone), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_zone(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(new): Json<NewZone>,
) -> WithStatus<Zone> {
    let name = zone_name(&new.name)?;
    let rrsets = new
        .rrsets
        .iter()
        .map(|r| r.parse(&name))
        .collect::<Result<Vec<_>, _>>()?;
    let mut providers: Vec<DnsProviderId> = Vec::new();
    for provider in &new.providers {
        providers.push(
            app.store
                .dns_provider_by_name(provider)
                .await
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "unknown_provider",
                        format!("no DNS provider named '{provider}'"),
                    )
                    .with_field("providers")
                })?
                .id,
        );
    }
    let zone = crate::commands::create_zone(
        &*app.store,
        &caller.context(),
        &name,
        None,
        rrsets,
        &providers,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(zone)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ZoneQuery {
    /// Only zones this provider serves.
    #[param(min_length = 1)]
    provider: Option<String>,
    after: Option<i64>,
    /// At most this many rows: 100 unless said; 0 is taken as 1 and more than 1000 as 1000.
    #[param(value_type = Option<i64>, minimum = 0, maximum = 4294967295_i64)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/dns/zones", tag = "dns", params(ZoneQuery),
    responses((status = 200, body = [Zone]),
        (status = 404, description = "no such provider", body = ErrorBody)))]
pub async fn list_zones(
    State(app): State<AppState>,
    Query(query): Query<ZoneQuery>,
) -> Reply<Vec<Zone>> {
    let provider = match &query.provider {
        Some(name) => Some(app.store.dns_provider_by_name(name).await?.id),
        None => None,
    };
    let filter = ZoneFilter {
        provider,
        after: query.after.map(drover_core::ZoneId),
        limit: Some(query.limit.unwrap_or(100).min(1000)),
    };
    Ok(axum::Json(app.store.zones(filter).await?))
}

#[utoipa::path(get, path = "/api/v1/dns/zones/{zone}", tag = "dns",
    responses((status = 200, body = Zone), (status = 404, body = ErrorBody)))]
pub async fn get_zone(State(app): State<AppState>, Path(zone): Path<String>) -> Reply<Zone> {
    Ok(axum::Json(
        app.store.zone_by_name(&zone_name(&zone)?).await?,
    ))
}

#[utoipa::path(put, path = "/api/v1/dns/zones/{zone}/rrsets", tag = "dns", request_body = RrSetInput,
    responses((status = 200, body = Zone), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_rrset(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(zone): Path<String>,
    Json(input): Json<RrSetInput>,
) -> Reply<Zone> {
    let zone = app.store.zone_by_name(&zone_name(&zone)?).await?;
    let rrset = input.parse(&zone.name)?;
    let zone = crate::commands::set_rrset(&*app.store, &caller.context(), zone.id, rrset).await?;
    Ok(axum::Json(zone))
}

#[utoipa::path(delete, path = "/api/v1/dns/zones/{zone}/rrsets/{name}/{rtype}", tag = "dns",
    responses((status = 200, body = Zone), (status = 404, body = ErrorBody)))]
pub async fn delete_rrset(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((zone, name, rtype)): Path<(String, String, String)>,
) -> Reply<Zone> {
    let zone = app.store.zone_by_name(&zone_name(&zone)?).await?;
    let owner = OwnerName::parse(&name, &zone.name)?;
    let rtype = RecordType::parse(&rtype)?;
    let ctx = caller.context();
    let zone = crate::commands::delete_rrset(&*app.store, &ctx, zone.id, &owner, rtype).await?;
    Ok(axum::Json(zone))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Apply even what the safety limits refuse.
    #[serde(default)]
    force: bool,
}

#[utoipa::path(post, path = "/api/v1/dns/zones/{zone}/sync", tag = "dns", request_body = SyncRequest,
    responses((status = 202, body = Accepted), (status = 404, body = ErrorBody),
        (status = 409, description = "a forced sync while another sync of the zone waits or runs", body = ErrorBody)))]
pub async fn sync_zone(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(zone): Path<String>,
    Json(request): Json<SyncRequest>,
) -> Result<(StatusCode, axum::Json<Accepted>), ApiError> {
    let zone = app.store.zone_by_name(&zone_name(&zone)?).await?;
    let job_id =
        crate::commands::sync_zone(&*app.store, &caller.context(), zone.id, request.force).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(Accepted::new(job_id))))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteZoneRequest {
    /// The zone's name again.
    confirm_zone: String,
}

#[utoipa::path(post, path = "/api/v1/dns/zones/{zone}/delete", tag = "dns", request_body = DeleteZoneRequest,
    responses((status = 200, body = Zone), (status = 422, description = "the name was not repeated", body = ErrorBody)))]
pub async fn delete_zone(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(zone): Path<String>,
    Json(request): Json<DeleteZoneRequest>,
) -> Reply<Zone> {
    let zone = app.store.zone_by_name(&zone_name(&zone)?).await?;
    let ctx = caller.context();
    let removed =
        crate::commands::remove_zone(&*app.store, &ctx, zone.id, &request.confirm_zone).await?;
    Ok(axum::Json(removed))
}

#[utoipa::path(post, path = "/api/v1/dns/rewrite", tag = "dns", request_body = AddressMove,
    responses((status = 202, description = "the rewrite job; its output is the report", body = Accepted), (status = 422, body = ErrorBody)))]
pub async fn rewrite(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(moved): Json<AddressMove>,
) -> Result<(StatusCode, axum::Json<Accepted>), ApiError> {
    if moved.from.is_empty() || moved.to.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_value",
            "from and to each need at least one address",
        ));
    }
    let job_id = crate::commands::rewrite_addresses(&*app.store, &caller.context(), &moved).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(Accepted::new(job_id))))
}
