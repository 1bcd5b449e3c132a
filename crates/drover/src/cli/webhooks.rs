//! `drover webhooks …`: where drover's events go, their deliveries, and sending again.

use clap::Subcommand;
use drover_core::{DeliveryId, WebhookEndpointId};
use drover_store::{DeliveryFilter, RequestContext, Store};
use secrecy::ExposeSecret;
use serde_json::json;

use super::{Output, PageArgs};
use crate::commands;
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Send events to a URL; its signing secret is printed once, as the last line.
    Create {
        /// `https://…`; `http://` only to this machine, with --allow-http.
        url: String,
        /// An event type to send (repeat for more) [default: every type].
        #[arg(long = "event")]
        events: Vec<String>,
        /// Accept an `http://` URL to this machine (localhost, 127.0.0.1, [::1]).
        #[arg(long)]
        allow_http: bool,
    },
    /// List the endpoints (never their secrets).
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Change an endpoint's URL or event types, or pause and resume it.
    Update {
        /// The endpoint's id (drover webhooks list).
        id: WebhookEndpointId,
        /// A new URL.
        #[arg(long)]
        url: Option<String>,
        /// With --url: accept `http://` to this machine.
        #[arg(long)]
        allow_http: bool,
        /// The event types to send from now on (repeat for more).
        #[arg(long = "event")]
        events: Vec<String>,
        /// Send every type from now on.
        #[arg(long, conflicts_with = "events")]
        all_events: bool,
        /// Stop sending; events wait until it is resumed.
        #[arg(long)]
        pause: bool,
        /// Send again, oldest waiting event first.
        #[arg(long, conflicts_with = "pause")]
        resume: bool,
    },
    /// Remove an endpoint and its deliveries.
    Delete {
        /// The endpoint's id.
        id: WebhookEndpointId,
    },
    /// A new signing secret, printed once; the old one signs beside it for a while.
    RotateSecret {
        /// The endpoint's id.
        id: WebhookEndpointId,
        /// How long the old secret still signs, in seconds.
        #[arg(long, default_value_t = 86_400)]
        previous_valid_for: u64,
    },
    /// An endpoint's deliveries, with their last try's status, error and time.
    Deliveries {
        /// The endpoint's id.
        id: WebhookEndpointId,
        /// Only those not delivered whose last try failed.
        #[arg(long)]
        failed: bool,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Send one delivery again, or try now those that failed (since a time).
    Redeliver {
        /// The endpoint's id.
        id: WebhookEndpointId,
        /// This delivery (even one that got through).
        #[arg(long)]
        delivery: Option<DeliveryId>,
        /// Those whose last try failed since this time (RFC 3339).
        #[arg(long, conflicts_with = "delivery")]
        failed_since: Option<jiff::Timestamp>,
    },
}

pub async fn run(
    command: WebhookCommand,
    store: &dyn Store,
    ctx: &RequestContext,
    config: &Config,
    out: Output,
) -> anyhow::Result<()> {
    let columns = &["id", "url", "event_types", "paused", "failing_since"];
    match command {
        WebhookCommand::Create {
            url,
            events,
            allow_http,
        } => {
            let sealer = crate::engine::seal::operator_key(store, &config.seal_key).await?;
            let new = commands::NewEndpoint {
                url: &url,
                event_types: &events,
                allow_http,
            };
            let (endpoint, secret) =
                commands::create_webhook_endpoint(store, &sealer, ctx, &new).await?;
            shown_once(out, &endpoint, secret.expose_secret())
        }
        WebhookCommand::List { page } => {
            out.list(&store.webhook_endpoints(page.page()).await?, columns)
        }
        WebhookCommand::Update {
            id,
            url,
            allow_http,
            events,
            all_events,
            pause,
            resume,
        } => {
            let types = (all_events || !events.is_empty()).then_some(events.as_slice());
            let paused = (pause || resume).then_some(pause);
            let url = url.as_deref().map(|u| (u, allow_http));
            out.one(&commands::update_webhook_endpoint(store, ctx, id, url, types, paused).await?)
        }
        WebhookCommand::Delete { id } => {
            store.delete_webhook_endpoint(ctx, id).await?;
            eprintln!("webhook endpoint {id} and its deliveries are gone");
            Ok(())
        }
        WebhookCommand::RotateSecret {
            id,
            previous_valid_for,
        } => {
            let sealer = crate::engine::seal::operator_key(store, &config.seal_key).await?;
            let valid_for = std::time::Duration::from_secs(previous_valid_for);
            let (endpoint, secret) =
                commands::rotate_webhook_secret(store, &sealer, ctx, id, valid_for).await?;
            shown_once(out, &endpoint, secret.expose_secret())
        }
        WebhookCommand::Deliveries { id, failed, page } => {
            store.webhook_endpoint(id).await?;
            let filter = DeliveryFilter {
                endpoint: Some(id),
                failed,
                page: page.page(),
            };
            out.list(
                &store.webhook_deliveries(&filter).await?,
                &[
                    "id",
                    "event_id",
                    "event_type",
                    "account_id",
                    "delivered",
                    "attempts",
                    "last_status",
                    "last_error",
                    "last_duration_ms",
                ],
            )
        }
        WebhookCommand::Redeliver {
            id,
            delivery,
            failed_since,
        } => {
            let count =
                commands::redeliver_webhooks(store, ctx, id, delivery, failed_since).await?;
            out.one(&json!({ "endpoint": id, "redelivered": count }))
        }
    }
}

fn shown_once(
    out: Output,
    endpoint: &drover_store::WebhookEndpoint,
    secret: &str,
) -> anyhow::Result<()> {
    if out.json {
        return out.one(&json!({ "endpoint": endpoint, "secret": secret }));
    }
    eprintln!(
        "webhook endpoint {} sends to {} (its signing secret, shown once):",
        endpoint.id, endpoint.url
    );
    println!("{secret}");
    Ok(())
}
