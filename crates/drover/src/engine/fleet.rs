//! One Virtualmin client per server, built from its record and kept while the record is
//! unchanged, so each server's rate limit and breaker are shared by every job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use drover_store::Server;
use drover_virtualmin::{BreakerConfig, Endpoint, TlsPolicy, VirtualminClient, VirtualminSettings};

/// Paces one server's calls through the shared database.
#[derive(Debug)]
struct StorePacer {
    store: Arc<dyn drover_store::Store>,
    server: drover_core::ServerId,
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
            let slot = self
                .store
                .reserve_call_slot(self.server, interval_ms)
                .await
                .map_err(|e| {
                    drover_virtualmin::VirtualminError::new(
                        drover_virtualmin::ErrorKind::Transient,
                        format!("cannot reserve a call slot: {e}"),
                    )
                })?;
            let wait = slot - jiff::Timestamp::now().as_millisecond();
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
    clients: Mutex<HashMap<i64, (jiff::Timestamp, Arc<VirtualminClient>)>>,
}

/// Why a server cannot be called.
#[derive(Debug, thiserror::Error)]
#[error("server {server}: {reason}")]
pub struct FleetError {
    pub server: String,
    pub reason: String,
}

impl Fleet {
    /// Each process paces its own calls: right for one process.
    pub fn new(settings: VirtualminSettings) -> Self {
        Self {
            store: None,
            settings,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Calls are paced through the database, so a server's rate holds across processes.
    pub fn shared(settings: VirtualminSettings, store: Arc<dyn drover_store::Store>) -> Self {
        Self {
            store: Some(store),
            settings,
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &VirtualminSettings {
        &self.settings
    }

    /// The client for `server`, rebuilt when its record changed.
    pub fn client(&self, server: &Server) -> Result<Arc<VirtualminClient>, FleetError> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((version, client)) = clients.get(&server.id.get())
            && *version == server.updated_at
        {
            return Ok(Arc::clone(client));
        }
        let fail = |reason: String| FleetError {
            server: server.spec.name.to_string(),
            reason,
        };
        let password = super::read_credentials(&server.spec.credentials).map_err(fail)?;
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
            client = client.with_pacer(Arc::new(StorePacer {
                store: Arc::clone(store),
                server: server.id,
            }));
        }
        let client = Arc::new(client);
        clients.insert(server.id.get(), (server.updated_at, Arc::clone(&client)));
        Ok(client)
    }
}
