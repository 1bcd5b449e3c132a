//! The operator web UI: server-rendered pages (askama) with plain forms that post and
//! redirect, one CSS file and a few lines of our own JavaScript that refresh live parts, all
//! served by `drover serve` on the same command layer as the API and the CLI. Every read and
//! every action works without JavaScript.

mod actions;
mod i18n;
mod pages;
mod session;

use std::sync::LazyLock;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use drover_core::Access;
use drover_store::StoreError;

use crate::api::AppState;
pub use i18n::{Catalogue, Lang};
use session::Viewer;

/// The UI's routes, under `/ui`.
pub fn routes(app: AppState) -> Router<AppState> {
    Router::new()
        .route("/ui", get(pages::dashboard))
        .route("/ui/", get(|| async { Redirect::permanent("/ui") }))
        .route(
            "/ui/sign-in",
            get(session::show_sign_in).post(session::sign_in),
        )
        .route("/ui/sign-out", post(session::sign_out))
        .route("/ui/language", post(session::choose_language))
        .route("/ui/provisioning", post(actions::provisioning))
        .route("/ui/accounts", get(pages::accounts))
        .route("/ui/bulk", post(actions::bulk))
        .route("/ui/bulk/live", get(pages::bulk_live))
        .route("/ui/accounts/{id}", get(pages::account))
        .route("/ui/accounts/{id}/{action}", post(actions::account))
        .route("/ui/servers", get(pages::servers))
        .route("/ui/servers/{id}", get(pages::server))
        .route("/ui/servers/{id}/progress", get(pages::server_progress))
        .route("/ui/servers/{id}/drain", post(actions::drain))
        .route("/ui/servers/{id}/{action}", post(actions::server))
        .route("/ui/jobs", get(pages::jobs))
        .route("/ui/jobs/{id}", get(pages::job))
        .route("/ui/jobs/{id}/live", get(pages::job_live))
        .route("/ui/jobs/{id}/{action}", post(actions::job))
        .route("/ui/drift", get(pages::drift))
        .route("/ui/drift/{server}/{action}", post(actions::drift))
        .route("/ui/dns", get(pages::dns))
        .route("/ui/dns/{zone}/{action}", post(actions::zone))
        .route("/ui/audit", get(pages::audit))
        .route("/ui/assets/{name}", get(asset))
        .layer(axum::middleware::from_fn(same_origin_posts))
        .layer(axum::middleware::from_fn_with_state(app, error_pages))
        .layer(axum::middleware::from_fn(security_headers))
}

/// A refusal's message, carried on its response until [`error_pages`] draws it.
#[derive(Clone)]
struct Refusal(String);

/// Draws a refusal inside the viewer's own page: their language, and the menu when signed in.
/// Errors arise where the request is gone (extractors, `?`), so they are drawn here.
async fn error_pages(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let mut asked = Request::builder()
        .method(request.method().clone())
        .uri(request.uri().clone())
        .body(())
        .map(Request::into_parts)
        .map(|(parts, ())| parts)
        .ok();
    if let Some(parts) = asked.as_mut() {
        parts.headers = request.headers().clone();
    }
    let response = next.run(request).await;
    let (Some(Refusal(message)), Some(mut parts)) =
        (response.extensions().get::<Refusal>().cloned(), asked)
    else {
        return response;
    };
    let status = response.status();
    let lang = Lang::choose(None, &parts.headers);
    let page = match Viewer::from_request_parts(&mut parts, &app).await {
        Ok(viewer) => viewer.chrome(error_title(viewer.lang, status)),
        Err(_) => Chrome::signed_out(lang, error_title(lang, status)),
    };
    render(
        status,
        &ErrorPage {
            page,
            message: &message,
        },
    )
}

fn error_title(lang: Lang, status: StatusCode) -> String {
    let word = if status.is_server_error() {
        "error-title-failed"
    } else {
        "error-title"
    };
    format!("{} · {}", lang.words().get(word), status.as_u16())
}

/// Refuses a form posted from another origin, sibling subdomains included (which `SameSite`
/// counts as the same site), where the browser says so (`Sec-Fetch-Site`); the form token
/// refuses the rest.
async fn same_origin_posts(request: Request, next: Next) -> Response {
    let from_elsewhere = request.method() == axum::http::Method::POST
        && request
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|site| site != "same-origin" && site != "none");
    if from_elsewhere {
        return WebError::new(
            StatusCode::FORBIDDEN,
            "a form of drover's can only be posted from drover's own pages",
        )
        .into_response();
    }
    next.run(request).await
}

