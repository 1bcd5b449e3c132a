//! Domain names as drover stores them: the ASCII (punycode) form, checked once at the boundary.

use std::fmt;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

const MAX_NAME_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

/// A fully qualified domain name that can be hosted: valid IDNA, under a known public suffix,
/// and not a public suffix itself. Held as its lower-case ASCII form (`xn--tiri-pxb.ro`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainName {
    ascii: String,
}

/// Something legal but probably unintended about a domain name, for the caller to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DomainWarning {
    pub code: &'static str,
    pub message: String,
}

impl DomainName {
    /// Parses what an operator or billing typed: Unicode or punycode, any case, with or
    /// without one trailing dot.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidDomain {
            input: crate::error::shown(input),
            reason,
        };
        let trimmed = input.trim();
        let name = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if name.is_empty() {
            return Err(invalid(
                "the name is empty; expected a name like example.ro".into(),
            ));
        }
        for label in name.split('.') {
            check_label_characters(label).map_err(&invalid)?;
        }
        // Lengths are checked below, on the ASCII form, so the message can give the numbers.
        let ascii = Uts46::new()
            .to_ascii(
                name.as_bytes(),
                AsciiDenyList::STD3,
                Hyphens::Check,
                DnsLength::Ignore,
            )
            .map(std::borrow::Cow::into_owned)
            .map_err(|_| {
                invalid(
                    "it is not a valid internationalised domain name (IDNA 2008 / UTS 46); \
                 labels hold letters, digits and hyphens"
                        .into(),
                )
            })?;
        if ascii.len() > MAX_NAME_LEN {
            return Err(invalid(format!(
                "it is {} characters long in ASCII form; at most {MAX_NAME_LEN} are allowed",
                ascii.len()
            )));
        }
        if let Some(label) = ascii.split('.').find(|l| l.len() > MAX_LABEL_LEN) {
            return Err(invalid(format!(
                "the label '{label}' is {} characters long; at most {MAX_LABEL_LEN} are allowed",
                label.len()
            )));
        }
        if !ascii.contains('.') {
            return Err(invalid(
                "it has a single label; expected a name under a public suffix, like example.ro"
                    .into(),
            ));
        }
        let suffix = psl::suffix(ascii.as_bytes())
            .filter(psl::Suffix::is_known)
            .ok_or_else(|| {
                let tld = ascii.rsplit('.').next().unwrap_or_default();
                invalid(format!(
                    "'.{tld}' is not a known public suffix; expected a name under a delegated \
                     top-level domain such as .ro or .com"
                ))
            })?;
        if psl::domain(ascii.as_bytes()).is_none() {
            let suffix = String::from_utf8_lossy(suffix.as_bytes()).into_owned();
            return Err(invalid(format!(
                "'{suffix}' is a public suffix, not a domain that can be registered; \
                 expected a name under it, like example.{suffix}"
            )));
        }
        Ok(Self { ascii })
    }

    /// The lower-case ASCII (punycode) form: what is stored, sent to servers and compared.
    pub fn as_str(&self) -> &str {
        &self.ascii
    }

    /// The form people read: punycode labels decoded.
    pub fn to_unicode(&self) -> String {
        idna::domain_to_unicode(&self.ascii).0
    }

    /// Accepts `typed` as confirming a change that loses data or protection when it is this
    /// domain in any form [`DomainName::parse`] accepts (Unicode or punycode, any case).
    pub fn confirm(&self, typed: &str, purpose: impl FnOnce() -> String) -> Result<(), Error> {
        self.confirm_as("domain", typed, purpose)
    }

    /// As [`DomainName::confirm`], for a name that is called `what` (a zone's name, say).
    pub fn confirm_as(
        &self,
        what: &'static str,
        typed: &str,
        purpose: impl FnOnce() -> String,
    ) -> Result<(), Error> {
        if Self::parse(typed).is_ok_and(|d| d == *self) {
            return Ok(());
        }
        Err(Error::ConfirmationMismatch {
            what,
            purpose: purpose(),
            expected: self.to_unicode(),
            got: crate::error::shown(typed),
        })
    }

    /// Warnings about a valid name: labels that can pass for another name (homographs, Unicode
    /// TR39), and the Romanian cedilla letters ş and ţ, which look like ș and ț (comma below)
    /// but make a different domain.
    pub fn warnings(&self) -> Vec<DomainWarning> {
        let unicode = self.to_unicode();
        let mut warnings = homographs(&unicode);
        warnings.extend(self.cedilla_warning(&unicode));
        warnings
    }

    /// Whether a warning says the name can pass for another (what `DROVER_REFUSE_CONFUSABLE`
    /// refuses).
    pub fn confusable(&self) -> Option<DomainWarning> {
        homographs(&self.to_unicode()).into_iter().next()
    }

    /// Refuses a name that can pass for another, for hosts that want none.
    pub fn refuse_confusable(&self) -> Result<(), Error> {
        match self.confusable() {
            None => Ok(()),
            Some(warning) => Err(Error::InvalidDomain {
                input: self.to_unicode(),
                reason: format!(
                    "{} (names that can pass for others are refused: DROVER_REFUSE_CONFUSABLE)",
                    warning.message
                ),
            }),
        }
    }

    fn cedilla_warning(&self, unicode: &str) -> Option<DomainWarning> {
        if !unicode.contains(['ş', 'ţ']) {
            return None;
        }
        let comma_below: String = unicode
            .chars()
            .map(|c| match c {
                'ş' => 'ș',
                'ţ' => 'ț',
                other => other,
            })
            .collect();
        let alternative = idna::domain_to_ascii_strict(&comma_below).unwrap_or_default();
        Some(DomainWarning {
            code: "cedilla_letters",
            message: format!(
                "'{unicode}' is spelled with ş/ţ (cedilla); Romanian writes ș/ț (comma below), \
                 which is a different domain: '{comma_below}' ({alternative})"
            ),
        })
    }

    /// The first label, the name's most specific part (`shop` for `shop.example.ro`).
    pub fn first_label(&self) -> &str {
        self.ascii.split('.').next().unwrap_or(&self.ascii)
    }
}

