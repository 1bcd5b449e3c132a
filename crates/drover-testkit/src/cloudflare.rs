//! A stateful Cloudflare API fake for the endpoints drover uses, answering as Cloudflare's API
//! documentation and `cloudflare-api-notes.md` describe: the `{success, errors, messages, result,
//! result_info}` envelope, error codes 81044/81053/81057/81058, pages, batches executed in the
//! order deletes, patches, puts, posts as one transaction, and a per-token limit whose breach
//! blocks every call of the token with 429 and `retry-after`.
//!
//! Zones: list (filters `name`, `account.id`, `status`; 20 a page by default, at most 50), create,
//! get, patch (`paused`, `type`, `vanity_name_servers`, `plan`) and delete, each answered as the
//! full zone object (`name_servers`, `status`, `paused`, `type`, `plan`, `created_on`, …).
//!
//! Records: A, AAAA, CAA, CNAME, MX, NS, SRV and TXT. Lists filter on `type`, `name`,
//! `content` (plain or `.exact`, `.contains`, `.startswith`, `.endswith`), `proxied` and
//! `comment.*`, combined by `match=all` (the default) or `any`, sorted by `order`/`direction`.
//! Host names in content may come with the trailing dot (as octoDNS sends them) and are stored
//! without it. CAA and SRV are set through `data` (`{flags, tag, value}`; `{priority, weight,
//! port, target}`, the SRV name `_service._proto.name` either given as `name` or built from the
//! older `data.service`, `data.proto` and `data.name`); their `content` is derived from it:
//! `0 issue "letsencrypt.org"` and `priority weight port target`. `GET …/dns_records/export`
//! answers the zone as a BIND file in plain text.
//!
//! Not documented, and chosen here: validation failures answer code 1004 ("DNS Validation
//! Error"), a zone created twice 1061, an unknown zone 7003 with 404, a bad token 10000 with 401,
//! CAA or SRV without `data` 1004.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub tokens: Vec<String>,
    pub account_id: String,
    /// Requests per `window` per token before the block.
    pub limit: usize,
    pub window: Duration,
    /// How long a breach blocks every call of the token.
    pub block: Duration,
    pub max_batch: usize,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            tokens: vec!["cf-test-token".to_owned()],
            account_id: "acc0000000000000000000000000001".to_owned(),
            limit: 1200,
            window: Duration::from_secs(300),
            block: Duration::from_secs(300),
            max_batch: 200,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct FakeStats {
    pub requests: usize,
    pub rate_limited: usize,
    /// The most requests any token made in any `window`.
    pub max_in_window: usize,
    /// Requests by `METHOD /path-shape` (ids replaced by `:id`).
    pub by_endpoint: BTreeMap<String, usize>,
}

#[derive(Debug)]
struct Zone {
    name: String,
    account: String,
    /// `pending` until the name servers are delegated (a zone made by `add_zone` is `active`).
    status: String,
    paused: bool,
    /// `full`, `partial`, `secondary` or `internal`.
    kind: String,
    plan: &'static Plan,
    vanity_name_servers: Vec<String>,
    name_servers: [String; 2],
    created_on: String,
    modified_on: String,
    records: BTreeMap<String, Value>,
}

#[derive(Debug)]
struct Plan {
    id: &'static str,
    name: &'static str,
    legacy_id: &'static str,
    price: u32,
}

const PLANS: [Plan; 4] = [
    Plan {
        id: "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
        name: "Free Website",
        legacy_id: "free",
        price: 0,
    },
    Plan {
        id: "94f3b7b768b0458b56d2cac4fe5ec0f9",
        name: "Pro Website",
        legacy_id: "pro",
        price: 20,
    },
    Plan {
        id: "a577b510288e82b26486fb1e6ac5ce6d",
        name: "Business Website",
        legacy_id: "business",
        price: 200,
    },
    Plan {
        id: "6e3fa7f2e5c03a8a9e4b4d1b8a3d7c10",
        name: "Enterprise Website",
        legacy_id: "enterprise",
        price: 5000,
    },
];

/// First names Cloudflare's assigned name servers are made of.
const NS_NAMES: [&str; 8] = ["ada", "bob", "cruz", "dana", "eric", "fay", "gina", "hugo"];

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

impl Zone {
    fn new(name: String, account: String, status: &str, kind: &str, seed: u64) -> Self {
        let pick = |n: u64| format!("{}.ns.cloudflare.com", NS_NAMES[(n % 8) as usize]);
        let created = now();
        Self {
            name,
            account,
            status: status.to_owned(),
            paused: false,
            kind: kind.to_owned(),
            plan: &PLANS[0],
            vanity_name_servers: Vec::new(),
            name_servers: [pick(seed), pick(seed + 3)],
            created_on: created.clone(),
            modified_on: created,
            records: BTreeMap::new(),
        }
    }

