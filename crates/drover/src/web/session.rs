//! Signing in and out, and what every page and form needs of the session: an API token
//! exchanged for a cookie (the session is kept server-side, by the cookie's hash), the
//! token's scope limiting what is shown and allowed, and a form token on every form (CSRF).

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use drover_core::{Access, Scope};
use drover_store::{RequestContext, UiSession};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::i18n::Lang;
use super::{Chrome, WebError, render};
use crate::api::AppState;
use crate::api::middleware::CorrelationId;

const SESSION_COOKIE: &str = "drover_session";
/// Ties the sign-in form to the browser that asked for it (no session exists yet).
const SIGN_IN_COOKIE: &str = "drover_sign_in";
/// How long a session lasts from sign-in, however busy.
const SESSION_LENGTH: jiff::SignedDuration = jiff::SignedDuration::from_hours(12);

/// A signed-in operator, support person or billing clerk looking at a page.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub session: UiSession,
    secret: String,
    pub lang: Lang,
    pub correlation_id: String,
    /// The page asked for (a form's own address when one is posted).
    pub here: String,
}

impl Viewer {
    /// Who did what, for audit events and jobs.
    pub fn context(&self) -> RequestContext {
        let token = &self.session.token;
        RequestContext {
            actor: format!("token:{} ({}) in the web UI", token.id, token.name),
            correlation_id: self.correlation_id.clone(),
        }
    }

    pub fn may(&self, access: Access) -> bool {
        self.session.token.scope.allows(access)
    }

    /// Refuses what the session's token may not do, naming the scope needed.
    pub fn require(&self, access: Access) -> Result<(), WebError> {
        if self.may(access) {
            return Ok(());
        }
        let needed: Vec<&str> = Scope::ALL
            .iter()
            .filter(|s| s.allows(access))
            .map(|s| s.as_str())
            .collect();
        Err(WebError::new(
            StatusCode::FORBIDDEN,
            format!(
                "token '{}' has scope {}; this needs scope {}",
                self.session.token.name,
                self.session.token.scope,
                needed.join(" or ")
            ),
        ))
    }

    pub fn chrome(&self, title: String) -> Chrome {
        Chrome::new(self, title)
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

/// A cookie for the UI's paths only, out of scripts' reach, never sent from another site.
fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are hex")
}

/// Whether the browser reached drover over TLS (directly or through a proxy that says so).
fn over_tls(parts: &HeaderMap) -> bool {
    parts
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn correlation(parts: &Parts) -> String {
    parts
        .extensions
        .get::<CorrelationId>()
        .map_or_else(crate::api::new_correlation_id, |c| c.0.clone())
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, WebError> {
        let session = match cookie(&parts.headers, SESSION_COOKIE) {
            Some(secret) => app
                .store
                .session(secret)
                .await?
                .map(|s| (secret.to_owned(), s)),
            None => None,
        };
        let Some((secret, session)) = session else {
            if parts.method == Method::GET {
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/ui", |p| p.as_str())
                    .to_owned();
                return Err(WebError::SignIn(next));
            }
            return Err(WebError::new(
                StatusCode::FORBIDDEN,
                "the session has ended or never began: sign in again, then repeat the change",
            ));
        };
        // A form's page drawn again after a refusal comes back to the UI's start on a change
        // of language: its address is the form's, which answers only posts.
        // Without a notice: it was said once.
        let here = if parts.method == Method::GET {
            let path = parts.uri.path();
            match parts.uri.query().filter(|q| !q.starts_with("done=")) {
                Some(query) => format!("{path}?{query}"),
                None => path.to_owned(),
            }
        } else {
            "/ui".to_owned()
        };
        Ok(Viewer {
            here,
            lang: Lang::choose(session.language.as_deref(), &parts.headers),
            session,
            secret,
            correlation_id: correlation(parts),
        })
    }
}

/// A form posted by a signed-in viewer, its form token checked before anything is read.
#[derive(Debug)]
pub struct Posted<T> {
    pub viewer: Viewer,
    pub form: T,
}

#[derive(Deserialize)]
struct FormToken {
    #[serde(default)]
    csrf: String,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = WebError;

    async fn from_request(request: Request, app: &AppState) -> Result<Self, WebError> {
        let (mut parts, body) = request.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, app).await?;
        let bytes = axum::body::to_bytes(body, 64 * 1024)
            .await
            .map_err(|_| WebError::new(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large"))?;
        let token: FormToken = serde_urlencoded::from_bytes(&bytes).unwrap_or(FormToken {
            csrf: String::new(),
        });
        if !same(&token.csrf, &viewer.session.form_token) {
            return Err(WebError::new(
                StatusCode::FORBIDDEN,
                "the form did not come from this session (its form token is missing or \
                 another's): reload the page and try again",
            ));
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|e| {
            WebError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the form is incomplete: {e}"),
            )
        })?;
        Ok(Posted { viewer, form })
    }
}

/// Compares secrets in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[derive(Debug, Deserialize)]
pub struct NextPage {
    next: Option<String>,
}

/// Only a page of the UI itself: never another site (`//host`) nor another part of drover.
fn safe_next(next: Option<&str>) -> &str {
    next.filter(|n| {
        (*n == "/ui" || n.starts_with("/ui/") || n.starts_with("/ui?"))
            && n.bytes().all(|b| b.is_ascii_graphic())
            && !n.contains("//")
            && !n.contains('\\')
            && !n
                .split(['/', '?'])
                .any(|segment| segment == ".." || segment == ".")
    })
    .unwrap_or("/ui")
}

#[derive(askama::Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    page: Chrome,
    form_token: &'a str,
    next: &'a str,
}

fn sign_in_page(
    lang: Lang,
    next: &str,
    error: Option<String>,
    status: StatusCode,
    secure: bool,
) -> Response {
    let form_token = random_hex();
    let mut page = Chrome::signed_out(lang, lang.words().get("sign-in").to_owned());
    page.error = error;
    let mut response = render(
        status,
        &SignInPage {
            page,
            form_token: &form_token,
            next,
        },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, &form_token, 600, secure),
    );
    response
}

