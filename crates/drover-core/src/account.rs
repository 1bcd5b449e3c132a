//! What billing or an operator gives for an account, checked once for every front door: the
//! reason of a suspension and a new password.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use crate::Error;

const MAX_REASON_CHARS: usize = 500;

/// Why a service is suspended: kept on the account and shown on its server (Virtualmin puts
/// it in the domain's "Disabled" line, so it is one line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspendReason(String);

impl SuspendReason {
    pub fn parse(input: &str) -> Result<Self, Error> {
        if input.chars().count() <= MAX_REASON_CHARS && !input.chars().any(char::is_control) {
            Ok(Self(input.to_owned()))
        } else {
            Err(Error::invalid(
                "reason",
                input,
                format!("at most {MAX_REASON_CHARS} characters on one line"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for SuspendReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A hosting account's new password: 8 to 128 characters without line breaks or control
/// characters (Virtualmin takes it on one line). Never shown, not even when refused.
#[derive(Debug, Clone)]
pub struct AccountPassword(SecretString);

impl AccountPassword {
    pub fn parse(input: SecretString) -> Result<Self, Error> {
        let chars = input.expose_secret().chars().count();
        if (8..=128).contains(&chars) && !input.expose_secret().chars().any(char::is_control) {
            Ok(Self(input))
        } else {
            Err(Error::InvalidSecret {
                what: "password",
                expected: "8 to 128 characters, no line breaks or control characters".into(),
            })
        }
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_one_line_of_at_most_500_characters() {
        assert!(SuspendReason::parse("unpaid invoice 1001").is_ok());
        assert!(SuspendReason::parse("").is_ok());
        assert!(SuspendReason::parse(&"ș".repeat(500)).is_ok());
        for bad in ["two\nlines", "nul\0", &"x".repeat(501)] {
            let e = SuspendReason::parse(bad).unwrap_err().to_string();
            assert!(e.contains("at most 500 characters on one line"), "{e}");
        }
        // A long input is shown by its start and its length, not whole.
        let e = SuspendReason::parse(&"y".repeat(100_000))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 200 && e.contains("(100000 characters)"), "{e}");
    }

    #[test]
    fn passwords_are_checked_and_never_echoed() {
        let parse = |p: &str| AccountPassword::parse(SecretString::from(p.to_owned()));
        assert!(parse("N3w-passw0rd").is_ok());
        assert!(parse(&"ș".repeat(128)).is_ok());
        for bad in ["short", "has\nbreak-12", &"x".repeat(129)] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("8 to 128 characters"), "{e}");
            assert!(!e.contains(bad), "the password is not in the message: {e}");
        }
    }
}
