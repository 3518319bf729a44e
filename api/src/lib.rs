//! flexiapi-api: FlexiAPI's account and space API (`/api/...`) and its non-API companion pages.
//!
//! How the pieces fit:
//! - [`Api::router`] builds every route with its full path. The binary merges it under
//!   `flexiapi_core::http::context::resolve_space`, so each handler finds the request Space, locale, peer
//!   and host in the extensions (gathered by [`context::Ctx`]).
//! - [`input::json_body`] wraps the whole router: malformed JSON → 400 before authentication; the normalised
//!   body is read by the [`input::Input`] extractor.
//! - [`access`] applies flexiapi-auth's User / Admin / Super Admin middlewares per route group and holds the
//!   account lookups with upstream's domain scope.
//! - Domain modules: [`account`] (JSON object, rules, storage, public/user/admin endpoints, email and phone
//!   changes), [`space`], [`tokens`], [`phone`], [`mail`], [`sms`], [`push`], [`turn`].
//! - Part 2 ([`resources`] routes them): [`devices`] (Flexisip registrar in Redis), [`contacts`],
//!   [`contacts_list`], [`account_type`], [`action`], [`dictionary`], [`external_account`], [`vcard`] and
//!   [`vcards_storage`], [`provisioning`] (linphone XML, QR codes), [`messages`] (linphone daemon socket).
//! - Handlers answer [`error::ApiError`], mapped once to upstream's bodies through `HttpError`.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use flexiapi_auth::Authenticator;
use flexiapi_core::http::SpaceDirectory;
use flexiapi_core::{Config, Db};

pub mod access;
pub mod account;
pub mod account_type;
pub mod action;
pub mod contacts;
pub mod contacts_list;
pub mod context;
pub mod devices;
pub mod dictionary;
pub mod error;
pub mod external_account;
pub mod input;
pub mod keys;
pub mod mail;
pub mod messages;
pub mod phone;
pub mod ping;
pub mod provisioning;
pub mod push;
pub mod resources;
pub mod sms;
pub mod space;
pub mod state;
pub mod token;
pub mod tokens;
pub mod turn;
pub mod vcard;
pub mod vcards_storage;

pub use error::{ApiError, ApiResult};
pub use state::AppState;

/// The account API, ready to be served.
#[derive(Clone)]
pub struct Api {
    state: AppState,
}

impl Api {
    /// Wraps an existing state.
    pub fn new(state: AppState) -> Api {
        Api { state }
    }

    /// Builds the API over the shared database, configuration, authenticator and Space directory.
    pub async fn start(
        db: Db,
        config: Config,
        auth: Arc<Authenticator>,
        spaces: Arc<SpaceDirectory>,
    ) -> Result<Api, ApiError> {
        regex::Regex::new(&config.limits.account_username_regex).map_err(|e| {
            ApiError::Setup(format!("ACCOUNT_USERNAME_REGEX does not compile: {e}"))
        })?;
        Ok(Api::new(AppState::new(db, Arc::new(config), auth, spaces)))
    }

    /// The shared state (for modules adding routes).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Every route of the API with its full path (`/api/...`).
    pub fn router(&self) -> Router {
        let auth = &self.state.auth;
        let public = Router::new()
            .route("/api/ping", get(ping::ping))
            .route("/api/phone_countries", get(phone::list))
            .route("/api/phones_countries", get(phone::list))
            .route(
                "/api/account_creation_request_tokens",
                post(tokens::create_request_token),
            )
            .route(
                "/api/account_creation_tokens/send-by-push",
                post(tokens::creation_send_by_push),
            )
            .route(
                "/api/account_creation_tokens/using-account-creation-request-token",
                post(tokens::creation_using_request_token),
            )
            .route(
                "/api/account_recovery_tokens/send-by-push",
                post(tokens::recovery_send_by_push),
            )
            .route("/api/accounts/auth_token", post(tokens::create_auth_token))
            .route(
                "/api/accounts/me/api_key/{auth_token}",
                get(tokens::exchange_auth_token),
            )
            .route(
                "/api/accounts/with-account-creation-token",
                post(account::public::create_with_token),
            )
            .route("/api/accounts/{id}/info", get(account::public::info));

        let user = Router::new()
            .route(
                "/api/accounts/me",
                get(account::me::show).delete(account::me::destroy),
            )
            .route("/api/accounts/me/api_key", get(account::me::api_key))
            .route("/api/accounts/me/services/turn", get(turn::credentials))
            .route("/api/accounts/me/provision", get(account::me::provision))
            .route("/api/accounts/me/password", post(account::me::password))
            .route(
                "/api/accounts/me/email/request",
                post(account::change::email_request),
            )
            .route(
                "/api/accounts/me/email",
                post(account::change::email_confirm),
            )
            .route(
                "/api/accounts/me/phone/request",
                post(account::change::phone_request),
            )
            .route(
                "/api/accounts/me/phone",
                post(account::change::phone_confirm),
            )
            .route(
                "/api/account_creation_tokens/consume",
                post(tokens::consume_creation_token),
            )
            .route(
                "/api/accounts/auth_token/{auth_token}/attach",
                get(tokens::attach_auth_token),
            );

        let admin = Router::new()
            .route(
                "/api/accounts",
                get(account::admin::index).post(account::admin::store),
            )
            .route(
                "/api/accounts/{id}",
                get(account::admin::show)
                    .put(account::admin::update)
                    .delete(account::admin::destroy),
            )
            .route("/api/accounts/{id}/search", get(account::admin::search))
            .route(
                "/api/accounts/{id}/search-by-email",
                get(account::admin::search_by_email),
            )
            .route(
                "/api/accounts/{id}/activate",
                post(account::admin::activate),
            )
            .route(
                "/api/accounts/{id}/deactivate",
                post(account::admin::deactivate),
            )
            .route("/api/accounts/{id}/block", post(account::admin::block))
            .route("/api/accounts/{id}/unblock", post(account::admin::unblock))
            .route(
                "/api/accounts/{id}/provision",
                get(account::admin::provision),
            )
            .route(
                "/api/accounts/{id}/send_provisioning_email",
                post(account::admin::send_provisioning_email),
            )
            .route(
                "/api/accounts/{id}/send_reset_password_email",
                post(account::admin::send_reset_password_email),
            )
            .route(
                "/api/account_creation_tokens",
                post(tokens::admin_create_creation_token),
            );

        let super_admin = Router::new()
            .route("/api/spaces", get(space::index).post(space::store))
            .route(
                "/api/spaces/{domain}",
                get(space::show).put(space::update).delete(space::destroy),
            )
            .route(
                "/api/spaces/{domain}/email",
                get(space::email_show)
                    .post(space::email_store)
                    .delete(space::email_destroy),
            )
            .route(
                "/api/phone_countries/{code}/activate",
                post(phone::activate),
            )
            .route(
                "/api/phone_countries/{code}/deactivate",
                post(phone::deactivate),
            );

        Router::new()
            .merge(public)
            .merge(access::user(user, auth))
            .merge(access::admin(admin, auth))
            .merge(access::super_admin(super_admin, auth))
            .merge(resources::routes(&self.state.config, auth))
            .layer(axum::middleware::from_fn_with_state(
                self.state.me_cache.clone(),
                account::cache::track_writes,
            ))
            .layer(axum::middleware::from_fn(input::json_body))
            .with_state(self.state.clone())
    }
}
