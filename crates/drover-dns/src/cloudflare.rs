//! Cloudflare's DNS records API (`cloudflare-api-notes.md`): records one by one with opaque ids,
//! batches of deletes, patches, puts and posts, pages, and a per-token call limit that drover
//! budgets below.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use drover_core::{
    CaaData, DomainName, OwnerName, RecordIds, RecordKey, RecordType, RrSet, SrvData, ZoneDiff,
    canonical_content,
};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::budget::{CallBudget, CallBudgets, SharedBudget};
use crate::error::snippet;
use crate::http::{http_client, record_request, unreachable};
use crate::provider::{Applied, DnsProvider, ListedZone, ProviderZone, ZoneRef};
use crate::{DnsError, Result};

pub const CLOUDFLARE_API: &str = "https://api.cloudflare.com/client/v4";
/// Records per batch on the free plan; paid plans take 3,500.
pub const FREE_BATCH_SIZE: usize = 200;
/// The most zones Cloudflare lists on one page.
pub const MAX_ZONES_PER_PAGE: usize = 50;

#[derive(Debug, Clone)]
pub struct CloudflareSettings {
    pub api_url: String,
    pub token: SecretString,
    /// The account new zones are created in.
    pub account_id: Option<String>,
    pub batch_size: usize,
    pub per_page: usize,
    /// Calls allowed per `budget_window`; below Cloudflare's 1,200 per 5 minutes so the
    /// dashboard and other tools using the token keep some room.
    pub budget_calls: usize,
    pub budget_window: Duration,
    pub timeout: Duration,
    /// Retries of a 429 or 5xx answer.
    pub retries: usize,
    pub retry_delay: Duration,
}

impl CloudflareSettings {
    pub fn new(token: SecretString) -> Self {
        Self {
            api_url: CLOUDFLARE_API.to_owned(),
            token,
            account_id: None,
            batch_size: FREE_BATCH_SIZE,
            per_page: 500,
            budget_calls: 1000,
            budget_window: Duration::from_secs(300),
            timeout: Duration::from_secs(30),
            retries: 3,
            retry_delay: Duration::from_millis(500),
        }
    }
}

#[derive(Debug)]
pub struct CloudflareClient {
    settings: CloudflareSettings,
    http: reqwest::Client,
    budget: Arc<CallBudget>,
    /// The token's budget across every drover process, where there are several.
    shared: Option<Arc<dyn SharedBudget>>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    result_info: Option<ResultInfo>,
}

#[derive(Deserialize)]
struct ApiMessage {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct ResultInfo {
    #[serde(default)]
    count: usize,
    #[serde(default)]
    total_count: usize,
}

#[derive(Deserialize)]
struct CfRecord {
    id: String,
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    ttl: u32,
    #[serde(default)]
    priority: Option<u16>,
    /// The parts of a CAA or SRV record.
    #[serde(default)]
    data: Option<Value>,
}

/// Cloudflare's error code for a zone that exists already.
const ZONE_EXISTS: u32 = 1061;

impl CloudflareClient {
    pub fn new(settings: CloudflareSettings, budgets: &CallBudgets) -> Result<Self> {
        if settings.batch_size == 0 || settings.per_page == 0 {
            return Err(DnsError::Config(
                "Cloudflare batch size and page size must be at least 1".into(),
            ));
        }
        let budget = budgets.for_token(
            &settings.token,
            settings.budget_calls,
            settings.budget_window,
        );
        let http = http_client(settings.timeout, true)?;
        Ok(Self {
            settings,
            http,
            budget,
            shared: None,
        })
    }

    pub fn budget(&self) -> &CallBudget {
        &self.budget
    }

    /// Counts every call also in a budget shared with other processes.
    pub fn with_shared_budget(mut self, shared: Arc<dyn SharedBudget>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// Waits until the shared budget (if any) has room for one more call.
    async fn reserve_shared(&self) -> Result<()> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        loop {
            match shared.reserve().await {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => {
                    tracing::debug!(?wait, "shared call budget spent; waiting");
                    tokio::time::sleep(wait).await;
                }
                Err(message) => {
                    return Err(DnsError::Unreachable {
                        url: "drover's shared call budget".into(),
                        message,
                    });
                }
            }
        }
    }

