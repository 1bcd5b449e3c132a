//! The UI's words, one catalogue per language (`locales/*.ftl`, Fluent's message syntax:
//! `key = text` with `{ $name }` placeables), and the locale's way with dates and numbers.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::http::HeaderMap;

/// A language the UI speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ro,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Ro];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ro => "ro",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|l| code.trim().eq_ignore_ascii_case(l.code()))
    }

    /// The operator's choice, else the browser's most preferred language the UI speaks
    /// (`Accept-Language`, by quality), else English.
    pub fn choose(chosen: Option<&str>, headers: &HeaderMap) -> Self {
        if let Some(lang) = chosen.and_then(Self::parse) {
            return lang;
        }
        let accepted = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let mut best: Option<(f32, Lang)> = None;
        for item in accepted.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default().trim();
            let quality = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or_default();
            if let Some(lang) = Self::parse(primary)
                && quality > 0.0
                && best.is_none_or(|(q, _)| quality > q)
            {
                best = Some((quality, lang));
            }
        }
        best.map_or(Lang::En, |(_, lang)| lang)
    }

    pub fn words(self) -> &'static Catalogue {
        match self {
            Lang::En => &EN,
            Lang::Ro => &RO,
        }
    }
}

static EN: LazyLock<Catalogue> =
    LazyLock::new(|| Catalogue::parse(Lang::En, include_str!("../../locales/en.ftl")));
static RO: LazyLock<Catalogue> =
    LazyLock::new(|| Catalogue::parse(Lang::Ro, include_str!("../../locales/ro.ftl")));

/// One language's messages.
#[derive(Debug)]
pub struct Catalogue {
    pub lang: Lang,
    messages: HashMap<String, String>,
}

impl Catalogue {
    /// Reads `key = text` lines; `#` starts a comment. The catalogues are part of the binary and
    /// a test holds them to each other, so a malformed line is a bug, not input.
    pub fn parse(lang: Lang, source: &str) -> Self {
        let messages = source
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let (key, text) = l
                    .split_once(" = ")
                    .unwrap_or_else(|| panic!("{}: not `key = text`: {l}", lang.code()));
                (key.trim().to_owned(), text.trim().to_owned())
            })
            .collect();
        Self { lang, messages }
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.messages.keys().map(String::as_str)
    }

    /// The message `key`; a key missing from the catalogue shows as itself.
    pub fn get<'a>(&'a self, key: &'a str) -> &'a str {
        self.lookup(key).unwrap_or(key)
    }

    /// The message `key`, if the catalogue has it.
    pub fn lookup(&self, key: &str) -> Option<&str> {
        self.messages.get(key).map(String::as_str)
    }

    /// The message `key` with `{ $name }` replaced by each value.
    pub fn with(&self, key: &str, values: &[(&str, &dyn std::fmt::Display)]) -> String {
        let mut text = self.get(key).to_owned();
        for (name, value) in values {
            text = text.replace(&format!("{{ ${name} }}"), &value.to_string());
        }
        text
    }

    /// A whole number with the locale's thousands separator.
    pub fn number(&self, n: impl Into<i64>) -> String {
        let n: i64 = n.into();
        let digits = n.unsigned_abs().to_string();
        let separator = match self.lang {
            Lang::En => ',',
            Lang::Ro => '.',
        };
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(separator);
            }
            grouped.push(c);
        }
        if n < 0 {
            format!("-{grouped}")
        } else {
            grouped
        }
    }

    /// A moment as the locale writes it, in UTC (the fleet's clock).
    pub fn time(&self, at: jiff::Timestamp) -> String {
        let t = at.to_zoned(jiff::tz::TimeZone::UTC);
        let month = usize::try_from(t.month() - 1).unwrap_or_default();
        match self.lang {
            Lang::En => format!(
                "{} {}, {} {:02}:{:02} UTC",
                EN_MONTHS[month],
                t.day(),
                t.year(),
                t.hour(),
                t.minute()
            ),
            Lang::Ro => format!(
                "{} {} {}, {:02}:{:02} UTC",
                t.day(),
                RO_MONTHS[month],
                t.year(),
                t.hour(),
                t.minute()
            ),
        }
    }

    pub fn maybe_time(&self, at: Option<jiff::Timestamp>) -> String {
        at.map_or_else(|| self.get("never").to_owned(), |at| self.time(at))
    }
}