/// Labels that can pass for another name: letters of several scripts in one label
/// (`аpple`, a Cyrillic а), or a label of another script that reads as plain ASCII
/// (`аррӏе`), by Unicode TR39's mixed-script check and confusable skeletons.
fn homographs(unicode: &str) -> Vec<DomainWarning> {
    use unicode_security::{MixedScript, skeleton};
    let mut warnings = Vec::new();
    for label in unicode.split('.').filter(|l| !l.is_ascii()) {
        if !label.is_single_script() {
            warnings.push(DomainWarning {
                code: "mixed_script",
                message: format!(
                    "the label '{label}' mixes letters of different scripts, as names made to \
                     pass for others do; check it is the name the customer means"
                ),
            });
            continue;
        }
        let looks_like: String = skeleton(label).collect();
        if looks_like.is_ascii() {
            warnings.push(DomainWarning {
                code: "confusable",
                message: format!(
                    "the label '{label}' is written in another script but reads as \
                     '{looks_like}'; check it is the name the customer means"
                ),
            });
        }
    }
    warnings
}

/// Catches the common ASCII mistakes before IDNA processing, so the message can name them.
fn check_label_characters(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err(
            "it has an empty label (a leading dot or two dots in a row); \
             expected labels separated by single dots"
                .into(),
        );
    }
    if let Some(bad) = label
        .chars()
        .find(|c| c.is_ascii() && !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "the label '{label}' contains '{}'; labels hold letters, digits and hyphens",
            bad.escape_default()
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!(
            "the label '{label}' starts or ends with a hyphen; hyphens are allowed only inside a label"
        ));
    }
    Ok(())
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.ascii)
    }
}

impl std::str::FromStr for DomainName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for DomainName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.ascii)
    }
}

impl<'de> Deserialize<'de> for DomainName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(input: &str) -> String {
        match DomainName::parse(input) {
            Err(Error::InvalidDomain { reason, .. }) => reason,
            other => panic!("{input:?} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn names_that_can_pass_for_others_are_warned_about() {
        let codes = |name: &str| -> Vec<&'static str> {
            DomainName::parse(name)
                .unwrap()
                .warnings()
                .iter()
                .map(|w| w.code)
                .collect()
        };
        // A Cyrillic а in a Latin name; a whole-Cyrillic name that reads as Latin.
        assert_eq!(codes("\u{430}pple.com"), ["mixed_script"]);
        assert_eq!(
            codes("\u{430}\u{440}\u{440}\u{4cf}\u{435}.com"),
            ["confusable"]
        );
        assert!(
            DomainName::parse("\u{430}pple.com")
                .unwrap()
                .confusable()
                .is_some()
        );
        // Romanian, German, Russian and Greek names as their writers spell them are not.
        for name in [
            "știri.ro",
            "țară.ro",
            "bücher.de",
            "пример.рф",
            "παράδειγμα.gr",
            "example.ro",
        ] {
            assert_eq!(codes(name), Vec::<&str>::new(), "{name}");
        }
        assert_eq!(codes("ştiri.ro"), ["cedilla_letters"]);
    }

