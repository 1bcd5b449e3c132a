//! Webhook endpoints as operators manage them: where drover's events go, and with which
//! secret they are signed.

use std::time::Duration;

use drover_core::{DeliveryId, EventType, WebhookEndpointId, WebhookUrl};
use drover_store::{RequestContext, Store, WebhookEndpoint, WebhookEndpointPatch};
use jiff::Timestamp;
use secrecy::SecretString;

use super::Result;
use crate::engine::Sealer;

/// How long a replaced secret still signs unless an operator says otherwise: a day for the
/// receiver to take the new one.
pub const PREVIOUS_SECRET_VALID_FOR: Duration = Duration::from_secs(86_400);

/// The longest a replaced secret may still sign.
const PREVIOUS_SECRET_VALID_AT_MOST: Duration = Duration::from_secs(30 * 86_400);

/// What an endpoint is created with; the URL and types are checked here.
#[derive(Debug, Clone)]
pub struct NewEndpoint<'a> {
    pub url: &'a str,
    /// Empty: every type.
    pub event_types: &'a [String],
    /// `http://` to this machine is accepted only with this set.
    pub allow_http: bool,
}

/// Records an endpoint with a new secret, returned this once (drover keeps it sealed).
pub async fn create_webhook_endpoint(
    store: &dyn Store,
    sealer: &Sealer,
    ctx: &RequestContext,
    new: &NewEndpoint<'_>,
) -> Result<(WebhookEndpoint, SecretString)> {
    let url = WebhookUrl::parse(new.url, new.allow_http)?;
    let event_types = event_types(new.event_types)?;
    let secret = new_secret();
    let endpoint = store
        .create_webhook_endpoint(
            ctx,
            &drover_store::NewWebhookEndpoint {
                url,
                event_types,
                sealed_secret: sealer.seal(&secret),
                key_id: sealer.id().to_owned(),
            },
        )
        .await?;
    Ok((endpoint, secret))
}

/// Changes an endpoint's URL, event types or pause.
pub async fn update_webhook_endpoint(
    store: &dyn Store,
    ctx: &RequestContext,
    id: WebhookEndpointId,
    url: Option<(&str, bool)>,
    types: Option<&[String]>,
    paused: Option<bool>,
) -> Result<WebhookEndpoint> {
    let patch = WebhookEndpointPatch {
        url: url
            .map(|(url, allow_http)| WebhookUrl::parse(url, allow_http))
            .transpose()?,
        event_types: types.map(event_types).transpose()?,
        paused,
    };
    Ok(store.update_webhook_endpoint(ctx, id, &patch).await?)
}

/// A new secret, returned this once; the old one signs beside it for `previous_valid_for`.
pub async fn rotate_webhook_secret(
    store: &dyn Store,
    sealer: &Sealer,
    ctx: &RequestContext,
    id: WebhookEndpointId,
    previous_valid_for: Duration,
) -> Result<(WebhookEndpoint, SecretString)> {
    if previous_valid_for > PREVIOUS_SECRET_VALID_AT_MOST {
        return Err(drover_core::Error::InvalidValue {
            what: "previous secret's validity",
            input: format!("{} s", previous_valid_for.as_secs()),
            expected: format!(
                "at most {} s (30 days): long enough for a receiver to move to the new secret",
                PREVIOUS_SECRET_VALID_AT_MOST.as_secs()
            ),
        }
        .into());
    }
    let secret = new_secret();
    let until = Timestamp::now()
        .checked_add(jiff::SignedDuration::try_from(previous_valid_for).unwrap_or_default())
        .unwrap_or(Timestamp::MAX);
    let endpoint = store
        .rotate_webhook_secret(ctx, id, &sealer.seal(&secret), sealer.id(), until)
        .await?;
    Ok((endpoint, secret))
}

/// Sends again one delivery, or those that failed since a time (all failed: none given).
pub async fn redeliver_webhooks(
    store: &dyn Store,
    ctx: &RequestContext,
    id: WebhookEndpointId,
    delivery: Option<DeliveryId>,
    failed_since: Option<Timestamp>,
) -> Result<u64> {
    Ok(store
        .redeliver_webhooks(ctx, id, delivery, failed_since)
        .await?)
}

fn event_types(names: &[String]) -> Result<Vec<EventType>, drover_core::Error> {
    let mut types = names
        .iter()
        .map(|n| EventType::parse(n.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    types.sort();
    types.dedup();
    Ok(types)
}

/// 32 random bytes, as receivers' HMAC libraries take them: text.
fn new_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    SecretString::from(format!("whsec_{}", hex::encode(bytes)))
}
