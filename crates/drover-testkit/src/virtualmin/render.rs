//! The three answer formats of remote.cgi, as the captures show them.

use std::fmt::Write as _;

/// What a program answered, before it is put in a format.
#[derive(Debug, Clone)]
pub(super) enum Answer {
    /// Success with output text (create, modify, enable, …).
    Output(String),
    /// Success with a list.
    List(Vec<Entry>),
    /// `status: failure`: the program ran and refused; `usage` is its usage text.
    Failure { message: String, usage: String },
    /// `status: error`: the program was refused before running.
    Error(String),
    /// No program parameter: remote.cgi's own usage text.
    Usage,
    /// A program's whole output and exit status, put in a format as remote.cgi does it
    /// (`convert_remote_format`): a failure's `error` is its first non-blank line and
    /// `full_error` all of it; a `multiline` list's lines become data items, a top-level
    /// `Key: value` line (a stray warning) an item with a `value`.
    Raw {
        output: String,
        exit: u32,
        multiline: bool,
    },
}

/// The text form of list entries: each name, then its indented `Label: value` lines.
pub(super) fn entries_text(entries: &[Entry]) -> String {
    let mut body = String::new();
    for entry in entries {
        body.push_str(&entry.name);
        body.push('\n');
        for (label, value) in &entry.fields {
            let _ = writeln!(body, "    {label}: {value}");
        }
    }
    body
}

/// One data item of a converted list: a name with values, or a stray `name: value` line.
enum Item {
    Object(String, Vec<(String, Vec<String>)>),
    Value(String, String),
}

/// `convert_remote_format`'s reading of a multiline list's output.
fn convert_lines(output: &str) -> Vec<Item> {
    let mut items: Vec<Item> = Vec::new();
    let mut in_object = false;
    for line in output.lines() {
        let starts_plain = line.chars().next().is_some_and(|c| !c.is_whitespace());
        if starts_plain {
            if !in_object
                && let Some((name, value)) = line.split_once(':')
                && name.chars().count() >= 2
            {
                items.push(Item::Value(name.to_owned(), value.trim_start().to_owned()));
                continue;
            }
            in_object = true;
            items.push(Item::Object(line.to_owned(), Vec::new()));
        } else if let Some((k, v)) = line.trim_start().split_once(':')
            && let Some(Item::Object(_, values)) = items.last_mut()
        {
            let key = k
                .to_lowercase()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join("_");
            let v = v.trim_start().to_owned();
            match values.iter_mut().find(|(existing, _)| *existing == key) {
                Some((_, list)) => list.push(v),
                None => values.push((key, vec![v])),
            }
        }
    }
    items
}

fn first_line(output: &str) -> String {
    output
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_owned()
}

/// One list entry: its name and its `Label: value` lines, in order.
#[derive(Debug, Clone, Default)]
pub(super) struct Entry {
    pub name: String,
    pub fields: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Json { minified: bool },
    Xml,
    Text,
}

/// The JSON key of a text label: lower case, spaces as underscores.
fn key(label: &str) -> String {
    label.to_lowercase().replace(' ', "_")
}

pub(super) const CGI_USAGE: &str = "This CGI is designed to be invoked by other programs wanting
to perform some Virtualmin action programatically, such as
creating or modifying domains and users.

You must supply at least the CGI parameter 'program', which
specifies which of the Virtualmin command-line scripts to
run. You must also supply appropriate parameters to the
program, similar to those that it accepts on the Unix command
line. For example, the change the password for a server, you
would request a URL like :

http://yourserver:10000/virtual-server/remote.cgi?program=modify-domain&domain=foo.com&pass=somenewpassword

All output from the command will be returned to the caller.
";

/// Renders an answer: (content type, body).
pub(super) fn render(program: &str, format: Format, answer: &Answer) -> (&'static str, String) {
    match (format, answer) {
        (_, Answer::Usage) => ("text/plain", CGI_USAGE.to_owned()),
        (Format::Json { minified }, Answer::Error(message)) => {
            let body = serde_json::json!({"status": "error", "error": message});
            ("text/plain", json_text(&body, minified))
        }
        (Format::Xml, Answer::Error(message)) => (
            "text/plain",
            format!("<api error=\"{}\" status=\"error\" />\n", attr(message)),
        ),
        (Format::Text, Answer::Error(message)) => ("text/plain", format!("ERROR: {message}\n")),
        (Format::Json { minified }, answer) => (
            "application/json",
            json_text(&json(program, answer), minified),
        ),
        (Format::Xml, answer) => ("application/xml", xml(program, answer)),
        (Format::Text, answer) => ("text/plain", text(answer)),
    }
}

fn json_text(value: &serde_json::Value, minified: bool) -> String {
    let mut body = if minified {
        serde_json::to_string(value)
    } else {
        serde_json::to_string_pretty(value)
    }
    .unwrap_or_default();
    body.push_str("\n\n");
    body
}

