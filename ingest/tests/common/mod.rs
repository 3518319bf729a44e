//! Test harness: a real database (SQLite or PostgreSQL), the real authenticator, the ingest router composed
//! as the binary does (upstream 404/405, Space resolution), a Space with an admin and a user.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use flexiapi_auth::Authenticator;
use flexiapi_core::config::Source;
use flexiapi_core::http::context::resolve_space;
use flexiapi_core::http::{fallback, SpaceDirectory};
use flexiapi_core::model::Space;
use flexiapi_core::testing::{json_request, send, Engine, TestDb, TestResponse};
use flexiapi_core::{with_db, Config, Db};
use flexiapi_ingest::Ingest;
use http::Request;
use serde_json::Value;

/// Host and SIP domain of the test Space.
pub const HOST: &str = "sip.example.org";
/// A second Space.
pub const OTHER: &str = "other.example.org";

pub struct Harness {
    pub test_db: TestDb,
    pub router: Router,
    pub ingest: Option<Ingest>,
    /// API key of an admin of HOST.
    pub admin_key: String,
    /// API key of a plain user `tony@HOST`.
    pub user_key: String,
    /// Id of `tony@HOST`.
    pub tony_id: i64,
}

impl Harness {
    pub async fn new(engine: Engine) -> Harness {
        Self::with_settings(engine, &[]).await
    }

    pub async fn with_settings(engine: Engine, settings: &[(&str, &str)]) -> Harness {
        Self::on(TestDb::new(engine).await, settings).await
    }

    /// A harness on an existing (migrated) database.
    pub async fn on(test_db: TestDb, settings: &[(&str, &str)]) -> Harness {
        let mut pairs: Vec<(String, String)> =
            vec![("FLEXIAPI_AUTH_CACHE_TTL_MS".into(), "0".into())];
        pairs.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_source(&Source::from_pairs(pairs)).expect("config");
        let db = test_db.db.clone();
        Space::create_or_update(&db, HOST, HOST, "Example", false)
            .await
            .unwrap();
        Space::create_or_update(&db, OTHER, OTHER, "Other", false)
            .await
            .unwrap();
        let (_, admin_key) = account(&db, "admin", HOST, true).await;
        let (tony_id, user_key) = account(&db, "tony", HOST, false).await;
        let auth = Arc::new(Authenticator::new(db.clone(), &config).expect("authenticator"));
        let spaces = Arc::new(SpaceDirectory::new(
            db.clone(),
            Duration::from_millis(0),
            None,
        ));
        let ingest = Ingest::start(db.clone(), &config, auth)
            .await
            .expect("ingest");
        let router = fallback::with_upstream_errors(ingest.router())
            .layer(axum::middleware::from_fn_with_state(spaces, resolve_space));
        Harness {
            test_db,
            router,
            ingest: Some(ingest),
            admin_key,
            user_key,
            tony_id,
        }
    }

    pub fn db(&self) -> &Db {
        &self.test_db.db
    }

    /// A JSON request with the admin key.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> TestResponse {
        self.raw(
            method,
            path,
            Some(&self.admin_key),
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }

    /// A JSON request with the key of the plain user `tony`.
    pub async fn user(&self, method: &str, path: &str) -> TestResponse {
        self.raw(method, path, Some(&self.user_key), None).await
    }

    /// A JSON request with an optional key and a raw body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> TestResponse {
        let mut builder = json_request(method, HOST, path);
        if let Some(key) = key {
            builder = builder.header("x-api-key", key);
        }
        let request: Request<axum::body::Body> = builder
            .body(body.map_or_else(axum::body::Body::empty, axum::body::Body::from))
            .unwrap();
        send(&self.router, request).await
    }

    /// One i64 from SQL.
    pub async fn count(&self, sql: &str) -> i64 {
        with_db!(self.db(), pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await)
            .unwrap()
    }

    /// Runs a statement.
    pub async fn exec(&self, sql: &str) {
        with_db!(self.db(), pool => sqlx::query(sql).execute(pool).await.map(|_| ())).unwrap();
    }
}

/// Creates an account and a stable API key; returns (id, key).
pub async fn account(db: &Db, username: &str, domain: &str, admin: bool) -> (i64, String) {
    let now = flexiapi_core::time::now();
    let id: i64 = with_db!(db, pool => sqlx::query_scalar(
        "INSERT INTO accounts (username, domain, activated, ip_address, user_agent, admin, created_at, updated_at) \
         VALUES ($1, $2, TRUE, '127.0.0.1', 'test', $3, $4, $4) RETURNING id")
        .bind(username).bind(domain).bind(admin).bind(now)
        .fetch_one(pool).await)
    .unwrap();
    let key = flexiapi_auth::api_key::create_stable_key(db, id, None)
        .await
        .unwrap();
    (id, key)
}

/// A 64-hex event id derived from a label.
pub fn event_id(label: &str) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for i in 0..32u8 {
        let byte = label.bytes().fold(i.wrapping_mul(31), |a, b| {
            a.wrapping_mul(17).wrapping_add(b)
        });
        write!(out, "{byte:02x}").unwrap();
    }
    out
}

/// A real-looking Flexisip device id: `"<urn:uuid:…>"`.
pub fn device(n: u32) -> String {
    format!("\"<urn:uuid:5d2c8f1e-7a1b-4c3d-9e8f-{n:012x}>\"")
}

/// A device id as it sits in a path once percent-encoded (what the transport hands the router).
pub fn device_path(n: u32) -> String {
    device(n)
        .replace('"', "%22")
        .replace('<', "%3C")
        .replace('>', "%3E")
}
