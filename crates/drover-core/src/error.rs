use crate::moves::MoveRefusal;
use crate::server::ServerRefusal;
use crate::service::{ServiceStatus, Transition};
use crate::{JobId, ServiceId, TokenId};

/// Everything the domain refuses. Each message says what was wrong and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid domain name '{input}': {reason}")]
    InvalidDomain { input: String, reason: String },

    #[error("invalid {what} '{input}': {expected}")]
    InvalidValue {
        what: &'static str,
        input: String,
        expected: String,
    },

    /// A refused secret: what was expected, never the input.
    #[error("invalid {what}: {expected}")]
    InvalidSecret {
        what: &'static str,
        expected: String,
    },

    #[error(
        "cannot {action} a service that is {from}: {action} moves a service from {allowed} to {to}",
        action = action.verb(), allowed = action.allowed_from_text(), to = action.target()
    )]
    IllegalTransition {
        from: ServiceStatus,
        action: Transition,
    },

    /// A change that loses data or protection was not confirmed by typing the domain.
    #[error("to {purpose}, repeat its {what} {expected} exactly; got '{got}'")]
    ConfirmationMismatch {
        /// What must be repeated: `domain`, `name` (a server's) or `zone name`.
        what: &'static str,
        purpose: String,
        expected: String,
        got: String,
    },

    #[error(transparent)]
    MoveRefused(#[from] MoveRefusal),

    #[error(transparent)]
    ServerRefused(#[from] ServerRefusal),

    #[error(
        "token {token} is the last operator token: revoking it would lock every operator out of \
         the API; create another (drover tokens create --scope operator) and revoke this one \
         with it"
    )]
    LastOperatorToken { token: TokenId },

    #[error("zone {zone} is being removed; its records cannot change")]
    ZoneDeleting { zone: String },

    /// A terminated service's account keeps what it has until it is gone.
    #[error("the service of {domain} is terminated: its {what} no longer change")]
    AccountDeleted { domain: String, what: &'static str },

    /// A mailbox or a database on its way out changes no more.
    #[error("{what} {name} is being deleted: it no longer changes")]
    ResourceDeleting { what: &'static str, name: String },

    /// A resource whose feature the account's plan does not give (mailboxes without mail).
    #[error("plan '{plan}' does not give its accounts the feature {feature}: they have no {what}")]
    FeatureMissing {
        plan: String,
        feature: crate::Feature,
        what: &'static str,
    },

    /// A request past what the account's plan allows.
    #[error("plan '{plan}' allows {limit} {what} per account, and the account has them all")]
    OverLimit {
        what: &'static str,
        plan: String,
        limit: u32,
    },

    /// An adoption that cannot be recorded as it stands (the reason says what to do).
    #[error("adoption refused: {reason}")]
    AdoptionRefused { reason: String },

    /// A terminated service keeps the plan it ended on.
    #[error("service {service} is terminated; its plan can no longer change")]
    PlanFixed { service: ServiceId },

    /// A login link that cannot be handed out.
    #[error("the login link of job {job} is not there: {why}; ask for a new one")]
    LoginLinkGone { job: JobId, why: String },

    /// A plan change that would leave the account with more than the new plan allows.
    #[error(
        "plan '{plan}' is too small for the account ({overruns}); nothing was changed — \
         delete what is over first, or force the change to keep everything and flag the \
         account over its limits"
    )]
    PlanTooSmall { plan: String, overruns: String },

    /// A plan's edit that would leave accounts on it with more than it allows.
    #[error(
        "plan '{plan}' would be too small for {accounts} of its accounts ({examples}); nothing \
         was changed — delete what is over first, or force the change to keep everything and \
         flag those accounts over their limits"
    )]
    PlanEditTooSmall {
        plan: String,
        accounts: usize,
        examples: String,
    },

    /// A backup that cannot be made as things stand.
    #[error("{domain} cannot be backed up: {why}")]
    BackupRefused { domain: String, why: String },

    /// A restore that cannot be made as things stand.
    #[error("{domain} cannot be restored: {why}")]
    RestoreRefused { domain: String, why: String },
    #[error("backup destination {name} cannot be changed so: {why}")]
    DestinationChangeRefused { name: String, why: String },

    /// A planned move that would leave the customers' content behind, not allowed to.
    #[error(
        "{what} would leave the customers' files, mail and databases behind ({why}); nothing \
         was changed — make an SSH host the default backup destination so that moves carry \
         content, or move without it (--without-content, \"without_content\": true) and the \
         accounts start empty on their new servers"
    )]
    ContentWouldStay { what: String, why: String },

    /// A certificate request Let's Encrypt would refuse, or that cannot work as things stand.
    #[error("no certificate can be requested for {domain} now: {why}")]
    CertificateRefused { domain: String, why: String },
}

impl Error {
    /// A refused value; a long one is shown by its start and its length.
    pub(crate) fn invalid(what: &'static str, input: &str, expected: impl Into<String>) -> Self {
        Self::InvalidValue {
            what,
            input: shown(input),
            expected: expected.into(),
        }
    }
}

/// What a message repeats of an input: a long one by its start and its length.
pub(crate) fn shown(input: &str) -> String {
    const SHOWN: usize = 60;
    let chars = input.chars().count();
    if chars > SHOWN + 20 {
        let start: String = input.chars().take(SHOWN).collect();
        format!("{start}… ({chars} characters)")
    } else {
        input.to_owned()
    }
}