fn json(program: &str, answer: &Answer) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    match answer {
        Answer::Output(output) => {
            json!({"command": program, "status": "success", "output": output})
        }
        Answer::List(entries) => {
            let data: Vec<Value> = entries
                .iter()
                .map(|e| {
                    let mut values = Map::new();
                    for (label, value) in &e.fields {
                        values.insert(key(label), json!([value]));
                    }
                    json!({"name": e.name, "values": values})
                })
                .collect();
            json!({"command": program, "status": "success", "data": data})
        }
        Answer::Failure { message, usage } => json!({
            "command": program, "status": "failure", "error": message,
            "full_error": format!("{message}\n\n{usage}"),
        }),
        Answer::Raw { output, exit, .. } if *exit != 0 => json!({
            "command": program, "status": "failure", "error": first_line(output),
            "full_error": output,
        }),
        Answer::Raw {
            output, multiline, ..
        } if *multiline => {
            let data: Vec<Value> = convert_lines(output)
                .into_iter()
                .map(|item| match item {
                    Item::Value(name, value) => json!({"name": name, "value": value}),
                    Item::Object(name, values) => {
                        let values: Map<String, Value> =
                            values.into_iter().map(|(k, v)| (k, json!(v))).collect();
                        json!({"name": name, "values": values})
                    }
                })
                .collect();
            json!({"command": program, "status": "success", "data": data})
        }
        Answer::Raw { output, .. } => {
            json!({"command": program, "status": "success", "output": output})
        }
        Answer::Error(_) | Answer::Usage => Value::Null,
    }
}

fn attr(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

fn xml(program: &str, answer: &Answer) -> String {
    match answer {
        Answer::Output(output) => format!(
            "<api command=\"{program}\" output=\"{}\" status=\"success\" />\n",
            attr(output)
        ),
        Answer::List(entries) => {
            let mut body = format!("<api command=\"{program}\" status=\"success\">\n");
            for entry in entries {
                let _ = writeln!(body, "  <data name=\"{}\">", attr(&entry.name));
                if entry.fields.is_empty() {
                    body.push_str("    <values></values>\n");
                } else {
                    body.push_str("    <values>\n");
                    for (label, value) in &entry.fields {
                        let k = key(label);
                        let _ = writeln!(body, "      <{k}>{}</{k}>", attr(value));
                    }
                    body.push_str("    </values>\n");
                }
                body.push_str("  </data>\n");
            }
            body.push_str("</api>\n");
            body
        }
        Answer::Failure { message, usage } => format!(
            "<api command=\"{program}\" error=\"{}\" full_error=\"{}\" status=\"failure\" />\n",
            attr(message),
            attr(&format!("{message}\n\n{usage}"))
        ),
        Answer::Raw { output, exit, .. } if *exit != 0 => format!(
            "<api command=\"{program}\" error=\"{}\" full_error=\"{}\" status=\"failure\" />\n",
            attr(&first_line(output)),
            attr(output)
        ),
        Answer::Raw {
            output, multiline, ..
        } if *multiline => {
            let mut body = format!("<api command=\"{program}\" status=\"success\">\n");
            for item in convert_lines(output) {
                match item {
                    Item::Value(name, value) => {
                        let _ = writeln!(
                            body,
                            "  <data name=\"{}\" value=\"{}\" />",
                            attr(&name),
                            attr(&value)
                        );
                    }
                    Item::Object(name, values) => {
                        let _ = writeln!(body, "  <data name=\"{}\">\n    <values>", attr(&name));
                        for (k, list) in values {
                            for v in list {
                                let _ = writeln!(body, "      <{k}>{}</{k}>", attr(&v));
                            }
                        }
                        body.push_str("    </values>\n  </data>\n");
                    }
                }
            }
            body.push_str("</api>\n");
            body
        }
        Answer::Raw { output, .. } => format!(
            "<api command=\"{program}\" output=\"{}\" status=\"success\" />\n",
            attr(output)
        ),
        Answer::Error(_) | Answer::Usage => String::new(),
    }
}

fn text(answer: &Answer) -> String {
    match answer {
        Answer::Output(output) => format!("{output}\nExit status: 0\n"),
        Answer::List(entries) => {
            let mut body = String::new();
            for entry in entries {
                body.push_str(&entry.name);
                body.push('\n');
                for (label, value) in &entry.fields {
                    let _ = writeln!(body, "    {label}: {value}");
                }
            }
            body.push_str("\nExit status: 0\n");
            body
        }
        Answer::Failure { message, usage } => format!("{message}\n\n{usage}\nExit status: 256\n"),
        Answer::Raw { output, exit, .. } => format!("{output}\nExit status: {exit}\n"),
        Answer::Error(_) | Answer::Usage => String::new(),
    }
}

/// The fixed-width table list programs print without `--multiline`: what the JSON and XML
/// forms then carry as entry names (the broken table of the captures).
pub(super) fn table(columns: &[(&str, usize)], rows: &[Vec<String>]) -> Vec<Entry> {
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for ((_, width), cell) in columns.iter().zip(cells) {
            let cell: String = cell.chars().take(*width).collect();
            let _ = write!(out, "{cell:width$} ");
        }
        out.pop();
        out
    };
    let mut entries = vec![
        Entry {
            name: line(columns.iter().map(|(h, _)| (*h).to_owned()).collect()),
            fields: Vec::new(),
        },
        Entry {
            name: line(columns.iter().map(|(_, w)| "-".repeat(*w)).collect()),
            fields: Vec::new(),
        },
    ];
    entries.extend(rows.iter().map(|r| Entry {
        name: line(r.clone()),
        fields: Vec::new(),
    }));
    entries
}
