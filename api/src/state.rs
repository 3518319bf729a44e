//! What every handler of the account API shares.

use std::sync::Arc;

use flexiapi_auth::Authenticator;
use flexiapi_core::http::SpaceDirectory;
use flexiapi_core::{Config, Db};

use crate::account::cache::MeCache;

/// Shared state of the API router (cheap to clone: pools and `Arc`s).
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The configuration.
    pub config: Arc<Config>,
    /// Authentication (also used to drop cached credentials after account changes).
    pub auth: Arc<Authenticator>,
    /// Host → Space cache (invalidated when spaces change).
    pub spaces: Arc<SpaceDirectory>,
    /// HTTP client for the SMS provider.
    pub http: reqwest::Client,
    /// Rendered `GET /api/accounts/me` bodies.
    pub me_cache: Arc<MeCache>,
}

impl AppState {
    /// Builds the state.
    pub fn new(
        db: Db,
        config: Arc<Config>,
        auth: Arc<Authenticator>,
        spaces: Arc<SpaceDirectory>,
    ) -> AppState {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let me_cache = Arc::new(MeCache::new(config.ingest.auth_cache_ttl));
        AppState {
            db,
            config,
            auth,
            spaces,
            http,
            me_cache,
        }
    }
}
