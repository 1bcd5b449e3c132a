use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use drover_core::{Access, Scope};
use drover_store::{ApiToken, IdempotencyStart, RequestContext};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::AppState;
use super::error::ApiError;

pub const CORRELATION_HEADER: &str = "x-correlation-id";
const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const MAX_BODY: usize = 1024 * 1024;

/// The request's correlation id, carried into logs, audit events and jobs.
#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

/// The authenticated token behind a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token: ApiToken,
    pub correlation_id: String,
}

impl Caller {
    pub fn context(&self) -> RequestContext {
        RequestContext {
            actor: format!("token:{} ({})", self.token.id, self.token.name),
            correlation_id: self.correlation_id.clone(),
        }
    }
}

/// Takes the caller's `X-Correlation-Id` when it is sane, or makes one; echoes it back.
pub async fn correlate(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        })
        .map_or_else(new_correlation_id, str::to_owned);
    request.extensions_mut().insert(CorrelationId(id.clone()));
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        correlation_id = %id,
    );
    let method = request.method().as_str().to_owned();
    async move {
        let started = std::time::Instant::now();
        let mut response = next.run(request).await;
        let status = response.status().as_u16();
        let elapsed = started.elapsed().as_secs_f64();
        let duration_ms = elapsed * 1000.0;
        // A successful read changes nothing worth a line at the default level; at fleet
        // scale those lines were most of the log. Writes and refusals are always logged.
        if matches!(method.as_str(), "GET" | "HEAD") && status < 400 {
            tracing::debug!(status, duration_ms, "answered");
        } else {
            tracing::info!(status, duration_ms, "answered");
        }
        metrics::histogram!("drover_http_request_duration_seconds", "method" => method.clone())
            .record(elapsed);
        // By method and status only: paths carry ids, which would make a series per account.
        metrics::counter!("drover_http_requests_total", "method" => method, "status" => status.to_string())
            .increment(1);
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(CORRELATION_HEADER, value);
        }
        response
    }
    .instrument(span)
    .await
}

pub fn new_correlation_id() -> String {
    let bytes: [u8; 12] = rand::random();
    hex::encode(bytes)
}

/// What a request needs its token's scope to allow. Reads need `read`; writes to customers
/// and services (billing's work) need `billing`; every other write needs `operator`.
fn required_access(method: &Method, path: &str) -> Access {
    if method == Method::GET || method == Method::HEAD {
        return Access::Read;
    }
    let billing = ["/api/v1/customers", "/api/v1/services"];
    // An account's mailboxes, databases, aliases, sub-servers and certificate are what
    // customers buy too,
    // and its owner's way into the panel is theirs.
    let resources = path.starts_with("/api/v1/accounts/")
        && matches!(
            path.split('/').nth(5),
            Some(
                "mailboxes" | "databases" | "aliases" | "subservers" | "login-link" | "certificate"
            )
        );
    if resources
        || billing
            .iter()
            .any(|prefix| path == *prefix || path.starts_with(&format!("{prefix}/")))
    {
        Access::Billing
    } else {
        Access::Operator
    }
}

fn scopes_allowing(access: Access) -> String {
    let names: Vec<_> = Scope::ALL
        .iter()
        .filter(|s| s.allows(access))
        .map(|s| s.as_str())
        .collect();
    names.join(" or ")
}

/// Tokens the database confirmed in the last second, by their secret's hash: a client's
/// requests skip the lookup, and a token revoked by another process is refused within a
/// second (this process's own revocations empty the cache at once).
#[derive(Debug, Default)]
pub struct TokenCache {
    confirmed: std::sync::Mutex<Confirmed>,
}

#[derive(Debug, Default)]
struct Confirmed {
    /// Revocations this process made: a lookup that started before one is not kept.
    revocations: u64,
    /// By the secret's hash: the token and when the lookup that confirmed it started.
    tokens: std::collections::HashMap<[u8; 32], (ApiToken, tokio::time::Instant)>,
}

