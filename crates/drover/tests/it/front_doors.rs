//! The API and the command line are two doors to the same rules: the same mistake gets the
//! same answer from both, and changes nothing.

use serde_json::{Value, json};

use crate::command::{http_client, run, serve_with, succeeded, with_stdin};

/// A mistake as each door takes it: the command line's arguments (and what it reads on stdin),
/// the API's route and body.
struct Mistake {
    what: &'static str,
    cli: Vec<String>,
    stdin: Option<String>,
    route: &'static str,
    body: Value,
}

fn mistake(what: &'static str, cli: &[&str], route: &'static str, body: Value) -> Mistake {
    Mistake {
        what,
        cli: cli.iter().map(|a| (*a).to_owned()).collect(),
        stdin: None,
        route,
        body,
    }
}

/// What the command line printed as its error, without the `error: ` it starts with.
async fn cli_error(dir: &std::path::Path, m: &Mistake) -> String {
    let args: Vec<&str> = m.cli.iter().map(String::as_str).collect();
    let (ok, stdout, stderr) = match &m.stdin {
        None => run(dir, &args).await,
        Some(input) => with_stdin(dir, &args, &[], input).await,
    };
    assert!(!ok, "{}: the command line accepted it: {stdout}", m.what);
    stderr
        .trim_end()
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("{}: no error line: {stderr}", m.what))
        .to_owned()
}