    /// The zone object as the API answers it.
    fn to_json(&self, id: &str) -> Value {
        json!({
            "id": id,
            "name": self.name,
            "status": self.status,
            "paused": self.paused,
            "type": self.kind,
            "development_mode": 0,
            "name_servers": self.name_servers,
            "original_name_servers": null,
            "original_registrar": null,
            "original_dnshost": null,
            "vanity_name_servers": self.vanity_name_servers,
            "created_on": self.created_on,
            "modified_on": self.modified_on,
            "activated_on": if self.status == "active" { json!(self.created_on) } else { Value::Null },
            "meta": {
                "step": 2, "custom_certificate_quota": 0, "page_rule_quota": 3,
                "phishing_detected": false, "cdn_only": false, "dns_only": false,
                "foundation_dns": false,
            },
            "owner": {"id": null, "type": "user", "name": null},
            "account": {"id": self.account, "name": "drover test account"},
            "tenant": {"id": null, "name": null},
            "tenant_unit": {"id": null},
            "permissions": ["#dns_records:edit", "#dns_records:read", "#zone:read"],
            "plan": {
                "id": self.plan.id, "name": self.plan.name, "price": self.plan.price,
                "currency": "USD", "frequency": if self.plan.price == 0 { "" } else { "monthly" },
                "is_subscribed": true, "can_subscribe": false, "legacy_id": self.plan.legacy_id,
                "legacy_discount": false, "externally_managed": false,
            },
        })
    }
}

#[derive(Debug)]
struct FakeState {
    config: FakeConfig,
    zones: BTreeMap<String, Zone>,
    next_id: u64,
    calls: HashMap<String, Vec<Instant>>,
    blocked_until: HashMap<String, Instant>,
    stats: FakeStats,
}

