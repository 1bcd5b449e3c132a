//! How a deletion that loses customer data (mail, tables, a web root) was confirmed.

use crate::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// The name, repeated by whoever asked.
    Typed(String),
    /// None typed: the billing system's own cleanup (a cancelled customer's resources), which
    /// an operator allowed.
    BillingCleanup,
}

impl Confirmation {
    /// Holds a typed confirmation to `check`; the billing system's allowed cleanup needs none.
    pub fn check(&self, check: impl FnOnce(&str) -> Result<(), Error>) -> Result<(), Error> {
        match self {
            Self::Typed(typed) => check(typed),
            Self::BillingCleanup => Ok(()),
        }
    }

    /// How it was confirmed, for the audit log.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Typed(_) => "typed",
            Self::BillingCleanup => "billing_cleanup",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_name_is_checked_and_an_allowed_cleanup_is_not() {
        let name = crate::MailboxName::parse("ana").unwrap();
        let typed = |t: &str| Confirmation::Typed(t.into());
        assert_eq!(typed("ana").check(|t| name.confirm(t)), Ok(()));
        assert!(typed("ion").check(|t| name.confirm(t)).is_err());
        assert!(typed("").check(|t| name.confirm(t)).is_err());
        let cleanup = Confirmation::BillingCleanup;
        assert_eq!(cleanup.check(|t| name.confirm(t)), Ok(()));
        assert_eq!(
            (typed("x").as_str(), cleanup.as_str()),
            ("typed", "billing_cleanup")
        );
    }
}
