//! Authentication shared by the account API and the statistics ingest.
//!
//! Read in this order: [`Authenticator`] (one per process) decides who a request is — JWT bearer, then API key
//! (header, else cookie), then DIGEST ([`digest`]) — and whether that identity may use a route group
//! ([`Access`]): blocked accounts, expired Spaces and foreign Spaces are refused. Route groups apply it with
//! [`require_user`], [`require_admin`] or [`require_super_admin`] (axum middleware), which put an
//! [`Authenticated`] in the request extensions and add the DIGEST challenge lines to successful answers.
//! Failed attempts are rate-limited per IP; successful ones never are (Flexisip streams statistics from one
//! IP and counts a 429 as delivered).

pub mod api_key;
pub mod digest;
pub mod error;
pub mod jwt;
pub mod metrics;
pub mod sip;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flexiapi_core::cache::TtlCache;
use flexiapi_core::http::{Peer, RequestSpace};
use flexiapi_core::model::space::realm_for_domain;
use flexiapi_core::model::{Account, Space};
use flexiapi_core::{time, with_db, Config, Db};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::request::Parts;
use http::HeaderValue;

pub use error::AuthError;

/// The access level a route group requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Any authenticated, non-blocked account of the request Space.
    User,
    /// An admin of the request Space, or a super admin.
    Admin,
    /// A super admin.
    SuperAdmin,
}

/// How the caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Digest,
    ApiKey,
    Jwt,
}

/// The caller of an authenticated request (request extension).
#[derive(Clone, Debug)]
pub struct Authenticated {
    /// The account.
    pub account: Arc<Account>,
    /// Admin of a `super` Space.
    pub is_super_admin: bool,
    /// The credential used.
    pub method: Method,
}

/// Spaces whose OIDC settings are kept at most (then the cache starts over).
const SPACES_CACHED: usize = 10_000;

/// Decides who a request is, with cached credentials.
pub struct Authenticator {
    db: Db,
    keys: Arc<api_key::KeyStore>,
    api_key_expiration_minutes: u64,
    opaque_expiration_minutes: u64,
    global_jwt: Option<jwt::JwtSettings>,
    oidc: TtlCache<i64, Option<OidcConfiguration>>,
    failures: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
}

/// A Space's OIDC configuration (the parts verification needs).
#[derive(Clone, Debug)]
struct OidcConfiguration {
    server_url: String,
    realm: String,
    sip_identifier: String,
    public_key: Option<String>,
}

