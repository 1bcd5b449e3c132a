use std::fmt;

/// What went wrong, as callers decide on it. Decided once, from status codes and the message
/// texts the real server sends; callers never match on text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Wrong credentials (401) or a user not allowed to run the program.
    Auth,
    /// Too many authentication failures: the server blocks this client's address (403).
    LockedOut,
    /// The domain (or user, or parent) named does not exist.
    NotFound,
    /// It exists already (domain, database, user).
    AlreadyExists,
    /// Already in the state asked for (disabling a disabled domain).
    AlreadyInState,
    /// The server refused the request as invalid: bad parameter, unknown program, missing value.
    Invalid,
    /// Refused for going too fast (by the server, a proxy, or drover's own breaker).
    RateLimited,
    /// Network failure, timeout, 5xx: may work if tried again.
    Transient,
    /// An answer drover cannot understand.
    Protocol,
}

impl ErrorKind {
    /// Whether trying the same call again can help. Auth and lock-out never are: retrying
    /// them makes a lock-out longer.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Transient | Self::RateLimited)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::LockedOut => "locked_out",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::AlreadyInState => "already_in_state",
            Self::Invalid => "invalid",
            Self::RateLimited => "rate_limited",
            Self::Transient => "transient",
            Self::Protocol => "protocol",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call that did not succeed, with the server's own words when it gave any.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct VirtualminError {
    pub kind: ErrorKind,
    pub message: String,
}

impl VirtualminError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// The kind of a `failure` the server reported, from its message. The texts are Virtualmin
/// 8.1's (see the captures); anything unrecognised is `Invalid`, which is never retried.
pub fn classify_failure(message: &str) -> ErrorKind {
    let m = message.trim();
    if m.contains("You are already hosting this domain")
        || m.contains("is already associated with this server")
        || m.contains("with the same name and domain already exists")
    {
        ErrorKind::AlreadyExists
    } else if m.ends_with("is already disabled")
        || m.ends_with("is not disabled")
        || m.ends_with("is already enabled")
    {
        ErrorKind::AlreadyInState
    } else if (m.starts_with("Virtual server ")
        && m.trim_end_matches('.').ends_with("does not exist"))
        || (m.starts_with("No user named ") && m.contains(" was found"))
        || m.starts_with("Parent domain does not exist")
    {
        ErrorKind::NotFound
    } else if m.starts_with("You are not allowed") {
        ErrorKind::Auth
    } else {
        ErrorKind::Invalid
    }
}

/// The kind of an `error` (the program itself was refused).
pub fn classify_error(message: &str) -> ErrorKind {
    if message.contains("not allowed to run remote commands") {
        ErrorKind::Auth
    } else {
        ErrorKind::Invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_the_real_server_are_classified() {
        use ErrorKind::*;
        for (message, kind) in [
            ("You are already hosting this domain", AlreadyExists),
            (
                "A database with the same name and type is already associated with this server",
                AlreadyExists,
            ),
            (
                "A user or mail alias with the same name and domain already exists",
                AlreadyExists,
            ),
            (
                "Virtual server beta.test is already disabled",
                AlreadyInState,
            ),
            ("Virtual server beta.test is not disabled", AlreadyInState),
            ("Virtual server nosuch.test does not exist", NotFound),
            ("Virtual server nosuch.test does not exist.", NotFound),
            (
                "No user named nobody-here was found in the server alpha.test",
                NotFound,
            ),
            ("Parent domain does not exist", NotFound),
            (
                "You are not allowed to run this command for virtual server alpha.test",
                Auth,
            ),
            ("Unknown parameter --bogus-flag", Invalid),
            ("Missing password", Invalid),
        ] {
            assert_eq!(classify_failure(message), kind, "{message}");
        }
        assert_eq!(
            classify_error("You are not allowed to run remote commands"),
            Auth
        );
        assert_eq!(classify_error("Remote program x does not exist"), Invalid);
        assert!(!Auth.is_retryable() && !LockedOut.is_retryable() && Transient.is_retryable());
    }
}