    /// One API call inside the budget; 429 waits `retry-after` (and holds every call of the
    /// token that long), 5xx retries with a doubling pause.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Envelope> {
        let url = format!("{}{path}", self.settings.api_url);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let ticket = self.budget.acquire().await;
            if let Err(e) = self.reserve_shared().await {
                self.budget.answered(ticket);
                return Err(e);
            }
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(self.settings.token.expose_secret());
            if let Some(body) = body {
                request = request
                    .header("Content-Type", "application/json")
                    .body(body.to_string());
            }
            let started = std::time::Instant::now();
            let response = request.send().await;
            self.budget.answered(ticket);
            let response = match response {
                Ok(response) => response,
                Err(e) => {
                    record_request(
                        "cloudflare",
                        &method,
                        "unreachable".into(),
                        started.elapsed(),
                    );
                    return Err(unreachable(&url, &e));
                }
            };
            let status = response.status().as_u16();
            record_request("cloudflare", &method, status.to_string(), started.elapsed());
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let text = response.text().await.map_err(|e| unreachable(&url, &e))?;
            let can_retry = attempt <= self.settings.retries;
            match status {
                429 => {
                    let secs = retry_after.unwrap_or(60);
                    tracing::warn!(retry_after = secs, "Cloudflare limited calls (429)");
                    self.budget.hold_for(Duration::from_secs(secs));
                    if !can_retry {
                        return Err(DnsError::RateLimited {
                            retry_after_secs: secs,
                        });
                    }
                }
                500..=599 if can_retry => {
                    let pause = self.settings.retry_delay * 2u32.saturating_pow(attempt as u32 - 1);
                    tracing::debug!(status, ?pause, "Cloudflare call retried");
                    tokio::time::sleep(pause).await;
                }
                _ => return envelope(status, &text, path),
            }
        }
    }

    async fn zone_id_by_name(&self, zone: &DomainName) -> Result<Option<String>> {
        let envelope = self
            .call(Method::GET, &format!("/zones?name={}", zone.as_str()), None)
            .await?;
        Ok(envelope.result.as_array().and_then(|zones| {
            zones
                .iter()
                .find(|z| z["name"].as_str() == Some(zone.as_str()))
                .and_then(|z| z["id"].as_str().map(str::to_owned))
        }))
    }

    async fn zone_id(&self, zone: ZoneRef<'_>) -> Result<Option<String>> {
        match zone.provider_zone_id {
            Some(id) => Ok(Some(id.to_owned())),
            None => self.zone_id_by_name(zone.name).await,
        }
    }

    /// Every page of a list, `per_page` items a page.
    async fn list_all(&self, path: &str, per_page: usize) -> Result<Vec<Value>> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut all = Vec::new();
        for page in 1.. {
            let envelope = self
                .call(
                    Method::GET,
                    &format!("{path}{separator}page={page}&per_page={per_page}"),
                    None,
                )
                .await?;
            let items = match envelope.result {
                Value::Array(items) => items,
                other => {
                    return Err(malformed(format!(
                        "expected a list, got {}",
                        snippet(&other.to_string())
                    )));
                }
            };
            let count = items.len();
            all.extend(items);
            let total = envelope
                .result_info
                .map_or(0, |i| i.total_count.max(i.count));
            if count == 0 || all.len() >= total {
                break;
            }
        }
        Ok(all)
    }

    /// Sends record operations as batches of at most `batch_size` records, deletes first, and
    /// returns the record ids after them.
    async fn run_batches(
        &self,
        zone_id: &str,
        ops: Ops,
        mut ids: RecordIds,
    ) -> Result<(usize, RecordIds)> {
        let path = format!("/zones/{zone_id}/dns_records/batch");
        let mut requests = 0;
        let mut queue: Vec<(&str, Value)> = Vec::new();
        for (id, key) in ops.deletes {
            ids.remove(&key);
            queue.push(("deletes", json!({"id": id})));
        }
        for (id, old_key, mut body) in ops.patches {
            ids.remove(&old_key);
            body["id"] = json!(id);
            queue.push(("patches", body));
        }
        queue.extend(ops.posts.into_iter().map(|body| ("posts", body)));
        for chunk in queue.chunks(self.settings.batch_size) {
            let mut batch = json!({"deletes": [], "patches": [], "puts": [], "posts": []});
            for (kind, body) in chunk {
                if let Some(list) = batch[*kind].as_array_mut() {
                    list.push(body.clone());
                }
            }
            let envelope = self.call(Method::POST, &path, Some(&batch)).await?;
            requests += 1;
            for kind in ["patches", "puts", "posts"] {
                for record in envelope.result[kind].as_array().into_iter().flatten() {
                    let record: CfRecord = serde_json::from_value(record.clone())
                        .map_err(|e| malformed(format!("batch result: {e}")))?;
                    if let Some((key, id, _)) = canonical_record(record)? {
                        ids.insert(key, id);
                    }
                }
            }
        }
        Ok((requests, ids))
    }
}

