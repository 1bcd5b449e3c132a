//! Usage: two listings per server (every domain's figures, every domain's users), summed per
//! account and recorded for billing, with each certificate's expiry from the same listing. The
//! cost is per server, not per account.

use drover_core::{ListedUsage, usage_by_domain};
use drover_store::{Server, StoreError};
use drover_virtualmin::VirtualminError;
use serde::Serialize;

use super::Engine;

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Nothing is recorded from a failed listing: stale figures beat wrong ones.
    #[error("server {server} could not be listed, so no usage was recorded: {source}")]
    Observation {
        server: String,
        #[source]
        source: VirtualminError,
    },
    #[error("server {server}: {message}")]
    Unusable { server: String, message: String },
}

/// What one server's sync recorded.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub server: String,
    /// Accounts whose figures were replaced.
    pub accounts: usize,
    /// drover's accounts on the server that it did not list (drift's business).
    pub not_listed: Vec<String>,
}

/// Lists the server's domains and users once each and records every account's figures.
pub async fn sync_server(engine: &Engine, server: &Server) -> Result<SyncReport, UsageError> {
    let name = server.spec.name.to_string();
    let observation = |source| UsageError::Observation {
        server: name.clone(),
        source,
    };
    let client = engine
        .fleet
        .client(server)
        .map_err(|e| UsageError::Unusable {
            server: name.clone(),
            message: e.to_string(),
        })?;
    let domains = client.list_domains().await.map_err(observation)?;
    let users = client.list_all_users().await.map_err(observation)?;
    // A self-signed certificate's expiry says nothing of Let's Encrypt's.
    let expiries: std::collections::HashMap<String, jiff::Timestamp> = domains
        .iter()
        .filter(|d| d.acme_certificate)
        .filter_map(|d| {
            let expiry = jiff::Timestamp::from_second(d.ssl_expiry_unix_time?).ok()?;
            Some((d.domain.clone(), expiry))
        })
        .collect();
    let listed: Vec<ListedUsage> = domains
        .into_iter()
        .map(|d| ListedUsage {
            alias: d.kind == Some(drover_virtualmin::DomainKind::Alias),
            parent: d.parent,
            disk_bytes: d.quota.server_byte_quota_used,
            bandwidth_bytes: d.quota.bandwidth_byte_usage,
            // A multiline listing leaves the lines out for a domain without databases.
            databases: d.quota.databases_count.unwrap_or(0),
            database_bytes: d.quota.databases_byte_size.unwrap_or(0),
            domain: d.domain,
        })
        .collect();
    let mut by_domain = usage_by_domain(
        &listed,
        users
            .iter()
            .filter(|u| u.is_mailbox())
            .map(|u| u.domain.as_str()),
    );
    let mut figures = Vec::new();
    let mut not_listed = Vec::new();
    let mut certificates = Vec::new();
    let expectations = engine.store.server_expectations(server.id).await?;
    for expected in expectations.into_iter().filter(|e| e.is_live()) {
        // The account's domain's certificate and each sub-server's own.
        let names = std::iter::once(expected.domain.clone()).chain(
            expected
                .subservers
                .iter()
                .filter(|(_, deleting)| !deleting)
                .filter_map(|(name, _)| drover_core::DomainName::parse(name).ok()),
        );
        for name in names {
            if let Some(expiry) = expiries.get(name.as_str()) {
                certificates.push((expected.account, name, *expiry));
            }
        }
        match by_domain.remove(expected.domain.as_str()) {
            Some(usage) => figures.push((expected.account, usage)),
            None => not_listed.push(expected.domain.to_string()),
        }
    }
    let accounts = engine.store.record_usage(server.id, &figures).await?;
    // The same listing shows each certificate's expiry: a renewal by the server shows here.
    engine
        .store
        .record_certificate_expiries(&certificates)
        .await?;
    metrics::gauge!("drover_usage_synced_accounts", "server" => name.clone()).set(accounts as f64);
    Ok(SyncReport {
        server: name,
        accounts,
        not_listed,
    })
}
