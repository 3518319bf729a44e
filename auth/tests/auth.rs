//! The auth middleware end to end on SQLite and PostgreSQL: DIGEST exchanges, API keys (header, cookie, IP
//! binding, expiry, cache and revocation, usage counters), JWT (RS256 and ES256), access levels, expired Spaces
//! and the failed-authentication limiter.

mod common;

use std::time::Duration;

use common::{challenges, message, param, Fixture, CACHE_TTL, HOST, OTHER, PASSWORD, SUPER};
use flexiapi_auth::api_key;
use flexiapi_auth::digest::expected_response;
use flexiapi_core::model::Algorithm;
use flexiapi_core::testing::{Engine, TestResponse, ENGINES};
use flexiapi_core::{time, with_db};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

const OTHER_PEER: &str = "10.0.0.9:5555";

/// The `Authorization` answer to a challenge line.
fn digest_authorization(line: &str, username: &str, password: &str, uri: &str, nc: &str) -> String {
    let realm = param(line, "realm");
    let nonce = param(line, "nonce");
    let opaque = param(line, "opaque");
    let algorithm_name = param(line, "algorithm");
    let algorithm = Algorithm::parse(&algorithm_name).unwrap();
    let ha1 = algorithm.ha1(username, &realm, password);
    let response = expected_response(algorithm, &ha1, &nonce, nc, "0a4f113b", "auth", "GET", uri);
    format!(
        "Digest username=\"{username}\",realm=\"{realm}\",nonce=\"{nonce}\",nc={nc},cnonce=\"0a4f113b\",uri=\"{uri}\",qop=auth,response=\"{response}\",opaque=\"{opaque}\",algorithm={algorithm_name}"
    )
}

async fn challenge_for(f: &Fixture, from: &str, peer: Option<&str>) -> Vec<String> {
    let r = f.get(HOST, "/user", &[("from", from)], peer).await;
    assert_eq!(r.status, 401, "{}", r.text());
    challenges(&r)
}

async fn digest_exchange(engine: Engine) {
    let f = Fixture::new(engine, 0).await;
    let alice = f
        .account("alice", HOST, false, &[Algorithm::Md5, Algorithm::Sha256])
        .await;
    let from = "sip:alice@a.example";

    // Challenge: one line per stored algorithm, storage order, upstream's exact spelling.
    let lines = challenge_for(&f, from, None).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("Digest realm=\"a.example\",qop=\"auth\",algorithm=MD5,nonce=\""));
    assert!(lines[1].contains(",algorithm=SHA-256,"));
    assert_eq!(param(&lines[0], "nonce"), param(&lines[1], "nonce"));
    assert_eq!(param(&lines[0], "opaque"), param(&lines[1], "opaque"));

    for (index, line) in lines.iter().enumerate() {
        // Each algorithm on a fresh challenge.
        let line = if index == 0 {
            line.clone()
        } else {
            challenge_for(&f, from, None).await[1].clone()
        };
        let authorization = digest_authorization(&line, "alice", PASSWORD, "/user", "00000001");
        let ok = f
            .get(
                HOST,
                "/user",
                &[("from", from), ("authorization", &authorization)],
                None,
            )
            .await;
        assert_eq!(ok.status, 200, "{}", ok.text());
        assert_eq!(ok.json()["id"], alice.id);
        assert_eq!(ok.json()["method"], "digest");
        let again = challenges(&ok);
        assert_eq!(again.len(), 2);
        assert_eq!(param(&again[0], "nonce"), param(&line, "nonce"));
        assert_eq!(param(&again[1], "opaque"), param(&line, "opaque"));

        // The next count on the same opaque is fine; replaying a count is refused and burns the opaque.
        let next = digest_authorization(&line, "alice", PASSWORD, "/user", "00000002");
        let ok = f
            .get(
                HOST,
                "/user",
                &[("from", from), ("authorization", &next)],
                None,
            )
            .await;
        assert_eq!(ok.status, 200, "{}", ok.text());
        let replay = f
            .get(
                HOST,
                "/user",
                &[("from", from), ("authorization", &next)],
                None,
            )
            .await;
        assert_eq!(replay.status, 401);
        assert_eq!(message(&replay), "Nonce replayed");
        assert_eq!(challenges(&replay).len(), 2);
        let after = digest_authorization(&line, "alice", PASSWORD, "/user", "00000003");
        let burnt = f
            .get(
                HOST,
                "/user",
                &[("from", from), ("authorization", &after)],
                None,
            )
            .await;
        assert_eq!(burnt.status, 401);
        assert_eq!(message(&burnt), "Invalid opaque");
    }

    // D4: admin routes accept DIGEST too.
    f.account("adam", HOST, true, &[Algorithm::Sha256]).await;
    let r = f
        .get(HOST, "/admin", &[("from", "sip:adam@a.example")], None)
        .await;
    assert_eq!(r.status, 401);
    let line = challenges(&r)[0].clone();
    let authorization = digest_authorization(&line, "adam", PASSWORD, "/admin", "00000001");
    let ok = f
        .get(
            HOST,
            "/admin",
            &[
                ("from", "sip:adam@a.example"),
                ("authorization", &authorization),
            ],
            None,
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());

    // An account without any hash gets a 401 without challenge lines.
    f.account("nopass", HOST, false, &[]).await;
    let r = f
        .get(HOST, "/user", &[("from", "sip:nopass@a.example")], None)
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(message(&r), "Unauthenticated request");
    assert!(challenges(&r).is_empty());

    // uri with the query string is accepted too.
    let line = challenge_for(&f, from, None).await[0].clone();
    let authorization = digest_authorization(&line, "alice", PASSWORD, "/user?x=1", "00000001");
    let ok = f
        .get(
            HOST,
            "/user?x=1",
            &[("from", from), ("authorization", &authorization)],
            None,
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
}

