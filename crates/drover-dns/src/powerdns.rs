//! The PowerDNS Authoritative HTTP API (as 4.7.3 answers it: see `powerdns-captures/`).

use std::time::Duration;

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use drover_core::{DomainName, OwnerName, RecordType, RrSet, ZoneDiff};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::snippet;
use crate::http::{http_client, record_request, unreachable};
use crate::provider::{Applied, DnsProvider, ListedZone, ProviderZone, ZoneRef};
use crate::{DnsError, Result};

/// PowerDNS refuses request bodies over `webserver-max-bodysize` (2 MB by default) with a bare
/// 400; changes are split to stay below this.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2_000_000;

#[derive(Debug, Clone)]
pub struct PowerDnsSettings {
    /// Where the API listens, e.g. `http://127.0.0.1:8081`.
    pub api_url: String,
    /// The API's server id, `localhost` unless the operator changed it.
    pub server_id: String,
    pub api_key: SecretString,
    pub max_body_bytes: usize,
    pub timeout: Duration,
    /// Retries of a request answered 5xx (gsqlite3 answers 500 "database is locked" under
    /// concurrent writes) or refused at connect.
    pub retries: usize,
    /// Pause before the first retry; doubles each time.
    pub retry_delay: Duration,
}

impl PowerDnsSettings {
    pub fn new(api_url: &str, api_key: SecretString) -> Self {
        Self {
            api_url: api_url.trim_end_matches('/').to_owned(),
            server_id: "localhost".to_owned(),
            api_key,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            timeout: Duration::from_secs(30),
            retries: 4,
            retry_delay: Duration::from_millis(100),
        }
    }
}

#[derive(Debug)]
pub struct PowerDnsClient {
    settings: PowerDnsSettings,
    http: reqwest::Client,
}

/// One entry of a PATCH `rrsets` list.
#[derive(Debug, Clone, PartialEq)]
enum Change<'a> {
    Delete(&'a OwnerName, RecordType),
    Replace(&'a RrSet),
}

impl Change<'_> {
    fn to_json(&self) -> Value {
        match self {
            Self::Delete(name, rtype) => json!({
                "name": name.absolute(), "type": rtype.as_str(), "changetype": "DELETE",
            }),
            Self::Replace(rrset) => json!({
                "name": rrset.name.absolute(),
                "type": rrset.rtype.as_str(),
                "ttl": rrset.ttl,
                "changetype": "REPLACE",
                "records": rrset.records.iter()
                    .map(|content| json!({"content": content, "disabled": false}))
                    .collect::<Vec<_>>(),
            }),
        }
    }
}

#[derive(Deserialize)]
struct ZoneJson {
    #[serde(default)]
    rrsets: Vec<RrSetJson>,
}

#[derive(Deserialize)]
struct RrSetJson {
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    #[serde(default)]
    ttl: u32,
    #[serde(default)]
    records: Vec<RecordJson>,
}

#[derive(Deserialize)]
struct RecordJson {
    content: String,
    #[serde(default)]
    disabled: bool,
}

#[derive(Deserialize)]
struct ListedJson {
    name: String,
}

impl PowerDnsClient {
    pub fn new(settings: PowerDnsSettings) -> Result<Self> {
        if !(settings.api_url.starts_with("http://") || settings.api_url.starts_with("https://")) {
            return Err(DnsError::Config(format!(
                "PowerDNS API URL '{}' must start with http:// or https://",
                settings.api_url
            )));
        }
        let http = http_client(settings.timeout, false)?;
        Ok(Self { settings, http })
    }

    pub fn settings(&self) -> &PowerDnsSettings {
        &self.settings
    }

    fn zones_url(&self) -> String {
        format!(
            "{}/api/v1/servers/{}/zones",
            self.settings.api_url, self.settings.server_id
        )
    }

    fn zone_url(&self, zone: &DomainName) -> String {
        format!("{}/{}.", self.zones_url(), zone.as_str())
    }

