//! Customers, as billing knows them.

use serde::{Deserialize, Serialize};

use crate::Error;

/// A customer's details. `external_ref` is billing's own id for the customer, unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomerSpec {
    #[serde(deserialize_with = "de::name")]
    pub name: String,
    #[serde(default, deserialize_with = "de::email")]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "de::external_ref")]
    pub external_ref: Option<String>,
}

impl CustomerSpec {
    pub fn new(name: &str, email: Option<&str>, external_ref: Option<&str>) -> Result<Self, Error> {
        Ok(Self {
            name: check_name(name)?,
            email: email.map(check_email).transpose()?,
            external_ref: external_ref.map(check_external_ref).transpose()?,
        })
    }
}

fn check_name(input: &str) -> Result<String, Error> {
    let name = input.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "customer name",
            input,
            "1 to 200 characters without line breaks",
        ));
    }
    Ok(name.to_owned())
}

fn check_email(input: &str) -> Result<String, Error> {
    let email = input.trim();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.matches('@').count() == 1;
    if valid {
        Ok(email.to_owned())
    } else {
        Err(Error::invalid(
            "email address",
            input,
            "an address like someone@example.ro",
        ))
    }
}

fn check_external_ref(input: &str) -> Result<String, Error> {
    let value = input.trim();
    if value.is_empty() || value.len() > 100 || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            "external reference",
            input,
            "1 to 100 characters without line breaks",
        ));
    }
    Ok(value.to_owned())
}

mod de {
    use serde::{Deserialize, Deserializer, de::Error as _};

    pub(super) fn name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        super::check_name(&String::deserialize(d)?).map_err(D::Error::custom)
    }

    pub(super) fn email<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|e| super::check_email(&e))
            .transpose()
            .map_err(D::Error::custom)
    }

    pub(super) fn external_ref<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<String>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|e| super::check_external_ref(&e))
            .transpose()
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customers_are_checked() {
        let c = CustomerSpec::new(" Ana Pop ", Some("ana@example.ro"), Some("WHMCS-17")).unwrap();
        assert_eq!(c.name, "Ana Pop");
        assert!(CustomerSpec::new("", None, None).is_err());
        assert!(CustomerSpec::new("A", Some("not-an-email"), None).is_err());
        assert!(CustomerSpec::new("A", Some("a@b@c.ro"), None).is_err());
        let err = serde_json::from_str::<CustomerSpec>(r#"{"name":"A","email":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("someone@example.ro"), "{err}");
    }
}