async fn digest_failures(engine: Engine) {
    let f = Fixture::new(engine, 0).await;
    f.account("alice", HOST, false, &[Algorithm::Md5, Algorithm::Sha256])
        .await;
    f.account("mona", HOST, false, &[Algorithm::Md5]).await;
    let from = "sip:alice@a.example";

    let none = f.get(HOST, "/user", &[], None).await;
    assert_eq!(none.status, 401);
    assert_eq!(message(&none), "From header is required or invalid token");
    let empty_key = f.get(HOST, "/user", &[("x-api-key", "")], None).await;
    assert_eq!(
        message(&empty_key),
        "From header is required or invalid token"
    );
    let not_sip = f
        .get(HOST, "/user", &[("from", "alice@a.example")], None)
        .await;
    assert_eq!(not_sip.status, 401);
    assert_eq!(message(&not_sip), "Invalid SIP address");
    let unknown = f
        .get(HOST, "/user", &[("from", "sip:nobody@a.example")], None)
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());

    // Wrong password.
    let line = challenge_for(&f, from, None).await[0].clone();
    let wrong = digest_authorization(&line, "alice", "not-the-password", "/user", "00000001");
    let r = f
        .get(
            HOST,
            "/user",
            &[("from", from), ("authorization", &wrong)],
            None,
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(message(&r), "Unauthorized");
    assert_eq!(challenges(&r).len(), 2);

    // An opaque handed to one IP is worthless from another.
    let line = challenge_for(&f, from, None).await[0].clone();
    let good = digest_authorization(&line, "alice", PASSWORD, "/user", "00000001");
    let r = f
        .get(
            HOST,
            "/user",
            &[("from", from), ("authorization", &good)],
            Some(OTHER_PEER),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(message(&r), "Invalid opaque");

    // A forged nonce on a real opaque.
    let forged = good.replace(&param(&line, "nonce"), &"0".repeat(64));
    let r = f
        .get(
            HOST,
            "/user",
            &[("from", from), ("authorization", &forged)],
            None,
        )
        .await;
    assert_eq!(message(&r), "Invalid opaque");

    // uri of another path: 422 naming the field.
    let line = challenge_for(&f, from, None).await[0].clone();
    let elsewhere = digest_authorization(&line, "alice", PASSWORD, "/admin", "00000001");
    let r = f
        .get(
            HOST,
            "/user",
            &[("from", from), ("authorization", &elsewhere)],
            None,
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.json()["errors"]["uri"].is_array());

    // Missing fields: 401, never a 500.
    let line = challenge_for(&f, from, None).await[0].clone();
    let bare = format!(
        "Digest username=\"alice\",realm=\"a.example\",nonce=\"{}\",nc=00000001,cnonce=\"c\",qop=auth,opaque=\"{}\"",
        param(&line, "nonce"),
        param(&line, "opaque")
    );
    let r = f
        .get(
            HOST,
            "/user",
            &[("from", from), ("authorization", &bare)],
            None,
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(message(&r), "Unauthorized");

    // SHA-256 answer for an account that only has an MD5 hash.
    let line = challenge_for(&f, "sip:mona@a.example", None).await;
    assert_eq!(line.len(), 1);
    let sha_line = line[0].replace("algorithm=MD5", "algorithm=SHA-256");
    let authorization = digest_authorization(&sha_line, "mona", PASSWORD, "/user", "00000001");
    let r = f
        .get(
            HOST,
            "/user",
            &[
                ("from", "sip:mona@a.example"),
                ("authorization", &authorization),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(message(&r), "Wrong algorithm");

    // Expired opaques are refused at request time.
    let line = challenge_for(&f, from, None).await[0].clone();
    with_db!(f.db(), pool => sqlx::query("UPDATE opaques SET created_at = $1")
        .bind(time::now() - chrono::Duration::hours(2)).execute(pool).await.map(|_| ()))
    .unwrap();
    let stale = digest_authorization(&line, "alice", PASSWORD, "/user", "00000001");
    let r = f
        .get(
            HOST,
            "/user",
            &[("from", from), ("authorization", &stale)],
            None,
        )
        .await;
    assert_eq!(message(&r), "Invalid opaque");
}

async fn api_keys(engine: Engine) {
    let f = Fixture::new(engine, 0).await;
    let alice = f.account("alice", HOST, false, &[Algorithm::Sha256]).await;
    let key = api_key::generate_user_key(f.db(), alice.id, "127.0.0.1")
        .await
        .unwrap();
    assert_eq!(key.len(), 40);

    let r = f.get(HOST, "/user", &[("x-api-key", &key)], None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["method"], "api_key");
    assert!(challenges(&r).is_empty());
    let cookie = format!("theme=dark; x-api-key={key}");
    let r = f.get(HOST, "/user", &[("cookie", &cookie)], None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"], alice.id);

    // Bound to the creator's IP.
    let r = f
        .get(HOST, "/user", &[("x-api-key", &key)], Some(OTHER_PEER))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(message(&r), "Invalid API Key");
    let r = f.get(HOST, "/user", &[("x-api-key", "nope")], None).await;
    assert_eq!(message(&r), "Invalid API Key");

    // Usage counters reach the database.
    f.auth.flush().await.unwrap();
    let requests: i64 =
        with_db!(f.db(), pool => sqlx::query_scalar("SELECT requests FROM api_keys WHERE key = $1")
        .bind(&key).fetch_one(pool).await)
        .unwrap();
    assert_eq!(requests, 2);

    // A new user key replaces the old one (visible after the cache TTL, or at once after invalidation).
    let replacement = api_key::generate_user_key(f.db(), alice.id, "127.0.0.1")
        .await
        .unwrap();
    f.auth.invalidate_account(alice.id);
    let r = f.get(HOST, "/user", &[("x-api-key", &key)], None).await;
    assert_eq!(r.status, 401);
    let r = f
        .get(HOST, "/user", &[("x-api-key", &replacement)], None)
        .await;
    assert_eq!(r.status, 200);
    f.execute("DELETE FROM api_keys WHERE account_id = $1", alice.id)
        .await;
    tokio::time::sleep(CACHE_TTL + Duration::from_millis(200)).await;
    let r = f
        .get(HOST, "/user", &[("x-api-key", &replacement)], None)
        .await;
    assert_eq!(r.status, 401, "revocation is visible after the cache TTL");

    // A user key unused for longer than APP_API_KEY_EXPIRATION_MINUTES (60) is expired at request time.
    let stale = api_key::generate_user_key(f.db(), alice.id, "127.0.0.1")
        .await
        .unwrap();
    with_db!(f.db(), pool => sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE key = $2")
        .bind(time::now() - chrono::Duration::minutes(61)).bind(&stale).execute(pool).await.map(|_| ()))
    .unwrap();
    let r = f.get(HOST, "/user", &[("x-api-key", &stale)], None).await;
    assert_eq!(r.status, 401);

    // Stable keys never expire and are not IP-bound; admin-panel keys expire after their own delay.
    let stable = api_key::create_stable_key(f.db(), alice.id, None)
        .await
        .unwrap();
    with_db!(f.db(), pool => sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE key = $2")
        .bind(time::now() - chrono::Duration::days(400)).bind(&stable).execute(pool).await.map(|_| ()))
    .unwrap();
    let r = f
        .get(HOST, "/user", &[("x-api-key", &stable)], Some(OTHER_PEER))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let panel = api_key::create_stable_key(f.db(), alice.id, None)
        .await
        .unwrap();
    with_db!(f.db(), pool => sqlx::query("UPDATE api_keys SET last_used_at = $1, expires_after_last_used_minutes = 5 WHERE key = $2")
        .bind(time::now() - chrono::Duration::minutes(6)).bind(&panel).execute(pool).await.map(|_| ()))
    .unwrap();
    let r = f.get(HOST, "/user", &[("x-api-key", &panel)], None).await;
    assert_eq!(r.status, 401);
}

async fn access_levels(engine: Engine) {
    let f = Fixture::new(engine, 0).await;
    let alice = f.account("alice", HOST, false, &[Algorithm::Sha256]).await;
    let adam = f.account("adam", HOST, true, &[Algorithm::Sha256]).await;
    let bob = f.account("bob", OTHER, true, &[Algorithm::Sha256]).await;
    let root = f.account("root", SUPER, true, &[Algorithm::Sha256]).await;
    let bella = f.account("bella", HOST, true, &[Algorithm::Sha256]).await;
    let db = f.db().clone();
    let key = |id| {
        let db = db.clone();
        async move { api_key::create_stable_key(&db, id, None).await.unwrap() }
    };
    let (alice_key, adam_key, bob_key, root_key, bella_key) = (
        key(alice.id).await,
        key(adam.id).await,
        key(bob.id).await,
        key(root.id).await,
        key(bella.id).await,
    );
    let call = |host: &'static str, path: &'static str, key: String| {
        let f = &f;
        async move { f.get(host, path, &[("x-api-key", &key)], None).await }
    };
    let expect = |r: TestResponse, status: u16, text: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        if !text.is_empty() {
            assert_eq!(message(&r), text);
        }
    };

    expect(call(HOST, "/user", alice_key.clone()).await, 200, "");
    expect(
        call(HOST, "/admin", alice_key.clone()).await,
        403,
        "Unauthorized area",
    );
    expect(call(HOST, "/admin", adam_key.clone()).await, 200, "");
    expect(
        call(HOST, "/super", adam_key.clone()).await,
        403,
        "Unauthorized area",
    );
    // Accounts of another Space, admin or not, are foreigners here.
    expect(
        call(HOST, "/admin", bob_key.clone()).await,
        403,
        "Unauthorized area",
    );
    expect(
        call(HOST, "/user", bob_key.clone()).await,
        403,
        "Unauthorized area",
    );
    expect(call(OTHER, "/admin", bob_key.clone()).await, 200, "");
    // Super admins go everywhere.
    let r = call(HOST, "/admin", root_key.clone()).await;
    expect(r, 200, "");
    let r = call(OTHER, "/super", root_key.clone()).await;
    assert_eq!(r.json()["super"], true);
    // The root of a super Space who is not admin is not a super admin.
    let plain = f.account("plain", SUPER, false, &[Algorithm::Sha256]).await;
    expect(
        call(SUPER, "/super", key(plain.id).await).await,
        403,
        "Unauthorized area",
    );

    // Blocked accounts: 403 everywhere restricted, public routes unaffected.
    f.execute("UPDATE accounts SET blocked = TRUE WHERE id = $1", bella.id)
        .await;
    expect(
        call(HOST, "/user", bella_key.clone()).await,
        403,
        "Account blocked",
    );
    expect(
        call(HOST, "/admin", bella_key).await,
        403,
        "Account blocked",
    );

    // An expired Space: 403 for its own people, super admins and public routes keep working.
    with_db!(f.db(), pool => sqlx::query("UPDATE spaces SET expire_at = $1 WHERE domain = $2")
        .bind(time::now() - chrono::Duration::days(1)).bind(HOST).execute(pool).await.map(|_| ()))
    .unwrap();
    expect(
        call(HOST, "/admin", adam_key).await,
        403,
        "The related Space has expired",
    );
    expect(
        call(HOST, "/user", alice_key.clone()).await,
        403,
        "The related Space has expired",
    );
    expect(call(HOST, "/admin", root_key).await, 200, "");
    let public = f.get(HOST, "/public", &[], None).await;
    assert_eq!(public.status, 200);
}

/// A signed token.
fn token(
    algorithm: jsonwebtoken::Algorithm,
    key: &EncodingKey,
    claims: serde_json::Value,
) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), &claims, key).unwrap()
}

fn bearer_error(r: &TestResponse) -> String {
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.body.is_empty(), "{}", r.text());
    let lines = challenges(r);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("Bearer "), "{}", lines[0]);
    assert!(lines[0].contains("error=\"invalid_token\""), "{}", lines[0]);
    lines[0].clone()
}

