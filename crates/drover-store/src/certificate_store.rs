//! What drover keeps about accounts' certificates: asked for, issued or failed, the server's
//! own message for the last failure, the failures Let's Encrypt counts, and the expiry the
//! account's server reports. The rules (when to try, what is overdue) are `drover_core`'s.

use async_trait::async_trait;
use drover_core::{AccountId, CertificateState, DomainName, ServerId};
use jiff::Timestamp;
use serde::Serialize;

use crate::{Enqueued, Page, RequestContext, Result};

/// An account's certificate, as drover's records say it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Certificate {
    pub account_id: AccountId,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "ana.ro"))]
    pub domain: DomainName,
    pub server_id: Option<ServerId>,
    pub state: CertificateState,
    /// While requested: why it has not been asked of Let's Encrypt yet (the account's DNS does
    /// not point at its server yet, a wait after failures).
    pub waiting_for: Option<String>,
    /// The server's own message for the last failed request.
    pub last_error: Option<String>,
    /// Failed requests in a row, since the last success.
    pub failures: u32,
    /// The failed requests of the last hour (oldest first), for Let's Encrypt's hourly limit.
    #[serde(skip)]
    pub recent_failures: Vec<Timestamp>,
    /// When drover asks again, after a failure or a wait.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub next_attempt_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub requested_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub issued_at: Option<Timestamp>,
    /// As the account's server last reported it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
    /// Each name the request covers on the server: the account's domain first (its
    /// certificate covers the account's alias domains with websites too), then its
    /// sub-servers, each with a certificate of its own.
    pub names: Vec<CertificateName>,
}

/// One name of a certificate request, as its server last answered for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertificateName {
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "shop.ana.ro"))]
    pub domain: DomainName,
    /// When its server last installed a certificate for it; `None` while it is to be asked.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub issued_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub expires_at: Option<Timestamp>,
    /// The server's own message the last time it was refused.
    pub last_error: Option<String>,
}

impl CertificateName {
    /// Still to be asked of the server.
    pub fn wanted(&self) -> bool {
        self.issued_at.is_none()
    }
}

/// What the server answered for one name in a turn: issued (with the expiry it reports), or
/// refused with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAnswer {
    pub domain: DomainName,
    pub answer: std::result::Result<Option<Timestamp>, String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CertificateFilter {
    pub state: Option<CertificateState>,
    /// Accounts on this server.
    pub server: Option<ServerId>,
    /// Issued certificates that expire before this (the account's domain's, or one of its
    /// sub-servers').
    pub expiring_before: Option<Timestamp>,
    /// By account id.
    pub page: Page,
}

/// What one turn of the requesting job came to.
#[derive(Debug, Clone, PartialEq, Eq)]
/// Each carries the answers for the names asked in the turn (kept per name even when the
/// request changed meanwhile: the server installed what it installed).
pub enum CertificateOutcome {
    /// Not (all) asked yet, and why; the job looks again at `until`.
    Waiting {
        why: String,
        until: Timestamp,
        answers: Vec<NameAnswer>,
    },
    /// Every name is issued and installed; the account's domain's expiry as the server
    /// reports it (`None`: unchanged).
    Issued {
        expires_at: Option<Timestamp>,
        answers: Vec<NameAnswer>,
    },
    /// Let's Encrypt (or the server on its way there) said no for some name; tried again at
    /// `next_attempt_at`.
    Failed {
        message: String,
        next_attempt_at: Timestamp,
        answers: Vec<NameAnswer>,
    },
}

impl CertificateOutcome {
    pub fn answers(&self) -> &[NameAnswer] {
        match self {
            Self::Waiting { answers, .. }
            | Self::Issued { answers, .. }
            | Self::Failed { answers, .. } => answers,
        }
    }
}

#[async_trait]
pub trait CertificateStore: Send + Sync {
    async fn certificate(&self, account: AccountId) -> Result<Option<Certificate>>;
    async fn certificates(&self, filter: CertificateFilter) -> Result<Vec<Certificate>>;
    /// The account's failed requests of the last hour, oldest first (kept even when its
    /// certificate's record is forgotten: Let's Encrypt keeps counting them).
    async fn certificate_failures(&self, account: AccountId) -> Result<Vec<Timestamp>>;
    /// Records that a certificate is wanted for the account's `names` (again, if it has one):
    /// names it held that are not among them are forgotten, new ones are to be asked, and so
    /// are those in `renew`. Queues the job that asks (joining one that waits), audited, in
    /// one transaction.
    async fn request_certificate(
        &self,
        ctx: &RequestContext,
        account: AccountId,
        names: &[DomainName],
        renew: &[DomainName],
    ) -> Result<(Certificate, Enqueued)>;
    /// Records what the requesting job's turn came to, audited when it is an answer of the
    /// server. A failure always counts against Let's Encrypt's limit; the certificate's record
    /// changes only if it was not asked for again (or forgotten) since `asked_at`, its
    /// `requested_at` when the turn began: then `None` is returned.
    async fn record_certificate(
        &self,
        ctx: &RequestContext,
        account: AccountId,
        asked_at: Timestamp,
        outcome: &CertificateOutcome,
    ) -> Result<Option<Certificate>>;
    /// Records the expiry a server's listing shows for its accounts' issued certificates
    /// (renewed by the server, or not), by account and name (its domain, a sub-server).
    /// Returns how many accounts' own changed.
    async fn record_certificate_expiries(
        &self,
        expiries: &[(AccountId, DomainName, Timestamp)],
    ) -> Result<usize>;
    /// Drops the names of the account's certificate request that are not among `names` (a
    /// sub-server gone); nothing else of the request changes.
    async fn keep_certificate_names(&self, account: AccountId, names: &[DomainName]) -> Result<()>;
    /// Forgets the account's certificate record (nothing changes on the server), audited.
    /// Returns whether there was one.
    async fn forget_certificate(&self, ctx: &RequestContext, account: AccountId) -> Result<bool>;
}