/// No script, style or frame from anywhere else; forms post only here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Pages show one session's view of live data: never kept by a cache.
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The UI's own files, named by a hash of their content so a browser may keep them for good.
struct Asset {
    path: String,
    body: &'static str,
    content_type: &'static str,
}

impl Asset {
    fn new(stem: &str, extension: &str, body: &'static str, content_type: &'static str) -> Self {
        use sha2::Digest;
        let hash = hex::encode(&sha2::Sha256::digest(body.as_bytes())[..6]);
        Self {
            path: format!("/ui/assets/{stem}-{hash}.{extension}"),
            body,
            content_type,
        }
    }
}

static CSS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "app",
        "css",
        include_str!("../../assets/app.css"),
        "text/css; charset=utf-8",
    )
});
static JS: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "app",
        "js",
        include_str!("../../assets/app.js"),
        "text/javascript; charset=utf-8",
    )
});

async fn asset(Path(name): Path<String>) -> Response {
    let path = format!("/ui/assets/{name}");
    match [&*CSS, &*JS].into_iter().find(|a| a.path == path) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            asset.body,
        )
            .into_response(),
        None => WebError::new(StatusCode::NOT_FOUND, format!("no file {path}")).into_response(),
    }
}

/// What every page shows around its content: the words, the menu, the session's form token
/// and what its scope allows.
#[derive(Debug)]
pub struct Chrome {
    pub t: &'static Catalogue,
    pub title: String,
    pub signed_in: bool,
    pub who: String,
    pub form_token: String,
    pub billing: bool,
    pub operator: bool,
    pub css: &'static str,
    pub js: &'static str,
    pub notice: Option<String>,
    pub error: Option<String>,
    /// The page's own address, where a language change comes back to.
    pub here: String,
}

impl Chrome {
    fn new(viewer: &Viewer, title: String) -> Self {
        let token = &viewer.session.token;
        Self {
            signed_in: true,
            who: format!("{} ({})", token.name, token.scope),
            form_token: viewer.session.form_token.clone(),
            billing: viewer.may(Access::Billing),
            operator: viewer.may(Access::Operator),
            here: viewer.here.clone(),
            ..Self::signed_out(viewer.lang, title)
        }
    }

    fn signed_out(lang: Lang, title: String) -> Self {
        Self {
            t: lang.words(),
            title,
            signed_in: false,
            who: String::new(),
            form_token: String::new(),
            billing: false,
            operator: false,
            css: &CSS.path,
            js: &JS.path,
            notice: None,
            error: None,
            here: "/ui".to_owned(),
        }
    }

    /// The other language, offered in the header.
    pub fn other_lang(&self) -> Lang {
        match self.t.lang {
            Lang::En => Lang::Ro,
            Lang::Ro => Lang::En,
        }
    }
}

fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page could not be rendered");
            WebError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be drawn",
            )
            .into_response()
        }
    }
}

/// Why a page or form was refused, shown as a page (or a trip to sign in).
#[derive(Debug)]
pub enum WebError {
    SignIn(String),
    Page { status: StatusCode, message: String },
}

impl WebError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Page {
            status,
            message: message.into(),
        }
    }
}

impl From<crate::api::ApiError> for WebError {
    fn from(e: crate::api::ApiError) -> Self {
        Self::new(e.status, e.message)
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        crate::api::ApiError::from(e).into()
    }
}

impl From<crate::commands::Error> for WebError {
    fn from(e: crate::commands::Error) -> Self {
        crate::api::ApiError::from(e).into()
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    page: Chrome,
    message: &'a str,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::SignIn(next) => {
                let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
                Redirect::to(&format!("/ui/sign-in?{query}")).into_response()
            }
            WebError::Page { status, message } => {
                if status.is_server_error() {
                    tracing::error!(%status, %message, "a page failed");
                }
                // Drawn by `error_pages`, which knows who asked; this is the page without it.
                let page = Chrome::signed_out(Lang::En, error_title(Lang::En, status));
                let mut response = render(
                    status,
                    &ErrorPage {
                        page,
                        message: &message,
                    },
                );
                response.extensions_mut().insert(Refusal(message));
                response
            }
        }
    }
}
