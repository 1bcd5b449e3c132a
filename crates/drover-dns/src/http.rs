use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;

use crate::DnsError;

/// The HTTP client every provider uses: rustls with ring and the web PKI roots, no redirects.
/// PowerDNS closes every connection, so nothing is kept idle for it.
pub(crate) fn http_client(
    timeout: Duration,
    keep_alive: bool,
) -> Result<reqwest::Client, DnsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DnsError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none());
    if !keep_alive {
        builder = builder.pool_max_idle_per_host(0);
    }
    builder
        .build()
        .map_err(|e| DnsError::Config(format!("HTTP client: {e}")))
}

pub(crate) fn unreachable(url: &str, err: &reqwest::Error) -> DnsError {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        message = format!("{message}: {inner}");
        source = inner.source();
    }
    DnsError::Unreachable {
        url: url.to_owned(),
        message,
    }
}

/// Counts one provider request and its duration (`dns_requests_total`,
/// `dns_request_duration_seconds`), by provider kind, method and outcome (the HTTP status, or
/// `unreachable`).
pub(crate) fn record_request(
    provider: &'static str,
    method: &reqwest::Method,
    outcome: String,
    took: Duration,
) {
    let labels = [
        ("provider", provider.to_owned()),
        ("method", method.as_str().to_owned()),
        ("outcome", outcome),
    ];
    metrics::counter!("drover_dns_requests_total", &labels).increment(1);
    metrics::histogram!("drover_dns_request_duration_seconds", &labels).record(took.as_secs_f64());
}
