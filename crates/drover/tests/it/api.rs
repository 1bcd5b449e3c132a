use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use drover_core::Scope;
use drover_store::{RequestContext, Store};
use http_body_util::BodyExt;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The router over a fresh store, with one token per scope.
struct Api {
    router: axum::Router,
    store: Arc<dyn Store>,
    operator: String,
    billing: String,
    readonly: String,
    _keep: Box<dyn std::any::Any + Send>,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }
}

impl Api {
    /// Serves with `DROVER_BILLING_DELETES_UNCONFIRMED` on.
    fn allow_billing_cleanup(&mut self) {
        self.router = drover::api::router_with(
            Arc::clone(&self.store),
            Arc::new(drover::engine::Sealer::from_hex(&"42".repeat(32)).unwrap()),
            drover::api::ApiSettings {
                billing_deletes_unconfirmed: true,
                ..Default::default()
            },
        );
    }

    async fn new(store: Arc<dyn Store>, keep: Box<dyn std::any::Any + Send>) -> Self {
        let ctx = RequestContext {
            actor: "test".into(),
            correlation_id: "setup".into(),
        };
        let mut secrets = Vec::new();
        for scope in [Scope::Operator, Scope::Billing, Scope::Readonly] {
            let (_, secret) = drover::commands::create_token(&*store, &ctx, scope.as_str(), scope)
                .await
                .unwrap();
            secrets.push(secret.expose_secret().to_owned());
        }
        Self {
            router: drover::api::router(
                Arc::clone(&store),
                Arc::new(drover::engine::Sealer::from_hex(&"42".repeat(32)).unwrap()),
            ),
            store,
            readonly: secrets.pop().unwrap(),
            billing: secrets.pop().unwrap(),
            operator: secrets.pop().unwrap(),
            _keep: keep,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let typed = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !typed {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, Some(&self.operator), &[], None)
            .await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(
            Method::POST,
            path,
            Some(&self.operator),
            &[],
            Some(&body.to_string()),
        )
        .await
    }

    /// A plan, a server and a customer, as an operator sets them up before billing sells.
    async fn setup(&self) -> (i64, i64) {
        let plan = self
            .post(
                "/api/v1/plans",
                json!({"name": "Web 10GB", "disk_quota_mb": 10240, "features": ["web", "dns", "mail"]}),
            )
            .await;
        assert_eq!(plan.status, StatusCode::CREATED, "{:?}", plan.body);
        let server = self
            .post(
                "/api/v1/servers",
                json!({"name": "vm1", "hostname": "vm1.example.net", "capacity": 100,
                       "credentials": "env:DROVER_SECRET_VM1", "ipv4": "192.0.2.10"}),
            )
            .await;
        assert_eq!(server.status, StatusCode::CREATED, "{:?}", server.body);
        let customer = self
            .post(
                "/api/v1/customers",
                json!({"name": "Ana Pop", "email": "ana@example.ro"}),
            )
            .await;
        assert_eq!(customer.status, StatusCode::CREATED, "{:?}", customer.body);
        (
            customer.body["id"].as_i64().unwrap(),
            plan.body["id"].as_i64().unwrap(),
        )
    }

    /// Everything that a refused request must leave untouched.
    async fn snapshot(&self) -> (Value, Value, Value, usize) {
        let services = self.get("/api/v1/services").await.body;
        let accounts = self.get("/api/v1/accounts").await.body;
        let jobs = self.get("/api/v1/jobs").await.body;
        let audit = self.get("/api/v1/audit?limit=1000").await.body;
        (
            services,
            accounts,
            jobs,
            audit.as_array().map_or(0, Vec::len),
        )
    }
}

async fn sqlite() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("drover.db").display());
    Api::new(drover_store::open(&url).await.unwrap(), Box::new(dir)).await
}

async fn postgres() -> Api {
    let db = drover_testkit::TestPostgres::create()
        .await
        .expect("PostgreSQL for tests");
    Api::new(drover_store::open(db.url()).await.unwrap(), Box::new(db)).await
}

drover_testkit::on_both_databases!(
    postgres: postgres,
    sqlite: sqlite;
    the_readme_tour_works,
    bad_requests_get_clear_errors_and_change_nothing,
    tokens_are_required_and_scoped,
    headers_and_bodies_are_read_as_http_defines_them,
    a_retried_post_with_an_idempotency_key_is_answered_once,
    plans_and_servers_are_patched,
    backup_destinations_and_backups_are_served,
    the_openapi_document_describes_every_route,
    dns_zones_are_kept_through_the_api_and_left_to_jobs,
    server_health_is_shown_and_maintenance_set,
    a_move_is_refused_with_its_reason_until_it_can_be_done,
    billing_reads_usage_and_an_operator_asks_for_a_sync,
    billing_asks_for_a_certificate_and_a_reader_sees_how_it_stands,
    billing_deletes_without_repeating_names_only_when_an_operator_allows_it,
    webhook_endpoints_are_an_operators_and_their_secrets_are_shown_once,
);

/// Log lines written while it lives, as `serve` writes them (JSON, with the span's fields).
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An operator reading the log finds each change's request with its time and the id that ties
/// it to its jobs; successful reads, most of an API's traffic, are logged at debug level only.
#[tokio::test]
async fn each_request_is_logged_with_its_duration_and_correlation_id() {
    let api = sqlite().await;
    let answered = |level: tracing::Level, method: Method, path: &'static str, body| {
        let api = &api;
        async move {
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_max_level(level)
                .with_writer(move || writer.clone())
                .finish();
            let _logging = tracing::subscriber::set_default(subscriber);
            let answer = api
                .call(
                    method,
                    path,
                    Some(&api.operator),
                    &[("x-correlation-id", "log-req-7")],
                    body,
                )
                .await;
            assert!(answer.status.is_success(), "{}", answer.message());
            let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|line| serde_json::from_str::<Value>(line).unwrap())
                .filter(|line| line["message"] == "answered")
                .collect::<Vec<Value>>()
        }
    };
    let plan = json!({"name": "Logged"}).to_string();
    let lines = answered(
        tracing::Level::INFO,
        Method::POST,
        "/api/v1/plans",
        Some(&plan),
    )
    .await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["status"], 201, "{line}");
    assert!(line["duration_ms"].as_f64().is_some(), "{line}");
    assert_eq!(line["span"]["correlation_id"], "log-req-7", "{line}");
    assert_eq!(line["span"]["path"], "/api/v1/plans", "{line}");

    let lines = answered(tracing::Level::INFO, Method::GET, "/api/v1/plans", None).await;
    assert!(lines.is_empty(), "a read is not logged at info: {lines:?}");
    let lines = answered(tracing::Level::DEBUG, Method::GET, "/api/v1/plans", None).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["span"]["correlation_id"], "log-req-7");
}

