//! Glue between the routes and flexiapi-auth: the access level of each route group, and the account
//! lookups every restricted endpoint does (domain scope, api-accounts.md §1.3).
//!
//! The authentication middlewares are route layers, so they run after the [`crate::input::json_body`] check
//! and after route matching (unknown routes stay 404 without credentials).

use std::sync::Arc;

use axum::Router;

use flexiapi_auth::Authenticator;
use flexiapi_core::http::HttpError;
use flexiapi_core::model::{Account, Space};
use flexiapi_core::Db;

use crate::error::ApiResult;
use crate::state::AppState;

pub use flexiapi_auth::Authenticated;

/// Puts every route of `router` behind the User level (DIGEST, API key or JWT; blocked → 403).
pub fn user(router: Router<AppState>, auth: &Arc<Authenticator>) -> Router<AppState> {
    router.route_layer(axum::middleware::from_fn_with_state(
        auth.clone(),
        flexiapi_auth::require_user,
    ))
}

/// Puts every route of `router` behind the Admin level (admin of the request space, or super admin).
pub fn admin(router: Router<AppState>, auth: &Arc<Authenticator>) -> Router<AppState> {
    router.route_layer(axum::middleware::from_fn_with_state(
        auth.clone(),
        flexiapi_auth::require_admin,
    ))
}

/// Puts every route of `router` behind the Super Admin level.
pub fn super_admin(router: Router<AppState>, auth: &Arc<Authenticator>) -> Router<AppState> {
    router.route_layer(axum::middleware::from_fn_with_state(
        auth.clone(),
        flexiapi_auth::require_super_admin,
    ))
}

/// Parses an `{id}` path segment; anything but an integer is a 404 (upstream answers 500).
pub fn parse_id(raw: &str) -> ApiResult<i64> {
    raw.parse::<i64>()
        .map_err(|_| HttpError::not_found("Account").into())
}

/// The freshest row of the authenticated account (the auth layer's copy may be a few seconds old).
pub async fn me(db: &Db, caller: &Authenticated) -> ApiResult<Account> {
    Account::find(db, caller.account.id)
        .await?
        .ok_or_else(|| HttpError::not_found("Account").into())
}

/// Account `id` of the request space ("space-scoped": even super admins only reach this host's accounts).
pub async fn space_account(db: &Db, space: &Space, id: i64) -> ApiResult<Account> {
    match Account::find(db, id).await? {
        Some(account) if account.domain == space.domain => Ok(account),
        _ => Err(HttpError::model_not_found("Account", id).into()),
    }
}

/// Account `id` visible to the caller ("domain-scoped": super admins reach every space).
pub async fn scoped_account(
    db: &Db,
    space: &Space,
    caller: &Authenticated,
    id: i64,
) -> ApiResult<Account> {
    if !caller.is_super_admin {
        return space_account(db, space, id).await;
    }
    Account::find(db, id)
        .await?
        .ok_or_else(|| HttpError::model_not_found("Account", id).into())
}

/// Drops the authenticator's cached view of an account (after it changed or was deleted).
pub fn forget(state: &AppState, account_id: i64) {
    state.auth.invalidate_account(account_id);
}

/// A new user API key for the account, bound to `ip` (the previous user key is deleted).
pub async fn generate_user_key(state: &AppState, account_id: i64, ip: &str) -> ApiResult<String> {
    flexiapi_auth::api_key::generate_user_key(&state.db, account_id, ip)
        .await
        .map_err(|e| HttpError::internal(e).into())
}