#[derive(Debug)]
pub struct CloudflareFake {
    addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CloudflareFake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Failure = (StatusCode, Vec<(u32, String)>);

fn fail(status: StatusCode, code: u32, message: impl Into<String>) -> Failure {
    (status, vec![(code, message.into())])
}

fn invalid(message: impl Into<String>) -> Failure {
    fail(StatusCode::BAD_REQUEST, 1004, message)
}

impl CloudflareFake {
    /// Starts on a free loopback port.
    pub async fn start(config: FakeConfig) -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config)
            .await
            .expect("bind the Cloudflare fake")
    }

    /// Starts on `addr` (port 0: any free one; `api_url` tells which).
    pub async fn start_on(addr: SocketAddr, config: FakeConfig) -> std::io::Result<Self> {
        let state = Arc::new(Mutex::new(FakeState {
            config,
            zones: BTreeMap::new(),
            next_id: 1,
            calls: HashMap::new(),
            blocked_until: HashMap::new(),
            stats: FakeStats::default(),
        }));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                async move { handle(&state, &method, &uri, &headers, &body) }
            },
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    /// The base URL clients use, like `https://api.cloudflare.com/client/v4`.
    pub fn api_url(&self) -> String {
        format!("http://{}/client/v4", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn stats(&self) -> FakeStats {
        self.lock().stats.clone()
    }

    pub fn account_id(&self) -> String {
        self.lock().config.account_id.clone()
    }

    /// Creates a zone directly (as an operator would in the dashboard); returns its id.
    pub fn add_zone(&self, name: &str) -> String {
        let mut state = self.lock();
        let account = state.config.account_id.clone();
        let id = state.new_id();
        let zone = Zone::new(name.to_owned(), account, "active", "full", state.next_id);
        state.zones.insert(id.clone(), zone);
        id
    }

    /// A zone as `GET /zones/{id}` answers it.
    pub fn zone(&self, name: &str) -> Option<Value> {
        let state = self.lock();
        state
            .zones
            .iter()
            .find(|(_, z)| z.name == name)
            .map(|(id, z)| z.to_json(id))
    }

    pub fn zone_id(&self, name: &str) -> Option<String> {
        self.lock()
            .zones
            .iter()
            .find(|(_, z)| z.name == name)
            .map(|(id, _)| id.clone())
    }

    /// Every record of a zone, as the API would list them.
    pub fn records(&self, zone_name: &str) -> Vec<Value> {
        let state = self.lock();
        state
            .zones
            .values()
            .find(|z| z.name == zone_name)
            .map(|z| z.records.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Changes a record's content behind drover's back.
    pub fn set_content(&self, zone_name: &str, name: &str, rtype: &str, content: &str) -> bool {
        let mut state = self.lock();
        let Some(zone) = state.zones.values_mut().find(|z| z.name == zone_name) else {
            return false;
        };
        match zone
            .records
            .values_mut()
            .find(|r| r["name"] == name && r["type"] == rtype)
        {
            Some(record) => {
                record["content"] = json!(content);
                true
            }
            None => false,
        }
    }
}

impl FakeState {
    fn replace_records(&mut self, zone_id: &str, records: BTreeMap<String, Value>) {
        if let Some(zone) = self.zones.get_mut(zone_id) {
            zone.records = records;
        }
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        // 32 hex characters, like Cloudflare's opaque ids.
        format!(
            "{:016x}{:016x}",
            self.next_id.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            self.next_id
        )
    }

    /// Counts the call against the token; `Some(seconds)` if it must be refused with 429.
    fn rate(&mut self, token: &str) -> Option<u64> {
        let now = Instant::now();
        let (limit, window, block) = (self.config.limit, self.config.window, self.config.block);
        if let Some(until) = self.blocked_until.get(token).copied().filter(|u| *u > now) {
            return Some((until - now).as_secs_f64().ceil() as u64);
        }
        let calls = self.calls.entry(token.to_owned()).or_default();
        calls.push(now);
        let in_window = calls
            .iter()
            .rev()
            .take_while(|t| now.duration_since(**t) < window)
            .count();
        self.stats.max_in_window = self.stats.max_in_window.max(in_window);
        if in_window > limit {
            // The block outlasts Cloudflare's window: calls start counting afresh after it.
            calls.clear();
            self.blocked_until.insert(token.to_owned(), now + block);
            return Some(block.as_secs().max(1));
        }
        None
    }
}

fn envelope(status: StatusCode, result: Result<(Value, Option<Value>), Failure>) -> Response {
    match result {
        Ok((result, info)) => {
            let mut body = json!({"success": true, "errors": [], "messages": [], "result": result});
            if let Some(info) = info {
                body["result_info"] = info;
            }
            (status, axum::Json(body)).into_response()
        }
        Err((status, errors)) => {
            let errors: Vec<Value> = errors
                .into_iter()
                .map(|(code, message)| json!({"code": code, "message": message}))
                .collect();
            (
                status,
                axum::Json(
                    json!({"success": false, "errors": errors, "messages": [], "result": null}),
                ),
            )
                .into_response()
        }
    }
}

fn handle(
    state: &Mutex<FakeState>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
    state.stats.requests += 1;
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    if !state.config.tokens.contains(&token) {
        return envelope(
            StatusCode::UNAUTHORIZED,
            Err(fail(
                StatusCode::UNAUTHORIZED,
                10000,
                "Authentication error",
            )),
        );
    }
    if let Some(retry_after) = state.rate(&token) {
        state.stats.rate_limited += 1;
        let mut response = envelope(
            StatusCode::TOO_MANY_REQUESTS,
            Err(fail(
                StatusCode::TOO_MANY_REQUESTS,
                971,
                "Please wait and consider throttling your request speed",
            )),
        );
        response
            .headers_mut()
            .insert("retry-after", retry_after.into());
        return response;
    }
    let path = uri
        .path()
        .trim_start_matches("/client/v4")
        .trim_matches('/')
        .to_owned();
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let parts: Vec<&str> = path.split('/').collect();
    let shape: Vec<&str> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i % 2 == 1 && *p != "batch" {
                ":id"
            } else {
                p
            }
        })
        .collect();
    *state
        .stats
        .by_endpoint
        .entry(format!("{method} /{}", shape.join("/")))
        .or_default() += 1;
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return envelope(
                    StatusCode::BAD_REQUEST,
                    Err(fail(
                        StatusCode::BAD_REQUEST,
                        6007,
                        format!("Malformed JSON in request body: {e}"),
                    )),
                );
            }
        }
    };
    if let ("GET", ["zones", zone, "dns_records", "export"]) = (method.as_str(), parts.as_slice())
        && let Some(zone) = state.zones.get(*zone)
    {
        return (
            StatusCode::OK,
            [("content-type", "text/plain; charset=utf-8")],
            export(zone),
        )
            .into_response();
    }
    let result = route(&mut state, method, &parts, &query, body);
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err((status, _)) => *status,
    };
    envelope(status, result)
}

/// A whole number from the query; clients generated from the API description may send `2.0`.
fn query_number(query: &HashMap<String, String>, key: &str) -> Option<usize> {
    let value = query.get(key)?.parse::<f64>().ok()?;
    (value.fract() == 0.0 && value >= 0.0).then_some(value as usize)
}