async fn the_readme_tour_works(api: Api) {
    let (customer, plan) = api.setup().await;
    let created = api
        .call(
            Method::POST,
            "/api/v1/services",
            Some(&api.billing),
            &[],
            Some(
                &json!({"customer_id": customer, "plan_id": plan, "domain": "știri.ro"})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.body["domain"], "xn--tiri-pxb.ro");
    assert_eq!(created.body["domain_unicode"], "știri.ro");
    assert_eq!(created.body["status"], "pending");
    assert_eq!(created.body["warnings"], json!([]));
    let id = created.body["id"].as_i64().unwrap();

    let activated = api
        .call(
            Method::POST,
            &format!("/api/v1/services/{id}/activate"),
            Some(&api.billing),
            &[("x-correlation-id", "billing-req-42")],
            None,
        )
        .await;
    assert_eq!(
        activated.status,
        StatusCode::ACCEPTED,
        "{:?}",
        activated.body
    );
    assert_eq!(activated.headers["x-correlation-id"], "billing-req-42");
    assert_eq!(activated.body["service"]["status"], "active");
    assert_eq!(activated.body["account"]["desired_state"], "enabled");
    let job_id = activated.body["job_id"].as_i64().unwrap();

    let job = api.get(&format!("/api/v1/jobs/{job_id}")).await;
    assert_eq!(job.status, StatusCode::OK);
    assert_eq!(job.body["kind"], "converge_account");
    assert_eq!(job.body["state"], "available");
    assert_eq!(job.body["correlation_id"], "billing-req-42");
    let waiting = api.get("/api/v1/jobs?status=available,scheduled").await;
    assert_eq!(waiting.body.as_array().unwrap().len(), 1);

    let account = api.get("/api/v1/accounts?domain=%C8%99tiri.ro").await;
    assert_eq!(account.body[0]["id"], activated.body["account"]["id"]);
    assert_eq!(account.body[0]["protected_from_deletion"], true);

    let suspended = api
        .post(
            &format!("/api/v1/services/{id}/suspend"),
            json!({"reason": "unpaid invoice"}),
        )
        .await;
    assert_eq!(suspended.status, StatusCode::ACCEPTED);
    assert_eq!(
        suspended.body["account"]["suspend_reason"],
        "unpaid invoice"
    );

    let audit = api
        .get(&format!("/api/v1/audit?subject=service:{id}"))
        .await;
    let entries = audit.body.as_array().unwrap();
    assert_eq!(entries[1]["action"], "service.activate");
    assert_eq!(entries[1]["correlation_id"], "billing-req-42");
    assert!(entries[1]["actor"].as_str().unwrap().starts_with("token:"));
    assert_eq!(api.get("/api/v1/audit/verify").await.body["intact"], true);

    let warned = api
        .post(
            "/api/v1/services",
            json!({"customer_id": customer, "plan_id": plan, "domain": "ştiri.ro"}),
        )
        .await;
    assert_eq!(warned.status, StatusCode::CREATED);
    assert_eq!(warned.body["warnings"][0]["code"], "cedilla_letters");
}

async fn bad_requests_get_clear_errors_and_change_nothing(api: Api) {
    let (customer, plan) = api.setup().await;
    let existing = api
        .post(
            "/api/v1/services",
            json!({"customer_id": customer, "plan_id": plan, "domain": "example.ro"}),
        )
        .await;
    let id = existing.body["id"].as_i64().unwrap();
    let before = api.snapshot().await;

    let service = |domain: &str, plan: i64| json!({"customer_id": customer, "plan_id": plan, "domain": domain});
    let invalid = api
        .post("/api/v1/services", service("exa_mple.ro", plan))
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid.body["error"]["field"], "domain");
    assert!(
        invalid.message().contains("exa_mple")
            && invalid.message().contains("letters, digits and hyphens")
    );

    let duplicate = api
        .post("/api/v1/services", service("EXAMPLE.ro.", plan))
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.code(), "duplicate_domain");
    assert!(
        duplicate.message().contains("example.ro"),
        "{}",
        duplicate.message()
    );

    let unknown_plan = api.post("/api/v1/services", service("new.ro", 999)).await;
    assert_eq!(unknown_plan.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        (unknown_plan.code(), &unknown_plan.body["error"]["field"]),
        ("unknown_plan", &json!("plan_id"))
    );

    let illegal = api
        .post(&format!("/api/v1/services/{id}/unsuspend"), json!({}))
        .await;
    assert_eq!(illegal.status, StatusCode::CONFLICT);
    assert_eq!(illegal.code(), "illegal_transition");
    assert!(
        illegal.message().contains("pending") && illegal.message().contains("suspended"),
        "{}",
        illegal.message()
    );

    let malformed = api
        .call(
            Method::POST,
            "/api/v1/services",
            Some(&api.operator),
            &[],
            Some("{\"customer_id\": 1,"),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.code(), "malformed_json");

    let unknown_field = api
        .post(
            "/api/v1/customers",
            json!({"name": "X", "mail": "x@example.ro"}),
        )
        .await;
    assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        unknown_field.message().contains("unknown field `mail`"),
        "{}",
        unknown_field.message()
    );

    let bad_server = api
        .post("/api/v1/servers", json!({"name": "vm2", "hostname": "vm2.example.net", "capacity": 0, "credentials": "hunter2"}))
        .await;
    assert_eq!(bad_server.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad_server.message().contains("env:VARIABLE_NAME"),
        "{}",
        bad_server.message()
    );

    assert_eq!(
        api.get("/api/v1/services/999").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get("/api/v1/services/abc").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get("/api/v1/jobs?status=stuck").await.status,
        StatusCode::BAD_REQUEST
    );

    assert_eq!(
        api.snapshot().await,
        before,
        "a refused request must change nothing"
    );
}