/// Record operations for one zone.
#[derive(Debug, Default)]
struct Ops {
    deletes: Vec<(String, RecordKey)>,
    patches: Vec<(String, RecordKey, Value)>,
    posts: Vec<Value>,
}

impl Ops {
    fn is_empty(&self) -> bool {
        self.deletes.is_empty() && self.patches.is_empty() && self.posts.is_empty()
    }
}

fn key(rrset: &RrSet, content: &str) -> RecordKey {
    RecordKey {
        name: rrset.name.as_str().to_owned(),
        rtype: rrset.rtype,
        content: content.to_owned(),
    }
}

fn id_of(ids: &RecordIds, key: &RecordKey) -> Result<String> {
    ids.get(key)
        .cloned()
        .ok_or_else(|| DnsError::MissingRecordId {
            name: key.name.clone(),
            rtype: key.rtype.to_string(),
            content: key.content.clone(),
        })
}

/// The record operations that turn the zone's records into the diff's result: contents that
/// stay are left alone (or patched for a new TTL), a removed content is patched into an added
/// one where it can (keeping its id), and the rest are deletes and posts.
fn record_ops(diff: &ZoneDiff, ids: &RecordIds) -> Result<Ops> {
    let mut ops = Ops::default();
    for rrset in &diff.deletes {
        for content in &rrset.records {
            let key = key(rrset, content);
            ops.deletes.push((id_of(ids, &key)?, key));
        }
    }
    for rrset in &diff.creates {
        ops.posts
            .extend(rrset.records.iter().map(|c| record_body(rrset, c)));
    }
    for update in &diff.updates {
        let (before, after) = (&update.before, &update.after);
        let old: BTreeSet<&String> = before.records.iter().collect();
        let new: BTreeSet<&String> = after.records.iter().collect();
        if before.ttl != after.ttl {
            for content in old.intersection(&new) {
                let key = key(before, content);
                ops.patches
                    .push((id_of(ids, &key)?, key, record_body(after, content)));
            }
        }
        let mut added = new.difference(&old);
        for removed in old.difference(&new) {
            let key = key(before, removed);
            let id = id_of(ids, &key)?;
            match added.next() {
                Some(content) => ops.patches.push((id, key, record_body(after, content))),
                None => ops.deletes.push((id, key)),
            }
        }
        ops.posts.extend(added.map(|c| record_body(after, c)));
    }
    Ok(ops)
}

