//! The OpenAPI document served at `/api/v1/openapi.json`: built from the routes each resource
//! module declares (one declaration routes and documents), then completed with what every route
//! shares (authentication, scopes, the JSON body, idempotency), which a derive cannot say.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "drover",
        description = "The provisioning control plane of a web-hosting business. Every route \
                       but the probes needs `Authorization: Bearer <token>`; a token's scope \
                       (operator, billing, readonly) decides what it may do. Errors have one \
                       shape: `{\"error\": {\"code\", \"message\", \"field\"}}`."
    ),
    components(schemas(super::webhooks::events::WebhookEvent)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
#[derive(Debug)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The whole document, as served.
pub fn document() -> &'static Value {
    static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
        let routes = utoipa_axum::router::OpenApiRouter::with_openapi(ApiDoc::openapi())
            .merge(super::probes::routes())
            .merge(super::resources());
        complete(serde_json::to_value(routes.into_openapi()).expect("the document is JSON"))
    });
    &DOCUMENT
}

pub async fn serve() -> impl IntoResponse {
    static BODY: LazyLock<String> = LazyLock::new(|| document().to_string());
    ([(header::CONTENT_TYPE, "application/json")], BODY.as_str())
}

/// Says once what every route shares, and makes each schema describe what is sent.
fn complete(mut doc: Value) -> Value {
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        let snapshot = schemas.clone();
        for schema in schemas.values_mut() {
            merge_all_of(schema, &snapshot);
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            complete_operation(path, method, operation);
        }
    }
    doc
}

/// A response that adds fields to another type (`#[serde(flatten)]`) comes out of the derive as
/// `allOf` of that type, which refuses unknown fields, and the additions: no real answer could
/// match it. One object with every field says what is sent.
fn merge_all_of(schema: &mut Value, schemas: &Map<String, Value>) {
    let Some(parts) = schema.get("allOf").and_then(Value::as_array).cloned() else {
        return;
    };
    let mut properties = Map::new();
    let mut required = Vec::new();
    for part in parts {
        let part = match part.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference.trim_start_matches("#/components/schemas/");
                let mut target = schemas.get(name).cloned().unwrap_or_default();
                merge_all_of(&mut target, schemas);
                target
            }
            None => part,
        };
        if let Some(more) = part.get("properties").and_then(Value::as_object) {
            properties.extend(more.clone());
        }
        if let Some(more) = part.get("required").and_then(Value::as_array) {
            required.extend(more.iter().cloned());
        }
    }
    let description = schema.get("description").cloned();
    *schema = json!({"type": "object", "properties": properties, "required": required});
    if let Some(description) = description {
        schema["description"] = description;
    }
}

fn complete_operation(path: &str, method: &str, operation: &mut Value) {
    let open = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().all(|r| r.as_object().is_some_and(Map::is_empty)));
    let has_body = operation.get("requestBody").is_some();
    let params = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut);
    let mut has_query = false;
    if let Some(params) = params {
        for param in params.iter_mut() {
            has_query |= param["in"] == "query";
            // Every `{id}` in a path is a row's id; the derive reads it from `Path<String>`.
            if param["in"] == "path" && param["name"] == "id" {
                param["schema"] = json!({"type": "integer", "format": "int64", "minimum": 1});
                param["description"] = json!("the id drover gave it");
            }
        }
    }
    if method == "post" {
        add_idempotency_key(operation);
    }
    optional_body_without_null(operation);
    let responses = operation["responses"]
        .as_object_mut()
        .expect("every operation has responses");
    let mut shared: Vec<(&str, &str)> = Vec::new();
    if !open {
        shared.push(("401", "no token, or one unknown or revoked"));
        if method != "get" {
            shared.push(("403", "the token's scope does not allow this"));
        }
    }
    if path.contains('{') {
        shared.push(("404", "nothing has this id or name"));
    }
    if path.contains("{zone}") {
        shared.push(("422", "the zone's name is not a domain name"));
    }
    if has_query {
        shared.push((
            "400",
            "a query parameter is not understood; the message names it",
        ));
    }
    if has_body {
        shared.push(("400", "the body is not JSON"));
        shared.push(("413", "the body is larger than 1 MiB"));
        shared.push((
            "415",
            "the body was not sent with Content-Type: application/json",
        ));
        shared.push((
            "422",
            "a field is missing or its value is not accepted; the message says what is",
        ));
    }
    if method == "post" {
        shared.push((
            "400",
            "the Idempotency-Key is not 1 to 255 visible characters",
        ));
        shared.push((
            "409",
            "a request with this Idempotency-Key is still running; retry shortly",
        ));
        shared.push(("413", "the body is larger than 1 MiB"));
        shared.push((
            "422",
            "this Idempotency-Key was used for a different request",
        ));
    }
    // A status several causes share says each of them.
    for (status, description) in shared {
        let response = responses
            .entry(status)
            .or_insert_with(|| json!({"description": ""}));
        let said = response["description"].as_str().unwrap_or_default();
        if !said.contains(description) {
            response["description"] = json!(if said.is_empty() {
                description.to_owned()
            } else {
                format!("{said}; or {description}")
            });
        }
    }
    for (status, response) in responses.iter_mut() {
        let error = !status.starts_with('2');
        if response.get("description").is_none_or(|d| d == "") {
            response["description"] = json!(standard_description(status));
        }
        if error && response.get("content").is_none() {
            response["content"] = json!({"application/json": {"schema":
                {"$ref": "#/components/schemas/ErrorBody"}}});
        }
    }
}

/// An optional body (`Option<T>`) comes out as "T or JSON null"; drover takes no body for the
/// null, and a generated client would send `null`. The body is simply not required.
fn optional_body_without_null(operation: &mut Value) {
    let Some(body) = operation.get_mut("requestBody") else {
        return;
    };
    if body.get("required") == Some(&Value::Bool(true)) {
        return;
    }
    let Some(schema) = body.pointer_mut("/content/application~1json/schema") else {
        return;
    };
    let one_of = schema.get("oneOf").and_then(Value::as_array).cloned();
    if let Some(choices) = one_of {
        let mut not_null = choices.into_iter().filter(|c| c["type"] != "null");
        if let (Some(only), None) = (not_null.next(), not_null.next()) {
            *schema = only;
        }
    }
}

fn add_idempotency_key(operation: &mut Value) {
    let params = operation
        .as_object_mut()
        .expect("an operation is an object")
        .entry("parameters")
        .or_insert_with(|| json!([]));
    let Some(params) = params.as_array_mut() else {
        return;
    };
    if !params.iter().any(|p| p["name"] == "Idempotency-Key") {
        params.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "makes a retry within a day answer what the first request answered, \
                            without doing it twice (1 to 255 characters)",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }));
    }
}

fn standard_description(status: &str) -> &'static str {
    match status {
        "200" => "done; the answer is the resource as it is now",
        "201" => "created; the answer is the new resource",
        "202" => "recorded; the job that carries it out is queued",
        "400" => "the request is not understood",
        "404" => "nothing has this id or name",
        "409" => "refused: it conflicts with the current state; the message says with what",
        "422" => "a value is not accepted; the message says what is",
        "503" => "not ready",
        _ => "see the error's code and message",
    }
}
