//! API tokens: created (the secret shown once), listed, revoked.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drover_core::{Scope, TokenId};
use drover_store::ApiToken;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ErrorBody;
use super::extract::{Json, path_id};
use super::middleware::Caller;
use super::shared::{Reply, WithStatus};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(revoke_token))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTokenRequest {
    /// Who or what uses the token, like `billing`.
    name: String,
    scope: Scope,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    #[serde(flatten)]
    token: ApiToken,
    /// Shown once; drover keeps only its hash.
    secret: String,
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewTokenRequest,
    responses((status = 201, body = TokenCreated), (status = 422, body = ErrorBody)))]
async fn create_token(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Json(request): Json<NewTokenRequest>,
) -> WithStatus<TokenCreated> {
    use secrecy::ExposeSecret;
    let (token, secret) =
        crate::commands::create_token(&*app.store, &caller.context(), &request.name, request.scope)
            .await?;
    let secret = secret.expose_secret().to_owned();
    Ok((
        StatusCode::CREATED,
        axum::Json(TokenCreated { token, secret }),
    ))
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = [ApiToken])))]
async fn list_tokens(State(app): State<AppState>) -> Reply<Vec<ApiToken>> {
    Ok(axum::Json(app.store.tokens().await?))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    responses((status = 200, body = ApiToken), (status = 404, body = ErrorBody),
        (status = 409, description = "the last operator token (`last_operator_token`)", body = ErrorBody)))]
async fn revoke_token(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Reply<ApiToken> {
    let id: TokenId = path_id("token", &id)?;
    let revoked = crate::commands::revoke_token(&*app.store, &caller.context(), id).await?;
    app.tokens.forget_all();
    Ok(axum::Json(revoked))
}