const EN_MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const RO_MONTHS: [&str; 12] = [
    "ian.", "feb.", "mar.", "apr.", "mai", "iun.", "iul.", "aug.", "sept.", "oct.", "nov.", "dec.",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_catalogues_hold_the_same_messages_with_the_same_placeables() {
        let mut en: Vec<&str> = EN.keys().collect();
        let mut ro: Vec<&str> = RO.keys().collect();
        en.sort_unstable();
        ro.sort_unstable();
        assert_eq!(en, ro);
        let placeables = |text: &str| {
            let mut found: Vec<String> = text
                .split("{ $")
                .skip(1)
                .map(|rest| rest.split(' ').next().unwrap_or_default().to_owned())
                .collect();
            found.sort();
            found
        };
        for key in en {
            assert_eq!(placeables(EN.get(key)), placeables(RO.get(key)), "{key}");
        }
    }

    #[test]
    fn every_message_the_templates_ask_for_is_in_the_catalogue() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut asked = Vec::new();
        // Templates ask with `.get("…")`; the handlers with `t.get("…")` and `t.with("…", …)`,
        // the key on a line of its own where rustfmt puts it there.
        for (dir, asks) in [
            ("templates", &[".get("][..]),
            ("src/web", &["t.get(", "t.with("][..]),
        ] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
                for ask in asks {
                    for rest in text.split(ask).skip(1) {
                        let key = rest
                            .trim_start()
                            .strip_prefix('"')
                            .map(|k| k.split('"').next().unwrap_or_default());
                        // A key's own characters only: not an example in a comment.
                        if let Some(key) = key.filter(|k| {
                            k.chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                        }) {
                            asked.push(key.to_owned());
                        }
                    }
                }
            }
        }
        assert!(asked.len() > 20, "{asked:?}");
        assert!(
            asked.iter().any(|k| k == "server-moves-under-way"),
            "handlers are read"
        );
        for key in asked {
            assert!(EN.lookup(&key).is_some(), "missing: {key}");
        }
    }

    #[test]
    fn romanian_uses_comma_below_letters_and_its_own_formats() {
        let ro = Lang::Ro.words();
        let text: String = ro.messages.values().cloned().collect();
        // ş and ţ (with cedilla) are the wrong letters for Romanian.
        assert!(!text.contains(['ş', 'ţ', 'Ş', 'Ţ']));
        assert!(text.contains('ș') && text.contains('ț'));
        assert_eq!(ro.number(100_000), "100.000");
        assert_eq!(Lang::En.words().number(-1_234_567), "-1,234,567");
        let at: jiff::Timestamp = "2026-12-07T09:05:00Z".parse().unwrap();
        assert_eq!(ro.time(at), "7 dec. 2026, 09:05 UTC");
        assert_eq!(Lang::En.words().time(at), "Dec 7, 2026 09:05 UTC");
    }

    #[test]
    fn the_language_is_the_operators_choice_then_the_browsers() {
        let mut headers = HeaderMap::new();
        assert_eq!(Lang::choose(None, &headers), Lang::En);
        headers.insert(
            axum::http::header::ACCEPT_LANGUAGE,
            "de-DE, ro-RO;q=0.8, en;q=0.5".parse().unwrap(),
        );
        assert_eq!(Lang::choose(None, &headers), Lang::Ro);
        assert_eq!(Lang::choose(Some("en"), &headers), Lang::En);
        assert_eq!(Lang::choose(Some("xx"), &headers), Lang::Ro);
    }
}