    /// The server's own description (`GET /servers/{id}`): a cheap liveness call.
    pub async fn server_info(&self) -> Result<Value> {
        let url = format!(
            "{}/api/v1/servers/{}",
            self.settings.api_url, self.settings.server_id
        );
        let body = self.send(Method::GET, &url, None, "server").await?;
        parse_json(&body)
    }

    /// Sends one request, retrying 5xx and refused connections with a doubling pause.
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<String>,
        what: &str,
    ) -> Result<String> {
        let attempt = || self.send_once(method.clone(), url, body.clone(), what);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.settings.retry_delay)
            .with_max_delay(Duration::from_secs(5))
            .with_max_times(self.settings.retries)
            .with_jitter();
        let result = attempt
            .retry(backoff)
            .when(|e: &DnsError| e.is_transient())
            .notify(|e, pause| tracing::debug!(error = %e, ?pause, "PowerDNS call retried"))
            .await;
        result.map_err(|e| match e {
            DnsError::Server { status, body, .. } => DnsError::Server {
                status,
                attempts: self.settings.retries + 1,
                body,
            },
            other => other,
        })
    }

    async fn send_once(
        &self,
        method: Method,
        url: &str,
        body: Option<String>,
        what: &str,
    ) -> Result<String> {
        let bytes = body.as_ref().map_or(0, String::len);
        let mut request = self
            .http
            .request(method.clone(), url)
            .header("X-API-Key", self.settings.api_key.expose_secret());
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        let started = std::time::Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            // PowerDNS answers a body over its `webserver-max-bodysize` (1 MB at the least) with
            // a 400 and closes without reading the rest: the client, still sending, may see the
            // connection reset before it reads that answer. Seen in CI with a 2.8 MB body.
            Err(e) if bytes > MIN_SERVER_BODY_LIMIT && cut_off(&e) => {
                record_request("powerdns", &method, "400".into(), started.elapsed());
                return Err(DnsError::BadRequest { bytes });
            }
            Err(e) => {
                record_request("powerdns", &method, "unreachable".into(), started.elapsed());
                return Err(unreachable(url, &e));
            }
        };
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| unreachable(url, &e));
        record_request("powerdns", &method, status.to_string(), started.elapsed());
        classify(status, text?, bytes, what)
    }

    /// Sends a change as PATCHes of at most `max_body_bytes` each, in order (so deletes stay
    /// ahead of replaces). One PATCH is atomic on the server; a split change is not.
    async fn patch(&self, zone: &DomainName, changes: &[Change<'_>]) -> Result<usize> {
        let url = self.zone_url(zone);
        let mut requests = 0;
        let bodies = split_bodies(
            changes.iter().map(Change::to_json),
            "{\"rrsets\":[",
            "]}",
            self.settings.max_body_bytes,
        );
        for (body, _) in bodies {
            self.send(Method::PATCH, &url, Some(body), &format!("zone {zone}"))
                .await?;
            requests += 1;
        }
        Ok(requests)
    }
}

/// The smallest `webserver-max-bodysize` PowerDNS takes (the setting counts megabytes).
const MIN_SERVER_BODY_LIMIT: usize = 1_000_000;

/// Whether the server closed the connection under a request still being sent (reset, or a
/// broken pipe), rather than not being reached at all.
fn cut_off(e: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(error) = source {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            )
        {
            return true;
        }
        source = error.source();
    }
    false
}

/// Packs JSON items into bodies `prefix item,item… suffix` no longer than `max` bytes each,
/// with the number of items in each (an item larger than `max` alone still gets its own body,
/// and the server's 400).
fn split_bodies(
    items: impl Iterator<Item = Value>,
    prefix: &str,
    suffix: &str,
    max: usize,
) -> Vec<(String, usize)> {
    let mut bodies = Vec::new();
    let mut current = String::from(prefix);
    let mut count = 0;
    for item in items {
        let text = item.to_string();
        let grown = current.len() + text.len() + suffix.len() + usize::from(count > 0);
        if count > 0 && grown > max {
            current.push_str(suffix);
            bodies.push((std::mem::replace(&mut current, String::from(prefix)), count));
            count = 0;
        }
        if count > 0 {
            current.push(',');
        }
        current.push_str(&text);
        count += 1;
    }
    current.push_str(suffix);
    bodies.push((current, count));
    bodies
}