pub async fn show_sign_in(
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<NextPage>,
) -> Response {
    let lang = Lang::choose(None, &headers);
    let next = safe_next(query.next.as_deref());
    sign_in_page(lang, next, None, StatusCode::OK, over_tls(&headers))
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
    next: Option<String>,
}

/// Exchanges an API token for a session.
pub async fn sign_in(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SignInForm>,
) -> Result<Response, WebError> {
    let lang = Lang::choose(None, &headers);
    let next = safe_next(form.next.as_deref()).to_owned();
    let secure = over_tls(&headers);
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same(&form.csrf, expected) {
        let message = lang.words().get("sign-in-form-expired").to_owned();
        return Ok(sign_in_page(
            lang,
            &next,
            Some(message),
            StatusCode::FORBIDDEN,
            secure,
        ));
    }
    let Some(token) = app.store.authenticate(form.token.trim()).await? else {
        let message = lang.words().get("sign-in-refused").to_owned();
        tracing::info!("web sign-in refused: unknown or revoked token");
        return Ok(sign_in_page(
            lang,
            &next,
            Some(message),
            StatusCode::UNAUTHORIZED,
            secure,
        ));
    };
    // A browser signing in again leaves its earlier session behind: it ends here.
    if let Some(earlier) = cookie(&headers, SESSION_COOKIE) {
        app.store.end_session(earlier).await?;
    }
    let secret = random_hex();
    let expires = jiff::Timestamp::now() + SESSION_LENGTH;
    app.store
        .open_session(&secret, token.id, &random_hex(), expires)
        .await?;
    let ctx = RequestContext {
        actor: format!("token:{} ({}) in the web UI", token.id, token.name),
        correlation_id: crate::api::new_correlation_id(),
    };
    app.store
        .audit(
            &ctx,
            "ui.sign_in",
            format!("token:{}", token.id),
            serde_json::json!({}),
        )
        .await?;
    let mut response = Redirect::to(&next).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &secret, SESSION_LENGTH.as_secs(), secure),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(SIGN_IN_COOKIE, "", 0, secure),
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct Nothing {}

/// Ends the session: its cookie opens nothing from now on, whoever holds it.
pub async fn sign_out(
    State(app): State<AppState>,
    headers: HeaderMap,
    posted: Posted<Nothing>,
) -> Result<Response, WebError> {
    app.store.end_session(&posted.viewer.secret).await?;
    let mut response = Redirect::to("/ui/sign-in").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, over_tls(&headers)),
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct LanguageForm {
    lang: String,
    next: Option<String>,
}

/// Keeps the language the viewer chose for the rest of the session.
pub async fn choose_language(
    State(app): State<AppState>,
    posted: Posted<LanguageForm>,
) -> Result<Response, WebError> {
    let lang = Lang::parse(&posted.form.lang).ok_or_else(|| {
        WebError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("no language '{}': en or ro", posted.form.lang),
        )
    })?;
    app.store
        .set_session_language(&posted.viewer.secret, lang.code())
        .await?;
    Ok(Redirect::to(safe_next(posted.form.next.as_deref())).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_uis_own_pages_are_gone_to_after_sign_in() {
        assert_eq!(
            safe_next(Some("/ui/accounts?q=a.ro")),
            "/ui/accounts?q=a.ro"
        );
        assert_eq!(safe_next(Some("/ui")), "/ui");
        for bad in [
            "https://evil.example/ui",
            "//evil.example",
            "/ui//evil.example",
            "/api/v1/tokens",
            "/ui\\evil",
            "/uix",
            "/ui/\nx",
            "/ui/../api/v1/tokens",
            "/ui/./x",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui", "{bad}");
        }
        assert_eq!(safe_next(None), "/ui");
    }

    #[test]
    fn cookies_are_read_by_name_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; drover_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, SIGN_IN_COOKIE), None);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
