//! Request extractors whose refusals speak the API's error shape.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body. Broken JSON is a 400; JSON of the wrong shape or with an invalid value is a
/// 422 naming the field.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json_media_type);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => body_too_large(),
                status => ApiError::new(status, "unreadable_body", e.body_text()),
            })?;
        parse_json(&bytes).map(Json)
    }
}

/// `application/json` or a structured `+json` type (RFC 6839), with any parameters.
fn is_json_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// The answer to a body over the limit, whichever layer reads it.
pub fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "the body is larger than 1 MiB",
    )
}

/// Parses a JSON document into `T`, telling syntax errors from wrong values.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed = |e: serde_json::Error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        )
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(value) => {
            deserializer.end().map_err(malformed)?;
            Ok(value)
        }
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(malformed(inner));
            }
            let at_top = path == ".";
            // serde_json ends data errors with " at line L column C", noise for a field error.
            let text = inner.to_string();
            let text = text
                .rsplit_once(" at line ")
                .map_or(text.as_str(), |(head, _)| head);
            // serde repeats a wrong value whole: a long one is shown by its start and length.
            const SHOWN: usize = 200;
            let chars = text.chars().count();
            let text = if chars > SHOWN + 40 {
                let start: String = text.chars().take(SHOWN).collect();
                format!("{start}… ({chars} characters)")
            } else {
                text.to_owned()
            };
            let error = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("{}: {text}", if at_top { "body" } else { &path }),
            );
            Err(if at_top {
                error
            } else {
                error.with_field(path)
            })
        }
    }
}

/// Query parameters; a bad one is a 400 naming it.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query).map(Query).map_err(|e| {
            let message = match bad_parameter::<T>(query) {
                Some((name, problem)) => format!("query parameter {name}: {problem}"),
                None => format!("query string: {e}"),
            };
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
        })
    }
}

/// The first parameter that fails on its own (every query's parameters are optional), and why:
/// serde's message alone does not say which value was wrong.
fn bad_parameter<T: DeserializeOwned>(query: &str) -> Option<(String, String)> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    pairs.into_iter().find_map(|(name, value)| {
        let alone = serde_urlencoded::to_string([(&name, &value)]).ok()?;
        serde_urlencoded::from_str::<T>(&alone)
            .err()
            .map(|e| (name, e.to_string()))
    })
}

/// A path id such as the `7` of `/api/v1/services/7`.
pub fn path_id<T: std::str::FromStr>(what: &str, raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::not_found(format!("no {what} '{raw}': ids are positive whole numbers"))
    })
}
