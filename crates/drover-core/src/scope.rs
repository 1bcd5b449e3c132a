//! What an API token may do.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, TokenId};

/// The scope an API token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Everything.
    Operator,
    /// Customers, services and their lifecycle; reads.
    Billing,
    /// Reads only.
    Readonly,
}

/// The kind of access a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    /// Customers, services, lifecycle moves.
    Billing,
    /// The fleet, plans, tokens: operators only.
    Operator,
}

impl Scope {
    pub const ALL: [Self; 3] = [Self::Operator, Self::Billing, Self::Readonly];

    pub fn allows(self, access: Access) -> bool {
        match self {
            Self::Operator => true,
            Self::Billing => matches!(access, Access::Read | Access::Billing),
            Self::Readonly => access == Access::Read,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Billing => "billing",
            Self::Readonly => "readonly",
        }
    }

    pub fn parse(input: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == input)
            .ok_or_else(|| Error::invalid("scope", input, "one of operator, billing, readonly"))
    }
}

/// Whether token `id` may be revoked: never the last operator token that works, or nobody
/// could use the API as an operator again (`active_operators`: those not revoked).
pub fn check_revocation(id: TokenId, active_operators: &[TokenId]) -> Result<(), Error> {
    if active_operators == [id] {
        return Err(Error::LastOperatorToken { token: id });
    }
    Ok(())
}

/// A token's name as an operator gives it, trimmed: 1 to 100 characters without line breaks.
pub fn token_name(input: &str) -> Result<&str, Error> {
    let name = input.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "token name",
            name,
            "1 to 100 characters without line breaks",
        ));
    }
    Ok(name)
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_operator_token_that_works_is_kept() {
        let (one, two) = (TokenId(1), TokenId(2));
        assert_eq!(check_revocation(one, &[one, two]), Ok(()));
        assert_eq!(
            check_revocation(two, &[one]),
            Ok(()),
            "a token of another scope"
        );
        assert_eq!(check_revocation(one, &[]), Ok(()), "revoked already");
        let refused = check_revocation(two, &[two]).unwrap_err();
        assert!(refused.to_string().contains("create another"), "{refused}");
    }

    #[test]
    fn token_names_are_trimmed_and_one_line() {
        assert_eq!(token_name("  ops-1 "), Ok("ops-1"));
        assert_eq!(token_name(&"x".repeat(100)), Ok("x".repeat(100).as_str()));
        for bad in ["", "   ", "a\nb", &"x".repeat(101)] {
            assert!(token_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scopes_grant_what_they_name() {
        use Access::*;
        let table = [
            (Scope::Operator, [true, true, true]),
            (Scope::Billing, [true, true, false]),
            (Scope::Readonly, [true, false, false]),
        ];
        for (scope, expected) in table {
            let got = [Read, Billing, Operator].map(|a| scope.allows(a));
            assert_eq!(got, expected, "{scope}");
            assert_eq!(Scope::parse(scope.as_str()), Ok(scope));
        }
        assert!(Scope::parse("root").is_err());
    }
}
