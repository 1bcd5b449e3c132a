//! Turns whatever remote.cgi answered (JSON, XML or plain text; success, failure or error) into
//! one result. The facts encoded here come from the captures of a real Virtualmin 8.1 server:
//! every API-level outcome is HTTP 200; a refused program is `status: error` served as
//! text/plain; wrong credentials are 401 and a blocked client 403; text answers end with
//! `Exit status: N`.

use quick_xml::events::Event;

use crate::error::{
    ErrorKind, VirtualminError, classify_answer, classify_error, is_log_line, is_step_failure,
};

/// One entry of a list answer: a domain, user, plan, … with its named values. Keys are those
/// of the JSON form (`home_directory`, `server-side_includes`); text keys are brought to that
/// form. A key may repeat (JSON gives lists). All fields live in one buffer, so a list of
/// 10,000 domains parses with a few allocations per domain rather than one per field.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    text: String,
    fields: Vec<Field>,
}

/// Where a field's key and value sit in the record's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Field {
    key: (u32, u32),
    value: (u32, u32),
}

impl Record {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// A record sized for a Virtualmin domain (50 to 80 fields, 2 to 3 KB of text).
    fn for_domain(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: String::with_capacity(2048),
            fields: Vec::with_capacity(64),
        }
    }

    /// An empty record with the room `other` took and a little more (names and values
    /// differ in length): filling it rarely moves it.
    fn sized_as(name: impl Into<String>, other: &Record) -> Self {
        Self {
            name: name.into(),
            text: String::with_capacity(other.text.len() + 128),
            fields: Vec::with_capacity(other.fields.len() + 4),
        }
    }

    /// Gives back the room `for_domain` or `sized_as` reserved and was not used: lists of thousands of
    /// records are held whole while a scan or an adoption reads them.
    fn finished(mut self) -> Self {
        self.text.shrink_to_fit();
        self.fields.shrink_to_fit();
        self
    }

    fn span(&mut self, text: &str) -> (u32, u32) {
        let start = self.text.len();
        self.text.push_str(text);
        (start as u32, self.text.len() as u32)
    }

    fn slice(&self, (start, end): (u32, u32)) -> &str {
        &self.text[start as usize..end as usize]
    }

    /// Adds a value under `key`.
    pub fn push(&mut self, key: &str, value: &str) {
        let key = self.span(key);
        let value = self.span(value);
        self.fields.push(Field { key, value });
    }

    /// The first value of `key`, if the server reported it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| self.slice(f.key) == key)
            .map(|f| self.slice(f.value))
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// All fields, in the order the server sent them.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .map(|f| (self.slice(f.key), self.slice(f.value)))
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("name", &self.name)
            .field("fields", &MaskedFields(self))
            .finish()
    }
}

/// Shows a record's fields with the values of secret ones (passwords, hashed or not) replaced.
pub(crate) struct MaskedFields<'a>(pub &'a Record);

impl std::fmt::Debug for MaskedFields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (key, value) in self.0.fields() {
            if crate::domain::is_secret_field(key) {
                map.entry(&key, &"***");
            } else {
                map.entry(&key, &value);
            }
        }
        map.finish()
    }
}

/// A successful answer: list entries, or a program's output text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub records: Vec<Record>,
    pub output: String,
    /// Steps the program reported as failed though it answered success (`.. MariaDB
    /// database failed : …`, `.. MariaDB user does not exist!`), trimmed; empty on a clean
    /// success.
    pub step_failures: Vec<String>,
    /// Timestamped warnings the server printed on stderr into the answer (`[03/Dec/2026:…]
    /// [127.0.0.1] Failed to …`), whole; in a list answer they are not records.
    pub warnings: Vec<String>,
}

impl Reply {
    /// A success: keeps the real records, moves stray warning lines out of them, and picks
    /// the failed steps and warnings out of the output.
    fn success(records: Vec<Record>, output: String) -> Self {
        let mut warnings = Vec::new();
        let records = records
            .into_iter()
            .filter(|r| {
                if is_log_line(&r.name) {
                    warnings.push(match r.get("value") {
                        Some(rest) => format!("{}:{rest}", r.name),
                        None => r.name.clone(),
                    });
                    false
                } else {
                    true
                }
            })
            .collect();
        let mut step_failures = Vec::new();
        for line in lines(&output) {
            // Only a line starting with '[' or '.' can be either (a quick test: a list is
            // hundreds of thousands of lines). A vertical tab or a non-ASCII byte first may be
            // whitespace the full tests trim, so those lines get them too.
            if !matches!(
                line.trim_ascii_start().bytes().next(),
                Some(b'[' | b'.' | 0x0B | 0x80..)
            ) {
                continue;
            }
            if is_log_line(line) {
                warnings.push(line.trim().to_owned());
            } else if is_step_failure(line) {
                step_failures.push(line.trim().to_owned());
            }
        }
        Self {
            records,
            output,
            step_failures,
            warnings,
        }
    }
}