/// One page of a list: `per_page` items (`default` if not asked, at most `max`).
fn page(
    items: Vec<Value>,
    query: &HashMap<String, String>,
    default: usize,
    max: usize,
) -> (Value, Option<Value>) {
    let per_page = query_number(query, "per_page")
        .unwrap_or(default)
        .clamp(1, max);
    let page = query_number(query, "page").unwrap_or(1).max(1);
    let total = items.len();
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let info = json!({
        "page": page, "per_page": per_page, "count": slice.len(), "total_count": total,
        "total_pages": total.div_ceil(per_page),
    });
    (Value::Array(slice), Some(info))
}

fn route(
    state: &mut FakeState,
    method: &Method,
    parts: &[&str],
    query: &HashMap<String, String>,
    body: Value,
) -> Result<(Value, Option<Value>), Failure> {
    let no_route = |path: String| {
        fail(
            StatusCode::NOT_FOUND,
            7003,
            format!("Could not route to /{path}, perhaps your object identifier is invalid?"),
        )
    };
    match (method.as_str(), parts) {
        ("GET", ["zones"]) => {
            let mut zones: Vec<(&String, &Zone)> = state
                .zones
                .iter()
                .filter(|(_, z)| {
                    query
                        .get("name")
                        .is_none_or(|n| zone_name_matches(n, &z.name))
                })
                .filter(|(_, z)| query.get("account.id").is_none_or(|a| *a == z.account))
                .filter(|(_, z)| query.get("status").is_none_or(|s| *s == z.status))
                .collect();
            zones.sort_by(|a, b| a.1.name.cmp(&b.1.name));
            if query.get("direction").is_some_and(|d| d == "desc") {
                zones.reverse();
            }
            let zones = zones.into_iter().map(|(id, z)| z.to_json(id)).collect();
            Ok(page(zones, query, 20, 50))
        }
        ("POST", ["zones"]) => {
            let name = body["name"]
                .as_str()
                .unwrap_or("")
                .trim_end_matches('.')
                .to_ascii_lowercase();
            if name.is_empty() || !name.contains('.') || !host_ok(&name) {
                return Err(invalid("Invalid zone name"));
            }
            let account = body["account"]["id"].as_str().unwrap_or("").to_owned();
            if account != state.config.account_id {
                return Err(fail(
                    StatusCode::FORBIDDEN,
                    1068,
                    "Permission denied for this account",
                ));
            }
            let kind = body["type"].as_str().unwrap_or("full");
            if !ZONE_TYPES.contains(&kind) {
                return Err(invalid(format!("Invalid zone type '{kind}'")));
            }
            if state.zones.values().any(|z| z.name == name) {
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    1061,
                    format!("{name} already exists"),
                ));
            }
            let id = state.new_id();
            let zone = Zone::new(name, account, "pending", kind, state.next_id);
            let json = zone.to_json(&id);
            state.zones.insert(id, zone);
            Ok((json, None))
        }
        ("GET", ["zones", zone]) => match state.zones.get(*zone) {
            Some(z) => Ok((z.to_json(zone), None)),
            None => Err(no_route(format!("zones/{zone}"))),
        },
        ("PATCH", ["zones", zone]) => {
            let Some(z) = state.zones.get_mut(*zone) else {
                return Err(no_route(format!("zones/{zone}")));
            };
            edit_zone(z, &body)?;
            Ok((z.to_json(zone), None))
        }
        ("DELETE", ["zones", zone]) => match state.zones.remove(*zone) {
            Some(_) => Ok((json!({"id": zone}), None)),
            None => Err(no_route(format!("zones/{zone}"))),
        },
        (_, ["zones", zone, "dns_records", rest @ ..]) => {
            let zone_id = (*zone).to_owned();
            if !state.zones.contains_key(&zone_id) {
                return Err(no_route(parts.join("/")));
            }
            records_route(state, method, &zone_id, rest, query, body)
        }
        _ => Err(no_route(parts.join("/"))),
    }
}

const ZONE_TYPES: [&str; 4] = ["full", "partial", "secondary", "internal"];

/// The zone list's `name` filter: the name itself, or `operator:value` with Cloudflare's
/// operators (`contains`, `starts_with`, `ends_with`, `not_equal`, `equal`).
fn zone_name_matches(filter: &str, name: &str) -> bool {
    let filter = filter.to_ascii_lowercase();
    match filter.split_once(':') {
        Some(("contains", v)) => name.contains(v),
        Some(("starts_with", v)) => name.starts_with(v),
        Some(("ends_with", v)) => name.ends_with(v),
        Some(("not_equal", v)) => name != v,
        Some(("equal", v)) => name == v,
        _ => name == filter.trim_end_matches('.'),
    }
}

