//! One Virtualmin client per server, built from its record and kept while the record and its
//! secret are unchanged, so each server's rate limit and breaker are shared by every job. A
//! server that refused drover's login is not called again until its secret changes or an
//! operator says so.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use drover_store::Server;
use drover_virtualmin::{BreakerConfig, Endpoint, TlsPolicy, VirtualminClient, VirtualminSettings};

/// Paces one server's calls through the shared database, a block of its time at a time: one
/// write reserves up to [`PACING_BLOCK_MS`] of the server's slots for this process, whose calls
/// then take them in memory. Another process's block starts where this one ends, so the
/// server's rate holds across processes; a server slower than one call per block costs one
/// write per call, as before blocks. One call at a time reserves: calls that each reserved a
/// block of their own would push the server's next free slot a block further each, and every
/// call after them would wait for it.
#[derive(Debug)]
struct StorePacer {
    store: Arc<dyn drover_store::Store>,
    server: drover_core::ServerId,
    block: tokio::sync::Mutex<SlotBlock>,
}

/// The longest span of a server's time one reservation takes.
/// Short: a process's unused slots delay the other processes' calls on the server by as much.
const PACING_BLOCK_MS: i64 = 50;

/// The slots of a reserved block not yet taken: `next_ms`, one interval apart, before `end_ms`.
#[derive(Debug, Default)]
struct SlotBlock {
    next_ms: i64,
    end_ms: i64,
}

impl SlotBlock {
    /// The next slot, if the block still has one at `now_ms` or later.
    fn take(&mut self, now_ms: i64, interval_ms: i64) -> Option<i64> {
        let slot = self.next_ms.max(now_ms);
        (slot + interval_ms <= self.end_ms).then(|| {
            self.next_ms = slot + interval_ms;
            slot
        })
    }
}

impl StorePacer {
    fn new(store: Arc<dyn drover_store::Store>, server: drover_core::ServerId) -> Self {
        Self {
            store,
            server,
            block: tokio::sync::Mutex::new(SlotBlock::default()),
        }
    }

