//! Test support shared by every crate (feature `testing`): one fresh database per test on each engine, and
//! an in-process way to send a request through a router as the transport would deliver it.
//!
//! PostgreSQL tests need `FLEXIAPI_TEST_POSTGRES_URL` (a superuser URL); `scripts/test.sh` starts a real
//! server and sets it. Without it those tests fail loudly rather than pass silently.

use std::net::SocketAddr;

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::db::Db;
use crate::http::Peer;

pub mod h2;
pub mod tls;

/// A migrated database that lives as long as the value.
pub struct TestDb {
    /// The pool.
    pub db: Db,
    /// Its URL (for a server process started by the test).
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// Which engine a [`TestDb`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl TestDb {
    /// A fresh database on `engine`.
    pub async fn new(engine: Engine) -> TestDb {
        match engine {
            Engine::Sqlite => Self::sqlite().await,
            Engine::Postgres => Self::postgres().await,
        }
    }

    /// A fresh, empty database on `engine`, no migration applied (for tests of the migrations themselves).
    pub async fn unmigrated(engine: Engine) -> TestDb {
        match engine {
            Engine::Sqlite => Self::open_sqlite().await,
            Engine::Postgres => Self::open_postgres().await,
        }
    }

    /// A fresh SQLite file in a temporary directory, migrated.
    pub async fn sqlite() -> TestDb {
        let test = Self::open_sqlite().await;
        test.db.migrate().await.expect("migrate sqlite");
        test
    }

    async fn open_sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let db = Db::connect(&url, 4).await.expect("open sqlite");
        TestDb {
            db,
            url,
            _dir: Some(dir),
        }
    }

    /// A fresh PostgreSQL database on the server of `FLEXIAPI_TEST_POSTGRES_URL`, migrated.
    pub async fn postgres() -> TestDb {
        let test = Self::open_postgres().await;
        test.db.migrate().await.expect("migrate postgres");
        test
    }

    async fn open_postgres() -> TestDb {
        let admin_url = postgres_admin_url();
        let name = format!("flexiapi_test_{}", uuid_like());
        let admin = Db::connect(&admin_url, 1)
            .await
            .expect("connect to the test PostgreSQL");
        if let Db::Postgres(pool) = &admin {
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(pool)
                .await
                .expect("create test database");
        }
        admin.close().await;
        let url = replace_database(&admin_url, &name);
        let db = Db::connect(&url, 4)
            .await
            .expect("connect to the test database");
        TestDb {
            db,
            url,
            _dir: None,
        }
    }
}

/// Both engines, for tests that must hold on SQLite and PostgreSQL alike.
pub const ENGINES: [Engine; 2] = [Engine::Sqlite, Engine::Postgres];

/// The PostgreSQL superuser URL tests create databases with.
pub fn postgres_admin_url() -> String {
    std::env::var("FLEXIAPI_TEST_POSTGRES_URL").expect(
        "FLEXIAPI_TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh, which starts PostgreSQL",
    )
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let without_db = match base.rfind('/') {
        Some(slash) if base[..slash].contains("://") && slash > base.find("://").unwrap() + 2 => {
            &base[..slash]
        }
        _ => base,
    };
    match query {
        Some(query) => format!("{without_db}/{name}?{query}"),
        None => format!("{without_db}/{name}"),
    }
}

fn uuid_like() -> String {
    use rand::Rng;
    let value: u64 = rand::thread_rng().gen();
    format!("{value:016x}")
}

/// What a router answered.
#[derive(Debug)]
pub struct TestResponse {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Bytes,
}

impl TestResponse {
    /// The body as UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }
}

/// The peer address in-process requests come from.
pub const TEST_PEER: &str = "127.0.0.1:40000";

/// Sends `request` through `router` as the transport would (with a [`Peer`] extension from [`TEST_PEER`]
/// unless the request already has one).
pub async fn send(router: &Router, mut request: Request<Body>) -> TestResponse {
    if request.extensions().get::<Peer>().is_none() {
        let addr: SocketAddr = TEST_PEER.parse().expect("peer address");
        request.extensions_mut().insert(Peer {
            addr,
            secure: false,
        });
    }
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("routers are infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    TestResponse {
        status,
        headers,
        body,
    }
}

/// A request builder to `host` with upstream's JSON headers (`Accept`/`Content-Type: application/json`).
pub fn json_request(method: &str, host: &str, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, host)
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::CONTENT_TYPE, "application/json")
}

/// Finishes a [`json_request`] builder with a JSON body (or none).
pub fn with_json(
    builder: http::request::Builder,
    body: Option<&serde_json::Value>,
) -> Request<Body> {
    let body = body.map_or_else(Body::empty, |v| Body::from(v.to_string()));
    builder.body(body).expect("request")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_replaced() {
        assert_eq!(
            replace_database("postgres://u@127.0.0.1:5/postgres", "x"),
            "postgres://u@127.0.0.1:5/x"
        );
        assert_eq!(
            replace_database("postgres://u@127.0.0.1:5/postgres?sslmode=disable", "x"),
            "postgres://u@127.0.0.1:5/x?sslmode=disable"
        );
        assert_eq!(
            replace_database("postgres://u@h:5", "x"),
            "postgres://u@h:5/x"
        );
    }
}
