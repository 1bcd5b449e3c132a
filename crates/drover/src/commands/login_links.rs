//! One-time login links into an account's panel: asked for as a job (`Requested::LoginLink`),
//! made by the account's server, kept sealed, and handed once to whoever takes them.

use drover_core::{AccountId, JobId};
use drover_store::{RequestContext, Store};
use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::Result;
use crate::engine::Sealer;

/// A login link, taken: gone from drover once handed out.
#[derive(Debug)]
pub struct TakenLoginLink {
    pub url: SecretString,
    pub expires_at: Timestamp,
}

/// Hands out the login link job `job` made for `account`, once; audited (the link itself is
/// never recorded).
pub async fn take_login_link(
    store: &dyn Store,
    ctx: &RequestContext,
    sealer: &Sealer,
    account: AccountId,
    job: JobId,
) -> Result<TakenLoginLink> {
    store.account(account).await?;
    let gone = |why: &str| drover_core::Error::LoginLinkGone {
        job,
        why: why.to_owned(),
    };
    let Some((sealed, expires_at)) = store.take_login_link(job, account).await? else {
        return Err(gone("not made (yet), or taken already").into());
    };
    if expires_at <= Timestamp::now() {
        return Err(gone("expired").into());
    }
    let url = sealer
        .open(&sealed)
        .map_err(|e| gone(&format!("it does not open with this key: {e}")))?;
    store
        .audit(
            ctx,
            "account.login_link_taken",
            format!("account:{account}"),
            json!({ "job": job, "expires_at": expires_at.to_string() }),
        )
        .await?;
    Ok(TakenLoginLink { url, expires_at })
}

impl TakenLoginLink {
    /// The link, for the one who asked for it.
    pub fn reveal(&self) -> &str {
        self.url.expose_secret()
    }
}
