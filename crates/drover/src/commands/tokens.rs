//! API tokens as operators manage them.

use drover_core::{TokenId, check_revocation};
use drover_store::{ApiToken, RequestContext, Store};
use serde_json::json;

use super::Result;

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