/// `PATCH /zones/{id}`: one property at a time, as the API documents.
fn edit_zone(zone: &mut Zone, body: &Value) -> Result<(), Failure> {
    let Some(fields) = body.as_object().filter(|f| f.len() == 1) else {
        return Err(invalid(
            "Only one zone property can be changed at a time: paused, type, vanity_name_servers or plan",
        ));
    };
    for (key, value) in fields {
        match (key.as_str(), value) {
            ("paused", Value::Bool(paused)) => zone.paused = *paused,
            ("type", Value::String(kind)) if ZONE_TYPES.contains(&kind.as_str()) => {
                zone.kind.clone_from(kind)
            }
            ("vanity_name_servers", Value::Array(names)) => {
                let names: Option<Vec<String>> = names
                    .iter()
                    .map(|n| n.as_str().filter(|n| host_ok(n)).map(str::to_owned))
                    .collect();
                zone.vanity_name_servers =
                    names.ok_or_else(|| invalid("Invalid vanity name server"))?;
            }
            ("plan", plan) => {
                let id = plan["id"].as_str().unwrap_or("");
                zone.plan = PLANS
                    .iter()
                    .find(|p| p.id == id)
                    .ok_or_else(|| invalid(format!("Unknown plan '{id}'")))?;
            }
            (key, _) => return Err(invalid(format!("Invalid value for zone property '{key}'"))),
        }
    }
    zone.modified_on = now();
    Ok(())
}

fn records_route(
    state: &mut FakeState,
    method: &Method,
    zone_id: &str,
    rest: &[&str],
    query: &HashMap<String, String>,
    body: Value,
) -> Result<(Value, Option<Value>), Failure> {
    match (method.as_str(), rest) {
        ("GET", []) => {
            let zone = &state.zones[zone_id];
            let mut records: Vec<Value> = zone
                .records
                .values()
                .filter(|r| record_matches(r, query))
                .cloned()
                .collect();
            sort_records(&mut records, query);
            Ok(page(records, query, 100, 5_000_000))
        }
        ("POST", ["batch"]) => batch(state, zone_id, body).map(|v| (v, None)),
        ("POST", []) => {
            let mut records = state.zones[zone_id].records.clone();
            let record = post(state, zone_id, &mut records, &body)?;
            state.replace_records(zone_id, records);
            Ok((record, None))
        }
        ("GET", [id]) => state.zones[zone_id]
            .records
            .get(*id)
            .cloned()
            .map(|r| (r, None))
            .ok_or_else(missing),
        ("DELETE", [id]) => {
            let zone = state.zones.get_mut(zone_id).ok_or_else(missing)?;
            zone.records
                .remove(*id)
                .map(|_| (json!({"id": id}), None))
                .ok_or_else(missing)
        }
        ("PUT" | "PATCH", [id]) => {
            let mut records = state.zones[zone_id].records.clone();
            let record = update(
                state,
                zone_id,
                &mut records,
                id,
                &body,
                method == Method::PATCH,
            )?;
            state.replace_records(zone_id, records);
            Ok((record, None))
        }
        _ => Err(fail(
            StatusCode::METHOD_NOT_ALLOWED,
            10405,
            "Method not allowed for this endpoint",
        )),
    }
}

/// The list filters: every one given must hold (`match=all`, the default), or one (`match=any`).
/// Name and content filters ignore case.
fn record_matches(record: &Value, query: &HashMap<String, String>) -> bool {
    let text = |key: &str| record[key].as_str().unwrap_or("").to_ascii_lowercase();
    let mut checks: Vec<bool> = Vec::new();
    if let Some(t) = query.get("type") {
        checks.push(
            record["type"]
                .as_str()
                .is_some_and(|r| r.eq_ignore_ascii_case(t)),
        );
    }
    if let Some(p) = query.get("proxied") {
        checks.push(
            record["proxied"]
                .as_bool()
                .map(|b| b.to_string())
                .as_deref()
                == Some(p),
        );
    }
    for field in ["name", "content", "comment"] {
        let value = text(field);
        for (operator, wanted) in query.iter().filter_map(|(k, v)| {
            let rest = k.strip_prefix(field)?;
            Some((
                rest.strip_prefix('.').unwrap_or(rest),
                v.to_ascii_lowercase(),
            ))
        }) {
            let wanted = if field == "name" {
                wanted.trim_end_matches('.').to_owned()
            } else {
                wanted
            };
            checks.push(match operator {
                "" | "exact" => value == wanted,
                "contains" => value.contains(&wanted),
                "startswith" => value.starts_with(&wanted),
                "endswith" => value.ends_with(&wanted),
                "present" => record[field].is_string(),
                "absent" => !record[field].is_string(),
                _ => false,
            });
        }
    }
    if query.get("match").is_some_and(|m| m == "any") {
        checks.is_empty() || checks.contains(&true)
    } else {
        !checks.contains(&false)
    }
}

