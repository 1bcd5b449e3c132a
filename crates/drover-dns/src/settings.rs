//! How drover reaches one DNS provider: its kind and that kind's settings, one tagged enum that
//! drover stores as JSON, and [`ProviderSettings::connect`], the one place a client is built.
//! A new provider is a variant here, its client, and its arm in `connect`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::{
    CallBudgets, CloudflareClient, CloudflareSettings, DnsProvider, PowerDnsClient,
    PowerDnsSettings, Result, SharedBudget,
};

/// The kinds of provider drover drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    PowerDns,
    Cloudflare,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PowerDns => "powerdns",
            Self::Cloudflare => "cloudflare",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider's settings, tagged by its kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ProviderSettings {
    /// A PowerDNS server's HTTP API.
    #[serde(rename = "powerdns")]
    PowerDns {
        /// `http://host:8081`.
        api_url: String,
        /// The API's server id; `localhost` unless said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_id: Option<String>,
        /// Where it answers DNS (`host:port`), for consistency checks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
        dns_address: Option<SocketAddr>,
    },
    /// Cloudflare's DNS records API.
    Cloudflare {
        /// `https://api.cloudflare.com/client/v4`.
        api_url: String,
        /// The account new zones are created in.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account_id: Option<String>,
        /// Records per batch: 200 on the free plan, 3,500 on paid plans.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch_size: Option<u32>,
    },
}

/// A call budget shared by every drover process that uses one token: its key (never the token
/// itself), and how many calls fit in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedBudgetScope {
    pub key: String,
    pub limit: u32,
    pub window: Duration,
}

impl ProviderSettings {
    pub fn kind(&self) -> ProviderKind {
        match self {
            Self::PowerDns { .. } => ProviderKind::PowerDns,
            Self::Cloudflare { .. } => ProviderKind::Cloudflare,
        }
    }

    pub fn api_url(&self) -> &str {
        match self {
            Self::PowerDns { api_url, .. } | Self::Cloudflare { api_url, .. } => api_url,
        }
    }

    /// Where the provider answers DNS queries, when drover may ask it directly.
    pub fn dns_address(&self) -> Option<SocketAddr> {
        match self {
            Self::PowerDns { dns_address, .. } => *dns_address,
            Self::Cloudflare { .. } => None,
        }
    }

    /// Checks what the types cannot; the API URL loses its trailing slashes.
    pub fn validated(mut self) -> Result<Self, drover_core::Error> {
        let invalid = |what, input: &str, expected: &str| drover_core::Error::InvalidValue {
            what,
            input: input.to_owned(),
            expected: expected.to_owned(),
        };
        let url = match &mut self {
            Self::PowerDns { api_url, .. } | Self::Cloudflare { api_url, .. } => api_url,
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(invalid("API URL", url, "an http:// or https:// URL"));
        }
        *url = url.trim_end_matches('/').to_owned();
        if let Self::Cloudflare {
            batch_size: Some(0),
            ..
        } = self
        {
            return Err(invalid(
                "batch size",
                "0",
                "at least 1 (200 on Cloudflare's free plan)",
            ));
        }
        Ok(self)
    }

    /// Builds the provider's client with its secret. Cloudflare's calls count against the
    /// token's budget in this process (`budgets`) and across processes (`shared`, given the
    /// token's scope).
    pub fn connect(
        &self,
        secret: SecretString,
        budgets: &CallBudgets,
        shared: &dyn Fn(SharedBudgetScope) -> Arc<dyn SharedBudget>,
    ) -> Result<Arc<dyn DnsProvider>> {
        Ok(match self {
            Self::PowerDns {
                api_url, server_id, ..
            } => {
                let mut settings = PowerDnsSettings::new(api_url, secret);
                if let Some(server_id) = server_id {
                    settings.server_id.clone_from(server_id);
                }
                Arc::new(PowerDnsClient::new(settings)?)
            }
            Self::Cloudflare {
                api_url,
                account_id,
                batch_size,
            } => {
                let mut settings = CloudflareSettings::new(secret);
                settings.api_url.clone_from(api_url);
                settings.account_id.clone_from(account_id);
                if let Some(batch) = batch_size {
                    settings.batch_size = *batch as usize;
                }
                let scope = SharedBudgetScope {
                    key: budget_key(&settings.token),
                    limit: u32::try_from(settings.budget_calls).unwrap_or(u32::MAX),
                    window: settings.budget_window,
                };
                Arc::new(
                    CloudflareClient::new(settings, budgets)?.with_shared_budget(shared(scope)),
                )
            }
        })
    }
}

/// The budget key of a Cloudflare token: `cloudflare:` and the token's SHA-256.
pub fn budget_key(token: &SecretString) -> String {
    format!(
        "cloudflare:{}",
        hex::encode(sha2::Sha256::digest(token.expose_secret().as_bytes()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_json_tagged_by_kind_and_refuse_what_the_kind_does_not_take() {
        let pdns: ProviderSettings = serde_json::from_value(serde_json::json!({
            "kind": "powerdns", "api_url": "http://ns1:8081/", "dns_address": "127.0.0.1:53"
        }))
        .unwrap();
        let pdns = pdns.validated().unwrap();
        assert_eq!(pdns.kind(), ProviderKind::PowerDns);
        assert_eq!(pdns.api_url(), "http://ns1:8081");
        assert_eq!(pdns.dns_address(), Some("127.0.0.1:53".parse().unwrap()));
        assert_eq!(
            serde_json::to_value(&pdns).unwrap(),
            serde_json::json!({"kind": "powerdns", "api_url": "http://ns1:8081", "dns_address": "127.0.0.1:53"})
        );
        let refused = serde_json::from_value::<ProviderSettings>(serde_json::json!({
            "kind": "powerdns", "api_url": "http://ns1:8081", "batch_size": 200
        }))
        .unwrap_err();
        assert!(refused.to_string().contains("batch_size"), "{refused}");
        let unknown = serde_json::from_value::<ProviderSettings>(
            serde_json::json!({"kind": "route53", "api_url": "https://x"}),
        )
        .unwrap_err();
        assert!(unknown.to_string().contains("route53"), "{unknown}");
        let zero = ProviderSettings::Cloudflare {
            api_url: "https://api.cloudflare.com/client/v4".into(),
            account_id: None,
            batch_size: Some(0),
        };
        assert!(zero.validated().is_err());
        let ftp = ProviderSettings::PowerDns {
            api_url: "ftp://ns1".into(),
            server_id: None,
            dns_address: None,
        };
        assert!(ftp.validated().is_err());
    }
}
