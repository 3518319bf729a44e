//! Shared fixture of the auth integration tests: three Spaces (a plain one, another plain one, a `super` one),
//! accounts with MD5 + SHA-256 hashes, and a tiny router (resolve_space + the auth middleware + a handler that
//! echoes who it sees) driven in-process like the transport would.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::{Extension, Json, Router};
use flexiapi_auth::{
    require_admin, require_super_admin, require_user, Authenticated, Authenticator, Method,
};
use flexiapi_core::config::Source;
use flexiapi_core::http::context::resolve_space;
use flexiapi_core::http::{Peer, SpaceDirectory};
use flexiapi_core::model::{Account, Algorithm, Space};
use flexiapi_core::testing::{send, Engine, TestDb, TestResponse};
use flexiapi_core::{time, with_db, Config};
use http::Request;
use serde_json::{json, Value};

/// Host and domain of the plain Space most tests run on.
pub const HOST: &str = "a.example";
/// Host and domain of a second plain Space.
pub const OTHER: &str = "b.example";
/// Host and domain of the `super` Space.
pub const SUPER: &str = "super.example";
/// Every test account's password.
pub const PASSWORD: &str = "secret";
/// API key cache TTL of the fixture (short, so revocation tests stay quick).
pub const CACHE_TTL: Duration = Duration::from_millis(300);

/// A database, an authenticator and the router around it.
pub struct Fixture {
    pub test_db: TestDb,
    pub auth: Arc<Authenticator>,
    pub router: Router,
    pub rsa_private_pem: Vec<u8>,
    _keys: tempfile::TempDir,
}

async fn echo(Extension(who): Extension<Authenticated>) -> Json<Value> {
    let method = match who.method {
        Method::Digest => "digest",
        Method::ApiKey => "api_key",
        Method::Jwt => "jwt",
    };
    Json(json!({
        "id": who.account.id,
        "username": who.account.username,
        "domain": who.account.domain,
        "super": who.is_super_admin,
        "method": method,
    }))
}

/// An RSA key pair made by the real `openssl` CLI: (public key path, private PKCS#8 PEM).
pub fn rsa_key_pair(dir: &std::path::Path, name: &str) -> (PathBuf, Vec<u8>) {
    let private = dir.join(format!("{name}-private.pem"));
    let public = dir.join(format!("{name}-public.pem"));
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
        .expect("openssl");
    assert!(status.success());
    (public, std::fs::read(private).unwrap())
}

impl Fixture {
    /// A fresh fixture on `engine`; `failure_limit` per minute (0 disables the limiter).
    pub async fn new(engine: Engine, failure_limit: u32) -> Fixture {
        let test_db = TestDb::new(engine).await;
        let db = test_db.db.clone();
        for (domain, is_super) in [(HOST, false), (OTHER, false), (SUPER, true)] {
            Space::create_or_update(&db, domain, domain, domain, is_super)
                .await
                .unwrap();
        }
        let keys = tempfile::tempdir().unwrap();
        let (public, rsa_private_pem) = rsa_key_pair(keys.path(), "global");
        let source = Source::from_pairs([
            (
                "FLEXIAPI_AUTH_CACHE_TTL_MS".to_owned(),
                CACHE_TTL.as_millis().to_string(),
            ),
            (
                "FLEXIAPI_AUTH_FAILURE_LIMIT_PER_MINUTE".to_owned(),
                failure_limit.to_string(),
            ),
            (
                "FLEXIAPI_JWT_PUBLIC_KEY_PATH".to_owned(),
                public.display().to_string(),
            ),
        ]);
        let config = Config::from_source(&source).unwrap();
        let auth = Arc::new(Authenticator::new(db.clone(), &config).unwrap());
        // TTL zero: Space changes (expiry) are seen by the next request.
        let directory = Arc::new(SpaceDirectory::new(db.clone(), Duration::ZERO, None));
        let router = Router::new()
            .merge(
                Router::new()
                    .route("/user", get(echo))
                    .route_layer(from_fn_with_state(auth.clone(), require_user)),
            )
            .merge(
                Router::new()
                    .route("/admin", get(echo))
                    .route_layer(from_fn_with_state(auth.clone(), require_admin)),
            )
            .merge(
                Router::new()
                    .route("/super", get(echo))
                    .route_layer(from_fn_with_state(auth.clone(), require_super_admin)),
            )
            .route("/public", get(|| async { "public" }))
            .layer(from_fn_with_state(directory, resolve_space));
        Fixture {
            test_db,
            auth,
            router,
            rsa_private_pem,
            _keys: keys,
        }
    }

    /// The database.
    pub fn db(&self) -> &flexiapi_core::Db {
        &self.test_db.db
    }

    /// Inserts an account with hashes for `algorithms` (in that storage order) of [`PASSWORD`].
    pub async fn account(
        &self,
        username: &str,
        domain: &str,
        admin: bool,
        algorithms: &[Algorithm],
    ) -> Account {
        let now = time::now();
        let id: i64 = with_db!(self.db(), pool => sqlx::query_scalar(
            "INSERT INTO accounts (username, domain, email, activated, ip_address, user_agent, admin, created_at, updated_at) \
             VALUES ($1, $2, $3, TRUE, '127.0.0.1', 'test', $4, $5, $5) RETURNING id")
            .bind(username).bind(domain).bind(format!("{username}@{domain}.mail")).bind(admin).bind(now)
            .fetch_one(pool).await)
        .unwrap();
        let account = Account::find(self.db(), id).await.unwrap().unwrap();
        for algorithm in algorithms {
            account
                .set_password(self.db(), PASSWORD, *algorithm, domain)
                .await
                .unwrap();
        }
        account
    }

    /// Runs SQL with no result.
    pub async fn execute(&self, sql: &str, id: i64) {
        with_db!(self.db(), pool => sqlx::query(sql).bind(id).execute(pool).await.map(|_| ()))
            .unwrap();
    }

    /// GET `path` on `host` with `headers`, from `peer` (default the test peer).
    pub async fn get(
        &self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
        peer: Option<&str>,
    ) -> TestResponse {
        let mut builder = Request::builder()
            .method("GET")
            .uri(path)
            .header("host", host)
            .header("accept", "application/json");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut request = builder.body(Body::empty()).unwrap();
        if let Some(peer) = peer {
            let addr: SocketAddr = peer.parse().unwrap();
            request.extensions_mut().insert(Peer {
                addr,
                secure: false,
            });
        }
        send(&self.router, request).await
    }
}

/// The `message` of a JSON error body.
pub fn message(response: &TestResponse) -> String {
    response.json()["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The `WWW-Authenticate` lines of an answer.
pub fn challenges(response: &TestResponse) -> Vec<String> {
    response
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// A quoted or bare parameter of a challenge line.
pub fn param(line: &str, name: &str) -> String {
    let start = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
    let rest = line[start..].trim_start_matches('"');
    rest.split(['"', ',']).next().unwrap().to_owned()
}