    #[test]
    fn a_long_refused_name_is_shown_by_its_start_and_length() {
        let long = format!("{}.ro", "a".repeat(100_000));
        let message = DomainName::parse(&long).unwrap_err().to_string();
        assert!(message.len() < 400, "{} bytes", message.len());
        assert!(message.contains("(100003 characters)"), "{message}");
    }

    #[test]
    fn a_confirmation_is_the_domain_in_any_accepted_form_and_nothing_else() {
        let name = DomainName::parse("știri.ro").unwrap();
        for typed in ["știri.ro", "XN--TIRI-PXB.RO", " știri.ro. "] {
            assert_eq!(name.confirm(typed, || unreachable!()), Ok(()), "{typed:?}");
        }
        let long = "x".repeat(5000);
        for typed in ["", "stiri.ro", "știri.ro.ro", long.as_str()] {
            let refused = name
                .confirm(typed, || "delete account 7".into())
                .unwrap_err();
            let Error::ConfirmationMismatch {
                purpose,
                expected,
                got,
                ..
            } = &refused
            else {
                panic!("{typed:?}: {refused:?}");
            };
            assert_eq!(
                (purpose.as_str(), expected.as_str()),
                ("delete account 7", "știri.ro")
            );
            assert!(
                got.len() < 100,
                "the message shows a long input by its length: {got}"
            );
        }
    }

    #[test]
    fn unicode_names_are_stored_as_punycode_and_shown_as_unicode() {
        let name = DomainName::parse("știri.ro").unwrap();
        assert_eq!(name.as_str(), "xn--tiri-pxb.ro");
        assert_eq!(name.to_unicode(), "știri.ro");
        assert!(name.warnings().is_empty());
    }

    #[test]
    fn case_whitespace_and_one_trailing_dot_are_normalised() {
        let name = DomainName::parse("  Example.RO. ").unwrap();
        assert_eq!(name.as_str(), "example.ro");
        assert_eq!(
            DomainName::parse("xn--tiri-pxb.ro").unwrap().as_str(),
            "xn--tiri-pxb.ro"
        );
    }

    #[test]
    fn subdomains_under_a_registrable_domain_are_accepted() {
        assert_eq!(
            DomainName::parse("shop.example.co.uk")
                .unwrap()
                .first_label(),
            "shop"
        );
    }

    #[test]
    fn bad_names_are_refused_with_the_reason() {
        assert!(reason("exa_mple.ro").contains("'_'"));
        assert!(reason("-bad.ro").contains("hyphen"));
        assert!(reason("bad-.ro").contains("hyphen"));
        assert!(reason("a..ro").contains("empty label"));
        assert!(reason(".example.ro").contains("empty label"));
        assert!(reason("example.ro..").contains("empty label"));
        assert!(reason("").contains("empty"));
        assert!(reason(".").contains("empty"));
        assert!(reason("exa mple.ro").contains("' '"));
        assert!(reason(&format!("{}.ro", "a".repeat(64))).contains("at most 63"));
        let long = format!("{}.ro", ["abcdefghij"; 25].join("."));
        assert!(reason(&long).contains("at most 253"));
        assert!(reason("localhost").contains("single label"));
        assert!(reason("example.cmo").contains("not a known public suffix"));
        assert!(reason("co.uk").contains("public suffix"));
    }

    #[test]
    fn cedilla_spellings_are_valid_but_warned_about() {
        let name = DomainName::parse("ştiri.ro").unwrap();
        assert_ne!(name.as_str(), "xn--tiri-pxb.ro");
        let warnings = name.warnings();
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].code, "cedilla_letters");
        assert!(
            warnings[0].message.contains("xn--tiri-pxb.ro"),
            "{:?}",
            warnings[0]
        );
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let name: DomainName = serde_json::from_str("\"știri.ro\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"xn--tiri-pxb.ro\"");
        assert!(serde_json::from_str::<DomainName>("\"-bad.ro\"").is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_is_idempotent(input in "\\PC{0,80}") {
            if let Ok(name) = DomainName::parse(&input) {
                let again = DomainName::parse(name.as_str()).unwrap();
                proptest::prop_assert_eq!(again, name);
            }
        }
    }
}
