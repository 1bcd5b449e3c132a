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

/// The capture files of the first session (before INDEX.md's "Wave 2" section), which was
/// one server from its first domain on and can be replayed as a whole.
pub fn wave_one_rows() -> Vec<String> {
    let index = std::fs::read_to_string(captures_dir().join("INDEX.md")).unwrap();
    let wave_one = index.split("\n## Wave 2").next().unwrap_or_default();
    wave_one
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1).map(str::to_owned))
        .collect()
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

/// The kind each refused capture must be read as, by the scenario in its file name (the first
/// pattern found wins).
const EXPECTED_KINDS: &[(&str, ErrorKind)] = &[
    // A service the server depends on is down: worth trying again later.
    ("mariadb-down", ErrorKind::Transient),
    (
        "transfer-domain__ssh-connection-refused",
        ErrorKind::Transient,
    ),
    (
        "transfer-domain__webmin-connection-refused",
        ErrorKind::Transient,
    ),
    // Already there.
    ("duplicate", ErrorKind::AlreadyExists),
    ("name-taken-by-other-domain", ErrorKind::AlreadyExists),
    ("rename-to-existing", ErrorKind::AlreadyExists),
    // Not there (a repeated delete finds nothing).
    ("delete-user__repeat", ErrorKind::NotFound),
    ("alias-repeat", ErrorKind::NotFound),
    ("repeat-missing", ErrorKind::NotFound),
    ("__repeat__", ErrorKind::AlreadyInState),
    ("plan-missing", ErrorKind::NotFound),
    ("missing-plan", ErrorKind::NotFound),
    ("delete-plan__missing", ErrorKind::NotFound),
    ("plan-deleted-filter", ErrorKind::NotFound),
    ("missing-domain", ErrorKind::NotFound),
    ("nonexistent-domain", ErrorKind::NotFound),
    ("missing-user", ErrorKind::NotFound),
    ("old-name-after-rename", ErrorKind::NotFound),
    ("parent-missing", ErrorKind::NotFound),
    ("alias-missing-target", ErrorKind::NotFound),
    ("other-owners-domain", ErrorKind::NotFound),
    ("restore-domain__missing-file", ErrorKind::NotFound),
    ("get-ssl__domain", ErrorKind::NotFound),
    ("list-certs__", ErrorKind::NotFound),
    // Not allowed.
    ("missing-capability", ErrorKind::Auth),
    ("delete-domain__own-domain", ErrorKind::Auth),
    ("unaudited-command", ErrorKind::Auth),
    ("before-grant", ErrorKind::Auth),
    ("owner-alpha__unknown-program", ErrorKind::Auth),
    ("apiuser-limitedacl__info", ErrorKind::Auth),
    // Refused as asked.
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
    ("plan-features-", ErrorKind::Invalid),
    ("plan-no-features", ErrorKind::Invalid),
    ("subserver-with-unix", ErrorKind::Invalid),
    ("invalid-lifetime", ErrorKind::Invalid),
    ("create-login-link__no-target", ErrorKind::Invalid),
    ("invalid-quota", ErrorKind::Invalid),
    ("missing-name", ErrorKind::Invalid),
    ("unknown-feature", ErrorKind::Invalid),
    ("invalid-limit", ErrorKind::Invalid),
    ("dest-dir-missing", ErrorKind::Invalid),
    ("newformat-onebyone", ErrorKind::Invalid),
    ("backup-domain__no-dest", ErrorKind::Invalid),
    ("list-certs-expiry__missing-flag", ErrorKind::Invalid),
    ("alias-of-flag-unknown", ErrorKind::Invalid),
    ("generate-letsencrypt-cert__no-internet", ErrorKind::Invalid),
    ("transfer-domain__unresolvable-host", ErrorKind::Invalid),
    ("transfer-domain__usage-no-args", ErrorKind::Invalid),
    // Webmin's own answers.
    ("auth__blockhost-attempt5", ErrorKind::LockedOut),
    ("auth__blocked-host", ErrorKind::LockedOut),
    (
        "auth__lockout-wrong-password-attempt5",
        ErrorKind::LockedOut,
    ),
    ("auth__lockout-blocked", ErrorKind::LockedOut),
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
        all.len() >= 400,
        "expected the 410 captures, found {}",
        all.len()
    );
    let mut failures = Vec::new();
    for capture in &all {
        let result = parse_reply(capture.status, capture.body.clone());
        let problem = match (capture.outcome.as_str(), &result) {
            ("success", Ok(_)) => None,
            ("success", Err(e)) => Some(format!("expected success, got {e}")),
            (_, Ok(_)) => Some("expected a refusal, got success".to_owned()),
            (outcome, Err(VirtualminError { kind, message, .. })) => {
                let want = expected_kind(&capture.file);
                let shape_ok = match outcome {
                    o if o.starts_with("failure") || o == "error" || o == "ERROR: line" => {
                        !message.is_empty()
                            && *kind != ErrorKind::Protocol
                            && (*kind != ErrorKind::Transient || want == ErrorKind::Transient)
                            && !drover_virtualmin::is_log_line(message)
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
    parse_reply(capture.status, capture.body.clone()).unwrap()
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
            real_name: "Alice Example".into(),
            quota_bytes: None,
            password_hash: Some(drover_virtualmin::PasswordHash::new(
                "$y$j9T$YFMK.iswtojg0IHXO7SEZ.$DZlmOM0.ecmtzREPuWR4MhM.fbP7AJc09Gul/wbDO98"
            )),
            disabled: false,
        }
    );
    // Every mailbox's hash is read (the captured server showed them to its master admin).
    assert!(users.iter().all(|u| u.password_hash.is_some()));
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

/// With MariaDB down the real error is the message, never the warning printed first.
#[test]
fn a_database_outage_is_transient_and_says_so() {
    let dbi = "DBI connect failed : Can't connect to local server through socket '/run/mysqld-vm/mysqld.sock' (2)";
    for file in [
        "list-domains__mariadb-down-multiline__json.http",
        "list-domains__mariadb-down-multiline__text.http",
        "create-database__mariadb-down__json.http",
    ] {
        let capture = captures().into_iter().find(|c| c.file == file).unwrap();
        let err = parse_reply(capture.status, capture.body.clone()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient, "{file}");
        assert!(err.kind.is_retryable());
        assert_eq!(err.message, dbi, "{file}");
    }
}

/// A failed Let's Encrypt request names its cause (the exception its client died of, and the
/// DNS validation's own refusal), not the traceback's first line nor the first step's title;
/// the program ran, so the failure counts as one of Let's Encrypt's.
#[test]
fn a_failed_certificate_request_names_its_cause() {
    for file in [
        "generate-letsencrypt-cert__no-internet__json.http",
        "generate-letsencrypt-cert__no-internet__text.http",
    ] {
        let capture = captures().into_iter().find(|c| c.file == file).unwrap();
        let err = parse_reply(capture.status, capture.body.clone()).unwrap_err();
        assert!(err.program_failed, "{file}");
        assert_eq!(
            err.message,
            "failed : Web-based validation failed : Failed to request certificate : \
             ValueError: Error getting directory: Url: https://acme-v02.api.letsencrypt.org/directory \
             Data: None Response Code: None Response: <urlopen error [Errno -2] Name or service not known>; \
             DNS-based validation failed : Only the native ACME client supports DNS-based validation",
            "{file}"
        );
    }
    let capture = captures()
        .into_iter()
        .find(|c| c.file == "generate-letsencrypt-cert__missing-domain__json.http")
        .unwrap();
    let err = parse_reply(capture.status, capture.body.clone()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
}

/// Warnings on stderr split into a list's JSON items are not databases.
#[test]
fn warning_lines_in_a_list_are_not_records() {
    let reply = reply("list-databases__mariadb-down__json.http");
    let names: Vec<&str> = reply.records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["bk3"]);
    assert_eq!(reply.warnings.len(), 2);
    assert!(
        reply.warnings[0].starts_with(
            "[03/Dec/2026:08:26:52 +0000] [127.0.0.1] Failed to get MySQL/MariaDB version"
        ),
        "{:?}",
        reply.warnings
    );
    assert!(reply.step_failures.is_empty());
    let text =
        "[03/Dec/2026:08:26:52 +0000] [127.0.0.1] Failed to get version\nbk3\n    Type: mysql\n";
    let records = text_records(text);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].name, "bk3");
}

/// A success whose output says a step failed carries that step; a clean success none.
#[test]
fn failed_steps_of_a_success_are_surfaced() {
    for (file, step) in [
        (
            "create-domain__mariadb-down-with-mysql__json.http",
            ".. MariaDB database failed : mysql::execute_sql_logged failed : DBI connect failed :  Can't connect to local server through socket '/run/mysqld-vm/mysqld.sock' (2)",
        ),
        (
            "create-domain__mariadb-down-with-mysql__text.http",
            ".. MariaDB database failed : mysql::execute_sql_logged failed : DBI connect failed :  Can't connect to local server through socket '/run/mysqld-vm/mysqld.sock' (2)",
        ),
        (
            "disable-domain__mariadb-down__json.http",
            ".. MariaDB user does not exist!",
        ),
        (
            "disable-domain__mariadb-down__xml.http",
            ".. MariaDB user does not exist!",
        ),
    ] {
        assert_eq!(reply(file).step_failures, [step], "{file}");
    }
    for capture in captures() {
        if capture.outcome != "success" || capture.file.contains("mariadb-down") {
            continue;
        }
        let reply = parse_reply(capture.status, capture.body.clone()).unwrap();
        assert!(
            reply.step_failures.is_empty(),
            "{}: {:?}",
            capture.file,
            reply.step_failures
        );
    }
}
