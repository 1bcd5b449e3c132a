//! Table-driven over every file in `shared/virtualmin-captures`: the parser must give the
//! outcome INDEX.md records for it, and the error kind that outcome means.

use std::collections::BTreeMap;
use std::path::PathBuf;

use drover_virtualmin::{ErrorKind, Reply, VirtualminError, parse_reply, text_records};

/// The captures live beside the repository (`../shared`), never copied into it.
fn captures_dir() -> PathBuf {
    let dir = std::env::var_os("DROVER_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"))
        .join("virtualmin-captures");
    assert!(
        dir.join("INDEX.md").exists(),
        "the Virtualmin captures are missing at {}; set DROVER_SHARED_DIR to the shared folder",
        dir.display()
    );
    dir
}

/// A capture: the request INDEX.md records, and what came back.
pub struct Capture {
    pub file: String,
    pub method: String,
    pub user: String,
    /// The request's parameters as INDEX.md shows them (decoded, joined with `&`).
    pub params: String,
    pub status: u16,
    pub head: Vec<u8>,
    pub body: Vec<u8>,
    pub outcome: String,
}

impl Capture {
    /// A request that is not in the captures, made as root.
    pub fn synthetic(params: &str) -> Self {
        Self {
            file: "(setup)".into(),
            method: "POST".into(),
            user: "root".into(),
            params: params.into(),
            status: 200,
            head: Vec::new(),
            body: Vec::new(),
            outcome: "success".into(),
        }
    }
}

/// INDEX.md's rows: file, method, user, params, status line, outcome.
fn index() -> Vec<Vec<String>> {
    let index = std::fs::read_to_string(captures_dir().join("INDEX.md")).unwrap();
    index
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            line.split(" | ")
                .map(|c| {
                    c.trim()
                        .trim_start_matches("| ")
                        .trim_matches('`')
                        .to_owned()
                })
                .collect()
        })
        .collect()
}

/// The capture files in the order they were recorded.
pub fn index_rows() -> Vec<String> {
    index().into_iter().map(|row| row[0].clone()).collect()
}

pub fn captures() -> Vec<Capture> {
    let dir = captures_dir();
    let mut rows = BTreeMap::new();
    for row in index() {
        rows.insert(row[0].clone(), row);
    }
    let mut all = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("http") {
            continue;
        }
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let raw = std::fs::read(&path).unwrap();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("headers end");
        let head = String::from_utf8_lossy(&raw[..split]);
        let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let row = rows
            .get(&file)
            .unwrap_or_else(|| panic!("{file} is not in INDEX.md"));
        all.push(Capture {
            method: row[1].clone(),
            user: row[2].clone(),
            params: row[3].clone(),
            outcome: row[5].clone(),
            file,
            status,
            head: raw[..split].to_vec(),
            body: raw[split + 4..].to_vec(),
        });
    }
    all.sort_by(|a, b| a.file.cmp(&b.file));
    all
}

/// The kind each refused capture must be read as, by the scenario in its file name.
const EXPECTED_KINDS: &[(&str, ErrorKind)] = &[
    ("__duplicate__", ErrorKind::AlreadyExists),
    ("__repeat__", ErrorKind::AlreadyInState),
    ("missing-domain", ErrorKind::NotFound),
    ("missing-user", ErrorKind::NotFound),
    ("parent-missing", ErrorKind::NotFound),
    ("alias-missing-target", ErrorKind::NotFound),
    ("other-owners-domain", ErrorKind::NotFound),
    ("missing-capability", ErrorKind::Auth),
    ("delete-domain__own-domain", ErrorKind::Auth),
    ("unaudited-command", ErrorKind::Auth),
    ("before-grant", ErrorKind::Auth),
    ("owner-alpha__unknown-program", ErrorKind::Auth),
    ("apiuser-limitedacl__info", ErrorKind::Auth),
    ("apiuser-limitedacl__create-domain", ErrorKind::Invalid),
    ("owner-alpha__list-features", ErrorKind::Invalid),
    ("invalid-name", ErrorKind::Invalid),
    ("missing-pass", ErrorKind::Invalid),
    ("bad-type", ErrorKind::Invalid),
    ("unknown-flag", ErrorKind::Invalid),
    ("desc-with-newline", ErrorKind::Invalid),
    ("no-domain-param", ErrorKind::Invalid),
    ("unknown-program__", ErrorKind::Invalid),
    ("no-program-param", ErrorKind::Invalid),
    ("post-multipart-form", ErrorKind::Invalid),
    ("auth__blockhost-attempt5", ErrorKind::LockedOut),
    ("auth__blocked-host", ErrorKind::LockedOut),
    ("auth__", ErrorKind::Auth),
    ("protocol__plain-http-to-tls-port", ErrorKind::Protocol),
];