async fn headers_and_bodies_are_read_as_http_defines_them(api: Api) {
    let body = json!({"name": "Ion"}).to_string();
    // The scheme's name is case-insensitive (RFC 9110 section 11.1).
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let auth = format!("{scheme} {}", api.operator);
        let answer = api
            .call(
                Method::GET,
                "/api/v1/customers",
                None,
                &[("authorization", &auth)],
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{scheme}: {:?}", answer.body);
    }
    let token = Some(api.operator.as_str());
    for (content_type, status) in [
        ("application/json; charset=utf-8", StatusCode::CREATED),
        ("Application/JSON", StatusCode::CREATED),
        ("application/merge+json", StatusCode::CREATED),
        ("application/jsonx", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("application/json-seq", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("text/plain+jsonish", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE),
    ] {
        let answer = api
            .call(
                Method::POST,
                "/api/v1/customers",
                token,
                &[("content-type", content_type)],
                Some(&body),
            )
            .await;
        assert_eq!(answer.status, status, "{content_type}: {:?}", answer.body);
    }
    // A long wrong value is not echoed whole.
    let huge = "x".repeat(100_000);
    for body in [
        json!({"name": "pdns-1", "credentials": "env:DROVER_SECRET_P",
               "settings": {"kind": huge, "api_url": "http://p"}}),
        json!({"name": "Ion", "email": 5, huge.clone(): 1}),
    ] {
        let answer = api
            .call(
                Method::POST,
                "/api/v1/dns/providers",
                token,
                &[],
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(answer.message().len() < 600, "{}", answer.message().len());
    }
    let answer = api
        .post(
            "/api/v1/services",
            json!({"customer_id": 1, "plan_id": 1, "domain": huge}),
        )
        .await;
    assert!(answer.message().len() < 600, "{}", answer.message().len());
    // Too large is 413 whether or not the request carries an Idempotency-Key.
    let large = json!({"name": "x".repeat(2 * 1024 * 1024)}).to_string();
    for headers in [&[][..], &[("idempotency-key", "big-1")][..]] {
        let answer = api
            .call(
                Method::POST,
                "/api/v1/customers",
                token,
                headers,
                Some(&large),
            )
            .await;
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{headers:?}");
        assert_eq!(answer.code(), "body_too_large");
    }
}

async fn tokens_are_required_and_scoped(api: Api) {
    let (customer, _) = api.setup().await;
    let body = json!({"name": "Ion"}).to_string();

    let missing = api
        .call(Method::GET, "/api/v1/customers", None, &[], None)
        .await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        missing.headers["www-authenticate"],
        "Bearer realm=\"drover\""
    );
    let wrong = api
        .call(
            Method::GET,
            "/api/v1/customers",
            Some("drv_forged"),
            &[],
            None,
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    let read = api
        .call(
            Method::GET,
            &format!("/api/v1/customers/{customer}"),
            Some(&api.readonly),
            &[],
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    let write = api
        .call(
            Method::POST,
            "/api/v1/customers",
            Some(&api.readonly),
            &[],
            Some(&body),
        )
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);
    assert!(write.message().contains("readonly"), "{}", write.message());

    let billing_customer = api
        .call(
            Method::POST,
            "/api/v1/customers",
            Some(&api.billing),
            &[],
            Some(&body),
        )
        .await;
    assert_eq!(billing_customer.status, StatusCode::CREATED);
    let billing_plan = api
        .call(
            Method::POST,
            "/api/v1/plans",
            Some(&api.billing),
            &[],
            Some(&json!({"name": "P"}).to_string()),
        )
        .await;
    assert_eq!(billing_plan.status, StatusCode::FORBIDDEN);
    assert!(
        billing_plan.message().contains("needs scope operator"),
        "{}",
        billing_plan.message()
    );

    // Probes answer without a token; nothing else does.
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            api.call(Method::GET, path, None, &[], None).await.status,
            StatusCode::OK
        );
    }
    let openapi = api
        .call(Method::GET, "/api/v1/openapi.json", None, &[], None)
        .await;
    assert_eq!(openapi.status, StatusCode::UNAUTHORIZED);

    // A revoked token stops working at once.
    let created = api
        .post(
            "/api/v1/tokens",
            json!({"name": "temp", "scope": "readonly"}),
        )
        .await;
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_i64().unwrap();
    assert_eq!(
        api.call(Method::GET, "/api/v1/plans", Some(&secret), &[], None)
            .await
            .status,
        StatusCode::OK
    );
    let revoked = api
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&api.operator),
            &[],
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(
        api.call(Method::GET, "/api/v1/plans", Some(&secret), &[], None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // One revoked by another process (the CLI on the same database) is refused within a
    // second: this process trusts a confirmed token that long.
    let created = api
        .post(
            "/api/v1/tokens",
            json!({"name": "elsewhere", "scope": "readonly"}),
        )
        .await;
    let other = created.body["secret"].as_str().unwrap().to_owned();
    let id = drover_core::TokenId(created.body["id"].as_i64().unwrap());
    let plans = || api.call(Method::GET, "/api/v1/plans", Some(&other), &[], None);
    assert_eq!(plans().await.status, StatusCode::OK);
    let cli = RequestContext {
        actor: "cli".into(),
        correlation_id: "revoke-elsewhere".into(),
    };
    drover::commands::revoke_token(&*api.store, &cli, id)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_050)).await;
    assert_eq!(plans().await.status, StatusCode::UNAUTHORIZED);

    let listed = api.get("/api/v1/tokens").await;
    assert!(
        !listed.body.to_string().contains(&secret),
        "token secrets are never listed"
    );
}