fn failed(error: &str, full: Option<&str>) -> VirtualminError {
    let (kind, message) = classify_answer(error, full.unwrap_or(error));
    VirtualminError {
        program_failed: true,
        output: full.map(str::to_owned),
        ..VirtualminError::new(kind, message)
    }
}

/// Parses an answer. `status` is the HTTP status code; `body` the raw bytes, taken so that a
/// text answer becomes the reply's output without a copy (a list's is tens of megabytes).
pub fn parse_reply(status: u16, body: Vec<u8>) -> Result<Reply, VirtualminError> {
    match status {
        200 => {}
        401 => {
            return Err(VirtualminError::new(
                ErrorKind::Auth,
                "wrong user name or password (HTTP 401)",
            ));
        }
        403 => {
            return Err(VirtualminError::new(
                ErrorKind::LockedOut,
                "the server blocks this client after too many failed logins (HTTP 403); wait \
                 for the block to expire and fix the credentials",
            ));
        }
        429 => {
            return Err(VirtualminError::new(
                ErrorKind::RateLimited,
                "too many requests (HTTP 429)",
            ));
        }
        300..=399 => {
            return Err(VirtualminError::new(
                ErrorKind::Protocol,
                format!(
                    "the server redirected (HTTP {status}): is plain HTTP being sent to its TLS port?"
                ),
            ));
        }
        500..=599 => {
            return Err(VirtualminError::new(
                ErrorKind::Transient,
                format!("server error (HTTP {status})"),
            ));
        }
        other => {
            return Err(VirtualminError::new(
                ErrorKind::Protocol,
                format!("unexpected HTTP status {other}"),
            ));
        }
    }
    let text = String::from_utf8(body)
        .map_err(|_| VirtualminError::new(ErrorKind::Protocol, "the answer is not UTF-8 text"))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        parse_json(trimmed)
    } else if trimmed.starts_with("<api") || trimmed.starts_with("<?xml") {
        parse_xml(trimmed)
    } else {
        parse_text(text)
    }
}

fn protocol(what: impl std::fmt::Display) -> VirtualminError {
    VirtualminError::new(ErrorKind::Protocol, format!("unreadable answer: {what}"))
}

fn parse_json(text: &str) -> Result<Reply, VirtualminError> {
    #[derive(serde::Deserialize)]
    struct Body {
        status: Option<String>,
        error: Option<String>,
        full_error: Option<String>,
        output: Option<String>,
        data: Option<Vec<Record>>,
    }
    let body: Body = serde_json::from_str(text).map_err(protocol)?;
    let message = || body.error.clone().unwrap_or_default();
    match body.status.as_deref() {
        Some("success") => Ok(Reply::success(
            body.data.unwrap_or_default(),
            body.output.unwrap_or_default(),
        )),
        Some("failure") => Err(failed(&message(), body.full_error.as_deref())),
        Some("error") => Err(VirtualminError::new(classify_error(&message()), message())),
        other => Err(protocol(format!("status {other:?}"))),
    }
}

/// Reads `{"name": …, "values": {"key": ["value", …], …}}` straight into a record's buffer,
/// borrowing from the input where it can.
impl<'de> serde::Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};

        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = Record;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list entry with a name and values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
                let mut record = Record::for_domain(String::new());
                let mut named = false;
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match &*key.0 {
                        "name" => {
                            record.name = map.next_value::<Text<'de>>()?.0.into_owned();
                            named = true;
                        }
                        "values" => map.next_value_seed(ValuesSeed(&mut record))?,
                        // A top-level `Key: value` line of a list's output (stray warnings
                        // split at their first ':', or get-ssl's attributes).
                        "value" => {
                            let value = map.next_value::<Text<'de>>()?;
                            record.push("value", &value.0);
                        }
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                if named {
                    Ok(record.finished())
                } else {
                    Err(A::Error::custom("a list entry has no name"))
                }
            }
        }
        deserializer.deserialize_map(EntryVisitor)
    }
}

