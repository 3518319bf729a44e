//! `flexiapi serve` end to end: the real binary on a loopback port, `GET /api/accounts/me` proven with every
//! credential kind (API key header and cookie, DIGEST MD5 and SHA-256, JWT), and the failures upstream answers
//! with 401/403/404 — on SQLite and on PostgreSQL.

use std::process::{Command, Stdio};
use std::time::Duration;

use flexiapi_core::model::space::realm_for_domain;
use flexiapi_core::model::{Account, Algorithm};
use flexiapi_core::testing::{Engine, TestDb, ENGINES};
use flexiapi_core::with_db;

mod common;

use common::Server;

const HOST: &str = "flexiapi.example.org";
const DOMAIN: &str = "sip.example.org";

fn rsa_key_pair(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let private = dir.join("jwt-private.pem");
    let public = dir.join("jwt-public.pem");
    let status = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&private)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let status = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap();
    assert!(status.success());
    (public, std::fs::read(private).unwrap())
}

async fn start(database_url: &str, public_key: &std::path::Path, dir: tempfile::TempDir) -> Server {
    let env = [
        ("FLEXIAPI_JWT_PUBLIC_KEY_PATH", public_key.to_str().unwrap()),
        ("FLEXIAPI_AUTH_CACHE_TTL_MS", "300"),
    ];
    common::serve(database_url, HOST, &env, Some(dir)).await
}

fn digest_response(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    nc: &str,
    cnonce: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = algorithm.hex_digest(format!("{method}:{uri}").as_bytes());
    algorithm.hex_digest(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}").as_bytes())
}

/// `name="value"` or `name=value` out of a challenge line.
fn param(challenge: &str, name: &str) -> String {
    let start = challenge.find(&format!("{name}=")).unwrap() + name.len() + 1;
    let rest = &challenge[start..];
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    rest.split(['"', ',']).next().unwrap().to_owned()
}

async fn end_to_end(engine: Engine) {
    let test_db = TestDb::new(engine).await;
    let url = test_db.url.clone();
    let admin = common::space_with_admin(&url, DOMAIN, HOST, "alice");
    let key = admin["api_key"].as_str().unwrap().to_owned();
    // Give alice an MD5 hash of the same password too: both DIGEST challenges are offered (decision D2).
    let account = Account::find(&test_db.db, admin["id"].as_i64().unwrap())
        .await
        .unwrap()
        .unwrap();
    let realm = realm_for_domain(&test_db.db, DOMAIN).await.unwrap();
    account
        .set_password(&test_db.db, "secret", Algorithm::Md5, &realm)
        .await
        .unwrap();
    assert_eq!(account.passwords(&test_db.db).await.unwrap().len(), 2);

    let dir = tempfile::tempdir().unwrap();
    let (public_key, private_key) = rsa_key_pair(dir.path());
    let server = start(&url, &public_key, dir).await;
    let client = reqwest::Client::new();
    let me = format!("{}/api/accounts/me", server.base);
    let get = |extra: &[(&str, String)]| {
        let mut request = client
            .get(&me)
            .header("Host", HOST)
            .header("Accept", "application/json");
        for (name, value) in extra {
            request = request.header(*name, value);
        }
        request.send()
    };

    // Ping and host resolution.
    let pong = client
        .get(format!("{}/api/ping", server.base))
        .header("Host", HOST)
        .send()
        .await
        .unwrap();
    assert_eq!(pong.text().await.unwrap(), "pong");
    let unknown = client
        .get(format!("{}/api/ping", server.base))
        .header("Host", "nowhere.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(unknown
        .text()
        .await
        .unwrap()
        .contains("Host not configured"));

    // API key: header, cookie, wrong key.
    let response = get(&[("x-api-key", key.clone())]).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["username"], "alice");
    assert_eq!(body["sip_uri"], format!("sip:alice@{DOMAIN}"));
    let response = get(&[("Cookie", format!("x-api-key={key}"))])
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = get(&[("x-api-key", "wrong".to_owned())]).await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.text().await.unwrap().contains("Invalid API Key"));
    let response = get(&[]).await.unwrap();
    assert_eq!(response.status(), 401);

    // DIGEST: one challenge line per stored algorithm, then both algorithms succeed; a replay fails.
    let from = ("From", format!("sip:alice@{DOMAIN}"));
    let challenge = get(std::slice::from_ref(&from)).await.unwrap();
    assert_eq!(challenge.status(), 401);
    let lines: Vec<String> = challenge
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("algorithm=MD5")));
    assert!(lines.iter().any(|l| l.contains("algorithm=SHA-256")));
    let nonce = param(&lines[0], "nonce");
    let opaque = param(&lines[0], "opaque");
    for (nc, algorithm) in [
        ("00000001", Algorithm::Md5),
        ("00000002", Algorithm::Sha256),
    ] {
        let ha1 = algorithm.ha1("alice", &realm, "secret");
        let response = digest_response(
            algorithm,
            &ha1,
            &nonce,
            nc,
            "0a4f113b",
            "GET",
            "/api/accounts/me",
        );
        let authorization = format!(
            "Digest username=\"alice\",realm=\"{realm}\",nonce=\"{nonce}\",nc={nc},cnonce=\"0a4f113b\",uri=\"/api/accounts/me\",qop=auth,response=\"{response}\",opaque=\"{opaque}\",algorithm={}",
            algorithm.as_str()
        );
        let answer = get(&[from.clone(), ("Authorization", authorization.clone())])
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{}", algorithm.as_str());
        assert_eq!(
            answer.headers().get_all("www-authenticate").iter().count(),
            2
        );
        if nc == "00000002" {
            let replay = get(&[from.clone(), ("Authorization", authorization)])
                .await
                .unwrap();
            assert_eq!(replay.status(), 401);
            assert!(replay.text().await.unwrap().contains("Nonce replayed"));
        }
    }
    let wrong_from = get(&[("From", format!("sip:nobody@{DOMAIN}"))])
        .await
        .unwrap();
    assert_eq!(wrong_from.status(), 404);

    // JWT bearer (RS256, global public key).
    let now = chrono::Utc::now().timestamp();
    let sign = |claims: serde_json::Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(&private_key).unwrap(),
        )
        .unwrap()
    };
    let token =
        sign(serde_json::json!({"sip_identity": format!("sip:alice@{DOMAIN}"), "exp": now + 300}));
    let response = get(&[("Authorization", format!("Bearer {token}"))])
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let expired =
        sign(serde_json::json!({"sip_identity": format!("sip:alice@{DOMAIN}"), "exp": now - 300}));
    let response = get(&[("Authorization", format!("Bearer {expired}"))])
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let stranger =
        sign(serde_json::json!({"sip_identity": format!("sip:bob@{DOMAIN}"), "exp": now + 300}));
    let response = get(&[("Authorization", format!("Bearer {stranger}"))])
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    // Blocked accounts are refused once the credential cache (300 ms here) has expired.
    with_db!(&test_db.db, pool => sqlx::query("UPDATE accounts SET blocked = TRUE WHERE id = $1")
        .bind(account.id).execute(pool).await.map(|_| ()))
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let response = get(&[("x-api-key", key.clone())]).await.unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("Account blocked"));
    drop(server);
}

#[tokio::test]
async fn accounts_me_end_to_end_on_sqlite() {
    end_to_end(ENGINES[0]).await;
}

#[tokio::test]
async fn accounts_me_end_to_end_on_postgres() {
    end_to_end(ENGINES[1]).await;
}