/// `order` (type, name, content, ttl, proxied; type then name then content by default) and
/// `direction` (asc, desc).
fn sort_records(records: &mut [Value], query: &HashMap<String, String>) {
    let key = |r: &Value, field: &str| match &r[field] {
        Value::String(s) => s.clone(),
        Value::Number(n) => format!("{:020}", n.as_u64().unwrap_or(0)),
        other => other.to_string(),
    };
    let order = query.get("order").map_or("type", String::as_str);
    records.sort_by_key(|r| {
        (
            key(r, order),
            key(r, "type"),
            key(r, "name"),
            key(r, "content"),
        )
    });
    if query.get("direction").is_some_and(|d| d == "desc") {
        records.reverse();
    }
}

/// The zone as a BIND file, like `GET /zones/{id}/dns_records/export`.
fn export(zone: &Zone) -> String {
    let origin = format!("{}.", zone.name);
    let mut out = format!(
        ";;\n;; Domain:     {origin}\n;; Exported:   {}\n;;\n;; This file is intended for use for \
         informational and archival\n;; purposes ONLY and MUST be edited before use on a production\n\
         ;; DNS server.\n;;\n\n;; SOA Record\n{origin}\t3600\tIN\tSOA\t{ns}. dns.cloudflare.com. \
         2050000000 10000 2400 604800 3600\n\n;; NS Records\n",
        now(),
        ns = zone.name_servers[0],
    );
    for ns in &zone.name_servers {
        out.push_str(&format!("{origin}\t86400\tIN\tNS\t{ns}.\n"));
    }
    let mut records: Vec<&Value> = zone.records.values().collect();
    records.sort_by_key(|r| {
        (
            r["type"].as_str().unwrap_or("").to_owned(),
            r["name"].as_str().unwrap_or("").to_owned(),
            r["content"].as_str().unwrap_or("").to_owned(),
        )
    });
    let mut last_type = "";
    for record in records {
        let rtype = record["type"].as_str().unwrap_or("");
        if rtype != last_type {
            out.push_str(&format!("\n;; {rtype} Records\n"));
            last_type = rtype;
        }
        let content = record["content"].as_str().unwrap_or("");
        let dotted = |host: &str| {
            if host == "." {
                ".".to_owned()
            } else {
                format!("{host}.")
            }
        };
        let rdata = match rtype {
            "CNAME" | "NS" => dotted(content),
            "MX" => format!("{} {}", record["priority"], dotted(content)),
            "SRV" => {
                let d = &record["data"];
                let target = d["target"].as_str().unwrap_or(".");
                format!(
                    "{} {} {} {}",
                    d["priority"],
                    d["weight"],
                    d["port"],
                    dotted(target)
                )
            }
            "TXT" if !content.starts_with('"') => {
                format!("\"{}\"", content.replace('\\', "\\\\").replace('"', "\\\""))
            }
            _ => content.to_owned(),
        };
        let proxied = if record["proxied"] == true {
            " ; cf_tags=cf-proxied:true"
        } else {
            ""
        };
        out.push_str(&format!(
            "{}.\t{}\tIN\t{rtype}\t{rdata}{proxied}\n",
            record["name"].as_str().unwrap_or(""),
            record["ttl"],
        ));
    }
    out
}

fn missing() -> Failure {
    fail(StatusCode::NOT_FOUND, 81044, "Record does not exist.")
}

/// Runs a batch on a copy of the zone and keeps it only if every operation succeeded.
fn batch(state: &mut FakeState, zone_id: &str, body: Value) -> Result<Value, Failure> {
    let list = |key: &str| body[key].as_array().cloned().unwrap_or_default();
    let (deletes, patches, puts, posts) = (
        list("deletes"),
        list("patches"),
        list("puts"),
        list("posts"),
    );
    let size = deletes.len() + patches.len() + puts.len() + posts.len();
    if size > state.config.max_batch {
        return Err(invalid(format!(
            "A batch may hold at most {} records; this one holds {size}",
            state.config.max_batch
        )));
    }
    let mut records = state.zones[zone_id].records.clone();
    let mut result = json!({"deletes": [], "patches": [], "puts": [], "posts": []});
    for op in &deletes {
        let id = op["id"].as_str().unwrap_or("");
        let removed = records.remove(id).ok_or_else(missing)?;
        push(&mut result, "deletes", removed);
    }
    for (kind, ops, merge) in [("patches", &patches, true), ("puts", &puts, false)] {
        for op in ops {
            let id = op["id"].as_str().unwrap_or("").to_owned();
            let record = update(state, zone_id, &mut records, &id, op, merge)?;
            push(&mut result, kind, record);
        }
    }
    for op in &posts {
        let record = post(state, zone_id, &mut records, op)?;
        push(&mut result, "posts", record);
    }
    state.replace_records(zone_id, records);
    Ok(result)
}

