/// Everything a DNS provider can answer besides success, decided once from the status and body
/// each provider really sends (PowerDNS 4.7.3 captures, Cloudflare's documented error body).
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// PowerDNS 409 (text `Conflict`): the zone exists already.
    #[error("the zone {zone} exists already on the provider")]
    ZoneExists { zone: String },

    /// PowerDNS 422 or a Cloudflare 4xx with error codes: the provider refused the data.
    #[error("the provider refused the change: {message}")]
    Rejected { message: String, codes: Vec<u32> },

    /// PowerDNS 400: malformed JSON or a body over `webserver-max-bodysize`.
    #[error("the provider refused the request as malformed or too large ({bytes} bytes sent)")]
    BadRequest { bytes: usize },

    /// PowerDNS or Cloudflare 401/403: the key or token is wrong or lacks permission.
    #[error(
        "the provider refused the credentials (HTTP {status}); check the provider's key reference"
    )]
    Unauthorized { status: u16 },

    /// 404: the zone (or server id, or record) is not there.
    #[error("{what} not found on the provider")]
    NotFound { what: String },

    /// A Cloudflare record drover should know the id of, but does not: read the zone first.
    #[error(
        "no stored Cloudflare record id for {name} {rtype} {content}; run a plan/apply to learn the ids"
    )]
    MissingRecordId {
        name: String,
        rtype: String,
        content: String,
    },

    /// 429 that outlasted the retries drover allows itself.
    #[error("the provider is limiting calls (HTTP 429, retry after {retry_after_secs} s)")]
    RateLimited { retry_after_secs: u64 },

    /// 5xx after every retry.
    #[error("the provider failed with HTTP {status} after {attempts} attempts: {body}")]
    Server {
        status: u16,
        attempts: usize,
        body: String,
    },

    /// No answer: connection refused, timeout, TLS failure.
    #[error("cannot reach the provider at {url}: {message}")]
    Unreachable { url: String, message: String },

    /// An answer drover cannot read.
    #[error("unexpected answer from the provider (HTTP {status}): {detail}")]
    Malformed { status: u16, detail: String },

    /// The provider's own settings are wrong (bad URL, missing zone id).
    #[error("provider settings: {0}")]
    Config(String),
}

impl DnsError {
    /// Worth trying the same request again later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Server { .. } | Self::Unreachable { .. } | Self::RateLimited { .. }
        )
    }
}

pub type Result<T, E = DnsError> = std::result::Result<T, E>;

/// Short text of a body for messages: the first line, at most 300 characters.
pub(crate) fn snippet(body: &str) -> String {
    let line = body.trim().lines().next().unwrap_or("");
    line.chars().take(300).collect()
}