/// A record as Cloudflare takes it: host names without the trailing dot, MX preference apart,
/// CAA and SRV as `data` objects (Cloudflare derives their `content`).
fn record_body(rrset: &RrSet, content: &str) -> Value {
    let mut body = json!({
        "name": rrset.name.as_str(),
        "type": rrset.rtype.as_str(),
        "ttl": rrset.ttl,
    });
    match rrset.rtype {
        RecordType::Mx => {
            let (pref, host) = content.split_once(' ').unwrap_or(("0", content));
            body["priority"] = json!(pref.parse::<u16>().unwrap_or(0));
            body["content"] = json!(host.trim_end_matches('.'));
        }
        RecordType::Cname | RecordType::Ns => {
            body["content"] = json!(content.trim_end_matches('.'))
        }
        RecordType::A | RecordType::Aaaa | RecordType::Txt => body["content"] = json!(content),
        RecordType::Caa => {
            // Canonical content always parses; the fallback only keeps the function total.
            match CaaData::parse(content) {
                Ok(caa) => {
                    body["data"] = json!({"flags": caa.flags, "tag": caa.tag, "value": caa.value})
                }
                Err(_) => body["content"] = json!(content),
            }
        }
        RecordType::Srv => match SrvData::parse(content) {
            Ok(srv) => {
                body["data"] = json!({
                    "priority": srv.priority, "weight": srv.weight, "port": srv.port,
                    "target": srv.target_without_dot(),
                })
            }
            Err(_) => body["content"] = json!(content),
        },
    }
    if matches!(
        rrset.rtype,
        RecordType::A | RecordType::Aaaa | RecordType::Cname
    ) {
        body["proxied"] = json!(false);
    }
    body
}

/// A Cloudflare record in drover's form, or `None` for a type drover does not manage.
fn canonical_record(record: CfRecord) -> Result<Option<(RecordKey, String, u32)>> {
    let Ok(rtype) = RecordType::parse(&record.rtype) else {
        return Ok(None);
    };
    let bad =
        |e: drover_core::Error| malformed(format!("record {} {}: {e}", record.name, record.rtype));
    let content = match (rtype, &record.data) {
        (RecordType::Caa, Some(data)) => {
            let flags = data["flags"].as_u64().and_then(|f| u8::try_from(f).ok());
            match (flags, data["tag"].as_str(), data["value"].as_str()) {
                (Some(flags), Some(tag), Some(value)) => {
                    CaaData::new(flags, tag, value).map_err(bad)?.content()
                }
                _ => canonical_content(rtype, &record.content).map_err(bad)?,
            }
        }
        (RecordType::Srv, Some(data)) => {
            let number = |key: &str| data[key].as_u64().and_then(|n| u16::try_from(n).ok());
            match (
                number("priority"),
                number("weight"),
                number("port"),
                data["target"].as_str(),
            ) {
                (Some(priority), Some(weight), Some(port), Some(target)) => {
                    SrvData::new(priority, weight, port, target)
                        .map_err(bad)?
                        .content()
                }
                _ => canonical_content(rtype, &srv_content(&record)).map_err(bad)?,
            }
        }
        (RecordType::Srv, None) => canonical_content(rtype, &srv_content(&record)).map_err(bad)?,
        (RecordType::Mx, _) => canonical_content(
            rtype,
            &format!("{} {}", record.priority.unwrap_or(0), record.content),
        )
        .map_err(bad)?,
        _ => canonical_content(rtype, &record.content).map_err(bad)?,
    };
    Ok(Some((
        RecordKey {
            name: record.name.trim_end_matches('.').to_ascii_lowercase(),
            rtype,
            content,
        },
        record.id,
        record.ttl,
    )))
}

/// An SRV record's content in full: Cloudflare has also answered `weight port target` with the
/// priority apart, like MX.
fn srv_content(record: &CfRecord) -> String {
    match (record.content.split_whitespace().count(), record.priority) {
        (3, Some(priority)) => format!("{priority} {}", record.content),
        _ => record.content.clone(),
    }
}

fn malformed(detail: String) -> DnsError {
    DnsError::Malformed {
        status: 200,
        detail,
    }
}

