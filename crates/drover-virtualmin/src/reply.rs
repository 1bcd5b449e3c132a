//! Turns whatever remote.cgi answered (JSON, XML or plain text; success, failure or error) into
//! one result. The facts encoded here come from the captures of a real Virtualmin 8.1 server:
//! every API-level outcome is HTTP 200; a refused program is `status: error` served as
//! text/plain; wrong credentials are 401 and a blocked client 403; text answers end with
//! `Exit status: N`.

use std::collections::BTreeMap;

use quick_xml::events::Event;

use crate::error::{ErrorKind, VirtualminError, classify_error, classify_failure};

/// One entry of a list answer: a domain, user, plan, … with its named values. Keys are those of
/// the JSON form (`home_directory`, `server-side_includes`); text keys are brought to that form.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub values: BTreeMap<String, Vec<String>>,
}

impl Record {
    /// The first value of `key`, if the server reported it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .and_then(|v| v.first())
            .map(String::as_str)
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("name", &self.name)
            .field("values", &MaskedFields(&self.values))
            .finish()
    }
}

/// Shows fields with the values of secret ones (passwords, hashed or not) replaced.
pub(crate) struct MaskedFields<'a>(pub &'a BTreeMap<String, Vec<String>>);

impl std::fmt::Debug for MaskedFields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (key, values) in self.0 {
            if crate::domain::is_secret_field(key) {
                map.entry(key, &"***");
            } else {
                map.entry(key, values);
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
}

/// Parses an answer. `status` is the HTTP status code; `body` the raw bytes.
pub fn parse_reply(status: u16, body: &[u8]) -> Result<Reply, VirtualminError> {
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
    let text = std::str::from_utf8(body)
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
        output: Option<String>,
        data: Option<serde_json::Value>,
    }
    let body: Body = serde_json::from_str(text).map_err(protocol)?;
    let message = || body.error.clone().unwrap_or_default();
    match body.status.as_deref() {
        Some("success") => {}
        Some("failure") => {
            return Err(VirtualminError::new(
                classify_failure(&message()),
                message(),
            ));
        }
        Some("error") => return Err(VirtualminError::new(classify_error(&message()), message())),
        other => return Err(protocol(format!("status {other:?}"))),
    }
    let records = match body.data {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(json_record)
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(protocol(format!("data is {other}, expected a list"))),
    };
    Ok(Reply {
        records,
        output: body.output.unwrap_or_default(),
    })
}

fn json_record(item: serde_json::Value) -> Result<Record, VirtualminError> {
    use serde_json::Value;
    let Value::Object(mut object) = item else {
        return Err(protocol("a list entry is not an object"));
    };
    let name = match object.remove("name") {
        Some(Value::String(name)) => name,
        _ => return Err(protocol("a list entry has no name")),
    };
    let mut values = BTreeMap::new();
    if let Some(Value::Object(map)) = object.remove("values") {
        for (key, value) in map {
            let list = match value {
                Value::Array(items) => items.into_iter().map(json_text).collect(),
                other => vec![json_text(other)],
            };
            values.insert(key, list);
        }
    }
    Ok(Record { name, values })
}

fn json_text(value: serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

fn parse_xml(text: &str) -> Result<Reply, VirtualminError> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut status = None;
    let mut error = String::new();
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
                        output = attribute("output")?.unwrap_or_default();
                    }
                    "data" => records.push(Record {
                        name: attribute("name")?.unwrap_or_default(),
                        values: BTreeMap::new(),
                    }),
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
        Some("success") => Ok(Reply { records, output }),
        Some("failure") => Err(VirtualminError::new(classify_failure(&error), error)),
        Some("error") => Err(VirtualminError::new(classify_error(&error), error)),
        other => Err(protocol(format!("XML status {other:?}"))),
    }
}

fn push_value(records: &mut [Record], key: String, value: String) -> Result<(), VirtualminError> {
    let record = records
        .last_mut()
        .ok_or_else(|| protocol("a value outside any <data>"))?;
    record.values.entry(key).or_default().push(value);
    Ok(())
}

const USAGE_START: &str = "This CGI is designed to be invoked by other programs";

fn parse_text(text: &str) -> Result<Reply, VirtualminError> {
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
        return Ok(Reply {
            records: Vec::new(),
            output: output.to_owned(),
        });
    }
    // The message is the first line; the program's usage text follows it.
    let message = output
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("the program failed without a message")
        .to_owned();
    Err(VirtualminError::new(classify_failure(&message), message))
}

/// Reads the text form of a `multiline` list: an unindented name, then indented `Key: value`
/// lines. Keys are brought to the JSON form (lower case, spaces as underscores).
pub fn text_records(output: &str) -> Vec<Record> {
    let mut records: Vec<Record> = Vec::new();
    for line in output.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            records.push(Record {
                name: line.trim().to_owned(),
                values: BTreeMap::new(),
            });
            continue;
        }
        let Some(record) = records.last_mut() else {
            continue;
        };
        let (key, value) = match line.trim().split_once(':') {
            Some((key, value)) => (key, value.trim()),
            None => continue,
        };
        let key = key.trim().to_lowercase().replace(' ', "_");
        record.values.entry(key).or_default().push(value.to_owned());
    }
    records
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
    fn garbage_is_a_protocol_error_not_a_panic() {
        for body in [
            &b"\xff\xfe"[..],
            b"{not json",
            b"<api status=",
            b"hello",
            b"",
        ] {
            let err = parse_reply(200, body).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Protocol, "{body:?}: {err}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_parser_never_panics(status in 0u16..600, body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse_reply(status, &body);
        }

        #[test]
        fn the_parser_never_panics_on_near_valid_text(body in "(\\{|<api |ERROR:|Exit status: )?[ -~\\n]{0,300}") {
            let _ = parse_reply(200, body.as_bytes());
            let _ = text_records(&body);
        }
    }
}