fn expected_kind(file: &str) -> ErrorKind {
    EXPECTED_KINDS
        .iter()
        .find(|(pattern, _)| file.contains(pattern))
        .map(|(_, kind)| *kind)
        .unwrap_or_else(|| panic!("no expected error kind for {file}"))
}

#[test]
fn every_capture_parses_to_the_outcome_index_md_records() {
    let all = captures();
    assert!(
        all.len() >= 200,
        "expected the 203 captures, found {}",
        all.len()
    );
    let mut failures = Vec::new();
    for capture in &all {
        let result = parse_reply(capture.status, &capture.body);
        let problem = match (capture.outcome.as_str(), &result) {
            ("success", Ok(_)) => None,
            ("success", Err(e)) => Some(format!("expected success, got {e}")),
            (_, Ok(_)) => Some("expected a refusal, got success".to_owned()),
            (outcome, Err(VirtualminError { kind, message })) => {
                let want = expected_kind(&capture.file);
                let shape_ok = match outcome {
                    o if o.starts_with("failure") || o == "error" || o == "ERROR: line" => {
                        !message.is_empty()
                            && !matches!(kind, ErrorKind::Protocol | ErrorKind::Transient)
                    }
                    "usage text" => *kind == ErrorKind::Invalid,
                    "http 401" => *kind == ErrorKind::Auth,
                    "http 403" => *kind == ErrorKind::LockedOut,
                    "http 302" => *kind == ErrorKind::Protocol,
                    other => panic!(
                        "{}: INDEX.md outcome '{other}' is not known to this test",
                        capture.file
                    ),
                };
                (!shape_ok || *kind != want).then(|| {
                    format!("INDEX says {outcome}; parsed {kind} ({message}); expected {want}")
                })
            }
        };
        if let Some(problem) = problem {
            failures.push(format!("{}: {problem}", capture.file));
        }
    }
    assert!(
        failures.is_empty(),
        "{} captures misread:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn reply(file: &str) -> Reply {
    let capture = captures().into_iter().find(|c| c.file == file).unwrap();
    parse_reply(capture.status, &capture.body).unwrap()
}

/// The three formats of one list answer give the same records.
#[test]
fn json_xml_and_text_lists_agree() {
    for base in [
        "list-domains__one-multiline",
        "list-domains__filter-domain-multiline",
    ] {
        let json = reply(&format!("{base}__json.http")).records;
        let xml = reply(&format!("{base}__xml.http")).records;
        let text = text_records(&reply(&format!("{base}__text.http")).output);
        assert_eq!(json.len(), 1, "{base}");
        for (format, records) in [("xml", &xml), ("text", &text)] {
            assert_eq!(records.len(), json.len(), "{base} {format}");
            assert_eq!(records[0].name, json[0].name, "{base} {format}");
            for key in ["username", "id", "plan", "template", "type", "description"] {
                assert_eq!(
                    records[0].get(key),
                    json[0].get(key),
                    "{base} {format} {key}"
                );
            }
        }
    }
}

#[test]
fn program_output_keeps_its_line_breaks_in_every_format() {
    for file in [
        "create-domain__success__json.http",
        "create-domain__success__xml.http",
        "create-domain__success__text.http",
    ] {
        let output = reply(file).output;
        assert!(output.contains("\n.. done\n"), "{file}: {output:?}");
        assert!(output.trim_end().ends_with("All done!"), "{file}");
    }
}

#[test]
fn utf8_and_markup_characters_survive() {
    let json = reply("list-domains__utf8-desc-multiline__json.http").records;
    let xml = reply("list-domains__utf8-desc-multiline__xml.http").records;
    let want = "Café ✓ Δelta & <tag> \"q\"";
    assert_eq!(json[0].get("description"), Some(want));
    assert_eq!(xml[0].get("description"), Some(want));
}

#[test]
fn domains_are_typed_from_the_list() {
    use drover_virtualmin::{DomainInfo, DomainKind};
    let records = reply("list-domains__with-subservers-aliases-multiline__json.http").records;
    let domains: Vec<DomainInfo> = records.into_iter().map(DomainInfo::from_record).collect();
    let by_name = |name: &str| domains.iter().find(|d| d.domain == name).unwrap();
    let alpha = by_name("alpha.test");
    assert_eq!(
        (alpha.kind, alpha.unix_user.as_deref()),
        (Some(DomainKind::TopLevel), Some("alpha"))
    );
    assert_eq!(alpha.plan.as_deref(), Some("Default Plan"));
    assert!(alpha.features.contains(&"web".to_owned()));
    assert_eq!(alpha.ip_address.as_deref(), Some("192.0.2.2"));
    let shop = by_name("shop.alpha.test");
    assert_eq!(
        (shop.kind, shop.parent.as_deref()),
        (Some(DomainKind::SubServer), Some("alpha.test"))
    );
    let alias = by_name("alpha-alias.test");
    assert_eq!(
        (alias.kind, alias.alias_of.as_deref()),
        (Some(DomainKind::Alias), Some("alpha.test"))
    );

    let disabled = reply("list-domains__disabled-domain-multiline__json.http").records;
    let gamma = DomainInfo::from_record(disabled[0].clone());
    let reason = gamma.disabled.as_ref().and_then(|d| d.reason.as_deref());
    assert_eq!(reason, Some("Suspended for non-payment"));
    assert!(
        gamma.fields.contains_key("php_execution_mode"),
        "unknown fields are kept"
    );

    let debug = format!("{alpha:?}");
    assert!(
        debug.contains("hashed_password") && !debug.contains("$y$j9T$"),
        "secrets masked: {debug}"
    );
}

/// Usage reads mailboxes from `list-users multiline=`; every format gives the same users.
#[test]
fn domain_users_are_typed_from_every_format() {
    use drover_virtualmin::DomainUser;
    let json = reply("list-users__multiline__json.http").records;
    let xml = reply("list-users__multiline__xml.http").records;
    let text = text_records(&reply("list-users__multiline__text.http").output);
    let typed = |records: &[drover_virtualmin::Record]| -> Vec<DomainUser> {
        records.iter().filter_map(DomainUser::from_record).collect()
    };
    let users = typed(&json);
    assert_eq!(users.len(), 4);
    assert_eq!(
        users[0],
        DomainUser {
            user: "alice".into(),
            domain: "alpha.test".into(),
            email: Some("alice@alpha.test".into()),
        }
    );
    assert!(users.iter().all(DomainUser::is_mailbox));
    assert_eq!(typed(&xml), users, "xml");
    assert_eq!(typed(&text), users, "text");
    // A name-only listing carries no domain: nothing is guessed from it.
    assert!(typed(&reply("list-users__name-only__json.http").records).is_empty());
}

/// The figures usage reads are typed; the captured server had quotas and bandwidth monitoring
/// off, so those stay unknown rather than zero.
#[test]
fn usage_figures_are_typed_from_the_list() {
    use drover_virtualmin::DomainInfo;
    let records = reply("list-domains__one-multiline__json.http").records;
    let alpha = DomainInfo::from_record(records[0].clone());
    assert_eq!(alpha.quota.databases_count, Some(1));
    assert_eq!(alpha.quota.databases_byte_size, Some(0));
    assert_eq!(alpha.quota.server_byte_quota_used, None);
    assert_eq!(alpha.quota.bandwidth_byte_usage, None);
}
