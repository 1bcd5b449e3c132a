//! API tokens as operators manage them.

use drover_core::{Scope, TokenId, check_revocation, token_name};
use drover_store::{ApiToken, RequestContext, Store};
use secrecy::SecretString;
use serde_json::json;

use super::Result;

/// Creates a token of `scope`; its secret is returned this once (only its hash is kept).
pub async fn create_token(
    store: &dyn Store,
    ctx: &RequestContext,
    name: &str,
    scope: Scope,
) -> Result<(ApiToken, SecretString)> {
    let name = token_name(name)?;
    let mut tx = store.write().await?;
    let (token, secret) = tx.insert_token(name, scope).await?;
    tx.audit(
        ctx,
        "token.create",
        format!("token:{}", token.id),
        json!({ "name": token.name, "scope": token.scope }),
    )
    .await?;
    tx.commit().await?;
    Ok((token, secret))
}

/// Revokes the token, unless it is the last operator token that works.
pub async fn revoke_token(
    store: &dyn Store,
    ctx: &RequestContext,
    id: TokenId,
) -> Result<ApiToken> {
    let mut tx = store.write().await?;
    let active = tx.active_operator_tokens().await?;
    check_revocation(id, &active)?;
    let token = tx.revoke_token(id).await?;
    tx.audit(ctx, "token.revoke", format!("token:{id}"), json!({}))
        .await?;
    tx.commit().await?;
    Ok(token)
}