async fn a_retried_post_with_an_idempotency_key_is_answered_once(api: Api) {
    let (customer, plan) = api.setup().await;
    let body =
        json!({"customer_id": customer, "plan_id": plan, "domain": "example.ro"}).to_string();
    let send = |key: &'static str, body: String| {
        let api = &api;
        async move {
            api.call(
                Method::POST,
                "/api/v1/services",
                Some(&api.billing),
                &[("idempotency-key", key)],
                Some(&body),
            )
            .await
        }
    };
    let first = send("order-77", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let retry = send("order-77", body.clone()).await;
    assert_eq!(
        retry.status,
        StatusCode::CREATED,
        "the retry gets the first answer, not a 409"
    );
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(
        api.get("/api/v1/services")
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let other = json!({"customer_id": customer, "plan_id": plan, "domain": "other.ro"}).to_string();
    let reused = send("order-77", other).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.code(), "idempotency_key_reused");

    // A refusal is an answer too: the retry gets the same refusal.
    let id = first.body["id"].as_i64().unwrap();
    let path = format!("/api/v1/services/{id}/suspend");
    let refused = api
        .call(
            Method::POST,
            &path,
            Some(&api.billing),
            &[("idempotency-key", "s1")],
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    let again = api
        .call(
            Method::POST,
            &path,
            Some(&api.billing),
            &[("idempotency-key", "s1")],
            None,
        )
        .await;
    assert_eq!((again.status, again.body), (refused.status, refused.body));

    // Without a key, a repeat is a new request.
    let activate = format!("/api/v1/services/{id}/activate");
    assert_eq!(
        api.call(Method::POST, &activate, Some(&api.billing), &[], None)
            .await
            .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        api.call(Method::POST, &activate, Some(&api.billing), &[], None)
            .await
            .status,
        StatusCode::CONFLICT
    );
}

async fn plans_and_servers_are_patched(api: Api) {
    let (customer, plan_id) = api.setup().await;
    let patch = |path: &str, body: Value| {
        let api = &api;
        let path = path.to_owned();
        async move {
            api.call(
                Method::PATCH,
                &path,
                Some(&api.operator),
                &[],
                Some(&body.to_string()),
            )
            .await
        }
    };
    let plan = patch(
        "/api/v1/plans/1",
        json!({"max_mailboxes": 50, "disk_quota_mb": null}),
    )
    .await;
    assert_eq!(plan.status, StatusCode::OK, "{:?}", plan.body);
    assert_eq!(
        (
            plan.body["max_mailboxes"].clone(),
            plan.body["disk_quota_mb"].clone()
        ),
        (json!(50), Value::Null)
    );
    assert_eq!(plan.body["features"], json!(["web", "dns", "mail"]));

    // A plan narrowed below what an account holds is refused unless forced.
    let service = json!({"customer_id": customer, "plan_id": plan_id, "domain": "plin.ro"});
    let account = api.post("/api/v1/services", service).await.body["account_id"].clone();
    let mailbox = json!({"name": "ana", "password": "Mail-passw0rd"});
    let path = format!("/api/v1/accounts/{account}/mailboxes");
    assert_eq!(api.post(&path, mailbox).await.status, StatusCode::CREATED);
    let no_mail = json!({"features": ["web", "dns"]});
    let refused = patch("/api/v1/plans/1", no_mail.clone()).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "plan_too_small")
    );
    assert_eq!(
        api.get("/api/v1/plans/1").await.body["features"],
        json!(["web", "dns", "mail"])
    );
    let forced = patch("/api/v1/plans/1?force=true", no_mail).await;
    assert_eq!(forced.status, StatusCode::OK, "{:?}", forced.body);
    assert_eq!(
        api.get(&format!("/api/v1/accounts/{account}")).await.body["over_limit"],
        "1 mailboxes without the feature mail"
    );

    let server = patch(
        "/api/v1/servers/1",
        json!({"capacity": 300, "tags": ["ssd"]}),
    )
    .await;
    assert_eq!(server.status, StatusCode::OK, "{:?}", server.body);
    assert_eq!(server.body["capacity"], 300);
    let refused = patch("/api/v1/servers/1", json!({"port": 0})).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(api.get("/api/v1/servers/1").await.body["port"], 10000);
    assert_eq!(
        patch("/api/v1/plans/9", json!({})).await.status,
        StatusCode::NOT_FOUND
    );
    let stored = api.store.server(drover_core::ServerId(1)).await.unwrap();
    assert_eq!(stored.spec.capacity, 300);
}

async fn the_openapi_document_describes_every_route(api: Api) {
    let doc = api.get("/api/v1/openapi.json").await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.body["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/customers", "post"),
        ("/api/v1/customers/{id}", "get"),
        ("/api/v1/plans/{id}", "patch"),
        ("/api/v1/backup-destinations", "post"),
        ("/api/v1/backup-destinations/{id}", "patch"),
        ("/api/v1/accounts/{id}/backups", "post"),
        ("/api/v1/backups", "get"),
        ("/api/v1/accounts/{id}/restore", "post"),
        ("/api/v1/servers/{id}", "patch"),
        ("/api/v1/services", "post"),
        ("/api/v1/services/{id}/{action}", "post"),
        ("/api/v1/accounts", "get"),
        ("/api/v1/jobs", "get"),
        ("/api/v1/tokens/{id}", "delete"),
        ("/api/v1/usage", "get"),
        ("/api/v1/services/{id}/usage", "get"),
        ("/healthz", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    // Every documented route exists: none answers "no route".
    for (path, methods) in paths {
        let concrete = path.replace("{id}", "999").replace("{action}", "activate");
        for method in methods.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let answer = api
                .call(method.clone(), &concrete, Some(&api.operator), &[], None)
                .await;
            assert_ne!(answer.code(), "method_not_allowed", "{method} {path}");
            assert!(!answer.message().starts_with("no route"), "{method} {path}");
        }
    }
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());
    // What every route shares is said on each: a generated client reads nothing else.
    for (path, methods) in paths {
        for (method, operation) in methods.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            for (status, response) in responses {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status} has no description"
                );
            }
            let open = path == "/healthz" || path == "/readyz";
            assert_eq!(responses.contains_key("401"), !open, "{method} {path}");
            let params = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if method == "post" {
                assert!(
                    params.iter().any(|p| p["name"] == "Idempotency-Key"),
                    "{method} {path} lacks Idempotency-Key"
                );
            }
            if operation.get("requestBody").is_some() {
                for status in ["415", "422"] {
                    assert!(responses.contains_key(status), "{method} {path} {status}");
                }
            }
            for param in params.iter().filter(|p| p["name"] == "id") {
                assert_eq!(param["schema"]["type"], "integer", "{method} {path}");
            }
        }
    }
    // A response that adds fields to another type is one object listing them all.
    let customer = &doc.body["components"]["schemas"]["Customer"];
    assert!(customer.get("allOf").is_none(), "{customer}");
    for field in ["id", "name", "email", "created_at"] {
        assert!(
            customer["properties"].get(field).is_some(),
            "Customer.{field}"
        );
    }
    assert!(!doc.body.to_string().contains("\"allOf\""));
}

