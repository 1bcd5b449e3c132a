//! A stateful Cloudflare API fake for the endpoints drover uses, answering as
//! `cloudflare-api-notes.md` documents: the `{success, errors, messages, result, result_info}`
//! envelope, error codes 81044/81053/81057/81058, pages, batches executed in the order deletes,
//! patches, puts, posts as one transaction, and a per-token limit whose breach blocks every call
//! of the token with 429 and `retry-after`.
//!
//! Not documented in the notes, and chosen here: validation failures answer code 1004 ("DNS
//! Validation Error"), a zone created twice 1061, an unknown zone 7003 with 404, a bad token
//! 10000 with 401.

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

#[derive(Debug, Default)]
struct Zone {
    name: String,
    account: String,
    records: BTreeMap<String, Value>,
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
    pub async fn start(config: FakeConfig) -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            config,
            zones: BTreeMap::new(),
            next_id: 1,
            calls: HashMap::new(),
            blocked_until: HashMap::new(),
            stats: FakeStats::default(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Cloudflare fake");
        let addr = listener.local_addr().expect("fake address");
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
        Self { addr, state, task }
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
        state.zones.insert(
            id.clone(),
            Zone {
                name: name.to_owned(),
                account,
                records: BTreeMap::new(),
            },
        );
        id
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
    let result = route(&mut state, method, &parts, &query, body);
    let status = match &result {
        Ok(_) => StatusCode::OK,
        Err((status, _)) => *status,
    };
    envelope(status, result)
}

fn page(items: Vec<Value>, query: &HashMap<String, String>) -> (Value, Option<Value>) {
    let per_page = query
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(100)
        .max(1);
    let page = query
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
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
            let zones: Vec<Value> = state
                .zones
                .iter()
                .filter(|(_, z)| query.get("name").is_none_or(|n| *n == z.name))
                .filter(|(_, z)| query.get("account.id").is_none_or(|a| *a == z.account))
                .map(|(id, z)| json!({"id": id, "name": z.name, "status": "active", "account": {"id": z.account}}))
                .collect();
            Ok(page(zones, query))
        }
        ("POST", ["zones"]) => {
            let name = body["name"]
                .as_str()
                .unwrap_or("")
                .trim_end_matches('.')
                .to_ascii_lowercase();
            if name.is_empty() || !name.contains('.') {
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
            if state.zones.values().any(|z| z.name == name) {
                return Err(fail(
                    StatusCode::BAD_REQUEST,
                    1061,
                    format!("{name} already exists"),
                ));
            }
            let id = state.new_id();
            state.zones.insert(
                id.clone(),
                Zone {
                    name: name.clone(),
                    account: account.clone(),
                    records: BTreeMap::new(),
                },
            );
            Ok((
                json!({"id": id, "name": name, "status": "pending", "account": {"id": account}}),
                None,
            ))
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
                .filter(|r| query.get("type").is_none_or(|t| r["type"] == t.as_str()))
                .filter(|r| query.get("name").is_none_or(|n| r["name"] == n.as_str()))
                .cloned()
                .collect();
            records.sort_by_key(|r| {
                (
                    r["type"].to_string(),
                    r["name"].to_string(),
                    r["content"].to_string(),
                )
            });
            Ok(page(records, query))
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

/// A record as Cloudflare stores it, or the validation error it answers.
fn validated(zone_name: &str, zone_id: &str, id: &str, body: &Value) -> Result<Value, Failure> {
    let rtype = body["type"].as_str().unwrap_or("").to_ascii_uppercase();
    let name = body["name"]
        .as_str()
        .unwrap_or("")
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let name = if name == "@" {
        zone_name.to_owned()
    } else {
        name
    };
    if name != zone_name && !name.ends_with(&format!(".{zone_name}")) {
        return Err(invalid(format!(
            "Record name {name} is not inside the zone {zone_name}"
        )));
    }
    let content = body["content"].as_str().unwrap_or("").to_owned();
    let content_ok = match rtype.as_str() {
        "A" => content.parse::<Ipv4Addr>().is_ok(),
        "AAAA" => content.parse::<Ipv6Addr>().is_ok(),
        "CNAME" | "NS" | "MX" => host_ok(&content),
        "TXT" => !content.is_empty(),
        _ => return Err(invalid(format!("Unsupported record type '{rtype}'"))),
    };
    if !content_ok {
        return Err(invalid(format!("Content for {rtype} record is invalid.")));
    }
    let ttl = body.get("ttl").and_then(Value::as_u64).unwrap_or(1);
    if ttl != 1 && !(60..=86_400).contains(&ttl) {
        return Err(invalid(
            "TTL must be between 60 and 86400 seconds, or 1 for Automatic.",
        ));
    }
    let proxiable = matches!(rtype.as_str(), "A" | "AAAA" | "CNAME");
    let mut record = json!({
        "id": id, "zone_id": zone_id, "zone_name": zone_name, "name": name, "type": rtype,
        "content": content, "proxiable": proxiable,
        "proxied": proxiable && body["proxied"].as_bool().unwrap_or(false),
        "ttl": ttl, "locked": false, "comment": body.get("comment").cloned().unwrap_or(Value::Null),
        "tags": [], "meta": {}, "created_on": "2026-11-22T00:00:00Z", "modified_on": "2026-11-22T00:00:00Z",
    });
    if rtype == "MX" {
        let priority = body
            .get("priority")
            .and_then(Value::as_u64)
            .filter(|p| *p <= 65_535);
        match priority {
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
