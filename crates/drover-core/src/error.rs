use crate::moves::MoveRefusal;
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
    #[error("to {purpose}, repeat its domain {expected} exactly; got '{got}'")]
    ConfirmationMismatch {
        purpose: String,
        expected: String,
        got: String,
    },

    #[error(transparent)]
    MoveRefused(#[from] MoveRefusal),
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
