//! The Virtualmin remote.cgi client: the settings every client is built from (validated when
//! drover starts), the reading of every kind of answer the server gives, and the error
//! taxonomy callers decide on.

mod breaker;
mod client;
mod domain;
mod error;
mod limit;
mod operations;
mod plans;
mod reply;
mod request;
mod settings;
mod ssh;
mod tls;

pub use breaker::{BreakerConfig, BreakerState};
pub use client::{
    CallPacer, CallRecord, CallScope, Endpoint, LoginRefusedHook, VirtualminClient, in_scope,
};
pub use domain::{
    Disabled, DomainDatabase, DomainInfo, DomainKind, DomainUser, PasswordHash, Quota,
};
pub use error::{
    ErrorKind, VirtualminError, classify_answer, classify_error, classify_failure, failure_message,
    is_dependency_failure, is_log_line, is_step_failure,
};
pub use operations::{DomainChange, MailboxPassword, NewDomain, Placement, SshLogin};
pub use plans::{PlanPresence, PlanSync, ServerPlan};
pub use reply::{Record, Reply, parse_reply, parse_text_output, text_records};
pub use request::{Call, OperationClass, Repeat};
pub use settings::{Timeouts, VirtualminSettings};
pub use ssh::{CommandOutput, PinnedHostKey, SshAccess, SshShell, SshVirtualmin};
pub use tls::{PresentedCertificate, TlsPolicy, client_config, fingerprint, presented_certificate};
