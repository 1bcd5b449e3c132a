//! Row ids as distinct types, so a server id can never be passed where an account id belongs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta] $name:ident),+ $(,)?) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = crate::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().parse::<i64>() {
                    Ok(n) if n > 0 => Ok(Self(n)),
                    _ => Err(crate::Error::invalid(
                        stringify!($name),
                        s,
                        "a positive whole number",
                    )),
                }
            }
        }
    )+};
}

id_type!(
    /// A customer of the hosting business.
    CustomerId,
    /// A hosting plan.
    PlanId,
    /// A Virtualmin server of the fleet.
    ServerId,
    /// A service sold by billing.
    ServiceId,
    /// The hosting account that carries out a service.
    AccountId,
    /// An API token.
    TokenId,
    /// One row of the audit chain.
    AuditEventId,
    /// A River job.
    JobId,
    /// A DNS zone drover keeps.
    ZoneId,
    /// A DNS provider: one PowerDNS server or one Cloudflare account.
    DnsProviderId,
    /// A place backups go.
    BackupDestinationId,
    /// One backup of one account.
    BackupId,
    /// A place drover's events are sent (billing's or monitoring's webhook receiver).
    WebhookEndpointId,
    /// One event drover recorded, the same for every endpoint it is sent to.
    EventId,
    /// One event's delivery to one endpoint.
    DeliveryId,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_positive_numbers_only() {
        assert_eq!("42".parse::<ServerId>(), Ok(ServerId(42)));
        assert!("0".parse::<ServerId>().is_err());
        assert!("-3".parse::<AccountId>().is_err());
        let err = "abc".parse::<PlanId>().unwrap_err().to_string();
        assert!(
            err.contains("PlanId") && err.contains("positive whole number"),
            "{err}"
        );
    }
}
