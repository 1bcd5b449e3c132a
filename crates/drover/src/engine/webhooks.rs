//! Sending events to webhook endpoints: the body, its signature and one HTTP try.
//!
//! Each request carries `Drover-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>">` (one `v1` per secret that signs now: two while a rotated secret is still
//! valid) and `Drover-Event-Id`, which a receiver de-duplicates by: delivery is at least once.

use std::time::{Duration, Instant};

use drover_store::{DeliveryAttempt, PendingDelivery};
use ring::hmac;
use secrecy::{ExposeSecret, SecretString};

/// How deliveries are sent and when a failing endpoint is given up on.
#[derive(Debug, Clone)]
pub struct WebhookPolicy {
    /// The longest a request may take.
    pub timeout: Duration,
    /// The longest wait between two tries of a failing delivery.
    pub retry_max_delay: Duration,
    /// An endpoint failing this long is paused (an operator resumes it).
    pub pause_after: Duration,
}

impl Default for WebhookPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retry_max_delay: Duration::from_secs(300),
            pause_after: Duration::from_secs(86_400),
        }
    }
}

/// The HTTP client of webhook deliveries, with its policy.
#[derive(Debug, Clone)]
pub struct Webhooks {
    client: reqwest::Client,
    pub policy: WebhookPolicy,
}

/// The most of a receiver's answer kept with a delivery.
const KEPT_RESPONSE: usize = 1024;

impl Webhooks {
    pub fn new(policy: WebhookPolicy) -> Result<Self, String> {
        // drover's one TLS setup (ring, the web PKI roots), verifying as any client does.
        let tls = drover_virtualmin::client_config(&drover_virtualmin::TlsPolicy::default())
            .map_err(|e| format!("TLS: {e}"))?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            // A redirect is answered as a failure: an event never goes where it was not sent.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("drover/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self { client, policy })
    }

    /// One try of one delivery, signed with `secrets` (current first).
    pub async fn send(
        &self,
        url: &str,
        secrets: &[SecretString],
        delivery: &PendingDelivery,
    ) -> DeliveryAttempt {
        let body = event_body(delivery);
        let t = jiff::Timestamp::now().as_second();
        let started = Instant::now();
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Drover-Event-Id", delivery.event_id.to_string())
            .header("Drover-Event-Type", &delivery.event_type)
            .header("Drover-Signature", signature_header(secrets, t, &body))
            .body(body)
            .send()
            .await;
        let mut attempt = DeliveryAttempt {
            delivered: false,
            status: None,
            error: None,
            duration_ms: 0,
            response: String::new(),
        };
        match sent {
            Ok(mut response) => {
                let status = response.status();
                attempt.status = Some(status.as_u16());
                attempt.delivered = status.is_success();
                let mut kept = Vec::new();
                while kept.len() < KEPT_RESPONSE {
                    match response.chunk().await {
                        Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                        _ => break,
                    }
                }
                kept.truncate(KEPT_RESPONSE);
                attempt.response = String::from_utf8_lossy(&kept).into_owned();
                if !attempt.delivered {
                    attempt.error = Some(if status.is_redirection() {
                        format!("answered {status}: redirects are not followed")
                    } else {
                        format!("answered {status}")
                    });
                }
            }
            Err(e) => attempt.error = Some(explain(&e)),
        }
        attempt.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        attempt
    }
}

/// The JSON a receiver gets: the event's id, type, time, account and own fields.
pub fn event_body(delivery: &PendingDelivery) -> String {
    serde_json::json!({
        "id": delivery.event_id,
        "type": delivery.event_type,
        "created_at": delivery.created_at.to_string(),
        "account_id": delivery.account_id,
        "data": delivery.data,
    })
    .to_string()
}

/// `t=<t>,v1=<hex HMAC-SHA256("<t>.<body>")>`, one `v1` per secret.
pub fn signature_header(secrets: &[SecretString], t: i64, body: &str) -> String {
    let signed = format!("{t}.{body}");
    let mut header = format!("t={t}");
    for secret in secrets {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret().as_bytes());
        let tag = hmac::sign(&key, signed.as_bytes());
        header.push_str(",v1=");
        header.push_str(&hex::encode(tag.as_ref()));
    }
    header
}

/// A request error with its causes: "connection refused" says more than "error sending".
fn explain(err: &reqwest::Error) -> String {
    let mut message = if err.is_timeout() {
        "no answer in time".to_owned()
    } else {
        err.to_string()
    };
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        message = format!("{message}: {inner}");
        source = inner.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_time_and_body_per_secret() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let header = signature_header(
            &[SecretString::from("Jefe")],
            0,
            "what do ya want for nothing?",
        );
        // The signed text is "0.what do ya want…", so the tag differs from the RFC's own;
        // the RFC vector checks the HMAC itself.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let tag = hmac::sign(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(header.starts_with("t=0,v1="), "{header}");
        let two = signature_header(
            &[SecretString::from("new"), SecretString::from("old")],
            1_765_000_000,
            "{}",
        );
        let parts: Vec<&str> = two.split(',').collect();
        assert_eq!(parts.len(), 3, "{two}");
        assert_eq!(parts[0], "t=1765000000");
        assert_ne!(parts[1], parts[2]);
    }
}