/// When a database lookup of a token started, to keep its answer no longer than it is fresh.
#[derive(Debug, Clone, Copy)]
struct Lookup {
    at: tokio::time::Instant,
    revocations: u64,
}

impl TokenCache {
    const FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(1);
    /// Enough for every client a fleet has; a flood of new tokens cannot grow it past this.
    const MAX_TOKENS: usize = 10_000;

    fn key(secret: &str) -> [u8; 32] {
        Sha256::digest(secret.as_bytes()).into()
    }

    fn confirmed(&self) -> std::sync::MutexGuard<'_, Confirmed> {
        self.confirmed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, secret: &str) -> Option<ApiToken> {
        let confirmed = self.confirmed();
        let (token, at) = confirmed.tokens.get(&Self::key(secret))?;
        (at.elapsed() < Self::FRESH_FOR).then(|| token.clone())
    }

    /// Call before asking the database.
    fn lookup(&self) -> Lookup {
        Lookup {
            at: tokio::time::Instant::now(),
            revocations: self.confirmed().revocations,
        }
    }

    /// Keeps what the database answered to `lookup`, fresh from when it asked.
    fn put(&self, secret: &str, token: ApiToken, lookup: Lookup) {
        let mut confirmed = self.confirmed();
        if confirmed.revocations != lookup.revocations {
            return;
        }
        if confirmed.tokens.len() >= Self::MAX_TOKENS {
            confirmed
                .tokens
                .retain(|_, (_, at)| at.elapsed() < Self::FRESH_FOR);
            if confirmed.tokens.len() >= Self::MAX_TOKENS {
                confirmed.tokens.clear();
            }
        }
        confirmed
            .tokens
            .insert(Self::key(secret), (token, lookup.at));
    }

    /// After a revocation: every token is looked up again, and lookups already under way are
    /// not kept.
    pub fn forget_all(&self) {
        let mut confirmed = self.confirmed();
        confirmed.revocations += 1;
        confirmed.tokens.clear();
    }
}

/// Checks the bearer token and its scope.
pub async fn authenticate(
    State(app): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized("this route needs a token: send Authorization: Bearer <token>")
        })?;
    let secret = header
        .to_str()
        .ok()
        .and_then(|v| v.trim().split_once(' '))
        // The scheme's name is case-insensitive (RFC 9110 section 11.1).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be 'Bearer <token>'")
        })?;
    let token = match app.tokens.get(secret) {
        Some(token) => token,
        None => {
            let lookup = app.tokens.lookup();
            let token = app
                .store
                .authenticate(secret)
                .await?
                .ok_or_else(|| ApiError::unauthorized("the token is unknown or revoked"))?;
            app.tokens.put(secret, token.clone(), lookup);
            token
        }
    };
    let access = required_access(request.method(), request.uri().path());
    if !token.scope.allows(access) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token '{}' has scope {}; {} {} needs scope {}",
                token.name,
                token.scope,
                request.method(),
                request.uri().path(),
                scopes_allowing(access)
            ),
        ));
    }
    let correlation_id = request
        .extensions()
        .get::<CorrelationId>()
        .map_or_else(new_correlation_id, |c| c.0.clone());
    request.extensions_mut().insert(Caller {
        token,
        correlation_id,
    });
    Ok(next.run(request).await)
}