/// Decides what an answer means, from the status first (only 422 bodies are JSON).
fn classify(status: u16, body: String, bytes_sent: usize, what: &str) -> Result<String> {
    match status {
        200..=299 => Ok(body),
        400 => Err(DnsError::BadRequest { bytes: bytes_sent }),
        401 | 403 => Err(DnsError::Unauthorized { status }),
        404 => Err(DnsError::NotFound {
            what: what.to_owned(),
        }),
        409 => Err(DnsError::ZoneExists {
            zone: what.trim_start_matches("zone ").to_owned(),
        }),
        422 => {
            let message = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| snippet(&body));
            Err(DnsError::Rejected {
                message,
                codes: Vec::new(),
            })
        }
        500..=599 => Err(DnsError::Server {
            status,
            attempts: 1,
            body: snippet(&body),
        }),
        _ => Err(DnsError::Malformed {
            status,
            detail: snippet(&body),
        }),
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &str) -> Result<T> {
    serde_json::from_str(body).map_err(|e| DnsError::Malformed {
        status: 200,
        detail: format!("{e}: {}", snippet(body)),
    })
}

/// A served zone in canonical form: SOA, disabled records, comment-only rrsets and types drover
/// does not manage are left out.
fn canonical_rrsets(zone: &DomainName, json: ZoneJson) -> Result<Vec<RrSet>> {
    let mut rrsets = Vec::new();
    for rrset in json.rrsets {
        let Ok(rtype) = RecordType::parse(&rrset.rtype) else {
            continue;
        };
        let contents: Vec<&str> = rrset
            .records
            .iter()
            .filter(|r| !r.disabled)
            .map(|r| r.content.as_str())
            .collect();
        if contents.is_empty() {
            continue;
        }
        let malformed = |e: drover_core::Error| DnsError::Malformed {
            status: 200,
            detail: format!("rrset {} {}: {e}", rrset.name, rrset.rtype),
        };
        let name = OwnerName::parse(&rrset.name, zone).map_err(malformed)?;
        rrsets.push(RrSet::new(name, rtype, rrset.ttl, contents).map_err(malformed)?);
    }
    Ok(rrsets)
}

#[async_trait]
impl DnsProvider for PowerDnsClient {
    async fn list_zones(&self) -> Result<Vec<ListedZone>> {
        let body = self
            .send(Method::GET, &self.zones_url(), None, "server")
            .await?;
        let listed: Vec<ListedJson> = parse_json(&body)?;
        Ok(listed
            .into_iter()
            .map(|z| ListedZone {
                name: z.name.trim_end_matches('.').to_owned(),
                provider_zone_id: None,
            })
            .collect())
    }