fn push(result: &mut Value, kind: &str, record: Value) {
    if let Some(list) = result[kind].as_array_mut() {
        list.push(record);
    }
}

fn post(
    state: &mut FakeState,
    zone_id: &str,
    records: &mut BTreeMap<String, Value>,
    body: &Value,
) -> Result<Value, Failure> {
    let zone_name = state.zones[zone_id].name.clone();
    let id = state.new_id();
    let record = validated(&zone_name, zone_id, &id, body)?;
    check_conflicts(records, &record, None)?;
    records.insert(id, record.clone());
    Ok(record)
}

fn update(
    state: &FakeState,
    zone_id: &str,
    records: &mut BTreeMap<String, Value>,
    id: &str,
    body: &Value,
    merge: bool,
) -> Result<Value, Failure> {
    let existing = records.get(id).cloned().ok_or_else(missing)?;
    let mut wanted = if merge { existing.clone() } else { json!({}) };
    for (key, value) in body.as_object().into_iter().flatten() {
        if key != "id" {
            wanted[key] = value.clone();
        }
    }
    let zone_name = state.zones[zone_id].name.clone();
    let mut record = validated(&zone_name, zone_id, id, &wanted)?;
    record["created_on"] = existing["created_on"].clone();
    check_conflicts(records, &record, Some(id))?;
    records.insert(id.to_owned(), record.clone());
    Ok(record)
}

fn check_conflicts(
    records: &BTreeMap<String, Value>,
    record: &Value,
    except: Option<&str>,
) -> Result<(), Failure> {
    let others = records
        .iter()
        .filter(|(id, _)| Some(id.as_str()) != except)
        .map(|(_, r)| r);
    for other in others.filter(|r| r["name"] == record["name"]) {
        if other["type"] == record["type"]
            && other["content"] == record["content"]
            && other["priority"] == record["priority"]
        {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                81058,
                "An identical record already exists.",
            ));
        }
        if other["type"] == "CNAME" || record["type"] == "CNAME" {
            return Err(fail(
                StatusCode::BAD_REQUEST,
                81053,
                "An A, AAAA, or CNAME record with that host already exists.",
            ));
        }
    }
    Ok(())
}

fn host_ok(host: &str) -> bool {
    !host.is_empty()
        && !host.contains(char::is_whitespace)
        && host.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

/// A whole number in `0..=max` from a JSON number (`10` or `10.0`).
fn whole(value: &Value, max: u64) -> Option<u64> {
    let n = value.as_f64()?;
    (n.fract() == 0.0 && n >= 0.0 && n <= max as f64).then_some(n as u64)
}

/// A host name as record content: without the trailing dot, which clients may send.
fn host_content(value: &str) -> String {
    match value.trim() {
        "." => ".".to_owned(),
        host => host.trim_end_matches('.').to_owned(),
    }
}

/// CAA from `data: {flags, tag, value}`: the stored data and the derived content.
fn caa(body: &Value) -> Result<(Value, String), Failure> {
    let data = body
        .get("data")
        .filter(|d| d.is_object())
        .ok_or_else(|| invalid("CAA records need data: {flags, tag, value}."))?;
    let flags = whole(&data["flags"], 255)
        .ok_or_else(|| invalid("CAA flags must be a number between 0 and 255."))?;
    let tag = data["tag"].as_str().unwrap_or("");
    if tag.is_empty() || tag.len() > 15 || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid(format!("Invalid CAA tag '{tag}'.")));
    }
    let value = data["value"]
        .as_str()
        .ok_or_else(|| invalid("CAA records need a value."))?;
    let quoted = value.replace('\\', "\\\\").replace('"', "\\\"");
    Ok((
        json!({"flags": flags, "tag": tag, "value": value}),
        format!("{flags} {tag} \"{quoted}\""),
    ))
}