/// Makes a POST sent again with the same `Idempotency-Key` (by the same token) answer what the
/// first one answered, without doing it twice.
pub async fn idempotency(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(key) = request.headers().get(IDEMPOTENCY_HEADER) else {
        return Ok(next.run(request).await);
    };
    // A login link's take hands out a secret once: its answer is never kept for a replay.
    if request.method() != Method::POST || request.uri().path().ends_with("/take") {
        return Ok(next.run(request).await);
    }
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            )
        })?
        .to_owned();
    let caller = request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::unauthorized("authentication is missing"))?;
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| super::extract::body_too_large())?;
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update([0]);
    hasher.update(parts.uri.path());
    hasher.update([0]);
    hasher.update(&bytes);
    let request_hash = hex::encode(hasher.finalize());

    let token = caller.token.id;
    match app
        .store
        .start_idempotent(token, &key, &request_hash)
        .await?
    {
        IdempotencyStart::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = (status, body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(response)
        }
        IdempotencyStart::Proceed => {
            let response = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            let (parts, body) = response.into_parts();
            let body = match axum::body::to_bytes(body, MAX_BODY * 8).await {
                Ok(body) => body,
                Err(_) => {
                    app.store.abandon_idempotent(token, &key).await?;
                    return Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "the answer could not be recorded for replay",
                    ));
                }
            };
            if parts.status.is_server_error() {
                // Nothing worth repeating: let a retry try again.
                app.store.abandon_idempotent(token, &key).await?;
            } else {
                let text = String::from_utf8_lossy(&body);
                app.store
                    .finish_idempotent(token, &key, parts.status.as_u16(), &text)
                    .await?;
            }
            Ok(Response::from_parts(parts, Body::from(body)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_confirmed_token_is_trusted_for_a_second_only() {
        let cache = TokenCache::default();
        assert!(cache.get("s3cret").is_none());
        let lookup = cache.lookup();
        tokio::time::advance(std::time::Duration::from_millis(300)).await;
        cache.put("s3cret", token("billing", Scope::Billing), lookup);
        assert_eq!(cache.get("s3cret").map(|t| t.name), Some("billing".into()));
        assert!(cache.get("other").is_none(), "only the secret confirmed");
        // Fresh for a second from when the database was asked, not from its answer.
        tokio::time::advance(std::time::Duration::from_millis(699)).await;
        assert!(cache.get("s3cret").is_some());
        tokio::time::advance(std::time::Duration::from_millis(1)).await;
        assert!(
            cache.get("s3cret").is_none(),
            "looked up again after a second"
        );
        cache.put("s3cret", token("ops", Scope::Operator), cache.lookup());
        cache.forget_all();
        assert!(
            cache.get("s3cret").is_none(),
            "a revocation here forgets at once"
        );
        // A lookup under way when this process revoked a token is not kept.
        let lookup = cache.lookup();
        cache.forget_all();
        cache.put("s3cret", token("ops", Scope::Operator), lookup);
        assert!(cache.get("s3cret").is_none());
    }

    fn token(name: &str, scope: Scope) -> ApiToken {
        ApiToken {
            id: drover_core::TokenId(1),
            name: name.into(),
            scope,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            revoked_at: None,
        }
    }

    #[test]
    fn billing_writes_customers_services_and_account_resources_only() {
        use Access::*;
        let cases = [
            (Method::GET, "/api/v1/servers", Read),
            (Method::POST, "/api/v1/customers", Billing),
            (Method::POST, "/api/v1/services/4/activate", Billing),
            (Method::POST, "/api/v1/servicesx", Operator),
            (Method::POST, "/api/v1/plans", Operator),
            (Method::PATCH, "/api/v1/servers/1", Operator),
            (Method::DELETE, "/api/v1/tokens/1", Operator),
            (Method::POST, "/api/v1/accounts/3/mailboxes", Billing),
            (Method::PATCH, "/api/v1/accounts/3/mailboxes/ana", Billing),
            (Method::POST, "/api/v1/accounts/3/databases", Billing),
            (Method::POST, "/api/v1/accounts/3/aliases", Billing),
            (Method::POST, "/api/v1/accounts/3/certificate", Billing),
            (Method::DELETE, "/api/v1/accounts/3/certificate", Billing),
            (
                Method::POST,
                "/api/v1/accounts/3/databases/ana_x/delete",
                Billing,
            ),
            (Method::POST, "/api/v1/accounts/3/protect", Operator),
            (Method::POST, "/api/v1/accounts/mailboxes", Operator),
        ];
        for (method, path, access) in cases {
            assert_eq!(required_access(&method, path), access, "{method} {path}");
        }
    }
}
