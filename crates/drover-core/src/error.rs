use crate::service::{ServiceStatus, Transition};

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

    #[error(
        "cannot {action} a service that is {from}: {action} moves a service from {allowed} to {to}",
        action = action.verb(), allowed = action.allowed_from_text(), to = action.target()
    )]
    IllegalTransition {
        from: ServiceStatus,
        action: Transition,
    },
}

impl Error {
    pub(crate) fn invalid(what: &'static str, input: &str, expected: impl Into<String>) -> Self {
        Self::InvalidValue {
            what,
            input: input.to_owned(),
            expected: expected.into(),
        }
    }
}
