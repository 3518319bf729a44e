//! The CLI contract (`spaces create-update`, `accounts create-admin`, configuration errors) against the real
//! binary, on SQLite and on PostgreSQL.

use std::process::{Command, Output};

use flexiapi_core::model::{Account, Algorithm, Space};
use flexiapi_core::testing::{Engine, TestDb, ENGINES};
use flexiapi_core::with_db;

fn flexiapi(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flexiapi"))
        .args(args)
        .env("FLEXIAPI_DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run flexiapi")
}

fn stdout_json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "flexiapi failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line expected, got {text:?}");
    serde_json::from_str(lines[0]).unwrap()
}

async fn cli_contract(engine: Engine) {
    let test_db = TestDb::new(engine).await;
    let url = test_db.url.as_str();

    let space = stdout_json(&flexiapi(
        url,
        &[
            "spaces",
            "create-update",
            "sip.example.org",
            "Flexiapi.Example.org",
            "Example",
            "--super",
        ],
    ));
    assert_eq!(space["host"], "flexiapi.example.org");
    assert_eq!(space["super"], true);
    // Updating by domain keeps one row and changes the flag.
    stdout_json(&flexiapi(
        url,
        &[
            "spaces",
            "create-update",
            "sip.example.org",
            "flexiapi.example.org",
            "Example",
        ],
    ));
    let stored = Space::find_by_domain(&test_db.db, "sip.example.org")
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.is_super);
    assert!(stored
        .digest_configuration(&test_db.db)
        .await
        .unwrap()
        .is_some());

    // Another domain cannot take the same host.
    let clash = flexiapi(
        url,
        &[
            "spaces",
            "create-update",
            "other.org",
            "flexiapi.example.org",
            "Other",
        ],
    );
    assert!(!clash.status.success());
    assert!(String::from_utf8_lossy(&clash.stderr).contains("already belongs"));

    let admin = stdout_json(&flexiapi(
        url,
        &[
            "accounts",
            "create-admin",
            "--username",
            "root",
            "--password",
            "s3cret",
            "--domain",
            "sip.example.org",
        ],
    ));
    assert_eq!(admin["username"], "root");
    assert_eq!(admin["domain"], "sip.example.org");
    let key = admin["api_key"].as_str().unwrap().to_owned();
    assert!(
        key.len() >= 40 && key.chars().all(|c| c.is_ascii_alphanumeric()),
        "{key}"
    );
    let id = admin["id"].as_i64().unwrap();

    let account = Account::find(&test_db.db, id).await.unwrap().unwrap();
    assert!(account.admin && account.activated);
    let passwords = account.passwords(&test_db.db).await.unwrap();
    assert_eq!(passwords.len(), 1);
    assert_eq!(passwords[0].algorithm, "SHA-256");
    assert_eq!(
        passwords[0].password,
        Algorithm::Sha256.ha1("root", "sip.example.org", "s3cret")
    );
    let key_rows: i64 = with_db!(&test_db.db, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM api_keys WHERE account_id = $1 AND key = $2")
        .bind(id).bind(&key).fetch_one(pool).await)
    .unwrap();
    assert_eq!(key_rows, 1);

    // Replacing: same account, new password, a fresh key bound to the given IP.
    let again = stdout_json(&flexiapi(
        url,
        &[
            "accounts",
            "create-admin",
            "--username",
            "root",
            "--password",
            "other",
            "--domain",
            "sip.example.org",
            "--api-key-ip",
            "127.0.0.1",
        ],
    ));
    assert_eq!(again["id"], id);
    let passwords = account.passwords(&test_db.db).await.unwrap();
    assert_eq!(
        passwords[0].password,
        Algorithm::Sha256.ha1("root", "sip.example.org", "other")
    );
    let ip: Option<String> = with_db!(&test_db.db, pool => sqlx::query_scalar(
        "SELECT ip FROM api_keys WHERE key = $1")
        .bind(again["api_key"].as_str().unwrap()).fetch_one(pool).await)
    .unwrap();
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));

    let unknown = flexiapi(
        url,
        &[
            "accounts",
            "create-admin",
            "--username",
            "x",
            "--password",
            "y",
            "--domain",
            "nowhere.org",
        ],
    );
    assert!(!unknown.status.success());
    assert!(unknown.stdout.is_empty());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no space has the SIP domain"));

    let bad_ip = flexiapi(
        url,
        &[
            "accounts",
            "create-admin",
            "--username",
            "x",
            "--password",
            "y",
            "--domain",
            "sip.example.org",
            "--api-key-ip",
            "not-an-ip",
        ],
    );
    assert!(!bad_ip.status.success());
    assert!(String::from_utf8_lossy(&bad_ip.stderr).contains("--api-key-ip"));
}

#[tokio::test]
async fn cli_contract_on_sqlite() {
    cli_contract(ENGINES[0]).await;
}

#[tokio::test]
async fn cli_contract_on_postgres() {
    cli_contract(ENGINES[1]).await;
}

#[test]
fn bad_configuration_names_the_setting() {
    let output = Command::new(env!("CARGO_BIN_EXE_flexiapi"))
        .arg("migrate")
        .env("FLEXIAPI_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("FLEXIAPI_LISTEN"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_flexiapi"))
        .arg("migrate")
        .env("FLEXIAPI_DATABASE_URL", "mysql://nope")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("FLEXIAPI_DATABASE_URL"));
}