    async fn slot(&self, interval_ms: i64) -> Result<i64, drover_virtualmin::VirtualminError> {
        let mut block = self.block.lock().await;
        if let Some(slot) = block.take(now_ms(), interval_ms) {
            return Ok(slot);
        }
        let slots = (PACING_BLOCK_MS / interval_ms).max(1);
        let start = self
            .store
            .reserve_call_slot(self.server, interval_ms.saturating_mul(slots))
            .await
            .map_err(|e| {
                drover_virtualmin::VirtualminError::new(
                    drover_virtualmin::ErrorKind::Transient,
                    format!("cannot reserve a call slot: {e}"),
                )
            })?;
        // The first slot is this call's; the rest wait in memory for the next calls.
        *block = SlotBlock {
            next_ms: start + interval_ms,
            end_ms: start + interval_ms.saturating_mul(slots),
        };
        Ok(start)
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl drover_virtualmin::CallPacer for StorePacer {
    fn next_slot(
        &self,
        interval: std::time::Duration,
    ) -> std::pin::Pin<
        Box<
            dyn Future<Output = Result<std::time::Duration, drover_virtualmin::VirtualminError>>
                + Send
                + '_,
        >,
    > {
        Box::pin(async move {
            let interval_ms = i64::try_from(interval.as_millis())
                .unwrap_or(i64::MAX)
                .max(1);
            let wait = self.slot(interval_ms).await? - now_ms();
            Ok(std::time::Duration::from_millis(
                u64::try_from(wait).unwrap_or(0),
            ))
        })
    }
}

#[derive(Debug)]
pub struct Fleet {
    /// Shares each server's call rate with every drover process.
    store: Option<Arc<dyn drover_store::Store>>,
    settings: VirtualminSettings,
    secrets: Arc<super::Secrets>,
    clients: Mutex<HashMap<i64, (ClientVersion, Arc<VirtualminClient>)>>,
}

/// What a cached client was built from: the server's record (an operator's allow-login changes
/// it, so a client that met a refusal starts afresh) and its secret.
type ClientVersion = (jiff::Timestamp, String);

/// Why a server cannot be called.
#[derive(Debug, thiserror::Error)]
#[error("server {server}: {reason}")]
pub struct FleetError {
    pub server: String,
    pub reason: String,
    /// The server must not be called now: it refused drover's login with the secret it has
    /// now, or an operator works on it over SSH. Waiting (for new credentials, or for the
    /// operator) is the only way on.
    pub waits: bool,
}

/// A short fingerprint of a secret, to tell whether the one refused is the one held now. Short
/// on purpose: it tells two secrets apart, and is too short to confirm a guessed password from
/// a copy of the database.
fn secret_sha256(secret: &secrecy::SecretString) -> String {
    use secrecy::ExposeSecret;
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(secret.expose_secret().as_bytes())[..4])
}

impl Fleet {
    /// Each process paces its own calls: right for one process.
    pub fn new(settings: VirtualminSettings, secrets: Arc<super::Secrets>) -> Self {
        Self {
            store: None,
            settings,
            secrets,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Calls are paced through the database, so a server's rate holds across processes.
    pub fn shared(
        settings: VirtualminSettings,
        store: Arc<dyn drover_store::Store>,
        secrets: Arc<super::Secrets>,
    ) -> Self {
        Self {
            store: Some(store),
            settings,
            secrets,
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &VirtualminSettings {
        &self.settings
    }

    /// A secret the fleet's servers are given for a third party (an SSH backup host's
    /// password), from where an operator allowed secrets to be read.
    pub fn secret(
        &self,
        reference: &drover_core::CredentialRef,
    ) -> Result<secrecy::SecretString, String> {
        self.secrets.read(reference)
    }

    /// The secret `reference` points at, a new random one written first to a `file:` that
    /// does not exist yet (see [`super::Secrets::read_or_create`]).
    pub fn secret_or_create(
        &self,
        reference: &drover_core::CredentialRef,
    ) -> Result<secrecy::SecretString, String> {
        self.secrets.read_or_create(reference)
    }

    /// The client a job changes or reads accounts through: none while an operator works on
    /// the server over SSH (jobs never turn to SSH on their own; they wait for the mark to be
    /// lifted).
    pub fn client(&self, server: &Server) -> Result<Arc<VirtualminClient>, FleetError> {
        if let Some(mark) = &server.break_glass {
            return Err(FleetError {
                server: server.spec.name.to_string(),
                reason: format!(
                    "it is worked on over SSH ({}, by {} since {}): no job calls it until the \
                     mark is lifted (drover servers break-glass {} --lift)",
                    mark.reason, mark.by, mark.since, server.id
                ),
                waits: true,
            });
        }
        self.probe_client(server)
    }

    /// The client health checks look through, marked or not: they tell when remote.cgi
    /// answers again. Rebuilt when the server's record or its secret changed. The secret is
    /// read on every use (a file or a variable: small), so a changed one is picked up without
    /// touching the server's record.
    pub fn probe_client(&self, server: &Server) -> Result<Arc<VirtualminClient>, FleetError> {
        let fail = |reason: String| FleetError {
            server: server.spec.name.to_string(),
            reason,
            waits: false,
        };
        let password = self.secrets.read(&server.spec.credentials).map_err(fail)?;
        let secret = secret_sha256(&password);
        if let Some(refused) = &server.login_refused
            && refused.secret_sha256 == secret
        {
            return Err(FleetError {
                server: server.spec.name.to_string(),
                reason: format!(
                    "it refused drover's login at {} ({}); drover calls it no more until its \
                     credentials change or an operator allows it again (drover servers \
                     allow-login {})",
                    refused.at, refused.reason, server.id
                ),
                waits: true,
            });
        }
        let version = (server.updated_at, secret.clone());
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((built_from, client)) = clients.get(&server.id.get())
            && *built_from == version
        {
            return Ok(Arc::clone(client));
        }
        let spec = &server.spec;
        let host = if spec.hostname.as_str().contains(':') {
            format!("[{}]", spec.hostname)
        } else {
            spec.hostname.to_string()
        };
        let endpoint = Endpoint {
            name: spec.name.to_string(),
            base_url: format!("https://{host}:{}", spec.port),
            user: spec.api_user.clone(),
            password,
            tls: TlsPolicy {
                verify: spec.tls_verify && self.settings.ssl_verify,
                pinned_sha256: spec.pinned_cert_sha256.or(self.settings.pinned_cert_sha256),
                extra_roots: Vec::new(),
            },
            rate_qps: spec.rate_qps.unwrap_or(self.settings.rate_qps),
            max_concurrency: 4,
        };
        let mut client = VirtualminClient::new(endpoint, &self.settings, BreakerConfig::default())
            .map_err(|e| fail(e.to_string()))?;
        if let Some(store) = &self.store {
            client = client
                .with_pacer(Arc::new(StorePacer::new(Arc::clone(store), server.id)))
                .on_login_refused(login_refused_hook(Arc::clone(store), server.id, secret));
        }
        let client = Arc::new(client);
        clients.insert(server.id.get(), (version, Arc::clone(&client)));
        Ok(client)
    }
}

/// Records a refused login on the server's record, so every drover process stops calling it.
fn login_refused_hook(
    store: Arc<dyn drover_store::Store>,
    server: drover_core::ServerId,
    secret: String,
) -> drover_virtualmin::LoginRefusedHook {
    Arc::new(move |error| {
        let (store, secret, reason) = (Arc::clone(&store), secret.clone(), error.to_string());
        tracing::error!(%server, %reason, "the server refused drover's login; drover stops calling it");
        tokio::spawn(async move {
            let ctx = drover_store::RequestContext {
                actor: "drover".into(),
                correlation_id: format!("login-refused-{server}"),
            };
            if let Err(e) = store
                .mark_login_refused(&ctx, server, &reason, &secret)
                .await
            {
                tracing::error!(%server, error = %e, "cannot record the refused login");
            }
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two processes' pacers on one database: every slot of theirs is its own, one interval
    /// from the next, however they interleave.
    #[tokio::test]
    async fn pacers_sharing_a_database_never_share_a_slot() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("slots.db").display());
        let store = drover_store::open(&url).await.unwrap();
        let server = drover_core::ServerId(7);
        let pacers = [
            Arc::new(StorePacer::new(Arc::clone(&store), server)),
            Arc::new(StorePacer::new(Arc::clone(&store), server)),
        ];
        let mut tasks = Vec::new();
        for round in 0..90 {
            let pacer = Arc::clone(&pacers[round % 2]);
            tasks.push(tokio::spawn(async move { pacer.slot(10).await.unwrap() }));
        }
        let mut slots = Vec::new();
        for task in tasks {
            slots.push(task.await.unwrap());
        }
        slots.sort_unstable();
        for pair in slots.windows(2) {
            assert!(pair[1] - pair[0] >= 10, "{pair:?} in {slots:?}");
        }
        // Each pacer wastes at most the end of its last block.
        let span = slots[slots.len() - 1] - slots[0];
        assert!(
            span < 90 * 10 + 2 * PACING_BLOCK_MS,
            "slots spread over {span} ms"
        );
    }

    /// Calls arriving together take one block's slots in turn: none waits for a block that
    /// another call reserved needlessly.
    #[tokio::test]
    async fn calls_arriving_together_take_consecutive_slots() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("slots.db").display());
        let store = drover_store::open(&url).await.unwrap();
        let pacer = Arc::new(StorePacer::new(store, drover_core::ServerId(7)));
        let tasks: Vec<_> = (0..90)
            .map(|_| {
                let pacer = Arc::clone(&pacer);
                tokio::spawn(async move { pacer.slot(10).await.unwrap() })
            })
            .collect();
        let mut slots = Vec::new();
        for task in tasks {
            slots.push(task.await.unwrap());
        }
        slots.sort_unstable();
        let gaps: Vec<i64> = slots.windows(2).map(|p| p[1] - p[0]).collect();
        assert!(gaps.iter().all(|gap| *gap == 10), "{gaps:?}");
    }

    #[test]
    fn a_block_hands_out_its_slots_and_none_past_its_end() {
        let mut block = SlotBlock {
            next_ms: 1_000,
            end_ms: 1_030,
        };
        assert_eq!(block.take(990, 10), Some(1_000));
        // A slot the clock has passed is not taken: calls after a pause do not burst.
        assert_eq!(block.take(1_015, 10), Some(1_015));
        assert_eq!(block.take(1_015, 10), None);
    }
}