/// Reads Cloudflare's envelope: `success` with a result, or its errors as a typed error.
fn envelope(status: u16, body: &str, path: &str) -> Result<Envelope> {
    let parsed: Option<Envelope> = serde_json::from_str(body).ok();
    let Some(envelope) = parsed else {
        return Err(DnsError::Malformed {
            status,
            detail: snippet(body),
        });
    };
    if (200..300).contains(&status) && envelope.success {
        return Ok(envelope);
    }
    let message = envelope
        .errors
        .iter()
        .map(|e| format!("{} ({})", e.message, e.code))
        .collect::<Vec<_>>()
        .join("; ");
    let codes = envelope.errors.iter().map(|e| e.code).collect();
    Err(match status {
        401 | 403 => DnsError::Unauthorized { status },
        404 => DnsError::NotFound {
            what: format!("{path}: {message}"),
        },
        500..=599 => DnsError::Server {
            status,
            attempts: 1,
            body: message,
        },
        _ => DnsError::Rejected { message, codes },
    })
}

#[async_trait]
impl DnsProvider for CloudflareClient {
    async fn list_zones(&self) -> Result<Vec<ListedZone>> {
        let path = match &self.settings.account_id {
            Some(account) => format!("/zones?account.id={account}"),
            None => "/zones".to_owned(),
        };
        Ok(self
            .list_all(&path, self.settings.per_page.min(MAX_ZONES_PER_PAGE))
            .await?
            .into_iter()
            .filter_map(|z| {
                Some(ListedZone {
                    name: z["name"].as_str()?.to_owned(),
                    provider_zone_id: z["id"].as_str().map(str::to_owned),
                })
            })
            .collect())
    }