impl Authenticator {
    /// Builds the authenticator and starts the usage-counter flusher (needs a Tokio runtime).
    pub fn new(db: Db, config: &Config) -> Result<Authenticator, AuthError> {
        let global_jwt = match &config.jwt_public_key_path {
            None => None,
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    AuthError::Setup(format!(
                        "FLEXIAPI_JWT_PUBLIC_KEY_PATH {}: {e}",
                        path.display()
                    ))
                })?;
                let realm = config
                    .account_authentication_bearer
                    .clone()
                    .unwrap_or_else(|| "realm=\"flexiapi\"".to_owned());
                Some(jwt::JwtSettings {
                    public_key_pem: pem,
                    sip_identifier: config.jwt_sip_identifier.clone(),
                    challenge: realm,
                })
            }
        };
        let failures = NonZeroU32::new(config.auth_failure_limit_per_minute)
            .map(|limit| Arc::new(RateLimiter::keyed(Quota::per_minute(limit))));
        let keys = api_key::KeyStore::new(db.clone(), config.ingest.auth_cache_ttl);
        // Weak references: the housekeeping task ends with the authenticator.
        let flusher = Arc::downgrade(&keys);
        let limiter = failures.as_ref().map(Arc::downgrade);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(keys) = flusher.upgrade() else { break };
                if let Err(error) = keys.flush().await {
                    tracing::warn!(%error, "cannot write API key usage");
                }
                // Forget IPs whose failure budget is whole again, so a scan of many IPs cannot grow memory.
                if let Some(limiter) = limiter.as_ref().and_then(|l| l.upgrade()) {
                    limiter.retain_recent();
                    limiter.shrink_to_fit();
                }
            }
        });
        Ok(Authenticator {
            db,
            keys,
            api_key_expiration_minutes: config.limits.api_key_expiration_minutes,
            opaque_expiration_minutes: config.limits.opaque_expiration_minutes,
            global_jwt,
            oidc: TtlCache::new(config.ingest.auth_cache_ttl, SPACES_CACHED),
            failures,
        })
    }

    /// Forgets cached credentials of an account (after blocking it, deleting keys…).
    pub fn invalidate_account(&self, account_id: i64) {
        self.keys.invalidate(Some(account_id));
    }

    /// Forgets every cached credential.
    pub fn invalidate_all(&self) {
        self.keys.invalidate(None);
        self.oidc.clear();
    }

    /// Writes pending API key usage now (graceful shutdown).
    pub async fn flush(&self) -> Result<(), sqlx::Error> {
        self.keys.flush().await
    }

    /// Authenticates a request for a route group. On success, returns the caller and the headers to add to
    /// the answer (DIGEST challenge lines).
    pub async fn authenticate(
        &self,
        parts: &Parts,
        access: Access,
    ) -> Result<(Authenticated, Vec<HeaderValue>), AuthError> {
        let peer = parts.extensions.get::<Peer>().copied();
        let ip = peer.map_or(IpAddr::from([127, 0, 0, 1]), |p| p.ip());
        let outcome = self.identify(parts, ip).await;
        let (authenticated, headers) = match outcome {
            Ok(found) => found,
            Err(error) => {
                if error.is_credential_failure() {
                    if let Some(limiter) = &self.failures {
                        if let Err(not_until) = limiter.check_key(&ip) {
                            ::metrics::counter!(metrics::THROTTLED).increment(1);
                            let wait = not_until.wait_time_from(limiter.clock().now());
                            return Err(AuthError::TooManyAttempts {
                                // Whole seconds, at least one (Laravel's Retry-After is an integer).
                                retry_after_seconds: wait.as_secs() + 1,
                            });
                        }
                    }
                }
                return Err(error);
            }
        };
        let space = parts
            .extensions
            .get::<RequestSpace>()
            .map(|s| s.0.clone())
            .ok_or_else(|| AuthError::Setup("request Space not resolved".into()))?;
        self.authorize(&authenticated, &space, access)?;
        Ok((authenticated, headers))
    }

    /// Applies blocked, expired-Space, foreign-Space and level rules (auth.md §7, decisions D4/D5).
    fn authorize(
        &self,
        authenticated: &Authenticated,
        space: &Space,
        access: Access,
    ) -> Result<(), AuthError> {
        let account = &authenticated.account;
        if account.blocked {
            return Err(AuthError::Forbidden("Account blocked"));
        }
        if authenticated.is_super_admin {
            return Ok(());
        }
        if space.is_expired(time::now()) {
            return Err(AuthError::Forbidden("The related Space has expired"));
        }
        let own_space = account.domain == space.domain;
        let allowed = match access {
            Access::User => own_space,
            Access::Admin => own_space && account.admin,
            Access::SuperAdmin => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(AuthError::Forbidden("Unauthorized area"))
        }
    }

    async fn identify(
        &self,
        parts: &Parts,
        ip: IpAddr,
    ) -> Result<(Authenticated, Vec<HeaderValue>), AuthError> {
        let headers = &parts.headers;
        let space = parts.extensions.get::<RequestSpace>().map(|s| s.0.clone());
        let api_key = headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .or_else(|| cookie(headers, "x-api-key"));
        let authorization = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());

        // JWT first, when a key can verify it.
        let jwt_settings = match &space {
            Some(space) => self.jwt_settings(space).await?,
            None => self.global_jwt.clone(),
        };
        if let (Some(token), Some(settings)) =
            (authorization.and_then(jwt::bearer_token), &jwt_settings)
        {
            let result = jwt::verify(&self.db, token, settings).await;
            metrics::attempt("jwt", result.is_ok());
            let account_id = result?;
            let account =
                Account::find(&self.db, account_id)
                    .await?
                    .ok_or(AuthError::Forbidden(
                        "The JWT token is not related to someone in the system",
                    ))?;
            let is_super_admin = account.is_super_admin(&self.db).await?;
            return Ok((
                Authenticated {
                    account: Arc::new(account),
                    is_super_admin,
                    method: Method::Jwt,
                },
                Vec::new(),
            ));
        }

        if let Some(key) = api_key {
            let entry = self.keys.lookup(&key).await?;
            let valid = entry.filter(|e| {
                e.allows(ip) && !e.is_expired(time::now(), self.api_key_expiration_minutes)
            });
            metrics::attempt("api_key", valid.is_some());
            let Some(entry) = valid else {
                return Err(AuthError::Unauthenticated {
                    message: "Invalid API Key",
                    challenges: Vec::new(),
                });
            };
            self.keys.record_use(&key, entry.key_id);
            return Ok((
                Authenticated {
                    account: entry.account,
                    is_super_admin: entry.is_super_admin,
                    method: Method::ApiKey,
                },
                Vec::new(),
            ));
        }

        let from = headers
            .get(http::header::FROM)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.trim().is_empty());
        let Some(from) = from else {
            metrics::attempt("none", false);
            let challenges = jwt_settings
                .map(|s| HeaderValue::from_str(&format!("Bearer {}", s.challenge)))
                .and_then(Result::ok)
                .into_iter()
                .collect();
            return Err(AuthError::Unauthenticated {
                message: "From header is required or invalid token",
                challenges,
            });
        };
        let Some(address) = sip::parse_from(from) else {
            metrics::attempt("digest", false);
            return Err(AuthError::Unauthenticated {
                message: "Invalid SIP address",
                challenges: Vec::new(),
            });
        };
        let Some(account) =
            Account::find_by_identity(&self.db, &address.username, &address.domain).await?
        else {
            metrics::attempt("digest", false);
            return Err(AuthError::UnknownAccount);
        };
        let realm = realm_for_domain(&self.db, &account.domain).await?;
        let path = parts.uri.path();
        let path_and_query = parts.uri.path_and_query().map_or(path, |p| p.as_str());
        let request = digest::DigestRequest {
            account: &account,
            realm: &realm,
            from_username: &address.username,
            ip,
            method: parts.method.as_str(),
            path,
            path_and_query,
            authorization: authorization.filter(|a| {
                a.trim_start()
                    .get(..6)
                    .is_some_and(|s| s.eq_ignore_ascii_case("digest"))
            }),
            opaque_expiration_minutes: self.opaque_expiration_minutes,
        };
        let result = digest::verify(&self.db, &request).await;
        metrics::attempt("digest", result.is_ok());
        let lines = result?;
        let is_super_admin = account.is_super_admin(&self.db).await?;
        Ok((
            Authenticated {
                account: Arc::new(account),
                is_super_admin,
                method: Method::Digest,
            },
            lines,
        ))
    }

    /// The JWT settings that apply on a Space: its OIDC configuration's key, else the global one.
    async fn jwt_settings(&self, space: &Space) -> Result<Option<jwt::JwtSettings>, AuthError> {
        let config = self
            .oidc
            .get(&space.id, || {
                let (db, space_id) = (self.db.clone(), space.id);
                async move {
                    let row: Option<(String, String, String, Option<String>)> = with_db!(&db, pool =>
                        sqlx::query_as(
                            "SELECT server_url, realm, sip_identifier, public_key FROM space_oidc_authentication_configurations WHERE space_id = $1")
                            .bind(space_id).fetch_optional(pool).await)?;
                    Ok::<_, sqlx::Error>(row.map(
                        |(server_url, realm, sip_identifier, public_key)| OidcConfiguration {
                            server_url,
                            realm,
                            sip_identifier,
                            public_key,
                        },
                    ))
                }
            })
            .await?;
        Ok(match config {
            Some(OidcConfiguration {
                server_url,
                realm,
                sip_identifier,
                public_key: Some(key),
            }) => Some(jwt::JwtSettings {
                public_key_pem: key.into_bytes(),
                sip_identifier: if sip_identifier.is_empty() {
                    "sip_identity".to_owned()
                } else {
                    sip_identifier
                },
                challenge: format!("authz_server=\"{server_url}realms/{realm}\",realm=\"{realm}\""),
            }),
            _ => self.global_jwt.clone(),
        })
    }
}

/// The value of a cookie.
fn cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

async fn require(
    auth: Arc<Authenticator>,
    access: Access,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let (authenticated, challenge_lines) = match auth.authenticate(&parts, access).await {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    parts.extensions.insert(authenticated);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    for line in challenge_lines {
        response
            .headers_mut()
            .append(http::header::WWW_AUTHENTICATE, line);
    }
    response
}

/// Middleware for user routes.
pub async fn require_user(
    State(auth): State<Arc<Authenticator>>,
    request: Request,
    next: Next,
) -> Response {
    require(auth, Access::User, request, next).await
}

/// Middleware for admin routes.
pub async fn require_admin(
    State(auth): State<Arc<Authenticator>>,
    request: Request,
    next: Next,
) -> Response {
    require(auth, Access::Admin, request, next).await
}

/// Middleware for super-admin routes.
pub async fn require_super_admin(
    State(auth): State<Arc<Authenticator>>,
    request: Request,
    next: Next,
) -> Response {
    require(auth, Access::SuperAdmin, request, next).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_static("a=1; x-api-key=KEY; b=2"),
        );
        assert_eq!(cookie(&headers, "x-api-key").as_deref(), Some("KEY"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}