/// A string that borrows from the input when it has no escapes.
struct Text<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> serde::de::Visitor<'de> for TextVisitor {
            type Value = Text<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(v)))
            }

            fn visit_i64<E>(self, v: i64) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(v.to_string())))
            }

            fn visit_u64<E>(self, v: u64) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(v.to_string())))
            }

            fn visit_f64<E>(self, v: f64) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(v.to_string())))
            }

            fn visit_bool<E>(self, v: bool) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Owned(v.to_string())))
            }

            fn visit_unit<E>(self) -> Result<Text<'de>, E> {
                Ok(Text(std::borrow::Cow::Borrowed("")))
            }
        }
        deserializer.deserialize_any(TextVisitor)
    }
}

/// The `values` object: each key with a list of strings (or one string).
struct ValuesSeed<'r>(&'r mut Record);

impl<'de> serde::de::DeserializeSeed<'de> for ValuesSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ValuesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object of value lists")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Text<'de>>()? {
            map.next_value_seed(ListSeed {
                record: &mut *self.0,
                key: &key.0,
            })?;
        }
        Ok(())
    }
}

struct ListSeed<'r, 'k> {
    record: &'r mut Record,
    key: &'k str,
}

impl<'de> serde::de::DeserializeSeed<'de> for ListSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ListSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of strings or a string")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(value) = seq.next_element::<Text<'de>>()? {
            self.record.push(self.key, &value.0);
        }
        Ok(())
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        self.record.push(self.key, v);
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.record.push(self.key, v);
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.record.push(self.key, &v.to_string());
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.record.push(self.key, &v.to_string());
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.record.push(self.key, "");
        Ok(())
    }
}

