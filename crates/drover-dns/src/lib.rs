//! drover's DNS providers behind one trait ([`DnsProvider`]): PowerDNS servers through their
//! HTTP API and Cloudflare through its DNS records API, with the call budget Cloudflare needs
//! and a DNS query to confirm what a server answers.

mod budget;
mod cloudflare;
mod error;
mod http;
mod powerdns;
mod provider;
mod query;
mod settings;

pub use budget::{BudgetTicket, CallBudget, CallBudgets, SharedBudget};
pub use cloudflare::{CLOUDFLARE_API, CloudflareClient, CloudflareSettings, FREE_BATCH_SIZE};
pub use drover_core::{RecordIds, RecordKey};
pub use error::{DnsError, Result};
pub use powerdns::{DEFAULT_MAX_BODY_BYTES, PowerDnsClient, PowerDnsSettings};
pub use provider::{Applied, DnsProvider, ListedZone, ProviderZone, ZoneRef};
pub use query::{ServedAnswer, query_served};
pub use settings::{ProviderKind, ProviderSettings, SharedBudgetScope, budget_key};