async fn jwt(engine: Engine) {
    let f = Fixture::new(engine, 0).await;
    let alice = f.account("alice", HOST, false, &[Algorithm::Sha256]).await;
    let bob = f.account("bob", OTHER, false, &[Algorithm::Sha256]).await;
    let now = chrono::Utc::now().timestamp();

    // RS256 with the global key (FLEXIAPI_JWT_PUBLIC_KEY_PATH) on a.example.
    let rsa = EncodingKey::from_rsa_pem(&f.rsa_private_pem).unwrap();
    let rs = |claims| token(jsonwebtoken::Algorithm::RS256, &rsa, claims);
    let valid = rs(json!({"sip_identity": "sip:alice@a.example", "exp": now + 600}));
    let r = f
        .get(
            HOST,
            "/user",
            &[("authorization", &format!("Bearer {valid}"))],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"], alice.id);
    assert_eq!(r.json()["method"], "jwt");
    let forever = rs(json!({"sip_identity": "sip:alice@a.example"}));
    let r = f
        .get(
            HOST,
            "/user",
            &[("authorization", &format!("Bearer {forever}"))],
            None,
        )
        .await;
    assert_eq!(
        r.status,
        200,
        "a token without exp never expires: {}",
        r.text()
    );
    let by_email = rs(json!({"email": "alice@a.example.mail", "exp": now + 600}));
    let r = f
        .get(
            HOST,
            "/user",
            &[("authorization", &format!("Bearer {by_email}"))],
            None,
        )
        .await;
    assert_eq!(r.json()["id"], alice.id);

    let expired = rs(json!({"sip_identity": "sip:alice@a.example", "exp": now - 600}));
    let r = f
        .get(
            HOST,
            "/user",
            &[("authorization", &format!("Bearer {expired}"))],
            None,
        )
        .await;
    assert!(bearer_error(&r).contains("Expired"));
    let early =
        rs(json!({"sip_identity": "sip:alice@a.example", "exp": now + 1200, "nbf": now + 600}));
    let r = f
        .get(
            HOST,
            "/user",
            &[("authorization", &format!("Bearer {early}"))],
            None,
        )
        .await;
    assert!(bearer_error(&r).contains("not valid yet"));
    let dir = tempfile::tempdir().unwrap();
    let (_, stranger_pem) = common::rsa_key_pair(dir.path(), "stranger");
    let stranger = EncodingKey::from_rsa_pem(&stranger_pem).unwrap();
    let forged = token(
        jsonwebtoken::Algorithm::RS256,
        &stranger,
        json!({"sip_identity": "sip:alice@a.example", "exp": now + 600}),
    );
    let r = f
        .get(
            HOST,
            "/user",
            &[("authorization", &format!("Bearer {forged}"))],
            None,
        )
        .await;
    assert!(bearer_error(&r).contains("signature"));
    let r = f
        .get(
            HOST,
            "/user",
            &[("authorization", "Bearer not.a.token")],
            None,
        )
        .await;
    bearer_error(&r);
    let nobody = rs(json!({"sip_identity": "sip:nobody@a.example", "exp": now + 600}));
    let r = f
        .get(
            HOST,
            "/user",
            &[("authorization", &format!("Bearer {nobody}"))],
            None,
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        message(&r),
        "The JWT token is not related to someone in the system"
    );

    // No credential at all: the Bearer challenge is offered; with an API key, it is not.
    let r = f.get(HOST, "/user", &[], None).await;
    assert_eq!(r.status, 401);
    assert!(challenges(&r).iter().any(|l| l.starts_with("Bearer ")));
    let r = f.get(HOST, "/user", &[("x-api-key", "wrong")], None).await;
    assert!(challenges(&r).is_empty());

    // ES256 with b.example's own OIDC configuration (its claim name, its key).
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let space_id: i64 =
        with_db!(f.db(), pool => sqlx::query_scalar("SELECT id FROM spaces WHERE domain = $1")
        .bind(OTHER).fetch_one(pool).await)
        .unwrap();
    with_db!(f.db(), pool => sqlx::query(
        "INSERT INTO space_oidc_authentication_configurations (space_id, server_url, realm, sip_identifier, public_key) \
         VALUES ($1, 'https://sso.b.example/', 'b', 'sip_uri', $2)")
        .bind(space_id).bind(ec.public_key_pem()).execute(pool).await.map(|_| ()))
    .unwrap();
    let es_key = EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap();
    let es = |claims| token(jsonwebtoken::Algorithm::ES256, &es_key, claims);
    let valid = es(json!({"sip_uri": "sip:bob@b.example", "exp": now + 600}));
    let r = f
        .get(
            OTHER,
            "/user",
            &[("authorization", &format!("Bearer {valid}"))],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["id"], bob.id);
    let expired = es(json!({"sip_uri": "sip:bob@b.example", "exp": now - 600}));
    let r = f
        .get(
            OTHER,
            "/user",
            &[("authorization", &format!("Bearer {expired}"))],
            None,
        )
        .await;
    let line = bearer_error(&r);
    assert!(line.contains("realm=\"b\""), "{line}");
    let early = es(json!({"sip_uri": "sip:bob@b.example", "exp": now + 1200, "nbf": now + 600}));
    let r = f
        .get(
            OTHER,
            "/user",
            &[("authorization", &format!("Bearer {early}"))],
            None,
        )
        .await;
    bearer_error(&r);
    // The global RSA key does not open b.example, which has its own key.
    let rsa_for_b = rs(json!({"sip_uri": "sip:bob@b.example", "exp": now + 600}));
    let r = f
        .get(
            OTHER,
            "/user",
            &[("authorization", &format!("Bearer {rsa_for_b}"))],
            None,
        )
        .await;
    bearer_error(&r);
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let other_key = EncodingKey::from_ec_pem(other.serialize_pem().as_bytes()).unwrap();
    let forged = token(
        jsonwebtoken::Algorithm::ES256,
        &other_key,
        json!({"sip_uri": "sip:bob@b.example", "exp": now + 600}),
    );
    let r = f
        .get(
            OTHER,
            "/user",
            &[("authorization", &format!("Bearer {forged}"))],
            None,
        )
        .await;
    bearer_error(&r);
}

async fn failure_flood(engine: Engine) {
    let f = Fixture::new(engine, 5).await;
    let alice = f.account("alice", HOST, false, &[Algorithm::Sha256]).await;
    let key = api_key::create_stable_key(f.db(), alice.id, None)
        .await
        .unwrap();
    for _ in 0..5 {
        let r = f.get(HOST, "/user", &[("x-api-key", "wrong")], None).await;
        assert_eq!(r.status, 401);
    }
    let r = f.get(HOST, "/user", &[("x-api-key", "wrong")], None).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(message(&r), "Too Many Attempts.");
    let retry_after: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Successful requests from the same IP are never throttled.
    for _ in 0..20 {
        let r = f.get(HOST, "/user", &[("x-api-key", &key)], None).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Another IP has its own budget.
    let r = f
        .get(HOST, "/user", &[("x-api-key", "wrong")], Some(OTHER_PEER))
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn digest_exchange_on_both_engines() {
    for engine in ENGINES {
        digest_exchange(engine).await;
    }
}

#[tokio::test]
async fn digest_failures_on_both_engines() {
    for engine in ENGINES {
        digest_failures(engine).await;
    }
}

#[tokio::test]
async fn api_keys_on_both_engines() {
    for engine in ENGINES {
        api_keys(engine).await;
    }
}

#[tokio::test]
async fn access_levels_on_both_engines() {
    for engine in ENGINES {
        access_levels(engine).await;
    }
}

#[tokio::test]
async fn jwt_rs256_and_es256_on_both_engines() {
    for engine in ENGINES {
        jwt(engine).await;
    }
}

#[tokio::test]
async fn failure_flood_throttles_failures_only_on_both_engines() {
    for engine in ENGINES {
        failure_flood(engine).await;
    }
}