fn parse_xml(text: &str) -> Result<Reply, VirtualminError> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut status = None;
    let mut error = String::new();
    let mut full_error = None;
    let mut output = String::new();
    let mut records: Vec<Record> = Vec::new();
    // Where we are: inside <data>, inside <values>, inside a value element.
    let mut in_values = false;
    let mut current_key: Option<String> = None;
    let mut current_text = String::new();
    loop {
        let event = reader.read_event().map_err(protocol)?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let tag = e.name().as_ref().to_owned();
                let attribute = |name: &str| -> Result<Option<String>, VirtualminError> {
                    for attr in e.attributes() {
                        let attr = attr.map_err(protocol)?;
                        if attr.key.as_ref() == name {
                            // Unescaped but not normalised: output text keeps its line breaks.
                            return quick_xml::escape::unescape(&attr.value)
                                .map(|v| Some(v.into_owned()))
                                .map_err(protocol);
                        }
                    }
                    Ok(None)
                };
                match tag.as_str() {
                    "api" => {
                        status = attribute("status")?;
                        error = attribute("error")?.unwrap_or_default();
                        full_error = attribute("full_error")?;
                        output = attribute("output")?.unwrap_or_default();
                    }
                    "data" => {
                        let mut record = Record::new(attribute("name")?.unwrap_or_default());
                        if let Some(value) = attribute("value")? {
                            record.push("value", &value);
                        }
                        records.push(record);
                    }
                    "values" => in_values = matches!(event, Event::Start(_)),
                    key if in_values => {
                        current_text.clear();
                        if matches!(event, Event::Empty(_)) {
                            push_value(&mut records, key.to_owned(), String::new())?;
                        } else {
                            current_key = Some(key.to_owned());
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(t) if current_key.is_some() => {
                current_text.push_str(&t.xml_content(quick_xml::XmlVersion::Implicit1_0));
            }
            Event::GeneralRef(r) if current_key.is_some() => {
                if let Some(c) = r.resolve_char_ref().map_err(protocol)? {
                    current_text.push(c);
                } else {
                    let resolved = quick_xml::escape::resolve_predefined_entity(&r)
                        .ok_or_else(|| protocol(format!("unknown entity &{};", &*r)))?;
                    current_text.push_str(resolved);
                }
            }
            Event::CData(t) if current_key.is_some() => current_text.push_str(&t),
            Event::End(e) => {
                let tag = e.name().as_ref().to_owned();
                if tag == "values" {
                    in_values = false;
                } else if current_key.as_deref() == Some(tag.as_str()) {
                    let key = current_key.take().unwrap_or_default();
                    push_value(&mut records, key, std::mem::take(&mut current_text))?;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    match status.as_deref() {
        Some("success") => Ok(Reply::success(records, output)),
        Some("failure") => Err(failed(&error, full_error.as_deref())),
        Some("error") => Err(VirtualminError::new(classify_error(&error), error)),
        other => Err(protocol(format!("XML status {other:?}"))),
    }
}

fn push_value(records: &mut [Record], key: String, value: String) -> Result<(), VirtualminError> {
    let record = records
        .last_mut()
        .ok_or_else(|| protocol("a value outside any <data>"))?;
    record.push(&key, &value);
    Ok(())
}

const USAGE_START: &str = "This CGI is designed to be invoked by other programs";

/// Reads what the `virtualmin` command printed and how it exited (over SSH) as remote.cgi's
/// text answer, which is that output with an `Exit status:` line.
pub fn parse_text_output(output: &str, exit_status: u32) -> Result<Reply, VirtualminError> {
    parse_text(format!(
        "{}\nExit status: {exit_status}\n",
        output.trim_end()
    ))
}

fn parse_text(mut text: String) -> Result<Reply, VirtualminError> {
    let body = text.trim_end();
    if let Some(message) = body.trim_start().strip_prefix("ERROR:") {
        let message = message.trim().to_owned();
        return Err(VirtualminError::new(classify_error(&message), message));
    }
    if body.trim_start().starts_with(USAGE_START) {
        return Err(VirtualminError::new(
            ErrorKind::Invalid,
            "the server answered with its usage text: no program parameter reached it",
        ));
    }
    let (output, last_line) = match body.rsplit_once('\n') {
        Some((rest, last)) => (rest, last),
        None => ("", body),
    };
    let code = last_line
        .trim()
        .strip_prefix("Exit status:")
        .and_then(|c| c.trim().parse::<i64>().ok())
        .ok_or_else(|| protocol("a text answer without its closing 'Exit status' line"))?;
    if code == 0 {
        // `output` is a prefix of `text`: truncated, the text is the output, with no copy.
        let output = output.len();
        text.truncate(output);
        return Ok(Reply::success(Vec::new(), text));
    }
    // The message is the first line (the program's usage text follows it), unless the whole
    // output names another cause.
    let first = output
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("the program failed without a message");
    Err(failed(first, Some(output)))
}

/// Reads the text form of a `multiline` list: an unindented name, then indented `Key: value`
/// lines. Keys are brought to the JSON form (lower case, spaces as underscores).
pub fn text_records(output: &str) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::new();
    let mut record: Option<Record> = None;
    // The entries of a list carry the same labels in the same order: a label's key is worked
    // out where it first appears at its place and reused there (working each out had been a
    // fifth of a 10,000-domain list's parse).
    let mut keys: Vec<(&str, String)> = Vec::new();
    for line in lines(output) {
        let content = line.trim_ascii();
        if content.is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            // A warning printed on stderr is not an entry.
            if !is_log_line(content) {
                // The entries of a list are alike: each is given the room the last one took.
                let next = match &record {
                    Some(last) => Record::sized_as(content, last),
                    None => Record::for_domain(content),
                };
                records.extend(record.replace(next).map(Record::finished));
            }
            continue;
        }
        let Some(record) = record.as_mut() else {
            continue;
        };
        if let Some(colon) = memchr::memchr(b':', content.as_bytes()) {
            let label = content[..colon].trim_ascii_end();
            let at = record.len();
            if keys.get(at).is_none_or(|(known, _)| *known != label) {
                let key = (label, json_key(label));
                match keys.get_mut(at) {
                    Some(slot) => *slot = key,
                    None => keys.push(key),
                }
            }
            record.push(&keys[at].1, content[colon + 1..].trim_ascii());
        }
    }
    records.extend(record.map(Record::finished));
    records
}

/// A text label in the JSON key form: `Server-side includes` is `server-side_includes`.
fn json_key(label: &str) -> String {
    label.to_lowercase().replace(' ', "_")
}

/// The lines of `text` as `str::lines` gives them. A 10,000-domain list is some 800,000 short
/// lines; finding their ends with the SIMD `memchr` takes a fraction of the generic
/// searcher's time per line, which had been most of the parse.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    memchr::memchr_iter(b'\n', text.as_bytes())
        .chain((!text.is_empty() && !text.ends_with('\n')).then_some(text.len()))
        .map(move |end| {
            let line = &text[start..end];
            start = end + 1;
            // Only a line break is `\r\n`: a last line's own `\r` stays, as in `str::lines`.
            if end < text.len() {
                line.strip_suffix('\r').unwrap_or(line)
            } else {
                line
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_records_take_the_json_key_form() {
        let records = text_records(
            "alpha.test\n    Server-side includes: Global default\n    ID: 17\nbeta.test\n    ID: 18\n",
        );
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0].get("server-side_includes"),
            Some("Global default")
        );
        assert_eq!(records[1].get("id"), Some("18"));
    }

    #[test]
    fn lines_are_split_as_str_lines_splits_them() {
        for text in [
            "",
            "\n",
            "a",
            "a\n",
            "a\nb",
            "a\r\nb\r\n",
            "\n\na\n\n",
            "a\r",
            "\r\n",
            "é\nü",
        ] {
            assert_eq!(
                lines(text).collect::<Vec<_>>(),
                text.lines().collect::<Vec<_>>(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn warnings_and_failed_steps_are_found_after_any_whitespace() {
        let reply = parse_text_output(
            "\u{b}.. MariaDB database failed : gone\n\u{a0}[03/Dec/2026:10:00:00 +0000] warned\n  fine",
            0,
        )
        .unwrap();
        assert_eq!(reply.step_failures, [".. MariaDB database failed : gone"]);
        assert_eq!(reply.warnings, ["[03/Dec/2026:10:00:00 +0000] warned"]);
    }

    #[test]
    fn garbage_is_a_protocol_error_not_a_panic() {
        for body in [
            &b"\xff\xfe"[..],
            b"{not json",
            b"<api status=",
            b"hello",
            b"",
        ] {
            let err = parse_reply(200, body.to_vec()).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Protocol, "{body:?}: {err}");
        }
    }

    /// The text list read the plain way: every line split and every label worked out anew.
    fn text_records_read_plainly(output: &str) -> Vec<(String, Vec<(String, String)>)> {
        let mut records: Vec<(String, Vec<(String, String)>)> = Vec::new();
        for line in output.lines() {
            let content = line.trim_ascii();
            if content.is_empty() {
                continue;
            }
            if !line.starts_with(' ') {
                if !is_log_line(content) {
                    records.push((content.to_owned(), Vec::new()));
                }
            } else if let Some((_, fields)) = records.last_mut()
                && let Some((label, value)) = content.split_once(':')
            {
                fields.push((
                    json_key(label.trim_ascii_end()),
                    value.trim_ascii().to_owned(),
                ));
            }
        }
        records
    }

    proptest::proptest! {
        #[test]
        fn text_records_read_as_the_plain_way_reads_them(
            entries in proptest::collection::vec(
                ("[a-z]{1,8}\\.test",
                 // A line of another kind after the name: none, blank, a warning, no colon.
                 "(|\\t|\\[03/Dec/2026:10:00:00 \\+0000\\] warned: x|    no colon here|  \\tID : tabbed)",
                 proptest::collection::vec(
                    ("(ID|Type|Server-side includes|Disabled|Features|Web root|Ünicode Label)",
                     "[ -~]{0,12}"),
                    0..6,
                )),
                0..6,
            ),
            line_break in "(\\n|\\r\\n)",
        ) {
            let mut output = String::new();
            for (name, other, fields) in &entries {
                output.push_str(name);
                output.push_str(&line_break);
                output.push_str(other);
                output.push_str(&line_break);
                for (label, value) in fields {
                    output.push_str(&format!("    {label}: {value}{line_break}"));
                }
            }
            let read: Vec<(String, Vec<(String, String)>)> = text_records(&output)
                .iter()
                .map(|r| {
                    let fields = r.fields().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
                    (r.name.clone(), fields)
                })
                .collect();
            proptest::prop_assert_eq!(read, text_records_read_plainly(&output));
        }

        #[test]
        fn the_parser_never_panics(status in 0u16..600, body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_reply(status, body);
        }

        #[test]
        fn the_parser_never_panics_on_near_valid_text(body in "(\\{|<api |ERROR:|Exit status: )?[ -~\\n]{0,300}") {
            let _ = parse_reply(200, body.clone().into_bytes());
            let _ = text_records(&body);
        }

        #[test]
        fn lines_match_str_lines(text in "[a \\r\\n]{0,40}") {
            proptest::prop_assert_eq!(lines(&text).collect::<Vec<_>>(), text.lines().collect::<Vec<_>>());
        }
    }
}