    async fn read_zone(&self, zone: ZoneRef<'_>) -> Result<Option<ProviderZone>> {
        let Some(zone_id) = self.zone_id(zone).await? else {
            return Ok(None);
        };
        let records = match self
            .list_all(
                &format!("/zones/{zone_id}/dns_records"),
                self.settings.per_page,
            )
            .await
        {
            Ok(records) => records,
            Err(DnsError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut grouped: std::collections::BTreeMap<(String, RecordType), (u32, Vec<String>)> =
            Default::default();
        let mut record_ids = RecordIds::new();
        for record in records {
            let record: CfRecord =
                serde_json::from_value(record).map_err(|e| malformed(format!("record: {e}")))?;
            if let Some((key, id, ttl)) = canonical_record(record)? {
                let entry = grouped
                    .entry((key.name.clone(), key.rtype))
                    .or_insert((ttl, Vec::new()));
                entry.1.push(key.content.clone());
                record_ids.insert(key, id);
            }
        }
        let mut rrsets = Vec::new();
        for ((name, rtype), (ttl, contents)) in grouped {
            let owner = OwnerName::parse(&format!("{name}."), zone.name)
                .map_err(|e| malformed(format!("record name {name}: {e}")))?;
            rrsets.push(
                RrSet::new(owner, rtype, ttl, contents.iter().map(String::as_str))
                    .map_err(|e| malformed(e.to_string()))?,
            );
        }
        Ok(Some(ProviderZone { rrsets, record_ids }))
    }

    async fn create_zone(&self, zone: &DomainName, rrsets: &[RrSet]) -> Result<Applied> {
        let account = self.settings.account_id.as_deref().ok_or_else(|| {
            DnsError::Config("a Cloudflare provider needs an account id to create zones".into())
        })?;
        let body = json!({"name": zone.as_str(), "account": {"id": account}, "type": "full"});
        let mut requests = 1;
        let zone_id = match self.call(Method::POST, "/zones", Some(&body)).await {
            Ok(envelope) => envelope.result["id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| malformed("zone creation returned no id".into()))?,
            Err(DnsError::Rejected { codes, .. }) if codes.contains(&ZONE_EXISTS) => {
                requests += 1;
                self.zone_id_by_name(zone)
                    .await?
                    .ok_or_else(|| DnsError::ZoneExists {
                        zone: zone.to_string(),
                    })?
            }
            Err(e) => return Err(e),
        };
        let diff = ZoneDiff {
            creates: rrsets.to_vec(),
            ..ZoneDiff::default()
        };
        let ops = record_ops(&diff, &RecordIds::new())?;
        let (batches, ids) = self.run_batches(&zone_id, ops, RecordIds::new()).await?;
        Ok(Applied {
            requests: requests + batches,
            provider_zone_id: Some(zone_id),
            record_ids: Some(ids),
        })
    }

    async fn apply(&self, zone: ZoneRef<'_>, diff: &ZoneDiff) -> Result<Applied> {
        let ops = record_ops(diff, zone.record_ids)?;
        if ops.is_empty() {
            return Ok(Applied {
                record_ids: Some(zone.record_ids.clone()),
                ..Applied::default()
            });
        }
        let zone_id = self
            .zone_id(zone)
            .await?
            .ok_or_else(|| DnsError::NotFound {
                what: format!("zone {}", zone.name),
            })?;
        let (requests, ids) = self
            .run_batches(&zone_id, ops, zone.record_ids.clone())
            .await?;
        Ok(Applied {
            requests,
            provider_zone_id: Some(zone_id),
            record_ids: Some(ids),
        })
    }

    async fn delete_zone(&self, zone: ZoneRef<'_>) -> Result<Applied> {
        let Some(zone_id) = self.zone_id(zone).await? else {
            return Ok(Applied::default());
        };
        match self
            .call(Method::DELETE, &format!("/zones/{zone_id}"), None)
            .await
        {
            Ok(_) | Err(DnsError::NotFound { .. }) => Ok(Applied {
                requests: 1,
                ..Applied::default()
            }),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_core::{RrSetUpdate, diff_zone};

    fn zone() -> DomainName {
        DomainName::parse("example.ro").unwrap()
    }

    fn rr(name: &str, rtype: RecordType, ttl: u32, records: &[&str]) -> RrSet {
        RrSet::new(
            OwnerName::parse(name, &zone()).unwrap(),
            rtype,
            ttl,
            records.iter().copied(),
        )
        .unwrap()
    }

    fn ids_for(rrsets: &[RrSet]) -> RecordIds {
        let mut ids = RecordIds::new();
        for r in rrsets {
            for c in &r.records {
                ids.insert(key(r, c), format!("id-{}-{}-{c}", r.name, r.rtype));
            }
        }
        ids
    }

    #[test]
    fn records_translate_both_ways() {
        let mx = rr("@", RecordType::Mx, 3600, &["10 mail.example.ro"]);
        let body = record_body(&mx, &mx.records[0]);
        assert_eq!(body["content"], "mail.example.ro");
        assert_eq!(body["priority"], 10);
        assert!(body.get("proxied").is_none());
        let back = canonical_record(CfRecord {
            id: "x".into(),
            name: "example.ro".into(),
            rtype: "MX".into(),
            content: "mail.example.ro".into(),
            ttl: 3600,
            priority: Some(10),
            data: None,
        })
        .unwrap()
        .unwrap();
        assert_eq!(back.0, key(&mx, &mx.records[0]));
        let cname = rr("www", RecordType::Cname, 300, &["example.ro."]);
        assert_eq!(
            record_body(&cname, &cname.records[0])["content"],
            "example.ro"
        );
    }

    fn cf(rtype: &str, content: &str, priority: Option<u16>, data: Option<Value>) -> CfRecord {
        CfRecord {
            id: "x".into(),
            name: "_submission._tcp.example.ro".into(),
            rtype: rtype.into(),
            content: content.into(),
            ttl: 3600,
            priority,
            data,
        }
    }

    #[test]
    fn caa_and_srv_go_as_data_and_come_back_from_data_or_content() {
        let caa = rr("@", RecordType::Caa, 3600, &["0 issue \"letsencrypt.org\""]);
        let body = record_body(&caa, &caa.records[0]);
        assert_eq!(
            body["data"],
            json!({"flags": 0, "tag": "issue", "value": "letsencrypt.org"})
        );
        assert!(body.get("content").is_none() && body.get("proxied").is_none());
        let srv = rr(
            "_submission._tcp",
            RecordType::Srv,
            3600,
            &["10 5 587 mail.example.ro."],
        );
        let body = record_body(&srv, &srv.records[0]);
        assert_eq!(body["name"], "_submission._tcp.example.ro");
        assert_eq!(
            body["data"],
            json!({"priority": 10, "weight": 5, "port": 587, "target": "mail.example.ro"})
        );
        let srv_key = key(&srv, &srv.records[0]);
        for record in [
            cf(
                "SRV",
                "10 5 587 mail.example.ro",
                Some(10),
                Some(
                    json!({"priority": 10, "weight": 5, "port": 587, "target": "mail.example.ro"}),
                ),
            ),
            cf("SRV", "10 5 587 mail.example.ro", None, None),
            cf("SRV", "5\t587\tmail.example.ro", Some(10), None),
        ] {
            assert_eq!(canonical_record(record).unwrap().unwrap().0, srv_key);
        }
        let content = "0 issue \"letsencrypt.org\"";
        let data = json!({"flags": 0, "tag": "issue", "value": "letsencrypt.org"});
        for record in [
            cf("CAA", content, None, Some(data)),
            cf("CAA", content, None, None),
        ] {
            let (key, _, _) = canonical_record(record).unwrap().unwrap();
            assert_eq!(
                (key.rtype, key.content.as_str()),
                (RecordType::Caa, content)
            );
        }
        // A type drover does not manage is left out, not an error.
        assert!(
            canonical_record(cf("TLSA", "3 1 1 ab", None, None))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn an_address_change_is_one_patch_that_keeps_the_id() {
        let before = rr("@", RecordType::A, 300, &["192.0.2.1"]);
        let after = rr("@", RecordType::A, 300, &["203.0.113.1"]);
        let ids = ids_for(std::slice::from_ref(&before));
        let diff = ZoneDiff {
            updates: vec![RrSetUpdate { before, after }],
            ..ZoneDiff::default()
        };
        let ops = record_ops(&diff, &ids).unwrap();
        assert!(ops.deletes.is_empty() && ops.posts.is_empty());
        assert_eq!(ops.patches.len(), 1);
        assert_eq!(ops.patches[0].0, "id-example.ro-A-192.0.2.1");
        assert_eq!(ops.patches[0].2["content"], "203.0.113.1");
    }

    #[test]
    fn ops_cover_creates_deletes_and_uneven_updates() {
        let actual = [
            rr(
                "@",
                RecordType::A,
                300,
                &["192.0.2.1", "192.0.2.2", "192.0.2.3"],
            ),
            rr("gone", RecordType::Txt, 300, &["x"]),
        ];
        let wanted = [
            rr("@", RecordType::A, 60, &["192.0.2.1", "192.0.2.9"]),
            rr("new", RecordType::A, 300, &["192.0.2.4"]),
        ];
        let ops = record_ops(&diff_zone(&wanted, &actual), &ids_for(&actual)).unwrap();
        // TTL change patches the kept record, one removed is patched into the added one, the
        // other removed and the whole `gone` rrset are deleted, `new` is posted.
        assert_eq!(ops.patches.len(), 2);
        assert_eq!(ops.deletes.len(), 2);
        assert_eq!(ops.posts.len(), 1);
        assert!(ops.patches.iter().all(|p| p.2["ttl"] == 60));
    }

    #[test]
    fn a_missing_id_is_named() {
        let before = rr("@", RecordType::A, 300, &["192.0.2.1"]);
        let diff = ZoneDiff {
            deletes: vec![before],
            ..ZoneDiff::default()
        };
        let err = record_ops(&diff, &RecordIds::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("example.ro A 192.0.2.1"), "{err}");
    }

    #[test]
    fn error_bodies_become_typed_errors() {
        let body = r#"{"success": false, "errors": [{"code": 81057, "message": "Record already exists."}], "messages": [], "result": null}"#;
        match envelope(400, body, "/x") {
            Err(DnsError::Rejected { message, codes }) => {
                assert_eq!(codes, [81057]);
                assert!(message.contains("Record already exists. (81057)"));
            }
            _ => panic!("expected a rejection"),
        }
        assert!(matches!(
            envelope(403, r#"{"success":false,"errors":[]}"#, "/x"),
            Err(DnsError::Unauthorized { status: 403 })
        ));
        assert!(matches!(
            envelope(502, "<html>bad gateway</html>", "/x"),
            Err(DnsError::Malformed { status: 502, .. })
        ));
    }
}