async fn dns_zones_are_kept_through_the_api_and_left_to_jobs(api: Api) {
    let provider = json!({"name": "pdns-1", "credentials": "env:DROVER_SECRET_PDNS", "settings": {
        "kind": "powerdns", "api_url": "http://127.0.0.1:8081", "dns_address": "127.0.0.1:5301"}});
    let billing = api
        .call(
            Method::POST,
            "/api/v1/dns/providers",
            Some(&api.billing),
            &[],
            Some(&provider.to_string()),
        )
        .await;
    assert_eq!(billing.status, StatusCode::FORBIDDEN);
    let created = api.post("/api/v1/dns/providers", provider.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(
        api.post("/api/v1/dns/providers", provider).await.status,
        StatusCode::CONFLICT
    );
    let zone = json!({"name": "Știri.ro", "providers": ["pdns-1"], "rrsets": [
        {"name": "@", "type": "A", "ttl": 300, "records": ["192.0.2.10"]},
        {"name": "www", "type": "cname", "ttl": 300, "records": ["știri.ro"]},
        {"name": "@", "type": "TXT", "ttl": 3600, "records": ["v=spf1 a ~all"]},
    ]});
    let created = api.post("/api/v1/dns/zones", zone).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.body["name"], "xn--tiri-pxb.ro");
    let rrsets = created.body["rrsets"].as_array().unwrap();
    assert!(
        rrsets
            .iter()
            .any(|r| r["type"] == "CNAME" && r["records"][0] == "xn--tiri-pxb.ro.")
    );
    assert!(
        rrsets
            .iter()
            .any(|r| r["type"] == "TXT" && r["records"][0] == "\"v=spf1 a ~all\"")
    );
    let jobs = api.get("/api/v1/jobs").await.body;
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .any(|j| j["kind"] == "sync_zone"),
        "{jobs}"
    );
    // Refusals say what was wrong and change nothing.
    let unknown = api
        .post(
            "/api/v1/dns/zones",
            json!({"name": "alt.ro", "providers": ["nope"]}),
        )
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "unknown_provider")
    );
    let put = |body: Value| {
        let api = &api;
        async move {
            api.call(
                Method::PUT,
                "/api/v1/dns/zones/xn--tiri-pxb.ro/rrsets",
                Some(&api.operator),
                &[],
                Some(&body.to_string()),
            )
            .await
        }
    };
    let bad =
        put(json!({"name": "mail", "type": "A", "ttl": 300, "records": ["2001:db8::1"]})).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.message().contains("IPv4"), "{}", bad.message());
    let clash =
        put(json!({"name": "www", "type": "A", "ttl": 300, "records": ["192.0.2.1"]})).await;
    assert!(
        clash.message().contains("beside the CNAME"),
        "{}",
        clash.message()
    );
    assert_eq!(
        api.get("/api/v1/dns/zones/știri.ro").await.body["generation"],
        1
    );
    let good =
        put(json!({"name": "mail", "type": "A", "ttl": 300, "records": ["192.0.2.11"]})).await;
    assert_eq!(
        (good.status, good.body["generation"].as_i64()),
        (StatusCode::OK, Some(2))
    );
    let deleted = api
        .call(
            Method::DELETE,
            "/api/v1/dns/zones/xn--tiri-pxb.ro/rrsets/mail/A",
            Some(&api.operator),
            &[],
            None,
        )
        .await;
    assert_eq!(
        (deleted.status, deleted.body["generation"].as_i64()),
        (StatusCode::OK, Some(3))
    );
    let listed = api.get("/api/v1/dns/zones?provider=pdns-1").await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));
    // No worker runs here: the zone's sync waits, a sync asked for joins it, and a forced one
    // may not (it would be worked within the safety limits) and names the job to wait for.
    let sync = api
        .post("/api/v1/dns/zones/xn--tiri-pxb.ro/sync", json!({}))
        .await;
    assert_eq!(sync.status, StatusCode::ACCEPTED, "{:?}", sync.body);
    let waiting = sync.body["job_id"].as_i64().unwrap();
    let forced = api
        .post(
            "/api/v1/dns/zones/xn--tiri-pxb.ro/sync",
            json!({"force": true}),
        )
        .await;
    assert_eq!(
        (forced.status, forced.code()),
        (StatusCode::CONFLICT, "sync_under_way")
    );
    assert!(
        forced.message().contains(&format!("job {waiting}")),
        "{:?}",
        forced.body
    );
    // Deleting needs the name repeated; then the zone waits for its job to empty the providers.
    let refused = api
        .post(
            "/api/v1/dns/zones/xn--tiri-pxb.ro/delete",
            json!({"confirm_zone": "other.ro"}),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "confirmation_mismatch")
    );
    let removed = api
        .post(
            "/api/v1/dns/zones/xn--tiri-pxb.ro/delete",
            json!({"confirm_zone": "știri.ro"}),
        )
        .await;
    assert_eq!(
        (removed.status, removed.body["deleting"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    // The failover rewrite runs as a job; its output will be the report.
    let empty = api
        .post(
            "/api/v1/dns/rewrite",
            json!({"from": [], "to": ["203.0.113.1"]}),
        )
        .await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    let not_ip = api
        .post(
            "/api/v1/dns/rewrite",
            json!({"from": ["192.0.2.300"], "to": ["203.0.113.1"]}),
        )
        .await;
    assert_eq!(
        not_ip.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        not_ip.body
    );
    let rewrite = api
        .post(
            "/api/v1/dns/rewrite",
            json!({"from": ["192.0.2.10"], "to": ["203.0.113.1"]}),
        )
        .await;
    assert_eq!(rewrite.status, StatusCode::ACCEPTED);
    let job = api
        .get(&format!("/api/v1/jobs/{}", rewrite.body["job_id"]))
        .await;
    assert_eq!(job.body["kind"], "rewrite_addresses", "{:?}", job.body);
}

async fn server_health_is_shown_and_maintenance_set(api: Api) {
    api.setup().await;
    let unchecked = api.get("/api/v1/servers/1/health").await;
    assert_eq!(unchecked.status, StatusCode::NOT_FOUND);
    assert!(
        unchecked.message().contains("not been checked yet"),
        "{}",
        unchecked.message()
    );
    assert_eq!(
        api.get("/api/v1/servers/9/health").await.status,
        StatusCode::NOT_FOUND
    );
    let probe = drover_core::HealthProbe {
        api_ok: true,
        latency_ms: 2600,
        error: None,
        certificate_days_left: Some(40),
        pin_matches: None,
        breaker_open: false,
        login_refused: false,
    };
    let ctx = RequestContext {
        actor: "test".into(),
        correlation_id: "health".into(),
    };
    api.store
        .record_health(&ctx, drover_core::ServerId(1), &probe, &Default::default())
        .await
        .unwrap();
    let health = api
        .call(
            Method::GET,
            "/api/v1/servers/1/health",
            Some(&api.readonly),
            &[],
            None,
        )
        .await;
    assert_eq!(health.status, StatusCode::OK, "{:?}", health.body);
    assert_eq!(health.body["verdict"], "degraded");
    assert!(
        health.body["reasons"][0]
            .as_str()
            .unwrap()
            .contains("2600 ms")
    );
    assert_eq!(
        health.body["state"], "healthy",
        "one slow answer moves nothing"
    );
    let body = json!({"on": true}).to_string();
    let billing = api
        .call(
            Method::POST,
            "/api/v1/servers/1/maintenance",
            Some(&api.billing),
            &[],
            Some(&body),
        )
        .await;
    assert_eq!(billing.status, StatusCode::FORBIDDEN);
    let on = api
        .post("/api/v1/servers/1/maintenance", json!({"on": true}))
        .await;
    assert_eq!(
        (on.status, on.body["state"].as_str()),
        (StatusCode::OK, Some("maintenance"))
    );
    let off = api
        .post("/api/v1/servers/1/maintenance", json!({"on": false}))
        .await;
    assert_eq!(off.body["state"], "healthy");
    let bad = api
        .post("/api/v1/servers/1/maintenance", json!({"enabled": true}))
        .await;
    assert_eq!(
        bad.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        bad.body
    );
    // Drift: findings of the last scans, and a scan-and-repair job on request.
    assert_eq!(api.get("/api/v1/drift?server_id=1").await.body, json!([]));
    let scan = api.post("/api/v1/servers/1/drift-scan", json!({})).await;
    assert_eq!(scan.status, StatusCode::ACCEPTED, "{:?}", scan.body);
    let job = api
        .get(&format!("/api/v1/jobs/{}", scan.body["job_id"]))
        .await;
    assert_eq!(job.body["kind"], "scan_drift");
    assert_eq!(
        api.post("/api/v1/servers/77/drift-scan", json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn a_move_is_refused_with_its_reason_until_it_can_be_done(api: Api) {
    let (customer, plan) = api.setup().await;
    assert_eq!(
        api.post("/api/v1/accounts/1/migrate", json!({"to_server": 1}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let created = api
        .post(
            "/api/v1/services",
            json!({"customer_id": customer, "plan_id": plan, "domain": "mut.ro"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    // No SSH host carries content: refused, naming the field that allows it.
    let refused = api
        .post("/api/v1/accounts/1/migrate", json!({"to_server": 1}))
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "content_would_stay"),
        "{:?}",
        refused.body
    );
    assert_eq!(
        refused.body["error"]["field"], "without_content",
        "{:?}",
        refused.body
    );
    assert!(
        refused
            .message()
            .starts_with("moving mut.ro would leave the customers' files"),
        "{}",
        refused.message()
    );
    let refused = api
        .post(
            "/api/v1/accounts/1/migrate",
            json!({"to_server": 1, "grace_seconds": 60, "without_content": true}),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "not_placed"),
        "{:?}",
        refused.body
    );
    assert!(
        refused.message().contains("on no server yet"),
        "{}",
        refused.message()
    );
    let never = api.get("/api/v1/accounts/1/migration").await;
    assert_eq!(never.status, StatusCode::NOT_FOUND);
    assert!(never.message().contains("never been moved"));
    let confirm = api
        .post(
            "/api/v1/accounts/1/migration/confirm",
            json!({"confirm_domain": "mut.ro"}),
        )
        .await;
    assert_eq!(
        (confirm.status, confirm.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "no_migration")
    );
    let billing = api
        .call(
            Method::POST,
            "/api/v1/accounts/1/migrate",
            Some(&api.billing),
            &[],
            Some(&json!({"to_server": 1}).to_string()),
        )
        .await;
    assert_eq!(
        billing.status,
        StatusCode::FORBIDDEN,
        "moving accounts is an operator's work"
    );
    // Draining plans from the records; an empty server is retired with its name repeated.
    let dry = api
        .post("/api/v1/servers/1/drain", json!({"dry_run": true}))
        .await;
    assert_eq!(dry.status, StatusCode::OK, "{:?}", dry.body);
    assert_eq!(dry.body["moves"], json!([]));
    let wrong = api
        .post(
            "/api/v1/servers/1/decommission",
            json!({"confirm_name": "vm9"}),
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "confirmation_mismatch")
    );
    let retired = api
        .post(
            "/api/v1/servers/1/decommission",
            json!({"confirm_name": "vm1"}),
        )
        .await;
    assert_eq!(
        retired.body["state"], "decommissioned",
        "{:?}",
        retired.body
    );
    let rebuild = api
        .post(
            "/api/v1/servers/1/rebuild",
            json!({"onto": 1, "dry_run": true}),
        )
        .await;
    assert_eq!(
        (rebuild.status, rebuild.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "rebuild_blocked")
    );
    assert!(
        rebuild.message().contains("onto itself"),
        "{}",
        rebuild.message()
    );
}

async fn billing_reads_usage_and_an_operator_asks_for_a_sync(api: Api) {
    let (customer, plan) = api.setup().await;
    let created = api
        .post(
            "/api/v1/services",
            json!({"customer_id": customer, "plan_id": plan, "domain": "ana.ro"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let service = created.body["id"].as_i64().unwrap();
    let account = drover_core::AccountId(created.body["account_id"].as_i64().unwrap());
    let ctx = RequestContext {
        actor: "test".into(),
        correlation_id: "usage".into(),
    };
    api.store
        .assign_server(&ctx, account, drover_core::ServerId(1))
        .await
        .unwrap();
    let api = &api;
    let billing_get = async |path: String| {
        api.call(Method::GET, &path, Some(&api.billing), &[], None)
            .await
    };
    let path = format!("/api/v1/services/{service}/usage");
    let unmeasured = billing_get(path.clone()).await;
    assert_eq!(
        (unmeasured.status, unmeasured.code()),
        (StatusCode::NOT_FOUND, "not_measured")
    );
    assert!(
        unmeasured.message().contains("ana.ro") && unmeasured.message().contains("usage-sync"),
        "{}",
        unmeasured.message()
    );
    let unknown = billing_get("/api/v1/services/99/usage".into()).await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );

    let figures = drover_core::Usage {
        disk_bytes: Some(734_003_200),
        bandwidth_bytes: None,
        mailboxes: 3,
        databases: 1,
        database_bytes: 65_536,
    };
    api.store
        .record_usage(drover_core::ServerId(1), &[(account, figures)])
        .await
        .unwrap();
    let usage = billing_get(path).await;
    assert_eq!(usage.status, StatusCode::OK, "{:?}", usage.body);
    assert_eq!(usage.body["service_id"], service);
    assert_eq!(usage.body["domain"], "ana.ro");
    assert_eq!(usage.body["disk_bytes"], 734_003_200);
    assert_eq!(usage.body["mailboxes"], 3);
    assert!(
        usage.body["bandwidth_bytes"].is_null(),
        "not measured is null, not zero: {:?}",
        usage.body
    );
    assert!(usage.body["measured_at"].is_string());
    let listed = api
        .call(
            Method::GET,
            "/api/v1/usage?server_id=1&limit=10",
            Some(&api.readonly),
            &[],
            None,
        )
        .await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));
    let typo = api.get("/api/v1/usage?server=1").await;
    assert_eq!(typo.status, StatusCode::BAD_REQUEST);
    assert!(
        typo.message()
            .starts_with("query parameter server: unknown field"),
        "{}",
        typo.message()
    );
    let bad_limit = api.get("/api/v1/usage?server_id=1&limit=ten").await;
    assert_eq!(bad_limit.status, StatusCode::BAD_REQUEST);
    assert!(
        bad_limit
            .message()
            .starts_with("query parameter limit: invalid digit"),
        "{}",
        bad_limit.message()
    );

    // A sync is an operator's request: a job, never a call made inline.
    let by_billing = api
        .call(
            Method::POST,
            "/api/v1/servers/1/usage-sync",
            Some(&api.billing),
            &[],
            None,
        )
        .await;
    assert_eq!(by_billing.status, StatusCode::FORBIDDEN);
    let sync = api.post("/api/v1/servers/1/usage-sync", json!({})).await;
    assert_eq!(sync.status, StatusCode::ACCEPTED, "{:?}", sync.body);
    let job = api
        .get(&format!("/api/v1/jobs/{}", sync.body["job_id"]))
        .await;
    assert_eq!(job.body["kind"], "sync_usage");
    assert_eq!(
        api.post("/api/v1/servers/77/usage-sync", json!({}))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn billing_asks_for_a_certificate_and_a_reader_sees_how_it_stands(api: Api) {
    let (customer, plan) = api.setup().await;
    let created = api
        .post(
            "/api/v1/services",
            json!({"customer_id": customer, "plan_id": plan, "domain": "sigur.ro"}),
        )
        .await;
    let account = created.body["account_id"].as_i64().unwrap();
    let path = format!("/api/v1/accounts/{account}/certificate");
    let as_ = |token: &str, method: Method| {
        let (api, path, token) = (&api, path.clone(), token.to_owned());
        async move { api.call(method, &path, Some(&token), &[], None).await }
    };
    let none = as_(&api.readonly, Method::GET).await;
    assert_eq!(
        (none.status, none.code()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert!(none.message().contains("sigur.ro"), "{}", none.message());
    let refused = as_(&api.readonly, Method::POST).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let asked = as_(&api.billing, Method::POST).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{:?}", asked.body);
    assert_eq!(asked.body["certificate"]["state"], "requested");
    assert!(asked.body["job_id"].as_i64().is_some(), "{:?}", asked.body);
    let seen = as_(&api.readonly, Method::GET).await;
    assert_eq!(seen.body["domain"], "sigur.ro", "{:?}", seen.body);
    assert!(
        seen.body.get("recent_failures").is_none(),
        "{:?}",
        seen.body
    );
    let listed = api.get("/api/v1/certificates?state=requested").await;
    assert_eq!(
        listed.body.as_array().unwrap().len(),
        1,
        "{:?}",
        listed.body
    );
    let bad = api.get("/api/v1/certificates?state=valid").await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "invalid_query")
    );
    assert!(
        bad.message().contains("`requested`, `issued`, `failed`"),
        "{}",
        bad.message()
    );
    let far = api
        .get("/api/v1/certificates?expiring_within_days=99999")
        .await;
    assert_eq!(
        (far.status, far.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value")
    );
    assert_eq!(far.body["error"]["field"], "expiring_within_days");
    let forgotten = as_(&api.billing, Method::DELETE).await;
    assert_eq!(forgotten.status, StatusCode::NO_CONTENT);
    let again = as_(&api.billing, Method::DELETE).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

async fn billing_deletes_without_repeating_names_only_when_an_operator_allows_it(mut api: Api) {
    let (customer, plan) = api.setup().await;
    let created = api
        .post(
            "/api/v1/services",
            json!({"customer_id": customer, "plan_id": plan, "domain": "curat.ro"}),
        )
        .await;
    let account = created.body["account_id"].as_i64().unwrap();
    for name in ["shop", "blog"] {
        let mailbox = api
            .call(
                Method::POST,
                &format!("/api/v1/accounts/{account}/mailboxes"),
                Some(&api.billing),
                &[],
                Some(&json!({"name": name, "password": "Mail-passw0rd"}).to_string()),
            )
            .await;
        assert_eq!(mailbox.status, StatusCode::CREATED, "{:?}", mailbox.body);
    }
    let delete = async |api: &Api, token: &str, name: &str| {
        let path = format!("/api/v1/accounts/{account}/mailboxes/{name}/delete");
        api.call(Method::POST, &path, Some(token), &[], Some("{}"))
            .await
    };
    // By default a name must be repeated, whoever asks.
    let refused = delete(&api, &api.billing, "shop").await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "confirmation_mismatch")
    );
    // An operator allows the billing system's cleanup: billing deletes without, audited as
    // such; an operator still repeats the name.
    api.allow_billing_cleanup();
    let refused = delete(&api, &api.operator, "shop").await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let deleted = delete(&api, &api.billing, "shop").await;
    assert_eq!(deleted.status, StatusCode::OK, "{:?}", deleted.body);
    assert_eq!(deleted.body["deleting"], true);
    let audit = api.get("/api/v1/audit?limit=1000").await.body;
    let event = audit
        .as_array()
        .unwrap()
        .iter()
        .rfind(|e| e["action"] == "mailbox.delete")
        .unwrap();
    let details: Value = serde_json::from_str(event["details"].as_str().unwrap()).unwrap();
    assert_eq!(details["confirmed"], "billing_cleanup", "{event}");
}

async fn backup_destinations_and_backups_are_served(api: Api) {
    let (customer, plan) = api.setup().await;
    let spec = json!({"name": "local", "location": "/var/backups/drover", "default": true});
    // Destinations are an operator's.
    let refused = api
        .call(
            Method::POST,
            "/api/v1/backup-destinations",
            Some(&api.billing),
            &[],
            Some(&spec.to_string()),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let bad = api
        .post(
            "/api/v1/backup-destinations",
            json!({"name": "x", "location": "backups"}),
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );
    assert!(
        bad.message()
            .contains("an absolute directory on the server"),
        "{:?}",
        bad.body
    );
    let created = api.post("/api/v1/backup-destinations", spec.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(
        (
            created.body["keep_daily"].clone(),
            created.body["keep_weekly"].clone(),
            created.body["default"].clone()
        ),
        (json!(7), json!(4), json!(true))
    );
    let twin = api.post("/api/v1/backup-destinations", spec).await;
    assert_eq!(
        (twin.status, twin.code()),
        (StatusCode::CONFLICT, "duplicate_name")
    );
    // An SSH host: its password's source and its pinned key kept (never a password); one
    // pasted into the location refused without being echoed; credentials drover may not read
    // from refused.
    let key = "SHA256:D6dVhy6OODf0DHt8bFg67I35TK0pDspxPgfkfADKbzU";
    let pasted = api
        .post(
            "/api/v1/backup-destinations",
            json!({"name": "vault", "location": "ssh://backup:hunter2@vault.example.net:/srv",
                   "credentials": "env:DROVER_SECRET_VAULT", "host_key": key}),
        )
        .await;
    assert_eq!(pasted.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        !pasted.body.to_string().contains("hunter2"),
        "{:?}",
        pasted.body
    );
    let elsewhere = api
        .post(
            "/api/v1/backup-destinations",
            json!({"name": "vault", "location": "ssh://backup@vault.example.net:/srv",
                   "credentials": "env:HOME", "host_key": key}),
        )
        .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        elsewhere.body
    );
    let vault = api
        .post(
            "/api/v1/backup-destinations",
            json!({"name": "vault", "location": "ssh://backup@vault.example.net:2222/srv/",
                   "credentials": "env:DROVER_SECRET_VAULT", "host_key": key}),
        )
        .await;
    assert_eq!(vault.status, StatusCode::CREATED, "{:?}", vault.body);
    assert_eq!(
        (
            vault.body["location"].clone(),
            vault.body["credentials"].clone(),
            vault.body["host_key"].clone()
        ),
        (
            json!("ssh://backup@vault.example.net:2222:/srv"),
            json!("env:DROVER_SECRET_VAULT"),
            json!(key)
        )
    );
    let gone = api
        .call(
            Method::DELETE,
            &format!("/api/v1/backup-destinations/{}", vault.body["id"]),
            Some(&api.operator),
            &[],
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{:?}", gone.body);
    let listed = api.get("/api/v1/backup-destinations").await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    let id = created.body["id"].clone();
    let changed = api
        .call(
            Method::PATCH,
            &format!("/api/v1/backup-destinations/{id}"),
            Some(&api.operator),
            &[],
            Some(&json!({"keep_daily": 3, "location": "/srv/backups"}).to_string()),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{:?}", changed.body);
    assert_eq!(
        (
            changed.body["name"].clone(),
            changed.body["keep_daily"].clone(),
            changed.body["location"].clone()
        ),
        (json!("local"), json!(3), json!("/srv/backups"))
    );
    let renamed = api
        .call(
            Method::PATCH,
            &format!("/api/v1/backup-destinations/{id}"),
            Some(&api.operator),
            &[],
            Some(&json!({"name": "other"}).to_string()),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::UNPROCESSABLE_ENTITY);

    let service = json!({"customer_id": customer, "plan_id": plan, "domain": "arhiva.ro"});
    let account = api.post("/api/v1/services", service).await.body["account_id"].clone();
    let path = format!("/api/v1/accounts/{account}/backups");
    let early = api.post(&path, json!({})).await;
    assert_eq!(
        (early.status, early.code()),
        (StatusCode::CONFLICT, "backup_refused")
    );
    assert_eq!(
        early.message(),
        "arhiva.ro cannot be backed up: the account is on no server yet"
    );
    let restore = format!("/api/v1/accounts/{account}/restore");
    let nothing = api.post(&restore, json!({"dry_run": true})).await;
    assert_eq!(
        (nothing.status, nothing.code()),
        (StatusCode::CONFLICT, "restore_refused")
    );
    assert_eq!(
        nothing.message(),
        "arhiva.ro cannot be restored: there is no good backup to restore it from"
    );
    let unknown = api
        .post(
            &restore,
            json!({"backup_id": 99, "confirm_domain": "arhiva.ro"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let history = api.get(&path).await;
    assert_eq!(history.status, StatusCode::OK);
    assert_eq!(
        history.body,
        json!({"last_good": null, "last_good_age_seconds": null, "backups": []})
    );
    assert_eq!(
        api.get("/api/v1/backups?state=failed").await.body,
        json!([])
    );
    let unknown = api.get("/api/v1/backups?state=lost").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        api.get("/api/v1/accounts/999/backups").await.status,
        StatusCode::NOT_FOUND
    );
    let id = created.body["id"].clone();
    let gone = api
        .call(
            Method::DELETE,
            &format!("/api/v1/backup-destinations/{id}"),
            Some(&api.operator),
            &[],
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get(&format!("/api/v1/backup-destinations/{id}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn webhook_endpoints_are_an_operators_and_their_secrets_are_shown_once(api: Api) {
    let new =
        json!({"url": "https://billing.example/drover", "event_types": ["account.suspended"]});
    let by_billing = api
        .call(
            Method::POST,
            "/api/v1/webhooks",
            Some(&api.billing),
            &[],
            Some(&new.to_string()),
        )
        .await;
    assert_eq!(by_billing.status, StatusCode::FORBIDDEN);
    for (bad, says) in [
        (json!({"url": "http://billing.example/x"}), "https://"),
        (json!({"url": "http://127.0.0.1:9/x"}), "allow_http"),
        (
            json!({"url": "https://b.example/", "event_types": ["account.exploded"]}),
            "account.suspended",
        ),
    ] {
        let refused = api.post("/api/v1/webhooks", bad).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(refused.message().contains(says), "{}", refused.message());
    }
    let created = api.post("/api/v1/webhooks", new).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 70,
        "{secret}"
    );
    let id = created.body["id"].as_i64().unwrap();
    let read = api
        .call(
            Method::GET,
            &format!("/api/v1/webhooks/{id}"),
            Some(&api.readonly),
            &[],
            None,
        )
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(
        !read.body.to_string().contains(&secret),
        "never shown again"
    );
    assert_eq!(read.body["event_types"], json!(["account.suspended"]));

    let too_long = api
        .post(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            json!({"previous_valid_seconds": 90 * 86_400}),
        )
        .await;
    assert_eq!(too_long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        too_long.message().contains("30 days"),
        "{}",
        too_long.message()
    );
    let rotated = api
        .post(
            &format!("/api/v1/webhooks/{id}/rotate-secret"),
            json!({"previous_valid_seconds": 600}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    assert_ne!(rotated.body["secret"].as_str().unwrap(), secret);
    assert!(rotated.body["previous_secret_valid_until"].is_string());

    let paused = api
        .call(
            Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            Some(&api.operator),
            &[],
            Some(&json!({"paused": true, "event_types": []}).to_string()),
        )
        .await;
    assert_eq!(paused.status, StatusCode::OK, "{:?}", paused.body);
    assert_eq!(paused.body["paused"], true);
    assert_eq!(paused.body["event_types"], json!([]));
    let deliveries = api
        .get(&format!("/api/v1/webhooks/{id}/deliveries?failed=true"))
        .await;
    assert_eq!(deliveries.status, StatusCode::OK);
    assert_eq!(deliveries.body, json!([]));
    let refused = api
        .post(&format!("/api/v1/webhooks/{id}/redeliver"), json!({}))
        .await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("paused")),
        "nothing is sent while paused"
    );
    let resumed = api
        .call(
            Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            Some(&api.operator),
            &[],
            Some(&json!({"paused": false}).to_string()),
        )
        .await;
    assert_eq!(resumed.body["paused"], false);
    let redelivered = api
        .post(&format!("/api/v1/webhooks/{id}/redeliver"), json!({}))
        .await;
    assert_eq!(redelivered.status, StatusCode::ACCEPTED);
    assert_eq!(redelivered.body["count"], 0);
    let missing = api
        .post(
            &format!("/api/v1/webhooks/{id}/redeliver"),
            json!({"delivery_id": 999}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let deleted = api
        .call(
            Method::DELETE,
            &format!("/api/v1/webhooks/{id}"),
            Some(&api.operator),
            &[],
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        api.get(&format!("/api/v1/webhooks/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    let audit = api.get("/api/v1/audit?limit=1000").await.body.to_string();
    for action in [
        "webhook.create",
        "webhook.rotate_secret",
        "webhook.update",
        "webhook.delete",
    ] {
        assert!(audit.contains(action), "{action}");
    }
    assert!(!audit.contains(&secret), "no secret in the audit log");
}