#[tokio::test]
async fn the_api_and_the_command_line_give_the_same_answer_to_the_same_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let served = serve_with(d, &[]).await;
    let token = served.printed[1].clone();
    for args in [
        &["plans", "create", "--name", "Web", "--feature", "web"][..],
        &["customers", "create", "--name", "Ana Pop"],
        &[
            "services",
            "create",
            "--customer",
            "1",
            "--plan",
            "1",
            "--domain",
            "example.ro",
        ],
        &[
            "servers",
            "add",
            "--name",
            "vm1",
            "--hostname",
            "203.0.113.5",
            "--capacity",
            "1",
            "--credentials",
            "env:DROVER_SECRET_VM1",
        ],
    ] {
        succeeded(run(d, args).await);
    }
    let long_reason = "r".repeat(600);
    let long_password = "p".repeat(129);
    let mut mistakes = vec![
        mistake(
            "a reason on two lines",
            &["services", "suspend", "1", "--reason", "unpaid\ninvoice"],
            "/api/v1/services/1/suspend",
            json!({"reason": "unpaid\ninvoice"}),
        ),
        mistake(
            "a reason too long",
            &["services", "suspend", "1", "--reason", &long_reason],
            "/api/v1/services/1/suspend",
            json!({"reason": long_reason}),
        ),
        mistake(
            "a reason on two lines, in bulk",
            &[
                "services", "bulk", "suspend", "--ids", "1", "--reason", "a\nb",
            ],
            "/api/v1/services/bulk",
            json!({"action": "suspend", "service_ids": [1], "reason": "a\nb"}),
        ),
        mistake(
            "an invalid domain",
            &[
                "services",
                "create",
                "--customer",
                "1",
                "--plan",
                "1",
                "--domain",
                "exa_mple.ro",
            ],
            "/api/v1/services",
            json!({"customer_id": 1, "plan_id": 1, "domain": "exa_mple.ro"}),
        ),
        mistake(
            "a domain already taken",
            &[
                "services",
                "create",
                "--customer",
                "1",
                "--plan",
                "1",
                "--domain",
                "EXAMPLE.ro",
            ],
            "/api/v1/services",
            json!({"customer_id": 1, "plan_id": 1, "domain": "EXAMPLE.ro"}),
        ),
        mistake(
            "an unknown plan",
            &[
                "services",
                "create",
                "--customer",
                "1",
                "--plan",
                "9",
                "--domain",
                "new.ro",
            ],
            "/api/v1/services",
            json!({"customer_id": 1, "plan_id": 9, "domain": "new.ro"}),
        ),
        mistake(
            "a disk quota beyond what is stored",
            &[
                "plans",
                "create",
                "--name",
                "Huge",
                "--disk-quota-mb",
                "18446744073709551615",
            ],
            "/api/v1/plans",
            json!({"name": "Huge", "disk_quota_mb": 18446744073709551615_u64}),
        ),
        mistake(
            "credentials outside the secrets directory",
            &[
                "servers",
                "add",
                "--name",
                "evil",
                "--hostname",
                "203.0.113.9",
                "--capacity",
                "1",
                "--credentials",
                "file:/etc/passwd",
            ],
            "/api/v1/servers",
            json!({"name": "evil", "hostname": "203.0.113.9", "capacity": 1,
                   "credentials": "file:/etc/passwd"}),
        ),
        mistake(
            "credentials in a variable without the secrets prefix",
            &[
                "servers",
                "add",
                "--name",
                "evil",
                "--hostname",
                "203.0.113.9",
                "--capacity",
                "1",
                "--credentials",
                "env:DATABASE_URL",
            ],
            "/api/v1/servers",
            json!({"name": "evil", "hostname": "203.0.113.9", "capacity": 1,
                   "credentials": "env:DATABASE_URL"}),
        ),
        mistake(
            "a setting the provider's kind does not take",
            &[
                "dns",
                "providers",
                "add",
                "--name",
                "pdns-1",
                "--kind",
                "powerdns",
                "--api-url",
                "http://127.0.0.1:8081",
                "--credentials",
                "env:DROVER_SECRET_PDNS",
                "--batch-size",
                "200",
            ],
            "/api/v1/dns/providers",
            json!({"name": "pdns-1", "credentials": "env:DROVER_SECRET_PDNS", "settings": {
                "kind": "powerdns", "api_url": "http://127.0.0.1:8081", "batch_size": 200}}),
        ),
        mistake(
            "a kind of provider drover does not drive",
            &[
                "dns",
                "providers",
                "add",
                "--name",
                "r53",
                "--kind",
                "route53",
                "--api-url",
                "https://route53.amazonaws.com",
                "--credentials",
                "env:DROVER_SECRET_AWS",
            ],
            "/api/v1/dns/providers",
            json!({"name": "r53", "credentials": "env:DROVER_SECRET_AWS", "settings": {
                "kind": "route53", "api_url": "https://route53.amazonaws.com"}}),
        ),
        mistake(
            "a server's name mistyped when retiring it",
            &["servers", "decommission", "1", "--confirm", "vm2"],
            "/api/v1/servers/1/decommission",
            json!({"confirm_name": "vm2"}),
        ),
        mistake(
            "a move the lifecycle does not allow",
            &["services", "unsuspend", "1"],
            "/api/v1/services/1/unsuspend",
            json!({}),
        ),
    ];
    // Billing's mapping for an adoption, as a file and as JSON: a domain mapped twice.
    let twice = d.join("twice.csv");
    std::fs::write(&twice, "domain,customer\nana.ro,B-1\nana.ro,B-2\n").unwrap();
    mistakes.push(mistake(
        "a domain mapped twice",
        &[
            "servers",
            "adopt",
            "1",
            "--dry-run",
            "--map",
            twice.to_str().unwrap(),
        ],
        "/api/v1/servers/1/adopt",
        json!({"mapping": [{"domain": "ana.ro", "customer": "B-1"},
                           {"domain": "ana.ro", "customer": "B-2"}]}),
    ));
    for (what, password) in [
        ("a password too short", "short"),
        ("a password too long", long_password.as_str()),
    ] {
        mistakes.push(Mistake {
            stdin: Some(format!("{password}\n")),
            ..mistake(
                what,
                &["services", "password", "1"],
                "/api/v1/services/1/password",
                json!({"password": password}),
            )
        });
    }

    let http = http_client();
    let audit_before = succeeded(run(d, &["--json", "audit", "list"]).await);
    for m in &mistakes {
        let answer = http
            .post(format!("{}{}", served.base, m.route))
            .bearer_auth(&token)
            .json(&m.body)
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let body: Value = answer.json().await.unwrap();
        assert!(status.is_client_error(), "{}: {status} {body}", m.what);
        let api = body["error"]["message"].as_str().unwrap().to_owned();
        let cli = cli_error(d, m).await;
        assert_eq!(cli, api, "{}: the doors answer differently", m.what);
        if m.what.starts_with("a password") {
            assert!(!api.contains("short") && !api.contains("ppppp"), "{api}");
        }
    }
    assert_eq!(
        succeeded(run(d, &["--json", "audit", "list"]).await),
        audit_before,
        "no mistake changed anything"
    );
}