    async fn read_zone(&self, zone: ZoneRef<'_>) -> Result<Option<ProviderZone>> {
        let what = format!("zone {}", zone.name);
        match self
            .send(Method::GET, &self.zone_url(zone.name), None, &what)
            .await
        {
            Ok(body) => Ok(Some(ProviderZone {
                rrsets: canonical_rrsets(zone.name, parse_json(&body)?)?,
                record_ids: Default::default(),
            })),
            Err(DnsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_zone(&self, zone: &DomainName, rrsets: &[RrSet]) -> Result<Applied> {
        // The zone and as many rrsets as fit go in the POST (atomic); the rest follow as PATCHes.
        let head = json!({"name": format!("{zone}."), "kind": "Native", "nameservers": []});
        let prefix = format!("{},\"rrsets\":[", head.to_string().trim_end_matches('}'));
        let plain = rrsets.iter().map(|r| {
            let mut item = Change::Replace(r).to_json();
            item.as_object_mut().map(|o| o.remove("changetype"));
            item
        });
        let (first, fitted) = split_bodies(plain, &prefix, "]}", self.settings.max_body_bytes)
            .into_iter()
            .next()
            .unwrap_or_default();
        let what = format!("zone {zone}");
        self.send(Method::POST, &self.zones_url(), Some(first), &what)
            .await?;
        let rest: Vec<Change<'_>> = rrsets[fitted..].iter().map(Change::Replace).collect();
        let patches = if rest.is_empty() {
            0
        } else {
            self.patch(zone, &rest).await?
        };
        Ok(Applied {
            requests: 1 + patches,
            ..Applied::default()
        })
    }

    async fn apply(&self, zone: ZoneRef<'_>, diff: &ZoneDiff) -> Result<Applied> {
        if diff.is_empty() {
            return Ok(Applied::default());
        }
        // DELETEs first: PowerDNS applies the list in order, and a CNAME replacing an A at the
        // same name is refused unless the A is gone already (captures 14e/14g).
        let changes: Vec<Change<'_>> = diff
            .deletes
            .iter()
            .map(|r| Change::Delete(&r.name, r.rtype))
            .chain(diff.upserts().map(Change::Replace))
            .collect();
        let requests = self.patch(zone.name, &changes).await?;
        Ok(Applied {
            requests,
            ..Applied::default()
        })
    }

    async fn delete_zone(&self, zone: ZoneRef<'_>) -> Result<Applied> {
        let what = format!("zone {}", zone.name);
        match self
            .send(Method::DELETE, &self.zone_url(zone.name), None, &what)
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

    #[test]
    fn bodies_split_below_the_limit_and_keep_order() {
        let items: Vec<Value> = (0..100).map(|i| json!({"n": i})).collect();
        let bodies = split_bodies(items.into_iter(), "{\"rrsets\":[", "]}", 120);
        assert!(bodies.len() > 1);
        let mut seen = Vec::new();
        for (body, count) in &bodies {
            assert!(body.len() <= 120, "{} bytes", body.len());
            let v: Value = serde_json::from_str(body).unwrap();
            let items = v["rrsets"].as_array().unwrap();
            assert_eq!(items.len(), *count);
            seen.extend(items.iter().map(|i| i["n"].as_i64().unwrap()));
        }
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        assert_eq!(
            split_bodies(std::iter::empty(), "[", "]", 10),
            [("[]".to_owned(), 0)]
        );
    }

    #[test]
    fn statuses_map_to_typed_errors() {
        assert!(
            matches!(classify(409, "Conflict".into(), 10, "zone a.ro"), Err(DnsError::ZoneExists { zone }) if zone == "a.ro")
        );
        assert!(matches!(
            classify(422, r#"{"error": "RRset a.example.com. IN CNAME: Conflicts with pre-existing RRset"}"#.into(), 10, "z"),
            Err(DnsError::Rejected { message, .. }) if message.contains("Conflicts")
        ));
        assert!(matches!(
            classify(400, "Bad Request".into(), 2_800_000, "z"),
            Err(DnsError::BadRequest { bytes: 2_800_000 })
        ));
        assert!(matches!(
            classify(401, "Unauthorized".into(), 0, "z"),
            Err(DnsError::Unauthorized { status: 401 })
        ));
        assert!(matches!(
            classify(404, "Not Found".into(), 0, "zone x"),
            Err(DnsError::NotFound { .. })
        ));
        assert!(matches!(
            classify(500, "Internal Server Error".into(), 0, "z"),
            Err(DnsError::Server { status: 500, .. })
        ));
        assert!(matches!(
            classify(405, "Method Not Allowed".into(), 0, "z"),
            Err(DnsError::Malformed { status: 405, .. })
        ));
        assert_eq!(classify(204, String::new(), 0, "z").unwrap(), "");
    }
}
