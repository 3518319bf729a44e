//! Test harness: a real database (SQLite or PostgreSQL), the real authenticator and the API router composed
//! as the binary does, plus a capturing SMTP server and SMS endpoint.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use flexiapi_api::account::store::{self, NewAccount};
use flexiapi_api::Api;
use flexiapi_auth::Authenticator;
use flexiapi_core::config::Source;
use flexiapi_core::http::context::resolve_space;
use flexiapi_core::http::{fallback, SpaceDirectory};
use flexiapi_core::model::{Account, Algorithm, Space};
use flexiapi_core::testing::{json_request, send, with_json, Engine, TestDb, TestResponse};
use flexiapi_core::{with_db, Config, Db};

/// Host / domain of the first (super) space.
pub const HOST: &str = "sip.example.com";
/// Host / domain of a second, ordinary space.
pub const OTHER: &str = "sip2.example.com";

pub struct Harness {
    pub test_db: TestDb,
    pub router: Router,
    pub config: Config,
}

impl Harness {
    /// Two spaces (HOST super, OTHER plain) on `engine`, with extra settings.
    pub async fn new(engine: Engine, settings: &[(&str, &str)]) -> Harness {
        let test_db = TestDb::new(engine).await;
        let mut pairs: Vec<(String, String)> =
            vec![("FLEXIAPI_AUTH_CACHE_TTL_MS".into(), "0".into())];
        pairs.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = Config::from_source(&Source::from_pairs(pairs)).expect("config");
        Space::create_or_update(&test_db.db, HOST, HOST, "Example", true)
            .await
            .unwrap();
        Space::create_or_update(&test_db.db, OTHER, OTHER, "Other", false)
            .await
            .unwrap();
        let router = build_router(&test_db.db, &config).await;
        Harness {
            test_db,
            router,
            config,
        }
    }

    pub fn db(&self) -> &Db {
        &self.test_db.db
    }

    /// Creates an account with a password (`password`, SHA-256) and a stable API key; returns (account, key).
    pub async fn account(&self, username: &str, domain: &str, admin: bool) -> (Account, String) {
        let account = store::create(
            self.db(),
            NewAccount {
                username: username.into(),
                domain: domain.into(),
                activated: true,
                admin,
                ip_address: "127.0.0.1".into(),
                user_agent: "test".into(),
                password: Some(("password".into(), Algorithm::Sha256)),
                ..NewAccount::default()
            },
        )
        .await
        .unwrap();
        let key = format!("key{}{}", username.replace(['.', '-'], ""), account.id);
        let now = flexiapi_core::time::now();
        with_db!(self.db(), pool => sqlx::query(
            "INSERT INTO api_keys (account_id, key, name, requests, last_used_at, expires_after_last_used_minutes, created_at, updated_at) \
             VALUES ($1, $2, 'test', 0, $3, 0, $3, $3)")
            .bind(account.id).bind(&key).bind(now)
            .execute(pool).await.map(|_| ()))
        .unwrap();
        (account, key)
    }

    /// Sends a JSON request to `host` with an optional API key.
    pub async fn call(
        &self,
        method: &str,
        host: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let mut builder = json_request(method, host, path);
        if let Some(key) = key {
            builder = builder.header("x-api-key", key);
        }
        send(&self.router, with_json(builder, body.as_ref())).await
    }

    /// Like [`call`] with extra headers.
    pub async fn call_with(
        &self,
        method: &str,
        host: &str,
        path: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> TestResponse {
        let mut builder = json_request(method, host, path);
        if let Some(key) = key {
            builder = builder.header("x-api-key", key);
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        send(&self.router, with_json(builder, body.as_ref())).await
    }

    /// Runs a query returning one i64.
    pub async fn count(&self, sql: &str) -> i64 {
        with_db!(self.db(), pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await)
            .unwrap()
    }

    /// Runs a statement.
    pub async fn exec(&self, sql: &str) {
        with_db!(self.db(), pool => sqlx::query(sql).execute(pool).await.map(|_| ())).unwrap();
    }
}

/// The API router as the binary composes it (upstream 404/405, Space resolution).
pub async fn build_router(db: &Db, config: &Config) -> Router {
    let auth = Arc::new(Authenticator::new(db.clone(), config).expect("authenticator"));
    let spaces = Arc::new(SpaceDirectory::new(
        db.clone(),
        Duration::from_millis(0),
        None,
    ));
    let api = Api::start(db.clone(), config.clone(), auth, spaces.clone())
        .await
        .expect("api");
    fallback::with_upstream_errors(api.router())
        .layer(axum::middleware::from_fn_with_state(spaces, resolve_space))
}

/// A real (minimal) SMTP server on 127.0.0.1 that records every message's DATA.
pub struct SmtpCapture {
    pub port: u16,
    pub messages: Arc<Mutex<Vec<String>>>,
}

impl SmtpCapture {
    pub async fn start() -> SmtpCapture {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    write.write_all(b"220 capture ESMTP\r\n").await.ok();
                    let mut in_data = false;
                    let mut data = String::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if in_data {
                            if line == "." {
                                in_data = false;
                                sink.lock().unwrap().push(std::mem::take(&mut data));
                                write.write_all(b"250 queued\r\n").await.ok();
                            } else {
                                data.push_str(&line);
                                data.push('\n');
                            }
                            continue;
                        }
                        let verb = line.to_ascii_uppercase();
                        let reply: &[u8] = if verb.starts_with("EHLO") {
                            b"250-capture\r\n250 8BITMIME\r\n"
                        } else if verb.starts_with("DATA") {
                            in_data = true;
                            b"354 go ahead\r\n"
                        } else if verb.starts_with("QUIT") {
                            write.write_all(b"221 bye\r\n").await.ok();
                            break;
                        } else {
                            b"250 ok\r\n"
                        };
                        write.write_all(reply).await.ok();
                    }
                });
            }
        });
        SmtpCapture { port, messages }
    }

    pub fn all(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

/// A real HTTP endpoint standing in for the SMS provider; records every JSON body.
pub struct SmsCapture {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Value>>>,
}

impl SmsCapture {
    pub async fn start() -> SmsCapture {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let sink = requests.clone();
        let app = Router::new().route(
            "/sms",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push(body);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/sms", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        SmsCapture { url, requests }
    }

    pub fn all(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}