/// SRV from `data: {priority, weight, port, target}` (and, in the older form, `service`,
/// `proto` and `name`, which make the record's name): the data, content and name.
fn srv(body: &Value, zone_name: &str) -> Result<(Value, String, Option<String>), Failure> {
    let data = body
        .get("data")
        .filter(|d| d.is_object())
        .ok_or_else(|| invalid("SRV records need data: {priority, weight, port, target}."))?;
    let number = |key: &str| {
        whole(&data[key], 65_535)
            .ok_or_else(|| invalid(format!("SRV {key} must be a number between 0 and 65535.")))
    };
    let (priority, weight, port) = (number("priority")?, number("weight")?, number("port")?);
    let target = host_content(data["target"].as_str().unwrap_or(""));
    if target != "." && !host_ok(&target) {
        return Err(invalid("SRV target must be a host name or '.'."));
    }
    let name = match (data["service"].as_str(), data["proto"].as_str()) {
        (Some(service), Some(proto)) => {
            let host = match data["name"].as_str().map(|n| n.trim_end_matches('.')) {
                None | Some("" | "@") => zone_name.to_owned(),
                Some(n) if n == zone_name || n.ends_with(&format!(".{zone_name}")) => n.to_owned(),
                Some(n) => format!("{n}.{zone_name}"),
            };
            Some(format!("{service}.{proto}.{host}").to_ascii_lowercase())
        }
        _ => None,
    };
    Ok((
        json!({"priority": priority, "weight": weight, "port": port, "target": target}),
        format!("{priority} {weight} {port} {target}"),
        name,
    ))
}

/// A record as Cloudflare stores it, or the validation error it answers.
fn validated(zone_name: &str, zone_id: &str, id: &str, body: &Value) -> Result<Value, Failure> {
    let rtype = body["type"].as_str().unwrap_or("").to_ascii_uppercase();
    let mut data = None;
    let mut derived_name = None;
    let mut content = body["content"].as_str().unwrap_or("").to_owned();
    let content_ok = match rtype.as_str() {
        "A" => content.parse::<Ipv4Addr>().is_ok(),
        "AAAA" => content.parse::<Ipv6Addr>().is_ok(),
        "CNAME" | "NS" | "MX" => {
            content = host_content(&content);
            host_ok(&content) || (rtype == "MX" && content == ".")
        }
        "TXT" => !content.is_empty(),
        "CAA" => {
            let (d, c) = caa(body)?;
            (data, content) = (Some(d), c);
            true
        }
        "SRV" => {
            let (d, c, name) = srv(body, zone_name)?;
            (data, content, derived_name) = (Some(d), c, name);
            true
        }
        _ => return Err(invalid(format!("Unsupported record type '{rtype}'"))),
    };
    if !content_ok {
        return Err(invalid(format!("Content for {rtype} record is invalid.")));
    }
    let given = body["name"]
        .as_str()
        .unwrap_or("")
        .trim_end_matches('.')
        .to_ascii_lowercase();
    // A name outside the zone is taken as relative to it, as the API does.
    let name = match (given.as_str(), derived_name) {
        ("", Some(derived)) => derived,
        ("" | "@", _) => zone_name.to_owned(),
        (name, _) if name == zone_name || name.ends_with(&format!(".{zone_name}")) => {
            name.to_owned()
        }
        (name, _) => format!("{name}.{zone_name}"),
    };
    if !host_ok(&name) || name.len() > 253 {
        return Err(invalid(format!("Invalid record name '{name}'.")));
    }
    if rtype == "SRV" {
        let mut labels = name.split('.');
        let ok = [labels.next(), labels.next()]
            .iter()
            .all(|l| l.is_some_and(|l| l.len() > 1 && l.starts_with('_')));
        if !ok {
            return Err(invalid(
                "SRV record names must start with _service._proto (like _sip._tcp).",
            ));
        }
    }
    let ttl = match body.get("ttl") {
        None | Some(Value::Null) => Some(1),
        Some(ttl) => whole(ttl, u64::from(u32::MAX)),
    };
    let Some(ttl) = ttl.filter(|t| *t == 1 || (60..=86_400).contains(t)) else {
        return Err(invalid(
            "TTL must be between 60 and 86400 seconds, or 1 for Automatic.",
        ));
    };
    let proxiable = matches!(rtype.as_str(), "A" | "AAAA" | "CNAME");
    let created = now();
    let mut record = json!({
        "id": id, "zone_id": zone_id, "zone_name": zone_name, "name": name, "type": rtype,
        "content": content, "proxiable": proxiable,
        "proxied": proxiable && body["proxied"].as_bool().unwrap_or(false),
        "ttl": ttl, "locked": false, "comment": body.get("comment").cloned().unwrap_or(Value::Null),
        "tags": body.get("tags").filter(|t| t.is_array()).cloned().unwrap_or(json!([])),
        "settings": {}, "meta": {}, "created_on": created, "modified_on": created,
    });
    if let Some(data) = data {
        if rtype == "SRV" {
            record["priority"] = data["priority"].clone();
        }
        record["data"] = data;
    }
    if rtype == "MX" {
        match whole(&body["priority"], 65_535) {
            Some(p) => record["priority"] = json!(p),
            None => {
                return Err(invalid(
                    "MX records require a priority between 0 and 65535.",
                ));
            }
        }
    }
    Ok(record)
}
